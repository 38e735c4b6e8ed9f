"""Crash safety with real processes: SIGKILL a child while it connects and reorganises.

The workload is a "seesaw": two branches off a common trunk that take turns to
overtake each other, so almost all of the child's time goes into ever deeper
reorganisations (disconnect with undo data, connect the other branch), and the two
branches spend the same trunk coins (double spends undone and redone all the time).

The child reports ``BEGIN tip`` before and ``DONE tip`` after each batch that moves
the tip (see tests/crash_child.py). After each kill the parent reopens the store and
checks that ``verify`` passes (the UTXO set, the undo data and the transaction and address
indexes are exactly what the stored blocks of the active chain give: the indexes are
compared with a full rebuild) and that the stored tip is the last tip reported DONE
-- or the tip of the batch announced by a final BEGIN, whose commit may have completed
just before the kill. That is stricter than "one of the tips reported": the store may
not fall back to an older tip either. Then a new child resumes on the same directory.

Half the runs fsync every batch (``sync=True``), which makes the commit take long
enough that many kills land between BEGIN and DONE. Half the runs keep up to 4 or 16
connects and disconnects in memory and write them as one batch (the chain state's flush
window, as a syncing node does): the child then also reports ``MOVED tip`` for every
move in memory, and after the kill at most the window's moves since the last flush may
be lost -- never more, and never the consistency above. When the kills are done, a last
child runs to the end and the store must hold exactly the tip, UTXO set and index rows
that an uninterrupted in-memory run gives.

Seeded: set MINICHAIN_CRASH_SEED to replay a run; the seed is printed. (Kill timing
is wall-clock, so a replay repeats the workload and delays, not every kill instant.)
"""

import dataclasses
import os
import random
import signal
import struct
import subprocess
import sys
import time

import pytest

from minichain import params
from minichain.chainstate.index import SPACES
from minichain.store import MemoryStore
from minichain.chainstate import ChainState
from minichain.store.leveldb import LevelDBStore
from tests.chainbuilder import NOW, ChainBuilder

MATURITY = 2
P = dataclasses.replace(params.regtest, coinbase_maturity=MATURITY)
CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crash_child.py")
MIN_KILLS = 25


def seesaw(seed: int, rounds: int):
    b = ChainBuilder(P, seed=seed)
    trunk = b.chain(None, 6, n_txs=2, coinbase_outputs=3)
    tips = {"a": trunk[-1], "b": trunk[-1]}
    lengths = {"a": 0, "b": 0}
    blocks = list(trunk)
    turn = "a"
    for _ in range(rounds):
        target = max(lengths.values()) + 1
        while lengths[turn] < target:
            blk = b.block(tips[turn], n_txs=b.rng.randrange(1, 4), coinbase_outputs=2)
            blocks.append(blk)
            tips[turn] = blk
            lengths[turn] += 1
        turn = "b" if turn == "a" else "a"
    return b, blocks


def parse_report(path):
    """(tips reported DONE in order, tip of a BEGIN left without its DONE, saw READY,
    saw FINISHED, moves in memory reported since the last DONE)."""
    done, pending, ready, finished, moved = [], None, False, False, 0
    with open(path) as f:
        for line in f:
            if not line.endswith("\n"):
                break  # a torn last line: ignore it
            word, _, arg = line.strip().partition(" ")
            if word == "READY":
                ready = True
            elif word == "BEGIN":
                pending = bytes.fromhex(arg)
            elif word == "DONE":
                assert bytes.fromhex(arg) == pending, "DONE without its BEGIN"
                done.append(pending)
                pending = None
                moved = 0
            elif word == "MOVED":
                moved += 1
            elif word == "FINISHED":
                finished = True
    return done, pending, ready, finished, moved


def stored_tip(datadir):
    if not os.path.exists(datadir):
        return None
    with LevelDBStore(datadir) as store:
        return store.get_tip()


def check_store(datadir):
    with LevelDBStore(datadir) as store:
        state = ChainState(store, P)
        report = state.verify()
        assert report.ok, str(report)
        return state.tip.hash, dict(store.iter_coins()), index_rows(store)


def index_rows(store):
    return {space: dict(store.iter_entries(space)) for space in SPACES}


@pytest.mark.slow
def test_sigkill_at_random_moments_never_loses_or_corrupts_the_chain(tmp_path):
    seed = int(os.environ.get("MINICHAIN_CRASH_SEED", random.SystemRandom().randrange(2**32)))
    print(f"crash test seed: MINICHAIN_CRASH_SEED={seed}")
    rng = random.Random(seed)
    builder, blocks = seesaw(seed, rounds=120)
    blockfile = tmp_path / "blocks.bin"
    with open(blockfile, "wb") as f:
        for blk in blocks:
            raw = blk.serialize()
            f.write(struct.pack("<I", len(raw)) + raw)
    reference = ChainState(MemoryStore(), P)
    for blk in blocks:
        reference.accept_block(blk, NOW)
    expected = reference.tip.hash, dict(reference.store.iter_coins()), index_rows(reference.store)

    kills = mid_commit = episodes = finished_runs = 0
    unflushed_kills = []  # for kills of a windowed child: the moves in memory it lost
    deadline = time.monotonic() + 50
    datadir, last_tip, run = None, None, 0

    def start_run(kill: bool):
        """One child on ``datadir``; killed after a random delay if ``kill``. Returns whether it was killed."""
        nonlocal last_tip, run, kills, mid_commit
        run += 1
        reportfile = tmp_path / f"report{run}.txt"
        sync = rng.choice(["sync", "nosync"])
        window = rng.choice([1, 1, 4, 16])
        child = subprocess.Popen(
            [sys.executable, CHILD, datadir, str(blockfile), str(reportfile), str(MATURITY), sync, str(window)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        try:
            # Wait until the child has done its imports, then let it work for a random while.
            t0 = time.monotonic()
            while not (reportfile.exists() and "READY" in reportfile.read_text()) and child.poll() is None:
                assert time.monotonic() - t0 < 30, "child never got ready"
                time.sleep(0.005)
            if kill:
                time.sleep(rng.choice([0.0, rng.uniform(0, 0.05), rng.uniform(0, 0.5)]))
            killed = kill and child.poll() is None
            if killed:
                os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=120)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        err = child.stderr.read().decode()
        child.stderr.close()
        done, pending, ready, finished, moved = parse_report(reportfile)
        if not killed:
            assert child.returncode == 0 and finished, err
        # What a kill can lose: the moves since the last flush, at most the window.
        assert moved <= window, f"seed {seed}: {moved} moves since the last flush, window {window}"
        if killed and window > 1:
            unflushed_kills.append(moved)
        # The store must hold the last fully connected tip -- or the one being committed.
        allowed = {done[-1] if done else last_tip}
        if pending is not None:
            allowed.add(pending)
            mid_commit += killed
        tip = stored_tip(datadir)
        assert tip in allowed, (
            f"seed {seed}: after the kill the tip is {tip and tip.hex()}, allowed {[a and a.hex() for a in allowed]}"
        )
        if tip is not None:
            check_tip, _, _ = check_store(datadir)  # verify(): UTXO set, undo data and indexes recomputed
            assert check_tip == tip
        last_tip = tip
        kills += killed
        return killed

    while kills < MIN_KILLS:
        assert time.monotonic() < deadline, f"only {kills} kills in time (seed {seed})"
        if datadir is None:
            episodes += 1
            datadir, last_tip = str(tmp_path / f"node{episodes}"), None
        if not start_run(kill=True):
            finished_runs += 1  # the workload finished before the kill: start afresh
            assert check_store(datadir) == expected, f"seed {seed}"
            datadir = None
    if datadir is not None:
        assert not start_run(kill=False)
        finished_runs += 1
        assert check_store(datadir) == expected, f"seed {seed}"
    print(f"{kills} kills ({mid_commit} between BEGIN and DONE), {episodes} episodes, {finished_runs} runs to the end; "
          f"moves lost by the kills of a windowed child: {unflushed_kills}")
    assert kills >= MIN_KILLS
    assert any(unflushed_kills), f"seed {seed}: no kill caught a windowed child with unflushed moves"
