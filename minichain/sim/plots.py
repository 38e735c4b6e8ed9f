"""The comparison's plots (matplotlib, Agg backend: files only, no display needed).

Each function takes the JSON-ready result of :func:`minichain.sim.compare.compare` (so a
plot can be redrawn from ``compare.json`` without running anything) and writes one PNG:

* ``messages_per_decision.png`` -- messages per decided slot against ``n``, log scale;
* ``partition_commits.png`` -- each side's commits over time through a partition and its
  heal, every engine on one figure: the fork/halt trade-off;
* ``double_spend.png`` -- the double-spend race against Nakamoto's (2008, section 11) and
  Rosenfeld's (2014) closed forms, for several attacker shares;
* ``fork_tree.png`` -- the Nakamoto block tree of one partition run.
"""

from __future__ import annotations

import os
from typing import Any

COLOURS = {
    "nakamoto": "#d62728", "pbft": "#1f77b4", "tendermint": "#17becf", "raft": "#2ca02c",
    "paxos": "#8c564b", "dls": "#9467bd", "dls-byz": "#e377c2",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Reproducible files: no creation date or software version in the PNG metadata.
    plt.rcParams["savefig.dpi"] = 110
    return plt


def _save(fig: Any, out_dir: str, name: str) -> str:
    path = os.path.join(out_dir, name)
    fig.savefig(path, metadata={"Software": None}, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _colour(engine: str) -> str:
    return COLOURS.get(engine, "#7f7f7f")


def draw_all(result: dict, out_dir: str) -> list[str]:
    written = [messages_per_decision(result, out_dir), double_spend(result, out_dir)]
    if result.get("timelines"):
        written.append(partition_commits(result, out_dir))
    if result.get("fork_tree"):
        written.append(fork_tree(result, out_dir))
    return written


def messages_per_decision(result: dict, out_dir: str) -> str:
    """Log-log, with dotted guides proportional to n and to n squared through the first
    point of the cheapest engine, so a slope can be read off."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    firsts = []
    for engine, points in result["scaling"].items():
        if points:
            xs, ys = zip(*points)
            firsts.append((ys[0], xs))
            ax.plot(xs, ys, marker="o", label=engine, color=_colour(engine))
    if firsts:
        y0, xs = min(firsts)
        for power, name in ((1, "~ n"), (2, "~ n\u00b2")):
            ax.plot(xs, [y0 * (x / xs[0]) ** power for x in xs], ":", color="grey", linewidth=1)
            ax.annotate(name, (xs[-1], y0 * (xs[-1] / xs[0]) ** power), fontsize=8, color="grey",
                        xytext=(3, 0), textcoords="offset points", va="center")
        ax.set_xscale("log")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([str(x) for x in xs])
        ax.minorticks_off()
    ax.set_yscale("log")
    ax.set_xlabel("replicas / miners (n, log)")
    ax.set_ylabel("messages sent per decided slot (log)")
    c = result["config"]
    ax.set_title(f"Cost of a decision, fault-free, seed {c['seed']}, {c['scaling_duration']:g} s runs")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return _save(fig, out_dir, "messages_per_decision.png")


def partition_commits(result: dict, out_dir: str) -> str:
    """Small multiples: one row per partition scenario, one column per engine. In each
    panel, the payments committed by side A's replicas (solid) and side B's (dashed)
    over time, the partition shaded, and decisions reversed marked with crosses."""
    plt = _pyplot()
    scenarios = [s for s in ("partition-even", "partition-majority") if s in result["timelines"]]
    engines = list(dict.fromkeys(e for s in scenarios for e in result["timelines"][s]))
    c = result["config"]
    fig, axes = plt.subplots(len(scenarios), len(engines), figsize=(2.3 * len(engines), 2.4 * len(scenarios) + 0.6),
                             squeeze=False, sharex=True, sharey=True)
    for row, scenario in enumerate(scenarios):
        for col, engine in enumerate(engines):
            ax = axes[row][col]
            tl = result["timelines"][scenario].get(engine)
            ax.axvspan(c["fault_at"], c["heal_at"], color="grey", alpha=0.15)
            if tl is None:
                ax.set_axis_off()
                continue
            colour = _colour(engine)
            for side, (times, style) in enumerate(zip(tl["commits"], ("-", "--"))):
                xs = [0.0] + list(times) + [c["duration"]]
                ys = [0] + list(range(1, len(times) + 1)) + [len(times)]
                ax.step(xs, ys, where="post", linestyle=style, color=colour, linewidth=1.5,
                        label=f"side {'AB'[side]} {tl['split'][side]}")
            if tl["reversals"]:
                ax.plot(tl["reversals"], [1] * len(tl["reversals"]), "kx", markersize=6,
                        label=f"{len(tl['reversals'])} decisions reversed")
            if row == 0:
                ax.set_title(engine, fontsize=10)
            if col == 0:
                ax.set_ylabel(f"{scenario}\npayments committed", fontsize=8)
            if row == len(scenarios) - 1:
                ax.set_xlabel("time (s)", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=5.5, loc="upper left")
    fig.suptitle(f"Commits per side through a partition ({c['fault_at']:g}-{c['heal_at']:g} s, shaded) and its heal, "
                 f"n={c['n']}, seed {c['seed']}: the BFT/CFT engines halt without a quorum, Nakamoto forks", fontsize=10)
    fig.tight_layout()
    return _save(fig, out_dir, "partition_commits.png")


def double_spend(result: dict, out_dir: str) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    rows = result["double_spend"]
    qs = sorted({r["q"] for r in rows})
    cmap = plt.get_cmap("viridis")
    for k, q in enumerate(qs):
        colour = cmap(k / max(1, len(qs) - 1) * 0.9)
        rs = sorted((r for r in rows if r["q"] == q), key=lambda r: r["z"])
        zs = [r["z"] for r in rs]
        floor = 0.5 / rs[0]["trials"]          # draw a zero rate at half a trial on the log axis
        rate = [max(r["rate"], floor) for r in rs]
        err = [[max(0.0, r["rate"] - r["ci95"][0]) for r in rs], [r["ci95"][1] - r["rate"] for r in rs]]
        ax.errorbar(zs, rate, yerr=err, fmt="o", color=colour, markersize=4, capsize=2,
                    label=f"q={q}: race ({rs[0]['trials']} trials, 95% CI)")
        ax.plot(zs, [r["rosenfeld"] for r in rs], "-", color=colour, label=f"q={q}: Rosenfeld / Grunspan-Perez-Marco")
        ax.plot(zs, [r["nakamoto"] for r in rs], ":", color=colour, label=f"q={q}: Nakamoto 2008")
    ax.set_yscale("log")
    ax.set_xlabel("confirmations the merchant waits for (z)")
    ax.set_ylabel("attacker success probability (log)")
    ax.set_title("Double spend: measured races against the two closed forms")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    return _save(fig, out_dir, "double_spend.png")


def fork_tree(result: dict, out_dir: str) -> str:
    """Blocks by height (x) on lanes (y): the final main chain on lane 0, each orphaned
    branch on a lane of its own; colour = the side of the partition its miner was on."""
    plt = _pyplot()
    tree = result["fork_tree"]
    blocks = tree["blocks"]
    by_hash = {b["hash"]: b for b in blocks}
    side_of = {node: side for side, g in enumerate(tree["split"]) for node in g}
    lane: dict[str, int] = {}
    next_lane = 1
    for b in sorted(blocks, key=lambda b: (b["height"], b["found_at"])):
        if b["main"]:
            lane[b["hash"]] = 0
            continue
        parent = by_hash.get(b["parent"])
        # Continue the parent's orphan lane if this is its first orphaned child there.
        if parent is not None and not parent["main"] and parent["hash"] in lane and \
                not any(lane.get(o["hash"]) == lane[parent["hash"]] and o["height"] == b["height"] for o in blocks):
            lane[b["hash"]] = lane[parent["hash"]]
        else:
            lane[b["hash"]] = next_lane
            next_lane += 1
    fig, ax = plt.subplots(figsize=(10, 2.2 + 0.45 * next_lane))
    colours = ("#1f77b4", "#ff7f0e")
    genesis_y = 0
    for b in blocks:
        parent = by_hash.get(b["parent"])
        px, py = (parent["height"], lane[parent["hash"]]) if parent else (b["height"] - 1, genesis_y)
        ax.plot([px, b["height"]], [py, lane[b["hash"]]], "-", color="#999999", linewidth=1, zorder=1)
    for side in (0, 1):
        for main in (True, False):
            pts = [b for b in blocks if side_of.get(b["miner"]) == side and b["main"] == main]
            if pts:
                ax.scatter([b["height"] for b in pts], [lane[b["hash"]] for b in pts], s=60, zorder=2,
                           color=colours[side] if main else "white", edgecolors=colours[side], linewidths=1.6,
                           label=f"side {'AB'[side]} {tree['split'][side]}, {'main chain' if main else 'orphaned'}")
    a, b = tree["window"]
    during = [x["height"] for x in blocks if a <= x["found_at"] < b]
    if during:
        ax.axvspan(min(during) - 0.5, max(during) + 0.5, color="grey", alpha=0.12, label=f"mined during the partition ({a:g}-{b:g} s)")
    ax.set_yticks(range(next_lane))
    ax.set_yticklabels(["main"] + [f"orphan {i}" for i in range(1, next_lane)])
    ax.set_xlabel("height")
    ax.set_title(f"Nakamoto block tree, partition-even, seed {tree['seed']}: both sides mine, one side's blocks are orphaned at the heal")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_ylim(-0.7, next_lane - 0.3)
    ax.invert_yaxis()
    return _save(fig, out_dir, "fork_tree.png")
