"""What ``testnet status`` shows of a replica: its view/term/round and who it thinks leads.

The engines keep these in attributes named after their papers (PBFT's ``view``, Raft's
``current_term``, Tendermint's ``h`` and ``round``, DLS's ``phase``). This module reads
them, engine by engine, so that the engine files stay untouched; an engine class it does
not know (a Byzantine wrapper, ``Silent``) shows only its role.

:func:`describe` returns::

    {"position": "view 3", "leader": 3, "role": "backup", "detail": {...}}

``position`` is one short phrase for a table; ``detail`` the raw numbers for ``--json``.
"""

from __future__ import annotations

from typing import Any


def describe(engine: Any, n: int) -> dict[str, Any]:
    kind = type(engine).__name__
    if not getattr(engine, "honest", True) and kind == "Silent":
        return {"position": "-", "leader": None, "role": "silent", "detail": {}}
    reader = _READERS.get(kind)
    if reader is None:
        for cls in type(engine).__mro__[1:]:
            reader = _READERS.get(cls.__name__)
            if reader is not None:
                break
    out = reader(engine, n) if reader is not None else {"position": "-", "leader": None, "role": "", "detail": {}}
    if not getattr(engine, "honest", True):
        out["role"] = f"byzantine {out['role']}".strip()
    return out


def _pbft(e: Any, n: int) -> dict[str, Any]:
    view = getattr(e, "view", 0)
    leader = view % n
    vc = getattr(e, "in_view_change", False)
    role = "view change" if vc else ("primary" if leader == e.id else "backup")
    return {"position": f"view {view}", "leader": leader, "role": role,
            "detail": {"view": view, "in_view_change": vc, "last_executed": getattr(e, "last_exec", None),
                       "stable_checkpoint": getattr(e, "stable_seq", None), "pending": len(getattr(e, "pending", ()))}}


def _tendermint(e: Any, n: int) -> dict[str, Any]:
    h, r = getattr(e, "h", 0), getattr(e, "round", 0)
    step = ("propose", "prevote", "precommit")[getattr(e, "step", 0)] if getattr(e, "step", 0) in (0, 1, 2) else "?"
    leader = (h + r) % n                              # Tendermint's round-robin proposer
    return {"position": f"height {h} round {r}", "leader": leader,
            "role": "proposer" if leader == e.id else step,
            "detail": {"height": h, "round": r, "step": step, "waiting": getattr(e, "waiting", False),
                       "pending": len(getattr(e, "pending", ()))}}


def _raft(e: Any, n: int) -> dict[str, Any]:
    term = getattr(e, "current_term", 0)
    return {"position": f"term {term}", "leader": getattr(e, "leader_id", None), "role": getattr(e, "role", "?"),
            "detail": {"term": term, "voted_for": getattr(e, "voted_for", None),
                       "log_length": len(getattr(e, "log", ())), "commit_index": getattr(e, "commit_index", None),
                       "pending": len(getattr(e, "pending", ()))}}


def _paxos(e: Any, n: int) -> dict[str, Any]:
    promised = getattr(e, "promised", (0, -1))
    return {"position": f"ballot {promised[0]}.{promised[1]}", "leader": getattr(e, "leader", None),
            "role": getattr(e, "role", "?"),
            "detail": {"promised": list(promised), "first_unchosen": getattr(e, "first_unchosen", None),
                       "pending": len(getattr(e, "pending", ()))}}


def _dls(e: Any, n: int) -> dict[str, Any]:
    rnd = getattr(e, "round", -1)
    phase = rnd // 4 + 1 if rnd >= 0 else 0           # four rounds to a phase (3.2.1)
    owner = phase % n
    return {"position": f"phase {phase} slot {getattr(e, 'slot', 0)}", "leader": owner,
            "role": "owner" if owner == e.id else "node",
            "detail": {"phase": phase, "round": rnd, "slot": getattr(e, "slot", None),
                       "locked": getattr(e, "lock", None) is not None, "pending": len(getattr(e, "pending", ()))}}


_READERS = {
    "PBFT": _pbft,
    "Tendermint": _tendermint,
    "Raft": _raft,
    "Paxos": _paxos,
    "DLS": _dls,
}
