"""The history checker on hand-made histories: ones that must pass, and ones that must
fail with the violation named (agreement, reversal, double spend, lost acknowledgement,
a rejected payment that committed, real-time order, no linearization)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minichain.history import linearizable
from minichain.history.checker import ReplicaLog, check_replicas
from minichain.history.records import HistoryError, HistoryWriter, operations, read_history


def pay(coin: str, payee: str, client: int = 0, seq: int | None = None) -> dict:
    return {"client": client, "seq": int(coin.split(".")[-1]) if seq is None else seq, "coin": coin, "payee": payee}


class H:
    """A history under construction: ``h.op(value, invoke, complete, kind, slot=...)``."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.n = 0

    def op(self, value: dict, t0: float, t1: float | None, kind: str = "ok", **extra) -> "H":
        self.n += 1
        self.events.append({"type": "invoke", "op": self.n, "process": 0, "f": "pay", "value": value, "time": t0})
        if kind != "open":
            self.events.append({"type": kind, "op": self.n, "process": 0, "f": "pay", "value": value,
                                "time": t1 if t1 is not None else t0, **extra})
        return self


def log(node: int, *slots_values, honest: bool = True) -> ReplicaLog:
    return ReplicaLog(node, honest, [{"slot": s, "value": v, "time": float(s)} for s, v in slots_values])


A, B, C = pay("c.0", "alice"), pay("c.1", "bob"), pay("c.2", "carol")
A_TWIN = pay("c.0", "mallory", client=1, seq=0)


def test_a_clean_history_with_every_replica_agreeing_passes():
    h = H().op(A, 0, 1, slot=0).op(B, 1.5, 2, slot=1).op(C, 2.5, None, "info")
    logs = [log(i, (0, A), (1, B), (2, C)) for i in range(4)]
    r = check_replicas(h.events, logs)
    assert r.ok, r.summary()
    assert r.stats["ok"] == 2 and r.stats["info"] == 1
    assert any("without a verdict" in n for n in r.notes)


def test_two_honest_replicas_committing_different_values_at_a_slot_is_an_agreement_violation():
    h = H().op(A, 0, 1, slot=0)
    logs = [log(0, (0, A)), log(1, (0, A)), log(2, (0, A_TWIN)), log(3, (0, A_TWIN), honest=False)]
    r = check_replicas(h.events, logs)
    assert not r.ok
    kinds = [v.kind for v in r.violations]
    assert "agreement" in kinds and "double-spend" in kinds and "lost" in kinds
    first = r.summary()[0]
    assert first == "agreement: slot 0: node0+node1 committed pay(c.0->alice), node2 committed pay(c.0->mallory)"


def test_a_byzantine_replicas_log_is_not_judged():
    h = H().op(A, 0, 1, slot=0)
    logs = [log(0, (0, A)), log(1, (0, A)), log(2, (0, A)), log(3, (0, A_TWIN), honest=False)]
    assert check_replicas(h.events, logs).ok


def test_a_replica_that_changes_its_mind_about_a_slot_is_a_reversal():
    h = H().op(A, 0, 1, slot=0)
    flip = ReplicaLog(1, True, [{"slot": 0, "value": A, "time": 0.5}, {"slot": 0, "value": B, "time": 3}])
    r = check_replicas(h.events, [log(0, (0, A)), flip])
    assert "reversal" in [v.kind for v in r.violations]
    assert any(s.startswith("reversal: node1 committed pay(c.0->alice) at slot 0, then pay(c.1->bob)")
               for s in r.summary())


def test_one_coin_paid_twice_in_one_log_spends_it_once():
    # The ledger rejects the second payment of a coin: both in the log is no double spend.
    h = H().op(A, 0, 1, slot=0).op(A_TWIN, 0.1, 1.2, "fail", error="spent")
    logs = [log(i, (0, A), (1, A_TWIN)) for i in range(3)]
    r = check_replicas(h.events, logs)
    assert r.ok, r.summary()


def test_an_acknowledged_payment_missing_from_every_replica_is_lost():
    h = H().op(A, 0, 1, slot=0).op(B, 2, 3, slot=1)
    logs = [log(i, (0, A)) for i in range(3)]
    r = check_replicas(h.events, logs)
    assert [v.kind for v in r.violations] == ["lost"]
    assert "pay(c.1->bob) was acknowledged as committed at slot 1 (op 2), but no honest replica holds it" in r.summary()[0]


def test_an_acknowledged_payment_missing_at_a_replica_that_decided_past_it_is_lost_there():
    h = H().op(A, 0, 1, slot=0)
    logs = [log(0, (0, A), (1, B)), log(1, (0, B), (1, C))]
    r = check_replicas(h.events, logs)
    assert any("node1, which has decided up to slot 1, does not hold it" in v.message for v in r.violations)


def test_a_lagging_replica_is_a_note_not_a_violation():
    h = H().op(A, 0, 1, slot=0).op(B, 2, 3, slot=1)
    logs = [log(0, (0, A), (1, B)), log(1, (0, A), (1, B)), log(2, (0, A))]
    r = check_replicas(h.events, logs)
    assert r.ok
    assert any(n.startswith("node2 is behind") for n in r.notes)


def test_a_payment_reported_rejected_that_committed_is_a_violation():
    h = H().op(B, 0, 1, "fail", error="coin spent")
    r = check_replicas(h.events, [log(0, (0, B)), log(1, (0, B))])
    assert "phantom-fail" in [v.kind for v in r.violations]


def test_commit_order_against_real_time_order_is_a_violation():
    # A completed before B was invoked, yet the log puts B first.
    h = H().op(A, 0, 1, slot=1).op(B, 2, 3, slot=0)
    r = check_replicas(h.events, [log(0, (0, B), (1, A)), log(1, (0, B), (1, A))])
    kinds = [v.kind for v in r.violations]
    assert kinds == ["real-time"]
    assert "pay(c.0->alice) completed (op 1) before pay(c.1->bob) was invoked (op 2, 1.000s later)" in r.summary()[0]


def test_concurrent_operations_may_commit_in_either_order():
    h = H().op(A, 0, 3, slot=1).op(B, 1, 2, slot=0)
    assert check_replicas(h.events, [log(0, (0, B), (1, A))]).ok


def test_two_acknowledged_payments_of_one_coin_have_no_linearization():
    h = H().op(A, 0, 1, slot=0).op(A_TWIN, 0.5, 1.5, slot=1)
    r = check_replicas(h.events, [log(0, (0, A), (1, A_TWIN))])
    assert "linearizability" in [v.kind for v in r.violations]


def test_a_rejection_before_anyone_spent_the_coin_has_no_linearization():
    # The twin was rejected at t=1, but the payment that spends the coin was invoked at t=2.
    h = H().op(A_TWIN, 0, 1, "fail").op(A, 2, 3, slot=0)
    r = check_replicas(h.events, [log(0, (0, A))])
    assert [v.kind for v in r.violations] == ["linearizability"]


def test_an_unknown_outcome_may_have_spent_the_coin():
    # The rejection is explained by the info operation having taken effect first.
    h = H().op(A, 0, None, "info").op(A_TWIN, 1, 2, "fail")
    r = check_replicas(h.events, [log(0, (0, A))])
    assert r.ok, r.summary()


def test_committed_payments_nobody_asked_for_are_noted():
    h = H().op(A, 0, 1, slot=0)
    r = check_replicas(h.events, [log(0, (0, A), (1, B))])
    assert r.ok and any("no operation of this history asked for" in n for n in r.notes)


# -- the linearizability search itself ------------------------------------------------------------


def ops_of(h: H):
    return operations(h.events)


def test_wing_gong_finds_the_order_hidden_behind_overlaps():
    # ok(A) overlaps fail(twin): the only order is A then twin, and it fits.
    h = H().op(A_TWIN, 0, 5, "fail").op(A, 1, 2)
    assert linearizable.linearizable(ops_of(h), linearizable.COIN) is True
    # Make the rejection finish before the payment starts: no order fits.
    h = H().op(A_TWIN, 0, 0.5, "fail").op(A, 1, 2)
    assert linearizable.linearizable(ops_of(h), linearizable.COIN) is False


def test_the_search_gives_up_and_says_unknown_past_its_step_budget():
    h = H()
    for i in range(8):
        h.op(pay("c.0", f"p{i}"), 0, 10, "info")
    h.op(pay("c.0", "last"), 0, 10, "ok")
    h.op(pay("c.0", "other"), 0, 10, "ok")     # two commits of one coin: impossible, but only after a search
    assert linearizable.linearizable(ops_of(h), linearizable.COIN, max_steps=50) is None
    assert linearizable.linearizable(ops_of(h), linearizable.COIN) is False


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 10), st.floats(0, 3), st.sampled_from(["ok", "fail", "info"])),
                min_size=1, max_size=6))
def test_the_search_agrees_with_brute_force_on_small_histories_of_one_coin(spec):
    """Random histories of up to six operations on one coin, overlapping at random: the
    search's verdict is what trying every real-time-consistent order (and every subset
    of the info operations left out) gives."""
    h = H()
    for k, (start, dur, kind) in enumerate(spec):
        h.op(pay("c.0", f"p{k}"), start, None if kind == "info" else start + dur, kind)
    ops = operations(h.events)
    assert linearizable.linearizable(ops, linearizable.COIN) is _brute_force(ops)


def test_one_after_another_a_history_is_linearizable_exactly_when_replaying_it_gives_its_outcomes():
    for outcomes, expected in ((["ok", "fail", "fail"], True), (["fail", "ok"], False), (["ok", "ok"], False),
                               (["info", "fail", "ok"], False), (["info", "fail"], True)):
        h = H()
        for k, kind in enumerate(outcomes):
            h.op(pay("c.0", f"p{k}"), 2 * k, None if kind == "info" else 2 * k + 1, kind)
        assert linearizable.linearizable(operations(h.events), linearizable.COIN) is expected, outcomes


def _brute_force(ops) -> bool:
    """Every order consistent with real time and every subset of info ops left out."""
    import itertools

    infos = [o for o in ops if o.type == "info"]
    for r in range(len(infos) + 1):
        for dropped in itertools.combinations(infos, r):
            chosen = [o for o in ops if o not in dropped]
            for order in itertools.permutations(chosen):
                if any(a.complete is not None and a.complete < b.invoke
                       for i, b in enumerate(order) for a in order[i + 1:]):
                    continue
                state, good = False, True
                for o in order:
                    good, state = linearizable.COIN.step(state, o)
                    if not good:
                        break
                if good:
                    return True
    return False


# -- the history file ------------------------------------------------------------------------------


def test_history_files_round_trip_and_bad_ones_are_named(tmp_path):
    path = tmp_path / "h.jsonl"
    with HistoryWriter(str(path)) as w:
        w.write({"type": "invoke", "op": 1, "process": 0, "f": "pay", "value": A})
        w.nemesis("partition", [[0, 1], [2, 3]])
        w.write({"type": "ok", "op": 1, "process": 0, "f": "pay", "value": A, "slot": 0})
    events = read_history(str(path))
    assert [e["type"] for e in events] == ["invoke", "nemesis", "ok"]
    assert operations(events)[0].ok
    path.write_text(path.read_text() + "not json\n")
    with pytest.raises(HistoryError, match="line 4 is not JSON"):
        read_history(str(path))
    with pytest.raises(HistoryError, match="no history at"):
        read_history(str(tmp_path / "missing.jsonl"))
    twice = [{"type": "invoke", "op": 1, "time": 0}, {"type": "ok", "op": 1, "time": 1}, {"type": "ok", "op": 1, "time": 2}]
    with pytest.raises(HistoryError, match="completes twice"):
        operations(twice)
    assert json.loads(path.read_text().splitlines()[1])["f"] == "partition"


# -- Nakamoto: accepted at k confirmations, later reversed ---------------------------------------------

from minichain.history.chain import check_chain  # noqa: E402


def nk_history(*ops):
    """(op, txid, coins, k or None): an invoke, and an ok at k confirmations unless None."""
    events = []
    for op, txid, coins, k in ops:
        value = {"txid": txid, "coins": coins, "payee": "m", "amount": 1, "node": "merchant"}
        events.append({"type": "invoke", "op": op, "f": "pay", "value": value, "time": op})
        if k is not None:
            events.append({"type": "ok", "op": op, "f": "pay", "value": value, "time": op + 0.5,
                           "confirmations": k, "height": 7, "node": "merchant"})
    return events


IN_BLOCK = {"in_mempool": False, "block_height": 7, "confirmations": 5}


def test_a_payment_still_in_every_chain_passes():
    r = check_chain(nk_history((1, "aa" * 32, ["x:0"], 3)), {"n0": {"aa" * 32: IN_BLOCK}, "n1": {"aa" * 32: IN_BLOCK}})
    assert r.ok and r.stats["ok"] == 1


def test_a_payment_accepted_at_k_confirmations_and_gone_everywhere_is_reported_with_k_and_its_rival():
    pay, rival = "aa" * 32, "bb" * 32
    events = nk_history((1, pay, ["x:0"], 3), (2, rival, ["x:0"], 5))
    views = {n: {pay: None, rival: IN_BLOCK} for n in ("merchant", "miner")}
    r = check_chain(events, views)
    assert [v.kind for v in r.violations] == ["reversed"]
    assert r.summary() == [f"reversed: payment {pay[:16]} (op 1) was accepted at 3 confirmation(s) (block 7 on "
                           f"merchant) and is no longer in the chain: gone at all 2 nodes; its coin is now spent by "
                           f"op 2 ({rival[:16]})"]


def test_a_payment_back_in_the_mempool_counts_as_reversed_and_one_missing_at_some_nodes_is_a_fork():
    pay = "cc" * 32
    back = {"in_mempool": True, "confirmations": 0}
    r = check_chain(nk_history((1, pay, ["y:1"], 1)), {"n0": {pay: back}})
    assert "back in the mempool" in r.summary()[0] and "at 1 confirmation(s)" in r.summary()[0]
    fork = check_chain(nk_history((1, pay, ["y:1"], 1)), {"n0": {pay: IN_BLOCK}, "n1": {pay: None}})
    assert fork.ok and "different branches" in fork.notes[0]


def test_an_unacknowledged_payment_that_vanished_is_not_a_violation():
    pay = "dd" * 32
    assert check_chain(nk_history((1, pay, ["z:0"], None)), {"n0": {pay: None}}).ok
