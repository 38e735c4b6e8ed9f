"""What a Byzantine replica knows about its accomplices, and how an equivocator uses it.

The Byzantine fault model lets the faulty processes act in concert, as if one adversary
controlled them all (Lamport, Shostak & Pease, "The Byzantine Generals Problem", 1982:
the n >= 3m + 1 bound holds against traitors that coordinate). So a Byzantine replica may
know who the other Byzantine replicas are. The scenario harness (``sim/scenarios/replicated.py``) tells it:
for an engine whose :class:`~minichain.sim.engines.EngineSpec` sets ``coalition=True``, a
Byzantine replica is built with ``build(ctx, behaviour, coalition=ids)``, where ``ids``
is the frozenset of every Byzantine replica's id (its own included).

An equivocator wants the two values of its double spend to reach *honest* replicas on
both sides. Splitting "everyone else" in two halves by id does not do that: with two
equivocators among four replicas, the lowest ids, each one's first half is its
accomplice and both honest replicas land in the second half, receive the same value, and
nothing conflicts. :func:`split_honest` leaves the coalition out and deals the honest
replicas to the two sides alternately, so both sides get an honest replica whenever there
are two. An equivocator that was told no coalition (an engine built by hand in a test)
deals every other replica alternately: that still puts honest replicas on both sides
when its accomplices have consecutive ids (the harness's lowest ids), but not in general.
"""

from __future__ import annotations

from typing import AbstractSet, Sequence

NO_COALITION: frozenset[int] = frozenset()


def split_honest(others: Sequence[int], coalition: AbstractSet[int] = NO_COALITION) -> tuple[list[int], list[int]]:
    """The replicas of ``others`` outside ``coalition``, dealt alternately to two sides.

    >>> split_honest([1, 2, 3], frozenset({0, 1}))
    ([2], [3])
    >>> split_honest([0, 2, 3, 4])
    ([0, 3], [2, 4])
    """
    honest = [p for p in others if p not in coalition]
    return honest[0::2], honest[1::2]
