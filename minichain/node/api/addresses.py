"""Addresses: balance, history and unspent outputs, from the address index.

    GET /api/address/{address}[?min_conf=N&limit=N]   balance and counts, and the first page
                                                      of the history and of the coins
    GET /api/address/{address}/history[?limit=N&after=CURSOR]
    GET /api/address/{address}/utxos[?limit=N&after=CURSOR]

Lists are newest first: the address's mempool transactions (or their unspent outputs)
first, then the chain's, by height and position. A page holds ``limit`` items (default
and maximum 1000) and says ``next``: the ``after`` of the following page, or null at the
end. Cursors are keys, not offsets, so a page continues where the last one stopped even
when blocks arrive in between (what arrived shows up on the next first page).

The balance needs no scan of the coins: the index keeps each address's total; what is
still immature comes from the coinbase outputs of the last ``coinbase_maturity`` blocks
(``blockinfo``: an immature coinbase output cannot have been spent), and only with
``min_conf`` above 1 are the coins of the last ``min_conf`` blocks read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Iterator

from aiohttp import web

from minichain.chainstate.index import COIN_CURSOR_SIZE, HISTORY_CURSOR_SIZE
from minichain.core.tx import OutPoint
from minichain.node.api.common import CHUNK, ApiError, Encoded, address_arg, int_arg, json_object, limit_arg, page
from minichain.node.api.shapes import coin_json, history_json, pending_coin_json, pending_history_json
from minichain.node.view import NodeView


@dataclass(frozen=True)
class Cursor:
    """Where a page stopped: in the mempool part (``seq``, and ``vout`` for coins) or in
    the chain part (``key``, an index cursor)."""

    seq: int | None = None
    vout: int = -1
    key: bytes | None = None

    def __str__(self) -> str:
        if self.key is not None:
            return "c" + self.key.hex()
        return f"m{self.seq}" + (f".{self.vout}" if self.vout >= 0 else "")

    @classmethod
    def parse(cls, text: str | None, key_size: int, coins: bool) -> "Cursor | None":
        if text is None:
            return None
        bad = ApiError(400, f"after={text!r} is not a cursor: pass the 'next' of the previous page")
        try:
            if text.startswith("c") and len(text) == 1 + 2 * key_size:
                return cls(key=bytes.fromhex(text[1:]))
            if text.startswith("m"):
                seq, dot, vout = text[1:].partition(".")
                if bool(dot) == coins and seq.isascii() and seq.isdigit() and (not coins or vout.isascii() and vout.isdigit()):
                    return cls(seq=int(seq), vout=int(vout) if coins else -1)
        except ValueError:
            pass
        raise bad


class Addresses:
    def __init__(self, view: NodeView) -> None:
        self.view = view

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/address/{address}", self.summary),
            web.get("/api/address/{address}/history", self.history),
            web.get("/api/address/{address}/utxos", self.utxos),
        ]

    # -- the lists ---------------------------------------------------------------------------

    def _pending_delta(self, entry, pkh: bytes) -> int:
        """What a mempool transaction does to the address: received minus spent."""
        view = self.view
        delta = sum(o.value for o in entry.tx.outputs if o.pubkey_hash == pkh)
        for txin in entry.tx.inputs:
            coin = view.coin(txin.prevout)
            if coin is not None:
                if coin.pubkey_hash == pkh:
                    delta -= coin.value
                continue
            parent = view.mempool_entry(txin.prevout.txid)
            if parent is not None and txin.prevout.index < len(parent.tx.outputs):
                out = parent.tx.outputs[txin.prevout.index]
                if out.pubkey_hash == pkh:
                    delta -= out.value
        return delta

    # The lists yield (where, item): ``where`` is a Cursor in the mempool part, and the
    # index row itself in the chain part (its cursor is made only for a page's last row).

    def _history_items(self, pkh: bytes, after: Cursor | None) -> Iterator[tuple[object, dict]]:
        view = self.view
        if after is None or after.key is None:
            for e in view.mempool_touching(pkh):
                if after is None or e.sequence < after.seq:
                    yield Cursor(seq=e.sequence), pending_history_json(e.txid, self._pending_delta(e, pkh))
        tip = view.height
        for h in view.address_history(pkh, after.key if after is not None else None):
            yield h, history_json(tip, h)

    def _coin_items(self, pkh: bytes, after: Cursor | None) -> Iterator[tuple[object, dict]]:
        view = self.view
        if after is None or after.key is None:
            for e in view.mempool_touching(pkh):
                if after is not None and e.sequence > after.seq:
                    continue
                for vout, out in enumerate(e.tx.outputs):
                    if after is not None and e.sequence == after.seq and vout <= after.vout:
                        continue
                    op = OutPoint(e.txid, vout)
                    if out.pubkey_hash == pkh and view.mempool_spender(op) is None:
                        yield Cursor(seq=e.sequence, vout=vout), pending_coin_json(op, out.value)
        tip = view.height
        spends = view.mempool_size() > 0  # else no coin can be spent in the mempool
        for c in view.address_coins(pkh, after.key if after is not None else None):
            yield c, coin_json(view, tip, c, spends)

    async def _page(self, items, limit: int) -> tuple[Encoded, str | None]:
        def cursor(item) -> str:
            where = item[0]
            return str(where if isinstance(where, Cursor) else Cursor(key=where.cursor))

        return await page(items, limit, lambda item: item[1], cursor)

    async def history(self, request: web.Request) -> web.Response:
        return await self._list(request, "history", self._history_items, HISTORY_CURSOR_SIZE, coins=False)

    async def utxos(self, request: web.Request) -> web.Response:
        return await self._list(request, "utxos", self._coin_items, COIN_CURSOR_SIZE, coins=True)

    async def _list(self, request: web.Request, key: str, items, cursor_size: int, coins: bool) -> web.Response:
        view = self.view
        pkh = address_arg(view, request.match_info["address"])
        after = Cursor.parse(request.query.get("after"), cursor_size, coins=coins)
        height, tip = view.height, view.tree.tip.hash[::-1].hex()  # before the page: it may take turns
        listed, nxt = await self._page(items(pkh, after), limit_arg(request))
        return json_object({"address": request.match_info["address"], "height": height, "tip": tip,
                            key: listed, "next": nxt})

    # -- the summary -------------------------------------------------------------------------

    async def summary(self, request: web.Request) -> web.Response:
        view = self.view
        text = request.match_info["address"]
        pkh = address_arg(view, text)
        min_conf = int_arg(request, "min_conf", 1, 0)
        limit = limit_arg(request)
        tip, tip_hash = view.height, view.tree.tip.hash[::-1].hex()
        maturity = view.params.coinbase_maturity
        totals = view.address_totals(pkh)
        # Immature: coinbase outputs with tip + 1 - height < maturity, i.e. at heights from
        # tip + 2 - maturity; consensus keeps them unspent, so the blocks' coinbases say it all.
        immature = 0
        first_immature = max(1, tip + 2 - maturity)
        for height in range(first_immature, tip + 1):
            entry = view.active_entry(height)
            summary = view.block_summary(entry.hash) if entry is not None else None
            if summary is not None:
                immature += sum(value for value, to in summary.coinbase if to == pkh)
        # Young: mature coins with fewer than min_conf confirmations (tip - height + 1 <
        # min_conf), at heights from tip + 2 - min_conf.
        young = 0
        if min_conf > 1:
            for n, c in enumerate(view.address_coins(pkh, min_height=max(0, tip + 2 - min_conf))):
                if not (c.coinbase and c.height >= first_immature):
                    young += c.value
                if n % CHUNK == CHUNK - 1:
                    await asyncio.sleep(0)
        pending = view.mempool_touching(pkh)
        unconfirmed = sum(self._pending_delta(e, pkh) for e in pending)
        history, history_next = await self._page(self._history_items(pkh, None), limit)
        utxos, utxos_next = await self._page(self._coin_items(pkh, None), limit)
        return json_object({
            "address": text, "height": tip, "tip": tip_hash, "min_conf": min_conf,
            "confirmed": totals.balance - immature - young,  # spendable now: mature, >= min_conf confirmations
            "immature": immature,                             # coinbase outputs waiting for coinbase maturity
            "unconfirmed": unconfirmed,                       # the net effect of its mempool transactions
            "tx_count": totals.txs, "utxo_count": totals.coins, "pending_count": len(pending),
            "history": history, "history_next": history_next, "utxos": utxos, "utxos_next": utxos_next,
        })
