"""The peer protocol as a sans-IO state machine: messages and ticks in, effects out.

In the style of etcd-raft's ``Step``/``Ready`` and h11's ``Connection``: this module has
no sockets, no tasks, no clock and no logging. Its host hands it what happened -- a
peer connected, a decoded message arrived from a peer at time ``now``, a peer went
away, a second passed (``tick``), we mined a block -- and gets back a list of effects to
carry out: :class:`~minichain.core.actions.Send` a message to a peer,
:class:`Disconnect` one, :class:`Dial` an address, and reports (:class:`Misbehaved`,
:class:`PeerReady`) to log. Two hosts run it:

* the real node (``node/node.py``), over aiohttp WebSockets and the wall clock;
* the simulator's Nakamoto node (``sim/engines/nakamoto.py``), over the simulated
  network and virtual time -- so what the laboratory measures is this code.

What it owns, in Bitcoin's terms (net_processing.cpp):

  handshake     version -> version + verack; another network (genesis), ourselves, a
                peer already connected, a banned or partitioned address are refused
  sync          headers first: getheaders(locator) -> headers (<= 2000) -> getdata for
                the blocks of a peer's branch that beats our tip, at most
                ``max_in_flight`` per peer, one peer per block; a block not delivered
                within ``block_timeout`` is asked of another peer (stall handling)
  locators      answered from the active chain only (Bitcoin: FindForkInGlobalIndex)
  relay         a new tip is announced with its headers (BIP 130) to every peer not
                known to have it, or with an inv when the peer may not know the parent;
                transactions by inv -> getdata -> tx
  orphans       a block whose parent is unknown waits in the chain's bounded orphan pool
                and the sender is asked for the headers in between
  addresses     getaddr -> addr; learned listen addresses feed the outbound dialler
  misbehaviour  a score per peer, raised by a :class:`Misbehavior` (each carries its
                score, like Bitcoin Core's validation results), decaying one point per
                second; at ``BAN_SCORE`` the peer is sent a reject, disconnected and its
                address banned

The chain is reached through a narrow interface (:class:`ChainAccess`): accept a header,
accept a block (which the chain stores before returning: persist, then speak), fetch a
block to serve, and the same for transactions. The node gives it the chain state and the
mempool (``node/backend.py``); the simulator a chain of simulated blocks with cheap
validation.

Simplifications, said plainly: no ``sendheaders`` negotiation (every minichain node
accepts headers announcements; BIP 130 made it opt-in for old peers), no compact blocks,
no transaction relay delays or orphan transactions, and one global ban list keyed by
host (by host and port on loopback, where every test peer is 127.0.0.1).
"""

from __future__ import annotations

import enum
from typing import Any, Hashable, Iterable, Protocol

from minichain.chainstate import BlockStatus
from minichain.core.actions import Send, _Action
from minichain.core.chain import BlockTree, IndexEntry, Status
from minichain.node import messages as m

__all__ = [
    "BAN_SCORE", "ChainAccess", "Dial", "Disconnect", "Misbehaved", "Misbehavior", "PeerProtocol", "PeerReady",
    "PeerState", "ProtocolConfig", "Send",
]

PROTOCOL_VERSION = m.PROTOCOL_VERSION
MAX_IN_FLIGHT = 16              # Bitcoin: MAX_BLOCKS_IN_TRANSIT_PER_PEER
BLOCK_TIMEOUT = 20.0            # seconds before a requested block is asked of another peer
HANDSHAKE_TIMEOUT = 10.0
BAN_SCORE = 100                 # Bitcoin: DISCOURAGEMENT_THRESHOLD
DEFAULT_BAN_SECONDS = 24 * 60 * 60   # Bitcoin: DEFAULT_MISBEHAVING_BANTIME
KNOWN_INVENTORY = 20_000        # hashes remembered per peer (Bitcoin: m_tx_inventory_known_filter)
MAX_ADDRESSES = 5_000           # the address book
MAX_BLOCKS_TO_ANNOUNCE = 8      # Bitcoin: MAX_BLOCKS_TO_ANNOUNCE (more: an inv instead)
MAX_UNCONNECTING_HEADERS = 10   # Bitcoin: MAX_NUM_UNCONNECTING_HEADERS_MSGS
BLOCK_DOWNLOAD_WINDOW = 1024    # Bitcoin: BLOCK_DOWNLOAD_WINDOW, blocks past the last common one
SCORE_DECAY_PER_SECOND = 1.0    # a burst of small offences is punished, a trickle is not


class Misbehavior(enum.Enum):
    """Why a peer's score went up, with how much (Bitcoin Core: ``Misbehaving`` calls,
    and ``MaybePunishNodeForBlock`` mapping a validation result to a penalty)."""

    MALFORMED_MESSAGE = ("malformed-message", 100)
    OVERSIZE_MESSAGE = ("oversize-message", 100)
    TEXT_FRAME = ("text-frame", 100)
    BAD_STREAM = ("bad-stream", 100)
    BEFORE_HANDSHAKE = ("before-handshake", 100)
    DUPLICATE_VERSION = ("duplicate-version", 100)
    INVALID_HEADER = ("invalid-header", 100)
    INVALID_BLOCK = ("invalid-block", 100)
    KNOWN_INVALID_BLOCK = ("known-invalid-block", 100)
    UNCONNECTING_HEADERS = ("unconnecting-headers", 20)
    UNSOLICITED_BLOCK = ("unsolicited-block", 10)
    INVALID_TX = ("invalid-tx", 10)

    def __init__(self, code: str, score: int) -> None:
        self.code = code
        self.score = score


# Transaction refusals that say nothing bad about the sender: it may simply have seen
# other transactions first, or a block we have not (Bitcoin: TX_CONFLICT, TX_MISSING_INPUTS...).
BENIGN_TX_REJECTS = frozenset({
    "txn-already-in-mempool", "txn-already-known", "txn-mempool-conflict",
    "bad-txns-inputs-missingorspent", "mempool-full", "bad-txns-premature-spend-of-coinbase",
    "mempool-min-fee-not-met",
})


# -- effects --------------------------------------------------------------------------------


class Disconnect(_Action):
    """Close the link to ``peer`` (after what was sent to it so far, e.g. a reject)."""

    __slots__ = ("peer", "reason")

    def __init__(self, peer: Hashable, reason: str) -> None:
        self.peer = peer
        self.reason = reason


class Dial(_Action):
    """Keep an outbound link to the listen address ``addr`` (learned from a peer)."""

    __slots__ = ("addr",)

    def __init__(self, addr: tuple[str, int]) -> None:
        self.addr = addr


class Misbehaved(_Action):
    """A report: ``peer`` was scored ``reason.score`` (total ``score``); ``banned`` if that
    crossed the threshold (a reject and a Disconnect follow in the same effects)."""

    __slots__ = ("peer", "reason", "detail", "score", "banned")

    def __init__(self, peer: Hashable, reason: Misbehavior, detail: str, score: int, banned: bool) -> None:
        self.peer = peer
        self.reason = reason
        self.detail = detail
        self.score = score
        self.banned = banned


class PeerReady(_Action):
    """A report: the handshake with ``peer`` completed."""

    __slots__ = ("peer",)

    def __init__(self, peer: Hashable) -> None:
        self.peer = peer


# -- what the protocol needs of a chain ------------------------------------------------------


class ChainAccess(Protocol):
    """The chain as the protocol sees it. ``accept_*`` results have ``status`` (a
    :class:`~minichain.chainstate.BlockStatus`) and ``reason``; the block tree is read
    directly (fork choice, locators, the active chain)."""

    tree: BlockTree

    def accept_header(self, header: Any, now: int) -> Any: ...
    def accept_block(self, block: Any, now: int) -> Any: ...
    def get_block(self, block_hash: bytes) -> Any | None: ...
    def has_tx(self, txid: Any) -> bool: ...
    def get_tx(self, txid: Any) -> Any | None: ...
    def accept_tx(self, tx: Any, now: int) -> str | None: ...   # None: accepted; else the reason


class ProtocolConfig:
    """Tunables of one node's protocol (defaults are the real node's)."""

    __slots__ = ("max_in_flight", "block_timeout", "handshake_timeout", "ban_seconds", "discover",
                 "addr_gossip", "announce_blocks", "max_outbound", "max_addresses")

    def __init__(self, *, max_in_flight: int = MAX_IN_FLIGHT, block_timeout: float = BLOCK_TIMEOUT,
                 handshake_timeout: float = HANDSHAKE_TIMEOUT, ban_seconds: float = DEFAULT_BAN_SECONDS,
                 discover: bool = True, addr_gossip: bool = True, announce_blocks: bool = True,
                 max_outbound: int = 8, max_addresses: int = MAX_ADDRESSES) -> None:
        self.max_in_flight = max_in_flight
        self.block_timeout = block_timeout
        self.handshake_timeout = handshake_timeout
        self.ban_seconds = ban_seconds
        self.discover = discover              # dial addresses learned from peers
        self.addr_gossip = addr_gossip        # ask new peers for addresses (getaddr)
        self.announce_blocks = announce_blocks  # announce new tips (a selfish pool does not)
        self.max_outbound = max_outbound
        self.max_addresses = max_addresses


class PeerState:
    """What the protocol knows about one link. ``handle`` is the host's name for the peer
    (the node's Peer object, the simulator's node id)."""

    __slots__ = ("handle", "inbound", "host", "port", "dialled", "version", "verack", "ready", "closed",
                 "known", "score", "score_at", "requested", "requested_tx", "best", "deadline",
                 "connected_at", "unconnecting", "stalled", "best_sent", "last_common")

    def __init__(self, handle: Hashable, inbound: bool, host: str, port: int,
                 dialled: tuple[str, int] | None, now: float, deadline: float) -> None:
        self.handle = handle
        self.inbound = inbound
        self.host = host
        self.port = port                      # the remote socket's port (ephemeral for inbound)
        self.dialled = dialled                # the address we dialled (outbound only)
        self.version: m.Version | None = None
        self.verack = False
        self.ready = False                    # handshake done and not closed
        self.closed = False
        self.known: dict[Any, None] = {}      # transactions the peer has (bounded, oldest forgotten first)
        self.score = 0.0
        self.score_at = now
        self.requested: dict[bytes, float] = {}   # block hash -> when we asked this peer
        self.requested_tx: set[Any] = set()
        self.best: IndexEntry | None = None   # the most-work block we know the peer has
        self.best_sent: IndexEntry | None = None  # the last block header we sent it
        self.last_common: IndexEntry | None = None  # the last block of its best chain we have too
        self.deadline = deadline              # the handshake must be done by then
        self.connected_at = now
        self.unconnecting = 0                 # headers messages in a row that did not connect
        self.stalled: dict[bytes, float] = {}  # blocks it failed to deliver -> not asked again until

    @property
    def listen_addr(self) -> tuple[str, int] | None:
        """Where this peer accepts connections: what we dialled, or what its version said."""
        if self.dialled is not None:
            return self.dialled
        if self.version is not None and self.version.listen_port:
            return (self.host, self.version.listen_port)
        return None

    @property
    def name(self) -> str:
        addr = self.listen_addr
        if addr is not None:
            return f"{addr[0]}:{addr[1]}"
        return f"{self.host}:{self.port}"

    def current_score(self, now: float) -> float:
        if self.score < BAN_SCORE and now > self.score_at:
            self.score = max(0.0, self.score - (now - self.score_at) * SCORE_DECAY_PER_SECOND)
        self.score_at = now
        return self.score

    def add_known(self, item: Any) -> None:
        known = self.known
        known[item] = None
        if len(known) > KNOWN_INVENTORY:
            del known[next(iter(known))]


def _peer_has(state: PeerState, entry: IndexEntry) -> bool:
    """Whether ``state``'s peer has the header of ``entry``: genesis, or an ancestor of
    the best block we know it has or of the last header we sent it (Bitcoin Core:
    PeerHasHeader, over pindexBestKnownBlock and pindexBestHeaderSent). Nothing per
    block is remembered per peer: two pointers say it all."""
    height = entry.height
    if height == 0:
        return True
    best = state.best
    if best is not None and (best is entry or best.height > height and (
            best.parent is entry or best.get_ancestor(height) is entry)):
        return True
    best = state.best_sent
    return best is not None and (best is entry or best.height > height and (
        best.parent is entry or best.get_ancestor(height) is entry))


def ban_key(host: str, port: int | None) -> tuple[str, int] | str:
    """On one machine every peer is 127.0.0.1: ban the peer's listen address there, and
    the whole host elsewhere (as Bitcoin bans an IP)."""
    if host.startswith("127.") or host in ("::1", "localhost"):
        return (host, port or 0)
    return host


class PeerProtocol:
    """One node's side of the peer protocol, for all its peers."""

    def __init__(self, chain: ChainAccess, *, genesis_hash: bytes, nonce: int, user_agent: str,
                 network: str = "", listen_port: int = 0, config: ProtocolConfig | None = None,
                 connect: Iterable[tuple[str, int]] = ()) -> None:
        self.chain = chain
        self.genesis_hash = genesis_hash
        self.network = network                          # the chain's name, for a reject's reason
        self.nonce = nonce
        self.user_agent = user_agent
        self.listen_port = listen_port
        self.config = config or ProtocolConfig()
        self.peers: dict[Hashable, PeerState] = {}
        self.in_flight: dict[bytes, PeerState] = {}      # block hash -> the peer asked for it
        self.addresses: dict[tuple[str, int], float] = {}  # known listen addresses -> last seen
        self.bans: dict[tuple[str, int] | str, float] = {}  # ban key -> until
        self.denied: set[tuple[str, int]] = set()        # operator's partition: refuse these
        self.connect: list[tuple[str, int]] = list(connect)  # addresses the host keeps dialling
        self.self_addr: tuple[str, int] | None = None
        self._ready: list[PeerState] = []                # ready peers, in the order they became so
        # How many effects other than Send were ever returned: a host that handles Sends
        # only on its fast path checks this to know when to look for the others.
        self.reports = 0

    # -- queries ---------------------------------------------------------------------------

    def ready_peers(self) -> list[PeerState]:
        return list(self._ready)

    def _set_ready(self, state: PeerState, ready: bool) -> None:
        if ready and not state.ready:
            self._ready.append(state)
        elif not ready and state.ready:
            self._ready.remove(state)
        state.ready = ready

    def is_banned(self, host: str, port: int | None, now: float) -> bool:
        key = ban_key(host, port)
        until = self.bans.get(key)
        if until is None:
            return False
        if until < now:
            del self.bans[key]
            return False
        return True

    def connected_to(self, addr: tuple[str, int]) -> bool:
        return any(p.listen_addr == addr and not p.closed for p in self.peers.values())

    def next_deadline(self) -> float | None:
        """The earliest time at which :meth:`tick` has work to do (a block request or a
        handshake that may time out), or None. A host may tick on a fixed period instead."""
        deadline = None
        timeout = self.config.block_timeout
        for peer in self.peers.values():
            if not peer.ready and not peer.closed:
                if deadline is None or peer.deadline < deadline:
                    deadline = peer.deadline
            for asked in peer.requested.values():
                t = asked + timeout
                if deadline is None or t < deadline:
                    deadline = t
        return deadline

    # -- links -------------------------------------------------------------------------------

    def connected(self, peer: Hashable, *, inbound: bool, host: str = "", port: int = 0,
                  dialled: tuple[str, int] | None = None, now: float) -> list[_Action]:
        """A link is up. We speak first on links we dialled."""
        state = PeerState(peer, inbound, host, port, dialled, now, now + self.config.handshake_timeout)
        self.peers[peer] = state
        if inbound:
            return []
        return [self._version(state)]

    def disconnected(self, peer: Hashable, now: float) -> list[_Action]:
        """The link is gone: forget the peer, and ask others for what it owed us."""
        state = self.peers.pop(peer, None)
        if state is None:
            return []
        was_ready = state.ready
        state.closed = True
        self._set_ready(state, False)
        for h in state.requested:
            if self.in_flight.get(h) is state:
                del self.in_flight[h]
        state.requested.clear()
        out: list[_Action] = []
        if was_ready:
            self._request_blocks_from_all(now, out)
        return out

    def misbehaving(self, peer: Hashable, reason: Misbehavior, detail: str, now: float) -> list[_Action]:
        """Score ``peer`` for something its host found wrong (a malformed frame, say)."""
        state = self.peers.get(peer)
        out: list[_Action] = []
        if state is not None and not state.closed:
            self._misbehave(state, reason, detail, now, out)
        return out

    def ban(self, host: str, port: int | None, now: float, seconds: float | None = None) -> list[_Action]:
        """Ban an address (the operator's, or a misbehaving peer's) and drop its links."""
        key = ban_key(host, port)
        self.bans[key] = now + (self.config.ban_seconds if seconds is None else seconds)
        out: list[_Action] = []
        for state in list(self.peers.values()):
            addr = state.listen_addr
            if not state.closed and ban_key(state.host, addr[1] if addr else state.port) == key:
                self._close(state, "banned", out)
        return out

    def set_denied(self, addrs: Iterable[tuple[str, int]]) -> list[_Action]:
        """Refuse links to and from ``addrs`` and drop the current ones: a partition."""
        self.denied = set(addrs)
        out: list[_Action] = []
        for state in list(self.peers.values()):
            if not state.closed and state.listen_addr in self.denied:
                self._reject(state, "partitioned", out)
        return out

    def add_outbound(self, addr: tuple[str, int]) -> bool:
        """The host keeps a link to ``addr`` from now on (False if it already did)."""
        if addr in self.connect:
            return False
        self.connect.append(addr)
        return True

    def remove_outbound(self, addr: tuple[str, int]) -> list[_Action]:
        if addr in self.connect:
            self.connect.remove(addr)
        out: list[_Action] = []
        for state in list(self.peers.values()):
            if not state.closed and state.listen_addr == addr:
                self._close(state, "removed by operator", out)
        return out

    # -- input ---------------------------------------------------------------------------------

    def receive(self, peer: Hashable, msg: m.Message, now: float) -> list[_Action]:
        """A decoded message from ``peer`` at time ``now``."""
        state = self.peers.get(peer)
        out: list[_Action] = []
        if state is None:
            return out
        if state.ready and msg.__class__ is _HEADERS:
            # The commonest message of all -- a peer announcing one block (BIP 130) that we
            # know already: every peer announces every block -- is handled here, inline:
            # note that the peer has it, and ask for blocks only if that raised what we
            # know of it. (The same rule as ``_on_headers``, written once more for speed;
            # tests/test_node_protocol.py checks both paths.)
            headers = msg.headers
            if len(headers) == 1:
                tree = self.chain.tree
                entry = tree.entries.get(headers[0].hash)
                if entry is not None and entry.status not in _FAILED:
                    state.unconnecting = 0
                    best = state.best
                    if best is None or entry.chainwork > best.chainwork:
                        state.best = best = entry
                    tip = tree.active[-1]
                    # (``_request_blocks`` would find nothing to ask for when the peer's best
                    # is the next block and it is already on its way: the usual case.)
                    if best.chainwork > tip.chainwork and (best.parent is not tip or best.hash not in self.in_flight):
                        self._request_blocks(state, now, out)
                    return out
            self._on_headers(state, msg, now, out)
            return out
        if not state.ready:
            if state.closed:
                return out                      # what a closed link still delivers is ignored
            if msg.__class__ not in _HANDSHAKE:
                self._misbehave(state, Misbehavior.BEFORE_HANDSHAKE, f"{msg.NAME} before the handshake", now, out)
                return out
        handler = _HANDLERS.get(msg.__class__)
        if handler is not None:
            handler(self, state, msg, now, out)
        return out

    def tick(self, now: float) -> list[_Action]:
        """Periodic work: handshake and block-request timeouts, then ask for what is missing."""
        out: list[_Action] = []
        timeout = self.config.block_timeout
        for state in list(self.peers.values()):
            if state.closed:
                continue
            if not state.ready:
                if now >= state.deadline:
                    self._reject(state, "handshake timed out", out)
                continue
            requested = state.requested
            if requested:
                for h, asked in list(requested.items()):
                    if now - asked >= timeout:
                        # Stalled: ask someone else; this peer only once a timeout has
                        # passed again (Bitcoin Core disconnects a stalling peer; our
                        # simulated links cannot be re-dialled, so we avoid it instead).
                        del requested[h]
                        state.stalled[h] = now + timeout
                        if self.in_flight.get(h) is state:
                            del self.in_flight[h]
        self._request_blocks_from_all(now, out)
        if self.config.discover and not self.connect:
            self._dial_more(out)
        return out

    def local_block(self, block: Any, now: float) -> tuple[Any, list[_Action]]:
        """A block of our own (mined, or submitted by the operator): accept and announce."""
        out: list[_Action] = []
        tree = self.chain.tree
        old_tip = tree.active[-1]
        result = self.chain.accept_block(block, int(now))
        if tree.active[-1] is not old_tip:
            self._announce_tip(old_tip, None, out)
        return result, out

    def relay_tx(self, tx: Any) -> list[_Action]:
        """Announce a transaction our own user got admitted (the host admitted it first)."""
        out: list[_Action] = []
        self._announce_tx(tx, None, out)
        return out

    def relay_txs(self, txs: Iterable[Any]) -> list[_Action]:
        """Announce many transactions our own users got admitted, at once: one inv per
        peer (of at most ``MAX_INV_ITEMS``) naming those it is not known to have, instead
        of one message per transaction (Bitcoin Core likewise sends a peer's pending
        transaction invs together, on its trickle timer)."""
        txids = [tx.txid for tx in txs]
        out: list[_Action] = []
        for state in self.peers.values():
            if not state.ready:
                continue
            known = state.known
            fresh = [t for t in txids if t not in known]
            for t in fresh:
                state.add_known(t)
            for i in range(0, len(fresh), m.MAX_INV_ITEMS):
                out.append(Send(state.handle, m.Inv([(m.INV_TX, t) for t in fresh[i:i + m.MAX_INV_ITEMS]])))
        return out

    def announce(self, block_hashes: list[bytes]) -> list[_Action]:
        """Announce blocks that are not (or not yet) our tip -- what a selfish pool does
        when it publishes. Each ready peer gets the headers it does not know yet."""
        tree = self.chain.tree
        entries = [tree.entries[h] for h in block_hashes]
        out: list[_Action] = []
        for state in self.peers.values():
            if state.ready:
                self._announce_entries(state, entries, out)
        return out

    # -- handshake -----------------------------------------------------------------------------

    def _version(self, state: PeerState) -> Send:
        return Send(state.handle, m.Version(PROTOCOL_VERSION, self.genesis_hash, self.chain.tree.height,
                                            self.user_agent, self.listen_port, self.nonce))

    def _on_version(self, state: PeerState, msg: m.Version, now: float, out: list) -> None:
        if state.version is not None:
            self._misbehave(state, Misbehavior.DUPLICATE_VERSION, "second version message", now, out)
            return
        if msg.genesis != self.genesis_hash:
            self._reject(state, f"wrong network: we run {self.network or 'another chain'} (genesis "
                                f"{self.genesis_hash[::-1].hex()[:16]}...), you do not", out)
            return
        if msg.nonce == self.nonce:
            self._reject(state, "connected to self", out)
            return
        if msg.version < 1:
            self._reject(state, f"protocol version {msg.version} is too old", out)
            return
        state.version = msg
        addr = state.listen_addr
        if addr is not None and (addr in self.denied or self.is_banned(state.host, addr[1], now)):
            self._reject(state, "partitioned" if addr in self.denied else "banned", out)
            return
        for other in self.peers.values():
            if other is not state and other.ready and other.version is not None and other.version.nonce == msg.nonce:
                self._reject(state, "already connected", out)
                return
        if state.inbound:
            out.append(self._version(state))
        out.append(Send(state.handle, _VERACK))
        self._maybe_ready(state, now, out)

    def _on_verack(self, state: PeerState, msg: m.Verack, now: float, out: list) -> None:
        state.verack = True
        self._maybe_ready(state, now, out)

    def _maybe_ready(self, state: PeerState, now: float, out: list) -> None:
        if state.ready or state.version is None or not state.verack or state.closed:
            return
        self._set_ready(state, True)
        addr = state.listen_addr
        if addr is not None:
            self._learn_address(addr, now)
        self.reports += 1
        out.append(PeerReady(state.handle))
        out.append(Send(state.handle, m.GetHeaders(self._sync_locator())))
        if self.config.addr_gossip:
            out.append(Send(state.handle, _GETADDR))

    def _sync_locator(self) -> list[bytes]:
        """Where to start a headers sync from: the best header's parent, so that a peer on
        the same chain answers with at least that header and we learn it has it (Bitcoin
        Core asks from pindexBestHeader->pprev for the same reason)."""
        tree = self.chain.tree
        best = tree.best_header
        return tree.locator(best.parent if best.parent is not None else best)

    def _on_reject(self, state: PeerState, msg: m.Reject, now: float, out: list) -> None:
        self._close(state, f"rejected by peer: {msg.reason}", out)

    def _on_ping(self, state: PeerState, msg: m.Ping, now: float, out: list) -> None:
        out.append(Send(state.handle, m.Pong(msg.nonce)))

    def _on_pong(self, state: PeerState, msg: m.Pong, now: float, out: list) -> None:
        pass

    # -- addresses -------------------------------------------------------------------------------

    def _learn_address(self, addr: tuple[str, int], now: float) -> None:
        if addr in self.addresses or len(self.addresses) < self.config.max_addresses:
            self.addresses[addr] = now

    def _on_getaddr(self, state: PeerState, msg: m.GetAddr, now: float, out: list) -> None:
        own = state.listen_addr
        addrs = [a for a in self.addresses if a != own][: m.MAX_ADDRS]
        out.append(Send(state.handle, m.Addr(addrs)))

    def _on_addr(self, state: PeerState, msg: m.Addr, now: float, out: list) -> None:
        book = self.addresses
        for addr in msg.addrs:
            if len(book) >= self.config.max_addresses:
                break
            book.setdefault(addr, now)
        if self.config.discover:
            self._dial_more(out)

    def _dial_more(self, out: list) -> None:
        outbound = {p.listen_addr for p in self.peers.values() if not p.inbound}
        wanted = self.config.max_outbound - len(outbound)
        if wanted <= 0:
            return
        for addr in list(self.addresses):
            if wanted <= 0:
                break
            if addr in outbound or addr in self.connect or addr in self.denied or addr == self.self_addr:
                continue
            if self.connected_to(addr):
                continue
            self.connect.append(addr)
            self.reports += 1
            out.append(Dial(addr))
            wanted -= 1

    # -- headers and blocks --------------------------------------------------------------------

    def _on_getheaders(self, state: PeerState, msg: m.GetHeaders, now: float, out: list) -> None:
        tree = self.chain.tree
        entries = tree.entries
        active = tree.active
        start = tree.genesis
        for h in msg.locator:                  # the first locator hash on our active chain
            entry = entries.get(h)
            if entry is not None and entry.height < len(active) and active[entry.height] is entry:
                start = entry
                break
        headers = []
        stop = msg.stop
        for height in range(start.height + 1, min(len(active) - 1, start.height + m.MAX_HEADERS) + 1):
            entry = active[height]
            headers.append(entry.header)
            if entry.hash == stop:
                break
        out.append(Send(state.handle, m.Headers(headers)))
        if headers:
            state.best_sent = active[start.height + len(headers)]

    def _on_headers(self, state: PeerState, msg: m.Headers, now: float, out: list) -> None:
        chain = self.chain
        entries = chain.tree.entries
        headers = msg.headers
        last = None
        for header in headers:
            h = header.hash
            entry = entries.get(h)
            if entry is None or entry.status in _FAILED:
                result = chain.accept_header(header, int(now))
                status = result.status
                if status is BlockStatus.INVALID:
                    self._misbehave(state, Misbehavior.INVALID_HEADER,
                                    f"invalid header {h[::-1].hex()[:16]}: {result.reason}", now, out)
                    return
                if status is BlockStatus.ORPHAN:
                    # Headers that do not connect: ask for what is in between (the peer may
                    # have announced a block whose parent it thought we had). Bitcoin only
                    # punishes a peer that keeps doing it.
                    state.unconnecting += 1
                    if state.unconnecting % MAX_UNCONNECTING_HEADERS == 0:
                        self._misbehave(state, Misbehavior.UNCONNECTING_HEADERS,
                                        f"{state.unconnecting} headers messages that do not connect", now, out)
                        if state.closed:
                            return
                    out.append(Send(state.handle, m.GetHeaders(self._sync_locator(), h)))
                    return
                entry = entries[h]
            last = entry
        if last is None:
            return
        state.unconnecting = 0
        best = state.best
        if best is None or last.chainwork > best.chainwork:
            state.best = last
        self._request_blocks(state, now, out)
        if len(headers) == m.MAX_HEADERS:
            out.append(Send(state.handle, m.GetHeaders(chain.tree.locator(last))))

    def _note_peer_has(self, state: PeerState, block_hash: bytes) -> None:
        entry = self.chain.tree.entries.get(block_hash)
        if entry is None:
            return
        best = state.best
        if best is None or entry.chainwork > best.chainwork:
            state.best = entry

    def _request_blocks(self, state: PeerState, now: float, out: list) -> None:
        """Ask ``state`` for blocks we lack on its best branch, if that branch beats ours."""
        target = state.best
        if target is None or not state.ready:
            return
        tree = self.chain.tree
        tip = tree.active[-1]
        if target.chainwork <= tip.chainwork or target.status in _FAILED:
            return
        room = min(self.config.max_in_flight - len(state.requested), m.MAX_INV_ITEMS)
        if room <= 0:
            return
        in_flight = self.in_flight
        stalled = state.stalled
        if stalled:
            for h, until in list(stalled.items()):
                if until <= now:
                    del stalled[h]
        if target.parent is tip:               # one block on top of our tip: the usual case
            if target.have_data or target.hash in in_flight or target.hash in stalled:
                return
            wanted = [target.hash]
        else:
            wanted = self._next_blocks(state, target, room, stalled)
            if not wanted:
                return
        requested = state.requested
        for h in wanted:
            requested[h] = now
            in_flight[h] = state
        out.append(Send(state.handle, m.GetData([(m.INV_BLOCK, h) for h in wanted])))

    def _next_blocks(self, state: PeerState, best: IndexEntry, count: int, stalled: dict) -> list[bytes]:
        """Up to ``count`` blocks to ask ``state`` for, lowest first, on its best chain
        (Bitcoin Core's FindNextBlocksToDownload). The walk starts at the last block both
        of us have (``state.last_common``, moved forward as blocks complete), not at our
        tip, and stops ``BLOCK_DOWNLOAD_WINDOW`` blocks past it: each call costs what it
        asks for, not the length of the chain, and a node syncing thousands of blocks
        never stores blocks far ahead of what it can connect."""
        tree = self.chain.tree
        active = tree.active
        common = state.last_common
        if common is None:
            common = active[min(best.height, len(active) - 1)]
        common = tree.find_fork(common, best)
        if common is best:
            state.last_common = common
            return []
        max_height = min(best.height, common.height + BLOCK_DOWNLOAD_WINDOW)
        in_flight = self.in_flight
        wanted: list[bytes] = []
        walk = common
        while walk.height < max_height:
            top = best.get_ancestor(min(max_height, walk.height + max(count - len(wanted), 128)))
            chunk = []
            entry = top
            while entry is not walk:
                chunk.append(entry)
                entry = entry.parent
            walk = top
            for entry in reversed(chunk):
                if entry.status in _FAILED:
                    state.last_common = common
                    return wanted
                if entry.have_data:
                    if entry.complete:
                        common = entry
                elif entry.hash not in in_flight and entry.hash not in stalled:
                    wanted.append(entry.hash)
                    if len(wanted) >= count:
                        state.last_common = common
                        return wanted
        state.last_common = common
        return wanted

    def _request_blocks_from_all(self, now: float, out: list) -> None:
        for state in self.peers.values():
            if state.ready:
                self._request_blocks(state, now, out)

    def _on_block(self, state: PeerState, msg: m.BlockMessage, now: float, out: list) -> None:
        block = msg.block
        h = block.hash
        # A block we asked this peer for -- even if we gave up waiting and asked another
        # -- is solicited: a slow honest peer is not punished for answering late.
        solicited = state.requested.pop(h, None) is not None or state.stalled.pop(h, None) is not None
        if self.in_flight.get(h) is state:
            del self.in_flight[h]
        if not solicited:
            self._misbehave(state, Misbehavior.UNSOLICITED_BLOCK, f"unsolicited block {h[::-1].hex()[:16]}", now, out)
            if state.closed:
                return
        tree = self.chain.tree
        old_tip = tree.active[-1]
        result = self.chain.accept_block(block, int(now))
        status = result.status
        if status is BlockStatus.INVALID:
            if result.reason == "duplicate-invalid":
                self._misbehave(state, Misbehavior.KNOWN_INVALID_BLOCK,
                                f"block known to be invalid {h[::-1].hex()[:16]}", now, out)
            else:
                self._misbehave(state, Misbehavior.INVALID_BLOCK,
                                f"invalid block {h[::-1].hex()[:16]}: {result.reason} {result.message}".rstrip(), now, out)
            return
        if status is BlockStatus.ORPHAN:
            out.append(Send(state.handle, m.GetHeaders(self._sync_locator(), h)))
        if tree.active[-1] is not old_tip:
            self._announce_tip(old_tip, state, out)
        self._note_peer_has(state, h)
        self._request_blocks(state, now, out)

    # -- relay -----------------------------------------------------------------------------------

    def _announce_tip(self, old_tip: IndexEntry, source: PeerState | None, out: list) -> None:
        """Tell every ready peer but ``source`` about our new tip (Bitcoin: the blocks to
        announce since ``old_tip``'s fork, as headers, or an inv of the tip)."""
        if not self.config.announce_blocks:
            return
        tree = self.chain.tree
        tip = tree.active[-1]
        if tip.parent is old_tip:
            self._announce_one(tip, source, out)
            return
        else:
            fork = tree.find_fork(old_tip, tip)
            new = []
            walk = tip
            while walk is not fork and len(new) <= MAX_BLOCKS_TO_ANNOUNCE:
                new.append(walk)
                walk = walk.parent
            new.reverse()
        for state in self.peers.values():
            if state.ready and state is not source:
                self._announce_entries(state, new, out)

    def _announce_one(self, entry: IndexEntry, source: PeerState | None, out: list) -> None:
        """``_announce_entries`` for one new block to every peer, inline: the relay of a
        block is the hottest path of a large simulation. One message object is shared by
        every peer it goes to (messages are immutable values)."""
        parent = entry.parent
        height = entry.height
        headers = inv = None
        for state in self._ready:
            if state is source:
                continue
            # ``_peer_has`` inline for the usual cases: the peer told us of this block, or
            # its best block (or the last we sent it) is this block's parent.
            best = state.best
            sent = state.best_sent
            if best is entry or sent is entry:
                continue
            if (best is not None and best.height > height or sent is not None and sent.height > height) \
                    and _peer_has(state, entry):
                continue
            if best is parent or sent is parent or _peer_has(state, parent):
                if headers is None:
                    headers = m.Headers([entry.header])
                msg = headers
            else:
                if inv is None:
                    inv = m.Inv([(m.INV_BLOCK, entry.hash)])
                msg = inv
            state.best_sent = entry
            out.append(Send(state.handle, msg))

    def _announce_entries(self, state: PeerState, entries: list[IndexEntry], out: list) -> None:
        """Announce a chain of blocks (oldest first) to one peer: the headers it does not
        have, if they connect to one it has and are few; else an inv of the last."""
        last = entries[-1]
        if _peer_has(state, last):
            return
        fresh = [e for e in entries if not _peer_has(state, e)]
        first_parent = fresh[0].parent
        if len(fresh) <= MAX_BLOCKS_TO_ANNOUNCE and first_parent is not None and _peer_has(state, first_parent):
            msg = m.Headers([e.header for e in fresh])
        else:
            msg = m.Inv([(m.INV_BLOCK, last.hash)])
        state.best_sent = last
        out.append(Send(state.handle, msg))

    def _announce_tx(self, tx: Any, source: PeerState | None, out: list) -> None:
        txid = tx.txid
        msg = None
        for state in self.peers.values():
            if state.ready and state is not source and txid not in state.known:
                state.add_known(txid)
                if msg is None:
                    msg = m.Inv([(m.INV_TX, txid)])
                out.append(Send(state.handle, msg))

    def _on_inv(self, state: PeerState, msg: m.Inv, now: float, out: list) -> None:
        chain = self.chain
        entries = chain.tree.entries
        want_tx = []
        unknown_block = None
        for kind, h in msg.items:
            if kind == m.INV_BLOCK:
                if h in entries:
                    self._note_peer_has(state, h)
                else:
                    unknown_block = h
            else:
                state.add_known(h)
                if h in state.requested_tx or chain.has_tx(h):
                    continue
                want_tx.append((m.INV_TX, h))
                state.requested_tx.add(h)
        if unknown_block is not None:
            out.append(Send(state.handle, m.GetHeaders(self._sync_locator(), unknown_block)))
        else:
            self._request_blocks(state, now, out)
        if want_tx:
            out.append(Send(state.handle, m.GetData(want_tx)))

    def _on_getdata(self, state: PeerState, msg: m.GetData, now: float, out: list) -> None:
        chain = self.chain
        entries = chain.tree.entries
        missing = []
        for kind, h in msg.items:
            if kind == m.INV_BLOCK:
                entry = entries.get(h)
                block = chain.get_block(h) if entry is not None and entry.have_data else None
                if block is None:
                    missing.append((kind, h))
                else:
                    out.append(Send(state.handle, m.BlockMessage(block)))
            else:
                tx = chain.get_tx(h)
                if tx is None:
                    missing.append((kind, h))
                else:
                    out.append(Send(state.handle, m.TxMessage(tx)))
        if missing:
            out.append(Send(state.handle, m.NotFound(missing)))

    def _on_notfound(self, state: PeerState, msg: m.NotFound, now: float, out: list) -> None:
        for kind, h in msg.items:
            if kind == m.INV_BLOCK and state.requested.pop(h, None) is not None:
                if self.in_flight.get(h) is state:
                    del self.in_flight[h]
            state.requested_tx.discard(h)
        self._request_blocks_from_all(now, out)

    def _on_tx(self, state: PeerState, msg: m.TxMessage, now: float, out: list) -> None:
        tx = msg.tx
        txid = tx.txid
        state.add_known(txid)
        state.requested_tx.discard(txid)
        reason = self.chain.accept_tx(tx, int(now))
        if reason is None:
            self._announce_tx(tx, state, out)
        elif reason not in BENIGN_TX_REJECTS:
            self._misbehave(state, Misbehavior.INVALID_TX, f"invalid transaction: {reason}", now, out)

    # -- misbehaviour and closing --------------------------------------------------------------

    def _misbehave(self, state: PeerState, reason: Misbehavior, detail: str, now: float, out: list) -> None:
        score = state.current_score(now) + reason.score
        state.score = score
        banned = score >= BAN_SCORE
        self.reports += 1
        out.append(Misbehaved(state.handle, reason, detail, int(score), banned))
        if banned:
            # The offender hears why before the link closes; then its address is banned
            # (which drops any other link from it).
            self._reject(state, f"banned: {detail}", out)
            addr = state.listen_addr
            out.extend(self.ban(state.host, addr[1] if addr else state.port, now))

    def _reject(self, state: PeerState, reason: str, out: list) -> None:
        out.append(Send(state.handle, m.Reject(reason)))
        self._close(state, reason, out)

    def _close(self, state: PeerState, reason: str, out: list) -> None:
        if state.closed:
            return
        state.closed = True
        self._set_ready(state, False)
        self.reports += 1
        out.append(Disconnect(state.handle, reason))


_FAILED = frozenset(s for s in Status if s.failed)
_HEADERS = m.Headers
_VERACK = m.Verack()
_GETADDR = m.GetAddr()
_HANDSHAKE = frozenset({m.Version, m.Verack, m.Reject})
_HANDLERS = {
    m.Version: PeerProtocol._on_version,
    m.Verack: PeerProtocol._on_verack,
    m.Reject: PeerProtocol._on_reject,
    m.Ping: PeerProtocol._on_ping,
    m.Pong: PeerProtocol._on_pong,
    m.GetAddr: PeerProtocol._on_getaddr,
    m.Addr: PeerProtocol._on_addr,
    m.GetHeaders: PeerProtocol._on_getheaders,
    m.Headers: PeerProtocol._on_headers,
    m.BlockMessage: PeerProtocol._on_block,
    m.Inv: PeerProtocol._on_inv,
    m.GetData: PeerProtocol._on_getdata,
    m.NotFound: PeerProtocol._on_notfound,
    m.TxMessage: PeerProtocol._on_tx,
}
