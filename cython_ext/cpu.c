/*
 * cpu.c - which of the scan paths this build contains and the running CPU can execute.
 *
 * x86 only, read from CPUID as the Intel SDM (vol. 2, CPUID) documents it; the SIMD
 * paths also need the OS to save the wider registers, which XGETBV(0) (XCR0) reports.
 * __builtin_cpu_supports is not used because GCC 12 has no name for the SHA bit.
 */
#include "sha256d.h"

#ifdef MC_X86_PATHS

#include <cpuid.h>

unsigned mc_compiled_paths(void)
{
    return MC_PATH_SHANI | MC_PATH_AVX2 | MC_PATH_AVX512;
}

static uint64_t read_xcr0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

unsigned mc_cpu_paths(void)
{
    unsigned int eax, ebx, ecx, edx, leaf1_ecx, paths = 0;
    uint64_t xcr0 = 0;
    int os_avx, os_avx512;

    if (!__get_cpuid(1, &eax, &ebx, &leaf1_ecx, &edx) || __get_cpuid_max(0, 0) < 7)
        return 0;
    if (leaf1_ecx & (1u << 27)) /* OSXSAVE: XGETBV is usable */
        xcr0 = read_xcr0();
    os_avx = (leaf1_ecx & (1u << 28)) && (xcr0 & 0x6) == 0x6;      /* AVX; XMM and YMM state */
    os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;                   /* opmask, ZMM state */

    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    if ((ebx & (1u << 29)) && (leaf1_ecx & (1u << 19)) && (leaf1_ecx & (1u << 9)))
        paths |= MC_PATH_SHANI; /* SHA, SSE4.1, SSSE3 */
    if (os_avx && (ebx & (1u << 5)))
        paths |= MC_PATH_AVX2;
    if (os_avx512 && (ebx & (1u << 16)))
        paths |= MC_PATH_AVX512; /* AVX512F */
    return paths;
}

#else

unsigned mc_compiled_paths(void) { return 0; }
unsigned mc_cpu_paths(void) { return 0; }

#endif
