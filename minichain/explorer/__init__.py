"""The explorer: a web page served by every node's API listener.

Static HTML, CSS and plain JavaScript (``static/``, shipped as package data, no build
step, nothing from a CDN) render the node's own REST API. ``register(app, view)`` adds
to the API application (it reads the node through the same read-only
:class:`~minichain.node.view.NodeView` as the API):

    GET /                              the page (also /block/ID, /tx/ID, /address/A,
                                       /mempool, /peers, /forks and /network: the
                                       script routes on the path; other paths are the
                                       same page with status 404 and a not-found view)
    GET /explorer/{app.js,style.css,favicon.svg}
    GET /api/tree?depth=N              the block tree around the tip (see tree.py)
    GET /api/events                    live updates, server-sent events (see events.py)

The network view (``/network?nodes=[NAME@]HOST:PORT,...``) draws every listed node's tip on
one merged tree. The browser reads each node's API itself; for that, read-only API
responses (GET) carry CORS headers for origins on loopback or on the API's own host --
another node's explorer on this machine may read them, an arbitrary web site may not.
We chose this over a proxy in the node so that the node never makes HTTP requests on a
page's behalf (no request forgery through it), and so each node's event stream reaches
the page directly. Control endpoints (POST, with the token) get no CORS headers.

Safety of the page: the script builds the DOM with ``textContent`` and attributes only
(no ``innerHTML`` anywhere), and the page is served with a Content-Security-Policy that
allows no inline script, so a peer's user agent or any chain data shows as text.
"""

from __future__ import annotations

import importlib.resources
import re
from typing import TYPE_CHECKING, Iterable
from urllib.parse import urlsplit

from aiohttp import web

from minichain.explorer import events
from minichain.explorer.tree import MAX_DEPTH, tree_window

if TYPE_CHECKING:
    from minichain.node.view import NodeView

__all__ = ["register", "url_for"]

ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
PAGE = "index.html"
# Paths the script knows how to render; anything else is answered 404 (with the page,
# which shows a friendly not-found view).
PAGE_PATHS = re.compile(r"^/(|mempool|peers|forks|network|(block|tx|address)/[^/]+)$")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
NODE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,32}$")  # the same rule as the page's (app.js NODE_SPEC)

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                "connect-src 'self' http: https:; object-src 'none'; base-uri 'none'; "
                                "form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def url_for(api_host: str, api_port: int, nodes: Iterable[tuple] | None = None) -> str:
    """The explorer's address for a node whose API listens on ``api_host:api_port``.

    With ``nodes`` -- API addresses as ``(host, port)`` or ``(host, port, name)`` -- the
    network view of all of them, e.g. ``/network?nodes=node0@127.0.0.1:18445,...``: what
    ``minichain testnet up`` prints. Names are letters, digits, '-' and '_'.
    """
    def hostport(host: str, port: int) -> str:
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    base = f"http://{hostport(api_host, api_port)}/"
    if nodes is None:
        return base
    items = []
    for node in nodes:
        host, port, *rest = node
        name = rest[0] if rest else None
        if name is not None and not NODE_NAME.match(name):
            raise ValueError(f"node name {name!r}: use up to 32 letters, digits, '-' and '_'")
        items.append((f"{name}@" if name else "") + hostport(host, port))
    return base + "network?nodes=" + ",".join(items)


def _static(name: str) -> bytes:
    return importlib.resources.files(__name__).joinpath("static", name).read_bytes()


def allowed_origin(origin: str, request_host: str | None) -> bool:
    """CORS rule for read-only API calls: pages from loopback, or from the address the
    API listens on. ``request_host`` is the local address the request arrived at (never
    the Host header, which the page's own server names: with DNS rebinding, a hostile
    site's Origin and Host agree)."""
    try:
        parts = urlsplit(origin)
        host = parts.hostname
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    return host in LOOPBACK or (request_host is not None and host == request_host)


def register(app: web.Application, view: "NodeView") -> None:
    """Mount the explorer on the API application (call after the API's own routes)."""
    page = _static(PAGE)
    assets = {name: _static(name) for name in ASSETS}

    async def cors(request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if origin and request.method in ("GET", "HEAD") and request.path.startswith("/api/"):
            local = request.transport.get_extra_info("sockname") if request.transport is not None else None
            if allowed_origin(origin, local[0] if local else None):
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers.add("Vary", "Origin")

    app.on_response_prepare.append(cors)

    async def tree(request: web.Request) -> web.Response:
        try:
            depth = int(request.query.get("depth", "20"))
        except ValueError:
            return web.json_response({"error": "depth must be a number"}, status=400)
        if not 1 <= depth <= MAX_DEPTH:
            return web.json_response({"error": f"depth must be 1..{MAX_DEPTH}"}, status=400)
        out = tree_window(view.tree, depth, view.arrivals())
        out["network"] = view.params.name
        out["orphans"] = view.orphan_count()
        return web.json_response(out)

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in assets:
            raise web.HTTPNotFound()
        return web.Response(body=assets[name], content_type=ASSETS[name].split(";")[0],
                            charset="utf-8" if "charset" in ASSETS[name] else None,
                            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    async def html(request: web.Request) -> web.Response:
        path = request.path
        if path == "/api" or path.startswith("/api/"):
            raise web.HTTPNotFound()  # an unknown API path stays a JSON 404
        status = 200 if PAGE_PATHS.match(path) else 404
        return web.Response(body=page, status=status, content_type="text/html", charset="utf-8",
                            headers=SECURITY_HEADERS)

    app.router.add_get("/api/tree", tree)
    events.setup(app, view)
    app.router.add_get("/explorer/{name}", asset)
    app.router.add_get("/{path:.*}", html)  # last: every other GET is the page
