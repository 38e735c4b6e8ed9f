"""Wallet keys encrypted at rest: the sealing (scrypt + ChaCha20-Poly1305) against the
RFC's vectors and as a property, the version-2 key file (locked use, pool, wrong
passphrase, tampering, in-place encryption that never leaves the seed on disk), and the
commands through click's runner against an in-process node.

scrypt runs at a toy cost here (N=16) except in the one test that checks the default is
the real one; the files record their cost, so nothing else changes with it."""

from __future__ import annotations

import json
import os
import stat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minichain import params
from minichain.core.keys import PrivateKey
from minichain.wallet import encryption, keyfile
from minichain.wallet.encryption import SealingKey, ScryptCost, Tampered, WrongPassphrase, derive
from minichain.wallet.keyfile import KEYPOOL_SIZE, KeyFile, PassphraseNeeded, WalletFileError, _checksum
from tests.test_cli_wallet import balance, cli, new_wallet, node  # noqa: F401 (fixtures and helpers)

P = params.regtest
SEED = bytes(range(32))
TOY = ScryptCost(n=16, r=1, p=1)
PASS = "correct horse battery staple"
OUTSIDER = PrivateKey(777).public_key.address(P.address_version)

# A version-1 (plaintext) file written by minichain before encryption existed (main at
# ab03fee), with the addresses that code handed out from it: the frozen format and keys.
OLD_PLAINTEXT_FILE = """{
 "format": "minichain-wallet",
 "version": 1,
 "network": "regtest",
 "seed": "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
 "receive": 2,
 "change": 1,
 "checksum": "81e4f63854a54eaa"
}
"""
OLD_ADDRESSES = [("receive", 0, "mhdrVWWeXcKENRaiMTVKdNdEw3hDQX6yAb"),
                 ("receive", 1, "miytHPR2dnfBHnnzmNG5iRLdcjrmMw7WKR"),
                 ("change", 0, "mnrcJLdo4BJTYxRUbkUiqSPpH4wPmk48AS")]


@pytest.fixture(autouse=True)
def toy_cost(monkeypatch):
    monkeypatch.setattr(encryption, "DEFAULT_COST", TOY)
    monkeypatch.delenv("MINICHAIN_WALLET_PASSPHRASE", raising=False)


def write_file(path, text: str | bytes) -> None:
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(text.encode() if isinstance(text, str) else text)


def secrets_of(seed: bytes, keys: list[PrivateKey]) -> list[bytes]:
    """Every form in which the key material could leak into a file: raw and hex, both cases."""
    forms = []
    for secret in [seed] + [k.to_bytes() for k in keys]:
        forms += [secret, secret.hex().encode(), secret.hex().upper().encode()]
    return forms


def assert_no_secret(raw: bytes, seed: bytes, keys: list[PrivateKey]) -> None:
    for form in secrets_of(seed, keys):
        assert form not in raw


def forge(path: str, change) -> None:
    """Edit a key file as an attacker would: change it, then fix its (unkeyed) checksum."""
    with open(path) as f:
        data = json.load(f)
    data.pop("checksum")
    change(data)
    data["checksum"] = _checksum(data)
    write_file(path, json.dumps(data, indent=1))


# -- the sealing ------------------------------------------------------------------------------

def test_scrypt_matches_the_rfc_7914_section_12_vectors():
    vector2 = bytes.fromhex("fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
                            "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640")
    assert derive("password", b"NaCl", ScryptCost(1024, 8, 16)) == (vector2[:32], vector2[32:48])
    vector1 = bytes.fromhex("77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442"
                            "fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906")
    assert derive("", b"", ScryptCost(16, 1, 1)) == (vector1[:32], vector1[32:48])


def test_a_passphrase_is_the_same_whichever_way_its_accents_are_composed():
    key = SealingKey.new("caf\u00e9", TOY)  # é as one code point
    sealed = key.seal(SEED, b"ad")
    assert SealingKey.unlock(sealed, "cafe\u0301").open(sealed, b"ad") == SEED  # e + combining accent
    with pytest.raises(WrongPassphrase):
        SealingKey.unlock(sealed, "cafe")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secret=st.binary(max_size=96), passphrase=st.text(min_size=1, max_size=40),
       other=st.text(min_size=1, max_size=40), ad=st.binary(max_size=64),
       log_n=st.integers(1, 5), r=st.integers(1, 3), p=st.integers(1, 2), flip=st.integers(0, 10_000))
def test_sealing_round_trips_and_refuses_a_wrong_passphrase_or_any_altered_byte(
        secret, passphrase, other, ad, log_n, r, p, flip):
    import unicodedata

    cost = ScryptCost(1 << log_n, r, p)
    sealed = encryption.parse_sealed(json.loads(json.dumps(SealingKey.new(passphrase, cost).seal(secret, ad))))
    assert SealingKey.unlock(sealed, passphrase).open(sealed, ad) == secret
    if unicodedata.normalize("NFKC", other) != unicodedata.normalize("NFKC", passphrase):
        with pytest.raises(WrongPassphrase):
            SealingKey.unlock(sealed, other)
    key = SealingKey.unlock(sealed, passphrase)
    ct = bytearray(bytes.fromhex(sealed["ciphertext"]))
    ct[flip % len(ct)] ^= 1 << (flip % 8)
    with pytest.raises(Tampered):
        key.open({**sealed, "ciphertext": ct.hex()}, ad)
    with pytest.raises(Tampered):
        key.open(sealed, ad + b"!")


def test_a_sealed_secret_from_a_file_is_checked_before_any_scrypt_runs():
    good = SealingKey.new(PASS, TOY).seal(SEED, b"")
    for change, words in [
        ({"n": 1 << 30}, "beyond"),          # 128 GiB: a hostile file must not make us try
        ({"n": 1000}, "power of 2"),
        ({"r": True}, "positive integer"),
        ({"kdf": "argon2id"}, "not scrypt"),
        ({"nonce": "00" * 11}, "wrong size"),
        ({"ciphertext": "00" * 15}, "wrong size"),  # shorter than the tag
        ({"salt": "zz" * 16}, "hex"),
        ({"salt": " 0" * 16}, "hex"),         # bytes.fromhex would skip the spaces
    ]:
        with pytest.raises(ValueError, match=words):
            encryption.parse_sealed({**good, **change})
    with pytest.raises(ValueError, match="incomplete"):
        encryption.parse_sealed({k: v for k, v in good.items() if k != "check"})


# -- the key file -------------------------------------------------------------------------------

def test_the_default_cost_is_owasps_scrypt_minimum_and_the_file_records_it(tmp_path, monkeypatch):
    monkeypatch.undo()  # the real default, not the toy one
    kf, _ = KeyFile.create(str(tmp_path / "w.json"), "regtest", passphrase=PASS)
    with open(kf.path) as f:
        sealed = json.load(f)["encryption"]
    assert (sealed["kdf"], sealed["n"], sealed["r"], sealed["p"]) == ("scrypt", 2 ** 17, 8, 1)
    assert sealed["cipher"] == "chacha20-poly1305"


def test_an_old_plaintext_wallet_opens_and_derives_the_same_addresses(tmp_path):
    path = tmp_path / "old.json"
    write_file(path, OLD_PLAINTEXT_FILE)
    kf = KeyFile.load(str(path))
    assert not kf.encrypted and list(kf.issued()) == OLD_ADDRESSES
    assert kf.next_address() == kf.key("receive", 2).public_key.address(P.address_version)
    with open(path) as f:
        assert json.load(f)["version"] == 1  # still written in its own format


def test_create_with_a_passphrase_never_writes_the_seed_not_even_to_a_temporary_file(tmp_path, monkeypatch):
    written: list[bytes] = []
    real_fdopen = os.fdopen

    class Recorder:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            self.f.__enter__()
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

        def write(self, data):
            written.append(bytes(data))
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(keyfile.os, "fdopen", lambda fd, *a, **k: Recorder(real_fdopen(fd, *a, **k)))
    kf, _ = KeyFile.create(str(tmp_path / "w.json"), "regtest", seed=SEED, passphrase=PASS)
    for _ in range(3):
        kf.next_address()
    kf.next_address("change")
    monkeypatch.setattr(keyfile.os, "fdopen", real_fdopen)

    assert len(written) == 5  # the creation and four counter saves went through the recorder
    keys = [kf.key(chain, i) for chain, i, _ in kf.issued()]
    for data in written:
        assert_no_secret(data, SEED, keys)
    assert os.listdir(tmp_path) == ["w.json"]
    with open(kf.path, "rb") as f:
        raw = f.read()
    assert_no_secret(raw, SEED, keys)
    assert json.loads(raw)["version"] == 2 and b'"seed"' not in raw
    assert stat.S_IMODE(os.stat(kf.path).st_mode) == 0o600


def test_a_locked_wallet_shows_and_hands_out_addresses_and_asks_only_when_the_pool_is_used_up(tmp_path):
    plain, _ = KeyFile.create(str(tmp_path / "plain.json"), "regtest", seed=SEED)
    expected = [plain.address("receive", i) for i in range(KEYPOOL_SIZE + 1)]
    KeyFile.create(str(tmp_path / "w.json"), "regtest", seed=SEED, passphrase=PASS)

    asked = []
    kf = KeyFile.load(str(tmp_path / "w.json"), passphrase=lambda: asked.append(1) or PASS)
    assert kf.locked and kf.encrypted
    got = [kf.next_address() for _ in range(KEYPOOL_SIZE)]
    assert got == expected[:KEYPOOL_SIZE] and asked == [] and kf.locked
    assert [a for _, _, a in kf.issued()] == got
    assert kf.next_address() == expected[KEYPOOL_SIZE]  # the pool was used up: unlock and refill
    assert asked == [1] and not kf.locked
    for _ in range(5):
        kf.next_address()  # unlocked: each call keeps the pool full

    again = KeyFile.load(kf.path)  # no passphrase at all
    assert again.counts["receive"] == KEYPOOL_SIZE + 6
    for _ in range(KEYPOOL_SIZE):
        again.next_address()  # the refilled pool was saved
    with pytest.raises(PassphraseNeeded, match="encrypted and this needs its key, but no passphrase was given"):
        again.next_address()
    with pytest.raises(PassphraseNeeded):
        again.key("receive", 0)
    assert again.counts["receive"] == 2 * KEYPOOL_SIZE + 6  # the refused call handed out nothing


def test_a_wrong_passphrase_is_one_sentence_and_leaves_the_wallet_as_it_was(tmp_path):
    path = str(tmp_path / "w.json")
    KeyFile.create(path, "regtest", seed=SEED, passphrase=PASS)
    with open(path, "rb") as f:
        before = f.read()
    kf = KeyFile.load(path)
    with pytest.raises(WalletFileError) as exc:
        kf.unlock(PASS + " ")
    assert str(exc.value) == f"wrong passphrase for the wallet {path}"
    assert kf.locked
    kf.unlock(PASS)
    assert kf.key("receive", 0).to_bytes() == keyfile.derive_key(SEED, "receive", 0).to_bytes()
    with open(path, "rb") as f:
        assert f.read() == before


@pytest.mark.parametrize("change, words", [
    # The right passphrase, but the sealed seed or what it authenticates was changed.
    (lambda d: d["encryption"].update(ciphertext=("0" if d["encryption"]["ciphertext"][0] != "0" else "1")
                                      + d["encryption"]["ciphertext"][1:]), "was altered"),
    (lambda d: d["encryption"].update(nonce="00" * 12), "was altered"),
    (lambda d: d["addresses"]["receive"].__setitem__(0, OUTSIDER), "was altered"),
    (lambda d: d.update(network="testnet", addresses={
        "receive": [PrivateKey(5).public_key.address(params.testnet.address_version)],
        "change": []}), "was altered"),
])
def test_a_tampered_file_is_refused_when_unlocked(tmp_path, change, words):
    path = str(tmp_path / "w.json")
    kf, _ = KeyFile.create(path, "regtest", seed=SEED, passphrase=PASS)
    kf.next_address()
    forge(path, change)
    with pytest.raises(WalletFileError, match=words) as exc:
        KeyFile.load(path).unlock(PASS)
    assert "restore it from your backup" in str(exc.value)


@pytest.mark.parametrize("change, words", [
    (lambda d: d["addresses"]["receive"].clear(), "shorter than its count"),
    (lambda d: d["addresses"]["change"].append("not-an-address"), "not an address of this network"),
    (lambda d: d["addresses"].pop("change"), "not receive and change"),
    (lambda d: d["encryption"].update(n=1 << 40), "beyond"),
    (lambda d: d.update(seed=SEED.hex()), "unexpected"),
])
def test_a_damaged_encrypted_file_is_refused_when_loaded(tmp_path, change, words):
    path = str(tmp_path / "w.json")
    kf, _ = KeyFile.create(path, "regtest", seed=SEED, passphrase=PASS)
    kf.next_address()
    forge(path, change)
    with pytest.raises(WalletFileError, match=words):
        KeyFile.load(path)


def test_a_flipped_byte_without_a_forged_checksum_is_damage(tmp_path):
    path = str(tmp_path / "w.json")
    KeyFile.create(path, "regtest", seed=SEED, passphrase=PASS)
    with open(path) as f:
        text = f.read()
    at = text.index('"ciphertext": "') + len('"ciphertext": "')
    write_file(path, text[:at] + ("0" if text[at] != "0" else "1") + text[at + 1:])
    with pytest.raises(WalletFileError, match="damaged .checksum mismatch"):
        KeyFile.load(path)


def test_encrypting_in_place_keeps_every_key_and_leaves_no_secret_in_the_file(tmp_path):
    path = str(tmp_path / "w.json")
    kf, _ = KeyFile.create(path, "regtest", seed=SEED)
    for _ in range(3):
        kf.next_address()
    kf.next_address("change")
    issued = list(kf.issued())
    keys = [kf.key(c, i) for c, i, _ in issued]

    kf.encrypt(PASS)
    assert kf.encrypted and list(kf.issued()) == issued
    assert os.listdir(tmp_path) == ["w.json"]  # the temporary file was renamed, none left
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path, "rb") as f:
        assert_no_secret(f.read(), SEED, keys)

    again = KeyFile.load(path)
    assert list(again.issued()) == issued and again.counts == {"receive": 3, "change": 1}
    again.unlock(PASS)
    assert [again.key(c, i).to_bytes() for c, i, _ in issued] == [k.to_bytes() for k in keys]
    with pytest.raises(WalletFileError, match="already encrypted"):
        again.encrypt("another")


def test_a_crash_while_encrypting_leaves_the_plaintext_file_whole_and_no_copy_beside_it(tmp_path, monkeypatch):
    path = str(tmp_path / "w.json")
    kf, _ = KeyFile.create(path, "regtest", seed=SEED)
    kf.next_address()
    with open(path, "rb") as f:
        before = f.read()

    def crash(src, dst):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(keyfile.os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        kf.encrypt(PASS)
    monkeypatch.undo()
    with open(path, "rb") as f:
        assert f.read() == before
    assert os.listdir(tmp_path) == ["w.json"]
    assert not kf.encrypted  # the object is still the plaintext wallet, and still works
    kf.next_address()
    assert KeyFile.load(path).counts["receive"] == 2


def test_a_plaintext_wallet_loaded_before_another_command_encrypted_it_does_not_write_its_seed_back(tmp_path):
    path = str(tmp_path / "w.json")
    KeyFile.create(path, "regtest", seed=SEED)
    stale = KeyFile.load(path)
    KeyFile.load(path).encrypt(PASS)
    with pytest.raises(WalletFileError, match="was encrypted by another command while this one ran"):
        stale.next_address()
    with open(path, "rb") as f:
        assert_no_secret(f.read(), SEED, [])


# -- the commands -------------------------------------------------------------------------------

def encrypted_wallet(cli, name: str) -> tuple[str, str]:
    path = str(cli.tmp / f"{name}.json")
    out = cli("wallet", "new", "--wallet", path, "--network", "regtest", "--encrypt", "--json",
              input=f"{PASS}\n{PASS}\n")
    data = json.loads(out.stdout)
    assert data["encrypted"] is True
    return path, data["address"]


def test_alice_pays_bob_from_an_encrypted_wallet_with_the_passphrase_from_env_then_from_the_prompt(
        cli, node, monkeypatch):
    alice, alice_addr = encrypted_wallet(cli, "alice")
    bob, bob_addr = new_wallet(cli, "bob")
    with open(alice, "rb") as f:
        raw = f.read()
    assert json.loads(raw)["version"] == 2 and b'"seed"' not in raw

    node.mine(P.coinbase_maturity + 1, alice_addr)  # two coinbases mature
    # Public questions: no passphrase, no prompt (a prompt would read EOF and abort).
    assert balance(cli, alice)["spendable"] == 2 * P.initial_subsidy
    assert cli("wallet", "address", "--wallet", alice).stdout.strip() != alice_addr

    monkeypatch.setenv("MINICHAIN_WALLET_PASSPHRASE", PASS)
    first = cli("wallet", "send", "--wallet", alice, bob_addr, "1.5").stdout.strip()
    monkeypatch.delenv("MINICHAIN_WALLET_PASSPHRASE")
    sent = cli("wallet", "send", "--wallet", alice, bob_addr, "2", input=f"{PASS}\n")
    second = sent.stdout.strip()
    assert f"passphrase for {alice}" in sent.stderr and PASS not in sent.output  # asked, not echoed

    assert node.mempool_txids() == {first, second}
    assert balance(cli, bob, min_conf=0)["unconfirmed"] == 350_000_000
    with open(alice, "rb") as f:
        assert json.loads(f.read())["change"] == 2  # the change addresses were saved, still encrypted


def test_a_wrong_passphrase_exits_1_with_one_sentence_and_sends_nothing(cli, node, monkeypatch):
    alice, alice_addr = encrypted_wallet(cli, "alice")
    node.mine(P.coinbase_maturity, alice_addr)
    with open(alice, "rb") as f:
        before = f.read()
    monkeypatch.setenv("MINICHAIN_WALLET_PASSPHRASE", "not it")
    err = cli("wallet", "send", "--wallet", alice, OUTSIDER, "1", code=1).stderr
    assert err == f"Error: wrong passphrase for the wallet {alice}\n"
    monkeypatch.delenv("MINICHAIN_WALLET_PASSPHRASE")
    err = cli("wallet", "send", "--wallet", alice, OUTSIDER, "1", code=1, input="still not it\n").stderr
    assert err.endswith(f"Error: wrong passphrase for the wallet {alice}\n") and err.count("Error") == 1
    assert node.mempool_txids() == set()
    with open(alice, "rb") as f:
        assert f.read() == before


def test_wallet_encrypt_keeps_the_coins_spendable_and_leaves_no_key_in_the_file(cli, node):
    alice, alice_addr = new_wallet(cli, "alice")
    node.mine(P.coinbase_maturity, alice_addr)
    with open(alice) as f:
        seed = bytes.fromhex(json.load(f)["seed"])
    plain = KeyFile.load(alice)
    keys = [k for k in plain.keys_by_address().values()]
    listed = cli("wallet", "address", "--list", "--json", "--wallet", alice).stdout
    before = balance(cli, alice)

    out = cli("wallet", "encrypt", "--wallet", alice, input=f"{PASS}\n{PASS}\n")
    assert "encrypted with scrypt N=2^4, r=1, p=1 and ChaCha20-Poly1305" in out.stdout
    assert "still hold its seed in clear" in out.stderr
    with open(alice, "rb") as f:
        assert_no_secret(f.read(), seed, keys)
    assert not [name for name in os.listdir(cli.tmp) if "alice.json" in name and name != "alice.json"]
    assert cli("wallet", "address", "--list", "--json", "--wallet", alice).stdout == listed
    assert balance(cli, alice) == before

    txid = cli("wallet", "send", "--wallet", alice, OUTSIDER, "1", input=f"{PASS}\n").stdout.strip()
    assert node.mempool_txids() == {txid}
    err = cli("wallet", "encrypt", "--wallet", alice, code=1).stderr
    assert err == f"Error: the wallet {alice} is already encrypted\n"


def test_a_tampered_or_damaged_wallet_file_is_one_sentence(cli, node, monkeypatch):
    alice, alice_addr = encrypted_wallet(cli, "alice")
    node.mine(P.coinbase_maturity, alice_addr)  # coins to spend: the send gets as far as signing
    forge(alice, lambda d: d["encryption"].update(nonce="11" * 12))
    monkeypatch.setenv("MINICHAIN_WALLET_PASSPHRASE", PASS)
    err = cli("wallet", "send", "--wallet", alice, OUTSIDER, "1", code=1).stderr
    assert err.startswith(f"Error: the wallet {alice} was altered") and err.count("\n") == 1
    with open(alice) as f:
        text = f.read()
    write_file(alice, text.replace('"receive": 1,', '"receive": 0,'))
    err = cli("wallet", "balance", "--wallet", alice, code=1).stderr
    assert err == f"Error: the wallet {alice} is damaged (checksum mismatch); restore it from your backup\n"


def test_a_blank_new_passphrase_is_refused_and_writes_nothing(cli):
    path = cli.tmp / "w.json"
    err = cli("wallet", "new", "--wallet", path, "--network", "regtest", "--encrypt", code=1,
              input="  \n  \n").stderr
    assert err.endswith("Error: the passphrase is empty or blank; choose one\n")
    assert not path.exists()


def test_help_tells_where_the_passphrase_comes_from(cli):
    for command in ("new", "encrypt", "send"):
        assert "MINICHAIN_WALLET_PASSPHRASE" in cli("wallet", command, "--help").stdout


def test_a_sealing_that_would_not_open_again_is_caught_before_anything_is_written(tmp_path, monkeypatch):
    real_seal = SealingKey.seal

    def broken_seal(self, secret, ad):  # a bug that writes a seed nobody could decrypt
        return real_seal(self, bytes(len(secret)), ad)

    monkeypatch.setattr(SealingKey, "seal", broken_seal)
    with pytest.raises(WalletFileError, match="did not open again to the same keys; nothing was written"):
        KeyFile.create(str(tmp_path / "new.json"), "regtest", seed=SEED, passphrase=PASS)
    assert not (tmp_path / "new.json").exists()
    path = str(tmp_path / "w.json")
    kf, _ = KeyFile.create(path, "regtest", seed=SEED)
    with pytest.raises(WalletFileError, match="did not open again"):
        kf.encrypt(PASS)
    assert not kf.encrypted and KeyFile.load(path).key("receive", 0).to_bytes() == \
        keyfile.derive_key(SEED, "receive", 0).to_bytes()
