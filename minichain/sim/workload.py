"""Client workload for the log-replication engines (PBFT, Tendermint, Raft, Paxos, DLS).

A client submits payments; every engine replicates a log of them, deciding one value per
log position (``Decide(slot, value)``). A "double spend" against such an engine is two
honest replicas committing different values at the same slot -- the simulator's
``conflicts``.

Clients live outside the network: ``Simulation.submit`` hands a :class:`ClientRequest`
to a replica with ``src == CLIENT``. Following PBFT's clients (Castro & Liskov 1999,
section 4.1, "the client multicasts the request to all replicas" on retransmission), the
workload gives each request to every replica, so whichever replica leads has it; an
engine that only lets its leader propose simply queues or ignores it elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from minichain.sim.simulator import Simulation

# ``src`` of a message that comes from a client rather than from a replica.
CLIENT = -1


@dataclass(frozen=True, slots=True)
class Payment:
    """A client's payment: ``coin`` is the outpoint it spends, so two payments with the
    same coin and different payees conflict (a double spend)."""

    client: int
    seq: int
    coin: str
    payee: str

    def __repr__(self) -> str:
        return f"pay({self.coin}->{self.payee})"


@dataclass(frozen=True, slots=True)
class ClientRequest:
    payment: Payment


def schedule_payments(
    sim: "Simulation",
    count: int,
    interval: float,
    *,
    start: float = 0.0,
    client: int = 0,
    targets: Iterable[int] | None = None,
) -> list[Payment]:
    """Submit ``count`` distinct payments, one every ``interval`` seconds from ``start``,
    to every replica in ``targets`` (default: all). Returns them in submission order."""
    nodes = list(range(sim.n)) if targets is None else list(targets)
    payments = []
    for i in range(count):
        p = Payment(client, i, f"c{client}.{i}", f"payee{i}")
        payments.append(p)
        t = start + i * interval
        for node in nodes:
            sim.at(t, sim.submit, node, ClientRequest(p), CLIENT)
    return payments
