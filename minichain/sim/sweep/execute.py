"""Where a sweep's runs execute: this process, local worker processes, or a Dask cluster.

Every run is a task ``(key, scenario, params, seed)`` handled by :func:`run_task`, a
module-level function a worker imports by name; its result carries the metrics, the
wall time, the worker's peak RSS and a fingerprint of the minichain code that computed
it. The executors only differ in where that function runs, and hand its results back
in completion order; the caller puts them back in the order of the grid, so the results
are byte-identical whichever executor ran them.

* :class:`Inline` -- ``--workers 1``: this process, one run after another.
* :class:`Processes` -- ``--workers N``: ``concurrent.futures.ProcessPoolExecutor``.
* :class:`Dask` -- ``--scheduler tcp://host:8786``: the workers of a Dask ``distributed``
  cluster (``pip install 'minichain[cluster]'`` on this machine and on every worker).
"""

from __future__ import annotations

import functools
import hashlib
import os
import resource
import socket
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Iterable, Iterator

from minichain.sim.sweep import scenarios

Task = tuple[str, str, dict, int]          # (key, scenario, params, seed)


class SweepError(RuntimeError):
    """A sweep that could not be carried out (a run failed, no scheduler, foreign code)."""


@functools.cache
def code_fingerprint() -> str:
    """A hash of every source file of the minichain package: results computed by other
    code are not reused from a results directory, and a Dask worker running other code
    is refused."""
    import minichain

    root = Path(minichain.__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def peak_rss_mb() -> float:
    """The process's peak resident set so far (``getrusage``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def run_task(task: Task) -> dict[str, Any]:
    """One run, wherever it executes."""
    key, scenario, params, seed = task
    started = time.perf_counter()
    metrics = scenarios.run(scenario, params, seed)
    wall = time.perf_counter() - started
    return {"key": key, "metrics": metrics, "wall_s": round(wall, 4), "peak_rss_mb": peak_rss_mb(),
            "worker": f"{socket.gethostname()}:{os.getpid()}", "code": code_fingerprint()}


def _failed(task: Task, exc: BaseException) -> SweepError:
    _, scenario, params, seed = task
    values = ", ".join(f"{k}={v}" for k, v in params.items())
    return SweepError(f"the {scenario} run ({values}, seed {seed}) failed: {type(exc).__name__}: {exc}")


class Inline:
    description = "this process"

    def __enter__(self) -> "Inline":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def results(self, tasks: Iterable[Task]) -> Iterator[dict[str, Any]]:
        for task in tasks:
            try:
                yield run_task(task)
            except Exception as exc:
                raise _failed(task, exc) from exc


class Processes:
    """Local worker processes. At most ``2 * workers`` runs are queued at once, so an
    interrupted sweep has not handed out the whole grid."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.description = f"{workers} local processes"
        self.pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> "Processes":
        self.pool = ProcessPoolExecutor(max_workers=self.workers)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.pool is not None
        self.pool.shutdown(wait=exc[0] is None, cancel_futures=True)

    def results(self, tasks: Iterable[Task]) -> Iterator[dict[str, Any]]:
        assert self.pool is not None
        pending: dict[Future, Task] = {}
        todo = iter(tasks)
        while True:
            for task in todo:
                pending[self.pool.submit(run_task, task)] = task
                if len(pending) >= 2 * self.workers:
                    break
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                task = pending.pop(future)
                try:
                    yield future.result()
                except Exception as exc:
                    raise _failed(task, exc) from exc


class Dask:
    """The workers of a Dask ``distributed`` scheduler at ``address``."""

    def __init__(self, address: str) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise SweepError("--scheduler needs Dask: pip install 'minichain[cluster]'") from None
        try:
            self.client = Client(address, timeout="10s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise SweepError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        workers = len(self.client.scheduler_info().get("workers", {}))
        self.description = f"Dask at {address} ({workers} workers)"

    def __enter__(self) -> "Dask":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.client.close()

    def results(self, tasks: Iterable[Task]) -> Iterator[dict[str, Any]]:
        from distributed import as_completed

        tasks = list(tasks)
        if not tasks:
            return
        by_key = {"minichain-sweep-" + hashlib.sha256(t[0].encode()).hexdigest()[:24]: t for t in tasks}
        futures = self.client.map(run_task, tasks, key=list(by_key))
        try:
            for future in as_completed(futures):
                task = by_key[future.key]
                try:
                    yield future.result()
                except Exception as exc:
                    raise _failed(task, exc) from exc
        finally:
            self.client.cancel(futures)


def executor(workers: int = 1, scheduler: str | None = None) -> Inline | Processes | Dask:
    if scheduler is not None:
        return Dask(scheduler)
    if workers < 1:
        raise SweepError("workers must be at least 1")
    return Inline() if workers == 1 else Processes(workers)
