/*
 * sha256_simd.c - the lane-parallel scan (sha256_lanes.h) compiled for x86 AVX2
 * (8 nonces per step) and AVX-512F (16 nonces per step), each by function attribute so
 * the rest of the extension keeps the baseline instruction set. They run only when
 * mc_cpu_paths() reports the feature. Elsewhere they fall back to the portable scan.
 */
#include "sha256d.h"

#ifdef MC_X86_PATHS

#define MC_LANES_FN mc_scan_avx2
#define MC_LANES_N 8
#define MC_LANES_ATTR __attribute__((target("avx2")))
#include "sha256_lanes.h"

#define MC_LANES_FN mc_scan_avx512
#define MC_LANES_N 16
#define MC_LANES_ATTR __attribute__((target("avx512f")))
#include "sha256_lanes.h"

#else

int64_t mc_scan_avx2(const uint8_t header76[76], const uint8_t target_le[32],
                     uint32_t start, uint64_t count)
{
    return mc_scan_portable(header76, target_le, start, count);
}

int64_t mc_scan_avx512(const uint8_t header76[76], const uint8_t target_le[32],
                       uint32_t start, uint64_t count)
{
    return mc_scan_portable(header76, target_le, start, count);
}

#endif
