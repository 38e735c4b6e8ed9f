"""The write-back layer (store/cached.py) and the chain state's flush policy.

The layer must read exactly like a store that took every batch at once, whatever is
pending and whatever was flushed; and a chain state that flushes every N blocks must
hold, in the store underneath, exactly the state of one of its earlier tips -- never
more than N blocks old -- with the UTXO set and indexes of that tip.
"""

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minichain import params
from minichain.chainstate import ChainState
from minichain.chainstate.index import SPACES
from minichain.chainstate.state import FlushPolicy
from minichain.core.tx import OutPoint
from minichain.core.validation import Coin
from minichain.store import MemoryStore, StoreBatch
from minichain.store.cached import CachedStore
from minichain.store.leveldb import LevelDBStore
from tests.chainbuilder import NOW, ChainBuilder
from tests.test_crash import seesaw

P = dataclasses.replace(params.regtest, coinbase_maturity=2)


def op(n, i=0):
    return OutPoint(n.to_bytes(32, "big"), i)


def coin(v):
    return Coin(v, bytes([v % 256]) * 20, v, False)


def snapshot(store):
    """Everything a store holds, as plain values."""
    return {
        "tip": store.get_tip(),
        "coins": list(store.iter_coins()),
        "blocks": {h: store.get_block(h) for h in sorted(store.iter_block_hashes())},
        "index": sorted((r.header.hash, r.serialize()) for r in store.iter_index()),
        "undo": {h: store.get_undo(h) for h in sorted(store.iter_undo_hashes())},
        "spaces": {space: list(store.iter_entries(space)) for space in SPACES},
    }


key_bytes = st.binary(min_size=0, max_size=3)
change = st.one_of(
    st.tuples(st.just("coin"), st.integers(0, 12), st.none() | st.integers(1, 99)),
    st.tuples(st.just("entry"), key_bytes, st.none() | st.binary(max_size=3)),
    st.tuples(st.just("undo"), st.integers(0, 5), st.none() | st.binary(min_size=1, max_size=3)),
    st.tuples(st.just("block"), st.integers(0, 5), st.binary(min_size=1, max_size=3)),
    st.tuples(st.just("tip"), st.integers(0, 5), st.none()),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(change, max_size=8), max_size=10), flush_after=st.sets(st.integers(0, 9)),
       prefix=st.binary(max_size=1), start=st.none() | key_bytes, stop=st.none() | key_bytes, reverse=st.booleans())
def test_the_layer_reads_like_a_store_that_took_every_batch(tmp_path_factory, batches, flush_after, prefix, start,
                                                           stop, reverse):
    """The same batches to a plain store and to the layer over LevelDB (flushed after some
    of them): every read agrees, range scans included, before and after a final flush."""
    plain = MemoryStore()
    cached = CachedStore(LevelDBStore(tmp_path_factory.mktemp("cached") / "db"))
    live = set()  # coins put and not deleted: the layer is only given BIP 30-respecting puts
    for n, changes in enumerate(batches):
        b = StoreBatch()
        for kind, k, v in changes:
            if kind == "coin":
                if v is None:
                    b.delete_coin(op(k))
                    live.discard(k)
                elif k not in live:
                    b.put_coin(op(k), coin(v))
                    live.add(k)
            elif kind == "entry":
                (b.delete_entry if v is None else lambda s, key, val=v: b.put_entry(s, key, val))("outputs", k)
            elif kind == "undo":
                b.undo[bytes([k]) * 32] = v
            elif kind == "block":
                b.put_block(bytes([k]) * 32, v)
            else:
                b.set_tip(bytes([k]) * 32)
        plain.write(b)
        cached.write(b)
        if n in flush_after:
            cached.flush()
        assert list(cached.iter_entries("outputs", prefix, start=start, stop=stop, reverse=reverse)) == \
            list(plain.iter_entries("outputs", prefix, start=start, stop=stop, reverse=reverse))
    assert snapshot(cached) == snapshot(plain)
    for k in range(13):
        assert cached.get_coin(op(k)) == plain.get_coin(op(k))
    cached.flush()
    assert not cached.dirty
    assert snapshot(cached.base) == snapshot(plain)
    cached.close()


def test_a_coin_created_and_spent_between_flushes_never_reaches_the_store():
    base = MemoryStore()
    cached = CachedStore(base)
    b = StoreBatch()
    b.put_coin(op(1), coin(1))
    b.put_coin(op(2), coin(2))
    cached.write(b)
    cached.flush()
    b = StoreBatch()
    b.put_coin(op(3), coin(3))   # fresh
    cached.write(b)
    b = StoreBatch()
    b.delete_coin(op(3))          # spent in the window: nothing to write
    b.delete_coin(op(1))          # spent, was flushed: a delete
    cached.write(b)
    assert dict(cached._pending.coins) == {op(1): None}
    cached.flush()
    assert dict(base.iter_coins()) == {op(2): coin(2)}


def test_an_unflushed_layer_leaves_the_store_as_it_was_at_the_last_flush():
    base = MemoryStore()
    cached = CachedStore(base)
    b = StoreBatch()
    b.set_tip(b"\x01" * 32)
    b.put_entry("tx", b"a", b"1")
    cached.write(b)
    cached.flush()
    b = StoreBatch()
    b.set_tip(b"\x02" * 32)
    b.delete_entry("tx", b"a")
    cached.write(b)
    assert cached.get_tip() == b"\x02" * 32 and cached.get_entry("tx", b"a") is None
    assert base.get_tip() == b"\x01" * 32 and base.get_entry("tx", b"a") == b"1"
    assert base.writes == 1


# -- the chain state with a flush window --------------------------------------------------------


def state_of(store):
    return store.get_tip(), dict(store.iter_coins()), {space: dict(store.iter_entries(space)) for space in SPACES}


class RecordingStore(MemoryStore):
    """Remembers the state after every batch that moved the tip, in order."""

    def __init__(self):
        super().__init__()
        self.tips = []
        self.states = {}

    def write(self, batch):
        super().write(batch)
        if batch.tip is not None:
            self.tips.append(batch.tip)
            self.states[batch.tip] = state_of(self)  # a tip's UTXO set and indexes are a function of the tip


@pytest.mark.parametrize("window", [2, 5, 13])
def test_a_chain_state_with_a_window_flushes_only_whole_tips_and_at_most_window_blocks_apart(window):
    """The seesaw of reorganisations, delivered block by block: after every call the
    store underneath holds exactly the state an every-batch chain state had at one of
    the tips it passed through (mid-reorganisation included), no more than ``window``
    connects and disconnects ago; the layer reads exactly like the every-batch
    reference; closing flushes the rest."""
    _, blocks = seesaw(seed=window, rounds=12)
    recorder = RecordingStore()
    reference = ChainState(recorder, P)
    base = MemoryStore()
    state = ChainState(base, P, flush=FlushPolicy(blocks=window, at_tip=False))
    flushes = 0
    for blk in blocks:
        r = reference.accept_block(blk, NOW)
        got = state.accept_block(blk, NOW)
        assert (got.status, got.tip) == (r.status, r.tip)
        assert state_of(state.store) == state_of(recorder)
        flushed_tip = base.get_tip()
        assert state_of(base) == recorder.states[flushed_tip]
        # The flushed tip is among the last ``window`` moves (connects and disconnects).
        assert flushed_tip in recorder.tips[-window:] or flushed_tip == recorder.tips[-1]
        assert state.unflushed_blocks < window
        flushes = state.store.flushes
    assert flushes >= len(recorder.tips) // window - 1  # it did flush along the way
    assert state.verify().ok
    state.flush()
    assert state_of(base) == state_of(recorder)


def test_at_tip_flushes_every_block_once_caught_up_and_not_before():
    """Headers first: while blocks below the best header arrive nothing is written until
    the window fills; the block that reaches the best header is written at once."""
    b = ChainBuilder(P, seed=3)
    blocks = b.chain(None, 12, n_txs=1)
    base = MemoryStore()
    state = ChainState(base, P, flush=FlushPolicy(blocks=5))
    for blk in blocks:
        state.accept_header(blk.header, NOW)
    writes = base.writes
    heights = []
    for blk in blocks:
        state.accept_block(blk, NOW)
        heights.append((state.height, base.get_tip() == state.tip.hash, base.writes - writes))
    assert [h for h, flushed, _ in heights if flushed] == [5, 10, 12]
    assert heights[-1][2] == 3  # three batches in all, headers included in the first
    more = b.block(blocks[-1], n_txs=1)
    state.accept_block(more, NOW)  # caught up: written before the call returns
    assert base.get_tip() == more.hash


def test_the_periodic_flush_follows_the_callers_clock():
    b = ChainBuilder(P, seed=4)
    blocks = b.chain(None, 4)
    base = MemoryStore()
    state = ChainState(base, P, flush=FlushPolicy(blocks=100, seconds=30, at_tip=False))
    state.accept_block(blocks[0], NOW)
    state.accept_block(blocks[1], NOW + 10)
    assert base.get_tip() == state.genesis.hash
    state.accept_block(blocks[2], NOW + 31)
    assert base.get_tip() == blocks[2].hash


def test_assume_valid_skips_signatures_only_below_the_named_block_in_the_best_header_chain():
    """A block whose signature is wrong connects when it is an ancestor of the
    assume-valid hash (and is refused without it, or above it)."""
    b = ChainBuilder(P, seed=5)
    trunk = b.chain(None, 4, coinbase_outputs=2)
    (tx,) = b.random_txs(trunk[-1].hash, 1)
    # A canonical signature, but over another digest: only the curve check can tell.
    forged_input = dataclasses.replace(tx.inputs[0], signature=b.keys[0].sign(b"\x11" * 32))
    bad = b.block(trunk[-1], txs=[dataclasses.replace(tx, inputs=(forged_input,))])
    after = b.chain(bad, 2)

    plain = ChainState(MemoryStore(), P)
    for blk in trunk + [bad]:
        plain.accept_block(blk, NOW)
    assert plain.tip.hash == trunk[-1].hash  # refused: mandatory-script-verify-flag-failed

    trusting = ChainState(MemoryStore(), P, assume_valid=after[0].hash)
    for blk in trunk + [bad] + after:
        trusting.accept_header(blk.header, NOW)
    for blk in trunk + [bad] + after:
        trusting.accept_block(blk, NOW)
    assert trusting.tip.hash == after[-1].hash
    assert trusting.assumed_valid_blocks == len(trunk) + 2  # up to the named block, not after it
    assert not trusting.verify().ok  # a full verify still checks every signature

    unknown = ChainState(MemoryStore(), P, assume_valid=b"\x42" * 32)  # not in the tree: check everything
    for blk in trunk + [bad]:
        unknown.accept_block(blk, NOW)
    assert unknown.tip.hash == trunk[-1].hash and unknown.assumed_valid_blocks == 0
