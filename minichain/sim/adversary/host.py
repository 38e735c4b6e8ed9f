"""A Byzantine replica made of honest engines: twins, and seeded random strategies.

Twins (Bano, Sonnino, Chursin, Perelman, Li, Ching and Malkhi, "Twins: BFT Systems Made
Robust", OPODIS 2021, LIPIcs 217, 2022): a Byzantine replica is run as two copies of the *honest* engine
with the same identity (and so the same keys), each talking to a different part of the
network. Nothing in the engine changes, yet the pair equivocates, double-votes and
withholds exactly as a real attacker could -- two honest programs that each sign what they
see. The host below is that pair: one node id in the simulation, two engine objects
inside. Which honest replicas each copy talks to is the *assignment* the scenario sets
(:meth:`ByzantineHost.assign`): an honest replica on side 0 exchanges messages with copy
0, one on side 1 with copy 1, one on both sides with both (it hears two votes from one
identity). The copies of two hosts on the same side talk to each other.

On top of that (or with one copy, for the crash-fault engines), seeded *strategies*
transform what the host sends, window by window (``window`` seconds of its clock): in a
window it may withhold each message with some probability, delay it (up to 20 seconds),
replay an earlier message of either copy (sent or withheld) to some replica, or -- with
two copies -- *mix*:
deal each destination a fresh random choice of which copies' messages it gets. Every
draw comes from generators seeded by the scenario seed, the host and the window, so a
seed replays exactly.

The host never forges: each copy signs as the host (it *is* that replica), and a replayed
message is one the host itself sent. Its decisions are dropped (``honest = False`` keeps
them out of the safety checks anyway). The engine interface is all it uses, so every
registered engine runs under it unchanged.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable

from minichain.sim.engine import CLIENT, Action, Broadcast, CancelTimer, Decide, Engine, NodeContext, Send, SetTimer

TAG = "adversary"       # timers of the host: (TAG, copy, name) for a copy's, (TAG, "release", k) for a delay


@dataclass(frozen=True, slots=True)
class ToCopy:
    """``msg`` for copy ``copy`` of a host: a client request meant for one side, a copy's
    message to itself, or one host's copy talking to the same side's copy of another."""

    copy: int
    msg: Any


@dataclass(frozen=True, slots=True)
class Strategy:
    """What the host does to its messages in one window."""

    withhold: float = 0.0       # drop each message with this probability
    delay: float = 0.0          # hold each message back with this probability...
    max_delay: float = 0.0      # ...for up to this long
    replay: float = 0.0         # after each message, resend an earlier one with this probability
    mix: bool = False           # deal destinations to copies at random (two copies only)

    def describe(self) -> str:
        parts = [f"withhold {self.withhold:.0%}" if self.withhold else "",
                 f"delay {self.delay:.0%} up to {self.max_delay:g}s" if self.delay else "",
                 f"replay {self.replay:.0%}" if self.replay else "", "mix" if self.mix else ""]
        return ", ".join(p for p in parts if p) or "follow the protocol"


FOLLOW = Strategy()


def draw_strategy(rng: random.Random, twins: bool, byzantine: bool) -> Strategy:
    """One window's strategy. A third of the windows follow the protocol; crash-model hosts
    (``byzantine=False``) only omit, delay and duplicate (what a lossy network could do to
    a crashed-and-recovered replica's messages), never mix or replay across copies."""
    if rng.random() < 1 / 3:
        return FOLLOW
    return Strategy(
        withhold=rng.choice([0.0, 0.0, 0.3, 0.7, 1.0]),
        delay=rng.choice([0.0, 0.3, 1.0]),
        max_delay=rng.choice([0.2, 1.0, 5.0, 20.0]),
        replay=rng.choice([0.0, 0.0, 0.2]) if byzantine else rng.choice([0.0, 0.1]),
        mix=twins and byzantine and rng.random() < 0.4,
    )


class ByzantineHost(Engine):
    """One faulty replica: one or two honest engines under an adversary's control.

    ``build(ctx)`` makes an honest engine; ``twins`` asks for two copies; ``strategies``
    turns on the random per-window strategies (drawn with ``draw_strategy``); ``hosts``
    are the ids of every faulty replica (copies of hosts talk side to side).
    """

    honest = False

    def __init__(self, ctx: NodeContext, build: Callable[[NodeContext], Engine], *, twins: bool,
                 strategies: bool, byzantine: bool, seed: int, hosts: Iterable[int],
                 window: float = 0.5, trace: list | None = None) -> None:
        super().__init__(ctx)
        self.copies = [build(ctx) for _ in range(2 if twins else 1)]
        self.strategies = strategies
        self.byzantine = byzantine
        self.seed = seed
        self.hosts = frozenset(hosts)
        self.window = window
        self.trace = trace
        # honest replica -> the copies it exchanges messages with (default: copy 0 only)
        self.sides: dict[int, frozenset[int]] = {p: frozenset({0}) for p in ctx.others if p not in self.hosts}
        self._rng = random.Random(f"{seed}/{ctx.node_id}")
        self._window_index = -1
        self._strategy = FOLLOW
        self._mix: dict[int, frozenset[int]] = {}
        self._history: deque[tuple[int, Any]] = deque(maxlen=64)
        self._held: dict[int, tuple[int, Any]] = {}
        self._next_hold = 0

    # -- what the scenario controls ---------------------------------------------------------

    def assign(self, sides: dict[int, Iterable[int]]) -> None:
        """Set which copies each honest replica talks to, e.g. ``{1: {0}, 2: {1}, 3: {0, 1}}``
        (a copy a host does not have is ignored; replicas left out keep their sides)."""
        for peer, copies in sides.items():
            if peer in self.sides:
                self.sides[peer] = frozenset(c for c in copies if c < len(self.copies))

    # -- the engine interface ------------------------------------------------------------------

    def on_start(self) -> list[Action]:
        out: list[Action] = []
        for k, copy in enumerate(self.copies):
            out += self._wrap(k, copy.on_start())
        return out

    def on_recover(self) -> list[Action]:
        out: list[Action] = []
        for k, copy in enumerate(self.copies):
            out += self._wrap(k, copy.on_recover())
        return out

    def on_message(self, src: int, msg: Any) -> list[Action]:
        if isinstance(msg, ToCopy):
            if src not in (CLIENT, self.id) and src not in self.hosts:
                return []                                   # only we and our accomplices address copies
            k = min(msg.copy, len(self.copies) - 1)
            return self._wrap(k, self.copies[k].on_message(src, msg.msg))
        if src == CLIENT:
            copies: Iterable[int] = range(len(self.copies))
        else:
            copies = self.sides.get(src, frozenset({0}))
        out: list[Action] = []
        for k in copies:
            out += self._wrap(k, self.copies[k].on_message(src, msg))
        return out

    def on_timer(self, name: Hashable) -> list[Action]:
        if not (isinstance(name, tuple) and len(name) == 3 and name[0] == TAG):
            return []
        _, k, inner = name
        if k == "release":
            held = self._held.pop(inner, None)
            return [] if held is None else [Send(held[0], held[1])]
        return self._wrap(k, self.copies[k].on_timer(inner))

    # -- turning a copy's actions into the host's ---------------------------------------------

    def _wrap(self, k: int, actions: Iterable[Action]) -> list[Action]:
        out: list[Action] = []
        for act in actions:
            cls = act.__class__
            if cls is Send:
                if act.dst == self.id:
                    out.append(Send(self.id, ToCopy(k, act.msg)))
                else:
                    out += self._send(k, act.dst, act.msg)
            elif cls is Broadcast:
                for dst in self.ctx.others:
                    out += self._send(k, dst, act.msg)
                if act.include_self:
                    out.append(Send(self.id, ToCopy(k, act.msg)))
            elif cls is SetTimer:
                out.append(SetTimer((TAG, k, act.name), act.delay))
            elif cls is CancelTimer:
                out.append(CancelTimer((TAG, k, act.name)))
            elif cls is Decide:
                continue                                    # a faulty replica's decisions count for nothing
            else:
                out.append(act)
        return out

    def _send(self, k: int, dst: int, msg: Any) -> list[Action]:
        """Copy ``k``'s message to ``dst``: routed by side, then put through the strategy."""
        strategy = self._current()
        if dst in self.hosts:
            wire: Any = ToCopy(k, msg)                      # to the same side's copy of an accomplice
        elif k in self._routes(dst):
            wire = msg
        else:
            return []
        self._history.append((dst, wire))                   # whatever happens to it, it can be replayed
        if strategy is FOLLOW:
            return self._out(k, dst, wire)
        rng = self._rng
        out: list[Action] = []
        if strategy.withhold and rng.random() < strategy.withhold:
            pass
        elif strategy.delay and rng.random() < strategy.delay:
            token = self._next_hold
            self._next_hold += 1
            self._held[token] = (dst, wire)
            out.append(SetTimer((TAG, "release", token), rng.uniform(0.0, strategy.max_delay)))
            self._note(k, dst, wire, "held back")
        else:
            out += self._out(k, dst, wire)
        if strategy.replay and self._history and rng.random() < strategy.replay:
            old_dst, old = self._history[rng.randrange(len(self._history))]
            peers = [p for p in self.ctx.others if (p in self.hosts) == isinstance(old, ToCopy)]
            if peers:
                target = rng.choice(peers)
                out.append(Send(target, old))
                self._note(None, target, old, f"replayed (first sent to {old_dst})")
        return out

    def _out(self, k: int, dst: int, wire: Any) -> list[Action]:
        self._note(k, dst, wire, "")
        return [Send(dst, wire)]

    def _routes(self, dst: int) -> frozenset[int]:
        if self._strategy.mix and self._window_index >= 0:
            return self._mix.get(dst, frozenset())
        return self.sides.get(dst, frozenset({0}))

    def _current(self) -> Strategy:
        if not self.strategies:
            return FOLLOW
        w = int(self.ctx.now / self.window)
        if w != self._window_index:
            self._window_index = w
            rng = random.Random(f"{self.seed}/{self.id}/{w}")
            self._strategy = draw_strategy(rng, len(self.copies) > 1, self.byzantine)
            if self._strategy.mix:
                choices = [frozenset({0}), frozenset({1}), frozenset({0, 1})]
                self._mix = {p: rng.choice(choices) for p in self.sides}
            if self.trace is not None:
                self.trace.append((self.ctx.now, self.id, "strategy", self._strategy.describe()))
        return self._strategy

    def _note(self, k: int | None, dst: int, msg: Any, how: str) -> None:
        if self.trace is not None:
            who = "" if k is None or len(self.copies) == 1 else f" copy {k}"
            inner = msg.msg if isinstance(msg, ToCopy) else msg
            self.trace.append((self.ctx.now, self.id, "send", f"{self.id}{who} -> {dst}: {_short(inner)}"
                               + (f" ({how})" if how else "")))


def _short(msg: Any, limit: int = 160) -> str:
    text = repr(msg)
    return text if len(text) <= limit else text[: limit - 3] + "..."
