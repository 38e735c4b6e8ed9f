"""The miner: N threads scanning nonces of the current template with the SHA-256d kernel.

Threads take nonce ranges ("chunks") from a shared counter, so no range is hashed
twice. A chunk is sized to take about ``CHUNK_SECONDS`` (measured, per thread), and a
thread looks for new work between chunks: a new template or ``stop()`` takes effect
within one chunk, well under the 100 ms the node allows. The kernel releases the GIL,
so the node's event loop keeps running while threads hash.

When the 2^32 nonces of a header are exhausted the time field is rolled forward one
second (Bitcoin miners roll ``nTime`` the same way), up to the template's
``max_time``; past that the miner waits for the node to hand it a new template (with a
new extra nonce).

``duty`` < 1 makes each thread rest between chunks, so a miner can be given a share
of the machine's hash power (the testnet models a 30% attacker this way).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import replace
from typing import Callable

from minichain.core.block import Block
from minichain.mining import kernel
from minichain.mining.template import BlockTemplate

log = logging.getLogger("minichain.miner")

CHUNK_SECONDS = 0.02
MIN_CHUNK, MAX_CHUNK = 1 << 10, 1 << 26
NONCE_SPACE = 1 << 32


class Miner:
    def __init__(self, threads: int = 1, on_found: Callable[[Block], None] | None = None, duty: float = 1.0) -> None:
        if threads < 1:
            raise ValueError("a miner needs at least one thread")
        if not 0.0 < duty <= 1.0:
            raise ValueError("duty must be in (0, 1]")
        self.on_found = on_found or (lambda block: None)
        self.duty = duty
        self._cond = threading.Condition()
        self._template: BlockTemplate | None = None
        self._work_id = 0
        self._header76 = b""
        self._time = 0
        self._next_nonce = 0
        self._stopped = False
        self._chunk = 1 << 16
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self.hashes = 0
        self.found = 0
        self._threads = [threading.Thread(target=self._run, name=f"miner-{i}", daemon=True) for i in range(threads)]
        for t in self._threads:
            t.start()

    # -- control ----------------------------------------------------------------------------

    def set_work(self, template: BlockTemplate | None) -> None:
        """Replace the current work (None: idle). Threads pick it up after their chunk."""
        with self._cond:
            self._template = template
            self._work_id += 1
            if template is not None:
                self._set_header(template, template.header.time)
            self._cond.notify_all()

    def _set_header(self, template: BlockTemplate, t: int) -> None:
        self._time = t
        # The 80-byte layout: version 0..4, prev 4..36, merkle 36..68, time 68..72, bits 72..76.
        raw = bytearray(template.header.serialize())
        raw[68:72] = t.to_bytes(4, "little")
        self._header76 = bytes(raw[:76])
        self._next_nonce = 0

    def stop(self, timeout: float = 1.0) -> None:
        with self._cond:
            self._stopped = True
            self._template = None
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    @property
    def hashrate(self) -> float:
        """Hashes per second over the last few seconds."""
        with self._cond:
            samples = list(self._samples)
        if len(samples) < 2:
            return 0.0
        span = samples[-1][0] - samples[0][0]
        return sum(n for _, n in samples[1:]) / span if span > 0 else 0.0

    # -- the threads ------------------------------------------------------------------------

    def _claim(self) -> tuple[int, BlockTemplate, bytes, int, int, int] | None:
        """Wait for work and take the next nonce range of it (under the lock)."""
        with self._cond:
            while not self._stopped:
                template = self._template
                if template is not None:
                    if self._next_nonce >= NONCE_SPACE:
                        if self._time + 1 > template.max_time:
                            self._template = None  # exhausted: wait for a new template
                            continue
                        self._set_header(template, self._time + 1)
                    start = self._next_nonce
                    count = min(self._chunk, NONCE_SPACE - start)
                    self._next_nonce = start + count
                    return self._work_id, template, self._header76, self._time, start, count
                self._cond.wait()
            return None

    def _run(self) -> None:
        while True:
            claim = self._claim()
            if claim is None:
                return
            work_id, template, header76, t, start, count = claim
            began = time.perf_counter()
            nonce = kernel.scan(header76, template.target, start, count)
            elapsed = time.perf_counter() - began
            hashed = count if nonce is None else nonce - start + 1
            self._account(hashed, elapsed)
            if nonce is not None:
                with self._cond:
                    current = work_id == self._work_id
                    if current:
                        # This work is done; the node sends the next. A new work id makes a
                        # second thread's find on the same work stale: one block per template.
                        self._template = None
                        self._work_id += 1
                if current:
                    block = template.with_header(replace(template.header, time=t, nonce=nonce))
                    self.found += 1
                    try:
                        self.on_found(block)
                    except Exception:
                        log.exception("on_found callback failed")
            if self.duty < 1.0:
                rest = elapsed * (1.0 - self.duty) / self.duty
                with self._cond:
                    if not self._stopped:
                        self._cond.wait(rest)

    def _account(self, hashed: int, elapsed: float) -> None:
        now = time.monotonic()
        with self._cond:
            self.hashes += hashed
            self._samples.append((now, hashed))
            while self._samples and now - self._samples[0][0] > 5.0:
                self._samples.popleft()
            if elapsed > 0:
                rate = hashed / elapsed
                self._chunk = max(MIN_CHUNK, min(MAX_CHUNK, int(rate * CHUNK_SECONDS)))
