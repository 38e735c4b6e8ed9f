"""Stale (orphan) blocks as a function of the block interval and the link latency.

Miners with equal shares on a full mesh whose every link takes ``delay`` seconds. The
nodes relay with the node's own protocol (headers-first, BIP 130 announcements): a new
block reaches a neighbour after three link latencies -- its header, the neighbour's
getdata, the block -- so on the full mesh every miner has it ``3 * delay`` after it is
found. A block is stale when it ends outside the final main chain. Beside the
measurement: the first-order estimate ``1 - exp(-3 delay / T)`` (``analytic.stale_rate_approx``
with that propagation time; Decker & Wattenhofer 2013), the chance that someone else
finds a block while this one is still in flight. It overestimates when forks are
frequent (a block found during a race may still win it).
"""

from __future__ import annotations

import random
from typing import Sequence

from minichain.sim.analytic import stale_rate_approx, wilson_interval
from minichain.sim.engines.nakamoto import NakamotoNode, World, full_mesh
from minichain.sim.network import Fixed, Network
from minichain.sim.simulator import Simulation

# Link latencies a block spends crossing one link: the announcement (headers), the
# getdata and the block itself.
HOPS_PER_LINK = 3
DEFAULT_INTERVALS = (600.0, 60.0, 15.0)
DEFAULT_DELAYS = (0.5, 2.0, 6.0)


def measure(block_interval: float, delay: float, seed: int, *, miners: int = 10, blocks: int = 1_000) -> dict:
    world = World(block_interval=block_interval, confirmations=None)
    peers = full_mesh(miners)
    sim = Simulation(miners, lambda ctx: NakamotoNode(ctx, world, share=1 / miners, peers=peers[ctx.node_id]),
                     seed=seed, network=Network(Fixed(delay)))
    sim.at(blocks * block_interval, lambda: [setattr(e, "share", 0.0) for e in sim.engines])
    sim.run()
    main = {e.hash for e in sim.engines[0].tree.active}
    mined = len(world.blocks) - 1
    stale = sum(1 for h in world.blocks if h not in main)
    lo, hi = wilson_interval(stale, mined)
    return {"block_interval": block_interval, "delay": delay, "mined": mined, "stale": stale,
            "stale_rate": stale / mined if mined else 0.0, "ci95": [lo, hi],
            "approx": stale_rate_approx(HOPS_PER_LINK * delay, block_interval)}


def run(seed: int, *, intervals: Sequence[float] = DEFAULT_INTERVALS, delays: Sequence[float] = DEFAULT_DELAYS,
        miners: int = 10, blocks: int = 1_000) -> dict:
    rng = random.Random(seed)
    rows = [measure(t, d, rng.getrandbits(64), miners=miners, blocks=blocks) for t in intervals for d in delays]
    return {"scenario": "stale-rate", "seed": seed, "miners": miners, "rows": rows}
