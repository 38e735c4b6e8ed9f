"""The block tree: every header we know, its work, its status, and the best chain.

Pure data structure, no IO and no clock: the node's chain state and the simulator's
Nakamoto nodes share this code, so they choose their tips the same way.

Fork choice (Bitcoin Core's ``setBlockIndexCandidates`` / ``FindMostWorkChain``): the
best tip is the block with the most cumulative work among blocks whose data we have
for them and all their ancestors and that are not known to be invalid; between equal
work, the block whose data arrived first wins, so a node never switches to a branch
that is merely as heavy as its own.

Glossary:
  chainwork   sum of ``block_work(bits)`` from genesis to the block, inclusive.
  complete    the block and all its ancestors have their data (transactions) here.
  active      the chain the node has connected: its UTXO set is the active tip's.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from minichain.core.block import BlockHeader
from minichain.core.pow import block_work, retarget
from minichain.params import Params


class Status(enum.IntEnum):
    """Validation progress of one block (Bitcoin: BlockStatus in chain.h)."""

    HEADER = 1         # header accepted (proof of work, context); transactions not validated
    VALID = 2          # connected to the active chain at least once: fully valid
    INVALID = 3        # failed validation (Bitcoin: BLOCK_FAILED_VALID)
    INVALID_CHILD = 4  # descends from an invalid block (Bitcoin: BLOCK_FAILED_CHILD)

    @property
    def failed(self) -> bool:
        return self >= Status.INVALID


# ``status in _FAILED`` is ``status.failed`` without a property call, and the members as
# module constants skip the enum class's attribute lookup: the tree's hot paths run once
# per block per node, a million times in a large simulation.
_FAILED = frozenset(s for s in Status if s.failed)
_HEADER, _VALID, _INVALID_CHILD = Status.HEADER, Status.VALID, Status.INVALID_CHILD

# block_work(bits) by bits: a chain has few distinct targets (one per retarget period), and
# decoding the compact form and dividing 2^256 again for every header is a good part of
# the cost of adding one. Bounded, in case something feeds it arbitrary bits.
_WORK: dict[int, int] = {}


def _block_work(bits: int) -> int:
    work = _WORK.get(bits)
    if work is None:
        if len(_WORK) >= 4096:
            _WORK.clear()
        work = _WORK[bits] = block_work(bits)
    return work


def _candidate_key(e: "IndexEntry") -> tuple[int, int]:
    return (e.chainwork, -e.sequence)


@dataclass(eq=False, slots=True)
class IndexEntry:
    """One node of the block tree (Bitcoin: CBlockIndex)."""

    header: BlockHeader
    hash: bytes
    height: int
    chainwork: int
    parent: "IndexEntry | None"
    status: Status = Status.HEADER
    have_data: bool = False
    # Order in which block data arrived (Bitcoin: nSequenceId); breaks chainwork ties.
    sequence: int = -1
    complete: bool = False
    # The shared empty tuple until a child arrives (then a list): most entries of a long
    # chain have one child or none, and a large simulation holds a million entries.
    children: "list[IndexEntry] | tuple[()]" = ()
    skip: "IndexEntry | None" = None

    @property
    def time(self) -> int:
        return self.header.time

    def get_ancestor(self, height: int) -> "IndexEntry":
        """The ancestor at ``height`` in O(log n) steps via skip pointers (Bitcoin's pskip)."""
        if not 0 <= height <= self.height:
            raise ValueError(f"no ancestor at height {height} of a block at height {self.height}")
        walk: IndexEntry = self
        while walk.height != height:
            skip = walk.skip
            if skip is not None and skip.height >= height:
                walk = skip
            else:
                assert walk.parent is not None
                walk = walk.parent
        return walk

    def __repr__(self) -> str:
        return f"<IndexEntry {self.height} {self.hash[::-1].hex()[:16]} {self.status.name}>"


def _skip_height(height: int) -> int:
    """Bitcoin's GetSkipHeight: a deterministic far-back pointer for each height."""
    # n & (n - 1) is Bitcoin's InvertLowestOne: n with its lowest set bit cleared.
    if height < 2:
        return 0
    if height & 1:
        n = height - 1
        n &= n - 1
        return (n & (n - 1)) + 1
    return height & (height - 1)


class UnknownParent(KeyError):
    """The header's parent is not in the tree (an orphan)."""


class BlockTree:
    """All known headers, their work and status, the candidates and the active chain."""

    # Slots (plus a ``__dict__`` for anything else): each field sits in the object itself,
    # one memory access instead of two; a large simulation holds a thousand of these.
    __slots__ = ("entries", "tip", "active", "_candidates", "_best_header", "_next_sequence", "genesis", "params",
                 "__dict__", "__weakref__")

    def __init__(self, genesis: BlockHeader, params: Params) -> None:
        self.params = params
        self.entries: dict[bytes, IndexEntry] = {}
        self._next_sequence = 0
        root = IndexEntry(genesis, genesis.hash, 0, block_work(genesis.bits), None)
        self.entries[root.hash] = root
        self.genesis = root
        self._best_header = root
        #: The active chain, genesis first; ``tip`` is its last entry, kept in a field of its
        #: own (read on every message a node gets). Both change only here, in connect_tip,
        #: disconnect_tip and load.
        self.active: list[IndexEntry] = []
        self.tip = root
        # Complete, not-failed blocks with no complete, not-failed child: the leaves
        # among which the most-work tip is chosen.
        self._candidates: set[IndexEntry] = set()
        self.set_have_data(root)
        self.connect_tip(root)

    # -- queries ---------------------------------------------------------------------

    def __contains__(self, block_hash: bytes) -> bool:
        return block_hash in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, block_hash: bytes) -> IndexEntry | None:
        return self.entries.get(block_hash)

    @property
    def height(self) -> int:
        return len(self.active) - 1

    @property
    def next_sequence(self) -> int:
        """The arrival number the next block whose data is set will get."""
        return self._next_sequence

    def in_active_chain(self, entry: IndexEntry) -> bool:
        return entry.height < len(self.active) and self.active[entry.height] is entry

    def best_candidate(self) -> IndexEntry:
        """The complete, not-invalid block with the most work; ties go to the first seen."""
        candidates = self._candidates
        if len(candidates) == 1:                # no fork in sight: the usual case
            for only in candidates:
                return only
        return max(candidates, key=_candidate_key)

    @property
    def best_header(self) -> IndexEntry:
        """The most-work header not known to be invalid, data or not (Bitcoin: pindexBestHeader)."""
        if self._best_header.status.failed:
            self._best_header = max(
                (e for e in self.entries.values() if not e.status.failed), key=lambda e: e.chainwork
            )
        return self._best_header

    def find_fork(self, a: IndexEntry, b: IndexEntry) -> IndexEntry:
        """The last common ancestor of ``a`` and ``b`` (Bitcoin: LastCommonAncestor)."""
        if a.height > b.height:
            a = a.get_ancestor(b.height)
        elif b.height > a.height:
            b = b.get_ancestor(a.height)
        while a is not b:
            assert a.parent is not None and b.parent is not None, "blocks from different trees"
            a, b = a.parent, b.parent
        return a

    def path(self, from_tip: IndexEntry, to_tip: IndexEntry) -> tuple[list[IndexEntry], list[IndexEntry]]:
        """Blocks to disconnect (from ``from_tip`` down, fork excluded) and to connect (up to ``to_tip``)."""
        fork = self.find_fork(from_tip, to_tip)
        disconnect: list[IndexEntry] = []
        walk: IndexEntry | None = from_tip
        while walk is not fork:
            assert walk is not None
            disconnect.append(walk)
            walk = walk.parent
        connect: list[IndexEntry] = []
        walk = to_tip
        while walk is not fork:
            assert walk is not None
            connect.append(walk)
            walk = walk.parent
        connect.reverse()
        return disconnect, connect

    def median_time_past(self, entry: IndexEntry) -> int:
        """Median of the times of ``entry`` and up to 10 ancestors (Bitcoin: GetMedianTimePast)."""
        times = []
        walk: IndexEntry | None = entry
        while walk is not None and len(times) < self.params.median_time_span:
            times.append(walk.header.time)
            walk = walk.parent
        times.sort()
        return times[len(times) // 2]

    def next_bits(self, parent: IndexEntry) -> int:
        """Required ``bits`` of a child of ``parent`` (Bitcoin: GetNextWorkRequired,
        without testnet's 20-minute minimum-difficulty exception)."""
        params = self.params
        height = parent.height + 1
        if params.no_retarget or height % params.retarget_interval != 0:
            return parent.header.bits
        # Bitcoin's window starts interval-1 blocks back (the famous off-by-one).
        first = parent.get_ancestor(height - params.retarget_interval)
        return retarget(parent.header.bits, first.header.time, parent.header.time, params)

    def locator(self, entry: IndexEntry | None = None) -> list[bytes]:
        """Block locator hashes: dense near the tip, then exponentially sparser, then genesis."""
        walk = entry or self.tip
        hashes: list[bytes] = []
        step = 1
        while True:
            hashes.append(walk.hash)
            if walk.height == 0:
                break
            height = max(walk.height - step, 0)
            walk = walk.get_ancestor(height)
            if len(hashes) > 10:
                step *= 2
        return hashes

    def chain_tips(self) -> list[dict]:
        """Like Bitcoin's ``getchaintips``: every leaf, with its branch length and status."""
        tips = []
        for e in self.entries.values():
            if e.children:
                continue
            fork = self.find_fork(e, self.tip)
            if self.in_active_chain(e):
                status = "active"
            elif e.status.failed:
                status = "invalid"
            elif not e.complete:
                status = "headers-only"
            elif e.status is Status.VALID:
                status = "valid-fork"
            else:
                status = "valid-headers"
            tips.append({"height": e.height, "hash": e.hash, "branchlen": e.height - fork.height, "status": status, "entry": e})
        tips.sort(key=lambda t: (t["status"] != "active", -t["height"]))
        return tips

    def descendants(self, entry: IndexEntry) -> Iterator[IndexEntry]:
        stack = list(entry.children)
        while stack:
            e = stack.pop()
            yield e
            stack.extend(e.children)

    # -- changes ---------------------------------------------------------------------

    def add_header(self, header: BlockHeader) -> IndexEntry:
        """Insert a header whose parent is known (checks are the caller's job).

        Returns the existing entry for a known header. A child of a failed block is
        inserted as INVALID_CHILD.
        """
        existing = self.entries.get(header.hash)
        if existing is not None:
            return existing
        parent = self.entries.get(header.prev_hash)
        if parent is None:
            raise UnknownParent(header.prev_hash)
        failed = parent.status in _FAILED
        entry = IndexEntry(
            header, header.hash, parent.height + 1, parent.chainwork + _block_work(header.bits), parent,
            _INVALID_CHILD if failed else _HEADER,
        )
        entry.skip = parent.get_ancestor(_skip_height(entry.height)) if entry.height >= 2 else parent
        if parent.children:
            parent.children.append(entry)
        else:
            parent.children = [entry]
        self.entries[entry.hash] = entry
        if not failed and entry.chainwork > self._best_header.chainwork:
            self._best_header = entry
        return entry

    def set_have_data(self, entry: IndexEntry) -> None:
        """Record that ``entry``'s transactions are stored; it may now be a candidate."""
        if entry.have_data:
            return
        entry.have_data = True
        entry.sequence = self._next_sequence
        self._next_sequence += 1
        if entry.parent is None or entry.parent.complete:
            self._mark_complete(entry)

    def _mark_complete(self, entry: IndexEntry) -> None:
        # Completeness flows down to every descendant whose data is already here.
        candidates = self._candidates
        stack = [entry]
        while stack:
            e = stack.pop()
            e.complete = True
            if e.status not in _FAILED:
                candidates.add(e)
                if e.parent is not None:
                    candidates.discard(e.parent)
            for c in e.children:
                if c.have_data:
                    stack.append(c)

    def mark_invalid(self, entry: IndexEntry) -> list[IndexEntry]:
        """Mark ``entry`` invalid and its descendants INVALID_CHILD; returns all marked."""
        if entry is self.genesis:
            raise ValueError("genesis cannot be invalid")
        entry.status = Status.INVALID
        marked = [entry]
        for d in self.descendants(entry):
            d.status = Status.INVALID_CHILD
            marked.append(d)
        for e in marked:
            self._candidates.discard(e)
        # The parent is a leaf of the valid tree again unless another child keeps it covered.
        parent = entry.parent
        assert parent is not None
        if parent.complete and not parent.status.failed:
            if not any(c.complete and not c.status.failed for c in parent.children):
                self._candidates.add(parent)
        return marked

    def connect_tip(self, entry: IndexEntry) -> None:
        """Make ``entry`` (a child of the active tip) the new active tip; it is now VALID."""
        if self.active and entry.parent is not self.active[-1]:
            raise ValueError("can only connect a child of the active tip")
        if entry.status in _FAILED:
            raise ValueError("cannot connect an invalid block")
        entry.status = _VALID
        self.active.append(entry)
        self.tip = entry
        # Bitcoin: PruneBlockIndexCandidates. A connected block is valid for good, so a
        # candidate with less work can never be chosen again; forgetting it keeps
        # best_candidate() proportional to the live forks, not to every fork ever seen.
        if len(self._candidates) > 8:
            self._candidates = {c for c in self._candidates if c.chainwork >= entry.chainwork}

    def disconnect_tip(self) -> IndexEntry:
        """Remove the active tip (its parent becomes the tip); returns the removed entry."""
        if len(self.active) <= 1:
            raise ValueError("cannot disconnect genesis")
        gone = self.active.pop()
        self.tip = self.active[-1]
        return gone

    # -- loading a saved tree ------------------------------------------------------------

    def load(self, saved: Iterable[tuple[BlockHeader, Status, bool, int]], tip_hash: bytes) -> None:
        """Rebuild from (header, status, have_data, sequence) rows and the saved active tip.

        Rows may come in any order; parents are inserted before children. The active
        chain is set to the saved tip without re-validating (the store vouches for it).
        """
        rows = list(saved)
        by_prev: dict[bytes, list] = {}
        for row in rows:
            by_prev.setdefault(row[0].prev_hash, []).append(row)
        stack = [self.genesis.hash]
        while stack:
            parent_hash = stack.pop()
            for header, status, have_data, sequence in by_prev.get(parent_hash, []):
                if header.hash == self.genesis.hash:
                    continue
                entry = self.add_header(header)
                entry.status = status
                stack.append(entry.hash)
        by_sequence = sorted(((seq, h.hash) for h, _, have, seq in rows if have), key=lambda t: t[0])
        for seq, h in by_sequence:
            entry = self.entries.get(h)
            if entry is not None and entry is not self.genesis:
                self.set_have_data(entry)
        for e in list(self._candidates):
            if e.status.failed:
                self._candidates.discard(e)
        tip = self.entries[tip_hash]
        chain = []
        walk: IndexEntry | None = tip
        while walk is not None:
            chain.append(walk)
            walk = walk.parent
        chain.reverse()
        self.active = chain
        self.tip = tip


# -- best-chain activation ---------------------------------------------------------------


class Activated:
    """What one :func:`activate_best_chain` call did to the active chain.

    ``fork_height`` is the lowest height the active tip stood at during the call (the
    last block both the old and the new chain share), or None if nothing changed.
    ``invalid`` lists (entry, reason) for every block found invalid on the way.
    """

    __slots__ = ("fork_height", "disconnected", "connected", "invalid")

    def __init__(self) -> None:
        self.fork_height: int | None = None
        self.disconnected = 0
        self.connected = 0
        self.invalid: list[tuple[IndexEntry, object]] = []

    @property
    def changed(self) -> bool:
        return self.fork_height is not None

    def __repr__(self) -> str:
        return (f"Activated(fork_height={self.fork_height}, disconnected={self.disconnected}, "
                f"connected={self.connected}, invalid={len(self.invalid)})")


def activate_best_chain(
    tree: BlockTree,
    connect: Callable[[IndexEntry], object],
    disconnect: Callable[[IndexEntry], None],
    mark_invalid: Callable[[IndexEntry], object] | None = None,
) -> Activated:
    """Move the active tip to the best candidate (Bitcoin Core: ActivateBestChain).

    While the most-work complete, not-invalid block is not the active tip: disconnect
    the active blocks back to the fork point (``disconnect(tip)`` undoes the tip's
    effects, then the tree drops it), and connect the new branch upwards
    (``connect(entry)`` applies a block on top of the tip and returns None, or returns
    the reason it is invalid; the tree then moves its tip). A block found invalid is
    marked so with its descendants (``mark_invalid``, default ``tree.mark_invalid``;
    the chain state's also persists the marks), and the loop chooses again among what
    is left -- usually the chain it came from.

    The node's chain state and the simulator's chain both run this loop; each passes
    callbacks that do its own bookkeeping (a LevelDB batch with undo data, or a set of
    spent coins).
    """
    done = Activated()
    invalidate = tree.mark_invalid if mark_invalid is None else mark_invalid
    while True:
        best = tree.best_candidate()
        tip = tree.tip
        if best is tip:
            return done
        if best.parent is tip:               # one block on top of the tip: the usual case
            up: "list[IndexEntry] | tuple[IndexEntry]" = (best,)
        else:
            down, up = tree.path(tip, best)
            for entry in down:
                disconnect(entry)
                tree.disconnect_tip()
            done.disconnected += len(down)
            tip = tree.tip
        height = tip.height                  # (the active chain runs from genesis at height 0)
        if done.fork_height is None or height < done.fork_height:
            done.fork_height = height
        for entry in up:
            reason = connect(entry)
            if reason is not None:
                invalidate(entry)
                done.invalid.append((entry, reason))
                break                        # choose again among what is left
            tree.connect_tip(entry)
            done.connected += 1
