"""The engines' messages on the wire: an explicit registry of classes and a bounded codec.

The engines (``sim/engines/``) speak in small frozen dataclasses -- PBFT's ``PrePrepare``,
Raft's ``AppendEntries``, the workload's ``Payment`` -- nested in tuples and frozensets.
In the simulator they travel as Python objects; between processes they travel as JSON
text built here:

    None, bool, int, float, str   as themselves (ints within 64 bits, floats finite)
    tuple                         a JSON array (decoded back to a tuple: the engines hash them)
    frozenset                     {"set": [...]} (sorted by its encoding, so equal sets encode alike)
    a registered dataclass        {"t": TAG, "f": [field values in declaration order]}

Decoding looks a tag up in :data:`REGISTRY` (never in ``globals()``, never pickle), and
checks the number of fields, the nesting depth and the number of values; anything else
raises :class:`WireError` (a :class:`~minichain.core.encoding.DecodeError`). What a
decoder does NOT check is the type of each field (a ``str`` where an engine expects an
``int``): only replicas holding a link key can send (``replica/wire.py``), and the host
drops a message whose handler raises.

The registry names every class an engine puts in a message, engine by engine, so adding
a message type to an engine means adding it here too (``tests/test_replica_codec.py``
walks the engines' modules and fails on a message class the registry lacks).
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from minichain.core.encoding import DecodeError

MAX_DEPTH = 24          # PBFT's NEW-VIEW nests view changes, certificates, pre-prepares, payments
MAX_VALUES = 200_000    # values in one message (a frame is at most 2 MB anyway)
_INT_LIMIT = 1 << 63


class WireError(DecodeError):
    """A message that cannot be decoded (or encoded); ``str()`` says what is wrong."""


def _registry() -> dict[str, type]:
    """Tag -> class, for every value the engines put in a message. Explicit on purpose."""
    from minichain.sim import workload
    from minichain.sim.engines import dls, paxos, pbft, raft, tendermint

    classes = {
        # the client workload (sim/workload.py)
        "payment": workload.Payment,
        "request": workload.ClientRequest,
        # PBFT (Castro & Liskov 1999, 4.2-4.4)
        "pbft.null": pbft.Null,
        "pbft.pre-prepare": pbft.PrePrepare,
        "pbft.prepare": pbft.Prepare,
        "pbft.commit": pbft.Commit,
        "pbft.checkpoint": pbft.Checkpoint,
        "pbft.prepared-proof": pbft.PreparedProof,
        "pbft.view-change": pbft.ViewChange,
        "pbft.new-view": pbft.NewView,
        "pbft.status": pbft.Status,
        "pbft.state-transfer": pbft.StateTransfer,
        "pbft.retransmit": pbft.Retransmit,
        # Tendermint (Buchman, Kwon & Milosevic 2018, Alg. 1)
        "tendermint.block": tendermint.Block,
        "tendermint.proposal": tendermint.Proposal,
        "tendermint.prevote": tendermint.Prevote,
        "tendermint.precommit": tendermint.Precommit,
        "tendermint.status": tendermint.Status,
        "tendermint.gossip": tendermint.Gossip,
        # Raft (Ongaro & Ousterhout 2014, Figure 2)
        "raft.noop": raft.Noop,
        "raft.entry": raft.Entry,
        "raft.request-vote": raft.RequestVote,
        "raft.vote-reply": raft.VoteReply,
        "raft.append-entries": raft.AppendEntries,
        "raft.append-reply": raft.AppendReply,
        # Multi-Paxos (Lamport 2001)
        "paxos.noop": paxos.Noop,
        "paxos.prepare": paxos.Prepare,
        "paxos.promise": paxos.Promise,
        "paxos.reject": paxos.Reject,
        "paxos.accept": paxos.Accept,
        "paxos.accepted": paxos.Accepted,
        "paxos.chosen": paxos.Chosen,
        "paxos.heartbeat": paxos.Heartbeat,
        "paxos.catch-up": paxos.CatchUp,
        # DLS (Dwork, Lynch & Stockmeyer 1988, 3.2)
        "dls.batch": dls.Batch,
        "dls.report": dls.Report,
        "dls.lock": dls.Lock,
        "dls.ack": dls.Ack,
        "dls.lock-announce": dls.LockAnnounce,
        "dls.claim": dls.Claim,
        "dls.decided": dls.Decided,
        "dls.catch-up": dls.CatchUp,
    }
    for tag, cls in classes.items():
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{tag}: {cls.__name__} is not a dataclass")
    return classes


REGISTRY: dict[str, type] = _registry()
TAGS: dict[type, str] = {cls: tag for tag, cls in REGISTRY.items()}
_FIELDS: dict[type, tuple[str, ...]] = {cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in TAGS}


# -- encoding ---------------------------------------------------------------------------------


def to_tree(value: Any, _depth: int = 0) -> Any:
    """``value`` as JSON-ready data (see the module docstring); WireError for anything else."""
    if _depth > MAX_DEPTH:
        raise WireError(f"a message nested deeper than {MAX_DEPTH}")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        if not -_INT_LIMIT <= value < _INT_LIMIT:
            raise WireError(f"integer {value} does not fit in 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise WireError(f"float {value} is not finite")
        return value
    if isinstance(value, tuple):
        return [to_tree(v, _depth + 1) for v in value]
    if isinstance(value, frozenset):
        items = [to_tree(v, _depth + 1) for v in value]
        items.sort(key=lambda t: json.dumps(t, sort_keys=True, separators=(",", ":")))
        return {"set": items}
    tag = TAGS.get(type(value))
    if tag is None:
        raise WireError(f"{type(value).__name__} is not a registered message class")
    return {"t": tag, "f": [to_tree(getattr(value, name), _depth + 1) for name in _FIELDS[type(value)]]}


def encode(value: Any) -> bytes:
    """One engine message as compact UTF-8 JSON."""
    return json.dumps(to_tree(value), separators=(",", ":"), allow_nan=False).encode()


# -- decoding ---------------------------------------------------------------------------------


class _Budget:
    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = MAX_VALUES


def from_tree(tree: Any, _depth: int = 0, _budget: _Budget | None = None) -> Any:
    """The inverse of :func:`to_tree`; WireError for anything it would not produce."""
    budget = _budget or _Budget()
    budget.left -= 1
    if budget.left < 0:
        raise WireError(f"a message with more than {MAX_VALUES} values")
    if _depth > MAX_DEPTH:
        raise WireError(f"a message nested deeper than {MAX_DEPTH}")
    if tree is None or isinstance(tree, (bool, str)):
        return tree
    if isinstance(tree, int):
        if not -_INT_LIMIT <= tree < _INT_LIMIT:
            raise WireError(f"integer {tree} does not fit in 64 bits")
        return tree
    if isinstance(tree, float):
        if not math.isfinite(tree):
            raise WireError("a float that is not finite")
        return tree
    if isinstance(tree, list):
        return tuple(from_tree(v, _depth + 1, budget) for v in tree)
    if isinstance(tree, dict):
        if set(tree) == {"set"} and isinstance(tree["set"], list):
            try:
                return frozenset(from_tree(v, _depth + 1, budget) for v in tree["set"])
            except TypeError as exc:     # an unhashable member cannot come from to_tree
                raise WireError(f"a set member is unhashable: {exc}") from None
        if set(tree) == {"t", "f"} and isinstance(tree["t"], str) and isinstance(tree["f"], list):
            cls = REGISTRY.get(tree["t"])
            if cls is None:
                raise WireError(f"unknown message tag {tree['t']!r}")
            names = _FIELDS[cls]
            if len(tree["f"]) != len(names):
                raise WireError(f"{tree['t']} has {len(names)} fields, got {len(tree['f'])}")
            values = [from_tree(v, _depth + 1, budget) for v in tree["f"]]
            try:
                return cls(*values)
            except (TypeError, ValueError) as exc:
                raise WireError(f"bad {tree['t']}: {exc}") from None
    raise WireError(f"unexpected {type(tree).__name__} in a message")


def decode(data: bytes) -> Any:
    """Bytes from :func:`encode` back to the engine's message."""
    try:
        tree = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise WireError(f"not a JSON message: {exc}") from None
    return from_tree(tree)
