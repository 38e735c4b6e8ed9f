"""Blocks: Bitcoin's exact 80-byte header, and a block = header + transactions."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from minichain.core.encoding import DecodeError, Reader, Writer, decode_all
from minichain.core.hashing import merkle_root, sha256d
from minichain.core.tx import Transaction

HEADER_SIZE = 80
# Bitcoin: MAX_BLOCK_SERIALIZED_SIZE would be 4 MB; we use the legacy 1 MB block limit
# (params.max_block_size) for validation and refuse anything far above it when decoding.
MAX_BLOCK_DECODE_SIZE = 4_000_000


@dataclass(frozen=True)
class BlockHeader:
    """version(i32) prev_hash(32) merkle_root(32) time(u32) bits(u32) nonce(u32), little-endian.

    Hashes are kept in internal byte order (as they are serialized); ``hash_hex``
    shows the reversed, human order that block explorers and Bitcoin Core print.
    """

    version: int
    prev_hash: bytes
    merkle_root: bytes
    time: int
    bits: int
    nonce: int

    def __post_init__(self) -> None:
        if len(self.prev_hash) != 32 or len(self.merkle_root) != 32:
            raise ValueError("prev_hash and merkle_root must be 32 bytes")
        if not -(2**31) <= self.version < 2**31:
            raise ValueError("version must fit a signed 32-bit integer")
        for name in ("time", "bits", "nonce"):
            if not 0 <= getattr(self, name) <= 0xFFFFFFFF:
                raise ValueError(f"{name} must fit an unsigned 32-bit integer")

    def write(self, w: Writer) -> None:
        w.i32(self.version).hash32(self.prev_hash).hash32(self.merkle_root)
        w.u32(self.time).u32(self.bits).u32(self.nonce)

    def serialize(self) -> bytes:
        w = Writer()
        self.write(w)
        return w.getvalue()

    @classmethod
    def read(cls, r: Reader) -> "BlockHeader":
        return cls(r.i32(), r.hash32(), r.hash32(), r.u32(), r.u32(), r.u32())

    @classmethod
    def deserialize(cls, data: bytes) -> "BlockHeader":
        return decode_all(data, cls.read)

    @cached_property
    def hash(self) -> bytes:
        """Double SHA-256 of the 80 bytes, internal byte order."""
        return sha256d(self.serialize())

    def hash_hex(self) -> str:
        return self.hash[::-1].hex()

    def with_nonce(self, nonce: int) -> "BlockHeader":
        return BlockHeader(self.version, self.prev_hash, self.merkle_root, self.time, self.bits, nonce)


@dataclass(frozen=True)
class Block:
    header: BlockHeader
    transactions: tuple[Transaction, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "transactions", tuple(self.transactions))

    @property
    def hash(self) -> bytes:
        return self.header.hash

    def hash_hex(self) -> str:
        return self.header.hash_hex()

    def write(self, w: Writer) -> None:
        w.write(self._serialized)

    @cached_property
    def _serialized(self) -> bytes:
        w = Writer()
        self.header.write(w)
        w.compact_size(len(self.transactions))
        for tx in self.transactions:
            tx.write(w)
        return w.getvalue()

    def serialize(self) -> bytes:
        return self._serialized

    @classmethod
    def read(cls, r: Reader) -> "Block":
        start = r.position
        header = BlockHeader.read(r)
        n = r.count(MAX_BLOCK_DECODE_SIZE)
        block = cls(header, tuple(Transaction.read(r) for _ in range(n)))
        block.__dict__["_serialized"] = r.consumed_since(start)  # canonical: what re-encoding gives
        return block

    @classmethod
    def deserialize(cls, data: bytes) -> "Block":
        if len(data) > MAX_BLOCK_DECODE_SIZE:
            raise DecodeError(f"block of {len(data)} bytes exceeds {MAX_BLOCK_DECODE_SIZE}")
        return decode_all(data, cls.read)

    @property
    def size(self) -> int:
        return len(self._serialized)

    def compute_merkle_root(self) -> tuple[bytes, bool]:
        """(root, mutated) over this block's txids; see hashing.merkle_root."""
        return merkle_root([tx.txid for tx in self.transactions])
