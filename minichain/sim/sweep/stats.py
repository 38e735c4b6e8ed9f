"""Means and 95% intervals over a point's seeds.

* A metric measured once per seed gets the mean of the seeds' values and Student's t
  interval ``mean +- t(0.975, k-1) s / sqrt(k)`` (k seeds, s their sample standard
  deviation): each seed is an independent run, so the k values are independent draws.
* A proportion (successes out of trials: double-spend attacks, stale blocks out of those
  mined) pools the counts of all seeds and takes Wilson's score interval
  (``analytic.wilson_interval``), which stays sound when the rate is 0 or close to it,
  where a t interval over a few seeds collapses or goes negative. It treats the trials as
  independent: exact for attacks, slightly optimistic for blocks (one fork can orphan
  more than one).

The t quantile is computed here rather than imported (scipy would be the only user): the
two-sided t distribution function has finite sums for integer degrees of freedom
(Abramowitz & Stegun, Handbook of Mathematical Functions, 26.7.3 and 26.7.4), and the
quantile is found by bisection on it.
"""

from __future__ import annotations

import math
import statistics
from typing import Sequence

from minichain.sim.analytic import wilson_interval


def t_two_sided(t: float, df: int) -> float:
    """``P(|T| <= t)`` for Student's T with ``df`` degrees of freedom (A&S 26.7.3-4)."""
    if df < 1:
        raise ValueError("need df >= 1")
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2:
        # odd: (2/pi) [theta + sin(theta) (cos + 2/3 cos^3 + ... + 2.4...(df-3)/(1.3...(df-2)) cos^(df-2))]
        total = 0.0
        if df > 1:
            term = math.cos(theta)
            total = term
            for k in range(3, df - 1, 2):
                term *= (k - 1) / k * c2
                total += term
        return 2.0 / math.pi * (theta + s * total)
    # even: sin(theta) [1 + 1/2 cos^2 + 1.3/(2.4) cos^4 + ... + 1.3...(df-3)/(2.4...(df-2)) cos^(df-2)]
    term = total = 1.0
    for k in range(2, df - 1, 2):
        term *= (k - 1) / k * c2
        total += term
    return s * total


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (p > 1/2) of Student's t with ``df`` degrees of freedom."""
    if not 0.5 < p < 1.0:
        raise ValueError("p must be in (1/2, 1)")
    target = 2.0 * p - 1.0
    lo, hi = 0.0, 1.0
    while t_two_sided(hi, df) < target:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_two_sided(mid, df) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * hi:
            break
    return (lo + hi) / 2.0


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float | None, float | None]:
    """(mean, low, high); no interval from a single value."""
    k = len(values)
    if k == 0:
        raise ValueError("no values")
    mean = math.fsum(values) / k
    if k == 1:
        return mean, None, None
    half = t_quantile(0.5 + level / 2.0, k - 1) * statistics.stdev(values) / math.sqrt(k)
    return mean, mean - half, mean + half


def proportion_interval(successes: int, trials: int) -> tuple[float, float, float]:
    """(pooled rate, Wilson 95% low, high)."""
    lo, hi = wilson_interval(successes, trials)
    # In exact arithmetic Wilson's interval reaches 0 (1) when no (every) trial succeeds;
    # in floating point the end may miss it by an ulp, which would put an exact 1 outside.
    if successes == trials:
        hi = 1.0
    if successes == 0:
        lo = 0.0
    return (successes / trials if trials else 0.0), lo, hi
