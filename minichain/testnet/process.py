"""Node processes that outlive the command that started them.

Each node is ``python -m minichain node ...`` in a session of its own (``setsid``), so
a Ctrl-C in the terminal that ran ``testnet up`` does not reach it, with stdin from
/dev/null and stdout and stderr appended to ``<datadir>/node.log``. The node prints
one line when it is ready (``minichain node ready ... p2p=HOST:PORT api=HOST:PORT``);
we read it from the log, starting at the log's size before the start.

A process id alone is a weak handle: after the node exits the id may be reused, and a
node whose parent is gone can linger as a zombie that still answers ``kill(pid, 0)``.
So "alive" means: the id exists, is not a zombie, and (where ``/proc`` exists) its
command line names this node's data directory.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import minichain

READY = re.compile(r"minichain node ready network=(\S+) p2p=([\w.:\[\]-]+):(\d+) api=(?:([\w.\[\]-]+):(\d+)|off)"
                   r" height=(\d+) pid=(\d+)")
# A consensus replica's line (``python -m minichain.replica``, see replica/__main__.py).
READY_REPLICA = re.compile(r"minichain replica ready engine=(\S+) node=(\d+) p2p=([\w.:\[\]-]+):(\d+) "
                           r"api=([\w.\[\]-]+):(\d+) recovered=(\d) pid=(\d+)")
# What each kind of process runs: ``python -P -m MODULE [ARGS...]``.
PROGRAMS = {"node": ["minichain", "node"], "replica": ["minichain.replica"]}


class StartError(Exception):
    """A node did not start; ``str()`` says why, with the end of its log."""


@dataclass(frozen=True)
class Ready:
    pid: int
    p2p_port: int
    api_port: int
    height: int


def child_env() -> dict[str, str]:
    """The environment of a node process: ours, with this very minichain importable
    first (so a checkout and an installed copy are never mixed)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(minichain.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    for var in ("MINICHAIN_LISTEN", "MINICHAIN_API", "MINICHAIN_DATADIR", "MINICHAIN_NETWORK"):
        env.pop(var, None)  # the command line below says all of these
    return env


def spawn(args: list[str], log_path: str, program: str = "node") -> tuple[subprocess.Popen, int]:
    """Start ``minichain node ARGS`` (or, with ``program="replica"``, ``python -m
    minichain.replica ARGS``) detached; returns the process and the log offset where its
    output begins."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    with open(log_path, "ab") as log:
        offset = log.tell()
        header = f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} minichain testnet: starting {program} {' '.join(args)}\n"
        log.write(header.encode())
        log.flush()
        offset += len(header.encode())
        # -P: do not put the current directory first on sys.path. Run from a source
        # checkout after `pip install .`, plain -m would import the checkout's sources,
        # which lack the compiled kernel the installed package has, and mine ~25x slower.
        proc = subprocess.Popen([sys.executable, "-P", "-m", *PROGRAMS[program], *args], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, env=child_env(), start_new_session=True,
                                close_fds=True)
    return proc, offset


def read_ready(log_path: str, offset: int) -> Ready | None:
    try:
        with open(log_path, "rb") as f:
            f.seek(offset)
            text = f.read(1 << 20).decode(errors="replace")
    except OSError:
        return None
    match = READY.search(text)
    if match is None:
        replica = READY_REPLICA.search(text)
        if replica is None:
            return None
        return Ready(pid=int(replica.group(8)), p2p_port=int(replica.group(4)), api_port=int(replica.group(6)),
                     height=0)
    return Ready(pid=int(match.group(7)), p2p_port=int(match.group(3)),
                 api_port=int(match.group(5) or 0), height=int(match.group(6)))


def log_tail(log_path: str, lines: int = 12, offset: int = 0) -> str:
    try:
        with open(log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def failure_reason(log_path: str, offset: int) -> str:
    """The node's own one-line reason ("Error: ..."), if it printed one."""
    tail = log_tail(log_path, 200, offset).splitlines()
    for line in reversed(tail):
        if line.startswith("Error:"):
            return line[len("Error:"):].strip()
    for line in reversed(tail):
        if line.strip():
            return line.strip()
    return "it exited without a word"


# -- liveness -------------------------------------------------------------------------------


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is our child (so it does not stay a zombie)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    except OSError:
        pass


def alive(pid: int, datadir: str | None = None) -> bool:
    """Is ``pid`` a running (not zombie) process, and -- where /proc tells -- the node of ``datadir``?"""
    if pid <= 0:
        return False
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process: the id was reused
    proc = f"/proc/{pid}"
    if not os.path.isdir("/proc/self"):
        return True  # no /proc (macOS): trust kill(pid, 0)
    try:
        with open(f"{proc}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        # "pid (comm) S ...": the state follows the last ')'.
        if stat[stat.rindex(")") + 2:].startswith(("Z", "X")):
            return False
        if datadir is not None:
            with open(f"{proc}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            return os.fsencode(datadir) in argv
    except (OSError, ValueError):
        return False
    return True


def signal_node(pid: int, sig: int) -> bool:
    """Send ``sig`` to the node's process group (its session leader is the node itself)."""
    try:
        os.killpg(pid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        try:
            os.kill(pid, sig)
            return True
        except OSError:
            return False


def stop_all(nodes: list[tuple[int, str]], timeout: float = 20.0) -> tuple[list[int], list[int]]:
    """SIGTERM every live ``(pid, datadir)``, wait up to ``timeout`` for them to exit, then
    SIGKILL the rest. Returns (stopped cleanly, killed) pids."""
    live = [(pid, d) for pid, d in nodes if alive(pid, d)]
    for pid, _ in live:
        signal_node(pid, signal.SIGCONT)   # a paused process (testnet nemesis) must run to exit
        signal_node(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    waiting = list(live)
    while waiting and time.monotonic() < deadline:
        waiting = [(pid, d) for pid, d in waiting if alive(pid, d)]
        if waiting:
            time.sleep(0.05)
    killed = []
    for pid, d in waiting:
        if alive(pid, d):
            signal_node(pid, signal.SIGKILL)
            killed.append(pid)
    deadline = time.monotonic() + 5.0
    while killed and time.monotonic() < deadline and any(alive(pid, d) for pid, d in waiting):
        time.sleep(0.05)
    stopped = [pid for pid, _ in live if pid not in killed]
    return stopped, killed
