"""Transactions: look one up, submit one.

    GET  /api/tx/{txid}         from the mempool, or from the chain through the transaction
                                index (one index read, one transaction decoded)
    POST /api/tx  {"hex": ..}   submit a signed transaction
"""

from __future__ import annotations

from aiohttp import web

from minichain.chainstate import MempoolError
from minichain.core.encoding import DecodeError
from minichain.core.tx import Transaction
from minichain.node.api.common import ApiError, body_json, field, parse_hash
from minichain.node.api.shapes import spent_outputs, tx_json
from minichain.node.view import NodeControl, NodeView


class Transactions:
    def __init__(self, view: NodeView, control: NodeControl) -> None:
        self.view = view
        self.control = control

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/tx/{txid}", self.tx), web.post("/api/tx", self.submit)]

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
        raw_hex = field(data, "hex", str)
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
        return web.json_response({"txid": t.txid_hex()})
