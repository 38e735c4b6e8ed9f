"""The comparison: every engine under every fault, with the same seeds, in one table.

``minichain sim compare`` (``cli/sim.py``) is a thin shell over :func:`compare`, which runs
each engine through the one scenario harness (``scenarios/replicated.py``) with the same
workload -- a client paying every 0.5 s -- the same network (50 ms mean exponential
links), the same fault schedule (fault at 5 s, heal at 20 s of a 40 s run) and the same
seeds, and reads the same numbers off every run:

* **committed** -- payments of the workload committed by a live honest replica (of the
  number submitted); **decided** -- log slots (Nakamoto: block heights) decided;
* **during fault** -- slots decided inside the fault window, per side of a partition;
* **finality** -- mean seconds from a payment's submission to its first commit (for
  Nakamoto: its block ``CONFIRMATIONS`` deep);
* **conflicts** -- slots at which two honest replicas committed different values: safety
  violations (for Nakamoto, two sides each burying a different block at one height);
* **reversed** -- payments an honest replica held committed and later did not; **double
  spent** -- coins two different payments of which were each committed somewhere;
* **msgs/decision** -- network messages sent per decided slot;
* **stalled** -- nothing decided during the fault window (or nothing at all, without one).

The scenarios (:data:`SCENARIOS`) give each engine its own ``f`` (``spec.max_faults(n)``:
``(n-1)//3`` for the Byzantine engines, ``(n-1)//2`` for the crash-fault ones and for
Nakamoto's honest hash majority), and each fault model its own attack: Byzantine
*voters* (BFT: vote for everything; CFT: lie; Nakamoto: a selfish-mining pool,
Eyal & Sirer 2014) and Byzantine *leaders* trying to commit two conflicting payments
(BFT/CFT: an equivocating leader; Nakamoto: Rosenfeld's 2014 double-spender with the
faulty miners' hash power against a merchant waiting ``CONFIRMATIONS`` blocks).

Besides the table, :func:`compare` gathers what the plots (``plots.py``) draw: messages
per decision against ``n``, each side's commits over time in the partitions, the
double-spend race against Nakamoto's and Rosenfeld's closed forms, and one Nakamoto fork
tree. Everything is seeded and nothing depends on the wall clock, so the same
configuration gives the same JSON, byte for byte.
"""

from __future__ import annotations

import json
import random
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from minichain.sim.analytic import (
    grunspan_perez_marco_double_spend, nakamoto_double_spend, rosenfeld_double_spend, wilson_interval,
)
from minichain.sim.scenarios import replicated
from minichain.sim.scenarios.races import double_spend_trials

ENGINES = ("nakamoto", "pbft", "tendermint", "raft", "paxos", "dls", "dls-byz")

# The Byzantine behaviours each fault model gets in the two families of attack, in order
# of preference (the first one the engine has is used; DLS's Byzantine version has "lie"
# where PBFT and Tendermint have "double-vote").
VOTER_ATTACK = {"byzantine": ("double-vote", "lie"), "crash": ("lie",), "hash": ("selfish",)}
LEADER_ATTACK = {"byzantine": ("equivocate",), "crash": ("equivocate",), "hash": ("double-spend",)}


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str                                    # the harness's scenario
    about: str
    faulty: Callable[[int], int] | None = None   # f -> how many replicas are faulty
    behaviour: dict[str, tuple[str, ...]] | None = None   # fault model -> behaviours, preferred first
    options: dict[str, Any] = field(default_factory=dict)


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("normal", "normal", "no fault (fixed latency)"),
    Scenario("partition-even", "partition",
             "two equal halves from {fault_at:g} s to {heal_at:g} s; a second after the split, a client pays one "
             "coin to merchant A on one side and to merchant B on the other",
             options={"split": "even", "cross_spend": True}),
    Scenario("partition-majority", "partition",
             "as partition-even, but one side is exactly the engine's quorum and the other the rest",
             options={"split": "quorum", "cross_spend": True}),
    Scenario("crash-f", "crash", "f replicas crash at {fault_at:g} s and stay down", lambda f: f),
    Scenario("crash-f+1", "crash", "f + 1 replicas crash at {fault_at:g} s and stay down", lambda f: f + 1),
    Scenario("byzantine-f", "byzantine",
             "f Byzantine voters: BFT engines vote for every value (double-vote; dls-byz: lie), crash-fault "
             "engines lie, Nakamoto's faulty miners pool their hash power and mine selfishly (Eyal & Sirer 2014)",
             lambda f: f, VOTER_ATTACK),
    Scenario("byzantine-f+1", "byzantine", "as byzantine-f with f + 1", lambda f: f + 1, VOTER_ATTACK),
    Scenario("loss-1%", "loss", "every link drops 1% of the messages", options={"loss": 0.01}),
    Scenario("loss-10%", "loss", "every link drops 10% of the messages", options={"loss": 0.10}),
    Scenario("loss-30%", "loss", "every link drops 30% of the messages", options={"loss": 0.30}),
    Scenario("gst", "gst", "until GST at {heal_at:g} s every message is held back an extra exponential delay "
             "of mean {gst_delay:g} s (but never past GST)"),
    Scenario("skew", "skew", "clocks offset by up to +-{skew:g} s and drifting up to +-{skew:g}%"),
    Scenario("double-spend-f", "byzantine",
             "f Byzantine leaders try to commit two payments of one coin: an equivocating leader sends one to "
             "half the replicas and its twin to the other half; Nakamoto's faulty miners pool their hash power "
             "in Rosenfeld's (2014) double-spender against a merchant waiting {confirmations} confirmations",
             lambda f: f, LEADER_ATTACK),
    Scenario("double-spend-f+1", "byzantine", "as double-spend-f with f + 1", lambda f: f + 1, LEADER_ATTACK),
)}


@dataclass(frozen=True)
class Config:
    engines: tuple[str, ...] = ENGINES
    scenarios: tuple[str, ...] = tuple(SCENARIOS)
    n: int = 4
    seeds: int = 5                       # runs per engine and scenario: seeds seed .. seed+seeds-1
    seed: int = 1
    duration: float = 40.0
    fault_at: float = 5.0
    heal_at: float = 20.0
    plots: bool = True                   # also gather the plots' data
    scaling_n: tuple[int, ...] = (4, 7, 10, 16, 25, 31)
    scaling_duration: float = 15.0
    ds_qs: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4)
    ds_zs: tuple[int, ...] = tuple(range(0, 9))
    ds_trials: int = 4_000

    def seed_list(self) -> list[int]:
        return list(range(self.seed, self.seed + self.seeds))


class CompareError(ValueError):
    """A comparison that cannot be run as asked (unknown engine or scenario, n too small)."""


def check(cfg: Config) -> None:
    known = set(ENGINES) | set(replicated.load_registry())
    for e in cfg.engines:
        if e not in known:
            raise CompareError(f"unknown engine {e!r} (known: {', '.join(sorted(known))})")
    for s in cfg.scenarios:
        if s not in SCENARIOS:
            raise CompareError(f"unknown scenario {s!r} (known: {', '.join(SCENARIOS)})")
    if cfg.n < 4:
        raise CompareError("the comparison needs n >= 4 (so that the Byzantine engines tolerate one fault)")
    if cfg.seeds < 1:
        raise CompareError("seeds must be at least 1")


def plan(cfg: Config) -> int:
    """How many steps :func:`compare` takes (for a progress bar)."""
    steps = len(cfg.engines) * len(cfg.scenarios) * cfg.seeds
    if cfg.plots:
        steps += len(cfg.engines) * len(cfg.scaling_n) + 1
    return steps


# -- one run ---------------------------------------------------------------------------------


def run_one(engine: str, scenario: str, seed: int, cfg: Config, *, timeline: bool = False) -> tuple[dict, dict]:
    """One engine, one scenario, one seed: (the row of numbers, the raw extras)."""
    sc = SCENARIOS[scenario]
    spec = replicated.engine_spec(engine)
    f = spec.max_faults(cfg.n)
    kwargs: dict[str, Any] = dict(sc.options)
    if sc.faulty is not None:
        kwargs["faulty"] = sc.faulty(f)
    if sc.behaviour is not None:
        choices = sc.behaviour[spec.fault_model]
        kwargs["behaviour"] = next((b for b in choices if b in spec.behaviours), choices[0])
    r = replicated.run(engine, sc.kind, n=cfg.n, seed=seed, duration=cfg.duration,
                       fault_at=cfg.fault_at, heal_at=cfg.heal_at, timeline=timeline, **kwargs)
    x = r.extra
    row = {
        "engine": engine,
        "family": spec.family,
        "scenario": scenario,
        "seed": seed,
        "n": cfg.n,
        "f": f,
        "faulty": kwargs.get("faulty", 0),
        "behaviour": kwargs.get("behaviour"),
        "submitted": x["submitted"],
        "committed": x["committed"],
        "decided": r.decided_slots,
        "during_fault": x.get("decided_during_fault_by_side"),
        "finality": _round(x["latency_mean"]),
        "conflicts": len(r.conflicts),
        "reversed": x["reversed_payments"],
        "double_spent": x["double_spent_coins"],
        "messages": r.messages["sent"],
        "msgs_per_decision": _round(r.messages_per_decision),
        "stalled": bool(x["stalled"]),
    }
    for key in ("split", "cross_spend", "blocks_mined", "blocks_orphaned", "max_reorg_depth",
                "blocks_mined_during_fault_by_side"):
        if x.get(key) is not None:
            row[key] = x[key]
    return row, x


# -- the whole comparison ------------------------------------------------------------------


def compare(cfg: Config = Config(), progress: Callable[[str], None] | None = None) -> dict:
    """Run the grid (and the plots' extra runs); the result is JSON-ready and seeded."""
    check(cfg)
    tick = progress or (lambda what: None)
    runs: list[dict] = []
    timelines: dict[str, dict[str, dict]] = {}
    fork_tree = None
    first = cfg.seed_list()[0]
    for scenario in cfg.scenarios:
        for engine in cfg.engines:
            for seed in cfg.seed_list():
                draw = cfg.plots and seed == first and SCENARIOS[scenario].kind == "partition"
                row, extra = run_one(engine, scenario, seed, cfg, timeline=draw)
                runs.append(row)
                if draw:
                    timelines.setdefault(scenario, {})[engine] = {
                        "split": extra["split"],
                        "commits": [[_round(t) for t in side] for side in extra["timeline"]["commits"]],
                        "reversals": [_round(t) for t in extra["timeline"]["reversals"]],
                    }
                    if engine == "nakamoto" and scenario == "partition-even":
                        fork_tree = {"seed": seed, "split": extra["split"], "blocks": extra["tree"],
                                     "window": extra["window"]}
                tick(f"{engine} {scenario} seed {seed}")
    out: dict[str, Any] = {
        "config": _config_dict(cfg),
        "setup": setup(cfg),
        "scenarios": {s: SCENARIOS[s].about.format(**setup(cfg)) for s in cfg.scenarios},
        "rows": aggregate(runs, cfg),
        "runs": runs,
    }
    if cfg.plots:
        out["timelines"] = timelines
        out["fork_tree"] = fork_tree
        out["scaling"] = scaling(cfg, tick)
        out["double_spend"] = double_spend_curve(cfg)
        tick("double-spend races")
    return out


def aggregate(runs: list[dict], cfg: Config) -> list[dict]:
    """One row per (engine, scenario): means over the seeds, totals of the safety counts."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["engine"], r["scenario"]), []).append(r)
    rows = []
    for scenario in cfg.scenarios:
        for engine in cfg.engines:
            rs = groups.get((engine, scenario))
            if not rs:
                continue
            during = None
            if rs[0]["during_fault"] is not None:
                during = [_round(statistics.fmean(r["during_fault"][i] for r in rs))
                          for i in range(len(rs[0]["during_fault"]))]
            fin = [r["finality"] for r in rs if r["finality"] is not None]
            mpd = [r["msgs_per_decision"] for r in rs if r["msgs_per_decision"] is not None]
            rows.append({
                "engine": engine,
                "scenario": scenario,
                "runs": len(rs),
                "submitted": rs[0]["submitted"],
                "committed": _round(statistics.fmean(r["committed"] for r in rs)),
                "decided": _round(statistics.fmean(r["decided"] for r in rs)),
                "during_fault": during,
                "finality": _round(statistics.fmean(fin)) if fin else None,
                "conflicts": sum(r["conflicts"] for r in rs),
                "reversed": sum(r["reversed"] for r in rs),
                "double_spent": sum(r["double_spent"] for r in rs),
                "msgs_per_decision": _round(statistics.fmean(mpd)) if mpd else None,
                "stalled": sum(r["stalled"] for r in rs),
            })
    return rows


def scaling(cfg: Config, tick: Callable[[str], None]) -> dict[str, list[list[float]]]:
    """Messages per decision against n, fault-free, the first seed, a shorter run."""
    out: dict[str, list[list[float]]] = {}
    for engine in cfg.engines:
        points = []
        for n in cfg.scaling_n:
            r = replicated.run(engine, "normal", n=n, seed=cfg.seed, duration=cfg.scaling_duration)
            if r.messages_per_decision is not None:
                points.append([n, _round(r.messages_per_decision)])
            tick(f"{engine} n={n}")
        out[engine] = points
    return out


def double_spend_curve(cfg: Config) -> list[dict]:
    """The double-spend race (Rosenfeld's model, played block by block) for several
    attacker shares, beside the two closed forms."""
    rng = random.Random(f"double-spend-{cfg.seed}")
    rows = []
    for q in cfg.ds_qs:
        for z in cfg.ds_zs:
            wins = double_spend_trials(q, z, cfg.ds_trials, rng)
            lo, hi = wilson_interval(wins, cfg.ds_trials)
            rows.append({
                "q": q, "z": z, "trials": cfg.ds_trials, "successes": wins,
                "rate": _round(wins / cfg.ds_trials), "ci95": [_round(lo), _round(hi)],
                "nakamoto": _round(nakamoto_double_spend(q, z)),
                "rosenfeld": _round(rosenfeld_double_spend(q, z)),
                "grunspan_perez_marco": _round(grunspan_perez_marco_double_spend(q, z)),
            })
    return rows


# -- presenting it ---------------------------------------------------------------------------


def setup(cfg: Config) -> dict[str, Any]:
    """The fixed parameters every run shares, read from where they are defined."""
    import inspect

    from minichain.sim.engines import nakamoto_replica

    defaults = {k: p.default for k, p in inspect.signature(replicated.run).parameters.items()}
    window = cfg.heal_at - cfg.fault_at
    return {
        "n": cfg.n,
        "run": cfg.duration,
        "fault_at": cfg.fault_at,
        "heal_at": cfg.heal_at,
        "grace": min(2.0, window / 4),            # as replicated.measure
        "payment_every": defaults["interval"],
        "latency_mean": defaults["latency"],
        "gst_delay": defaults["gst_delay"],
        "skew": defaults["skew"],
        "block_interval": nakamoto_replica.BLOCK_INTERVAL,
        "confirmations": nakamoto_replica.CONFIRMATIONS,
        "peer_degree": nakamoto_replica.PEER_DEGREE,
    }


def describe(cfg: Config) -> str:
    """The setup and the scenarios, in Markdown."""
    p = setup(cfg)
    lines = [
        f"* {p['n']} replicas (miners); runs of {p['run']:g} s of virtual time; a client pays every "
        f"{p['payment_every']:g} s and every replica receives each payment.",
        f"* Links: exponential latency with a {p['latency_mean'] * 1000:g} ms mean (fixed {p['latency_mean'] * 1000:g} ms "
        "in the fault-free scenario), FIFO.",
        f"* Faults start at {p['fault_at']:g} s; partitions heal (and GST falls) at {p['heal_at']:g} s; decisions in "
        f"the first {p['grace']:g} s of a fault window are not counted as decided during the fault.",
        f"* Nakamoto: a block every {p['block_interval']:g} s on average, decided {p['confirmations']} blocks deep, "
        f"gossip over random peers ({p['peer_degree']} outbound each).",
        "",
        "| scenario | what happens |",
        "|---|---|",
    ]
    for name in cfg.scenarios:
        lines.append(f"| {name} | {SCENARIOS[name].about.format(**p)} |")
    return "\n".join(lines) + "\n"


HEADERS = ("engine", "scenario", "committed", "decided", "during fault (per side)", "finality s", "conflicts",
           "reversed", "double-spent", "msgs/decision", "stalled")


def table_rows(result: dict) -> list[list[str]]:
    """The table's cells as text (the same for the terminal and Markdown)."""
    out = []
    for r in result["rows"]:
        during = "-" if r["during_fault"] is None else "/".join(_num(x) for x in r["during_fault"])
        stalled = "no" if r["stalled"] == 0 else ("yes" if r["stalled"] == r["runs"] else f"{r['stalled']}/{r['runs']}")
        out.append([
            r["engine"], r["scenario"], f"{_num(r['committed'])}/{r['submitted']}", _num(r["decided"]), during,
            "-" if r["finality"] is None else f"{r['finality']:.2f}",
            str(r["conflicts"]), str(r["reversed"]), str(r["double_spent"]),
            "-" if r["msgs_per_decision"] is None else f"{r['msgs_per_decision']:.1f}", stalled,
        ])
    return out


def markdown(result: dict) -> str:
    """The table in Markdown (one row per engine and scenario)."""
    rows = table_rows(result)
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(HEADERS) - 2)) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def caption(result: dict) -> str:
    c = result["config"]
    seeds = f"seeds {c['seed']}..{c['seed'] + c['seeds'] - 1}" if c["seeds"] > 1 else f"seed {c['seed']}"
    return (f"n={c['n']}, {seeds}, {c['duration']:g} s runs, fault at {c['fault_at']:g} s, heal at {c['heal_at']:g} s; "
            "committed/decided/during fault/finality/msgs per decision are means over the seeds, "
            "conflicts/reversed/double-spent are totals, stalled counts runs")


def to_json(result: dict) -> str:
    return json.dumps(result, sort_keys=True, indent=1)


def write(result: dict, out_dir: str) -> list[str]:
    """compare.json, compare.md and (if the plots' data is there) the PNGs, in ``out_dir``."""
    import os

    os.makedirs(out_dir, exist_ok=True)
    written = []
    path = os.path.join(out_dir, "compare.json")
    with open(path, "w") as fh:
        fh.write(to_json(result) + "\n")
    written.append(path)
    path = os.path.join(out_dir, "compare.md")
    with open(path, "w") as fh:
        fh.write(markdown(result) + "\n" + caption(result) + "\n")
    written.append(path)
    if "scaling" in result:
        from minichain.sim import plots

        written += plots.draw_all(result, out_dir)
    return written


# -- helpers ---------------------------------------------------------------------------------


def _round(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(float(x), digits)


def _num(x: float) -> str:
    return str(int(round(x))) if abs(x - round(x)) < 1e-9 else f"{x:.1f}"


def _config_dict(cfg: Config) -> dict:
    d = asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
