"""Where a sweep runs does not change what it finds; an interrupted sweep resumes.

The acceptance of issue 17: byte-identical results with ``--workers 1``, ``--workers 2``
and a Dask ``LocalCluster`` started here; a sweep killed half-way and started again
computes only the missing runs and writes the same CSV as one that ran straight through.
"""

import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from minichain.cli import main
from minichain.sim import sweep
from minichain.sim.sweep import execute, results

FILES = ("results.csv", "results.json", "aggregate.csv")

# Two scenarios with floats, strings, integers and missing values (a replica that never
# commits has no finality) in their rows.
SPECS = {
    "selfish": {"scenario": "selfish-mining", "seeds": 3,
                "axes": {"alpha": [0.2, 0.3, 0.4], "gamma": [0, 0.5, 1], "blocks": 3_000}},
    "engines": {"scenario": "replicated", "seeds": 2,
                "axes": {"engine": ["raft", "pbft"], "fault": ["normal", "partition-even"], "n": [4],
                         "duration": 8.0, "fault_at": 2.0, "heal_at": 6.0}},
}


def files(out_dir):
    return {name: open(os.path.join(out_dir, name), "rb").read() for name in FILES}


@pytest.fixture(scope="module")
def inline(tmp_path_factory):
    out = {}
    for name, spec in SPECS.items():
        d = str(tmp_path_factory.mktemp(f"inline-{name}"))
        sweep.sweep(sweep.from_dict(spec), d, workers=1, plots=False)
        out[name] = files(d)
    return out


@pytest.mark.parametrize("name", SPECS)
def test_two_local_processes_write_the_same_bytes_as_one(inline, tmp_path, name):
    result = sweep.sweep(sweep.from_dict(SPECS[name]), str(tmp_path), workers=2, plots=False)
    assert result.executor == "2 local processes" and result.computed == len(result.rows)
    assert files(str(tmp_path)) == inline[name]
    workers = {t["worker"] for t in result.timings}
    assert len(workers) >= 1 and all(str(os.getpid()) not in w.split(":")[1] for w in workers)


@pytest.mark.slow
def test_a_dask_local_cluster_writes_the_same_bytes(inline, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        for name, spec in SPECS.items():
            out = str(tmp_path / name)
            result = sweep.sweep(sweep.from_dict(spec), out, scheduler=cluster.scheduler_address, plots=False)
            assert result.executor.startswith(f"Dask at {cluster.scheduler_address} (2 workers)")
            assert files(out) == inline[name], name
            assert {t["worker"].split(":")[1] for t in result.timings}.isdisjoint({str(os.getpid())})


def test_the_command_with_workers_1_and_2_prints_and_writes_the_same(tmp_path):
    outs = []
    for workers in ("1", "2"):
        d = tmp_path / workers
        r = CliRunner().invoke(main, ["sim", "sweep", "double-spend", "--q", "0.2,0.35", "--z", "0:4", "--trials", "300",
                                      "--seeds", "3", "--workers", workers, "--out", str(d), "--no-plots"])
        assert r.exit_code == 0, r.output
        outs.append((r.stdout, files(str(d))))
    assert outs[0] == outs[1]


def test_no_scheduler_at_the_address_is_one_sentence():
    pytest.importorskip("distributed")
    r = CliRunner().invoke(main, ["sim", "sweep", "double-spend", "--scheduler", "tcp://127.0.0.1:9"])
    assert r.exit_code == 1
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in r.output and "Traceback" not in r.output


def test_a_worker_running_other_code_is_refused(monkeypatch):
    honest = execute.run_task
    monkeypatch.setattr(execute, "run_task", lambda task: {**honest(task), "code": "0123456789abcdef"})
    with pytest.raises(sweep.SweepError, match="runs other minichain code"):
        sweep.sweep(sweep.from_dict({"scenario": "double-spend", "axes": {"trials": 10}}))


def test_a_failing_run_names_its_parameters_and_seed(monkeypatch):
    def broken(seed, **params):
        raise ZeroDivisionError("boom")

    sc = sweep.SCENARIOS["double-spend"]
    monkeypatch.setitem(sweep.SCENARIOS, "double-spend", type(sc)(**{**sc.__dict__, "run": broken}))
    with pytest.raises(sweep.SweepError, match=r"the double-spend run \(trials=10, q=0.3, z=6, seed 1\) failed: "
                                               r"ZeroDivisionError: boom"):
        sweep.sweep(sweep.from_dict({"scenario": "double-spend", "axes": {"trials": 10}}))


# -- resuming ----------------------------------------------------------------------------------------

# About 0.03 s a run: long enough to stop the sweep part-way, short enough for a test.
GRID = ["selfish-mining", "--alpha", "0.1:0.5:0.05", "--gamma", "0,0.5,1", "--blocks", "300000", "--seeds", "2",
        "--no-plots"]


def journal_lines(out_dir):
    path = os.path.join(out_dir, results.JOURNAL)
    if not os.path.exists(path):
        return 0
    with open(path) as fh:
        return sum(1 for line in fh if line.endswith("\n"))


def start(out_dir, workers):
    return subprocess.Popen([sys.executable, "-m", "minichain", "sim", "sweep", *GRID, "--workers", str(workers),
                             "--out", out_dir], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def wait_for_runs(proc, out_dir, at_least):
    deadline = time.monotonic() + 60
    while journal_lines(out_dir) < at_least:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the sweep did not get going"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def straight_through(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("straight"))
    r = CliRunner().invoke(main, ["sim", "sweep", *GRID, "--workers", "1", "--out", d])
    assert r.exit_code == 0, r.output
    return r.stdout, files(d)


def total_runs():
    return 8 * 3 * 2


@pytest.mark.slow
def test_a_sweep_killed_half_way_resumes_with_only_the_missing_runs_and_the_same_csv(tmp_path, straight_through):
    out = str(tmp_path / "killed")
    proc = start(out, workers=1)
    wait_for_runs(proc, out, 10)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    with open(os.path.join(out, results.JOURNAL), "a") as fh:
        fh.write('{"key": "torn in the middle of a wri')       # what a kill during a write leaves
    done = journal_lines(out)
    assert 10 <= done < total_runs()

    r = CliRunner().invoke(main, ["sim", "sweep", *GRID, "--workers", "2", "--out", out])
    assert r.exit_code == 0, r.output
    assert f"{total_runs()} runs; {done} already in the results directory; {total_runs() - done} computed" in r.stderr
    assert (r.stdout, files(out)) == straight_through
    # The runs from before the kill kept the killed process as their worker.
    timings = open(os.path.join(out, "timings.csv")).read().splitlines()[1:]
    assert sum(f":{proc.pid}" in line for line in timings) == done


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_says_how_to_resume_and_the_resumed_csv_is_the_same(tmp_path, straight_through):
    out = str(tmp_path / "interrupted")
    proc = start(out, workers=2)
    wait_for_runs(proc, out, 6)
    os.killpg(proc.pid, signal.SIGINT)                      # as a terminal's Ctrl-C: the whole process group
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert f"interrupted; the runs finished so far are in {out}: the same command resumes" in stderr
    assert "Traceback" not in stderr
    done = journal_lines(out)
    assert done < total_runs()

    resumed = sweep.sweep(sweep.from_cli("selfish-mining", [("alpha", "0.1:0.5:0.05"), ("gamma", "0,0.5,1"),
                                                            ("blocks", "300000")], seeds="2"), out, plots=False)
    assert resumed.reused == done and resumed.computed == total_runs() - done
    assert files(out) == straight_through[1]
    # and a third time nothing is left to compute
    again = sweep.sweep(resumed.spec, out, plots=False)
    assert again.computed == 0 and again.executor == "nothing to run" and files(out) == straight_through[1]
