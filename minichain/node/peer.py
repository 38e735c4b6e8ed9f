"""One peer link: a WebSocket carrying binary frames, its handshake state and its score.

Either side may dial: the dialler uses aiohttp's client WebSocket, the listener its
server WebSocket; both look the same from here. Sending never blocks the node: frames
go through a bounded queue that one writer task drains, and a peer that lets its queue
fill up is dropped (it is not reading).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from minichain.node import messages as m

log = logging.getLogger("minichain.peer")

SEND_QUEUE = 1000           # frames waiting for one peer before we give up on it
KNOWN_INVENTORY = 20_000    # hashes remembered per peer (Bitcoin: m_tx_inventory_known_filter)
BAN_SCORE = 100             # Bitcoin: DISCOURAGEMENT_THRESHOLD


class BoundedSet:
    """A set that forgets its oldest members beyond ``limit``."""

    __slots__ = ("_items", "limit")

    def __init__(self, limit: int) -> None:
        self._items: OrderedDict[bytes, None] = OrderedDict()
        self.limit = limit

    def add(self, item: bytes) -> None:
        self._items[item] = None
        self._items.move_to_end(item)
        while len(self._items) > self.limit:
            self._items.popitem(last=False)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)


class Peer:
    def __init__(self, ws: Any, host: str, port: int, *, inbound: bool, dialled: tuple[str, int] | None = None) -> None:
        self.ws = ws
        self.host = host
        self.port = port                 # the remote socket's port (ephemeral for inbound)
        self.inbound = inbound
        self.dialled = dialled           # the address we dialled (outbound only)
        self.version: m.Version | None = None
        self.verack = False
        self.known = BoundedSet(KNOWN_INVENTORY)
        self.score = 0
        self.requested: dict[bytes, float] = {}   # block hash -> time asked (in flight)
        self.requested_tx: set[bytes] = set()
        self.best_hash: bytes | None = None       # best block we know the peer has
        self.sync_requested = False
        self.unsolicited = 0.0
        self.last_unsolicited = 0.0
        self.bytes_in = 0
        self.bytes_out = 0
        self.connected_at = 0.0
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(SEND_QUEUE)
        self._writer: asyncio.Task | None = None
        self.closed = False
        self.close_reason = ""

    # -- identity ---------------------------------------------------------------------------

    @property
    def listen_addr(self) -> tuple[str, int] | None:
        """Where this peer accepts connections: what we dialled, or what its version said."""
        if self.dialled is not None:
            return self.dialled
        if self.version is not None and self.version.listen_port:
            return (self.host, self.version.listen_port)
        return None

    @property
    def name(self) -> str:
        addr = self.listen_addr
        if addr is not None:
            return f"{addr[0]}:{addr[1]}"
        return f"{self.host}:{self.port}"

    @property
    def ready(self) -> bool:
        return self.version is not None and self.verack and not self.closed

    @property
    def best_height(self) -> int:
        return self.version.best_height if self.version else 0

    def describe(self) -> dict:
        return {
            "address": self.name,
            "inbound": self.inbound,
            "ready": self.ready,
            "user_agent": self.version.user_agent if self.version else None,
            "start_height": self.best_height,
            "score": self.score,
            "in_flight": len(self.requested),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        }

    # -- sending ----------------------------------------------------------------------------

    def start_writer(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name=f"peer-writer-{self.name}")

    def send(self, msg: m.Message) -> None:
        if self.closed:
            return
        frame = m.encode(msg)
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            log.warning("peer %s is not reading (send queue full); dropping it", self.name)
            self.close("send queue full")

    async def _write_loop(self) -> None:
        try:
            while True:
                frame = await self._queue.get()
                if frame is None:
                    break
                self.bytes_out += len(frame)
                await self.ws.send_bytes(frame)
        except (ConnectionError, RuntimeError, asyncio.CancelledError) as exc:
            if not isinstance(exc, asyncio.CancelledError):
                self.close(f"send failed: {exc}")
        finally:
            if not self.ws.closed:
                await self.ws.close()

    def close(self, reason: str = "") -> None:
        """Flush what is queued (e.g. a reject), then close the socket."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            if self._writer is not None:
                self._writer.cancel()
        if self._writer is None:
            asyncio.get_running_loop().create_task(self.ws.close())

    async def wait_closed(self) -> None:
        if self._writer is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), timeout=2)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._writer.cancel()
