"""``testnet nemesis``: a seeded schedule of faults played on the running network.

Jepsen's nemesis, for our testnet. Every ``interval`` seconds a fault starts and, one
``interval`` later, stops; then the network has an ``interval`` of calm before the next:

    partition   the nodes shuffled and split: into halves (2|2 of 4: no side has a
                Byzantine quorum, one side of a crash-fault quorum at most) or a majority
                and the rest (3|1); heal to stop
    kill        one node SIGKILLed (a crash); restarted from its data directory to stop
    pause       one node SIGSTOPped (alive, silent: a GC pause, a swapped-out VM);
                SIGCONT to stop

The schedule is a pure function of (nodes, faults, interval, duration, seed)
(:func:`plan`), so the same seed gives the same faults on the same nodes; the times are
wall-clock and as exact as the machine lets them be. Each start and stop goes into the
history as a ``nemesis`` event, so a violation can be read next to its fault. Whatever
happens -- an error, Ctrl-C -- the network is left whole: partitions healed, paused
nodes continued, killed nodes restarted.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from minichain.history.records import HistoryWriter

FAULTS = ("partition", "kill", "pause")


class NemesisError(ValueError):
    """A fault schedule that cannot be played; ``str()`` says why."""


@dataclass(frozen=True)
class Fault:
    start: float            # seconds after the nemesis begins
    stop: float
    kind: str               # partition, kill or pause
    target: Any             # the groups of a partition, else a node number

    def describe(self) -> str:
        if self.kind == "partition":
            return "partition " + " | ".join(",".join(map(str, g)) for g in self.target)
        return f"{self.kind} node {self.target}"


def parse_faults(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULTS]
    if unknown or not kinds:
        raise NemesisError(f"unknown fault {unknown[0]!r}; choose among {', '.join(FAULTS)}" if unknown
                           else f"name at least one fault: {', '.join(FAULTS)}")
    return kinds


def plan(n: int, faults: tuple[str, ...], *, interval: float, duration: float, seed: int) -> list[Fault]:
    """The schedule: one fault per ``2 * interval`` seconds, each lasting ``interval``."""
    if interval <= 0 or duration <= 0:
        raise NemesisError("--interval and --duration must be more than 0")
    if n < 2 and "partition" in faults:
        raise NemesisError("a partition needs at least two nodes")
    rng = random.Random(seed)
    out = []
    t = interval                                  # a calm interval first: see the network work
    while t + interval <= duration + 1e-9:
        kind = rng.choice(faults)
        if kind == "partition":
            ids = list(range(n))
            rng.shuffle(ids)
            cut = n // 2 if rng.random() < 0.5 else n // 2 + 1   # halves, or a majority and the rest
            cut = min(max(1, cut), n - 1)
            target: Any = [sorted(ids[:cut]), sorted(ids[cut:])]
        else:
            target = rng.randrange(n)
        out.append(Fault(t, t + interval, kind, target))
        t += 2 * interval
    return out


def run(directory: str, schedule: list[Fault], *, history: str, say: Callable[[str], None] = lambda _: None,
        stop: threading.Event | None = None) -> list[Fault]:
    """Play ``schedule`` on the testnet in ``directory``; returns the faults played."""
    from minichain.testnet import network as tn

    stop = stop or threading.Event()
    played = []
    began = time.monotonic()
    active: list[Fault] = []
    with HistoryWriter(history) as writer:
        def start(f: Fault) -> None:
            state = tn.require_running(directory)
            if f.kind == "partition":
                tn.partition(directory, f.target)
            elif f.kind == "kill":
                tn.kill(directory, f.target)
            else:
                tn.pause(state.nodes[f.target])
            writer.nemesis(f"start-{f.kind}", f.target)
            say(f"{time.monotonic() - began:6.1f}s  start {f.describe()}")

        def finish(f: Fault) -> None:
            state = tn.require_state(directory)
            if f.kind == "partition":
                tn.heal(directory, wait=False)
            elif f.kind == "kill":
                tn.restart(directory, f.target)
            else:
                tn.pause(state.nodes[f.target], resume=True)
            writer.nemesis(f"stop-{f.kind}", f.target)
            say(f"{time.monotonic() - began:6.1f}s  stop  {f.describe()}")

        try:
            for f in schedule:
                if stop.wait(max(0.0, began + f.start - time.monotonic())):
                    break
                start(f)
                active.append(f)
                played.append(f)
                stop.wait(max(0.0, began + f.stop - time.monotonic()))
                finish(active.pop())
        finally:
            for f in reversed(active):       # interrupted mid-fault: undo it
                try:
                    finish(f)
                except Exception as exc:  # noqa: BLE001 - keep undoing the rest
                    say(f"could not stop {f.describe()}: {exc}")
    return played
