"""Nakamoto consensus in the simulator: miners, gossip, and the real fork choice.

Every simulated node keeps a :class:`~minichain.core.chain.BlockTree` -- the very class
the real node uses -- and follows ``tree.best_candidate()``: most cumulative work among
complete, not-invalid blocks, ties to the first whose data arrived (Nakamoto 2008,
section 4: "the longest chain"; Bitcoin Core's ``FindMostWorkChain``).

What is modelled, and how (the simplifications, said plainly):

* **Proof of work is a Poisson process, not hashing.** A miner with share ``h`` of the
  hash power finds blocks after exponential waits of mean ``block_interval / h`` (the
  memoryless property lets it keep its timer across tip changes: the next block simply
  builds on whatever tip it has then). Blocks are real 80-byte ``BlockHeader``s with a
  fixed ``bits`` (regtest's pow limit: every block has the same work, so most work =
  most blocks), ``prev_hash`` linking to the parent, and a ``merkle_root`` computed with
  Bitcoin's Merkle function over the ids of the simulated payload (a coinbase tag and
  the transactions), so distinct payloads give distinct block hashes.
* **Transactions are abstract payments**: a ``SimTx`` spends named coins. Two
  transactions spending one coin conflict (a double spend); a block spending a coin
  already spent on its chain is invalid and ``mark_invalid`` takes it out of the fork
  choice. Balances, scripts and signatures are not simulated (``core/tx.py`` does them).
* **Gossip**: a node relays every new valid block and every new mempool transaction to
  its peers (except the one it came from). A block whose parent is unknown is kept as an
  orphan and the node asks the sender for the missing branch with a block locator
  (``GetBlocks``, Bitcoin's ``getblocks``/``getheaders`` handshake, answered with the
  blocks themselves instead of ``inv``s). This is also how two sides of a healed
  partition find each other's branch: with the first block either side mines after it.
* **Block storage is shared by content address.** Blocks are immutable and named by
  their hash, so instead of each of a thousand nodes copying every block, a node keeps
  headers in its own ``BlockTree`` and looks block payloads up in the world's registry
  -- only for hashes it has received. (A memory optimisation, not a shortcut in what a
  node knows.)
* **Confirmations become decisions**: when a block is ``confirmations`` deep in a node's
  active chain the node returns ``Decide(height, block_hash)``; a reorg that replaces a
  decided block decides again, which the simulator records as a reversal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Hashable, Iterable, Sequence

from minichain import params as chain_params
from minichain.core.block import BlockHeader
from minichain.core.chain import BlockTree, IndexEntry, activate_best_chain
from minichain.core.hashing import merkle_root, sha256d
from minichain.sim.engine import Action, Decide, Engine, NodeContext, Send, SetTimer

# Regtest's pow limit: block work 2, identical for every simulated block.
SIM_BITS = chain_params.regtest.pow_limit_bits
HEADER_BYTES = 80
MAX_BLOCKS_PER_REPLY = 500   # Bitcoin: MAX_BLOCKS_IN_TRANSIT_PER_PEER-ish cap on one getblocks answer


# -- transactions and blocks -------------------------------------------------------------


class SimTx:
    """A payment that spends ``coins`` (opaque names) and pays ``payee``."""

    __slots__ = ("txid", "coins", "payee", "size")

    def __init__(self, txid: str, coins: Sequence[str], payee: str = "", size: int = 250) -> None:
        self.txid = txid
        self.coins = tuple(coins)
        self.payee = payee
        self.size = size

    def conflicts_with(self, other: "SimTx") -> bool:
        return self.txid != other.txid and bool(set(self.coins) & set(other.coins))

    def __repr__(self) -> str:
        return f"SimTx({self.txid!r}, {self.coins}, {self.payee!r})"


class SimBlock:
    """A real header over a simulated payload."""

    __slots__ = ("header", "hash", "txs", "miner", "height", "size", "found_at", "msg")

    def __init__(self, header: BlockHeader, txs: tuple[SimTx, ...], miner: int, height: int,
                 size: int, found_at: float) -> None:
        self.header = header
        self.hash = header.hash
        self.txs = txs
        self.miner = miner
        self.height = height
        self.size = size
        self.found_at = found_at
        # The one BlockMsg every node relays this block in: a message is an immutable
        # value, so a thousand nodes need not make a thousand copies of it.
        self.msg = BlockMsg(self)

    @classmethod
    def mine(cls, parent: "SimBlock | IndexEntry", miner: int, tag: int, txs: Iterable[SimTx], *,
             time: int, found_at: float, size: int | None = None) -> "SimBlock":
        txs = tuple(txs)
        # The coinbase's stand-in id commits to the miner and a per-miner counter.
        coinbase = sha256d(b"coinbase" + miner.to_bytes(4, "little") + tag.to_bytes(8, "little"))
        root, _ = merkle_root([coinbase] + [sha256d(t.txid.encode()) for t in txs])
        header = BlockHeader(1, parent.hash, root, max(0, min(time, 0xFFFFFFFF)), SIM_BITS, miner & 0xFFFFFFFF)
        body = HEADER_BYTES + sum(t.size for t in txs) if size is None else size
        return cls(header, txs, miner, parent.height + 1, body, found_at)

    def __repr__(self) -> str:
        return f"<SimBlock h={self.height} miner={self.miner} {self.hash[::-1].hex()[:12]}>"


def make_genesis(time: int = chain_params.regtest.genesis_time) -> SimBlock:
    root, _ = merkle_root([sha256d(b"minichain simulated genesis")])
    return SimBlock(BlockHeader(1, b"\x00" * 32, root, time, SIM_BITS, 0), (), -1, 0, HEADER_BYTES, 0.0)


# -- wire messages (one class per message, __slots__, explicit sizes) ---------------------


class BlockMsg:
    __slots__ = ("block", "size")

    def __init__(self, block: SimBlock) -> None:
        self.block = block
        self.size = block.size




class TxMsg:
    __slots__ = ("tx", "size")

    def __init__(self, tx: SimTx) -> None:
        self.tx = tx
        self.size = tx.size


class GetBlocks:
    """Ask a peer for the branch ending at ``stop``, starting after the first locator hash it knows."""

    __slots__ = ("locator", "stop", "size")

    def __init__(self, locator: list[bytes], stop: bytes) -> None:
        self.locator = locator
        self.stop = stop
        self.size = 32 * (len(locator) + 1)


class BlocksMsg:
    __slots__ = ("blocks", "size")

    def __init__(self, blocks: list[SimBlock]) -> None:
        self.blocks = blocks
        self.size = sum(b.size for b in blocks)


# -- the shared world -----------------------------------------------------------------------


@dataclass
class World:
    """What all Nakamoto nodes of one run share: parameters and the content-addressed block store."""

    block_interval: float = 600.0            # Bitcoin: nPowTargetSpacing, seconds
    confirmations: int | None = 6            # depth at which a node Decides a block
    genesis: SimBlock = field(default_factory=make_genesis)
    params: chain_params.Params = chain_params.regtest
    blocks: dict[bytes, SimBlock] = field(default_factory=dict)
    block_size: int | None = None            # bytes per block on the wire (None: header + txs)
    watched: frozenset[str] = frozenset()    # txids whose confirmations every node follows

    def __post_init__(self) -> None:
        self.blocks[self.genesis.hash] = self.genesis

    def register(self, block: SimBlock) -> None:
        self.blocks[block.hash] = block


@dataclass
class PaymentView:
    """One node's view of a watched payment."""

    txid: str
    height: int | None = None         # where it is in the node's active chain (None: not in it)
    first_seen: float | None = None
    confirmed_at: float | None = None  # first time it had ``confirmations`` confirmations
    max_depth: int = 0
    reversed_at: float | None = None   # left the active chain after being confirmed
    replaced_by: str | None = None     # the conflicting txid on the new chain, if any


# -- the honest node -----------------------------------------------------------------------------


class NakamotoNode(Engine):
    """An honest Bitcoin-style node: relays, validates, follows the most work, mines with ``share``."""

    def __init__(self, ctx: NodeContext, world: World, *, share: float = 0.0, peers: Sequence[int] = ()) -> None:
        super().__init__(ctx)
        self.world = world
        self.share = share
        self.peers = list(peers)
        self.confirmations = world.confirmations
        self.tree = BlockTree(world.genesis.header, world.params)
        self._known = self.tree.entries                     # the tree's own dict, for the gossip fast path
        self.orphans: dict[bytes, list[SimBlock]] = {}      # missing parent hash -> blocks
        self.mempool: dict[str, SimTx] = {}
        self.spent: dict[str, str] = {}                     # coin -> txid, on the active chain
        self.tx_height: dict[str, int] = {}                 # txid -> height, on the active chain
        self.payments: dict[str, PaymentView] = {t: PaymentView(t) for t in sorted(world.watched)}
        self.decided_upto = 0
        self.mined = 0
        self.reorgs: list[tuple[float, int]] = []           # (time, blocks disconnected)

    # -- engine interface ----------------------------------------------------------------------

    def on_start(self) -> list[Action]:
        return self._schedule_mining()

    def on_recover(self) -> list[Action]:
        # Chain, mempool and peers live on disk in a real node: nothing volatile to lose
        # here but the mining timer, which the simulator dropped at the crash.
        return self._schedule_mining()

    def on_timer(self, name: Hashable) -> list[Action]:
        if name != "mine" or self.share <= 0:
            return []
        actions: list[Action] = []
        block = self._new_block(self.tree.tip)
        self._found(block, actions)
        actions.extend(self._schedule_mining())
        return actions

    def on_message(self, src: int, msg: Any) -> list[Action]:
        cls = msg.__class__
        if cls is BlockMsg:
            block = msg.block
            if block.hash in self._known:
                return []                                   # the common case in gossip
            actions: list[Action] = []
            self._receive_block(block, src, actions)
            return actions
        if cls is TxMsg:
            return self._receive_tx(msg.tx, src)
        if cls is GetBlocks:
            return self._answer_getblocks(src, msg)
        if cls is BlocksMsg:
            actions = []
            for block in msg.blocks:
                if block.hash not in self.tree.entries:
                    self._receive_block(block, src, actions)
            return actions
        return []

    # -- mining ------------------------------------------------------------------------------------

    def _schedule_mining(self) -> list[Action]:
        if self.share <= 0:
            return []
        return [SetTimer("mine", self.ctx.rng.expovariate(self.share / self.world.block_interval))]

    def _new_block(self, parent: IndexEntry, txs: Iterable[SimTx] | None = None) -> SimBlock:
        if txs is None:
            txs = self._block_template()
        self.mined += 1
        block = SimBlock.mine(
            parent, self.id, self.mined, txs,
            time=self.world.genesis.header.time + int(self.ctx.now), found_at=self.ctx.now,
            size=self.world.block_size,
        )
        self.world.register(block)
        return block

    def _block_template(self) -> list[SimTx]:
        """Mempool transactions valid on the active tip, first-seen order, no conflicts."""
        if not self.mempool:
            return []
        chosen: list[SimTx] = []
        used: set[str] = set()
        for tx in self.mempool.values():
            if tx.txid in self.tx_height:
                continue
            if any(c in self.spent or c in used for c in tx.coins):
                continue
            chosen.append(tx)
            used.update(tx.coins)
        return chosen

    def _found(self, block: SimBlock, actions: list[Action]) -> None:
        """Our own block: take it (it extends our tip) and announce it."""
        self._receive_block(block, self.id, actions)

    # -- blocks --------------------------------------------------------------------------------------

    def _receive_block(self, block: SimBlock, src: int, actions: list[Action]) -> None:
        tree = self.tree
        if block.header.prev_hash not in tree.entries:
            waiting = self.orphans.get(block.header.prev_hash)
            if waiting is None:
                self.orphans[block.header.prev_hash] = [block]
                # Ask the peer that sent it for the missing branch (once per missing parent).
                if src >= 0 and src != self.id:
                    actions.append(Send(src, GetBlocks(tree.locator(), block.header.prev_hash)))
            elif all(b.hash != block.hash for b in waiting):
                waiting.append(block)
            return
        stack = [block]
        while stack:
            b = stack.pop()
            if b.hash in tree.entries:
                continue
            entry = tree.add_header(b.header)
            tree.set_have_data(entry)
            self._relay(b.msg, src if b is block else -1, actions)
            if self.orphans:
                stack.extend(reversed(self.orphans.pop(b.hash, ())))
        self._update_tip(actions)

    def _relay(self, msg: Any, src: int, actions: list[Action]) -> None:
        append = actions.append
        for p in self.peers:
            if p != src:
                append(Send(p, msg))

    def _answer_getblocks(self, src: int, req: GetBlocks) -> list[Action]:
        tree = self.tree
        stop = tree.entries.get(req.stop)
        if stop is None:
            return []
        start = tree.genesis
        for h in req.locator:
            e = tree.entries.get(h)
            if e is not None:
                start = e
                break
        fork = tree.find_fork(start, stop)
        branch = []
        walk = stop
        while walk is not fork:
            branch.append(self.world.blocks[walk.hash])
            walk = walk.parent
        branch.reverse()
        if not branch:
            return []
        return [Send(src, BlocksMsg(branch[:MAX_BLOCKS_PER_REPLY]))]

    def _update_tip(self, actions: list[Action]) -> None:
        """Move the active chain to the fork choice's best candidate: the node's own
        ActivateBestChain loop (core.chain.activate_best_chain) with the simulated
        payload's connect and disconnect."""
        done = activate_best_chain(self.tree, self._connect, self._undo)
        if done.fork_height is None:
            return
        if done.disconnected:
            self.reorgs.append((self.ctx.now, done.disconnected))
        self._after_tip_change(done.fork_height, actions)

    def _connect(self, entry: IndexEntry) -> str | None:
        block = self.world.blocks[entry.hash]
        if block.txs:
            if not self._valid_on_tip(block):
                return "bad-txns-inputs-missingorspent"   # marked invalid: try the next best
            self._apply(block)
        return None

    def _valid_on_tip(self, block: SimBlock) -> bool:
        coins: set[str] = set()
        for tx in block.txs:
            for c in tx.coins:
                if c in self.spent or c in coins:
                    return False
                coins.add(c)
        return True

    def _apply(self, block: SimBlock) -> None:
        for tx in block.txs:
            for c in tx.coins:
                self.spent[c] = tx.txid
            self.tx_height[tx.txid] = block.height
            self.mempool.pop(tx.txid, None)

    def _undo(self, entry: IndexEntry) -> None:
        block = self.world.blocks[entry.hash]
        for tx in block.txs:
            for c in tx.coins:
                if self.spent.get(c) == tx.txid:
                    del self.spent[c]
            self.tx_height.pop(tx.txid, None)
            self.mempool.setdefault(tx.txid, tx)        # back to the mempool, as Bitcoin does

    def _after_tip_change(self, fork_height: int, actions: list[Action]) -> None:
        height = len(self.tree.active) - 1
        now = self.ctx.now if self.payments else 0.0
        for view in self.payments.values():
            h = self.tx_height.get(view.txid)
            if h is None:
                if view.height is not None and view.confirmed_at is not None and view.reversed_at is None:
                    view.reversed_at = now
                    view.replaced_by = self._conflict_on_chain(view.txid)
                view.height = None
                continue
            view.height = h
            depth = height - h + 1
            view.max_depth = max(view.max_depth, depth)
            k = self.confirmations or 1
            if depth >= k and view.confirmed_at is None:
                view.confirmed_at = now
        k = self.confirmations
        if k is None:
            return
        last = height - k + 1
        decided = self.decided_upto
        h = decided + 1 if decided <= fork_height else fork_height + 1   # after a reorg: again from the fork
        if h < 1:
            h = 1
        active = self.tree.active
        while h <= last:
            actions.append(Decide(h, active[h].hash))
            h += 1
        if last > decided:
            self.decided_upto = last

    def _conflict_on_chain(self, txid: str) -> str | None:
        tx = self._find_tx(txid)
        if tx is None:
            return None
        for c in tx.coins:
            other = self.spent.get(c)
            if other is not None and other != txid:
                return other
        return None

    def _find_tx(self, txid: str) -> SimTx | None:
        if txid in self.mempool:
            return self.mempool[txid]
        for block in self.world.blocks.values():
            for tx in block.txs:
                if tx.txid == txid:
                    return tx
        return None

    # -- transactions ---------------------------------------------------------------------------------

    def _receive_tx(self, tx: SimTx, src: int) -> list[Action]:
        if tx.txid in self.mempool or tx.txid in self.tx_height:
            return []
        # First-seen rule: refuse a transaction conflicting with the chain or the mempool.
        if any(c in self.spent for c in tx.coins):
            return []
        for other in self.mempool.values():
            if other.conflicts_with(tx):
                return []
        self.mempool[tx.txid] = tx
        view = self.payments.get(tx.txid)
        if view is not None and view.first_seen is None:
            view.first_seen = self.ctx.now
        actions: list[Action] = []
        self._relay(TxMsg(tx), src, actions)
        return actions

    # -- views for scenarios -------------------------------------------------------------------------

    @property
    def tip(self) -> IndexEntry:
        return self.tree.tip

    def main_chain(self) -> list[SimBlock]:
        return [self.world.blocks[e.hash] for e in self.tree.active]


# -- topology ----------------------------------------------------------------------------------------


def random_peers(n: int, degree: int, rng) -> list[list[int]]:
    """A connected random graph: each node opens ``degree`` outbound links to random others
    (Bitcoin Core: 8 outbound connections by default) after a ring that guarantees
    connectivity; links are symmetric."""
    adj: list[set[int]] = [set() for _ in range(n)]
    if n == 1:
        return [[]]
    for i in range(n):
        j = (i + 1) % n
        if j != i:
            adj[i].add(j)
            adj[j].add(i)
    for i in range(n):
        want = min(degree, n - 1)
        tries = 0
        while len(adj[i]) < want and tries < 10 * want:
            j = rng.randrange(n)
            tries += 1
            if j != i:
                adj[i].add(j)
                adj[j].add(i)
    return [sorted(a) for a in adj]


def full_mesh(n: int) -> list[list[int]]:
    return [[j for j in range(n) if j != i] for i in range(n)]


def shares_from(spec: Sequence[float], n: int) -> list[float]:
    """Pad/normalise hash shares to ``n`` nodes (missing nodes get 0, i.e. relay only)."""
    shares = list(spec) + [0.0] * (n - len(spec))
    total = sum(shares)
    if total <= 0 or any(s < 0 for s in shares) or not math.isfinite(total):
        raise ValueError("hash shares must be non-negative with a positive sum")
    return [s / total for s in shares[:n]]
