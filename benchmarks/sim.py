"""Simulator throughput: events per second, the 1,000 x 1,000 Nakamoto run, double-spend trials.

    python -m benchmarks.sim [--quick] [--nodes N] [--blocks B] [--trials T]
                             [--baseline REF [--repeat K]]

Rows:

* ``flood n=100``       -- the example engine: a baseline of raw simulator speed
  (heap, network model, dispatch) with almost no protocol work per event;
* ``nakamoto n=100``    -- Nakamoto nodes (BlockTree fork choice per block) on the same
  machine, same run: the ratio says what the protocol costs on top of the simulator;
* ``nakamoto NxB``      -- the issue's target: N nodes (default 1,000, 8 random outbound
  peers each, log-normal latency) until B blocks (default 1,000) are mined, wall time;
* ``double-spend race`` -- trials per second of the fast path (q = 0.3, z = 6).

Ratios are against the first row, measured in the same run, so they mean something on
any machine. Nothing here asserts a time: the numbers are printed, with the seed.

``--baseline REF`` (a git ref, exported with ``git archive``) measures the ``nakamoto NxB``
row on this tree and on REF's code, ``--repeat`` times each, alternating, every run in a
fresh interpreter, and prints each tree's median and their ratio: the before-and-after
of a change, in one run on one machine (the machines are shared and noisy; alternating
spreads the noise over both).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from rich.console import Console
from rich.table import Table

from minichain.sim import Exponential, LogNormal, Network, Simulation
from minichain.sim.engines.flood import Flood
from minichain.sim.engines.nakamoto import NakamotoNode, World, random_peers, shares_from
from minichain.sim.scenarios.races import double_spend_trials

from benchmarks.trees import ROOT, export_tree, simcore_missing

SEED = 1


def flood(n: int, slots: int) -> tuple[int, float]:
    peers = random_peers(n, 8, random.Random(SEED))
    sim = Simulation(n, lambda ctx: Flood(ctx, slots=slots, interval=1.0, peers=peers[ctx.node_id]),
                     seed=SEED, network=Network(Exponential(0.1, base=0.02)))
    t = time.perf_counter()
    sim.run()
    return sim.events, time.perf_counter() - t


def nakamoto(n: int, blocks: int, miners: int = 50) -> tuple[int, float, int]:
    rng = random.Random(SEED)
    peers = random_peers(n, 8, rng)
    shares = shares_from([1.0] * min(n, miners), n)
    world = World(block_interval=600.0, confirmations=6)
    sim = Simulation(n, lambda ctx: NakamotoNode(ctx, world, share=shares[ctx.node_id], peers=peers[ctx.node_id]),
                     seed=SEED, network=Network(LogNormal(0.1, 0.5)))

    # Stop once block number ``blocks`` + 1 is found (genesis is in world.blocks too): the
    # world tells the simulation when it registers it, which stops the run after that very
    # event -- what ``run(stop_when=...)`` would do, without a call after every event.
    register = world.register

    def register_and_count(block) -> None:
        register(block)
        if len(world.blocks) > blocks:
            sim.stop()

    world.register = register_and_count   # type: ignore[method-assign]

    def stop_mining():
        for e in sim.engines:
            e.share = 0.0

    t = time.perf_counter()
    sim.run()
    stop_mining()
    sim.run()                      # let the last blocks reach everyone
    return sim.events, time.perf_counter() - t, sim.engines[0].tree.height


def nakamoto_on(tree: str, n: int, blocks: int) -> tuple[int, float]:
    """The ``nakamoto NxB`` row on ``tree``'s code (this checkout or an export), in a fresh
    interpreter: (events, wall seconds)."""
    code = ("import json; from benchmarks.sim import nakamoto; "
            f"ev, wall, _ = nakamoto({n}, {blocks}); print(json.dumps([ev, wall]))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tree, env=dict(os.environ, PYTHONPATH=tree),
                          capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(last)
    events, wall = json.loads(done.stdout.strip().splitlines()[-1])
    return events, wall


def compare(ref: str, n: int, blocks: int, repeat: int, console: Console) -> None:
    """This tree against ``ref`` on the NxB row, alternating, ``repeat`` runs each."""
    tmp = tempfile.mkdtemp(prefix="minichain-baseline-")
    try:
        try:
            trees = {"this tree": ROOT, ref: export_tree(ref, tmp)}
        except (subprocess.CalledProcessError, OSError) as exc:
            console.print(f"[yellow]no baseline: cannot export {ref!r} ({exc})")
            return
        unbuilt = [name for name, tree in trees.items() if simcore_missing(tree)]
        if unbuilt:
            console.print(f"[yellow]no comparison: the simulator's compiled core is not built for {', '.join(unbuilt)} "
                          "(cython_ext/_simcore.pyx; pip install -e . builds this tree's), so it would be timed "
                          "on the Python queue")
            return
        runs: dict[str, list[tuple[int, float]]] = {name: [] for name in trees}
        for _ in range(repeat):
            for name, tree in trees.items():
                try:
                    runs[name].append(nakamoto_on(tree, n, blocks))
                except RuntimeError as exc:
                    console.print(f"[yellow]the NxB run on {name}'s code failed: {exc}")
                    return
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    table = Table(title=f"nakamoto {n}x{blocks}: this tree against {ref}, {repeat} alternating runs each")
    for col in ("code", "events", "wall s (each run)", "median s", "vs " + ref):
        table.add_column(col, justify="left" if col == "code" else "right")
    base = statistics.median(w for _, w in runs[ref])
    for name, got in runs.items():
        med = statistics.median(w for _, w in got)
        table.add_row(name, f"{got[0][0]:,}", " ".join(f"{w:.2f}" for _, w in got), f"{med:.2f}",
                      "" if name == ref else f"{med / base:.2f}x")
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="skip the large Nakamoto run")
    ap.add_argument("--nodes", type=int, default=1_000)
    ap.add_argument("--blocks", type=int, default=1_000)
    ap.add_argument("--trials", type=int, default=100_000)
    ap.add_argument("--baseline", metavar="REF", help="also run the NxB row on this git ref's code, alternating")
    ap.add_argument("--repeat", type=int, default=2, help="runs of the NxB row per tree with --baseline")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    console = Console()

    table = Table(title=f"minichain simulator (seed={SEED})")
    for col in ("run", "events", "wall s", "events/s", "ratio", "note"):
        table.add_column(col, justify="right" if col not in ("run", "note") else "left")

    ev, wall = flood(100, 300)
    base = ev / wall
    table.add_row("flood n=100", f"{ev:,}", f"{wall:.2f}", f"{base:,.0f}", "1.00", "baseline: example engine")

    ev, wall, height = nakamoto(100, 300)
    table.add_row("nakamoto n=100", f"{ev:,}", f"{wall:.2f}", f"{ev / wall:,.0f}", f"{ev / wall / base:.2f}",
                  f"300 blocks, final height {height}")

    if not args.quick and not args.baseline:
        ev, wall, height = nakamoto(args.nodes, args.blocks)
        table.add_row(f"nakamoto {args.nodes}x{args.blocks}", f"{ev:,}", f"{wall:.2f}", f"{ev / wall:,.0f}",
                      f"{ev / wall / base:.2f}", f"final height {height}; target < 60 s")

    rng = random.Random(SEED)
    t = time.perf_counter()
    wins = double_spend_trials(0.3, 6, args.trials, rng)
    wall = time.perf_counter() - t
    table.add_row("double-spend race", f"{args.trials:,} trials", f"{wall:.2f}", f"{args.trials / wall:,.0f} trials/s", "",
                  f"q=0.3 z=6, success {wins / args.trials:.4f}; target 100k < 10 s")
    console.print(table)
    if args.baseline:
        compare(args.baseline, args.nodes, args.blocks, args.repeat, console)


if __name__ == "__main__":
    main()
