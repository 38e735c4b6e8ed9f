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
  addresses     getaddr -> addr (once per link); addresses are IP:port literals only, the
                book is capped, and learned addresses are dialled a few at a time, each
                retried with backoff and forgotten after repeated failures
  misbehaviour  a score per peer, raised by a :class:`Misbehavior` (each carries its
                score, like Bitcoin Core's validation results), decaying one point per
                second; at ``BAN_SCORE`` the peer is sent a reject, disconnected and its
                address banned. Validation reasons map to penalties in one place,
                :func:`penalty_for` (a header too far in the future is not punished)
  budgets       every per-peer resource is bounded (the table below); getdata is served
                a bounded number of bytes at a time and resumed when the host says the
                peer's send buffer drained (Bitcoin Core's fPauseSend)
  headers DoS   headers are stored only once the branch they build carries enough work
                (at least our tip's, less ``LOW_WORK_MARGIN`` blocks): a low-work branch
                is held per peer in a bounded buffer while the peer sends more, stored
                when it gets there, dropped and scored when it does not
  eviction      when the inbound slots are full, :meth:`PeerProtocol.eviction_candidate`
                names an inbound peer to drop for a newcomer (never one that recently
                gave us a block or a transaction, or that we are downloading from)

Per-peer limits and penalties (one table; ``docs/p2p.md`` explains each row). Token
buckets hold ``burst`` tokens and refill at ``rate`` per second; what exceeds a limit is
ignored, and the penalty is added once per message that exceeded it:

  =====================  ============================================  ===================  =======
  message / resource     limit per peer                                beyond the limit     penalty
  =====================  ============================================  ===================  =======
  inv (items)            bucket: burst 5,000, 1,000/s                  items ignored        +20
  inv tx (pending)       5,000 announced, 100 requested at once;       ignored; expired     --
                         a request expires after 60 s
  getdata (queued)       1,000 items waiting to be served; each call   items refused        +20
                         serves at most ``serve_bytes`` (1 MB)
  getdata duplicate      an item already waiting                       dropped              --
  getdata unknown        bucket: burst 1,000, 100/s (notfound items)   items ignored        +20
  addr (addresses)       bucket: burst 1,000, 0.1/s (Bitcoin Core's);  ignored              +5
                         1 token per message, 1 per address
  addr (bad address)     IP literal and port 1..65535 only             ignored              --
  getaddr                answered once per link                        ignored              --
  headers, low work      8,000 buffered until the branch has enough    branch dropped       +20
                         work
  headers, time-too-new  not stored, not requested                     --                   --
  headers, unconnecting  10 messages in a row                          --                   +20
  block, unsolicited     --                                            --                   +10
  tx, invalid            reasons outside ``BENIGN_TX_REJECTS``         --                   +10
  known inventory        5,000 hashes per peer, oldest forgotten       --                   --
  blocks in flight       16 per peer (Bitcoin: MAX_BLOCKS_IN_TRANSIT)  --                   --
  send buffer            the IO shell stops reading a peer whose send  disconnected         --
                         queue is over its budget, and drops it if it
                         does not drain in time
  =====================  ============================================  ===================  =======

Anything invalid (header, block, message, handshake) scores 100 and bans at once.

The chain is reached through a narrow interface (:class:`ChainAccess`): accept a header,
accept a block (which the chain stores before returning: persist, then speak), fetch a
block to serve, and the same for transactions. The node gives it the chain state and the
mempool (``node/backend.py``); the simulator a chain of simulated blocks with cheap
validation.

Simplifications, said plainly: no ``sendheaders`` negotiation (every minichain node
accepts headers announcements; BIP 130 made it opt-in for old peers), no compact blocks,
no transaction relay delays or orphan transactions, and one global ban list keyed by
host (by host and port on loopback, where every test peer is 127.0.0.1). The low-work
headers buffer keeps the headers themselves (Bitcoin Core 24 keeps only a salted
commitment per header and downloads them twice), so a reorganisation whose first
``MAX_LOW_WORK_HEADERS`` headers all lie more than ``LOW_WORK_MARGIN`` blocks' work below
our tip is not followed; Core has no such limit.
"""

from __future__ import annotations

import enum
import ipaddress
from collections import deque
from typing import Any, Hashable, Iterable, Protocol

from minichain.chainstate import BlockStatus
from minichain.core.actions import Send, _Action
from minichain.core.chain import BlockTree, IndexEntry, Status, _block_work
from minichain.node import messages as m

__all__ = [
    "BAN_SCORE", "ChainAccess", "Dial", "Disconnect", "Misbehaved", "Misbehavior", "PeerProtocol", "PeerReady",
    "PeerState", "ProtocolConfig", "Send", "penalty_for", "valid_address",
]

PROTOCOL_VERSION = m.PROTOCOL_VERSION
MAX_IN_FLIGHT = 16              # Bitcoin: MAX_BLOCKS_IN_TRANSIT_PER_PEER
BLOCK_TIMEOUT = 20.0            # seconds before a requested block is asked of another peer
HANDSHAKE_TIMEOUT = 10.0
BAN_SCORE = 100                 # Bitcoin: DISCOURAGEMENT_THRESHOLD
DEFAULT_BAN_SECONDS = 24 * 60 * 60   # Bitcoin: DEFAULT_MISBEHAVING_BANTIME
MAX_BANS = 10_000               # ban entries kept (the soonest to expire go first)
KNOWN_INVENTORY = 5_000         # hashes remembered per peer (Bitcoin: m_tx_inventory_known_filter)
MAX_ADDRESSES = 5_000           # the address book
MAX_BLOCKS_TO_ANNOUNCE = 8      # Bitcoin: MAX_BLOCKS_TO_ANNOUNCE (more: an inv instead)
MAX_UNCONNECTING_HEADERS = 10   # Bitcoin: MAX_NUM_UNCONNECTING_HEADERS_MSGS
BLOCK_DOWNLOAD_WINDOW = 1024    # Bitcoin: BLOCK_DOWNLOAD_WINDOW, blocks past the last common one
SCORE_DECAY_PER_SECOND = 1.0    # a burst of small offences is punished, a trickle is not
# -- per-peer budgets (the table in the module docstring) --
INV_BURST, INV_RATE = 5_000, 1_000.0            # inv items
UNKNOWN_BURST, UNKNOWN_RATE = 1_000, 100.0      # getdata items we do not have
ADDR_BURST, ADDR_RATE = 1_000, 0.1              # Bitcoin: MAX_ADDR_PROCESSING_TOKEN_BUCKET, MAX_ADDR_RATE_PER_SECOND
MAX_GETDATA_QUEUE = 1_000       # getdata items waiting to be served to one peer
SERVE_BYTES = 1_000_000         # bytes of getdata answers per call (then the host resumes us)
MAX_TX_IN_FLIGHT = 100          # Bitcoin: MAX_PEER_TX_REQUEST_IN_FLIGHT
MAX_TX_ANNOUNCEMENTS = 5_000    # Bitcoin: MAX_PEER_TX_ANNOUNCEMENTS
TX_REQUEST_TIMEOUT = 60.0       # Bitcoin: GETDATA_TX_INTERVAL
MAX_LOW_WORK_HEADERS = 8_000    # headers of a not-yet-heavy branch held per peer
LOW_WORK_MARGIN = 144           # blocks of work below our tip a new branch may start at (Bitcoin Core: 144)
# -- dialling learned addresses --
DIALS_PER_TICK = 1              # new outbound attempts per tick
DIAL_RETRY = 60.0               # seconds before an address that failed is tried again (doubling)
MAX_DIAL_FAILURES = 3           # then it leaves the address book
# -- eviction of inbound peers --
PROTECT_RECENT = 4              # peers protected for the latest blocks (and, as many, transactions) they gave us

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
    NONCONTINUOUS_HEADERS = ("noncontinuous-headers", 20)   # Bitcoin Core: the same, 20
    UNCONNECTING_HEADERS = ("unconnecting-headers", 20)
    LOW_WORK_HEADERS = ("low-work-headers", 20)
    INV_FLOOD = ("inv-flood", 20)
    GETDATA_EXCESS = ("getdata-excess", 20)
    GETDATA_UNKNOWN_FLOOD = ("getdata-unknown-flood", 20)
    ADDR_FLOOD = ("addr-flood", 5)
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

# What a header or block refused for ``reason`` costs its sender, where that is not the
# default (INVALID_HEADER for a header, INVALID_BLOCK for a block). None: nothing. The
# one place validation results become punishments (Bitcoin Core: MaybePunishNodeForBlock).
_PENALTIES: dict[str, Misbehavior | None] = {
    # Bitcoin Core does not punish BLOCK_TIME_FUTURE: the sender's clock (or ours) may be
    # off, and the header may be fine in a few minutes. It is not stored either.
    "time-too-new": None,
    "duplicate-invalid": Misbehavior.KNOWN_INVALID_BLOCK,   # BLOCK_CACHED_INVALID
    "bad-prevblk": Misbehavior.KNOWN_INVALID_BLOCK,         # BLOCK_INVALID_PREV
}


def penalty_for(reason: str | None, default: Misbehavior) -> Misbehavior | None:
    """The penalty for a header, block or transaction (``default`` says which: INVALID_HEADER,
    INVALID_BLOCK or INVALID_TX) refused for ``reason``; None: no penalty."""
    if default is Misbehavior.INVALID_TX:
        return None if reason in BENIGN_TX_REJECTS else default
    return _PENALTIES.get(reason, default) if reason is not None else default


def valid_address(addr: Any) -> tuple[str, int] | None:
    """``addr`` as a normalised (IP literal, port), or None if it is anything else: a
    host name, a path, a port out of range. Only such addresses are learned and dialled
    (a host string from a peer is never pasted into a URL)."""
    try:
        host, port = addr
        if not isinstance(host, str) or not isinstance(port, int) or not 0 < port < 65536 or len(host) > 45:
            return None
        ip = ipaddress.ip_address(host)
    except (TypeError, ValueError):
        return None
    if ip.is_multicast or ip.is_unspecified:
        return None
    return (str(ip), port)


class Bucket:
    """A token bucket: ``burst`` tokens, refilled at ``rate`` per second."""

    __slots__ = ("tokens", "at", "rate", "burst")

    def __init__(self, burst: float, rate: float, now: float) -> None:
        self.tokens = float(burst)
        self.at = now
        self.rate = rate
        self.burst = burst

    def take(self, n: float, now: float) -> float:
        """Take up to ``n`` tokens; returns how many could not be had (0: all)."""
        tokens = self.tokens
        if now > self.at:
            tokens += (now - self.at) * self.rate
            if tokens > self.burst:
                tokens = self.burst
            self.at = now
        if tokens >= n:
            self.tokens = tokens - n
            return 0
        self.tokens = 0.0
        return n - tokens


# -- effects --------------------------------------------------------------------------------


class Disconnect(_Action):
    """Close the link to ``peer`` (after what was sent to it so far, e.g. a reject)."""

    __slots__ = ("peer", "reason")

    def __init__(self, peer: Hashable, reason: str) -> None:
        self.peer = peer
        self.reason = reason


class Dial(_Action):
    """Try once to open an outbound link to ``addr`` (learned from a peer); the host
    reports how it went with :meth:`PeerProtocol.dial_ended`."""

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
    directly (fork choice, locators, the active chain). ``block_message`` is the message
    that serves a stored block (the node's carries the stored bytes as they are: no
    decoding and re-encoding of a megabyte to serve it)."""

    tree: BlockTree

    def accept_header(self, header: Any, now: int) -> Any: ...
    def accept_block(self, block: Any, now: int) -> Any: ...
    def block_message(self, block_hash: bytes) -> m.Message | None: ...
    def has_tx(self, txid: Any) -> bool: ...
    def get_tx(self, txid: Any) -> Any | None: ...
    def accept_tx(self, tx: Any, now: int) -> str | None: ...   # None: accepted; else the reason


class ProtocolConfig:
    """Tunables of one node's protocol (defaults are the real node's)."""

    __slots__ = ("max_in_flight", "block_timeout", "handshake_timeout", "ban_seconds", "discover",
                 "addr_gossip", "announce_blocks", "max_outbound", "max_addresses", "serve_bytes",
                 "max_low_work_headers")

    def __init__(self, *, max_in_flight: int = MAX_IN_FLIGHT, block_timeout: float = BLOCK_TIMEOUT,
                 handshake_timeout: float = HANDSHAKE_TIMEOUT, ban_seconds: float = DEFAULT_BAN_SECONDS,
                 discover: bool = True, addr_gossip: bool = True, announce_blocks: bool = True,
                 max_outbound: int = 8, max_addresses: int = MAX_ADDRESSES, serve_bytes: float = SERVE_BYTES,
                 max_low_work_headers: int = MAX_LOW_WORK_HEADERS) -> None:
        self.max_in_flight = max_in_flight
        self.block_timeout = block_timeout
        self.handshake_timeout = handshake_timeout
        self.ban_seconds = ban_seconds
        self.discover = discover              # dial addresses learned from peers
        self.addr_gossip = addr_gossip        # ask new peers for addresses (getaddr)
        self.announce_blocks = announce_blocks  # announce new tips (a selfish pool does not)
        self.max_outbound = max_outbound
        self.max_addresses = max_addresses
        # getdata answers per call; the rest waits for ``resume`` (a host without send
        # buffers, like the simulator's links, passes math.inf)
        self.serve_bytes = serve_bytes
        self.max_low_work_headers = max_low_work_headers


class PeerState:
    """What the protocol knows about one link. ``handle`` is the host's name for the peer
    (the node's Peer object, the simulator's node id). Every collection here is bounded
    (module docstring's table) and goes with the state when the peer goes."""

    # The fields every block announcement reads come first: slots are laid out in this
    # order, so these share the object's first cache lines (a large simulation touches
    # thousands of these, each cold).
    __slots__ = ("ready", "best", "best_sent", "unconnecting", "handle", "requested", "stalled", "closed",
                 "last_common", "served_at", "last_block_at", "getdata",
                 "inbound", "host", "port", "dialled", "version", "verack",
                 "known", "score", "score_at", "requested_tx", "deadline",
                 "connected_at", "pending_tx", "getdata_set",
                 "inv_bucket", "unknown_bucket", "addr_bucket", "sent_addr", "low_work", "low_work_work",
                 "last_tx_at", "__weakref__")

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
        self.requested_tx: dict[Any, float] = {}  # txid -> when we asked (at most MAX_TX_IN_FLIGHT)
        self.pending_tx: dict[Any, None] = {}     # announced, not yet asked (at most MAX_TX_ANNOUNCEMENTS)
        self.best: IndexEntry | None = None   # the most-work block we know the peer has
        self.best_sent: IndexEntry | None = None  # the last block header we sent it
        self.last_common: IndexEntry | None = None  # the last block of its best chain we have too
        self.deadline = deadline              # the handshake must be done by then
        self.connected_at = now
        self.unconnecting = 0                 # headers messages in a row that did not connect
        self.stalled: dict[bytes, float] = {}  # blocks it failed to deliver -> not asked again until
        self.getdata: deque | None = None     # items still to serve (created when needed)
        self.getdata_set: set | None = None
        self.inv_bucket = Bucket(INV_BURST, INV_RATE, now)
        self.unknown_bucket = Bucket(UNKNOWN_BURST, UNKNOWN_RATE, now)
        self.addr_bucket = Bucket(ADDR_BURST, ADDR_RATE, now)
        self.sent_addr = False                # answered its getaddr already
        self.low_work: list | None = None     # headers of a branch without enough work yet
        self.low_work_work = 0                # the chainwork at its last header
        self.last_block_at = 0.0              # when it last gave us a new block (eviction)
        self.last_tx_at = 0.0                 # ... a new transaction
        self.served_at = 0.0                  # when we last served it a block

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

    # Slots for the state every message reads (a ``__dict__`` keeps the rest open): one
    # memory access per field instead of two, when a large simulation's thousand
    # protocols take turns.
    __slots__ = ("peers", "chain", "in_flight", "_ready", "config", "reports", "genesis_hash", "network", "nonce",
                 "user_agent", "listen_port", "addresses", "bans", "denied", "connect", "dialing",
                 "dial_failures", "self_addr", "__dict__", "__weakref__")

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
        self.dialing: set[tuple[str, int]] = set()       # learned addresses the host is trying now
        self.dial_failures: dict[tuple[str, int], tuple[int, float]] = {}  # addr -> (failures, retry at)
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
        bans = self.bans
        bans.pop(key, None)
        bans[key] = now + (self.config.ban_seconds if seconds is None else seconds)
        if len(bans) > MAX_BANS:   # one identity per port on loopback: keep the list bounded
            del bans[next(iter(bans))]
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
                    if state.unconnecting:
                        state.unconnecting = 0
                    # (Identity tests first, where they settle the comparison -- a child has
                    # more work than its parent, and the tip no more than itself -- so the
                    # usual announcement reads no chainwork at all.)
                    best = state.best
                    if best is not entry and (best is None or best is entry.parent
                                              or entry.chainwork > best.chainwork):
                        state.best = best = entry
                    tip = tree.tip
                    # (``_request_blocks`` would find nothing to ask for when the peer's best
                    # is the next block and it is already on its way: the usual case.)
                    if best is not tip and best.chainwork > tip.chainwork \
                            and (best.parent is not tip or best.hash not in self.in_flight):
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
            requested_tx = state.requested_tx
            if requested_tx:
                for txid, asked in list(requested_tx.items()):
                    if now - asked >= TX_REQUEST_TIMEOUT:   # never answered: forget it
                        del requested_tx[txid]
            if state.pending_tx and len(requested_tx) < MAX_TX_IN_FLIGHT:
                self._request_txs(state, now, out)
        self._request_blocks_from_all(now, out)
        if self.config.discover:
            self._dial_more(now, out)
        return out

    def local_block(self, block: Any, now: float) -> tuple[Any, list[_Action]]:
        """A block of our own (mined, or submitted by the operator): accept and announce."""
        out: list[_Action] = []
        tree = self.chain.tree
        old_tip = tree.tip
        result = self.chain.accept_block(block, int(now))
        if tree.tip is not old_tip:
            self._announce_tip(old_tip, None, out)
        return result, out

    def tip_changed(self, old_tip: IndexEntry, now: float) -> list[_Action]:
        """The chain moved its tip by itself (activation retried after a failed write):
        announce the new one."""
        out: list[_Action] = []
        if self.chain.tree.tip is not old_tip:
            self._announce_tip(old_tip, None, out)
        self._request_blocks_from_all(now, out)
        return out

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

    def resume(self, peer: Hashable, now: float) -> list[_Action]:
        """The host drained ``peer``'s send buffer: serve the next part of what it asked
        for (Bitcoin Core: ProcessGetData once fPauseSend is clear)."""
        state = self.peers.get(peer)
        out: list[_Action] = []
        if state is not None and not state.closed and state.getdata:
            self._serve_queued(state, now, out)
        return out

    def pending_getdata(self, peer: Hashable) -> int:
        """How many items ``peer`` asked for that are still to be served."""
        state = self.peers.get(peer)
        return len(state.getdata) if state is not None and state.getdata else 0

    def dial_ended(self, addr: tuple[str, int], connected: bool, now: float) -> None:
        """The host's attempt at ``addr`` (a :class:`Dial`) is over: the link never came up
        (``connected`` False: retry later with backoff, forget the address after
        ``MAX_DIAL_FAILURES``), or it came up and has now closed."""
        self.dialing.discard(addr)
        if connected:
            self.dial_failures.pop(addr, None)
            return
        failures = self.dial_failures.get(addr, (0, 0.0))[0] + 1
        if failures >= MAX_DIAL_FAILURES:
            self.dial_failures.pop(addr, None)
            self.addresses.pop(addr, None)
        else:
            self.dial_failures[addr] = (failures, now + DIAL_RETRY * 2 ** (failures - 1))

    def eviction_candidate(self, now: float) -> Hashable | None:
        """An inbound peer to drop so a newcomer can have its slot, or None (Bitcoin Core:
        AttemptToEvictConnection, without netgroups: every test peer is 127.0.0.1).

        Protected: peers that gave us one of the latest blocks or transactions, peers we
        are downloading blocks from, and peers we served a block to lately. Among the
        rest the choice falls on one that has not finished its handshake, then on the
        highest score, then on the youngest link."""
        inbound = [s for s in self.peers.values() if s.inbound and not s.closed]
        if not inbound:
            return None
        protected: set[int] = set()
        for key in (lambda s: s.last_block_at, lambda s: s.last_tx_at, lambda s: s.served_at):
            recent = sorted((s for s in inbound if key(s) > 0), key=key, reverse=True)[:PROTECT_RECENT]
            protected.update(id(s) for s in recent)
        candidates = [s for s in inbound if id(s) not in protected and not s.requested]
        if not candidates:
            return None
        victim = max(candidates, key=lambda s: (not s.ready, s.current_score(now), s.connected_at))
        return victim.handle

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
        addr = valid_address(state.listen_addr) if state.listen_addr is not None else None
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
        book = self.addresses
        if addr in book or len(book) < self.config.max_addresses:
            book[addr] = now

    def _on_getaddr(self, state: PeerState, msg: m.GetAddr, now: float, out: list) -> None:
        if state.sent_addr:               # once per link (Bitcoin Core answers inbound once)
            return
        state.sent_addr = True
        own = state.listen_addr
        addrs = []
        for a in self.addresses:
            if a != own:
                addrs.append(a)
                if len(addrs) >= m.MAX_ADDRS:
                    break
        out.append(Send(state.handle, m.Addr(addrs)))

    def _on_addr(self, state: PeerState, msg: m.Addr, now: float, out: list) -> None:
        """Learn valid IP:port addresses, as many as the peer's bucket allows; they are
        dialled from ``tick``, a few at a time."""
        addrs = msg.addrs
        over = state.addr_bucket.take(len(addrs) or 1, now)
        if over:
            self._misbehave(state, Misbehavior.ADDR_FLOOD, f"addr flood ({len(addrs)} addresses)", now, out)
            if state.closed or over >= len(addrs):
                return
            addrs = addrs[: len(addrs) - int(over)]
        book = self.addresses
        cap = self.config.max_addresses
        for raw in addrs:
            addr = valid_address(raw)
            if addr is None or addr in book:
                continue
            if len(book) >= cap:
                break
            book[addr] = now

    def _dial_more(self, now: float, out: list) -> None:
        """Dial learned addresses while we have fewer than ``max_outbound`` outbound links,
        at most ``DIALS_PER_TICK`` new attempts per tick, each address only when its
        backoff has passed."""
        outbound = sum(1 for p in self.peers.values() if not p.inbound and not p.closed)
        wanted = min(DIALS_PER_TICK, self.config.max_outbound - outbound - len(self.dialing))
        if wanted <= 0 or not self.addresses:
            return
        linked = {p.listen_addr for p in self.peers.values() if not p.closed}
        skip = self.denied
        failures = self.dial_failures
        for addr in self.addresses:
            if addr in linked or addr in self.dialing or addr in skip or addr == self.self_addr:
                continue
            if addr in self.connect:
                continue
            failed = failures.get(addr)
            if failed is not None and failed[1] > now:
                continue
            if self.is_banned(addr[0], addr[1], now):
                continue
            self.dialing.add(addr)
            self.reports += 1
            out.append(Dial(addr))
            wanted -= 1
            if wanted <= 0:
                break

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
        tree = chain.tree
        entries = tree.entries
        headers = msg.headers
        if not headers:
            return
        first = headers[0]
        parent = entries.get(first.prev_hash)
        known = entries.get(first.hash)
        single = len(headers) == 1
        if single and known is None and parent is not None and state.low_work is None \
                and parent.chainwork >= tree.tip.chainwork:
            pass          # one new header on top of our best block: the usual announcement
        elif known is None or known.status in _FAILED or not single:
            # Something new: the headers must form one chain, and that chain must carry
            # enough work before any of it is stored.
            prev = first.hash
            for header in headers[1:]:
                if header.prev_hash != prev:
                    state.low_work = None
                    self._misbehave(state, Misbehavior.NONCONTINUOUS_HEADERS, "headers that do not form a chain",
                                    now, out)
                    return
                prev = header.hash
            buffered = state.low_work
            if parent is None and buffered and buffered[-1].hash == first.prev_hash:
                base_work = state.low_work_work          # more of a branch we hold for this peer
            else:
                if buffered:
                    # It left the low-work branch it was sending us for another: an honest
                    # peer answers our getheaders with the rest of the branch.
                    state.low_work = None
                    self._misbehave(state, Misbehavior.LOW_WORK_HEADERS,
                                    f"abandoned a branch of {len(buffered)} headers with too little work", now, out)
                    if state.closed:
                        return
                buffered = None
                if parent is None:
                    self._unconnecting(state, first.hash, now, out)
                    return
                base_work = parent.chainwork
            last = known if single else entries.get(headers[-1].hash)
            if last is None or last.status in _FAILED:
                work = base_work
                for header in headers:
                    work += _block_work(header.bits)   # claimed: the proof is checked when stored
                # (More work than our tip -- a block on top of it, the usual case -- needs
                # no threshold.)
                if work <= tree.tip.chainwork and work < self._anti_dos_work():
                    self._low_work(state, headers, work, now, out)
                    return
                if buffered:                             # the branch got there: store it all
                    headers = buffered + headers
                    state.low_work = None
        last = None
        for header in headers:
            h = header.hash
            entry = entries.get(h)
            if entry is None or entry.status in _FAILED:
                result = chain.accept_header(header, int(now))
                status = result.status
                if status is BlockStatus.INVALID:
                    penalty = penalty_for(result.reason, Misbehavior.INVALID_HEADER)
                    if penalty is not None:
                        self._misbehave(state, penalty, f"invalid header {h[::-1].hex()[:16]}: {result.reason}", now, out)
                        return
                    break                  # e.g. too far in the future: not stored, not punished
                if status is BlockStatus.ORPHAN:
                    self._unconnecting(state, h, now, out)
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
        if len(msg.headers) == m.MAX_HEADERS:
            out.append(Send(state.handle, m.GetHeaders(tree.locator(last))))

    def _unconnecting(self, state: PeerState, stop: bytes, now: float, out: list) -> None:
        """Headers that do not connect: ask for what is in between (the peer may have
        announced a block whose parent it thought we had). Bitcoin only punishes a peer
        that keeps doing it."""
        state.unconnecting += 1
        if state.unconnecting % MAX_UNCONNECTING_HEADERS == 0:
            self._misbehave(state, Misbehavior.UNCONNECTING_HEADERS,
                            f"{state.unconnecting} headers messages that do not connect", now, out)
            if state.closed:
                return
        out.append(Send(state.handle, m.GetHeaders(self._sync_locator(), stop)))

    def _anti_dos_work(self) -> int:
        """The work a new branch must reach before its headers are stored: our tip's,
        less ``LOW_WORK_MARGIN`` blocks (Bitcoin Core: GetAntiDoSWorkThreshold)."""
        tip = self.chain.tree.tip
        return tip.chainwork - LOW_WORK_MARGIN * _block_work(tip.header.bits)

    def _low_work(self, state: PeerState, headers: list, work: int, now: float, out: list) -> None:
        """A branch without enough work (yet). A full message may have more behind it:
        hold the headers (bounded) and ask for the rest; otherwise the peer has told us
        all it has, and it is not worth storing."""
        buffered = state.low_work
        held = (len(buffered) if buffered else 0) + len(headers)
        if len(headers) == m.MAX_HEADERS and held <= self.config.max_low_work_headers:
            state.low_work = (buffered or []) + list(headers)
            state.low_work_work = work
            out.append(Send(state.handle, m.GetHeaders([headers[-1].hash])))
            return
        state.low_work = None
        self._misbehave(state, Misbehavior.LOW_WORK_HEADERS,
                        f"{held} headers of a branch with too little work", now, out)

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
        tip = tree.tip
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
        old_tip = tree.tip
        result = self.chain.accept_block(block, int(now))
        status = result.status
        if status is _ST_INVALID:
            penalty = penalty_for(result.reason, Misbehavior.INVALID_BLOCK)
            if penalty is not None:
                self._misbehave(state, penalty,
                                f"invalid block {h[::-1].hex()[:16]}: {result.reason} {result.message}".rstrip(), now, out)
            return
        if status is _ST_CONNECTED or status is _ST_SIDE_BRANCH:
            state.last_block_at = now
        elif status is _ST_ORPHAN:
            out.append(Send(state.handle, m.GetHeaders(self._sync_locator(), h)))
        if tree.tip is not old_tip:
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
        tip = tree.tip
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
        items = msg.items
        over = state.inv_bucket.take(len(items), now)
        if over:
            self._misbehave(state, Misbehavior.INV_FLOOD, f"inv flood ({len(items)} items)", now, out)
            if state.closed or over >= len(items):
                return
            items = items[: len(items) - int(over)]
        chain = self.chain
        entries = chain.tree.entries
        unknown_block = None
        pending = state.pending_tx
        for kind, h in items:
            if kind == m.INV_BLOCK:
                if h in entries:
                    self._note_peer_has(state, h)
                else:
                    unknown_block = h
            else:
                state.add_known(h)
                if h in state.requested_tx or h in pending or len(pending) >= MAX_TX_ANNOUNCEMENTS or chain.has_tx(h):
                    continue
                pending[h] = None
        if unknown_block is not None:
            out.append(Send(state.handle, m.GetHeaders(self._sync_locator(), unknown_block)))
        else:
            self._request_blocks(state, now, out)
        if pending:
            self._request_txs(state, now, out)

    def _request_txs(self, state: PeerState, now: float, out: list) -> None:
        """Ask for announced transactions, at most ``MAX_TX_IN_FLIGHT`` at a time."""
        pending = state.pending_tx
        requested = state.requested_tx
        want = []
        while pending and len(requested) < MAX_TX_IN_FLIGHT and len(want) < m.MAX_INV_ITEMS:
            txid = next(iter(pending))
            del pending[txid]
            if self.chain.has_tx(txid):
                continue
            requested[txid] = now
            want.append((m.INV_TX, txid))
        if want:
            out.append(Send(state.handle, m.GetData(want)))

    def _on_getdata(self, state: PeerState, msg: m.GetData, now: float, out: list) -> None:
        """Serve what the peer asks for, ``serve_bytes`` at a time: what does not fit waits
        in the peer's queue (bounded; a duplicate of an item waiting there is dropped)
        until the host, its send buffer drained, calls ``resume``."""
        items = msg.items
        if state.getdata or len(items) > 1:
            self._queue_getdata(state, items, now, out)
            if not state.closed:
                self._serve_queued(state, now, out)
            return
        kind, h = items[0]                   # one item, nothing waiting: the usual case
        if kind == m.INV_BLOCK:              # (``_serve_item`` inline for a block we have)
            chain = self.chain
            entry = chain.tree.entries.get(h)
            reply = chain.block_message(h) if entry is not None and entry.have_data else None
            if reply is not None:
                state.served_at = now
                out.append(Send(state.handle, reply))
                return
        self._serve_item(state, kind, h, now, out, None)

    def _queue_getdata(self, state: PeerState, items: list, now: float, out: list) -> None:
        queue = state.getdata
        if queue is None:
            queue = state.getdata = deque()
            state.getdata_set = set()
        seen = state.getdata_set
        room = MAX_GETDATA_QUEUE - len(queue)
        refused = 0
        for item in items:
            if item in seen:
                continue
            if room <= 0:
                refused += 1
                continue
            seen.add(item)
            queue.append(item)
            room -= 1
        if refused:
            self._misbehave(state, Misbehavior.GETDATA_EXCESS,
                            f"getdata for {refused} more items than the {MAX_GETDATA_QUEUE} we queue", now, out)

    def _serve_queued(self, state: PeerState, now: float, out: list) -> None:
        queue = state.getdata
        seen = state.getdata_set
        budget = self.config.serve_bytes
        missing: list = []
        while queue and budget > 0 and not state.closed:
            item = queue.popleft()
            seen.discard(item)
            reply = self._serve_item(state, item[0], item[1], now, out, missing)
            if reply is not None:
                budget -= reply.size
        if missing:
            self._not_found(state, missing, now, out)

    def _serve_item(self, state: PeerState, kind: int, h: bytes, now: float, out: list,
                    missing: list | None) -> m.Message | None:
        """Send one item (a block or a transaction); returns the message sent. A miss goes
        to ``missing`` (one notfound for a batch) or, alone, straight into a notfound."""
        chain = self.chain
        if kind == m.INV_BLOCK:
            entry = chain.tree.entries.get(h)
            reply = chain.block_message(h) if entry is not None and entry.have_data else None
            if reply is not None:
                state.served_at = now
        else:
            tx = chain.get_tx(h)
            reply = m.TxMessage(tx) if tx is not None else None
        if reply is None:
            if missing is None:
                self._not_found(state, [(kind, h)], now, out)
            else:
                missing.append((kind, h))
            return None
        out.append(Send(state.handle, reply))
        return reply

    def _not_found(self, state: PeerState, missing: list, now: float, out: list) -> None:
        over = state.unknown_bucket.take(len(missing), now)
        if over:
            self._misbehave(state, Misbehavior.GETDATA_UNKNOWN_FLOOD,
                            f"getdata for {len(missing)} items we do not have", now, out)
            if state.closed:
                return
            missing = missing[: len(missing) - int(over)]
        if missing:
            out.append(Send(state.handle, m.NotFound(missing)))

    def _on_notfound(self, state: PeerState, msg: m.NotFound, now: float, out: list) -> None:
        for kind, h in msg.items:
            if kind == m.INV_BLOCK:
                if state.requested.pop(h, None) is not None and self.in_flight.get(h) is state:
                    del self.in_flight[h]
            else:
                state.requested_tx.pop(h, None)
        if state.pending_tx:
            self._request_txs(state, now, out)
        self._request_blocks_from_all(now, out)

    def _on_tx(self, state: PeerState, msg: m.TxMessage, now: float, out: list) -> None:
        tx = msg.tx
        txid = tx.txid
        state.add_known(txid)
        state.requested_tx.pop(txid, None)
        reason = self.chain.accept_tx(tx, int(now))
        if reason is None:
            state.last_tx_at = now
            self._announce_tx(tx, state, out)
        else:
            penalty = penalty_for(reason, Misbehavior.INVALID_TX)
            if penalty is not None:
                self._misbehave(state, penalty, f"invalid transaction: {reason}", now, out)
                if state.closed:
                    return
        if state.pending_tx:
            self._request_txs(state, now, out)

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
# BlockStatus members as module constants: the block path runs once per block per node.
_ST_CONNECTED, _ST_SIDE_BRANCH = BlockStatus.CONNECTED, BlockStatus.SIDE_BRANCH
_ST_INVALID, _ST_ORPHAN = BlockStatus.INVALID, BlockStatus.ORPHAN



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
