/*
 * sha256_lanes.h - template of the lane-parallel header scan (SHA-256 per FIPS 180-4).
 *
 * Included once per instantiation, after defining
 *   MC_LANES_FN    the name of the scan function to define (sha256d.h declares it)
 *   MC_LANES_N     lanes = nonces hashed together; > 1 needs GNU C vector extensions
 *   MC_LANES_ATTR  function attributes, e.g. __attribute__((target("avx2"))), or empty
 * The same C is compiled for the baseline instruction set (sha256_portable.c) and,
 * on x86, for AVX2 and AVX-512 (sha256_simd.c); the code itself is plain C over a
 * vector type, every variable of the round function holding one nonce per lane.
 *
 * Work done once per header (mc_job_init) rather than once per nonce:
 *   - the midstate: the compression of the first 64 header bytes;
 *   - rounds 0..3 of the second block: W0..W2 are fixed and the nonce word W3 enters
 *     round 3 only as "+ W3" in T1, so the state after round 3 is a fixed state with W3
 *     added to a and to e;
 *   - W4..W15 of that block and W8..W15 of the second hash are padding constants
 *     (section 5.1.1), written as literals so that the compiler folds K[t] + W[t] and
 *     the message-schedule terms built from them; terms built from W0..W2 only are
 *     loop-invariant and hoisted out of the nonce loop.
 * Per nonce, the second hash stops in round 60: the most significant 32 bits of the
 * hash as Bitcoin compares it (little-endian) are word H7 = H0[7] + h, and h after
 * round 63 is the e computed in round 60. Only nonces whose H7 passes against the
 * target's top word are re-hashed in full (mc_job_check) and compared on 256 bits.
 */
#include "sha256d.h"
#include "sha256_consts.h"
#include "sha256_ops.h"

/* W[t] for t >= 16 (section 6.2.2 step 1) on a 16-word circular window. */
#define MC_SCHED(w, t) \
    ((w)[(t) & 15] += SSIG1((w)[((t) - 2) & 15]) + (w)[((t) - 7) & 15] + SSIG0((w)[((t) - 15) & 15]))
#define MC_NO_SCHED(w, t) ((void)0)
#define MC_WK(w, t) (MC_K[t] + (w)[(t) & 15])

/* Eight rounds t..t+7; SCHED(w, t) first computes W[t] in place when t >= 16. */
#define MC_ROUNDS8(w, t, SCHED)                                                                \
    do {                                                                                        \
        SCHED(w, (t) + 0); ROUND(a, b, c, d, e, f, g, h, MC_WK(w, (t) + 0));                   \
        SCHED(w, (t) + 1); ROUND(h, a, b, c, d, e, f, g, MC_WK(w, (t) + 1));                   \
        SCHED(w, (t) + 2); ROUND(g, h, a, b, c, d, e, f, MC_WK(w, (t) + 2));                   \
        SCHED(w, (t) + 3); ROUND(f, g, h, a, b, c, d, e, MC_WK(w, (t) + 3));                   \
        SCHED(w, (t) + 4); ROUND(e, f, g, h, a, b, c, d, MC_WK(w, (t) + 4));                   \
        SCHED(w, (t) + 5); ROUND(d, e, f, g, h, a, b, c, MC_WK(w, (t) + 5));                   \
        SCHED(w, (t) + 6); ROUND(c, d, e, f, g, h, a, b, MC_WK(w, (t) + 6));                   \
        SCHED(w, (t) + 7); ROUND(b, c, d, e, f, g, h, a, MC_WK(w, (t) + 7));                   \
    } while (0)

MC_LANES_ATTR int64_t MC_LANES_FN(const uint8_t header76[76], const uint8_t target_le[32],
                                  uint32_t start, uint64_t count)
{
#if MC_LANES_N > 1
    typedef uint32_t vec __attribute__((vector_size(4 * MC_LANES_N)));
#define SPLAT(x) ((vec){0} + (uint32_t)(x))
#define LANE(v, j) ((v)[j])
#else
    typedef uint32_t vec;
#define SPLAT(x) ((uint32_t)(x))
#define LANE(v, j) (v)
#endif
    mc_job job;
    vec w[16], lane_index;
    vec a, b, c, d, e, f, g, h, t1, t2, nonce, w3;
    vec d0, d1, d2, d3, d4, d5, d6, d7;
    uint64_t i;
    int j;

    mc_job_init(&job, header76, target_le);
    for (j = 0; j < MC_LANES_N; j++)
        LANE(lane_index, j) = (uint32_t)j;

    for (i = 0; i < count; i += MC_LANES_N) {
        /* Lanes past the end of the range (and past 2^32 - 1) are computed, then ignored. */
        nonce = SPLAT(start + (uint32_t)i) + lane_index;
        /* W3 is the nonce read big-endian; the header stores it little-endian. */
        w3 = (nonce << 24) | ((nonce << 8) & SPLAT(0x00ff0000u)) |
             ((nonce >> 8) & SPLAT(0x0000ff00u)) | (nonce >> 24);

        /* The header's second block, from the state after round 3. */
        a = SPLAT(job.r3[0]) + w3; b = SPLAT(job.r3[1]); c = SPLAT(job.r3[2]); d = SPLAT(job.r3[3]);
        e = SPLAT(job.r3[4]) + w3; f = SPLAT(job.r3[5]); g = SPLAT(job.r3[6]); h = SPLAT(job.r3[7]);
        w[0] = SPLAT(job.w[0]); w[1] = SPLAT(job.w[1]); w[2] = SPLAT(job.w[2]); w[3] = w3;
        w[4] = SPLAT(MC_PAD_BIT);
        w[5] = w[6] = w[7] = w[8] = w[9] = w[10] = w[11] = w[12] = w[13] = w[14] = SPLAT(0);
        w[15] = SPLAT(MC_LEN_HEADER);
        /* Rounds 4..15: W + K are constants. */
        ROUND(a, b, c, d, e, f, g, h, SPLAT(MC_K[4] + MC_PAD_BIT));
        ROUND(h, a, b, c, d, e, f, g, SPLAT(MC_K[5]));
        ROUND(g, h, a, b, c, d, e, f, SPLAT(MC_K[6]));
        ROUND(f, g, h, a, b, c, d, e, SPLAT(MC_K[7]));
        ROUND(e, f, g, h, a, b, c, d, SPLAT(MC_K[8]));
        ROUND(d, e, f, g, h, a, b, c, SPLAT(MC_K[9]));
        ROUND(c, d, e, f, g, h, a, b, SPLAT(MC_K[10]));
        ROUND(b, c, d, e, f, g, h, a, SPLAT(MC_K[11]));
        ROUND(a, b, c, d, e, f, g, h, SPLAT(MC_K[12]));
        ROUND(h, a, b, c, d, e, f, g, SPLAT(MC_K[13]));
        ROUND(g, h, a, b, c, d, e, f, SPLAT(MC_K[14]));
        ROUND(f, g, h, a, b, c, d, e, SPLAT(MC_K[15] + MC_LEN_HEADER));
        /* 12 renamed rounds leave a..h in e, f, g, h, a, b, c, d: rename back (free). */
        {
            vec ta = e, tb = f, tc = g, td = h, te = a, tf = b, tg = c, th = d;
            a = ta; b = tb; c = tc; d = td; e = te; f = tf; g = tg; h = th;
        }
        MC_ROUNDS8(w, 16, MC_SCHED);
        MC_ROUNDS8(w, 24, MC_SCHED);
        MC_ROUNDS8(w, 32, MC_SCHED);
        MC_ROUNDS8(w, 40, MC_SCHED);
        MC_ROUNDS8(w, 48, MC_SCHED);
        MC_ROUNDS8(w, 56, MC_SCHED);
        d0 = a + SPLAT(job.mid[0]); d1 = b + SPLAT(job.mid[1]);
        d2 = c + SPLAT(job.mid[2]); d3 = d + SPLAT(job.mid[3]);
        d4 = e + SPLAT(job.mid[4]); d5 = f + SPLAT(job.mid[5]);
        d6 = g + SPLAT(job.mid[6]); d7 = h + SPLAT(job.mid[7]);

        /* The second SHA-256, of the 32-byte digest d0..d7: rounds 0..59 ... */
        w[0] = d0; w[1] = d1; w[2] = d2; w[3] = d3; w[4] = d4; w[5] = d5; w[6] = d6; w[7] = d7;
        w[8] = SPLAT(MC_PAD_BIT);
        w[9] = w[10] = w[11] = w[12] = w[13] = w[14] = SPLAT(0);
        w[15] = SPLAT(MC_LEN_DIGEST);
        a = SPLAT(MC_H0[0]); b = SPLAT(MC_H0[1]); c = SPLAT(MC_H0[2]); d = SPLAT(MC_H0[3]);
        e = SPLAT(MC_H0[4]); f = SPLAT(MC_H0[5]); g = SPLAT(MC_H0[6]); h = SPLAT(MC_H0[7]);
        MC_ROUNDS8(w, 0, MC_NO_SCHED);
        MC_ROUNDS8(w, 8, MC_NO_SCHED);
        MC_ROUNDS8(w, 16, MC_SCHED);
        MC_ROUNDS8(w, 24, MC_SCHED);
        MC_ROUNDS8(w, 32, MC_SCHED);
        MC_ROUNDS8(w, 40, MC_SCHED);
        MC_ROUNDS8(w, 48, MC_SCHED);
        MC_SCHED(w, 56); ROUND(a, b, c, d, e, f, g, h, MC_WK(w, 56));
        MC_SCHED(w, 57); ROUND(h, a, b, c, d, e, f, g, MC_WK(w, 57));
        MC_SCHED(w, 58); ROUND(g, h, a, b, c, d, e, f, MC_WK(w, 58));
        MC_SCHED(w, 59); ROUND(f, g, h, a, b, c, d, e, MC_WK(w, 59));
        /* ... and of round 60 only the new e. Its variables now sit in (e f g h a b c d),
         * so that e is d + T1 with T1 = h + BSIG1(a) + CH(a, b, c) + K + W. */
        MC_SCHED(w, 60);
        t1 = d + h + BSIG1(a) + CH(a, b, c) + MC_WK(w, 60);
        t1 += SPLAT(MC_H0[7]); /* hash word H7, the most significant as Bitcoin compares */

        for (j = 0; j < MC_LANES_N; j++) {
            if (i + (uint64_t)j >= count)
                break;
            if (mc_bswap32(LANE(t1, j)) <= job.target[7] &&
                mc_job_check(&job, start + (uint32_t)i + (uint32_t)j))
                return (int64_t)start + (int64_t)i + j;
        }
    }
    return -1;
#undef SPLAT
#undef LANE
}

#undef MC_SCHED
#undef MC_NO_SCHED
#undef MC_WK
#undef MC_ROUNDS8
#undef MC_LANES_FN
#undef MC_LANES_N
#undef MC_LANES_ATTR
