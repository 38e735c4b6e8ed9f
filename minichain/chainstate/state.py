"""The chain state: the best valid chain, its UTXO set and every block we know, on a store.

Blocks and headers may arrive in any order, from anyone. :class:`ChainState` follows
Bitcoin Core's validation.cpp:

* ``accept_header`` -- AcceptBlockHeader: proof of work, difficulty and time against the
  parent, then the header joins the block tree (and the stored index).
* ``accept_block`` -- AcceptBlock: the same header checks plus CheckBlock and
  ContextualCheckBlock, then the block's bytes are stored. A block whose parent is
  unknown waits in a bounded orphan pool and is accepted when the parent arrives.
* ``activate_best_chain`` -- ActivateBestChain: while the most-work complete, not
  invalid block (``BlockTree.best_candidate``) is not the active tip, disconnect back to
  the fork point with the undo data and connect the new branch with ConnectBlock. When a
  block of that branch breaks a rule it and its descendants are marked invalid and the
  loop goes on to the best chain that is left -- usually the one we came from.

Each connect and each disconnect is one atomic store batch (UTXO changes, undo data,
index status, tip pointer, and the transaction and address indexes of ``index.py``), so
a crash leaves the store at some block boundary with a UTXO set and indexes that are
exactly its tip's; reopening it and calling ``activate_best_chain``
finishes an interrupted reorganisation.

When those batches reach the store is the :class:`FlushPolicy`'s business. By default
every batch is written before the call that made it returns (raft's Ready: persist,
then speak). A node syncing a long chain instead keeps the batches of up to
``FlushPolicy.blocks`` blocks in memory (``store/cached.py``, Bitcoin Core's coins cache)
and writes them as one batch -- one fsync instead of three per block -- whenever that
many blocks were connected or disconnected, the pending changes grow past
``max_bytes``, ``seconds`` have passed, the active tip is the best header known (caught
up: from then on every block is written before it is announced), and on close. A crash
loses what was connected since the last flush, at most that window, and never leaves a
UTXO set or index that belongs to no block: the union of consistent batches is one.

``assume_valid`` (opt-in; Bitcoin Core's ``-assumevalid``): the signatures of blocks that
are ancestors of a given block hash -- when that block is in the best header chain -- are
not checked. Everything else (proof of work, Merkle roots, amounts, double spends,
coinbase rules, that each input's key hashes to the spent output's address) still is.
It trusts whoever named the hash that its history holds valid signatures; Core adds a
minimum-chain-work and a two-weeks-deep condition that this laboratory leaves out.

An invalid block never changes the active chain or the UTXO set once the call returns.
What it does leave behind, as in Bitcoin Core, is a memory of its header marked invalid
(when its proof of work was good and its transactions matched its Merkle root), so
that it and its descendants are refused at once next time.

The store carries a format tag (``STORE_FORMAT``). Format 1 had no transaction or address
indexes; opening such a store upgrades it once, in one batch, building the indexes from
the active chain's blocks and undo data (logged as a warning, with its duration). A
store of an unknown format is refused with a message that says so.

Simplifications: no pruning, no header-only sync logic beyond storing headers; a
block's bytes are stored as they arrive even if it is never connected.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass, field

from minichain.chainstate.index import ChainIndex, rebuild
from minichain.core.block import Block, BlockHeader
from minichain.core.chain import BlockTree, IndexEntry, Status, activate_best_chain
from minichain.core.genesis import genesis_block
from minichain.core.orphans import DEFAULT_MAX_ORPHANS, OrphanPool
from minichain.core.sigcache import SignatureCache, SignatureChecker
from minichain.core.tx import OutPoint, Transaction
from minichain.core.validation import (
    Coin,
    CoinsCache,
    CorruptionError,
    ValidationError,
    check_block,
    check_block_header,
    connect_block,
    contextual_check_block,
    contextual_check_block_header,
    deserialize_undo,
    disconnect_block,
    serialize_undo,
)
from minichain.params import Params
from minichain.store.cached import CachedStore
from minichain.store.interface import ChainStore, IndexRow, StoreBatch, StoreMismatchError

log = logging.getLogger("minichain.chainstate")

STORE_FORMAT = b"minichain-store-2"   # 2: the transaction and address indexes (index.py)
UPGRADABLE = {b"minichain-store-1"}   # formats opened by building what they lack, once
RECENT_BLOCKS = 64  # blocks kept decoded in memory, so a block just received is not re-read


@dataclass(frozen=True)
class FlushPolicy:
    """When the chain state writes its pending batches to the store (Bitcoin Core:
    FlushStateToDisk's IF_NEEDED, PERIODIC and ALWAYS modes, by block count here)."""

    blocks: int = 1                # blocks connected or disconnected between two flushes; 1: write every batch at once
    max_bytes: int = 64 << 20      # flush sooner when the pending changes hold about this much memory
    seconds: float = 60.0          # ... or when this long has passed since the last flush (by the callers' ``now``)
    at_tip: bool = True            # ... or whenever the active tip is the best header known

    def __post_init__(self) -> None:
        if self.blocks < 1:
            raise ValueError("FlushPolicy.blocks must be at least 1")

    @property
    def buffered(self) -> bool:
        return self.blocks > 1


EVERY_BATCH = FlushPolicy()
# What a node uses: Core's coins cache flushes by size (-dbcache, 450 MB); a window of
# blocks keeps what a crash can lose easy to state.
NODE_FLUSH = FlushPolicy(blocks=500)


class BlockStatus(str, enum.Enum):
    CONNECTED = "connected"       # on the active chain when the call returned
    SIDE_BRANCH = "side-branch"   # stored and not known invalid, but not on the active chain
    ORPHAN = "orphan"             # parent unknown: waiting in the orphan pool
    DUPLICATE = "duplicate"       # already stored (or already waiting as an orphan)
    INVALID = "invalid"           # broke a rule; ``reason`` says which
    HEADER = "header"             # accept_header: the header joined the tree


@dataclass
class BlockEvent:
    """What happened to one block."""

    hash: bytes
    status: BlockStatus
    reason: str | None = None
    message: str = ""

    def __repr__(self) -> str:
        why = f" {self.reason}" if self.reason else ""
        return f"<{self.hash[::-1].hex()[:16]} {self.status.value}{why}>"


@dataclass
class Activation:
    """The blocks ``activate_best_chain`` disconnected and connected, in the order it did so."""

    disconnected: list[Block] = field(default_factory=list)  # tip first
    connected: list[Block] = field(default_factory=list)     # lowest first
    invalid: list[tuple[bytes, ValidationError]] = field(default_factory=list)


@dataclass
class AcceptResult:
    """The outcome of ``accept_block`` / ``accept_header``.

    ``status``/``reason`` concern the block passed in; ``events`` lists every block whose
    fate this call decided (the block itself, orphans it released, blocks of a branch
    found invalid while reorganising). ``activation`` lists what was disconnected and
    connected; a mempool takes back :attr:`disconnected_txs` and drops
    :attr:`connected_txs`.
    """

    hash: bytes
    status: BlockStatus
    reason: str | None = None
    message: str = ""
    events: list[BlockEvent] = field(default_factory=list)
    activation: Activation = field(default_factory=Activation)
    tip: bytes = b""

    @property
    def disconnected_txs(self) -> list[Transaction]:
        """Non-coinbase transactions of the disconnected blocks, oldest block first."""
        return [tx for b in reversed(self.activation.disconnected) for tx in b.transactions[1:]]

    @property
    def connected_txs(self) -> list[Transaction]:
        return [tx for b in self.activation.connected for tx in b.transactions[1:]]

    @property
    def txs_to_readd(self) -> list[Transaction]:
        """Disconnected transactions that the new chain does not contain (mempool candidates)."""
        now_in_chain = {tx.txid for tx in self.connected_txs}
        return [tx for tx in self.disconnected_txs if tx.txid not in now_in_chain]


@dataclass
class VerifyReport:
    ok: bool
    problems: list[str]
    blocks: int
    coins: int

    def __str__(self) -> str:
        head = f"verify: {'OK' if self.ok else 'FAILED'} ({self.blocks} blocks, {self.coins} coins)"
        return "\n".join([head] + [f"  - {p}" for p in self.problems])


class _DictView:
    __slots__ = ("coins",)

    def __init__(self, coins: dict[OutPoint, Coin]) -> None:
        self.coins = coins

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        return self.coins.get(outpoint)


def _apply(view: CoinsCache, batch: StoreBatch) -> None:
    puts, deletes = view.changes()
    for outpoint in deletes:
        batch.delete_coin(outpoint)
    for outpoint, coin in puts.items():
        batch.put_coin(outpoint, coin)


class ChainState:
    """The best valid chain on a :class:`ChainStore`. Single-threaded: one caller at a time.

    Opening a store loads the block index and the tip; it does not connect anything. A
    node calls :meth:`activate_best_chain` right after opening, to finish a
    reorganisation a crash may have interrupted.
    """

    def __init__(
        self,
        store: ChainStore,
        params: Params,
        *,
        sigcache: SignatureCache | None = None,
        checker: SignatureChecker | None = None,
        max_orphans: int = DEFAULT_MAX_ORPHANS,
        reindex: bool = False,
        flush: FlushPolicy = EVERY_BATCH,
        assume_valid: bytes | None = None,
    ) -> None:
        if sigcache is not None and checker is not None:
            raise ValueError("pass a sigcache or a checker (which has its own cache), not both")
        self.flush_policy = flush
        # With a window, every read and write goes through the pending layer (one given
        # ready-made is used as it is).
        self.store: ChainStore = CachedStore(store) if flush.buffered and not isinstance(store, CachedStore) else store
        self.params = params
        self.checker = checker if checker is not None else SignatureChecker(sigcache)
        self.assume_valid = assume_valid   # block hash (internal byte order) or None
        self.assumed_valid_blocks = 0      # blocks connected without checking their signatures
        self.unflushed_blocks = 0          # connects and disconnects not yet in the store underneath
        self._flushed_at: float | None = None  # the caller's ``now`` at the last flush
        self.max_orphans = max_orphans
        self.genesis = genesis_block(params)
        self.orphans = OrphanPool(max_orphans)
        self._recent: dict[bytes, Block] = {}
        self._events: list[BlockEvent] = []  # side effects of the current call, for its result
        self.index = ChainIndex(self.store)
        if store.get_tip() is None:
            self._initialise()
        fmt = self._check_network()
        self.tree = self._load_tree()
        if reindex:
            self.reindex()
        elif fmt != STORE_FORMAT:
            self._upgrade(fmt)
        self.flush()  # a new, upgraded or reindexed store is on disk before anything else happens

    # -- opening

    def _initialise(self) -> None:
        g = self.genesis
        batch = StoreBatch()
        batch.put_meta("format", STORE_FORMAT)
        batch.put_meta("network", self.params.name.encode())
        batch.put_meta("genesis", g.hash)
        batch.put_block(g.hash, g.serialize())
        batch.put_index(g.hash, IndexRow(g.header, Status.VALID, True, 0))
        batch.set_tip(g.hash)  # the genesis coinbase never enters the UTXO set (as in Bitcoin)
        self.index.add_genesis(batch, g)
        self.store.write(batch)

    def _check_network(self) -> bytes | None:
        fmt = self.store.get_meta("format")
        if fmt != STORE_FORMAT and fmt not in UPGRADABLE:
            raise StoreMismatchError(
                f"store format {fmt!r} is not one this version of minichain reads ({STORE_FORMAT!r}, or an "
                f"older format it upgrades: {', '.join(repr(f) for f in sorted(UPGRADABLE))})"
            )
        genesis = self.store.get_meta("genesis")
        if genesis != self.genesis.hash:
            network = (self.store.get_meta("network") or b"?").decode(errors="replace")
            raise StoreMismatchError(
                f"this data directory holds network {network!r}, not {self.params.name!r} (genesis differs)"
            )
        return fmt

    def _upgrade(self, fmt: bytes | None) -> None:
        """Bring an older store to ``STORE_FORMAT`` in one batch (a crash part-way leaves
        the old format, and the next start does it again)."""
        active = self.tree.active
        log.warning("upgrading the store from format %r to %r: building the transaction and address indexes "
                    "from the %d blocks of the active chain (once)", fmt, STORE_FORMAT, len(active))
        began = time.monotonic()

        def blocks():
            for entry in active[1:]:
                raw = self.store.get_undo(entry.hash)
                if raw is None:
                    raise CorruptionError(f"no undo data for active block {entry.hash[::-1].hex()}; "
                                          "the store needs a reindex (minichain node --reindex)")
                yield self._load_block(entry), entry.height, deserialize_undo(raw)

        batch = rebuild(self.genesis, blocks()).batch(self.store)
        batch.put_meta("format", STORE_FORMAT)
        self.store.write(batch)
        log.warning("store upgraded to format %r in %.1f s", STORE_FORMAT, time.monotonic() - began)

    def _load_tree(self) -> BlockTree:
        tree = BlockTree(self.genesis.header, self.params)
        rows = [row.as_tuple() for row in self.store.iter_index() if row.header.hash != self.genesis.hash]
        tip = self.store.get_tip()
        assert tip is not None
        tree.load(rows, tip)
        return tree

    # -- flushing (see FlushPolicy)

    def flush(self) -> bool:
        """Write whatever is pending to the store now (one batch). False if nothing was."""
        self.unflushed_blocks = 0
        store = self.store
        return isinstance(store, CachedStore) and store.flush()

    def _block_written(self) -> None:
        """After a connect or disconnect batch: flush if the window is full."""
        store = self.store
        if isinstance(store, CachedStore):
            self.unflushed_blocks += 1
            if self.unflushed_blocks >= self.flush_policy.blocks or store.pending_bytes >= self.flush_policy.max_bytes:
                self.flush()

    def _call_done(self, now: float | None) -> None:
        """At the end of a public call: flush when caught up, or when it is time."""
        store = self.store
        if not isinstance(store, CachedStore) or not store.dirty:
            return
        policy = self.flush_policy
        if self._flushed_at is None and now is not None:
            self._flushed_at = now      # the clock of the periodic flush starts with the first call
        if (policy.at_tip and self.tree.tip is self.tree.best_header
                or now is not None and now - self._flushed_at >= policy.seconds):
            self.flush()
            if now is not None:
                self._flushed_at = now

    # -- queries

    @property
    def tip(self) -> IndexEntry:
        return self.tree.tip

    @property
    def height(self) -> int:
        return self.tree.height

    def get_block(self, block_hash: bytes) -> Block | None:
        block = self._recent.get(block_hash)
        if block is not None:
            return block
        data = self.store.get_block(block_hash)
        return None if data is None else Block.deserialize(data)

    def get_block_bytes(self, block_hash: bytes) -> bytes | None:
        """A stored block's serialization, without decoding it (what a peer is sent)."""
        block = self._recent.get(block_hash)
        return block.serialize() if block is not None else self.store.get_block(block_hash)

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        return self.store.get_coin(outpoint)

    def utxo_set(self) -> dict[OutPoint, Coin]:
        return dict(self.store.iter_coins())

    def orphan_count(self) -> int:
        return len(self.orphans)

    def has_orphan(self, block_hash: bytes) -> bool:
        return block_hash in self.orphans

    # -- headers

    def accept_header(self, header: BlockHeader, now: int) -> AcceptResult:
        """Add a header to the tree (Bitcoin: AcceptBlockHeader). Nothing is connected."""
        h = header.hash
        self._events = []
        entry = self.tree.get(h)
        if entry is not None:
            if entry.status.failed:
                return self._result(h, BlockStatus.INVALID, "duplicate-invalid", "header of a block known to be invalid")
            return self._result(h, BlockStatus.DUPLICATE)
        parent = self.tree.get(header.prev_hash)
        if parent is None:
            return self._result(h, BlockStatus.ORPHAN, "prev-blk-not-found", "the parent header is unknown")
        try:
            self._check_new_header(header, parent, now)
        except ValidationError as e:
            return self._result(h, BlockStatus.INVALID, e.reason, e.message)
        entry = self.tree.add_header(header)
        batch = StoreBatch()
        batch.put_index(h, self._row(entry))
        self.store.write(batch)
        self._call_done(now)
        return self._result(h, BlockStatus.HEADER)

    def _check_new_header(self, header: BlockHeader, parent: IndexEntry, now: int) -> None:
        check_block_header(header, self.params)
        if parent.status.failed:
            # Unlike Core, remember the header (as INVALID_CHILD): its proof of work is
            # real, and its own descendants are then refused at once instead of waiting
            # in the orphan pool for a parent that will never be accepted.
            entry = self.tree.add_header(header)
            self._write_rows([entry])
            raise ValidationError("bad-prevblk", "the parent block is invalid")
        contextual_check_block_header(header, parent, self.tree, now)

    # -- blocks

    def accept_block(self, block: Block, now: int) -> AcceptResult:
        """Take a block from anywhere, store it if it may be valid, and follow the best chain."""
        h = block.hash
        self._events = []
        if h in self.orphans:
            return self._result(h, BlockStatus.DUPLICATE, message="already in the orphan pool")
        entry = self.tree.get(h)
        if entry is not None and entry.status.failed:
            return self._result(h, BlockStatus.INVALID, "duplicate-invalid", "block known to be invalid")
        if entry is not None and entry.have_data:
            return self._result(h, BlockStatus.DUPLICATE)
        if entry is None and block.header.prev_hash not in self.tree:
            try:
                check_block(block, self.params)  # no junk in the pool: proof of work and Merkle root hold
            except ValidationError as e:
                return self._result(h, BlockStatus.INVALID, e.reason, e.message)
            self.orphans.add(block)
            return self._result(h, BlockStatus.ORPHAN, message="parent unknown; kept in the orphan pool")

        try:
            self._store_block(block, now)
        except ValidationError as e:
            return self._result(h, BlockStatus.INVALID, e.reason, e.message)
        stored = [h]
        # Orphans waiting for this block (and for them, recursively) can now be stored.
        queue = [h]
        while queue:
            for child in self.orphans.pop_children(queue.pop()):
                try:
                    self._store_block(child, now)
                except ValidationError as e:
                    self._events.append(BlockEvent(child.hash, BlockStatus.INVALID, e.reason, e.message))
                    continue
                stored.append(child.hash)
                queue.append(child.hash)

        activation = self.activate_best_chain()
        self._call_done(now)
        reasons = {bh: err for bh, err in activation.invalid}
        events = [self._fate(bh, reasons) for bh in stored]
        for bh, err in activation.invalid:
            if bh not in stored:
                events.append(BlockEvent(bh, BlockStatus.INVALID, err.reason, err.message))
        events += self._drain_events()
        return AcceptResult(h, events[0].status, events[0].reason, events[0].message, events, activation, self.tree.tip.hash)

    def _fate(self, block_hash: bytes, reasons: dict[bytes, ValidationError]) -> BlockEvent:
        entry = self.tree.entries[block_hash]
        if entry.status is Status.INVALID:
            err = reasons.get(block_hash)
            return BlockEvent(block_hash, BlockStatus.INVALID, err.reason if err else "invalid", err.message if err else "")
        if entry.status is Status.INVALID_CHILD:
            return BlockEvent(block_hash, BlockStatus.INVALID, "bad-prevblk", "descends from an invalid block")
        if self.tree.in_active_chain(entry):
            return BlockEvent(block_hash, BlockStatus.CONNECTED)
        return BlockEvent(block_hash, BlockStatus.SIDE_BRANCH)

    def _result(self, h: bytes, status: BlockStatus, reason: str | None = None, message: str = "") -> AcceptResult:
        events = [BlockEvent(h, status, reason, message)] + self._drain_events()
        return AcceptResult(h, status, reason, message, events, Activation(), self.tree.tip.hash)

    def _drain_events(self) -> list[BlockEvent]:
        """Events of this call beyond the block itself: orphans found invalid on the way."""
        events, self._events = self._events, []
        return events

    def _store_block(self, block: Block, now: int) -> IndexEntry:
        """Bitcoin: AcceptBlock. Check what can be checked before connecting; store the bytes."""
        header = block.header
        entry = self.tree.get(block.hash)
        if entry is None:
            parent = self.tree.entries[header.prev_hash]
            self._check_new_header(header, parent, now)
        else:
            if entry.status.failed:
                raise ValidationError("duplicate-invalid", "block known to be invalid")
            assert entry.parent is not None
            parent = entry.parent
        try:
            check_block(block, self.params)
            contextual_check_block(block, parent, self.tree)
        except ValidationError as e:
            # A mutated block says nothing about its header: someone sent us wrong data.
            if not e.mutated:
                self._mark_invalid(entry if entry is not None else self.tree.add_header(header))
            raise
        if entry is None:
            entry = self.tree.add_header(header)
        # Write first, then mark the data present: if the write fails (a full disk), the
        # tree must not believe the block is stored, or every later connect would fail
        # with "marked stored but is missing" (the block is asked for again instead).
        batch = StoreBatch()
        batch.put_block(entry.hash, block.serialize())
        batch.put_index(entry.hash, IndexRow(entry.header, entry.status, True, self.tree.next_sequence))
        self.store.write(batch)
        self.tree.set_have_data(entry)
        self._remember(block)
        return entry

    def _remember(self, block: Block) -> None:
        self._recent[block.hash] = block
        while len(self._recent) > RECENT_BLOCKS:
            del self._recent[next(iter(self._recent))]

    @staticmethod
    def _row(entry: IndexEntry) -> IndexRow:
        return IndexRow(entry.header, entry.status, entry.have_data, entry.sequence)

    def _mark_invalid(self, entry: IndexEntry) -> list[IndexEntry]:
        marked = self.tree.mark_invalid(entry)
        self._write_rows(marked)
        return marked

    def _write_rows(self, entries: list[IndexEntry]) -> None:
        """Persist index rows. A failed entry takes the orphans waiting for it along:
        they can never be valid, so they leave the pool and their headers (proof of
        work checked when pooled) join the tree as INVALID_CHILD, in the same batch."""
        batch = StoreBatch()
        queue = []
        for e in entries:
            batch.put_index(e.hash, self._row(e))
            if e.status.failed:
                queue.append(e.hash)
        while queue:
            for child in self.orphans.pop_children(queue.pop()):
                child_entry = self.tree.add_header(child.header)
                batch.put_index(child.hash, self._row(child_entry))
                self._events.append(BlockEvent(child.hash, BlockStatus.INVALID, "bad-prevblk", "descends from an invalid block"))
                queue.append(child.hash)
        self.store.write(batch)

    # -- the best chain

    def activate_best_chain(self) -> Activation:
        """Bitcoin: ActivateBestChain. Move the active tip to the best valid candidate.

        The loop is ``core.chain.activate_best_chain`` (the simulator runs the same one);
        here each connect and disconnect is one store batch."""
        act = Activation()

        def connect(entry: IndexEntry) -> ValidationError | None:
            try:
                self._connect_tip(entry, act)
            except ValidationError as e:
                return e
            return None

        done = activate_best_chain(self.tree, connect, lambda entry: self._disconnect_tip(entry, act),
                                   self._mark_invalid)
        act.invalid.extend((entry.hash, err) for entry, err in done.invalid)
        return act

    def _load_block(self, entry: IndexEntry) -> Block:
        block = self.get_block(entry.hash)
        if block is None:
            raise CorruptionError(f"block {entry.hash[::-1].hex()} is marked stored but is missing")
        return block

    def _connect_tip(self, entry: IndexEntry, act: Activation) -> None:
        """Bitcoin: ConnectTip. Validate against the UTXO set; one batch (the caller then
        moves the tree's tip)."""
        block = self._load_block(entry)
        assert entry.parent is self.tree.tip
        # Core's ConnectBlock runs CheckBlock again in case an older version let a bad block in.
        check_block(block, self.params)
        contextual_check_block(block, entry.parent, self.tree)
        view = CoinsCache(self.store)
        checker = self.checker
        if self.assume_valid is not None and self._assumed_valid(entry):
            checker = _NO_SIGNATURES
            self.assumed_valid_blocks += 1
        undo = connect_block(block, entry.height, view, self.params, checker)
        batch = StoreBatch()
        _apply(view, batch)
        batch.put_undo(entry.hash, serialize_undo(undo))
        batch.put_index(entry.hash, IndexRow(entry.header, Status.VALID, True, entry.sequence))
        batch.set_tip(entry.hash)
        self.index.connect(batch, block, entry.height, undo)
        self.store.write(batch)
        act.connected.append(block)
        self._block_written()

    def _assumed_valid(self, entry: IndexEntry) -> bool:
        """Is ``entry`` an ancestor of (or) the assume-valid block, which is itself in the
        best header chain? (Bitcoin Core: ConnectBlock's fScriptChecks.)"""
        tree = self.tree
        anchor = tree.get(self.assume_valid) if self.assume_valid is not None else None
        if anchor is None or anchor.status.failed or anchor.height < entry.height:
            return False
        best = tree.best_header
        if best.height < anchor.height or best.get_ancestor(anchor.height) is not anchor:
            return False
        return anchor.get_ancestor(entry.height) is entry

    def _disconnect_tip(self, entry: IndexEntry, act: Activation) -> None:
        """Bitcoin: DisconnectTip. Restore the spent coins from the undo data; one batch
        (the caller then drops the tree's tip)."""
        assert entry is self.tree.tip and entry.parent is not None
        block = self._load_block(entry)
        raw = self.store.get_undo(entry.hash)
        if raw is None:
            raise CorruptionError(f"no undo data for active block {entry.hash[::-1].hex()}")
        undo = deserialize_undo(raw)
        view = CoinsCache(self.store)
        disconnect_block(block, undo, view)
        batch = StoreBatch()
        _apply(view, batch)
        batch.delete_undo(entry.hash)
        batch.set_tip(entry.parent.hash)
        self.index.disconnect(batch, block, entry.height, undo)
        self.store.write(batch)
        act.disconnected.append(block)
        self._block_written()

    # -- consistency

    def verify(self, *, check_signatures: bool = True, max_problems: int = 20) -> VerifyReport:
        """Recompute the UTXO set from the stored blocks of the active chain and compare.

        Also checks that the stored tip is the active tip, that every active block is
        stored and marked valid, that each one's undo data is what connecting it gives,
        that no other block has undo data, and that the transaction and address indexes
        are exactly what a full rebuild gives. Reads everything; nothing is written.
        """
        problems: list[str] = []
        tree = self.tree

        def problem(text: str) -> None:
            if len(problems) < max_problems:
                problems.append(text)

        stored_tip = self.store.get_tip()
        if stored_tip != tree.tip.hash:
            problem(f"stored tip {stored_tip and stored_tip[::-1].hex()} is not the active tip {tree.tip.hash[::-1].hex()}")
        coins: dict[OutPoint, Coin] = {}
        checker = SignatureChecker() if check_signatures else _NoSignatureChecker()
        connected = []  # (block, height, undo) of the active chain, for the index rebuild
        blocks = 0
        for entry in tree.active[1:]:
            name = f"block {entry.height} {entry.hash[::-1].hex()[:16]}"
            data = self.store.get_block(entry.hash)
            if data is None:
                problem(f"{name} of the active chain is not stored")
                break
            row = self.store.get_index(entry.hash)
            if row is None or row.status is not Status.VALID or not row.have_data:
                problem(f"{name}: index row {row} is not VALID with data")
            block = Block.deserialize(data)
            view = CoinsCache(_DictView(coins))
            try:
                check_block(block, self.params)
                assert entry.parent is not None
                contextual_check_block(block, entry.parent, tree)
                undo = connect_block(block, entry.height, view, self.params, checker)
            except ValidationError as e:
                problem(f"{name} does not connect: {e}")
                break
            if self.store.get_undo(entry.hash) != serialize_undo(undo):
                problem(f"{name}: stored undo data differs from the recomputed undo data")
            connected.append((block, entry.height, undo))
            puts, deletes = view.changes()
            for outpoint in deletes:
                del coins[outpoint]
            coins.update(puts)
            blocks += 1
        stored = dict(self.store.iter_coins())
        missing = [op for op in coins if op not in stored]
        extra = [op for op in stored if op not in coins]
        differ = [op for op in coins if op in stored and stored[op] != coins[op]]
        for label, ops in (("missing from", missing), ("extra in", extra), ("different in", differ)):
            if ops:
                problem(f"{len(ops)} coins {label} the stored UTXO set, e.g. {ops[0]!r}")
        active = {e.hash for e in tree.active[1:]}
        stray = [h for h in self.store.iter_undo_hashes() if h not in active]
        if stray:
            problem(f"{len(stray)} blocks off the active chain still have undo data")
        if blocks == len(tree.active) - 1:  # the indexes can be rebuilt only from a whole chain
            for text in rebuild(self.genesis, connected).differences(self.store, max_problems):
                problem(text)
        return VerifyReport(not problems, problems, blocks, len(coins))

    def reindex(self) -> Activation:
        """Rebuild the index, UTXO set and undo data from the stored blocks (Bitcoin: -reindex).

        One batch resets everything to genesis (all coins, undo data and transaction and
        address indexes deleted, every stored block's index row back to "header, data
        present"); then the best chain is connected again with full validation, one batch
        per block as usual, which writes the indexes as it goes.
        """
        log.warning("reindexing: rebuilding the UTXO set, undo data and indexes from the stored blocks")
        began = time.monotonic()
        rows = {row.header.hash: row for row in self.store.iter_index()}
        next_sequence = max((r.sequence for r in rows.values()), default=0) + 1
        batch = StoreBatch()
        for block_hash in sorted(self.store.iter_block_hashes()):
            data = self.store.get_block(block_hash)
            assert data is not None
            header = Block.deserialize(data).header
            old = rows.get(block_hash)
            if old is None:
                seq, next_sequence = next_sequence, next_sequence + 1
            else:
                seq = old.sequence
            rows[block_hash] = IndexRow(header, Status.HEADER, True, seq)
        for block_hash, row in rows.items():
            if not self.store.has_block(block_hash):
                row = IndexRow(row.header, Status.HEADER, False, -1)
            rows[block_hash] = row
        g = self.genesis
        rows[g.hash] = IndexRow(g.header, Status.VALID, True, 0)
        for block_hash, row in rows.items():
            batch.put_index(block_hash, row)
        for outpoint, _ in self.store.iter_coins():
            batch.delete_coin(outpoint)
        for block_hash in self.store.iter_undo_hashes():
            batch.delete_undo(block_hash)
        rebuild(g, ()).batch(self.store, batch)  # the indexes of a chain of genesis alone
        batch.put_meta("format", STORE_FORMAT)
        batch.set_tip(g.hash)
        self.store.write(batch)
        self._recent.clear()
        self.tree = self._load_tree()
        act = self.activate_best_chain()
        log.warning("reindexed %d blocks in %.1f s; tip at height %d", len(act.connected), time.monotonic() - began,
                    self.height)
        return act

    def close(self) -> None:
        self.store.close()


class _NoSignatureChecker(SignatureChecker):
    """For ``verify(check_signatures=False)`` and assumed-valid blocks: accepts every
    signature (the canonical-encoding and key-hash checks still run)."""

    def check(self, pubkey: bytes, signature: bytes, digest: bytes) -> bool:
        return True


_NO_SIGNATURES = _NoSignatureChecker()

