"""Every consensus engine on real processes: four replicas on 127.0.0.1, split and healed,
crashed and restarted, with Byzantine replicas, and checked from the clients' history.

Named after the nodes and faults (Malachite's n4f1 style). Each test starts its
replicas with ``testnet up --engine`` (the Python API of the same code), drives a
payment workload, and judges the history with the checker ``testnet check`` runs. Kept
short: a second or two of payments per phase.
"""

from __future__ import annotations

import time

import pytest

from minichain.testnet import network as tn
from minichain.testnet import workload as wl
from minichain.testnet.check import check
from minichain.testnet.nemesis import Fault
from minichain.testnet.nemesis import run as play
from minichain.testnet.spec import build_replicas
from tests.e2e.test_testnet_e2e import Cli, work  # noqa: F401 - work: the fixture that cleans up

pytestmark = pytest.mark.slow

ENGINES = ["pbft", "tendermint", "raft", "paxos", "dls", "dls-byz"]


def up(directory, engine: str, byzantine: int = 0, behaviour: str | None = None):
    return tn.up(str(directory), build_replicas(engine, nodes=4, byzantine=byzantine, behaviour=behaviour, seed=1))


def commit_indexes(state) -> list[int | None]:
    answers = tn.poll_all([tn.client_for(r, timeout=5) for r in state.nodes], lambda c: c.status()["commit_index"])
    return [a if isinstance(a, int) else None for a in answers]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s: {what}")


@pytest.mark.parametrize("engine", ENGINES)
def test_n4_split_2_2_halts_every_engine_heal_resumes_it_and_the_check_passes(work, engine):
    state = up(work, engine)
    before = wl.run_replicas(state, rate=5, duration=1.0, wait=4)
    assert before.ok == before.operations > 0, before.to_json()
    wait_for(lambda: len(set(commit_indexes(state))) == 1, 10, "the replicas to agree before the split")

    tn.partition(str(work), [[0, 1], [2, 3]])
    time.sleep(0.5)                                        # decisions already in flight land
    frozen = commit_indexes(state)
    during = wl.run_replicas(state, rate=4, duration=1.0, wait=1.0)
    assert during.ok == 0 and during.info == during.operations, during.to_json()
    assert commit_indexes(state) == frozen, "a side of a 2|2 split committed"

    tn.heal(str(work))
    after = wl.run_replicas(state, rate=4, duration=0.75, wait=8)
    assert after.ok == after.operations, after.to_json()
    report = check(state, settle=10)
    assert report.ok, report.summary()
    assert report.stats["ok"] == before.ok + after.ok
    # The payments stuck in the split went through after the heal (their clients had given up).
    assert min(report.stats["commit_index"].values()) >= before.ok + after.ok + during.operations


def test_n4_raft_split_3_1_the_majority_commits_the_lone_replica_does_not(work):
    state = up(work, "raft")
    wl.run_replicas(state, rate=5, duration=1, wait=4)
    tn.partition(str(work), [[0, 1, 2], [3]])
    time.sleep(1.5)                                        # a leader on the majority side
    lone = commit_indexes(state)[3]
    during = wl.run_replicas(state, rate=4, duration=1.5, wait=4)
    assert during.ok == during.operations, during.to_json()
    indexes = commit_indexes(state)
    assert indexes[3] == lone and min(indexes[:3]) > lone
    tn.heal(str(work))
    assert check(state, settle=10).ok


@pytest.mark.parametrize("engine", ["pbft", "tendermint"])
def test_n4f1_one_equivocating_replica_cannot_split_the_others(work, engine):
    state = up(work, engine, byzantine=1, behaviour="equivocate")
    result = wl.run_replicas(state, rate=5, duration=1.5, wait=4)
    assert result.ok > 0
    report = check(state, settle=1)     # PBFT: the deceived replica may lag until a checkpoint
    assert report.ok, report.summary()


@pytest.mark.parametrize("engine", ["pbft", "tendermint"])
def test_n4_two_equivocating_replicas_make_the_check_report_the_split_slot_and_both_values(work, engine):
    up(work, engine, byzantine=2, behaviour="equivocate")
    cli = Cli(work)
    cli("workload", "--rate", 5, "--duration", 1, "--wait", 2, "--dir", work)
    out = cli("check", "--settle", 2, "--dir", work, code=1).stdout
    line = next(x for x in out.splitlines() if x.startswith("VIOLATION agreement"))
    # Replica 0 (the first primary/proposer) sends the payment to one honest replica and a
    # twin paying "attacker" with the same coin to the other; both commit.
    assert "slot 0: node2 committed pay(c1->attacker), node3 committed pay(c1->payee1)" in line, out
    assert any(x.startswith("VIOLATION double-spend: coin c1 spent twice") for x in out.splitlines())


def test_n4_raft_leader_killed_and_restarted_keeps_every_acknowledged_payment(work):
    state = up(work, "raft")
    wl.run_replicas(state, rate=5, duration=1, wait=4)
    leader = next(s["leader"] for s in tn.poll_all([tn.client_for(r) for r in state.nodes], lambda c: c.status())
                  if isinstance(s, dict) and s["role"] == "leader")
    killed = tn.kill(str(work), leader)
    wl.run_replicas(state, rate=4, duration=2, wait=5)          # the others elect a new leader
    tn.restart(str(work), leader)
    status = tn.client_for(state.nodes[leader]).status()
    assert status["restarts"] == 1 and status["detail"]["term"] >= 1   # the term came back from disk
    assert tn.survey(tn.require_state(str(work)))[leader].record.pid != killed.pid
    wl.run_replicas(state, rate=4, duration=1, wait=5)
    report = check(state, settle=10)
    assert report.ok, report.summary()
    assert report.stats["commit_index"][leader] == max(report.stats["commit_index"].values())


def test_n4_pbft_a_short_nemesis_of_a_partition_a_crash_and_a_pause_and_the_check_passes(work):
    state = up(work, "pbft")
    import threading

    schedule = [Fault(0.5, 2.0, "partition", [[0, 3], [1, 2]]), Fault(2.5, 4.0, "kill", 0),
                Fault(4.5, 6.0, "pause", 1)]
    thread = threading.Thread(target=play, args=(str(work), schedule), kwargs={"history": state.history})
    thread.start()
    result = wl.run_replicas(state, rate=5, duration=7, wait=3, conflicts=0.3, seed=2)
    thread.join()
    report = check(state, settle=10)
    assert report.ok, report.summary()
    assert report.stats["nemesis"] == 6 and result.ok > 0 and result.fail > 0   # twins were refused
    assert all(r.pid and tn.process.alive(r.pid, r.datadir) for r in tn.require_state(str(work)).nodes)


def test_the_double_spend_demo_and_the_checker_name_the_same_reversed_payment(work):
    from minichain.testnet import demo

    where = work / "demo"
    result = demo.double_spend(network="regtest", directory=str(where), confirmations=3, attacker_blocks=5,
                               keep=True)
    assert result.survivor == "self-payment"             # the merchant's payment disappeared
    assert not result.check_ok and len(result.check) == 1
    assert result.check[0].startswith(f"reversed: payment {result.pay.txid[:16]} (op 1) was accepted at 3 "
                                      "confirmation(s)")
    out = Cli(work)("check", "--dir", where, code=1).stdout
    assert f"VIOLATION reversed: payment {result.pay.txid[:16]} (op 1) was accepted at 3 confirmation(s)" in out
    assert f"its coin is now spent by op 2 ({result.self_pay.txid[:16]})" in out
