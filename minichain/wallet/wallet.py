"""The wallet: a key file on this machine plus a node that knows the chain.

The node is asked only public questions -- the coins and history of each address the
wallet has handed out -- and is given only signed transactions. Keys are derived, and
transactions signed, here in the client process; the node never sees a private key.

Simplifications, said plainly: the wallet keeps no state besides its key file, so each
command asks the node about every address again (one request per address, and one per
further page of 1,000 coins or history entries: fine for a few hundred addresses or
tens of thousands of coins, not for an exchange); and it trusts the node it talks to
about balances (a light client would check Merkle proofs; ours is your own node).

Paging: the node answers lists a page at a time. If the chain's tip moves while the
wallet pages through them (a block in between could spend or add coins on pages already
read), the wallet starts its pass again, up to ``SNAPSHOT_TRIES`` times, so that a
balance is the balance at one tip.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Iterator

from minichain.core.keys import AddressError, decode_address
from minichain.core.tx import OutPoint, Transaction, TxIn, TxOut, sign_inputs
from minichain.wallet.amounts import COIN, format_amount
from minichain.wallet.client import NodeClient, NodeRequestError
from minichain.wallet.coinselect import (DEFAULT_FEE_RATE, Candidate, InsufficientFunds, Selection,
                                         select_coins)
from minichain.wallet.keyfile import KeyFile

TX_VERSION = 1
# The most a send pays in fees unless told otherwise: a tenth of a coin, Bitcoin Core's
# wallet default for -maxtxfee (DEFAULT_TRANSACTION_MAXFEE = COIN / 10, wallet/wallet.h).
DEFAULT_MAX_FEE = COIN // 10
SNAPSHOT_TRIES = 3


class WalletError(Exception):
    """A wallet operation cannot go ahead; ``str()`` says why in plain words."""


class WrongNetwork(WalletError):
    pass


class NotEnoughFunds(WalletError):
    def __init__(self, message: str, shortfall: int) -> None:
        super().__init__(message)
        self.shortfall = shortfall


@dataclass(frozen=True)
class Utxo:
    txid: str
    vout: int
    value: int
    address: str
    height: int | None          # None: created by a transaction still in the mempool
    confirmations: int
    coinbase: bool
    mature: bool
    spent_in_mempool: str | None  # txid of the pool transaction spending it

    def blocks_to_maturity(self, maturity: int) -> int:
        """Blocks still to be mined before this coinbase output can be spent."""
        if self.mature or self.height is None:
            return 0
        # Spendable in block h when h - height >= maturity; the next block is tip + 1.
        return max(0, maturity - self.confirmations)

    def to_json(self) -> dict:
        return {"txid": self.txid, "vout": self.vout, "value": self.value, "amount": format_amount(self.value),
                "address": self.address, "height": self.height, "confirmations": self.confirmations,
                "coinbase": self.coinbase, "mature": self.mature, "spent_in_mempool": self.spent_in_mempool}


@dataclass
class Snapshot:
    """What the node says about every address of the wallet, gathered in one pass."""

    network: str
    height: int
    min_conf: int
    maturity: int
    utxos: list[Utxo] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    mempool_delta: int = 0  # the net effect on the wallet of the node's pool transactions
    history_complete: bool = True  # False: perhaps more than the newest entries gathered

    def spendable(self) -> list[Utxo]:
        """Coins a new transaction may spend: mature, with at least ``min_conf``
        confirmations, and not already spent by a transaction in the pool."""
        return [u for u in self.utxos if u.mature and not u.spent_in_mempool and u.confirmations >= self.min_conf]

    def balance(self) -> dict[str, int]:
        on_chain = [u for u in self.utxos if u.height is not None]
        confirmed = sum(u.value for u in on_chain if u.mature and u.confirmations >= self.min_conf)
        immature = sum(u.value for u in on_chain if not u.mature)
        recent = sum(u.value for u in on_chain if u.mature and u.confirmations < self.min_conf)
        unconfirmed = recent + self.mempool_delta
        return {"confirmed": confirmed, "unconfirmed": unconfirmed, "immature": immature,
                "total": confirmed + unconfirmed + immature,
                "spendable": sum(u.value for u in self.spendable())}


@dataclass(frozen=True)
class SendResult:
    txid: str
    tx: Transaction
    selection: Selection
    to_address: str
    change_address: str | None
    fee_rate: int

    def to_json(self) -> dict:
        s = self.selection
        return {"txid": self.txid, "to": self.to_address, "amount": format_amount(s.amount), "value": s.amount,
                "fee": s.fee, "fee_amount": format_amount(s.fee), "fee_rate": self.fee_rate, "size": self.tx.size,
                "change": s.change, "change_address": self.change_address,
                "inputs": [{"txid": c.txid, "vout": c.vout, "value": c.value} for c in s.coins]}


class Wallet:
    def __init__(self, keyfile: KeyFile, client: NodeClient) -> None:
        self.keyfile = keyfile
        self.client = client
        self._checked_network = False

    @property
    def params(self):
        return self.keyfile.params

    def check_network(self) -> dict:
        """Ask the node which chain it follows; refuse to go on if it is not ours."""
        status = self.client.status()
        if status.get("network") != self.keyfile.network:
            raise WrongNetwork(
                f"wrong network: the node at {self.client.url} follows {status.get('network')!r}, "
                f"but the wallet {self.keyfile.path} is for {self.keyfile.network!r} "
                f"(use --node to pick a {self.keyfile.network} node, or --wallet for a {status.get('network')} wallet)"
            )
        self._checked_network = True
        return status

    def snapshot(self, min_conf: int = 1, *, history: int | None = 0) -> Snapshot:
        """Every coin of the wallet's addresses, its pending balance change, and with
        ``history`` that many of its newest transactions (None: all of them)."""
        if min_conf < 0:
            raise ValueError("min_conf must be 0 or more")
        status = self.check_network()
        for _ in range(SNAPSHOT_TRIES):
            snap, tips = self._gather(status, min_conf, history)
            if len(tips) <= 1:
                break
            status = self.client.status()  # the tip moved while paging: again, at the new tip
        return snap

    def _gather(self, status: dict, min_conf: int, history: int | None) -> tuple[Snapshot, set]:
        snap = Snapshot(self.keyfile.network, status["height"], min_conf, self.params.coinbase_maturity)
        tips: set = set()
        streams: dict[str, Iterator[dict]] = {}
        lists: dict[str, list[dict]] = {}
        for _chain, _i, address in self.keyfile.issued():
            info = self.client.address(address, min_conf=min_conf)
            tips.add(info.get("tip"))
            # The tip may move between requests; keep the newest height seen.
            snap.height = max(snap.height, info.get("height", snap.height))
            snap.mempool_delta += info["unconfirmed"]
            coins = list(info["utxos"])
            if info.get("utxos_next"):
                for u, page in self.client.iter_address_utxos(address, after=info["utxos_next"]):
                    tips.add(page.get("tip"))
                    coins.append(u)
            for u in coins:
                snap.utxos.append(Utxo(u["txid"], u["vout"], u["value"], address, u["height"], u["confirmations"],
                                       u["coinbase"], u["mature"], u["spent_in_mempool"]))
            if history != 0:
                streams[address] = self._history_stream(address, info, tips)
                lists[address] = list(itertools.islice(streams[address], history))
        if history is not None and history > 0:
            # Each address gave its newest ``history``; the wallet's newest are among them.
            # A transaction near the cut may touch an address whose list stopped just
            # above it: read every list down past the cut, so each delta is complete.
            merged = sorted((h for entries in lists.values() for h in entries), key=_newest_first)
            if len(merged) >= history:
                cut = _level(merged[history - 1])
                for address, entries in lists.items():
                    while entries and _level(entries[-1]) >= cut:
                        more = next(streams[address], None)
                        if more is None:
                            break
                        entries.append(more)
        gathered: dict[str, dict] = {}
        for entries in lists.values():
            for h in entries:
                entry = gathered.get(h["txid"])
                if entry is None:
                    gathered[h["txid"]] = dict(h)
                else:  # one transaction touching several of our addresses: add the effects
                    entry["delta"] += h["delta"]
        snap.history = sorted(gathered.values(), key=_newest_first)
        if history is not None:
            # Fewer than asked for: every address's list ended before the limit.
            snap.history_complete = len(snap.history) < history
            snap.history = snap.history[:history]
        snap.utxos.sort(key=lambda u: (u.height is None, u.height or 0, u.txid, u.vout))
        tips.discard(None)
        return snap, tips

    def _history_stream(self, address: str, info: dict, tips: set) -> Iterator[dict]:
        """The address's history, newest first: the first page, then the following pages."""
        yield from info["history"]
        if info.get("history_next"):
            for h, page in self.client.iter_address_history(address, after=info["history_next"]):
                tips.add(page.get("tip"))
                yield h

    def send(self, to_address: str, amount: int, fee_rate: int = DEFAULT_FEE_RATE, min_conf: int = 1,
             max_fee: int = DEFAULT_MAX_FEE) -> SendResult:
        """Pay ``amount`` units to ``to_address``: select coins, send change to a fresh
        address, sign here, submit to the node. Returns the txid and the details. A fee
        above ``max_fee`` units is refused before anything is signed or saved."""
        try:
            payee = decode_address(to_address, self.params.address_version)
        except AddressError as exc:
            raise WalletError(f"invalid address {to_address!r}: {exc}") from None
        if amount <= 0:
            raise WalletError("the amount must be more than 0")
        snap = self.snapshot(min_conf)
        spendable = snap.spendable()
        candidates = [Candidate(u.txid, u.vout, u.value, u.address, u.confirmations) for u in spendable]
        try:
            sel = select_coins(candidates, amount, fee_rate)
        except InsufficientFunds as exc:
            raise NotEnoughFunds(self._shortfall_message(exc, snap), exc.shortfall) from None
        if sel.fee > max_fee:
            raise WalletError(
                f"the fee would be {format_amount(sel.fee)} ({fee_rate} per byte for {len(sel.coins)} input(s)), "
                f"more than the limit of {format_amount(max_fee)}; nothing was sent (raise --max-fee if you mean it)")

        keys = self.keyfile.keys_by_address()
        outputs = [TxOut(amount, payee)]
        change_address = None
        if sel.change:
            # Saved to the key file before the transaction exists (persist before you speak).
            change_address = self.keyfile.next_address("change")
            outputs.append(TxOut(sel.change, decode_address(change_address, self.params.address_version)))
        inputs = [TxIn(OutPoint(bytes.fromhex(c.txid)[::-1], c.vout)) for c in sel.coins]
        tx = sign_inputs(Transaction(TX_VERSION, tuple(inputs), tuple(outputs), 0),
                         [keys[c.address] for c in sel.coins])
        try:
            txid = self.client.submit_tx(tx.serialize().hex())
        except NodeRequestError as exc:  # an unreachable node is reported as such, not as a refusal
            raise WalletError(f"the node refused the transaction: {exc.message}") from None
        return SendResult(txid, tx, sel, to_address, change_address, fee_rate)

    def _shortfall_message(self, exc: InsufficientFunds, snap: Snapshot) -> str:
        parts = [
            f"insufficient funds: sending {format_amount(exc.amount)} with a fee of about "
            f"{format_amount(exc.fee)} needs {format_amount(exc.amount + exc.fee)}, but only "
            f"{format_amount(exc.available)} is spendable (short by {format_amount(exc.shortfall)})"
        ]
        immature = [u for u in snap.utxos if not u.mature and u.height is not None]
        if immature:
            wait = min(u.blocks_to_maturity(snap.maturity) for u in immature)
            parts.append(f"{format_amount(sum(u.value for u in immature))} more is newly mined and matures "
                         f"over the next blocks (the first in {wait} block{'s' if wait != 1 else ''})")
        reserved = [u for u in snap.utxos if u.spent_in_mempool]
        if reserved:
            parts.append(f"{format_amount(sum(u.value for u in reserved))} is already being spent by "
                         "transactions waiting in the mempool")
        young = [u for u in snap.utxos if u.mature and not u.spent_in_mempool and u.confirmations < snap.min_conf]
        if young:
            parts.append(f"{format_amount(sum(u.value for u in young))} has fewer than {snap.min_conf} "
                         "confirmation(s) (see --min-conf)")
        return "; ".join(parts)


def _level(h: dict) -> float:
    """How new a history entry is: pending above every height."""
    return float("inf") if h["height"] is None else h["height"]


def _newest_first(h: dict) -> tuple:
    """Pending first, then newest block first; within a block, by txid (a stable order)."""
    return (-_level(h), h["txid"])


def history_json(entries: list[dict]) -> list[dict[str, Any]]:
    return [{"txid": h["txid"], "height": h["height"], "confirmations": h["confirmations"], "delta": h["delta"],
             "amount": format_amount(h["delta"], sign=True)} for h in entries]
