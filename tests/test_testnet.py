"""The testnet supervisor's pure parts and its command line, without starting a node:
topologies, hash-power shares, partition groups, network descriptions, the state file,
process bookkeeping, and the plain errors of every command."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from minichain.cli import main
from minichain.testnet import process
from minichain.testnet.demo import DemoError, check_plan
from minichain.testnet.spec import SpecError, build, spread
from minichain.testnet.state import NodeRecord, StateError, TestnetState, load, locked, save
from minichain.testnet.topology import (TopologyError, check_links, components, deny_lists, links, neighbours,
                                        parse_groups, parse_shares, plan_miners)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- topologies -------------------------------------------------------------------------------


def test_line_ring_and_full_have_the_textbook_links():
    assert links("line", 4) == [(1, 0), (2, 1), (3, 2)]
    assert links("ring", 4) == [(1, 0), (2, 1), (3, 0), (3, 2)]
    assert links("full", 4) == [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]
    assert links("line", 1) == [] and links("ring", 2) == [(1, 0)]


@pytest.mark.parametrize("n", [2, 5, 8, 17])
@pytest.mark.parametrize("seed", [0, 1, 8, 12345])
def test_random_topology_is_connected_and_the_seed_fixes_it(n, seed):
    edges = links("random", n, seed=seed)
    assert edges == links("random", n, seed=seed)
    assert components(set(range(n)), edges) == [set(range(n))]
    assert all(a > b for a, b in edges)
    assert len(edges) >= n - 1
    assert len(edges) <= max(n - 1, round(3 * n / 2))


def test_random_topologies_differ_between_seeds():
    assert len({tuple(links("random", 8, seed=s)) for s in range(10)}) > 5


def test_every_link_has_one_dialler_and_counts_at_both_ends():
    adj = neighbours(links("line", 4), 4)
    assert [len(a) for a in adj] == [1, 2, 2, 1]


def test_explicit_links_are_checked():
    assert check_links([[0, 1], [2, 1], [1, 0]], 3) == [(1, 0), (2, 1)]
    with pytest.raises(TopologyError, match="names node 5"):
        check_links([[0, 5]], 4)
    with pytest.raises(TopologyError, match="itself"):
        check_links([[2, 2]], 4)
    with pytest.raises(TopologyError, match="pair"):
        check_links([[1, 2, 3]], 4)


def test_unknown_topology_is_refused():
    with pytest.raises(TopologyError, match="star"):
        links("star", 4)


# -- hash power -------------------------------------------------------------------------------


def test_shares_become_duty_cycles_with_the_largest_hashing_all_the_time():
    plans = plan_miners([0, 2], parse_shares("30,70"))
    assert [p.node for p in plans] == [0, 2]
    assert [round(p.share, 2) for p in plans] == [0.3, 0.7]
    assert plans[1].duty == 1.0 and plans[0].duty == pytest.approx(3 / 7, abs=1e-4)
    # The hash rates (duty x threads) keep the ratio of the shares.
    assert plans[0].duty / plans[1].duty == pytest.approx(30 / 70, rel=1e-3)


def test_equal_shares_by_default_and_percent_signs_are_fine():
    assert [p.duty for p in plan_miners([0, 1, 2], None)] == [1.0, 1.0, 1.0]
    assert parse_shares("30%, 70%") == [30.0, 70.0]


@pytest.mark.parametrize("text, match", [("30,,70", "empty"), ("a,b", "not a number"), ("-1,2", "positive"),
                                         ("0,1", "positive"), ("nan,1", "positive")])
def test_bad_shares_say_why(text, match):
    with pytest.raises(TopologyError, match=match):
        parse_shares(text)


def test_a_share_per_miner_and_none_too_small():
    with pytest.raises(TopologyError, match="one share per miner"):
        plan_miners([0, 1, 2], [1, 2])
    with pytest.raises(TopologyError, match="too small"):
        plan_miners([0, 1], [1, 1000])
    with pytest.raises(TopologyError, match="no miners"):
        plan_miners([], [1])


# -- partitions -------------------------------------------------------------------------------


def test_groups_parse_and_unnamed_nodes_form_one_more_group():
    assert parse_groups(["0,1", "2,3"], 4) == [[0, 1], [2, 3]]
    assert parse_groups(["0"], 4) == [[0], [1, 2, 3]]
    assert parse_groups(["node3,node1", "0"], 5) == [[1, 3], [0], [2, 4]]


@pytest.mark.parametrize("groups, match", [(["0,1", "1,2"], "two groups"), (["0,7"], "no node 7"),
                                           (["0,1,2,3"], "at least two groups"), (["x"], "not a node number"),
                                           ([","], "names no node")])
def test_bad_groups_say_why(groups, match):
    with pytest.raises(TopologyError, match=match):
        parse_groups(groups, 4)


def test_each_node_denies_exactly_the_nodes_outside_its_group():
    deny = deny_lists([[0, 1], [2, 3]], 4)
    assert deny == [{2, 3}, {2, 3}, {0, 1}, {0, 1}]
    assert deny_lists([[0], [1, 2]], 3) == [{1, 2}, {0}, {0}]


def test_components_show_a_group_the_line_leaves_disconnected():
    assert components({0, 2}, links("line", 4)) == [{0}, {2}]
    assert components({0, 1}, links("line", 4)) == [{0, 1}]


# -- network descriptions ---------------------------------------------------------------------


def test_defaults_are_four_testnet_nodes_in_a_line_all_mining():
    spec = build()
    assert spec.network == "testnet" and spec.names == ["node0", "node1", "node2", "node3"]
    assert spec.topology == "line" and spec.links == [(1, 0), (2, 1), (3, 2)]
    assert [p.node for p in spec.miners] == [0, 1, 2, 3] and spec.base_port == 0


def test_miners_are_spread_so_a_half_split_has_miners_on_both_sides():
    assert spread(2, 4) == [0, 2]
    assert spread(1, 4) == [0] and spread(0, 4) == [] and spread(4, 4) == [0, 1, 2, 3]
    assert len(spread(3, 8)) == 3
    spec = build(miners=2, shares="30,70")
    assert [(p.node, round(p.share, 1)) for p in spec.miners] == [(0, 0.3), (2, 0.7)]
    # Shares alone name the miners the same way.
    assert [p.node for p in build(shares="1,1").miners] == [0, 2]


@pytest.mark.parametrize("path", sorted(p for p in glob.glob(os.path.join(ROOT, "testnet", "*")) if os.path.isfile(p)))
def test_every_ready_made_description_loads(path):
    spec = build(config=path)
    assert spec.size >= 2 and spec.miners
    assert components(set(range(spec.size)), spec.links) == [set(range(spec.size))]


def test_line4_json_and_toml_describe_the_same_network():
    a, b = (build(config=os.path.join(ROOT, "testnet", f)) for f in ("line4.json", "line4.toml"))
    assert (a.names, a.links, a.miners, a.network) == (b.names, b.links, b.miners, b.network)


def test_random8_is_the_same_graph_every_time():
    path = os.path.join(ROOT, "testnet", "random8.json")
    assert build(config=path).links == build(config=path).links
    assert build(config=path).seed == 8


def test_command_line_options_win_over_the_file(tmp_path):
    path = tmp_path / "net.json"
    path.write_text(json.dumps({"network": "regtest", "nodes": 6, "topology": "ring", "miners": 3}))
    spec = build(config=str(path), nodes=5, topology="full", miners=1)
    assert (spec.network, spec.size, spec.topology, len(spec.miners)) == ("regtest", 5, "full", 1)


def test_named_nodes_with_shares(tmp_path):
    path = tmp_path / "net.toml"
    path.write_text('topology = "full"\n[[nodes]]\nname = "shop"\n[[nodes]]\nname = "eve"\nshare = 30\n'
                    '[[nodes]]\nname = "hon"\nshare = 70\n')
    spec = build(config=str(path))
    assert spec.names == ["shop", "eve", "hon"]
    assert [(p.node, round(p.share, 1)) for p in spec.miners] == [(1, 0.3), (2, 0.7)]


@pytest.mark.parametrize("content, match", [
    ('{"nodse": 4}', "unknown setting"),
    ('{"nodes": 0}', "1..64"),
    ('{"network": "main"}', "testnet, regtest"),
    ('{"topology": "star"}', "unknown topology"),
    ('{"links": [[0, 9]], "nodes": 3}', "names node 9"),
    ('[1, 2]', "object"),
    ('{"nodes": [{"name": "a"}, {"name": "a"}]}', "used twice"),
    ('{"nodes": [{"colour": "red"}]}', "keys among"),
    ('{"base_port": 80}', "privileged"),
    ('not json', "not valid JSON"),
])
def test_bad_descriptions_say_why(tmp_path, content, match):
    path = tmp_path / "net.json"
    path.write_text(content)
    with pytest.raises(SpecError, match=match):
        build(config=str(path))


def test_a_missing_description_file_is_named(tmp_path):
    with pytest.raises(SpecError, match="no network description at"):
        build(config=str(tmp_path / "nope.json"))


# -- the state file ---------------------------------------------------------------------------


def _state(tmp_path) -> TestnetState:
    nodes = [NodeRecord(index=i, name=f"node{i}", datadir=str(tmp_path / f"node{i}"),
                        log=str(tmp_path / f"node{i}" / "node.log"), pid=100 + i, p2p_port=9000 + i,
                        api_port=9100 + i) for i in range(3)]
    nodes[1].share, nodes[1].wallet, nodes[1].address = 1.0, str(tmp_path / "node1" / "wallet.json"), "mabc"
    return TestnetState(directory=str(tmp_path), network="regtest", topology="line", links=[(1, 0), (2, 1)],
                        nodes=nodes, seed=7, partition=[[0], [1, 2]])


def test_state_round_trips_and_finds_nodes_by_number_or_name(tmp_path):
    original = _state(tmp_path)
    save(original)
    state = load(str(tmp_path))
    assert state == original
    assert state.node("2").name == "node2" and state.node("node1").index == 1
    assert state.nodes[1].miner and not state.nodes[0].miner
    with pytest.raises(StateError, match="no node 'node7'.*0/node0"):
        state.node("node7")


def test_no_state_is_none_and_a_damaged_one_is_refused(tmp_path):
    assert load(str(tmp_path)) is None
    (tmp_path / "testnet.json").write_text("{half")
    with pytest.raises(StateError, match="not valid JSON"):
        load(str(tmp_path))
    (tmp_path / "testnet.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(StateError, match="not a minichain testnet state file"):
        load(str(tmp_path))
    (tmp_path / "testnet.json").write_text(json.dumps({"format": "minichain-testnet", "version": 1}))
    with pytest.raises(StateError, match="damaged"):
        load(str(tmp_path))


def test_one_command_at_a_time_changes_a_directory(tmp_path):
    with locked(str(tmp_path)):
        with pytest.raises(StateError, match="another 'minichain testnet' command"):
            with locked(str(tmp_path)):
                pass
    with locked(str(tmp_path)):  # released
        pass


# -- processes --------------------------------------------------------------------------------


def test_the_ready_line_is_read_from_the_log_after_the_offset(tmp_path):
    log = tmp_path / "node.log"
    old = "minichain node ready network=regtest p2p=127.0.0.1:1111 api=127.0.0.1:2222 height=0 pid=1\n"
    new = "x\nminichain node ready network=regtest p2p=127.0.0.1:3333 api=127.0.0.1:4444 height=12 pid=99\n"
    log.write_text(old)
    offset = len(old)
    assert process.read_ready(str(log), offset) is None
    log.write_text(old + new)
    ready = process.read_ready(str(log), offset)
    assert (ready.p2p_port, ready.api_port, ready.height, ready.pid) == (3333, 4444, 12, 99)


def test_the_failure_reason_is_the_nodes_error_line(tmp_path):
    log = tmp_path / "node.log"
    log.write_text("starting\nError: cannot start the node: [Errno 98] address already in use\n")
    assert process.failure_reason(str(log), 0) == "cannot start the node: [Errno 98] address already in use"


def test_alive_checks_the_data_directory_and_sees_through_zombies(tmp_path):
    assert process.alive(os.getpid())
    assert not process.alive(os.getpid(), str(tmp_path / "not-my-datadir"))
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while process.alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not process.alive(child.pid)  # exited: reaped or a zombie, either way not alive
    assert not process.alive(0) and not process.alive(-1)


def test_a_detached_child_runs_in_its_own_session(tmp_path):
    proc, offset = process.spawn(["--version"], str(tmp_path / "n" / "node.log"))
    try:
        # --version makes 'minichain node' fail fast: we only check the detachment.
        assert os.getsid(proc.pid) == proc.pid or proc.poll() is not None
    except ProcessLookupError:
        pass
    proc.wait(30)
    assert "minichain testnet: starting node" in (tmp_path / "n" / "node.log").read_text()


# -- the demo's plan --------------------------------------------------------------------------


def test_the_demo_refuses_a_tie_and_defaults_to_two_more_blocks():
    assert check_plan(3, None) == 5
    assert check_plan(3, 1) == 1
    with pytest.raises(DemoError, match="tie"):
        check_plan(3, 3)
    with pytest.raises(DemoError, match="at least 1"):
        check_plan(0, 2)


# -- the command line, no nodes ---------------------------------------------------------------


def run(*args, cwd=None):
    runner = CliRunner()
    old = os.getcwd()
    if cwd:
        os.chdir(cwd)
    try:
        result = runner.invoke(main, ["testnet", *map(str, args)], env={"MINICHAIN_TESTNET_DIR": None})
    finally:
        os.chdir(old)
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.mark.parametrize("command", [["status"], ["down"], ["heal"], ["partition", "0,1", "2,3"], ["logs", "0"]])
def test_commands_without_a_testnet_say_so(tmp_path, command):
    result = run(*command, "--dir", tmp_path / "none")
    assert result.exit_code == 1
    assert "no testnet in" in result.output or "not running" in result.output


def test_the_default_directory_is_testnet_data_in_the_current_folder(tmp_path):
    result = run("status", cwd=tmp_path)
    assert result.exit_code == 1 and os.path.join(str(tmp_path), "testnet-data") in result.output


@pytest.mark.parametrize("args, match", [
    (["--hashrate-share", "30,x"], "not a number"),
    (["--miners", "2", "--hashrate-share", "1,2,3"], "one share per miner"),
    (["--config", "/nonexistent/net.json"], "no network description"),
])
def test_up_refuses_a_bad_plan_before_starting_anything(tmp_path, args, match):
    result = run("up", "--dir", tmp_path / "net", *args)
    assert result.exit_code == 1 and match in result.output
    assert not (tmp_path / "net").exists()


def test_up_refuses_a_file_in_the_way_of_a_data_directory(tmp_path):
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "node1").write_text("not a directory")
    result = run("up", "--dir", tmp_path / "net", "--nodes", "2", "--network", "regtest")
    assert result.exit_code == 1 and "in the way" in result.output


def test_logs_of_a_stopped_testnet_and_of_an_unknown_node(tmp_path):
    state = _state(tmp_path)
    state.running = False
    save(state)
    os.makedirs(state.nodes[0].datadir)
    with open(state.nodes[0].log, "w") as f:
        f.write("".join(f"line {i}\n" for i in range(100)))
    result = run("logs", "node0", "-n", "3", "--dir", tmp_path)
    assert result.exit_code == 0 and result.output == "line 97\nline 98\nline 99\n"
    result = run("logs", "9", "--dir", tmp_path)
    assert result.exit_code == 1 and "no node '9'" in result.output
    result = run("logs", "1", "--dir", tmp_path)
    assert result.exit_code == 1 and "no log yet" in result.output


def test_status_and_down_of_a_stopped_testnet(tmp_path):
    state = _state(tmp_path)
    state.running = False
    save(state)
    assert "is stopped" in run("status", "--dir", tmp_path).output
    result = run("down", "--dir", tmp_path)
    assert result.exit_code == 0 and "was not running" in result.output
    data = json.loads(run("status", "--json", "--dir", tmp_path).output)
    assert data["running"] is False and [n["alive"] for n in data["nodes"]] == [False, False, False]


def test_partition_of_a_testnet_whose_nodes_all_died(tmp_path):
    save(_state(tmp_path))  # "running", but pids 100..102 are not our nodes
    result = run("partition", "0", "--dir", tmp_path)
    assert result.exit_code == 1 and "not running" in result.output


def test_the_demo_refuses_a_tie_on_the_command_line(tmp_path):
    result = run("demo", "double-spend", "-z", "2", "--attacker-blocks", "2")
    assert result.exit_code == 1 and "tie" in result.output
    result = run("demo", "double-spend", "--amount", "-3")
    assert result.exit_code == 2


def test_logs_follow_prints_new_lines_until_interrupted(tmp_path):
    import signal as sig

    state = _state(tmp_path)
    save(state)
    os.makedirs(state.nodes[2].datadir)
    log = state.nodes[2].log
    with open(log, "w") as f:
        f.write("old 1\nold 2\n")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "minichain", "testnet", "logs", "node2", "-n", "1", "--follow",
                             "--dir", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    try:
        assert proc.stdout.readline() == "old 2\n"
        with open(log, "a") as f:
            f.write("new 3\n")
        assert proc.stdout.readline() == "new 3\n"
        proc.send_signal(sig.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err


def test_nodes_run_the_minichain_the_supervisor_runs_not_a_checkout_in_the_cwd(tmp_path, monkeypatch):
    # After `pip install .` from a checkout, the checkout's sources (without the compiled
    # kernel) sit in the current directory; the spawned node must not pick them up.
    decoy = tmp_path / "cwd" / "minichain"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise SystemExit('imported the decoy package from the cwd')\n")
    monkeypatch.chdir(tmp_path / "cwd")
    log = tmp_path / "node.log"
    proc, offset = process.spawn(["--help"], str(log))
    assert proc.wait(60) == 0
    text = log.read_text()[offset:]
    assert "decoy" not in text and "Run a node" in text
