"""Persistence only: one interface (interface.py), two stores (memory.py, leveldb.py).

A store writes the batches it is given atomically and reads back what was written; it
decides nothing. What to write, and when, is ``minichain.chainstate``'s business."""

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
