/* The fused attention kernels (kernel-table members sdpa / sdpa_backward)
 * and the front-end's fused path (ax_scaled_dot_product_attention without
 * a mask):
 *   - the CPU members against a double reference (o, lse, dq, dk, dv),
 *     shapes crossing the 64 x 256 tiles, causal or not, L < S and L > S,
 *     E != Ev, head dim 64, NULL gradient outputs;
 *   - a row whose every score is -inf (overflow): o 0, lse -inf, zero
 *     gradients, other rows exact; an empty key set;
 *   - 1 vs 2 threads bit for bit, for each backward schedule;
 *   - fused == composite (the masked path with an equivalent float mask)
 *     through the front-end, forward and gradients, broadcast batch dims;
 *   - memory: through a stand-in device that records its allocations, the
 *     fused path never allocates an [L, S] buffer while the composite does;
 *   - argument errors.
 * PyTorch parity of the fused path is in test_attention.c (fixture cases
 * sdpa_tiles*, sdpa_head64 and the older small cases, which now run fused). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/attention.h"
#include "axon/kernels.h"
#include "gradcheck.h"

#define SH(...) ((const int64_t[]){__VA_ARGS__})

static void free_all(ax_tensor **ts, size_t n) {
    for (size_t i = 0; i < n; i++) ax_tensor_free(ts[i]);
}
#define FREE_ALL(...)                                                                                                  \
    do {                                                                                                               \
        ax_tensor *all_[] = {__VA_ARGS__};                                                                             \
        free_all(all_, sizeof all_ / sizeof all_[0]);                                                                  \
    } while (0)

static ax_tensor *empty3(int64_t a, int64_t b, int64_t c) {
    ax_tensor *t;
    assert_int_equal(ax_tensor_empty(&t, 3, SH(a, b, c), AX_DTYPE_F32), AX_OK);
    return t;
}

static const float *fdata(const ax_tensor *t) { return ax_tensor_data(t); }

/* ---- double reference --------------------------------------------------------------- */

typedef struct ref_sdpa {
    double *o, *lse, *dq, *dk, *dv;
} ref_sdpa;

static void ref_alloc(ref_sdpa *r, int64_t B, int64_t L, int64_t S, int64_t E, int64_t Ev) {
    r->o = calloc((size_t)(B * L * Ev), sizeof(double));
    r->lse = calloc((size_t)(B * L), sizeof(double));
    r->dq = calloc((size_t)(B * L * E), sizeof(double));
    r->dk = calloc((size_t)(B * S * E) + 1, sizeof(double));
    r->dv = calloc((size_t)(B * S * Ev) + 1, sizeof(double));
    assert_non_null(r->o && r->lse && r->dq && r->dk && r->dv);
}

static void ref_free(ref_sdpa *r) {
    free(r->o);
    free(r->lse);
    free(r->dq);
    free(r->dk);
    free(r->dv);
}

/* Softmax attention and the gradients of sum(o * dout), straight from the
 * definitions, in double. */
static void ref_run(ref_sdpa *r, const float *q, const float *k, const float *v, const float *dout, int64_t B, int64_t L,
                    int64_t S, int64_t E, int64_t Ev, double scale, bool causal) {
    double *p = malloc((size_t)(S + 1) * sizeof(double)), *dp = malloc((size_t)(S + 1) * sizeof(double));
    assert_non_null(p && dp);
    for (int64_t b = 0; b < B; b++) {
        const float *qb = q + b * L * E, *kb = k + b * S * E, *vb = v + b * S * Ev, *db = dout + b * L * Ev;
        for (int64_t i = 0; i < L; i++) {
            int64_t vis = causal ? (i + 1 < S ? i + 1 : S) : S;
            double mx = -INFINITY, sum = 0, delta = 0;
            for (int64_t j = 0; j < vis; j++) {
                double s = 0;
                for (int64_t e = 0; e < E; e++) s += (double)qb[i * E + e] * kb[j * E + e];
                p[j] = s * scale;
                mx = fmax(mx, p[j]);
            }
            if (vis == 0) {
                r->lse[b * L + i] = -INFINITY;
                continue;
            }
            for (int64_t j = 0; j < vis; j++) sum += exp(p[j] - mx);
            r->lse[b * L + i] = mx + log(sum);
            for (int64_t j = 0; j < vis; j++) p[j] = exp(p[j] - mx) / sum;
            for (int64_t c = 0; c < Ev; c++) {
                double acc = 0;
                for (int64_t j = 0; j < vis; j++) acc += p[j] * vb[j * Ev + c];
                r->o[(b * L + i) * Ev + c] = acc;
                delta += acc * db[i * Ev + c];
            }
            for (int64_t j = 0; j < vis; j++) {
                double d = 0;
                for (int64_t c = 0; c < Ev; c++) d += (double)db[i * Ev + c] * vb[j * Ev + c];
                dp[j] = p[j] * (d - delta) * scale; /* dS, scaled */
                for (int64_t c = 0; c < Ev; c++) r->dv[(b * S + j) * Ev + c] += p[j] * db[i * Ev + c];
                for (int64_t e = 0; e < E; e++) {
                    r->dq[(b * L + i) * E + e] += dp[j] * kb[j * E + e];
                    r->dk[(b * S + j) * E + e] += dp[j] * qb[i * E + e];
                }
            }
        }
    }
    free(p);
    free(dp);
}

static void expect_near(const char *what, const float *got, const double *want, int64_t n, double atol, double rtol,
                        const bool *skip_row, int64_t row_len) {
    for (int64_t i = 0; i < n; i++) {
        if (skip_row && skip_row[i / row_len]) continue;
        double g = got[i], w = want[i];
        if (isinf(w) && g == w) continue;
        if (!(fabs(g - w) <= atol + rtol * fabs(w)))
            fail_msg("%s: element %lld: got %.9g, want %.9g", what, (long long)i, g, w);
    }
}

/* ---- kernel against the reference --------------------------------------------------- */

typedef struct kcase {
    int64_t B, L, S, E, Ev;
    bool causal;
    double scale;
} kcase;

static void run_kernel_case(const kcase *c, uint64_t seed) {
    const ax_kernels *k = ax_cpu_kernels();
    assert_true(AX_KERNELS_HAS(k, sdpa) && AX_KERNELS_HAS(k, sdpa_backward));
    ax_tensor *q = ax_test_randn(3, SH(c->B, c->L, c->E), seed, 1, 0, false);
    ax_tensor *kk = ax_test_randn(3, SH(c->B, c->S, c->E), seed + 1, 1, 0, false);
    ax_tensor *v = ax_test_randn(3, SH(c->B, c->S, c->Ev), seed + 2, 1, 0, false);
    ax_tensor *dout = ax_test_randn(3, SH(c->B, c->L, c->Ev), seed + 3, 1, 0, false);
    ax_tensor *o = empty3(c->B, c->L, c->Ev), *lse, *dq = empty3(c->B, c->L, c->E), *dk = empty3(c->B, c->S, c->E);
    ax_tensor *dv = empty3(c->B, c->S, c->Ev), *dk2 = empty3(c->B, c->S, c->E);
    assert_int_equal(ax_tensor_empty(&lse, 2, SH(c->B, c->L), AX_DTYPE_F32), AX_OK);
    assert_int_equal(k->sdpa(o, lse, q, kk, v, c->scale, c->causal), AX_OK);
    assert_int_equal(k->sdpa_backward(dq, dk, dv, dout, q, kk, v, o, lse, c->scale, c->causal), AX_OK);
    ref_sdpa r;
    ref_alloc(&r, c->B, c->L, c->S, c->E, c->Ev);
    ref_run(&r, fdata(q), fdata(kk), fdata(v), fdata(dout), c->B, c->L, c->S, c->E, c->Ev, c->scale, c->causal);
    char what[128];
    snprintf(what, sizeof what, "B %lld L %lld S %lld E %lld Ev %lld causal %d",
             (long long)c->B, (long long)c->L, (long long)c->S, (long long)c->E, (long long)c->Ev, (int)c->causal);
    print_message("kernel case %s\n", what);
    expect_near("o", fdata(o), r.o, c->B * c->L * c->Ev, 2e-6, 1e-4, NULL, 1);
    expect_near("lse", fdata(lse), r.lse, c->B * c->L, 2e-6, 1e-5, NULL, 1);
    expect_near("dq", fdata(dq), r.dq, c->B * c->L * c->E, 1e-5, 1e-4, NULL, 1);
    expect_near("dk", fdata(dk), r.dk, c->B * c->S * c->E, 1e-5, 1e-4, NULL, 1);
    expect_near("dv", fdata(dv), r.dv, c->B * c->S * c->Ev, 1e-5, 1e-4, NULL, 1);
    /* only dk wanted: the same values (the other outputs are skipped) */
    assert_int_equal(k->sdpa_backward(NULL, dk2, NULL, dout, q, kk, v, o, lse, c->scale, c->causal), AX_OK);
    assert_memory_equal(ax_tensor_data(dk2), ax_tensor_data(dk), ax_tensor_nbytes(dk));
    ref_free(&r);
    FREE_ALL(q, kk, v, dout, o, lse, dq, dk, dv, dk2);
}

static void test_kernel_reference(void **state) {
    (void)state;
    const kcase cases[] = {
        {2, 70, 300, 5, 7, false, 0.4},  /* L < S, partial tiles, E != Ev */
        {2, 70, 300, 5, 7, true, 0.4},   /* causal, L < S */
        {1, 330, 270, 8, 3, true, 0.35}, /* causal, L > S: rows past S see every key */
        {3, 129, 260, 64, 64, false, 0.125},
        {1, 1, 1, 3, 2, true, 1.0},
        {1, 128, 512, 1, 1, false, 2.0}, /* exact tiles */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_kernel_case(&cases[i], 100 + 10 * i);
}

/* Row 1's scores overflow to -inf (q = -1e30 against k = 1e10 in feature
 * 0): it sees nothing, so o = 0, lse = -inf and its gradients are 0, while
 * the other rows (feature 0 of q is 0 there) are ordinary. With dout's row 1
 * zero the double reference (where those scores stay finite) has the same
 * gradients for every input. */
static void test_kernel_masked_row(void **state) {
    (void)state;
    const ax_kernels *k = ax_cpu_kernels();
    const int64_t L = 3, S = 5, E = 4, Ev = 2;
    ax_tensor *q = ax_test_randn(3, SH(1, L, E), 7, 1, 0, false), *kk = ax_test_randn(3, SH(1, S, E), 8, 1, 0, false);
    ax_tensor *v = ax_test_randn(3, SH(1, S, Ev), 9, 1, 0, false), *dout = ax_test_randn(3, SH(1, L, Ev), 10, 1, 0, false);
    for (int64_t i = 0; i < L; i++) ax_tensor_set(q, i * E, i == 1 ? -1e30 : 0.0);
    for (int64_t j = 0; j < S; j++) ax_tensor_set(kk, j * E, 1e10 * (1 + j));
    for (int64_t c = 0; c < Ev; c++) ax_tensor_set(dout, Ev + c, 0.0);
    ax_tensor *o = empty3(1, L, Ev), *lse, *dq = empty3(1, L, E), *dk = empty3(1, S, E), *dv = empty3(1, S, Ev);
    assert_int_equal(ax_tensor_empty(&lse, 2, SH(1, L), AX_DTYPE_F32), AX_OK);
    assert_int_equal(k->sdpa(o, lse, q, kk, v, 0.5, false), AX_OK);
    assert_int_equal(k->sdpa_backward(dq, dk, dv, dout, q, kk, v, o, lse, 0.5, false), AX_OK);
    assert_true(isinf(ax_tensor_get(lse, 1)) && ax_tensor_get(lse, 1) < 0);
    for (int64_t c = 0; c < Ev; c++) assert_true(ax_tensor_get(o, Ev + c) == 0.0);
    for (int64_t e = 0; e < E; e++) assert_true(ax_tensor_get(dq, E + e) == 0.0);
    ref_sdpa r;
    ref_alloc(&r, 1, L, S, E, Ev);
    ref_run(&r, fdata(q), fdata(kk), fdata(v), fdata(dout), 1, L, S, E, Ev, 0.5, false);
    const bool skip[3] = {false, true, false};
    expect_near("masked o", fdata(o), r.o, L * Ev, 2e-6, 1e-4, skip, Ev);
    expect_near("masked lse", fdata(lse), r.lse, L, 2e-6, 1e-5, skip, 1);
    /* feature 0 of dq is dS k with k ~ 1e10: relative tolerance there */
    expect_near("masked dq", fdata(dq), r.dq, L * E, 1e-5, 1e-4, skip, E);
    expect_near("masked dk", fdata(dk), r.dk, S * E, 1e-5, 1e-4, NULL, 1);
    expect_near("masked dv", fdata(dv), r.dv, S * Ev, 1e-5, 1e-4, NULL, 1);
    ref_free(&r);
    FREE_ALL(q, kk, v, dout, o, lse, dq, dk, dv);

    /* no keys at all: every row is empty */
    ax_tensor *q0 = ax_test_randn(3, SH(2, 3, 4), 11, 1, 0, false), *k0 = empty3(2, 0, 4), *v0 = empty3(2, 0, 5);
    ax_tensor *o0 = ax_test_randn(3, SH(2, 3, 5), 12, 1, 0, false), *l0, *dq0 = ax_test_randn(3, SH(2, 3, 4), 13, 1, 0, false);
    assert_int_equal(ax_tensor_empty(&l0, 2, SH(2, 3), AX_DTYPE_F32), AX_OK);
    assert_int_equal(k->sdpa(o0, l0, q0, k0, v0, 0.5, false), AX_OK);
    for (int64_t i = 0; i < 30; i++) assert_true(ax_tensor_get(o0, i) == 0.0);
    for (int64_t i = 0; i < 6; i++) assert_true(isinf(ax_tensor_get(l0, i)));
    assert_int_equal(k->sdpa_backward(dq0, NULL, NULL, o0, q0, k0, v0, o0, l0, 0.5, false), AX_OK);
    for (int64_t i = 0; i < 24; i++) assert_true(ax_tensor_get(dq0, i) == 0.0);
    FREE_ALL(q0, k0, v0, o0, l0, dq0);
}

/* ---- thread-count determinism ----------------------------------------------------------- */

static void run_threads_case(int64_t B, int64_t L, int64_t S, bool causal) {
    const ax_kernels *k = ax_cpu_kernels();
    const int64_t E = 16, Ev = 24;
    ax_tensor *q = ax_test_randn(3, SH(B, L, E), 41, 1, 0, false), *kk = ax_test_randn(3, SH(B, S, E), 42, 1, 0, false);
    ax_tensor *v = ax_test_randn(3, SH(B, S, Ev), 43, 1, 0, false), *dout = ax_test_randn(3, SH(B, L, Ev), 44, 1, 0, false);
    ax_tensor *res[2][5];
    const int saved = ax_num_threads();
    for (int t = 0; t < 2; t++) {
        ax_set_num_threads(t == 0 ? 1 : 2);
        ax_tensor *o = empty3(B, L, Ev), *lse, *dq = empty3(B, L, E), *dk = empty3(B, S, E), *dv = empty3(B, S, Ev);
        assert_int_equal(ax_tensor_empty(&lse, 2, SH(B, L), AX_DTYPE_F32), AX_OK);
        assert_int_equal(k->sdpa(o, lse, q, kk, v, 0.25, causal), AX_OK);
        assert_int_equal(k->sdpa_backward(dq, dk, dv, dout, q, kk, v, o, lse, 0.25, causal), AX_OK);
        /* the kernels' one-thread setting for sgemm stays inside their regions */
        assert_int_equal(ax_num_threads(), t == 0 ? 1 : 2);
        res[t][0] = o, res[t][1] = lse, res[t][2] = dq, res[t][3] = dk, res[t][4] = dv;
    }
    ax_set_num_threads(saved);
    const char *names[5] = {"o", "lse", "dq", "dk", "dv"};
    for (int i = 0; i < 5; i++)
        if (memcmp(ax_tensor_data(res[0][i]), ax_tensor_data(res[1][i]), ax_tensor_nbytes(res[0][i])))
            fail_msg("B %lld causal %d: %s differs between 1 and 2 threads", (long long)B, (int)causal, names[i]);
    for (int t = 0; t < 2; t++) FREE_ALL(res[t][0], res[t][1], res[t][2], res[t][3], res[t][4]);
    FREE_ALL(q, kk, v, dout);
}

/* B = 2 splits evenly (whole entries per thread); B = 1 and 3 take the
 * key-block / query-block schedule on 2 threads and the per-entry one on 1. */
static void test_kernel_threads(void **state) {
    (void)state;
    run_threads_case(1, 200, 300, false);
    run_threads_case(1, 300, 200, true);
    run_threads_case(2, 150, 260, true);
    run_threads_case(3, 130, 140, false);
    /* a problem too small to fork: the regions run serially */
    const int saved = ax_num_threads();
    ax_set_num_threads(2);
    run_kernel_case(&(kcase){1, 5, 6, 3, 2, false, 0.5}, 77);
    assert_int_equal(ax_num_threads(), 2);
    ax_set_num_threads(saved);
}

/* ---- front-end: fused against composite ------------------------------------------------- */

/* a float mask equal to is_causal (0 where seen, -inf above the diagonal) */
static ax_tensor *causal_bias(int64_t L, int64_t S) {
    ax_tensor *m;
    assert_int_equal(ax_tensor_empty(&m, 2, SH(L, S), AX_DTYPE_F32), AX_OK);
    for (int64_t i = 0; i < L; i++)
        for (int64_t j = 0; j < S; j++) ax_tensor_set(m, i * S + j, j <= i ? 0.0 : -INFINITY);
    return m;
}

static void fused_vs_composite(int nd, const int64_t *qs, const int64_t *ks, const int64_t *vs, bool causal,
                               double scale) {
    const int64_t L = qs[nd - 2], S = ks[nd - 2];
    ax_tensor *g[2][3], *y[2], *bias = causal ? causal_bias(L, S) : NULL, *zero = NULL;
    if (!causal) assert_int_equal(ax_tensor_zeros(&zero, 1, SH(1), AX_DTYPE_F32), AX_OK);
    ax_tensor *gout = NULL;
    for (int path = 0; path < 2; path++) {
        ax_tensor *q = ax_test_randn(nd, qs, 51, 1, 0, true), *k = ax_test_randn(nd, ks, 52, 1, 0, true);
        ax_tensor *v = ax_test_randn(nd, vs, 53, 1, 0, true);
        /* path 1: a float mask sends it down the composite path */
        ax_status st = path == 0 ? ax_scaled_dot_product_attention(&y[path], q, k, v, NULL, causal, scale)
                                 : ax_scaled_dot_product_attention(&y[path], q, k, v, causal ? bias : zero, false, scale);
        assert_int_equal(st, AX_OK);
        if (path == 0) {
            assert_non_null(y[0]->grad_fn);
            assert_string_equal(y[0]->grad_fn->name, "scaled_dot_product_attention");
            gout = ax_test_randn(y[0]->ndim, y[0]->shape, 54, 1, 0, false);
        } else {
            assert_string_not_equal(y[1]->grad_fn->name, "scaled_dot_product_attention");
        }
        assert_int_equal(ax_backward(y[path], gout), AX_OK);
        g[path][0] = ax_tensor_retain(q->grad), g[path][1] = ax_tensor_retain(k->grad),
        g[path][2] = ax_tensor_retain(v->grad);
        FREE_ALL(q, k, v);
    }
    if (!ax_allclose("fused out", y[0], y[1], 1e-5, 1e-5)) fail_msg("fused forward differs from the composite");
    const char *names[3] = {"fused dq", "fused dk", "fused dv"};
    for (int i = 0; i < 3; i++)
        if (!ax_allclose(names[i], g[0][i], g[1][i], 1e-5, 1e-5)) fail_msg("%s differs from the composite", names[i]);
    FREE_ALL(y[0], y[1], gout, bias, zero);
    for (int p = 0; p < 2; p++) FREE_ALL(g[p][0], g[p][1], g[p][2]);
}

static void test_fused_vs_composite(void **state) {
    (void)state;
    fused_vs_composite(4, SH(2, 3, 100, 16), SH(2, 3, 300, 16), SH(2, 3, 300, 12), false, 0.0);
    fused_vs_composite(4, SH(2, 3, 100, 16), SH(2, 3, 300, 16), SH(2, 3, 300, 12), true, 0.0);
    fused_vs_composite(3, SH(2, 300, 8), SH(2, 270, 8), SH(2, 270, 8), true, 0.7);
    /* k, v shared by the batch: the kernels see broadcast copies, and the
     * gradients are summed back to [1, ...] */
    fused_vs_composite(4, SH(2, 2, 70, 8), SH(1, 2, 130, 8), SH(1, 2, 130, 4), false, 0.0);
}

/* finite differences through the fused path on shapes that span tiles */
typedef struct gc_ctx {
    bool causal;
} gc_ctx;

static ax_status sdpa_gc_fn(ax_tensor **out, ax_tensor *const *in, void *vctx) {
    const gc_ctx *c = vctx;
    return ax_scaled_dot_product_attention(out, in[0], in[1], in[2], NULL, c->causal, 0.0);
}

static void test_fused_gradcheck(void **state) {
    (void)state;
    ax_tensor *q = ax_test_randn(3, SH(1, 70, 3), 61, 1, 0, true), *k = ax_test_randn(3, SH(1, 270, 3), 62, 1, 0, true);
    ax_tensor *v = ax_test_randn(3, SH(1, 270, 2), 63, 1, 0, true);
    ax_tensor *in[3] = {q, k, v};
    ax_gc_opts opts = AX_GC_DEFAULT;
    opts.max_elems = 60;
    for (int c = 0; c < 2; c++) {
        gc_ctx ctx = {c == 1};
        if (!ax_gradcheck(sdpa_gc_fn, 3, in, &ctx, &opts)) fail_msg("fused sdpa gradcheck, causal %d", c);
    }
    FREE_ALL(q, k, v);
}

/* ---- memory: no [L, S] allocation on the fused path ---------------------------------------- */

/* A stand-in device: the CPU kernels behind a table registered for
 * AX_DEVICE_CUDA whose allocator records the largest single allocation
 * and the peak of live bytes (the CPU table's own allocator keeps no count). */
static ax_kernels mem_table;
static size_t mem_largest;
static int64_t mem_live, mem_peak;

static void *mem_alloc(size_t nbytes, int32_t index) {
    if (index != 0) {
        AX_ERROR(AX_ERR_INVALID, "stand-in device %d does not exist", (int)index);
        return NULL;
    }
    void *p = malloc(nbytes ? nbytes : 1);
    if (!p) {
        AX_ERROR(AX_ERR_NOMEM, "out of memory");
        return NULL;
    }
    mem_largest = nbytes > mem_largest ? nbytes : mem_largest;
    mem_live += (int64_t)nbytes;
    mem_peak = mem_live > mem_peak ? mem_live : mem_peak;
    return p;
}

static void mem_release(void *p, size_t nbytes, int32_t index) {
    (void)index;
    mem_live -= (int64_t)nbytes;
    free(p);
}

static ax_status mem_transfer(ax_tensor *dst, const ax_tensor *src) {
    memcpy(ax_tensor_data(dst), ax_tensor_data(src), ax_tensor_nbytes(src));
    return AX_OK;
}

static void run_on_stand_in(bool fused, int64_t L, int64_t S, size_t *largest, int64_t *peak) {
    const ax_device dev = {AX_DEVICE_CUDA, 0};
    ax_tensor *qc = ax_test_randn(3, SH(1, L, 16), 71, 1, 0, false), *kc = ax_test_randn(3, SH(1, S, 16), 72, 1, 0, false);
    ax_tensor *vc = ax_test_randn(3, SH(1, S, 16), 73, 1, 0, false), *zc = NULL;
    assert_int_equal(ax_tensor_zeros(&zc, 1, SH(1), AX_DTYPE_F32), AX_OK);
    ax_tensor *q, *k, *v, *z, *y, *s;
    assert_int_equal(ax_tensor_to_device(&q, qc, dev), AX_OK);
    assert_int_equal(ax_tensor_to_device(&k, kc, dev), AX_OK);
    assert_int_equal(ax_tensor_to_device(&v, vc, dev), AX_OK);
    assert_int_equal(ax_tensor_to_device(&z, zc, dev), AX_OK);
    for (int i = 0; i < 3; i++) assert_int_equal(ax_tensor_set_requires_grad((ax_tensor *[]){q, k, v}[i], true), AX_OK);
    mem_largest = 0;
    mem_peak = mem_live;
    const int64_t base = mem_live;
    assert_int_equal(ax_scaled_dot_product_attention(&y, q, k, v, fused ? NULL : z, false, 0.0), AX_OK);
    assert_int_equal(ax_sum(&s, y, 0, NULL, false), AX_OK);
    assert_int_equal(ax_backward(s, NULL), AX_OK);
    *largest = mem_largest;
    *peak = mem_peak - base;
    FREE_ALL(qc, kc, vc, zc, q, k, v, z, y, s);
}

static void test_fused_memory(void **state) {
    (void)state;
    mem_table = *ax_cpu_kernels();
    mem_table.name = "stand-in";
    mem_table.alloc = mem_alloc;
    mem_table.release = mem_release;
    mem_table.transfer = mem_transfer;
    assert_int_equal(ax_kernels_register(AX_DEVICE_CUDA, &mem_table), AX_OK);
    const int64_t L = 768, S = 1024;
    const size_t scores = (size_t)(L * S) * sizeof(float);
    size_t largest;
    int64_t peak;
    run_on_stand_in(true, L, S, &largest, &peak);
    print_message("fused: largest allocation %zu bytes, peak %lld (scores: %zu)\n", largest, (long long)peak, scores);
    /* q, k, v, o and their gradients are [*, 16]: 64 KiB each at most */
    assert_true(largest <= (size_t)S * 16 * sizeof(float));
    assert_true(peak < (int64_t)scores / 2);
    run_on_stand_in(false, L, S, &largest, &peak);
    print_message("composite: largest allocation %zu bytes, peak %lld\n", largest, (long long)peak);
    assert_true(largest >= scores); /* the check above can fail */
}

/* ---- errors ------------------------------------------------------------------------------ */

static void test_kernel_errors(void **state) {
    (void)state;
    const ax_kernels *k = ax_cpu_kernels();
    ax_tensor *q = ax_test_randn(3, SH(2, 3, 4), 1, 1, 0, false), *kk = ax_test_randn(3, SH(2, 5, 4), 2, 1, 0, false);
    ax_tensor *v = ax_test_randn(3, SH(2, 5, 6), 3, 1, 0, false), *o = empty3(2, 3, 6), *lse, *bad = empty3(2, 3, 5);
    ax_tensor *kw = ax_test_randn(3, SH(2, 5, 3), 4, 1, 0, false), *qh, *qt;
    assert_int_equal(ax_tensor_empty(&lse, 2, SH(2, 3), AX_DTYPE_F32), AX_OK);
    assert_int_equal(ax_tensor_to_dtype(&qh, q, AX_DTYPE_BF16), AX_OK);
    assert_int_equal(ax_tensor_transpose(&qt, kk, 0, 1), AX_OK);
    assert_int_equal(k->sdpa(o, lse, qh, kk, v, 0.5, false), AX_ERR_UNSUPPORTED);
    assert_non_null(strstr(ax_error_message(), "q is bf16"));
    assert_int_equal(k->sdpa(o, lse, q, kw, v, 0.5, false), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "want contiguous q [B, L, E], k [B, S, E], v [B, S, Ev]"));
    assert_int_equal(k->sdpa(o, lse, q, qt, v, 0.5, false), AX_ERR_INVALID);
    assert_int_equal(k->sdpa(bad, lse, q, kk, v, 0.5, false), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "o [2, 3, 5]"));
    assert_int_equal(k->sdpa(o, lse, q, kk, v, INFINITY, false), AX_ERR_INVALID);
    assert_int_equal(k->sdpa_backward(NULL, NULL, NULL, bad, q, kk, v, o, lse, 0.5, false), AX_ERR_INVALID);
    assert_int_equal(k->sdpa_backward(bad, NULL, NULL, o, q, kk, v, o, lse, 0.5, false), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "dq, dk and dv must be contiguous f32"));
    FREE_ALL(q, kk, v, o, lse, bad, kw, qh, qt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernel_reference),  cmocka_unit_test(test_kernel_masked_row),
        cmocka_unit_test(test_kernel_threads),    cmocka_unit_test(test_fused_vs_composite),
        cmocka_unit_test(test_fused_gradcheck),   cmocka_unit_test(test_fused_memory),
        cmocka_unit_test(test_kernel_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
