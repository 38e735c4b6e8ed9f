"""Reminding a peer that fell behind, with an exponential backoff (PBFT, Tendermint).

A replica that missed a stretch of the log whole -- crashed while the clients sent it,
cut off while it was ordered -- holds no request and no open instance, so it waits for
nothing and never asks; once the others fall idle nobody tells it. Castro's BFT library
sends status messages periodically for this. The engines send theirs only to a peer that
never showed it got as far as they did, and less and less often (a silent replica never
answers): :meth:`Nudges.due` says, on each tick of a retransmission timer, which of those
peers to remind now.
"""

from __future__ import annotations


class Nudges:
    """Each lagging peer is due after 1, 2, 4, ... ticks, then every ``cap`` ticks; a peer
    that stops lagging starts over."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._wait: dict[int, tuple[int, int]] = {}        # peer -> (ticks left, backoff)

    def due(self, laggards: list[int]) -> list[int]:
        for peer in [p for p in self._wait if p not in laggards]:
            del self._wait[peer]
        out = []
        for peer in laggards:
            left, backoff = self._wait.get(peer, (1, 1))
            if left <= 1:
                out.append(peer)
                backoff = min(2 * backoff, self.cap)
                left = backoff + 1
            self._wait[peer] = (left - 1, backoff)
        return out
