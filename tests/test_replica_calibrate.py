"""``sim calibrate``'s parts that need no processes: the one measuring function both runs
share, and the refusals of a calibration that cannot run."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from minichain.cli import main
from minichain.testnet.calibrate import Decision, Run, Setup, measure


def test_one_function_measures_both_runs():
    setup = Setup("pbft", "partition-even", duration=10, fault_at=2, heal_at=6)
    plan = setup.plan()
    p = lambda i: {"client": 0, "seq": i, "coin": f"c0.{i}", "payee": f"payee{i}"}   # noqa: E731
    decisions = [Decision(1.2, 0, 0, p(0)), Decision(1.3, 1, 0, p(0)), Decision(2.1, 2, 1, p(1)),
                 Decision(3.0, 3, 1, p(1)), Decision(7.0, 0, 1, p(2)), Decision(7.5, 1, 2, p(2))]
    run = Run(decisions, {(0, i, f"c0.{i}", f"payee{i}"): 1.0 + i for i in range(3)},
              sent=60, honest=[0, 1, 2, 3], live=[0, 1, 2, 3])
    m = measure(run, setup, plan)
    assert m["committed"] == 3                      # each payment's first commit, wherever it landed
    assert m["decided_slots"] == 3 and m["msgs_per_decision"] == 20.0
    assert m["conflicts"] == 1                      # slot 1: payment 1 at nodes 2, 3; payment 2 at node 0
    assert m["during_fault_by_side"] == [0, 1]      # grace of 1 s: only node3's decision at 3.0 counts
    assert m["finality_median"] == pytest.approx(0.2)     # of 0.2, 0.1 and 4.0
    assert m["finality_p95"] == pytest.approx(4.0)


@pytest.mark.parametrize("args,match", [
    (["--engine", "pbft", "--scenario", "loss-10%"], "Invalid value for '--scenario'"),
    (["--engine", "nakamoto"], "Invalid value for '--engine'"),
    (["--engine", "pbft", "--fault-at", "20", "--heal-at", "25", "--duration", "10"], "fault_at < heal_at"),
])
def test_bad_calibrations_are_refused_before_anything_runs(args, match):
    result = CliRunner().invoke(main, ["sim", "calibrate", *args])
    assert result.exit_code == 2 and match in result.output and "Traceback" not in result.output
