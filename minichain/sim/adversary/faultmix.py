"""A seeded mix of ordinary faults with at most ``f`` Byzantine replicas: the liveness check.

Each seed draws, with one ``random.Random(seed)``: up to ``f`` replicas running one of the
engine's built-in Byzantine behaviours, a loss rate (0 to 30%), duplication, reordering,
sometimes a partition that heals and sometimes a crash that recovers. Every fault but the
Byzantine replicas and the loss is over by :data:`FAULTS_OVER` seconds, so a run until
``until`` has ``until - FAULTS_OVER`` seconds after the last heal: the partial-synchrony
liveness claim (after GST, every request is committed) is checked by asking that every
honest replica committed every payment by then.

The test suites run a few hundred seeds (``tests/simfaults.py``); ``python -m
benchmarks.adversary --mixes`` runs ten thousand per engine.
"""

from __future__ import annotations

import random
from typing import Callable, Sequence

from minichain.sim.engine import Engine, NodeContext
from minichain.sim.network import Exponential, Network
from minichain.sim.simulator import Simulation
from minichain.sim.workload import Payment, schedule_payments

PAYMENTS = 20
BEHAVIOURS = ("silent", "equivocate", "double-vote", "withhold")
FAULTS_OVER = 12.0      # the last partition heals and the last crashed replica recovers by then


def random_fault_run(build: Callable[[NodeContext, "str | None"], Engine], seed: int, n: int = 4,
                     until: float = 60.0, behaviours: Sequence[str] = BEHAVIOURS) -> Simulation:
    """One seeded run: ``build(ctx, behaviour)`` makes each replica (``behaviour`` None for
    the honest ones). The same seed draws the same faults whatever ``until`` is."""
    rnd = random.Random(seed)
    f = (n - 1) // 3
    byzantine = {b: rnd.choice(list(behaviours)) for b in rnd.sample(range(n), f)}
    net = Network(Exponential(0.05, 0.01), loss=rnd.choice([0.0, 0.01, 0.1, 0.3]), fifo=rnd.random() < 0.5,
                  duplicate=rnd.choice([0.0, 0.05]))
    sim = Simulation(n, lambda ctx: build(ctx, byzantine.get(ctx.node_id)), seed=seed, network=net)
    schedule_payments(sim, PAYMENTS, 0.2, start=0.5)
    if rnd.random() < 0.6:
        nodes = list(range(n))
        rnd.shuffle(nodes)
        k = rnd.randint(1, n - 1)
        t0 = rnd.uniform(1, 4)
        sim.at(t0, net.partition, [nodes[:k], nodes[k:]])
        sim.at(t0 + rnd.uniform(2, 8), net.heal)
    if rnd.random() < 0.3:
        c = rnd.randrange(n)
        t0 = rnd.uniform(0, 4)
        sim.at(t0, sim.crash, c)
        sim.at(t0 + rnd.uniform(1, 4), sim.recover, c)
    sim.run(until=until)
    return sim


def committed_counts(sim: Simulation) -> list[int]:
    """How many payments each honest replica committed, in ``sim.honest`` order."""
    return [sum(isinstance(v, Payment) for v in sim.decisions.latest[i].values()) for i in sim.honest]


def every_honest_replica_committed_all(sim: Simulation) -> bool:
    return all(c == PAYMENTS for c in committed_counts(sim))
