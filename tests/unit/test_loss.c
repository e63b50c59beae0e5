/* Losses and similarity (axon/loss.h): forward values against references
 * written out in double here, finite-difference gradient checks (with
 * non-contiguous and broadcast inputs), masks / ignore_index / label
 * smoothing combinations, every reduction, the error of each bad argument,
 * and PyTorch parity from tests/fixtures/loss/loss.safetensors (made by
 * make_loss.py there). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "axon/loss.h"
#include "axon/safetensors.h"
#include "gradcheck.h"

#define SH(...) ((const int64_t[]){__VA_ARGS__})

static const ax_loss_reduction REDS[3] = {AX_LOSS_MEAN, AX_LOSS_SUM, AX_LOSS_NONE};

/* ---- helpers ------------------------------------------------------------------ */

static ax_tensor *i64_tensor(int ndim, const int64_t *shape, const int64_t *vals) {
    ax_tensor *t;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    assert_int_equal(ax_tensor_from_buffer(&t, ndim, shape, AX_DTYPE_I64, vals, (size_t)n * sizeof(int64_t)), AX_OK);
    return t;
}

static ax_tensor *f32_tensor(int ndim, const int64_t *shape, const float *vals) {
    ax_tensor *t;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    assert_int_equal(ax_tensor_from_buffer(&t, ndim, shape, AX_DTYPE_F32, vals, (size_t)n * sizeof(float)), AX_OK);
    return t;
}

/* A tensor of `shape` holding want[i] (double) for comparisons. */
static ax_tensor *want_tensor(int ndim, const int64_t *shape, const double *vals) {
    ax_tensor *t;
    assert_int_equal(ax_tensor_empty(&t, ndim, shape, AX_DTYPE_F32), AX_OK);
    for (int64_t i = 0; i < ax_tensor_numel(t); i++) ax_tensor_set(t, i, vals[i]);
    return t;
}

static void expect_close(const char *what, const ax_tensor *got, int ndim, const int64_t *shape, const double *want,
                         double atol, double rtol) {
    ax_tensor *w = want_tensor(ndim, shape, want);
    assert_int_equal(got->dtype, AX_DTYPE_F32);
    if (!ax_allclose(what, got, w, atol, rtol)) fail_msg("%s differs", what);
    ax_tensor_free(w);
}

/* Combine per-element values under a reduction (the reference side). */
static void ref_reduce(const double *per, int64_t n, double den, ax_loss_reduction r, double *want, int64_t *nwant) {
    if (r == AX_LOSS_NONE) {
        memcpy(want, per, (size_t)n * sizeof(double));
        *nwant = n;
        return;
    }
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += per[i];
    want[0] = r == AX_LOSS_SUM ? s : s / den;
    *nwant = 1;
}

static void ax_expect_error(ax_status st, const char *text) {
    assert_int_equal(st, AX_ERR_INVALID);
    if (!strstr(ax_error_message(), text)) fail_msg("message \"%s\" lacks \"%s\"", ax_error_message(), text);
}

/* ---- regression: forward --------------------------------------------------------- */

/* MSE / L1 with and without masks (float [2, 1, 4] and u8 full-shape),
 * a broadcast target, all reductions. */
static void test_regression_forward(void **state) {
    (void)state;
    ax_tensor *p = ax_test_randn(3, SH(2, 3, 4), 1, 1, 0, false);
    ax_tensor *t = ax_test_randn(3, SH(2, 3, 4), 2, 1, 0, false);
    ax_tensor *tb = ax_test_randn(1, SH(4), 3, 1, 0, false);
    ax_tensor *fm = ax_test_randn(3, SH(2, 1, 4), 4, 1, 0, false), *um;
    for (int i = 0; i < 8; i++) ax_tensor_set(fm, i, ax_tensor_get(fm, i) > 0 ? 1.0 : 0.0);
    ax_tensor_set(fm, 0, 1.0);
    assert_int_equal(ax_tensor_empty(&um, 3, SH(2, 3, 4), AX_DTYPE_U8), AX_OK);
    for (int i = 0; i < 24; i++) ax_tensor_set(um, i, (i * 7) % 3 == 0);
    for (int kind = 0; kind < 2; kind++) {
        for (int variant = 0; variant < 4; variant++) {
            const ax_tensor *target = variant == 1 ? tb : t;
            const ax_tensor *mask = variant == 2 ? fm : variant == 3 ? um : NULL;
            double per[24], want[24], msum = 0;
            for (int i = 0; i < 24; i++) {
                double d = ax_tensor_get(p, i) - ax_tensor_get(target, variant == 1 ? i % 4 : i);
                double m = 1;
                if (variant == 2) m = ax_tensor_get(fm, (i / 12) * 4 + i % 4);
                if (variant == 3) m = ax_tensor_get(um, i);
                per[i] = m * (kind == 0 ? d * d : fabs(d));
                msum += m;
            }
            for (int r = 0; r < 3; r++) {
                ax_tensor *y;
                ax_status st = kind == 0 ? ax_mse_loss(&y, p, target, mask, REDS[r])
                                         : ax_l1_loss(&y, p, target, mask, REDS[r]);
                assert_int_equal(st, AX_OK);
                int64_t nw;
                ref_reduce(per, 24, msum, REDS[r], want, &nw);
                char what[64];
                snprintf(what, sizeof what, "%s variant %d reduction %d", kind ? "l1" : "mse", variant, r);
                if (REDS[r] == AX_LOSS_NONE)
                    expect_close(what, y, 3, SH(2, 3, 4), want, 1e-6, 1e-5);
                else
                    expect_close(what, y, 0, NULL, want, 1e-6, 1e-5);
                ax_tensor_free(y);
            }
        }
    }
    /* an all-zero mask: mean of nothing is NaN, sum is 0 */
    ax_tensor *zm, *y;
    assert_int_equal(ax_tensor_zeros(&zm, 1, SH(4), AX_DTYPE_F32), AX_OK);
    assert_int_equal(ax_mse_loss(&y, p, t, zm, AX_LOSS_MEAN), AX_OK);
    assert_true(isnan(ax_tensor_get(y, 0)));
    ax_tensor_free(y);
    assert_int_equal(ax_mse_loss(&y, p, t, zm, AX_LOSS_SUM), AX_OK);
    assert_float_equal(ax_tensor_get(y, 0), 0.0, 0.0);
    ax_tensor_free(y);
    ax_tensor_free(zm);
    ax_tensor_free(p);
    ax_tensor_free(t);
    ax_tensor_free(tb);
    ax_tensor_free(fm);
    ax_tensor_free(um);
}

static void test_smooth_l1_forward(void **state) {
    (void)state;
    ax_tensor *p = ax_test_randn(2, SH(3, 5), 5, 1.5, 0, false), *t = ax_test_randn(2, SH(3, 5), 6, 1, 0, false);
    const double betas[] = {0.0, 0.5, 1.0, 3.0};
    for (int b = 0; b < 4; b++) {
        double per[15], want[15];
        for (int i = 0; i < 15; i++) {
            double d = fabs(ax_tensor_get(p, i) - ax_tensor_get(t, i)), be = betas[b];
            per[i] = d < be ? 0.5 * d * d / be : d - 0.5 * be;
        }
        for (int r = 0; r < 3; r++) {
            ax_tensor *y;
            assert_int_equal(ax_smooth_l1_loss(&y, p, t, betas[b], REDS[r]), AX_OK);
            int64_t nw;
            ref_reduce(per, 15, 15, REDS[r], want, &nw);
            if (REDS[r] == AX_LOSS_NONE)
                expect_close("smooth_l1", y, 2, SH(3, 5), want, 1e-6, 1e-5);
            else
                expect_close("smooth_l1", y, 0, NULL, want, 1e-6, 1e-5);
            ax_tensor_free(y);
        }
    }
    ax_tensor_free(p);
    ax_tensor_free(t);
}

/* ---- regression: gradients --------------------------------------------------------- */

typedef struct reg_ctx {
    int kind; /* 0 mse, 1 l1, 2 smooth l1 */
    ax_loss_reduction r;
    const ax_tensor *mask;
    double beta;
    bool transpose; /* in[0] is [4, 3]: use its [3, 4] transpose */
} reg_ctx;

static ax_status reg_fn(ax_tensor **out, ax_tensor *const *in, void *vctx) {
    const reg_ctx *c = vctx;
    ax_tensor *p = in[0], *tp = NULL;
    if (c->transpose) {
        if (ax_tensor_transpose(&tp, in[0], 0, 1) != AX_OK) return ax_error_status();
        p = tp;
    }
    ax_status st;
    switch (c->kind) {
    case 0: st = ax_mse_loss(out, p, in[1], c->mask, c->r); break;
    case 1: st = ax_l1_loss(out, p, in[1], c->mask, c->r); break;
    default: st = ax_smooth_l1_loss(out, p, in[1], c->beta, c->r); break;
    }
    ax_tensor_free(tp);
    return st;
}

/* pred [4, 3] (used transposed, [3, 4]) and target [4] (broadcast), with
 * pred - target kept away from the kinks at 0 and +-beta. */
static void test_regression_grad(void **state) {
    (void)state;
    ax_tensor *p = ax_test_randn(2, SH(4, 3), 11, 1, 0, true), *t = ax_test_randn(1, SH(4), 12, 1, 0, true);
    ax_tensor *m = ax_test_randn(2, SH(3, 1), 13, 1, 0, false);
    for (int i = 0; i < 3; i++) ax_tensor_set(m, i, i == 1 ? 0.0 : 1.0);
    /* d[i][j] = p^T[i][j] - t[j] in {+-0.3, +-0.45, +-1.6, +-2.2} */
    const double mags[] = {0.3, 1.6, 0.45, 2.2};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) {
            double d = mags[(i + j) % 4] * ((i * 4 + j) % 3 ? 1 : -1);
            ax_tensor_set(p, j * 3 + i, ax_tensor_get(t, j) + d);
        }
    ax_tensor *in[2] = {p, t};
    for (int kind = 0; kind < 3; kind++)
        for (int r = 0; r < 3; r++)
            for (int masked = 0; masked < (kind < 2 ? 2 : 1); masked++) {
                reg_ctx c = {kind, REDS[r], masked ? m : NULL, 1.0, true};
                if (!ax_gradcheck(reg_fn, 2, in, &c, &AX_GC_DEFAULT))
                    fail_msg("regression grad kind %d reduction %d masked %d", kind, r, masked);
            }
    ax_tensor_free(p);
    ax_tensor_free(t);
    ax_tensor_free(m);
}

/* ---- cross entropy ------------------------------------------------------------------ */

/* Reference CE for logits [N, C, S] (C order) and targets [N, S]. */
static void ref_ce(const ax_tensor *logits, int64_t N, int64_t C, int64_t S, const int64_t *tg, const double *w,
                   int64_t ignore, double eps, double *per, double *den) {
    *den = 0;
    for (int64_t n = 0; n < N; n++)
        for (int64_t s = 0; s < S; s++) {
            double mx = -INFINITY, lse = 0, lp[16];
            for (int64_t c = 0; c < C; c++) mx = fmax(mx, ax_tensor_get(logits, (n * C + c) * S + s));
            for (int64_t c = 0; c < C; c++) lse += exp(ax_tensor_get(logits, (n * C + c) * S + s) - mx);
            lse = log(lse) + mx;
            for (int64_t c = 0; c < C; c++) lp[c] = ax_tensor_get(logits, (n * C + c) * S + s) - lse;
            int64_t t = tg[n * S + s];
            if (t == ignore) {
                per[n * S + s] = 0;
                continue;
            }
            double smooth = 0;
            for (int64_t c = 0; c < C; c++) smooth -= (w ? w[c] : 1) * lp[c];
            double wt = w ? w[t] : 1;
            per[n * S + s] = (1 - eps) * wt * -lp[t] + eps / (double)C * smooth;
            *den += wt;
        }
}

static void test_cross_entropy_forward(void **state) {
    (void)state;
    /* logits [2, 4, 3]; target [2, 3] with ignore -100 and class 2 twice */
    ax_tensor *lg = ax_test_randn(3, SH(2, 4, 3), 21, 2, 0, false);
    const int64_t tv[6] = {0, 3, -100, 2, 1, 2};
    const float wv[4] = {0.5f, 2.0f, 1.0f, 1.5f};
    const double wd[4] = {0.5, 2.0, 1.0, 1.5};
    ax_tensor *w = f32_tensor(1, SH(4), wv);
    const double epss[] = {0.0, 0.1, 1.0};
    for (int wi = 0; wi < 2; wi++)
        for (int ig = 0; ig < 2; ig++)
            for (int e = 0; e < 3; e++)
                for (int r = 0; r < 3; r++) {
                    int64_t ignore = ig ? 2 : -100; /* an in-range ignore_index too */
                    /* -100 is a valid target only while it is ignore_index */
                    int64_t tv2[6];
                    for (int i = 0; i < 6; i++) tv2[i] = tv[i] == -100 && ignore != -100 ? 0 : tv[i];
                    double per[6], want[6], den;
                    ref_ce(lg, 2, 4, 3, tv2, wi ? wd : NULL, ignore, epss[e], per, &den);
                    int64_t nw;
                    ref_reduce(per, 6, den, REDS[r], want, &nw);
                    ax_tensor *tg2 = i64_tensor(2, SH(2, 3), tv2), *y;
                    assert_int_equal(ax_cross_entropy(&y, lg, tg2, wi ? w : NULL, ignore, epss[e], REDS[r]), AX_OK);
                    char what[96];
                    snprintf(what, sizeof what, "ce weights %d ignore %lld eps %g reduction %d", wi, (long long)ignore,
                             epss[e], r);
                    if (REDS[r] == AX_LOSS_NONE)
                        expect_close(what, y, 2, SH(2, 3), want, 1e-5, 1e-5);
                    else
                        expect_close(what, y, 0, NULL, want, 1e-5, 1e-5);
                    ax_tensor_free(y);
                    ax_tensor_free(tg2);
                }

    /* [N, C] logits, i32 and u8 targets; [C] logits with a 0-dim target */
    ax_tensor *l2 = ax_test_randn(2, SH(3, 5), 22, 1, 0, false), *t32, *tu8, *y;
    const int64_t t2[3] = {4, 0, 2};
    assert_int_equal(ax_tensor_empty(&t32, 1, SH(3), AX_DTYPE_I32), AX_OK);
    assert_int_equal(ax_tensor_empty(&tu8, 1, SH(3), AX_DTYPE_U8), AX_OK);
    for (int i = 0; i < 3; i++) ax_tensor_set(t32, i, (double)t2[i]), ax_tensor_set(tu8, i, (double)t2[i]);
    double per[3], want[3], den;
    ax_tensor *l2v;
    assert_int_equal(ax_tensor_view(&l2v, l2, 3, SH(3, 5, 1)), AX_OK);
    ref_ce(l2v, 3, 5, 1, t2, NULL, -100, 0.0, per, &den);
    want[0] = (per[0] + per[1] + per[2]) / 3;
    assert_int_equal(ax_cross_entropy(&y, l2, t32, NULL, AX_IGNORE_INDEX, 0.0, AX_LOSS_MEAN), AX_OK);
    expect_close("ce i32", y, 0, NULL, want, 1e-5, 1e-5);
    ax_tensor_free(y);
    assert_int_equal(ax_cross_entropy(&y, l2, tu8, NULL, AX_IGNORE_INDEX, 0.0, AX_LOSS_MEAN), AX_OK);
    expect_close("ce u8", y, 0, NULL, want, 1e-5, 1e-5);
    ax_tensor_free(y);
    ax_tensor *row, *rowv, *t0;
    assert_int_equal(ax_tensor_narrow(&row, l2, 0, 1, 1), AX_OK);
    assert_int_equal(ax_tensor_view(&rowv, row, 1, SH(5)), AX_OK);
    assert_int_equal(ax_tensor_scalar(&t0, 0, AX_DTYPE_I64), AX_OK);
    assert_int_equal(ax_cross_entropy(&y, rowv, t0, NULL, AX_IGNORE_INDEX, 0.0, AX_LOSS_NONE), AX_OK);
    assert_int_equal(y->ndim, 0);
    assert_float_equal(ax_tensor_get(y, 0), per[1], 1e-5);
    ax_tensor_free(y);

    /* every element ignored: the mean is NaN (0 / 0), like torch */
    const int64_t allig[3] = {-100, -100, -100};
    ax_tensor *tig = i64_tensor(1, SH(3), allig);
    assert_int_equal(ax_cross_entropy(&y, l2, tig, NULL, AX_IGNORE_INDEX, 0.1, AX_LOSS_MEAN), AX_OK);
    assert_true(isnan(ax_tensor_get(y, 0)));
    ax_tensor_free(y);
    assert_int_equal(ax_cross_entropy(&y, l2, tig, NULL, AX_IGNORE_INDEX, 0.1, AX_LOSS_SUM), AX_OK);
    assert_float_equal(ax_tensor_get(y, 0), 0.0, 0.0);
    ax_tensor_free(y);

    /* class probabilities: -sum_c w_c p'_c lp_c, mean over rows */
    ax_tensor *pr = ax_test_randn(2, SH(3, 5), 23, 1, 0, false), *pp;
    assert_int_equal(ax_softmax(&pp, pr, 1), AX_OK);
    const float w5v[5] = {1, 2, 0.5f, 1, 3};
    ax_tensor *w5 = f32_tensor(1, SH(5), w5v);
    for (int r = 0; r < 3; r++) {
        double pw[3], tot = 0, wnt[3];
        for (int n = 0; n < 3; n++) {
            double mx = -INFINITY, lse = 0;
            for (int c = 0; c < 5; c++) mx = fmax(mx, ax_tensor_get(l2, n * 5 + c));
            for (int c = 0; c < 5; c++) lse += exp(ax_tensor_get(l2, n * 5 + c) - mx);
            lse = log(lse) + mx;
            pw[n] = 0;
            for (int c = 0; c < 5; c++) {
                double pc = ax_tensor_get(pp, n * 5 + c) * 0.8 + 0.2 / 5;
                pw[n] -= w5v[c] * pc * (ax_tensor_get(l2, n * 5 + c) - lse);
            }
            tot += pw[n];
        }
        memcpy(wnt, pw, sizeof pw);
        if (REDS[r] != AX_LOSS_NONE) wnt[0] = REDS[r] == AX_LOSS_SUM ? tot : tot / 3;
        assert_int_equal(ax_cross_entropy(&y, l2, pp, w5, -1, 0.2, REDS[r]), AX_OK);
        if (REDS[r] == AX_LOSS_NONE)
            expect_close("ce probs", y, 1, SH(3), wnt, 1e-5, 1e-5);
        else
            expect_close("ce probs", y, 0, NULL, wnt, 1e-5, 1e-5);
        ax_tensor_free(y);
    }
    ax_tensor *all[] = {lg, w, l2, t32, tu8, l2v, row, rowv, t0, tig, pr, pp, w5};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

typedef struct ce_ctx {
    const ax_tensor *target, *w;
    int64_t ignore;
    double eps;
    ax_loss_reduction r;
    bool permute; /* in[0] is [N, S, C]: permute it to [N, C, S] */
} ce_ctx;

static ax_status ce_fn(ax_tensor **out, ax_tensor *const *in, void *vctx) {
    const ce_ctx *c = vctx;
    ax_tensor *x = in[0], *px = NULL;
    if (c->permute) {
        if (ax_tensor_permute(&px, in[0], (int[]){0, 2, 1}) != AX_OK) return ax_error_status();
        x = px;
    }
    ax_status st = ax_cross_entropy(out, x, c->target ? c->target : in[1], c->w, c->ignore, c->eps, c->r);
    ax_tensor_free(px);
    return st;
}

static void test_cross_entropy_grad(void **state) {
    (void)state;
    ax_tensor *lg = ax_test_randn(3, SH(2, 3, 4), 31, 1.5, 0, true); /* [N, S, C] */
    const int64_t tv[6] = {0, 3, -100, 2, 1, 2};
    ax_tensor *tg = i64_tensor(2, SH(2, 3), tv);
    const float wv[4] = {0.5f, 2.0f, 1.0f, 1.5f};
    ax_tensor *w = f32_tensor(1, SH(4), wv);
    ax_tensor *in[1] = {lg};
    for (int wi = 0; wi < 2; wi++)
        for (int e = 0; e < 2; e++)
            for (int r = 0; r < 3; r++) {
                ce_ctx c = {tg, wi ? w : NULL, AX_IGNORE_INDEX, e ? 0.15 : 0.0, REDS[r], true};
                if (!ax_gradcheck(ce_fn, 1, in, &c, &AX_GC_DEFAULT))
                    fail_msg("ce grad weights %d eps %d reduction %d", wi, e, r);
            }
    /* the ignored element gets exactly no gradient */
    ax_tensor *y, *lgc;
    ax_tensor_zero_grad(lg);
    assert_int_equal(ax_tensor_permute(&lgc, lg, (int[]){0, 2, 1}), AX_OK);
    assert_int_equal(ax_cross_entropy(&y, lgc, tg, w, AX_IGNORE_INDEX, 0.2, AX_LOSS_MEAN), AX_OK);
    assert_int_equal(ax_backward(y, NULL), AX_OK);
    for (int c = 0; c < 4; c++) assert_float_equal(ax_tensor_get(lg->grad, (0 * 3 + 2) * 4 + c), 0.0, 0.0);
    ax_tensor_free(y);
    ax_tensor_free(lgc);

    /* probabilities: gradients for logits and the target */
    ax_tensor *lp = ax_test_randn(2, SH(3, 4), 32, 1, 0, true), *pt = ax_test_randn(2, SH(3, 4), 33, 0.3, 0.5, true);
    ax_tensor *in2[2] = {lp, pt};
    ce_ctx c2 = {NULL, w, -100, 0.1, AX_LOSS_MEAN, false};
    assert_true(ax_gradcheck(ce_fn, 2, in2, &c2, &AX_GC_DEFAULT));
    ax_tensor_free(lg);
    ax_tensor_free(tg);
    ax_tensor_free(w);
    ax_tensor_free(lp);
    ax_tensor_free(pt);
}

/* ---- binary cross entropy ----------------------------------------------------------- */

static double ref_bce(double x, double t, double pw) {
    double lsig = fmin(x, 0) - log1p(exp(-fabs(x))); /* log(sigmoid(x)) */
    double lsig_neg = lsig - x;                        /* log(1 - sigmoid(x)) */
    return -(pw * t * lsig + (1 - t) * lsig_neg);
}

static void test_bce_forward(void **state) {
    (void)state;
    ax_tensor *x = ax_test_randn(2, SH(3, 4), 41, 3, 0, false), *t = ax_test_randn(2, SH(3, 4), 42, 0.3, 0.5, false);
    ax_tensor_set(x, 0, 200.0); /* extremes stay finite and exact */
    ax_tensor_set(x, 1, -200.0);
    ax_tensor_set(t, 0, 0.0);
    ax_tensor_set(t, 1, 1.0);
    const float pwv[4] = {1.0f, 2.0f, 0.5f, 3.0f};
    ax_tensor *pw = f32_tensor(1, SH(4), pwv);
    for (int withpw = 0; withpw < 2; withpw++) {
        double per[12], want[12];
        for (int i = 0; i < 12; i++)
            per[i] = ref_bce(ax_tensor_get(x, i), ax_tensor_get(t, i), withpw ? pwv[i % 4] : 1.0);
        assert_float_equal(per[0], 200.0, 1e-9);
        assert_float_equal(per[1], 200.0 * (withpw ? 2.0 : 1.0), 1e-9);
        for (int r = 0; r < 3; r++) {
            ax_tensor *y;
            assert_int_equal(ax_bce_with_logits(&y, x, t, withpw ? pw : NULL, REDS[r]), AX_OK);
            int64_t nw;
            ref_reduce(per, 12, 12, REDS[r], want, &nw);
            if (REDS[r] == AX_LOSS_NONE)
                expect_close("bce", y, 2, SH(3, 4), want, 1e-5, 1e-5);
            else
                expect_close("bce", y, 0, NULL, want, 1e-5, 1e-5);
            ax_tensor_free(y);
        }
    }
    ax_tensor_free(x);
    ax_tensor_free(t);
    ax_tensor_free(pw);
}

typedef struct bce_ctx {
    const ax_tensor *pw;
    ax_loss_reduction r;
} bce_ctx;

static ax_status bce_fn(ax_tensor **out, ax_tensor *const *in, void *vctx) {
    const bce_ctx *c = vctx;
    ax_tensor *x = NULL;
    if (ax_tensor_transpose(&x, in[0], 0, 1) != AX_OK) return ax_error_status();
    ax_status st = ax_bce_with_logits(out, x, in[1], c->pw, c->r);
    ax_tensor_free(x);
    return st;
}

static void test_bce_grad(void **state) {
    (void)state;
    ax_tensor *x = ax_test_randn(2, SH(4, 3), 43, 2, 0, true), *t = ax_test_randn(2, SH(3, 4), 44, 0.3, 0.5, true);
    const float pwv[4] = {1.0f, 2.0f, 0.5f, 3.0f};
    ax_tensor *pw = f32_tensor(1, SH(4), pwv), *in[2] = {x, t};
    for (int withpw = 0; withpw < 2; withpw++)
        for (int r = 0; r < 3; r++) {
            bce_ctx c = {withpw ? pw : NULL, REDS[r]};
            if (!ax_gradcheck(bce_fn, 2, in, &c, &AX_GC_DEFAULT)) fail_msg("bce grad pw %d reduction %d", withpw, r);
        }
    ax_tensor_free(x);
    ax_tensor_free(t);
    ax_tensor_free(pw);
}

/* ---- soft Dice ------------------------------------------------------------------------ */

/* nnU-Net's formula for probs [N, C, S], labels [N, S], mask [N, S] (or NULL). */
static double ref_dice(const ax_tensor *x, int64_t N, int64_t C, int64_t S, const int64_t *lab, const double *mask,
                       double smooth, bool batch_dice, bool do_bg) {
    double tot = 0;
    int cnt = 0;
    for (int64_t c = do_bg ? 0 : 1; c < C; c++) {
        double I[8] = {0}, P[8] = {0}, G[8] = {0};
        for (int64_t n = 0; n < N; n++)
            for (int64_t s = 0; s < S; s++) {
                double xv = ax_tensor_get(x, (n * C + c) * S + s), y = lab[n * S + s] == c, m = mask ? mask[n * S + s] : 1;
                int64_t b = batch_dice ? 0 : n;
                I[b] += xv * y * m;
                P[b] += xv * m;
                G[b] += y * m;
            }
        for (int64_t b = 0; b < (batch_dice ? 1 : N); b++) {
            tot += (2 * I[b] + smooth) / fmax(G[b] + P[b] + smooth, 1e-8);
            cnt++;
        }
    }
    return -tot / cnt;
}

static void test_dice_forward(void **state) {
    (void)state;
    ax_tensor *lg = ax_test_randn(3, SH(2, 3, 5), 51, 1, 0, false), *x;
    assert_int_equal(ax_softmax(&x, lg, 1), AX_OK);
    const int64_t lab[10] = {0, 1, 2, 2, 1, 0, 0, 2, 1, 1};
    const double mk[10] = {1, 1, 0, 1, 1, 1, 0, 1, 1, 1};
    ax_tensor *l_nos = i64_tensor(2, SH(2, 5), lab), *l_1 = i64_tensor(3, SH(2, 1, 5), lab), *l_f, *oh, *mask, *mu8;
    assert_int_equal(ax_tensor_to_dtype(&l_f, l_1, AX_DTYPE_F32), AX_OK); /* nnU-Net passes float label maps */
    assert_int_equal(ax_tensor_zeros(&oh, 3, SH(2, 3, 5), AX_DTYPE_F32), AX_OK);
    for (int n = 0; n < 2; n++)
        for (int s = 0; s < 5; s++) ax_tensor_set(oh, (n * 3 + lab[n * 5 + s]) * 5 + s, 1.0);
    assert_int_equal(ax_tensor_empty(&mask, 3, SH(2, 1, 5), AX_DTYPE_F32), AX_OK);
    assert_int_equal(ax_tensor_empty(&mu8, 3, SH(2, 1, 5), AX_DTYPE_U8), AX_OK);
    for (int i = 0; i < 10; i++) ax_tensor_set(mask, i, mk[i]), ax_tensor_set(mu8, i, mk[i]);
    const ax_tensor *targets[] = {l_nos, l_1, l_f, oh};
    for (int ti = 0; ti < 4; ti++)
        for (int bd = 0; bd < 2; bd++)
            for (int bg = 0; bg < 2; bg++)
                for (int mi = 0; mi < 3; mi++) {
                    double smooth = mi ? 1.0 : 1e-5;
                    double want = ref_dice(x, 2, 3, 5, lab, mi ? mk : NULL, smooth, bd, bg);
                    ax_tensor *y;
                    assert_int_equal(ax_soft_dice_loss(&y, x, targets[ti], mi == 1 ? mask : mi == 2 ? mu8 : NULL,
                                                       smooth, bd, bg),
                                     AX_OK);
                    assert_int_equal(y->ndim, 0);
                    if (fabs(ax_tensor_get(y, 0) - want) > 1e-6)
                        fail_msg("dice target %d batch %d bg %d mask %d: got %.8g want %.8g", ti, bd, bg, mi,
                                 ax_tensor_get(y, 0), want);
                    ax_tensor_free(y);
                }
    /* a perfect prediction scores -1 */
    ax_tensor *y;
    assert_int_equal(ax_soft_dice_loss(&y, oh, l_nos, NULL, 1e-5, false, true), AX_OK);
    assert_float_equal(ax_tensor_get(y, 0), -1.0, 1e-6);
    ax_tensor_free(y);
    ax_tensor *all[] = {lg, x, l_nos, l_1, l_f, oh, mask, mu8};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

typedef struct dice_ctx {
    const ax_tensor *target, *mask;
    bool batch_dice, do_bg;
} dice_ctx;

static ax_status dice_fn(ax_tensor **out, ax_tensor *const *in, void *vctx) {
    const dice_ctx *c = vctx;
    /* in[0]: logits [N, S, C] -> probs [N, C, S] through a permuted view */
    ax_tensor *pv = NULL, *p = NULL;
    ax_status st = ax_tensor_permute(&pv, in[0], (int[]){0, 2, 1});
    if (st == AX_OK) st = ax_softmax(&p, pv, 1);
    if (st == AX_OK) st = ax_soft_dice_loss(out, p, c->target, c->mask, 1e-5, c->batch_dice, c->do_bg);
    ax_tensor_free(pv);
    ax_tensor_free(p);
    return st;
}

static void test_dice_grad(void **state) {
    (void)state;
    ax_tensor *lg = ax_test_randn(3, SH(2, 5, 3), 52, 1, 0, true);
    const int64_t lab[10] = {0, 1, 2, 2, 1, 0, 0, 2, 1, 1};
    const float mk[10] = {1, 1, 0, 1, 1, 1, 0, 1, 1, 1};
    ax_tensor *l = i64_tensor(2, SH(2, 5), lab), *m = f32_tensor(3, SH(2, 1, 5), mk), *in[1] = {lg};
    for (int bd = 0; bd < 2; bd++)
        for (int bg = 0; bg < 2; bg++)
            for (int mi = 0; mi < 2; mi++) {
                dice_ctx c = {l, mi ? m : NULL, bd, bg};
                if (!ax_gradcheck(dice_fn, 1, in, &c, &AX_GC_DEFAULT))
                    fail_msg("dice grad batch %d bg %d mask %d", bd, bg, mi);
            }
    ax_tensor_free(lg);
    ax_tensor_free(l);
    ax_tensor_free(m);
}

/* ---- similarity ---------------------------------------------------------------------------- */

static void test_similarity_forward(void **state) {
    (void)state;
    ax_tensor *a = ax_test_randn(2, SH(3, 4), 61, 1, 0, false), *b = ax_test_randn(2, SH(1, 4), 62, 1, 0, false), *y;
    /* row 2 of a is tiny: its norm clamps at eps */
    for (int j = 0; j < 4; j++) ax_tensor_set(a, 8 + j, 1e-9 * (j + 1));
    const double eps = 1e-8;
    double want[4];
    for (int i = 0; i < 3; i++) {
        double na = 0, nb = 0, dot = 0;
        for (int j = 0; j < 4; j++) {
            double x = ax_tensor_get(a, i * 4 + j), z = ax_tensor_get(b, j);
            na += x * x, nb += z * z, dot += x * z;
        }
        want[i] = dot / (fmax(sqrt(na), eps) * fmax(sqrt(nb), eps));
    }
    assert_int_equal(ax_cosine_similarity(&y, a, b, 1, eps), AX_OK);
    expect_close("cosine dim 1", y, 1, SH(3), want, 1e-6, 1e-5);
    ax_tensor_free(y);
    assert_int_equal(ax_cosine_similarity(&y, a, b, -1, eps), AX_OK);
    expect_close("cosine dim -1", y, 1, SH(3), want, 1e-6, 1e-5);
    ax_tensor_free(y);
    /* dim 0 of the broadcast shape: b's row counts three times */
    for (int j = 0; j < 4; j++) {
        double na = 0, nb = 0, dot = 0;
        for (int i = 0; i < 3; i++) {
            double x = ax_tensor_get(a, i * 4 + j), z = ax_tensor_get(b, j);
            na += x * x, nb += z * z, dot += x * z;
        }
        want[j] = dot / (fmax(sqrt(na), eps) * fmax(sqrt(nb), eps));
    }
    assert_int_equal(ax_cosine_similarity(&y, a, b, 0, eps), AX_OK);
    expect_close("cosine dim 0", y, 1, SH(4), want, 1e-6, 1e-5);
    ax_tensor_free(y);

    double wn[12];
    for (int i = 0; i < 3; i++) {
        double n = 0;
        for (int j = 0; j < 4; j++) n += ax_tensor_get(a, i * 4 + j) * ax_tensor_get(a, i * 4 + j);
        for (int j = 0; j < 4; j++) wn[i * 4 + j] = ax_tensor_get(a, i * 4 + j) / fmax(sqrt(n), 1e-12);
    }
    assert_int_equal(ax_l2_normalize(&y, a, 1, 1e-12), AX_OK);
    expect_close("normalize", y, 2, SH(3, 4), wn, 1e-6, 1e-5);
    ax_tensor_free(y);

    /* an all-zero vector: finite values and gradients */
    ax_tensor *z, *zr, *s;
    assert_int_equal(ax_tensor_zeros(&zr, 2, SH(2, 4), AX_DTYPE_F32), AX_OK);
    assert_int_equal(ax_add_scalar(&z, zr, 0), AX_OK);
    ax_tensor_set(z, 4, 1.0);
    assert_int_equal(ax_tensor_set_requires_grad(z, true), AX_OK);
    ax_tensor *bb = ax_test_randn(2, SH(2, 4), 63, 1, 0, false);
    assert_int_equal(ax_cosine_similarity(&y, z, bb, 1, 1e-8), AX_OK);
    assert_int_equal(ax_sum(&s, y, 0, NULL, false), AX_OK);
    assert_int_equal(ax_backward(s, NULL), AX_OK);
    for (int i = 0; i < 8; i++) assert_true(isfinite(ax_tensor_get(z->grad, i)));
    assert_float_equal(ax_tensor_get(y, 0), 0.0, 0.0);
    ax_tensor_free(y);
    ax_tensor_free(s);
    ax_tensor_zero_grad(z);
    assert_int_equal(ax_l2_normalize(&y, z, 1, 1e-12), AX_OK);
    assert_int_equal(ax_sum(&s, y, 0, NULL, false), AX_OK);
    assert_int_equal(ax_backward(s, NULL), AX_OK);
    for (int i = 0; i < 8; i++) assert_true(isfinite(ax_tensor_get(z->grad, i)));
    ax_tensor *all[] = {a, b, y, s, z, zr, bb};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

typedef struct sim_ctx {
    int dim;
    bool normalize;
} sim_ctx;

static ax_status sim_fn(ax_tensor **out, ax_tensor *const *in, void *vctx) {
    const sim_ctx *c = vctx;
    ax_tensor *a = NULL;
    if (ax_tensor_transpose(&a, in[0], 0, 1) != AX_OK) return ax_error_status(); /* [4, 3] -> [3, 4] */
    ax_status st = c->normalize ? ax_l2_normalize(out, a, c->dim, 1e-12) : ax_cosine_similarity(out, a, in[1], c->dim, 1e-8);
    ax_tensor_free(a);
    return st;
}

static void test_similarity_grad(void **state) {
    (void)state;
    ax_tensor *a = ax_test_randn(2, SH(4, 3), 64, 1, 0, true), *b = ax_test_randn(2, SH(1, 4), 65, 1, 0, true);
    ax_tensor *in[2] = {a, b};
    for (int d = 0; d < 2; d++)
        for (int nz = 0; nz < 2; nz++) {
            sim_ctx c = {d, nz};
            if (!ax_gradcheck(sim_fn, nz ? 1 : 2, in, &c, &AX_GC_DEFAULT)) fail_msg("similarity dim %d normalize %d", d, nz);
        }
    ax_tensor_free(a);
    ax_tensor_free(b);
}

/* bf16 inputs are computed in f32 and give f32 losses; the gradient comes
 * back in bf16. */
static void test_half_inputs(void **state) {
    (void)state;
    ax_tensor *p = ax_test_randn(2, SH(3, 4), 71, 1, 0, false), *t = ax_test_randn(2, SH(3, 4), 72, 1, 0, false);
    ax_tensor *pb, *y, *y32;
    assert_int_equal(ax_tensor_to_dtype(&pb, p, AX_DTYPE_BF16), AX_OK);
    assert_int_equal(ax_tensor_set_requires_grad(pb, true), AX_OK);
    assert_int_equal(ax_mse_loss(&y, pb, t, NULL, AX_LOSS_MEAN), AX_OK);
    assert_int_equal(y->dtype, AX_DTYPE_F32);
    assert_int_equal(ax_mse_loss(&y32, p, t, NULL, AX_LOSS_MEAN), AX_OK);
    assert_float_equal(ax_tensor_get(y, 0), ax_tensor_get(y32, 0), 0.05);
    assert_int_equal(ax_backward(y, NULL), AX_OK);
    assert_int_equal(pb->grad->dtype, AX_DTYPE_BF16);
    ax_tensor *n;
    assert_int_equal(ax_l2_normalize(&n, pb, 1, 1e-12), AX_OK);
    assert_int_equal(n->dtype, AX_DTYPE_BF16);
    ax_tensor *all[] = {p, t, pb, y, y32, n};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

/* ---- errors ------------------------------------------------------------------------------------ */

static void test_errors(void **state) {
    (void)state;
    ax_tensor *p = ax_test_randn(2, SH(2, 3), 81, 1, 0, false), *t4 = ax_test_randn(1, SH(4), 82, 1, 0, false), *y = NULL;
    ax_tensor *m = ax_test_randn(2, SH(4, 3), 83, 1, 0, false), *ip, *i64;
    assert_int_equal(ax_tensor_arange(&ip, 0, 6, 1, AX_DTYPE_I32), AX_OK);
    ax_expect_error(ax_mse_loss(&y, p, t4, NULL, AX_LOSS_MEAN),
                    "ax_mse_loss: pred [2, 3] and target [4] do not broadcast");
    assert_null(y);
    ax_expect_error(ax_l1_loss(&y, p, p, m, AX_LOSS_MEAN),
                    "ax_l1_loss: mask [4, 3] does not broadcast to the loss shape [2, 3]");
    ax_expect_error(ax_mse_loss(&y, p, p, NULL, (ax_loss_reduction)7), "ax_mse_loss: unknown reduction 7");
    ax_expect_error(ax_mse_loss(&y, ip, ip, NULL, AX_LOSS_MEAN), "ax_mse_loss: pred must be a floating tensor, got i32");
    ax_expect_error(ax_mse_loss(&y, p, p, ip, AX_LOSS_MEAN), "ax_mse_loss: mask must be float or u8, got i32");
    ax_expect_error(ax_smooth_l1_loss(&y, p, p, -1, AX_LOSS_MEAN), "ax_smooth_l1_loss: beta = -1 must be finite and >= 0");

    /* cross entropy */
    ax_tensor *lg = ax_test_randn(3, SH(2, 3, 4), 84, 1, 0, false), *w2 = ax_test_randn(1, SH(2), 85, 1, 0, false);
    const int64_t tv[8] = {0, 1, 2, 0, 1, 2, 0, 1}, bad[8] = {0, 1, 2, 0, 1, 5, 0, 1};
    ax_tensor *tg = i64_tensor(2, SH(2, 4), tv), *tgb = i64_tensor(2, SH(2, 4), bad), *tgs = i64_tensor(2, SH(4, 2), tv);
    ax_expect_error(ax_cross_entropy(&y, lg, tgs, NULL, -100, 0, AX_LOSS_MEAN),
                    "ax_cross_entropy: target [4, 2] does not match logits [2, 3, 4] (want [2, 4])");
    ax_expect_error(ax_cross_entropy(&y, lg, tgb, NULL, -100, 0, AX_LOSS_MEAN),
                    "ax_cross_entropy: target value 5 at element 5 is not a class in [0, 3) nor ignore_index -100");
    ax_expect_error(ax_cross_entropy(&y, lg, tg, w2, -100, 0, AX_LOSS_MEAN),
                    "ax_cross_entropy: class_weights [2] must be [3] for logits [2, 3, 4]");
    ax_expect_error(ax_cross_entropy(&y, lg, tg, NULL, -100, 1.5, AX_LOSS_MEAN),
                    "ax_cross_entropy: label_smoothing = 1.5 is not in [0, 1]");
    ax_expect_error(ax_cross_entropy(&y, lg, p, NULL, -100, 0, AX_LOSS_MEAN),
                    "ax_cross_entropy: float target [2, 3] must have logits' shape [2, 3, 4]");
    ax_expect_error(ax_cross_entropy(&y, lg, lg, NULL, 0, 0, AX_LOSS_MEAN),
                    "ax_cross_entropy: ignore_index 0 is not supported with class probabilities");
    ax_expect_error(ax_cross_entropy(&y, ip, tg, NULL, -100, 0, AX_LOSS_MEAN),
                    "ax_cross_entropy: logits must be a floating tensor, got i32");
    assert_int_equal(ax_tensor_to_dtype(&i64, lg, AX_DTYPE_BF16), AX_OK);
    ax_tensor *t16;
    assert_int_equal(ax_tensor_to_dtype(&t16, tg, AX_DTYPE_F16), AX_OK);
    ax_expect_error(ax_cross_entropy(&y, i64, t16, NULL, -100, 0, AX_LOSS_MEAN),
                    "ax_cross_entropy: float target [2, 4] must have logits' shape [2, 3, 4]");
    ax_tensor *s0;
    assert_int_equal(ax_tensor_scalar(&s0, 1.0, AX_DTYPE_F32), AX_OK);
    ax_expect_error(ax_cross_entropy(&y, s0, tg, NULL, -100, 0, AX_LOSS_MEAN),
                    "ax_cross_entropy: logits must be [N, C, *] or [C], got a 0-dim tensor");

    /* bce */
    ax_expect_error(ax_bce_with_logits(&y, p, t4, NULL, AX_LOSS_MEAN),
                    "ax_bce_with_logits: target [4] must have logits' shape [2, 3]");
    ax_expect_error(ax_bce_with_logits(&y, p, p, t4, AX_LOSS_MEAN),
                    "ax_bce_with_logits: pos_weight [4] does not broadcast to logits [2, 3]");

    /* dice */
    ax_tensor *pr = ax_test_randn(3, SH(2, 3, 4), 86, 1, 0, false), *lab = i64_tensor(2, SH(2, 4), tv);
    ax_tensor *lab_bad = i64_tensor(2, SH(4, 2), tv), *one = ax_test_randn(3, SH(2, 1, 4), 87, 1, 0, false);
    ax_expect_error(ax_soft_dice_loss(&y, pr, lab_bad, NULL, 1e-5, false, true),
                    "ax_soft_dice_loss: target [4, 2] is neither a label map [N, *] / [N, 1, *] nor one-hot like "
                    "probs [2, 3, 4]");
    ax_expect_error(ax_soft_dice_loss(&y, pr, lab, pr, 1e-5, false, true),
                    "ax_soft_dice_loss: loss_mask [2, 3, 4] does not broadcast to [2, 1, 4]");
    ax_expect_error(ax_soft_dice_loss(&y, one, lab, NULL, 1e-5, false, false),
                    "ax_soft_dice_loss: do_bg = false needs at least 2 classes, probs is [2, 1, 4]");
    ax_expect_error(ax_soft_dice_loss(&y, pr, lab, NULL, -1, false, true),
                    "ax_soft_dice_loss: smooth = -1 must be finite and >= 0");
    ax_expect_error(ax_soft_dice_loss(&y, t4, lab, NULL, 1e-5, false, true), "ax_soft_dice_loss: probs [4] must be [N, C, *]");

    /* similarity */
    ax_expect_error(ax_cosine_similarity(&y, p, t4, 1, 1e-8), "ax_cosine_similarity: a [2, 3] and b [4] do not broadcast");
    ax_expect_error(ax_cosine_similarity(&y, p, p, 2, 1e-8),
                    "ax_cosine_similarity: dim 2 out of range for the broadcast shape [2, 3]");
    ax_expect_error(ax_cosine_similarity(&y, p, p, 1, -1), "ax_cosine_similarity: eps = -1 must be finite and >= 0");
    ax_expect_error(ax_l2_normalize(&y, p, -3, 1e-12), "ax_l2_normalize: dim -3 out of range for x [2, 3]");
    ax_expect_error(ax_l2_normalize(&y, ip, 0, 1e-12), "ax_l2_normalize: x must be a floating tensor, got i32");
    assert_null(y);
    ax_tensor *all[] = {p, t4, m, ip, i64, t16, s0, lg, w2, tg, tgb, tgs, pr, lab, lab_bad, one};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

/* ---- PyTorch parity ------------------------------------------------------------------------------ */

typedef ax_status (*fx_fn)(ax_tensor **out, ax_tensor *const *in);

typedef struct fx_case {
    const char *name;
    int n;
    const char *inputs[4];
    bool grad[4];
    fx_fn fn;
} fx_case;

static ax_status fx_mse_mean(ax_tensor **o, ax_tensor *const *in) { return ax_mse_loss(o, in[0], in[1], NULL, AX_LOSS_MEAN); }
static ax_status fx_mse_none(ax_tensor **o, ax_tensor *const *in) { return ax_mse_loss(o, in[0], in[1], NULL, AX_LOSS_NONE); }
static ax_status fx_mse_sum(ax_tensor **o, ax_tensor *const *in) { return ax_mse_loss(o, in[0], in[1], NULL, AX_LOSS_SUM); }
static ax_status fx_mse_masked(ax_tensor **o, ax_tensor *const *in) {
    return ax_mse_loss(o, in[0], in[1], in[2], AX_LOSS_MEAN);
}
static ax_status fx_l1_mean(ax_tensor **o, ax_tensor *const *in) { return ax_l1_loss(o, in[0], in[1], NULL, AX_LOSS_MEAN); }
static ax_status fx_l1_none(ax_tensor **o, ax_tensor *const *in) { return ax_l1_loss(o, in[0], in[1], NULL, AX_LOSS_NONE); }
static ax_status fx_sl1_b05(ax_tensor **o, ax_tensor *const *in) {
    return ax_smooth_l1_loss(o, in[0], in[1], 0.5, AX_LOSS_MEAN);
}
static ax_status fx_sl1_b0(ax_tensor **o, ax_tensor *const *in) { return ax_smooth_l1_loss(o, in[0], in[1], 0.0, AX_LOSS_SUM); }
static ax_status fx_sl1_b2(ax_tensor **o, ax_tensor *const *in) {
    return ax_smooth_l1_loss(o, in[0], in[1], 2.0, AX_LOSS_NONE);
}
static ax_status fx_ce_basic(ax_tensor **o, ax_tensor *const *in) {
    return ax_cross_entropy(o, in[0], in[1], NULL, AX_IGNORE_INDEX, 0.0, AX_LOSS_MEAN);
}
static ax_status fx_ce_full(ax_tensor **o, ax_tensor *const *in) {
    return ax_cross_entropy(o, in[0], in[1], in[2], AX_IGNORE_INDEX, 0.1, AX_LOSS_MEAN);
}
static ax_status fx_ce_ignore_class(ax_tensor **o, ax_tensor *const *in) {
    return ax_cross_entropy(o, in[0], in[1], in[2], 2, 0.2, AX_LOSS_SUM);
}
static ax_status fx_ce_none(ax_tensor **o, ax_tensor *const *in) {
    return ax_cross_entropy(o, in[0], in[1], in[2], AX_IGNORE_INDEX, 0.3, AX_LOSS_NONE);
}
static ax_status fx_ce_smooth(ax_tensor **o, ax_tensor *const *in) {
    return ax_cross_entropy(o, in[0], in[1], NULL, AX_IGNORE_INDEX, 0.25, AX_LOSS_MEAN);
}
static ax_status fx_ce_probs(ax_tensor **o, ax_tensor *const *in) {
    return ax_cross_entropy(o, in[0], in[1], in[2], AX_IGNORE_INDEX, 0.1, AX_LOSS_MEAN);
}
static ax_status fx_bce_posw(ax_tensor **o, ax_tensor *const *in) {
    return ax_bce_with_logits(o, in[0], in[1], in[2], AX_LOSS_MEAN);
}
static ax_status fx_bce_none(ax_tensor **o, ax_tensor *const *in) {
    return ax_bce_with_logits(o, in[0], in[1], NULL, AX_LOSS_NONE);
}
static ax_status fx_dice_plain(ax_tensor **o, ax_tensor *const *in) {
    return ax_soft_dice_loss(o, in[0], in[1], NULL, 1e-5, false, true);
}
static ax_status fx_dice_batch_nobg(ax_tensor **o, ax_tensor *const *in) {
    return ax_soft_dice_loss(o, in[0], in[1], NULL, 1e-5, true, false);
}
static ax_status fx_dice_mask(ax_tensor **o, ax_tensor *const *in) {
    return ax_soft_dice_loss(o, in[0], in[1], in[2], 1.0, false, false);
}
static ax_status fx_cos1(ax_tensor **o, ax_tensor *const *in) { return ax_cosine_similarity(o, in[0], in[1], 1, 1e-8); }
static ax_status fx_cos0(ax_tensor **o, ax_tensor *const *in) { return ax_cosine_similarity(o, in[0], in[1], 0, 1e-8); }
static ax_status fx_norm1(ax_tensor **o, ax_tensor *const *in) { return ax_l2_normalize(o, in[0], 1, 1e-12); }
static ax_status fx_norm0(ax_tensor **o, ax_tensor *const *in) { return ax_l2_normalize(o, in[0], 0, 1e-12); }

static const fx_case FX_CASES[] = {
    {"mse_mean", 2, {"pred", "target"}, {true, true}, fx_mse_mean},
    {"mse_none", 2, {"pred", "target"}, {true, false}, fx_mse_none},
    {"mse_sum_bcast", 2, {"pred", "target"}, {true, true}, fx_mse_sum},
    {"mse_masked", 3, {"pred", "target", "mask"}, {true, false, false}, fx_mse_masked},
    {"l1_mean", 2, {"pred", "target"}, {true, true}, fx_l1_mean},
    {"l1_none", 2, {"pred", "target"}, {true, false}, fx_l1_none},
    {"smooth_l1_b05", 2, {"pred", "target"}, {true, false}, fx_sl1_b05},
    {"smooth_l1_b0_sum", 2, {"pred", "target"}, {true, false}, fx_sl1_b0},
    {"smooth_l1_b2_none", 2, {"pred", "target"}, {true, false}, fx_sl1_b2},
    {"ce_basic", 2, {"logits", "target"}, {true, false}, fx_ce_basic},
    {"ce_full", 3, {"logits", "target", "weight"}, {true, false, false}, fx_ce_full},
    {"ce_ignore_class", 3, {"logits", "target", "weight"}, {true, false, false}, fx_ce_ignore_class},
    {"ce_none", 3, {"logits", "target", "weight"}, {true, false, false}, fx_ce_none},
    {"ce_smooth_noweight", 2, {"logits", "target"}, {true, false}, fx_ce_smooth},
    {"ce_probs", 3, {"logits", "target", "weight"}, {true, true, false}, fx_ce_probs},
    {"bce_posw", 3, {"logits", "target", "pos_weight"}, {true, true, false}, fx_bce_posw},
    {"bce_none", 2, {"logits", "target"}, {true, false}, fx_bce_none},
    {"dice_plain", 2, {"probs", "target"}, {true, false}, fx_dice_plain},
    {"dice_batch_nobg", 2, {"probs", "target"}, {true, false}, fx_dice_batch_nobg},
    {"dice_mask", 3, {"probs", "target", "mask"}, {true, false, false}, fx_dice_mask},
    {"cos_bcast", 2, {"a", "b"}, {true, true}, fx_cos1},
    {"cos_dim0", 2, {"a", "b"}, {true, true}, fx_cos0},
    {"normalize_d1", 1, {"x"}, {true}, fx_norm1},
    {"normalize_d0", 1, {"x"}, {true}, fx_norm0},
};

static ax_tensor *fx_get(ax_safetensors *f, const char *cname, const char *name) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", cname, name);
    ax_tensor *t;
    if (ax_safetensors_get(f, key, &t) != AX_OK) fail_msg("fixture %s: %s", key, ax_error_message());
    return t;
}

static void test_torch_parity(void **state) {
    (void)state;
    ax_safetensors *f;
    if (ax_safetensors_open(&f, AX_TEST_FIXTURES "/loss/loss.safetensors") != AX_OK)
        fail_msg("open fixture: %s", ax_error_message());
    for (size_t c = 0; c < sizeof FX_CASES / sizeof FX_CASES[0]; c++) {
        const fx_case *k = &FX_CASES[c];
        ax_tensor *in[4] = {NULL}, *y = NULL;
        for (int i = 0; i < k->n; i++) {
            ax_tensor *t = fx_get(f, k->name, k->inputs[i]);
            if (t->dtype == AX_DTYPE_F32) {
                assert_int_equal(ax_add_scalar(&in[i], t, 0), AX_OK); /* a fresh leaf */
                ax_tensor_free(t);
                if (k->grad[i]) assert_int_equal(ax_tensor_set_requires_grad(in[i], true), AX_OK);
            } else {
                in[i] = t;
            }
        }
        if (k->fn(&y, in) != AX_OK) fail_msg("%s: %s", k->name, ax_error_message());
        ax_tensor *want = fx_get(f, k->name, "out"), *gout = fx_get(f, k->name, "gout");
        char what[96];
        snprintf(what, sizeof what, "%s: out", k->name);
        if (!ax_allclose(what, y, want, 1e-5, 1e-4)) fail_msg("%s forward differs from torch", k->name);
        assert_int_equal(ax_backward(y, gout), AX_OK);
        for (int i = 0; i < k->n; i++) {
            if (!k->grad[i]) continue;
            char gname[64];
            snprintf(gname, sizeof gname, "grad_%s", k->inputs[i]);
            ax_tensor *gw = fx_get(f, k->name, gname);
            snprintf(what, sizeof what, "%s: %s", k->name, gname);
            if (!ax_allclose(what, in[i]->grad, gw, 1e-5, 1e-4)) fail_msg("%s gradient differs from torch", what);
            ax_tensor_free(gw);
        }
        ax_tensor_free(want);
        ax_tensor_free(gout);
        ax_tensor_free(y);
        for (int i = 0; i < k->n; i++) ax_tensor_free(in[i]);
    }
    ax_safetensors_close(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_regression_forward),
        cmocka_unit_test(test_smooth_l1_forward),
        cmocka_unit_test(test_regression_grad),
        cmocka_unit_test(test_cross_entropy_forward),
        cmocka_unit_test(test_cross_entropy_grad),
        cmocka_unit_test(test_bce_forward),
        cmocka_unit_test(test_bce_grad),
        cmocka_unit_test(test_dice_forward),
        cmocka_unit_test(test_dice_grad),
        cmocka_unit_test(test_similarity_forward),
        cmocka_unit_test(test_similarity_grad),
        cmocka_unit_test(test_half_inputs),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_torch_parity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
