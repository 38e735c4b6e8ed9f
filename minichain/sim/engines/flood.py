"""The simplest engine: flood values and decide the first one heard for each slot.

It exists to exercise the simulator (every action kind, timers, loss, partitions) and as
the baseline of the benchmarks. It is *not* a consensus protocol: with two proposers a
slot can be decided differently by different nodes -- exactly the conflicting commit the
safety metrics are built to catch.

Proposers propose slot ``s`` every ``interval`` seconds of their local clock. A node that
hears a value for a slot it has not decided decides it and, when ``relay`` is on,
forwards it to every other node (or to its ``peers``) -- naive flooding.
"""

from __future__ import annotations

from typing import Hashable

from minichain.sim.engine import Action, Broadcast, Decide, Engine, NodeContext, Send, SetTimer


class Value:
    """A proposed value for one slot."""

    __slots__ = ("slot", "value", "size")

    def __init__(self, slot: int, value: str, size: int = 0) -> None:
        self.slot = slot
        self.value = value
        self.size = size

    def __repr__(self) -> str:
        return f"Value({self.slot}, {self.value!r})"


class Flood(Engine):
    def __init__(
        self,
        ctx: NodeContext,
        *,
        proposers: frozenset[int] = frozenset({0}),
        interval: float = 1.0,
        slots: int = 10,
        relay: bool = True,
        peers: list[int] | None = None,
        size: int = 0,
    ) -> None:
        super().__init__(ctx)
        self.proposers = proposers
        self.interval = interval
        self.slots = slots
        self.relay = relay
        self.peers = peers
        self.size = size
        self.decided: dict[int, str] = {}

    def _spread(self, msg: Value, exclude: int | None = None) -> list[Action]:
        if self.peers is None:
            return [Broadcast(msg)] if exclude is None else [Send(d, msg) for d in self.ctx.others if d != exclude]
        return [Send(p, msg) for p in self.peers if p != exclude]

    def on_start(self) -> list[Action]:
        if self.id in self.proposers and self.slots > 0:
            return [SetTimer(("propose", 0), self.interval)]
        return []

    def on_timer(self, name: Hashable) -> list[Action]:
        _, slot = name  # type: ignore[misc]
        actions: list[Action] = []
        if slot not in self.decided:
            value = f"{self.id}:{slot}"
            self.decided[slot] = value
            actions.append(Decide(slot, value))
            actions.extend(self._spread(Value(slot, value, self.size)))
        if slot + 1 < self.slots:
            actions.append(SetTimer(("propose", slot + 1), self.interval))
        return actions

    def on_message(self, src: int, msg: Value) -> list[Action]:
        if msg.slot in self.decided:
            return []
        self.decided[msg.slot] = msg.value
        actions: list[Action] = [Decide(msg.slot, msg.value)]
        if self.relay:
            actions.extend(self._spread(msg, exclude=src))
        return actions
