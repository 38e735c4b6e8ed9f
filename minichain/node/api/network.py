"""The node and its links.

    GET /api/status   height, tip, peers, mempool, mining, traffic, and ``loop_lag``: how
                      late the node's event loop runs (milliseconds; see node/lag.py)
    GET /api/peers    links, known addresses, bans, partition denials
"""

from __future__ import annotations

from aiohttp import web

from minichain.node.view import NodeView


class Network:
    def __init__(self, view: NodeView) -> None:
        self.view = view

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/status", self.status), web.get("/api/peers", self.peers)]

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response(self.view.status())

    async def peers(self, request: web.Request) -> web.Response:
        view = self.view
        return web.json_response({
            "peers": view.peers(),
            "known_addresses": [f"{h}:{p}" for h, p in view.known_addresses()],
            "bans": [{"address": a, "seconds_left": int(left)} for a, left in view.bans()],
            "denied": [f"{h}:{p}" for h, p in view.denied()],
        })
