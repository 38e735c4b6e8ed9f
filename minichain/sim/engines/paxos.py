"""Multi-Paxos with a distinguished proposer (Lamport, "Paxos Made Simple", 2001), as a
sans-IO engine: every replica is proposer, acceptor and learner of a log of payments.

Section numbers below are "Paxos Made Simple"'s.

* **Ballots** (2.2: "proposal numbers") are pairs ``(round, node)``: totally ordered and
  distinct across proposers, so no two proposers ever issue the same number.
* **Phase 1** (2.2): a proposer that wants to lead picks a ballot higher than any it has
  seen and sends ``Prepare(b, low)``. An acceptor that has promised nothing higher
  promises ``b`` (P1a: it will no longer accept a lower ballot) and answers with the
  highest-numbered proposal it has accepted for every slot ``>= low``. One prepare covers
  all slots at once (3: "Implementing a State Machine"), which is what makes the steady
  state of Multi-Paxos a single phase-2 round per slot.
* **P2c** (2.2): with promises from a majority, the proposer must, for every slot that any
  of them accepted something for, propose the value of the highest-numbered accepted
  proposal among them; for slots in between that none accepted it proposes a no-op (3:
  the gaps a new leader fills with "no-op" commands); beyond that it is free to propose
  client requests.
* **Phase 2** (2.2): ``Accept(b, slot, v)``; an acceptor accepts unless it has promised a
  higher ballot (P1a), and answers ``Accepted``.
* **Learning** (2.3): acceptors answer the proposer, which acts as the distinguished
  learner: when a majority has accepted (b, slot), v is chosen; it tells every learner
  with ``Chosen(slot, v)``. Replicas that missed a ``Chosen`` ask for it (``CatchUp``) when
  a heartbeat shows them behind.
* **Leader failover** (2.4, 3: "a single distinguished proposer" elected with timeouts):
  the leader sends heartbeats; a replica that hears none for a randomised timeout (from
  ``ctx.rng``) runs phase 1 with a higher ballot. A proposer that learns of a higher
  ballot (``Reject``) stops leading. Two proposers can duel (progress is not guaranteed,
  2.4) but safety never depends on who leads.

Durable state (kept across a crash, as the paper requires of acceptors, 2.2 end):
``promised``, ``accepted``, the highest round seen and the chosen log. Volatile: the role,
the promise tally and the proposals in flight (:meth:`Paxos.on_recover` forgets them).

**Flow control** (what keeps a leader that lost its majority from flooding the network):

* *A window* (3: a leader "can get α commands ahead", proposing commands ``i + 1`` to
  ``i + α`` once ``1`` to ``i`` are chosen): client payments go only to slots below
  ``first_unchosen + window``; the rest wait in the queue. Multi-Paxos implementations
  call it the pipeline limit (etcd-raft's ``MaxInflightMsgs`` plays the same part).
  Values P2c makes a new leader re-propose are not held back by it.
* *Retransmission with backoff*: an ``Accept`` not yet acknowledged is sent again, on a
  heartbeat, only to the acceptors that have not answered, first after
  ``2 * heartbeat``, then after twice the previous wait each time, up to
  ``max_backoff``. A lost message costs a retry soon; an acceptor that is down costs one
  message per slot per ``max_backoff``.

With both, a leader cut off from its majority sends heartbeats and a bounded trickle of
retries (at most ``window`` slots, each once per ``max_backoff`` per silent acceptor)
instead of every unchosen ``Accept`` to everyone each heartbeat for every new request.

Simplifications: the proposer is the only distinguished learner (2.3 allows several);
clients hand every request to every replica, so any new leader already has the queue; a
proposer does not propose a payment whose coin a chosen or in-flight value already
spends; no reconfiguration.

Byzantine behaviours:

* ``"lie"``: promises every prepare *claiming it accepted nothing* (hiding the values P2c
  must preserve) and accepts every accept whatever it promised. Between two honest halves
  that cannot hear each other it lets each side's proposer get a "majority" and choose
  its own value for the same slot.
* ``"equivocate"``: acts as a proposer with a ballot above every one it has seen, sends
  one half of the honest replicas a payment and the other half a payment of the same coin
  to another payee for one slot, and tells each half its value was chosen. Its
  accomplices (``coalition``) are left out of the split, and the rest are dealt
  alternately to the two sides (``engines/coalition.py``).
* ``"silent"``: crashed from the start.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Hashable

from minichain.sim import quorum
from minichain.sim.engine import Action, Broadcast, CancelTimer, Decide, Engine, NodeContext, Send, SetTimer
from minichain.sim.engines import EngineSpec, Silent, register
from minichain.sim.engines.coalition import NO_COALITION, split_honest
from minichain.sim.workload import ClientRequest, Payment

Ballot = tuple[int, int]          # (round, proposer id)
ZERO: Ballot = (0, -1)


@dataclass(frozen=True, slots=True)
class Noop:
    """The command a new leader proposes for a slot no acceptor in its quorum accepted."""

    def __repr__(self) -> str:
        return "noop"


NOOP = Noop()


# -- messages -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prepare:               # phase 1a
    ballot: Ballot
    low: int                 # the proposer knows every slot below ``low`` is chosen


@dataclass(frozen=True, slots=True)
class Promise:               # phase 1b
    ballot: Ballot
    # (slot, ballot, value) of the highest-numbered proposal accepted, for each slot >= low
    accepted: tuple[tuple[int, Ballot, Any], ...]


@dataclass(frozen=True, slots=True)
class Reject:                # "I promised a higher ballot" (a nack; 2.4's optimisation)
    ballot: Ballot
    promised: Ballot


@dataclass(frozen=True, slots=True)
class Accept:                # phase 2a
    ballot: Ballot
    slot: int
    value: Any


@dataclass(frozen=True, slots=True)
class Accepted:              # phase 2b, to the distinguished learner
    ballot: Ballot
    slot: int


@dataclass(frozen=True, slots=True)
class Chosen:                # the distinguished learner informs the others (2.3)
    slot: int
    value: Any


@dataclass(frozen=True, slots=True)
class Heartbeat:
    ballot: Ballot
    first_unchosen: int


@dataclass(frozen=True, slots=True)
class CatchUp:
    first_unchosen: int


MESSAGES = (Prepare, Promise, Reject, Accept, Accepted, Chosen, Heartbeat, CatchUp)

FOLLOWER, CANDIDATE, LEADER = "follower", "candidate", "leader"
TIMEOUT = "leader-timeout"
HEARTBEAT = "heartbeat"


@dataclass(slots=True)
class Proposal:
    """A value this leader proposed for a slot and has not seen chosen yet."""

    value: Any
    tally: quorum.Tally[bool]     # the acceptors that answered Accepted
    retry_at: float               # when the heartbeat next resends the Accept (local clock)
    backoff: float                # the wait before that; doubled after each resend


def highest_accepted(promises: list[tuple[tuple[int, Ballot, Any], ...]]) -> dict[int, tuple[Ballot, Any]]:
    """P2c: per slot, the value of the highest-numbered proposal any promise reports."""
    best: dict[int, tuple[Ballot, Any]] = {}
    for accepted in promises:
        for slot, ballot, value in accepted:
            if slot not in best or ballot > best[slot][0]:
                best[slot] = (ballot, value)
    return best


class Paxos(Engine):
    def __init__(
        self,
        ctx: NodeContext,
        *,
        timeout: float = 0.5,
        heartbeat: float = 0.1,
        catch_up_batch: int = 64,
        window: int = 16,
        max_backoff: float = 1.6,
    ) -> None:
        super().__init__(ctx)
        if heartbeat >= timeout:
            raise ValueError("the heartbeat must be shorter than the leader timeout")
        if window < 1:
            raise ValueError("the window must hold at least one slot")
        self.timeout = timeout
        self.heartbeat = heartbeat
        self.catch_up_batch = catch_up_batch
        self.window = window                        # 3: the leader's alpha
        self.first_retry = 2 * heartbeat            # the first wait for an Accepted
        self.max_backoff = max(max_backoff, self.first_retry)
        self.quorum = quorum.QuorumSystem.crash(ctx.n)
        # durable: acceptor state, the highest round seen, the chosen log
        self.promised: Ballot = ZERO
        self.accepted: dict[int, tuple[Ballot, Any]] = {}
        self.max_round = 0
        self.chosen: dict[int, Any] = {}
        self.first_unchosen = 0
        self.spent_coins: set[str] = set()
        self.pending: OrderedDict[Payment, None] = OrderedDict()
        self._reset_volatile()

    def _reset_volatile(self) -> None:
        self.role = FOLLOWER
        self.leader: int | None = None
        self.ballot: Ballot = ZERO                   # the ballot this node leads / tries
        self.promises: quorum.Tally[bool] | None = None
        self.promised_values: list[tuple[tuple[int, Ballot, Any], ...]] = []
        self.low = 0
        self.next_slot = 0
        # slot -> the proposal in flight (value, acceptors' tally, retransmission schedule)
        self.proposals: dict[int, Proposal] = {}
        self.last_sent: dict[int, float] = {}

    # -- engine interface ----------------------------------------------------------------

    def _timeout_timer(self) -> SetTimer:
        t = self.timeout
        return SetTimer(TIMEOUT, t + t * self.ctx.rng.random())

    def on_start(self) -> list[Action]:
        return [self._timeout_timer()]

    def on_recover(self) -> list[Action]:
        self._reset_volatile()
        return [self._timeout_timer()]

    def on_timer(self, name: Hashable) -> list[Action]:
        if name == TIMEOUT and self.role != LEADER:
            return self._start_phase1()
        if name == HEARTBEAT and self.role == LEADER:
            return self._heartbeat()
        return []

    def on_message(self, src: int, msg: Any) -> list[Action]:
        if isinstance(msg, ClientRequest):
            return self._on_client(msg.payment)
        handler = _HANDLERS.get(type(msg))
        return handler(self, src, msg) if handler else []

    # -- proposer: phase 1 -------------------------------------------------------------------

    def _see(self, ballot: Ballot) -> None:
        self.max_round = max(self.max_round, ballot[0])

    def _start_phase1(self) -> list[Action]:
        self.role = CANDIDATE
        self.leader = None
        self.max_round += 1
        self.ballot = (self.max_round, self.id)
        self.low = self.first_unchosen
        self.promises = quorum.Tally(self.quorum)
        self.promised_values = []
        self.proposals = {}
        actions: list[Action] = [self._timeout_timer(), Broadcast(Prepare(self.ballot, self.low), include_self=True)]
        return actions

    def _on_prepare(self, src: int, msg: Prepare) -> list[Action]:
        self._see(msg.ballot)
        if msg.ballot < self.promised:
            return [Send(src, Reject(msg.ballot, self.promised))]
        # P1a: promise never to accept a lower ballot; report what we accepted (for P2c).
        self.promised = msg.ballot
        actions: list[Action] = []
        if src != self.id:
            if self.role != FOLLOWER:
                actions += self._step_down()
            self.leader = src
            actions.append(self._timeout_timer())
        accepted = tuple((s, b, v) for s, (b, v) in sorted(self.accepted.items()) if s >= msg.low)
        actions.append(Send(src, Promise(msg.ballot, accepted)))
        return actions

    def _on_promise(self, src: int, msg: Promise) -> list[Action]:
        if self.role != CANDIDATE or msg.ballot != self.ballot or self.promises is None:
            return []
        if not self.promises.add(src, True):
            return []
        self.promised_values.append(msg.accepted)
        if self.promises.outcome(True) is quorum.Outcome.WON:
            return self._become_leader()
        return []

    def _become_leader(self) -> list[Action]:
        self.role = LEADER
        self.leader = self.id
        self.promises = None
        actions: list[Action] = [CancelTimer(TIMEOUT)]
        # P2c: re-propose the highest-numbered accepted value of every slot the quorum
        # reported; fill the gaps below the highest such slot with no-ops.
        best = highest_accepted(self.promised_values)
        top = max(best, default=self.low - 1)
        self.next_slot = max(self.low, top + 1)
        for slot in range(self.low, top + 1):
            if slot in self.chosen:
                continue
            value = best[slot][1] if slot in best else NOOP
            actions += self._propose(slot, value)
        self.promised_values = []
        actions += self._propose_pending()
        actions.append(SetTimer(HEARTBEAT, self.heartbeat))
        return actions

    def _step_down(self) -> list[Action]:
        was_leader = self.role == LEADER
        self.role = FOLLOWER
        self.promises = None
        self.proposals = {}
        return [CancelTimer(HEARTBEAT), self._timeout_timer()] if was_leader else [self._timeout_timer()]

    # -- proposer: phase 2 -------------------------------------------------------------------

    def _propose(self, slot: int, value: Any) -> list[Action]:
        now = self.ctx.now
        self.proposals[slot] = Proposal(value, quorum.Tally(self.quorum), now + self.first_retry, self.first_retry)
        for peer in self.ctx.others:
            self.last_sent[peer] = now
        return [Broadcast(Accept(self.ballot, slot, value), include_self=True)]

    def _propose_pending(self) -> list[Action]:
        if self.role != LEADER:
            return []
        in_flight = {p.value for p in self.proposals.values()}
        busy = set(self.spent_coins) | {v.coin for v in in_flight if isinstance(v, Payment)}
        actions: list[Action] = []
        for p in self.pending:
            if p in in_flight or p.coin in busy:
                continue
            while self.next_slot in self.chosen or self.next_slot in self.proposals:
                self.next_slot += 1
            if self.next_slot >= self.first_unchosen + self.window:
                break                      # 3: no more than alpha slots ahead; the rest wait
            busy.add(p.coin)
            actions += self._propose(self.next_slot, p)
            self.next_slot += 1
        return actions

    def _on_client(self, payment: Payment) -> list[Action]:
        if payment in self.pending or payment.coin in self.spent_coins:
            return []
        self.pending[payment] = None
        return self._propose_pending()

    # -- acceptor --------------------------------------------------------------------------

    def _on_accept(self, src: int, msg: Accept) -> list[Action]:
        self._see(msg.ballot)
        if msg.ballot < self.promised:                         # P1a
            return [Send(src, Reject(msg.ballot, self.promised))]
        actions: list[Action] = []
        if msg.ballot > self.promised and src != self.id and self.role != FOLLOWER:
            actions += self._step_down()
        self.promised = msg.ballot
        self.accepted[msg.slot] = (msg.ballot, msg.value)    # durable before answering
        if src != self.id:
            self.leader = src
            actions.append(self._timeout_timer())
        actions.append(Send(src, Accepted(msg.ballot, msg.slot)))
        return actions

    def _on_reject(self, src: int, msg: Reject) -> list[Action]:
        self._see(msg.promised)
        if self.role != FOLLOWER and msg.ballot == self.ballot and msg.promised > self.ballot:
            return self._step_down()                           # someone leads a higher ballot
        return []

    # -- learners --------------------------------------------------------------------------

    def _on_accepted(self, src: int, msg: Accepted) -> list[Action]:
        if self.role != LEADER or msg.ballot != self.ballot:
            return []
        proposal = self.proposals.get(msg.slot)
        if proposal is None:
            return []
        proposal.tally.add(src, True)
        if proposal.tally.outcome(True) is not quorum.Outcome.WON:
            return []
        # 2.3: a majority accepted (ballot, slot, value): it is chosen.
        del self.proposals[msg.slot]
        actions = self._learn(msg.slot, proposal.value)
        actions.append(Broadcast(Chosen(msg.slot, proposal.value)))
        return actions + self._propose_pending()      # the window may have moved

    def _on_chosen(self, src: int, msg: Chosen) -> list[Action]:
        return self._learn(msg.slot, msg.value)

    def _learn(self, slot: int, value: Any) -> list[Action]:
        if slot in self.chosen:
            return []
        self.chosen[slot] = value
        while self.first_unchosen in self.chosen:
            self.first_unchosen += 1
        if isinstance(value, Payment):
            self.spent_coins.add(value.coin)
            self.pending.pop(value, None)
            for p in [p for p in self.pending if p.coin == value.coin]:
                del self.pending[p]
        return [Decide(slot, value)]

    # -- liveness: heartbeats, retransmission, catch-up --------------------------------------

    def _heartbeat(self) -> list[Action]:
        now = self.ctx.now
        actions: list[Action] = []
        for slot, proposal in self.proposals.items():
            if now < proposal.retry_at - 1e-9:
                continue
            # A lost Accept or Accepted, or an acceptor that is down: ask again those that
            # have not answered, and wait twice as long before the next time (capped).
            msg = Accept(self.ballot, slot, proposal.value)
            for peer in self.ctx.others:
                if peer not in proposal.tally.votes:
                    actions.append(Send(peer, msg))
                    self.last_sent[peer] = now
            proposal.backoff = min(2 * proposal.backoff, self.max_backoff)
            proposal.retry_at = now + proposal.backoff
        for peer in self.ctx.others:
            if now - self.last_sent.get(peer, -1e9) >= self.heartbeat * 0.999:
                self.last_sent[peer] = now
                actions.append(Send(peer, Heartbeat(self.ballot, self.first_unchosen)))
        actions.append(SetTimer(HEARTBEAT, self.heartbeat))
        return actions

    def _on_heartbeat(self, src: int, msg: Heartbeat) -> list[Action]:
        self._see(msg.ballot)
        if msg.ballot < self.promised:
            return [Send(src, Reject(msg.ballot, self.promised))]
        actions: list[Action] = []
        if self.role != FOLLOWER and msg.ballot > self.ballot:
            actions += self._step_down()
        if self.role == FOLLOWER:
            self.leader = src
            actions.append(self._timeout_timer())
        if msg.first_unchosen > self.first_unchosen:
            actions.append(Send(src, CatchUp(self.first_unchosen)))
        return actions

    def _on_catch_up(self, src: int, msg: CatchUp) -> list[Action]:
        actions: list[Action] = []
        slot = msg.first_unchosen
        while len(actions) < self.catch_up_batch and slot < self.first_unchosen:
            if slot in self.chosen:
                actions.append(Send(src, Chosen(slot, self.chosen[slot])))
            slot += 1
        return actions


_HANDLERS = {
    Prepare: Paxos._on_prepare,
    Promise: Paxos._on_promise,
    Reject: Paxos._on_reject,
    Accept: Paxos._on_accept,
    Accepted: Paxos._on_accepted,
    Chosen: Paxos._on_chosen,
    Heartbeat: Paxos._on_heartbeat,
    CatchUp: Paxos._on_catch_up,
}


# -- Byzantine replicas ---------------------------------------------------------------------


class LyingPaxos(Engine):
    """``"lie"``: promises everything while hiding what it accepted, accepts everything."""

    honest = False

    def on_message(self, src: int, msg: Any) -> list[Action]:
        if isinstance(msg, Prepare):
            return [Send(src, Promise(msg.ballot, ()))]          # "I accepted nothing"
        if isinstance(msg, Accept):
            return [Send(src, Accepted(msg.ballot, msg.slot))]   # whatever it promised
        return []


class EquivocatingPaxos(LyingPaxos):
    """``"equivocate"``: a proposer that sends two conflicting values for one slot to the two
    halves of the honest replicas and tells each half that its value was chosen.
    ``coalition``: the ids of the Byzantine replicas (its own included), left out of the
    split."""

    def __init__(self, ctx: NodeContext, *, attack_after: float = 1.0,
                 coalition: frozenset[int] = NO_COALITION) -> None:
        super().__init__(ctx)
        self.attack_after = attack_after
        self.coalition = coalition
        self.max_round = 0
        self.max_slot = -1
        self.pending: list[Payment] = []
        self.seen: set[Any] = set()
        self.attacked = False

    def on_start(self) -> list[Action]:
        return [SetTimer("attack", self.attack_after)]

    def on_message(self, src: int, msg: Any) -> list[Action]:
        if isinstance(msg, ClientRequest):
            self.pending.append(msg.payment)
            return []
        for field in ("ballot", "promised"):
            b = getattr(msg, field, None)
            if b is not None:
                self.max_round = max(self.max_round, b[0])
        slot = getattr(msg, "slot", None)
        if slot is not None:
            self.max_slot = max(self.max_slot, slot)
        if isinstance(msg, (Accept, Chosen)):
            self.seen.add(msg.value)
        return super().on_message(src, msg)

    def on_timer(self, name: Hashable) -> list[Action]:
        if name != "attack" or self.attacked:
            return []
        self.attacked = True
        victim = next((p for p in self.pending if p not in self.seen), None) or Payment(-1, 0, "mallory-coin", "alice")
        twin = Payment(victim.client, victim.seq, victim.coin, victim.payee + "-mallory")
        ballot = (self.max_round + 100, self.id)
        slot = self.max_slot + 1
        actions: list[Action] = []
        for value, side in zip((victim, twin), split_honest(self.ctx.others, self.coalition)):
            for peer in side:
                actions += [Send(peer, Accept(ballot, slot, value)), Send(peer, Chosen(slot, value))]
        return actions


# -- registration ---------------------------------------------------------------------------


def build(ctx: NodeContext, behaviour: str | None = None, *, coalition: frozenset[int] = NO_COALITION,
          **options: Any) -> Engine:
    """An honest replica (``behaviour=None``, ``options`` go to :class:`Paxos`) or a Byzantine
    one; ``coalition`` is the ids of the run's Byzantine replicas (``engines/coalition.py``)."""
    if behaviour is None:
        return Paxos(ctx, **options)
    if behaviour == "silent":
        return Silent(ctx)
    if behaviour == "lie":
        return LyingPaxos(ctx)
    if behaviour == "equivocate":
        return EquivocatingPaxos(ctx, coalition=coalition)
    raise ValueError(f"paxos has no behaviour {behaviour!r}")


SPEC = register(EngineSpec(
    "paxos", "CFT", "crash", quorum.max_crash_faults, build, ("silent", "lie", "equivocate"),
    "Lamport, Paxos Made Simple, ACM SIGACT News 32(4), 2001",
    coalition=True,
))
