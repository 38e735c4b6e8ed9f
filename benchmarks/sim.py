"""Simulator throughput: events per second, the 1,000 x 1,000 Nakamoto run, double-spend trials.

    python -m benchmarks.sim [--quick] [--nodes N] [--blocks B] [--trials T]

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
"""

from __future__ import annotations

import argparse
import random
import time

from rich.console import Console
from rich.table import Table

from minichain.sim import Exponential, LogNormal, Network, Simulation
from minichain.sim.engines.flood import Flood
from minichain.sim.engines.nakamoto import NakamotoNode, World, random_peers, shares_from
from minichain.sim.scenarios.races import double_spend_trials

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="skip the large Nakamoto run")
    ap.add_argument("--nodes", type=int, default=1_000)
    ap.add_argument("--blocks", type=int, default=1_000)
    ap.add_argument("--trials", type=int, default=100_000)
    args = ap.parse_args()

    table = Table(title=f"minichain simulator (seed={SEED})")
    for col in ("run", "events", "wall s", "events/s", "ratio", "note"):
        table.add_column(col, justify="right" if col not in ("run", "note") else "left")

    ev, wall = flood(100, 300)
    base = ev / wall
    table.add_row("flood n=100", f"{ev:,}", f"{wall:.2f}", f"{base:,.0f}", "1.00", "baseline: example engine")

    ev, wall, height = nakamoto(100, 300)
    table.add_row("nakamoto n=100", f"{ev:,}", f"{wall:.2f}", f"{ev / wall:,.0f}", f"{ev / wall / base:.2f}",
                  f"300 blocks, final height {height}")

    if not args.quick:
        ev, wall, height = nakamoto(args.nodes, args.blocks)
        table.add_row(f"nakamoto {args.nodes}x{args.blocks}", f"{ev:,}", f"{wall:.2f}", f"{ev / wall:,.0f}",
                      f"{ev / wall / base:.2f}", f"final height {height}; target < 60 s")

    rng = random.Random(SEED)
    t = time.perf_counter()
    wins = double_spend_trials(0.3, 6, args.trials, rng)
    wall = time.perf_counter() - t
    table.add_row("double-spend race", f"{args.trials:,} trials", f"{wall:.2f}", f"{args.trials / wall:,.0f} trials/s", "",
                  f"q=0.3 z=6, success {wins / args.trials:.4f}; target 100k < 10 s")
    Console().print(table)


if __name__ == "__main__":
    main()
