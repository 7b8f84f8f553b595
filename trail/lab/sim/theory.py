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

from trail.lab.sim.distributions import Array, PredictionModel, SizeDist


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


def _old_tail_work(cloud: Cloud, lam: float, c: float, t: Array) -> Array:
    """lam E[(X' - b(R', t))_+^2 ; R' > t] for every threshold t, exactly, in O(N log N).

    An old job that arrives ranked worse than t becomes relevant at age b = min(R' - t, a1(R')).
    As a function of t its contribution is piecewise: (t + X' - R')^2 on [L, R') with
    L = max(R' - a1, R' - X'), the constant (X' - a1)_+^2 for t < R' - a1, and 0 elsewhere;
    so the sum is a quadratic in t with coefficients read off sorted cumulative sums.
    """
    a1 = min(c, 1.0) * cloud.r
    d = cloud.x - cloud.r
    start = np.maximum(cloud.r - a1, cloud.r - cloud.x)
    quad = np.zeros(len(t))
    for power, coef in ((2, 1.0), (1, 2.0), (0, 1.0)):  # (t + d)^2 = t^2 + 2 d t + d^2
        wd = cloud.w * d ** (2 - power)
        quad += coef * t**power * (_sum_upto(start, wd, t) - _sum_upto(cloud.r, wd, t))
    const = cloud.w * np.maximum(cloud.x - a1, 0.0) ** 2
    quad += const.sum() - _sum_upto(cloud.r - a1, const, t)
    return lam * quad


def _sum_upto(keys: Array, values: Array, t: Array) -> Array:
    """sum of values[k] over keys[k] <= t, for every t."""
    order = np.argsort(keys, kind="stable")
    cum = np.concatenate([[0.0], np.cumsum(values[order])])
    return cum[np.searchsorted(keys[order], t, side="right")]


def _old_tail_work_direct(cloud: Cloud, lam: float, c: float, t: Array) -> Array:
    """The same sum term by term (O(N x len(t))): the test oracle for `_old_tail_work`."""
    a1 = min(c, 1.0) * cloud.r
    start = np.minimum(cloud.r[None, :] - t[:, None], a1[None, :])
    tail = np.maximum(cloud.x[None, :] - start, 0.0) ** 2
    return lam * np.where(cloud.r[None, :] > t[:, None], tail, 0.0) @ cloud.w


def sprpt_lp_mean_response(cloud: Cloud, lam: float, c: float) -> float:
    """E[T] for rank r - age while age <= a1 = min(c, 1) r, non-preemptible (rank -inf) after.

    c = 0 is non-preemptive SJF by prediction, c = inf is SPRPT; with exact predictions and
    c >= 1 this is SRPT. Rank ties resolve FCFS, as in the policy's (rank, arrival) order.
    """
    load = lam * float(cloud.w @ cloud.x)
    if load >= 1.0:
        return math.inf
    prof = _RankProfile(cloud, lam)
    r = cloud.r
    old_sq = prof.m2_upto(r) + _old_tail_work(cloud, lam, c, r)
    wait = old_sq / (2.0 * (1.0 - prof.rho_upto(r)) * (1.0 - prof.rho_below(r)))
    preemptible_service = np.minimum(min(c, 1.0) * r, cloud.x)
    residence = prof.h(r) - prof.h(r - preemptible_service)
    residence += cloud.x - preemptible_service
    return float(cloud.w @ (wait + residence))


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
    """Theory for one of the M/G/1 policies of `trail.lab.sim.mg1` ('fcfs', 'srpt', 'sprpt-lp')."""
    if policy == "fcfs":
        return fcfs_mean_response(size, lam)
    if policy == "srpt":
        return sprpt_lp_mean_response(Cloud.build(size, PredictionModel(0.0)), lam, math.inf)
    if policy == "sprpt-lp":
        return sprpt_lp_mean_response(Cloud.build(size, pred), lam, c)
    raise ValueError(f"no theory for policy {policy!r}")
