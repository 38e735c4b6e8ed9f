"""A seeded nemesis soak on four real node processes (issue #18).

Four nodes in a ring mine and pass payments while a seeded schedule partitions them,
SIGKILLs and restarts one, SIGSTOPs and SIGCONTs another, and a hostile peer runs the
floods of tests/e2e/test_peer_attacks_e2e.py against them all. At the end:

* every node converges to one tip, and each node's stored chain state verifies
  (``ChainState.verify``: UTXO set recomputed from the blocks, undo data, index);
* no payment that was acknowledged at >= K confirmations was lost, unless some node
  logged a reorganisation at least K blocks deep;
* every node's resident memory stayed under RSS_BOUND_MB throughout.

CI runs it for 75 seconds of faults; locally ``pytest tests/e2e/test_soak_e2e.py
--soak-duration 1800 --soak-seed 7`` runs half an hour (the seed picks the schedule; the
summary line prints it).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import threading
import time

import pytest

from minichain import params
from minichain.core.keys import PrivateKey
from minichain.node import messages as m
from tests.e2e.attacker import GENESIS, Peer, low_work_branch, rss_mb, run
from tests.e2e.harness import NodeError, NodeProcess, sync_blocks, tips, wait_until
from tests.e2e.test_node_e2e import pay, submit

pytestmark = pytest.mark.slow

P = params.regtest
MINER = PrivateKey(4242)
MINER_ADDR = MINER.public_key.address(P.address_version)
BOB = PrivateKey(4343)
K = 3                      # confirmations at which a payment counts as acknowledged
RSS_BOUND_MB = 350         # per node, throughout


class Hostile(threading.Thread):
    """Runs the floods, one after another, against random nodes, with fresh identities."""

    def __init__(self, nodes: list[NodeProcess], rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.nodes = nodes
        self.rng = rng
        self.stop = threading.Event()
        self.rounds = 0
        self.port = 45000
        self.branch = low_work_branch(GENESIS.header, m.MAX_HEADERS, 99)

    def run(self) -> None:
        while not self.stop.is_set():
            node = self.rng.choice(self.nodes)
            kind = self.rng.choice(["inv", "getdata", "headers", "addr", "leech"])
            self.port += 1
            try:
                run(asyncio.wait_for(self.attack(node, kind, self.port), 20))
            except Exception:  # noqa: BLE001 - the node may be down, paused or partitioned
                pass
            self.rounds += 1
            self.stop.wait(0.5)

    async def attack(self, node: NodeProcess, kind: str, port: int) -> None:
        if not node.running:
            return
        async with Peer(node, port, read=kind != "leech") as p:
            for i in range(40):
                if kind == "inv":
                    msg = m.Inv([(m.INV_TX, os.urandom(32)) for _ in range(1000)])
                elif kind == "getdata":
                    msg = m.GetData([(m.INV_BLOCK, os.urandom(32)) for _ in range(1000)])
                elif kind == "headers":
                    msg = m.Headers(self.branch)
                elif kind == "addr":
                    msg = m.Addr([(f"10.{i}.{j // 250}.{j % 250}", 8333) for j in range(1000)])
                else:
                    msg = m.GetData([(m.INV_BLOCK, GENESIS.hash)] * 1 + [(m.INV_TX, os.urandom(32))])
                if not await p.send(msg) or self.stop.is_set():
                    break
                await asyncio.sleep(0.01)


def test_nemesis_soak_four_nodes_mining_paying_under_faults_and_a_hostile_peer(network, request):
    duration = request.config.getoption("--soak-duration") or float(os.environ.get("MINICHAIN_SOAK_SECONDS", 75))
    seed = request.config.getoption("--soak-seed") or 1
    rng = random.Random(seed)
    names = ["n0", "n1", "n2", "n3"]
    nodes: list[NodeProcess] = []
    links: dict[str, list[str]] = {"n0": [], "n1": ["n0"], "n2": ["n1"], "n3": ["n2", "n0"]}
    for name in names:
        node = network.add(name, start=False)
        nodes.append(node)
    by_name = dict(zip(names, nodes))

    def start(node: NodeProcess) -> None:
        args = []
        for other in links[node.name]:
            args += ["--connect", by_name[other].address]
        node.start(*args, "--ping-interval", "2")

    for node in nodes:
        start(node)
    nodes[0].generate(P.coinbase_maturity + 20, MINER_ADDR)
    sync_blocks(nodes, timeout=120)

    payments: dict[str, dict] = {}       # txid -> {"node", "acked"}
    spent: set[tuple[str, int]] = set()
    peak = {n.name: rss_mb(n) for n in nodes}
    paused: NodeProcess | None = None
    partitioned = False
    hostile = Hostile(nodes, random.Random(seed + 1))
    hostile.start()
    faults = {"kill": 0, "pause": 0, "partition": 0, "payments": 0, "blocks": 0}
    began = time.monotonic()
    try:
        while time.monotonic() - began < duration:
            up = [n for n in nodes if n.running and n is not paused]
            action = rng.choices(["mine", "pay", "partition", "kill", "pause", "confirm"],
                                 weights=[4, 4, 1, 1, 1, 3])[0]
            try:
                if action == "mine":
                    rng.choice(up).generate(rng.randint(1, 2), MINER_ADDR)
                    faults["blocks"] += 1
                elif action == "pay":
                    node = rng.choice(up)
                    tx = pay(node, MINER, BOB, rng.randint(1, 5) * 10**6, avoid=spent)
                    submit(node, tx)
                    spent.update((i.prevout.txid[::-1].hex(), i.prevout.index) for i in tx.inputs)
                    payments[tx.txid_hex()] = {"node": node, "acked": False}
                    faults["payments"] += 1
                elif action == "partition":
                    left, right = nodes[:2], nodes[2:]
                    for group, others in ((left, right), (right, left)):
                        for n in group:
                            if n.running and n is not paused:
                                n.control("partition", {"deny": [] if partitioned else [o.address for o in others]})
                    partitioned = not partitioned
                    faults["partition"] += 1
                elif action == "kill":
                    victim = rng.choice(up)
                    victim.kill()
                    time.sleep(rng.uniform(0.5, 2))
                    start(victim)
                    if partitioned:
                        others = nodes[2:] if victim in nodes[:2] else nodes[:2]
                        victim.control("partition", {"deny": [o.address for o in others]})
                    faults["kill"] += 1
                elif action == "pause" and paused is None:
                    paused = rng.choice(up)
                    paused.proc.send_signal(signal.SIGSTOP)
                    faults["pause"] += 1
                elif action == "confirm":
                    for txid, p in payments.items():
                        if not p["acked"] and p["node"].running and p["node"] is not paused:
                            info = p["node"].get(f"/api/tx/{txid}")
                            p["acked"] = info.get("confirmations", 0) >= K
                if paused is not None and rng.random() < 0.3:
                    paused.proc.send_signal(signal.SIGCONT)
                    paused = None
            except (NodeError, AssertionError, OSError):
                pass                      # a node down or paused mid-step: the schedule goes on
            for n in nodes:
                if n.running:
                    peak[n.name] = max(peak[n.name], rss_mb(n))
            time.sleep(rng.uniform(0.1, 0.6))
    finally:
        hostile.stop.set()
        if paused is not None:
            paused.proc.send_signal(signal.SIGCONT)
        hostile.join(60)

    # Heal everything, then one more block: all must converge on one tip.
    for n in nodes:
        if not n.running:
            start(n)
        n.control("partition", {"deny": []})
    nodes[0].generate(1, MINER_ADDR)
    tip = sync_blocks(nodes, timeout=180)
    for n in nodes:
        peak[n.name] = max(peak[n.name], rss_mb(n))

    # No acknowledged payment lost, unless a reorganisation at least K deep was logged.
    deepest = 0
    for n in nodes:
        for found in re.findall(r"reorganised: (\d+) blocks disconnected", n.log_text()):
            deepest = max(deepest, int(found))
    lost = [t for t, p in payments.items() if p["acked"] and nodes[0].get(f"/api/tx/{t}").get("confirmations", 0) < 1]
    assert not lost or deepest >= K, f"acknowledged payments lost without a {K}-deep reorg: {lost}"

    for n in nodes:
        n.stop()
    from minichain.chainstate import ChainState
    from minichain.store.leveldb import LevelDBStore

    for n in nodes:
        state = ChainState(LevelDBStore(os.path.join(n.datadir, "chain")), P)
        report = state.verify()
        height, top = state.height, state.tip.hash[::-1].hex()
        state.close()
        assert report.ok, f"{n.name}: {report}"
        assert top == tip, f"{n.name} ended on {top} at {height}"
    acked = sum(p["acked"] for p in payments.values())
    print(f"\nsoak seed={seed} duration={duration:.0f}s faults={faults} hostile rounds={hostile.rounds} "
          f"payments={len(payments)} acknowledged={acked} lost={len(lost)} deepest reorg={deepest} "
          f"peak RSS MB={ {k: round(v) for k, v in peak.items()} }")
    assert max(peak.values()) < RSS_BOUND_MB, peak
