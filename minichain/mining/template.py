"""Block templates: the block a miner hashes, built from the chain tip and the mempool.

Bitcoin: BlockAssembler::CreateNewBlock. The coinbase pays the subsidy plus every fee
to the miner's address and commits to the height (BIP 34) and an extra nonce, so two
templates with different extra nonces have different Merkle roots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from minichain.core.block import Block, BlockHeader
from minichain.core.hashing import merkle_root
from minichain.core.pow import bits_to_target
from minichain.core.tx import TxOut, make_coinbase
from minichain.core.validation import block_subsidy

if TYPE_CHECKING:
    from minichain.chainstate import Mempool
    from minichain.chainstate import ChainState

BLOCK_VERSION = 0x20000000        # Bitcoin: BIP 9 top bits, no deployments signalled
COINBASE_RESERVE = 1_000          # bytes kept free for the header and the coinbase
COINBASE_MESSAGE = b"/minichain/"


@dataclass(frozen=True)
class BlockTemplate:
    block: Block          # nonce 0: the miner only changes the nonce and, if it must, the time
    height: int
    target: int
    fees: int
    max_time: int         # the time field may be rolled up to here (the future-time limit)

    @property
    def header(self) -> BlockHeader:
        return self.block.header

    def with_header(self, header: BlockHeader) -> Block:
        return Block(header, self.block.transactions)


def build_template(chain: "ChainState", mempool: "Mempool | None", pubkey_hash: bytes, now: int,
                   extra_nonce: int = 0) -> BlockTemplate:
    params = chain.params
    tree = chain.tree
    tip = chain.tip
    height = tip.height + 1
    bits = tree.next_bits(tip)
    # Bitcoin: UpdateTime -- never at or below median-time-past, otherwise the clock.
    time = max(tree.median_time_past(tip) + 1, now)
    entries = mempool.select(params.max_block_size - COINBASE_RESERVE) if mempool is not None else []
    fees = sum(e.fee for e in entries)
    coinbase = make_coinbase(height, [TxOut(block_subsidy(height, params) + fees, pubkey_hash)],
                             extra_nonce=extra_nonce, message=COINBASE_MESSAGE)
    txs = (coinbase, *(e.tx for e in entries))
    root, _ = merkle_root([tx.txid for tx in txs])
    header = BlockHeader(BLOCK_VERSION, tip.hash, root, time, bits, 0)
    return BlockTemplate(Block(header, txs), height, bits_to_target(bits), fees,
                         now + params.max_future_block_time - 60)
