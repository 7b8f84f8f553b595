"""Job-size distributions and prediction-error models shared by the theory and the simulators.

Each distribution can both *sample* (simulation) and give a *quadrature* (theory), so the two
sides of the validation can never disagree about what distribution they mean.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

Array = np.ndarray


@dataclass(frozen=True)
class SizeDist:
    """A continuous job-size distribution (1 unit of work = 1 token) with a CDF and quantiles."""

    name: str
    frozen: object = field(repr=False)  # a frozen scipy distribution, or an EmpiricalLengths

    @property
    def mean(self) -> float:
        return float(self.frozen.mean())  # type: ignore[attr-defined]

    @property
    def second_moment(self) -> float:
        return float(self.frozen.moment(2))  # type: ignore[attr-defined]

    def cdf(self, x: ArrayLike) -> Array:
        return self.frozen.cdf(x)  # type: ignore[attr-defined]

    def ppf(self, u: ArrayLike) -> Array:
        return self.frozen.ppf(u)  # type: ignore[attr-defined]

    def pdf(self, x: ArrayLike) -> Array:
        return self.frozen.pdf(x)  # type: ignore[attr-defined]

    def sample(self, rng: np.random.Generator, n: int) -> Array:
        """Inverse-transform sampling: the same quantile function the quadrature uses."""
        return np.asarray(self.ppf(rng.random(n)), dtype=float)

    def quadrature(self, n: int = 3000) -> tuple[Array, Array]:
        """Nodes and probability weights (summing to 1) on log-spaced cells.

        Log spacing resolves both the many small jobs (which dominate SRPT-like response times)
        and the far tail (which dominates the second moment) with a few thousand cells.
        """
        lo = max(float(self.ppf(1e-10)), 1e-12)
        hi = float(self.ppf(1.0 - 1e-12))
        edges = np.geomspace(lo, hi, n + 1)
        mass = np.diff(self.cdf(edges))
        mass[0] += float(self.cdf(edges[0]))
        mass[-1] += 1.0 - float(self.cdf(edges[-1]))
        nodes = 0.5 * (edges[1:] + edges[:-1])
        return nodes, mass / mass.sum()


class EmpiricalLengths:
    """A histogram of measured lengths read as a piecewise-uniform density (continuous, no ties)."""

    def __init__(self, lengths: Array, bins: int = 200) -> None:
        lengths = np.asarray(lengths, dtype=float)
        lengths = lengths[lengths > 0]
        self.edges = np.unique(
            np.quantile(np.concatenate([[0.0], lengths]), np.linspace(0, 1, bins + 1))
        )
        counts, _ = np.histogram(lengths, bins=self.edges)
        self.cum = np.concatenate([[0.0], np.cumsum(counts) / counts.sum()])

    def cdf(self, x: ArrayLike) -> Array:
        return np.interp(np.asarray(x, dtype=float), self.edges, self.cum)

    def ppf(self, u: ArrayLike) -> Array:
        return np.interp(np.asarray(u, dtype=float), self.cum, self.edges)

    def pdf(self, x: ArrayLike) -> Array:
        dens = np.diff(self.cum) / np.diff(self.edges)
        idx = np.clip(np.searchsorted(self.edges, x, side="right") - 1, 0, len(dens) - 1)
        inside = (np.asarray(x) >= self.edges[0]) & (np.asarray(x) < self.edges[-1])
        return np.where(inside, dens[idx], 0.0)

    def moment(self, k: int) -> float:
        a, b, p = self.edges[:-1], self.edges[1:], np.diff(self.cum)
        return float(np.sum(p * (b ** (k + 1) - a ** (k + 1)) / ((k + 1) * (b - a))))

    def mean(self) -> float:
        return self.moment(1)


def exponential(mean: float = 100.0) -> SizeDist:
    return SizeDist(f"exp(mean={mean:g})", stats.expon(scale=mean))


def lognormal(mean: float = 100.0, sigma: float = 1.0) -> SizeDist:
    """Heavy(ish)-tailed: E[X^2]/E[X]^2 = exp(sigma^2); LLM output lengths are often lognormal."""
    mu = math.log(mean) - sigma**2 / 2
    return SizeDist(
        f"lognormal(mean={mean:g},sigma={sigma:g})", stats.lognorm(s=sigma, scale=math.exp(mu))
    )


def bounded_pareto(alpha: float = 1.5, lo: float = 10.0, hi: float = 10_000.0) -> SizeDist:
    return SizeDist(
        f"bpareto(a={alpha:g},{lo:g}..{hi:g})", stats.truncpareto(alpha, hi / lo, scale=lo)
    )


def empirical(lengths: Array, name: str = "empirical") -> SizeDist:
    return SizeDist(name, EmpiricalLengths(lengths))


def empirical_from_file(path: Path) -> SizeDist:
    """One length per line (text) or a .npy array: e.g. output lengths measured on the engine."""
    data = np.load(path) if path.suffix == ".npy" else np.loadtxt(path)
    return empirical(data, name=f"empirical({path.name})")


def by_name(spec: str) -> SizeDist:
    """Parse 'exp', 'exp:200', 'lognormal:100:1.2', 'bpareto:1.5:10:10000', 'file:PATH'."""
    kind, *args = spec.split(":")
    if kind == "file":
        return empirical_from_file(Path(":".join(args)))
    makers: dict[str, Callable[..., SizeDist]] = {
        "exp": exponential,
        "lognormal": lognormal,
        "bpareto": bounded_pareto,
    }
    if kind not in makers:
        raise ValueError(
            f"unknown size distribution {spec!r}; use one of {sorted(makers)} or file:PATH"
        )
    return makers[kind](*(float(a) for a in args))


@dataclass(frozen=True)
class PredictionModel:
    """Multiplicative lognormal prediction error: R = X * exp(sigma * Z), Z ~ N(0, 1).

    Median-unbiased and scale-free, so one sigma describes a predictor across lengths;
    sigma = 0 is an exact (oracle) prediction.
    """

    sigma: float = 0.0

    @property
    def exact(self) -> bool:
        return self.sigma == 0.0

    def sample(self, rng: np.random.Generator, sizes: Array) -> Array:
        if self.exact:
            return np.array(sizes, dtype=float)
        return sizes * np.exp(self.sigma * rng.standard_normal(len(sizes)))

    def quadrature(self, n: int = 81) -> tuple[Array, Array]:
        """Multipliers exp(sigma z) and weights for z on a uniform grid over [-6, 6]."""
        if self.exact:
            return np.ones(1), np.ones(1)
        z = np.linspace(-6.0, 6.0, n)
        w = np.exp(-0.5 * z**2)
        return np.exp(self.sigma * z), w / w.sum()
