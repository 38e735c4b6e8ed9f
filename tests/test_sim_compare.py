"""The comparison, checked against what it must show -- read from the computed results.

The acceptance of issue 11: under an even partition Nakamoto keeps producing blocks on
both sides and reverses a payment after the heal, PBFT and Tendermint commit nothing
during it and never conflict, Raft and Paxos keep going only on a majority side; and the
same seed gives the same JSON.
"""

import dataclasses
import json

import pytest
from click.testing import CliRunner

from minichain.cli import main
from minichain.sim import compare
from minichain.sim.decisions import DecisionLog
from minichain.sim.scenarios.replicated import payment_safety
from minichain.sim.workload import Payment

SEEDS = 3


@pytest.fixture(scope="module")
def partitions():
    cfg = compare.Config(scenarios=("partition-even", "partition-majority"), seeds=SEEDS, plots=False)
    return compare.compare(cfg)


def runs_of(result, engine, scenario):
    rs = [r for r in result["runs"] if r["engine"] == engine and r["scenario"] == scenario]
    assert len(rs) == SEEDS
    return rs


def test_n4_even_partition_nakamoto_mines_on_both_sides_and_reverses_a_payment_after_the_heal(partitions):
    for r in runs_of(partitions, "nakamoto", "partition-even"):
        assert r["split"] == [[0, 1], [2, 3]]
        side_a, side_b = r["blocks_mined_during_fault_by_side"]
        assert side_a > 0 and side_b > 0, r                       # live on both sides...
        assert all(d > 0 for d in r["during_fault"]), r           # ...each side burying its own blocks
        assert not r["stalled"]
        assert r["conflicts"] > 0                                 # the sides decided different blocks
        assert r["reversed"] >= 1 and r["double_spent"] == 1      # one merchant's payment undone
        assert r["blocks_orphaned"] > 0
        # After the heal exactly one of the two conflicting payments survives, everywhere.
        holders = r["cross_spend"]
        winners = [payee for payee, nodes in holders.items() if nodes]
        assert len(winners) == 1 and holders[winners[0]] == [0, 1, 2, 3]


@pytest.mark.parametrize("engine", ["pbft", "tendermint"])
def test_n4f1_even_partition_bft_commits_nothing_during_it_and_never_conflicts(partitions, engine):
    for scenario in ("partition-even", "partition-majority"):
        for r in runs_of(partitions, engine, scenario):
            assert r["conflicts"] == 0 and r["reversed"] == 0 and r["double_spent"] == 0, r
    for r in runs_of(partitions, engine, "partition-even"):
        assert r["during_fault"] == [0, 0] and r["stalled"], r
        assert r["committed"] == r["submitted"]                   # and catches up after the heal


@pytest.mark.parametrize("engine", ["raft", "paxos"])
def test_n4f1_partition_cft_keeps_going_only_on_a_majority_side(partitions, engine):
    for r in runs_of(partitions, engine, "partition-even"):
        assert r["during_fault"] == [0, 0] and r["stalled"], r   # 2 of 4 is no majority
    for r in runs_of(partitions, engine, "partition-majority"):
        minority, majority = r["split"]
        assert len(majority) == 3 and len(minority) == 1
        assert r["during_fault"][0] == 0 and r["during_fault"][1] > 0, r
        assert not r["stalled"]
    for scenario in ("partition-even", "partition-majority"):
        for r in runs_of(partitions, engine, scenario):
            assert r["conflicts"] == 0 and r["reversed"] == 0 and r["double_spent"] == 0, r


def test_the_table_has_one_row_per_engine_and_scenario_with_totals_over_the_seeds(partitions):
    rows = {(r["engine"], r["scenario"]): r for r in partitions["rows"]}
    assert len(rows) == len(compare.ENGINES) * 2
    nak = rows[("nakamoto", "partition-even")]
    assert nak["runs"] == SEEDS
    assert nak["reversed"] == sum(r["reversed"] for r in runs_of(partitions, "nakamoto", "partition-even"))
    assert rows[("pbft", "partition-even")]["stalled"] == SEEDS
    md = compare.markdown(partitions)
    assert md.count("\n") == 2 + len(rows)
    assert "| pbft | partition-even | 70/70 |" in md


def test_same_seed_same_json_and_another_seed_differs():
    cfg = compare.Config(engines=("nakamoto", "pbft", "raft"), scenarios=("normal", "loss-10%", "partition-even"),
                         seeds=2, plots=True, scaling_n=(4, 7), ds_qs=(0.2,), ds_zs=(0, 1, 2), ds_trials=200)
    a = compare.to_json(compare.compare(cfg))
    b = compare.to_json(compare.compare(cfg))
    c = compare.to_json(compare.compare(dataclasses.replace(cfg, seed=5)))
    assert a == b
    assert a != c
    data = json.loads(a)
    assert data["config"]["seed"] == 1 and {r["seed"] for r in data["runs"]} == {1, 2}


def test_n4_byzantine_bound_f_equivocators_cannot_break_bft_but_f_plus_1_do():
    cfg = compare.Config(engines=("pbft", "tendermint", "raft", "paxos"),
                         scenarios=("double-spend-f", "double-spend-f+1"), seeds=2, plots=False)
    rows = {(r["engine"], r["scenario"]): r for r in compare.compare(cfg)["rows"]}
    for engine in ("pbft", "tendermint"):
        assert rows[(engine, "double-spend-f")]["conflicts"] == 0           # n = 3f + 1 holds
        assert rows[(engine, "double-spend-f+1")]["conflicts"] > 0          # one past the bound
    for engine in ("raft", "paxos"):
        # Crash fault tolerance is not Byzantine fault tolerance: one equivocating leader suffices.
        assert rows[(engine, "double-spend-f")]["conflicts"] > 0


def test_n4_crashes_one_past_f_stall_every_quorum_engine_but_not_nakamoto():
    cfg = compare.Config(scenarios=("crash-f", "crash-f+1"), seeds=1, plots=False)
    rows = {(r["engine"], r["scenario"]): r for r in compare.compare(cfg)["rows"]}
    for engine in ("pbft", "tendermint", "raft", "paxos", "dls", "dls-byz"):
        assert rows[(engine, "crash-f")]["stalled"] == 0
        assert rows[(engine, "crash-f+1")]["stalled"] == 1
    assert rows[("nakamoto", "crash-f+1")]["stalled"] == 0


def test_n4_before_gst_quorum_engines_wait_and_then_commit_everything_while_nakamoto_forks():
    cfg = compare.Config(engines=("nakamoto", "pbft", "tendermint", "raft", "paxos"), scenarios=("gst",),
                         seeds=2, plots=False)
    rows = {r["engine"]: r for r in compare.compare(cfg)["rows"]}
    for engine in ("pbft", "tendermint", "raft", "paxos"):
        r = rows[engine]
        assert r["stalled"] == 2 and r["conflicts"] == 0 and r["committed"] == r["submitted"], r
    assert rows["nakamoto"]["stalled"] == 0 and rows["nakamoto"]["conflicts"] > 0


def test_n4_byzantine_voters_without_an_equivocating_leader_do_not_split_pbft_or_tendermint():
    cfg = compare.Config(engines=("pbft", "tendermint"), scenarios=("byzantine-f", "byzantine-f+1"), seeds=2,
                         plots=False)
    for r in compare.compare(cfg)["runs"]:
        assert r["behaviour"] == "double-vote" and r["conflicts"] == 0, r


def test_unknown_names_and_too_few_nodes_are_clear_errors():
    with pytest.raises(compare.CompareError, match="unknown engine 'hotstuff'"):
        compare.check(compare.Config(engines=("hotstuff",)))
    with pytest.raises(compare.CompareError, match="unknown scenario 'weather'"):
        compare.check(compare.Config(scenarios=("weather",)))
    with pytest.raises(compare.CompareError, match="n >= 4"):
        compare.check(compare.Config(n=3))


def test_cli_compare_writes_the_table_json_and_four_plots(tmp_path):
    out = tmp_path / "cmp"
    result = CliRunner().invoke(
        main,
        ["sim", "compare", "--engines", "nakamoto,pbft", "--scenarios", "partition-even", "--seeds", "1",
         "--out", str(out)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "partition-even" in result.stdout and "pbft" in result.stdout
    names = sorted(p.name for p in out.iterdir())
    assert names == ["compare.json", "compare.md", "double_spend.png", "fork_tree.png",
                     "messages_per_decision.png", "partition_commits.png"]
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    data = json.loads((out / "compare.json").read_text())
    assert {r["engine"] for r in data["rows"]} == {"nakamoto", "pbft"}
    assert data["fork_tree"]["blocks"] and data["timelines"]["partition-even"]["pbft"]["commits"]


def test_cli_rejects_an_unknown_scenario():
    result = CliRunner().invoke(main, ["sim", "compare", "--scenarios", "normal,weather"])
    assert result.exit_code == 2 and "unknown scenario 'weather'" in result.output


# -- payment_safety: reversed payments and double-spent coins from a decision log ---------------

PAY_A = Payment(0, 0, "coin", "merchant-A")
PAY_B = Payment(0, 0, "coin", "merchant-B")
OTHER = Payment(0, 1, "coin2", "shop")


def blocks_of(value):
    return value if isinstance(value, tuple) else ()


def test_a_reorg_that_only_moves_a_payment_to_another_height_reverses_nothing():
    log = DecisionLog(2)
    log.record(1.0, 0, 1, (OTHER,))
    log.record(2.0, 0, 1, ())            # a reorg at one instant: height 1 replaced...
    log.record(2.0, 0, 2, (OTHER,))      # ...and the payment is at height 2 on the new chain
    reversed_, double = payment_safety(log, [0, 1], blocks_of)
    assert reversed_ == set() and double == set()


def test_a_payment_replaced_by_its_conflicting_twin_is_reversed_and_its_coin_double_spent():
    log = DecisionLog(2)
    log.record(1.0, 0, 1, (PAY_A,))
    log.record(1.0, 1, 1, (PAY_B,))      # the other side of a partition
    log.record(5.0, 0, 1, (PAY_B,))      # node 0 reorgs to node 1's chain
    reversed_, double = payment_safety(log, [0, 1], blocks_of)
    assert reversed_ == {PAY_A} and double == {"coin"}


def test_decisions_of_byzantine_nodes_do_not_count():
    log = DecisionLog(2)
    log.record(1.0, 0, 0, PAY_A)
    log.record(1.0, 1, 0, PAY_B)         # node 1 is Byzantine: its "commit" means nothing
    reversed_, double = payment_safety(log, [0], lambda v: (v,) if isinstance(v, Payment) else ())
    assert reversed_ == set() and double == set()


def test_same_seed_same_json_across_processes_with_different_hash_seeds():
    import os
    import subprocess
    import sys

    args = [sys.executable, "-c", "from minichain.cli import main; main()", "sim", "compare",
            "--engines", "nakamoto,pbft,dls", "--scenarios", "partition-even,double-spend-f", "--seeds", "1", "--json"]
    outs = [subprocess.run(args, env={**os.environ, "PYTHONHASHSEED": h}, capture_output=True, text=True, check=True).stdout
            for h in ("1", "2")]
    assert outs[0] == outs[1] and json.loads(outs[0])["rows"]
