"""Mempool policy: admission, conflicts, fee-rate order, the size bound and reorgs."""

import pytest

from minichain import params
from minichain.core.keys import PrivateKey
from minichain.core.tx import OutPoint, Transaction, TxIn, TxOut, sign_inputs
from minichain.core.validation import Coin
from minichain.chainstate import Mempool, MempoolError

P = params.regtest
ALICE = PrivateKey.from_bytes(bytes(31) + b"\x01")
BOB = PrivateKey.from_bytes(bytes(31) + b"\x02")
HEIGHT = 500


class Chain:
    """A UTXO set as a dict: the coin view the node would hand the pool."""

    def __init__(self):
        self.coins = {}

    def get_coin(self, outpoint):
        return self.coins.get(outpoint)

    def fund(self, key, value, n=1, coinbase=False, height=10):
        outs = []
        for i in range(n):
            op = OutPoint(bytes([len(self.coins) % 256, i % 256]) + bytes(29) + b"\x07", 0)
            self.coins[op] = Coin(value, key.public_key.hash160(), height, coinbase)
            outs.append(op)
        return outs


def spend(key, outpoints, outputs, to=BOB):
    tx = Transaction(1, tuple(TxIn(op) for op in outpoints),
                     tuple(TxOut(v, to.public_key.hash160()) for v in outputs), 0)
    return sign_inputs(tx, [key] * len(outpoints))


@pytest.fixture
def chain():
    return Chain()


def test_valid_spend_is_admitted_with_its_fee(chain):
    pool = Mempool(P)
    (coin,) = chain.fund(ALICE, 1000)
    entry = pool.add(spend(ALICE, [coin], [900]), chain, HEIGHT)
    assert entry.fee == 100 and entry.txid in pool and pool.bytes == entry.size


def test_second_spend_of_a_pending_outpoint_is_refused(chain):
    pool = Mempool(P)
    (coin,) = chain.fund(ALICE, 1000)
    first = spend(ALICE, [coin], [900])
    pool.add(first, chain, HEIGHT)
    double = spend(ALICE, [coin], [800], to=ALICE)
    with pytest.raises(MempoolError) as exc:
        pool.add(double, chain, HEIGHT)
    assert exc.value.reason == "txn-mempool-conflict"
    assert double.txid not in pool and first.txid in pool


@pytest.mark.parametrize(
    "mutate,reason",
    [
        (lambda tx, c: spend(BOB, [c], [900]), "bad-txns-pubkey-mismatch"),
        (lambda tx, c: spend(ALICE, [OutPoint(b"\x99" * 32, 0)], [900]), "bad-txns-inputs-missingorspent"),
        (lambda tx, c: spend(ALICE, [c], [1001]), "bad-txns-in-belowout"),
        (lambda tx, c: spend(ALICE, [c, c], [900]), "bad-txns-inputs-duplicate"),
    ],
    ids=["wrong-key", "missing-input", "overspend", "duplicate-input"],
)
def test_invalid_transactions_are_refused_with_a_reason(chain, mutate, reason):
    from minichain.core import validation

    pool = Mempool(P)
    (coin,) = chain.fund(ALICE, 1000)
    bad = mutate(None, coin)
    with pytest.raises(MempoolError) as exc:
        pool.add(bad, chain, HEIGHT)
    expected = getattr(validation, "SCRIPT_PUBKEY_MISMATCH", reason) if reason == "bad-txns-pubkey-mismatch" else reason
    assert exc.value.reason == expected
    assert len(pool) == 0 and pool.bytes == 0


def test_bad_signature_is_refused(chain):
    pool = Mempool(P)
    (coin,) = chain.fund(ALICE, 1000)
    good = spend(ALICE, [coin], [900])
    other = spend(ALICE, [coin], [901])
    forged = Transaction(good.version, (TxIn(coin, other.inputs[0].signature, good.inputs[0].pubkey),), good.outputs, 0)
    with pytest.raises(MempoolError):
        pool.add(forged, chain, HEIGHT)
    assert len(pool) == 0


def test_immature_coinbase_cannot_be_spent(chain):
    pool = Mempool(P)
    (coin,) = chain.fund(ALICE, 5000, coinbase=True, height=HEIGHT - 10)
    with pytest.raises(MempoolError) as exc:
        pool.add(spend(ALICE, [coin], [4000]), chain, HEIGHT)
    assert exc.value.reason == "bad-txns-premature-spend-of-coinbase"
    pool.add(spend(ALICE, [coin], [4000]), chain, HEIGHT - 10 + P.coinbase_maturity)


def test_child_of_an_unconfirmed_parent_is_admitted_and_ordered_after_it(chain):
    pool = Mempool(P)
    (coin,) = chain.fund(ALICE, 10_000)
    parent = spend(ALICE, [coin], [9_990], to=BOB)       # low fee rate
    child = spend(BOB, [OutPoint(parent.txid, 0)], [5_000])  # very high fee rate
    pool.add(parent, chain, HEIGHT)
    pool.add(child, chain, HEIGHT)
    assert pool.get(child.txid).parents == {parent.txid}
    order = [e.txid for e in pool.select(1_000_000)]
    assert order == [parent.txid, child.txid]
    # Removing the parent takes the child with it.
    removed = pool.remove(parent.txid)
    assert {e.txid for e in removed} == {parent.txid, child.txid} and len(pool) == 0


def test_select_orders_by_fee_rate_and_respects_the_size(chain):
    pool = Mempool(P)
    coins = chain.fund(ALICE, 10_000, n=5)
    txs = [spend(ALICE, [c], [10_000 - fee]) for c, fee in zip(coins, [10, 500, 50, 1000, 5])]
    for tx in txs:
        pool.add(tx, chain, HEIGHT)
    fees = [e.fee for e in pool.select(1_000_000)]
    assert fees == [1000, 500, 50, 10, 5]
    # Room for exactly the two best (DER signatures vary in length by a byte or two).
    assert [e.fee for e in pool.select(txs[3].size + txs[1].size)] == [1000, 500]


def test_full_pool_evicts_the_lowest_fee_rate_first(chain):
    coins = chain.fund(ALICE, 10_000, n=4)
    txs = [spend(ALICE, [c], [10_000 - fee]) for c, fee in zip(coins, [300, 100, 200, 50])]
    pool = Mempool(P, max_bytes=sum(tx.size for tx in txs[:3]))
    for tx in txs[:3]:
        pool.add(tx, chain, HEIGHT)
    # The fourth pays least: refused, the pool unchanged.
    with pytest.raises(MempoolError) as exc:
        pool.add(txs[3], chain, HEIGHT)
    assert exc.value.reason == "mempool-full" and len(pool) == 3
    # One paying more pushes out the lowest (fee 100).
    (extra,) = chain.fund(ALICE, 10_000)
    rich = spend(ALICE, [extra], [9_000])
    pool.add(rich, chain, HEIGHT)
    assert sorted(e.fee for e in pool.entries()) == [200, 300, 1000]
    assert pool.bytes <= pool.max_bytes


def test_block_removes_mined_and_conflicting_transactions(chain):
    pool = Mempool(P)
    c1, c2 = chain.fund(ALICE, 1000, n=2)
    mined = spend(ALICE, [c1], [900])
    loser = spend(ALICE, [c2], [900])
    loser_child = spend(BOB, [OutPoint(loser.txid, 0)], [800])
    pool.add(mined, chain, HEIGHT)
    pool.add(loser, chain, HEIGHT)
    pool.add(loser_child, chain, HEIGHT)
    winner = spend(ALICE, [c2], [950], to=ALICE)   # in the block, conflicts with `loser`
    conflicts = pool.remove_for_block([mined, winner])
    assert {e.txid for e in conflicts} == {loser.txid, loser_child.txid}
    assert len(pool) == 0 and pool.bytes == 0
    assert pool.spender(c1) is None and pool.spender(c2) is None


def test_reorg_readds_disconnected_transactions_unless_they_conflict(chain):
    pool = Mempool(P)
    c1, c2 = chain.fund(ALICE, 1000, n=2)
    back = spend(ALICE, [c1], [900])
    conflicted = spend(ALICE, [c2], [900])
    pending = spend(ALICE, [c2], [800], to=ALICE)
    pool.add(pending, chain, HEIGHT)
    added = pool.readd([back, conflicted], chain, HEIGHT)
    assert [t.txid for t in added] == [back.txid]
    assert conflicted.txid not in pool and pending.txid in pool


def test_revalidate_drops_transactions_whose_inputs_vanished(chain):
    pool = Mempool(P)
    c1, c2 = chain.fund(ALICE, 1000, n=2)
    a = spend(ALICE, [c1], [900])
    a_child = spend(BOB, [OutPoint(a.txid, 0)], [800])
    b = spend(ALICE, [c2], [900])
    for tx in (a, a_child, b):
        pool.add(tx, chain, HEIGHT)
    del chain.coins[c1]  # the new chain spent or never had it
    dropped = pool.revalidate(chain, HEIGHT)
    assert {e.txid for e in dropped} == {a.txid, a_child.txid}
    assert list(e.txid for e in pool.entries()) == [b.txid]


def test_coinbase_and_duplicates_are_refused(chain):
    from minichain.core.tx import make_coinbase

    pool = Mempool(P)
    with pytest.raises(MempoolError, match="coinbase"):
        pool.add(make_coinbase(5, [TxOut(1, b"\x00" * 20)]), chain, HEIGHT)
    (coin,) = chain.fund(ALICE, 1000)
    tx = spend(ALICE, [coin], [900])
    pool.add(tx, chain, HEIGHT)
    with pytest.raises(MempoolError) as exc:
        pool.add(tx, chain, HEIGHT)
    assert exc.value.reason == "txn-already-in-mempool"


def test_touching_lists_what_pays_or_spends_an_address_newest_first_and_forgets_removed_ones(chain):
    carol = PrivateKey.from_bytes(bytes(31) + b"\x03")
    pool = Mempool(P)
    c1, c2 = chain.fund(ALICE, 1000, n=2)
    to_bob = spend(ALICE, [c1], [900])
    to_carol = spend(ALICE, [c2], [900], to=carol)
    bob_spends = spend(BOB, [OutPoint(to_bob.txid, 0)], [800], to=carol)
    for tx in (to_bob, to_carol, bob_spends):
        pool.add(tx, chain, HEIGHT)
    pkh = lambda key: key.public_key.hash160()  # noqa: E731
    assert [e.txid for e in pool.touching(pkh(ALICE))] == [to_carol.txid, to_bob.txid]
    assert [e.txid for e in pool.touching(pkh(BOB))] == [bob_spends.txid, to_bob.txid]
    assert [e.txid for e in pool.touching(pkh(carol))] == [bob_spends.txid, to_carol.txid]
    pool.remove_for_block([to_bob])  # mined: bob's spend stays, spending a confirmed coin now
    assert [e.txid for e in pool.touching(pkh(BOB))] == [bob_spends.txid]
    pool.remove(to_carol.txid)
    assert [e.txid for e in pool.touching(pkh(ALICE))] == []
    assert pool._by_address.keys() == {pkh(BOB), pkh(carol)}  # no empty lists left behind
