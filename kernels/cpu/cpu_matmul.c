/* Batched matrix products through oneDNN's row-major sgemm.
 *
 * Determinism: dnnl_sgemm parallelises with OpenMP and, for long K
 * relative to M and N, may split K across threads and add the partial
 * products, so its results can differ in the last bits between thread
 * counts (the documented exception to thread-count independence): with
 * oneDNN 2.6, [64, 100000] x [100000, 64] differs between 1 and 2 threads
 * while 512^3 does not. For a given thread count results are reproducible.
 */
#include <dnnl.h>

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
