"""The transaction and address indexes (chainstate/index.py) against an oracle computed
from the test's own record of every block, through connects, reorgs, reindex and the
upgrade of a format-1 store; and ``verify`` catching an index out of step.

The oracle never calls the index code: it walks the active chain's blocks with the
chain builder's UTXO sets and works out each address's history, balance and coins.
"""

import dataclasses
import logging
from collections import defaultdict

import pytest

from minichain import params
from minichain.chainstate import ChainState
from minichain.chainstate.index import SPACES
from minichain.core.tx import OutPoint, TxOut
from minichain.store import MemoryStore, StoreBatch, StoreMismatchError
from minichain.store.leveldb import LevelDBStore
from tests.chainbuilder import NOW, ChainBuilder

P = dataclasses.replace(params.regtest, coinbase_maturity=3)


@pytest.fixture(params=["memory", "leveldb"])
def new_store(request, tmp_path):
    opened = []

    def make():
        s = MemoryStore() if request.param == "memory" else LevelDBStore(tmp_path / f"db{len(opened)}")
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


def oracle(builder, chain):
    """(history, coins, locations) of the active chain from the builder's records:
    history[pkh] = [(height, position, txid, delta)] oldest first; coins[pkh] = {outpoint:
    (height, value, coinbase)}; locations[txid] = (block hash, height, position, tx bytes)."""
    history, locations = defaultdict(list), {}
    for entry in chain.tree.active[1:]:
        block = builder.blocks[entry.hash]
        coins = dict(builder.utxos[block.header.prev_hash])
        raw = block.serialize()
        for pos, tx in enumerate(block.transactions):
            delta = defaultdict(int)
            if not tx.is_coinbase():
                for txin in tx.inputs:
                    out, _, _ = coins.pop(txin.prevout)
                    delta[out.pubkey_hash] -= out.value
            for i, out in enumerate(tx.outputs):
                delta[out.pubkey_hash] += out.value
                coins[OutPoint(tx.txid, i)] = (out, entry.height, tx.is_coinbase())
            for pkh, d in delta.items():
                history[pkh].append((entry.height, pos, tx.txid, d))
            found = raw.find(tx.serialize())
            assert found > 0
            locations[tx.txid] = (block.hash, entry.height, pos, tx.serialize())
    by_address = defaultdict(dict)
    for op, (out, height, cb) in builder.utxos[chain.tip.hash].items():
        by_address[out.pubkey_hash][op] = (height, out.value, cb)
    return history, by_address, locations


def check_against_oracle(builder, chain):
    history, coins, locations = oracle(builder, chain)
    index = chain.index
    for pkh in set(history) | set(coins) | {builder.pkh(i) for i in range(8)}:
        got = [(e.height, e.position, e.txid, e.delta) for e in index.history(pkh)]
        assert got == history.get(pkh, [])[::-1]  # newest first
        got_coins = {c.outpoint: (c.height, c.value, c.coinbase) for c in index.coins(pkh)}
        assert got_coins == coins.get(pkh, {})
        heights = [c.height for c in index.coins(pkh)]
        assert heights == sorted(heights, reverse=True)
        totals = index.totals(pkh)
        assert (totals.balance, totals.coins, totals.txs) == (
            sum(v for _, v, _ in coins.get(pkh, {}).values()), len(coins.get(pkh, {})), len(history.get(pkh, [])))
    for txid, (block_hash, height, pos, raw) in locations.items():
        tx, loc = index.transaction(txid)
        assert (loc.block_hash, loc.height, loc.position, tx.serialize()) == (block_hash, height, pos, raw)
    # Nothing else is indexed: every tx row is a transaction of the active chain (or genesis).
    indexed = {k for k, _ in chain.store.iter_entries("tx")}
    assert indexed == set(locations) | {chain.genesis.transactions[0].txid}


def test_indexes_follow_connects_and_reorgs_exactly(new_store):
    builder = ChainBuilder(P, seed=3)
    chain = ChainState(new_store(), P)

    def deliver(blocks):
        for b in blocks:
            chain.accept_block(b, NOW)
        check_against_oracle(builder, chain)
        report = chain.verify(check_signatures=False)  # and a full rebuild agrees
        assert report.ok, str(report)

    base = builder.chain(None, 8, coinbase_outputs=2)
    deliver(base)
    # A block whose second transaction spends an output of its first (a coin created and
    # spent in one block is in no one's coins), and a payment back to the same key.
    (op, out), *_ = builder.spendable(base[-1].hash)
    first = builder.spend([(op, out)], [TxOut(out.value - 1000, builder.pkh(1)), TxOut(500, builder.pkh(0))])
    second = builder.spend([(OutPoint(first.txid, 0), first.outputs[0])], [TxOut(out.value - 3000, builder.pkh(2))])
    chained = builder.block(base[-1], [first, second])
    deliver([chained])
    branch_a = builder.chain(chained, 2, n_txs=3)
    deliver(branch_a)
    # A heavier branch from below the chained block: a reorg that undoes it.
    branch_b = builder.chain(base[-2], 5, n_txs=3)
    deliver(branch_b)
    assert chain.tip.hash == branch_b[-1].hash
    assert not chain.index.has_tx(second.txid) and chain.index.location(first.txid) is None
    # And back again.
    deliver(builder.chain(branch_a[-1], 4, n_txs=2))
    assert chain.index.location(second.txid).block_hash == chained.hash


def test_pages_continue_from_a_cursor_without_gaps_or_repeats(new_store):
    builder = ChainBuilder(P, seed=5)
    chain = ChainState(new_store(), P)
    for b in builder.chain(None, 30, n_txs=4, coinbase_outputs=3):
        chain.accept_block(b, NOW)
    pkh = builder.pkh(0)
    whole = list(chain.index.history(pkh))
    assert len(whole) > 20
    paged, cursor = [], None
    while True:
        page = list(zip(range(7), chain.index.history(pkh, before=cursor)))
        if not page:
            break
        paged += [e for _, e in page]
        cursor = page[-1][1].cursor
    assert paged == whole
    coins = list(chain.index.coins(pkh))
    cut = coins[len(coins) // 2]
    assert list(chain.index.coins(pkh, before=cut.cursor)) == coins[len(coins) // 2 + 1:]
    recent = list(chain.index.coins(pkh, min_height=20))
    assert recent == [c for c in coins if c.height >= 20] and recent


def test_reindex_rebuilds_the_same_indexes(new_store):
    builder = ChainBuilder(P, seed=8)
    chain = ChainState(new_store(), P)
    blocks = builder.chain(None, 12, n_txs=3)
    for b in blocks + builder.chain(blocks[6], 7, n_txs=2):
        chain.accept_block(b, NOW)
    before = {space: list(chain.store.iter_entries(space)) for space in SPACES}
    chain.reindex()
    assert {space: list(chain.store.iter_entries(space)) for space in SPACES} == before
    check_against_oracle(builder, chain)


def downgrade_to_format_1(store):
    """What a store written before the indexes looks like: no index rows, the old tag
    (also used by tests/e2e/test_store_e2e.py and benchmarks/api.py)."""
    b = StoreBatch()
    for space in SPACES:
        for key, _ in store.iter_entries(space):
            b.delete_entry(space, key)
    b.put_meta("format", b"minichain-store-1")
    store.write(b)


def test_a_format_1_store_is_upgraded_once_with_a_warning(tmp_path, caplog):
    builder = ChainBuilder(P, seed=9)
    path = tmp_path / "old"
    with LevelDBStore(path) as store:
        chain = ChainState(store, P)
        for b in builder.chain(None, 10, n_txs=3):
            chain.accept_block(b, NOW)
        tip = chain.tip.hash
        downgrade_to_format_1(store)
        assert list(store.iter_entries("history")) == []
    with caplog.at_level(logging.WARNING, logger="minichain.chainstate"):
        with LevelDBStore(path) as store:
            chain = ChainState(store, P)
            assert chain.tip.hash == tip and store.get_meta("format") == b"minichain-store-2"
            check_against_oracle(builder, chain)
            assert chain.verify(check_signatures=False).ok
    assert "upgrading the store from format b'minichain-store-1'" in caplog.text
    assert "building the transaction and address indexes" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="minichain.chainstate"):
        with LevelDBStore(path) as store:
            ChainState(store, P)
    assert "upgrading" not in caplog.text  # once


def test_an_unknown_store_format_is_refused_with_a_clear_message(new_store):
    store = new_store()
    ChainState(store, P)
    b = StoreBatch()
    b.put_meta("format", b"minichain-store-99")
    store.write(b)
    with pytest.raises(StoreMismatchError, match="store format b'minichain-store-99' is not one this version"):
        ChainState(store, P)


def test_verify_reports_an_index_that_is_out_of_step(new_store):
    builder = ChainBuilder(P, seed=4)
    chain = ChainState(new_store(), P)
    blocks = builder.chain(None, 6, n_txs=2)
    for b in blocks:
        chain.accept_block(b, NOW)
    assert chain.verify(check_signatures=False).ok
    b = StoreBatch()
    key, value = next(chain.store.iter_entries("history"))
    b.delete_entry("history", key)
    b.put_entry("tx", b"\x07" * 32, next(chain.store.iter_entries("tx"))[1])
    chain.store.write(b)
    report = chain.verify(check_signatures=False)
    assert not report.ok
    assert any("missing from the history index" in p for p in report.problems)
    assert any("extra in the tx index" in p for p in report.problems)
