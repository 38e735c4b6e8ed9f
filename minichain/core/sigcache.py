"""Signature checking with a cache of signatures already found valid.

Bitcoin Core keeps a cache of (digest, pubkey, signature) triples that verified
(script/sigcache.cpp, CSignatureCache), so a transaction checked when it entered the
mempool is not checked again when its block connects. Verifying a secp256k1 signature
is by far the most expensive step of connecting a block; a lookup is a hash and a set
probe.

Only *valid* triples are stored, and a triple is a complete statement ("this key signed
this digest with this signature"), so a hit can never make an invalid input pass: the
digest commits to the whole transaction and the input's position and key. Whether the
key is the one the spent output asks for is checked by the validator every time (it is
a 20-byte comparison).

The cache is bounded: when full, the oldest entries are dropped (Core uses a cuckoo
cache with random eviction; first-in-first-out keeps runs deterministic here).
"""

from __future__ import annotations

import hashlib

from minichain.core import keys

DEFAULT_MAX_ENTRIES = 200_000


class SignatureCache:
    """A bounded set of verified (digest, pubkey, signature) triples."""

    __slots__ = ("max_entries", "_entries")

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self.max_entries = max_entries
        self._entries: dict[bytes, None] = {}  # insertion-ordered: the first key is the oldest

    @staticmethod
    def _key(digest: bytes, pubkey: bytes, signature: bytes) -> bytes:
        # Lengths are fixed (32-byte digest) or self-delimiting (33-byte key, DER), and the
        # key is prefixed with its length, so the concatenation is unambiguous.
        return hashlib.sha256(digest + bytes((len(pubkey),)) + pubkey + signature).digest()

    def contains(self, digest: bytes, pubkey: bytes, signature: bytes) -> bool:
        return self._key(digest, pubkey, signature) in self._entries

    def add(self, digest: bytes, pubkey: bytes, signature: bytes) -> None:
        key = self._key(digest, pubkey, signature)
        if key in self._entries:
            return
        if len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = None

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class SignatureChecker:
    """Verifies signatures, consulting and filling an optional :class:`SignatureCache`.

    Counts what it does (``verified``: signatures actually checked by the curve library,
    ``cache_hits``: checks answered by the cache), so a caller can report them. A
    benchmark that wants timings wraps :meth:`_verify`; core code reads no clock.
    """

    __slots__ = ("cache", "backend", "store", "verified", "cache_hits")

    def __init__(self, cache: SignatureCache | None = None, *, backend: str | None = None, store: bool = True) -> None:
        self.cache = cache
        self.backend = backend or keys.VERIFY_BACKEND
        # Add newly verified triples to the cache (Core: cacheStore). Blocks store too, so
        # a block disconnected in a reorg and connected again is not re-verified.
        self.store = store
        self.verified = 0
        self.cache_hits = 0

    def _verify(self, pubkey: bytes, signature: bytes, digest: bytes) -> bool:
        return keys.verify(pubkey, signature, digest, backend=self.backend)

    def check(self, pubkey: bytes, signature: bytes, digest: bytes) -> bool:
        cache = self.cache
        if cache is not None and cache.contains(digest, pubkey, signature):
            self.cache_hits += 1
            return True
        self.verified += 1
        ok = self._verify(pubkey, signature, digest)
        if ok and cache is not None and self.store:
            cache.add(digest, pubkey, signature)
        return ok
