"""Sweep throughput: points per second with 1 and 2 local workers, and the Dask path's cost.

    python -m benchmarks.sweep [--quick] [--no-dask]

Rows, all measured in this one run:

* ``--workers 1``        -- the grid in this process, one run after another: the baseline;
* ``--workers 2``        -- the same grid on two local processes: the ratio is the speed-up
  (the issue's target is >= 1.8x on a 2-core machine; other load on the machine lowers it);
* ``Dask, 2 workers``    -- the same grid on a Dask ``LocalCluster`` of two worker processes
  started here (its start-up is printed in the note, not counted in the time);
* the ``tiny`` rows      -- a small grid of runs that take about a tenth of a millisecond,
  so the time per run is the executor's overhead: local processes against Dask.

Each grid has one seed per point, so points/s is runs/s. Every executor's results table
is compared with the baseline's, byte for byte. ``CPU share`` is the CPU time the local
runs got over wall time x workers: near 100% on an idle machine, lower when other work
shares the cores (and then no executor can show the speed-up: with Linux's autogroup
scheduling, ``/proc/sys/kernel/sched_autogroup_enabled``, all the processes of one
terminal session share one session's slice of the CPU against other busy sessions, so two
workers then split what one would have had). Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from rich.console import Console
from rich.table import Table

from minichain.sim import sweep
from minichain.sim.sweep import results

# ~80 ms a run: 24 x 5 = 120 points of selfish mining, 1,000,000 blocks each -- about ten
# seconds in one process, so that starting the worker processes (a fixed cost of a few
# hundred milliseconds, which any real sweep amortises) does not decide the ratio; the
# ``tiny`` rows measure that overhead on its own.
GRID = {"scenario": "selfish-mining", "seeds": 1,
        "axes": {"alpha": "0.02:0.5:0.02", "gamma": "0:1.25:0.25", "blocks": 1_000_000}}
# ~0.1 ms a run: the executor's overhead dominates.
TINY = {"scenario": "selfish-mining", "seeds": 1,
        "axes": {"alpha": "0.01:0.5:0.01", "gamma": [0, 0.5, 1, 0.25], "blocks": 100}}


def cpu() -> float:
    """CPU seconds of this process and of its finished child processes."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def timed(spec, **where) -> tuple[float, str, float]:
    """Wall seconds, the results table, and the share of the cores the run got (CPU
    seconds over wall seconds x workers: below 1 when other work shares the machine)."""
    started, cpu0 = time.perf_counter(), cpu()
    result = sweep.sweep(spec, plots=False, **where)
    wall = time.perf_counter() - started
    return wall, results.to_csv(result.rows), (cpu() - cpu0) / (wall * where.get("workers", 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a grid a quarter the size")
    ap.add_argument("--no-dask", action="store_true", help="skip the Dask rows")
    args = ap.parse_args()
    grid = dict(GRID, axes=dict(GRID["axes"], blocks=250_000)) if args.quick else GRID
    big, tiny = sweep.from_dict(grid), sweep.from_dict(TINY)
    n_big, n_tiny = len(big.points()), len(tiny.points())

    table = Table(title="minichain sim sweep: executors on one grid")
    for col in ("grid", "executor", "points", "wall s", "points/s", "ratio", "CPU share", "note"):
        table.add_column(col, justify="left" if col in ("grid", "executor", "note") else "right")

    base_wall, base_csv, share = timed(big, workers=1)
    table.add_row("selfish", "--workers 1", str(n_big), f"{base_wall:.2f}", f"{n_big / base_wall:.1f}", "1.00",
                  f"{share:.0%}", "baseline: this process")
    wall, csv, share = timed(big, workers=2)
    table.add_row("selfish", "--workers 2", str(n_big), f"{wall:.2f}", f"{n_big / wall:.1f}", f"{base_wall / wall:.2f}",
                  f"{share:.0%}", f"target >= 1.8; results identical: {'yes' if csv == base_csv else 'NO'}")
    tiny_proc, tiny_csv, _ = timed(tiny, workers=2)

    cluster = None
    if not args.no_dask:
        try:
            from distributed import LocalCluster
        except ImportError:
            table.add_row("selfish", "Dask", "-", "-", "-", "-", "-", "not installed: pip install 'minichain[cluster]'")
        else:
            started = time.perf_counter()
            cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
            startup = time.perf_counter() - started
            where = {"scheduler": cluster.scheduler_address}
            wall, csv, _ = timed(big, **where)
            table.add_row("selfish", "Dask, 2 workers", str(n_big), f"{wall:.2f}", f"{n_big / wall:.1f}",
                          f"{base_wall / wall:.2f}", "-",
                          f"cluster start {startup:.1f} s (not counted); identical: {'yes' if csv == base_csv else 'NO'}")
    per_proc = 1000 * tiny_proc / n_tiny
    table.add_row("tiny", "--workers 2", str(n_tiny), f"{tiny_proc:.2f}", f"{n_tiny / tiny_proc:.0f}", "1.00", "-",
                  f"{per_proc:.2f} ms per run: the overhead of local processes")
    if cluster is not None:
        wall, csv, _ = timed(tiny, scheduler=cluster.scheduler_address)
        per = 1000 * wall / n_tiny
        table.add_row("tiny", "Dask, 2 workers", str(n_tiny), f"{wall:.2f}", f"{n_tiny / wall:.0f}",
                      f"{tiny_proc / wall:.2f}", "-",
                      f"{per:.2f} ms per run: {per - per_proc:+.2f} ms against local processes; "
                      f"identical: {'yes' if csv == tiny_csv else 'NO'}")
        cluster.close()
    Console(width=160).print(table)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average at the end: {load:.1f} on {os.cpu_count()} cores (other work on the machine lowers the ratios)")


if __name__ == "__main__":
    main()
