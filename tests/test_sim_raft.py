"""Raft (Ongaro & Ousterhout, USENIX ATC 2014): step tables for its rules, the scenarios
told as stories, and seeded fuzzing with the paper's invariants checked after every event.

Section numbers in test names and comments are the paper's.
"""


import pytest

from minichain.sim import Broadcast, CancelTimer, Decide, Network, Send, SetTimer, Simulation
from minichain.sim.engines import load_registry
from minichain.sim.engines import raft
from minichain.sim.engines.raft import (
    AppendEntries, AppendReply, Entry, Noop, Raft, RequestVote, VoteReply, LEADER, FOLLOWER, CANDIDATE,
)
from minichain.sim.workload import ClientRequest, Payment, schedule_payments

T = 0.5          # election timeout: drawn from [T, 2T]
H = 0.1          # heartbeat


def pay(i, payee=None):
    return Payment(0, i, f"c0.{i}", payee or f"payee{i}")


def shape(actions):
    """Actions with the random election delay left out (checked separately)."""
    out = []
    for a in actions:
        if isinstance(a, SetTimer):
            if a.name == raft.ELECTION:
                assert T <= a.delay <= 2 * T, a
                out.append(("timer", a.name))
            else:
                out.append(("timer", a.name, a.delay))
        else:
            out.append(a)
    return out


def node(n=3, i=0, *, term=0, log=(), voted_for=None):
    """One Raft replica of an n-node cluster, fed messages by hand."""
    sim = Simulation(n, lambda ctx: Raft(ctx), seed=0)
    e = sim.engines[i]
    e.current_term = term
    e.voted_for = voted_for
    e.log = [Entry(t, v) for t, v in log]
    return e


# -- 5.1 terms and 5.2 elections: step tables ------------------------------------------------


def test_5_2_a_follower_whose_election_timer_fires_becomes_candidate_of_the_next_term():
    e = node(3, 0, term=2, log=[(1, "a"), (2, "b")])
    actions = e.on_timer(raft.ELECTION)
    assert (e.role, e.current_term, e.voted_for) == (CANDIDATE, 3, 0)
    assert shape(actions) == [("timer", "election"), Broadcast(RequestVote(3, 2, 2))]


def test_5_2_a_candidate_with_a_majority_of_votes_becomes_leader_and_appends_a_noop_section_8():
    e = node(3, 0, term=2, log=[(2, "a")])
    e.on_timer(raft.ELECTION)
    actions = e.on_message(1, VoteReply(3, True))
    assert e.role == LEADER and e.log[-1] == Entry(3, Noop(3))
    # AppendEntries from nextIndex = old last index + 1, carrying the no-op.
    ae = AppendEntries(3, 1, 2, (Entry(3, Noop(3)),), 0)
    assert shape(actions) == [CancelTimer("election"), Send(1, ae), Send(2, ae), ("timer", "heartbeat", H)]


def test_5_2_a_refused_vote_is_counted_and_a_lost_election_waits_for_the_timer():
    e = node(5, 0, term=1)
    e.on_timer(raft.ELECTION)
    for voter in (1, 2, 3):
        assert e.on_message(voter, VoteReply(2, False)) == []
    assert e.role == CANDIDATE


@pytest.mark.parametrize(
    "story, my_log, voted_for, rv, granted",
    [
        ("no vote yet, same log", [(1, "a")], None, RequestVote(2, 1, 1), True),
        ("5.2 one vote per term: already voted for 2", [(1, "a")], 2, RequestVote(2, 1, 1), False),
        ("same candidate asks again (a retransmission)", [(1, "a")], 1, RequestVote(2, 1, 1), True),
        ("5.4.1 candidate's last term is older", [(1, "a"), (2, "b")], None, RequestVote(3, 5, 1), False),
        ("5.4.1 candidate's last term is newer, shorter log", [(1, "a"), (1, "b")], None, RequestVote(3, 1, 2), True),
        ("5.4.1 same last term, candidate's log shorter", [(1, "a"), (1, "b")], None, RequestVote(3, 1, 1), False),
        ("5.4.1 same last term, candidate's log longer", [(1, "a")], None, RequestVote(3, 2, 1), True),
        ("5.1 stale term", [(1, "a")], None, RequestVote(1, 9, 9), False),
    ],
)
def test_5_2_and_5_4_1_request_vote_table(story, my_log, voted_for, rv, granted):
    e = node(3, 0, term=2, log=my_log, voted_for=voted_for)
    actions = e.on_message(1, rv)
    reply = [a for a in actions if isinstance(a, Send)]
    assert reply == [Send(1, VoteReply(max(2, rv.term), granted))], story
    assert e.voted_for == (1 if granted else (voted_for if rv.term == 2 else None)), story


def test_5_1_a_higher_term_in_any_message_turns_a_leader_into_a_follower_of_that_term():
    e = node(3, 0, term=1)
    e.on_timer(raft.ELECTION)
    e.on_message(1, VoteReply(2, True))
    assert e.role == LEADER
    actions = e.on_message(2, AppendReply(7, False, 0))
    assert (e.role, e.current_term, e.voted_for) == (FOLLOWER, 7, None)
    assert CancelTimer("heartbeat") in actions


def test_figure_2_a_deposed_leader_whose_log_is_too_new_to_vote_for_the_candidate_stands_again():
    # Found by the adversary search (issue 21): n = 4 with one replica down, the deposed
    # leader refused the others' votes (its log was longer) and, with no election timer
    # (it had cancelled it on becoming leader), never stood again; no majority ever formed.
    e = node(4, 0, term=1)
    e.on_timer(raft.ELECTION)
    e.on_message(1, VoteReply(2, True))
    e.on_message(2, VoteReply(2, True))
    assert e.role == LEADER
    actions = e.on_message(1, RequestVote(5, 0, 0))                   # a shorter log: refused
    assert e.role == FOLLOWER and Send(1, VoteReply(5, False)) in actions
    assert ("timer", raft.ELECTION) in shape(actions)                 # Figure 2: followers time out
    e.on_timer(raft.ELECTION)
    assert (e.role, e.current_term) == (CANDIDATE, 6)


# -- 5.3 log replication: step tables -------------------------------------------------------


def test_5_3_consistency_check_refuses_entries_after_a_missing_one_and_hints_its_last_index():
    e = node(3, 1, term=2, log=[(1, "a")])
    actions = e.on_message(0, AppendEntries(2, 3, 2, (Entry(2, "d"),), 0))
    assert shape(actions) == [("timer", "election"), Send(0, AppendReply(2, False, 1))]
    assert e.log == [Entry(1, "a")]


def test_5_3_consistency_check_refuses_when_the_term_at_prev_index_differs():
    e = node(3, 1, term=3, log=[(1, "a"), (2, "x")])
    actions = e.on_message(0, AppendEntries(3, 2, 3, (Entry(3, "c"),), 0))
    assert Send(0, AppendReply(3, False, 1)) in actions
    assert e.log == [Entry(1, "a"), Entry(2, "x")]


def test_5_3_a_conflicting_entry_is_deleted_with_all_that_follow_it():
    e = node(3, 1, term=2, log=[(1, "a"), (2, "x"), (2, "y")])
    actions = e.on_message(0, AppendEntries(3, 1, 1, (Entry(3, "b"),), 0))
    assert e.log == [Entry(1, "a"), Entry(3, "b")]
    assert Send(0, AppendReply(3, True, 2)) in actions


def test_5_3_an_old_reordered_append_entries_does_not_truncate_newer_matching_entries():
    e = node(3, 1, term=2, log=[(1, "a"), (2, "b"), (2, "c")])
    actions = e.on_message(0, AppendEntries(2, 1, 1, (Entry(2, "b"),), 0))
    assert e.log == [Entry(1, "a"), Entry(2, "b"), Entry(2, "c")]
    assert Send(0, AppendReply(2, True, 2)) in actions


def test_5_3_followers_commit_up_to_min_of_leader_commit_and_their_last_new_entry():
    e = node(3, 1, term=2, log=[(1, "a"), (2, "b"), (2, "stale")])
    # The leader says index 3 is committed but only vouches (prev/entries) up to index 2.
    actions = e.on_message(0, AppendEntries(2, 1, 1, (Entry(2, "b"),), 3))
    assert e.commit_index == 2
    assert [a for a in actions if isinstance(a, Decide)] == [Decide(0, "a"), Decide(1, "b")]


def test_5_3_the_leader_backs_up_next_index_after_a_refusal_and_retries():
    e = node(3, 0, term=1, log=[(1, "a"), (1, "b"), (1, "c")])
    e.on_timer(raft.ELECTION)
    e.on_message(1, VoteReply(2, True))
    # It sent the no-op from nextIndex = 4 and pipelines: nextIndex is now past it.
    assert e.next_index[1] == 5
    actions = e.on_message(1, AppendReply(2, False, 1))    # follower holds index 1 only
    assert actions == [Send(1, AppendEntries(2, 1, 1, tuple(e.log[1:]), 0))]
    assert e.next_index[1] == 5


# -- 5.4.2 committing only current-term entries ---------------------------------------------


def test_5_4_2_figure_8_a_leader_does_not_commit_an_old_term_entry_by_counting_replicas():
    # Leader of term 4 whose log holds an entry of term 2 that a majority (itself and node 1)
    # stores: counting replicas must not commit it (Figure 8), but the no-op of term 4 does
    # once a majority holds it, committing index 2 indirectly.
    e = node(5, 0, term=3, log=[(1, "a"), (2, "b")])
    e.on_timer(raft.ELECTION)
    for voter in (1, 2):
        e.on_message(voter, VoteReply(4, True))
    assert e.role == LEADER and e.log[-1] == Entry(4, Noop(4))
    assert e.on_message(1, AppendReply(4, True, 2)) == []
    assert e.on_message(2, AppendReply(4, True, 2)) == []
    assert e.commit_index == 0, "index 2 (term 2) is on a majority but must not commit by counting"
    e.on_message(1, AppendReply(4, True, 3))
    actions = e.on_message(2, AppendReply(4, True, 3))
    assert e.commit_index == 3
    assert [a for a in actions if isinstance(a, Decide)] == [Decide(0, "a"), Decide(1, "b"), Decide(2, Noop(4))]


def test_a_leader_appends_a_client_payment_and_sends_it_to_every_follower():
    e = node(3, 0, term=1)
    e.on_timer(raft.ELECTION)
    e.on_message(1, VoteReply(2, True))
    actions = e.on_message(-1, ClientRequest(pay(0)))
    assert e.log[-1] == Entry(2, pay(0))
    # The no-op already went out when it became leader; only the new entry follows it.
    ae = AppendEntries(2, 1, 2, (Entry(2, pay(0)),), 0)
    assert actions == [Send(1, ae), Send(2, ae)]
    # A follower only queues what clients give it.
    f = node(3, 1, term=1)
    assert f.on_message(-1, ClientRequest(pay(0))) == [] and pay(0) in f.pending


# -- persistence (Figure 2) -----------------------------------------------------------------


def test_figure_2_a_restarted_server_keeps_term_vote_and_log_and_forgets_volatile_state():
    e = node(3, 0, term=1, log=[(1, "a")])
    e.on_timer(raft.ELECTION)
    e.on_message(1, VoteReply(2, True))
    e.on_message(1, AppendReply(2, True, 2))
    assert e.commit_index == 2 and e.role == LEADER
    actions = e.on_recover()
    assert (e.current_term, e.voted_for, e.log) == (2, 0, [Entry(1, "a"), Entry(2, Noop(2))])
    assert (e.role, e.commit_index, e.last_applied, e.next_index) == (FOLLOWER, 0, 0, {})
    assert shape(actions) == [("timer", "election")]
    # It voted for itself in term 2; after the restart it still will not vote for 1 in term 2.
    assert Send(1, VoteReply(2, False)) in e.on_message(1, RequestVote(2, 9, 9))


# -- scenarios -------------------------------------------------------------------------------


def run(n, seed=1, *, until=12.0, payments=20, interval=0.25, start=1.0, latency=0.05,
        behaviours=None, coalition=False, setup=None, check=None, targets=None, **netargs):
    behaviours = behaviours or {}
    net = Network(latency, **netargs)
    # coalition=True: the Byzantine replicas know each other (engines/coalition.py), as the
    # harness tells them; otherwise each is built alone.
    told = {"coalition": frozenset(behaviours)} if coalition else {}
    sim = Simulation(n, lambda ctx: raft.build(ctx, behaviours.get(ctx.node_id), **told),
                     seed=seed, network=net)
    if payments:
        schedule_payments(sim, payments, interval, start=start, targets=targets)
    if setup:
        setup(sim)
    sim.run(until=until, stop_when=check)
    return sim


def leader(sim):
    leaders = [i for i, e in enumerate(sim.engines) if getattr(e, "role", None) == LEADER and not sim.crashed[i]]
    return max(leaders, key=lambda i: sim.engines[i].current_term) if leaders else None


def payments_decided(sim, i):
    return [v for v in sim.decisions.committed(i).values() if isinstance(v, Payment)]


def test_n3_normal_every_payment_commits_once_in_the_same_order_everywhere():
    sim = run(3)
    r = sim.result()
    assert r.safe and not r.reversals
    logs = [sim.decisions.committed(i) for i in range(3)]
    assert logs[0] == logs[1] == logs[2]
    assert payments_decided(sim, 0) == [pay(i) for i in range(20)]


def test_n5_crash_minority_leader_crashes_a_new_leader_is_elected_and_payments_keep_committing():
    old = {}

    def setup(sim):
        def crash_leader():
            old["leader"] = leader(sim)
            sim.crash(old["leader"])
        sim.at(2.0, crash_leader)
        sim.at(2.05, lambda: sim.crash((old["leader"] + 1) % 5))

    sim = run(5, setup=setup)
    r = sim.result()
    assert r.safe
    alive = [i for i in range(5) if not sim.crashed[i]]
    assert len(alive) == 3
    for i in alive:
        assert payments_decided(sim, i) == [pay(k) for k in range(20)]
    assert sim.engines[leader(sim)].current_term > sim.engines[old["leader"]].current_term


def test_n5_crash_majority_stalls_safely_then_recovers_from_its_durable_log():
    def setup(sim):
        sim.at(2.0, sim.crash, 2)
        sim.at(2.0, sim.crash, 3)
        sim.at(2.0, sim.crash, 4)
        sim.at(8.0, sim.recover, 3)

    sim = run(5, setup=setup, until=12.0)
    log = sim.decisions
    during = [d for d in log.records if 2.2 < d.time < 8.0]
    assert during == [], "with 3 of 5 crashed nothing may commit"
    r = sim.result()
    assert r.safe and not r.reversals
    # Node 3 comes back with its term, vote and log; a majority again: everything commits.
    assert payments_decided(sim, 0) == [pay(k) for k in range(20)]
    assert payments_decided(sim, 3) == [pay(k) for k in range(20)]


def test_n5_partition_majority_side_012_keeps_committing_minority_34_stalls_then_heals():
    def setup(sim):
        sim.at(0.9, sim.net.partition, [[0, 1, 2], [3, 4]])
        sim.at(7.0, sim.net.heal)

    # Give the minority a leader of its own first: isolate node 3 as the likely old leader?
    # Rather, whoever leads, the minority side commits nothing while cut off.
    sim = run(5, setup=setup, until=12.0)
    during = {d.node for d in sim.decisions.records if 1.2 < d.time < 7.0}
    assert during and during <= {0, 1, 2}
    r = sim.result()
    assert r.safe and not r.reversals
    for i in range(5):
        assert payments_decided(sim, i) == [pay(k) for k in range(20)]


def test_n5_partition_a_leader_cut_off_in_the_minority_keeps_its_uncommitted_entries_until_heal():
    state = {}

    def setup(sim):
        def split():
            old = leader(sim)
            state["old"] = old
            rest = [i for i in range(5) if i != old]
            sim.net.partition([[old, rest[0]], rest[1:]])
        sim.at(2.0, split)
        sim.at(7.0, sim.net.heal)

    sim = run(5, setup=setup, until=12.0)
    old = state["old"]
    # The old leader kept appending client payments it could not commit...
    committed_during = [d for d in sim.decisions.records if d.node == old and 2.2 < d.time < 7.0]
    assert committed_during == []
    # ...and after the heal it learned the new term and its log was repaired (5.3).
    assert sim.engines[old].role == FOLLOWER
    assert sim.result().safe
    assert payments_decided(sim, old) == [pay(k) for k in range(20)]


def test_n4_even_split_01_23_commits_nothing_on_either_side_then_heals():
    def setup(sim):
        sim.at(0.9, sim.net.partition, [[0, 1], [2, 3]])
        sim.at(6.0, sim.net.heal)

    sim = run(4, setup=setup, until=12.0)
    assert [d for d in sim.decisions.records if 1.2 < d.time < 6.0] == []
    r = sim.result()
    assert r.safe
    assert payments_decided(sim, 2) == [pay(k) for k in range(20)]


def test_gst_n5_asynchrony_until_gst_then_commits_within_a_few_election_timeouts():
    gst = 6.0

    def setup(sim):
        sim.net.asynchronous_until(gst, 3.0)

    sim = run(5, setup=setup, until=14.0, payments=10, interval=0.2)
    r = sim.result()
    assert r.safe
    first_after = min(d.time for d in sim.decisions.records if d.time >= gst)
    assert first_after < gst + 4 * T
    for i in range(5):
        assert payments_decided(sim, i) == [pay(k) for k in range(10)]


# -- Byzantine: crash fault tolerance is not Byzantine fault tolerance ----------------------


def cut_between(groups):
    def setup(sim):
        a, b = groups
        for x in a:
            for y in b:
                sim.net.cut(x, y)
    return setup


def test_byzantine_n3_liar_2_bridges_a_cut_between_0_and_1_and_both_commit_a_double_spend():
    # Node 0 and node 1 cannot hear each other; node 2 talks to both and says yes to
    # everything. The client pays coin c0.0 to alice via node 0 and to bob via node 1.
    a, b = Payment(0, 0, "c0.0", "alice"), Payment(0, 0, "c0.0", "bob")

    def setup(sim):
        cut_between(([0], [1]))(sim)
        sim.at(1.0, sim.submit, 0, ClientRequest(a), -1)
        sim.at(1.0, sim.submit, 1, ClientRequest(b), -1)

    sim = run(3, payments=0, behaviours={2: "lie"}, setup=setup, until=6.0)
    r = sim.result()
    assert r.conflicts, "the liar's votes (two leaders) and acks (fake majorities) must break safety"
    assert a in payments_decided(sim, 0) and b in payments_decided(sim, 1)
    # Two leaders, one per side, each elected with the liar's vote.
    assert sim.engines[0].role == LEADER and sim.engines[1].role == LEADER


def test_byzantine_control_the_same_cut_with_an_honest_node_2_stays_safe():
    a, b = Payment(0, 0, "c0.0", "alice"), Payment(0, 0, "c0.0", "bob")

    def setup(sim):
        cut_between(([0], [1]))(sim)
        sim.at(1.0, sim.submit, 0, ClientRequest(a), -1)
        sim.at(1.0, sim.submit, 1, ClientRequest(b), -1)

    for seed in range(5):
        sim = run(3, seed, payments=0, setup=setup, until=6.0)
        r = sim.result()
        assert r.safe and not r.reversals
        decided = set(payments_decided(sim, 0)) | set(payments_decided(sim, 1)) | set(payments_decided(sim, 2))
        assert len(decided & {a, b}) <= 1


@pytest.mark.parametrize("n", [3, 5])
def test_byzantine_an_equivocating_fake_leader_makes_honest_halves_commit_a_double_spend(n):
    sim = run(n, behaviours={n - 1: "equivocate"}, until=6.0)
    r = sim.result()
    assert r.conflicts
    [conflict] = r.conflicts[:1]
    values = [v for v, _ in conflict["values"]]
    assert any("mallory" in v for v in values)


def honest_sides_of(conflict):
    """The honest replicas holding each value of a conflicting slot, sorted."""
    return sorted(sorted(nodes) for _, nodes in conflict["values"])


@pytest.mark.parametrize("liars", [(0, 1), (0, 2), (1, 3), (2, 3)])
def test_byzantine_n4_two_colluding_equivocators_split_the_two_honest_replicas_into_a_double_spend(liars):
    # f + 1 = 2 liars of 4: each leaves its accomplice out of the split, so the two honest
    # replicas get different payments of one coin, wherever the liars sit.
    honest = [i for i in range(4) if i not in liars]
    sim = run(4, behaviours={i: "equivocate" for i in liars}, coalition=True, until=6.0)
    r = sim.result()
    assert r.conflicts
    assert honest_sides_of(r.conflicts[0]) == [[honest[0]], [honest[1]]]


def test_byzantine_n4_equivocators_0_and_1_told_nothing_still_split_honest_2_and_3():
    # Without the coalition, an equivocator deals everyone else alternately: with its
    # accomplice at a neighbouring id, honest 2 and 3 still land on different sides.
    sim = run(4, behaviours={0: "equivocate", 1: "equivocate"}, until=6.0)
    assert honest_sides_of(sim.result().conflicts[0]) == [[2], [3]]


def test_the_registry_names_raft_as_a_crash_fault_tolerant_engine():
    spec = load_registry()["raft"]
    assert (spec.family, spec.fault_model, spec.max_faults(5)) == ("CFT", "crash", 2)
    assert set(spec.behaviours) >= {"silent", "lie"}


def test_same_seed_same_result_byte_for_byte():
    def go(seed):
        def setup(sim):
            sim.at(2.0, sim.crash, 0)
            sim.at(4.0, sim.recover, 0)
        return run(5, seed, setup=setup, loss=0.05, fifo=False).result().to_json()

    assert go(3) == go(3)
    assert go(3) != go(4)


# -- invariants after every event, under seeded random faults ------------------------------


class RaftInvariants:
    """Figure 3's properties, checked after every event (a ``stop_when`` that never stops)."""

    def __init__(self):
        self.leader_of_term = {}
        self.committed = {}          # index -> (entry, term at which it was first seen committed)
        self.checks = 0

    def __call__(self, sim):
        self.checks += 1
        engines = [e for e in sim.engines if isinstance(e, Raft)]
        for e in engines:
            # Election Safety: at most one leader per term.
            if e.role == LEADER:
                assert self.leader_of_term.setdefault(e.current_term, e.id) == e.id, "two leaders in one term"
            # State Machine Safety (the committed prefix agrees everywhere).
            for index in range(1, min(e.commit_index, e.last_index) + 1):
                entry = e.log[index - 1]
                seen = self.committed.setdefault(index, (entry, e.current_term))
                assert seen[0] == entry, f"index {index} committed as {seen[0]} and {entry}"
        # Leader Completeness: a leader of a later term holds every committed entry.
        for e in engines:
            if e.role != LEADER:
                continue
            for index, (entry, term) in self.committed.items():
                if e.current_term > term:
                    assert index <= e.last_index and e.log[index - 1] == entry, "leader lacks a committed entry"
        # Log Matching: same index and term => identical prefixes.
        for x in range(len(engines)):
            for y in range(x + 1, len(engines)):
                a, b = engines[x].log, engines[y].log
                i = min(len(a), len(b))
                while i > 0 and a[i - 1].term != b[i - 1].term:
                    i -= 1
                assert a[:i] == b[:i], "log matching violated"
        return False


def random_faults(sim, rng, n, until):
    """Crashes (at most a minority down at once, then back), partitions and heals."""
    t = 1.0
    while t < until - 3.0:
        t += rng.uniform(0.5, 2.5)
        kind = rng.random()
        if kind < 0.4:
            victim = rng.randrange(n)
            sim.at(t, sim.crash, victim)
            sim.at(t + rng.uniform(0.3, 3.0), sim.recover, victim)
        elif kind < 0.7:
            nodes = list(range(n))
            rng.shuffle(nodes)
            cut = rng.randrange(1, n)
            sim.at(t, sim.net.partition, [nodes[:cut], nodes[cut:]])
            sim.at(t + rng.uniform(0.5, 3.0), sim.net.heal)
        else:
            sim.at(t, sim.net.isolate, rng.randrange(n))
            sim.at(t + rng.uniform(0.3, 2.0), sim.net.heal)


def fuzz(seed):
    import random

    rng = random.Random(seed)
    n = rng.choice([3, 5])
    until = 15.0
    check = RaftInvariants()
    sim = run(
        n, seed, until=until, payments=30, interval=0.3, check=check,
        setup=lambda s: random_faults(s, rng, n, until),
        loss=rng.choice([0.0, 0.02, 0.1]), fifo=rng.random() < 0.5, duplicate=rng.choice([0.0, 0.02]),
    )
    r = sim.result()
    assert r.safe and not r.reversals, (seed, r.conflicts, r.reversals)
    return sim, check


@pytest.mark.parametrize("seed", range(20))
def test_fuzz_invariants_hold_after_every_event_with_crashes_partitions_loss_and_reordering(seed):
    sim, check = fuzz(seed)
    # (every event that ran a handler; cancelled timers are skipped without one)
    assert check.checks > sim.events // 2
    assert sim.result().decided_slots > 0


@pytest.mark.slow
def test_fuzz_200_seeds_invariants_and_no_conflicting_commits():
    decided = 0
    for seed in range(1000, 1200):
        sim, _ = fuzz(seed)
        decided += sim.result().decided_slots
    assert decided > 200 * 5


# -- through the scenario harness (sim/scenarios/replicated.py) ------------------------------

from minichain.sim.scenarios import replicated  # noqa: E402


def test_harness_raft_n5_normal_loss_and_skew_commit_every_payment_safely():
    for scenario in ("normal", "loss", "skew"):
        r = replicated.run("raft", scenario, n=5, seed=1)
        assert r.safe and not r.reversals, scenario
        assert r.extra["committed"] == r.extra["submitted"], scenario


def test_harness_raft_n5_crash_f_2_stays_live_crash_f_plus_1_stalls_safely():
    live = replicated.run("raft", "crash", n=5, seed=1)
    assert live.safe and not live.extra["stalled"] and live.extra["committed"] == live.extra["submitted"]
    dead = replicated.run("raft", "crash", n=5, seed=1, faulty=3)
    assert dead.safe and dead.extra["stalled"]


def test_harness_raft_partition_quorum_side_commits_even_split_n4_stalls_both_heal():
    side = replicated.run("raft", "partition", n=5, seed=1, split="quorum")
    assert side.safe and not side.extra["stalled"]
    even = replicated.run("raft", "partition", n=4, seed=1, split="even")
    assert even.safe and even.extra["stalled"] and even.extra["decided_after_fault"] > 0
    assert even.extra["committed"] == even.extra["submitted"]


def test_harness_raft_gst_nothing_before_gst_everything_after():
    r = replicated.run("raft", "gst", n=5, seed=1)
    assert r.safe and r.extra["stalled"] and r.extra["committed"] == r.extra["submitted"]


def test_harness_raft_byzantine_equivocating_replicas_break_safety():
    r = replicated.run("raft", "byzantine", n=5, seed=1, behaviour="equivocate")
    assert r.conflicts


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_harness_raft_n4_f_plus_1_equivocators_0_and_1_make_honest_2_and_3_conflict(seed):
    # The comparison's double-spend-f+1 at n = 4: the harness tells the liars each other's ids.
    r = replicated.run("raft", "byzantine", n=4, seed=seed, faulty=2, behaviour="equivocate")
    assert r.conflicts and r.extra["double_spent_coins"] >= 1
    assert sorted(sorted(nodes) for _, nodes in r.conflicts[0]["values"]) == [[2], [3]]
