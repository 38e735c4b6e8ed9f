"""Scenarios for the log-replication engines (PBFT, Tendermint, Raft, Paxos, DLS).

One harness runs any registered engine (``sim/engines/__init__.py``) under the same
workload and the same fault, so their results can be read side by side:

  normal      no fault
  crash       ``faulty`` replicas crash at ``fault_at`` and stay down
  byzantine   ``faulty`` replicas run a Byzantine ``behaviour`` from the start
  partition   the network splits at ``fault_at`` and heals at ``heal_at``;
              ``split="even"`` halves it, ``split="quorum"`` gives one side a quorum
  gst         messages are delayed arbitrarily until GST (``heal_at``), bounded after
  loss        every link drops a fraction ``loss`` of its messages
  skew        replica clocks run at different rates and offsets

``engine`` is a registered name (or an :class:`EngineSpec`); ``"nakamoto"`` is the
proof-of-work chain of ``engines/nakamoto.py`` adapted to the same workload
(``engines/nakamoto_replica.py``), so the harness can put it beside the others.

``faulty`` defaults to the f the engine tolerates for ``n`` (``spec.max_faults(n)``);
pass ``faulty=f + 1`` to go one past it. The faulty replicas are the lowest ids, so the
first leader/primary/proposer is among them. Byzantine replicas of an engine whose spec
sets ``coalition`` are told each other's ids (``engines/coalition.py``).

The result is the simulator's :class:`SimResult` (seed, conflicts = honest replicas
committing different values at one slot, reversals, messages per decision) with the
scenario's own measurements in ``extra``: payments submitted and committed, commit
latency, decisions during and after the fault window (and per partition side), whether
the run *stalled*, payments *reversed* (final at an honest replica, later not) and coins
*double spent* (two different payments of one coin each final at an honest replica).

Two options serve the comparison (``sim/compare.py``): ``cross_spend=True`` makes the
partition a double-spend opportunity -- one coin paid to merchant A on the first side and
to merchant B on the second, a second after the split -- and ``timeline=True`` adds, per
side, when each payment was first committed there, and when decisions were reversed
(for plots).
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any, Callable, Iterable

from minichain.sim import quorum
from minichain.sim.engine import Engine, NodeContext
from minichain.sim.engines import EngineSpec, load_registry
from minichain.sim.network import Exponential, Network
from minichain.sim.simulator import Simulation, SimResult
from minichain.sim.workload import CLIENT, ClientRequest, Payment, schedule_payments

SCENARIOS = ("normal", "crash", "byzantine", "partition", "gst", "loss", "skew")

# Default behaviour of a faulty replica in the byzantine scenario: an equivocating
# leader sends two conflicting payments of one coin to the two halves of the cluster.
# It breaks the crash-fault-tolerant engines on an ordinary network (a passive "lie"
# needs the honest replicas cut apart with the liar bridging them to show anything).
DEFAULT_BEHAVIOUR = {"byzantine": "equivocate", "crash": "equivocate", "hash": "selfish"}


class ScenarioError(ValueError):
    """A scenario asked for something that cannot be run (unknown engine, bad n, ...)."""


def engine_spec(name: "str | EngineSpec") -> EngineSpec:
    if isinstance(name, EngineSpec):
        return name
    registry = dict(load_registry())
    if name not in registry:
        from minichain.sim.engines.nakamoto_replica import SPEC as NAKAMOTO

        registry[NAKAMOTO.name] = NAKAMOTO
    try:
        return registry[name]
    except KeyError:
        known = ", ".join(sorted(registry)) or "none registered"
        raise ScenarioError(f"unknown engine {name!r} (known: {known})") from None


class RunHooks:
    """What the harness needs from an engine beyond its replicas. The defaults fit the
    log-replication engines, which decide one :class:`Payment` (or a no-op) per slot; a
    spec with a ``new_run`` (Nakamoto) supplies its own per-run object instead."""

    def __init__(self, spec: EngineSpec) -> None:
        self.build = spec.build

    @staticmethod
    def payments_in(value: Any) -> tuple[Payment, ...]:
        return (value,) if isinstance(value, Payment) else ()

    def report(self, sim: Simulation, groups: list[list[int]] | None,
               window: tuple[float, float] | None, tree: bool = False) -> dict:
        return {}


def quorum_size(spec: EngineSpec, n: int) -> int:
    """The quorum the engine's fault model needs with ``n`` replicas."""
    if spec.fault_model == "byzantine":
        return quorum.byzantine_quorum(n)
    return quorum.majority(n)


def partition_groups(spec: EngineSpec, n: int, split: str) -> list[list[int]]:
    """``even``: two halves (the first gets the smaller half when n is odd).
    ``quorum``: the highest ids form a side of exactly quorum size, the rest the other."""
    if split == "even":
        half = n // 2
        return [list(range(half)), list(range(half, n))]
    if split == "quorum":
        q = quorum_size(spec, n)
        return [list(range(n - q)), list(range(n - q, n))]
    raise ScenarioError(f"unknown split {split!r}; use 'even' or 'quorum'")


def run(
    engine: "str | EngineSpec",
    scenario: str,
    *,
    n: int = 4,
    seed: int = 1,
    faulty: int | None = None,
    behaviour: str | None = None,
    split: str = "even",
    duration: float = 30.0,
    payments: int | None = None,
    interval: float = 0.5,
    latency: float = 0.05,
    fault_at: float = 5.0,
    heal_at: float = 15.0,
    loss: float = 0.1,
    gst_delay: float = 5.0,
    skew: float = 0.2,
    cross_spend: bool = False,
    timeline: bool = False,
) -> SimResult:
    """Run one engine under one scenario; see the module docstring for the knobs."""
    if scenario not in SCENARIOS:
        raise ScenarioError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
    spec = engine_spec(engine)
    if n < 1:
        raise ScenarioError("n must be at least 1")
    f = spec.max_faults(n)
    k = f if faulty is None else faulty
    if not 0 <= k <= n:
        raise ScenarioError(f"cannot make {k} of {n} replicas faulty")

    byzantine: dict[int, str] = {}
    if scenario == "byzantine":
        behaviour = behaviour or DEFAULT_BEHAVIOUR[spec.fault_model]
        if spec.behaviours and behaviour not in spec.behaviours:
            raise ScenarioError(
                f"{engine} has no behaviour {behaviour!r} (it has: {', '.join(spec.behaviours)})"
            )
        byzantine = {i: behaviour for i in range(k)}

    groups = partition_groups(spec, n, split) if scenario == "partition" else None
    new_run = getattr(spec, "new_run", None)
    hooks = new_run(n=n, seed=seed, byzantine=byzantine, groups=groups) if new_run else RunHooks(spec)
    net = Network(Exponential(latency) if scenario != "normal" else latency)
    # Byzantine replicas collude; an engine that can use it is told who its accomplices
    # are (engines/coalition.py).
    knows = {"coalition": frozenset(byzantine)} if getattr(spec, "coalition", False) else {}

    def build(ctx: NodeContext) -> Engine:
        behaves = byzantine.get(ctx.node_id)
        return hooks.build(ctx, None) if behaves is None else hooks.build(ctx, behaves, **knows)

    sim = Simulation(n, build, seed=seed, network=net)

    window: tuple[float, float] | None = None
    if scenario == "crash":
        for i in range(k):
            sim.at(fault_at, sim.crash, i)
        window = (fault_at, duration)
    elif scenario == "partition":
        assert groups is not None
        sim.at(fault_at, net.partition, groups)
        sim.at(heal_at, net.heal)
        window = (fault_at, heal_at)
    elif scenario == "gst":
        net.asynchronous_until(heal_at, Exponential(gst_delay))
        window = (0.0, heal_at)
    elif scenario == "loss":
        net.set_loss(loss)
    elif scenario == "skew":
        for i in range(n):
            # Spread offsets over [-skew, +skew] seconds and drifts over [-skew%, +skew%].
            frac = (2 * i / (n - 1) - 1) if n > 1 else 0.0
            sim.set_clock(i, offset=frac * skew, drift=frac * skew / 100)

    count = payments if payments is not None else max(1, int((duration - 5.0) / interval))
    submitted = schedule_payments(sim, count, interval, start=1.0)
    spends: list[Payment] = []
    if cross_spend and groups is not None:
        # One coin, two payees, one on each side of the split (client 1's only coin).
        for side, payee in zip(groups, ("merchant-A", "merchant-B")):
            p = Payment(1, 0, "c1.0", payee)
            spends.append(p)
            for node in side:
                sim.at(fault_at + 1.0, sim.submit, node, ClientRequest(p), CLIENT)
    sim.run(until=duration)

    info = {
        "engine": spec.name,
        "family": spec.family,
        "scenario": scenario,
        "f": f,
        "faulty": k if scenario in ("crash", "byzantine") else 0,
        "behaviour": behaviour if scenario == "byzantine" else None,
        "split": groups,
    }
    out = measure(sim, spec, scenario, submitted, interval, window, duration, info,
                  payments_in=hooks.payments_in, groups=groups, timeline=timeline)
    if spends:
        out["cross_spend"] = {p.payee: sorted({i for i in sim.honest if _holds(sim, i, p, hooks.payments_in)})
                              for p in spends}
    out.update(hooks.report(sim, groups, window, tree=timeline))
    return sim.result(**out)


def _holds(sim: Simulation, node: int, p: Payment, payments_in: Callable[[Any], Iterable[Payment]]) -> bool:
    """Whether ``p`` is in ``node``'s committed log at the end of the run."""
    return any(p in payments_in(v) for v in sim.decisions.latest[node].values())


def measure(
    sim: Simulation,
    spec: EngineSpec,
    scenario: str,
    submitted: list[Payment],
    interval: float,
    window: tuple[float, float] | None,
    duration: float,
    info: dict[str, Any],
    *,
    payments_in: Callable[[Any], Iterable[Payment]] = RunHooks.payments_in,
    groups: list[list[int]] | None = None,
    timeline: bool = False,
) -> dict[str, Any]:
    """The scenario's own numbers, read off the decision log."""
    honest = [i for i in sim.honest if not sim.crashed[i]]
    submit_time = {p: 1.0 + p.seq * interval for p in submitted}
    log = sim.decisions
    finality = log.finality(honest)

    # A slot counts as committed once any live honest replica decided it; its latency is
    # from the payment's submission to that first decision.
    committed_payments = set()
    latencies = []
    for slot, (first, _last, _count) in finality.items():
        for i in honest:
            value = log.latest[i].get(slot)
            if value is not None:
                break
        for p in payments_in(value):
            if p in submit_time and p not in committed_payments:
                committed_payments.add(p)
                latencies.append(first - submit_time[p])
    reversed_payments, double_spent = payment_safety(log, sim.honest, payments_in)

    def decided_between(a: float, b: float) -> int:
        return sum(1 for d in log.records if d.node in honest and a <= d.time < b)

    out: dict[str, Any] = dict(info)
    out.update(
        submitted=len(submitted),
        committed=len(committed_payments),
        latency_mean=statistics.fmean(latencies) if latencies else None,
        latency_p50=statistics.median(latencies) if latencies else None,
        live_honest=honest,
        reversed_payments=len(reversed_payments),
        double_spent_coins=len(double_spent),
    )
    if window is not None:
        start, end = window
        # Allow a moment for decisions already in flight when the fault began.
        grace = min(2.0, (end - start) / 4)
        during = decided_between(start + grace, end)
        after = decided_between(end, duration) if end < duration else None
        out.update(window=[start, end], decided_during_fault=during, decided_after_fault=after,
                   stalled=during == 0)
        # Per side of a partition (or for everyone): distinct slots its live honest
        # replicas decided in the window.
        sides = groups if groups is not None else [list(range(sim.n))]
        out["decided_during_fault_by_side"] = [
            len({d.slot for d in log.records if d.node in honest and d.node in g and start + grace <= d.time < end})
            for g in sides
        ]
    else:
        out.update(window=None, decided_during_fault=None, decided_after_fault=None,
                   stalled=len(committed_payments) == 0)
    if timeline:
        all_honest = set(sim.honest)
        commits = []
        for g in groups if groups is not None else [list(range(sim.n))]:
            # When each payment was first committed by an honest replica of this side.
            side = set(g) & all_honest
            first: dict[Payment, float] = {}
            for d in log.records:
                if d.node in side:
                    for p in payments_in(d.value):
                        first.setdefault(p, d.time)
            commits.append(sorted(first.values()))
        out["timeline"] = {
            "commits": commits,
            "reversals": sorted(d.time for d, _ in log.reversal_records if d.node in all_honest),
        }
    return out


def payment_safety(log: Any, honest: Iterable[int],
                   payments_in: Callable[[Any], Iterable[Payment]]) -> tuple[set[Payment], set[str]]:
    """Payments an honest replica held final and later did not (*reversed*), and coins two
    different payments of which were each final at some honest replica (*double spent*).

    A replica's final payments are those in the values it decided. Each replica's
    decisions are replayed in time order; all decisions of one instant are applied
    together, since a reorg re-decides several heights at once and a payment that only
    moved to another height was never undone.
    """
    honest = set(honest)
    final_by_coin: dict[str, set[Payment]] = {}
    reversed_: set[Payment] = set()
    if not log.reversal_records:
        for d in log.records:
            if d.node in honest:
                for p in payments_in(d.value):
                    final_by_coin.setdefault(p.coin, set()).add(p)
    else:
        per_node: dict[int, list] = {}
        for d in log.records:
            if d.node in honest:
                per_node.setdefault(d.node, []).append(d)
        for records in per_node.values():
            current: dict[int, Any] = {}
            held: Counter = Counter()
            i = 0
            while i < len(records):
                t = records[i].time
                dropped: set[Payment] = set()
                while i < len(records) and records[i].time == t:
                    d = records[i]
                    if d.slot in current:
                        for p in payments_in(current[d.slot]):
                            held[p] -= 1
                            dropped.add(p)
                    current[d.slot] = d.value
                    for p in payments_in(d.value):
                        held[p] += 1
                        final_by_coin.setdefault(p.coin, set()).add(p)
                    i += 1
                reversed_.update(p for p in dropped if held[p] <= 0)
    double = {coin for coin, ps in final_by_coin.items() if len(ps) > 1}
    return reversed_, double
