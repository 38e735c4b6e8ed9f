"""Where a sweep's runs execute: this process, local worker processes, or a Dask cluster.

Every run is a task ``(key, scenario, params, seed)`` handled by :func:`run_task`, a
module-level function a worker imports by name; its result carries the metrics, the
wall time, the worker's peak RSS and a fingerprint of the minichain code that computed
it. The executors only differ in where that function runs, and hand its results back
in completion order; the caller puts them back in the order of the grid, so the results
are byte-identical whichever executor ran them.

* :class:`Inline` -- ``--workers 1``: this process, one run after another.
* :class:`Processes` -- ``--workers N``: a ``multiprocessing.Pool`` of N processes.
* :class:`Dask` -- ``--scheduler tcp://host:8786``: the workers of a Dask ``distributed``
  cluster (``pip install 'minichain[cluster]'`` on this machine and on every worker).
"""

from __future__ import annotations

import functools
import gc
import hashlib
import os
import resource
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from minichain.sim.sweep import scenarios
from minichain.sim.sweep.spec import run_seed

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
    key, scenario, params, _ = task
    started = time.perf_counter()
    metrics = scenarios.run(scenario, params, run_seed(key))
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
    """Local worker processes (``multiprocessing.Pool``). The workers ignore Ctrl-C: the
    interrupt reaches this process, which stops them (a worker interrupted while it holds
    the result queue's lock would leave the others waiting for ever)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.description = f"{workers} local processes"
        self.pool: Any = None

    def __enter__(self) -> "Processes":
        import multiprocessing

        self.pool = multiprocessing.Pool(self.workers, initializer=_ignore_interrupts)
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None:
            self.pool.close()
        else:
            self.pool.terminate()
        self.pool.join()

    def results(self, tasks: Iterable[Task]) -> Iterator[dict[str, Any]]:
        for outcome in self.pool.imap_unordered(_guarded, tasks):
            if "error" in outcome:
                raise SweepError(outcome["error"])
            yield outcome


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Everything the worker inherited from the parent at the fork is moved out of the
    # garbage collector's sight (Python's gc.freeze() docs advise it for forked workers):
    # otherwise every full collection in a run walks the parent's heap too (measured: 15%
    # slower per point than the same runs in the parent, with 2 workers on 2 cores).
    gc.freeze()


def _guarded(task: Task) -> dict[str, Any]:
    """:func:`run_task` in a worker process, with a failure turned into a message (the
    parent names the run; an exception object may not even unpickle there)."""
    try:
        return run_task(task)
    except Exception as exc:
        return {"error": str(_failed(task, exc))}


class Dask:
    """The workers of a Dask ``distributed`` scheduler at ``address``."""

    def __init__(self, address: str) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise SweepError("--scheduler needs Dask: pip install 'minichain[cluster]'") from None
        _check_reachable(address)
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
            for future in as_completed(futures, loop=self.client.loop):
                task = by_key[future.key]
                try:
                    yield future.result()
                except Exception as exc:
                    raise _failed(task, exc) from exc
        finally:
            self.client.cancel(futures)


def _check_reachable(address: str) -> None:
    """Fail at once on a refused ``tcp://`` address (Dask's own client retries until its timeout)."""
    if not address.startswith("tcp://"):
        return
    host, _, port = address[len("tcp://"):].rpartition(":")
    if not host or not port.isdigit():
        raise SweepError(f"a scheduler address looks like tcp://HOST:PORT, not {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise SweepError(f"cannot reach the Dask scheduler at {address}: {exc.strerror or exc}") from None


def executor(workers: int = 1, scheduler: str | None = None) -> Inline | Processes | Dask:
    if scheduler is not None:
        return Dask(scheduler)
    if workers < 1:
        raise SweepError("workers must be at least 1")
    return Inline() if workers == 1 else Processes(workers)
