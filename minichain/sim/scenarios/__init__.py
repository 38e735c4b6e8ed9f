"""Experiments: each scenario is a function of a seed and parameters returning a JSON-ready
dict (always carrying the seed), and a ``minichain sim SCENARIO`` command (``cli/sim.py``).

* ``double_spend``   -- attacker share q against a merchant waiting z confirmations
* ``partition``      -- a network split and healed: forks, orphans, reversed payments
* ``selfish_mining`` -- Eyal and Sirer's pool strategy and its revenue
* ``stale_rate``     -- orphaned blocks against block interval and propagation delay
"""
