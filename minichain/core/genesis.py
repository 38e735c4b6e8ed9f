"""The genesis block of each network, built from its parameters (Bitcoin: CreateGenesisBlock).

The genesis block is fixed by ``params``: a coinbase at height 0 whose data carries the
network's ``genesis_message``, paying the initial subsidy to :data:`GENESIS_PUBKEY_HASH`
(twenty zero bytes, a hash nobody has a key for), and a header with the network's
``genesis_time``, ``genesis_bits`` and ``genesis_nonce``. The nonce was found once with
:func:`find_genesis_nonce` and written into ``params.py``; the tests check that the
header it gives meets its own proof of work.

As in Bitcoin, the genesis coinbase is never added to the UTXO set: its output cannot be
spent (Bitcoin: the genesis block is not connected by ConnectBlock, its coins never
entered the database).

``main`` has no minichain genesis: our transaction format has no scripts, so Bitcoin's
genesis block (whose coinbase holds a script and a 65-byte uncompressed key) cannot be
expressed, and its header would not commit to our coinbase. ``main`` exists only to
check real Bitcoin headers and difficulty.
"""

from __future__ import annotations

from minichain.core.block import Block, BlockHeader
from minichain.core.hashing import merkle_root
from minichain.core.pow import check_proof_of_work
from minichain.core.tx import TxOut, make_coinbase
from minichain.params import Params

GENESIS_VERSION = 1
GENESIS_PUBKEY_HASH = b"\x00" * 20


class NoGenesisError(ValueError):
    """The network has no minichain genesis block (``main``)."""


def _unmined_genesis(params: Params) -> Block:
    if params.name == "main":
        raise NoGenesisError(
            "network 'main' has no minichain genesis block: Bitcoin's genesis coinbase uses a "
            "script our transaction format cannot express; 'main' only checks real Bitcoin "
            "headers. Use 'testnet' or 'regtest'."
        )
    coinbase = make_coinbase(0, [TxOut(params.initial_subsidy, GENESIS_PUBKEY_HASH)], message=params.genesis_message)
    root, _ = merkle_root([coinbase.txid])
    header = BlockHeader(GENESIS_VERSION, b"\x00" * 32, root, params.genesis_time, params.genesis_bits, params.genesis_nonce)
    return Block(header, (coinbase,))


def genesis_block(params: Params) -> Block:
    """The network's genesis block; raises :class:`NoGenesisError` for ``main``.

    Raises ValueError if ``params.genesis_nonce`` does not satisfy the proof of work
    (the parameters and this function disagree: re-run :func:`find_genesis_nonce`).
    """
    block = _unmined_genesis(params)
    if not check_proof_of_work(block.header, params):
        raise ValueError(
            f"genesis_nonce {params.genesis_nonce} of network {params.name!r} does not meet "
            f"its target; find_genesis_nonce(params) gives a valid one"
        )
    return block


def find_genesis_nonce(params: Params) -> int:
    """Search nonces from 0 for the first one whose genesis header meets its target.

    Run once per network when the genesis format changes; the result goes into params.py.
    """
    header = _unmined_genesis(params).header
    for nonce in range(1 << 32):
        if check_proof_of_work(header.with_nonce(nonce), params):
            return nonce
    raise ValueError("no nonce satisfies the genesis target")  # pragma: no cover
