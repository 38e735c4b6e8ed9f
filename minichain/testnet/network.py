"""The supervisor: start a network of node processes, look at it, split it, stop it.

``up`` works in phases, and any failure tears down what it started (so a port already
taken, or a node that cannot open its data directory, leaves no stray process):

    1. start      every node process at once, each on 127.0.0.1 with its own data
                  directory (DIR/NAME), peer discovery off; wait for each one's "ready"
                  line. Miners get a key file (DIR/NAME/wallet.json) first.
    2. link       for every link (i, j) of the topology node i dials node j (peers/add)
                  and keeps that link up; wait until every node has its links
    3. mine       start each miner with its share of the hash power (mining/start)
    4. sync       wait until every node has the same tip (on testnet, above genesis)

A network of consensus replicas (``--engine``) comes up in its own phases: link keys
(one file per replica), start (``python -m minichain.replica``), link (each replica is
told every address; the higher number dials), then start the engines once every link
is up.

A partition is each node refusing (and dropping) the peers outside its group
(``POST /api/control/partition {"deny": [...]}``: listen addresses for nodes, numbers
for replicas); healing clears the lists and the nodes' own reconnect loops restore the
links. ``kill`` is a SIGKILL; ``restart`` starts the process again on its ports and data
directory and puts it back in place (links, partition, miner; a replica's engine runs
``on_recover``). ``pause`` is SIGSTOP/SIGCONT, for the nemesis.

Simplification, said plainly: on regtest a block takes a couple of hashes, so a miner
hashing continuously would fill the disk; regtest miners get their wallets but mine
only when asked (``minichain mine N --node ...`` or the generate endpoint).
"""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from minichain.testnet import process
from minichain.testnet.observer import Observer
from minichain.testnet.spec import NetworkSpec
from minichain.testnet.state import NodeRecord, StateError, TestnetState, load, locked, save
from minichain.testnet.topology import components, deny_lists, neighbours
from minichain.wallet.client import NodeClient, NodeError, read_cookie

READY_TIMEOUT = 30.0
LINK_TIMEOUT = 30.0
SYNC_TIMEOUT = 180.0
POLL = 0.1


class TestnetError(Exception):
    """A testnet command cannot be carried out; ``str()`` says why and what to do."""

    __test__ = False


class AlreadyRunning(TestnetError):
    pass


class NotRunning(TestnetError):
    pass


def client_for(rec: NodeRecord, timeout: float = 10.0) -> NodeClient:
    return NodeClient(rec.url, token=read_cookie(rec.datadir), timeout=timeout,
                      token_hint=os.path.join(rec.datadir, ".cookie"))


def live_nodes(state: TestnetState) -> list[NodeRecord]:
    return [r for r in state.nodes if process.alive(r.pid, r.datadir)]


def require_state(directory: str) -> TestnetState:
    state = load(directory)
    if state is None:
        raise NotRunning(f"no testnet in {directory}: start one with 'minichain testnet up'"
                         + (f" --dir {directory}" if os.path.basename(directory) != "testnet-data" else ""))
    return state


def require_running(directory: str) -> TestnetState:
    state = require_state(directory)
    if not state.running or not live_nodes(state):
        raise NotRunning(f"the testnet in {directory} is not running: start it with 'minichain testnet up'")
    return state


# -- up ---------------------------------------------------------------------------------------


def up(directory: str, spec: NetworkSpec, observer: Observer | None = None, *,
       ready_timeout: float = READY_TIMEOUT, sync_timeout: float = SYNC_TIMEOUT,
       log_level: str = "info") -> TestnetState:
    obs = observer or Observer()
    directory = os.path.abspath(directory)
    try:
        with locked(directory):
            return _up(directory, spec, obs, ready_timeout, sync_timeout, log_level)
    except StateError as exc:
        raise TestnetError(str(exc)) from None


def check_not_running(directory: str) -> None:
    """AlreadyRunning if a node of the testnet in ``directory`` is alive."""
    directory = os.path.abspath(directory)
    try:
        old = load(directory)
    except StateError as exc:
        raise TestnetError(str(exc)) from None
    if old is None:
        return
    live = live_nodes(old)
    if live:
        names = ", ".join(f"{r.name} (pid {r.pid})" for r in live)
        raise AlreadyRunning(
            f"a testnet is already running in {directory}: {len(live)} of {len(old.nodes)} nodes are up "
            f"({names}). 'minichain testnet status' shows it; 'minichain testnet down' stops it.")


def _up(directory: str, spec: NetworkSpec, obs: Observer, ready_timeout: float, sync_timeout: float,
        log_level: str) -> TestnetState:
    check_not_running(directory)
    old = load(directory)
    if old is not None:
        if old.engine != spec.engine:
            raise TestnetError(f"{directory} holds a {old.engine} testnet, and you asked for {spec.engine}: "
                               "use another --dir, or delete that directory")
        if old.network != spec.network:
            raise TestnetError(f"{directory} holds a {old.network} testnet, and you asked for {spec.network}: "
                               "use another --dir, or delete that directory")
        if spec.engine != "nakamoto" and len(old.nodes) != spec.size:
            raise TestnetError(f"{directory} holds {len(old.nodes)} {spec.engine} replicas, and you asked for "
                               f"{spec.size}: use another --dir, or delete that directory")
    for name in spec.names:
        path = os.path.join(directory, name)
        if os.path.exists(path) and not os.path.isdir(path):
            raise TestnetError(f"{path} is in the way: it should be node {name}'s data directory, "
                               "but it is not a directory")

    records = _plan_records(directory, spec)
    state = TestnetState(directory=directory, network=spec.network, topology=spec.topology,
                         links=list(spec.links), nodes=records, seed=spec.seed, running=True, engine=spec.engine)
    if old is not None and spec.engine != "nakamoto":
        state.started = old.started          # the replicas' clocks continue the old time line
    started: list[tuple[Any, NodeRecord]] = []
    try:
        if spec.engine != "nakamoto":
            _up_replicas(state, spec, obs, ready_timeout, log_level, started)
        else:
            _up_nodes(state, spec, obs, ready_timeout, sync_timeout, log_level, started)
    except BaseException as exc:
        obs.finish()
        pids = [(r.pid, r.datadir) for _, r in started]
        stopped, killed = process.stop_all(pids, timeout=10.0)
        count = len(stopped) + len(killed)
        for proc, _ in started:  # our children: collect them so none is left a zombie
            try:
                proc.wait(5)
            except Exception:  # noqa: BLE001 - best effort
                pass
        if started:
            state.running = False
            save(state)
        reason = str(exc) if isinstance(exc, (TestnetError, NodeError, process.StartError)) else (
            "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}")
        if isinstance(exc, KeyboardInterrupt):
            raise TestnetError(f"interrupted; stopped the {count} node(s) that were running") from None
        raise TestnetError(f"{reason}\nthe testnet did not come up; stopped the {count} node(s) that were "
                           f"running (the logs are in {directory})") from None
    obs.finish()
    return state


def _up_nodes(state: TestnetState, spec: NetworkSpec, obs: Observer, ready_timeout: float, sync_timeout: float,
              log_level: str, started: list[tuple[Any, NodeRecord]]) -> None:
    records = state.nodes
    obs.phase(f"creating wallets for {len(spec.miners)} miner(s)", len(spec.miners))
    _make_wallets(spec, records)
    obs.phase(f"starting {spec.size} node(s)", spec.size)
    # Saved as soon as the processes exist (pids, no ports yet), and again once they
    # are ready: from here on 'down' can find them, even if this command is killed.
    _start_processes(records, lambda rec: _node_args(state, rec, log_level, spec.base_port, spec.extra_args),
                     "node", obs, ready_timeout, started, on_spawned=lambda: save(state))
    save(state)
    clients = [client_for(r) for r in records]
    obs.phase(f"linking them ({spec.topology}: {len(spec.links)} links)", len(spec.links))
    _link(spec, records, clients, obs)
    if spec.miners and spec.network == "testnet":
        obs.phase(f"starting {len(spec.miners)} miner(s)", len(spec.miners))
        for k, plan in enumerate(spec.miners):
            rec = records[plan.node]
            clients[plan.node].control("mining/start", {"address": rec.address, "threads": plan.threads,
                                                        "duty": plan.duty})
            obs.progress(k + 1, rec.name)
    min_height = 1 if spec.miners and spec.network == "testnet" else 0
    obs.phase("waiting for every node to reach the same tip", None)
    wait_synced(records, clients, timeout=sync_timeout, min_height=min_height, obs=obs)


def _up_replicas(state: TestnetState, spec: NetworkSpec, obs: Observer, ready_timeout: float, log_level: str,
                 started: list[tuple[Any, NodeRecord]]) -> None:
    """Keys, processes, links, then the engines: each replica's on_start runs once every
    link is up, so no engine's first messages are lost to a link still being dialled."""
    from minichain.replica.keys import write_key_files

    records = state.nodes
    write_key_files([r.keys for r in records])
    byz = f", {len(spec.byzantine)} Byzantine" if spec.byzantine else ""
    obs.phase(f"starting {spec.size} {spec.engine} replica(s){byz}", spec.size)
    _start_processes(records, lambda rec: _replica_args(state, rec, log_level, spec.base_port), "replica", obs,
                     ready_timeout, started, on_spawned=lambda: save(state))
    save(state)
    clients = [client_for(r) for r in records]
    obs.phase(f"linking every pair ({len(spec.links)} links)", len(spec.links))
    _link_replicas(state, clients)
    wait_links(records, clients, neighbours(state.links, len(records)), LINK_TIMEOUT)
    obs.phase("starting the engines", spec.size)
    for k, (rec, c) in enumerate(zip(records, clients)):
        c.control("start")
        obs.progress(k + 1, rec.name)


def _replica_args(state: TestnetState, rec: NodeRecord, log_level: str, base_port: int = 0) -> list[str]:
    p2p, api = _ports(rec, base_port)
    byzantine = [r.index for r in state.nodes if not r.honest]
    args = ["--engine", state.engine, "--id", str(rec.index), "--n", str(len(state.nodes)), "--datadir", rec.datadir,
            "--keys", str(rec.keys), "--listen", f"127.0.0.1:{p2p}", "--api", f"127.0.0.1:{api}",
            "--seed", str(state.seed), "--epoch", repr(replica_epoch(state)), "--log-level", log_level]
    if rec.behaviour is not None:
        args += ["--behaviour", rec.behaviour, "--coalition", ",".join(map(str, byzantine))]
    return args


def replica_epoch(state: TestnetState) -> float:
    """The testnet's start on this machine's monotonic clock: the replicas' time 0.

    Linux's monotonic clock is one clock for every process, so all replicas -- and one
    restarted later -- share the time line (DLS's rounds are cut from it). It is derived
    from the start's wall-clock time, which the state file keeps across ``down``/``up``."""
    return time.monotonic() - (time.time() - state.started)


def _node_args(state: TestnetState, rec: NodeRecord, log_level: str, base_port: int = 0,
               extra: list[str] | tuple = ()) -> list[str]:
    p2p, api = _ports(rec, base_port)
    return ["--network", state.network, "--datadir", rec.datadir, "--listen", f"127.0.0.1:{p2p}",
            "--api", f"127.0.0.1:{api}", "--no-discover", "--log-level", log_level, *extra]


def _ports(rec: NodeRecord, base_port: int = 0) -> tuple[int, int]:
    """Where a process listens: P+2i and P+2i+1 with a base port, its old ports on a
    restart, free ones (0) otherwise."""
    if base_port:
        return base_port + 2 * rec.index, base_port + 2 * rec.index + 1
    return rec.p2p_port, rec.api_port


def _link_replicas(state: TestnetState, clients: list[NodeClient]) -> None:
    peers = {str(r.index): r.p2p for r in state.nodes}
    for c in clients:
        c.control("peers", {"peers": peers})


def _plan_records(directory: str, spec: NetworkSpec) -> list[NodeRecord]:
    records = []
    for i, name in enumerate(spec.names):
        datadir = os.path.join(directory, name)
        if spec.engine != "nakamoto":
            records.append(NodeRecord(index=i, name=name, datadir=datadir, log=os.path.join(datadir, "replica.log"),
                                      behaviour=spec.byzantine.get(i), keys=os.path.join(datadir, "keys.json")))
            continue
        rec = NodeRecord(index=i, name=name, datadir=datadir, log=os.path.join(datadir, "node.log"))
        plan = spec.miner(i)
        if plan is not None:
            rec.share, rec.threads, rec.duty = plan.share, plan.threads, plan.duty
            rec.wallet = os.path.join(datadir, "wallet.json")
        records.append(rec)
    return records


def _make_wallets(spec: NetworkSpec, records: list[NodeRecord]) -> None:
    """A key file for each miner (kept if one is there from an earlier run on this
    directory: it may hold coins); the blocks pay its first receiving address."""
    from minichain.wallet.keyfile import KeyFile, WalletFileError

    for rec in records:
        if rec.wallet is None:
            continue
        try:
            if os.path.exists(rec.wallet):
                kf = KeyFile.load(rec.wallet)
                if kf.network != spec.network:
                    raise TestnetError(f"{rec.wallet} is a {kf.network} wallet, not {spec.network}")
                rec.address = kf.address("receive", 0) if kf.counts["receive"] else kf.next_address("receive")
            else:
                kf, _ = KeyFile.create(rec.wallet, spec.network)
                rec.address = kf.next_address("receive")
        except WalletFileError as exc:
            raise TestnetError(f"miner {rec.name}'s wallet: {exc}") from None


def _start_processes(records: list[NodeRecord], args_for: Callable[[NodeRecord], list[str]], program: str,
                     obs: Observer, timeout: float, started: list[tuple[Any, NodeRecord]],
                     on_spawned: Callable[[], None] = lambda: None) -> None:
    """Start a process for every record and wait for each to be ready; ``started``
    collects them as they are spawned, so the caller can stop them if this fails half-way."""
    pending = []
    for rec in records:
        proc, offset = process.spawn(args_for(rec), rec.log, program)
        rec.pid = proc.pid
        started.append((proc, rec))
        pending.append((proc, rec, offset))
    on_spawned()
    deadline = time.monotonic() + timeout
    done = 0
    while pending:
        still = []
        for proc, rec, offset in pending:
            ready = process.read_ready(rec.log, offset)
            if ready is not None:
                rec.p2p_port, rec.api_port = ready.p2p_port, ready.api_port
                done += 1
                obs.progress(done, f"{rec.name} on {rec.p2p}")
                continue
            code = proc.poll()
            if code is not None:
                raise process.StartError(
                    f"{program} {rec.name} did not start: {process.failure_reason(rec.log, offset)} "
                    f"(exit {code}; log {rec.log})")
            still.append((proc, rec, offset))
        pending = still
        if pending and time.monotonic() > deadline:
            rec = pending[0][1]
            raise process.StartError(f"{program} {rec.name} was not ready within {timeout:g}s; the end of its log "
                                     f"({rec.log}):\n{process.log_tail(rec.log, 8, pending[0][2])}")
        if pending:
            time.sleep(0.05)


def _link(spec: NetworkSpec, records: list[NodeRecord], clients: list[NodeClient], obs: Observer) -> None:
    for k, (a, b) in enumerate(spec.links):
        clients[a].control("peers/add", {"address": records[b].p2p})
        obs.progress(k + 1, f"{records[a].name} -> {records[b].name}")
    wait_links(records, clients, neighbours(spec.links, len(records)), LINK_TIMEOUT)


def wait_links(records: list[NodeRecord], clients: list[NodeClient], adjacency: list[set[int]],
               timeout: float) -> float:
    """Wait until every node has at least as many ready peers as it has links; returns the time taken."""
    began = time.monotonic()
    deadline = began + timeout
    while True:
        counts = poll_all(clients, lambda c: c.status()["peers"])
        short = [(r, c, len(adj)) for r, c, adj in zip(records, counts, adjacency)
                 if not isinstance(c, int) or c < len(adj)]
        if not short:
            return time.monotonic() - began
        if time.monotonic() > deadline:
            detail = "; ".join(f"{r.name} has {c if isinstance(c, int) else 'no answer'} of {want}"
                               for r, c, want in short)
            raise TestnetError(f"the links did not come up within {timeout:g}s: {detail}")
        time.sleep(POLL)


def poll_all(clients: list[NodeClient], fn: Callable[[NodeClient], Any]) -> list[Any]:
    """``fn(client)`` for every node at once; an exception stands in for a failed answer."""
    def call(c: NodeClient) -> Any:
        try:
            return fn(c)
        except NodeError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=min(16, max(1, len(clients)))) as pool:
        return list(pool.map(call, clients))


def wait_synced(records: list[NodeRecord], clients: list[NodeClient], *, timeout: float, min_height: int = 0,
                obs: Observer | None = None) -> tuple[str, int, float]:
    """Wait until every node reports the same tip, at ``min_height`` or above. Returns
    (tip, height, seconds waited); TestnetError listing every node's tip on timeout."""
    began = time.monotonic()
    deadline = began + timeout
    statuses: list[Any] = []
    while True:
        statuses = poll_all(clients, lambda c: c.status())
        good = [s for s in statuses if isinstance(s, dict)]
        if obs is not None:
            heights = " ".join(f"{r.name}:{s['height'] if isinstance(s, dict) else '?'}"
                               for r, s in zip(records, statuses))
            obs.progress(0, heights)
        if len(good) == len(statuses) and len({s["tip"] for s in good}) == 1 and good[0]["height"] >= min_height:
            return good[0]["tip"], good[0]["height"], time.monotonic() - began
        if time.monotonic() > deadline:
            raise TestnetError(f"the nodes did not reach one tip within {timeout:g}s:\n" + describe_tips(records, statuses))
        time.sleep(POLL)


def wait_committed(records: list[NodeRecord], *, timeout: float) -> int:
    """Wait until the replicas of ``records`` report one commit index and hold it for a
    moment (no decision in flight); returns it. TestnetError listing each on timeout."""
    clients = [client_for(r, timeout=5.0) for r in records]
    deadline = time.monotonic() + timeout
    last: tuple | None = None
    while True:
        statuses = poll_all(clients, lambda c: c.status())
        indexes = tuple(s["commit_index"] if isinstance(s, dict) else None for s in statuses)
        if None not in indexes and len(set(indexes)) == 1 and indexes == last:
            return indexes[0]
        last = indexes
        if time.monotonic() > deadline:
            detail = ", ".join(f"{r.name} {i if i is not None else 'no answer'}" for r, i in zip(records, indexes))
            raise TestnetError(f"the replicas did not reach one commit index within {timeout:g}s: {detail}")
        time.sleep(0.3)


def describe_tips(records: list[NodeRecord], statuses: list[Any]) -> str:
    lines = []
    for r, s in zip(records, statuses):
        if isinstance(s, dict):
            lines.append(f"  {r.name}: height {s['height']} tip {s['tip'][:16]} peers {s['peers']}")
        else:
            lines.append(f"  {r.name}: no answer ({s})")
    return "\n".join(lines)


# -- down -------------------------------------------------------------------------------------


@dataclass
class DownReport:
    stopped: list[NodeRecord] = field(default_factory=list)   # exited on SIGTERM
    killed: list[NodeRecord] = field(default_factory=list)    # needed SIGKILL
    dead: list[NodeRecord] = field(default_factory=list)      # were not running any more
    seconds: float = 0.0
    was_running: bool = True


def down(directory: str, observer: Observer | None = None, *, purge: bool = False) -> DownReport:
    obs = observer or Observer()
    directory = os.path.abspath(directory)
    try:
        with locked(directory):
            state = require_state(directory)
            report = DownReport(was_running=state.running)
            began = time.monotonic()
            live = live_nodes(state)
            report.dead = [r for r in state.nodes if r not in live] if state.running else []
            obs.phase(f"stopping {len(live)} node(s)", len(live))
            _, killed = process.stop_all([(r.pid, r.datadir) for r in live])
            report.killed = [r for r in live if r.pid in killed]
            report.stopped = [r for r in live if r.pid not in killed]
            report.seconds = time.monotonic() - began
            state.running = False
            state.partition = None
            save(state)
    except StateError as exc:
        raise TestnetError(str(exc)) from None
    obs.finish()
    if purge:
        _purge(state)
    return report


def _purge(state: TestnetState) -> None:
    """Delete what ``up`` created in the directory: the nodes' directories, the state
    and lock files, the client history (and the workload's merchant wallet); the
    directory itself if that leaves it empty."""
    for rec in state.nodes:
        if os.path.isdir(rec.datadir):
            shutil.rmtree(rec.datadir, ignore_errors=True)
    for name in ("testnet.json", ".lock", "history.jsonl", "merchant.json"):
        try:
            os.unlink(os.path.join(state.directory, name))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(state.directory)
    except OSError:
        pass


# -- status -----------------------------------------------------------------------------------


@dataclass
class NodeView:
    record: NodeRecord
    alive: bool
    status: dict | None = None
    error: str | None = None


def survey(state: TestnetState) -> list[NodeView]:
    """Every node's process state and /api/status, asked in parallel."""
    alive = [process.alive(r.pid, r.datadir) for r in state.nodes]
    answers = poll_all([client_for(r, timeout=5.0) for r in state.nodes], lambda c: c.status())
    views = []
    for rec, ok, ans in zip(state.nodes, alive, answers):
        if not ok:
            views.append(NodeView(rec, False, error="not running"))
        elif isinstance(ans, dict):
            views.append(NodeView(rec, True, ans))
        else:
            views.append(NodeView(rec, True, error=str(ans)))
    return views


def tip_groups(views: list[NodeView]) -> dict[str, list[NodeView]]:
    groups: dict[str, list[NodeView]] = {}
    for v in views:
        if v.status is not None:
            groups.setdefault(v.status["tip"], []).append(v)
    return groups


# -- partition and heal -----------------------------------------------------------------------


def partition(directory: str, groups: list[list[int]], observer: Observer | None = None) -> list[str]:
    """Split the network into ``groups``; returns warnings (a dead node, a group whose
    nodes have no link among themselves)."""
    obs = observer or Observer()
    directory = os.path.abspath(directory)
    warnings = []
    try:
        with locked(directory):
            state = require_running(directory)
            n = len(state.nodes)
            deny = deny_lists(groups, n)
            for g in groups:
                parts = components(set(g), state.links)
                if len(parts) > 1:
                    names = " | ".join(",".join(state.nodes[v].name for v in sorted(p)) for p in parts)
                    warnings.append(f"group {','.join(map(str, g))} has no links joining {names}: "
                                    f"with the {state.topology} topology those nodes will not hear each other either")
            obs.phase(f"partitioning into {len(groups)} groups", n)
            for k, rec in enumerate(state.nodes):
                if not process.alive(rec.pid, rec.datadir):
                    warnings.append(f"{rec.name} is not running; it was left out")
                    continue
                denied = sorted(deny[k]) if state.replicas else [state.nodes[u].p2p for u in sorted(deny[k])]
                client_for(rec).control("partition", {"deny": denied})
                obs.progress(k + 1, rec.name)
            state.partition = groups
            save(state)
    except StateError as exc:
        raise TestnetError(str(exc)) from None
    except NodeError as exc:
        raise TestnetError(f"a node refused the partition: {exc}") from None
    obs.finish()
    return warnings


@dataclass
class HealReport:
    links_seconds: float | None = None
    sync_seconds: float | None = None
    tip: str | None = None
    height: int | None = None
    warnings: list[str] = field(default_factory=list)


def heal(directory: str, observer: Observer | None = None, *, wait_sync: bool = False,
         timeout: float = 60.0, wait: bool = True) -> HealReport:
    """Lift every node's deny list, wait for the topology's links to come back (unless
    not ``wait``) and, with ``wait_sync``, for every node to reach one tip (replicas: one
    commit index)."""
    obs = observer or Observer()
    directory = os.path.abspath(directory)
    report = HealReport()
    began = time.monotonic()
    try:
        with locked(directory):
            state = require_running(directory)
            live = live_nodes(state)
            obs.phase("lifting the partition", len(state.nodes))
            for k, rec in enumerate(state.nodes):
                if rec not in live:
                    report.warnings.append(f"{rec.name} is not running; it was left out")
                    continue
                client_for(rec).control("partition", {"deny": []})
                obs.progress(k + 1, rec.name)
            state.partition = None
            save(state)
        if not wait:
            return report
        adjacency = neighbours(state.links, len(state.nodes))
        alive_idx = {r.index for r in live}
        live_adj = [adjacency[r.index] & alive_idx for r in live]
        clients = [client_for(r) for r in live]
        obs.phase("waiting for the links to come back", None)
        wait_links(live, clients, live_adj, timeout)
        report.links_seconds = time.monotonic() - began
        if wait_sync and state.replicas:
            obs.phase("waiting for every honest replica to reach the same commit index", None)
            report.height = wait_committed([r for r in live if r.honest], timeout=timeout)
            report.sync_seconds = time.monotonic() - began
        elif wait_sync:
            obs.phase("waiting for every node to reach the same tip", None)
            report.tip, report.height, _ = wait_synced(live, clients, timeout=timeout, obs=obs)
            report.sync_seconds = time.monotonic() - began
    except StateError as exc:
        raise TestnetError(str(exc)) from None
    except NodeError as exc:
        raise TestnetError(f"a node refused: {exc}") from None
    finally:
        obs.finish()
    return report


# -- crash, restart, pause ------------------------------------------------------------------


def kill(directory: str, ident: str | int, *, timeout: float = 10.0) -> NodeRecord:
    """SIGKILL one node or replica (a crash: nothing is flushed, nothing said goodbye)."""
    import signal

    directory = os.path.abspath(directory)
    try:
        with locked(directory):
            state = require_running(directory)
            rec = state.node(ident)
            if not process.alive(rec.pid, rec.datadir):
                raise TestnetError(f"{rec.name} is not running ('minichain testnet restart {rec.index}' starts it)")
            process.signal_node(rec.pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
            while process.alive(rec.pid, rec.datadir):
                if time.monotonic() > deadline:
                    raise TestnetError(f"{rec.name} (pid {rec.pid}) survived SIGKILL for {timeout:g}s")
                time.sleep(0.02)
    except StateError as exc:
        raise TestnetError(str(exc)) from None
    return rec


def restart(directory: str, ident: str | int, observer: Observer | None = None, *,
            ready_timeout: float = READY_TIMEOUT, log_level: str = "info") -> NodeRecord:
    """Start a node or replica that is down again, on its old ports and data directory,
    and put it back in the network as it stands (its links, the partition, its miner).
    A replica loads its engine from disk and runs the engine's ``on_recover``."""
    obs = observer or Observer()
    directory = os.path.abspath(directory)
    try:
        with locked(directory):
            state = require_state(directory)
            if not state.running:
                raise NotRunning(f"the testnet in {directory} is stopped: start it with 'minichain testnet up'")
            rec = state.node(ident)
            if process.alive(rec.pid, rec.datadir):
                raise TestnetError(f"{rec.name} is running (pid {rec.pid}); 'minichain testnet kill {rec.index}' "
                                   "crashes it first")
            program = "replica" if state.replicas else "node"
            args = _replica_args(state, rec, log_level) if state.replicas else _node_args(state, rec, log_level)
            started: list[tuple[Any, NodeRecord]] = []
            try:
                obs.phase(f"restarting {rec.name}", 1)
                _start_processes([rec], lambda r: args, program, obs, ready_timeout, started)
            except process.StartError as exc:
                raise TestnetError(str(exc)) from None
            save(state)
            _rejoin(state, rec)
    except StateError as exc:
        raise TestnetError(str(exc)) from None
    except NodeError as exc:
        raise TestnetError(f"{ident} restarted but did not take its place in the network: {exc}") from None
    finally:
        obs.finish()
    return rec


def _rejoin(state: TestnetState, rec: NodeRecord) -> None:
    c = client_for(rec)
    deny: set[int] = set()
    if state.partition:
        deny = deny_lists(state.partition, len(state.nodes))[rec.index]
    if state.replicas:
        c.control("peers", {"peers": {str(r.index): r.p2p for r in state.nodes}})
        if deny:
            c.control("partition", {"deny": sorted(deny)})
        c.control("start")
        return
    if deny:
        c.control("partition", {"deny": [state.nodes[u].p2p for u in sorted(deny)]})
    for a, b in state.links:
        if a == rec.index:
            c.control("peers/add", {"address": state.nodes[b].p2p})
    if rec.miner and rec.address and state.network == "testnet":
        c.control("mining/start", {"address": rec.address, "threads": rec.threads, "duty": rec.duty})


def pause(rec: NodeRecord, resume: bool = False) -> bool:
    """SIGSTOP (or SIGCONT) a process: it keeps its sockets but runs nothing -- to its
    peers, a node that has gone silent without a crash. False if it is not running."""
    import signal

    if not process.alive(rec.pid, rec.datadir):
        return False
    return process.signal_node(rec.pid, signal.SIGCONT if resume else signal.SIGSTOP)
