"""Consensus rules at the function level (core/validation.py, core/sigcache.py).

Block-level rules are also exercised through the chain state, with the state checked
unchanged, in tests/test_chainstate.py; here are the pieces, including the rules no
honestly built chain can reach (BIP 30, out-of-range input values), which need a
fabricated UTXO view.
"""

import dataclasses

import pytest

from minichain import params
from minichain.core import keys
from minichain.core.chain import BlockTree
from minichain.core.sigcache import SignatureCache, SignatureChecker
from minichain.core.tx import OutPoint, Transaction, TxIn, TxOut
from minichain.core.validation import (
    LOCKTIME_THRESHOLD,
    SCRIPT_BAD_SIGNATURE,
    SCRIPT_NONCANONICAL_SIGNATURE,
    SCRIPT_PUBKEY_MISMATCH,
    Coin,
    CoinsCache,
    CorruptionError,
    ValidationError,
    block_subsidy,
    check_block,
    check_transaction,
    check_tx_inputs,
    check_tx_signatures,
    connect_block,
    contextual_check_block,
    contextual_check_block_header,
    deserialize_undo,
    disconnect_block,
    is_final_tx,
    serialize_undo,
)
from minichain.params import COIN, MAX_MONEY
from tests.chainbuilder import NOW, ChainBuilder, assemble

P = dataclasses.replace(params.regtest, coinbase_maturity=3)


class DictView:
    def __init__(self, coins=None):
        self.coins = dict(coins or {})

    def get_coin(self, op):
        return self.coins.get(op)


def reason_of(fn, *args, **kw) -> str:
    with pytest.raises(ValidationError) as info:
        fn(*args, **kw)
    return info.value.reason


def op(n: int, i: int = 0) -> OutPoint:
    return OutPoint(n.to_bytes(32, "little"), i)


# ------------------------------------------------------------------ money


def test_subsidy_halves_every_interval_and_ends_after_64_halvings():
    net = params.main
    assert block_subsidy(0, net) == 50 * COIN
    assert block_subsidy(209_999, net) == 50 * COIN
    assert block_subsidy(210_000, net) == 25 * COIN
    assert block_subsidy(420_000, net) == 1_250_000_000
    assert block_subsidy(33 * 210_000, net) == 0  # 50e8 >> 33 == 0
    assert block_subsidy(64 * 210_000, net) == 0
    assert block_subsidy(10**9, net) == 0
    assert block_subsidy(150, params.regtest) == 25 * COIN
    # The total issued never exceeds MAX_MONEY (it is just under 21M coins).
    total = sum(block_subsidy(h * 210_000, net) * 210_000 for h in range(70))
    assert total <= MAX_MONEY and total > 20_999_999 * COIN


# ------------------------------------------------------------ coins and undo


def test_coin_and_undo_round_trip():
    coins = [Coin(5, b"\x01" * 20, 7, True), Coin(MAX_MONEY, b"\x02" * 20, 0, False)]
    for c in coins:
        assert Coin.deserialize(c.serialize()) == c
    undo = ((coins[0],), (), (coins[1], coins[0]))
    assert deserialize_undo(serialize_undo(undo)) == undo
    assert deserialize_undo(serialize_undo(())) == ()


def test_coins_cache_layers_changes_over_its_base_and_leaves_the_base_alone():
    base = DictView({op(1): Coin(1, b"a" * 20, 1, False), op(2): Coin(2, b"b" * 20, 1, False)})
    before = dict(base.coins)
    cache = CoinsCache(base)
    assert cache.spend_coin(op(1)).value == 1
    assert cache.get_coin(op(1)) is None and cache.spend_coin(op(1)) is None
    cache.add_coin(op(3), Coin(3, b"c" * 20, 2, False))
    cache.add_coin(op(4), Coin(4, b"d" * 20, 2, False))
    assert cache.spend_coin(op(4)).value == 4  # created and spent here: never reaches the base
    with pytest.raises(ValueError):
        cache.add_coin(op(2), Coin(9, b"x" * 20, 2, False))
    puts, deletes = cache.changes()
    assert set(puts) == {op(3)} and deletes == [op(1)]
    assert base.coins == before


# ---------------------------------------------------------- CheckTransaction


def _tx(inputs, outputs, locktime=0):
    return Transaction(1, tuple(inputs), tuple(outputs), locktime)


def _force(obj, **fields):
    """Build a value its constructor would refuse, to check the validator does not rely on it."""
    new = object.__new__(type(obj))
    for f in dataclasses.fields(obj):
        object.__setattr__(new, f.name, fields.get(f.name, getattr(obj, f.name)))
    return new


PKH = b"\x05" * 20


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda: _tx([], [TxOut(1, PKH)]), "bad-txns-vin-empty"),
        (lambda: _tx([TxIn(op(1))], []), "bad-txns-vout-empty"),
        (lambda: _tx([TxIn(op(1))], [TxOut(-1, PKH)]), "bad-txns-vout-negative"),
        (lambda: _tx([TxIn(op(1))], [TxOut(MAX_MONEY + 1, PKH)]), "bad-txns-vout-toolarge"),
        (lambda: _tx([TxIn(op(1))], [TxOut(MAX_MONEY, PKH), TxOut(1, PKH)]), "bad-txns-txouttotal-toolarge"),
        (lambda: _tx([TxIn(op(1)), TxIn(op(2)), TxIn(op(1))], [TxOut(1, PKH)]), "bad-txns-inputs-duplicate"),
        (lambda: _tx([TxIn(op(1)), TxIn(OutPoint.NULL, b"\x01\x02")], [TxOut(1, PKH)]), "bad-txns-prevout-null"),
        (lambda: _tx([_force(TxIn(OutPoint.NULL, b"\x01\x02"), signature=b"\x01")], [TxOut(1, PKH)]), "bad-cb-length"),
        (lambda: _tx([_force(TxIn(OutPoint.NULL, b"\x01\x02"), signature=b"\x01" * 101)], [TxOut(1, PKH)]), "bad-cb-length"),
        (lambda: _tx([TxIn(op(1))], [TxOut(1, PKH)] * 40_000), "bad-txns-oversize"),
    ],
)
def test_check_transaction_rules(make, reason):
    assert reason_of(check_transaction, make(), params.regtest) == reason


def test_check_transaction_accepts_edge_values():
    check_transaction(_tx([TxIn(op(1))], [TxOut(0, PKH), TxOut(MAX_MONEY, PKH)]), params.regtest)
    check_transaction(_tx([TxIn(op(1))], [TxOut(MAX_MONEY, PKH)]), params.regtest)
    check_transaction(_tx([TxIn(OutPoint.NULL, b"\x01" * 100)], [TxOut(1, PKH)]), params.regtest)


# ----------------------------------------------------------------- finality


def test_lock_time_is_a_height_below_the_threshold_and_a_time_above():
    tx = lambda lt: _tx([TxIn(op(1))], [TxOut(1, PKH)], lt)
    assert is_final_tx(tx(0), 0, 0)
    assert is_final_tx(tx(99), 100, 0) and not is_final_tx(tx(100), 100, 0)
    t = LOCKTIME_THRESHOLD + 10
    assert is_final_tx(tx(t), 5, t + 1) and not is_final_tx(tx(t), 10**9, t)


# ------------------------------------------------------------ inputs & sigs


@pytest.fixture(scope="module")
def funded():
    """A builder, and a view where key 0 owns a mature coinbase coin and a plain coin."""
    b = ChainBuilder(P)
    pkh = b.pkh(0)
    view = DictView({op(1): Coin(10 * COIN, pkh, 1, True), op(2): Coin(3 * COIN, pkh, 5, False)})
    return b, view


def test_check_tx_inputs_returns_the_fee(funded):
    b, view = funded
    tx = b.spend([(op(1), TxOut(10 * COIN, b.pkh(0))), (op(2), TxOut(3 * COIN, b.pkh(0)))], [TxOut(12 * COIN, PKH)])
    assert check_tx_inputs(tx, view, 10, P) == COIN
    check_tx_signatures(tx, view, SignatureChecker())


def test_input_rules(funded):
    b, view = funded
    coin1 = (op(1), TxOut(10 * COIN, b.pkh(0)))
    spend = lambda outs, coins=(coin1,): b.spend(list(coins), outs)
    assert reason_of(check_tx_inputs, spend([TxOut(1, PKH)], [(op(9), TxOut(1, b.pkh(0)))]), view, 10, P) == "bad-txns-inputs-missingorspent"
    # A coinbase of height 1 is spendable at height 1 + maturity, not before.
    assert reason_of(check_tx_inputs, spend([TxOut(1, PKH)]), view, 3, P) == "bad-txns-premature-spend-of-coinbase"
    check_tx_inputs(spend([TxOut(1, PKH)]), view, 4, P)
    assert reason_of(check_tx_inputs, spend([TxOut(10 * COIN + 1, PKH)]), view, 10, P) == "bad-txns-in-belowout"
    # Unreachable with honest coins (each was range-checked when created), still checked:
    bad = DictView({op(1): Coin(MAX_MONEY + 1, b.pkh(0), 1, False)})
    assert reason_of(check_tx_inputs, spend([TxOut(1, PKH)]), bad, 10, P) == "bad-txns-inputvalues-outofrange"


def test_signature_rules(funded):
    b, view = funded
    good = b.spend([(op(1), TxOut(10 * COIN, b.pkh(0)))], [TxOut(COIN, PKH)])
    check_tx_signatures(good, view, SignatureChecker())
    # Signed by key 1: its pubkey does not hash to the output's pubkey hash.
    wrong_key = b.spend([(op(1), TxOut(10 * COIN, b.pkh(1)))], [TxOut(COIN, PKH)])
    assert reason_of(check_tx_signatures, wrong_key, view, SignatureChecker()) == SCRIPT_PUBKEY_MISMATCH
    # An output changed after signing: the signature no longer covers the transaction.
    tampered = dataclasses.replace(good, outputs=(TxOut(2 * COIN, PKH),))
    assert reason_of(check_tx_signatures, tampered, view, SignatureChecker()) == SCRIPT_BAD_SIGNATURE
    # The high-S twin of a valid signature is refused (it would malleate the txid).
    r, s = keys.parse_signature(good.inputs[0].signature)
    high = keys.encode_signature(r, keys.CURVE_N - s)
    twin = dataclasses.replace(good, inputs=(dataclasses.replace(good.inputs[0], signature=high),))
    assert reason_of(check_tx_signatures, twin, view, SignatureChecker()) == SCRIPT_NONCANONICAL_SIGNATURE
    unsigned = dataclasses.replace(good, inputs=(dataclasses.replace(good.inputs[0], signature=b""),))
    assert reason_of(check_tx_signatures, unsigned, view, SignatureChecker()) == SCRIPT_NONCANONICAL_SIGNATURE


def test_signature_cache_skips_verified_triples_and_never_stores_failures(funded):
    b, view = funded
    good = b.spend([(op(1), TxOut(10 * COIN, b.pkh(0)))], [TxOut(COIN, PKH)])
    cache = SignatureCache()
    first = SignatureChecker(cache)
    check_tx_signatures(good, view, first)  # e.g. at mempool admission
    assert (first.verified, first.cache_hits, len(cache)) == (1, 0, 1)
    second = SignatureChecker(cache)
    check_tx_signatures(good, view, second)  # e.g. when its block connects
    assert (second.verified, second.cache_hits) == (0, 1)
    tampered = dataclasses.replace(good, outputs=(TxOut(2 * COIN, PKH),))
    for _ in range(2):
        with pytest.raises(ValidationError):
            check_tx_signatures(tampered, view, SignatureChecker(cache))
    assert len(cache) == 1
    # A cache hit does not excuse the key check: same signature, other output owner.
    other_owner = DictView({op(1): Coin(10 * COIN, b.pkh(1), 1, True)})
    assert reason_of(check_tx_signatures, good, other_owner, SignatureChecker(cache)) == SCRIPT_PUBKEY_MISMATCH


def test_signature_cache_is_bounded_first_in_first_out():
    cache = SignatureCache(max_entries=3)
    for i in range(5):
        cache.add(bytes([i]) * 32, b"k", b"s")
    assert len(cache) == 3
    assert not cache.contains(b"\x00" * 32, b"k", b"s") and not cache.contains(b"\x01" * 32, b"k", b"s")
    assert all(cache.contains(bytes([i]) * 32, b"k", b"s") for i in (2, 3, 4))


# ------------------------------------------------------------ blocks


def _tree_with(b: ChainBuilder, blocks):
    tree = BlockTree(b.genesis.header, b.params)
    for blk in blocks:
        e = tree.add_header(blk.header)
        tree.set_have_data(e)
    return tree


def test_connect_then_disconnect_restores_the_view_exactly():
    b = ChainBuilder(P, seed=5)
    chain = b.chain(None, 8, n_txs=4, coinbase_outputs=3)
    coins: dict = {}
    for height, blk in enumerate(chain, start=1):
        before = dict(coins)
        cache = CoinsCache(DictView(coins))
        undo = connect_block(blk, height, cache, P)
        puts, deletes = cache.changes()
        after = {k: v for k, v in coins.items() if k not in deletes} | puts
        # Undo it over the post-block state: exactly the pre-block state comes back.
        cache2 = CoinsCache(DictView(after))
        disconnect_block(blk, deserialize_undo(serialize_undo(undo)), cache2)
        puts2, deletes2 = cache2.changes()
        restored = {k: v for k, v in after.items() if k not in deletes2} | puts2
        assert restored == before
        coins = after
    assert {k: (c.value, c.pubkey_hash, c.height, c.coinbase) for k, c in coins.items()} == b.expected_utxos(chain[-1].hash)


def test_disconnect_with_wrong_undo_data_is_corruption():
    b = ChainBuilder(P)
    chain = b.chain(None, 5, n_txs=2)
    coins: dict = {}
    undos = []
    for height, blk in enumerate(chain, start=1):
        cache = CoinsCache(DictView(coins))
        undos.append(connect_block(blk, height, cache, P))
        puts, deletes = cache.changes()
        coins = {k: v for k, v in coins.items() if k not in deletes} | puts
    with pytest.raises(CorruptionError):
        disconnect_block(chain[-1], (), CoinsCache(DictView(coins)))  # too few entries
    with pytest.raises(CorruptionError):
        disconnect_block(chain[-2], undos[-2], CoinsCache(DictView(coins)))  # not the tip: outputs spent or missing


def test_bip30_refuses_to_overwrite_an_unspent_output():
    # Unreachable on a real chain (BIP 34 makes every txid unique), so fabricate the view.
    b = ChainBuilder(P)
    blk = b.block(None)
    cb = blk.transactions[0]
    view = DictView({OutPoint(cb.txid, 0): Coin(1, PKH, 0, False)})
    assert reason_of(connect_block, blk, 1, CoinsCache(view), P) == "bad-txns-BIP30"


def test_accumulated_fees_out_of_range():
    # Fees are bounded by the coins spent, so this needs a fabricated (impossible) view.
    b = ChainBuilder(P)
    k = b.pkh(0)
    view = DictView({op(1): Coin(MAX_MONEY, k, 0, False), op(2): Coin(MAX_MONEY, k, 0, False)})
    t1 = b.spend([(op(1), TxOut(MAX_MONEY, k))], [TxOut(0, PKH)])
    t2 = b.spend([(op(2), TxOut(MAX_MONEY, k))], [TxOut(0, PKH)])
    blk = b.block(None, [t1, t2], coinbase_value=0, register=False)
    assert reason_of(connect_block, blk, 1, CoinsCache(view), P) == "bad-txns-accumulated-fee-outofrange"


def test_coinbase_may_claim_subsidy_plus_fees_and_not_one_unit_more():
    b = ChainBuilder(P)
    chain = b.chain(None, 4)
    tx = b.random_txs(chain[-1].hash, 1, fee=777)
    assert tx
    coins: dict = {}
    for height, blk in enumerate(chain, start=1):
        cache = CoinsCache(DictView(coins))
        connect_block(blk, height, cache, P)
        puts, deletes = cache.changes()
        coins = {k: v for k, v in coins.items() if k not in deletes} | puts
    exact = b.block(chain[-1], tx, coinbase_value=block_subsidy(5, P) + 777, register=False)
    connect_block(exact, 5, CoinsCache(DictView(coins)), P)
    greedy = b.block(chain[-1], tx, coinbase_value=block_subsidy(5, P) + 778, register=False)
    assert reason_of(connect_block, greedy, 5, CoinsCache(DictView(coins)), P) == "bad-cb-amount"


def test_header_context_rules():
    b = ChainBuilder(P)
    chain = b.chain(None, 12)
    tree = _tree_with(b, chain)
    parent = tree.get(chain[-1].hash)
    mtp = tree.median_time_past(parent)
    ok = b.block(chain[-1], register=False).header
    contextual_check_block_header(ok, parent, tree, NOW)
    reason = lambda hdr, now=NOW: reason_of(contextual_check_block_header, hdr, parent, tree, now)
    assert reason(b.block(chain[-1], bits=0x2000FFFF, register=False).header) == "bad-diffbits"
    assert reason(b.block(chain[-1], time=mtp, register=False).header) == "time-too-old"
    contextual_check_block_header(b.block(chain[-1], time=mtp + 1, register=False).header, parent, tree, NOW)
    assert reason(ok, ok.time - P.max_future_block_time - 1) == "time-too-new"
    contextual_check_block_header(ok, parent, tree, ok.time - P.max_future_block_time)


def test_block_context_rules():
    b = ChainBuilder(P)
    chain = b.chain(None, 6)
    tree = _tree_with(b, chain)
    parent = tree.get(chain[-1].hash)
    good = b.block(chain[-1], register=False)
    contextual_check_block(good, parent, tree)
    wrong_height = b.block(chain[-1], coinbase=b.coinbase(6, 50 * COIN), register=False)
    assert reason_of(contextual_check_block, wrong_height, parent, tree) == "bad-cb-height"
    (coin,) = b.spendable(chain[-1].hash)[:1]
    locked = b.spend([coin], [TxOut(COIN, PKH)], locktime=7)  # final only in blocks above height 7
    assert reason_of(contextual_check_block, b.block(chain[-1], [locked], register=False), parent, tree) == "bad-txns-nonfinal"
    contextual_check_block(b.block(chain[-1], [b.spend([coin], [TxOut(COIN, PKH)], locktime=6)], register=False), parent, tree)


def test_check_block_rules():
    b = ChainBuilder(P)
    chain = b.chain(None, 5)
    parent = chain[-1]
    (coin,) = b.spendable(parent.hash)[:1]
    t1 = b.spend([coin], [TxOut(COIN, PKH)])
    good = b.block(parent, [t1], register=False)
    check_block(good, P)
    # high-hash: about every other nonce misses regtest's target.
    assert reason_or_none(good.header) is None
    assert any(reason_or_none(good.header.with_nonce(n)) == "high-hash" for n in range(64))
    cb = good.transactions[0]
    assert reason_of(check_block, b.remine(good, txs=[]), P) == "bad-blk-length"
    assert reason_of(check_block, b.remine(good, txs=[t1, cb]), P) == "bad-cb-missing"
    assert reason_of(check_block, b.remine(good, txs=[cb, t1, b.coinbase(6, 1)]), P) == "bad-cb-multiple"
    err = _err(check_block, dataclasses.replace(good, transactions=(cb,)), P)
    assert err.reason == "bad-txnmrklroot" and err.mutated


def reason_or_none(header):
    from minichain.core.validation import check_block_header

    try:
        check_block_header(header, P)
    except ValidationError as e:
        return e.reason
    return None


def _err(fn, *args):
    with pytest.raises(ValidationError) as info:
        fn(*args)
    return info.value


def test_merkle_mutation_is_refused_but_flagged_as_mutated():
    b = ChainBuilder(P)
    chain = b.chain(None, 5, coinbase_outputs=2)
    coins = b.spendable(chain[-1].hash)
    t1 = b.spend([coins[0]], [TxOut(COIN, PKH)])
    t2 = b.spend([coins[1]], [TxOut(COIN, PKH)])
    good = b.block(chain[-1], [t1, t2], register=False)
    mutated = dataclasses.replace(good, transactions=good.transactions + (t2,))
    assert mutated.header == good.header and mutated.compute_merkle_root()[0] == good.header.merkle_root
    err = _err(check_block, mutated, P)
    assert err.reason == "bad-txns-duplicate" and err.mutated
    check_block(good, P)


def test_oversized_block():
    b = ChainBuilder(P)
    big = b.block(None, coinbase=b.coinbase(1, 50 * COIN, outputs=40_000), register=False)
    assert big.size > P.max_block_size
    assert reason_of(check_block, big, P) == "bad-blk-length"


def test_assemble_keeps_given_merkle_root():
    b = ChainBuilder(P)
    blk = assemble(b.genesis.header, [b.coinbase(1, 1)], P, merkle=b"\x07" * 32)
    assert blk.header.merkle_root == b"\x07" * 32
