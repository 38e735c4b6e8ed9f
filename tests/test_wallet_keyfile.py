"""The key file: private to its owner, refused when exposed or damaged, deterministic."""

from __future__ import annotations

import json
import os
import stat

import pytest

from minichain import params
from minichain.core.keys import CURVE_N, decode_address
from minichain.wallet.keyfile import KeyFile, WalletFileError, derive_key

SEED = bytes(range(32))


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_file_is_0600_even_with_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        kf, kept = KeyFile.create(str(tmp_path / "sub" / "w.json"), "regtest")
    finally:
        os.umask(old)
    assert kept is None
    assert mode(kf.path) == 0o600
    assert mode(tmp_path / "sub") == 0o700  # a directory it had to create is private too
    kf.next_address()                       # rewriting keeps the mode
    assert mode(kf.path) == 0o600


def test_refuses_to_overwrite_and_force_keeps_the_old_file_aside(tmp_path):
    path = str(tmp_path / "w.json")
    first, _ = KeyFile.create(path, "regtest")
    a1 = first.next_address()
    with pytest.raises(WalletFileError, match="already exists.*--force"):
        KeyFile.create(path, "regtest")
    assert KeyFile.load(path).address("receive", 0) == a1  # untouched
    second, kept = KeyFile.create(path, "regtest", force=True)
    assert kept and os.path.exists(kept) and mode(kept) == 0o600
    assert KeyFile.load(kept).address("receive", 0) == a1
    assert KeyFile.load(path).address("receive", 0) != a1


@pytest.mark.parametrize("bits", [0o644, 0o640, 0o604, 0o660, 0o606, 0o700 | 0o020])
def test_refuses_a_file_others_can_read_or_write(tmp_path, bits):
    kf, _ = KeyFile.create(str(tmp_path / "w.json"), "regtest")
    os.chmod(kf.path, bits)
    with pytest.raises(WalletFileError, match=rf"mode {stat.S_IMODE(bits):04o}.*chmod 600"):
        KeyFile.load(kf.path)
    os.chmod(kf.path, 0o600)
    KeyFile.load(kf.path)


def test_refuses_a_symlink_and_a_directory(tmp_path):
    kf, _ = KeyFile.create(str(tmp_path / "w.json"), "regtest")
    link = tmp_path / "link.json"
    link.symlink_to(kf.path)
    with pytest.raises(WalletFileError, match="symbolic link"):
        KeyFile.load(str(link))
    (tmp_path / "d").mkdir(mode=0o700)
    with pytest.raises(WalletFileError, match="not a regular file"):
        KeyFile.load(str(tmp_path / "d"))


def test_missing_file_says_how_to_create_one(tmp_path):
    with pytest.raises(WalletFileError, match="wallet new"):
        KeyFile.load(str(tmp_path / "nope.json"))


def _write(path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


@pytest.mark.parametrize("damage, words", [
    (lambda t: t[: len(t) // 2], "not valid JSON"),
    (lambda t: "", "not valid JSON"),
    (lambda t: "\xff\xfe", "not valid JSON"),
    (lambda t: "[]", "not a minichain key file"),
    (lambda t: t.replace('"receive": 1', '"receive": 2'), "checksum mismatch"),
    (lambda t: t.replace('"network": "regtest"', '"network": "testnet"'), "checksum mismatch"),
    (lambda t: _flip_seed(t), "checksum mismatch"),
    (lambda t: t.replace('"checksum"', '"check"'), "missing"),
    (lambda t: t.replace('"version": 1', '"version": 3'), "version 3"),
    # A plaintext file relabelled as the encrypted version lacks its fields.
    (lambda t: t.replace('"version": 1', '"version": 2'), r"missing \['addresses', 'encryption'\]"),
    (lambda t: "x" * (16 * 1024 * 1024 + 1), "larger than a key file"),
])
def test_refuses_damaged_contents_with_a_clear_message(tmp_path, damage, words):
    kf, _ = KeyFile.create(str(tmp_path / "w.json"), "regtest")
    kf.next_address()
    with open(kf.path) as f:
        text = f.read()
    _write(kf.path, damage(text))
    with pytest.raises(WalletFileError, match=words):
        KeyFile.load(kf.path)


def _flip_seed(text: str) -> str:
    data = json.loads(text)
    seed = data["seed"]
    data["seed"] = ("1" if seed[0] != "1" else "2") + seed[1:]
    return json.dumps(data)


def test_a_consistent_but_hand_made_file_with_bad_fields_is_still_refused(tmp_path):
    from minichain.wallet.keyfile import _checksum

    for fields, words in [
        ({"network": "main2"}, "unknown network"),
        ({"seed": "zz" * 32}, "not hex"),
        ({"seed": "00" * 31}, "not 32 bytes"),
        ({"receive": -1}, "not a count"),
        ({"change": True}, "not a count"),
    ]:
        data = {"format": "minichain-wallet", "version": 1, "network": "regtest", "seed": SEED.hex(),
                "receive": 1, "change": 0}
        data.update(fields)
        data["checksum"] = _checksum(data)
        path = tmp_path / "w.json"
        _write(path, json.dumps(data))
        with pytest.raises(WalletFileError, match=words):
            KeyFile.load(str(path))


def test_keys_are_derived_from_the_seed_and_survive_a_reload(tmp_path):
    path = str(tmp_path / "w.json")
    kf, _ = KeyFile.create(path, "regtest", seed=SEED)
    addrs = [kf.next_address() for _ in range(3)] + [kf.next_address("change")]
    assert len(set(addrs)) == 4
    again = KeyFile.load(path)
    assert again.counts == {"receive": 3, "change": 1}
    assert [a for _, _, a in again.issued()] == addrs
    # Same seed elsewhere: same keys (a backup restores them all).
    other, _ = KeyFile.create(str(tmp_path / "copy.json"), "regtest", seed=SEED)
    assert other.address("receive", 1) == addrs[1]
    for chain, i, addr in again.issued():
        k = again.key(chain, i)
        assert 0 < int.from_bytes(k.to_bytes(), "big") < CURVE_N
        assert decode_address(addr, params.regtest.address_version) == k.public_key.hash160()
    # Receive and change chains, and different indexes, never share a key.
    assert derive_key(SEED, "receive", 0) != derive_key(SEED, "change", 0)
    assert derive_key(SEED, "receive", 0) != derive_key(SEED, "receive", 1)
    assert derive_key(SEED, "receive", 0) != derive_key(bytes(32), "receive", 0)


def test_the_file_holds_no_private_key_and_repr_shows_no_seed(tmp_path):
    kf, _ = KeyFile.create(str(tmp_path / "w.json"), "regtest", seed=SEED)
    for _ in range(3):
        kf.next_address()
    text = open(kf.path).read()
    for _, i, _ in kf.issued():
        assert kf.key("receive", i).to_bytes().hex() not in text
    assert SEED.hex() not in repr(kf)


def test_unknown_network_is_refused_at_creation(tmp_path):
    with pytest.raises(ValueError, match="unknown network"):
        KeyFile.create(str(tmp_path / "w.json"), "nonet")
    assert not os.path.exists(tmp_path / "w.json")
