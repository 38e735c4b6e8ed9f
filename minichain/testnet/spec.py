"""What network to start: from the command line, a description file, or both.

A description file (JSON, or TOML when its name ends in ``.toml``; ready-made ones are
in ``testnet/`` at the top of the repository) may hold::

    network      "testnet" or "regtest"
    nodes        how many (a number), or a list of node objects (below)
    topology     "line", "ring", "full" or "random"
    links        explicit links instead of a topology: [[1, 0], [2, 1], ...]
    seed         for the random topology
    degree       average links per node of the random topology (default 3)
    miners       how many nodes mine (spread evenly: 0, n/m, 2n/m, ...), or a list of node numbers
    hashrate_share   one share per miner: [30, 70] or "30,70"
    threads      mining threads per miner (default 1)
    base_port    0 (default): free ports; P: node i listens on P+2i (peers) and P+2i+1 (API)

A node object: ``{"name": "merchant", "mine": true, "share": 30}`` (all keys optional).
An option given on the command line wins over the file.

A network of consensus replicas (``--engine pbft|tendermint|raft|paxos|dls|dls-byz``) is
built by :func:`build_replicas`: ``n`` replicas, every pair linked, of which the
``byzantine`` lowest-numbered run a Byzantine ``behaviour`` (as in the simulator's
scenarios, so the first leader/primary/proposer is among them).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from minichain.testnet.topology import (TOPOLOGIES, MinerPlan, TopologyError, check_links, links,
                                        parse_shares, plan_miners)

NETWORKS = ("testnet", "regtest")
ENGINES = ("nakamoto", "pbft", "tendermint", "raft", "paxos", "dls", "dls-byz")
DEFAULT_BEHAVIOUR = "equivocate"
MAX_NODES = 64
KNOWN_KEYS = {"network", "nodes", "topology", "links", "seed", "degree", "miners", "hashrate_share", "threads",
              "base_port", "description"}
NODE_KEYS = {"name", "mine", "share"}


class SpecError(ValueError):
    """The requested network cannot be built; ``str()`` says why in plain words."""


@dataclass
class NetworkSpec:
    network: str
    names: list[str]
    topology: str                     # a shape, or "custom" for explicit links
    links: list[tuple[int, int]]
    miners: list[MinerPlan]
    seed: int = 0
    base_port: int = 0
    source: str | None = None         # the description file, if any
    description: str = ""
    extra_args: list[str] = field(default_factory=list)  # passed to every node (tests: --log-level debug)
    engine: str = "nakamoto"
    byzantine: dict[int, str] = field(default_factory=dict)   # replica -> Byzantine behaviour

    @property
    def size(self) -> int:
        return len(self.names)

    def miner(self, index: int) -> MinerPlan | None:
        for plan in self.miners:
            if plan.node == index:
                return plan
        return None


def read_description(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            raw = f.read(1 << 20)
    except FileNotFoundError:
        raise SpecError(f"no network description at {path}") from None
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror or exc}") from None
    if path.endswith(".toml"):
        import tomllib

        try:
            data = tomllib.loads(raw.decode())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SpecError(f"{path} is not valid TOML: {exc}") from None
    else:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise SpecError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path} must hold an object (a table) of settings")
    unknown = sorted(set(data) - KNOWN_KEYS)
    if unknown:
        raise SpecError(f"{path}: unknown setting(s) {', '.join(map(repr, unknown))}; "
                        f"known: {', '.join(sorted(KNOWN_KEYS))}")
    return data


def spread(count: int, n: int) -> list[int]:
    """``count`` of ``n`` node numbers, spread evenly (so 2 of 4 are 0 and 2: one on each
    side of the partition 0,1 | 2,3)."""
    return sorted({min(n - 1, round(k * n / count)) for k in range(count)}) if count else []


def _int(value: Any, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{what} must be a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise SpecError(f"{what} must be {lo}..{hi}, got {value}")
    return value


def build(*, nodes: int | None = None, miners: int | None = None, shares: str | None = None,
          topology: str | None = None, network: str | None = None, config: str | None = None,
          seed: int | None = None, threads: int | None = None, base_port: int | None = None) -> NetworkSpec:
    """The network to start. Command-line values (not None) win over the file's."""
    data = read_description(config) if config else {}
    where = f"{config}: " if config else ""

    net = network or data.get("network", "testnet")
    if net not in NETWORKS:
        raise SpecError(f"{where}network must be one of {', '.join(NETWORKS)}, got {net!r}")

    node_objs: list[dict] = []
    raw_nodes = data.get("nodes")
    if isinstance(raw_nodes, list):
        for i, obj in enumerate(raw_nodes):
            if not isinstance(obj, dict) or set(obj) - NODE_KEYS:
                raise SpecError(f"{where}node {i} must be an object with keys among {', '.join(sorted(NODE_KEYS))}")
            node_objs.append(obj)
        file_n = len(node_objs)
    elif raw_nodes is not None:
        file_n = _int(raw_nodes, f"{where}nodes", 1, MAX_NODES)
    else:
        file_n = None
    n = nodes if nodes is not None else (file_n if file_n is not None else 4)
    _int(n, "the number of nodes", 1, MAX_NODES)
    if node_objs and n != len(node_objs):
        raise SpecError(f"--nodes {n} disagrees with the {len(node_objs)} nodes described in {config}")

    names = []
    for i in range(n):
        name = node_objs[i].get("name") if node_objs else None
        if name is None:
            name = f"node{i}"
        if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_" for c in name):
            raise SpecError(f"{where}node name {name!r}: use letters, digits, '-' and '_'")
        if name.isdigit() or name in names:
            raise SpecError(f"{where}node name {name!r} is a number or used twice")
        names.append(name)

    seed_v = seed if seed is not None else data.get("seed")
    if seed_v is None:
        seed_v = random.SystemRandom().randrange(1 << 31)
    seed_v = _int(seed_v, f"{where}seed", 0, 2**63)

    shape = topology or data.get("topology")
    try:
        if shape is None and "links" in data:
            if not isinstance(data["links"], list):
                raise SpecError(f"{where}links must be a list of [a, b] pairs")
            edges = check_links(data["links"], n)
            shape = "custom"
        else:
            shape = shape or "line"
            if shape not in TOPOLOGIES:
                raise SpecError(f"{where}unknown topology {shape!r}: choose one of {', '.join(TOPOLOGIES)}")
            degree = data.get("degree", 3)
            if isinstance(degree, bool) or not isinstance(degree, (int, float)) or not 1 <= degree <= MAX_NODES:
                raise SpecError(f"{where}degree must be a number from 1 up, got {degree!r}")
            edges = links(shape, n, seed=seed_v, degree=float(degree))
    except TopologyError as exc:
        raise SpecError(f"{where}{exc}") from None

    # Which nodes mine, and with what share.
    if miners is not None:
        _int(miners, "--miners", 0, n)
        miner_nodes = spread(miners, n)
        file_shares = None
    elif node_objs and any("mine" in o or "share" in o for o in node_objs):
        miner_nodes = [i for i, o in enumerate(node_objs) if o.get("mine", "share" in o)]
        file_shares = [o["share"] for o in node_objs if o.get("mine", "share" in o) and "share" in o] or None
        if file_shares is not None and len(file_shares) != len(miner_nodes):
            raise SpecError(f"{where}give every miner a share, or none")
    elif "miners" in data:
        m = data["miners"]
        if isinstance(m, list):
            miner_nodes = sorted({_int(v, f"{where}miners entry", 0, n - 1) for v in m})
        else:
            miner_nodes = spread(_int(m, f"{where}miners", 0, n), n)
        file_shares = None
    else:
        miner_nodes = list(range(n))
        file_shares = None
    if shares is None and file_shares is None and "hashrate_share" in data:
        fs = data["hashrate_share"]
        shares = fs if isinstance(fs, str) else ",".join(str(v) for v in fs) if isinstance(fs, list) else None
        if shares is None:
            raise SpecError(f"{where}hashrate_share must be a list like [30, 70] or a string like \"30,70\"")
    try:
        share_list = parse_shares(shares) if shares is not None else (
            [float(s) for s in file_shares] if file_shares else None)
        if share_list is not None and miners is None and not node_objs and "miners" not in data:
            # Only shares given: the first len(shares) nodes... spread like --miners would.
            miner_nodes = spread(len(share_list), n)
        t = threads if threads is not None else data.get("threads", 1)
        _int(t, "threads", 1, 256)
        plans = plan_miners(miner_nodes, share_list, t)
    except TopologyError as exc:
        raise SpecError(str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{where}hash-power shares: {exc}") from None

    port = base_port if base_port is not None else data.get("base_port", 0)
    _int(port, "base port", 0, 65535 - 2 * n)
    if port and port < 1024:
        raise SpecError(f"base port {port} is a privileged port; use 0 (free ports) or 1024 and up")

    return NetworkSpec(network=net, names=names, topology=shape, links=edges, miners=plans, seed=seed_v,
                       base_port=port, source=config, description=str(data.get("description", "")))


def build_replicas(engine: str, *, nodes: int | None = None, byzantine: int = 0, behaviour: str | None = None,
                   base_port: int | None = None, seed: int | None = None) -> NetworkSpec:
    """A network of ``nodes`` replicas of a consensus engine, every pair linked."""
    from minichain.sim.engines import load_registry

    registry = load_registry()
    if engine not in registry:
        raise SpecError(f"unknown engine {engine!r}: choose one of {', '.join(ENGINES)}")
    spec = registry[engine]
    n = nodes if nodes is not None else 4
    _int(n, "the number of replicas", 1, MAX_NODES)
    _int(byzantine, "--byzantine", 0, n)
    if behaviour is not None and not byzantine:
        raise SpecError("--behaviour needs --byzantine K (how many replicas behave so)")
    behaviour = behaviour or DEFAULT_BEHAVIOUR
    if byzantine and behaviour not in spec.behaviours:
        raise SpecError(f"{engine} has no behaviour {behaviour!r}; it has: {', '.join(spec.behaviours)}")
    port = base_port or 0
    _int(port, "base port", 0, 65535 - 2 * n)
    if port and port < 1024:
        raise SpecError(f"base port {port} is a privileged port; use 0 (free ports) or 1024 and up")
    seed_v = seed if seed is not None else random.SystemRandom().randrange(1 << 31)
    return NetworkSpec(network="testnet", names=[f"node{i}" for i in range(n)], topology="full",
                       links=links("full", n), miners=[], seed=seed_v, base_port=port, engine=engine,
                       byzantine={i: behaviour for i in range(byzantine)})
