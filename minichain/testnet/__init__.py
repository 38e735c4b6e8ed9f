"""The local testnet: real node processes on 127.0.0.1, supervised from the command line.

    topology.py   who links to whom, hash-power shares as duty cycles, partition groups (pure)
    spec.py       the network to start, from options and a description file (testnet/*.json|toml)
    state.py      DIR/testnet.json: pids, ports, wallets, the partition; and DIR/.lock
    process.py    detached node processes: spawn, read the ready line, alive?, stop
    network.py    up (start, link, mine, sync -- or tear down), down, status, partition, heal
    demo.py       the double spend, played on four processes and told step by step
    workload.py   clients paying at a steady rate, every step written to the history
    nemesis.py    a seeded schedule of partitions, crashes and pauses
    check.py      the history against what the nodes or replicas committed (history/checker.py)
    calibrate.py  one scenario in the simulator and on real processes, side by side
    observer.py   how the supervisor reports progress (the CLI draws it with rich)

Everything here talks to nodes through their REST API (``wallet/client.py``), as a
user's scripts would; nothing reaches into a node's process. With ``--engine`` the
processes are consensus replicas (``minichain/replica/``) with an API of the same shape;
``check`` also reads their decision logs from disk.
"""
