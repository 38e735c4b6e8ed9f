"""A write-back layer over a store: batches collected in memory, written as one.

Bitcoin Core keeps the UTXO changes of many blocks in memory (its coins cache,
``CCoinsViewCache`` over ``CCoinsViewDB``) and writes them in one batch together with
the best-block pointer when it flushes (``FlushStateToDisk``): a crash loses the blocks
connected since the last flush -- they are downloaded and connected again -- and never
leaves a UTXO set that belongs to no block. :class:`CachedStore` does the same for
everything the chain state writes: each batch it is given (a header, a block's bytes, a
connect or a disconnect with its coins, undo data, index rows, tip pointer and the
transaction and address index entries) is merged into one pending batch, and
:meth:`flush` hands that pending batch to the store underneath as a single write.

Since every batch the chain state writes leaves the store consistent (a block boundary),
so does their union: the store underneath only ever moves from one flushed tip to a
later one, with the UTXO set and the indexes of exactly that tip. LevelDB applies the
union atomically like any other batch (one log record); an fsync per flush instead of
per block is where the speed comes from.

Reads see the pending changes over the store's contents (a put or a delete here wins),
so the chain state, the indexes and the API read the state of the in-memory tip. When to
flush is the chain state's decision (``chainstate/state.py``, :class:`FlushPolicy`);
this layer only counts what it holds.

A coin created and spent between two flushes never reaches the store (Core's FRESH
flag): this relies on the chain state's rule that a coin is only ever added where none
is unspent (BIP 30), so a coin put with nothing pending for its outpoint is not in the
store underneath either.
"""

from __future__ import annotations

import bisect
from typing import Callable, Iterable, Iterator, TypeVar

from minichain.core.tx import OutPoint
from minichain.core.validation import Coin
from minichain.store.interface import SPACES, ChainStore, IndexRow, StoreBatch, check_space, key_range

K = TypeVar("K")
_MISSING = object()
# What one pending change costs in memory, roughly, besides the bytes of a block or undo
# record (key, value object, dict slot): for the flush policy's memory bound only.
_ENTRY_COST = 150


class CachedStore(ChainStore):
    """Pending batches over ``base``, written to it as one batch by :meth:`flush`."""

    def __init__(self, base: ChainStore) -> None:
        self.base = base
        self._pending = StoreBatch()
        self._fresh: set[OutPoint] = set()  # pending coins the base does not hold
        self._sorted: dict[str, list[bytes] | None] = {space: [] for space in SPACES}
        self._space_keys: dict[str, dict[bytes, None]] = {space: {} for space in SPACES}
        self.pending_bytes = 0   # an estimate of the memory the pending changes hold
        self.flushes = 0         # batches written to the base (for tests and benchmarks)

    # -- writing

    def write(self, batch: StoreBatch) -> None:
        """Merge ``batch`` into the pending changes (nothing reaches the base yet)."""
        p = self._pending
        added = 0
        for block_hash, data in batch.blocks.items():
            if block_hash not in p.blocks:
                added += len(data)
            p.blocks[block_hash] = data
        p.index.update(batch.index)
        coins, fresh = p.coins, self._fresh
        for outpoint, coin in batch.coins.items():
            old = coins.get(outpoint, _MISSING)
            if coin is None:
                if outpoint in fresh:           # created since the last flush: never written
                    fresh.discard(outpoint)
                    del coins[outpoint]
                    continue
            elif old is _MISSING:
                fresh.add(outpoint)             # BIP 30: nothing unspent here, so not in the base
            coins[outpoint] = coin
        for block_hash, data in batch.undo.items():
            if data is not None and block_hash not in p.undo:
                added += len(data)
            p.undo[block_hash] = data
        p.meta.update(batch.meta)
        if batch.tip is not None:
            p.tip = batch.tip
        if batch.entries:
            for space, key in batch.entries:
                keys = self._space_keys[space]
                if key not in keys:
                    keys[key] = None
                    self._sorted[space] = None
            p.entries.update(batch.entries)
        self.pending_bytes += added + _ENTRY_COST * (len(batch.index) + len(batch.coins) + len(batch.entries))

    def flush(self) -> bool:
        """Write every pending change to the base in one batch; False if there was none."""
        if not self._pending:
            return False
        self.base.write(self._pending)
        self.flushes += 1
        self.discard()
        return True

    def discard(self) -> None:
        """Forget the pending changes (after a flush, or to simulate a crash in tests)."""
        self._pending = StoreBatch()
        self._fresh = set()
        self._sorted = {space: [] for space in SPACES}
        self._space_keys = {space: {} for space in SPACES}
        self.pending_bytes = 0

    @property
    def dirty(self) -> bool:
        return bool(self._pending)

    # -- reading: the pending change if there is one, else the base

    def get_block(self, block_hash: bytes) -> bytes | None:
        data = self._pending.blocks.get(block_hash)
        return data if data is not None else self.base.get_block(block_hash)

    def has_block(self, block_hash: bytes) -> bool:
        return block_hash in self._pending.blocks or self.base.has_block(block_hash)

    def iter_block_hashes(self) -> Iterator[bytes]:
        return _keys_over(self._pending.blocks, self.base.iter_block_hashes)

    def get_index(self, block_hash: bytes) -> IndexRow | None:
        row = self._pending.index.get(block_hash)
        return row if row is not None else self.base.get_index(block_hash)

    def iter_index(self) -> Iterator[IndexRow]:
        pending = dict(self._pending.index)
        yield from pending.values()
        for row in self.base.iter_index():
            if row.header.hash not in pending:
                yield row

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        coin = self._pending.coins.get(outpoint, _MISSING)
        return self.base.get_coin(outpoint) if coin is _MISSING else coin  # type: ignore[return-value]

    def iter_coins(self) -> Iterator[tuple[OutPoint, Coin]]:
        pending = sorted(self._pending.coins.items(), key=lambda kv: (kv[0].txid, kv[0].index))
        yield from _merge(pending, self.base.iter_coins(), key=lambda op: (op.txid, op.index), reverse=False)

    def get_undo(self, block_hash: bytes) -> bytes | None:
        data = self._pending.undo.get(block_hash, _MISSING)
        return self.base.get_undo(block_hash) if data is _MISSING else data  # type: ignore[return-value]

    def iter_undo_hashes(self) -> Iterator[bytes]:
        return _keys_over(self._pending.undo, self.base.iter_undo_hashes)

    def get_meta(self, name: str) -> bytes | None:
        value = self._pending.meta.get(name)
        return value if value is not None else self.base.get_meta(name)

    def get_entry(self, space: str, key: bytes) -> bytes | None:
        check_space(space)
        value = self._pending.entries.get((space, key), _MISSING)
        return self.base.get_entry(space, key) if value is _MISSING else value  # type: ignore[return-value]

    def iter_entries(self, space: str, prefix: bytes = b"", *, start: bytes | None = None,
                     stop: bytes | None = None, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        check_space(space)
        return self._iter_entries(space, prefix, start, stop, reverse)

    def _iter_entries(self, space: str, prefix: bytes, start: bytes | None, stop: bytes | None,
                      reverse: bool) -> Iterator[tuple[bytes, bytes]]:
        # A generator: the pending slice and the base's iterator (a snapshot) are both
        # taken when the first row is asked for, so the scan reads one moment.
        keys = self._sorted[space]
        if keys is None:
            keys = self._sorted[space] = sorted(self._space_keys[space])
        low, high = key_range(prefix, start, stop)
        i = bisect.bisect_left(keys, low)
        j = len(keys) if high is None else bisect.bisect_left(keys, high)
        entries = self._pending.entries
        pending = [(k, entries[(space, k)]) for k in keys[i:j]]
        if reverse:
            pending.reverse()
        yield from _merge(pending, self.base.iter_entries(space, prefix, start=start, stop=stop, reverse=reverse),
                          key=lambda k: k, reverse=reverse)

    def get_tip(self) -> bytes | None:
        tip = self._pending.tip
        return tip if tip is not None else self.base.get_tip()

    def close(self) -> None:
        """Flush what is pending, then close the base (a clean shutdown loses nothing)."""
        self.flush()
        self.base.close()


def _keys_over(pending: dict[bytes, object], base: Callable[[], Iterable[bytes]]) -> Iterator[bytes]:
    """The keys with a pending value (not a delete), then the base's keys without a
    pending change; both read when the first key is asked for."""
    changes = dict(pending)
    yield from (k for k, v in changes.items() if v is not None)
    yield from (k for k in base() if k not in changes)


def _merge(pending: list[tuple[K, object]], base: Iterator[tuple[K, object]], *, key, reverse: bool):
    """Two sorted streams of (key, value) as one; ``pending`` wins on equal keys and its
    ``None`` values (deletes) hide the key."""
    p = iter(pending)
    nxt = next(p, None)
    for bkey, bvalue in base:
        bk = key(bkey)
        while nxt is not None:
            pk = key(nxt[0])
            if (pk > bk) if reverse else (pk < bk):
                if nxt[1] is not None:
                    yield nxt
                nxt = next(p, None)
                continue
            break
        if nxt is not None and key(nxt[0]) == bk:
            if nxt[1] is not None:
                yield nxt
            nxt = next(p, None)
            continue
        yield bkey, bvalue
    while nxt is not None:
        if nxt[1] is not None:
            yield nxt
        nxt = next(p, None)
