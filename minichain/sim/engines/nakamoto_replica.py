"""Nakamoto consensus as a log-replication engine, so the scenario harness can run it
beside PBFT, Tendermint, Raft, Paxos and DLS under the very same faults and workload.

Nothing of the protocol changes: these are the :class:`NakamotoNode` miners of
``nakamoto.py`` (and the attackers of ``nakamoto_attacks.py``), following the most work
with ``core/chain.py``. What this module adds is the translation the harness needs:

* a client's :class:`~minichain.sim.workload.Payment` (arriving as a ``ClientRequest``)
  becomes a :class:`SimTx` spending the payment's coin, entering the node's mempool and
  gossiped to its peers -- a wallet broadcasting a transaction;
* a decided value is a block hash ``confirmations`` deep; the payments it commits are the
  block's transactions (:meth:`NakamotoRun.payments_in`), so "committed", "time to
  finality" and "reversed" mean the same thing for every engine;
* faults: a crashed miner's hash power is lost; ``k`` Byzantine miners pool their hash
  power in the lowest id, which runs a selfish-mining pool (Eyal & Sirer 2014,
  ``"selfish"``) or Rosenfeld's double-spender (2014, ``"double-spend"``) against the
  merchants of the workload; the other members of the pool are silent.

The time scale is the harness's, not Bitcoin's: blocks every ``BLOCK_INTERVAL`` seconds
on a network with 50 ms links, i.e. twenty one-way latencies per block (Bitcoin's 600 s
against a few seconds of propagation is one to two hundred), and a merchant who waits
``CONFIRMATIONS`` blocks. A shorter ratio means more natural forks (Decker & Wattenhofer
2013), which the comparison shows honestly rather than hides.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from minichain.sim.engine import CLIENT, Action, Engine, NodeContext
from minichain.sim.engines import EngineSpec
from minichain.sim.engines.nakamoto import NakamotoNode, SimTx, World, random_peers
from minichain.sim.engines.nakamoto_attacks import DoubleSpender, SelfishMiner
from minichain.sim.workload import ClientRequest, Payment

BLOCK_INTERVAL = 1.0      # seconds between blocks on average (Bitcoin: nPowTargetSpacing = 600)
CONFIRMATIONS = 3         # blocks a merchant waits for (Bitcoin's customary 6)
PEER_DEGREE = 8           # outbound peers per node (Bitcoin Core: 8 outbound connections)
GIVE_UP = 10**9           # a double-spender never gives up within a run


def max_faults(n: int) -> int:
    """Nakamoto needs an honest majority of the hash power (2008, section 1); with equal
    shares that is fewer than half the miners."""
    if n < 1:
        raise ValueError("n must be at least 1")
    return (n - 1) // 2


class _ClientInput:
    """Mixin: a client's payment becomes a transaction in this node's mempool."""

    run: "NakamotoRun"

    def on_message(self, src: int, msg: Any) -> list[Action]:
        if src == CLIENT and isinstance(msg, ClientRequest):
            return self._submit_tx(self.run.tx_for(msg.payment))             # type: ignore[attr-defined]
        return super().on_message(src, msg)                                 # type: ignore[misc]


class Miner(_ClientInput, NakamotoNode):
    """An honest miner taking client payments."""


class Pool(_ClientInput, SelfishMiner):
    """The Byzantine miners' pooled hash power, mining selfishly."""


class Attacker(_ClientInput, DoubleSpender):
    """The Byzantine miners' pooled hash power, double-spending against a merchant."""

    def on_message(self, src: int, msg: Any) -> list[Action]:
        if src == CLIENT:
            return []               # the attacker's own workload is not the point
        return super().on_message(src, msg)


class Idle(Engine):
    """A Byzantine miner whose hash power was pooled elsewhere, or a silent one: it says nothing."""

    honest = False


@dataclass
class NakamotoRun:
    """One run's shared state (the world's block store, the peer graph, the txs issued)
    and the harness's questions about it. Made fresh by :func:`new_run` for every run."""

    n: int
    byzantine: dict[int, str]
    world: World
    peers: list[list[int]]
    txs: dict[Payment, SimTx] = field(default_factory=dict)
    payment_of: dict[str, Payment] = field(default_factory=dict)

    def tx_for(self, p: Payment) -> SimTx:
        tx = self.txs.get(p)
        if tx is None:
            tx = SimTx(f"{p.coin}>{p.payee}", [p.coin], p.payee)
            self.txs[p] = tx
            self.payment_of[tx.txid] = p
        return tx

    # -- building the nodes -----------------------------------------------------------------

    def build(self, ctx: NodeContext, behaviour: str | None) -> Engine:
        i = ctx.node_id
        pool = sorted(self.byzantine)
        honest_share = 1.0 / self.n
        if behaviour is None:
            node: Engine = Miner(ctx, self.world, share=honest_share, peers=self.peers[i])
        elif behaviour == "silent" or i != pool[0]:
            node = Idle(ctx)
        elif behaviour == "selfish":
            node = Pool(ctx, self.world, share=len(pool) / self.n, peers=self.peers[i])
        elif behaviour == "double-spend":
            # A payment to a merchant and, in the private branch, its conflicting twin.
            pay = self.tx_for(Payment(-1, 0, "attacker-coin", "merchant"))
            refund = self.tx_for(Payment(-1, 1, "attacker-coin", "attacker"))
            node = Attacker(ctx, self.world, share=len(pool) / self.n, peers=self.peers[i],
                            payment=pay, refund=refund, z=self.world.confirmations or 1, give_up=GIVE_UP)
        else:
            raise ValueError(f"nakamoto has no behaviour {behaviour!r}")
        node.run = self                                                      # type: ignore[attr-defined]
        return node

    # -- what the harness asks ------------------------------------------------------------------

    def payments_in(self, value: Any) -> tuple[Payment, ...]:
        """The payments a decided block hash commits."""
        block = self.world.blocks.get(value)
        if block is None:
            return ()
        return tuple(self.payment_of[t.txid] for t in block.txs if t.txid in self.payment_of)

    def report(self, sim: Any, groups: list[list[int]] | None, window: tuple[float, float] | None,
               tree: bool = False) -> dict:
        """Blocks mined (per partition side during the fault), orphaned, and reorgs."""
        honest = [i for i in sim.honest if not sim.crashed[i]]
        observer = sim.engines[honest[0]] if honest else None
        main = {e.hash for e in observer.tree.active} if observer is not None else set()
        blocks = [b for b in self.world.blocks.values() if b.miner >= 0]
        out: dict[str, Any] = {
            "blocks_mined": len(blocks),
            "blocks_orphaned": sum(1 for b in blocks if b.hash not in main),
            "max_reorg_depth": max((d for e in sim.engines for _, d in getattr(e, "reorgs", ())), default=0),
        }
        if groups is not None and window is not None:
            a, b = window
            side = {node: gi for gi, g in enumerate(groups) for node in g}
            mined = [0] * len(groups)
            for blk in blocks:
                if a <= blk.found_at < b:
                    mined[side[blk.miner]] += 1
            out["blocks_mined_during_fault_by_side"] = mined
        if tree:
            out["tree"] = [
                {"hash": blk.hash[::-1].hex()[:12], "parent": blk.header.prev_hash[::-1].hex()[:12],
                 "height": blk.height, "miner": blk.miner, "found_at": round(blk.found_at, 6),
                 "main": blk.hash in main}
                for blk in sorted(blocks, key=lambda x: (x.found_at, x.miner))
            ]
        return out


def peer_graph(n: int, rng: random.Random, groups: Sequence[Sequence[int]] | None = None,
               degree: int = PEER_DEGREE) -> list[list[int]]:
    """Random peers (``random_peers``), plus a ring inside each partition group so that
    each side of a partition stays connected, as a real side of a network split would."""
    adj = [set(p) for p in random_peers(n, degree, rng)]
    for g in groups or ():
        g = list(g)
        if len(g) > 1:
            for a, b in zip(g, g[1:] + g[:1]):
                if a != b:
                    adj[a].add(b)
                    adj[b].add(a)
    return [sorted(s) for s in adj]


def new_run(*, n: int, seed: int, byzantine: dict[int, str], groups: list[list[int]] | None = None,
            block_interval: float = BLOCK_INTERVAL, confirmations: int = CONFIRMATIONS) -> NakamotoRun:
    world = World(block_interval=block_interval, confirmations=confirmations)
    # The topology has its own stream, derived from the seed, so it never shifts the run's.
    peers = peer_graph(n, random.Random(f"nakamoto-peers-{seed}"), groups)
    return NakamotoRun(n, dict(byzantine), world, peers)


@dataclass(frozen=True)
class ChainSpec(EngineSpec):
    """An :class:`EngineSpec` whose replicas share per-run state (a block store, a peer
    graph): the harness calls ``new_run`` once per run and builds replicas from it."""

    new_run: Callable[..., NakamotoRun] | None = None


def _no_shared_build(ctx: NodeContext, behaviour: str | None) -> Engine:
    raise TypeError("nakamoto replicas share a block store: build them through new_run()")


SPEC = ChainSpec(
    "nakamoto", "Nakamoto", "hash", max_faults, _no_shared_build,
    ("silent", "selfish", "double-spend"),
    "Nakamoto, Bitcoin: A Peer-to-Peer Electronic Cash System, 2008",
    new_run=new_run,
)
