"""``minichain testnet``: a local multi-node network on this machine.

    up         start N node processes on 127.0.0.1, link them, mine; return once synced
               (--engine pbft|tendermint|raft|paxos|dls|dls-byz: consensus replicas instead)
    status     every node's height, tip, peers, hash rate and mempool (warns when tips differ);
               for replicas their view/term/round, leader and commit index
    partition  split the network into groups that cannot reach each other
    heal       lift the partition
    kill       crash one node or replica (SIGKILL); restart brings it back
    workload   payments at a steady rate, recorded as a client history (history.jsonl)
    nemesis    a seeded schedule of partitions, crashes and pauses, logged into the history
    check      the history and the committed logs checked, Jepsen-style; non-zero on a violation
    logs       a node's log (-n lines, --follow)
    down       stop every node (and report those that had died)
    demo       double-spend: the attack, played on four processes and narrated

Every command works on one directory (--dir, default ./testnet-data, env
MINICHAIN_TESTNET_DIR) holding the state file, and one data directory per node. The
node processes keep running after ``up`` returns; ``down`` stops them.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import sys
import time

import click

from minichain.cli.common import CommandError, console

DEFAULT_DIR = "testnet-data"


def dir_option(f):
    return click.option("--dir", "directory", envvar="MINICHAIN_TESTNET_DIR", default=DEFAULT_DIR, show_default=True,
                        type=click.Path(file_okay=False), metavar="DIR",
                        help="Directory of the network's state and node data. [env MINICHAIN_TESTNET_DIR]")(f)


def handle_testnet_errors(f):
    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        from minichain.testnet.demo import DemoError
        from minichain.testnet.network import TestnetError
        from minichain.testnet.spec import SpecError
        from minichain.testnet.state import StateError
        from minichain.testnet.topology import TopologyError
        from minichain.wallet.client import NodeError

        try:
            return f(*args, **kwargs)
        except (TestnetError, SpecError, StateError, TopologyError, DemoError) as exc:
            raise CommandError(str(exc)) from None
        except NodeError as exc:
            raise CommandError(f"a node did not answer as expected: {exc}") from None
        except KeyboardInterrupt:
            raise CommandError("interrupted", 130) from None

    return wrapper


class RichObserver:
    """Draws the supervisor's phases: a live progress display on a terminal, a line per
    phase otherwise (logs, CI)."""

    def __init__(self, quiet: bool = False) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.console = console(stderr=True)
        self.quiet = quiet
        self.live = self.console.is_terminal and not quiet
        self.bar = None
        if self.live:
            self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=24),
                                MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("[dim]{task.fields[detail]}"),
                                console=self.console, transient=False)
        self.task = None
        self.started = False
        self.began = 0.0
        self.detail = ""
        self.text = ""

    def _close(self) -> None:
        if self.task is not None and self.bar is not None:
            t = self.bar.tasks[-1]
            self.bar.update(self.task, total=t.total or 1, completed=t.total or 1)
        elif self.text and not self.quiet and not self.live:
            extra = f" ({self.detail})" if self.detail else ""
            self.console.print(f"  done in {time.monotonic() - self.began:.1f}s{extra}")
        self.task = None
        self.text = ""

    def phase(self, text: str, total: int | None = None) -> None:
        self._close()
        self.began, self.detail, self.text = time.monotonic(), "", text
        if self.live:
            if not self.started:
                self.bar.start()
                self.started = True
            self.task = self.bar.add_task(text, total=total, detail="")
        elif not self.quiet:
            self.console.print(f"- {text}")

    def progress(self, done: int, detail: str = "") -> None:
        self.detail = detail
        if self.task is not None:
            if done:
                self.bar.update(self.task, completed=done, detail=detail)
            else:
                self.bar.update(self.task, detail=detail)

    def note(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text)

    def warn(self, text: str) -> None:
        self.console.print(f"warning: {text}")

    def finish(self) -> None:
        self._close()
        if self.started:
            self.bar.stop()
            self.started = False


@contextlib.contextmanager
def _signals_interrupt():
    """SIGTERM and SIGHUP act like Ctrl-C while the block runs, so that ``up`` killed
    half-way still stops the nodes it started (instead of leaving them unrecorded)."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    saved = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            saved[sig] = signal.signal(sig, interrupt)
        except ValueError:  # not the main thread (a test runner): leave signals alone
            pass
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _echo_json(data) -> None:
    click.echo(json.dumps(data, indent=1, sort_keys=True))


def _rate(h: float) -> str:
    for unit, scale in (("GH/s", 1e9), ("MH/s", 1e6), ("kH/s", 1e3)):
        if h >= scale:
            return f"{h / scale:.1f} {unit}"
    return f"{h:.0f} H/s" if h else "-"


@click.group()
def testnet() -> None:
    """Run a local multi-node network on this machine, split it and heal it.

    \b
    Example:
      minichain testnet up --nodes 4
      minichain testnet status
      minichain testnet partition 0,1 2,3 ; minichain testnet heal
      minichain testnet down
      minichain testnet demo double-spend
    """


# -- up ---------------------------------------------------------------------------------------


@testnet.command("up")
@click.option("--engine", type=click.Choice(["nakamoto", "pbft", "tendermint", "raft", "paxos", "dls", "dls-byz"]),
              default="nakamoto", show_default=True,
              help="nakamoto: mining nodes; any other: replicas of that consensus engine, every pair linked.")
@click.option("--nodes", type=click.IntRange(1, 64), default=None, help="How many node processes to start.  [default: 4]")
@click.option("--byzantine", type=click.IntRange(0, 64), default=0,
              help="Replicas (the lowest-numbered) that run a Byzantine --behaviour.  [default: 0]")
@click.option("--behaviour", default=None, metavar="NAME",
              help="The Byzantine replicas' behaviour: equivocate, double-vote, silent, ... (per engine).  "
                   "[default: equivocate]")
@click.option("--miners", type=click.IntRange(0, 64), default=None,
              help="How many of them mine, spread evenly (2 of 4: nodes 0 and 2).  [default: all]")
@click.option("--hashrate-share", "shares", metavar="S1,S2,...", default=None,
              help="Each miner's share of the hash power, e.g. 30,70 (ratios; percent signs allowed).  "
                   "[default: equal]")
@click.option("--topology", type=click.Choice(["line", "ring", "random", "full"]), default=None,
              help="How the nodes are linked.  [default: line]")
@click.option("--network", type=click.Choice(["testnet", "regtest"]), default=None,
              help="testnet: seconds-scale blocks, difficulty follows the miners; regtest: instant blocks, "
                   "miners only mine when asked.  [default: testnet]")
@click.option("--config", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="A network description (JSON or TOML; see testnet/ in the repository). Options override it.")
@click.option("--seed", type=click.IntRange(0), default=None, help="Seed of the random topology (printed when chosen).")
@click.option("--threads", type=click.IntRange(1, 256), default=None, help="Mining threads per miner.  [default: 1]")
@click.option("--base-port", type=click.IntRange(0, 65535), default=None,
              help="0: free ports; P: node i listens on P+2i (peers) and P+2i+1 (API).  [default: 0]")
@click.option("--timeout", type=click.FloatRange(1), default=180.0, show_default=True,
              help="Seconds to wait for the nodes to reach one tip.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning"]), default="info", show_default=True,
              help="The nodes' log level (their logs are DIR/NODE/node.log).")
@dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the network (pids, ports, wallets) as JSON.")
@handle_testnet_errors
def testnet_up(engine, nodes, byzantine, behaviour, miners, shares, topology, network, config, seed, threads,
               base_port, timeout, log_level, directory, as_json):
    """Start NODES node processes on 127.0.0.1, link them, give each miner a wallet,
    start mining, and return once every node has the same tip.

    The processes keep running in the background (each in its own session, logging to
    DIR/NODE/node.log); 'minichain testnet down' stops them. Starting again on the same
    DIR continues the same chains and wallets. If any node fails to start, every node
    already started is stopped again.

    With --engine other than nakamoto, it starts replicas of that consensus engine
    instead (python -m minichain.replica): the simulator's own engine classes on real
    sockets and clocks, linked pairwise with MAC-authenticated WebSockets; 'status' shows
    each replica's view/term/round, leader and commit index.

    \b
    Examples:
      minichain testnet up --nodes 4
      minichain testnet up --nodes 4 --miners 2 --hashrate-share 30,70
      minichain testnet up --config testnet/random8.json --dir /tmp/net8
      minichain testnet up --nodes 3 --network regtest --topology full
      minichain testnet up --engine pbft --nodes 4
      minichain testnet up --engine tendermint --nodes 4 --byzantine 1 --behaviour double-vote
    """
    from minichain.testnet import network as tn
    from minichain.testnet.spec import SpecError, build, build_replicas

    if engine != "nakamoto":
        mining = {"--miners": miners, "--hashrate-share": shares, "--topology": topology, "--network": network,
                  "--config": config, "--threads": threads}
        given = [name for name, value in mining.items() if value is not None]
        if given:
            raise SpecError(f"{', '.join(given)} apply to the Nakamoto testnet only, not to --engine {engine}")
        spec = build_replicas(engine, nodes=nodes, byzantine=byzantine, behaviour=behaviour, base_port=base_port,
                              seed=seed)
        return _up_replicas(spec, directory, timeout, log_level, as_json)
    if byzantine or behaviour:
        raise SpecError("--byzantine and --behaviour apply to the consensus engines (--engine pbft, ...), "
                        "not to Nakamoto nodes")
    spec = build(nodes=nodes, miners=miners, shares=shares, topology=topology, network=network, config=config,
                 seed=seed, threads=threads, base_port=base_port)
    tn.check_not_running(directory)  # before anything is printed (up checks again, under the lock)
    obs = RichObserver(quiet=as_json)
    where = os.path.abspath(directory)
    if not as_json:
        miners_text = ", ".join(f"{spec.names[p.node]} {p.share:.0%}" for p in spec.miners) or "none"
        seed_text = f" (seed {spec.seed})" if spec.topology == "random" else ""
        obs.note(f"testnet up: {spec.size} {spec.network} node(s), {spec.topology} topology{seed_text}, "
                 f"miners: {miners_text}; in {where}")
        hashing = sum(p.threads for p in spec.miners) if spec.network == "testnet" else 0
        cores = os.cpu_count() or 1
        if hashing > cores:
            obs.note(f"note: {hashing} mining threads on {cores} cores: the cores are shared out, and the "
                     "hash-power shares hold only roughly")
    state, took, views = _start(spec, directory, obs, timeout, log_level)
    if as_json:
        _echo_json({**_status_json(state, views), "seconds": round(took, 3), "explorer": _explorer_url(state)})
        return
    _print_table(state, views)
    tips = tn.tip_groups(views)
    tip = next(iter(tips)) if tips else "?"
    height = views[0].status["height"] if views and views[0].status else "?"
    click.echo(f"{len(state.nodes)} node(s) up and synced at height {height} (tip {tip[:16]}) in {took:.1f}s")
    click.echo(f"explorer: {_explorer_url(state)}")
    if spec.network == "regtest" and spec.miners:
        click.echo("regtest: blocks are instant, so the miners mine only when asked, e.g. "
                   f"minichain mine 10 --node {state.nodes[spec.miners[0].node].api} "
                   f"--datadir {state.nodes[spec.miners[0].node].datadir}")
    dir_arg = "" if os.path.normpath(directory) == DEFAULT_DIR else f" --dir {directory}"
    n = len(state.nodes)
    halves = " ".join(",".join(map(str, part)) for part in (range(n // 2), range(n // 2, n)))
    split = f"minichain testnet partition {halves}{dir_arg}  |  " if n >= 2 else ""
    click.echo(f"next: minichain testnet status{dir_arg}  |  {split}minichain testnet down{dir_arg}")
    miner = next((r for r in state.nodes if r.wallet), None)
    if miner is not None:
        click.echo(f"a miner's wallet: minichain wallet balance --wallet {miner.wallet} --node {miner.api}")


def _start(spec, directory, obs, timeout, log_level):
    """``up``, with SIGTERM acting as Ctrl-C: (state, seconds it took, every node's status)."""
    from minichain.testnet import network as tn

    began = time.monotonic()
    with _signals_interrupt():
        state = tn.up(directory, spec, obs, sync_timeout=timeout, log_level=log_level)
    return state, time.monotonic() - began, tn.survey(state)


def _up_replicas(spec, directory, timeout, log_level, as_json) -> None:
    from minichain.testnet import network as tn

    tn.check_not_running(directory)
    obs = RichObserver(quiet=as_json)
    where = os.path.abspath(directory)
    if not as_json:
        byz = ", ".join(f"{spec.names[i]} {b}" for i, b in sorted(spec.byzantine.items())) or "none"
        obs.note(f"testnet up: {spec.size} {spec.engine} replica(s), every pair linked, Byzantine: {byz}; in {where}")
    state, took, views = _start(spec, directory, obs, timeout, log_level)
    if as_json:
        _echo_json({**_status_json(state, views), "seconds": round(took, 3)})
        return
    _print_replica_table(state, views)
    click.echo(f"{len(state.nodes)} {state.engine} replica(s) up and linked in {took:.1f}s")
    dir_arg = "" if os.path.normpath(directory) == DEFAULT_DIR else f" --dir {directory}"
    click.echo(f"next: minichain testnet workload --rate 5 --duration 20{dir_arg}  |  "
               f"minichain testnet check{dir_arg}  |  minichain testnet down{dir_arg}")


def _explorer_url(state) -> str:
    """The explorer's network view, served by the first node: every node's tip on one tree."""
    from minichain.explorer import url_for

    return url_for("127.0.0.1", state.nodes[0].api_port, [("127.0.0.1", r.api_port, r.name) for r in state.nodes])


# -- status -----------------------------------------------------------------------------------


def _replica_status_json(state, views) -> dict:
    return {
        "directory": state.directory, "engine": state.engine, "running": state.running, "seed": state.seed,
        "partition": state.partition,
        "nodes": [{
            "index": v.record.index, "name": v.record.name, "pid": v.record.pid, "alive": v.alive,
            "p2p": v.record.p2p, "api": v.record.api, "datadir": v.record.datadir, "log": v.record.log,
            "behaviour": v.record.behaviour,
            **({k: v.status.get(k) for k in ("position", "leader", "role", "commit_index", "decided", "peers",
                                              "restarts", "messages", "detail")} if v.status else {}),
            "error": v.error,
        } for v in views],
    }


def _print_replica_table(state, views) -> None:
    table, side = _network_table(state, f"{state.engine} replicas in {state.directory} ({len(state.nodes)}, every "
                                        "pair linked)",
                                 (("node", False), ("pid", True), ("api", False), ("role", False),
                                  ("view/term/round", False), ("leader", True), ("commit", True), ("peers", True),
                                  ("sent", True), ("byzantine", False)))
    for v in views:
        r, s = v.record, v.status
        byz = r.behaviour or "-"
        if s is None:
            row = [f"{r.index} {r.name}", str(r.pid), r.api, v.error or "-", "-", "-", "-", "-", "-", byz]
        else:
            leader = "-" if s["leader"] is None else str(s["leader"])
            row = [f"{r.index} {r.name}", str(r.pid), r.api, s["role"] or "-", s["position"], leader,
                   str(s["commit_index"]), str(s["peers"]), str(s["messages"]["sent"]), byz]
        if state.partition:
            row.append(side.get(r.index, "?"))
        table.add_row(*row)
    console().print(table)


def _status_json(state, views) -> dict:
    from minichain.testnet import network as tn

    if state.replicas:
        return _replica_status_json(state, views)

    groups = tn.tip_groups(views)
    return {
        "directory": state.directory, "network": state.network, "running": state.running,
        "topology": state.topology, "links": [list(x) for x in state.links], "seed": state.seed,
        "partition": state.partition, "tips_differ": len(groups) > 1,
        "tips": {tip: [v.record.name for v in vs] for tip, vs in groups.items()},
        "nodes": [{
            "index": v.record.index, "name": v.record.name, "pid": v.record.pid, "alive": v.alive,
            "p2p": v.record.p2p, "api": v.record.api, "datadir": v.record.datadir, "log": v.record.log,
            "wallet": v.record.wallet, "address": v.record.address, "share": v.record.share,
            "threads": v.record.threads, "duty": v.record.duty,
            "height": v.status["height"] if v.status else None, "tip": v.status["tip"] if v.status else None,
            "peers": v.status["peers"] if v.status else None,
            "hashrate": v.status["hashrate"] if v.status else None,
            "mining": v.status["mining"] if v.status else None,
            "mempool": v.status["mempool"]["size"] if v.status else None,
            "chainwork": v.status["chainwork"] if v.status else None,
            "error": v.error,
        } for v in views],
    }


def _network_table(state, title: str, columns):
    """A status table with the network's columns, and each node's side of the partition."""
    from rich.table import Table

    side = {}
    for g, members in enumerate(state.partition or []):
        for v in members:
            side[v] = chr(ord("A") + g)
    if state.partition:
        title += " -- partitioned: " + " | ".join(",".join(map(str, g)) for g in state.partition)
    table = Table(title=title)
    for col, right in columns:
        table.add_column(col, justify="right" if right else "left")
    if state.partition:
        table.add_column("side")
    return table, side


def _print_table(state, views) -> None:
    table, side = _network_table(state, f"{state.network} network in {state.directory} ({state.topology}, "
                                        f"{len(state.links)} links)",
                                 (("node", False), ("pid", True), ("p2p", False), ("api", False), ("height", True),
                                  ("tip", False), ("peers", True), ("hash rate", True), ("mempool", True),
                                  ("miner", True)))
    for v in views:
        r, s = v.record, v.status
        miner = f"{r.share:.0%}" if r.share is not None else "-"
        if s is None:
            row = [f"{r.index} {r.name}", str(r.pid), r.p2p, r.api, "-", v.error or "-", "-", "-", "-", miner]
        else:
            rate = _rate(s["hashrate"]) if s["mining"] else "-"
            row = [f"{r.index} {r.name}", str(r.pid), r.p2p, r.api, str(s["height"]), s["tip"][:16], str(s["peers"]),
                   rate, str(s["mempool"]["size"]), miner]
        if state.partition:
            row.append(side.get(r.index, "?"))
        table.add_row(*row)
    console().print(table)


@testnet.command("status")
@dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@handle_testnet_errors
def testnet_status(directory, as_json):
    """Show every node's height, tip, peers, hash rate and mempool; warn when tips differ.
    For replicas: each one's role, view/term/round, the leader it follows, its commit
    index, links and messages sent.

    \b
    Example:
      minichain testnet status
      minichain testnet status --json
    """
    from minichain.testnet import network as tn

    state = tn.require_state(os.path.abspath(directory))
    views = tn.survey(state)
    if as_json:
        _echo_json(_status_json(state, views))
        return
    if not state.running:
        click.echo(f"the testnet in {state.directory} is stopped ('minichain testnet up' starts it again)")
        return
    err = console(stderr=True)
    if state.replicas:
        _print_replica_table(state, views)
        dead = [v.record.name for v in views if not v.alive]
        if dead:
            err.print(f"warning: not running: {', '.join(dead)} ('minichain testnet restart NODE' starts one again)")
        return
    _print_table(state, views)
    groups = tn.tip_groups(views)
    if len(groups) > 1:
        parts = [f"{','.join(v.record.name for v in vs)} at height {vs[0].status['height']} ({tip[:16]})"
                 for tip, vs in sorted(groups.items(), key=lambda kv: -kv[1][0].status["height"])]
        err.print(f"warning: tips differ ({len(groups)} branches): " + "; ".join(parts))
    dead = [v.record.name for v in views if not v.alive]
    if dead:
        err.print(f"warning: not running: {', '.join(dead)} (see 'minichain testnet logs NODE')")


# -- down -------------------------------------------------------------------------------------


@testnet.command("down")
@dir_option
@click.option("--purge", is_flag=True, help="Also delete the nodes' data (chains, wallets, logs) and the state file.")
@handle_testnet_errors
def testnet_down(directory, purge):
    """Stop every node of the testnet (SIGTERM, then SIGKILL after 20 s).

    A node that had already died is reported; the others are stopped anyway.

    \b
    Example:
      minichain testnet down
      minichain testnet down --purge
    """
    from minichain.testnet import network as tn

    report = tn.down(directory, RichObserver(quiet=True), purge=purge)
    err = console(stderr=True)
    for r in report.dead:
        err.print(f"warning: {r.name} (pid {r.pid}) was not running any more; the end of its log ({r.log}):")
        from minichain.testnet.process import log_tail

        err.print(log_tail(r.log, 5), markup=False, highlight=False)
    for r in report.killed:
        err.print(f"warning: {r.name} (pid {r.pid}) did not stop within 20 s and was killed")
    n = len(report.stopped) + len(report.killed)
    if not report.was_running and not n:
        click.echo(f"the testnet in {os.path.abspath(directory)} was not running")
    else:
        dead = f"; {len(report.dead)} had already died ({', '.join(r.name for r in report.dead)})" if report.dead else ""
        click.echo(f"stopped {n} node(s) in {report.seconds:.1f}s{dead}")
    if purge:
        click.echo(f"deleted the testnet's data in {os.path.abspath(directory)}")


# -- partition and heal -----------------------------------------------------------------------


@testnet.command("partition")
@click.argument("groups", nargs=-1, required=True)
@dir_option
@handle_testnet_errors
def testnet_partition(groups, directory):
    """Split the network into GROUPS that cannot reach each other.

    Each group is a comma-separated list of node numbers; nodes named in no group form
    one more group. Every node refuses (and drops) links to and from the nodes outside
    its group; links inside a group stay.

    \b
    Examples:
      minichain testnet partition 0,1 2,3
      minichain testnet partition 0          # node 0 alone, the rest together
    """
    from minichain.testnet import network as tn
    from minichain.testnet.topology import parse_groups

    state = tn.require_running(os.path.abspath(directory))
    parsed = parse_groups(list(groups), len(state.nodes))
    warnings = tn.partition(directory, parsed, RichObserver(quiet=True))
    err = console(stderr=True)
    for w in warnings:
        err.print(f"warning: {w}")
    names = " | ".join(",".join(state.nodes[v].name for v in g) for g in parsed)
    click.echo(f"partitioned: {names}")


@testnet.command("heal")
@dir_option
@click.option("--wait", "wait_sync", is_flag=True, help="Also wait until every node has the same tip, and say how long it took.")
@click.option("--timeout", type=click.FloatRange(1), default=60.0, show_default=True)
@handle_testnet_errors
def testnet_heal(directory, wait_sync, timeout):
    """Lift the partition: the nodes reconnect and the branch with the most work wins.

    \b
    Example:
      minichain testnet heal --wait
    """
    from minichain.testnet import network as tn

    report = tn.heal(directory, RichObserver(quiet=True), wait_sync=wait_sync, timeout=timeout)
    err = console(stderr=True)
    for w in report.warnings:
        err.print(f"warning: {w}")
    click.echo(f"healed: links back in {report.links_seconds:.1f}s")
    if wait_sync and report.tip is None:
        click.echo(f"every honest replica at commit index {report.height} {report.sync_seconds:.1f}s after the heal")
    elif wait_sync:
        click.echo(f"every node at height {report.height} (tip {report.tip[:16]}) {report.sync_seconds:.1f}s "
                   "after the heal")


# -- kill and restart -------------------------------------------------------------------------


@testnet.command("kill")
@click.argument("node")
@dir_option
@handle_testnet_errors
def testnet_kill(node, directory):
    """Crash NODE (its number or name) with SIGKILL: no clean shutdown, nothing flushed.

    A replica keeps what it wrote to disk before it spoke (its engine state, its
    decisions); 'minichain testnet restart NODE' brings it back from there.

    \b
    Example:
      minichain testnet kill 2 ; minichain testnet restart 2
    """
    from minichain.testnet import network as tn

    rec = tn.kill(directory, node)
    click.echo(f"killed {rec.name} (pid {rec.pid})")


@testnet.command("restart")
@click.argument("node")
@dir_option
@click.option("--log-level", type=click.Choice(["debug", "info", "warning"]), default="info", show_default=True)
@handle_testnet_errors
def testnet_restart(node, directory, log_level):
    """Start NODE again after a crash, on its ports and data directory, back in its place
    (its links, the partition if there is one; a replica runs its engine's recovery).

    \b
    Example:
      minichain testnet restart 2
    """
    from minichain.testnet import network as tn

    rec = tn.restart(directory, node, RichObserver(quiet=True), log_level=log_level)
    click.echo(f"restarted {rec.name} (pid {rec.pid}) on {rec.p2p}")


# -- workload, nemesis, check ------------------------------------------------------------------


@testnet.command("workload")
@click.option("--rate", type=click.FloatRange(0.01, 1000), default=5.0, show_default=True,
              help="Payments per second.")
@click.option("--duration", type=click.FloatRange(0.1), default=20.0, show_default=True, help="Seconds of payments.")
@click.option("--wait", type=click.FloatRange(0.1, 60), default=None,
              help="Seconds a payment may take before its outcome is recorded as unknown (info).  "
                   "[default: 5; Nakamoto: 30 + 15 per confirmation]")
@click.option("--conflicts", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Replicas: the fraction of payments shadowed by a concurrent twin spending the same coin.")
@click.option("--confirmations", "-k", type=click.IntRange(1, 50), default=1, show_default=True,
              help="Nakamoto: confirmations a payment needs to count as accepted.")
@click.option("--nemesis", "faults", default=None, metavar="FAULTS",
              help="Also run the nemesis meanwhile (partition,kill,pause; see 'testnet nemesis').")
@click.option("--nemesis-interval", type=click.FloatRange(0.1), default=5.0, show_default=True,
              help="With --nemesis: seconds each fault lasts (and each calm between faults).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seeds the twins and the nemesis schedule.")
@dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_testnet_errors
def testnet_workload(rate, duration, wait, conflicts, confirmations, faults, nemesis_interval, seed, directory,
                     as_json):
    """Pay at RATE payments a second for DURATION seconds and record every step in the
    history (DIR/history.jsonl): invoke, then ok, fail or info, with wall-clock times.

    Replicas: each payment goes to every replica; it is ok once one replica (f + 1 for
    PBFT, Tendermint and dls-byz) says it committed at one slot. Nakamoto: a miner's
    wallet pays a fresh address; ok at --confirmations. 'minichain testnet check' then
    judges the history against what the network committed.

    \b
    Examples:
      minichain testnet workload --rate 5 --duration 20
      minichain testnet workload --rate 5 --duration 120 --conflicts 0.1 --nemesis partition,kill,pause
    """
    import threading

    from minichain.testnet import nemesis as nem
    from minichain.testnet import network as tn
    from minichain.testnet import workload as wl

    state = tn.require_running(os.path.abspath(directory))
    schedule = []
    if faults:
        schedule = nem.plan(len(state.nodes), nem.parse_faults(faults), interval=nemesis_interval,
                            duration=duration, seed=seed)
    err = console(stderr=True)
    stop = threading.Event()
    thread = None
    if schedule:
        def play():
            try:
                nem.run(state.directory, schedule, history=state.history,
                        say=lambda text: err.print(f"nemesis {text}", highlight=False), stop=stop)
            except Exception as exc:  # noqa: BLE001 - reported; the workload goes on
                err.print(f"warning: the nemesis stopped: {exc}", highlight=False)

        thread = threading.Thread(target=play, name="nemesis", daemon=True)
        thread.start()
    try:
        with _signals_interrupt():
            if state.replicas:
                result = wl.run_replicas(state, rate=rate, duration=duration, wait=wait or wl.DEFAULT_WAIT,
                                         conflicts=conflicts, seed=seed)
            else:
                result = wl.run_nakamoto(state, rate=rate, duration=duration, confirmations=confirmations,
                                         wait=wait, seed=seed)
    finally:
        stop.set()
        if thread is not None:
            thread.join()
    out = result.to_json()
    if as_json:
        _echo_json(out)
        return
    lat = (f"; latency median {out['latency_median']:.3f}s, p95 {out['latency_p95']:.3f}s"
           if out["latency_median"] is not None else "")
    click.echo(f"{out['operations']} payment(s) in {out['seconds']:.1f}s: {out['ok']} ok, {out['fail']} failed, "
               f"{out['info']} unknown{lat}")
    click.echo(f"history: {out['history']} ('minichain testnet check' judges it)")


@testnet.command("nemesis")
@click.option("--faults", default="partition,kill,pause", show_default=True,
              help="Which faults to play, comma-separated: partition, kill, pause.")
@click.option("--interval", type=click.FloatRange(0.1), default=5.0, show_default=True,
              help="Seconds each fault lasts, and the calm between two faults.")
@click.option("--duration", type=click.FloatRange(0.1), default=60.0, show_default=True,
              help="Seconds of the whole schedule.")
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed plays the same faults.")
@dir_option
@handle_testnet_errors
def testnet_nemesis(faults, interval, duration, seed, directory):
    """Play a seeded schedule of faults on the running network: partitions (random
    halves, or a majority and the rest), crashes (SIGKILL, then restart) and pauses
    (SIGSTOP, then SIGCONT), one at a time; each start and stop goes into the history.

    Run it beside 'minichain testnet workload' (or use 'workload --nemesis'). Whatever
    happens, the network is left whole at the end.

    \b
    Example:
      minichain testnet nemesis --faults partition,kill,pause --interval 5 --duration 120
    """
    from minichain.testnet import nemesis as nem
    from minichain.testnet import network as tn

    state = tn.require_running(os.path.abspath(directory))
    schedule = nem.plan(len(state.nodes), nem.parse_faults(faults), interval=interval, duration=duration, seed=seed)
    click.echo(f"nemesis: {len(schedule)} fault(s) over {duration:g}s (seed {seed})")
    with _signals_interrupt():
        played = nem.run(state.directory, schedule, history=state.history,
                         say=lambda text: click.echo(text))
    click.echo(f"played {len(played)} fault(s); the network is whole again")


@testnet.command("check")
@dir_option
@click.option("--settle", type=click.FloatRange(0), default=10.0, show_default=True,
              help="Seconds to wait for the live honest replicas to reach one commit index first.")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@handle_testnet_errors
def testnet_check(directory, settle, as_json):
    """Judge the history (DIR/history.jsonl) against what the network committed, and
    exit 1 on a violation, with the shortest explanation of it.

    \b
    Replicas (their decision logs, honest ones only):
      agreement        no two replicas commit different values at one slot, none reverses one
      double-spend     no coin spent by two payments
      lost             every acknowledged payment is in the final logs; none reported rejected is
      real-time        the committed order respects the clients' real-time order
      linearizability  the clients' outcomes fit a ledger (Wing & Gong search, coin by coin)
    Nakamoto (every live node's chain):
      reversed         a payment accepted at k confirmations that is no longer in the chain

    \b
    Example:
      minichain testnet check
    """
    from minichain.history.records import HistoryError
    from minichain.testnet import network as tn
    from minichain.testnet.check import check

    state = tn.require_state(os.path.abspath(directory))
    try:
        report = check(state, settle=settle)
    except HistoryError as exc:
        raise CommandError(str(exc)) from None
    if as_json:
        _echo_json(report.to_json())
    else:
        st = report.stats
        click.echo(f"{st.get('engine')}: {st.get('operations', 0)} operation(s) ({st.get('ok', 0)} ok, "
                   f"{st.get('fail', 0)} failed, {st.get('info', 0)} unknown), {st.get('nemesis', 0)} nemesis event(s)")
        for note in report.notes:
            click.echo(f"note: {note}")
        if report.ok:
            click.echo("check passed: " + ("agreement, no double spend, durability, real-time order and "
                                           "linearizability hold" if state.replicas else
                                           "no accepted payment was reversed"))
        else:
            for line in report.summary():
                click.echo(f"VIOLATION {line}")
    if not report.ok:
        raise SystemExit(1)


# -- logs -------------------------------------------------------------------------------------


@testnet.command("logs")
@click.argument("node")
@dir_option
@click.option("-n", "--lines", default=40, show_default=True, type=click.IntRange(0), help="How many lines from the end.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@handle_testnet_errors
def testnet_logs(node, directory, lines, follow):
    """Print the log of NODE (its number or name).

    \b
    Examples:
      minichain testnet logs 2 -n 100
      minichain testnet logs node0 --follow
    """
    from minichain.testnet import network as tn

    state = tn.require_state(os.path.abspath(directory))
    rec = state.node(node)
    try:
        f = open(rec.log, "rb")
    except FileNotFoundError:
        raise CommandError(f"{rec.name} has no log yet ({rec.log})") from None
    with f:
        data = f.read()
        text = data.decode(errors="replace").splitlines(keepends=True)
        out = sys.stdout
        out.write("".join(text[-lines:] if lines else []))
        out.flush()
        if not follow:
            return
        try:
            while True:
                chunk = f.read()
                if chunk:
                    out.write(chunk.decode(errors="replace"))
                    out.flush()
                else:
                    time.sleep(0.2)
        except KeyboardInterrupt:
            return


# -- demo -------------------------------------------------------------------------------------


@testnet.group("demo")
def testnet_demo() -> None:
    """Scripted, narrated runs on a network of real node processes."""


@testnet_demo.command("double-spend")
@click.option("--network", type=click.Choice(["testnet", "regtest"]), default="testnet", show_default=True)
@click.option("--confirmations", "-z", type=click.IntRange(1, 50), default=3, show_default=True,
              help="Blocks the merchant waits for before shipping.")
@click.option("--attacker-blocks", type=click.IntRange(1, 60), default=None,
              help="Blocks the attacker's side mines during the partition (more than --confirmations: the "
                   "attack succeeds; fewer: it fails).  [default: confirmations + 2]")
@click.option("--amount", default="10", show_default=True, help="Coins the attacker pays the merchant.")
@click.option("--dir", "directory", default=None, type=click.Path(file_okay=False),
              help="Run in this (new or empty) directory instead of a temporary one.")
@click.option("--keep", is_flag=True, help="Leave the network running afterwards (see 'testnet status --dir').")
@click.option("--json", "as_json", is_flag=True, help="Print only the result, as JSON.")
@handle_testnet_errors
def testnet_demo_double_spend(network, confirmations, attacker_blocks, amount, directory, keep, as_json):
    """A double spend across a partition, step by step.

    Four nodes: merchant and honest-miner on one side, attacker and attacker-miner on
    the other. The network splits; the attacker pays the merchant on one side and pays
    itself with the same coin on the other; the merchant sees its payment confirmed;
    the partition heals and the branch with more work wins. Ends with a summary: which
    transaction survived, how many blocks were orphaned, how deep the reorg was.

    \b
    Examples:
      minichain testnet demo double-spend
      minichain testnet demo double-spend -z 6 --attacker-blocks 8
      minichain testnet demo double-spend --attacker-blocks 1     # the attack fails
    """
    from minichain.testnet import demo
    from minichain.wallet.amounts import AmountError, format_amount, parse_amount

    try:
        units = parse_amount(amount)
    except AmountError as exc:
        raise click.BadParameter(str(exc), param_hint="--amount") from None
    if units <= 0:
        raise click.BadParameter("the amount must be more than 0", param_hint="--amount")
    demo.check_plan(confirmations, attacker_blocks)
    out = console()

    class Say(demo.Narrator):
        def step(self, number: int, text: str) -> None:
            if not as_json:
                out.print(f"\n[bold]{number}.[/bold] {text}")

        def detail(self, text: str) -> None:
            if not as_json:
                out.print(f"   {text}", highlight=False)

    if not as_json:
        out.print(f"[bold]minichain double-spend demo[/bold] on {network}: merchant waits for {confirmations} "
                  f"confirmation(s), the attacker's side mines {attacker_blocks or confirmations + 2} block(s)")
    result = demo.double_spend(network=network, directory=directory, confirmations=confirmations,
                               attacker_blocks=attacker_blocks, amount=units, keep=keep, narrator=Say(),
                               observer=RichObserver(quiet=True))
    if as_json:
        _echo_json(result.to_json())
        return
    from rich.table import Table

    survived = {"payment": ("PAY", result.pay.txid, "the merchant's payment"),
                "self-payment": ("SELF", result.self_pay.txid, "the attacker paying itself")}
    table = Table(title="Summary", show_header=False)
    table.add_column("what")
    table.add_column("value")
    if result.survivor in survived:
        label, txid, who = survived[result.survivor]
        gone_label, gone_txid, gone_who = survived["self-payment" if result.survivor == "payment" else "payment"]
        table.add_row("survived", f"{label} {txid} ({who})")
        table.add_row("disappeared", f"{gone_label} {gone_txid} ({gone_who})")
    else:
        table.add_row("survived", "unclear: the nodes disagree (see above)")
    table.add_row("coin spent twice", result.coin)
    table.add_row("merchant saw", f"{result.merchant_confirmations} confirmation(s), balance "
                                  f"{format_amount(result.merchant_balance_before)} -> "
                                  f"{format_amount(result.merchant_balance_after)}")
    table.add_row("branches", f"merchant's +{result.merchant_branch['height'] - result.fork_height} blocks, "
                              f"attacker's +{result.attacker_branch['height'] - result.fork_height} blocks "
                              f"from height {result.fork_height}")
    table.add_row("winner", f"the {result.winner}'s branch (more work)")
    table.add_row("orphaned blocks", str(result.orphaned_blocks))
    table.add_row("reorg depth", f"{result.reorg_depth} block(s) disconnected on the "
                                 f"{'merchant' if result.winner == 'attacker' else 'attacker'}'s side")
    table.add_row("final tip", f"height {result.final_height} {result.final_tip[:16]}")
    table.add_row("history checker", "; ".join(result.check) if result.check else "no accepted payment was reversed")
    table.add_row("converged", f"{result.heal_seconds:.1f}s after the heal; the whole demo took {result.seconds:.1f}s")
    if keep:
        table.add_row("network", f"still running: minichain testnet status --dir {result.directory}")
    out.print()
    out.print(table)
    if result.survivor is None:
        raise CommandError("the nodes do not agree on which payment survived")
