"""One peer link: a WebSocket carrying binary frames, and its traffic counters.

Either side may dial: the dialler uses aiohttp's client WebSocket, the listener its
server WebSocket; both look the same from here. Sending never blocks the node: frames
go through a queue that one writer task drains. The queue is bounded in bytes, the way
Bitcoin Core bounds a peer's send buffer: past ``SEND_BUFFER`` the peer is *paused*
(fPauseSend: the node stops reading its messages, so it cannot ask for more, and stops
serving what it asked for until the queue drains); past ``SEND_HARD_LIMIT`` -- frames
the node had to send anyway, announcements and the like -- or paused for longer than
``DRAIN_TIMEOUT``, it is dropped: it is not reading.

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

SEND_BUFFER = 4_000_000       # bytes queued for one peer before it is paused (Bitcoin: -maxsendbuffer, 5 MB)
SEND_HARD_LIMIT = 16_000_000  # bytes queued for one peer before it is dropped
DRAIN_TIMEOUT = 60.0          # seconds a paused peer has to drain its queue


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
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.queued_bytes = 0            # encoded frames waiting in the queue
        self._drained = asyncio.Event()  # set while the queue is under the send budget
        self._drained.set()
        self.on_drain: Any = None        # called when the queue empties (the node resumes serving)
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
            "send_queue_bytes": self.queued_bytes,
        }

    # -- sending ----------------------------------------------------------------------------

    def start_writer(self) -> None:
        self._writer = asyncio.get_running_loop().create_task(self._write_loop(), name=f"peer-writer-{self.name}")

    @property
    def paused(self) -> bool:
        """Over its send budget: read nothing more from it until it drains."""
        return self.queued_bytes > SEND_BUFFER

    def send(self, msg: m.Message) -> None:
        if self.closed:
            return
        frame = m.encode(msg)
        self.queued_bytes += len(frame)
        if self.queued_bytes > SEND_HARD_LIMIT:
            log.warning("peer %s is not reading (%d bytes queued); dropping it", self.name, self.queued_bytes,
                        extra=event("peer_dropped", peer=self.name, reason="send buffer full"))
            self.close("send buffer full: not reading")
            return
        if self.queued_bytes > SEND_BUFFER:
            self._drained.clear()
        self._queue.put_nowait(frame)

    async def wait_drained(self, timeout: float = DRAIN_TIMEOUT) -> bool:
        """Wait until the queue is back under budget; False if it did not within ``timeout``."""
        try:
            await asyncio.wait_for(self._drained.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

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
                self.queued_bytes -= len(frame)
                if self.queued_bytes <= SEND_BUFFER:
                    self._drained.set()
                if self.queued_bytes == 0 and self.on_drain is not None and not self.closed:
                    self.on_drain(self)
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
        self._drained.set()              # a reader waiting for the drain stops waiting
        if self.queued_bytes > SEND_BUFFER and self._writer is not None:
            self._writer.cancel()        # not reading: do not wait to flush megabytes
        else:
            self._queue.put_nowait(None)
        if self._writer is None:
            asyncio.get_running_loop().create_task(self.ws.close())

    async def wait_closed(self) -> None:
        if self._writer is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), timeout=2)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._writer.cancel()
