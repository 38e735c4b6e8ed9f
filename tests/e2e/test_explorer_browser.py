"""The explorer in a real browser: headless Chromium (Debian's package) driven by
Playwright, against node processes on 127.0.0.1.

Each test leaves screenshots in its tmp_path (pytest prints the directory on failure;
``--basetemp`` keeps them somewhere known). Without Playwright or Chromium the tests skip
and say why; CI installs both.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import threading
import time

import aiohttp
import pytest

from minichain import params
from minichain.chainstate import ChainState
from minichain.core.genesis import genesis_block
from minichain.core.keys import PrivateKey
from minichain.explorer import url_for
from minichain.node import messages as m
from minichain.store.leveldb import LevelDBStore
from tests.e2e.harness import NodeProcess, wait_until
from tests.e2e.test_node_e2e import pay, submit
from tests.e2e.test_testnet_e2e import Cli, clients_of, wait_for, work  # noqa: F401 - work is a fixture

pytestmark = pytest.mark.slow

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")

CHROMIUM = os.environ.get("MINICHAIN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# As root on a machine without a network: no sandbox, no GPU, and none of Chromium's
# background connections (they would be refused, many at a time).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
if not os.path.exists(CHROMIUM):
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set MINICHAIN_CHROMIUM)",
                allow_module_level=True)

P = params.regtest
MINER = PrivateKey(4242)
MINER_ADDR = MINER.public_key.address(P.address_version)
BOB = PrivateKey(4343)
BOB_ADDR = BOB.public_key.address(P.address_version)
UI_TIMEOUT = 10_000  # ms for the page to show what a test waits for
EVIL = '<img src=x onerror="window.__pwned=1"><b>bold</b>&amp;</td>'


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh page; a JavaScript exception anywhere on it fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(UI_TIMEOUT)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def explorer(node: NodeProcess, path: str = "/") -> str:
    return url_for("127.0.0.1", node.api_port).rstrip("/") + path


def shoot(pg, tmp_path, name: str) -> None:
    pg.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)


def test_one_node_a_mined_block_appears_live_then_links_lead_to_the_block_and_its_payment(network, page, tmp_path):
    a = network.add("a")
    a.generate(P.coinbase_maturity + 1, MINER_ADDR)
    payment = pay(a, MINER, BOB, 3 * 10**8)
    txid = submit(a, payment)["txid"]

    page.goto(explorer(a))
    page.wait_for_selector("#live.on")
    page.wait_for_selector(f"#home-mempool a[href='/tx/{txid}']")
    page.evaluate("window.__sameDocument = true")

    # Mined elsewhere (through the API), shown here without a reload.
    new_hash = a.generate(1, MINER_ADDR)[0]
    height = P.coinbase_maturity + 2
    row = page.locator(f"#latest-blocks tr[data-hash='{new_hash}']")
    row.wait_for()
    assert row.locator("td").first.inner_text() == str(height)
    page.wait_for_selector(f"svg.tree a.blk[data-hash='{new_hash}'][data-state='active']")
    page.wait_for_selector("#home-mempool >> text=Nothing waiting to be mined.")
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"
    assert page.inner_text("#status-height") == str(height)
    shoot(page, tmp_path, "home")

    # Height link -> the block page, which lists the payment.
    row.locator(f"a[href='/block/{height}']").click()
    page.wait_for_url(f"**/block/{height}")
    page.wait_for_selector(f"h1:has-text('Block {height}')")
    tx_link = page.locator(f".txlist a[href='/tx/{txid}']").first
    assert page.locator(".txlist .tx").count() == 2  # coinbase and the payment
    shoot(page, tmp_path, "block")

    # Transaction page: inputs, outputs, confirmations; it follows the chain live.
    tx_link.click()
    page.wait_for_url(f"**/tx/{txid}")
    page.wait_for_selector("#confirmations:text-is('1')")
    inputs = page.locator("table.inputs").inner_text()
    outputs = page.locator("table.outputs").inner_text()
    assert MINER_ADDR in inputs and "50.00000000" in inputs
    assert BOB_ADDR in outputs and "3.00000000" in outputs
    a.generate(1, MINER_ADDR)
    page.wait_for_selector("#confirmations:text-is('2')")
    assert page.evaluate("window.__sameDocument") is True
    shoot(page, tmp_path, "tx")

    page.locator(f"table.outputs a[href='/address/{BOB_ADDR}']").click()
    page.wait_for_selector("dl.facts >> text=3.00000000")
    shoot(page, tmp_path, "address")

    # Unknown ids: a friendly page, not a stack trace or a blank screen.
    page.goto(explorer(a, "/block/" + "00" * 32))
    page.wait_for_selector(".notfound h1:text('Block not found')")
    page.goto(explorer(a, "/no/such/page"))
    page.wait_for_selector(".notfound h1:text('Page not found')")
    shoot(page, tmp_path, "notfound")


def test_one_node_an_address_with_ten_thousand_entries_pages_through_its_history(network, page, tmp_path,
                                                                               big_address):
    """The address page asks for one page (50 rows) and grows a page at a time; the
    node's store is built beforehand (as a node that synced the chain would have it)."""
    node = network.add("big", start=False)
    with LevelDBStore(os.path.join(node.datadir, "chain")) as store:
        chain = ChainState(store, P)
        for block in big_address.blocks:
            assert chain.accept_block(block, int(time.time())).status.value == "connected"
    node.start()
    addr = big_address.address()
    page.goto(explorer(node, f"/address/{addr}"))
    page.wait_for_selector(f"#tx-count:text-is('{big_address.history}')")
    assert page.inner_text("#utxo-count") == str(len(big_address.coins))
    rows = page.locator("table.history tbody tr")
    assert rows.count() == 50
    older = page.locator("button.more", has_text="Older transactions")
    for shown in (100, 150):
        older.click()
        rows.nth(shown - 1).wait_for()
        assert rows.count() == shown
    assert f"150 of {big_address.history} shown" in page.inner_text("section:has(table.history)")
    txids = [a.get_attribute("href") for a in page.locator("table.history tbody tr td:first-child a").all()]
    assert len(set(txids)) == 150  # no row twice across the pages
    heights = [int(t) for t in page.locator("table.history tbody tr td:nth-child(2) a").all_inner_texts()]
    assert heights == sorted(heights, reverse=True) and heights[0] == big_address.height
    coins = page.locator("table.utxos tbody tr")
    assert coins.count() == 50
    page.locator("button.more", has_text="More outputs").click()
    coins.nth(99).wait_for()
    assert coins.count() == 100
    shoot(page, tmp_path, "big-address")


def _fake_peer(p2p_port: int, user_agent: str, connected: threading.Event, done: threading.Event) -> None:
    """A peer whose version message carries ``user_agent``; holds its link until ``done``."""
    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"http://127.0.0.1:{p2p_port}/p2p") as ws:
                # Listen port 1: nobody listens there, so the node's dial-back fails fast.
                await ws.send_bytes(m.encode(m.Version(1, genesis_block(P).hash, 0, user_agent, 1, 77)))
                await ws.send_bytes(m.encode(m.Verack()))
                connected.set()
                while not done.is_set():
                    try:
                        await asyncio.wait_for(ws.receive(), timeout=0.2)
                    except asyncio.TimeoutError:
                        pass
                    if ws.closed:
                        break

    asyncio.run(run())


def test_one_node_html_in_a_peer_user_agent_and_in_a_url_shows_as_text(network, page, tmp_path):
    a = network.add("a")
    connected, done = threading.Event(), threading.Event()
    thread = threading.Thread(target=_fake_peer, args=(a.p2p_port, EVIL, connected, done), daemon=True)
    thread.start()
    try:
        assert connected.wait(10)
        wait_until(lambda: any(p["user_agent"] == EVIL for p in a.get("/api/peers")["peers"]), 10,
                   lambda: f"fake peer not listed: {a.get('/api/peers')}")
        page.goto(explorer(a, "/peers"))
        cell = page.locator("td.useragent", has_text="bold")
        cell.wait_for()
        assert cell.text_content() == EVIL
        assert cell.locator("img, b").count() == 0
        assert page.evaluate("window.__pwned") is None
        shoot(page, tmp_path, "peers")
    finally:
        done.set()
        thread.join(10)

    # The same string as an address in the URL: the not-found page quotes it.
    page.goto(explorer(a, "/address/" + EVIL.replace("/", "%2F")))
    page.wait_for_selector(".notfound h1:text('That is not an address')")
    assert page.locator(".notfound .asked").text_content() == EVIL
    assert page.locator(".notfound img, .notfound b").count() == 0
    assert page.evaluate("window.__pwned") is None
    shoot(page, tmp_path, "escaped-url")


def test_testnet_of_two_split_then_healed_draws_two_growing_branches_and_then_one_stale(work, page, tmp_path):
    """The acceptance story on 'minichain testnet': up prints the explorer's address, and
    its network view shows the partition as two branches and the heal as one going stale."""
    cli, net = Cli(work), work / "net"
    out = cli("up", "--nodes", 2, "--network", "regtest", "--dir", net).stdout
    url = re.search(r"^explorer: (http://\S+)$", out, re.M).group(1)
    state, (n0, n1) = clients_of(net)
    first = n0.generate(3, state.nodes[0].address)["blocks"]
    wait_for(lambda: n1.status()["tip"] == first[-1], 20, "node1 to follow node0", [n0, n1], state.nodes)

    page.goto(url)
    summary = page.locator("#network-summary")
    page.wait_for_selector("#network-summary[data-tips='1']")
    assert page.locator(".nodecard").count() == 2
    page.wait_for_selector(f".tipmark[data-node='node1'][data-hash='{first[-1]}']")

    cli("partition", "0", "1", "--dir", net)
    wait_for(lambda: [x.status()["peers"] for x in (n0, n1)] == [0, 0], 20, "the link to drop", [n0, n1], state.nodes)
    left = n0.generate(2, state.nodes[0].address)["blocks"]
    right = n1.generate(3, state.nodes[1].address)["blocks"]

    # Two branches, each a node's tip, on different lanes, each followed by one node only.
    page.wait_for_selector(f"svg.tree .tipmark[data-node='node0'][data-hash='{left[-1]}']")
    page.wait_for_selector(f"svg.tree .tipmark[data-node='node1'][data-hash='{right[-1]}']")
    assert summary.get_attribute("data-tips") == "2"
    lane = {n: page.get_attribute(f".tipmark[data-node='{n}']", "data-lane") for n in ("node0", "node1")}
    assert lane["node0"] != lane["node1"]
    for h in left + right:
        assert page.get_attribute(f"a.blk[data-hash='{h}']", "data-state") == "contested"
    for h in first:
        assert page.get_attribute(f"a.blk[data-hash='{h}']", "data-state") == "active"
    shoot(page, tmp_path, "partition")

    # Heal: node1's branch has more work; node0 reorganises onto it, its two blocks go stale.
    cli("heal", "--wait", "--timeout", 30, "--dir", net)
    page.wait_for_selector("#network-summary[data-tips='1']")
    for h in left:
        page.wait_for_selector(f"a.blk[data-hash='{h}'][data-state='stale']")
    for h in right:
        page.wait_for_selector(f"a.blk[data-hash='{h}'][data-state='active']")
    shoot(page, tmp_path, "healed")

    # node0's own fork view shows the same stale branch, and its chain tips.
    page.goto(url_for("127.0.0.1", state.nodes[0].api_port) + "forks")
    page.wait_for_selector(f"a.blk[data-hash='{left[-1]}'][data-state='stale']")
    assert "valid-fork" in page.locator("table.tips").inner_text()
    shoot(page, tmp_path, "forks")
