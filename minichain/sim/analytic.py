"""Closed forms the simulator's measurements are compared against, each with its source.

Notation: ``q`` is the attacker's (or pool's) share of the hash power, ``p = 1 - q`` the
honest share, ``z`` the confirmations a merchant waits for.

Double spend (an attacker mines a private branch with a conflicting payment):

* :func:`nakamoto_double_spend` -- Nakamoto, "Bitcoin: A Peer-to-Peer Electronic Cash
  System" (2008), section 11. It approximates the attacker's progress while the merchant
  waits by a Poisson variable of mean ``z q / p`` (as if honest blocks came at exactly
  their expected times), then multiplies by the gambler's-ruin probability of catching up,
  ``(q/p)^(z-k)``.
* :func:`rosenfeld_double_spend` -- Rosenfeld, "Analysis of Hashrate-Based Double
  Spending" (2014, arXiv:1402.2009), section 5: the attacker's progress is negative
  binomial (he mines ``m`` blocks while the honest network mines ``z``, with probability
  ``C(m+z-1, m) p^z q^m``) and the attacker has pre-mined one block, so he succeeds if his
  branch ever becomes longer than the honest one:
  ``r = 1 - sum_{m=0..z} C(m+z-1, m) (p^z q^m - p^m q^z)`` for ``q < p``, and 1 otherwise.
* :func:`grunspan_perez_marco_double_spend` -- Grunspan & Perez-Marco, "Double spend
  races" (2018, arXiv:1702.02867), Theorem 1: the same exact probability as a regularised
  incomplete beta function, ``P(z) = I_{4pq}(z, 1/2)``. For integer ``z`` and ``b = 1/2``
  it has the finite form ``1 - sqrt(1 - x) * sum_{k<z} C(2k, k) (x/4)^k`` with
  ``x = 4pq`` (from ``I_x(a+1, b) = I_x(a, b) - x^a (1-x)^b / (a B(a, b))``), which we
  use; the tests check it against a numerical integral and against Rosenfeld's sum.

Selfish mining:

* :func:`eyal_sirer_revenue` -- Eyal & Sirer, "Majority is not Enough: Bitcoin Mining is
  Vulnerable" (FC 2014; CACM 2018), equation (8): the pool's relative revenue
  ``R = [a(1-a)^2 (4a + g(1-2a)) - a^3] / [1 - a(1 + (2-a) a)]`` for pool share ``a`` and
  tie-winning fraction ``g`` (the share of honest miners that mine on the pool's block in
  a tie).
* :func:`selfish_threshold` -- their Observation 1: selfish mining pays when
  ``a > (1 - g) / (3 - 2g)``: 1/3 for ``g = 0``, 1/4 for ``g = 1/2``, 0 for ``g = 1``.

Stale blocks:

* :func:`stale_rate_approx` -- if a block needs ``d`` seconds to reach the other miners
  and blocks come every ``T`` seconds on average, a competing block is found in that window
  with probability ``1 - exp(-d / T)`` (Decker & Wattenhofer, "Information Propagation in
  the Bitcoin Network", P2P 2013, section V, who measured d around 12.6 s and a fork rate of
  1.69% for T = 600 s). A first-order model: it ignores which side wins and multi-way races.
"""

from __future__ import annotations

import math


def _check_q(q: float) -> None:
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"attacker share must be in [0, 1], got {q}")


def nakamoto_double_spend(q: float, z: int) -> float:
    """Nakamoto (2008), section 11, ``AttackerSuccessProbability``, in Python."""
    _check_q(q)
    p = 1.0 - q
    if q >= p:
        return 1.0
    lam = z * (q / p)
    total = 1.0
    poisson = math.exp(-lam)
    for k in range(z + 1):
        if k > 0:
            poisson *= lam / k
        total -= poisson * (1.0 - (q / p) ** (z - k))
    return min(1.0, max(0.0, total))


def rosenfeld_double_spend(q: float, z: int) -> float:
    """Rosenfeld (2014), exact success probability with one pre-mined block."""
    _check_q(q)
    p = 1.0 - q
    if q >= p:
        return 1.0
    if z == 0:
        return 1.0
    total = 0.0
    for m in range(z + 1):
        total += math.comb(m + z - 1, m) * (p**z * q**m - p**m * q**z)
    return min(1.0, max(0.0, 1.0 - total))


def grunspan_perez_marco_double_spend(q: float, z: int) -> float:
    """Grunspan & Perez-Marco (2018): ``I_{4pq}(z, 1/2)`` (1 when ``q >= 1/2``)."""
    _check_q(q)
    p = 1.0 - q
    if q >= p:
        return 1.0
    if z == 0:
        return 1.0
    x = 4.0 * p * q
    term = 1.0          # C(2k, k) (x/4)^k at k = 0
    total = 0.0
    for k in range(z):
        if k > 0:
            term *= (2 * k) * (2 * k - 1) / (k * k) * (x / 4.0)
        total += term
    return min(1.0, max(0.0, 1.0 - math.sqrt(1.0 - x) * total))


def regularized_incomplete_beta(x: float, a: float, b: float, steps: int = 200_000) -> float:
    """``I_x(a, b)`` by direct numerical integration, for tests: slow, but independent of
    the finite form above. Midpoint rule on ``t^(a-1) (1-t)^(b-1)`` over [0, x], which is
    smooth there for a >= 1 and x < 1."""
    if not 0.0 <= x <= 1.0:
        raise ValueError("x must be in [0, 1]")
    h = 1.0 / steps
    acc = 0.0
    for i in range(steps):
        t = x * (i + 0.5) * h
        acc += t ** (a - 1) * (1.0 - t) ** (b - 1)
    beta = math.exp(math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    return acc * x * h / beta


def eyal_sirer_revenue(alpha: float, gamma: float) -> float:
    """The selfish pool's share of the main-chain blocks, Eyal & Sirer (2014), eq. (8)."""
    if not 0.0 <= alpha <= 0.5 or not 0.0 <= gamma <= 1.0:
        raise ValueError("need 0 <= alpha <= 1/2 and 0 <= gamma <= 1")
    a, g = alpha, gamma
    num = a * (1 - a) ** 2 * (4 * a + g * (1 - 2 * a)) - a**3
    den = 1 - a * (1 + (2 - a) * a)
    return num / den


def selfish_threshold(gamma: float) -> float:
    """Eyal & Sirer, Observation 1: selfish mining beats honest mining when alpha exceeds this."""
    if not 0.0 <= gamma <= 1.0:
        raise ValueError("gamma must be in [0, 1]")
    return (1 - gamma) / (3 - 2 * gamma)


def stale_rate_approx(propagation: float, block_interval: float) -> float:
    """First-order probability that a block is contested: ``1 - exp(-d / T)``."""
    if propagation < 0 or block_interval <= 0:
        raise ValueError("need d >= 0 and T > 0")
    return 1.0 - math.exp(-propagation / block_interval)


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927); 95% by default.

    Unlike the normal approximation it stays inside [0, 1] and is sound for rates near 0
    or 1, which double-spend success rates often are.
    """
    if trials <= 0:
        return (0.0, 1.0)
    phat = successes / trials
    denom = 1 + z * z / trials
    centre = (phat + z * z / (2 * trials)) / denom
    half = z * math.sqrt(phat * (1 - phat) / trials + z * z / (4 * trials * trials)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))
