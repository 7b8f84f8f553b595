"""Mean response time in M/G/1 for SPRPT with limited preemption (SOAP), FCFS, SRPT and SJF.

The SOAP formula (Scully, Harchol-Balter, Scheller-Wolf 2018, Thm 5.5) is evaluated on a
discrete "cloud" of (size x, prediction r) points with probability weights. On a cloud every
integral is an exact finite sum, so the only approximation is the discretisation of the
distribution; the direct SRPT/SJF formulas below use a different (fine-grid) code path and check
the cloud numerics. The derivation is in docs/theory.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trail.sim.distributions import Array, PredictionModel, SizeDist


@dataclass(frozen=True)
class Cloud:
    """Joint (size, prediction) distribution as weighted points."""

    x: Array
    r: Array
    w: Array

    @classmethod
    def build(cls, size: SizeDist, pred: PredictionModel, nx: int = 0, nz: int = 81) -> Cloud:
        nx = nx or (4000 if pred.exact else 800)
        xs, wx = size.quadrature(nx)
        mult, wz = pred.quadrature(nz)
        x = np.repeat(xs, len(mult))
        r = (xs[:, None] * mult[None, :]).ravel()
        w = (wx[:, None] * wz[None, :]).ravel()
        return cls(x, r, w / w.sum())


class _RankProfile:
    """rho(s) = lam E[X; R < s], lam E[X^2; R <= s] and H(s) = int_0^s du / (1 - rho(u)), exactly
    for the cloud (rho is a step function there, so H is piecewise linear)."""

    def __init__(self, cloud: Cloud, lam: float) -> None:
        order = np.argsort(cloud.r, kind="stable")
        self.r_sorted = cloud.r[order]
        self.cum_x = np.concatenate([[0.0], np.cumsum(lam * cloud.w[order] * cloud.x[order])])
        self.cum_x2 = np.concatenate([[0.0], np.cumsum(lam * cloud.w[order] * cloud.x[order] ** 2)])
        knots = np.concatenate([[0.0], self.r_sorted])
        slope = 1.0 / (1.0 - self.cum_x)  # on (knot_j, knot_{j+1}) rho equals cum_x[j]
        self.knots = knots
        self.slope = slope
        self.h_at_knots = np.concatenate([[0.0], np.cumsum(np.diff(knots) * slope[:-1])])

    def rho_below(self, s: Array) -> Array:
        return self.cum_x[np.searchsorted(self.r_sorted, s, side="left")]

    def rho_upto(self, s: Array) -> Array:
        return self.cum_x[np.searchsorted(self.r_sorted, s, side="right")]

    def m2_upto(self, s: Array) -> Array:
        return self.cum_x2[np.searchsorted(self.r_sorted, s, side="right")]

    def h(self, s: Array) -> Array:
        s = np.maximum(s, 0.0)
        j = np.searchsorted(self.knots, s, side="right") - 1
        return self.h_at_knots[j] + (s - self.knots[j]) * self.slope[j]


def _old_tail_work(cloud: Cloud, lam: float, c: float, thresholds: Array, chunk: int = 16) -> Array:
    """lam E[(X' - b(R', r))_+^2 ; R' > r]: second moment of the old work of jobs that arrive with
    a worse rank than r and become relevant at age b = min(R' - r, a1(R'))."""
    a1 = min(c, 1.0) * cloud.r
    out = np.empty(len(thresholds))
    for i in range(0, len(thresholds), chunk):
        t = thresholds[i : i + chunk, None]
        start = np.minimum(cloud.r[None, :] - t, a1[None, :])
        tail = np.where(cloud.r[None, :] > t, np.maximum(cloud.x[None, :] - start, 0.0) ** 2, 0.0)
        out[i : i + chunk] = lam * tail @ cloud.w
    return out


def _threshold_grid(r: Array, n: int = 600) -> Array:
    """Where to evaluate the (smooth) waiting term: every point for small clouds, else a log grid."""
    if len(r) <= 5000:
        return np.unique(r)
    return np.geomspace(r.min(), r.max(), n)


def sprpt_lp_mean_response(cloud: Cloud, lam: float, c: float) -> float:
    """E[T] for rank r - age while age <= a1 = min(c, 1) r, non-preemptible (rank -inf) after.

    c = 0 is non-preemptive SJF by prediction, c = inf is SPRPT; with exact predictions and
    c >= 1 this is SRPT. Rank ties resolve FCFS, as in the policy's (rank, arrival) order.
    """
    load = lam * float(cloud.w @ cloud.x)
    if load >= 1.0:
        return math.inf
    prof = _RankProfile(cloud, lam)
    grid = _threshold_grid(cloud.r)
    old_sq = prof.m2_upto(grid) + _old_tail_work(cloud, lam, c, grid)
    wait = old_sq / (2.0 * (1.0 - prof.rho_upto(grid)) * (1.0 - prof.rho_below(grid)))
    if len(grid) == len(np.unique(cloud.r)) and len(grid) <= 5000:
        wait_at = np.interp(cloud.r, grid, wait)
    else:
        wait_at = np.interp(np.log(cloud.r), np.log(grid), wait)
    preemptible_service = np.minimum(min(c, 1.0) * cloud.r, cloud.x)
    residence = prof.h(cloud.r) - prof.h(cloud.r - preemptible_service)
    residence += cloud.x - preemptible_service
    return float(cloud.w @ (wait_at + residence))


def fcfs_mean_response(size: SizeDist, lam: float) -> float:
    """Pollaczek-Khinchine."""
    rho = lam * size.mean
    return math.inf if rho >= 1 else size.mean + lam * size.second_moment / (2 * (1 - rho))


def _fine_grid(size: SizeDist, n: int = 20_000) -> tuple[Array, Array, Array, Array]:
    """x, pdf, lam-free partial moments int_0^x t f and int_0^x t^2 f (trapezoid, fine log grid
    from the 1e-10 quantile: starting at 0 would smear a positive lower bound into a ramp)."""
    lo = max(float(size.ppf(1e-10)), 1e-12)
    x = np.geomspace(lo, float(size.ppf(1 - 1e-12)), n)
    f = size.pdf(x)
    m1 = _cumtrapz(x * f, x)
    m2 = _cumtrapz(x**2 * f, x)
    return x, f, m1, m2


def _cumtrapz(y: Array, x: Array) -> Array:
    return np.concatenate([[0.0], np.cumsum(0.5 * (y[1:] + y[:-1]) * np.diff(x))])


def srpt_mean_response(size: SizeDist, lam: float) -> float:
    """Classical SRPT (Schrage-Miller) formula, on its own fine grid: a check of the SOAP code."""
    x, f, m1, m2 = _fine_grid(size)
    rho = lam * m1
    if rho[-1] >= 1:
        return math.inf
    tail = 1.0 - size.cdf(x)
    waiting = lam * (m2 + x**2 * tail) / (2 * (1 - rho) ** 2)
    residence = x[0] + _cumtrapz(1.0 / (1.0 - rho), x)
    return float(_cumtrapz((waiting + residence) * f, x)[-1] / _cumtrapz(f, x)[-1])


def sjf_mean_response(size: SizeDist, lam: float) -> float:
    """Non-preemptive SJF with exact sizes: E[X] + lam E[X^2] / 2 * E[1 / (1 - rho(X))^2]."""
    x, f, m1, _ = _fine_grid(size)
    rho = lam * m1
    if rho[-1] >= 1:
        return math.inf
    mass = _cumtrapz(f, x)[-1]
    wait = lam * size.second_moment / 2 * _cumtrapz(f / (1 - rho) ** 2, x)[-1] / mass
    return size.mean + float(wait)


def mean_response(
    policy: str, size: SizeDist, pred: PredictionModel, lam: float, c: float = math.inf
) -> float:
    """Theory for one of the M/G/1 policies of `trail.sim.mg1` ('fcfs', 'srpt', 'sprpt-lp')."""
    if policy == "fcfs":
        return fcfs_mean_response(size, lam)
    if policy == "srpt":
        return sprpt_lp_mean_response(Cloud.build(size, PredictionModel(0.0)), lam, math.inf)
    if policy == "sprpt-lp":
        return sprpt_lp_mean_response(Cloud.build(size, pred), lam, c)
    raise ValueError(f"no theory for policy {policy!r}")
