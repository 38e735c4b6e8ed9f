/*
 * sha256d.h - the C side of minichain's proof-of-work kernel (minichain._sha256d).
 *
 * SHA-256 is written from the specification, FIPS PUB 180-4 "Secure Hash Standard"
 * (NIST, August 2015); section numbers in comments refer to it.
 *
 * A scan hashes Bitcoin's 80-byte block header for every nonce in [start, start+count)
 * (start + count <= 2^32; the nonce is the little-endian u32 at bytes 76..79) and
 * returns the first nonce whose double SHA-256, read as a little-endian 256-bit
 * integer, is <= target; -1 when none is. All scans share that contract and mc_job:
 *
 *   mc_scan_portable  the lane scan (sha256_lanes.h) for the baseline instruction set,
 *                     4 nonces per step                               sha256_portable.c
 *   mc_scan_avx2      the same C compiled for AVX2, 8 nonces           sha256_simd.c
 *   mc_scan_avx512    the same C compiled for AVX-512F, 16 nonces      sha256_simd.c
 *   mc_scan_shani     x86 SHA extensions, 2 nonces interleaved         sha256_shani.c
 *
 * The x86 paths may only be called when mc_cpu_paths() (cpu.c) reports them. No
 * function touches Python objects or global state, so the Cython wrapper calls them
 * without the GIL, from any number of threads.
 */
#ifndef MINICHAIN_SHA256D_H
#define MINICHAIN_SHA256D_H

#include <stddef.h>
#include <stdint.h>

/* The x86 paths need GCC or Clang (target attributes, <cpuid.h>); -DMINICHAIN_PORTABLE_ONLY
 * builds without them, to test the fallback. */
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(MINICHAIN_PORTABLE_ONLY)
#define MC_X86_PATHS 1
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Portable pieces shared by all scans (sha256_portable.c); the constants are in
 * sha256_consts.h. */

/* One compression (section 6.2.2) of a 64-byte block into state[8]. */
void mc_sha256_compress_portable(uint32_t state[8], const uint8_t block[64]);

/* Whole-message SHA-256 (padding per section 5.1.1) with a chosen compression. */
typedef void (*mc_compress_fn)(uint32_t state[8], const uint8_t block[64]);
void mc_sha256(mc_compress_fn compress, const uint8_t *data, size_t len, uint8_t out[32]);

/* The per-header work shared by all scans; filled by mc_job_init. */
typedef struct {
    uint32_t mid[8];        /* state after the first 64 header bytes (the midstate) */
    uint32_t w[3];          /* big-endian words 0..2 of the second block: merkle tail, time, bits */
    uint32_t r3[8];         /* state after rounds 0..3 of the second block for W3 = 0 */
    uint32_t target[8];     /* target as little-endian 32-bit words, target[7] most significant */
    uint8_t header[80];     /* the header itself, nonce bytes rewritten for re-checks */
} mc_job;

void mc_job_init(mc_job *job, const uint8_t header76[76], const uint8_t target_le[32]);

/* Full re-hash of one nonce and the exact 256-bit comparison; 1 when it meets the target. */
int mc_job_check(mc_job *job, uint32_t nonce);

typedef int64_t (*mc_scan_fn)(const uint8_t header76[76], const uint8_t target_le[32],
                              uint32_t start, uint64_t count);
int64_t mc_scan_portable(const uint8_t header76[76], const uint8_t target_le[32],
                         uint32_t start, uint64_t count);

/* CPU-specific paths (x86 with GCC or Clang; stubs calling the portable scan elsewhere). */
#define MC_PATH_SHANI 1u   /* SHA extensions (sha256_shani.c) */
#define MC_PATH_AVX2 2u    /* the lane scan, 8 lanes (sha256_simd.c) */
#define MC_PATH_AVX512 4u  /* the lane scan, 16 lanes (sha256_simd.c) */
unsigned mc_compiled_paths(void); /* paths this build contains (cpu.c) */
unsigned mc_cpu_paths(void);      /* paths the running CPU and OS can execute (cpu.c) */

void mc_sha256_compress_shani(uint32_t state[8], const uint8_t block[64]);
int64_t mc_scan_shani(const uint8_t header76[76], const uint8_t target_le[32],
                      uint32_t start, uint64_t count);
int64_t mc_scan_avx2(const uint8_t header76[76], const uint8_t target_le[32],
                     uint32_t start, uint64_t count);
int64_t mc_scan_avx512(const uint8_t header76[76], const uint8_t target_le[32],
                       uint32_t start, uint64_t count);

#ifdef __cplusplus
}
#endif

#endif /* MINICHAIN_SHA256D_H */
