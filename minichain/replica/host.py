"""The real-process host of one replica: a simulator engine run on sockets and a wall clock.

It does for one engine what ``sim/simulator.py`` does for all of them -- starts it,
hands it messages and timer firings, and carries out the actions it returns -- with
real IO instead of an event heap:

    Send / Broadcast    a frame on the authenticated link to each peer (``replica/wire.py``),
                        through the node's ``Peer`` (bounded send queue); a copy to self
                        is delivered on the next loop turn, not counted as traffic
    SetTimer(name, d)   ``loop.call_later(d, ...)`` keyed by name; setting a pending name
                        replaces it, as the simulator's SetTimer does
    CancelTimer(name)   cancels it
    Decide(slot, v)     a line in ``decisions.jsonl``; answers clients waiting for v

The engine gets a ``NodeContext(node_id, n, rng, clock)`` whose clock is the machine's
monotonic clock (system-wide on Linux) minus the testnet's start, so every replica of a
testnet -- and a replica restarted later -- reads the same time line. DLS's round clock
relies on that.

**Persist before you speak.** Handlers run as inputs arrive; their outgoing messages,
decisions and client answers wait in an outbox. A flush, scheduled after the current
loop turn (so every input that arrived together is one batch: group commit), writes the
decisions and the engine state (``replica/durable.py``) and only then sends the
messages and answers the clients.

**Restart.** A replica started on a directory with a state file loads the engine from
it and calls ``on_recover()`` instead of ``on_start()``; its pending timers died with the
old process, as the simulator's crash drops them.

**Links.** Replica ``i`` dials every ``j < i`` and keeps that link up (reconnecting with
backoff); ``j`` accepts it. One link per pair carries both directions. A link is used
only after both hellos check out. A message for a peer with no link (down, paused,
partitioned away) is dropped and counted: the engines retransmit what matters.

**Partitions** are made by the replicas themselves, as the node's are: a deny list of
peer ids (``POST /api/control/partition``) closes those links and refuses new ones.

The REST API (``replica/api.py``) is the supervisor's and the clients' way in.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Hashable

import aiohttp
from aiohttp import web

from minichain.core.encoding import DecodeError
from minichain.node import messages as m
from minichain.node.node import _bound_port
from minichain.node.peer import Peer
from minichain.replica import codec, durable, wire
from minichain.replica.keys import read_key_file
from minichain.replica.ledger import CommittedLog, value_json
from minichain.replica.wire import NONCE_SIZE, LinkKeys, ReplicaFrame, ReplicaHello
from minichain.sim.engine import CLIENT, Broadcast, CancelTimer, Decide, NodeContext, Send, SetTimer
from minichain.sim.engines import EngineSpec, load_registry
from minichain.sim.workload import ClientRequest, Payment

log = logging.getLogger("minichain.replica")

P2P_PATH = "/replica"
HANDSHAKE_TIMEOUT = 5.0
HEARTBEAT = 5.0            # WebSocket ping interval: a paused peer's link closes within ~1.5x this
RECONNECT_MIN = 0.05
RECONNECT_MAX = 1.0
CONNECT_TIMEOUT = 2.0


class ReplicaError(Exception):
    """The replica cannot start as asked; ``str()`` says why."""


def engine_names() -> list[str]:
    return sorted(load_registry())


def spec_for(name: str) -> EngineSpec:
    registry = load_registry()
    if name not in registry:
        raise ReplicaError(f"unknown engine {name!r}; choose one of {', '.join(sorted(registry))}")
    return registry[name]


@dataclass
class ReplicaConfig:
    engine: str
    node_id: int
    n: int
    datadir: str
    keys: str                                   # this replica's key file (replica/keys.py)
    listen: tuple[str, int] = ("127.0.0.1", 0)
    api: tuple[str, int] = ("127.0.0.1", 0)
    behaviour: str | None = None                # a Byzantine behaviour, or None (honest)
    coalition: frozenset[int] = frozenset()     # every Byzantine replica's id (engines/coalition.py)
    seed: int = 0
    epoch: float | None = None                  # time.monotonic() at the testnet's start


@dataclass
class Link:
    peer: Peer
    remote: int
    keys: LinkKeys


@dataclass
class Counters:
    sent: Counter = field(default_factory=Counter)          # network copies handed to a link, by class
    unsent: int = 0                                          # copies for a peer without a link
    denied: int = 0                                          # copies for a peer we are partitioned from
    received: int = 0
    bad_frames: int = 0
    engine_errors: int = 0
    flushes: int = 0
    state_bytes: int = 0
    persist_seconds: float = 0.0                             # writing decisions and state, in all


class ReplicaHost:
    def __init__(self, config: ReplicaConfig) -> None:
        self.config = config
        self.id = config.node_id
        self.n = config.n
        if not 0 <= self.id < self.n:
            raise ReplicaError(f"replica {self.id} is not one of {self.n}")
        self.spec = spec_for(config.engine)
        if config.behaviour is not None and config.behaviour not in self.spec.behaviours:
            raise ReplicaError(f"{config.engine} has no behaviour {config.behaviour!r} "
                               f"(it has: {', '.join(self.spec.behaviours)})")
        self.keys = read_key_file(config.keys, self.id, self.n)
        epoch = config.epoch if config.epoch is not None else time.monotonic()
        self.epoch = epoch
        self.ctx = NodeContext(self.id, self.n, random.Random(f"{config.seed}/{self.id}/{secrets.randbits(32)}"),
                               self.clock)
        os.makedirs(config.datadir, exist_ok=True)
        loaded = durable.load_state(config.datadir, self.ctx)
        self.recovered = loaded is not None
        if loaded is not None:
            self.engine, meta = loaded
            if meta.get("engine") != config.engine or meta.get("n") != self.n or meta.get("node") != self.id:
                raise ReplicaError(f"{config.datadir} holds the state of replica {meta.get('node')} of "
                                   f"{meta.get('n')} running {meta.get('engine')}, not of this one")
            self.restarts = int(meta.get("restarts", 0)) + 1
        else:
            self.engine = self._build()
            self.restarts = 0
        self.honest = bool(getattr(self.engine, "honest", True))
        self.log = CommittedLog()
        for rec in durable.read_decisions(os.path.join(config.datadir, durable.DECISIONS_FILE)):
            try:
                self.log.record(rec["slot"], codec.from_tree(rec["tree"]))
            except (KeyError, DecodeError):
                continue
        self.decisions = durable.DecisionFile(config.datadir)
        self.counters = Counters()
        self.started = False                  # the engine's on_start / on_recover has run
        self.peer_addrs: dict[int, tuple[str, int]] = {}
        self.links: dict[int, Link] = {}
        self.denied: set[int] = set()
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._outbox: list[tuple[int | None, Any]] = []      # (dst or None for all others, msg)
        self._pending_decisions: list[tuple[int, Any]] = []
        self._dirty = False
        self._flush_handle: asyncio.Handle | None = None
        self._waiters: dict[Payment, list[asyncio.Future]] = {}
        self._dialers: dict[int, asyncio.Task] = {}
        self._tasks: set[asyncio.Task] = set()
        self._runners: list[web.AppRunner] = []
        self._session: aiohttp.ClientSession | None = None
        self._stopping = asyncio.Event()
        self.listen_port = 0
        self.api_port = 0
        self.started_at = time.time()

    # -- the engine's world ------------------------------------------------------------------

    def clock(self) -> float:
        """The engine's local clock: seconds since the testnet's start, monotonic."""
        return time.monotonic() - self.epoch

    def _build(self):
        kwargs: dict[str, Any] = {}
        if self.config.behaviour is not None and self.spec.coalition:
            kwargs["coalition"] = frozenset(self.config.coalition)
        return self.spec.build(self.ctx, self.config.behaviour, **kwargs)

    def _run(self, what: str, fn, *args) -> None:
        try:
            actions = fn(*args)
        except Exception:  # an engine bug on one input must not take the replica down
            self.counters.engine_errors += 1
            log.exception("the engine failed on %s", what)
            return
        self._dirty = True
        if actions:
            self._apply(actions)
        self._schedule_flush()

    def _apply(self, actions) -> None:
        loop = asyncio.get_running_loop()
        for act in actions:
            cls = act.__class__
            if cls is Send:
                if act.dst == self.id:
                    loop.call_soon(self._deliver_self, act.msg)
                elif 0 <= act.dst < self.n:
                    self._outbox.append((act.dst, act.msg))
            elif cls is Broadcast:
                self._outbox.append((None, act.msg))
                if act.include_self:
                    loop.call_soon(self._deliver_self, act.msg)
            elif cls is SetTimer:
                old = self._timers.pop(act.name, None)
                if old is not None:
                    old.cancel()
                self._timers[act.name] = loop.call_later(max(0.0, act.delay), self._fire, act.name)
            elif cls is CancelTimer:
                old = self._timers.pop(act.name, None)
                if old is not None:
                    old.cancel()
            elif cls is Decide:
                self._pending_decisions.append((act.slot, act.value))
            else:
                log.error("the engine returned %r, which is not an action", act)

    def _deliver_self(self, msg: Any) -> None:
        if not self._stopping.is_set():
            self._run(f"its own {type(msg).__name__}", self.engine.on_message, self.id, msg)

    def _fire(self, name: Hashable) -> None:
        self._timers.pop(name, None)
        if not self._stopping.is_set():
            self._run(f"timer {name!r}", self.engine.on_timer, name)

    def start_engine(self) -> bool:
        """Run ``on_start`` (a fresh replica) or ``on_recover`` (a restarted one), once."""
        if self.started:
            return False
        self.started = True
        if self.recovered:
            log.info("recovering engine %s from %s (restart %d)", self.config.engine, self.config.datadir, self.restarts)
            self._run("on_recover", self.engine.on_recover)
        else:
            self._run("on_start", self.engine.on_start)
        return True

    def submit(self, payment: Payment) -> None:
        """A client's payment, handed to the engine as the simulator's workload does."""
        if self.started:
            self._run("a client request", self.engine.on_message, CLIENT, ClientRequest(payment))

    # -- persist, then speak ---------------------------------------------------------------------

    def _schedule_flush(self) -> None:
        if self._flush_handle is None:
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        began = time.perf_counter()
        now = time.time()
        records = []
        for slot, value in self._pending_decisions:
            if self.log.record(slot, value):
                records.append({"slot": slot, "value": value_json(value), "tree": codec.to_tree(value), "time": now})
        self._pending_decisions = []
        self.decisions.append(records)
        if self._dirty:
            meta = {"engine": self.config.engine, "n": self.n, "node": self.id, "restarts": self.restarts}
            self.counters.state_bytes = durable.save_state(self.config.datadir, self.engine, self.ctx, meta)
            self._dirty = False
            self.counters.flushes += 1
        self.counters.persist_seconds += time.perf_counter() - began
        outbox, self._outbox = self._outbox, []
        for dst, msg in outbox:
            self._transmit(dst, msg)
        if records:
            self._answer_waiters()

    def _transmit(self, dst: int | None, msg: Any) -> None:
        try:
            payload = codec.encode(msg)
        except DecodeError as exc:
            log.error("cannot encode %s: %s", type(msg).__name__, exc)
            return
        name = type(msg).__name__
        for peer in (range(self.n) if dst is None else (dst,)):
            if peer == self.id:
                continue
            self.counters.sent[name] += 1
            if peer in self.denied:
                self.counters.denied += 1
                continue
            link = self.links.get(peer)
            if link is None or link.peer.closed:
                self.counters.unsent += 1
                continue
            link.peer.send(link.keys.seal(payload))

    # -- clients -----------------------------------------------------------------------------------

    def outcome(self, payment: Payment) -> dict[str, Any]:
        status, slot, other = self.log.outcome(payment)
        out: dict[str, Any] = {"status": status, "node": self.id}
        if slot is not None:
            out["slot"] = slot
        if other is not None:
            out["spent_by"] = value_json(other)
        return out

    async def wait_outcome(self, payment: Payment, timeout: float) -> dict[str, Any]:
        """This replica's verdict on ``payment``, waiting up to ``timeout`` seconds for one."""
        result = self.outcome(payment)
        if result["status"] != "pending" or timeout <= 0:
            return result
        fut = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(payment, []).append(fut)
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            waiters = self._waiters.get(payment)
            if waiters is not None:
                if fut in waiters:
                    waiters.remove(fut)
                if not waiters:
                    del self._waiters[payment]
        return self.outcome(payment)

    def _answer_waiters(self) -> None:
        for payment in list(self._waiters):
            if self.log.outcome(payment)[0] != "pending":
                for fut in self._waiters.pop(payment):
                    if not fut.done():
                        fut.set_result(None)

    # -- links -------------------------------------------------------------------------------------

    def set_peers(self, addrs: dict[int, tuple[str, int]]) -> None:
        self.peer_addrs.update(addrs)
        for j in sorted(addrs):
            if j < self.id and j not in self._dialers:
                self._dialers[j] = self._spawn(self._keep_linked(j))

    def set_denied(self, ids: set[int]) -> None:
        self.denied = {i for i in ids if i != self.id}
        for j in list(self.links):
            if j in self.denied:
                self.links[j].peer.close("partitioned")

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _keep_linked(self, j: int) -> None:
        delay = RECONNECT_MIN
        while not self._stopping.is_set():
            link = self.links.get(j)
            if j in self.denied or (link is not None and not link.peer.closed):
                await asyncio.sleep(0.1)
                continue
            host, port = self.peer_addrs[j]
            began = time.monotonic()
            try:
                assert self._session is not None
                ws = await self._session.ws_connect(f"http://{host}:{port}{P2P_PATH}", max_msg_size=m.MAX_FRAME_SIZE,
                                                    heartbeat=HEARTBEAT, timeout=aiohttp.ClientWSTimeout(ws_close=2),
                                                    autoping=True)
            except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
                log.debug("cannot reach replica %d at %s:%d: %s", j, host, port, exc)
            else:
                await self._serve(Peer(ws, host, port, inbound=False, dialled=(host, port)), expect=j)
            if time.monotonic() - began > 5:
                delay = RECONNECT_MIN
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, RECONNECT_MAX)

    async def _accept(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=m.MAX_FRAME_SIZE, heartbeat=HEARTBEAT)
        await ws.prepare(request)
        peername = request.transport.get_extra_info("peername") if request.transport else None
        host, port = (peername[:2] if peername else ("?", 0))
        await self._serve(Peer(ws, host, port, inbound=True), expect=None)
        return ws

    async def _receive(self, peer: Peer, timeout: float | None) -> m.Message | None:
        """The next decoded frame, or None when the link is over (closing it with a reason)."""
        try:
            msg = await asyncio.wait_for(peer.ws.receive(), timeout)
        except asyncio.TimeoutError:
            peer.close("handshake timed out")
            return None
        if msg.type == aiohttp.WSMsgType.BINARY:
            peer.bytes_in += len(msg.data)
            try:
                return wire.decode(msg.data)
            except DecodeError as exc:
                self.counters.bad_frames += 1
                peer.close(f"malformed frame: {exc}")
                return None
        if msg.type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            peer.close(f"unexpected {msg.type.name} frame")
        else:
            peer.close("closed by the peer")
        return None

    async def _serve(self, peer: Peer, expect: int | None) -> None:
        """Handshake, then read frames into the engine until the link closes."""
        peer.start_writer()
        nonce = secrets.token_bytes(NONCE_SIZE)
        link: Link | None = None
        try:
            if expect is not None:       # we dialled: we speak first
                peer.send(ReplicaHello.make(self.keys[expect], self.id, expect, self.config.engine, self.n, nonce))
            hello = await self._receive(peer, HANDSHAKE_TIMEOUT)
            if hello is None:
                return
            remote = self._check_hello(peer, hello, expect)
            if remote is None:
                return
            if expect is None:           # they dialled: answer
                peer.send(ReplicaHello.make(self.keys[remote], self.id, remote, self.config.engine, self.n, nonce))
            link = Link(peer, remote, LinkKeys(self.keys[remote], nonce, hello.nonce, self.id, remote))
            old = self.links.get(remote)
            self.links[remote] = link
            if old is not None:
                old.peer.close("replaced by a newer link")
            log.info("linked with replica %d (%s)", remote, "inbound" if expect is None else "outbound")
            while not peer.closed:
                frame = await self._receive(peer, None)
                if frame is None:
                    break
                if not isinstance(frame, ReplicaFrame):
                    self.counters.bad_frames += 1
                    peer.close(f"unexpected {frame.NAME} on a replica link")
                    break
                payload = link.keys.open(frame)
                if payload is None:
                    self.counters.bad_frames += 1
                    peer.close("a frame failed authentication")
                    break
                try:
                    msg = codec.decode(payload)
                except DecodeError as exc:
                    self.counters.bad_frames += 1
                    log.warning("replica %d sent an undecodable message: %s", remote, exc)
                    continue
                if remote in self.denied or not self.started:
                    continue
                self.counters.received += 1
                self._run(f"{type(msg).__name__} from {remote}", self.engine.on_message, remote, msg)
        except Exception:  # a bug in serving one link must not take the replica down
            log.exception("error on the link with %s", peer.name)
            peer.close("internal error")
        finally:
            peer.close(peer.close_reason or "disconnected")
            if link is not None:
                if self.links.get(link.remote) is link:
                    del self.links[link.remote]
                log.info("link with replica %d closed: %s", link.remote, peer.close_reason)
            await peer.wait_closed()

    def _check_hello(self, peer: Peer, hello: m.Message, expect: int | None) -> int | None:
        if not isinstance(hello, ReplicaHello):
            peer.close(f"expected a replica hello, got {hello.NAME}")
            return None
        if hello.engine != self.config.engine or hello.n != self.n:
            peer.close(f"the peer runs {hello.engine} with {hello.n} replicas, we run {self.config.engine} with {self.n}")
            return None
        remote = hello.sender
        if hello.receiver != self.id or remote == self.id or remote not in self.keys:
            peer.close("a hello for another replica")
            return None
        if expect is not None and remote != expect:
            peer.close(f"dialled replica {expect}, reached {remote}")
            return None
        if expect is None and remote < self.id:
            peer.close("the replica with the higher id dials")
            return None
        if not hello.verify(self.keys[remote]):
            self.counters.bad_frames += 1
            peer.close("the hello failed authentication")
            log.warning("a hello claiming to be replica %d failed authentication", remote)
            return None
        if remote in self.denied:
            peer.close("partitioned")
            return None
        return remote

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        from minichain.replica.api import make_api

        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT))
        p2p = web.Application()
        p2p.router.add_get(P2P_PATH, self._accept)
        runner = web.AppRunner(p2p, access_log=None)
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, self.config.listen[0], self.config.listen[1])
        await site.start()
        self.listen_port = _bound_port(runner)
        api_runner = web.AppRunner(make_api(self), access_log=None)
        await api_runner.setup()
        self._runners.append(api_runner)
        await web.TCPSite(api_runner, self.config.api[0], self.config.api[1]).start()
        self.api_port = _bound_port(api_runner)

    def request_stop(self) -> None:
        self._stopping.set()

    async def wait_stopped(self) -> None:
        await self._stopping.wait()

    async def stop(self) -> None:
        self._stopping.set()
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush()
        for link in list(self.links.values()):
            link.peer.close("shutting down")
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for runner in self._runners:
            await runner.cleanup()
        if self._session is not None:
            await self._session.close()
        self.decisions.close()

    # -- status ------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        from minichain.replica.adapter import describe

        view = describe(self.engine, self.n)
        return {
            "kind": "replica",
            "engine": self.config.engine,
            "node": self.id,
            "n": self.n,
            "behaviour": self.config.behaviour,
            "honest": self.honest,
            "pid": os.getpid(),
            "started": self.started,
            "restarts": self.restarts,
            "peers": sum(1 for link in self.links.values() if not link.peer.closed),
            "linked": sorted(j for j, link in self.links.items() if not link.peer.closed),
            "denied": sorted(self.denied),
            "position": view["position"],
            "leader": view["leader"],
            "role": view["role"],
            "detail": view["detail"],
            "commit_index": self.log.prefix,
            "decided": len(self.log.values),
            "messages": {"sent": sum(self.counters.sent.values()), "by_type": dict(self.counters.sent),
                         "unsent": self.counters.unsent, "denied": self.counters.denied,
                         "received": self.counters.received, "bad_frames": self.counters.bad_frames},
            "engine_errors": self.counters.engine_errors,
            "flushes": self.counters.flushes,
            "persist_ms_mean": 1000 * self.counters.persist_seconds / self.counters.flushes if self.counters.flushes else None,
            "state_bytes": self.counters.state_bytes,
            "clock": self.clock(),
        }

