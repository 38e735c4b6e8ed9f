"""The checker on a Nakamoto network: what a merchant was told, against the chain now.

Nakamoto consensus promises no finality, only that a payment buried ``k`` blocks deep is
unlikely to be undone (Nakamoto 2008, section 11). So the question a history can answer
is the merchant's: *was a payment I accepted at k confirmations reversed?* For every
operation the client acknowledged (``ok``, with the ``confirmations`` it waited for),
each node is asked where the transaction is now:

* in the node's active chain -- fine;
* gone, or back in the mempool (its block was orphaned) -- **reversed**, reported with
  the k it was accepted at, where it had been, and which other payment of the history
  now spends its coin, if one does.

Nodes that disagree with each other (different tips, so different answers) are a note,
not a violation: that is a fork, which Nakamoto consensus allows until it resolves.

Input: the history's events, and ``views``: node name -> txid -> what the node's
``GET /api/tx/TXID`` answered (``{"in_mempool", "confirmations", "block_height", ...}``),
or ``None`` for "unknown transaction" (404).
"""

from __future__ import annotations

from typing import Any

from minichain.history.checker import Report
from minichain.history.records import operations


def where(answer: dict | None) -> str:
    if answer is None:
        return "gone"
    if answer.get("in_mempool"):
        return "back in the mempool"
    return f"in block {answer.get('block_height')} ({answer.get('confirmations')} conf)"


def in_chain(answer: dict | None) -> bool:
    return answer is not None and not answer.get("in_mempool") and answer.get("block_height") is not None


def check_chain(events: list[dict], views: dict[str, dict[str, dict | None]]) -> Report:
    report = Report()
    pays = [o for o in operations(events) if o.f == "pay"]
    ops = [o for o in pays if isinstance(o.value, dict) and o.value.get("txid")]    # those that got a txid
    report.stats = {"operations": len(pays), "ok": sum(o.ok for o in pays), "fail": sum(o.failed for o in pays),
                    "info": sum(o.type == "info" for o in pays), "nodes": sorted(views),
                    "nemesis": sum(1 for e in events if e["type"] == "nemesis")}
    by_coin: dict[str, list[Any]] = {}
    for o in ops:
        for coin in o.value.get("coins", ()):
            by_coin.setdefault(coin, []).append(o)
    for o in ops:
        if not o.ok:
            continue
        txid = o.value["txid"]
        answers = {node: view.get(txid) for node, view in views.items()}
        missing = sorted(node for node, a in answers.items() if not in_chain(a))
        if not missing:
            continue
        k = o.result.get("confirmations")
        at = o.result.get("node") or o.value.get("node") or "its node"
        block = o.result.get("height")
        rivals = []
        for coin in o.value.get("coins", ()):
            for other in by_coin.get(coin, ()):
                if other is not o and any(in_chain(v.get(other.value["txid"])) for v in views.values()):
                    rivals.append(f"op {other.op} ({other.value['txid'][:16]})")
        rival = f"; its coin is now spent by {', '.join(sorted(set(rivals)))}" if rivals else ""
        places = {where(answers[node]) for node in missing}
        if len(places) == 1 and len(missing) > 1:
            now = f"{places.pop()} at all {len(missing)} nodes"
        else:
            now = "; ".join(f"{node} {where(answers[node])}" for node in missing)
        if len(missing) == len(views):
            report.add("reversed", f"payment {txid[:16]} (op {o.op}) was accepted at {k} confirmation(s) "
                                   f"(block {block} on {at}) and is no longer in the chain: {now}{rival}")
        else:
            report.notes.append(f"payment {txid[:16]} (op {o.op}, accepted at {k} confirmation(s)) is not in "
                                f"the chain of {', '.join(missing)} ({now}): the nodes are on different branches")
    return report
