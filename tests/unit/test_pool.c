/* Pooling, adaptive average pooling, interpolation and padding: forward
 * values against naive double references (odd sizes, strides, padding,
 * ceil_mode, count_include_pad, align_corners, 1-D/2-D/3-D), finite
 * difference gradients (contiguous and permuted inputs), NaN / -inf / tie
 * rules of max pooling, bf16 and integer inputs, bit-identical results for
 * 1 and 4 threads, every error message, and PyTorch parity from the
 * fixtures written by tests/fixtures/pool/make_pool.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/pool.h"
#include "axon/safetensors.h"
#include "gradcheck.h"

#define S(...) (int64_t[]){__VA_ARGS__}

/* ---- helpers ---------------------------------------------------------------------- */

static void ax_expect_error(ax_status st, ax_status want, const char *text) {
    assert_int_equal(st, want);
    if (!strstr(ax_error_message(), text)) fail_msg("message \"%s\" lacks \"%s\"", ax_error_message(), text);
}

static int64_t ax_numel_of(int nd, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= shape[i];
    return n;
}

/* An f32 tensor from doubles (C order). */
static ax_tensor *ax_from_doubles(int nd, const int64_t *shape, const double *v) {
    ax_tensor *t;
    if (ax_tensor_empty(&t, nd, shape, AX_DTYPE_F32) != AX_OK) return NULL;
    for (int64_t i = 0; i < ax_numel_of(nd, shape); i++) ax_tensor_set(t, i, v[i]);
    return t;
}

static void ax_expect_close(const char *what, const ax_tensor *got, int nd, const int64_t *shape, const double *want,
                            double atol, double rtol) {
    ax_tensor *w = ax_from_doubles(nd, shape, want);
    assert_non_null(w);
    bool ok = ax_allclose(what, got, w, atol, rtol);
    ax_tensor_free(w);
    assert_true(ok);
}

/* Distinct values k * 0.1 - offset in a scrambled order: no ties, and no
 * two within a gradcheck eps, so max pooling is smooth around them. */
static ax_tensor *ax_distinct(int nd, const int64_t *shape, uint64_t seed, bool grad) {
    ax_tensor *t;
    if (ax_tensor_empty(&t, nd, shape, AX_DTYPE_F32) != AX_OK) return NULL;
    int64_t n = ax_numel_of(nd, shape);
    /* i -> (a * i + b) mod n is a permutation when gcd(a, n) = 1 */
    int64_t a = 7919;
    while (n > 1) {
        int64_t x = a, y = n;
        while (y) {
            int64_t r = x % y;
            x = y;
            y = r;
        }
        if (x == 1) break;
        a += 2;
    }
    for (int64_t i = 0; i < n; i++) ax_tensor_set(t, i, (double)((a * i + (int64_t)seed) % n) * 0.1 - 0.05 * (double)n);
    if (grad) ax_tensor_set_requires_grad(t, true);
    return t;
}

/* ---- naive references (double) ---------------------------------------------------- */

typedef struct ax_pool_case {
    int64_t shape[5], k[3], s[3], p[3];
    bool ceil;
} ax_pool_case;

static int64_t ax_ref_out(int64_t in, int64_t k, int64_t s, int64_t p, bool ceil_mode) {
    double q = (double)(in + 2 * p - k) / (double)s;
    int64_t out = (int64_t)(ceil_mode ? ceil(q) : floor(q)) + 1;
    /* the last window must start inside the input or its left padding */
    if (ceil_mode && (out - 1) * s >= in + p) out--;
    return out;
}

/* Max or average over each window, walking window positions directly. */
static void ax_ref_pool(const ax_tensor *x, const ax_pool_case *c, bool max, bool cip, int64_t out[3], double *y,
                        int64_t *idx) {
    const int64_t *sh = c->shape;
    for (int i = 0; i < 3; i++) out[i] = ax_ref_out(sh[2 + i], c->k[i], c->s[i], c->p[i], c->ceil);
    int64_t o = 0;
    for (int64_t nc = 0; nc < sh[0] * sh[1]; nc++)
        for (int64_t od = 0; od < out[0]; od++)
            for (int64_t oh = 0; oh < out[1]; oh++)
                for (int64_t ow = 0; ow < out[2]; ow++, o++) {
                    int64_t pos[3] = {od, oh, ow};
                    double best = -INFINITY, sum = 0;
                    int64_t bi = -1, inside = 1, padded = 1;
                    for (int i = 0; i < 3; i++) {
                        int64_t st = pos[i] * c->s[i] - c->p[i], n_in = 0, n_pad = 0;
                        for (int64_t q = st; q < st + c->k[i]; q++) {
                            n_in += q >= 0 && q < sh[2 + i];
                            n_pad += q >= -c->p[i] && q < sh[2 + i] + c->p[i];
                        }
                        inside *= n_in;
                        padded *= n_pad;
                    }
                    for (int64_t a = 0; a < c->k[0]; a++)
                        for (int64_t b = 0; b < c->k[1]; b++)
                            for (int64_t e = 0; e < c->k[2]; e++) {
                                int64_t d = od * c->s[0] - c->p[0] + a, h = oh * c->s[1] - c->p[1] + b,
                                        w = ow * c->s[2] - c->p[2] + e;
                                if (d < 0 || d >= sh[2] || h < 0 || h >= sh[3] || w < 0 || w >= sh[4]) continue;
                                int64_t flat = (d * sh[3] + h) * sh[4] + w;
                                double v = ax_tensor_get(x, nc * sh[2] * sh[3] * sh[4] + flat);
                                sum += v;
                                if (bi < 0 || v > best || isnan(v)) best = v, bi = flat;
                            }
                    y[o] = max ? best : sum / (double)(cip ? padded : inside);
                    if (idx) idx[o] = bi;
                }
}

static void ax_ref_adaptive(const ax_tensor *x, const int64_t *sh, const int64_t out[3], double *y) {
    int64_t o = 0;
    for (int64_t nc = 0; nc < sh[0] * sh[1]; nc++)
        for (int64_t od = 0; od < out[0]; od++)
            for (int64_t oh = 0; oh < out[1]; oh++)
                for (int64_t ow = 0; ow < out[2]; ow++, o++) {
                    int64_t pos[3] = {od, oh, ow}, lo[3], hi[3];
                    for (int i = 0; i < 3; i++) {
                        lo[i] = (int64_t)floor((double)(pos[i] * sh[2 + i]) / (double)out[i]);
                        hi[i] = (int64_t)ceil((double)((pos[i] + 1) * sh[2 + i]) / (double)out[i]);
                    }
                    double sum = 0;
                    for (int64_t d = lo[0]; d < hi[0]; d++)
                        for (int64_t h = lo[1]; h < hi[1]; h++)
                            for (int64_t w = lo[2]; w < hi[2]; w++)
                                sum += ax_tensor_get(x, ((nc * sh[2] + d) * sh[3] + h) * sh[4] + w);
                    y[o] = sum / (double)((hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2]));
                }
}

/* Source taps of output o along one axis (double math). */
static int ax_ref_taps(int64_t o, int64_t in, int64_t out, ax_interp_mode mode, bool ac, int64_t *i, double *w) {
    if (mode == AX_INTERP_NEAREST) {
        i[0] = (o * in) / out; /* floor(o * in / out) */
        if (i[0] > in - 1) i[0] = in - 1;
        w[0] = 1;
        return 1;
    }
    double src = ac ? (out > 1 ? (double)o * (double)(in - 1) / (double)(out - 1) : 0)
                    : ((double)o + 0.5) * (double)in / (double)out - 0.5;
    if (src < 0) src = 0;
    int64_t f = (int64_t)floor(src);
    if (f > in - 1) f = in - 1;
    double lam = src - (double)f;
    i[0] = f;
    i[1] = f < in - 1 ? f + 1 : f;
    w[0] = 1 - lam;
    w[1] = lam;
    return 2;
}

/* y = interpolate(x) for x [N, C, *sp] (sp spatial dims, C order). */
static void ax_ref_interp(const ax_tensor *x, int sp, const int64_t *size, ax_interp_mode mode, bool ac, double *y) {
    int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1};
    for (int i = 0; i < sp; i++) {
        in[3 - sp + i] = x->shape[2 + i];
        out[3 - sp + i] = size[i];
    }
    int64_t o = 0, planes = x->shape[0] * x->shape[1];
    for (int64_t nc = 0; nc < planes; nc++)
        for (int64_t od = 0; od < out[0]; od++)
            for (int64_t oh = 0; oh < out[1]; oh++)
                for (int64_t ow = 0; ow < out[2]; ow++, o++) {
                    int64_t id[2] = {0, 0}, ih[2] = {0, 0}, iw[2];
                    double wd[2] = {1, 0}, wh[2] = {1, 0}, ww[2];
                    int nd = 1, nh = 1, nw = ax_ref_taps(ow, in[2], out[2], mode, ac, iw, ww);
                    if (sp >= 2) nh = ax_ref_taps(oh, in[1], out[1], mode, ac, ih, wh);
                    if (sp >= 3) nd = ax_ref_taps(od, in[0], out[0], mode, ac, id, wd);
                    double v = 0;
                    for (int a = 0; a < nd; a++)
                        for (int b = 0; b < nh; b++)
                            for (int e = 0; e < nw; e++)
                                v += wd[a] * wh[b] * ww[e] *
                                     ax_tensor_get(x, ((nc * in[0] + id[a]) * in[1] + ih[b]) * in[2] + iw[e]);
                    y[o] = v;
                }
}

/* Pad reference: walk the output, fold an index back by mirroring or
 * clamping one step at a time. */
static int64_t ax_ref_pad_index(int64_t i, int64_t in, ax_pad_mode mode) {
    if (mode == AX_PAD_CONSTANT) return i >= 0 && i < in ? i : -1;
    if (mode == AX_PAD_REPLICATE) return i < 0 ? 0 : i >= in ? in - 1 : i;
    while (i < 0 || i >= in) i = i < 0 ? -i : 2 * (in - 1) - i;
    return i;
}

static void ax_ref_pad(const ax_tensor *x, int n_pads, const int64_t *pads, ax_pad_mode mode, double value,
                       int64_t *shape, double *y) {
    int nd = x->ndim, n = n_pads / 2;
    int64_t before[AX_MAX_DIMS] = {0};
    for (int d = 0; d < nd; d++) shape[d] = x->shape[d];
    for (int j = 0; j < n; j++) {
        int d = nd - 1 - j;
        before[d] = pads[2 * j];
        shape[d] += pads[2 * j] + pads[2 * j + 1];
    }
    int64_t total = ax_numel_of(nd, shape);
    for (int64_t o = 0; o < total; o++) {
        int64_t r = o, src = 0, mul = 1;
        bool inside = true;
        for (int d = nd - 1; d >= 0; d--) {
            int64_t i = r % shape[d];
            r /= shape[d];
            int64_t s = ax_ref_pad_index(i - before[d], x->shape[d], mode);
            if (s < 0) inside = false;
            src += s * mul;
            mul *= x->shape[d];
        }
        y[o] = inside ? ax_tensor_get(x, src) : value;
    }
}

/* ---- forward values ------------------------------------------------------------------ */

static const ax_pool_case ax_pool_cases[] = {
    {{2, 3, 5, 6, 7}, {2, 2, 2}, {2, 2, 2}, {0, 0, 0}, false},
    {{2, 3, 5, 6, 7}, {2, 2, 2}, {2, 2, 2}, {0, 0, 0}, true},
    {{1, 2, 5, 6, 7}, {3, 2, 3}, {2, 1, 2}, {1, 1, 1}, false},
    {{1, 2, 5, 6, 7}, {3, 2, 3}, {2, 1, 2}, {1, 1, 1}, true},
    {{1, 1, 6, 6, 6}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, true}, /* last window reaches past in + pad */
    {{2, 1, 4, 9, 5}, {1, 3, 2}, {1, 2, 3}, {0, 1, 1}, true},
    {{1, 2, 7, 5, 6}, {4, 3, 5}, {3, 1, 2}, {2, 0, 2}, true},
    {{1, 1, 3, 3, 3}, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, false},
};

static void test_pool_forward(void **state) {
    (void)state;
    for (size_t ci = 0; ci < sizeof ax_pool_cases / sizeof ax_pool_cases[0]; ci++) {
        const ax_pool_case *c = &ax_pool_cases[ci];
        ax_tensor *x = ax_test_randn(5, c->shape, 10 + ci, 1, 0, false);
        int64_t out[3];
        int64_t n_out = c->shape[0] * c->shape[1];
        for (int i = 0; i < 3; i++) n_out *= ax_ref_out(c->shape[2 + i], c->k[i], c->s[i], c->p[i], c->ceil);
        double *want = malloc((size_t)n_out * sizeof(double));
        int64_t *widx = malloc((size_t)n_out * sizeof(int64_t));
        char what[64];

        ax_tensor *y, *idx;
        assert_int_equal(ax_max_pool3d(&y, &idx, x, c->k, c->s, c->p, c->ceil), AX_OK);
        ax_ref_pool(x, c, true, false, out, want, widx);
        int64_t oshape[5] = {c->shape[0], c->shape[1], out[0], out[1], out[2]};
        snprintf(what, sizeof what, "max_pool case %zu", ci);
        ax_expect_close(what, y, 5, oshape, want, 0, 0);
        assert_int_equal(idx->dtype, AX_DTYPE_I64);
        assert_true(ax_tensor_same_shape(idx, y));
        for (int64_t i = 0; i < n_out; i++) assert_int_equal((int64_t)ax_tensor_get(idx, i), widx[i]);
        ax_tensor_free(y);
        ax_tensor_free(idx);

        for (int cip = 0; cip < 2; cip++) {
            assert_int_equal(ax_avg_pool3d(&y, x, c->k, c->s, c->p, c->ceil, cip), AX_OK);
            ax_ref_pool(x, c, false, cip, out, want, NULL);
            snprintf(what, sizeof what, "avg_pool case %zu cip %d", ci, cip);
            ax_expect_close(what, y, 5, oshape, want, 1e-6, 1e-5);
            ax_tensor_free(y);
        }
        free(want);
        free(widx);
        ax_tensor_free(x);
    }
    /* default stride (= kernel) and padding (0) */
    ax_tensor *x = ax_test_randn(5, S(1, 1, 4, 4, 4), 3, 1, 0, false), *a, *b;
    assert_int_equal(ax_max_pool3d(&a, NULL, x, S(2, 2, 2), NULL, NULL, false), AX_OK);
    assert_int_equal(ax_max_pool3d(&b, NULL, x, S(2, 2, 2), S(2, 2, 2), S(0, 0, 0), false), AX_OK);
    assert_true(ax_allclose("defaults", a, b, 0, 0));
    ax_tensor_free(a);
    ax_tensor_free(b);
    ax_tensor_free(x);
}

static void test_max_pool_special_values(void **state) {
    (void)state;
    /* one window of 6 along W: NaNs at 1 and 3 -> the last NaN wins */
    double v[6] = {1, NAN, 3, NAN, 2, 0};
    ax_tensor *x = ax_from_doubles(5, S(1, 1, 1, 1, 6), v), *y, *idx;
    assert_int_equal(ax_max_pool3d(&y, &idx, x, S(1, 1, 6), NULL, NULL, false), AX_OK);
    assert_true(isnan(ax_tensor_get(y, 0)));
    assert_int_equal((int64_t)ax_tensor_get(idx, 0), 3);
    ax_tensor_free(x);
    ax_tensor_free(y);
    ax_tensor_free(idx);
    /* all -inf: the first element of the window */
    double m[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    x = ax_from_doubles(5, S(1, 1, 1, 1, 4), m);
    assert_int_equal(ax_max_pool3d(&y, &idx, x, S(1, 1, 2), NULL, NULL, false), AX_OK);
    assert_int_equal((int64_t)ax_tensor_get(idx, 0), 0);
    assert_int_equal((int64_t)ax_tensor_get(idx, 1), 2);
    assert_true(isinf(ax_tensor_get(y, 1)));
    ax_tensor_free(x);
    ax_tensor_free(y);
    ax_tensor_free(idx);
    /* ties: the first in (d, h, w) order; padding never wins on negatives */
    double t[8] = {-5, -1, -1, -3, -1, -2, -2, -2};
    x = ax_from_doubles(5, S(1, 1, 2, 2, 2), t);
    assert_int_equal(ax_max_pool3d(&y, &idx, x, S(2, 2, 2), S(1, 1, 1), S(1, 1, 1), false), AX_OK);
    /* output [3, 3, 3]; the centre-ish output (1, 1, 1) sees everything */
    assert_float_equal(ax_tensor_get(y, 13), -1, 0);
    assert_int_equal((int64_t)ax_tensor_get(idx, 13), 1);
    assert_float_equal(ax_tensor_get(y, 0), -5, 0); /* the corner: one real element */
    for (int64_t i = 0; i < 27; i++) assert_true(ax_tensor_get(y, i) < 0);
    ax_tensor_free(x);
    ax_tensor_free(y);
    ax_tensor_free(idx);
}

static void test_adaptive_forward(void **state) {
    (void)state;
    const int64_t shape[5] = {2, 2, 5, 7, 3};
    const int64_t outs[][3] = {{3, 4, 5}, {1, 1, 1}, {5, 7, 3}, {2, 3, 1}, {10, 2, 6}};
    ax_tensor *x = ax_test_randn(5, shape, 21, 1, 0, false);
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
        int64_t oshape[5] = {2, 2, outs[i][0], outs[i][1], outs[i][2]};
        double *want = malloc((size_t)ax_numel_of(5, oshape) * sizeof(double));
        ax_ref_adaptive(x, shape, outs[i], want);
        ax_tensor *y;
        assert_int_equal(ax_adaptive_avg_pool3d(&y, x, outs[i]), AX_OK);
        ax_expect_close("adaptive_avg_pool3d", y, 5, oshape, want, 1e-6, 1e-5);
        ax_tensor_free(y);
        free(want);
    }
    ax_tensor_free(x);
}

typedef struct ax_interp_case {
    int nd;
    int64_t shape[5], size[3];
} ax_interp_case;

static const ax_interp_case ax_interp_cases[] = {
    {5, {1, 2, 3, 4, 5}, {5, 7, 3}},   /* up, up, down */
    {5, {2, 1, 4, 3, 6}, {4, 6, 12}},  /* same, 2x, 2x */
    {5, {1, 1, 6, 5, 7}, {3, 2, 4}},   /* down */
    {5, {1, 1, 1, 2, 3}, {3, 1, 5}},   /* size-1 dims both ways */
    {4, {2, 1, 4, 5}, {7, 3}},
    {4, {1, 2, 3, 3}, {6, 9}},
    {3, {1, 2, 5}, {9}},
    {3, {2, 1, 7}, {2}},
    {3, {1, 1, 4}, {4}},
};

static void test_interpolate_forward(void **state) {
    (void)state;
    for (size_t ci = 0; ci < sizeof ax_interp_cases / sizeof ax_interp_cases[0]; ci++) {
        const ax_interp_case *c = &ax_interp_cases[ci];
        ax_tensor *x = ax_test_randn(c->nd, c->shape, 30 + ci, 1, 0, false);
        int64_t oshape[5] = {c->shape[0], c->shape[1]};
        for (int i = 0; i < c->nd - 2; i++) oshape[2 + i] = c->size[i];
        double *want = malloc((size_t)ax_numel_of(c->nd, oshape) * sizeof(double));
        for (int m = 0; m < 3; m++) {
            ax_interp_mode mode = m == 0 ? AX_INTERP_NEAREST : AX_INTERP_TRILINEAR;
            bool ac = m == 2;
            ax_tensor *y;
            assert_int_equal(ax_interpolate(&y, x, c->size, mode, ac), AX_OK);
            ax_ref_interp(x, c->nd - 2, c->size, mode, ac, want);
            char what[64];
            snprintf(what, sizeof what, "interpolate case %zu mode %d", ci, m);
            ax_expect_close(what, y, c->nd, oshape, want, 1e-5, 1e-5);
            ax_tensor_free(y);
        }
        free(want);
        ax_tensor_free(x);
    }
    /* the scale variant: 2x and 0.5x are the sizes they give */
    ax_tensor *x = ax_test_randn(5, S(1, 2, 4, 6, 8), 40, 1, 0, false), *a, *b;
    assert_int_equal(ax_interpolate_scale(&a, x, (double[]){2, 0.5, 1.5}, AX_INTERP_TRILINEAR, false), AX_OK);
    assert_int_equal(ax_interpolate(&b, x, S(8, 3, 12), AX_INTERP_TRILINEAR, false), AX_OK);
    assert_true(ax_allclose("interpolate_scale", a, b, 0, 0));
    ax_tensor_free(a);
    ax_tensor_free(b);
    ax_tensor_free(x);
}

typedef struct ax_pad_case {
    int nd;
    int64_t shape[5];
    int n_pads;
    int64_t pads[6];
    ax_pad_mode mode;
} ax_pad_case;

static const ax_pad_case ax_pad_cases[] = {
    {5, {1, 2, 3, 4, 5}, 6, {1, 2, 0, 3, 2, 1}, AX_PAD_CONSTANT},
    {5, {1, 2, 3, 4, 5}, 6, {1, 2, 0, 3, 2, 1}, AX_PAD_REFLECT},
    {5, {1, 2, 3, 4, 5}, 6, {4, 4, 3, 3, 2, 2}, AX_PAD_REFLECT},
    {5, {1, 2, 3, 4, 5}, 6, {1, 2, 0, 3, 2, 1}, AX_PAD_REPLICATE},
    {5, {2, 1, 3, 4, 5}, 6, {6, 1, 5, 0, 0, 4}, AX_PAD_REPLICATE},
    {5, {1, 2, 3, 4, 5}, 6, {-1, 2, 1, -2, -1, 0}, AX_PAD_CONSTANT}, /* cropping */
    {5, {1, 2, 3, 4, 5}, 6, {-1, 2, 1, -2, -1, 0}, AX_PAD_REFLECT},
    {5, {1, 2, 3, 4, 5}, 6, {-2, 3, 2, -1, 0, -1}, AX_PAD_REPLICATE},
    {4, {2, 3, 4, 5}, 4, {2, 1, 1, 3}, AX_PAD_REFLECT},
    {3, {2, 3, 5}, 2, {3, 4}, AX_PAD_REFLECT},
    {3, {2, 3, 5}, 6, {1, 0, 2, 1, 1, 1}, AX_PAD_CONSTANT}, /* pads N and C too */
    {2, {3, 4}, 2, {0, 0}, AX_PAD_REPLICATE},
};

static void test_pad_forward(void **state) {
    (void)state;
    for (size_t ci = 0; ci < sizeof ax_pad_cases / sizeof ax_pad_cases[0]; ci++) {
        const ax_pad_case *c = &ax_pad_cases[ci];
        ax_tensor *x = ax_test_randn(c->nd, c->shape, 50 + ci, 1, 0, false), *y;
        int64_t oshape[5];
        double *want = malloc(4096 * sizeof(double));
        ax_ref_pad(x, c->n_pads, c->pads, c->mode, 0.25, oshape, want);
        assert_true(ax_numel_of(c->nd, oshape) <= 4096);
        assert_int_equal(ax_pad(&y, x, c->n_pads, c->pads, c->mode, 0.25), AX_OK);
        char what[64];
        snprintf(what, sizeof what, "pad case %zu", ci);
        ax_expect_close(what, y, c->nd, oshape, want, 0, 0);
        ax_tensor_free(y);
        ax_tensor_free(x);
        free(want);
    }
    /* a hand-written reflection: [0 1 2 3 4] with (2, 3) */
    double v[5] = {0, 1, 2, 3, 4}, r[10] = {2, 1, 0, 1, 2, 3, 4, 3, 2, 1}, p[10] = {0, 0, 0, 1, 2, 3, 4, 4, 4, 4};
    ax_tensor *x = ax_from_doubles(2, S(1, 5), v), *y;
    assert_int_equal(ax_pad(&y, x, 2, S(2, 3), AX_PAD_REFLECT, 0), AX_OK);
    ax_expect_close("reflect [0..4]", y, 2, S(1, 10), r, 0, 0);
    ax_tensor_free(y);
    assert_int_equal(ax_pad(&y, x, 2, S(2, 3), AX_PAD_REPLICATE, 0), AX_OK);
    ax_expect_close("replicate [0..4]", y, 2, S(1, 10), p, 0, 0);
    ax_tensor_free(y);
    ax_tensor_free(x);
}

/* bf16 in, bf16 out (computed in f32); gradients come back in bf16. */
static void test_bf16(void **state) {
    (void)state;
    ax_tensor *x32 = ax_test_randn(5, S(1, 2, 4, 5, 6), 60, 1, 0, false), *xb, *xr, *yb, *y32, *yr;
    assert_int_equal(ax_tensor_to_dtype(&xb, x32, AX_DTYPE_BF16), AX_OK);
    assert_int_equal(ax_tensor_to_dtype(&xr, xb, AX_DTYPE_F32), AX_OK); /* the values bf16 holds */
    assert_int_equal(ax_tensor_set_requires_grad(xb, true), AX_OK);
    assert_int_equal(ax_max_pool3d(&yb, NULL, xb, S(2, 2, 3), NULL, NULL, true), AX_OK);
    assert_int_equal(yb->dtype, AX_DTYPE_BF16);
    assert_int_equal(ax_max_pool3d(&y32, NULL, xr, S(2, 2, 3), NULL, NULL, true), AX_OK);
    assert_int_equal(ax_tensor_to_dtype(&yr, yb, AX_DTYPE_F32), AX_OK);
    assert_true(ax_allclose("bf16 max pool", yr, y32, 0, 0));
    assert_int_equal(ax_backward(yb, yb), AX_OK);
    assert_non_null(xb->grad);
    assert_int_equal(xb->grad->dtype, AX_DTYPE_BF16);
    ax_tensor *objs[] = {x32, xb, xr, yb, y32, yr};
    for (size_t i = 0; i < 6; i++) ax_tensor_free(objs[i]);

    ax_tensor *x = ax_test_randn(4, S(1, 2, 5, 6), 61, 1, 0, false), *h, *a, *b, *ar;
    assert_int_equal(ax_tensor_to_dtype(&h, x, AX_DTYPE_BF16), AX_OK);
    assert_int_equal(ax_interpolate(&a, h, S(7, 4), AX_INTERP_TRILINEAR, true), AX_OK);
    assert_int_equal(a->dtype, AX_DTYPE_BF16);
    assert_int_equal(ax_interpolate(&b, x, S(7, 4), AX_INTERP_TRILINEAR, true), AX_OK);
    assert_int_equal(ax_tensor_to_dtype(&ar, a, AX_DTYPE_F32), AX_OK);
    assert_true(ax_allclose("bf16 bilinear", ar, b, 2e-2, 2e-2));
    ax_tensor *objs2[] = {x, h, a, b, ar};
    for (size_t i = 0; i < 5; i++) ax_tensor_free(objs2[i]);
}

/* Label maps: nearest resampling and padding of integer tensors are exact. */
static void test_integer_inputs(void **state) {
    (void)state;
    ax_tensor *lab, *l8, *y, *p;
    assert_int_equal(ax_tensor_arange(&lab, 0, 60, 1, AX_DTYPE_I64), AX_OK);
    ax_tensor *l5;
    assert_int_equal(ax_tensor_view(&l5, lab, 5, S(1, 1, 3, 4, 5)), AX_OK);
    assert_int_equal(ax_interpolate(&y, l5, S(6, 2, 5), AX_INTERP_NEAREST, false), AX_OK);
    assert_int_equal(y->dtype, AX_DTYPE_I64);
    double want[60];
    ax_ref_interp(l5, 3, S(6, 2, 5), AX_INTERP_NEAREST, false, want);
    for (int64_t i = 0; i < 60; i++) assert_int_equal((int64_t)ax_tensor_get(y, i), (int64_t)want[i]);
    ax_tensor_free(y);
    assert_int_equal(ax_tensor_to_dtype(&l8, l5, AX_DTYPE_U8), AX_OK);
    assert_int_equal(ax_pad(&p, l8, 2, S(1, 1), AX_PAD_CONSTANT, 255), AX_OK);
    assert_int_equal(p->dtype, AX_DTYPE_U8);
    assert_int_equal((int64_t)ax_tensor_get(p, 0), 255);
    assert_int_equal((int64_t)ax_tensor_get(p, 1), 0);
    assert_int_equal((int64_t)ax_tensor_get(p, 7), 255);
    ax_expect_error(ax_interpolate(&y, l5, S(6, 2, 5), AX_INTERP_TRILINEAR, false), AX_ERR_INVALID,
                    "ax_interpolate: x must be a floating tensor, got i64");
    ax_expect_error(ax_max_pool3d(&y, NULL, l5, S(1, 1, 1), NULL, NULL, false), AX_ERR_INVALID,
                    "ax_max_pool3d: x must be a floating tensor");
    ax_tensor_free(p);
    ax_tensor_free(l8);
    ax_tensor_free(l5);
    ax_tensor_free(lab);
}

/* Views: every op gives the same bits on a permuted or sliced view as on
 * its contiguous copy, and backward accepts a broadcast (stride 0)
 * upstream gradient such as sum()'s. */
static ax_status ax_view_op(int op, ax_tensor **y, const ax_tensor *x) {
    switch (op) {
    case 0: return ax_max_pool3d(y, NULL, x, S(3, 2, 3), S(2, 1, 2), S(1, 1, 1), true);
    case 1: return ax_avg_pool3d(y, x, S(3, 2, 3), S(2, 1, 2), S(1, 1, 1), true, false);
    case 2: return ax_adaptive_avg_pool3d(y, x, S(3, 4, 2));
    case 3: return ax_interpolate(y, x, S(7, 3, 9), AX_INTERP_TRILINEAR, false);
    case 4: return ax_interpolate(y, x, S(7, 3, 9), AX_INTERP_NEAREST, false);
    case 5: return ax_pad(y, x, 6, S(2, 1, 3, 0, 1, 2), AX_PAD_REFLECT, 0);
    default: return ax_pad(y, x, 6, S(2, -1, 3, 0, 1, 2), AX_PAD_CONSTANT, -1);
    }
}

static void test_views(void **state) {
    (void)state;
    ax_tensor *base = ax_test_randn(5, S(2, 3, 5, 4, 9), 70, 1, 0, false), *perm, *sl;
    assert_int_equal(ax_tensor_permute(&perm, base, (int[]){1, 0, 4, 3, 2}), AX_OK); /* [3, 2, 9, 4, 5] */
    assert_int_equal(ax_tensor_slice(&sl, perm, 2, 1, 9, 2), AX_OK);                  /* [3, 2, 4, 4, 5] */
    ax_tensor *views[2] = {perm, sl};
    for (int v = 0; v < 2; v++) {
        ax_tensor *c;
        assert_false(ax_tensor_is_contiguous(views[v]));
        assert_int_equal(ax_tensor_contiguous(&c, views[v]), AX_OK);
        for (int op = 0; op < 7; op++) {
            ax_tensor *a, *b;
            assert_int_equal(ax_view_op(op, &a, views[v]), AX_OK);
            assert_int_equal(ax_view_op(op, &b, c), AX_OK);
            char what[64];
            snprintf(what, sizeof what, "view %d op %d", v, op);
            assert_true(ax_allclose(what, a, b, 0, 0));
            ax_tensor_free(a);
            ax_tensor_free(b);
        }
        ax_tensor_free(c);
    }
    for (int op = 0; op < 7; op++) {
        ax_tensor *x1 = ax_test_randn(5, S(1, 2, 5, 4, 5), 71, 1, 0, true);
        ax_tensor *x2 = ax_test_randn(5, S(1, 2, 5, 4, 5), 71, 1, 0, true), *y1, *y2, *s, *ones;
        assert_int_equal(ax_view_op(op, &y1, x1), AX_OK);
        assert_int_equal(ax_sum(&s, y1, 0, NULL, false), AX_OK);
        assert_int_equal(ax_backward(s, NULL), AX_OK);
        assert_int_equal(ax_view_op(op, &y2, x2), AX_OK);
        assert_int_equal(ax_tensor_ones(&ones, y2->ndim, y2->shape, AX_DTYPE_F32), AX_OK);
        assert_int_equal(ax_backward(y2, ones), AX_OK);
        char what[64];
        snprintf(what, sizeof what, "sum grad op %d", op);
        assert_true(ax_allclose(what, x1->grad, x2->grad, 0, 0));
        ax_tensor *all[] = {x1, x2, y1, y2, s, ones};
        for (size_t i = 0; i < 6; i++) ax_tensor_free(all[i]);
    }
    ax_tensor_free(sl);
    ax_tensor_free(perm);
    ax_tensor_free(base);
}

/* ---- gradients ---------------------------------------------------------------------- */

typedef enum { G_MAX, G_AVG, G_ADAPT, G_INTERP, G_PAD } ax_gop;

typedef struct ax_gcase {
    ax_gop op;
    int64_t k[3], s[3], p[3], size[3];
    bool ceil, cip, ac;
    ax_interp_mode mode;
    int n_pads;
    int64_t pads[6];
    ax_pad_mode pmode;
    bool permuted; /* input 0 is stored with its last two dims swapped */
    bool unbatched;
} ax_gcase;

static ax_status ax_grun(ax_tensor **out, ax_tensor *const *in, void *ctx) {
    const ax_gcase *c = ctx;
    ax_tensor *x = in[0], *t = NULL;
    if (c->permuted) {
        if (ax_tensor_transpose(&t, in[0], -1, -2) != AX_OK) return ax_error_status();
        x = t;
    }
    ax_status st;
    switch (c->op) {
    case G_MAX: st = ax_max_pool3d(out, NULL, x, c->k, c->s, c->p, c->ceil); break;
    case G_AVG: st = ax_avg_pool3d(out, x, c->k, c->s, c->p, c->ceil, c->cip); break;
    case G_ADAPT: st = ax_adaptive_avg_pool3d(out, x, c->size); break;
    case G_INTERP: st = ax_interpolate(out, x, c->size, c->mode, c->ac); break;
    case G_PAD: st = ax_pad(out, x, c->n_pads, c->pads, c->pmode, 0.5); break;
    default: st = AX_ERR_INTERNAL;
    }
    ax_tensor_free(t);
    return st;
}

static void ax_gcheck(const ax_gcase *c, int nd, const int64_t *shape, uint64_t seed) {
    int64_t sh[5];
    memcpy(sh, shape, (size_t)nd * sizeof(int64_t));
    if (c->permuted) {
        int64_t tmp = sh[nd - 1];
        sh[nd - 1] = sh[nd - 2];
        sh[nd - 2] = tmp;
    }
    ax_tensor *x = c->op == G_MAX ? ax_distinct(nd, sh, seed, true) : ax_test_randn(nd, sh, seed, 1, 0, true);
    assert_non_null(x);
    ax_gc_opts o = AX_GC_DEFAULT;
    o.max_elems = 400;
    bool ok = ax_gradcheck(ax_grun, 1, &x, (void *)c, &o);
    if (!ok) fprintf(stderr, "  (grad case op %d, seed %llu)\n", (int)c->op, (unsigned long long)seed);
    ax_tensor_free(x);
    assert_true(ok);
}

static void test_grad_pool(void **state) {
    (void)state;
    for (int perm = 0; perm < 2; perm++) {
        ax_gcase c = {.op = G_MAX, .k = {2, 2, 2}, .s = {2, 2, 2}, .permuted = perm};
        ax_gcheck(&c, 5, S(1, 2, 4, 4, 5), 1);
        c = (ax_gcase){.op = G_MAX, .k = {3, 2, 3}, .s = {2, 1, 2}, .p = {1, 1, 1}, .ceil = true, .permuted = perm};
        ax_gcheck(&c, 5, S(1, 2, 5, 4, 5), 2);
        c = (ax_gcase){.op = G_AVG, .k = {3, 2, 3}, .s = {2, 1, 2}, .p = {1, 1, 1}, .ceil = true, .cip = true,
                       .permuted = perm};
        ax_gcheck(&c, 5, S(1, 2, 5, 4, 5), 3);
        c.cip = false;
        ax_gcheck(&c, 5, S(1, 2, 5, 4, 5), 4);
        c = (ax_gcase){.op = G_AVG, .k = {3, 3, 3}, .s = {2, 2, 2}, .p = {1, 1, 1}, .ceil = true, .permuted = perm};
        ax_gcheck(&c, 5, S(1, 1, 6, 6, 6), 5);
        c = (ax_gcase){.op = G_ADAPT, .size = {3, 2, 4}, .permuted = perm};
        ax_gcheck(&c, 5, S(1, 2, 5, 4, 3), 6);
    }
    /* unbatched [C, D, H, W] */
    ax_gcase c = {.op = G_AVG, .k = {2, 2, 2}, .s = {1, 1, 1}};
    ax_gcheck(&c, 4, S(2, 3, 3, 4), 7);
    c = (ax_gcase){.op = G_MAX, .k = {2, 2, 2}, .s = {1, 2, 1}};
    ax_gcheck(&c, 4, S(2, 3, 4, 3), 8);
    c = (ax_gcase){.op = G_ADAPT, .size = {2, 2, 2}};
    ax_gcheck(&c, 4, S(1, 3, 4, 5), 9);
}

static void test_grad_interpolate(void **state) {
    (void)state;
    for (int perm = 0; perm < 2; perm++)
        for (int m = 0; m < 3; m++) {
            ax_gcase c = {.op = G_INTERP, .mode = m == 0 ? AX_INTERP_NEAREST : AX_INTERP_TRILINEAR, .ac = m == 2,
                          .permuted = perm};
            memcpy(c.size, (int64_t[]){5, 2, 6}, sizeof c.size);
            ax_gcheck(&c, 5, S(1, 2, 3, 4, 4), 10 + m);
            memcpy(c.size, (int64_t[]){7, 3}, 2 * sizeof(int64_t));
            ax_gcheck(&c, 4, S(2, 1, 4, 5), 20 + m);
            memcpy(c.size, (int64_t[]){9}, sizeof(int64_t));
            ax_gcheck(&c, 3, S(2, 2, 5), 30 + m);
        }
}

static void test_grad_pad(void **state) {
    (void)state;
    for (int perm = 0; perm < 2; perm++)
        for (int m = 0; m < 3; m++) {
            ax_pad_mode mode = m == 0 ? AX_PAD_CONSTANT : m == 1 ? AX_PAD_REFLECT : AX_PAD_REPLICATE;
            ax_gcase c = {.op = G_PAD, .pmode = mode, .n_pads = 6, .pads = {2, 1, 0, 3, 1, 2}, .permuted = perm};
            ax_gcheck(&c, 5, S(1, 2, 3, 4, 4), 40 + m);
            c = (ax_gcase){.op = G_PAD, .pmode = mode, .n_pads = 6, .pads = {-1, 2, 1, -1, 0, -1}, .permuted = perm};
            ax_gcheck(&c, 5, S(1, 1, 3, 4, 4), 50 + m);
            c = (ax_gcase){.op = G_PAD, .pmode = mode, .n_pads = 2, .pads = {3, 2}, .permuted = perm};
            ax_gcheck(&c, 3, S(2, 5, 4), 60 + m);
        }
}

/* ---- determinism ------------------------------------------------------------------------- */

typedef ax_status (*ax_det_fn)(ax_tensor **y, const ax_tensor *x);

static ax_status ax_det_max(ax_tensor **y, const ax_tensor *x) {
    return ax_max_pool3d(y, NULL, x, S(3, 3, 3), S(2, 2, 2), S(1, 1, 1), true);
}
static ax_status ax_det_avg(ax_tensor **y, const ax_tensor *x) {
    return ax_avg_pool3d(y, x, S(3, 3, 3), S(2, 1, 2), S(1, 1, 1), true, false);
}
static ax_status ax_det_adapt(ax_tensor **y, const ax_tensor *x) { return ax_adaptive_avg_pool3d(y, x, S(13, 7, 29)); }
static ax_status ax_det_tri(ax_tensor **y, const ax_tensor *x) {
    return ax_interpolate(y, x, S(57, 31, 50), AX_INTERP_TRILINEAR, false);
}
static ax_status ax_det_near(ax_tensor **y, const ax_tensor *x) {
    return ax_interpolate(y, x, S(57, 31, 50), AX_INTERP_NEAREST, false);
}
static ax_status ax_det_reflect(ax_tensor **y, const ax_tensor *x) {
    return ax_pad(y, x, 6, S(3, 2, 1, 4, 5, 2), AX_PAD_REFLECT, 0);
}

/* Forward output and input gradient, as raw bytes, for a thread count. */
static void ax_det_run(ax_det_fn f, const int64_t *shape, int threads, float **yout, float **gout, int64_t *ny,
                       int64_t *nx) {
    ax_set_num_threads(threads);
    ax_tensor *x = ax_test_randn(5, shape, 77, 1, 0, true), *y, *g;
    assert_int_equal(f(&y, x), AX_OK);
    g = ax_test_randn(y->ndim, y->shape, 78, 1, 0, false);
    assert_int_equal(ax_backward(y, g), AX_OK);
    *ny = ax_tensor_numel(y);
    *nx = ax_tensor_numel(x);
    *yout = malloc((size_t)*ny * sizeof(float));
    *gout = malloc((size_t)*nx * sizeof(float));
    memcpy(*yout, ax_tensor_data(y), (size_t)*ny * sizeof(float));
    memcpy(*gout, ax_tensor_data(x->grad), (size_t)*nx * sizeof(float));
    ax_tensor_free(g);
    ax_tensor_free(y);
    ax_tensor_free(x);
}

static void test_thread_count_independent(void **state) {
    (void)state;
    ax_det_fn fns[] = {ax_det_max, ax_det_avg, ax_det_adapt, ax_det_tri, ax_det_near, ax_det_reflect};
    /* one plane (work split inside it) and six (split over planes) */
    const int64_t shapes[2][5] = {{1, 1, 40, 36, 40}, {2, 3, 22, 20, 24}};
    int saved = ax_num_threads();
    for (size_t i = 0; i < 2 * sizeof fns / sizeof fns[0]; i++) {
        float *y1, *g1, *y4, *g4;
        int64_t ny, nx, ny4, nx4;
        const int64_t *shape = shapes[i % 2];
        ax_det_run(fns[i / 2], shape, 1, &y1, &g1, &ny, &nx);
        ax_det_run(fns[i / 2], shape, 4, &y4, &g4, &ny4, &nx4);
        assert_int_equal(ny, ny4);
        if (memcmp(y1, y4, (size_t)ny * sizeof(float))) fail_msg("op %zu: forward differs between 1 and 4 threads", i / 2);
        if (memcmp(g1, g4, (size_t)nx * sizeof(float))) fail_msg("op %zu: backward differs between 1 and 4 threads", i / 2);
        free(y1);
        free(g1);
        free(y4);
        free(g4);
    }
    ax_set_num_threads(saved);
}

/* ---- errors ------------------------------------------------------------------------------ */

static void test_errors(void **state) {
    (void)state;
    ax_tensor *x = ax_test_randn(5, S(1, 1, 2, 4, 4), 90, 1, 0, false), *x3 = ax_test_randn(3, S(4, 4, 4), 91, 1, 0, false);
    ax_tensor *y = NULL, *idx = NULL;
    ax_expect_error(ax_max_pool3d(&y, &idx, x, S(3, 3, 3), NULL, NULL, false), AX_ERR_INVALID,
                    "ax_max_pool3d: x [1, 1, 2, 4, 4] with kernel (3, 3, 3), stride (3, 3, 3), padding (0, 0, 0) gives "
                    "output size (0, 1, 1): the kernel is larger than the padded input");
    assert_null(y);
    assert_null(idx);
    ax_expect_error(ax_max_pool3d(&y, NULL, x, S(3, 3, 3), NULL, S(2, 1, 1), false), AX_ERR_INVALID,
                    "ax_max_pool3d: padding (2, 1, 1) must be >= 0 and at most half of kernel (3, 3, 3)");
    ax_expect_error(ax_avg_pool3d(&y, x, S(2, 2, 2), NULL, S(0, -1, 0), false, true), AX_ERR_INVALID,
                    "ax_avg_pool3d: padding (0, -1, 0) must be >= 0");
    ax_expect_error(ax_max_pool3d(&y, NULL, x3, S(2, 2, 2), NULL, NULL, false), AX_ERR_INVALID,
                    "ax_max_pool3d: x must be [N, C, D, H, W] or [C, D, H, W], got [4, 4, 4]");
    ax_expect_error(ax_avg_pool3d(&y, x, S(2, 0, 2), NULL, NULL, false, true), AX_ERR_INVALID,
                    "ax_avg_pool3d: kernel (2, 0, 2) must be positive");
    ax_expect_error(ax_avg_pool3d(&y, x, S(2, 2, 2), S(1, 0, 1), NULL, false, true), AX_ERR_INVALID,
                    "ax_avg_pool3d: stride (1, 0, 1) must be positive");
    ax_expect_error(ax_max_pool3d(&y, NULL, x, NULL, NULL, NULL, false), AX_ERR_INVALID, "ax_max_pool3d: kernel is NULL");
    ax_expect_error(ax_max_pool3d(&y, NULL, NULL, S(1, 1, 1), NULL, NULL, false), AX_ERR_INVALID,
                    "ax_max_pool3d: x is NULL");
    ax_expect_error(ax_adaptive_avg_pool3d(&y, x, S(2, 0, 2)), AX_ERR_INVALID,
                    "ax_adaptive_avg_pool3d: out_size (2, 0, 2) must be >= 1 for x [1, 1, 2, 4, 4]");
    ax_expect_error(ax_adaptive_avg_pool3d(&y, x3, S(2, 2, 2)), AX_ERR_INVALID,
                    "ax_adaptive_avg_pool3d: x must be [N, C, D, H, W] or [C, D, H, W], got [4, 4, 4]");

    ax_tensor *x2 = ax_test_randn(2, S(4, 4), 92, 1, 0, false);
    ax_expect_error(ax_interpolate(&y, x2, S(8), AX_INTERP_TRILINEAR, false), AX_ERR_INVALID,
                    "ax_interpolate: x must be [N, C, W], [N, C, H, W] or [N, C, D, H, W], got [4, 4]");
    ax_expect_error(ax_interpolate(&y, x, S(4, 0, 4), AX_INTERP_TRILINEAR, false), AX_ERR_INVALID,
                    "ax_interpolate: output size [4, 0, 4] must be >= 1 for x [1, 1, 2, 4, 4]");
    ax_expect_error(ax_interpolate(&y, x, S(4, 4, 4), AX_INTERP_NEAREST, true), AX_ERR_INVALID,
                    "ax_interpolate: align_corners is only for linear modes");
    ax_expect_error(ax_interpolate(&y, x, S(4, 4, 4), (ax_interp_mode)9, false), AX_ERR_INVALID,
                    "ax_interpolate: unknown mode 9");
    ax_expect_error(ax_interpolate_scale(&y, x, (double[]){1, 0.1, 1}, AX_INTERP_TRILINEAR, false), AX_ERR_INVALID,
                    "ax_interpolate_scale: scale 0.1 of spatial dim 1 of x [1, 1, 2, 4, 4] gives no valid output size");

    ax_expect_error(ax_pad(&y, x3, 2, S(4, 1), AX_PAD_REFLECT, 0), AX_ERR_INVALID,
                    "ax_pad: reflect padding (4, 1) of dim 2 must be smaller than its size 4 in x [4, 4, 4]");
    ax_expect_error(ax_pad(&y, x, 4, S(1, 1, 1, 4), AX_PAD_REFLECT, 0), AX_ERR_INVALID,
                    "ax_pad: reflect padding (1, 4) of dim 3 must be smaller than its size 4");
    ax_expect_error(ax_pad(&y, x3, 3, S(1, 1, 1), AX_PAD_CONSTANT, 0), AX_ERR_INVALID,
                    "ax_pad: n_pads 3 must be even and >= 2");
    ax_expect_error(ax_pad(&y, x2, 6, S(1, 1, 1, 1, 1, 1), AX_PAD_CONSTANT, 0), AX_ERR_INVALID,
                    "ax_pad: 6 pads pad 3 dims but x [4, 4] has 2");
    ax_expect_error(ax_pad(&y, x2, 4, S(1, 1, 1, 1), AX_PAD_REPLICATE, 0), AX_ERR_INVALID,
                    "ax_pad: replicate padding pads the last 1 to 3 dims after at least one leading dim; 4 pads for x "
                    "[4, 4]");
    ax_expect_error(ax_pad(&y, x3, 2, S(-3, -2), AX_PAD_CONSTANT, 0), AX_ERR_INVALID,
                    "ax_pad: pads (-3, -2) shrink dim 2 of x [4, 4, 4] to -1 (must be >= 0)");
    ax_expect_error(ax_pad(&y, x3, 2, S(-3, -2), AX_PAD_REPLICATE, 0), AX_ERR_INVALID,
                    "ax_pad: pads (-3, -2) shrink dim 2 of x [4, 4, 4] to -1 (must be >= 1)");
    ax_expect_error(ax_pad(&y, x3, 2, S(1, 1), (ax_pad_mode)7, 0), AX_ERR_INVALID, "ax_pad: unknown mode 7");
    ax_expect_error(ax_pad(&y, NULL, 2, S(1, 1), AX_PAD_CONSTANT, 0), AX_ERR_INVALID, "ax_pad: x is NULL");
    assert_null(y);
    /* cropping a dim to 0 is allowed for constant padding, as in PyTorch */
    assert_int_equal(ax_pad(&y, x3, 2, S(-2, -2), AX_PAD_CONSTANT, 0), AX_OK);
    assert_int_equal(y->shape[2], 0);
    ax_tensor_free(y);
    ax_tensor_free(x);
    ax_tensor_free(x2);
    ax_tensor_free(x3);
}

/* ---- PyTorch parity ----------------------------------------------------------------------- */

/* One op on the fixture's x; the names match make_pool.py's cases. */
typedef struct ax_torch_case {
    const char *name;
    ax_gcase c;
} ax_torch_case;

static const ax_torch_case ax_torch_cases[] = {
    {"max_a", {.op = G_MAX, .k = {2, 2, 2}, .s = {2, 2, 2}}},
    {"max_b", {.op = G_MAX, .k = {3, 2, 3}, .s = {2, 1, 2}, .p = {1, 1, 1}, .ceil = true}},
    {"max_c", {.op = G_MAX, .k = {3, 3, 3}, .s = {2, 2, 2}, .p = {1, 1, 1}, .ceil = false}},
    {"avg_a", {.op = G_AVG, .k = {3, 2, 3}, .s = {2, 1, 2}, .p = {1, 1, 1}, .ceil = true, .cip = true}},
    {"avg_b", {.op = G_AVG, .k = {3, 2, 3}, .s = {2, 1, 2}, .p = {1, 1, 1}, .ceil = true, .cip = false}},
    {"avg_c", {.op = G_AVG, .k = {3, 3, 3}, .s = {2, 2, 2}, .p = {1, 1, 1}, .ceil = true, .cip = true}},
    {"avg_d", {.op = G_AVG, .k = {2, 2, 2}, .s = {2, 2, 2}, .ceil = false, .cip = true}},
    {"adapt_a", {.op = G_ADAPT, .size = {3, 4, 2}}},
    {"adapt_b", {.op = G_ADAPT, .size = {7, 2, 5}}},
    {"tri_a", {.op = G_INTERP, .mode = AX_INTERP_TRILINEAR, .size = {7, 3, 9}}},
    {"tri_b", {.op = G_INTERP, .mode = AX_INTERP_TRILINEAR, .ac = true, .size = {7, 3, 9}}},
    {"tri_c", {.op = G_INTERP, .mode = AX_INTERP_TRILINEAR, .size = {10, 12, 8}}},
    {"near_a", {.op = G_INTERP, .mode = AX_INTERP_NEAREST, .size = {7, 3, 9}}},
    {"near_b", {.op = G_INTERP, .mode = AX_INTERP_NEAREST, .size = {10, 12, 3}}},
    {"bil_a", {.op = G_INTERP, .mode = AX_INTERP_TRILINEAR, .size = {9, 4}}},
    {"bil_b", {.op = G_INTERP, .mode = AX_INTERP_TRILINEAR, .ac = true, .size = {9, 4}}},
    {"lin_a", {.op = G_INTERP, .mode = AX_INTERP_TRILINEAR, .size = {11}}},
    {"lin_b", {.op = G_INTERP, .mode = AX_INTERP_TRILINEAR, .ac = true, .size = {3}}},
    {"near1_a", {.op = G_INTERP, .mode = AX_INTERP_NEAREST, .size = {11}}},
    {"pad_const", {.op = G_PAD, .pmode = AX_PAD_CONSTANT, .n_pads = 6, .pads = {1, 2, 0, 3, 2, 1}}},
    {"pad_crop", {.op = G_PAD, .pmode = AX_PAD_CONSTANT, .n_pads = 6, .pads = {-1, 2, 1, -2, -1, 0}}},
    {"pad_reflect", {.op = G_PAD, .pmode = AX_PAD_REFLECT, .n_pads = 6, .pads = {3, 2, 1, 3, 2, 2}}},
    {"pad_reflect_crop", {.op = G_PAD, .pmode = AX_PAD_REFLECT, .n_pads = 6, .pads = {-1, 3, 2, -1, 0, 1}}},
    {"pad_replicate", {.op = G_PAD, .pmode = AX_PAD_REPLICATE, .n_pads = 6, .pads = {4, 1, 0, 3, 5, 2}}},
    {"pad_reflect2d", {.op = G_PAD, .pmode = AX_PAD_REFLECT, .n_pads = 4, .pads = {2, 3, 1, 2}}},
};

static void ax_torch_one(ax_safetensors *f, const ax_torch_case *tc) {
    char name[96];
    ax_tensor *x, *gy, *y_ref, *gx_ref, *idx_ref = NULL;
    snprintf(name, sizeof name, "%s.x", tc->name);
    assert_int_equal(ax_safetensors_get(f, name, &x), AX_OK);
    snprintf(name, sizeof name, "%s.gy", tc->name);
    assert_int_equal(ax_safetensors_get(f, name, &gy), AX_OK);
    snprintf(name, sizeof name, "%s.y", tc->name);
    assert_int_equal(ax_safetensors_get(f, name, &y_ref), AX_OK);
    snprintf(name, sizeof name, "%s.gx", tc->name);
    assert_int_equal(ax_safetensors_get(f, name, &gx_ref), AX_OK);
    if (tc->c.op == G_MAX) {
        snprintf(name, sizeof name, "%s.idx", tc->name);
        assert_int_equal(ax_safetensors_get(f, name, &idx_ref), AX_OK);
    }
    /* a fresh leaf (the fixture's tensor views a read-only mapping) */
    ax_tensor *xl;
    assert_int_equal(ax_mul_scalar(&xl, x, 1.0), AX_OK);
    assert_int_equal(ax_tensor_set_requires_grad(xl, true), AX_OK);
    ax_tensor *y = NULL;
    assert_int_equal(ax_grun(&y, &xl, (void *)&tc->c), AX_OK);
    snprintf(name, sizeof name, "torch %s: y", tc->name);
    bool ok = ax_allclose(name, y, y_ref, 1e-5, 1e-5);
    assert_int_equal(ax_backward(y, gy), AX_OK);
    snprintf(name, sizeof name, "torch %s: grad x", tc->name);
    ok = ax_allclose(name, xl->grad, gx_ref, 1e-5, 1e-5) && ok;
    if (idx_ref) {
        ax_tensor *y2, *idx;
        assert_int_equal(ax_max_pool3d(&y2, &idx, x, tc->c.k, tc->c.s, tc->c.p, tc->c.ceil), AX_OK);
        snprintf(name, sizeof name, "torch %s: indices", tc->name);
        ok = ax_allclose(name, idx, idx_ref, 0, 0) && ok;
        ax_tensor_free(y2);
        ax_tensor_free(idx);
    }
    ax_tensor *all[] = {x, gy, y_ref, gx_ref, idx_ref, xl, y};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
    assert_true(ok);
}

static void test_torch_parity(void **state) {
    (void)state;
    ax_safetensors *f;
    const char *path = AX_TEST_FIXTURES "/pool/pool.safetensors";
    if (ax_safetensors_open(&f, path) != AX_OK) fail_msg("%s", ax_error_message());
    for (size_t i = 0; i < sizeof ax_torch_cases / sizeof ax_torch_cases[0]; i++) ax_torch_one(f, &ax_torch_cases[i]);
    ax_safetensors_close(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_forward),
        cmocka_unit_test(test_max_pool_special_values),
        cmocka_unit_test(test_adaptive_forward),
        cmocka_unit_test(test_interpolate_forward),
        cmocka_unit_test(test_pad_forward),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_integer_inputs),
        cmocka_unit_test(test_views),
        cmocka_unit_test(test_grad_pool),
        cmocka_unit_test(test_grad_interpolate),
        cmocka_unit_test(test_grad_pad),
        cmocka_unit_test(test_thread_count_independent),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_torch_parity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
