"""PBFT: Practical Byzantine Fault Tolerance, as a sans-IO engine.

Castro & Liskov, "Practical Byzantine Fault Tolerance", OSDI 1999 (section numbers below
refer to that paper). ``n = 3f + 1`` replicas order client requests; one replica, the
*primary* of view ``v`` (``v mod n``), assigns sequence numbers and the others (backups)
check it:

* Normal case (4.2): the primary multicasts PRE-PREPARE(v, n, m); a backup that accepts it
  multicasts PREPARE(v, n, d). A replica is *prepared* with the pre-prepare and 2f matching
  prepares from backups (2f + 1 replicas in all with the primary); it then multicasts
  COMMIT(v, n, d) and is *committed-local* with 2f + 1 matching commits. Requests execute in
  sequence-number order.
* Garbage collection (4.3): every K sequence numbers a replica multicasts CHECKPOINT(n, d)
  with the digest of its state; 2f + 1 matching ones make a *stable checkpoint*, the low
  watermark h. Older log entries are dropped and sequence numbers must lie in (h, h + L].
* View change (4.4): a backup waiting too long for a request to execute multicasts
  VIEW-CHANGE(v + 1, n, C, P) with its stable checkpoint (proof C) and, for every sequence
  number above it, its prepared certificate from the highest view (set P). The primary of
  v + 1 collects 2f + 1 of them (V) and multicasts NEW-VIEW(v + 1, V, O), where O re-proposes
  each prepared value from the highest view for sequence numbers between min-s and max-s
  and fills the gaps with null requests. Backups recompute O from V before accepting it.
* Liveness (4.5.2): the view-change timer doubles with each consecutive view change that
  does not lead to an execution (the doubled timeout holds in the new view until a request
  executes there), and a replica joins a view change once f + 1 replicas ask for views
  above its own.

What we model and what we simplify (stated plainly, in the spirit of tinychain):

* **Authentication.** The simulator cannot forge ``src``, so point-to-point messages
  are authenticated (the paper's MACs). Messages that PBFT signs so they can be passed on
  -- pre-prepares and checkpoints inside certificates, the view-change set V inside
  NEW-VIEW, a NEW-VIEW relayed to a replica that missed it, the COMMITs of a commit
  certificate relayed to a replica left behind (the OSDI paper signs every message) --
  carry their signer in ``sender`` and are trusted on it: we compute no signatures, and our Byzantine
  behaviours never put another replica's id on a message (the unforgeability the paper
  assumes). A certificate is a tuple of such messages (sender ids plus digests).
* **Digests.** A request is its own digest (``Payment`` is a small hashable value); the
  state digest is a SHA-256 hash chain over the executed ledger.
* **Requests.** One request per sequence number (no batching); the workload gives each
  request to every replica (4.1's retransmission to all), and replies to the client are
  not modelled. Requests are ``Payment`` values; execution appends a payment to the ledger
  unless its coin is already spent (the ledger rejects a double spend), skips null
  requests, and the ledger position is the slot of ``Decide``.
* **Retransmission.** The paper leaves it to the implementation; we use status messages
  (as Castro's thesis and BFT library do): a replica that is waiting and made no progress
  for ``status_interval`` multicasts STATUS (again after 1, 2, 4, then every 8 quiet
  intervals), and peers answer with what it lacks -- their own messages for its open
  sequence numbers, the commit certificates of what it has not executed, the NEW-VIEW it
  missed, their VIEW-CHANGE messages for its view and for theirs, or a state transfer
  (the checkpoint proof plus the ledger, checked against the proof's digest). A replica
  stuck in a view change also re-multicasts its VIEW-CHANGE. A peer that never showed it
  reached our last execution is sent our STATUS now and then, and asks back.
* **Durability.** A crash keeps the engine object, i.e. the log is on stable storage.

Byzantine behaviours (``behaviour=``): "equivocate" (as primary, sends conflicting
pre-prepares -- the request and a conflicting twin that spends the same coin, as if signed
by a colluding client -- to alternate backups; as a voter, double-votes), "double-vote"
(votes for every value it sees: it echoes each replica's PREPARE/COMMIT back to it, so
every replica gets this replica's vote for the value it chose -- broadcasting two votes
would not work, because receivers count one vote per voter), "withhold" (never sends
PREPARE or COMMIT) and "silent" (:class:`Silent`: never sends anything).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any, Hashable, Iterable

from minichain.sim import quorum
from minichain.sim.engine import Action, Broadcast, CancelTimer, Decide, Engine, NodeContext, Send, SetTimer
from minichain.sim.engines import EngineSpec, Silent, register
from minichain.sim.engines.nudge import Nudges
from minichain.sim.quorum import Outcome, QuorumSystem, Tally
from minichain.sim.workload import CLIENT, ClientRequest, Payment

# -- values and digests ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Null:
    """The null request the new primary assigns to a sequence-number gap (4.4)."""

    def __repr__(self) -> str:
        return "null"


NULL = Null()

GENESIS = hashlib.sha256(b"minichain/pbft/genesis").hexdigest()[:16]


def extend_digest(digest: str, payment: Payment) -> str:
    """The state digest after appending ``payment`` to a ledger whose digest was ``digest``."""
    data = f"{digest}|{payment.client}|{payment.seq}|{payment.coin}|{payment.payee}".encode()
    return hashlib.sha256(data).hexdigest()[:16]


def ledger_digest(ledger: Iterable[Payment]) -> str:
    d = GENESIS
    for p in ledger:
        d = extend_digest(d, p)
    return d


def conflicting_twin(p: Payment) -> Payment:
    """The double spend an equivocating leader pairs with ``p``: same coin, another payee."""
    return replace(p, payee="attacker")


# -- messages (4.2-4.4; ``sender`` is the signer) -------------------------------------------


@dataclass(frozen=True, slots=True)
class PrePrepare:
    view: int
    seq: int
    value: Any          # a Payment or NULL; the request is piggybacked (4.2)
    sender: int


@dataclass(frozen=True, slots=True)
class Prepare:
    view: int
    seq: int
    digest: Any
    sender: int


@dataclass(frozen=True, slots=True)
class Commit:
    view: int
    seq: int
    digest: Any
    sender: int


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    digest: str
    sender: int


@dataclass(frozen=True, slots=True)
class PreparedProof:
    """A prepared certificate (an element of P, 4.4): the pre-prepare and 2f matching prepares."""

    pre_prepare: PrePrepare
    prepares: tuple[Prepare, ...]


@dataclass(frozen=True, slots=True)
class ViewChange:
    view: int                                  # the view asked for, v + 1
    stable_seq: int                            # n, the sender's last stable checkpoint
    checkpoint_proof: tuple[Checkpoint, ...]   # C: 2f + 1 checkpoint messages for n
    prepared: tuple[PreparedProof, ...]        # P
    sender: int


@dataclass(frozen=True, slots=True)
class NewView:
    view: int
    view_changes: tuple[ViewChange, ...]       # V
    pre_prepares: tuple[PrePrepare, ...]       # O
    sender: int


@dataclass(frozen=True, slots=True)
class Status:
    """Retransmission request: where the sender stands (Castro's thesis, status messages).

    ``reply`` marks a status sent back to a replica that showed it is ahead (a request for
    what we lack); it is answered with data, never with another status."""

    view: int
    in_view_change: bool
    stable_seq: int
    last_exec: int
    sender: int
    reply: bool = False


@dataclass(frozen=True, slots=True)
class StateTransfer:
    """The ledger at checkpoint ``seq`` (4.3, "state transfer"), with the checkpoint's proof
    -- or without one when the receiver asked for the checkpoint it already holds as stable."""

    seq: int
    ledger: tuple[Payment, ...]
    proof: tuple[Checkpoint, ...]
    sender: int


@dataclass(frozen=True, slots=True)
class Retransmit:
    """An answer to STATUS in one bundle: the sender's own votes and checkpoints, and the
    pre-prepares it relays."""

    messages: tuple
    sender: int


# Messages that stay meaningful when relayed: checked on their signer, not on ``src``.
_RELAYABLE = (PrePrepare, NewView, StateTransfer)


@dataclass(frozen=True)
class PBFTConfig:
    request_timeout: float = 2.0      # T: the view-change timer (4.4), doubled per failed view change (4.5.2)
    checkpoint_interval: int = 8      # K: a checkpoint every K sequence numbers (4.3)
    log_window: int = 16              # L: sequence numbers must lie in (h, h + L] (4.3; the paper suggests 2K)
    status_interval: float = 0.5      # how long a waiting replica goes without progress before STATUS
    nudge_backoff_max: int = 8        # status intervals between two resends of the same status, at most


# -- quorum helpers (certificates are judged by the shared quorum module) -------------------------


def primary(view: int, n: int) -> int:
    """The primary of view v is replica v mod n (4.1)."""
    return view % n


def checkpoint_proof_digest(proof: tuple[Checkpoint, ...], q: QuorumSystem) -> tuple[int, str] | None:
    """(seq, digest) certified by a proof of 2f + 1 matching checkpoints, else None.

    A proof is 2f + 1 CHECKPOINT messages "for sequence number n with the same digest"
    (4.3) and nothing else: one padded with a checkpoint of another digest, or with one
    signer twice, is refused whole, so no reader can take the stray digest for the
    certified one (a Byzantine replica's padded proof inside a VIEW-CHANGE otherwise
    poisoned the stable digest of every replica that entered the new view).
    """
    if not proof or not isinstance(proof[0], Checkpoint):
        return None
    seq, digest = proof[0].seq, proof[0].digest
    tally: Tally[str] = Tally(q)
    for cp in proof:
        if (not isinstance(cp, Checkpoint) or (cp.seq, cp.digest) != (seq, digest) or not 0 <= cp.sender < q.n
                or not tally.add(cp.sender, cp.digest)):
            return None
    return (seq, digest) if tally.outcome(digest) is Outcome.WON else None


def prepared_proof_ok(cert: PreparedProof, q: QuorumSystem) -> bool:
    """The pre-prepare comes from its view's primary and 2f backups prepared the same digest."""
    pp = cert.pre_prepare
    if not isinstance(pp, PrePrepare) or pp.sender != primary(pp.view, q.n):
        return False
    tally: Tally[Any] = Tally(q)
    tally.add(pp.sender, pp.value)
    for p in cert.prepares:
        if (not isinstance(p, Prepare) or (p.view, p.seq, p.digest) != (pp.view, pp.seq, pp.value)
                or p.sender == pp.sender or not 0 <= p.sender < q.n):
            return False
        tally.add(p.sender, p.digest)
    return tally.outcome(pp.value) is Outcome.WON


def view_change_ok(vc: ViewChange, q: QuorumSystem, window: int) -> bool:
    if vc.stable_seq < 0:
        return False
    if vc.stable_seq == 0:
        if vc.checkpoint_proof:
            return False
    else:
        certified = checkpoint_proof_digest(vc.checkpoint_proof, q)
        if certified is None or certified[0] != vc.stable_seq:
            return False
    seqs = set()
    for cert in vc.prepared:
        pp = cert.pre_prepare
        if (pp.view >= vc.view or not vc.stable_seq < pp.seq <= vc.stable_seq + window
                or pp.seq in seqs or not prepared_proof_ok(cert, q)):
            return False
        seqs.add(pp.seq)
    return True


def compute_new_view(view: int, view_changes: tuple[ViewChange, ...], n: int) -> tuple[int, tuple[PrePrepare, ...]]:
    """min-s and the set O of NEW-VIEW (4.4), a pure function of V so backups can recompute it.

    min-s is the latest stable checkpoint in V, max-s the highest sequence number in a
    prepared certificate in V. For each n in (min-s, max-s]: the value prepared in the
    highest view if V holds a certificate for n, otherwise a null request.
    """
    min_s = max((vc.stable_seq for vc in view_changes), default=0)
    best: dict[int, PrePrepare] = {}
    for vc in sorted(view_changes, key=lambda vc: vc.sender):
        for cert in vc.prepared:
            pp = cert.pre_prepare
            if pp.seq > min_s and (pp.seq not in best or pp.view > best[pp.seq].view):
                best[pp.seq] = pp
    max_s = max(best, default=min_s)
    leader = primary(view, n)
    o = tuple(PrePrepare(view, s, best[s].value if s in best else NULL, leader) for s in range(min_s + 1, max_s + 1))
    return min_s, o


# -- the engine ------------------------------------------------------------------------------


class PBFT(Engine):
    """One PBFT replica. ``behaviour`` is None (honest) or a Byzantine behaviour."""

    BEHAVIOURS = ("equivocate", "double-vote", "withhold")

    def __init__(self, ctx: NodeContext, *, config: PBFTConfig | None = None, behaviour: str | None = None) -> None:
        super().__init__(ctx)
        if behaviour is not None and behaviour not in self.BEHAVIOURS:
            raise ValueError(f"PBFT has no behaviour {behaviour!r} (silent is the Silent engine)")
        self.behaviour = behaviour
        self.honest = behaviour is None
        self.cfg = config or PBFTConfig()
        self.n = ctx.n
        self.q = QuorumSystem.byzantine(ctx.n)
        # view
        self.view = 0
        self.in_view_change = False
        # execution: the ledger of payments is the replicated log
        self.ledger: list[Payment] = []
        self.spent: set[str] = set()
        self.state_digest = GENESIS
        self.last_exec = 0                                  # sequence numbers start at 1
        self.pending: dict[str, Payment] = {}               # coin -> request waiting to execute
        # checkpoints and watermarks (4.3)
        self.stable_seq = 0                                 # h, the low watermark
        self.stable_digest = GENESIS
        self.stable_proof: tuple[Checkpoint, ...] = ()
        self.my_checkpoints: dict[int, tuple[str, int]] = {0: (GENESIS, 0)}   # seq -> (digest, ledger length)
        self.checkpoint_msgs: dict[int, dict[int, Checkpoint]] = {}
        # the message log of the normal case (4.2), keyed by (view, seq)
        self.pre_prepares: dict[tuple[int, int], PrePrepare] = {}
        self.future_pre_prepares: dict[tuple[int, int], PrePrepare] = {}
        self.prepares: dict[tuple[int, int], Tally] = {}
        self.prepare_msgs: dict[tuple[int, int], dict[int, Prepare]] = {}
        self.commits: dict[tuple[int, int], Tally] = {}
        self.my_votes: dict[tuple[str, int, int], Prepare | Commit] = {}
        self.prepared: set[tuple[int, int]] = set()
        self.committed_local: set[tuple[int, int]] = set()
        self.prepared_certs: dict[int, PreparedProof] = {}  # seq -> certificate of the highest view
        self.committed: dict[int, Any] = {}                 # seq -> value, committed, not yet executed
        # primary
        self.next_seq = 1
        self.assigned: dict[str, int] = {}                  # coin -> seq, in this view
        # view change (4.4)
        self.view_changes: dict[int, dict[int, ViewChange]] = {}
        self.vc_latest: dict[int, int] = {}                 # sender -> highest view it asked for
        self.my_view_change: ViewChange | None = None
        self.sent_view_changes: dict[int, ViewChange] = {}  # view -> ours, since we last entered a view
        self.new_view_msg: NewView | None = None
        self.new_views_sent: set[int] = set()
        self.vc_attempts = 0                                # view changes in a row without executing a request
        self._view_unproven = False                         # entered by a view change, nothing executed since
        self._vc_timer_view: int | None = None
        # timers and retransmission
        self._request_timer = False
        self._status_timer = False
        self._status_mark: tuple | None = None
        self._quiet = 0                                     # status intervals in a row without progress
        self.peer_progress: dict[int, int] = {}             # peer -> highest seq it showed it reached
        self._nudges = Nudges(self.cfg.nudge_backoff_max)
        self._echoed: set[tuple] = set()

    # -- helpers ----------------------------------------------------------------------------

    @property
    def is_primary(self) -> bool:
        return primary(self.view, self.n) == self.id

    @property
    def high_watermark(self) -> int:
        return self.stable_seq + self.cfg.log_window

    def _in_window(self, seq: int) -> bool:
        return self.stable_seq < seq <= self.high_watermark

    def _status(self, reply: bool = False) -> Status:
        return Status(self.view, self.in_view_change, self.stable_seq, self.last_exec, self.id, reply)

    def _waiting(self) -> bool:
        return bool(self.pending or self.in_view_change or self.committed or self.last_exec < self.stable_seq
                    or any(seq > self.last_exec for _, seq in self.pre_prepares))

    def _laggards(self) -> list[int]:
        """Peers that never showed us they reached our last executed sequence number."""
        return [j for j in self.ctx.others if self.peer_progress.get(j, 0) < self.last_exec]

    def _finish(self, actions: list[Action]) -> list[Action]:
        """Arm the status timer whenever the replica is waiting for something, or a peer may
        be behind it."""
        if not self._status_timer and (self._waiting() or self._laggards()):
            self._status_timer = True
            self._status_mark = self._progress_mark()
            actions.append(SetTimer("status", self.cfg.status_interval))
        return actions

    def _progress_mark(self) -> tuple:
        return (self.view, self.in_view_change, self.last_exec, self.stable_seq)

    # -- entry points -------------------------------------------------------------------------

    def on_start(self) -> list[Action]:
        return []

    def on_recover(self) -> list[Action]:
        # Timers died with the crash; the log survived. Ask the others where they are.
        self._request_timer = self._status_timer = False
        self._vc_timer_view = None
        actions: list[Action] = [Broadcast(self._status())]
        if self.in_view_change and self.my_view_change is not None:
            actions.append(Broadcast(self.my_view_change))
        actions += self._reset_request_timer()
        return self._finish(actions)

    def on_message(self, src: int, msg: Any) -> list[Action]:
        if src == CLIENT:
            if isinstance(msg, ClientRequest):
                return self._finish(self._on_request(msg.payment))
            return []
        if not isinstance(msg, _RELAYABLE) and getattr(msg, "sender", None) != src:
            return []                                       # not authenticated as its sender
        if isinstance(msg, (Commit, Checkpoint, Status)) and 0 <= src < self.n:
            reached = msg.last_exec if isinstance(msg, Status) else msg.seq
            self.peer_progress[src] = max(reached, self.peer_progress.get(src, 0))
        actions: list[Action] = []
        if self.behaviour in ("double-vote", "equivocate"):
            actions += self._echo(src, msg)
        handler = self._HANDLERS.get(type(msg))
        if handler is not None:
            actions += handler(self, msg)
        return self._finish(actions)

    def on_timer(self, name: Hashable) -> list[Action]:
        if name == "request":
            self._request_timer = False
            actions = self._on_request_timeout()
        elif name == "status":
            self._status_timer = False
            actions = self._on_status_timer()
        elif isinstance(name, tuple) and name[0] == "view-change":
            actions = self._on_view_change_timeout(name[1])
        else:
            actions = []
        return self._finish(actions)

    # -- Byzantine output hooks -----------------------------------------------------------------

    def _vote(self, msg: Prepare | Commit) -> list[Action]:
        """Multicast our PREPARE or COMMIT (4.2) -- unless this replica is Byzantine."""
        if self.behaviour is not None:
            return []       # withhold: never vote; double-vote/equivocate: vote only by echo
        kind = "prepare" if isinstance(msg, Prepare) else "commit"
        self.my_votes[(kind, msg.view, msg.seq)] = msg
        return [Broadcast(msg)]

    def _send_pre_prepare(self, pp: PrePrepare) -> list[Action]:
        if self.behaviour == "equivocate" and isinstance(pp.value, Payment):
            twin = replace(pp, value=conflicting_twin(pp.value))
            return [Send(dst, pp if i % 2 == 0 else twin) for i, dst in enumerate(self.ctx.others)]
        return [Broadcast(pp)]

    def _echo(self, src: int, msg: Any) -> list[Action]:
        """Double voting: tell each replica that we vote for whatever it voted for."""
        if not isinstance(msg, (Prepare, Commit)):
            return []
        if isinstance(msg, Prepare) and primary(msg.view, self.n) == self.id:
            return []       # a primary's PREPARE is not counted; its PRE-PREPARE was its vote
        key = (type(msg).__name__, msg.view, msg.seq, src)
        if key in self._echoed:
            return []
        self._echoed.add(key)
        return [Send(src, replace(msg, sender=self.id))]

    # -- requests (4.1, 4.2) ----------------------------------------------------------------

    def _on_request(self, p: Payment) -> list[Action]:
        if not isinstance(p, Payment) or p.coin in self.spent or p.coin in self.pending:
            return []
        self.pending[p.coin] = p
        actions: list[Action] = []
        if not self._request_timer and not self.in_view_change:
            # 4.4: a backup starts its timer when it receives a request and none is running.
            self._request_timer = True
            actions.append(SetTimer("request", self._timeout()))
        if self.is_primary and not self.in_view_change:
            actions += self._propose_pending()
        return actions

    def _propose_pending(self) -> list[Action]:
        """The primary assigns the next sequence numbers, within the watermarks (4.2, 4.3)."""
        actions: list[Action] = []
        for coin, p in list(self.pending.items()):
            if coin in self.assigned:
                continue
            if self.next_seq > self.high_watermark:
                break
            seq = self.next_seq
            self.next_seq += 1
            self.assigned[coin] = seq
            pp = PrePrepare(self.view, seq, p, self.id)
            actions += self._send_pre_prepare(pp)
            actions += self._accept_pre_prepare(pp)
        return actions

    # -- normal case (4.2) ----------------------------------------------------------------------

    def _on_pre_prepare(self, pp: PrePrepare) -> list[Action]:
        if pp.sender != primary(pp.view, self.n) or not isinstance(pp.value, (Payment, Null)):
            return []
        if not self._in_window(pp.seq):
            return []
        key = (pp.view, pp.seq)
        if pp.view > self.view or (pp.view == self.view and self.in_view_change):
            self.future_pre_prepares.setdefault(key, pp)   # kept until NEW-VIEW brings us there
            return []
        if pp.view < self.view:
            return []
        return self._accept_pre_prepare(pp)

    def _accept_pre_prepare(self, pp: PrePrepare) -> list[Action]:
        """4.2: accept the first pre-prepare for (v, n) within the watermarks; backups prepare."""
        key = (pp.view, pp.seq)
        if key in self.pre_prepares or not self._in_window(pp.seq):
            return []
        self.pre_prepares[key] = pp
        self._prepare_tally(key).add(pp.sender, pp.value)   # the primary's pre-prepare is its vote
        actions: list[Action] = []
        if pp.sender != self.id:
            prepare = Prepare(pp.view, pp.seq, pp.value, self.id)
            self._record_prepare(prepare)
            actions += self._vote(prepare)
        return actions + self._check_slot(key)

    def _prepare_tally(self, key: tuple[int, int]) -> Tally:
        tally = self.prepares.get(key)
        if tally is None:
            tally = self.prepares[key] = Tally(self.q)
            self.prepare_msgs[key] = {}
        return tally

    def _record_prepare(self, m: Prepare) -> None:
        key = (m.view, m.seq)
        if self._prepare_tally(key).add(m.sender, m.digest):
            self.prepare_msgs[key][m.sender] = m

    def _on_prepare(self, m: Prepare) -> list[Action]:
        if m.sender == primary(m.view, self.n) or m.view < self.view or not self._in_window(m.seq):
            return []
        self._record_prepare(m)
        return self._check_slot((m.view, m.seq))

    def _on_commit(self, m: Commit) -> list[Action]:
        if not self._in_window(m.seq):
            return []
        key = (m.view, m.seq)
        tally = self.commits.setdefault(key, Tally(self.q))
        tally.add(m.sender, m.digest)
        actions = self._check_slot(key)
        # A commit certificate: 2f + 1 matching COMMITs of one view, whatever our own view.
        # At least f + 1 of them come from correct replicas that were prepared, so the request
        # is committed(m, v, n) (4.5.1) and every view change re-proposes it at n: executing it
        # is safe. This is how a replica that fell behind (or sits in a view change of its
        # own) catches up from the commits its peers retransmit.
        digest = tally.winner()
        if digest is not None and m.seq > self.last_exec and m.seq not in self.committed:
            self.committed[m.seq] = digest
            actions += self._execute()
        return actions

    def _check_slot(self, key: tuple[int, int]) -> list[Action]:
        """The predicates prepared(m, v, n, i) and committed-local(m, v, n, i) of 4.2."""
        view, seq = key
        if view != self.view or self.in_view_change:
            return []
        pp = self.pre_prepares.get(key)
        if pp is None:
            return []
        d = pp.value
        actions: list[Action] = []
        if key not in self.prepared and self.prepares[key].outcome(d) is Outcome.WON:
            # prepared: the pre-prepare plus 2f matching prepares from distinct backups.
            self.prepared.add(key)
            proofs = tuple(m for _, m in sorted(self.prepare_msgs[key].items()) if m.digest == d)
            old = self.prepared_certs.get(seq)
            if old is None or old.pre_prepare.view <= view:
                self.prepared_certs[seq] = PreparedProof(pp, proofs)
            commit = Commit(view, seq, d, self.id)
            self.commits.setdefault(key, Tally(self.q)).add(self.id, d)
            actions += self._vote(commit)
        commits = self.commits.get(key)
        if (key in self.prepared and key not in self.committed_local and commits is not None
                and commits.outcome(d) is Outcome.WON):
            # committed-local: prepared and 2f + 1 matching commits (possibly our own).
            self.committed_local.add(key)
            if seq > self.last_exec:
                self.committed[seq] = d
                actions += self._execute()
        return actions

    def _execute(self) -> list[Action]:
        """Execute committed requests in sequence-number order (4.2); checkpoint every K (4.3)."""
        actions: list[Action] = []
        progressed = False
        while self.last_exec >= self.stable_seq and self.last_exec + 1 in self.committed:
            seq = self.last_exec + 1
            value = self.committed.pop(seq)
            self.last_exec = seq
            progressed = True
            if isinstance(value, Payment):
                if value.coin not in self.spent:
                    self.ledger.append(value)
                    self.spent.add(value.coin)
                    self.state_digest = extend_digest(self.state_digest, value)
                    actions.append(Decide(len(self.ledger) - 1, value))
                self.pending.pop(value.coin, None)
            if seq % self.cfg.checkpoint_interval == 0:
                self.my_checkpoints[seq] = (self.state_digest, len(self.ledger))
                cp = Checkpoint(seq, self.state_digest, self.id)
                actions.append(Broadcast(cp))
                actions += self._on_checkpoint(cp)
        if progressed:
            self._progressed()
            # 4.4: stop the timer when no longer waiting, restart it if waiting for another request.
            actions += self._reset_request_timer()
        return actions

    def _progressed(self) -> None:
        """We executed something new: the view we are in works, timeouts go back to T (4.5.2)."""
        self.vc_attempts = 0
        self._view_unproven = False

    def _timeout(self) -> float:
        """T, doubled for each view change in a row that did not lead to an execution (4.5.2)."""
        return self.cfg.request_timeout * 2 ** self.vc_attempts

    def _reset_request_timer(self) -> list[Action]:
        if self.pending and not self.in_view_change:
            self._request_timer = True
            return [SetTimer("request", self._timeout())]
        if self._request_timer:
            self._request_timer = False
            return [CancelTimer("request")]
        return []

    # -- checkpoints and garbage collection (4.3) ----------------------------------------------

    def _on_checkpoint(self, cp: Checkpoint) -> list[Action]:
        if cp.seq <= self.stable_seq:
            return []
        msgs = self.checkpoint_msgs.setdefault(cp.seq, {})
        msgs.setdefault(cp.sender, cp)
        tally: Tally[str] = Tally(self.q)
        for sender, m in msgs.items():
            tally.add(sender, m.digest)
        digest = tally.winner()
        if digest is None:
            return []
        proof = tuple(m for _, m in sorted(msgs.items()) if m.digest == digest)
        return self._make_stable(cp.seq, digest, proof)

    def _make_stable(self, seq: int, digest: str, proof: tuple[Checkpoint, ...]) -> list[Action]:
        """A stable checkpoint: move h, discard the log at or below it (4.3)."""
        if seq <= self.stable_seq:
            return []
        self.stable_seq, self.stable_digest, self.stable_proof = seq, digest, proof
        for table in (self.pre_prepares, self.future_pre_prepares, self.prepares, self.prepare_msgs, self.commits):
            for key in [k for k in table if k[1] <= seq]:
                del table[key]
        self.prepared = {k for k in self.prepared if k[1] > seq}
        self.committed_local = {k for k in self.committed_local if k[1] > seq}
        self.my_votes = {k: m for k, m in self.my_votes.items() if k[2] > seq}
        for table in (self.prepared_certs, self.committed):
            for s in [s for s in table if s <= seq]:
                del table[s]
        for s in [s for s in self.checkpoint_msgs if s <= seq]:
            del self.checkpoint_msgs[s]
        for s in [s for s in self.my_checkpoints if s < seq]:
            del self.my_checkpoints[s]
        actions: list[Action] = []
        if self.last_exec < seq:
            # We lack the state the others have certified: ask f + 1 of them for it.
            helpers = [cp.sender for cp in proof if cp.sender != self.id][: self.q.weak]
            actions += [Send(h, self._status()) for h in helpers]
        if self.is_primary and not self.in_view_change:
            actions += self._propose_pending()
        return actions

    def _on_state_transfer(self, st: StateTransfer) -> list[Action]:
        if st.proof:
            certified = checkpoint_proof_digest(st.proof, self.q)
        elif st.seq == self.stable_seq:
            certified = (self.stable_seq, self.stable_digest)   # certified by our own stable proof
        else:
            certified = None
        if certified is None or certified[0] != st.seq:
            return []
        seq, digest = certified
        if seq <= self.last_exec or ledger_digest(st.ledger) != digest:
            return []
        actions: list[Action] = []
        for k, p in enumerate(st.ledger):
            if k >= len(self.ledger) or self.ledger[k] != p:
                actions.append(Decide(k, p))
        self.ledger = list(st.ledger)
        self.spent = {p.coin for p in self.ledger}
        self.state_digest = digest
        self.last_exec = seq
        self._progressed()
        self.my_checkpoints[seq] = (digest, len(self.ledger))
        for coin in [c for c in self.pending if c in self.spent]:
            del self.pending[coin]
        for s in [s for s in self.committed if s <= seq]:
            del self.committed[s]
        if st.proof:
            actions += self._make_stable(seq, digest, st.proof)
        actions += self._execute()
        actions += self._reset_request_timer()
        return actions

    # -- view change (4.4, 4.5.2) ---------------------------------------------------------------

    def _on_request_timeout(self) -> list[Action]:
        if self.in_view_change or not self.pending:
            return []
        if self._view_unproven:
            # 4.5.2: the timer started for view v + 1 ran out before we executed a request
            # in it: this view change failed too, so the next one waits twice as long.
            self.vc_attempts += 1
        return self._start_view_change(self.view + 1)

    def _on_view_change_timeout(self, view: int) -> list[Action]:
        # 4.5.2: no NEW-VIEW for v + 1 in time: go on to v + 2 and wait twice as long.
        if not self.in_view_change or view != self.view or self._vc_timer_view != view:
            return []
        self._vc_timer_view = None
        self.vc_attempts += 1
        return self._start_view_change(self.view + 1)

    def _start_view_change(self, view: int) -> list[Action]:
        assert view > self.view or (view == self.view and not self.in_view_change)
        self.view = view
        self.in_view_change = True
        prepared = tuple(self.prepared_certs[s] for s in sorted(self.prepared_certs) if s > self.stable_seq)
        vc = ViewChange(view, self.stable_seq, self.stable_proof, prepared, self.id)
        self.my_view_change = vc
        self.sent_view_changes[view] = vc
        actions: list[Action] = []
        if self._request_timer:
            self._request_timer = False
            actions.append(CancelTimer("request"))
        actions.append(Broadcast(vc))
        return actions + self._record_view_change(vc)

    def _on_view_change(self, vc: ViewChange) -> list[Action]:
        if vc.view < self.view or (vc.view == self.view and not self.in_view_change):
            # The sender is behind: the primary of our view hands it our NEW-VIEW again.
            if (not self.in_view_change and self.is_primary and self.new_view_msg is not None
                    and self.new_view_msg.view == self.view):
                return [Send(vc.sender, self.new_view_msg)]
            return []
        if not view_change_ok(vc, self.q, self.cfg.log_window):
            return []
        return self._record_view_change(vc)

    def _record_view_change(self, vc: ViewChange) -> list[Action]:
        self.view_changes.setdefault(vc.view, {})[vc.sender] = vc
        if vc.sender != self.id:
            self.vc_latest[vc.sender] = max(vc.view, self.vc_latest.get(vc.sender, -1))
        actions: list[Action] = []
        # 4.5.2 (1): f + 1 replicas ask for views above ours: join the smallest of them.
        above = {s: v for s, v in self.vc_latest.items() if v > self.view}
        support: Tally[bool] = Tally(self.q)
        for s in above:
            support.add(s, True)
        if support.weak_support(True):
            return self._start_view_change(min(above.values()))
        if not self.in_view_change:
            return actions
        have = self.view_changes.get(self.view, {})
        if not self.q.is_quorum(have):
            return actions
        # 4.5.2 (2): with 2f + 1 view-changes for our view, wait T * 2^attempts for NEW-VIEW.
        if self._vc_timer_view != self.view:
            self._vc_timer_view = self.view
            actions.append(SetTimer(("view-change", self.view), self._timeout()))
        if self.is_primary and self.view not in self.new_views_sent and self.id in have:
            self.new_views_sent.add(self.view)
            v_set = tuple(have[s] for s in sorted(have))
            _, o_set = compute_new_view(self.view, v_set, self.n)
            nv = NewView(self.view, v_set, o_set, self.id)
            actions.append(Broadcast(nv))
            actions += self._enter_view(nv)
        return actions

    def _on_new_view(self, nv: NewView) -> list[Action]:
        if nv.sender != primary(nv.view, self.n):
            return []
        if nv.view < self.view or (nv.view == self.view and not self.in_view_change):
            return []
        senders = [vc.sender for vc in nv.view_changes]
        if len(set(senders)) != len(senders) or not self.q.is_quorum(senders):
            return []
        for vc in nv.view_changes:
            if vc.view != nv.view or not view_change_ok(vc, self.q, self.cfg.log_window):
                return []
        _, o_set = compute_new_view(nv.view, nv.view_changes, self.n)
        if o_set != nv.pre_prepares:
            return []                                       # the primary's O does not follow from V
        return self._enter_view(nv)

    def _enter_view(self, nv: NewView) -> list[Action]:
        view = nv.view
        min_s, o_set = compute_new_view(view, nv.view_changes, self.n)
        self.view = view
        self.in_view_change = False
        # 4.5.2: the doubled timeout stays until a request executes in the new view.
        self._view_unproven = True
        self.sent_view_changes = {}
        self.new_view_msg = nv
        actions: list[Action] = []
        if self._vc_timer_view is not None:
            actions.append(CancelTimer(("view-change", self._vc_timer_view)))
            self._vc_timer_view = None
        # The latest stable checkpoint in V becomes ours (fetching its state if we lack it).
        if min_s > self.stable_seq:
            vc = next(vc for vc in nv.view_changes if vc.stable_seq == min_s)
            certified = checkpoint_proof_digest(vc.checkpoint_proof, self.q)
            assert certified is not None                    # view_change_ok checked every proof in V
            actions += self._make_stable(min_s, certified[1], vc.checkpoint_proof)
        # Messages of older views are of no more use (prepared certificates stay).
        for table in (self.pre_prepares, self.prepares, self.prepare_msgs):
            for key in [k for k in table if k[0] < view]:
                del table[key]
        self.prepared = {k for k in self.prepared if k[0] >= view}
        self.committed_local = {k for k in self.committed_local if k[0] >= view}
        for key in [k for k in self.future_pre_prepares if k[0] < view]:
            del self.future_pre_prepares[key]
        for v in [v for v in self.view_changes if v <= view]:
            del self.view_changes[v]
        self.assigned = {}
        # max-s + 1 (every number below is in O or covered by a stable checkpoint).
        self.next_seq = max(o_set[-1].seq if o_set else min_s, self.stable_seq) + 1
        # Redo the protocol for O (4.4): backups prepare each of its pre-prepares.
        for pp in o_set:
            if isinstance(pp.value, Payment):
                self.assigned[pp.value.coin] = pp.seq
            actions += self._accept_pre_prepare(pp)
        for key in sorted(k for k in self.future_pre_prepares if k[0] == view):
            # (popped one by one: executing one of them may make a checkpoint stable and
            # drop the ones below it -- a crash the adversary search found)
            pp = self.future_pre_prepares.pop(key, None)
            if pp is not None:
                actions += self._accept_pre_prepare(pp)
        for key in sorted(k for k in self.pre_prepares if k[0] == view):
            actions += self._check_slot(key)
        actions += self._reset_request_timer()
        if self.is_primary:
            actions += self._propose_pending()
        return actions

    # -- retransmission -------------------------------------------------------------------------

    def _on_status_timer(self) -> list[Action]:
        mark = self._progress_mark()
        actions: list[Action] = []
        if self._waiting() and mark == self._status_mark:     # no progress for a whole interval
            # Resend after 1, 2, 4, ... quiet intervals, then every nudge_backoff_max: a long
            # stall (a replica alone in a view change) costs a trickle, not a flood.
            self._quiet += 1
            if self._quiet & (self._quiet - 1) == 0 or self._quiet % self.cfg.nudge_backoff_max == 0:
                if self.in_view_change and self.my_view_change is not None and self.my_view_change.view == self.view:
                    actions.append(Broadcast(self.my_view_change))
                actions.append(Broadcast(self._status()))
            return actions
        self._quiet = 0
        return actions + self._nudge_laggards()

    def _nudge_laggards(self) -> list[Action]:
        """Tell a peer that never showed it reached our last execution where we stand
        (``engines/nudge.py``); it asks back (``Status.reply``) for what it lacks."""
        return [Send(j, self._status()) for j in self._nudges.due(self._laggards())]

    def _on_status(self, st: Status) -> list[Action]:
        """Give a lagging replica what it lacks (and ask one that is ahead for what we lack)."""
        dst = st.sender
        actions: list[Action] = []
        if not st.reply and (st.last_exec > self.last_exec or st.stable_seq > self.stable_seq):
            actions.append(Send(dst, self._status(reply=True)))
        mine = self.my_checkpoints.get(self.stable_seq)
        theirs = self.my_checkpoints.get(st.stable_seq)
        if st.last_exec < self.stable_seq and mine is not None and mine[0] == self.stable_digest:
            # Our stable checkpoint, with its proof.
            ledger = tuple(self.ledger[: mine[1]])
            actions.append(Send(dst, StateTransfer(self.stable_seq, ledger, self.stable_proof, self.id)))
        elif st.last_exec < st.stable_seq and theirs is not None:
            # It holds a proof for a checkpoint we reached but have not seen become stable.
            ledger = tuple(self.ledger[: theirs[1]])
            actions.append(Send(dst, StateTransfer(st.stable_seq, ledger, (), self.id)))
        bundle: dict[Any, None] = {}                    # an ordered set
        for seq, (digest, _) in sorted(self.my_checkpoints.items()):
            if seq > st.stable_seq and seq > 0:
                bundle[Checkpoint(seq, digest, self.id)] = None
        # For each number we executed and it did not, the commit certificate we executed on:
        # 2f + 1 matching signed COMMITs of one view, which let it execute whatever view it
        # is in (see _on_commit). Our own commits alone are not always enough: when the
        # others are idle, a replica that missed commits (and went on to a view change of
        # its own) could otherwise wait for good for 2f + 1 of them.
        for seq in range(st.last_exec + 1, self.last_exec + 1):
            bundle.update(dict.fromkeys(c for c in self._commit_certificate(seq) if c.sender != dst))
        if not self.in_view_change:
            if self.new_view_msg is not None and self.new_view_msg.view == self.view and (
                    st.view < self.view or (st.view == self.view and st.in_view_change)):
                actions.append(Send(dst, self.new_view_msg))
            if st.view == self.view and not st.in_view_change:
                # Same view: our part of the three phases for every number it has not executed.
                for (view, seq), pp in sorted(self.pre_prepares.items()):
                    if view != self.view or seq <= st.last_exec:
                        continue
                    bundle[pp] = None
                    for kind in ("prepare", "commit"):
                        vote = self.my_votes.get((kind, view, seq))
                        if vote is not None:
                            bundle[vote] = None
        if bundle:
            actions.append(Send(dst, Retransmit(tuple(bundle), self.id)))
        if st.in_view_change:
            actions += self._retransmit_view_changes(st)
        return actions

    def _retransmit_view_changes(self, st: Status) -> list[Action]:
        """A replica stuck in a view change: resend it our VIEW-CHANGE messages it may lack.

        Castro and Liskov retransmit view-change messages until the view change completes
        (receiver-driven, from status messages, as the rest of our retransmission). We
        send our VIEW-CHANGE for its view if we sent one -- even when we have moved on
        to a later view: with it, it can count 2f + 1 for its view, start the timer of
        4.5.2 (2) and follow us when it runs out -- and the one for the view we are
        changing to now, which counts toward its f + 1 join rule (4.5.2 (1)). Without the
        first, a replica whose VIEW-CHANGE for v was lost and which then moved to v + 1
        (n = 4, one silent replica) left the other two waiting in v for good.
        """
        out: list[Action] = []
        old = self.sent_view_changes.get(st.view)
        if old is not None:
            out.append(Send(st.sender, old))
        current = self.my_view_change
        if self.in_view_change and current is not None and current.view > st.view and current is not old:
            out.append(Send(st.sender, current))
        return out

    def _commit_certificate(self, seq: int) -> tuple[Commit, ...]:
        """The 2f + 1 matching COMMITs of one view we hold for ``seq``, or just our own."""
        for (view, s), tally in sorted(self.commits.items()):
            digest = tally.winner() if s == seq else None
            if digest is not None:
                # Our own commit only if we sent it (a withholding replica leaks nothing).
                return tuple(Commit(view, seq, digest, voter) for voter, d in sorted(tally.votes.items())
                             if d == digest and (voter != self.id or ("commit", view, seq) in self.my_votes))
        return tuple(vote for (kind, _, s), vote in sorted(self.my_votes.items()) if kind == "commit" and s == seq)

    def _on_retransmit(self, rt: "Retransmit") -> list[Action]:
        actions: list[Action] = []
        for m in rt.messages:
            # The bundle's own votes are authenticated by it; pre-prepares and the commits of
            # a commit certificate by their signers.
            if isinstance(m, (PrePrepare, Commit)) or (isinstance(m, (Prepare, Checkpoint)) and m.sender == rt.sender):
                actions += self._HANDLERS[type(m)](self, m)
        return actions

    _HANDLERS = {
        PrePrepare: _on_pre_prepare,
        Prepare: _on_prepare,
        Commit: _on_commit,
        Checkpoint: _on_checkpoint,
        ViewChange: _on_view_change,
        NewView: _on_new_view,
        Status: _on_status,
        Retransmit: _on_retransmit,
        StateTransfer: _on_state_transfer,
    }


def build(ctx: NodeContext, behaviour: str | None = None, config: PBFTConfig | None = None) -> Engine:
    if behaviour == "silent":
        return Silent(ctx)
    return PBFT(ctx, config=config, behaviour=behaviour)


SPEC = register(EngineSpec(
    "pbft", "BFT", "byzantine", quorum.max_byzantine_faults, build,
    ("silent", "equivocate", "double-vote", "withhold"),
    "Castro & Liskov, Practical Byzantine Fault Tolerance, OSDI 1999",
))
