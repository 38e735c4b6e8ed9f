"""Long adversarial runs (issue 21): the search at f and f + 1, the fault mixes, one attack.

    python -m benchmarks.adversary [--quick] [--runs N] [--mixes M] [--attack-seeds A]
                                   [--engines pbft,tendermint,...] [--jobs J]

Three tables:

* **search** -- ``minichain.sim.adversary.search`` per engine at ``n = 4``: ``--runs``
  scenarios at ``f`` (the claim: no safety violation, no liveness lost after GST) and at
  ``f + 1`` (until the first safety violation, at most a tenth of ``--runs``). Runs per second and
  the ratio to a *baseline* measured in the same run: the same scenarios with no faulty
  replica (so the ratio is what the twins and the strategies cost);
* **fault mixes** -- ``minichain.sim.adversary.faultmix`` for PBFT, Tendermint and
  dls-byz: ``--mixes`` seeded mixes of at most ``f`` Byzantine replicas (the engine's own
  behaviours), loss, duplication, reordering, a partition and a crash, all over by 12 s,
  run to 120 s: unsafe runs, and runs where an honest replica missed a payment;
* **late certificate** -- the dls-byz attacker of issue 21 (an owner that splits its locks
  and hands a kept certificate to one node later) at t = 1, n = 4, ``--attack-seeds`` seeds:
  runs with a conflicting slot.

Every run is a function of its seed, so ``--jobs`` only splits the seeds among processes.
Nothing here asserts a time; the numbers are printed with the seeds.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from typing import Any

from rich.console import Console
from rich.table import Table

FIRST_SEED = 1
MIX_UNTIL = 120.0
MIX_ENGINES = ("pbft", "tendermint", "dls-byz")
DLS_BEHAVIOURS = ("silent", "lie", "equivocate", "late-certificate")


def _search_chunk(args: tuple) -> dict:
    from minichain.sim.adversary import search

    engine, faulty, first, runs, stop = args
    r = search(engine, n=4, faulty=faulty, runs=runs, seed=first, stop_at_first=stop)
    return {"runs": r.runs, "events": r.events, "faulty": r.faulty,
            "safety": [f.seed for f in r.safety], "liveness": [f.seed for f in r.liveness],
            "errors": [f.seed for f in r.errors]}


def _mix_chunk(args: tuple) -> dict:
    from minichain.sim.adversary.faultmix import committed_counts, random_fault_run, PAYMENTS
    from minichain.sim.engines import dls, pbft, tendermint

    engine, first, runs = args
    build, behaviours = {"pbft": (pbft.build, None), "tendermint": (tendermint.build, None),
                         "dls-byz": (dls.build_byzantine, DLS_BEHAVIOURS)}[engine]
    extra = {"behaviours": behaviours} if behaviours else {}
    out: dict[str, Any] = {"runs": 0, "events": 0, "unsafe": [], "stalled": []}
    for seed in range(first, first + runs):
        sim = random_fault_run(build, seed, 4, until=MIX_UNTIL, **extra)
        r = sim.result()
        out["runs"] += 1
        out["events"] += sim.events
        if not r.safe or r.reversals:
            out["unsafe"].append(seed)
        if min(committed_counts(sim)) < PAYMENTS:
            out["stalled"].append(seed)
    return out


def _attack_chunk(args: tuple) -> dict:
    from minichain.sim import Exponential, Network, Simulation
    from minichain.sim.engines import dls
    from minichain.sim.workload import schedule_payments

    first, runs = args
    out: dict[str, Any] = {"runs": 0, "conflicts": [], "handed": 0}
    for seed in range(first, first + runs):
        owner = seed % 4
        sim = Simulation(4, lambda ctx: dls.build_byzantine(ctx, "late-certificate" if ctx.node_id == owner else None),
                         seed=seed, network=Network(Exponential(0.03, 0.01)))
        schedule_payments(sim, 30, 0.05, start=0.3)
        sim.run(until=12.0)
        out["runs"] += 1
        out["handed"] += len(sim.engines[owner].handed)
        if sim.result().conflicts:
            out["conflicts"].append(seed)
    return out


def _parallel(fn, tasks: list[tuple], jobs: int) -> tuple[list[dict], float]:
    started = time.perf_counter()
    if jobs > 1 and len(tasks) > 1:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            parts = pool.map(fn, tasks)
    else:
        parts = [fn(t) for t in tasks]
    return parts, time.perf_counter() - started


def _chunks(first: int, runs: int, jobs: int) -> list[tuple[int, int]]:
    size = max(1, -(-runs // max(jobs * 4, 1)))
    return [(s, min(size, first + runs - s)) for s in range(first, first + runs, size)]


def _merge(parts: list[dict]) -> dict:
    out: dict[str, Any] = {}
    for p in parts:
        for k, v in p.items():
            if isinstance(v, list):
                out.setdefault(k, []).extend(v)
            elif k == "faulty":
                out[k] = v
            else:
                out[k] = out.get(k, 0) + v
    return out


def _seeds(found: list[int]) -> str:
    return "none" if not found else f"{len(found)} (first seed {min(found)})"


def search_table(engines: list[str], runs: int, jobs: int) -> Table:
    table = Table(title=f"adversary search, n = 4, seeds from {FIRST_SEED}")
    for col in ("engine", "faulty", "runs", "wall s", "runs/s", "ratio", "safety violated", "liveness lost", "errors"):
        table.add_column(col, justify="left" if col in ("engine", "faulty") else "right")
    for engine in engines:
        base_runs = max(1, runs // 20)
        parts, wall = _parallel(_search_chunk, [(engine, 0, s, k, False) for s, k in _chunks(FIRST_SEED, base_runs, jobs)], jobs)
        base = _merge(parts)
        base_rate = base["runs"] / wall
        table.add_row(engine, "0 (baseline)", f"{base['runs']:,}", f"{wall:.1f}", f"{base_rate:.1f}", "1.00",
                      _seeds(base["safety"]), _seeds(base["liveness"]), _seeds(base["errors"]))
        for label, stop in (("f", False), ("f+1", True)):
            # At f + 1: until the first safety violation, at most a tenth of --runs (the
            # crash-fault engines never violate safety; their stalls run to the horizon).
            budget = max(200, runs // 10)
            chunks = [(engine, label, FIRST_SEED, budget, True)] if stop else \
                [(engine, label, s, k, False) for s, k in _chunks(FIRST_SEED, runs, jobs)]
            parts, wall = _parallel(_search_chunk, chunks, jobs)
            got = _merge(parts)
            rate = got["runs"] / wall
            table.add_row("", f"{got['faulty']} ({label})" + (" to the first" if stop else ""), f"{got['runs']:,}",
                          f"{wall:.1f}", f"{rate:.1f}", f"{rate / base_rate:.2f}",
                          _seeds(got["safety"]), _seeds(got["liveness"]), _seeds(got["errors"]))
    return table


def mix_table(mixes: int, jobs: int, engines: list[str]) -> Table:
    table = Table(title=f"fault mixes with at most f Byzantine replicas, n = 4, run to {MIX_UNTIL:.0f} s "
                        f"(faults over by 12 s), seeds from {FIRST_SEED}")
    for col in ("engine", "runs", "wall s", "runs/s", "events/s", "unsafe", "an honest replica missed a payment"):
        table.add_column(col, justify="left" if col == "engine" else "right")
    for engine in [e for e in MIX_ENGINES if e in engines]:
        parts, wall = _parallel(_mix_chunk, [(engine, s, k) for s, k in _chunks(FIRST_SEED, mixes, jobs)], jobs)
        got = _merge(parts)
        table.add_row(engine, f"{got['runs']:,}", f"{wall:.1f}", f"{got['runs'] / wall:.1f}",
                      f"{got['events'] / wall:,.0f}", _seeds(got["unsafe"]), _seeds(got["stalled"]))
    return table


def attack_table(seeds: int, jobs: int) -> Table:
    parts, wall = _parallel(_attack_chunk, list(_chunks(FIRST_SEED, seeds, jobs)), jobs)
    got = _merge(parts)
    table = Table(title="dls-byz against the late-certificate owner (issue 21), t = 1, n = 4")
    for col in ("runs", "wall s", "certificates handed out", "runs with a conflict"):
        table.add_column(col, justify="right")
    table.add_row(f"{got['runs']:,}", f"{wall:.1f}", f"{got['handed']:,}", _seeds(got["conflicts"]))
    return table


def main() -> None:
    from minichain.sim.adversary import ENGINES

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small numbers: 200 runs, 200 mixes, 100 attack seeds")
    ap.add_argument("--runs", type=int, default=10_000, help="search runs per engine at f (and at most at f+1)")
    ap.add_argument("--mixes", type=int, default=10_000, help="fault mixes per engine")
    ap.add_argument("--attack-seeds", type=int, default=1_000)
    ap.add_argument("--engines", default=",".join(ENGINES), help="engines to search (the mixes: those of them "
                    "among pbft, tendermint and dls-byz)")
    ap.add_argument("--jobs", type=int, default=1, help="processes (the seeds are split among them)")
    ap.add_argument("--only", choices=("search", "mixes", "attack"), help="run one table only")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.mixes, args.attack_seeds = 200, 200, 100
    console = Console()
    started = time.perf_counter()
    if args.only in (None, "attack"):
        console.print(attack_table(args.attack_seeds, args.jobs))
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if args.only in (None, "mixes"):
        console.print(mix_table(args.mixes, args.jobs, engines))
    if args.only in (None, "search"):
        console.print(search_table(engines, args.runs, args.jobs))
    console.print(f"total wall time {time.perf_counter() - started:.0f} s, {args.jobs} process(es)")


if __name__ == "__main__":
    main()
