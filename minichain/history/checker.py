"""Checking a client history against what the replicas committed, Jepsen-style.

Input: the history (``records.py``) and, for each replica, the decisions it made in the
order it made them (slot, value, time) -- a replica's ``decisions.jsonl``. The values
are payments ``{"client", "seq", "coin", "payee"}`` or ``None`` (a no-op). Which
replicas are honest comes from the testnet (Byzantine replicas' logs are not judged).

The checks, each a reason to exit non-zero:

* **agreement** -- no two honest replicas commit different values at one slot (nor one
  replica two values at one slot over time: a *reversal*);
* **no coin spent twice** -- reading each honest replica's final log with the ledger's
  rule (``replica/ledger.py``: the lowest slot that pays a coin spends it; later payments
  of that coin are rejected), no coin is spent by two different payments, at one
  replica or across replicas;
* **durability** -- every payment a client was told is committed (``ok``) is in the final
  log of every honest replica that has decided that far, and of at least one; a payment
  a client was told is rejected (``fail``) is in no honest replica's log;
* **linearizability**, twice over: (1) the committed log, read as the order in which the
  operations took effect, respects real time -- an operation that completed before
  another was invoked sits at a lower slot -- and (2) the client-visible outcomes alone
  (committed / rejected / unknown per coin) have a linearization under the ledger's
  sequential semantics, found by the Wing & Gong search (``linearizable.py``), coin by
  coin (Herlihy & Wing's locality).

Notes that are not violations: honest replicas that are behind the others (a replica
that was down), committed payments no client of this history asked for (a Byzantine
leader's twin payments; an earlier workload's), operations whose outcome is unknown.

A :class:`Report` keeps every violation; :meth:`Report.summary` gives the first of each
kind in one line, the shortest explanation of what went wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from minichain.history import linearizable
from minichain.history.records import Operation, operations


@dataclass
class Violation:
    kind: str          # agreement, reversal, double-spend, lost, phantom-fail, real-time, linearizability
    message: str

    def to_json(self) -> dict:
        return {"kind": self.kind, "message": self.message}


@dataclass
class Report:
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def add(self, kind: str, message: str) -> None:
        self.violations.append(Violation(kind, message))

    def summary(self) -> list[str]:
        """The first violation of each kind, with how many more there are."""
        firsts: dict[str, tuple[Violation, int]] = {}
        for v in self.violations:
            first, count = firsts.get(v.kind, (v, 0))
            firsts[v.kind] = (first, count + 1)
        out = []
        for kind, (first, count) in firsts.items():
            more = f" (and {count - 1} more)" if count > 1 else ""
            out.append(f"{kind}: {first.message}{more}")
        return out

    def to_json(self) -> dict:
        return {"ok": self.ok, "violations": [v.to_json() for v in self.violations], "notes": self.notes,
                "stats": self.stats}


def show(value: Any) -> str:
    """A payment as the simulator prints it: ``pay(coin->payee)``; a no-op as ``noop``."""
    if isinstance(value, dict) and "coin" in value:
        return f"pay({value['coin']}->{value.get('payee')})"
    return "noop" if value is None else repr(value)


def _key(value: Any) -> tuple:
    """A hashable identity for a JSON payment (or a no-op)."""
    if isinstance(value, dict):
        return tuple(sorted((k, v) for k, v in value.items() if not isinstance(v, (list, dict))))
    return ("noop",) if value is None else (repr(value),)


@dataclass
class ReplicaLog:
    """One replica's decisions, in the order it made them: dicts with slot, value, time."""

    node: int
    honest: bool
    decisions: list[dict]

    def final(self) -> dict[int, Any]:
        out: dict[int, Any] = {}
        for d in self.decisions:
            out[d["slot"]] = d.get("value")
        return out


def effective(log: dict[int, Any]) -> dict[str, tuple[int, Any]]:
    """coin -> (slot, payment) that spends it: the lowest slot paying it (the ledger's rule)."""
    out: dict[str, tuple[int, Any]] = {}
    for slot in sorted(log):
        v = log[slot]
        if isinstance(v, dict) and "coin" in v and v["coin"] not in out:
            out[v["coin"]] = (slot, v)
    return out


def prefix(log: dict[int, Any]) -> int:
    k = 0
    while k in log:
        k += 1
    return k


def check_replicas(events: list[dict], logs: Iterable[ReplicaLog]) -> Report:
    report = Report()
    logs = list(logs)
    honest = [r for r in logs if r.honest]
    ops = operations(events)
    pays = [o for o in ops if o.f == "pay"]
    report.stats = {
        "operations": len(pays), "ok": sum(o.ok for o in pays), "fail": sum(o.failed for o in pays),
        "info": sum(o.type == "info" for o in pays),
        "nemesis": sum(1 for e in events if e["type"] == "nemesis"),
        "replicas": len(logs), "honest": [r.node for r in honest],
    }
    finals = {r.node: r.final() for r in honest}
    spends = {r.node: effective(finals[r.node]) for r in honest}
    prefixes = {r.node: prefix(finals[r.node]) for r in honest}
    report.stats["commit_index"] = prefixes

    _agreement(report, honest)
    _double_spends(report, spends)
    _durability(report, pays, finals, spends, prefixes)
    _real_time(report, pays, finals, spends)
    _linearizable(report, pays)

    # Notes: lagging replicas, payments nobody in this history asked for.
    if prefixes:
        top = max(prefixes.values())
        for node, k in sorted(prefixes.items()):
            if k < top:
                report.notes.append(f"node{node} is behind: it has decided slots 0..{k - 1}, others up to {top - 1}")
    invoked = {_key(o.value) for o in pays}
    phantoms = sorted({(slot, show(v)) for r in honest for slot, v in finals[r.node].items()
                       if isinstance(v, dict) and _key(v) not in invoked})
    if phantoms:
        eg = ", ".join(f"{text} at slot {slot}" for slot, text in phantoms[:3])
        report.notes.append(f"{len(phantoms)} committed payment(s) no operation of this history asked for, e.g. {eg} "
                            "(a Byzantine leader's twins, or an earlier workload's)")
    unknown = report.stats["info"]
    if unknown:
        report.notes.append(f"{unknown} operation(s) ended without a verdict (info): they may or may not have "
                            "taken effect, and the checks allow either")
    return report


def _agreement(report: Report, honest: list[ReplicaLog]) -> None:
    per_slot: dict[int, dict[tuple, tuple[Any, set[int]]]] = {}
    for r in honest:
        seen: dict[int, Any] = {}
        for d in r.decisions:
            slot, value = d["slot"], d.get("value")
            if slot in seen and _key(seen[slot]) != _key(value):
                report.add("reversal", f"node{r.node} committed {show(seen[slot])} at slot {slot}, "
                                       f"then {show(value)} at the same slot")
            seen[slot] = value
            entry = per_slot.setdefault(slot, {}).setdefault(_key(value), (value, set()))
            entry[1].add(r.node)
    for slot in sorted(per_slot):
        values = per_slot[slot]
        if len(values) > 1:
            parts = sorted((sorted(nodes), show(v)) for v, nodes in values.values())
            said = ", ".join(f"{'+'.join(f'node{n}' for n in nodes)} committed {text}" for nodes, text in parts)
            report.add("agreement", f"slot {slot}: {said}")


def _double_spends(report: Report, spends: dict[int, dict[str, tuple[int, Any]]]) -> None:
    by_coin: dict[str, dict[tuple, list[tuple[int, int, Any]]]] = {}
    for node, coins in spends.items():
        for coin, (slot, value) in coins.items():
            by_coin.setdefault(coin, {}).setdefault(_key(value), []).append((node, slot, value))
    for coin in sorted(by_coin):
        payments = by_coin[coin]
        if len(payments) > 1:
            said = "; ".join(
                f"{show(holders[0][2])} by {'+'.join(f'node{n}' for n, _, _ in holders)} (slot "
                f"{'/'.join(sorted({str(s) for _, s, _ in holders}))})"
                for holders in sorted(payments.values(), key=lambda h: show(h[0][2])))
            report.add("double-spend", f"coin {coin} spent twice: {said}")


def _durability(report: Report, pays: list[Operation], finals: dict[int, dict[int, Any]],
                spends: dict[int, dict[str, tuple[int, Any]]], prefixes: dict[int, int]) -> None:
    for o in pays:
        coin = (o.value or {}).get("coin")
        holders = [n for n, coins in spends.items() if coin in coins and _key(coins[coin][1]) == _key(o.value)]
        if o.ok:
            slot = o.result.get("slot")
            if not holders:
                report.add("lost", f"{show(o.value)} was acknowledged as committed at slot {slot} "
                                   f"(op {o.op}), but no honest replica holds it")
                continue
            for n, k in sorted(prefixes.items()):
                if n in holders or not isinstance(slot, int) or k <= slot:
                    continue
                report.add("lost", f"{show(o.value)} was acknowledged at slot {slot} (op {o.op}), but node{n}, "
                                   f"which has decided up to slot {k - 1}, does not hold it")
        elif o.failed and holders:
            where = ", ".join(f"node{n} slot {spends[n][coin][0]}" for n in holders)
            report.add("phantom-fail", f"{show(o.value)} was reported rejected (op {o.op}: "
                                       f"{o.result.get('error', 'failed')}), yet it is committed at {where}")


def _real_time(report: Report, pays: list[Operation], finals: dict[int, dict[int, Any]],
               spends: dict[int, dict[str, tuple[int, Any]]]) -> None:
    """The committed order as the linearization: an op completed before another was
    invoked must sit at a lower slot (checked on the longest honest log)."""
    if not finals:
        return
    node = max(finals, key=lambda n: (prefix(finals[n]), len(finals[n]), -n))
    coins = spends[node]
    placed = []
    for o in pays:
        coin = (o.value or {}).get("coin")
        if coin in coins and _key(coins[coin][1]) == _key(o.value):
            placed.append((coins[coin][0], o))
    # Scan from the highest slot down, keeping the op there that completed earliest: an
    # op at a lower slot invoked after that completion is out of real-time order.
    placed.sort(key=lambda so: so[0], reverse=True)
    earliest: tuple[float, int, Operation] | None = None
    for slot, o in placed:
        if earliest is not None and earliest[0] < o.invoke:
            done, at, first = earliest
            report.add("real-time", f"{show(first.value)} completed (op {first.op}) before {show(o.value)} was "
                                    f"invoked (op {o.op}, {o.invoke - done:.3f}s later), yet node{node}'s log has it "
                                    f"at slot {at}, after slot {slot}")
        if o.complete is not None and (earliest is None or o.complete < earliest[0]):
            earliest = (o.complete, slot, o)


def _linearizable(report: Report, pays: list[Operation]) -> None:
    result = linearizable.check(pays, linearizable.COIN, linearizable.coin_of)
    report.stats["linearizability"] = {"objects": result.checked, "unknown": len(result.unknown)}
    if result.unknown:
        report.notes.append(f"linearizability: the search gave up on {len(result.unknown)} coin(s) "
                            f"(too many concurrent operations), e.g. {result.unknown[0]}")
    if result.failure is not None:
        coin, ops = result.failure
        said = "; ".join(f"op {o.op} {show(o.value)} {o.type}" for o in ops)
        report.add("linearizability", f"no order of the operations on coin {coin} fits a ledger: {said}")
