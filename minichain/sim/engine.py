"""The engine interface: consensus protocols as sans-IO state machines.

An engine is the protocol logic of ONE node. It never reads a clock, sleeps, opens a
socket or draws from a global random generator. The simulator calls it and carries out
what it returns (the style of etcd-io/raft's ``Ready`` and python-hyper/h11):

    on_start()             -> list[Action]   once, at virtual time 0 (or when the node is added)
    on_message(src, msg)   -> list[Action]   a message from node ``src`` arrived
    on_timer(name)         -> list[Action]   a timer this engine set has fired
    on_recover()           -> list[Action]   the node restarts after a crash (default: on_start())

Actions (plain immutable values):

    Send(dst, msg)                 one message to one node, over the network model
    Broadcast(msg, include_self)   one copy to every OTHER node over the network; with
                                   include_self=True the sender also gets a copy, delivered
                                   at once (same virtual time, after the current handler),
                                   never lost and not counted as network traffic
    SetTimer(name, delay)          fire on_timer(name) after ``delay`` seconds of this node's
                                   LOCAL clock; setting a name that is already pending
                                   replaces it (the old one never fires)
    CancelTimer(name)              forget a pending timer (no-op if none)
    Decide(slot, value)            this node commits ``value`` at log position / height
                                   ``slot``; the simulator records it with the virtual time.
                                   Deciding a different value for a slot the node already
                                   decided is recorded as a *reversal* (Nakamoto reorgs do
                                   this; a correct BFT/CFT engine never does)

Input from outside the protocol (a client submitting a payment or a request) arrives as
``on_message(CLIENT, msg)`` with ``CLIENT = -1``; the simulator's ``inject(node, msg)``
delivers it (never lost, not counted as network traffic).

Each engine receives a :class:`NodeContext` at construction: its node id, the number of
nodes ``n``, its own ``random.Random`` stream (derived from the run's one seed) and
``now``, the node's local clock (virtual time with this node's clock skew applied).

Timer names are any hashable value. Engines that key timers by (height, round) can also
ignore a stale timer themselves, as CometBFT does.

A crash (simulator fault) stops a node: it processes nothing, its pending timers are
dropped and messages delivered to it are lost. The engine object is kept, so what it
holds models durable storage; an engine that wants to model lost volatile state resets
it in ``on_recover()``.

An engine whose class (or instance) sets ``honest = False`` is Byzantine: its decisions
are left out of the safety checks (conflicting commits are judged among honest nodes).
"""

from __future__ import annotations

import random
from typing import Any, Callable, Hashable

from minichain.core.actions import Action, Broadcast, CancelTimer, Decide, Send, SetTimer

__all__ = ["CLIENT", "Action", "Broadcast", "CancelTimer", "Decide", "Engine", "EngineFactory", "NodeContext",
           "Send", "SetTimer"]


CLIENT = -1  # the ``src`` of messages injected from outside the protocol




class NodeContext:
    """What a host tells an engine about its world: who it is and what time it thinks it is.

    ``clock`` is the only way time reaches an engine: the simulator passes the node's
    skewed virtual clock, a real-process host a monotonic wall clock. The context never
    holds the host itself, so an engine cannot reach past its interface.
    """

    __slots__ = ("node_id", "n", "rng", "clock")

    def __init__(self, node_id: int, n: int, rng: random.Random, clock: Callable[[], float]) -> None:
        self.node_id = node_id
        self.n = n
        self.rng = rng
        self.clock = clock          # a host may replace it (the simulator does when a clock is skewed)

    @property
    def now(self) -> float:
        """This node's local clock (in the simulator: virtual time plus its skew)."""
        return self.clock()

    @property
    def others(self) -> list[int]:
        """Every node id but this one, ascending."""
        return [i for i in range(self.n) if i != self.node_id]


class Engine:
    """Base class of an engine (subclassing is optional; the simulator duck-types).

    Subclasses override the ``on_*`` methods they need; the defaults do nothing.
    """

    honest = True

    def __init__(self, ctx: NodeContext) -> None:
        self.ctx = ctx

    @property
    def id(self) -> int:
        return self.ctx.node_id

    def on_start(self) -> list[Action]:
        return []

    def on_message(self, src: int, msg: Any) -> list[Action]:
        return []

    def on_timer(self, name: Hashable) -> list[Action]:
        return []

    def on_recover(self) -> list[Action]:
        return self.on_start()


EngineFactory = Callable[[NodeContext], Engine]
