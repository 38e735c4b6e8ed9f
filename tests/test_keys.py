"""secp256k1 keys, strict signatures, the two verification backends, Base58Check."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from minichain.core import keys
from minichain.core.hashing import hash160
from minichain.core.keys import (
    CURVE_N,
    CURVE_P,
    HALF_N,
    AddressError,
    KeyFormatError,
    PrivateKey,
    PublicKey,
    SignatureFormatError,
    b58decode,
    b58encode,
    decode_address,
    encode_address,
    encode_signature,
    parse_signature,
    verify,
)

needs_coincurve = pytest.mark.skipif("coincurve" not in keys.BACKENDS, reason="coincurve not installed")
SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

secrets_ = st.integers(min_value=1, max_value=CURVE_N - 1)
digests = st.binary(min_size=32, max_size=32)


def sha256(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


# ------------------------------------------------------------------ gmpy2


def test_ecdsa_library_does_its_arithmetic_with_gmpy2():
    pytest.importorskip("gmpy2")
    import ecdsa.ellipticcurve

    assert ecdsa.ellipticcurve.GMPY is True
    assert keys.ECDSA_USES_GMPY2 is True


# ------------------------------------------------------------ private keys


def test_private_key_one_gives_the_generator():
    # SEC 2 v2, section 2.4.1: G in compressed form.
    g = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
    assert PrivateKey(1).public_key.to_bytes().hex() == g


@pytest.mark.parametrize("d", [0, CURVE_N, CURVE_N + 1, 2**256 - 1])
def test_private_key_out_of_range_is_rejected(d):
    with pytest.raises(KeyFormatError):
        PrivateKey.from_bytes(d.to_bytes(32, "big"))


@pytest.mark.parametrize("b", [b"", b"\x01" * 31, b"\x01" * 33, "01" * 32])
def test_private_key_wrong_length_or_type_is_rejected(b):
    with pytest.raises(KeyFormatError):
        PrivateKey.from_bytes(b)


@settings(max_examples=20, deadline=None)
@given(secrets_)
def test_private_key_bytes_round_trip(d):
    k = PrivateKey(d)
    k2 = PrivateKey.from_bytes(k.to_bytes())
    assert k2 == k and k2.public_key == k.public_key
    assert "secret" in repr(k) and k.to_bytes().hex() not in repr(k)


def test_generated_keys_differ_and_sign():
    a, b = PrivateKey.generate(), PrivateKey.generate()
    assert a != b
    d = sha256(b"x")
    assert a.public_key.verify(a.sign(d), d) and not b.public_key.verify(a.sign(d), d)


# ------------------------------------------------------------- public keys


def _not_on_curve_x() -> int:
    x = 1
    while pow((x**3 + 7) % CURVE_P, (CURVE_P - 1) // 2, CURVE_P) != CURVE_P - 1:
        x += 1  # Euler's criterion: x^3 + 7 is a non-residue, so no y exists
    return x


def test_public_key_rejects_bad_encodings():
    good = PrivateKey(7).public_key
    uncompressed = b"\x04" + good._vk.to_string("raw")
    bad = [
        b"",
        good.to_bytes()[:-1],
        good.to_bytes() + b"\x00",
        uncompressed,
        b"\x04" + good.to_bytes()[1:],
        b"\x00" * 33,
        b"\x02" + CURVE_P.to_bytes(32, "big"),  # x = p
        b"\x02" + (CURVE_P + 1).to_bytes(32, "big"),  # x = p + 1 == 1 mod p: on the curve only mod p
        b"\x02" + _not_on_curve_x().to_bytes(32, "big"),
        b"\x03" + b"\xff" * 32,
    ]
    assert issubclass(KeyFormatError, ValueError)
    for b in bad:
        with pytest.raises(KeyFormatError):
            PublicKey.from_bytes(b)
        if "coincurve" in keys.BACKENDS and len(b) == 33:
            import coincurve

            with pytest.raises(ValueError):  # libsecp256k1 agrees they are not keys
                coincurve.PublicKey(b)


@settings(max_examples=20, deadline=None)
@given(secrets_)
def test_public_key_round_trip_and_hash(d):
    pub = PrivateKey(d).public_key
    b = pub.to_bytes()
    assert len(b) == 33 and b[0] in (2, 3)
    assert PublicKey.from_bytes(b) == pub
    assert pub.hash160() == hash160(b)


# ------------------------------------------------------------ RFC 6979


# secp256k1 + SHA-256 RFC 6979 vectors from bitcoinjs-lib, test/fixtures/ecdsa.json
# (https://github.com/bitcoinjs/bitcoinjs-lib, commit 10630873eb "valid.ecdsa"),
# reproduced by several independent implementations. digest = SHA-256(message);
# signature = r || s (hex), s already low.
RFC6979_VECTORS = [
    (1, "Satoshi Nakamoto",
     "934b1ea10a4b3c1757e2b0c017d0b6143ce3c9a7e6a4a49860d7a6ab210ee3d8"
     "2442ce9d2b916064108014783e923ec36b49743e2ffa1c4496f01a512aafd9e5"),
    (1, "All those moments will be lost in time, like tears in rain. Time to die...",
     "8600dbd41e348fe5c9465ab92d23e3db8b98b873beecd930736488696438cb6b"
     "547fe64427496db33bf66019dacbf0039c04199abb0122918601db38a72cfc21"),
    (0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364140, "Satoshi Nakamoto",
     "fd567d121db66e382991534ada77a6bd3106f0a1098c231e47993447cd6af2d0"
     "6b39cd0eb1bc8603e159ef5c20a5c8ad685a45b06ce9bebed3f153d10d93bed5"),
    (0xF8B8AF8CE3C7CCA5E300D33939540C10D45CE001B8F252BFBC57BA0342904181, "Alan Turing",
     "7063ae83e7f62bbb171798131b4a0564b956930092b33b07b395615d9ec7e15c"
     "58dfcc1e00a35e1572f366ffe34ba0fc47db1e7189759b9fb233c5b05ab388ea"),
    (0xE91671C46231F833A6406CCBEA0E3E392C76C167BAC1CB013F6F1013980455C2,
     "There is a computer disease that anybody who works with computers knows about. It's a very "
     "serious disease and it interferes completely with the work. The trouble with computers is "
     "that you 'play' with them!",
     "b552edd27580141f3b2a5463048cb7cd3e047b97c9f98076c32dbdf85a68718b"
     "279fa72dd19bfae05577e06c7c0c1900c371fcd5893f7e1d56a37d30174671f6"),
    (1, "Everything should be made as simple as possible, but not simpler.",
     "33a69cd2065432a30f3d1ce4eb0d59b8ab58c74f27c41a7fdb5696ad4e6108c9"
     "6f807982866f785d3f6418d24163ddae117b7db4d5fdf0071de069fa54342262"),
    (0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364140,
     "Equations are more important to me, because politics is for the present, but an equation "
     "is something for eternity.",
     "54c4a33c6423d689378f160a7ff8b61330444abb58fb470f96ea16d99d4a2fed"
     "07082304410efa6b2943111b6a4e0aaa7b7db55a07e9861d1fb3cb1f421044a5"),
    (0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364140,
     "Not only is the Universe stranger than we think, it is stranger than we can think.",
     "ff466a9f1b7b273e2f4c3ffe032eb2e814121ed18ef84665d0f515360dab3dd0"
     "6fc95f5132e5ecfdc8e5e6e616cc77151455d46ed48f5589b7db7771a332b283"),
]


@pytest.mark.parametrize("backend", keys.BACKENDS)
@pytest.mark.parametrize("d, message, rs", RFC6979_VECTORS)
def test_rfc6979_published_vectors(d, message, rs, backend):
    r, s = int(rs[:64], 16), int(rs[64:], 16)
    digest = sha256(message.encode())
    sig = PrivateKey(d).sign(digest, backend=backend)
    assert parse_signature(sig) == (r, s)
    assert sig == encode_signature(r, s)
    assert verify(PrivateKey(d).public_key.to_bytes(), sig, digest)


@settings(max_examples=25, deadline=None)
@given(secrets_, digests)
def test_signing_is_deterministic_and_low_s(d, digest):
    k = PrivateKey(d)
    sig = k.sign(digest)
    assert sig == k.sign(digest) == PrivateKey(d).sign(digest)
    r, s = parse_signature(sig)
    assert s <= HALF_N


@needs_coincurve
@settings(max_examples=40, deadline=None)
@given(secrets_, digests)
def test_ecdsa_and_libsecp256k1_sign_identically(d, digest):
    # Two independent RFC 6979 + low-S implementations must produce the same bytes.
    k = PrivateKey(d)
    assert k.sign(digest, backend="ecdsa") == k.sign(digest, backend="coincurve")


def test_sign_rejects_non_digest():
    with pytest.raises(ValueError):
        PrivateKey(3).sign(b"short")
    with pytest.raises(ValueError):
        PrivateKey(3).sign(b"\x00" * 32, backend="openssl")


# ------------------------------------------------------------ verification


KEY = PrivateKey(0xC0FFEE)
OTHER = PrivateKey(0xBEEF)
DIGEST = sha256(b"minichain")
SIG = KEY.sign(DIGEST)
R, S = parse_signature(SIG)
PUB = KEY.public_key.to_bytes()


@pytest.mark.parametrize("backend", keys.BACKENDS)
def test_verify_accepts_good_and_rejects_wrong_digest_or_key(backend):
    assert verify(PUB, SIG, DIGEST, backend=backend)
    assert not verify(PUB, SIG, sha256(b"minichain!"), backend=backend)
    assert not verify(OTHER.public_key.to_bytes(), SIG, DIGEST, backend=backend)


@pytest.mark.parametrize("backend", keys.BACKENDS)
def test_high_s_twin_is_rejected(backend):
    high = encode_signature(R, CURVE_N - S)
    assert CURVE_N - S > HALF_N
    with pytest.raises(SignatureFormatError, match="high-S"):
        parse_signature(high)
    assert not verify(PUB, high, DIGEST, backend=backend)


def test_the_low_s_check_is_ours_not_the_libraries():
    # python-ecdsa alone accepts the high-S twin (it is mathematically valid), which is
    # why keys.verify() checks canonical form before calling any backend.
    high = encode_signature(R, CURVE_N - S)
    assert keys._verify_ecdsa(PUB, high, DIGEST) is True


def _der(r_body: bytes, s_body: bytes, *, seq_len: int | None = None, tail: bytes = b"") -> bytes:
    body = b"\x02" + bytes((len(r_body),)) + r_body + b"\x02" + bytes((len(s_body),)) + s_body
    return b"\x30" + bytes((len(body) if seq_len is None else seq_len,)) + body + tail


def _min(v: int) -> bytes:
    """The minimal DER body of a positive integer."""
    b = v.to_bytes((v.bit_length() + 7) // 8 or 1, "big")
    return b"\x00" + b if b[0] & 0x80 else b


MALFORMED = {
    "empty": b"",
    "r zero-padded": _der(b"\x00" + _min(R), _min(S)),
    "s zero-padded": _der(_min(R), b"\x00" + _min(S)),
    "r negative": _der(b"\x80" + _min(R)[-31:], _min(S)),
    "r zero": _der(b"\x00", _min(S)),
    "s zero": _der(_min(R), b"\x00"),
    "r empty": _der(b"", _min(S)),
    "r = n": _der(_min(CURVE_N), _min(S)),
    "s = n": _der(_min(R), _min(CURVE_N)),
    "r > n": _der(_min(CURVE_N + 5), _min(S)),
    "sequence length too long": _der(_min(R), _min(S), seq_len=len(SIG) - 1),
    "sequence length too short": _der(_min(R), _min(S), seq_len=len(SIG) - 3),
    "trailing byte": SIG + b"\x00",
    "trailing byte inside sequence": _der(_min(R), _min(S), seq_len=len(SIG) - 1, tail=b"\x01"),
    "long-form length": b"\x30\x81" + bytes((len(SIG) - 2,)) + SIG[2:],
    "wrong sequence tag": b"\x31" + SIG[1:],
    "wrong integer tag": SIG[:2] + b"\x03" + SIG[3:],
    "truncated": SIG[:-1],
    "r||s raw": R.to_bytes(32, "big") + S.to_bytes(32, "big"),
    "too long": _der(b"\x01" * 33, b"\x01" * 35),
}


@pytest.mark.parametrize("backend", keys.BACKENDS)
@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_non_canonical_signatures_are_rejected(name, backend):
    sig = MALFORMED[name]
    assert sig != SIG
    assert not keys.is_canonical_signature(sig)
    assert verify(PUB, sig, DIGEST, backend=backend) is False


@pytest.mark.parametrize("backend", keys.BACKENDS)
def test_verify_never_raises_for_junk_arguments(backend):
    for pub, sig, dig in [
        (None, SIG, DIGEST),
        (PUB, None, DIGEST),
        (PUB, SIG, None),
        (PUB, SIG, DIGEST[:31]),
        ("02" * 33, SIG, DIGEST),
        (PUB, SIG.hex(), DIGEST),
        (b"\x04" + PUB[1:], SIG, DIGEST),
    ]:
        assert verify(pub, sig, dig, backend=backend) is False


def test_unknown_backend_is_a_programming_error():
    with pytest.raises(ValueError):
        verify(PUB, SIG, DIGEST, backend="nope")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.binary(max_size=80), st.binary(max_size=40))
def test_verify_of_random_bytes_is_false_and_quiet(pub, sig, dig):
    for backend in keys.BACKENDS:
        assert verify(pub, sig, dig, backend=backend) is False


# ---------------------------------------------------- differential (backends)


def _mutate(data: st.DataObject, sig: bytes) -> bytes:
    kind = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate", "append", "set_len", "random"]))
    b = bytearray(sig)
    if kind == "flip":
        i = data.draw(st.integers(0, len(b) - 1))
        b[i] ^= data.draw(st.integers(1, 255))
    elif kind == "insert":
        b.insert(data.draw(st.integers(0, len(b))), data.draw(st.integers(0, 255)))
    elif kind == "delete":
        del b[data.draw(st.integers(0, len(b) - 1))]
    elif kind == "truncate":
        b = b[: data.draw(st.integers(0, len(b) - 1))]
    elif kind == "append":
        b += data.draw(st.binary(min_size=1, max_size=4))
    elif kind == "set_len":  # rewrite one of the three length bytes
        pos = data.draw(st.sampled_from([1, 3, 5 + b[3] if 5 + b[3] < len(b) else 1]))
        b[pos] = data.draw(st.integers(0, 255))
    else:
        b = bytearray(data.draw(st.binary(max_size=75)))
    return bytes(b)


@needs_coincurve
@SLOW
@given(secrets_, digests, st.data())
def test_backends_agree_on_every_signature(d, digest, data):
    """ecdsa and libsecp256k1 accept and reject exactly the same (key, sig, digest)."""
    key = PrivateKey(d)
    pub = key.public_key.to_bytes()
    sig = key.sign(digest)
    r, s = parse_signature(sig)
    case = data.draw(
        st.sampled_from(["valid", "high_s", "mutated", "wrong_digest", "wrong_key", "mutated_key", "other_rs"])
    )
    expected: bool | None = None
    if case == "valid":
        expected = True
    elif case == "high_s":
        sig, expected = encode_signature(r, CURVE_N - s), False
    elif case == "mutated":
        sig = _mutate(data, sig)
    elif case == "wrong_digest":
        other = data.draw(digests)
        assume(other != digest)
        digest, expected = other, False
    elif case == "wrong_key":
        other = data.draw(secrets_)
        assume(other != d)
        pub, expected = PrivateKey(other).public_key.to_bytes(), False
    elif case == "mutated_key":
        pub = _mutate(data, pub)
    else:  # arbitrary in-range (r, s) in canonical encoding: almost surely invalid
        sig = encode_signature(data.draw(secrets_), data.draw(st.integers(1, HALF_N)))
    results = {backend: verify(pub, sig, digest, backend=backend) for backend in keys.BACKENDS}
    assert results["ecdsa"] == results["coincurve"], (case, sig.hex(), pub.hex())
    if expected is not None:
        assert results["ecdsa"] is expected


# ------------------------------------------------------------------ Base58


# Bitcoin Core, src/test/data/base58_encode_decode.json.
BASE58_VECTORS = [
    ("", ""),
    ("61", "2g"),
    ("626262", "a3gV"),
    ("636363", "aPEr"),
    ("73696d706c792061206c6f6e6720737472696e67", "2cFupjhnEsSn59qHXstmK2ffpLv2"),
    ("00eb15231dfceb60925886b67d065299925915aeb172c06647", "1NS17iag9jJgTHD1VXjvLCEnZuQ3rJDE9L"),
    ("516b6fcd0f", "ABnLTmg"),
    ("bf4f89001e670274dd", "3SEo3LWLoPntC"),
    ("572e4794", "3EFU7m"),
    ("ecac89cad93923c02321", "EJDM8drfXA6uyA"),
    ("10c8511e", "Rt5zm"),
    ("00000000000000000000", "1111111111"),
]


@pytest.mark.parametrize("hexdata, encoded", BASE58_VECTORS)
def test_base58_bitcoin_core_vectors(hexdata, encoded):
    assert b58encode(bytes.fromhex(hexdata)) == encoded
    assert b58decode(encoded) == bytes.fromhex(hexdata)


@given(st.binary(max_size=64))
def test_base58_round_trip(data):
    assert b58decode(b58encode(data)) == data


@pytest.mark.parametrize("bad", ["0", "O", "I", "l", "3mJr0", "1A Na", "abc!", "é", "1\n"])
def test_base58_rejects_characters_outside_the_alphabet(bad):
    with pytest.raises(AddressError, match="invalid Base58 character"):
        b58decode(bad)


# ----------------------------------------------------------------- addresses


# P2PKH addresses and their hash160s: Bitcoin Core src/test/data/base58_keys_valid.json
# (the first main-net and test-net pubkey entries), and the compressed key of secret 1,
# whose hash160 751e76e8... is BIP 173's example program.
ADDRESS_VECTORS = [
    ("1AGNa15ZQXAZUgFiqJ2i7Z2DPU2J6hW62i", "65a16059864a2fdbc7c99a4723a8395bc6f188eb", 0x00),
    ("mo9ncXisMeAoXwqcV5EWuyncbmCcQN4rVs", "53c0307d6851aa0ce7825ba883c6bd9ad242b486", 0x6F),
    ("1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH", "751e76e8199196d454941c45d1b3a323f1433bd6", 0x00),
]


@pytest.mark.parametrize("addr, h, version", ADDRESS_VECTORS)
def test_address_vectors(addr, h, version):
    assert encode_address(bytes.fromhex(h), version) == addr
    assert decode_address(addr, version) == bytes.fromhex(h)
    assert decode_address(addr) == bytes.fromhex(h)


def test_address_of_private_key_one():
    assert PrivateKey(1).public_key.address(0x00) == "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"


def test_params_versions_match_bitcoin_prefixes():
    from minichain import params

    h = bytes.fromhex("65a16059864a2fdbc7c99a4723a8395bc6f188eb")
    assert encode_address(h, params.main.address_version).startswith("1")
    assert encode_address(h, params.regtest.address_version)[0] in "mn"


def test_wrong_network_is_rejected():
    with pytest.raises(AddressError, match="another network"):
        decode_address("1AGNa15ZQXAZUgFiqJ2i7Z2DPU2J6hW62i", 0x6F)
    with pytest.raises(AddressError, match="another network"):
        decode_address("mo9ncXisMeAoXwqcV5EWuyncbmCcQN4rVs", 0x00)


@pytest.mark.parametrize(
    "addr, match",
    [
        ("1AGNa15ZQXAZUgFiqJ2i7Z2DPU2J6hW62j", "checksum"),  # last character changed
        ("1ANNa15ZQXAZUgFiqJ2i7Z2DPU2J6hW62i", "checksum"),
        ("1AGNa15ZQXAZUgFiqJ2i7Z2DPU2J6hW62I", "invalid Base58"),
        ("1AGNa15ZQXAZUgFiqJ2i7Z2DPU2J6hW62iz", "bytes"),
        ("1AGNa15ZQXAZUgFiqJ2i7Z2DPU2J6hW62izzzz", "too long"),
        ("1BNGaR29FmfAqidXmD9HLws", "bytes"),
        ("", "bytes"),
        (keys.b58check_encode(b"\x00" + b"\x11" * 19), "bytes"),  # valid checksum, 19-byte hash
        (keys.b58check_encode(b"\x00" + b"\x11" * 21), "bytes"),
    ],
)
def test_malformed_addresses_are_rejected(addr, match):
    with pytest.raises(AddressError, match=match):
        decode_address(addr)


@settings(max_examples=300)
@given(
    st.binary(min_size=20, max_size=20),
    st.sampled_from([0x00, 0x6F]),
    st.data(),
)
def test_any_single_character_typo_is_detected(h, version, data):
    addr = encode_address(h, version)
    pos = data.draw(st.integers(0, len(addr) - 1))
    new = data.draw(st.sampled_from(keys.B58_ALPHABET).filter(lambda c: c != addr[pos]))
    typo = addr[:pos] + new + addr[pos + 1 :]
    with pytest.raises(AddressError):
        decode_address(typo)


@given(st.binary(min_size=20, max_size=20), st.sampled_from([0x00, 0x6F]), st.data())
def test_adjacent_transposition_is_detected(h, version, data):
    addr = encode_address(h, version)
    pos = data.draw(st.integers(0, len(addr) - 2))
    assume(addr[pos] != addr[pos + 1])
    swapped = addr[:pos] + addr[pos + 1] + addr[pos] + addr[pos + 2 :]
    with pytest.raises(AddressError):
        decode_address(swapped)


@given(st.binary(min_size=20, max_size=20), st.integers(0, 255))
def test_address_round_trip(h, version):
    addr = encode_address(h, version)
    assert decode_address(addr, version) == h


# ------------------------------------------------------ choosing the backend


def test_choose_backend_names_and_refusals():
    assert keys.choose_backend(None) == keys.choose_backend("auto") == keys.choose_backend(" AUTO ")
    assert keys.choose_backend("ecdsa") == "ecdsa"
    with pytest.raises(ValueError, match="MINICHAIN_VERIFY='openssl' is not one of auto, ecdsa, coincurve"):
        keys.choose_backend("openssl")


def _backend_in_subprocess(value):
    import os
    import subprocess
    import sys

    env = dict(os.environ, MINICHAIN_VERIFY=value)
    out = subprocess.run([sys.executable, "-c", "from minichain.core import keys, sigcache; "
                          "print(keys.VERIFY_BACKEND, sigcache.SignatureChecker().backend, keys.VERIFY_ENV_ERROR)"],
                         env=env, capture_output=True, text=True, check=True)
    return out.stdout.split(maxsplit=2)


def test_minichain_verify_selects_the_backend_for_the_whole_process():
    assert _backend_in_subprocess("ecdsa") == ["ecdsa", "ecdsa", "None\n"]
    backend, checker, error = _backend_in_subprocess("nonsense")
    assert backend == checker == keys.choose_backend("auto") and "nonsense" in error


@needs_coincurve
def test_the_default_install_verifies_with_libsecp256k1():
    """coincurve is a regular dependency: installed, it is what auto picks."""
    assert keys.choose_backend("auto") == "coincurve"
    assert "libsecp256k1" in keys.backend_description("coincurve")
    assert "slower" in keys.backend_description("ecdsa")
