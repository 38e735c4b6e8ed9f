"""The discrete-event simulator: a virtual clock, a queue of events, one seeded RNG.

Time is virtual: the clock jumps straight to the next event, so a day of network life
costs only the events in it (Trio's MockClock, SimPy). Events at the same instant run in
the order they were scheduled (a sequence number breaks ties), and every random draw
comes from ``random.Random(seed)`` -- or from per-node streams seeded from it at setup --
so the same seed gives the same run, byte for byte.

    sim = Simulation(4, lambda ctx: MyEngine(ctx), seed=7, network=Network(latency=0.05))
    sim.at(10.0, sim.net.partition, [[0, 1], [2, 3]])
    sim.at(30.0, sim.net.heal)
    sim.at(12.0, sim.crash, 3)
    sim.run(until=60.0)
    print(sim.result().to_json())          # carries the seed

The simulator is the engines' IO shell: it starts them, delivers their messages through
the :class:`~minichain.sim.network.Network`, fires their timers on each node's local
clock, and records their decisions in a :class:`~minichain.sim.decisions.DecisionLog`.
It owns the :class:`~minichain.sim.events.EventQueue`; the network only schedules
arrivals on it (through its ``deliveries`` view), and the simulator counts what it
delivers in the network's :class:`~minichain.sim.network.NetworkStats`. With the
compiled queue (the default when pip built ``minichain.sim._simcore``) the event loop
runs in C, statement for statement the Python ``_run_events`` below.
"""

from __future__ import annotations

import functools
import gc
import heapq
import operator
import json
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable

from minichain.sim.decisions import DecisionLog
from minichain.sim.engine import CLIENT, Broadcast, CancelTimer, Decide, Engine, EngineFactory, NodeContext, Send, SetTimer
from minichain.sim.events import DELIVERY, TIMER, CompiledEventQueue, EventQueue
from minichain.sim.network import Network

if CompiledEventQueue is not None:            # built with the package (cython_ext/_simcore.pyx)
    from minichain.sim._simcore import run_events as run_events_compiled


class Simulation:
    """One run: ``n`` nodes, each with an engine, on one network, from one seed."""

    def __init__(
        self,
        n: int,
        engine_factory: EngineFactory,
        *,
        seed: int,
        network: Network | None = None,
    ) -> None:
        if n < 1:
            raise ValueError("a simulation needs at least one node")
        self.n = n
        self.seed = seed
        self.rng = random.Random(seed)
        self.now = 0.0
        self.events = 0
        self._queue = EventQueue()
        self._started = False
        self._stopped = False
        self.net = network if network is not None else Network()
        self.net.attach(n, self.rng, self._queue.deliveries, lambda: self.now)
        self.crashed = [False] * n
        self.crash_log: list[tuple[float, str, int]] = []
        self._clock_offset = [0.0] * n
        self._clock_drift = [0.0] * n
        self._timers: list[dict[Hashable, int]] = [{} for _ in range(n)]
        self.timers_fired = 0
        self.decisions = DecisionLog(n)
        # Each node's own random stream, seeded from the run's generator in node order.
        # Every node reads the virtual clock itself until its clock is skewed (set_clock):
        # ``sim.now`` through C-level callables, no Python frame per reading.
        virtual_time = functools.partial(operator.attrgetter("now"), self)
        self.contexts = [NodeContext(i, n, random.Random(self.rng.getrandbits(64)), virtual_time)
                         for i in range(n)]
        self.engines: list[Engine] = [engine_factory(ctx) for ctx in self.contexts]

    # -- clocks ------------------------------------------------------------------------------

    def set_clock(self, node: int, offset: float = 0.0, drift: float = 0.0) -> None:
        """Skew one node's clock: local = offset + (1 + drift) * virtual time.

        Timers run on the local clock, so a node with drift +0.1 fires a 1 s timer after
        0.909 s of virtual time.
        """
        if drift <= -1.0:
            raise ValueError("drift must be > -1 (a clock cannot stop or run backwards)")
        self._clock_offset[node] = offset
        self._clock_drift[node] = drift
        self.contexts[node].clock = functools.partial(self.local_time, node)

    def local_time(self, node: int) -> float:
        return self._clock_offset[node] + (1.0 + self._clock_drift[node]) * self.now

    # -- scheduling --------------------------------------------------------------------------

    def at(self, time: float, fn: Callable, *args: Any) -> None:
        """Call ``fn(*args)`` at virtual time ``time`` (faults, workload, probes)."""
        if time < self.now:
            raise ValueError(f"cannot schedule at {time} < now {self.now}")
        self._queue.push_call(time, fn, args)

    def after(self, delay: float, fn: Callable, *args: Any) -> None:
        self.at(self.now + delay, fn, *args)

    def submit(self, node: int, msg: Any, src: int = -1) -> None:
        """Hand ``msg`` to ``node`` now, from outside the network (a client, src=-1).

        Workloads use it, e.g. ``sim.at(t, sim.submit, leader, ClientRequest(v))``. It is
        not network traffic: never lost or counted. A crashed node does not get it.
        """
        if not self.crashed[node]:
            self._apply(node, self.engines[node].on_message(src, msg))

    def inject(self, node: int, msg: Any, at: float | None = None) -> None:
        """Deliver ``msg`` to ``node`` from outside the protocol (``src`` = ``CLIENT``), now or
        at time ``at``: client requests, payments. Not network traffic: never lost or counted."""
        t = self.now if at is None else at
        if t < self.now:
            raise ValueError(f"cannot inject at {t} < now {self.now}")
        self._queue.push_delivery(t, node, CLIENT, msg)

    def stop(self) -> None:
        """End ``run`` after the current event."""
        self._stopped = True

    # -- faults on nodes ---------------------------------------------------------------------

    def crash(self, node: int) -> None:
        """Stop ``node``: no handlers run, its timers are dropped, messages to it are lost."""
        if self.crashed[node]:
            return
        self.crashed[node] = True
        self._timers[node].clear()
        self.crash_log.append((self.now, "crash", node))

    def recover(self, node: int) -> None:
        """Restart ``node``: ``on_recover()`` runs now (its state is what the engine kept)."""
        if not self.crashed[node]:
            return
        self.crashed[node] = False
        self.crash_log.append((self.now, "recover", node))
        self._apply(node, self.engines[node].on_recover())

    @property
    def honest(self) -> list[int]:
        """Nodes whose engine is honest (Byzantine engines set ``honest = False``)."""
        return [i for i, e in enumerate(self.engines) if getattr(e, "honest", True)]

    # -- running -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        for i, engine in enumerate(self.engines):
            if not self.crashed[i]:
                self._apply(i, engine.on_start())

    def run(self, until: float | None = None, *, max_events: int | None = None,
            stop_when: Callable[["Simulation"], bool] | None = None) -> "Simulation":
        """Process events in time order until the queue is empty, the next event is after
        ``until`` (the clock then stands at ``until``), ``max_events`` have run, ``stop()``
        was called or ``stop_when(sim)`` is true after an event."""
        # A run allocates millions of long-lived objects (queued events, block-tree entries);
        # with CPython's default collector thresholds the full collections that rescan
        # them cost about as much as the simulation itself (measured: 1.8x on 1,000 Nakamoto
        # nodes). Collect less often while running; the previous thresholds come back after.
        thresholds = gc.get_threshold()
        gc.set_threshold(100_000, 50, 1_000)
        try:
            return self._run(until, max_events, stop_when)
        finally:
            gc.set_threshold(*thresholds)

    def _run(self, until: float | None, max_events: int | None,
             stop_when: Callable[["Simulation"], bool] | None) -> "Simulation":
        self.start()
        self._stopped = False
        queue = self._queue
        if queue.__class__ is CompiledEventQueue:
            run_events_compiled(self, queue, until, max_events, stop_when)
        else:
            self._run_events(until, max_events, stop_when)
        if until is not None and not self._stopped and self.now < until and (not queue or queue.peek_time() > until):
            self.now = until
        return self

    def _run_events(self, until: float | None, max_events: int | None,
                    stop_when: Callable[["Simulation"], bool] | None) -> None:
        """The event loop: pop events in order until the queue is empty, the next event is
        after ``until``, ``max_events`` have run, ``stop()`` was called or ``stop_when(self)``
        is true after an event. (With the compiled queue, ``_simcore.run_events`` runs this
        very loop in C, statement for statement.)"""
        heap = self._queue.heap                  # popped here directly: a C call per event
        pop = heapq.heappop
        engines = self.engines
        crashed = self.crashed
        counters = self.net.counters
        timers = self._timers
        delivered = counters.delivered_by_cls
        budget = max_events
        limited = until is not None or budget is not None
        DELIVERY_, TIMER_ = DELIVERY, TIMER      # locals: the loop compares every event's kind
        # ``events`` and ``counters.delivered`` are counted in locals (an attribute write per
        # event is measurable) and written back before anything outside the loop can look:
        # a scheduled call, ``stop_when``, and the end of the run.
        events = self.events
        ndelivered = counters.delivered
        try:
            # ``while True`` and not ``while heap``: CPython 3.11 specialises a function's
            # bytecode once it has warmed up, counting calls and *unconditional* backward
            # jumps; a ``while heap:`` loop ends in a conditional one, so this loop -- one
            # call for a whole run -- ran unspecialised (measured: 6-10% more instructions).
            while True:
                if not heap:
                    break
                if limited:
                    if until is not None and heap[0][0] > until:
                        break
                    if budget is not None:
                        if budget <= 0:
                            break
                        budget -= 1
                t, seq, kind, node, a, b = pop(heap)
                self.now = t
                events += 1
                if kind == DELIVERY_:
                    if a != node and a >= 0:             # network traffic (the bulk of a run)
                        if crashed[node]:
                            counters.crashed += 1
                        else:
                            ndelivered += 1
                            cls = b.__class__
                            delivered[cls] = delivered.get(cls, 0) + 1
                            actions = engines[node].on_message(a, b)
                            if actions:
                                self._apply(node, actions)
                    elif not crashed[node]:              # a copy to self, or client input
                        self._apply(node, engines[node].on_message(a, b))
                elif kind == TIMER_:
                    pending = timers[node]
                    if pending.get(a) != b:
                        continue                         # cancelled, replaced, or node crashed
                    del pending[a]
                    self.timers_fired += 1
                    actions = engines[node].on_timer(a)
                    if actions:
                        self._apply(node, actions)
                else:                                    # CALL
                    self.events = events
                    counters.delivered = ndelivered
                    a(*b)
                    ndelivered = counters.delivered
                if self._stopped:
                    break
                if stop_when is not None:
                    self.events = events
                    counters.delivered = ndelivered
                    if stop_when(self):
                        break
        finally:
            self.events = events
            counters.delivered = ndelivered

    def _apply(self, node: int, actions: Iterable) -> None:
        now = self.now
        net = self.net
        if actions.__class__ is list and len(actions) == 1:   # one Send (an answer): the usual case
            act = actions[0]
            if act.__class__ is Send and act.dst != node:
                net.transmit(now, node, act.dst, act.msg)
                return
        # Consecutive Sends of one message to other nodes (a gossip relay) go to the network
        # as one batch: the same messages, counts and draws in the same order, counted once.
        batch: list[int] = []
        batch_msg: Any = None
        for act in actions:
            cls = act.__class__
            if cls is Send:
                dst = act.dst
                if dst != node:
                    msg = act.msg
                    if msg is not batch_msg:
                        if batch:
                            self._flush(node, batch, batch_msg, now)
                            batch = []
                        batch_msg = msg
                    batch.append(dst)
                    continue
            if batch:                            # keep every other action in its place
                self._flush(node, batch, batch_msg, now)
                batch = []
                batch_msg = None
            if cls is Send:
                self._send(node, node, act.msg, now)
            elif cls is Broadcast:
                msg = act.msg
                dsts = list(range(self.n))
                del dsts[node]
                if dsts:
                    net.transmit_many(now, node, dsts, msg)
                if act.include_self:
                    self._send(node, node, msg, now)
            elif cls is SetTimer:
                delay = act.delay / (1.0 + self._clock_drift[node])
                self._timers[node][act.name] = self._queue.push_timer(now + delay, node, act.name)
            elif cls is CancelTimer:
                self._timers[node].pop(act.name, None)
            elif cls is Decide:
                self.decisions.record(now, node, act.slot, act.value)
            else:
                raise TypeError(f"node {node} returned {act!r}, which is not an action")
        if batch:
            self._flush(node, batch, batch_msg, now)

    def _flush(self, node: int, dsts: list[int], msg: Any, now: float) -> None:
        if len(dsts) == 1:
            self.net.transmit(now, node, dsts[0], msg)
        else:
            self.net.transmit_many(now, node, dsts, msg)

    def _send(self, src: int, dst: int, msg: Any, now: float) -> None:
        if dst == src:
            self.net.counters.self_delivered += 1
            self._queue.push_delivery(now, dst, src, msg)
            return
        self.net.transmit(now, src, dst, msg)

    # -- results ---------------------------------------------------------------------------

    def result(self, **extra: Any) -> "SimResult":
        honest = self.honest
        log = self.decisions
        finality = log.finality(honest)
        decided_slots = len(finality)
        return SimResult(
            seed=self.seed,
            n=self.n,
            time=self.now,
            events=self.events,
            messages=self.net.stats(),
            network=self.net.describe(),
            faults=[[t, what, detail] for t, what, detail in self.net.log]
            + [[t, what, node] for t, what, node in self.crash_log],
            honest=honest,
            decided_slots=decided_slots,
            decisions_per_node=[len(log.latest[i]) for i in range(self.n)],
            conflicts=log.conflicts(honest),
            reversals=log.reversals(honest),
            messages_per_decision=(self.net.counters.sent / decided_slots) if decided_slots else None,
            finality={s: list(v) for s, v in finality.items()},
            extra=extra,
        )


@dataclass
class SimResult:
    """The record of one run, JSON-ready. The seed is always in it."""

    seed: int
    n: int
    time: float
    events: int
    messages: dict
    network: dict
    faults: list
    honest: list[int]
    decided_slots: int
    decisions_per_node: list[int]
    conflicts: list[dict]
    reversals: list[dict]
    messages_per_decision: float | None
    finality: dict[int, list]
    extra: dict = field(default_factory=dict)

    @property
    def safe(self) -> bool:
        return not self.conflicts

    def to_dict(self) -> dict:
        return {
            "seed": self.seed,
            "n": self.n,
            "time": self.time,
            "events": self.events,
            "messages": self.messages,
            "network": self.network,
            "faults": sorted(self.faults, key=lambda f: f[0]),
            "honest": self.honest,
            "decided_slots": self.decided_slots,
            "decisions_per_node": self.decisions_per_node,
            "conflicts": self.conflicts,
            "reversals": self.reversals,
            "messages_per_decision": self.messages_per_decision,
            "finality": {str(k): v for k, v in self.finality.items()},
            **self.extra,
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=_json_default, **kwargs)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serializable: {value!r}")
