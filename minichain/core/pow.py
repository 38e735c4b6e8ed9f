"""Proof of work: compact targets, block work and Bitcoin's difficulty retarget.

These functions follow Bitcoin Core bit for bit: ``bits_to_target`` is
``arith_uint256::SetCompact``, ``target_to_bits`` is ``GetCompact``, ``block_work`` is
``GetBlockProof`` (chain.cpp), ``check_proof_of_work`` is ``CheckProofOfWork`` and
``retarget`` is ``CalculateNextWorkRequired`` (pow.cpp).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from minichain.core.block import BlockHeader
    from minichain.params import Params

_U256 = 1 << 256


def decode_compact(bits: int) -> tuple[int, bool, bool]:
    """``SetCompact``: (target, negative, overflow) exactly as Bitcoin Core computes them."""
    if not 0 <= bits <= 0xFFFFFFFF:
        raise ValueError(f"compact bits must be a 32-bit unsigned integer, got {bits!r}")
    size = bits >> 24
    word = bits & 0x007FFFFF
    if size <= 3:
        word >>= 8 * (3 - size)  # Core shifts nWord in place; the flags below see the result
        target = word
    else:
        target = (word << (8 * (size - 3))) % _U256
    negative = word != 0 and (bits & 0x00800000) != 0
    overflow = word != 0 and (size > 34 or (word > 0xFF and size > 33) or (word > 0xFFFF and size > 32))
    return target, negative, overflow


def bits_to_target(bits: int) -> int:
    """The 256-bit target a compact ``bits`` value encodes.

    Raises ValueError for a negative, overflowing or zero target: none of them can be
    the target of a valid block.
    """
    target, negative, overflow = decode_compact(bits)
    if negative:
        raise ValueError(f"compact bits {bits:#010x} encode a negative target")
    if overflow:
        raise ValueError(f"compact bits {bits:#010x} overflow 256 bits")
    if target == 0:
        raise ValueError(f"compact bits {bits:#010x} encode a zero target")
    return target


def target_to_bits(target: int) -> int:
    """``GetCompact``: the compact form of a non-negative target (precision is lost)."""
    if not 0 <= target < _U256:
        raise ValueError("target must be in [0, 2^256)")
    size = (target.bit_length() + 7) // 8
    if size <= 3:
        compact = target << (8 * (3 - size))
    else:
        compact = target >> (8 * (size - 3))
    # The mantissa is signed: if its top bit would be set, shift it into the next byte.
    if compact & 0x00800000:
        compact >>= 8
        size += 1
    return compact | (size << 24)


def block_work(bits: int) -> int:
    """Expected number of hashes to find a block at ``bits``: 2^256 // (target + 1).

    Like ``GetBlockProof``, invalid bits count as zero work.
    """
    try:
        target = bits_to_target(bits)
    except ValueError:
        return 0
    return _U256 // (target + 1)


def hash_to_int(block_hash: bytes) -> int:
    """A hash in internal byte order, read as Bitcoin reads it: little-endian uint256."""
    return int.from_bytes(block_hash, "little")


def check_proof_of_work(header: "BlockHeader", params: "Params") -> bool:
    """True when ``bits`` is a valid target no easier than the pow limit and the hash meets it."""
    target, negative, overflow = decode_compact(header.bits)
    if negative or overflow or target == 0 or target > params.pow_limit:
        return False
    return hash_to_int(header.hash) <= target


def retarget(last_bits: int, first_time: int, last_time: int, params: "Params") -> int:
    """Bitcoin's ``CalculateNextWorkRequired``.

    ``first_time`` is the time of the first block of the window (retarget_interval - 1
    blocks before the last one, Bitcoin's off-by-one included) and ``last_time`` that
    of the last block. The actual timespan is clamped to [timespan/4, timespan*4], the
    target scaled by actual/expected and capped at the pow limit.
    """
    if params.no_retarget:
        return last_bits
    timespan = params.target_timespan
    actual = last_time - first_time
    actual = max(timespan // 4, min(actual, timespan * 4))
    target, _, _ = decode_compact(last_bits)
    # arith_uint256 arithmetic wraps modulo 2^256; mirror it so we agree bit for bit.
    new_target = ((target * actual) % _U256) // timespan
    if new_target > params.pow_limit:
        new_target = params.pow_limit
    return target_to_bits(new_target)


def is_retarget_height(height: int, params: "Params") -> bool:
    """Bitcoin retargets when ``height % DifficultyAdjustmentInterval() == 0``."""
    return not params.no_retarget and height % params.retarget_interval == 0
