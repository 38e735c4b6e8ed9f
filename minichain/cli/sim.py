"""``minichain sim``: the deterministic network laboratory, one command per scenario.

Every command takes ``--seed`` (same seed, same output, byte for byte) and ``--json``,
and prints the seed with its result.
"""

from __future__ import annotations

import json

import click


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> tuple[int, ...]:
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = part.split("-")
                out.extend(range(int(lo), int(hi) + 1))
            elif part:
                out.append(int(part))
    except ValueError:
        raise click.BadParameter(f"expected integers or ranges like 0-10, got {text!r}") from None
    return tuple(out)


def _emit(result: dict, as_json: bool, table) -> None:
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
    else:
        click.echo(f"seed={result['seed']}  scenario={result['scenario']}")
        table(result)


def _row(cells, widths) -> str:
    return "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))


seed_option = click.option("--seed", default=1, show_default=True, type=int, help="Seed of the run's one random generator.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")


@click.group()
def sim() -> None:
    """Deterministic simulations: Nakamoto consensus under attacks and faults."""


@sim.command("double-spend")
@seed_option
@json_option
@click.option("--q", "qs", default="0.1,0.15,0.2,0.25,0.3,0.35,0.4,0.45", show_default=True, help="Attacker hash shares (comma-separated, each < 0.5).")
@click.option("--z", "zs", default="0-10", show_default=True, help="Confirmations the merchant waits for (e.g. 0-10 or 1,2,6).")
@click.option("--trials", default=20_000, show_default=True, type=click.IntRange(1), help="Race trials per (q, z).")
@click.option("--network-trials", default=0, show_default=True, type=click.IntRange(0), help="Also attack on the simulated network this many times per (q, z).")
def double_spend_cmd(seed: int, as_json: bool, qs: str, zs: str, trials: int, network_trials: int) -> None:
    """Attacker success rate with a 95% interval, beside Nakamoto's and Rosenfeld's formulas.

    \b
    Example:
      minichain sim double-spend --q 0.1,0.3 --z 0-6 --trials 100000
    """
    from minichain.sim.scenarios import double_spend

    q_values = _floats(qs)
    if any(not 0 <= q < 0.5 for q in q_values):
        raise click.BadParameter("each q must be in [0, 0.5)", param_hint="--q")
    result = double_spend.run(seed, qs=q_values, zs=_ints(zs), trials=trials, network_trials=network_trials)

    def table(r):
        head = ["q", "z", "measured", "95% CI", "Rosenfeld/GPM", "Nakamoto", "in CI"]
        widths = [5, 3, 9, 19, 13, 9, 5]
        if network_trials:
            head += ["network", "net 95% CI"]
            widths += [9, 19]
        click.echo(_row(head, widths))
        for row in r["rows"]:
            cells = [row["q"], row["z"], f"{row['rate']:.5f}", f"[{row['ci95'][0]:.5f},{row['ci95'][1]:.5f}]",
                     f"{row['rosenfeld']:.5f}", f"{row['nakamoto']:.5f}", "yes" if row["rosenfeld_in_ci"] else "NO"]
            if network_trials:
                cells += [f"{row['network_rate']:.4f}", f"[{row['network_ci95'][0]:.4f},{row['network_ci95'][1]:.4f}]"]
            click.echo(_row(cells, widths))
        click.echo(f"Rosenfeld's exact value inside the 95% interval: {r['rosenfeld_inside_ci95']} cells "
                   "(about 95% expected by chance)")

    _emit(result, as_json, table)


@sim.command("partition")
@seed_option
@json_option
@click.option("--nodes", default=20, show_default=True, type=click.IntRange(2, 5000))
@click.option("--split", default=0.5, show_default=True, type=click.FloatRange(0, 1, min_open=True, max_open=True), help="Share of the hash power on side A.")
@click.option("--hours", default=6.0, show_default=True, type=click.FloatRange(0, min_open=True), help="How long the partition lasts.")
@click.option("--confirmations", default=6, show_default=True, type=click.IntRange(1))
def partition_cmd(seed: int, as_json: bool, nodes: int, split: float, hours: float, confirmations: int) -> None:
    """Split the network in two, let both sides mine, heal, and count what was undone.

    \b
    Example:
      minichain sim partition --nodes 20 --split 0.5 --hours 6
    """
    from minichain.sim.scenarios import partition

    result = partition.run(seed, n=nodes, split=split, duration=hours * 3600, confirmations=confirmations)

    def table(r):
        t0, t1 = r["partition"]
        click.echo(f"partition {t0:.0f}s -> {t1:.0f}s, {r['n']} nodes, side A has {r['split']:.0%} of the hash power")
        click.echo(f"blocks mined during the partition: A={r['mined_during_partition']['A']} B={r['mined_during_partition']['B']}")
        click.echo(f"orphaned after the heal:          A={r['orphaned_during_partition']['A']} B={r['orphaned_during_partition']['B']}"
                   f"  (winner: side {r['winner']})")
        click.echo(f"deepest reorg: {r['max_reorg_depth']} blocks; nodes that reorged: {r['nodes_reorged_after_heal']}")
        for txid, p in r["payments"].items():
            state = "REVERSED" if p["reversed_at"] is not None else ("final" if p["in_final_chain"] else "unconfirmed")
            when = "never confirmed" if p["confirmed_at"] is None else f"confirmed at t={p['confirmed_at']:.0f} s"
            click.echo(f"payment {txid}: {when}, max depth {p['max_depth']}, {state}"
                       + (f" (replaced by {p['replaced_by']})" if p["replaced_by"] else ""))
        click.echo(f"confirmed payments reversed: {r['confirmed_payments_reversed']}; "
                   f"conflicting decisions: {r['conflicting_decisions']} heights; messages sent: {r['messages']['sent']}")

    _emit(result, as_json, table)


@sim.command("selfish-mining")
@seed_option
@json_option
@click.option("--alpha", "alphas", default="0.2,0.25,0.3,0.35,0.4", show_default=True, help="Pool shares.")
@click.option("--gamma", "gammas", default="0,0.5,1", show_default=True, help="Tie-winning fractions.")
@click.option("--blocks", default=1_000_000, show_default=True, type=click.IntRange(1))
@click.option("--network", "network", is_flag=True, help="Run the pool on the simulated network instead (first alpha; gamma from latency).")
@click.option("--fast", default=0.5, show_default=True, type=click.FloatRange(0, 1), help="With --network: share of honest miners that hear the pool first.")
def selfish_mining_cmd(seed: int, as_json: bool, alphas: str, gammas: str, blocks: int, network: bool, fast: float) -> None:
    """The selfish pool's revenue share beside Eyal and Sirer's formula and thresholds.

    \b
    Example:
      minichain sim selfish-mining --alpha 0.3,0.4 --gamma 0,1
      minichain sim selfish-mining --network --alpha 0.35 --fast 0.5 --blocks 3000
    """
    from minichain.sim.scenarios import selfish_mining

    if network:
        result = selfish_mining.network_run(seed, alpha=_floats(alphas)[0], fast=fast, blocks=blocks)

        def table(r):
            click.echo(f"alpha={r['alpha']} honest miners={r['honest_miners']} main chain={r['main_chain']} mined={r['mined']}")
            click.echo(f"pool revenue {r['revenue']:.4f}; gamma measured {r['gamma_measured']:.3f} over {r['ties']} ties; "
                       f"Eyal-Sirer at that gamma {r['eyal_sirer_at_measured_gamma']:.4f}; honest mining would give {r['alpha']}")
    else:
        result = selfish_mining.run(seed, alphas=_floats(alphas), gammas=_floats(gammas), blocks=blocks)

        def table(r):
            widths = [6, 6, 9, 11, 8, 11]
            click.echo(_row(["alpha", "gamma", "revenue", "Eyal-Sirer", "diff", "profitable"], widths))
            for row in r["rows"]:
                click.echo(_row([row["alpha"], row["gamma"], f"{row['revenue']:.4f}", f"{row['eyal_sirer']:.4f}",
                                 f"{row['difference']:+.4f}", "yes" if row["profitable"] else "no"], widths))
            th = r["thresholds"]
            click.echo(f"profitable above alpha = {th['0.0']:.4f} (gamma 0), {th['0.5']:.4f} (gamma 1/2), {th['1.0']:.4f} (gamma 1)")

    _emit(result, as_json, table)


@sim.command("stale-rate")
@seed_option
@json_option
@click.option("--interval", "intervals", default="600,60,15", show_default=True, help="Mean block intervals, seconds.")
@click.option("--delay", "delays", default="0.5,2,6", show_default=True, help="Propagation delays, seconds.")
@click.option("--miners", default=10, show_default=True, type=click.IntRange(2, 200))
@click.option("--blocks", default=1_000, show_default=True, type=click.IntRange(1))
def stale_rate_cmd(seed: int, as_json: bool, intervals: str, delays: str, miners: int, blocks: int) -> None:
    """Stale (orphan) rate against block interval and link latency.

    A block crosses a link in three latencies (header, getdata, block), so the
    first-order estimate beside each row is 1 - exp(-3d/T).

    \b
    Example:
      minichain sim stale-rate --interval 600,15 --delay 2,6
    """
    from minichain.sim.scenarios import stale_rate

    result = stale_rate.run(seed, intervals=_floats(intervals), delays=_floats(delays), miners=miners, blocks=blocks)

    def table(r):
        widths = [9, 6, 6, 6, 9, 17, 14]
        click.echo(_row(["interval", "delay", "mined", "stale", "rate", "95% CI", "1-exp(-3d/T)"], widths))
        for row in r["rows"]:
            click.echo(_row([row["block_interval"], row["delay"], row["mined"], row["stale"], f"{row['stale_rate']:.4f}",
                             f"[{row['ci95'][0]:.4f},{row['ci95'][1]:.4f}]", f"{row['approx']:.4f}"], widths))

    _emit(result, as_json, table)


@sim.command("compare")
@click.option("--engines", default=",".join(("nakamoto", "pbft", "tendermint", "raft", "paxos", "dls", "dls-byz")),
              show_default=True, help="Engines to compare (comma-separated).")
@click.option("--scenarios", default="all", show_default=True,
              help="Scenarios (comma-separated): normal, partition-even, partition-majority, crash-f, crash-f+1, "
                   "byzantine-f, byzantine-f+1, loss-1%, loss-10%, loss-30%, gst, skew, double-spend-f, double-spend-f+1.")
@click.option("--nodes", default=4, show_default=True, type=click.IntRange(4, 64), help="Replicas (miners) per run.")
@click.option("--seeds", default=5, show_default=True, type=click.IntRange(1), help="Runs per engine and scenario (seeds --seed, --seed+1, ...).")
@click.option("--seed", default=1, show_default=True, type=int, help="The first seed.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Write compare.json, compare.md and the plots to this directory (without it, only print).")
@click.option("--plots/--no-plots", default=True, show_default=True, help="With --out: also run what the plots need and draw them.")
@click.option("--markdown", "as_markdown", is_flag=True, help="Print the table as Markdown instead of a terminal table.")
@click.option("--describe", is_flag=True, help="Only print the setup and the scenarios (Markdown), run nothing.")
@json_option
def compare_cmd(engines: str, scenarios: str, nodes: int, seeds: int, seed: int, out_dir: str, plots: bool,
                as_markdown: bool, describe: bool, as_json: bool) -> None:
    """Every engine under the same scenarios and seeds: one table, one set of plots.

    With --out DIR, writes compare.json, compare.md and the plots
    messages_per_decision.png, partition_commits.png, double_spend.png and fork_tree.png.
    Progress and the wall time go to stderr, so stdout is the same for the same seed.

    \b
    Example:
      minichain sim compare --out compare-out
      minichain sim compare --engines pbft,raft,nakamoto --scenarios partition-even --seeds 3
    """
    import sys
    import time

    from minichain.sim import compare

    names = [s.strip() for s in scenarios.split(",") if s.strip()]
    cfg = compare.Config(
        engines=tuple(e.strip() for e in engines.split(",") if e.strip()),
        scenarios=tuple(compare.SCENARIOS) if names == ["all"] else tuple(names),
        n=nodes, seeds=seeds, seed=seed, plots=plots and out_dir is not None,
    )
    try:
        compare.check(cfg)
    except compare.CompareError as exc:
        raise click.BadParameter(str(exc)) from None
    if describe:
        click.echo(compare.describe(cfg), nl=False)
        return
    started = time.perf_counter()
    if sys.stderr.isatty():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from minichain.cli.common import console

        with Progress(TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console(stderr=True), transient=True) as bar:
            task = bar.add_task("comparing", total=compare.plan(cfg))
            result = compare.compare(cfg, lambda what: bar.update(task, advance=1, description=what))
    else:
        result = compare.compare(cfg)
    written = compare.write(result, out_dir) if out_dir is not None else []
    elapsed = time.perf_counter() - started
    if as_json:
        click.echo(compare.to_json(result))
    elif as_markdown:
        click.echo(compare.markdown(result) + "\n" + compare.caption(result))
    else:
        from rich.table import Table

        from minichain.cli.common import console

        table = Table(title=f"minichain sim compare: {compare.caption(result)}", title_justify="left")
        for i, h in enumerate(compare.HEADERS):
            # Names never wrap; numbers fold rather than being cut off on a narrow terminal.
            table.add_column(h, justify="left" if i < 2 else "right", no_wrap=i < 2, overflow="fold")
        rows = compare.table_rows(result)
        for i, cells in enumerate(rows):
            last_of_scenario = i + 1 == len(rows) or rows[i + 1][1] != cells[1]
            table.add_row(*cells, end_section=last_of_scenario)
        console().print(table)
        if written:
            click.echo("wrote " + ", ".join(written))
    sys.stdout.flush()
    click.echo(f"finished in {elapsed:.1f} s", err=True)


@sim.command("calibrate")
@click.option("--engine", required=True, type=click.Choice(["pbft", "tendermint", "raft", "paxos", "dls", "dls-byz"]),
              help="The engine to run both ways.")
@click.option("--scenario", default="normal", show_default=True,
              type=click.Choice(["normal", "partition-even", "crash-f", "byzantine-f"]))
@click.option("--duration", default=30.0, show_default=True, type=click.FloatRange(6.0, 600.0),
              help="Seconds of each run (payments until duration - 5 s).")
@click.option("--interval", default=0.5, show_default=True, type=click.FloatRange(0.05, 10.0),
              help="Seconds between two payments.")
@click.option("--fault-at", default=5.0, show_default=True, type=click.FloatRange(1.0))
@click.option("--heal-at", default=15.0, show_default=True, type=click.FloatRange(1.0),
              help="partition-even: when the partition heals.")
@click.option("--sim-latency", default=0.05, show_default=True, type=click.FloatRange(0.0, 10.0),
              help="The simulator's mean link latency, seconds (the real one is whatever 127.0.0.1 gives).")
@seed_option
@json_option
def calibrate_cmd(engine: str, scenario: str, duration: float, interval: float, fault_at: float, heal_at: float,
                  sim_latency: float, seed: int, as_json: bool) -> None:
    """One scenario in the simulator and on real processes, with matched parameters:
    commits, finality, messages per decision, commits during the fault per side and
    conflicts, in one table. The real run takes DURATION seconds of wall clock.

    \b
    Example:
      minichain sim calibrate --engine pbft --scenario partition-even
      minichain sim calibrate --engine raft --scenario normal --duration 20
    """
    import sys

    from minichain.testnet.calibrate import CalibrateError, Setup, calibrate, table_rows
    from minichain.testnet.network import TestnetError

    setup = Setup(engine=engine, scenario=scenario, seed=seed, duration=duration, interval=interval,
                  fault_at=fault_at, heal_at=min(heal_at, duration), sim_latency=sim_latency)
    try:
        setup.plan()
    except CalibrateError as exc:
        raise click.BadParameter(str(exc)) from None
    try:
        result = calibrate(setup, say=lambda text: click.echo(text, err=True))
    except TestnetError as exc:
        from minichain.cli.common import CommandError

        raise CommandError(f"the real run failed: {exc}") from None
    if as_json:
        click.echo(json.dumps(result, sort_keys=True))
        return
    from rich.table import Table

    from minichain.cli.common import console

    fault = {"normal": "no fault", "partition-even": f"partition {result['groups']} from {fault_at:g}s to "
                                                      f"{setup.heal_at:g}s",
             "crash-f": f"{result['faulty']} replica(s) crashed at {fault_at:g}s",
             "byzantine-f": f"{result['faulty']} Byzantine replica(s) ({result['behaviour']})"}[scenario]
    table = Table(title=f"sim calibrate: {engine}, {scenario} ({fault}); n={result['n']}, {result['payments']} "
                        f"payments every {interval:g}s, {duration:g}s; simulator seed {seed}, latency "
                        f"{sim_latency:g}s", title_justify="left")
    table.add_column("")
    table.add_column("simulator", justify="right")
    table.add_column("real processes", justify="right")
    for label, a, b in table_rows(result):
        table.add_row(label, a, b)
    console().print(table)
    sys.stdout.flush()

@sim.command("sweep", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("what", required=False, metavar="SPEC.toml|SCENARIO")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Results directory: results.csv/json, aggregate.csv, timings.csv, plots; runs already there are reused.")
@click.option("--workers", default=None, type=click.IntRange(1),
              help="Local worker processes (default: all cores; 1 runs in this process).")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Run on a Dask cluster, e.g. tcp://host:8786 (pip install 'minichain[cluster]').")
@click.option("--seeds", default=None, help="N (seeds 1..N), a list 3,7 or a range 1:21 (stop excluded).")
@click.option("--metrics", default=None, help="Metrics to keep and print (comma-separated; default: the scenario's).")
@click.option("--plots/--no-plots", default=True, show_default=True, help="With --out: draw the plots.")
@click.option("--json", "as_json", is_flag=True, help="Print the aggregate rows (one per point) as JSON.")
@click.option("--list", "list_scenarios", is_flag=True, help="List the scenarios, their parameters and metrics.")
@click.pass_context
def sweep_cmd(ctx: click.Context, what: str | None, out_dir: str | None, workers: int | None, scheduler: str | None,
              seeds: str | None, metrics: str | None, plots: bool, as_json: bool, list_scenarios: bool) -> None:
    """Run a parameter grid: every point for every seed, in parallel, resumable.

    The argument is a spec file (TOML, see docs/sweeps/) or a scenario name followed by its
    parameters, each a comma-separated list of values and start:stop:step ranges (stop
    excluded). One row per (point, seed) goes to DIR/results.csv; the table printed has
    one line per point: mean, 95% interval and the closed forms. Progress, wall time
    and memory go to stderr, so stdout is the same for the same sweep.

    \b
    Example:
      minichain sim sweep docs/sweeps/selfish-mining.toml --out sweep-out
      minichain sim sweep selfish-mining --alpha 0.05:0.5:0.05 --gamma 0,0.5,1 --seeds 20
      minichain sim sweep double-spend --q 0.1,0.3 --z 0:11 --scheduler tcp://HOST:8786
    """
    import os
    import sys

    from minichain.cli.common import EXIT_USAGE, CommandError
    from minichain.sim import sweep
    from minichain.sim.sweep import report

    if list_scenarios:
        click.echo(report.scenarios(), nl=False)
        return
    if what is None:
        raise click.UsageError("name a spec file or a scenario (minichain sim sweep --list shows them)")
    options = _parameter_options(ctx.args)
    try:
        if what.endswith(".toml") or os.path.isfile(what):
            spec = sweep.load(what).with_overrides(options, seeds=seeds, metrics=metrics)
        else:
            spec = sweep.from_cli(what, options, seeds=seeds, metrics=metrics)
    except sweep.SpecError as exc:
        raise CommandError(str(exc), EXIT_USAGE) from None
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        if sys.stderr.isatty():
            result = _sweep_with_progress_bar(spec, out_dir, workers, scheduler, plots)
        else:
            result = sweep.sweep(spec, out_dir, workers=workers, scheduler=scheduler, plots=plots)
    except sweep.SweepError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"cannot write the results: {exc.strerror or exc}: {exc.filename or out_dir}") from None
    except KeyboardInterrupt:
        saved = f"; the runs finished so far are in {out_dir}: the same command resumes" if out_dir else ""
        raise CommandError(f"interrupted{saved}", 130) from None
    if as_json:
        import json

        click.echo(json.dumps(result.aggregate, indent=1))
    else:
        click.echo(report.table(result), nl=False)
    sys.stdout.flush()
    click.echo(report.timing(result), err=True)
    if result.written:
        click.echo("wrote " + ", ".join(result.written), err=True)


def _sweep_with_progress_bar(spec, out_dir, workers, scheduler, plots):
    """The sweep under a rich progress bar on stderr: runs done of the total, ETA, executor.
    The bar starts at the first report, once the executor's workers have started (a
    worker forked while the bar's refresh thread holds a lock could inherit it locked)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from minichain.cli.common import console
    from minichain.sim import sweep
    from minichain.sim.sweep.runner import describe_executor

    bar = Progress(TextColumn(f"{spec.scenario} on {describe_executor(workers, scheduler)}"), BarColumn(),
                   MofNCompleteColumn(), TextColumn("runs, ETA"), TimeRemainingColumn(), TextColumn("elapsed"),
                   TimeElapsedColumn(),
                   console=console(stderr=True), transient=True)
    task = bar.add_task("sweep", total=len(spec.points()) * len(spec.seeds))

    def report(done: int, total: int) -> None:
        if not bar.live.is_started:
            bar.start()
        bar.update(task, completed=done)

    try:
        return sweep.sweep(spec, out_dir, workers=workers, scheduler=scheduler, plots=plots, progress=report)
    finally:
        bar.stop()


def _parameter_options(args: list[str]) -> list[tuple[str, str]]:
    """``--alpha 0.1,0.2 --block-interval=60`` -> [("alpha", "0.1,0.2"), ("block_interval", "60")]."""
    out: list[tuple[str, str]] = []
    args = list(args)
    while args:
        arg = args.pop(0)
        if not arg.startswith("--") or len(arg) == 2:
            raise click.UsageError(f"unexpected argument {arg!r}: give parameters as --name VALUES")
        name, eq, value = arg[2:].partition("=")
        if not eq:
            if not args or args[0].startswith("--"):
                raise click.UsageError(f"{arg} needs a value")
            value = args.pop(0)
        name = name.replace("-", "_")
        if any(n == name for n, _ in out):
            raise click.UsageError(f"--{name.replace('_', '-')} is given twice")
        out.append((name, value))
    return out
