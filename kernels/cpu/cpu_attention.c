/* Fused scaled dot-product attention (the kernel table's sdpa and
 * sdpa_backward), FlashAttention-2 style: the scores are never stored
 * whole. Queries are taken in blocks of AX_SDPA_BQ rows and keys in blocks
 * of AX_SDPA_BK; each tile of scores lives in a per-thread scratch buffer
 * while a running row maximum and sum rescale the output accumulator
 * (online softmax), so extra memory is O(threads * tile), not O(L * S).
 *
 * The tile products go through oneDNN's sgemm (what cpu_matmul.c uses) on
 * the calling thread: every region below first sets its threads' OpenMP
 * count to 1 (ax_sdpa_one_thread), so sgemm never forks a team for a
 * tile, also when the region itself runs serially (small problems, one
 * thread). Each tile is computed by one thread in a fixed order.
 *
 * Determinism: every output element is produced by one thread, summing
 * its tiles in increasing key (or query) order, whatever the thread count.
 * The backward recomputes P = exp(s - lse) per tile and has two schedules
 * that perform the same per-tile operations in the same order per output
 * block, hence give the same bits: one batch entry per thread (5 tile
 * products, used when the batch splits evenly over the threads), or key
 * blocks per thread for dk/dv then query blocks per thread for dq (7 tile
 * products, for small batches). No atomics.
 */
#include <dnnl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu_iter.h"
#include "cpu_kernels.h"

#define AX_SDPA_BQ 64  /* query rows per tile */
#define AX_SDPA_BK 256 /* keys per tile */
/* Fork threads from this many multiply-adds (B L S (E + Ev)) up, about a
 * millisecond of one core: below it the fork and join cost more than they
 * save (gradient checks call tiny attentions thousands of times). */
#define AX_SDPA_PAR_MIN_MACS (1 << 21)

/* The row passes are compiled for AVX2 and the baseline and picked at load
 * time, as in cpu_matmul.c: the exp polynomial vectorises 8 wide. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define AX_SDPA_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define AX_SDPA_CLONES
#endif

typedef struct ax_sdpa_dims {
    int64_t B, L, S, E, Ev;
    float scale;
    bool causal;
} ax_sdpa_dims;

/* e^x for x <= 0 (the only arguments here: scores minus their row
 * maximum or their log-sum-exp) with ax_cpu_expf, and exactly 0 below
 * -87.3 (and for -inf), where e^x leaves the normal range; NaN stays NaN. */
static inline float ax_sdpa_exp(float x) { return x < -87.3f ? 0.0f : ax_cpu_expf(x); }

/* Called first inside each parallel region: this thread's nested regions
 * (oneDNN's sgemm) get one thread. The setting is the region's own and
 * ends with it. */
static inline void ax_sdpa_one_thread(void) {
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
}

/* C = alpha op(A) op(B) + beta C for row-major matrices; K = 0 only scales. */
static bool ax_sdpa_gemm(char ta, char tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                         const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (m == 0 || n == 0) return true;
    if (k == 0) {
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0 ? 0.0f : beta * c[i * ldc + j];
        return true;
    }
    return dnnl_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) == dnnl_success;
}

/* Keys of the tile [j0, j0 + nk) that query i sees (0 .. nk). */
static inline int64_t ax_sdpa_visible(const ax_sdpa_dims *d, int64_t i, int64_t j0, int64_t nk) {
    if (!d->causal) return nk;
    int64_t n = i - j0 + 1;
    return n < 0 ? 0 : n > nk ? nk : n;
}

/* ---- forward ------------------------------------------------------------------------ */

/* One row of a score tile: s[0 .. vis) visible, the rest masked. Updates
 * the running max *m and sum *l, rescales the accumulator acc[0 .. ev) and
 * leaves p = exp(s - m) in s[0 .. nk) (zeros where masked). */
AX_SDPA_CLONES
static void ax_sdpa_online_row(float *s, int64_t vis, int64_t nk, float *m, float *l, float *acc, int64_t ev) {
    float mx = *m;
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < vis; j++) mx = s[j] > mx ? s[j] : mx;
    if (mx == -INFINITY) { /* nothing visible yet: the row contributes nothing */
        memset(s, 0, (size_t)nk * sizeof *s);
        return;
    }
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < vis; j++) {
        float p = ax_sdpa_exp(s[j] - mx);
        s[j] = p;
        sum += p;
    }
    for (int64_t j = vis; j < nk; j++) s[j] = 0.0f;
    if (mx != *m) {
        float corr = ax_sdpa_exp(*m - mx); /* 0 when *m is -inf */
        *l *= corr;
#pragma omp simd
        for (int64_t c = 0; c < ev; c++) acc[c] *= corr;
    }
    *l += sum;
    *m = mx;
}

/* Scratch floats per thread of the forward. */
static int64_t ax_sdpa_fwd_scratch(const ax_sdpa_dims *d) {
    return AX_SDPA_BQ * AX_SDPA_BK + AX_SDPA_BQ * d->Ev + 2 * AX_SDPA_BQ;
}

/* Output rows [i0, i0 + nq) of batch entry b. */
static bool ax_sdpa_fwd_block(const ax_sdpa_dims *d, const float *q, const float *k, const float *v, float *o,
                              float *lse, int64_t b, int64_t i0, float *ws) {
    const int64_t E = d->E, Ev = d->Ev, nq = d->L - i0 < AX_SDPA_BQ ? d->L - i0 : AX_SDPA_BQ;
    const float *qb = q + (b * d->L + i0) * E, *kb = k + b * d->S * E, *vb = v + b * d->S * Ev;
    float *s = ws, *acc = s + AX_SDPA_BQ * AX_SDPA_BK, *m = acc + AX_SDPA_BQ * Ev, *l = m + AX_SDPA_BQ;
    for (int64_t r = 0; r < nq; r++) m[r] = -INFINITY, l[r] = 0.0f;
    memset(acc, 0, (size_t)(nq * Ev) * sizeof *acc);
    int64_t kend = d->causal && i0 + nq < d->S ? i0 + nq : d->S;
    for (int64_t j0 = 0; j0 < kend; j0 += AX_SDPA_BK) {
        int64_t nk = kend - j0 < AX_SDPA_BK ? kend - j0 : AX_SDPA_BK;
        if (!ax_sdpa_gemm('N', 'T', nq, nk, E, d->scale, qb, E, kb + j0 * E, E, 0.0f, s, nk)) return false;
        for (int64_t r = 0; r < nq; r++)
            ax_sdpa_online_row(s + r * nk, ax_sdpa_visible(d, i0 + r, j0, nk), nk, m + r, l + r, acc + r * Ev, Ev);
        if (!ax_sdpa_gemm('N', 'N', nq, Ev, nk, 1.0f, s, nk, vb + j0 * Ev, Ev, 1.0f, acc, Ev)) return false;
    }
    for (int64_t r = 0; r < nq; r++) {
        float *orow = o + (b * d->L + i0 + r) * Ev;
        const float *arow = acc + r * Ev;
        if (l[r] > 0.0f) { /* m finite */
            float inv = 1.0f / l[r];
            for (int64_t c = 0; c < Ev; c++) orow[c] = arow[c] * inv;
            lse[b * d->L + i0 + r] = m[r] + logf(l[r]);
        } else { /* no visible key with a finite score: torch's safe softmax */
            for (int64_t c = 0; c < Ev; c++) orow[c] = 0.0f;
            lse[b * d->L + i0 + r] = -INFINITY;
        }
    }
    return true;
}

/* ---- argument checks ------------------------------------------------------------------ */

static bool ax_sdpa_3d(const ax_tensor *t, int64_t n0, int64_t n1, int64_t n2) {
    return t->ndim == 3 && t->shape[0] == n0 && t->shape[1] == n1 && t->shape[2] == n2 &&
           t->dtype == AX_DTYPE_F32 && ax_tensor_is_contiguous(t);
}

static bool ax_sdpa_lse_ok(const ax_tensor *t, int64_t B, int64_t L) {
    return t->ndim == 2 && t->shape[0] == B && t->shape[1] == L && t->dtype == AX_DTYPE_F32 &&
           ax_tensor_is_contiguous(t);
}

/* Dims from q, k, v, after checking them: AX_ERR_UNSUPPORTED for a dtype
 * other than f32, AX_ERR_INVALID for shapes. */
static ax_status ax_sdpa_dims_of(const char *fn, ax_sdpa_dims *d, const ax_tensor *q, const ax_tensor *k,
                                 const ax_tensor *v, double scale, bool causal) {
    char s1[128], s2[128], s3[128];
    const ax_tensor *in[3] = {q, k, v};
    for (int i = 0; i < 3; i++)
        if (in[i]->dtype != AX_DTYPE_F32)
            return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: %s is %s; the CPU kernel takes f32", fn, i == 0 ? "q" : i == 1 ? "k" : "v",
                            ax_dtype_name(in[i]->dtype));
    bool ok = q->ndim == 3 && k->ndim == 3 && v->ndim == 3;
    if (ok) {
        d->B = q->shape[0], d->L = q->shape[1], d->E = q->shape[2], d->S = k->shape[1], d->Ev = v->shape[2];
        ok = ax_sdpa_3d(q, d->B, d->L, d->E) && ax_sdpa_3d(k, d->B, d->S, d->E) && ax_sdpa_3d(v, d->B, d->S, d->Ev);
    }
    if (!ok)
        return AX_ERROR(AX_ERR_INVALID,
                        "%s: q %s, k %s, v %s: want contiguous q [B, L, E], k [B, S, E], v [B, S, Ev]", fn,
                        ax_shape_str(s1, sizeof s1, q->ndim, q->shape), ax_shape_str(s2, sizeof s2, k->ndim, k->shape),
                        ax_shape_str(s3, sizeof s3, v->ndim, v->shape));
    if (!isfinite(scale)) return AX_ERROR(AX_ERR_INVALID, "%s: scale %g is not finite", fn, scale);
    d->scale = (float)scale;
    d->causal = causal;
    return AX_OK;
}

ax_status ax_cpu_sdpa(ax_tensor *o, ax_tensor *lse, const ax_tensor *q, const ax_tensor *k, const ax_tensor *v,
                      double scale, bool is_causal) {
    const char *fn = "cpu sdpa";
    char s1[128], s2[128];
    ax_sdpa_dims d;
    if (ax_sdpa_dims_of(fn, &d, q, k, v, scale, is_causal) != AX_OK) return ax_error_status();
    if (!ax_sdpa_3d(o, d.B, d.L, d.Ev) || !ax_sdpa_lse_ok(lse, d.B, d.L))
        return AX_ERROR(AX_ERR_INVALID, "%s: o %s, lse %s: want contiguous f32 o [%lld, %lld, %lld], lse [%lld, %lld]",
                        fn, ax_shape_str(s1, sizeof s1, o->ndim, o->shape),
                        ax_shape_str(s2, sizeof s2, lse->ndim, lse->shape), (long long)d.B, (long long)d.L,
                        (long long)d.Ev, (long long)d.B, (long long)d.L);
    if (d.B == 0 || d.L == 0) return AX_OK;
    const float *qp = ax_tensor_data(q), *kp = ax_tensor_data(k), *vp = ax_tensor_data(v);
    float *op = ax_tensor_data(o), *lp = ax_tensor_data(lse);
    const int64_t nqb = (d.L + AX_SDPA_BQ - 1) / AX_SDPA_BQ, units = d.B * nqb;
    const size_t scratch = (size_t)ax_sdpa_fwd_scratch(&d) * sizeof(float);
    int failed = 0; /* 1: out of memory, 2: sgemm */
    /* Causal blocks differ in work: hand them out one at a time. */
#pragma omp parallel if (units > 1 && d.B * d.L * d.S * (d.E + d.Ev) >= AX_SDPA_PAR_MIN_MACS)
    {
        ax_sdpa_one_thread();
        float *ws = malloc(scratch);
        if (!ws) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t u = 0; u < units; u++) {
            if (ws && !ax_sdpa_fwd_block(&d, qp, kp, vp, op, lp, u / nqb, (u % nqb) * AX_SDPA_BQ, ws)) {
#pragma omp atomic write
                failed = 2;
            }
        }
        free(ws);
    }
    if (failed == 1) return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory for %zu bytes of tile scratch", fn, scratch);
    if (failed == 2) return AX_ERROR(AX_ERR_INTERNAL, "%s: dnnl_sgemm failed (E %lld, Ev %lld)", fn, (long long)d.E, (long long)d.Ev);
    return AX_OK;
}

/* ---- backward ------------------------------------------------------------------------ */

typedef struct ax_sdpa_bwd {
    ax_sdpa_dims d;
    const float *q, *k, *v, *dout, *lse, *delta; /* delta: [B, L] rowsum(dout * o) */
    float *dq, *dk, *dv;                         /* any may be NULL */
} ax_sdpa_bwd;

/* p = exp(s - lse) on the visible part of one score row, 0 elsewhere (and
 * everywhere when lse is -inf: a row that saw nothing). */
AX_SDPA_CLONES
static void ax_sdpa_prob_row(float *s, int64_t vis, int64_t nk, float lse) {
    if (lse == -INFINITY) vis = 0;
#pragma omp simd
    for (int64_t j = 0; j < vis; j++) s[j] = ax_sdpa_exp(s[j] - lse);
    for (int64_t j = vis; j < nk; j++) s[j] = 0.0f;
}

/* ds = p * (dp - delta) over one row, written over p. */
AX_SDPA_CLONES
static void ax_sdpa_ds_row(float *s, const float *dp, int64_t nk, float delta) {
#pragma omp simd
    for (int64_t j = 0; j < nk; j++) s[j] = s[j] * (dp[j] - delta);
}

/* Tile (queries [i0, i0 + nq), keys [j0, j0 + nk)) of batch entry b:
 * dv[j] += P^T dout[i], dk[j] += scale dS^T q[i] (kv), dq[i] += scale dS k[j] (dq).
 * s, dp: [AX_SDPA_BQ, AX_SDPA_BK] scratch. */
static bool ax_sdpa_bwd_tile(const ax_sdpa_bwd *w, int64_t b, int64_t i0, int64_t j0, bool kv, bool dq, float *s,
                             float *dp) {
    const ax_sdpa_dims *d = &w->d;
    const int64_t E = d->E, Ev = d->Ev;
    const int64_t nq = d->L - i0 < AX_SDPA_BQ ? d->L - i0 : AX_SDPA_BQ;
    const int64_t nk = d->S - j0 < AX_SDPA_BK ? d->S - j0 : AX_SDPA_BK;
    const float *qi = w->q + (b * d->L + i0) * E, *kj = w->k + (b * d->S + j0) * E;
    const float *vj = w->v + (b * d->S + j0) * Ev, *doi = w->dout + (b * d->L + i0) * Ev;
    const float *lse = w->lse + b * d->L + i0, *delta = w->delta + b * d->L + i0;
    bool want_dv = kv && w->dv, want_ds = (kv && w->dk) || (dq && w->dq);
    if (!ax_sdpa_gemm('N', 'T', nq, nk, E, d->scale, qi, E, kj, E, 0.0f, s, nk)) return false;
    if (want_ds && !ax_sdpa_gemm('N', 'T', nq, nk, Ev, 1.0f, doi, Ev, vj, Ev, 0.0f, dp, nk)) return false;
    for (int64_t r = 0; r < nq; r++)
        ax_sdpa_prob_row(s + r * nk, ax_sdpa_visible(d, i0 + r, j0, nk), nk, lse[r]);
    if (want_dv && !ax_sdpa_gemm('T', 'N', nk, Ev, nq, 1.0f, s, nk, doi, Ev, 1.0f, w->dv + (b * d->S + j0) * Ev, Ev))
        return false;
    if (!want_ds) return true;
    for (int64_t r = 0; r < nq; r++) ax_sdpa_ds_row(s + r * nk, dp + r * nk, nk, delta[r]);
    if (kv && w->dk &&
        !ax_sdpa_gemm('T', 'N', nk, E, nq, d->scale, s, nk, qi, E, 1.0f, w->dk + (b * d->S + j0) * E, E))
        return false;
    if (dq && w->dq &&
        !ax_sdpa_gemm('N', 'N', nq, E, nk, d->scale, s, nk, kj, E, 1.0f, w->dq + (b * d->L + i0) * E, E))
        return false;
    return true;
}

/* The first query block that sees key j0 (causal: rows i >= j0). */
static int64_t ax_sdpa_first_qblock(const ax_sdpa_dims *d, int64_t j0) {
    return d->causal ? j0 / AX_SDPA_BQ * AX_SDPA_BQ : 0;
}

/* One past the last key query block [i0, i0 + BQ) sees. */
static int64_t ax_sdpa_key_end(const ax_sdpa_dims *d, int64_t i0) {
    int64_t e = i0 + AX_SDPA_BQ;
    return d->causal && e < d->S ? e : d->S;
}

static void ax_sdpa_zero(float *p, int64_t n) {
    if (p) memset(p, 0, (size_t)n * sizeof *p);
}

/* Schedule 1: all of batch entry b (key blocks outer, query blocks inner). */
static bool ax_sdpa_bwd_entry(const ax_sdpa_bwd *w, int64_t b, float *s, float *dp) {
    const ax_sdpa_dims *d = &w->d;
    if (w->dq) ax_sdpa_zero(w->dq + b * d->L * d->E, d->L * d->E);
    if (w->dk) ax_sdpa_zero(w->dk + b * d->S * d->E, d->S * d->E);
    if (w->dv) ax_sdpa_zero(w->dv + b * d->S * d->Ev, d->S * d->Ev);
    for (int64_t j0 = 0; j0 < d->S; j0 += AX_SDPA_BK)
        for (int64_t i0 = ax_sdpa_first_qblock(d, j0); i0 < d->L; i0 += AX_SDPA_BQ)
            if (!ax_sdpa_bwd_tile(w, b, i0, j0, true, true, s, dp)) return false;
    return true;
}

/* Schedule 2, part 1: dk, dv of key block j0 of entry b. */
static bool ax_sdpa_bwd_keys(const ax_sdpa_bwd *w, int64_t b, int64_t j0, float *s, float *dp) {
    const ax_sdpa_dims *d = &w->d;
    const int64_t nk = d->S - j0 < AX_SDPA_BK ? d->S - j0 : AX_SDPA_BK;
    if (w->dk) ax_sdpa_zero(w->dk + (b * d->S + j0) * d->E, nk * d->E);
    if (w->dv) ax_sdpa_zero(w->dv + (b * d->S + j0) * d->Ev, nk * d->Ev);
    for (int64_t i0 = ax_sdpa_first_qblock(d, j0); i0 < d->L; i0 += AX_SDPA_BQ)
        if (!ax_sdpa_bwd_tile(w, b, i0, j0, true, false, s, dp)) return false;
    return true;
}

/* Schedule 2, part 2: dq of query block i0 of entry b. */
static bool ax_sdpa_bwd_queries(const ax_sdpa_bwd *w, int64_t b, int64_t i0, float *s, float *dp) {
    const ax_sdpa_dims *d = &w->d;
    const int64_t nq = d->L - i0 < AX_SDPA_BQ ? d->L - i0 : AX_SDPA_BQ;
    ax_sdpa_zero(w->dq + (b * d->L + i0) * d->E, nq * d->E);
    for (int64_t j0 = 0, kend = ax_sdpa_key_end(d, i0); j0 < kend; j0 += AX_SDPA_BK)
        if (!ax_sdpa_bwd_tile(w, b, i0, j0, false, true, s, dp)) return false;
    return true;
}

/* delta[r] = sum_c dout[r, c] * o[r, c], in double (rows are short). */
static void ax_sdpa_delta(float *delta, const float *dout, const float *o, int64_t rows, int64_t ev) {
#pragma omp parallel for if (rows * ev >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        double acc = 0;
        for (int64_t c = 0; c < ev; c++) acc += (double)dout[r * ev + c] * o[r * ev + c];
        delta[r] = (float)acc;
    }
}

ax_status ax_cpu_sdpa_backward(ax_tensor *dq, ax_tensor *dk, ax_tensor *dv, const ax_tensor *dout, const ax_tensor *q,
                               const ax_tensor *k, const ax_tensor *v, const ax_tensor *o, const ax_tensor *lse,
                               double scale, bool is_causal) {
    const char *fn = "cpu sdpa_backward";
    char s1[128], s2[128];
    ax_sdpa_dims d;
    if (ax_sdpa_dims_of(fn, &d, q, k, v, scale, is_causal) != AX_OK) return ax_error_status();
    bool ok = ax_sdpa_3d(o, d.B, d.L, d.Ev) && ax_sdpa_3d(dout, d.B, d.L, d.Ev) && ax_sdpa_lse_ok(lse, d.B, d.L);
    if (!ok)
        return AX_ERROR(AX_ERR_INVALID, "%s: o %s, do %s: want contiguous f32 [%lld, %lld, %lld] and lse [%lld, %lld]",
                        fn, ax_shape_str(s1, sizeof s1, o->ndim, o->shape),
                        ax_shape_str(s2, sizeof s2, dout->ndim, dout->shape), (long long)d.B, (long long)d.L,
                        (long long)d.Ev, (long long)d.B, (long long)d.L);
    if ((dq && !ax_sdpa_3d(dq, d.B, d.L, d.E)) || (dk && !ax_sdpa_3d(dk, d.B, d.S, d.E)) ||
        (dv && !ax_sdpa_3d(dv, d.B, d.S, d.Ev)))
        return AX_ERROR(AX_ERR_INVALID, "%s: dq, dk and dv must be contiguous f32 of the shapes of q, k and v", fn);
    ax_sdpa_bwd w = {.d = d,
                     .q = ax_tensor_data(q),
                     .k = ax_tensor_data(k),
                     .v = ax_tensor_data(v),
                     .dout = ax_tensor_data(dout),
                     .lse = ax_tensor_data(lse),
                     .dq = dq ? ax_tensor_data(dq) : NULL,
                     .dk = dk ? ax_tensor_data(dk) : NULL,
                     .dv = dv ? ax_tensor_data(dv) : NULL};
    /* empty inputs: the gradients are zeros */
    if (d.B == 0 || d.L == 0 || d.S == 0) {
        ax_sdpa_zero(w.dq, d.B * d.L * d.E);
        ax_sdpa_zero(w.dk, d.B * d.S * d.E);
        ax_sdpa_zero(w.dv, d.B * d.S * d.Ev);
        return AX_OK;
    }
    if (!w.dq && !w.dk && !w.dv) return AX_OK;
    float *delta = malloc((size_t)(d.B * d.L) * sizeof *delta);
    if (!delta) return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory for %lld row sums", fn, (long long)(d.B * d.L));
    ax_sdpa_delta(delta, w.dout, ax_tensor_data(o), d.B * d.L, d.Ev);
    w.delta = delta;

    const size_t scratch = (size_t)(2 * AX_SDPA_BQ * AX_SDPA_BK) * sizeof(float);
    const int64_t nqb = (d.L + AX_SDPA_BQ - 1) / AX_SDPA_BQ, nkb = (d.S + AX_SDPA_BK - 1) / AX_SDPA_BK;
    const int nth = ax_num_threads();
    const bool big = d.B * d.L * d.S * (d.E + d.Ev) >= AX_SDPA_PAR_MIN_MACS;
    /* whole entries per thread when they spread evenly (fewer products);
     * both schedules give the same bits (see the top of the file) */
    const bool per_entry = nth <= 1 || !big || d.B % nth == 0 || d.B >= 4 * (int64_t)nth;
    int failed = 0;
#pragma omp parallel if (big && nth > 1)
    {
        ax_sdpa_one_thread();
        float *s = malloc(scratch), *dp = s ? s + AX_SDPA_BQ * AX_SDPA_BK : NULL;
        if (!s) {
#pragma omp atomic write
            failed = 1;
        }
        if (per_entry) {
#pragma omp for schedule(dynamic, 1)
            for (int64_t b = 0; b < d.B; b++)
                if (s && !ax_sdpa_bwd_entry(&w, b, s, dp)) {
#pragma omp atomic write
                    failed = 2;
                }
        } else {
            if (w.dk || w.dv) {
#pragma omp for schedule(dynamic, 1)
                for (int64_t u = 0; u < d.B * nkb; u++)
                    if (s && !ax_sdpa_bwd_keys(&w, u / nkb, (u % nkb) * AX_SDPA_BK, s, dp)) {
#pragma omp atomic write
                        failed = 2;
                    }
            }
            if (w.dq) {
#pragma omp for schedule(dynamic, 1)
                for (int64_t u = 0; u < d.B * nqb; u++)
                    if (s && !ax_sdpa_bwd_queries(&w, u / nqb, (u % nqb) * AX_SDPA_BQ, s, dp)) {
#pragma omp atomic write
                        failed = 2;
                    }
            }
        }
        free(s);
    }
    free(delta);
    if (failed == 1) return AX_ERROR(AX_ERR_NOMEM, "%s: out of memory for %zu bytes of tile scratch", fn, scratch);
    if (failed == 2) return AX_ERROR(AX_ERR_INTERNAL, "%s: dnnl_sgemm failed (E %lld, Ev %lld)", fn, (long long)d.E, (long long)d.Ev);
    return AX_OK;
}
