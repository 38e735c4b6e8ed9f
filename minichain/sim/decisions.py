"""What nodes decided, and when: the record the safety and liveness metrics are read from.

Every ``Decide(slot, value)`` an engine returns becomes a :class:`Decision` with the
virtual time. From them:

* **conflicts** -- slots at which two honest nodes decided different values (a safety
  violation for BFT/CFT engines; for Nakamoto, two nodes that each saw a different block
  buried k deep at the same height);
* **reversals** -- a node deciding a different value for a slot it had already decided
  (Nakamoto's reorgs of confirmed blocks; never for a correct BFT/CFT engine);
* **finality** -- when the first and the last honest node decided each slot;
* **stalls** -- stretches of virtual time in which no honest node decided anything new.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable


# Not frozen, but treat it as immutable (hence the hash): a frozen dataclass's __init__
# costs one object.__setattr__ per field, and a large Nakamoto run records a million.
@dataclass(slots=True, unsafe_hash=True)
class Decision:
    time: float
    node: int
    slot: int
    value: Any


class DecisionLog:
    def __init__(self, n: int) -> None:
        self.n = n
        self.records: list[Decision] = []
        # Latest value per (node, slot) and time of the node's first decision of the slot.
        self.latest: list[dict[int, Any]] = [{} for _ in range(n)]
        self.first_time: list[dict[int, float]] = [{} for _ in range(n)]
        self.reversal_records: list[tuple[Decision, Any]] = []

    def record(self, time: float, node: int, slot: int, value: Any) -> None:
        latest = self.latest[node]
        if slot in latest:
            previous = latest[slot]
            if previous == value:
                return  # the same decision again: nothing new
            d = Decision(time, node, slot, value)
            self.reversal_records.append((d, previous))
        else:
            d = Decision(time, node, slot, value)
            self.first_time[node][slot] = time
        latest[slot] = value
        self.records.append(d)

    # -- queries ----------------------------------------------------------------------------

    def committed(self, node: int) -> dict[int, Any]:
        """The node's current decision per slot (after any reversals)."""
        return dict(sorted(self.latest[node].items()))

    def slots(self, nodes: Iterable[int]) -> list[int]:
        out: set[int] = set()
        for i in nodes:
            out.update(self.latest[i])
        return sorted(out)

    def conflicts(self, honest: Iterable[int]) -> list[dict]:
        """Slots where honest nodes decided (at any time) more than one distinct value.

        Each conflict lists, per value, the nodes that decided it (sorted, by value repr).
        """
        honest = set(honest)
        per_slot: dict[int, dict[Any, set[int]]] = {}
        for d in self.records:
            if d.node in honest:
                per_slot.setdefault(d.slot, {}).setdefault(d.value, set()).add(d.node)
        out = []
        for slot in sorted(per_slot):
            values = per_slot[slot]
            if len(values) > 1:
                shown = sorted(([_show(v), sorted(ns)] for v, ns in values.items()), key=lambda p: str(p[0]))
                out.append({"slot": slot, "values": shown})
        return out

    def reversals(self, honest: Iterable[int] | None = None) -> list[dict]:
        honest_set = None if honest is None else set(honest)
        return [
            {"time": d.time, "node": d.node, "slot": d.slot, "from": _show(prev), "to": _show(d.value)}
            for d, prev in self.reversal_records
            if honest_set is None or d.node in honest_set
        ]

    def finality(self, honest: Iterable[int]) -> dict[int, tuple[float, float, int]]:
        """Per slot: (first decision time, last first-decision time, how many honest nodes decided)."""
        honest = sorted(honest)
        out: dict[int, list] = {}
        for i in honest:
            for slot, t in self.first_time[i].items():
                entry = out.setdefault(slot, [t, t, 0])
                entry[0] = min(entry[0], t)
                entry[1] = max(entry[1], t)
                entry[2] += 1
        return {s: tuple(out[s]) for s in sorted(out)}  # type: ignore[misc]

    def stalls(self, honest: Iterable[int], start: float, end: float, min_gap: float) -> list[tuple[float, float]]:
        """Intervals within [start, end] longer than ``min_gap`` with no new honest decision."""
        honest = set(honest)
        times = sorted({d.time for d in self.records if d.node in honest and start <= d.time <= end})
        out = []
        prev = start
        for t in times + [end]:
            if t - prev > min_gap:
                out.append((prev, t))
            prev = t
        return out


def _show(value: Any) -> Any:
    """A JSON-friendly form of a decided value."""
    if isinstance(value, bytes):
        return value[::-1].hex() if len(value) == 32 else value.hex()
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return repr(value)
