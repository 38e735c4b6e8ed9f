"""The one interface both stores implement, and the batch of changes they apply.

What a chain state keeps (Bitcoin Core spreads it over blk*.dat, rev*.dat, the block
index database and the chainstate database; we keep it in one key-value store):

* ``block``  -- a block's serialized bytes, by hash;
* ``index``  -- one :class:`IndexRow` per known header: the header, its validation
  status, whether its data is stored, and the order in which the data arrived;
* ``coin``   -- the UTXO set: outpoint -> :class:`~minichain.core.validation.Coin`;
* ``undo``   -- for each block on the active chain, the coins it spent (serialized);
* ``tip``    -- the hash of the active tip, whose UTXO set ``coin`` holds;
* ``meta``   -- small named values (the store's format, the network's genesis hash);
* key spaces (:data:`SPACES`) -- sorted byte keys to byte values, for the indexes
  ``minichain.chainstate.index`` keeps beside the chain (which transaction is where,
  what touched an address). The store neither knows nor checks what they mean: it keeps
  each space sorted by key, so a reader can scan a key range forwards or backwards.

Every change goes through :meth:`ChainStore.write` with a :class:`StoreBatch`, and a
batch is applied atomically: after a crash the store holds all of a batch or none of
it. The chain state puts each block connect or disconnect -- coins, undo data, index
status and tip pointer, and the index entries the block adds or removes -- into one
batch, so the UTXO set and the indexes always match the tip.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Iterable, Iterator

from minichain.core.block import HEADER_SIZE, BlockHeader
from minichain.core.chain import Status
from minichain.core.encoding import DecodeError, Reader, Writer, decode_all
from minichain.core.tx import OutPoint
from minichain.core.validation import Coin


class StoreError(Exception):
    """The store cannot be opened or used."""


class StoreInUseError(StoreError):
    """Another process (or another open store in this one) holds the data directory."""


class StoreWriteError(StoreError):
    """A write failed (the disk is full, say); the store holds what it held before."""


class StoreMismatchError(StoreError):
    """The data directory belongs to another network or another format."""


@dataclass(frozen=True, slots=True)
class IndexRow:
    """A block index entry as stored (Bitcoin: CDiskBlockIndex)."""

    header: BlockHeader
    status: Status
    have_data: bool
    sequence: int

    def serialize(self) -> bytes:
        w = Writer()
        self.header.write(w)
        w.u8(int(self.status)).u8(1 if self.have_data else 0).i64(self.sequence)
        return w.getvalue()

    @classmethod
    def deserialize(cls, data: bytes) -> "IndexRow":
        def read(r: Reader) -> IndexRow:
            header = BlockHeader.read(r)
            status, have = r.u8(), r.u8()
            try:
                st = Status(status)
            except ValueError:
                raise DecodeError(f"unknown block status {status}") from None
            if have > 1:
                raise DecodeError(f"have_data flag {have}")
            return cls(header, st, have == 1, r.i64())

        return decode_all(data, read)

    def as_tuple(self) -> tuple[BlockHeader, Status, bool, int]:
        """The (header, status, have_data, sequence) shape BlockTree.load reads."""
        return (self.header, self.status, self.have_data, self.sequence)


assert HEADER_SIZE == 80


# The key spaces a store keeps for indexes, each a sorted map of byte keys to byte values.
SPACES = ("tx", "history", "outputs", "totals", "blockinfo")


def check_space(space: str) -> None:
    if space not in SPACES:
        raise ValueError(f"unknown key space {space!r} (the store keeps {', '.join(SPACES)})")


def key_successor(prefix: bytes) -> bytes | None:
    """The smallest key greater than every key that starts with ``prefix`` (None: no bound)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def key_range(prefix: bytes, start: bytes | None, stop: bytes | None) -> tuple[bytes, bytes | None]:
    """[low, high) of the keys that start with ``prefix`` and lie in [start, stop)."""
    low = prefix if start is None or start < prefix else start
    high = key_successor(prefix)
    if stop is not None and (high is None or stop < high):
        high = stop
    return low, high


class StoreBatch:
    """Changes to apply together. Later puts of the same key win; a delete after a put wins."""

    __slots__ = ("blocks", "index", "coins", "undo", "meta", "tip", "entries")

    def __init__(self) -> None:
        self.blocks: dict[bytes, bytes] = {}
        self.index: dict[bytes, IndexRow] = {}
        self.coins: dict[OutPoint, Coin | None] = {}    # None = delete
        self.undo: dict[bytes, bytes | None] = {}       # None = delete
        self.meta: dict[str, bytes] = {}
        self.tip: bytes | None = None
        self.entries: dict[tuple[str, bytes], bytes | None] = {}  # (space, key) -> value; None = delete

    def put_block(self, block_hash: bytes, data: bytes) -> None:
        self.blocks[block_hash] = data

    def put_index(self, block_hash: bytes, row: IndexRow) -> None:
        self.index[block_hash] = row

    def put_coin(self, outpoint: OutPoint, coin: Coin) -> None:
        self.coins[outpoint] = coin

    def delete_coin(self, outpoint: OutPoint) -> None:
        self.coins[outpoint] = None

    def put_undo(self, block_hash: bytes, data: bytes) -> None:
        self.undo[block_hash] = data

    def delete_undo(self, block_hash: bytes) -> None:
        self.undo[block_hash] = None

    def put_meta(self, name: str, value: bytes) -> None:
        self.meta[name] = value

    def set_tip(self, block_hash: bytes) -> None:
        self.tip = block_hash

    def put_entry(self, space: str, key: bytes, value: bytes) -> None:
        check_space(space)
        self.entries[(space, key)] = value

    def delete_entry(self, space: str, key: bytes) -> None:
        check_space(space)
        self.entries[(space, key)] = None

    def put_entries(self, space: str, items: Iterable[tuple[bytes, bytes]]) -> None:
        """Many puts to one space, in order (what an index writes per block)."""
        check_space(space)
        self.entries.update(((space, key), value) for key, value in items)

    def delete_entries(self, space: str, keys: Iterable[bytes]) -> None:
        check_space(space)
        self.entries.update(((space, key), None) for key in keys)

    def __bool__(self) -> bool:
        return bool(self.blocks or self.index or self.coins or self.undo or self.meta or self.tip is not None
                    or self.entries)


class ChainStore(abc.ABC):
    """Persistence for a chain state. Implementations: MemoryStore, LevelDBStore."""

    @abc.abstractmethod
    def write(self, batch: StoreBatch) -> None:
        """Apply ``batch`` atomically; when this returns, the batch is durable."""

    @abc.abstractmethod
    def get_block(self, block_hash: bytes) -> bytes | None: ...

    @abc.abstractmethod
    def has_block(self, block_hash: bytes) -> bool: ...

    @abc.abstractmethod
    def iter_block_hashes(self) -> Iterator[bytes]: ...

    @abc.abstractmethod
    def get_index(self, block_hash: bytes) -> IndexRow | None: ...

    @abc.abstractmethod
    def iter_index(self) -> Iterator[IndexRow]: ...

    @abc.abstractmethod
    def get_coin(self, outpoint: OutPoint) -> Coin | None: ...

    @abc.abstractmethod
    def iter_coins(self) -> Iterator[tuple[OutPoint, Coin]]: ...

    @abc.abstractmethod
    def get_undo(self, block_hash: bytes) -> bytes | None: ...

    @abc.abstractmethod
    def iter_undo_hashes(self) -> Iterator[bytes]: ...

    @abc.abstractmethod
    def get_meta(self, name: str) -> bytes | None: ...

    @abc.abstractmethod
    def get_entry(self, space: str, key: bytes) -> bytes | None: ...

    @abc.abstractmethod
    def iter_entries(self, space: str, prefix: bytes = b"", *, start: bytes | None = None,
                     stop: bytes | None = None, reverse: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) of ``space`` for the keys that start with ``prefix`` and lie in
        [``start``, ``stop``), in key order (descending with ``reverse``). The iterator
        reads a snapshot: writes made while it is open do not change what it yields."""

    @abc.abstractmethod
    def get_tip(self) -> bytes | None:
        """The active tip's hash, or None for a new, empty store."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> "ChainStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
