/*
 * sha256_portable.c - SHA-256 in portable C (FIPS PUB 180-4; section numbers below refer
 * to it): the reference compression, whole-message hashing, the per-header job, and the
 * baseline lane-parallel scan (sha256_lanes.h) compiled for the instruction set the
 * target always has. Nothing here asks for a CPU feature.
 */
#include <string.h>

#include "sha256d.h"
#include "sha256_consts.h"
#include "sha256_ops.h"

static uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint32_t load_le32(const uint8_t *p)
{
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}

static void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Section 6.2.2: one SHA-256 compression of a 64-byte block (reference scalar code). */
void mc_sha256_compress_portable(uint32_t state[8], const uint8_t block[64])
{
    uint32_t w[64];
    uint32_t a, b, c, d, e, f, g, h, t1, t2;
    int t;

    for (t = 0; t < 16; t++)
        w[t] = load_be32(block + 4 * t);
    for (t = 16; t < 64; t++)
        w[t] = SSIG1(w[t - 2]) + w[t - 7] + SSIG0(w[t - 15]) + w[t - 16];

    a = state[0]; b = state[1]; c = state[2]; d = state[3];
    e = state[4]; f = state[5]; g = state[6]; h = state[7];
    for (t = 0; t < 64; t += 8) {
        ROUND(a, b, c, d, e, f, g, h, MC_K[t + 0] + w[t + 0]);
        ROUND(h, a, b, c, d, e, f, g, MC_K[t + 1] + w[t + 1]);
        ROUND(g, h, a, b, c, d, e, f, MC_K[t + 2] + w[t + 2]);
        ROUND(f, g, h, a, b, c, d, e, MC_K[t + 3] + w[t + 3]);
        ROUND(e, f, g, h, a, b, c, d, MC_K[t + 4] + w[t + 4]);
        ROUND(d, e, f, g, h, a, b, c, MC_K[t + 5] + w[t + 5]);
        ROUND(c, d, e, f, g, h, a, b, MC_K[t + 6] + w[t + 6]);
        ROUND(b, c, d, e, f, g, h, a, MC_K[t + 7] + w[t + 7]);
    }
    state[0] += a; state[1] += b; state[2] += c; state[3] += d;
    state[4] += e; state[5] += f; state[6] += g; state[7] += h;
}

/* Section 5.1.1 padding and 5.3.3 initial value around any compression function. */
void mc_sha256(mc_compress_fn compress, const uint8_t *data, size_t len, uint8_t out[32])
{
    uint32_t state[8];
    uint8_t tail[128];
    uint64_t bits = (uint64_t)len * 8u;
    size_t full = len / 64, rest = len % 64, tail_len;
    int i;

    memcpy(state, MC_H0, sizeof state);
    for (size_t blk = 0; blk < full; blk++)
        compress(state, data + 64 * blk);

    /* The '1' bit, zeros, then the 64-bit big-endian length, to a multiple of 64 bytes. */
    tail_len = rest < 56 ? 64 : 128;
    memset(tail, 0, sizeof tail);
    if (rest)
        memcpy(tail, data + 64 * full, rest);
    tail[rest] = 0x80;
    for (i = 0; i < 8; i++)
        tail[tail_len - 1 - i] = (uint8_t)(bits >> (8 * i));
    compress(state, tail);
    if (tail_len == 128)
        compress(state, tail + 64);

    for (i = 0; i < 8; i++)
        store_be32(out + 4 * i, state[i]);
}

void mc_job_init(mc_job *job, const uint8_t header76[76], const uint8_t target_le[32])
{
    uint32_t a, b, c, d, e, f, g, h, t1, t2;
    int i;

    memcpy(job->header, header76, 76);
    memset(job->header + 76, 0, 4);
    for (i = 0; i < 8; i++)
        job->target[i] = load_le32(target_le + 4 * i);

    memcpy(job->mid, MC_H0, sizeof job->mid);
    mc_sha256_compress_portable(job->mid, header76);

    for (i = 0; i < 3; i++)
        job->w[i] = load_be32(header76 + 64 + 4 * i);

    /* Rounds 0..3 of the second block, round 3 with W3 = 0 (see the top of the file). */
    a = job->mid[0]; b = job->mid[1]; c = job->mid[2]; d = job->mid[3];
    e = job->mid[4]; f = job->mid[5]; g = job->mid[6]; h = job->mid[7];
    ROUND(a, b, c, d, e, f, g, h, MC_K[0] + job->w[0]);
    ROUND(h, a, b, c, d, e, f, g, MC_K[1] + job->w[1]);
    ROUND(g, h, a, b, c, d, e, f, MC_K[2] + job->w[2]);
    ROUND(f, g, h, a, b, c, d, e, MC_K[3] + 0u);
    /* After four renamed rounds the new a..h live in e, f, g, h, a, b, c, d. */
    job->r3[0] = e; job->r3[1] = f; job->r3[2] = g; job->r3[3] = h;
    job->r3[4] = a; job->r3[5] = b; job->r3[6] = c; job->r3[7] = d;
}

int mc_job_check(mc_job *job, uint32_t nonce)
{
    uint8_t first[32], hash[32];
    int i;

    job->header[76] = (uint8_t)nonce;
    job->header[77] = (uint8_t)(nonce >> 8);
    job->header[78] = (uint8_t)(nonce >> 16);
    job->header[79] = (uint8_t)(nonce >> 24);
    mc_sha256(mc_sha256_compress_portable, job->header, 80, first);
    mc_sha256(mc_sha256_compress_portable, first, 32, hash);

    /* The hash is a little-endian integer: its last 4 bytes are the top word. */
    for (i = 7; i >= 0; i--) {
        uint32_t word = load_le32(hash + 4 * i);
        if (word != job->target[i])
            return word < job->target[i];
    }
    return 1; /* equal to the target */
}

/* The baseline lane-parallel scan: 4 lanes fill one 128-bit register (SSE2 on x86-64,
 * NEON on AArch64); 8 would not fit the 16 SSE registers and spill. */
#define MC_LANES_FN mc_scan_portable
#if defined(__GNUC__) || defined(__clang__)
#define MC_LANES_N 4
#else
#define MC_LANES_N 1
#endif
#define MC_LANES_ATTR
#include "sha256_lanes.h"
