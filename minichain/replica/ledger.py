"""A replica's committed log, as its clients and the checker see it.

The engines decide ``Decide(slot, value)`` with values that are payments (or a no-op:
Raft's and Paxos's leader fillers). The log is read with the state machine's rule
(``sim/workload.py``: a payment spends its coin; a second payment of a spent coin is
rejected): a payment is *effective* if no lower slot holds another payment of its coin.

Only the *contiguous prefix* of the log (slots 0 .. k-1 all decided) is final for that
rule -- Paxos may decide slot 5 before slot 3, and slot 3 could still spend the same coin
-- so a payment is acknowledged as committed, or a request refused because its coin is
spent, only once its slot (or the spending slot) is inside the prefix.
"""

from __future__ import annotations

from typing import Any

from minichain.sim.workload import Payment


def payment_json(p: Payment) -> dict[str, Any]:
    return {"client": p.client, "seq": p.seq, "coin": p.coin, "payee": p.payee}


def payment_from_json(data: Any) -> Payment:
    """A payment from its JSON form; ValueError naming the problem."""
    if not isinstance(data, dict):
        raise ValueError("a payment must be an object with client, seq, coin and payee")
    try:
        client, seq, coin, payee = data["client"], data["seq"], data["coin"], data["payee"]
    except KeyError as exc:
        raise ValueError(f"a payment needs {exc.args[0]!r}") from None
    for name, value, kind in (("client", client, int), ("seq", seq, int), ("coin", coin, str), ("payee", payee, str)):
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(f"a payment's {name} must be a{'n integer' if kind is int else ' string'}")
    if not coin or len(coin) > 100 or len(payee) > 100:
        raise ValueError("a payment's coin and payee must be 1 to 100 characters")
    return Payment(client, seq, coin, payee)


def value_json(value: Any) -> dict[str, Any] | None:
    """A decided value for the outside world: a payment's fields, or None for a no-op."""
    if isinstance(value, Payment):
        return payment_json(value)
    return None


class CommittedLog:
    """Slot -> value, the contiguous prefix, and the effective payment of each coin in it."""

    def __init__(self) -> None:
        self.values: dict[int, Any] = {}
        self.prefix = 0                                  # slots 0 .. prefix-1 are all decided
        self.spender: dict[str, tuple[int, Payment]] = {}   # coin -> (slot, payment), within the prefix
        self.slot_of: dict[Payment, int] = {}

    def record(self, slot: int, value: Any) -> bool:
        """Record a decision; False if it repeats what is already there. A different value
        for a decided slot replaces it (a reversal: the checker reports it)."""
        if self.values.get(slot, _MISSING) == value:
            return False
        old = self.values.get(slot, _MISSING)
        self.values[slot] = value
        if isinstance(value, Payment):
            self.slot_of[value] = slot
        if old is not _MISSING:
            # A reversal inside the prefix: rebuild the coin index from scratch.
            if isinstance(old, Payment) and self.slot_of.get(old) == slot:
                del self.slot_of[old]
            self.spender = {}
            self.prefix = 0
        while self.prefix in self.values:
            v = self.values[self.prefix]
            if isinstance(v, Payment) and v.coin not in self.spender:
                self.spender[v.coin] = (self.prefix, v)
            self.prefix += 1
        return True

    def outcome(self, p: Payment) -> tuple[str, int | None, Payment | None]:
        """("committed", slot, None) once ``p`` is effective in the prefix; ("rejected",
        slot, other) once another payment of its coin is; ("pending", None, None) otherwise."""
        spent = self.spender.get(p.coin)
        if spent is None:
            return "pending", None, None
        slot, winner = spent
        if winner == p:
            return "committed", slot, None
        return "rejected", slot, winner

    def entries(self, start: int = 0) -> list[tuple[int, Any]]:
        return sorted((s, v) for s, v in self.values.items() if s >= start)


_MISSING = object()
