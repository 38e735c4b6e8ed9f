"""The node's in-memory indexes follow connects and reorgs exactly."""

from minichain import params
from minichain.core.tx import OutPoint, TxOut
from minichain.node.index import ChainIndex
from minichain.chainstate import ChainState
from minichain.store.memory import MemoryStore
from tests.chainbuilder import NOW, ChainBuilder


def grouped_utxos(chain):
    out = {}
    for op, coin in chain.utxo_set().items():
        out.setdefault(coin.pubkey_hash, set()).add(op)
    return out


def snapshot(index):
    return (
        {k: set(v) for k, v in index.unspent.items()},
        dict(index.tx_block),
        {k: list(v) for k, v in index.by_address.items()},
    )


def test_index_tracks_connects_and_reorgs_and_matches_a_fresh_rebuild():
    builder = ChainBuilder(params.regtest, seed=3)
    chain = ChainState(MemoryStore(), params.regtest)
    index = ChainIndex(chain)

    def deliver(block):
        result = chain.accept_block(block, NOW)
        index.apply(result.activation)
        assert index.unspent == grouped_utxos(chain)
        assert snapshot(index) == snapshot(ChainIndex(chain))
        return result

    base = builder.chain(None, 102)
    for b in base:
        deliver(b)
    # A block whose second transaction spends an output of its first.
    (op, out), *_ = builder.spendable(base[-1].hash)
    first = builder.spend([(op, out)], [TxOut(out.value - 1000, builder.pkh(1))])
    second = builder.spend([(OutPoint(first.txid, 0), first.outputs[0])], [TxOut(out.value - 2000, builder.pkh(2))])
    chained = builder.block(base[-1], [first, second])
    deliver(chained)
    branch_a = builder.chain(chained, 2, n_txs=3)
    for b in branch_a:
        deliver(b)
    # A heavier branch from below the chained block: a reorg that undoes it.
    branch_b = builder.chain(base[-2], 5, n_txs=3)
    for b in branch_b:
        deliver(b)
    assert chain.tip.hash == branch_b[-1].hash
    assert not index.has_tx(second.txid) and first.txid not in index.tx_block
    # And back again.
    for b in builder.chain(branch_a[-1], 4, n_txs=2):
        deliver(b)
    assert index.tx_block[second.txid] == chained.hash
    assert chain.tip.hash != branch_b[-1].hash
