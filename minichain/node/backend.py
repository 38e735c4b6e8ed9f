"""The chain as the peer protocol sees it, for a real node: the chain state and the mempool.

:class:`NodeChain` implements ``protocol.ChainAccess`` with full validation: headers and
blocks go to :class:`~minichain.chainstate.ChainState` (which writes each block and each
connect/disconnect in one store batch before it returns, so what the protocol announces
afterwards is already on disk), transactions to the
:class:`~minichain.chainstate.Mempool`. After a block changed the active chain the pool
follows it (confirmed transactions leave, disconnected ones come back if still valid).

The real node uses it with its LevelDB store; a simulated node can use it too, on a
memory store, when a test wants the node's full validation in the simulator (the
differential test does).
"""

from __future__ import annotations

from typing import Any, Callable

from minichain.chainstate import AcceptResult, BlockStatus, ChainState, Mempool, MempoolError
from minichain.core.block import Block, BlockHeader
from minichain.core.chain import BlockTree
from minichain.core.tx import Transaction
from minichain.node.messages import StoredBlock


class NodeChain:
    """Full validation behind the protocol's chain interface."""

    def __init__(self, state: ChainState, mempool: Mempool, *,
                 on_block: Callable[[Block, AcceptResult], None] | None = None,
                 on_tx: Callable[[Transaction, Any], None] | None = None,
                 on_tx_rejected: Callable[[Transaction, str], None] | None = None) -> None:
        self.state = state
        self.mempool = mempool
        self.on_block = on_block        # after every accepted block: the host's bookkeeping
        self.on_tx = on_tx              # after every admitted transaction
        self.on_tx_rejected = on_tx_rejected  # after every refused one, with the reason

    @property
    def tree(self) -> BlockTree:
        return self.state.tree

    # -- blocks

    def accept_header(self, header: BlockHeader, now: int) -> AcceptResult:
        return self.state.accept_header(header, now)

    def accept_block(self, block: Block, now: int) -> AcceptResult:
        result = self.state.accept_block(block, now)
        self._follow(result)
        if self.on_block is not None:
            self.on_block(block, result)
        return result

    def activate(self) -> AcceptResult | None:
        """Connect what is stored but not connected (after a failed write, say)."""
        act = self.state.activate_best_chain()
        if not (act.connected or act.disconnected):
            return None
        tip = self.state.tip.hash
        result = AcceptResult(tip, BlockStatus.CONNECTED, activation=act, tip=tip)
        self._follow(result)
        if self.on_block is not None:
            self.on_block((act.connected or act.disconnected)[-1], result)
        return result

    def _follow(self, result: AcceptResult) -> None:
        """The mempool follows the active chain."""
        act = result.activation
        if act.connected or act.disconnected:
            self.mempool.remove_for_block(result.connected_txs)
            if act.disconnected:
                height = self.state.height
                self.mempool.readd(result.txs_to_readd, self.state, height)
                self.mempool.revalidate(self.state, height)

    def get_block(self, block_hash: bytes) -> Block | None:
        return self.state.get_block(block_hash)

    def block_message(self, block_hash: bytes) -> StoredBlock | None:
        """The block as stored, ready to send (no decoding, no re-encoding)."""
        data = self.state.get_block_bytes(block_hash)
        return None if data is None else StoredBlock(block_hash, data)

    # -- transactions

    def has_tx(self, txid: bytes) -> bool:
        return txid in self.mempool or self.state.index.has_tx(txid)

    def get_tx(self, txid: bytes) -> Transaction | None:
        entry = self.mempool.get(txid)
        return None if entry is None else entry.tx

    def admit_tx(self, tx: Transaction) -> Any:
        """Admit ``tx`` to the mempool or raise MempoolError with the reason; returns the entry."""
        try:
            entry = self.mempool.add(tx, self.state, self.state.height)
        except MempoolError as exc:
            # A confirmed transaction's inputs are spent (by itself): only then is the
            # transaction index asked, for the clearer reason (no index read per admission).
            if exc.reason == "bad-txns-inputs-missingorspent" and self.state.index.has_tx(tx.txid):
                exc = MempoolError("txn-already-known", f"{tx.txid_hex()} is already in the chain")
            if self.on_tx_rejected is not None:
                self.on_tx_rejected(tx, exc.reason)
            raise exc from None
        if self.on_tx is not None:
            self.on_tx(tx, entry)
        return entry

    def accept_tx(self, tx: Transaction, now: int) -> str | None:
        try:
            self.admit_tx(tx)
        except MempoolError as exc:
            return exc.reason
        return None
