"""Control endpoints: what an operator may ask of the node, with the token.

    POST /api/control/peers/add      {"address": "HOST:PORT"}
    POST /api/control/peers/remove   {"address": "HOST:PORT"}
    POST /api/control/peers/ban      {"address": "HOST:PORT", "seconds": N}
    POST /api/control/partition      {"deny": ["HOST:PORT", ...]}
    POST /api/control/mining/start   {"address": A, "threads": N, "duty": F}
    POST /api/control/mining/stop
    POST /api/control/generate       {"address": A, "blocks": N}
    POST /api/control/shutdown

The token is a secret the node writes to ``<datadir>/.cookie`` (mode 0600) when it
starts, sent as ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import os
import secrets

from aiohttp import web

from minichain.node.api.common import ApiError, address_arg, body_json, field
from minichain.node.api.shapes import hx
from minichain.node.view import NodeControl, NodeView

COOKIE_FILE = ".cookie"
MAX_BAN_SECONDS = 10 * 365 * 24 * 3600


def write_cookie(datadir: str) -> str:
    """Create a fresh token, readable only by the owner, and return it."""
    token = secrets.token_hex(32)
    path = os.path.join(datadir, COOKIE_FILE)
    os.makedirs(datadir, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    os.chmod(path, 0o600)
    return token


def read_cookie(datadir: str) -> str | None:
    try:
        with open(os.path.join(datadir, COOKIE_FILE)) as f:
            return f.read().strip()
    except OSError:
        return None


def _hostport(text: str) -> tuple[str, int]:
    from minichain.node.node import parse_hostport

    try:
        return parse_hostport(text)
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


class Control:
    def __init__(self, view: NodeView, control: NodeControl, token: str) -> None:
        self.view = view
        self.control = control
        self.token = token

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/api/control/{action:.+}", self.act)]

    def require_token(self, request: web.Request) -> None:
        given = request.headers.get("Authorization", "")
        if not given.startswith("Bearer ") or not hmac.compare_digest(given[7:].strip(), self.token):
            # Which file, not where: the data directory's path is nobody's business here.
            raise ApiError(401, f"this endpoint needs the node's token (the {COOKIE_FILE} file in its data "
                                "directory) as 'Authorization: Bearer <token>'")

    async def act(self, request: web.Request) -> web.Response:
        self.require_token(request)
        view, control = self.view, self.control
        action = request.match_info["action"]
        data = await body_json(request)
        if action == "peers/add":
            control.add_peer(_hostport(field(data, "address", str)))
        elif action == "peers/remove":
            control.remove_peer(_hostport(field(data, "address", str)))
        elif action == "peers/ban":
            host, port = _hostport(field(data, "address", str))
            seconds = field(data, "seconds", int, int(view.default_ban_seconds))
            if not 1 <= seconds <= MAX_BAN_SECONDS:
                raise ApiError(400, f"seconds must be 1..{MAX_BAN_SECONDS}")
            control.ban(host, port, float(seconds))
        elif action == "partition":
            control.partition({_hostport(str(a)) for a in field(data, "deny", list)})
        elif action == "mining/start":
            addr = field(data, "address", str)
            address_arg(view, addr)
            threads = field(data, "threads", int, 1)
            duty = float(field(data, "duty", (int, float), 1.0))
            if not 1 <= threads <= 256 or not 0 < duty <= 1:
                raise ApiError(400, "threads must be 1..256 and duty in (0, 1]")
            control.start_mining(addr, threads, duty)
        elif action == "mining/stop":
            control.stop_mining()
        elif action == "generate":
            pkh = address_arg(view, field(data, "address", str))
            count = field(data, "blocks", int)
            if not 1 <= count <= 10_000:
                raise ApiError(400, "blocks must be 1..10000")
            hashes = await control.generate(count, pkh)
            return web.json_response({"blocks": [hx(h) for h in hashes], "height": view.height})
        elif action == "shutdown":
            control.shutdown()
        else:
            raise ApiError(404, f"unknown control action {action!r}")
        return web.json_response({"ok": True, "status": view.status()})
