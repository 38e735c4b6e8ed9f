"""The wallet: keys on the client side, the chain on the node.

    amounts.py     coins as typed ("1.5") <-> integer units, exactly
    keyfile.py     the 0600 key file: one seed, deterministic keys, counters, a checksum
    encryption.py  the seed sealed under a passphrase: scrypt, then ChaCha20-Poly1305
    coinselect.py  which coins pay for a transaction, and its fee (pure)
    client.py      a synchronous client for a node's REST API, with plain-language errors
    wallet.py      balance, history, coins and send: key file + client

The node never sees a private key: the wallet asks it public questions about its
addresses and hands it signed transactions.
"""
