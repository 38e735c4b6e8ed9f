"""A Byzantine strategy search in the spirit of Twins, for every engine.

The built-in Byzantine behaviours of the engines (``equivocate``, ``double-vote``,
``withhold``, ``lie``, ``silent``) are what their authors thought of; they found none of the
defects of issue 21. This package looks for the attacks nobody wrote down:

* ``host.py`` -- a faulty replica made of *honest* engines: two copies with one identity
  on two sides of the network (Twins, Bano et al., OPODIS 2021), and seeded per-window
  strategies that withhold, delay, replay and mix messages;
* ``scenario.py`` -- one run drawn from a seed: who is faulty (and so which views, rounds
  and phases the attacker leads), how, the network before GST as a sequence of splits,
  double spends across the split; judged for safety and for liveness after GST;
* ``search.py`` -- many seeds, the smallest failing one with its replay command, the story
  of one run, and every engine's claim checked at ``f`` and ``f + 1``;
* ``faultmix.py`` -- the seeded mix of ordinary faults with the engines' own behaviours
  (the liveness check of the tests and of ``benchmarks/adversary.py``).

``minichain sim adversary --engine E --faulty K --runs N`` is the command line.
"""

from minichain.sim.adversary.host import ByzantineHost, Strategy, ToCopy
from minichain.sim.adversary.scenario import HORIZON, Outcome, Scenario, draw, run
from minichain.sim.adversary.search import (
    DEFAULT_RUNS, ENGINES, AdversaryError, Finding, SearchReport, claims, engine_spec, faulty_count, search, trace,
)

__all__ = [
    "ByzantineHost", "Strategy", "ToCopy", "HORIZON", "Outcome", "Scenario", "draw", "run",
    "DEFAULT_RUNS", "ENGINES", "AdversaryError", "Finding", "SearchReport", "claims", "engine_spec",
    "faulty_count", "search", "trace",
]
