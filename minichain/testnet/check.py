"""``testnet check``: gather the history and what the network committed, and judge them.

For replicas the committed logs are read from disk -- each replica's
``decisions.jsonl``, every decision it made in order -- so a check works on a stopped
network too, and sees a killed replica's log as it left it. Before reading, the check
waits up to ``settle`` seconds for the live honest replicas to agree on one commit
index (a replica that was down catches up), then judges what it finds
(``history/checker.py``).

For a Nakamoto network each live node is asked where each acknowledged payment is now
(``history/chain.py``).
"""

from __future__ import annotations

import os

from minichain.history.chain import check_chain
from minichain.history.checker import ReplicaLog, Report, check_replicas
from minichain.history.records import read_history
from minichain.replica.durable import DECISIONS_FILE, read_decisions
from minichain.testnet.state import TestnetState


def replica_logs(state: TestnetState) -> list[ReplicaLog]:
    return [ReplicaLog(r.index, r.honest, read_decisions(os.path.join(r.datadir, DECISIONS_FILE)))
            for r in state.nodes]


def check(state: TestnetState, *, settle: float = 10.0) -> Report:
    from minichain.testnet import network as tn

    events = read_history(state.history)
    if state.replicas:
        live = [r for r in tn.live_nodes(state) if r.honest] if state.running else []
        settled = None
        if live and settle > 0:
            try:
                settled = tn.wait_committed(live, timeout=settle)
            except tn.TestnetError as exc:
                settled = str(exc)
        report = check_replicas(events, replica_logs(state))
        if isinstance(settled, str):
            report.notes.append(f"did not settle before the check: {settled}")
        report.stats["engine"] = state.engine
        return report
    views = nakamoto_views(state, events)
    report = check_chain(events, views)
    report.stats["engine"] = "nakamoto"
    return report


def nakamoto_views(state: TestnetState, events: list[dict]) -> dict[str, dict[str, dict | None]]:
    """Each live node's answer about each transaction the history acknowledged."""
    from minichain.testnet import network as tn
    from minichain.wallet.client import NodeRequestError

    txids = sorted({e["value"]["txid"] for e in events
                    if e["type"] == "ok" and isinstance(e.get("value"), dict) and e["value"].get("txid")})
    views: dict[str, dict[str, dict | None]] = {}
    for rec in tn.live_nodes(state):
        client = tn.client_for(rec)
        view: dict[str, dict | None] = {}
        for txid in txids:
            try:
                view[txid] = client.tx(txid)
            except NodeRequestError as exc:
                if exc.status != 404:
                    raise
                view[txid] = None
        views[rec.name] = view
    return views
