"""The REST API in process (aiohttp's test client, a node on a memory store): pages and
cursors, balances from the address index against the chain builder's own account,
transactions shown from the transaction index, the event loop's turns while a page is
built, the lag report, and the rule that the API reads the node only through its view.
"""

from __future__ import annotations

import ast
import asyncio
import time
from pathlib import Path

import pytest

from minichain import params
from minichain.core.keys import PrivateKey
from minichain.core.tx import OutPoint, TxOut
from minichain.node.api import MAX_PAGE
from minichain.node.api import common
from minichain.node.lag import LagMonitor
from minichain.node.view import NodeView
from tests import bigaddress
from tests.chainbuilder import ChainBuilder
from tests.test_explorer import run

P = params.regtest
ROOT = Path(__file__).resolve().parent.parent


async def get(client, path, status=200):
    resp = await client.get(path)
    data = await resp.json()
    assert resp.status == status, (path, data)
    return data


async def follow(client, path, key, limit):
    """Every item of a paged list, and how many pages it took."""
    items, pages, cursor = [], 0, None
    while True:
        sep = "&" if "?" in path else "?"
        data = await get(client, f"{path}{sep}limit={limit}" + (f"&after={cursor}" if cursor else ""))
        pages += 1
        assert len(data[key]) <= limit
        items += data[key]
        cursor = data["next"]
        if cursor is None:
            return items, pages


@pytest.fixture(scope="module")
def medium():
    """An address with 2,500 history entries (several pages of the largest size)."""
    return bigaddress.build(PrivateKey(4242), 2_500, 112)


def hx(h: bytes) -> str:
    return h[::-1].hex()


class LoopTurns:
    """Counts the turns another task gets on the event loop while the block runs."""

    def __init__(self) -> None:
        self.count = 0
        self._task: asyncio.Task | None = None

    async def _spin(self) -> None:
        while True:
            await asyncio.sleep(0)
            self.count += 1

    async def __aenter__(self) -> "LoopTurns":
        self._task = asyncio.get_running_loop().create_task(self._spin())
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._task is not None
        self._task.cancel()


# -- addresses ------------------------------------------------------------------------------------


def test_history_and_coins_page_through_every_entry_exactly_once(tmp_path, medium):
    addr = medium.address()

    async def check(node, client):
        history, pages = await follow(client, f"/api/address/{addr}/history", "history", 300)
        assert len(history) == medium.history and pages == -(-medium.history // 300)
        assert len({h["txid"] for h in history}) == medium.history
        keys = [(-h["height"], h["confirmations"]) for h in history]
        assert [h["height"] for h in history] == sorted((h["height"] for h in history), reverse=True)
        assert sum(h["delta"] for h in history) == medium.balance and keys
        coins, _ = await follow(client, f"/api/address/{addr}/utxos", "utxos", 700)
        got = {OutPoint(bytes.fromhex(c["txid"])[::-1], c["vout"]): (c["value"], c["height"], c["coinbase"])
               for c in coins}
        assert len(coins) == len(got) == len(medium.coins) and got == medium.coins
        # The default page is the largest; the summary's first pages are the lists' first pages.
        summary = await get(client, f"/api/address/{addr}")
        assert summary["history"] == history[:MAX_PAGE] and summary["utxos"] == coins[:MAX_PAGE]
        assert summary["history_next"] and summary["utxos_next"]
        small = await get(client, f"/api/address/{addr}?limit=5")
        assert small["history"] == history[:5] and small["utxos"] == coins[:5]
        rest = await get(client, f"/api/address/{addr}/history?limit=5&after={small['history_next']}")
        assert rest["history"] == history[5:10]

    run(check, tmp_path, medium.blocks)


def test_the_balance_comes_from_the_index_and_matches_the_builders_account(tmp_path, medium):
    addr = medium.address()
    tip = medium.height

    def expected(min_conf):
        confirmed = immature = 0
        for value, height, coinbase in medium.coins.values():
            if coinbase and tip + 1 - height < P.coinbase_maturity:
                immature += value
            elif tip - height + 1 >= min_conf:
                confirmed += value
        return confirmed, immature

    async def check(node, client):
        for min_conf in (0, 1, 2, 6, 50, 100, 111, 112, 500):
            s = await get(client, f"/api/address/{addr}?min_conf={min_conf}&limit=1")
            assert (s["confirmed"], s["immature"]) == expected(min_conf), min_conf
            assert s["unconfirmed"] == 0 and s["min_conf"] == min_conf and s["height"] == tip
        assert expected(1)[1] > 0 and expected(500)[0] < expected(1)[0]  # both cases happen
        assert (s["tx_count"], s["utxo_count"], s["pending_count"]) == (medium.history, len(medium.coins), 0)

    run(check, tmp_path, medium.blocks)


def test_mempool_entries_come_first_and_a_cursor_crosses_from_them_into_the_chain(tmp_path):
    b = ChainBuilder(P, seed=11)
    blocks = b.chain(None, P.coinbase_maturity + 3)
    target = b.pkh(1)
    addr = b.keys[1].public_key.address(P.address_version)

    async def check(node, client):
        # Three payments to the address wait in the pool, the newest spending the oldest's output.
        coins = b.spendable(blocks[-1].hash)
        first = b.spend([coins[0]], [TxOut(7_000, target), TxOut(coins[0][1].value - 8_000, b.pkh(0))])
        second = b.spend([coins[1]], [TxOut(9_000, target), TxOut(coins[1][1].value - 10_000, b.pkh(0))])
        third = b.spend([(OutPoint(first.txid, 0), first.outputs[0])], [TxOut(6_000, b.pkh(2))])
        for tx in (first, second, third):
            node.submit_transaction(tx)
        history, _ = await follow(client, f"/api/address/{addr}/history", "history", 2)
        pending = [h for h in history if h["height"] is None]
        assert [h["txid"] for h in pending] == [third.txid_hex(), second.txid_hex(), first.txid_hex()]
        assert [h["delta"] for h in pending] == [-7_000, 9_000, 7_000]
        assert history[:3] == pending and all(h["height"] is not None for h in history[3:])
        assert len(history) == 3  # the address had nothing on the chain
        utxos, _ = await follow(client, f"/api/address/{addr}/utxos", "utxos", 1)
        assert [(u["txid"], u["vout"], u["height"]) for u in utxos] == [(second.txid_hex(), 0, None)]
        s = await get(client, f"/api/address/{addr}")
        assert s["unconfirmed"] == 9_000 and s["pending_count"] == 3 and s["confirmed"] == 0
        # Mined: the same entries, now on the chain, newest first.
        node.process_block(b.block(blocks[-1], [first, second, third]))
        history, _ = await follow(client, f"/api/address/{addr}/history", "history", 2)
        assert [(h["txid"], h["delta"], h["height"]) for h in history] == [
            (third.txid_hex(), -7_000, len(blocks) + 1), (second.txid_hex(), 9_000, len(blocks) + 1),
            (first.txid_hex(), 7_000, len(blocks) + 1)]

    run(check, tmp_path, blocks)


def test_bad_limits_and_cursors_are_refused_with_a_reason(tmp_path):
    addr = PrivateKey(5).public_key.address(P.address_version)

    async def check(node, client):
        for path, words in (
            (f"/api/address/{addr}/history?limit=0", "limit must be 1..1000"),
            (f"/api/address/{addr}/history?limit=1001", "limit must be 1..1000"),
            (f"/api/address/{addr}/utxos?limit=x", "limit must be a number"),
            (f"/api/address/{addr}/history?after=zz", "is not a cursor"),
            (f"/api/address/{addr}/history?after=c00", "is not a cursor"),
            (f"/api/address/{addr}/history?after=m3.1", "is not a cursor"),   # a coin cursor
            (f"/api/address/{addr}/utxos?after=m3", "is not a cursor"),       # a history cursor
            (f"/api/address/{addr}/utxos?after=c" + "0" * 80 + "zz", "is not a cursor"),
            (f"/api/address/{addr}?min_conf=-1", "min_conf must be at least 0"),
            ("/api/mempool?after=1.0.3", "is not a cursor"),
            ("/api/mempool?after=abc", "is not a cursor"),
            ("/api/blocks?after=-1", "after must be at least 0"),
            ("/api/blocks?limit=5000", "limit must be 1..1000"),
        ):
            data = await get(client, path, 400)
            assert words in data["error"], (path, data)

    run(check, tmp_path)


# -- blocks, transactions, mempool ------------------------------------------------------------------


def test_blocks_page_down_the_chain_from_a_height(tmp_path):
    b = ChainBuilder(P, seed=2)
    blocks = b.chain(None, 30, n_txs=0)

    async def check(node, client):
        assert [x["height"] for x in await get(client, "/api/blocks")] == list(range(30, 20, -1))
        assert [x["height"] for x in await get(client, "/api/blocks?count=3")] == [30, 29, 28]
        seen, after = [], None
        while True:
            page = await get(client, "/api/blocks?limit=7" + (f"&after={after}" if after is not None else ""))
            if not page:
                break
            seen += page
            after = page[-1]["height"]
        assert [x["height"] for x in seen] == list(range(30, -1, -1))
        assert [x["hash"] for x in seen[:30]] == [hx(blk.hash) for blk in reversed(blocks)]
        for x, blk in zip(seen, reversed(blocks)):  # from the index, not a decoded block
            assert (x["size"], x["tx_count"]) == (len(blk.serialize()), len(blk.transactions))
            assert x["miner"] == b.keys[0].public_key.address(P.address_version)
            assert "transactions" not in x

    run(check, tmp_path, blocks)


def test_a_confirmed_transaction_shows_what_its_inputs_spent_and_its_fee(tmp_path):
    b = ChainBuilder(P, seed=3)
    blocks = b.chain(None, P.coinbase_maturity + 1)
    (op, out), = b.spendable(blocks[-1].hash)[:1]
    tx = b.spend([(op, out)], [TxOut(out.value - 12_345, b.pkh(3))])
    blocks.append(b.block(blocks[-1], [tx]))

    async def check(node, client):
        t = await get(client, f"/api/tx/{tx.txid_hex()}")
        assert t["inputs"] == [{"txid": hx(op.txid), "vout": op.index, "value": out.value,
                                "address": b.keys[0].public_key.address(P.address_version)}]
        assert t["fee"] == 12_345 and t["block_height"] == len(blocks) and t["confirmations"] == 1
        assert t["hex"] == tx.serialize().hex() and t["in_mempool"] is False
        full = await get(client, f"/api/block/{len(blocks)}")
        assert full["transactions"][1] == {k: v for k, v in t.items() if k not in ("fee", "in_mempool")}
        assert (await get(client, f"/api/block/{len(blocks)}?full=0"))["transactions"] == [
            blocks[-1].transactions[0].txid_hex(), tx.txid_hex()]

    run(check, tmp_path, blocks)


def test_mempool_pages_best_fee_rate_first_and_a_cursor_survives_its_entry_leaving(tmp_path):
    b = ChainBuilder(P, seed=4)
    blocks = b.chain(None, P.coinbase_maturity + 8)

    async def check(node, client):
        coins = b.spendable(blocks[-1].hash)[:8]
        fees = [3_000, 1_000, 8_000, 2_000, 5_000, 4_000, 7_000, 6_000]
        txs = [b.spend([c], [TxOut(c[1].value - fee, b.pkh(2))]) for c, fee in zip(coins, fees)]
        for tx in txs:
            node.submit_transaction(tx)
        listed, pages = await follow(client, "/api/mempool", "transactions", 3)
        assert pages == 3 and [t["fee"] for t in listed] == sorted(fees, reverse=True)
        first = await get(client, "/api/mempool?limit=3")
        assert first["size"] == 8 and first["next"]
        # The last entry of the first page leaves the pool: the next page still starts after it.
        node.process_block(b.block(blocks[-1], [txs[fees.index(6_000)]]))
        second = await get(client, f"/api/mempool?limit=3&after={first['next']}")
        assert [t["fee"] for t in second["transactions"]] == [5_000, 4_000, 3_000]

    run(check, tmp_path, blocks)


# -- the event loop ------------------------------------------------------------------------------


# -- submitting transactions ------------------------------------------------------------------------


def test_a_batch_is_admitted_in_order_with_a_result_per_item_and_relayed_per_tick(tmp_path, monkeypatch):
    """POST /api/txs: a child after its parent is admitted; a duplicate, a double spend,
    bad hex, a non-string and bytes that are no transaction each get their own error;
    what was admitted reaches the protocol in relay ticks of at most TX_RELAY_MAX, in order."""
    from minichain.node import node as node_module
    from minichain.node.api.transactions import MAX_BATCH
    from minichain.node.node import TX_RELAY_DELAY

    monkeypatch.setattr(node_module, "TX_RELAY_MAX", 2)

    b = ChainBuilder(P, seed=12)
    blocks = b.chain(None, P.coinbase_maturity + 3)
    coins = b.spendable(blocks[-1].hash)

    async def check(node, client):
        relayed, when = [], []
        loop = asyncio.get_running_loop()
        node.protocol.relay_txs = lambda txs: relayed.append([t.txid for t in txs]) or when.append(loop.time()) or []
        sent = loop.time()
        parent = b.spend([coins[0]], [TxOut(coins[0][1].value - 1_000, b.pkh(1))])
        child = b.spend([(OutPoint(parent.txid, 0), parent.outputs[0])], [TxOut(parent.outputs[0].value - 1_000, b.pkh(2))])
        rival = b.spend([coins[0]], [TxOut(coins[0][1].value - 2_000, b.pkh(3))])
        other = b.spend([coins[1]], [TxOut(coins[1][1].value - 1_000, b.pkh(1))])
        items = [parent.serialize().hex(), child.serialize().hex(), parent.serialize().hex(), rival.serialize().hex(),
                 "zz", 7, "00", other.serialize().hex()]
        resp = await client.post("/api/txs", json={"hex": items})
        data = await resp.json()
        assert resp.status == 200, data
        assert (data["accepted"], data["rejected"]) == (3, 5)
        results = data["results"]
        assert [r.get("txid") for r in results] == [parent.txid_hex(), child.txid_hex(), None, None, None, None, None,
                                                   other.txid_hex()]
        assert [r.get("status") for r in results] == [None, None, 409, 422, 400, 400, 400, None]
        assert results[3]["error"].startswith("txn-mempool-conflict")
        assert all(t.txid in node.mempool for t in (parent, child, other)) and rival.txid not in node.mempool
        for _ in range(100):
            if len(relayed) == 2:
                break
            await asyncio.sleep(TX_RELAY_DELAY)
        assert relayed == [[parent.txid, child.txid], [other.txid]]
        tick = 0.9 * TX_RELAY_DELAY  # (asyncio may run a timer a clock tick early)
        assert when[0] - sent >= tick and when[1] - when[0] >= tick
        # Once confirmed, a transaction is refused as known (the index is asked only then).
        node.process_block(b.block(blocks[-1], [other]))
        resp = await client.post("/api/txs", json={"hex": [other.serialize().hex()]})
        [result] = (await resp.json())["results"]
        assert result["status"] == 422 and result["error"].startswith("txn-already-known")
        for body, reason in (({"hex": "00"}, "field 'hex' must be a list"),
                             ({"hex": ["00"] * (MAX_BATCH + 1)}, f"at most {MAX_BATCH} transactions")):
            resp = await client.post("/api/txs", json=body)
            assert resp.status == 400 and reason in (await resp.json())["error"]

    run(check, tmp_path, blocks)


def test_a_batch_gives_the_event_loop_a_turn_after_each_slice_of_work(tmp_path, monkeypatch):
    """With a slice of zero seconds, another task runs between every two admissions."""
    from minichain.node.api import transactions

    monkeypatch.setattr(transactions, "LOOP_SLICE", 0.0)
    turns = LoopTurns()
    seen: list[int] = []
    original = transactions.Transactions._admit

    def watched(self, raw_hex):
        seen.append(turns.count)
        return original(self, raw_hex)

    monkeypatch.setattr(transactions.Transactions, "_admit", watched)

    async def check(node, client):
        async with turns:
            resp = await client.post("/api/txs", json={"hex": ["00"] * 20})
        assert (await resp.json())["rejected"] == 20
        assert len(seen) == 20 and len(set(seen)) == 20  # never two admissions in one turn

    run(check, tmp_path)


def test_building_a_page_gives_the_event_loop_a_turn_every_chunk(tmp_path, medium, monkeypatch):
    """Another task counts its turns; each history entry the handler reads notes the count
    at that moment. No more than CHUNK entries may be read without the other task running."""
    addr = medium.address()
    turns = LoopTurns()
    seen: list[int] = []
    original = NodeView.address_history

    def watched(self, pkh, before=None):
        for entry in original(self, pkh, before):
            seen.append(turns.count)
            yield entry

    monkeypatch.setattr(NodeView, "address_history", watched)

    async def check(node, client):
        async with turns:
            data = await get(client, f"/api/address/{addr}/history?limit={MAX_PAGE}")
        assert len(data["history"]) == MAX_PAGE and len(seen) == MAX_PAGE + 1  # one more: is there a next page?
        longest = max(seen.count(t) for t in set(seen))
        assert longest <= common.CHUNK + 1

    run(check, tmp_path, medium.blocks)


def test_status_reports_the_event_loop_lag_a_blocking_call_caused(tmp_path):
    async def check(node, client):
        probe = asyncio.get_running_loop().create_task(node.lag.run())
        await asyncio.sleep(0.1)
        calm = (await get(client, "/api/status"))["loop_lag"]
        assert calm["samples"] >= 2
        time.sleep(0.3)  # hold the loop, as a handler that does too much would
        await asyncio.sleep(0.1)
        lag = (await get(client, "/api/status"))["loop_lag"]
        probe.cancel()
        assert lag["max_ms"] >= 250 and lag["worst_ms"] >= 250 and lag["samples"] > calm["samples"]

    run(check, tmp_path)


def test_lag_report_percentiles_over_the_window():
    monitor = LagMonitor(interval=0.01, window=1.0)  # room for 100 samples
    for i in range(150):
        monitor.record(i / 1000)  # 0..149 ms; the first 50 fall out of the window
    monitor.record(-0.001)  # a timer that fired early counts as no lag
    r = monitor.report()
    assert r["samples"] == 100 and r["last_ms"] == 0.0 and r["max_ms"] == 149.0 and r["worst_ms"] == 149.0
    assert r["p50_ms"] == 100.0 and r["p99_ms"] == 149.0
    assert LagMonitor().report()["samples"] == 0


# -- the view is the API's only way in -----------------------------------------------------------------


def test_the_api_and_the_explorer_read_the_node_only_through_its_view():
    """No module of node/api/ or explorer/ names the Node class or reads a ``node``'s
    fields: they get a NodeView and a NodeControl."""
    files = sorted((ROOT / "minichain/node/api").glob("*.py")) + sorted((ROOT / "minichain/explorer").glob("*.py"))
    assert len(files) >= 9
    for path in files:
        tree = ast.parse(path.read_text())
        for n in ast.walk(tree):
            if isinstance(n, ast.ImportFrom) and n.module == "minichain.node.node":
                assert [a.name for a in n.names] == ["parse_hostport"], path  # a pure helper, no state
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name):
                assert n.value.id not in ("node", "_node"), f"{path.name}:{n.lineno} reads {n.value.id}.{n.attr}"
            if isinstance(n, ast.Name):
                assert n.id != "Node", f"{path.name}:{n.lineno} names Node"
