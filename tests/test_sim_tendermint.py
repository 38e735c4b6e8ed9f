"""Tendermint (Buchman, Kwon & Milosevic 2018, Algorithm 1): a step table named after the
algorithm's line numbers, then scenarios named after the nodes and the faults in them.
"""


import pytest

from minichain.sim import Broadcast, Decide, Exponential, Network, Send, SetTimer, Simulation
from minichain.sim.engines import BEHAVIOURS, load_registry
from minichain.sim.engines import tendermint as tm
from minichain.sim.engines.tendermint import (
    NIL, PRECOMMIT, PREVOTE, PROPOSE, Block, Gossip, HeightLog, Precommit, Prevote, Proposal, Status,
    TendermintConfig, tendermint_quorum,
)
from minichain.sim.scenarios import replicated
from minichain.sim.workload import CLIENT, ClientRequest, Payment, schedule_payments
from tests.simfaults import random_fault_run

P = [Payment(0, i, f"c0.{i}", f"payee{i}") for i in range(8)]
B0, B1, B2 = Block((P[0],)), Block((P[1],)), Block((P[2],))


def validators(n=4, behaviours=None, config=None):
    behaviours = behaviours or {}
    sim = Simulation(n, lambda ctx: tm.build(ctx, behaviours.get(ctx.node_id), config), seed=0)
    return sim.engines


def started(i, *payments, n=4, behaviours=None):
    """Validator ``i``, started and holding ``payments``."""
    v = validators(n, behaviours)[i]
    v.on_start()
    for p in payments:
        v.on_message(CLIENT, ClientRequest(p))
    return v


def feed(v, *messages):
    out = []
    for m in messages:
        out += v.on_message(m.sender, m)
    return out


def sent(actions):
    return [a for a in actions if isinstance(a, (Send, Broadcast))]


def votes(kind, h, r, value, *senders):
    return [kind(h, r, value, s) for s in senders]


# -- lines 10-21: start and StartRound -----------------------------------------------------------


def test_line_10_round_0_waits_for_a_value_then_lines_14_19_the_proposer_proposes_and_prevotes():
    v = validators()[0]
    assert v.on_start() == [] and v.waiting                                  # nothing to decide yet
    actions = v.on_message(CLIENT, ClientRequest(P[0]))
    assert actions == [
        Broadcast(Proposal(0, 0, B0, -1, 0)),                                # line 19
        Broadcast(Prevote(0, 0, B0, 0)),                                     # its own proposal, line 24
        SetTimer("status", 0.5),
    ]


def test_lines_20_21_other_validators_schedule_timeout_propose_of_the_round():
    v = started(1)
    assert v.on_message(CLIENT, ClientRequest(P[0])) == [SetTimer(("propose", 0, 0), 1.0), SetTimer("status", 0.5)]
    # A validator with nothing pending still joins a height others are working on.
    idle = started(2)
    assert idle.on_message(3, Prevote(0, 0, NIL, 3))[0] == SetTimer(("propose", 0, 0), 1.0)


def test_timeouts_grow_linearly_with_the_round():
    cfg = TendermintConfig()
    assert [cfg.propose(r) for r in range(3)] == [1.0, 1.5, 2.0]
    assert [cfg.prevote(r) for r in range(3)] == [0.5, 0.75, 1.0]
    assert [cfg.precommit(r) for r in range(3)] == [0.5, 0.75, 1.0]


# -- lines 22-33: prevote ------------------------------------------------------------------------


def test_lines_22_27_prevote_for_a_valid_proposal_and_nil_for_an_invalid_one():
    v = started(1, P[0])
    assert v.on_message(2, Proposal(0, 0, B0, -1, 2)) == []                  # not the proposer of (0, 0)
    assert sent(feed(v, Proposal(0, 0, B0, -1, 0))) == [Broadcast(Prevote(0, 0, B0, 1))]
    assert v.step == PREVOTE
    w = started(1, P[0])
    bad = Block((P[0], P[0]))                                                # spends one coin twice
    assert sent(feed(w, Proposal(0, 0, bad, -1, 0))) == [Broadcast(Prevote(0, 0, NIL, 1))]


def locked_on_b0_in_round_0(v):
    """Lines 36-41 lock ``v`` (validator 3) on B0 in round 0; then round 0 ends (line 67)."""
    feed(v, Proposal(0, 0, B0, -1, 0), *votes(Prevote, 0, 0, B0, 0, 1))
    assert (v.locked_value, v.locked_round, v.step) == (B0, 0, PRECOMMIT)
    feed(v, *votes(Precommit, 0, 0, NIL, 0, 1))
    v.on_timer(("precommit", 0, 0))
    assert v.round == 1


def test_lines_22_27_a_validator_locked_on_another_value_prevotes_nil():
    v = started(3, P[0], P[1])
    locked_on_b0_in_round_0(v)
    assert sent(feed(v, Proposal(0, 1, B1, -1, 1))) == [Broadcast(Prevote(0, 1, NIL, 3))]
    w = started(3, P[0], P[1])
    locked_on_b0_in_round_0(w)
    assert sent(feed(w, Proposal(0, 1, B0, -1, 1))) == [Broadcast(Prevote(0, 1, B0, 3))]   # lockedValue = v


def test_lines_28_33_two_thirds_prevotes_from_a_round_at_or_after_the_lock_unlock_it():
    v = started(3, P[0], P[1])
    locked_on_b0_in_round_0(v)
    # Round 1: B1 gathers 2f + 1 prevotes elsewhere, but v never saw round 1's proposal.
    feed(v, *votes(Prevote, 0, 1, B1, 0, 1, 2))
    v.on_timer(("propose", 0, 1))                                            # prevote nil (line 59)
    v.on_timer(("prevote", 0, 1))                                            # precommit nil (line 63)
    feed(v, *votes(Precommit, 0, 1, NIL, 0, 1))
    v.on_timer(("precommit", 0, 1))
    assert (v.round, v.locked_round) == (2, 0)
    # Round 2's proposer re-proposes B1 with validRound 1: lockedRound 0 <= 1, so prevote it.
    assert sent(feed(v, Proposal(0, 2, B1, 1, 2))) == [Broadcast(Prevote(0, 2, B1, 3))]


def test_lines_28_33_without_the_prevotes_of_the_valid_round_the_proposal_waits_for_the_timeout():
    v = started(3, P[0], P[1])
    locked_on_b0_in_round_0(v)
    assert sent(feed(v, Proposal(0, 1, B1, 0, 1))) == []                     # no 2f + 1 for B1 in round 0
    assert sent(v.on_timer(("propose", 0, 1))) == [Broadcast(Prevote(0, 1, NIL, 3))]


# -- lines 34-48: precommit and the round's timeouts ------------------------------------------------


def test_lines_34_35_two_thirds_prevotes_for_anything_schedule_timeout_prevote_once():
    v = started(1, P[0])
    feed(v, Proposal(0, 0, B0, -1, 0))
    assert feed(v, Prevote(0, 0, NIL, 2)) == []
    assert feed(v, Prevote(0, 0, B1, 3)) == [SetTimer(("prevote", 0, 0), 0.5)]
    assert feed(v, Prevote(0, 0, NIL, 0)) == []                              # "for the first time"


def test_lines_36_43_two_thirds_prevotes_for_the_proposal_lock_it_and_precommit():
    v = started(1, P[0])
    feed(v, Proposal(0, 0, B0, -1, 0), Prevote(0, 0, B0, 0))
    actions = feed(v, Prevote(0, 0, B0, 2))
    assert sent(actions) == [Broadcast(Precommit(0, 0, B0, 1))]
    assert (v.locked_value, v.locked_round, v.valid_value, v.valid_round, v.step) == (B0, 0, B0, 0, PRECOMMIT)


def test_lines_42_43_a_quorum_seen_after_precommitting_nil_only_sets_valid_value():
    v = started(1, P[0])
    feed(v, Proposal(0, 0, B0, -1, 0), Prevote(0, 0, NIL, 2), Prevote(0, 0, NIL, 3))   # we prevoted B0
    v.on_timer(("prevote", 0, 0))                                            # precommit nil (line 63)
    assert sent(feed(v, Prevote(0, 0, B0, 0))) == []                         # 2 prevotes for B0
    # Validator 3 prevotes B0 too (it double-votes): the log holds 2f + 1 prevotes for B0.
    actions = feed(v, Prevote(0, 0, B0, 3))
    assert sent(actions) == []                                               # step is precommit: lines 37-41 skip
    assert (v.valid_value, v.valid_round, v.locked_round) == (B0, 0, -1)     # lines 42-43


def test_lines_44_46_two_thirds_nil_prevotes_precommit_nil():
    v = started(1, P[0])
    v.on_timer(("propose", 0, 0))                                            # no proposal: nil
    assert feed(v, Prevote(0, 0, NIL, 2)) == []
    assert sent(feed(v, Prevote(0, 0, NIL, 3))) == [Broadcast(Precommit(0, 0, NIL, 1))]
    assert v.step == PRECOMMIT


def test_lines_47_48_two_thirds_precommits_for_anything_schedule_timeout_precommit():
    v = started(1, P[0])
    assert feed(v, Precommit(0, 0, NIL, 2), Precommit(0, 0, B1, 3)) == []
    assert feed(v, Precommit(0, 0, NIL, 0)) == [SetTimer(("precommit", 0, 0), 0.5)]


# -- lines 49-56: decision and round skip --------------------------------------------------------


def test_lines_49_54_a_proposal_with_two_thirds_precommits_of_any_round_decides_and_starts_the_next_height():
    v = started(1, P[0], P[1])
    v.round = 3                                                              # wherever we are
    actions = feed(v, Proposal(0, 1, B0, -1, 1), *votes(Precommit, 0, 1, B0, 0, 2, 3))
    assert actions[0] == Decide(0, P[0])
    assert (v.h, v.round, v.locked_round, v.valid_round) == (1, 0, -1, -1)
    assert v.evidence[0] == (Proposal(0, 1, B0, -1, 1), *votes(Precommit, 0, 1, B0, 0, 2, 3))
    # Height 1, round 0: validator 1 is the proposer and proposes what is left (line 54).
    assert sent(actions) == [Broadcast(Proposal(1, 0, B1, -1, 1)), Broadcast(Prevote(1, 0, B1, 1))]


def test_lines_49_50_an_invalid_value_is_not_decided_even_with_two_thirds_precommits():
    v = started(1, P[0])
    bad = Block((P[0], P[0]))
    assert [a for a in feed(v, Proposal(0, 0, bad, -1, 0), *votes(Precommit, 0, 0, bad, 0, 2, 3))
            if isinstance(a, Decide)] == []


def test_lines_55_56_f_plus_1_messages_of_a_higher_round_start_that_round():
    v = started(2, P[0])
    assert feed(v, Prevote(0, 5, NIL, 1)) == []                              # one is not enough
    actions = feed(v, Precommit(0, 5, NIL, 3))
    assert v.round == 5 and actions[0] == SetTimer(("propose", 0, 5), 3.5)


# -- lines 57-67: timeouts --------------------------------------------------------------------


def test_lines_57_67_timeouts_act_only_in_their_height_round_and_step():
    v = started(2, P[0])
    assert sent(v.on_timer(("propose", 0, 0))) == [Broadcast(Prevote(0, 0, NIL, 2))]     # line 59
    assert v.on_timer(("propose", 0, 0)) == []                               # step is prevote now
    assert sent(v.on_timer(("prevote", 0, 0))) == [Broadcast(Precommit(0, 0, NIL, 2))]  # line 63
    assert v.on_timer(("prevote", 0, 0)) == []
    assert v.on_timer(("precommit", 0, 7)) == [] and v.round == 0            # a stale timer
    v.on_timer(("precommit", 0, 0))                                          # line 67
    assert (v.round, v.step) == (1, PROPOSE)


def test_lines_15_16_a_proposer_reproposes_its_valid_value_with_its_valid_round():
    v = started(1, P[0], P[1])                                               # proposer of (0, 1)
    feed(v, Proposal(0, 0, B0, -1, 0), *votes(Prevote, 0, 0, B0, 0, 2))
    assert v.valid_value == B0
    feed(v, *votes(Precommit, 0, 0, NIL, 0, 2))
    actions = v.on_timer(("precommit", 0, 0))
    assert sent(actions)[0] == Broadcast(Proposal(0, 1, B0, 0, 1))


# -- the message log, gossip and catch-up -----------------------------------------------------------


def test_message_log_counts_a_double_voter_for_each_value_but_once_for_anything():
    log = HeightLog(tendermint_quorum(4))
    for m in [Prevote(0, 0, B0, 0), Prevote(0, 0, B1, 0), Prevote(0, 0, B0, 2), Prevote(0, 0, B1, 3)]:
        assert log.add(m, 4)
    assert not log.add(Prevote(0, 0, B0, 2), 4)                              # a repeat
    assert not log.prevotes_for(0, B0) and not log.prevotes_for(0, B1)      # 2 each
    assert log.any_prevotes(0)                                               # 3 distinct voters
    log.add(Prevote(0, 0, B0, 1), 4)
    assert log.prevotes_for(0, B0)


def test_status_from_a_lower_height_is_answered_with_the_decision_evidence_of_each_missing_height():
    ahead = started(2, P[0], P[1])
    feed(ahead, Proposal(0, 0, B0, -1, 0), *votes(Precommit, 0, 0, B0, 0, 1, 2))
    feed(ahead, Proposal(1, 0, B1, -1, 1), *votes(Precommit, 1, 0, B1, 0, 1, 2))
    assert ahead.h == 2
    [reply] = ahead.on_message(3, Status(0, 4, 3))
    assert reply == Send(3, Gossip(ahead.evidence[0] + ahead.evidence[1], 2))
    behind = started(3, P[0], P[1])
    actions = behind.on_message(2, reply.msg)
    assert [a for a in actions if isinstance(a, Decide)] == [Decide(0, P[0]), Decide(1, P[1])]
    assert behind.h == 2


def test_a_validator_ahead_reminds_one_that_sent_nothing_of_the_last_height_which_asks_back():
    # Issue 21 (fault mix seed 2897): validator 3 was down while the clients paid and cut
    # off meanwhile; back, it held nothing, waited at height 0, and nobody told it.
    ahead = started(2, P[0])
    feed(ahead, Proposal(0, 0, B0, -1, 0), *votes(Precommit, 0, 0, B0, 0, 1, 2))
    assert ahead.h == 1 and ahead._laggards() == [3]                     # 0 and 1 precommitted at 0
    assert sent(ahead.on_timer("status")) == [Send(3, Status(1, 0, 2, nudge=True))]
    assert sent(ahead.on_timer("status")) == []                          # then less and less often
    behind = validators()[3]
    behind.on_start()                                                     # idle: waits at height 0
    assert sent(behind.on_message(2, Status(1, 0, 2, nudge=True))) == [Send(2, Status(0, 0, 3))]
    # A validator as far as we are (it only withholds its votes) is not woken by a reminder.
    idle = validators()[1]
    idle.on_start()
    assert idle.waiting and idle.on_message(2, Status(0, 0, 2, nudge=True)) == [] and idle.waiting
    [reply] = sent(ahead.on_message(3, Status(0, 0, 3)))
    assert [a for a in behind.on_message(2, reply.msg) if isinstance(a, Decide)] == [Decide(0, P[0])]


def test_status_at_the_same_height_is_answered_with_every_message_of_the_height_we_hold():
    v = started(1, P[0])
    feed(v, Proposal(0, 0, B0, -1, 0), Prevote(0, 0, B1, 2))
    [reply] = [a for a in v.on_message(3, Status(0, 0, 3)) if isinstance(a, Send)]
    assert reply.msg.messages == (Proposal(0, 0, B0, -1, 0), Prevote(0, 0, B0, 1), Prevote(0, 0, B1, 2))


# -- Byzantine behaviours ---------------------------------------------------------------------


def test_equivocating_proposer_sends_a_twin_block_spending_the_same_coin_to_every_other_validator():
    v = started(0, behaviours={0: "equivocate"})
    assert v.honest is False
    twin = tm.conflicting_twin(B0)
    assert twin.payments[0].coin == P[0].coin and twin != B0
    assert sent(v.on_message(CLIENT, ClientRequest(P[0]))) == [
        Send(1, Proposal(0, 0, B0, -1, 0)), Send(2, Proposal(0, 0, twin, -1, 0)), Send(3, Proposal(0, 0, B0, -1, 0)),
    ]


def test_double_voter_answers_each_vote_with_the_same_vote_and_withholder_never_votes():
    dv = started(1, P[0], behaviours={1: "double-vote"})
    assert sent(feed(dv, Proposal(0, 0, B0, -1, 0))) == []
    assert sent(feed(dv, Prevote(0, 0, B0, 2))) == [Send(2, Prevote(0, 0, B0, 1))]
    assert sent(feed(dv, Prevote(0, 0, B1, 3))) == [Send(3, Prevote(0, 0, B1, 1))]
    wh = started(1, P[0], behaviours={1: "withhold"})
    assert sent(feed(wh, Proposal(0, 0, B0, -1, 0), *votes(Prevote, 0, 0, B0, 0, 2))) == []
    silent = validators(behaviours={2: "silent"})[2]
    assert isinstance(silent, tm.Silent) and silent.on_message(0, Proposal(0, 0, B0, -1, 0)) == []


def test_tendermint_registers_itself_with_its_behaviours():
    spec = load_registry()["tendermint"]
    assert spec.family == "BFT" and spec.fault_model == "byzantine" and spec.max_faults(10) == 3
    assert set(spec.behaviours) <= set(BEHAVIOURS)
    q = tendermint_quorum(6)
    assert (q.threshold, q.weak) == (5, 3)                                   # > 2/3 and > 1/3 of 6


# -- scenarios -----------------------------------------------------------------------------------


def run(n=4, *, behaviours=None, seed=1, count=20, interval=0.2, until=40.0, latency=0.05, setup=None, **net):
    behaviours = behaviours or {}
    network = Network(latency, **net)
    sim = Simulation(n, lambda ctx: tm.build(ctx, behaviours.get(ctx.node_id)), seed=seed, network=network)
    payments = schedule_payments(sim, count, interval, start=0.5)
    if setup:
        setup(sim)
    sim.run(until=until)
    return sim, payments


def honest_ledgers(sim):
    return {i: sim.engines[i].ledger for i in sim.honest if not sim.crashed[i]}


def test_n4_normal_case_one_height_per_payment_with_2n_squared_messages():
    sim, payments = run(4, count=16)
    r = sim.result()
    assert r.safe and all(ledger == payments for ledger in honest_ledgers(sim).values())
    # proposal (n-1) + prevote n(n-1) + precommit n(n-1) per height.
    assert r.messages["sent_by_type"] == {"Proposal": 48, "Prevote": 192, "Precommit": 192}
    assert r.messages_per_decision == 3 + 2 * 4 * 3
    assert all(abs(first - (0.5 + 0.2 * s + 0.15)) < 1e-9 for s, (first, _, _) in r.finality.items())


def test_n4_payments_arriving_faster_than_a_height_are_batched_into_blocks():
    sim, payments = run(4, count=40, interval=0.01)
    assert all(ledger == payments for ledger in honest_ledgers(sim).values())
    assert len(sim.engines[0].decision) < 10


def test_n4f1_crashed_proposer_costs_a_round_at_its_heights_and_nothing_more():
    sim, payments = run(4, setup=lambda s: s.at(1.0, s.crash, 0))
    r = sim.result()
    assert r.safe and all(ledger == payments for ledger in honest_ledgers(sim).values())
    assert any(e.decision and max(e.evidence[h][0].round for h in e.evidence) >= 1 for e in sim.engines[1:])


def test_n4_two_crashed_validators_stall_but_stay_safe():
    sim, _ = run(4, setup=lambda s: (s.at(1.0, s.crash, 0), s.at(1.0, s.crash, 1)))
    r = sim.result()
    assert r.safe and r.decisions_per_node[2] == r.decisions_per_node[3] < 20
    assert max(d.time for d in sim.decisions.records) < 1.2


def test_n4f1_equivocating_proposer_cannot_split_honest_validators():
    sim, payments = run(4, behaviours={0: "equivocate"})
    r = sim.result()
    assert r.safe and not r.reversals
    assert all(ledger == payments for ledger in honest_ledgers(sim).values())


def test_n4_two_equivocating_validators_can_double_spend():
    sim, _ = run(4, behaviours={0: "equivocate", 1: "equivocate"})
    r = sim.result()
    assert not r.safe
    assert r.conflicts[0] == {"slot": 0, "values": [["pay(c0.0->attacker)", [2]], ["pay(c0.0->payee0)", [3]]]}


@pytest.mark.parametrize("behaviour", ["silent", "withhold", "double-vote", "equivocate"])
@pytest.mark.parametrize("who", [0, 2])
def test_n4f1_one_byzantine_validator_of_any_kind_neither_splits_nor_stops_the_others(behaviour, who):
    sim, payments = run(4, behaviours={who: behaviour})
    r = sim.result()
    assert r.safe and not r.reversals
    assert all(ledger == payments for ledger in honest_ledgers(sim).values())


def test_n4_two_withholding_validators_stall_the_others_safely():
    sim, _ = run(4, behaviours={0: "withhold", 1: "withhold"})
    r = sim.result()
    assert r.safe and r.decisions_per_node == [0, 0, 0, 0]


def test_n4_even_partition_commits_nothing_then_everything_after_the_heal():
    def setup(sim):
        sim.at(1.0, sim.net.partition, [[0, 1], [2, 3]])
        sim.at(10.0, sim.net.heal)

    sim, payments = run(4, count=30, setup=setup, until=60.0)
    r = sim.result()
    assert [d for d in sim.decisions.records if 1.2 <= d.time < 10.0] == []
    assert r.safe and all(ledger == payments for ledger in honest_ledgers(sim).values())


def test_n4_partition_with_a_quorum_side_keeps_committing_on_that_side():
    def setup(sim):
        sim.at(1.0, sim.net.partition, [[0], [1, 2, 3]])
        sim.at(10.0, sim.net.heal)

    sim, payments = run(4, count=30, setup=setup, until=60.0)
    r = sim.result()
    assert {d.node for d in sim.decisions.records if 1.2 <= d.time < 10.0} == {1, 2, 3}
    assert r.safe and all(ledger == payments for ledger in honest_ledgers(sim).values())


def test_n7f2_equivocating_proposer_and_a_double_voter_cannot_split_five_honest_validators():
    sim, payments = run(7, behaviours={0: "equivocate", 1: "double-vote"})
    assert sim.result().safe
    # The twin payments ("attacker") may win -- the colluding client signed both -- but every
    # honest validator commits the same one.
    ledgers = list(honest_ledgers(sim).values())
    assert all(ledger == ledgers[0] for ledger in ledgers) and len(ledgers[0]) == 20
    assert any(p.payee == "attacker" for p in ledgers[0])


def test_n7_three_equivocating_validators_can_double_spend():
    sim, _ = run(7, behaviours={0: "equivocate", 1: "equivocate", 2: "equivocate"})
    assert not sim.result().safe


def test_same_seed_same_result_byte_for_byte():
    def once(seed):
        sim, _ = run(4, seed=seed, behaviours={0: "equivocate"}, latency=Exponential(0.05), loss=0.1)
        return sim.result().to_json()

    assert once(5) == once(5)
    assert once(5) != once(6)


def random_run(seed, n=4):
    return random_fault_run(tm.build, seed, n)


def test_n4f1_seed_2897_a_validator_down_while_the_clients_paid_catches_up_once_the_others_are_idle():
    sim = random_run(2897)
    assert [len(sim.engines[i].ledger) for i in sim.honest] == [20, 20, 20]


def test_n4f1_safety_and_liveness_across_200_seeded_runs_of_loss_reordering_partitions_crashes_and_byzantine():
    for seed in range(200):
        sim = random_run(seed)
        r = sim.result()
        assert r.safe and not r.reversals, f"seed {seed}: {r.conflicts[:1]} {r.reversals[:1]}"
        lengths = [len(sim.engines[i].ledger) for i in sim.honest]
        assert lengths == [20] * len(lengths), f"seed {seed}: {lengths}"


@pytest.mark.slow
def test_n7f2_safety_and_liveness_across_100_seeded_runs():
    for seed in range(100):
        sim = random_fault_run(tm.build, seed, 7, until=200.0)
        r = sim.result()
        assert r.safe and not r.reversals, f"seed {seed}"
        assert [len(sim.engines[i].ledger) for i in sim.honest] == [20] * 5, f"seed {seed}"


# -- through the shared scenario harness ---------------------------------------------------------


def test_harness_normal_crash_partition_gst_loss_and_skew_are_safe_and_live():
    for scenario, opts in [("normal", {}), ("crash", {}), ("partition", {"split": "quorum"}), ("gst", {}),
                           ("loss", {"loss": 0.3}), ("skew", {})]:
        r = replicated.run("tendermint", scenario, n=4, seed=2, **opts)
        assert r.safe and r.extra["committed"] == r.extra["submitted"], (scenario, r.extra)


def test_harness_even_partition_stalls_and_resumes_after_the_heal():
    r = replicated.run("tendermint", "partition", n=4, seed=2)
    assert r.safe and r.extra["stalled"] and r.extra["decided_during_fault"] == 0
    assert r.extra["decided_after_fault"] > 0 and r.extra["committed"] == r.extra["submitted"]


def test_harness_f_plus_1_crashes_stall_and_f_plus_1_equivocators_double_spend():
    assert replicated.run("tendermint", "crash", n=4, seed=2, faulty=2).extra["stalled"]
    assert not replicated.run("tendermint", "byzantine", n=4, seed=2, faulty=2).safe
    assert replicated.run("tendermint", "byzantine", n=4, seed=2).safe
