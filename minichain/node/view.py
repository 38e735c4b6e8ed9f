"""What the API and the explorer may see of a node, and the few things they may ask it to do.

:class:`NodeView` is read-only: the node's status, its chain (the block tree, blocks,
coins), the transaction and address indexes, the mempool, its peers, known addresses,
bans and partition denials, when blocks arrived, and a subscription to its live events.
:class:`NodeControl` is the short list of actions an operator (or a wallet submitting a
transaction) may take. The API (``node/api/``) and the explorer hold these two objects
and never the node itself, so how the node keeps its peers, bans or chain inside can
change without touching them: only this module follows.

Everything here runs on the node's event loop thread, like the node. Objects handed out
(an :class:`~minichain.core.chain.IndexEntry`, a mempool entry, a block) are the node's
own, lent for reading: a caller reads them within its handler and never modifies them.
The public methods of both classes are the contract; their bodies read the ``Node`` and
its peer protocol (``node/protocol.py``), which holds the peers' state, addresses and bans.
"""

from __future__ import annotations

import time
from types import MappingProxyType
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Protocol, Sequence

from minichain.chainstate.index import AddressCoin, AddressTotals, BlockSummary, HistoryEntry, TxLocation
from minichain.core.block import Block
from minichain.core.chain import IndexEntry
from minichain.core.tx import OutPoint, Transaction
from minichain.core.validation import Coin
from minichain.params import Params

if TYPE_CHECKING:
    from minichain.chainstate.mempool import Entry as MempoolEntry
    from minichain.node.node import Node

Listener = Callable[[str, dict], None]


class BlockTreeReader(Protocol):
    """The block tree as a reader sees it (``core.chain.BlockTree`` satisfies it)."""

    entries: Mapping[bytes, IndexEntry]
    active: Sequence[IndexEntry]

    @property
    def tip(self) -> IndexEntry: ...

    @property
    def height(self) -> int: ...

    def get(self, block_hash: bytes) -> IndexEntry | None: ...

    def in_active_chain(self, entry: IndexEntry) -> bool: ...

    def chain_tips(self) -> list[dict]: ...


class NodeView:
    """Read-only access to a running node (see the module's docstring)."""

    __slots__ = ("_node",)

    def __init__(self, node: "Node") -> None:
        self._node = node

    # -- the node ------------------------------------------------------------------------------

    @property
    def params(self) -> Params:
        return self._node.params

    @property
    def datadir(self) -> str:
        return self._node.config.datadir

    @property
    def default_ban_seconds(self) -> float:
        return self._node.config.ban_seconds

    def status(self) -> dict:
        """Height, tip, peers, mempool, mining, traffic, ports, uptime, and ``loop_lag``:
        how late the event loop has been running (see ``node/lag.py``)."""
        out = self._node.status()
        out["loop_lag"] = self._node.lag.report()
        return out

    # -- the chain -----------------------------------------------------------------------------

    @property
    def tree(self) -> BlockTreeReader:
        """Every header known, the active chain, and the tips; for reading only."""
        return self._node.chain.tree

    @property
    def height(self) -> int:
        return self._node.chain.height

    def entry(self, block_hash: bytes) -> IndexEntry | None:
        return self._node.chain.tree.get(block_hash)

    def active_entry(self, height: int) -> IndexEntry | None:
        """The block at ``height`` on the active chain, if the chain is that high."""
        active = self._node.chain.tree.active
        return active[height] if 0 <= height < len(active) else None

    def is_active(self, entry: IndexEntry) -> bool:
        return self._node.chain.tree.in_active_chain(entry)

    def block(self, block_hash: bytes) -> Block | None:
        """The decoded block, if its data is stored (a block decode: for one block's page)."""
        return self._node.chain.get_block(block_hash)

    def coin(self, outpoint: OutPoint) -> Coin | None:
        """An unspent output of the active chain."""
        return self._node.chain.get_coin(outpoint)

    def orphan_count(self) -> int:
        return self._node.chain.orphan_count()

    # -- the indexes (chainstate/index.py): answers without decoding blocks ---------------------

    def block_summary(self, block_hash: bytes) -> BlockSummary | None:
        """Size, transaction count and coinbase outputs of a block on the active chain."""
        return self._node.chain.index.block_summary(block_hash)

    def tx_location(self, txid: bytes) -> TxLocation | None:
        return self._node.chain.index.location(txid)

    def transaction(self, txid: bytes) -> tuple[Transaction, TxLocation] | None:
        """A transaction of the active chain and where it is."""
        return self._node.chain.index.transaction(txid)

    def address_totals(self, pkh: bytes) -> AddressTotals:
        return self._node.chain.index.totals(pkh)

    def address_history(self, pkh: bytes, before: bytes | None = None) -> Iterator[HistoryEntry]:
        """Confirmed history, newest first, below the cursor ``before``. Lazy."""
        return self._node.chain.index.history(pkh, before=before)

    def address_coins(self, pkh: bytes, before: bytes | None = None, min_height: int = 0) -> Iterator[AddressCoin]:
        """Unspent outputs, newest first, below the cursor ``before``, down to ``min_height``. Lazy."""
        return self._node.chain.index.coins(pkh, before=before, min_height=min_height)

    # -- the mempool ---------------------------------------------------------------------------

    def mempool_entry(self, txid: bytes) -> "MempoolEntry | None":
        return self._node.mempool.get(txid)

    def mempool_size(self) -> int:
        return len(self._node.mempool)

    def mempool_bytes(self) -> int:
        return self._node.mempool.bytes

    def mempool_snapshot(self) -> list["MempoolEntry"]:
        """Every entry, in no particular order (a list the caller may sort as it likes)."""
        return self._node.mempool.snapshot()

    def mempool_touching(self, pkh: bytes) -> list["MempoolEntry"]:
        """Entries that pay the address or spend its coins, newest first."""
        return self._node.mempool.touching(pkh)

    def mempool_spender(self, outpoint: OutPoint) -> bytes | None:
        """The txid of the pool transaction spending ``outpoint``, if any."""
        return self._node.mempool.spender(outpoint)

    # -- the network ---------------------------------------------------------------------------

    def peers(self) -> list[dict]:
        """One description per link (address, direction, user agent, height, score, traffic)."""
        now = time.time()
        return [p.describe(now) for p in self._node.peers]

    def known_addresses(self) -> list[tuple[str, int]]:
        """Listen addresses learned from peers."""
        return list(self._node.protocol.addresses)

    def bans(self) -> list[tuple[str, float]]:
        """(address, seconds left) of every ban in force; an address is HOST:PORT on
        loopback (one machine, many nodes) and HOST elsewhere."""
        now = time.time()
        return [(k if isinstance(k, str) else f"{k[0]}:{k[1]}", until - now)
                for k, until in self._node.protocol.bans.items() if until > now]

    def denied(self) -> list[tuple[str, int]]:
        """Addresses refused by a testnet partition, sorted."""
        return sorted(self._node.protocol.denied)

    def arrivals(self) -> Mapping[bytes, float]:
        """When each recent block was first stored here (wall clock), oldest first."""
        return MappingProxyType(self._node.arrivals)

    # -- live events ---------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(kind, data)`` on the event loop for every event: ``tip``,
        ``block``, ``tx``, ``peer``. It must only queue (it runs inside the node's work)."""
        self._node.listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self._node.listeners:
            self._node.listeners.remove(listener)


class NodeControl:
    """The actions the API may take on a node. Each either does what it says or raises
    ``ValueError`` (or ``MempoolError`` for a transaction) with a reason."""

    __slots__ = ("_node",)

    def __init__(self, node: "Node") -> None:
        self._node = node

    def submit_transaction(self, tx: Transaction) -> None:
        """Admit ``tx`` to the mempool and relay it; ``MempoolError`` says why not."""
        self._node.submit_transaction(tx)

    def add_peer(self, addr: tuple[str, int]) -> None:
        self._node.add_peer(addr)

    def remove_peer(self, addr: tuple[str, int]) -> None:
        self._node.remove_peer(addr)

    def ban(self, host: str, port: int | None, seconds: float) -> None:
        self._node.ban(host, port, seconds)

    def partition(self, addrs: set[tuple[str, int]]) -> None:
        """Refuse links to and from ``addrs`` and drop the current ones (testnet partitions)."""
        self._node.set_denied(addrs)

    def start_mining(self, address: str, threads: int, duty: float) -> None:
        self._node.start_mining(address, threads, duty)

    def stop_mining(self) -> None:
        self._node.stop_mining()

    async def generate(self, count: int, pkh: bytes) -> list[bytes]:
        """Mine ``count`` blocks paying ``pkh`` now; their hashes."""
        return await self._node.generate(count, pkh)

    def shutdown(self) -> None:
        self._node.request_stop()
