"""In-memory indexes over the active chain: where a transaction is, and which
transactions touch an address (Bitcoin Core's -txindex and an address index, kept in
memory and rebuilt from the stored blocks at startup).

Simplification: rebuilding reads every block of the active chain, which is instant for
a local testnet and would not be for Bitcoin's 900,000 blocks; a persistent index
written in the same batch as each block connect is the grown-up version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from minichain.core.block import Block
from minichain.core.hashing import hash160
from minichain.core.tx import Transaction

if TYPE_CHECKING:
    from minichain.store.chainstate import Activation, ChainState


class ChainIndex:
    def __init__(self, chain: "ChainState") -> None:
        self.chain = chain
        self.tx_block: dict[bytes, bytes] = {}                  # txid -> block hash
        self.by_address: dict[bytes, dict[bytes, None]] = {}     # pubkey hash -> txids, oldest first
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
        for block in act.connected:
            self._add(block)

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
