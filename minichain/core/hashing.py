"""Hash functions and Bitcoin's Merkle root."""

from __future__ import annotations

import hashlib


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def sha256d(data: bytes) -> bytes:
    """Double SHA-256, Bitcoin's hash for headers, transactions and Merkle nodes."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def hash160(data: bytes) -> bytes:
    """RIPEMD-160 of SHA-256, Bitcoin's public-key hash (20 bytes)."""
    return hashlib.new("ripemd160", hashlib.sha256(data).digest()).digest()


def merkle_root(hashes: list[bytes]) -> tuple[bytes, bool]:
    """Bitcoin's Merkle root of ``hashes`` (internal byte order) and a mutation flag.

    An odd level duplicates its last hash. Because of that, the transaction lists
    [a, b, c] and [a, b, c, c] share a root (CVE-2012-2459); ``mutated`` is True when
    two identical hashes are paired at any level, which is how Bitcoin Core
    (consensus/merkle.cpp, ComputeMerkleRoot) detects such a list. A block whose root is
    mutated must be rejected without marking its header invalid.

    The root of an empty list is 32 zero bytes, as in Bitcoin Core.
    """
    if not hashes:
        return b"\x00" * 32, False
    level = list(hashes)
    mutated = False
    while len(level) > 1:
        # Check pairs *before* padding: a padded duplicate is the legitimate odd case.
        for i in range(0, len(level) - 1, 2):
            if level[i] == level[i + 1]:
                mutated = True
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0], mutated
