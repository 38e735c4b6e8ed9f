"""Coin selection: which of the wallet's coins pay for a transaction, and the fee.

Pure functions over plain values; the caller decides which coins are spendable (mature,
confirmed enough, not already spent by a transaction in the node's mempool).

The strategy, simpler than Bitcoin Core's branch-and-bound + knapsack, said plainly:

1. if one coin can pay the amount and the fee, take the *smallest* such coin (it leaves
   the big coins whole and the change small);
2. otherwise take coins largest first until they cover the amount and the fee (fewest
   inputs, so the smallest fee for that many coins).

Change below :data:`DUST_LIMIT` is not worth an output (spending it later would cost
about as much as it is worth): it goes to the miner as part of the fee instead.

Sizes are estimated from the exact serialization (``core/tx.py``) with every signature
at its largest DER length, so the real transaction is never bigger than the estimate
and the fee rate paid is never below the rate asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from minichain.core.keys import MAX_SIGNATURE_SIZE, PUBLIC_KEY_SIZE
from minichain.core.tx import OutPoint, TxOut

# Bitcoin: the P2PKH dust threshold at the default dust relay fee (546 satoshis).
DUST_LIMIT = 546
# Bitcoin's default minimum relay fee is 1 sat/vbyte; ours is per serialized byte.
DEFAULT_FEE_RATE = 1


def _compact_size_len(n: int) -> int:
    return 1 if n < 0xFD else 3 if n <= 0xFFFF else 5 if n <= 0xFFFFFFFF else 9


# An input: outpoint, then the var_bytes signature and var_bytes public key.
MAX_INPUT_SIZE = OutPoint.SIZE + 1 + MAX_SIGNATURE_SIZE + 1 + PUBLIC_KEY_SIZE
OUTPUT_SIZE = TxOut.SIZE


def estimate_size(n_inputs: int, n_outputs: int) -> int:
    """An upper bound on the serialized size of a signed transaction of this shape:
    i32 version, CompactSize input count, inputs, CompactSize output count, outputs,
    u32 locktime."""
    return (4 + _compact_size_len(n_inputs) + n_inputs * MAX_INPUT_SIZE
            + _compact_size_len(n_outputs) + n_outputs * OUTPUT_SIZE + 4)


def fee_for(n_inputs: int, n_outputs: int, fee_rate: int) -> int:
    return estimate_size(n_inputs, n_outputs) * fee_rate


@dataclass(frozen=True)
class Candidate:
    """A coin the wallet may spend: ``txid`` in display hex, like the API gives it."""

    txid: str
    vout: int
    value: int
    address: str
    confirmations: int = 1


@dataclass(frozen=True)
class Selection:
    coins: tuple[Candidate, ...]
    amount: int
    fee: int
    change: int  # 0 means no change output

    @property
    def total_in(self) -> int:
        return sum(c.value for c in self.coins)


class InsufficientFunds(Exception):
    """Not enough spendable coins. ``shortfall`` is how many more units would be needed
    (with every spendable coin used, so the fee counted is for all of them)."""

    def __init__(self, amount: int, fee: int, available: int) -> None:
        self.amount = amount
        self.fee = fee
        self.available = available
        self.shortfall = amount + fee - available
        super().__init__(f"need {amount + fee} units (amount {amount} + fee {fee}), have {available}")


def _finish(coins: Sequence[Candidate], amount: int, fee_rate: int, dust: int) -> Selection | None:
    total = sum(c.value for c in coins)
    with_change = fee_for(len(coins), 2, fee_rate)
    change = total - amount - with_change
    if change >= dust:
        return Selection(tuple(coins), amount, with_change, change)
    without = fee_for(len(coins), 1, fee_rate)
    if total >= amount + without:  # the few units left over go to the miner
        return Selection(tuple(coins), amount, total - amount, 0)
    return None


def select_coins(candidates: Iterable[Candidate], amount: int, fee_rate: int = DEFAULT_FEE_RATE,
                 *, dust: int = DUST_LIMIT) -> Selection:
    """Choose coins paying ``amount`` units plus a fee of ``fee_rate`` units per byte.

    Raises :class:`InsufficientFunds` when even every candidate together is not enough,
    and ValueError for an amount that is not positive or a negative fee rate.
    """
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValueError("the amount must be a positive number of units")
    if isinstance(fee_rate, bool) or not isinstance(fee_rate, int) or fee_rate < 0:
        raise ValueError("the fee rate must be a non-negative number of units per byte")
    # A fixed order (largest first, ties by outpoint) makes the choice reproducible.
    coins = sorted(candidates, key=lambda c: (-c.value, c.txid, c.vout))
    if len({(c.txid, c.vout) for c in coins}) != len(coins):
        raise ValueError("the same coin is listed twice")

    singles = [s for s in (_finish([c], amount, fee_rate, dust) for c in coins) if s is not None]
    if singles:
        return min(singles, key=lambda s: (s.total_in, s.coins[0].txid, s.coins[0].vout))

    chosen: list[Candidate] = []
    for coin in coins:
        chosen.append(coin)
        done = _finish(chosen, amount, fee_rate, dust)
        if done is not None:
            return done
    available = sum(c.value for c in coins)
    raise InsufficientFunds(amount, fee_for(max(1, len(coins)), 1, fee_rate), available)
