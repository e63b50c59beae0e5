/* Tests for axon/rng.h: Philox known answers, reproducibility, and loose
 * statistics. Seeds are fixed, so the statistical bounds cannot flake. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "axon/rng.h"

#define STAT_N 1000000

/* Random123 kat_vectors, philox4x32 10 rounds. */
static void test_philox_kat(void **state) {
    (void)state;
    static const struct {
        uint32_t ctr[4], key[2], out[4];
    } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
         {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
         {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (size_t k = 0; k < sizeof kat / sizeof kat[0]; k++) {
        uint32_t out[4];
        ax_philox4x32_10(kat[k].ctr, kat[k].key, out);
        for (int i = 0; i < 4; i++) assert_int_equal(out[i], kat[k].out[i]);
    }
}

/* The documented layout: key = seed, ctr = {block lo, block hi, stream lo, stream hi}. */
static void test_word_layout(void **state) {
    (void)state;
    const uint64_t seeds[] = {0, 1, 0x0123456789abcdefULL, UINT64_MAX};
    const uint64_t streams[] = {0, 5, 0xfedcba9876543210ULL, UINT64_MAX};
    const uint64_t idx[] = {0, 1, 2, 3, 4, 7, 1000003, 0x123456789ULL << 2, UINT64_MAX};
    for (size_t s = 0; s < 4; s++)
        for (size_t t = 0; t < 4; t++)
            for (size_t i = 0; i < sizeof idx / sizeof idx[0]; i++) {
                uint64_t block = idx[i] / 4;
                uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)streams[t],
                                   (uint32_t)(streams[t] >> 32)};
                uint32_t key[2] = {(uint32_t)seeds[s], (uint32_t)(seeds[s] >> 32)};
                uint32_t out[4];
                ax_philox4x32_10(ctr, key, out);
                assert_int_equal(ax_rng_word(seeds[s], streams[t], idx[i]), out[idx[i] % 4]);
            }
}

static void test_reproducible(void **state) {
    (void)state;
    ax_rng a, b, c, d;
    ax_rng_init(&a, 1234, 9);
    ax_rng_init(&b, 1234, 9);
    ax_rng_init(&c, 1234, 10);
    ax_rng_init(&d, 1235, 9);
    int same_stream = 0, same_seed = 0;
    for (int i = 0; i < 256; i++) {
        uint32_t x = ax_rng_u32(&a);
        assert_int_equal(x, ax_rng_u32(&b));
        assert_int_equal(x, ax_rng_word(1234, 9, (uint64_t)i));
        same_stream += x == ax_rng_u32(&c);
        same_seed += x == ax_rng_u32(&d);
    }
    assert_true(same_stream < 4);
    assert_true(same_seed < 4);
    assert_int_equal(a.counter, 256);
}

static void test_seek_and_copy(void **state) {
    (void)state;
    const uint64_t ks[] = {0, 1, 3, 4, 5, 17, 100};
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
        ax_rng walk, jump;
        ax_rng_init(&walk, 77, 3);
        ax_rng_init(&jump, 77, 3);
        for (uint64_t k = 0; k < ks[i]; k++) ax_rng_u32(&walk);
        ax_rng_seek(&jump, ks[i]);
        ax_rng fork = walk; /* a plain value: copying forks the position */
        for (int j = 0; j < 9; j++) {
            uint32_t w = ax_rng_u32(&walk);
            assert_int_equal(w, ax_rng_u32(&jump));
            assert_int_equal(w, ax_rng_u32(&fork));
        }
    }
    /* Mixed draws advance the counter by the words they consume. */
    ax_rng r;
    ax_rng_init(&r, 1, 2);
    ax_rng_uniform(&r);
    ax_rng_normal(&r);
    ax_rng_bernoulli(&r, 0.5f);
    assert_int_equal(r.counter, 4);
}

/* Fill [first, first+n) in one call, in ragged pieces and with scalar draws. */
static void test_fill_consistency(void **state) {
    (void)state;
    const uint64_t seed = 0xabcdef, stream = 42;
    const size_t n = 1003;
    const size_t cuts[] = {0, 1, 2, 5, 6, 11, 64, 65, 300, 301, 302, 777, 1003};
    const uint64_t firsts[] = {0, 1, 2, 3, 13, UINT64_MAX / 2 - 500};
    float *one = malloc(n * sizeof *one), *pieces = malloc(n * sizeof *pieces);
    float *scalar = malloc(n * sizeof *scalar);
    uint8_t *b_one = malloc(n), *b_pieces = malloc(n), *b_scalar = malloc(n);
    assert_non_null(one);
    assert_non_null(pieces);
    assert_non_null(scalar);
    assert_non_null(b_one);
    assert_non_null(b_pieces);
    assert_non_null(b_scalar);

    for (size_t f = 0; f < sizeof firsts / sizeof firsts[0]; f++) {
        const uint64_t first = firsts[f];
        ax_rng r;

        ax_rng_fill_uniform(seed, stream, first, n, one);
        for (size_t c = 0; c + 1 < sizeof cuts / sizeof cuts[0]; c++)
            ax_rng_fill_uniform(seed, stream, first + cuts[c], cuts[c + 1] - cuts[c],
                                pieces + cuts[c]);
        ax_rng_init(&r, seed, stream);
        ax_rng_seek(&r, first);
        for (size_t i = 0; i < n; i++) scalar[i] = ax_rng_uniform(&r);
        assert_memory_equal(one, pieces, n * sizeof *one);
        assert_memory_equal(one, scalar, n * sizeof *one);

        ax_rng_fill_normal(seed, stream, first, n, one);
        for (size_t c = 0; c + 1 < sizeof cuts / sizeof cuts[0]; c++)
            ax_rng_fill_normal(seed, stream, first + cuts[c], cuts[c + 1] - cuts[c],
                               pieces + cuts[c]);
        ax_rng_init(&r, seed, stream);
        ax_rng_seek(&r, 2 * first);
        for (size_t i = 0; i < n; i++) scalar[i] = ax_rng_normal(&r);
        assert_memory_equal(one, pieces, n * sizeof *one);
        assert_memory_equal(one, scalar, n * sizeof *one);

        ax_rng_fill_bernoulli(seed, stream, first, n, 0.3f, b_one);
        for (size_t c = 0; c + 1 < sizeof cuts / sizeof cuts[0]; c++)
            ax_rng_fill_bernoulli(seed, stream, first + cuts[c], cuts[c + 1] - cuts[c], 0.3f,
                                  b_pieces + cuts[c]);
        ax_rng_init(&r, seed, stream);
        ax_rng_seek(&r, first);
        for (size_t i = 0; i < n; i++) b_scalar[i] = (uint8_t)ax_rng_bernoulli(&r, 0.3f);
        assert_memory_equal(b_one, b_pieces, n);
        assert_memory_equal(b_one, b_scalar, n);
    }

    /* n = 0 writes nothing. */
    one[0] = -1.0f;
    ax_rng_fill_uniform(seed, stream, 3, 0, one);
    ax_rng_fill_normal(seed, stream, 3, 0, one);
    assert_true(one[0] == -1.0f);

    free(one);
    free(pieces);
    free(scalar);
    free(b_one);
    free(b_pieces);
    free(b_scalar);
}

/* Large enough to take the parallel path. */
static void test_fill_threads(void **state) {
    (void)state;
#ifdef _OPENMP
    const size_t n = (1u << 18) + 3;
    float *u1 = malloc(n * sizeof *u1), *u2 = malloc(n * sizeof *u2);
    float *z1 = malloc(n * sizeof *z1), *z2 = malloc(n * sizeof *z2);
    uint8_t *b1 = malloc(n), *b2 = malloc(n);
    assert_non_null(u1);
    assert_non_null(u2);
    assert_non_null(z1);
    assert_non_null(z2);
    assert_non_null(b1);
    assert_non_null(b2);
    int saved = omp_get_max_threads();

    omp_set_num_threads(1);
    ax_rng_fill_uniform(5, 6, 7, n, u1);
    ax_rng_fill_normal(5, 6, 7, n, z1);
    ax_rng_fill_bernoulli(5, 6, 7, n, 0.25f, b1);
    omp_set_num_threads(2);
    ax_rng_fill_uniform(5, 6, 7, n, u2);
    ax_rng_fill_normal(5, 6, 7, n, z2);
    ax_rng_fill_bernoulli(5, 6, 7, n, 0.25f, b2);
    omp_set_num_threads(saved);

    assert_memory_equal(u1, u2, n * sizeof *u1);
    assert_memory_equal(z1, z2, n * sizeof *z1);
    assert_memory_equal(b1, b2, n);
    /* Spot-check against the scalar path at the far end. */
    ax_rng r;
    ax_rng_init(&r, 5, 6);
    ax_rng_seek(&r, 7 + n - 1);
    assert_true(ax_rng_uniform(&r) == u1[n - 1]);
    free(u1);
    free(u2);
    free(z1);
    free(z2);
    free(b1);
    free(b2);
#else
    skip();
#endif
}

static void test_uniform_stats(void **state) {
    (void)state;
    float *u = malloc(STAT_N * sizeof *u);
    assert_non_null(u);
    ax_rng_fill_uniform(2024, 1, 0, STAT_N, u);
    double sum = 0.0;
    for (size_t i = 0; i < STAT_N; i++) {
        assert_true(u[i] >= 0.0f && u[i] < 1.0f);
        sum += u[i];
    }
    assert_true(fabs(sum / STAT_N - 0.5) < 0.002);
    free(u);

    ax_rng r;
    ax_rng_init(&r, 3, 3);
    for (int i = 0; i < 10000; i++) {
        float x = ax_rng_uniform_range(&r, -2.5f, 4.0f);
        assert_true(x >= -2.5f && x < 4.0f);
    }
}

/* Word 45555729 of (42, 7) is 0xffffff01, i.e. u = 1 - 2^-24, where
 * 1 + (2-1)*u rounds to 2 in float; the range must still exclude hi. */
static void test_uniform_range_top(void **state) {
    (void)state;
    ax_rng r;
    ax_rng_init(&r, 42, 7);
    ax_rng_seek(&r, 45555729);
    assert_true(ax_rng_uniform(&r) == 1.0f - 0x1p-24f);
    ax_rng_seek(&r, 45555729);
    float x = ax_rng_uniform_range(&r, 1.0f, 2.0f);
    assert_true(x >= 1.0f && x < 2.0f);
}

static void test_normal_stats(void **state) {
    (void)state;
    float *z = malloc(STAT_N * sizeof *z);
    assert_non_null(z);
    ax_rng_fill_normal(2024, 2, 0, STAT_N, z);
    double sum = 0.0, sq = 0.0;
    for (size_t i = 0; i < STAT_N; i++) {
        assert_true(isfinite(z[i]));
        sum += z[i];
        sq += (double)z[i] * z[i];
    }
    double mean = sum / STAT_N;
    double var = sq / STAT_N - mean * mean;
    assert_true(fabs(mean) < 0.005);
    assert_true(fabs(var - 1.0) < 0.01);
    free(z);
}

static void test_bernoulli_stats(void **state) {
    (void)state;
    uint8_t *b = malloc(STAT_N);
    assert_non_null(b);
    ax_rng_fill_bernoulli(2024, 3, 0, STAT_N, 0.3f, b);
    size_t ones = 0;
    for (size_t i = 0; i < STAT_N; i++) {
        assert_true(b[i] <= 1);
        ones += b[i];
    }
    assert_true(fabs((double)ones / STAT_N - 0.3) < 0.003);
    free(b);

    ax_rng r;
    ax_rng_init(&r, 8, 8);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(ax_rng_bernoulli(&r, 0.0f), 0);
        assert_int_equal(ax_rng_bernoulli(&r, 1.0f), 1);
    }
}

static void test_below(void **state) {
    (void)state;
    ax_rng r;
    ax_rng_init(&r, 2024, 4);
    size_t hist[10] = {0};
    for (int i = 0; i < STAT_N; i++) {
        uint32_t x = ax_rng_below(&r, 10);
        assert_true(x < 10);
        hist[x]++;
    }
    for (int k = 0; k < 10; k++) assert_true(fabs((double)hist[k] - STAT_N / 10.0) < 0.02 * (STAT_N / 10.0));
    assert_true(r.counter >= STAT_N);

    const uint32_t ns[] = {1, 2, 3, 7, 1000, 0x80000001u, UINT32_MAX};
    for (size_t j = 0; j < sizeof ns / sizeof ns[0]; j++)
        for (int i = 0; i < 10000; i++) assert_true(ax_rng_below(&r, ns[j]) < ns[j]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_philox_kat),       cmocka_unit_test(test_word_layout),
        cmocka_unit_test(test_reproducible),     cmocka_unit_test(test_seek_and_copy),
        cmocka_unit_test(test_fill_consistency), cmocka_unit_test(test_fill_threads),
        cmocka_unit_test(test_uniform_stats),    cmocka_unit_test(test_uniform_range_top),
        cmocka_unit_test(test_normal_stats),     cmocka_unit_test(test_bernoulli_stats),
        cmocka_unit_test(test_below),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
