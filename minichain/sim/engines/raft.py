"""Raft (Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm",
USENIX ATC 2014) as a sans-IO engine: one replica of a replicated log of payments.

Section numbers below are the paper's. What each replica keeps (Figure 2):

* **persistent** -- ``current_term``, ``voted_for`` and ``log``. The engine object survives
  a simulated crash, so these attributes *are* the durable store; every handler updates
  them before it returns the messages that depend on them ("persist before you speak").
* **volatile** -- ``commit_index``, ``last_applied``, the role, the leader's ``next_index``
  and ``match_index``: :meth:`Raft.on_recover` resets them as a restarted server would.

The rules, each tagged where the code applies it:

* 5.1  terms: any message with a higher term makes the receiver adopt it and become a
  follower; a message with a lower term is rejected (or ignored if it is a reply).
* 5.2  leader election: a follower that hears no leader for a randomised election timeout
  (drawn from ``ctx.rng``) becomes a candidate, votes for itself and asks everyone; a
  majority of votes in the term makes it leader; each server votes at most once per term.
* 5.3  log replication: AppendEntries carries (prevLogIndex, prevLogTerm); a follower
  whose log does not contain that entry refuses (the consistency check), and the leader
  retries from an earlier index; an existing entry that conflicts with a new one is
  deleted with everything after it (conflict repair). Empty AppendEntries are heartbeats.
* 5.4.1 election restriction: a vote goes only to a candidate whose log is at least as
  up-to-date (last term, then last index) as the voter's.
* 5.4.2 a leader commits only entries of its own term by counting replicas; earlier
  entries are committed indirectly with them. Section 8: a new leader appends a no-op
  entry so that happens without waiting for a client.

Log positions are Raft's 1-based indexes; ``Decide`` uses ``slot = index - 1`` so that
every engine's log starts at slot 0. The no-op of section 8 is decided like any entry
(its value is ``Noop(term)``).

Simplifications (said plainly):

* No membership changes (section 6) or log compaction (section 7).
* Clients hand every request to every replica (``sim.workload``) instead of being
  redirected to the leader; followers queue requests, and a new leader appends the queued
  requests its log does not already hold. The queue is client-side retransmission, so it
  survives a crash of the replica.
* Followers learn the commit index with the next AppendEntries (a new entry or a
  heartbeat); the leader sends no extra message just to announce a commit, so steady
  state costs 2(n-1) messages per entry plus heartbeats to idle followers.
* A failed AppendEntries carries a hint (the follower's last index) so the leader skips
  back at once instead of one entry per round trip (the optimisation 5.3 sketches).
* A leader does not append a payment whose coin an entry of its log already spends (the
  state machine would reject the second spend anyway).

Byzantine behaviours (``build(ctx, behaviour)``), to show that crash fault tolerance is
not Byzantine fault tolerance:

* ``"lie"``: votes for every candidate that asks, several in one term, whatever its log
  (breaking 5.2 and 5.4.1), and acknowledges every AppendEntries as if it stored the
  entries (breaking the majority that 5.4.2 counts on); its replies echo the sender's
  term, so nobody learns of a newer term through it. A liar that talks to two honest
  halves that cannot hear each other lets each elect its own leader and commit its own
  entries: two honest replicas commit different values at one index.
* ``"equivocate"``: forges leadership (a term it never won), sends conflicting entries
  with a commit index to two halves of the honest replicas, which commit them. It leaves
  its accomplices (``coalition``, the Byzantine ids the harness passes) out of the split
  and deals the rest alternately to the two sides (``engines/coalition.py``), so that
  with two equivocators among four replicas both honest ones are still split.
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

# -- values and messages -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Noop:
    """The blank entry a new leader appends (section 8)."""

    term: int

    def __repr__(self) -> str:
        return f"noop(t{self.term})"


@dataclass(frozen=True, slots=True)
class Entry:
    term: int
    value: Any


@dataclass(frozen=True, slots=True)
class RequestVote:
    term: int
    last_log_index: int
    last_log_term: int


@dataclass(frozen=True, slots=True)
class VoteReply:
    term: int
    granted: bool


@dataclass(frozen=True, slots=True)
class AppendEntries:
    term: int
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    leader_commit: int


@dataclass(frozen=True, slots=True)
class AppendReply:
    term: int
    success: bool
    # success: the index the follower now matches up to (prev_index + len(entries));
    # failure: the follower's last log index (a hint for where to retry from).
    index: int


MESSAGES = (RequestVote, VoteReply, AppendEntries, AppendReply)

FOLLOWER, CANDIDATE, LEADER = "follower", "candidate", "leader"
ELECTION = "election"
HEARTBEAT = "heartbeat"


class Raft(Engine):
    def __init__(
        self,
        ctx: NodeContext,
        *,
        election_timeout: float = 0.5,
        heartbeat: float = 0.1,
        max_batch: int = 64,
    ) -> None:
        super().__init__(ctx)
        if heartbeat >= election_timeout:
            raise ValueError("the heartbeat must be shorter than the election timeout (5.6)")
        self.election_timeout = election_timeout   # timeouts are drawn from [T, 2T]
        self.heartbeat = heartbeat
        self.max_batch = max_batch
        self.quorum = quorum.QuorumSystem.crash(ctx.n)
        # persistent state (Figure 2)
        self.current_term = 0
        self.voted_for: int | None = None
        self.log: list[Entry] = []                 # log[i - 1] holds index i
        # client requests not yet committed (client-side retransmission; survives crashes)
        self.pending: OrderedDict[Payment, None] = OrderedDict()
        self.committed_values: set[Any] = set()
        self.spent_coins: set[str] = set()
        self._reset_volatile()

    def _reset_volatile(self) -> None:
        self.role = FOLLOWER
        self.leader_id: int | None = None
        self.commit_index = 0
        self.last_applied = 0
        self.votes: quorum.Tally[bool] | None = None
        self.next_index: dict[int, int] = {}
        self.match_index: dict[int, int] = {}
        self.last_sent: dict[int, float] = {}

    # -- helpers -------------------------------------------------------------------------

    @property
    def last_index(self) -> int:
        return len(self.log)

    @property
    def last_term(self) -> int:
        return self.log[-1].term if self.log else 0

    def term_at(self, index: int) -> int:
        return self.log[index - 1].term if index > 0 else 0

    def _election_timer(self) -> SetTimer:
        # 5.2: randomised election timeouts spread out candidates so split votes are rare.
        t = self.election_timeout
        return SetTimer(ELECTION, t + t * self.ctx.rng.random())

    def _become_follower(self, term: int) -> list[Action]:
        """5.1: adopt a newer term (forgetting the vote of the old one) and follow."""
        actions: list[Action] = []
        if term > self.current_term:
            self.current_term = term
            self.voted_for = None
        if self.role == LEADER:
            # A follower always has an election timer (Figure 2, "Followers"); the leader
            # cancelled its own, so it needs a new one. Without it, a deposed leader whose log
            # is too new to vote for the others never stood again either: with one replica
            # down, no majority ever formed (found by the adversary search, issue 21).
            actions += [CancelTimer(HEARTBEAT), self._election_timer()]
        self.role = FOLLOWER
        self.votes = None
        return actions

    # -- engine interface ----------------------------------------------------------------

    def on_start(self) -> list[Action]:
        return [self._election_timer()]

    def on_recover(self) -> list[Action]:
        # A restarted server keeps term, vote and log and forgets everything else (Figure 2).
        self._reset_volatile()
        return [self._election_timer()]

    def on_timer(self, name: Hashable) -> list[Action]:
        if name == ELECTION and self.role != LEADER:
            return self._start_election()
        if name == HEARTBEAT and self.role == LEADER:
            now = self.ctx.now
            actions: list[Action] = []
            for peer in self.ctx.others:
                # Followers that got an AppendEntries recently have just heard from us.
                if now - self.last_sent.get(peer, -1e9) >= self.heartbeat * 0.999:
                    actions.append(self._append_to(peer))
            actions.append(SetTimer(HEARTBEAT, self.heartbeat))
            return actions
        return []

    def on_message(self, src: int, msg: Any) -> list[Action]:
        if isinstance(msg, ClientRequest):
            return self._on_client(msg.payment)
        term = getattr(msg, "term", None)
        if term is None:
            return []
        actions: list[Action] = []
        if term > self.current_term:                          # 5.1
            actions += self._become_follower(term)
        if isinstance(msg, RequestVote):
            actions += self._on_request_vote(src, msg)
        elif isinstance(msg, VoteReply):
            actions += self._on_vote_reply(src, msg)
        elif isinstance(msg, AppendEntries):
            actions += self._on_append_entries(src, msg)
        elif isinstance(msg, AppendReply):
            actions += self._on_append_reply(src, msg)
        return actions

    # -- clients ---------------------------------------------------------------------------

    def _on_client(self, payment: Payment) -> list[Action]:
        if payment in self.committed_values or payment in self.pending or payment.coin in self.spent_coins:
            return []
        self.pending[payment] = None
        if self.role != LEADER:
            return []
        if not self._append_pending():
            return []
        return [self._append_to(peer) for peer in self.ctx.others] + self._advance_commit()

    def _append_pending(self) -> bool:
        """Leader: append queued payments its log does not hold yet. True if it appended."""
        in_log = {e.value for e in self.log}
        spent = {e.value.coin for e in self.log if isinstance(e.value, Payment)}
        appended = False
        for p in self.pending:
            if p in in_log or p.coin in spent:
                continue
            self.log.append(Entry(self.current_term, p))
            spent.add(p.coin)
            appended = True
        return appended

    # -- elections (5.2, 5.4.1) -------------------------------------------------------------

    def _start_election(self) -> list[Action]:
        self.role = CANDIDATE
        self.current_term += 1
        self.voted_for = self.id
        self.leader_id = None
        self.votes = quorum.Tally(self.quorum)
        self.votes.add(self.id, True)
        actions: list[Action] = [self._election_timer()]
        if self.votes.outcome(True) is quorum.Outcome.WON:    # a one-node cluster
            return actions + self._become_leader()
        actions.append(Broadcast(RequestVote(self.current_term, self.last_index, self.last_term)))
        return actions

    def log_is_up_to_date(self, last_log_term: int, last_log_index: int) -> bool:
        """5.4.1: the later last term wins; with equal last terms, the longer log."""
        if last_log_term != self.last_term:
            return last_log_term > self.last_term
        return last_log_index >= self.last_index

    def _on_request_vote(self, src: int, msg: RequestVote) -> list[Action]:
        if msg.term < self.current_term:
            return [Send(src, VoteReply(self.current_term, False))]
        grant = self.voted_for in (None, src) and self.log_is_up_to_date(msg.last_log_term, msg.last_log_index)
        actions: list[Action] = []
        if grant:
            self.voted_for = src                      # persisted before the reply goes out
            actions.append(self._election_timer())    # 5.2: granting a vote resets the timer
        actions.append(Send(src, VoteReply(self.current_term, grant)))
        return actions

    def _on_vote_reply(self, src: int, msg: VoteReply) -> list[Action]:
        if self.role != CANDIDATE or msg.term != self.current_term or self.votes is None:
            return []
        self.votes.add(src, msg.granted)
        if self.votes.outcome(True) is quorum.Outcome.WON:
            return self._become_leader()
        return []

    def _become_leader(self) -> list[Action]:
        self.role = LEADER
        self.leader_id = self.id
        self.votes = None
        self.next_index = {p: self.last_index + 1 for p in self.ctx.others}
        self.match_index = {p: 0 for p in self.ctx.others}
        self.last_sent = {}
        # Section 8: a no-op of the new term lets earlier-term entries commit (5.4.2).
        self.log.append(Entry(self.current_term, Noop(self.current_term)))
        self._append_pending()
        actions: list[Action] = [CancelTimer(ELECTION)]
        actions += [self._append_to(peer) for peer in self.ctx.others]
        actions.append(SetTimer(HEARTBEAT, self.heartbeat))
        actions += self._advance_commit()                     # a one-node cluster
        return actions

    # -- replication (5.3, 5.4.2) ------------------------------------------------------------

    def _append_to(self, peer: int) -> Send:
        """AppendEntries with what ``peer`` has not been sent yet (empty: a heartbeat).

        ``next_index`` moves past the entries at once (pipelining, etcd-raft's "replicate"
        state): they are not sent again unless the follower refuses, which sends
        ``next_index`` back (5.3)."""
        nxt = self.next_index[peer]
        prev = nxt - 1
        entries = tuple(self.log[prev : prev + self.max_batch])
        self.next_index[peer] = nxt + len(entries)
        self.last_sent[peer] = self.ctx.now
        return Send(peer, AppendEntries(self.current_term, prev, self.term_at(prev), entries, self.commit_index))

    def _on_append_entries(self, src: int, msg: AppendEntries) -> list[Action]:
        if msg.term < self.current_term:                       # 5.1: a stale leader
            return [Send(src, AppendReply(self.current_term, False, self.last_index))]
        if self.role == LEADER:
            # Two leaders in one term cannot happen with honest voters (5.2, Election Safety);
            # only a lying voter makes it possible. Refuse: a leader never takes entries.
            return [Send(src, AppendReply(self.current_term, False, self.last_index))]
        actions: list[Action] = []
        if self.role == CANDIDATE:                             # 5.2: another won this term
            actions += self._become_follower(msg.term)
        self.leader_id = src
        actions.append(self._election_timer())
        # 5.3 consistency check: our log must hold prev_index with prev_term.
        if msg.prev_index > self.last_index or self.term_at(msg.prev_index) != msg.prev_term:
            actions.append(Send(src, AppendReply(self.current_term, False, min(self.last_index, msg.prev_index - 1))))
            return actions
        # 5.3 conflict repair: delete a conflicting entry and all that follow; append new
        # ones; keep entries that already match (a reordered, older AppendEntries must not
        # truncate what a newer one added).
        index = msg.prev_index
        for entry in msg.entries:
            index += 1
            if index <= self.last_index:
                if self.log[index - 1].term == entry.term:
                    continue
                del self.log[index - 1 :]
            self.log.append(entry)
        last_new = msg.prev_index + len(msg.entries)
        actions.append(Send(src, AppendReply(self.current_term, True, last_new)))
        # Figure 2: commitIndex = min(leaderCommit, index of last new entry).
        if msg.leader_commit > self.commit_index:
            self.commit_index = max(self.commit_index, min(msg.leader_commit, last_new))
            actions += self._apply_committed()
        return actions

    def _on_append_reply(self, src: int, msg: AppendReply) -> list[Action]:
        if self.role != LEADER or msg.term != self.current_term:
            return []
        if msg.success:
            if msg.index > self.match_index[src]:
                self.match_index[src] = msg.index
            self.next_index[src] = max(self.next_index[src], self.match_index[src] + 1)
            actions = self._advance_commit()
            if self.next_index[src] <= self.last_index:        # more than one batch behind
                actions.append(self._append_to(src))
            return actions
        # 5.3: the consistency check failed; back up (to just past the follower's log at most,
        # never below what it is known to match).
        self.next_index[src] = max(self.match_index[src] + 1, min(self.next_index[src] - 1, msg.index + 1))
        return [self._append_to(src)]

    def _advance_commit(self) -> list[Action]:
        """5.4.2: commit the highest index of the current term that a majority holds."""
        for index in range(self.last_index, self.commit_index, -1):
            if self.log[index - 1].term != self.current_term:
                break    # earlier terms are never committed by counting replicas
            holders = [self.id] + [p for p, m in self.match_index.items() if m >= index]
            if self.quorum.is_quorum(holders):
                self.commit_index = index
                return self._apply_committed()
        return []

    def _apply_committed(self) -> list[Action]:
        actions: list[Action] = []
        # (only a Byzantine peer can make an honest follower cut its log below its commit
        # index; then there is nothing to apply beyond the log's end)
        while self.last_applied < min(self.commit_index, self.last_index):
            self.last_applied += 1
            value = self.log[self.last_applied - 1].value
            self.committed_values.add(value)
            self.pending.pop(value, None)
            if isinstance(value, Payment):
                self.spent_coins.add(value.coin)
            actions.append(Decide(self.last_applied - 1, value))
        if actions:
            # The state machine rejects a second spend of a coin: forget such requests.
            for p in [p for p in self.pending if p.coin in self.spent_coins]:
                del self.pending[p]
        return actions


# -- Byzantine replicas ---------------------------------------------------------------------


class LyingRaft(Engine):
    """``"lie"``: says yes to everything, in the asker's term, and stores nothing."""

    honest = False

    def on_message(self, src: int, msg: Any) -> list[Action]:
        if isinstance(msg, RequestVote):
            return [Send(src, VoteReply(msg.term, True))]          # votes for every candidate
        if isinstance(msg, AppendEntries):
            # "I hold them" -- whether or not its log passes the consistency check.
            return [Send(src, AppendReply(msg.term, True, msg.prev_index + len(msg.entries)))]
        return []


class EquivocatingRaft(LyingRaft):
    """``"equivocate"``: lies like ``"lie"``, and once it has seen a leader's log it claims
    leadership of a later term it never won, sending one half of the honest replicas a
    payment and the other half a payment of the same coin to another payee, each with a
    commit index that covers it -- a double spend committed by honest replicas.
    ``coalition``: the ids of the Byzantine replicas (its own included), left out of the
    split."""

    def __init__(self, ctx: NodeContext, *, attack_after: float = 1.0,
                 coalition: frozenset[int] = NO_COALITION) -> None:
        super().__init__(ctx)
        self.attack_after = attack_after
        self.coalition = coalition
        self.seen_log: list[Entry] = []
        self.seen_term = 0
        self.pending: list[Payment] = []
        self.attacked = False

    def on_start(self) -> list[Action]:
        return [SetTimer("attack", self.attack_after)]

    def on_message(self, src: int, msg: Any) -> list[Action]:
        if isinstance(msg, ClientRequest):
            self.pending.append(msg.payment)
            return []
        if isinstance(msg, AppendEntries) and msg.prev_index <= len(self.seen_log):
            del self.seen_log[msg.prev_index :]
            self.seen_log.extend(msg.entries)
        if hasattr(msg, "term"):
            self.seen_term = max(self.seen_term, msg.term)
        return super().on_message(src, msg)

    def on_timer(self, name: Hashable) -> list[Action]:
        if name != "attack" or self.attacked:
            return []
        if not self.pending and not self.seen_log:
            return [SetTimer("attack", self.attack_after)]
        self.attacked = True
        in_log = {e.value for e in self.seen_log}
        victim = next((p for p in self.pending if p not in in_log), None)
        if victim is None:
            victim = Payment(-1, 0, "mallory-coin", "alice")
        twin = Payment(victim.client, victim.seq, victim.coin, victim.payee + "-mallory")
        term = self.seen_term + 1
        prev = len(self.seen_log)
        prev_term = self.seen_log[-1].term if self.seen_log else 0
        actions: list[Action] = []
        for value, side in zip((victim, twin), split_honest(self.ctx.others, self.coalition)):
            msg = AppendEntries(term, prev, prev_term, (Entry(term, value),), prev + 1)
            actions += [Send(peer, msg) for peer in side]
        return actions


# -- registration ---------------------------------------------------------------------------


def build(ctx: NodeContext, behaviour: str | None = None, *, coalition: frozenset[int] = NO_COALITION,
          **options: Any) -> Engine:
    """An honest replica (``behaviour=None``, ``options`` go to :class:`Raft`) or a Byzantine
    one; ``coalition`` is the ids of the run's Byzantine replicas (``engines/coalition.py``)."""
    if behaviour is None:
        return Raft(ctx, **options)
    if behaviour == "silent":
        return Silent(ctx)
    if behaviour == "lie":
        return LyingRaft(ctx)
    if behaviour == "equivocate":
        return EquivocatingRaft(ctx, coalition=coalition)
    raise ValueError(f"raft has no behaviour {behaviour!r}")


SPEC = register(EngineSpec(
    "raft", "CFT", "crash", quorum.max_crash_faults, build, ("silent", "lie", "equivocate"),
    "Ongaro & Ousterhout, In Search of an Understandable Consensus Algorithm, USENIX ATC 2014",
    coalition=True,
))
