"""A regtest chain in which one address has a long history (ten thousand entries and more).

For the API's paging tests, the wallet's and the explorer's large-address tests, and
``python -m benchmarks.api``. Everything in it is real: signed transactions in mined
blocks that a node validates in full.

The story: a funder's first coinbase matures; then every block carries a run of payments
from the funder to the address, each spending the previous one's change; every
``spend_every``-th transaction the address instead pays ``spend_inputs`` of its oldest
coins back to the funder, so its history has both signs and it holds fewer coins than it
received; and every ``coinbase_every``-th block pays its coinbase to the address (some of
those are still immature at the tip). The builder keeps its own account of the address
-- history length, coins, balance -- for tests to compare with what a node says.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from minichain import params as chain_params
from minichain.core.block import Block
from minichain.core.genesis import genesis_block
from minichain.core.keys import PrivateKey
from minichain.core.tx import OutPoint, Transaction, TxIn, TxOut, make_coinbase, sign_inputs
from minichain.core.validation import block_subsidy
from minichain.params import Params
from tests.chainbuilder import SIGN_BACKEND, assemble

FUNDER = PrivateKey(7001)
PAYMENT = 10_000   # units the address receives per payment
FEE = 1_000


@dataclass
class BigAddress:
    blocks: list[Block]
    target: PrivateKey
    history: int                                   # transactions that touched the address
    coins: dict[OutPoint, tuple[int, int, bool]] = field(default_factory=dict)  # -> (value, height, coinbase)
    payments: int = 0
    spends: int = 0

    @property
    def pkh(self) -> bytes:
        return self.target.public_key.hash160()

    @property
    def balance(self) -> int:
        return sum(v for v, _, _ in self.coins.values())

    @property
    def height(self) -> int:
        return len(self.blocks)

    def address(self, params: Params = chain_params.regtest) -> str:
        return self.target.public_key.address(params.address_version)


def build(target: PrivateKey, entries: int, length: int, *, params: Params = chain_params.regtest,
          spend_every: int = 10, spend_inputs: int = 5, coinbase_every: int = 7) -> BigAddress:
    """A chain of ``length`` blocks after genesis in which ``target`` has about
    ``entries`` history entries (payments, its own spends and coinbases)."""
    maturity = params.coinbase_maturity
    busy = length - maturity - 1
    if busy < 1:
        raise ValueError(f"length must exceed the coinbase maturity + 1 ({maturity + 1})")
    per_block = math.ceil(entries / busy)
    funder_pkh = FUNDER.public_key.hash160()
    target_pkh = target.public_key.hash160()
    out = BigAddress([], target, 0)
    parent = genesis_block(params)
    change: tuple[OutPoint, int] | None = None      # the funder's running coin
    spendable: deque[OutPoint] = deque()            # the address's coins from payments, oldest first
    made = 0
    for height in range(1, length + 1):
        txs: list[Transaction] = []
        if height > maturity + 1:
            for _ in range(min(per_block, max(0, entries - made))):
                if made % spend_every == spend_every - 1 and len(spendable) >= spend_inputs:
                    mine = [spendable.popleft() for _ in range(spend_inputs)]
                    value = sum(out.coins[op][0] for op in mine)
                    tx = Transaction(1, tuple(TxIn(op) for op in mine), (TxOut(value - FEE, funder_pkh),))
                    tx = sign_inputs(tx, [target] * len(mine), backend=SIGN_BACKEND)
                    for op in mine:
                        del out.coins[op]
                    out.spends += 1
                else:
                    assert change is not None
                    op, value = change
                    tx = Transaction(1, (TxIn(op),), (TxOut(PAYMENT, target_pkh), TxOut(value - PAYMENT - FEE, funder_pkh)))
                    tx = sign_inputs(tx, [FUNDER], backend=SIGN_BACKEND)
                    change = (OutPoint(tx.txid, 1), value - PAYMENT - FEE)
                    out.coins[OutPoint(tx.txid, 0)] = (PAYMENT, height, False)
                    spendable.append(OutPoint(tx.txid, 0))
                    out.payments += 1
                txs.append(tx)
                made += 1
        to_target = height % coinbase_every == 0
        reward = block_subsidy(height, params) + FEE * len(txs)
        coinbase = make_coinbase(height, [TxOut(reward, target_pkh if to_target else funder_pkh)])
        block = assemble(parent.header, [coinbase] + txs, params)
        if to_target:
            out.coins[OutPoint(coinbase.txid, 0)] = (reward, height, True)
        if height == 1:
            change = (OutPoint(coinbase.txid, 0), reward)
        out.history += len(txs) + (1 if to_target else 0)
        out.blocks.append(block)
        parent = block
    return out
