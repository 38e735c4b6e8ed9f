"""The search: many seeded scenarios against one engine, and what they found.

:func:`search` runs the scenarios of seeds ``seed, seed + 1, ...`` (``scenario.draw``)
against a registered engine with ``faulty`` faulty replicas, and collects every seed
whose run broke safety and every seed whose run lost liveness after GST. Each run is a
pure function of (engine, n, faulty, seed), so the smallest seed of each kind is printed
with the command that replays it, and :func:`trace` tells that run's story: the scenario,
what the faulty replicas did, and the conflicting decisions.

:func:`claims` checks every engine's claim at its ``f`` (safe and live after GST) and at
``f + 1`` (where the theory says what breaks: safety for the Byzantine engines, only
liveness for the crash-fault ones).
"""

from __future__ import annotations

import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Callable

from minichain.sim.adversary import scenario as scenarios
from minichain.sim.engines import EngineSpec, load_registry

DEFAULT_RUNS = 200
ENGINES = ("pbft", "tendermint", "dls-byz", "raft", "paxos", "dls")


class AdversaryError(ValueError):
    """A search that cannot run (unknown engine, a fault count out of range, ...)."""


@dataclass
class Finding:
    seed: int
    detail: str


@dataclass
class SearchReport:
    engine: str
    model: str                 # "byzantine" or "crash"
    n: int
    f: int
    faulty: int
    first_seed: int
    runs: int = 0
    seconds: float = 0.0
    events: int = 0
    safety: list[Finding] = field(default_factory=list)
    liveness: list[Finding] = field(default_factory=list)
    errors: list[Finding] = field(default_factory=list)      # runs where an engine raised

    @property
    def runs_per_second(self) -> float:
        return self.runs / self.seconds if self.seconds else 0.0

    def replay(self, seed: int) -> str:
        return (f"minichain sim adversary --engine {self.engine} --nodes {self.n} --faulty {self.faulty} "
                f"--seed {seed} --runs 1 --trace")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["runs_per_second"] = self.runs_per_second
        out["replay_safety"] = self.replay(self.safety[0].seed) if self.safety else None
        out["replay_liveness"] = self.replay(self.liveness[0].seed) if self.liveness else None
        out["replay_error"] = self.replay(self.errors[0].seed) if self.errors else None
        return out


def engine_spec(name: str) -> EngineSpec:
    registry = load_registry()
    if name not in registry:
        raise AdversaryError(f"unknown engine {name!r} (known: {', '.join(sorted(registry))})")
    return registry[name]


def faulty_count(spec: EngineSpec, n: int, faulty: str | int) -> int:
    """``faulty`` as a number: an integer, or ``"f"`` / ``"f+1"`` for the engine's bound."""
    f = spec.max_faults(n)
    if isinstance(faulty, int):
        k = faulty
    elif faulty.strip() in ("f", "f+0"):
        k = f
    elif faulty.strip() == "f+1":
        k = f + 1
    else:
        try:
            k = int(faulty)
        except ValueError:
            raise AdversaryError(f"--faulty takes a number, f or f+1, not {faulty!r}") from None
    if not 0 <= k < n:
        raise AdversaryError(f"cannot make {k} of {n} replicas faulty (at least one must be honest)")
    return k


def search(engine: str, *, n: int = 4, faulty: str | int = "f", runs: int = DEFAULT_RUNS, seed: int = 0,
           stop_at_first: bool = False, progress: Callable[[int], None] | None = None) -> SearchReport:
    """Run ``runs`` scenarios (seeds ``seed``...) against ``engine``; see the module docstring."""
    spec = engine_spec(engine)
    if n < 2:
        raise AdversaryError("n must be at least 2")
    k = faulty_count(spec, n, faulty)
    byzantine = spec.fault_model == "byzantine"
    report = SearchReport(spec.name, spec.fault_model, n, spec.max_faults(n), k, seed)
    started = time.perf_counter()
    for s in range(seed, seed + runs):
        try:
            _, outcome = scenarios.run(spec, scenarios.draw(n, k, s, byzantine))
        except Exception as exc:        # an engine bug the scenario ran into: a finding too
            report.runs += 1
            report.errors.append(Finding(s, _error_text(exc)))
            if progress is not None:
                progress(s)
            if stop_at_first:
                break
            continue
        report.runs += 1
        report.events += outcome.events
        if not outcome.safe:
            report.safety.append(Finding(s, _conflict_text(outcome)))
        if not outcome.live:
            missing = ", ".join(f"replica {i} misses {m}" for i, m in sorted(outcome.missing.items()))
            report.liveness.append(Finding(s, f"{scenarios.HORIZON:.0f} s after GST: {missing}"))
        if progress is not None:
            progress(s)
        if stop_at_first and report.safety:
            break
    report.seconds = time.perf_counter() - started
    return report


def _error_text(exc: Exception) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{type(exc).__name__}: {exc} (in {frame.name}, {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})"


def _conflict_text(outcome: scenarios.Outcome) -> str:
    if outcome.conflicts:
        c = outcome.conflicts[0]
        values = "; ".join(f"{v} at {nodes}" for v, nodes in c["values"])
        return f"slot {c['slot']}: {values}" + (f" (+{len(outcome.conflicts) - 1} more slots)"
                                                if len(outcome.conflicts) > 1 else "")
    r = outcome.reversals[0]
    return f"replica {r['node']} took back slot {r['slot']}: {r['from']} -> {r['to']}"


def trace(engine: str, *, n: int = 4, faulty: str | int = "f", seed: int = 0, full: bool = False) -> list[str]:
    """The story of one run, line by line: the scenario, what the faulty replicas did (for
    a safety violation, up to the last conflicting decision unless ``full``), the honest
    decisions at the conflicting slots and the verdict."""
    spec = engine_spec(engine)
    k = faulty_count(spec, n, faulty)
    scenario = scenarios.draw(n, k, seed, spec.fault_model == "byzantine")
    log: list = []
    sim, outcome = scenarios.run(spec, scenario, trace=log)
    lines = [f"scenario of seed {seed}: {spec.name}, n={n}, {k} faulty (f={spec.max_faults(n)})"]
    lines += ["  " + line for line in scenario.describe()]
    slots = {c["slot"] for c in outcome.conflicts} | {r["slot"] for r in outcome.reversals}
    honest = set(scenario.honest)
    conflicting = [d for d in sim.decisions.records if d.slot in slots and d.node in honest]
    shown = log
    if conflicting and not full:
        end = max(d.time for d in conflicting)
        shown = [entry for entry in log if entry[0] <= end]
    lines.append("what the faulty replicas did" + (" until the last conflicting decision:" if shown is not log else ":"))
    last_strategy: dict[int, str] = {}
    for t, host, kind, text in shown:
        if kind == "strategy":
            if last_strategy.get(host) == text:
                continue
            last_strategy[host] = text
            text = f"replica {host} now: {text}"
        lines.append(f"  {t:8.3f}  {text}")
    if shown is not log:
        lines.append(f"  ... {len(log) - len(shown)} more lines to the end of the run (--trace-all shows them)")
    if conflicting:
        lines.append("decisions of honest replicas at the conflicting slots:")
        for d in conflicting:
            lines.append(f"  {d.time:8.3f}  replica {d.node} decides slot {d.slot}: {d.value!r}")
    verdict = "SAFETY VIOLATED: " + _conflict_text(outcome) if not outcome.safe else "safe"
    lines.append(f"verdict: {verdict}; " + ("live after GST" if outcome.live else
                 "liveness lost: " + ", ".join(f"replica {i} misses {m} payments" for i, m in sorted(outcome.missing.items()))))
    lines.append(f"run ended at {outcome.time:.2f} s after {outcome.events} events")
    return lines


def claims(engines: tuple[str, ...] = ENGINES, *, n: int = 4, runs: int = 100, seed: int = 0) -> list[dict]:
    """Each engine at ``f`` and at ``f + 1``: what the search found, beside what theory says."""
    rows = []
    for name in engines:
        spec = engine_spec(name)
        for label in ("f", "f+1"):
            report = search(name, n=n, faulty=label, runs=runs, seed=seed)
            expect = _expected(spec.fault_model, label)
            found = (not report.safety, not report.liveness)
            rows.append({"engine": name, "model": spec.fault_model, "faulty": report.faulty, "label": label,
                         "runs": report.runs, "safety": len(report.safety), "liveness": len(report.liveness),
                         "first_safety": report.safety[0].seed if report.safety else None,
                         "first_liveness": report.liveness[0].seed if report.liveness else None,
                         "expected": expect, "as_expected": _matches(expect, found)})
    return rows


def _expected(model: str, label: str) -> str:
    if label == "f":
        return "safe and live"
    return "safety can break" if model == "byzantine" else "safe; liveness can be lost"


def _matches(expect: str, found: tuple[bool, bool]) -> bool:
    safe, live = found
    if expect == "safe and live":
        return safe and live
    if expect == "safety can break":
        return not safe
    return safe and not live
