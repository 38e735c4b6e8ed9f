"""The block tree around the tip, as the fork view draws it.

A pure function of the node's block tree (``NodeView.tree``, no IO): every
block from ``depth`` blocks below the active tip up to ``depth`` blocks above it, on any
branch, with its parent, so the page can lay the branches out itself.

Each block gets one ``status``:

  active        on this node's active chain
  stale         a valid block (its data is here) on a side branch: Bitcoin calls these
                stale blocks (popularly "orphaned" -- not to be confused with the orphan
                pool, blocks whose *parent* is unknown, which have no place in the tree
                and are only counted)
  headers-only  a side-branch header whose transactions we never downloaded (a branch
                with less work than ours is not worth fetching)
  invalid       failed validation, or descends from a block that did
"""

from __future__ import annotations

from typing import Mapping

from minichain.core.chain import BlockTree, IndexEntry

MAX_DEPTH = 500
MAX_BLOCKS = 2000   # a bound on the answer, whatever the tree holds


def hx(h: bytes) -> str:
    return h[::-1].hex()


def block_status(tree: BlockTree, entry: IndexEntry) -> str:
    if tree.in_active_chain(entry):
        return "active"
    if entry.status.failed:
        return "invalid"
    if not entry.have_data:
        return "headers-only"
    return "stale"


def tree_window(tree: BlockTree, depth: int, arrivals: Mapping[bytes, float] | None = None) -> dict:
    """Blocks with heights in [tip - depth, tip + depth], lowest first.

    Walks every entry once (O(blocks known)); fine for an explorer of a local network,
    and bounded in what it returns by ``MAX_BLOCKS``.
    """
    depth = max(0, min(depth, MAX_DEPTH))
    tip = tree.tip
    low = max(0, tip.height - depth)
    high = tip.height + depth
    chosen = [e for e in tree.entries.values() if low <= e.height <= high]
    chosen.sort(key=lambda e: (e.height, e.sequence if e.sequence >= 0 else 1 << 62, e.hash))
    truncated = len(chosen) > MAX_BLOCKS
    if truncated:
        # Keep the active chain and the blocks nearest the tip.
        active = [e for e in chosen if tree.in_active_chain(e)]
        others = sorted((e for e in chosen if not tree.in_active_chain(e)),
                        key=lambda e: abs(e.height - tip.height))[: max(0, MAX_BLOCKS - len(active))]
        keep = set(map(id, active + others))
        chosen = [e for e in chosen if id(e) in keep]
    blocks = []
    for e in chosen:
        item = {
            "hash": hx(e.hash),
            "parent": hx(e.parent.hash) if e.parent is not None else None,
            "height": e.height,
            "time": e.header.time,
            "status": block_status(tree, e),
            "chainwork": hex(e.chainwork),
        }
        if arrivals is not None and e.hash in arrivals:
            item["first_seen"] = arrivals[e.hash]
        blocks.append(item)
    return {
        "tip": hx(tip.hash),
        "height": tip.height,
        "chainwork": hex(tip.chainwork),
        "low": low,
        "high": high,
        "depth": depth,
        "truncated": truncated,
        "blocks": blocks,
    }
