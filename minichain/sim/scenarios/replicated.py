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

``faulty`` defaults to the f the engine tolerates for ``n`` (``spec.max_faults(n)``);
pass ``faulty=f + 1`` to go one past it. The faulty replicas are the lowest ids, so the
first leader/primary/proposer is among them.

The result is the simulator's :class:`SimResult` (seed, conflicts = honest replicas
committing different values at one slot, reversals, messages per decision) with the
scenario's own measurements in ``extra``: payments submitted and committed, commit
latency, decisions during and after the fault window, and whether the run *stalled*.
"""

from __future__ import annotations

import statistics
from typing import Any

from minichain.sim import quorum
from minichain.sim.engines import EngineSpec, load_registry
from minichain.sim.network import Exponential, Network
from minichain.sim.simulator import Simulation, SimResult
from minichain.sim.workload import Payment, schedule_payments

SCENARIOS = ("normal", "crash", "byzantine", "partition", "gst", "loss", "skew")

# Default behaviour of a faulty replica in the byzantine scenario, per fault model.
DEFAULT_BEHAVIOUR = {"byzantine": "equivocate", "crash": "lie"}


class ScenarioError(ValueError):
    """A scenario asked for something that cannot be run (unknown engine, bad n, ...)."""


def engine_spec(name: str) -> EngineSpec:
    registry = load_registry()
    try:
        return registry[name]
    except KeyError:
        known = ", ".join(sorted(registry)) or "none registered"
        raise ScenarioError(f"unknown engine {name!r} (known: {known})") from None


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
    engine: str,
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

    net = Network(Exponential(latency) if scenario != "normal" else latency)
    sim = Simulation(n, lambda ctx: spec.build(ctx, byzantine.get(ctx.node_id)), seed=seed, network=net)

    window: tuple[float, float] | None = None
    if scenario == "crash":
        for i in range(k):
            sim.at(fault_at, sim.crash, i)
        window = (fault_at, duration)
    elif scenario == "partition":
        groups = partition_groups(spec, n, split)
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
    sim.run(until=duration)

    return sim.result(**measure(sim, spec, scenario, submitted, interval, window, duration, {
        "engine": engine,
        "family": spec.family,
        "scenario": scenario,
        "f": f,
        "faulty": k if scenario in ("crash", "byzantine") else 0,
        "behaviour": behaviour if scenario == "byzantine" else None,
        "split": partition_groups(spec, n, split) if scenario == "partition" else None,
    }))


def measure(
    sim: Simulation,
    spec: EngineSpec,
    scenario: str,
    submitted: list[Payment],
    interval: float,
    window: tuple[float, float] | None,
    duration: float,
    info: dict[str, Any],
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
        if isinstance(value, Payment) and value in submit_time:
            if value not in committed_payments:
                committed_payments.add(value)
                latencies.append(first - submit_time[value])

    def decided_between(a: float, b: float) -> int:
        return sum(1 for d in log.records if d.node in honest and a <= d.time < b)

    out: dict[str, Any] = dict(info)
    out.update(
        submitted=len(submitted),
        committed=len(committed_payments),
        latency_mean=statistics.fmean(latencies) if latencies else None,
        latency_p50=statistics.median(latencies) if latencies else None,
        live_honest=honest,
    )
    if window is not None:
        start, end = window
        # Allow a moment for decisions already in flight when the fault began.
        grace = min(2.0, (end - start) / 4)
        during = decided_between(start + grace, end)
        after = decided_between(end, duration) if end < duration else None
        out.update(window=[start, end], decided_during_fault=during, decided_after_fault=after,
                   stalled=during == 0)
    else:
        out.update(window=None, decided_during_fault=None, decided_after_fault=None,
                   stalled=len(committed_payments) == 0)
    return out
