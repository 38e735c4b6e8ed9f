"""The explorer's server side, in process: the tree window, the page and asset routes,
the CORS rule, the event stream, and a check that the page's script has no HTML sinks.

The browser half (rendering, live updates, links, escaping) is
tests/e2e/test_explorer_browser.py.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import json
import re
import time
import tomllib
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from minichain import params
from minichain.explorer import allowed_origin, events, url_for
from minichain.explorer.tree import tree_window
from minichain.node.api import make_api
from minichain.node.view import NodeControl
from minichain.node.node import Node, NodeConfig
from minichain.chainstate import BlockStatus
from tests.chainbuilder import NOW, ChainBuilder

P = params.regtest
ROOT = Path(__file__).resolve().parent.parent
STATIC = importlib.resources.files("minichain.explorer").joinpath("static")


def run(coro_fn, tmp_path, blocks=()):
    """Run ``coro_fn(node, client)`` against a fresh in-memory regtest node's API, the node
    holding ``blocks`` (each must connect)."""
    async def main():
        node = Node(NodeConfig(params=P, datadir=str(tmp_path), store="memory", discover=False))
        for block in blocks:
            assert node.process_block(block).status is BlockStatus.CONNECTED
        client = TestClient(TestServer(make_api(node.view(), NodeControl(node))))
        await client.start_server()
        try:
            return await coro_fn(node, client)
        finally:
            await client.close()
            node.chain.close()

    return asyncio.run(main())


def forked_tree(node: Node) -> dict:
    """Genesis - 1 - 2 - 3 - 4 - 5 (active), a stale branch 3'-4' off 2, a header-only
    4'' off 3, and an invalid 6 on 5 (its coinbase claims too much)."""
    b = ChainBuilder(P)
    main = b.chain(None, 5)
    stale = b.chain(main[1], 2)
    header_only = b.block(main[2])
    invalid = b.block(main[4], coinbase_value=100 * 10**8, register=False)
    for block in main + stale:
        assert node.process_block(block).status in (BlockStatus.CONNECTED, BlockStatus.SIDE_BRANCH)
    node.chain.accept_header(header_only.header, NOW)
    assert node.process_block(invalid).status is BlockStatus.INVALID
    return {"main": main, "stale": stale, "header_only": header_only, "invalid": invalid}


def hx(block) -> str:
    return block.hash[::-1].hex()


# -- the tree window ------------------------------------------------------------------------------


def test_tree_window_marks_active_stale_header_only_and_invalid_blocks(tmp_path):
    async def check(node, client):
        made = forked_tree(node)
        out = tree_window(node.chain.tree, 10)
        by_hash = {b["hash"]: b for b in out["blocks"]}
        assert out["tip"] == hx(made["main"][-1]) and out["height"] == 5 and out["low"] == 0
        assert [by_hash[hx(b)]["status"] for b in made["main"]] == ["active"] * 5
        assert [by_hash[hx(b)]["status"] for b in made["stale"]] == ["stale"] * 2
        assert by_hash[hx(made["header_only"])]["status"] == "headers-only"
        assert by_hash[hx(made["invalid"])]["status"] == "invalid"
        assert by_hash[hx(made["stale"][0])]["parent"] == hx(made["main"][1])
        assert out["blocks"][0]["parent"] is None and out["blocks"][0]["height"] == 0  # genesis
        heights = [b["height"] for b in out["blocks"]]
        assert heights == sorted(heights)

        # A shallow window: heights tip-1 .. tip+1 only, side branches included.
        shallow = tree_window(node.chain.tree, 1)
        assert {b["height"] for b in shallow["blocks"]} == {4, 5, 6}
        assert hx(made["stale"][1]) in {b["hash"] for b in shallow["blocks"]}

    run(check, tmp_path)


def test_api_tree_answers_the_window_and_refuses_bad_depths(tmp_path):
    async def check(node, client):
        forked_tree(node)
        resp = await client.get("/api/tree?depth=2")
        assert resp.status == 200
        data = await resp.json()
        assert data["network"] == "regtest" and data["depth"] == 2 and data["orphans"] == 0
        assert min(b["height"] for b in data["blocks"]) == 3
        for bad in ("0", "501", "x"):
            resp = await client.get(f"/api/tree?depth={bad}")
            assert resp.status == 400 and "depth" in (await resp.json())["error"]

    run(check, tmp_path)


# -- page, assets, unknown paths --------------------------------------------------------------------


def test_every_page_path_is_the_page_and_unknown_paths_are_a_404_page(tmp_path):
    async def check(node, client):
        for path in ("/", "/block/5", "/block/" + "ab" * 32, "/tx/abc", "/address/mxyz", "/mempool", "/peers",
                     "/forks", "/network"):
            resp = await client.get(path)
            assert resp.status == 200, path
            assert resp.content_type == "text/html"
            assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
            assert '<main id="main">' in await resp.text()
        for path in ("/nothing", "/block/1/2", "/blocks"):
            resp = await client.get(path)
            assert resp.status == 404 and resp.content_type == "text/html", path
        # The API's own unknown paths stay JSON, as before the explorer.
        resp = await client.get("/api/nothing")
        assert resp.status == 404 and "error" in await resp.json()
        resp = await client.post("/api/status")
        assert resp.status == 405

    run(check, tmp_path)


def test_assets_are_served_with_their_types_and_nothing_else_is(tmp_path):
    async def check(node, client):
        for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css"), ("favicon.svg", "image/svg+xml")):
            resp = await client.get(f"/explorer/{name}")
            assert resp.status == 200 and resp.content_type == kind, name
            assert await resp.read() == STATIC.joinpath(name).read_bytes()
        for name in ("index.html", "..%2f__init__.py", "missing.js"):
            resp = await client.get(f"/explorer/{name}")
            assert resp.status == 404, name

    run(check, tmp_path)


# -- CORS ----------------------------------------------------------------------------------------


def test_cors_lets_pages_on_loopback_or_this_host_read_the_api_and_no_one_else(tmp_path):
    async def check(node, client):
        for origin in ("http://127.0.0.1:18444", "http://localhost:9000", "http://[::1]:8000"):
            resp = await client.get("/api/status", headers={"Origin": origin})
            assert resp.headers.get("Access-Control-Allow-Origin") == origin
            assert "Origin" in resp.headers.get("Vary", "")
        for origin in ("http://evil.example", "null", "file://", "http://127.0.0.1.evil.example"):
            resp = await client.get("/api/status", headers={"Origin": origin})
            assert "Access-Control-Allow-Origin" not in resp.headers, origin
        # Writes never get CORS headers, whoever asks.
        resp = await client.post("/api/control/mining/stop", headers={"Origin": "http://127.0.0.1:1"})
        assert resp.status == 401 and "Access-Control-Allow-Origin" not in resp.headers
        # The page itself is not an API response.
        resp = await client.get("/", headers={"Origin": "http://127.0.0.1:1"})
        assert "Access-Control-Allow-Origin" not in resp.headers

    run(check, tmp_path)


def test_allowed_origin_rule():
    assert allowed_origin("http://127.0.0.1:5", None)
    assert allowed_origin("https://localhost", None)
    assert allowed_origin("http://node.lan:8332", "node.lan")
    assert not allowed_origin("http://node.lan:8332", "other.lan")
    assert not allowed_origin("http://evil.example", "127.0.0.1")
    assert not allowed_origin("ftp://127.0.0.1", None)
    assert not allowed_origin("http://[bad", None)


# -- live events -----------------------------------------------------------------------------------


async def read_event(resp, timeout: float = 5.0) -> tuple[str, dict]:
    """The next ``event:``/``data:`` frame of an event stream (comments and retry skipped)."""
    while True:
        raw = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), timeout)
        fields = dict(line.split(": ", 1) for line in raw.decode().strip().split("\n") if ": " in line
                      and not line.startswith(":"))
        if "event" in fields:
            return fields["event"], json.loads(fields["data"])


def test_event_stream_says_hello_then_tips_side_blocks_and_transactions(tmp_path):
    async def check(node, client):
        b = ChainBuilder(P)
        resp = await client.get("/api/events")
        assert resp.status == 200 and resp.content_type == "text/event-stream"
        kind, hello = await read_event(resp)
        assert kind == "hello" and hello["height"] == 0 and hello["network"] == "regtest"

        main = b.chain(None, P.coinbase_maturity + 1)
        for block in main:
            node.process_block(block)
        for height in range(1, len(main) + 1):
            kind, data = await read_event(resp)
            assert (kind, data["height"]) == ("tip", height)
        assert data["hash"] == hx(main[-1])

        side = b.block(main[-2])
        node.process_block(side)
        assert await read_event(resp) == ("block", {"hash": hx(side), "status": "side-branch"})

        coin = b.spendable(main[-1].hash)[0]
        tx = b.spend([coin], [type(coin[1])(coin[1].value - 1000, b.pkh(1))])
        node.submit_transaction(tx)
        assert await read_event(resp) == ("tx", {"txid": tx.txid_hex(), "fee": 1000})
        assert len(node.listeners) == 1
        resp.close()

    run(check, tmp_path)


def test_event_streams_end_when_the_api_shuts_down(tmp_path):
    async def check(node, client):
        streams = [await client.get("/api/events") for _ in range(3)]
        for resp in streams:
            assert (await read_event(resp))[0] == "hello"
        assert len(node.listeners) == 3
        began = time.monotonic()
        await client.server.close()  # the app shuts down: every stream must end now, not after a timeout
        assert time.monotonic() - began < 3
        assert node.listeners == []
        for resp in streams:
            assert await asyncio.wait_for(resp.content.read(), 3) == b""

    run(check, tmp_path)


def test_a_slow_reader_gets_one_resync_instead_of_an_endless_queue():
    async def check():
        stream = events._Stream()
        for i in range(events.MAX_QUEUED + 50):
            stream.listener("tip", {"height": i})
        assert stream.overflow and stream.queue.qsize() == 1
        assert stream.queue.get_nowait() == ("resync", {})
        stream.close()
        assert stream.queue.get_nowait() is None

    asyncio.run(check())


def test_too_many_event_streams_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(events, "MAX_STREAMS", 2)

    async def check(node, client):
        first = [await client.get("/api/events") for _ in range(2)]
        for resp in first:
            await read_event(resp)
        resp = await client.get("/api/events")
        assert resp.status == 503 and "too many" in (await resp.json())["error"]

    run(check, tmp_path)


# -- the page's own safety and the testnet's link ------------------------------------------------


def test_page_script_has_no_html_sinks_and_the_page_no_inline_script():
    script = STATIC.joinpath("app.js").read_text()
    code = "\n".join(line for line in script.splitlines() if not line.strip().startswith("//"))
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                 "setAttribute(\"style\"", "srcdoc"):
        assert sink not in code, f"app.js uses {sink}"
    page = STATIC.joinpath("index.html").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page) == []
    assert not re.search(r"\son[a-z]+\s*=", page)


def test_static_files_ship_as_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["minichain.explorer"]
    assert "static/*" in patterns
    for name in ("index.html", "app.js", "style.css", "favicon.svg"):
        assert STATIC.joinpath(name).is_file(), name


def test_url_for_the_node_page_and_the_network_view():
    assert url_for("127.0.0.1", 18444) == "http://127.0.0.1:18444/"
    assert url_for("0.0.0.0", 8332) == "http://127.0.0.1:8332/"
    assert url_for("::1", 8332) == "http://[::1]:8332/"
    assert url_for("127.0.0.1", 1, [("127.0.0.1", 1), ("127.0.0.1", 2)]) == \
        "http://127.0.0.1:1/network?nodes=127.0.0.1:1,127.0.0.1:2"
    assert url_for("127.0.0.1", 1, [("127.0.0.1", 1, "node0"), ("127.0.0.1", 2, "miner-b")]) == \
        "http://127.0.0.1:1/network?nodes=node0@127.0.0.1:1,miner-b@127.0.0.1:2"
    with pytest.raises(ValueError, match="node name"):
        url_for("127.0.0.1", 1, [("127.0.0.1", 1, "a b&c")])
