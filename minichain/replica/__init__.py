"""The consensus engines of the simulator as real processes: one replica per process.

    host.py      the IO shell of one replica: links, timers, persist-then-send, restart
    wire.py      the replica frames on the node's framing, with pairwise MACs
    codec.py     the engines' messages as bounded JSON, by an explicit class registry
    keys.py      pairwise link keys, one key file per replica
    durable.py   the engine state and the decision log on disk (atomic, fsynced)
    ledger.py    the committed log as clients see it (payments, coins, the prefix)
    adapter.py   view/term/round and leader, read from each engine for ``status``
    api.py       the replica's REST API (status, log, submit, control)
    __main__.py  ``python -m minichain.replica``: what ``testnet up --engine`` starts

The engines are the simulator's own classes, built with the same ``build`` functions
(``sim/engines/``); nothing here changes how they decide.
"""
