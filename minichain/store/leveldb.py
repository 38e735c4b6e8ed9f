"""The node's store: one LevelDB database (via plyvel) in a data directory.

Key layout (one-byte prefixes, so each kind is one contiguous key range)::

    b"B" + block hash              -> serialized block
    b"I" + block hash              -> IndexRow
    b"C" + txid + u32 index (BE)   -> Coin           (the UTXO set)
    b"U" + block hash              -> serialized undo data
    b"M" + name                    -> meta value
    b"T"                           -> active tip hash
    b"X" / b"H" / b"O" / b"S" / b"K" + key -> the index key spaces tx, history, outputs,
                                      totals and blockinfo (chainstate/index.py)

A :class:`StoreBatch` becomes one LevelDB ``WriteBatch``: LevelDB appends it to its log
as a single checksummed record, so after a crash -- of the process or of the machine --
recovery replays all of it or none of it.

Durability: with ``sync=False`` (the default) a write returns once the record is in
the operating system's hands (a ``write(2)`` to the log), which survives the process
being killed at any instant, but not a power cut, which may lose the last batches
(never half of one: the store stays consistent, just older). ``sync=True`` adds an
fsync per batch (Bitcoin Core likewise syncs its coins database only when it flushes).
"""

from __future__ import annotations

import os
import struct
import time
from typing import Callable, Iterator

import plyvel

from minichain.core.tx import OutPoint
from minichain.core.validation import Coin
from minichain.store.interface import (SPACES, ChainStore, IndexRow, StoreBatch, StoreError, StoreInUseError,
                                       StoreWriteError, check_space, key_range)

_BLOCK, _INDEX, _COIN, _UNDO, _META = b"B", b"I", b"C", b"U", b"M"
MIN_FREE_TO_REOPEN = 16 << 20   # LevelDB writes its log out (up to 4 MB) and compacts on reopening


def _free_bytes(path: str) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize
_TIP = b"T"
_SPACE = {"tx": b"X", "history": b"H", "outputs": b"O", "totals": b"S", "blockinfo": b"K"}
assert set(_SPACE) == set(SPACES)
_INDEX_BE = struct.Struct(">I")


def _coin_key(outpoint: OutPoint) -> bytes:
    return _COIN + outpoint.txid + _INDEX_BE.pack(outpoint.index)


class LevelDBStore(ChainStore):
    def __init__(self, path: str | os.PathLike, *, sync: bool = False, create: bool = True) -> None:
        self.path = os.fspath(path)
        self.sync = sync
        self.on_write: Callable[[float], None] | None = None   # told each batch's write time (node metrics)
        try:
            if create:
                os.makedirs(self.path, exist_ok=True)
            self._db = plyvel.DB(self.path, create_if_missing=create)
            self._failed = False
        except plyvel.IOError as e:
            text = str(e)
            if "lock" in text.lower():
                raise StoreInUseError(
                    f"data directory {self.path} is already in use (another minichain process, "
                    f"or another store in this one, has it open): {text}"
                ) from None
            raise StoreError(f"cannot open data directory {self.path}: {text}") from e
        except (plyvel.Error, OSError) as e:
            raise StoreError(f"cannot open data directory {self.path}: {e}") from e

    # -- writing

    def write(self, batch: StoreBatch) -> None:
        """Write ``batch`` atomically, or raise StoreWriteError and leave the store as it was.

        After a failed write (a full disk, say) LevelDB refuses every later write until
        the database is reopened. So the next write reopens it first -- once there is
        room again (reopening needs to write its log out), so that reads keep working
        meanwhile -- and a node carries on by itself when space comes back."""
        if self._failed:
            free = _free_bytes(self.path)
            if free is not None and free < MIN_FREE_TO_REOPEN:
                raise StoreWriteError(f"cannot write to {self.path}: the disk is still full ({free} bytes free)")
            self._reopen()
        began = time.perf_counter()
        try:
            self._write(batch)
        except plyvel.Error as e:
            self._failed = True
            raise StoreWriteError(f"cannot write to {self.path} (is the disk full?): {e}") from None
        self._failed = False
        if self.on_write is not None:
            self.on_write(time.perf_counter() - began)

    def _reopen(self) -> None:
        try:
            self._db.close()
            self._db = plyvel.DB(self.path, create_if_missing=False)
        except (plyvel.Error, OSError) as e:
            try:   # whatever happened, do not leave the store closed
                self._db = plyvel.DB(self.path, create_if_missing=False)
            except (plyvel.Error, OSError):
                raise StoreError(f"cannot reopen {self.path}: {e}") from None

    def _write(self, batch: StoreBatch) -> None:
        with self._db.write_batch(sync=self.sync) as wb:
            for block_hash, data in batch.blocks.items():
                wb.put(_BLOCK + block_hash, data)
            for block_hash, row in batch.index.items():
                wb.put(_INDEX + block_hash, row.serialize())
            for outpoint, coin in batch.coins.items():
                if coin is None:
                    wb.delete(_coin_key(outpoint))
                else:
                    wb.put(_coin_key(outpoint), coin.serialize())
            for block_hash, data in batch.undo.items():
                if data is None:
                    wb.delete(_UNDO + block_hash)
                else:
                    wb.put(_UNDO + block_hash, data)
            for name, value in batch.meta.items():
                wb.put(_META + name.encode(), value)
            for (space, key), value in batch.entries.items():
                if value is None:
                    wb.delete(_SPACE[space] + key)
                else:
                    wb.put(_SPACE[space] + key, value)
            if batch.tip is not None:
                wb.put(_TIP, batch.tip)

    # -- reading

    def get_block(self, block_hash: bytes) -> bytes | None:
        return self._db.get(_BLOCK + block_hash)

    def has_block(self, block_hash: bytes) -> bool:
        return self._db.get(_BLOCK + block_hash) is not None

    def iter_block_hashes(self) -> Iterator[bytes]:
        with self._db.iterator(prefix=_BLOCK, include_value=False) as it:
            for key in it:
                yield key[1:]

    def get_index(self, block_hash: bytes) -> IndexRow | None:
        data = self._db.get(_INDEX + block_hash)
        return None if data is None else IndexRow.deserialize(data)

    def iter_index(self) -> Iterator[IndexRow]:
        with self._db.iterator(prefix=_INDEX, include_key=False) as it:
            for value in it:
                yield IndexRow.deserialize(value)

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        data = self._db.get(_coin_key(outpoint))
        return None if data is None else Coin.deserialize(data)

    def iter_coins(self) -> Iterator[tuple[OutPoint, Coin]]:
        with self._db.iterator(prefix=_COIN) as it:
            for key, value in it:
                yield OutPoint(key[1:33], _INDEX_BE.unpack(key[33:])[0]), Coin.deserialize(value)

    def get_undo(self, block_hash: bytes) -> bytes | None:
        return self._db.get(_UNDO + block_hash)

    def iter_undo_hashes(self) -> Iterator[bytes]:
        with self._db.iterator(prefix=_UNDO, include_value=False) as it:
            for key in it:
                yield key[1:]

    def get_meta(self, name: str) -> bytes | None:
        return self._db.get(_META + name.encode())

    def get_entry(self, space: str, key: bytes) -> bytes | None:
        check_space(space)
        return self._db.get(_SPACE[space] + key)

    def iter_entries(self, space: str, prefix: bytes = b"", *, start: bytes | None = None,
                     stop: bytes | None = None, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        check_space(space)
        tag = _SPACE[space]
        low, high = key_range(prefix, start, stop)
        low = tag + low
        high = tag + high if high is not None else bytes([tag[0] + 1])
        # A raw iterator (plyvel's ranged reverse iterator misses the first key of a range
        # in some positions); like every LevelDB iterator it reads an implicit snapshot.
        it = self._db.raw_iterator()
        try:
            if reverse:
                it.seek(high)
                if it.valid():
                    it.prev()
                else:
                    it.seek_to_last()
                while it.valid():
                    key, value = it.item()
                    if key < low:
                        break
                    yield key[1:], value
                    it.prev()
            else:
                it.seek(low)
                while it.valid():
                    key, value = it.item()
                    if key >= high:
                        break
                    yield key[1:], value
                    it.next()
        finally:
            it.close()

    def get_tip(self) -> bytes | None:
        return self._db.get(_TIP)

    def close(self) -> None:
        if not self._db.closed:
            self._db.close()
