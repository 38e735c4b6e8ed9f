"""Peer-to-peer wire messages: one class per type, an explicit registry, a frame limit.

Each WebSocket binary frame carries exactly one message: a one-byte type id followed by
the payload. Decoding looks the id up in :data:`REGISTRY` (never in ``globals()``),
every length and count is bounded, and whatever is wrong with a frame raises
:class:`~minichain.core.encoding.DecodeError`, which the peer code answers by
disconnecting and penalising the sender.

The set mirrors Bitcoin's P2P protocol where it is cheap to (version/verack,
ping/pong, inv/getdata/notfound, getheaders/headers, block, tx, getaddr/addr) and says
where it differs: ids are one byte instead of 12-byte command names, there is no
checksum (WebSocket frames are already delimited and TCP is reliable), and ``reject``
carries the reason a peer is being dropped, so a person reading logs sees why.
"""

from __future__ import annotations

from typing import ClassVar

from minichain.core.block import Block, BlockHeader
from minichain.core.encoding import DecodeError, Reader, Writer
from minichain.core.tx import Transaction

PROTOCOL_VERSION = 1
# One frame: a full block (params.max_block_size, 1 MB) plus headroom for its framing.
MAX_FRAME_SIZE = 2 * 1024 * 1024
# Bitcoin: MAX_INV_SZ is 50,000; we keep messages small.
MAX_INV_ITEMS = 1000
# Bitcoin: MAX_HEADERS_RESULTS.
MAX_HEADERS = 2000
# Bitcoin: MAX_LOCATOR_SZ.
MAX_LOCATOR = 101
# Bitcoin: MAX_ADDR_TO_SEND.
MAX_ADDRS = 1000
MAX_TEXT = 256

INV_TX = 1      # Bitcoin: MSG_TX
INV_BLOCK = 2   # Bitcoin: MSG_BLOCK


class Message:
    """Base of every wire message. Subclasses set ``TYPE`` and the two payload codecs."""

    __slots__ = ()
    TYPE: ClassVar[int]
    NAME: ClassVar[str]

    def write(self, w: Writer) -> None:
        pass

    @classmethod
    def read(cls, r: Reader) -> "Message":
        return cls()

    @property
    def size(self) -> int:
        """Bytes of the frame, computed without encoding it (the simulator's network
        charges messages by size; ``encode`` gives the same length)."""
        return 1 + self._payload_size()

    def _payload_size(self) -> int:
        return 0

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and all(
            getattr(self, s) == getattr(other, s) for s in self.__slots__
        )

    def __hash__(self) -> int:
        return hash((type(self), *(repr(getattr(self, s)) for s in self.__slots__)))

    def __repr__(self) -> str:
        fields = ", ".join(f"{s}={_short(getattr(self, s))}" for s in self.__slots__)
        return f"{type(self).__name__}({fields})"


def _short(value: object) -> str:
    if isinstance(value, bytes):
        return value[::-1].hex()[:16] if len(value) == 32 else value.hex()[:16]
    if isinstance(value, (list, tuple)) and len(value) > 3:
        return f"[{len(value)} items]"
    return repr(value)


REGISTRY: dict[int, type[Message]] = {}


def register(cls: type[Message]) -> type[Message]:
    if cls.TYPE in REGISTRY:
        raise ValueError(f"message type {cls.TYPE} registered twice")
    REGISTRY[cls.TYPE] = cls
    return cls


def _compact_size_len(n: int) -> int:
    """Bytes of Bitcoin's CompactSize encoding of ``n``."""
    return 1 if n < 0xFD else 3 if n <= 0xFFFF else 5 if n <= 0xFFFFFFFF else 9


def _read_text(r: Reader) -> str:
    raw = r.var_bytes(MAX_TEXT)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"text is not UTF-8: {exc}") from None


def _write_text(w: Writer, text: str) -> None:
    raw = text.encode("utf-8")
    if len(raw) > MAX_TEXT:
        raise ValueError(f"text longer than {MAX_TEXT} bytes")
    w.var_bytes(raw)


@register
class Version(Message):
    """First message each side sends (Bitcoin: version). ``genesis`` names the network;
    ``nonce`` lets a node notice that it has dialled itself."""

    __slots__ = ("version", "genesis", "best_height", "user_agent", "listen_port", "nonce")
    TYPE = 1
    NAME = "version"

    def __init__(self, version: int, genesis: bytes, best_height: int, user_agent: str, listen_port: int, nonce: int) -> None:
        self.version = version
        self.genesis = genesis
        self.best_height = best_height
        self.user_agent = user_agent
        self.listen_port = listen_port
        self.nonce = nonce

    def _payload_size(self) -> int:
        ua = len(self.user_agent.encode("utf-8"))
        return 4 + 32 + 4 + _compact_size_len(ua) + ua + 2 + 8

    def write(self, w: Writer) -> None:
        w.u32(self.version).hash32(self.genesis).u32(self.best_height)
        _write_text(w, self.user_agent)
        w.u16(self.listen_port).u64(self.nonce)

    @classmethod
    def read(cls, r: Reader) -> "Version":
        return cls(r.u32(), r.hash32(), r.u32(), _read_text(r), r.u16(), r.u64())


@register
class Verack(Message):
    __slots__ = ()
    TYPE = 2
    NAME = "verack"


class _Nonce(Message):
    __slots__ = ("nonce",)

    def __init__(self, nonce: int) -> None:
        self.nonce = nonce

    def _payload_size(self) -> int:
        return 8

    def write(self, w: Writer) -> None:
        w.u64(self.nonce)

    @classmethod
    def read(cls, r: Reader) -> "_Nonce":
        return cls(r.u64())


@register
class Ping(_Nonce):
    __slots__ = ()
    TYPE = 3
    NAME = "ping"


@register
class Pong(_Nonce):
    __slots__ = ()
    TYPE = 4
    NAME = "pong"


class _InvList(Message):
    """A list of (kind, hash): INV_TX or INV_BLOCK and a 32-byte id."""

    __slots__ = ("items",)

    def __init__(self, items: list[tuple[int, bytes]]) -> None:
        if len(items) > MAX_INV_ITEMS:
            raise ValueError(f"more than {MAX_INV_ITEMS} inventory items")
        self.items = list(items)

    @property
    def size(self) -> int:   # inline (one frame): the simulator asks for every message's size
        n = len(self.items)
        return (2 if n < 0xFD else 4) + 33 * n          # n <= MAX_INV_ITEMS < 0x10000

    def write(self, w: Writer) -> None:
        w.compact_size(len(self.items))
        for kind, h in self.items:
            w.u8(kind).hash32(h)

    @classmethod
    def read(cls, r: Reader) -> "_InvList":
        items = []
        for _ in range(r.count(MAX_INV_ITEMS)):
            kind = r.u8()
            if kind not in (INV_TX, INV_BLOCK):
                raise DecodeError(f"unknown inventory kind {kind}")
            items.append((kind, r.hash32()))
        return cls(items)


@register
class Inv(_InvList):
    """'I have these' (Bitcoin: inv)."""

    __slots__ = ()
    TYPE = 5
    NAME = "inv"


@register
class GetData(_InvList):
    """'Send me these' (Bitcoin: getdata)."""

    __slots__ = ()
    TYPE = 6
    NAME = "getdata"


@register
class NotFound(_InvList):
    __slots__ = ()
    TYPE = 7
    NAME = "notfound"


@register
class GetHeaders(Message):
    """Headers after the first locator hash we share, up to ``stop`` or MAX_HEADERS."""

    __slots__ = ("locator", "stop")
    TYPE = 8
    NAME = "getheaders"

    def __init__(self, locator: list[bytes], stop: bytes = b"\x00" * 32) -> None:
        if len(locator) > MAX_LOCATOR:
            raise ValueError(f"locator longer than {MAX_LOCATOR}")
        self.locator = list(locator)
        self.stop = stop

    def _payload_size(self) -> int:
        return _compact_size_len(len(self.locator)) + 32 * len(self.locator) + 32

    def write(self, w: Writer) -> None:
        w.compact_size(len(self.locator))
        for h in self.locator:
            w.hash32(h)
        w.hash32(self.stop)

    @classmethod
    def read(cls, r: Reader) -> "GetHeaders":
        locator = [r.hash32() for _ in range(r.count(MAX_LOCATOR))]
        return cls(locator, r.hash32())


@register
class Headers(Message):
    __slots__ = ("headers",)
    TYPE = 9
    NAME = "headers"

    def __init__(self, headers: list[BlockHeader]) -> None:
        if len(headers) > MAX_HEADERS:
            raise ValueError(f"more than {MAX_HEADERS} headers")
        self.headers = list(headers)

    @property
    def size(self) -> int:
        n = len(self.headers)
        return (2 if n < 0xFD else 4) + 80 * n          # n <= MAX_HEADERS < 0x10000

    def write(self, w: Writer) -> None:
        w.compact_size(len(self.headers))
        for h in self.headers:
            h.write(w)

    @classmethod
    def read(cls, r: Reader) -> "Headers":
        return cls([BlockHeader.read(r) for _ in range(r.count(MAX_HEADERS))])


@register
class BlockMessage(Message):
    __slots__ = ("block",)
    TYPE = 10
    NAME = "block"

    def __init__(self, block: Block) -> None:
        self.block = block

    @property
    def size(self) -> int:
        return 1 + self.block.size

    def write(self, w: Writer) -> None:
        self.block.write(w)

    @classmethod
    def read(cls, r: Reader) -> "BlockMessage":
        return cls(Block.read(r))


class StoredBlock(Message):
    """A block message built from a block's stored bytes, for serving it: encoding it
    copies the bytes as they are (no decoding and re-encoding of up to a megabyte).
    Not registered: what arrives is decoded as a :class:`BlockMessage`."""

    __slots__ = ("hash", "data")
    TYPE = BlockMessage.TYPE
    NAME = BlockMessage.NAME

    def __init__(self, block_hash: bytes, data: bytes) -> None:
        self.hash = block_hash
        self.data = data

    @property
    def size(self) -> int:
        return 1 + len(self.data)

    def write(self, w: Writer) -> None:
        w.write(self.data)


@register
class TxMessage(Message):
    __slots__ = ("tx",)
    TYPE = 11
    NAME = "tx"

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx

    @property
    def size(self) -> int:
        return 1 + self.tx.size

    def write(self, w: Writer) -> None:
        self.tx.write(w)

    @classmethod
    def read(cls, r: Reader) -> "TxMessage":
        return cls(Transaction.read(r))


@register
class GetAddr(Message):
    __slots__ = ()
    TYPE = 12
    NAME = "getaddr"


@register
class Addr(Message):
    """Peer addresses as (host, port); hosts are names or IP literals, at most 255 bytes."""

    __slots__ = ("addrs",)
    TYPE = 13
    NAME = "addr"

    def __init__(self, addrs: list[tuple[str, int]]) -> None:
        if len(addrs) > MAX_ADDRS:
            raise ValueError(f"more than {MAX_ADDRS} addresses")
        self.addrs = [(h, p) for h, p in addrs]

    def _payload_size(self) -> int:
        hosts = [len(h.encode("utf-8")) for h, _ in self.addrs]
        return _compact_size_len(len(self.addrs)) + sum(_compact_size_len(n) + n + 2 for n in hosts)

    def write(self, w: Writer) -> None:
        w.compact_size(len(self.addrs))
        for host, port in self.addrs:
            _write_text(w, host)
            w.u16(port)

    @classmethod
    def read(cls, r: Reader) -> "Addr":
        return cls([(_read_text(r), r.u16()) for _ in range(r.count(MAX_ADDRS))])


@register
class Reject(Message):
    """Why the sender is about to drop the link (Bitcoin's deprecated reject, repurposed)."""

    __slots__ = ("reason",)
    TYPE = 14
    NAME = "reject"

    def __init__(self, reason: str) -> None:
        self.reason = reason[:MAX_TEXT]

    def _payload_size(self) -> int:
        n = len(self.reason.encode("utf-8"))
        return _compact_size_len(n) + n

    def write(self, w: Writer) -> None:
        _write_text(w, self.reason)

    @classmethod
    def read(cls, r: Reader) -> "Reject":
        return cls(_read_text(r))


def encode(msg: Message) -> bytes:
    if msg.__class__ is StoredBlock:        # the stored bytes as they are: one copy
        data = _BLOCK_TYPE + msg.data
        if len(data) > MAX_FRAME_SIZE:
            raise ValueError(f"block message of {len(data)} bytes exceeds the frame limit")
        return data
    w = Writer().u8(msg.TYPE)
    msg.write(w)
    data = w.getvalue()
    if len(data) > MAX_FRAME_SIZE:
        raise ValueError(f"{msg.NAME} message of {len(data)} bytes exceeds the frame limit")
    return data


_BLOCK_TYPE = bytes([BlockMessage.TYPE])


def decode(frame: bytes, registry: dict[int, type[Message]] | None = None) -> Message:
    """One frame to one message; raises DecodeError for anything malformed. ``registry``
    replaces :data:`REGISTRY` for a protocol of its own on the same framing (the replica
    links of ``minichain/replica/wire.py``)."""
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        raise DecodeError("a frame must be binary")
    if len(frame) > MAX_FRAME_SIZE:
        raise DecodeError(f"frame of {len(frame)} bytes exceeds the limit of {MAX_FRAME_SIZE}")
    if not frame:
        raise DecodeError("empty frame")
    cls = (REGISTRY if registry is None else registry).get(frame[0])
    if cls is None:
        raise DecodeError(f"unknown message type {frame[0]}")
    r = Reader(bytes(frame[1:]))
    try:
        msg = cls.read(r)
    except ValueError as exc:  # a constructor's own check (DecodeError is a ValueError too)
        raise DecodeError(f"bad {cls.NAME} message: {exc}") from None
    r.end()
    return msg
