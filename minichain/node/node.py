"""The node's IO shell: sockets, tasks, timers, the API and the miner, on one asyncio loop.

What a node *decides* about its peers -- handshake, sync, relay, stalls, orphans,
addresses, misbehaviour and bans -- is the sans-IO :class:`~minichain.node.protocol.PeerProtocol`
(the simulator runs the same object). This module feeds it: a decoded frame from a
socket with the wall-clock time, a link that opened or closed, a tick every second, a
block our miner found; and it carries out what comes back -- send a frame, close a
link, dial an address -- and logs the reports.

Everything that changes the chain or the mempool runs on the event loop thread, one
message at a time, so the chain state needs no lock. Mining threads only hash; a block
they find is handed back to the loop (``call_soon_threadsafe``) and enters through the
same door as a block from a peer. The chain state writes a block before the protocol's
announcements of it are sent (persist, then speak).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import aiohttp
from aiohttp import web

from minichain import __version__
from minichain.core.block import Block
from minichain.core.encoding import DecodeError
from minichain.core.sigcache import SignatureCache, SignatureChecker
from minichain.core.tx import Transaction
from minichain.chainstate import AcceptResult, BlockStatus, ChainState, Mempool
from minichain.chainstate.state import EVERY_BATCH, NODE_FLUSH, FlushPolicy
from minichain.node import messages as m
from minichain.node.backend import NodeChain
from minichain.node.lag import LagMonitor
from minichain.node.listener import ACCEPT_BACKLOG, FD_RESERVE, ConnectionGuard, quiet_accept_errors, raise_fd_limit
from minichain.node.logs import event
from minichain.node.metrics import DIAL, DISCONNECT, MISBEHAVED, PEER_READY, SEND, NodeMetrics
from minichain.node.peer import DRAIN_TIMEOUT, Peer
from minichain.node.protocol import (
    DEFAULT_BAN_SECONDS,
    Dial,
    Disconnect,
    Misbehaved,
    Misbehavior,
    PeerProtocol,
    PeerReady,
    ProtocolConfig,
    Send,
)
from minichain.node.view import NodeControl, NodeView
from minichain.params import Params
from minichain.node.protocol import valid_address
from minichain.store.interface import ChainStore, StoreError

log = logging.getLogger("minichain.node")

USER_AGENT = f"/minichain:{__version__}/"
TICK = 1.0                    # seconds between the protocol's ticks
RECONNECT_MIN, RECONNECT_MAX = 0.5, 30.0
P2P_PATH = "/p2p"
MAX_ARRIVALS = 2000           # block first-arrival times kept for /api/arrivals
TX_RELAY_DELAY = 0.1          # seconds our own transactions wait to be announced together
# At most this many announced per relay tick (Bitcoin: INVENTORY_BROADCAST_MAX): a peer's
# getdata for them is answered at once, and must fit its send queue (peer.SEND_QUEUE).
TX_RELAY_MAX = 500


def parse_hostport(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """'HOST:PORT', ':PORT' or 'PORT' -> (host, port); ValueError with a reason otherwise."""
    text = text.strip()
    host, sep, port_s = text.rpartition(":")
    if not sep:
        host, port_s = "", text
    host = host.strip("[]") or default_host
    try:
        port = int(port_s)
    except ValueError:
        raise ValueError(f"{text!r} is not HOST:PORT (the port must be a number)") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 0..65535")
    return host, port


@dataclass
class NodeConfig:
    params: Params
    datadir: str
    listen: tuple[str, int] = ("127.0.0.1", 0)
    api: tuple[str, int] | None = ("127.0.0.1", 0)
    connect: list[tuple[str, int]] = field(default_factory=list)
    discover: bool = True          # also dial addresses learned from peers
    max_outbound: int = 8
    max_inbound: int = 32
    mine: bool = False
    mining_address: str | None = None
    threads: int = 1
    duty: float = 1.0              # fraction of time the miner hashes (models a hash-power share)
    mempool_bytes: int = 5_000_000
    ban_seconds: float = DEFAULT_BAN_SECONDS
    store: str = "leveldb"         # or "memory"
    ping_interval: float = 30.0    # WebSocket heartbeat: a peer that misses a pong is dropped (not banned)
    idle_timeout: float = 30.0     # a connection that completes no request in this long is closed
    max_api_connections: int = 64
    drain_timeout: float = DRAIN_TIMEOUT   # a peer over its send budget this long is dropped
    flush: FlushPolicy = NODE_FLUSH  # when a LevelDB store is written (chainstate/state.py)
    assume_valid: bytes | None = None  # skip signature checks below this block (opt-in)


class Node:
    def __init__(self, config: NodeConfig, store: ChainStore | None = None) -> None:
        self.config = config
        self.params = config.params
        # The node's own LevelDB store is written through a window of blocks (a memory
        # store, or one a test hands in, takes every batch at once).
        flush = config.flush if store is None and config.store == "leveldb" else EVERY_BATCH
        if store is None:
            store = open_store(config)
        self.metrics = NodeMetrics(NodeView(self))   # served at /metrics (node/metrics.py)
        if hasattr(store, "on_write"):
            store.on_write = self.metrics.store_write.observe   # LevelDB batch write times
        self.sigcache = SignatureCache()
        self.chain = ChainState(store, self.params, checker=SignatureChecker(self.sigcache), flush=flush,
                                assume_valid=config.assume_valid)
        self.chain.activate_best_chain()  # finish a reorganisation a crash interrupted
        self.mempool = Mempool(self.params, max_bytes=config.mempool_bytes,
                               checker=SignatureChecker(self.sigcache))
        self.index = self.chain.index  # txid and address indexes, kept in the chain state's batches
        self.backend = NodeChain(self.chain, self.mempool, on_block=self._block_accepted, on_tx=self._tx_admitted,
                                 on_tx_rejected=self._tx_rejected)
        self.protocol = PeerProtocol(
            self.backend, genesis_hash=self.chain.genesis.hash, nonce=random.getrandbits(64),
            user_agent=USER_AGENT, network=self.params.name, connect=config.connect,
            config=ProtocolConfig(ban_seconds=config.ban_seconds, discover=config.discover,
                                  max_outbound=config.max_outbound),
        )
        self.peers: list[Peer] = []          # open links (the protocol keeps their state)
        self.listen_port = 0
        self.api_port = 0
        self.started = time.time()
        self.miner: Any = None
        self.mining_pkh: bytes | None = None
        self.hashes_done = 0                 # by miners that have stopped (metrics: hashes total)
        # Traffic counters and first-arrival times, for the network benchmark and status.
        self.blocks_announced = 0
        self.blocks_received = 0
        self.block_bytes_received = 0
        self.arrivals: OrderedDict[bytes, float] = OrderedDict()
        self.listeners: list[Callable[[str, dict], None]] = []
        self.lag = LagMonitor(observe=self.metrics.loop_lag.observe)  # event-loop lag, in /api/status and /metrics
        self._tasks: list[asyncio.Task] = []
        self._runners: list[web.AppRunner] = []
        self._session: aiohttp.ClientSession | None = None
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._extra_nonce = 0
        self._source: Peer | None = None     # the peer whose message is being handled
        self._servers: list[asyncio.base_events.Server] = []
        self._store_failed = False           # a write failed: retry the activation on ticks
        self._mining_waits = False           # chain time ran ahead of the clock: the miner waits
        self._relay_queue: list[Transaction] = []  # our users' transactions, announced per tick

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        quiet_accept_errors(loop)
        config = self.config
        # Connections may use the descriptors the process has, less a reserve for the
        # database and outbound links; each listener has its own cap within that.
        guard = ConnectionGuard(raise_fd_limit() - FD_RESERVE - config.max_outbound)
        self._session = aiohttp.ClientSession()
        self._spawn(self.lag.run())
        p2p = web.Application()
        p2p.router.add_get(P2P_PATH, self._accept_ws)
        runner = web.AppRunner(p2p, access_log=None, keepalive_timeout=config.idle_timeout)
        await runner.setup()
        self._runners.append(runner)
        # Twice the inbound slots: room for newcomers that evict someone, and for
        # handshakes in progress; beyond that a connection is closed on accept.
        self.listen_port = await self._listen(runner, config.listen, guard.wrap(
            runner.server, 2 * config.max_inbound + 8, "p2p"))
        self.protocol.listen_port = self.listen_port
        self.protocol.self_addr = (config.listen[0], self.listen_port)
        if config.api is not None:
            from minichain.node.api import make_api

            api_runner = web.AppRunner(make_api(self.view(), NodeControl(self)), access_log=None,
                                       keepalive_timeout=config.idle_timeout)
            await api_runner.setup()
            self._runners.append(api_runner)
            self.api_port = await self._listen(api_runner, config.api, guard.wrap(
                api_runner.server, config.max_api_connections, "api"))
        p2p = f"{self.config.listen[0]}:{self.listen_port}"
        api = f"{self.config.api[0]}:{self.api_port}" if self.config.api else "off"
        log.info("node %s on %s: p2p %s, api %s, height %d", USER_AGENT, self.params.name, p2p, api, self.chain.height,
                 extra=event("node_started", version=USER_AGENT, network=self.params.name, p2p=p2p, api=api,
                             height=self.chain.height))
        for addr in list(self.protocol.connect):
            self._spawn(self._keep_connected(addr))
        self._spawn(self._housekeeping())
        if self.config.mine:
            self.start_mining(self.config.mining_address, self.config.threads, self.config.duty)

    async def _listen(self, runner: web.AppRunner, addr: tuple[str, int], factory: Callable) -> int:
        server = await asyncio.get_running_loop().create_server(factory, addr[0], addr[1], backlog=ACCEPT_BACKLOG)
        self._servers.append(server)
        return server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop mining, close peers, then close the database (after the last write)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.stop_mining()
        for server in self._servers:
            server.close()
        for peer in list(self.peers):
            peer.close("shutting down")
        await asyncio.gather(*(p.wait_closed() for p in list(self.peers)), return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for runner in self._runners:
            await runner.cleanup()
        if self._session is not None:
            await self._session.close()
        log.info("node stopped at height %d", self.chain.height, extra=event("node_stopped", height=self.chain.height))
        self.chain.close()
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    def view(self) -> NodeView:
        """What the API and the explorer may read of this node (node/view.py)."""
        return NodeView(self)

    def request_stop(self) -> None:
        asyncio.get_running_loop().create_task(self.stop())

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)
        return task

    # -- events for the API's live feed -------------------------------------------------------

    def _emit(self, kind: str, data: dict) -> None:
        for listener in list(self.listeners):
            try:
                listener(kind, data)
            except Exception:  # a broken listener must not break the node
                log.exception("event listener failed")

    # -- carrying out the protocol's effects ----------------------------------------------------

    def _execute(self, effects: Iterable[Any]) -> None:
        counts = self.metrics.effects
        for effect in effects:
            cls = effect.__class__
            if cls is Send:
                counts[SEND] += 1
                msg = effect.msg
                if msg.__class__ is m.Headers:
                    self.blocks_announced += len(msg.headers)
                elif msg.__class__ is m.Inv and msg.items[0][0] == m.INV_BLOCK:
                    self.blocks_announced += 1
                effect.dst.send(msg)
            elif cls is Disconnect:
                counts[DISCONNECT] += 1
                effect.peer.close(effect.reason)
            elif cls is Misbehaved:
                counts[MISBEHAVED] += 1
                code = effect.reason.code
                self.metrics.misbehaved(code, effect.banned)
                log.warning("peer %s misbehaved (%s, +%d = %d): %s%s", effect.peer.name, code,
                            effect.reason.score, effect.score, effect.detail, "; banned" if effect.banned else "",
                            extra=event("misbehaved", peer=effect.peer.name, reason=code, score=effect.score,
                                        banned=effect.banned, detail=effect.detail))
            elif cls is PeerReady:
                counts[PEER_READY] += 1
                peer = effect.peer
                version = peer.state.version
                direction = "inbound" if peer.inbound else "outbound"
                log.info("peer %s connected (%s, height %d, %s)", peer.name, direction, version.best_height,
                         version.user_agent, extra=event("peer_connected", peer=peer.name, direction=direction,
                                                         height=version.best_height, user_agent=version.user_agent))
                self._emit("peer", {"address": peer.name, "connected": True})
            elif cls is Dial:
                counts[DIAL] += 1
                if self._stopping.is_set():
                    self.protocol.dial_ended(effect.addr, False, time.time())
                else:
                    self._spawn(self._dial_once(effect.addr))
            else:
                raise TypeError(f"unknown protocol effect {effect!r}")

    # -- connections --------------------------------------------------------------------------

    def is_banned(self, host: str, port: int | None) -> bool:
        return self.protocol.is_banned(host, port, time.time())

    def ban(self, host: str, port: int | None, seconds: float | None = None) -> None:
        self.metrics.bans.labels("operator").inc()
        self._execute(self.protocol.ban(host, port, time.time(), seconds))

    async def _accept_ws(self, request: web.Request) -> web.StreamResponse:
        host, port = request.transport.get_extra_info("peername")[:2] if request.transport else ("?", 0)
        if self.is_banned(host, None) and not host.startswith("127."):
            return web.Response(status=403, text="banned")
        inbound = [p for p in self.peers if p.inbound and not p.closed]
        if len(inbound) >= self.config.max_inbound:
            # Full: make room by evicting an inbound peer the protocol can spare (Bitcoin
            # Core: AttemptToEvictConnection), so idle links cannot lock newcomers out.
            victim = self.protocol.eviction_candidate(time.time())
            if victim is None:
                return web.Response(status=503, text="too many inbound peers")
            log.info("evicting inbound peer %s for a new one", victim.name)
            victim.close("evicted for a new inbound peer")
        ws = web.WebSocketResponse(max_msg_size=m.MAX_FRAME_SIZE, heartbeat=self.config.ping_interval)
        await ws.prepare(request)
        peer = Peer(ws, host, port, inbound=True, traffic=self.metrics.traffic)
        await self._run_peer(peer)
        return ws

    async def connect(self, addr: tuple[str, int]) -> Peer | None:
        """Dial ``addr`` once; returns the peer after its session ended (or None)."""
        assert self._session is not None
        host = f"[{addr[0]}]" if ":" in addr[0] else addr[0]
        url = f"http://{host}:{addr[1]}{P2P_PATH}"
        try:
            ws = await self._session.ws_connect(url, max_msg_size=m.MAX_FRAME_SIZE, heartbeat=self.config.ping_interval,
                                                timeout=aiohttp.ClientWSTimeout(ws_close=5))
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            log.debug("cannot reach %s:%d: %s", addr[0], addr[1], exc)
            return None
        peer = Peer(ws, addr[0], addr[1], inbound=False, dialled=addr, traffic=self.metrics.traffic)
        await self._run_peer(peer)
        return peer

    async def _keep_connected(self, addr: tuple[str, int]) -> None:
        """Keep one outbound link to ``addr`` while it is wanted, reconnecting with
        exponential backoff."""
        delay = RECONNECT_MIN
        protocol = self.protocol
        while not self._stopping.is_set() and addr in protocol.connect:
            if addr in protocol.denied or self.is_banned(*addr) or protocol.connected_to(addr):
                await asyncio.sleep(1.0)
                continue
            began = time.monotonic()
            await self.connect(addr)
            if time.monotonic() - began > 10:
                delay = RECONNECT_MIN  # it was a real session: start the backoff again
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, RECONNECT_MAX)

    async def _dial_once(self, addr: tuple[str, int]) -> None:
        """One attempt at an address the protocol learned (a Dial): it is an IP literal
        and a port (``protocol.valid_address``), never a host string from a peer."""
        connected = False
        try:
            if valid_address(addr) == addr and not self.is_banned(*addr):
                peer = await self.connect(addr)
                connected = peer is not None and peer.state is not None and peer.state.version is not None
        finally:
            self.protocol.dial_ended(addr, connected, time.time())

    def add_peer(self, addr: tuple[str, int]) -> None:
        if self.protocol.add_outbound(addr):
            self._spawn(self._keep_connected(addr))

    def remove_peer(self, addr: tuple[str, int]) -> None:
        self._execute(self.protocol.remove_outbound(addr))

    def set_denied(self, addrs: set[tuple[str, int]]) -> None:
        """Refuse links to and from ``addrs`` (and drop the current ones): a partition."""
        self._execute(self.protocol.set_denied(addrs))

    async def _run_peer(self, peer: Peer) -> None:
        now = time.time()
        peer.connected_at = now
        peer.on_drain = self._drained
        peer.start_writer()
        self.peers.append(peer)
        effects = self.protocol.connected(peer, inbound=peer.inbound, host=peer.host, port=peer.port,
                                          dialled=peer.dialled, now=now)
        peer.state = self.protocol.peers[peer]
        self._execute(effects)
        try:
            await self._read_loop(peer)
        except Exception:  # a bug triggered by one peer must not take the node down
            log.exception("error while serving peer %s", peer.name, extra=event("peer_error", peer=peer.name))
            peer.close("internal error")
        finally:
            was_ready = peer.state.ready
            peer.close(peer.close_reason or "disconnected")
            if peer in self.peers:
                self.peers.remove(peer)
            self._execute(self.protocol.disconnected(peer, time.time()))
            if was_ready or peer.state.version is not None:
                log.info("peer %s disconnected: %s", peer.name, peer.close_reason,
                         extra=event("peer_disconnected", peer=peer.name, reason=peer.close_reason))
                self._emit("peer", {"address": peer.name, "connected": False})
            await peer.wait_closed()

    async def _read_loop(self, peer: Peer) -> None:
        ws = peer.ws
        protocol = self.protocol
        metrics = self.metrics
        received = metrics.traffic.received
        entries = self.chain.tree.entries
        while not peer.closed:
            if peer.paused and not await peer.wait_drained(self.config.drain_timeout):
                # Bitcoin Core stops reading a peer whose send buffer is full (fPauseSend);
                # one that does not read what it asked for is dropped, not banned.
                log.info("peer %s does not drain its send queue (%d bytes); dropping it", peer.name, peer.queued_bytes)
                peer.close("not draining its send queue")
                return
            msg = await ws.receive()
            if peer.closed:
                return                      # what arrives after we closed the link is not read
            if msg.type == aiohttp.WSMsgType.BINARY:
                data = msg.data
                peer.bytes_in += len(data)
                received(data)
                try:
                    decoded = m.decode(data)
                except DecodeError as exc:
                    self._execute(protocol.misbehaving(peer, Misbehavior.MALFORMED_MESSAGE,
                                                       f"malformed frame: {exc}", time.time()))
                    continue
                now = time.time()
                cls = decoded.__class__
                if cls in _ANNOUNCING:
                    metrics.announced(decoded, now, entries)
                    if cls is m.BlockMessage:
                        self.blocks_received += 1
                        self.block_bytes_received += len(data) - 1
                self._source = peer
                try:
                    self._execute(protocol.receive(peer, decoded, now))
                except StoreError as exc:
                    # Not the peer's fault (a full disk): what was not stored is asked for
                    # again, and the activation is retried on the next ticks.
                    self._store_failed = True
                    log.error("cannot store what peer %s sent: %s", peer.name, exc)
                finally:
                    self._source = None
            elif msg.type == aiohttp.WSMsgType.TEXT:
                self._execute(protocol.misbehaving(peer, Misbehavior.TEXT_FRAME, "text frame on a binary protocol",
                                                   time.time()))
            elif msg.type == aiohttp.WSMsgType.ERROR:
                exc = ws.exception()
                reason = _stream_offence(exc)
                text = str(exc) if exc else "websocket error"
                if reason is None:
                    # The link failed (a missed pong, a reset, a timeout): the peer may be
                    # paused, killed or far away. Drop it; do not punish it.
                    peer.close(f"link failed: {text or type(exc).__name__}")
                else:
                    self._execute(protocol.misbehaving(peer, reason, text, time.time()))
                return
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return

    def _drained(self, peer: Peer) -> None:
        """``peer``'s send queue emptied: serve the next part of what it asked for."""
        if self.protocol.pending_getdata(peer):
            self._execute(self.protocol.resume(peer, time.time()))

    # -- blocks and transactions ----------------------------------------------------------------

    def process_block(self, block: Block) -> AcceptResult:
        """A block of our own (mined, generated, or handed in by a test): the chain state
        takes it (and persists it), then the protocol announces a new tip."""
        result, effects = self.protocol.local_block(block, time.time())
        self._execute(effects)
        return result

    def _block_accepted(self, block: Block, result: AcceptResult) -> None:
        """The chain state took a block (from a peer or from us): bookkeeping and the feed."""
        now = time.time()
        self.metrics.block_accepted(result, now)
        if result.status in (BlockStatus.CONNECTED, BlockStatus.SIDE_BRANCH) and block.hash not in self.arrivals:
            self.arrivals[block.hash] = now
            while len(self.arrivals) > MAX_ARRIVALS:
                self.arrivals.popitem(last=False)
        act = result.activation
        source = self._source
        if act.connected or act.disconnected:
            tip = self.chain.tip
            tip_hex = h_hex(tip.hash)
            peer = None if source is None else source.name
            if act.disconnected:
                log.info("reorganised: %d blocks disconnected, %d connected, tip %s at %d", len(act.disconnected),
                         len(act.connected), tip_hex[:16], tip.height,
                         extra=event("reorg", block=tip_hex, height=tip.height, disconnected=len(act.disconnected),
                                     connected=len(act.connected), peer=peer))
            txs = len(act.connected[-1].transactions) if act.connected else 0
            log.info("new tip %s height %d (%d txs)%s", tip_hex[:16], tip.height, txs,
                     "" if source is None else f" from {source.name}",
                     extra=event("tip", block=tip_hex, height=tip.height, txs=txs, peer=peer))
            self._emit("tip", {"hash": tip.hash[::-1].hex(), "height": tip.height,
                               "disconnected": len(act.disconnected), "connected": len(act.connected)})
            if self.miner is not None:
                self._update_mining_work()
        elif result.status is BlockStatus.SIDE_BRANCH:
            self._emit("block", {"hash": h_hex(block.hash), "status": "side-branch"})
        if result.status is BlockStatus.INVALID:
            log.warning("rejected block %s: %s %s", block.hash_hex()[:16], result.reason, result.message,
                        extra=event("block_rejected", block=block.hash_hex(), reason=result.reason,
                                    detail=result.message, peer=None if source is None else source.name))

    def submit_transaction(self, tx: Transaction) -> None:
        """Admit ``tx`` to the mempool (raises MempoolError with a reason) and announce it
        within TX_RELAY_DELAY, together with the others submitted meanwhile (one inv per
        peer, not one per transaction)."""
        self.backend.admit_tx(tx)
        self._relay_queue.append(tx)
        if len(self._relay_queue) == 1:
            self._schedule_relay()

    def _schedule_relay(self) -> None:
        try:
            asyncio.get_running_loop().call_later(TX_RELAY_DELAY, self._relay_queued)
        except RuntimeError:  # no loop running (a test driving the node by hand): now
            self._relay_queued()

    def _relay_queued(self) -> None:
        txs, self._relay_queue = self._relay_queue[:TX_RELAY_MAX], self._relay_queue[TX_RELAY_MAX:]
        if self._stopping.is_set():
            return
        self._execute(self.protocol.relay_txs(txs))
        if self._relay_queue:
            self._schedule_relay()

    def _tx_admitted(self, tx: Transaction, entry: Any) -> None:
        self.metrics.txs_accepted.inc()
        source = self._source
        txid = tx.txid_hex()
        log.debug("accepted tx %s (fee %d)%s", txid[:16], entry.fee, "" if source is None else f" from {source.name}",
                  extra=event("tx", txid=txid, fee=entry.fee, peer=None if source is None else source.name))
        self._emit("tx", {"txid": txid, "fee": entry.fee})

    def _tx_rejected(self, tx: Transaction, reason: str) -> None:
        self.metrics.txs_rejected.labels(reason).inc()

    # -- periodic work ------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        while not self._stopping.is_set():
            await asyncio.sleep(TICK)
            try:
                if self._store_failed:
                    self._retry_activation()
                if self.miner is not None and self._mining_waits:
                    self._update_mining_work()
                self._execute(self.protocol.tick(time.time()))
            except StoreError as exc:
                self._store_failed = True
                log.error("cannot store: %s", exc)
            except Exception:  # one bad tick must not end the ticking
                log.exception("housekeeping failed")

    def _retry_activation(self) -> None:
        """After a failed write: connect what is stored but not yet connected, once the
        disk takes writes again (no restart needed)."""
        old_tip = self.chain.tip
        try:
            self.backend.activate()
        except StoreError as exc:
            log.debug("store still failing: %s", exc)
            return
        self._store_failed = False
        log.info("the store takes writes again (tip %s at %d)", self.chain.tip.hash[::-1].hex()[:16], self.chain.height)
        self._execute(self.protocol.tip_changed(old_tip, time.time()))

    # -- mining -------------------------------------------------------------------------------

    def start_mining(self, address: str | None, threads: int = 1, duty: float = 1.0) -> None:
        from minichain.core.keys import decode_address
        from minichain.mining.miner import Miner

        if not address:
            raise ValueError("mining needs an address to pay (--address)")
        self.mining_pkh = decode_address(address, self.params.address_version)
        if self.miner is not None:
            self.miner.stop()
            self.hashes_done += self.miner.hashes
        loop = asyncio.get_running_loop()

        def found(block: Block) -> None:
            loop.call_soon_threadsafe(self._on_mined, block)

        self.miner = Miner(threads=threads, on_found=found, duty=duty)
        self._update_mining_work()
        log.info("mining to %s on %d thread(s), duty %.0f%%", address, threads, duty * 100,
                 extra=event("mining_started", address=address, threads=threads, duty=duty))

    def stop_mining(self) -> None:
        if self.miner is not None:
            self.miner.stop()
            self.hashes_done += self.miner.hashes
            self.miner = None
            log.info("mining stopped", extra=event("mining_stopped"))

    def _update_mining_work(self) -> None:
        from minichain.mining.template import build_template

        if self.miner is None or self.mining_pkh is None:
            return
        self._extra_nonce += 1
        template = build_template(self.chain, self.mempool, self.mining_pkh, int(time.time()), self._extra_nonce)
        if template.header.time > template.max_time:
            # Blocks found faster than one a second push median-time-past, hence the next
            # block's time, ahead of the clock; past the future-time limit every block
            # would be invalid. Wait for the clock instead of mining them in a loop.
            if not self._mining_waits:
                log.warning("chain time is %d s ahead of the clock: mining waits for the clock to catch up",
                            template.header.time - int(time.time()))
            self._mining_waits = True
            self.miner.set_work(None)
            return
        if self._mining_waits:
            log.info("the clock caught up with the chain: mining again")
            self._mining_waits = False
        self.miner.set_work(template)

    async def generate(self, count: int, pubkey_hash: bytes) -> list[bytes]:
        """Mine ``count`` blocks paying ``pubkey_hash`` now, on all the configured threads
        (Bitcoin: generatetoaddress). Returns the hashes of the blocks mined."""
        from minichain.mining.miner import Miner
        from minichain.mining.template import build_template

        loop = asyncio.get_running_loop()
        found: asyncio.Queue[Block] = asyncio.Queue()
        miner = Miner(threads=max(1, self.config.threads),
                      on_found=lambda b: loop.call_soon_threadsafe(found.put_nowait, b))
        hashes: list[bytes] = []
        try:
            while len(hashes) < count:
                if self._stopping.is_set():
                    break
                self._extra_nonce += 1
                template = build_template(self.chain, self.mempool, pubkey_hash, int(time.time()), self._extra_nonce)
                if template.header.time > template.max_time:   # chain time ahead of the clock: wait
                    await asyncio.sleep(min(5.0, template.header.time - template.max_time))
                    continue
                miner.set_work(template)
                block = await found.get()
                self.metrics.blocks_found.inc()
                self.process_block(block)
                hashes.append(block.hash)
        finally:
            await loop.run_in_executor(None, miner.stop)
            self.hashes_done += miner.hashes
        return hashes

    def _on_mined(self, block: Block) -> None:
        if self._stopping.is_set():
            return
        self.metrics.blocks_found.inc()
        try:
            result = self.process_block(block)
        except StoreError as exc:
            self._store_failed = True
            log.error("cannot store the block we mined: %s", exc)
            return
        if result.status is BlockStatus.CONNECTED:
            log.info("mined block %s at height %d", block.hash_hex()[:16], self.chain.height,
                     extra=event("mined", block=block.hash_hex(), height=self.chain.height, status="connected"))
        else:
            log.info("mined block %s was %s", block.hash_hex()[:16], result.status.value,
                     extra=event("mined", block=block.hash_hex(), status=result.status.value))
            self._update_mining_work()

    # -- status -------------------------------------------------------------------------------

    def status(self) -> dict:
        tip = self.chain.tip
        tree = self.chain.tree
        return {
            "network": self.params.name,
            "version": USER_AGENT,
            "height": tip.height,
            "tip": tip.hash[::-1].hex(),
            "chainwork": hex(tip.chainwork),
            "bits": f"{tip.header.bits:08x}",
            "median_time_past": tree.median_time_past(tip),
            "headers": tree.best_header.height,
            "peers": sum(1 for p in self.peers if p.ready),
            "mempool": {"size": len(self.mempool), "bytes": self.mempool.bytes},
            "mining": self.miner is not None,
            "hashrate": self.miner.hashrate if self.miner is not None else 0.0,
            "orphans": self.chain.orphan_count(),
            "traffic": {"blocks_received": self.blocks_received, "block_bytes_received": self.block_bytes_received,
                        "blocks_announced": self.blocks_announced},
            "p2p_port": self.listen_port,
            "api_port": self.api_port,
            "uptime": time.time() - self.started,
        }


_ANNOUNCING = frozenset({m.Headers, m.Inv, m.BlockMessage})   # messages that name new blocks (metrics)


def _stream_offence(exc: BaseException | None) -> Misbehavior | None:
    """What a WebSocket error says about the peer: a frame over the limit or a broken
    framing is its doing; a missed pong, a timeout or a reset is the link's (a paused or
    killed honest peer looks exactly like that), and is not punished."""
    if exc is None or isinstance(exc, (asyncio.TimeoutError, ConnectionError, OSError)):
        return None
    text = str(exc).lower()
    if "pong" in text or "timeout" in text or "timed out" in text or "reset" in text:
        return None
    if isinstance(exc, aiohttp.WebSocketError) and exc.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG \
            or "size" in text or "too big" in text or "exceeds" in text:
        return Misbehavior.OVERSIZE_MESSAGE
    return Misbehavior.BAD_STREAM


def h_hex(h: bytes) -> str:
    return h[::-1].hex()


def _bound_port(runner: web.AppRunner) -> int:
    """The port a runner's (first) site listens on (the replica host uses it)."""
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return server.sockets[0].getsockname()[1]
    raise RuntimeError("listener has no socket")


def open_store(config: NodeConfig) -> ChainStore:
    if config.store == "memory":
        from minichain.store.memory import MemoryStore

        return MemoryStore()
    from minichain.store.leveldb import LevelDBStore

    os.makedirs(config.datadir, exist_ok=True)
    return LevelDBStore(os.path.join(config.datadir, "chain"), sync=True)
