"""``minichain testnet up --monitor`` as a user runs it: three mining nodes on testnet,
Debian's Prometheus started on the scrape config, and the height and block-propagation
series read back through Prometheus's HTTP API; ``testnet monitor`` without the binary
says how to get it; ``down`` stops Prometheus with the nodes.

Skips when the prometheus binary is absent (CI installs Debian's package: .ci/run).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time

import pytest
from PIL import Image

from minichain.testnet import monitor
from minichain.testnet.panels import REPO_DASHBOARD
from minichain.testnet.state import load
from tests.e2e.test_testnet_e2e import Cli, clients_of, work  # noqa: F401 - work is a fixture

pytestmark = pytest.mark.slow

if monitor.find_prometheus() is None:
    pytest.skip(f"no prometheus binary ({monitor.INSTALL_HINT})", allow_module_level=True)


def wait_query(url: str, expr: str, ok, timeout: float = 60.0) -> list[dict]:
    """Ask Prometheus ``expr`` until ``ok(result)``; the last answer in the failure."""
    deadline = time.monotonic() + timeout
    result: list[dict] = []
    while time.monotonic() < deadline:
        try:
            result = monitor.query(url, expr)
            if ok(result):
                return result
        except monitor.MonitorError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {expr!r}; last answer {result}")


def test_line3_testnet_up_monitor_prometheus_scrapes_height_and_propagation_then_down_stops_it(work):
    cli, net = Cli(work), work / "net"
    up = json.loads(cli("up", "--nodes", 3, "--monitor", "--prometheus-port", 19090, "--dir", net, "--json",
                        timeout=180).stdout)
    url = up["prometheus"]
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url), up
    state, clients = clients_of(net)
    config = (net / "prometheus" / "prometheus.yml").read_text()
    assert sorted(re.findall(r"127\.0\.0\.1:(\d+)", config)) == sorted(str(r.api_port) for r in state.nodes)

    # Every node's height, as Prometheus scraped it, within the height the node reports now.
    heights = wait_query(url, "minichain_chain_height", lambda r: len(r) == 3)
    by_node = {r["metric"]["node"]: float(r["value"][1]) for r in heights}
    assert set(by_node) == {"node0", "node1", "node2"}
    for rec, c in zip(state.nodes, clients):
        assert 1 <= by_node[rec.name] <= c.status()["height"]
    # Blocks mined by one node reached the others: propagation observations on every node.
    seen = wait_query(url, "minichain_block_propagation_seconds_count > 0", lambda r: len(r) == 3)
    assert {r["metric"]["node"] for r in seen} == {"node0", "node1", "node2"}
    # The dashboard's own propagation query answers with a number of seconds.
    p90 = wait_query(url, "histogram_quantile(0.9, sum by (le) (rate(minichain_block_propagation_seconds_bucket[1m])))",
                     lambda r: len(r) == 1 and r[0]["value"][1] not in ("NaN", "+Inf"))
    assert 0 < float(p90[0]["value"][1]) < 60

    status = json.loads(cli("status", "--dir", net, "--json").stdout)
    assert status["prometheus"] == url

    # The dashboard's panels drawn from this Prometheus (what docs/monitoring.md shows).
    drawn = cli("panels", "--out", work / "panels.png", "--minutes", 1, "--dir", net).stdout
    panels, series = map(int, re.search(r"(\d+) panels, (\d+) series", drawn).groups())
    with open(REPO_DASHBOARD) as f:
        assert panels == len(json.load(f)["panels"])
    assert series >= 3 * 6, drawn       # height, peers, hash rate, mempool, its size, blocks found: one per node
    with Image.open(work / "panels.png") as picture:
        assert picture.format == "PNG" and picture.size[0] > 1000
    pid = load(str(net)).monitor["pid"]

    # Without the binary: the config is still written and the user told how to get Prometheus.
    cli("monitor", "--stop", "--dir", net)
    assert not monitor.Monitor(pid, 0, str(net / "prometheus" / "prometheus.yml")).alive()
    bare = Cli(work)
    bare.env["PATH"] = str(work / "empty-bin")
    bare.env.pop("MINICHAIN_PROMETHEUS", None)
    os.makedirs(bare.env["PATH"], exist_ok=True)
    assert shutil.which("prometheus", path=bare.env["PATH"]) is None
    said = bare("monitor", "--dir", net)
    assert "apt-get install prometheus" in said.stderr and str(net / "prometheus" / "prometheus.yml") in said.stderr
    assert load(str(net)).monitor is None

    # Started again, then stopped by down with the nodes.
    again = cli("monitor", "--port", 19090, "--dir", net).stdout
    pid = load(str(net)).monitor["pid"]
    assert "prometheus: http://127.0.0.1:" in again
    down = cli("down", "--dir", net).stdout
    assert "and Prometheus" in down
    assert not monitor.Monitor(pid, 0, str(net / "prometheus" / "prometheus.yml")).alive()
