"""The replica host's parts without processes: the message codec (every message the
engines really send round-trips), the authenticated frames, the state file, the
committed log, what status reads of each engine, and the testnet's replica options."""

from __future__ import annotations

import dataclasses
import importlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minichain.core.encoding import DecodeError
from minichain.node import messages as m
from minichain.replica import codec, durable
from minichain.replica.adapter import describe
from minichain.replica.keys import KeyFileError, pair_key, read_key_file, write_key_files
from minichain.replica.ledger import CommittedLog, payment_from_json
from minichain.replica.wire import LinkKeys, ReplicaFrame, ReplicaHello
from minichain.replica.wire import decode as decode_frame
from minichain.sim.engine import NodeContext
from minichain.sim.engines import load_registry
from minichain.sim.network import Network
from minichain.sim.simulator import Simulation
from minichain.sim.workload import ClientRequest, Payment, schedule_payments
from minichain.testnet.spec import SpecError, build_replicas

ENGINE_MODULES = ["pbft", "tendermint", "raft", "paxos", "dls"]
NOT_MESSAGES = {"PBFTConfig", "TendermintConfig", "Proposal"}   # configs; Paxos's in-flight record


# -- the codec -------------------------------------------------------------------------------------


def test_every_dataclass_an_engine_module_defines_for_its_messages_is_registered():
    missing = []
    for name in ENGINE_MODULES:
        module = importlib.import_module(f"minichain.sim.engines.{name}")
        for attr in vars(module).values():
            if (isinstance(attr, type) and dataclasses.is_dataclass(attr) and attr.__module__ == module.__name__
                    and attr.__name__ not in NOT_MESSAGES and attr not in codec.TAGS):
                missing.append(f"{name}.{attr.__name__}")
    assert not missing, f"engine message classes the codec does not know: {missing}"


def _messages_of_a_run(engine: str, behaviours: dict[int, str], seed: int) -> list:
    """Every message the engines handle in a run with a partition and a crash."""
    spec = load_registry()[engine]
    seen: list = []

    def build(ctx: NodeContext):
        b = behaviours.get(ctx.node_id)
        e = spec.build(ctx, b) if b is None or not spec.coalition else spec.build(ctx, b, coalition=frozenset(behaviours))
        inner = e.on_message

        def on_message(src, msg):
            seen.append(msg)
            return inner(src, msg)

        e.on_message = on_message
        return e

    sim = Simulation(4, build, seed=seed, network=Network(0.02))
    schedule_payments(sim, 30, 0.2, start=0.5)
    sim.at(2.0, sim.net.partition, [[0, 1], [2, 3]])
    sim.at(5.0, sim.net.heal)
    sim.at(6.0, sim.crash, 1)
    sim.at(8.0, sim.recover, 1)
    sim.run(until=14.0)
    return seen


@pytest.mark.parametrize("engine,behaviours", [
    ("pbft", {}), ("pbft", {0: "equivocate"}), ("tendermint", {}), ("tendermint", {0: "equivocate"}),
    ("raft", {}), ("raft", {0: "equivocate"}), ("paxos", {}), ("paxos", {0: "equivocate"}),
    ("dls", {}), ("dls-byz", {0: "equivocate"}),
])
def test_every_message_a_run_sends_round_trips_equal_and_with_the_same_hash(engine, behaviours):
    messages = _messages_of_a_run(engine, behaviours, seed=3)
    kinds = {type(msg).__name__ for msg in messages}
    assert len(kinds) >= 3, kinds
    for msg in messages:
        back = codec.decode(codec.encode(msg))
        assert back == msg and hash(back) == hash(msg) and type(back) is type(msg)


payments = st.builds(Payment, st.integers(-1, 10**6), st.integers(0, 10**9), st.text(min_size=1, max_size=12),
                     st.text(max_size=12))


@given(st.recursive(payments | st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4).map(tuple) | st.frozensets(payments, max_size=4),
                    max_leaves=20))
def test_values_round_trip(value):
    assert codec.decode(codec.encode(value)) == value


@settings(max_examples=200)
@given(st.binary(max_size=200))
def test_garbage_is_refused_with_a_decode_error_and_nothing_else(data):
    try:
        codec.decode(data)
    except DecodeError:
        pass


@pytest.mark.parametrize("text,match", [
    (b'{"t": "os.system", "f": ["ls"]}', "unknown message tag 'os.system'"),
    (b'{"t": "payment", "f": [1, 2]}', "payment has 4 fields, got 2"),
    (b'{"x": 1}', "unexpected dict"),
    (b'[' * 30 + b']' * 30, "nested deeper"),
    (b'{"t": "payment", "f": [1, 2, "c", "p"], "extra": 1}', "unexpected dict"),
    (b'123456789012345678901234567890', "does not fit in 64 bits"),
])
def test_bad_messages_say_what_is_wrong(text, match):
    with pytest.raises(codec.WireError, match=match):
        codec.decode(text)


def test_unregistered_objects_cannot_be_sent():
    class Secret:
        pass

    with pytest.raises(codec.WireError, match="Secret is not a registered message class"):
        codec.encode(Secret())
    with pytest.raises(codec.WireError, match="not finite"):
        codec.encode(float("nan"))


# -- links ------------------------------------------------------------------------------------------


def test_a_link_frame_opens_once_in_order_and_not_after_tampering():
    key = pair_key(b"m" * 32, 0, 1)
    a = LinkKeys(key, b"A" * 16, b"B" * 16, 0, 1)
    b = LinkKeys(key, b"B" * 16, b"A" * 16, 1, 0)
    f1, f2 = a.seal(b"one"), a.seal(b"two")
    frame = decode_frame(m.encode(f1))
    assert isinstance(frame, ReplicaFrame)
    assert b.open(f2) is None                      # out of order
    assert b.open(frame) == b"one"
    assert b.open(frame) is None                   # replayed
    assert b.open(ReplicaFrame(f2.seq, b"TWO", f2.mac)) is None   # tampered
    assert b.open(f2) == b"two"
    # The other direction uses its own context: a frame cannot be reflected back.
    assert a.open(ReplicaFrame(0, b"one", f1.mac)) is None


def test_replica_frames_and_node_messages_do_not_cross():
    with pytest.raises(DecodeError, match="unknown message type 1"):
        decode_frame(m.encode(m.Version(1, b"\0" * 32, 0, "x", 0, 0)))
    with pytest.raises(DecodeError, match="unknown message type 65"):
        m.decode(m.encode(ReplicaFrame(0, b"x", b"\0" * 16)))


def test_a_hello_checks_out_only_with_the_pair_key():
    master = b"k" * 32
    hello = ReplicaHello.make(pair_key(master, 2, 0), 2, 0, "pbft", 4, b"n" * 16)
    back = decode_frame(m.encode(hello))
    assert back.verify(pair_key(master, 0, 2))
    assert not back.verify(pair_key(master, 0, 1))
    forged = ReplicaHello(3, 0, "pbft", 4, b"n" * 16, back.mac)     # another sender, the same MAC
    assert not forged.verify(pair_key(master, 0, 3))


def test_each_key_file_holds_only_its_own_links(tmp_path):
    paths = [str(tmp_path / f"n{i}" / "keys.json") for i in range(4)]
    write_key_files(paths, master=b"s" * 32)
    k1 = read_key_file(paths[1], 1, 4)
    assert set(k1) == {0, 2, 3} and k1[2] == read_key_file(paths[2], 2, 4)[1] == pair_key(b"s" * 32, 1, 2)
    assert (tmp_path / "n1" / "keys.json").stat().st_mode & 0o077 == 0
    with pytest.raises(KeyFileError, match="holds the keys of replica 1 of 4, not of replica 2 of 4"):
        read_key_file(paths[1], 2, 4)
    with pytest.raises(KeyFileError, match="no key file"):
        read_key_file(str(tmp_path / "none.json"), 0, 4)


# -- the state file ---------------------------------------------------------------------------------


def test_the_engine_comes_back_from_disk_bound_to_the_new_context(tmp_path):
    spec = load_registry()["raft"]
    ctx = NodeContext(0, 3, random.Random(1), lambda: 0.0)
    engine = spec.build(ctx, None)
    engine.current_term, engine.voted_for = 7, 2
    engine.on_message(-1, ClientRequest(Payment(0, 0, "c0", "p0")))
    durable.save_state(str(tmp_path), engine, ctx, {"engine": "raft"})
    later = NodeContext(0, 3, random.Random(2), lambda: 99.0)
    back, meta = durable.load_state(str(tmp_path), later)
    assert meta == {"engine": "raft"} and back.ctx is later and back.ctx.now == 99.0
    assert (back.current_term, back.voted_for, list(back.pending)) == (7, 2, [Payment(0, 0, "c0", "p0")])
    assert back.on_recover()        # a restarted Raft arms its election timer
    (tmp_path / durable.STATE_FILE).write_bytes(b"garbage")
    with pytest.raises(durable.StateFileError, match="cannot be read back"):
        durable.load_state(str(tmp_path), later)
    assert durable.load_state(str(tmp_path / "empty"), later) is None


def test_a_decision_line_torn_by_a_crash_is_dropped_and_the_next_append_starts_clean(tmp_path):
    f = durable.DecisionFile(str(tmp_path))
    f.append([{"slot": 0, "value": None}])
    f.close()
    path = tmp_path / durable.DECISIONS_FILE
    path.write_bytes(path.read_bytes() + b'{"slot": 1, "val')
    assert [d["slot"] for d in durable.read_decisions(str(path))] == [0]
    f = durable.DecisionFile(str(tmp_path))
    f.append([{"slot": 1, "value": None}])
    f.close()
    assert [d["slot"] for d in durable.read_decisions(str(path))] == [0, 1]


# -- the committed log ------------------------------------------------------------------------------


def test_outcomes_wait_for_the_contiguous_prefix_and_the_lowest_slot_spends_a_coin():
    a, twin, b = Payment(0, 1, "c1", "alice"), Payment(1, 1, "c1", "mallory"), Payment(0, 2, "c2", "bob")
    log = CommittedLog()
    log.record(1, twin)                 # Paxos may decide slot 1 first
    assert log.outcome(twin) == ("pending", None, None) and log.outcome(a)[0] == "pending"
    log.record(0, a)
    assert log.outcome(a) == ("committed", 0, None)
    assert log.outcome(twin) == ("rejected", 0, a)
    log.record(2, b)
    assert log.prefix == 3 and log.outcome(b) == ("committed", 2, None)
    assert not log.record(2, b)         # the same decision again is nothing new


@pytest.mark.parametrize("data,match", [
    (None, "must be an object"), ({"client": 0, "seq": 0, "coin": "c"}, "needs 'payee'"),
    ({"client": "0", "seq": 0, "coin": "c", "payee": "p"}, "client must be an integer"),
    ({"client": 0, "seq": 0, "coin": "", "payee": "p"}, "1 to 100 characters"),
])
def test_bad_payments_from_clients_say_why(data, match):
    with pytest.raises(ValueError, match=match):
        payment_from_json(data)


# -- status -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("engine,words", [
    ("pbft", ("view 0", "primary")), ("tendermint", ("height 0 round 0", None)), ("raft", ("term 0", "follower")),
    ("paxos", ("ballot 0.-1", "follower")), ("dls", ("phase", None)), ("dls-byz", ("phase", None)),
])
def test_status_reads_each_engines_position_and_leader(engine, words):
    spec = load_registry()[engine]
    e = spec.build(NodeContext(0, 4, random.Random(0), lambda: 0.0), None)
    e.on_start()
    d = describe(e, 4)
    assert d["position"].startswith(words[0])
    if words[1]:
        assert d["role"] == words[1]
    silent = describe(spec.build(NodeContext(1, 4, random.Random(0), lambda: 0.0), "silent"), 4)
    assert silent["role"] == "silent"


# -- the testnet's options --------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,match", [
    ({"engine": "bitcoin"}, "unknown engine 'bitcoin'"),
    ({"engine": "raft", "byzantine": 1, "behaviour": "double-vote"}, "raft has no behaviour 'double-vote'"),
    ({"engine": "pbft", "behaviour": "silent"}, "--behaviour needs --byzantine K"),
    ({"engine": "pbft", "nodes": 4, "byzantine": 5}, "--byzantine must be 0..4"),
])
def test_bad_replica_networks_say_why(kwargs, match):
    engine = kwargs.pop("engine")
    with pytest.raises(SpecError, match=match):
        build_replicas(engine, **kwargs)


def test_byzantine_replicas_are_the_lowest_numbers_and_default_to_equivocating():
    spec = build_replicas("pbft", nodes=7, byzantine=2, seed=1)
    assert spec.byzantine == {0: "equivocate", 1: "equivocate"} and spec.topology == "full" and len(spec.links) == 21


def test_the_command_line_refuses_mining_options_for_an_engine(tmp_path):
    from click.testing import CliRunner

    from minichain.cli import main

    r = CliRunner().invoke(main, ["testnet", "up", "--engine", "pbft", "--miners", "2", "--dir", str(tmp_path)])
    assert r.exit_code == 1 and "--miners apply to the Nakamoto testnet only, not to --engine pbft" in r.output
    r = CliRunner().invoke(main, ["testnet", "up", "--byzantine", "1", "--dir", str(tmp_path)])
    assert r.exit_code == 1 and "--byzantine and --behaviour apply to the consensus engines" in r.output
    r = CliRunner().invoke(main, ["testnet", "check", "--dir", str(tmp_path)])
    assert r.exit_code == 1 and "no testnet in" in r.output and "Traceback" not in r.output
