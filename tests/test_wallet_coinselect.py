"""Coin selection: enough coins for amount + fee, a fee at least the rate asked, no dust."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from minichain.core.keys import PrivateKey
from minichain.core.tx import OutPoint, Transaction, TxIn, TxOut, sign_inputs
from minichain.wallet.coinselect import (DUST_LIMIT, MAX_INPUT_SIZE, Candidate, InsufficientFunds, estimate_size,
                                         fee_for, select_coins)


def coin(value: int, n: int = 0) -> Candidate:
    return Candidate(f"{n:064x}", n % 3, value, "addr")


def coins(*values: int) -> list[Candidate]:
    return [coin(v, i) for i, v in enumerate(values)]


def test_size_estimate_is_an_upper_bound_of_real_signed_transactions():
    keys = [PrivateKey(7 + i) for i in range(12)]
    for n_in in (1, 2, 5, 12):
        for n_out in (1, 2):
            tx = Transaction(1, tuple(TxIn(OutPoint(bytes([i + 1]) * 32, i)) for i in range(n_in)),
                             tuple(TxOut(1000 + j, bytes(20)) for j in range(n_out)), 0)
            signed = sign_inputs(tx, keys[:n_in])
            est = estimate_size(n_in, n_out)
            # Never below; at most one byte per input above (a DER signature is 70-72 bytes).
            assert signed.size <= est <= signed.size + 2 * n_in
    assert estimate_size(1, 2) == 4 + 1 + MAX_INPUT_SIZE + 1 + 2 * 28 + 4
    assert estimate_size(253, 1) - estimate_size(252, 1) == MAX_INPUT_SIZE + 2  # the CompactSize grows


def test_one_coin_that_is_enough_is_preferred_and_it_is_the_smallest_such():
    sel = select_coins(coins(100_000, 5_000_000, 2_000_000, 900_000), 1_000_000, fee_rate=1)
    assert [c.value for c in sel.coins] == [2_000_000]
    assert sel.fee == fee_for(1, 2, 1)
    assert sel.change == 2_000_000 - 1_000_000 - sel.fee


def test_largest_first_when_no_single_coin_is_enough():
    sel = select_coins(coins(300, 600_000, 500_000, 400_000), 1_000_000, fee_rate=2)
    assert [c.value for c in sel.coins] == [600_000, 500_000]
    assert sel.total_in == sel.amount + sel.fee + sel.change


def test_change_below_dust_goes_to_the_fee():
    amount = 1_000_000
    exact = amount + fee_for(1, 1, 1) + 100  # 100 units over: not worth an output
    sel = select_coins(coins(exact), amount, fee_rate=1)
    assert sel.change == 0 and sel.fee == fee_for(1, 1, 1) + 100


def test_zero_fee_rate_is_allowed_and_pays_nothing():
    sel = select_coins(coins(50_000), 49_000, fee_rate=0)
    assert sel.fee == 0 and sel.change == 1_000


def test_insufficient_funds_reports_the_exact_shortfall():
    with pytest.raises(InsufficientFunds) as info:
        select_coins(coins(1_000_000, 2_000_000), 5_000_000, fee_rate=3)
    exc = info.value
    assert exc.available == 3_000_000
    assert exc.fee == fee_for(2, 1, 3)
    assert exc.shortfall == 5_000_000 + fee_for(2, 1, 3) - 3_000_000
    with pytest.raises(InsufficientFunds) as info:
        select_coins([], 1, fee_rate=1)
    assert info.value.available == 0 and info.value.shortfall == 1 + fee_for(1, 1, 1)


@pytest.mark.parametrize("amount, rate", [(0, 1), (-5, 1), (1.5, 1), (True, 1), (10, -1), (10, 0.5)])
def test_bad_arguments_are_value_errors(amount, rate):
    with pytest.raises(ValueError):
        select_coins(coins(10**9), amount, fee_rate=rate)


def test_a_coin_listed_twice_is_refused():
    with pytest.raises(ValueError, match="twice"):
        select_coins([coin(10**6, 1), coin(10**6, 1)], 1000)


@given(st.lists(st.integers(1, 10**10), max_size=25), st.integers(1, 10**10), st.integers(0, 50))
def test_any_selection_balances_and_pays_at_least_the_rate(values, amount, rate):
    cands = coins(*values)
    try:
        sel = select_coins(cands, amount, fee_rate=rate)
    except InsufficientFunds as exc:
        # Really not enough: even every coin (each adding value) cannot pay.
        assert exc.shortfall > 0
        useful = [v for v in values if v > MAX_INPUT_SIZE * rate]
        assert sum(useful) < amount + fee_for(max(1, len(useful)), 1, rate)
        return
    assert len({(c.txid, c.vout) for c in sel.coins}) == len(sel.coins)
    assert set(sel.coins) <= set(cands)
    assert sel.total_in == sel.amount + sel.fee + sel.change
    n_out = 2 if sel.change else 1
    assert sel.fee >= fee_for(len(sel.coins), n_out, rate)       # never below the rate asked
    assert sel.change == 0 or sel.change >= DUST_LIMIT
    if sel.change == 0:   # whatever went to the fee instead of change was dust
        assert sel.fee - fee_for(len(sel.coins), 1, rate) < DUST_LIMIT + fee_for(len(sel.coins), 2, rate) - fee_for(len(sel.coins), 1, rate)


@given(st.lists(st.integers(1, 10**9), min_size=1, max_size=10), st.integers(0, 20))
def test_selection_is_reproducible_whatever_the_order_of_the_coins(values, rate):
    cands = coins(*values)
    amount = max(1, sum(values) // 3)
    try:
        a = select_coins(cands, amount, fee_rate=rate)
    except InsufficientFunds:
        assume(False)
    b = select_coins(list(reversed(cands)), amount, fee_rate=rate)
    assert a == b
