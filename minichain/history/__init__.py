"""Client histories and the checks run on them, for replicas and Nakamoto nodes alike.

    records.py        the history file: invoke/ok/fail/info and nemesis events, as JSON lines
    linearizable.py   Wing & Gong's linearizability search with Lowe's memoisation
    checker.py        agreement, double spends, durability, linearizability against the committed logs
    chain.py          the Nakamoto version: payments acknowledged at k confirmations, later reversed

Pure functions over data: the testnet (``testnet/check.py``) reads the files and the
nodes, and hands them here.
"""
