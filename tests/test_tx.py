"""UTXO transactions: encoding, txids, coinbase (BIP 34) data and signature digests."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from minichain.core import keys
from minichain.core.encoding import DecodeError
from minichain.core.hashing import sha256d
from minichain.core.keys import PrivateKey
from minichain.core.tx import (
    OutPoint,
    Transaction,
    TxIn,
    TxOut,
    decode_coinbase_height,
    encode_coinbase_height,
    make_coinbase,
    sign_inputs,
)

# ---------------------------------------------------------------- strategies

u32 = st.integers(0, 2**32 - 1)
i32 = st.integers(-(2**31), 2**31 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
hashes = st.binary(min_size=32, max_size=32)
pkh = st.binary(min_size=20, max_size=20)

outpoints = st.builds(OutPoint, hashes, u32).filter(lambda o: not o.is_null())
spend_inputs = st.builds(
    TxIn, outpoints, st.binary(max_size=keys.MAX_SIGNATURE_SIZE), st.binary(max_size=keys.PUBLIC_KEY_SIZE)
)
coinbase_inputs = st.builds(TxIn, st.just(OutPoint.NULL), st.binary(min_size=2, max_size=100), st.just(b""))
txins = st.one_of(spend_inputs, coinbase_inputs)
txouts = st.builds(TxOut, i64, pkh)
transactions = st.builds(
    Transaction, i32, st.lists(txins, max_size=4).map(tuple), st.lists(txouts, max_size=4).map(tuple), u32
)

TYPES = [(OutPoint, outpoints), (TxIn, txins), (TxOut, txouts), (Transaction, transactions)]


def _mutations(data: bytes, draw) -> bytes:
    kind = draw(st.sampled_from(["flip", "insert", "delete", "splice"]))
    b = bytearray(data)
    if kind == "flip" and b:
        b[draw(st.integers(0, len(b) - 1))] ^= draw(st.integers(1, 255))
    elif kind == "insert":
        b[draw(st.integers(0, len(b))) : 0] = draw(st.binary(min_size=1, max_size=9))
    elif kind == "delete" and b:
        i = draw(st.integers(0, len(b) - 1))
        del b[i : i + draw(st.integers(1, 9))]
    else:
        i = draw(st.integers(0, len(b)))
        b[i:] = draw(st.binary(max_size=40))
    return bytes(b)


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("cls, strategy", TYPES, ids=[c.__name__ for c, _ in TYPES])
@settings(max_examples=150)
@given(data=st.data())
def test_round_trip(cls, strategy, data):
    value = data.draw(strategy)
    encoded = value.serialize()
    decoded = cls.deserialize(encoded)
    assert decoded == value
    assert decoded.serialize() == encoded
    assert hash(decoded) == hash(value)


@pytest.mark.parametrize("cls, strategy", TYPES, ids=[c.__name__ for c, _ in TYPES])
@settings(max_examples=100)
@given(data=st.data())
def test_every_truncation_is_a_decode_error(cls, strategy, data):
    encoded = data.draw(strategy).serialize()
    for n in range(len(encoded)):
        with pytest.raises(DecodeError):
            cls.deserialize(encoded[:n])


@pytest.mark.parametrize("cls, strategy", TYPES, ids=[c.__name__ for c, _ in TYPES])
@given(data=st.data())
def test_trailing_bytes_are_a_decode_error(cls, strategy, data):
    encoded = data.draw(strategy).serialize()
    with pytest.raises(DecodeError, match="trailing"):
        cls.deserialize(encoded + data.draw(st.binary(min_size=1, max_size=8)))


@pytest.mark.parametrize("cls", [OutPoint, TxIn, TxOut, Transaction])
@settings(max_examples=400)
@given(junk=st.binary(max_size=300))
def test_random_bytes_decode_canonically_or_raise_decode_error(cls, junk):
    try:
        value = cls.deserialize(junk)
    except DecodeError:
        return
    assert value.serialize() == junk  # one encoding per value: nothing else decodes


@pytest.mark.parametrize("cls, strategy", TYPES, ids=[c.__name__ for c, _ in TYPES])
@settings(max_examples=300)
@given(data=st.data())
def test_mutated_encodings_decode_canonically_or_raise_decode_error(cls, strategy, data):
    encoded = _mutations(data.draw(strategy).serialize(), data.draw)
    try:
        value = cls.deserialize(encoded)
    except DecodeError:
        return
    assert value.serialize() == encoded


@pytest.mark.parametrize("junk", [None, "00", 7])
def test_non_bytes_input_is_a_decode_error(junk):
    with pytest.raises(DecodeError):
        Transaction.deserialize(junk)


# ----------------------------------------------------------- exact encoding


def test_serialization_layout_is_the_documented_one():
    prev = OutPoint(bytes(range(32)), 7)
    tx = Transaction(
        2,
        (TxIn(prev, b"\x30" * 70, b"\x02" * 33),),
        (TxOut(5 * 10**8, b"\xaa" * 20), TxOut(-1, b"\xbb" * 20)),
        600_000,
    )
    expected = (
        struct.pack("<i", 2)
        + b"\x01" + bytes(range(32)) + struct.pack("<I", 7) + b"\x46" + b"\x30" * 70 + b"\x21" + b"\x02" * 33
        + b"\x02" + struct.pack("<q", 5 * 10**8) + b"\xaa" * 20 + struct.pack("<q", -1) + b"\xbb" * 20
        + struct.pack("<I", 600_000)
    )
    assert tx.serialize() == expected
    assert tx.size == len(expected)
    assert tx.txid == sha256d(expected)
    assert tx.txid_hex() == sha256d(expected)[::-1].hex()


def test_txid_is_cached_and_tracks_the_signature():
    tx = make_coinbase(1, [TxOut(1, b"\x01" * 20)])
    assert tx.txid is tx.txid
    other = make_coinbase(1, [TxOut(1, b"\x01" * 20)], extra_nonce=1)
    assert other.txid != tx.txid and other != tx


# -------------------------------------------------------- decoder limits


def _raw_tx(inputs: bytes, n_in: int = 1, outputs: bytes = b"", n_out: int = 0) -> bytes:
    return struct.pack("<i", 1) + bytes((n_in,)) + inputs + bytes((n_out,)) + outputs + struct.pack("<I", 0)


PREV = b"\x11" * 32 + struct.pack("<I", 0)
NULL = b"\x00" * 32 + b"\xff\xff\xff\xff"


@pytest.mark.parametrize(
    "raw, match",
    [
        (_raw_tx(NULL + b"\x01\x00" + b"\x00"), "coinbase data"),  # 1 byte of coinbase data
        (_raw_tx(NULL + b"\x65" + b"\x00" * 101 + b"\x00"), "exceeds limit"),  # 101 bytes
        (_raw_tx(NULL + b"\x02\x00\x00" + b"\x01\x02"), "no public key"),
        (_raw_tx(PREV + b"\x49" + b"\x30" * 73 + b"\x00"), "signature is 73 bytes"),
        (_raw_tx(PREV + b"\x00" + b"\x22" + b"\x02" * 34), "exceeds limit"),
        (_raw_tx(PREV + b"\xfd\x05\x00" + b"\x00" * 5 + b"\x00"), "non-canonical"),
        (_raw_tx(b"", n_in=0xFC), "exceeds"),  # a count the remaining bytes cannot hold
        (struct.pack("<i", 1) + b"\xff" + b"\x00" * 8 + b"\x00" * 5, "non-canonical"),
        (_raw_tx(b"", n_in=0, outputs=b"\x00" * 27, n_out=1), "truncated"),
    ],
)
def test_decoder_limits(raw, match):
    with pytest.raises(DecodeError, match=match):
        Transaction.deserialize(raw)


def test_decoder_accepts_the_boundaries():
    cb = _raw_tx(NULL + b"\x02\x00\x00" + b"\x00")
    assert Transaction.deserialize(cb).is_coinbase()
    spend = _raw_tx(PREV + b"\x48" + b"\x30" * 72 + b"\x21" + b"\x02" * 33)
    assert len(Transaction.deserialize(spend).inputs[0].signature) == 72
    empty = _raw_tx(b"", n_in=0)
    assert Transaction.deserialize(empty).inputs == ()


@pytest.mark.parametrize(
    "build",
    [
        lambda: OutPoint(b"\x00" * 31, 0),
        lambda: OutPoint(b"\x00" * 32, -1),
        lambda: OutPoint(b"\x00" * 32, 2**32),
        lambda: TxOut(2**63, b"\x00" * 20),
        lambda: TxOut(1, b"\x00" * 21),
        lambda: TxOut(1.5, b"\x00" * 20),
        lambda: TxIn(OutPoint.NULL, b"\x00", b""),
        lambda: TxIn(OutPoint.NULL, b"\x00" * 101, b""),
        lambda: TxIn(OutPoint.NULL, b"\x00\x00", b"\x02" * 33),
        lambda: TxIn(OutPoint(b"\x01" * 32, 0), b"\x30" * 73, b""),
        lambda: TxIn(OutPoint(b"\x01" * 32, 0), b"", b"\x02" * 34),
        lambda: TxIn(OutPoint(b"\x01" * 32, 0), "sig", b""),
        lambda: Transaction(2**31, (), (), 0),
        lambda: Transaction(1, (), (), -1),
        lambda: Transaction(1, (TxOut(1, b"\x00" * 20),), (), 0),
    ],
)
def test_constructors_reject_what_the_decoder_would(build):
    with pytest.raises(ValueError):
        build()


def test_values_are_immutable():
    tx = make_coinbase(3, [TxOut(1, b"\x01" * 20)])
    with pytest.raises(AttributeError):
        tx.version = 2  # type: ignore[misc]
    assert isinstance(tx.inputs, tuple)
    assert Transaction(1, [TxIn(OutPoint(b"\x01" * 32, 0))], [], 0).inputs.__class__ is tuple


# ------------------------------------------------------------- coinbase


@pytest.mark.parametrize(
    "height, encoded",
    [
        (0, "00"),  # OP_0
        (1, "51"),  # OP_1
        (16, "60"),  # OP_16
        (17, "0111"),
        (127, "017f"),
        (128, "028000"),  # sign bit set in 0x80, so a zero byte follows
        (255, "02ff00"),
        (256, "020001"),
        (32767, "02ff7f"),
        (32768, "03008000"),
        (227_931, "035b7a03"),  # BIP 34's activation height on Bitcoin main net
        (2**31 - 1, "04ffffff7f"),
        (2**32 - 1, "05ffffffff00"),
    ],
)
def test_bip34_height_encoding(height, encoded):
    assert encode_coinbase_height(height).hex() == encoded
    assert decode_coinbase_height(bytes.fromhex(encoded) + b"\x00rest") == height


@pytest.mark.parametrize(
    "data",
    ["", "0105", "020500", "4f", "0181", "03015b", "0600000000000001", "4c0105", "ff"],
    ids=["empty", "5 pushed not OP_5", "padded", "OP_1NEGATE", "negative", "truncated", "too wide", "PUSHDATA1", "0xff"],
)
def test_non_canonical_heights_are_not_heights(data):
    assert decode_coinbase_height(bytes.fromhex(data)) is None


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1), st.binary(max_size=40))
def test_coinbase_round_trip(height, extra_nonce, message):
    outs = [TxOut(50 * 10**8, b"\x07" * 20)]
    cb = make_coinbase(height, outs, extra_nonce=extra_nonce, message=message)
    assert cb.is_coinbase()
    assert cb.coinbase_height() == height
    assert cb.inputs[0].signature.endswith(message)
    assert 2 <= len(cb.inputs[0].signature) <= 100
    again = Transaction.deserialize(cb.serialize())
    assert again == cb and again.coinbase_height() == height


def test_coinbase_data_limit():
    make_coinbase(2**32 - 1, [], extra_nonce=2**64 - 1, message=b"x" * (100 - 6 - 10))
    with pytest.raises(ValueError, match="at most 100"):
        make_coinbase(2**32 - 1, [], extra_nonce=2**64 - 1, message=b"x" * (100 - 6 - 10 + 1))
    with pytest.raises(ValueError):
        make_coinbase(-1, [])
    with pytest.raises(ValueError):
        make_coinbase(1, [], extra_nonce=-1)


def test_what_is_and_is_not_a_coinbase():
    null_in = TxIn(OutPoint.NULL, b"\x51\x00")
    spend = TxIn(OutPoint(b"\x01" * 32, 0xFFFFFFFF))
    assert Transaction(1, (null_in,), (), 0).is_coinbase()
    assert not Transaction(1, (null_in, null_in), (), 0).is_coinbase()
    assert not Transaction(1, (spend,), (), 0).is_coinbase()  # non-zero txid
    assert not Transaction(1, (TxIn(OutPoint(b"\x00" * 32, 0)),), (), 0).is_coinbase()
    assert Transaction(1, (spend,), (), 0).coinbase_height() is None


# --------------------------------------------------------- signatures


ALICE, BOB, CAROL = PrivateKey(0xA11CE), PrivateKey(0xB0B), PrivateKey(0xCA201)
FUNDING = make_coinbase(10, [TxOut(50 * 10**8, ALICE.public_key.hash160())])


def _unsigned(n_inputs: int = 2) -> Transaction:
    return Transaction(
        1,
        tuple(TxIn(OutPoint(FUNDING.txid, i)) for i in range(n_inputs)),
        (TxOut(30 * 10**8, CAROL.public_key.hash160()), TxOut(19 * 10**8, ALICE.public_key.hash160())),
        0,
    )


def test_signature_digest_preimage_is_exactly_the_documented_one():
    tx = sign_inputs(_unsigned(), [ALICE, BOB])
    for index in range(2):
        pre = struct.pack("<i", tx.version) + bytes((len(tx.inputs),))
        for txin in tx.inputs:
            pre += txin.prevout.txid + struct.pack("<I", txin.prevout.index)
        pre += bytes((len(tx.outputs),))
        for txout in tx.outputs:
            pre += struct.pack("<q", txout.value) + txout.pubkey_hash
        pre += struct.pack("<I", tx.locktime)
        pre += struct.pack("<I", index) + b"\x21" + tx.inputs[index].pubkey
        assert tx.signature_digest(index) == hashlib.sha256(hashlib.sha256(pre).digest()).digest()


@pytest.mark.parametrize("backend", keys.BACKENDS)
def test_sign_inputs_then_verify(backend):
    tx = sign_inputs(_unsigned(), [ALICE, BOB], backend=backend)
    assert tx.inputs[0].pubkey == ALICE.public_key.to_bytes()
    assert tx.inputs[1].pubkey == BOB.public_key.to_bytes()
    for b in keys.BACKENDS:
        assert tx.verify_input_signature(0, backend=b) and tx.verify_input_signature(1, backend=b)
    decoded = Transaction.deserialize(tx.serialize())
    assert decoded.verify_input_signature(0) and decoded.verify_input_signature(1)
    assert sign_inputs(_unsigned(), [ALICE, BOB]) == tx  # deterministic: same txid every time


def test_signature_does_not_replay_across_inputs():
    # Same key on both inputs: only the index in the digest tells the inputs apart.
    tx = sign_inputs(_unsigned(), [ALICE, ALICE])
    a, b = tx.inputs
    assert a.signature != b.signature
    swapped = replace(tx, inputs=(replace(a, signature=b.signature), replace(b, signature=a.signature)))
    assert not swapped.verify_input_signature(0) and not swapped.verify_input_signature(1)
    # Copying input 0's key and signature onto input 1 does not validate either.
    tx = sign_inputs(_unsigned(), [ALICE, BOB])
    a, b = tx.inputs
    copied = replace(tx, inputs=(a, replace(b, signature=a.signature, pubkey=a.pubkey)))
    assert copied.verify_input_signature(0) and not copied.verify_input_signature(1)


def test_signature_does_not_transfer_to_another_key():
    tx = sign_inputs(_unsigned(1), [ALICE])
    stolen = replace(tx, inputs=(replace(tx.inputs[0], pubkey=BOB.public_key.to_bytes()),))
    assert not stolen.verify_input_signature(0)


def test_unsigned_and_garbage_inputs_do_not_verify():
    tx = _unsigned(1)
    assert not tx.verify_input_signature(0)
    junk = replace(tx, inputs=(TxIn(tx.inputs[0].prevout, b"\x30\x00", b"\x02" * 33),))
    assert not junk.verify_input_signature(0)


def _tweaks(tx: Transaction):
    """Every single-field change the digest must notice (apart from the pubkey)."""
    ins, outs = list(tx.inputs), list(tx.outputs)
    yield "version", replace(tx, version=tx.version + 1)
    yield "locktime", replace(tx, locktime=tx.locktime ^ 1)
    for i, txin in enumerate(ins):
        p = txin.prevout
        flip = 2 if p.txid == bytes(32) and p.index ^ 1 == 0xFFFFFFFF else 1  # never make it null
        for name, new in [("txid", OutPoint(bytes([p.txid[0] ^ 1]) + p.txid[1:], p.index)),
                          ("index", OutPoint(p.txid, p.index ^ flip))]:
            yield f"input {i} {name}", replace(tx, inputs=tuple(ins[:i] + [replace(txin, prevout=new)] + ins[i + 1 :]))
    for i, txout in enumerate(outs):
        for name, new in [("value", replace(txout, value=txout.value ^ 1)),
                          ("pkh", replace(txout, pubkey_hash=bytes([txout.pubkey_hash[0] ^ 1]) + txout.pubkey_hash[1:]))]:
            yield f"output {i} {name}", replace(tx, outputs=tuple(outs[:i] + [new] + outs[i + 1 :]))
    yield "extra output", replace(tx, outputs=tuple(outs + [TxOut(0, b"\x00" * 20)]))
    if outs:
        yield "dropped output", replace(tx, outputs=tuple(outs[:-1]))
    yield "extra input", replace(tx, inputs=tuple(ins + [TxIn(OutPoint(b"\x05" * 32, 5))]))


signable = st.builds(
    Transaction,
    st.integers(-(2**31), 2**31 - 2),
    st.lists(st.builds(TxIn, outpoints, st.just(b""), st.binary(min_size=33, max_size=33)), min_size=1, max_size=3).map(tuple),
    st.lists(st.builds(TxOut, st.integers(0, 2**62), pkh), max_size=3).map(tuple),
    u32,
)


@settings(max_examples=100)
@given(signable)
def test_digest_commits_to_every_outpoint_output_and_locktime(tx):
    digests = {tx.signature_digest(i) for i in range(len(tx.inputs))}
    assert len(digests) == len(tx.inputs)  # each index gets its own digest
    for i in range(len(tx.inputs)):
        for what, changed in _tweaks(tx):
            assert changed.signature_digest(i) != tx.signature_digest(i), what


@settings(max_examples=100)
@given(signable, st.data())
def test_digest_covers_own_pubkey_only(tx, data):
    i = data.draw(st.integers(0, len(tx.inputs) - 1))
    new_key = data.draw(st.binary(min_size=33, max_size=33))
    assume(new_key != tx.inputs[i].pubkey)
    ins = list(tx.inputs)
    ins[i] = replace(ins[i], pubkey=new_key, signature=b"\x30" * 70)
    changed = replace(tx, inputs=tuple(ins))
    assert changed.signature_digest(i) != tx.signature_digest(i)
    for j in range(len(tx.inputs)):
        if j != i:  # other inputs' signatures and pubkeys are not in their digests
            assert changed.signature_digest(j) == tx.signature_digest(j)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(signable, st.data())
def test_any_change_after_signing_invalidates_the_signature(tx, data):
    signers = [PrivateKey(data.draw(st.integers(1, keys.CURVE_N - 1))) for _ in tx.inputs]
    signed = sign_inputs(tx, signers)
    assert all(signed.verify_input_signature(i) for i in range(len(tx.inputs)))
    what, changed = data.draw(st.sampled_from(list(_tweaks(signed))))
    i = data.draw(st.integers(0, len(tx.inputs) - 1))
    if i < len(changed.inputs):
        assert not changed.verify_input_signature(i), what


def test_sign_inputs_misuse():
    with pytest.raises(ValueError, match="coinbase"):
        sign_inputs(FUNDING, [ALICE])
    with pytest.raises(ValueError, match="keys"):
        sign_inputs(_unsigned(2), [ALICE])
    with pytest.raises(IndexError):
        _unsigned(1).signature_digest(1)
