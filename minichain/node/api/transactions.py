"""Transactions: look one up, submit one or many.

    GET  /api/tx/{txid}            from the mempool, or from the chain through the
                                   transaction index (one index read, one transaction decoded)
    POST /api/tx   {"hex": ".."}   submit a signed transaction: {"txid": ..} or an error
    POST /api/txs  {"hex": [..]}   submit up to MAX_BATCH at once, in order (a later one may
                                   spend an earlier one): {"accepted": n, "rejected": n,
                                   "results": [{"txid": ..} | {"error": .., "status": ..}, ..]}

The fast path: a transaction is decoded once, and keeps the bytes it came in as its
serialization (``core/tx.py``), so its txid is one hash of those bytes and nothing is
re-encoded; its signatures are checked through the node's signature cache (so the block
that confirms it is not checked again); and the node announces what was admitted to each
peer in one inv per relay tick (``Node.submit_transaction``). A batch is admitted in
slices of at most LOOP_SLICE seconds, with a turn of the event loop between them, so
blocks keep flowing while a large batch is checked (the loop budget of common.py).

Verification stays on the loop's thread: libsecp256k1's calls release the GIL, but a
check is several short calls with Python between them, and beside a busy event loop a
worker thread gets the GIL back once per switch interval -- it verified at about a
quarter of its speed alone (``python -m benchmarks.crypto``, the thread rows), so a pool
of threads would slow admission down rather than take work off the loop.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from minichain.chainstate import MempoolError
from minichain.core.encoding import DecodeError
from minichain.core.tx import Transaction
from minichain.node.api.common import ApiError, body_json, field, parse_hash
from minichain.node.api.shapes import spent_outputs, tx_json
from minichain.node.view import NodeControl, NodeView

MAX_BATCH = 1000     # transactions in one POST /api/txs (well inside MAX_BODY)
LOOP_SLICE = 0.005   # seconds of admission work between two turns of the event loop


class Transactions:
    def __init__(self, view: NodeView, control: NodeControl) -> None:
        self.view = view
        self.control = control

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/tx/{txid}", self.tx), web.post("/api/tx", self.submit),
                web.post("/api/txs", self.submit_many)]

    async def tx(self, request: web.Request) -> web.Response:
        view = self.view
        txid = parse_hash(request.match_info["txid"], "txid")
        entry = view.mempool_entry(txid)
        if entry is not None:
            out = tx_json(view, entry.tx, spent_outputs(view, entry.tx))
            out["fee"] = entry.fee
            out["in_mempool"] = True
            return web.json_response(out)
        found = view.transaction(txid)
        if found is None:
            raise ApiError(404, f"unknown transaction {request.match_info['txid']}")
        t, loc = found
        out = tx_json(view, t, loc.spent, loc.height, loc.block_hash)
        if not t.is_coinbase():
            out["fee"] = loc.spent_value - sum(o.value for o in t.outputs)
        out["in_mempool"] = False
        return web.json_response(out)

    async def submit(self, request: web.Request) -> web.Response:
        data = await body_json(request)
        t = self._admit(field(data, "hex", str))
        return web.json_response({"txid": t.txid_hex()})

    async def submit_many(self, request: web.Request) -> web.Response:
        data = await body_json(request)
        items = field(data, "hex", list)
        if len(items) > MAX_BATCH:
            raise ApiError(400, f"at most {MAX_BATCH} transactions per request, got {len(items)}")
        results = []
        accepted = 0
        began = time.perf_counter()
        for item in items:
            try:
                if not isinstance(item, str):
                    raise ApiError(400, "each item of 'hex' must be a string")
                t = self._admit(item)
            except ApiError as exc:
                results.append({"error": exc.reason, "status": exc.status})
            else:
                results.append({"txid": t.txid_hex()})
                accepted += 1
            if time.perf_counter() - began > LOOP_SLICE:
                await asyncio.sleep(0)  # let peers and other requests have the loop
                began = time.perf_counter()
        return web.json_response({"accepted": accepted, "rejected": len(items) - accepted, "results": results})

    def _admit(self, raw_hex: str) -> Transaction:
        """Decode and submit one transaction; ApiError with the status and reason if not."""
        try:
            raw = bytes.fromhex(raw_hex)
        except ValueError:
            raise ApiError(400, "field 'hex' is not hex") from None
        try:
            t = Transaction.deserialize(raw)
        except DecodeError as exc:
            raise ApiError(400, f"not a transaction: {exc}") from None
        try:
            self.control.submit_transaction(t)
        except MempoolError as exc:
            raise ApiError(422 if exc.reason != "txn-already-in-mempool" else 409,
                           f"{exc.reason}: {exc.message}") from None
        return t
