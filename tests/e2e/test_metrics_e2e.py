"""``/metrics`` of real node processes, scraped over HTTP and parsed with
prometheus_client's parser, while blocks, transactions, rejections, a ban and a
reorganisation happen; and the node's ``--log-format json`` lines telling the same story.

Two nodes a-b: a mines, a payment is admitted and its double spend refused, a peer
sends a block with a bad proof of work (rejected, banned), then the link is cut, a
mines one block and b two, and healing the link makes a reorganise one block deep.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from minichain import params
from minichain.core.tx import Transaction, TxOut, sign_inputs
from tests.e2e.harness import NodeProcess, sync_blocks, tips, wait_peers, wait_until
from tests.e2e.test_node_e2e import BOB, MINER, MINER_ADDR, _attack, _bad_blocks, pay, submit

pytestmark = pytest.mark.slow

P = params.regtest


def scrape(node: NodeProcess) -> dict[tuple[str, frozenset], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{node.api_port}/metrics", timeout=10) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def v(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def json_events(node: NodeProcess) -> list[dict]:
    """Every line the node logged, each parsed as JSON (a line that is not JSON fails)."""
    return [json.loads(line) for line in node.log_text().splitlines() if line.strip()]


def test_a_b_counters_move_with_blocks_txs_rejections_a_ban_and_a_one_block_reorg(network):
    a = network.add("a", "--log-format", "json")
    b = network.add("b", "--connect", a.address)
    wait_peers(a, 1)
    start = scrape(a)
    assert v(start, "minichain_chain_height") == 0 and v(start, "minichain_peers", direction="inbound") == 1

    # Blocks, and a payment whose double spend is refused.
    a.generate(P.coinbase_maturity + 1, MINER_ADDR)
    sync_blocks([a, b])
    paid = pay(a, MINER, BOB, 10**8)
    submit(a, paid)
    twin = sign_inputs(Transaction(1, paid.inputs, (TxOut(paid.outputs[0].value - 5000, BOB.public_key.hash160()),), 0),
                       [MINER])
    code, answer = a.request("POST", "/api/tx", {"hex": twin.serialize().hex()})
    assert code >= 400, answer
    wait_until(lambda: v(scrape(b), "minichain_mempool_transactions") == 1, 20, lambda: "payment did not reach b")
    s = scrape(a)
    assert v(s, "minichain_chain_height") == P.coinbase_maturity + 1
    assert v(s, "minichain_blocks_accepted_total", status="connected") == P.coinbase_maturity + 1
    assert v(s, "minichain_miner_blocks_found_total") == P.coinbase_maturity + 1
    assert v(s, "minichain_transactions_accepted_total") == 1
    rejected = {dict(k[1])["reason"]: n for k, n in s.items() if k[0] == "minichain_transactions_rejected_total"}
    assert sum(rejected.values()) == 1 and answer["error"].startswith(next(iter(rejected))), (rejected, answer)
    assert v(s, "minichain_p2p_sent_bytes_total", message="block") > 100 * 80       # b downloaded the blocks
    assert v(s, "minichain_p2p_received_messages_total", message="getdata") >= 1
    # A node that is caught up writes each block it mines at once (chainstate's flush
    # policy keeps a window only while syncing): at least one LevelDB batch per block.
    assert v(s, "minichain_store_write_seconds_count") >= P.coinbase_maturity + 1
    sb = scrape(b)
    assert v(sb, "minichain_p2p_received_bytes_total", message="block") == v(s, "minichain_p2p_sent_bytes_total",
                                                                            message="block")
    assert v(sb, "minichain_block_propagation_seconds_count") == P.coinbase_maturity + 1
    assert v(sb, "minichain_transactions_accepted_total") == 1 and v(sb, "minichain_peers", direction="outbound") == 1

    # A peer sending a block with a bad proof of work: rejected, and the peer banned.
    outcome = asyncio.run(_attack(a, 50100, _bad_blocks(a)["bad proof of work"]))
    assert outcome.startswith("closed")
    s = scrape(a)
    assert v(s, "minichain_blocks_rejected_total", reason="high-hash") == 1
    assert v(s, "minichain_peer_bans_total", reason="invalid-block") == 1
    assert v(s, "minichain_peer_misbehavior_total", reason="unsolicited-block") == 1
    assert v(s, "minichain_bans") == 1

    # Cut the link, a mines one block and b two; healed, a reorganises one block deep.
    a.control("partition", {"deny": [b.address]})
    b.control("partition", {"deny": [a.address]})
    wait_until(lambda: a.status()["peers"] == 0 and b.status()["peers"] == 0, 20, lambda: "no split:" + tips([a, b]))
    a.generate(1, MINER_ADDR)
    b.generate(2, BOB.public_key.address(P.address_version))
    a.control("partition", {"deny": []})
    b.control("partition", {"deny": []})
    sync_blocks([a, b], height=P.coinbase_maturity + 3)
    s = scrape(a)
    assert v(s, "minichain_chain_reorgs_total") == 1
    assert v(s, "minichain_blocks_stale_total") == 1
    assert v(s, "minichain_chain_reorg_depth_blocks_bucket", le="1.0") == 1
    assert v(s, "minichain_chain_tip_changes_total") == P.coinbase_maturity + 3   # 102 tip moves, then one reorg
    assert v(s, "minichain_block_propagation_seconds_count") == 2                  # b's two blocks
    assert v(s, "minichain_chain_height") == P.coinbase_maturity + 3
    assert v(scrape(b), "minichain_chain_reorgs_total") == 0

    # The same story in a's JSON log.
    events = json_events(a)
    tip = [e for e in events if e["event"] == "tip"]
    assert tip[-1]["height"] == P.coinbase_maturity + 3 and len(tip[-1]["block"]) == 64 and tip[-1]["peer"] == b.address
    reorg = [e for e in events if e["event"] == "reorg"]
    assert len(reorg) == 1 and reorg[0]["disconnected"] == 1 and reorg[0]["connected"] == 2
    banned = [e for e in events if e["event"] == "misbehaved" and e["banned"]]
    assert banned and banned[0]["reason"] == "invalid-block" and banned[0]["peer"] == "127.0.0.1:50100"
    assert any(e["event"] == "tx" and e["txid"] == paid.txid_hex() for e in events)
    assert all(e["time"].endswith("Z") and e["level"] in ("debug", "info", "warning", "error") for e in events)


def test_metrics_need_no_token_and_refuse_other_methods(network):
    a = network.add("a")
    code, _ = a.request("POST", "/metrics", {})
    assert code == 405
    req = urllib.request.Request(f"http://127.0.0.1:{a.api_port}/metrics",
                                 headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
        assert resp.read().rstrip().endswith(b"# EOF")
