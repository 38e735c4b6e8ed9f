"""Syncing a chain: the chain state's own connect rate beside initial block download
over P2P, on both stores, both verify backends, LevelDB sync on and off, with memory;
and a deep reorg with and without the signature cache.

    python -m benchmarks.chainstate [--blocks 3000] [--txs 20] [--ecdsa-blocks 150]
                                    [--reorg-blocks 300] [--reorg-depth 100] [--repeat 2]
                                    [--skip-ibd] [--skip-reorg]

A regtest chain is generated first (not timed): 101 coinbase-only blocks to mature the
first coinbases, then ``--blocks`` blocks of ``--txs`` signed transactions each (half
spend one coin, half two; each pays two outputs).

**Sync.** Each row connects the chain from genesis, headers first (as a node syncs), in
a process of its own, so that its peak resident memory (RSS) is its own:

* in process: ``ChainState.accept_header`` for every header, then ``accept_block`` for
  every block decoded from its bytes (a node receives bytes), with a cold signature
  cache; on the memory store, and on LevelDB with sync off or on (an fsync per write)
  and a flush window of 1 block (every batch written at once: the node before #19) or
  of 500 (``--flush-blocks``, the node's default: batches kept in memory and written as
  one, see chainstate/state.py);
* IBD over P2P: a node process holding the chain (on LevelDB) and a fresh node that
  ``--connect``s to it, timed from its start until it reaches the tip; with LevelDB as the
  node runs it (sync on, the window: crash-safe) and with ``--store memory``.

The ``ecdsa`` rows (``MINICHAIN_VERIFY=ecdsa``, tens of times slower) connect only the
first ``--ecdsa-blocks`` blocks with transactions. IBD rows are compared with the
in-process row of the same store, settings and backend: the ratio is what the network,
the peer protocol and the node's event loop cost on top of the chain state.

**Reorg.** On a shorter chain (``--reorg-blocks``) and in this process: connect, then a
competing branch of ``--reorg-depth + 1`` blocks from ``--reorg-depth`` blocks below the
tip whose transactions double-spend the main chain's, with an empty ("cold") signature
cache and with every signature checked once before (the cache "warm", as a mempool
leaves it). Each configuration runs ``--repeat`` times and the fastest is shown.

Ratios, not seconds, are the result: the machine is shared and its speed varies.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

from rich.console import Console
from rich.table import Table

from minichain import params as chain_params
from minichain.core import keys
from minichain.core.block import Block, BlockHeader
from minichain.core.genesis import genesis_block
from minichain.core.hashing import merkle_root
from minichain.core.pow import check_proof_of_work
from minichain.core.sigcache import SignatureCache, SignatureChecker
from minichain.core.tx import OutPoint, Transaction, TxIn, TxOut, make_coinbase, sign_inputs
from minichain.core.validation import block_subsidy
from minichain.store import MemoryStore
from minichain.chainstate import BlockStatus, ChainState
from minichain.chainstate.state import FlushPolicy
from minichain.store.leveldb import LevelDBStore
from tests.e2e.harness import NodeProcess, peak_rss, wait_until

P = chain_params.regtest
NOW = 2_000_000_000
FEE = 1_000


class TimedChecker(SignatureChecker):
    """Counts the seconds spent inside the curve library."""

    __slots__ = ("seconds",)

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.seconds = 0.0

    def _verify(self, pubkey: bytes, signature: bytes, digest: bytes) -> bool:
        t = time.perf_counter()
        ok = super()._verify(pubkey, signature, digest)
        self.seconds += time.perf_counter() - t
        return ok


class Generator:
    """Builds the chain: a FIFO pool of coins, each spent by the next transactions."""

    def __init__(self, n_keys: int = 16, sign_backend: str = "ecdsa") -> None:
        self.keys = [keys.PrivateKey(5000 + i) for i in range(n_keys)]
        self.by_hash = {k.public_key.hash160(): k for k in self.keys}
        self.sign_backend = sign_backend
        self.k = 0

    def pkh(self) -> bytes:
        self.k += 1
        return self.keys[self.k % len(self.keys)].public_key.hash160()

    def block(self, parent: Block, height: int, txs: list[Transaction], fees: int, cb_outputs: int, tag: int) -> Block:
        value = block_subsidy(height, P) + fees
        share = value // cb_outputs
        outs = [TxOut(share + (value - share * cb_outputs if i == 0 else 0), self.pkh()) for i in range(cb_outputs)]
        cb = make_coinbase(height, outs, extra_nonce=tag)
        all_txs = [cb] + txs
        root = merkle_root([t.txid for t in all_txs])[0]
        header = dataclasses.replace(parent.header, prev_hash=parent.hash, merkle_root=root, time=parent.header.time + 600, nonce=0)
        while not check_proof_of_work(header, P):
            header = header.with_nonce(header.nonce + 1)
        return Block(header, tuple(all_txs))

    def spend(self, pool: list, n_in: int) -> tuple[Transaction, int]:
        coins = [pool.pop(0) for _ in range(n_in)]
        total = sum(out.value for _, out in coins)
        value = total - FEE
        half = value // 2
        tx = Transaction(1, tuple(TxIn(op) for op, _ in coins), (TxOut(half, self.pkh()), TxOut(value - half, self.pkh())))
        tx = sign_inputs(tx, [self.by_hash[out.pubkey_hash] for _, out in coins], backend=self.sign_backend)
        return tx, FEE

    def chain(self, parent: Block, start_height: int, n: int, txs: int, pool: list, mature: list, tag: int) -> list[Block]:
        """``n`` blocks on ``parent``. ``pool``: spendable coins; ``mature``: (height, coins) not yet spendable."""
        out = []
        for height in range(start_height, start_height + n):
            while mature and height - mature[0][0] >= P.coinbase_maturity:
                pool.extend(mature.pop(0)[1])
            block_txs, fees = [], 0
            for i in range(txs):
                n_in = 2 if i % 2 else 1
                if len(pool) < n_in:
                    break
                tx, fee = self.spend(pool, n_in)
                block_txs.append(tx)
                fees += fee
            blk = self.block(parent, height, block_txs, fees, 2, tag)
            for tx in block_txs:
                pool.extend((OutPoint(tx.txid, i), o) for i, o in enumerate(tx.outputs))
            mature.append((height, [(OutPoint(blk.transactions[0].txid, i), o) for i, o in enumerate(blk.transactions[0].outputs)]))
            out.append(blk)
            parent = blk
        return out


def generate(n_blocks: int, n_txs: int, depth: int, sign_backend: str):
    gen = Generator(sign_backend=sign_backend)
    genesis = genesis_block(P)
    pool: list = []
    mature: list = []
    # Setup: coinbases with many outputs, so there is enough to spend once they mature.
    setup = []
    parent = genesis
    for height in range(1, P.coinbase_maturity + 2):
        blk = gen.block(parent, height, [], 0, max(2, n_txs), 0)
        mature.append((height, [(OutPoint(blk.transactions[0].txid, i), o) for i, o in enumerate(blk.transactions[0].outputs)]))
        setup.append(blk)
        parent = blk
    start = len(setup) + 1
    depth = min(depth, n_blocks - 1)
    fork_at = n_blocks - depth  # main[fork_at - 1] is the last common block
    main = gen.chain(parent, start, fork_at, n_txs, pool, mature, 1)
    side_pool, side_mature = list(pool), [(h, list(c)) for h, c in mature]
    main += gen.chain(main[-1], start + fork_at, n_blocks - fork_at, n_txs, pool, mature, 1)
    # The competing branch spends the same coins the main chain's last blocks spend.
    gen.k += 7  # pay different keys: different transactions
    side = gen.chain(main[fork_at - 1], start + fork_at, depth + 1, n_txs, side_pool, side_mature, 2)
    return setup, main, side


@dataclasses.dataclass
class Row:
    scenario: str
    store: str
    cache: str
    blocks: int
    txs: int
    seconds: float
    verified: int
    hits: int
    sig_seconds: float


def warm(cache: SignatureCache, blocks: list[Block], backend: str) -> None:
    """What a mempool does on admission: check each input's signature once, with the cache."""
    checker = SignatureChecker(cache, backend=backend)
    for blk in blocks:
        for tx in blk.transactions[1:]:
            for i, txin in enumerate(tx.inputs):
                assert checker.check(txin.pubkey, txin.signature, tx.signature_digest(i))


def run_reorg(store_kind: str, cached: bool, setup, main, side, backend: str, rows: list[Row]) -> None:
    tmp = tempfile.mkdtemp(prefix="minichain-bench-")
    store = MemoryStore() if store_kind == "memory" else LevelDBStore(f"{tmp}/db")
    cache = SignatureCache(max_entries=10_000_000) if cached else None
    checker = TimedChecker(cache, backend=backend)
    state = ChainState(store, P, checker=checker)
    try:
        for blk in setup:
            assert state.accept_block(blk, NOW).status is BlockStatus.CONNECTED
        label = "warm" if cached else "cold"
        for scenario, blocks in (("connect", main), ("reorg", side)):
            if cache is not None:
                warm(cache, blocks, backend)
            checker.verified = checker.cache_hits = 0
            checker.seconds = 0.0
            t = time.perf_counter()
            results = [state.accept_block(blk, NOW) for blk in blocks]
            seconds = time.perf_counter() - t
            assert state.tip.hash == blocks[-1].hash, results[-1]
            if scenario == "connect":
                n_blocks = len(blocks)
                n_txs = sum(len(b.transactions) for b in blocks)
            else:
                act = results[-1].activation
                n_blocks = len(act.disconnected) + len(act.connected)
                n_txs = sum(len(b.transactions) for b in act.disconnected + act.connected)
            rows.append(Row(scenario, store_kind, label, n_blocks, n_txs, seconds, checker.verified, checker.cache_hits, checker.seconds))
    finally:
        state.close()
        shutil.rmtree(tmp, ignore_errors=True)


def reorg_table(console: Console, args, backend: str, sign_backend: str) -> None:
    t = time.perf_counter()
    setup, main_chain, side = generate(args.reorg_blocks, args.txs, args.reorg_depth, sign_backend)
    console.print(f"reorg: generated {len(setup)} setup + {len(main_chain)} + {len(side)} side blocks "
                  f"in {time.perf_counter() - t:.1f}s")
    gc.collect()
    gc.freeze()
    rows: list[Row] = []
    for _ in range(max(1, args.repeat)):
        for store_kind in ("memory", "leveldb"):
            for cached in (False, True):
                run_reorg(store_kind, cached, setup, main_chain, side, backend, rows)
                gc.collect()
    gc.unfreeze()
    best: dict[tuple[str, str, str], Row] = {}
    for r in rows:
        key = (r.scenario, r.store, r.cache)
        if key not in best or r.seconds < best[key].seconds:
            best[key] = r
    rows = list(best.values())
    title = (f"connect and reorg with the signature cache: {args.reorg_blocks} blocks x {args.txs} txs, reorg depth "
             f"{min(args.reorg_depth, args.reorg_blocks - 1)}; verify backend {backend}; LevelDB sync off, every batch "
             f"written; fastest of {args.repeat}")
    table = Table(title=title)
    for col, just in [("scenario", "left"), ("store", "left"), ("sig cache", "left"), ("blocks", "right"),
                      ("txs", "right"), ("seconds", "right"), ("blocks/s", "right"), ("tx/s", "right"),
                      ("sig checks/s", "right"), ("verified", "right"), ("cache hits", "right"),
                      ("time in sig verify", "right"), ("vs memory/cold", "right")]:
        table.add_column(col, justify=just)
    baseline = {r.scenario: r.seconds for r in rows if r.store == "memory" and r.cache == "cold"}
    for r in rows:
        checks = r.verified + r.hits
        ratio = f"{baseline[r.scenario] / r.seconds:.2f}x" if r.scenario in baseline else ""
        table.add_row(r.scenario, r.store, r.cache, f"{r.blocks:,}", f"{r.txs:,}", f"{r.seconds:.2f}",
                      f"{r.blocks / r.seconds:,.0f}", f"{r.txs / r.seconds:,.0f}", f"{checks / r.seconds:,.0f}",
                      f"{r.verified:,}", f"{r.hits:,}", f"{100 * r.sig_seconds / r.seconds:.0f}%", ratio)
    console.print(table)


# -- sync: in process and over P2P ---------------------------------------------------------------


@dataclasses.dataclass
class SyncRow:
    how: str          # "in process" or "IBD over P2P"
    store: str        # "memory" or "leveldb"
    sync: bool        # LevelDB fsync per write
    window: int       # flush window in blocks (1: every batch written at once)
    backend: str
    blocks: int
    seconds: float
    rss: int          # peak RSS of the process that did the work, bytes

    @property
    def key(self) -> tuple:
        return (self.store, self.sync, self.window, self.backend, self.blocks)


def write_blocks(path: str, blocks: list[Block]) -> None:
    with open(path, "wb") as f:
        for blk in blocks:
            raw = blk.serialize()
            f.write(struct.pack("<I", len(raw)) + raw)


def read_raw_blocks(path: str) -> list[bytes]:
    data = open(path, "rb").read()
    pos, out = 0, []
    while pos < len(data):
        (n,) = struct.unpack_from("<I", data, pos)
        out.append(data[pos + 4:pos + 4 + n])
        pos += 4 + n
    return out


def connect_worker(spec: dict) -> dict:
    """In a process of its own: every header (as a syncing node learns them all), then
    the first ``spec['blocks']`` blocks."""
    raws = read_raw_blocks(spec["blockfile"])
    if spec["store"] == "memory":
        store = MemoryStore()
    else:
        os.makedirs(spec["datadir"], exist_ok=True)
        store = LevelDBStore(os.path.join(spec["datadir"], "chain"), sync=spec["sync"])
    checker = SignatureChecker(SignatureCache(), backend=spec["backend"])
    began = time.perf_counter()
    state = ChainState(store, P, checker=checker, flush=FlushPolicy(blocks=spec["window"]))
    for raw in raws:
        assert state.accept_header(BlockHeader.deserialize(raw[:80]), NOW).status is BlockStatus.HEADER
    for raw in raws[:spec["blocks"]]:
        state.accept_block(Block.deserialize(raw), NOW)
    state.close()  # what is pending is written: the sync is on disk
    seconds = time.perf_counter() - began
    assert state.height == spec["blocks"], (state.height, spec["blocks"])
    return {"seconds": seconds, "rss": peak_rss(), "verified": checker.verified}


def in_process(blockfile: str, store: str, sync: bool, window: int, backend: str, blocks: int,
               datadir: str | None = None) -> SyncRow:
    spec = {"blockfile": blockfile, "store": store, "sync": sync, "window": window, "backend": backend,
            "blocks": blocks, "datadir": datadir}
    out = subprocess.run([sys.executable, "-m", "benchmarks.chainstate", "--worker", json.dumps(spec)],
                         check=True, capture_output=True, text=True, cwd=ROOT)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return SyncRow("in process", store, sync, window, backend, blocks, result["seconds"], result["rss"])


def ibd(workdir: str, seed_datadir: str, name: str, store: str, backend: str, blocks: int) -> SyncRow:
    """A fresh node syncs from a node holding the chain, until it has ``blocks`` blocks."""
    source = NodeProcess(workdir, "source")
    source.datadir = seed_datadir
    node = NodeProcess(workdir, name, env={keys.VERIFY_ENV: backend})
    try:
        source.start("--no-discover", timeout=120)
        began = time.perf_counter()
        node.start("--no-discover", "--log-level", "info", "--store", store, "--connect", source.address)
        wait_until(lambda: node.status()["height"] >= blocks, 3600, lambda: f"{name} is at {node.status()['height']}",
                   interval=0.05)
        seconds = time.perf_counter() - began
        rss = node.peak_rss()
        said = "coincurve" if backend == "coincurve" else "python-ecdsa"
        assert f"verifying signatures with {said}" in node.log_text(), f"{name} did not verify with {backend}"
    finally:
        for p in (node, source):
            try:
                p.stop(timeout=120)
            except Exception:  # noqa: BLE001 - clean up whatever state it is in
                p.kill()
    return SyncRow("IBD over P2P", store, True if store == "leveldb" else False, NODE_WINDOW if store == "leveldb" else 1,
                   backend, blocks, seconds, rss)


NODE_WINDOW = 500  # the node's flush window (chainstate.state.NODE_FLUSH)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sync_table(console: Console, args, sign_backend: str) -> list[SyncRow]:
    t = time.perf_counter()
    setup, main_chain, _ = generate(args.blocks, args.txs, 0, sign_backend)
    chain = setup + main_chain
    console.print(f"sync: generated {len(setup)} setup + {len(main_chain)} blocks with {args.txs} transactions each "
                  f"in {time.perf_counter() - t:.1f}s")
    workdir = tempfile.mkdtemp(prefix="minichain-bench-")
    rows: list[SyncRow] = []
    try:
        blockfile = os.path.join(workdir, "blocks.bin")
        write_blocks(blockfile, chain)
        del setup, main_chain
        full, short = len(chain), len(chain) - args.blocks + min(args.ecdsa_blocks, args.blocks)
        # ecdsa syncs a prefix, unless it is the only backend installed.
        backends = [(b, full if b == "coincurve" or len(keys.BACKENDS) == 1 else short) for b in keys.BACKENDS]
        seed = os.path.join(workdir, "seed")
        for _ in range(max(1, args.repeat)):  # rounds of every row, interleaved; the fastest of each is kept
            for backend, n in backends:
                rows.append(in_process(blockfile, "memory", False, 1, backend, n))
                for sync in (False, True):
                    for window in (1, NODE_WINDOW):
                        if backend == "ecdsa" and (sync, window) != (True, NODE_WINDOW):
                            continue  # ecdsa: the node's own settings only (signatures dominate)
                        keep = n == full and sync and window == NODE_WINDOW and not os.path.isdir(seed)
                        rows.append(in_process(blockfile, "leveldb", sync, window, backend, n,
                                               datadir=seed if keep else os.path.join(workdir, f"db{len(rows)}")))
            if not args.skip_ibd:
                for backend, n in backends:
                    for store in ("leveldb", "memory"):
                        if backend == "ecdsa" and store == "memory":
                            continue
                        rows.append(ibd(workdir, seed, f"ibd-{store}-{backend}-{len(rows)}", store, backend, n))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    table = Table(title=f"sync from genesis, headers first: {args.blocks:,} blocks x {args.txs} txs after "
                        f"{P.coinbase_maturity + 1} coinbase-only blocks (ecdsa: the first {args.ecdsa_blocks}); "
                        f"fastest of {args.repeat}")
    for col in ("how", "store", "LevelDB sync", "flush window", "verify", "blocks", "seconds", "blocks/s",
                "vs in process", "peak RSS"):
        table.add_column(col, justify="left" if col in ("how", "store", "verify") else "right")
    fastest: dict[tuple, SyncRow] = {}
    for r in rows:
        k = (r.how,) + r.key
        if k not in fastest or r.seconds < fastest[k].seconds:
            fastest[k] = r
    rows = list(fastest.values())
    base = {r.key: r for r in rows if r.how == "in process"}
    for r in rows:
        ref = base.get(r.key) if r.how != "in process" else None
        table.add_row(r.how, r.store, ("on" if r.sync else "off") if r.store == "leveldb" else "",
                      f"{r.window}" if r.store == "leveldb" else "", r.backend, f"{r.blocks:,}", f"{r.seconds:.1f}",
                      f"{r.blocks / r.seconds:,.1f}", f"{ref.seconds / r.seconds:.2f}x" if ref else "",
                      f"{r.rss / 2**20:,.0f} MB")
    console.print(table)
    console.print("The node syncs with LevelDB sync on and the flush window (crash-safe: a kill loses at most the "
                  "unflushed blocks, never the store's consistency); in-process rows run in a fresh process each, "
                  "so peak RSS is theirs alone.")
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blocks", type=int, default=3000, help="blocks with transactions to sync (default 3000)")
    ap.add_argument("--txs", type=int, default=20, help="transactions per block besides the coinbase (default 20)")
    ap.add_argument("--ecdsa-blocks", type=int, default=150, help="blocks the ecdsa rows sync (default 150)")
    ap.add_argument("--reorg-blocks", type=int, default=300, help="chain length of the reorg table (default 300)")
    ap.add_argument("--reorg-depth", type=int, default=100, help="blocks the reorg disconnects (default 100)")
    ap.add_argument("--backend", choices=keys.BACKENDS, default=keys.VERIFY_BACKEND,
                    help="verify backend of the reorg table")
    ap.add_argument("--repeat", type=int, default=2, help="runs of every row; the fastest is shown (default 2)")
    ap.add_argument("--skip-ibd", action="store_true", help="no P2P rows")
    ap.add_argument("--skip-reorg", action="store_true", help="no reorg table")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(connect_worker(json.loads(args.worker))))
        return
    console = Console(width=200)
    sign_backend = "coincurve" if "coincurve" in keys.BACKENDS else "ecdsa"
    if args.blocks > 0:
        sync_table(console, args, sign_backend)
    if not args.skip_reorg:
        reorg_table(console, args, args.backend, sign_backend)


if __name__ == "__main__":
    main()
