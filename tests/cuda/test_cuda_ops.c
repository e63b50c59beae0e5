/* Every kernel of the CUDA table against the CPU reference: forward and
 * backward, contiguous and strided operands, f32 and (where the CUDA
 * backend supports it) bf16, plus the error paths (unsupported dtype, out
 * of memory, out-of-range indices). Exits 77 without a usable GPU.
 *
 * TF32 is switched off (AXON_CUDA_TF32=0) so f32 convolutions and matmuls
 * can be held to f32 tolerances; bf16 results are compared with the CPU
 * computing in f32 on the same bf16-rounded inputs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/conv.h"
#include "cuda_test.h"

static const ax_kernels *C, *G;

static ax_tensor *randn(int ndim, const int64_t *shape, uint64_t seed) {
    ax_tensor *t;
    CT_OK(ax_tensor_randn(&t, ndim, shape, AX_DTYPE_F32, seed, 0));
    return t;
}

static ax_tensor *empty(int ndim, const int64_t *shape, ax_dtype dt) {
    ax_tensor *t;
    CT_OK(ax_tensor_zeros(&t, ndim, shape, dt));
    return t;
}

/* t rounded to bf16 and back (the CPU side of a bf16 comparison). */
static ax_tensor *bf16_round(const ax_tensor *t) {
    ax_tensor *b, *f;
    CT_OK(ax_tensor_to_dtype(&b, t, AX_DTYPE_BF16));
    CT_OK(ax_tensor_to_dtype(&f, b, AX_DTYPE_F32));
    ax_tensor_free(b);
    return f;
}

static ax_tensor *as_dtype(const ax_tensor *t, ax_dtype dt) {
    ax_tensor *o;
    CT_OK(ax_tensor_to_dtype(&o, t, dt));
    return o;
}

#define FREE(...)                                                               \
    do {                                                                        \
        ax_tensor *fr_[] = {__VA_ARGS__};                                       \
        for (size_t i_ = 0; i_ < sizeof fr_ / sizeof fr_[0]; i_++) ax_tensor_free(fr_[i_]); \
    } while (0)

static void section(const char *name) {
    static int last_failures;
    static const char *last;
    if (last) printf("%s %s\n", ct_failures == last_failures ? "ok  " : "FAIL", last);
    fflush(stdout);
    last = name;
    last_failures = ct_failures;
}

/* ---- memory, copies, fills ------------------------------------------------------------ */

static void test_transfer_copy_fill(void) {
    section("transfer, copy (dtype conversions, broadcast, strided), fill");
    int64_t shape[3] = {3, 5, 7};
    ax_tensor *x = randn(3, shape, 1);
    for (int64_t i = 0; i < ax_tensor_numel(x); i++) ax_tensor_set(x, i, ax_tensor_get(x, i) * 1e3);
    ax_dtype dts[] = {AX_DTYPE_F32, AX_DTYPE_BF16, AX_DTYPE_F16, AX_DTYPE_I32, AX_DTYPE_I64, AX_DTYPE_U8};
    for (int a = 0; a < 6; a++) {
        ax_tensor *xa = as_dtype(x, dts[a]), *g = to_gpu(xa), *back = to_cpu(g);
        expect_near(xa, back, 0, 0, "round trip");
        for (int b = 0; b < 6; b++) {
            ax_tensor *want = empty(3, shape, dts[b]);
            CT_OK(C->copy(want, xa));
            for (int strided = 0; strided < 2; strided++) {
                ax_tensor *src = strided ? gpu_strided(xa) : to_gpu(xa), *dst = gpu_like(want, 0, strided);
                CT_OK(G->copy(dst, src));
                char what[64];
                snprintf(what, sizeof what, "copy %s -> %s%s", ax_dtype_name(dts[a]), ax_dtype_name(dts[b]),
                         strided ? " strided" : "");
                expect_near(want, dst, 0, 0, what);
                FREE(src, dst);
            }
            FREE(want);
        }
        /* fill */
        ax_tensor *want = empty(3, shape, dts[a]), *dst = gpu_like(want, 0, true);
        CT_OK(C->fill(want, -3.75e9));
        CT_OK(G->fill(dst, -3.75e9));
        expect_near(want, dst, 0, 0, "fill");
        FREE(xa, g, back, want, dst);
    }
    /* broadcast source: [5, 1] into [3, 5, 7] */
    int64_t bs[2] = {5, 1};
    ax_tensor *b = randn(2, bs, 2), *want = empty(3, shape, AX_DTYPE_F32), *bg = to_gpu(b), *dst = gpu_like(want, 0, false);
    CT_OK(C->copy(want, b));
    CT_OK(G->copy(dst, bg));
    expect_near(want, dst, 0, 0, "copy broadcast");
    FREE(x, b, want, bg, dst);
}

/* ---- elementwise ---------------------------------------------------------------------------------- */

static void unary_params(int op, double *p) {
    p[0] = p[1] = 0;
    if (op == AX_UNARY_LEAKY_RELU) p[0] = 0.01;
    if (op == AX_UNARY_SOFTPLUS) p[0] = 1.5, p[1] = 20;
    if (op == AX_UNARY_CLAMP) p[0] = -0.5, p[1] = 0.75;
    if (op == AX_UNARY_POW) p[0] = 3.0;
    if (op == AX_UNARY_AFFINE) p[0] = 2.5, p[1] = -1;
}

/* Inputs valid for every op (log, sqrt want positive ones). */
static ax_tensor *unary_input(int op, const int64_t *shape, uint64_t seed) {
    ax_tensor *x = randn(3, shape, seed);
    if (op == AX_UNARY_LOG || op == AX_UNARY_SQRT || op == AX_UNARY_RSQRT || op == AX_UNARY_RECIPROCAL)
        for (int64_t i = 0; i < ax_tensor_numel(x); i++) ax_tensor_set(x, i, fabs(ax_tensor_get(x, i)) + 0.1);
    return x;
}

static void test_unary(void) {
    section("unary forward/backward (f32 contiguous + strided, bf16, integers)");
    int64_t shape[3] = {4, 6, 33};
    for (int op = AX_UNARY_NEG; op <= AX_UNARY_RECIPROCAL; op++) {
        double p[2];
        unary_params(op, p);
        ax_tensor *x = unary_input(op, shape, 10 + (uint64_t)op), *y = empty(3, shape, AX_DTYPE_F32);
        ax_tensor *dy = randn(3, shape, 50 + (uint64_t)op), *dx = empty(3, shape, AX_DTYPE_F32);
        CT_OK(C->unary((ax_unary_op)op, y, x, p));
        CT_OK(C->unary_backward((ax_unary_op)op, dx, dy, x, y, p));
        char what[64];
        for (int strided = 0; strided < 2; strided++) {
            ax_tensor *xg = strided ? gpu_strided(x) : to_gpu(x), *yg = gpu_like(y, 0, strided);
            ax_tensor *dyg = strided ? gpu_strided(dy) : to_gpu(dy), *dxg = gpu_like(dx, 0, strided);
            CT_OK(G->unary((ax_unary_op)op, yg, xg, p));
            snprintf(what, sizeof what, "unary %d%s", op, strided ? " strided" : "");
            expect_near(y, yg, 1e-5, 1e-6, what); /* libm and CUDA math differ by an ulp or two */
            for (int with_y = 0; with_y < 2; with_y++) {
                CT_OK(G->unary_backward((ax_unary_op)op, dxg, dyg, xg, with_y ? yg : NULL, p));
                snprintf(what, sizeof what, "unary backward %d%s%s", op, strided ? " strided" : "", with_y ? "" : " (no y)");
                expect_near(dx, dxg, 2e-5, 1e-6, what);
            }
            FREE(xg, yg, dyg, dxg);
        }
        /* bf16 in, bf16 out, f32 math */
        ax_tensor *xr = bf16_round(x), *yr = empty(3, shape, AX_DTYPE_F32);
        CT_OK(C->unary((ax_unary_op)op, yr, xr, p));
        ax_tensor *want = bf16_round(yr), *xb = as_dtype(x, AX_DTYPE_BF16), *xbg = to_gpu(xb);
        ax_tensor *ybg = gpu_like(xb, 0, false);
        CT_OK(G->unary((ax_unary_op)op, ybg, xbg, p));
        snprintf(what, sizeof what, "unary %d bf16", op);
        expect_near(want, ybg, 8e-3, 1e-6, what);
        FREE(x, y, dy, dx, xr, yr, want, xb, xbg, ybg);
    }
    /* integers: NEG, ABS, SIGN, CLAMP, AFFINE saturate */
    ax_dtype its[] = {AX_DTYPE_I32, AX_DTYPE_I64, AX_DTYPE_U8};
    int iops[] = {AX_UNARY_NEG, AX_UNARY_ABS, AX_UNARY_SIGN, AX_UNARY_CLAMP, AX_UNARY_AFFINE};
    for (int t = 0; t < 3; t++) {
        ax_tensor *xf = randn(3, shape, 99);
        for (int64_t i = 0; i < ax_tensor_numel(xf); i++) ax_tensor_set(xf, i, ax_tensor_get(xf, i) * 3e9);
        ax_tensor *x = as_dtype(xf, its[t]);
        for (int k = 0; k < 5; k++) {
            double p[2] = {-1e5, 2e9};
            if (iops[k] == AX_UNARY_AFFINE) p[0] = 3, p[1] = -7;
            ax_tensor *y = empty(3, shape, its[t]), *xg = gpu_strided(x), *yg = gpu_like(y, 0, true);
            CT_OK(C->unary((ax_unary_op)iops[k], y, x, p));
            CT_OK(G->unary((ax_unary_op)iops[k], yg, xg, p));
            char what[64];
            snprintf(what, sizeof what, "unary %d %s", iops[k], ax_dtype_name(its[t]));
            expect_near(y, yg, 0, 0, what);
            FREE(y, xg, yg);
        }
        FREE(xf, x);
    }
}

static void test_binary_where(void) {
    section("binary (broadcast, strided, bf16, i64) and where");
    int64_t sa[3] = {4, 1, 9}, sb[2] = {6, 1}, so[3] = {4, 6, 9};
    ax_tensor *a = randn(3, sa, 3), *b = randn(2, sb, 4);
    ax_tensor_set(b, 2, ax_tensor_get(a, 0)); /* some equal pairs for the comparisons */
    for (int op = AX_BINARY_ADD; op <= AX_BINARY_GE; op++) {
        bool cmp = op >= AX_BINARY_EQ;
        ax_tensor *aa = op == AX_BINARY_POW ? NULL : ax_tensor_retain(a);
        if (!aa) { /* pow: positive base */
            aa = randn(3, sa, 5);
            for (int64_t i = 0; i < ax_tensor_numel(aa); i++) ax_tensor_set(aa, i, fabs(ax_tensor_get(aa, i)) + 0.5);
        }
        ax_tensor *o = empty(3, so, cmp ? AX_DTYPE_U8 : AX_DTYPE_F32);
        CT_OK(C->binary((ax_binary_op)op, o, aa, b));
        for (int strided = 0; strided < 2; strided++) {
            ax_tensor *ag = strided ? gpu_strided(aa) : to_gpu(aa), *bg = strided ? gpu_strided(b) : to_gpu(b);
            ax_tensor *og = gpu_like(o, 0, strided);
            CT_OK(G->binary((ax_binary_op)op, og, ag, bg));
            char what[64];
            snprintf(what, sizeof what, "binary %d%s", op, strided ? " strided" : "");
            expect_near(o, og, 2e-6, 1e-7, what);
            FREE(ag, bg, og);
        }
        FREE(aa, o);
    }
    /* bf16 add / mul */
    ax_tensor *ar = bf16_round(a), *br = bf16_round(b), *ab = as_dtype(a, AX_DTYPE_BF16), *bb = as_dtype(b, AX_DTYPE_BF16);
    for (int op = AX_BINARY_ADD; op <= AX_BINARY_MUL; op++) {
        ax_tensor *o = empty(3, so, AX_DTYPE_F32);
        CT_OK(C->binary((ax_binary_op)op, o, ar, br));
        ax_tensor *want = bf16_round(o), *ag = to_gpu(ab), *bg = to_gpu(bb), *og;
        CT_OK(ax_tensor_empty_on(&og, 3, so, AX_DTYPE_BF16, ct_gpu));
        CT_OK(G->binary((ax_binary_op)op, og, ag, bg));
        expect_near(want, og, 8e-3, 1e-6, "binary bf16");
        FREE(o, want, ag, bg, og);
    }
    /* i64 */
    ax_tensor *ai = as_dtype(a, AX_DTYPE_I64), *bi = as_dtype(b, AX_DTYPE_I64);
    for (int64_t i = 0; i < ax_tensor_numel(ai); i++) ax_tensor_set(ai, i, (double)(i * 7919 % 23) - 11);
    for (int op = AX_BINARY_ADD; op <= AX_BINARY_GE; op++) {
        if (op == AX_BINARY_DIV || op == AX_BINARY_POW) continue;
        bool cmp = op >= AX_BINARY_EQ;
        ax_tensor *o = empty(3, so, cmp ? AX_DTYPE_U8 : AX_DTYPE_I64), *ag = gpu_strided(ai), *bg = to_gpu(bi);
        ax_tensor *og = gpu_like(o, 0, false);
        CT_OK(C->binary((ax_binary_op)op, o, ai, bi));
        CT_OK(G->binary((ax_binary_op)op, og, ag, bg));
        expect_near(o, og, 0, 0, "binary i64");
        FREE(o, ag, bg, og);
    }
    /* where, f32 and i64, broadcast cond */
    ax_tensor *cond = empty(3, sa, AX_DTYPE_U8);
    CT_OK(C->binary(AX_BINARY_GT, cond, a, (ax_tensor *)ar));
    for (int64_t i = 0; i < ax_tensor_numel(cond); i++) ax_tensor_set(cond, i, (double)(i % 3 == 0));
    ax_tensor *bo = empty(3, so, AX_DTYPE_F32), *o = empty(3, so, AX_DTYPE_F32);
    CT_OK(C->copy(bo, b));
    CT_OK(C->where(o, cond, a, bo));
    ax_tensor *cg = gpu_strided(cond), *ag = to_gpu(a), *bg = gpu_strided(bo), *og = gpu_like(o, 0, true);
    CT_OK(G->where(og, cg, ag, bg));
    expect_near(o, og, 0, 0, "where");
    FREE(a, b, ar, br, ab, bb, ai, bi, cond, bo, o, cg, ag, bg, og);
}

/* ---- reductions, softmax ---------------------------------------------------------------------------- */

static void test_reduce_softmax(void) {
    section("reduce (sum/max/min + argmax, masks, strided, long) and softmax forward/backward");
    int64_t shape[4] = {3, 5, 8, 70};
    ax_tensor *x = randn(4, shape, 20);
    ax_tensor_set(x, 17, ax_tensor_get(x, 16)); /* a tie */
    const uint32_t masks[] = {8u, 1u, 6u, 15u, 5u, 2u};
    for (size_t mi = 0; mi < sizeof masks / sizeof masks[0]; mi++) {
        int64_t os[4];
        for (int d = 0; d < 4; d++) os[d] = masks[mi] >> d & 1 ? 1 : shape[d];
        for (int op = AX_REDUCE_SUM; op <= AX_REDUCE_MIN; op++) {
            ax_tensor *o = empty(4, os, AX_DTYPE_F32), *idx = empty(4, os, AX_DTYPE_I64);
            CT_OK(C->reduce((ax_reduce_op)op, o, op == AX_REDUCE_SUM ? NULL : idx, x, masks[mi]));
            for (int strided = 0; strided < 2; strided++) {
                ax_tensor *xg = strided ? gpu_strided(x) : to_gpu(x), *og = gpu_like(o, 0, strided);
                ax_tensor *ig = gpu_like(idx, 0, strided);
                CT_OK(G->reduce((ax_reduce_op)op, og, op == AX_REDUCE_SUM ? NULL : ig, xg, masks[mi]));
                char what[64];
                snprintf(what, sizeof what, "reduce %d mask 0x%x%s", op, masks[mi], strided ? " strided" : "");
                expect_near(o, og, 1e-5, 1e-5, what);
                if (op != AX_REDUCE_SUM) expect_near(idx, ig, 0, 0, "argmax/argmin index");
                FREE(xg, og, ig);
            }
            FREE(o, idx);
        }
    }
    /* few long sums: the two-pass (chunk partials, then totals) path */
    int64_t ws[2] = {3, 300000}, wo[2] = {3, 1};
    ax_tensor *xw = randn(2, ws, 23), *ow = empty(2, wo, AX_DTYPE_F32), *xwg = to_gpu(xw), *owg = gpu_like(ow, 0, false);
    CT_OK(C->reduce(AX_REDUCE_SUM, ow, NULL, xw, 2u));
    CT_OK(G->reduce(AX_REDUCE_SUM, owg, NULL, xwg, 2u));
    expect_near(ow, owg, 1e-5, 1e-4, "reduce sum, 300000 per output");
    FREE(xw, ow, xwg, owg);
    /* softmax along each dim, short (thread per row) and long (block per row) rows */
    int64_t ls[2] = {3, 3000};
    ax_tensor *xl = randn(2, ls, 21);
    ax_tensor *xs[2] = {x, xl};
    for (int t = 0; t < 2; t++)
        for (int dim = 0; dim < xs[t]->ndim; dim++)
            for (int lg = 0; lg < 2; lg++) {
                ax_tensor *y = empty(xs[t]->ndim, xs[t]->shape, AX_DTYPE_F32), *dy = randn(xs[t]->ndim, xs[t]->shape, 22);
                ax_tensor *dx = empty(xs[t]->ndim, xs[t]->shape, AX_DTYPE_F32);
                CT_OK(C->softmax(y, xs[t], dim, lg));
                CT_OK(C->softmax_backward(dx, dy, y, dim, lg));
                ax_tensor *xg = gpu_strided(xs[t]), *yg = gpu_like(y, 0, true), *dyg = to_gpu(dy), *dxg = gpu_like(dx, 0, false);
                CT_OK(G->softmax(yg, xg, dim, lg));
                ax_tensor *yc = to_gpu(y); /* backward from the same y */
                CT_OK(G->softmax_backward(dxg, dyg, yc, dim, lg));
                expect_near(y, yg, 1e-5, 1e-7, lg ? "log_softmax" : "softmax");
                expect_near(dx, dxg, 1e-4, 1e-6, "softmax backward");
                FREE(y, dy, dx, xg, yg, dyg, dxg, yc);
            }
    FREE(x, xl);
}

/* ---- matmul and convolutions ------------------------------------------------------------------------ */

static void test_matmul(void) {
    section("matmul (ta/tb, alpha/beta, batch broadcast, bf16)");
    const int64_t B = 3, M = 17, K = 33, N = 9;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int bcast = 0; bcast < 2; bcast++) {
                int64_t as[3] = {bcast ? 1 : B, ta ? K : M, ta ? M : K}, bs[3] = {B, tb ? N : K, tb ? K : N}, os[3] = {B, M, N};
                ax_tensor *a = randn(3, as, 30), *b = randn(3, bs, 31), *o = randn(3, os, 32);
                ax_tensor *og = to_gpu(o), *ag = to_gpu(a), *bg = to_gpu(b);
                if (bcast) { /* the CPU kernel wants equal batches: expand a there */
                    ax_tensor *e, *ec;
                    CT_OK(ax_tensor_expand(&e, a, 3, (int64_t[]){B, -1, -1}));
                    CT_OK(ax_tensor_contiguous(&ec, e));
                    CT_OK(C->matmul(o, ec, b, ta, tb, 0.5f, 0.25f));
                    FREE(e, ec);
                } else {
                    CT_OK(C->matmul(o, a, b, ta, tb, 0.5f, 0.25f));
                }
                CT_OK(G->matmul(og, ag, bg, ta, tb, 0.5f, 0.25f));
                expect_near(o, og, 1e-4, 1e-4, "matmul f32");
                FREE(a, b, o, og, ag, bg);
            }
    int64_t as[3] = {B, M, K}, bs[3] = {B, K, N}, os[3] = {B, M, N};
    ax_tensor *a = randn(3, as, 33), *b = randn(3, bs, 34), *o = empty(3, os, AX_DTYPE_F32);
    ax_tensor *ar = bf16_round(a), *br = bf16_round(b);
    CT_OK(C->matmul(o, ar, br, false, false, 1, 0));
    ax_tensor *ab = as_dtype(a, AX_DTYPE_BF16), *bb = as_dtype(b, AX_DTYPE_BF16), *ag = to_gpu(ab), *bg = to_gpu(bb);
    ax_tensor *og = gpu_like(o, 0, false);
    CT_OK(G->matmul(og, ag, bg, false, false, 1, 0));
    expect_near(o, og, 1e-3, 1e-3, "matmul bf16 in, f32 out (f32 accumulation)");
    FREE(a, b, o, ar, br, ab, bb, ag, bg, og);
}

typedef struct conv_case {
    int64_t n, ci, co, in[3], k[3];
    ax_conv_params p;
} conv_case;

static int64_t conv_out(bool tr, int64_t in, int64_t k, const ax_conv_params *p, int d) {
    if (tr) return (in - 1) * p->stride[d] - 2 * p->padding[d] + p->dilation[d] * (k - 1) + p->output_padding[d] + 1;
    return (in + 2 * p->padding[d] - p->dilation[d] * (k - 1) - 1) / p->stride[d] + 1;
}

static void conv_one(const conv_case *cc, bool tr, bool bf16, bool ndhwc) {
    const ax_conv_params *p = &cc->p;
    int64_t g = p->groups;
    int64_t xs[5] = {cc->n, cc->ci, cc->in[0], cc->in[1], cc->in[2]};
    int64_t ws[5] = {tr ? cc->ci : cc->co, tr ? cc->co / g : cc->ci / g, cc->k[0], cc->k[1], cc->k[2]};
    int64_t ys[5] = {cc->n, cc->co, 0, 0, 0}, bs[1] = {cc->co};
    for (int d = 0; d < 3; d++) ys[2 + d] = conv_out(tr, cc->in[d], cc->k[d], p, d);
    ax_tensor *x = randn(5, xs, 40), *w = randn(5, ws, 41), *b = randn(1, bs, 42), *dy = randn(5, ys, 43);
    if (bf16) {
        ax_tensor *t[4] = {x, w, b, dy};
        for (int i = 0; i < 4; i++) {
            ax_tensor *r = bf16_round(t[i]);
            ax_tensor_free(t[i]);
            t[i] = r;
        }
        x = t[0], w = t[1], b = t[2], dy = t[3];
    }
    ax_tensor *y = empty(5, ys, AX_DTYPE_F32), *dx = empty(5, xs, AX_DTYPE_F32), *dw = randn(5, ws, 44), *db = randn(1, bs, 45);
    ax_tensor *dw0 = to_gpu(dw), *db0 = to_gpu(db); /* += onto these */
    CT_OK(tr ? C->conv_transpose3d(y, x, w, b, p) : C->conv3d(y, x, w, b, p));
    CT_OK(tr ? C->conv_transpose3d_backward(dx, dw, db, dy, x, w, p) : C->conv3d_backward(dx, dw, db, dy, x, w, p));
    ax_dtype dt = bf16 ? AX_DTYPE_BF16 : AX_DTYPE_F32;
    ax_tensor *xd = as_dtype(x, dt), *wd = as_dtype(w, dt), *dyd = as_dtype(dy, dt);
    ax_tensor *xg, *yg, *dxg, *wg = to_gpu(wd), *bg = to_gpu(b), *dyg = to_gpu(dyd), *dwg, *dbg = db0;
    if (ndhwc) {
        /* channels-last storage, NCDHW view: x, y and dx as cuDNN NDHWC tensors */
        const int to_cl[5] = {0, 2, 3, 4, 1}, from_cl[5] = {0, 4, 1, 2, 3};
        ax_tensor *xp, *xpc, *xpg;
        CT_OK(ax_tensor_permute(&xp, xd, to_cl));
        CT_OK(ax_tensor_contiguous(&xpc, xp));
        xpg = to_gpu(xpc);
        CT_OK(ax_tensor_permute(&xg, xpg, from_cl));
        ax_tensor *yb, *dxb;
        int64_t ycl[5] = {ys[0], ys[2], ys[3], ys[4], ys[1]}, xcl[5] = {xs[0], xs[2], xs[3], xs[4], xs[1]};
        CT_OK(ax_tensor_empty_on(&yb, 5, ycl, dt, ct_gpu));
        CT_OK(ax_tensor_empty_on(&dxb, 5, xcl, dt, ct_gpu));
        CT_OK(ax_tensor_permute(&yg, yb, from_cl));
        CT_OK(ax_tensor_permute(&dxg, dxb, from_cl));
        FREE(xp, xpc, xpg, yb, dxb);
    } else {
        xg = to_gpu(xd);
        CT_OK(ax_tensor_empty_on(&yg, 5, ys, dt, ct_gpu));
        CT_OK(ax_tensor_empty_on(&dxg, 5, xs, dt, ct_gpu));
    }
    if (bf16) {
        ax_tensor *dwc = to_cpu(dw0), *dwb = as_dtype(dwc, AX_DTYPE_BF16);
        dwg = to_gpu(dwb);
        FREE(dwc, dwb);
    } else {
        dwg = ax_tensor_retain(dw0);
    }
    char what[96];
    snprintf(what, sizeof what, "%s %s%s g%lld s%lld", tr ? "conv_transpose3d" : "conv3d", bf16 ? "bf16" : "f32",
             ndhwc ? " ndhwc" : "", (long long)g, (long long)p->stride[0]);
    /* a refused layout is a failure of this case only: report it and go on */
    ax_status st = tr ? G->conv_transpose3d(yg, xg, wg, bg, p) : G->conv3d(yg, xg, wg, bg, p);
    if (st == AX_OK)
        st = tr ? G->conv_transpose3d_backward(ndhwc ? NULL : dxg, dwg, ndhwc ? NULL : dbg, dyg, xg, wg, p)
                : G->conv3d_backward(dxg, dwg, ndhwc ? NULL : dbg, dyg, xg, wg, p);
    if (st != AX_OK) {
        fprintf(stderr, "FAIL %s: %s\n", what, ax_error_message());
        ct_failures++;
        goto done;
    }
    double rt = bf16 ? 2e-2 : 1e-4;
    double sy = max_abs(y), sdx = max_abs(dx), sdw = max_abs(dw);
    expect_near(y, yg, rt, rt * sy, what);
    if (!(ndhwc && tr)) expect_near(dx, dxg, rt, rt * sdx, "  dx");
    expect_near(dw, dwg, rt, rt * sdw, "  dw (+=)");
    if (!ndhwc) expect_near(db, dbg, 1e-4, 1e-4 * max_abs(db), "  db (+=)");
done:
    FREE(x, w, b, dy, y, dx, dw, db, dw0, xd, wd, dyd, xg, yg, dxg, wg, bg, dyg, dwg);
    if (dbg != db0) ax_tensor_free(dbg);
    ax_tensor_free(db0);
}

static void test_conv(void) {
    section("conv3d / conv_transpose3d forward + backward (cuDNN; f32, bf16, NDHWC)");
    if (!G->supports(AX_KOP_CONV, AX_DTYPE_F32)) {
        printf("     (built without cuDNN: convolutions not tested)\n");
        return;
    }
    conv_case cases[] = {
        {2, 4, 8, {9, 10, 11}, {3, 3, 3}, {{1, 1, 1}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 1}},
        {2, 4, 6, {9, 8, 7}, {3, 3, 3}, {{2, 2, 2}, {1, 1, 1}, {1, 1, 1}, {0, 0, 0}, 2}},
        {1, 3, 5, {8, 8, 8}, {3, 1, 3}, {{1, 1, 1}, {2, 0, 2}, {2, 1, 2}, {0, 0, 0}, 1}},
        {2, 8, 4, {6, 6, 6}, {1, 1, 1}, {{1, 1, 1}, {0, 0, 0}, {1, 1, 1}, {0, 0, 0}, 1}},
    };
    conv_case tcases[] = {
        {2, 8, 4, {4, 5, 6}, {2, 2, 2}, {{2, 2, 2}, {0, 0, 0}, {1, 1, 1}, {0, 0, 0}, 1}},
        {1, 6, 4, {5, 4, 3}, {3, 3, 3}, {{2, 2, 2}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 2}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int bf = 0; bf < 2; bf++) conv_one(&cases[i], false, bf, false);
    conv_one(&cases[0], false, false, true);
    conv_one(&cases[1], false, true, true);
    for (size_t i = 0; i < sizeof tcases / sizeof tcases[0]; i++)
        for (int bf = 0; bf < 2; bf++) conv_one(&tcases[i], true, bf, false);
    conv_one(&tcases[0], true, false, true);
}

/* ---- norms, pooling, resampling, padding, indexing --------------------------------------------------------- */

static void test_group_norm(void) {
    section("group_norm forward/backward (groups 1, 4, C; long channels; strided x)");
    int64_t shapes[][5] = {{2, 8, 5, 6, 7}, {2, 4, 40, 40, 40}};
    const int64_t groups[] = {1, 4, 8};
    for (int si = 0; si < 2; si++)
        for (int gi = 0; gi < 3; gi++) {
            int64_t *s = shapes[si], c = s[1], gr = groups[gi] > c ? c : groups[gi];
            ax_tensor *x = randn(5, s, 60), *dy = randn(5, s, 61), *w = randn(1, &c, 62), *b = randn(1, &c, 63);
            for (int64_t i = 0; i < ax_tensor_numel(x); i++) ax_tensor_set(x, i, ax_tensor_get(x, i) * 3 + 5);
            int64_t ms[2] = {s[0], gr};
            ax_tensor *y = empty(5, s, AX_DTYPE_F32), *m = empty(2, ms, AX_DTYPE_F32), *r = empty(2, ms, AX_DTYPE_F32);
            ax_tensor *dx = empty(5, s, AX_DTYPE_F32), *dw = randn(1, &c, 64), *dbias = randn(1, &c, 65);
            ax_tensor *dwg = to_gpu(dw), *dbg = to_gpu(dbias);
            CT_OK(C->group_norm(y, m, r, x, w, b, gr, 1e-5));
            CT_OK(C->group_norm_backward(dx, dw, dbias, dy, x, m, r, w, gr));
            ax_tensor *xg = si ? to_gpu(x) : gpu_strided(x), *yg = gpu_like(y, 0, si == 0), *mg = gpu_like(m, 0, false);
            ax_tensor *rg = gpu_like(r, 0, false), *wg = to_gpu(w), *bg = to_gpu(b), *dyg = to_gpu(dy), *dxg = gpu_like(dx, 0, false);
            CT_OK(G->group_norm(yg, mg, rg, xg, wg, bg, gr, 1e-5));
            CT_OK(G->group_norm_backward(dxg, dwg, dbg, dyg, xg, mg, rg, wg, gr));
            expect_near(y, yg, 1e-5, 1e-5, "group_norm y");
            expect_near(m, mg, 1e-6, 1e-6, "  mean");
            expect_near(r, rg, 1e-5, 1e-6, "  rstd");
            expect_near(dx, dxg, 1e-4, 1e-5, "  dx");
            expect_near(dw, dwg, 1e-4, 1e-3, "  dweight (+=)");
            expect_near(dbias, dbg, 1e-4, 1e-3, "  dbias (+=)");
            FREE(x, dy, w, b, y, m, r, dx, dw, dbias, dwg, dbg, xg, yg, mg, rg, wg, bg, dyg, dxg);
        }
}

/* The fused members against the CPU's, contiguous (as the front-end passes
 * them). The GPU backward reads the CPU's y, so both gate dy identically
 * even where a pre-activation rounds to opposite sides of 0. */
static void test_group_norm_act(void) {
    section("group_norm_act forward/backward (instance norm + leaky_relu; group norm + relu; no dx)");
    int64_t shapes[][5] = {{2, 8, 5, 6, 7}, {2, 4, 40, 40, 40}, {2, 6, 9, 9, 1}};
    const int64_t groups[] = {8, 4, 2};
    const double slopes[] = {0.01, 0.01, 0.0};
    for (int si = 0; si < 3; si++) {
        int64_t *s = shapes[si], c = s[1], gr = groups[si], ms[2] = {s[0], gr};
        ax_tensor *x = randn(5, s, 70), *dy = randn(5, s, 71), *w = randn(1, &c, 72), *b = randn(1, &c, 73);
        ax_tensor *y = empty(5, s, AX_DTYPE_F32), *m = empty(2, ms, AX_DTYPE_F32), *r = empty(2, ms, AX_DTYPE_F32);
        ax_tensor *dx = empty(5, s, AX_DTYPE_F32), *dw = randn(1, &c, 74), *dbias = randn(1, &c, 75);
        ax_tensor *dw2 = empty(1, &c, AX_DTYPE_F32);
        ax_tensor *dwg = to_gpu(dw), *dbg = to_gpu(dbias), *dw2g = to_gpu(dw2);
        CT_OK(C->group_norm_act(y, m, r, x, w, b, gr, 1e-5, slopes[si]));
        CT_OK(C->group_norm_act_backward(dx, dw, dbias, dy, x, y, m, r, w, gr, slopes[si]));
        CT_OK(C->group_norm_act_backward(NULL, dw2, NULL, dy, x, y, m, r, w, gr, slopes[si]));
        ax_tensor *xg = to_gpu(x), *yg = gpu_like(y, 0, false), *mg = gpu_like(m, 0, false), *rg = gpu_like(r, 0, false);
        ax_tensor *wg = to_gpu(w), *bg = to_gpu(b), *dyg = to_gpu(dy), *dxg = gpu_like(dx, 0, false), *ycg = to_gpu(y);
        CT_OK(G->group_norm_act(yg, mg, rg, xg, wg, bg, gr, 1e-5, slopes[si]));
        CT_OK(G->group_norm_act_backward(dxg, dwg, dbg, dyg, xg, ycg, mg, rg, wg, gr, slopes[si]));
        CT_OK(G->group_norm_act_backward(NULL, dw2g, NULL, dyg, xg, ycg, mg, rg, wg, gr, slopes[si]));
        expect_near(y, yg, 1e-5, 1e-5, "group_norm_act y");
        expect_near(m, mg, 1e-6, 1e-6, "  mean");
        expect_near(r, rg, 1e-5, 1e-6, "  rstd");
        expect_near(dx, dxg, 1e-4, 1e-5, "  dx");
        expect_near(dw, dwg, 1e-4, 1e-3, "  dweight (+=)");
        expect_near(dbias, dbg, 1e-4, 1e-3, "  dbias (+=)");
        expect_near(dw2, dw2g, 1e-4, 1e-3, "  dweight without dx");
        FREE(x, dy, w, b, y, m, r, dx, dw, dbias, dw2, dwg, dbg, dw2g, xg, yg, mg, rg, wg, bg, dyg, dxg, ycg);
    }
    /* a negative slope is refused (the backward could not read the branch from y) */
    int64_t s[3] = {2, 3, 4}, ms[2] = {2, 3};
    ax_tensor *x = randn(3, s, 76), *xg = to_gpu(x), *yg = gpu_like(x, 0, false);
    ax_tensor *m = empty(2, ms, AX_DTYPE_F32), *mgs = to_gpu(m), *rgs = to_gpu(m);
    if (G->group_norm_act(yg, mgs, rgs, xg, NULL, NULL, 3, 1e-5, -0.5) != AX_ERR_INVALID) {
        fprintf(stderr, "FAIL group_norm_act accepted slope -0.5\n");
        ct_failures++;
    }
    FREE(x, xg, yg, m, mgs, rgs);
}

static void test_linear(void) {
    section("linear fused epilogues (none/relu/gelu_tanh, bias or not, aux ld % 8 or not; f32 and bf16) + backward");
    const int64_t shapes[][3] = {{37, 24, 19}, {64, 13, 33}}; /* M, N, K: N = 13 runs GELU's pre unfused */
    const ax_linear_act_op acts[] = {AX_LINEAR_ACT_NONE, AX_LINEAR_ACT_RELU, AX_LINEAR_ACT_GELU_TANH};
    for (int si = 0; si < 2; si++)
        for (int ai = 0; ai < 3; ai++)
            for (int bf = 0; bf < 2; bf++) {
                int64_t m = shapes[si][0], n = shapes[si][1], k = shapes[si][2];
                int64_t xs[2] = {m, k}, ws[2] = {n, k}, ys[2] = {m, n};
                ax_linear_act_op act = acts[ai];
                bool bias = ai != 1 || si == 0, gelu = act == AX_LINEAR_ACT_GELU_TANH;
                ax_dtype dt = bf ? AX_DTYPE_BF16 : AX_DTYPE_F32;
                ax_tensor *x0 = randn(2, xs, 80), *w0 = randn(2, ws, 81), *b0 = randn(1, &n, 82), *dy0 = randn(2, ys, 83);
                /* CPU reference on the (rounded) values the GPU sees */
                ax_tensor *x = bf ? bf16_round(x0) : as_dtype(x0, AX_DTYPE_F32), *w = bf ? bf16_round(w0) : as_dtype(w0, AX_DTYPE_F32),
                          *b = bf ? bf16_round(b0) : as_dtype(b0, AX_DTYPE_F32), *dy = bf ? bf16_round(dy0) : as_dtype(dy0, AX_DTYPE_F32);
                ax_tensor *y = empty(2, ys, AX_DTYPE_F32), *pre = empty(2, ys, AX_DTYPE_F32);
                ax_tensor *dx = empty(2, xs, AX_DTYPE_F32), *dw = randn(2, ws, 84), *db = randn(1, &n, 85);
                CT_OK(C->linear(y, gelu ? pre : NULL, x, w, bias ? b : NULL, act));
                CT_OK(C->linear_backward(dx, dw, db, dy, x, w, gelu ? pre : act == AX_LINEAR_ACT_RELU ? y : NULL, act));
                ax_tensor *xd = as_dtype(x, dt), *wd = as_dtype(w, dt), *bd = as_dtype(b, dt), *dyd = as_dtype(dy, dt);
                ax_tensor *dw0 = randn(2, ws, 84), *dwd = as_dtype(dw0, dt), *db0 = randn(1, &n, 85);
                ax_tensor *xg = to_gpu(xd), *wg = to_gpu(wd), *bg = to_gpu(bd), *dyg = to_gpu(dyd);
                ax_tensor *yg = gpu_like(y, dt, false), *preg = gpu_like(y, dt, false), *dxg = gpu_like(dx, dt, false);
                ax_tensor *dwg = to_gpu(dwd), *dbg = to_gpu(db0);
                CT_OK(G->linear(yg, gelu ? preg : NULL, xg, wg, bias ? bg : NULL, act));
                CT_OK(G->linear_backward(dxg, dwg, dbg, dyg, xg, wg, gelu ? preg : act == AX_LINEAR_ACT_RELU ? yg : NULL, act));
                char what[96];
                double tol = bf ? 2e-2 : 1e-4, sy = bf ? 2e-2 * max_abs(y) : 1e-4;
                snprintf(what, sizeof what, "linear %s act %d M %lld N %lld%s y", bf ? "bf16" : "f32", (int)act,
                         (long long)m, (long long)n, bias ? "" : " no bias");
                expect_near(y, yg, tol, sy, what);
                if (gelu) expect_near(pre, preg, tol, bf ? 2e-2 * max_abs(pre) : 1e-4, "  pre (aux)");
                expect_near(dx, dxg, tol, bf ? 3e-2 * max_abs(dx) : 1e-4, "  dx");
                expect_near(dw, dwg, tol, bf ? 3e-2 * max_abs(dw) : 1e-4, "  dw (+=)");
                expect_near(db, dbg, tol, bf ? 3e-2 * max_abs(db) : 1e-4, "  db (+=)");
                FREE(x0, w0, b0, dy0, x, w, b, dy, y, pre, dx, dw, db, xd, wd, bd, dyd, dw0, dwd, db0);
                FREE(xg, wg, bg, dyg, yg, preg, dxg, dwg, dbg);
            }
    /* shapes that do not chain are refused, naming the kernel */
    int64_t xs[2] = {4, 5}, ws[2] = {3, 6}, ys[2] = {4, 3};
    ax_tensor *x = empty(2, xs, AX_DTYPE_F32), *w = empty(2, ws, AX_DTYPE_F32), *y = empty(2, ys, AX_DTYPE_F32);
    ax_tensor *xg = to_gpu(x), *wg = to_gpu(w), *yg = to_gpu(y);
    if (G->linear(yg, NULL, xg, wg, NULL, AX_LINEAR_ACT_NONE) != AX_ERR_INVALID || !strstr(ax_error_message(), "ax_cuda_linear")) {
        fprintf(stderr, "FAIL linear with K 5 vs 6: want AX_ERR_INVALID naming ax_cuda_linear, got '%s'\n", ax_error_message());
        ct_failures++;
    }
    FREE(x, w, y, xg, wg, yg);
}

static void test_sdpa(void) {
    section("fused attention (sdpa + backward): causal or not, L != S, E 64 / odd / 128, f32 and bf16");
    const struct {
        int64_t B, L, S, E, Ev;
        bool causal;
    } cases[] = {
        {2, 70, 45, 64, 64, false}, {2, 70, 45, 64, 64, true}, {1, 33, 97, 13, 7, true},
        {3, 40, 40, 64, 32, true},  {1, 50, 66, 128, 128, false},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int bf = 0; bf < 2; bf++) {
            const int64_t B = cases[ci].B, L = cases[ci].L, S = cases[ci].S, E = cases[ci].E, Ev = cases[ci].Ev;
            const bool causal = cases[ci].causal;
            const double scale = 1.0 / sqrt((double)E);
            ax_dtype dt = bf ? AX_DTYPE_BF16 : AX_DTYPE_F32;
            int64_t qs[3] = {B, L, E}, ks[3] = {B, S, E}, vs[3] = {B, S, Ev}, os[3] = {B, L, Ev}, ls[2] = {B, L};
            ax_tensor *q0 = randn(3, qs, 90 + ci), *k0 = randn(3, ks, 91 + ci), *v0 = randn(3, vs, 92 + ci),
                      *do0 = randn(3, os, 93 + ci);
            /* CPU reference (f32) on the values the GPU sees */
            ax_tensor *q = bf ? bf16_round(q0) : as_dtype(q0, AX_DTYPE_F32), *k = bf ? bf16_round(k0) : as_dtype(k0, AX_DTYPE_F32),
                      *v = bf ? bf16_round(v0) : as_dtype(v0, AX_DTYPE_F32), *dout = bf ? bf16_round(do0) : as_dtype(do0, AX_DTYPE_F32);
            ax_tensor *o = empty(3, os, AX_DTYPE_F32), *lse = empty(2, ls, AX_DTYPE_F32), *dq = empty(3, qs, AX_DTYPE_F32),
                      *dk = empty(3, ks, AX_DTYPE_F32), *dv = empty(3, vs, AX_DTYPE_F32);
            CT_OK(C->sdpa(o, lse, q, k, v, scale, causal));
            CT_OK(C->sdpa_backward(dq, dk, dv, dout, q, k, v, o, lse, scale, causal));
            ax_tensor *qd = as_dtype(q, dt), *kd = as_dtype(k, dt), *vd = as_dtype(v, dt), *dod = as_dtype(dout, dt);
            ax_tensor *qg = to_gpu(qd), *kg = to_gpu(kd), *vg = to_gpu(vd), *dog = to_gpu(dod);
            ax_tensor *og = gpu_like(o, dt, false), *lg = gpu_like(lse, AX_DTYPE_F32, false), *dqg = gpu_like(dq, dt, false),
                      *dkg = gpu_like(dk, dt, false), *dvg = gpu_like(dv, dt, false);
            CT_OK(G->sdpa(og, lg, qg, kg, vg, scale, causal));
            CT_OK(G->sdpa_backward(dqg, dkg, dvg, dog, qg, kg, vg, og, lg, scale, causal));
            char what[128];
            snprintf(what, sizeof what, "sdpa %s B %lld L %lld S %lld E %lld Ev %lld%s o", bf ? "bf16" : "f32", (long long)B,
                     (long long)L, (long long)S, (long long)E, (long long)Ev, causal ? " causal" : "");
            double tol = bf ? 2e-2 : 1e-4;
            expect_near(o, og, tol, bf ? 2e-2 * max_abs(o) : 1e-5, what);
            expect_near(lse, lg, bf ? 1e-2 : 1e-5, bf ? 1e-2 : 1e-5, "  lse");
            expect_near(dq, dqg, tol, bf ? 4e-2 * max_abs(dq) : 1e-4, "  dq");
            expect_near(dk, dkg, tol, bf ? 4e-2 * max_abs(dk) : 1e-4, "  dk");
            expect_near(dv, dvg, tol, bf ? 4e-2 * max_abs(dv) : 1e-4, "  dv");
            /* dk alone: the same values (dq and dv skipped) */
            ax_tensor *dk2 = gpu_like(dk, dt, false);
            CT_OK(G->sdpa_backward(NULL, dk2, NULL, dog, qg, kg, vg, og, lg, scale, causal));
            expect_near(dk, dk2, tol, bf ? 4e-2 * max_abs(dk) : 1e-4, "  dk alone");
            FREE(q0, k0, v0, do0, q, k, v, dout, o, lse, dq, dk, dv, qd, kd, vd, dod);
            FREE(qg, kg, vg, dog, og, lg, dqg, dkg, dvg, dk2);
        }
    /* head dims past the kernel's are declined, naming the size */
    int64_t qs[3] = {1, 4, 130}, vs[3] = {1, 4, 8}, ls[2] = {1, 4};
    ax_tensor *q = empty(3, qs, AX_DTYPE_F32), *v = empty(3, vs, AX_DTYPE_F32), *l = empty(2, ls, AX_DTYPE_F32);
    ax_tensor *qg = to_gpu(q), *vg = to_gpu(v), *og = to_gpu(v), *lg = to_gpu(l);
    if (G->sdpa(og, lg, qg, qg, vg, 0.1, false) != AX_ERR_UNSUPPORTED || !strstr(ax_error_message(), "E 130")) {
        fprintf(stderr, "FAIL sdpa with E 130: want AX_ERR_UNSUPPORTED naming E 130, got '%s'\n", ax_error_message());
        ct_failures++;
    }
    FREE(q, v, l, qg, vg, og, lg);
}

static void test_pool(void) {
    section("max/avg pool3d and adaptive avg pool forward/backward");
    int64_t xs[5] = {2, 3, 9, 8, 7};
    ax_tensor *x = randn(5, xs, 70);
    const int64_t geo[][9] = {{2, 2, 2, 2, 2, 2, 0, 0, 0}, {3, 3, 3, 2, 2, 2, 1, 1, 1}, {3, 2, 3, 1, 2, 2, 1, 0, 1}};
    for (int gi = 0; gi < 3; gi++)
        for (int mode = AX_POOL_MAX; mode <= AX_POOL_AVG; mode++)
            for (int inc = 0; inc < 2; inc++) {
                if (mode == AX_POOL_MAX && inc) continue;
                ax_pool_params p = {(ax_pool_mode)mode, {0}, {0}, {0}, false, inc};
                int64_t ys[5] = {2, 3, 0, 0, 0};
                for (int d = 0; d < 3; d++) {
                    p.kernel[d] = geo[gi][d], p.stride[d] = geo[gi][3 + d], p.padding[d] = geo[gi][6 + d];
                    ys[2 + d] = (xs[2 + d] + 2 * p.padding[d] - p.kernel[d]) / p.stride[d] + 1;
                }
                ax_tensor *y = empty(5, ys, AX_DTYPE_F32), *idx = empty(5, ys, AX_DTYPE_I64), *dy = randn(5, ys, 71);
                ax_tensor *dx = empty(5, xs, AX_DTYPE_F32);
                bool mx = mode == AX_POOL_MAX;
                CT_OK(C->pool3d(y, mx ? idx : NULL, x, &p));
                CT_OK(C->pool3d_backward(dx, dy, mx ? idx : NULL, &p));
                ax_tensor *xg = gpu_strided(x), *yg = gpu_like(y, 0, true), *ig = gpu_like(idx, 0, false), *dyg = gpu_strided(dy);
                ax_tensor *dxg = gpu_like(dx, 0, true);
                CT_OK(G->pool3d(yg, mx ? ig : NULL, xg, &p));
                CT_OK(G->pool3d_backward(dxg, dyg, mx ? ig : NULL, &p));
                expect_near(y, yg, 1e-6, 1e-7, mx ? "max pool" : "avg pool");
                if (mx) expect_near(idx, ig, 0, 0, "  argmax");
                expect_near(dx, dxg, 1e-5, 1e-6, "  backward");
                FREE(y, idx, dy, dx, xg, yg, ig, dyg, dxg);
            }
    const int64_t outs[][3] = {{3, 4, 5}, {1, 1, 1}, {9, 8, 7}, {4, 3, 2}};
    for (int oi = 0; oi < 4; oi++) {
        int64_t ys[5] = {2, 3, outs[oi][0], outs[oi][1], outs[oi][2]};
        ax_tensor *y = empty(5, ys, AX_DTYPE_F32), *dy = randn(5, ys, 72), *dx = empty(5, xs, AX_DTYPE_F32);
        CT_OK(C->adaptive_avg_pool3d(y, x));
        CT_OK(C->adaptive_avg_pool3d_backward(dx, dy));
        ax_tensor *xg = gpu_strided(x), *yg = gpu_like(y, 0, false), *dyg = to_gpu(dy), *dxg = gpu_like(dx, 0, true);
        CT_OK(G->adaptive_avg_pool3d(yg, xg));
        CT_OK(G->adaptive_avg_pool3d_backward(dxg, dyg));
        expect_near(y, yg, 1e-6, 1e-7, "adaptive avg pool");
        expect_near(dx, dxg, 1e-5, 1e-7, "  backward");
        FREE(y, dy, dx, xg, yg, dyg, dxg);
    }
    ax_tensor_free(x);
}

static void test_interpolate_pad(void) {
    section("interpolate (1-3 spatial dims, nearest/linear, align_corners) and pad forward/backward");
    const int64_t sz[][6] = {{4, 5, 6, 8, 10, 12}, {8, 7, 9, 4, 3, 5}, {5, 5, 5, 5, 5, 5}, {3, 2, 4, 7, 9, 5}};
    for (int si = 0; si < 4; si++)
        for (int sp = 1; sp <= 3; sp++)
            for (int mode = AX_INTERP_NEAREST; mode <= AX_INTERP_TRILINEAR; mode++)
                for (int ac = 0; ac < 2; ac++) {
                    if (mode == AX_INTERP_NEAREST && ac) continue;
                    int64_t xs[5] = {2, 3}, ys[5] = {2, 3};
                    for (int d = 0; d < sp; d++) xs[2 + d] = sz[si][d], ys[2 + d] = sz[si][3 + d];
                    ax_tensor *x = randn(2 + sp, xs, 80), *y = empty(2 + sp, ys, AX_DTYPE_F32), *dy = randn(2 + sp, ys, 81);
                    ax_tensor *dx = empty(2 + sp, xs, AX_DTYPE_F32);
                    CT_OK(C->interpolate(y, x, (ax_interp_mode)mode, ac));
                    CT_OK(C->interpolate_backward(dx, dy, (ax_interp_mode)mode, ac));
                    ax_tensor *xg = gpu_strided(x), *yg = gpu_like(y, 0, false), *dyg = gpu_strided(dy), *dxg = gpu_like(dx, 0, true);
                    CT_OK(G->interpolate(yg, xg, (ax_interp_mode)mode, ac));
                    CT_OK(G->interpolate_backward(dxg, dyg, (ax_interp_mode)mode, ac));
                    expect_near(y, yg, 1e-5, 1e-6, "interpolate");
                    expect_near(dx, dxg, 1e-4, 1e-5, "  backward");
                    FREE(x, y, dy, dx, xg, yg, dyg, dxg);
                }
    int64_t xs[5] = {2, 3, 5, 6, 7};
    ax_tensor *x = randn(5, xs, 82);
    const int64_t pads[][6] = {{1, 2, 0, 3, 2, 1}, {-1, 2, 1, -2, 0, 0}, {4, 4, 5, 5, 6, 6}};
    for (int pi = 0; pi < 3; pi++)
        for (int mode = AX_PAD_CONSTANT; mode <= AX_PAD_REPLICATE; mode++) {
            const int64_t *pd = pads[pi];
            bool neg = false, big = false;
            for (int i = 0; i < 6; i++) neg |= pd[i] < 0, big |= pd[i] >= xs[2 + i / 2];
            if (mode != AX_PAD_CONSTANT && neg) continue;
            if (mode == AX_PAD_REFLECT && big) continue;
            int64_t ys[5] = {2, 3, xs[2] + pd[0] + pd[1], xs[3] + pd[2] + pd[3], xs[4] + pd[4] + pd[5]};
            ax_tensor *y = empty(5, ys, AX_DTYPE_F32), *dy = randn(5, ys, 83), *dx = empty(5, xs, AX_DTYPE_F32);
            CT_OK(C->pad(y, x, pd, 3, (ax_pad_mode)mode, -2.5));
            CT_OK(C->pad_backward(dx, dy, pd, 3, (ax_pad_mode)mode));
            ax_tensor *xg = gpu_strided(x), *yg = gpu_like(y, 0, true), *dyg = gpu_strided(dy), *dxg = gpu_like(dx, 0, true);
            CT_OK(G->pad(yg, xg, pd, 3, (ax_pad_mode)mode, -2.5));
            CT_OK(G->pad_backward(dxg, dyg, pd, 3, (ax_pad_mode)mode));
            expect_near(y, yg, 0, 0, "pad");
            expect_near(dx, dxg, 1e-6, 1e-6, "  backward");
            FREE(y, dy, dx, xg, yg, dyg, dxg);
        }
    ax_tensor_free(x);
}

static void test_index(void) {
    section("gather, scatter_add, index_select, index_add (and out-of-range indices)");
    int64_t xs[3] = {4, 7, 5}, is[3] = {4, 9, 3}, n5 = 5;
    ax_tensor *x = randn(3, xs, 90), *idx = empty(3, is, AX_DTYPE_I64), *i1 = empty(1, &n5, AX_DTYPE_I64);
    for (int64_t i = 0; i < ax_tensor_numel(idx); i++) ax_tensor_set(idx, i, (double)(i * 5 % 7));
    for (int64_t i = 0; i < 5; i++) ax_tensor_set(i1, i, (double)((i * 3 + 1) % 7));
    /* gather along dim 1: out has idx's shape */
    ax_tensor *o = empty(3, is, AX_DTYPE_F32);
    CT_OK(C->gather(o, x, 1, idx));
    ax_tensor *xg = gpu_strided(x), *ig = gpu_strided(idx), *og = gpu_like(o, 0, true);
    CT_OK(G->gather(og, xg, 1, ig));
    expect_near(o, og, 0, 0, "gather");
    /* gather of i64 data */
    ax_tensor *xi = as_dtype(x, AX_DTYPE_I64), *oi = empty(3, is, AX_DTYPE_I64), *xig = to_gpu(xi), *oig = gpu_like(oi, 0, false);
    CT_OK(C->gather(oi, xi, 1, idx));
    CT_OK(G->gather(oig, xig, 1, ig));
    expect_near(oi, oig, 0, 0, "gather i64");
    /* scatter_add back into x's shape */
    ax_tensor *src = randn(3, is, 91), *acc = randn(3, xs, 92), *accg = to_gpu(acc), *srcg = gpu_strided(src);
    CT_OK(C->scatter_add(acc, 1, idx, src));
    CT_OK(G->scatter_add(accg, 1, ig, srcg));
    expect_near(acc, accg, 1e-5, 1e-5, "scatter_add");
    /* index_select / index_add along dim 1 */
    int64_t ss[3] = {4, 5, 5};
    ax_tensor *sel = empty(3, ss, AX_DTYPE_F32), *i1g = to_gpu(i1), *selg = gpu_like(sel, 0, true);
    CT_OK(C->index_select(sel, x, 1, i1));
    CT_OK(G->index_select(selg, xg, 1, i1g));
    expect_near(sel, selg, 0, 0, "index_select");
    ax_tensor *src2 = randn(3, ss, 93), *acc2 = randn(3, xs, 94), *acc2g = to_gpu(acc2), *src2g = to_gpu(src2);
    CT_OK(C->index_add(acc2, 1, i1, src2));
    CT_OK(G->index_add(acc2g, 1, i1g, src2g));
    expect_near(acc2, acc2g, 1e-5, 1e-5, "index_add");
    /* an out-of-range index: skipped on the device, reported at the next synchronisation */
    ax_tensor_set(i1, 2, 99);
    ax_tensor *bad = to_gpu(i1);
    CT_OK(G->index_select(selg, xg, 1, bad));
    if (ax_cuda_synchronize(0) == AX_OK || !strstr(ax_error_message(), "out of range")) {
        fprintf(stderr, "FAIL out-of-range index not reported (%s)\n", ax_error_message());
        ct_failures++;
    }
    CT_OK(ax_cuda_synchronize(0)); /* and cleared */
    FREE(x, idx, i1, o, xg, ig, og, xi, oi, xig, oig, src, acc, accg, srcg, sel, i1g, selg, src2, acc2, acc2g, src2g, bad);
}

static void test_optim_kernels(void) {
    section("sgd_step / adamw_step (bit-exact vs CPU), grad_norm (p = 2, 1, inf; several tensors)");
    int64_t n = 300007; /* several blocks and a ragged tail */
    ax_tensor *g = randn(1, &n, 70), *p0 = randn(1, &n, 71), *b0 = randn(1, &n, 72), *v0 = randn(1, &n, 73);
    for (int64_t i = 0; i < n; i++) ax_tensor_set(v0, i, ax_tensor_get(v0, i) * ax_tensor_get(v0, i));
    ax_tensor_set(g, 3, INFINITY);
    ax_tensor_set(g, 4, 0.0);
    const ax_sgd_step_params sp[] = {{true, true, false, true, 3e-5f, 0.99f, 1.0f, -1e-2f},
                                     {true, true, true, true, 3e-5f, 0.99f, 1.0f, -1e-2f},
                                     {false, false, false, false, 0, 0, 1.0f, -0.5f}};
    for (int k = 0; k < 3; k++) {
        ax_tensor *pc = to_cpu(p0), *bc = to_cpu(b0), *pg = to_gpu(p0), *bg = to_gpu(b0), *gg = to_gpu(g);
        CT_OK(C->sgd_step(pc, sp[k].has_mom ? bc : NULL, g, &sp[k]));
        CT_OK(G->sgd_step(pg, sp[k].has_mom ? bg : NULL, gg, &sp[k]));
        expect_near(pc, pg, 0, 0, "sgd_step p");
        expect_near(bc, bg, 0, 0, "  momentum buffer");
        FREE(pc, bc, pg, bg, gg);
    }
    const ax_adamw_step_params ap[] = {{0.99999f, 0.1f, 0.999f, 0.001f, -0.01f, 0.0316f, 1e-8f},
                                       {1.0f, 0.75f, 0.9f, 0.1f, -0.5f, 0.9f, 1e-6f}};
    for (int k = 0; k < 2; k++) {
        ax_tensor *pc = to_cpu(p0), *mc = to_cpu(b0), *vc = to_cpu(v0);
        ax_tensor *pg = to_gpu(p0), *mg = to_gpu(b0), *vg = to_gpu(v0), *gg = to_gpu(g);
        CT_OK(C->adamw_step(pc, mc, vc, g, &ap[k]));
        CT_OK(G->adamw_step(pg, mg, vg, gg, &ap[k]));
        expect_near(pc, pg, 0, 0, "adamw_step p");
        expect_near(mc, mg, 0, 0, "  exp_avg");
        expect_near(vc, vg, 0, 0, "  exp_avg_sq");
        FREE(pc, mc, vc, pg, mg, vg, gg);
    }
    int64_t n2 = 1000;
    ax_tensor *a = randn(1, &n2, 74), *ag = to_gpu(a), *pg = to_gpu(p0), *gg = to_gpu(g);
    const double ps[] = {2.0, 1.0, INFINITY};
    for (int k = 0; k < 3; k++) {
        double want = 0.25, got = 0.25;
        const ax_tensor *xc[2] = {a, p0}, *xg[2] = {ag, pg};
        CT_OK(C->grad_norm(&want, 2, xc, ps[k]));
        CT_OK(G->grad_norm(&got, 2, xg, ps[k]));
        if (!(fabs(want - got) <= 1e-12 * fabs(want))) {
            fprintf(stderr, "FAIL grad_norm p=%g: cpu %.17g, cuda %.17g\n", ps[k], want, got);
            ct_failures++;
        }
    }
    double inf_norm = 0;
    const ax_tensor *xi[1] = {gg};
    CT_OK(G->grad_norm(&inf_norm, 1, xi, 2.0));
    if (!isinf(inf_norm)) {
        fprintf(stderr, "FAIL grad_norm of a grad holding inf: %g\n", inf_norm);
        ct_failures++;
    }
    FREE(g, p0, b0, v0, a, ag, pg, gg);
}

static void test_errors(void) {
    section("errors: unsupported dtype, out of memory, bad device");
    int64_t s[2] = {3, 4};
    ax_tensor *x = empty(2, s, AX_DTYPE_I64), *xg = to_gpu(x), *o;
    CT_OK(ax_tensor_empty_on(&o, 2, (int64_t[]){3, 1}, AX_DTYPE_I64, ct_gpu));
    if (G->reduce(AX_REDUCE_SUM, o, NULL, xg, 2u) != AX_ERR_UNSUPPORTED || !strstr(ax_error_message(), "CUDA")) {
        fprintf(stderr, "FAIL i64 reduce: want AX_ERR_UNSUPPORTED naming CUDA, got '%s'\n", ax_error_message());
        ct_failures++;
    }
    ax_tensor *huge;
    int64_t hs[1] = {(int64_t)1 << 48};
    if (ax_tensor_empty_on(&huge, 1, hs, AX_DTYPE_F32, ct_gpu) != AX_ERR_NOMEM || !strstr(ax_error_message(), "MiB free")) {
        fprintf(stderr, "FAIL 1 PiB allocation: want AX_ERR_NOMEM with sizes, got '%s'\n", ax_error_message());
        ct_failures++;
    } else {
        printf("     (OOM message: %s)\n", ax_error_message());
    }
    ax_tensor *z;
    if (ax_tensor_empty_on(&z, 2, s, AX_DTYPE_F32, (ax_device){AX_DEVICE_CUDA, 15}) == AX_OK) {
        fprintf(stderr, "FAIL cuda:15 allocation succeeded\n");
        ct_failures++;
        ax_tensor_free(z);
    }
    FREE(x, xg, o);
}

int main(void) {
    setenv("AXON_CUDA_TF32", "0", 1);
    cuda_test_start();
    C = ax_cpu_kernels();
    G = ax_cuda_kernels();
    test_transfer_copy_fill();
    test_unary();
    test_binary_where();
    test_reduce_softmax();
    test_matmul();
    test_conv();
    test_group_norm();
    test_group_norm_act();
    test_linear();
    test_sdpa();
    test_pool();
    test_interpolate_pad();
    test_index();
    test_optim_kernels();
    test_errors();
    section(NULL);
    CT_OK(ax_cuda_synchronize(0));
    printf("%s: %d failure%s\n", ct_failures ? "FAILED" : "PASSED", ct_failures, ct_failures == 1 ? "" : "s");
    return ct_failures ? 1 : 0;
}
