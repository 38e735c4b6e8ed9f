/*
 * sha256_ops.h - the SHA-256 round function as macros, FIPS PUB 180-4.
 *
 * Written for any type with + ^ & | << >> (uint32_t, or a GNU vector of uint32_t lanes),
 * so the scalar reference code and the lane-parallel scans share one definition.
 */
#ifndef MINICHAIN_SHA256_OPS_H
#define MINICHAIN_SHA256_OPS_H

#include <stdint.h>

/* Section 3.2 (ROTR) and 4.1.2: the six logical functions of SHA-256. */
#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define CH(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))   /* = (x AND y) XOR (NOT x AND z) */
#define MAJ(x, y, z) (((x) & (y)) | ((z) & ((x) | (y))))
#define BSIG0(x) (ROTR(x, 2) ^ ROTR(x, 13) ^ ROTR(x, 22))
#define BSIG1(x) (ROTR(x, 6) ^ ROTR(x, 11) ^ ROTR(x, 25))
#define SSIG0(x) (ROTR(x, 7) ^ ROTR(x, 18) ^ ((x) >> 3))
#define SSIG1(x) (ROTR(x, 17) ^ ROTR(x, 19) ^ ((x) >> 10))

/*
 * One round of section 6.2.2 step 3, with the working variables renamed instead of
 * shifted: T1 and T2 as in the spec, then the new e is written to d and the new a to h.
 * Calling it with the arguments rotated one place each round (a..h, h a..g, g h a..f,
 * ...) returns the variables to their names every 8 rounds. Needs t1, t2 in scope.
 */
#define ROUND(a, b, c, d, e, f, g, h, kw)                      \
    do {                                                       \
        t1 = (h) + BSIG1(e) + CH(e, f, g) + (kw);              \
        t2 = BSIG0(a) + MAJ(a, b, c);                          \
        (d) += t1;                                             \
        (h) = t1 + t2;                                         \
    } while (0)

static inline uint32_t mc_bswap32(uint32_t v)
{
    return (v << 24) | ((v << 8) & 0x00ff0000u) | ((v >> 8) & 0x0000ff00u) | (v >> 24);
}

#endif /* MINICHAIN_SHA256_OPS_H */
