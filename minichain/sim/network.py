"""The network model: latency, bandwidth and the faults a message can meet.

Every pair of nodes can talk (a full mesh of directed links); protocols that gossip over
a sparser peer graph simply send to their peers only. A message from ``a`` to ``b`` sent
at virtual time ``t``:

1. is counted as sent (per message type, and its ``size`` in bytes if it has one);
2. is dropped if the link a->b is blocked *at send time* (``partition``, ``isolate``,
   ``cut``) -- messages already in flight when a partition starts still arrive;
3. is dropped with the link's loss probability;
4. otherwise waits for the sender's uplink if a bandwidth is set (``size / bandwidth``
   seconds each, one message after another), then travels for a latency drawn from the
   link's distribution, plus any extra delay in force, plus -- before GST -- the
   asynchrony delay (capped so that it arrives by GST + its ordinary latency: the
   "eventually synchronous" model of Dwork, Lynch and Stockmeyer 1988, section 2);
5. with the duplication probability, a second copy travels with its own latency;
6. on a FIFO network (the default), it is never delivered before an earlier message on
   the same link; with ``fifo=False`` independent latencies reorder messages freely;
7. at delivery, it is dropped if the receiver is crashed (counted as such).

All randomness comes from the run's one seeded generator, in event order, so a run is
reproducible byte for byte. Fault methods take effect when called; the simulator's
``at(time, ...)`` schedules them (``sim.at(50, sim.net.partition, [[0, 1], [2, 3]])``),
and each is written to ``log`` with its virtual time.

Counters (``counters``, a :class:`NetworkStats`; ``stats()`` is its dictionary): ``sent`` +
``duplicated`` = ``delivered`` + ``lost`` + ``partitioned`` + ``crashed`` + ``in_flight`` at
every instant. The network counts what happens when a message is sent; the simulator, which
delivers it, counts its delivery (or its drop at a crashed receiver) in the same object.

The network schedules arrivals through the narrow :class:`~minichain.sim.events.Deliveries`
view of the simulator's event queue, handed over by ``attach``: it never sees timers or
calls.
"""

from __future__ import annotations

import functools
import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol

if TYPE_CHECKING:
    from minichain.sim.events import Deliveries


# -- latency distributions -------------------------------------------------------------


class Latency(Protocol):
    def sample(self, rng: random.Random) -> float: ...
    def describe(self) -> dict: ...

    # Optional: ``sample_many(rng, k)``, the same as ``[sample(rng) for _ in range(k)]`` --
    # the same numbers from the same draws -- only faster. The network uses it when a node
    # sends one message to several peers (gossip relays, broadcasts).


# Inline copies of ``random.Random.gauss`` and ``expovariate`` for the batch paths below:
# a Python-level call per draw costs more than the arithmetic. They must give exactly the
# numbers the library gives (the same seed must give the same run whichever path a message
# takes); ``_inline_draws_match()`` checks that at import, and the network falls back to the
# library calls if a Python version ever computes them differently.
_TWOPI = 2.0 * math.pi
_log, _exp, _sqrt, _cos, _sin = math.log, math.exp, math.sqrt, math.cos, math.sin


def _lognormal_fifo_times(rng: random.Random, now: float, dsts: "list[int] | tuple[int, ...]",
                          latency: "LogNormal", last_arrival: dict[int, float]) -> list[float]:
    """When a message sent at ``now`` reaches each of ``dsts`` on a plain FIFO log-normal
    network, with the latency drawn inline: the hot loop of a large gossip run (one call
    per relay, or per message to one peer)."""
    # latency.sample(rng) is base + median * exp(sigma * rng.gauss(0.0, 1.0)), and gauss()
    # returns 0.0 + z * 1.0, which is z itself (or +0.0 for -0.0: the same after exp).
    base, median, sigma = latency.base, latency.median, latency.sigma
    rand = rng.random
    z = rng.gauss_next
    get = last_arrival.get
    times = []
    for dst in dsts:
        if z is None:
            x2pi = rand() * _TWOPI
            g2rad = _sqrt(-2.0 * _log(1.0 - rand()))
            t = now + (base + median * _exp(sigma * (_cos(x2pi) * g2rad)))
            z = _sin(x2pi) * g2rad
        else:
            t = now + (base + median * _exp(sigma * z))
            z = None
        last = get(dst, 0.0)
        if t < last:
            t = last
        last_arrival[dst] = t
        times.append(t)
    rng.gauss_next = z
    return times


def _exponential_many(rng: random.Random, k: int, base: float, lambd: float) -> list[float]:
    # base + rng.expovariate(lambd), k times.
    rand = rng.random
    return [base + (-_log(1.0 - rand()) / lambd) for _ in range(k)]


@dataclass(frozen=True, slots=True)
class Fixed:
    """Always ``delay`` seconds."""

    delay: float

    def sample(self, rng: random.Random) -> float:
        return self.delay

    def sample_many(self, rng: random.Random, k: int) -> list[float]:
        return [self.delay] * k

    @property
    def mean(self) -> float:
        return self.delay

    def describe(self) -> dict:
        return {"dist": "fixed", "delay": self.delay}


@dataclass(frozen=True, slots=True)
class Uniform:
    """Uniform on [low, high]."""

    low: float
    high: float

    def sample(self, rng: random.Random) -> float:
        return self.low + (self.high - self.low) * rng.random()

    def sample_many(self, rng: random.Random, k: int) -> list[float]:
        low, span, rand = self.low, self.high - self.low, rng.random
        return [low + span * rand() for _ in range(k)]

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    def describe(self) -> dict:
        return {"dist": "uniform", "low": self.low, "high": self.high}


@dataclass(frozen=True, slots=True)
class Exponential:
    """``base`` plus an exponential with mean ``mean - base`` (a propagation floor and queueing)."""

    mean: float
    base: float = 0.0

    def sample(self, rng: random.Random) -> float:
        extra = self.mean - self.base
        return self.base + (rng.expovariate(1.0 / extra) if extra > 0 else 0.0)

    def sample_many(self, rng: random.Random, k: int) -> list[float]:
        extra = self.mean - self.base
        if extra <= 0:
            return [self.base + 0.0] * k
        if _INLINE_DRAWS and type(rng) is random.Random:
            return _exponential_many(rng, k, self.base, 1.0 / extra)
        return [self.sample(rng) for _ in range(k)]

    def describe(self) -> dict:
        return {"dist": "exponential", "mean": self.mean, "base": self.base}


@dataclass(frozen=True, slots=True)
class LogNormal:
    """``base`` plus a log-normal with the given median and shape ``sigma`` (heavy right tail,
    the usual fit for internet round-trip times)."""

    median: float
    sigma: float = 0.5
    base: float = 0.0

    def sample(self, rng: random.Random) -> float:
        return self.base + self.median * math.exp(self.sigma * rng.gauss(0.0, 1.0))

    @property
    def mean(self) -> float:
        return self.base + self.median * math.exp(self.sigma**2 / 2)

    def describe(self) -> dict:
        return {"dist": "lognormal", "median": self.median, "sigma": self.sigma, "base": self.base}


def as_latency(value: "Latency | float | int") -> Latency:
    return Fixed(float(value)) if isinstance(value, (int, float)) else value


def _sample_many(latency: Latency, rng: random.Random, k: int) -> list[float]:
    many = getattr(latency, "sample_many", None)
    if many is not None:
        return many(rng, k)
    return [latency.sample(rng) for _ in range(k)]


def _inline_draws_match() -> bool:
    """Do the inline draws give the library's numbers, and leave the generator as it does?"""
    latency = LogNormal(0.1, 0.5, 0.01)
    for seed in (1, 2):
        fast, lib = random.Random(seed), random.Random(seed)
        got = _lognormal_fifo_times(fast, 1.0, [1, 2, 3, 4, 5], latency, {})
        got += _exponential_many(fast, 3, 0.02, 12.5)
        want = [1.0 + latency.sample(lib) for _ in range(5)]
        want += [0.02 + lib.expovariate(12.5) for _ in range(3)]
        if got != want or fast.gauss_next != lib.gauss_next or fast.random() != lib.random():
            return False
    return True


_INLINE_DRAWS = _inline_draws_match()


def _push_lognormal_fifo(deliveries: "Deliveries", rng: random.Random, now: float, dsts: "list[int] | tuple[int, ...]",
                         latency: "LogNormal", last_arrival: dict[int, float], src: int, msg: Any) -> None:
    """``msg`` from ``src`` at ``now`` to each of ``dsts``, drawn and scheduled: the Python
    twin of the compiled queue's ``Deliveries.push_lognormal_fifo`` (cython_ext/_simcore.pyx)."""
    deliveries.push_many(_lognormal_fifo_times(rng, now, dsts, latency, last_arrival), dsts, src, msg)


def _compiled_draws_match() -> bool:
    """Does the compiled relay loop (if built) schedule exactly what the Python one does,
    and leave the generator in the same state? (If not, the network uses the Python one.)"""
    from minichain.sim.events import CompiledEventQueue, PyEventQueue
    if CompiledEventQueue is None:
        return False
    latency = LogNormal(0.1, 0.5, 0.01)
    for seed in (1, 2):
        rngs, scheduled = [], []
        for queue, push in ((CompiledEventQueue(), None), (PyEventQueue(), _push_lognormal_fifo)):
            rng = random.Random(seed)
            last_arrival = {3: 2.5}                        # one link still busy: FIFO holds it back
            for now, dsts in ((1.0, [1, 2, 3, 4, 5]), (1.5, [3]), (2.0, [2, 4, 6])):
                if push is None:
                    queue.deliveries.push_lognormal_fifo(rng, now, dsts, latency, last_arrival, 0, "m")
                else:
                    push(queue.deliveries, rng, now, dsts, latency, last_arrival, 0, "m")
            rngs.append((rng.gauss_next, rng.random()))
            scheduled.append(sorted(queue.pop() for _ in range(len(queue))))
        if rngs[0] != rngs[1] or scheduled[0] != scheduled[1]:
            return False
    return True


_COMPILED_DRAWS = _compiled_draws_match()


# -- counters ----------------------------------------------------------------------------


@dataclass(slots=True)
class NetworkStats:
    """What happened to the messages of one run.

    The network writes what it decides when a message is sent (``sent``, ``lost``,
    ``partitioned``, ``duplicated``, ``bytes_sent``, the per-type and per-node sent
    counts); the simulator writes what happens when it delivers one (``delivered`` and
    ``delivered_by_cls``, ``crashed`` for a receiver that is down) and ``self_delivered``
    for an engine's copy to itself, which never touches the network. Plain fields, so
    that the hot loops can count in place.
    """

    sent: int = 0
    delivered: int = 0
    lost: int = 0
    partitioned: int = 0
    crashed: int = 0                 # delivered to a crashed node, so dropped
    duplicated: int = 0
    self_delivered: int = 0          # copies to self (Broadcast include_self): not traffic
    bytes_sent: float = 0            # sum of the messages' ``size`` (an int unless a size is not)
    sent_by_cls: dict[type, int] = field(default_factory=dict)
    delivered_by_cls: dict[type, int] = field(default_factory=dict)
    sent_by_node: list[int] = field(default_factory=list)   # by sender; sized by Network.attach

    @property
    def in_flight(self) -> int:
        return self.sent + self.duplicated - self.delivered - self.lost - self.partitioned - self.crashed

    @property
    def sent_by_type(self) -> dict[str, int]:
        return _by_name(self.sent_by_cls)

    @property
    def delivered_by_type(self) -> dict[str, int]:
        return _by_name(self.delivered_by_cls)

    def as_dict(self) -> dict:
        """The ``messages`` of a run's result (``Network.stats()``)."""
        return {
            "sent": self.sent,
            "delivered": self.delivered,
            "lost": self.lost,
            "partitioned": self.partitioned,
            "crashed": self.crashed,
            "duplicated": self.duplicated,
            "in_flight": self.in_flight,
            "self_delivered": self.self_delivered,
            "bytes_sent": self.bytes_sent,
            "sent_by_type": self.sent_by_type,
            "delivered_by_type": self.delivered_by_type,
        }


def _counter(name: str) -> property:
    return property(lambda net: getattr(net.counters, name), doc=f"``counters.{name}`` (read-only).")


# -- the network -------------------------------------------------------------------------


class Network:
    """Links, faults and counters. Attached to exactly one
    :class:`~minichain.sim.simulator.Simulation`."""

    # Read-only views of ``counters`` (the network's own fields before NetworkStats).
    sent = _counter("sent")
    delivered = _counter("delivered")
    lost = _counter("lost")
    partitioned = _counter("partitioned")
    crashed = _counter("crashed")
    duplicated = _counter("duplicated")
    self_delivered = _counter("self_delivered")
    bytes_sent = _counter("bytes_sent")
    sent_by_node = _counter("sent_by_node")
    sent_by_type = _counter("sent_by_type")
    delivered_by_type = _counter("delivered_by_type")

    def __init__(
        self,
        latency: "Latency | float" = 0.05,
        *,
        loss: float = 0.0,
        duplicate: float = 0.0,
        fifo: bool = True,
        bandwidth: float | None = None,
    ) -> None:
        self._plain = True
        self.latency = as_latency(latency)
        self._loss = _probability(loss, "loss")
        self._duplicate = _probability(duplicate, "duplicate")
        self.fifo = fifo
        self._bandwidth = bandwidth              # bytes per second of every node's uplink
        self._link_latency: dict[int, Latency] = {}
        self._link_loss: dict[int, float] = {}
        self._pending_links: list[tuple] = []
        self._node_bandwidth: dict[int, float | None] = {}
        self._uplink_free: dict[int, float] = {}
        self._last_arrival: list[dict[int, float]] = []   # per sender: receiver -> last arrival (FIFO)
        self._group: list[int] = []
        self._cuts: set[int] = set()
        self._blocking = False                  # any partition/cut in force (fast path)
        self._extra: list[tuple[Latency, frozenset[int] | None, frozenset[int] | None]] = []
        self.gst: float | None = None
        self._async_delay: Latency | None = None
        self.log: list[tuple[float, str, Any]] = []
        self.n = 0
        self.counters = NetworkStats()
        self._deliveries: "Deliveries | None" = None   # set by attach
        self._clock: Callable[[], float] | None = None
        self._refresh()

    # Fields that decide whether the fast path applies are properties, so that setting
    # them directly (``net.loss = 0.1``) is as good as calling the setter.
    @property
    def loss(self) -> float:
        return self._loss

    @loss.setter
    def loss(self, value: float) -> None:
        self._loss = _probability(value, "loss")
        self._refresh()

    @property
    def duplicate(self) -> float:
        return self._duplicate

    @duplicate.setter
    def duplicate(self, value: float) -> None:
        self._duplicate = _probability(value, "duplicate")
        self._refresh()

    @property
    def bandwidth(self) -> float | None:
        return self._bandwidth

    @bandwidth.setter
    def bandwidth(self, value: float | None) -> None:
        self._bandwidth = value
        self._refresh()

    def _refresh(self) -> None:
        self._plain = not (
            self._blocking or self._loss or self._duplicate or self._bandwidth or self._node_bandwidth
            or self._link_latency or self._link_loss or self._extra or self.gst is not None
        )

    def attach(self, n: int, rng: random.Random, deliveries: "Deliveries", clock: Callable[[], float]) -> None:
        """Join a simulation of ``n`` nodes: draw from its one ``rng``, schedule arrivals
        through ``deliveries``, and stamp the fault log with ``clock()`` (virtual time)."""
        if self._deliveries is not None:
            raise ValueError("a Network belongs to one Simulation")
        self.n = n
        self._rng = rng
        self._deliveries = deliveries
        # A relay on a plain FIFO log-normal network, drawn and scheduled in one call: in C
        # when the simulator's queue is the compiled one (and draws what Python draws).
        compiled = getattr(deliveries, "push_lognormal_fifo", None)
        self._push_lognormal = compiled if compiled is not None and _COMPILED_DRAWS \
            else functools.partial(_push_lognormal_fifo, deliveries)
        self._clock = clock
        for a, b, latency, loss, both_ways in self._pending_links:
            self.set_link(a, b, latency=latency, loss=loss, both_ways=both_ways)
        self._pending_links.clear()
        self._group = [0] * n
        self.counters.sent_by_node = [0] * n
        self._last_arrival = [{} for _ in range(n)]

    # -- configuration -------------------------------------------------------------------

    def set_link(self, a: int, b: int, *, latency: "Latency | float | None" = None,
                 loss: float | None = None, both_ways: bool = True) -> None:
        """Override the latency distribution and/or loss of link a->b (and b->a).

        May be called before the network is attached to its simulation (the override is
        kept until the number of nodes is known)."""
        if self._deliveries is None:
            self._pending_links.append((a, b, latency, loss, both_ways))
            return
        self._check(a)
        self._check(b)
        for x, y in ((a, b), (b, a)) if both_ways else ((a, b),):
            key = x * self.n + y
            if latency is not None:
                self._link_latency[key] = as_latency(latency)
            if loss is not None:
                self._link_loss[key] = _probability(loss, "loss")
        self._refresh()

    def set_bandwidth(self, node: int, bandwidth: float | None) -> None:
        """Uplink bandwidth of one node in bytes per second (None: unlimited)."""
        self._node_bandwidth[node] = bandwidth
        self._refresh()

    def link_latency(self, a: int, b: int) -> Latency:
        return self._link_latency.get(a * self.n + b, self.latency)

    # -- faults ----------------------------------------------------------------------------

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """Split the network: only nodes in the same group can talk. Nodes not listed form
        one more group together. Replaces any earlier partition (cuts stay)."""
        groups = [sorted(set(g)) for g in groups]
        seen: set[int] = set()
        for g in groups:
            if seen & set(g):
                raise ValueError("a node may be in only one partition group")
            seen |= set(g)
        self._group = [len(groups)] * self.n
        for gi, g in enumerate(groups):
            for node in g:
                self._group[self._check(node)] = gi
        self._update_blocking()
        self._note("partition", groups)

    def isolate(self, node: int) -> None:
        """Cut ``node`` off from every other node."""
        self._group[self._check(node)] = max(self._group) + 1
        self._update_blocking()
        self._note("isolate", node)

    def cut(self, a: int, b: int) -> None:
        """Cut the link between ``a`` and ``b`` in both directions."""
        self._cuts.add(self._check(a) * self.n + self._check(b))
        self._cuts.add(b * self.n + a)
        self._update_blocking()
        self._note("cut", [a, b])

    def heal(self) -> None:
        """Undo every partition, isolation and cut."""
        self._group = [0] * self.n
        self._cuts.clear()
        self._blocking = False
        self._refresh()
        self._note("heal", None)

    def blocked(self, a: int, b: int) -> bool:
        return self._group[a] != self._group[b] or (a * self.n + b) in self._cuts

    def set_loss(self, loss: float) -> None:
        """Change the default loss probability of every link (per-link overrides stay)."""
        self.loss = _probability(loss, "loss")
        self._note("loss", loss)

    def set_duplicate(self, duplicate: float) -> None:
        self.duplicate = _probability(duplicate, "duplicate")
        self._note("duplicate", duplicate)

    def set_fifo(self, fifo: bool) -> None:
        """FIFO links (no reordering) or independent latencies (reordering)."""
        self.fifo = fifo
        self._note("fifo", fifo)

    def add_delay(self, extra: "Latency | float", *, src: Iterable[int] | None = None,
                  dst: Iterable[int] | None = None) -> None:
        """From now on, messages from ``src`` (default any) to ``dst`` (default any) take
        ``extra`` more seconds. Cumulative; ``clear_delays()`` removes them all."""
        self._extra.append((as_latency(extra), None if src is None else frozenset(src),
                            None if dst is None else frozenset(dst)))
        self._refresh()
        self._note("delay", {"extra": as_latency(extra).describe(),
                             "src": None if src is None else sorted(src),
                             "dst": None if dst is None else sorted(dst)})

    def clear_delays(self) -> None:
        self._extra.clear()
        self._refresh()
        self._note("clear_delays", None)

    def asynchronous_until(self, gst: float, delay: "Latency | float") -> None:
        """Partial synchrony: a message sent before ``gst`` is held for an extra ``delay``
        sample, but no later than ``gst`` (so it arrives by GST + its ordinary latency)."""
        self.gst = gst
        self._async_delay = as_latency(delay)
        self._refresh()
        self._note("asynchronous_until", {"gst": gst, "delay": self._async_delay.describe()})

    # -- carrying messages (called by the simulator) --------------------------------------

    def transmit(self, now: float, src: int, dst: int, msg: Any) -> None:
        """Count one message from ``src`` to ``dst`` and schedule its arrival(s), if any.

        The hot path of every run: it is written for speed (no allocations beyond the
        heap entry when no fault is configured)."""
        c = self.counters
        c.sent += 1
        c.sent_by_node[src] += 1
        cls = msg.__class__
        counts = c.sent_by_cls
        counts[cls] = counts.get(cls, 0) + 1
        size = getattr(msg, "size", 0)
        c.bytes_sent += size
        rng = self._rng
        if self._plain:
            # No fault, override or bandwidth in force: latency (and FIFO) only.
            latency = self.latency
            if self.fifo and latency.__class__ is LogNormal and _INLINE_DRAWS and rng.__class__ is random.Random:
                # (One message to one peer -- a request or its answer -- through the relay's
                # inline draw: one Python call instead of sample() and gauss().)
                self._push_lognormal(rng, now, (dst,), latency, self._last_arrival[src], src, msg)
                return
            t = now + latency.sample(rng)
            if self.fifo:
                last_arrival = self._last_arrival[src]
                last = last_arrival.get(dst, 0.0)
                if t < last:
                    t = last
                last_arrival[dst] = t
            self._deliveries.push(t, dst, src, msg)
            return
        key = src * self.n + dst
        if self._blocking and (self._group[src] != self._group[dst] or key in self._cuts):
            c.partitioned += 1
            return
        loss = self._link_loss.get(key, self.loss) if self._link_loss else self.loss
        if loss and rng.random() < loss:
            c.lost += 1
            return
        depart = now
        if self._node_bandwidth or self.bandwidth:
            bw = self._node_bandwidth.get(src, self.bandwidth)
            if bw and size:
                depart = max(now, self._uplink_free.get(src, 0.0)) + size / bw
                self._uplink_free[src] = depart
        latency = self._link_latency.get(key, self.latency) if self._link_latency else self.latency
        copies = 1
        if self.duplicate and rng.random() < self.duplicate:
            copies = 2
            c.duplicated += 1
        push = self._deliveries.push
        while copies:
            copies -= 1
            t = depart + latency.sample(rng)
            if self._extra:
                for extra, srcs, dsts in self._extra:
                    if (srcs is None or src in srcs) and (dsts is None or dst in dsts):
                        t += extra.sample(rng)
            if self.gst is not None and now < self.gst:
                t += min(self._async_delay.sample(rng), self.gst - now)
            if self.fifo:
                last_arrival = self._last_arrival[src]
                last = last_arrival.get(dst, 0.0)
                if t < last:
                    t = last
                last_arrival[dst] = t
            push(t, dst, src, msg)

    def transmit_many(self, now: float, src: int, dsts: list[int], msg: Any) -> None:
        """``transmit(now, src, dst, msg)`` for each ``dst`` in order -- the same counts, the
        same random draws and the same arrivals -- with the counting and the latency draws
        done once per batch (a gossip relay or a broadcast: one message, many peers)."""
        if not self._plain:
            for dst in dsts:
                self.transmit(now, src, dst, msg)
            return
        k = len(dsts)
        c = self.counters
        c.sent += k
        c.sent_by_node[src] += k
        cls = msg.__class__
        counts = c.sent_by_cls
        counts[cls] = counts.get(cls, 0) + k
        size = getattr(msg, "size", 0)
        if size.__class__ is int:
            c.bytes_sent += size * k
        else:
            for _ in dsts:                       # float sizes: add them one by one, as transmit does
                c.bytes_sent += size
        latency = self.latency
        rng = self._rng
        if self.fifo and latency.__class__ is LogNormal and _INLINE_DRAWS and rng.__class__ is random.Random:
            self._push_lognormal(rng, now, dsts, latency, self._last_arrival[src], src, msg)
            return
        push = self._deliveries.push
        delays = _sample_many(latency, rng, k)
        if self.fifo:
            last_arrival = self._last_arrival[src]
            get = last_arrival.get
            for dst, delay in zip(dsts, delays):
                t = now + delay
                last = get(dst, 0.0)
                if t < last:
                    t = last
                last_arrival[dst] = t
                push(t, dst, src, msg)
        else:
            for dst, delay in zip(dsts, delays):
                push(now + delay, dst, src, msg)

    # -- reporting ---------------------------------------------------------------------------

    def stats(self) -> dict:
        return self.counters.as_dict()

    def describe(self) -> dict:
        return {
            "latency": self.latency.describe(),
            "loss": self.loss,
            "duplicate": self.duplicate,
            "fifo": self.fifo,
            "bandwidth": self.bandwidth,
            "link_overrides": len(self._link_latency) + len(self._link_loss),
        }

    # -- internals -------------------------------------------------------------------------

    def _check(self, node: int) -> int:
        if not 0 <= node < self.n:
            raise ValueError(f"no node {node} in a network of {self.n}")
        return node

    def _update_blocking(self) -> None:
        self._blocking = bool(self._cuts) or len(set(self._group)) > 1
        self._refresh()

    def _note(self, what: str, detail: Any) -> None:
        self.log.append((self._clock() if self._clock is not None else 0.0, what, detail))


def _by_name(counts: dict[type, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for cls, c in counts.items():
        out[cls.__name__] = out.get(cls.__name__, 0) + c
    return dict(sorted(out.items()))


def _probability(p: float, name: str) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
    return float(p)
