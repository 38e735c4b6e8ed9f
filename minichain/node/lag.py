"""How late the node's event loop runs: the lag a coroutine sees when it wakes up.

A probe sleeps ``INTERVAL`` seconds again and again and records by how much each wake-up
came late. Anything that holds the loop -- an API handler doing too much at once, a long
synchronous call -- delays the probe by as long as it holds it, so the lag is what a peer
message, a block or an API request waiting at that moment also waited. (Node.js reports
the same figure with ``monitorEventLoopDelay``.) The node starts the probe in
``Node.start`` and ``/api/status`` reports it as ``loop_lag``.

A hold shorter than ``INTERVAL`` is seen only if a wake-up falls inside it, so ``max_ms``
over the window is the figure to watch; the percentiles say how often the loop is late.
"""

from __future__ import annotations

import asyncio
from collections import deque

INTERVAL = 0.02     # seconds between wake-ups (50 per second: a few microseconds of work each)
WINDOW = 60.0       # seconds of samples the percentiles and the maximum cover


class LagMonitor:
    def __init__(self, interval: float = INTERVAL, window: float = WINDOW) -> None:
        self.interval = interval
        self.window = window
        self.samples: deque[float] = deque(maxlen=max(1, int(window / interval)))
        self.worst = 0.0   # since the start

    async def run(self) -> None:
        """Probe until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            await asyncio.sleep(self.interval)
            self.record(loop.time() - began - self.interval)

    def record(self, lag: float) -> None:
        lag = max(0.0, lag)
        self.samples.append(lag)
        self.worst = max(self.worst, lag)

    def report(self) -> dict:
        """Milliseconds: the last sample, the median, the 99th percentile and the maximum
        of the last ``window`` seconds, and the worst since the start."""
        ordered = sorted(self.samples)
        n = len(ordered)

        def pct(q: float) -> float:
            return round(ordered[min(n - 1, int(q * n))] * 1000, 3) if n else 0.0

        return {
            "last_ms": round(self.samples[-1] * 1000, 3) if n else 0.0,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": round(ordered[-1] * 1000, 3) if n else 0.0,
            "worst_ms": round(self.worst * 1000, 3),
            "window_s": self.window,
            "samples": n,
        }
