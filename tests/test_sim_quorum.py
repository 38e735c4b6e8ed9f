"""Quorum arithmetic shared by the engines: thresholds, intersection, won/lost/pending."""

import itertools

import pytest
from hypothesis import given, strategies as st

from minichain.sim.quorum import (
    Outcome, QuorumSystem, Tally, byzantine_quorum, majority, max_byzantine_faults, max_crash_faults,
    one_third, outcome, two_thirds, weak_quorum,
)


def test_classic_sizes():
    assert [majority(n) for n in (1, 2, 3, 4, 5)] == [1, 2, 2, 3, 3]
    assert [max_crash_faults(n) for n in (1, 3, 5, 6)] == [0, 1, 2, 2]
    assert [max_byzantine_faults(n) for n in (1, 3, 4, 7, 10)] == [0, 0, 1, 2, 3]
    # n = 3f + 1 gives 2f + 1 (Castro & Liskov 1999, section 3).
    for f in range(0, 12):
        assert byzantine_quorum(3 * f + 1) == 2 * f + 1
        assert two_thirds(3 * f + 1) == 2 * f + 1
        assert one_third(3 * f + 1) == f + 1
    assert weak_quorum(2) == 3


def test_byzantine_quorum_refuses_too_many_faults():
    with pytest.raises(ValueError):
        byzantine_quorum(6, 2)


@given(n=st.integers(1, 40))
def test_any_two_byzantine_quorums_share_an_honest_replica(n):
    f = max_byzantine_faults(n)
    q = byzantine_quorum(n, f)
    assert 2 * q - n >= f + 1          # intersection holds at least f + 1 replicas
    assert q <= n - f                  # and a quorum is reachable with f silent replicas
    # q is the least such size
    assert 2 * (q - 1) - n < f + 1


@given(n=st.integers(1, 40))
def test_any_two_majorities_intersect_and_survive_f_crashes(n):
    q = majority(n)
    assert 2 * q > n
    assert q <= n - max_crash_faults(n)


def test_majority_intersection_exhaustively_for_small_n():
    for n in range(1, 7):
        q = majority(n)
        for a, b in itertools.product(itertools.combinations(range(n), q), repeat=2):
            assert set(a) & set(b)


@given(n=st.integers(1, 30), data=st.data())
def test_outcome_won_lost_pending(n, data):
    threshold = data.draw(st.integers(1, n))
    yes = data.draw(st.integers(0, n))
    no = data.draw(st.integers(0, n - yes))
    got = outcome(yes, no, n, threshold)
    if yes >= threshold:
        assert got is Outcome.WON
    elif yes + (n - yes - no) < threshold:
        assert got is Outcome.LOST
    else:
        assert got is Outcome.PENDING


def test_tally_counts_one_vote_per_voter_and_keeps_equivocation_evidence():
    q = QuorumSystem.byzantine(4)
    assert (q.f, q.threshold, q.weak) == (1, 3, 2)
    t = Tally(q)
    assert t.add(0, "a") and t.add(1, "a")
    assert not t.add(1, "a")            # repeated
    assert not t.add(1, "b")            # equivocation: not counted
    assert t.equivocations == {1: ["a", "b"]}
    assert t.count("a") == 2 and t.count("b") == 0
    assert t.outcome("a") is Outcome.PENDING and t.weak_support("a")
    assert t.add(2, "b")
    assert t.outcome("b") is Outcome.LOST   # 1 yes + 1 outstanding < 3
    assert t.any_quorum() and t.winner() is None
    assert t.add(3, "a")
    assert t.outcome("a") is Outcome.WON and t.winner() == "a"
    with pytest.raises(ValueError):
        t.add(4, "a")


def test_crash_quorum_system():
    q = QuorumSystem.crash(5)
    assert (q.f, q.threshold) == (2, 3)
    assert q.outcome(3) is Outcome.WON
    assert q.outcome(2, 3) is Outcome.LOST
    assert q.is_quorum([0, 1, 1, 4])
