"""Consensus rules: every check a block and a transaction must pass.

Pure functions over values: no IO, no clock (``now`` is an argument), no database (the
UTXO set is reached through the small :class:`CoinView` protocol). The node's chain
state, a future mempool and the simulator call the same functions.

The checks come in Bitcoin Core's stages (validation.cpp), and each failure raises
:class:`ValidationError` with a stable reason code, Bitcoin's own string wherever one
fits:

=========================================  =========================================
stage (Bitcoin Core function)               reasons
=========================================  =========================================
check_block_header (CheckBlockHeader)       high-hash
check_block (CheckBlock)                    bad-txnmrklroot, bad-txns-duplicate (both
                                            *mutated*: the header may be fine),
                                            bad-blk-length, bad-cb-missing,
                                            bad-cb-multiple, + check_transaction's
check_transaction (CheckTransaction)        bad-txns-vin-empty, bad-txns-vout-empty,
                                            bad-txns-oversize, bad-txns-vout-negative,
                                            bad-txns-vout-toolarge,
                                            bad-txns-txouttotal-toolarge,
                                            bad-txns-inputs-duplicate, bad-cb-length,
                                            bad-txns-prevout-null
contextual_check_block_header               bad-diffbits, time-too-old, time-too-new
  (ContextualCheckBlockHeader)
contextual_check_block                      bad-txns-nonfinal, bad-cb-height
  (ContextualCheckBlock)
check_tx_inputs (Consensus::CheckTxInputs)  bad-txns-inputs-missingorspent,
                                            bad-txns-premature-spend-of-coinbase,
                                            bad-txns-inputvalues-outofrange,
                                            bad-txns-in-belowout,
                                            bad-txns-fee-outofrange
check_tx_signatures (CheckInputScripts)     SCRIPT_* below: "mandatory-script-verify-
                                            flag-failed (...)" as Core words them
connect_block (ConnectBlock)                bad-txns-BIP30,
                                            bad-txns-accumulated-fee-outofrange,
                                            bad-cb-amount, + the two above
(chain state) AcceptBlockHeader             bad-prevblk, duplicate-invalid
=========================================  =========================================

Simplifications, said plainly: there are no scripts, so "script verification" is one
check per input -- hash160(pubkey) equals the spent output's pubkey hash (P2PKH's
OP_EQUALVERIFY) and the signature verifies (OP_CHECKSIG). No sigop limit (no scripts to
count), no block-version rules, no segwit weight: the size limit is the legacy 1 MB
serialized size. BIP 34 (height in coinbase), BIP 113 (lock time against the median
time past) and strict-DER/low-S signatures hold from the genesis block on. Since a
transaction has no per-input nSequence, a lock time in the future always makes it
non-final.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

from minichain.core import keys
from minichain.core.block import Block, BlockHeader
from minichain.core.chain import BlockTree, IndexEntry
from minichain.core.encoding import DecodeError, Reader, Writer, decode_all
from minichain.core.hashing import hash160
from minichain.core.pow import check_proof_of_work
from minichain.core.sigcache import SignatureChecker
from minichain.core.tx import MAX_COINBASE_DATA, MIN_COINBASE_DATA, OutPoint, Transaction
from minichain.params import MAX_MONEY, Params

# Bitcoin: LOCKTIME_THRESHOLD (script.h) -- below it a lock time is a height, above a time.
LOCKTIME_THRESHOLD = 500_000_000

# Core's reason strings for the two script failures a P2PKH spend can have.
SCRIPT_PUBKEY_MISMATCH = "mandatory-script-verify-flag-failed (Script failed an OP_EQUALVERIFY operation)"
SCRIPT_BAD_SIGNATURE = (
    "mandatory-script-verify-flag-failed (Script evaluated without error but finished with a false/empty top stack element)"
)
SCRIPT_NONCANONICAL_SIGNATURE = "mandatory-script-verify-flag-failed (Non-canonical DER signature)"


class ValidationError(Exception):
    """A rule was broken. ``reason`` is the stable code, ``message`` says what and where.

    ``mutated`` is True when the block's transactions do not match its header's Merkle
    root (or the list was mutated, CVE-2012-2459): the header itself may belong to a
    perfectly valid block, so a node must not mark it invalid (Core: BLOCK_MUTATED).
    """

    def __init__(self, reason: str, message: str = "", *, mutated: bool = False) -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message
        self.mutated = mutated


class CorruptionError(Exception):
    """Stored data contradict each other (undo data that does not fit its block)."""


# --------------------------------------------------------------------------- money


def money_range(value: int) -> bool:
    """Bitcoin: MoneyRange (amount.h)."""
    return 0 <= value <= MAX_MONEY


def block_subsidy(height: int, params: Params) -> int:
    """Bitcoin: GetBlockSubsidy -- the initial subsidy halved every ``halving_interval`` blocks."""
    halvings = height // params.halving_interval
    if halvings >= 64:  # a shift by 64 or more is undefined in C++; Core returns 0
        return 0
    return params.initial_subsidy >> halvings


# ----------------------------------------------------------------- coins and undo


@dataclass(frozen=True, slots=True)
class Coin:
    """An unspent output with the facts validation needs (Bitcoin: Coin, coins.h)."""

    value: int
    pubkey_hash: bytes
    height: int       # height of the block that created it
    coinbase: bool    # created by a coinbase: spendable only after coinbase_maturity

    SIZE = 8 + 20 + 4 + 1

    def write(self, w: Writer) -> None:
        w.i64(self.value).write(self.pubkey_hash).u32(self.height).u8(1 if self.coinbase else 0)

    @classmethod
    def read(cls, r: Reader) -> "Coin":
        value, pkh, height, flag = r.i64(), r.read(20), r.u32(), r.u8()
        if flag > 1:
            raise DecodeError(f"coinbase flag {flag} is not 0 or 1")
        return cls(value, pkh, height, flag == 1)

    def serialize(self) -> bytes:
        w = Writer()
        self.write(w)
        return w.getvalue()

    @classmethod
    def deserialize(cls, data: bytes) -> "Coin":
        return decode_all(data, cls.read)


# Bitcoin: CBlockUndo = one CTxUndo per non-coinbase transaction, in block order; each
# CTxUndo lists the coins its inputs spent, in input order.
BlockUndo = tuple[tuple[Coin, ...], ...]


def serialize_undo(undo: BlockUndo) -> bytes:
    w = Writer()
    w.compact_size(len(undo))
    for tx_undo in undo:
        w.compact_size(len(tx_undo))
        for coin in tx_undo:
            coin.write(w)
    return w.getvalue()


def deserialize_undo(data: bytes) -> BlockUndo:
    def read(r: Reader) -> BlockUndo:
        n = r.count(r.remaining)
        out = []
        for _ in range(n):
            m = r.count(r.remaining // Coin.SIZE)
            out.append(tuple(Coin.read(r) for _ in range(m)))
        return tuple(out)

    return decode_all(data, read)


class CoinView(Protocol):
    """Anything that can look up an unspent output (a store, a cache, a mempool view)."""

    def get_coin(self, outpoint: OutPoint) -> Coin | None: ...


class CoinsCache:
    """A layer of changes over a :class:`CoinView` (Bitcoin: CCoinsViewCache).

    Connecting a block writes into a fresh cache; the base is untouched until the
    caller commits :meth:`changes` -- or throws the cache away when the block fails,
    which is how an invalid block leaves the UTXO set exactly as it was. A coin created
    and spent inside the same cache never reaches the base (Core's FRESH flag).
    """

    __slots__ = ("base", "_added", "_spent_base", "_fetched")

    def __init__(self, base: CoinView) -> None:
        self.base = base
        self._added: dict[OutPoint, Coin] = {}
        self._spent_base: dict[OutPoint, Coin] = {}
        self._fetched: dict[OutPoint, Coin | None] = {}

    def _base_coin(self, outpoint: OutPoint) -> Coin | None:
        try:
            return self._fetched[outpoint]
        except KeyError:
            coin = self._fetched[outpoint] = self.base.get_coin(outpoint)
            return coin

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        coin = self._added.get(outpoint)
        if coin is not None:
            return coin
        if outpoint in self._spent_base:
            return None
        return self._base_coin(outpoint)

    def have_coin(self, outpoint: OutPoint) -> bool:
        return self.get_coin(outpoint) is not None

    def spend_coin(self, outpoint: OutPoint) -> Coin | None:
        """Remove and return the coin, or None if it does not exist (or is spent)."""
        coin = self._added.pop(outpoint, None)
        if coin is not None:
            return coin
        if outpoint in self._spent_base:
            return None
        coin = self._base_coin(outpoint)
        if coin is not None:
            self._spent_base[outpoint] = coin
        return coin

    def add_coin(self, outpoint: OutPoint, coin: Coin) -> None:
        if self.have_coin(outpoint):
            raise ValueError(f"{outpoint!r} is already unspent")
        self._added[outpoint] = coin

    def changes(self) -> tuple[dict[OutPoint, Coin], list[OutPoint]]:
        """(coins to write, outpoints to delete) that turn the base into this view."""
        deletes = [op for op in self._spent_base if op not in self._added]
        return dict(self._added), deletes


# ---------------------------------------------------------------- context-free checks


def check_transaction(tx: Transaction, params: Params) -> None:
    """Bitcoin: CheckTransaction -- rules that need nothing but the transaction."""
    txid = tx.txid_hex()
    if not tx.inputs:
        raise ValidationError("bad-txns-vin-empty", f"transaction {txid} has no inputs")
    if not tx.outputs:
        raise ValidationError("bad-txns-vout-empty", f"transaction {txid} has no outputs")
    if tx.size > params.max_block_size:
        raise ValidationError("bad-txns-oversize", f"transaction {txid} is {tx.size} bytes")
    total = 0
    for i, out in enumerate(tx.outputs):
        if out.value < 0:
            raise ValidationError("bad-txns-vout-negative", f"output {i} of {txid} is {out.value}")
        if out.value > MAX_MONEY:
            raise ValidationError("bad-txns-vout-toolarge", f"output {i} of {txid} is {out.value} > MAX_MONEY")
        total += out.value
        if not money_range(total):
            raise ValidationError("bad-txns-txouttotal-toolarge", f"outputs of {txid} add up past MAX_MONEY")
    seen: set[OutPoint] = set()
    for txin in tx.inputs:
        if txin.prevout in seen:
            raise ValidationError("bad-txns-inputs-duplicate", f"{txid} spends {txin.prevout!r} twice")
        seen.add(txin.prevout)
    if tx.is_coinbase():
        n = len(tx.inputs[0].signature)
        if not MIN_COINBASE_DATA <= n <= MAX_COINBASE_DATA:
            raise ValidationError("bad-cb-length", f"coinbase data is {n} bytes, not {MIN_COINBASE_DATA}..{MAX_COINBASE_DATA}")
    else:
        for txin in tx.inputs:
            if txin.prevout.is_null():
                raise ValidationError("bad-txns-prevout-null", f"non-coinbase {txid} spends the null outpoint")


def check_block_header(header: BlockHeader, params: Params) -> None:
    """Bitcoin: CheckBlockHeader -- the header's hash meets the target its bits claim."""
    if not check_proof_of_work(header, params):
        raise ValidationError("high-hash", f"block {header.hash_hex()} does not meet its proof of work")


def check_block(block: Block, params: Params) -> None:
    """Bitcoin: CheckBlock -- everything that can be checked without the chain."""
    check_block_header(block.header, params)
    root, mutated = block.compute_merkle_root()
    if root != block.header.merkle_root:
        raise ValidationError("bad-txnmrklroot", "the transactions do not match the header's Merkle root", mutated=True)
    if mutated:
        # CVE-2012-2459: [a, b, c] and [a, b, c, c] share a root; refuse the duplicated list.
        raise ValidationError("bad-txns-duplicate", "duplicate transaction in the Merkle tree", mutated=True)
    txs = block.transactions
    if not txs or len(txs) > params.max_block_size or block.size > params.max_block_size:
        raise ValidationError("bad-blk-length", f"{len(txs)} transactions, {block.size} bytes (limit {params.max_block_size})")
    if not txs[0].is_coinbase():
        raise ValidationError("bad-cb-missing", "the first transaction is not a coinbase")
    for tx in txs[1:]:
        if tx.is_coinbase():
            raise ValidationError("bad-cb-multiple", f"more than one coinbase ({tx.txid_hex()})")
    for tx in txs:
        check_transaction(tx, params)


# --------------------------------------------------------------------- context checks


def contextual_check_block_header(header: BlockHeader, parent: IndexEntry, tree: BlockTree, now: int) -> None:
    """Bitcoin: ContextualCheckBlockHeader -- difficulty and time against the parent."""
    expected = tree.next_bits(parent)
    if header.bits != expected:
        raise ValidationError("bad-diffbits", f"bits {header.bits:#010x}, the retarget rule gives {expected:#010x}")
    mtp = tree.median_time_past(parent)
    if header.time <= mtp:
        raise ValidationError("time-too-old", f"time {header.time} is not after the median time past {mtp}")
    limit = now + tree.params.max_future_block_time
    if header.time > limit:
        raise ValidationError("time-too-new", f"time {header.time} is more than {tree.params.max_future_block_time}s past now ({now})")


def is_final_tx(tx: Transaction, height: int, cutoff_time: int) -> bool:
    """Bitcoin: IsFinalTx -- a lock time below the block's height (or time) is satisfied.

    Without per-input sequence numbers there is no way to waive an unmet lock time.
    """
    if tx.locktime == 0:
        return True
    return tx.locktime < (height if tx.locktime < LOCKTIME_THRESHOLD else cutoff_time)


def contextual_check_block(block: Block, parent: IndexEntry, tree: BlockTree) -> None:
    """Bitcoin: ContextualCheckBlock -- finality (BIP 113) and the coinbase height (BIP 34)."""
    height = parent.height + 1
    cutoff = tree.median_time_past(parent)
    for tx in block.transactions:
        if not is_final_tx(tx, height, cutoff):
            raise ValidationError("bad-txns-nonfinal", f"transaction {tx.txid_hex()} is locked until {tx.locktime}")
    if block.transactions[0].coinbase_height() != height:
        raise ValidationError("bad-cb-height", f"the coinbase does not start with height {height}")


# ------------------------------------------------------------- spending the UTXO set


def check_tx_inputs(tx: Transaction, view: CoinView, spend_height: int, params: Params) -> int:
    """Bitcoin: Consensus::CheckTxInputs. Returns the fee (inputs minus outputs).

    ``spend_height`` is the height of the block that would include ``tx`` (for a
    mempool: tip height + 1). Signatures are checked separately, by
    :func:`check_tx_signatures`.
    """
    txid = tx.txid_hex()
    value_in = 0
    for txin in tx.inputs:
        coin = view.get_coin(txin.prevout)
        if coin is None:
            raise ValidationError("bad-txns-inputs-missingorspent", f"{txid} spends {txin.prevout!r}, which is not unspent")
        if coin.coinbase and spend_height - coin.height < params.coinbase_maturity:
            raise ValidationError(
                "bad-txns-premature-spend-of-coinbase",
                f"{txid} spends a coinbase of height {coin.height} at height {spend_height} "
                f"(maturity {params.coinbase_maturity})",
            )
        value_in += coin.value
        if not money_range(coin.value) or not money_range(value_in):
            raise ValidationError("bad-txns-inputvalues-outofrange", f"input values of {txid} leave the money range")
    value_out = sum(out.value for out in tx.outputs)
    if value_in < value_out:
        raise ValidationError("bad-txns-in-belowout", f"{txid} spends {value_in} but pays {value_out}")
    fee = value_in - value_out
    if not money_range(fee):
        raise ValidationError("bad-txns-fee-outofrange", f"fee of {txid} out of range")  # pragma: no cover
    return fee


def check_tx_signatures(tx: Transaction, view: CoinView, checker: SignatureChecker) -> None:
    """Bitcoin: CheckInputScripts for our one output type (pay to public-key hash).

    Each input's public key must hash to the spent output's ``pubkey_hash``
    (OP_DUP OP_HASH160 <hash> OP_EQUALVERIFY) and its signature must verify over the
    input's digest (OP_CHECKSIG). Call after :func:`check_tx_inputs` (the coins exist).
    """
    for i, txin in enumerate(tx.inputs):
        coin = view.get_coin(txin.prevout)
        if coin is None:  # the caller skipped check_tx_inputs
            raise ValidationError("bad-txns-inputs-missingorspent", f"{txin.prevout!r} is not unspent")
        where = f"input {i} of {tx.txid_hex()}"
        if hash160(txin.pubkey) != coin.pubkey_hash:
            raise ValidationError(SCRIPT_PUBKEY_MISMATCH, f"{where}: the public key does not hash to the spent output's")
        if not keys.is_canonical_signature(txin.signature):
            raise ValidationError(SCRIPT_NONCANONICAL_SIGNATURE, f"{where}: not a strict-DER low-S signature")
        if not checker.check(txin.pubkey, txin.signature, tx.signature_digest(i)):
            raise ValidationError(SCRIPT_BAD_SIGNATURE, f"{where}: the signature does not verify")


def connect_block(
    block: Block, height: int, view: CoinsCache, params: Params, checker: SignatureChecker | None = None
) -> BlockUndo:
    """Bitcoin: ConnectBlock -- spend the block's inputs and add its outputs in ``view``.

    Call after :func:`check_block` and :func:`contextual_check_block`. Returns the undo
    data (the coins spent, per non-coinbase transaction). On a ValidationError ``view``
    is left half-updated: throw it away. ``checker=None`` checks signatures without a
    cache.
    """
    if checker is None:
        checker = SignatureChecker()
    fees = 0
    undo: list[tuple[Coin, ...]] = []
    for tx in block.transactions:
        coinbase = tx.is_coinbase()
        if not coinbase:
            fees += check_tx_inputs(tx, view, height, params)
            if not money_range(fees):
                raise ValidationError("bad-txns-accumulated-fee-outofrange", "the block's fees add up past MAX_MONEY")
            check_tx_signatures(tx, view, checker)
            spent = []
            for txin in tx.inputs:
                coin = view.spend_coin(txin.prevout)
                assert coin is not None  # check_tx_inputs saw it
                spent.append(coin)
            undo.append(tuple(spent))
        txid = tx.txid
        for index, out in enumerate(tx.outputs):
            outpoint = OutPoint(txid, index)
            # BIP 30: never overwrite an unspent output. With BIP 34 from genesis two
            # transactions cannot share a txid, so only corrupt state or a hash
            # collision reaches this, but the check costs one lookup per output.
            if view.have_coin(outpoint):
                raise ValidationError("bad-txns-BIP30", f"{tx.txid_hex()} would overwrite unspent {outpoint!r}")
            view.add_coin(outpoint, Coin(out.value, out.pubkey_hash, height, coinbase))
    limit = fees + block_subsidy(height, params)
    paid = sum(out.value for out in block.transactions[0].outputs)
    if paid > limit:
        raise ValidationError("bad-cb-amount", f"coinbase pays {paid}, limit is subsidy + fees = {limit}")
    return tuple(undo)


def disconnect_block(block: Block, undo: BlockUndo, view: CoinsCache) -> None:
    """Bitcoin: DisconnectBlock -- remove the block's outputs and restore what it spent.

    Raises :class:`CorruptionError` when the undo data or the view do not fit the block
    (Core would report DISCONNECT_UNCLEAN); such a store needs a reindex.
    """
    spenders = [tx for tx in block.transactions if not tx.is_coinbase()]
    if len(undo) != len(spenders):
        raise CorruptionError(f"undo data has {len(undo)} entries for {len(spenders)} transactions")
    tx_undos = iter(reversed(undo))
    for tx in reversed(block.transactions):
        txid = tx.txid
        for index in range(len(tx.outputs) - 1, -1, -1):
            if view.spend_coin(OutPoint(txid, index)) is None:
                raise CorruptionError(f"output {index} of {tx.txid_hex()} is not in the UTXO set")
        if tx.is_coinbase():
            continue
        tx_undo = next(tx_undos)
        if len(tx_undo) != len(tx.inputs):
            raise CorruptionError(f"undo data for {tx.txid_hex()} has {len(tx_undo)} coins for {len(tx.inputs)} inputs")
        for txin, coin in zip(reversed(tx.inputs), reversed(tx_undo)):
            if view.have_coin(txin.prevout):
                raise CorruptionError(f"{txin.prevout!r} is unspent while undoing its spend")
            view.add_coin(txin.prevout, coin)


__all__: Sequence[str] = (
    "LOCKTIME_THRESHOLD", "SCRIPT_PUBKEY_MISMATCH", "SCRIPT_BAD_SIGNATURE", "SCRIPT_NONCANONICAL_SIGNATURE",
    "ValidationError", "CorruptionError", "money_range", "block_subsidy", "Coin", "BlockUndo",
    "serialize_undo", "deserialize_undo", "CoinView", "CoinsCache", "check_transaction",
    "check_block_header", "check_block", "contextual_check_block_header", "is_final_tx",
    "contextual_check_block", "check_tx_inputs", "check_tx_signatures", "connect_block", "disconnect_block",
)
