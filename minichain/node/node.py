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
from minichain.node.peer import Peer
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
from minichain.store.interface import ChainStore

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
        self.sigcache = SignatureCache()
        self.chain = ChainState(store, self.params, checker=SignatureChecker(self.sigcache), flush=flush,
                                assume_valid=config.assume_valid)
        self.chain.activate_best_chain()  # finish a reorganisation a crash interrupted
        self.mempool = Mempool(self.params, max_bytes=config.mempool_bytes,
                               checker=SignatureChecker(self.sigcache))
        self.index = self.chain.index  # txid and address indexes, kept in the chain state's batches
        self.backend = NodeChain(self.chain, self.mempool, on_block=self._block_accepted, on_tx=self._tx_admitted)
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
        # Traffic counters and first-arrival times, for the network benchmark and status.
        self.blocks_announced = 0
        self.blocks_received = 0
        self.block_bytes_received = 0
        self.arrivals: OrderedDict[bytes, float] = OrderedDict()
        self.listeners: list[Callable[[str, dict], None]] = []
        self.lag = LagMonitor()  # event-loop lag, reported in /api/status
        self._tasks: list[asyncio.Task] = []
        self._runners: list[web.AppRunner] = []
        self._session: aiohttp.ClientSession | None = None
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._extra_nonce = 0
        self._source: Peer | None = None     # the peer whose message is being handled
        self._relay_queue: list[Transaction] = []  # our users' transactions, announced per tick

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._spawn(self.lag.run())
        p2p = web.Application()
        p2p.router.add_get(P2P_PATH, self._accept_ws)
        runner = web.AppRunner(p2p, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.config.listen[0], self.config.listen[1])
        await site.start()
        self._runners.append(runner)
        self.listen_port = _bound_port(runner)
        self.protocol.listen_port = self.listen_port
        self.protocol.self_addr = (self.config.listen[0], self.listen_port)
        if self.config.api is not None:
            from minichain.node.api import make_api

            api_runner = web.AppRunner(make_api(self.view(), NodeControl(self)), access_log=None)
            await api_runner.setup()
            await web.TCPSite(api_runner, self.config.api[0], self.config.api[1]).start()
            self._runners.append(api_runner)
            self.api_port = _bound_port(api_runner)
        log.info("node %s on %s: p2p %s:%d, api %s, height %d", USER_AGENT, self.params.name,
                 self.config.listen[0], self.listen_port,
                 f"{self.config.api[0]}:{self.api_port}" if self.config.api else "off", self.chain.height)
        for addr in list(self.protocol.connect):
            self._spawn(self._keep_connected(addr))
        self._spawn(self._housekeeping())
        if self.config.mine:
            self.start_mining(self.config.mining_address, self.config.threads, self.config.duty)

    async def stop(self) -> None:
        """Stop mining, close peers, then close the database (after the last write)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self.stop_mining()
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
        log.info("node stopped at height %d", self.chain.height)
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
        for effect in effects:
            cls = effect.__class__
            if cls is Send:
                msg = effect.msg
                if msg.__class__ is m.Headers:
                    self.blocks_announced += len(msg.headers)
                elif msg.__class__ is m.Inv and msg.items[0][0] == m.INV_BLOCK:
                    self.blocks_announced += 1
                effect.dst.send(msg)
            elif cls is Disconnect:
                effect.peer.close(effect.reason)
            elif cls is Misbehaved:
                log.warning("peer %s misbehaved (%s, +%d = %d): %s%s", effect.peer.name, effect.reason.code,
                            effect.reason.score, effect.score, effect.detail, "; banned" if effect.banned else "")
            elif cls is PeerReady:
                peer = effect.peer
                version = peer.state.version
                log.info("peer %s connected (%s, height %d, %s)", peer.name, "inbound" if peer.inbound else "outbound",
                         version.best_height, version.user_agent)
                self._emit("peer", {"address": peer.name, "connected": True})
            elif cls is Dial:
                if not self._stopping.is_set():
                    self._spawn(self._keep_connected(effect.addr))
            else:
                raise TypeError(f"unknown protocol effect {effect!r}")

    # -- connections --------------------------------------------------------------------------

    def is_banned(self, host: str, port: int | None) -> bool:
        return self.protocol.is_banned(host, port, time.time())

    def ban(self, host: str, port: int | None, seconds: float | None = None) -> None:
        self._execute(self.protocol.ban(host, port, time.time(), seconds))

    async def _accept_ws(self, request: web.Request) -> web.StreamResponse:
        host, port = request.transport.get_extra_info("peername")[:2] if request.transport else ("?", 0)
        inbound = sum(1 for p in self.peers if p.inbound)
        if inbound >= self.config.max_inbound:
            return web.Response(status=503, text="too many inbound peers")
        if self.is_banned(host, None) and not host.startswith("127."):
            return web.Response(status=403, text="banned")
        ws = web.WebSocketResponse(max_msg_size=m.MAX_FRAME_SIZE, heartbeat=30)
        await ws.prepare(request)
        peer = Peer(ws, host, port, inbound=True)
        await self._run_peer(peer)
        return ws

    async def connect(self, addr: tuple[str, int]) -> Peer | None:
        """Dial ``addr`` once; returns the peer after its session ended (or None)."""
        assert self._session is not None
        url = f"http://{addr[0]}:{addr[1]}{P2P_PATH}"
        try:
            ws = await self._session.ws_connect(url, max_msg_size=m.MAX_FRAME_SIZE, heartbeat=30,
                                                timeout=aiohttp.ClientWSTimeout(ws_close=5))
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            log.debug("cannot reach %s:%d: %s", addr[0], addr[1], exc)
            return None
        peer = Peer(ws, addr[0], addr[1], inbound=False, dialled=addr)
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
        peer.start_writer()
        self.peers.append(peer)
        effects = self.protocol.connected(peer, inbound=peer.inbound, host=peer.host, port=peer.port,
                                          dialled=peer.dialled, now=now)
        peer.state = self.protocol.peers[peer]
        self._execute(effects)
        try:
            await self._read_loop(peer)
        except Exception:  # a bug triggered by one peer must not take the node down
            log.exception("error while serving peer %s", peer.name)
            peer.close("internal error")
        finally:
            was_ready = peer.state.ready
            peer.close(peer.close_reason or "disconnected")
            if peer in self.peers:
                self.peers.remove(peer)
            self._execute(self.protocol.disconnected(peer, time.time()))
            if was_ready or peer.state.version is not None:
                log.info("peer %s disconnected: %s", peer.name, peer.close_reason)
                self._emit("peer", {"address": peer.name, "connected": False})
            await peer.wait_closed()

    async def _read_loop(self, peer: Peer) -> None:
        ws = peer.ws
        protocol = self.protocol
        while not peer.closed:
            msg = await ws.receive()
            if peer.closed:
                return                      # what arrives after we closed the link is not read
            if msg.type == aiohttp.WSMsgType.BINARY:
                peer.bytes_in += len(msg.data)
                try:
                    decoded = m.decode(msg.data)
                except DecodeError as exc:
                    self._execute(protocol.misbehaving(peer, Misbehavior.MALFORMED_MESSAGE,
                                                       f"malformed frame: {exc}", time.time()))
                    continue
                if decoded.__class__ is m.BlockMessage:
                    self.blocks_received += 1
                    self.block_bytes_received += len(msg.data) - 1
                self._source = peer
                try:
                    self._execute(protocol.receive(peer, decoded, time.time()))
                finally:
                    self._source = None
            elif msg.type == aiohttp.WSMsgType.TEXT:
                self._execute(protocol.misbehaving(peer, Misbehavior.TEXT_FRAME, "text frame on a binary protocol",
                                                   time.time()))
            elif msg.type == aiohttp.WSMsgType.ERROR:
                exc = ws.exception()
                text = str(exc) if exc else "websocket error"
                if "size" in text.lower() or "too big" in text.lower() or "exceeds" in text.lower():
                    reason = Misbehavior.OVERSIZE_MESSAGE
                else:
                    reason = Misbehavior.BAD_STREAM
                self._execute(protocol.misbehaving(peer, reason, text, time.time()))
                return
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return

    # -- blocks and transactions ----------------------------------------------------------------

    def process_block(self, block: Block) -> AcceptResult:
        """A block of our own (mined, generated, or handed in by a test): the chain state
        takes it (and persists it), then the protocol announces a new tip."""
        result, effects = self.protocol.local_block(block, time.time())
        self._execute(effects)
        return result

    def _block_accepted(self, block: Block, result: AcceptResult) -> None:
        """The chain state took a block (from a peer or from us): bookkeeping and the feed."""
        if result.status in (BlockStatus.CONNECTED, BlockStatus.SIDE_BRANCH) and block.hash not in self.arrivals:
            self.arrivals[block.hash] = time.time()
            while len(self.arrivals) > MAX_ARRIVALS:
                self.arrivals.popitem(last=False)
        act = result.activation
        source = self._source
        if act.connected or act.disconnected:
            if act.disconnected:
                log.info("reorganised: %d blocks disconnected, %d connected, tip %s at %d", len(act.disconnected),
                         len(act.connected), self.chain.tip.hash[::-1].hex()[:16], self.chain.height)
            tip = self.chain.tip
            log.info("new tip %s height %d (%d txs)%s", tip.hash[::-1].hex()[:16], tip.height,
                     len(act.connected[-1].transactions) if act.connected else 0,
                     "" if source is None else f" from {source.name}")
            self._emit("tip", {"hash": tip.hash[::-1].hex(), "height": tip.height,
                               "disconnected": len(act.disconnected), "connected": len(act.connected)})
            if self.miner is not None:
                self._update_mining_work()
        elif result.status is BlockStatus.SIDE_BRANCH:
            self._emit("block", {"hash": h_hex(block.hash), "status": "side-branch"})
        if result.status is BlockStatus.INVALID:
            log.warning("rejected block %s: %s %s", block.hash_hex()[:16], result.reason, result.message)

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
        source = self._source
        log.debug("accepted tx %s (fee %d)%s", tx.txid_hex()[:16], entry.fee,
                 "" if source is None else f" from {source.name}")
        self._emit("tx", {"txid": tx.txid_hex(), "fee": entry.fee})

    # -- periodic work ------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        while not self._stopping.is_set():
            await asyncio.sleep(TICK)
            self._execute(self.protocol.tick(time.time()))

    # -- mining -------------------------------------------------------------------------------

    def start_mining(self, address: str | None, threads: int = 1, duty: float = 1.0) -> None:
        from minichain.core.keys import decode_address
        from minichain.mining.miner import Miner

        if not address:
            raise ValueError("mining needs an address to pay (--address)")
        self.mining_pkh = decode_address(address, self.params.address_version)
        if self.miner is not None:
            self.miner.stop()
        loop = asyncio.get_running_loop()

        def found(block: Block) -> None:
            loop.call_soon_threadsafe(self._on_mined, block)

        self.miner = Miner(threads=threads, on_found=found, duty=duty)
        self._update_mining_work()
        log.info("mining to %s on %d thread(s), duty %.0f%%", address, threads, duty * 100)

    def stop_mining(self) -> None:
        if self.miner is not None:
            self.miner.stop()
            self.miner = None
            log.info("mining stopped")

    def _update_mining_work(self) -> None:
        from minichain.mining.template import build_template

        if self.miner is None or self.mining_pkh is None:
            return
        self._extra_nonce += 1
        template = build_template(self.chain, self.mempool, self.mining_pkh, int(time.time()), self._extra_nonce)
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
        hashes = []
        try:
            for _ in range(count):
                if self._stopping.is_set():
                    break
                self._extra_nonce += 1
                miner.set_work(build_template(self.chain, self.mempool, pubkey_hash, int(time.time()), self._extra_nonce))
                block = await found.get()
                self.process_block(block)
                hashes.append(block.hash)
        finally:
            await loop.run_in_executor(None, miner.stop)
        return hashes

    def _on_mined(self, block: Block) -> None:
        if self._stopping.is_set():
            return
        result = self.process_block(block)
        if result.status is BlockStatus.CONNECTED:
            log.info("mined block %s at height %d", block.hash_hex()[:16], self.chain.height)
        else:
            log.info("mined block %s was %s", block.hash_hex()[:16], result.status.value)
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


def h_hex(h: bytes) -> str:
    return h[::-1].hex()


def _bound_port(runner: web.AppRunner) -> int:
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
