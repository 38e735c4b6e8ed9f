"""Strict binary encoding: little-endian integers and Bitcoin's CompactSize.

Every decoder in minichain reads through :class:`Reader`. Whatever goes wrong while
decoding -- truncated input, an oversized length, a non-canonical CompactSize, bytes
left over at the end -- raises :class:`DecodeError` and nothing else, so a caller that
decodes bytes from a peer needs to catch exactly one exception.
"""

from __future__ import annotations

import struct
from typing import Callable, TypeVar

T = TypeVar("T")

# Bitcoin: MAX_SIZE (serialize.h) -- the largest length a CompactSize may announce.
MAX_SIZE = 0x02000000


class DecodeError(ValueError):
    """Raised for any malformed input: truncated, oversized, non-canonical or trailing."""


_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")


class Reader:
    """Reads values from a bytes buffer, never past its end."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError(f"expected bytes, got {type(data).__name__}")
        self._data = bytes(data)
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    @property
    def position(self) -> int:
        return self._pos

    def consumed_since(self, start: int) -> bytes:
        """The bytes read from position ``start`` up to now: a decoded value's own
        encoding, kept so it need not be encoded again (the encoding is canonical, so
        re-encoding would give exactly these bytes)."""
        return self._data[start:self._pos]

    def read(self, n: int) -> bytes:
        if n < 0:
            raise DecodeError(f"negative length {n}")
        end = self._pos + n
        if end > len(self._data):
            raise DecodeError(f"truncated: wanted {n} bytes at offset {self._pos}, have {self.remaining}")
        out = self._data[self._pos:end]
        self._pos = end
        return out

    def _unpack(self, st: struct.Struct) -> int:
        return st.unpack(self.read(st.size))[0]

    def u8(self) -> int:
        return self.read(1)[0]

    def u16(self) -> int:
        return self._unpack(_U16)

    def u32(self) -> int:
        return self._unpack(_U32)

    def i32(self) -> int:
        return self._unpack(_I32)

    def u64(self) -> int:
        return self._unpack(_U64)

    def i64(self) -> int:
        return self._unpack(_I64)

    def hash32(self) -> bytes:
        return self.read(32)

    def compact_size(self, limit: int = MAX_SIZE) -> int:
        """Bitcoin's CompactSize; rejects non-minimal encodings and values above ``limit``."""
        first = self.u8()
        if first < 0xFD:
            value = first
        elif first == 0xFD:
            value = self.u16()
            if value < 0xFD:
                raise DecodeError("non-canonical CompactSize")
        elif first == 0xFE:
            value = self.u32()
            if value < 0x10000:
                raise DecodeError("non-canonical CompactSize")
        else:
            value = self.u64()
            if value < 0x100000000:
                raise DecodeError("non-canonical CompactSize")
        if value > limit:
            raise DecodeError(f"size {value} exceeds limit {limit}")
        return value

    def var_bytes(self, limit: int = MAX_SIZE) -> bytes:
        """A CompactSize length followed by that many bytes, at most ``limit``."""
        return self.read(self.compact_size(limit))

    def count(self, limit: int) -> int:
        """A CompactSize element count, bounded by ``limit`` and by the bytes left.

        Every element takes at least one byte, so a count above ``remaining`` cannot be
        honest; refusing it early keeps a hostile count from allocating anything.
        """
        n = self.compact_size(limit)
        if n > self.remaining:
            raise DecodeError(f"count {n} exceeds the {self.remaining} bytes left")
        return n

    def end(self) -> None:
        if self.remaining:
            raise DecodeError(f"{self.remaining} trailing bytes")


class Writer:
    """Accumulates an encoding; the mirror image of :class:`Reader`."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, b: bytes) -> "Writer":
        self._parts.append(bytes(b))
        return self

    def u8(self, v: int) -> "Writer":
        return self.write(bytes((v,)))

    def u16(self, v: int) -> "Writer":
        return self.write(_U16.pack(v))

    def u32(self, v: int) -> "Writer":
        return self.write(_U32.pack(v))

    def i32(self, v: int) -> "Writer":
        return self.write(_I32.pack(v))

    def u64(self, v: int) -> "Writer":
        return self.write(_U64.pack(v))

    def i64(self, v: int) -> "Writer":
        return self.write(_I64.pack(v))

    def hash32(self, h: bytes) -> "Writer":
        if len(h) != 32:
            raise ValueError(f"hash must be 32 bytes, got {len(h)}")
        return self.write(h)

    def compact_size(self, n: int) -> "Writer":
        if n < 0:
            raise ValueError("CompactSize cannot be negative")
        if n < 0xFD:
            return self.u8(n)
        if n <= 0xFFFF:
            return self.u8(0xFD).u16(n)
        if n <= 0xFFFFFFFF:
            return self.u8(0xFE).u32(n)
        return self.u8(0xFF).u64(n)

    def var_bytes(self, b: bytes) -> "Writer":
        return self.compact_size(len(b)).write(b)

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


def decode_all(data: bytes, read: Callable[[Reader], T]) -> T:
    """Decode ``data`` with ``read`` and insist that every byte was consumed."""
    r = Reader(data)
    value = read(r)
    r.end()
    return value
