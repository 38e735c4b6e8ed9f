"""Live updates for the explorer page: the node's events as server-sent events.

``GET /api/events`` answers ``text/event-stream``: one ``hello`` event with the node's
status, then every event the node emits (``NodeView.subscribe``) -- ``tip`` (the
active chain moved: hash, height, blocks disconnected and connected), ``block`` (a block
stored on a side branch), ``tx`` (a transaction entered the mempool) and ``peer`` (a link
came up or went down) -- as ``event: KIND`` / ``data: JSON``. The browser's EventSource
reconnects by itself after ``retry`` milliseconds.

Server-sent events rather than a WebSocket: the traffic is one way, EventSource
reconnects on its own, and it is plain HTTP that the API's CORS rule already covers.

A listener runs on the node's event loop and only queues; a client that does not read
fast enough gets one ``resync`` event (reload everything) instead of an unbounded queue.
Streams end when the API shuts down, so a node with open pages still stops at once.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from minichain.node.view import NodeView

MAX_STREAMS = 64          # open event streams per node
MAX_QUEUED = 256          # events waiting for one slow client before it is told to resync
KEEPALIVE = 10.0          # seconds between comments that keep proxies (and us) aware of the client
RETRY_MS = 1500           # the browser's reconnect delay

STREAMS = web.AppKey("explorer_streams", set)


class _Stream:
    __slots__ = ("queue", "overflow")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, dict] | None] = asyncio.Queue(MAX_QUEUED)
        self.overflow = False

    def listener(self, kind: str, data: dict) -> None:
        if self.overflow:
            return
        try:
            self.queue.put_nowait((kind, data))
        except asyncio.QueueFull:
            self.overflow = True
            self._drain()  # drop the backlog: the client reloads everything anyway
            self.queue.put_nowait(("resync", {}))

    def close(self) -> None:
        self._drain()
        self.queue.put_nowait(None)

    def _drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()


def frame(kind: str, data: dict) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def setup(app: web.Application, view: "NodeView") -> None:
    streams: set[_Stream] = set()
    app[STREAMS] = streams

    async def close_streams(app: web.Application) -> None:
        for stream in list(streams):
            stream.close()

    app.on_shutdown.append(close_streams)

    async def events(request: web.Request) -> web.StreamResponse:
        if len(streams) >= MAX_STREAMS:
            return web.json_response({"error": f"too many open event streams (at most {MAX_STREAMS})"}, status=503)
        stream = _Stream()
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        })
        streams.add(stream)
        view.subscribe(stream.listener)
        try:
            await response.prepare(request)
            await response.write(f"retry: {RETRY_MS}\n\n".encode() + frame("hello", view.status()))
            while True:
                try:
                    item = await asyncio.wait_for(stream.queue.get(), KEEPALIVE)
                except asyncio.TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if item is None:
                    break
                if item[0] == "resync":
                    stream.overflow = False
                await response.write(frame(*item))
        except (ConnectionError, RuntimeError):
            pass  # the client went away (aiohttp says so by failing the write)
        finally:
            streams.discard(stream)
            view.unsubscribe(stream.listener)
        return response

    app.router.add_get("/api/events", events)
