"""The REST API: JSON over plain HTTP, on its own listener (127.0.0.1 by default).

It reads the node through a :class:`~minichain.node.view.NodeView` and acts on it through
a :class:`~minichain.node.view.NodeControl`, never through the node's fields. Routes are
grouped by resource, one module each:

    network.py       GET  /api/status, /api/peers
    blocks.py        GET  /api/block/{hash|height}, /api/blocks, /api/tips, /api/arrivals
    transactions.py  GET  /api/tx/{txid};  POST /api/tx, /api/txs (a batch)
    addresses.py     GET  /api/address/{address}[/history|/utxos]
    mempool.py       GET  /api/mempool
    control.py       POST /api/control/...  (token)
    metrics.py       GET  /metrics  (Prometheus; no token)
    explorer         GET  /, /api/tree, /api/events  (minichain/explorer)

``common.py`` holds the error middleware, argument parsing and pages; ``shapes.py`` the
JSON shapes. Read endpoints are open; control endpoints need the token the node writes
to ``<datadir>/.cookie``. Every list that can grow is paged (``limit``, at most 1000, and
a cursor ``after``), and no handler holds the node's event loop for long (common.py).
"""

from __future__ import annotations

from aiohttp import web

from minichain.node.api.addresses import Addresses
from minichain.node.api.blocks import Blocks
from minichain.node.api.common import MAX_BODY, MAX_PAGE, ApiError, errors
from minichain.node.api.control import COOKIE_FILE, Control, read_cookie, write_cookie
from minichain.node.api.mempool import MempoolRoutes
from minichain.node.api.metrics import Metrics
from minichain.node.api.network import Network
from minichain.node.api.transactions import Transactions
from minichain.node.view import NodeControl, NodeView

__all__ = ["make_api", "ApiError", "COOKIE_FILE", "MAX_PAGE", "read_cookie", "write_cookie"]


def make_api(view: NodeView, control: NodeControl) -> web.Application:
    """The API application for one node, the explorer mounted on it."""
    token = write_cookie(view.datadir)
    app = web.Application(middlewares=[errors], client_max_size=MAX_BODY)
    for group in (Network(view), Blocks(view), Transactions(view, control), Addresses(view), MempoolRoutes(view),
                  Control(view, control, token), Metrics(view)):
        app.router.add_routes(group.routes())
    from minichain.explorer import register as register_explorer

    register_explorer(app, view)  # the page at /, /api/tree, /api/events (see minichain/explorer)
    return app
