"""A hostile (or merely odd) peer for end-to-end tests: it speaks the node's WebSocket
protocol on 127.0.0.1, and can flood, stall, or never read. Plus the node's resident
memory, read from /proc, to hold attacks to a memory budget."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Callable

import aiohttp

from minichain import params
from minichain.core.block import Block, BlockHeader
from minichain.core.genesis import genesis_block
from minichain.core.tx import TxOut, make_coinbase
from minichain.core.validation import block_subsidy
from minichain.node import messages as m
from tests.chainbuilder import assemble, mine
from tests.e2e.harness import NodeProcess

P = params.regtest
GENESIS = genesis_block(P)


def rss_mb(node: NodeProcess) -> float:
    """The node process's resident set size in MB."""
    assert node.proc is not None
    with open(f"/proc/{node.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def dir_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def tip_header(node: NodeProcess) -> BlockHeader:
    info = node.get(f"/api/block/{node.status()['height']}?full=0")
    return BlockHeader(info["version"], bytes.fromhex(info["previous"] or "00" * 32)[::-1],
                       bytes.fromhex(info["merkle_root"])[::-1], info["time"], int(info["bits"], 16), info["nonce"])


def big_blocks(parent: BlockHeader, height: int, count: int, size: int = 950_000) -> list[Block]:
    """``count`` valid blocks of about ``size`` bytes on ``parent`` (a coinbase with many
    one-unit outputs: large without any signature to make or check)."""
    outputs = size // 28
    blocks = []
    t = max(parent.time + 1, int(time.time()))
    for i in range(count):
        h = height + i
        value = block_subsidy(h, P) // outputs
        cb = make_coinbase(h, [TxOut(value, bytes([i % 256]) * 20)] * outputs, extra_nonce=h)
        block = assemble(parent, [cb], P, time=t + i)
        blocks.append(block)
        parent = block.header
    return blocks


def low_work_branch(parent: BlockHeader, length: int, tag: int) -> list[BlockHeader]:
    """``length`` headers chained on ``parent`` (proof of work at regtest's target)."""
    out = []
    for i in range(length):
        header = mine(BlockHeader(1, parent.hash, tag.to_bytes(8, "little") + i.to_bytes(24, "little"),
                                  parent.time + 1, parent.bits, 0), P)
        out.append(header)
        parent = header
    return out


class Peer:
    """One hostile link. ``async with Peer(node, port) as p`` handshakes (announcing
    listen port ``port``), then ``p.send``/``p.recv`` and ``p.closed``."""

    def __init__(self, node: NodeProcess, listen_port: int, *, read: bool = True) -> None:
        self.node = node
        self.listen_port = listen_port
        self.read = read
        self.received: list[m.Message] = []
        self.rejects: list[str] = []
        self._session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def __aenter__(self) -> "Peer":
        self._session = aiohttp.ClientSession()
        self.ws = await self._session.ws_connect(f"http://127.0.0.1:{self.node.p2p_port}/p2p", max_msg_size=0,
                                                 autoping=True)
        await self.send(m.Version(1, GENESIS.hash, 0, "/attacker/", self.listen_port, 1000 + self.listen_port))
        await self.send(m.Verack())
        return self

    async def __aexit__(self, *exc) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._session is not None:
            await self._session.close()

    @property
    def closed(self) -> bool:
        return self.ws is None or self.ws.closed

    async def send(self, msg: m.Message | bytes) -> bool:
        if self.closed:
            return False
        try:
            await self.ws.send_bytes(msg if isinstance(msg, bytes) else m.encode(msg))
        except (ConnectionError, RuntimeError):
            return False
        return True

    async def recv(self, timeout: float = 10.0, until: Callable[[m.Message], bool] | None = None) -> m.Message | None:
        """The next message (or the first that satisfies ``until``); None when the link
        closed or nothing came in ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                frame = await asyncio.wait_for(self.ws.receive(), left)
            except asyncio.TimeoutError:
                return None
            if frame.type != aiohttp.WSMsgType.BINARY:
                if frame.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING,
                                  aiohttp.WSMsgType.ERROR):
                    return None
                continue
            msg = m.decode(frame.data)
            self.received.append(msg)
            if isinstance(msg, m.Reject):
                self.rejects.append(msg.reason)
            if until is None or until(msg):
                return msg
        return None

    async def drain(self, seconds: float) -> None:
        """Read (and answer pings) for ``seconds``."""
        deadline = time.monotonic() + seconds
        while not self.closed and time.monotonic() < deadline:
            msg = await self.recv(deadline - time.monotonic())
            if isinstance(msg, m.Ping):
                await self.send(m.Pong(msg.nonce))

    async def wait_closed(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            await self.recv(min(1.0, deadline - time.monotonic()))
        return self.closed


async def deliver(node: NodeProcess, blocks: list[Block], listen_port: int = 41999) -> None:
    """Hand ``blocks`` to ``node`` the way an honest peer would: headers, then the blocks
    it asks for."""
    by_hash = {b.hash: b for b in blocks}
    async with Peer(node, listen_port) as p:
        for i in range(0, len(blocks), m.MAX_HEADERS):
            await p.send(m.Headers([b.header for b in blocks[i:i + m.MAX_HEADERS]]))
        wanted = set(by_hash)
        while wanted:
            msg = await p.recv(30, until=lambda x: isinstance(x, m.GetData))
            assert msg is not None, f"the node asked for only part of the blocks ({len(wanted)} left)"
            for kind, h in msg.items:
                if kind == m.INV_BLOCK and h in by_hash:
                    await p.send(m.BlockMessage(by_hash[h]))
                    wanted.discard(h)
        await p.drain(1.0)


def run(coro):
    return asyncio.run(coro)
