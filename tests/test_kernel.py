"""The SHA-256d scan kernel (minichain.mining.kernel) on every backend this machine has.

Each compiled path (SHA-NI, AVX-512, AVX2, portable C) and the pure-Python fallback
must agree with hashlib: on the NIST vectors, on random data, on real Bitcoin headers,
and on which nonce a scan returns. Speed is not tested here (python -m benchmarks.mining).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minichain.mining import kernel
from tests.bitcoin_data import HEADERS

REPO = Path(__file__).resolve().parent.parent
AVAILABLE = kernel.available_backends()
COMPILED = tuple(b for b in AVAILABLE if b != "python")

_UNAVAILABLE_REASON = {
    "sha-ni": "this CPU (or build) has no SHA extensions (CPUID.(EAX=7,ECX=0):EBX bit 29)",
    "avx512": "this CPU (or build) has no AVX-512F with OS support",
    "avx2": "this CPU (or build) has no AVX2 with OS support",
    "portable-c": "the compiled extension minichain._sha256d is not built",
}


def _backend_params(names):
    return [
        pytest.param(b, marks=pytest.mark.skipif(b not in AVAILABLE, reason=_UNAVAILABLE_REASON.get(b, "")))
        for b in names
    ]


ALL = _backend_params(kernel.ALL_BACKENDS)
# Backends with their own SHA-256 compression (the SIMD lane paths only exist as scans).
COMPRESSIONS = _backend_params(("sha-ni", "portable-c", "python"))
C_ONLY = _backend_params(b for b in kernel.ALL_BACKENDS if b != "python")


def ref_hash(header80: bytes) -> int:
    """hashlib's double SHA-256 of a header as Bitcoin compares it (little-endian)."""
    return int.from_bytes(hashlib.sha256(hashlib.sha256(header80).digest()).digest(), "little")


def ref_scan(header76: bytes, target: int, start: int, count: int) -> int | None:
    for nonce in range(start, start + count):
        if ref_hash(header76 + struct.pack("<I", nonce)) <= target:
            return nonce
    return None


def target_from_bits(bits: int) -> int:
    """Bitcoin's compact target (arith_uint256::SetCompact), positive, no overflow."""
    return (bits & 0x007FFFFF) << (8 * ((bits >> 24) - 3))


def real_header(entry) -> tuple[bytes, int, int, int]:
    """(header76, nonce, target, display hash as int) of a tests.bitcoin_data entry."""
    _height, block_hash, version, prev, merkle, ntime, bits, nonce = entry
    header76 = (struct.pack("<I", version) + bytes.fromhex(prev)[::-1] + bytes.fromhex(merkle)[::-1]
                + struct.pack("<II", ntime, bits))
    return header76, nonce, target_from_bits(bits), int(block_hash, 16)


# -- SHA-256 itself ----------------------------------------------------------------------------

# FIPS 180-2, Appendix B.1-B.3 (the same messages are the SHA-256 examples of FIPS 180-4).
NIST_VECTORS = [
    (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    (b"a" * 1_000_000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
]


@pytest.mark.parametrize("backend", COMPRESSIONS)
@pytest.mark.parametrize("message,digest", NIST_VECTORS, ids=["abc", "448-bit", "million-a"])
def test_sha256_nist_vectors(backend, message, digest):
    assert hashlib.sha256(message).hexdigest() == digest  # the vector itself is right
    assert kernel.sha256(message, backend=backend).hex() == digest


@pytest.mark.parametrize("backend", COMPRESSIONS)
def test_sha256_agrees_with_hashlib_at_every_padding_boundary(backend):
    for n in range(0, 200):  # 55/56 and 119/120 bytes change the number of padding blocks
        data = bytes((7 * i + n) & 0xFF for i in range(n))
        assert kernel.sha256(data, backend=backend) == hashlib.sha256(data).digest(), n


@pytest.mark.parametrize("backend", COMPRESSIONS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=700))
def test_sha256d_agrees_with_hashlib(backend, data):
    expected = hashlib.sha256(hashlib.sha256(data).digest()).digest()
    assert kernel.sha256d(data, backend=backend) == expected


def test_round_constants_are_the_ones_fips_180_4_defines():
    """sha256_consts.h: K[t] is the first 32 bits of the fractional part of the cube root
    of the t-th prime, H0[i] of the square root of the i-th prime (FIPS 180-4 4.2.2, 5.3.3)."""
    text = (REPO / "cython_ext" / "sha256_consts.h").read_text()

    def table(name):
        body = re.search(name + r"\[\d+\] = \{(.*?)\};", text, re.S).group(1)
        return [int(x, 16) for x in re.findall(r"0x[0-9a-f]{8}", body)]

    primes = [p for p in range(2, 312) if all(p % q for q in range(2, math.isqrt(p) + 1))][:64]

    def iroot(n, k):  # floor(n ** (1/k)) for big n
        x = int(round(n ** (1.0 / k)))
        while x ** k > n:
            x -= 1
        while (x + 1) ** k <= n:
            x += 1
        return x

    assert table("MC_K") == [iroot(p << 96, 3) & 0xFFFFFFFF for p in primes]
    assert table("MC_H0") == [math.isqrt(p << 64) & 0xFFFFFFFF for p in primes[:8]]


# -- scanning real Bitcoin headers -------------------------------------------------------------


@pytest.mark.parametrize("entry", HEADERS, ids=[f"block-{h[0]}" for h in HEADERS])
def test_real_headers_hash_to_their_block_hash(entry):
    header76, nonce, target, block_hash = real_header(entry)
    header80 = header76 + struct.pack("<I", nonce)
    assert ref_hash(header80) == block_hash <= target
    for backend in COMPILED:
        assert int.from_bytes(kernel.sha256d(header80, backend=backend), "little") == block_hash


def test_the_genesis_header_is_the_one_the_task_names():
    header76, nonce, target, block_hash = real_header(HEADERS[0])
    assert block_hash == 0x000000000019D6689C085AE165831E934FF763AE46A2A6C172B3F1B60A8CE26F
    assert nonce == 2083236893 and target == 0xFFFF << 208
    assert header76[36:68] == bytes.fromhex("4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b")[::-1]
    assert struct.unpack("<II", header76[68:76]) == (1231006505, 0x1D00FFFF)


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("entry", HEADERS, ids=[f"block-{h[0]}" for h in HEADERS])
def test_scan_finds_the_real_nonce_only_in_a_range_that_contains_it(backend, entry):
    header76, nonce, target, _ = real_header(entry)
    span = 3_000 if backend == "python" else 200_000
    assert kernel.scan(header76, target, nonce - span, 2 * span, backend=backend) == nonce
    assert kernel.scan(header76, target, nonce, 1, backend=backend) == nonce
    assert kernel.scan(header76, target, nonce - span, span, backend=backend) is None  # ends just before
    assert kernel.scan(header76, target, nonce + 1, span, backend=backend) is None  # starts just after
    # The real hash meets the target with room to spare; its own value is the tightest target.
    assert kernel.scan(header76, ref_hash(header76 + struct.pack("<I", nonce)), nonce - 7, 15,
                       backend=backend) == nonce
    assert kernel.scan(header76, ref_hash(header76 + struct.pack("<I", nonce)) - 1, nonce - 7, 15,
                       backend=backend) is None


# -- first-match semantics against a hashlib loop ----------------------------------------------


@st.composite
def scan_cases(draw):
    header76 = draw(st.binary(min_size=76, max_size=76))
    count = draw(st.integers(0, 160))
    start = draw(st.one_of(st.integers(0, kernel.NONCE_LIMIT - count),
                           st.just(kernel.NONCE_LIMIT - count),  # ends at 2**32 - 1
                           st.integers(max(0, kernel.NONCE_LIMIT - count - 40), kernel.NONCE_LIMIT - count)))
    kind = draw(st.sampled_from(["random", "hash-of-a-nonce", "just-below-a-hash"]))
    if kind == "random" or count == 0:
        # ~1 in 2**shift hashes qualify, so some ranges have several hits and some none.
        target = draw(st.integers(0, (1 << 256) - 1)) >> draw(st.integers(0, 9))
    else:
        # The exact value of one hash in the range: equal top words, the 256-bit compare decides.
        target = ref_hash(header76 + struct.pack("<I", start + draw(st.integers(0, count - 1))))
        if kind == "just-below-a-hash":
            target = max(target - 1, 0)
    return header76, target, start, count


@pytest.mark.parametrize("backend", ALL)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=scan_cases())
def test_scan_returns_the_first_qualifying_nonce(backend, case):
    header76, target, start, count = case
    assert kernel.scan(header76, target, start, count, backend=backend) == ref_scan(header76, target, start, count)


@pytest.mark.parametrize("backend", ALL)
def test_scan_edges_of_the_nonce_space(backend):
    header76 = hashlib.sha256(b"edges").digest() * 2 + bytes(12)
    top = kernel.NONCE_LIMIT - 1
    anything = (1 << 256) - 1
    assert kernel.scan(header76, anything, 0, 0, backend=backend) is None  # empty range
    assert kernel.scan(header76, anything, kernel.NONCE_LIMIT, 0, backend=backend) is None
    assert kernel.scan(header76, anything, top, 1, backend=backend) == top
    assert kernel.scan(header76, anything, 0, 1, backend=backend) == 0
    # Only the very last nonce qualifies (its exact hash as target, checked to be the only one).
    last = ref_hash(header76 + struct.pack("<I", top))
    start = top - 37
    if ref_scan(header76, last, start, 37) is None:
        assert kernel.scan(header76, last, start, 38, backend=backend) == top
    # Impossible target over a range that ends at the top: nothing, and no wrap-around to 0.
    assert kernel.scan(header76, 0, top - 100, 101, backend=backend) is None


@pytest.mark.parametrize("backend", ALL)
def test_scan_rejects_bad_arguments(backend):
    h = bytes(76)
    with pytest.raises(ValueError, match="76"):
        kernel.scan(bytes(80), 1, 0, 1, backend=backend)
    with pytest.raises(ValueError, match="2\\*\\*32"):
        kernel.scan(h, 1, kernel.NONCE_LIMIT - 5, 6, backend=backend)
    with pytest.raises(ValueError, match="2\\*\\*32"):
        kernel.scan(h, 1, kernel.NONCE_LIMIT, 1, backend=backend)
    with pytest.raises(ValueError):
        kernel.scan(h, 1, -1, 1, backend=backend)
    with pytest.raises(ValueError):
        kernel.scan(h, 1, 0, -1, backend=backend)
    with pytest.raises(ValueError, match="target"):
        kernel.scan(h, 1 << 256, 0, 1, backend=backend)
    with pytest.raises(ValueError, match="target"):
        kernel.scan(h, -1, 0, 1, backend=backend)
    with pytest.raises(TypeError):
        kernel.scan(h, 1, 0.0, 1, backend=backend)
    with pytest.raises(TypeError):
        kernel.scan(76, 1, 0, 1, backend=backend)  # not bytes(76)


def test_unknown_or_unavailable_backends_are_refused():
    with pytest.raises(ValueError, match="unknown"):
        kernel.scan(bytes(76), 1, 0, 1, backend="gpu")
    for name in kernel.ALL_BACKENDS:
        if name not in AVAILABLE:
            with pytest.raises(ValueError, match="not available"):
                kernel.scan(bytes(76), 1, 0, 1, backend=name)


# -- the GIL --------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", C_ONLY)
def test_a_scan_releases_the_gil(backend):
    """While one thread scans, another Python thread keeps running: the longest pause it
    sees is a small fraction of the scan (were the GIL held, it would be the whole scan)."""
    header76 = bytes(range(76))
    t0 = time.perf_counter()
    kernel.scan(header76, 0, 0, 1 << 16, backend=backend)
    rate = (1 << 16) / max(time.perf_counter() - t0, 1e-6)
    count = min(int(rate * 0.6), kernel.NONCE_LIMIT)  # about 0.6 s of hashing

    result: list = []
    scanner = threading.Thread(target=lambda: result.append(kernel.scan(header76, 0, 0, count, backend=backend)))
    ticks, longest_pause = 0, 0.0
    started = last = time.perf_counter()
    scanner.start()
    while scanner.is_alive():
        now = time.perf_counter()
        longest_pause = max(longest_pause, now - last)
        last = now
        ticks += 1
    duration = time.perf_counter() - started
    scanner.join()

    assert result == [None]
    assert duration > 0.2, "the scan was too short to tell"
    assert ticks > 1000
    assert longest_pause < duration / 4, (longest_pause, duration)


# -- choosing the backend ----------------------------------------------------------------------


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env,
                          cwd=REPO, timeout=60)


def test_default_backend_is_a_compiled_one_when_there_is_one():
    forced = os.environ.get(kernel.ENV_VAR, "").strip().lower()
    assert kernel.BACKEND in AVAILABLE
    if forced and forced != "auto":
        assert kernel.BACKEND == forced
    elif COMPILED:
        assert kernel.BACKEND in COMPILED


@pytest.mark.parametrize("backend", ALL)
def test_environment_variable_forces_a_backend(backend):
    out = _run_python("from minichain.mining import kernel; print(kernel.BACKEND)", MINICHAIN_KERNEL=backend)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == backend
    assert out.stderr == ""


def test_environment_variable_with_an_unknown_name_fails_clearly():
    out = _run_python("from minichain.mining import kernel", MINICHAIN_KERNEL="warp-drive")
    assert out.returncode != 0
    assert "MINICHAIN_KERNEL='warp-drive' is not a kernel backend" in out.stderr


def test_without_the_extension_it_falls_back_to_python_with_one_warning():
    code = ("import sys; sys.modules['minichain._sha256d'] = None\n"  # makes the import fail
            "from minichain.mining import kernel\n"
            "import struct\n"
            "print(kernel.BACKEND, kernel.available_backends())\n"
            "print(kernel.scan(bytes(76), 2**255, 0, 10))\n")
    out = _run_python(code, MINICHAIN_KERNEL="auto")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["python ('python',)", "0"]
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and "pure-Python fallback" in lines[0], out.stderr
