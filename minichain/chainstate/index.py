"""Indexes over the active chain, kept in the store beside the UTXO set.

Bitcoin Core's ``-txindex`` (where is a transaction) and the address index that block
explorers add on top of it (Insight, Esplora/electrs: what touched an address, and which
of its outputs are unspent), so the API answers from a few key lookups and one range scan
instead of decoding blocks.

Every row is written in the same store batch as the block connect that creates it, and
removed in the same batch as the disconnect that undoes it (``ChainState._connect_tip``
and ``_disconnect_tip``): after a crash the indexes describe exactly the stored tip, and
nothing is rebuilt when a node starts. ``ChainState.reindex`` rebuilds them with
everything else; a store of format 1 (before these indexes) is upgraded once, from the
stored blocks and their undo data (``rebuild``).

Key spaces (``store.interface.SPACES``). Heights, positions and output numbers are
big-endian in keys, so one address's rows are one key range, in chain order, and a page
is a range scan that starts at a cursor (the key of the last row of the previous page):

  tx         txid                        -> TxLocation: block hash, height, position in
                                            the block, byte offset and length in the block's
                                            serialization, and the (value, address) of the
                                            output each input spent (inputs and fee shown
                                            without another lookup)
  history    pkh + height + position     -> txid + the net change of the address's balance
  outputs    pkh + height + txid + vout  -> value + coinbase flag: the address's coins
  totals     pkh                         -> balance, number of coins, number of history rows
  blockinfo  block hash                  -> size, number of transactions, and the (value,
                                            address) of each coinbase output: the miner, and
                                            what is still immature at the tip without a scan

The genesis block is in ``tx`` and ``blockinfo`` only: its coinbase never enters the UTXO
set (as in Bitcoin), so it is in no one's balance or history.

Simplifications: a txid is taken to be unique on the active chain (BIP 30 and 34 make it
so here from genesis); a rebuild holds the whole index in memory and writes it in one
batch (fine for a laboratory chain, not for Bitcoin's).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterable, Iterator, NamedTuple

from minichain.core.block import HEADER_SIZE, Block
from minichain.core.encoding import Reader, Writer, decode_all
from minichain.core.tx import OutPoint, Transaction
from minichain.core.validation import BlockUndo
from minichain.store.interface import SPACES, ChainStore, StoreBatch

TX, HISTORY, OUTPUTS, TOTALS, BLOCKINFO = SPACES

_BE32 = struct.Struct(">I")
_BE32X2 = struct.Struct(">II")
_HISTORY_KEY = struct.Struct(">20sII")     # pkh, height, position
_OUTPUT_KEY = struct.Struct(">20sI32sI")   # pkh, height, txid, vout
_LOCATION = struct.Struct("<32sIIII")  # block hash, height, position, offset, length; then what it spent
_HISTORY = struct.Struct("<32sq")      # txid, delta
_OUTPUT = struct.Struct("<qB")         # value, coinbase
_TOTALS = struct.Struct("<qQQ")        # balance, coins, history rows
_BLOCKINFO = struct.Struct("<II")      # size, transactions; then the coinbase's outputs
_PAYMENT = struct.Struct("<q20s")      # value, pubkey hash

HISTORY_CURSOR_SIZE = 8                # height + position
COIN_CURSOR_SIZE = 4 + 32 + 4          # height + txid + vout


def _compact_size_len(n: int) -> int:
    return 1 if n < 0xFD else 3 if n <= 0xFFFF else 5 if n <= 0xFFFFFFFF else 9


def _location(block_hash: bytes, height: int, position: int, offset: int, length: int,
              spent: Iterable[tuple[int, bytes]]) -> bytes:
    """TxLocation's bytes (struct, not Writer: one of these per transaction connected)."""
    payments = [_PAYMENT.pack(value, pkh) for value, pkh in spent]
    n = len(payments)
    count = bytes([n]) if n < 0xFD else Writer().compact_size(n).getvalue()
    return _LOCATION.pack(block_hash, height, position, offset, length) + count + b"".join(payments)


# -- what the indexes hold ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TxLocation:
    """Where a confirmed transaction is, and what its inputs spent."""

    block_hash: bytes
    height: int
    position: int      # index in the block's transaction list (0: the coinbase)
    offset: int        # byte offset of its serialization in the block's
    length: int
    spent: tuple[tuple[int, bytes], ...]  # (value, pubkey hash) per input; () for a coinbase

    def serialize(self) -> bytes:
        return _location(self.block_hash, self.height, self.position, self.offset, self.length, self.spent)

    @classmethod
    def deserialize(cls, data: bytes) -> "TxLocation":
        def read(r: Reader) -> TxLocation:
            head = (r.hash32(), r.u32(), r.u32(), r.u32(), r.u32())
            spent = tuple((r.i64(), r.read(20)) for _ in range(r.count(r.remaining // 28)))
            return cls(*head, spent)

        return decode_all(data, read)

    @property
    def spent_value(self) -> int:
        """What the inputs spent in total (0 for a coinbase)."""
        return sum(value for value, _ in self.spent)


class HistoryEntry(NamedTuple):   # a tuple: pages build thousands of these
    """A confirmed transaction that touched an address, and what it did to its balance."""

    height: int
    position: int
    txid: bytes
    delta: int    # received minus spent, in units

    @property
    def cursor(self) -> bytes:
        return _BE32.pack(self.height) + _BE32.pack(self.position)


class AddressCoin(NamedTuple):
    """An unspent output paying an address."""

    height: int
    txid: bytes
    vout: int
    value: int
    coinbase: bool

    @property
    def outpoint(self) -> OutPoint:
        return OutPoint(self.txid, self.vout)

    @property
    def cursor(self) -> bytes:
        return _BE32.pack(self.height) + self.txid + _BE32.pack(self.vout)


@dataclass(frozen=True, slots=True)
class AddressTotals:
    balance: int = 0   # the value of all its coins (mature or not)
    coins: int = 0     # how many unspent outputs pay it
    txs: int = 0       # how many confirmed transactions touched it


@dataclass(frozen=True, slots=True)
class BlockSummary:
    size: int
    tx_count: int
    coinbase: tuple[tuple[int, bytes], ...]   # (value, pubkey hash) of each coinbase output

    @property
    def miner(self) -> bytes | None:
        """The pubkey hash the coinbase pays first."""
        return self.coinbase[0][1] if self.coinbase else None

    def serialize(self) -> bytes:
        return _BLOCKINFO.pack(self.size, self.tx_count) + b"".join(_PAYMENT.pack(*o) for o in self.coinbase)

    @classmethod
    def deserialize(cls, data: bytes) -> "BlockSummary":
        size, count = _BLOCKINFO.unpack_from(data)
        outs = tuple(_PAYMENT.unpack_from(data, at) for at in range(_BLOCKINFO.size, len(data), _PAYMENT.size))
        return cls(size, count, outs)


# -- the rows of one block -------------------------------------------------------------------------


def index_block(batch: StoreBatch, block: Block, height: int, undo: BlockUndo, sign: int, totals_of,
                *, addresses: bool = True) -> None:
    """Add to ``batch`` what connecting (``sign`` +1) or disconnecting (-1) ``block`` at
    ``height`` does to the indexes. ``undo`` lists the coins its transactions spent (what
    ``connect_block`` returns), so an input's owner and value come from the coin itself;
    ``totals_of(pkh)`` reads an address's totals before this block.

    In a batch the last change to a key wins. Connecting walks the transactions in order
    (a coin is created, then perhaps spent by a later transaction: deleted); disconnecting
    walks them backwards, restoring what each spent before deleting what it created, so a
    coin created and spent inside the block ends deleted both ways. (Written for speed: it
    runs for every block; entries go straight into the batch's dict.)"""
    entries = batch.entries
    txs = block.transactions
    block_hash = block.hash
    connect = sign > 0
    history_key, output_key, output = _HISTORY_KEY.pack, _OUTPUT_KEY.pack, _OUTPUT.pack
    totals: dict[bytes, list[int]] = {}
    offsets = []
    offset = HEADER_SIZE + _compact_size_len(len(txs))
    for tx in txs:
        offsets.append(offset)
        offset += tx.size
    entries[(BLOCKINFO, block_hash)] = BlockSummary(
        offset, len(txs), tuple((o.value, o.pubkey_hash) for o in txs[0].outputs) if txs else ()
    ).serialize() if connect else None  # offset: now the block's size
    spenders = [()] + list(undo) if txs and txs[0].is_coinbase() else list(undo)
    order = range(len(txs)) if connect else range(len(txs) - 1, -1, -1)
    for position in order:
        tx = txs[position]
        txid = tx.txid
        spent = spenders[position]
        entries[(TX, txid)] = _location(block_hash, height, position, offsets[position], tx.size,
                                        [(c.value, c.pubkey_hash) for c in spent]) if connect else None
        if not addresses:
            continue
        coinbase = not spent and tx.is_coinbase()
        deltas: dict[bytes, int] = {}
        outs = []
        for vout, out in enumerate(tx.outputs):
            pkh, value = out.pubkey_hash, out.value
            deltas[pkh] = deltas.get(pkh, 0) + value
            outs.append(((OUTPUTS, output_key(pkh, height, txid, vout)), output(value, coinbase)))
            t = totals.get(pkh) or totals.setdefault(pkh, [0, 0, 0])
            t[0] += value
            t[1] += 1
        ins = []
        for txin, coin in zip(tx.inputs, spent):
            pkh, value = coin.pubkey_hash, coin.value
            deltas[pkh] = deltas.get(pkh, 0) - value
            prev = txin.prevout
            ins.append(((OUTPUTS, output_key(pkh, coin.height, prev.txid, prev.index)), output(value, coin.coinbase)))
            t = totals.get(pkh) or totals.setdefault(pkh, [0, 0, 0])
            t[0] -= value
            t[1] -= 1
        if connect:
            entries.update(outs)
            entries.update((key, None) for key, _ in ins)
        else:
            entries.update(ins)
            entries.update((key, None) for key, _ in outs)
        for pkh, delta in deltas.items():
            entries[(HISTORY, history_key(pkh, height, position))] = _HISTORY.pack(txid, delta) if connect else None
            totals[pkh][2] += 1
    for pkh, (balance, coins, count) in totals.items():
        old = totals_of(pkh)
        new = AddressTotals(old.balance + sign * balance, old.coins + sign * coins, old.txs + sign * count)
        entries[(TOTALS, pkh)] = None if new == AddressTotals() else _TOTALS.pack(new.balance, new.coins, new.txs)


# -- reading ---------------------------------------------------------------------------------------


def _totals(data: bytes | None) -> AddressTotals:
    return AddressTotals() if data is None else AddressTotals(*_TOTALS.unpack(data))


class ChainIndex:
    """The indexes of a store: read by the API, written by the chain state's batches."""

    def __init__(self, store: ChainStore) -> None:
        self.store = store

    # -- writing (the chain state calls these with the batch of a connect or disconnect)

    def connect(self, batch: StoreBatch, block: Block, height: int, undo: BlockUndo) -> None:
        index_block(batch, block, height, undo, +1, self.totals)

    def disconnect(self, batch: StoreBatch, block: Block, height: int, undo: BlockUndo) -> None:
        index_block(batch, block, height, undo, -1, self.totals)

    def add_genesis(self, batch: StoreBatch, genesis: Block) -> None:
        index_block(batch, genesis, 0, (), +1, self.totals, addresses=False)

    # -- transactions and blocks

    def location(self, txid: bytes) -> TxLocation | None:
        data = self.store.get_entry(TX, txid)
        return None if data is None else TxLocation.deserialize(data)

    def has_tx(self, txid: bytes) -> bool:
        return self.store.get_entry(TX, txid) is not None

    def transaction(self, txid: bytes) -> tuple[Transaction, TxLocation] | None:
        """The transaction and where it is: one index read, one block read, one
        transaction decoded (not the block)."""
        loc = self.location(txid)
        if loc is None:
            return None
        raw = self.store.get_block(loc.block_hash)
        if raw is None:
            return None
        return Transaction.deserialize(raw[loc.offset:loc.offset + loc.length]), loc

    def block_summary(self, block_hash: bytes) -> BlockSummary | None:
        data = self.store.get_entry(BLOCKINFO, block_hash)
        return None if data is None else BlockSummary.deserialize(data)

    # -- addresses

    def totals(self, pkh: bytes) -> AddressTotals:
        return _totals(self.store.get_entry(TOTALS, pkh))

    def history(self, pkh: bytes, *, before: bytes | None = None) -> Iterator[HistoryEntry]:
        """The address's confirmed history, newest first, from just below ``before`` (a
        :attr:`HistoryEntry.cursor`). Lazy: take what a page needs."""
        stop = pkh + before if before is not None else None
        for key, value in self.store.iter_entries(HISTORY, pkh, stop=stop, reverse=True):
            yield HistoryEntry(*_BE32X2.unpack_from(key, 20), *_HISTORY.unpack(value))

    def coins(self, pkh: bytes, *, before: bytes | None = None, min_height: int = 0) -> Iterator[AddressCoin]:
        """The address's unspent outputs, newest first, from just below ``before`` (an
        :attr:`AddressCoin.cursor`), down to ``min_height``. Lazy."""
        stop = pkh + before if before is not None else None
        start = pkh + _BE32.pack(min_height) if min_height > 0 else None
        for key, value in self.store.iter_entries(OUTPUTS, pkh, start=start, stop=stop, reverse=True):
            amount, coinbase = _OUTPUT.unpack(value)
            yield AddressCoin(_BE32.unpack_from(key, 20)[0], key[24:56], _BE32.unpack_from(key, 56)[0],
                              amount, coinbase == 1)


# -- rebuilding and checking -----------------------------------------------------------------------


class Rebuilt:
    """The indexes as a full rebuild from the active chain gives them, in memory."""

    def __init__(self) -> None:
        self.spaces: dict[str, dict[bytes, bytes]] = {space: {} for space in SPACES}

    def add(self, block: Block, height: int, undo: BlockUndo, *, addresses: bool = True) -> None:
        """Connect one block (blocks in chain order)."""
        batch = StoreBatch()
        index_block(batch, block, height, undo, +1, lambda pkh: _totals(self.spaces[TOTALS].get(pkh)),
                    addresses=addresses)
        for (space, key), value in batch.entries.items():
            if value is None:
                self.spaces[space].pop(key, None)
            else:
                self.spaces[space][key] = value

    def batch(self, store: ChainStore, batch: StoreBatch | None = None) -> StoreBatch:
        """A batch that makes the store's index spaces exactly this."""
        batch = StoreBatch() if batch is None else batch
        for space in SPACES:
            wanted = self.spaces[space]
            for key, _ in store.iter_entries(space):
                if key not in wanted:
                    batch.delete_entry(space, key)
            for key, value in wanted.items():
                batch.put_entry(space, key, value)
        return batch

    def differences(self, store: ChainStore, limit: int = 20) -> list[str]:
        """How the store's index spaces differ from this (empty when they agree)."""
        problems = []
        for space in SPACES:
            wanted = self.spaces[space]
            stored = dict(store.iter_entries(space))
            missing = [k for k in wanted if k not in stored]
            extra = [k for k in stored if k not in wanted]
            differ = [k for k in wanted if k in stored and stored[k] != wanted[k]]
            for label, keys in (("missing from", missing), ("extra in", extra), ("different in", differ)):
                if keys and len(problems) < limit:
                    problems.append(f"{len(keys)} rows {label} the {space} index, e.g. key {keys[0].hex()}")
        return problems


def rebuild(genesis: Block, blocks: Iterable[tuple[Block, int, BlockUndo]]) -> Rebuilt:
    """The indexes of an active chain: genesis, then ``(block, height, undo)`` in order."""
    out = Rebuilt()
    out.add(genesis, 0, (), addresses=False)
    for block, height, undo in blocks:
        out.add(block, height, undo)
    return out
