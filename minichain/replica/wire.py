"""Replica links on the node's framing: two more message types and pairwise MAC keys.

A replica link is a WebSocket carrying the node's binary frames (``node/messages.py``:
a one-byte type, the payload, :data:`~minichain.node.messages.MAX_FRAME_SIZE`), sent
through the node's :class:`~minichain.node.peer.Peer` (its bounded send queue) and
decoded by the node's ``decode`` with a registry of its own, :data:`REGISTRY` (so a
node never accepts a replica frame, nor a replica a node's message). Two message types:

* :class:`ReplicaHello` -- the first frame each way: who the sender is, who it thinks it
  is talking to, the engine and the replica count, a fresh nonce, and a MAC over all of
  it with the pair's key. A wrong key, a wrong id or another engine closes the link.
* :class:`ReplicaFrame` -- one engine message (``replica/codec.py``), its sequence number
  on the link, and a MAC over (both nonces, the direction, the sequence number, the
  message) with the pair's key. A frame whose MAC or sequence number is wrong closes the link.

**Authentication.** The engines assume authenticated point-to-point channels (PBFT's
MACs, Castro & Liskov 1999, section 3; the ``src`` of a message cannot be forged). Each
pair of replicas ``i < j`` shares a key ``K_ij = HMAC-SHA256(master, "i-j")``; replica
``i``'s key file holds only its own ``n - 1`` pair keys (``replica/keys.py``), so it can
neither forge a frame between two others nor impersonate one to a third. The MACs are
HMAC-SHA256 (RFC 2104), truncated to 16 bytes (RFC 2104 section 5 allows truncation to
half the output or more).

Said plainly: statements that an engine *relays* (a PBFT prepared certificate, a
Tendermint gossip bundle, DLS's signed reports in a lock) are trusted on their signer
field, exactly as in the simulator (the engines' docstrings say so): we authenticate
links, not each relayed statement. Our Byzantine behaviours never sign as someone else,
so this matches the model the engines were written for, but a Byzantine replica written
to forge relayed statements would not be caught here.
"""

from __future__ import annotations

import hashlib
import hmac

from minichain.core.encoding import DecodeError, Reader, Writer
from minichain.node import messages as m

MAC_SIZE = 16
NONCE_SIZE = 16
MAX_NAME = 32


def mac(key: bytes, *parts: bytes) -> bytes:
    """HMAC-SHA256 over the length-prefixed ``parts``, truncated to :data:`MAC_SIZE` bytes."""
    h = hmac.new(key, digestmod=hashlib.sha256)
    for p in parts:
        h.update(len(p).to_bytes(4, "little"))
        h.update(p)
    return h.digest()[:MAC_SIZE]


class ReplicaHello(m.Message):
    """The first frame of a replica link, each way."""

    __slots__ = ("sender", "receiver", "engine", "n", "nonce", "mac")
    TYPE = 64
    NAME = "replica-hello"

    def __init__(self, sender: int, receiver: int, engine: str, n: int, nonce: bytes, mac: bytes) -> None:
        if len(nonce) != NONCE_SIZE or len(mac) != MAC_SIZE:
            raise ValueError("bad nonce or MAC length")
        if len(engine.encode()) > MAX_NAME:
            raise ValueError("engine name too long")
        self.sender = sender
        self.receiver = receiver
        self.engine = engine
        self.n = n
        self.nonce = nonce
        self.mac = mac

    def signed_part(self) -> bytes:
        return (self.sender.to_bytes(2, "little") + self.receiver.to_bytes(2, "little")
                + self.engine.encode() + b"/" + self.n.to_bytes(2, "little") + self.nonce)

    @classmethod
    def make(cls, key: bytes, sender: int, receiver: int, engine: str, n: int, nonce: bytes) -> "ReplicaHello":
        hello = cls(sender, receiver, engine, n, nonce, b"\0" * MAC_SIZE)
        hello.mac = mac(key, b"hello", hello.signed_part())
        return hello

    def verify(self, key: bytes) -> bool:
        return hmac.compare_digest(self.mac, mac(key, b"hello", self.signed_part()))

    def write(self, w: Writer) -> None:
        w.u16(self.sender).u16(self.receiver).var_bytes(self.engine.encode()).u16(self.n)
        w.write(self.nonce).write(self.mac)

    @classmethod
    def read(cls, r: Reader) -> "ReplicaHello":
        sender, receiver = r.u16(), r.u16()
        raw = r.var_bytes(MAX_NAME)
        try:
            engine = raw.decode()
        except UnicodeDecodeError:
            raise DecodeError("engine name is not UTF-8") from None
        return cls(sender, receiver, engine, r.u16(), r.read(NONCE_SIZE), r.read(MAC_SIZE))


class ReplicaFrame(m.Message):
    """One engine message on an authenticated link."""

    __slots__ = ("seq", "payload", "mac")
    TYPE = 65
    NAME = "replica-frame"

    def __init__(self, seq: int, payload: bytes, mac: bytes) -> None:
        if len(mac) != MAC_SIZE:
            raise ValueError("bad MAC length")
        self.seq = seq
        self.payload = payload
        self.mac = mac

    def write(self, w: Writer) -> None:
        w.u64(self.seq).var_bytes(self.payload).write(self.mac)

    @classmethod
    def read(cls, r: Reader) -> "ReplicaFrame":
        return cls(r.u64(), r.var_bytes(m.MAX_FRAME_SIZE), r.read(MAC_SIZE))


REGISTRY: dict[int, type[m.Message]] = {cls.TYPE: cls for cls in (ReplicaHello, ReplicaFrame)}


def decode(frame: bytes) -> m.Message:
    """One replica-link frame to its message; DecodeError for anything else."""
    return m.decode(frame, REGISTRY)


class LinkKeys:
    """One direction's MAC context on a link: the pair key and both nonces."""

    def __init__(self, key: bytes, my_nonce: bytes, their_nonce: bytes, me: int, them: int) -> None:
        self.key = key
        self.out_context = b"%d>%d" % (me, them) + my_nonce + their_nonce
        self.in_context = b"%d>%d" % (them, me) + their_nonce + my_nonce
        self.next_out = 0
        self.next_in = 0

    def seal(self, payload: bytes) -> ReplicaFrame:
        seq = self.next_out
        self.next_out += 1
        return ReplicaFrame(seq, payload, mac(self.key, self.out_context, seq.to_bytes(8, "little"), payload))

    def open(self, frame: ReplicaFrame) -> bytes | None:
        """The payload if the frame is the next one from the peer and its MAC holds; else None."""
        if frame.seq != self.next_in:
            return None
        want = mac(self.key, self.in_context, frame.seq.to_bytes(8, "little"), frame.payload)
        if not hmac.compare_digest(want, frame.mac):
            return None
        self.next_in += 1
        return frame.payload
