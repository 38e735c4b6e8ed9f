"""One adversarial run: a scenario drawn from a seed, run, and judged.

A :class:`Scenario` is everything a seed decides (:func:`draw`):

* **who is faulty** -- ``faulty`` replicas: the lowest ids, the highest, or a random set.
  The engines rotate their leaders by id (PBFT's primary ``v mod n``, Tendermint's
  proposer ``(h + r) mod n``, DLS's owner ``k mod N``), so this choice *is* the leader
  schedule: which views, rounds and phases the attacker leads, and when;
* **how each faulty replica misbehaves** -- as twins (two copies of the honest engine on
  two sides of the network), with the seeded per-window strategies of ``host.py``, or both
  (crash-fault engines: one copy that omits, delays and duplicates, since their claim is
  about crashes, not lies); and sometimes it crashes for good at a random time;
* **the network before GST** -- a sequence of periods, each a split of the honest
  replicas into side 0 and side 1 (the links between the two sides are cut, and the
  twins' copies follow the split), or one side with a copy on its own, or one side that
  hears both copies; plus a latency, a loss rate, reordering and, sometimes, the
  asynchronous delays of partial synchrony before GST;
* **the clients** -- payments to every replica (until shortly after GST), and in each
  split period a *double spend*: one coin paid to one payee on side 0 and to another on
  side 1, the input that gives two copies of a leader different things to propose.

At GST the cuts heal and the network turns synchronous; the faulty replicas go on as
they please. The run lasts until every honest replica committed every ordinary payment
(and :data:`SETTLE` seconds more, for late conflicts) or :data:`HORIZON` seconds after GST.
:func:`judge` reads off **safety** (two honest replicas committed different values at one
slot, or one took a decision back) and **liveness after GST** (an honest replica still
misses an ordinary payment at the horizon).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from minichain.sim.adversary.host import ByzantineHost, ToCopy
from minichain.sim.engine import CLIENT, Engine, NodeContext
from minichain.sim.engines import EngineSpec
from minichain.sim.network import Exponential, Network
from minichain.sim.simulator import Simulation
from minichain.sim.workload import ClientRequest, Payment

HORIZON = 300.0     # seconds after GST by which every ordinary payment must be committed everywhere
SETTLE = 5.0        # seconds the run goes on once it is, for conflicts that come late
PAYMENTS = 12       # ordinary payments, spread from 0.5 s to GST + 3 s


@dataclass(frozen=True)
class Period:
    """Before GST: from ``start`` to ``end``, honest replica -> the sides it is on."""

    start: float
    end: float
    sides: dict[int, frozenset[int]]
    one_way: tuple[tuple[int, int], ...] = ()       # links (a -> b) between honest replicas that drop all

    def describe(self) -> str:
        groups: dict[str, list[int]] = {}
        for node, sides in sorted(self.sides.items()):
            groups.setdefault("+".join(map(str, sorted(sides))), []).append(node)
        text = "  ".join(f"side {k}: {v}" for k, v in sorted(groups.items()))
        if self.one_way:
            text += "  one-way cuts: " + ", ".join(f"{a}->{b}" for a, b in self.one_way)
        return f"{self.start:6.2f}-{self.end:6.2f}s  {text}"


@dataclass
class Scenario:
    seed: int
    n: int
    faulty: tuple[int, ...]
    twins: dict[int, bool]
    strategies: dict[int, bool]
    crash_at: dict[int, float]         # faulty replica -> when it stops for good
    byzantine: bool                    # the engine's fault model is Byzantine (else: crash)
    gst: float
    periods: list[Period]
    after_gst: dict[int, frozenset[int]]
    latency: float
    loss: float
    fifo: bool
    async_delay: float | None          # mean extra delay before GST (None: no asynchrony)
    payments: list[tuple[float, Payment]] = field(default_factory=list)
    double_spends: list[tuple[int, Payment, Payment]] = field(default_factory=list)   # (period, A, B)

    @property
    def honest(self) -> list[int]:
        return [i for i in range(self.n) if i not in self.faulty]

    def describe(self) -> list[str]:
        kinds = []
        for i in self.faulty:
            how = [w for w, on in (("twins", self.twins[i]), ("random strategies", self.strategies[i])) if on]
            if i in self.crash_at:
                how.append(f"crashes at {self.crash_at[i]:.2f} s")
            kinds.append(f"{i} ({' + '.join(how) or 'protocol'})")
        lines = [f"faulty: {', '.join(kinds) or 'none'}",
                 f"network: latency {self.latency * 1000:.0f} ms mean, loss {self.loss:.0%}, "
                 f"{'FIFO' if self.fifo else 'reordering'}"
                 + (f", asynchronous before GST (+{self.async_delay:.2f} s mean)" if self.async_delay else ""),
                 f"GST at {self.gst:.2f} s; before it:"]
        lines += ["  " + p.describe() for p in self.periods]
        after = Period(self.gst, self.gst + HORIZON, self.after_gst)
        lines.append("after GST (no cuts): " + after.describe().split("s  ", 1)[1])
        lines.append(f"clients: {len(self.payments)} payments to everyone, "
                     f"{len(self.double_spends)} double spends split across the sides")
        return lines


def draw(n: int, faulty: int, seed: int, byzantine: bool) -> Scenario:
    """The scenario of ``seed`` for ``n`` replicas of which ``faulty`` are faulty."""
    rng = random.Random(f"adversary/{n}/{faulty}/{seed}")
    pick = rng.random()
    if pick < 0.4:
        bad = tuple(range(faulty))                          # the first leaders
    elif pick < 0.6:
        bad = tuple(range(n - faulty, n))
    else:
        bad = tuple(sorted(rng.sample(range(n), faulty)))
    honest = [i for i in range(n) if i not in bad]
    twins = {i: byzantine and rng.random() < 0.75 for i in bad}
    strategies = {i: not twins[i] or rng.random() < 0.5 for i in bad}
    gst = rng.uniform(6.0, 20.0)
    crash_at = {i: rng.uniform(0.5, gst) for i in bad if rng.random() < (0.15 if byzantine else 0.5)}
    periods: list[Period] = []
    t = 0.0
    while t < gst:
        end = min(gst, t + rng.uniform(0.5, 4.0))
        sides = _draw_sides(rng, honest)
        links = [(a, b) for a in honest for b in honest if a != b and sides[a] & sides[b]]
        one_way: tuple[tuple[int, int], ...] = ()
        if links and rng.random() < 0.25:
            one_way = tuple(sorted(rng.sample(links, rng.randint(1, min(2, len(links))))))
        periods.append(Period(t, end, sides, one_way))
        t = end
    after = rng.choice([frozenset({0}), frozenset({0, 1})])
    scenario = Scenario(
        seed=seed, n=n, faulty=bad, twins=twins, strategies=strategies, crash_at=crash_at, byzantine=byzantine, gst=gst,
        periods=periods, after_gst={h: after for h in honest},
        latency=rng.uniform(0.02, 0.1), loss=rng.choice([0.0, 0.0, 0.01, 0.05, 0.1, 0.3]), fifo=rng.random() < 0.5,
        async_delay=rng.uniform(0.2, 2.0) if rng.random() < 0.3 else None,
    )
    span = gst + 3.0 - 0.5
    for i in range(PAYMENTS):
        scenario.payments.append((0.5 + span * i / (PAYMENTS - 1), Payment(0, i, f"c0.{i}", f"payee{i}")))
    for j, period in enumerate(periods):
        if _split(period.sides) and rng.random() < 0.7:
            coin = f"c1.{j}"
            scenario.double_spends.append((j, Payment(1, j, coin, "merchant-A"), Payment(1, j, coin, "merchant-B")))
    return scenario


def _draw_sides(rng: random.Random, honest: list[int]) -> dict[int, frozenset[int]]:
    shape = rng.random()
    if shape < 0.6 and len(honest) > 1:                     # a split: two non-empty sides
        nodes = honest[:]
        rng.shuffle(nodes)
        cut = rng.randint(1, len(nodes) - 1)
        sides = {h: frozenset({0}) for h in nodes[:cut]}
        sides.update({h: frozenset({1}) for h in nodes[cut:]})
        if rng.random() < 0.3:                              # one of them hears both copies
            sides[rng.choice(nodes)] = frozenset({0, 1})
        return sides
    if shape < 0.8:
        return {h: frozenset({0}) for h in honest}          # everyone with copy 0; copy 1 alone
    return {h: frozenset({0, 1}) for h in honest}           # everyone hears both copies


def _split(sides: dict[int, frozenset[int]]) -> bool:
    return any(s == frozenset({0}) for s in sides.values()) and any(s == frozenset({1}) for s in sides.values())


@dataclass
class Outcome:
    """What a run showed: conflicts (safety), payments missing at the horizon (liveness)."""

    conflicts: list[dict]
    reversals: list[dict]
    missing: dict[int, int]            # honest replica -> ordinary payments it never committed
    time: float
    events: int

    @property
    def safe(self) -> bool:
        return not self.conflicts and not self.reversals

    @property
    def live(self) -> bool:
        return not self.missing


def run(spec: EngineSpec, scenario: Scenario, trace: list | None = None) -> tuple[Simulation, Outcome]:
    """Run ``scenario`` with ``spec``'s engine; ``trace`` (a list) collects what the faulty
    replicas did, and when."""
    net = Network(Exponential(scenario.latency, base=min(0.01, scenario.latency / 2)), loss=scenario.loss,
                  fifo=scenario.fifo)
    hosts: dict[int, ByzantineHost] = {}

    def build(ctx: NodeContext) -> Engine:
        i = ctx.node_id
        if i not in scenario.faulty:
            return spec.build(ctx, None)
        host = ByzantineHost(ctx, lambda c: spec.build(c, None), twins=scenario.twins[i],
                             strategies=scenario.strategies[i], byzantine=scenario.byzantine,
                             seed=scenario.seed, hosts=scenario.faulty, trace=trace)
        hosts[i] = host
        return host

    sim = Simulation(scenario.n, build, seed=scenario.seed, network=net)
    if scenario.async_delay is not None:
        net.asynchronous_until(scenario.gst, Exponential(scenario.async_delay))
    for period in scenario.periods:
        sim.at(period.start, _enter, sim, hosts, period.sides, period.one_way, scenario.loss)
    sim.at(scenario.gst, _enter, sim, hosts, scenario.after_gst, (), scenario.loss)
    for i, t in scenario.crash_at.items():
        sim.at(t, sim.crash, i)
    for t, p in scenario.payments:
        for i in range(scenario.n):
            sim.at(t, sim.submit, i, ClientRequest(p), CLIENT)
    for j, a, b in scenario.double_spends:
        period = scenario.periods[j]
        t = period.start + min(0.1, (period.end - period.start) / 2)
        for i in range(scenario.n):
            if i in hosts:
                for k, p in enumerate((a, b)[: len(hosts[i].copies)]):
                    sim.at(t, sim.submit, i, ToCopy(k, ClientRequest(p)), CLIENT)
            else:                                           # side 0 (or both): the first; side 1: the second
                sim.at(t, sim.submit, i, ClientRequest(a if 0 in period.sides[i] else b), CLIENT)
    ordinary = [p for _, p in scenario.payments]
    deadline = scenario.gst + HORIZON
    watch = _Watch(sim, scenario.honest, ordinary)
    t = scenario.gst + 1.0
    while t < deadline:
        sim.at(t, watch)
        t += 1.0
    sim.run(until=deadline)
    result = sim.result()
    missing = {}
    for i in scenario.honest:
        got = set(sim.decisions.latest[i].values())
        lacking = sum(p not in got for p in ordinary)
        if lacking:
            missing[i] = lacking
    return sim, Outcome(result.conflicts, result.reversals, missing, sim.now, sim.events)


def _enter(sim: Simulation, hosts: dict[int, ByzantineHost], sides: dict[int, frozenset[int]],
           one_way: tuple[tuple[int, int], ...], loss: float) -> None:
    """A new period: cut the links between honest replicas on different sides, heal the rest,
    drop everything on the period's one-way links, and tell the hosts which copies talk to
    whom."""
    sim.net.heal()
    for a in sides:
        for b in sides:
            if a != b:
                sim.net.set_link(a, b, loss=1.0 if (a, b) in one_way else loss, both_ways=False)
    nodes = sorted(sides)
    for a_i, a in enumerate(nodes):
        for b in nodes[a_i + 1:]:
            if not sides[a] & sides[b]:
                sim.net.cut(a, b)
    for host in hosts.values():
        host.assign(sides)


class _Watch:
    """Called every second after GST: once every honest replica committed every ordinary
    payment, let the run go on ``SETTLE`` seconds more and stop it."""

    def __init__(self, sim: Simulation, honest: list[int], ordinary: list[Any]) -> None:
        self.sim = sim
        self.honest = honest
        self.ordinary = ordinary
        self.done = False

    def __call__(self) -> None:
        if self.done:
            return
        latest = self.sim.decisions.latest
        if all(all(p in values for p in self.ordinary) for values in (set(latest[i].values()) for i in self.honest)):
            self.done = True
            self.sim.after(SETTLE, self.sim.stop)
