/* Normalisation ops (axon/norm.h) and the CPU group_norm kernels:
 * forward values against an independent double-precision reference,
 * finite-difference gradients of x, weight and bias (contiguous and
 * non-contiguous x), bf16, bit-identical results for 1 and 2 threads, the
 * kernel's contract (strided operands, += into dweight/dbias, NULL
 * outputs), the fused group_norm_act kernels against the unfused ones (bit
 * for bit) and the front-end's choice between them, every argument error,
 * and PyTorch parity from
 * tests/fixtures/norm/norm.safetensors (written by make_norm.py there). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "axon/kernels.h"
#include "axon/norm.h"
#include "axon/safetensors.h"
#include "gradcheck.h"

#define OK(expr) assert_int_equal((expr), AX_OK)

/* ---- double reference ------------------------------------------------------------- */

/* x's elements in C order, viewed as [n, c, s]; per (sample, group of
 * c/groups channels): two-pass mean and biased variance; w, b: per channel
 * (ax_tensor_get index c), NULL for none. y: n*c*s doubles. */
static void ref_group_norm(const ax_tensor *x, int64_t n, int64_t c, int64_t s, int64_t groups, const ax_tensor *w,
                           const ax_tensor *b, double eps, double *y) {
    int64_t cpg = c / groups, len = cpg * s;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t g = 0; g < groups; g++) {
            int64_t base = (i * c + g * cpg) * s;
            double mean = 0, var = 0;
            for (int64_t j = 0; j < len; j++) mean += ax_tensor_get(x, base + j);
            mean /= (double)len;
            for (int64_t j = 0; j < len; j++) {
                double d = ax_tensor_get(x, base + j) - mean;
                var += d * d;
            }
            var /= (double)len;
            for (int64_t j = 0; j < len; j++) {
                int64_t ch = g * cpg + j / s;
                double v = (ax_tensor_get(x, base + j) - mean) / sqrt(var + eps);
                y[base + j] = v * (w ? ax_tensor_get(w, ch) : 1.0) + (b ? ax_tensor_get(b, ch) : 0.0);
            }
        }
    }
}

/* Batch norm over (n, s) per channel. mean/var: NULL = batch statistics;
 * bmean/bvar: [optional] receive the batch mean and unbiased variance. */
static void ref_batch_norm(const ax_tensor *x, int64_t n, int64_t c, int64_t s, const double *mean, const double *var,
                           const ax_tensor *w, const ax_tensor *b, double eps, double *y, double *bmean,
                           double *bvar) {
    for (int64_t ch = 0; ch < c; ch++) {
        double m = 0, v = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < s; j++) m += ax_tensor_get(x, (i * c + ch) * s + j);
        m /= (double)(n * s);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < s; j++) {
                double d = ax_tensor_get(x, (i * c + ch) * s + j) - m;
                v += d * d;
            }
        if (bmean) bmean[ch] = m;
        if (bvar) bvar[ch] = v / (double)(n * s - 1);
        v /= (double)(n * s);
        if (mean) m = mean[ch], v = var[ch];
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < s; j++) {
                int64_t k = (i * c + ch) * s + j;
                double t = (ax_tensor_get(x, k) - m) / sqrt(v + eps);
                y[k] = t * (w ? ax_tensor_get(w, ch) : 1.0) + (b ? ax_tensor_get(b, ch) : 0.0);
            }
    }
}

/* got (any dtype/layout) against doubles in C order. */
static bool close_to(const char *what, const ax_tensor *got, const double *want, double atol, double rtol) {
    ax_tensor *t;
    if (ax_tensor_empty(&t, got->ndim, got->shape, AX_DTYPE_F32) != AX_OK) return false;
    for (int64_t i = 0; i < ax_tensor_numel(t); i++) ax_tensor_set(t, i, want[i]);
    bool ok = ax_allclose(what, got, t, atol, rtol);
    ax_tensor_free(t);
    return ok;
}

static ax_tensor *randn(int ndim, const int64_t *shape, uint64_t seed, double scale, double shift, bool grad) {
    ax_tensor *t = ax_test_randn(ndim, shape, seed, scale, shift, grad);
    assert_non_null(t);
    return t;
}

static double *dbuf(const ax_tensor *t) {
    double *p = calloc((size_t)ax_tensor_numel(t) + 1, sizeof *p);
    assert_non_null(p);
    return p;
}

/* ---- forward values ------------------------------------------------------------------- */

static void test_group_norm_forward(void **state) {
    (void)state;
    const int64_t xs[] = {2, 6, 3, 4}, cs[] = {6};
    ax_tensor *x = randn(4, xs, 1, 1.5, 0.3, false), *w = randn(1, cs, 2, 0.5, 1, false);
    ax_tensor *b = randn(1, cs, 3, 0.5, 0, false), *y;
    double *want = dbuf(x);
    OK(ax_group_norm(&y, x, 3, w, b, 1e-5));
    assert_int_equal(y->dtype, AX_DTYPE_F32);
    ref_group_norm(x, 2, 6, 12, 3, w, b, 1e-5, want);
    assert_true(close_to("group_norm", y, want, 1e-5, 1e-5));
    ax_tensor_free(y);
    /* no affine; one group (layer norm over [C, *]); groups = C */
    OK(ax_group_norm(&y, x, 1, NULL, NULL, 1e-3));
    ref_group_norm(x, 2, 6, 12, 1, NULL, NULL, 1e-3, want);
    assert_true(close_to("group_norm groups=1", y, want, 1e-5, 1e-5));
    ax_tensor_free(y);
    OK(ax_group_norm(&y, x, 6, NULL, b, 1e-5));
    ref_group_norm(x, 2, 6, 12, 6, NULL, b, 1e-5, want);
    assert_true(close_to("group_norm groups=C", y, want, 1e-5, 1e-5));
    ax_tensor_free(y);
    free(want);
    ax_tensor_free(x);
    ax_tensor_free(w);
    ax_tensor_free(b);
}

static void test_instance_norm_forward(void **state) {
    (void)state;
    const int64_t xs[] = {2, 4, 3, 2, 2}, cs[] = {4};
    ax_tensor *x = randn(5, xs, 4, 2.0, -1.0, false), *w = randn(1, cs, 5, 0.5, 1, false);
    ax_tensor *b = randn(1, cs, 6, 0.5, 0, false), *y;
    double *want = dbuf(x);
    OK(ax_instance_norm(&y, x, w, b, 1e-5));
    ref_group_norm(x, 2, 4, 12, 4, w, b, 1e-5, want);
    assert_true(close_to("instance_norm", y, want, 1e-5, 1e-5));
    ax_tensor_free(y);
    /* fused leaky relu: the same values through max(v, slope * v) */
    OK(ax_instance_norm_leaky_relu(&y, x, w, b, 1e-5, 0.01));
    for (int64_t i = 0; i < ax_tensor_numel(x); i++) want[i] = want[i] > 0 ? want[i] : 0.01 * want[i];
    assert_true(close_to("instance_norm_leaky_relu", y, want, 1e-5, 1e-5));
    ax_tensor_free(y);
    /* a negative slope takes the composed path */
    OK(ax_instance_norm_leaky_relu(&y, x, NULL, NULL, 1e-5, -0.5));
    ref_group_norm(x, 2, 4, 12, 4, NULL, NULL, 1e-5, want);
    for (int64_t i = 0; i < ax_tensor_numel(x); i++) want[i] = want[i] > 0 ? want[i] : -0.5 * want[i];
    assert_true(close_to("instance_norm_leaky_relu slope -0.5", y, want, 1e-5, 1e-5));
    ax_tensor_free(y);
    /* 2-D x: one element per instance normalises to bias */
    const int64_t x2s[] = {3, 4};
    ax_tensor *x2 = randn(2, x2s, 7, 1, 0, false);
    OK(ax_instance_norm(&y, x2, NULL, b, 1e-5));
    for (int64_t i = 0; i < 12; i++) want[i] = ax_tensor_get(b, i % 4);
    assert_true(close_to("instance_norm [N, C]", y, want, 1e-6, 0));
    ax_tensor_free(y);
    ax_tensor_free(x2);
    free(want);
    ax_tensor_free(x);
    ax_tensor_free(w);
    ax_tensor_free(b);
}

/* Data far from zero relative to its spread: the statistics must not lose
 * it to cancellation. */
static void test_instance_norm_large_mean(void **state) {
    (void)state;
    const int64_t xs[] = {2, 3, 8, 8, 8};
    ax_tensor *x = randn(5, xs, 8, 0.5, 3000.0, false), *y;
    double *want = dbuf(x);
    OK(ax_instance_norm(&y, x, NULL, NULL, 1e-5));
    ref_group_norm(x, 2, 3, 512, 3, NULL, NULL, 1e-5, want);
    assert_true(close_to("instance_norm mean 3000", y, want, 2e-5, 1e-5));
    ax_tensor_free(y);
    free(want);
    ax_tensor_free(x);
}

static void test_layer_norm_forward(void **state) {
    (void)state;
    /* over the last dim */
    const int64_t xs[] = {3, 4, 5}, ws[] = {5};
    ax_tensor *x = randn(3, xs, 9, 1.0, 0.5, false), *w = randn(1, ws, 10, 0.5, 1, false);
    ax_tensor *b = randn(1, ws, 11, 0.5, 0, false), *y;
    double *want = dbuf(x);
    OK(ax_layer_norm(&y, x, 1, w, b, 1e-5));
    ref_group_norm(x, 12, 5, 1, 1, w, b, 1e-5, want);
    assert_true(close_to("layer_norm [5]", y, want, 1e-5, 1e-5));
    ax_tensor_free(y);
    ax_tensor_free(w);
    ax_tensor_free(b);
    /* over the last two dims: weight/bias [4, 5] are elementwise */
    const int64_t ws2[] = {4, 5};
    w = randn(2, ws2, 12, 0.5, 1, false);
    b = randn(2, ws2, 13, 0.5, 0, false);
    OK(ax_layer_norm(&y, x, 2, w, b, 1e-6));
    ref_group_norm(x, 3, 20, 1, 1, w, b, 1e-6, want);
    assert_true(close_to("layer_norm [4, 5]", y, want, 1e-5, 1e-5));
    ax_tensor_free(y);
    /* over every dim, no affine */
    OK(ax_layer_norm(&y, x, 3, NULL, NULL, 1e-5));
    ref_group_norm(x, 1, 60, 1, 1, NULL, NULL, 1e-5, want);
    assert_true(close_to("layer_norm all", y, want, 1e-5, 1e-5));
    ax_tensor_free(y);
    free(want);
    ax_tensor_free(x);
    ax_tensor_free(w);
    ax_tensor_free(b);
}

static void test_batch_norm_forward(void **state) {
    (void)state;
    const int64_t xs[] = {4, 3, 5, 2}, cs[] = {3};
    ax_tensor *x = randn(4, xs, 14, 1.5, 0.5, false), *w = randn(1, cs, 15, 0.5, 1, false);
    ax_tensor *b = randn(1, cs, 16, 0.5, 0, false), *rm, *rv, *y;
    OK(ax_tensor_full(&rm, 1, cs, AX_DTYPE_F32, 0.2));
    OK(ax_tensor_full(&rv, 1, cs, AX_DTYPE_F32, 1.5));
    double *want = dbuf(x), bmean[3], bvar[3], m[3], v[3];
    /* training: batch statistics, running stats updated with momentum 0.1 */
    OK(ax_batch_norm(&y, x, rm, rv, w, b, true, 0.1, 1e-5));
    ref_batch_norm(x, 4, 3, 10, NULL, NULL, w, b, 1e-5, want, bmean, bvar);
    assert_true(close_to("batch_norm train", y, want, 1e-5, 1e-5));
    for (int c = 0; c < 3; c++) m[c] = 0.9 * 0.2 + 0.1 * bmean[c], v[c] = 0.9 * 1.5 + 0.1 * bvar[c];
    assert_true(close_to("running_mean", rm, m, 1e-6, 1e-6));
    assert_true(close_to("running_var", rv, v, 1e-6, 1e-6));
    ax_tensor_free(y);
    /* training without running stats */
    OK(ax_batch_norm(&y, x, NULL, NULL, NULL, NULL, true, 0.1, 1e-5));
    ref_batch_norm(x, 4, 3, 10, NULL, NULL, NULL, NULL, 1e-5, want, NULL, NULL);
    assert_true(close_to("batch_norm train, no stats", y, want, 1e-5, 1e-5));
    ax_tensor_free(y);
    /* evaluation: the running stats, untouched */
    OK(ax_batch_norm(&y, x, rm, rv, w, b, false, 0.1, 1e-3));
    ref_batch_norm(x, 4, 3, 10, m, v, w, b, 1e-3, want, NULL, NULL);
    assert_true(close_to("batch_norm eval", y, want, 1e-5, 1e-5));
    assert_true(close_to("running_mean after eval", rm, m, 1e-6, 1e-6));
    ax_tensor_free(y);
    /* N = 1 and 2-D x */
    const int64_t x1s[] = {1, 3, 7}, x2s[] = {6, 3};
    ax_tensor *x1 = randn(3, x1s, 17, 1, 0, false), *x2 = randn(2, x2s, 18, 1, 0, false);
    OK(ax_batch_norm(&y, x1, NULL, NULL, w, NULL, true, 0.1, 1e-5));
    ref_batch_norm(x1, 1, 3, 7, NULL, NULL, w, NULL, 1e-5, want, NULL, NULL);
    assert_true(close_to("batch_norm N=1", y, want, 1e-5, 1e-5));
    ax_tensor_free(y);
    OK(ax_batch_norm(&y, x2, NULL, NULL, NULL, b, true, 0.1, 1e-5));
    ref_batch_norm(x2, 6, 3, 1, NULL, NULL, NULL, b, 1e-5, want, NULL, NULL);
    assert_true(close_to("batch_norm [N, C]", y, want, 1e-5, 1e-5));
    ax_tensor_free(y);
    ax_tensor *all[] = {x, w, b, rm, rv, x1, x2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
    free(want);
}

/* Strided x: a transposed and a sliced view give the values of their copies. */
static void test_non_contiguous_forward(void **state) {
    (void)state;
    const int64_t xs[] = {4, 2, 3, 5}, cs[] = {4};
    ax_tensor *base = randn(4, xs, 19, 1, 0, false), *w = randn(1, cs, 20, 0.5, 1, false), *xt, *xn, *y;
    double *want = dbuf(base);
    OK(ax_tensor_transpose(&xt, base, 0, 1)); /* [2, 4, 3, 5] */
    assert_false(ax_tensor_is_contiguous(xt));
    OK(ax_group_norm(&y, xt, 2, w, NULL, 1e-5));
    ref_group_norm(xt, 2, 4, 15, 2, w, NULL, 1e-5, want);
    assert_true(close_to("group_norm transposed x", y, want, 1e-5, 1e-5));
    ax_tensor_free(y);
    OK(ax_tensor_narrow(&xn, xt, 3, 1, 3)); /* [2, 4, 3, 3] */
    OK(ax_instance_norm(&y, xn, w, NULL, 1e-5));
    ref_group_norm(xn, 2, 4, 9, 4, w, NULL, 1e-5, want);
    assert_true(close_to("instance_norm sliced x", y, want, 1e-5, 1e-5));
    ax_tensor_free(y);
    OK(ax_layer_norm(&y, xn, 2, NULL, NULL, 1e-5));
    ref_group_norm(xn, 8, 9, 1, 1, NULL, NULL, 1e-5, want);
    assert_true(close_to("layer_norm sliced x", y, want, 1e-5, 1e-5));
    ax_tensor_free(y);
    OK(ax_batch_norm(&y, xn, NULL, NULL, w, NULL, true, 0.1, 1e-5));
    ref_batch_norm(xn, 2, 4, 9, NULL, NULL, w, NULL, 1e-5, want, NULL, NULL);
    assert_true(close_to("batch_norm sliced x", y, want, 1e-5, 1e-5));
    ax_tensor_free(y);
    free(want);
    ax_tensor_free(xn);
    ax_tensor_free(xt);
    ax_tensor_free(base);
    ax_tensor_free(w);
}

/* ---- gradients ---------------------------------------------------------------------------- */

typedef enum { K_INSTANCE, K_INSTANCE_LRELU, K_GROUP, K_LAYER, K_BN_TRAIN, K_BN_EVAL } norm_kind;

typedef struct norm_case {
    norm_kind kind;
    int64_t groups;
    int n_norm;
    double eps;
    bool transpose_x; /* in[0] holds x with dims 0 and 1 swapped */
    bool affine;      /* in[1], in[2] are weight and bias */
    ax_tensor *rm, *rv;
} norm_case;

static ax_status run_case(ax_tensor **out, ax_tensor *const *in, void *ctx) {
    const norm_case *c = ctx;
    ax_tensor *x = in[0], *t = NULL;
    const ax_tensor *w = c->affine ? in[1] : NULL, *b = c->affine ? in[2] : NULL;
    if (c->transpose_x) {
        if (ax_tensor_transpose(&t, in[0], 0, 1) != AX_OK) return ax_error_status();
        x = t;
    }
    ax_status st = AX_ERR_INTERNAL;
    switch (c->kind) {
    case K_INSTANCE: st = ax_instance_norm(out, x, w, b, c->eps); break;
    case K_INSTANCE_LRELU: st = ax_instance_norm_leaky_relu(out, x, w, b, c->eps, 0.01); break;
    case K_GROUP: st = ax_group_norm(out, x, c->groups, w, b, c->eps); break;
    case K_LAYER: st = ax_layer_norm(out, x, c->n_norm, w, b, c->eps); break;
    case K_BN_TRAIN: st = ax_batch_norm(out, x, NULL, NULL, w, b, true, 0.1, c->eps); break;
    case K_BN_EVAL: st = ax_batch_norm(out, x, c->rm, c->rv, w, b, false, 0.1, c->eps); break;
    }
    ax_tensor_free(t);
    return st;
}

/* gradcheck of x (shape xs, or its 0/1-transpose when c->transpose_x) and,
 * when c->affine, of weight/bias of shape ps. */
static void check_grads(norm_case *c, int ndim, const int64_t *xs, int pdim, const int64_t *ps, uint64_t seed) {
    int64_t leaf_shape[AX_MAX_DIMS];
    memcpy(leaf_shape, xs, (size_t)ndim * sizeof *xs);
    if (c->transpose_x) leaf_shape[0] = xs[1], leaf_shape[1] = xs[0];
    ax_tensor *in[3] = {randn(ndim, leaf_shape, seed, 1.2, 0.2, true), NULL, NULL};
    int n = 1;
    if (c->affine) {
        in[1] = randn(pdim, ps, seed + 1, 0.3, 1.0, true);
        in[2] = randn(pdim, ps, seed + 2, 0.5, 0.0, true);
        n = 3;
    }
    assert_true(ax_gradcheck(run_case, n, in, c, &AX_GC_DEFAULT));
    for (int i = 0; i < n; i++) ax_tensor_free(in[i]);
}

static void test_group_norm_grad(void **state) {
    (void)state;
    const int64_t xs[] = {2, 4, 3, 2, 2}, cs[] = {4};
    norm_case c = {.kind = K_GROUP, .groups = 2, .eps = 1e-5, .affine = true};
    check_grads(&c, 5, xs, 1, cs, 30);
    c.transpose_x = true;
    check_grads(&c, 5, xs, 1, cs, 31);
    c.affine = false;
    check_grads(&c, 5, xs, 1, cs, 32);
}

static void test_instance_norm_grad(void **state) {
    (void)state;
    const int64_t xs[] = {2, 4, 3, 2, 2}, cs[] = {4};
    norm_case c = {.kind = K_INSTANCE, .eps = 1e-5, .affine = true};
    check_grads(&c, 5, xs, 1, cs, 33);
    c.transpose_x = true;
    check_grads(&c, 5, xs, 1, cs, 34);
    c.affine = false;
    check_grads(&c, 5, xs, 1, cs, 35);
}

/* Leaky relu's kink would spoil finite differences: biases of +-4 keep
 * every pre-activation at least ~2 away from 0, on both branches. */
static void test_instance_norm_leaky_relu_grad(void **state) {
    (void)state;
    const int64_t xs[] = {2, 4, 3, 2, 2}, cs[] = {4};
    norm_case c = {.kind = K_INSTANCE_LRELU, .eps = 1e-5, .affine = true, .transpose_x = true};
    ax_tensor *in[3] = {randn(5, (const int64_t[]){4, 2, 3, 2, 2}, 36, 1, 0, true), randn(1, cs, 37, 0.1, 0.5, true),
                        NULL};
    OK(ax_tensor_empty(&in[2], 1, cs, AX_DTYPE_F32));
    for (int i = 0; i < 4; i++) ax_tensor_set(in[2], i, i % 2 ? -4.0 : 4.0);
    OK(ax_tensor_set_requires_grad(in[2], true));
    assert_true(ax_gradcheck(run_case, 3, in, &c, &AX_GC_DEFAULT));
    /* and the same gradients as the composition instance_norm -> leaky_relu */
    ax_tensor *y1, *y2, *g, *xt, *h, *grads[3];
    OK(ax_tensor_randn(&g, 5, xs, AX_DTYPE_F32, 38, 0));
    for (int i = 0; i < 3; i++) ax_tensor_zero_grad(in[i]);
    OK(run_case(&y1, in, &c));
    OK(ax_backward(y1, g));
    for (int i = 0; i < 3; i++) {
        grads[i] = in[i]->grad;
        in[i]->grad = NULL;
    }
    OK(ax_tensor_transpose(&xt, in[0], 0, 1));
    OK(ax_instance_norm(&h, xt, in[1], in[2], 1e-5));
    OK(ax_leaky_relu(&y2, h, 0.01));
    OK(ax_backward(y2, g));
    assert_true(ax_allclose("fused y", y1, y2, 1e-6, 1e-6));
    const char *names[] = {"fused dx", "fused dweight", "fused dbias"};
    for (int i = 0; i < 3; i++) {
        assert_true(ax_allclose(names[i], grads[i], in[i]->grad, 1e-5, 1e-5));
        ax_tensor_free(grads[i]);
    }
    ax_tensor *all[] = {y1, y2, g, xt, h, in[0], in[1], in[2]};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

static void test_layer_norm_grad(void **state) {
    (void)state;
    const int64_t xs[] = {3, 4, 5}, ws1[] = {5}, ws2[] = {4, 5};
    norm_case c = {.kind = K_LAYER, .n_norm = 1, .eps = 1e-5, .affine = true};
    check_grads(&c, 3, xs, 1, ws1, 40);
    c.n_norm = 2;
    check_grads(&c, 3, xs, 2, ws2, 41);
    c.transpose_x = true; /* x [3, 4, 5] from a [4, 3, 5] leaf */
    check_grads(&c, 3, xs, 2, ws2, 42);
    c.affine = false;
    c.n_norm = 1;
    check_grads(&c, 3, xs, 1, ws1, 43);
}

static void test_batch_norm_grad(void **state) {
    (void)state;
    const int64_t xs[] = {3, 4, 2, 2}, cs[] = {4};
    norm_case c = {.kind = K_BN_TRAIN, .eps = 1e-5, .affine = true};
    check_grads(&c, 4, xs, 1, cs, 50);
    c.transpose_x = true;
    check_grads(&c, 4, xs, 1, cs, 51);
    c.affine = false;
    check_grads(&c, 4, xs, 1, cs, 52);
    /* evaluation: linear in x, weight and bias */
    c = (norm_case){.kind = K_BN_EVAL, .eps = 1e-5, .affine = true};
    c.rm = randn(1, cs, 53, 0.3, 0, false);
    c.rv = randn(1, cs, 54, 0.2, 1.0, false);
    check_grads(&c, 4, xs, 1, cs, 55);
    c.transpose_x = true;
    check_grads(&c, 4, xs, 1, cs, 56);
    ax_tensor_free(c.rm);
    ax_tensor_free(c.rv);
}

/* Only the inputs that require grad get one; the others stay NULL. */
static void test_partial_grads(void **state) {
    (void)state;
    const int64_t xs[] = {2, 4, 6}, cs[] = {4};
    ax_tensor *x = randn(3, xs, 60, 1, 0, false), *w = randn(1, cs, 61, 0.5, 1, true), *b = randn(1, cs, 62, 1, 0, false);
    ax_tensor *y, *s;
    OK(ax_group_norm(&y, x, 4, w, b, 1e-5));
    OK(ax_sum(&s, y, 0, NULL, false));
    OK(ax_backward(s, NULL));
    assert_non_null(w->grad);
    assert_null(x->grad);
    assert_null(b->grad);
    /* sum(y) does not depend on w: xhat sums to 0 over each channel (= group) */
    for (int i = 0; i < 4; i++) assert_true(fabs(ax_tensor_get(w->grad, i)) < 1e-5);
    ax_tensor_free(s);
    ax_tensor_free(y);
    /* no input requires grad: no node */
    OK(ax_group_norm(&y, x, 2, NULL, b, 1e-5));
    assert_false(y->requires_grad);
    assert_null(y->grad_fn);
    ax_tensor_free(y);
    ax_tensor_free(x);
    ax_tensor_free(w);
    ax_tensor_free(b);
}

/* ---- bf16 ----------------------------------------------------------------------------------- */

static void test_bf16(void **state) {
    (void)state;
    const int64_t xs[] = {2, 4, 3, 5}, cs[] = {4};
    ax_tensor *x = randn(4, xs, 70, 1.5, 0.5, false), *w = randn(1, cs, 71, 0.5, 1, false);
    ax_tensor *b = randn(1, cs, 72, 0.5, 0, false), *xb, *xr, *wb, *yb, *yf, *s;
    OK(ax_tensor_to_dtype(&xb, x, AX_DTYPE_BF16));
    OK(ax_tensor_to_dtype(&xr, xb, AX_DTYPE_F32)); /* the values bf16 holds */
    OK(ax_tensor_to_dtype(&wb, w, AX_DTYPE_BF16));
    OK(ax_tensor_set_requires_grad(xb, true));
    OK(ax_tensor_set_requires_grad(wb, true));
    OK(ax_instance_norm_leaky_relu(&yb, xb, wb, b, 1e-5, 0.01));
    assert_int_equal(yb->dtype, AX_DTYPE_BF16);
    ax_tensor *wr;
    OK(ax_tensor_to_dtype(&wr, wb, AX_DTYPE_F32));
    OK(ax_instance_norm_leaky_relu(&yf, xr, wr, b, 1e-5, 0.01));
    assert_true(ax_allclose("bf16 instance_norm_leaky_relu", yb, yf, 2e-2, 1e-2));
    OK(ax_sum(&s, yb, 0, NULL, false));
    OK(ax_backward(s, NULL));
    assert_non_null(xb->grad);
    assert_int_equal(xb->grad->dtype, AX_DTYPE_BF16);
    assert_int_equal(wb->grad->dtype, AX_DTYPE_BF16);
    ax_tensor_free(yf);
    ax_tensor_free(s);
    /* the other ops keep bf16 too */
    ax_tensor *y;
    OK(ax_group_norm(&y, xb, 2, NULL, NULL, 1e-5));
    assert_int_equal(y->dtype, AX_DTYPE_BF16);
    OK(ax_group_norm(&yf, xr, 2, NULL, NULL, 1e-5));
    assert_true(ax_allclose("bf16 group_norm", y, yf, 2e-2, 1e-2));
    ax_tensor_free(y);
    ax_tensor_free(yf);
    OK(ax_layer_norm(&y, xb, 2, NULL, NULL, 1e-5));
    assert_int_equal(y->dtype, AX_DTYPE_BF16);
    ax_tensor_free(y);
    OK(ax_batch_norm(&y, xb, NULL, NULL, NULL, NULL, true, 0.1, 1e-5));
    assert_int_equal(y->dtype, AX_DTYPE_BF16);
    OK(ax_batch_norm(&yf, xr, NULL, NULL, NULL, NULL, true, 0.1, 1e-5));
    assert_true(ax_allclose("bf16 batch_norm", y, yf, 2e-2, 1e-2));
    ax_tensor_free(y);
    ax_tensor_free(yf);
    ax_tensor *all[] = {x, w, b, xb, xr, wb, wr, yb};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

/* ---- thread-count determinism ------------------------------------------------------------------ */

typedef struct run_out {
    ax_tensor *y, *dx, *dw, *db;
} run_out;

static run_out run_threads(int threads, norm_kind kind, int64_t groups, int ndim, const int64_t *xs, int pdim,
                           const int64_t *ps) {
    ax_set_num_threads(threads);
    ax_tensor *x = randn(ndim, xs, 80, 1.3, 0.7, true), *w = randn(pdim, ps, 81, 0.5, 1, true);
    ax_tensor *b = randn(pdim, ps, 82, 0.5, 0, true), *g, *y;
    OK(ax_tensor_randn(&g, ndim, xs, AX_DTYPE_F32, 83, 0));
    norm_case c = {.kind = kind, .groups = groups, .n_norm = pdim, .eps = 1e-5, .affine = true};
    ax_tensor *in[3] = {x, w, b};
    OK(run_case(&y, in, &c));
    OK(ax_backward(y, g));
    run_out r = {y, ax_tensor_retain(x->grad), ax_tensor_retain(w->grad), ax_tensor_retain(b->grad)};
    ax_tensor_free(g);
    ax_tensor_free(x);
    ax_tensor_free(w);
    ax_tensor_free(b);
    return r;
}

static void assert_same_bits(const char *what, const ax_tensor *a, const ax_tensor *b) {
    assert_true(ax_tensor_same_shape(a, b));
    if (memcmp(ax_tensor_data(a), ax_tensor_data(b), ax_tensor_nbytes(a)) != 0) {
        fprintf(stderr, "%s differs between 1 and 2 threads\n", what);
        fail();
    }
}

static void test_thread_determinism(void **state) {
    (void)state;
    int saved = ax_num_threads();
    /* big enough to run in parallel: instance norm (per-channel partial
     * sums), group norm, and layer norm's one-element channels (the
     * channel-parallel dweight pass) */
    const int64_t xi[] = {2, 8, 48, 48}, ci[] = {8}, xl[] = {512, 96}, cl[] = {96};
    struct {
        norm_kind kind;
        int64_t groups;
        int ndim, pdim;
        const int64_t *xs, *ps;
    } cases[] = {{K_INSTANCE_LRELU, 0, 4, 1, xi, ci}, {K_GROUP, 2, 4, 1, xi, ci}, {K_LAYER, 0, 2, 1, xl, cl},
                 {K_BN_TRAIN, 0, 4, 1, xi, ci}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_out a = run_threads(1, cases[i].kind, cases[i].groups, cases[i].ndim, cases[i].xs, cases[i].pdim,
                                cases[i].ps);
        run_out b = run_threads(2, cases[i].kind, cases[i].groups, cases[i].ndim, cases[i].xs, cases[i].pdim,
                                cases[i].ps);
        assert_same_bits("y", a.y, b.y);
        assert_same_bits("dx", a.dx, b.dx);
        assert_same_bits("dweight", a.dw, b.dw);
        assert_same_bits("dbias", a.db, b.db);
        ax_tensor *all[] = {a.y, a.dx, a.dw, a.db, b.y, b.dx, b.dw, b.db};
        for (size_t j = 0; j < sizeof all / sizeof all[0]; j++) ax_tensor_free(all[j]);
    }
    /* dweight/dbias without dx: the channel-parallel pass over long channels */
    const ax_kernels *k = ax_cpu_kernels();
    const int64_t ms[] = {2, 4};
    ax_tensor *x = randn(4, xi, 84, 1, 0.5, false), *dy = randn(4, xi, 85, 1, 0, false), *w = randn(1, ci, 86, 1, 0, false);
    ax_tensor *y, *mean, *rstd, *dw[2], *db[2];
    OK(ax_tensor_empty(&y, 4, xi, AX_DTYPE_F32));
    OK(ax_tensor_empty(&mean, 2, ms, AX_DTYPE_F32));
    OK(ax_tensor_empty(&rstd, 2, ms, AX_DTYPE_F32));
    OK(k->group_norm(y, mean, rstd, x, w, NULL, 4, 1e-5));
    for (int t = 0; t < 2; t++) {
        ax_set_num_threads(t + 1);
        OK(ax_tensor_zeros(&dw[t], 1, ci, AX_DTYPE_F32));
        OK(ax_tensor_zeros(&db[t], 1, ci, AX_DTYPE_F32));
        OK(k->group_norm_backward(NULL, dw[t], db[t], dy, x, mean, rstd, w, 4));
    }
    assert_same_bits("kernel dweight", dw[0], dw[1]);
    assert_same_bits("kernel dbias", db[0], db[1]);
    /* the same through the fused kernels (the gated channel pass) */
    OK(k->group_norm_act(y, mean, rstd, x, w, NULL, 4, 1e-5, 0.01));
    for (int t = 0; t < 2; t++) {
        ax_set_num_threads(t + 1);
        OK(ax_tensor_fill_(dw[t], 0.0));
        OK(ax_tensor_fill_(db[t], 0.0));
        OK(k->group_norm_act_backward(NULL, dw[t], db[t], dy, x, y, mean, rstd, w, 4, 0.01));
    }
    assert_same_bits("fused kernel dweight", dw[0], dw[1]);
    assert_same_bits("fused kernel dbias", db[0], db[1]);
    ax_tensor *all[] = {x, dy, w, y, mean, rstd, dw[0], dw[1], db[0], db[1]};
    for (size_t j = 0; j < sizeof all / sizeof all[0]; j++) ax_tensor_free(all[j]);
    ax_set_num_threads(saved);
}

/* ---- the kernel's contract ------------------------------------------------------------------------ */

static void test_kernel_contract(void **state) {
    (void)state;
    const ax_kernels *k = ax_cpu_kernels();
    assert_true(k->supports(AX_KOP_NORM, AX_DTYPE_F32));
    const int64_t bs[] = {6, 2, 20}, xs[] = {2, 6, 20}, ms[] = {2, 3}, cs[] = {6};
    ax_tensor *base = randn(3, bs, 90, 1, 0.5, false), *w = randn(1, cs, 91, 0.5, 1, false);
    ax_tensor *b = randn(1, cs, 92, 0.5, 0, false), *x, *ybase, *y, *mean, *rstd, *ref;
    OK(ax_tensor_transpose(&x, base, 0, 1)); /* strided x */
    OK(ax_tensor_empty(&ybase, 3, bs, AX_DTYPE_F32));
    OK(ax_tensor_transpose(&y, ybase, 0, 1)); /* strided y */
    OK(ax_tensor_empty(&mean, 2, ms, AX_DTYPE_F32));
    OK(ax_tensor_empty(&rstd, 2, ms, AX_DTYPE_F32));
    OK(k->group_norm(y, mean, rstd, x, w, b, 3, 1e-5));
    OK(ax_group_norm(&ref, x, 3, w, b, 1e-5));
    assert_true(ax_allclose("kernel strided y", y, ref, 0, 0));
    /* mean/rstd against the reference statistics */
    for (int64_t n = 0; n < 2; n++)
        for (int64_t g = 0; g < 3; g++) {
            double m = 0, v = 0;
            for (int64_t j = 0; j < 40; j++) m += ax_tensor_get(x, n * 120 + g * 40 + j);
            m /= 40;
            for (int64_t j = 0; j < 40; j++) v += pow(ax_tensor_get(x, n * 120 + g * 40 + j) - m, 2);
            v /= 40;
            assert_true(fabs(ax_tensor_get(mean, n * 3 + g) - m) < 1e-6);
            assert_true(fabs(ax_tensor_get(rstd, n * 3 + g) - 1 / sqrt(v + 1e-5)) < 1e-5);
        }
    /* backward: dx is written, dweight/dbias are added to */
    ax_tensor *dy, *dx, *dw1, *db1, *dw2, *db2, *dx2;
    OK(ax_tensor_randn(&dy, 3, xs, AX_DTYPE_F32, 93, 0));
    OK(ax_tensor_full(&dx, 3, xs, AX_DTYPE_F32, 123.0));
    OK(ax_tensor_zeros(&dw1, 1, cs, AX_DTYPE_F32));
    OK(ax_tensor_zeros(&db1, 1, cs, AX_DTYPE_F32));
    OK(ax_tensor_full(&dw2, 1, cs, AX_DTYPE_F32, 1.0));
    OK(ax_tensor_full(&db2, 1, cs, AX_DTYPE_F32, 1.0));
    OK(k->group_norm_backward(dx, dw1, db1, dy, x, mean, rstd, w, 3));
    /* dweight alone (the channel pass) equals the dx pass's sums, bit for bit */
    OK(k->group_norm_backward(NULL, dw2, NULL, dy, x, mean, rstd, w, 3));
    OK(k->group_norm_backward(NULL, NULL, db2, dy, x, mean, rstd, w, 3));
    for (int i = 0; i < 6; i++) {
        assert_true((float)(ax_tensor_get(dw1, i) + 1.0) == (float)ax_tensor_get(dw2, i));
        assert_true((float)(ax_tensor_get(db1, i) + 1.0) == (float)ax_tensor_get(db2, i));
    }
    /* against autograd through the front-end */
    ax_tensor *xl, *wl, *bl, *yl;
    OK(ax_tensor_contiguous(&xl, x));
    OK(ax_add_scalar(&wl, w, 0));
    OK(ax_add_scalar(&bl, b, 0));
    OK(ax_tensor_set_requires_grad(xl, true));
    OK(ax_tensor_set_requires_grad(wl, true));
    OK(ax_tensor_set_requires_grad(bl, true));
    OK(ax_group_norm(&yl, xl, 3, wl, bl, 1e-5));
    OK(ax_backward(yl, dy));
    assert_true(ax_allclose("kernel dx", dx, xl->grad, 1e-6, 1e-6));
    assert_true(ax_allclose("kernel dweight", dw1, wl->grad, 1e-6, 1e-6));
    assert_true(ax_allclose("kernel dbias", db1, bl->grad, 1e-6, 1e-6));
    /* a strided dx */
    ax_tensor *dxbase;
    OK(ax_tensor_empty(&dxbase, 3, bs, AX_DTYPE_F32));
    OK(ax_tensor_transpose(&dx2, dxbase, 0, 1));
    OK(k->group_norm_backward(dx2, NULL, NULL, dy, x, mean, rstd, w, 3));
    assert_true(ax_allclose("kernel strided dx", dx2, dx, 0, 0));
    /* other dtypes are refused */
    ax_tensor *xb;
    OK(ax_tensor_to_dtype(&xb, x, AX_DTYPE_BF16));
    assert_int_equal(k->group_norm(y, mean, rstd, xb, w, b, 3, 1e-5), AX_ERR_UNSUPPORTED);
    /* and wrong sizes are caught, not written past */
    assert_int_equal(k->group_norm(y, mean, rstd, x, w, b, 2, 1e-5), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "mean [2, 3] must be [2, 2]"));
    assert_int_equal(k->group_norm(y, mean, rstd, x, w, b, 4, 1e-5), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "x [2, 6, 20] cannot be split into 4 groups"));
    assert_int_equal(k->group_norm_backward(dx, dw1, NULL, dy, x, mean, rstd, dy, 3), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "per-channel tensor [2, 6, 20] must be [6]"));
    assert_int_equal(k->group_norm(mean, mean, rstd, x, w, b, 3, 1e-5), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "y [2, 3] does not match x [2, 6, 20]"));
    ax_tensor *all[] = {base, w, b, x, ybase, y, mean, rstd, ref, dy, dx, dw1, db1, dw2, db2, xl, wl, bl, yl,
                        dxbase, dx2, xb};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

/* ---- fused group_norm_act kernels ------------------------------------------------------------------- */

/* The bits of two tensors of one shape are equal (else name the first
 * differing element). */
static void assert_bits_equal(const char *what, const ax_tensor *a, const ax_tensor *b) {
    assert_true(ax_tensor_same_shape(a, b));
    for (int64_t i = 0; i < ax_tensor_numel(a); i++) {
        float u = (float)ax_tensor_get(a, i), v = (float)ax_tensor_get(b, i);
        if (memcmp(&u, &v, sizeof u) != 0) {
            fprintf(stderr, "%s: element %lld is %.9g fused, %.9g unfused\n", what, (long long)i, u, v);
            fail();
        }
    }
}

typedef struct fused_geom {
    int ndim;
    int64_t shape[5];
    int64_t groups;
    bool affine, transpose_x; /* x: a [C, N, *] tensor's 0/1 transpose (strided) */
    double slope;
} fused_geom;

/* group_norm_act and group_norm_act_backward (CPU table members) against
 * group_norm + unary(LEAKY_RELU) and unary_backward + group_norm_backward:
 * identical bits for y, the statistics, dx, dweight and dbias, with dx
 * requested (the per-channel partials) and not (the channel passes). */
static void fused_vs_unfused(const fused_geom *fg, uint64_t seed) {
    const ax_kernels *k = ax_cpu_kernels();
    const int64_t c = fg->shape[1], ms[2] = {fg->shape[0], fg->groups};
    int64_t base_shape[5];
    memcpy(base_shape, fg->shape, sizeof base_shape);
    if (fg->transpose_x) base_shape[0] = fg->shape[1], base_shape[1] = fg->shape[0];
    ax_tensor *xb = randn(fg->ndim, base_shape, seed, 1.3, 0.2, false), *x;
    if (fg->transpose_x) OK(ax_tensor_transpose(&x, xb, 0, 1));
    else x = ax_tensor_retain(xb);
    ax_tensor *w = fg->affine ? randn(1, &c, seed + 1, 0.5, 1, false) : NULL;
    ax_tensor *b = fg->affine ? randn(1, &c, seed + 2, 0.5, 0, false) : NULL;
    ax_tensor *dy = randn(fg->ndim, fg->shape, seed + 3, 1, 0, false);
    ax_tensor *y[2], *mean[2], *rstd[2], *dx[2], *dw[2][2], *db[2][2], *gm;
    for (int f = 0; f < 2; f++) {
        OK(ax_tensor_empty(&y[f], fg->ndim, fg->shape, AX_DTYPE_F32));
        OK(ax_tensor_empty(&dx[f], fg->ndim, fg->shape, AX_DTYPE_F32));
        OK(ax_tensor_empty(&mean[f], 2, ms, AX_DTYPE_F32));
        OK(ax_tensor_empty(&rstd[f], 2, ms, AX_DTYPE_F32));
        for (int pass = 0; pass < 2; pass++) {
            OK(ax_tensor_full(&dw[f][pass], 1, &c, AX_DTYPE_F32, 0.5)); /* += into them */
            OK(ax_tensor_full(&db[f][pass], 1, &c, AX_DTYPE_F32, -0.25));
        }
    }
    const double p[2] = {fg->slope, 0};
    OK(k->group_norm_act(y[0], mean[0], rstd[0], x, w, b, fg->groups, 1e-5, fg->slope));
    OK(k->group_norm(y[1], mean[1], rstd[1], x, w, b, fg->groups, 1e-5));
    OK(k->unary(AX_UNARY_LEAKY_RELU, y[1], y[1], p));
    OK(ax_tensor_empty(&gm, fg->ndim, fg->shape, AX_DTYPE_F32));
    OK(k->unary_backward(AX_UNARY_LEAKY_RELU, gm, dy, y[1], y[1], p));
    /* pass 0: dx with dweight and dbias; pass 1: dweight, dbias alone */
    OK(k->group_norm_act_backward(dx[0], dw[0][0], db[0][0], dy, x, y[0], mean[0], rstd[0], w, fg->groups, fg->slope));
    OK(k->group_norm_act_backward(NULL, dw[0][1], db[0][1], dy, x, y[0], mean[0], rstd[0], w, fg->groups, fg->slope));
    OK(k->group_norm_backward(dx[1], dw[1][0], db[1][0], gm, x, mean[1], rstd[1], w, fg->groups));
    OK(k->group_norm_backward(NULL, dw[1][1], db[1][1], gm, x, mean[1], rstd[1], w, fg->groups));
    assert_bits_equal("fused y", y[0], y[1]);
    assert_bits_equal("fused mean", mean[0], mean[1]);
    assert_bits_equal("fused rstd", rstd[0], rstd[1]);
    assert_bits_equal("fused dx", dx[0], dx[1]);
    for (int pass = 0; pass < 2; pass++) {
        assert_bits_equal(pass ? "fused dweight (no dx)" : "fused dweight", dw[0][pass], dw[1][pass]);
        assert_bits_equal(pass ? "fused dbias (no dx)" : "fused dbias", db[0][pass], db[1][pass]);
    }
    /* both branches of the activation were taken */
    int64_t pos = 0, n = ax_tensor_numel(y[0]);
    for (int64_t i = 0; i < n; i++) pos += ax_tensor_get(y[0], i) > 0;
    assert_true(pos > 0 && pos < n);
    ax_tensor *all[] = {xb, x, w, b, dy, gm};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
    for (int f = 0; f < 2; f++) {
        ax_tensor *mine[] = {y[f], mean[f], rstd[f], dx[f], dw[f][0], dw[f][1], db[f][0], db[f][1]};
        for (size_t i = 0; i < sizeof mine / sizeof mine[0]; i++) ax_tensor_free(mine[i]);
    }
}

static void test_fused_kernels(void **state) {
    (void)state;
    const fused_geom cases[] = {
        /* instance norm, 189 elements per channel (a SIMD remainder) */
        {5, {2, 5, 7, 9, 3}, 5, true, false, 0.01},
        /* group norm, strided x, slope 0 (relu: y = 0 on the whole negative side) */
        {4, {3, 6, 4, 5}, 2, true, true, 0.0},
        /* short channels (S = 2 < AX_NORM_PARTIALS_MIN_S), no affine */
        {3, {3, 4, 2}, 4, false, false, 0.2},
        /* one element per channel, one group: layer norm's view */
        {3, {4, 6, 1}, 1, true, false, 0.01},
        /* large enough to run the units in parallel */
        {4, {2, 8, 40, 40}, 8, true, false, 0.01},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) fused_vs_unfused(&cases[i], 200 + 10 * i);
}

/* The fused kernels' own argument checks. */
static void test_fused_kernel_errors(void **state) {
    (void)state;
    const ax_kernels *k = ax_cpu_kernels();
    const int64_t xs[] = {2, 3, 5}, ms[] = {2, 3}, bad[] = {2, 3, 4};
    ax_tensor *x = randn(3, xs, 300, 1, 0, false), *y, *yb, *mean, *rstd, *dx;
    OK(ax_tensor_empty(&y, 3, xs, AX_DTYPE_F32));
    OK(ax_tensor_empty(&dx, 3, xs, AX_DTYPE_F32));
    OK(ax_tensor_empty(&yb, 3, bad, AX_DTYPE_F32));
    OK(ax_tensor_empty(&mean, 2, ms, AX_DTYPE_F32));
    OK(ax_tensor_empty(&rstd, 2, ms, AX_DTYPE_F32));
    assert_int_equal(k->group_norm_act(y, mean, rstd, x, NULL, NULL, 3, 1e-5, -0.5), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "ax_cpu_group_norm_act: negative_slope -0.5 must be finite and >= 0"));
    assert_int_equal(k->group_norm_act(y, mean, rstd, x, NULL, NULL, 3, 1e-5, NAN), AX_ERR_INVALID);
    OK(k->group_norm_act(y, mean, rstd, x, NULL, NULL, 3, 1e-5, 0.01));
    assert_int_equal(k->group_norm_act_backward(dx, NULL, NULL, x, x, y, mean, rstd, NULL, 3, -1.0), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "ax_cpu_group_norm_act_backward: negative_slope -1 must be"));
    assert_int_equal(k->group_norm_act_backward(dx, NULL, NULL, x, x, yb, mean, rstd, NULL, 3, 0.01), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "y [2, 3, 4] does not match x [2, 3, 5]"));
    assert_int_equal(k->group_norm_act_backward(dx, NULL, NULL, x, x, NULL, mean, rstd, NULL, 3, 0.01), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "y (the activation's output) is NULL"));
    ax_tensor *all[] = {x, y, yb, mean, rstd, dx};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

/* The front-end's choice of kernels, seen from a stand-in "cuda:0" backend:
 * the CPU kernels (malloc'd memory) behind a table that counts calls, first
 * without the fused members (a backend built before they existed: the
 * two-kernel fallback), then with them (one kernel each way). Both give
 * the CPU's results bit for bit. */
static ax_kernels k_stand_in;
static int n_group_norm, n_group_norm_bwd, n_unary, n_unary_bwd, n_fused, n_fused_bwd;

static void *stand_in_alloc(size_t nbytes, int32_t index) {
    (void)index;
    void *p = malloc(nbytes ? nbytes : 1);
    if (!p) AX_ERROR(AX_ERR_NOMEM, "stand-in: out of memory");
    return p;
}
static void stand_in_release(void *p, size_t nbytes, int32_t index) {
    (void)nbytes, (void)index;
    free(p);
}
static ax_status stand_in_transfer(ax_tensor *dst, const ax_tensor *src) {
    memcpy(ax_tensor_data(dst), ax_tensor_data(src), ax_tensor_nbytes(src));
    return AX_OK;
}
static ax_status stand_in_group_norm(ax_tensor *y, ax_tensor *mean, ax_tensor *rstd, const ax_tensor *x,
                                     const ax_tensor *weight, const ax_tensor *bias, int64_t groups, double eps) {
    n_group_norm++;
    return ax_cpu_kernels()->group_norm(y, mean, rstd, x, weight, bias, groups, eps);
}
static ax_status stand_in_group_norm_bwd(ax_tensor *dx, ax_tensor *dweight, ax_tensor *dbias, const ax_tensor *dy,
                                         const ax_tensor *x, const ax_tensor *mean, const ax_tensor *rstd,
                                         const ax_tensor *weight, int64_t groups) {
    n_group_norm_bwd++;
    return ax_cpu_kernels()->group_norm_backward(dx, dweight, dbias, dy, x, mean, rstd, weight, groups);
}
static ax_status stand_in_unary(ax_unary_op op, ax_tensor *y, const ax_tensor *x, const double *p) {
    n_unary += op == AX_UNARY_LEAKY_RELU;
    return ax_cpu_kernels()->unary(op, y, x, p);
}
static ax_status stand_in_unary_bwd(ax_unary_op op, ax_tensor *dx, const ax_tensor *dy, const ax_tensor *x,
                                    const ax_tensor *y, const double *p) {
    n_unary_bwd += op == AX_UNARY_LEAKY_RELU;
    return ax_cpu_kernels()->unary_backward(op, dx, dy, x, y, p);
}
static ax_status stand_in_fused(ax_tensor *y, ax_tensor *mean, ax_tensor *rstd, const ax_tensor *x,
                                const ax_tensor *weight, const ax_tensor *bias, int64_t groups, double eps,
                                double slope) {
    n_fused++;
    return ax_cpu_kernels()->group_norm_act(y, mean, rstd, x, weight, bias, groups, eps, slope);
}
static ax_status stand_in_fused_bwd(ax_tensor *dx, ax_tensor *dweight, ax_tensor *dbias, const ax_tensor *dy,
                                    const ax_tensor *x, const ax_tensor *y, const ax_tensor *mean,
                                    const ax_tensor *rstd, const ax_tensor *weight, int64_t groups, double slope) {
    n_fused_bwd++;
    return ax_cpu_kernels()->group_norm_act_backward(dx, dweight, dbias, dy, x, y, mean, rstd, weight, groups, slope);
}

/* y and the x/weight/bias grads of sum(y * g) for y = instance_norm_leaky_relu
 * on device dev, brought back to the CPU: out[0..3] = y, dx, dw, db. */
static void run_on(ax_device dev, const ax_tensor *const *cpu_in, const ax_tensor *g, ax_tensor **out) {
    ax_tensor *in[3], *gd, *y;
    for (int i = 0; i < 3; i++) { /* fresh leaves on dev */
        ax_tensor *t;
        OK(ax_tensor_to_device(&t, cpu_in[i], dev));
        OK(ax_tensor_detach(&in[i], t));
        ax_tensor_free(t);
        OK(ax_tensor_set_requires_grad(in[i], true));
    }
    OK(ax_tensor_to_device(&gd, g, dev));
    OK(ax_instance_norm_leaky_relu(&y, in[0], in[1], in[2], 1e-5, 0.01));
    OK(ax_backward(y, gd));
    OK(ax_tensor_to_device(&out[0], y, AX_CPU));
    for (int i = 0; i < 3; i++) OK(ax_tensor_to_device(&out[i + 1], in[i]->grad, AX_CPU));
    for (int i = 0; i < 3; i++) ax_tensor_free(in[i]);
    ax_tensor_free(gd);
    ax_tensor_free(y);
}

static void test_fused_dispatch(void **state) {
    (void)state;
    k_stand_in = *ax_cpu_kernels();
    k_stand_in.name = "stand-in";
    k_stand_in.alloc = stand_in_alloc;
    k_stand_in.release = stand_in_release;
    k_stand_in.transfer = stand_in_transfer;
    k_stand_in.group_norm = stand_in_group_norm;
    k_stand_in.group_norm_backward = stand_in_group_norm_bwd;
    k_stand_in.unary = stand_in_unary;
    k_stand_in.unary_backward = stand_in_unary_bwd;
    /* a table compiled before the fused members: its size ends before them */
    k_stand_in.size = offsetof(ax_kernels, group_norm_act);
    OK(ax_kernels_register(AX_DEVICE_CUDA, &k_stand_in));
    const ax_device dev = {AX_DEVICE_CUDA, 0};
    const int64_t xs[] = {2, 3, 4, 5, 3}, cs[] = {3};
    ax_tensor *in[3] = {randn(5, xs, 400, 1.2, 0.3, false), randn(1, cs, 401, 0.5, 1, false),
                        randn(1, cs, 402, 0.5, 0, false)};
    ax_tensor *g = randn(5, xs, 403, 1, 0, false), *want[4], *old[4], *fused[4];
    run_on(AX_CPU, (const ax_tensor *const *)in, g, want);
    run_on(dev, (const ax_tensor *const *)in, g, old);
    assert_true(n_group_norm == 1 && n_unary == 1 && n_unary_bwd == 1 && n_group_norm_bwd == 1);
    k_stand_in.size = sizeof(ax_kernels);
    k_stand_in.group_norm_act = stand_in_fused;
    k_stand_in.group_norm_act_backward = stand_in_fused_bwd;
    n_group_norm = n_group_norm_bwd = n_unary = n_unary_bwd = 0;
    run_on(dev, (const ax_tensor *const *)in, g, fused);
    assert_true(n_fused == 1 && n_fused_bwd == 1);
    assert_true(n_group_norm == 0 && n_unary == 0 && n_unary_bwd == 0 && n_group_norm_bwd == 0);
    const char *names[] = {"y", "dx", "dweight", "dbias"};
    for (int i = 0; i < 4; i++) {
        assert_bits_equal(names[i], old[i], want[i]);
        assert_bits_equal(names[i], fused[i], want[i]);
        ax_tensor_free(want[i]);
        ax_tensor_free(old[i]);
        ax_tensor_free(fused[i]);
    }
    for (int i = 0; i < 3; i++) ax_tensor_free(in[i]);
    ax_tensor_free(g);
}

/* Finite differences through the fused kernels on a channel length that
 * is no multiple of a SIMD width (7), biases +-4 keeping the
 * pre-activations away from the kink. */
static void test_fused_grad_odd(void **state) {
    (void)state;
    const int64_t xs[] = {2, 4, 7}, cs[] = {4};
    norm_case c = {.kind = K_INSTANCE_LRELU, .eps = 1e-5, .affine = true};
    ax_tensor *in[3] = {randn(3, xs, 410, 1, 0, true), randn(1, cs, 411, 0.1, 0.5, true), NULL};
    OK(ax_tensor_empty(&in[2], 1, cs, AX_DTYPE_F32));
    for (int i = 0; i < 4; i++) ax_tensor_set(in[2], i, i % 2 ? 4.0 : -4.0);
    OK(ax_tensor_set_requires_grad(in[2], true));
    assert_true(ax_gradcheck(run_case, 3, in, &c, &AX_GC_DEFAULT));
    for (int i = 0; i < 3; i++) ax_tensor_free(in[i]);
}

/* ---- errors ------------------------------------------------------------------------------------------- */

static void expect_error(ax_status st, ax_tensor *y, const char *part) {
    assert_int_equal(st, AX_ERR_INVALID);
    assert_null(y);
    if (!strstr(ax_error_message(), part)) {
        fprintf(stderr, "message '%s' lacks '%s'\n", ax_error_message(), part);
        fail();
    }
}

static void test_errors(void **state) {
    (void)state;
    const int64_t xs[] = {2, 6, 4}, c6[] = {6}, c5[] = {5}, x1s[] = {6}, xo[] = {1, 6, 1}, w2[] = {6, 4};
    ax_tensor *x = randn(3, xs, 100, 1, 0, false), *w6 = randn(1, c6, 101, 1, 0, false);
    ax_tensor *w5 = randn(1, c5, 102, 1, 0, false), *x1 = randn(1, x1s, 103, 1, 0, false);
    ax_tensor *xone = randn(3, xo, 104, 1, 0, false), *wl = randn(2, w2, 105, 1, 0, false), *xi, *y = NULL;
    OK(ax_tensor_zeros(&xi, 3, xs, AX_DTYPE_I32));
    ax_status st;
    st = ax_group_norm(&y, x, 4, NULL, NULL, 1e-5);
    expect_error(st, y, "ax_group_norm: x [2, 6, 4] has 6 channels, not divisible by groups 4");
    st = ax_group_norm(&y, x, 0, NULL, NULL, 1e-5);
    expect_error(st, y, "not divisible by groups 0");
    st = ax_group_norm(&y, x, 3, w5, NULL, 1e-5);
    expect_error(st, y, "ax_group_norm: weight [5] must have shape [6] for x [2, 6, 4]");
    st = ax_group_norm(&y, x, 3, w6, w5, 1e-5);
    expect_error(st, y, "ax_group_norm: bias [5] must have shape [6]");
    st = ax_group_norm(&y, x1, 1, NULL, NULL, 1e-5);
    expect_error(st, y, "ax_group_norm: x [6] must have at least 2 dims [N, C, *]");
    st = ax_group_norm(&y, x, 3, NULL, NULL, 0.0);
    expect_error(st, y, "ax_group_norm: eps 0 must be finite and > 0");
    st = ax_group_norm(&y, xi, 3, NULL, NULL, 1e-5);
    expect_error(st, y, "ax_group_norm: x must be a floating tensor, got i32");
    st = ax_instance_norm(&y, x, w5, NULL, 1e-5);
    expect_error(st, y, "ax_instance_norm: weight [5] must have shape [6]");
    st = ax_instance_norm(&y, x1, NULL, NULL, 1e-5);
    expect_error(st, y, "ax_instance_norm: x [6] must have at least 2 dims");
    st = ax_instance_norm(&y, x, NULL, NULL, -1e-5);
    expect_error(st, y, "ax_instance_norm: eps -1e-05 must be finite and > 0");
    st = ax_instance_norm_leaky_relu(&y, x, NULL, NULL, 1e-5, NAN);
    expect_error(st, y, "ax_instance_norm_leaky_relu: negative_slope nan must be finite");
    st = ax_instance_norm_leaky_relu(&y, x, NULL, w5, 1e-5, 0.01);
    expect_error(st, y, "ax_instance_norm_leaky_relu: bias [5] must have shape [6]");
    st = ax_layer_norm(&y, x, 0, NULL, NULL, 1e-5);
    expect_error(st, y, "ax_layer_norm: n_normalized 0 must be in [1, 3] for x [2, 6, 4]");
    st = ax_layer_norm(&y, x, 4, NULL, NULL, 1e-5);
    expect_error(st, y, "ax_layer_norm: n_normalized 4 must be in [1, 3]");
    st = ax_layer_norm(&y, x, 2, w6, NULL, 1e-5);
    expect_error(st, y, "ax_layer_norm: weight [6] must have shape [6, 4] for x [2, 6, 4]");
    st = ax_layer_norm(&y, x, 1, NULL, wl, 1e-5);
    expect_error(st, y, "ax_layer_norm: bias [6, 4] must have shape [4]");
    st = ax_layer_norm(&y, x, 1, NULL, NULL, NAN);
    expect_error(st, y, "ax_layer_norm: eps nan must be finite and > 0");
    st = ax_batch_norm(&y, x, NULL, NULL, NULL, NULL, false, 0.1, 1e-5);
    expect_error(st, y, "ax_batch_norm: evaluation (training = false) of x [2, 6, 4] needs running_mean and running_var");
    st = ax_batch_norm(&y, x, w6, NULL, NULL, NULL, true, 0.1, 1e-5);
    expect_error(st, y, "ax_batch_norm: running_mean and running_var must be given together (got only running_mean)");
    st = ax_batch_norm(&y, x, w5, w5, NULL, NULL, true, 0.1, 1e-5);
    expect_error(st, y, "ax_batch_norm: running_mean [5] must have shape [6]");
    st = ax_batch_norm(&y, x, NULL, NULL, w5, NULL, true, 0.1, 1e-5);
    expect_error(st, y, "ax_batch_norm: weight [5] must have shape [6]");
    st = ax_batch_norm(&y, x, NULL, NULL, NULL, NULL, true, 1.5, 1e-5);
    expect_error(st, y, "ax_batch_norm: momentum 1.5 must be in [0, 1]");
    st = ax_batch_norm(&y, x, NULL, NULL, NULL, NULL, true, 0.1, 0);
    expect_error(st, y, "ax_batch_norm: eps 0 must be finite and > 0");
    st = ax_batch_norm(&y, xone, NULL, NULL, NULL, NULL, true, 0.1, 1e-5);
    expect_error(st, y, "ax_batch_norm: expected more than 1 value per channel when training, got x [1, 6, 1]");
    st = ax_batch_norm(&y, x1, NULL, NULL, NULL, NULL, true, 0.1, 1e-5);
    expect_error(st, y, "ax_batch_norm: x [6] must have at least 2 dims");
    /* a one-value-per-channel x is fine in evaluation */
    OK(ax_batch_norm(&y, xone, w6, w6, NULL, NULL, false, 0.1, 1e-5));
    ax_tensor_free(y);
    ax_tensor *all[] = {x, w6, w5, x1, xone, wl, xi};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

/* ---- PyTorch parity ------------------------------------------------------------------------------------ */

static ax_safetensors *fixtures;

static int open_fixtures(void **state) {
    (void)state;
    const char *path = AX_TEST_FIXTURES "/norm/norm.safetensors";
    if (ax_safetensors_open(&fixtures, path) != AX_OK) {
        fprintf(stderr, "%s\n", ax_error_message());
        return -1;
    }
    return 0;
}

static int close_fixtures(void **state) {
    (void)state;
    ax_safetensors_close(fixtures);
    fixtures = NULL;
    return 0;
}

/* A fresh leaf copy of fixture tensor "<c>.<name>". */
static ax_tensor *fx(const char *c, const char *name, bool grad) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", c, name);
    ax_tensor *t, *u;
    if (ax_safetensors_get(fixtures, key, &t) != AX_OK) fprintf(stderr, "%s\n", ax_error_message());
    assert_non_null(t);
    OK(ax_add_scalar(&u, t, 0));
    ax_tensor_free(t);
    if (grad) OK(ax_tensor_set_requires_grad(u, true));
    return u;
}

/* Run one case: y and the gradients of sum(y * gy) against torch's. */
static void parity_case(const char *c, norm_kind kind) {
    ax_tensor *x = fx(c, "x", true), *w = fx(c, "w", true), *b = fx(c, "b", true), *gy = fx(c, "gy", false);
    ax_tensor *rm = NULL, *rv = NULL, *y = NULL;
    if (kind == K_BN_TRAIN || kind == K_BN_EVAL) rm = fx(c, "rm", false), rv = fx(c, "rv", false);
    switch (kind) {
    case K_INSTANCE: OK(ax_instance_norm(&y, x, w, b, 1e-5)); break;
    case K_INSTANCE_LRELU: OK(ax_instance_norm_leaky_relu(&y, x, w, b, 1e-5, 0.01)); break;
    case K_GROUP: OK(ax_group_norm(&y, x, 3, w, b, 1e-5)); break;
    case K_LAYER:
        if (!strcmp(c, "layer1")) OK(ax_layer_norm(&y, x, 1, w, b, 1e-5));
        else OK(ax_layer_norm(&y, x, 2, w, b, 1e-6));
        break;
    case K_BN_TRAIN: OK(ax_batch_norm(&y, x, rm, rv, w, b, true, 0.1, 1e-5)); break;
    case K_BN_EVAL: OK(ax_batch_norm(&y, x, rm, rv, w, b, false, 0.1, 1e-3)); break;
    }
    OK(ax_backward(y, gy));
    char what[64];
    const char *outs[] = {"y", "dx", "dw", "db"};
    const ax_tensor *got[] = {y, x->grad, w->grad, b->grad};
    for (int i = 0; i < 4; i++) {
        ax_tensor *want = fx(c, outs[i], false);
        snprintf(what, sizeof what, "%s.%s", c, outs[i]);
        assert_true(ax_allclose(what, got[i], want, i == 0 ? 1e-5 : 3e-5, 1e-4));
        ax_tensor_free(want);
    }
    if (kind == K_BN_TRAIN) {
        ax_tensor *m = fx(c, "rm_out", false), *v = fx(c, "rv_out", false);
        assert_true(ax_allclose("bn_train.rm_out", rm, m, 1e-6, 1e-5));
        assert_true(ax_allclose("bn_train.rv_out", rv, v, 1e-6, 1e-5));
        ax_tensor_free(m);
        ax_tensor_free(v);
    }
    ax_tensor *all[] = {x, w, b, gy, rm, rv, y};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

static void test_torch_instance(void **state) {
    (void)state;
    parity_case("instance", K_INSTANCE);
    parity_case("instance_shift", K_INSTANCE);
    parity_case("instance_lrelu", K_INSTANCE_LRELU);
    parity_case("lrelu_odd", K_INSTANCE_LRELU);
    parity_case("lrelu_2d", K_INSTANCE_LRELU);
}
static void test_torch_group(void **state) { (void)state, parity_case("group", K_GROUP); }
static void test_torch_layer(void **state) {
    (void)state;
    parity_case("layer1", K_LAYER);
    parity_case("layer2", K_LAYER);
}
static void test_torch_batch(void **state) {
    (void)state;
    parity_case("bn_train", K_BN_TRAIN);
    parity_case("bn_eval", K_BN_EVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_norm_forward),
        cmocka_unit_test(test_instance_norm_forward),
        cmocka_unit_test(test_instance_norm_large_mean),
        cmocka_unit_test(test_layer_norm_forward),
        cmocka_unit_test(test_batch_norm_forward),
        cmocka_unit_test(test_non_contiguous_forward),
        cmocka_unit_test(test_group_norm_grad),
        cmocka_unit_test(test_instance_norm_grad),
        cmocka_unit_test(test_instance_norm_leaky_relu_grad),
        cmocka_unit_test(test_layer_norm_grad),
        cmocka_unit_test(test_batch_norm_grad),
        cmocka_unit_test(test_partial_grads),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_thread_determinism),
        cmocka_unit_test(test_kernel_contract),
        cmocka_unit_test(test_fused_kernels),
        cmocka_unit_test(test_fused_kernel_errors),
        cmocka_unit_test(test_fused_dispatch),
        cmocka_unit_test(test_fused_grad_odd),
        cmocka_unit_test(test_errors),
    };
    const struct CMUnitTest parity[] = {
        cmocka_unit_test(test_torch_instance),
        cmocka_unit_test(test_torch_group),
        cmocka_unit_test(test_torch_layer),
        cmocka_unit_test(test_torch_batch),
    };
    int failed = cmocka_run_group_tests_name("norm", tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("norm torch parity", parity, open_fixtures, close_fixtures);
    return failed;
}
