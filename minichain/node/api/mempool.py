"""The mempool, a page at a time.

    GET /api/mempool[?limit=N&after=CURSOR]   size and bytes, and a page of its transactions,
                                              best fee rate first (ties: oldest first), with
                                              ``next``: the ``after`` of the following page

The cursor is the last entry's sort key (fee, size and arrival number), so a page continues
after it even if that transaction has left the pool meanwhile.
"""

from __future__ import annotations

import asyncio
import heapq

from aiohttp import web

from minichain.node.api.common import CHUNK, ApiError, limit_arg
from minichain.node.api.shapes import hx
from minichain.node.view import NodeView


def _key(fee: int, size: int, sequence: int) -> tuple[float, int]:
    return (-fee / size, sequence)


class MempoolRoutes:
    def __init__(self, view: NodeView) -> None:
        self.view = view

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/mempool", self.mempool)]

    async def mempool(self, request: web.Request) -> web.Response:
        view = self.view
        limit = limit_arg(request)
        after = request.query.get("after")
        bound = None
        if after is not None:
            try:
                fee, size, seq = (int(x) for x in after.split("."))
                if size <= 0:
                    raise ValueError
            except ValueError:
                raise ApiError(400, f"after={after!r} is not a cursor: pass the 'next' of the previous page") from None
            bound = _key(fee, size, seq)
        # A page of the pool without sorting all of it: keys in chunks, then the smallest.
        entries = view.mempool_snapshot()
        keyed = []
        for n in range(0, len(entries), CHUNK * 10):
            for e in entries[n:n + CHUNK * 10]:
                key = _key(e.fee, e.size, e.sequence)
                if bound is None or key > bound:
                    keyed.append((key, e))
            await asyncio.sleep(0)
        chosen = heapq.nsmallest(limit + 1, keyed, key=lambda ke: ke[0])
        more = len(chosen) > limit
        chosen = chosen[:limit]
        last = chosen[-1][1] if chosen else None
        return web.json_response({
            "size": view.mempool_size(), "bytes": view.mempool_bytes(),
            "transactions": [{"txid": hx(e.txid), "fee": e.fee, "size": e.size, "fee_rate": e.fee_rate,
                              "depends": [hx(p) for p in e.parents]} for _, e in chosen],
            "next": f"{last.fee}.{last.size}.{last.sequence}" if more and last is not None else None,
        })
