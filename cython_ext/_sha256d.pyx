# cython: language_level=3, boundscheck=False, wraparound=False
"""minichain._sha256d: the compiled SHA-256d header scan (C in cython_ext/, see sha256d.h).

Thin bindings only: argument checking, backend choice and the pure-Python fallback
live in minichain/mining/kernel.py, which is the module to import.

Backends (names shared with kernel.py):
  "sha-ni"      x86 SHA extensions, two nonces interleaved      (sha256_shani.c)
  "avx512"      the lane scan, 16 nonces per AVX-512 register   (sha256_simd.c)
  "avx2"        the lane scan, 8 nonces per AVX2 register       (sha256_simd.c)
  "portable-c"  the lane scan for the baseline instruction set  (sha256_portable.c)
"""

from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t


cdef extern from "sha256d.h" nogil:
    ctypedef void (*mc_compress_fn)(uint32_t *state, const uint8_t *block)
    void mc_sha256_compress_portable(uint32_t *state, const uint8_t *block)
    void mc_sha256_compress_shani(uint32_t *state, const uint8_t *block)
    void mc_sha256(mc_compress_fn compress, const uint8_t *data, size_t length, uint8_t *out)
    ctypedef int64_t (*mc_scan_fn)(const uint8_t *header76, const uint8_t *target_le,
                                   uint32_t start, uint64_t count)
    int64_t mc_scan_portable(const uint8_t *header76, const uint8_t *target_le,
                             uint32_t start, uint64_t count)
    int64_t mc_scan_shani(const uint8_t *header76, const uint8_t *target_le,
                          uint32_t start, uint64_t count)
    int64_t mc_scan_avx2(const uint8_t *header76, const uint8_t *target_le,
                         uint32_t start, uint64_t count)
    int64_t mc_scan_avx512(const uint8_t *header76, const uint8_t *target_le,
                           uint32_t start, uint64_t count)
    unsigned MC_PATH_SHANI, MC_PATH_AVX2, MC_PATH_AVX512
    unsigned mc_compiled_paths()
    unsigned mc_cpu_paths()


cdef unsigned _paths = mc_compiled_paths() & mc_cpu_paths()

#: Backends this build contains, whether or not this CPU can run them.
COMPILED = tuple(
    name
    for name, bit in (("sha-ni", MC_PATH_SHANI), ("avx512", MC_PATH_AVX512), ("avx2", MC_PATH_AVX2))
    if mc_compiled_paths() & bit
) + ("portable-c",)

#: Backends this build contains and this CPU can run.
BACKENDS = tuple(
    name
    for name, bit in (("sha-ni", MC_PATH_SHANI), ("avx512", MC_PATH_AVX512), ("avx2", MC_PATH_AVX2))
    if _paths & bit
) + ("portable-c",)


cdef mc_scan_fn _scan_fn(str backend) except NULL:
    if backend not in BACKENDS:
        if backend in COMPILED:
            raise ValueError(f"backend {backend!r} is not supported by this CPU")
        raise ValueError(f"unknown compiled backend {backend!r}; this machine has {BACKENDS}")
    if backend == "sha-ni":
        return mc_scan_shani
    if backend == "avx512":
        return mc_scan_avx512
    if backend == "avx2":
        return mc_scan_avx2
    return mc_scan_portable


def sha256(bytes data not None, str backend="portable-c"):
    """SHA-256 of ``data``, compressed with SHA-NI for backend "sha-ni", else portable C.

    (The SIMD lane backends only exist as header scans; their hashing is checked by
    scanning.)
    """
    cdef uint8_t out[32]
    cdef const uint8_t *p = data
    cdef size_t n = len(data)
    _scan_fn(backend)  # validates the name
    cdef mc_compress_fn fn = (
        mc_sha256_compress_shani if backend == "sha-ni" else mc_sha256_compress_portable
    )
    if n >= 65536:
        with nogil:
            mc_sha256(fn, p, n, out)
    else:
        mc_sha256(fn, p, n, out)
    return (<char *>out)[:32]


def scan(bytes header76 not None, bytes target_le not None, uint32_t start, uint64_t count,
         str backend):
    """First nonce in [start, start+count) whose hash meets the target, or -1.

    ``target_le`` is the 256-bit target as 32 little-endian bytes. The whole scan runs
    without the GIL.
    """
    cdef mc_scan_fn fn = _scan_fn(backend)
    cdef const uint8_t *h = header76
    cdef const uint8_t *t = target_le
    cdef int64_t found
    if len(header76) != 76 or len(target_le) != 32:
        raise ValueError("header76 must be 76 bytes and target_le 32 bytes")
    if <uint64_t>start + count > (<uint64_t>1 << 32):
        raise ValueError("nonce range passes 2**32")
    with nogil:
        found = fn(h, t, start, count)
    return found
