"""Listening sockets that a crowd of idle or hostile connections cannot exhaust.

aiohttp serves the peer-to-peer WebSocket and the REST API; this module puts a guard in
front of each listener (the protocol factory asyncio calls for every accepted socket):

* **a cap on live connections** per listener and in total: a connection beyond it is
  closed as soon as it is accepted, so its descriptor comes back at once. The total
  stays below the process's file-descriptor limit less a reserve, so that LevelDB can
  always open its files (Bitcoin Core likewise keeps ``MIN_CORE_FILEDESCRIPTORS`` back
  from the connection budget);
* **idle connections time out**: aiohttp closes a connection that has not completed a
  request ``keepalive_timeout`` seconds after it opened (or after its last response),
  which the node sets on both listeners (a WebSocket, once open, is watched by its
  heartbeat instead);
* **accept errors are counted, not flooded**: when the process runs out of descriptors
  anyway (outbound links, the database), asyncio logs every failed ``accept()`` with a
  traceback; :func:`quiet_accept_errors` turns those into one line a minute.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any, Callable

log = logging.getLogger("minichain.listener")

ACCEPT_BACKLOG = 32      # asyncio accepts up to this many sockets in one go, before any is closed
FD_RESERVE = 64 + 2 * ACCEPT_BACKLOG   # descriptors kept back from connections (LevelDB files, logs,
                                       # outbound links, and the sockets of an accept burst)


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard limit; returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


class ConnectionGuard:
    """Counts the live connections of all listeners; refuses those beyond the caps."""

    def __init__(self, total: int) -> None:
        self.total = max(1, total)
        self.live = 0
        self.refused = 0

    def wrap(self, factory: Callable[[], asyncio.BaseProtocol], cap: int, name: str) -> Callable[[], asyncio.BaseProtocol]:
        counter = _Counter(cap, name)

        def make() -> asyncio.BaseProtocol:
            return _Guarded(self, counter, factory())

        make.counter = counter  # type: ignore[attr-defined]
        return make


class _Counter:
    __slots__ = ("cap", "live", "name")

    def __init__(self, cap: int, name: str) -> None:
        self.cap = cap
        self.live = 0
        self.name = name


class _Guarded(asyncio.Protocol):
    """Stands between asyncio and aiohttp's protocol for one connection: counts it, or
    closes it at once if a cap is reached."""

    __slots__ = ("guard", "counter", "inner", "counted")

    def __init__(self, guard: ConnectionGuard, counter: _Counter, inner: Any) -> None:
        self.guard = guard
        self.counter = counter
        self.inner = inner
        self.counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        guard, counter = self.guard, self.counter
        if counter.live >= counter.cap or guard.live >= guard.total:
            guard.refused += 1
            if guard.refused == 1 or guard.refused % 1000 == 0:
                log.warning("%s: connection limit reached (%d here, %d in all); refused %d so far",
                            counter.name, counter.live, guard.live, guard.refused)
            transport.abort()
            return
        self.counted = True
        counter.live += 1
        guard.live += 1
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.counted:
            return
        self.counted = False
        self.counter.live -= 1
        self.guard.live -= 1
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.counted:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.counted else None

    def pause_writing(self) -> None:
        if self.counted:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.counted:
            self.inner.resume_writing()


def quiet_accept_errors(loop: asyncio.AbstractEventLoop, every: float = 60.0) -> None:
    """Log asyncio's "out of system resource" accept errors once per ``every`` seconds
    with a count, instead of a traceback per failed accept."""
    previous = loop.get_exception_handler()
    state = {"count": 0, "last": 0.0}

    def handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
        message = str(context.get("message", ""))
        if "accept" in message and "resource" in message:
            state["count"] += 1
            now = time.monotonic()
            if now - state["last"] >= every:
                exc = context.get("exception")
                log.error("cannot accept connections: %s (%d times since the last report)", exc or message,
                          state["count"])
                state["count"] = 0
                state["last"] = now
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
