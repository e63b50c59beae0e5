/* Batched matrix products through oneDNN's row-major sgemm, and the fused
 * linear layer: one sgemm, then one pass for bias + activation.
 *
 * Determinism: dnnl_sgemm parallelises with OpenMP and, for long K
 * relative to M and N, may split K across threads and add the partial
 * products, so its results can differ in the last bits between thread
 * counts (the documented exception to thread-count independence): with
 * oneDNN 2.6, [64, 100000] x [100000, 64] differs between 1 and 2 threads
 * while 512^3 does not. For a given thread count results are reproducible.
 * The linear layer's own passes are elementwise or sum the bias gradient
 * in fixed row blocks, so they add no thread-count dependence.
 */
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_iter.h"
#include "cpu_kernels.h"

/* Empty operands are never read, so they count as contiguous (as
 * ax_tensor_is_contiguous says). */
static bool ax_matmul_operand_ok(const ax_tensor *t) {
    return t->dtype == AX_DTYPE_F32 && t->ndim == 3 && ax_tensor_is_contiguous(t);
}

/* out = beta * out when the product is empty (K = 0); beta 0 clears NaNs too. */
static void ax_matmul_scale(float *c, int64_t n, float beta) {
    for (int64_t i = 0; i < n; i++) c[i] = beta == 0 ? 0.0f : beta * c[i];
}

ax_status ax_cpu_matmul(ax_tensor *out, const ax_tensor *a, const ax_tensor *b, bool ta, bool tb, float alpha,
                        float beta) {
    char s1[160], s2[160], s3[160];
    bool ok = ax_matmul_operand_ok(out) && ax_matmul_operand_ok(a) && ax_matmul_operand_ok(b);
    int64_t batch = out->shape[0], m = out->shape[1], n = out->shape[2];
    int64_t k = ta ? a->shape[1] : a->shape[2];
    ok = ok && a->shape[0] == batch && b->shape[0] == batch && (ta ? a->shape[2] : a->shape[1]) == m &&
         (tb ? b->shape[2] : b->shape[1]) == k && (tb ? b->shape[1] : b->shape[2]) == n;
    if (!ok)
        return AX_ERROR(AX_ERR_INVALID,
                        "ax_cpu_matmul: a %s %s%s, b %s %s%s, out %s %s: want contiguous f32 [B, M, K] x [B, K, N] "
                        "-> [B, M, N]",
                        ax_dtype_name(a->dtype), ax_shape_str(s1, sizeof s1, a->ndim, a->shape),
                        ta ? " (transposed)" : "", ax_dtype_name(b->dtype),
                        ax_shape_str(s2, sizeof s2, b->ndim, b->shape), tb ? " (transposed)" : "",
                        ax_dtype_name(out->dtype), ax_shape_str(s3, sizeof s3, out->ndim, out->shape));
    if (batch == 0 || m == 0 || n == 0) return AX_OK;
    const float *pa = ax_tensor_data(a), *pb = ax_tensor_data(b);
    float *pc = ax_tensor_data(out);
    if (k == 0) {
        ax_matmul_scale(pc, batch * m * n, beta);
        return AX_OK;
    }
    /* Leading dimensions of the stored (row-major) matrices. */
    int64_t lda = ta ? m : k, ldb = tb ? k : n;
    for (int64_t i = 0; i < batch; i++) {
        dnnl_status_t st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, pa + i * m * k, lda,
                                      pb + i * k * n, ldb, beta, pc + i * m * n, n);
        if (st != dnnl_success)
            return AX_ERROR(AX_ERR_INTERNAL, "ax_cpu_matmul: dnnl_sgemm failed with status %d for M %lld N %lld K %lld",
                            (int)st, (long long)m, (long long)n, (long long)k);
    }
    return AX_OK;
}

/* ---- fused linear layer ------------------------------------------------------ */

/* Rows of the bias-gradient partial sums: a fixed block, not a per-thread
 * share, so db is the same for every thread count. */
#define AX_LINEAR_DB_ROWS 64

/* tanh-GELU as x * sigmoid(2u), u = beta (x + kappa x^3): the same function
 * as 0.5 x (1 + tanh(u)) (PyTorch's formula) without tanhf, whose libm call
 * keeps the loop scalar; exp below is branch-free, so `omp simd` vectorises
 * the epilogue. Within a few f32 ulps of cpu_unary.c's GELU_TANH. */
#define AX_LINEAR_GELU_BETA 0.7978845608028654f /* sqrt(2 / pi) */
#define AX_LINEAR_GELU_KAPPA 0.044715f

/* sigmoid(2u) = (1 + tanh(u)) / 2 */
static inline float ax_linear_gelu_gate(float x) {
    float u = AX_LINEAR_GELU_BETA * (x + AX_LINEAR_GELU_KAPPA * x * x * x);
    return 1.0f / (1.0f + ax_cpu_expf(-2.0f * u));
}

static inline float ax_linear_gelu_tanhf(float x) { return x * ax_linear_gelu_gate(x); }

/* d/dx of x s(x), s = sigmoid(2u): s + 2 x s (1 - s) u'(x) */
static inline float ax_linear_gelu_tanh_gradf(float x) {
    float x2 = x * x, s = ax_linear_gelu_gate(x);
    return s + 2.0f * x * s * (1.0f - s) * AX_LINEAR_GELU_BETA * (1.0f + 3.0f * AX_LINEAR_GELU_KAPPA * x2);
}

static bool ax_linear_2d(const ax_tensor *t, int64_t rows, int64_t cols) {
    return t->dtype == AX_DTYPE_F32 && t->ndim == 2 && t->shape[0] == rows && t->shape[1] == cols &&
           ax_tensor_is_contiguous(t);
}

static bool ax_linear_act_ok(ax_linear_act_op act) {
    return act == AX_LINEAR_ACT_NONE || act == AX_LINEAR_ACT_RELU || act == AX_LINEAR_ACT_GELU_TANH;
}

/* "x f32 [2, 3]" into buf, or "-" for an absent operand. */
static const char *ax_linear_desc(char *buf, size_t size, const char *name, const ax_tensor *t) {
    char sh[128];
    if (!t)
        snprintf(buf, size, "%s -", name);
    else
        snprintf(buf, size, "%s %s %s%s", name, ax_dtype_name(t->dtype), ax_shape_str(sh, sizeof sh, t->ndim, t->shape),
                 ax_tensor_is_contiguous(t) ? "" : " (strided)");
    return buf;
}

/* The elementwise passes are compiled twice, for AVX2 and the baseline,
 * and picked at load time (GCC function multiversioning): 8 lanes instead
 * of SSE2's 4 for the exp polynomial. Called once per row. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#define AX_LINEAR_ROW_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define AX_LINEAR_ROW_CLONES
#endif

/* yr = act(yr + b) and pr = yr + b over one row of n. */
AX_LINEAR_ROW_CLONES
static void ax_linear_epilogue_row(float *yr, float *pr, const float *b, int64_t n, ax_linear_act_op act) {
    if (b) {
#pragma omp simd
        for (int64_t j = 0; j < n; j++) yr[j] += b[j];
    }
    if (pr) memcpy(pr, yr, (size_t)n * sizeof *pr);
    if (act == AX_LINEAR_ACT_RELU) {
#pragma omp simd
        for (int64_t j = 0; j < n; j++) yr[j] = yr[j] <= 0.0f ? 0.0f : yr[j]; /* NaN propagates (torch.relu) */
    } else if (act == AX_LINEAR_ACT_GELU_TANH) {
#pragma omp simd
        for (int64_t j = 0; j < n; j++) yr[j] = ax_linear_gelu_tanhf(yr[j]);
    }
}

/* y[i, :] = act(y[i, :] + b) and pre[i, :] = y[i, :] + b, one pass over y. */
static void ax_linear_epilogue(float *y, float *pre, const float *b, int64_t m, int64_t n, ax_linear_act_op act) {
#pragma omp parallel for if (m * n >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t i = 0; i < m; i++) ax_linear_epilogue_row(y + i * n, pre ? pre + i * n : NULL, b, n, act);
}

ax_status ax_cpu_linear(ax_tensor *y, ax_tensor *pre, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                        ax_linear_act_op act) {
    char s1[160], s2[160], s3[160], s4[160], s5[160];
    int64_t m = y->ndim == 2 ? y->shape[0] : -1, n = y->ndim == 2 ? y->shape[1] : -1;
    int64_t k = x->ndim == 2 ? x->shape[1] : -1;
    bool ok = m >= 0 && k >= 0 && ax_linear_2d(y, m, n) && ax_linear_2d(x, m, k) && ax_linear_2d(w, n, k) &&
              (!pre || ax_linear_2d(pre, m, n)) && (!b || (b->dtype == AX_DTYPE_F32 && b->ndim == 1 &&
                                                        b->shape[0] == n && ax_tensor_is_contiguous(b)));
    if (!ok || !ax_linear_act_ok(act))
        return AX_ERROR(!ok && (x->dtype != AX_DTYPE_F32 || w->dtype != AX_DTYPE_F32) ? AX_ERR_UNSUPPORTED
                                                                                     : AX_ERR_INVALID,
                        "ax_cpu_linear: %s, %s, %s, %s, %s, act %d: want contiguous f32 x [M, K], w [N, K], "
                        "b [N], y and pre [M, N], act NONE/RELU/GELU_TANH",
                        ax_linear_desc(s1, sizeof s1, "x", x), ax_linear_desc(s2, sizeof s2, "w", w),
                        ax_linear_desc(s3, sizeof s3, "b", b), ax_linear_desc(s4, sizeof s4, "y", y),
                        ax_linear_desc(s5, sizeof s5, "pre", pre), (int)act);
    if (m == 0 || n == 0) return AX_OK;
    float *py = ax_tensor_data(y);
    if (k == 0) {
        memset(py, 0, (size_t)(m * n) * sizeof *py);
    } else {
        dnnl_status_t st = dnnl_sgemm('N', 'T', m, n, k, 1.0f, ax_tensor_data(x), k, ax_tensor_data(w), k, 0.0f, py, n);
        if (st != dnnl_success)
            return AX_ERROR(AX_ERR_INTERNAL, "ax_cpu_linear: dnnl_sgemm failed with status %d for M %lld N %lld K %lld",
                            (int)st, (long long)m, (long long)n, (long long)k);
    }
    ax_linear_epilogue(py, pre ? ax_tensor_data(pre) : NULL, b ? ax_tensor_data(b) : NULL, m, n, act);
    return AX_OK;
}

/* dpre[i, :] = dy[i, :] * act'(pre[i, :]) for rows [r0, r1) (dpre may be
 * NULL for NONE: dy is read as is), and acc[:] = the column sums of those
 * rows (acc may be NULL). */
AX_LINEAR_ROW_CLONES
static void ax_linear_dpre_rows(float *dpre, float *acc, const float *dy, const float *pre, int64_t r0, int64_t r1,
                                int64_t n, ax_linear_act_op act) {
    if (acc) memset(acc, 0, (size_t)n * sizeof *acc);
    for (int64_t i = r0; i < r1; i++) {
        const float *g = dy + i * n, *p = pre ? pre + i * n : NULL;
        float *d = dpre ? dpre + i * n : NULL;
        if (act == AX_LINEAR_ACT_RELU) {
#pragma omp simd
            for (int64_t j = 0; j < n; j++) d[j] = p[j] <= 0.0f ? 0.0f : g[j]; /* threshold_backward */
        } else if (act == AX_LINEAR_ACT_GELU_TANH) {
#pragma omp simd
            for (int64_t j = 0; j < n; j++) d[j] = g[j] * ax_linear_gelu_tanh_gradf(p[j]);
        }
        if (acc) {
            const float *src = d ? d : g;
#pragma omp simd
            for (int64_t j = 0; j < n; j++) acc[j] += src[j];
        }
    }
}

/* dpre = dy * act'(pre) (when act != NONE) and db += column sums of dpre,
 * in blocks of AX_LINEAR_DB_ROWS rows summed in block order (in double). */
static ax_status ax_linear_dpre(float *dpre, float *db, const float *dy, const float *pre, int64_t m, int64_t n,
                                ax_linear_act_op act) {
    int64_t nblk = (m + AX_LINEAR_DB_ROWS - 1) / AX_LINEAR_DB_ROWS;
    float *part = NULL;
    if (db) {
        part = malloc((size_t)(nblk * n) * sizeof *part);
        if (!part)
            return AX_ERROR(AX_ERR_NOMEM, "ax_cpu_linear_backward: out of memory for %lld x %lld bias partial sums",
                            (long long)nblk, (long long)n);
    }
    if (db || act != AX_LINEAR_ACT_NONE) {
#pragma omp parallel for if (m * n >= AX_PAR_MIN_ELEMS) schedule(static)
        for (int64_t blk = 0; blk < nblk; blk++) {
            int64_t r0 = blk * AX_LINEAR_DB_ROWS, r1 = r0 + AX_LINEAR_DB_ROWS < m ? r0 + AX_LINEAR_DB_ROWS : m;
            ax_linear_dpre_rows(dpre, part ? part + blk * n : NULL, dy, pre, r0, r1, n, act);
        }
    }
    if (db) {
#pragma omp parallel for if (nblk * n >= AX_PAR_MIN_ELEMS) schedule(static)
        for (int64_t j = 0; j < n; j++) {
            double s = 0;
            for (int64_t blk = 0; blk < nblk; blk++) s += part[blk * n + j];
            db[j] += (float)s;
        }
    }
    free(part);
    return AX_OK;
}

ax_status ax_cpu_linear_backward(ax_tensor *dx, ax_tensor *dw, ax_tensor *db, const ax_tensor *dy, const ax_tensor *x,
                                 const ax_tensor *w, const ax_tensor *pre, ax_linear_act_op act) {
    char s1[160], s2[160], s3[160], s4[160], s5[160], s6[160], s7[160];
    int64_t m = dy->ndim == 2 ? dy->shape[0] : -1, n = dy->ndim == 2 ? dy->shape[1] : -1;
    int64_t k = w->ndim == 2 ? w->shape[1] : -1;
    bool ok = m >= 0 && k >= 0 && ax_linear_2d(dy, m, n) && ax_linear_2d(x, m, k) && ax_linear_2d(w, n, k) &&
              (act == AX_LINEAR_ACT_NONE || (pre && ax_linear_2d(pre, m, n))) && (!dx || ax_linear_2d(dx, m, k)) &&
              (!dw || ax_linear_2d(dw, n, k)) &&
              (!db || (db->dtype == AX_DTYPE_F32 && db->ndim == 1 && db->shape[0] == n && ax_tensor_is_contiguous(db)));
    if (!ok || !ax_linear_act_ok(act))
        return AX_ERROR(!ok && (x->dtype != AX_DTYPE_F32 || w->dtype != AX_DTYPE_F32) ? AX_ERR_UNSUPPORTED
                                                                                     : AX_ERR_INVALID,
                        "ax_cpu_linear_backward: %s, %s, %s, %s, %s, %s, %s, act %d: want contiguous f32 dy and pre "
                        "[M, N], x and dx [M, K], w and dw [N, K], db [N] (pre needed unless act is NONE)",
                        ax_linear_desc(s1, sizeof s1, "dy", dy), ax_linear_desc(s2, sizeof s2, "x", x),
                        ax_linear_desc(s3, sizeof s3, "w", w), ax_linear_desc(s4, sizeof s4, "pre", pre),
                        ax_linear_desc(s5, sizeof s5, "dx", dx), ax_linear_desc(s6, sizeof s6, "dw", dw),
                        ax_linear_desc(s7, sizeof s7, "db", db), (int)act);
    if (dx && m > 0 && k > 0 && n == 0) memset(ax_tensor_data(dx), 0, (size_t)(m * k) * sizeof(float));
    if (m == 0 || n == 0) return AX_OK;
    bool gemms = k > 0 && (dx || dw);
    const float *pdy = ax_tensor_data(dy);
    float *dpre = NULL;
    if (act != AX_LINEAR_ACT_NONE && (gemms || db)) {
        dpre = ax_cpu_kernels()->alloc((size_t)(m * n) * sizeof *dpre, 0);
        if (!dpre) return ax_error_status();
    }
    ax_status st = ax_linear_dpre(dpre, db ? ax_tensor_data(db) : NULL, pdy, pre ? ax_tensor_data(pre) : NULL, m, n, act);
    const float *g = dpre ? dpre : pdy;
    dnnl_status_t ds = dnnl_success;
    if (st == AX_OK && gemms && dx)
        ds = dnnl_sgemm('N', 'N', m, k, n, 1.0f, g, n, ax_tensor_data(w), k, 0.0f, ax_tensor_data(dx), k);
    if (st == AX_OK && gemms && dw && ds == dnnl_success)
        ds = dnnl_sgemm('T', 'N', n, k, m, 1.0f, g, n, ax_tensor_data(x), k, 1.0f, ax_tensor_data(dw), k);
    if (dpre) ax_cpu_kernels()->release(dpre, (size_t)(m * n) * sizeof *dpre, 0);
    if (st == AX_OK && ds != dnnl_success)
        st = AX_ERROR(AX_ERR_INTERNAL, "ax_cpu_linear_backward: dnnl_sgemm failed with status %d for M %lld N %lld K %lld",
                      (int)ds, (long long)m, (long long)n, (long long)k);
    return st;
}
