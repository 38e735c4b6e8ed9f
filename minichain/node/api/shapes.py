"""The JSON shapes the API answers with: blocks, transactions, history entries, coins.

Hashes are shown in display (reversed) order, amounts in integer units.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

from minichain.chainstate.index import AddressCoin, BlockSummary, HistoryEntry
from minichain.core.block import Block
from minichain.core.chain import IndexEntry
from minichain.core.hashing import hash160
from minichain.core.keys import encode_address
from minichain.core.tx import OutPoint, Transaction
from minichain.node.view import NodeView

Spent = tuple[int, bytes] | None   # (value, pubkey hash) of the output an input spends, if known


def hx(h: bytes) -> str:
    """A hash in display (reversed) order."""
    return h[::-1].hex()


@functools.lru_cache(maxsize=1 << 16)
def address_text(pkh: bytes, version: int) -> str:
    """Base58Check of a pubkey hash, remembered: the same few addresses (miners, a busy
    wallet) come back on every page, and encoding one costs some 20 microseconds."""
    return encode_address(pkh, version)


def spent_outputs(view: NodeView, tx: Transaction) -> list[Spent]:
    """What the inputs of a transaction off the active chain (in the mempool, or in a
    stale block) spend, from the UTXO set, the mempool or the transaction index."""
    if tx.is_coinbase():
        return []
    out: list[Spent] = []
    for txin in tx.inputs:
        prev = txin.prevout
        coin = view.coin(prev)
        if coin is not None:
            out.append((coin.value, coin.pubkey_hash))
            continue
        parent = view.mempool_entry(prev.txid)
        found = (parent.tx, None) if parent is not None else view.transaction(prev.txid)
        if found is not None and prev.index < len(found[0].outputs):
            o = found[0].outputs[prev.index]
            out.append((o.value, o.pubkey_hash))
        else:
            out.append(None)
    return out


def tx_json(view: NodeView, tx: Transaction, spent: Sequence[Spent], block_height: int | None = None,
            block_hash: bytes | None = None) -> dict:
    version = view.params.address_version
    inputs = []
    for i, txin in enumerate(tx.inputs):
        if tx.is_coinbase():
            inputs.append({"coinbase": txin.signature.hex()})
            continue
        item: dict[str, Any] = {"txid": hx(txin.prevout.txid), "vout": txin.prevout.index}
        known = spent[i] if i < len(spent) else None
        if known is not None:
            item["address"] = address_text(known[1], version)
            item["value"] = known[0]
        elif txin.pubkey:
            item["address"] = address_text(hash160(txin.pubkey), version)
        inputs.append(item)
    out = {
        "txid": tx.txid_hex(),
        "size": tx.size,
        "coinbase": tx.is_coinbase(),
        "inputs": inputs,
        "outputs": [{"n": i, "value": o.value, "address": address_text(o.pubkey_hash, version)}
                    for i, o in enumerate(tx.outputs)],
        "locktime": tx.locktime,
        "hex": tx.serialize().hex(),
    }
    if block_height is not None:
        out["block_height"] = block_height
        out["block_hash"] = hx(block_hash) if block_hash else None
        out["confirmations"] = view.height - block_height + 1
    else:
        out["confirmations"] = 0
    return out


def block_json(view: NodeView, entry: IndexEntry, summary: BlockSummary | None = None,
               block: Block | None = None) -> dict:
    """A block's header fields and place in the tree; with ``summary`` (from the index) or
    ``block`` also its size, transaction count and miner. Transactions are added by the
    caller."""
    active = view.is_active(entry)
    h = entry.header
    out = {
        "hash": hx(entry.hash),
        "height": entry.height,
        "confirmations": view.height - entry.height + 1 if active else 0,
        "active": active,
        "status": entry.status.name.lower(),
        "version": h.version,
        "previous": hx(h.prev_hash) if entry.height else None,
        "merkle_root": hx(h.merkle_root),
        "time": h.time,
        "bits": f"{h.bits:08x}",
        "nonce": h.nonce,
        "chainwork": hex(entry.chainwork),
        "next": [hx(c.hash) for c in entry.children],
    }
    if summary is None and block is not None:
        coinbase = block.transactions[0].outputs if block.transactions else ()
        summary = BlockSummary(block.size, len(block.transactions), tuple((o.value, o.pubkey_hash) for o in coinbase))
    if summary is not None:
        out["size"] = summary.size
        out["tx_count"] = summary.tx_count
        if summary.miner:
            out["miner"] = address_text(summary.miner, view.params.address_version)
    return out


def history_json(tip: int, e: HistoryEntry) -> dict:
    return {"txid": e.txid[::-1].hex(), "height": e.height, "confirmations": tip - e.height + 1, "delta": e.delta}


def pending_history_json(txid: bytes, delta: int) -> dict:
    return {"txid": hx(txid), "height": None, "confirmations": 0, "delta": delta}


def coin_json(view: NodeView, tip: int, c: AddressCoin, spends: bool = True) -> dict:
    """``spends``: whether to ask the mempool if it spends the coin (not when it is empty)."""
    spent_by = view.mempool_spender(c.outpoint) if spends else None
    return {"txid": c.txid[::-1].hex(), "vout": c.vout, "value": c.value, "height": c.height,
            "confirmations": tip - c.height + 1, "coinbase": c.coinbase,
            "mature": not c.coinbase or tip + 1 - c.height >= view.params.coinbase_maturity,
            "spent_in_mempool": hx(spent_by) if spent_by else None}


def pending_coin_json(outpoint: OutPoint, value: int) -> dict:
    return {"txid": hx(outpoint.txid), "vout": outpoint.index, "value": value, "height": None,
            "confirmations": 0, "coinbase": False, "mature": True, "spent_in_mempool": None}
