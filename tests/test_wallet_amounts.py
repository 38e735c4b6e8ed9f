"""Amounts typed in coins become integer units exactly, and come back the same."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minichain.params import COIN, MAX_MONEY
from minichain.wallet.amounts import AmountError, format_amount, parse_amount


@pytest.mark.parametrize("text, units", [
    ("1.5", 150_000_000),
    ("0.00000001", 1),
    ("0", 0),
    ("0.0", 0),
    ("1", COIN),
    ("1.", COIN),
    (".5", COIN // 2),
    ("  2.25\n", 225_000_000),
    ("007.10000000", 710_000_000),
    ("21000000", MAX_MONEY),
    ("20999999.99999999", MAX_MONEY - 1),
    ("0.1", 10_000_000),   # 0.1 is not exact in binary floating point; here it is
    ("0.3", 30_000_000),
])
def test_parse_examples(text, units):
    assert parse_amount(text) == units


@pytest.mark.parametrize("text, words", [
    ("", "empty"),
    ("   ", "empty"),
    ("-1", "negative"),
    ("-0.5", "negative"),
    ("+1", "without a sign"),
    ("1.000000001", "9 decimals"),
    ("0.123456789", "9 decimals"),
    ("1e8", "not an amount"),
    ("1,5", "not an amount"),
    ("1.2.3", "not an amount"),
    ("abc", "not an amount"),
    (".", "not an amount"),
    ("nan", "not an amount"),
    ("inf", "not an amount"),
    ("0x10", "not an amount"),
    ("1_000", "not an amount"),
    ("١", "not an amount"),        # an Arabic-Indic digit: int() would accept it
    ("1 000", "not an amount"),
    ("21000000.00000001", "21,000,000"),
    ("99999999999999999999", "21,000,000"),
])
def test_parse_refuses_with_a_message_that_names_the_problem(text, words):
    with pytest.raises(AmountError, match=words):
        parse_amount(text)


@pytest.mark.parametrize("units, text", [
    (0, "0.00000000"), (1, "0.00000001"), (150_000_000, "1.50000000"), (MAX_MONEY, "21000000.00000000"),
    (-150_000_226, "-1.50000226"),
])
def test_format_examples(units, text):
    assert format_amount(units) == text


def test_format_sign_and_types():
    assert format_amount(5, sign=True) == "+0.00000005"
    assert format_amount(-5, sign=True) == "-0.00000005"
    assert format_amount(0, sign=True) == "0.00000000"
    for bad in (1.5, "1", True, None):
        with pytest.raises(TypeError):
            format_amount(bad)


@given(st.integers(0, MAX_MONEY))
def test_round_trip_units_to_text_to_units(units):
    text = format_amount(units)
    assert parse_amount(text) == units
    whole, frac = text.split(".")
    assert len(frac) == 8 and whole == str(units // COIN)


@given(st.integers(-MAX_MONEY, MAX_MONEY))
def test_negative_amounts_format_but_do_not_parse(units):
    text = format_amount(units)
    if units < 0:
        with pytest.raises(AmountError):
            parse_amount(text)
        assert parse_amount(text[1:]) == -units
    else:
        assert parse_amount(text) == units


@given(st.from_regex(r"\A(0|[1-9][0-9]{0,6})(\.[0-9]{0,8})?\Z"))
def test_any_valid_decimal_text_is_exact(text):
    units = parse_amount(text)
    assert units == int(Decimal(text) * COIN)      # Decimal is exact here; floats would not be
    assert Decimal(format_amount(units)) == Decimal(text)


@given(st.text(max_size=30))
def test_arbitrary_text_gives_units_in_range_or_an_amount_error(text):
    try:
        units = parse_amount(text)
    except AmountError as exc:
        assert str(exc)
    else:
        assert isinstance(units, int) and 0 <= units <= MAX_MONEY
        assert parse_amount(format_amount(units)) == units


@given(st.integers(0, 10**7), st.integers(9, 20))
def test_more_than_eight_decimals_is_refused_even_when_the_extra_digits_are_zero(whole, ndec):
    with pytest.raises(AmountError, match="decimals"):
        parse_amount(f"{whole}." + "0" * ndec)
