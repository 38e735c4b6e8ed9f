"""The local testnet: real node processes on 127.0.0.1, supervised from the command line.

    topology.py   who links to whom, hash-power shares as duty cycles, partition groups (pure)
    spec.py       the network to start, from options and a description file (testnet/*.json|toml)
    state.py      DIR/testnet.json: pids, ports, wallets, the partition; and DIR/.lock
    process.py    detached node processes: spawn, read the ready line, alive?, stop
    network.py    up (start, link, mine, sync -- or tear down), down, status, partition, heal
    demo.py       the double spend, played on four processes and told step by step
    observer.py   how the supervisor reports progress (the CLI draws it with rich)

Everything here talks to nodes through their REST API (``wallet/client.py``), as a
user's scripts would; nothing reaches into a node's process.
"""
