"""Network benchmark: 8 real nodes on 127.0.0.1 in a sparse random topology.

    python -m benchmarks.network [--nodes 8] [--blocks 50] [--txs 500] [--seed 1]

Reports
  * block propagation: time from a block's first storage at the node that mined it to
    its storage at the last node (median and p95), from each node's /api/arrivals;
  * block crossings per block: how many times a block's bytes crossed a link, summed
    over nodes; inventory relay should give about one crossing per node (each node
    fetches a block once), however many links there are; flooding would give about one
    per link direction;
  * transactions per second the REST API admits to the mempool, beside the rate of
    Mempool.add on the same transactions in this process (the baseline of the ratio).

Nodes run on regtest and blocks come from ``generate`` on a random node, so the timing
is the relay's, not the proof of work's.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time

import aiohttp
from rich.console import Console
from rich.table import Table

from minichain import params
from minichain.core.keys import PrivateKey
from minichain.core.tx import OutPoint, Transaction, TxIn, TxOut, sign_inputs
from tests.e2e.harness import NodeProcess, sync_blocks, wait_until

P = params.regtest


def random_topology(n: int, rng: random.Random, extra: int) -> list[tuple[int, int]]:
    """A random spanning tree plus ``extra`` random links: connected and sparse."""
    order = list(range(n))
    rng.shuffle(order)
    links = {tuple(sorted((order[i], order[rng.randrange(i)]))) for i in range(1, n)}
    while len(links) < n - 1 + extra:
        a, b = rng.sample(range(n), 2)
        links.add(tuple(sorted((a, b))))
    return sorted(links)


def fan_out(key: PrivateKey, coin: dict, count: int) -> Transaction:
    value = coin["value"] - 10_000
    each = value // count
    outs = tuple(TxOut(each, key.public_key.hash160()) for _ in range(count))
    tx = Transaction(1, (TxIn(OutPoint(bytes.fromhex(coin["txid"])[::-1], coin["vout"])),), outs, 0)
    return sign_inputs(tx, [key])


async def submit_all(port: int, txs: list[Transaction], concurrency: int = 16) -> float:
    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as session:
        async def one(tx: Transaction) -> None:
            async with sem:
                async with session.post(f"http://127.0.0.1:{port}/api/tx", json={"hex": tx.serialize().hex()}) as r:
                    if r.status != 200:
                        raise RuntimeError(f"tx refused: {r.status} {await r.text()}")

        began = time.perf_counter()
        await asyncio.gather(*(one(tx) for tx in txs))
        return time.perf_counter() - began


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def run(nodes: int = 8, blocks: int = 50, txs: int = 500, seed: int = 1, extra_links: int = 3) -> dict:
    rng = random.Random(seed)
    links = random_topology(nodes, rng, extra_links)
    key = PrivateKey(777)
    addr = key.public_key.address(P.address_version)
    with tempfile.TemporaryDirectory(prefix="minichain-bench-") as workdir:
        procs = [NodeProcess(workdir, f"n{i}") for i in range(nodes)]
        try:
            for p in procs:
                p.start("--no-discover")
            for a, b in links:
                procs[b].connect(procs[a])
            wait_until(lambda: all(p.status()["peers"] >= 1 for p in procs), 30, lambda: "peers did not connect")
            time.sleep(1.0)
            # Coins for the transaction test, then the measured blocks.
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
            delays = []
            for h, origin in origins:
                times = [a[h] for a in arrivals]
                delays.append(max(times) - arrivals[origin][h])
            received = sum(a["blocks_received"] - b["blocks_received"] for a, b in zip(after, before))

            # API admission rate.
            coin = next(u for u in procs[0].get(f"/api/address/{addr}")["utxos"] if u["mature"] and u["coinbase"])
            fan = fan_out(key, coin, txs)
            code, data = procs[0].request("POST", "/api/tx", {"hex": fan.serialize().hex()})
            assert code == 200, data
            procs[0].generate(1, addr)
            sync_blocks(procs, timeout=60)
            spends = [sign_inputs(Transaction(1, (TxIn(OutPoint(fan.txid, i)),),
                                              (TxOut(fan.outputs[i].value - 1000, key.public_key.hash160()),), 0), [key])
                      for i in range(txs)]
            api_seconds = asyncio.run(submit_all(procs[0].api_port, spends))
            baseline = _direct_admission(fan, spends, key)
        finally:
            for p in procs:
                try:
                    p.stop()
                except Exception:
                    p.kill()
    return {
        "nodes": nodes, "links": len(links), "blocks": blocks,
        "prop_median": statistics.median(delays), "prop_p95": pct(delays, 0.95), "prop_max": max(delays),
        "crossings_per_block": received / blocks, "flood_crossings_per_block": 2 * len(links),
        "api_tx_per_s": txs / api_seconds, "direct_tx_per_s": baseline, "txs": txs,
    }


def _direct_admission(fan: Transaction, spends: list[Transaction], key: PrivateKey) -> float:
    """Mempool.add on the same spends, in process, over a dict of the fan-out's coins."""
    from minichain.core.validation import Coin
    from minichain.chainstate import Mempool

    coins = {OutPoint(fan.txid, i): Coin(o.value, o.pubkey_hash, 200, False) for i, o in enumerate(fan.outputs)}

    class View:
        def get_coin(self, op):
            return coins.get(op)

    pool = Mempool(P)
    began = time.perf_counter()
    for tx in spends:
        pool.add(tx, View(), 200)
    return len(spends) / (time.perf_counter() - began)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=8)
    ap.add_argument("--blocks", type=int, default=50)
    ap.add_argument("--txs", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    r = run(args.nodes, args.blocks, args.txs, args.seed)
    console = Console()
    table = Table(title=f"minichain network: {r['nodes']} nodes, {r['links']} links, {r['blocks']} blocks (seed {args.seed})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("compared with", justify="right")
    table.add_row("block propagation, median", f"{r['prop_median'] * 1000:.1f} ms", "")
    table.add_row("block propagation, p95", f"{r['prop_p95'] * 1000:.1f} ms", f"max {r['prop_max'] * 1000:.1f} ms")
    table.add_row("block transfers per block", f"{r['crossings_per_block']:.2f}",
                  f"{r['nodes'] - 1} nodes to reach; flooding: {r['flood_crossings_per_block']}")
    table.add_row("API tx admission", f"{r['api_tx_per_s']:.0f} tx/s",
                  f"{r['api_tx_per_s'] / r['direct_tx_per_s']:.2f}x of Mempool.add in process ({r['direct_tx_per_s']:.0f} tx/s)")
    console.print(table)


if __name__ == "__main__":
    main()
