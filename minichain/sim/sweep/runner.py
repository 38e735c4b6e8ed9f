"""Carrying out a sweep: the grid's runs, what the journal already has, an executor for the
rest, and the tables and files made from them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

from minichain.sim.sweep import execute, results
from minichain.sim.sweep.spec import Spec, canonical, run_seed

Progress = Callable[[int, int], None]          # (runs done, runs in the sweep)


@dataclass
class SweepResult:
    spec: Spec
    rows: list[dict[str, Any]]                  # one per (point, seed), grid order
    aggregate: list[dict[str, Any]]             # one per point
    timings: list[dict[str, Any]]               # one per (point, seed): wall s, peak RSS, worker
    executor: str                               # what ran the new runs
    reused: int                                 # runs found in the results directory
    computed: int                               # runs computed now
    elapsed: float                              # wall seconds of this call
    written: list[str] = field(default_factory=list)


def tasks(spec: Spec) -> list[tuple[int, execute.Task]]:
    """(point index, task) for every (point, seed), in grid order."""
    out = []
    for i, point in enumerate(spec.points()):
        for seed in spec.seeds:
            out.append((i, (canonical(spec.scenario, point, seed), spec.scenario, point, seed)))
    return out


def describe_executor(workers: int, scheduler: str | None) -> str:
    """What :func:`sweep` will run on, without starting it (for a progress bar's label)."""
    if scheduler is not None:
        return f"Dask at {scheduler}"
    return "this process" if workers == 1 else f"{workers} local processes"


def sweep(spec: Spec, out_dir: str | None = None, *, workers: int = 1, scheduler: str | None = None,
          progress: Progress | None = None, plots: bool = True) -> SweepResult:
    """Run every (point, seed) of ``spec`` not already in ``out_dir``; write the files there."""
    started = time.perf_counter()
    code = execute.code_fingerprint()
    grid = tasks(spec)
    journal = results.Journal(out_dir, code)
    try:
        todo = [task for _, task in grid if task[0] not in journal.entries]
        by_key = {task[0]: task for task in todo}
        reused = len(grid) - len(todo)
        done = reused
        tick = progress or (lambda done, total: None)
        description = "nothing to run"
        if not todo:
            tick(done, len(grid))
        else:
            with execute.executor(workers, scheduler) as ex:
                description = ex.description
                tick(done, len(grid))           # after the workers started (a progress bar's thread may follow)
                for result in ex.results(todo):
                    if result["code"] != code:
                        raise execute.SweepError(
                            f"worker {result['worker']} runs other minichain code (fingerprint {result['code']}, "
                            f"here {code}): install the same version everywhere")
                    _, scenario, params, seed = by_key[result["key"]]
                    journal.add({**result, "scenario": scenario, "params": params, "seed": seed})
                    done += 1
                    tick(done, len(grid))
        runs = [(i, task[2], task[3], journal.entries[task[0]]["metrics"]) for i, task in grid]
        seeds = [run_seed(task[0]) for _, task in grid]
        entries = [journal.entries[task[0]] for _, task in grid]
    finally:
        journal.compact()
    table = results.rows(spec, runs, seeds)
    agg = results.aggregate(spec, table)
    times = results.timings(runs, entries)
    out = SweepResult(spec, table, agg, times, description, reused, len(grid) - reused, 0.0)
    if out_dir is not None:
        out.written = results.write(out_dir, spec, table, agg, times)
        if plots:
            from minichain.sim.sweep import plots as sweep_plots

            out.written += sweep_plots.draw(spec, agg, out_dir)
    out.elapsed = time.perf_counter() - started
    return out
