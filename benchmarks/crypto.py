"""Signing and verification rates of the two secp256k1 backends, and what threads give.

    python -m benchmarks.crypto [--budget SECONDS]

Each row runs its operation over a fixed set of 64 keys and digests for about
``--budget`` seconds and reports operations per second. Ratios are relative to the
python-ecdsa row of the same operation, measured in the same run, so they mean
something on any machine; nothing here asserts an absolute time.

The thread rows answer "can signature checks run in parallel despite the GIL?":
verification in two threads at once (against one thread of the same backend), and in
one thread while another runs pure Python, as a node's event loop would (against the
same thread alone). coincurve's C calls release the GIL (cffi does so around every
call); each verification is still a few short C calls with Python in between, and each
of those takes the GIL back -- behind a busy Python thread, only once per switch
interval (``sys.getswitchinterval()``, 5 ms).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import threading
import time
from typing import Callable

import ecdsa
from rich.console import Console
from rich.table import Table

from minichain.core import keys
from minichain.core.keys import PrivateKey

N_KEYS = 64


def _rate(op: Callable[[int], object], budget: float) -> float:
    """Operations per second of ``op(i)``, run in growing batches for ~``budget`` seconds."""
    done, batch, elapsed = 0, 8, 0.0
    while elapsed < budget:
        start = time.perf_counter()
        for i in range(done, done + batch):
            op(i % N_KEYS)
        elapsed += time.perf_counter() - start
        done += batch
        batch = min(batch * 2, 4096)
    return done / elapsed


def _threaded_rate(op: Callable[[int], object], budget: float, threads: int, beside_python: bool = False) -> float:
    """Total operations per second of ``op`` in ``threads`` threads at once (with one more
    thread spinning in pure Python if ``beside_python``)."""
    stop = threading.Event()
    counts = [0] * threads

    def work(k: int) -> None:
        i = 0
        while not stop.is_set():
            op(i % N_KEYS)
            i += 1
        counts[k] = i

    def spin() -> None:
        x = 0
        while not stop.is_set():
            x += 1

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    if beside_python:
        workers.append(threading.Thread(target=spin))
    began = time.perf_counter()
    for t in workers:
        t.start()
    time.sleep(budget)
    stop.set()
    for t in workers:
        t.join()
    return sum(counts) / (time.perf_counter() - began)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=1.5, help="seconds per row (default 1.5)")
    args = parser.parse_args(argv)

    secrets = [PrivateKey(int.from_bytes(hashlib.sha256(b"bench key %d" % i).digest(), "big") % keys.CURVE_N or 1)
               for i in range(N_KEYS)]
    digests = [hashlib.sha256(b"bench digest %d" % i).digest() for i in range(N_KEYS)]
    pubs = [k.public_key.to_bytes() for k in secrets]
    sigs = [k.sign(d) for k, d in zip(secrets, digests)]
    for b in keys.BACKENDS:  # the benchmark measures correct work only
        assert all(keys.verify(p, s, d, backend=b) for p, s, d in zip(pubs, sigs, digests))

    rows: list[tuple[str, str, float]] = []
    for backend in keys.BACKENDS:
        rows.append(("sign", backend, _rate(lambda i: secrets[i].sign(digests[i], backend=backend), args.budget)))
    for backend in keys.BACKENDS:
        rows.append(("verify", backend, _rate(lambda i: keys.verify(pubs[i], sigs[i], digests[i], backend=backend), args.budget)))
    rows.append(("strict-DER + low-S pre-check only", "-", _rate(lambda i: keys.parse_signature(sigs[i]), args.budget / 3)))
    threaded: list[tuple[str, str, float, str]] = []
    for backend in keys.BACKENDS:
        def verify_one(i: int, backend: str = backend) -> object:
            return keys.verify(pubs[i], sigs[i], digests[i], backend=backend)

        one = _threaded_rate(verify_one, args.budget, 1)
        threaded.append(("verify, 1 thread", backend, one, "1.00x"))
        two = _threaded_rate(verify_one, args.budget, 2)
        threaded.append(("verify, 2 threads at once (total)", backend, two, f"{two / one:.2f}x"))
        beside = _threaded_rate(verify_one, args.budget, 1, beside_python=True)
        threaded.append(("verify, 1 thread beside a busy Python thread", backend, beside, f"{beside / one:.2f}x"))

    baseline = {op: r for op, backend, r in rows if backend == "ecdsa"}
    gmpy = "yes" if keys.ECDSA_USES_GMPY2 else "NO (pure-Python integers)"
    table = Table(title=f"secp256k1 backends (python-ecdsa {ecdsa.__version__}, gmpy2 in use: {gmpy})")
    table.add_column("operation")
    table.add_column("backend")
    table.add_column("ops/s", justify="right")
    table.add_column("µs/op", justify="right")
    table.add_column("vs ecdsa", justify="right")
    for op, backend, rate in rows:
        ratio = f"{rate / baseline[op]:.1f}x" if op in baseline else ""
        table.add_row(op, backend, f"{rate:,.0f}", f"{1e6 / rate:,.1f}", ratio)
    for backend in keys.ALL_BACKENDS:
        if backend not in keys.BACKENDS:
            table.add_row("sign / verify", backend, "not installed", "", keys.INSTALL_HINT)
    console = Console()
    console.print(table)
    table = Table(title=f"verification in threads (this machine: {os.cpu_count()} CPUs, "
                        f"load average {os.getloadavg()[0]:.1f})")
    for col in ("operation", "backend", "ops/s", "vs 1 thread"):
        table.add_column(col, justify="left" if col in ("operation", "backend") else "right")
    for op, backend, rate, ratio in threaded:
        table.add_row(op, backend, f"{rate:,.0f}", ratio)
    console.print(table)
    console.print(f"verify backend in use: [bold]{keys.VERIFY_BACKEND}[/bold], {keys.backend_description()} "
                  f"(set {keys.VERIFY_ENV}=ecdsa|coincurve|auto to choose)")


if __name__ == "__main__":
    main()
