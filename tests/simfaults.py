"""A seeded mix of faults for the BFT engines' safety runs (shared by their test files)."""

import random

from minichain.sim import Exponential, Network, Simulation
from minichain.sim.workload import schedule_payments


def random_fault_run(build, seed, n=4):
    """Up to f Byzantine replicas, loss, duplication, reordering, a partition that heals,
    a crash that recovers; ``build(ctx, behaviour)`` makes each replica."""
    rnd = random.Random(seed)
    f = (n - 1) // 3
    behaviours = {b: rnd.choice(["silent", "equivocate", "double-vote", "withhold"]) for b in rnd.sample(range(n), f)}
    net = Network(Exponential(0.05, 0.01), loss=rnd.choice([0.0, 0.01, 0.1, 0.3]), fifo=rnd.random() < 0.5,
                  duplicate=rnd.choice([0.0, 0.05]))
    sim = Simulation(n, lambda ctx: build(ctx, behaviours.get(ctx.node_id)), seed=seed, network=net)
    schedule_payments(sim, 20, 0.2, start=0.5)
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
    sim.run(until=60.0)
    return sim
