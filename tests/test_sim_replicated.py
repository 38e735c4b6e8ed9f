"""The scenario harness for log-replication engines, exercised with a toy sequencer.

The sequencer is not a consensus protocol: replica 0 numbers the client requests and
everyone decides what it says. That makes the expected outcome of each scenario easy to
state, so the harness's measurements can be checked against it.
"""

import pytest

from minichain.sim import quorum
from minichain.sim.engine import Broadcast, Decide, Engine
from minichain.sim.engines import REGISTRY, EngineSpec, register
from minichain.sim.scenarios.replicated import ScenarioError, partition_groups, run
from minichain.sim.workload import ClientRequest


class Sequencer(Engine):
    def __init__(self, ctx, behaviour=None):
        super().__init__(ctx)
        self.behaviour = behaviour
        self.honest = behaviour is None
        self.next_slot = 0
        self.seen = set()

    def on_message(self, src, msg):
        if isinstance(msg, ClientRequest):
            if self.id != 0 or msg.payment in self.seen or self.behaviour == "silent":
                return []
            self.seen.add(msg.payment)
            slot, self.next_slot = self.next_slot, self.next_slot + 1
            return [Broadcast(("order", slot, msg.payment), include_self=True)]
        _, slot, payment = msg
        return [Decide(slot, payment)]


@pytest.fixture(autouse=True, scope="module")
def sequencer_spec():
    spec = register(EngineSpec("test-sequencer", "CFT", "crash", quorum.max_crash_faults,
                               lambda ctx, b: Sequencer(ctx, b), ("silent", "lie")))
    yield spec
    REGISTRY.pop("test-sequencer", None)


def test_n4_normal_commits_every_payment_with_one_network_hop_of_latency():
    r = run("test-sequencer", "normal", n=4, seed=3, duration=20, interval=0.5, latency=0.05)
    assert r.safe and not r.reversals
    assert r.extra["committed"] == r.extra["submitted"] == 30
    assert r.extra["latency_mean"] == pytest.approx(0.0)  # the leader decides its own at once
    # Three messages (to the other replicas) per decision.
    assert r.messages_per_decision == pytest.approx(3.0)
    assert r.extra["stalled"] is False


def test_n4_crash_of_the_sequencer_stalls_after_the_crash():
    r = run("test-sequencer", "crash", n=4, seed=3, faulty=1, duration=20, fault_at=5)
    assert r.extra["faulty"] == 1 and r.extra["stalled"] is True
    assert r.extra["decided_during_fault"] == 0
    assert 0 < r.extra["committed"] < r.extra["submitted"]
    assert 0 not in r.extra["live_honest"]


def test_n4_even_partition_stops_the_far_side_then_heals():
    r = run("test-sequencer", "partition", n=4, seed=3, split="even", duration=30, fault_at=5, heal_at=15)
    assert r.extra["split"] == [[0, 1], [2, 3]]
    # The sequencer's side keeps deciding: not a stall, but replicas 2 and 3 miss slots.
    assert r.extra["decided_during_fault"] > 0
    assert r.decisions_per_node[2] < r.decisions_per_node[0]


def test_quorum_split_gives_the_high_ids_a_quorum():
    spec = REGISTRY["test-sequencer"]
    assert partition_groups(spec, 5, "quorum") == [[0, 1], [2, 3, 4]]
    assert partition_groups(spec, 4, "even") == [[0, 1], [2, 3]]


def test_silent_byzantine_sequencer_means_nothing_is_committed():
    r = run("test-sequencer", "byzantine", n=4, seed=3, faulty=1, behaviour="silent", duration=10)
    assert r.extra["committed"] == 0 and r.extra["stalled"] is True
    assert r.honest == [1, 2, 3]


def test_same_seed_same_result_byte_for_byte():
    a = run("test-sequencer", "loss", n=5, seed=11, duration=15, loss=0.2).to_json()
    b = run("test-sequencer", "loss", n=5, seed=11, duration=15, loss=0.2).to_json()
    c = run("test-sequencer", "loss", n=5, seed=12, duration=15, loss=0.2).to_json()
    assert a == b and a != c


def test_bad_requests_are_clear_errors():
    with pytest.raises(ScenarioError, match="unknown engine 'nope'"):
        run("nope", "normal")
    with pytest.raises(ScenarioError, match="unknown scenario"):
        run("test-sequencer", "weather")
    with pytest.raises(ScenarioError, match="no behaviour .double-vote."):
        run("test-sequencer", "byzantine", behaviour="double-vote")
