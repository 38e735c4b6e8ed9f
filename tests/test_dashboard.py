"""The Grafana dashboard (testnet/grafana/) and the Prometheus scrape config: the
dashboard's shape as Grafana reads it, every panel's query naming metrics a node's
/metrics exports, the queries being PromQL that Prometheus's own checker accepts, and
the scrape config naming every node. The checks with ``promtool`` (Debian's
``prometheus`` package) skip without it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from minichain import params
from minichain.node.node import Node, NodeConfig
from minichain.store.memory import MemoryStore
from minichain.testnet import monitor, panels
from minichain.testnet.state import NodeRecord, TestnetState

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "testnet" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "minichain.json"
METRIC = re.compile(r"\b(minichain_[a-z0-9_]+|process_[a-z0-9_]+)\b")
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="no promtool (apt-get install prometheus)")


def exported_names(tmp_path) -> set[str]:
    """Every series name a node's /metrics declares (a counter ``x`` exports ``x_total``,
    a histogram ``x_bucket``, ``x_count`` and ``x_sum``)."""
    node = Node(NodeConfig(params=params.regtest, datadir=str(tmp_path), api=None, store="memory"), store=MemoryStore())
    body, _ = node.view().metrics()
    names = set()
    for family in text_string_to_metric_families(body.decode()):
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(family.type, [""])
        names.update(family.name + s for s in suffixes)
    return names


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def all_targets(board: dict) -> list[tuple[str, dict]]:
    return [(p["title"], t) for p in board["panels"] for t in p.get("targets", [])]


def test_every_panel_query_names_metrics_that_a_node_exports(tmp_path):
    exported = exported_names(tmp_path)
    assert "minichain_chain_height" in exported and "minichain_block_propagation_seconds_bucket" in exported
    targets = all_targets(dashboard())
    assert len(targets) >= 20
    for title, target in targets:
        named = set(METRIC.findall(target["expr"]))
        assert named, f"panel {title!r}: {target['expr']!r} names no metric"
        assert named <= exported, f"panel {title!r} asks for {sorted(named - exported)}, which /metrics does not export"


def test_the_dashboard_has_the_shape_grafana_reads():
    board = dashboard()
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    datasource = re.search(r"uid:\s*(\S+)", (GRAFANA / "provisioning" / "datasources" / "minichain.yml").read_text())
    ids, cells = set(), set()
    for p in board["panels"]:
        assert p["type"] == "timeseries" and p["title"]
        assert p["id"] not in ids
        ids.add(p["id"])
        assert p["datasource"] == {"type": "prometheus", "uid": datasource.group(1)}
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):       # no two panels on one grid cell
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps another panel at {(x, y)}"
                cells.add((x, y))
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)) and all(t["expr"].strip() for t in p["targets"])
    variables = {v["name"] for v in board["templating"]["list"]}
    used = {name for _, t in all_targets(board) for name in re.findall(r"\$(\w+)", t["expr"]) if not name.startswith("__")}
    assert used <= variables, f"queries use undefined variables {used - variables}"
    provider = (GRAFANA / "provisioning" / "dashboards" / "minichain.yml").read_text()
    assert "path: ${MINICHAIN_GRAFANA}/dashboards" in provider and DASHBOARD.parent.name == "dashboards"


@needs_promtool
def test_every_panel_query_is_promql_that_promtool_accepts(tmp_path):
    rules = ["groups:", "  - name: dashboard", "    rules:"]
    for k, (_, target) in enumerate(all_targets(dashboard())):
        expr = panels.substitute(target["expr"], rate_interval=8)
        assert "$" not in expr
        rules += [f"      - record: minichain:panel_{k}", f"        expr: {json.dumps(expr)}"]
    path = tmp_path / "rules.yml"
    path.write_text("\n".join(rules) + "\n")
    done = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def _state(tmp_path) -> TestnetState:
    nodes = [NodeRecord(index=i, name=f"node{i}", datadir=str(tmp_path / f"node{i}"), log="", api_port=23001 + 2 * i)
             for i in range(3)]
    return TestnetState(directory=str(tmp_path), network="testnet", topology="line", links=[(1, 0), (2, 1)],
                        nodes=nodes)


def test_the_scrape_config_names_every_node_by_its_api_port_and_name(tmp_path):
    text = monitor.render_config(_state(tmp_path), interval=2)
    assert re.findall(r"targets: \['127\.0\.0\.1:(\d+)'\]", text) == ["23001", "23003", "23005"]
    assert re.findall(r"node: '(node\d)'", text) == ["node0", "node1", "node2"]
    assert "scrape_interval: 2s" in text and "metrics_path: /metrics" in text


@needs_promtool
def test_promtool_accepts_the_scrape_config(tmp_path):
    path = monitor.write_config(_state(tmp_path))
    done = subprocess.run([PROMTOOL, "check", "config", path], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_grafana_variables_are_replaced_as_with_all_selected():
    expr = 'rate(minichain_p2p_sent_bytes_total{node=~"$node"}[$__rate_interval])'
    assert panels.substitute(expr, 8.2) == 'rate(minichain_p2p_sent_bytes_total{node=~".*"}[9s])'
