"""The REST API: JSON over plain HTTP, on its own listener (127.0.0.1 by default).

Read endpoints are open; control endpoints need the secret token the node writes to
``<datadir>/.cookie`` (mode 0600), sent as ``Authorization: Bearer <token>``.
Every user mistake is a 4xx with ``{"error": reason}``; an unexpected failure is a 500
that is logged, and never a traceback in the response.

    GET  /api/status                  height, tip, peers, mempool, mining
    GET  /api/block/{hash|height}     a block with its transactions
    GET  /api/tx/{txid}               a transaction, from the chain or the mempool
    GET  /api/address/{address}       balance (confirmed, unconfirmed), UTXOs, history
    GET  /api/mempool                 pool transactions, best fee rate first
    GET  /api/peers                   links, known addresses, bans
    GET  /api/tips                    like Bitcoin's getchaintips
    GET  /api/blocks?count=N          the latest N blocks, tip first
    GET  /api/arrivals                when each recent block was first stored (wall clock)
    GET  /api/tree?depth=N            the block tree around the tip   } the explorer
    GET  /api/events                  live updates (server-sent events) } (minichain/explorer)
    POST /api/tx          {"hex": ..} submit a signed transaction
    POST /api/control/... (token)     peers/add, peers/remove, peers/ban, partition,
                                      mining/start, mining/stop, generate, shutdown
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
from typing import TYPE_CHECKING, Any

from aiohttp import web

from minichain.core.encoding import DecodeError
from minichain.core.keys import AddressError, decode_address, encode_address
from minichain.core.tx import OutPoint, Transaction
from minichain.chainstate import MempoolError

if TYPE_CHECKING:
    from minichain.node.node import Node

log = logging.getLogger("minichain.api")

COOKIE_FILE = ".cookie"
MAX_BODY = 2 * 1024 * 1024


class ApiError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


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


# -- JSON shapes -----------------------------------------------------------------------------


def hx(h: bytes) -> str:
    """A hash in display (reversed) order."""
    return h[::-1].hex()


def tx_json(node: "Node", tx: Transaction, block_height: int | None = None, block_hash: bytes | None = None) -> dict:
    version = node.params.address_version
    inputs = []
    for txin in tx.inputs:
        if tx.is_coinbase():
            inputs.append({"coinbase": txin.signature.hex()})
            continue
        item: dict[str, Any] = {"txid": hx(txin.prevout.txid), "vout": txin.prevout.index}
        if txin.pubkey:
            from minichain.core.hashing import hash160

            item["address"] = encode_address(hash160(txin.pubkey), version)
        spent = _spent_output(node, txin.prevout)
        if spent is not None:
            item["value"] = spent
        inputs.append(item)
    out = {
        "txid": tx.txid_hex(),
        "size": tx.size,
        "coinbase": tx.is_coinbase(),
        "inputs": inputs,
        "outputs": [{"n": i, "value": o.value, "address": encode_address(o.pubkey_hash, version)}
                    for i, o in enumerate(tx.outputs)],
        "locktime": tx.locktime,
        "hex": tx.serialize().hex(),
    }
    if block_height is not None:
        out["block_height"] = block_height
        out["block_hash"] = hx(block_hash) if block_hash else None
        out["confirmations"] = node.chain.height - block_height + 1
    else:
        out["confirmations"] = 0
    return out


def _spent_output(node: "Node", outpoint: OutPoint) -> int | None:
    coin = node.chain.get_coin(outpoint)
    if coin is not None:
        return coin.value
    entry = node.mempool.get(outpoint.txid)
    if entry is not None and outpoint.index < len(entry.tx.outputs):
        return entry.tx.outputs[outpoint.index].value
    found = node.index.find_tx(outpoint.txid)
    if found is not None and outpoint.index < len(found[0].outputs):
        return found[0].outputs[outpoint.index].value
    return None


def block_json(node: "Node", entry, block, full: bool = True) -> dict:
    chain = node.chain
    active = chain.tree.in_active_chain(entry)
    h = entry.header
    out = {
        "hash": hx(entry.hash),
        "height": entry.height,
        "confirmations": chain.height - entry.height + 1 if active else 0,
        "active": active,
        "status": entry.status.name.lower(),
        "version": h.version,
        "previous": hx(h.prev_hash) if entry.height else None,
        "merkle_root": hx(h.merkle_root),
        "time": h.time,
        "bits": f"{h.bits:08x}",
        "nonce": h.nonce,
        "chainwork": hex(entry.chainwork),
        "next": [hx(c.hash) for c in entry.children],
    }
    if block is not None:
        out["size"] = block.size
        out["tx_count"] = len(block.transactions)
        coinbase = block.transactions[0] if block.transactions else None
        if coinbase is not None and coinbase.outputs:
            out["miner"] = encode_address(coinbase.outputs[0].pubkey_hash, node.params.address_version)
        if full:
            out["transactions"] = [tx_json(node, tx, entry.height if active else None, entry.hash if active else None)
                                   for tx in block.transactions]
        else:
            out["transactions"] = [tx.txid_hex() for tx in block.transactions]
    return out


def parse_hash(text: str, what: str) -> bytes:
    if len(text) != 64:
        raise ApiError(400, f"{what} must be 64 hex digits, got {len(text)} characters")
    try:
        return bytes.fromhex(text)[::-1]
    except ValueError:
        raise ApiError(400, f"{what} is not hex: {text!r}") from None


# -- handlers --------------------------------------------------------------------------------


def make_api(node: "Node") -> web.Application:
    token = write_cookie(node.config.datadir)

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
            return web.json_response({"error": "internal error (see the node's log)"}, status=500)

    def require_token(request: web.Request) -> None:
        given = request.headers.get("Authorization", "")
        if not given.startswith("Bearer ") or not hmac.compare_digest(given[7:].strip(), token):
            raise ApiError(401, f"this endpoint needs the token in {os.path.join(node.config.datadir, COOKIE_FILE)} "
                                "as 'Authorization: Bearer <token>'")

    async def body_json(request: web.Request) -> dict:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise ApiError(413, "request body too large")
        raw = await request.read()
        if not raw:
            return {}
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ApiError(400, "body must be a JSON object")
        return data

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

    def address_arg(text: str) -> bytes:
        try:
            return decode_address(text, node.params.address_version)
        except AddressError as exc:
            raise ApiError(400, str(exc)) from None

    async def status(request: web.Request) -> web.Response:
        return web.json_response(node.status())

    async def block(request: web.Request) -> web.Response:
        ident = request.match_info["id"]
        tree = node.chain.tree
        if ident.isdigit() and len(ident) < 12:
            height = int(ident)
            if height > tree.height:
                raise ApiError(404, f"no block at height {height} (the tip is at {tree.height})")
            entry = tree.active[height]
        else:
            entry = tree.get(parse_hash(ident, "block hash"))
            if entry is None:
                raise ApiError(404, f"unknown block {ident}")
        blk = node.chain.get_block(entry.hash) if entry.have_data else None
        return web.json_response(block_json(node, entry, blk, full=request.query.get("full", "1") != "0"))

    async def blocks(request: web.Request) -> web.Response:
        try:
            count = min(100, max(1, int(request.query.get("count", "10"))))
        except ValueError:
            raise ApiError(400, "count must be a number") from None
        tree = node.chain.tree
        out = []
        for height in range(tree.height, max(-1, tree.height - count), -1):
            entry = tree.active[height]
            out.append(block_json(node, entry, node.chain.get_block(entry.hash), full=False))
        return web.json_response(out)

    async def tx(request: web.Request) -> web.Response:
        txid = parse_hash(request.match_info["txid"], "txid")
        entry = node.mempool.get(txid)
        if entry is not None:
            out = tx_json(node, entry.tx)
            out["fee"] = entry.fee
            out["in_mempool"] = True
            return web.json_response(out)
        found = node.index.find_tx(txid)
        if found is None:
            raise ApiError(404, f"unknown transaction {request.match_info['txid']}")
        t, blk = found
        height = node.chain.tree.get(blk.hash).height
        out = tx_json(node, t, height, blk.hash)
        out["in_mempool"] = False
        return web.json_response(out)

    async def address(request: web.Request) -> web.Response:
        text = request.match_info["address"]
        pkh = address_arg(text)
        try:
            min_conf = max(0, int(request.query.get("min_conf", "1")))
        except ValueError:
            raise ApiError(400, "min_conf must be a number") from None
        chain = node.chain
        tip = chain.height
        utxos = []
        confirmed = 0   # spendable now: mature, with at least min_conf confirmations
        immature = 0    # coinbase outputs still waiting for coinbase_maturity
        for outpoint in node.index.coins_of(pkh):
            coin = chain.get_coin(outpoint)
            if coin is None:
                continue
            conf = tip - coin.height + 1
            mature = not coin.coinbase or tip + 1 - coin.height >= node.params.coinbase_maturity
            spent_by = node.mempool.spender(outpoint)
            utxos.append({"txid": hx(outpoint.txid), "vout": outpoint.index, "value": coin.value,
                          "height": coin.height, "confirmations": conf, "coinbase": coin.coinbase,
                          "mature": mature, "spent_in_mempool": hx(spent_by) if spent_by else None})
            if not mature:
                immature += coin.value
            elif conf >= min_conf:
                confirmed += coin.value
        unconfirmed = 0
        pending = []
        for e in node.mempool.entries():
            delta = 0
            for i, o in enumerate(e.tx.outputs):
                if o.pubkey_hash == pkh:
                    delta += o.value
                    if node.mempool.spender(OutPoint(e.txid, i)) is None:
                        pending.append({"txid": hx(e.txid), "vout": i, "value": o.value, "height": None,
                                        "confirmations": 0, "coinbase": False, "mature": True,
                                        "spent_in_mempool": None})
            for txin in e.tx.inputs:
                coin = chain.get_coin(txin.prevout)
                if coin is not None and coin.pubkey_hash == pkh:
                    delta -= coin.value
                else:
                    parent = node.mempool.get(txin.prevout.txid)
                    if parent is not None and parent.tx.outputs[txin.prevout.index].pubkey_hash == pkh:
                        delta -= parent.tx.outputs[txin.prevout.index].value
            unconfirmed += delta
        history = []
        for txid in reversed(node.index.history(pkh)):
            found = node.index.find_tx(txid)
            if found is None:
                continue
            t, blk = found
            height = chain.tree.get(blk.hash).height
            history.append({"txid": hx(txid), "height": height, "confirmations": tip - height + 1,
                            "delta": _delta(node, t, pkh)})
        for e in node.mempool.entries():
            if pkh in node.index.addresses_of(e.tx):
                history.insert(0, {"txid": hx(e.txid), "height": None, "confirmations": 0,
                                   "delta": _delta(node, e.tx, pkh)})
        return web.json_response({
            "address": text, "confirmed": confirmed, "immature": immature, "unconfirmed": unconfirmed, "min_conf": min_conf,
            "utxos": utxos + pending, "history": history, "height": tip,
        })

    async def mempool(request: web.Request) -> web.Response:
        return web.json_response({
            "size": len(node.mempool), "bytes": node.mempool.bytes,
            "transactions": [{"txid": hx(e.txid), "fee": e.fee, "size": e.size, "fee_rate": e.fee_rate,
                              "depends": [hx(p) for p in e.parents]} for e in node.mempool.entries()],
        })

    async def peers(request: web.Request) -> web.Response:
        import time as _time

        now = _time.time()
        return web.json_response({
            "peers": [p.describe() for p in node.peers],
            "known_addresses": [f"{h}:{p}" for h, p in node.addresses],
            "bans": [{"address": k if isinstance(k, str) else f"{k[0]}:{k[1]}", "seconds_left": int(until - now)}
                     for k, until in node.bans.items() if until > now],
            "denied": [f"{h}:{p}" for h, p in sorted(node.denied)],
        })

    async def arrivals(request: web.Request) -> web.Response:
        """When each recent block was first stored here (wall clock), for measuring propagation."""
        return web.json_response({hx(h): t for h, t in node.arrivals.items()})

    async def tips(request: web.Request) -> web.Response:
        return web.json_response([{"height": t["height"], "hash": hx(t["hash"]), "branchlen": t["branchlen"],
                                   "status": t["status"]} for t in node.chain.tree.chain_tips()])

    async def submit_tx(request: web.Request) -> web.Response:
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
            node.submit_transaction(t)
        except MempoolError as exc:
            raise ApiError(422 if exc.reason != "txn-already-in-mempool" else 409,
                           f"{exc.reason}: {exc.message}") from None
        return web.json_response({"txid": t.txid_hex()})

    # -- control -----------------------------------------------------------------------------

    def hostport(data: dict, name: str = "address") -> tuple[str, int]:
        from minichain.node.node import parse_hostport

        try:
            return parse_hostport(field(data, name, str))
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None

    async def control(request: web.Request) -> web.Response:
        require_token(request)
        action = request.match_info["action"]
        data = await body_json(request)
        if action == "peers/add":
            node.add_peer(hostport(data))
        elif action == "peers/remove":
            node.remove_peer(hostport(data))
        elif action == "peers/ban":
            host, port = hostport(data)
            node.ban(host, port, float(field(data, "seconds", int, int(node.config.ban_seconds))))
        elif action == "partition":
            deny = field(data, "deny", list)
            from minichain.node.node import parse_hostport

            try:
                node.set_denied({parse_hostport(str(a)) for a in deny})
            except ValueError as exc:
                raise ApiError(400, str(exc)) from None
        elif action == "mining/start":
            addr = field(data, "address", str)
            address_arg(addr)
            threads = field(data, "threads", int, 1)
            duty = float(field(data, "duty", (int, float), 1.0))
            if not 1 <= threads <= 256 or not 0 < duty <= 1:
                raise ApiError(400, "threads must be 1..256 and duty in (0, 1]")
            node.start_mining(addr, threads, duty)
        elif action == "mining/stop":
            node.stop_mining()
        elif action == "generate":
            addr = field(data, "address", str)
            pkh = address_arg(addr)
            count = field(data, "blocks", int)
            if not 1 <= count <= 10_000:
                raise ApiError(400, "blocks must be 1..10000")
            hashes = await node.generate(count, pkh)
            return web.json_response({"blocks": [hx(h) for h in hashes], "height": node.chain.height})
        elif action == "shutdown":
            node.request_stop()
        else:
            raise ApiError(404, f"unknown control action {action!r}")
        return web.json_response({"ok": True, "status": node.status()})

    app = web.Application(middlewares=[errors], client_max_size=MAX_BODY)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/block/{id}", block)
    app.router.add_get("/api/blocks", blocks)
    app.router.add_get("/api/tx/{txid}", tx)
    app.router.add_get("/api/address/{address}", address)
    app.router.add_get("/api/mempool", mempool)
    app.router.add_get("/api/peers", peers)
    app.router.add_get("/api/tips", tips)
    app.router.add_get("/api/arrivals", arrivals)
    app.router.add_post("/api/tx", submit_tx)
    app.router.add_post("/api/control/{action:.+}", control)
    from minichain.explorer import register as register_explorer

    register_explorer(app, node)  # the page at /, /api/tree, /api/events (see minichain/explorer)
    return app


def _delta(node: "Node", tx: Transaction, pkh: bytes) -> int:
    """What ``tx`` did to the balance of ``pkh``: received minus spent."""
    from minichain.core.hashing import hash160

    got = sum(o.value for o in tx.outputs if o.pubkey_hash == pkh)
    spent = 0
    if not tx.is_coinbase():
        for txin in tx.inputs:
            if txin.pubkey and hash160(txin.pubkey) == pkh:
                value = _spent_output(node, txin.prevout)
                spent += value or 0
    return got - spent
