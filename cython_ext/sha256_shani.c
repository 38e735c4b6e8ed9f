/*
 * sha256_shani.c - SHA-256 with the x86 SHA extensions (SHA-NI), and the SHA-NI scan.
 *
 * Algorithm: FIPS PUB 180-4 section 6.2.2; the instructions compute it as follows
 * (Intel 64 and IA-32 Architectures Software Developer's Manual, SHA256RNDS2,
 * SHA256MSG1, SHA256MSG2):
 *   - the eight working variables live in two registers, "ABEF" = {F, E, B, A} and
 *     "CDGH" = {H, G, D, C} (dword 0 first);
 *   - SHA256RNDS2(cdgh, abef, wk) runs two rounds with W[t] + K[t] taken from dwords
 *     0 and 1 of wk and returns the new ABEF; the new CDGH is the old ABEF;
 *   - SHA256MSG1 and SHA256MSG2 compute the sigma0 and sigma1 halves of the message
 *     schedule (section 6.2.2 step 1), four words at a time.
 *
 * The functions are compiled for "sha,sse4.1" by attribute, so the rest of the
 * extension keeps the baseline instruction set; they only run after mc_cpu_paths()
 * (cpu.c: CPUID leaf 7, EBX bit 29) has reported SHA. Without GCC/Clang on x86 this file
 * compiles to stubs that are never selected.
 *
 * The scan (mc_scan_shani) hashes MC_SHANI_WAYS (2) nonces interleaved: each two-round
 * instruction needs the result of the one before (about 4 cycles), so one hash alone
 * leaves the SHA unit idle; the other nonce's instructions fill the gap. The lanes are
 * written out one step at a time (EACH) and tested in a single branch at the end, so
 * the compiler cannot serialise them. Per nonce it runs 30 + 31 SHA256RNDS2 rather
 * than 64: rounds 0..3 of the header's second block come precomputed (mc_job_init), and
 * the second hash stops after rounds 60..61, which already fix H7 (h after round 63 is
 * f after round 61). The padding words enter as precomputed W + K, and the sigma0 terms
 * of the message schedule that only involve padding (or words fixed per header) are
 * constants instead of SHA256MSG1 instructions.
 *
 * Measured on the Xeon this was written on (SHA256RNDS2: latency 4, one issue every 3
 * cycles), the SHA unit caps this path near 61 x 3 cycles per nonce; it reaches about
 * 20 MH/s per core there, half the 16-lane AVX-512 path, which is why kernel.py times
 * the paths rather than assuming SHA-NI is fastest. CPUs whose SHA unit issues every
 * cycle or two (and CPUs without AVX-512) are where this path wins.
 */
#include "sha256d.h"
#include "sha256_consts.h"
#include "sha256_ops.h"

#ifdef MC_X86_PATHS

#include <immintrin.h>

#ifndef MC_SHANI_WAYS
#define MC_SHANI_WAYS 2
#endif

#define MC_TARGET __attribute__((target("sha,sse4.1")))
#define MC_INLINE static inline __attribute__((always_inline, target("sha,sse4.1")))

/* {w0, w1, w2, w3} as dwords 0..3. */
#define V4(w0, w1, w2, w3) _mm_set_epi32((int)(w3), (int)(w2), (int)(w1), (int)(w0))
#define K4(t) V4(MC_K[t], MC_K[(t) + 1], MC_K[(t) + 2], MC_K[(t) + 3])

/* state[8] (a..h) to and from the ABEF / CDGH register pair. */
MC_INLINE void to_abef(const uint32_t s[8], __m128i *abef, __m128i *cdgh)
{
    *abef = V4(s[5], s[4], s[1], s[0]);
    *cdgh = V4(s[7], s[6], s[3], s[2]);
}

/* Four rounds t..t+3 given wk = W[t..t+3] + K[t..t+3]; abef/cdgh keep their roles. */
MC_INLINE void rounds4(__m128i *abef, __m128i *cdgh, __m128i wk)
{
    *cdgh = _mm_sha256rnds2_epu32(*cdgh, *abef, wk);              /* rounds t, t+1 */
    *abef = _mm_sha256rnds2_epu32(*abef, *cdgh, _mm_shuffle_epi32(wk, 0x0e)); /* t+2, t+3 */
}

/* W[t..t+3] from the four previous message vectors (section 6.2.2 step 1), given
 * x = msg1(m_16, m_12) = W[t-16] + sigma0(W[t-15]) (a constant for some padding blocks). */
MC_INLINE __m128i schedule_x(__m128i x, __m128i m_8, __m128i m_4)
{
    x = _mm_add_epi32(x, _mm_alignr_epi8(m_4, m_8, 4)); /* + W[t-7] */
    return _mm_sha256msg2_epu32(x, m_4);                 /* + sigma1(W[t-2]) */
}

MC_INLINE __m128i schedule(__m128i m_16, __m128i m_12, __m128i m_8, __m128i m_4)
{
    return schedule_x(_mm_sha256msg1_epu32(m_16, m_12), m_8, m_4);
}

MC_TARGET void mc_sha256_compress_shani(uint32_t state[8], const uint8_t block[64])
{
    const __m128i bswap = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
    __m128i abef, cdgh, abef0, cdgh0, m[4];
    int t;

    to_abef(state, &abef, &cdgh);
    abef0 = abef;
    cdgh0 = cdgh;
    for (t = 0; t < 4; t++)
        m[t] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(block + 16 * t)), bswap);
#pragma GCC unroll 16
    for (t = 0; t < 64; t += 4) {
        __m128i wk;
        if (t >= 16)
            m[(t / 4) & 3] = schedule(m[(t / 4) & 3], m[(t / 4 + 1) & 3], m[(t / 4 + 2) & 3],
                                      m[(t / 4 + 3) & 3]);
        wk = _mm_add_epi32(m[(t / 4) & 3], K4(t));
        rounds4(&abef, &cdgh, wk);
    }
    abef = _mm_add_epi32(abef, abef0);
    cdgh = _mm_add_epi32(cdgh, cdgh0);
    /* {F, E, B, A} and {H, G, D, C} back to a..h. */
    state[0] = (uint32_t)_mm_extract_epi32(abef, 3);
    state[1] = (uint32_t)_mm_extract_epi32(abef, 2);
    state[2] = (uint32_t)_mm_extract_epi32(cdgh, 3);
    state[3] = (uint32_t)_mm_extract_epi32(cdgh, 2);
    state[4] = (uint32_t)_mm_extract_epi32(abef, 1);
    state[5] = (uint32_t)_mm_extract_epi32(abef, 0);
    state[6] = (uint32_t)_mm_extract_epi32(cdgh, 1);
    state[7] = (uint32_t)_mm_extract_epi32(cdgh, 0);
}

#define N MC_SHANI_WAYS
/* Repeat a step for every interleaved nonce ("lane" L), written out so that the
 * instruction stream alternates between the independent hashes. */
#define LANE_(l, ...) { enum { L = l }; __VA_ARGS__; }
#if N == 1
#define EACH(...) do { LANE_(0, __VA_ARGS__) } while (0)
#elif N == 2
#define EACH(...) do { LANE_(0, __VA_ARGS__) LANE_(1, __VA_ARGS__) } while (0)
#elif N == 3
#define EACH(...) do { LANE_(0, __VA_ARGS__) LANE_(1, __VA_ARGS__) LANE_(2, __VA_ARGS__) } while (0)
#elif N == 4
#define EACH(...) \
    do { LANE_(0, __VA_ARGS__) LANE_(1, __VA_ARGS__) LANE_(2, __VA_ARGS__) LANE_(3, __VA_ARGS__) } while (0)
#else
#error "MC_SHANI_WAYS must be 1..4"
#endif

MC_TARGET int64_t mc_scan_shani(const uint8_t header76[76], const uint8_t target_le[32],
                                uint32_t start, uint64_t count)
{
    mc_job job;
    __m128i mid_abef, mid_cdgh, r3_abef, r3_cdgh, m0_base;
    __m128i abef[N], cdgh[N], m[N][4];
    /* W + K of the rounds whose W words are padding constants. */
    const __m128i wk1_4 = V4(MC_K[4] + MC_PAD_BIT, MC_K[5], MC_K[6], MC_K[7]);
    const __m128i wk1_8 = K4(8);
    const __m128i wk1_12 = V4(MC_K[12], MC_K[13], MC_K[14], MC_K[15] + MC_LEN_HEADER);
    const __m128i wk2_8 = V4(MC_K[8] + MC_PAD_BIT, MC_K[9], MC_K[10], MC_K[11]);
    const __m128i wk2_12 = V4(MC_K[12], MC_K[13], MC_K[14], MC_K[15] + MC_LEN_DIGEST);
    /* The padding message vectors themselves, for the schedule. */
    const __m128i m1_1 = V4(MC_PAD_BIT, 0, 0, 0), m1_3 = V4(0, 0, 0, MC_LEN_HEADER);
    const __m128i m2_2 = V4(MC_PAD_BIT, 0, 0, 0), m2_3 = V4(0, 0, 0, MC_LEN_DIGEST);
    const __m128i zero = _mm_setzero_si128();
    __m128i iv_abef, iv_cdgh, msg1_28;
    uint32_t w16;
    uint64_t i;
    int t, j, hit;

    mc_job_init(&job, header76, target_le);
    to_abef(job.mid, &mid_abef, &mid_cdgh);
    to_abef(job.r3, &r3_abef, &r3_cdgh);
    to_abef(MC_H0, &iv_abef, &iv_cdgh);
    m0_base = V4(job.w[0], job.w[1], job.w[2], 0);
    /* msg1 over W12..W16 of the header block: W16 = sigma0(W1) + W0 (W9, W14 are 0). */
    w16 = SSIG0(job.w[1]) + job.w[0];
    msg1_28 = V4(0, 0, SSIG0(MC_LEN_HEADER), MC_LEN_HEADER + SSIG0(w16));

    for (i = 0; i < count; i += N) {
        uint32_t h7[N];

        /* Header block 2 from the state after round 3: W3 (the nonce, big-endian) is
         * added to a (dword 3 of ABEF) and to e (dword 1). */
        EACH({
            uint32_t w3 = __builtin_bswap32(start + (uint32_t)i + (uint32_t)L);
            __m128i x = _mm_cvtsi32_si128((int)w3);
            abef[L] = _mm_add_epi32(r3_abef, _mm_shuffle_epi32(x, 0x11)); /* {0,w3,0,w3} */
            cdgh[L] = r3_cdgh;
            m[L][0] = _mm_add_epi32(m0_base, _mm_shuffle_epi32(x, 0x15)); /* {w0,w1,w2,w3} */
            m[L][1] = m1_1;
            m[L][2] = zero;
            m[L][3] = m1_3;
        });
        EACH(rounds4(&abef[L], &cdgh[L], wk1_4));
        EACH(rounds4(&abef[L], &cdgh[L], wk1_8));
        EACH(rounds4(&abef[L], &cdgh[L], wk1_12));
        /* W16..W31: the sigma0 halves over the padding words are constants. */
        EACH(m[L][0] = schedule(m[L][0], m1_1, zero, m1_3));
        EACH(rounds4(&abef[L], &cdgh[L], _mm_add_epi32(m[L][0], K4(16))));
        EACH(m[L][1] = schedule_x(m1_1, m1_3, m[L][0]));      /* msg1(W4.., W8..) = {2^31,0,0,0} */
        EACH(rounds4(&abef[L], &cdgh[L], _mm_add_epi32(m[L][1], K4(20))));
        EACH(m[L][2] = schedule_x(zero, m[L][0], m[L][1]));   /* msg1(W8.., W12..) = 0 */
        EACH(rounds4(&abef[L], &cdgh[L], _mm_add_epi32(m[L][2], K4(24))));
        EACH(m[L][3] = schedule_x(msg1_28, m[L][1], m[L][2])); /* msg1 of W12..W16: per job */
        EACH(rounds4(&abef[L], &cdgh[L], _mm_add_epi32(m[L][3], K4(28))));
#pragma GCC unroll 16
        for (t = 32; t < 64; t += 4) {
            int q = (t / 4) & 3;
            EACH(m[L][q] = schedule(m[L][q], m[L][(q + 1) & 3], m[L][(q + 2) & 3], m[L][(q + 3) & 3]));
            EACH(rounds4(&abef[L], &cdgh[L], _mm_add_epi32(m[L][q], K4(t))));
        }
        /* First digest; its eight words are the message of the second hash. */
        EACH({
            __m128i s0 = _mm_add_epi32(abef[L], mid_abef); /* {F, E, B, A} */
            __m128i s1 = _mm_add_epi32(cdgh[L], mid_cdgh); /* {H, G, D, C} */
            m[L][0] = _mm_shuffle_epi32(_mm_unpackhi_epi64(s0, s1), 0xb1); /* {A, B, C, D} */
            m[L][1] = _mm_shuffle_epi32(_mm_unpacklo_epi64(s0, s1), 0xb1); /* {E, F, G, H} */
            m[L][2] = m2_2;
            m[L][3] = m2_3;
            abef[L] = iv_abef;
            cdgh[L] = iv_cdgh;
        });
        EACH(rounds4(&abef[L], &cdgh[L], _mm_add_epi32(m[L][0], K4(0))));
        EACH(rounds4(&abef[L], &cdgh[L], _mm_add_epi32(m[L][1], K4(4))));
        EACH(rounds4(&abef[L], &cdgh[L], wk2_8));
        EACH(rounds4(&abef[L], &cdgh[L], wk2_12));
        /* W9..W12 are zero: no W[t-7] term. */
        EACH(m[L][0] = _mm_sha256msg2_epu32(_mm_sha256msg1_epu32(m[L][0], m[L][1]), m2_3));
        EACH(rounds4(&abef[L], &cdgh[L], _mm_add_epi32(m[L][0], K4(16))));
        EACH(m[L][1] = schedule(m[L][1], m2_2, m2_3, m[L][0]));
        EACH(rounds4(&abef[L], &cdgh[L], _mm_add_epi32(m[L][1], K4(20))));
        EACH(m[L][2] = schedule_x(m2_2, m[L][0], m[L][1])); /* msg1(W8.., W12..) = {2^31,0,0,0} */
        EACH(rounds4(&abef[L], &cdgh[L], _mm_add_epi32(m[L][2], K4(24))));
#pragma GCC unroll 16
        for (t = 28; t < 60; t += 4) {
            int q = (t / 4) & 3;
            EACH(m[L][q] = schedule(m[L][q], m[L][(q + 1) & 3], m[L][(q + 2) & 3], m[L][(q + 3) & 3]));
            EACH(rounds4(&abef[L], &cdgh[L], _mm_add_epi32(m[L][q], K4(t))));
        }
        /* Rounds 60 and 61 only: f after round 61 is h after round 63. */
        EACH({
            __m128i x = schedule(m[L][3], m[L][0], m[L][1], m[L][2]);
            __m128i s = _mm_sha256rnds2_epu32(cdgh[L], abef[L], _mm_add_epi32(x, K4(60)));
            h7[L] = (uint32_t)_mm_cvtsi128_si32(s) + MC_H0[7];
        });

        /* One branch over all lanes: were each lane tested separately, the compiler
         * could sink lane 1's whole hash below lane 0's early return and so undo the
         * interleaving. */
        hit = 0;
        EACH(hit |= mc_bswap32(h7[L]) <= job.target[7]);
        if (hit) {
            for (j = 0; j < N && i + (uint64_t)j < count; j++)
                if (mc_bswap32(h7[j]) <= job.target[7] &&
                    mc_job_check(&job, start + (uint32_t)i + (uint32_t)j))
                    return (int64_t)start + (int64_t)i + j;
        }
    }
    return -1;
}

#else /* no SHA-NI code in this build */

void mc_sha256_compress_shani(uint32_t state[8], const uint8_t block[64])
{
    mc_sha256_compress_portable(state, block); /* never selected; kept total */
}

int64_t mc_scan_shani(const uint8_t header76[76], const uint8_t target_le[32],
                      uint32_t start, uint64_t count)
{
    return mc_scan_portable(header76, target_le, start, count);
}

#endif
