"""What a replica keeps on disk, and the order it writes it in.

The simulator's model of durability is that the engine object *is* the replica's stable
storage: a crash keeps it, and ``on_recover()`` resets what the protocol calls volatile
(Raft's commit index and role, Paxos's proposals in flight, the timers). The faithful
real-process host therefore keeps the engine object on disk:

* ``replica.state`` -- the pickled engine, replaced atomically after every batch of
  handlers (write ``replica.state.tmp``, fsync, rename, fsync the directory). Its
  ``NodeContext`` is not pickled (it holds the clock): it is written as a reference and
  the restarted process supplies a fresh one (``persistent_id``/``persistent_load``).
* ``decisions.jsonl`` -- one line per ``Decide`` (slot, value, wall-clock time), appended
  and fsynced. The replica's API serves its committed log from it, and the checker
  reads it.

Both are written *before* the messages of that batch are sent and before any client is
told its payment committed (raft's ``Ready``: persist before you speak), so a replica
killed at any instant comes back with a state at least as new as anything it said.

The state file is local and pickled (it is this process's own memory written out, never
something that came from the network); the decision log is JSON lines.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from typing import Any

STATE_FILE = "replica.state"
DECISIONS_FILE = "decisions.jsonl"
FORMAT = "minichain-replica-state/1"


class StateFileError(Exception):
    """The state file cannot be read back; ``str()`` says why."""


class _Pickler(pickle.Pickler):
    def __init__(self, f: io.BufferedWriter, ctx: Any) -> None:
        super().__init__(f, protocol=pickle.HIGHEST_PROTOCOL)
        self._ctx = ctx

    def persistent_id(self, obj: Any) -> str | None:
        return "ctx" if obj is self._ctx else None


class _Unpickler(pickle.Unpickler):
    def __init__(self, f: io.BufferedReader, ctx: Any) -> None:
        super().__init__(f)
        self._ctx = ctx

    def persistent_load(self, pid: Any) -> Any:
        if pid != "ctx":
            raise pickle.UnpicklingError(f"unknown reference {pid!r}")
        return self._ctx


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_state(datadir: str, engine: Any, ctx: Any, meta: dict) -> int:
    """Replace the state file with ``engine`` (and ``meta``); returns its size in bytes."""
    path = os.path.join(datadir, STATE_FILE)
    tmp = path + ".tmp"
    buf = io.BytesIO()
    _Pickler(buf, ctx).dump({"format": FORMAT, "meta": meta, "engine": engine})
    data = buf.getvalue()
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(datadir)
    return len(data)


def load_state(datadir: str, ctx: Any) -> tuple[Any, dict] | None:
    """(engine, meta) from the state file, bound to ``ctx``; None if there is none."""
    path = os.path.join(datadir, STATE_FILE)
    try:
        with open(path, "rb") as f:
            data = _Unpickler(f, ctx).load()
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - any damage: say so in one sentence
        raise StateFileError(f"{path} cannot be read back ({type(exc).__name__}: {exc}); "
                             "delete the replica's directory to start it afresh") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StateFileError(f"{path} is not a minichain replica state file")
    return data["engine"], data.get("meta", {})


class DecisionFile:
    """The append-only log of this replica's decisions."""

    def __init__(self, datadir: str) -> None:
        self.path = os.path.join(datadir, DECISIONS_FILE)
        _drop_torn_tail(self.path)
        self._f = open(self.path, "ab")

    def append(self, records: list[dict]) -> None:
        if not records:
            return
        self._f.write(b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records))
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()


def _drop_torn_tail(path: str) -> None:
    """Cut a last line a crash left half-written, so the next append starts a line."""
    try:
        with open(path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
    except FileNotFoundError:
        pass


def read_decisions(path: str) -> list[dict]:
    """Every complete line of a decision log (a line torn by a crash is skipped)."""
    out = []
    try:
        with open(path, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if isinstance(rec, dict) and isinstance(rec.get("slot"), int):
                    out.append(rec)
    except FileNotFoundError:
        pass
    return out
