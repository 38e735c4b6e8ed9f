"""A replica's REST API: JSON over HTTP on 127.0.0.1, like the node's (``node/api.py``).

    GET  /api/status                      engine, view/term/round, leader, commit index, links, counters
    GET  /api/log?from=K                  the committed log from slot K: [{"slot", "value", "time"}]
    POST /api/submit                      {"payment": {...}, "wait": SECONDS}: hand a client's payment
                                          to the engine; answer {"status": "committed", "slot": S} once
                                          it is, {"status": "rejected", ...} if its coin is spent by
                                          another payment, or {"status": "pending"} after ``wait``
    POST /api/control/peers   (token)     {"peers": {"ID": "HOST:PORT", ...}}: where the others listen
    POST /api/control/start   (token)     run the engine's on_start (or on_recover after a restart)
    POST /api/control/partition (token)   {"deny": [ID, ...]}: refuse and drop links to these replicas
    POST /api/control/shutdown  (token)   stop the process cleanly

The control token is written to ``<datadir>/.cookie`` as the node does (``node/api.py``),
so the testnet's ``NodeClient`` drives nodes and replicas alike.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from typing import TYPE_CHECKING, Any

from aiohttp import web

from minichain.node.api import COOKIE_FILE, ApiError, write_cookie
from minichain.node.api.common import error_middleware
from minichain.replica.ledger import payment_from_json, value_json

if TYPE_CHECKING:
    from minichain.replica.host import ReplicaHost

log = logging.getLogger("minichain.replica.api")

MAX_BODY = 64 * 1024
MAX_WAIT = 60.0
MAX_LOG_ENTRIES = 10_000


def make_api(host: "ReplicaHost") -> web.Application:
    token = write_cookie(host.config.datadir)

    async def body(request: web.Request) -> dict:
        raw = await request.read()
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ApiError(400, "body must be a JSON object")
        return data

    async def status(request: web.Request) -> web.Response:
        return web.json_response(host.status())

    async def committed_log(request: web.Request) -> web.Response:
        try:
            start = int(request.query.get("from", "0"))
        except ValueError:
            raise ApiError(400, "'from' must be a slot number") from None
        entries = host.log.entries(max(0, start))[:MAX_LOG_ENTRIES]
        return web.json_response({"node": host.id, "honest": host.honest, "commit_index": host.log.prefix,
                                  "entries": [{"slot": s, "value": value_json(v)} for s, v in entries]})

    async def submit(request: web.Request) -> web.Response:
        data = await body(request)
        try:
            payment = payment_from_json(data.get("payment"))
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        wait = data.get("wait", 0)
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= MAX_WAIT:
            raise ApiError(400, f"'wait' must be a number of seconds from 0 to {MAX_WAIT:g}")
        if not host.started:
            raise ApiError(503, "the engine has not started yet")
        host.submit(payment)
        return web.json_response(await host.wait_outcome(payment, float(wait)))

    def require_token(request: web.Request) -> None:
        given = request.headers.get("Authorization", "")
        if not given.startswith("Bearer ") or not hmac.compare_digest(given[7:].strip(), token):
            raise ApiError(401, f"this endpoint needs the token in {os.path.join(host.config.datadir, COOKIE_FILE)} "
                                "as 'Authorization: Bearer <token>'")

    def replica_ids(values: Any, what: str) -> list[int]:
        if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise ApiError(400, f"{what} must be a list of replica numbers")
        bad = [v for v in values if not 0 <= v < host.n]
        if bad:
            raise ApiError(400, f"no replica {bad[0]} among {host.n}")
        return values

    async def control(request: web.Request) -> web.Response:
        require_token(request)
        action = request.match_info["action"]
        data = await body(request)
        if action == "peers":
            peers = data.get("peers")
            if not isinstance(peers, dict):
                raise ApiError(400, "'peers' must be an object {ID: \"HOST:PORT\"}")
            from minichain.node.node import parse_hostport

            try:
                addrs = {int(k): parse_hostport(str(v)) for k, v in peers.items()}
            except ValueError as exc:
                raise ApiError(400, f"bad peer address: {exc}") from None
            replica_ids(list(addrs), "the peers' keys")
            host.set_peers({j: a for j, a in addrs.items() if j != host.id})
        elif action == "start":
            host.start_engine()
        elif action == "partition":
            host.set_denied(set(replica_ids(data.get("deny", []), "'deny'")))
        elif action == "shutdown":
            host.request_stop()
        else:
            raise ApiError(404, f"unknown control action {action!r}")
        return web.json_response({"ok": True, "status": host.status()})

    app = web.Application(middlewares=[error_middleware("replica")], client_max_size=MAX_BODY)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/log", committed_log)
    app.router.add_post("/api/submit", submit)
    app.router.add_post("/api/control/{action:.+}", control)
    return app
