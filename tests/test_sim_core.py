"""The simulator core: virtual time, timers, actions, crashes, clocks, decisions, determinism,
and its event queue."""

import dis
import gc
import json
import sys
import types
import weakref

import pytest
from hypothesis import given, settings, strategies as st

from minichain.sim import (
    Broadcast, CancelTimer, Decide, Engine, EventQueue, Exponential, Network, Send, SetTimer, Simulation,
)
from minichain.sim import simulator as simulator_module
from minichain.sim.events import CALL, DELIVERY, TIMER, CompiledEventQueue, PyEventQueue
from minichain.sim.engines.flood import Flood


class Recorder(Engine):
    """Does what a test scripts for it and writes down what happens to it."""

    def __init__(self, ctx, script=None):
        super().__init__(ctx)
        self.script = script or {}
        self.seen = []          # (virtual-ish local time, what, detail)
        self.recovered = 0

    def on_start(self):
        return list(self.script.get(("start", self.id), []))

    def on_message(self, src, msg):
        self.seen.append((self.ctx.now, "msg", src, msg))
        return list(self.script.get(("msg", self.id, msg), []))

    def on_timer(self, name):
        self.seen.append((self.ctx.now, "timer", name))
        return list(self.script.get(("timer", self.id, name), []))

    def on_recover(self):
        self.recovered += 1
        return list(self.script.get(("recover", self.id), []))


def run(n, script, *, latency=0.1, seed=1, until=None, setup=None, **netargs):
    sim = Simulation(n, lambda ctx: Recorder(ctx, script), seed=seed, network=Network(latency, **netargs))
    if setup:
        setup(sim)
    sim.run(until=until)
    return sim


def test_virtual_clock_jumps_to_each_event_and_messages_take_the_link_latency():
    sim = run(2, {("start", 0): [Send(1, "hi")], ("msg", 1, "hi"): [Send(0, "back")]}, latency=0.25)
    assert sim.engines[1].seen == [(0.25, "msg", 0, "hi")]
    assert sim.engines[0].seen == [(0.5, "msg", 1, "back")]
    assert sim.now == 0.5
    assert sim.events == 2


def test_run_until_stops_the_clock_at_until_and_resumes_later():
    sim = run(2, {("start", 0): [SetTimer("t", 5.0)]}, until=2.0)
    assert sim.now == 2.0 and sim.engines[0].seen == []
    sim.run(until=10.0)
    assert sim.engines[0].seen == [(5.0, "timer", "t")]
    assert sim.now == 10.0


def test_setting_a_pending_timer_again_replaces_it():
    script = {("start", 0): [SetTimer("t", 1.0), SetTimer("t", 3.0)]}
    sim = run(1, script)
    assert sim.engines[0].seen == [(3.0, "timer", "t")]


def test_cancelled_timer_never_fires_and_other_names_are_independent():
    script = {("start", 0): [SetTimer("a", 1.0), SetTimer("b", 2.0), CancelTimer("a"), CancelTimer("zzz")]}
    sim = run(1, script)
    assert sim.engines[0].seen == [(2.0, "timer", "b")]


def test_events_at_the_same_instant_run_in_the_order_they_were_scheduled():
    script = {("start", 0): [SetTimer(name, 1.0) for name in "cab"]}
    sim = run(1, script)
    assert [s[2] for s in sim.engines[0].seen] == ["c", "a", "b"]


def test_broadcast_reaches_every_other_node_and_self_only_when_asked():
    sim = run(4, {("start", 2): [Broadcast("x")]})
    assert [len(e.seen) for e in sim.engines] == [1, 1, 0, 1]
    assert sim.net.sent == 3
    sim = run(4, {("start", 2): [Broadcast("x", include_self=True)]})
    assert [len(e.seen) for e in sim.engines] == [1, 1, 1, 1]
    # The copy to self is immediate, never on the wire, and not counted as network traffic.
    assert sim.engines[2].seen == [(0.0, "msg", 2, "x")]
    assert sim.net.sent == 3 and sim.net.self_delivered == 1


def test_decisions_are_recorded_with_their_virtual_time():
    script = {("start", 0): [SetTimer("t", 2.5)], ("timer", 0, "t"): [Decide(0, "v")]}
    sim = run(1, script)
    [d] = sim.decisions.records
    assert (d.time, d.node, d.slot, d.value) == (2.5, 0, 0, "v")
    assert sim.decisions.committed(0) == {0: "v"}


def test_deciding_again_the_same_value_is_not_a_reversal_but_a_different_one_is():
    script = {
        ("start", 0): [Decide(0, "a"), Decide(0, "a"), SetTimer("t", 1.0)],
        ("timer", 0, "t"): [Decide(0, "b")],
    }
    sim = run(1, script)
    r = sim.result()
    assert r.reversals == [{"time": 1.0, "node": 0, "slot": 0, "from": "a", "to": "b"}]
    assert r.conflicts == [{"slot": 0, "values": [["a", [0]], ["b", [0]]]}]


def test_conflicting_commits_are_judged_among_honest_nodes_only():
    class Liar(Recorder):
        honest = False

    script = {("start", 0): [Decide(7, "x")], ("start", 1): [Decide(7, "y")], ("start", 2): [Decide(7, "x")]}
    sim = Simulation(3, lambda ctx: (Liar if ctx.node_id == 1 else Recorder)(ctx, script), seed=0)
    sim.run()
    assert sim.honest == [0, 2]
    assert sim.result().conflicts == []
    sim = Simulation(3, lambda ctx: Recorder(ctx, script), seed=0)
    sim.run()
    assert sim.result().conflicts == [{"slot": 7, "values": [["x", [0, 2]], ["y", [1]]]}]


def test_a_crashed_node_loses_its_messages_and_timers_and_recovers_through_on_recover():
    script = {
        ("start", 0): [SetTimer("ping", 1.0)],
        ("timer", 0, "ping"): [Send(1, "ping"), SetTimer("ping", 1.0)],
        ("start", 1): [SetTimer("own", 1.5)],
        ("recover", 1): [SetTimer("back", 0.5)],
    }

    def setup(sim):
        sim.at(1.2, sim.crash, 1)
        sim.at(3.05, sim.recover, 1)

    sim = run(2, script, latency=0.1, until=4.5, setup=setup)
    node1 = sim.engines[1]
    got = [(round(t, 6), what) for t, what, *_ in node1.seen]
    # ping at 1.1 arrives; pings at 2.1 and 3.1 are sent at 2.0 (lost: crashed) and 3.0
    # (in flight at recovery, so it arrives); the pre-crash timer "own" never fires.
    assert got == [(1.1, "msg"), (3.1, "msg"), (3.55, "timer"), (4.1, "msg")]
    assert node1.recovered == 1
    assert sim.net.crashed == 1
    assert sim.result().faults == [[1.2, "crash", 1], [3.05, "recover", 1]]


def test_clock_skew_offsets_the_local_clock_and_drift_stretches_timers():
    script = {("start", 0): [SetTimer("t", 1.0)], ("start", 1): [SetTimer("t", 1.0)]}

    def setup(sim):
        sim.set_clock(0, offset=100.0)
        sim.set_clock(1, drift=1.0)    # runs twice as fast

    sim = run(2, script, setup=setup)
    assert sim.engines[0].seen == [(101.0, "timer", "t")]
    # Node 1 counts one local second after half a virtual second; its clock then reads 1.0.
    assert sim.engines[1].seen == [(1.0, "timer", "t")]
    assert sim.local_time(1) == 2 * sim.now


def test_an_engine_returning_a_non_action_is_a_clear_error():
    with pytest.raises(TypeError, match="not an action"):
        run(1, {("start", 0): ["oops"]})


def test_cannot_schedule_in_the_past():
    sim = run(1, {}, until=5.0)
    with pytest.raises(ValueError):
        sim.at(1.0, print)


def test_stop_when_and_max_events_end_a_run_early():
    script = {("start", 0): [SetTimer("t", 1.0)], ("timer", 0, "t"): [SetTimer("t", 1.0)]}
    sim = Simulation(1, lambda ctx: Recorder(ctx, script), seed=0)
    sim.run(max_events=5)
    assert sim.events == 5 and sim.now == 5.0
    sim.run(stop_when=lambda s: s.now >= 8.0)
    assert sim.now == 8.0


def test_node_rngs_are_independent_streams_from_the_one_seed():
    a = Simulation(3, lambda ctx: Recorder(ctx), seed=42)
    b = Simulation(3, lambda ctx: Recorder(ctx), seed=42)
    draws_a = [c.rng.random() for c in a.contexts]
    draws_b = [c.rng.random() for c in b.contexts]
    assert draws_a == draws_b
    assert len(set(draws_a)) == 3


def flood_run(seed, n=30, **netargs):
    net = Network(Exponential(0.2), **netargs)
    sim = Simulation(n, lambda ctx: Flood(ctx, proposers=frozenset({0, n - 1}), slots=8, interval=0.3), seed=seed, network=net)
    sim.at(0.5, net.partition, [range(n // 2)])
    sim.at(1.5, net.heal)
    sim.run()
    return sim.result().to_json()


def test_same_seed_same_json_byte_for_byte_and_different_seeds_differ():
    a = flood_run(7, loss=0.05, duplicate=0.05, fifo=False)
    assert a == flood_run(7, loss=0.05, duplicate=0.05, fifo=False)
    assert a != flood_run(8, loss=0.05, duplicate=0.05, fifo=False)
    data = json.loads(a)
    assert data["seed"] == 7


def test_n30_two_flooding_proposers_are_caught_deciding_conflicting_values():
    data = json.loads(flood_run(3))
    # Flooding is no consensus: both proposers' values reach different halves first.
    assert data["conflicts"], "two proposers racing should produce conflicting decisions"
    assert data["messages"]["partitioned"] > 0
    assert data["faults"] == [[0.5, "partition", [list(range(15))]], [1.5, "heal", None]]


def test_client_input_arrives_from_CLIENT_and_is_not_network_traffic():
    from minichain.sim import CLIENT

    sim = Simulation(2, lambda ctx: Recorder(ctx), seed=0)
    sim.inject(1, "pay", at=3.0)
    sim.run()
    assert sim.engines[1].seen == [(3.0, "msg", CLIENT, "pay")]
    assert sim.net.sent == 0 and sim.net.delivered == 0


# -- the event queue ----------------------------------------------------------------------

# Both implementations, when the compiled one was built (setup.py: minichain.sim._simcore).
QUEUES = [PyEventQueue] + ([CompiledEventQueue] if CompiledEventQueue is not None else [])


def push_kind(queue, kind, t, i):
    """Schedule event number ``i`` of the given kind; ``i`` rides in the payload."""
    if kind == DELIVERY:
        queue.push_delivery(t, 0, 1, i)
    elif kind == TIMER:
        queue.push_timer(t, 0, i)
    else:
        queue.push_call(t, print, (i,))


def payload(event):
    _, _, kind, _, a, b = event
    return b if kind == DELIVERY else a if kind == TIMER else b[0]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([DELIVERY, TIMER, CALL]), st.sampled_from([0.0, 0.5, 1.0, 2.5])),
                max_size=60))
def test_queue_pops_by_time_and_ties_in_scheduling_order_whatever_the_kind(pushes):
    for queue_class in QUEUES:
        check_queue_order(queue_class(), pushes)


def check_queue_order(queue, pushes):
    for i, (kind, t) in enumerate(pushes):
        push_kind(queue, kind, t, i)
    assert len(queue) == len(pushes)
    popped = []
    while len(queue):
        t = queue.peek_time()
        event = queue.pop()
        assert event[0] == t
        popped.append((event[0], event[2], payload(event)))
    # sorted() is stable: equal times keep their scheduling order (FIFO).
    assert popped == sorted(((t, kind, i) for i, (kind, t) in enumerate(pushes)), key=lambda e: e[0])
    assert queue.peek_time() is None
    with pytest.raises(IndexError):
        queue.pop()


@pytest.mark.parametrize("queue_class", QUEUES)
def test_timer_tokens_are_unique_and_identify_the_entry(queue_class):
    queue = queue_class()
    tokens = [queue.push_timer(5.0, 0, "t"), queue.push_timer(1.0, 0, "t")]
    assert tokens[0] != tokens[1]
    assert [queue.pop()[5] for _ in range(2)] == [tokens[1], tokens[0]]


@pytest.mark.parametrize("queue_class", QUEUES)
def test_the_network_view_of_the_queue_can_only_schedule_deliveries(queue_class):
    queue = queue_class()
    view = queue.deliveries
    # (The compiled view adds the network's relay loop, which schedules deliveries too.)
    assert {name for name in dir(view) if not name.startswith("_")} <= {"push", "push_many", "push_lognormal_fifo"}
    view.push(2.0, 3, 0, "x")
    queue.push_timer(2.0, 3, "t")
    view.push(2.0, 2, 0, "y")
    view.push_many([0.5, 2.0], [4, 5], 1, "z")
    got = [queue.pop() for _ in range(5)]
    assert [(e[0], e[2], e[3], e[4]) for e in got] == [
        (0.5, DELIVERY, 4, 1), (2.0, DELIVERY, 3, 0), (2.0, TIMER, 3, "t"), (2.0, DELIVERY, 2, 0),
        (2.0, DELIVERY, 5, 1),
    ]


def pinger_script():
    # Node 0 pings 1 every second; each node echoes; node 2 decides on its own timer.
    return {
        ("start", 0): [SetTimer("ping", 1.0)],
        ("timer", 0, "ping"): [Broadcast("ping"), SetTimer("ping", 1.0)],
        ("msg", 1, "ping"): [Send(0, "pong"), Send(2, "pong")],
        ("msg", 2, "pong"): [Decide(0, "pong")],
        ("start", 2): [SetTimer("late", 2.0)],
        ("timer", 2, "late"): [Broadcast("late", include_self=True)],
    }


def pinger(seed):
    sim = Simulation(3, lambda ctx: Recorder(ctx, pinger_script()), seed=seed, network=Network(Exponential(0.3)))
    sim.at(2.0, sim.crash, 1)
    sim.at(3.0, sim.recover, 1)
    return sim


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 1000), stops=st.lists(st.one_of(st.floats(0.0, 6.0), st.integers(0, 30)), max_size=6))
def test_a_run_cut_into_pieces_by_until_and_max_events_is_the_same_run(seed, stops):
    whole = pinger(seed)
    whole.run(until=6.0)
    pieces = pinger(seed)
    for stop in stops:
        if isinstance(stop, float):
            pieces.run(until=max(stop, pieces.now))
        else:
            pieces.run(until=6.0, max_events=stop)
    pieces.run(until=6.0)
    assert [e.seen for e in pieces.engines] == [e.seen for e in whole.engines]
    assert pieces.result().to_json() == whole.result().to_json()


def test_events_at_exactly_until_run_even_when_scheduled_during_the_run():
    script = {("start", 0): [SetTimer("a", 1.0)], ("timer", 0, "a"): [SetTimer("b", 0.0)],
              ("timer", 0, "b"): [SetTimer("c", 0.5)]}
    sim = run(1, script, until=1.0)
    assert sim.engines[0].seen == [(1.0, "timer", "a"), (1.0, "timer", "b")]
    assert sim.now == 1.0
    sim.run(until=2.0)
    assert sim.engines[0].seen[-1] == (1.5, "timer", "c")


def test_an_event_held_back_by_until_keeps_its_place_among_events_at_the_same_time():
    # At 0.5 the ping reaches node 1 and node 0's timer fires, in that order (the Send was
    # scheduled first); each then sends to node 2, whose inbox shows the order they ran in.
    script = {("start", 0): [Send(1, "ping"), SetTimer("echo", 0.5)],
              ("msg", 1, "ping"): [Send(2, "from1")],
              ("timer", 0, "echo"): [Send(2, "from0")]}
    whole = run(3, script, latency=0.5)
    assert [s[3] for s in whole.engines[2].seen] == ["from1", "from0"]
    pieces = Simulation(3, lambda ctx: Recorder(ctx, script), seed=1, network=Network(0.5))
    pieces.run(until=0.25)                      # stops before the ping arrives
    pieces.run()
    assert pieces.engines[2].seen == whole.engines[2].seen


@pytest.mark.skipif(sys.implementation.name != "cpython" or sys.version_info[:2] != (3, 11),
                    reason="how CPython 3.11's specialising interpreter warms a function up")
def test_the_run_loop_gets_specialised_within_one_run(monkeypatch):
    # The Python event loop (the compiled queue's loop is C) is called once for a whole
    # run, so only its loop's backward jumps can warm it up; a fresh copy of its code, run
    # once over a run with no stale timer, must end up specialised (a ``while heap:`` loop
    # never did, and ran 6-10% more instructions).
    monkeypatch.setattr(simulator_module, "EventQueue", PyEventQueue)
    run_ = Simulation._run_events
    fresh = types.FunctionType(run_.__code__.replace(), run_.__globals__, run_.__name__, run_.__defaults__)
    sim = Simulation(30, lambda ctx: Flood(ctx, slots=3, interval=0.5), seed=1, network=Network(0.01))
    sim.start()
    fresh(sim, None, None, None)
    assert sim.events > 1000 and sim.timers_fired == sim.events - sim.net.delivered
    plain = [i.opname for i in dis.get_instructions(fresh)]
    assert [i.opname for i in dis.get_instructions(fresh, adaptive=True)] != plain


# -- the two event loops: the compiled queue's C loop against the Python one --------------

def _partition_run():
    from minichain.sim.scenarios import partition
    return json.dumps(partition.run(3, n=12, warmup=1_800.0, duration=2 * 3_600.0, after=3_600.0), sort_keys=True)


def _replicated_runs():
    from minichain.sim.scenarios import replicated
    return [replicated.run(engine, scenario, n=5, seed=2, duration=12.0, fault_at=3.0, heal_at=7.0).to_json()
            for engine, scenario in (("pbft", "crash"), ("raft", "partition"), ("tendermint", "skew"),
                                     ("dls", "gst"), ("paxos", "loss"), ("pbft", "byzantine"))]


def _selfish_mining_run():
    from minichain.sim.scenarios import selfish_mining
    return json.dumps(selfish_mining.network_run(4, honest_miners=6, blocks=150), sort_keys=True)


def _stepped_run():
    # until, max_events and stop_when, each ending a run mid-way, then on to the end.
    script = pinger_script()
    sim = Simulation(3, lambda ctx: Recorder(ctx, script), seed=5, network=Network(Exponential(0.3, base=0.05)))
    marks = []
    sim.run(until=2.25)
    marks.append((sim.now, sim.events))
    sim.run(max_events=7)
    marks.append((sim.now, sim.events))
    sim.run(stop_when=lambda s: s.net.delivered >= 25)
    marks.append((sim.now, sim.events))
    sim.crash(1)
    sim.run(until=9.0)
    sim.recover(1)
    sim.run(until=12.5)
    marks.append((sim.now, sim.events, sim.timers_fired, sim.net.stats()))
    return json.dumps([marks, [e.seen for e in sim.engines], sim.result().to_dict()], sort_keys=True, default=repr)


@pytest.mark.skipif(CompiledEventQueue is None, reason="minichain.sim._simcore is not built")
@pytest.mark.parametrize("run_it", [_partition_run, _replicated_runs, _selfish_mining_run, _stepped_run])
def test_the_compiled_event_loop_runs_exactly_what_the_python_loop_runs(monkeypatch, run_it):
    # Same seed, same scenario (faults, crashes, partitions, skewed clocks, runs stopped by
    # until, max_events and stop_when): the same JSON, event for event, from both queues.
    outputs = []
    for queue_class in (PyEventQueue, CompiledEventQueue):
        monkeypatch.setattr(simulator_module, "EventQueue", queue_class)
        outputs.append(run_it())
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("queue_class", QUEUES)
def test_a_finished_simulation_with_events_still_queued_is_garbage_collected(monkeypatch, queue_class):
    # A queued call to a bound method of the simulation's own network makes a cycle
    # (simulation -> queue -> event -> network -> queue): the collector must see the
    # compiled queue's C array, or every sweep run ended with events pending would leak.
    monkeypatch.setattr(simulator_module, "EventQueue", queue_class)

    def finished_run():
        sim = Simulation(4, lambda ctx: Flood(ctx, slots=2, interval=1.0), seed=1, network=Network(0.05))
        sim.at(100.0, sim.net.heal)
        sim.run(until=3.0)
        assert len(sim._queue) == 1                  # the call to heal, still queued
        return weakref.ref(sim)

    ref = finished_run()
    gc.collect()
    assert ref() is None
