/* Philox4x32-10 behind axon/rng.h.
 *
 * Everything is derived from ax_rng_block(), a pure function of
 * (seed, stream, block), so any element can be computed anywhere, in any
 * order, by any thread, and always comes out the same. */
#include "axon/rng.h"

#include <math.h>

#define AX_PHILOX_M0 0xD2511F53u
#define AX_PHILOX_M1 0xCD9E8D57u
#define AX_PHILOX_W0 0x9E3779B9u
#define AX_PHILOX_W1 0xBB67AE85u

/* Word indices are taken mod 2^64, so block numbers live mod 2^62. */
#define AX_RNG_BLOCK_MASK (UINT64_MAX >> 2)
/* Below this many elements a parallel region costs more than it saves. */
#define AX_RNG_PAR_MIN 16384

static const double ax_two_pi = 6.283185307179586476925286766559;

void ax_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)AX_PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)AX_PHILOX_M1 * c2;
        c0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        c1 = (uint32_t)p1;
        c2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c3 = (uint32_t)p0;
        k0 += AX_PHILOX_W0;
        k1 += AX_PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

static inline void ax_rng_block(uint64_t seed, uint64_t stream, uint64_t block, uint32_t out[4]) {
    const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                             (uint32_t)(stream >> 32)};
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    ax_philox4x32_10(ctr, key, out);
}

/* The scalar and fill paths share these mappings so they agree bit for bit. */
static inline float ax_u01(uint32_t w) { return (float)(w >> 8) * 0x1p-24f; }

static inline float ax_normal_from(uint32_t w1, uint32_t w2) {
    /* +1 moves u1 into (0, 1] so log() never sees 0. */
    double u1 = (double)((w1 >> 8) + 1) * 0x1p-24;
    double u2 = (double)(w2 >> 8) * 0x1p-24;
    return (float)(sqrt(-2.0 * log(u1)) * cos(ax_two_pi * u2));
}

void ax_rng_init(ax_rng *rng, uint64_t seed, uint64_t stream) {
    rng->seed = seed;
    rng->stream = stream;
    rng->counter = 0;
}

void ax_rng_seek(ax_rng *rng, uint64_t counter) { rng->counter = counter; }

uint32_t ax_rng_word(uint64_t seed, uint64_t stream, uint64_t index) {
    uint32_t w[4];
    ax_rng_block(seed, stream, index >> 2, w);
    return w[index & 3];
}

/* One Philox call per word wastes three lanes, but keeps ax_rng a plain
 * value with no cached state to go stale when copied or seeked; bulk users
 * should use the fill functions. */
uint32_t ax_rng_u32(ax_rng *rng) { return ax_rng_word(rng->seed, rng->stream, rng->counter++); }

float ax_rng_uniform(ax_rng *rng) { return ax_u01(ax_rng_u32(rng)); }

float ax_rng_uniform_range(ax_rng *rng, float lo, float hi) {
    float r = lo + (hi - lo) * ax_rng_uniform(rng);
    /* Float rounding can land exactly on hi (e.g. [1,2) with u = 1-2^-24). */
    if (r >= hi && hi > lo) r = nextafterf(hi, lo);
    return r;
}

float ax_rng_normal(ax_rng *rng) {
    uint32_t w1 = ax_rng_u32(rng);
    uint32_t w2 = ax_rng_u32(rng);
    return ax_normal_from(w1, w2);
}

int ax_rng_bernoulli(ax_rng *rng, float p) { return ax_rng_uniform(rng) < p; }

uint32_t ax_rng_below(ax_rng *rng, uint32_t n) {
    /* Lemire's multiply-shift; rejection of the low 2^32 mod n products
     * makes it exactly uniform. */
    uint64_t m = (uint64_t)ax_rng_u32(rng) * n;
    if ((uint32_t)m < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while ((uint32_t)m < threshold) m = (uint64_t)ax_rng_u32(rng) * n;
    }
    return (uint32_t)(m >> 32);
}

/* Fills walk whole Philox blocks so each block is computed once; element
 * `pos - lead` of the output comes from slot `pos` counted from the start
 * of the first block. */
void ax_rng_fill_uniform(uint64_t seed, uint64_t stream, uint64_t first, size_t n, float *out) {
    const size_t lead = (size_t)(first & 3);
    const uint64_t b0 = first >> 2;
    const size_t nblocks = (lead + n + 3) / 4;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= AX_RNG_PAR_MIN)
#endif
    for (size_t j = 0; j < nblocks; j++) {
        uint32_t w[4];
        ax_rng_block(seed, stream, (b0 + j) & AX_RNG_BLOCK_MASK, w);
        for (size_t l = 0; l < 4; l++) {
            size_t pos = 4 * j + l;
            if (pos >= lead && pos - lead < n) out[pos - lead] = ax_u01(w[l]);
        }
    }
}

void ax_rng_fill_bernoulli(uint64_t seed, uint64_t stream, uint64_t first, size_t n, float p,
                           uint8_t *out) {
    const size_t lead = (size_t)(first & 3);
    const uint64_t b0 = first >> 2;
    const size_t nblocks = (lead + n + 3) / 4;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= AX_RNG_PAR_MIN)
#endif
    for (size_t j = 0; j < nblocks; j++) {
        uint32_t w[4];
        ax_rng_block(seed, stream, (b0 + j) & AX_RNG_BLOCK_MASK, w);
        for (size_t l = 0; l < 4; l++) {
            size_t pos = 4 * j + l;
            if (pos >= lead && pos - lead < n) out[pos - lead] = (uint8_t)(ax_u01(w[l]) < p);
        }
    }
}

void ax_rng_fill_normal(uint64_t seed, uint64_t stream, uint64_t first, size_t n, float *out) {
    /* Word pairs start at an even index, so a block holds exactly two. */
    const uint64_t base = 2 * first;
    const size_t lead = (size_t)(first & 1);
    const uint64_t b0 = base >> 2;
    const size_t nblocks = (lead + n + 1) / 2;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (n >= AX_RNG_PAR_MIN / 4)
#endif
    for (size_t j = 0; j < nblocks; j++) {
        uint32_t w[4];
        ax_rng_block(seed, stream, (b0 + j) & AX_RNG_BLOCK_MASK, w);
        for (size_t l = 0; l < 2; l++) {
            size_t pos = 2 * j + l;
            if (pos >= lead && pos - lead < n) out[pos - lead] = ax_normal_from(w[2 * l], w[2 * l + 1]);
        }
    }
}
