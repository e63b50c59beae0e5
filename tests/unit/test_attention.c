/* Attention, RoPE and regularisers (axon/attention.h): dropout / drop path
 * statistics, determinism and gradients; scaled dot-product attention
 * against a naive double reference (causal, bool and float masks, fully
 * masked rows, broadcast batch dims) and finite differences; the 3-D RoPE
 * tables against their formula, norm preservation, the relative-position
 * property and gradients; every error message; and PyTorch / timm parity
 * from tests/fixtures/attention/attention.safetensors (make_attention.py). */
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
#include "axon/safetensors.h"
#include "gradcheck.h"

#define SH(...) ((const int64_t[]){__VA_ARGS__})

static void ax_expect_error(ax_status st, const char *text) {
    assert_int_equal(st, AX_ERR_INVALID);
    if (!strstr(ax_error_message(), text)) fail_msg("message \"%s\" lacks \"%s\"", ax_error_message(), text);
}

static void free_all(ax_tensor **ts, size_t n) {
    for (size_t i = 0; i < n; i++) ax_tensor_free(ts[i]);
}
#define FREE_ALL(...)                                                                                                  \
    do {                                                                                                               \
        ax_tensor *all_[] = {__VA_ARGS__};                                                                             \
        free_all(all_, sizeof all_ / sizeof all_[0]);                                                                  \
    } while (0)

/* ---- dropout ------------------------------------------------------------------------ */

static void test_dropout_identity(void **state) {
    (void)state;
    ax_tensor *x = ax_test_randn(2, SH(4, 5), 1, 1, 0, true), *y;
    assert_int_equal(ax_dropout(&y, x, 0.5, false, 1, 2), AX_OK);
    assert_ptr_equal(y, x);
    ax_tensor_free(y);
    assert_int_equal(ax_dropout(&y, x, 0.0, true, 1, 2), AX_OK);
    assert_ptr_equal(y, x);
    ax_tensor_free(y);
    assert_int_equal(ax_drop_path(&y, x, 0.5, false, 1, 2), AX_OK);
    assert_ptr_equal(y, x);
    ax_tensor_free(y);
    /* p == 1: zeros, and zero gradients */
    ax_tensor *s;
    assert_int_equal(ax_dropout(&y, x, 1.0, true, 1, 2), AX_OK);
    for (int i = 0; i < 20; i++) assert_float_equal(ax_tensor_get(y, i), 0.0, 0.0);
    assert_int_equal(ax_sum(&s, y, 0, NULL, false), AX_OK);
    assert_int_equal(ax_backward(s, NULL), AX_OK);
    for (int i = 0; i < 20; i++) assert_float_equal(ax_tensor_get(x->grad, i), 0.0, 0.0);
    FREE_ALL(y, s);
    assert_int_equal(ax_drop_path(&y, x, 1.0, true, 1, 2), AX_OK);
    for (int i = 0; i < 20; i++) assert_float_equal(ax_tensor_get(y, i), 0.0, 0.0);
    FREE_ALL(y, x);
}

/* The mask is bernoulli(x's shape, 1 - p, seed, stream): kept values are
 * x / (1 - p), the kept fraction matches, the same (seed, stream) repeats,
 * another stream or seed differs, and the gradient is mask / (1 - p). */
static void test_dropout_values(void **state) {
    (void)state;
    const int64_t n = 64 * 128;
    const double p = 0.3;
    ax_tensor *x = ax_test_randn(2, SH(64, 128), 3, 1, 0.0, true), *y, *y2, *y3, *y4, *keep;
    for (int64_t i = 0; i < n; i++)
        if (ax_tensor_get(x, i) == 0) ax_tensor_set(x, i, 1.0);
    assert_int_equal(ax_dropout(&y, x, p, true, 42, 7), AX_OK);
    assert_int_equal(ax_tensor_bernoulli(&keep, 2, SH(64, 128), AX_DTYPE_F32, 1 - p, 42, 7), AX_OK);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
        double want = ax_tensor_get(keep, i) ? ax_tensor_get(x, i) / (1 - p) : 0.0;
        assert_float_equal(ax_tensor_get(y, i), want, 1e-6 * fabs(want));
        kept += ax_tensor_get(keep, i) != 0;
    }
    /* 4.6 sigma of a binomial(8192, 0.7) fraction is 0.023 */
    assert_true(fabs((double)kept / (double)n - (1 - p)) < 0.023);
    assert_int_equal(ax_dropout(&y2, x, p, true, 42, 7), AX_OK);
    assert_int_equal(ax_dropout(&y3, x, p, true, 42, 8), AX_OK);
    assert_int_equal(ax_dropout(&y4, x, p, true, 43, 7), AX_OK);
    int64_t diff3 = 0, diff4 = 0;
    for (int64_t i = 0; i < n; i++) {
        assert_true(ax_tensor_get(y2, i) == ax_tensor_get(y, i));
        diff3 += (ax_tensor_get(y3, i) == 0) != (ax_tensor_get(y, i) == 0);
        diff4 += (ax_tensor_get(y4, i) == 0) != (ax_tensor_get(y, i) == 0);
    }
    /* independent masks disagree on 2 p (1 - p) = 42% of the elements */
    assert_true(diff3 > n / 3 && diff4 > n / 3);
    /* gradient: mask / (1 - p) */
    ax_tensor *s;
    assert_int_equal(ax_sum(&s, y, 0, NULL, false), AX_OK);
    assert_int_equal(ax_backward(s, NULL), AX_OK);
    for (int64_t i = 0; i < n; i++)
        assert_float_equal(ax_tensor_get(x->grad, i), ax_tensor_get(keep, i) / (1 - p), 1e-6);
    FREE_ALL(x, y, y2, y3, y4, keep, s);
}

/* The mask follows the logical C order of a view, not its strides; bf16
 * stays bf16. */
static void test_dropout_views_and_dtypes(void **state) {
    (void)state;
    ax_tensor *x = ax_test_randn(2, SH(6, 5), 5, 1, 3.0, false), *xt, *y, *keep, *xb, *yb;
    assert_int_equal(ax_tensor_transpose(&xt, x, 0, 1), AX_OK); /* [5, 6] */
    assert_int_equal(ax_dropout(&y, xt, 0.5, true, 9, 1), AX_OK);
    assert_int_equal(ax_tensor_bernoulli(&keep, 2, SH(5, 6), AX_DTYPE_F32, 0.5, 9, 1), AX_OK);
    for (int i = 0; i < 30; i++)
        assert_float_equal(ax_tensor_get(y, i), ax_tensor_get(keep, i) * 2 * ax_tensor_get(xt, i), 1e-5);
    assert_int_equal(ax_tensor_to_dtype(&xb, x, AX_DTYPE_BF16), AX_OK);
    assert_int_equal(ax_dropout(&yb, xb, 0.5, true, 9, 1), AX_OK);
    assert_int_equal(yb->dtype, AX_DTYPE_BF16);
    FREE_ALL(x, xt, y, keep, xb, yb);
}

static void test_drop_path(void **state) {
    (void)state;
    const int N = 400;
    const double p = 0.25;
    ax_tensor *x = ax_test_randn(3, SH(N, 3, 2), 11, 1, 4.0, true), *y, *keep, *s;
    assert_int_equal(ax_drop_path(&y, x, p, true, 5, 3), AX_OK);
    assert_int_equal(ax_tensor_bernoulli(&keep, 1, SH(N), AX_DTYPE_F32, 1 - p, 5, 3), AX_OK);
    int kept = 0;
    for (int n = 0; n < N; n++) {
        double k = ax_tensor_get(keep, n);
        kept += k != 0;
        for (int j = 0; j < 6; j++)
            assert_float_equal(ax_tensor_get(y, n * 6 + j), k * ax_tensor_get(x, n * 6 + j) / (1 - p), 1e-5);
    }
    /* 4.6 sigma of a binomial(400, 0.75) fraction is 0.1 */
    assert_true(fabs(kept / (double)N - (1 - p)) < 0.1);
    assert_int_equal(ax_sum(&s, y, 0, NULL, false), AX_OK);
    assert_int_equal(ax_backward(s, NULL), AX_OK);
    for (int n = 0; n < N; n++)
        for (int j = 0; j < 6; j++)
            assert_float_equal(ax_tensor_get(x->grad, n * 6 + j), ax_tensor_get(keep, n) / (1 - p), 1e-6);
    FREE_ALL(x, y, keep, s);
}

typedef struct drop_ctx {
    bool path;
} drop_ctx;

static ax_status drop_fn(ax_tensor **out, ax_tensor *const *in, void *vctx) {
    const drop_ctx *c = vctx;
    ax_tensor *t = NULL;
    if (ax_tensor_transpose(&t, in[0], 0, 1) != AX_OK) return ax_error_status();
    ax_status st = c->path ? ax_drop_path(out, t, 0.4, true, 3, 4) : ax_dropout(out, t, 0.4, true, 3, 4);
    ax_tensor_free(t);
    return st;
}

static void test_dropout_grad(void **state) {
    (void)state;
    ax_tensor *x = ax_test_randn(2, SH(4, 6), 13, 1, 0, true), *in[1] = {x};
    drop_ctx c0 = {false}, c1 = {true};
    assert_true(ax_gradcheck(drop_fn, 1, in, &c0, &AX_GC_DEFAULT));
    assert_true(ax_gradcheck(drop_fn, 1, in, &c1, &AX_GC_DEFAULT));
    ax_tensor_free(x);
}

static void test_dropout_errors(void **state) {
    (void)state;
    ax_tensor *x = ax_test_randn(1, SH(4), 1, 1, 0, false), *ix, *s, *y = NULL;
    assert_int_equal(ax_tensor_arange(&ix, 0, 4, 1, AX_DTYPE_I64), AX_OK);
    assert_int_equal(ax_tensor_scalar(&s, 1.0, AX_DTYPE_F32), AX_OK);
    ax_expect_error(ax_dropout(&y, x, -0.1, true, 1, 1), "ax_dropout: p = -0.1 is not in [0, 1]");
    ax_expect_error(ax_dropout(&y, x, 1.5, true, 1, 1), "ax_dropout: p = 1.5 is not in [0, 1]");
    ax_expect_error(ax_dropout(&y, x, NAN, true, 1, 1), "ax_dropout: p = nan is not in [0, 1]");
    ax_expect_error(ax_dropout(&y, ix, 0.1, true, 1, 1), "ax_dropout: x must be a floating tensor, got i64");
    ax_expect_error(ax_drop_path(&y, x, 2, true, 1, 1), "ax_drop_path: p = 2 is not in [0, 1]");
    ax_expect_error(ax_drop_path(&y, s, 0.1, true, 1, 1),
                    "ax_drop_path: x must have a sample dim, got a 0-dim tensor");
    assert_null(y);
    FREE_ALL(x, ix, s);
}

/* ---- scaled dot-product attention --------------------------------------------------- */

/* q [B, L, E], k [Bk, S, E], v [Bk, S, Ev] with Bk in {1, B}; bias(b, i, j)
 * from `bias` with batch stride bstride (0: shared), NULL: none; causal. */
static void ref_sdpa(const ax_tensor *q, const ax_tensor *k, const ax_tensor *v, const double *bias,
                     int64_t bstride, bool causal, double scale, double *out) {
    int64_t B = q->shape[0], L = q->shape[1], E = q->shape[2], S = k->shape[1], Ev = v->shape[2];
    for (int64_t b = 0; b < B; b++) {
        int64_t bk = k->shape[0] == 1 ? 0 : b;
        for (int64_t i = 0; i < L; i++) {
            double sc[64], mx = -INFINITY, den = 0;
            for (int64_t j = 0; j < S; j++) {
                double d = 0;
                for (int64_t e = 0; e < E; e++)
                    d += ax_tensor_get(q, (b * L + i) * E + e) * ax_tensor_get(k, (bk * S + j) * E + e);
                d *= scale;
                if (bias) d += bias[b * bstride + i * S + j];
                if (causal && j > i) d = -INFINITY;
                sc[j] = d;
                mx = fmax(mx, d);
            }
            for (int64_t c = 0; c < Ev; c++) out[(b * L + i) * Ev + c] = 0;
            if (mx == -INFINITY) continue; /* fully masked: zeros */
            for (int64_t j = 0; j < S; j++) den += exp(sc[j] - mx);
            for (int64_t j = 0; j < S; j++) {
                double pj = exp(sc[j] - mx) / den;
                for (int64_t c = 0; c < Ev; c++) out[(b * L + i) * Ev + c] += pj * ax_tensor_get(v, (bk * S + j) * Ev + c);
            }
        }
    }
}

static void expect_close(const char *what, const ax_tensor *got, const double *want, double atol) {
    for (int64_t i = 0; i < ax_tensor_numel(got); i++) {
        double g = ax_tensor_get(got, i);
        if (!(fabs(g - want[i]) <= atol + 1e-5 * fabs(want[i])))
            fail_msg("%s: element %lld: got %.8g, want %.8g", what, (long long)i, g, want[i]);
    }
}

static void test_sdpa_forward(void **state) {
    (void)state;
    ax_tensor *q = ax_test_randn(3, SH(2, 3, 4), 21, 1, 0, false), *k = ax_test_randn(3, SH(2, 5, 4), 22, 1, 0, false);
    ax_tensor *v = ax_test_randn(3, SH(2, 5, 3), 23, 1, 0, false), *y;
    double want[64];
    /* plain, default scale and an explicit one */
    ref_sdpa(q, k, v, NULL, 0, false, 0.5, want);
    assert_int_equal(ax_scaled_dot_product_attention(&y, q, k, v, NULL, false, 0.0), AX_OK);
    assert_int_equal(y->ndim, 3);
    assert_int_equal(y->shape[2], 3);
    expect_close("sdpa plain", y, want, 1e-5);
    ax_tensor_free(y);
    ref_sdpa(q, k, v, NULL, 0, false, 1.7, want);
    assert_int_equal(ax_scaled_dot_product_attention(&y, q, k, v, NULL, false, 1.7), AX_OK);
    expect_close("sdpa scale", y, want, 1e-5);
    ax_tensor_free(y);

    /* causal with L < S (top-left aligned), L == S and L > S */
    const int64_t Ls[3] = {3, 5, 7};
    for (int c = 0; c < 3; c++) {
        ax_tensor *qc = ax_test_randn(3, SH(2, Ls[c], 4), 24 + c, 1, 0, false);
        ref_sdpa(qc, k, v, NULL, 0, true, 0.5, want);
        assert_int_equal(ax_scaled_dot_product_attention(&y, qc, k, v, NULL, true, 0.0), AX_OK);
        expect_close("sdpa causal", y, want, 1e-5);
        FREE_ALL(y, qc);
    }

    /* a bool mask [L, S] shared by the batch, with a fully masked row */
    ax_tensor *bm, *bm4;
    double bias[2 * 15];
    assert_int_equal(ax_tensor_empty(&bm, 2, SH(3, 5), AX_DTYPE_U8), AX_OK);
    for (int i = 0; i < 15; i++) {
        int on = i / 5 == 1 ? 0 : (i * 7) % 4 != 0;
        ax_tensor_set(bm, i, on);
        bias[i] = on ? 0 : -INFINITY;
    }
    ref_sdpa(q, k, v, bias, 0, false, 0.5, want);
    assert_int_equal(ax_scaled_dot_product_attention(&y, q, k, v, bm, false, 0.0), AX_OK);
    expect_close("sdpa bool mask", y, want, 1e-5);
    for (int c = 0; c < 3; c++) assert_float_equal(ax_tensor_get(y, 3 + c), 0.0, 0.0);
    ax_tensor_free(y);
    /* a per-batch bool mask [B, L, S] without fully masked rows (the fast path) */
    assert_int_equal(ax_tensor_empty(&bm4, 3, SH(2, 3, 5), AX_DTYPE_U8), AX_OK);
    for (int i = 0; i < 30; i++) {
        int on = (i % 5) == 0 || (i * 5) % 3 != 0;
        ax_tensor_set(bm4, i, on);
        bias[i] = on ? 0 : -INFINITY;
    }
    ref_sdpa(q, k, v, bias, 15, false, 0.5, want);
    assert_int_equal(ax_scaled_dot_product_attention(&y, q, k, v, bm4, false, 0.0), AX_OK);
    expect_close("sdpa batch bool mask", y, want, 1e-5);
    ax_tensor_free(y);

    /* a float mask [2, 1, 5] broadcast over queries, with a -inf */
    ax_tensor *fm = ax_test_randn(3, SH(2, 1, 5), 27, 1, 0, false);
    ax_tensor_set(fm, 3, -INFINITY);
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 5; j++) bias[b * 15 + i * 5 + j] = ax_tensor_get(fm, b * 5 + j);
    ref_sdpa(q, k, v, bias, 15, false, 0.5, want);
    assert_int_equal(ax_scaled_dot_product_attention(&y, q, k, v, fm, false, 0.0), AX_OK);
    expect_close("sdpa float mask", y, want, 1e-5);
    ax_tensor_free(y);

    /* 4-D with k, v shared over the batch: [2, 2, 3, 4] x [1, 2, 5, 4] */
    ax_tensor *q4 = ax_test_randn(4, SH(2, 2, 3, 4), 28, 1, 0, false), *k4, *v4, *q3, *y3;
    assert_int_equal(ax_tensor_view(&k4, k, 4, SH(1, 2, 5, 4)), AX_OK);
    assert_int_equal(ax_tensor_view(&v4, v, 4, SH(1, 2, 5, 3)), AX_OK);
    assert_int_equal(ax_scaled_dot_product_attention(&y, q4, k4, v4, NULL, false, 0.0), AX_OK);
    assert_int_equal(y->ndim, 4);
    for (int b = 0; b < 2; b++) {
        ax_tensor *qb;
        assert_int_equal(ax_tensor_narrow(&qb, q4, 0, b, 1), AX_OK);
        assert_int_equal(ax_tensor_reshape(&q3, qb, 3, SH(2, 3, 4)), AX_OK);
        ref_sdpa(q3, k, v, NULL, 0, false, 0.5, want);
        assert_int_equal(ax_tensor_narrow(&y3, y, 0, b, 1), AX_OK);
        expect_close("sdpa broadcast batch", y3, want, 1e-5);
        FREE_ALL(qb, q3, y3);
    }
    FREE_ALL(y, q4, k4, v4, q, k, v, bm, bm4, fm);
}

typedef struct sdpa_ctx {
    const ax_tensor *mask;
    bool causal, float_mask_input;
    double scale;
} sdpa_ctx;

/* in[0]: q stored [B, E, L] (fed transposed, non-contiguous), in[1]: k,
 * in[2]: v, in[3]: [optional] a float mask that requires grad. */
static ax_status sdpa_fn(ax_tensor **out, ax_tensor *const *in, void *vctx) {
    const sdpa_ctx *c = vctx;
    ax_tensor *qt = NULL;
    if (ax_tensor_transpose(&qt, in[0], 1, 2) != AX_OK) return ax_error_status();
    ax_status st = ax_scaled_dot_product_attention(out, qt, in[1], in[2], c->float_mask_input ? in[3] : c->mask,
                                                   c->causal, c->scale);
    ax_tensor_free(qt);
    return st;
}

static void test_sdpa_grad(void **state) {
    (void)state;
    ax_tensor *q = ax_test_randn(3, SH(2, 4, 3), 31, 1, 0, true), *k = ax_test_randn(3, SH(1, 5, 4), 32, 1, 0, true);
    ax_tensor *v = ax_test_randn(3, SH(1, 5, 2), 33, 1, 0, true), *fm = ax_test_randn(2, SH(3, 5), 34, 1, 0, true);
    ax_tensor *bm;
    assert_int_equal(ax_tensor_empty(&bm, 2, SH(3, 5), AX_DTYPE_U8), AX_OK);
    for (int i = 0; i < 15; i++) ax_tensor_set(bm, i, i / 5 == 2 ? 0 : (i % 3) != 1);
    ax_tensor *in[4] = {q, k, v, fm};
    sdpa_ctx cases[] = {
        {NULL, false, false, 0.0},
        {NULL, true, false, 0.0},
        {NULL, false, false, 0.8},
        {bm, false, false, 0.0}, /* row 2 fully masked */
        {NULL, false, true, 0.0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (!ax_gradcheck(sdpa_fn, cases[i].float_mask_input ? 4 : 3, in, &cases[i], &AX_GC_DEFAULT))
            fail_msg("sdpa grad case %zu", i);
    /* the fully masked row: finite, zero gradients for its query */
    ax_tensor *y, *s;
    ax_tensor_zero_grad(q);
    assert_int_equal(sdpa_fn(&y, in, &cases[3]), AX_OK);
    assert_int_equal(ax_sum(&s, y, 0, NULL, false), AX_OK);
    assert_int_equal(ax_backward(s, NULL), AX_OK);
    for (int b = 0; b < 2; b++)
        for (int e = 0; e < 4; e++) assert_float_equal(ax_tensor_get(q->grad, (b * 4 + e) * 3 + 2), 0.0, 0.0);
    for (int i = 0; i < 20; i++) assert_true(isfinite(ax_tensor_get(k->grad, i)));
    FREE_ALL(y, s, q, k, v, fm, bm);
}

static void test_sdpa_errors(void **state) {
    (void)state;
    ax_tensor *q = ax_test_randn(3, SH(2, 3, 4), 1, 1, 0, false), *k = ax_test_randn(3, SH(2, 5, 4), 2, 1, 0, false);
    ax_tensor *v = ax_test_randn(3, SH(2, 5, 3), 3, 1, 0, false), *k6 = ax_test_randn(3, SH(2, 5, 6), 4, 1, 0, false);
    ax_tensor *v4 = ax_test_randn(3, SH(2, 4, 3), 5, 1, 0, false), *kb = ax_test_randn(3, SH(3, 5, 4), 6, 1, 0, false);
    ax_tensor *m = ax_test_randn(2, SH(4, 5), 7, 1, 0, false), *x1 = ax_test_randn(1, SH(4), 8, 1, 0, false);
    ax_tensor *mi, *kh, *y = NULL;
    assert_int_equal(ax_tensor_zeros(&mi, 2, SH(3, 5), AX_DTYPE_I32), AX_OK);
    assert_int_equal(ax_tensor_to_dtype(&kh, k, AX_DTYPE_BF16), AX_OK);
    const char *fn = "ax_scaled_dot_product_attention: ";
    char want[256];
    snprintf(want, sizeof want, "%sq [2, 3, 4] and k [2, 5, 6] differ in the feature dim", fn);
    ax_expect_error(ax_scaled_dot_product_attention(&y, q, k6, v, NULL, false, 0), want);
    snprintf(want, sizeof want, "%sk [2, 5, 4] and v [2, 4, 3] differ in the key length", fn);
    ax_expect_error(ax_scaled_dot_product_attention(&y, q, k, v4, NULL, false, 0), want);
    snprintf(want, sizeof want, "%sthe batch dims of q [2, 3, 4], k [3, 5, 4] and v [2, 5, 3] do not broadcast", fn);
    ax_expect_error(ax_scaled_dot_product_attention(&y, q, kb, v, NULL, false, 0), want);
    snprintf(want, sizeof want, "%sattn_mask [4, 5] does not broadcast to the scores [2, 3, 5]", fn);
    ax_expect_error(ax_scaled_dot_product_attention(&y, q, k, v, m, false, 0), want);
    snprintf(want, sizeof want, "%sattn_mask must be u8 (1 = attend) or float (added), got i32", fn);
    ax_expect_error(ax_scaled_dot_product_attention(&y, q, k, v, mi, false, 0), want);
    snprintf(want, sizeof want, "%sattn_mask and is_causal may not be set together", fn);
    ax_tensor *m35 = ax_test_randn(2, SH(3, 5), 9, 1, 0, false);
    ax_expect_error(ax_scaled_dot_product_attention(&y, q, k, v, m35, true, 0), want);
    snprintf(want, sizeof want, "%sq, k and v must share a dtype, got f32, bf16 and f32", fn);
    ax_expect_error(ax_scaled_dot_product_attention(&y, q, kh, v, NULL, false, 0), want);
    snprintf(want, sizeof want, "%sq [4] must have at least 2 dims", fn);
    ax_expect_error(ax_scaled_dot_product_attention(&y, x1, k, v, NULL, false, 0), want);
    snprintf(want, sizeof want, "%sscale = inf is not finite", fn);
    ax_expect_error(ax_scaled_dot_product_attention(&y, q, k, v, NULL, false, INFINITY), want);
    assert_null(y);
    FREE_ALL(q, k, v, k6, v4, kb, m, x1, mi, kh, m35);
}

/* ---- rotary position embedding --------------------------------------------------------- */

static void test_rope_tables(void **state) {
    (void)state;
    const int64_t grid[3] = {2, 3, 4}, ref[3] = {4, 5, 6};
    for (int layout = 0; layout < 2; layout++)
        for (int withref = 0; withref < 2; withref++) {
            const int64_t Dh = 18, nb = 3, T = 24;
            const double theta = withref ? 100.0 : 10000.0;
            ax_tensor *c, *s;
            assert_int_equal(ax_rope3d_tables(&c, &s, grid, withref ? ref : NULL, Dh, theta, (ax_rope_layout)layout),
                             AX_OK);
            assert_int_equal(c->ndim, 2);
            assert_int_equal(c->shape[0], T);
            assert_int_equal(c->shape[1], Dh);
            assert_false(c->requires_grad);
            for (int64_t t = 0; t < T; t++) {
                int64_t idx[3] = {t / 12, (t / 4) % 3, t % 4};
                for (int a = 0; a < 3; a++)
                    for (int64_t j = 0; j < nb; j++) {
                        double pos = withref ? (double)idx[a] / (double)grid[a] * (double)ref[a] : (double)idx[a];
                        double ang = pos / pow(theta, (double)j / (double)nb);
                        int64_t kk = a * nb + j;
                        int64_t i0 = layout == AX_ROPE_INTERLEAVED ? 2 * kk : kk;
                        int64_t i1 = layout == AX_ROPE_INTERLEAVED ? 2 * kk + 1 : kk + Dh / 2;
                        for (int h = 0; h < 2; h++) {
                            int64_t i = (h ? i1 : i0) + t * Dh;
                            if (fabs(ax_tensor_get(c, i) - cos(ang)) > 2e-6 || fabs(ax_tensor_get(s, i) - sin(ang)) > 2e-6)
                                fail_msg("layout %d ref %d token %lld entry %lld: cos %.8g sin %.8g, want %.8g %.8g",
                                         layout, withref, (long long)t, (long long)(i - t * Dh), ax_tensor_get(c, i),
                                         ax_tensor_get(s, i), cos(ang), sin(ang));
                        }
                    }
            }
            FREE_ALL(c, s);
        }
}

/* Norms are kept, and q.k of rotated vectors depends on the position
 * offset only: score(a, b) == score(a + d, b + d) along every axis. */
static void test_rope_properties(void **state) {
    (void)state;
    const int64_t grid[3] = {3, 4, 5}, T = 60, Dh = 12;
    for (int layout = 0; layout < 2; layout++) {
        ax_tensor *c, *s, *x, *rx, *q1, *k1, *qe, *ke, *rq, *rk, *rkt, *sc;
        assert_int_equal(ax_rope3d_tables(&c, &s, grid, NULL, Dh, 10000.0, (ax_rope_layout)layout), AX_OK);
        x = ax_test_randn(4, SH(2, 1, T, Dh), 41, 1, 0, false);
        assert_int_equal(ax_rope_apply(&rx, x, c, s, (ax_rope_layout)layout), AX_OK);
        for (int64_t r = 0; r < 2 * T; r++) {
            double n0 = 0, n1 = 0;
            for (int64_t e = 0; e < Dh; e++) {
                double a = ax_tensor_get(x, r * Dh + e), b = ax_tensor_get(rx, r * Dh + e);
                n0 += a * a, n1 += b * b;
            }
            assert_float_equal(sqrt(n1), sqrt(n0), 1e-5 * sqrt(n0));
        }
        /* one q and one k vector placed at every token */
        q1 = ax_test_randn(2, SH(1, Dh), 42, 1, 0, false);
        k1 = ax_test_randn(2, SH(1, Dh), 43, 1, 0, false);
        assert_int_equal(ax_tensor_expand(&qe, q1, 2, SH(T, Dh)), AX_OK);
        assert_int_equal(ax_tensor_expand(&ke, k1, 2, SH(T, Dh)), AX_OK);
        assert_int_equal(ax_rope_apply(&rq, qe, c, s, (ax_rope_layout)layout), AX_OK);
        assert_int_equal(ax_rope_apply(&rk, ke, c, s, (ax_rope_layout)layout), AX_OK);
        assert_int_equal(ax_tensor_transpose(&rkt, rk, 0, 1), AX_OK);
        assert_int_equal(ax_matmul(&sc, rq, rkt), AX_OK); /* [T, T] */
        const int shifts[5][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {1, 1, 1}, {0, 2, -1}};
        int checked = 0;
        for (int64_t ta = 0; ta < T; ta++)
            for (int64_t tb = ta % 7; tb < T; tb += 7)
                for (int si = 0; si < 5; si++) {
                    int pa[3] = {(int)(ta / 20), (int)(ta / 5 % 4), (int)(ta % 5)};
                    int pb[3] = {(int)(tb / 20), (int)(tb / 5 % 4), (int)(tb % 5)};
                    bool inside = true;
                    for (int ax = 0; ax < 3; ax++) {
                        pa[ax] += shifts[si][ax], pb[ax] += shifts[si][ax];
                        inside = inside && pa[ax] >= 0 && pb[ax] >= 0 && pa[ax] < grid[ax] && pb[ax] < grid[ax];
                    }
                    if (!inside) continue;
                    int64_t ta2 = (pa[0] * 4 + pa[1]) * 5 + pa[2], tb2 = (pb[0] * 4 + pb[1]) * 5 + pb[2];
                    assert_float_equal(ax_tensor_get(sc, ta * T + tb), ax_tensor_get(sc, ta2 * T + tb2), 1e-4);
                    checked++;
                }
        assert_true(checked > 500);
        /* and it does depend on the offset (rotations are not trivial) */
        assert_true(fabs(ax_tensor_get(sc, 0) - ax_tensor_get(sc, 1)) > 1e-4);
        FREE_ALL(c, s, x, rx, q1, k1, qe, ke, rq, rk, rkt, sc);
    }
}

typedef struct rope_ctx {
    const ax_tensor *c, *s;
    ax_rope_layout layout;
} rope_ctx;

static ax_status rope_fn(ax_tensor **out, ax_tensor *const *in, void *vctx) {
    const rope_ctx *c = vctx;
    /* in[0]: [B, T, heads, Dh] -> [B, heads, T, Dh], non-contiguous */
    ax_tensor *x = NULL;
    if (ax_tensor_permute(&x, in[0], (int[]){0, 2, 1, 3}) != AX_OK) return ax_error_status();
    ax_status st = ax_rope_apply(out, x, c->c, c->s, c->layout);
    ax_tensor_free(x);
    return st;
}

static void test_rope_grad_and_dtypes(void **state) {
    (void)state;
    const int64_t grid[3] = {2, 1, 2};
    ax_tensor *x = ax_test_randn(4, SH(2, 4, 2, 12), 51, 1, 0, true), *in[1] = {x};
    for (int layout = 0; layout < 2; layout++) {
        ax_tensor *c, *s;
        assert_int_equal(ax_rope3d_tables(&c, &s, grid, NULL, 12, 10.0, (ax_rope_layout)layout), AX_OK);
        rope_ctx rc = {c, s, (ax_rope_layout)layout};
        if (!ax_gradcheck(rope_fn, 1, in, &rc, &AX_GC_DEFAULT)) fail_msg("rope grad layout %d", layout);
        /* bf16 in, bf16 out, close to the f32 result */
        ax_tensor *xb, *yb, *y;
        assert_int_equal(ax_tensor_to_dtype(&xb, x, AX_DTYPE_BF16), AX_OK);
        assert_int_equal(rope_fn(&yb, (ax_tensor *[]){xb}, &rc), AX_OK);
        assert_int_equal(rope_fn(&y, in, &rc), AX_OK);
        assert_int_equal(yb->dtype, AX_DTYPE_BF16);
        for (int i = 0; i < 192; i++) assert_float_equal(ax_tensor_get(yb, i), ax_tensor_get(y, i), 0.05);
        FREE_ALL(c, s, xb, yb, y);
    }
    ax_tensor_free(x);
}

static void test_rope_errors(void **state) {
    (void)state;
    const int64_t grid[3] = {2, 2, 2}, bad[3] = {2, 0, 2};
    ax_tensor *c = NULL, *s = NULL, *y = NULL;
    ax_expect_error(ax_rope3d_tables(&c, &s, grid, NULL, 8, 10000, AX_ROPE_INTERLEAVED),
                    "ax_rope3d_tables: head_dim 8 must be a positive multiple of 6");
    ax_expect_error(ax_rope3d_tables(&c, &s, bad, NULL, 6, 10000, AX_ROPE_INTERLEAVED),
                    "ax_rope3d_tables: grid [2, 0, 2] and ref_grid sizes must be >= 1");
    ax_expect_error(ax_rope3d_tables(&c, &s, grid, NULL, 6, 0, AX_ROPE_INTERLEAVED),
                    "ax_rope3d_tables: theta = 0 must be > 0");
    ax_expect_error(ax_rope3d_tables(&c, &s, grid, NULL, 6, 10000, (ax_rope_layout)5),
                    "ax_rope3d_tables: unknown layout 5");
    assert_null(c);
    assert_null(s);
    assert_int_equal(ax_rope3d_tables(&c, &s, grid, NULL, 6, 10000, AX_ROPE_HALF), AX_OK);
    ax_tensor *x = ax_test_randn(3, SH(2, 8, 6), 1, 1, 0, false), *x5 = ax_test_randn(2, SH(8, 5), 2, 1, 0, false);
    ax_tensor *x8 = ax_test_randn(2, SH(8, 8), 3, 1, 0, false), *x9 = ax_test_randn(2, SH(9, 6), 4, 1, 0, false), *s2;
    assert_int_equal(ax_tensor_narrow(&s2, s, 0, 0, 4), AX_OK);
    ax_expect_error(ax_rope_apply(&y, x5, c, s, AX_ROPE_HALF), "ax_rope_apply: x [8, 5] needs an even last dim");
    ax_expect_error(ax_rope_apply(&y, x8, c, s, AX_ROPE_HALF),
                    "ax_rope_apply: tables [8, 6] do not broadcast to x [8, 8] (last dims must match)");
    ax_expect_error(ax_rope_apply(&y, x9, c, s, AX_ROPE_HALF),
                    "ax_rope_apply: tables [8, 6] do not broadcast to x [9, 6]");
    ax_expect_error(ax_rope_apply(&y, x, c, s2, AX_ROPE_HALF), "ax_rope_apply: cos [8, 6] and sin [4, 6] differ in shape");
    ax_expect_error(ax_rope_apply(&y, x, c, s, (ax_rope_layout)-1), "ax_rope_apply: unknown layout -1");
    assert_null(y);
    FREE_ALL(c, s, x, x5, x8, x9, s2);
}

/* ---- PyTorch / timm parity ------------------------------------------------------------------ */

typedef ax_status (*fx_fn)(ax_tensor **out, ax_tensor *const *in);

typedef struct fx_case {
    const char *name;
    int n;
    const char *inputs[4];
    bool grad[4];
    fx_fn fn;
} fx_case;

static ax_status fx_plain(ax_tensor **o, ax_tensor *const *in) {
    return ax_scaled_dot_product_attention(o, in[0], in[1], in[2], NULL, false, 0.0);
}
static ax_status fx_masked(ax_tensor **o, ax_tensor *const *in) {
    return ax_scaled_dot_product_attention(o, in[0], in[1], in[2], in[3], false, 0.0);
}
static ax_status fx_causal(ax_tensor **o, ax_tensor *const *in) {
    return ax_scaled_dot_product_attention(o, in[0], in[1], in[2], NULL, true, 0.0);
}
static ax_status fx_scale(ax_tensor **o, ax_tensor *const *in) {
    return ax_scaled_dot_product_attention(o, in[0], in[1], in[2], NULL, false, 0.3);
}

static const fx_case FX_SDPA[] = {
    {"sdpa_plain", 3, {"q", "k", "v"}, {true, true, true}, fx_plain},
    {"sdpa_bool", 4, {"q", "k", "v", "mask"}, {true, true, true, false}, fx_masked},
    {"sdpa_float", 4, {"q", "k", "v", "mask"}, {true, true, true, true}, fx_masked},
    {"sdpa_causal", 3, {"q", "k", "v"}, {true, true, true}, fx_causal},
    {"sdpa_causal_tall", 3, {"q", "k", "v"}, {true, true, true}, fx_causal},
    {"sdpa_scale_bcast", 3, {"q", "k", "v"}, {true, true, true}, fx_scale},
    /* several tiles of the fused kernels (the unmasked cases above run fused too) */
    {"sdpa_tiles", 3, {"q", "k", "v"}, {true, true, true}, fx_plain},
    {"sdpa_tiles_causal", 3, {"q", "k", "v"}, {true, true, true}, fx_causal},
    {"sdpa_tiles_tall", 3, {"q", "k", "v"}, {true, true, true}, fx_causal},
    {"sdpa_head64", 3, {"q", "k", "v"}, {true, true, true}, fx_plain},
};

typedef struct rope_fx {
    const char *name;
    int64_t grid[3], ref[3], head_dim;
    double theta;
    ax_rope_layout layout;
} rope_fx;

/* ref = grid where the fixture used Primus' ref_feat_shape = feat_shape */
static const rope_fx FX_ROPE[] = {
    {"rope_interleaved", {2, 3, 2}, {2, 3, 2}, 12, 10000.0, AX_ROPE_INTERLEAVED},
    {"rope_half", {2, 3, 2}, {2, 3, 2}, 12, 10000.0, AX_ROPE_HALF},
    {"rope_ref", {2, 3, 2}, {3, 4, 5}, 18, 10000.0, AX_ROPE_INTERLEAVED},
    {"rope_theta", {3, 2, 2}, {3, 2, 2}, 12, 100.0, AX_ROPE_INTERLEAVED},
};

static ax_tensor *fx_get(ax_safetensors *f, const char *cname, const char *name) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", cname, name);
    ax_tensor *t;
    if (ax_safetensors_get(f, key, &t) != AX_OK) fail_msg("fixture %s: %s", key, ax_error_message());
    return t;
}

/* A fresh f32 leaf (fixture tensors view the file mapping). */
static ax_tensor *fx_leaf(ax_tensor *t, bool grad) {
    if (t->dtype != AX_DTYPE_F32) return t;
    ax_tensor *u;
    assert_int_equal(ax_add_scalar(&u, t, 0), AX_OK);
    ax_tensor_free(t);
    if (grad) assert_int_equal(ax_tensor_set_requires_grad(u, true), AX_OK);
    return u;
}

static void fx_check(ax_safetensors *f, const char *name, ax_tensor *y, int n, ax_tensor *const *in,
                     const char *const *names, const bool *grad, double atol, double rtol) {
    char what[128];
    ax_tensor *want = fx_get(f, name, "out"), *gout = fx_get(f, name, "gout");
    snprintf(what, sizeof what, "%s: out", name);
    if (!ax_allclose(what, y, want, atol, rtol)) fail_msg("%s forward differs from the reference", name);
    assert_int_equal(ax_backward(y, gout), AX_OK);
    for (int i = 0; i < n; i++) {
        if (!grad[i]) continue;
        char gname[64];
        snprintf(gname, sizeof gname, "grad_%s", names[i]);
        ax_tensor *gw = fx_get(f, name, gname);
        snprintf(what, sizeof what, "%s: %s", name, gname);
        if (!ax_allclose(what, in[i]->grad, gw, atol, rtol)) fail_msg("%s differs from the reference", what);
        ax_tensor_free(gw);
    }
    FREE_ALL(want, gout);
}

static void test_torch_parity(void **state) {
    (void)state;
    ax_safetensors *f;
    if (ax_safetensors_open(&f, AX_TEST_FIXTURES "/attention/attention.safetensors") != AX_OK)
        fail_msg("open fixture: %s", ax_error_message());
    for (size_t c = 0; c < sizeof FX_SDPA / sizeof FX_SDPA[0]; c++) {
        const fx_case *k = &FX_SDPA[c];
        ax_tensor *in[4] = {NULL}, *y = NULL;
        for (int i = 0; i < k->n; i++) in[i] = fx_leaf(fx_get(f, k->name, k->inputs[i]), k->grad[i]);
        if (k->fn(&y, in) != AX_OK) fail_msg("%s: %s", k->name, ax_error_message());
        fx_check(f, k->name, y, k->n, in, k->inputs, k->grad, 1e-5, 1e-4);
        ax_tensor_free(y);
        for (int i = 0; i < k->n; i++) ax_tensor_free(in[i]);
    }
    for (size_t c = 0; c < sizeof FX_ROPE / sizeof FX_ROPE[0]; c++) {
        const rope_fx *r = &FX_ROPE[c];
        ax_tensor *cs, *sn, *y;
        assert_int_equal(ax_rope3d_tables(&cs, &sn, r->grid, r->ref, r->head_dim, r->theta, r->layout), AX_OK);
        ax_tensor *wc = fx_get(f, r->name, "cos"), *ws = fx_get(f, r->name, "sin");
        char what[96];
        snprintf(what, sizeof what, "%s: cos table", r->name);
        if (!ax_allclose(what, cs, wc, 1e-6, 0)) fail_msg("%s differs from timm", what);
        snprintf(what, sizeof what, "%s: sin table", r->name);
        if (!ax_allclose(what, sn, ws, 1e-6, 0)) fail_msg("%s differs from timm", what);
        ax_tensor *x = fx_leaf(fx_get(f, r->name, "x"), true);
        assert_int_equal(ax_rope_apply(&y, x, cs, sn, r->layout), AX_OK);
        const char *names[] = {"x"};
        const bool grad[] = {true};
        fx_check(f, r->name, y, 1, (ax_tensor *[]){x}, names, grad, 1e-5, 1e-4);
        FREE_ALL(cs, sn, wc, ws, x, y);
    }
    ax_safetensors_close(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dropout_identity),
        cmocka_unit_test(test_dropout_values),
        cmocka_unit_test(test_dropout_views_and_dtypes),
        cmocka_unit_test(test_drop_path),
        cmocka_unit_test(test_dropout_grad),
        cmocka_unit_test(test_dropout_errors),
        cmocka_unit_test(test_sdpa_forward),
        cmocka_unit_test(test_sdpa_grad),
        cmocka_unit_test(test_sdpa_errors),
        cmocka_unit_test(test_rope_tables),
        cmocka_unit_test(test_rope_properties),
        cmocka_unit_test(test_rope_grad_and_dtypes),
        cmocka_unit_test(test_rope_errors),
        cmocka_unit_test(test_torch_parity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
