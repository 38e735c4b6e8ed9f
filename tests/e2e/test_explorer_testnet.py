"""'minichain testnet up' names the explorer's network view, and that page can read
every node it lists (without a browser: see test_explorer_browser.py for the drawing)."""

from __future__ import annotations

import json
import re
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.test_testnet_e2e import Cli, clients_of, work  # noqa: F401 - work is a fixture

pytestmark = pytest.mark.slow


def get(url: str, origin: str | None = None, limit: int = 1 << 20):
    req = urllib.request.Request(url, headers={"Origin": origin} if origin else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, resp.headers, resp.read(limit)


def test_testnet_of_three_up_prints_the_network_view_and_every_listed_node_lets_it_read(work):
    cli, net = Cli(work), work / "net"
    out = cli("up", "--nodes", 3, "--network", "regtest", "--dir", net).stdout
    found = re.findall(r"^explorer: (\S+)$", out, re.M)
    assert len(found) == 1, out
    url = found[0]
    state, _ = clients_of(net)
    first = state.nodes[0]
    parts = urlsplit(url)
    assert f"{parts.hostname}:{parts.port}" == first.api and parts.path == "/network"
    listed = parse_qs(parts.query)["nodes"][0].split(",")
    assert listed == [f"{r.name}@{r.api}" for r in state.nodes]

    status, headers, body = get(url)
    assert status == 200 and headers.get_content_type() == "text/html" and b'id="main"' in body
    origin = f"http://{first.api}"
    for item in listed:
        api = "http://" + item.split("@", 1)[1]
        status, headers, body = get(api + "/api/tree?depth=5", origin)
        assert status == 200 and headers["Access-Control-Allow-Origin"] == origin
        assert json.loads(body)["height"] == 0
        # The live stream is readable from the page too (read only its first event).
        req = urllib.request.Request(api + "/api/events", headers={"Origin": origin})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.headers["Access-Control-Allow-Origin"] == origin
            assert resp.readline() == b"retry: 1500\n"

    cli("down", "--dir", net)
    again = json.loads(cli("up", "--nodes", 3, "--network", "regtest", "--dir", net, "--json").stdout)  # restarted
    assert urlsplit(again["explorer"]).path == "/network"
    assert parse_qs(urlsplit(again["explorer"]).query)["nodes"][0].count("@") == 3
