"""What every group of routes shares: the error shape, argument parsing, pages, and the
event loop's budget.

Every user mistake is a 4xx with ``{"error": reason}``; an unexpected failure is a 500
that is logged, and never a traceback in the response.

The loop budget: the API runs on the node's event loop, beside peers, relay and the
miner's new work, so no handler may hold the loop for more than a few milliseconds.
Every list it returns is a page (``limit``, at most :data:`MAX_PAGE`, and a cursor
``after``), built from index range scans, and :func:`page` gives the loop a turn every
:data:`CHUNK` items while it builds one -- and encodes the JSON of each chunk as it goes,
so that no single ``json.dumps`` of a whole page holds the loop either (:class:`Encoded`,
:func:`json_object`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Callable, Iterable, TypeVar

from aiohttp import web

from minichain.core.keys import AddressError, decode_address
from minichain.node.view import NodeView

log = logging.getLogger("minichain.api")

T = TypeVar("T")

MAX_BODY = 2 * 1024 * 1024
MAX_PAGE = 1000   # the most items any page holds
CHUNK = 100       # items built between two turns of the event loop


class ApiError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def error_middleware(whose: str = "node"):
    """A middleware that answers every error as JSON ``{"error": reason}``: an ApiError
    with its status, aiohttp's own 4xx in JSON, anything else a logged 500 that points at
    the ``whose`` log (the node's, or a replica's: replica/api.py uses it too)."""
    internal = f"internal error (see the {whose}'s log)"

    @web.middleware
    async def errors(request: web.Request, handler):
        try:
            return await handler(request)
        except ApiError as exc:
            return web.json_response({"error": exc.reason}, status=exc.status)
        except web.HTTPException as exc:
            if exc.status >= 400 and not (exc.content_type or "").endswith("json"):
                return web.json_response({"error": exc.reason}, status=exc.status)
            raise
        except Exception:
            log.exception("API request %s %s failed", request.method, request.path)
            return web.json_response({"error": internal}, status=500)

    return errors


errors = error_middleware("node")


# -- arguments ---------------------------------------------------------------------------------


MAX_JSON_DEPTH = 32   # what our bodies need is 2; Python's parser recurses, so bound it first


async def body_json(request: web.Request) -> dict:
    """The JSON object of a POST. Only ``Content-Type: application/json``: a web page on
    another site can send a form as text/plain without the browser asking first (no CORS
    preflight), but not JSON, so this refuses cross-site writes."""
    if request.content_type != "application/json":
        raise ApiError(415, "send the body as JSON, with 'Content-Type: application/json'")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "request body too large")
    raw = await request.read()
    if not raw:
        return {}
    if _nesting(raw) > MAX_JSON_DEPTH:
        raise ApiError(400, f"body is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "body must be a JSON object")
    return data


def _nesting(raw: bytes) -> int:
    """The deepest nesting of brackets in ``raw`` (strings included: an over-estimate)."""
    depth = deepest = 0
    for byte in raw.translate(None, _NOT_BRACKETS):
        depth += 1 if byte in b"[{" else -1
        if depth > deepest:
            deepest = depth
    return deepest


_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def field(data: dict, name: str, kind: Any, default: Any = ...) -> Any:
    if name not in data:
        if default is ...:
            raise ApiError(400, f"missing field {name!r}")
        return default
    value = data[name]
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        what = kind.__name__ if isinstance(kind, type) else "number"
        raise ApiError(400, f"field {name!r} must be a {what}")
    return value


def parse_hash(text: str, what: str) -> bytes:
    if len(text) != 64:
        raise ApiError(400, f"{what} must be 64 hex digits, got {len(text)} characters")
    try:
        return bytes.fromhex(text)[::-1]
    except ValueError:
        raise ApiError(400, f"{what} is not hex: {text!r}") from None


def address_arg(view: NodeView, text: str) -> bytes:
    try:
        return decode_address(text, view.params.address_version)
    except AddressError as exc:
        raise ApiError(400, str(exc)) from None


def int_arg(request: web.Request, name: str, default: int, low: int, high: int | None = None) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f"{name} must be a number") from None
    if value < low or (high is not None and value > high):
        raise ApiError(400, f"{name} must be {low}..{high}" if high is not None else f"{name} must be at least {low}")
    return value


def limit_arg(request: web.Request, default: int = MAX_PAGE) -> int:
    """``limit``: how many items a page holds, 1..MAX_PAGE."""
    return int_arg(request, "limit", default, 1, MAX_PAGE)


# -- pages -------------------------------------------------------------------------------------


class Encoded(str):
    """JSON text already encoded: a list a handler built chunk by chunk."""


def json_object(fields: dict, status: int = 200) -> web.Response:
    """A JSON response whose values may be :class:`Encoded` (put in as they are)."""
    body = ",".join(f"{json.dumps(k)}:{v if isinstance(v, Encoded) else json.dumps(v)}" for k, v in fields.items())
    return web.Response(text="{" + body + "}", status=status, content_type="application/json")


async def page(items: Iterable[T], limit: int, build: Callable[[T], dict],
               cursor: Callable[[T], str]) -> tuple[Encoded, str | None]:
    """The first ``limit`` of ``items`` built and encoded as a JSON list, and the cursor
    after the last of them if more follow (else None). Gives the event loop a turn every
    CHUNK items."""
    chunks: list[str] = []
    chunk: list[dict] = []
    last = None
    more = False
    for n, item in enumerate(items):
        if n == limit:
            more = True
            break
        chunk.append(build(item))
        last = item
        if len(chunk) == CHUNK:
            chunks.append(json.dumps(chunk)[1:-1])
            chunk = []
            await asyncio.sleep(0)
    if chunk:
        chunks.append(json.dumps(chunk)[1:-1])
    return Encoded("[" + ",".join(chunks) + "]"), cursor(last) if more else None


async def build_all(items: Iterable[T], build: Callable[[T], dict]) -> Encoded:
    """Every item built and encoded (a list bounded elsewhere, e.g. by the block size), in chunks."""
    out, _ = await page(items, 1 << 62, build, lambda item: "")
    return out
