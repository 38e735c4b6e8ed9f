"""A small linearizability checker: Wing & Gong's search with Lowe's memoisation.

Linearizability (Herlihy & Wing, "Linearizability: A Correctness Condition for
Concurrent Objects", TOPLAS 12(3), 1990): every operation appears to take effect at one
instant between its invocation and its completion, in an order that a sequential
object would accept. Wing & Gong ("Testing and Verifying Concurrent Objects", JPDC 17,
1993) search for such an order by backtracking over the history's call and return
events; Lowe ("Testing for linearizability", Concurrency and Computation 29(4), 2017)
adds a cache of (set of operations linearised, object state) pairs already explored,
which is what makes the search practical. Knossos (Jepsen's checker) is the same idea.

**Locality** (Herlihy & Wing 1990, Theorem 1): a history is linearizable if and only if
its subhistory on each object is. :func:`check` splits the history by ``key`` (for the
payment ledger: by coin) and searches each part alone, so the cost is exponential only
in the number of *concurrent* operations on one object.

Operations completed ``info`` (outcome unknown) may take effect at any time after their
invocation, or never: their return is placed at infinity, and the search succeeds once
every other operation is placed.

Limits, said plainly: the search is exponential in the worst case; ``max_steps`` bounds
the work per object, and an object that exceeds it is reported as *unknown*, not as a
violation. The histories ``testnet workload`` writes have one operation per coin, or two
with ``--conflicts``, so each search is a handful of steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Hashable, Iterable, TypeVar

from minichain.history.records import Operation

S = TypeVar("S", bound=Hashable)


@dataclass(frozen=True)
class Model(Generic[S]):
    """A sequential object: its initial state, and ``step(state, op) -> (legal, state')``
    -- whether ``op``, with the outcome the client saw (``op.type``), can happen in
    ``state``, and the state after it."""

    init: S
    step: Callable[[S, Operation], tuple[bool, S]]


@dataclass
class Result:
    ok: bool
    checked: int = 0                                      # objects searched
    unknown: list[Hashable] = field(default_factory=list)   # objects whose search ran out of steps
    failure: tuple[Hashable, list[Operation]] | None = None    # an object with no linearization, its ops


def check(ops: Iterable[Operation], model: Model, key: Callable[[Operation], Hashable],
          max_steps: int = 100_000) -> Result:
    """Is the history linearizable with respect to ``model``, object by object?"""
    parts: dict[Hashable, list[Operation]] = {}
    for o in ops:
        parts.setdefault(key(o), []).append(o)
    result = Result(ok=True)
    for k in sorted(parts, key=repr):
        result.checked += 1
        verdict = linearizable(parts[k], model, max_steps)
        if verdict is None:
            result.unknown.append(k)
        elif not verdict:
            result.ok = False
            result.failure = (k, parts[k])
            return result
    return result


class _Entry:
    __slots__ = ("op", "call", "time", "match", "prev", "next")

    def __init__(self, op: Operation | None, call: bool, time: float) -> None:
        self.op = op
        self.call = call
        self.time = time
        self.match: _Entry | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def linearizable(ops: list[Operation], model: Model, max_steps: int = 100_000) -> bool | None:
    """Wing & Gong's search for one object; None if it took more than ``max_steps``."""
    events: list[tuple[float, int, int, _Entry]] = []
    for i, o in enumerate(ops):
        call = _Entry(o, True, o.invoke)
        ret = _Entry(o, False, o.complete if o.complete is not None else math.inf)
        call.match, ret.match = ret, call
        # Calls sort before returns at the same instant: one op precedes another only if
        # it completed strictly before the other was invoked.
        events.append((call.time, 0, i, call))
        events.append((ret.time, 1, i, ret))
    events.sort(key=lambda e: e[:3])
    head = _Entry(None, False, -math.inf)
    prev = head
    for _, _, _, entry in events:
        prev.next, entry.prev = entry, prev
        prev = entry
    index = {id(o): i for i, o in enumerate(ops)}
    state = model.init
    linearized = 0
    cache: set[tuple[int, Hashable]] = set()
    stack: list[tuple[_Entry, Any]] = []
    entry = head.next
    steps = 0
    while entry is not None:
        steps += 1
        if steps > max_steps:
            return None
        if entry.call:
            assert entry.op is not None
            legal, after = model.step(state, entry.op)
            bit = 1 << index[id(entry.op)]
            if legal and (linearized | bit, after) not in cache:
                cache.add((linearized | bit, after))
                stack.append((entry, state))
                state, linearized = after, linearized | bit
                _lift(entry)
                entry = head.next
            else:
                entry = entry.next
        else:
            if entry.time == math.inf:
                return True                     # only info operations are left: leave them out
            if not stack:
                return False
            entry, state = stack.pop()
            linearized &= ~(1 << index[id(entry.op)])
            _unlift(entry)
            entry = entry.next
    return True


def _lift(call: _Entry) -> None:
    for e in (call, call.match):
        assert e is not None and e.prev is not None
        e.prev.next = e.next
        if e.next is not None:
            e.next.prev = e.prev


def _unlift(call: _Entry) -> None:
    for e in (call.match, call):
        assert e is not None and e.prev is not None
        e.prev.next = e
        if e.next is not None:
            e.next.prev = e


# -- the payment ledger -------------------------------------------------------------------------


def coin_of(o: Operation) -> Hashable:
    value = o.value if isinstance(o.value, dict) else {}
    return value.get("coin", repr(value))


def _pay(spent: bool, o: Operation) -> tuple[bool, bool]:
    """A coin, spent or not. Paying an unspent coin commits and spends it; paying a
    spent one is rejected and changes nothing. (Who it paid never changes what a later
    operation may return, so the state leaves it out -- and the search's cache is small.)"""
    if o.type == "ok":
        return not spent, True
    if o.type == "fail":
        return spent, spent
    return True, True                                  # info: committed, or rejected: spent either way


COIN = Model(init=False, step=_pay)
