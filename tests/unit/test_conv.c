/* Tests for ax_conv3d and ax_conv_transpose3d (sdk/src/ops_conv.c) and
 * their oneDNN CPU kernels (kernels/cpu/cpu_conv.c): forward values and
 * every gradient against a direct double-precision reference (a gather loop
 * for conv, a scatter loop for the transposed op), finite-difference
 * gradient checks incl. non-contiguous inputs, bf16, the kernels' contract
 * (+= into dw/db, NULL outputs), determinism, every argument error, and
 * PyTorch parity from tests/fixtures/conv/conv.safetensors (written by
 * make_conv.py there). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/conv.h"
#include "axon/kernels.h"
#include "axon/safetensors.h"
#include "gradcheck.h"

#define OK(expr) assert_int_equal((expr), AX_OK)

/* One geometry: x [N, Ci, D, H, W]; w [Co, Ci/g, k] (conv) or [Ci, Co/g, k]
 * (transposed). */
typedef struct conv_case {
    const char *name;
    bool transposed;
    int64_t n, ci, co, in[3], k[3];
    int64_t stride[3], pad[3], dil[3], opad[3], groups;
    bool bias;
} conv_case;

static const conv_case CONV_CASES[] = {
    {"k3p1", false, 2, 3, 4, {5, 6, 4}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 1, true},
    {"resenc_s2", false, 2, 4, 6, {7, 6, 5}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 1, false},
    {"aniso_dil_g2", false, 1, 4, 6, {6, 7, 5}, {3, 1, 2}, {1, 2, 1}, {2, 0, 1}, {2, 1, 2}, {0, 0, 0}, 2, true},
    {"depthwise", false, 2, 4, 8, {5, 5, 5}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 4, true},
    {"k1s2_even", false, 2, 3, 2, {6, 4, 8}, {1, 1, 1}, {2, 2, 2}, {0, 0, 0}, {1, 1, 1}, {0, 0, 0}, 1, true},
    {"big_kernel_s3", false, 1, 2, 3, {4, 5, 3}, {5, 3, 4}, {3, 2, 1}, {2, 1, 2}, {1, 1, 1}, {0, 0, 0}, 1, false},
    {"blocked", false, 2, 16, 24, {6, 6, 6}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 1, true},
    {"blocked_s2_g2", false, 2, 16, 32, {7, 6, 6}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 2, true},
    {"crop_s3", false, 2, 8, 8, {5, 6, 5}, {2, 3, 2}, {3, 1, 2}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 1, true},
    {"first_layer", false, 2, 1, 8, {8, 8, 8}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 1, true},
    {"t_unet_k2s2", true, 2, 8, 4, {3, 4, 2}, {2, 2, 2}, {2, 2, 2}, {0, 0, 0}, {1, 1, 1}, {0, 0, 0}, 1, true},
    {"t_g2_opad", true, 2, 4, 6, {3, 2, 4}, {3, 3, 2}, {2, 2, 1}, {1, 0, 1}, {1, 1, 2}, {1, 1, 0}, 2, true},
    {"t_opad_dil", true, 1, 3, 2, {4, 3, 5}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {2, 2, 2}, {1, 0, 1}, 1, false},
    {"t_blocked", true, 2, 16, 8, {4, 4, 4}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1, true},
    {"t_aniso_g2", true, 1, 4, 4, {2, 3, 2}, {2, 3, 1}, {3, 1, 2}, {0, 1, 0}, {1, 1, 1}, {0, 0, 0}, 2, false},
    {"t_unet_blocked", true, 2, 32, 16, {3, 3, 3}, {2, 2, 2}, {2, 2, 2}, {0, 0, 0}, {1, 1, 1}, {0, 0, 0}, 1, true},
};
#define N_CASES (sizeof CONV_CASES / sizeof CONV_CASES[0])

static ax_conv_params case_params(const conv_case *c) {
    ax_conv_params p = ax_conv_params_default();
    for (int d = 0; d < 3; d++) {
        p.stride[d] = c->stride[d];
        p.padding[d] = c->pad[d];
        p.dilation[d] = c->dil[d];
        p.output_padding[d] = c->opad[d];
    }
    p.groups = c->groups;
    return p;
}

static void case_shapes(const conv_case *c, int64_t *xs, int64_t *ws, int64_t *ys) {
    xs[0] = ys[0] = c->n;
    xs[1] = c->ci;
    ys[1] = c->co;
    ws[0] = c->transposed ? c->ci : c->co;
    ws[1] = c->transposed ? c->co / c->groups : c->ci / c->groups;
    for (int d = 0; d < 3; d++) {
        xs[2 + d] = c->in[d];
        ws[2 + d] = c->k[d];
        int64_t range = c->dil[d] * (c->k[d] - 1) + 1;
        ys[2 + d] = c->transposed ? (c->in[d] - 1) * c->stride[d] - 2 * c->pad[d] + range + c->opad[d]
                                  : (c->in[d] + 2 * c->pad[d] - range) / c->stride[d] + 1;
    }
}

static int64_t numel5(const int64_t *s) { return s[0] * s[1] * s[2] * s[3] * s[4]; }

static double *to_doubles(const ax_tensor *t) {
    int64_t n = ax_tensor_numel(t);
    double *v = calloc((size_t)(n ? n : 1), sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = ax_tensor_get(t, i);
    return v;
}

static ax_tensor *from_doubles(int ndim, const int64_t *shape, const double *v) {
    ax_tensor *t;
    OK(ax_tensor_empty(&t, ndim, shape, AX_DTYPE_F32));
    for (int64_t i = 0; i < ax_tensor_numel(t); i++) ax_tensor_set(t, i, v[i]);
    return t;
}

/* ---- double reference ------------------------------------------------------------------ */

/* Every (input element, weight element, output element) triple of the op
 * in one loop: y += x * w, and for L = sum(y * gy): dx += gy * w,
 * dw += gy * x, db = sum gy. For conv the "small" grid is y's and the
 * "big" one x's (gather); transposed swaps them (scatter). Arrays are
 * C-order doubles of case_shapes()'s shapes; b/gy/dx/dw/db may be NULL. */
static void ref_conv(const conv_case *c, const double *x, const double *w, const double *b, const double *gy,
                     double *y, double *dx, double *dw, double *db) {
    int64_t xs[5], ws[5], ys[5];
    case_shapes(c, xs, ws, ys);
    const int64_t *small = c->transposed ? xs + 2 : ys + 2, *big = c->transposed ? ys + 2 : xs + 2;
    int64_t g = c->groups, cig = c->ci / g, cog = c->co / g, xsp = xs[2] * xs[3] * xs[4], ysp = ys[2] * ys[3] * ys[4];
    int64_t ksp = c->k[0] * c->k[1] * c->k[2];
    memset(y, 0, (size_t)numel5(ys) * sizeof *y);
    if (dx) memset(dx, 0, (size_t)numel5(xs) * sizeof *dx);
    if (dw) memset(dw, 0, (size_t)numel5(ws) * sizeof *dw);
    for (int64_t n = 0; n < c->n; n++)
        for (int64_t gi = 0; gi < g; gi++)
            for (int64_t i = 0; i < cig; i++)
                for (int64_t o = 0; o < cog; o++)
                    for (int64_t kd = 0; kd < c->k[0]; kd++)
                        for (int64_t kh = 0; kh < c->k[1]; kh++)
                            for (int64_t kw = 0; kw < c->k[2]; kw++)
                                for (int64_t sd = 0; sd < small[0]; sd++)
                                    for (int64_t sh = 0; sh < small[1]; sh++)
                                        for (int64_t sw = 0; sw < small[2]; sw++) {
                                            int64_t bd = sd * c->stride[0] - c->pad[0] + kd * c->dil[0];
                                            int64_t bh = sh * c->stride[1] - c->pad[1] + kh * c->dil[1];
                                            int64_t bw = sw * c->stride[2] - c->pad[2] + kw * c->dil[2];
                                            if (bd < 0 || bd >= big[0] || bh < 0 || bh >= big[1] || bw < 0 ||
                                                bw >= big[2])
                                                continue;
                                            int64_t spos = (sd * small[1] + sh) * small[2] + sw;
                                            int64_t bpos = (bd * big[1] + bh) * big[2] + bw;
                                            int64_t kpos = (kd * c->k[1] + kh) * c->k[2] + kw;
                                            int64_t ci = gi * cig + i, co = gi * cog + o;
                                            int64_t xi = (n * c->ci + ci) * xsp + (c->transposed ? spos : bpos);
                                            int64_t yi = (n * c->co + co) * ysp + (c->transposed ? bpos : spos);
                                            int64_t wi = c->transposed ? (ci * cog + o) * ksp + kpos
                                                                       : (co * cig + i) * ksp + kpos;
                                            y[yi] += x[xi] * w[wi];
                                            if (dx) dx[xi] += gy[yi] * w[wi];
                                            if (dw) dw[wi] += gy[yi] * x[xi];
                                        }
    for (int64_t n = 0; n < c->n; n++)
        for (int64_t co = 0; co < c->co; co++)
            for (int64_t s = 0; s < ysp; s++) {
                if (b) y[(n * c->co + co) * ysp + s] += b[co];
            }
    if (db) {
        memset(db, 0, (size_t)c->co * sizeof *db);
        for (int64_t n = 0; n < c->n; n++)
            for (int64_t co = 0; co < c->co; co++)
                for (int64_t s = 0; s < ysp; s++) db[co] += gy[(n * c->co + co) * ysp + s];
    }
}

static ax_status run_op(const conv_case *c, ax_tensor **y, const ax_tensor *x, const ax_tensor *w,
                        const ax_tensor *b) {
    ax_conv_params p = case_params(c);
    return c->transposed ? ax_conv_transpose3d(y, x, w, b, &p) : ax_conv3d(y, x, w, b, &p);
}

/* Inputs of a case: fresh f32 leaves (b NULL without bias). */
static void case_inputs(const conv_case *c, uint64_t seed, bool grad, ax_tensor **x, ax_tensor **w, ax_tensor **b) {
    int64_t xs[5], ws[5], ys[5];
    case_shapes(c, xs, ws, ys);
    *x = ax_test_randn(5, xs, seed, 1.0, 0.0, grad);
    *w = ax_test_randn(5, ws, seed + 1, 0.5, 0.0, grad);
    *b = c->bias ? ax_test_randn(1, &c->co, seed + 2, 1.0, 0.0, grad) : NULL;
}

/* Forward and all gradients of L = sum(y * gy) against the reference. */
static void check_case(const conv_case *c) {
    int64_t xs[5], ws[5], ys[5];
    case_shapes(c, xs, ws, ys);
    ax_tensor *x, *w, *b, *y;
    case_inputs(c, 11, true, &x, &w, &b);
    ax_tensor *gy = ax_test_randn(5, ys, 99, 1.0, 0.0, false);
    OK(run_op(c, &y, x, w, b));
    double *dx_ = to_doubles(x), *dw_ = to_doubles(w), *db_ = b ? to_doubles(b) : NULL, *dgy = to_doubles(gy);
    double *ry = calloc((size_t)numel5(ys), sizeof *ry), *rdx = calloc((size_t)numel5(xs), sizeof *rdx);
    double *rdw = calloc((size_t)numel5(ws), sizeof *rdw), *rdb = calloc((size_t)c->co, sizeof *rdb);
    ref_conv(c, dx_, dw_, db_, dgy, ry, rdx, rdw, rdb);
    ax_tensor *want_y = from_doubles(5, ys, ry), *want_dx = from_doubles(5, xs, rdx);
    ax_tensor *want_dw = from_doubles(5, ws, rdw), *want_db = from_doubles(1, &c->co, rdb);
    char what[96];
    snprintf(what, sizeof what, "%s: y", c->name);
    assert_true(ax_allclose(what, y, want_y, 2e-4, 2e-4));
    OK(ax_backward(y, gy));
    snprintf(what, sizeof what, "%s: dx", c->name);
    assert_true(ax_allclose(what, x->grad, want_dx, 2e-4, 2e-4));
    snprintf(what, sizeof what, "%s: dw", c->name);
    assert_true(ax_allclose(what, w->grad, want_dw, 5e-4, 2e-4));
    if (b) {
        snprintf(what, sizeof what, "%s: db", c->name);
        assert_true(ax_allclose(what, b->grad, want_db, 5e-4, 2e-4));
    }
    free(dx_), free(dw_), free(db_), free(dgy), free(ry), free(rdx), free(rdw), free(rdb);
    ax_tensor *all[] = {x, w, b, y, gy, want_y, want_dx, want_dw, want_db};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

static void test_conv_vs_reference(void **state) {
    (void)state;
    for (size_t i = 0; i < N_CASES; i++)
        if (!CONV_CASES[i].transposed) check_case(&CONV_CASES[i]);
}

static void test_conv_transpose_vs_reference(void **state) {
    (void)state;
    for (size_t i = 0; i < N_CASES; i++)
        if (CONV_CASES[i].transposed) check_case(&CONV_CASES[i]);
}

/* ---- finite differences -------------------------------------------------------------------- */

static ax_status gc_case(ax_tensor **out, ax_tensor *const *in, void *ctx) {
    const conv_case *c = ctx;
    return run_op(c, out, in[0], in[1], c->bias ? in[2] : NULL);
}

/* x arrives as an NDHWC leaf; the op sees the permuted NCDHW view. */
static ax_status gc_permuted(ax_tensor **out, ax_tensor *const *in, void *ctx) {
    const conv_case *c = ctx;
    ax_tensor *v;
    ax_status st = ax_tensor_permute(&v, in[0], (int[]){0, 4, 1, 2, 3});
    if (st != AX_OK) return st;
    st = run_op(c, out, v, in[1], c->bias ? in[2] : NULL);
    ax_tensor_free(v);
    return st;
}

static void gradcheck_case(const conv_case *c, bool permuted) {
    ax_tensor *x, *w, *b;
    case_inputs(c, 5, true, &x, &w, &b);
    if (permuted) {
        int64_t s[5] = {c->n, c->in[0], c->in[1], c->in[2], c->ci};
        ax_tensor_free(x);
        x = ax_test_randn(5, s, 5, 1.0, 0.0, true);
    }
    ax_tensor *in[3] = {x, w, b};
    ax_gc_opts o = AX_GC_DEFAULT;
    o.max_elems = 64;
    if (!ax_gradcheck(permuted ? gc_permuted : gc_case, c->bias ? 3 : 2, in, (void *)c, &o))
        fail_msg("gradcheck failed for %s%s", c->name, permuted ? " (permuted x)" : "");
    ax_tensor_free(x), ax_tensor_free(w), ax_tensor_free(b);
}

static const conv_case GC_CONV = {"gc_conv", false, 2, 2, 3, {5, 4, 6}, {3, 3, 3}, {2, 1, 2}, {1, 1, 1},
                                  {1, 1, 1}, {0, 0, 0}, 1, true};
static const conv_case GC_CONV_G2 = {"gc_conv_g2", false, 2, 4, 2, {4, 5, 4}, {3, 2, 3}, {1, 2, 1}, {1, 0, 2},
                                     {1, 1, 2}, {0, 0, 0}, 2, true};
static const conv_case GC_TCONV = {"gc_tconv", true, 2, 3, 2, {3, 2, 3}, {2, 2, 2}, {2, 2, 2}, {0, 0, 0},
                                   {1, 1, 1}, {0, 0, 0}, 1, true};
static const conv_case GC_TCONV_G2 = {"gc_tconv_g2", true, 2, 4, 4, {3, 2, 2}, {3, 3, 2}, {2, 1, 2}, {1, 1, 0},
                                      {1, 2, 1}, {1, 0, 1}, 2, true};

static void test_gradcheck_conv(void **state) {
    (void)state;
    gradcheck_case(&GC_CONV, false);
    gradcheck_case(&GC_CONV_G2, false);
}

static void test_gradcheck_conv_transpose(void **state) {
    (void)state;
    gradcheck_case(&GC_TCONV, false);
    gradcheck_case(&GC_TCONV_G2, false);
}

static void test_gradcheck_non_contiguous(void **state) {
    (void)state;
    gradcheck_case(&GC_CONV_G2, true);
    gradcheck_case(&GC_TCONV, true);
}

/* A permuted x gives exactly what its contiguous copy gives. */
static void test_non_contiguous_forward(void **state) {
    (void)state;
    for (int t = 0; t < 2; t++) {
        const conv_case *c = t ? &GC_TCONV_G2 : &GC_CONV_G2;
        int64_t s[5] = {c->n, c->in[0], c->in[1], c->in[2], c->ci};
        ax_tensor *leaf = ax_test_randn(5, s, 3, 1.0, 0.0, false), *x, *xc, *w, *b, *y1, *y2, *unused;
        case_inputs(c, 4, false, &unused, &w, &b);
        OK(ax_tensor_permute(&x, leaf, (int[]){0, 4, 1, 2, 3}));
        assert_false(ax_tensor_is_contiguous(x));
        OK(ax_tensor_contiguous(&xc, x));
        OK(run_op(c, &y1, x, w, b));
        OK(run_op(c, &y2, xc, w, b));
        assert_true(ax_allclose("permuted x", y1, y2, 0, 0));
        ax_tensor *all[] = {leaf, x, xc, w, b, y1, y2, unused};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
    }
}

/* Only the gradients asked for are computed, and each equals the full run's. */
static void test_partial_grads(void **state) {
    (void)state;
    const conv_case *c = &GC_CONV_G2;
    ax_tensor *x, *w, *b, *y, *gy;
    case_inputs(c, 8, true, &x, &w, &b);
    OK(run_op(c, &y, x, w, b));
    OK(ax_tensor_ones(&gy, y->ndim, y->shape, AX_DTYPE_F32));
    OK(ax_backward(y, gy));
    ax_tensor_free(y);
    ax_tensor *full[3] = {ax_tensor_retain(x->grad), ax_tensor_retain(w->grad), ax_tensor_retain(b->grad)};
    ax_tensor *in[3] = {x, w, b};
    for (int only = 0; only < 3; only++) {
        for (int i = 0; i < 3; i++) {
            ax_tensor_zero_grad(in[i]);
            OK(ax_tensor_set_requires_grad(in[i], i == only));
        }
        OK(run_op(c, &y, x, w, b));
        OK(ax_backward(y, gy));
        for (int i = 0; i < 3; i++) {
            if (i != only) assert_null(in[i]->grad);
            else assert_true(ax_allclose("partial grad", in[i]->grad, full[i], 0, 0));
        }
        ax_tensor_free(y);
    }
    for (int i = 0; i < 3; i++) ax_tensor_free(full[i]), ax_tensor_free(in[i]);
    ax_tensor_free(gy);
}

/* bf16/f16 in, the same dtype out (computed in f32), gradients in that
 * dtype and equal to the f32 op's on the same rounded values. */
static void test_half_dtypes(void **state) {
    (void)state;
    const ax_dtype dts[2] = {AX_DTYPE_BF16, AX_DTYPE_F16};
    for (int t = 0; t < 4; t++) {
        const conv_case *c = t % 2 ? &GC_TCONV_G2 : &GC_CONV;
        ax_dtype dt = dts[t / 2];
        double tol = dt == AX_DTYPE_BF16 ? 2e-2 : 2e-3;
        ax_tensor *x, *w, *b, *in[3], *in32[3], *y, *yh, *gy, *gy32;
        case_inputs(c, 21, false, &x, &w, &b);
        ax_tensor *src[3] = {x, w, b};
        for (int i = 0; i < 3; i++) {
            OK(ax_tensor_to_dtype(&in[i], src[i], dt));
            OK(ax_tensor_to_dtype(&in32[i], in[i], AX_DTYPE_F32)); /* the same rounded values in f32 */
            OK(ax_tensor_set_requires_grad(in[i], true));
            OK(ax_tensor_set_requires_grad(in32[i], true));
        }
        OK(run_op(c, &yh, in[0], in[1], in[2]));
        OK(run_op(c, &y, in32[0], in32[1], in32[2]));
        assert_int_equal(yh->dtype, dt);
        assert_true(ax_allclose("half y", yh, y, tol, tol));
        OK(ax_tensor_ones(&gy, yh->ndim, yh->shape, dt));
        OK(ax_tensor_ones(&gy32, y->ndim, y->shape, AX_DTYPE_F32));
        OK(ax_backward(yh, gy));
        OK(ax_backward(y, gy32));
        for (int i = 0; i < 3; i++) {
            assert_int_equal(in[i]->grad->dtype, dt);
            assert_true(ax_allclose("half grad", in[i]->grad, in32[i]->grad, tol, tol));
        }
        ax_tensor *all[] = {x, w, b, in[0], in[1], in[2], in32[0], in32[1], in32[2], y, yh, gy, gy32};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
    }
}

/* N = 0: an empty output; zero weight and bias gradients. */
static void test_empty_batch(void **state) {
    (void)state;
    conv_case c = GC_CONV;
    c.n = 0;
    ax_tensor *x, *w, *b, *y, *gy;
    case_inputs(&c, 2, true, &x, &w, &b);
    OK(run_op(&c, &y, x, w, b));
    assert_int_equal(y->shape[0], 0);
    assert_int_equal(y->shape[1], 3);
    OK(ax_tensor_zeros(&gy, y->ndim, y->shape, AX_DTYPE_F32));
    OK(ax_backward(y, gy));
    for (int64_t i = 0; i < ax_tensor_numel(w->grad); i++) assert_true(ax_tensor_get(w->grad, i) == 0.0);
    for (int64_t i = 0; i < ax_tensor_numel(b->grad); i++) assert_true(ax_tensor_get(b->grad, i) == 0.0);
    ax_tensor *all[] = {x, w, b, y, gy};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

/* NULL params = the defaults. */
static void test_default_params(void **state) {
    (void)state;
    ax_conv_params p = ax_conv_params_default();
    for (int d = 0; d < 3; d++) {
        assert_int_equal(p.stride[d], 1);
        assert_int_equal(p.padding[d], 0);
        assert_int_equal(p.dilation[d], 1);
        assert_int_equal(p.output_padding[d], 0);
    }
    assert_int_equal(p.groups, 1);
    ax_tensor *x = ax_test_randn(5, (int64_t[]){1, 2, 4, 4, 4}, 1, 1, 0, false);
    ax_tensor *w = ax_test_randn(5, (int64_t[]){3, 2, 2, 2, 2}, 2, 1, 0, false), *y1, *y2;
    OK(ax_conv3d(&y1, x, w, NULL, NULL));
    OK(ax_conv3d(&y2, x, w, NULL, &p));
    assert_int_equal(y1->shape[2], 3);
    assert_true(ax_allclose("default params", y1, y2, 0, 0));
    ax_tensor_free(y1), ax_tensor_free(y2);
    ax_tensor *wt = ax_test_randn(5, (int64_t[]){2, 3, 2, 2, 2}, 3, 1, 0, false);
    OK(ax_conv_transpose3d(&y1, x, wt, NULL, NULL));
    OK(ax_conv_transpose3d(&y2, x, wt, NULL, &p));
    assert_int_equal(y1->shape[1], 3);
    assert_int_equal(y1->shape[2], 5);
    assert_true(ax_allclose("default params (transposed)", y1, y2, 0, 0));
    ax_tensor_free(y1), ax_tensor_free(y2);
    ax_tensor_free(x), ax_tensor_free(w), ax_tensor_free(wt);
}

/* ---- the kernels' contract ---------------------------------------------------------------- */

/* dx is written (=), dw and db accumulate (+=); NULL outputs are skipped,
 * and the bias-only gradient (no dw) equals the fused one. */
static void test_kernel_contract(void **state) {
    (void)state;
    const ax_kernels *k = ax_cpu_kernels();
    for (int t = 0; t < 2; t++) {
        const conv_case *c = t ? &CONV_CASES[13] : &CONV_CASES[6]; /* the blocked cases */
        int64_t xs[5], ws[5], ys[5];
        case_shapes(c, xs, ws, ys);
        ax_conv_params p = case_params(c);
        ax_tensor *x, *w, *b, *dy = ax_test_randn(5, ys, 7, 1.0, 0.0, false);
        case_inputs(c, 6, false, &x, &w, &b);
        ax_tensor *dx0, *dw0, *db0, *dx1, *dw1, *db1, *db2;
        OK(ax_tensor_zeros(&dx0, 5, xs, AX_DTYPE_F32));
        OK(ax_tensor_zeros(&dw0, 5, ws, AX_DTYPE_F32));
        OK(ax_tensor_zeros(&db0, 1, &c->co, AX_DTYPE_F32));
        OK(ax_tensor_full(&dx1, 5, xs, AX_DTYPE_F32, 123.0)); /* overwritten */
        OK(ax_tensor_full(&dw1, 5, ws, AX_DTYPE_F32, 1.0));   /* accumulated */
        OK(ax_tensor_full(&db1, 1, &c->co, AX_DTYPE_F32, -2.0));
        OK(ax_tensor_full(&db2, 1, &c->co, AX_DTYPE_F32, 0.5));
        ax_status (*bwd)(ax_tensor *, ax_tensor *, ax_tensor *, const ax_tensor *, const ax_tensor *,
                         const ax_tensor *, const ax_conv_params *) =
            c->transposed ? k->conv_transpose3d_backward : k->conv3d_backward;
        OK(bwd(dx0, dw0, db0, dy, x, w, &p));
        OK(bwd(dx1, dw1, db1, dy, x, w, &p));
        OK(bwd(NULL, NULL, db2, dy, x, w, &p)); /* bias only: computed outside oneDNN */
        OK(bwd(NULL, NULL, NULL, dy, x, w, &p));
        assert_true(ax_allclose("dx overwritten", dx1, dx0, 0, 0));
        ax_tensor *e;
        OK(ax_add_scalar(&e, dw0, 1.0));
        assert_true(ax_allclose("dw accumulated", dw1, e, 1e-6, 1e-6));
        ax_tensor_free(e);
        OK(ax_add_scalar(&e, db0, -2.0));
        assert_true(ax_allclose("db accumulated", db1, e, 1e-5, 1e-6));
        ax_tensor_free(e);
        OK(ax_add_scalar(&e, db0, 0.5));
        assert_true(ax_allclose("db alone", db2, e, 1e-4, 1e-5));
        ax_tensor_free(e);
        /* a geometry that does not match is refused, not computed */
        ax_conv_params bad = p;
        bad.stride[0] += 1;
        assert_int_equal(bwd(dx0, NULL, NULL, dy, x, w, &bad), AX_ERR_INVALID);
        assert_non_null(strstr(ax_error_message(), "inconsistent arguments"));
        ax_tensor *all[] = {x, w, b, dy, dx0, dw0, db0, dx1, dw1, db1, db2};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
    }
}

/* Reused temporary buffers hold old data: a blocked layout's channel
 * padding and the depth-padded copy's zero slabs must be rewritten each
 * call. Poison the pool with NaN activations of the same sizes first. */
static void test_buffer_reuse(void **state) {
    (void)state;
    static const conv_case c = {"pad_channels", false, 2, 5, 6, {6, 5, 4}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1},
                                {1, 1, 1}, {0, 0, 0}, 1, true};
    static const conv_case tc = {"t_pad_channels", true, 2, 5, 6, {3, 3, 2}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1},
                                 {1, 1, 1}, {1, 1, 1}, 1, true};
    for (int t = 0; t < 2; t++) {
        const conv_case *cc = t ? &tc : &c;
        for (int64_t depth = 4; depth <= 10; depth++) { /* 8 channels, no padding: every byte NaN */
            ax_tensor *xn, *wn, *yn;
            OK(ax_tensor_full(&xn, 5, (int64_t[]){2, 8, depth, 5, 4}, AX_DTYPE_F32, NAN));
            OK(ax_tensor_full(&wn, 5, (int64_t[]){8, 8, 1, 1, 1}, AX_DTYPE_F32, NAN));
            OK(ax_conv3d(&yn, xn, wn, NULL, NULL));
            ax_tensor_free(xn), ax_tensor_free(wn), ax_tensor_free(yn);
        }
        check_case(cc);
    }
}

/* Same thread count, same bits; more entries than the primitive cache holds. */
static void test_deterministic_and_cache(void **state) {
    (void)state;
    const conv_case *c = &CONV_CASES[7];
    ax_tensor *x, *w, *b, *y1, *y2;
    case_inputs(c, 31, true, &x, &w, &b);
    ax_tensor *g[2][3];
    for (int r = 0; r < 2; r++) {
        OK(run_op(c, r ? &y2 : &y1, x, w, b));
        ax_tensor *gy;
        OK(ax_tensor_ones(&gy, 5, (r ? y2 : y1)->shape, AX_DTYPE_F32));
        OK(ax_backward(r ? y2 : y1, gy));
        ax_tensor_free(gy);
        g[r][0] = ax_tensor_retain(x->grad), g[r][1] = ax_tensor_retain(w->grad), g[r][2] = ax_tensor_retain(b->grad);
        ax_tensor_zero_grad(x), ax_tensor_zero_grad(w), ax_tensor_zero_grad(b);
        if (r == 0) { /* churn the cache: 40 other geometries */
            for (int i = 0; i < 40; i++) {
                ax_tensor *xi = ax_test_randn(5, (int64_t[]){1, 2, 3 + i % 5, 4 + i / 5, 3}, 1, 1, 0, false), *yi;
                ax_tensor *wi = ax_test_randn(5, (int64_t[]){3, 2, 1, 2, 3}, 2, 1, 0, false);
                OK(ax_conv3d(&yi, xi, wi, NULL, NULL));
                ax_tensor_free(xi), ax_tensor_free(wi), ax_tensor_free(yi);
            }
        }
    }
    assert_true(ax_allclose("y repeat", y1, y2, 0, 0));
    for (int i = 0; i < 3; i++) assert_true(ax_allclose("grad repeat", g[0][i], g[1][i], 0, 0));
    for (int i = 0; i < 3; i++) ax_tensor_free(g[0][i]), ax_tensor_free(g[1][i]);
    ax_tensor *all[] = {x, w, b, y1, y2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

/* 1 thread against the default count: equal to rounding (documented:
 * oneDNN's weight-gradient reduction depends on the thread count). */
static void test_thread_counts(void **state) {
    (void)state;
    int saved = ax_num_threads();
    const conv_case *c = &CONV_CASES[6];
    ax_tensor *x, *w, *b, *y[2], *gw[2], *gx[2];
    case_inputs(c, 41, true, &x, &w, &b);
    for (int r = 0; r < 2; r++) {
        ax_set_num_threads(r ? 1 : (saved > 1 ? saved : 2));
        OK(run_op(c, &y[r], x, w, b));
        ax_tensor *gy;
        OK(ax_tensor_ones(&gy, 5, y[r]->shape, AX_DTYPE_F32));
        OK(ax_backward(y[r], gy));
        ax_tensor_free(gy);
        gx[r] = ax_tensor_retain(x->grad), gw[r] = ax_tensor_retain(w->grad);
        ax_tensor_zero_grad(x), ax_tensor_zero_grad(w), ax_tensor_zero_grad(b);
    }
    ax_set_num_threads(saved);
    assert_true(ax_allclose("y across threads", y[0], y[1], 1e-5, 1e-5));
    assert_true(ax_allclose("dx across threads", gx[0], gx[1], 1e-5, 1e-5));
    assert_true(ax_allclose("dw across threads", gw[0], gw[1], 1e-4, 1e-5));
    for (int r = 0; r < 2; r++) ax_tensor_free(y[r]), ax_tensor_free(gx[r]), ax_tensor_free(gw[r]);
    ax_tensor_free(x), ax_tensor_free(w), ax_tensor_free(b);
}

/* Several threads share the primitive cache and buffer pool: each runs
 * forward and backward kernels on two geometries and must reproduce the
 * single-threaded results exactly. */
typedef struct conv_job {
    const conv_case *c;
    const ax_tensor *x, *w, *b, *dy, *want_y, *want_dw;
    int threads, ok;
} conv_job;

static void *conv_worker(void *arg) {
    conv_job *j = arg;
    const ax_kernels *k = ax_cpu_kernels();
    ax_conv_params p = case_params(j->c);
    ax_set_num_threads(j->threads); /* OpenMP's count is per thread: match the reference's */
    j->ok = 1;
    for (int it = 0; it < 4 && j->ok; it++) {
        ax_tensor *y = NULL, *dw = NULL;
        j->ok = run_op(j->c, &y, j->x, j->w, j->b) == AX_OK &&
                ax_tensor_zeros(&dw, 5, j->w->shape, AX_DTYPE_F32) == AX_OK &&
                (j->c->transposed ? k->conv_transpose3d_backward : k->conv3d_backward)(NULL, dw, NULL, j->dy, j->x,
                                                                                      j->w, &p) == AX_OK;
        if (j->ok && memcmp(ax_tensor_data(y), ax_tensor_data(j->want_y), ax_tensor_nbytes(y))) {
            j->ok = 0;
            ax_allclose("concurrent y", y, j->want_y, 0, 0);
        }
        if (j->ok && memcmp(ax_tensor_data(dw), ax_tensor_data(j->want_dw), ax_tensor_nbytes(dw))) {
            j->ok = 0;
            ax_allclose("concurrent dw", dw, j->want_dw, 0, 0);
        }
        ax_tensor_free(y);
        ax_tensor_free(dw);
    }
    return NULL;
}

static void test_concurrent_calls(void **state) {
    (void)state;
    const conv_case *cases[2] = {&CONV_CASES[6], &CONV_CASES[13]};
    ax_tensor *own[2][6];
    conv_job jobs[4];
    for (int i = 0; i < 2; i++) {
        const conv_case *c = cases[i];
        int64_t xs[5], ws[5], ys[5];
        case_shapes(c, xs, ws, ys);
        ax_tensor *x, *w, *b, *y, *dw, *dy = ax_test_randn(5, ys, 3, 1, 0, false);
        case_inputs(c, 50 + i, false, &x, &w, &b);
        OK(run_op(c, &y, x, w, b));
        OK(ax_tensor_zeros(&dw, 5, ws, AX_DTYPE_F32));
        ax_conv_params p = case_params(c);
        OK((c->transposed ? ax_cpu_kernels()->conv_transpose3d_backward : ax_cpu_kernels()->conv3d_backward)(
            NULL, dw, NULL, dy, x, w, &p));
        ax_tensor *t[6] = {x, w, b, dy, y, dw};
        memcpy(own[i], t, sizeof t);
        for (int r = 0; r < 2; r++) jobs[2 * i + r] = (conv_job){c, x, w, b, dy, y, dw, ax_num_threads(), 0};
    }
    pthread_t th[4];
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_create(&th[i], NULL, conv_worker, &jobs[i]), 0);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) assert_true(jobs[i].ok);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 6; j++) ax_tensor_free(own[i][j]);
}

/* ---- errors -------------------------------------------------------------------------------- */

static void expect_error(ax_status st, const char *a, const char *b) {
    assert_int_equal(st, AX_ERR_INVALID);
    const char *m = ax_error_message();
    if (!strstr(m, a) || (b && !strstr(m, b))) fail_msg("message '%s' lacks '%s' / '%s'", m, a, b ? b : "");
}

static void test_errors(void **state) {
    (void)state;
    ax_tensor *x = ax_test_randn(5, (int64_t[]){2, 4, 5, 5, 5}, 1, 1, 0, false);
    ax_tensor *w = ax_test_randn(5, (int64_t[]){6, 2, 3, 3, 3}, 2, 1, 0, false);
    ax_tensor *b = ax_test_randn(1, (int64_t[]){6}, 3, 1, 0, false);
    ax_tensor *x4 = ax_test_randn(4, (int64_t[]){2, 4, 5, 5}, 1, 1, 0, false);
    ax_tensor *w4 = ax_test_randn(4, (int64_t[]){6, 2, 3, 3}, 1, 1, 0, false);
    ax_tensor *b2 = ax_test_randn(1, (int64_t[]){5}, 3, 1, 0, false);
    ax_tensor *x0, *xi, *wh, *y = (ax_tensor *)1;
    OK(ax_tensor_zeros(&x0, 5, (int64_t[]){2, 4, 0, 5, 5}, AX_DTYPE_F32));
    OK(ax_tensor_zeros(&xi, 5, (int64_t[]){2, 4, 5, 5, 5}, AX_DTYPE_I32));
    OK(ax_tensor_to_dtype(&wh, w, AX_DTYPE_BF16));
    ax_conv_params p = ax_conv_params_default();
    p.groups = 2;
    ax_conv_params q;

    expect_error(ax_conv3d(&y, NULL, w, b, &p), "ax_conv3d: x is NULL", NULL);
    assert_null(y);
    expect_error(ax_conv3d(&y, x, NULL, b, &p), "ax_conv3d: w is NULL", NULL);
    expect_error(ax_conv3d(NULL, x, w, b, &p), "ax_conv3d: y", "NULL");
    expect_error(ax_conv3d(&y, xi, w, b, &p), "ax_conv3d: x must be a floating tensor", "i32");
    expect_error(ax_conv3d(&y, x, wh, b, &p), "ax_conv3d: x (f32), w (bf16) and b (f32) must share one dtype",
                 NULL);
    expect_error(ax_conv3d(&y, x4, w, b, &p), "ax_conv3d: x must be 5-D [N, C, D, H, W], got [2, 4, 5, 5]", NULL);
    expect_error(ax_conv3d(&y, x, w4, b, &p), "ax_conv3d: w must be 5-D [Co, Ci/groups, kD, kH, kW]",
                 "[6, 2, 3, 3]");
    expect_error(ax_conv_transpose3d(&y, x, w4, b, &p), "ax_conv_transpose3d: w must be 5-D [Ci, Co/groups",
                 "[6, 2, 3, 3]");
    expect_error(ax_conv3d(&y, x0, w, b, &p), "ax_conv3d: x [2, 4, 0, 5, 5] has an empty", NULL);
    expect_error(ax_conv3d(&y, x, w, b, NULL),
                 "ax_conv3d: x [2, 4, 5, 5, 5] has 4 channels but w [6, 2, 3, 3, 3] with groups 1 wants 2", NULL);
    q = p, q.groups = 3;
    expect_error(ax_conv3d(&y, x, w, b, &q), "ax_conv3d: x [2, 4, 5, 5, 5]: in channels 4 are not divisible by groups 3",
                 NULL);
    q = p, q.groups = 4;
    {
        ax_tensor *w6 = ax_test_randn(5, (int64_t[]){6, 1, 3, 3, 3}, 2, 1, 0, false);
        expect_error(ax_conv3d(&y, x, w6, b, &q), "ax_conv3d: w [6, 1, 3, 3, 3]: out channels 6",
                     "not divisible by groups 4");
        ax_tensor_free(w6);
    }
    q = p, q.groups = 0;
    expect_error(ax_conv3d(&y, x, w, b, &q), "ax_conv3d: groups must be >= 1, got 0", NULL);
    q = p, q.stride[1] = 0;
    expect_error(ax_conv3d(&y, x, w, b, &q), "ax_conv3d: stride must be >= 1 in every dim, got [1, 0, 1]", NULL);
    q = p, q.padding[2] = -1;
    expect_error(ax_conv3d(&y, x, w, b, &q), "ax_conv3d: padding must be >= 0 in every dim, got [0, 0, -1]", NULL);
    q = p, q.dilation[0] = 0;
    expect_error(ax_conv3d(&y, x, w, b, &q), "ax_conv3d: dilation must be >= 1 in every dim, got [0, 1, 1]", NULL);
    q = p, q.output_padding[0] = 1;
    expect_error(ax_conv3d(&y, x, w, b, &q), "ax_conv3d: output_padding [1, 0, 0] is for transposed convolution",
                 NULL);
    expect_error(ax_conv3d(&y, x, w, b2, &p), "ax_conv3d: b [5] must be [Co] = [6]", "w [6, 2, 3, 3, 3]");
    q = p, q.dilation[2] = 3;
    expect_error(ax_conv3d(&y, x, w, b, &q), "ax_conv3d: output size -1 < 1 in spatial dim 2",
                 "dilation [1, 1, 3]");

    /* transposed: w [Ci, Co/groups, k...] */
    ax_tensor *tw = ax_test_randn(5, (int64_t[]){4, 3, 2, 2, 2}, 2, 1, 0, false); /* Co = 3 * groups */
    expect_error(ax_conv_transpose3d(&y, x, w, NULL, &p),
                 "ax_conv_transpose3d: x [2, 4, 5, 5, 5] has 4 channels but w [6, 2, 3, 3, 3] (layout [Ci, "
                 "Co/groups, k...]) wants 6",
                 NULL);
    q = p, q.groups = 3;
    expect_error(ax_conv_transpose3d(&y, x, tw, NULL, &q),
                 "ax_conv_transpose3d: x [2, 4, 5, 5, 5]: in channels 4 are not divisible by groups 3", NULL);
    expect_error(ax_conv_transpose3d(&y, x, tw, b2, &p), "ax_conv_transpose3d: b [5] must be [Co] = [6]", NULL);
    q = p, q.output_padding[1] = 2, q.stride[1] = 2;
    expect_error(ax_conv_transpose3d(&y, x, tw, NULL, &q),
                 "ax_conv_transpose3d: output_padding [0, 2, 0] must be smaller than stride [1, 2, 1] or dilation "
                 "[1, 1, 1]",
                 NULL);
    q = p, q.output_padding[0] = -1;
    expect_error(ax_conv_transpose3d(&y, x, tw, NULL, &q), "ax_conv_transpose3d: output_padding must be >= 0",
                 "[-1, 0, 0]");
    q = p, q.padding[0] = 4;
    expect_error(ax_conv_transpose3d(&y, x, tw, NULL, &q), "ax_conv_transpose3d: output size -2 < 1 in spatial dim 0",
                 "padding [4, 0, 0]");
    assert_null(y);

    /* the transposed op accepts these (sanity: the messages above are not spurious) */
    OK(ax_conv_transpose3d(&y, x, tw, NULL, &p));
    assert_int_equal(y->shape[1], 6);
    assert_int_equal(y->shape[2], 6);
    ax_tensor_free(y);
    ax_tensor *all[] = {x, w, b, x4, w4, b2, x0, xi, wh, tw};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

/* ---- PyTorch parity -------------------------------------------------------------------------- */

static ax_safetensors *fixtures;

static int open_fixtures(void **state) {
    (void)state;
    const char *path = AX_TEST_FIXTURES "/conv/conv.safetensors";
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
    ax_tensor *t = NULL, *u;
    if (ax_safetensors_get(fixtures, key, &t) != AX_OK) fprintf(stderr, "%s\n", ax_error_message());
    assert_non_null(t);
    OK(ax_add_scalar(&u, t, 0));
    ax_tensor_free(t);
    if (grad) OK(ax_tensor_set_requires_grad(u, true));
    return u;
}

/* The geometry of make_conv.py's cases. */
static const conv_case TORCH_CASES[] = {
    {"basic", false, 2, 3, 4, {6, 5, 4}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 1, true},
    {"resenc", false, 2, 4, 8, {7, 6, 5}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 1, false},
    {"grouped", false, 1, 4, 6, {6, 7, 5}, {3, 1, 2}, {1, 2, 1}, {2, 0, 1}, {2, 1, 2}, {0, 0, 0}, 2, true},
    {"upsample", true, 2, 8, 4, {3, 4, 2}, {2, 2, 2}, {2, 2, 2}, {0, 0, 0}, {1, 1, 1}, {0, 0, 0}, 1, true},
    {"tgrouped", true, 2, 4, 6, {3, 2, 4}, {3, 3, 2}, {2, 2, 1}, {1, 0, 1}, {1, 1, 2}, {1, 1, 0}, 2, true},
};

static void parity_case(const conv_case *c) {
    ax_tensor *x = fx(c->name, "x", true), *w = fx(c->name, "w", true), *gy = fx(c->name, "gy", false);
    ax_tensor *b = c->bias ? fx(c->name, "b", true) : NULL, *y;
    OK(run_op(c, &y, x, w, b));
    OK(ax_backward(y, gy));
    const char *outs[] = {"y", "dx", "dw", "db"};
    const ax_tensor *got[] = {y, x->grad, w->grad, b ? b->grad : NULL};
    for (int i = 0; i < (b ? 4 : 3); i++) {
        char what[64];
        ax_tensor *want = fx(c->name, outs[i], false);
        snprintf(what, sizeof what, "torch %s.%s", c->name, outs[i]);
        assert_true(ax_allclose(what, got[i], want, 1e-4, 1e-4));
        ax_tensor_free(want);
    }
    ax_tensor *all[] = {x, w, b, gy, y};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

static void test_torch_conv(void **state) {
    (void)state;
    for (int i = 0; i < 3; i++) parity_case(&TORCH_CASES[i]);
}

static void test_torch_conv_transpose(void **state) {
    (void)state;
    for (int i = 3; i < 5; i++) parity_case(&TORCH_CASES[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_vs_reference),
        cmocka_unit_test(test_conv_transpose_vs_reference),
        cmocka_unit_test(test_gradcheck_conv),
        cmocka_unit_test(test_gradcheck_conv_transpose),
        cmocka_unit_test(test_gradcheck_non_contiguous),
        cmocka_unit_test(test_non_contiguous_forward),
        cmocka_unit_test(test_partial_grads),
        cmocka_unit_test(test_half_dtypes),
        cmocka_unit_test(test_empty_batch),
        cmocka_unit_test(test_default_params),
        cmocka_unit_test(test_kernel_contract),
        cmocka_unit_test(test_buffer_reuse),
        cmocka_unit_test(test_deterministic_and_cache),
        cmocka_unit_test(test_thread_counts),
        cmocka_unit_test(test_concurrent_calls),
        cmocka_unit_test(test_errors),
    };
    const struct CMUnitTest parity[] = {
        cmocka_unit_test(test_torch_conv),
        cmocka_unit_test(test_torch_conv_transpose),
    };
    int failed = cmocka_run_group_tests_name("conv", tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("conv_torch", parity, open_fixtures, close_fixtures);
    return failed;
}
