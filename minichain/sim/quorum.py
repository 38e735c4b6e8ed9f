"""Quorum arithmetic, in one place for every engine (etcd-io/raft's ``quorum/``, Malachite's
vote keeper). Engines ask "won, lost or still pending?" and never recount by hand.

Fault models and their thresholds, for ``n`` replicas of which at most ``f`` are faulty:

* Crash faults (Paxos, Raft, DLS fail-stop): ``n >= 2f + 1``; a quorum is a majority,
  ``n // 2 + 1``, and any two majorities intersect (Lamport, "Paxos Made Simple", 2001;
  Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm", 2014, 5.2).
* Byzantine faults (PBFT, Tendermint, DLS authenticated): ``n >= 3f + 1`` (Lamport,
  Shostak & Pease, "The Byzantine Generals Problem", 1982; Castro & Liskov, "Practical
  Byzantine Fault Tolerance", OSDI 1999, section 3). A quorum is the smallest ``q`` for
  which two quorums share at least ``f + 1`` replicas, so at least one honest one:
  ``2q - n >= f + 1``, i.e. ``q = ceil((n + f + 1) / 2)``; with ``n = 3f + 1`` that is
  ``2f + 1``. ``f + 1`` replicas (a *weak* quorum) contain at least one honest replica.
* Tendermint's "more than two thirds of the voting power" (Buchman, Kwon & Milosevic,
  "The latest gossip on BFT consensus", 2018, section 2) with equal power is
  ``2n // 3 + 1``, which equals ``2f + 1`` when ``n = 3f + 1``; its "f + 1" is "more than
  one third", ``n // 3 + 1``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Generic, Hashable, Iterable, TypeVar


class Outcome(enum.Enum):
    WON = "won"          # the threshold is reached
    LOST = "lost"        # it can no longer be reached, whatever the outstanding voters do
    PENDING = "pending"  # neither yet


# -- thresholds ------------------------------------------------------------------------------


def majority(n: int) -> int:
    """Smallest strict majority of ``n``: ``n // 2 + 1``."""
    _check_n(n)
    return n // 2 + 1


def max_crash_faults(n: int) -> int:
    """Largest ``f`` with ``n >= 2f + 1``."""
    _check_n(n)
    return (n - 1) // 2


def max_byzantine_faults(n: int) -> int:
    """Largest ``f`` with ``n >= 3f + 1``."""
    _check_n(n)
    return (n - 1) // 3


def byzantine_quorum(n: int, f: int | None = None) -> int:
    """Smallest quorum of which any two share an honest replica: ``ceil((n + f + 1) / 2)``.

    ``f`` defaults to the most the system tolerates; ``2f + 1`` when ``n = 3f + 1``.
    """
    if f is None:
        f = max_byzantine_faults(n)
    if f < 0 or 3 * f + 1 > n:
        raise ValueError(f"n={n} replicas cannot tolerate f={f} Byzantine faults (need n >= 3f + 1)")
    return (n + f + 2) // 2


def weak_quorum(f: int) -> int:
    """``f + 1``: enough replicas that at least one is honest."""
    if f < 0:
        raise ValueError("f must be >= 0")
    return f + 1


def two_thirds(n: int) -> int:
    """Tendermint's "+2/3" with equal voting power: the least count greater than 2n/3."""
    _check_n(n)
    return 2 * n // 3 + 1


def one_third(n: int) -> int:
    """Tendermint's "+1/3" (the round-skip rule): the least count greater than n/3."""
    _check_n(n)
    return n // 3 + 1


def outcome(yes: int, no: int, n: int, threshold: int) -> Outcome:
    """Won once ``yes >= threshold``; lost once even every outstanding voter could not get
    it there (``yes + (n - yes - no) < threshold``); pending otherwise."""
    if yes < 0 or no < 0 or yes + no > n:
        raise ValueError(f"impossible tally: {yes} yes + {no} no of {n}")
    if yes >= threshold:
        return Outcome.WON
    if n - no < threshold:
        return Outcome.LOST
    return Outcome.PENDING


# -- a quorum system ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuorumSystem:
    """The thresholds of one configuration: ``QuorumSystem.crash(5)`` or ``QuorumSystem.byzantine(4)``."""

    n: int
    f: int
    threshold: int      # votes needed to win
    weak: int           # f + 1: at least one correct voter among them
    model: str

    @classmethod
    def crash(cls, n: int) -> "QuorumSystem":
        f = max_crash_faults(n)
        return cls(n, f, majority(n), f + 1, "crash")

    @classmethod
    def byzantine(cls, n: int, f: int | None = None) -> "QuorumSystem":
        f = max_byzantine_faults(n) if f is None else f
        return cls(n, f, byzantine_quorum(n, f), f + 1, "byzantine")

    def outcome(self, yes: int, no: int = 0) -> Outcome:
        return outcome(yes, no, self.n, self.threshold)

    def is_quorum(self, voters: Iterable[int]) -> bool:
        return len(set(voters)) >= self.threshold


V = TypeVar("V", bound=Hashable)


class Tally(Generic[V]):
    """Votes of one round/step: at most one counted vote per voter.

    ``add`` returns False for a repeated vote and for a voter's second, different value
    (an *equivocation*, kept in ``equivocations`` as evidence and not counted).
    """

    def __init__(self, quorum: QuorumSystem) -> None:
        self.quorum = quorum
        self.votes: dict[int, V] = {}
        self.counts: dict[V, int] = {}
        self.equivocations: dict[int, list[V]] = {}

    def add(self, voter: int, value: V) -> bool:
        if not 0 <= voter < self.quorum.n:
            raise ValueError(f"voter {voter} is not one of {self.quorum.n} replicas")
        prior = self.votes.get(voter)
        if voter in self.votes:
            if prior != value:
                self.equivocations.setdefault(voter, [prior]).append(value)  # type: ignore[list-item]
            return False
        self.votes[voter] = value
        self.counts[value] = self.counts.get(value, 0) + 1
        return True

    def count(self, value: V) -> int:
        return self.counts.get(value, 0)

    @property
    def voters(self) -> int:
        return len(self.votes)

    def outcome(self, value: V) -> Outcome:
        """Has ``value`` won, lost (too many votes elsewhere) or is it pending?"""
        yes = self.count(value)
        return self.quorum.outcome(yes, self.voters - yes)

    def winner(self) -> V | None:
        """The value with a quorum, if any (at most one when the quorum system is sound)."""
        for value, c in self.counts.items():
            if c >= self.quorum.threshold:
                return value
        return None

    def any_quorum(self) -> bool:
        """A quorum of voters has voted, for whatever values (e.g. Tendermint's "+2/3 prevotes for anything")."""
        return self.voters >= self.quorum.threshold

    def weak_support(self, value: V) -> bool:
        """At least ``f + 1`` votes: some correct replica voted for ``value``."""
        return self.count(value) >= self.quorum.weak


def _check_n(n: int) -> None:
    if n < 1:
        raise ValueError("need at least one replica")
