"""The miner: templates the chain state accepts, work replaced promptly, a prompt stop."""

import statistics
import threading
import time

import pytest

from minichain import params
from minichain.core.keys import PrivateKey
from minichain.core.pow import check_proof_of_work
from minichain.core.validation import block_subsidy
from minichain.mining.miner import NONCE_SPACE, Miner
from minichain.mining.template import BlockTemplate, build_template
from minichain.chainstate import Mempool
from minichain.chainstate import BlockStatus, ChainState
from minichain.store.memory import MemoryStore

P = params.testnet
PKH = PrivateKey(99).public_key.hash160()


def impossible(template: BlockTemplate) -> BlockTemplate:
    """The same work with a target no hash meets: the miner hashes until told otherwise."""
    return BlockTemplate(template.block, template.height, 0, template.fees, template.max_time)


def test_testnet_miner_produces_blocks_the_chain_state_connects():
    chain = ChainState(MemoryStore(), P)
    found: list = []
    done = threading.Event()

    def on_found(block):
        found.append(block)
        done.set()

    miner = Miner(threads=2, on_found=on_found)
    try:
        for height in range(1, 4):
            done.clear()
            now = P.genesis_time + 5 * height
            miner.set_work(build_template(chain, Mempool(P), PKH, now, extra_nonce=height))
            assert done.wait(60), f"no block at height {height}"
            block = found[-1]
            assert check_proof_of_work(block.header, P)
            result = chain.accept_block(block, now)
            assert result.status is BlockStatus.CONNECTED, result
            assert chain.height == height
            coinbase = block.transactions[0]
            assert coinbase.coinbase_height() == height
            assert coinbase.outputs[0].value == block_subsidy(height, P)
            assert coinbase.outputs[0].pubkey_hash == PKH
    finally:
        miner.stop()
    assert miner.found == 3 and miner.hashes > 0


def _median_latency(trials: int, action) -> float:
    return statistics.median(action() for _ in range(trials))


def test_stop_takes_effect_within_100ms():
    chain = ChainState(MemoryStore(), P)
    template = impossible(build_template(chain, None, PKH, P.genesis_time + 10))

    def one() -> float:
        miner = Miner(threads=2)
        miner.set_work(template)
        time.sleep(0.15)
        began = time.perf_counter()
        miner.stop()
        took = time.perf_counter() - began
        assert not miner.running
        return took

    assert _median_latency(5, one) < 0.1


def test_new_work_replaces_stale_work_within_100ms():
    chain = ChainState(MemoryStore(), P)
    stale = impossible(build_template(chain, None, PKH, P.genesis_time + 10, extra_nonce=1))
    fresh = build_template(chain, None, PKH, P.genesis_time + 10, extra_nonce=2)
    # Everything meets this target: the first nonce tried on the fresh work wins.
    fresh = BlockTemplate(fresh.block, fresh.height, (1 << 256) - 1, fresh.fees, fresh.max_time)
    found = []
    event = threading.Event()
    miner = Miner(threads=2, on_found=lambda b: (found.append((time.perf_counter(), b)), event.set()))
    try:
        def one() -> float:
            event.clear()
            miner.set_work(stale)
            time.sleep(0.1)
            began = time.perf_counter()
            miner.set_work(fresh)
            assert event.wait(5)
            return found[-1][0] - began

        assert _median_latency(5, one) < 0.1
        assert all(b.header.merkle_root == fresh.header.merkle_root for _, b in found)
    finally:
        miner.stop()


def test_exhausted_nonces_roll_the_time_then_wait_for_new_work():
    chain = ChainState(MemoryStore(), P)
    base = build_template(chain, None, PKH, P.genesis_time + 10)
    t0 = base.header.time
    template = BlockTemplate(base.block, base.height, 0, 0, max_time=t0 + 1)
    miner = Miner(threads=1)
    try:
        miner.set_work(template)
        with miner._cond:
            miner._next_nonce = NONCE_SPACE - 5000   # pretend most of the range is done
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and miner._time == t0:
            time.sleep(0.01)
        assert miner._time == t0 + 1   # rolled one second forward
        with miner._cond:
            miner._next_nonce = NONCE_SPACE - 5000
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and miner._template is not None:
            time.sleep(0.01)
        assert miner._template is None  # max_time reached: idle until the node sends work
        assert miner._time == t0 + 1
    finally:
        miner.stop()


def test_template_takes_mempool_fees_and_respects_median_time_past():
    from tests.test_mempool import ALICE, Chain, spend

    view = Chain()
    (coin,) = view.fund(ALICE, 10_000)
    pool = Mempool(P)
    tx = spend(ALICE, [coin], [9_000])
    pool.add(tx, view, 0)
    chain = ChainState(MemoryStore(), P)
    t = build_template(chain, pool, PKH, now=0)  # a clock far behind the chain
    assert t.block.header.time == chain.tree.median_time_past(chain.tip) + 1
    assert t.fees == 1_000 and t.block.transactions[1] == tx
    assert t.block.transactions[0].outputs[0].value == block_subsidy(1, P) + 1_000
    assert t.block.compute_merkle_root() == (t.block.header.merkle_root, False)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        Miner(threads=0)
    with pytest.raises(ValueError):
        Miner(threads=1, duty=0)


def test_one_template_yields_one_block_even_when_every_thread_finds_one(monkeypatch):
    from minichain.mining import miner as miner_module

    chain = ChainState(MemoryStore(), P)
    template = build_template(chain, None, PKH, P.genesis_time + 10)
    threads = 4
    barrier = threading.Barrier(threads, timeout=5)

    def every_thread_wins_at_once(header76, target, start, count):
        barrier.wait()   # all threads hold a chunk of the same work, then all "find" a nonce
        return start

    monkeypatch.setattr(miner_module.kernel, "scan", every_thread_wins_at_once)
    found = []
    miner = Miner(threads=threads, on_found=found.append)
    try:
        miner.set_work(template)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not found:
            time.sleep(0.01)
        time.sleep(0.2)
    finally:
        barrier.abort()  # release any thread that claimed more work after the find
        miner.stop()
    assert len(found) == 1 and miner.found == 1
