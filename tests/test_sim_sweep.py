"""Sweeps: specs (files, inline grids, their errors), intervals, the tables and the command.

The acceptance against the closed forms is in ``test_sim_sweep_closed_forms.py``; the
executors, byte-identical results and resuming in ``test_sim_sweep_executors.py``.
"""

import json
import math
import os
import random
import statistics
from decimal import Decimal

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from minichain.cli import main
from minichain.sim import sweep
from minichain.sim.sweep import plots, results, stats
from minichain.sim.sweep.spec import parse_values
from minichain.sim.sweep.scenarios import SCENARIOS, Param


DOCS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs")


def write(tmp_path, text, name="spec.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


GOOD = """\
title = "t"
scenario = "selfish-mining"
seeds = 3

[axes]
alpha = "0.05:0.5:0.05"
gamma = [0, 0.5, 1]
blocks = 2_000
"""


# -- specs ---------------------------------------------------------------------------------------


def test_a_spec_file_gives_the_grid_with_decimal_ranges_and_the_defaults_filled_in(tmp_path):
    spec = sweep.load(write(tmp_path, GOOD))
    assert spec.values("alpha") == (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45)   # stop excluded, no 0.15000000000000002
    assert spec.values("gamma") == (0.0, 0.5, 1.0) and all(isinstance(g, float) for g in spec.values("gamma"))
    assert spec.values("blocks") == (2000,)
    assert spec.seeds == (1, 2, 3)
    assert spec.swept == ["alpha", "gamma"]
    points = spec.points()
    assert len(points) == 27
    assert points[0] == {"alpha": 0.05, "gamma": 0.0, "blocks": 2000}
    assert points[1] == {"alpha": 0.05, "gamma": 0.5, "blocks": 2000}   # the last axis varies fastest
    assert spec.metrics == ("revenue", "revenue_minus_alpha", "pool_blocks", "honest_blocks")


def test_the_inline_grid_of_the_issue_is_the_same_grid_as_the_file():
    inline = sweep.from_cli("selfish-mining", [("alpha", "0.05:0.5:0.05"), ("gamma", "0,0.5,1"), ("blocks", "2000")],
                            seeds="3")
    spec = sweep.from_dict({"scenario": "selfish-mining", "seeds": 3,
                            "axes": {"alpha": "0.05:0.5:0.05", "gamma": [0, 0.5, 1], "blocks": 2000}})
    assert inline.points() == spec.points() and inline.seeds == spec.seeds


def test_engine_names_the_replicated_scenario_and_seeds_take_lists_and_ranges():
    spec = sweep.from_dict({"engine": "tendermint", "seeds": "10:13", "axes": {"n": [4, 7]}})
    assert spec.scenario == "replicated" and spec.values("engine") == ("tendermint",)
    assert spec.seeds == (10, 11, 12)
    assert sweep.from_dict({"scenario": "double-spend", "seeds": [5, 2]}).seeds == (5, 2)


def test_asking_for_a_proportion_keeps_the_counts_it_is_pooled_from():
    spec = sweep.from_dict({"scenario": "double-spend", "metrics": ["rate"]})
    assert spec.shown == ("rate",)
    assert spec.metrics == ("rate", "successes")


@given(start=st.integers(-500, 500), step=st.integers(1, 300), count=st.integers(1, 40), scale=st.sampled_from([1, 10, 100, 1000]))
@settings(max_examples=200, deadline=None)
def test_a_range_holds_every_step_from_start_up_to_but_not_including_stop(start, step, count, scale):
    a, s = Decimal(start) / scale, Decimal(step) / scale
    stop = a + s * count
    values = parse_values(Param("x", float, 0.0, ""), f"{a}:{stop}:{s}")
    assert values == tuple(float(a + i * s) for i in range(count))


@pytest.mark.parametrize("text, line, words", [
    ('scenario = "selfish-minning"\n', 1, "unknown scenario 'selfish-minning'"),
    ('scenario = "selfish-mining"\n\n[axes]\ngamma = [0]\nalhpa = [0.1]\n', 5, "unknown parameter 'alhpa'"),
    ('scenario = "selfish-mining"\n[axes]\nalpha = "0.5:0.05:0.05"\n', 3, "is empty"),
    ('scenario = "selfish-mining"\n[axes]\nalpha = []\n', 3, "no values"),
    ('scenario = "selfish-mining"\n[axes]\nalpha = [0.1, 0.7]\n', 3, "must be in (0, 0.5]"),
    ('scenario = "selfish-mining"\n[axes]\nblocks = 10.5\n', 3, "expected an integer"),
    ('scenario = "selfish-mining"\n[axes]\nalpha = [0.1, 0.1]\n', 3, "appears twice"),
    ('scenario = "selfish-mining"\nseeds = 0\n', 2, "need at least one seed"),
    ('scenario = "selfish-mining"\nmetrics = ["revenu"]\n', 2, "unknown metric 'revenu'"),
    ('scenario = "selfish-mining"\nsweeps = 3\n', 2, "unknown key 'sweeps'"),
    ('scenario = "replicated"\n[axes]\nengine = ["pbft", "bft"]\n', 3, "unknown engine 'bft'"),
    ('scenario = "selfish-mining"\n[axes]\ngamma = [0, 1]\n[plot]\nx = "alpha"\n', 5, "not an axis with several values"),
    ('scenario = "selfish-mining"\n[axes]\nalpha = "0.1:0.3:0.1"\ngamma = [0 1]\n', 4, "not valid TOML"),
])
def test_a_bad_spec_is_one_sentence_naming_the_file_and_line(tmp_path, text, line, words):
    path = write(tmp_path, text)
    with pytest.raises(sweep.SpecError) as err:
        sweep.load(path)
    message = str(err.value)
    assert message.startswith(f"{path}, line {line}: "), message
    assert words in message


def test_a_missing_scenario_and_an_inline_typo_are_named():
    with pytest.raises(sweep.SpecError, match="names no 'scenario'"):
        sweep.from_dict({"seeds": 2})
    with pytest.raises(sweep.SpecError, match=r"--alhpa: unknown parameter for selfish-mining \(known: --alpha"):
        sweep.from_cli("selfish-mining", [("alhpa", "0.1")])
    with pytest.raises(sweep.SpecError, match="--gamma: the range '1:0.5' is empty"):
        sweep.from_cli("selfish-mining", [("gamma", "1:0.5")])


# -- intervals ------------------------------------------------------------------------------------


@pytest.mark.parametrize("df, table", [(1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (19, 2.093), (100, 1.984)])
def test_the_t_quantile_matches_the_printed_tables(df, table):
    # Two-sided 95% critical values, e.g. NIST/SEMATECH e-Handbook of Statistical Methods, table 1.3.6.7.2.
    assert abs(stats.t_quantile(0.975, df) - table) < 5e-4


def test_the_t_interval_of_five_values_by_hand():
    mean, lo, hi = stats.mean_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)            # t(0.975, 4) * s / sqrt(k)
    assert mean == 3.0 and abs(lo - (3 - half)) < 1e-5 and abs(hi - (3 + half)) < 1e-5
    assert stats.mean_interval([7.0]) == (7.0, None, None)


def test_the_t_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = random.Random(17)
    hits = 0
    for _ in range(4000):
        _, lo, hi = stats.mean_interval([rng.gauss(10.0, 3.0) for _ in range(4)])
        hits += lo <= 10.0 <= hi
    assert 0.935 <= hits / 4000 <= 0.965


def test_a_proportion_with_no_or_every_success_reaches_0_or_1_exactly():
    assert stats.proportion_interval(0, 1000)[1] == 0.0
    assert stats.proportion_interval(1000, 1000)[2] == 1.0
    rate, lo, hi = stats.proportion_interval(30, 1000)
    assert rate == 0.03 and lo < 0.03 < hi


# -- the tables --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small():
    spec = sweep.from_dict({"scenario": "double-spend", "seeds": 3,
                            "axes": {"q": [0.2, 0.3], "z": [1, 3], "trials": 400}})
    return sweep.sweep(spec)


def test_rows_come_in_grid_order_with_every_parameter_and_the_seed(small):
    rows = small.rows
    assert [(r["q"], r["z"], r["seed"]) for r in rows] == [
        (q, z, s) for q in (0.2, 0.3) for z in (1, 3) for s in (1, 2, 3)]
    assert list(rows[0]) == ["point", "q", "z", "trials", "seed", "run_seed", "rate", "successes"]
    assert all(r["trials"] == 400 and r["rate"] == r["successes"] / 400 for r in rows)


def test_each_point_and_seed_gets_its_own_random_stream():
    from minichain.sim.sweep.spec import canonical, run_seed

    keys = [canonical("double-spend", {"q": q, "z": z, "trials": 400}, s) for q in (0.2, 0.3) for z in (1, 3)
            for s in (1, 2, 3)]
    seeds = [run_seed(k) for k in keys]
    assert len(set(seeds)) == len(seeds) and all(0 <= x < 2**53 for x in seeds)
    assert run_seed(keys[0]) == run_seed(canonical("double-spend", {"trials": 400, "z": 1, "q": 0.2}, 1))


def test_a_sweep_row_is_the_row_the_single_command_prints_for_its_run_seed(small):
    row = next(r for r in small.rows if (r["q"], r["z"], r["seed"]) == (0.3, 3, 2))
    out = CliRunner().invoke(main, ["sim", "double-spend", "--q", "0.3", "--z", "3", "--trials", "400",
                                    "--seed", str(row["run_seed"]), "--json"])
    assert out.exit_code == 0, out.output
    alone = json.loads(out.stdout)["rows"][0]
    assert row["successes"] == alone["successes"] and row["rate"] == alone["rate"]


def test_the_aggregate_pools_a_proportion_and_sets_the_closed_forms_beside_it(small):
    for agg in small.aggregate:
        mine = [r for r in small.rows if r["point"] == agg["point"]]
        successes = sum(r["successes"] for r in mine)
        assert agg["seeds"] == 3
        assert agg["rate_mean"] == successes / 1200
        assert agg["rate_ci_lo"] < agg["rate_mean"] < agg["rate_ci_hi"]
        q, z = agg["q"], agg["z"]
        p = 1 - q
        rosenfeld = 1 - sum(math.comb(m + z - 1, m) * (p**z * q**m - p**m * q**z) for m in range(z + 1))
        assert abs(agg["rate_rosenfeld"] - rosenfeld) < 1e-12
        assert agg["successes_mean"] == statistics.fmean(r["successes"] for r in mine)


def test_the_table_prints_one_line_per_point_and_counts_the_points_inside_the_interval(small):
    from minichain.sim.sweep import report

    text = report.table(small)
    lines = text.splitlines()
    assert lines[0] == "double-spend: 4 points x 3 seeds (seeds 1..3); trials=400"
    assert lines[1].split() == ["q", "z", "rate", "95%", "CI", "rosenfeld", "nakamoto"]
    assert len(lines) == 2 + 4 + 1
    inside = sum(a["rate_ci_lo"] <= a["rate_rosenfeld"] <= a["rate_ci_hi"] for a in small.aggregate)
    assert lines[-1] == f"rate: Rosenfeld 2014 (exact) inside the 95% interval at {inside}/4 points"


def test_one_seed_gives_no_interval_column_but_a_pooled_proportion_keeps_its_own():
    from minichain.sim.sweep import report

    one = sweep.sweep(sweep.from_dict({"scenario": "selfish-mining", "axes": {"alpha": [0.2, 0.3], "blocks": 300}}))
    assert report.table(one).splitlines()[1].split() == ["alpha", "revenue", "eyal_sirer", "revenue_minus_alpha",
                                                         "eyal_sirer"]
    ds = sweep.sweep(sweep.from_dict({"scenario": "double-spend", "axes": {"z": [1, 2], "trials": 50}}))
    assert report.table(ds).splitlines()[1].split() == ["z", "rate", "95%", "CI", "rosenfeld", "nakamoto"]


def test_the_results_files_are_csv_and_json_of_the_same_rows(small, tmp_path):
    written = results.write(str(tmp_path), small.spec, small.rows, small.aggregate, small.timings)
    assert [p.rsplit("/", 1)[1] for p in written] == ["results.csv", "results.json", "aggregate.csv", "timings.csv"]
    csv_lines = (tmp_path / "results.csv").read_text().splitlines()
    assert csv_lines[0] == "point,q,z,trials,seed,run_seed,rate,successes"
    first = small.rows[0]
    assert csv_lines[1] == f"0,0.2,1,400,1,{first['run_seed']},{first['rate']!r},{first['successes']}"
    assert len(csv_lines) == 1 + 12
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["rows"] == small.rows and data["spec"]["axes"]["q"] == [0.2, 0.3]
    assert len((tmp_path / "aggregate.csv").read_text().splitlines()) == 1 + 4


# -- plots are chosen by the axes ---------------------------------------------------------------------


def test_two_numeric_axes_get_lines_and_a_heatmap_a_categorical_one_only_lines_three_none():
    two = sweep.from_dict({"scenario": "selfish-mining", "axes": {"alpha": [0.2, 0.3], "gamma": [0, 1]}})
    assert plots.options(two)["x"] == "alpha" and plots.options(two)["hue"] == "gamma"
    assert plots.options(two)["heatmap"] == "revenue_minus_alpha" and plots.options(two)["contour"] == 0.0
    engines = sweep.from_dict({"engine": "pbft", "axes": {"n": [4, 7]}})
    assert plots.options(engines)["x"] == "n" and plots.options(engines)["hue"] is None
    cat = sweep.from_dict({"scenario": "replicated", "axes": {"engine": ["pbft", "raft"], "n": [4, 7]}})
    assert plots.options(cat)["x"] == "n" and plots.options(cat)["hue"] == "engine" and plots.options(cat)["heatmap"] is None
    three = sweep.from_dict({"scenario": "stale-rate", "axes": {"delay": [1, 2], "block_interval": [60, 600],
                                                                "miners": [5, 10]}})
    assert plots.options(three) is None
    assert sweep.from_dict({"scenario": "double-spend"}).swept == [] and plots.options(sweep.from_dict(
        {"scenario": "double-spend"})) is None


def test_the_plots_of_a_two_axis_sweep_are_written(tmp_path):
    spec = sweep.from_dict({"scenario": "selfish-mining", "seeds": 2,
                            "axes": {"alpha": [0.2, 0.3, 0.4], "gamma": [0, 1], "blocks": 500}})
    result = sweep.sweep(spec, str(tmp_path))
    pngs = sorted(p.rsplit("/", 1)[1] for p in result.written if p.endswith(".png"))
    assert pngs == ["revenue.png", "revenue_minus_alpha.png", "revenue_minus_alpha_heatmap.png"]
    for name in pngs:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- the command ----------------------------------------------------------------------------------------


def test_the_command_runs_an_inline_grid_and_prints_the_aggregate(tmp_path):
    out = CliRunner().invoke(main, ["sim", "sweep", "selfish-mining", "--alpha", "0.2,0.4", "--gamma", "0",
                                    "--blocks", "1000", "--seeds", "2", "--workers", "1", "--out", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert out.stdout.splitlines()[0] == "selfish-mining: 2 points x 2 seeds (seeds 1..2); gamma=0.0, blocks=1000"
    assert "4 runs; 4 computed on this process" in out.stderr
    assert (tmp_path / "results.csv").read_text().count("\n") == 1 + 4


@pytest.mark.parametrize("args, words", [
    (["selfish-mining", "--alhpa", "0.1"], "--alhpa: unknown parameter for selfish-mining"),
    (["selfish-mining", "--alpha"], "--alpha needs a value"),
    (["selfish-mining", "0.1"], "unexpected argument '0.1'"),
    (["selfish-minning"], "unknown scenario 'selfish-minning'"),
    (["double-spend", "--q", "0.3:0.1"], "--q: the range '0.3:0.1' is empty"),
    (["selfish-mining", "--seeds", "0"], "--seeds: need at least one seed"),
    ([], "name a spec file or a scenario"),
])
def test_a_bad_command_line_is_one_sentence_and_exit_2(args, words):
    out = CliRunner().invoke(main, ["sim", "sweep", *args])
    assert out.exit_code == 2
    assert words in out.output and "Traceback" not in out.output


def test_a_results_directory_that_cannot_be_written_is_one_sentence(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    out = CliRunner().invoke(main, ["sim", "sweep", "double-spend", "--trials", "10", "--out", str(blocked / "sub")])
    assert out.exit_code == 1
    assert "Error: cannot write the results: Not a directory" in out.output and "Traceback" not in out.output


def test_a_bad_spec_file_through_the_command_names_its_line(tmp_path):
    path = write(tmp_path, 'scenario = "double-spend"\n[axes]\nq = [0.1]\nzz = 3\n')
    out = CliRunner().invoke(main, ["sim", "sweep", path])
    assert out.exit_code == 2
    assert f"Error: {path}, line 4: unknown parameter 'zz' for double-spend" in out.output


def test_the_list_names_every_scenario_with_its_parameters():
    out = CliRunner().invoke(main, ["sim", "sweep", "--list"])
    assert out.exit_code == 0
    for name, sc in SCENARIOS.items():
        assert f"{name}: {sc.about}" in out.stdout
        for p in sc.params:
            assert f"--{p.name.replace('_', '-')}" in out.stdout


# -- the nakamoto scenario: a network stopped after a fixed number of blocks ----------------------------


def test_a_nakamoto_point_stops_at_its_block_count_and_reports_time_and_memory(tmp_path):
    spec = sweep.from_dict({"scenario": "nakamoto", "seeds": 2,
                            "axes": {"nodes": 40, "blocks": 12, "latency": [0.1, 30.0], "miners": 10}})
    result = sweep.sweep(spec, str(tmp_path))
    for row in result.rows:
        assert row["mined"] == 12                                   # exactly: the run stops at the 12th block
        assert row["height"] + row["stale"] >= 12 and row["height"] <= 12
        assert row["stale_rate"] == row["stale"] / 12
        assert row["messages"] > 0 and row["events"] > row["messages"]
    slow = [r for r in result.rows if r["latency"] == 30.0]
    fast = [r for r in result.rows if r["latency"] == 0.1]
    assert sum(r["stale"] for r in slow) >= sum(r["stale"] for r in fast)
    header, *lines = (tmp_path / "timings.csv").read_text().splitlines()
    assert header == "point,seed,wall_s,peak_rss_mb,worker" and len(lines) == 4
    for line in lines:
        _, _, wall, rss, _ = line.split(",")
        assert float(wall) > 0 and float(rss) > 10


def test_the_10k_spec_is_the_issue_s_point():
    spec = sweep.load(os.path.join(DOCS_DIR, "sweeps", "nakamoto-10k.toml"))
    assert len(spec.points()) == 1 and spec.seeds == (1,)
    assert spec.points()[0] == {"nodes": 10_000, "blocks": 200, "latency": 0.1, "block_interval": 600.0,
                                     "degree": 8, "miners": 50}


# -- the docs show the plots their commands draw ----------------------------------------------------------


def test_the_sweeps_page_shows_every_plot_its_commands_draw_and_no_other():
    import re

    from minichain.cli import docs

    page = os.path.join(DOCS_DIR, "sweeps.md")
    text = open(page).read()
    shown = set(re.findall(r"\]\((img/sweeps/[^)]+\.png)\)", text))
    drawn = set()
    for block in docs.blocks(page):
        m = re.fullmatch(r"minichain sim sweep (docs/sweeps/\S+\.toml) --out docs/(img/sweeps/\S+)", block.command)
        if m is None:
            continue
        spec = sweep.load(os.path.join(os.path.dirname(DOCS_DIR), m.group(1)))
        opts = plots.options(spec)
        names = [f"{metric}.png" for metric in opts["metrics"]]
        if opts["heatmap"]:
            names.append(f"{opts['heatmap']}_heatmap.png")
        drawn |= {f"{m.group(2)}/{name}" for name in names}
    assert len(drawn) >= 6
    missing = {p for p in drawn if not os.path.exists(os.path.join(DOCS_DIR, p))}
    assert not missing, f"run 'python -m minichain.cli.docs' to draw {missing}"
    assert shown <= drawn, shown - drawn
    assert {"img/sweeps/selfish-mining/revenue_minus_alpha_heatmap.png", "img/sweeps/double-spend/rate.png",
            "img/sweeps/stale-rate/stale_rate.png", "img/sweeps/bft-messages/msgs_per_decision.png"} <= shown
    for shipped in os.listdir(os.path.join(DOCS_DIR, "sweeps")):
        assert f"docs/sweeps/{shipped}" in text, f"docs/sweeps.md does not mention {shipped}"


# -- the Python API ----------------------------------------------------------------------------------------


def test_run_gives_a_dataframe_of_rows_or_of_points(tmp_path):
    spec = {"scenario": "selfish-mining", "seeds": 3, "axes": {"alpha": [0.2, 0.4], "gamma": [0, 1], "blocks": 800}}
    df = sweep.run(spec, str(tmp_path), plots=False)
    assert df.shape[0] == 12 and list(df.columns[:6]) == ["point", "alpha", "gamma", "blocks", "seed", "run_seed"]
    assert str(df["revenue"].dtype) == "float64" and str(df["pool_blocks"].dtype) == "int64"
    # the same numbers as the CSV it wrote
    import pandas as pd

    assert df.equals(pd.read_csv(tmp_path / "results.csv"))
    agg = sweep.run(spec, str(tmp_path), aggregate=True, plots=False)
    assert agg.shape[0] == 4
    means = df.groupby("point")["revenue"].mean()
    assert all(abs(agg.loc[i, "revenue_mean"] - means[agg.loc[i, "point"]]) < 1e-12 for i in agg.index)


def test_without_pandas_the_dataframe_api_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(sweep.SweepError, match=r"pip install 'minichain\[sweep\]'"):
        sweep.run({"scenario": "double-spend", "axes": {"trials": 5}})
