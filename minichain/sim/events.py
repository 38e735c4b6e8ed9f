"""The simulator's event queue: everything that will happen, in virtual-time order.

One binary heap (``heapq``) of plain tuples ``(time, seq, kind, node, a, b)``; ``seq``
is a counter shared by every kind, so events at the same instant run in the order they
were scheduled (FIFO), and the heap never compares two messages. The three kinds:

    DELIVERY  node = receiver, a = sender (CLIENT for input from outside), b = message
    TIMER     node = the timer's node, a = its name, b = its token (= its seq; the
              simulator keeps the token of each pending timer and skips a stale one)
    CALL      node = -1, a = a function, b = its arguments (faults, workload, probes)

The :class:`~minichain.sim.simulator.Simulation` owns the queue. The network gets only
:class:`Deliveries`, a view that can schedule a message's arrival and nothing else: it
never sees timers or calls, and cannot pop, peek or reorder.

Tuples rather than event objects: the queue is the hot loop of every run, millions of
events in a large one. For the same reason the owner's run loop pops ``heap`` itself
with ``heapq.heappop`` (a C call, no Python frame per event); everything that schedules
goes through the ``push_*`` methods, the one place that knows the tuple's layout.

Two implementations, one behaviour. ``PyEventQueue`` below is the reference, in Python.
``minichain.sim._simcore.EventQueue`` (cython_ext/_simcore.pyx, built with the package)
keeps the heap as an array of C structs, so ordering two events compares two doubles
rather than two tuples, and scheduling one allocates no tuple: the same events, in the
same order, popped as the same tuples. With it the simulator runs its event loop in C
too (``_simcore.run_events``). ``EventQueue`` is the compiled one when it was built, else
the Python one; ``MINICHAIN_SIM_QUEUE=python`` picks the Python one (tests/test_sim_core.py
runs whole scenarios on both and requires the same results).
"""

from __future__ import annotations

import itertools
import os
from heapq import heappop, heappush
from typing import Any, Callable, Hashable

DELIVERY = 0
TIMER = 1
CALL = 2

Event = tuple  # (time, seq, kind, node, a, b)


class Deliveries:
    """The network's handle on the queue: schedule arrivals, nothing else."""

    __slots__ = ("_heap", "_seq")

    def __init__(self, heap: list, seq: Any) -> None:
        self._heap = heap
        self._seq = seq

    def push(self, t: float, dst: int, src: int, msg: Any) -> None:
        """``msg`` from ``src`` arrives at ``dst`` at time ``t``."""
        heappush(self._heap, (t, next(self._seq), DELIVERY, dst, src, msg))

    def push_many(self, times: list[float], dsts: "list[int] | tuple[int, ...]", src: int, msg: Any) -> None:
        """``push(t, dst, src, msg)`` for each ``t, dst`` in ``zip(times, dsts)``, in order:
        one call for a relay to many peers rather than one per peer."""
        heap, seq = self._heap, self._seq
        for t, dst in zip(times, dsts):
            heappush(heap, (t, next(seq), DELIVERY, dst, src, msg))


class PyEventQueue:
    """The simulator's events: push by kind, pop the earliest (ties: first scheduled)."""

    __slots__ = ("heap", "_seq", "deliveries")

    def __init__(self) -> None:
        #: The binary heap itself, in ``heapq`` order. Its owner's run loop reads and pops it
        #: directly; nothing else should touch it.
        self.heap: list[Event] = []
        self._seq = itertools.count(1)
        #: The narrow view handed to the network.
        self.deliveries = Deliveries(self.heap, self._seq)

    def push_delivery(self, t: float, dst: int, src: int, msg: Any) -> None:
        self.deliveries.push(t, dst, src, msg)

    def push_timer(self, t: float, node: int, name: Hashable) -> int:
        """Schedule ``name`` on ``node`` at ``t``; returns the timer's token (unique)."""
        token = next(self._seq)
        heappush(self.heap, (t, token, TIMER, node, name, token))
        return token

    def push_call(self, t: float, fn: Callable, args: tuple) -> None:
        heappush(self.heap, (t, next(self._seq), CALL, -1, fn, args))

    def pop(self) -> Event:
        """Remove and return the earliest event; IndexError if the queue is empty."""
        return heappop(self.heap)

    def peek_time(self) -> float | None:
        """The time of the earliest event, or None if the queue is empty."""
        return self.heap[0][0] if self.heap else None

    def __len__(self) -> int:
        return len(self.heap)


try:
    from minichain.sim._simcore import EventQueue as CompiledEventQueue
except ImportError:          # not built (no C compiler at install): the Python queue does it all
    CompiledEventQueue = None

EventQueue = PyEventQueue if CompiledEventQueue is None or os.environ.get("MINICHAIN_SIM_QUEUE") == "python" \
    else CompiledEventQueue
