"""PBFT (Castro & Liskov, OSDI 1999): a step table of the paper's rules, then scenarios.

The step-table tests feed one replica messages by hand and assert the exact actions it
returns; each is named after the section of the paper whose rule it checks. The scenario
tests run whole networks and are named after the nodes and the faults in them.
"""


import pytest

from minichain.sim import Broadcast, CancelTimer, Decide, Exponential, Network, Send, SetTimer, Simulation
from minichain.sim.engines import BEHAVIOURS, REGISTRY, load_registry
from minichain.sim.engines import pbft
from minichain.sim.engines.pbft import (
    NULL, Checkpoint, Commit, NewView, PBFTConfig, PrePrepare, Prepare, PreparedProof, Retransmit, StateTransfer, Status,
    ViewChange, checkpoint_proof_digest, compute_new_view, ledger_digest, view_change_ok,
)
from minichain.sim.scenarios import replicated
from minichain.sim.workload import CLIENT, ClientRequest, Payment, schedule_payments
from tests.simfaults import committed_counts, random_fault_run

P = [Payment(0, i, f"c0.{i}", f"payee{i}") for i in range(8)]
SMALL = PBFTConfig(request_timeout=2.0, checkpoint_interval=2, log_window=4, status_interval=0.5)


def replicas(n=4, config=None, behaviours=None):
    behaviours = behaviours or {}
    sim = Simulation(n, lambda ctx: pbft.build(ctx, behaviours.get(ctx.node_id), config), seed=0)
    return sim.engines


def feed(engine, *messages):
    """Deliver (src, msg) pairs; return every action, in order."""
    out = []
    for src, msg in messages:
        out += engine.on_message(src, msg)
    return out


def network_msgs(actions):
    return [a for a in actions if isinstance(a, (Send, Broadcast))]


def commit_seq(engine, seq, value, view=0, voters=(0, 2, 3)):
    """Drive ``engine`` (replica 1) through pre-prepare, prepares and commits of one request."""
    msgs = [(primary, PrePrepare(view, seq, value, primary)) for primary in [view % engine.n]]
    msgs += [(i, Prepare(view, seq, value, i)) for i in voters if i != view % engine.n]
    msgs += [(i, Commit(view, seq, value, i)) for i in voters]
    return feed(engine, *msgs)


# -- normal case (4.2) -------------------------------------------------------------------------


def test_4_2_primary_assigns_the_next_sequence_number_and_multicasts_pre_prepare():
    primary = replicas()[0]
    actions = primary.on_message(CLIENT, ClientRequest(P[0]))
    assert actions == [
        SetTimer("request", 2.0),
        Broadcast(PrePrepare(0, 1, P[0], 0)),
        SetTimer("status", 0.5),
    ]
    assert primary.on_message(CLIENT, ClientRequest(P[1]))[0] == Broadcast(PrePrepare(0, 2, P[1], 0))
    assert primary.on_message(CLIENT, ClientRequest(P[0])) == []          # a request already assigned


def test_4_2_backup_starts_its_request_timer_and_prepares_an_accepted_pre_prepare():
    backup = replicas()[1]
    assert backup.on_message(CLIENT, ClientRequest(P[0])) == [SetTimer("request", 2.0), SetTimer("status", 0.5)]
    assert backup.on_message(0, PrePrepare(0, 1, P[0], 0)) == [Broadcast(Prepare(0, 1, P[0], 1))]


def test_4_2_pre_prepare_is_ignored_from_a_backup_outside_the_watermarks_or_conflicting():
    backup = replicas(config=SMALL)[1]
    assert backup.on_message(2, PrePrepare(0, 1, P[0], 2)) == []          # not the primary of view 0
    assert backup.on_message(0, PrePrepare(0, 5, P[0], 0)) == []          # above H = h + L = 4
    assert backup.on_message(3, Prepare(0, 1, P[0], 2)) == []             # src is not the signer
    # Signed by the primary, a pre-prepare counts even when another replica relays it.
    assert network_msgs(backup.on_message(3, PrePrepare(0, 1, P[0], 0))) == [Broadcast(Prepare(0, 1, P[0], 1))]
    assert backup.on_message(0, PrePrepare(0, 1, P[1], 0)) == []          # a second digest for (v, n)


def test_4_2_prepared_with_pre_prepare_and_2f_prepares_then_multicasts_commit():
    backup = replicas()[1]
    feed(backup, (0, PrePrepare(0, 1, P[0], 0)))
    assert backup.on_message(0, Prepare(0, 1, P[0], 0)) == []             # the primary does not prepare
    assert backup.on_message(2, Prepare(0, 1, P[1], 2)) == []             # another digest
    assert backup.on_message(3, Prepare(0, 1, P[0], 3)) == [Broadcast(Commit(0, 1, P[0], 1))]
    cert = backup.prepared_certs[1]
    assert cert.pre_prepare == PrePrepare(0, 1, P[0], 0)
    assert [p.sender for p in cert.prepares] == [1, 3]


def test_4_2_committed_local_with_2f_plus_1_commits_executes_in_sequence_order():
    backup = replicas()[1]
    backup.on_message(CLIENT, ClientRequest(P[0]))
    backup.on_message(CLIENT, ClientRequest(P[1]))
    # Sequence number 2 commits first: nothing executes until 1 has.
    assert [a for a in commit_seq(backup, 2, P[1]) if isinstance(a, Decide)] == []
    actions = commit_seq(backup, 1, P[0])
    assert [a for a in actions if isinstance(a, Decide)] == [Decide(0, P[0]), Decide(1, P[1])]
    assert actions[-1] == CancelTimer("request")                          # no longer waiting (4.4)
    assert backup.ledger == [P[0], P[1]] and backup.last_exec == 2


def test_4_2_a_request_whose_coin_is_spent_or_a_null_request_is_ordered_but_not_paid():
    backup = replicas()[1]
    twin = pbft.conflicting_twin(P[0])
    decided = [a for a in commit_seq(backup, 1, P[0]) + commit_seq(backup, 2, NULL) + commit_seq(backup, 3, twin)
               if isinstance(a, Decide)]
    assert decided == [Decide(0, P[0])]
    assert backup.last_exec == 3 and backup.ledger == [P[0]]


# -- checkpoints and garbage collection (4.3) -------------------------------------------------


def test_4_3_checkpoint_every_k_requests_and_stable_after_2f_plus_1_discards_the_log():
    backup = replicas(config=SMALL)[1]
    commit_seq(backup, 1, P[0])
    actions = commit_seq(backup, 2, P[1])
    digest = ledger_digest(P[:2])
    assert Broadcast(Checkpoint(2, digest, 1)) in actions
    assert backup.stable_seq == 0
    assert feed(backup, (2, Checkpoint(2, digest, 2))) == []
    feed(backup, (3, Checkpoint(2, digest, 3)))
    assert backup.stable_seq == 2 and [c.sender for c in backup.stable_proof] == [1, 2, 3]
    assert not any(seq <= 2 for _, seq in backup.pre_prepares) and not backup.prepared_certs
    # The watermarks moved: (2, 6] now.
    assert backup.on_message(0, PrePrepare(0, 6, P[2], 0)) == [Broadcast(Prepare(0, 6, P[2], 1))]


def test_4_3_a_replica_behind_a_stable_checkpoint_fetches_the_state_and_checks_it_against_the_proof():
    backup = replicas(config=SMALL)[1]
    digest = ledger_digest(P[:2])
    proof = tuple(Checkpoint(2, digest, i) for i in (0, 2, 3))
    actions = feed(backup, *[(c.sender, c) for c in proof])
    assert backup.stable_seq == 2 and backup.last_exec == 0
    assert network_msgs(actions) == [Send(0, Status(0, False, 2, 0, 1)), Send(2, Status(0, False, 2, 0, 1))]
    # A ledger that does not hash to the certified digest is refused; the right one is taken.
    assert backup.on_message(0, StateTransfer(2, (P[0], P[2]), proof, 0)) == []
    actions = backup.on_message(0, StateTransfer(2, (P[0], P[1]), proof, 0))
    assert [a for a in actions if isinstance(a, Decide)] == [Decide(0, P[0]), Decide(1, P[1])]
    assert backup.last_exec == 2 and backup.ledger == P[:2]


def test_4_3_a_padded_checkpoint_proof_is_refused_whole_and_cannot_poison_the_stable_digest():
    # Issue 21: 2f + 1 matching checkpoints plus one of another digest (a Byzantine
    # replica's VIEW-CHANGE) used to pass, and _enter_view took the first one's digest.
    backup = replicas(config=SMALL)[2]
    q = backup.q
    digest = ledger_digest(P[:2])
    good = tuple(Checkpoint(2, digest, i) for i in (0, 1, 3))
    padded = (Checkpoint(2, "f00d", 3),) + good
    assert checkpoint_proof_digest(good, q) == (2, digest)
    assert checkpoint_proof_digest(padded, q) is None
    assert checkpoint_proof_digest(good + (Checkpoint(2, digest, 0),), q) is None      # a signer twice
    assert checkpoint_proof_digest(good[:2] + (Checkpoint(4, digest, 3),), q) is None  # another seq
    poisoned = ViewChange(1, 2, padded, (), 0)
    assert not view_change_ok(poisoned, q, SMALL.log_window)
    # A NEW-VIEW whose V holds it is refused, and the stable digest stays what it was.
    v_set = (poisoned, ViewChange(1, 0, (), (), 1), ViewChange(1, 0, (), (), 3))
    _, o_set = compute_new_view(1, v_set, 4)
    assert backup.on_message(1, NewView(1, v_set, o_set, 1)) == []
    assert backup.view == 0 and backup.stable_digest == pbft.GENESIS


# -- view change (4.4) and its liveness rules (4.5.2) -------------------------------------------


def test_4_4_request_timeout_starts_a_view_change_carrying_the_prepared_certificates():
    backup = replicas()[1]
    backup.on_message(CLIENT, ClientRequest(P[0]))
    feed(backup, (0, PrePrepare(0, 1, P[0], 0)), (2, Prepare(0, 1, P[0], 2)))
    actions = backup.on_timer("request")
    [vc] = [a.msg for a in actions if isinstance(a, Broadcast)]
    assert (vc.view, vc.stable_seq, vc.checkpoint_proof, vc.sender) == (1, 0, (), 1)
    assert vc.prepared == (PreparedProof(PrePrepare(0, 1, P[0], 0), (Prepare(0, 1, P[0], 1), Prepare(0, 1, P[0], 2))),)
    assert backup.view == 1 and backup.in_view_change
    # In a view change a replica takes no part in the normal case.
    assert backup.on_message(0, PrePrepare(0, 2, P[1], 0)) == []


def prepared(view, seq, value, n=4, voters=None):
    leader = view % n
    voters = voters or [i for i in range(n) if i != leader][:2]
    return PreparedProof(PrePrepare(view, seq, value, leader), tuple(Prepare(view, seq, value, i) for i in voters))


def test_4_4_new_view_O_reproposes_the_highest_view_prepared_value_and_fills_gaps_with_null():
    vcs = (
        ViewChange(2, 0, (), (prepared(0, 1, P[0]), prepared(0, 3, P[3])), 0),
        ViewChange(2, 0, (), (prepared(1, 3, P[4]),), 1),
        ViewChange(2, 0, (), (), 3),
    )
    min_s, o_set = compute_new_view(2, vcs, 4)
    assert min_s == 0
    assert o_set == (PrePrepare(2, 1, P[0], 2), PrePrepare(2, 2, NULL, 2), PrePrepare(2, 3, P[4], 2))


def test_4_4_new_primary_multicasts_new_view_after_2f_plus_1_view_changes_and_enters_the_view():
    new_primary = replicas()[1]
    vcs = [ViewChange(1, 0, (), (prepared(0, 1, P[0]),), 2), ViewChange(1, 0, (), (), 3)]
    actions = feed(new_primary, (2, vcs[0]))
    assert new_primary.view == 0                                         # one replica is not enough
    actions = feed(new_primary, (3, vcs[1]))                              # f + 1: it joins (4.5.2)...
    own = new_primary.my_view_change
    [nv] = [a.msg for a in actions if isinstance(a, Broadcast) and isinstance(a.msg, NewView)]
    assert [vc.sender for vc in nv.view_changes] == [1, 2, 3]             # ...and has 2f + 1 with its own
    assert nv.pre_prepares == (PrePrepare(1, 1, P[0], 1),)
    assert own.view == 1 and new_primary.view == 1 and not new_primary.in_view_change
    assert new_primary.next_seq == 2


def test_4_4_backup_prepares_O_of_a_valid_new_view_and_rejects_one_whose_O_does_not_follow_from_V():
    backup = replicas()[2]
    v_set = (ViewChange(1, 0, (), (prepared(0, 1, P[0]),), 0), ViewChange(1, 0, (), (), 1),
             ViewChange(1, 0, (), (), 3))
    forged = NewView(1, v_set, (PrePrepare(1, 1, P[5], 1),), 1)
    assert backup.on_message(1, forged) == []
    assert backup.on_message(1, NewView(1, v_set[:2], (PrePrepare(1, 1, P[0], 1),), 1)) == []   # only 2f in V
    actions = backup.on_message(1, NewView(1, v_set, (PrePrepare(1, 1, P[0], 1),), 1))
    assert network_msgs(actions) == [Broadcast(Prepare(1, 1, P[0], 2))]
    assert backup.view == 1 and not backup.in_view_change


def test_4_4_view_change_with_a_forged_prepared_certificate_is_ignored():
    replica = replicas()[1]
    forged = PreparedProof(PrePrepare(0, 1, P[0], 0), (Prepare(0, 1, P[0], 2),))   # 1 prepare, not 2f
    replica.on_message(2, ViewChange(1, 0, (), (forged,), 2))
    assert replica.view_changes == {}


def test_4_5_2_view_change_timer_after_2f_plus_1_view_changes_doubles_each_time():
    replica = replicas()[3]                                               # not the primary of 1 or 2
    replica.on_message(CLIENT, ClientRequest(P[0]))
    replica.on_timer("request")
    actions = feed(replica, (0, ViewChange(1, 0, (), (), 0)), (2, ViewChange(1, 0, (), (), 2)))
    assert SetTimer(("view-change", 1), 2.0) in actions
    actions = replica.on_timer(("view-change", 1))                        # no NEW-VIEW from replica 1
    assert replica.view == 2 and replica.vc_attempts == 1
    actions = feed(replica, (0, ViewChange(2, 0, (), (), 0)), (1, ViewChange(2, 0, (), (), 1)))
    assert SetTimer(("view-change", 2), 4.0) in actions
    assert replica.on_timer(("view-change", 1)) == []                     # a stale timer


def test_4_5_2_the_doubled_timeout_holds_in_the_new_view_until_a_request_executes():
    replica = replicas()[3]
    replica.on_message(CLIENT, ClientRequest(P[0]))
    replica.on_timer("request")
    feed(replica, (0, ViewChange(1, 0, (), (), 0)), (2, ViewChange(1, 0, (), (), 2)))
    replica.on_timer(("view-change", 1))                                  # no NEW-VIEW for 1: on to 2
    assert replica.vc_attempts == 1
    # The primary of view 2 brings it in; the request still waits for T * 2, not T.
    v_set = tuple(ViewChange(2, 0, (), (), i) for i in (0, 2, 3))
    actions = replica.on_message(2, NewView(2, v_set, (), 2))
    assert not replica.in_view_change and SetTimer("request", 4.0) in actions
    # It runs out before anything executes: that view change failed too, wait 4T next time.
    replica.on_timer("request")
    assert replica.view == 3 and replica.vc_attempts == 2
    feed(replica, (0, ViewChange(3, 0, (), (), 0)), (1, ViewChange(3, 0, (), (), 1)))
    assert replica._timeout() == 8.0
    # Executing a request ends the run of failed view changes.
    replica.on_message(0, NewView(3, tuple(ViewChange(3, 0, (), (), i) for i in (0, 1, 3)), (), 3))
    commit_seq(replica, 1, P[0], view=3, voters=(0, 1, 2))
    assert replica.ledger == [P[0]] and replica.vc_attempts == 0 and replica._timeout() == 2.0


def test_4_5_2_a_replica_that_moved_on_resends_its_view_change_for_the_view_a_stuck_replica_is_in():
    # Issue 21 (seed 1760): replica 3's VIEW-CHANGE for view 1 was lost on its way to 0 and
    # 2; it timed out into view 2 while they waited in view 1 with two VIEW-CHANGEs each.
    ahead = replicas()[3]
    ahead.on_message(CLIENT, ClientRequest(P[0]))
    ahead.on_timer("request")
    vc1 = ahead.my_view_change
    feed(ahead, (0, ViewChange(1, 0, (), (), 0)), (2, ViewChange(1, 0, (), (), 2)))
    ahead.on_timer(("view-change", 1))
    vc2 = ahead.my_view_change
    assert (vc1.view, vc2.view) == (1, 2)
    # Asked by a replica stuck in view 1: both, the one it lacks for its view and ours now.
    assert ahead.on_message(0, Status(1, True, 0, 0, 0)) == [Send(0, vc1), Send(0, vc2)]
    # The stuck replica counts 2f + 1 for view 1, times out after T and follows.
    stuck = replicas()[0]
    stuck.on_message(CLIENT, ClientRequest(P[0]))
    stuck.on_timer("request")
    feed(stuck, (2, ViewChange(1, 0, (), (), 2)))
    assert SetTimer(("view-change", 1), 2.0) in stuck.on_message(3, vc1)
    stuck.on_timer(("view-change", 1))
    assert stuck.view == 2 and stuck.in_view_change


def test_a_replica_ahead_nudges_a_peer_that_never_showed_it_got_there_and_the_peer_asks_back():
    # Issue 21: a replica that missed a stretch whole (crashed while the clients sent it)
    # waits for nothing; when the others fall idle, nobody tells it.
    ahead = replicas()[1]
    commit_seq(ahead, 1, P[0], voters=(0, 2))                             # 3 never committed
    assert ahead._laggards() == [3]
    actions = ahead.on_timer("status")
    assert network_msgs(actions) == [Send(3, Status(0, False, 0, 1, 1))]
    assert network_msgs(ahead.on_timer("status")) == []                  # then less and less often
    behind = replicas()[3]
    assert behind.on_message(1, Status(0, False, 0, 1, 1)) == [Send(1, Status(0, False, 0, 0, 3, reply=True))]
    answer = ahead.on_message(3, Status(0, False, 0, 0, 3, reply=True))
    [bundle] = [a.msg for a in answer if isinstance(a, Send)]
    assert [a for a in behind.on_message(1, bundle) if isinstance(a, Decide)] == [Decide(0, P[0])]
    assert ahead.on_message(3, Commit(0, 1, P[0], 3)) == [] and ahead._laggards() == []


def test_4_4_entering_a_view_whose_early_pre_prepares_make_a_checkpoint_stable_drops_the_later_ones():
    # Found by the adversary search (issue 21): accepting the kept pre-prepare for 1 executes
    # 1 and the already committed 2, checkpoint 2 becomes stable and the log below it goes
    # -- the kept pre-prepare for 2 too, which _enter_view then looked up: KeyError.
    replica = replicas(config=SMALL)[2]
    replica.on_message(CLIENT, ClientRequest(P[0]))
    replica.on_timer("request")                                          # to view 1 (primary 1)
    digest = ledger_digest(P[:2])
    feed(replica, (1, PrePrepare(1, 1, P[0], 1)), (1, PrePrepare(1, 2, P[1], 1)),
         *[(i, Prepare(1, 1, P[0], i)) for i in (0, 3)],
         *[(i, Commit(1, 1, P[0], i)) for i in (0, 3)],
         *[(i, Commit(1, 2, P[1], i)) for i in (0, 1, 3)],                  # 2 is committed, 1 not yet
         *[(i, Checkpoint(2, digest, i)) for i in (0, 3)])
    assert replica.committed == {2: P[1]} and replica.last_exec == 0
    v_set = tuple(ViewChange(1, 0, (), (), i) for i in (0, 1, 3))
    actions = replica.on_message(1, NewView(1, v_set, (), 1))
    assert [a for a in actions if isinstance(a, Decide)] == [Decide(0, P[0]), Decide(1, P[1])]
    assert replica.stable_seq == 2 and replica.future_pre_prepares == {}


def test_commit_certificate_lets_a_replica_in_another_view_execute_what_2f_plus_1_committed():
    behind = replicas()[1]
    behind.on_message(CLIENT, ClientRequest(P[0]))
    behind.on_timer("request")                                            # off to view 1, alone
    actions = feed(behind, *[(i, Commit(0, 1, P[0], i)) for i in (0, 2, 3)])
    assert [a for a in actions if isinstance(a, Decide)] == [Decide(0, P[0])]


def test_status_answers_a_replica_in_the_same_view_with_our_part_of_its_open_sequence_numbers():
    helper = replicas()[2]
    commit_seq(helper, 1, P[0], voters=(0, 1, 3))
    actions = helper.on_message(1, Status(0, False, 0, 0, 1))
    # The commit certificate it executed on (less the asker's own commit), then its part
    # of the three phases.
    certificate = tuple(Commit(0, 1, P[0], i) for i in (0, 2, 3))
    bundle = certificate + (PrePrepare(0, 1, P[0], 0), Prepare(0, 1, P[0], 2))
    assert actions == [Send(1, Retransmit(bundle, 2))]
    # The lagging replica takes the relayed pre-prepare, the helper's own prepare and the
    # signed commits of the certificate: prepared and committed, it executes.
    lagging = replicas()[1]
    actions = lagging.on_message(2, Retransmit(bundle, 2))
    assert network_msgs(actions) == [Broadcast(Prepare(0, 1, P[0], 1)), Broadcast(Commit(0, 1, P[0], 1))]
    assert [a for a in actions if isinstance(a, Decide)] == [Decide(0, P[0])]
    # A prepare in the bundle that is not the sender's own is not taken.
    other = replicas()[1]
    other.on_message(2, Retransmit((Prepare(0, 1, P[0], 3),), 2))
    assert (0, 1) not in other.prepares


# -- Byzantine behaviours ----------------------------------------------------------------------


def test_equivocating_primary_sends_a_conflicting_twin_to_every_other_backup():
    primary = replicas(behaviours={0: "equivocate"})[0]
    assert primary.honest is False
    twin = pbft.conflicting_twin(P[0])
    assert twin.coin == P[0].coin and twin != P[0]
    actions = network_msgs(primary.on_message(CLIENT, ClientRequest(P[0])))
    assert actions == [Send(1, PrePrepare(0, 1, P[0], 0)), Send(2, PrePrepare(0, 1, twin, 0)),
                       Send(3, PrePrepare(0, 1, P[0], 0))]


def test_double_voter_echoes_every_replicas_vote_back_to_it():
    voter = replicas(behaviours={1: "double-vote"})[1]
    twin = pbft.conflicting_twin(P[0])
    assert network_msgs(voter.on_message(0, PrePrepare(0, 1, P[0], 0))) == []   # no vote of its own
    assert voter.on_message(2, Prepare(0, 1, P[0], 2)) == [Send(2, Prepare(0, 1, P[0], 1))]
    assert voter.on_message(3, Prepare(0, 1, twin, 3)) == [Send(3, Prepare(0, 1, twin, 1))]
    assert voter.on_message(3, Commit(0, 1, twin, 3))[0] == Send(3, Commit(0, 1, twin, 1))


def test_withholder_never_prepares_or_commits_and_silent_sends_nothing():
    engines = replicas(behaviours={1: "withhold", 2: "silent"})
    assert network_msgs(commit_seq(engines[1], 1, P[0])) == []
    assert engines[1].ledger == [P[0]]
    assert isinstance(engines[2], pbft.Silent) and engines[2].honest is False
    assert engines[2].on_message(0, PrePrepare(0, 1, P[0], 0)) == []


def test_pbft_registers_itself_with_its_behaviours():
    spec = load_registry()["pbft"]
    assert spec is REGISTRY["pbft"] and spec.family == "BFT" and spec.fault_model == "byzantine"
    assert set(spec.behaviours) <= set(BEHAVIOURS) and "lie" not in spec.behaviours
    assert spec.max_faults(4) == 1 and spec.max_faults(7) == 2
    with pytest.raises(ValueError):
        pbft.PBFT(Simulation(4, lambda c: pbft.build(c), seed=0).contexts[0], behaviour="lie")


# -- scenarios -----------------------------------------------------------------------------------


def run(n=4, *, behaviours=None, seed=1, count=20, interval=0.2, until=40.0, latency=0.05, setup=None, **net):
    behaviours = behaviours or {}
    network = Network(latency, **net)
    sim = Simulation(n, lambda ctx: pbft.build(ctx, behaviours.get(ctx.node_id)), seed=seed, network=network)
    payments = schedule_payments(sim, count, interval, start=0.5)
    if setup:
        setup(sim)
    sim.run(until=until)
    return sim, payments


def honest_ledgers(sim):
    return {i: sim.engines[i].ledger for i in sim.honest if not sim.crashed[i]}


def test_n4_normal_case_commits_every_payment_in_order_with_2n_squared_messages():
    sim, payments = run(4, count=16)
    r = sim.result()
    assert r.safe and r.decisions_per_node == [16] * 4
    assert all(ledger == payments for ledger in honest_ledgers(sim).values())
    # pre-prepare (n-1) + prepare (n-1)^2 + commit n(n-1) = 2n(n-1) per request, plus a
    # checkpoint round n(n-1) every K = 8.
    assert r.messages["sent_by_type"] == {"PrePrepare": 48, "Prepare": 144, "Commit": 192, "Checkpoint": 24}
    assert r.messages_per_decision == 2 * 4 * 3 + 4 * 3 / 8
    # Three message delays from the primary's pre-prepare to the commit.
    assert all(last - first < 1e-9 and abs(first - (0.5 + 0.2 * s + 0.15)) < 1e-9
               for s, (first, last, _) in r.finality.items())


def test_n4f1_crashed_primary_is_replaced_by_a_view_change_and_no_payment_is_lost():
    sim, payments = run(4, setup=lambda s: s.at(1.0, s.crash, 0))
    r = sim.result()
    assert r.safe and not r.reversals
    assert all(ledger == payments for ledger in honest_ledgers(sim).values())
    assert {sim.engines[i].view for i in (1, 2, 3)} == {1}


def test_n4_two_crashed_replicas_stall_but_stay_safe():
    sim, _ = run(4, setup=lambda s: (s.at(1.0, s.crash, 0), s.at(1.0, s.crash, 1)))
    r = sim.result()
    assert r.safe and r.decisions_per_node[2] == r.decisions_per_node[3] < 20
    stalled_at = max(d.time for d in sim.decisions.records)
    assert stalled_at < 1.2                                              # nothing after the crashes


def test_n4f1_equivocating_primary_cannot_split_honest_replicas():
    sim, payments = run(4, behaviours={0: "equivocate"})
    r = sim.result()
    assert r.safe and not r.reversals
    ledgers = honest_ledgers(sim)
    # The primary keeps deceiving replica 2 (it gets the twin every time, 1 and 3 the real
    # request): 1 and 3 commit everything; 2 catches up at each stable checkpoint (K = 8).
    assert ledgers[1] == ledgers[3] == payments
    assert ledgers[2] == payments[: len(ledgers[2])] and len(ledgers[2]) >= 16


def test_n4_two_equivocating_replicas_can_double_spend():
    sim, _ = run(4, behaviours={0: "equivocate", 1: "equivocate"})
    r = sim.result()
    assert not r.safe
    first = r.conflicts[0]
    assert first["slot"] == 0
    assert first["values"] == [["pay(c0.0->attacker)", [2]], ["pay(c0.0->payee0)", [3]]]


@pytest.mark.parametrize("behaviour", ["silent", "withhold", "double-vote", "equivocate"])
@pytest.mark.parametrize("who", [0, 2])
def test_n4f1_one_byzantine_replica_of_any_kind_neither_splits_nor_stops_the_others(behaviour, who):
    sim, payments = run(4, behaviours={who: behaviour})
    r = sim.result()
    assert r.safe and not r.reversals
    ledgers = honest_ledgers(sim)
    assert max(len(ledger) for ledger in ledgers.values()) == 20
    assert all(ledger == payments[: len(ledger)] for ledger in ledgers.values())


def test_n4_two_withholding_replicas_stall_the_others_safely():
    sim, _ = run(4, behaviours={0: "withhold", 1: "withhold"})
    r = sim.result()
    assert r.safe and r.decisions_per_node[2] == r.decisions_per_node[3] == 0


def test_n4_even_partition_commits_nothing_then_everything_after_the_heal():
    def setup(sim):
        sim.at(1.0, sim.net.partition, [[0, 1], [2, 3]])
        sim.at(10.0, sim.net.heal)

    sim, payments = run(4, count=30, setup=setup, until=60.0)
    r = sim.result()
    during = [d for d in sim.decisions.records if 1.2 <= d.time < 10.0]
    assert during == []
    assert r.safe and all(ledger == payments for ledger in honest_ledgers(sim).values())


def test_n4_partition_with_a_quorum_side_keeps_committing_on_that_side():
    def setup(sim):
        sim.at(1.0, sim.net.partition, [[0], [1, 2, 3]])
        sim.at(10.0, sim.net.heal)

    sim, payments = run(4, count=30, setup=setup, until=60.0)
    r = sim.result()
    during = {d.node for d in sim.decisions.records if 1.2 <= d.time < 10.0}
    assert during == {1, 2, 3}                                            # the old primary 0 is cut off
    assert r.safe and all(ledger == payments for ledger in honest_ledgers(sim).values())


def test_n7f2_equivocating_primary_and_a_double_voter_cannot_split_five_honest_replicas():
    sim, payments = run(7, behaviours={0: "equivocate", 1: "double-vote"})
    r = sim.result()
    assert r.safe and max(len(ledger) for ledger in honest_ledgers(sim).values()) == 20


def test_n7_three_equivocating_replicas_can_double_spend():
    sim, _ = run(7, behaviours={0: "equivocate", 1: "equivocate", 2: "equivocate"})
    assert not sim.result().safe


def test_same_seed_same_result_byte_for_byte():
    def once(seed):
        sim, _ = run(4, seed=seed, behaviours={0: "equivocate"}, latency=Exponential(0.05), loss=0.1)
        return sim.result().to_json()

    assert once(5) == once(5)
    assert once(5) != once(6)


def random_run(seed, n=4, until=60.0):
    return random_fault_run(pbft.build, seed, n, until=until)


def test_n4f1_seed_1760_one_silent_30pc_loss_split_13_02_every_honest_replica_commits_all_after_the_heal():
    # Issue 21: replica 3's VIEW-CHANGE for view 1 was lost, it timed out into view 2, and
    # 0 and 2 waited in view 1 with two VIEW-CHANGEs each: views [1, 1, 2] for good.
    sim = random_run(1760)
    assert isinstance(sim.engines[1], pbft.Silent) and sim.net.loss == 0.3
    assert sim.result().safe and committed_counts(sim) == [20, 20, 20]


def test_n7f2_seed_176_equivocator_and_silent_split_136_0245_every_honest_replica_commits_all():
    # Issue 21: all honest replicas in view changes of their own at 60 s (13 of 20), then
    # views [29, 30, 29, 30, 29] for good, two replicas 5 payments behind.
    sim = random_run(176, n=7)
    assert sim.result().safe and committed_counts(sim) == [20] * 5


def test_n4f1_safety_and_liveness_across_200_seeded_runs_of_loss_reordering_partitions_crashes_and_byzantine():
    for seed in range(200):
        sim = random_run(seed)
        r = sim.result()
        assert r.safe and not r.reversals, f"seed {seed}: {r.conflicts[:1]} {r.reversals[:1]}"
        ledgers = [sim.engines[i].ledger for i in sim.honest]
        longest = max(ledgers, key=len)
        assert all(ledger == longest[: len(ledger)] for ledger in ledgers), f"seed {seed}"
        # Every fault is over by 12 s; by 60 s every honest replica has every payment.
        assert committed_counts(sim) == [20] * len(ledgers), f"seed {seed}: {committed_counts(sim)}"


@pytest.mark.slow
def test_n7f2_safety_and_liveness_across_100_seeded_runs():
    for seed in range(100):
        sim = random_run(seed, n=7, until=200.0)
        r = sim.result()
        assert r.safe and not r.reversals, f"seed {seed}"
        assert committed_counts(sim) == [20] * 5, f"seed {seed}: {committed_counts(sim)}"


# -- through the shared scenario harness ---------------------------------------------------------


def test_harness_normal_crash_partition_gst_and_loss_are_safe_and_live():
    for scenario, opts in [("normal", {}), ("crash", {}), ("partition", {"split": "quorum"}), ("gst", {}),
                           ("loss", {"loss": 0.3}), ("skew", {})]:
        r = replicated.run("pbft", scenario, n=4, seed=2, **opts)
        assert r.safe and r.extra["committed"] == r.extra["submitted"], (scenario, r.extra)


def test_harness_even_partition_stalls_and_resumes_after_the_heal():
    r = replicated.run("pbft", "partition", n=4, seed=2)
    assert r.safe and r.extra["stalled"] and r.extra["decided_during_fault"] == 0
    assert r.extra["decided_after_fault"] > 0 and r.extra["committed"] == r.extra["submitted"]


def test_harness_f_plus_1_crashes_stall_and_f_plus_1_equivocators_double_spend():
    crash = replicated.run("pbft", "crash", n=4, seed=2, faulty=2)
    assert crash.safe and crash.extra["stalled"]
    byz = replicated.run("pbft", "byzantine", n=4, seed=2, faulty=2)
    assert not byz.safe
    ok = replicated.run("pbft", "byzantine", n=4, seed=2)
    assert ok.safe
