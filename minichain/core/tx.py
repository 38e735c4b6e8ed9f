"""UTXO transactions: outpoints, inputs, outputs, coinbase and signature digests.

The wire format is Bitcoin's legacy layout with the script machinery taken out. Every
output pays a 20-byte public-key hash (a P2PKH address); every input names the output
it spends and carries the signature and the public key that unlock it::

    Transaction := i32 version
                   CompactSize n_in   TxIn  * n_in
                   CompactSize n_out  TxOut * n_out
                   u32 locktime
    TxIn        := OutPoint  var_bytes signature  var_bytes pubkey
    OutPoint    := 32-byte txid (internal byte order)  u32 index
    TxOut       := i64 value  20-byte pubkey_hash

Simplifications against Bitcoin, said plainly: no scripts (so no P2SH, multisig or
timelocked outputs), no per-input nSequence, no segwit, one sighash type (ALL). The
txid is sha256d of the whole serialization, signatures included; because a signature
must be strict DER and low-S (``core/keys.py``), nobody but the signer can change it,
so txids are not malleable.

Decoding raises :class:`~minichain.core.encoding.DecodeError` and nothing else. Value
types check their own fields on construction, with the same limits as the decoder, so
every Transaction that exists can be serialized and decodes back to itself. Amount
ranges, double spends and signature validity are *rules*, checked by the validator.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import cached_property
from typing import ClassVar, Iterable, Sequence

from minichain.core import keys
from minichain.core.encoding import DecodeError, Reader, Writer, decode_all
from minichain.core.hashing import sha256d

TXID_SIZE = 32
PUBKEY_HASH_SIZE = 20
NULL_INDEX = 0xFFFFFFFF
# Bitcoin: CheckTransaction's "bad-cb-length" -- coinbase scriptSig is 2..100 bytes.
MIN_COINBASE_DATA = 2
MAX_COINBASE_DATA = 100
# The signature field is the coinbase data in a coinbase, so it shares that bound.
MAX_TXIN_SIGNATURE = MAX_COINBASE_DATA
MAX_TXIN_PUBKEY = keys.PUBLIC_KEY_SIZE

_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1
_U32_MAX = 0xFFFFFFFF


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def _is_bytes(b: object, size: int | None = None) -> bool:
    return isinstance(b, bytes) and (size is None or len(b) == size)


# ------------------------------------------------------------------ OutPoint


@dataclass(frozen=True)
class OutPoint:
    """A reference to output ``index`` of transaction ``txid`` (internal byte order)."""

    txid: bytes
    index: int

    SIZE: ClassVar[int] = TXID_SIZE + 4
    NULL: ClassVar["OutPoint"]

    def __post_init__(self) -> None:
        _require(_is_bytes(self.txid, TXID_SIZE), "OutPoint.txid must be 32 bytes")
        _require(isinstance(self.index, int) and 0 <= self.index <= _U32_MAX, "OutPoint.index must be a u32")

    def is_null(self) -> bool:
        """The coinbase's outpoint: zero txid and index 0xffffffff (Bitcoin: COutPoint::IsNull)."""
        return self.index == NULL_INDEX and self.txid == b"\x00" * TXID_SIZE

    def write(self, w: Writer) -> None:
        w.hash32(self.txid).u32(self.index)

    @classmethod
    def read(cls, r: Reader) -> "OutPoint":
        return cls(r.hash32(), r.u32())

    def serialize(self) -> bytes:
        w = Writer()
        self.write(w)
        return w.getvalue()

    @classmethod
    def deserialize(cls, data: bytes) -> "OutPoint":
        return decode_all(data, cls.read)

    def __repr__(self) -> str:
        return f"OutPoint({self.txid[::-1].hex()}:{self.index})"


OutPoint.NULL = OutPoint(b"\x00" * TXID_SIZE, NULL_INDEX)


# ---------------------------------------------------------------------- TxIn


def _txin_problem(prevout: OutPoint, signature: bytes, pubkey: bytes) -> str | None:
    """The single home of TxIn's size rules, shared by the constructor and the decoder."""
    if prevout.is_null():
        if not MIN_COINBASE_DATA <= len(signature) <= MAX_COINBASE_DATA:
            return f"coinbase data is {len(signature)} bytes; it must be {MIN_COINBASE_DATA}..{MAX_COINBASE_DATA}"
        if pubkey:
            return "a coinbase input carries no public key"
        return None
    if len(signature) > keys.MAX_SIGNATURE_SIZE:
        return f"signature is {len(signature)} bytes; at most {keys.MAX_SIGNATURE_SIZE}"
    if len(pubkey) > MAX_TXIN_PUBKEY:
        return f"public key is {len(pubkey)} bytes; at most {MAX_TXIN_PUBKEY}"
    return None


@dataclass(frozen=True)
class TxIn:
    """Spends ``prevout``. In a coinbase, ``signature`` holds the coinbase data.

    An unsigned input (wallet, before signing) has empty ``signature`` and ``pubkey``.
    """

    prevout: OutPoint
    signature: bytes = b""
    pubkey: bytes = b""

    MIN_SIZE: ClassVar[int] = OutPoint.SIZE + 1 + 1

    def __post_init__(self) -> None:
        _require(isinstance(self.prevout, OutPoint), "TxIn.prevout must be an OutPoint")
        _require(_is_bytes(self.signature) and _is_bytes(self.pubkey), "TxIn.signature and pubkey must be bytes")
        problem = _txin_problem(self.prevout, self.signature, self.pubkey)
        _require(problem is None, f"TxIn: {problem}")

    def write(self, w: Writer) -> None:
        self.prevout.write(w)
        w.var_bytes(self.signature).var_bytes(self.pubkey)

    @classmethod
    def read(cls, r: Reader) -> "TxIn":
        prevout = OutPoint.read(r)
        signature = r.var_bytes(MAX_TXIN_SIGNATURE)
        pubkey = r.var_bytes(MAX_TXIN_PUBKEY)
        problem = _txin_problem(prevout, signature, pubkey)
        if problem is not None:
            raise DecodeError(problem)
        return cls(prevout, signature, pubkey)

    def serialize(self) -> bytes:
        w = Writer()
        self.write(w)
        return w.getvalue()

    @classmethod
    def deserialize(cls, data: bytes) -> "TxIn":
        return decode_all(data, cls.read)


# --------------------------------------------------------------------- TxOut


@dataclass(frozen=True)
class TxOut:
    """Pays ``value`` units (1 coin = 10^8) to the key whose hash160 is ``pubkey_hash``."""

    value: int
    pubkey_hash: bytes

    SIZE: ClassVar[int] = 8 + PUBKEY_HASH_SIZE

    def __post_init__(self) -> None:
        # Range 0..MAX_MONEY is a validation rule; the type only insists the value encodes.
        _require(isinstance(self.value, int) and _I64_MIN <= self.value <= _I64_MAX, "TxOut.value must be an i64")
        _require(_is_bytes(self.pubkey_hash, PUBKEY_HASH_SIZE), "TxOut.pubkey_hash must be 20 bytes")

    def write(self, w: Writer) -> None:
        w.i64(self.value).write(self.pubkey_hash)

    @classmethod
    def read(cls, r: Reader) -> "TxOut":
        return cls(r.i64(), r.read(PUBKEY_HASH_SIZE))

    def serialize(self) -> bytes:
        w = Writer()
        self.write(w)
        return w.getvalue()

    @classmethod
    def deserialize(cls, data: bytes) -> "TxOut":
        return decode_all(data, cls.read)

    def address(self, version: int) -> str:
        return keys.encode_address(self.pubkey_hash, version)


# --------------------------------------------------------------- Transaction


@dataclass(frozen=True)
class Transaction:
    version: int
    inputs: tuple[TxIn, ...]
    outputs: tuple[TxOut, ...]
    locktime: int = 0

    # Derived values (txid, serialization, sighash midstate) are cached_property entries
    # in the instance __dict__; they are not fields, so equality and replace() ignore them.

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        _require(isinstance(self.version, int) and _I32_MIN <= self.version <= _I32_MAX, "version must be an i32")
        _require(isinstance(self.locktime, int) and 0 <= self.locktime <= _U32_MAX, "locktime must be a u32")
        _require(all(isinstance(i, TxIn) for i in self.inputs), "inputs must be TxIn")
        _require(all(isinstance(o, TxOut) for o in self.outputs), "outputs must be TxOut")

    def __hash__(self) -> int:
        return hash(self.txid)

    # -- encoding

    def write(self, w: Writer) -> None:
        w.write(self._serialized)

    def _write_fields(self, w: Writer) -> None:
        w.i32(self.version)
        w.compact_size(len(self.inputs))
        for txin in self.inputs:
            txin.write(w)
        w.compact_size(len(self.outputs))
        for txout in self.outputs:
            txout.write(w)
        w.u32(self.locktime)

    @cached_property
    def _serialized(self) -> bytes:
        w = Writer()
        self._write_fields(w)
        return w.getvalue()

    def serialize(self) -> bytes:
        return self._serialized

    @property
    def size(self) -> int:
        return len(self._serialized)

    @classmethod
    def read(cls, r: Reader) -> "Transaction":
        start = r.position
        version = r.i32()
        # Counts are bounded by what the remaining bytes could possibly hold.
        inputs = tuple(TxIn.read(r) for _ in range(r.count(r.remaining // TxIn.MIN_SIZE)))
        outputs = tuple(TxOut.read(r) for _ in range(r.count(r.remaining // TxOut.SIZE)))
        locktime = r.u32()
        tx = cls(version, inputs, outputs, locktime)
        # The bytes just read are the serialization (the decoder accepts only the
        # canonical encoding), so the txid is hashed from them, not from a re-encoding.
        tx.__dict__["_serialized"] = r.consumed_since(start)
        return tx

    @classmethod
    def deserialize(cls, data: bytes) -> "Transaction":
        """Decode exactly one transaction; trailing bytes are a DecodeError."""
        return decode_all(data, cls.read)

    # -- identity

    @cached_property
    def txid(self) -> bytes:
        """sha256d of the serialization, internal byte order (as stored in OutPoint)."""
        return sha256d(self._serialized)

    def txid_hex(self) -> str:
        """The txid as Bitcoin displays it: byte-reversed hex."""
        return self.txid[::-1].hex()

    # -- coinbase

    def is_coinbase(self) -> bool:
        """Bitcoin: CTransaction::IsCoinBase -- exactly one input, spending the null outpoint."""
        return len(self.inputs) == 1 and self.inputs[0].prevout.is_null()

    def coinbase_height(self) -> int | None:
        """The BIP 34 height at the start of the coinbase data, or None if absent/non-canonical."""
        if not self.is_coinbase():
            return None
        return decode_coinbase_height(self.inputs[0].signature)

    # -- signatures

    @cached_property
    def _sighash_midstate(self) -> "hashlib._Hash":
        w = Writer()
        w.i32(self.version)
        w.compact_size(len(self.inputs))
        for txin in self.inputs:
            txin.prevout.write(w)
        w.compact_size(len(self.outputs))
        for txout in self.outputs:
            txout.write(w)
        w.u32(self.locktime)
        return hashlib.sha256(w.getvalue())

    def signature_digest(self, index: int) -> bytes:
        """The 32-byte digest input ``index`` signs (SIGHASH_ALL-like).

        Exact preimage, all integers little-endian::

            i32 version
            CompactSize n_in,  then for each input:  32-byte prevout txid  u32 prevout index
            CompactSize n_out, then for each output: i64 value  20-byte pubkey_hash
            u32 locktime
            u32 index                    -- the input being signed
            CompactSize len  pubkey      -- that input's public key (33 bytes when valid)

        digest = sha256d(preimage). It commits to every outpoint and output and to the
        locktime, so nothing a signature covers can be changed; it leaves out every
        signature and pubkey (which would be circular) except the signer's own key and
        position, so a signature cannot be replayed on another input or for another key.
        The preimage is prefix-free (counts and lengths precede variable parts), so two
        different transactions cannot share a preimage. Like legacy Bitcoin it does not
        commit to the amount being spent (BIP 143 added that); the spent output's
        pubkey_hash is bound through the pubkey, which the validator checks against it.

        The shared part is hashed once per transaction, so signing or checking every
        input costs linear, not quadratic, time.
        """
        if not 0 <= index < len(self.inputs):
            raise IndexError(f"input index {index} out of range for {len(self.inputs)} inputs")
        h = self._sighash_midstate.copy()
        tail = Writer().u32(index).var_bytes(self.inputs[index].pubkey)
        h.update(tail.getvalue())
        return hashlib.sha256(h.digest()).digest()

    def verify_input_signature(self, index: int, *, backend: str | None = None) -> bool:
        """Does input ``index`` carry a valid signature by its own pubkey?

        Only the cryptography: the validator must also check that hash160(pubkey) is the
        pubkey_hash of the output being spent, which needs the UTXO set.
        """
        txin = self.inputs[index]
        return keys.verify(txin.pubkey, txin.signature, self.signature_digest(index), backend=backend)

    def __repr__(self) -> str:
        return f"Transaction({self.txid_hex()}, {len(self.inputs)} in, {len(self.outputs)} out)"


# ------------------------------------------------------------ coinbase data


def _script_num(n: int) -> bytes:
    """Bitcoin's CScriptNum::serialize for n >= 0: minimal little-endian, sign bit kept clear."""
    out = bytearray()
    while n:
        out.append(n & 0xFF)
        n >>= 8
    if out and out[-1] & 0x80:
        out.append(0x00)
    return bytes(out)


def _push_script_num(n: int) -> bytes:
    """``CScript() << CScriptNum(n)``: a data push of the number's bytes (0 is an empty push)."""
    data = _script_num(n)
    return bytes((len(data),)) + data


def encode_coinbase_height(height: int) -> bytes:
    """BIP 34: the height as ``CScript() << nHeight`` -- OP_0, OP_1..OP_16, or a minimal push.

    Bitcoin's miner and ContextualCheckBlock both build exactly this prefix.
    """
    if not 0 <= height <= _U32_MAX:
        raise ValueError(f"height {height} out of range")
    if height == 0:
        return b"\x00"  # OP_0
    if height <= 16:
        return bytes((0x50 + height,))  # OP_1 .. OP_16
    return _push_script_num(height)


def decode_coinbase_height(data: bytes) -> int | None:
    """Read the BIP 34 height that starts ``data``; None unless it is in canonical form."""
    if not data:
        return None
    op = data[0]
    if op == 0x00:
        height = 0
    elif 0x51 <= op <= 0x60:
        height = op - 0x50
    elif 1 <= op <= 5:
        num = data[1 : 1 + op]
        if len(num) != op or num[-1] & 0x80:  # truncated, or negative
            return None
        height = int.from_bytes(num, "little")
    else:
        return None
    if height > _U32_MAX or not data.startswith(encode_coinbase_height(height)):
        return None  # non-minimal encodings do not count (Bitcoin compares the exact bytes)
    return height


def make_coinbase(height: int, outputs: Iterable[TxOut], extra_nonce: int = 0, message: bytes = b"") -> Transaction:
    """A coinbase for block ``height``: data = BIP 34 height, extra-nonce push, message.

    The extra nonce is pushed like Bitcoin's IncrementExtraNonce does; a miner who runs
    out of header nonces bumps it to change the Merkle root.
    """
    if not 0 <= extra_nonce < 2**64:
        raise ValueError("extra_nonce must be a u64")
    data = encode_coinbase_height(height) + _push_script_num(extra_nonce) + bytes(message)
    if len(data) > MAX_COINBASE_DATA:
        raise ValueError(f"coinbase data would be {len(data)} bytes; at most {MAX_COINBASE_DATA}")
    return Transaction(1, (TxIn(OutPoint.NULL, data, b""),), tuple(outputs), 0)


# ------------------------------------------------------------------ signing


def sign_inputs(tx: Transaction, signing_keys: Sequence[keys.PrivateKey], *, backend: str = "ecdsa") -> Transaction:
    """Return ``tx`` with input i's pubkey and signature filled in by ``signing_keys[i]``.

    The digest leaves signatures out and includes only each input's own pubkey, so all
    pubkeys are set first and every digest is then computed on that one transaction.
    """
    if tx.is_coinbase():
        raise ValueError("a coinbase has nothing to sign")
    if len(signing_keys) != len(tx.inputs):
        raise ValueError(f"{len(signing_keys)} keys for {len(tx.inputs)} inputs")
    with_keys = replace(
        tx,
        inputs=tuple(
            TxIn(txin.prevout, b"", key.public_key.to_bytes()) for txin, key in zip(tx.inputs, signing_keys)
        ),
    )
    signed = tuple(
        replace(txin, signature=key.sign(with_keys.signature_digest(i), backend=backend))
        for i, (txin, key) in enumerate(zip(with_keys.inputs, signing_keys))
    )
    return replace(with_keys, inputs=signed)
