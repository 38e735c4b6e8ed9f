"""``sim calibrate``: one scenario in the simulator and on real processes, side by side.

Both runs get the same parameters (the harness's, ``sim/scenarios/replicated.py``): ``n``
replicas; a payment every ``interval`` seconds from t = 1 s, handed to every replica,
until ``duration - 5`` s; the fault of the scenario at ``fault_at`` (a 2|2 partition
healed at ``heal_at``; ``f`` replicas crashed for good; ``f`` Byzantine replicas from the
start, with the behaviour ``sim compare`` gives them); the run ends at ``duration``.

    simulator        ``replicated.run`` with the engine wrapped so that every ``Decide`` is
                     recorded with its node's clock (the engine itself is unchanged)
    real processes   ``testnet up --engine`` in a temporary directory, the same payments
                     submitted on the same schedule (wall clock from the engines' start),
                     the fault applied with ``testnet partition``/``kill``; decisions read
                     from each replica's ``decisions.jsonl``

Both sides are measured by ONE function (:func:`measure`) from the same kind of record,
(time, node, slot, value), so a difference in the table is a difference in the runs:

    commits            payments committed by at least one live honest replica
    finality           per payment, from its submission to its first commit (median, p95)
    msgs/decision      messages sent (every copy to a peer, as the simulator counts) per decided slot
    during fault       distinct slots decided per side in the fault window (after a grace of
                       min(2 s, a quarter of the window), as the harness counts)
    conflicts          slots at which two honest replicas committed different values

What cannot be matched is said in ``docs/calibration.md``: the simulator's link latency
is a model (``--sim-latency``), the real one is a loopback socket plus scheduling; the
simulator's clock is exact, the real timers fire late under load.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from minichain.sim.compare import SCENARIOS as COMPARE_SCENARIOS

SCENARIOS = ("normal", "partition-even", "crash-f", "byzantine-f")


class CalibrateError(ValueError):
    """A calibration that cannot be run as asked; ``str()`` says why."""


@dataclass(frozen=True)
class Setup:
    engine: str
    scenario: str
    n: int = 4
    seed: int = 1
    duration: float = 30.0
    interval: float = 0.5
    fault_at: float = 5.0
    heal_at: float = 15.0
    sim_latency: float = 0.05

    @property
    def payments(self) -> int:
        return max(1, int((self.duration - 5.0) / self.interval))

    def plan(self) -> dict[str, Any]:
        """The scenario's fault: kind, faulty replicas, behaviour, partition groups."""
        from minichain.sim.scenarios.replicated import engine_spec, partition_groups

        if self.scenario not in SCENARIOS:
            raise CalibrateError(f"unknown scenario {self.scenario!r}; choose one of {', '.join(SCENARIOS)}")
        if self.engine == "nakamoto":
            raise CalibrateError("calibrate runs the replica engines (pbft, tendermint, raft, paxos, dls, dls-byz)")
        try:
            spec = engine_spec(self.engine)
        except ValueError as exc:
            raise CalibrateError(str(exc)) from None
        if not 1 <= self.fault_at < self.heal_at <= self.duration:
            raise CalibrateError("need 1 <= fault_at < heal_at <= duration")
        sc = COMPARE_SCENARIOS[self.scenario]
        f = spec.max_faults(self.n)
        faulty = sc.faulty(f) if sc.faulty is not None else 0
        behaviour = None
        if sc.behaviour is not None:
            choices = sc.behaviour[spec.fault_model]
            behaviour = next((b for b in choices if b in spec.behaviours), choices[0])
        groups = partition_groups(spec, self.n, "even") if sc.kind == "partition" else None
        if sc.kind == "crash":
            window = (self.fault_at, self.duration)
        elif sc.kind == "partition":
            window = (self.fault_at, self.heal_at)
        else:
            window = None
        return {"kind": sc.kind, "f": f, "faulty": faulty, "behaviour": behaviour, "groups": groups,
                "window": window, "byzantine": list(range(faulty)) if sc.kind == "byzantine" else [],
                "crashed": list(range(faulty)) if sc.kind == "crash" else []}


@dataclass(frozen=True)
class Decision:
    time: float            # seconds since the engines started
    node: int
    slot: int
    value: Any             # a payment as a dict, or None


@dataclass
class Run:
    decisions: list[Decision]
    submitted: dict[tuple, float]          # payment key -> when it was submitted
    sent: int                              # messages to peers, all replicas
    honest: list[int]
    live: list[int]                        # honest and not crashed at the end
    extra: dict[str, Any] = field(default_factory=dict)


def payment_key(value: Any) -> tuple | None:
    if isinstance(value, dict) and "coin" in value:
        return (value["client"], value["seq"], value["coin"], value["payee"])
    return None


def measure(run: Run, setup: Setup, plan: dict[str, Any]) -> dict[str, Any]:
    """The table's numbers for one run (simulated or real)."""
    first: dict[tuple, float] = {}
    slots_first: dict[int, float] = {}
    per_slot: dict[int, set] = {}
    for d in sorted(run.decisions, key=lambda d: d.time):
        if d.node not in run.honest:
            continue
        per_slot.setdefault(d.slot, set()).add(payment_key(d.value) or ("noop",))
        if d.node in run.live:
            slots_first.setdefault(d.slot, d.time)
            key = payment_key(d.value)
            if key is not None and key in run.submitted:
                first.setdefault(key, d.time)
    latencies = sorted(first[k] - run.submitted[k] for k in first)
    out: dict[str, Any] = {
        "submitted": len(run.submitted),
        "committed": len(first),
        "decided_slots": len(slots_first),
        "finality_median": statistics.median(latencies) if latencies else None,
        "finality_p95": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else None,
        "messages": run.sent,
        "msgs_per_decision": run.sent / len(slots_first) if slots_first else None,
        "conflicts": sum(1 for values in per_slot.values() if len(values) > 1),
    }
    window = plan["window"]
    if window is not None:
        start, end = window
        grace = min(2.0, (end - start) / 4)
        sides = plan["groups"] or [list(range(setup.n))]
        out["during_fault_by_side"] = [
            len({d.slot for d in run.decisions if d.node in run.live and d.node in side
                 and start + grace <= d.time < end}) for side in sides]
    else:
        out["during_fault_by_side"] = None
    return out


# -- the simulator ------------------------------------------------------------------------------


def run_sim(setup: Setup, plan: dict[str, Any]) -> Run:
    from minichain.sim.engine import Decide
    from minichain.sim.scenarios import replicated

    spec = replicated.engine_spec(setup.engine)
    records: list[Decision] = []

    def recording(build: Callable) -> Callable:
        def wrapped(ctx, behaviour=None, **kwargs):
            engine = build(ctx, behaviour, **kwargs)
            for name in ("on_start", "on_message", "on_timer", "on_recover"):
                inner = getattr(engine, name)

                def call(*args, _inner=inner):
                    actions = _inner(*args)
                    for a in actions or ():
                        if a.__class__ is Decide:
                            records.append(Decision(ctx.now, ctx.node_id, a.slot, _value_json(a.value)))
                    return actions

                setattr(engine, name, call)
            return engine
        return wrapped

    kwargs: dict[str, Any] = {}
    if plan["kind"] in ("crash", "byzantine"):
        kwargs["faulty"] = plan["faulty"]
    if plan["behaviour"] is not None:
        kwargs["behaviour"] = plan["behaviour"]
    result = replicated.run(dataclasses.replace(spec, build=recording(spec.build)), plan["kind"], n=setup.n,
                            seed=setup.seed, duration=setup.duration, interval=setup.interval,
                            payments=setup.payments, fault_at=setup.fault_at, heal_at=setup.heal_at,
                            latency=setup.sim_latency, **kwargs)
    submitted = {(0, i, f"c0.{i}", f"payee{i}"): 1.0 + i * setup.interval for i in range(setup.payments)}
    honest = [i for i in range(setup.n) if i not in plan["byzantine"]]
    live = [i for i in honest if i not in plan["crashed"]]
    return Run(records, submitted, result.messages["sent"], honest, live,
               extra={"harness_committed": result.extra["committed"], "seed": result.seed})


def _value_json(value: Any) -> Any:
    from minichain.replica.ledger import value_json

    return value_json(value)


# -- real processes -----------------------------------------------------------------------------


def run_real(setup: Setup, plan: dict[str, Any], directory: str | None = None,
             say: Callable[[str], None] = lambda _: None) -> Run:
    from minichain.replica.durable import DECISIONS_FILE, read_decisions
    from minichain.testnet import network as tn
    from minichain.testnet.spec import build_replicas

    temporary = directory is None
    where = tempfile.mkdtemp(prefix="minichain-calibrate-") if temporary else directory
    spec = build_replicas(setup.engine, nodes=setup.n, byzantine=len(plan["byzantine"]),
                          behaviour=plan["behaviour"] if plan["byzantine"] else None, seed=setup.seed)
    say(f"starting {setup.n} {setup.engine} replicas in {where}")
    state = tn.up(where, spec)
    clients = [tn.client_for(r, timeout=5.0) for r in state.nodes]
    sent_seen = [0] * setup.n

    def poll_sent() -> None:
        for i, s in enumerate(tn.poll_all(clients, lambda c: c.status())):
            if isinstance(s, dict):
                sent_seen[i] = max(sent_seen[i], s["messages"]["sent"])

    try:
        t0 = time.time()
        say(f"payments every {setup.interval:g}s from t=1s; the fault at t={setup.fault_at:g}s")
        submitted: dict[tuple, float] = {}
        errors: list[BaseException] = []

        def fault() -> None:
            try:
                _sleep_until(t0 + setup.fault_at)
                if plan["kind"] == "partition":
                    tn.partition(where, plan["groups"])
                    _sleep_until(t0 + setup.heal_at)
                    tn.heal(where, wait=False)
                elif plan["kind"] == "crash":
                    poll_sent()
                    for i in plan["crashed"]:
                        tn.kill(where, i)
            except BaseException as exc:  # noqa: BLE001 - reported by the caller
                errors.append(exc)

        thread = threading.Thread(target=fault, name="calibrate-fault", daemon=True)
        thread.start()
        _submit_all(state, setup, t0, submitted)
        _sleep_until(t0 + setup.duration)
        thread.join()
        if errors:
            raise errors[0]
        poll_sent()
        decisions = []
        for rec in state.nodes:
            for d in read_decisions(f"{rec.datadir}/{DECISIONS_FILE}"):
                if d["time"] - t0 <= setup.duration:
                    decisions.append(Decision(d["time"] - t0, rec.index, d["slot"], d.get("value")))
    finally:
        tn.down(where, purge=temporary)
    honest = [i for i in range(setup.n) if i not in plan["byzantine"]]
    live = [i for i in honest if i not in plan["crashed"]]
    return Run(decisions, {k: t - t0 for k, t in submitted.items()}, sum(sent_seen), honest, live,
               extra={"directory": None if temporary else where})


def _sleep_until(t: float) -> None:
    delay = t - time.time()
    if delay > 0:
        time.sleep(delay)


def _submit_all(state, setup: Setup, t0: float, submitted: dict[tuple, float]) -> None:
    """Hand payment i to every replica at t0 + 1 + i * interval, as the simulator's
    workload does (``schedule_payments``); nobody waits for an answer."""
    import asyncio

    import aiohttp

    urls = [f"{r.url}/api/submit" for r in state.nodes]

    async def post(session, url, body) -> None:
        try:
            async with session.post(url, json=body) as resp:
                await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            pass                                          # a crashed or cut-off replica

    async def main() -> None:
        timeout = aiohttp.ClientTimeout(total=5, sock_connect=1)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
            tasks = []
            for i in range(setup.payments):
                delay = t0 + 1.0 + i * setup.interval - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                payment = {"client": 0, "seq": i, "coin": f"c0.{i}", "payee": f"payee{i}"}
                submitted[(0, i, f"c0.{i}", f"payee{i}")] = time.time()
                tasks += [asyncio.ensure_future(post(session, url, {"payment": payment, "wait": 0})) for url in urls]
            await asyncio.gather(*tasks)

    asyncio.run(main())


# -- both ---------------------------------------------------------------------------------------


def calibrate(setup: Setup, say: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    plan = setup.plan()
    say(f"simulating {setup.engine} / {setup.scenario} (seed {setup.seed})")
    sim = measure(run_sim(setup, plan), setup, plan)
    real = measure(run_real(setup, plan, say=say), setup, plan)
    return {"engine": setup.engine, "scenario": setup.scenario, "seed": setup.seed, "n": setup.n,
            "duration": setup.duration, "interval": setup.interval, "fault_at": setup.fault_at,
            "heal_at": setup.heal_at, "sim_latency": setup.sim_latency, "payments": setup.payments,
            "faulty": plan["faulty"], "behaviour": plan["behaviour"], "groups": plan["groups"],
            "window": plan["window"], "simulator": sim, "real": real}


ROWS = (
    ("payments committed", "committed", "{:d}"),
    ("slots decided", "decided_slots", "{:d}"),
    ("finality median (s)", "finality_median", "{:.3f}"),
    ("finality p95 (s)", "finality_p95", "{:.3f}"),
    ("messages", "messages", "{:d}"),
    ("messages per decision", "msgs_per_decision", "{:.1f}"),
    ("slots decided during the fault, per side", "during_fault_by_side", None),
    ("conflicts", "conflicts", "{:d}"),
)


def table_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for label, key, fmt in ROWS:
        cells = []
        for side in ("simulator", "real"):
            v = result[side].get(key)
            if v is None:
                cells.append("-")
            elif fmt is None:
                cells.append(" | ".join(map(str, v)))
            else:
                cells.append(fmt.format(v))
        out.append((label, cells[0], cells[1]))
    return out
