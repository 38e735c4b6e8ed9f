"""Persistence: one interface (interface.py), two stores (memory.py, leveldb.py), and the
chain state that keeps the best valid chain and its UTXO set in a store (chainstate.py)."""

from minichain.store.interface import (
    ChainStore,
    IndexRow,
    StoreBatch,
    StoreError,
    StoreInUseError,
    StoreMismatchError,
)
from minichain.store.memory import MemoryStore

__all__ = ["ChainStore", "IndexRow", "StoreBatch", "StoreError", "StoreInUseError", "StoreMismatchError", "MemoryStore"]
