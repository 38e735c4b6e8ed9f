"""Amounts as people type them (coins, up to 8 decimals) and as the chain keeps them
(integer units, 1 coin = 10^8 units; Bitcoin calls the unit a satoshi).

No floating point anywhere: "1.5" is split at the point and becomes 150000000 exactly,
so an amount cannot gain or lose a unit on its way into a transaction.
"""

from __future__ import annotations

import re

from minichain.params import COIN, MAX_MONEY

DECIMALS = 8
assert COIN == 10**DECIMALS

# ASCII digits only: str.isdigit() and \d would also accept "١" or "²", and int() accepts
# "1_000"; neither belongs in an amount.
_AMOUNT = re.compile(r"([0-9]+)(?:\.([0-9]*))?|\.([0-9]+)", re.ASCII)


class AmountError(ValueError):
    """Text that is not an amount of coins; the message says what is wrong with it."""


def parse_amount(text: str) -> int:
    """Coins as text ("1.5", "0.00000001", "21", ".5") -> integer units.

    Refuses, with a message that names the problem: an empty string, a sign, more than
    8 decimals, exponents, separators and anything else that is not digits with at most
    one point, and amounts above the 21 million coin supply (Bitcoin: MAX_MONEY).
    """
    if not isinstance(text, str):
        raise AmountError(f"expected text, got {type(text).__name__}")
    s = text.strip()
    if not s:
        raise AmountError("the amount is empty")
    if s[0] in "-−":
        raise AmountError(f"{text!r} is negative; amounts are 0 or more coins")
    if s[0] == "+":
        raise AmountError(f"{text!r}: write the amount without a sign")
    match = _AMOUNT.fullmatch(s)
    if match is None:
        raise AmountError(f"{text!r} is not an amount: use digits with at most one '.', e.g. 1.5 or 0.00000001")
    whole, frac = (match.group(1), match.group(2) or "") if match.group(1) is not None else ("0", match.group(3))
    if len(frac) > DECIMALS:
        raise AmountError(f"{text!r} has {len(frac)} decimals; the smallest unit is 0.00000001 coin (8 decimals)")
    if len(whole) > 9:  # avoid building huge ints from hostile input; 21e6 has 8 digits
        raise AmountError(f"{text!r} is more than the 21,000,000 coins that can ever exist")
    units = int(whole) * COIN + int(frac.ljust(DECIMALS, "0"))
    if units > MAX_MONEY:
        raise AmountError(f"{text!r} is more than the 21,000,000 coins that can ever exist")
    return units


def format_amount(units: int, *, sign: bool = False) -> str:
    """Integer units -> coins with exactly 8 decimals ("1.50000000"); negative values get
    a '-', and ``sign=True`` also puts a '+' before positive ones (for balance changes)."""
    if isinstance(units, bool) or not isinstance(units, int):
        raise TypeError(f"amounts are integer units, got {type(units).__name__}")
    whole, frac = divmod(abs(units), COIN)
    prefix = "-" if units < 0 else ("+" if sign and units > 0 else "")
    return f"{prefix}{whole}.{frac:0{DECIMALS}d}"
