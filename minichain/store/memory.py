"""An in-memory store: dictionaries behind the ChainStore interface (tests, simulator)."""

from __future__ import annotations

import bisect
from typing import Iterator

from minichain.core.tx import OutPoint
from minichain.core.validation import Coin
from minichain.store.interface import SPACES, ChainStore, IndexRow, StoreBatch, StoreError, check_space, key_range


class MemoryStore(ChainStore):
    """Holds everything in dicts. A batch is applied in one go with nothing that can fail
    half-way (all values were built before ``write`` is called), so it is atomic."""

    def __init__(self) -> None:
        self._blocks: dict[bytes, bytes] = {}
        self._index: dict[bytes, IndexRow] = {}
        self._coins: dict[OutPoint, Coin] = {}
        self._undo: dict[bytes, bytes] = {}
        self._meta: dict[str, bytes] = {}
        self._tip: bytes | None = None
        # Each key space: a dict, and its keys sorted for range scans -- sorted again only
        # when a scan follows writes (a block writes hundreds of keys; scans are rarer).
        self._spaces: dict[str, dict[bytes, bytes]] = {space: {} for space in SPACES}
        self._sorted: dict[str, list[bytes] | None] = {space: [] for space in SPACES}
        self._closed = False
        self.writes = 0  # batches applied, for tests

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the store is closed")

    def write(self, batch: StoreBatch) -> None:
        self._check_open()
        self._blocks.update(batch.blocks)
        self._index.update(batch.index)
        for outpoint, coin in batch.coins.items():
            if coin is None:
                self._coins.pop(outpoint, None)
            else:
                self._coins[outpoint] = coin
        for block_hash, data in batch.undo.items():
            if data is None:
                self._undo.pop(block_hash, None)
            else:
                self._undo[block_hash] = data
        self._meta.update(batch.meta)
        for (space, key), value in batch.entries.items():
            values = self._spaces[space]
            if value is None:
                if values.pop(key, None) is not None:
                    self._sorted[space] = None
            else:
                if key not in values:
                    self._sorted[space] = None
                values[key] = value
        if batch.tip is not None:
            self._tip = batch.tip
        self.writes += 1

    def get_block(self, block_hash: bytes) -> bytes | None:
        self._check_open()
        return self._blocks.get(block_hash)

    def has_block(self, block_hash: bytes) -> bool:
        self._check_open()
        return block_hash in self._blocks

    def iter_block_hashes(self) -> Iterator[bytes]:
        self._check_open()
        return iter(list(self._blocks))

    def get_index(self, block_hash: bytes) -> IndexRow | None:
        self._check_open()
        return self._index.get(block_hash)

    def iter_index(self) -> Iterator[IndexRow]:
        self._check_open()
        return iter(list(self._index.values()))

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        self._check_open()
        return self._coins.get(outpoint)

    def iter_coins(self) -> Iterator[tuple[OutPoint, Coin]]:
        self._check_open()
        return iter(sorted(self._coins.items(), key=lambda kv: (kv[0].txid, kv[0].index)))

    def get_undo(self, block_hash: bytes) -> bytes | None:
        self._check_open()
        return self._undo.get(block_hash)

    def iter_undo_hashes(self) -> Iterator[bytes]:
        self._check_open()
        return iter(list(self._undo))

    def get_meta(self, name: str) -> bytes | None:
        self._check_open()
        return self._meta.get(name)

    def get_entry(self, space: str, key: bytes) -> bytes | None:
        self._check_open()
        check_space(space)
        return self._spaces[space].get(key)

    def iter_entries(self, space: str, prefix: bytes = b"", *, start: bytes | None = None,
                     stop: bytes | None = None, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        self._check_open()
        check_space(space)
        keys, values = self._sorted[space], self._spaces[space]
        if keys is None:
            keys = self._sorted[space] = sorted(values)
        low, high = key_range(prefix, start, stop)
        i = bisect.bisect_left(keys, low)
        j = len(keys) if high is None else bisect.bisect_left(keys, high)
        chosen = keys[i:j] if i < j else []
        if reverse:
            chosen.reverse()
        return iter([(k, values[k]) for k in chosen])  # a snapshot, as LevelDB's iterators are

    def get_tip(self) -> bytes | None:
        self._check_open()
        return self._tip

    def close(self) -> None:
        self._closed = True
