"""Prometheus metrics.

    GET /metrics   the node's metrics (node/metrics.py) in Prometheus's text format, or
                   OpenMetrics when the scraper's Accept header prefers it; no token
"""

from __future__ import annotations

from aiohttp import web

from minichain.node.view import NodeView


class Metrics:
    def __init__(self, view: NodeView) -> None:
        self.view = view

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/metrics", self.metrics)]

    async def metrics(self, request: web.Request) -> web.Response:
        body, content_type = self.view.metrics(request.headers.get("Accept"))
        return web.Response(body=body, headers={"Content-Type": content_type})
