"""One peer link: a WebSocket carrying binary frames, and its traffic counters.

Either side may dial: the dialler uses aiohttp's client WebSocket, the listener its
server WebSocket; both look the same from here. Sending never blocks the node: frames
go through a bounded queue that one writer task drains, and a peer that lets its queue
fill up is dropped (it is not reading).

What the protocol knows about the peer (handshake, score, requests, inventory) is its
:class:`~minichain.node.protocol.PeerState`, kept by the sans-IO protocol; ``state``
points at it once the link is registered, for display.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from minichain.node import messages as m
from minichain.node.logs import event

log = logging.getLogger("minichain.peer")

SEND_QUEUE = 1000           # frames waiting for one peer before we give up on it


class Peer:
    def __init__(self, ws: Any, host: str, port: int, *, inbound: bool, dialled: tuple[str, int] | None = None,
                 traffic: Any = None) -> None:
        self.ws = ws
        self.host = host
        self.port = port                 # the remote socket's port (ephemeral for inbound)
        self.inbound = inbound
        self.dialled = dialled           # the address we dialled (outbound only)
        self.state: Any = None           # the protocol's PeerState for this link
        self.bytes_in = 0
        self.bytes_out = 0
        self.traffic = traffic           # the node's metrics.Traffic: frames and bytes sent, by type
        self.connected_at = 0.0
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(SEND_QUEUE)
        self._writer: asyncio.Task | None = None
        self.closed = False
        self.close_reason = ""

    # -- identity ---------------------------------------------------------------------------

    @property
    def listen_addr(self) -> tuple[str, int] | None:
        """Where this peer accepts connections: what we dialled, or what its version said."""
        if self.state is not None:
            return self.state.listen_addr
        return self.dialled

    @property
    def name(self) -> str:
        if self.state is not None:
            return self.state.name
        addr = self.dialled
        return f"{addr[0]}:{addr[1]}" if addr is not None else f"{self.host}:{self.port}"

    @property
    def ready(self) -> bool:
        return self.state is not None and self.state.ready and not self.closed

    def describe(self, now: float | None = None) -> dict:
        state = self.state
        now = time.time() if now is None else now
        version = state.version if state is not None else None
        return {
            "address": self.name,
            "inbound": self.inbound,
            "ready": self.ready,
            "user_agent": version.user_agent if version else None,
            "start_height": version.best_height if version else 0,
            "score": int(state.current_score(now)) if state is not None else 0,
            "in_flight": len(state.requested) if state is not None else 0,
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
            log.warning("peer %s is not reading (send queue full); dropping it", self.name,
                        extra=event("peer_dropped", peer=self.name, reason="send queue full"))
            self.close("send queue full")

    async def _write_loop(self) -> None:
        traffic = self.traffic
        try:
            while True:
                frame = await self._queue.get()
                if frame is None:
                    break
                self.bytes_out += len(frame)
                if traffic is not None:
                    traffic.sent_bytes[frame[0]] += len(frame)
                    traffic.sent_messages[frame[0]] += 1
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
