import pytest
from hypothesis import given, strategies as st

from minichain import params
from minichain.core.pow import (
    bits_to_target,
    block_work,
    decode_compact,
    is_retarget_height,
    retarget,
    target_to_bits,
)
from tests.bitcoin_data import RETARGETS

# Bitcoin Core src/test/arith_uint256_tests.cpp ("bignum_SetCompact"):
# (compact, target, negative, overflow, GetCompact of the result with the sign)
SET_COMPACT_VECTORS = [
    (0x00000000, 0, False, False, 0),
    (0x00123456, 0, False, False, 0),
    (0x01003456, 0, False, False, 0),
    (0x02000056, 0, False, False, 0),
    (0x03000000, 0, False, False, 0),
    (0x04000000, 0, False, False, 0),
    (0x00923456, 0, False, False, 0),
    (0x01803456, 0, False, False, 0),
    (0x02800056, 0, False, False, 0),
    (0x03800000, 0, False, False, 0),
    (0x04800000, 0, False, False, 0),
    (0x01123456, 0x12, False, False, 0x01120000),
    (0x02123456, 0x1234, False, False, 0x02123400),
    (0x03123456, 0x123456, False, False, 0x03123456),
    (0x04123456, 0x12345600, False, False, 0x04123456),
    (0x05009234, 0x92340000, False, False, 0x05009234),
    (0x20123456, 0x1234560000000000000000000000000000000000000000000000000000000000, False, False, 0x20123456),
]


@pytest.mark.parametrize("bits,target,negative,overflow,compact", SET_COMPACT_VECTORS)
def test_set_compact_matches_bitcoin_core(bits, target, negative, overflow, compact):
    assert decode_compact(bits) == (target, negative, overflow)
    assert target_to_bits(target) == compact


@pytest.mark.parametrize("bits", [0x01FEDCBA, 0x04923456])
def test_negative_compact_is_flagged_and_refused(bits):
    assert decode_compact(bits)[1] is True
    with pytest.raises(ValueError, match="negative"):
        bits_to_target(bits)


@pytest.mark.parametrize("bits", [0xFF123456, 0x23000001, 0x22000100, 0x21010000])
def test_overflowing_compact_is_refused(bits):
    assert decode_compact(bits)[2] is True
    with pytest.raises(ValueError, match="overflow"):
        bits_to_target(bits)


def test_zero_target_is_refused():
    with pytest.raises(ValueError, match="zero"):
        bits_to_target(0x03000000)


def test_target_with_high_mantissa_bit_moves_to_next_byte():
    # 0x80 would set the sign bit of a one-byte mantissa; GetCompact gives 0x02008000.
    assert target_to_bits(0x80) == 0x02008000
    assert bits_to_target(0x02008000) == 0x80


@given(st.integers(min_value=1, max_value=2**256 - 1))
def test_compact_keeps_the_top_three_significant_bytes(target):
    bits = target_to_bits(target)
    back = bits_to_target(bits)
    # The mantissa keeps the top three bytes, or two when the sign bit forces a shift:
    # always at least the top 16 significant bits, and nothing is ever rounded up.
    assert back <= target
    assert target - back < 1 << max(0, target.bit_length() - 16)
    assert target_to_bits(back) == bits


def test_block_work_is_two_to_256_over_target_plus_one():
    # Bitcoin's difficulty-1 target 0x1d00ffff: work 0x100010001 (4295032833 hashes).
    assert block_work(0x1D00FFFF) == 0x100010001
    # Regtest's 0x207fffff: target 0x7fffff << 232, about 2 hashes per block.
    assert block_work(0x207FFFFF) == 2
    assert block_work(0x04923456) == 0  # negative -> no work, as GetBlockProof


@pytest.mark.parametrize("first,last,bits,expected", RETARGETS)
def test_retarget_matches_bitcoin_core_pow_tests(first, last, bits, expected):
    assert retarget(bits, first, last, params.main) == expected


@given(
    st.integers(min_value=0x1B000001, max_value=0x1D00FFFF).filter(lambda b: b & 0x00800000 == 0 and b & 0x7FFFFF),
    st.integers(min_value=-(10**7), max_value=10**8),
)
def test_retarget_clamps_to_factor_four(bits, actual):
    target = bits_to_target(bits)
    new = bits_to_target(retarget(bits, 1_000_000, 1_000_000 + actual, params.main))
    timespan = params.main.target_timespan
    assert new <= min(params.main.pow_limit, target * 4)
    assert new >= (target * (timespan // 4)) // timespan >> 8  # loose: compact keeps 3 bytes
    if actual <= timespan // 4:
        assert new == bits_to_target(target_to_bits(target * (timespan // 4) // timespan))


def test_regtest_never_retargets():
    assert retarget(0x207FFFFF, 0, 10**9, params.regtest) == 0x207FFFFF
    assert not is_retarget_height(2016, params.regtest)


def test_retarget_heights():
    assert params.main.retarget_interval == 2016
    assert is_retarget_height(2016, params.main) and not is_retarget_height(2015, params.main)
    assert params.testnet.retarget_interval == 12


def test_params_pow_limits():
    assert params.main.pow_limit == 0xFFFF << 208
    assert params.regtest.pow_limit == 0x7FFFFF << 232
    assert params.testnet.pow_limit == 0xFFFF << 224
