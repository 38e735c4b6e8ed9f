"""A client history: what clients asked for and what they were told, as JSON lines.

Jepsen's model (Kingsbury, "Jepsen" and Knossos): every operation is an *invoke*
followed by exactly one completion -- *ok* (it happened), *fail* (it did not and never
will) or *info* (the client does not know: a timeout, a crash). Faults injected by the
nemesis are in the same history, so a violation can be read next to what caused it.

One event per line (times are wall-clock seconds, ``time.time()``, from one process):

    {"type": "invoke", "op": 7, "process": 0, "f": "pay", "value": PAYMENT, "time": T}
    {"type": "ok",     "op": 7, "process": 0, "f": "pay", "value": PAYMENT, "time": T,
                       "slot": 5, "nodes": [0, 2]}                 replicas that said "committed at 5"
    {"type": "fail",   "op": 7, ..., "error": "coin w1.7 already spent at slot 3"}
    {"type": "info",   "op": 7, ..., "error": "no answer within 5s"}
    {"type": "nemesis", "f": "partition", "value": [[0, 1], [2, 3]], "time": T}

A replica payment is ``{"client", "seq", "coin", "payee"}`` (``sim/workload.py``); a
Nakamoto payment is ``{"txid", "coins": ["txid:vout", ...], "payee", "amount"}`` and its
ok carries the ``confirmations`` the client waited for (``testnet workload`` on a
Nakamoto network, and ``testnet demo double-spend``).

Several processes may append to one history at once (the workload and the nemesis):
each event is one ``write`` of one line to a file opened with ``O_APPEND``, which POSIX
keeps whole for regular files.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

KINDS = ("invoke", "ok", "fail", "info", "nemesis")


class HistoryError(ValueError):
    """A history file that cannot be read; ``str()`` names the file and line."""


class HistoryWriter:
    """Appends events to a history file, one line each, flushed as they happen."""

    def __init__(self, path: str) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, event: dict[str, Any]) -> dict[str, Any]:
        event.setdefault("time", time.time())
        os.write(self._fd, (json.dumps(event, separators=(",", ":"), sort_keys=True) + "\n").encode())
        return event

    def nemesis(self, f: str, value: Any = None) -> dict[str, Any]:
        return self.write({"type": "nemesis", "f": f, "value": value})

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> "HistoryWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_history(path: str) -> list[dict[str, Any]]:
    """Every event of a history file, in file order; HistoryError for a bad line."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise HistoryError(f"no history at {path}: run 'minichain testnet workload' first") from None
    except OSError as exc:
        raise HistoryError(f"cannot read {path}: {exc.strerror or exc}") from None
    events = []
    with f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            if not line.endswith(b"\n"):
                break                          # a line being written right now
            try:
                event = json.loads(line)
            except ValueError:
                raise HistoryError(f"{path} line {number} is not JSON") from None
            if not isinstance(event, dict) or event.get("type") not in KINDS:
                raise HistoryError(f"{path} line {number} is not a history event")
            if event["type"] != "nemesis" and not isinstance(event.get("op"), int):
                raise HistoryError(f"{path} line {number}: an operation without an op number")
            if not isinstance(event.get("time"), (int, float)):
                raise HistoryError(f"{path} line {number}: an event without a time")
            events.append(event)
    return events


@dataclass
class Operation:
    """One operation: its invocation and its completion (None while it is open)."""

    op: int
    process: Any
    f: str
    value: Any
    invoke: float
    type: str = "info"                   # the completion's type; an open op counts as info
    complete: float | None = None        # None: never completed (info, or still open)
    result: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.type == "ok"

    @property
    def failed(self) -> bool:
        return self.type == "fail"


def operations(events: list[dict[str, Any]]) -> list[Operation]:
    """Pair each invoke with its completion, in invocation order. An info completion, or
    none at all, leaves ``complete`` None: the op may take effect at any time after its
    invocation (Knossos treats an info op as concurrent with everything after it)."""
    ops: dict[int, Operation] = {}
    for e in events:
        kind = e["type"]
        if kind == "invoke":
            if e["op"] in ops:
                raise HistoryError(f"operation {e['op']} is invoked twice")
            ops[e["op"]] = Operation(e["op"], e.get("process"), e.get("f", ""), e.get("value"), e["time"])
        elif kind in ("ok", "fail", "info"):
            o = ops.get(e["op"])
            if o is None:
                raise HistoryError(f"operation {e['op']} completes without being invoked")
            if o.type != "info" or o.complete is not None:
                raise HistoryError(f"operation {e['op']} completes twice")
            o.type = kind
            o.result = e
            if kind != "info":
                if e["time"] < o.invoke:
                    raise HistoryError(f"operation {e['op']} completes before it was invoked")
                o.complete = e["time"]
    return sorted(ops.values(), key=lambda o: (o.invoke, o.op))


def nemesis_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "nemesis"]

