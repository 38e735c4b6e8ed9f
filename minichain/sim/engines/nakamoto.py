"""Nakamoto consensus in the simulator: miners running the node's own peer protocol.

Every simulated node hosts a :class:`~minichain.node.protocol.PeerProtocol` -- the very
object the real node feeds from its sockets -- and keeps a
:class:`~minichain.core.chain.BlockTree`, the class the real node's chain state uses. It
follows ``tree.best_candidate()`` (most cumulative work among complete, not-invalid
blocks, ties to the first whose data arrived: Nakamoto 2008, section 4; Bitcoin Core's
``FindMostWorkChain``) through the one ActivateBestChain loop,
``core.chain.activate_best_chain``. Handshakes, headers-first sync, locators, header
announcements, getdata, in-flight limits and stall timeouts, the bounded orphan pool
and misbehaviour scores are therefore the node's, message for message: what the
simulator measures about propagation, forks and reorganisations is the node's code.

What differs from a real node, said plainly (the *cheap validation mode* that lets a
thousand nodes run on a laptop):

* **Proof of work is a Poisson process, not hashing.** A miner with share ``h`` of the
  hash power finds blocks after exponential waits of mean ``block_interval / h`` (the
  memoryless property lets it keep its timer across tip changes). Blocks are real
  80-byte ``BlockHeader``s with a fixed ``bits`` (regtest's pow limit: every block has
  the same work, so most work = most blocks) and a ``merkle_root`` over the ids of the
  simulated payload, so distinct payloads give distinct block hashes. Headers are not
  checked for proof of work, difficulty or time: the simulator made them.
* **Transactions are abstract payments**: a ``SimTx`` spends named coins. Two
  transactions spending one coin conflict (a double spend); a block spending a coin
  already spent on its chain is invalid when it is connected and ``activate_best_chain``
  marks it so (Bitcoin Core's ConnectBlock failing). Scripts, amounts and signatures are
  not simulated (``core/tx.py`` does them). A node's mempool takes the first of two
  conflicting payments it sees.
* **Block storage is shared by content address.** Blocks are immutable and named by
  their hash, so instead of each of a thousand nodes copying every block, a node keeps
  headers in its own ``BlockTree`` and looks a block's payload up in the world's
  registry -- only for hashes whose data it has received.
* **Links never drop.** The simulated network loses, delays or partitions messages,
  but a link between two nodes stays open (no handshake timeout, no address gossip, no
  dialling): the topology is the run's, and its links are up when the run starts (each
  node plays its peers' side of the handshake at time zero, so handshakes are not
  network traffic). A peer the protocol bans is disconnected for the rest of the run.
* **Time**: the protocol is given ``world.genesis time + the node's local clock``, so
  block times and the stall timeout run on virtual time. The stall timeout follows
  Bitcoin Core's rule of one block interval (``BLOCK_DOWNLOAD_TIMEOUT_BASE``) rather
  than the real node's fixed 20 seconds.

Confirmations become decisions: when a block is ``confirmations`` deep in a node's
active chain the node returns ``Decide(height, block_hash)``; a reorg that replaces a
decided block decides again, which the simulator records as a reversal.

A node can instead run the real node's full validation (``chain=`` a
``node.backend.NodeChain`` on a memory store, with real blocks): the differential test
does, to show that the simulator's host and the real node's host make the protocol
decide the same things.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Hashable, Iterable, Sequence

from minichain import params as chain_params
from minichain.chainstate import BlockStatus
from minichain.core.block import BlockHeader
from minichain.core.chain import BlockTree, IndexEntry, Status, activate_best_chain
from minichain.core.hashing import merkle_root, sha256d
from minichain.core.orphans import OrphanPool
from minichain.node import messages as m
from minichain.node.protocol import Disconnect, Misbehaved, PeerProtocol, ProtocolConfig
from minichain.sim.engine import CLIENT, Action, Decide, Engine, NodeContext, Send, SetTimer

# Regtest's pow limit: block work 2, identical for every simulated block.
SIM_BITS = chain_params.regtest.pow_limit_bits
HEADER_BYTES = 80
TICK = "tick"
USER_AGENT = "/minichain-sim/"


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
        # The one block message every node serves this block in: a message is an
        # immutable value, so a thousand nodes need not make a thousand copies of it.
        self.msg = m.BlockMessage(self)

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


# -- input from outside the network (a test, a wallet, a scenario) ---------------------------


class BlockMsg:
    """Hand ``block`` to a node from outside (``sim.inject``): the node takes it as its own
    and announces it, as a real node does with a block submitted to it."""

    __slots__ = ("block",)

    def __init__(self, block: SimBlock) -> None:
        self.block = block


class TxMsg:
    """Hand ``tx`` to a node from outside (a wallet's broadcast): admitted and announced."""

    __slots__ = ("tx",)

    def __init__(self, tx: SimTx) -> None:
        self.tx = tx


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
    block_timeout: float | None = None       # stall timeout; None: one block interval (Bitcoin Core)

    def __post_init__(self) -> None:
        self.blocks[self.genesis.hash] = self.genesis
        # The protocol's clock starts at genesis time: one float every node shares (an int
        # past 2**30 plus a float converts the slow way on every message, and one object
        # read by all nodes stays in the cache where a copy per node would not).
        self.time_base = float(self.genesis.header.time)

    def register(self, block: SimBlock) -> None:
        self.blocks[block.hash] = block

    def protocol_config(self) -> ProtocolConfig:
        """The peer protocol's settings for a simulated node (see the module docstring)."""
        timeout = self.block_interval if self.block_timeout is None else self.block_timeout
        return ProtocolConfig(block_timeout=timeout, handshake_timeout=math.inf, discover=False, addr_gossip=False,
                              serve_bytes=math.inf)   # simulated links have no send buffers


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


# -- the chain behind a simulated node's protocol -------------------------------------------------


class Outcome:
    """What ``accept_header`` / ``accept_block`` did (the fields the protocol reads)."""

    __slots__ = ("status", "reason", "message")

    def __init__(self, status: BlockStatus, reason: str | None = None, message: str = "") -> None:
        self.status = status
        self.reason = reason
        self.message = message

    def __repr__(self) -> str:
        return f"Outcome({self.status.value}{', ' + self.reason if self.reason else ''})"


_CONNECTED = Outcome(BlockStatus.CONNECTED)
_SIDE_BRANCH = Outcome(BlockStatus.SIDE_BRANCH)
_DUPLICATE = Outcome(BlockStatus.DUPLICATE)
_HEADER = Outcome(BlockStatus.HEADER)
_ORPHAN = Outcome(BlockStatus.ORPHAN, "prev-blk-not-found")
_KNOWN_INVALID = Outcome(BlockStatus.INVALID, "duplicate-invalid", "block known to be invalid")
_BAD_PREV = Outcome(BlockStatus.INVALID, "bad-prevblk", "the parent block is invalid")
_FAILED = frozenset(s for s in Status if s.failed)


class SimChain:
    """A simulated node's chain, mempool and payment bookkeeping, behind the protocol's
    ``ChainAccess`` interface, with the cheap validation the module docstring describes."""

    # (Slots, and a ``__dict__`` for anything else: fields read per message sit in the object.)
    __slots__ = ("tree", "world", "ctx", "orphans", "mempool", "spent", "tx_height", "payments", "confirmations",
                 "decided_upto", "reorgs", "decisions", "__dict__", "__weakref__")

    def __init__(self, world: World, ctx: NodeContext) -> None:
        self.world = world
        self.ctx = ctx
        self.tree = BlockTree(world.genesis.header, world.params)
        self.orphans = OrphanPool()
        self.mempool: dict[str, SimTx] = {}
        self.spent: dict[str, str] = {}                     # coin -> txid, on the active chain
        self.tx_height: dict[str, int] = {}                 # txid -> height, on the active chain
        self.payments: dict[str, PaymentView] = {t: PaymentView(t) for t in sorted(world.watched)}
        self.confirmations = world.confirmations
        self.decided_upto = 0
        self.reorgs: list[tuple[float, int]] = []           # (time, blocks disconnected)
        self.decisions: list[Action] = []                   # Decides since the host last collected them

    # -- headers and blocks

    def accept_header(self, header: BlockHeader, now: int) -> Outcome:
        tree = self.tree
        entry = tree.entries.get(header.hash)
        if entry is not None:
            return _KNOWN_INVALID if entry.status in _FAILED else _DUPLICATE
        parent = tree.entries.get(header.prev_hash)
        if parent is None:
            return _ORPHAN
        tree.add_header(header)
        return _BAD_PREV if parent.status in _FAILED else _HEADER

    def accept_block(self, block: SimBlock, now: int) -> Outcome:
        tree = self.tree
        entries = tree.entries
        h = block.hash
        entry = entries.get(h)
        if entry is not None:
            if entry.status in _FAILED:
                return _KNOWN_INVALID
            if entry.have_data:
                return _DUPLICATE
        elif h in self.orphans:
            return _DUPLICATE
        parent = entries.get(block.header.prev_hash)
        if parent is None:
            self.orphans.add(block)            # bounded: the oldest orphan leaves first
            return _ORPHAN
        if parent.status in _FAILED:
            if entry is None:
                tree.add_header(block.header)
            return _BAD_PREV
        if entry is None:
            entry = tree.add_header(block.header)
        tree.set_have_data(entry)
        if self.orphans:
            stack = self.orphans.pop_children(h)
            while stack:
                child = stack.pop()
                child_entry = tree.add_header(child.header)
                if child_entry.status not in _FAILED:
                    tree.set_have_data(child_entry)
                stack.extend(self.orphans.pop_children(child.hash))
        self._update_tip()
        if entry.status in _FAILED:
            return Outcome(BlockStatus.INVALID, "bad-txns-inputs-missingorspent", "spends a coin already spent")
        active = tree.active
        return _CONNECTED if entry.height < len(active) and active[entry.height] is entry else _SIDE_BRANCH

    def get_block(self, block_hash: bytes) -> SimBlock | None:
        return self.world.blocks.get(block_hash)

    def block_message(self, block_hash: bytes) -> m.BlockMessage | None:
        block = self.world.blocks.get(block_hash)
        return None if block is None else block.msg

    def _update_tip(self) -> None:
        """The node's ActivateBestChain loop with the simulated payload's connect and disconnect."""
        done = activate_best_chain(self.tree, self._connect, self._disconnect)
        if done.fork_height is None:
            return
        if done.disconnected:
            self.reorgs.append((self.ctx.now, done.disconnected))
        self._after_tip_change(done.fork_height)

    def _connect(self, entry: IndexEntry) -> str | None:
        block = self.world.blocks[entry.hash]
        if block.txs:
            coins: set[str] = set()
            spent = self.spent
            for tx in block.txs:
                for c in tx.coins:
                    if c in spent or c in coins:
                        return "bad-txns-inputs-missingorspent"   # marked invalid: try the next best
                    coins.add(c)
            for tx in block.txs:
                for c in tx.coins:
                    spent[c] = tx.txid
                self.tx_height[tx.txid] = block.height
                self.mempool.pop(tx.txid, None)
        return None

    def _disconnect(self, entry: IndexEntry) -> None:
        block = self.world.blocks[entry.hash]
        for tx in block.txs:
            for c in tx.coins:
                if self.spent.get(c) == tx.txid:
                    del self.spent[c]
            self.tx_height.pop(tx.txid, None)
            self.mempool.setdefault(tx.txid, tx)        # back to the mempool, as Bitcoin does

    def _after_tip_change(self, fork_height: int) -> None:
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
        decisions = self.decisions
        while h <= last:
            decisions.append(Decide(h, active[h].hash))
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

    # -- transactions

    def has_tx(self, txid: str) -> bool:
        return txid in self.mempool or txid in self.tx_height

    def get_tx(self, txid: str) -> SimTx | None:
        return self.mempool.get(txid)

    def accept_tx(self, tx: SimTx, now: int) -> str | None:
        """First-seen rule: refuse a transaction conflicting with the chain or the mempool."""
        if tx.txid in self.mempool:
            return "txn-already-in-mempool"
        if tx.txid in self.tx_height:
            return "txn-already-known"
        if any(c in self.spent for c in tx.coins):
            return "bad-txns-inputs-missingorspent"
        for other in self.mempool.values():
            if other.conflicts_with(tx):
                return "txn-mempool-conflict"
        self.mempool[tx.txid] = tx
        view = self.payments.get(tx.txid)
        if view is not None and view.first_seen is None:
            view.first_seen = self.ctx.now
        return None

    def template(self) -> list[SimTx]:
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


# -- the honest node -----------------------------------------------------------------------------


class NakamotoNode(Engine):
    """An honest Bitcoin-style node: the node's peer protocol over a simulated chain, mining with ``share``."""

    # The fields every message reads sit in the object (the engine's ``__dict__`` keeps the rest).
    __slots__ = ("ctx", "protocol", "_time_base", "_decisions", "_tick_due", "_timer_for", "_reports_seen", "chain",
                 "world", "share", "peers", "mined", "misbehaved", "disconnected")

    def __init__(self, ctx: NodeContext, world: World, *, share: float = 0.0, peers: Sequence[int] = (),
                 chain: Any = None, config: ProtocolConfig | None = None) -> None:
        super().__init__(ctx)
        self.world = world
        self.share = share
        self.peers = list(peers)
        self.chain = chain if chain is not None else SimChain(world, ctx)
        self.protocol = PeerProtocol(self.chain, genesis_hash=world.genesis.hash, nonce=ctx.node_id + 1,
                                     user_agent=USER_AGENT, network="simulated",
                                     config=config or world.protocol_config())
        self._time_base = world.time_base
        self._decisions = self.chain.decisions if isinstance(self.chain, SimChain) else []
        self._reports_seen = 0
        # The stall timer (see _finish): when the protocol's tick is due (local time), and
        # the due the simulator's pending TICK timer was set for (None: none pending).
        self._tick_due: float | None = None
        self._timer_for: float | None = None
        self.mined = 0
        self.misbehaved: list[tuple[float, int, str, int, bool]] = []   # (time, peer, reason, score, banned)
        self.disconnected: list[tuple[float, int, str]] = []            # (time, peer, reason)

    # -- what scenarios read (the chain's bookkeeping) -----------------------------------------

    @property
    def tree(self) -> BlockTree:
        return self.chain.tree

    @property
    def tip(self) -> IndexEntry:
        return self.chain.tree.tip

    @property
    def mempool(self) -> dict[str, SimTx]:
        return self.chain.mempool

    @property
    def tx_height(self) -> dict[str, int]:
        return self.chain.tx_height

    @property
    def spent(self) -> dict[str, str]:
        return self.chain.spent

    @property
    def payments(self) -> dict[str, PaymentView]:
        return self.chain.payments

    @property
    def reorgs(self) -> list[tuple[float, int]]:
        return self.chain.reorgs

    @property
    def orphans(self) -> OrphanPool:
        return self.chain.orphans

    def main_chain(self) -> list[SimBlock]:
        return [self.world.blocks[e.hash] for e in self.tree.active]

    # -- engine interface ----------------------------------------------------------------------

    def now(self) -> float:
        """The protocol's clock: the genesis block's time plus this node's local clock."""
        return self._time_base + self.ctx.now

    def on_start(self) -> list[Action]:
        self._establish_links()
        return self._finish(self._schedule_mining())

    def _establish_links(self) -> None:
        """The run's links exist before it starts: each node plays both sides of every
        handshake (the peer's version and verack, as that peer would send them at time
        zero) into its own protocol, so every link is ready without network traffic.
        The lower id of a link is the side that dialled."""
        protocol = self.protocol
        now = self.now()
        genesis = self.world.genesis.hash
        for p in self.peers:
            protocol.connected(p, inbound=p < self.id, host=f"node{p}", now=now)   # a host per node: bans are per host
            protocol.receive(p, m.Version(m.PROTOCOL_VERSION, genesis, 0, USER_AGENT, 0, p + 1), now)
            protocol.receive(p, m.Verack(), now)

    def on_recover(self) -> list[Action]:
        # Chain, mempool and peers live on disk in a real node: nothing volatile to lose
        # here but the timers, which the simulator dropped at the crash.
        self._tick_due = self._timer_for = None
        out = self.protocol.tick(self.now())
        out.extend(self._schedule_mining())
        return self._finish(out)

    def on_timer(self, name: Hashable) -> list[Action]:
        if name == TICK:
            due, armed_for = self._tick_due, self._timer_for
            self._timer_for = None
            if due is None:
                return []                # nothing in flight any more: the tick is not due
            if due != armed_for:
                # Set for a due that lapsed when the blocks then in flight arrived; the
                # blocks in flight now are due later: wait until then.
                self._timer_for = due
                return [SetTimer(TICK, max(0.0, due - self.ctx.now))]
            now = self.now()
            out = self.protocol.tick(now)
            deadline = self.protocol.next_deadline() if self.protocol.in_flight else None
            if deadline is not None:
                delay = max(0.0, deadline - now)
                self._tick_due = self._timer_for = self.ctx.now + delay
                out.append(SetTimer(TICK, delay))
            else:
                self._tick_due = None
            return self._finish(out)
        if name != "mine" or self.share <= 0:
            return []
        block = self._new_block(self.tree.tip)
        _, out = self.protocol.local_block(block, self.now())
        out.extend(self._schedule_mining())
        return self._finish(out)

    def on_message(self, src: int, msg: Any) -> list[Action]:
        if src == CLIENT:
            return self._from_outside(msg)
        out = self.protocol.receive(src, msg, self._time_base + self.ctx.clock())
        if out or self._decisions:
            return self._finish(out)
        return out

    def _from_outside(self, msg: Any) -> list[Action]:
        cls = msg.__class__
        if cls is BlockMsg:
            _, out = self.protocol.local_block(msg.block, self.now())
            return self._finish(out)
        if cls is TxMsg:
            return self._submit_tx(msg.tx)
        return []

    def _submit_tx(self, tx: SimTx) -> list[Action]:
        if self.chain.accept_tx(tx, int(self.now())) is not None:
            return self._finish([])
        return self._finish(self.protocol.relay_tx(tx))

    def _finish(self, out: list) -> list[Action]:
        """The protocol's effects as simulator actions: Sends go out as they are; the
        reports are recorded; a disconnect ends the link for the run; the chain's
        decisions follow; the stall timer runs while blocks are in flight."""
        protocol = self.protocol
        if protocol.reports != self._reports_seen:
            self._reports_seen = protocol.reports
            out = self._reports(out)
        decisions = self._decisions
        if decisions:
            out.extend(decisions)
            decisions.clear()
        if protocol.in_flight:
            if self._tick_due is None:
                # The stall timer runs whenever a block is in flight. Not running means none
                # was before this event (or it just fired and handled the overdue ones),
                # so the first request in flight now times out one timeout from now at
                # the earliest; the tick then re-arms itself for what is left.
                timeout = protocol.config.block_timeout
                self._tick_due = due = self.ctx.now + timeout
                if self._timer_for is None:
                    self._timer_for = due
                    out.append(SetTimer(TICK, timeout))
        elif self._tick_due is not None:
            # Nothing in flight: the tick is no longer due. The simulator's timer is left
            # to fire (it then finds nothing due) rather than cancelled: a block is in
            # flight for a moment every block interval, and a timer set for an earlier
            # due is moved on when it fires, so a node sets about one timer per timeout
            # instead of one and a cancellation per block.
            self._tick_due = None
        return out

    def _reports(self, effects: list) -> list:
        actions = []
        now = self.ctx.now
        pending = list(effects)
        while pending:
            effect = pending.pop(0)
            cls = effect.__class__
            if cls is Send or cls is SetTimer:
                actions.append(effect)
            elif cls is Misbehaved:
                self.misbehaved.append((now, effect.peer, effect.reason.code, effect.score, effect.banned))
            elif cls is Disconnect:
                self.disconnected.append((now, effect.peer, effect.reason))
                pending.extend(self.protocol.disconnected(effect.peer, self.now()))
            # PeerReady and Dial: links in the simulator are the run's topology
        return actions

    # -- mining ------------------------------------------------------------------------------------

    def _schedule_mining(self) -> list[Action]:
        if self.share <= 0:
            return []
        return [SetTimer("mine", self.ctx.rng.expovariate(self.share / self.world.block_interval))]

    def _new_block(self, parent: IndexEntry | SimBlock, txs: Iterable[SimTx] | None = None) -> SimBlock:
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
        return self.chain.template()


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
