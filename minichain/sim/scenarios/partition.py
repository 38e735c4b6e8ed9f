"""Partition: the network splits for a while, both sides keep mining, then it heals.

The lesson of the architecture, measured: Nakamoto consensus stays *live* under a
partition -- both sides keep producing blocks -- and pays for it in *safety*: when the
network heals, every node adopts the side with more work, the other side's blocks are
orphaned, and a payment confirmed there (even ``confirmations`` deep) is reversed.

Layout: nodes ``0 .. n_a-1`` form side A, the rest side B; each side is internally a
random peer graph, with a few links across. Side A holds ``split`` of the hash power.
At the partition, a client pays merchant A with one coin on side A and, with the same
coin, merchant B on side B: each side confirms its own payment.
"""

from __future__ import annotations

import random

from minichain.sim.engines.nakamoto import NakamotoNode, SimTx, World, random_peers
from minichain.sim.network import LogNormal, Network
from minichain.sim.simulator import Simulation


def side_peers(n: int, n_a: int, degree: int, cross: int, rng: random.Random) -> list[list[int]]:
    adj: list[set[int]] = [set() for _ in range(n)]
    for members in (list(range(n_a)), list(range(n_a, n))):
        local = random_peers(len(members), degree, rng)
        for i, ps in enumerate(local):
            adj[members[i]].update(members[j] for j in ps)
    for _ in range(cross):
        a, b = rng.randrange(n_a), rng.randrange(n_a, n)
        adj[a].add(b)
        adj[b].add(a)
    return [sorted(s) for s in adj]


def run(seed: int, *, n: int = 20, split: float = 0.5, block_interval: float = 600.0,
        warmup: float = 3_600.0, duration: float = 6 * 3_600.0, after: float = 3 * 3_600.0,
        confirmations: int = 6, latency_median: float = 0.1) -> dict:
    if not 2 <= n:
        raise ValueError("need at least two nodes")
    if not 0.0 < split < 1.0:
        raise ValueError("split must be strictly between 0 and 1")
    rng = random.Random(seed)
    n_a = n // 2
    side_a, side_b = list(range(n_a)), list(range(n_a, n))
    peers = side_peers(n, n_a, 4, max(2, n // 5), rng)
    shares = [split / n_a] * n_a + [(1 - split) / (n - n_a)] * (n - n_a)
    coin = "coin:client:0"
    pay_a = SimTx("pay-A", [coin], "merchant-A")
    pay_b = SimTx("pay-B", [coin], "merchant-B")
    world = World(block_interval=block_interval, confirmations=confirmations,
                  watched=frozenset({pay_a.txid, pay_b.txid}))
    net = Network(LogNormal(latency_median, 0.5))
    sim = Simulation(n, lambda ctx: NakamotoNode(ctx, world, share=shares[ctx.node_id], peers=peers[ctx.node_id]),
                     seed=rng.getrandbits(64), network=net)
    t_split, t_heal, t_end = warmup, warmup + duration, warmup + duration + after
    merchant_a, merchant_b = side_a[0], side_b[0]
    sim.at(t_split, net.partition, [side_a, side_b])
    from minichain.sim.engines.nakamoto import TxMsg
    sim.inject(merchant_a, TxMsg(pay_a), at=t_split + 1.0)
    sim.inject(merchant_b, TxMsg(pay_b), at=t_split + 1.0)
    sim.at(t_heal, net.heal)
    heights_at_heal: dict[str, int] = {}

    def snapshot():
        heights_at_heal["A"] = sim.engines[merchant_a].tree.height
        heights_at_heal["B"] = sim.engines[merchant_b].tree.height

    sim.at(t_heal, snapshot)

    def stop_mining():
        for e in sim.engines:
            e.share = 0.0

    sim.at(t_end, stop_mining)
    sim.run()

    observer = sim.engines[0]
    main = {e.hash for e in observer.tree.active}
    side_of = {i: ("A" if i < n_a else "B") for i in range(n)}
    blocks = [b for b in world.blocks.values() if b.miner >= 0]
    during = [b for b in blocks if t_split <= b.found_at < t_heal]
    mined = {"A": sum(side_of[b.miner] == "A" for b in during), "B": sum(side_of[b.miner] == "B" for b in during)}
    orphaned_during = {s: sum(1 for b in during if side_of[b.miner] == s and b.hash not in main) for s in ("A", "B")}
    orphaned_total = sum(1 for b in blocks if b.hash not in main)
    payments = {}
    for merchant, tx in ((merchant_a, pay_a), (merchant_b, pay_b)):
        view = sim.engines[merchant].payments[tx.txid]
        payments[tx.txid] = {
            "merchant": merchant,
            "confirmed_at": view.confirmed_at,
            "max_depth": view.max_depth,
            "reversed_at": view.reversed_at,
            "replaced_by": view.replaced_by,
            "in_final_chain": tx.txid in observer.tx_height,
        }
    reorgs = [(t, d, i) for i, e in enumerate(sim.engines) for t, d in e.reorgs]
    after_heal = [r for r in reorgs if r[0] >= t_heal]
    winner = None
    if orphaned_during["A"] > orphaned_during["B"]:
        winner = "B"
    elif orphaned_during["B"] > orphaned_during["A"]:
        winner = "A"
    result = sim.result()
    return {
        "scenario": "partition",
        "seed": seed,
        "n": n,
        "split": split,
        "block_interval": block_interval,
        "partition": [t_split, t_heal],
        "end": t_end,
        "sides": {"A": side_a, "B": side_b},
        "mined_during_partition": mined,
        "heights_at_heal": heights_at_heal,
        "orphaned_during_partition": orphaned_during,
        "orphaned_total": orphaned_total,
        "winner": winner,
        "max_reorg_depth": max((d for _, d, _ in after_heal), default=0),
        "nodes_reorged_after_heal": len({i for _, _, i in after_heal}),
        "converged_by": max((t for t, _, _ in after_heal), default=None),
        "payments": payments,
        "confirmed_payments_reversed": sum(1 for p in payments.values() if p["confirmed_at"] is not None and p["reversed_at"] is not None),
        "final_height": observer.tree.height,
        "messages": result.messages,
        "conflicting_decisions": len(result.conflicts),
        "decision_reversals": len(result.reversals),
    }
