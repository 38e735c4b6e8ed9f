"""A node process on a data directory written before the indexes (store format 1): it
upgrades it once, says so in its log, and answers from the indexes; and ``minichain node
--reindex`` rebuilds damaged indexes before the node starts."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from minichain import params
from minichain.chainstate import ChainState
from minichain.cli import main
from minichain.store import StoreBatch
from minichain.store.leveldb import LevelDBStore
from tests.chainbuilder import NOW, ChainBuilder
from tests.e2e.harness import wait_until
from tests.test_chainstate_index import downgrade_to_format_1

pytestmark = pytest.mark.slow

P = params.regtest


def stored_chain(datadir: str, builder: ChainBuilder) -> list:
    blocks = builder.chain(None, P.coinbase_maturity + 5)
    blocks += builder.chain(blocks[-1], 4, n_txs=3)
    with LevelDBStore(os.path.join(datadir, "chain")) as store:
        chain = ChainState(store, P)
        for b in blocks:
            chain.accept_block(b, NOW)
        assert chain.tip.hash == blocks[-1].hash
    return blocks


def history_of(node, address: str) -> list[dict]:
    return node.get(f"/api/address/{address}/history")["history"]


def test_a_format_1_directory_is_upgraded_once_at_the_first_start(network):
    builder = ChainBuilder(P, seed=21)
    node = network.add("old", start=False)
    blocks = stored_chain(node.datadir, builder)
    address = builder.keys[1].public_key.address(P.address_version)
    with LevelDBStore(os.path.join(node.datadir, "chain")) as store:
        expected = len(list(ChainState(store, P).index.history(builder.pkh(1))))
        downgrade_to_format_1(store)
    assert expected > 0
    node.start()
    assert node.status()["height"] == len(blocks)
    assert len(history_of(node, address)) == expected
    node.stop()
    node.start()
    assert len(history_of(node, address)) == expected
    log = node.log_text()
    assert log.count("upgrading the store from format b'minichain-store-1'") == 1
    assert "store upgraded to format b'minichain-store-2'" in log


def test_reindex_rebuilds_damaged_indexes_before_the_node_starts(network):
    builder = ChainBuilder(P, seed=22)
    node = network.add("damaged", start=False)
    stored_chain(node.datadir, builder)
    with LevelDBStore(os.path.join(node.datadir, "chain")) as store:
        b = StoreBatch()
        for key, _ in list(store.iter_entries("history"))[:5]:
            b.delete_entry("history", key)
        store.write(b)
        assert not ChainState(store, P).verify(check_signatures=False).ok
    node.start("--reindex")
    node.stop()
    assert "reindexed" in node.log_text()
    with LevelDBStore(os.path.join(node.datadir, "chain")) as store:
        report = ChainState(store, P).verify()
        assert report.ok, str(report)


def test_reindex_with_a_memory_store_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["node", "--network", "regtest", "--datadir", str(tmp_path), "--store",
                                       "memory", "--reindex"])
    assert result.exit_code == 2 and "a memory store has nothing to rebuild" in result.output


def test_a_node_killed_during_ibd_loses_at_most_its_flush_window_and_verifies(network):
    """A node syncing from a peer with ``--flush-blocks 16`` is SIGKILLed in the middle of
    the sync: its store holds a tip at most 16 blocks below the height it last reported,
    ``verify`` passes (UTXO set, undo data and indexes are exactly that tip's), and
    restarted on the same directory it finishes the sync."""
    window = 16
    builder = ChainBuilder(P, seed=31)
    blocks = builder.chain(None, P.coinbase_maturity + 5)
    blocks += builder.chain(blocks[-1], 600, n_txs=2)
    source = network.add("source", start=False)
    with LevelDBStore(os.path.join(source.datadir, "chain")) as store:
        chain = ChainState(store, P)
        for b in blocks:
            chain.accept_block(b, NOW)
    source.start("--no-discover")
    node = network.add("syncing", "--no-discover", "--flush-blocks", str(window), "--connect", source.address)
    seen = 0
    while seen < 250:
        seen = node.status()["height"]
    node.kill()
    with LevelDBStore(os.path.join(node.datadir, "chain")) as store:
        state = ChainState(store, P)
        report = state.verify()
        assert report.ok, str(report)
        assert seen - window <= state.height < len(blocks), (seen, state.height)
    node.start("--no-discover", "--connect", source.address)
    wait_until(lambda: node.status()["height"] == len(blocks), 120, lambda: f"at {node.status()['height']}")
    node.stop()
    with LevelDBStore(os.path.join(node.datadir, "chain")) as store:
        state = ChainState(store, P)
        assert state.verify().ok and state.tip.hash == blocks[-1].hash
