"""Who links to whom, who mines how much, and who is cut off from whom. Pure functions.

A topology is a list of links ``(i, j)`` with ``i > j``: node ``i`` dials node ``j``
(``peers/add``), so every link has exactly one dialler, and a link counts once at each
end. The links are undirected for everything else (relay flows both ways).

    line     0 - 1 - 2 - ... - n-1                 the longest path: n-1 hops end to end
    ring     the line plus (n-1, 0)
    full     every pair
    random   a random spanning tree (so the graph is connected) plus random extra links
             until the average degree reaches ``degree``; the same seed gives the same graph

A miner's share of the hash power becomes a duty cycle (the fraction of time its
threads hash, see ``mining/miner.py``): the largest share hashes all the time and the
others proportionally less, so the rates keep the ratio of the shares. Simplification,
said plainly: this holds while the machine has a core per hashing thread; with fewer,
the operating system shares the cores out and the ratios still roughly hold, because
a resting miner gives its time to the others.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

TOPOLOGIES = ("line", "ring", "full", "random")
DEFAULT_RANDOM_DEGREE = 3.0


class TopologyError(ValueError):
    """A topology, share list or partition that cannot be built; ``str()`` says why."""


def links(kind: str, n: int, *, seed: int = 0, degree: float = DEFAULT_RANDOM_DEGREE) -> list[tuple[int, int]]:
    """The links of an ``n``-node network of shape ``kind``, each as (dialler, dialled)
    with dialler > dialled, sorted."""
    if n < 1:
        raise TopologyError("a network needs at least one node")
    if kind == "line":
        out = {(i, i - 1) for i in range(1, n)}
    elif kind == "ring":
        out = {(i, i - 1) for i in range(1, n)}
        if n >= 3:
            out.add((n - 1, 0))
    elif kind == "full":
        out = {(i, j) for i in range(n) for j in range(i)}
    elif kind == "random":
        out = _random_links(n, seed, degree)
    else:
        raise TopologyError(f"unknown topology {kind!r}: choose one of {', '.join(TOPOLOGIES)}")
    return sorted(out)


def _random_links(n: int, seed: int, degree: float) -> set[tuple[int, int]]:
    rng = random.Random(seed)
    out: set[tuple[int, int]] = set()
    # A random spanning tree: each node after the first joins one node before it, in a
    # shuffled order, so the graph is connected whatever the extra links are.
    order = list(range(n))
    rng.shuffle(order)
    for k in range(1, n):
        a, b = order[k], order[rng.randrange(k)]
        out.add((max(a, b), min(a, b)))
    possible = n * (n - 1) // 2
    wanted = min(possible, max(n - 1, round(degree * n / 2)))
    while len(out) < wanted:
        a, b = rng.sample(range(n), 2)
        out.add((max(a, b), min(a, b)))
    return out


def check_links(pairs: list[list[int]] | list[tuple[int, int]], n: int) -> list[tuple[int, int]]:
    """Explicit links from a network description, checked and put in (dialler, dialled) form."""
    out = set()
    for pair in pairs:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in pair):
            raise TopologyError(f"a link must be a pair of node numbers, got {pair!r}")
        a, b = pair
        for v in (a, b):
            if not 0 <= v < n:
                raise TopologyError(f"link {list(pair)} names node {v}, but the nodes are 0..{n - 1}")
        if a == b:
            raise TopologyError(f"link {list(pair)} joins a node to itself")
        out.add((max(a, b), min(a, b)))
    return sorted(out)


def neighbours(edges: list[tuple[int, int]], n: int) -> list[set[int]]:
    adj: list[set[int]] = [set() for _ in range(n)]
    for a, b in edges:
        adj[a].add(b)
        adj[b].add(a)
    return adj


def components(nodes: set[int], edges: list[tuple[int, int]]) -> list[set[int]]:
    """Connected components of the subgraph on ``nodes`` (links leaving it are ignored)."""
    adj: dict[int, set[int]] = {v: set() for v in nodes}
    for a, b in edges:
        if a in nodes and b in nodes:
            adj[a].add(b)
            adj[b].add(a)
    seen: set[int] = set()
    out = []
    for start in sorted(nodes):
        if start in seen:
            continue
        comp, stack = set(), [start]
        while stack:
            v = stack.pop()
            if v in comp:
                continue
            comp.add(v)
            stack.extend(adj[v] - comp)
        seen |= comp
        out.append(comp)
    return out


# -- hash power ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MinerPlan:
    node: int
    share: float      # of the network's hash power, the shares summing to 1
    threads: int
    duty: float       # fraction of the time the threads hash


def parse_shares(text: str) -> list[float]:
    """'30,70', '0.3,0.7' or '1,1,2' -> the numbers (normalised later). Percent signs are allowed."""
    out = []
    for part in text.split(","):
        part = part.strip().rstrip("%").strip()
        if not part:
            raise TopologyError(f"hash-power shares {text!r}: an empty entry (write them like 30,70)")
        try:
            value = float(part)
        except ValueError:
            raise TopologyError(f"hash-power share {part!r} is not a number (write them like 30,70)") from None
        if not value > 0 or value != value or value == float("inf"):
            raise TopologyError(f"hash-power share {part!r} must be a positive number")
        out.append(value)
    return out


def plan_miners(miner_nodes: list[int], shares: list[float] | None, threads: int = 1,
                min_duty: float = 0.01) -> list[MinerPlan]:
    """One plan per miner: shares normalised to sum 1, the largest hashing all the time."""
    if not miner_nodes:
        if shares:
            raise TopologyError("hash-power shares were given, but there are no miners")
        return []
    if shares is None:
        shares = [1.0] * len(miner_nodes)
    if len(shares) != len(miner_nodes):
        raise TopologyError(f"{len(shares)} hash-power share(s) for {len(miner_nodes)} miner(s): "
                            "give one share per miner")
    if threads < 1:
        raise TopologyError("a miner needs at least one thread")
    total, top = sum(shares), max(shares)
    plans = []
    for node, s in zip(miner_nodes, shares):
        duty = s / top
        if duty < min_duty:
            raise TopologyError(f"a share of {s / total:.2%} is too small beside {top / total:.0%}: "
                                f"a miner hashes at least {min_duty:.0%} of the time of the largest")
        plans.append(MinerPlan(node, s / total, threads, round(duty, 4)))
    return plans


# -- partitions ----------------------------------------------------------------------------


def parse_groups(args: list[str] | tuple[str, ...], n: int) -> list[list[int]]:
    """``["0,1", "2,3"]`` -> ``[[0, 1], [2, 3]]``. Nodes named in no group form one more
    group together, so ``partition 0`` cuts node 0 off from the rest."""
    groups: list[list[int]] = []
    seen: dict[int, int] = {}
    for g, arg in enumerate(args):
        members = []
        for part in arg.replace(" ", "").split(","):
            if not part:
                continue
            name = part[4:] if part.startswith("node") else part
            if not name.isdigit():
                raise TopologyError(f"{part!r} is not a node number (write the groups like 0,1 2,3)")
            v = int(name)
            if v >= n:
                raise TopologyError(f"there is no node {v}: the nodes are 0..{n - 1}")
            if v in seen:
                raise TopologyError(f"node {v} is in two groups ({seen[v] + 1} and {g + 1}): "
                                    "a node is on one side of a partition")
            seen[v] = g
            members.append(v)
        if not members:
            raise TopologyError(f"group {arg!r} names no node")
        groups.append(sorted(members))
    rest = [v for v in range(n) if v not in seen]
    if rest:
        groups.append(rest)
    if len(groups) < 2:
        raise TopologyError("a partition needs at least two groups (e.g. 'partition 0,1 2,3'); "
                            "every node is in the same group")
    return groups


def deny_lists(groups: list[list[int]], n: int) -> list[set[int]]:
    """For each node, the nodes it must refuse: everyone outside its group."""
    side = {v: g for g, members in enumerate(groups) for v in members}
    return [{u for u in range(n) if side.get(u) != side.get(v)} for v in range(n)]
