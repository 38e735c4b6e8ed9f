"""The local testnet as a user runs it: ``minichain testnet ...`` commands as real
processes, starting real node processes that outlive them.

Named after their topology and faults: a line of four split 2|2 on regtest (blocks
mined on demand, so the outcome is exact) and on testnet (live miners with the kernel,
so it is the real race); the double-spend demo both ways round; and the lifecycle
errors -- up twice, a node killed by hand, a port taken, a node that cannot start.

Every test stops its nodes at the end, even when it fails: the fixture runs
``down`` and then kills (by pid) any process whose command line names the test's
directory.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from minichain.testnet import network as tn
from minichain.testnet import process
from minichain.testnet.state import load
from tests.e2e.harness import ROOT

pytestmark = pytest.mark.slow


def processes_under(path: str) -> list[int]:
    """Pids of live processes whose command line mentions ``path`` (our nodes' data directories)."""
    found = []
    needle = os.fsencode(path)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if needle in f.read() and process.alive(int(entry)):
                    found.append(int(entry))
        except OSError:
            continue
    return found


@pytest.fixture
def work(tmp_path):
    yield tmp_path
    for state_file in tmp_path.rglob("testnet.json"):
        try:
            tn.down(str(state_file.parent))
        except Exception:  # noqa: BLE001 - cleaning up whatever state the test left
            pass
    for pid in processes_under(str(tmp_path)):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


class Cli:
    def __init__(self, cwd) -> None:
        self.cwd = str(cwd)
        self.env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.env.pop("MINICHAIN_TESTNET_DIR", None)

    def __call__(self, *args, code: int = 0, timeout: float = 120) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "minichain", "testnet", *map(str, args)], cwd=self.cwd,
                              env=self.env, capture_output=True, text=True, timeout=timeout)
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode == code, (f"testnet {' '.join(map(str, args))}: exit {proc.returncode} != {code}\n"
                                         f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc


def clients_of(directory):
    state = load(str(directory))
    return state, [tn.client_for(r) for r in state.nodes]


def wait_for(predicate, timeout: float, what: str, clients=None, records=None) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        try:
            if predicate():
                return time.monotonic() - began
        except tn.NodeError:
            pass
        time.sleep(0.1)
    tips = ""
    if clients:
        tips = "\n" + tn.describe_tips(records, tn.poll_all(clients, lambda c: c.status()))
    raise AssertionError(f"timed out after {timeout}s: {what}{tips}")


def tip(c) -> str:
    return c.status()["tip"]


def fork_height(a, b) -> int:
    """The height of the last block two nodes' chains share."""
    h = min(a.status()["height"], b.status()["height"])
    while a.block(h, full=False)["hash"] != b.block(h, full=False)["hash"]:
        h -= 1
    return h


# -- partition and heal -----------------------------------------------------------------------


def test_line4_regtest_split_2_2_each_side_grows_its_own_branch_heal_converges_on_the_longer(work):
    cli, net = Cli(work), work / "net"
    up = json.loads(cli("up", "--nodes", 4, "--network", "regtest", "--miners", 2, "--dir", net, "--json").stdout)
    assert [n["peers"] for n in up["nodes"]] == [1, 2, 2, 1] and not up["tips_differ"]
    state, c = clients_of(net)
    assert [r.miner for r in state.nodes] == [True, False, True, False]
    a_addr, b_addr = state.nodes[0].address, state.nodes[2].address
    for r in (state.nodes[0], state.nodes[2]):
        assert oct(os.stat(r.wallet).st_mode & 0o777) == "0o600"

    assert "node0,node1 | node2,node3" in cli("partition", "0,1", "2,3", "--dir", net).stdout
    wait_for(lambda: [x.status()["peers"] for x in c] == [1, 1, 1, 1], 20, "the 1-2 link to drop", c, state.nodes)

    c[0].generate(2, a_addr)
    c[2].generate(4, b_addr)
    wait_for(lambda: tip(c[1]) == tip(c[0]) and tip(c[3]) == tip(c[2]) and c[3].status()["height"] == 4, 20,
             "each side to share its own branch", c, state.nodes)
    side_a, side_b = tip(c[0]), tip(c[2])
    assert side_a != side_b and c[0].status()["height"] == 2

    status = cli("status", "--dir", net)
    assert "tips differ (2 branches)" in status.stderr and "partitioned: 0,1 | 2,3" in status.stdout
    data = json.loads(cli("status", "--json", "--dir", net).stdout)
    assert data["tips_differ"] and data["partition"] == [[0, 1], [2, 3]]
    assert sorted(map(sorted, data["tips"].values())) == [["node0", "node1"], ["node2", "node3"]]

    healed = cli("heal", "--wait", "--timeout", 30, "--dir", net).stdout
    assert "every node at height 4" in healed
    assert {tip(x) for x in c} == {side_b}
    for x in c[:2]:  # side A's blocks are off the chain of the nodes that had them
        assert x.block(side_a, full=False)["active"] is False
    assert [x.status()["peers"] for x in c] == [1, 2, 2, 1]
    assert not json.loads(cli("status", "--json", "--dir", net).stdout)["tips_differ"]
    assert "stopped 4 node(s)" in cli("down", "--dir", net).stdout
    assert processes_under(str(work)) == []


def test_line4_testnet_live_miners_on_both_sides_fork_and_converge_after_heal(work):
    """The real race: the kernel hashing in two miners (nodes 0 and 2), one on each side."""
    cli, net = Cli(work), work / "net"
    began = time.monotonic()
    out = cli("up", "--nodes", 4, "--miners", 2, "--dir", net, "--timeout", 60).stdout
    up_seconds = time.monotonic() - began
    assert "4 node(s) up and synced" in out
    state, c = clients_of(net)
    assert all(x.status()["mining"] for x in (c[0], c[2])) and not c[1].status()["mining"]

    cli("partition", "0,1", "2,3", "--dir", net)
    wait_for(lambda: [x.status()["peers"] for x in c] == [1, 1, 1, 1], 20, "the 1-2 link to drop", c, state.nodes)
    cut = max(c[0].status()["height"], c[2].status()["height"])  # no block crosses the cut after this

    def both_sides_grew() -> bool:
        s = [x.status() for x in c]
        return (s[0]["tip"] == s[1]["tip"] and s[2]["tip"] == s[3]["tip"] and s[0]["tip"] != s[2]["tip"]
                and min(s[0]["height"], s[2]["height"]) >= cut + 1)

    # Usually a second or two (difficulty is still climbing when 'up' returns); at the
    # full 5-second spacing each half, with half the hash power, needs ~10 s a block.
    split_seconds = wait_for(both_sides_grew, 45, "both sides to mine a block of their own", c, state.nodes)
    fork = fork_height(c[0], c[2])
    assert fork <= cut and c[0].block(cut + 1, full=False)["hash"] != c[2].block(cut + 1, full=False)["hash"]

    began = time.monotonic()
    healed = cli("heal", "--wait", "--timeout", 45, "--dir", net).stdout
    heal_seconds = time.monotonic() - began
    assert "every node at height" in healed
    wait_for(lambda: len({tip(x) for x in c}) == 1, 30, "one tip after the heal", c, state.nodes)
    print(f"\nup {up_seconds:.1f}s; fork at height {fork}; both sides grew in {split_seconds:.1f}s; "
          f"converged {heal_seconds:.1f}s after 'heal': {healed.strip()}")
    cli("down", "--dir", net)
    assert processes_under(str(work)) == []


# -- the demo ---------------------------------------------------------------------------------


def test_demo_double_spend_regtest_the_attackers_longer_branch_erases_the_payment_on_every_node(work):
    cli, net = Cli(work), work / "demo"
    result = json.loads(cli("demo", "double-spend", "--network", "regtest", "-z", 2, "--attacker-blocks", 3,
                            "--dir", net, "--keep", "--json").stdout)
    assert result["survivor"] == "self-payment" and result["winner"] == "attacker"
    assert result["merchant_confirmations"] == 2
    assert result["merchant_balance_before"] == 10 * 10**8 and result["merchant_balance_after"] == 0
    assert result["orphaned_blocks"] == 2 and result["reorg_depth"] == 2
    assert result["final_height"] == result["fork_height"] + 3

    # Check the summary against the nodes themselves (kept running by --keep).
    state, c = clients_of(net)
    assert [r.name for r in state.nodes] == ["merchant", "honest-miner", "attacker", "attacker-miner"]
    assert {tip(x) for x in c} == {result["final_tip"]}
    pay, self_pay = result["pay"]["txid"], result["self_pay"]["txid"]
    for x in c:
        with pytest.raises(tn.NodeError, match="unknown transaction"):
            x.tx(pay)
        assert not any(t["txid"] == pay for t in x.mempool()["transactions"])
        found = x.tx(self_pay)
        assert not found["in_mempool"] and found["confirmations"] == 3
    txin = c[0].tx(self_pay)["inputs"][0]
    assert f"{txin['txid']}:{txin['vout']}" == result["coin"]
    cli("down", "--dir", net)
    assert processes_under(str(work)) == []


def test_demo_double_spend_testnet_with_fewer_attacker_blocks_the_payment_survives(work):
    cli, net = Cli(work), work / "demo"
    out = cli("demo", "double-spend", "-z", 3, "--attacker-blocks", 1, "--dir", net).stdout
    assert "survived" in out and "(the merchant's payment)" in out.split("survived", 1)[1].splitlines()[0]
    summary = out[out.index("Summary"):]
    assert re.search(r"orphaned blocks\s*\S\s*1\s", summary)
    assert "the merchant's branch" in summary and "1 block(s) disconnected on the attacker's side" in summary
    # Step 9 lists every node: PAY in a block, SELF gone, on all four.
    step9 = out[out.index("9."):out.index("Summary")]
    pay_line = next(line for line in step9.splitlines() if "PAY" in line)
    self_line = next(line for line in step9.splitlines() if "SELF" in line)
    assert pay_line.count("(3 conf)") == 4 and self_line.count("gone") == 4
    assert processes_under(str(work)) == []  # the demo stopped its network
    assert not load(str(net)).running


# -- lifecycle --------------------------------------------------------------------------------


def test_up_twice_says_running_and_down_after_a_node_was_killed_stops_the_rest(work):
    cli = Cli(work)  # the default directory: ./testnet-data
    cli("up", "--nodes", 3, "--network", "regtest", "--topology", "full")
    state = load(str(work / "testnet-data"))
    pids = [r.pid for r in state.nodes]
    assert all(process.alive(p) for p in pids)

    again = cli("up", "--nodes", 3, "--network", "regtest", code=1)
    assert "already running" in again.stderr and "testnet down" in again.stderr
    assert [r.pid for r in load(str(work / "testnet-data")).nodes] == pids

    os.kill(pids[1], signal.SIGKILL)
    wait_for(lambda: not process.alive(pids[1]), 10, "node1 to die")
    status = cli("status")
    assert "not running: node1" in status.stderr
    down = cli("down")
    assert "stopped 2 node(s)" in down.stdout and "1 had already died (node1)" in down.stdout
    assert f"node1 (pid {pids[1]}) was not running" in down.stderr
    assert not any(process.alive(p) for p in pids)
    assert processes_under(str(work)) == []
    assert "was not running" in cli("down").stdout  # a second down is harmless

    # The same directory starts again, on the same chains and wallets.
    cli("up", "--nodes", 3, "--network", "regtest", "--topology", "full")
    again_state = load(str(work / "testnet-data"))
    assert [r.address for r in again_state.nodes] == [r.address for r in state.nodes]
    cli("down", "--purge")
    assert not (work / "testnet-data").exists()


def free_port_block(count: int) -> int:
    """A run of ``count`` ports nothing listens on (bound as the nodes bind: SO_REUSEADDR)."""
    import random

    start = random.randrange(20000, 50000)
    for base in range(start, start + 10000, 97):
        socks = []
        try:
            for p in range(base, base + count):
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free block of ports")


def test_a_taken_port_tears_the_half_started_network_down(work):
    cli, net = Cli(work), work / "net"
    base = free_port_block(8)
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", base + 3))  # node1's API port
    blocker.listen()
    try:
        out = cli("up", "--nodes", 4, "--network", "regtest", "--base-port", base, "--dir", net, code=1)
    finally:
        blocker.close()
    assert "node node1 did not start" in out.stderr and "in use" in out.stderr
    assert "stopped the 3 node(s) that were running" in out.stderr
    assert processes_under(str(work)) == []
    state = load(str(net))
    assert state is not None and not state.running
    assert "is stopped" in cli("status", "--dir", net).stdout
    # With the port free again the same command works.
    cli("up", "--nodes", 4, "--network", "regtest", "--base-port", base, "--dir", net)
    assert [r.p2p_port for r in load(str(net)).nodes] == [base, base + 2, base + 4, base + 6]
    cli("down", "--dir", net)


def test_a_node_that_cannot_open_its_data_directory_tears_the_network_down(work):
    cli, net = Cli(work), work / "net"
    (net / "node2").mkdir(parents=True)
    (net / "node2" / "chain").write_text("not a database")
    out = cli("up", "--nodes", 4, "--network", "regtest", "--dir", net, code=1)
    assert "node node2 did not start: cannot open data directory" in out.stderr
    assert str(net / "node2" / "node.log") in out.stderr
    assert "stopped the 3 node(s) that were running" in out.stderr
    assert processes_under(str(work)) == []


def test_up_killed_by_sigterm_half_way_stops_the_nodes_it_started(work):
    net = work / "net"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    up = subprocess.Popen([sys.executable, "-m", "minichain", "testnet", "up", "--nodes", "4", "--network", "regtest",
                           "--dir", str(net)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The state file appears as soon as the node processes exist, before they are ready.
        wait_for(lambda: (net / "testnet.json").exists() or up.poll() is not None, 30, "the nodes to be spawned")
        up.send_signal(signal.SIGTERM)
        out, err = up.communicate(timeout=60)
    finally:
        if up.poll() is None:
            up.kill()
    assert up.returncode == 1 and "Traceback" not in err
    assert "interrupted; stopped the" in err
    assert processes_under(str(work)) == []
    assert not load(str(net)).running


def test_two_miners_with_shares_30_70_hash_in_that_ratio(work):
    cli, net = Cli(work), work / "net"
    cli("up", "--nodes", 2, "--hashrate-share", "30,70", "--dir", net, "--timeout", 60)
    state, c = clients_of(net)
    assert [r.duty for r in state.nodes] == [pytest.approx(3 / 7, abs=1e-3), 1.0]
    time.sleep(3)  # the node's hash rate is a 5-second moving window
    ratios = []
    for _ in range(4):
        a, b = (x.status()["hashrate"] for x in c)
        ratios.append(a / b)
        time.sleep(0.5)
    ratio = sorted(ratios)[len(ratios) // 2]
    print(f"\nhash rate ratio 30:70 -> {ratio:.2f} (samples {[round(r, 2) for r in ratios]}, ideal {3 / 7:.2f})")
    assert 0.25 < ratio < 0.65
    cli("down", "--dir", net)
