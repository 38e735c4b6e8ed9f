"""Both stores through the same interface tests, and LevelDB's data-directory lock."""

import subprocess
import sys
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minichain import params
from minichain.core.chain import Status
from minichain.core.genesis import genesis_block
from minichain.core.tx import OutPoint
from minichain.core.validation import Coin
from minichain.store import IndexRow, MemoryStore, StoreBatch, StoreError, StoreInUseError
from minichain.store.leveldb import LevelDBStore

GENESIS = genesis_block(params.regtest)


class Backend:
    """Opens a store of one kind; ``reopen`` closes it and opens the same data again."""

    def __init__(self, kind, tmp_path):
        self.kind = kind
        self.path = tmp_path / "db"
        self._memory = None

    def open(self):
        if self.kind == "memory":
            self._memory = self._memory or MemoryStore()
            return self._memory
        return LevelDBStore(self.path)

    def reopen(self, store):
        if self.kind == "memory":
            return store  # nothing to close: the dicts are the data
        store.close()
        return LevelDBStore(self.path)


@pytest.fixture(params=["memory", "leveldb"])
def backend(request, tmp_path):
    return Backend(request.param, tmp_path)


def op(n, i=0):
    return OutPoint(n.to_bytes(32, "big"), i)


def coin(v):
    return Coin(v, bytes([v % 256]) * 20, v, v % 2 == 0)


def test_a_new_store_is_empty(backend):
    s = backend.open()
    assert s.get_tip() is None
    assert s.get_block(GENESIS.hash) is None and not s.has_block(GENESIS.hash)
    assert list(s.iter_coins()) == [] and list(s.iter_index()) == [] and list(s.iter_undo_hashes()) == []
    assert list(s.iter_block_hashes()) == [] and s.get_meta("x") is None and s.get_index(GENESIS.hash) is None
    s.close()


def test_a_batch_applies_every_kind_of_change_and_survives_reopening(backend):
    s = backend.open()
    b = StoreBatch()
    assert not b
    row = IndexRow(GENESIS.header, Status.VALID, True, 0)
    b.put_block(GENESIS.hash, GENESIS.serialize())
    b.put_index(GENESIS.hash, row)
    for n in range(5):
        b.put_coin(op(n, n), coin(n))
    b.put_undo(b"u" * 32, b"undo-bytes")
    b.put_meta("genesis", GENESIS.hash)
    b.set_tip(GENESIS.hash)
    assert b
    s.write(b)
    s = backend.reopen(s)
    assert s.get_tip() == GENESIS.hash
    assert s.get_block(GENESIS.hash) == GENESIS.serialize() and s.has_block(GENESIS.hash)
    assert s.get_index(GENESIS.hash) == row and list(s.iter_index()) == [row]
    assert dict(s.iter_coins()) == {op(n, n): coin(n) for n in range(5)}
    assert s.get_coin(op(3, 3)) == coin(3) and s.get_coin(op(3, 4)) is None
    assert s.get_undo(b"u" * 32) == b"undo-bytes" and list(s.iter_undo_hashes()) == [b"u" * 32]
    assert s.get_meta("genesis") == GENESIS.hash and list(s.iter_block_hashes()) == [GENESIS.hash]

    b = StoreBatch()
    b.delete_coin(op(1, 1))
    b.delete_coin(op(99))  # deleting what is not there is harmless
    b.put_coin(op(2, 2), coin(200))  # overwrite
    b.delete_undo(b"u" * 32)
    s.write(b)
    s = backend.reopen(s)
    assert dict(s.iter_coins()) == {op(0, 0): coin(0), op(2, 2): coin(200), op(3, 3): coin(3), op(4, 4): coin(4)}
    assert s.get_undo(b"u" * 32) is None and list(s.iter_undo_hashes()) == []
    assert s.get_tip() == GENESIS.hash  # a batch without a tip leaves the tip alone
    s.close()


def test_the_last_change_to_a_key_in_a_batch_wins(backend):
    s = backend.open()
    b = StoreBatch()
    b.put_coin(op(1), coin(1))
    b.delete_coin(op(1))
    b.put_coin(op(2), coin(2))
    b.delete_coin(op(2))
    b.put_coin(op(2), coin(3))
    s.write(b)
    assert dict(s.iter_coins()) == {op(2): coin(3)}
    s.close()


def test_coins_iterate_in_outpoint_order(backend):
    s = backend.open()
    b = StoreBatch()
    ops = [op(n, i) for n in (3, 1, 2) for i in (256, 1, 0)]
    for o in ops:
        b.put_coin(o, coin(o.index))
    s.write(b)
    assert [o for o, _ in s.iter_coins()] == sorted(ops, key=lambda o: (o.txid, o.index))
    s.close()


def test_index_rows_round_trip_every_status():
    for status in Status:
        for have in (False, True):
            row = IndexRow(GENESIS.header, status, have, 123456789)
            assert IndexRow.deserialize(row.serialize()) == row


def test_a_closed_memory_store_refuses_use():
    s = MemoryStore()
    s.close()
    with pytest.raises(StoreError):
        s.get_tip()


# ------------------------------------------------------------------ the lock


def test_a_second_store_in_the_same_process_gets_in_use(tmp_path):
    with LevelDBStore(tmp_path / "db"):
        with pytest.raises(StoreInUseError, match="already in use") as info:
            LevelDBStore(tmp_path / "db")
        assert str(tmp_path / "db") in str(info.value)
    LevelDBStore(tmp_path / "db").close()  # free again once closed


def test_a_second_process_opening_the_data_directory_gets_a_clear_in_use_error(tmp_path):
    path = tmp_path / "node"
    child = textwrap.dedent(
        f"""
        from minichain.store import StoreInUseError
        from minichain.store.leveldb import LevelDBStore
        try:
            LevelDBStore({str(path)!r})
        except StoreInUseError as e:
            print("IN-USE", e)
        else:
            print("OPENED")
        """
    )
    with LevelDBStore(path):
        out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("IN-USE"), out.stdout + out.stderr
    assert "already in use" in out.stdout and str(path) in out.stdout
    # With the first store closed, the second process gets in.
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("OPENED"), out.stdout + out.stderr


def test_a_path_that_is_not_a_directory_is_a_store_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(StoreError):
        LevelDBStore(f)


# ------------------------------------------------------------------ index key spaces


def model_range(model, prefix, start, stop, reverse):
    keys = sorted(k for k in model if k.startswith(prefix) and (start is None or k >= start)
                  and (stop is None or k < stop))
    return [(k, model[k]) for k in (reversed(keys) if reverse else keys)]


short_keys = st.binary(min_size=0, max_size=3).map(lambda b: b.replace(b"\x00", b"\xff") if len(b) == 3 else b)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.booleans(), short_keys, st.binary(max_size=4)), max_size=40),
       prefix=st.binary(max_size=2), start=st.none() | short_keys, stop=st.none() | short_keys,
       reverse=st.booleans())
def test_key_spaces_scan_exactly_the_keys_a_sorted_map_would(tmp_path_factory, ops, prefix, start, stop, reverse):
    """Puts and deletes in two batches, then a range scan, against a dict as the model;
    keys full of 0xff bytes test the end of a prefix range."""
    for kind in ("memory", "leveldb"):
        store = MemoryStore() if kind == "memory" else LevelDBStore(tmp_path_factory.mktemp("spaces") / "db")
        model = {}
        half = len(ops) // 2
        for part in (ops[:half], ops[half:]):
            b = StoreBatch()
            for put, key, value in part:
                if put:
                    b.put_entry("history", key, value)
                    model[key] = value
                else:
                    b.delete_entry("history", key)
                    model.pop(key, None)
            store.write(b)
        got = list(store.iter_entries("history", prefix, start=start, stop=stop, reverse=reverse))
        assert got == model_range(model, prefix, start, stop, reverse), kind
        assert list(store.iter_entries("outputs")) == []  # spaces are separate
        for _, key, _ in ops:
            assert store.get_entry("history", key) == model.get(key)
        store.close()


def test_key_spaces_survive_reopening_and_stay_apart_from_coins(backend):
    s = backend.open()
    b = StoreBatch()
    b.put_entry("tx", b"\x01" * 32, b"where")
    b.put_entry("totals", b"\x01" * 32, b"other space, same key")
    b.put_coin(op(1), coin(1))
    s.write(b)
    s = backend.reopen(s)
    assert s.get_entry("tx", b"\x01" * 32) == b"where"
    assert s.get_entry("totals", b"\x01" * 32) == b"other space, same key"
    assert list(s.iter_entries("tx")) == [(b"\x01" * 32, b"where")]
    assert dict(s.iter_coins()) == {op(1): coin(1)}
    with pytest.raises(ValueError, match="unknown key space"):
        StoreBatch().put_entry("nonsense", b"k", b"v")
    with pytest.raises(ValueError, match="unknown key space"):
        s.get_entry("nonsense", b"k")
    s.close()


def test_a_scan_reads_a_snapshot_while_the_store_is_written(backend):
    """A handler that pages through a range between other work sees one consistent view."""
    s = backend.open()
    b = StoreBatch()
    for i in range(10):
        b.put_entry("history", bytes([i]), b"v")
    s.write(b)
    it = s.iter_entries("history")
    first = next(it)
    b = StoreBatch()
    for i in range(10):
        b.delete_entry("history", bytes([i]))
    b.put_entry("history", b"\x05\x00", b"new")
    s.write(b)
    assert [first] + list(it) == [(bytes([i]), b"v") for i in range(10)]
    assert list(s.iter_entries("history")) == [(b"\x05\x00", b"new")]
    s.close()
