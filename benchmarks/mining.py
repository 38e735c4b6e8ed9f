"""Hash rate of the SHA-256d mining kernel, against a pure-Python hashlib loop.

    python -m benchmarks.mining [--seconds S] [--repeat N]      (or: minichain bench mine)

Rows, all measured in this one run:
  - the hashlib loop (the kernel's ``python`` backend: midstate copy, two hashlib calls
    and a byte comparison per nonce -- about as fast as pure Python gets);
  - the default kernel backend (``kernel.BACKEND``) on 1 thread;
  - the same on every core: one thread per core, each scanning its own nonce range;
  - every other compiled backend this CPU has, on 1 thread, for comparison.
Every scan has an impossible target (0), so all the time goes to hashing. Each row is
measured ``--repeat`` times; the table shows the best and the median wall-clock rate,
and the best run's rate per CPU-second its threads actually got ("per core"), which
other processes on a shared machine do not distort. "x hashlib" compares per-core
rates; "x 1 thread" compares wall-clock rates (the multi-thread scaling). Ratios carry
over between machines; absolute MH/s depend on the clock. Nothing here is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from minichain.mining import kernel

HEADER76 = bytes(range(76))  # any header will do: every nonce costs the same
IMPOSSIBLE = 0  # no hash is <= 0 (a 2**-256 chance)


@dataclass(frozen=True)
class Row:
    label: str
    backend: str
    threads: int
    best_mhs: float  # million header hashes per second (wall clock), best of the repeats
    median_mhs: float
    per_cpu_mhs: float  # the best repeat's hashes per CPU-second its threads got: the speed
    #                     per core, even when other processes take turns on the cores
    vs_hashlib: float  # per_cpu_mhs / that of the hashlib row: the speed-up per core
    vs_one_thread: float  # best / best of the default backend on 1 thread: the scaling


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def hash_rate(backend: str, threads: int, seconds: float) -> tuple[float, float]:
    """Nonces per second of ``threads`` threads scanning disjoint ranges for ``seconds``,
    and the share of that wall time the threads actually got a CPU."""
    # Size one scan call to ~20 ms so the deadline is kept without timing every hash.
    probe = 1 << 10 if backend == "python" else 1 << 16
    t0 = time.perf_counter()
    kernel.scan(HEADER76, IMPOSSIBLE, 0, probe, backend=backend)
    chunk = max(256, int(probe / max(time.perf_counter() - t0, 1e-6) * 0.02))
    region = kernel.NONCE_LIMIT // threads

    done = [0] * threads
    cpu = [0.0] * threads
    barrier = threading.Barrier(threads + 1)
    stop_at = [0.0]

    def work(i: int) -> None:
        base, offset = i * region, 0
        barrier.wait()
        cpu0 = time.thread_time()
        while time.perf_counter() < stop_at[0]:
            n = min(chunk, region - offset)
            if n <= 0:  # a whole region done (only on absurdly fast machines): start again
                offset, n = 0, min(chunk, region)
            kernel.scan(HEADER76, IMPOSSIBLE, base + offset, n, backend=backend)
            offset += n
            done[i] += n
        cpu[i] = time.thread_time() - cpu0

    workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    start = time.perf_counter()
    stop_at[0] = start + seconds
    barrier.wait()
    for w in workers:
        w.join()
    wall = time.perf_counter() - start
    return sum(done) / wall, sum(cpu) / (wall * threads)


def run(seconds: float = 1.0, repeat: int = 3) -> list[Row]:
    """Measure every row; each measurement lasts about ``seconds`` (the hashlib loop a
    third of that)."""
    n_cores = cores()
    plan = [("hashlib loop", "python", 1)]
    if kernel.BACKEND != "python":
        plan.append((f"{kernel.BACKEND} (default)", kernel.BACKEND, 1))
        if n_cores > 1:
            plan.append((f"{kernel.BACKEND} (default)", kernel.BACKEND, n_cores))
        plan += [(b, b, 1) for b in kernel.available_backends() if b not in (kernel.BACKEND, "python")]

    measured = []
    for label, backend, threads in plan:
        budget = seconds / 3 if backend == "python" else seconds
        runs = [hash_rate(backend, threads, budget) for _ in range(repeat)]
        best, share = max(runs)
        median = statistics.median(rate for rate, _ in runs)
        per_cpu = best / (share * threads)
        measured.append((label, backend, threads, best / 1e6, median / 1e6, per_cpu / 1e6))

    hashlib_per_cpu = measured[0][5]
    one_thread_best = measured[1][3] if len(measured) > 1 else measured[0][3]
    return [Row(label, backend, threads, best, median, per_cpu, per_cpu / hashlib_per_cpu, best / one_thread_best)
            for label, backend, threads, best, median, per_cpu in measured]


def render(rows: list[Row]) -> Table:
    table = Table(title=f"SHA-256d header scan, MH/s ({cores()} cores)")
    table.add_column("kernel", no_wrap=True)
    table.add_column("thr", justify="right", no_wrap=True)
    for name in ("best", "median", "per core", "x hashlib", "x 1 thread"):
        table.add_column(name, justify="right", no_wrap=True)
    for r in rows:
        table.add_row(r.label, str(r.threads), f"{r.best_mhs:.2f}", f"{r.median_mhs:.2f}", f"{r.per_cpu_mhs:.2f}",
                      f"{r.vs_hashlib:.1f}x", f"{r.vs_one_thread:.2f}x")
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per measurement (default 1.0)")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per row (default 3)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.repeat < 1:
        parser.error("--seconds must be > 0 and --repeat >= 1")

    # Check before timing: the genesis block's nonce is found by the backends measured.
    genesis76 = bytes.fromhex(
        "01000000" + "00" * 32
        + "3ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a"
        + "29ab5f49" + "ffff001d")
    for backend in kernel.available_backends():
        span = 1000 if backend == "python" else 100_000
        assert kernel.scan(genesis76, 0xFFFF << 208, 2083236893 - span, 2 * span, backend=backend) == 2083236893

    console = Console()
    console.print(render(run(args.seconds, args.repeat)))
    console.print(
        "best, median: wall-clock MH/s over the repeats. per core: the best run's\n"
        "hashes per CPU-second its threads got, which other busy processes do not\n"
        "lower; x hashlib compares these. x 1 thread: the wall-clock scaling.\n"
        f"backends here: {', '.join(kernel.available_backends())}\n"
        f"(force one with {kernel.ENV_VAR}=<name>)")


if __name__ == "__main__":
    main()
