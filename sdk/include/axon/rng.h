/* axon/rng.h — counter-based random numbers (Philox4x32-10).
 *
 * Every random number in axon is a pure function of (seed, stream, counter):
 * the stream of a data-loader sample, a dropout mask or a weight initialiser
 * never depends on the number of threads, on timing or on the device. Give
 * each independent consumer its own stream id (e.g. the sample index), and
 * parallel code can jump to any position with ax_rng_seek() or fill buffers
 * through the ax_rng_fill_* functions, whose element i is the same whether
 * the buffer is filled in one call or in pieces.
 *
 *     ax_rng r;
 *     ax_rng_init(&r, 1234, sample_index);
 *     float u = ax_rng_uniform(&r);      // [0, 1)
 *     float z = ax_rng_normal(&r);       // N(0, 1)
 *     if (ax_rng_bernoulli(&r, 0.2f)) { ... }
 *
 * One Philox block yields four 32-bit words; the block counter is the 64-bit
 * position in the stream, the stream id fills the high 64 bits of the
 * 128-bit Philox counter, and the seed is the 64-bit key.
 */
#ifndef AXON_RNG_H
#define AXON_RNG_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A plain value: copy it to fork a stream position, save it to resume. */
typedef struct ax_rng {
    uint64_t seed;
    uint64_t stream;
    uint64_t counter; /* index of the next 32-bit word in the stream */
} ax_rng;

/* The bare Philox4x32-10 bijection: out = philox(ctr, key). */
void ax_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

void ax_rng_init(ax_rng *rng, uint64_t seed, uint64_t stream);
/* Jump to word `counter` of the stream. */
void ax_rng_seek(ax_rng *rng, uint64_t counter);

/* Word `index` of stream (seed, stream): the function everything else uses. */
uint32_t ax_rng_word(uint64_t seed, uint64_t stream, uint64_t index);

uint32_t ax_rng_u32(ax_rng *rng);
/* Uniform in [0, 1) with 24 random bits. */
float ax_rng_uniform(ax_rng *rng);
/* Uniform in [lo, hi). */
float ax_rng_uniform_range(ax_rng *rng, float lo, float hi);
/* Standard normal (Box-Muller over two words). */
float ax_rng_normal(ax_rng *rng);
/* 1 with probability p, else 0. */
int ax_rng_bernoulli(ax_rng *rng, float p);
/* Uniform integer in [0, n), n > 0; unbiased (rejection sampling). */
uint32_t ax_rng_below(ax_rng *rng, uint32_t n);

/* Fill out[0..n) with words first+0 .. first+n-1 of the stream mapped to
 * uniform [0,1) / N(0,1) / {0,1} with probability p. Normals consume two
 * words each (index 2*(first+i) and 2*(first+i)+1). */
void ax_rng_fill_uniform(uint64_t seed, uint64_t stream, uint64_t first, size_t n, float *out);
void ax_rng_fill_normal(uint64_t seed, uint64_t stream, uint64_t first, size_t n, float *out);
void ax_rng_fill_bernoulli(uint64_t seed, uint64_t stream, uint64_t first, size_t n, float p,
                           uint8_t *out);

#ifdef __cplusplus
}
#endif
#endif
