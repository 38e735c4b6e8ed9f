"""In-memory indexes over the active chain: where a transaction is, which transactions
touch an address, and which unspent outputs an address owns (Bitcoin Core's -txindex
and an address index, kept in memory and rebuilt from the store at startup).

Simplification: rebuilding reads every block of the active chain, which is instant for
a local testnet and would not be for Bitcoin's 900,000 blocks; a persistent index
written in the same batch as each block connect is the grown-up version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from minichain.core.block import Block
from minichain.core.hashing import hash160
from minichain.core.tx import OutPoint, Transaction

if TYPE_CHECKING:
    from minichain.chainstate import Activation, ChainState


class ChainIndex:
    def __init__(self, chain: "ChainState") -> None:
        self.chain = chain
        self.tx_block: dict[bytes, bytes] = {}                  # txid -> block hash
        self.by_address: dict[bytes, dict[bytes, None]] = {}     # pubkey hash -> txids, oldest first
        self.unspent: dict[bytes, set[OutPoint]] = {}            # pubkey hash -> its coins in the UTXO set
        for outpoint, coin in chain.store.iter_coins():
            self.unspent.setdefault(coin.pubkey_hash, set()).add(outpoint)
        for entry in chain.tree.active:
            block = chain.get_block(entry.hash)
            if block is not None:
                self._add(block)

    @staticmethod
    def addresses_of(tx: Transaction) -> set[bytes]:
        """Public-key hashes a transaction pays or spends from."""
        out = {o.pubkey_hash for o in tx.outputs}
        if not tx.is_coinbase():
            out |= {hash160(i.pubkey) for i in tx.inputs if i.pubkey}
        return out

    def _add(self, block: Block) -> None:
        for tx in block.transactions:
            self.tx_block[tx.txid] = block.hash
            for pkh in self.addresses_of(tx):
                self.by_address.setdefault(pkh, {})[tx.txid] = None

    def _spend(self, block: Block) -> None:
        """Coins a connected block spends and creates. A valid input's public key hashes
        to the spent output's address, so the input tells whose coin it was."""
        for tx in block.transactions:
            if not tx.is_coinbase():
                for txin in tx.inputs:
                    self._discard(hash160(txin.pubkey), txin.prevout)
            for i, out in enumerate(tx.outputs):
                self.unspent.setdefault(out.pubkey_hash, set()).add(OutPoint(tx.txid, i))

    def _unspend(self, block: Block) -> None:
        """The exact reverse of :meth:`_spend`, last transaction first."""
        for tx in reversed(block.transactions):
            for i, out in enumerate(tx.outputs):
                self._discard(out.pubkey_hash, OutPoint(tx.txid, i))
            if not tx.is_coinbase():
                for txin in tx.inputs:
                    self.unspent.setdefault(hash160(txin.pubkey), set()).add(txin.prevout)

    def _discard(self, pkh: bytes, outpoint: OutPoint) -> None:
        coins = self.unspent.get(pkh)
        if coins is not None:
            coins.discard(outpoint)
            if not coins:
                del self.unspent[pkh]

    def _remove(self, block: Block) -> None:
        for tx in block.transactions:
            if self.tx_block.get(tx.txid) == block.hash:
                del self.tx_block[tx.txid]
            for pkh in self.addresses_of(tx):
                txids = self.by_address.get(pkh)
                if txids is not None:
                    txids.pop(tx.txid, None)
                    if not txids:
                        del self.by_address[pkh]

    def apply(self, act: "Activation") -> None:
        for block in act.disconnected:
            self._remove(block)
            self._unspend(block)
        for block in act.connected:
            self._add(block)
            self._spend(block)

    def coins_of(self, pkh: bytes) -> list[OutPoint]:
        """Outpoints of the UTXO set paying ``pkh``, in a stable order."""
        return sorted(self.unspent.get(pkh, ()), key=lambda o: (o.txid, o.index))

    def has_tx(self, txid: bytes) -> bool:
        return txid in self.tx_block

    def find_tx(self, txid: bytes) -> tuple[Transaction, Block] | None:
        block_hash = self.tx_block.get(txid)
        if block_hash is None:
            return None
        block = self.chain.get_block(block_hash)
        if block is None:
            return None
        for tx in block.transactions:
            if tx.txid == txid:
                return tx, block
        return None

    def history(self, pkh: bytes) -> list[bytes]:
        return list(self.by_address.get(pkh, {}))
