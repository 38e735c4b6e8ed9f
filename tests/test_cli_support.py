"""A real node (the aiohttp API, mempool and chain state, in memory) served from a
background thread, for command-line tests that need a node but not a process.

Blocks are mined here in Python at regtest's trivial target (about two hashes each), so
these tests do not need the compiled mining kernel; tests/e2e/test_wallet_e2e.py runs
the same commands against real node processes that mine with it.
"""

from __future__ import annotations

import asyncio
import threading
import time

from minichain import params
from minichain.core.keys import decode_address
from minichain.mining.template import build_template
from minichain.node.node import Node, NodeConfig
from tests.chainbuilder import mine as python_mine


class InProcessNode:
    def __init__(self, datadir: str, network: params.Params = params.regtest) -> None:
        self.params = network
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-node", daemon=True)
        self.thread.start()
        config = NodeConfig(params=network, datadir=datadir, listen=("127.0.0.1", 0), api=("127.0.0.1", 0),
                            discover=False, store="memory")
        self.node: Node = self.call(lambda: Node(config))
        asyncio.run_coroutine_threadsafe(self.node.start(), self.loop).result(30)
        self.url = f"http://127.0.0.1:{self.node.api_port}"
        self.datadir = datadir
        self._extra = 0

    def call(self, fn):
        """Run ``fn()`` on the node's event loop thread and return its result."""
        async def run():
            return fn()
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(60)

    def _mine(self, count: int, pkh: bytes) -> list[bytes]:
        hashes = []
        for _ in range(count):
            self._extra += 1
            template = build_template(self.node.chain, self.node.mempool, pkh, int(time.time()), self._extra)
            block = template.with_header(python_mine(template.block.header, self.params))
            self.node.process_block(block)
            hashes.append(block.hash)
        return hashes

    def deliver(self, blocks) -> None:
        """Hand ready-made blocks to the node, as if a peer had sent them."""
        def all_of_them():
            for block in blocks:
                assert self.node.process_block(block).status.value == "connected"
        self.call(all_of_them)

    def mine(self, count: int, address: str) -> list[str]:
        pkh = decode_address(address, self.params.address_version)
        return [h[::-1].hex() for h in self.call(lambda: self._mine(count, pkh))]

    def python_generate(self) -> list[int]:
        """Serve the generate control endpoint with Python mining instead of the kernel;
        returns the list that records the batch size of every call."""
        calls: list[int] = []

        async def generate(count: int, pkh: bytes) -> list[bytes]:
            calls.append(count)
            return self._mine(count, pkh)

        self.node.generate = generate
        return calls

    @property
    def height(self) -> int:
        return self.call(lambda: self.node.chain.height)

    def mempool_txids(self) -> set[str]:
        return self.call(lambda: {e.tx.txid_hex() for e in self.node.mempool.entries()})

    def close(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.node.stop(), self.loop).result(30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
