"""The state file: what ``testnet up`` started, so later commands can find it.

``DIR/testnet.json`` records the network, the links, and for each node its data
directory, process id, ports, log file and miner settings; ``partition`` records the
groups while the network is split. It is replaced atomically (write a sibling, fsync,
rename), so a command interrupted half-way leaves the old file or the new one, never
a torn one. ``running`` is false after ``testnet down``: the file stays so that
``testnet logs`` still finds the logs and a later ``up`` reuses the chains.

``DIR/.lock`` serialises the commands that change the network (up, down, partition,
heal): two of them at once on one directory would start or stop the same nodes twice.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Iterator

STATE_FILE = "testnet.json"
HISTORY_FILE = "history.jsonl"
LOCK_FILE = ".lock"
FORMAT = "minichain-testnet"
VERSION = 1


class StateError(Exception):
    """The state file is missing, damaged or busy; ``str()`` says which."""


@dataclass
class NodeRecord:
    index: int
    name: str
    datadir: str
    log: str
    pid: int = 0
    p2p_port: int = 0
    api_port: int = 0
    wallet: str | None = None        # the miner's key file
    address: str | None = None       # the address its blocks pay
    share: float | None = None       # of the network's hash power; None: not a miner
    threads: int = 1
    duty: float = 1.0
    behaviour: str | None = None     # a consensus replica's Byzantine behaviour; None: honest
    keys: str | None = None          # a consensus replica's link-key file

    @property
    def honest(self) -> bool:
        return self.behaviour is None

    @property
    def p2p(self) -> str:
        return f"127.0.0.1:{self.p2p_port}"

    @property
    def api(self) -> str:
        return f"127.0.0.1:{self.api_port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def miner(self) -> bool:
        return self.share is not None


@dataclass
class TestnetState:
    __test__ = False  # not a pytest test class, despite the name

    directory: str
    network: str
    topology: str
    links: list[tuple[int, int]]
    nodes: list[NodeRecord]
    seed: int = 0
    running: bool = True
    started: float = field(default_factory=time.time)
    partition: list[list[int]] | None = None
    engine: str = "nakamoto"         # or a consensus engine run by replicas: pbft, tendermint, raft, ...

    @property
    def replicas(self) -> bool:
        """True for a network of consensus replicas, False for Nakamoto nodes."""
        return self.engine != "nakamoto"

    @property
    def history(self) -> str:
        """The client history ``testnet workload`` and ``testnet nemesis`` append to."""
        return os.path.join(self.directory, HISTORY_FILE)

    @property
    def path(self) -> str:
        return os.path.join(self.directory, STATE_FILE)

    def node(self, ident: str | int) -> NodeRecord:
        """A node by number (``2``) or name (``node2``); StateError naming the choices."""
        text = str(ident).strip()
        for rec in self.nodes:
            if text == rec.name or text == str(rec.index):
                return rec
        names = ", ".join(f"{r.index}/{r.name}" for r in self.nodes)
        raise StateError(f"no node {text!r} in this testnet: the nodes are {names}")

    def to_json(self) -> dict:
        data = asdict(self)
        data["links"] = [list(link) for link in self.links]
        return {"format": FORMAT, "version": VERSION, **data}

    @classmethod
    def from_json(cls, data: dict, directory: str) -> "TestnetState":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise StateError(f"{os.path.join(directory, STATE_FILE)} is not a minichain testnet state file")
        if data.get("version") != VERSION:
            raise StateError(f"{os.path.join(directory, STATE_FILE)} has version {data.get('version')!r}; "
                             f"this minichain reads version {VERSION}")
        try:
            nodes = [NodeRecord(**n) for n in data["nodes"]]
            return cls(directory=directory, network=data["network"], topology=data["topology"],
                       links=[(int(a), int(b)) for a, b in data["links"]], nodes=nodes,
                       seed=int(data.get("seed", 0)), running=bool(data["running"]),
                       started=float(data.get("started", 0)), partition=data.get("partition"),
                       engine=str(data.get("engine", "nakamoto")))
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"{os.path.join(directory, STATE_FILE)} is damaged ({type(exc).__name__}: {exc}); "
                             "stop any nodes by hand and delete the directory") from None


def load(directory: str) -> TestnetState | None:
    """The state in ``directory``, or None if no testnet was ever started there."""
    path = os.path.join(directory, STATE_FILE)
    try:
        with open(path, "rb") as f:
            raw = f.read(4 * 1024 * 1024)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise StateError(f"{path} is not valid JSON; stop any nodes by hand and delete the directory") from None
    return TestnetState.from_json(data, os.path.abspath(directory))


def save(state: TestnetState) -> None:
    os.makedirs(state.directory, exist_ok=True)
    tmp = state.path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state.to_json(), f, indent=1)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, state.path)


@contextmanager
def locked(directory: str) -> Iterator[None]:
    """Hold ``DIR/.lock`` for the duration; StateError if another command holds it."""
    os.makedirs(directory, exist_ok=True)
    fd = os.open(os.path.join(directory, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise StateError(f"another 'minichain testnet' command is changing {directory} right now; "
                                 "wait for it to finish") from None
            raise
        yield
    finally:
        os.close(fd)
