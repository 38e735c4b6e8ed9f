"""A small, synchronous client for a node's REST API (see ``minichain/node/api/``).

The wallet, the ``chain``/``mine`` commands and the testnet supervisor all talk to
nodes through this one class, so every caller gets the same plain-language errors:

* :class:`NodeUnreachable` -- nothing answered at the URL (it names the URL tried);
* :class:`NodeRequestError` -- the node answered with an error (its ``{"error": ...}``
  text and the HTTP status);
* :class:`NodeError` -- the base class, also raised when the answer is not the JSON a
  minichain node sends (something else is listening on that port).

Lists come in pages (the node answers at most ``MAX_PAGE`` items per request, with a
cursor for the next page); the ``iter_*`` methods follow the cursors to the end.

It uses the standard library's urllib: a command line makes one request at a time and
should not pay for an event loop. Nothing here ever sends a private key; the only
secret it may carry is the node's control token (``<datadir>/.cookie``).
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Iterator

DEFAULT_NODE_URL = "http://127.0.0.1:8332"
COOKIE_FILE = ".cookie"  # the name the node writes its token under (node/api/control.py)
MAX_PAGE = 1000          # the most items a node puts in one page (node/api/common.py)


class NodeError(Exception):
    """Talking to the node failed; ``str()`` is a sentence a user can act on."""


class NodeUnreachable(NodeError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            f"cannot reach the node at {url} ({reason}). Is 'minichain node' running there? "
            "Point at it with --node URL or the MINICHAIN_NODE environment variable."
        )
        self.url = url
        self.reason = reason


class NodeRequestError(NodeError):
    """The node refused the request: ``status`` is the HTTP code, ``message`` its reason."""

    def __init__(self, status: int, message: str, path: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.path = path


def normalize_url(url: str) -> str:
    """'127.0.0.1:8332', 'localhost:8332/' or 'http://h:p' -> 'http://h:p'.

    Raises ValueError for a URL that cannot be a node's API address.
    """
    text = (url or "").strip()
    if not text:
        raise ValueError("the node URL is empty")
    if "://" not in text:
        text = "http://" + text
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"node URL {url!r} must start with http:// or https://")
    if not parts.hostname:
        raise ValueError(f"node URL {url!r} has no host")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(f"node URL {url!r} has a port that is not a number") from None
    path = parts.path.rstrip("/")
    if path.endswith("/api"):
        path = path[: -len("/api")]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def read_cookie(datadir: str) -> str | None:
    """The control token a node running on ``datadir`` wrote, or None if there is none."""
    try:
        with open(os.path.join(datadir, COOKIE_FILE)) as f:
            token = f.read().strip()
    except OSError:
        return None
    return token or None


class NodeClient:
    """One node's REST API. ``token`` is needed only for the control endpoints."""

    def __init__(self, url: str = DEFAULT_NODE_URL, *, token: str | None = None, timeout: float = 30.0,
                 token_hint: str | None = None) -> None:
        self.url = normalize_url(url)
        self.token = token
        self.timeout = timeout
        # Where the token should have come from, for the error when it is missing.
        self.token_hint = token_hint

    def __repr__(self) -> str:  # never shows the token
        return f"NodeClient({self.url!r})"

    # -- transport --------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, *, auth: bool = False,
                timeout: float | None = None) -> Any:
        url = self.url + path
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if auth:
            if not self.token:
                where = f" (looked in {self.token_hint})" if self.token_hint else ""
                raise NodeError(
                    f"this needs the node's control token, which it writes to <datadir>/{COOKIE_FILE} "
                    f"when it starts{where}; pass the node's --datadir"
                )
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout if timeout is None else timeout) as resp:
                return self._decode(resp.read(), path)
        except urllib.error.HTTPError as exc:
            payload = exc.read()
            try:
                message = json.loads(payload)["error"]
            except (ValueError, KeyError, TypeError):
                message = f"HTTP {exc.code} {exc.reason}"
            raise NodeRequestError(exc.code, str(message), path) from None
        except urllib.error.URLError as exc:
            raise NodeUnreachable(self.url, _reason(exc.reason)) from None
        except (socket.timeout, TimeoutError):
            raise NodeUnreachable(self.url, f"no answer within {self.timeout:g} seconds") from None
        except (ConnectionError, OSError) as exc:  # reset mid-answer, and the like
            raise NodeUnreachable(self.url, _reason(exc)) from None

    def _decode(self, raw: bytes, path: str) -> Any:
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise NodeError(
                f"{self.url}{path} did not answer with JSON; is that really a minichain node's API port?"
            ) from None

    def get(self, path: str, **query: Any) -> Any:
        query = {k: v for k, v in query.items() if v is not None}
        if query:
            path += "?" + urllib.parse.urlencode(query)
        return self.request("GET", path)

    # -- read endpoints ---------------------------------------------------------------------

    def status(self) -> dict:
        return self.get("/api/status")

    def block(self, ident: str | int, *, full: bool = True) -> dict:
        return self.get(f"/api/block/{_segment(ident)}", full=None if full else 0)

    def blocks(self, count: int = 10, *, after: int | None = None) -> list[dict]:
        """Up to ``count`` blocks of the active chain, tip first; with ``after``, those
        below that height (the next page: the last block's height)."""
        return self.get("/api/blocks", limit=count, after=after)

    def tx(self, txid: str) -> dict:
        return self.get(f"/api/tx/{_segment(txid)}")

    def address(self, address: str, min_conf: int = 1, *, limit: int | None = None) -> dict:
        """Balance and counts, and the first page of history and coins (``history_next``
        and ``utxos_next`` are the cursors of the rest, or None)."""
        return self.get(f"/api/address/{_segment(address)}", min_conf=min_conf, limit=limit)

    def address_history(self, address: str, *, after: str | None = None, limit: int | None = None) -> dict:
        """One page of an address's history, newest first: {"history": [...], "next": cursor}."""
        return self.get(f"/api/address/{_segment(address)}/history", after=after, limit=limit)

    def address_utxos(self, address: str, *, after: str | None = None, limit: int | None = None) -> dict:
        """One page of an address's unspent outputs, newest first: {"utxos": [...], "next": cursor}."""
        return self.get(f"/api/address/{_segment(address)}/utxos", after=after, limit=limit)

    def iter_address_history(self, address: str, *, after: str | None = None) -> Iterator[tuple[dict, dict]]:
        """(entry, the page it came in) for the whole history from ``after``, page by page."""
        return self._follow(lambda cursor: self.address_history(address, after=cursor), "history", after)

    def iter_address_utxos(self, address: str, *, after: str | None = None) -> Iterator[tuple[dict, dict]]:
        """(coin, the page it came in) for every unspent output from ``after``, page by page."""
        return self._follow(lambda cursor: self.address_utxos(address, after=cursor), "utxos", after)

    @staticmethod
    def _follow(fetch, key: str, cursor: str | None) -> Iterator[tuple[dict, dict]]:
        while True:
            page = fetch(cursor)
            for item in page[key]:
                yield item, page
            cursor = page.get("next")
            if not cursor:
                return

    def mempool(self, *, limit: int | None = None, after: str | None = None) -> dict:
        """Size, bytes and a page of transactions, best fee rate first (``next``: the cursor of the rest)."""
        return self.get("/api/mempool", limit=limit, after=after)

    def peers(self) -> dict:
        return self.get("/api/peers")

    def tips(self) -> list[dict]:
        return self.get("/api/tips")

    def submit_tx(self, raw_hex: str) -> str:
        """Submit a signed transaction; return its txid. A refusal raises
        :class:`NodeRequestError` whose message is the node's "reason: explanation"."""
        return self.request("POST", "/api/tx", {"hex": raw_hex})["txid"]

    # -- control endpoints (token) ----------------------------------------------------------

    def control(self, action: str, body: dict | None = None, *, timeout: float | None = None) -> dict:
        return self.request("POST", f"/api/control/{action}", body or {}, auth=True, timeout=timeout)

    def generate(self, blocks: int, address: str, *, timeout: float | None = 3600.0) -> dict:
        """Mine ``blocks`` blocks paying ``address`` now (Bitcoin: generatetoaddress).
        Returns {"blocks": [hash, ...], "height": N}. The long default timeout is for
        testnet difficulty, where a block takes real work."""
        return self.control("generate", {"blocks": blocks, "address": address}, timeout=timeout)


def _segment(value: str | int) -> str:
    return urllib.parse.quote(str(value), safe="")


def _reason(exc: object) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"unknown host: {exc.strerror or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)
