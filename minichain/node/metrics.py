"""A node's Prometheus metrics, served at ``GET /metrics`` on the API listener.

Every node has its own :class:`NodeMetrics` and its own ``CollectorRegistry`` (never
prometheus_client's global one: tests run several nodes in one process). The node's
IO shell (``node/node.py``) counts where things happen -- a frame read or written, an
effect of the peer protocol carried out, a block or transaction the chain state took,
a store batch written, a late wake-up of the event loop -- and the rest is read from
the node's :class:`~minichain.node.view.NodeView` when Prometheus scrapes. The sans-IO
protocol and ``core/`` know nothing of this module (the simulator runs them too).

Cost on the hot paths: a frame in or out, or an effect, is one increment of a plain
``int`` in a list indexed by the message's type byte (no labels built, no lock); those
lists become labelled counters only at scrape time. Blocks, transactions, bans and
store writes -- each far costlier than its count -- go through prometheus_client's
counters and histograms directly.

What is exported (names follow Prometheus's conventions: the ``minichain_`` prefix,
base units -- seconds, bytes -- and ``_total`` on counters)::

    chain       minichain_chain_height, _chain_work (expected hashes), _headers_height,
                _chain_tip_fingerprint, _chain_tip_changes_total, _chain_reorgs_total,
                _chain_reorg_depth_blocks (histogram), _orphan_blocks
    blocks      minichain_blocks_accepted_total{status}, _blocks_rejected_total{reason},
                _blocks_duplicate_total, _blocks_stale_total,
                _block_propagation_seconds (histogram)
    mempool     minichain_mempool_transactions, _mempool_bytes,
                _transactions_accepted_total, _transactions_rejected_total{reason}
    peers       minichain_peers{direction}, _bans, _peer_misbehavior_total{reason},
                _peer_bans_total{reason}, _p2p_{received,sent}_{bytes,messages}_total{message},
                _protocol_effects_total{effect}
    miner       minichain_miner_running, _miner_hashes_per_second, _miner_hashes_total,
                _miner_blocks_found_total
    node        minichain_store_write_seconds (histogram, LevelDB batches),
                _event_loop_lag_seconds (histogram), _info{version,network},
                _start_time_seconds, and process_* (CPU, memory, file descriptors)

Definitions, said plainly:

* *propagation*: from the first time a peer announced a block to this node (a headers
  or inv message naming it, or the block itself unannounced) to the block being stored
  as valid -- connected, or on a side branch. Blocks we mined are not observed.
* *stale*: blocks that were on this node's active chain and left it in a
  reorganisation (the losing side of a fork, as this node saw it).
* *tip fingerprint*: the tip hash's last 12 hex digits as a number, so that a graph can
  tell whether nodes share a tip (``count(count_values("tip", ...))``) without a label
  that would make a new series per block.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from minichain import __version__
from minichain.chainstate import AcceptResult, BlockStatus
from minichain.node import messages as m
from minichain.node.protocol import Misbehavior

if TYPE_CHECKING:
    from minichain.node.view import NodeView

# prometheus_client adds a ``_created`` timestamp series beside every counter and
# histogram (an OpenMetrics feature Prometheus's text format does without); they would
# double what each scrape carries. The switch is the library's, for the whole process.
disable_created_metrics()

# The protocol's effects, as the shell counts them (an index each).
EFFECTS = ("send", "disconnect", "dial", "misbehaved", "peer_ready")
SEND, DISCONNECT, DIAL, MISBEHAVED, PEER_READY = range(len(EFFECTS))

MAX_ANNOUNCED = 4000        # blocks announced but not yet stored, remembered for the propagation delay
REORG_DEPTH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128)
PROPAGATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STORE_WRITE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

_ACCEPTED = {BlockStatus.CONNECTED: "connected", BlockStatus.SIDE_BRANCH: "side-branch", BlockStatus.ORPHAN: "orphan"}


def message_names() -> list[str]:
    """The label of each type byte: the registered message's name, else ``unknown``."""
    names = ["unknown"] * 256
    for type_byte, cls in m.REGISTRY.items():
        names[type_byte] = cls.NAME
    return names


class Traffic:
    """Frames and bytes per message type, in and out: lists of plain ints indexed by the
    frame's type byte (its first byte), bumped by the peer links."""

    __slots__ = ("received_bytes", "received_messages", "sent_bytes", "sent_messages")

    def __init__(self) -> None:
        self.received_bytes = [0] * 256
        self.received_messages = [0] * 256
        self.sent_bytes = [0] * 256
        self.sent_messages = [0] * 256

    def received(self, frame: bytes) -> None:
        if frame:
            t = frame[0]
            self.received_bytes[t] += len(frame)
            self.received_messages[t] += 1


class NodeMetrics:
    """The metrics of one node (see the module's docstring)."""

    def __init__(self, view: "NodeView") -> None:
        reg = self.registry = CollectorRegistry()
        self.traffic = Traffic()
        self.effects = [0] * len(EFFECTS)
        self.started = time.time()

        self.tip_changes = Counter("minichain_chain_tip_changes", "Times the active tip moved.", registry=reg)
        self.reorgs = Counter("minichain_chain_reorgs", "Tip changes that disconnected blocks.", registry=reg)
        self.reorg_depth = Histogram("minichain_chain_reorg_depth_blocks", "Blocks disconnected by a reorganisation.",
                                     buckets=REORG_DEPTH_BUCKETS, registry=reg)
        self.stale = Counter("minichain_blocks_stale", "Blocks that left the active chain in a reorganisation.",
                             registry=reg)
        blocks = Counter("minichain_blocks_accepted",
                         "Blocks stored by status when stored: connected, side-branch, or orphan (parent unknown).",
                         ["status"], registry=reg)
        self._accepted = {status: blocks.labels(name) for status, name in _ACCEPTED.items()}
        self.blocks_rejected = Counter("minichain_blocks_rejected", "Blocks found invalid, by reason.", ["reason"],
                                       registry=reg)
        self.blocks_duplicate = Counter("minichain_blocks_duplicate", "Blocks received that were already known.",
                                        registry=reg)
        self.propagation = Histogram("minichain_block_propagation_seconds",
                                     "From a block's first announcement by a peer to its being stored as valid.",
                                     buckets=PROPAGATION_BUCKETS, registry=reg)
        self.txs_accepted = Counter("minichain_transactions_accepted", "Transactions admitted to the mempool.",
                                    registry=reg)
        self.txs_rejected = Counter("minichain_transactions_rejected", "Transactions the mempool refused, by reason.",
                                    ["reason"], registry=reg)
        self.misbehavior = Counter("minichain_peer_misbehavior", "Misbehaviour reports against peers, by reason.",
                                   ["reason"], registry=reg)
        self.bans = Counter("minichain_peer_bans", "Peers banned, by the misbehaviour that crossed the threshold "
                            "(operator: banned through the API).", ["reason"], registry=reg)
        for reason in Misbehavior:     # every code shows, at 0, from the start
            self.misbehavior.labels(reason.code)
            self.bans.labels(reason.code)
        self.bans.labels("operator")
        self.blocks_found = Counter("minichain_miner_blocks_found", "Blocks this node's miner found.", registry=reg)
        self.store_write = Histogram("minichain_store_write_seconds", "Time to write one batch to the store (LevelDB).",
                                     buckets=STORE_WRITE_BUCKETS, registry=reg)
        self.loop_lag = Histogram("minichain_event_loop_lag_seconds",
                                  "How late the event loop woke a 20 ms probe (node/lag.py).",
                                  buckets=LAG_BUCKETS, registry=reg)
        reg.register(_ViewCollector(view, self))
        ProcessCollector(registry=reg)
        self._announced: OrderedDict[bytes, float] = OrderedDict()

    # -- what the shell reports ----------------------------------------------------------------

    def announced(self, msg: m.Message, now: float, known: Iterable[bytes]) -> None:
        """A peer told us of blocks (``Headers``, ``Inv``, or a ``BlockMessage``): remember
        when we first heard of each one that ``known`` (the block tree) lacks."""
        seen = self._announced
        cls = msg.__class__
        if cls is m.Headers:
            hashes = [h.hash for h in msg.headers]
        elif cls is m.Inv:
            hashes = [h for kind, h in msg.items if kind == m.INV_BLOCK]
        elif cls is m.BlockMessage:
            hashes = [msg.block.hash]
        else:
            return
        for h in hashes:
            if h not in seen and h not in known:
                seen[h] = now
        while len(seen) > MAX_ANNOUNCED:
            seen.popitem(last=False)

    def block_accepted(self, result: AcceptResult, now: float) -> None:
        """The chain state decided the fate of one or more blocks (``result.events``) and
        perhaps moved the tip."""
        seen = self._announced
        for ev in result.events:
            status = ev.status
            counter = self._accepted.get(status)
            if counter is not None:
                counter.inc()
                if status is not BlockStatus.ORPHAN:
                    first = seen.pop(ev.hash, None)
                    if first is not None:
                        self.propagation.observe(max(0.0, now - first))
            elif status is BlockStatus.INVALID:
                self.blocks_rejected.labels(ev.reason or "invalid").inc()
                seen.pop(ev.hash, None)
            elif status is BlockStatus.DUPLICATE:
                self.blocks_duplicate.inc()
        act = result.activation
        if act.connected or act.disconnected:
            self.tip_changes.inc()
            if act.disconnected:
                depth = len(act.disconnected)
                self.reorgs.inc()
                self.reorg_depth.observe(depth)
                self.stale.inc(depth)

    def misbehaved(self, code: str, banned: bool) -> None:
        self.misbehavior.labels(code).inc()
        if banned:
            self.bans.labels(code).inc()

    # -- exposition ----------------------------------------------------------------------------

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The metrics in the format the scraper asked for (``Accept``): Prometheus's text
        format by default, OpenMetrics if preferred. Returns (body, content type)."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type


class _ViewCollector:
    """What is read from the node at scrape time."""

    def __init__(self, view: "NodeView", metrics: NodeMetrics) -> None:
        self.view = view
        self.metrics = metrics
        self.names = message_names()

    def collect(self) -> Iterable[Metric]:
        view = self.view
        tip = view.tree.tip
        yield _gauge("minichain_chain_height", "Height of the active tip.", tip.height)
        yield _gauge("minichain_chain_work", "Cumulative work of the active chain (expected hashes).",
                     float(tip.chainwork))
        yield _gauge("minichain_chain_tip_fingerprint",
                     "The tip hash's last 12 hex digits as a number: equal on nodes that share a tip.",
                     int.from_bytes(tip.hash[:6], "little"))
        yield _gauge("minichain_headers_height", "Height of the most-work header known.", view.headers_height())
        yield _gauge("minichain_orphan_blocks", "Blocks waiting for their parent.", view.orphan_count())
        yield _gauge("minichain_mempool_transactions", "Transactions in the mempool.", view.mempool_size())
        yield _gauge("minichain_mempool_bytes", "Serialized size of the mempool's transactions.", view.mempool_bytes())
        inbound, outbound = view.peer_counts()
        peers = GaugeMetricFamily("minichain_peers", "Peers with a completed handshake.", labels=["direction"])
        peers.add_metric(["inbound"], inbound)
        peers.add_metric(["outbound"], outbound)
        yield peers
        yield _gauge("minichain_bans", "Bans in force.", len(view.bans()))
        running, rate, hashes = view.mining()
        yield _gauge("minichain_miner_running", "1 while the miner runs.", int(running))
        yield _gauge("minichain_miner_hashes_per_second", "The miner's hash rate over the last seconds.", rate)
        total = CounterMetricFamily("minichain_miner_hashes", "Hashes computed by this node's miners.")
        total.add_metric([], hashes)
        yield total
        yield from self._traffic()
        effects = CounterMetricFamily("minichain_protocol_effects", "Effects of the peer protocol carried out.",
                                      labels=["effect"])
        for name, count in zip(EFFECTS, self.metrics.effects):
            effects.add_metric([name], count)
        yield effects
        info = GaugeMetricFamily("minichain_info", "The node's version and network.", labels=["version", "network"])
        info.add_metric([__version__, view.params.name], 1)
        yield info
        yield _gauge("minichain_start_time_seconds", "When the node started (Unix time).", self.metrics.started)

    def _traffic(self) -> Iterable[Metric]:
        t = self.metrics.traffic
        names = self.names
        for direction, by_bytes, by_count in (("received", t.received_bytes, t.received_messages),
                                              ("sent", t.sent_bytes, t.sent_messages)):
            nbytes = CounterMetricFamily(f"minichain_p2p_{direction}_bytes",
                                         f"Peer-to-peer bytes {direction}, by message type.", labels=["message"])
            count = CounterMetricFamily(f"minichain_p2p_{direction}_messages",
                                        f"Peer-to-peer messages {direction}, by message type.", labels=["message"])
            totals: dict[str, list[int]] = {}
            for type_byte, name in enumerate(names):
                if name == "unknown" and not by_count[type_byte]:
                    continue
                pair = totals.setdefault(name, [0, 0])
                pair[0] += by_bytes[type_byte]
                pair[1] += by_count[type_byte]
            for name, (b, c) in totals.items():
                nbytes.add_metric([name], b)
                count.add_metric([name], c)
            yield nbytes
            yield count


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)
