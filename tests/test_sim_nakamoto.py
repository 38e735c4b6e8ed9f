"""The Nakamoto engine: nodes that mine, gossip and choose their tip with core/chain.py."""

import random

from minichain.sim import Exponential, Fixed, Network, Simulation
from minichain.sim.engines.nakamoto import (
    BlockMsg, NakamotoNode, SimBlock, SimTx, TxMsg, World, full_mesh, random_peers, shares_from,
)


def chain_of(world, parent, miner, count, txs=()):
    blocks = []
    for i in range(count):
        b = SimBlock.mine(parent, miner, 1000 * miner + len(world.blocks) + i, txs if i == 0 else (),
                          time=world.genesis.header.time + i, found_at=0.0)
        world.register(b)
        blocks.append(b)
        parent = b
    return blocks


def quiet_net(n, peers=None, **kw):
    world = World(block_interval=600.0, confirmations=kw.pop("confirmations", 2), watched=kw.pop("watched", frozenset()))
    peers = peers or full_mesh(n)
    sim = Simulation(n, lambda ctx: NakamotoNode(ctx, world, peers=peers[ctx.node_id]), seed=1,
                     network=Network(Fixed(0.1)))
    return sim, world


def test_n1_equal_work_fork_keeps_the_first_seen_and_more_work_reorgs():
    sim, world = quiet_net(1, confirmations=1)
    a = chain_of(world, world.genesis, 1, 1)
    b = chain_of(world, world.genesis, 2, 2)
    sim.inject(0, BlockMsg(a[0]), at=1.0)
    sim.inject(0, BlockMsg(b[0]), at=2.0)
    sim.run(until=3.0)
    node = sim.engines[0]
    assert node.tip.hash == a[0].hash            # a tie keeps the first seen
    sim.inject(0, BlockMsg(b[1]), at=4.0)
    sim.run()
    assert node.tip.hash == b[1].hash and node.reorgs == [(4.0, 1)]
    assert node.tip is node.tree.best_candidate()
    # The block decided at height 1 (one confirmation) was replaced: a reversal.
    r = sim.result()
    assert [(x["node"], x["slot"]) for x in r.reversals] == [(0, 1)]


def test_n2_headers_that_do_not_connect_fetch_the_whole_branch_after_a_partition():
    sim, world = quiet_net(2)
    blocks = chain_of(world, world.genesis, 5, 6)
    sim.at(0.0, sim.net.partition, [[0], [1]])
    for i, b in enumerate(blocks[:5]):
        sim.inject(0, BlockMsg(b), at=1.0 + i)   # announced to node 1, lost in the partition
    sim.at(10.0, sim.net.heal)
    sim.inject(0, BlockMsg(blocks[5]), at=11.0)
    sim.run()
    assert sim.engines[1].tip.hash == blocks[5].hash
    stats = sim.net.stats()
    assert stats["partitioned"] == 5
    # The node's protocol: the announcement of block 6 does not connect, so node 1 asks
    # for the headers in between (one getheaders, one headers reply) and then for all six
    # blocks in one getdata; nobody is scored for it.
    assert stats["delivered_by_type"] == {"Headers": 2, "GetHeaders": 1, "GetData": 1, "BlockMessage": 6}
    assert sim.engines[0].misbehaved == [] and sim.engines[1].misbehaved == []


def test_n3_mempool_first_seen_and_a_block_with_a_double_spend_is_invalid():
    sim, world = quiet_net(3, confirmations=1)
    pay = SimTx("pay", ["coin1"], "merchant")
    back = SimTx("back", ["coin1"], "attacker")
    sim.inject(0, TxMsg(pay), at=0.0)
    sim.inject(2, TxMsg(back), at=0.05)          # before pay reaches node 2
    sim.run(until=1.0)
    assert list(sim.engines[1].mempool) == ["pay"]
    assert list(sim.engines[2].mempool) == ["back"]
    # A block spending coin1 twice is invalid and leaves the fork choice.
    [bad] = chain_of(world, world.genesis, 9, 1, txs=(pay, back))
    [good] = chain_of(world, world.genesis, 8, 1, txs=(back,))
    sim.inject(1, BlockMsg(bad), at=2.0)
    sim.inject(1, BlockMsg(good), at=3.0)
    sim.run()
    node = sim.engines[1]
    assert node.tip.hash == good.hash
    assert node.tree.get(bad.hash).status.failed
    # The payment it had in its mempool now conflicts with the chain: it is not mined again.
    assert node._block_template() == []


def run_network(seed, n=12, until=6000.0):
    rng = random.Random(seed)
    peers = random_peers(n, 3, rng)
    shares = shares_from([1] * 6, n)
    world = World(block_interval=60.0, confirmations=3)
    sim = Simulation(n, lambda ctx: NakamotoNode(ctx, world, share=shares[ctx.node_id], peers=peers[ctx.node_id]),
                     seed=seed, network=Network(Exponential(2.0, base=0.1)))

    def stop_mining():
        for e in sim.engines:
            e.share = 0.0

    sim.at(until, stop_mining)
    sim.run()
    return sim, world


def test_n12_gossip_converges_every_node_on_the_most_work_chain():
    sim, world = run_network(5)
    # Everyone ends on a most-work chain; two tips are possible only as an unresolved tie.
    best_work = max(e.tree.best_header.chainwork for e in sim.engines)
    assert {e.tip.chainwork for e in sim.engines} == {best_work}
    tips = {e.tip.hash for e in sim.engines}
    assert len(tips) <= 2
    assert len({e.tree.active[-2].hash for e in sim.engines}) == 1
    common = sim.engines[0].tree.active[:-1]
    for e in sim.engines:
        assert e.tip is e.tree.best_candidate()
        # Every block of the agreed chain reached every node, with its data. (A stale
        # block need not: headers-first nodes fetch only a branch with more work than
        # their tip, and announce only their tip -- Bitcoin Core does the same.)
        assert all(e.tree.get(x.hash) is not None and e.tree.get(x.hash).have_data for x in common)
    assert sim.engines[0].tree.height > 50
    # Every block mined is known at least to its miner, and most of them are on the chain.
    for b in world.blocks.values():
        if b.miner >= 0:
            assert sim.engines[b.miner].tree.get(b.hash) is not None
    assert sim.engines[0].tree.height >= 0.8 * (len(world.blocks) - 1)


def test_same_seed_same_chain_and_json():
    a, _ = run_network(9, until=1500.0)
    b, _ = run_network(9, until=1500.0)
    assert a.result().to_json() == b.result().to_json()
    assert a.engines[0].tip.hash == b.engines[0].tip.hash


def test_random_peers_is_connected_and_symmetric():
    rng = random.Random(0)
    for n in (1, 2, 5, 50):
        peers = random_peers(n, 4, rng)
        for i, ps in enumerate(peers):
            assert i not in ps
            for j in ps:
                assert i in peers[j]
        seen, stack = {0}, [0]
        while stack:
            for j in peers[stack.pop()]:
                if j not in seen:
                    seen.add(j)
                    stack.append(j)
        assert len(seen) == n
