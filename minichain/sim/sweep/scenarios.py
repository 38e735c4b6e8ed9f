"""What a sweep can run: each scenario is one run of the laboratory as a pure function of
(parameters, seed), returning flat metrics.

A scenario lists its parameters (name, type, default, the values it accepts) and its
metrics (what each means, how its 95% interval is computed, and the closed forms of
``sim/analytic.py`` that predict it, where one exists). The run functions call the
public functions of the existing scenarios (``sim/scenarios/``) and of the comparison
(``sim/compare.py``); only ``nakamoto`` (a large random-graph network stopped after a
fixed number of blocks) builds its simulation here, as ``benchmarks/sim.py`` does.

Each run is simulated with its ``run_seed`` (a hash of scenario, parameters and seed).
Where a sweep row has a command of its own, the two agree: the ``selfish-mining`` row for
(alpha, gamma, blocks) is the row ``minichain sim selfish-mining --alpha A --gamma G
--blocks B --seed RUN_SEED`` prints, and likewise for ``double-spend`` (``--q --z
--trials``).

Tasks name their scenario by its name, never by a function, so that a run can be shipped
to a worker process or a Dask worker and looked up there in this registry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from minichain.sim import analytic

Value = int | float | str


@dataclass(frozen=True)
class Param:
    name: str
    kind: type                                  # int, float or str
    default: Value
    about: str
    check: Callable[[Any], str | None] = lambda v: None   # an error sentence, or None
    choices: Callable[[], tuple[str, ...]] | None = None  # for str parameters


@dataclass(frozen=True)
class ClosedForm:
    name: str                                   # column suffix: revenue_eyal_sirer
    label: str                                  # legend text
    fn: Callable[[dict[str, Any]], float | None]   # parameters -> value (None: no formula there)
    # True if the measurement estimates exactly this quantity (so it should fall inside the
    # 95% interval about 95% of the time); False for approximations and reference lines.
    exact: bool = False


@dataclass(frozen=True)
class Metric:
    name: str
    about: str
    closed: tuple[ClosedForm, ...] = ()
    # (successes, trials) columns of the rows (metrics or parameters): the interval is
    # Wilson's on the counts pooled over the seeds; without it, Student's t over the seeds.
    proportion: tuple[str, str] | None = None


@dataclass(frozen=True)
class Plot:
    """The scenario's default plots: the metrics drawn as lines, log axes, and the metric
    drawn as a heatmap over two numeric axes, with the closed form's contour at a level."""

    metrics: tuple[str, ...]
    logx: bool = False
    logy: bool = False
    heatmap: str | None = None
    contour: float | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    about: str
    params: tuple[Param, ...]
    metrics: tuple[Metric, ...]
    run: Callable[..., dict[str, Any]]          # run(seed, **params) -> {metric: value}
    headline: tuple[str, ...]                   # metrics printed by default
    plot: Plot

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def metric(self, name: str) -> Metric | None:
        return next((m for m in self.metrics if m.name == name), None)


def _between(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
        if ok:
            return None
        left, right = "(" if lo_open else "[", ")" if hi_open else "]"
        return f"must be in {left}{lo:g}, {hi:g}{right}, got {v!r}"
    return check


def _at_least(lo: float, *, open_: bool = False) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if v > lo or (v == lo and not open_):
            return None
        return f"must be {'>' if open_ else '>='} {lo:g}, got {v!r}"
    return check


# -- selfish mining (Eyal & Sirer 2014) ------------------------------------------------------


def _selfish_mining(seed: int, *, alpha: float, gamma: float, blocks: int) -> dict[str, Any]:
    from minichain.sim.scenarios import selfish_mining

    row = selfish_mining.run(seed, alphas=(alpha,), gammas=(gamma,), blocks=blocks)["rows"][0]
    return {
        "revenue": row["revenue"],
        "revenue_minus_alpha": row["revenue"] - alpha,
        "pool_blocks": row["pool_blocks"],
        "honest_blocks": row["honest_blocks"],
    }


def _eyal_sirer(p: dict[str, Any]) -> float:
    return analytic.eyal_sirer_revenue(p["alpha"], p["gamma"])


SELFISH_MINING = Scenario(
    name="selfish-mining",
    about="Eyal and Sirer's selfish pool (share alpha, tie-winning fraction gamma), block by block",
    params=(
        Param("alpha", float, 0.3, "the pool's share of the hash power", _between(0, 0.5, lo_open=True)),
        Param("gamma", float, 0.5, "share of honest miners mining on the pool's block in a tie", _between(0, 1)),
        Param("blocks", int, 100_000, "blocks found per run", _at_least(1)),
    ),
    metrics=(
        Metric("revenue", "the pool's share of the main chain",
               (ClosedForm("eyal_sirer", "Eyal-Sirer eq. (8)", _eyal_sirer, exact=True),)),
        Metric("revenue_minus_alpha", "revenue beyond honest mining (> 0: selfish mining pays)",
               (ClosedForm("eyal_sirer", "Eyal-Sirer eq. (8) - alpha", lambda p: _eyal_sirer(p) - p["alpha"],
                           exact=True),)),
        Metric("pool_blocks", "the pool's blocks in the main chain"),
        Metric("honest_blocks", "honest blocks in the main chain"),
    ),
    run=_selfish_mining,
    headline=("revenue", "revenue_minus_alpha"),
    plot=Plot(("revenue", "revenue_minus_alpha"), heatmap="revenue_minus_alpha", contour=0.0),
)


# -- double spend (Nakamoto 2008, Rosenfeld 2014) --------------------------------------------


def _double_spend(seed: int, *, q: float, z: int, trials: int) -> dict[str, Any]:
    from minichain.sim.scenarios import double_spend

    row = double_spend.run(seed, qs=(q,), zs=(z,), trials=trials)["rows"][0]
    return {"rate": row["rate"], "successes": row["successes"]}


DOUBLE_SPEND = Scenario(
    name="double-spend",
    about="an attacker with hash share q against a merchant waiting z confirmations (Rosenfeld's race)",
    params=(
        Param("q", float, 0.3, "the attacker's share of the hash power", _between(0, 0.5, hi_open=True)),
        Param("z", int, 6, "confirmations the merchant waits for", _at_least(0)),
        Param("trials", int, 10_000, "attacks per run", _at_least(1)),
    ),
    metrics=(
        Metric("rate", "share of attacks that succeed", (
            ClosedForm("rosenfeld", "Rosenfeld 2014 (exact)", lambda p: analytic.rosenfeld_double_spend(p["q"], p["z"]),
                       exact=True),
            ClosedForm("nakamoto", "Nakamoto sec. 11", lambda p: analytic.nakamoto_double_spend(p["q"], p["z"])),
        ), proportion=("successes", "trials")),
        Metric("successes", "attacks that succeeded"),
    ),
    run=_double_spend,
    headline=("rate",),
    plot=Plot(("rate",), logy=True, heatmap="rate"),
)


# -- stale blocks against propagation delay (Decker & Wattenhofer 2013) ----------------------


def _stale_rate(seed: int, *, block_interval: float, delay: float, miners: int, blocks: int) -> dict[str, Any]:
    from minichain.sim.scenarios import stale_rate

    row = stale_rate.measure(block_interval, delay, seed, miners=miners, blocks=blocks)
    return {"stale_rate": row["stale_rate"], "stale": row["stale"], "mined": row["mined"]}


def _stale_rate_approx(p: dict[str, Any]) -> float:
    """Decker and Wattenhofer's first-order estimate, with D the time a block takes to cross
    a link as the scenario counts it: a scenario whose nodes relay headers first names the
    latencies per link (``HOPS_PER_LINK``: header, getdata, block); plain flooding takes one."""
    from minichain.sim.scenarios import stale_rate

    hops = stale_rate.HOPS_PER_LINK
    return analytic.stale_rate_approx(hops * p["delay"], p["block_interval"])


STALE_RATE = Scenario(
    name="stale-rate",
    about="equal miners on a full mesh whose links take exactly `delay` seconds",
    params=(
        Param("block_interval", float, 600.0, "mean seconds between blocks", _at_least(0, open_=True)),
        Param("delay", float, 2.0, "one-way delay of every link, seconds", _at_least(0)),
        Param("miners", int, 10, "miners (equal shares, full mesh)", _between(2, 200)),
        Param("blocks", int, 1_000, "expected blocks per run (mining stops at blocks x interval)", _at_least(1)),
    ),
    metrics=(
        Metric("stale_rate", "share of mined blocks outside the final main chain", (
            ClosedForm("approx", "1 - exp(-D/T) (first order)", _stale_rate_approx),
        ), proportion=("stale", "mined")),
        Metric("stale", "blocks outside the final main chain"),
        Metric("mined", "blocks mined"),
    ),
    run=_stale_rate,
    headline=("stale_rate",),
    plot=Plot(("stale_rate",), heatmap="stale_rate"),
)


# -- the replication engines through the comparison's harness --------------------------------


def _engines() -> tuple[str, ...]:
    from minichain.sim import compare

    return compare.ENGINES


def _faults() -> tuple[str, ...]:
    from minichain.sim import compare

    return tuple(compare.SCENARIOS)


def _replicated(seed: int, *, engine: str, fault: str, n: int, duration: float, fault_at: float,
                heal_at: float) -> dict[str, Any]:
    from minichain.sim import compare

    cfg = compare.Config(engines=(engine,), scenarios=(fault,), n=n, seeds=1, seed=seed, duration=duration,
                         fault_at=fault_at, heal_at=heal_at, plots=False)
    row, _ = compare.run_one(engine, fault, seed, cfg)
    return {
        "messages": row["messages"],
        "msgs_per_decision": row["msgs_per_decision"],
        "decided": row["decided"],
        "submitted": row["submitted"],
        "committed": row["committed"],
        "finality": row["finality"],
        "conflicts": row["conflicts"],
        "reversed": row["reversed"],
        "double_spent": row["double_spent"],
        "stalled": int(row["stalled"]),
    }


def _textbook_messages(p: dict[str, Any]) -> float | None:
    """Messages per decided request in the fault-free normal case, as the papers count them
    (each multicast reaches the n - 1 others):

    * PBFT (Castro & Liskov 1999, section 4.2): the primary's pre-prepare, n - 1 backups'
      prepares, n replicas' commits: (n-1) + (n-1)^2 + n(n-1) = 2n(n-1). Our replicas also
      exchange checkpoints (section 4.3), which this count leaves out.
    * Tendermint (Buchman, Kwon & Milosevic 2018, Algorithm 1): the proposal, n prevotes and
      n precommits: (n-1)(2n+1).
    """
    n = p["n"]
    if p["engine"] == "pbft":
        return 2 * n * (n - 1)
    if p["engine"] == "tendermint":
        return (n - 1) * (2 * n + 1)
    return None


REPLICATED = Scenario(
    name="replicated",
    about="one engine under one fault of `minichain sim compare` (same workload, network and schedule)",
    params=(
        Param("engine", str, "pbft", "the engine", choices=_engines),
        Param("fault", str, "normal", "the comparison's scenario", choices=_faults),
        Param("n", int, 4, "replicas (miners)", _between(1, 256)),
        Param("duration", float, 40.0, "virtual seconds per run", _at_least(0, open_=True)),
        Param("fault_at", float, 5.0, "when the fault starts", _at_least(0)),
        Param("heal_at", float, 20.0, "when a partition heals (and GST falls)", _at_least(0)),
    ),
    metrics=(
        Metric("messages", "messages sent"),
        Metric("msgs_per_decision", "messages sent per decided slot",
               (ClosedForm("textbook", "normal case, as the papers count it", _textbook_messages),)),
        Metric("decided", "log slots decided"),
        Metric("submitted", "payments submitted"),
        Metric("committed", "payments committed by a live honest replica"),
        Metric("finality", "mean seconds from a payment's submission to its first commit"),
        Metric("conflicts", "slots where honest replicas decided different values"),
        Metric("reversed", "payments final at an honest replica and later not"),
        Metric("double_spent", "coins two different payments of which were each final somewhere"),
        Metric("stalled", "1 if nothing was decided during the fault window"),
    ),
    run=_replicated,
    headline=("msgs_per_decision", "committed"),
    plot=Plot(("msgs_per_decision",), logx=True, logy=True),
)


# -- a large Nakamoto network (the simulator's scale) ----------------------------------------


def _nakamoto(seed: int, *, nodes: int, blocks: int, latency: float, block_interval: float, degree: int,
              miners: int) -> dict[str, Any]:
    """``nodes`` Bitcoin-style nodes on a random graph (``degree`` outbound peers each,
    log-normal link latency of median ``latency`` s), the hash power shared equally by the
    first ``miners``; mining stops the moment block number ``blocks`` is found, then the
    network settles. A block is stale when it ends outside node 0's active chain."""
    import random

    from minichain.sim.engines.nakamoto import NakamotoNode, World, random_peers, shares_from
    from minichain.sim.network import LogNormal, Network
    from minichain.sim.simulator import Simulation

    peers = random_peers(nodes, degree, random.Random(seed))
    shares = shares_from([1.0] * min(nodes, miners), nodes)
    sim: Simulation

    class CountingWorld(World):
        """Stops the run right after the event that found block number ``blocks``."""

        def register(self, block) -> None:
            super().register(block)
            if len(self.blocks) > blocks:           # genesis is in the registry too
                sim.stop()

    world = CountingWorld(block_interval=block_interval, confirmations=None)
    sim = Simulation(nodes, lambda ctx: NakamotoNode(ctx, world, share=shares[ctx.node_id], peers=peers[ctx.node_id]),
                     seed=seed, network=Network(LogNormal(latency, 0.5)))
    sim.run()
    for engine in sim.engines:
        engine.share = 0.0
    sim.run()                                       # let the last blocks reach everyone
    main = {e.hash for e in sim.engines[0].tree.active}
    mined = len(world.blocks) - 1
    stale = sum(1 for h in world.blocks if h not in main)
    return {
        "stale_rate": stale / mined if mined else 0.0,
        "stale": stale,
        "mined": mined,
        "height": sim.engines[0].tree.height,
        "events": sim.events,
        "messages": sim.net.sent,
        "virtual_s": sim.now,
    }


NAKAMOTO = Scenario(
    name="nakamoto",
    about="a Nakamoto network on a random peer graph, stopped after a fixed number of blocks",
    params=(
        Param("nodes", int, 100, "nodes", _at_least(2)),
        Param("blocks", int, 100, "blocks mined, then mining stops", _at_least(1)),
        Param("latency", float, 0.1, "median one-way link latency, seconds (log-normal, sigma 0.5)",
              _at_least(0, open_=True)),
        Param("block_interval", float, 600.0, "mean seconds between blocks", _at_least(0, open_=True)),
        Param("degree", int, 8, "outbound peers per node (Bitcoin Core: 8)", _at_least(1)),
        Param("miners", int, 50, "nodes sharing the hash power equally (the first ones)", _at_least(1)),
    ),
    metrics=(
        Metric("stale_rate", "share of mined blocks outside node 0's final chain", proportion=("stale", "mined")),
        Metric("stale", "blocks outside node 0's final chain"),
        Metric("mined", "blocks mined"),
        Metric("height", "node 0's final height"),
        Metric("events", "simulator events"),
        Metric("messages", "messages sent"),
        Metric("virtual_s", "virtual seconds simulated"),
    ),
    run=_nakamoto,
    headline=("stale_rate", "height", "events"),
    plot=Plot(("stale_rate",), heatmap="stale_rate"),
)


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (SELFISH_MINING, DOUBLE_SPEND, STALE_RATE, REPLICATED, NAKAMOTO)}


def run(scenario: str, params: dict[str, Any], seed: int) -> dict[str, Any]:
    """One run: the scenario's metrics for ``params`` and ``seed``, as plain numbers."""
    sc = SCENARIOS[scenario]
    out = sc.run(seed, **params)
    for key, value in out.items():
        if isinstance(value, float) and not math.isfinite(value):
            out[key] = None
    return out
