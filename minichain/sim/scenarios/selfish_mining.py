"""Selfish mining (Eyal & Sirer, "Majority is not Enough", FC 2014).

A pool with share ``alpha`` withholds its blocks and publishes them strategically; in a
tie race a fraction ``gamma`` of the honest miners mine on the pool's block. The pool's
share of the main chain is measured

* by the block **race** (``races.selfish_mining_race``) for a grid of alpha and gamma,
  beside their closed form (eq. 8) and the profitability threshold (1 - g) / (3 - 2g);
* on the **network** (``network_run``): a ``SelfishMiner`` among honest ``NakamotoNode``
  miners. There gamma is not a knob but a consequence of latency: the pool hears honest
  blocks fast (it has fast links *from* every miner), and a fraction ``fast`` of the
  honest miners also hear the pool fast, so in a tie they see the pool's block first and,
  by the first-seen rule of ``core/chain.py``, mine on it. The run measures the gamma it
  got and compares the revenue with the formula at that gamma.
"""

from __future__ import annotations

import random
from typing import Sequence

from minichain.sim.analytic import eyal_sirer_revenue, selfish_threshold
from minichain.sim.engines.nakamoto import NakamotoNode, World, full_mesh
from minichain.sim.engines.nakamoto_attacks import SelfishMiner
from minichain.sim.network import Fixed, Network
from minichain.sim.scenarios.races import selfish_mining_race
from minichain.sim.simulator import Simulation

DEFAULT_ALPHAS = (0.2, 0.25, 0.3, 0.35, 0.4)
DEFAULT_GAMMAS = (0.0, 0.5, 1.0)


def run(seed: int, *, alphas: Sequence[float] = DEFAULT_ALPHAS, gammas: Sequence[float] = DEFAULT_GAMMAS,
        blocks: int = 1_000_000) -> dict:
    rng = random.Random(seed)
    rows = []
    for gamma in gammas:
        for alpha in alphas:
            pool, honest = selfish_mining_race(alpha, gamma, blocks, rng)
            measured = pool / (pool + honest) if pool + honest else 0.0
            formula = eyal_sirer_revenue(alpha, gamma)
            rows.append({
                "alpha": alpha, "gamma": gamma, "blocks": blocks,
                "pool_blocks": pool, "honest_blocks": honest,
                "revenue": measured, "eyal_sirer": formula, "difference": measured - formula,
                # By the formula (the measurement is noisy right at a threshold).
                "profitable": formula > alpha + 1e-12,
            })
    return {
        "scenario": "selfish-mining",
        "seed": seed,
        "rows": rows,
        "thresholds": {str(g): selfish_threshold(g) for g in (0.0, 0.5, 1.0)},
    }


def network_run(seed: int, *, alpha: float = 0.35, fast: float = 0.5, honest_miners: int = 10,
                blocks: int = 3_000, block_interval: float = 600.0, latency: float = 1.0) -> dict:
    """The pool (node 0) among ``honest_miners`` honest miners on a full mesh."""
    rng = random.Random(seed)
    n = honest_miners + 1
    world = World(block_interval=block_interval, confirmations=None)
    peers = full_mesh(n)
    net = Network(Fixed(latency))
    fast_nodes = set(rng.sample(range(1, n), round(fast * honest_miners)))
    for i in range(1, n):
        net.set_link(i, 0, latency=Fixed(latency / 100), both_ways=False)          # pool hears fast
        net.set_link(0, i, latency=Fixed(latency / 100 if i in fast_nodes else 3 * latency), both_ways=False)

    def factory(ctx):
        if ctx.node_id == 0:
            return SelfishMiner(ctx, world, share=alpha, peers=peers[0])
        return NakamotoNode(ctx, world, share=(1 - alpha) / honest_miners, peers=peers[ctx.node_id])

    sim = Simulation(n, factory, seed=rng.getrandbits(64), network=net)
    sim.at(blocks * block_interval, lambda: [setattr(e, "share", 0.0) for e in sim.engines])
    sim.run()
    pool: SelfishMiner = sim.engines[0]  # type: ignore[assignment]
    observer = sim.engines[1]
    chain = observer.main_chain()[1:]
    pool_blocks = sum(1 for b in chain if b.miner == 0)
    # Gamma as it happened: in each tie the pool raced, did the first honest block found
    # on top of that height build on the pool's block?
    by_parent: dict[bytes, list] = {}
    for b in world.blocks.values():
        by_parent.setdefault(b.header.prev_hash, []).append(b)
    on_pool = resolved_by_honest = 0
    for pool_hash, height in pool.ties:
        parent = world.blocks[pool_hash].header.prev_hash
        rivals = [b.hash for b in by_parent.get(parent, []) if b.height == height]
        nxt = sorted((b for r in rivals for b in by_parent.get(r, [])), key=lambda b: (b.found_at, b.hash))
        if not nxt or nxt[0].miner == 0:
            continue
        resolved_by_honest += 1
        on_pool += nxt[0].header.prev_hash == pool_hash
    gamma = on_pool / resolved_by_honest if resolved_by_honest else 0.0
    revenue = pool_blocks / len(chain) if chain else 0.0
    return {
        "scenario": "selfish-mining-network",
        "seed": seed,
        "alpha": alpha,
        "honest_miners": honest_miners,
        "fast_fraction": fast,
        "main_chain": len(chain),
        "mined": len(world.blocks) - 1,
        "pool_blocks": pool_blocks,
        "revenue": revenue,
        "ties": len(pool.ties),
        "gamma_measured": gamma,
        "eyal_sirer_at_measured_gamma": eyal_sirer_revenue(alpha, gamma),
        "honest_share_would_be": alpha,
        "events": sim.events,
    }
