"""The node's Prometheus metrics in process: a node on a memory store is handed blocks,
transactions and frames through the same hooks the running node uses, and its
registry is scraped and parsed with prometheus_client's own parser.

The numbers expected come from the scenario (two blocks on one branch, three on the
other: one reorganisation two blocks deep), not from the metrics code.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from minichain import params
from minichain.chainstate import BlockStatus, MempoolError
from minichain.core.tx import OutPoint, TxOut
from minichain.node import messages as m
from minichain.node.metrics import PROPAGATION_BUCKETS, Traffic
from minichain.node.node import Node, NodeConfig
from minichain.node.protocol import Misbehaved, Misbehavior
from minichain.store.memory import MemoryStore
from tests.chainbuilder import NOW, ChainBuilder

P = params.regtest


def make_node(tmp_path, name: str = "n") -> Node:
    return Node(NodeConfig(params=P, datadir=str(tmp_path / name), api=None, store="memory"), store=MemoryStore())


def scrape(node: Node) -> dict[tuple[str, frozenset], float]:
    """Every sample of the node's /metrics body, parsed by prometheus_client's parser."""
    body, content_type = node.view().metrics()
    assert content_type.startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples, name: str, **labels) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_two_branches_count_connected_side_branch_one_reorg_two_deep_two_stale_and_tip_changes(tmp_path):
    node = make_node(tmp_path)
    b = ChainBuilder(P)
    left = b.chain(None, 2)
    right = b.chain(None, 3)
    for block in left:
        assert node.backend.accept_block(block, NOW).status is BlockStatus.CONNECTED
    for block in right[:2]:
        assert node.backend.accept_block(block, NOW).status is BlockStatus.SIDE_BRANCH   # equal work: first seen stays
    assert node.backend.accept_block(right[2], NOW).status is BlockStatus.CONNECTED       # more work: reorganise
    assert node.backend.accept_block(left[0], NOW).status is BlockStatus.DUPLICATE

    s = scrape(node)
    assert value(s, "minichain_blocks_accepted_total", status="connected") == 3
    assert value(s, "minichain_blocks_accepted_total", status="side-branch") == 2
    assert value(s, "minichain_blocks_duplicate_total") == 1
    assert value(s, "minichain_chain_tip_changes_total") == 3
    assert value(s, "minichain_chain_reorgs_total") == 1
    assert value(s, "minichain_blocks_stale_total") == 2
    assert value(s, "minichain_chain_reorg_depth_blocks_bucket", le="1.0") == 0
    assert value(s, "minichain_chain_reorg_depth_blocks_bucket", le="2.0") == 1
    assert value(s, "minichain_chain_reorg_depth_blocks_sum") == 2
    assert value(s, "minichain_chain_height") == 3
    assert value(s, "minichain_headers_height") == 3
    assert value(s, "minichain_chain_work") == float(node.chain.tip.chainwork)
    assert value(s, "minichain_chain_tip_fingerprint") == int.from_bytes(right[2].hash[:6], "little")


def test_an_orphan_then_its_parent_count_one_orphan_two_connected_and_an_invalid_block_its_reason(tmp_path):
    node = make_node(tmp_path)
    b = ChainBuilder(P)
    parent, child = b.chain(None, 2)
    assert node.backend.accept_block(child, NOW).status is BlockStatus.ORPHAN
    assert node.backend.accept_block(parent, NOW).status is BlockStatus.CONNECTED   # and releases the child
    greedy = b.block(child, coinbase_value=100 * P.initial_subsidy, register=False)
    result = node.backend.accept_block(greedy, NOW)
    assert result.status is BlockStatus.INVALID and result.reason

    s = scrape(node)
    assert value(s, "minichain_blocks_accepted_total", status="orphan") == 1
    assert value(s, "minichain_blocks_accepted_total", status="connected") == 2
    assert value(s, "minichain_blocks_rejected_total", reason=result.reason) == 1
    assert value(s, "minichain_chain_height") == 2


def test_propagation_is_the_time_from_the_first_announcement_to_storage_and_skips_our_own_blocks(tmp_path):
    node = make_node(tmp_path)
    b = ChainBuilder(P)
    first, second, third = b.chain(None, 3)
    entries = node.chain.tree.entries
    heard = time.time() - 7.0                  # announced 7 s before it is stored
    node.metrics.announced(m.Headers([first.header]), heard, entries)
    node.metrics.announced(m.Inv([(m.INV_BLOCK, first.hash)]), heard + 5, entries)   # a later announcement: ignored
    node.backend.accept_block(first, NOW)
    node.backend.accept_block(second, NOW)     # never announced (our own, say): not observed
    node.backend.accept_block(third, NOW)

    s = scrape(node)
    assert value(s, "minichain_block_propagation_seconds_count") == 1
    assert 7.0 <= value(s, "minichain_block_propagation_seconds_sum") < 60.0
    above = [b for b in PROPAGATION_BUCKETS if b >= 7.0]
    below = [b for b in PROPAGATION_BUCKETS if b < 7.0]
    assert value(s, "minichain_block_propagation_seconds_bucket", le=str(float(above[0]))) == 1
    assert value(s, "minichain_block_propagation_seconds_bucket", le=str(float(below[-1]))) == 0


def test_transactions_accepted_and_rejected_by_the_mempools_reason(tmp_path):
    node = make_node(tmp_path)
    b = ChainBuilder(P)
    blocks = b.chain(None, P.coinbase_maturity + 1)
    for block in blocks:
        node.backend.accept_block(block, NOW)
    coin = b.spendable(blocks[-1].hash)[0]
    tx = b.spend([coin], [TxOut(coin[1].value - 1000, b.pkh(1))])
    node.backend.admit_tx(tx)
    with pytest.raises(MempoolError) as again:
        node.backend.admit_tx(tx)
    missing = b.spend([(OutPoint(b"\x42" * 32, 0), coin[1])], [TxOut(5, b.pkh(2))])
    reason = node.backend.accept_tx(missing, NOW)
    assert reason is not None

    s = scrape(node)
    assert value(s, "minichain_transactions_accepted_total") == 1
    assert value(s, "minichain_transactions_rejected_total", reason=again.value.reason) == 1
    assert value(s, "minichain_transactions_rejected_total", reason=reason) == 1
    assert value(s, "minichain_mempool_transactions") == 1
    assert value(s, "minichain_mempool_bytes") == len(tx.serialize())


def test_frames_and_bytes_are_counted_by_message_type_and_unknown_types_together():
    traffic = Traffic()
    ping = m.encode(m.Ping(7))
    traffic.received(ping)
    traffic.received(ping)
    traffic.received(bytes([200]) + b"junk")
    traffic.received(bytes([201]) + b"more junk")
    traffic.received(b"")                            # nothing to count (no type byte)
    assert traffic.received_messages[m.Ping.TYPE] == 2
    assert traffic.received_bytes[m.Ping.TYPE] == 2 * len(ping)
    assert traffic.received_bytes[200] == 5 and traffic.received_messages[201] == 1
    assert sum(traffic.received_messages) == 4


def test_the_scrape_reports_traffic_by_message_name_effects_and_bans(tmp_path):
    node = make_node(tmp_path)
    traffic = node.metrics.traffic
    ping = m.encode(m.Ping(1))
    traffic.received(ping)
    traffic.received(bytes([250]) + b"x" * 9)
    traffic.sent_bytes[m.Headers.TYPE] += 123       # what Peer._write_loop does per frame
    traffic.sent_messages[m.Headers.TYPE] += 1
    peer = SimpleNamespace(name="10.1.2.3:8333", close=lambda reason: None)
    node._execute([Misbehaved(peer, Misbehavior.INVALID_TX, "bad", 10, False),
                   Misbehaved(peer, Misbehavior.INVALID_BLOCK, "worse", 110, True)])
    node.ban("10.9.9.9", None, 60)

    s = scrape(node)
    assert value(s, "minichain_p2p_received_messages_total", message="ping") == 1
    assert value(s, "minichain_p2p_received_bytes_total", message="ping") == len(ping)
    assert value(s, "minichain_p2p_received_bytes_total", message="unknown") == 10
    assert value(s, "minichain_p2p_sent_bytes_total", message="headers") == 123
    assert value(s, "minichain_p2p_sent_messages_total", message="block") == 0
    assert value(s, "minichain_peer_misbehavior_total", reason="invalid-tx") == 1
    assert value(s, "minichain_peer_misbehavior_total", reason="invalid-block") == 1
    assert value(s, "minichain_peer_bans_total", reason="invalid-block") == 1
    assert value(s, "minichain_peer_bans_total", reason="invalid-tx") == 0
    assert value(s, "minichain_peer_bans_total", reason="operator") == 1
    assert value(s, "minichain_bans") == 1
    assert value(s, "minichain_protocol_effects_total", effect="misbehaved") == 2
    assert value(s, "minichain_peers", direction="inbound") == 0


def test_each_node_has_its_own_registry(tmp_path):
    a, b = make_node(tmp_path, "a"), make_node(tmp_path, "b")
    for block in ChainBuilder(P).chain(None, 2):
        a.backend.accept_block(block, NOW)
    assert value(scrape(a), "minichain_chain_tip_changes_total") == 2
    assert value(scrape(b), "minichain_chain_tip_changes_total") == 0
    assert value(scrape(b), "minichain_chain_height") == 0


def test_openmetrics_when_the_scraper_prefers_it_else_the_text_format(tmp_path):
    view = make_node(tmp_path).view()
    body, content_type = view.metrics("application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5")
    assert content_type.startswith("application/openmetrics-text") and body.rstrip().endswith(b"# EOF")
    body, content_type = view.metrics(None)
    assert content_type == "text/plain; version=0.0.4; charset=utf-8" and b"# EOF" not in body
    assert b"\nminichain_chain_height 0.0\n" in body
