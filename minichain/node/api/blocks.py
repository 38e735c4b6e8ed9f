"""Blocks and the chain: one block, the latest blocks (paged), the tips, arrival times.

    GET /api/block/{hash|height}[?full=0]   a block with its transactions (full=0: txids only)
    GET /api/blocks?limit=N[&after=H]       blocks of the active chain below height H (default:
                                            from the tip), tip first; the next page is
                                            after=<height of the last block>. ``count=N`` is
                                            the older spelling of ``limit`` (1..100)
    GET /api/tips                           like Bitcoin's getchaintips
    GET /api/arrivals                       when each recent block was first stored (wall clock)

A list of blocks reads each block's size, transaction count and miner from the index
(``blockinfo``) and decodes no block; one block's page decodes that block only.
"""

from __future__ import annotations

from aiohttp import web

from minichain.node.api.common import MAX_PAGE, ApiError, build_all, int_arg, json_object, page, parse_hash
from minichain.node.api.shapes import block_json, hx, spent_outputs, tx_json
from minichain.node.view import NodeView


class Blocks:
    def __init__(self, view: NodeView) -> None:
        self.view = view

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/block/{id}", self.block),
            web.get("/api/blocks", self.blocks),
            web.get("/api/tips", self.tips),
            web.get("/api/arrivals", self.arrivals),
        ]

    async def block(self, request: web.Request) -> web.Response:
        view = self.view
        ident = request.match_info["id"]
        if ident.isascii() and ident.isdigit() and len(ident) < 12:   # not '²', which isdigit() too
            height = int(ident)
            entry = view.active_entry(height)
            if entry is None:
                raise ApiError(404, f"no block at height {height} (the tip is at {view.height})")
        else:
            entry = view.entry(parse_hash(ident, "block hash"))
            if entry is None:
                raise ApiError(404, f"unknown block {ident}")
        blk = view.block(entry.hash) if entry.have_data else None
        out = block_json(view, entry, block=blk)
        if blk is not None:
            if request.query.get("full", "1") == "0":
                out["transactions"] = [tx.txid_hex() for tx in blk.transactions]
            elif view.is_active(entry):
                def confirmed(tx):
                    loc = view.tx_location(tx.txid)
                    return tx_json(view, tx, loc.spent if loc is not None else spent_outputs(view, tx),
                                   entry.height, entry.hash)

                out["transactions"] = await build_all(blk.transactions, confirmed)
            else:
                out["transactions"] = await build_all(blk.transactions,
                                                      lambda tx: tx_json(view, tx, spent_outputs(view, tx)))
        return json_object(out)

    async def blocks(self, request: web.Request) -> web.Response:
        view = self.view
        if "limit" in request.query or "count" not in request.query:
            limit = int_arg(request, "limit", 10, 1, MAX_PAGE)
        else:
            try:
                limit = min(100, max(1, int(request.query["count"])))
            except ValueError:
                raise ApiError(400, "count must be a number") from None
        top = int_arg(request, "after", view.height + 1, 0) - 1
        entries = (view.active_entry(h) for h in range(min(top, view.height), -1, -1))

        def build(entry) -> dict:
            return block_json(view, entry, view.block_summary(entry.hash))

        out, _ = await page((e for e in entries if e is not None), limit, build, lambda e: str(e.height))
        return web.Response(text=out, content_type="application/json")

    async def tips(self, request: web.Request) -> web.Response:
        return web.json_response([{"height": t["height"], "hash": hx(t["hash"]), "branchlen": t["branchlen"],
                                   "status": t["status"]} for t in self.view.tree.chain_tips()])

    async def arrivals(self, request: web.Request) -> web.Response:
        """When each recent block was first stored here (wall clock), for measuring propagation."""
        return web.json_response({hx(h): t for h, t in self.view.arrivals().items()})
