"""The node: chain state, mempool, peers, sync and relay, on one asyncio event loop.

Everything that changes the chain or the mempool runs on the event loop thread, one
message at a time, so the chain state needs no lock. Mining threads only hash; a block
they find is handed back to the loop (``call_soon_threadsafe``) and enters through the
same door as a block from a peer.

Protocol, in Bitcoin's terms:
  handshake   version -> version + verack; another network (genesis) is refused
  sync        headers first: getheaders(locator) -> headers (<= 2000) -> getdata(blocks),
              at most ``MAX_IN_FLIGHT`` blocks in flight per peer, re-asked elsewhere
              after ``BLOCK_TIMEOUT``
  relay       inv(hash) to every ready peer not known to have it; they getdata what they
              lack, so a block's bytes cross each link about once
  addresses   getaddr -> addr; learned listen addresses feed the outbound connector
  misbehaviour  invalid block or header: 100; malformed or oversize frame: 100;
              unsolicited blocks: 10 each; at 100 the peer is dropped and banned
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import aiohttp
from aiohttp import web

from minichain import __version__
from minichain.core.block import Block
from minichain.core.encoding import DecodeError
from minichain.core.sigcache import SignatureCache, SignatureChecker
from minichain.core.tx import Transaction
from minichain.node import messages as m
from minichain.node.lag import LagMonitor
from minichain.node.view import NodeControl, NodeView
from minichain.chainstate import Mempool, MempoolError
from minichain.node.peer import BAN_SCORE, Peer
from minichain.params import Params
from minichain.chainstate import AcceptResult, BlockStatus, ChainState
from minichain.store.interface import ChainStore

log = logging.getLogger("minichain.node")

USER_AGENT = f"/minichain:{__version__}/"
MAX_IN_FLIGHT = 16            # Bitcoin: MAX_BLOCKS_IN_TRANSIT_PER_PEER
BLOCK_TIMEOUT = 20.0          # seconds before a requested block is asked of another peer
HANDSHAKE_TIMEOUT = 10.0
UNSOLICITED_BLOCK_SCORE = 10
DEFAULT_BAN_SECONDS = 24 * 60 * 60  # Bitcoin: DEFAULT_MISBEHAVING_BANTIME
RECONNECT_MIN, RECONNECT_MAX = 0.5, 30.0
P2P_PATH = "/p2p"
MAX_ARRIVALS = 2000           # block first-arrival times kept for /api/arrivals


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


class Node:
    def __init__(self, config: NodeConfig, store: ChainStore | None = None) -> None:
        self.config = config
        self.params = config.params
        if store is None:
            store = open_store(config)
        self.sigcache = SignatureCache()
        self.chain = ChainState(store, self.params, checker=SignatureChecker(self.sigcache))
        self.chain.activate_best_chain()  # finish a reorganisation a crash interrupted
        self.mempool = Mempool(self.params, max_bytes=config.mempool_bytes,
                               checker=SignatureChecker(self.sigcache))
        self.index = self.chain.index  # txid and address indexes, kept in the chain state's batches
        self.peers: list[Peer] = []
        self.addresses: dict[tuple[str, int], float] = {}   # known listen addresses -> last seen
        self.bans: dict[tuple[str, int] | str, float] = {}
        self.denied: set[tuple[str, int]] = set()          # testnet partitions: refuse these
        self.nonce = random.getrandbits(64)
        self.in_flight: dict[bytes, Peer] = {}
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
        for addr in self.config.connect:
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

    # -- connections --------------------------------------------------------------------------

    def _ban_key(self, host: str, port: int | None) -> tuple[str, int] | str:
        # On one machine every peer is 127.0.0.1: ban the peer's listen address there,
        # and the whole host elsewhere (as Bitcoin bans an IP).
        if host.startswith("127.") or host in ("::1", "localhost"):
            return (host, port or 0)
        return host

    def is_banned(self, host: str, port: int | None) -> bool:
        key = self._ban_key(host, port)
        until = self.bans.get(key)
        if until is None:
            return False
        if until < time.time():
            del self.bans[key]
            return False
        return True

    def ban(self, host: str, port: int | None, seconds: float | None = None) -> None:
        self.bans[self._ban_key(host, port)] = time.time() + (self.config.ban_seconds if seconds is None else seconds)
        for peer in list(self.peers):
            addr = peer.listen_addr
            if self._ban_key(peer.host, addr[1] if addr else peer.port) == self._ban_key(host, port):
                peer.close("banned")

    def misbehave(self, peer: Peer, score: int, reason: str) -> None:
        peer.score += score
        log.warning("peer %s misbehaved (+%d = %d): %s", peer.name, score, peer.score, reason)
        if peer.score >= BAN_SCORE:
            addr = peer.listen_addr
            self.ban(peer.host, addr[1] if addr else peer.port)
            self._reject(peer, f"banned: {reason}")

    def _reject(self, peer: Peer, reason: str) -> None:
        peer.send(m.Reject(reason))
        peer.close(reason)

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
        """Keep one outbound link to ``addr``, reconnecting with exponential backoff."""
        delay = RECONNECT_MIN
        while not self._stopping.is_set():
            if addr in self.denied or self.is_banned(*addr) or self._connected_to(addr):
                await asyncio.sleep(1.0)
                continue
            began = time.monotonic()
            await self.connect(addr)
            if time.monotonic() - began > 10:
                delay = RECONNECT_MIN  # it was a real session: start the backoff again
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, RECONNECT_MAX)

    def _connected_to(self, addr: tuple[str, int]) -> bool:
        return any(p.listen_addr == addr and not p.closed for p in self.peers)

    def add_peer(self, addr: tuple[str, int]) -> None:
        if addr not in self.config.connect:
            self.config.connect.append(addr)
            self._spawn(self._keep_connected(addr))

    def remove_peer(self, addr: tuple[str, int]) -> None:
        if addr in self.config.connect:
            self.config.connect.remove(addr)
        for peer in list(self.peers):
            if peer.listen_addr == addr:
                peer.close("removed by operator")

    def set_denied(self, addrs: set[tuple[str, int]]) -> None:
        """Refuse links to and from ``addrs`` (and drop the current ones): a partition."""
        self.denied = set(addrs)
        for peer in list(self.peers):
            if peer.listen_addr in self.denied:
                self._reject(peer, "partitioned")

    async def _run_peer(self, peer: Peer) -> None:
        peer.connected_at = time.time()
        peer.start_writer()
        self.peers.append(peer)
        if not peer.inbound:
            self._send_version(peer)
        try:
            await self._read_loop(peer)
        except Exception:  # a bug triggered by one peer must not take the node down
            log.exception("error while serving peer %s", peer.name)
            peer.close("internal error")
        finally:
            peer.close(peer.close_reason or "disconnected")
            if peer in self.peers:
                self.peers.remove(peer)
            for h, p in list(self.in_flight.items()):
                if p is peer:
                    del self.in_flight[h]
            if peer.ready:
                log.info("peer %s disconnected: %s", peer.name, peer.close_reason)
                self._emit("peer", {"address": peer.name, "connected": False})
                self._request_blocks_from_all()
            await peer.wait_closed()

    async def _read_loop(self, peer: Peer) -> None:
        ws = peer.ws
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT
        while not peer.closed:
            timeout = None if peer.ready else max(0.1, deadline - time.monotonic())
            try:
                msg = await asyncio.wait_for(ws.receive(), timeout=timeout)
            except asyncio.TimeoutError:
                self._reject(peer, "handshake timed out")
                return
            if msg.type == aiohttp.WSMsgType.BINARY:
                peer.bytes_in += len(msg.data)
                try:
                    decoded = m.decode(msg.data)
                except DecodeError as exc:
                    self.misbehave(peer, 100, f"malformed frame: {exc}")
                    continue
                self._dispatch(peer, decoded)
            elif msg.type == aiohttp.WSMsgType.TEXT:
                self.misbehave(peer, 100, "text frame on a binary protocol")
            elif msg.type == aiohttp.WSMsgType.ERROR:
                exc = ws.exception()
                text = str(exc) if exc else "websocket error"
                if "size" in text.lower() or "too big" in text.lower() or "exceeds" in text.lower():
                    self.misbehave(peer, 100, f"oversize frame: {text}")
                else:
                    self.misbehave(peer, 100, f"bad websocket stream: {text}")
                return
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return

    # -- dispatch -----------------------------------------------------------------------------

    def _dispatch(self, peer: Peer, msg: m.Message) -> None:
        if not peer.ready and not isinstance(msg, (m.Version, m.Verack, m.Reject)):
            self.misbehave(peer, 100, f"{msg.NAME} before the handshake")
            return
        handler = self._handlers.get(type(msg))
        if handler is not None:
            handler(self, peer, msg)

    def _send_version(self, peer: Peer) -> None:
        peer.send(m.Version(m.PROTOCOL_VERSION, self.chain.genesis.hash, self.chain.height,
                            USER_AGENT, self.listen_port, self.nonce))

    def _on_version(self, peer: Peer, msg: m.Version) -> None:
        if peer.version is not None:
            self.misbehave(peer, 100, "second version message")
            return
        if msg.genesis != self.chain.genesis.hash:
            self._reject(peer, f"wrong network: we run {self.params.name} (genesis "
                               f"{self.chain.genesis.hash[::-1].hex()[:16]}...), you do not")
            return
        if msg.nonce == self.nonce:
            self._reject(peer, "connected to self")
            return
        if msg.version < 1:
            self._reject(peer, f"protocol version {msg.version} is too old")
            return
        peer.version = msg
        addr = peer.listen_addr
        if addr is not None and (addr in self.denied or self.is_banned(peer.host, addr[1])):
            self._reject(peer, "partitioned" if addr in self.denied else "banned")
            return
        if any(p is not peer and p.ready and p.version and p.version.nonce == msg.nonce for p in self.peers):
            self._reject(peer, "already connected")
            return
        if peer.inbound:
            self._send_version(peer)
        peer.send(m.Verack())
        self._maybe_ready(peer)

    def _on_verack(self, peer: Peer, msg: m.Verack) -> None:
        peer.verack = True
        self._maybe_ready(peer)

    def _maybe_ready(self, peer: Peer) -> None:
        if not peer.ready:
            return
        addr = peer.listen_addr
        if addr is not None:
            self.addresses[addr] = time.time()
        log.info("peer %s connected (%s, height %d, %s)", peer.name,
                 "inbound" if peer.inbound else "outbound", peer.best_height, peer.version.user_agent)
        self._emit("peer", {"address": peer.name, "connected": True})
        peer.send(m.GetHeaders(self.chain.tree.locator(self.chain.tree.best_header)))
        peer.send(m.GetAddr())

    def _on_reject(self, peer: Peer, msg: m.Reject) -> None:
        log.warning("peer %s rejected us: %s", peer.name, msg.reason)
        peer.close(f"rejected by peer: {msg.reason}")

    def _on_ping(self, peer: Peer, msg: m.Ping) -> None:
        peer.send(m.Pong(msg.nonce))

    def _on_pong(self, peer: Peer, msg: m.Pong) -> None:
        pass

    def _on_getaddr(self, peer: Peer, msg: m.GetAddr) -> None:
        addrs = [a for a in self.addresses if a != peer.listen_addr][: m.MAX_ADDRS]
        if self.listen_port:
            addrs = addrs[: m.MAX_ADDRS - 1]
        peer.send(m.Addr(addrs))

    def _on_addr(self, peer: Peer, msg: m.Addr) -> None:
        now = time.time()
        for addr in msg.addrs:
            if len(self.addresses) >= 5000:
                break
            self.addresses.setdefault(addr, now)
        if self.config.discover and not self._stopping.is_set():
            self._dial_more()

    def _dial_more(self) -> None:
        outbound = {p.listen_addr for p in self.peers if not p.inbound}
        wanted = self.config.max_outbound - len(outbound)
        if wanted <= 0:
            return
        for addr in list(self.addresses):
            if wanted <= 0:
                break
            if addr in outbound or addr in self.config.connect or addr in self.denied:
                continue
            if addr == (self.config.listen[0], self.listen_port) or self._connected_to(addr):
                continue
            self.add_peer(addr)
            wanted -= 1

    # -- headers and blocks -------------------------------------------------------------------

    def _on_getheaders(self, peer: Peer, msg: m.GetHeaders) -> None:
        tree = self.chain.tree
        start = tree.genesis
        for h in msg.locator:
            entry = tree.get(h)
            if entry is not None and tree.in_active_chain(entry):
                start = entry
                break
        headers = []
        for height in range(start.height + 1, min(tree.height, start.height + m.MAX_HEADERS) + 1):
            entry = tree.active[height]
            headers.append(entry.header)
            if entry.hash == msg.stop:
                break
        peer.send(m.Headers(headers))

    def _on_headers(self, peer: Peer, msg: m.Headers) -> None:
        now = int(time.time())
        last = None
        for header in msg.headers:
            result = self.chain.accept_header(header, now)
            if result.status is BlockStatus.INVALID:
                self.misbehave(peer, 100, f"invalid header {header.hash_hex()[:16]}: {result.reason}")
                return
            if result.status is BlockStatus.ORPHAN:
                # Headers that do not connect: ask again from our locator (Bitcoin gives
                # such peers some leeway too).
                self.misbehave(peer, 20, "headers that do not connect")
                peer.send(m.GetHeaders(self.chain.tree.locator(self.chain.tree.best_header)))
                return
            last = header.hash
            peer.known.add(last)
        if last is not None:
            self._note_peer_has(peer, last)
        self._request_blocks(peer)
        if len(msg.headers) == m.MAX_HEADERS and last is not None:
            peer.send(m.GetHeaders(self.chain.tree.locator(self.chain.tree.get(last))))

    def _note_peer_has(self, peer: Peer, block_hash: bytes) -> None:
        tree = self.chain.tree
        entry = tree.get(block_hash)
        if entry is None:
            return
        best = tree.get(peer.best_hash) if peer.best_hash else None
        if best is None or entry.chainwork > best.chainwork:
            peer.best_hash = block_hash

    def _request_blocks(self, peer: Peer) -> None:
        """Ask ``peer`` for blocks we lack on its best branch, if that branch beats ours."""
        tree = self.chain.tree
        if peer.best_hash is None or not peer.ready:
            return
        target = tree.get(peer.best_hash)
        if target is None or target.status.failed or target.chainwork <= tree.tip.chainwork:
            return
        room = MAX_IN_FLIGHT - len(peer.requested)
        if room <= 0:
            return
        _, connect = tree.path(tree.tip, target)
        wanted = []
        for entry in connect:
            if entry.have_data or entry.hash in self.in_flight:
                continue
            wanted.append(entry.hash)
            if len(wanted) >= room:
                break
        if not wanted:
            return
        now = time.monotonic()
        for h in wanted:
            peer.requested[h] = now
            self.in_flight[h] = peer
        peer.send(m.GetData([(m.INV_BLOCK, h) for h in wanted]))

    def _request_blocks_from_all(self) -> None:
        for peer in self.peers:
            if peer.ready:
                self._request_blocks(peer)

    def _on_block(self, peer: Peer, msg: m.BlockMessage) -> None:
        block = msg.block
        h = block.hash
        peer.known.add(h)
        solicited = peer.requested.pop(h, None) is not None
        if self.in_flight.get(h) is peer:
            del self.in_flight[h]
        if not solicited:
            self.misbehave(peer, UNSOLICITED_BLOCK_SCORE, f"unsolicited block {block.hash_hex()[:16]}")
            if peer.closed:
                return
        self.blocks_received += 1
        self.block_bytes_received += block.size
        result = self.process_block(block, source=peer)
        if result.status is BlockStatus.INVALID and result.reason not in ("duplicate-invalid",):
            self.misbehave(peer, 100, f"invalid block {block.hash_hex()[:16]}: {result.reason} {result.message}")
            return
        if result.status is BlockStatus.INVALID:
            self.misbehave(peer, 100, f"block known to be invalid {block.hash_hex()[:16]}")
            return
        if result.status is BlockStatus.ORPHAN:
            peer.send(m.GetHeaders(self.chain.tree.locator(self.chain.tree.best_header), h))
        self._note_peer_has(peer, h)
        self._request_blocks(peer)

    def process_block(self, block: Block, source: Peer | None = None) -> AcceptResult:
        """Hand ``block`` to the chain state (which persists it), then update the mempool
        and the index, and announce a new tip. Used for peers' blocks and our own."""
        result = self.chain.accept_block(block, int(time.time()))
        if result.status in (BlockStatus.CONNECTED, BlockStatus.SIDE_BRANCH) and block.hash not in self.arrivals:
            self.arrivals[block.hash] = time.time()
            while len(self.arrivals) > MAX_ARRIVALS:
                self.arrivals.popitem(last=False)
        act = result.activation
        if act.connected or act.disconnected:
            self.mempool.remove_for_block(result.connected_txs)
            if act.disconnected:
                height = self.chain.height
                self.mempool.readd(result.txs_to_readd, self.chain, height)
                self.mempool.revalidate(self.chain, height)
                log.info("reorganised: %d blocks disconnected, %d connected, tip %s at %d",
                         len(act.disconnected), len(act.connected), self.chain.tip.hash[::-1].hex()[:16], height)
            tip = self.chain.tip
            log.info("new tip %s height %d (%d txs)%s", tip.hash[::-1].hex()[:16], tip.height,
                     len(act.connected[-1].transactions) if act.connected else 0,
                     "" if source is None else f" from {source.name}")
            self._announce_block(tip.hash, exclude=source)
            self._emit("tip", {"hash": tip.hash[::-1].hex(), "height": tip.height,
                               "disconnected": len(act.disconnected), "connected": len(act.connected)})
            if self.miner is not None:
                self._update_mining_work()
        elif result.status is BlockStatus.SIDE_BRANCH:
            self._emit("block", {"hash": h_hex(block.hash), "status": "side-branch"})
        if result.status is BlockStatus.INVALID:
            log.warning("rejected block %s: %s %s", block.hash_hex()[:16], result.reason, result.message)
        return result

    def _announce_block(self, block_hash: bytes, exclude: Peer | None = None) -> None:
        for peer in self.peers:
            if peer.ready and peer is not exclude and block_hash not in peer.known:
                peer.known.add(block_hash)
                peer.send(m.Inv([(m.INV_BLOCK, block_hash)]))
                self.blocks_announced += 1

    # -- inventory and transactions -------------------------------------------------------------

    def _on_inv(self, peer: Peer, msg: m.Inv) -> None:
        tree = self.chain.tree
        want_tx = []
        unknown_block = None
        for kind, h in msg.items:
            peer.known.add(h)
            if kind == m.INV_BLOCK:
                entry = tree.get(h)
                if entry is None:
                    unknown_block = h
                else:
                    self._note_peer_has(peer, h)
            elif h not in self.mempool and h not in peer.requested_tx and not self.index.has_tx(h):
                want_tx.append((m.INV_TX, h))
                peer.requested_tx.add(h)
        if unknown_block is not None:
            peer.send(m.GetHeaders(tree.locator(tree.best_header)))
        else:
            self._request_blocks(peer)
        if want_tx:
            peer.send(m.GetData(want_tx))

    def _on_getdata(self, peer: Peer, msg: m.GetData) -> None:
        missing = []
        for kind, h in msg.items:
            if kind == m.INV_BLOCK:
                entry = self.chain.tree.get(h)
                block = self.chain.get_block(h) if entry is not None and entry.have_data else None
                if block is None:
                    missing.append((kind, h))
                else:
                    peer.send(m.BlockMessage(block))
            else:
                entry = self.mempool.get(h)
                if entry is None:
                    missing.append((kind, h))
                else:
                    peer.send(m.TxMessage(entry.tx))
        if missing:
            peer.send(m.NotFound(missing))

    def _on_notfound(self, peer: Peer, msg: m.NotFound) -> None:
        for kind, h in msg.items:
            if kind == m.INV_BLOCK and peer.requested.pop(h, None) is not None:
                self.in_flight.pop(h, None)
            peer.requested_tx.discard(h)
        self._request_blocks_from_all()

    def _on_tx(self, peer: Peer, msg: m.TxMessage) -> None:
        tx = msg.tx
        peer.known.add(tx.txid)
        peer.requested_tx.discard(tx.txid)
        try:
            self.submit_transaction(tx, source=peer)
        except MempoolError as exc:
            if exc.reason in ("txn-already-in-mempool", "txn-mempool-conflict", "bad-txns-inputs-missingorspent",
                              "mempool-full", "bad-txns-premature-spend-of-coinbase"):
                log.debug("tx %s from %s not accepted: %s", tx.txid_hex()[:16], peer.name, exc.reason)
            else:
                self.misbehave(peer, 10, f"invalid transaction {tx.txid_hex()[:16]}: {exc.reason}")

    def submit_transaction(self, tx: Transaction, source: Peer | None = None) -> None:
        """Admit ``tx`` to the mempool (raises MempoolError with a reason) and announce it."""
        if self.index.has_tx(tx.txid):
            raise MempoolError("txn-already-known", f"{tx.txid_hex()} is already in the chain")
        entry = self.mempool.add(tx, self.chain, self.chain.height)
        log.info("accepted tx %s (fee %d)%s", tx.txid_hex()[:16], entry.fee,
                 "" if source is None else f" from {source.name}")
        for peer in self.peers:
            if peer.ready and peer is not source and tx.txid not in peer.known:
                peer.known.add(tx.txid)
                peer.send(m.Inv([(m.INV_TX, tx.txid)]))
        self._emit("tx", {"txid": tx.txid_hex(), "fee": entry.fee})

    _handlers: dict[type, Callable[["Node", Peer, Any], None]] = {
        m.Version: _on_version,
        m.Verack: _on_verack,
        m.Reject: _on_reject,
        m.Ping: _on_ping,
        m.Pong: _on_pong,
        m.GetAddr: _on_getaddr,
        m.Addr: _on_addr,
        m.GetHeaders: _on_getheaders,
        m.Headers: _on_headers,
        m.BlockMessage: _on_block,
        m.Inv: _on_inv,
        m.GetData: _on_getdata,
        m.NotFound: _on_notfound,
        m.TxMessage: _on_tx,
    }

    # -- periodic work ------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        while not self._stopping.is_set():
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for peer in list(self.peers):
                for h, asked in list(peer.requested.items()):
                    if now - asked > BLOCK_TIMEOUT:
                        log.info("block %s from %s timed out; asking elsewhere", h[::-1].hex()[:16], peer.name)
                        del peer.requested[h]
                        if self.in_flight.get(h) is peer:
                            del self.in_flight[h]
                # Unsolicited-block scores fade: a burst is punished, a trickle is not.
                peer.score = max(0, peer.score - 1) if peer.score < BAN_SCORE else peer.score
            self._request_blocks_from_all()
            if self.config.discover and not self.config.connect:
                self._dial_more()

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
