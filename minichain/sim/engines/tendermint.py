"""Tendermint: the consensus algorithm of Buchman, Kwon & Milosevic, as a sans-IO engine.

"The latest gossip on BFT consensus", arXiv:1807.04938 (v3, 2019), Algorithm 1. Comments
``# Alg. 1 lines a-b`` point at the lines of that algorithm this code implements.

``n`` validators with equal voting power decide one value per *height*; a height runs in
*rounds*, each with a proposer chosen round-robin (``proposer(h, r) = (h + r) mod n``) and
three steps -- propose, prevote, precommit. "2f + 1" is "more than two thirds of the voting
power" and "f + 1" "more than one third" (``quorum.two_thirds`` / ``quorum.one_third``;
both are the familiar 2f + 1 and f + 1 when n = 3f + 1). A validator *locks* on a value
when it precommits it (lockedValue/lockedRound) and prevotes for another value only when
shown 2f + 1 prevotes for it from a round at or after its lock (line 28); validValue/
validRound carry the latest value that gathered 2f + 1 prevotes, which later proposers
re-propose. Timeouts grow linearly with the round, so after GST a round eventually lasts
long enough for correct validators to decide, and ``f + 1`` messages of a higher round
pull a validator into that round (line 55).

The "upon" rules are conditions on the message log, so we evaluate them to a fixpoint
after every input (in line order, the decision rule of line 49 first): what fires is
exactly what the algorithm says should fire, whatever order the messages came in.

What we model and what we simplify:

* **Values.** A value is a :class:`Block` of client payments, and the value is its own
  ``id(v)``. ``valid(v)``: a non-empty block of at most ``max_block`` payments that spend
  distinct coins, none of them already spent in this validator's ledger. Deciding a block
  appends its payments to the ledger, one ``Decide`` per payment at its ledger position.
* **getValue() and empty heights.** The paper's ``getValue()`` always returns something.
  Ours takes the oldest pending payments (up to ``max_block``) and may find none; then
  the proposer proposes nothing and the round times out. So that an idle network does
  not spin through empty heights forever, round 0 of a height waits until the validator
  has a pending payment or hears from another validator at that height (CometBFT's
  ``create_empty_blocks = false``). Other rounds start at once.
* **Signatures and gossip.** The simulator cannot forge ``src``. Messages carry their
  signer (``sender``) and may be relayed; we compute no signatures and our Byzantine
  behaviours never sign as someone else (the paper's assumption). The paper assumes
  gossip eventually delivers every message; our network loses messages (loss, partitions),
  so a validator that made no progress for ``status_interval`` multicasts STATUS and peers
  answer: at its height with their own messages of that height (and the proposals they
  hold); above it with the decision evidence (the proposal and 2f + 1 precommits) of each
  height it missed. A peer that sent nothing of the last height we decided is sent our
  STATUS now and then (``engines/nudge.py``), and a validator that sees a STATUS from
  above asks back at once: one that missed heights whole would otherwise wait for nothing.
* **Durability.** A crash keeps the engine object (the paper's state is on disk); on
  recovery the validator re-arms the timeout of its current step.

Byzantine behaviours (``behaviour=``): "equivocate" (as proposer, sends its block to
some validators and to the others a twin block whose first payment is replaced by a
conflicting one spending the same coin; as a voter, double-votes), "double-vote" (answers every validator's prevote/precommit with the same
vote, so it votes for every value anyone voted for -- a blind broadcast of two votes
would not work, receivers count one vote per voter), "withhold" (never sends prevotes or
precommits) and "silent" (:class:`Silent`: sends nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Hashable

from minichain.sim import quorum
from minichain.sim.engine import Action, Broadcast, Decide, Engine, NodeContext, Send, SetTimer
from minichain.sim.engines import EngineSpec, Silent, register
from minichain.sim.engines.nudge import Nudges
from minichain.sim.quorum import Outcome, QuorumSystem, Tally
from minichain.sim.workload import CLIENT, ClientRequest, Payment

PROPOSE, PREVOTE, PRECOMMIT = 0, 1, 2          # step_p; ordered, for "step_p >= prevote" (line 36)
STEP_NAMES = ("propose", "prevote", "precommit")
NIL = None                                     # the nil vote


# -- messages (``sender`` is the signer) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Proposal:
    height: int
    round: int
    value: Any
    valid_round: int
    sender: int


@dataclass(frozen=True, slots=True)
class Prevote:
    height: int
    round: int
    value: Any          # id(v), or NIL
    sender: int


@dataclass(frozen=True, slots=True)
class Precommit:
    height: int
    round: int
    value: Any
    sender: int


@dataclass(frozen=True, slots=True)
class Status:
    """Retransmission request: the sender's height and round. ``nudge`` marks a reminder
    sent to a validator that may be behind (see ``_on_status_timer``): it asks for
    nothing, and a validator at the same height does not take it for work."""

    height: int
    round: int
    sender: int
    nudge: bool = False


@dataclass(frozen=True, slots=True)
class Gossip:
    """Signed messages relayed in one bundle (a retransmission or a height's decision evidence)."""

    messages: tuple
    sender: int


_CONSENSUS = (Proposal, Prevote, Precommit)


@dataclass(frozen=True)
class TendermintConfig:
    # timeoutX(r) = X + r * X_delta (section 4: timeouts grow with the round).
    timeout_propose: float = 1.0
    timeout_propose_delta: float = 0.5
    timeout_prevote: float = 0.5
    timeout_prevote_delta: float = 0.25
    timeout_precommit: float = 0.5
    timeout_precommit_delta: float = 0.25
    status_interval: float = 0.5      # how long without a decision before STATUS
    nudge_backoff_max: int = 8        # status intervals between two reminders to a peer left behind, at most
    max_block: int = 100              # payments per block

    def propose(self, r: int) -> float:
        return self.timeout_propose + r * self.timeout_propose_delta

    def prevote(self, r: int) -> float:
        return self.timeout_prevote + r * self.timeout_prevote_delta

    def precommit(self, r: int) -> float:
        return self.timeout_precommit + r * self.timeout_precommit_delta


def proposer(height: int, round: int, n: int) -> int:
    """Round-robin proposer (equal voting power)."""
    return (height + round) % n


@dataclass(frozen=True, slots=True)
class Block:
    """A proposed value: payments in the order they join the ledger."""

    payments: tuple[Payment, ...]

    def __repr__(self) -> str:
        return f"block({', '.join(map(repr, self.payments))})"


def conflicting_twin(block: Block) -> Block:
    """The double spend an equivocating proposer pairs with ``block``: its first payment
    replaced by one spending the same coin to another payee."""
    first, *rest = block.payments
    return Block((replace(first, payee="attacker"), *rest))


def tendermint_quorum(n: int) -> QuorumSystem:
    """Tendermint's thresholds: > 2/3 to win, > 1/3 for the round skip (section 2)."""
    return QuorumSystem(n, quorum.max_byzantine_faults(n), quorum.two_thirds(n), quorum.one_third(n), "byzantine")


class HeightLog:
    """The message log of one height.

    Proposals: those of each round's proposer (an equivocating proposer may have sent
    several; we prevote on the first one received, but any of them can gather a quorum,
    lines 36 and 49). Votes: for "2f + 1 ⟨PREVOTE, h, r, id(v)⟩" we count the distinct
    validators that sent a prevote for v -- a validator that voted for two values counts
    for both, as the paper's message log does (quorum intersection still leaves an honest
    validator in common) -- and for "2f + 1 ⟨PREVOTE, h, r, ∗⟩" the distinct validators
    that sent any prevote.
    """

    def __init__(self, q: QuorumSystem) -> None:
        self.q = q
        self.proposals: dict[int, dict[Any, Proposal]] = {}
        self.prevotes: dict[int, Tally] = {}                    # round -> one vote per validator
        self.precommits: dict[int, Tally] = {}
        self.prevote_support: dict[int, dict[Any, Tally]] = {}  # round -> value -> who voted for it
        self.precommit_support: dict[int, dict[Any, Tally]] = {}
        self.prevote_msgs: dict[int, dict[tuple[int, Any], Prevote]] = {}
        self.precommit_msgs: dict[int, dict[tuple[int, Any], Precommit]] = {}
        self.round_senders: dict[int, Tally] = {}      # who sent anything in a round (line 55)
        self.fired: set[tuple[int, int]] = set()       # (line, round): "for the first time"

    def _tally(self, table: dict[int, Tally], r: int) -> Tally:
        t = table.get(r)
        if t is None:
            t = table[r] = Tally(self.q)
        return t

    def _support(self, table: dict[int, dict[Any, Tally]], r: int, value: Any) -> Tally:
        per_value = table.setdefault(r, {})
        t = per_value.get(value)
        if t is None:
            t = per_value[value] = Tally(self.q)
        return t

    def add(self, m: Any, n: int) -> bool:
        """Record ``m``; False if it was nothing new."""
        r = m.round
        if isinstance(m, Proposal):
            if m.sender != proposer(m.height, r, n):
                return False
            seen = self.proposals.setdefault(r, {})
            if m.value in seen:
                return False
            seen[m.value] = m
        elif isinstance(m, Prevote):
            if not self._support(self.prevote_support, r, m.value).add(m.sender, m.value):
                return False
            self._tally(self.prevotes, r).add(m.sender, m.value)
            self.prevote_msgs.setdefault(r, {})[(m.sender, m.value)] = m
        else:
            if not self._support(self.precommit_support, r, m.value).add(m.sender, m.value):
                return False
            self._tally(self.precommits, r).add(m.sender, m.value)
            self.precommit_msgs.setdefault(r, {})[(m.sender, m.value)] = m
        self._tally(self.round_senders, r).add(m.sender, True)
        return True

    def first_proposal(self, r: int) -> Proposal | None:
        seen = self.proposals.get(r)
        return next(iter(seen.values())) if seen else None

    def all_proposals(self) -> list[Proposal]:
        return [p for r in sorted(self.proposals) for p in self.proposals[r].values()]

    def prevotes_for(self, r: int, value: Any) -> bool:
        t = self.prevote_support.get(r, {}).get(value)
        return t is not None and t.outcome(value) is Outcome.WON

    def precommits_for(self, r: int, value: Any) -> bool:
        t = self.precommit_support.get(r, {}).get(value)
        return t is not None and t.outcome(value) is Outcome.WON

    def any_prevotes(self, r: int) -> bool:
        t = self.prevotes.get(r)
        return t is not None and t.any_quorum()

    def any_precommits(self, r: int) -> bool:
        t = self.precommits.get(r)
        return t is not None and t.any_quorum()

    def messages(self) -> tuple:
        """Everything in the log, for gossip: proposals, then each round's votes."""
        out: list = self.all_proposals()
        for table in (self.prevote_msgs, self.precommit_msgs):
            for r in sorted(table):
                out.extend(m for _, m in sorted(table[r].items(), key=lambda kv: kv[0][0]))
        return tuple(out)

    def precommits_of(self, r: int, value: Any) -> tuple[Precommit, ...]:
        return tuple(m for (_, v), m in sorted(self.precommit_msgs.get(r, {}).items(), key=lambda kv: kv[0][0])
                     if v == value)


class Tendermint(Engine):
    """One Tendermint validator. ``behaviour`` is None (honest) or a Byzantine behaviour."""

    BEHAVIOURS = ("equivocate", "double-vote", "withhold")

    def __init__(self, ctx: NodeContext, *, config: TendermintConfig | None = None,
                 behaviour: str | None = None) -> None:
        super().__init__(ctx)
        if behaviour is not None and behaviour not in self.BEHAVIOURS:
            raise ValueError(f"Tendermint has no behaviour {behaviour!r} (silent is the Silent engine)")
        self.behaviour = behaviour
        self.honest = behaviour is None
        self.cfg = config or TendermintConfig()
        self.n = ctx.n
        self.q = tendermint_quorum(ctx.n)
        # Alg. 1 lines 1-9
        self.h = 0
        self.round = 0
        self.step = PROPOSE
        self.decision: dict[int, Block] = {}
        self.locked_value: Any = None
        self.locked_round = -1
        self.valid_value: Any = None
        self.valid_round = -1
        self.log = HeightLog(self.q)
        # ours: the ledger, the workload, catch-up and retransmission
        self.ledger: list[Payment] = []
        self.spent: set[str] = set()
        self.pending: dict[str, Payment] = {}
        self.waiting = False                          # round 0 deferred until there is work
        self.future: dict[int, list] = {}              # messages of heights above ours
        self.evidence: dict[int, tuple] = {}           # height -> (proposal, 2f + 1 precommits)
        self.max_seen_height = 0
        self._status_timer = False
        self._status_mark: int | None = None
        self._echoed: set[tuple] = set()
        self.peer_height: dict[int, int] = {}          # peer -> the highest height it sent us a message of
        self._nudges = Nudges(self.cfg.nudge_backoff_max)

    # -- helpers -----------------------------------------------------------------------------

    def is_proposer(self, r: int | None = None) -> bool:
        return proposer(self.h, self.round if r is None else r, self.n) == self.id

    def valid(self, v: Any) -> bool:
        if not isinstance(v, Block) or not 0 < len(v.payments) <= self.cfg.max_block:
            return False
        coins = [p.coin for p in v.payments if isinstance(p, Payment)]
        return len(coins) == len(v.payments) == len(set(coins)) and not self.spent.intersection(coins)

    def get_value(self) -> Block | None:
        payments = [p for p in self.pending.values() if p.coin not in self.spent][: self.cfg.max_block]
        return Block(tuple(payments)) if payments else None

    def _active(self) -> bool:
        return not self.waiting or self.max_seen_height > self.h

    def _mark(self) -> int:
        # Progress is a decision: rounds that churn without one are what gossip must repair.
        return self.h

    def _laggards(self) -> list[int]:
        """Peers that sent us nothing of the height we last decided, or later: perhaps
        stuck below it (see ``engines/nudge.py``)."""
        return [j for j in self.ctx.others if self.peer_height.get(j, -1) < self.h - 1]

    def _finish(self, actions: list[Action]) -> list[Action]:
        if not self._status_timer and (self._active() or self._laggards()):
            self._status_timer = True
            self._status_mark = self._mark()
            actions.append(SetTimer("status", self.cfg.status_interval))
        return actions

    # -- output, where Byzantine behaviour differs ---------------------------------------------

    def _broadcast_proposal(self, m: Proposal) -> list[Action]:
        self.log.add(m, self.n)
        if self.behaviour == "equivocate" and isinstance(m.value, Block) and m.value.payments:
            twin = replace(m, value=conflicting_twin(m.value))
            return [Send(dst, m if i % 2 == 0 else twin) for i, dst in enumerate(self.ctx.others)]
        return [Broadcast(m)]

    def _broadcast_vote(self, m: Prevote | Precommit) -> list[Action]:
        self.log.add(m, self.n)                        # we receive our own broadcast
        if self.behaviour is not None:
            return []       # withhold: never vote; double-vote/equivocate: vote only by echo
        return [Broadcast(m)]

    def _echo(self, src: int, m: Any) -> list[Action]:
        """Double voting: answer each validator's vote with the same vote of ours."""
        if not isinstance(m, (Prevote, Precommit)):
            return []
        key = (type(m).__name__, m.height, m.round, src)
        if key in self._echoed:
            return []
        self._echoed.add(key)
        return [Send(src, replace(m, sender=self.id))]

    # -- entry points ------------------------------------------------------------------------

    def on_start(self) -> list[Action]:
        return self._finish(self.start_round(0) + self._run_rules())   # Alg. 1 line 10

    def on_recover(self) -> list[Action]:
        # Timers died with the crash; re-arm the one of the current step and ask for news.
        self._status_timer = False
        actions: list[Action] = [Broadcast(Status(self.h, self.round, self.id))]
        h, r, fired = self.h, self.round, self.log.fired
        if not self.waiting and self.step == PROPOSE:
            actions.append(SetTimer(("propose", h, r), self.cfg.propose(r)))
        elif self.step == PREVOTE and (34, r) in fired:
            actions.append(SetTimer(("prevote", h, r), self.cfg.prevote(r)))
        if (47, r) in fired:
            actions.append(SetTimer(("precommit", h, r), self.cfg.precommit(r)))
        return self._finish(actions + self._run_rules())

    def on_message(self, src: int, msg: Any) -> list[Action]:
        if src == CLIENT:
            if isinstance(msg, ClientRequest):
                return self._finish(self._on_request(msg.payment) + self._run_rules())
            return []
        if getattr(msg, "sender", None) != src:
            return []                                  # not authenticated as its sender
        for m in (msg.messages if isinstance(msg, Gossip) else (msg,)):
            if isinstance(m, (*_CONSENSUS, Status)) and 0 <= m.sender < self.n:
                self.peer_height[m.sender] = max(m.height, self.peer_height.get(m.sender, -1))
        actions: list[Action] = []
        if isinstance(msg, Gossip):
            for inner in msg.messages:
                if isinstance(inner, _CONSENSUS):
                    actions += self._receive(inner)
        elif isinstance(msg, Status):
            actions += self._on_status(msg)
        elif isinstance(msg, _CONSENSUS):
            if self.behaviour in ("double-vote", "equivocate"):
                actions += self._echo(src, msg)
            actions += self._receive(msg)
        else:
            return []
        return self._finish(actions + self._run_rules())

    def on_timer(self, name: Hashable) -> list[Action]:
        if name == "status":
            self._status_timer = False
            return self._finish(self._on_status_timer())
        kind, h, r = name  # type: ignore[misc]
        actions: list[Action] = []
        if kind == "propose":
            actions = self.on_timeout_propose(h, r)
        elif kind == "prevote":
            actions = self.on_timeout_prevote(h, r)
        elif kind == "precommit":
            actions = self.on_timeout_precommit(h, r)
        return self._finish(actions + self._run_rules())

    # -- input ---------------------------------------------------------------------------------

    def _on_request(self, p: Payment) -> list[Action]:
        if not isinstance(p, Payment) or p.coin in self.spent or p.coin in self.pending:
            return []
        self.pending[p.coin] = p
        if self.waiting:
            return self._end_wait()
        return []

    def _receive(self, m: Any) -> list[Action]:
        if m.height > self.h:
            self.future.setdefault(m.height, []).append(m)
            self.max_seen_height = max(self.max_seen_height, m.height)
            return []
        if m.height < self.h or not self.log.add(m, self.n):
            return []
        if self.waiting and m.sender != self.id:
            return self._end_wait()                    # others are at work on this height
        return []

    def _end_wait(self) -> list[Action]:
        self.waiting = False
        return self._start_round_body()

    # -- Alg. 1 ----------------------------------------------------------------------------------

    def start_round(self, r: int) -> list[Action]:
        # Alg. 1 lines 11-13
        self.round = r
        self.step = PROPOSE
        if r == 0 and not self.pending and not self._heard_at_height():
            self.waiting = True                        # ours: no empty heights while idle
            return []
        self.waiting = False
        return self._start_round_body()

    def _heard_at_height(self) -> bool:
        return any(s != self.id for t in self.log.round_senders.values() for s in t.votes)

    def _start_round_body(self) -> list[Action]:
        r = self.round
        if self.is_proposer():
            # Alg. 1 lines 14-19
            proposal = self.valid_value if self.valid_value is not None else self.get_value()
            if proposal is not None:
                return self._broadcast_proposal(Proposal(self.h, r, proposal, self.valid_round, self.id))
        # Alg. 1 lines 20-21 (and a proposer with nothing to propose waits like the others)
        return [SetTimer(("propose", self.h, r), self.cfg.propose(r))]

    def _run_rules(self) -> list[Action]:
        """Fire upon rules until none applies."""
        actions: list[Action] = []
        while True:
            fired = self._fire_one()
            if fired is None:
                return actions
            actions += fired

    def _fire_one(self) -> list[Action] | None:
        log, h, r = self.log, self.h, self.round
        # Alg. 1 lines 49-54: a proposal with 2f + 1 precommits for it, in any round, decides.
        for prop in log.all_proposals():
            pr = prop.round
            if (49, pr) not in log.fired and log.precommits_for(pr, prop.value):
                log.fired.add((49, pr))
                if self.valid(prop.value):                           # line 50
                    return self._decide(prop, pr)
        # Alg. 1 lines 55-56: f + 1 messages of a higher round: skip to it.
        higher = [rr for rr, t in log.round_senders.items() if rr > r and t.weak_support(True)]
        if higher:
            return self.start_round(max(higher))
        prop = log.first_proposal(r)
        if self.step == PROPOSE and not self.waiting and prop is not None:
            v, vr = prop.value, prop.valid_round
            if vr == -1:
                # Alg. 1 lines 22-27
                ok = self.valid(v) and (self.locked_round == -1 or self.locked_value == v)
                return self._prevote(v if ok else NIL)
            if 0 <= vr < r and log.prevotes_for(vr, v):
                # Alg. 1 lines 28-33
                ok = self.valid(v) and (self.locked_round <= vr or self.locked_value == v)
                return self._prevote(v if ok else NIL)
        if self.step == PREVOTE and (34, r) not in log.fired and log.any_prevotes(r):
            # Alg. 1 lines 34-35
            log.fired.add((34, r))
            return [SetTimer(("prevote", h, r), self.cfg.prevote(r))]
        prop = next((p for p in log.proposals.get(r, {}).values() if log.prevotes_for(r, p.value)), None)
        if self.step >= PREVOTE and prop is not None and (36, r) not in log.fired and self.valid(prop.value):
            # Alg. 1 lines 36-43
            log.fired.add((36, r))
            actions: list[Action] = []
            if self.step == PREVOTE:
                self.locked_value, self.locked_round = prop.value, r         # lines 38-39
                actions = self._broadcast_vote(Precommit(h, r, prop.value, self.id))   # line 40
                self.step = PRECOMMIT                                        # line 41
            self.valid_value, self.valid_round = prop.value, r               # lines 42-43
            return actions
        if self.step == PREVOTE and log.prevotes_for(r, NIL):
            # Alg. 1 lines 44-46
            self.step = PRECOMMIT
            return self._broadcast_vote(Precommit(h, r, NIL, self.id))
        if (47, r) not in log.fired and log.any_precommits(r):
            # Alg. 1 lines 47-48
            log.fired.add((47, r))
            return [SetTimer(("precommit", h, r), self.cfg.precommit(r))]
        return None

    def _prevote(self, value: Any) -> list[Action]:
        self.step = PREVOTE                                                  # lines 27 / 33
        return self._broadcast_vote(Prevote(self.h, self.round, value, self.id))   # lines 24/26, 30/32

    def _decide(self, prop: Proposal, r: int) -> list[Action]:
        # Alg. 1 lines 51-54
        v = prop.value
        h = self.h
        self.decision[h] = v                                                 # line 51
        self.evidence[h] = (prop,) + self.log.precommits_of(r, v)
        actions: list[Action] = []
        for p in v.payments:
            self.ledger.append(p)
            self.spent.add(p.coin)
            self.pending.pop(p.coin, None)
            actions.append(Decide(len(self.ledger) - 1, p))
        self.h = h + 1                                                       # line 52
        self.locked_value, self.locked_round = None, -1                      # line 53
        self.valid_value, self.valid_round = None, -1
        self.log = HeightLog(self.q)
        actions += self.start_round(0)                                       # line 54
        for m in self.future.pop(self.h, []):
            actions += self._receive(m)
        for old in [k for k in self.future if k < self.h]:
            del self.future[old]
        return actions

    def on_timeout_propose(self, height: int, r: int) -> list[Action]:
        # Alg. 1 lines 57-60
        if height == self.h and r == self.round and self.step == PROPOSE and not self.waiting:
            return self._prevote(NIL)
        return []

    def on_timeout_prevote(self, height: int, r: int) -> list[Action]:
        # Alg. 1 lines 61-64
        if height == self.h and r == self.round and self.step == PREVOTE:
            self.step = PRECOMMIT
            return self._broadcast_vote(Precommit(self.h, r, NIL, self.id))
        return []

    def on_timeout_precommit(self, height: int, r: int) -> list[Action]:
        # Alg. 1 lines 65-67
        if height == self.h and r == self.round:
            return self.start_round(r + 1)
        return []

    # -- retransmission (ours: the paper's gossip assumption over a lossy network) ----------------

    def _on_status_timer(self) -> list[Action]:
        if self._active() and self._mark() == self._status_mark:     # no decision for a whole interval
            return [Broadcast(Status(self.h, self.round, self.id))]
        # A validator that missed heights whole (crashed while the clients sent them) waits
        # for nothing and never asks: remind it where we are, less and less often.
        return [Send(j, Status(self.h, self.round, self.id, nudge=True)) for j in self._nudges.due(self._laggards())]

    def _on_status(self, st: Status) -> list[Action]:
        if st.height < self.h:
            # It missed decisions: the evidence of each height from its own up to ours.
            bundle = tuple(m for hh in range(st.height, self.h) for m in self.evidence.get(hh, ()))
            return [Send(st.sender, Gossip(bundle, self.id))] if bundle else []
        if st.height > self.h:
            # It is ahead: ask it at once for the evidence of the heights we missed.
            self.max_seen_height = max(self.max_seen_height, st.height)
            return [Send(st.sender, Status(self.h, self.round, self.id))]
        if st.nudge:
            return []                                  # a reminder from a peer no further than we are
        # Same height: gossip every message of the height we hold, ours and those we received --
        # relaying the others' is what lets every correct validator see the same votes, even
        # a Byzantine validator's votes that were meant for some of us only.
        actions: list[Action] = self._end_wait() if self.waiting else []   # it is at work on our height
        bundle = self.log.messages()
        if not self.honest:
            bundle = tuple(m for m in bundle if m.sender != self.id)   # no leaking what it withheld
        if bundle:
            actions.append(Send(st.sender, Gossip(bundle, self.id)))
        return actions


def build(ctx: NodeContext, behaviour: str | None = None, config: TendermintConfig | None = None) -> Engine:
    if behaviour == "silent":
        return Silent(ctx)
    return Tendermint(ctx, config=config, behaviour=behaviour)


SPEC = register(EngineSpec(
    "tendermint", "BFT", "byzantine", quorum.max_byzantine_faults, build,
    ("silent", "equivocate", "double-vote", "withhold"),
    "Buchman, Kwon & Milosevic, The latest gossip on BFT consensus, arXiv:1807.04938, 2018",
))
