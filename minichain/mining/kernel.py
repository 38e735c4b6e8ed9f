"""The proof-of-work kernel: find a nonce whose header hash meets the target.

``scan(header76, target, start, count)`` hashes Bitcoin's 80-byte header -- the 76
bytes given plus the nonce as a little-endian u32 -- for every nonce in
``[start, start + count)`` and returns the first whose double SHA-256, read as a
little-endian 256-bit integer (Bitcoin's comparison, ``CheckProofOfWork``), is
``<= target``; ``None`` if there is none.

The hashing is the compiled extension ``minichain._sha256d`` (C in ``cython_ext/``,
SHA-256 written from FIPS 180-4), which scans without holding the GIL. It has several
code paths; the ones this CPU can run are in :func:`available_backends`:

=============  ==========================================================================
``sha-ni``     x86 SHA extensions, two nonces interleaved
``avx512``     16 nonces at once in AVX-512 registers (the portable C, compiled for it)
``avx2``       8 nonces at once in AVX2 registers (the same C)
``portable-c`` the same C for the baseline instruction set (4 lanes: SSE2, NEON)
``python``     hashlib, about 1.5 MH/s; used only when the extension is missing
=============  ==========================================================================

:data:`BACKEND` is the one used by default. It is the fastest compiled path, found by
timing each for a few milliseconds at import: which is fastest depends on the CPU (on
some Xeons SHA-NI's two-round instruction issues only every third cycle and 16-lane
AVX-512 is twice as fast; on CPUs without AVX-512 SHA-NI wins). The environment
variable ``MINICHAIN_KERNEL`` names a backend to use instead (``auto`` = choose), and
every function takes ``backend=`` so tests can run each path on one machine.

If the extension was not built (no C compiler at install time), a one-line warning is
logged at import and everything runs on the ``python`` backend, with the same results.
"""

from __future__ import annotations

import hashlib
import logging
import operator
import os
import struct
import time

log = logging.getLogger("minichain.kernel")

NONCE_LIMIT = 1 << 32  # nonces are u32: start + count <= 2**32
TARGET_LIMIT = 1 << 256  # hashes are 256-bit: 0 <= target < 2**256
ENV_VAR = "MINICHAIN_KERNEL"
ALL_BACKENDS = ("sha-ni", "avx512", "avx2", "portable-c", "python")

try:
    from minichain import _sha256d as _ext
except ImportError as exc:  # not built: installed without a C compiler or Cython
    _ext = None
    _EXT_ERROR: str | None = str(exc)
else:
    _EXT_ERROR = None


def available_backends() -> tuple[str, ...]:
    """Backends this installation and CPU can run, compiled ones first; always ends
    with ``python``."""
    compiled: tuple[str, ...] = tuple(_ext.BACKENDS) if _ext is not None else ()
    return compiled + ("python",)


# -- the pure-Python backend ----------------------------------------------------------------

_pack_nonce = struct.Struct("<I").pack


def _scan_python(header76: bytes, target: int, start: int, count: int) -> int | None:
    sha = hashlib.sha256
    midstate = sha(header76[:64])  # the nonce is in the second block; hash the first once
    tail = header76[64:]
    target_be = target.to_bytes(32, "big")
    top = target_be[0]
    for nonce in range(start, start + count):
        first = midstate.copy()
        first.update(tail + _pack_nonce(nonce))
        digest = sha(first.digest()).digest()
        # digest[31] is the most significant byte of the little-endian number.
        if digest[31] <= top and digest[::-1] <= target_be:
            return nonce
    return None


# -- arguments ------------------------------------------------------------------------------


def _check_backend(backend: str | None) -> str:
    if backend is None:
        return BACKEND
    if backend not in ALL_BACKENDS:
        raise ValueError(f"unknown kernel backend {backend!r}; choose from {ALL_BACKENDS}")
    if backend not in available_backends():
        raise ValueError(f"kernel backend {backend!r} is not available here; available: {available_backends()}")
    return backend


def _as_bytes(data: bytes, what: str) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):  # bytes(76) would be 76 zeros
        raise TypeError(f"{what} must be bytes-like, not {type(data).__name__}")
    return bytes(data)


def _check_scan_args(header76: bytes, target: int, start: int, count: int) -> tuple[bytes, int, int, int]:
    header76 = _as_bytes(header76, "header76")
    if len(header76) != 76:
        raise ValueError(f"header76 must be the 76 header bytes before the nonce, got {len(header76)} bytes")
    target, start, count = operator.index(target), operator.index(start), operator.index(count)
    if not 0 <= target < TARGET_LIMIT:
        raise ValueError(f"target must be in [0, 2**256), got {target}")
    if start < 0 or count < 0:
        raise ValueError(f"start and count must be >= 0, got start={start} count={count}")
    if start + count > NONCE_LIMIT:
        raise ValueError(f"nonce range [{start}, {start + count}) passes 2**32 (nonces are 32-bit)")
    return header76, target, start, count


# -- the API --------------------------------------------------------------------------------


def scan(header76: bytes, target: int, start: int, count: int, *, backend: str | None = None) -> int | None:
    """The first nonce in ``[start, start + count)`` whose header hash is ``<= target``.

    ``header76``: the header's first 76 bytes (version .. bits); the nonce is appended
    as a little-endian u32. ``target``: the full 256-bit target (not compact bits).
    Returns ``None`` when no nonce in the range qualifies (always for ``count == 0``).
    Compiled backends release the GIL for the whole scan, so a range should be sized to
    the time a caller can wait (the miner scans ~20 ms chunks).
    """
    header76, target, start, count = _check_scan_args(header76, target, start, count)
    name = _check_backend(backend)
    if count == 0:
        return None
    if name == "python":
        return _scan_python(header76, target, start, count)
    found = _ext.scan(header76, target.to_bytes(32, "little"), start, count, name)
    return None if found < 0 else found


def sha256(data: bytes, *, backend: str | None = None) -> bytes:
    """SHA-256 through the kernel's own C code (the SHA-NI compression for ``sha-ni``,
    the portable one for the other compiled backends; hashlib for ``python``)."""
    data = _as_bytes(data, "data")
    name = _check_backend(backend)
    if name == "python":
        return hashlib.sha256(data).digest()
    return _ext.sha256(data, "sha-ni" if name == "sha-ni" else "portable-c")


def sha256d(data: bytes, *, backend: str | None = None) -> bytes:
    """Double SHA-256 (Bitcoin's header hash), through the kernel's code."""
    return sha256(sha256(data, backend=backend), backend=backend)


# -- choosing the default backend -----------------------------------------------------------

CALIBRATION_NONCES = 1 << 14  # per timing; about 0.4 ms on the fastest path, 2 ms on the slowest


def _calibrate(candidates: tuple[str, ...]) -> str:
    """The fastest of ``candidates``, by CPU time (so other busy processes matter less)
    over a few tiny scans with an impossible target."""
    header = bytes(range(76))
    best_name, best_rate = candidates[0], 0.0
    for name in candidates:
        rate = 0.0
        for _ in range(3):
            t0 = time.thread_time()
            _ext.scan(header, bytes(32), 0, CALIBRATION_NONCES, name)
            elapsed = time.thread_time() - t0
            rate = max(rate, CALIBRATION_NONCES / max(elapsed, 1e-9))
        if rate > best_rate:
            best_name, best_rate = name, rate
    return best_name


def _choose_backend() -> str:
    requested = os.environ.get(ENV_VAR, "").strip().lower()
    if requested and requested != "auto":
        if requested not in ALL_BACKENDS:
            raise ValueError(f"{ENV_VAR}={requested!r} is not a kernel backend; use one of {ALL_BACKENDS} or 'auto'")
        if requested not in available_backends():
            reason = f" (the extension is not built: {_EXT_ERROR})" if _ext is None else ""
            raise RuntimeError(f"{ENV_VAR}={requested!r} is not available on this machine{reason}; "
                               f"available: {available_backends()}")
        return requested
    if _ext is None:
        log.warning("minichain: the compiled SHA-256d kernel minichain._sha256d is not built (%s); mining uses "
                    "the pure-Python fallback, ~20-40x slower (reinstall with a C compiler: pip install .)",
                    _EXT_ERROR)
        return "python"
    compiled = tuple(_ext.BACKENDS)
    return compiled[0] if len(compiled) == 1 else _calibrate(compiled)


#: The backend ``scan`` uses by default: "sha-ni", "avx512", "avx2", "portable-c" or "python".
BACKEND: str = _choose_backend()
