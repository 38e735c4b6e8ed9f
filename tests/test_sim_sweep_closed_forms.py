"""The shipped sweeps reproduce the published results, within the intervals they report.

The acceptance of issue 17, checked against formulas written here (not the ones in
``sim/analytic.py``):

* ``docs/sweeps/selfish-mining.toml``, alpha 0.05..0.45 x gamma {0, 1/2, 1}: Eyal and
  Sirer's revenue (FC 2014, eq. 8) inside the 95% intervals, and the measured
  profitability frontier brackets their thresholds 1/3, 1/4 and 0;
* ``docs/sweeps/double-spend.toml``, q x z: Rosenfeld's exact probability (2014) inside
  the intervals, and Nakamoto's Poisson estimate (2008, section 11) below them where it
  underestimates the attacker.

The runs are seeded, so each check has one fixed outcome; the tolerances say what
independent 95% intervals promise: about one point in twenty outside (we allow as many
misses as a binomial count exceeds less than 1% of the time), none far outside.
"""

import math
import os

import pytest

from minichain.sim import sweep

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "sweeps")


def eyal_sirer(a, g):
    # Eyal & Sirer, "Majority is not Enough" (2014), eq. (8).
    return (a * (1 - a) ** 2 * (4 * a + g * (1 - 2 * a)) - a ** 3) / (1 - a * (1 + (2 - a) * a))


def threshold(g):
    # Their Observation 1: selfish mining pays when alpha > (1 - gamma) / (3 - 2 gamma).
    return (1 - g) / (3 - 2 * g)


def rosenfeld(q, z):
    # Rosenfeld (2014): 1 - sum_{m=0..z} C(m+z-1, m) (p^z q^m - p^m q^z), one block pre-mined.
    p = 1 - q
    if z == 0:
        return 1.0
    return 1 - sum(math.comb(m + z - 1, m) * (p ** z * q ** m - p ** m * q ** z) for m in range(z + 1))


def nakamoto(q, z):
    # Nakamoto (2008), section 11, AttackerSuccessProbability.
    p = 1 - q
    lam = z * q / p
    return 1 - sum(math.exp(-lam) * lam ** k / math.factorial(k) * (1 - (q / p) ** (z - k)) for k in range(z + 1))


@pytest.fixture(scope="module")
def selfish():
    return sweep.sweep(sweep.load(os.path.join(DOCS, "selfish-mining.toml")), workers=2)


@pytest.fixture(scope="module")
def double_spend():
    return sweep.sweep(sweep.load(os.path.join(DOCS, "double-spend.toml")), workers=2)


def test_the_selfish_mining_spec_is_the_grid_of_the_issue(selfish):
    spec = selfish.spec
    assert spec.values("alpha") == (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45)
    assert spec.values("gamma") == (0.0, 0.5, 1.0)
    assert len(selfish.aggregate) == 27 and all(a["seeds"] == len(spec.seeds) >= 5 for a in selfish.aggregate)


def allowed_misses(points):
    """The smallest k with P(more than k of ``points`` independent 95% intervals miss) < 1%."""
    k, tail = 0, 1.0
    while True:
        tail -= math.comb(points, k) * 0.05 ** k * 0.95 ** (points - k)
        if tail < 0.01:
            return k
        k += 1


def distance(mean, lo, hi, exact):
    """How far ``exact`` lies outside [lo, hi], in lengths of the interval's side facing it."""
    if exact > hi:
        return (exact - mean) / (hi - mean)
    if exact < lo:
        return (mean - exact) / (mean - lo)
    return 0.0


def test_eyal_sirer_revenue_is_inside_the_reported_interval(selfish):
    misses = []
    for a in selfish.aggregate:
        formula = eyal_sirer(a["alpha"], a["gamma"])
        lo, hi = a["revenue_ci_lo"], a["revenue_ci_hi"]
        assert lo < a["revenue_mean"] < hi
        if not lo <= formula <= hi:
            misses.append(a["point"])
        assert distance(a["revenue_mean"], lo, hi, formula) < 2.0, a
    assert len(misses) <= allowed_misses(len(selfish.aggregate)), misses


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0])
def test_the_measured_profitability_frontier_brackets_the_threshold(selfish, gamma):
    rows = sorted((a for a in selfish.aggregate if a["gamma"] == gamma), key=lambda a: a["alpha"])
    pays = [a["alpha"] for a in rows if a["revenue_minus_alpha_ci_lo"] > 0]       # surely profitable
    loses = [a["alpha"] for a in rows if a["revenue_minus_alpha_ci_hi"] < 0]      # surely not
    assert pays, "selfish mining never measurably paid"
    # Every point surely losing lies below every point surely paying, the threshold between.
    # (For gamma = 1 the threshold is 0: nothing loses, and the smallest alpha already pays.)
    assert max(loses, default=-1.0) < threshold(gamma) < min(pays)
    # and the frontier is pinned to within one step of the grid either side of it.
    assert min(pays) - max(loses, default=0.0) <= 0.1 + 1e-9
    undecided = [a["alpha"] for a in rows if a["alpha"] not in pays and a["alpha"] not in loses]
    assert all(abs(x - threshold(gamma)) < 0.05 for x in undecided), undecided


def test_the_thresholds_are_a_third_a_quarter_and_zero():
    assert (threshold(0), threshold(0.5), threshold(1)) == (1 / 3, 1 / 4, 0)


def test_rosenfeld_is_inside_the_reported_interval_over_q_and_z(double_spend):
    spec = double_spend.spec
    assert len(spec.values("q")) >= 4 and spec.values("z") == tuple(range(11))
    misses = []
    for a in double_spend.aggregate:
        exact = rosenfeld(a["q"], a["z"])
        lo, hi = a["rate_ci_lo"], a["rate_ci_hi"]
        assert lo <= a["rate_mean"] <= hi
        if not lo <= exact <= hi:
            misses.append((a["q"], a["z"]))
        assert distance(a["rate_mean"], lo, hi, exact) < 2.0, a
        # no wider than a 95% interval on all the seeds' trials pooled can be
        assert hi - lo <= 2 * 1.96 * math.sqrt(0.25 / (a["trials"] * a["seeds"])) + 1e-3
    assert len(misses) <= allowed_misses(len(double_spend.aggregate)), misses


def test_where_the_race_rejects_nakamotos_estimate_it_errs_the_way_rosenfeld_says(double_spend):
    rejected = 0
    for a in double_spend.aggregate:
        q, z = a["q"], a["z"]
        estimate = nakamoto(q, z)
        if a["rate_ci_lo"] <= estimate <= a["rate_ci_hi"]:
            continue
        rejected += 1
        # below the interval exactly where it is below the exact value, above where above
        assert (estimate < a["rate_ci_lo"]) == (estimate < rosenfeld(q, z)), a
    assert rejected >= 15
