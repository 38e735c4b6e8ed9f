"""The node at the edge of its resources, as real processes on 127.0.0.1 (issue #23):
idle and half-open connections, the file-descriptor limit, a full disk, and chain time
running ahead of the clock. Each test failed before (the docstrings say how)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest

from minichain import params
from minichain.core.keys import PrivateKey
from minichain.core.tx import TxOut, make_coinbase
from minichain.core.validation import block_subsidy
from tests.chainbuilder import assemble
from tests.e2e.attacker import deliver, run, tip_header
from tests.e2e.harness import NodeProcess, sync_blocks, tips, wait_peers, wait_until

pytestmark = pytest.mark.slow

P = params.regtest
MINER = PrivateKey(4242)
MINER_ADDR = MINER.public_key.address(P.address_version)


def closed_by_server(sock: socket.socket, within: float, trickle: bytes = b"") -> bool:
    """Whether the server closes ``sock`` within ``within`` seconds (sending ``trickle``
    one byte a second meanwhile, like a slowloris client)."""
    deadline = time.monotonic() + within
    sock.settimeout(1.0)
    i = 0
    while time.monotonic() < deadline:
        try:
            if i < len(trickle):
                sock.send(trickle[i:i + 1])
                i += 1
            if sock.recv(4096) == b"":
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def test_idle_and_slowloris_connections_are_closed_on_both_listeners(network):
    """Before: a TCP connection that never sent a request stayed open (an hour, aiohttp's
    default keep-alive), on the peer-to-peer and the API listener alike."""
    a = network.add("a", "--idle-timeout", "2")
    for port in (a.p2p_port, a.api_port):
        idle = socket.create_connection(("127.0.0.1", port))
        slow = socket.create_connection(("127.0.0.1", port))
        assert closed_by_server(idle, 8), f"an idle connection to port {port} stayed open"
        assert closed_by_server(slow, 8, b"GET /api/status HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaa"), \
            f"a slowloris connection to port {port} stayed open"
        idle.close()
        slow.close()
    assert a.status()["height"] == 0


def test_at_the_descriptor_limit_connections_are_refused_quietly_and_the_store_keeps_writing(network):
    """Before: at the fd limit the node logged ~101,000 accept tracebacks (45 MB) and a
    LevelDB write failed."""
    a = network.add("a", "--idle-timeout", "3", start=False)
    a.start(nofile=200)
    honest = network.add("honest", "--connect", a.address)
    wait_peers(a, 1)
    socks = []
    for port in (a.p2p_port, a.api_port):
        for _ in range(300):
            try:
                socks.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                pass
    time.sleep(2)
    # The node still writes blocks (LevelDB opens files) and relays them.
    wait_until(lambda: a.generate(5, MINER_ADDR) is not None, 30, lambda: "the API never came back:" + tips([a]))
    sync_blocks([a, honest], timeout=30)
    for s in socks:
        s.close()
    log = a.log_text()
    assert "connection limit reached" in log
    assert log.count("Traceback") == 0 and len(log) < 2_000_000, f"{log.count('Traceback')} tracebacks"
    assert "Too many open files" not in log


def test_a_full_disk_is_survived_without_a_restart(network, tmp_path):
    """Before: after a write failed on a full disk, every block failed with
    ``CorruptionError ... marked stored but is missing`` until the node was restarted."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs as the full disk")
    try:
        a = network.add("a")
        b = NodeProcess(str(disk), "b")
        network.nodes.append(b)
        b.log_path = str(tmp_path / "b.log")
        b.start("--connect", a.address)
        wait_peers(a, 1)
        a.generate(5, MINER_ADDR)
        sync_blocks([a, b])
        filler = disk / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * (1 << 20))
                    f.flush()
            except OSError:
                pass
        a.generate(30, MINER_ADDR)
        time.sleep(3)
        # b may go on connecting in memory (its write-back window, chainstate/state.py),
        # but its writes fail: the log says so, and b keeps running.
        wait_until(lambda: "cannot write" in b.log_text(), 30, lambda: "no write failed on a full disk?")
        assert b.running
        filler.unlink()                                   # space comes back
        a.generate(2, MINER_ADDR)
        sync_blocks([a, b], timeout=90)
        assert "marked stored but is missing" not in b.log_text()
        b.stop()
        from minichain.chainstate import ChainState
        from minichain.store.leveldb import LevelDBStore

        state = ChainState(LevelDBStore(os.path.join(b.datadir, "chain")), P)
        report, height = state.verify(), state.height
        state.close()
        assert report.ok, str(report)
        assert height == a.status()["height"], "blocks lost after the disk filled"
    finally:
        for n in list(network.nodes):
            if n.running:
                n.kill()
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_mining_waits_when_chain_time_runs_two_hours_ahead_instead_of_hot_looping(network):
    """Before: a regtest miner whose chain time had run 2 h past the clock mined block
    after invalid block (time-too-new) in a tight loop: 795 MB of log in 26 minutes."""
    a = network.add("a")
    a.generate(1, MINER_ADDR)
    parent = tip_header(a)
    future = int(time.time()) + 2 * 3600 - 25              # the last just inside the limit now
    blocks = []
    for i in range(11):                                    # median-time-past: future + 5
        height = 2 + i
        cb = make_coinbase(height, [TxOut(block_subsidy(height, P), MINER.public_key.hash160())], extra_nonce=height)
        block = assemble(parent, [cb], P, time=future + i)
        blocks.append(block)
        parent = block.header
    run(deliver(a, blocks))
    assert a.status()["height"] == 12
    a.control("mining/start", {"address": MINER_ADDR})
    time.sleep(8)
    a.control("mining/stop")
    log = a.log_text()
    assert "mining waits for the clock" in log
    assert log.count("time-too-new") < 5 and log.count("mined block") < 5, \
        f"{log.count('mined block')} blocks mined, {log.count('time-too-new')} too new"
    assert a.status()["height"] == 12
