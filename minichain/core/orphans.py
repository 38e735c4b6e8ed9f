"""The orphan pool: blocks that arrived before their parent, bounded.

Pure data structure, no IO: the node's chain state and the simulator's chain both keep
their orphans here, so both worlds hold the same number of them and forget the same
ones first. (Bitcoin kept such a pool, ``mapOrphanBlocks`` with ``MAX_ORPHAN_BLOCKS =
750``, before headers-first sync made it unnecessary; a node here still asks the
sender for the missing branch when a block's parent is unknown.)

A block only needs ``hash`` and ``header.prev_hash``: real ``Block`` objects and the
simulator's blocks both fit.
"""

from __future__ import annotations

from typing import Any, Iterator

# Bitcoin had MAX_ORPHAN_BLOCKS = 750 before headers-first sync; our blocks are small and
# a node asks its peers for missing parents, so a smaller pool does.
DEFAULT_MAX_ORPHANS = 100


class OrphanPool:
    """At most ``limit`` blocks whose parent is unknown; the oldest leaves first."""

    __slots__ = ("limit", "_blocks", "_by_prev")

    def __init__(self, limit: int = DEFAULT_MAX_ORPHANS) -> None:
        if limit < 1:
            raise ValueError("an orphan pool holds at least one block")
        self.limit = limit
        self._blocks: dict[bytes, Any] = {}             # hash -> block, insertion order = arrival order
        self._by_prev: dict[bytes, list[bytes]] = {}    # missing parent -> waiting children

    def __len__(self) -> int:
        return len(self._blocks)

    def __contains__(self, block_hash: object) -> bool:
        return block_hash in self._blocks

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._blocks.values()))

    def waiting_for(self, parent_hash: bytes) -> bool:
        """Whether some pooled block waits for ``parent_hash``."""
        return parent_hash in self._by_prev

    def add(self, block: Any) -> bool:
        """Pool ``block``; False if it is already here. Evicts the oldest beyond the limit."""
        h = block.hash
        if h in self._blocks:
            return False
        while len(self._blocks) >= self.limit:
            self._drop(next(iter(self._blocks)))
        self._blocks[h] = block
        self._by_prev.setdefault(block.header.prev_hash, []).append(h)
        return True

    def pop_children(self, parent_hash: bytes) -> list[Any]:
        """Remove and return the blocks waiting for ``parent_hash``, in arrival order."""
        hashes = self._by_prev.pop(parent_hash, None)
        if not hashes:
            return []
        blocks = self._blocks
        return [blocks.pop(h) for h in hashes]

    def _drop(self, block_hash: bytes) -> None:
        block = self._blocks.pop(block_hash)
        prev = block.header.prev_hash
        siblings = self._by_prev.get(prev)
        if siblings is not None:
            siblings.remove(block_hash)
            if not siblings:
                del self._by_prev[prev]
