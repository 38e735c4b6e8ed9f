"""The network model's properties: loss, duplication, partitions, FIFO/reordering, bandwidth,
delays, GST, and counters that always add up."""

import math
import random

import pytest
from hypothesis import given, settings, strategies as st

from minichain.sim import (
    Broadcast, Engine, Exponential, Fixed, LogNormal, Network, NetworkStats, Send, Simulation, Uniform,
)
from minichain.sim.events import CompiledEventQueue, PyEventQueue

# Both event queues, when the compiled one was built (setup.py: minichain.sim._simcore).
QUEUES = [PyEventQueue] + ([CompiledEventQueue] if CompiledEventQueue is not None else [])


class Msg:
    __slots__ = ("k", "size")

    def __init__(self, k, size=0):
        self.k = k
        self.size = size


class Blaster(Engine):
    """Sends ``count`` numbered messages to each destination in ``plan[self.id]`` at start."""

    def __init__(self, ctx, plan, count=1, size=0):
        super().__init__(ctx)
        self.plan = plan
        self.count = count
        self.size = size
        self.got = []    # (time, src, k)

    def on_start(self):
        return [Send(d, Msg(k, self.size)) for k in range(self.count) for d in self.plan.get(self.id, ())]

    def on_message(self, src, msg):
        self.got.append((self.ctx.now, src, msg.k))
        return []


def all_to_all(n):
    return {i: [j for j in range(n) if j != i] for i in range(n)}


def blast(n, plan, net, *, count=1, size=0, seed=0, setup=None):
    sim = Simulation(n, lambda ctx: Blaster(ctx, plan, count, size), seed=seed, network=net)
    if setup:
        setup(sim)
    sim.run()
    return sim


def assert_counts_add_up(net):
    s = net.stats()
    assert s["sent"] + s["duplicated"] == s["delivered"] + s["lost"] + s["partitioned"] + s["crashed"] + s["in_flight"]
    assert s["in_flight"] >= 0
    assert sum(s["sent_by_type"].values()) == s["sent"]
    assert sum(s["delivered_by_type"].values()) == s["delivered"]


@settings(max_examples=25, deadline=None)
@given(p=st.sampled_from([0.0, 0.01, 0.1, 0.3, 0.5, 0.9, 1.0]), seed=st.integers(0, 2**32))
def test_loss_rate_is_statistically_the_configured_probability(p, seed):
    n, count = 2, 4000
    net = Network(0.01, loss=p)
    blast(n, {0: [1]}, net, count=count, seed=seed)
    # Lost ~ Binomial(count, p): allow 5 standard deviations (a false alarm ~ 1 in 2 million).
    sd = math.sqrt(count * p * (1 - p))
    assert abs(net.lost - count * p) <= 5 * sd + 1e-9
    assert net.delivered == count - net.lost
    assert_counts_add_up(net)


@settings(max_examples=20, deadline=None)
@given(p=st.sampled_from([0.0, 0.05, 0.5, 1.0]), seed=st.integers(0, 2**32))
def test_duplication_delivers_extra_copies_at_the_configured_rate(p, seed):
    count = 3000
    net = Network(Exponential(0.05), duplicate=p)
    blast(2, {0: [1]}, net, count=count, seed=seed)
    sd = math.sqrt(count * p * (1 - p))
    assert abs(net.duplicated - count * p) <= 5 * sd + 1e-9
    assert net.delivered == count + net.duplicated
    assert_counts_add_up(net)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(2, 9),
    data=st.data(),
)
def test_partition_blocks_exactly_the_cross_group_links(n, data):
    labels = data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    groups = {}
    for node, g in enumerate(labels):
        groups.setdefault(g, []).append(node)
    listed = [groups[g] for g in sorted(groups)][:-1] if len(groups) > 1 else [groups[labels[0]]]
    net = Network(0.01)
    sim = blast(n, all_to_all(n), net, setup=lambda s: s.net.partition(listed))
    delivered = {(src, e.id) for e in sim.engines for _, src, _ in e.got}
    # Unlisted nodes form one more group together.
    group_of = {node: gi for gi, g in enumerate(listed) for node in g}
    same = {(a, b) for a in range(n) for b in range(n) if a != b
            and group_of.get(a, len(listed)) == group_of.get(b, len(listed))}
    assert delivered == same
    assert net.partitioned == n * (n - 1) - len(same)
    assert_counts_add_up(net)


def test_isolate_and_cut_block_only_their_links_and_heal_restores_all():
    n = 5
    net = Network(0.01)

    def setup(sim):
        net.isolate(4)
        net.cut(0, 1)

    sim = blast(n, all_to_all(n), net, setup=setup)
    delivered = {(src, e.id) for e in sim.engines for _, src, _ in e.got}
    expected = {(a, b) for a in range(4) for b in range(4) if a != b} - {(0, 1), (1, 0)}
    assert delivered == expected
    net2 = Network(0.01)

    def setup2(sim):
        net2.partition([[0, 1]])
        net2.cut(2, 3)
        net2.isolate(4)
        net2.heal()

    sim = blast(n, all_to_all(n), net2, setup=setup2)
    assert net2.delivered == n * (n - 1) and net2.partitioned == 0


def test_a_partition_drops_at_send_time_so_messages_in_flight_still_arrive():
    net = Network(1.0)
    sim = Simulation(2, lambda ctx: Blaster(ctx, {0: [1]}), seed=0, network=net)
    sim.at(0.5, net.partition, [[0], [1]])
    sim.run()
    assert sim.engines[1].got == [(1.0, 0, 0)]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_fifo_links_never_reorder_even_with_random_latency(seed):
    net = Network(Exponential(0.5, base=0.01), fifo=True, duplicate=0.2)
    sim = blast(3, {0: [1, 2], 1: [2]}, net, count=200, seed=seed)
    for e in sim.engines:
        for src in range(3):
            ks = [k for _, s, k in e.got if s == src]
            assert ks == sorted(ks)
    assert_counts_add_up(net)


def test_without_fifo_random_latency_reorders_and_fixed_latency_does_not():
    net = Network(Exponential(0.5), fifo=False)
    sim = blast(2, {0: [1]}, net, count=200, seed=3)
    ks = [k for _, _, k in sim.engines[1].got]
    assert sorted(ks) == list(range(200)) and ks != sorted(ks)
    net = Network(Fixed(0.5), fifo=False)
    sim = blast(2, {0: [1]}, net, count=200, seed=3)
    assert [k for _, _, k in sim.engines[1].got] == list(range(200))


def test_bandwidth_serialises_a_nodes_uplink():
    # 10 messages of 1,000 bytes at 10,000 bytes/s: the k-th leaves after (k+1) * 0.1 s.
    net = Network(Fixed(0.05), bandwidth=10_000)
    sim = blast(3, {0: [1, 2]}, net, count=5, size=1_000)
    times = sorted(t for e in sim.engines for t, _, _ in e.got)
    assert times == pytest.approx([0.1 * (k + 1) + 0.05 for k in range(10)])
    assert net.bytes_sent == 10_000


def test_per_node_bandwidth_and_per_link_latency_and_loss_overrides():
    net = Network(Fixed(0.05))
    sim = Simulation(3, lambda ctx: Blaster(ctx, {0: [1, 2]}, 1, 500), seed=0, network=net)
    net.set_bandwidth(0, 1_000)
    net.set_link(0, 2, latency=Fixed(2.0))
    net.set_link(1, 2, loss=1.0)
    sim.run()
    assert sim.engines[1].got[0][0] == pytest.approx(0.5 + 0.05)
    assert sim.engines[2].got[0][0] == pytest.approx(1.0 + 2.0)
    assert net.link_latency(2, 0) == Fixed(2.0) and net.link_latency(1, 0) == Fixed(0.05)


def test_extra_delay_applies_to_matching_links_until_cleared():
    net = Network(Fixed(0.1))
    net_sim = Simulation(3, lambda ctx: Blaster(ctx, {0: [1, 2]}), seed=0, network=net)
    net.add_delay(1.0, dst=[2])
    net_sim.run()
    assert net_sim.engines[1].got[0][0] == pytest.approx(0.1)
    assert net_sim.engines[2].got[0][0] == pytest.approx(1.1)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32), gst=st.floats(0.5, 50.0))
def test_before_gst_delays_are_arbitrary_but_arrive_by_gst_plus_latency(seed, gst):
    net = Network(Uniform(0.01, 0.1))
    net.asynchronous_until(gst, Exponential(100.0))
    sim = blast(4, all_to_all(4), net, count=20, seed=seed)
    times = [t for e in sim.engines for t, _, _ in e.got]
    assert len(times) == 4 * 3 * 20
    assert max(times) <= gst + 0.1 + 1e-9


def test_latency_distributions_have_the_documented_means():
    import random

    rng = random.Random(5)
    for dist, mean in [(Fixed(0.3), 0.3), (Uniform(0.1, 0.5), 0.3), (Exponential(0.3, base=0.1), 0.3),
                       (LogNormal(0.2, 0.5, base=0.05), LogNormal(0.2, 0.5, base=0.05).mean)]:
        xs = [dist.sample(rng) for _ in range(40_000)]
        assert sum(xs) / len(xs) == pytest.approx(mean, rel=0.03)
        assert min(xs) >= 0


def test_invalid_configuration_is_refused():
    with pytest.raises(ValueError):
        Network(0.1, loss=1.5)
    net = Network(0.1)
    Simulation(2, lambda ctx: Engine(ctx), seed=0, network=net)
    with pytest.raises(ValueError):
        net.partition([[0, 1], [1]])
    with pytest.raises(ValueError):
        net.isolate(7)
    with pytest.raises(ValueError):
        Simulation(2, lambda ctx: Engine(ctx), seed=0, network=net)


def test_link_overrides_set_before_the_simulation_exists_apply_to_the_right_link():
    net = Network(Fixed(1.0))
    net.set_link(2, 0, latency=Fixed(0.01), both_ways=False)
    sim = blast(3, all_to_all(3), net)
    arrival = {(src, e.id): t for e in sim.engines for t, src, _ in e.got}
    assert arrival[(2, 0)] == pytest.approx(0.01)
    assert all(t == pytest.approx(1.0) for link, t in arrival.items() if link != (2, 0))


# -- the counters (NetworkStats) -----------------------------------------------------------


class Other(Msg):
    __slots__ = ()


class Scripted(Engine):
    """Node 0 sends two Msgs and broadcasts an Other (with a copy to itself) at start."""

    def on_start(self):
        if self.id != 0:
            return []
        return [Send(1, Msg(0, 10)), Send(2, Msg(1, 10)), Broadcast(Other(2, 5), include_self=True)]

    def on_message(self, src, msg):
        return [Send(0, Msg(9))] if self.id == 1 and isinstance(msg, Other) else []


def test_counters_split_sends_deliveries_crash_drops_and_copies_to_self_by_type_and_sender():
    net = Network(Fixed(0.1))
    sim = Simulation(3, lambda ctx: Scripted(ctx), seed=0, network=net)
    sim.crash(2)                                # everything sent to node 2 is dropped on arrival
    sim.run()
    c = net.counters
    assert isinstance(c, NetworkStats)
    # Node 0: Msg->1, Msg->2, Other->1, Other->2 (and a copy to itself, not traffic);
    # node 1 answers the Other with one Msg to node 0.
    assert (c.sent, c.delivered, c.crashed, c.self_delivered, c.in_flight) == (5, 3, 2, 1, 0)
    assert c.sent_by_node == [4, 1, 0]
    assert c.bytes_sent == 10 + 10 + 5 + 5 + 0
    assert c.sent_by_type == {"Msg": 3, "Other": 2}
    assert c.delivered_by_type == {"Msg": 2, "Other": 1}
    assert net.stats() == {
        "sent": 5, "delivered": 3, "lost": 0, "partitioned": 0, "crashed": 2, "duplicated": 0, "in_flight": 0,
        "self_delivered": 1, "bytes_sent": 30, "sent_by_type": {"Msg": 3, "Other": 2},
        "delivered_by_type": {"Msg": 2, "Other": 1},
    }
    assert sim.result().messages == net.stats()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_every_copy_sent_is_accounted_for_while_in_flight_and_none_is_left_at_the_end(seed):
    net = Network(Exponential(0.3, base=0.01), loss=0.1, duplicate=0.1, fifo=False)
    sim = Simulation(5, lambda ctx: Blaster(ctx, all_to_all(5), 20), seed=seed, network=net)
    seen = []

    def probe():
        s = net.stats()
        seen.append(s["in_flight"])
        assert s["in_flight"] >= 0
        assert sum(s["delivered_by_type"].values()) == s["delivered"]

    for t in (0.05, 0.1, 0.2, 0.4):
        sim.at(t, probe)
    sim.at(0.15, sim.crash, 4)                 # what is still on its way to node 4 is dropped
    sim.run()
    assert max(seen) > 0                        # the probes did see messages on the way
    s = net.stats()
    assert s["in_flight"] == 0 and s["crashed"] > 0
    assert s["delivered"] == sum(len(e.got) for e in sim.engines)


def test_the_networks_counters_are_read_only_from_outside():
    net = Network(0.1)
    with pytest.raises(AttributeError):
        net.sent = 5
    with pytest.raises(AttributeError):
        net.delivered += 1


class _LibraryDraws(random.Random):
    """A generator the network does not recognise as ``random.Random``: it draws each
    latency through ``latency.sample`` (the library's ``gauss``), never its inline copies."""


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), sends=st.lists(st.lists(st.integers(1, 6), min_size=1, max_size=5),
                                                      min_size=1, max_size=12))
def test_log_normal_inline_draws_give_the_library_numbers_one_by_one_and_in_batches(seed, sends):
    # The fast paths (a message to one peer, a relay to several) draw log-normal latencies
    # inline -- in Python, or in C when the queue is the compiled one; a generator of
    # another class takes the library's path. Same seed, same sends: the same arrivals in
    # the same order, and the generator left in the same state.
    def arrivals(rng, queue_class):
        queue = queue_class()
        net = Network(LogNormal(0.1, 0.5, base=0.01))
        net.attach(7, rng, queue.deliveries, lambda: 0.0)
        for i, dsts in enumerate(sends):
            if len(dsts) == 1:
                net.transmit(float(i), 0, dsts[0], i)
            else:
                net.transmit_many(float(i), 0, dsts, i)
        got = [queue.pop() for _ in range(len(queue))]
        return [(e[0], e[3], e[5]) for e in got], rng.random()

    library = arrivals(_LibraryDraws(seed), PyEventQueue)
    for queue_class in QUEUES:
        assert arrivals(random.Random(seed), queue_class) == library, queue_class
