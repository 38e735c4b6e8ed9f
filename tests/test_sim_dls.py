"""DLS (Dwork, Lynch & Stockmeyer, "Consensus in the Presence of Partial Synchrony", JACM
1988): the rounds of Algorithm 1 (3.2.1, fail-stop/omission, N >= 2t + 1) and Algorithm 2
(3.2.2, authenticated Byzantine, N >= 3t + 1) as step tables; the scenarios, GST
included; and seeded fuzzing with Lemma 3.2 checked after every event.
"""

import random

import pytest

from minichain.sim import Broadcast, Decide, Exponential, Network, Send, SetTimer, Simulation
from minichain.sim.engines import load_registry
from minichain.sim.engines import dls
from minichain.sim.engines.dls import DLS, Ack, Batch, CatchUp, Claim, Commit, Decided, Lock, LockAnnounce, Report
from minichain.sim.workload import ClientRequest, Payment, schedule_payments

R = 0.1          # round_time: four rounds to a phase


def pay(i, payee=None):
    return Payment(0, i, f"c0.{i}", payee or f"payee{i}")


def batch(*payments):
    """The value an instance decides: a batch of payments (oldest first)."""
    return Batch(tuple(payments))


def node(n, i, *, byzantine=False, pending=()):
    sim = Simulation(n, lambda ctx: DLS(ctx, byzantine=byzantine), seed=0)
    e = sim.engines[i]
    for p in pending:
        e.on_message(-1, ClientRequest(p))
    return e


def at_round(e, r):
    """Advance the node's round clock to round r (rounds count from 0; phase = r // 4 + 1)."""
    actions = e.on_timer(("round", r))
    assert isinstance(actions[0], SetTimer) and actions[0].name == ("round", r + 1)
    return actions[1:]


def reports(phase, slot, value, signers):
    return tuple(Report(s, phase, slot, frozenset([value])) for s in signers)


# -- the phase owner and the four rounds (3.2.1) --------------------------------------------


def test_3_2_1_phase_k_belongs_to_node_k_mod_n():
    e = node(4, 0)
    assert [e.owner(k) for k in range(1, 9)] == [1, 2, 3, 0, 1, 2, 3, 0]


def test_round_1_every_node_sends_the_owner_its_acceptable_proper_values():
    e = node(3, 1, pending=[pay(1), pay(0)])
    # Round 4 starts phase 2, which belongs to node 2. The report carries the PROPER set.
    both = frozenset([pay(0), pay(1)])
    assert at_round(e, 4) == [Send(2, Report(1, 2, 0, both, both))]
    # A node with nothing proper sends nothing.
    assert at_round(node(3, 0), 4) == []


def test_round_1_a_locked_node_finds_only_its_locked_value_acceptable():
    e = node(3, 1, pending=[pay(0), pay(1)])
    e.lock = Lock(0, 3, 0, batch(pay(1)))
    e.extra_proper.add(pay(1))
    assert at_round(e, 4) == [Send(2, Report(1, 2, 0, frozenset([batch(pay(1))]), frozenset([pay(0), pay(1)])))]


def test_round_2_an_owner_with_N_minus_t_reports_for_v_broadcasts_lock_v():
    e = node(3, 2, pending=[pay(0)])
    at_round(e, 4)
    e.on_message(2, Report(2, 2, 0, frozenset([pay(0), pay(1)])))
    e.on_message(0, Report(0, 2, 0, frozenset([pay(0)])))
    # The omission version's lock carries no proof, only the owner's PROPER set.
    assert at_round(e, 5) == [Broadcast(Lock(2, 2, 0, batch(pay(0)), (), frozenset([pay(0)])), include_self=True)]


def test_batching_the_owner_locks_one_batch_of_the_oldest_payments_one_set_of_N_minus_t_reports_lists():
    # n = 4, t = 1 (omission version: N - t = 3). Reports from 0, 1, 2 list pay 0..2; 3's
    # lacks pay(1); only 1 and 3 have pay(3); c0.0 is paid twice (a client's double spend).
    e = node(4, 2, pending=[pay(0)])
    at_round(e, 4)
    spend = Payment(0, 9, "c0.0", "someone-else")
    e.on_message(0, Report(0, 2, 0, frozenset([pay(0), pay(1), pay(2), spend])))
    e.on_message(1, Report(1, 2, 0, frozenset([pay(0), pay(1), pay(2), pay(3)])))
    e.on_message(2, Report(2, 2, 0, frozenset([pay(0), pay(1), pay(2), spend])))
    e.on_message(3, Report(3, 2, 0, frozenset([pay(0), pay(2), pay(3)])))
    [lock] = at_round(e, 5)
    assert lock.msg.value == batch(pay(0), pay(1), pay(2))
    # A node locked on a batch reports it alone; a batch that everyone locked or lists wins.
    e = node(4, 2, pending=[pay(0)])
    at_round(e, 4)
    locked = batch(pay(0), pay(1))
    e.on_message(0, Report(0, 2, 0, frozenset([locked])))
    e.on_message(1, Report(1, 2, 0, frozenset([pay(0), pay(1), pay(2)])))
    e.on_message(2, Report(2, 2, 0, frozenset([pay(0), pay(1), pay(2)])))
    [lock] = at_round(e, 5)
    assert lock.msg.value == locked


def test_batching_a_decided_batch_appends_its_payments_at_consecutive_log_positions():
    e = node(3, 0)
    assert e.on_message(1, Decided((Claim(1, 0, batch(pay(0), pay(1)), 2),))) == [Decide(0, pay(0)), Decide(1, pay(1))]
    assert e.on_message(1, Decided((Claim(1, 1, batch(pay(2)), 3),))) == [Decide(2, pay(2))]
    assert e.slot == 2 and not e.proper(pay(1)) and not e.proper(Payment(0, 7, "c0.1", "again"))


def test_batching_a_lock_on_a_batch_spending_one_coin_twice_is_refused():
    e = node(3, 0, pending=[pay(0)])
    at_round(e, 4)
    at_round(e, 5)
    assert e.on_message(2, Lock(2, 2, 0, batch(pay(0), Payment(0, 9, "c0.0", "twice")))) == []
    assert e.lock is None
    # ...and an owner does not propose one, even if a report claims to be locked on it.
    owner = node(3, 2, pending=[pay(0)])
    at_round(owner, 4)
    twice = Payment(0, 9, "c0.0", "twice")                  # a client's double spend, to all
    owner.on_message(0, Report(0, 2, 0, frozenset([batch(pay(0), twice)])))
    owner.on_message(1, Report(1, 2, 0, frozenset([pay(0), twice])))
    owner.on_message(2, Report(2, 2, 0, frozenset([pay(0), twice])))
    [lock] = at_round(owner, 5)
    assert lock.msg.value == batch(pay(0))


def test_3_2_1_proper_sets_piggyback_a_node_that_missed_a_client_learns_the_value_from_a_lock():
    e = node(3, 0)
    at_round(e, 4)
    at_round(e, 5)
    e.on_message(2, Lock(2, 2, 0, pay(0), (), frozenset([pay(0), pay(1)])))
    assert e.proper(pay(1)) and e.proper(pay(0))
    # In the Byzantine version it takes t + 1 nodes to make a value proper.
    b = node(4, 0, byzantine=True)
    b.on_message(3, Report(3, 1, 0, frozenset(), frozenset([pay(5)])))
    assert not b.proper(pay(5))
    b.on_message(2, Report(2, 1, 0, frozenset(), frozenset([pay(5)])))
    assert b.proper(pay(5))


def test_round_2_an_owner_short_of_N_minus_t_reports_proposes_nothing():
    e = node(5, 2, pending=[pay(0)])
    at_round(e, 4)
    e.on_message(2, Report(2, 2, 0, frozenset([pay(0)])))
    e.on_message(0, Report(0, 2, 0, frozenset([pay(0)])))
    e.on_message(1, Report(1, 2, 0, frozenset([pay(1)])))      # three reports, but only two for pay(0)
    assert at_round(e, 5) == []


def test_round_2_a_node_locks_the_owners_value_acknowledges_it_and_ignores_a_second_lock():
    e = node(3, 0, pending=[pay(0)])
    at_round(e, 4)
    at_round(e, 5)
    assert e.on_message(2, Lock(2, 2, 0, pay(0))) == [Send(2, Ack(0, 2, 0, pay(0)))]
    assert e.lock == Lock(2, 2, 0, pay(0))
    assert e.on_message(2, Lock(2, 2, 0, pay(1))) == []              # one lock per phase
    assert e.on_message(1, Lock(1, 2, 0, pay(1))) == []              # not phase 2's owner


def test_round_3_the_owner_decides_on_t_plus_1_acks_and_claims_it():
    e = node(3, 2, pending=[pay(0)])
    at_round(e, 4)
    e.on_message(2, Report(2, 2, 0, frozenset([pay(0)])))
    e.on_message(0, Report(0, 2, 0, frozenset([pay(0)])))
    at_round(e, 5)
    v = batch(pay(0))
    e.on_message(2, Lock(2, 2, 0, v))
    assert e.on_message(2, Ack(2, 2, 0, v)) == []                   # 1 of t + 1 = 2
    actions = e.on_message(0, Ack(0, 2, 0, v))
    assert actions == [Decide(0, pay(0)), Broadcast(Decided((Claim(2, 0, v, 2),)))]
    assert e.slot == 1 and e.lock is None, "one claim settles a slot in the omission version"


@pytest.mark.parametrize(
    "story, mine, announced, released",
    [
        ("w from a later phase", Lock(1, 5, 0, "v"), Lock(2, 6, 0, "w"), True),
        ("w from the same phase (h' >= h)", Lock(1, 5, 0, "v"), Lock(1, 5, 0, "w"), True),
        ("w from an earlier phase", Lock(1, 5, 0, "v"), Lock(0, 4, 0, "w"), False),
        ("the same value", Lock(1, 5, 0, "v"), Lock(2, 6, 0, "v"), False),
        ("a lock its phase's owner did not issue", Lock(1, 5, 0, "v"), Lock(0, 6, 0, "w"), False),
    ],
)
def test_round_4_lock_release_table(story, mine, announced, released):
    e = node(4, 3)
    e.lock = mine
    assert e.on_message(0, LockAnnounce(announced)) == []
    assert (e.lock is None) == released, story


# -- the authenticated Byzantine version (3.2.2) --------------------------------------------


def test_3_2_2_a_lock_needs_N_minus_t_signed_reports_for_its_value():
    e = node(4, 0, byzantine=True, pending=[pay(0)])
    at_round(e, 4)
    at_round(e, 5)
    short = Lock(2, 2, 0, pay(0), reports(2, 0, pay(0), [1, 2]))
    wrong_phase = Lock(2, 2, 0, pay(0), reports(1, 0, pay(0), [0, 1, 2]))
    assert e.on_message(2, short) == [] and e.on_message(2, wrong_phase) == []
    good = Lock(2, 2, 0, pay(0), reports(2, 0, pay(0), [0, 1, 3]))
    assert e.on_message(2, good) == [Send(2, Ack(0, 2, 0, pay(0)))]


def test_3_2_2_the_owner_decides_on_2t_plus_1_acks_and_2t_plus_1_commits_make_the_certificate():
    e = node(4, 2, byzantine=True, pending=[pay(0)])
    at_round(e, 4)
    for s in (0, 1, 2):
        e.on_message(s, Report(s, 2, 0, frozenset([pay(0)])))
    [lock] = at_round(e, 5)
    v = batch(pay(0))
    assert lock.msg.value == v
    e.on_message(2, lock.msg)
    e.on_message(2, Ack(2, 2, 0, v))
    assert e.on_message(0, Ack(0, 2, 0, v)) == []                   # 2 of 2t + 1 = 3
    actions = e.on_message(1, Ack(1, 2, 0, v))
    acks = tuple(Ack(s, 2, 0, v) for s in (0, 1, 2))
    # 3.2.2: the owner decides, and shows the acknowledgements to the lock holders.
    assert actions == [Decide(0, pay(0)), Broadcast(Decided((Claim(2, 0, v, 2, acks),)))]
    assert e.slot == 0 and e.lock_committed, "acknowledgements settle nothing; the owner commits itself"
    # A node that holds that lock commits to it; acknowledgements alone do not settle it.
    f = node(4, 0, byzantine=True)
    at_round(f, 4)
    at_round(f, 5)
    f.on_message(2, lock.msg)
    assert f.on_message(2, actions[1].msg) == [Send(2, Commit(0, 0, 2, v))]
    assert f.slot == 0 and f.lock_committed
    # 2t + 1 commits (its own among them): the owner broadcasts the certificate and moves on.
    assert e.on_message(0, Commit(0, 0, 2, v)) == []
    actions = e.on_message(1, Commit(1, 0, 2, v))
    commits = tuple(Commit(s, 0, 2, v) for s in (0, 1, 2))
    assert actions == [Broadcast(Decided((Claim(2, 0, v, 2, commits),)))] and e.slot == 1
    # Every node settles on that one claim.
    assert f.on_message(2, actions[0].msg) == [Decide(0, pay(0))] and f.slot == 1
    g = node(4, 3, byzantine=True)
    assert g.on_message(2, actions[0].msg) == [Decide(0, pay(0))] and g.slot == 1


def test_3_2_2_a_node_commits_only_to_the_lock_it_holds():
    v, w = batch(pay(0)), batch(pay(1))
    acks = tuple(Ack(s, 2, 0, v) for s in (0, 1, 2))
    f = node(4, 3, byzantine=True)
    at_round(f, 4)
    at_round(f, 5)
    assert f.on_message(2, Decided((Claim(2, 0, v, 2, acks),))) == []          # no lock at all
    f.on_message(2, Lock(2, 2, 0, w))
    assert f.on_message(2, Decided((Claim(2, 0, v, 2, acks),))) == []          # a lock on another value
    assert not f.lock_committed


@pytest.mark.parametrize(
    "story, mine, announced, released, shown",
    [
        ("w from the same phase", Lock(1, 5, 0, "v"), Lock(1, 5, 0, "w"), False, True),
        ("w from an earlier phase", Lock(1, 5, 0, "v"), Lock(0, 4, 0, "w"), False, True),
        ("w from a later phase", Lock(1, 5, 0, "v"), Lock(2, 6, 0, "w"), True, False),
        ("the same value", Lock(1, 5, 0, "v"), Lock(1, 5, 0, "v"), False, False),
    ],
)
def test_3_2_2_a_committed_lock_yields_only_to_a_later_phase_and_is_shown_to_other_holders(
        story, mine, announced, released, shown):
    e = node(4, 3)                   # the omission version: a lock needs no signed reports here
    e.lock, e.lock_committed = mine, True
    answer = e.on_message(0, LockAnnounce(announced))
    assert (e.lock is None) == released, story
    assert answer == ([Send(0, LockAnnounce(mine))] if shown else []), story
    assert e.on_timer(("round", 3))[1:] == [], "a committed lock is not announced to everyone"


@pytest.mark.parametrize(
    "story, proof",
    [
        ("2t + 1 acks but no commit", (Ack(0, 2, 0, "v"), Ack(1, 2, 0, "v"), Ack(3, 2, 0, "v"))),
        ("2t commits", (Commit(0, 0, 2, "v"), Commit(1, 0, 2, "v"))),
        ("one signer twice", (Commit(0, 0, 2, "v"), Commit(1, 0, 2, "v"), Commit(1, 0, 2, "v"))),
        ("a commit of another phase", (Commit(0, 0, 2, "v"), Commit(1, 0, 2, "v"), Commit(3, 0, 6, "v"))),
        ("a commit of another value", (Commit(0, 0, 2, "v"), Commit(1, 0, 2, "v"), Commit(3, 0, 2, "w"))),
        ("a commit of another slot", (Commit(0, 0, 2, "v"), Commit(1, 0, 2, "v"), Commit(3, 1, 2, "v"))),
    ],
)
def test_3_2_2_a_claim_whose_certificate_falls_short_settles_nothing(story, proof):
    f = node(4, 2, byzantine=True)
    assert f.on_message(3, Decided((Claim(3, 0, "v", 2, proof),))) == [], story
    assert f.slot == 0


def test_3_2_2_a_liars_bare_claim_does_not_shadow_the_certified_one_it_sends_later():
    v = batch(pay(0))
    proof = (Commit(0, 0, 2, v), Commit(1, 0, 2, v), Commit(2, 0, 2, v))
    f = node(4, 1, byzantine=True)
    assert f.on_message(3, Decided((Claim(3, 0, v),))) == []
    assert f.on_message(3, Decided((Claim(3, 0, v, 2, proof),))) == [Decide(0, pay(0))]


def test_3_2_2_uncertified_claims_need_t_plus_1_signers():
    # One claim is not enough (it may be a liar's), two distinct signers are.
    f = node(4, 0, byzantine=True)
    assert f.on_message(2, Decided((Claim(2, 0, pay(0)),))) == []
    assert f.on_message(3, Decided((Claim(3, 0, pay(0, "mallory")),))) == []
    assert f.on_message(1, Decided((Claim(1, 0, pay(0)),))) == [Decide(0, pay(0))]
    assert f.slot == 1


def test_3_2_2_an_announced_lock_without_its_proof_releases_nothing():
    e = node(4, 3, byzantine=True)
    e.lock = Lock(1, 5, 0, "v", reports(5, 0, "v", [0, 1, 3]))
    assert e.on_message(0, LockAnnounce(Lock(2, 6, 0, "w", reports(6, 0, "w", [0])))) == []
    assert e.lock is not None
    e.on_message(0, LockAnnounce(Lock(2, 6, 0, "w", reports(6, 0, "w", [0, 1, 2]))))
    assert e.lock is None


def test_a_node_behind_asks_one_ahead_which_answers_with_the_claims_it_holds():
    ahead = node(3, 0)
    ahead.on_message(1, Decided((Claim(1, 0, pay(0)),)))
    ahead.on_message(1, Decided((Claim(1, 1, pay(1)),)))
    assert ahead.slot == 2
    behind = node(3, 2)
    at_round(behind, 4)
    at_round(behind, 5)
    assert behind.on_message(0, Report(0, 2, 2, frozenset([pay(2)]))) == [Send(0, CatchUp(0))]
    answer = ahead.on_message(2, CatchUp(0))
    assert answer == [Send(2, Decided((Claim(1, 0, pay(0)), Claim(1, 1, pay(1)))))]
    assert behind.on_message(0, answer[0].msg) == [Decide(0, pay(0)), Decide(1, pay(1))]


def test_everything_is_durable_a_recovered_node_keeps_its_lock_and_resumes_at_the_next_round():
    sim = Simulation(3, lambda ctx: DLS(ctx), seed=0)
    e = sim.engines[1]
    e.lock = Lock(2, 2, 0, pay(0))
    sim.run(until=1.03)
    sim.crash(1)
    sim.run(until=2.57)
    sim.recover(1)
    assert e.lock == Lock(2, 2, 0, pay(0))
    assert sim._timers[1] and list(sim._timers[1]) == [("round", 26)]


# -- scenarios -------------------------------------------------------------------------------


def run(engine, n, seed=1, *, until=15.0, payments=10, interval=0.5, start=1.0, latency=0.05,
        behaviours=None, setup=None, check=None, **netargs):
    behaviours = behaviours or {}
    build = dls.build_byzantine if engine == "dls-byz" else dls.build
    net = Network(latency, **netargs)
    sim = Simulation(n, lambda ctx: build(ctx, behaviours.get(ctx.node_id)), seed=seed, network=net)
    if payments:
        schedule_payments(sim, payments, interval, start=start)
    if setup:
        setup(sim)
    sim.run(until=until, stop_when=check)
    return sim


def decided(sim, i):
    return list(sim.decisions.committed(i).values())


ALL10 = [pay(k) for k in range(10)]


@pytest.mark.parametrize("engine, n", [("dls", 3), ("dls", 5), ("dls-byz", 4), ("dls-byz", 7)])
def test_normal_every_payment_is_decided_in_order_by_every_node(engine, n):
    sim = run(engine, n)
    r = sim.result()
    assert r.safe and not r.reversals
    for i in range(n):
        assert decided(sim, i) == ALL10


def test_dls_n5_crash_minority_3_and_4_their_phases_pass_idle_the_rest_decide():
    sim = run("dls", 5, setup=lambda s: (s.at(2.0, s.crash, 3), s.at(2.0, s.crash, 4)))
    assert sim.result().safe
    for i in (0, 1, 2):
        assert decided(sim, i) == ALL10


def test_dls_byz_n4_crash_one_node_the_other_three_still_decide():
    sim = run("dls-byz", 4, setup=lambda s: s.at(2.0, s.crash, 1))
    assert sim.result().safe
    for i in (0, 2, 3):
        assert decided(sim, i) == ALL10


def test_dls_n5_crash_majority_stalls_safely_until_node_4_recovers_with_its_locks():
    def setup(sim):
        for k in (2, 3, 4):
            sim.at(2.0, sim.crash, k)
        sim.at(8.0, sim.recover, 4)

    sim = run("dls", 5, setup=setup)
    assert [d for d in sim.decisions.records if 2.2 < d.time < 8.0] == []
    r = sim.result()
    assert r.safe and not r.reversals
    assert decided(sim, 0) == ALL10 and decided(sim, 4) == ALL10


def test_dls_n5_partition_majority_012_decides_minority_34_stalls_and_catches_up_after_heal():
    def setup(sim):
        sim.at(0.9, sim.net.partition, [[0, 1, 2], [3, 4]])
        sim.at(6.0, sim.net.heal)

    sim = run("dls", 5, setup=setup)
    during = {d.node for d in sim.decisions.records if 1.0 < d.time < 6.0}
    assert during == {0, 1, 2}
    assert sim.result().safe
    for i in range(5):
        assert decided(sim, i) == ALL10


@pytest.mark.parametrize("engine", ["dls", "dls-byz"])
def test_n4_even_split_01_23_decides_nothing_then_heals(engine):
    def setup(sim):
        sim.at(0.9, sim.net.partition, [[0, 1], [2, 3]])
        sim.at(6.0, sim.net.heal)

    sim = run(engine, 4, setup=setup, until=20.0)
    assert [d for d in sim.decisions.records if 1.0 < d.time < 6.0] == []
    assert sim.result().safe
    assert decided(sim, 0) == ALL10


@pytest.mark.parametrize("engine, n", [("dls", 5), ("dls-byz", 4), ("dls-byz", 7)])
def test_gst_before_gst_messages_miss_their_rounds_after_gst_decisions_come_within_the_bound(engine, n):
    # Messages sent before GST are held up to 3 s (never past GST): each misses its phase.
    gst = 6.0
    sim = run(engine, n, setup=lambda s: s.net.asynchronous_until(gst, 3.0), until=20.0)
    r = sim.result()
    assert r.safe
    assert [d for d in sim.decisions.records if d.time < gst] == []
    first = min(d.time for d in sim.decisions.records)
    # 3.2.1: "all correct processors make decisions by round GST + 4(N + 1)".
    assert first <= gst + 4 * (n + 1) * R
    slot0 = [d.time for d in sim.decisions.records if d.slot == 0]
    assert len(slot0) == n and max(slot0) <= gst + 4 * (n + 1) * R
    for i in range(n):
        assert decided(sim, i) == ALL10


# -- Byzantine -------------------------------------------------------------------------------


def test_byzantine_dls_omission_version_n3_one_liar_claims_a_double_spend_and_it_is_believed():
    sim = run("dls", 3, behaviours={2: "lie"})
    r = sim.result()
    assert r.conflicts
    assert any("mallory" in str(v) for v, _ in r.conflicts[0]["values"])


@pytest.mark.parametrize("behaviour", ["lie", "equivocate"])
def test_byzantine_dls_byz_n4_one_liar_t1_stays_safe_and_live(behaviour):
    for seed in range(3):
        sim = run("dls-byz", 4, seed, behaviours={3: behaviour})
        r = sim.result()
        assert r.safe and not r.reversals
        for i in (0, 1, 2):
            assert decided(sim, i) == ALL10


def test_byzantine_dls_byz_n7_two_liars_t2_stay_safe_and_live():
    sim = run("dls-byz", 7, behaviours={5: "equivocate", 6: "lie"})
    r = sim.result()
    assert r.safe
    for i in range(5):
        assert decided(sim, i) == ALL10


def late_certificate_run(seed, n=4, attackers=(0,)):
    """A ``late-certificate`` owner (issue 21) among a burst of payments, so that its phases
    have batches to split."""
    net = Network(Exponential(0.03, 0.01))
    coalition = frozenset(attackers)
    sim = Simulation(n, lambda ctx: dls.build_byzantine(
        ctx, "late-certificate" if ctx.node_id in coalition else None, coalition=coalition), seed=seed, network=net)
    payments = schedule_payments(sim, 30, 0.05, start=0.3)
    sim.run(until=12.0)
    return sim, payments


def test_byzantine_dls_byz_n4_late_certificate_owner_splits_the_locks_but_its_certificate_settles_nothing():
    # The owner sends two locks of one phase, keeps the 2t + 1 acknowledgements of one
    # back and hands them to a correct node once a later owner locked another value.
    # Settling on acknowledgements, this split the slot in 3 runs of 4; a certificate of
    # commits cannot be made from them, since the holders released the lock.
    attacks = 0
    for seed in range(60):
        for owner in (0, 2):
            sim, payments = late_certificate_run(seed, attackers=(owner,))
            r = sim.result()
            assert r.safe and not r.reversals, (seed, owner, r.conflicts)
            for i in sim.honest:
                assert decided(sim, i) == payments, (seed, owner, i)
            attacker = sim.engines[owner]
            attacks += len(attacker.handed)          # split, kept back, handed out
    assert attacks >= 100


def test_byzantine_dls_byz_n7_two_late_certificate_owners_split_nothing():
    for seed in range(20):
        sim, payments = late_certificate_run(seed, n=7, attackers=(0, 3))
        r = sim.result()
        assert r.safe and not r.reversals, (seed, r.conflicts)
        assert all(decided(sim, i) == payments for i in sim.honest), seed


def test_dls_byz_n4t1_safety_and_liveness_across_60_seeded_fault_mixes():
    # The mix of the BFT engines (tests/simfaults.py): up to t liars, equivocators,
    # late-certificate owners or silent nodes, loss up to 30%, a partition, a crash; all
    # over by 12 s. Every honest node commits all 20 payments by 120 s.
    from tests.simfaults import committed_counts, random_fault_run

    behaviours = ("silent", "lie", "equivocate", "late-certificate")
    for seed in range(60):
        sim = random_fault_run(dls.build_byzantine, seed, 4, until=120.0, behaviours=behaviours)
        r = sim.result()
        assert r.safe and not r.reversals, (seed, r.conflicts[:1])
        assert committed_counts(sim) == [20, 20, 20], (seed, committed_counts(sim))


def test_byzantine_dls_byz_n4_two_liars_exceed_t_and_their_claims_break_safety():
    # N = 4 tolerates t = 1: two liars make the t + 1 = 2 claims a node trusts.
    sim = run("dls-byz", 4, behaviours={2: "lie", 3: "lie"})
    assert sim.result().conflicts


def test_byzantine_dls_byz_a_client_double_spend_to_all_replicas_commits_one_of_the_two():
    a, b = Payment(9, 0, "c9", "alice"), Payment(9, 0, "c9", "bob")

    def setup(sim):
        for i in range(4):
            sim.at(1.0, sim.submit, i, ClientRequest(a if i < 2 else b), -1)
            sim.at(1.3, sim.submit, i, ClientRequest(b if i < 2 else a), -1)

    sim = run("dls-byz", 4, payments=0, behaviours={3: "equivocate"}, setup=setup, until=6.0)
    assert sim.result().safe
    spent = {v for i in range(3) for v in decided(sim, i)}
    assert len(spent & {a, b}) == 1


def test_the_registry_has_both_versions_beside_their_fault_models():
    reg = load_registry()
    assert (reg["dls"].family, reg["dls"].fault_model, reg["dls"].max_faults(5)) == ("partial synchrony", "crash", 2)
    assert (reg["dls-byz"].fault_model, reg["dls-byz"].max_faults(7)) == ("byzantine", 2)


def test_same_seed_same_result_byte_for_byte():
    def go(seed):
        return run("dls-byz", 4, seed, behaviours={3: "equivocate"}, loss=0.05, fifo=False,
                   latency=0.03).result().to_json()

    assert go(3) == go(3)
    assert go(3) != go(4)


# -- Lemma 3.2 after every event, under seeded random faults --------------------------------


class LockInvariant:
    """Lemma 3.2 / 3.5: once a correct owner decides v at phase k for a slot, no correct
    node ever holds a lock on another value for that slot from phase k or later."""

    def __init__(self):
        self.first = {}          # slot -> (value, phase) of the earliest owner decision seen
        self.checks = 0

    def __call__(self, sim):
        self.checks += 1
        honest = [e for e in sim.engines if isinstance(e, DLS) and getattr(e, "honest", True)]
        for e in honest:
            for slot, (value, phase) in e.owner_decisions.items():
                known = self.first.get(slot)
                if known is None or phase < known[1]:
                    self.first[slot] = (value, phase)
                if known is not None:
                    assert known[0] == value, f"slot {slot}: owners decided {known[0]} and {value}"
        for e in honest:
            lock = e.lock
            if lock is not None and lock.slot in self.first:
                value, phase = self.first[lock.slot]
                assert lock.phase < phase or lock.value == value, f"lock {lock} after decision {value}@{phase}"
        return False


def random_faults(sim, rng, n, t, until):
    """At most t nodes crashed at once; partitions, isolations, and sometimes a late GST."""
    if rng.random() < 0.3:
        sim.net.asynchronous_until(rng.uniform(2.0, 6.0), rng.uniform(0.2, 3.0))
    t_ = 1.0
    while t_ < until - 4.0:
        t_ += rng.uniform(0.5, 2.5)
        kind = rng.random()
        if kind < 0.4 and t > 0:
            victim = rng.randrange(n)
            sim.at(t_, sim.crash, victim)
            sim.at(t_ + rng.uniform(0.3, 3.0), sim.recover, victim)
        elif kind < 0.7:
            nodes = list(range(n))
            rng.shuffle(nodes)
            cut = rng.randrange(1, n)
            sim.at(t_, sim.net.partition, [nodes[:cut], nodes[cut:]])
            sim.at(t_ + rng.uniform(0.5, 3.0), sim.net.heal)
        else:
            sim.at(t_, sim.net.isolate, rng.randrange(n))
            sim.at(t_ + rng.uniform(0.3, 2.0), sim.net.heal)


def fuzz(engine, seed):
    rng = random.Random(seed)
    until = 20.0
    if engine == "dls":
        n = rng.choice([3, 5])
        t = (n - 1) // 2
        behaviours = {}
    else:
        n = rng.choice([4, 7])
        t = (n - 1) // 3
        liars = rng.sample(range(n), rng.randint(0, t))
        behaviours = {i: rng.choice(["lie", "equivocate"]) for i in liars}
    check = LockInvariant()
    sim = run(
        engine, n, seed, until=until, payments=15, interval=0.4, behaviours=behaviours, check=check,
        setup=lambda s: random_faults(s, rng, n, t, until),
        loss=rng.choice([0.0, 0.02, 0.1]), fifo=rng.random() < 0.5, duplicate=rng.choice([0.0, 0.02]),
    )
    r = sim.result()
    assert r.safe and not r.reversals, (engine, seed, r.conflicts)
    return sim, check


@pytest.mark.parametrize("engine", ["dls", "dls-byz"])
@pytest.mark.parametrize("seed", range(10))
def test_fuzz_lemma_3_2_after_every_event_with_crashes_partitions_loss_reordering_gst_and_liars(engine, seed):
    sim, check = fuzz(engine, seed)
    assert check.checks > sim.events // 2
    assert sim.result().decided_slots > 0


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["dls", "dls-byz"])
def test_fuzz_200_seeds_never_two_values_at_one_slot(engine):
    decided_slots = 0
    for seed in range(1000, 1200):
        sim, _ = fuzz(engine, seed)
        decided_slots += sim.result().decided_slots
    assert decided_slots > 200 * 3


# -- through the scenario harness (sim/scenarios/replicated.py) ------------------------------

from minichain.sim.scenarios import replicated  # noqa: E402


@pytest.mark.parametrize("engine, n", [("dls", 5), ("dls-byz", 4)])
def test_harness_normal_loss_and_skew_are_safe_and_commit(engine, n):
    for scenario in ("normal", "loss", "skew"):
        r = replicated.run(engine, scenario, n=n, seed=1)
        assert r.safe and not r.reversals, scenario
        assert r.extra["committed"] > 0, scenario


def test_harness_dls_skewed_clocks_converge_on_one_phase_and_every_payment_commits():
    r = replicated.run("dls", "skew", n=5, seed=1)
    assert r.safe and r.extra["committed"] == r.extra["submitted"]


@pytest.mark.parametrize("engine, n", [("dls", 5), ("dls-byz", 4)])
def test_harness_crash_f_stays_live_crash_f_plus_1_stalls_safely(engine, n):
    live = replicated.run(engine, "crash", n=n, seed=1)
    assert live.safe and not live.extra["stalled"]
    f = load_registry()[engine].max_faults(n)
    dead = replicated.run(engine, "crash", n=n, seed=1, faulty=f + 1)
    assert dead.safe and dead.extra["stalled"]


@pytest.mark.parametrize("engine", ["dls", "dls-byz"])
def test_harness_even_split_n4_stalls_and_heals_quorum_side_keeps_deciding(engine):
    even = replicated.run(engine, "partition", n=4, seed=1, split="even")
    assert even.safe and even.extra["stalled"] and even.extra["decided_after_fault"] > 0
    side = replicated.run(engine, "partition", n=5 if engine == "dls" else 7, seed=1, split="quorum")
    assert side.safe and not side.extra["stalled"]


@pytest.mark.parametrize("engine, n", [("dls", 5), ("dls-byz", 4)])
def test_harness_gst_stalls_until_gst_then_decides(engine, n):
    r = replicated.run(engine, "gst", n=n, seed=1)
    assert r.safe and r.extra["stalled"] and r.extra["decided_after_fault"] > 0


def test_harness_byzantine_breaks_the_omission_version_not_the_authenticated_one():
    for behaviour in ("lie", "equivocate"):
        assert replicated.run("dls", "byzantine", n=5, seed=1, behaviour=behaviour).conflicts
        byz = replicated.run("dls-byz", "byzantine", n=7, seed=1, behaviour=behaviour)
        assert byz.safe and byz.extra["committed"] > 0


def test_synchronizer_a_node_whose_clock_lags_jumps_to_the_phase_t_plus_1_nodes_are_in():
    # Omission version: one node seen in a later phase is enough (nobody lies).
    e = node(3, 0, pending=[pay(0)])
    at_round(e, 4)                                       # phase 2
    actions = e.on_message(1, Lock(1, 4, 0, pay(0)))     # phase 4's owner is already locking
    assert e.phase == 4 and e.step == 0
    assert Send(1, Ack(0, 4, 0, pay(0))) in actions      # ...and the lock is taken in phase 4
    # Authenticated version: a single node (perhaps a liar) cannot rush it; t + 1 can.
    b = node(4, 0, byzantine=True)
    at_round(b, 4)
    b.on_message(3, Ack(3, 9, 0, pay(0)))
    assert b.phase == 2
    b.on_message(2, Ack(2, 7, 0, pay(0)))
    assert b.phase == 7, "the (t + 1)-th highest phase seen: one correct node is there"


def test_harness_dls_byz_n4_fault_free_commits_every_payment_one_phase_after_it_arrives():
    # Before certificates a slot took t + 1 owner phases (0.8 s) against a payment every
    # 0.5 s: 49 of 70 committed in the comparison's run, with a growing backlog.
    for r in (replicated.run("dls-byz", "normal", n=4, seed=1),
              replicated.run("dls-byz", "normal", n=4, seed=1, duration=40.0)):
        assert r.safe and r.extra["committed"] == r.extra["submitted"]
        assert r.extra["latency_p50"] <= 4 * R


@pytest.mark.parametrize("n", [4, 10])
def test_harness_dls_byz_fault_free_costs_6_n_minus_1_messages_per_decision(n):
    # Report, lock, ack, the owner's claim with the acks, commit and the claim with the
    # commits: linear in n (the certificates grow instead). A committed lock is shown on
    # demand, so a fault-free phase has no lock-release traffic.
    r = replicated.run("dls-byz", "normal", n=n, seed=1, duration=15.0)
    assert r.extra["committed"] == r.extra["submitted"]
    assert r.messages_per_decision == pytest.approx(6 * (n - 1), rel=0.05)
    assert "LockAnnounce" not in r.messages["sent_by_type"]


@pytest.mark.parametrize("engine", ["dls", "dls-byz"])
@pytest.mark.parametrize("scenario, options", [
    ("crash", {}), ("loss", {"loss": 0.30}), ("gst", {}), ("skew", {}),
])
def test_harness_n4_batches_clear_the_backlog_a_lost_phase_leaves(engine, scenario, options):
    # One payment per phase at most (2.5/s against 2/s) used to leave a backlog after any
    # lost phase: e.g. dls 56/70 with a crashed node, 42/70 with 30% loss, 46/70 after GST.
    r = replicated.run(engine, scenario, n=4, seed=1, duration=40.0, fault_at=5.0, heal_at=20.0, **options)
    assert r.safe and r.extra["committed"] == r.extra["submitted"]
