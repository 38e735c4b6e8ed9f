"""secp256k1 keys, strict ECDSA signatures and Base58Check addresses.

Signatures follow Bitcoin's post-2015 policy, here made a consensus rule:

* signing is RFC 6979 deterministic (HMAC-SHA256 nonces), so the same key and digest
  always give the same signature and no RNG failure can leak a key;
* the signature is DER-encoded and must be *strict* DER (BIP 66): one encoding per
  (r, s), no padding, minimal lengths, positive integers, nothing trailing;
* ``s`` must be in the lower half of the group order (the "low-S" rule of BIP 62 /
  BIP 146). Since (r, s) and (r, n - s) both verify, allowing both would let anyone
  change a transaction's id without its owner's key.

Together these make a valid signature unique given (key, digest, nonce), so a
transaction id cannot be malleated by re-encoding its signatures.

Two verification backends give the same answers: ``ecdsa`` (pure Python, sped up by
gmpy2 when installed), the reference that the differential tests compare against, and
``coincurve`` (Bitcoin Core's libsecp256k1, a regular dependency, tens of times
faster), used by default when importable. The environment variable ``MINICHAIN_VERIFY``
picks one (``ecdsa``, ``coincurve`` or ``auto``, the default) for a whole process; it is
read once, here, at import. The strict-DER and low-S checks are done here, before either
backend is called, so both see only canonical signatures and the rules do not depend on
which library is installed.

Simplifications: only compressed public keys exist (33 bytes); the signature carries
no sighash-type byte (every signature commits to the whole transaction, see
``core/tx.py``), so a DER signature is at most 72 bytes rather than Bitcoin's 73.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from typing import Callable

import ecdsa
from ecdsa import SECP256k1, BadSignatureError, MalformedPointError
from ecdsa.util import sigdecode_der

from minichain.core.hashing import hash160, sha256d

try:  # optional fast backend (libsecp256k1)
    import coincurve as _coincurve
except ImportError:  # pragma: no cover - depends on the environment
    _coincurve = None

# secp256k1 domain parameters (SEC 2, section 2.4.1).
CURVE_P = SECP256k1.curve.p()
CURVE_N = SECP256k1.order
HALF_N = CURVE_N // 2

PRIVATE_KEY_SIZE = 32
PUBLIC_KEY_SIZE = 33  # compressed SEC encoding: 0x02/0x03 prefix + 32-byte x
DIGEST_SIZE = 32
# Largest strict-DER secp256k1 signature: 0x30 len (0x02 0x21 r33) (0x02 0x21 s33).
# Bitcoin's MAX is 73 because it appends a sighash-type byte, which we do not.
MAX_SIGNATURE_SIZE = 72
MIN_SIGNATURE_SIZE = 8

ALL_BACKENDS: tuple[str, ...] = ("ecdsa", "coincurve")
BACKENDS: tuple[str, ...] = ALL_BACKENDS if _coincurve is not None else ("ecdsa",)
VERIFY_ENV = "MINICHAIN_VERIFY"
INSTALL_HINT = "pip install coincurve (wheels for CPython 3.11+ on Linux and macOS)"


def choose_backend(wanted: str | None) -> str:
    """The verify backend for a ``MINICHAIN_VERIFY`` value: ``auto`` (or nothing) is the
    fastest installed; a name must be installed. ValueError, one sentence, otherwise."""
    name = (wanted or "auto").strip().lower()
    if name == "auto":
        return "coincurve" if _coincurve is not None else "ecdsa"
    if name not in ALL_BACKENDS:
        raise ValueError(f"{VERIFY_ENV}={wanted!r} is not one of auto, {', '.join(ALL_BACKENDS)}")
    if name not in BACKENDS:
        raise ValueError(f"{VERIFY_ENV}={wanted!r} asks for coincurve, which is not installed ({INSTALL_HINT})")
    return name


# The backend verify() uses by default (python -m benchmarks.crypto measures both). A bad
# MINICHAIN_VERIFY falls back to auto here and leaves its reason in VERIFY_ENV_ERROR, for
# the command line to report as an error rather than a traceback at import.
try:
    VERIFY_BACKEND: str = choose_backend(os.environ.get(VERIFY_ENV))
    VERIFY_ENV_ERROR: str | None = None
except ValueError as _exc:
    VERIFY_BACKEND = choose_backend(None)
    VERIFY_ENV_ERROR = str(_exc)


def backend_description(name: str | None = None) -> str:
    """One line for logs: which library verifies, and what to do about a slow one."""
    name = VERIFY_BACKEND if name is None else name
    if name == "coincurve":
        return f"coincurve {_coincurve_version()} (libsecp256k1)"
    why = "chosen by MINICHAIN_VERIFY" if "coincurve" in BACKENDS else f"coincurve is not installed: {INSTALL_HINT}"
    return (f"python-ecdsa {ecdsa.__version__} ({'gmpy2' if ECDSA_USES_GMPY2 else 'pure-Python integers'}), "
            f"tens of times slower than libsecp256k1; {why}")


def _coincurve_version() -> str:
    try:
        from importlib.metadata import version

        return version("coincurve")
    except Exception:  # pragma: no cover - metadata missing in odd installs
        return "?"
# True when python-ecdsa found gmpy2 and does its big-number arithmetic with it.
ECDSA_USES_GMPY2: bool = bool(getattr(ecdsa.ellipticcurve, "GMPY", False))


class KeyFormatError(ValueError):
    """A private or public key that is not well formed or not on the curve."""


class SignatureFormatError(ValueError):
    """A signature that is not strict DER, or whose r/s is out of range or high-S."""


class AddressError(ValueError):
    """A Base58Check string that is not a valid address for the expected network."""


# --------------------------------------------------------------------------- DER


def _der_int(v: int) -> bytes:
    body = v.to_bytes((v.bit_length() + 7) // 8 or 1, "big")
    if body[0] & 0x80:  # would read as negative: prefix one zero byte
        body = b"\x00" + body
    return b"\x02" + bytes((len(body),)) + body


def encode_signature(r: int, s: int) -> bytes:
    """DER-encode (r, s) minimally. Does *not* normalise s; see :meth:`PrivateKey.sign`."""
    if not (0 < r < CURVE_N and 0 < s < CURVE_N):
        raise SignatureFormatError("r and s must be in [1, n-1]")
    body = _der_int(r) + _der_int(s)
    return b"\x30" + bytes((len(body),)) + body


def _strict_der_int(sig: bytes, pos: int) -> tuple[int, int]:
    """Read one INTEGER at ``pos`` under BIP 66's rules; return (value, next position)."""
    if pos + 2 > len(sig) or sig[pos] != 0x02:
        raise SignatureFormatError("expected a DER INTEGER (0x02)")
    length = sig[pos + 1]
    start, end = pos + 2, pos + 2 + length
    if length == 0:
        raise SignatureFormatError("zero-length integer")
    if end > len(sig):
        raise SignatureFormatError("integer runs past the end of the signature")
    if sig[start] & 0x80:
        raise SignatureFormatError("negative integer")
    if length > 1 and sig[start] == 0x00 and not sig[start + 1] & 0x80:
        raise SignatureFormatError("integer has unnecessary zero padding")
    return int.from_bytes(sig[start:end], "big"), end


def parse_signature(sig: bytes) -> tuple[int, int]:
    """Return (r, s) of a canonical signature, else raise :class:`SignatureFormatError`.

    Canonical means: strict DER as in BIP 66's IsValidSignatureEncoding (without the
    sighash byte): ``0x30 len 0x02 lenR R 0x02 lenS S``, one-byte lengths that add up
    exactly, each integer minimal and positive; then 1 <= r < n and 1 <= s <= n/2.
    """
    if not isinstance(sig, (bytes, bytearray)):
        raise SignatureFormatError("signature must be bytes")
    sig = bytes(sig)
    if not MIN_SIGNATURE_SIZE <= len(sig) <= MAX_SIGNATURE_SIZE:
        raise SignatureFormatError(f"signature length {len(sig)} outside [{MIN_SIGNATURE_SIZE}, {MAX_SIGNATURE_SIZE}]")
    if sig[0] != 0x30:
        raise SignatureFormatError("signature is not a DER SEQUENCE (0x30)")
    if sig[1] != len(sig) - 2:
        raise SignatureFormatError("DER SEQUENCE length does not match the signature length")
    r, pos = _strict_der_int(sig, 2)
    s, pos = _strict_der_int(sig, pos)
    if pos != len(sig):
        raise SignatureFormatError("trailing bytes after s")
    if not 0 < r < CURVE_N:
        raise SignatureFormatError("r out of range")
    if not 0 < s < CURVE_N:
        raise SignatureFormatError("s out of range")
    if s > HALF_N:
        raise SignatureFormatError("high-S signature (BIP 62/146 require s <= n/2)")
    return r, s


def is_canonical_signature(sig: bytes) -> bool:
    try:
        parse_signature(sig)
    except SignatureFormatError:
        return False
    return True


# ------------------------------------------------------------------------- keys


def _check_pubkey_format(b: bytes) -> None:
    if not isinstance(b, (bytes, bytearray)):
        raise KeyFormatError("public key must be bytes")
    if len(b) != PUBLIC_KEY_SIZE:
        raise KeyFormatError(f"public key must be {PUBLIC_KEY_SIZE} bytes (compressed SEC), got {len(b)}")
    if b[0] not in (0x02, 0x03):
        raise KeyFormatError(f"public key prefix 0x{b[0]:02x} is not a compressed key (0x02/0x03)")
    # x must be a field element (SEC 1, 2.3.4). Both libraries also refuse x >= p; checking
    # it here keeps the rule independent of which library is installed.
    if int.from_bytes(b[1:], "big") >= CURVE_P:
        raise KeyFormatError("public key x coordinate is not below the field prime")


def _ecdsa_verifying_key(b: bytes) -> ecdsa.VerifyingKey:
    _check_pubkey_format(b)
    try:
        return ecdsa.VerifyingKey.from_string(bytes(b), curve=SECP256k1, valid_encodings=("compressed",))
    except (MalformedPointError, ValueError, AssertionError) as e:
        raise KeyFormatError("public key is not a point on secp256k1") from e


class PublicKey:
    """A secp256k1 point, known by its 33-byte compressed encoding."""

    __slots__ = ("_bytes", "_vk")

    def __init__(self, encoded: bytes, vk: ecdsa.VerifyingKey) -> None:
        self._bytes = encoded
        self._vk = vk

    @classmethod
    def from_bytes(cls, b: bytes) -> "PublicKey":
        """Parse a compressed SEC key; raise :class:`KeyFormatError` for anything else."""
        return cls(bytes(b), _ecdsa_verifying_key(b))

    def to_bytes(self) -> bytes:
        return self._bytes

    def hash160(self) -> bytes:
        return hash160(self._bytes)

    def address(self, version: int) -> str:
        return encode_address(self.hash160(), version)

    def verify(self, signature: bytes, digest: bytes, *, backend: str | None = None) -> bool:
        return verify(self._bytes, signature, digest, backend=backend)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other._bytes == self._bytes

    def __hash__(self) -> int:
        return hash(self._bytes)

    def __repr__(self) -> str:
        return f"PublicKey({self._bytes.hex()})"


class PrivateKey:
    """A secp256k1 secret exponent d, 1 <= d < n."""

    __slots__ = ("_d", "_sk", "_public")

    def __init__(self, d: int) -> None:
        if not 0 < d < CURVE_N:
            raise KeyFormatError("private key must be in [1, n-1]")
        self._d = d
        self._sk = ecdsa.SigningKey.from_secret_exponent(d, curve=SECP256k1, hashfunc=hashlib.sha256)
        self._public: PublicKey | None = None

    @classmethod
    def generate(cls) -> "PrivateKey":
        return cls(1 + secrets.randbelow(CURVE_N - 1))

    @classmethod
    def from_bytes(cls, b: bytes) -> "PrivateKey":
        if not isinstance(b, (bytes, bytearray)) or len(b) != PRIVATE_KEY_SIZE:
            raise KeyFormatError(f"private key must be {PRIVATE_KEY_SIZE} bytes")
        return cls(int.from_bytes(b, "big"))

    def to_bytes(self) -> bytes:
        return self._d.to_bytes(PRIVATE_KEY_SIZE, "big")

    @property
    def public_key(self) -> PublicKey:
        if self._public is None:
            vk = self._sk.get_verifying_key()
            self._public = PublicKey(vk.to_string("compressed"), vk)
        return self._public

    def sign(self, digest: bytes, *, backend: str = "ecdsa") -> bytes:
        """Sign a 32-byte digest: RFC 6979 nonce, low-S, strict DER.

        Both backends implement RFC 6979 with HMAC-SHA256, so they return the same bytes.
        """
        if not isinstance(digest, (bytes, bytearray)) or len(digest) != DIGEST_SIZE:
            raise ValueError(f"digest must be {DIGEST_SIZE} bytes")
        digest = bytes(digest)
        if backend == "coincurve":
            if _coincurve is None:
                raise ValueError("coincurve is not installed")
            # libsecp256k1 signs with RFC 6979 and always returns low-S DER.
            return _coincurve.PrivateKey(self.to_bytes()).sign(digest, hasher=None)
        if backend != "ecdsa":
            raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")
        r, s = self._sk.sign_digest_deterministic(
            digest, hashfunc=hashlib.sha256, sigencode=lambda r, s, order: (r, s)
        )
        if s > HALF_N:  # low-S: (r, n - s) is the other valid signature; keep the small one
            s = CURVE_N - s
        return encode_signature(r, s)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PrivateKey) and hmac.compare_digest(self.to_bytes(), other.to_bytes())

    def __hash__(self) -> int:
        return hash(self.public_key)

    def __repr__(self) -> str:
        return f"PrivateKey(<secret>, public={self.public_key.to_bytes().hex()})"


# ---------------------------------------------------------------- verification


def _verify_ecdsa(pubkey: bytes, signature: bytes, digest: bytes) -> bool:
    try:
        vk = _ecdsa_verifying_key(pubkey)
        return vk.verify_digest(signature, digest, sigdecode=sigdecode_der)
    except (KeyFormatError, BadSignatureError):
        return False


def _verify_coincurve(pubkey: bytes, signature: bytes, digest: bytes) -> bool:
    try:
        return _coincurve.PublicKey(pubkey).verify(signature, digest, hasher=None)
    except ValueError:  # unparsable key or signature
        return False


_BACKEND_FUNCS: dict[str, Callable[[bytes, bytes, bytes], bool]] = {"ecdsa": _verify_ecdsa}
if _coincurve is not None:
    _BACKEND_FUNCS["coincurve"] = _verify_coincurve


def verify(pubkey: bytes, signature: bytes, digest: bytes, *, backend: str | None = None) -> bool:
    """True iff ``signature`` is a canonical signature of ``digest`` by ``pubkey``.

    Never raises for bad input: a malformed key, a non-strict-DER or high-S signature,
    r or s out of range, or a digest that is not 32 bytes all give False. ``backend``
    picks the library ("ecdsa" or "coincurve"; default :data:`VERIFY_BACKEND`); an
    unknown backend name is a programming error and raises ValueError.
    """
    name = VERIFY_BACKEND if backend is None else backend
    func = _BACKEND_FUNCS.get(name)
    if func is None:
        raise ValueError(f"unknown or unavailable backend {name!r}; available: {BACKENDS}")
    if not isinstance(digest, (bytes, bytearray)) or len(digest) != DIGEST_SIZE:
        return False
    try:
        _check_pubkey_format(pubkey)
        parse_signature(signature)
    except (KeyFormatError, SignatureFormatError):
        return False
    return func(bytes(pubkey), bytes(signature), bytes(digest))


# ------------------------------------------------------------ Base58Check


# Bitcoin's alphabet (base58.cpp): no 0, O, I or l, which are easily confused.
B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(B58_ALPHABET)}
ADDRESS_HASH_SIZE = 20
CHECKSUM_SIZE = 4
_ADDRESS_PAYLOAD_SIZE = 1 + ADDRESS_HASH_SIZE + CHECKSUM_SIZE
# 25 bytes never need more than 35 Base58 characters (and 35 only with leading zeros).
MAX_ADDRESS_CHARS = 35


def b58encode(data: bytes) -> str:
    """Base58 as Bitcoin does it: a big-endian number, each leading zero byte as '1'."""
    data = bytes(data)
    zeros = len(data) - len(data.lstrip(b"\x00"))
    n = int.from_bytes(data, "big")
    digits = []
    while n:
        n, rem = divmod(n, 58)
        digits.append(B58_ALPHABET[rem])
    return "1" * zeros + "".join(reversed(digits))


def b58decode(s: str) -> bytes:
    """Inverse of :func:`b58encode`; raises :class:`AddressError` for a non-Base58 character."""
    if not isinstance(s, str):
        raise AddressError(f"expected a string, got {type(s).__name__}")
    n = 0
    for pos, c in enumerate(s):
        digit = _B58_INDEX.get(c)
        if digit is None:
            raise AddressError(
                f"invalid Base58 character {c!r} at position {pos} (the alphabet has no 0, O, I or l)"
            )
        n = n * 58 + digit
    zeros = len(s) - len(s.lstrip("1"))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    return b"\x00" * zeros + body


def _checksum(payload: bytes) -> bytes:
    return sha256d(payload)[:CHECKSUM_SIZE]


def b58check_encode(payload: bytes) -> str:
    payload = bytes(payload)
    return b58encode(payload + _checksum(payload))


def b58check_decode(s: str) -> bytes:
    """Decode Base58Check and return the payload; a wrong checksum raises AddressError."""
    return _split_checksum(b58decode(s))


def _split_checksum(raw: bytes) -> bytes:
    if len(raw) < CHECKSUM_SIZE:
        raise AddressError("too short to carry a checksum")
    payload, check = raw[:-CHECKSUM_SIZE], raw[-CHECKSUM_SIZE:]
    if not hmac.compare_digest(_checksum(payload), check):
        raise AddressError("bad checksum: the address is mistyped or corrupted")
    return payload


def encode_address(pubkey_hash: bytes, version: int) -> str:
    """Base58Check(version byte || 20-byte public-key hash), Bitcoin's P2PKH address."""
    if len(pubkey_hash) != ADDRESS_HASH_SIZE:
        raise ValueError(f"public-key hash must be {ADDRESS_HASH_SIZE} bytes, got {len(pubkey_hash)}")
    if not 0 <= version <= 0xFF:
        raise ValueError(f"address version must be one byte, got {version}")
    return b58check_encode(bytes((version,)) + bytes(pubkey_hash))


def decode_address(addr: str, version: int | None = None) -> bytes:
    """Return the 20-byte public-key hash of ``addr``.

    Raises :class:`AddressError` for a non-Base58 character, a wrong length, a bad
    checksum (so a mistyped address is detected rather than paid), or -- when ``version``
    is given -- an address of another network.
    """
    if not isinstance(addr, str):
        raise AddressError(f"expected a string, got {type(addr).__name__}")
    if len(addr) > MAX_ADDRESS_CHARS:
        raise AddressError(f"{len(addr)} characters is too long for an address (at most {MAX_ADDRESS_CHARS})")
    raw = b58decode(addr)
    if len(raw) != _ADDRESS_PAYLOAD_SIZE:
        raise AddressError(
            f"address decodes to {len(raw)} bytes; expected {_ADDRESS_PAYLOAD_SIZE} "
            "(version + 20-byte hash + 4-byte checksum)"
        )
    payload = _split_checksum(raw)
    if version is not None and payload[0] != version:
        raise AddressError(
            f"address has version byte 0x{payload[0]:02x}, expected 0x{version:02x}: it is for another network"
        )
    return payload[1:]
