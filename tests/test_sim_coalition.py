"""Colluding Byzantine replicas (engines/coalition.py): who an equivocator sends which value."""

from minichain.sim.engines import load_registry
from minichain.sim.engines.coalition import split_honest
from minichain.sim.scenarios import replicated


def test_n4_liars_0_and_1_deal_honest_2_and_3_to_different_sides():
    assert split_honest([1, 2, 3], frozenset({0, 1})) == ([2], [3])      # as replica 0 sees it
    assert split_honest([0, 2, 3], frozenset({0, 1})) == ([2], [3])      # as replica 1 sees it


def test_liars_anywhere_are_left_out_and_the_rest_alternate():
    assert split_honest([0, 1, 3, 4, 5, 6], frozenset({2, 5})) == ([0, 3, 6], [1, 4])
    assert split_honest([1, 2, 3]) == ([1, 3], [2])                      # told nothing


def test_the_harness_tells_only_byzantine_replicas_of_engines_that_take_a_coalition():
    told = {}
    spec = load_registry()["raft"]

    def build(ctx, behaviour, **kwargs):
        told[ctx.node_id] = kwargs.get("coalition")
        return spec.build(ctx, behaviour, **kwargs)

    fake = replicated.EngineSpec("raft-spy", spec.family, spec.fault_model, spec.max_faults, build,
                                 spec.behaviours, coalition=True)
    replicated.run(fake, "byzantine", n=5, seed=1, faulty=2, behaviour="equivocate", duration=3.0)
    assert told == {0: frozenset({0, 1}), 1: frozenset({0, 1}), 2: None, 3: None, 4: None}
    assert not load_registry()["pbft"].coalition        # its build takes no coalition
