"""The memory pool: valid transactions waiting for a block.

Policy, not consensus: a transaction is admitted only if it would be valid in the next
block (``core.validation``: context-free checks, inputs unspent in the chain or in the
pool, coinbase maturity, signatures), does not spend an outpoint another pool
transaction already spends (first seen wins, no replacement), and pays at least
``min_fee_rate``. The pool is bounded in bytes; when full, the transactions with the
lowest fee rate leave first, with everything that spends them.

Block templates take transactions by fee rate, a parent always before its child
(Bitcoin ranks by ancestor fee rate; we simply wait for parents, which is the same
order whenever a child does not pay for its parent).

The pool does no IO and reads no clock: the node passes in the chain's coin view and
height, and takes back what to relay.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Iterable

from minichain.core.sigcache import SignatureChecker
from minichain.core.tx import OutPoint, Transaction
from minichain.core.validation import (
    Coin,
    CoinView,
    ValidationError,
    check_transaction,
    check_tx_inputs,
    check_tx_signatures,
)
from minichain.params import Params

DEFAULT_MAX_BYTES = 5_000_000   # Bitcoin: -maxmempool is 300 MB; ours fits a laptop testnet


class MempoolError(Exception):
    """A transaction the pool refuses; ``reason`` is a stable code (Bitcoin's where one fits)."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message or reason


@dataclass(eq=False)
class Entry:
    tx: Transaction
    fee: int
    size: int
    sequence: int  # arrival order: breaks fee-rate ties, oldest first
    parents: set[bytes] = field(default_factory=set)   # txids of in-pool transactions it spends
    children: set[bytes] = field(default_factory=set)  # txids of in-pool transactions spending it
    addresses: frozenset[bytes] = frozenset()          # pubkey hashes it pays or spends from

    @property
    def txid(self) -> bytes:
        return self.tx.txid

    @property
    def fee_rate(self) -> float:
        """Units per byte."""
        return self.fee / self.size


class _PoolView:
    """The chain's coins with the pool's unconfirmed outputs layered on top, minus
    outputs the pool already spends. The chain's answers are kept for the view's life
    (one admission reads each input twice: amounts, then signatures)."""

    def __init__(self, pool: "Mempool", chain: CoinView, height: int) -> None:
        self.pool = pool
        self.chain = chain
        self.height = height
        self._read: dict[OutPoint, Coin | None] = {}

    def get_coin(self, outpoint: OutPoint) -> Coin | None:
        if outpoint in self.pool._spent_by:
            return None
        entry = self.pool._entries.get(outpoint.txid)
        if entry is not None:
            if outpoint.index >= len(entry.tx.outputs):
                return None
            out = entry.tx.outputs[outpoint.index]
            # Unconfirmed: as if in the next block (Bitcoin: MEMPOOL_HEIGHT).
            return Coin(out.value, out.pubkey_hash, self.height + 1, False)
        read = self._read
        try:
            return read[outpoint]
        except KeyError:
            coin = read[outpoint] = self.chain.get_coin(outpoint)
            return coin


class Mempool:
    def __init__(
        self,
        params: Params,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        min_fee_rate: float = 0.0,
        checker: SignatureChecker | None = None,
    ) -> None:
        self.params = params
        self.max_bytes = max_bytes
        self.min_fee_rate = min_fee_rate
        self.checker = checker or SignatureChecker()
        self._entries: dict[bytes, Entry] = {}
        self._spent_by: dict[OutPoint, bytes] = {}
        self._by_address: dict[bytes, dict[bytes, None]] = {}  # pubkey hash -> txids paying or spending it
        self._bytes = 0
        self._sequence = 0

    # -- queries ---------------------------------------------------------------------------

    def __contains__(self, txid: bytes) -> bool:
        return txid in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def get(self, txid: bytes) -> Entry | None:
        return self._entries.get(txid)

    def entries(self) -> list[Entry]:
        """All entries, best fee rate first."""
        return sorted(self._entries.values(), key=lambda e: (-e.fee_rate, e.sequence))

    def snapshot(self) -> list[Entry]:
        """All entries in no particular order: cheaper than :meth:`entries` for a caller
        that picks a few (a page) itself."""
        return list(self._entries.values())

    def touching(self, pubkey_hash: bytes) -> list[Entry]:
        """Entries that pay ``pubkey_hash`` or spend its coins, newest first."""
        entries = [self._entries[t] for t in self._by_address.get(pubkey_hash, ())]
        return sorted(entries, key=lambda e: -e.sequence)

    @staticmethod
    def _addresses(tx: Transaction, view: CoinView) -> frozenset[bytes]:
        # The coins it spends were just read (and each input's key hashes to its coin's address).
        spent = (view.get_coin(i.prevout) for i in tx.inputs)
        return frozenset([o.pubkey_hash for o in tx.outputs] + [c.pubkey_hash for c in spent if c is not None])

    def spender(self, outpoint: OutPoint) -> bytes | None:
        """The txid of the pool transaction spending ``outpoint``, if any."""
        return self._spent_by.get(outpoint)

    def view(self, chain: CoinView, height: int) -> CoinView:
        """``chain`` as the pool sees it: its own unconfirmed outputs added, its spends removed."""
        return _PoolView(self, chain, height)

    # -- admission -------------------------------------------------------------------------

    def add(self, tx: Transaction, chain: CoinView, height: int) -> Entry:
        """Validate ``tx`` against the chain (tip at ``height``) and the pool; admit it or raise."""
        txid = tx.txid
        if txid in self._entries:
            raise MempoolError("txn-already-in-mempool", f"{tx.txid_hex()} is already in the pool")
        if tx.is_coinbase():
            raise MempoolError("coinbase", "a coinbase transaction is only valid in a block")
        try:
            check_transaction(tx, self.params)
        except ValidationError as exc:
            raise MempoolError(exc.reason, exc.message) from None
        for txin in tx.inputs:
            other = self._spent_by.get(txin.prevout)
            if other is not None:
                raise MempoolError(
                    "txn-mempool-conflict",
                    f"{txin.prevout!r} is already spent by pool transaction {other[::-1].hex()}",
                )
        view = _PoolView(self, chain, height)
        try:
            fee = check_tx_inputs(tx, view, height + 1, self.params)
            check_tx_signatures(tx, view, self.checker)
        except ValidationError as exc:
            raise MempoolError(exc.reason, exc.message) from None
        size = tx.size
        if fee < self.min_fee_rate * size:
            raise MempoolError("min-fee-not-met", f"fee {fee} is below {self.min_fee_rate} per byte for {size} bytes")
        entry = Entry(tx, fee, size, self._sequence, addresses=self._addresses(tx, view))
        self._sequence += 1
        self._insert(entry)
        evicted = self._trim()
        if txid in evicted:
            raise MempoolError("mempool-full", f"the pool is full and fee rate {entry.fee_rate:.2f} is too low")
        return entry

    def _insert(self, entry: Entry) -> None:
        txid = entry.txid
        for txin in entry.tx.inputs:
            self._spent_by[txin.prevout] = txid
            parent = self._entries.get(txin.prevout.txid)
            if parent is not None:
                entry.parents.add(parent.txid)
                parent.children.add(txid)
        # A transaction back from a reorg may already have children in the pool, admitted
        # while it was confirmed (Bitcoin Core: UpdateTransactionsFromBlock): link them.
        spent_by = self._spent_by
        for i in range(len(entry.tx.outputs)):
            child_txid = spent_by.get(OutPoint(txid, i))
            if child_txid is not None:
                child = self._entries.get(child_txid)
                if child is not None:
                    child.parents.add(txid)
                    entry.children.add(child_txid)
        self._entries[txid] = entry
        self._bytes += entry.size
        for pkh in entry.addresses:
            self._by_address.setdefault(pkh, {})[txid] = None

    def _trim(self) -> set[bytes]:
        """Evict the lowest fee rates (with their descendants) until the pool fits."""
        evicted: set[bytes] = set()
        if self._bytes <= self.max_bytes:
            return evicted
        for entry in sorted(self._entries.values(), key=lambda e: (e.fee_rate, -e.sequence)):
            if self._bytes <= self.max_bytes:
                break
            if entry.txid in self._entries:
                evicted |= {e.txid for e in self._remove_with_descendants(entry.txid)}
        return evicted

    # -- removal ---------------------------------------------------------------------------

    def _remove_one(self, txid: bytes) -> Entry:
        entry = self._entries.pop(txid)
        self._bytes -= entry.size
        for pkh in entry.addresses:
            txids = self._by_address.get(pkh)
            if txids is not None:
                txids.pop(txid, None)
                if not txids:
                    del self._by_address[pkh]
        for txin in entry.tx.inputs:
            if self._spent_by.get(txin.prevout) == txid:
                del self._spent_by[txin.prevout]
        for p in entry.parents:
            parent = self._entries.get(p)
            if parent is not None:
                parent.children.discard(txid)
        for c in entry.children:
            child = self._entries.get(c)
            if child is not None:
                child.parents.discard(txid)
        return entry

    def _remove_with_descendants(self, txid: bytes) -> list[Entry]:
        removed = []
        stack = [txid]
        while stack:
            t = stack.pop()
            if t in self._entries:
                stack.extend(self._entries[t].children)
                removed.append(self._remove_one(t))
        return removed

    def remove(self, txid: bytes) -> list[Entry]:
        """Drop a transaction and everything that spends it."""
        return self._remove_with_descendants(txid)

    def remove_for_block(self, txs: Iterable[Transaction]) -> list[Entry]:
        """A block connected: drop its transactions (their children stay, now spending
        confirmed outputs) and whatever conflicts with it (with descendants).
        Returns the conflicting entries that were dropped."""
        conflicts: list[Entry] = []
        for tx in txs:
            if tx.txid in self._entries:
                self._remove_one(tx.txid)
            for txin in tx.inputs:
                other = self._spent_by.get(txin.prevout)
                if other is not None and other != tx.txid:
                    conflicts += self._remove_with_descendants(other)
        return conflicts

    def readd(self, txs: Iterable[Transaction], chain: CoinView, height: int) -> list[Transaction]:
        """After a reorg: try the disconnected transactions again, oldest first. Returns
        those admitted; the others (now conflicting or invalid) are dropped silently."""
        added = []
        for tx in txs:
            try:
                self.add(tx, chain, height)
            except MempoolError:
                continue
            added.append(tx)
        return added

    def revalidate(self, chain: CoinView, height: int) -> list[Entry]:
        """After a reorg: drop transactions whose inputs vanished or became immature
        (Bitcoin: removeForReorg). Returns what was dropped."""
        dropped: list[Entry] = []
        for entry in sorted(self._entries.values(), key=lambda e: e.sequence):
            if entry.txid not in self._entries:
                continue
            ok = True
            for txin in entry.tx.inputs:
                parent = self._entries.get(txin.prevout.txid)
                if parent is not None:
                    continue
                coin = chain.get_coin(txin.prevout)
                if coin is None or (coin.coinbase and height + 1 - coin.height < self.params.coinbase_maturity):
                    ok = False
                    break
            if not ok:
                dropped += self._remove_with_descendants(entry.txid)
        return dropped

    # -- block templates -------------------------------------------------------------------

    def select(self, max_bytes: int) -> list[Entry]:
        """Entries for a block of at most ``max_bytes`` of transactions: highest fee rate
        first, a parent always before its children."""
        chosen: list[Entry] = []
        chosen_ids: set[bytes] = set()
        used = 0
        heap = [(-e.fee_rate, e.sequence, e.txid) for e in self._entries.values() if not e.parents]
        heapq.heapify(heap)
        while heap:
            _, _, txid = heapq.heappop(heap)
            entry = self._entries[txid]
            if used + entry.size > max_bytes:
                continue  # too big for what is left; its children wait for it and stay out
            chosen.append(entry)
            chosen_ids.add(txid)
            used += entry.size
            for c in entry.children:
                child = self._entries[c]
                if child.parents <= chosen_ids:
                    heapq.heappush(heap, (-child.fee_rate, child.sequence, c))
        return chosen
