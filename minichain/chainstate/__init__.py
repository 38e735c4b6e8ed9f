"""Validation orchestration over a store: the best valid chain and its UTXO set
(state.py, Bitcoin Core's validation.cpp ChainstateManager) and the pool of valid
unconfirmed transactions (mempool.py, Core's txmempool + AcceptToMemoryPool).

Consensus rules live in ``core/`` (pure functions); persistence in ``store/`` (it
writes what it is told). This package decides what to write and in what order: each
block connect or disconnect is one atomic batch, and best-chain activation is the
loop in ``core.chain.activate_best_chain`` with this package's connect/disconnect.
"""

from minichain.chainstate.mempool import Entry as MempoolEntry, Mempool, MempoolError
from minichain.chainstate.state import (
    AcceptResult,
    Activation,
    BlockEvent,
    BlockStatus,
    ChainState,
    VerifyReport,
)

__all__ = [
    "AcceptResult", "Activation", "BlockEvent", "BlockStatus", "ChainState", "VerifyReport",
    "Mempool", "MempoolEntry", "MempoolError",
]
