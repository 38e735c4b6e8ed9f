"""``sim calibrate`` end to end: the simulator and four real Raft processes under the same
short partition, measured by the same function -- they agree on who commits and who halts."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from minichain.cli import main

pytestmark = pytest.mark.slow


def test_n4_raft_split_2_2_both_halves_halt_in_the_simulator_and_on_real_processes():
    result = CliRunner().invoke(main, ["sim", "calibrate", "--engine", "raft", "--scenario", "partition-even",
                                       "--duration", "8", "--fault-at", "2", "--heal-at", "5", "--json"])
    assert result.exit_code == 0, result.output
    r = json.loads(result.stdout)
    sim, real = r["simulator"], r["real"]
    assert r["payments"] == 6 and r["groups"] == [[0, 1], [2, 3]]
    assert sim["during_fault_by_side"] == real["during_fault_by_side"] == [0, 0]
    assert sim["committed"] == real["committed"] == 6           # everything commits after the heal
    assert sim["conflicts"] == real["conflicts"] == 0
    # Same protocol, same load: message counts within a fifth of each other (timers differ).
    assert abs(sim["msgs_per_decision"] - real["msgs_per_decision"]) < 0.2 * sim["msgs_per_decision"]
