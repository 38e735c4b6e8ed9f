"""Consensus engines: one module per protocol, each a sans-IO ``Engine`` (see ``sim/engine.py``).

The log-replication engines register an :class:`EngineSpec` in :data:`REGISTRY` (in
:func:`load_registry`, so importing this package stays cheap), which the scenarios and
the ``minichain sim`` commands look up by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from minichain.sim.engine import Engine, NodeContext

# Byzantine behaviours a spec may support, per replica (issue "BFT engines"):
#   "silent"       crashed from the start (sends nothing)
#   "equivocate"   as leader/proposer, sends conflicting proposals to different replicas
#   "double-vote"  votes for every value it sees in a round/view instead of one
#   "withhold"     never sends its votes (but follows the protocol otherwise)
#   "lie"          (CFT engines) claims to accept/ack things it did not, to show that
#                  crash fault tolerance is not Byzantine fault tolerance
#   "late-certificate"  (DLS) as owner, splits its locks, keeps a certificate back and
#                  hands it to one replica later (issue 21)
BEHAVIOURS = ("silent", "equivocate", "double-vote", "withhold", "lie", "late-certificate")


@dataclass(frozen=True)
class EngineSpec:
    name: str
    family: str                         # "BFT", "CFT" or "partial synchrony"
    fault_model: str                    # "byzantine" or "crash"
    max_faults: Callable[[int], int]    # the f this engine tolerates with n replicas
    # build(ctx, behaviour) -> Engine; behaviour is None for an honest replica.
    build: Callable[[NodeContext, "str | None"], Engine]
    behaviours: tuple[str, ...] = field(default_factory=tuple)
    paper: str = ""
    # True if build(ctx, behaviour, coalition=ids) accepts the ids of every Byzantine
    # replica of the run, so that colluding replicas know each other (engines/coalition.py).
    coalition: bool = False


REGISTRY: dict[str, EngineSpec] = {}


class Silent(Engine):
    """The "silent" Byzantine replica of every engine: crashed from the start, it never
    sends anything. Not honest, so its (absent) decisions stay out of the safety checks."""

    honest = False


def register(spec: EngineSpec) -> EngineSpec:
    REGISTRY[spec.name] = spec
    return spec


def load_registry() -> dict[str, EngineSpec]:
    """Import every engine module (each registers itself) and return the registry."""
    import importlib

    for module in ("pbft", "tendermint", "raft", "paxos", "dls"):
        try:
            importlib.import_module(f"minichain.sim.engines.{module}")
        except ModuleNotFoundError as exc:  # an engine not written yet
            if exc.name != f"minichain.sim.engines.{module}":
                raise
    return REGISTRY
