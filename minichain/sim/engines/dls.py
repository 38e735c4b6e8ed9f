"""Dwork, Lynch & Stockmeyer, "Consensus in the Presence of Partial Synchrony" (JACM 35(2),
1988) -- the round-based algorithms of its section 3, as a sans-IO engine replicating a
log of payments.

Two registered engines share this module:

* ``"dls"`` -- Algorithm 1 (section 3.2.1), fail-stop and omission faults, N >= 2t + 1.
* ``"dls-byz"`` -- Algorithm 2 (section 3.2.2), Byzantine faults with authentication,
  N >= 3t + 1: every statement that is relayed carries the signatures that make it
  checkable.

One class with a ``byzantine`` switch implements both, because the two algorithms are the
same phases with different thresholds and proofs; registering them under two names lets
the comparison put each beside the fault model it was written for.

**The round model** (section 3.1, "the basic round model"): time is cut into rounds of
``round_time`` seconds of each node's local clock; a message sent in a round either
arrives within it or is treated as lost. Before GST the network may delay messages
arbitrarily (``Network.asynchronous_until``), so they arrive too late and are dropped;
after GST every message between correct nodes arrives within its round. (We accept a
message anywhere in the phase it belongs to, not only in its exact round: that only
helps, and safety never depends on timing.) Section 4's distributed clocks are not
modelled; instead a small synchronizer moves a node's round clock forward to a phase
that ``t + 1`` nodes (one, in the omission version) have been seen in, so skewed clocks
converge on the fastest correct one (:meth:`DLS._synchronize`).

**Phases** (3.2.1): rounds are grouped four to a phase; phase ``k`` (from 1) *belongs to*
node ``k mod N``. Each phase is a trying phase of three rounds followed by a one-round
lock-release phase:

1. round ``4k-3``: every node sends the phase owner its *acceptable* values that are also
   *proper* -- acceptable: it holds no lock on any other value; proper: a value some
   client really submitted (see below);
2. round ``4k-2``: if the owner heard from enough nodes (``N - t``; in the Byzantine
   version the quorum ``ceil((N + t + 1) / 2)``, which is ``N - t`` when ``N = 3t + 1``)
   that some value ``v`` is acceptable, it broadcasts ``lock v``; a node that receives it
   locks ``v`` with phase ``k`` and acknowledges;
3. round ``4k-1``: an owner with enough acknowledgements (``t + 1``, or ``2t + 1`` in the
   Byzantine version) *decides* ``v``;
4. round ``4k`` (lock release): every node broadcasts its lock; a node holding a lock on
   ``v`` from phase ``h`` that learns of a lock on ``w != v`` from a phase ``h' >= h``
   releases its lock (Lemma 3.3: after GST this leaves one locked value).

Safety is Lemma 3.2 / 3.5: a decision at phase ``k`` means at least ``t + 1`` correct
nodes locked ``v``; while they keep it, no other value is acceptable to ``N - t`` nodes,
so no other value is ever locked at a later phase. Termination (Theorem 3.1/3.2): the
first phase after GST that belongs to a correct node and follows a lock release decides.

**Authentication** (3.2.2): a report, a lock and an acknowledgement are *signed*: the
owner's ``Lock`` carries the ``N - t`` signed reports that make ``v`` acceptable (its
proof of acceptability), and a lock announced in the lock-release round is the owner's
signed ``Lock`` itself, so a Byzantine node can neither lock a value nobody found
acceptable nor make correct nodes release a lock with an invented one. Signatures are
modelled by the ``signer`` field of a frozen statement: correct nodes only sign as
themselves, and the Byzantine replicas in this module never forge (unforgeability is the
model's assumption, not something the simulator enforces).

**Decisions of the other nodes.** In the paper only a phase's owner decides, and every
correct node eventually decides when it next owns a phase. For a log that is slow, so a
node that decides broadcasts a signed *claim* ``Decided(v)``; in the fail-stop/omission
version one claim is enough (nobody lies). In the Byzantine version the owner's claim
carries the ``2t + 1`` signed acknowledgements it decided on; each node that holds that
lock answers with a signed :class:`Commit` -- a promise to keep the lock against any
other lock of its phase -- and the owner broadcasts the ``2t + 1`` commits as the
*certificate* a node that checks it decides on (:meth:`DLS.certified` says why commits
and not the acknowledgements: issue 21's ``late-certificate`` owner). Claims without a
certificate count when ``t + 1`` distinct nodes sign one value (one of them is correct;
a liar that claims two values counts for both, which is harmless: it is at most ``t`` of
the ``t + 1``). So one owner phase settles a slot in both versions, as in PBFT or
HotStuff, where a quorum certificate moves every replica on. Before certificates it
took ``t + 1`` owner phases to gather ``t + 1`` claims, with every node announcing its
lock in each of them: at n = 4 a slot every 0.8 s (49 of 70 payments in the
comparison's fault-free run), at n = 25 some 5,500 messages per decision. Now it costs
``4(N - 1)`` messages in the omission version (report, lock, acknowledgement, claim) and
``6(N - 1)`` in the Byzantine one (the claim with the acknowledgements, the commits, the
claim with the commits); the certificates carry the ``O(N)`` signatures instead, so a
decision costs ``O(N^2)`` bits (signatures are modelled, not counted).

**Multi-slot** (our choice): the log is decided by a sequence of DLS instances, run
*sequentially* (the ``slot`` of the messages is the instance): a node's messages concern
its lowest instance not yet settled, and phases keep running across instances (phase
``k``'s owner tries that node's current instance). One instance at a time keeps the
paper's algorithm untouched: locks, proofs and phases are per instance. A node that falls
behind asks a node that is ahead (``CatchUp``) and gets the claims of the instances it
missed.

**Batches** (our choice, as Tendermint decides blocks): the value an instance decides is
a :class:`Batch` of payments, and deciding it appends them to the log, one ``Decide``
per payment at consecutive positions (so the harness counts payments, as it does for
Tendermint). The paper's values are atoms; we lift its definitions to batches without
changing its rules:

* *acceptable*: a node locked on a batch finds that batch alone acceptable; an unlocked
  node finds acceptable any batch of payments that are proper to it. Its report lists
  the locked batch, or (unlocked) its proper payments, and :func:`finds_acceptable`
  reads it either way;
* *proper*: a batch is proper when each of its payments is, and it is well formed (1 to
  ``max_batch`` payments, each coin once: :func:`well_formed`, checked by every node that
  locks);
* the owner proposes the best-supported value: a batch someone is locked on, if
  ``N - t`` reports find it acceptable, or :meth:`DLS.fresh_batch`, the oldest payments
  that one set of ``N - t`` reports all list. In the Byzantine version, the proof is
  that set of reports.

Without batches a phase decided one payment at most, 2.5 a second with 0.1 s rounds.
That is close to the comparison's 2 a second, so any lost phase (a crashed owner, a lost
message, a skewed clock, the time before GST) left a backlog that never cleared: ``dls``
committed 56 of 70 payments with a crashed node, 42 with 30% loss, 46 after GST. A batch
clears a backlog in one phase. The price: a payment still waits for the next phase, and
messages get bigger. A report lists up to ``max_batch`` payments, and a Byzantine lock
carries ``N - t`` such reports, but messages are counted, not bytes.

**Proper values** (strong unanimity: only a value some client submitted may be decided).
A node's PROPER set starts as the payments clients handed it. As in 3.2.1, reports and
locks carry the sender's PROPER set (its oldest ``max_batch`` payments, a bound of ours)
and a receiver adds them to its own; in the Byzantine version (3.2.2) a value becomes
proper once ``t + 1`` distinct nodes say it is in theirs. A value a node locks is proper
to it (a valid lock shows ``N - t`` nodes found it proper). A payment already decided, or
whose coin the decided log spends, is no longer proper (the state machine would reject
it). We leave out 3.2.2's "2t + 1 initial values without t + 1 equal ones: all of V"
rule, which only matters when every value is allowed.

Byzantine behaviours, in both versions:

* ``"lie"``: reports every value it knows as acceptable whatever it locked, acknowledges
  every lock, never releases, and claims conflicting decisions -- one value to one half of
  the honest replicas, a payment of the same coin to another payee to the other half
  (its accomplices, ``coalition``, are left out of the halves: ``engines/coalition.py``). The
  omission version trusts a claim and commits both: a double spend. The Byzantine
  version needs ``t + 1`` claims or a certificate (which a liar cannot make alone) and is
  unmoved.
* ``"equivocate"``: as ``"lie"``, and as a phase owner it sends conflicting locks to the
  two halves.
* ``"late-certificate"`` (:class:`LateCertificateDLS`): as a phase owner it sends two locks
  of one phase, keeps the certificate of one back and hands it to one node once a later
  owner locked another value -- the attack that split slots when acknowledgements were
  the certificate (issue 21).
* ``"silent"``: crashed from the start.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Hashable

from minichain.sim import quorum
from minichain.sim.engine import Action, Broadcast, Decide, Engine, NodeContext, Send, SetTimer
from minichain.sim.engines import EngineSpec, Silent, register
from minichain.sim.engines.coalition import NO_COALITION, split_honest
from minichain.sim.workload import ClientRequest, Payment

ROUNDS_PER_PHASE = 4      # three trying rounds + one lock-release round (3.2.1)


def payment_order(p: Payment) -> tuple:
    return (p.client, p.seq, p.coin, p.payee)


@dataclass(frozen=True, slots=True)
class Batch:
    """The value one instance decides: payments of distinct coins, in the order they join
    the log (oldest first). Deciding it appends them to the log, one ``Decide`` each."""

    payments: tuple[Payment, ...]

    def __repr__(self) -> str:
        return f"batch({', '.join(map(repr, self.payments))})"


def payments_of(value: Any) -> tuple[Payment, ...]:
    """The payments a decided value appends to the log (a lone payment is a batch of one)."""
    if isinstance(value, Batch):
        return value.payments
    return (value,) if isinstance(value, Payment) else ()


def well_formed(value: Any, max_batch: int) -> bool:
    """A batch a correct node may lock holds 1 to ``max_batch`` payments, each coin once
    (other values -- a lone payment -- have nothing to check)."""
    if not isinstance(value, Batch):
        return True
    coins = {p.coin for p in value.payments if isinstance(p, Payment)}
    return 0 < len(value.payments) <= max_batch and len(coins) == len(value.payments)


def finds_acceptable(report: "Report", value: Any) -> bool:
    """Whether ``report`` says ``value`` is acceptable to its signer: the value is listed
    (a locked node lists its locked batch alone), or it is a batch whose every payment is
    listed (an unlocked node lists the payments it finds proper, and accepts any batch of
    them)."""
    if value in report.values:
        return True
    return isinstance(value, Batch) and all(p in report.values for p in value.payments)


# -- signed statements and messages ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Report:
    """Round 1: ``E_j(list, k)`` -- the values acceptable and proper to ``signer``: the
    batch it is locked on, or (unlocked) the payments any batch of which it accepts
    (:func:`finds_acceptable`)."""

    signer: int
    phase: int
    slot: int
    values: frozenset
    proper: frozenset = frozenset()     # the signer's PROPER set, piggybacked (3.2.1)


@dataclass(frozen=True, slots=True)
class Lock:
    """Round 2: ``E_i(lock v, k, proof)`` -- the owner's proposal with its proof of
    acceptability (the signed reports; empty in the omission version)."""

    owner: int
    phase: int
    slot: int
    value: Any
    proof: tuple[Report, ...] = ()
    proper: frozenset = frozenset()     # the owner's PROPER set, piggybacked (3.2.1)


@dataclass(frozen=True, slots=True)
class Ack:
    """Round 3: "I locked ``value`` at ``phase``" to the owner."""

    signer: int
    phase: int
    slot: int
    value: Any


@dataclass(frozen=True, slots=True)
class LockAnnounce:
    """Round 4 (lock release): the lock its sender holds, as the owner signed it."""

    lock: Lock


@dataclass(frozen=True, slots=True)
class Commit:
    """Byzantine version (our addition): "I hold the lock on ``value`` from ``phase`` for
    ``slot``, ``2t + 1`` nodes acknowledged it, and I keep it against any other lock of
    that phase". Sent to the phase's owner; ``2t + 1`` of them settle the slot."""

    signer: int
    slot: int
    phase: int
    value: Any


@dataclass(frozen=True, slots=True)
class Claim:
    """"``signer`` decided ``value`` for ``slot`` at ``phase``". In the Byzantine version
    an owner's claim carries a proof (our addition): first the ``2t + 1`` signed
    acknowledgements it decided on, which ask their signers to commit, then the ``2t + 1``
    signed commits that settle the slot everywhere (see :meth:`DLS.certified`)."""

    signer: int
    slot: int
    value: Any
    phase: int = 0
    proof: tuple[Ack | Commit, ...] = ()


@dataclass(frozen=True, slots=True)
class Decided:
    claims: tuple[Claim, ...]


@dataclass(frozen=True, slots=True)
class CatchUp:
    slot: int                 # the sender's lowest unsettled slot


MESSAGES = (Report, Lock, Ack, LockAnnounce, Decided, CatchUp, Commit)


class DLS(Engine):
    def __init__(
        self,
        ctx: NodeContext,
        *,
        byzantine: bool = False,
        round_time: float = 0.1,
        max_batch: int = 32,
        catch_up_batch: int = 32,
    ) -> None:
        super().__init__(ctx)
        self.byzantine = byzantine
        self.round_time = round_time
        self.max_batch = max_batch                    # payments a report lists, a batch holds
        self.catch_up_batch = catch_up_batch
        n = ctx.n
        if byzantine:
            qs = quorum.QuorumSystem.byzantine(n)
            self.report_quorum = qs.threshold          # N - t when N = 3t + 1
            self.ack_quorum = qs.threshold             # 2t + 1 when N = 3t + 1
            self.claim_quorum = qs.weak                # t + 1: one of them is correct
            self.proper_quorum = qs.weak               # 3.2.2: t + 1 say it is proper
            self.sync_quorum = qs.weak                 # t + 1 nodes ahead: a correct one is
        else:
            qs = quorum.QuorumSystem.crash(n)
            self.report_quorum = qs.threshold          # N - t (a majority)
            self.ack_quorum = qs.weak                  # t + 1
            self.claim_quorum = 1                      # nobody lies
            self.proper_quorum = 1                     # 3.2.1: any PROPER set received
            self.sync_quorum = 1
        self.qs = qs
        self.t = qs.f
        # All of it is durable (a lock forgotten in a crash could break Lemma 3.2).
        self.round = -1
        self.clock_offset = 0.0                        # added by the round synchronizer
        self.peer_phase: dict[int, int] = {}           # the highest phase each peer was seen in
        self.slot = 0                                  # lowest slot not settled
        self.lock: Lock | None = None                  # at most one per slot (see _on_lock)
        self.lock_committed = False                    # Byzantine version: we sent a Commit for it
        self.acked_phase = 0                           # the last phase we acknowledged a lock in
        self.proposal: Lock | None = None              # owner: the lock we sent this phase
        self.reports: dict[int, Report] = {}           # owner: this phase's reports
        self.acks: quorum.Tally | None = None
        self.ack_proof: dict[int, Ack] = {}            # owner: this phase's signed acks
        self.decided: dict[int, Any] = {}             # instance -> the value (batch) decided
        self.log_length = 0                            # payments decided: the next log position
        self.owner_decisions: dict[int, tuple[Any, int]] = {}   # slot -> (value, phase), as owner
        # slot -> value -> signer -> claim (a liar may sign claims for several values)
        self.claims: dict[int, dict[Any, dict[int, Claim]]] = {}
        self.certificates: dict[int, Claim] = {}       # slot -> a certified claim (Byzantine version)
        self.commit_votes: dict[int, dict[int, Commit]] = {}   # owner: slot -> signer -> its commit
        self.owner_claims: dict[int, Claim] = {}       # owner: slot -> our claim with the acks
        self.pending: OrderedDict[Payment, None] = OrderedDict()
        self.extra_proper: set[Any] = set()            # values vouched for by a valid lock
        self.proper_claims: dict[Any, set[int]] = {}   # value -> nodes whose PROPER set has it
        self.spent_coins: set[str] = set()
        self.decided_values: set[Any] = set()
        self._caught_up: dict[int, int] = {}           # peer -> phase we last helped/asked it
        self._idle_phases = 0                          # phases in a row with nothing to report
        self._asked = 0                                # CatchUps sent while idle (rotates the peer asked)

    # -- the round clock ---------------------------------------------------------------------

    def owner(self, phase: int) -> int:
        """3.2.1: phase h belongs to processor i when h = i (mod N)."""
        return phase % self.ctx.n

    @property
    def phase(self) -> int:
        return self.round // ROUNDS_PER_PHASE + 1

    @property
    def step(self) -> int:
        return self.round % ROUNDS_PER_PHASE

    def local_time(self) -> float:
        """The round clock: the local clock plus what the synchronizer moved it forward."""
        return self.ctx.now + self.clock_offset

    def _schedule_next(self) -> SetTimer:
        nxt = self.round + 1
        return SetTimer(("round", nxt), max(0.0, nxt * self.round_time - self.local_time()))

    def on_start(self) -> list[Action]:
        # The first round that starts at or after now on the round clock.
        now = self.local_time()
        r = int(now / self.round_time)
        if r * self.round_time < now - 1e-12:
            r += 1
        self.round = r - 1
        return [self._schedule_next()]

    def on_recover(self) -> list[Action]:
        # Everything is durable; resume with the next round boundary.
        return self.on_start()

    def on_timer(self, name: Hashable) -> list[Action]:
        if not (isinstance(name, tuple) and name[0] == "round") or name[1] <= self.round:
            return []                                    # (a timer left behind by a jump)
        self.round = name[1]
        actions: list[Action] = [self._schedule_next()]
        step = self.step
        if step == 0:
            self.reports = {}
            self.proposal = None
            self.acks = None
            self.ack_proof = {}
            actions += self._round_report()
        elif step == 1 and self.owner(self.phase) == self.id:
            actions += self._round_propose()
        elif step == 3:
            actions += self._round_lock_release()
        return actions

    # -- proper and acceptable values ----------------------------------------------------

    def proper(self, value: Any) -> bool:
        """A payment some client submitted and the log does not spend yet; a well-formed
        batch of such payments."""
        if isinstance(value, Batch):
            return well_formed(value, self.max_batch) and all(self.proper(p) for p in value.payments)
        if value in self.decided_values:
            return False
        if isinstance(value, Payment) and value.coin in self.spent_coins:
            return False
        if value in self.pending or value in self.extra_proper:
            return True
        return self._reaches(len(self.proper_claims.get(value, ())), self.proper_quorum)

    def proper_set(self) -> frozenset:
        """The (oldest) values we call proper, to piggyback on what we send."""
        values = [p for p in self.pending if self.proper(p)]
        values += [v for v in self.proper_claims if v not in self.pending and self.proper(v)]
        values.sort(key=lambda v: payment_order(v) if isinstance(v, Payment) else ())
        return frozenset(values[: self.max_batch])

    def _learn_proper(self, signer: int, values: frozenset) -> None:
        for v in values:
            self.proper_claims.setdefault(v, set()).add(signer)

    def acceptable_values(self) -> frozenset:
        """3.2.1: v is acceptable if we hold no lock on any value but possibly v. Locked:
        the locked batch alone; unlocked: our proper payments, any batch of which we
        accept (see :func:`finds_acceptable`)."""
        if self.lock is not None:
            return frozenset([self.lock.value]) if self.proper(self.lock.value) else frozenset()
        return self.proper_set()

    # -- round 1: reports ------------------------------------------------------------------

    def _round_report(self) -> list[Action]:
        values = self.acceptable_values()
        if not values:
            return self._idle_catch_up()
        self._idle_phases = 0
        return [Send(self.owner(self.phase), Report(self.id, self.phase, self.slot, values, self.proper_set()))]

    def _on_report(self, src: int, msg: Report) -> list[Action]:
        if msg.signer != src:
            return []
        self._learn_proper(src, msg.proper)
        if msg.phase != self.phase or self.owner(msg.phase) != self.id:
            return []
        if msg.slot != self.slot:
            return self._slot_mismatch(src, msg.slot)
        if self.step <= 1 and self.proposal is None:
            self.reports.setdefault(src, msg)
        return []

    # -- round 2: the owner proposes; nodes lock --------------------------------------------

    def supported(self, reports: dict[int, Report]) -> list[tuple[Any, int]]:
        """Values enough reports find acceptable to be locked, with how many do, best
        first (most support, then oldest): each value a report is locked on, and the
        batch :meth:`fresh_batch` makes of the unlocked reports' payments."""
        locked = {v for r in reports.values() for v in r.values
                  if not isinstance(v, Payment) and well_formed(v, self.max_batch)}
        ok = [(v, sum(finds_acceptable(r, v) for r in reports.values())) for v in locked]
        ok = [(v, c) for v, c in ok if self._reaches(c, self.report_quorum)]
        fresh, backers = self.fresh_batch(reports)
        if fresh is not None and fresh not in locked:
            ok.append((fresh, backers))
        ok.sort(key=lambda vc: (-vc[1], tuple(payment_order(p) for p in payments_of(vc[0]))))
        return ok

    def fresh_batch(self, reports: dict[int, Report]) -> tuple[Batch | None, int]:
        """The batch of the oldest payments (distinct coins, at most ``max_batch``) that one
        set of ``report_quorum`` reports all list, built greedily; and that set's size.

        Our batching: the paper decides one value per instance; we make that value a batch
        of payments, as Tendermint decides blocks, so one phase can clear a backlog."""
        backers = list(reports.values())
        pool = sorted({p for r in backers for p in r.values if isinstance(p, Payment)}, key=payment_order)
        chosen: list[Payment] = []
        coins: set[str] = set()
        for p in pool:
            if len(chosen) >= self.max_batch:
                break
            if p.coin in coins:
                continue                       # a client's double spend: the oldest one only
            keep = [r for r in backers if p in r.values]
            if self._reaches(len(keep), self.report_quorum):
                chosen.append(p)
                coins.add(p.coin)
                backers = keep
        return (Batch(tuple(chosen)), len(backers)) if chosen else (None, 0)

    def _reaches(self, count: int, threshold: int) -> bool:
        return quorum.outcome(count, 0, self.ctx.n, threshold) is quorum.Outcome.WON

    def _round_propose(self) -> list[Action]:
        choices = self.supported(self.reports)
        if not choices:
            return []
        value = choices[0][0]
        proof = tuple(sorted((r for r in self.reports.values() if finds_acceptable(r, value)),
                             key=lambda r: r.signer))
        if not self.byzantine:
            proof = ()
        self.proposal = Lock(self.id, self.phase, self.slot, value, proof, self.proper_set())
        self.acks = quorum.Tally(quorum.QuorumSystem(self.ctx.n, self.t, self.ack_quorum, self.qs.weak, self.qs.model))
        return [Broadcast(self.proposal, include_self=True)]

    def valid_lock(self, lock: Lock) -> bool:
        """A lock is valid if its phase's owner issued it and, in the authenticated version,
        ``N - t`` distinct signed reports of that phase and slot found its value acceptable."""
        if lock.owner != self.owner(lock.phase) or not well_formed(lock.value, self.max_batch):
            return False
        if not self.byzantine:
            return True
        signers = {r.signer for r in lock.proof
                    if r.phase == lock.phase and r.slot == lock.slot and finds_acceptable(r, lock.value)}
        return self._reaches(len(signers), self.report_quorum)

    def _on_lock(self, src: int, msg: Lock) -> list[Action]:
        if src != msg.owner:
            return []
        self._learn_proper(src, msg.proper)
        for r in msg.proof:
            self._learn_proper(r.signer, r.proper)
        if msg.phase != self.phase or self.step > 2:
            return []                                    # not this phase's: lost (3.1)
        if msg.slot != self.slot:
            return self._slot_mismatch(src, msg.slot)
        if self.acked_phase == msg.phase or not self.valid_lock(msg):
            return []                                    # one lock per phase; no forgeries
        # Lock v with phase k. A lock on another value from an earlier phase is released at
        # once: the lock-release rule would release it anyway on seeing our own newer lock.
        self.lock = msg
        self.lock_committed = False
        self.acked_phase = msg.phase
        self.extra_proper.update(payments_of(msg.value))
        return [Send(src, Ack(self.id, msg.phase, msg.slot, msg.value))]

    # -- round 3: the owner decides ---------------------------------------------------------

    def _on_ack(self, src: int, msg: Ack) -> list[Action]:
        p = self.proposal
        if msg.signer != src or p is None or msg.phase != p.phase or msg.slot != self.slot or msg.value != p.value:
            return []
        assert self.acks is not None
        if self.acks.add(src, True):
            self.ack_proof[src] = msg
        if self.acks.outcome(True) is not quorum.Outcome.WON or self.slot in self.decided:
            return []
        # 3.2.1 / 3.2.2: the owner decides v. In the Byzantine version its claim carries
        # the signed acknowledgements it decided on; the nodes that hold the lock answer
        # with commits, and 2t + 1 of those settle the slot everywhere (see certified).
        self.owner_decisions[self.slot] = (p.value, p.phase)
        proof = tuple(sorted(self.ack_proof.values(), key=lambda a: a.signer)) if self.byzantine else ()
        claim = Claim(self.id, self.slot, p.value, p.phase, proof)
        if self.byzantine:
            self.owner_claims[self.slot] = claim
        actions = self._decide(self.slot, p.value)
        actions.append(Broadcast(Decided((claim,))))
        return actions + self._add_claims((claim,))

    # -- round 4: lock release ----------------------------------------------------------------

    def _round_lock_release(self) -> list[Action]:
        actions: list[Action] = []
        shown = self.owner_claims.get(self.slot)
        if shown is not None and shown.phase < self.phase:
            # We decided as owner in an earlier phase and the commits have not all come:
            # show the acknowledgements again (a lossy link ate the claim or a commit).
            actions.append(Broadcast(Decided((shown,))))
        if self.lock is None or self.lock_committed:
            # A committed lock is shown on demand instead (see _on_lock_announce): when the
            # owner is correct every node holds it and its certificate is on the way, so
            # announcing it to everyone would cost n(n - 1) messages for nothing.
            return actions
        return actions + [Broadcast(LockAnnounce(self.lock))]

    def _on_lock_announce(self, src: int, msg: LockAnnounce) -> list[Action]:
        lock = msg.lock
        if lock.slot != self.slot:
            return self._slot_mismatch(src, lock.slot)
        mine = self.lock
        if mine is None or lock.value == mine.value:
            return []
        if self.lock_committed and lock.phase <= mine.phase:
            # Committed: only a later phase's lock releases it (see certified). Show ours to
            # the holder of the other lock, which releases its own for it (h' >= h).
            return [Send(src, LockAnnounce(mine))] if src != self.id else []
        if lock.phase < mine.phase:
            return []
        if self.valid_lock(lock):
            self.lock = None      # 3.2.1: a lock on w != v with phase h' >= h: release v
        return []

    # -- decisions, claims, catching up ----------------------------------------------------

    def _decide(self, slot: int, value: Any) -> list[Action]:
        """Instance ``slot`` decided ``value``: its payments join the log, one position each
        (instances are decided in order, so every correct node numbers them alike)."""
        if slot in self.decided:
            return []
        self.decided[slot] = value
        actions: list[Action] = []
        for p in payments_of(value):
            actions.append(Decide(self.log_length, p))
            self.log_length += 1
        return actions

    def _on_decided(self, src: int, msg: Decided) -> list[Action]:
        return self._add_claims(msg.claims)

    def _add_claims(self, claims: tuple[Claim, ...]) -> list[Action]:
        actions: list[Action] = []
        for c in claims:
            if 0 <= c.signer < self.ctx.n:
                self.claims.setdefault(c.slot, {}).setdefault(c.value, {}).setdefault(c.signer, c)
                if self.byzantine and c.slot not in self.certificates:
                    if self.certified(c):
                        self.certificates[c.slot] = c
                    elif self._signed_by_quorum(c, Ack):
                        actions += self._commit(c)
        return actions + self._settle()

    def _signed_by_quorum(self, claim: Claim, kind: type) -> bool:
        """``claim`` carries ``2t + 1`` distinct signed statements of type ``kind`` (acks or
        commits) on its value, slot and phase."""
        signers = {a.signer for a in claim.proof if isinstance(a, kind)
                   and a.phase == claim.phase and a.slot == claim.slot and a.value == claim.value}
        return self._reaches(len(signers), self.ack_quorum)

    def certified(self, claim: Claim) -> bool:
        """Byzantine version: ``claim`` carries ``2t + 1`` distinct signed *commits* of its
        value at its slot and phase, so a node that checks it decides too (our addition).

        Why commits and not the ``2t + 1`` acknowledgements the owner decides on (3.2.2):
        an acknowledgement is not a promise to keep the lock. A Byzantine owner can send
        two locks of one phase, gather ``2t + 1`` acknowledgements for one and keep them
        back; each side then sees the other's lock of the same phase and releases (3.2.1's
        rule, ``h' >= h``), a later owner decides another value, and the kept
        acknowledgements would settle the first one at a node they are handed to
        (``"late-certificate"``, issue 21: a conflict in three runs of four at t = 1,
        n = 4). The paper is not wrong: only a correct owner's decision counts there, and
        a correct owner never sends two locks. A commit is that promise: a correct node
        sends one only for the lock it holds, once the owner showed it ``2t + 1``
        acknowledgements, and from then on releases it only for a lock of a *later* phase
        (:meth:`_on_lock_announce`). So ``2t + 1`` commits leave ``t + 1`` correct nodes
        holding the value; they find nothing else acceptable, so no later lock on another
        value gets ``N - t`` reports (Lemma 3.5's counting), and no other lock of that phase
        releases them -- two commit certificates of one phase cannot exist, since each needs
        ``2t + 1`` acknowledgements and a correct node acknowledges once a phase. Deciding
        on a commit certificate is as safe as a correct owner's decision.
        """
        return self._signed_by_quorum(claim, Commit)

    def _commit(self, claim: Claim) -> list[Action]:
        """The owner showed ``2t + 1`` acknowledgements of the lock we hold: commit to it."""
        lock = self.lock
        if (lock is None or claim.slot != self.slot or lock.owner != claim.signer
                or (lock.phase, lock.slot, lock.value) != (claim.phase, claim.slot, claim.value)):
            return []
        commit = Commit(self.id, lock.slot, lock.phase, lock.value)
        if claim.signer == self.id:
            if self.lock_committed:
                return []
            self.lock_committed = True
            return self._on_commit(self.id, commit)
        self.lock_committed = True
        return [Send(claim.signer, commit)]                  # again, if the owner shows it again

    def _on_commit(self, src: int, msg: Commit) -> list[Action]:
        """Owner: ``2t + 1`` commits to the value we decided make the certificate that
        settles the slot everywhere."""
        if msg.signer != src or self.owner_decisions.get(msg.slot) != (msg.value, msg.phase):
            return []
        votes = self.commit_votes.setdefault(msg.slot, {})
        if src in votes:
            return []
        votes[src] = msg
        if not self._reaches(len(votes), self.ack_quorum) or msg.slot in self.certificates:
            return []
        claim = Claim(self.id, msg.slot, msg.value, msg.phase, tuple(votes[s] for s in sorted(votes)))
        self.certificates[msg.slot] = claim
        del self.commit_votes[msg.slot]
        self.owner_claims.pop(msg.slot, None)
        return [Broadcast(Decided((claim,)))] + self._settle()

    def settled_value(self, slot: int) -> Any:
        """The value ``claim_quorum`` distinct nodes claim to have decided, or (Byzantine
        version) one certified claim vouches for, if any."""
        if slot in self.certificates:
            return self.certificates[slot].value
        for value, signers in self.claims.get(slot, {}).items():
            if self._reaches(len(signers), self.claim_quorum):
                return value
        return _NONE

    def _settle(self) -> list[Action]:
        actions: list[Action] = []
        while True:
            value = self.settled_value(self.slot)
            if value is _NONE:
                return actions
            actions += self._decide(self.slot, value)
            for paid in payments_of(value):
                self.decided_values.add(paid)
                self.spent_coins.add(paid.coin)
                for p in [p for p in self.pending if p.coin == paid.coin]:
                    del self.pending[p]
            self.slot += 1
            self._asked = 0
            self.owner_claims.pop(self.slot - 1, None)
            self.commit_votes.pop(self.slot - 1, None)
            self.lock = None
            self.lock_committed = False
            self.proposal = None
            self.reports = {}
            self.acks = None
            self.ack_proof = {}

    def _slot_mismatch(self, src: int, slot: int) -> list[Action]:
        """Someone is on another slot: help them catch up, or ask them to help us."""
        if self._caught_up.get(src) == self.phase:
            return []
        self._caught_up[src] = self.phase
        if slot > self.slot:
            return [Send(src, CatchUp(self.slot))]
        return self._send_claims(src, slot)

    def _send_claims(self, dst: int, slot: int) -> list[Action]:
        claims: list[Claim] = []
        for s in range(slot, min(self.slot, slot + self.catch_up_batch)):
            if s in self.certificates:
                claims.append(self.certificates[s])          # one certified claim is enough
                continue
            for signers in self.claims.get(s, {}).values():
                claims.extend(signers.values())
        return [Send(dst, Decided(tuple(claims)))] if claims else []

    def _idle_catch_up(self) -> list[Action]:
        """Idle: ask one peer now and then whether we missed decisions (ours: a node that
        missed a stretch of the log whole -- crashed while the clients sent it -- has
        nothing to report, so nobody ever sees it is behind). After 8 idle phases, then
        every 8, 16, 32, 32, ... phases, to the next peer in turn."""
        self._idle_phases += 1
        due = 8 * min(2 ** max(self._asked - 1, 0), 4)
        if self._idle_phases < due:
            return []
        self._idle_phases = 0
        peer = self.ctx.others[self._asked % len(self.ctx.others)] if self.ctx.others else None
        self._asked += 1
        return [] if peer is None else [Send(peer, CatchUp(self.slot))]

    def _on_catch_up(self, src: int, msg: CatchUp) -> list[Action]:
        if msg.slot < self.slot:
            return self._send_claims(src, msg.slot)
        return []

    # -- clients -------------------------------------------------------------------------

    def _on_client(self, payment: Payment) -> list[Action]:
        if payment in self.decided_values or payment.coin in self.spent_coins:
            return []
        self.pending.setdefault(payment, None)
        return []

    def on_message(self, src: int, msg: Any) -> list[Action]:
        if isinstance(msg, ClientRequest):
            return self._on_client(msg.payment)
        name = _HANDLERS.get(type(msg))
        if name is None:
            return []
        actions: list[Action] = []
        if type(msg) in _PHASED:
            actions += self._synchronize(src, msg.phase)
        return actions + getattr(self, name)(src, msg)

    # -- the round synchronizer --------------------------------------------------------------

    def _synchronize(self, src: int, phase: int) -> list[Action]:
        """Jump forward to a later phase that ``sync_quorum`` distinct nodes have reached.

        Our stand-in for section 4's distributed clock: the basic round model assumes the
        nodes agree on the round, and with skewed clocks they do not. A node never moves
        back; in the Byzantine version it follows only a phase t + 1 nodes have reached,
        so the liars cannot rush it. Timing never touches safety, only liveness."""
        if src == self.id or not 0 <= src < self.ctx.n or phase <= self.peer_phase.get(src, 0):
            return []
        self.peer_phase[src] = phase
        if phase <= self.phase:
            return []
        ahead = sorted(self.peer_phase.values(), reverse=True)
        if len(ahead) < self.sync_quorum:
            return []
        target = ahead[self.sync_quorum - 1]
        if target <= self.phase:
            return []
        first_round = (target - 1) * ROUNDS_PER_PHASE
        self.clock_offset = first_round * self.round_time - self.ctx.now
        self.round = first_round - 1
        return self.on_timer(("round", first_round))


_NONE = object()
_PHASED = (Report, Lock, Ack)       # messages sent in (and stamped with) the sender's phase

# message type -> handler method name (looked up on the instance: the liars override some)
_HANDLERS = {
    Report: "_on_report",
    Lock: "_on_lock",
    Ack: "_on_ack",
    LockAnnounce: "_on_lock_announce",
    Decided: "_on_decided",
    CatchUp: "_on_catch_up",
    Commit: "_on_commit",
}


# -- Byzantine replicas ---------------------------------------------------------------------


def twin_of(p: Any) -> Any:
    """A payment of the same coin to another payee: the other half of a double spend (for
    a batch, the batch with its first payment so replaced)."""
    if isinstance(p, Batch) and p.payments:
        return Batch((twin_of(p.payments[0]), *p.payments[1:]))
    if isinstance(p, Payment):
        return Payment(p.client, p.seq, p.coin, p.payee + "-mallory")
    return Payment(-1, 0, "mallory-coin", "mallory")


class LyingDLS(DLS):
    """``"lie"`` / ``"equivocate"``: runs the rounds like everyone but lies in them. It never
    forges another node's signature (the authenticated model's assumption)."""

    honest = False

    def __init__(self, ctx: NodeContext, *, equivocate: bool = False,
                 coalition: frozenset[int] = NO_COALITION, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.equivocate = equivocate
        self.coalition = coalition             # the Byzantine ids, left out of the halves
        self.claimed: set[int] = set()

    def _halves(self) -> tuple[list[int], list[int]]:
        return split_honest(self.ctx.others, self.coalition)

    def acceptable_values(self) -> frozenset:
        # Everything it ever heard of is "acceptable": it ignores its locks.
        values = [p for p in self.pending if self.proper(p)] + sorted(self.extra_proper - self.decided_values, key=repr)
        return frozenset(values[: self.max_batch * 2])

    def _round_propose(self) -> list[Action]:
        if not self.equivocate:
            return super()._round_propose()
        choices = self.supported(self.reports)
        if not choices:
            return []
        first = choices[0][0]
        second = choices[1][0] if len(choices) > 1 else twin_of(first)
        a, b = self._halves()
        actions: list[Action] = []
        for value, half in ((first, a), (second, b)):
            proof = tuple(r for r in self.reports.values() if finds_acceptable(r, value)) if self.byzantine else ()
            lock = Lock(self.id, self.phase, self.slot, value, proof)
            actions += [Send(peer, lock) for peer in half]
        return actions

    def _on_lock(self, src: int, msg: Lock) -> list[Action]:
        if msg.phase != self.phase:
            return []
        if msg.slot > self.slot:
            self.slot = msg.slot
        self.extra_proper.update(payments_of(msg.value))
        actions: list[Action] = [Send(src, Ack(self.id, msg.phase, msg.slot, msg.value))]   # acks everything
        if msg.slot not in self.claimed:
            # "I decided it" to one half, "I decided its twin" to the other.
            self.claimed.add(msg.slot)
            a, b = self._halves()
            for value, half in ((msg.value, a), (twin_of(msg.value), b)):
                claim = Decided((Claim(self.id, msg.slot, value),))
                actions += [Send(peer, claim) for peer in half]
        return actions

    def _on_lock_announce(self, src: int, msg: LockAnnounce) -> list[Action]:
        return []                                            # never releases

    def _round_lock_release(self) -> list[Action]:
        return []


class LateCertificateDLS(DLS):
    """``"late-certificate"``: an owner that equivocates, keeps a certificate back, and hands
    it to one correct node once the others have moved on (the attack of issue 21).

    In its own phase it sends one lock to ``ack_quorum`` nodes counting its accomplices
    and itself (the *A* side), and a lock on another value, backed by the same signed
    reports, to the remaining correct nodes (the *B* side). It gathers the A side's
    acknowledgements -- a certificate for the first value -- and keeps quiet. In the
    lock-release round each side sees the other's lock from the same phase, so every
    correct node releases its lock (3.2.1's rule: a lock on another value from a phase
    ``h' >= h``). When a later owner locks some value ``u`` for that slot, it hands the
    held claim to one node of the B side and acknowledges ``u`` like everyone else.
    Otherwise it runs the protocol honestly. It never forges a signature.
    """

    honest = False

    def __init__(self, ctx: NodeContext, *, coalition: frozenset[int] = NO_COALITION, **options: Any) -> None:
        super().__init__(ctx, **options)
        self.coalition = coalition | {ctx.node_id}
        self.hiding: tuple[int, int] | None = None           # (phase, slot) of the split we run
        self.b_side: list[int] = []
        self.held: dict[int, Claim] = {}                     # slot -> the certified claim kept back
        self.handed: list[tuple[int, int]] = []              # (slot, node) of each claim handed out

    def _two_values(self) -> tuple[Any, Any] | None:
        """Two different values the same reports make lockable, or None. The one to certify
        comes first: the best one shortened by a payment, which no correct owner would
        propose later (it takes the oldest payments it can), so the later value differs."""
        choices = [v for v, _ in self.supported(self.reports)]
        if choices and len(payments_of(choices[0])) >= 2:
            first = choices[0]
            return Batch(first.payments[:-1]), first       # a prefix: acceptable to the same reports
        if len(choices) >= 2:
            return choices[1], choices[0]
        return None

    def acceptable_values(self) -> frozenset:
        # It reports as an unlocked node would, whatever it locked (so its own lock on the
        # certified value does not pull later owners back to it).
        return self.proper_set()

    def _round_propose(self) -> list[Action]:
        values = self._two_values()
        honest = [p for p in self.ctx.others if p not in self.coalition]
        k = self.ack_quorum - len(self.coalition)               # correct nodes the certificate needs
        if values is None or not 0 <= k < len(honest):
            return super()._round_propose()
        shift = self.phase % len(honest)                        # vary who lands on which side
        order = honest[shift:] + honest[:shift]
        a_side, self.b_side = order[:k], order[k:]
        locks = []
        for value in values:
            proof = tuple(sorted((r for r in self.reports.values() if finds_acceptable(r, value)),
                                 key=lambda r: r.signer)) if self.byzantine else ()
            locks.append(Lock(self.id, self.phase, self.slot, value, proof, self.proper_set()))
        self.proposal = locks[0]
        self.acks = quorum.Tally(quorum.QuorumSystem(self.ctx.n, self.t, self.ack_quorum, self.qs.weak, self.qs.model))
        self.hiding = (self.phase, self.slot)
        first = sorted(set(a_side) | self.coalition)
        return [Send(p, locks[0]) for p in first] + [Send(p, locks[1]) for p in self.b_side]

    def _on_ack(self, src: int, msg: Ack) -> list[Action]:
        p = self.proposal
        if self.hiding is None or p is None or (p.phase, p.slot) != self.hiding:
            return super()._on_ack(src, msg)
        if msg.signer != src or msg.phase != p.phase or msg.slot != p.slot or msg.value != p.value:
            return []
        assert self.acks is not None
        if self.acks.add(src, True):
            self.ack_proof[src] = msg
        if self.acks.outcome(True) is quorum.Outcome.WON and p.slot not in self.held:
            proof = tuple(sorted(self.ack_proof.values(), key=lambda a: a.signer)) if self.byzantine else ()
            self.held[p.slot] = Claim(self.id, p.slot, p.value, p.phase, proof)     # kept back
        return []

    def _on_lock(self, src: int, msg: Lock) -> list[Action]:
        actions = super()._on_lock(src, msg)
        held = self.held.get(msg.slot)
        if held is not None and msg.phase > held.phase and msg.value != held.value and actions:
            # Another owner locked another value: now the kept claim can split the slot. It
            # goes to a correct node that is not that owner (which decides on the others'
            # acknowledgements, ours among them), from the B side if it can.
            targets = [p for p in self.b_side + sorted(self.ctx.others)
                       if p not in self.coalition and p != msg.owner]
            if targets:
                del self.held[msg.slot]
                self.handed.append((msg.slot, targets[0]))
                actions.append(Send(targets[0], Decided((held,))))
        return actions


# -- registration ---------------------------------------------------------------------------


def _builder(byzantine: bool):
    def build(ctx: NodeContext, behaviour: str | None = None, *, coalition: frozenset[int] = NO_COALITION,
              **options: Any) -> Engine:
        if behaviour is None:
            return DLS(ctx, byzantine=byzantine, **options)
        if behaviour == "silent":
            return Silent(ctx)
        if behaviour in ("lie", "equivocate"):
            return LyingDLS(ctx, byzantine=byzantine, equivocate=behaviour == "equivocate",
                            coalition=coalition, **options)
        if behaviour == "late-certificate":
            return LateCertificateDLS(ctx, byzantine=byzantine, coalition=coalition, **options)
        raise ValueError(f"dls has no behaviour {behaviour!r}")
    return build


build = _builder(False)
build_byzantine = _builder(True)

PAPER = "Dwork, Lynch & Stockmeyer, Consensus in the Presence of Partial Synchrony, JACM 35(2), 1988"
SPEC = register(EngineSpec(
    "dls", "partial synchrony", "crash", quorum.max_crash_faults, build,
    ("silent", "lie", "equivocate"), PAPER + ", Algorithm 1 (3.2.1)", coalition=True,
))
SPEC_BYZ = register(EngineSpec(
    "dls-byz", "partial synchrony", "byzantine", quorum.max_byzantine_faults, build_byzantine,
    ("silent", "lie", "equivocate", "late-certificate"), PAPER + ", Algorithm 2 (3.2.2)", coalition=True,
))
