/* The CUDA backend's per-element math (kernels/cuda/cuda_math.h), compiled
 * here by the host C compiler, against the CPU backend's results. Runs in
 * every `make check`; no GPU or CUDA toolkit needed.
 *
 * Elementwise formulas are compared value by value on edge cases (signed
 * zeros, infinities, NaN, integer extremes). The index helpers are checked
 * by rebuilding, on the host, exactly what the CUDA kernels compute from
 * them — pooling, adaptive pooling, interpolation and padding forward, and
 * the gather form of their backward passes — and comparing with the CPU
 * kernels on several geometries; the fused group norm + leaky_relu
 * likewise (statistics, gated sums and per-element formulas), and the
 * attention forward's online softmax against the CPU sdpa kernel.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/kernels.h"
#include "axon/tensor.h"
#include "cuda_math.h"

static void check_ok(ax_status st, const char *expr, int line) {
    if (st != AX_OK) fail_msg("line %d: %s returned %d: %s", line, expr, (int)st, ax_error_message());
}
#define OK(e) check_ok((e), #e, __LINE__)

static const ax_kernels *cpu(void) { return ax_cpu_kernels(); }

/* a and b agree: both NaN, equal (incl. infinities), or within rel of each other. */
static bool close_f(float a, float b, float rel) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    if (a == b) return true;
    if (isinf(a) || isinf(b)) return false;
    return fabsf(a - b) <= rel * fmaxf(fmaxf(fabsf(a), fabsf(b)), 1e-30f) || fabsf(a - b) < 1e-37f;
}

static ax_tensor *vec_f32(const float *v, int64_t n) {
    ax_tensor *t;
    OK(ax_tensor_from_buffer(&t, 1, &n, AX_DTYPE_F32, v, (size_t)n * sizeof(float)));
    return t;
}

static ax_tensor *randn(int ndim, const int64_t *shape, uint64_t seed) {
    ax_tensor *t;
    OK(ax_tensor_randn(&t, ndim, shape, AX_DTYPE_F32, seed, 0));
    return t;
}

static ax_tensor *empty(int ndim, const int64_t *shape, ax_dtype dt) {
    ax_tensor *t;
    OK(ax_tensor_empty(&t, ndim, shape, dt));
    return t;
}

static const float k_vals[] = {-INFINITY, -100.0f, -30.0f, -10.0f, -2.5f, -1.0f, -0.75f, -0.5f, -1e-3f, -0.0f, 0.0f,
                               1e-3f,      0.5f,    0.75f,  1.0f,   2.5f,  10.0f, 20.5f,  30.0f,   100.0f, INFINITY, NAN};
#define N_VALS ((int64_t)(sizeof k_vals / sizeof k_vals[0]))

static void params_for(ax_unary_op op, double *p) {
    p[0] = p[1] = 0;
    switch (op) {
    case AX_UNARY_LEAKY_RELU: p[0] = 0.01; break;
    case AX_UNARY_SOFTPLUS: p[0] = 2.0, p[1] = 20.0; break;
    case AX_UNARY_CLAMP: p[0] = -1.0, p[1] = 2.0; break;
    case AX_UNARY_POW: p[0] = 2.5; break;
    case AX_UNARY_AFFINE: p[0] = -1.5, p[1] = 0.25; break;
    default: break;
    }
}

/* ---- elementwise ------------------------------------------------------------------------- */

static void test_unary(void **state) {
    (void)state;
    ax_tensor *x = vec_f32(k_vals, N_VALS), *y = empty(1, (int64_t[]){N_VALS}, AX_DTYPE_F32);
    for (int op = AX_UNARY_NEG; op <= AX_UNARY_RECIPROCAL; op++) {
        double p[2];
        params_for((ax_unary_op)op, p);
        OK(cpu()->unary((ax_unary_op)op, y, x, p));
        for (int64_t i = 0; i < N_VALS; i++) {
            float want = (float)ax_tensor_get(y, i), got = ax_cm_unary((ax_unary_op)op, k_vals[i], (float)p[0], (float)p[1]);
            if (!close_f(want, got, 4e-7f)) fail_msg("unary op %d at x = %g: cpu %.9g, cuda math %.9g", op, k_vals[i], want, got);
        }
    }
    ax_tensor_free(x);
    ax_tensor_free(y);
}

static void test_unary_backward(void **state) {
    (void)state;
    float g[N_VALS];
    for (int64_t i = 0; i < N_VALS; i++) g[i] = (float)(i % 5) * 0.7f - 1.1f;
    ax_tensor *x = vec_f32(k_vals, N_VALS), *dy = vec_f32(g, N_VALS);
    ax_tensor *y = empty(1, (int64_t[]){N_VALS}, AX_DTYPE_F32), *dx = empty(1, (int64_t[]){N_VALS}, AX_DTYPE_F32);
    for (int op = AX_UNARY_NEG; op <= AX_UNARY_RECIPROCAL; op++) {
        double p[2];
        params_for((ax_unary_op)op, p);
        OK(cpu()->unary((ax_unary_op)op, y, x, p));
        for (int with_y = 0; with_y < 2; with_y++) {
            OK(cpu()->unary_backward((ax_unary_op)op, dx, dy, x, with_y ? y : NULL, p));
            for (int64_t i = 0; i < N_VALS; i++) {
                float yv = ax_cm_unary((ax_unary_op)op, k_vals[i], (float)p[0], (float)p[1]);
                float want = (float)ax_tensor_get(dx, i);
                float got = ax_cm_unary_backward((ax_unary_op)op, g[i], k_vals[i], yv, (float)p[0], (float)p[1]);
                if (!close_f(want, got, 4e-7f))
                    fail_msg("unary backward op %d (y %s) at x = %g: cpu %.9g, cuda math %.9g", op, with_y ? "given" : "recomputed",
                             k_vals[i], want, got);
            }
        }
    }
    ax_tensor_free(x);
    ax_tensor_free(dy);
    ax_tensor_free(y);
    ax_tensor_free(dx);
}

static void test_unary_int(void **state) {
    (void)state;
    const int64_t vals[] = {INT64_MIN, INT64_MIN + 1, -2147483649LL, INT32_MIN, -300, -255, -7, -1, 0, 1, 7,
                            200,       255,           256,           INT32_MAX, 2147483648LL, INT64_MAX - 1, INT64_MAX};
    const int nv = (int)(sizeof vals / sizeof vals[0]);
    const ax_dtype dts[] = {AX_DTYPE_I64, AX_DTYPE_I32, AX_DTYPE_U8};
    const double params[][2] = {{0, 0}, {-3.5, 100.5}, {2, -3}, {-1, 0}, {3e18, 5}, {0.5, 0.25}, {NAN, 1}};
    for (size_t di = 0; di < 3; di++) {
        ax_dtype dt = dts[di];
        int64_t lo, hi;
        ax_cm_int_range(dt, &lo, &hi);
        int64_t n = 0, kept[32];
        for (int i = 0; i < nv; i++)
            if (vals[i] >= lo && vals[i] <= hi) kept[n++] = vals[i];
        ax_tensor *x = empty(1, &n, dt), *y = empty(1, &n, dt);
        for (int64_t i = 0; i < n; i++) ax_tensor_set(x, i, (double)kept[i]);
        /* i64 extremes do not survive a double: set them exactly */
        if (dt == AX_DTYPE_I64) memcpy(ax_tensor_data(x), kept, (size_t)n * sizeof(int64_t));
        for (int op = AX_UNARY_NEG; op <= AX_UNARY_RECIPROCAL; op++) {
            if (!ax_cm_unary_int_op((ax_unary_op)op)) continue;
            for (size_t pi = 0; pi < sizeof params / sizeof params[0]; pi++) {
                const double *p = params[pi];
                ax_status st = cpu()->unary((ax_unary_op)op, y, x, p);
                if (op == AX_UNARY_CLAMP && isnan(p[0])) {
                    assert_int_not_equal(st, AX_OK); /* both refuse NaN bounds on integers */
                    continue;
                }
                OK(st);
                for (int64_t i = 0; i < n; i++) {
                    int64_t want;
                    if (dt == AX_DTYPE_I64)
                        want = ((const int64_t *)ax_tensor_data(y))[i];
                    else
                        want = (int64_t)ax_tensor_get(y, i);
                    int64_t got = ax_cm_unary_i64((ax_unary_op)op, kept[i], p[0], p[1], lo, hi);
                    if (want != got)
                        fail_msg("%s unary op %d (p %g, %g) at %lld: cpu %lld, cuda math %lld", ax_dtype_name(dt), op, p[0],
                                 p[1], (long long)kept[i], (long long)want, (long long)got);
                }
            }
        }
        ax_tensor_free(x);
        ax_tensor_free(y);
    }
}

static void test_binary(void **state) {
    (void)state;
    int64_t n = N_VALS * N_VALS;
    ax_tensor *a = empty(1, &n, AX_DTYPE_F32), *b = empty(1, &n, AX_DTYPE_F32);
    ax_tensor *o = empty(1, &n, AX_DTYPE_F32), *c = empty(1, &n, AX_DTYPE_U8);
    for (int64_t i = 0; i < n; i++) {
        ax_tensor_set(a, i, k_vals[i / N_VALS]);
        ax_tensor_set(b, i, k_vals[i % N_VALS]);
    }
    for (int op = AX_BINARY_ADD; op <= AX_BINARY_GE; op++) {
        bool cmp = ax_cm_binary_is_compare((ax_binary_op)op);
        OK(cpu()->binary((ax_binary_op)op, cmp ? c : o, a, b));
        for (int64_t i = 0; i < n; i++) {
            float av = k_vals[i / N_VALS], bv = k_vals[i % N_VALS];
            float want = (float)ax_tensor_get(cmp ? c : o, i), got = ax_cm_binary((ax_binary_op)op, av, bv);
            if (!close_f(want, got, 4e-7f)) fail_msg("binary op %d on %g, %g: cpu %.9g, cuda math %.9g", op, av, bv, want, got);
        }
    }
    /* integers (i64, wrapping arithmetic) */
    const int64_t iv[] = {INT64_MIN, -5, -1, 0, 1, 3, INT64_MAX};
    int64_t m = 49;
    ax_tensor *ia = empty(1, &m, AX_DTYPE_I64), *ib = empty(1, &m, AX_DTYPE_I64), *io = empty(1, &m, AX_DTYPE_I64);
    ax_tensor *ic = empty(1, &m, AX_DTYPE_U8);
    for (int64_t i = 0; i < m; i++) {
        ((int64_t *)ax_tensor_data(ia))[i] = iv[i / 7];
        ((int64_t *)ax_tensor_data(ib))[i] = iv[i % 7];
    }
    for (int op = AX_BINARY_ADD; op <= AX_BINARY_GE; op++) {
        if (op == AX_BINARY_DIV || op == AX_BINARY_POW) continue;
        bool cmp = ax_cm_binary_is_compare((ax_binary_op)op);
        OK(cpu()->binary((ax_binary_op)op, cmp ? ic : io, ia, ib));
        for (int64_t i = 0; i < m; i++) {
            int64_t want = cmp ? (int64_t)ax_tensor_get(ic, i) : ((const int64_t *)ax_tensor_data(io))[i];
            int64_t got = ax_cm_binary_i64((ax_binary_op)op, iv[i / 7], iv[i % 7]);
            if (want != got) fail_msg("i64 binary op %d on %lld, %lld: cpu %lld, cuda math %lld", op, (long long)iv[i / 7],
                                      (long long)iv[i % 7], (long long)want, (long long)got);
        }
    }
    ax_tensor *all[] = {a, b, o, c, ia, ib, io, ic};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

/* ---- reductions and softmax ------------------------------------------------------------------- */

static void test_argmax_rule(void **state) {
    (void)state;
    /* ties, a NaN in the middle, negative zero */
    const float rows[][6] = {{1, 3, 3, 2, -1, 0},       {-0.0f, 0.0f, -1, -1, 0, 0}, {1, NAN, 5, NAN, 2, 9},
                             {-INFINITY, -INFINITY, -5, -5, -INFINITY, -9}, {7, 7, 7, 7, 7, 7}, {2, 1, 0, -1, -2, NAN}};
    int64_t shape[2] = {6, 6};
    ax_tensor *x;
    OK(ax_tensor_from_buffer(&x, 2, shape, AX_DTYPE_F32, rows, sizeof rows));
    ax_tensor *out = empty(2, (int64_t[]){6, 1}, AX_DTYPE_F32), *idx = empty(2, (int64_t[]){6, 1}, AX_DTYPE_I64);
    for (int max = 0; max < 2; max++) {
        OK(cpu()->reduce(max ? AX_REDUCE_MAX : AX_REDUCE_MIN, out, idx, x, 2u));
        for (int r = 0; r < 6; r++) {
            /* sequential scan, as one CUDA thread does */
            float best = rows[r][0];
            int64_t bi = 0;
            for (int j = 1; j < 6 && best == best; j++)
                if (ax_cm_arg_better(max, rows[r][j], best)) best = rows[r][j], bi = j;
            assert_int_equal(bi, (int64_t)ax_tensor_get(idx, r));
            assert_true(close_f(best, (float)ax_tensor_get(out, r), 0));
        }
    }
    ax_tensor_free(x);
    ax_tensor_free(out);
    ax_tensor_free(idx);
}

static void test_softmax(void **state) {
    (void)state;
    int64_t shape[2] = {4, 37};
    ax_tensor *x = randn(2, shape, 7), *y = empty(2, shape, AX_DTYPE_F32), *dy = randn(2, shape, 8);
    ax_tensor *dx = empty(2, shape, AX_DTYPE_F32);
    ax_tensor_set(x, 5, 80.0); /* a large logit */
    for (int lg = 0; lg < 2; lg++) {
        OK(cpu()->softmax(y, x, 1, lg));
        OK(cpu()->softmax_backward(dx, dy, y, 1, lg));
        for (int64_t r = 0; r < 4; r++) {
            float m = -INFINITY;
            double sum = 0, bsum = 0;
            for (int64_t j = 0; j < 37; j++) m = ax_cm_sm_max(m, (float)ax_tensor_get(x, r * 37 + j));
            for (int64_t j = 0; j < 37; j++) sum += expf((float)ax_tensor_get(x, r * 37 + j) - m);
            double scale = ax_cm_sm_scale(sum, lg);
            for (int64_t j = 0; j < 37; j++) {
                float yv = ax_cm_sm_finish((float)ax_tensor_get(x, r * 37 + j), m, scale, lg);
                assert_true(close_f(yv, (float)ax_tensor_get(y, r * 37 + j), 1e-6f));
            }
            for (int64_t j = 0; j < 37; j++)
                bsum += ax_cm_smb_term((float)ax_tensor_get(dy, r * 37 + j), (float)ax_tensor_get(y, r * 37 + j), lg);
            for (int64_t j = 0; j < 37; j++) {
                float g = ax_cm_smb_finish((float)ax_tensor_get(dy, r * 37 + j), (float)ax_tensor_get(y, r * 37 + j), bsum, lg);
                assert_true(close_f(g, (float)ax_tensor_get(dx, r * 37 + j), 1e-5f));
            }
        }
    }
    ax_tensor_free(x);
    ax_tensor_free(y);
    ax_tensor_free(dy);
    ax_tensor_free(dx);
}

/* ---- pooling: forward and gather backward, as the CUDA kernels do it ---------------------------------- */

static float at5(const ax_tensor *t, int64_t nc, int64_t d, int64_t h, int64_t w) {
    return (float)ax_tensor_get(t, ((nc * t->shape[2] + d) * t->shape[3] + h) * t->shape[4] + w);
}

static void expect_close(const ax_tensor *want, const float *got, float rel, const char *what) {
    int64_t n = ax_tensor_numel(want);
    for (int64_t i = 0; i < n; i++) {
        float w = (float)ax_tensor_get(want, i);
        if (!close_f(w, got[i], rel) && fabsf(w - got[i]) > 1e-6f)
            fail_msg("%s: element %lld: cpu %.9g, cuda math %.9g", what, (long long)i, w, got[i]);
    }
}

typedef struct pool_case {
    int64_t in[3], k[3], s[3], pad[3];
    bool ceil_mode, include_pad;
} pool_case;

static int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t pad, bool ceil_mode) {
    int64_t num = in + 2 * pad - k;
    int64_t o = (ceil_mode ? (num + s - 1) / s : num / s) + 1;
    if (ceil_mode && (o - 1) * s >= in + pad) o--; /* PyTorch: the last window must start inside */
    return o;
}

static void test_pool(void **state) {
    (void)state;
    const pool_case cases[] = {
        {{6, 7, 8}, {2, 2, 2}, {2, 2, 2}, {0, 0, 0}, false, false}, {{5, 6, 7}, {3, 3, 3}, {2, 1, 2}, {1, 1, 0}, true, false},
        {{5, 6, 7}, {3, 2, 3}, {2, 2, 1}, {1, 0, 1}, false, true},  {{9, 4, 5}, {4, 3, 2}, {3, 2, 2}, {2, 1, 1}, true, true},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const pool_case *pc = &cases[ci];
        int64_t xs[5] = {2, 3, pc->in[0], pc->in[1], pc->in[2]}, ys[5] = {2, 3, 0, 0, 0};
        for (int a = 0; a < 3; a++) ys[2 + a] = pool_out(pc->in[a], pc->k[a], pc->s[a], pc->pad[a], pc->ceil_mode);
        ax_tensor *x = randn(5, xs, 11 + ci), *y = empty(5, ys, AX_DTYPE_F32), *idx = empty(5, ys, AX_DTYPE_I64);
        ax_tensor *dy = randn(5, ys, 21 + ci), *dx = empty(5, xs, AX_DTYPE_F32);
        /* a tie and a NaN, for the max rule */
        ax_tensor_set(x, 1, ax_tensor_get(x, 0));
        ax_tensor_set(x, 40, NAN);
        int64_t ny = ax_tensor_numel(y), nx = ax_tensor_numel(x);
        float *got = malloc((size_t)(ny > nx ? ny : nx) * sizeof(float));
        int64_t *gidx = malloc((size_t)ny * sizeof(int64_t));
        for (int mode = AX_POOL_MAX; mode <= AX_POOL_AVG; mode++) {
            ax_pool_params p = {(ax_pool_mode)mode, {0}, {0}, {0}, pc->ceil_mode, pc->include_pad};
            for (int a = 0; a < 3; a++) p.kernel[a] = pc->k[a], p.stride[a] = pc->s[a], p.padding[a] = pc->pad[a];
            OK(cpu()->pool3d(y, mode == AX_POOL_MAX ? idx : NULL, x, &p));
            /* forward, one output at a time (ax_cu_pool_kernel) */
            for (int64_t i = 0; i < ny; i++) {
                int64_t ow = i % ys[4], oh = i / ys[4] % ys[3], od = i / (ys[4] * ys[3]) % ys[2], nc = i / (ys[4] * ys[3] * ys[2]);
                int64_t dl, dh, dp, hl, hh, hp, wl, wh, wp;
                ax_cm_pool_win(od, p.kernel[0], p.stride[0], p.padding[0], xs[2], &dl, &dh, &dp);
                ax_cm_pool_win(oh, p.kernel[1], p.stride[1], p.padding[1], xs[3], &hl, &hh, &hp);
                ax_cm_pool_win(ow, p.kernel[2], p.stride[2], p.padding[2], xs[4], &wl, &wh, &wp);
                if (mode == AX_POOL_MAX) {
                    float best = -INFINITY;
                    int64_t bi = (dl * xs[3] + hl) * xs[4] + wl;
                    for (int64_t d = dl; d < dh; d++)
                        for (int64_t h = hl; h < hh; h++)
                            for (int64_t w = wl; w < wh; w++) {
                                float v = at5(x, nc, d, h, w);
                                if (v > best || v != v) best = v, bi = (d * xs[3] + h) * xs[4] + w;
                            }
                    got[i] = best;
                    gidx[i] = bi;
                } else {
                    double sum = 0;
                    for (int64_t d = dl; d < dh; d++)
                        for (int64_t h = hl; h < hh; h++)
                            for (int64_t w = wl; w < wh; w++) sum += at5(x, nc, d, h, w);
                    int64_t div = p.count_include_pad ? dp * hp * wp : (dh - dl) * (hh - hl) * (wh - wl);
                    got[i] = (float)(sum / (double)div);
                }
            }
            expect_close(y, got, 1e-6f, mode == AX_POOL_MAX ? "max pool" : "avg pool");
            if (mode == AX_POOL_MAX)
                for (int64_t i = 0; i < ny; i++) assert_int_equal(gidx[i], ((const int64_t *)ax_tensor_data(idx))[i]);
            /* backward, gather form (ax_cu_pool_bw_kernel) */
            OK(cpu()->pool3d_backward(dx, dy, mode == AX_POOL_MAX ? idx : NULL, &p));
            for (int64_t i = 0; i < nx; i++) {
                int64_t w = i % xs[4], h = i / xs[4] % xs[3], d = i / (xs[4] * xs[3]) % xs[2], nc = i / (xs[4] * xs[3] * xs[2]);
                int64_t d0, d1, h0, h1, w0, w1;
                ax_cm_pool_out_range(d, p.kernel[0], p.stride[0], p.padding[0], ys[2], &d0, &d1);
                ax_cm_pool_out_range(h, p.kernel[1], p.stride[1], p.padding[1], ys[3], &h0, &h1);
                ax_cm_pool_out_range(w, p.kernel[2], p.stride[2], p.padding[2], ys[4], &w0, &w1);
                int64_t flat = (d * xs[3] + h) * xs[4] + w;
                double acc = 0;
                for (int64_t od = d0; od < d1; od++)
                    for (int64_t oh = h0; oh < h1; oh++)
                        for (int64_t ow = w0; ow < w1; ow++) {
                            int64_t dl, dh, dp, hl, hh, hp, wl, wh, wp;
                            ax_cm_pool_win(od, p.kernel[0], p.stride[0], p.padding[0], xs[2], &dl, &dh, &dp);
                            ax_cm_pool_win(oh, p.kernel[1], p.stride[1], p.padding[1], xs[3], &hl, &hh, &hp);
                            ax_cm_pool_win(ow, p.kernel[2], p.stride[2], p.padding[2], xs[4], &wl, &wh, &wp);
                            if (d < dl || d >= dh || h < hl || h >= hh || w < wl || w >= wh) continue;
                            int64_t o = ((nc * ys[2] + od) * ys[3] + oh) * ys[4] + ow;
                            float g = (float)ax_tensor_get(dy, o);
                            if (mode == AX_POOL_MAX) {
                                if (((const int64_t *)ax_tensor_data(idx))[o] == flat) acc += g;
                            } else {
                                int64_t div = p.count_include_pad ? dp * hp * wp : (dh - dl) * (hh - hl) * (wh - wl);
                                acc += (double)g / (double)div;
                            }
                        }
                got[i] = (float)acc;
            }
            expect_close(dx, got, 1e-5f, mode == AX_POOL_MAX ? "max pool backward" : "avg pool backward");
        }
        free(got);
        free(gidx);
        ax_tensor *all[] = {x, y, idx, dy, dx};
        for (size_t i = 0; i < 5; i++) ax_tensor_free(all[i]);
    }
}

static void test_adaptive(void **state) {
    (void)state;
    const int64_t sizes[][6] = {{7, 5, 9, 3, 2, 4}, {4, 4, 4, 7, 5, 9}, {6, 1, 5, 6, 1, 5}, {10, 3, 7, 1, 1, 1}};
    for (size_t ci = 0; ci < sizeof sizes / sizeof sizes[0]; ci++) {
        int64_t xs[5] = {1, 2, sizes[ci][0], sizes[ci][1], sizes[ci][2]};
        int64_t ys[5] = {1, 2, sizes[ci][3], sizes[ci][4], sizes[ci][5]};
        ax_tensor *x = randn(5, xs, 31 + ci), *y = empty(5, ys, AX_DTYPE_F32), *dy = randn(5, ys, 41 + ci);
        ax_tensor *dx = empty(5, xs, AX_DTYPE_F32);
        OK(cpu()->adaptive_avg_pool3d(y, x));
        OK(cpu()->adaptive_avg_pool3d_backward(dx, dy));
        int64_t ny = ax_tensor_numel(y), nx = ax_tensor_numel(x);
        float *got = malloc((size_t)(ny > nx ? ny : nx) * sizeof(float));
        for (int64_t i = 0; i < ny; i++) {
            int64_t ow = i % ys[4], oh = i / ys[4] % ys[3], od = i / (ys[4] * ys[3]) % ys[2], nc = i / (ys[4] * ys[3] * ys[2]);
            int64_t d0 = ax_cm_adaptive_start(od, ys[2], xs[2]), d1 = ax_cm_adaptive_end(od, ys[2], xs[2]);
            int64_t h0 = ax_cm_adaptive_start(oh, ys[3], xs[3]), h1 = ax_cm_adaptive_end(oh, ys[3], xs[3]);
            int64_t w0 = ax_cm_adaptive_start(ow, ys[4], xs[4]), w1 = ax_cm_adaptive_end(ow, ys[4], xs[4]);
            double sum = 0;
            for (int64_t d = d0; d < d1; d++)
                for (int64_t h = h0; h < h1; h++)
                    for (int64_t w = w0; w < w1; w++) sum += at5(x, nc, d, h, w);
            got[i] = (float)(sum / (double)((d1 - d0) * (h1 - h0) * (w1 - w0)));
        }
        expect_close(y, got, 1e-6f, "adaptive avg pool");
        for (int64_t i = 0; i < nx; i++) {
            int64_t w = i % xs[4], h = i / xs[4] % xs[3], d = i / (xs[4] * xs[3]) % xs[2], nc = i / (xs[4] * xs[3] * xs[2]);
            double acc = 0;
            for (int64_t od = ax_cm_adaptive_first(d, ys[2], xs[2]); od < ys[2] && ax_cm_adaptive_start(od, ys[2], xs[2]) <= d; od++) {
                int64_t d0 = ax_cm_adaptive_start(od, ys[2], xs[2]), d1 = ax_cm_adaptive_end(od, ys[2], xs[2]);
                if (d < d0 || d >= d1) continue;
                for (int64_t oh = ax_cm_adaptive_first(h, ys[3], xs[3]); oh < ys[3] && ax_cm_adaptive_start(oh, ys[3], xs[3]) <= h; oh++) {
                    int64_t h0 = ax_cm_adaptive_start(oh, ys[3], xs[3]), h1 = ax_cm_adaptive_end(oh, ys[3], xs[3]);
                    if (h < h0 || h >= h1) continue;
                    for (int64_t ow = ax_cm_adaptive_first(w, ys[4], xs[4]); ow < ys[4] && ax_cm_adaptive_start(ow, ys[4], xs[4]) <= w;
                         ow++) {
                        int64_t w0 = ax_cm_adaptive_start(ow, ys[4], xs[4]), w1 = ax_cm_adaptive_end(ow, ys[4], xs[4]);
                        if (w < w0 || w >= w1) continue;
                        acc += ax_tensor_get(dy, ((nc * ys[2] + od) * ys[3] + oh) * ys[4] + ow) /
                               (double)((d1 - d0) * (h1 - h0) * (w1 - w0));
                    }
                }
            }
            got[i] = (float)acc;
        }
        expect_close(dx, got, 1e-5f, "adaptive avg pool backward");
        free(got);
        ax_tensor_free(x);
        ax_tensor_free(y);
        ax_tensor_free(dy);
        ax_tensor_free(dx);
    }
}

/* ---- interpolation --------------------------------------------------------------------------------------- */

static void interp_case(int sp, const int64_t *in, const int64_t *out, bool nearest, bool ac, uint64_t seed) {
    int64_t xs[5] = {2, 2, 1, 1, 1}, ys[5] = {2, 2, 1, 1, 1};
    for (int i = 0; i < sp; i++) xs[2 + i] = in[i], ys[2 + i] = out[i];
    ax_tensor *x = randn(2 + sp, xs, seed), *y = empty(2 + sp, ys, AX_DTYPE_F32), *dy = randn(2 + sp, ys, seed + 1);
    ax_tensor *dx = empty(2 + sp, xs, AX_DTYPE_F32);
    ax_interp_mode mode = nearest ? AX_INTERP_NEAREST : AX_INTERP_TRILINEAR;
    OK(cpu()->interpolate(y, x, mode, ac));
    OK(cpu()->interpolate_backward(dx, dy, mode, ac));
    /* as 5-D volumes with leading phantom axes (ax_cu_vol_sp) */
    int64_t xv[3] = {1, 1, 1}, yv[3] = {1, 1, 1};
    for (int i = 0; i < sp; i++) xv[3 - sp + i] = in[i], yv[3 - sp + i] = out[i];
    int64_t planes = 4, ny = planes * yv[0] * yv[1] * yv[2], nx = planes * xv[0] * xv[1] * xv[2];
    float *got = malloc((size_t)(ny > nx ? ny : nx) * sizeof(float));
    for (int64_t i = 0; i < ny; i++) {
        int64_t ow = i % yv[2], oh = i / yv[2] % yv[1], od = i / (yv[2] * yv[1]) % yv[0], nc = i / (yv[2] * yv[1] * yv[0]);
        int64_t d0, d1, h0, h1, w0, w1;
        float a0, a1, b0, b1, c0, c1;
        ax_cm_taps(sp < 3, nearest, ac, od, xv[0], yv[0], &d0, &d1, &a0, &a1);
        ax_cm_taps(sp < 2, nearest, ac, oh, xv[1], yv[1], &h0, &h1, &b0, &b1);
        ax_cm_taps(false, nearest, ac, ow, xv[2], yv[2], &w0, &w1, &c0, &c1);
#define X(d, h, w) (float)ax_tensor_get(x, ((nc * xv[0] + (d)) * xv[1] + (h)) * xv[2] + (w))
        float v;
        if (nearest) {
            v = X(d0, h0, w0);
        } else {
            float r00 = X(d0, h0, w0) * c0 + X(d0, h0, w1) * c1;
            if (sp == 1) {
                v = r00;
            } else {
                float r01 = X(d0, h1, w0) * c0 + X(d0, h1, w1) * c1;
                float a = r00 * b0 + r01 * b1;
                if (sp == 2) {
                    v = a;
                } else {
                    float r10 = X(d1, h0, w0) * c0 + X(d1, h0, w1) * c1;
                    float r11 = X(d1, h1, w0) * c0 + X(d1, h1, w1) * c1;
                    v = a * a0 + (r10 * b0 + r11 * b1) * a1;
                }
            }
        }
#undef X
        got[i] = v;
    }
    char what[128];
    snprintf(what, sizeof what, "interpolate %dD %s ac=%d", sp, nearest ? "nearest" : "linear", ac);
    expect_close(y, got, 1e-6f, what);
    for (int64_t i = 0; i < nx; i++) {
        int64_t w = i % xv[2], h = i / xv[2] % xv[1], d = i / (xv[2] * xv[1]) % xv[0], nc = i / (xv[2] * xv[1] * xv[0]);
        int64_t d0, d1, h0, h1, w0, w1;
        ax_cm_tap_out_range(sp < 3, d, xv[0], yv[0], &d0, &d1);
        ax_cm_tap_out_range(sp < 2, h, xv[1], yv[1], &h0, &h1);
        ax_cm_tap_out_range(false, w, xv[2], yv[2], &w0, &w1);
        double acc = 0;
        for (int64_t od = d0; od < d1; od++) {
            float wd = ax_cm_tap_weight(sp < 3, nearest, ac, od, d, xv[0], yv[0]);
            if (wd == 0.0f) continue;
            for (int64_t oh = h0; oh < h1; oh++) {
                float wh = ax_cm_tap_weight(sp < 2, nearest, ac, oh, h, xv[1], yv[1]);
                if (wh == 0.0f) continue;
                for (int64_t ow = w0; ow < w1; ow++) {
                    float ww = ax_cm_tap_weight(false, nearest, ac, ow, w, xv[2], yv[2]);
                    if (ww == 0.0f) continue;
                    acc += ax_tensor_get(dy, ((nc * yv[0] + od) * yv[1] + oh) * yv[2] + ow) * ((double)wd * wh * ww);
                }
            }
        }
        got[i] = (float)acc;
    }
    snprintf(what, sizeof what, "interpolate backward %dD %s ac=%d", sp, nearest ? "nearest" : "linear", ac);
    expect_close(dx, got, 2e-5f, what);
    free(got);
    ax_tensor_free(x);
    ax_tensor_free(y);
    ax_tensor_free(dy);
    ax_tensor_free(dx);
}

static void test_interpolate(void **state) {
    (void)state;
    const int64_t shapes[][6] = {{4, 5, 6, 8, 10, 12}, {8, 7, 9, 4, 3, 5}, {3, 4, 5, 7, 9, 11}, {5, 5, 5, 5, 5, 5},
                                 {2, 3, 2, 11, 13, 17}, {9, 2, 6, 3, 7, 2}};
    uint64_t seed = 100;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int sp = 1; sp <= 3; sp++)
            for (int nearest = 0; nearest < 2; nearest++)
                for (int ac = 0; ac < 2; ac++) {
                    if (nearest && ac) continue;
                    interp_case(sp, shapes[s], shapes[s] + 3, nearest, ac, seed += 2);
                }
}

/* ---- padding -------------------------------------------------------------------------------------------- */

static void test_pad(void **state) {
    (void)state;
    int64_t xs[4] = {2, 3, 5, 6};
    const int64_t pads[][4] = {{1, 2, 3, 0}, {2, 2, 1, 4}, {-1, 2, 0, -2}, {0, 0, 5, 5}};
    for (size_t pi = 0; pi < sizeof pads / sizeof pads[0]; pi++)
        for (int mode = AX_PAD_CONSTANT; mode <= AX_PAD_REPLICATE; mode++) {
            const int64_t *pd = pads[pi];
            if (mode == AX_PAD_REFLECT && (pd[0] >= xs[2] || pd[1] >= xs[2] || pd[2] >= xs[3] || pd[3] >= xs[3])) continue;
            if (mode != AX_PAD_CONSTANT && (pd[0] < 0 || pd[1] < 0 || pd[2] < 0 || pd[3] < 0)) continue;
            int64_t ys[4] = {2, 3, xs[2] + pd[0] + pd[1], xs[3] + pd[2] + pd[3]};
            ax_tensor *x = randn(4, xs, 200 + pi), *y = empty(4, ys, AX_DTYPE_F32);
            OK(cpu()->pad(y, x, pd, 2, (ax_pad_mode)mode, 0.5));
            int64_t ny = ax_tensor_numel(y);
            for (int64_t i = 0; i < ny; i++) {
                int64_t w = i % ys[3], h = i / ys[3] % ys[2], nc = i / (ys[3] * ys[2]);
                int64_t sh = ax_cm_pad_source(h, pd[0], xs[2], (ax_pad_mode)mode);
                int64_t sw = ax_cm_pad_source(w, pd[2], xs[3], (ax_pad_mode)mode);
                float want = sh < 0 || sw < 0 ? 0.5f : (float)ax_tensor_get(x, (nc * xs[2] + sh) * xs[3] + sw);
                if (want != (float)ax_tensor_get(y, i))
                    fail_msg("pad mode %d pads %zu: element %lld: cpu %g, cuda math %g", mode, pi, (long long)i,
                             ax_tensor_get(y, i), want);
            }
            ax_tensor_free(x);
            ax_tensor_free(y);
        }
}

/* A fresh contiguous f32 copy of the 1-D tensor t. */
static ax_tensor *copy_of(const ax_tensor *t) {
    return vec_f32(ax_tensor_data(t), ax_tensor_numel(t));
}

/* The optimizer updates, element by element, against the CPU kernels:
 * bit for bit (both round the same f32/double operations). The inputs
 * include zeros, infinities and NaN, and both lerp formulas of AdamW. */
static void test_optim(void **state) {
    (void)state;
    const int64_t n = 3000; /* more than one CPU block */
    ax_tensor *g = randn(1, &n, 11), *p0 = randn(1, &n, 12), *b0 = randn(1, &n, 13), *v0 = randn(1, &n, 14);
    float *gd = ax_tensor_data(g), *vd = ax_tensor_data(v0);
    for (int64_t i = 0; i < n; i++) vd[i] = vd[i] * vd[i]; /* exp_avg_sq >= 0 */
    gd[0] = 0.0f, gd[1] = -0.0f, gd[2] = INFINITY, gd[3] = NAN, gd[4] = 1e-30f, gd[5] = -1e30f;
    const ax_sgd_step_params sgds[] = {
        {true, true, false, true, 3e-5f, 0.99f, 1.0f, -1e-2f},  /* nnU-Net */
        {true, true, true, true, 3e-5f, 0.99f, 1.0f, -1e-2f},   /* its first step */
        {false, true, false, false, 0, 0.9f, 0.75f, -0.1f},     /* dampening, no nesterov */
        {true, false, false, false, 0.5f, 0, 1.0f, -3.0f},      /* no momentum */
    };
    for (size_t k = 0; k < sizeof sgds / sizeof sgds[0]; k++) {
        const ax_sgd_step_params *c = &sgds[k];
        ax_tensor *p = copy_of(p0), *b = copy_of(b0);
        float *pe = malloc((size_t)n * sizeof *pe), *be = malloc((size_t)n * sizeof *be);
        memcpy(pe, ax_tensor_data(p0), (size_t)n * sizeof *pe);
        memcpy(be, ax_tensor_data(b0), (size_t)n * sizeof *be);
        OK(cpu()->sgd_step(p, c->has_mom ? b : NULL, g, c));
        for (int64_t i = 0; i < n; i++) ax_cm_sgd(c, &pe[i], &be[i], gd[i]);
        assert_memory_equal(pe, ax_tensor_data(p), (size_t)n * sizeof *pe);
        if (c->has_mom) assert_memory_equal(be, ax_tensor_data(b), (size_t)n * sizeof *be);
        free(pe), free(be);
        ax_tensor_free(p), ax_tensor_free(b);
    }
    const ax_adamw_step_params adams[] = {
        {1.0f - 1e-3f * 1e-2f, 0.1f, 0.999f, 1.0f - 0.999f, -1e-3f / 0.1f, 0.0316f, 1e-8f}, /* step 1 */
        {1.0f, 0.1f, 0.98f, 0.02f, -0.03f, 0.7f, 1e-8f},                                /* no decay */
        {0.99f, 0.75f, 0.9f, 0.1f, -0.5f, 0.9f, 1e-6f},                                 /* beta1 0.25 */
    };
    for (size_t k = 0; k < sizeof adams / sizeof adams[0]; k++) {
        const ax_adamw_step_params *c = &adams[k];
        ax_tensor *p = copy_of(p0), *m = copy_of(b0), *v = copy_of(v0);
        float *pe = malloc((size_t)n * sizeof *pe), *me = malloc((size_t)n * sizeof *me),
              *ve = malloc((size_t)n * sizeof *ve);
        memcpy(pe, ax_tensor_data(p0), (size_t)n * sizeof *pe);
        memcpy(me, ax_tensor_data(b0), (size_t)n * sizeof *me);
        memcpy(ve, ax_tensor_data(v0), (size_t)n * sizeof *ve);
        OK(cpu()->adamw_step(p, m, v, g, c));
        for (int64_t i = 0; i < n; i++) ax_cm_adamw(c, &pe[i], &me[i], &ve[i], gd[i]);
        assert_memory_equal(pe, ax_tensor_data(p), (size_t)n * sizeof *pe);
        assert_memory_equal(me, ax_tensor_data(m), (size_t)n * sizeof *me);
        assert_memory_equal(ve, ax_tensor_data(v), (size_t)n * sizeof *ve);
        free(pe), free(me), free(ve);
        ax_tensor_free(p), ax_tensor_free(m), ax_tensor_free(v);
    }
    /* norms: the CUDA terms summed in order vs the CPU's lanes, to rounding */
    const double ps[] = {2.0, 1.0, 3.0, INFINITY};
    ax_tensor *x = randn(1, &n, 15);
    const float *xd = ax_tensor_data(x);
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
        double want = 0.5, got = 0.5; /* the kernels accumulate into what is there */
        const ax_tensor *xs[2] = {x, p0};
        OK(cpu()->grad_norm(&want, 2, xs, ps[k]));
        for (int j = 0; j < 2; j++) {
            const float *d = j ? (const float *)ax_tensor_data(p0) : xd;
            for (int64_t i = 0; i < n; i++) got = ax_cm_norm_combine(got, ax_cm_norm_term(d[i], ps[k]), isinf(ps[k]));
        }
        assert_true(fabs(want - got) <= 1e-12 * fabs(want));
    }
    const ax_tensor *gs[1] = {g}; /* NaN propagates, also through max */
    double acc = 0;
    OK(cpu()->grad_norm(&acc, 1, gs, INFINITY));
    assert_true(isnan(acc) && isnan(ax_cm_norm_combine(1.0, ax_cm_norm_term(NAN, INFINITY), true)));
    ax_tensor_free(x), ax_tensor_free(g), ax_tensor_free(p0), ax_tensor_free(b0), ax_tensor_free(v0);
}

/* ---- group norm + leaky_relu: the fused kernels' element math ------------------------------------
 * The host rebuild of ax_cuda_group_norm_act (double statistics around the
 * unit's first element, then ax_cm_norm_act per element) and of
 * ax_cuda_group_norm_act_backward (gated row sums in double with the
 * kernel's mean and rstd, ax_cm_norm_dx_coef per unit, ax_cm_norm_dx per
 * element, per-channel dweight/dbias), against the CPU's fused kernels. */

typedef struct norm_act_case {
    int ndim;
    int64_t shape[5];
    int64_t groups;
    double slope;
} norm_act_case;

static void norm_act_case_run(const norm_act_case *nc, uint64_t seed) {
    const int64_t n = nc->shape[0], c = nc->shape[1], groups = nc->groups, cpg = c / groups;
    int64_t s = 1;
    for (int d = 2; d < nc->ndim; d++) s *= nc->shape[d];
    const int64_t len = cpg * s, total = n * c * s, ms[2] = {n, groups};
    const float slope = (float)nc->slope;
    ax_tensor *x = randn(nc->ndim, nc->shape, seed), *dy = randn(nc->ndim, nc->shape, seed + 1);
    ax_tensor *w = randn(1, &c, seed + 2), *b = randn(1, &c, seed + 3);
    ax_tensor *y = empty(nc->ndim, nc->shape, AX_DTYPE_F32), *dx = empty(nc->ndim, nc->shape, AX_DTYPE_F32);
    ax_tensor *mean = empty(2, ms, AX_DTYPE_F32), *rstd = empty(2, ms, AX_DTYPE_F32), *dw, *db;
    OK(ax_tensor_zeros(&dw, 1, &c, AX_DTYPE_F32));
    OK(ax_tensor_zeros(&db, 1, &c, AX_DTYPE_F32));
    OK(cpu()->group_norm_act(y, mean, rstd, x, w, b, groups, 1e-5, nc->slope));
    OK(cpu()->group_norm_act_backward(dx, dw, db, dy, x, y, mean, rstd, w, groups, nc->slope));
    const float *xd = ax_tensor_data(x), *dyd = ax_tensor_data(dy), *wd = ax_tensor_data(w), *bd = ax_tensor_data(b);
    const float *yd = ax_tensor_data(y), *md = ax_tensor_data(mean), *rd = ax_tensor_data(rstd);
    float *ye = malloc((size_t)total * sizeof *ye), *dxe = malloc((size_t)total * sizeof *dxe);
    float *dwe = calloc((size_t)c, sizeof *dwe), *dbe = calloc((size_t)c, sizeof *dbe);
    double *sdy = malloc((size_t)(n * c) * sizeof *sdy), *sdx = malloc((size_t)(n * c) * sizeof *sdx);
    assert_true(ye && dxe && dwe && dbe && sdy && sdx);
    for (int64_t u = 0; u < n * groups; u++) {
        /* forward: ax_cu_norm_moments_kernel + ax_cu_norm_stats_kernel + the apply kernel */
        const float *xu = xd + u * len;
        double k = xu[0], s1 = 0, s2 = 0;
        for (int64_t i = 0; i < len; i++) s1 += (double)xu[i] - k, s2 += ((double)xu[i] - k) * ((double)xu[i] - k);
        double m1 = s1 / (double)len, m = k + m1, var = s2 / (double)len - m1 * m1;
        double r = 1.0 / sqrt((var < 0 ? 0 : var) + 1e-5);
        float mhi = (float)m, mlo = (float)(m - (double)mhi), rf = (float)r;
        for (int64_t i = 0; i < len; i++) {
            int64_t ch = (u % groups) * cpg + i / s;
            ye[u * len + i] = ax_cm_norm_act(xu[i], mhi, mlo, rf * wd[ch], bd[ch], slope);
        }
        /* backward: ax_cu_norm_rowsum_kernel with the gate, then the unit kernel */
        double swdy = 0, swdx = 0;
        for (int64_t j = 0; j < cpg; j++) {
            int64_t row = u * cpg + j, ch = (u % groups) * cpg + j;
            double a = 0, q = 0, mu = md[u];
            for (int64_t i = 0; i < s; i++) {
                double d = ax_cm_leaky_gate(dyd[row * s + i], yd[row * s + i], slope);
                a += d;
                q += d * ((double)xd[row * s + i] - mu);
            }
            sdy[row] = a, sdx[row] = q;
            swdy += wd[ch] * a, swdx += wd[ch] * q;
        }
        float bx, d0;
        ax_cm_norm_dx_coef(swdy, swdx, rd[u], len, &bx, &d0);
        for (int64_t i = 0; i < len; i++) {
            int64_t e = u * len + i, ch = (u % groups) * cpg + i / s;
            dxe[e] = ax_cm_norm_dx(ax_cm_leaky_gate(dyd[e], yd[e], slope), xd[e], rd[u] * wd[ch], bx, md[u], d0);
        }
    }
    for (int64_t ch = 0; ch < c; ch++) { /* ax_cu_norm_param_kernel */
        double a = 0, q = 0;
        for (int64_t i = 0; i < n; i++) a += (double)rd[i * groups + ch / cpg] * sdx[i * c + ch], q += sdy[i * c + ch];
        dwe[ch] = (float)a, dbe[ch] = (float)q;
    }
    expect_close(y, ye, 1e-5f, "group_norm_act y");
    expect_close(dx, dxe, 1e-5f, "group_norm_act_backward dx");
    expect_close(dw, dwe, 1e-5f, "group_norm_act_backward dweight");
    expect_close(db, dbe, 1e-5f, "group_norm_act_backward dbias");
    free(ye), free(dxe), free(dwe), free(dbe), free(sdy), free(sdx);
    ax_tensor *all[] = {x, dy, w, b, y, dx, mean, rstd, dw, db};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

static void test_norm_act(void **state) {
    (void)state;
    /* the gate is leaky_relu's backward with x = y, bit for bit, edge values included */
    ax_tensor *v = vec_f32(k_vals, N_VALS), *dyv = vec_f32(k_vals, N_VALS), *g = empty(1, (int64_t[]){N_VALS}, AX_DTYPE_F32);
    const double p[2] = {0.01, 0};
    OK(cpu()->unary_backward(AX_UNARY_LEAKY_RELU, g, dyv, v, v, p));
    for (int64_t i = 0; i < N_VALS; i++) {
        float dyi = k_vals[(i + 7) % N_VALS]; /* dy and y from different rows of the edge values */
        float want = ax_cm_unary_backward(AX_UNARY_LEAKY_RELU, dyi, k_vals[i], k_vals[i], 0.01f, 0);
        float got = ax_cm_leaky_gate(dyi, k_vals[i], 0.01f);
        assert_true(memcmp(&want, &got, sizeof got) == 0 || (isnan(want) && isnan(got)));
        float gc = (float)ax_tensor_get(g, i), gm = ax_cm_leaky_gate(k_vals[i], k_vals[i], 0.01f);
        assert_true(memcmp(&gc, &gm, sizeof gm) == 0 || (isnan(gc) && isnan(gm)));
    }
    ax_tensor_free(v), ax_tensor_free(dyv), ax_tensor_free(g);
    const norm_act_case cases[] = {
        {5, {2, 3, 5, 6, 7}, 3, 0.01}, /* instance norm, 210 per channel */
        {4, {2, 6, 4, 5}, 2, 0.0},     /* group norm, relu */
        {3, {3, 4, 1}, 1, 0.2},        /* one element per channel */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) norm_act_case_run(&cases[i], 700 + 10 * i);
}

/* The CUDA attention forward's per-row online softmax, rebuilt on the host
 * from cuda_math.h's helpers (tiles of 32 keys, rescaling by
 * ax_cm_att_corr), against the CPU sdpa kernel's o and lse; rows that see
 * nothing (scores overflowing to -inf) give o 0 and lse -inf in both. */
static void att_case(int64_t L, int64_t S, int64_t E, int64_t Ev, bool causal, bool overflow_row, uint64_t seed) {
    const int64_t T = 32;
    ax_tensor *q = randn(3, (int64_t[]){1, L, E}, seed), *k = randn(3, (int64_t[]){1, S, E}, seed + 1);
    ax_tensor *v = randn(3, (int64_t[]){1, S, Ev}, seed + 2), *o = empty(3, (int64_t[]){1, L, Ev}, AX_DTYPE_F32);
    ax_tensor *lse = empty(2, (int64_t[]){1, L}, AX_DTYPE_F32);
    float *qd = ax_tensor_data(q), *kd = ax_tensor_data(k), *vd = ax_tensor_data(v);
    if (overflow_row) { /* row 1's scores: -1e30 * 1e10 = -inf in f32 */
        for (int64_t i = 0; i < L; i++) qd[i * E] = i == 1 ? -1e30f : 0.0f;
        for (int64_t j = 0; j < S; j++) kd[j * E] = 1e10f;
    }
    const float scale = 0.3f;
    OK(cpu()->sdpa(o, lse, q, k, v, scale, causal));
    float *acc = malloc((size_t)Ev * sizeof *acc), *p = malloc((size_t)T * sizeof *p);
    assert_non_null(acc && p);
    for (int64_t i = 0; i < L; i++) {
        float m = -INFINITY, l = 0;
        for (int64_t c = 0; c < Ev; c++) acc[c] = 0;
        for (int64_t j0 = 0; j0 < S; j0 += T) {
            float s[32], mx = m, sum = 0;
            for (int64_t jj = 0; jj < T; jj++) {
                bool vis = ax_cm_att_visible(i, j0 + jj, S, causal);
                float d = 0;
                for (int64_t e = 0; vis && e < E; e++) d = fmaf(qd[i * E + e], kd[(j0 + jj) * E + e], d);
                s[jj] = vis ? d * scale : -INFINITY;
                mx = fmaxf(mx, s[jj]);
            }
            for (int64_t jj = 0; jj < T; jj++) sum += p[jj] = ax_cm_att_prob(s[jj], mx, s[jj] != -INFINITY);
            float corr = ax_cm_att_corr(m, mx);
            l = l * corr + sum;
            m = mx;
            for (int64_t c = 0; c < Ev; c++) {
                float x = acc[c] * corr;
                for (int64_t jj = 0; jj < T && j0 + jj < S; jj++) x = fmaf(p[jj], vd[(j0 + jj) * Ev + c], x);
                acc[c] = x;
            }
        }
        float want_lse = (float)ax_tensor_get(lse, i), got_lse = ax_cm_att_lse(m, l);
        if (!close_f(want_lse, got_lse, 1e-5f)) fail_msg("att row %lld: lse cpu %.9g, helpers %.9g", (long long)i, want_lse, got_lse);
        for (int64_t c = 0; c < Ev; c++) {
            float want = (float)ax_tensor_get(o, i * Ev + c), got = l > 0 ? acc[c] / l : 0.0f;
            if (!(fabsf(want - got) <= 1e-5f + 1e-4f * fabsf(want)))
                fail_msg("att row %lld col %lld: o cpu %.9g, helpers %.9g", (long long)i, (long long)c, want, got);
        }
        if (overflow_row && i == 1) assert_true(isinf(got_lse) && got_lse < 0 && isinf(want_lse));
    }
    free(acc);
    free(p);
    ax_tensor_free(q), ax_tensor_free(k), ax_tensor_free(v), ax_tensor_free(o), ax_tensor_free(lse);
}

static void test_attention(void **state) {
    (void)state;
    assert_true(ax_cm_att_corr(-INFINITY, 2.0f) == 0.0f);
    assert_true(ax_cm_att_corr(-INFINITY, -INFINITY) == 0.0f);
    assert_true(ax_cm_att_corr(1.5f, 1.5f) == 1.0f);
    assert_true(ax_cm_att_prob(3.0f, -INFINITY, true) == 0.0f && ax_cm_att_prob(3.0f, 1.0f, false) == 0.0f);
    assert_true(ax_cm_att_prob(1.0f, 1.0f, true) == 1.0f);
    assert_true(ax_cm_att_lse(5.0f, 0.0f) == -INFINITY && ax_cm_att_lse(2.0f, 1.0f) == 2.0f);
    assert_true(ax_cm_att_visible(3, 3, 5, true) && !ax_cm_att_visible(3, 4, 5, true) && !ax_cm_att_visible(9, 5, 5, false));
    att_case(40, 70, 13, 7, false, false, 900);
    att_case(75, 40, 8, 5, true, false, 910); /* L > S: late rows see every key */
    att_case(5, 37, 4, 3, false, true, 920);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary),       cmocka_unit_test(test_unary_backward), cmocka_unit_test(test_unary_int),
        cmocka_unit_test(test_binary),      cmocka_unit_test(test_argmax_rule),    cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_pool),        cmocka_unit_test(test_adaptive),       cmocka_unit_test(test_interpolate),
        cmocka_unit_test(test_pad),         cmocka_unit_test(test_optim),          cmocka_unit_test(test_norm_act),
        cmocka_unit_test(test_attention),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
