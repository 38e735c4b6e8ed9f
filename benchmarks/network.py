"""Network benchmark: block propagation over real nodes, and the API's transaction admission.

    python -m benchmarks.network [--nodes 8] [--blocks 50] [--rounds 2] [--baseline main]
                                 [--txs 1000] [--ecdsa-txs 150] [--admission-rounds 3] [--seed 1]

Reports, in one run:

* block propagation: ``--nodes`` real nodes on 127.0.0.1 in a sparse random topology
  (the same for every run), ``--blocks`` blocks mined with ``generate`` on a random node
  (regtest: the relay's time, not the proof of work's). Propagation is the time from a
  block's first storage at the node that mined it to its storage at the last node
  (median and p95, from each node's /api/arrivals), and block crossings per block (how
  many times a block's bytes crossed a link: inventory relay should give about one per
  node, flooding one per link direction). The same measurement runs on the nodes of
  ``--baseline`` (a git ref, exported with ``git archive``; ``none`` to skip) in the same
  run, ``--rounds`` times each, alternating, so the two are compared on the same machine
  under the same load;
* transaction admission, for each verify backend (``MINICHAIN_VERIFY`` in the node's
  environment): transactions per second the REST API admits -- one per ``POST /api/tx``
  (16 at a time, the way a wallet sends them) and in batches of 100 per ``POST
  /api/txs``, on a node without peers (a peer on this machine would check the same
  transactions on the same shared cores while they are timed; a last batch is then
  relayed to a peer, untimed, to see the relay deliver all of it) -- beside
  ``Mempool.add`` in this process with the same backend on the same
  kind of transactions, freshly decoded from their bytes (nothing cached on them: a
  mempool is handed bytes), the baseline of the ratio. Each is measured
  ``--admission-rounds`` times on fresh coins; the fastest is shown (the machine is
  shared: the least disturbed measurement).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time

import aiohttp
from rich.console import Console
from rich.table import Table

from minichain import params
from minichain.core import keys
from minichain.core.keys import PrivateKey
from minichain.core.tx import OutPoint, Transaction, TxIn, TxOut, sign_inputs
from benchmarks.trees import ROOT, export_tree
from tests.e2e.harness import NodeProcess, sync_blocks, wait_until

P = params.regtest
KEY = PrivateKey(777)
BATCH = 100


def random_topology(n: int, rng: random.Random, extra: int) -> list[tuple[int, int]]:
    """A random spanning tree plus ``extra`` random links: connected and sparse."""
    order = list(range(n))
    rng.shuffle(order)
    links = {tuple(sorted((order[i], order[rng.randrange(i)]))) for i in range(1, n)}
    while len(links) < n - 1 + extra:
        a, b = rng.sample(range(n), 2)
        links.add(tuple(sorted((a, b))))
    return sorted(links)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def stop_all(procs: list[NodeProcess]) -> None:
    for p in procs:
        try:
            p.stop()
        except Exception:  # noqa: BLE001 - clean up whatever state it is in
            p.kill()


# -- block propagation --------------------------------------------------------------------------


def propagation(root: str, nodes: int, blocks: int, seed: int, extra_links: int = 3) -> dict:
    """One run of the propagation measurement on nodes running from source tree ``root``."""
    rng = random.Random(seed)
    links = random_topology(nodes, rng, extra_links)
    addr = KEY.public_key.address(P.address_version)
    with tempfile.TemporaryDirectory(prefix="minichain-bench-") as workdir:
        procs = [NodeProcess(workdir, f"n{i}", root=root) for i in range(nodes)]
        try:
            for p in procs:
                p.start("--no-discover", "--log-level", "info")
            for a, b in links:
                procs[b].connect(procs[a])
            wait_until(lambda: all(p.status()["peers"] >= 1 for p in procs), 30, lambda: "peers did not connect")
            time.sleep(1.0)
            procs[0].generate(P.coinbase_maturity + 1, addr)
            sync_blocks(procs, timeout=120)
            before = [p.status()["traffic"] for p in procs]
            origins = []
            for _ in range(blocks):
                origin = rng.randrange(nodes)
                (h,) = procs[origin].generate(1, addr)
                origins.append((h, origin))
                sync_blocks(procs, timeout=60)
            after = [p.status()["traffic"] for p in procs]
            arrivals = [p.get("/api/arrivals") for p in procs]
        finally:
            stop_all(procs)
    delays = [max(a[h] for a in arrivals) - arrivals[origin][h] for h, origin in origins]
    received = sum(a["blocks_received"] - b["blocks_received"] for a, b in zip(after, before))
    return {"delays": delays, "crossings": received / blocks, "links": len(links)}


# -- transaction admission ----------------------------------------------------------------------


def spends_of(fan: Transaction) -> list[Transaction]:
    pkh = KEY.public_key.hash160()
    return [sign_inputs(Transaction(1, (TxIn(OutPoint(fan.txid, i)),), (TxOut(out.value - 1000, pkh),), 0), [KEY])
            for i, out in enumerate(fan.outputs)]


def fan_out(coin: dict, count: int) -> Transaction:
    value = coin["value"] - 10_000
    each = value // count
    outs = tuple(TxOut(each, KEY.public_key.hash160()) for _ in range(count))
    tx = Transaction(1, (TxIn(OutPoint(bytes.fromhex(coin["txid"])[::-1], coin["vout"])),), outs, 0)
    return sign_inputs(tx, [KEY])


async def post_each(port: int, raws: list[str], concurrency: int = 16) -> float:
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:
        async def one(raw: str) -> None:
            async with sem:
                async with session.post(f"http://127.0.0.1:{port}/api/tx", json={"hex": raw}) as r:
                    if r.status != 200:
                        raise RuntimeError(f"tx refused: {r.status} {await r.text()}")

        began = time.perf_counter()
        await asyncio.gather(*(one(raw) for raw in raws))
        return time.perf_counter() - began


async def post_batches(port: int, raws: list[str], concurrency: int = 2) -> float:
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:
        async def one(chunk: list[str]) -> None:
            async with sem:
                async with session.post(f"http://127.0.0.1:{port}/api/txs", json={"hex": chunk}) as r:
                    data = await r.json()
                    if r.status != 200 or data["accepted"] != len(chunk):
                        raise RuntimeError(f"batch refused: {r.status} {str(data)[:300]}")

        began = time.perf_counter()
        await asyncio.gather(*(one(raws[i:i + BATCH]) for i in range(0, len(raws), BATCH)))
        return time.perf_counter() - began


def in_process(fan: Transaction, raws: list[bytes], backend: str) -> tuple[float, float]:
    """Mempool.add on freshly decoded transactions, over a dict of the fan-out's coins,
    with the node's kind of checker (a signature cache) and the same backend."""
    from minichain.chainstate import Mempool
    from minichain.core.sigcache import SignatureCache, SignatureChecker
    from minichain.core.validation import Coin

    coins = {OutPoint(fan.txid, i): Coin(o.value, o.pubkey_hash, 200, False) for i, o in enumerate(fan.outputs)}

    class View:
        def get_coin(self, op):
            return coins.get(op)

    txs = [Transaction.deserialize(raw) for raw in raws]
    pool = Mempool(P, checker=SignatureChecker(SignatureCache(), backend=backend))
    view = View()
    began, cpu = time.perf_counter(), time.process_time()
    for tx in txs:
        pool.add(tx, view, 200)
    return len(txs) / (time.perf_counter() - began), len(txs) / (time.process_time() - cpu)


def timed_on(node: NodeProcess, n: int, coro) -> tuple[float, float]:
    """(transactions per second of wall time, per second of the node's CPU time)."""
    cpu = node.cpu_seconds()
    seconds = asyncio.run(coro)
    return n / seconds, n / max(node.cpu_seconds() - cpu, 1e-9)


def admission(backend: str, txs: int, rounds: int) -> dict:
    """Admission rates on a node without peers (a peer on this machine would check the
    same transactions on the same shared cores while they are timed), then one more
    batch with a peer connected, to see the per-tick relay deliver all of it (not timed)."""
    addr = KEY.public_key.address(P.address_version)
    env = {keys.VERIFY_ENV: backend}
    rates: dict[str, list[tuple[float, float]]] = {"single": [], "batch": [], "in-process": []}
    with tempfile.TemporaryDirectory(prefix="minichain-bench-") as workdir:
        a = NodeProcess(workdir, "a", env=env)
        b = NodeProcess(workdir, "b", env=env)
        procs = [a, b]
        try:
            a.start("--no-discover", "--log-level", "info")
            a.generate(P.coinbase_maturity + 2 * rounds + 1, addr)
            coins = [u for u in a.get(f"/api/address/{addr}/utxos")["utxos"] if u["mature"] and u["coinbase"]]
            fans = [fan_out(coin, txs) for coin in coins[:2 * rounds + 1]]
            for fan in fans:
                code, data = a.request("POST", "/api/tx", {"hex": fan.serialize().hex()})
                assert code == 200, data
            a.generate(1, addr)
            for r in range(rounds):
                single, batch = spends_of(fans[2 * r]), spends_of(fans[2 * r + 1])
                raws = [t.serialize() for t in batch]
                rates["in-process"].append(in_process(fans[2 * r + 1], raws, backend))
                rates["single"].append(timed_on(a, txs, post_each(a.api_port, [t.serialize().hex() for t in single])))
                rates["batch"].append(timed_on(a, txs, post_batches(a.api_port, [raw.hex() for raw in raws])))
            b.start("--no-discover", "--log-level", "info")
            b.connect(a)
            sync_blocks(procs, timeout=120)
            wait_until(lambda: a.status()["peers"] >= 1, 30, lambda: "peers did not connect")
            last = [t.serialize().hex() for t in spends_of(fans[-1])]
            asyncio.run(post_batches(a.api_port, last))
            wait_until(lambda: b.status()["mempool"]["size"] >= len(last), 120,
                       lambda: f"the peer has {b.status()['mempool']['size']} of {len(last)} transactions")
        finally:
            stop_all(procs)
    # The fastest of the rounds, by wall time and (separately) by CPU time.
    return {name: (max(w for w, _ in values), max(c for _, c in values)) for name, values in rates.items()}


# -- report -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=8)
    ap.add_argument("--blocks", type=int, default=50, help="blocks whose propagation is measured, per round")
    ap.add_argument("--rounds", type=int, default=2, help="propagation runs per source tree, alternating (default 2)")
    ap.add_argument("--baseline", default="main", help="git ref whose nodes are measured beside this tree's ('none': skip)")
    ap.add_argument("--txs", type=int, default=1000, help="transactions per admission measurement (coincurve)")
    ap.add_argument("--ecdsa-txs", type=int, default=150, help="transactions per admission measurement with ecdsa")
    ap.add_argument("--admission-rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-propagation", action="store_true")
    args = ap.parse_args(argv)
    console = Console(width=160)

    trees = {"this tree": ROOT}
    tmp = None
    if not args.skip_propagation and args.baseline != "none":
        tmp = tempfile.mkdtemp(prefix="minichain-baseline-")
        try:
            trees[args.baseline] = export_tree(args.baseline, tmp)
        except (subprocess.CalledProcessError, OSError) as exc:
            console.print(f"[yellow]no baseline: cannot export {args.baseline!r} ({exc}); measuring this tree only")
    prop: dict[str, list[dict]] = {name: [] for name in trees}
    try:
        if not args.skip_propagation:
            for _ in range(args.rounds):
                for name, root in trees.items():
                    prop[name].append(propagation(root, args.nodes, args.blocks, args.seed))
        results = {}
        for backend in keys.BACKENDS:
            n = args.txs if backend == "coincurve" else args.ecdsa_txs
            results[backend] = (n, admission(backend, n, args.admission_rounds))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    if not args.skip_propagation:
        table = Table(title=f"block propagation: {args.nodes} nodes, {prop['this tree'][0]['links']} links, "
                            f"{args.blocks} blocks x {args.rounds} rounds per tree, alternating (seed {args.seed})")
        for col in ("nodes from", "median", "p95", "max", "transfers per block", "median vs baseline",
                    "p95 vs baseline"):
            table.add_column(col, justify="left" if col == "nodes from" else "right")
        summary = {}
        for name, runs in prop.items():
            delays = [d for r in runs for d in r["delays"]]
            summary[name] = (statistics.median(delays), pct(delays, 0.95), max(delays),
                             statistics.mean(r["crossings"] for r in runs))
        base = summary.get(args.baseline)
        for name, (med, p95, mx, cross) in summary.items():
            vs = (f"{med / base[0]:.2f}x", f"{p95 / base[1]:.2f}x") if base and name != args.baseline else ("", "")
            table.add_row(name, f"{med * 1000:.1f} ms", f"{p95 * 1000:.1f} ms", f"{mx * 1000:.1f} ms",
                          f"{cross:.2f}", *vs)
        console.print(table)
        console.print(f"{args.nodes - 1} nodes to reach per block; flooding would cross "
                      f"{2 * prop['this tree'][0]['links']} times. Ratios below 1 are faster than the baseline.")

    table = Table(title=f"transaction admission: API vs Mempool.add in process, same backend "
                        f"(fastest of {args.admission_rounds})")
    for col in ("verify backend", "txs", "Mempool.add in process", "POST /api/tx, 16 at a time", "vs in process",
                f"POST /api/txs, {BATCH} per request", "vs in process", "per CPU second: in process",
                "/api/txs", "vs in process"):
        table.add_column(col, justify="left" if col == "verify backend" else "right")
    for backend, (n, r) in results.items():
        (base, base_cpu), (single, _), (batch, batch_cpu) = r["in-process"], r["single"], r["batch"]
        table.add_row(backend, f"{n:,}", f"{base:,.0f} tx/s", f"{single:,.0f} tx/s", f"{single / base:.2f}x",
                      f"{batch:,.0f} tx/s", f"{batch / base:.2f}x", f"{base_cpu:,.0f}", f"{batch_cpu:,.0f}",
                      f"{batch_cpu / base_cpu:.2f}x")
    console.print(table)
    console.print("Through the API: the hex decoded, the mempool's checks (coins read from LevelDB), the per-tick "
                  "relay (no peer while timed) and the HTTP round trips; in process: Mempool.add alone, of "
                  "transactions decoded beforehand, over a dict of coins. The per-CPU-second columns count the "
                  "node's own CPU time (and this process's for Mempool.add): they do not depend on how busy the "
                  "shared machine is.")


if __name__ == "__main__":
    main()
