"""Double spend: an attacker with hash share q against a merchant who waits z confirmations.

Two ways to measure, one question:

* the **race** (``races.double_spend_trials``): Rosenfeld's model played block by block,
  fast enough for 100,000 trials per cell;
* the **network** (``network_trial``): the same attack by a ``DoubleSpender`` node among
  honest ``NakamotoNode`` miners and a merchant on the simulated network, every node
  choosing its tip with ``core/chain.py`` -- slower, so fewer trials, and the tests check
  that both agree.

Each measured rate comes with a 95% Wilson interval and sits beside Nakamoto's estimate
(2008, section 11) and the exact probability of Rosenfeld (2014) / Grunspan and
Perez-Marco (2018) (see ``analytic.py``). Nakamoto's estimate is not exact: it replaces
the attacker's negative-binomial progress by a Poisson one, so the measurements should
follow Rosenfeld's column, not his.
"""

from __future__ import annotations

import random
from typing import Sequence

from minichain.sim.analytic import (
    grunspan_perez_marco_double_spend, nakamoto_double_spend, rosenfeld_double_spend, wilson_interval,
)
from minichain.sim.engines.nakamoto import NakamotoNode, SimTx, World, full_mesh
from minichain.sim.engines.nakamoto_attacks import DoubleSpender
from minichain.sim.network import Fixed, Network
from minichain.sim.scenarios.races import double_spend_trials, give_up_deficit
from minichain.sim.simulator import Simulation

DEFAULT_QS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45)
DEFAULT_ZS = tuple(range(0, 11))
GIVE_UP_EPS = 1e-7


def network_trial(q: float, z: int, seed: int, *, honest_miners: int = 4, latency: float = 0.05,
                  block_interval: float = 600.0) -> dict:
    """One attack on the simulated network. Node 0 is the attacker, node 1 the merchant,
    nodes 2.. honest miners sharing 1 - q equally; a full mesh with fixed ``latency``."""
    n = honest_miners + 2
    coin = "coin:attacker:0"
    payment = SimTx("pay", [coin], "merchant")
    refund = SimTx("refund", [coin], "attacker")
    world = World(block_interval=block_interval, confirmations=None, watched=frozenset({"pay"}))
    peers = full_mesh(n)
    give_up = give_up_deficit(q, GIVE_UP_EPS)

    def factory(ctx):
        i = ctx.node_id
        if i == 0:
            return DoubleSpender(ctx, world, share=q, peers=peers[0], payment=payment, refund=refund,
                                 z=z, give_up=give_up)
        share = 0.0 if i == 1 else (1.0 - q) / honest_miners
        return NakamotoNode(ctx, world, share=share, peers=peers[i])

    sim = Simulation(n, factory, seed=seed, network=Network(Fixed(latency)))
    attacker, merchant = sim.engines[0], sim.engines[1]
    sim.run(stop_when=lambda s: attacker.outcome is not None)
    # The attack is decided: stop mining and let the network settle.
    for e in sim.engines:
        e.share = 0.0
    sim.run()
    success = "refund" in merchant.tx_height and "pay" not in merchant.tx_height
    return {
        "success": success,
        "outcome": attacker.outcome,
        "private_blocks": len(attacker.private),
        "merchant_reorgs": merchant.reorgs,
        "events": sim.events,
        "time": sim.now,
    }


def run(seed: int, *, qs: Sequence[float] = DEFAULT_QS, zs: Sequence[int] = DEFAULT_ZS,
        trials: int = 20_000, network_trials: int = 0) -> dict:
    """The grid of (q, z): measured success rates beside the closed forms."""
    rng = random.Random(seed)
    rows = []
    for q in qs:
        for z in zs:
            wins = double_spend_trials(q, z, trials, rng, GIVE_UP_EPS)
            lo, hi = wilson_interval(wins, trials)
            exact = rosenfeld_double_spend(q, z)
            row = {
                "q": q, "z": z, "trials": trials, "successes": wins, "rate": wins / trials,
                "ci95": [lo, hi],
                "nakamoto": nakamoto_double_spend(q, z),
                "rosenfeld": exact,
                "grunspan_perez_marco": grunspan_perez_marco_double_spend(q, z),
                "rosenfeld_in_ci": lo <= exact <= hi,
            }
            if network_trials:
                net_wins = sum(network_trial(q, z, rng.getrandbits(64))["success"] for _ in range(network_trials))
                nlo, nhi = wilson_interval(net_wins, network_trials)
                row.update({"network_trials": network_trials, "network_successes": net_wins,
                            "network_rate": net_wins / network_trials, "network_ci95": [nlo, nhi]})
            rows.append(row)
    inside = sum(r["rosenfeld_in_ci"] for r in rows)
    return {
        "scenario": "double-spend",
        "seed": seed,
        "model": "Rosenfeld 2014: one pre-mined block, z confirmations, success = private branch longer "
                 "after delivery; attacker gives up when (q/p)^(d+1) < %g" % GIVE_UP_EPS,
        "rows": rows,
        "rosenfeld_inside_ci95": f"{inside}/{len(rows)}",
    }
