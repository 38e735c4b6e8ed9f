"""Build valid (and deliberately invalid) regtest blocks for tests.

The builder keeps, for every block it made, the UTXO set after that block, so it can
make transactions that spend mature coins on any branch. Keys are deterministic
(secret exponents 1000, 1001, ...), signing uses the fastest available backend, and
mining at regtest's trivial target takes about two hashes.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Iterable, Sequence

from minichain import params as chain_params
from minichain.core import keys
from minichain.core.block import Block, BlockHeader
from minichain.core.genesis import genesis_block
from minichain.core.hashing import merkle_root
from minichain.core.pow import check_proof_of_work
from minichain.core.tx import OutPoint, Transaction, TxIn, TxOut, make_coinbase, sign_inputs
from minichain.core.validation import block_subsidy
from minichain.params import Params

SIGN_BACKEND = "coincurve" if "coincurve" in keys.BACKENDS else "ecdsa"
# A "now" comfortably after every block the tests make (2033).
NOW = 2_000_000_000


def mine(header: BlockHeader, params: Params) -> BlockHeader:
    """The first nonce (from the header's own) whose hash meets the target."""
    nonce = header.nonce
    while True:
        candidate = header.with_nonce(nonce)
        if check_proof_of_work(candidate, params):
            return candidate
        nonce = (nonce + 1) & 0xFFFFFFFF


def assemble(
    parent_header: BlockHeader,
    txs: Sequence[Transaction],
    params: Params,
    *,
    time: int | None = None,
    bits: int | None = None,
    version: int = 1,
    merkle: bytes | None = None,
    do_mine: bool = True,
) -> Block:
    """A block on ``parent_header`` with ``txs``; the Merkle root is computed unless given."""
    root = merkle if merkle is not None else merkle_root([tx.txid for tx in txs])[0]
    header = BlockHeader(
        version,
        parent_header.hash,
        root,
        parent_header.time + 600 if time is None else time,
        parent_header.bits if bits is None else bits,
        0,
    )
    return Block(mine(header, params) if do_mine else header, tuple(txs))


class ChainBuilder:
    def __init__(self, params: Params = chain_params.regtest, *, seed: int = 0, n_keys: int = 4) -> None:
        self.params = params
        self.rng = random.Random(seed)
        self.keys = [keys.PrivateKey(1000 + i) for i in range(n_keys)]
        self._key_by_hash = {k.public_key.hash160(): k for k in self.keys}
        self.genesis = genesis_block(params)
        self.blocks: dict[bytes, Block] = {self.genesis.hash: self.genesis}
        self.heights: dict[bytes, int] = {self.genesis.hash: 0}
        # outpoint -> (TxOut, height, is_coinbase), after each block. Genesis pays no one.
        self.utxos: dict[bytes, dict[OutPoint, tuple[TxOut, int, bool]]] = {self.genesis.hash: {}}
        self._extra_nonce = 0

    # -- pieces

    def pkh(self, i: int = 0) -> bytes:
        return self.keys[i % len(self.keys)].public_key.hash160()

    def coinbase(self, height: int, value: int, *, pay_to: int = 0, outputs: int = 1, message: bytes = b"") -> Transaction:
        self._extra_nonce += 1  # keeps coinbases unique between sibling blocks
        share, rest = divmod(value, outputs)
        outs = [TxOut(share + (rest if i == 0 else 0), self.pkh(pay_to + i)) for i in range(outputs)]
        return make_coinbase(height, outs, extra_nonce=self._extra_nonce, message=message)

    def spend(self, coins: Sequence[tuple[OutPoint, TxOut]], outputs: Sequence[TxOut], *, locktime: int = 0) -> Transaction:
        """A transaction spending ``coins`` (signed by the builder's keys) to ``outputs``."""
        tx = Transaction(1, tuple(TxIn(op) for op, _ in coins), tuple(outputs), locktime)
        return sign_inputs(tx, [self._key_by_hash[out.pubkey_hash] for _, out in coins], backend=SIGN_BACKEND)

    def spendable(self, parent: bytes) -> list[tuple[OutPoint, TxOut]]:
        """Coins a block on top of ``parent`` may spend (mature coinbases included), oldest first."""
        height = self.heights[parent] + 1
        out = []
        for op, (txout, h, cb) in self.utxos[parent].items():
            if not cb or height - h >= self.params.coinbase_maturity:
                out.append((op, txout))
        return out

    def random_txs(self, parent: bytes, n: int, *, fee: int = 1000) -> list[Transaction]:
        """Up to ``n`` independent transactions spending random mature coins of ``parent``'s state."""
        coins = self.spendable(parent)
        self.rng.shuffle(coins)
        txs = []
        for op, out in coins[:n]:
            value = out.value - fee
            if value < 2:
                continue
            split = self.rng.randrange(1, value)
            outs = [TxOut(split, self.pkh(self.rng.randrange(8))), TxOut(value - split, self.pkh(self.rng.randrange(8)))]
            txs.append(self.spend([(op, out)], outs))
        return txs

    # -- blocks

    def block(
        self,
        parent: bytes | Block | None = None,
        txs: Iterable[Transaction] = (),
        *,
        n_txs: int = 0,
        coinbase: Transaction | None = None,
        coinbase_value: int | None = None,
        coinbase_outputs: int = 1,
        time: int | None = None,
        bits: int | None = None,
        merkle: bytes | None = None,
        register: bool = True,
        do_mine: bool = True,
    ) -> Block:
        """A block on ``parent`` (default genesis): coinbase + ``txs`` + ``n_txs`` random spends.

        The coinbase claims subsidy + fees unless ``coinbase_value`` says otherwise.
        ``register`` records the block's UTXO set for building on it (use False for
        blocks meant to be invalid).
        """
        if isinstance(parent, Block):
            parent = parent.hash
        parent = self.genesis.hash if parent is None else parent
        parent_block = self.blocks[parent]
        height = self.heights[parent] + 1
        txs = list(txs)
        if n_txs:
            txs += self.random_txs(parent, n_txs)
        if coinbase is None:
            fees = self._fees(parent, txs)
            value = block_subsidy(height, self.params) + fees if coinbase_value is None else coinbase_value
            coinbase = self.coinbase(height, value, outputs=coinbase_outputs)
        block = assemble(parent_block.header, [coinbase] + txs, self.params, time=time, bits=bits, merkle=merkle, do_mine=do_mine)
        if register:
            self.register(block)
        return block

    def _fees(self, parent: bytes, txs: Sequence[Transaction]) -> int:
        view = dict(self.utxos[parent])
        fees = 0
        for tx in txs:
            vin = 0
            for txin in tx.inputs:
                entry = view.get(txin.prevout)
                vin += entry[0].value if entry else 0
            fees += vin - sum(o.value for o in tx.outputs)
            for i, o in enumerate(tx.outputs):
                view[OutPoint(tx.txid, i)] = (o, 0, False)
        return max(fees, 0)

    def register(self, block: Block) -> None:
        parent = block.header.prev_hash
        height = self.heights[parent] + 1
        state = dict(self.utxos[parent])
        for tx in block.transactions:
            cb = tx.is_coinbase()
            if not cb:
                for txin in tx.inputs:
                    state.pop(txin.prevout, None)
            for i, out in enumerate(tx.outputs):
                state[OutPoint(tx.txid, i)] = (out, height, cb)
        self.blocks[block.hash] = block
        self.heights[block.hash] = height
        self.utxos[block.hash] = state

    def chain(self, parent: bytes | Block | None, n: int, *, n_txs: int = 0, **kw) -> list[Block]:
        out = []
        for _ in range(n):
            b = self.block(parent, n_txs=n_txs, **kw)
            out.append(b)
            parent = b.hash
        return out

    def remine(self, block: Block, *, txs: Sequence[Transaction] | None = None, keep_merkle: bool = False, **header_fields) -> Block:
        """``block`` with other transactions and/or header fields, mined again (not registered)."""
        txs = list(block.transactions if txs is None else txs)
        header = replace(block.header, nonce=0, **header_fields)
        if not keep_merkle and "merkle_root" not in header_fields:
            header = replace(header, merkle_root=merkle_root([tx.txid for tx in txs])[0])
        return Block(mine(header, self.params), tuple(txs))

    def expected_utxos(self, tip: bytes) -> dict[OutPoint, tuple[int, bytes, int, bool]]:
        """The UTXO set after ``tip`` as (value, pubkey_hash, height, coinbase), for comparisons."""
        return {op: (o.value, o.pubkey_hash, h, cb) for op, (o, h, cb) in self.utxos[tip].items()}
