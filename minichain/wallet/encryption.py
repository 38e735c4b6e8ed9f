"""A secret sealed under a passphrase: scrypt to derive a key, ChaCha20-Poly1305 to seal.

The key file (keyfile.py) uses this to keep its seed encrypted at rest. A sealed secret
is a small JSON object::

    {"kdf": "scrypt", "n": 131072, "r": 8, "p": 1, "salt": "<32 hex>", "check": "<32 hex>",
     "cipher": "chacha20-poly1305", "nonce": "<24 hex>", "ciphertext": "<hex, secret + 16-byte tag>"}

- **Key derivation**: scrypt (RFC 7914) over the passphrase (UTF-8, Unicode NFKC, so a
  passphrase typed on two systems that compose accents differently gives the same key)
  and a random 16-byte salt, 64 bytes out: the first 32 are the AEAD key, the next 16
  are stored as ``check``. scrypt's output is PBKDF2-HMAC-SHA256 blocks, so the two
  halves are independent; ``check`` lets a wrong passphrase be told apart from a file
  whose ciphertext was altered (the AEAD alone would fail the same way for both), and
  tells an attacker nothing the ciphertext's tag does not (each guess still costs one
  scrypt), the same trade as the Ethereum keystore's MAC over ``dk[16:32]``.
- **Cost**: N = 2^17, r = 8, p = 1 -- OWASP's Password Storage Cheat Sheet minimum for
  scrypt ("N=2^17, r=8 (1024 bytes), p=1"); r = 8 and p = 1 are the values RFC 7914 s. 2
  says "appear to yield good results". 128 MiB and about half a second here. The scrypt
  paper's file-encryption setting (N = 2^20, 1 GiB, seconds per command) is not used:
  every ``wallet send`` pays this cost once. Each file records its own cost, so a later
  default can be raised without breaking old files.
- **Sealing**: ChaCha20-Poly1305 (RFC 8439, from the ``cryptography`` package) with a
  random 96-bit nonce per sealing and the caller's associated data (the key file binds
  its network and public addresses to the ciphertext that way).

Simplification, said plainly: Python cannot wipe a secret from memory (bytes are
immutable and may be copied by the interpreter); the seed and the derived key live in
the process until it exits, as in any Python wallet.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass

KDF = "scrypt"
CIPHER = "chacha20-poly1305"
SALT_SIZE = 16
KEY_SIZE = 32     # ChaCha20-Poly1305 key (RFC 8439 s. 2.8)
NONCE_SIZE = 12   # its 96-bit nonce
TAG_SIZE = 16     # its Poly1305 tag
CHECK_SIZE = 16
MAX_SECRET_SIZE = 1024
MAX_SCRYPT_MEMORY = 1 << 30  # a hostile file cannot make us allocate more than 1 GiB (128 * r * N)
FIELDS = ("kdf", "n", "r", "p", "salt", "check", "cipher", "nonce", "ciphertext")


class WrongPassphrase(Exception):
    """The passphrase does not derive the key this secret was sealed with."""


class Tampered(Exception):
    """The passphrase is right, but the ciphertext or its associated data was altered."""


@dataclass(frozen=True)
class ScryptCost:
    """scrypt's cost parameters (RFC 7914 s. 2): N (CPU/memory), r (block size), p (parallelism)."""

    n: int = 1 << 17
    r: int = 8
    p: int = 1

    def problem(self) -> str | None:
        """Why these parameters cannot be used (a hostile or damaged file), or None."""
        for name in ("n", "r", "p"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                return f"scrypt {name} is not a positive integer"
        if self.n < 2 or self.n & (self.n - 1):
            return "scrypt N is not a power of 2 above 1"  # RFC 7914 s. 2
        if self.r > 32 or self.p > 16 or 128 * self.r * self.n > MAX_SCRYPT_MEMORY:
            return f"scrypt parameters N={self.n}, r={self.r}, p={self.p} are beyond what a key file uses"
        return None

    def describe(self) -> str:
        return f"scrypt N=2^{self.n.bit_length() - 1}, r={self.r}, p={self.p}"


DEFAULT_COST = ScryptCost()


def derive(passphrase: str, salt: bytes, cost: ScryptCost) -> tuple[bytes, bytes]:
    """(AEAD key, passphrase check) from scrypt(passphrase, salt), 64 bytes split 32 + 16."""
    problem = cost.problem()
    if problem:
        raise ValueError(problem)
    password = unicodedata.normalize("NFKC", passphrase).encode("utf-8")
    # OpenSSL needs 128 * r * (N + 2 + p) bytes (its V and B arrays); leave a little over.
    maxmem = 128 * cost.r * (cost.n + 2 + cost.p) + (1 << 16)
    dk = hashlib.scrypt(password, salt=salt, n=cost.n, r=cost.r, p=cost.p, maxmem=maxmem, dklen=64)
    return dk[:KEY_SIZE], dk[KEY_SIZE:KEY_SIZE + CHECK_SIZE]


class SealingKey:
    """A key derived from a passphrase, able to seal and open secrets. Make one with
    :meth:`new` (fresh salt) or :meth:`unlock` (from a sealed secret's header)."""

    __slots__ = ("cost", "salt", "check", "_key")

    def __init__(self, cost: ScryptCost, salt: bytes, check: bytes, key: bytes) -> None:
        self.cost, self.salt, self.check, self._key = cost, salt, check, key

    def __repr__(self) -> str:  # never the key
        return f"SealingKey({self.cost.describe()})"

    @classmethod
    def new(cls, passphrase: str, cost: ScryptCost = DEFAULT_COST) -> "SealingKey":
        salt = secrets.token_bytes(SALT_SIZE)
        key, check = derive(passphrase, salt, cost)
        return cls(cost, salt, check, key)

    @classmethod
    def unlock(cls, sealed: dict, passphrase: str) -> "SealingKey":
        """The key of ``sealed`` (already checked by :func:`parse_sealed`); raises
        :class:`WrongPassphrase` if ``passphrase`` is not the one it was sealed with."""
        cost = ScryptCost(sealed["n"], sealed["r"], sealed["p"])
        salt = bytes.fromhex(sealed["salt"])
        key, check = derive(passphrase, salt, cost)
        if not hmac.compare_digest(check, bytes.fromhex(sealed["check"])):
            raise WrongPassphrase()
        return cls(cost, salt, check, key)

    def header(self) -> dict:
        """What the associated data and the file record about this key (no secret)."""
        return {"kdf": KDF, "n": self.cost.n, "r": self.cost.r, "p": self.cost.p, "salt": self.salt.hex(),
                "check": self.check.hex(), "cipher": CIPHER}

    def seal(self, secret: bytes, associated_data: bytes) -> dict:
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        if len(secret) > MAX_SECRET_SIZE:
            raise ValueError(f"a sealed secret is at most {MAX_SECRET_SIZE} bytes")
        nonce = secrets.token_bytes(NONCE_SIZE)  # random 96-bit nonce: a handful of sealings per key
        ciphertext = ChaCha20Poly1305(self._key).encrypt(nonce, bytes(secret), associated_data)
        return {**self.header(), "nonce": nonce.hex(), "ciphertext": ciphertext.hex()}

    def open(self, sealed: dict, associated_data: bytes) -> bytes:
        """The secret in ``sealed``; raises :class:`Tampered` if the tag does not verify."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        if any(sealed[k] != v for k, v in self.header().items()):
            raise Tampered()  # sealed under other parameters: not this key's secret
        try:
            return ChaCha20Poly1305(self._key).decrypt(bytes.fromhex(sealed["nonce"]),
                                                       bytes.fromhex(sealed["ciphertext"]), associated_data)
        except InvalidTag:
            raise Tampered() from None


def parse_sealed(data) -> dict:
    """Check the shape of a sealed secret read from a file; raise ValueError(why) if it is
    not one. Returns it unchanged (its hex fields are then known to decode)."""
    if not isinstance(data, dict) or set(data) != set(FIELDS):
        raise ValueError("its encryption header is incomplete")
    if data["kdf"] != KDF or data["cipher"] != CIPHER:
        raise ValueError(f"it is encrypted with {data['kdf']!r}/{data['cipher']!r}, not {KDF}/{CIPHER}")
    problem = ScryptCost(data["n"], data["r"], data["p"]).problem()
    if problem:
        raise ValueError(problem)
    sizes = {"salt": (SALT_SIZE, SALT_SIZE), "check": (CHECK_SIZE, CHECK_SIZE), "nonce": (NONCE_SIZE, NONCE_SIZE),
             "ciphertext": (TAG_SIZE, TAG_SIZE + MAX_SECRET_SIZE)}
    for name, (low, high) in sizes.items():
        value = data[name]
        if not isinstance(value, str) or not re.fullmatch(r"(?:[0-9a-f]{2})*", value):
            raise ValueError(f"its {name} is not lower-case hex")
        if not low <= len(value) // 2 <= high:
            raise ValueError(f"its {name} has the wrong size")
    return data
