/* The CUDA backend's custom kernels: copy, fill, elementwise, reductions,
 * softmax, group norm, pooling, resampling, padding and indexing.
 *
 * One translation unit on purpose (nvcc is slow; one file compiles once per
 * architecture). Per-element math comes from cuda_math.h, which the CPU-side
 * test checks against the CPU backend. Kernels take operands as a small
 * by-value iterator (shape + per-operand strides, broadcast dims stride 0,
 * neighbouring dims merged), so every layout the table allows works; the
 * all-contiguous case skips the index arithmetic.
 *
 * Nothing here waits for the device: work is queued on the device's stream
 * and launch errors are reported from cudaGetLastError(). Sums accumulate
 * in double (the CPU reference does too); results agree with the CPU to
 * rounding, not bit for bit.
 */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cuda_internal.h"
#include "cuda_math.h"

#define AX_CU_THREADS 256
#define AX_CU_MAX_OPS 4

/* ---- operands ---------------------------------------------------------------------------- */

struct ax_cu_iter {
    int ndim, nops;
    bool contig; /* every operand walks memory with stride 1 */
    int64_t n;
    int64_t shape[AX_MAX_DIMS];
    int64_t stride[AX_CU_MAX_OPS][AX_MAX_DIMS];
    char *base[AX_CU_MAX_OPS];
    int dtype[AX_CU_MAX_OPS];
};

static char *ax_cu_base(const ax_tensor *t) {
    return (char *)t->storage->data + (size_t)t->offset * ax_dtype_size(t->dtype);
}

/* Iterate over `shape` (ndim dims); operand k is ts[k], right-aligned and
 * broadcast (size-1 or missing dims get stride 0). */
static void ax_cu_iter_shape(ax_cu_iter *it, int ndim, const int64_t *shape, int nops, const ax_tensor *const *ts) {
    memset(it, 0, sizeof *it);
    it->nops = nops;
    it->n = 1;
    for (int d = 0; d < ndim; d++) it->n *= shape[d];
    int64_t sh[AX_MAX_DIMS], st[AX_CU_MAX_OPS][AX_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 1) continue; /* size-1 dims carry no offset */
        sh[nd] = shape[d];
        for (int k = 0; k < nops; k++) {
            const ax_tensor *t = ts[k];
            int td = d - (ndim - t->ndim);
            st[k][nd] = td >= 0 && t->shape[td] != 1 ? t->stride[td] : 0;
        }
        nd++;
    }
    /* merge dim d into d+1 when every operand steps through both as one */
    int m = 0;
    for (int d = 0; d < nd; d++) {
        if (m > 0) {
            bool ok = true;
            for (int k = 0; k < nops && ok; k++) ok = st[k][m - 1] == st[k][d] * sh[d];
            if (ok) {
                it->shape[m - 1] *= sh[d];
                for (int k = 0; k < nops; k++) it->stride[k][m - 1] = st[k][d];
                continue;
            }
        }
        it->shape[m] = sh[d];
        for (int k = 0; k < nops; k++) it->stride[k][m] = st[k][d];
        m++;
    }
    it->ndim = m;
    it->contig = true;
    for (int k = 0; k < nops; k++) {
        it->base[k] = ax_cu_base(ts[k]);
        it->dtype[k] = (int)ts[k]->dtype;
        if (m > 1 || (m == 1 && it->stride[k][0] != 1)) it->contig = false;
    }
}

static void ax_cu_iter_init(ax_cu_iter *it, int nops, const ax_tensor *const *ts) {
    ax_cu_iter_shape(it, ts[0]->ndim, ts[0]->shape, nops, ts);
}

__device__ __forceinline__ void ax_cu_offsets(const ax_cu_iter &it, int64_t i, int64_t *off) {
    for (int k = 0; k < AX_CU_MAX_OPS; k++) off[k] = 0;
    if (it.contig) {
        for (int k = 0; k < AX_CU_MAX_OPS; k++) off[k] = i;
        return;
    }
    for (int d = it.ndim - 1; d >= 0; d--) {
        int64_t n = it.shape[d], q = i % n;
        i /= n;
        for (int k = 0; k < it.nops; k++) off[k] += q * it.stride[k][d];
    }
}

/* ---- element loads and stores --------------------------------------------------------------- */

__device__ __forceinline__ float ax_cu_ldf(const char *p, int dt, int64_t o) {
    switch (dt) {
    case AX_DTYPE_F32: return ((const float *)p)[o];
    case AX_DTYPE_BF16: return ax_bf16_to_f32(((const uint16_t *)p)[o]);
    case AX_DTYPE_F16: return ax_f16_to_f32(((const uint16_t *)p)[o]);
    case AX_DTYPE_I32: return (float)((const int32_t *)p)[o];
    case AX_DTYPE_I64: return (float)((const int64_t *)p)[o];
    case AX_DTYPE_U8: return (float)((const uint8_t *)p)[o];
    }
    return 0;
}

__device__ __forceinline__ void ax_cu_stf(char *p, int dt, int64_t o, float v) {
    switch (dt) {
    case AX_DTYPE_F32: ((float *)p)[o] = v; return;
    case AX_DTYPE_BF16: ((uint16_t *)p)[o] = ax_f32_to_bf16(v); return;
    case AX_DTYPE_F16: ((uint16_t *)p)[o] = ax_f32_to_f16(v); return;
    case AX_DTYPE_U8: ((uint8_t *)p)[o] = (uint8_t)v; return; /* comparisons: 0 / 1 */
    default: return;
    }
}

/* As ax_load_elem / ax_store_elem (saturating float -> int). */
__device__ __forceinline__ double ax_cu_ldd(const char *p, int dt, int64_t o) {
    switch (dt) {
    case AX_DTYPE_I32: return ((const int32_t *)p)[o];
    case AX_DTYPE_I64: return (double)((const int64_t *)p)[o];
    case AX_DTYPE_U8: return ((const uint8_t *)p)[o];
    default: return ax_cu_ldf(p, dt, o);
    }
}

__device__ __forceinline__ void ax_cu_std(char *p, int dt, int64_t o, double v) {
    switch (dt) {
    case AX_DTYPE_I32: ((int32_t *)p)[o] = (int32_t)ax_cm_sat_double(v, INT32_MIN, INT32_MAX); return;
    case AX_DTYPE_I64: ((int64_t *)p)[o] = ax_cm_sat_double(v, INT64_MIN, INT64_MAX); return;
    case AX_DTYPE_U8: ((uint8_t *)p)[o] = (uint8_t)ax_cm_sat_double(v, 0, 255); return;
    default: ax_cu_stf(p, dt, o, (float)v); return;
    }
}

__device__ __forceinline__ int64_t ax_cu_ldi(const char *p, int dt, int64_t o) {
    switch (dt) {
    case AX_DTYPE_I32: return ((const int32_t *)p)[o];
    case AX_DTYPE_I64: return ((const int64_t *)p)[o];
    case AX_DTYPE_U8: return ((const uint8_t *)p)[o];
    default: return 0;
    }
}

/* v already in the dtype's range, or wrapping on purpose (binary ops). */
__device__ __forceinline__ void ax_cu_sti(char *p, int dt, int64_t o, int64_t v) {
    switch (dt) {
    case AX_DTYPE_I32: ((int32_t *)p)[o] = (int32_t)(uint32_t)(uint64_t)v; return;
    case AX_DTYPE_I64: ((int64_t *)p)[o] = v; return;
    case AX_DTYPE_U8: ((uint8_t *)p)[o] = (uint8_t)(uint64_t)v; return;
    default: return;
    }
}

__device__ __forceinline__ void ax_cu_copy_bytes(char *d, const char *s, int es) {
    switch (es) {
    case 1: *(uint8_t *)d = *(const uint8_t *)s; return;
    case 2: *(uint16_t *)d = *(const uint16_t *)s; return;
    case 4: *(uint32_t *)d = *(const uint32_t *)s; return;
    default: *(uint64_t *)d = *(const uint64_t *)s; return;
    }
}

__device__ __forceinline__ int ax_cu_es(int dt) {
    return dt == AX_DTYPE_I64 ? 8 : dt == AX_DTYPE_F32 || dt == AX_DTYPE_I32 ? 4 : dt == AX_DTYPE_U8 ? 1 : 2;
}

#define AX_CU_LOOP(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)blockDim.x * gridDim.x)

static unsigned ax_cu_blocks(int64_t n) {
    int64_t b = (n + AX_CU_THREADS - 1) / AX_CU_THREADS;
    if (b < 1) b = 1;
    return (unsigned)(b > (1 << 20) ? (1 << 20) : b);
}

/* Current device = t's, its stream in *s. */
static ax_status ax_cu_begin(const ax_tensor *t, cudaStream_t *s) {
    *s = ax_cuda_stream(t->storage->device.index);
    return *s ? AX_OK : ax_error_status();
}

static ax_status ax_cu_launched(const char *what) { return ax_cuda_check(cudaGetLastError(), what); }

static ax_status ax_cu_bad_dtype(const char *fn, ax_dtype dt) {
    return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: dtype %s not supported on CUDA", fn, ax_dtype_name(dt));
}

static bool ax_cu_is_float(ax_dtype dt) { return dt == AX_DTYPE_F32 || dt == AX_DTYPE_BF16 || dt == AX_DTYPE_F16; }
static bool ax_cu_is_int(ax_dtype dt) { return dt == AX_DTYPE_I32 || dt == AX_DTYPE_I64 || dt == AX_DTYPE_U8; }

static bool ax_cu_broadcasts(const ax_tensor *t, int ndim, const int64_t *shape) {
    if (t->ndim > ndim) return false;
    for (int d = 0; d < t->ndim; d++) {
        int64_t a = t->shape[d], b = shape[ndim - t->ndim + d];
        if (a != b && a != 1) return false;
    }
    return true;
}

/* ---- copy and fill ------------------------------------------------------------------------------ */

__global__ void ax_cu_copy_kernel(ax_cu_iter it) {
    int es0 = ax_cu_es(it.dtype[0]);
    bool same = it.dtype[0] == it.dtype[1];
    AX_CU_LOOP(i, it.n) {
        int64_t off[AX_CU_MAX_OPS];
        ax_cu_offsets(it, i, off);
        if (same)
            ax_cu_copy_bytes(it.base[0] + off[0] * es0, it.base[1] + off[1] * es0, es0);
        else
            ax_cu_std(it.base[0], it.dtype[0], off[0], ax_cu_ldd(it.base[1], it.dtype[1], off[1]));
    }
}

ax_status ax_cuda_copy(ax_tensor *dst, const ax_tensor *src) {
    cudaStream_t s;
    if (!ax_dtype_size(dst->dtype) || !ax_dtype_size(src->dtype)) return ax_cu_bad_dtype("ax_cuda_copy", dst->dtype);
    if (!ax_cu_broadcasts(src, dst->ndim, dst->shape))
        return AX_ERROR(AX_ERR_INVALID, "ax_cuda_copy: src does not broadcast to dst");
    if (ax_tensor_numel(dst) == 0) return AX_OK;
    if (ax_cu_begin(dst, &s) != AX_OK) return ax_error_status();
    ax_cu_iter it;
    const ax_tensor *ts[] = {dst, src};
    ax_cu_iter_init(&it, 2, ts);
    if (it.contig && dst->dtype == src->dtype) {
        cudaError_t e = cudaMemcpyAsync(it.base[0], it.base[1], (size_t)it.n * ax_dtype_size(dst->dtype),
                                        cudaMemcpyDeviceToDevice, s);
        return ax_cuda_check(e, "ax_cuda_copy");
    }
    ax_cu_copy_kernel<<<ax_cu_blocks(it.n), AX_CU_THREADS, 0, s>>>(it);
    return ax_cu_launched("ax_cuda_copy");
}

__global__ void ax_cu_fill_kernel(ax_cu_iter it, uint64_t bits) {
    int es = ax_cu_es(it.dtype[0]);
    AX_CU_LOOP(i, it.n) {
        int64_t off[AX_CU_MAX_OPS];
        ax_cu_offsets(it, i, off);
        ax_cu_copy_bytes(it.base[0] + off[0] * es, (const char *)&bits, es);
    }
}

/* The bytes of `value` stored as dtype (ax_store_elem's rules). */
static uint64_t ax_cu_elem_bits(ax_dtype dt, double v) {
    uint64_t bits = 0;
    switch (dt) {
    case AX_DTYPE_F32: {
        float f = (float)v;
        memcpy(&bits, &f, 4);
        break;
    }
    case AX_DTYPE_BF16: bits = ax_f32_to_bf16((float)v); break;
    case AX_DTYPE_F16: bits = ax_f32_to_f16((float)v); break;
    case AX_DTYPE_I32: {
        int32_t x = (int32_t)ax_cm_sat_double(v, INT32_MIN, INT32_MAX);
        memcpy(&bits, &x, 4);
        break;
    }
    case AX_DTYPE_I64: {
        int64_t x = ax_cm_sat_double(v, INT64_MIN, INT64_MAX);
        memcpy(&bits, &x, 8);
        break;
    }
    case AX_DTYPE_U8: bits = (uint8_t)ax_cm_sat_double(v, 0, 255); break;
    }
    return bits;
}

ax_status ax_cuda_fill(ax_tensor *dst, double value) {
    cudaStream_t s;
    if (!ax_dtype_size(dst->dtype)) return ax_cu_bad_dtype("ax_cuda_fill", dst->dtype);
    if (ax_tensor_numel(dst) == 0) return AX_OK;
    if (ax_cu_begin(dst, &s) != AX_OK) return ax_error_status();
    ax_cu_iter it;
    ax_cu_iter_init(&it, 1, &dst);
    uint64_t bits = ax_cu_elem_bits(dst->dtype, value);
    if (it.contig && bits == 0)
        return ax_cuda_check(cudaMemsetAsync(it.base[0], 0, (size_t)it.n * ax_dtype_size(dst->dtype), s), "ax_cuda_fill");
    ax_cu_fill_kernel<<<ax_cu_blocks(it.n), AX_CU_THREADS, 0, s>>>(it, bits);
    return ax_cu_launched("ax_cuda_fill");
}

/* ---- unary ------------------------------------------------------------------------------------------ */

__global__ void ax_cu_unary_f_kernel(ax_cu_iter it, ax_unary_op op, float p0, float p1) {
    AX_CU_LOOP(i, it.n) {
        int64_t off[AX_CU_MAX_OPS];
        ax_cu_offsets(it, i, off);
        float x = ax_cu_ldf(it.base[1], it.dtype[1], off[1]);
        ax_cu_stf(it.base[0], it.dtype[0], off[0], ax_cm_unary(op, x, p0, p1));
    }
}

__global__ void ax_cu_unary_i_kernel(ax_cu_iter it, ax_unary_op op, double p0, double p1, int64_t lo, int64_t hi) {
    AX_CU_LOOP(i, it.n) {
        int64_t off[AX_CU_MAX_OPS];
        ax_cu_offsets(it, i, off);
        int64_t v = ax_cu_ldi(it.base[1], it.dtype[1], off[1]);
        ax_cu_sti(it.base[0], it.dtype[0], off[0], ax_cm_unary_i64(op, v, p0, p1, lo, hi));
    }
}

static bool ax_cu_unary_needs_params(ax_unary_op op) {
    return op == AX_UNARY_LEAKY_RELU || op == AX_UNARY_SOFTPLUS || op == AX_UNARY_CLAMP || op == AX_UNARY_POW ||
           op == AX_UNARY_AFFINE;
}

static ax_status ax_cu_unary_check(const char *fn, ax_unary_op op, const ax_tensor *a, const ax_tensor *b,
                                   const double *p) {
    if (op < AX_UNARY_NEG || op > AX_UNARY_RECIPROCAL) return AX_ERROR(AX_ERR_INVALID, "%s: unknown unary op %d", fn, (int)op);
    if (!ax_tensor_same_shape(a, b) || a->dtype != b->dtype)
        return AX_ERROR(AX_ERR_INVALID, "%s: operands differ in shape or dtype (%s vs %s)", fn, ax_dtype_name(a->dtype),
                        ax_dtype_name(b->dtype));
    if (!p && ax_cu_unary_needs_params(op)) return AX_ERROR(AX_ERR_INVALID, "%s: unary op %d needs parameters p", fn, (int)op);
    return AX_OK;
}

ax_status ax_cuda_unary(ax_unary_op op, ax_tensor *y, const ax_tensor *x, const double *p) {
    const char *fn = "ax_cuda_unary";
    cudaStream_t s;
    if (ax_cu_unary_check(fn, op, y, x, p) != AX_OK) return ax_error_status();
    bool fl = ax_cu_is_float(x->dtype);
    if (!fl && !(ax_cu_is_int(x->dtype) && ax_cm_unary_int_op(op)))
        return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: op %d on %s not supported on CUDA", fn, (int)op, ax_dtype_name(x->dtype));
    double p0 = p ? p[0] : 0, p1 = p ? p[1] : 0;
    if (op == AX_UNARY_CLAMP && (isnan(p0) || isnan(p1))) {
        if (fl) return ax_cuda_fill(y, NAN); /* torch.clamp with a NaN bound */
        return AX_ERROR(AX_ERR_INVALID, "%s: clamp with a NaN bound on %s", fn, ax_dtype_name(x->dtype));
    }
    if (ax_tensor_numel(y) == 0) return AX_OK;
    if (ax_cu_begin(y, &s) != AX_OK) return ax_error_status();
    ax_cu_iter it;
    const ax_tensor *ts[] = {y, x};
    ax_cu_iter_init(&it, 2, ts);
    if (fl) {
        ax_cu_unary_f_kernel<<<ax_cu_blocks(it.n), AX_CU_THREADS, 0, s>>>(it, op, (float)p0, (float)p1);
    } else {
        int64_t lo, hi;
        ax_cm_int_range(x->dtype, &lo, &hi);
        ax_cu_unary_i_kernel<<<ax_cu_blocks(it.n), AX_CU_THREADS, 0, s>>>(it, op, p0, p1, lo, hi);
    }
    return ax_cu_launched(fn);
}

__global__ void ax_cu_unary_bw_kernel(ax_cu_iter it, ax_unary_op op, float p0, float p1, bool has_y) {
    AX_CU_LOOP(i, it.n) {
        int64_t off[AX_CU_MAX_OPS];
        ax_cu_offsets(it, i, off);
        float dy = ax_cu_ldf(it.base[1], it.dtype[1], off[1]);
        float x = ax_cu_ldf(it.base[2], it.dtype[2], off[2]);
        float y = 0;
        if (ax_cm_unary_backward_uses_y(op))
            y = has_y ? ax_cu_ldf(it.base[3], it.dtype[3], off[3]) : ax_cm_unary(op, x, p0, p1);
        ax_cu_stf(it.base[0], it.dtype[0], off[0], ax_cm_unary_backward(op, dy, x, y, p0, p1));
    }
}

ax_status ax_cuda_unary_backward(ax_unary_op op, ax_tensor *dx, const ax_tensor *dy, const ax_tensor *x,
                                 const ax_tensor *y, const double *p) {
    const char *fn = "ax_cuda_unary_backward";
    cudaStream_t s;
    if (ax_cu_unary_check(fn, op, dx, dy, p) != AX_OK || ax_cu_unary_check(fn, op, dx, x, p) != AX_OK ||
        (y && ax_cu_unary_check(fn, op, dx, y, p) != AX_OK))
        return ax_error_status();
    if (!ax_cu_is_float(x->dtype)) return ax_cu_bad_dtype(fn, x->dtype);
    if (ax_tensor_numel(dx) == 0) return AX_OK;
    if (ax_cu_begin(dx, &s) != AX_OK) return ax_error_status();
    ax_cu_iter it;
    const ax_tensor *ts[] = {dx, dy, x, y ? y : x};
    ax_cu_iter_init(&it, 4, ts);
    ax_cu_unary_bw_kernel<<<ax_cu_blocks(it.n), AX_CU_THREADS, 0, s>>>(it, op, p ? (float)p[0] : 0.0f,
                                                                       p ? (float)p[1] : 0.0f, y != NULL);
    return ax_cu_launched(fn);
}

/* ---- binary and where -------------------------------------------------------------------------------- */

__global__ void ax_cu_binary_f_kernel(ax_cu_iter it, ax_binary_op op) {
    AX_CU_LOOP(i, it.n) {
        int64_t off[AX_CU_MAX_OPS];
        ax_cu_offsets(it, i, off);
        float a = ax_cu_ldf(it.base[1], it.dtype[1], off[1]), b = ax_cu_ldf(it.base[2], it.dtype[2], off[2]);
        ax_cu_stf(it.base[0], it.dtype[0], off[0], ax_cm_binary(op, a, b));
    }
}

__global__ void ax_cu_binary_i_kernel(ax_cu_iter it, ax_binary_op op) {
    AX_CU_LOOP(i, it.n) {
        int64_t off[AX_CU_MAX_OPS];
        ax_cu_offsets(it, i, off);
        int64_t a = ax_cu_ldi(it.base[1], it.dtype[1], off[1]), b = ax_cu_ldi(it.base[2], it.dtype[2], off[2]);
        ax_cu_sti(it.base[0], it.dtype[0], off[0], ax_cm_binary_i64(op, a, b));
    }
}

ax_status ax_cuda_binary(ax_binary_op op, ax_tensor *out, const ax_tensor *a, const ax_tensor *b) {
    const char *fn = "ax_cuda_binary";
    cudaStream_t s;
    if (op < AX_BINARY_ADD || op > AX_BINARY_GE) return AX_ERROR(AX_ERR_INVALID, "%s: unknown binary op %d", fn, (int)op);
    if (!ax_cu_broadcasts(a, out->ndim, out->shape) || !ax_cu_broadcasts(b, out->ndim, out->shape))
        return AX_ERROR(AX_ERR_INVALID, "%s: a and b do not broadcast to out", fn);
    ax_dtype want = ax_cm_binary_is_compare(op) ? AX_DTYPE_U8 : a->dtype;
    if (a->dtype != b->dtype || out->dtype != want)
        return AX_ERROR(AX_ERR_INVALID, "%s: op %d on a %s, b %s into out %s (want out %s)", fn, (int)op,
                        ax_dtype_name(a->dtype), ax_dtype_name(b->dtype), ax_dtype_name(out->dtype), ax_dtype_name(want));
    bool fl = ax_cu_is_float(a->dtype);
    if (!fl && !(ax_cu_is_int(a->dtype) && op != AX_BINARY_DIV && op != AX_BINARY_POW))
        return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: op %d on %s not supported on CUDA", fn, (int)op, ax_dtype_name(a->dtype));
    if (ax_tensor_numel(out) == 0) return AX_OK;
    if (ax_cu_begin(out, &s) != AX_OK) return ax_error_status();
    ax_cu_iter it;
    const ax_tensor *ts[] = {out, a, b};
    ax_cu_iter_init(&it, 3, ts);
    if (fl)
        ax_cu_binary_f_kernel<<<ax_cu_blocks(it.n), AX_CU_THREADS, 0, s>>>(it, op);
    else
        ax_cu_binary_i_kernel<<<ax_cu_blocks(it.n), AX_CU_THREADS, 0, s>>>(it, op);
    return ax_cu_launched(fn);
}

__global__ void ax_cu_where_kernel(ax_cu_iter it) {
    int es = ax_cu_es(it.dtype[0]);
    AX_CU_LOOP(i, it.n) {
        int64_t off[AX_CU_MAX_OPS];
        ax_cu_offsets(it, i, off);
        bool c = ((const uint8_t *)it.base[1])[off[1]] != 0;
        ax_cu_copy_bytes(it.base[0] + off[0] * es, c ? it.base[2] + off[2] * es : it.base[3] + off[3] * es, es);
    }
}

ax_status ax_cuda_where(ax_tensor *out, const ax_tensor *cond, const ax_tensor *a, const ax_tensor *b) {
    const char *fn = "ax_cuda_where";
    cudaStream_t s;
    if (!ax_cu_broadcasts(cond, out->ndim, out->shape) || !ax_cu_broadcasts(a, out->ndim, out->shape) ||
        !ax_cu_broadcasts(b, out->ndim, out->shape))
        return AX_ERROR(AX_ERR_INVALID, "%s: cond, a and b do not broadcast to out", fn);
    if (cond->dtype != AX_DTYPE_U8 || a->dtype != out->dtype || b->dtype != out->dtype)
        return AX_ERROR(AX_ERR_INVALID, "%s: cond %s (want u8), a %s and b %s into out %s", fn, ax_dtype_name(cond->dtype),
                        ax_dtype_name(a->dtype), ax_dtype_name(b->dtype), ax_dtype_name(out->dtype));
    if (!ax_dtype_size(out->dtype)) return ax_cu_bad_dtype(fn, out->dtype);
    if (ax_tensor_numel(out) == 0) return AX_OK;
    if (ax_cu_begin(out, &s) != AX_OK) return ax_error_status();
    ax_cu_iter it;
    const ax_tensor *ts[] = {out, cond, a, b};
    ax_cu_iter_init(&it, 4, ts);
    ax_cu_where_kernel<<<ax_cu_blocks(it.n), AX_CU_THREADS, 0, s>>>(it);
    return ax_cu_launched(fn);
}

/* ---- reductions ------------------------------------------------------------------------------------------ */

/* The reduced sub-space of x in C order (size-1 dims dropped): what the
 * argmax index counts. */
struct ax_cu_rspace {
    int n;
    int64_t size;
    int64_t shape[AX_MAX_DIMS], stride[AX_MAX_DIMS];
};

__device__ __forceinline__ int64_t ax_cu_roff(const ax_cu_rspace &rs, int64_t r) {
    int64_t off = 0;
    for (int d = rs.n - 1; d >= 0; d--) {
        int64_t q = r % rs.shape[d];
        r /= rs.shape[d];
        off += q * rs.stride[d];
    }
    return off;
}

struct ax_cu_arg {
    float v;
    int64_t i;
};

/* a (any subset) and b (any other subset), each the first extremum of its
 * subset: the first extremum of both. */
__device__ __forceinline__ ax_cu_arg ax_cu_arg_merge(bool max, ax_cu_arg a, ax_cu_arg b) {
    if (b.i < 0) return a;
    if (a.i < 0) return b;
    bool an = a.v != a.v, bn = b.v != b.v;
    if (an || bn) return an && (!bn || a.i < b.i) ? a : b;
    if (a.v == b.v) return a.i < b.i ? a : b;
    return (max ? b.v > a.v : b.v < a.v) ? b : a;
}

/* One block per output (grid-strided): out iter ops {out, x (kept dims), idx}. */
__global__ void ax_cu_reduce_kernel(ax_cu_iter it, ax_cu_rspace rs, ax_reduce_op op, bool has_idx) {
    __shared__ double ssum[AX_CU_THREADS];
    __shared__ float sv[AX_CU_THREADS];
    __shared__ int64_t si[AX_CU_THREADS];
    bool max = op == AX_REDUCE_MAX;
    for (int64_t o = blockIdx.x; o < it.n; o += gridDim.x) {
        int64_t off[AX_CU_MAX_OPS];
        ax_cu_offsets(it, o, off);
        const float *x = (const float *)it.base[1] + off[1];
        if (op == AX_REDUCE_SUM) {
            double acc = 0;
            for (int64_t r = threadIdx.x; r < rs.size; r += blockDim.x) acc += x[ax_cu_roff(rs, r)];
            ssum[threadIdx.x] = acc;
            __syncthreads();
            for (int w = blockDim.x / 2; w > 0; w >>= 1) {
                if ((int)threadIdx.x < w) ssum[threadIdx.x] += ssum[threadIdx.x + w];
                __syncthreads();
            }
            if (threadIdx.x == 0) ((float *)it.base[0])[off[0]] = (float)ssum[0];
        } else {
            ax_cu_arg best = {0, -1};
            for (int64_t r = threadIdx.x; r < rs.size; r += blockDim.x) {
                float v = x[ax_cu_roff(rs, r)];
                if (best.i < 0 || ax_cm_arg_better(max, v, best.v)) best = ax_cu_arg{v, r};
            }
            sv[threadIdx.x] = best.v;
            si[threadIdx.x] = best.i;
            __syncthreads();
            for (int w = blockDim.x / 2; w > 0; w >>= 1) {
                if ((int)threadIdx.x < w) {
                    ax_cu_arg m = ax_cu_arg_merge(max, ax_cu_arg{sv[threadIdx.x], si[threadIdx.x]},
                                                  ax_cu_arg{sv[threadIdx.x + w], si[threadIdx.x + w]});
                    sv[threadIdx.x] = m.v;
                    si[threadIdx.x] = m.i;
                }
                __syncthreads();
            }
            if (threadIdx.x == 0) {
                ((float *)it.base[0])[off[0]] = sv[0];
                if (has_idx) ((int64_t *)it.base[2])[off[2]] = si[0];
            }
        }
        __syncthreads();
    }
}

#define AX_REDUCE_SPLIT 65536

/* Partial sum of chunk blockIdx.x of output blockIdx.y. */
__global__ void ax_cu_sum_part_kernel(ax_cu_iter it, ax_cu_rspace rs, int64_t chunks, double *part) {
    __shared__ double sh[AX_CU_THREADS];
    int64_t o = blockIdx.y, j = blockIdx.x;
    int64_t off[AX_CU_MAX_OPS];
    ax_cu_offsets(it, o, off);
    const float *x = (const float *)it.base[1] + off[1];
    int64_t a = j * AX_REDUCE_SPLIT, b = ax_cm_min64(a + AX_REDUCE_SPLIT, rs.size);
    double acc = 0;
    if (rs.n == 1)
        for (int64_t r = a + threadIdx.x; r < b; r += blockDim.x) acc += x[r * rs.stride[0]];
    else
        for (int64_t r = a + threadIdx.x; r < b; r += blockDim.x) acc += x[ax_cu_roff(rs, r)];
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[o * chunks + j] = sh[0];
}

__global__ void ax_cu_sum_total_kernel(ax_cu_iter it, int64_t chunks, const double *part) {
    AX_CU_LOOP(o, it.n) {
        int64_t off[AX_CU_MAX_OPS];
        ax_cu_offsets(it, o, off);
        double acc = 0;
        for (int64_t j = 0; j < chunks; j++) acc += part[o * chunks + j];
        ((float *)it.base[0])[off[0]] = (float)acc;
    }
}

/* One thread per output, for short reductions. */
__global__ void ax_cu_reduce_small_kernel(ax_cu_iter it, ax_cu_rspace rs, ax_reduce_op op, bool has_idx) {
    bool max = op == AX_REDUCE_MAX;
    AX_CU_LOOP(o, it.n) {
        int64_t off[AX_CU_MAX_OPS];
        ax_cu_offsets(it, o, off);
        const float *x = (const float *)it.base[1] + off[1];
        if (op == AX_REDUCE_SUM) {
            double acc = 0;
            for (int64_t r = 0; r < rs.size; r++) acc += x[ax_cu_roff(rs, r)];
            ((float *)it.base[0])[off[0]] = (float)acc;
        } else {
            float best = x[0];
            int64_t bi = 0;
            for (int64_t r = 1; r < rs.size && best == best; r++) {
                float v = x[ax_cu_roff(rs, r)];
                if (ax_cm_arg_better(max, v, best)) best = v, bi = r;
            }
            ((float *)it.base[0])[off[0]] = best;
            if (has_idx) ((int64_t *)it.base[2])[off[2]] = bi;
        }
    }
}

ax_status ax_cuda_reduce(ax_reduce_op op, ax_tensor *out, ax_tensor *idx, const ax_tensor *x, uint32_t dims) {
    const char *fn = "ax_cuda_reduce";
    cudaStream_t s;
    if (op < AX_REDUCE_SUM || op > AX_REDUCE_MIN) return AX_ERROR(AX_ERR_INVALID, "%s: unknown reduce op %d", fn, (int)op);
    if (x->dtype != AX_DTYPE_F32 || out->dtype != AX_DTYPE_F32)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: x %s into out %s not supported on CUDA (f32 only)", fn,
                        ax_dtype_name(x->dtype), ax_dtype_name(out->dtype));
    bool ok = out->ndim == x->ndim && (x->ndim >= 32 || (dims >> x->ndim) == 0);
    for (int d = 0; ok && d < x->ndim; d++) ok = out->shape[d] == (dims >> d & 1 ? 1 : x->shape[d]);
    if (ok && idx) ok = idx->dtype == AX_DTYPE_I64 && ax_tensor_same_shape(idx, out);
    if (!ok) return AX_ERROR(AX_ERR_INVALID, "%s: x reduced over dims mask 0x%x cannot give out (or idx)", fn, (unsigned)dims);
    ax_cu_rspace rs;
    memset(&rs, 0, sizeof rs);
    rs.size = 1;
    for (int d = 0; d < x->ndim; d++) {
        if (!(dims >> d & 1)) continue;
        rs.size *= x->shape[d];
        if (x->shape[d] == 1) continue;
        /* neighbours that step as one merge: the C-order index is unchanged */
        if (rs.n > 0 && rs.stride[rs.n - 1] == x->stride[d] * x->shape[d]) {
            rs.shape[rs.n - 1] *= x->shape[d];
            rs.stride[rs.n - 1] = x->stride[d];
            continue;
        }
        rs.shape[rs.n] = x->shape[d];
        rs.stride[rs.n] = x->stride[d];
        rs.n++;
    }
    int64_t nout = ax_tensor_numel(out);
    if (nout == 0) return AX_OK;
    if (rs.size == 0) {
        if (op != AX_REDUCE_SUM) return AX_ERROR(AX_ERR_INVALID, "%s: max/min over zero elements", fn);
        return ax_cuda_fill(out, 0.0);
    }
    if (ax_cu_begin(out, &s) != AX_OK) return ax_error_status();
    /* x viewed with the reduced dims at size 1 walks the outputs */
    ax_tensor xv = *x;
    for (int d = 0; d < x->ndim; d++)
        if (dims >> d & 1) xv.shape[d] = 1;
    bool has_idx = idx && op != AX_REDUCE_SUM;
    const ax_tensor *ts[] = {out, &xv, has_idx ? idx : out};
    ax_cu_iter it;
    ax_cu_iter_shape(&it, out->ndim, out->shape, 3, ts);
    if (rs.size <= 64 || (rs.size <= 4096 && nout >= 4096)) {
        ax_cu_reduce_small_kernel<<<ax_cu_blocks(nout), AX_CU_THREADS, 0, s>>>(it, rs, op, has_idx);
    } else if (op == AX_REDUCE_SUM && nout < 1024 && rs.size >= 2 * AX_REDUCE_SPLIT) {
        /* few long sums (losses, means): chunk partials, then a fixed-order total */
        int64_t chunks = (rs.size + AX_REDUCE_SPLIT - 1) / AX_REDUCE_SPLIT;
        double *part = (double *)ax_cuda_scratch((size_t)(nout * chunks) * sizeof(double), out->storage->device.index);
        if (!part) return ax_error_status();
        dim3 grid((unsigned)chunks, (unsigned)nout);
        ax_cu_sum_part_kernel<<<grid, AX_CU_THREADS, 0, s>>>(it, rs, chunks, part);
        ax_cu_sum_total_kernel<<<ax_cu_blocks(nout), AX_CU_THREADS, 0, s>>>(it, chunks, part);
        ax_status st = ax_cu_launched(fn);
        ax_cuda_scratch_free(part, out->storage->device.index);
        return st;
    } else {
        ax_cu_reduce_kernel<<<(unsigned)(nout < 65536 ? nout : 65536), AX_CU_THREADS, 0, s>>>(it, rs, op, has_idx);
    }
    return ax_cu_launched(fn);
}

/* ---- softmax --------------------------------------------------------------------------------------------- */

/* positions: it over x's shape with dim at size 1, ops {y, x} or {dx, dy, y};
 * sd[k]: operand k's stride along dim. One thread per position. */
__global__ void ax_cu_softmax_kernel(ax_cu_iter it, int64_t n, int64_t s0, int64_t s1, bool log_) {
    AX_CU_LOOP(q, it.n) {
        int64_t off[AX_CU_MAX_OPS];
        ax_cu_offsets(it, q, off);
        float *y = (float *)it.base[0] + off[0];
        const float *x = (const float *)it.base[1] + off[1];
        float m = -INFINITY;
        double sum = 0;
        for (int64_t j = 0; j < n; j++) m = ax_cm_sm_max(m, x[j * s1]);
        for (int64_t j = 0; j < n; j++) sum += expf(x[j * s1] - m);
        double scale = ax_cm_sm_scale(sum, log_);
        for (int64_t j = 0; j < n; j++) y[j * s0] = ax_cm_sm_finish(x[j * s1], m, scale, log_);
    }
}

/* One block per position, for long rows. */
__global__ void ax_cu_softmax_row_kernel(ax_cu_iter it, int64_t n, int64_t s0, int64_t s1, bool log_) {
    __shared__ float sm[AX_CU_THREADS];
    __shared__ double ss[AX_CU_THREADS];
    for (int64_t q = blockIdx.x; q < it.n; q += gridDim.x) {
        int64_t off[AX_CU_MAX_OPS];
        ax_cu_offsets(it, q, off);
        float *y = (float *)it.base[0] + off[0];
        const float *x = (const float *)it.base[1] + off[1];
        float m = -INFINITY;
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = ax_cm_sm_max(m, x[j * s1]);
        sm[threadIdx.x] = m;
        __syncthreads();
        for (int w = blockDim.x / 2; w > 0; w >>= 1) {
            if ((int)threadIdx.x < w) sm[threadIdx.x] = ax_cm_sm_max(sm[threadIdx.x], sm[threadIdx.x + w]);
            __syncthreads();
        }
        m = sm[0];
        double sum = 0;
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) sum += expf(x[j * s1] - m);
        ss[threadIdx.x] = sum;
        __syncthreads();
        for (int w = blockDim.x / 2; w > 0; w >>= 1) {
            if ((int)threadIdx.x < w) ss[threadIdx.x] += ss[threadIdx.x + w];
            __syncthreads();
        }
        double scale = ax_cm_sm_scale(ss[0], log_);
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) y[j * s0] = ax_cm_sm_finish(x[j * s1], m, scale, log_);
        __syncthreads();
    }
}

__global__ void ax_cu_softmax_bw_kernel(ax_cu_iter it, int64_t n, int64_t s0, int64_t s1, int64_t s2, bool log_) {
    AX_CU_LOOP(q, it.n) {
        int64_t off[AX_CU_MAX_OPS];
        ax_cu_offsets(it, q, off);
        float *dx = (float *)it.base[0] + off[0];
        const float *dy = (const float *)it.base[1] + off[1], *y = (const float *)it.base[2] + off[2];
        double sum = 0;
        for (int64_t j = 0; j < n; j++) sum += ax_cm_smb_term(dy[j * s1], y[j * s2], log_);
        for (int64_t j = 0; j < n; j++) dx[j * s0] = ax_cm_smb_finish(dy[j * s1], y[j * s2], sum, log_);
    }
}

__global__ void ax_cu_softmax_bw_row_kernel(ax_cu_iter it, int64_t n, int64_t s0, int64_t s1, int64_t s2, bool log_) {
    __shared__ double ss[AX_CU_THREADS];
    for (int64_t q = blockIdx.x; q < it.n; q += gridDim.x) {
        int64_t off[AX_CU_MAX_OPS];
        ax_cu_offsets(it, q, off);
        float *dx = (float *)it.base[0] + off[0];
        const float *dy = (const float *)it.base[1] + off[1], *y = (const float *)it.base[2] + off[2];
        double sum = 0;
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) sum += ax_cm_smb_term(dy[j * s1], y[j * s2], log_);
        ss[threadIdx.x] = sum;
        __syncthreads();
        for (int w = blockDim.x / 2; w > 0; w >>= 1) {
            if ((int)threadIdx.x < w) ss[threadIdx.x] += ss[threadIdx.x + w];
            __syncthreads();
        }
        sum = ss[0];
        __syncthreads();
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) dx[j * s0] = ax_cm_smb_finish(dy[j * s1], y[j * s2], sum, log_);
        __syncthreads();
    }
}

static ax_status ax_cu_softmax_any(const char *fn, int nops, const ax_tensor *const *ts, int dim, bool log_) {
    cudaStream_t s;
    const ax_tensor *x = ts[nops - 1];
    int d = dim < 0 ? dim + x->ndim : dim;
    if (x->ndim == 0 || d < 0 || d >= x->ndim) return AX_ERROR(AX_ERR_INVALID, "%s: dim %d out of range", fn, dim);
    for (int k = 0; k < nops; k++) {
        if (ts[k]->dtype != AX_DTYPE_F32) return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: f32 only on CUDA", fn);
        if (!ax_tensor_same_shape(ts[k], x)) return AX_ERROR(AX_ERR_INVALID, "%s: operands differ in shape", fn);
    }
    if (ax_tensor_numel(x) == 0) return AX_OK;
    if (ax_cu_begin(x, &s) != AX_OK) return ax_error_status();
    int64_t n = x->shape[d], shape[AX_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[d] = 1;
    ax_cu_iter it;
    ax_cu_iter_shape(&it, x->ndim, shape, nops, ts);
    int64_t sd[3] = {ts[0]->stride[d], ts[1]->stride[d], nops > 2 ? ts[2]->stride[d] : 0};
    bool rows = n > 256 && it.n < 65536;
    unsigned grid = rows ? (unsigned)it.n : ax_cu_blocks(it.n);
    if (nops == 2 && rows) ax_cu_softmax_row_kernel<<<grid, AX_CU_THREADS, 0, s>>>(it, n, sd[0], sd[1], log_);
    if (nops == 2 && !rows) ax_cu_softmax_kernel<<<grid, AX_CU_THREADS, 0, s>>>(it, n, sd[0], sd[1], log_);
    if (nops == 3 && rows) ax_cu_softmax_bw_row_kernel<<<grid, AX_CU_THREADS, 0, s>>>(it, n, sd[0], sd[1], sd[2], log_);
    if (nops == 3 && !rows) ax_cu_softmax_bw_kernel<<<grid, AX_CU_THREADS, 0, s>>>(it, n, sd[0], sd[1], sd[2], log_);
    return ax_cu_launched(fn);
}

ax_status ax_cuda_softmax(ax_tensor *y, const ax_tensor *x, int dim, bool log) {
    const ax_tensor *ts[] = {y, x};
    return ax_cu_softmax_any("ax_cuda_softmax", 2, ts, dim, log);
}

ax_status ax_cuda_softmax_backward(ax_tensor *dx, const ax_tensor *dy, const ax_tensor *y, int dim, bool log) {
    const ax_tensor *ts[] = {dx, dy, y};
    return ax_cu_softmax_any("ax_cuda_softmax_backward", 3, ts, dim, log);
}

/* ---- contiguous staging ------------------------------------------------------------------------------------ */

/* A contiguous f32 stand-in for t: t itself, or a scratch copy (tmp holds
 * the header and storage; free with ax_cu_stage_free). */
struct ax_cu_stage {
    ax_tensor t;
    ax_storage st;
    bool owned;
};

static ax_status ax_cu_stage_in(ax_cu_stage *sg, const ax_tensor *t, bool copy_in) {
    memset(sg, 0, sizeof *sg);
    sg->t = *t;
    if (ax_tensor_is_contiguous(t)) return AX_OK;
    size_t nb = ax_tensor_nbytes(t);
    sg->st = *t->storage;
    sg->st.refs = 1;
    sg->st.nbytes = nb;
    sg->st.data = ax_cuda_scratch(nb ? nb : 1, t->storage->device.index);
    if (!sg->st.data) return ax_error_status();
    sg->owned = true;
    sg->t.storage = &sg->st;
    sg->t.offset = 0;
    int64_t st = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        sg->t.stride[d] = st;
        st *= t->shape[d] ? t->shape[d] : 1;
    }
    return copy_in ? ax_cuda_copy(&sg->t, t) : AX_OK;
}

/* Copy a staged output back into t (when staged) and free the scratch. */
static ax_status ax_cu_stage_out(ax_cu_stage *sg, ax_tensor *t, ax_status st) {
    if (!sg->owned) return st;
    if (st == AX_OK) st = ax_cuda_copy(t, &sg->t);
    ax_cuda_scratch_free(sg->st.data, t->storage->device.index);
    sg->owned = false;
    return st;
}

static void ax_cu_stage_drop(ax_cu_stage *sg, int32_t dev) {
    if (sg->owned) ax_cuda_scratch_free(sg->st.data, dev);
    sg->owned = false;
}

static const float *ax_cu_f32(const ax_tensor *t) { return t ? (const float *)ax_cu_base(t) : NULL; }

/* ---- group norm ------------------------------------------------------------------------------------------------- */

#define AX_NORM_CHUNK 8192

/* Partial shifted moments of unit u's chunk j: (sum(x-k), sum((x-k)^2)), k = the unit's first element. */
__global__ void ax_cu_norm_moments_kernel(const float *x, int64_t len, int64_t nchunks, double2 *part) {
    __shared__ double s1[AX_CU_THREADS], s2[AX_CU_THREADS];
    int64_t u = blockIdx.x, j = blockIdx.y;
    const float *xu = x + u * len;
    double k = xu[0];
    int64_t a = j * AX_NORM_CHUNK, b = ax_cm_min64(a + AX_NORM_CHUNK, len);
    double p = 0, q = 0;
    for (int64_t i = a + threadIdx.x; i < b; i += blockDim.x) {
        double dlt = (double)xu[i] - k;
        p += dlt;
        q += dlt * dlt;
    }
    s1[threadIdx.x] = p;
    s2[threadIdx.x] = q;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) {
            s1[threadIdx.x] += s1[threadIdx.x + w];
            s2[threadIdx.x] += s2[threadIdx.x + w];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) part[u * nchunks + j] = make_double2(s1[0], s2[0]);
}

/* Per unit: mean, rstd (f32, into mean/rstd at [n, g] with their strides)
 * and the double mean split for the apply pass (stats[u] = {mean, rstd}). */
__global__ void ax_cu_norm_stats_kernel(const float *x, int64_t len, int64_t nchunks, const double2 *part, int64_t units,
                                        int64_t groups, double eps, float *mean, int64_t ms0, int64_t ms1, float *rstd,
                                        int64_t rs0, int64_t rs1, double2 *stats) {
    AX_CU_LOOP(u, units) {
        double m = 0, var = 0;
        if (len > 0) {
            double s1 = 0, s2 = 0;
            for (int64_t j = 0; j < nchunks; j++) s1 += part[u * nchunks + j].x, s2 += part[u * nchunks + j].y;
            double m1 = s1 / (double)len;
            m = (double)x[u * len] + m1;
            var = s2 / (double)len - m1 * m1;
            if (var < 0) var = 0;
        }
        double r = 1.0 / sqrt(var + eps);
        int64_t n = u / groups, g = u % groups;
        mean[n * ms0 + g * ms1] = (float)m;
        rstd[n * rs0 + g * rs1] = (float)r;
        stats[u] = make_double2(m, r);
    }
}

/* y = (x - mean) * rstd * w + b, x and y contiguous [N, C, S]; act: then
 * leaky_relu(slope) before the store (group_norm_act). */
__global__ void ax_cu_norm_apply_kernel(float *y, const float *x, int64_t total, int64_t c, int64_t s, int64_t cpg,
                                        const double2 *stats, const float *w, const float *b, bool act, float slope) {
    AX_CU_LOOP(i, total) {
        int64_t nc = i / s, ch = nc % c, n = nc / c;
        int64_t u = n * (c / cpg) + ch / cpg;
        double2 st = stats[u];
        float mhi = (float)st.x, mlo = (float)(st.x - (double)mhi), rf = (float)st.y;
        float a = rf * (w ? w[ch] : 1.0f), bb = b ? b[ch] : 0.0f;
        y[i] = act ? ax_cm_norm_act(x[i], mhi, mlo, a, bb, slope) : ax_cm_norm_apply(x[i], mhi, mlo, a, bb);
    }
}

static bool ax_cu_norm_vec_ok(const ax_tensor *t, int64_t c) {
    return !t || (t->dtype == AX_DTYPE_F32 && t->ndim == 1 && t->shape[0] == c && ax_tensor_is_contiguous(t));
}

static bool ax_cu_norm_stat_ok(const ax_tensor *t, int64_t n, int64_t g) {
    return t && t->dtype == AX_DTYPE_F32 && t->ndim == 2 && t->shape[0] == n && t->shape[1] == g;
}

/* group_norm, then leaky_relu(slope) in the same store when act. */
static ax_status ax_cu_group_norm_run(const char *fn, ax_tensor *y, ax_tensor *mean, ax_tensor *rstd, const ax_tensor *x,
                                      const ax_tensor *weight, const ax_tensor *bias, int64_t groups, double eps,
                                      bool act, float slope) {
    cudaStream_t s;
    if (x->ndim < 2 || x->dtype != AX_DTYPE_F32 || y->dtype != AX_DTYPE_F32 || !ax_tensor_same_shape(x, y) || groups < 1 ||
        x->shape[1] % groups != 0)
        return AX_ERROR(AX_ERR_INVALID, "%s: want f32 x and y of one shape [N, C, *] with C divisible by %lld groups", fn,
                        (long long)groups);
    int64_t n = x->shape[0], c = x->shape[1], sp = 1;
    for (int d = 2; d < x->ndim; d++) sp *= x->shape[d];
    if (!ax_cu_norm_vec_ok(weight, c) || !ax_cu_norm_vec_ok(bias, c) || !ax_cu_norm_stat_ok(mean, n, groups) ||
        !ax_cu_norm_stat_ok(rstd, n, groups))
        return AX_ERROR(AX_ERR_INVALID, "%s: weight/bias must be contiguous f32 [%lld], mean/rstd f32 [%lld, %lld]", fn,
                        (long long)c, (long long)n, (long long)groups);
    int64_t units = n * groups, cpg = c / groups, len = cpg * sp;
    if (units == 0) return AX_OK;
    if (ax_cu_begin(x, &s) != AX_OK) return ax_error_status();
    int32_t dev = x->storage->device.index;
    int64_t nchunks = len > 0 ? (len + AX_NORM_CHUNK - 1) / AX_NORM_CHUNK : 1;
    if (nchunks > 65535 || units > INT32_MAX)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: %lld groups of %lld elements is too many", fn, (long long)units,
                        (long long)len);
    ax_cu_stage sx, sy;
    if (ax_cu_stage_in(&sx, x, true) != AX_OK) return ax_error_status();
    if (ax_cu_stage_in(&sy, y, false) != AX_OK) {
        ax_cu_stage_drop(&sx, dev);
        return ax_error_status();
    }
    size_t nb = ((size_t)units * (size_t)nchunks + (size_t)units) * sizeof(double2);
    double2 *part = (double2 *)ax_cuda_scratch(nb, dev);
    ax_status st = part ? AX_OK : ax_error_status();
    if (st == AX_OK) {
        double2 *stats = part + units * nchunks;
        const float *xd = ax_cu_f32(&sx.t);
        if (len > 0) {
            dim3 grid((unsigned)units, (unsigned)nchunks);
            ax_cu_norm_moments_kernel<<<grid, AX_CU_THREADS, 0, s>>>(xd, len, nchunks, part);
        }
        ax_cu_norm_stats_kernel<<<ax_cu_blocks(units), AX_CU_THREADS, 0, s>>>(
            xd, len, len > 0 ? nchunks : 0, part, units, groups, eps, (float *)ax_cu_base(mean), mean->stride[0],
            mean->stride[1], (float *)ax_cu_base(rstd), rstd->stride[0], rstd->stride[1], stats);
        int64_t total = n * c * sp;
        if (total > 0)
            ax_cu_norm_apply_kernel<<<ax_cu_blocks(total), AX_CU_THREADS, 0, s>>>(
                (float *)ax_cu_base(&sy.t), xd, total, c, sp, cpg, stats, ax_cu_f32(weight), ax_cu_f32(bias), act,
                slope);
        st = ax_cu_launched(fn);
        ax_cuda_scratch_free(part, dev);
    }
    ax_cu_stage_drop(&sx, dev);
    return ax_cu_stage_out(&sy, y, st);
}

ax_status ax_cuda_group_norm(ax_tensor *y, ax_tensor *mean, ax_tensor *rstd, const ax_tensor *x,
                             const ax_tensor *weight, const ax_tensor *bias, int64_t groups, double eps) {
    return ax_cu_group_norm_run("ax_cuda_group_norm", y, mean, rstd, x, weight, bias, groups, eps, false, 0.0f);
}

/* leaky_relu slopes the fused kernels take: >= 0, so the backward can
 * read the branch from y. */
static ax_status ax_cu_check_slope(const char *fn, double slope) {
    if (slope >= 0 && isfinite(slope)) return AX_OK;
    return AX_ERROR(AX_ERR_INVALID, "%s: negative_slope %g must be finite and >= 0", fn, slope);
}

ax_status ax_cuda_group_norm_act(ax_tensor *y, ax_tensor *mean, ax_tensor *rstd, const ax_tensor *x,
                                 const ax_tensor *weight, const ax_tensor *bias, int64_t groups, double eps,
                                 double negative_slope) {
    const char *fn = "ax_cuda_group_norm_act";
    if (ax_cu_check_slope(fn, negative_slope) != AX_OK) return ax_error_status();
    return ax_cu_group_norm_run(fn, y, mean, rstd, x, weight, bias, groups, eps, true, (float)negative_slope);
}

/* Per (n, c) row and chunk: (sum dy, sum dy * (x - mean)); ya: [optional]
 * the fused leaky_relu's output, gating dy as it is read. */
__global__ void ax_cu_norm_rowsum_kernel(const float *dy, const float *ya, float slope, const float *x, int64_t s,
                                         int64_t c, int64_t cpg, int64_t nchunks, const float *mean, int64_t ms0,
                                         int64_t ms1, double2 *part) {
    __shared__ double s1[AX_CU_THREADS], s2[AX_CU_THREADS];
    int64_t row = blockIdx.x, j = blockIdx.y;
    int64_t n = row / c, g = (row % c) / cpg;
    double mu = mean[n * ms0 + g * ms1];
    const float *dyr = dy + row * s, *xr = x + row * s, *yr = ya ? ya + row * s : NULL;
    int64_t a = j * AX_NORM_CHUNK, b = ax_cm_min64(a + AX_NORM_CHUNK, s);
    double p = 0, q = 0;
    for (int64_t i = a + threadIdx.x; i < b; i += blockDim.x) {
        double d = yr ? ax_cm_leaky_gate(dyr[i], yr[i], slope) : dyr[i];
        p += d;
        q += d * ((double)xr[i] - mu);
    }
    s1[threadIdx.x] = p;
    s2[threadIdx.x] = q;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) {
            s1[threadIdx.x] += s1[threadIdx.x + w];
            s2[threadIdx.x] += s2[threadIdx.x + w];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) part[row * nchunks + j] = make_double2(s1[0], s2[0]);
}

/* rows[r] = sum over chunks; then per unit the dx coefficients coef[u] = {bx, d0}. */
__global__ void ax_cu_norm_unit_kernel(const double2 *part, int64_t nchunks, double2 *rows, int64_t units, int64_t cpg,
                                       int64_t len, const float *w, const float *rstd, int64_t rs0, int64_t rs1,
                                       int64_t groups, float2 *coef) {
    AX_CU_LOOP(u, units) {
        double swdy = 0, swdx = 0;
        int64_t n = u / groups, g = u % groups;
        for (int64_t k = 0; k < cpg; k++) {
            int64_t r = u * cpg + k, ch = g * cpg + k;
            double sdy = 0, sdx = 0;
            for (int64_t j = 0; j < nchunks; j++) sdy += part[r * nchunks + j].x, sdx += part[r * nchunks + j].y;
            rows[r] = make_double2(sdy, sdx);
            double wv = w ? w[ch] : 1.0;
            swdy += wv * sdy;
            swdx += wv * sdx;
        }
        float bx, d0;
        ax_cm_norm_dx_coef(swdy, swdx, rstd[n * rs0 + g * rs1], len, &bx, &d0);
        coef[u] = make_float2(bx, d0);
    }
}

/* dweight[c] += sum_n rstd[n, g(c)] * sdx[n, c]; dbias[c] += sum_n sdy[n, c]. */
__global__ void ax_cu_norm_param_kernel(const double2 *rows, int64_t n, int64_t c, int64_t cpg, const float *rstd,
                                        int64_t rs0, int64_t rs1, float *dw, int64_t dws, float *db, int64_t dbs) {
    AX_CU_LOOP(ch, c) {
        double a = 0, b = 0;
        for (int64_t i = 0; i < n; i++) {
            double2 r = rows[i * c + ch];
            a += (double)rstd[i * rs0 + (ch / cpg) * rs1] * r.y;
            b += r.x;
        }
        if (dw) dw[ch * dws] += (float)a;
        if (db) db[ch * dbs] += (float)b;
    }
}

/* dx; ya: [optional] gates dy as in the row sums. */
__global__ void ax_cu_norm_dx_kernel(float *dx, const float *dy, const float *ya, float slope, const float *x,
                                     int64_t total, int64_t c, int64_t s, int64_t cpg, const float2 *coef,
                                     const float *mean, int64_t ms0, int64_t ms1, const float *rstd, int64_t rs0,
                                     int64_t rs1, const float *w) {
    AX_CU_LOOP(i, total) {
        int64_t nc = i / s, ch = nc % c, n = nc / c, g = ch / cpg;
        int64_t u = n * (c / cpg) + g;
        float2 cf = coef[u];
        float mf = mean[n * ms0 + g * ms1], rf = rstd[n * rs0 + g * rs1];
        float d = ya ? ax_cm_leaky_gate(dy[i], ya[i], slope) : dy[i];
        dx[i] = ax_cm_norm_dx(d, x[i], rf * (w ? w[ch] : 1.0f), cf.x, mf, cf.y);
    }
}

/* group_norm_backward; y: [optional] the fused leaky_relu's output, whose
 * gradient gates dy in the row sums and the dx pass. */
static ax_status ax_cu_group_norm_backward_run(const char *fn, ax_tensor *dx, ax_tensor *dweight, ax_tensor *dbias,
                                               const ax_tensor *dy, const ax_tensor *x, const ax_tensor *y,
                                               const ax_tensor *mean, const ax_tensor *rstd, const ax_tensor *weight,
                                               int64_t groups, float slope) {
    cudaStream_t s;
    if (y && (y->dtype != AX_DTYPE_F32 || !ax_tensor_same_shape(x, y)))
        return AX_ERROR(AX_ERR_INVALID, "%s: y must be f32 with x's shape", fn);
    if (x->ndim < 2 || x->dtype != AX_DTYPE_F32 || dy->dtype != AX_DTYPE_F32 || !ax_tensor_same_shape(x, dy) ||
        (dx && (dx->dtype != AX_DTYPE_F32 || !ax_tensor_same_shape(x, dx))) || groups < 1 || x->shape[1] % groups != 0)
        return AX_ERROR(AX_ERR_INVALID, "%s: want f32 x, dy (and dx) of one shape [N, C, *], C divisible by %lld", fn,
                        (long long)groups);
    int64_t n = x->shape[0], c = x->shape[1], sp = 1;
    for (int d = 2; d < x->ndim; d++) sp *= x->shape[d];
    if (!ax_cu_norm_stat_ok(mean, n, groups) || !ax_cu_norm_stat_ok(rstd, n, groups) || !ax_cu_norm_vec_ok(weight, c) ||
        (dweight && (dweight->dtype != AX_DTYPE_F32 || dweight->ndim != 1 || dweight->shape[0] != c)) ||
        (dbias && (dbias->dtype != AX_DTYPE_F32 || dbias->ndim != 1 || dbias->shape[0] != c)))
        return AX_ERROR(AX_ERR_INVALID, "%s: mean/rstd must be f32 [%lld, %lld], weight/dweight/dbias f32 [%lld]", fn,
                        (long long)n, (long long)groups, (long long)c);
    int64_t units = n * groups, cpg = c / groups, len = cpg * sp;
    if (units == 0 || c == 0) return AX_OK;
    if (ax_cu_begin(x, &s) != AX_OK) return ax_error_status();
    int32_t dev = x->storage->device.index;
    int64_t nchunks = sp > 0 ? (sp + AX_NORM_CHUNK - 1) / AX_NORM_CHUNK : 1;
    if (nchunks > 65535 || n * c > INT32_MAX)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: %lld x %lld channels of %lld elements is too many", fn, (long long)n,
                        (long long)c, (long long)sp);
    ax_cu_stage sx, sdy, sdx, sya;
    memset(&sdx, 0, sizeof sdx);
    memset(&sya, 0, sizeof sya);
    if (ax_cu_stage_in(&sx, x, true) != AX_OK) return ax_error_status();
    if (ax_cu_stage_in(&sdy, dy, true) != AX_OK) {
        ax_cu_stage_drop(&sx, dev);
        return ax_error_status();
    }
    ax_status st = y ? ax_cu_stage_in(&sya, y, true) : AX_OK;
    if (st == AX_OK && dx) st = ax_cu_stage_in(&sdx, dx, false);
    /* part, rows: double2 per (row, chunk) and per row; coef: float2 per unit */
    size_t nb = ((size_t)(n * c) * (size_t)nchunks + (size_t)(n * c)) * sizeof(double2) + (size_t)units * sizeof(float2);
    double2 *part = st == AX_OK ? (double2 *)ax_cuda_scratch(nb, dev) : NULL;
    if (st == AX_OK && !part) st = ax_error_status();
    if (st == AX_OK) {
        double2 *rows = part + n * c * nchunks;
        float2 *coef = (float2 *)(rows + n * c);
        const float *xd = ax_cu_f32(&sx.t), *dyd = ax_cu_f32(&sdy.t), *md = ax_cu_f32(mean), *rd = ax_cu_f32(rstd);
        const float *yd = y ? ax_cu_f32(&sya.t) : NULL;
        if (sp > 0) {
            dim3 grid((unsigned)(n * c), (unsigned)nchunks);
            ax_cu_norm_rowsum_kernel<<<grid, AX_CU_THREADS, 0, s>>>(dyd, yd, slope, xd, sp, c, cpg, nchunks, md,
                                                                    mean->stride[0], mean->stride[1], part);
        } else {
            cudaMemsetAsync(part, 0, (size_t)(n * c * nchunks) * sizeof(double2), s);
        }
        ax_cu_norm_unit_kernel<<<ax_cu_blocks(units), AX_CU_THREADS, 0, s>>>(part, nchunks, rows, units, cpg, len,
                                                                             ax_cu_f32(weight), rd, rstd->stride[0],
                                                                             rstd->stride[1], groups, coef);
        if (dweight || dbias)
            ax_cu_norm_param_kernel<<<ax_cu_blocks(c), AX_CU_THREADS, 0, s>>>(
                rows, n, c, cpg, rd, rstd->stride[0], rstd->stride[1], dweight ? (float *)ax_cu_base(dweight) : NULL,
                dweight ? dweight->stride[0] : 0, dbias ? (float *)ax_cu_base(dbias) : NULL, dbias ? dbias->stride[0] : 0);
        int64_t total = n * c * sp;
        if (dx && total > 0)
            ax_cu_norm_dx_kernel<<<ax_cu_blocks(total), AX_CU_THREADS, 0, s>>>(
                (float *)ax_cu_base(&sdx.t), dyd, yd, slope, xd, total, c, sp, cpg, coef, md, mean->stride[0],
                mean->stride[1], rd, rstd->stride[0], rstd->stride[1], ax_cu_f32(weight));
        st = ax_cu_launched(fn);
        ax_cuda_scratch_free(part, dev);
    }
    ax_cu_stage_drop(&sx, dev);
    ax_cu_stage_drop(&sdy, dev);
    ax_cu_stage_drop(&sya, dev);
    if (dx) return ax_cu_stage_out(&sdx, dx, st);
    return st;
}

ax_status ax_cuda_group_norm_backward(ax_tensor *dx, ax_tensor *dweight, ax_tensor *dbias, const ax_tensor *dy,
                                      const ax_tensor *x, const ax_tensor *mean, const ax_tensor *rstd,
                                      const ax_tensor *weight, int64_t groups) {
    return ax_cu_group_norm_backward_run("ax_cuda_group_norm_backward", dx, dweight, dbias, dy, x, NULL, mean, rstd,
                                         weight, groups, 0.0f);
}

ax_status ax_cuda_group_norm_act_backward(ax_tensor *dx, ax_tensor *dweight, ax_tensor *dbias, const ax_tensor *dy,
                                          const ax_tensor *x, const ax_tensor *y, const ax_tensor *mean,
                                          const ax_tensor *rstd, const ax_tensor *weight, int64_t groups,
                                          double negative_slope) {
    const char *fn = "ax_cuda_group_norm_act_backward";
    if (ax_cu_check_slope(fn, negative_slope) != AX_OK) return ax_error_status();
    if (!y) return AX_ERROR(AX_ERR_INVALID, "%s: y (the activation's output) is NULL", fn);
    return ax_cu_group_norm_backward_run(fn, dx, dweight, dbias, dy, x, y, mean, rstd, weight, groups,
                                         (float)negative_slope);
}

/* ---- pooling ------------------------------------------------------------------------------------------------------ */

/* A 5-D f32 volume: base, sizes, strides. */
struct ax_cu_vol {
    float *p;
    int64_t n, c, d, h, w;
    int64_t sn, sc, sd, sh, sw;
};

static ax_cu_vol ax_cu_vol_of(const ax_tensor *t) {
    ax_cu_vol v = {(float *)ax_cu_base(t), t->shape[0], t->shape[1], t->shape[2], t->shape[3], t->shape[4],
                   t->stride[0], t->stride[1], t->stride[2], t->stride[3], t->stride[4]};
    return v;
}

/* Decompose a C-order index over v's shape into (nc, d, h, w) and give v's offset. */
__device__ __forceinline__ int64_t ax_cu_vol_at(const ax_cu_vol &v, int64_t i, int64_t *nc, int64_t *d, int64_t *h,
                                                int64_t *w) {
    *w = i % v.w;
    i /= v.w;
    *h = i % v.h;
    i /= v.h;
    *d = i % v.d;
    *nc = i / v.d;
    return (*nc / v.c) * v.sn + (*nc % v.c) * v.sc + *d * v.sd + *h * v.sh + *w * v.sw;
}

__device__ __forceinline__ int64_t ax_cu_vol_plane(const ax_cu_vol &v, int64_t nc) {
    return (nc / v.c) * v.sn + (nc % v.c) * v.sc;
}

struct ax_cu_pool {
    int64_t k[3], s[3], pad[3];
    bool max, include_pad;
};

__global__ void ax_cu_pool_kernel(ax_cu_vol y, ax_cu_vol x, ax_cu_vol ix, int64_t *idx, ax_cu_pool p, int64_t total) {
    AX_CU_LOOP(i, total) {
        int64_t nc, od, oh, ow;
        int64_t yo = ax_cu_vol_at(y, i, &nc, &od, &oh, &ow);
        int64_t dl, dh, dp, hl, hh, hp, wl, wh, wp;
        ax_cm_pool_win(od, p.k[0], p.s[0], p.pad[0], x.d, &dl, &dh, &dp);
        ax_cm_pool_win(oh, p.k[1], p.s[1], p.pad[1], x.h, &hl, &hh, &hp);
        ax_cm_pool_win(ow, p.k[2], p.s[2], p.pad[2], x.w, &wl, &wh, &wp);
        const float *xp = x.p + ax_cu_vol_plane(x, nc);
        if (p.max) {
            float best = -INFINITY;
            int64_t bi = (dl * x.h + hl) * x.w + wl;
            for (int64_t d = dl; d < dh; d++)
                for (int64_t h = hl; h < hh; h++)
                    for (int64_t w = wl; w < wh; w++) {
                        float v = xp[d * x.sd + h * x.sh + w * x.sw];
                        if (v > best || v != v) best = v, bi = (d * x.h + h) * x.w + w;
                    }
            y.p[yo] = best;
            if (idx) idx[ax_cu_vol_plane(ix, nc) + od * ix.sd + oh * ix.sh + ow * ix.sw] = bi;
        } else {
            if (dl >= dh || hl >= hh || wl >= wh) {
                y.p[yo] = 0.0f;
                continue;
            }
            double sum = 0;
            for (int64_t d = dl; d < dh; d++)
                for (int64_t h = hl; h < hh; h++)
                    for (int64_t w = wl; w < wh; w++) sum += xp[d * x.sd + h * x.sh + w * x.sw];
            int64_t div = p.include_pad ? dp * hp * wp : (dh - dl) * (hh - hl) * (wh - wl);
            y.p[yo] = (float)(sum / (double)div);
        }
    }
}


/* Gather form: each input element sums the outputs that used it (no atomics, deterministic). */
__global__ void ax_cu_pool_bw_kernel(ax_cu_vol dx, ax_cu_vol dy, ax_cu_vol ix, const int64_t *idx, ax_cu_pool p,
                                     int64_t total) {
    AX_CU_LOOP(i, total) {
        int64_t nc, d, h, w;
        int64_t xo = ax_cu_vol_at(dx, i, &nc, &d, &h, &w);
        int64_t d0, d1, h0, h1, w0, w1;
        ax_cm_pool_out_range(d, p.k[0], p.s[0], p.pad[0], dy.d, &d0, &d1);
        ax_cm_pool_out_range(h, p.k[1], p.s[1], p.pad[1], dy.h, &h0, &h1);
        ax_cm_pool_out_range(w, p.k[2], p.s[2], p.pad[2], dy.w, &w0, &w1);
        const float *gp = dy.p + ax_cu_vol_plane(dy, nc);
        int64_t flat = (d * dx.h + h) * dx.w + w;
        double acc = 0;
        for (int64_t od = d0; od < d1; od++)
            for (int64_t oh = h0; oh < h1; oh++)
                for (int64_t ow = w0; ow < w1; ow++) {
                    int64_t dl, dh, dp, hl, hh, hp, wl, wh, wp;
                    ax_cm_pool_win(od, p.k[0], p.s[0], p.pad[0], dx.d, &dl, &dh, &dp);
                    ax_cm_pool_win(oh, p.k[1], p.s[1], p.pad[1], dx.h, &hl, &hh, &hp);
                    ax_cm_pool_win(ow, p.k[2], p.s[2], p.pad[2], dx.w, &wl, &wh, &wp);
                    if (d < dl || d >= dh || h < hl || h >= hh || w < wl || w >= wh) continue;
                    float g = gp[od * dy.sd + oh * dy.sh + ow * dy.sw];
                    if (p.max) {
                        if (idx[ax_cu_vol_plane(ix, nc) + od * ix.sd + oh * ix.sh + ow * ix.sw] == flat) acc += g;
                    } else {
                        int64_t div = p.include_pad ? dp * hp * wp : (dh - dl) * (hh - hl) * (wh - wl);
                        acc += (double)g / (double)div;
                    }
                }
        dx.p[xo] = (float)acc;
    }
}

static bool ax_cu_is_5d(const ax_tensor *t, ax_dtype dt) { return t && t->ndim == 5 && t->dtype == dt; }

static ax_cu_pool ax_cu_pool_of(const ax_pool_params *p) {
    ax_cu_pool q;
    for (int i = 0; i < 3; i++) q.k[i] = p->kernel[i], q.s[i] = p->stride[i], q.pad[i] = p->padding[i];
    q.max = p->mode == AX_POOL_MAX;
    q.include_pad = p->count_include_pad;
    return q;
}

ax_status ax_cuda_pool3d(ax_tensor *y, ax_tensor *idx, const ax_tensor *x, const ax_pool_params *p) {
    const char *fn = "ax_cuda_pool3d";
    cudaStream_t s;
    if (!ax_cu_is_5d(x, AX_DTYPE_F32) || !ax_cu_is_5d(y, AX_DTYPE_F32) || x->shape[0] != y->shape[0] ||
        x->shape[1] != y->shape[1] || (p->mode != AX_POOL_MAX && p->mode != AX_POOL_AVG) ||
        (idx && (!ax_cu_is_5d(idx, AX_DTYPE_I64) || !ax_tensor_same_shape(idx, y))))
        return AX_ERROR(AX_ERR_INVALID, "%s: want f32 5-D x and y of equal N, C (and idx i64 of y's shape)", fn);
    for (int i = 0; i < 3; i++)
        if (p->kernel[i] < 1 || p->stride[i] < 1 || p->padding[i] < 0)
            return AX_ERROR(AX_ERR_INVALID, "%s: bad kernel/stride/padding", fn);
    int64_t total = ax_tensor_numel(y);
    if (total == 0) return AX_OK;
    if (ax_cu_begin(y, &s) != AX_OK) return ax_error_status();
    ax_cu_vol iv = idx ? ax_cu_vol_of(idx) : ax_cu_vol_of(y);
    ax_cu_pool_kernel<<<ax_cu_blocks(total), AX_CU_THREADS, 0, s>>>(
        ax_cu_vol_of(y), ax_cu_vol_of(x), iv, idx && p->mode == AX_POOL_MAX ? (int64_t *)ax_cu_base(idx) : NULL,
        ax_cu_pool_of(p), total);
    return ax_cu_launched(fn);
}

ax_status ax_cuda_pool3d_backward(ax_tensor *dx, const ax_tensor *dy, const ax_tensor *idx, const ax_pool_params *p) {
    const char *fn = "ax_cuda_pool3d_backward";
    cudaStream_t s;
    bool max = p->mode == AX_POOL_MAX;
    if (!ax_cu_is_5d(dx, AX_DTYPE_F32) || !ax_cu_is_5d(dy, AX_DTYPE_F32) || dx->shape[0] != dy->shape[0] ||
        dx->shape[1] != dy->shape[1])
        return AX_ERROR(AX_ERR_INVALID, "%s: want f32 5-D dx and dy of equal N, C", fn);
    if (max && (!idx || !ax_cu_is_5d(idx, AX_DTYPE_I64) || !ax_tensor_same_shape(idx, dy)))
        return AX_ERROR(AX_ERR_INVALID, "%s: max pooling needs i64 argmax indices of dy's shape", fn);
    int64_t total = ax_tensor_numel(dx);
    if (total == 0) return AX_OK;
    if (ax_cu_begin(dx, &s) != AX_OK) return ax_error_status();
    ax_cu_vol iv = max ? ax_cu_vol_of(idx) : ax_cu_vol_of(dy);
    ax_cu_pool_bw_kernel<<<ax_cu_blocks(total), AX_CU_THREADS, 0, s>>>(
        ax_cu_vol_of(dx), ax_cu_vol_of(dy), iv, max ? (const int64_t *)ax_cu_base(idx) : NULL, ax_cu_pool_of(p), total);
    return ax_cu_launched(fn);
}

__global__ void ax_cu_adaptive_kernel(ax_cu_vol y, ax_cu_vol x, int64_t total) {
    AX_CU_LOOP(i, total) {
        int64_t nc, od, oh, ow;
        int64_t yo = ax_cu_vol_at(y, i, &nc, &od, &oh, &ow);
        int64_t d0 = ax_cm_adaptive_start(od, y.d, x.d), d1 = ax_cm_adaptive_end(od, y.d, x.d);
        int64_t h0 = ax_cm_adaptive_start(oh, y.h, x.h), h1 = ax_cm_adaptive_end(oh, y.h, x.h);
        int64_t w0 = ax_cm_adaptive_start(ow, y.w, x.w), w1 = ax_cm_adaptive_end(ow, y.w, x.w);
        const float *xp = x.p + ax_cu_vol_plane(x, nc);
        double sum = 0;
        for (int64_t d = d0; d < d1; d++)
            for (int64_t h = h0; h < h1; h++)
                for (int64_t w = w0; w < w1; w++) sum += xp[d * x.sd + h * x.sh + w * x.sw];
        y.p[yo] = (float)(sum / (double)((d1 - d0) * (h1 - h0) * (w1 - w0)));
    }
}


__global__ void ax_cu_adaptive_bw_kernel(ax_cu_vol dx, ax_cu_vol dy, int64_t total) {
    AX_CU_LOOP(i, total) {
        int64_t nc, d, h, w;
        int64_t xo = ax_cu_vol_at(dx, i, &nc, &d, &h, &w);
        const float *gp = dy.p + ax_cu_vol_plane(dy, nc);
        double acc = 0;
        for (int64_t od = ax_cm_adaptive_first(d, dy.d, dx.d); od < dy.d && ax_cm_adaptive_start(od, dy.d, dx.d) <= d; od++) {
            int64_t d0 = ax_cm_adaptive_start(od, dy.d, dx.d), d1 = ax_cm_adaptive_end(od, dy.d, dx.d);
            if (d < d0 || d >= d1) continue;
            for (int64_t oh = ax_cm_adaptive_first(h, dy.h, dx.h); oh < dy.h && ax_cm_adaptive_start(oh, dy.h, dx.h) <= h;
                 oh++) {
                int64_t h0 = ax_cm_adaptive_start(oh, dy.h, dx.h), h1 = ax_cm_adaptive_end(oh, dy.h, dx.h);
                if (h < h0 || h >= h1) continue;
                for (int64_t ow = ax_cm_adaptive_first(w, dy.w, dx.w);
                     ow < dy.w && ax_cm_adaptive_start(ow, dy.w, dx.w) <= w; ow++) {
                    int64_t w0 = ax_cm_adaptive_start(ow, dy.w, dx.w), w1 = ax_cm_adaptive_end(ow, dy.w, dx.w);
                    if (w < w0 || w >= w1) continue;
                    acc += (double)gp[od * dy.sd + oh * dy.sh + ow * dy.sw] / (double)((d1 - d0) * (h1 - h0) * (w1 - w0));
                }
            }
        }
        dx.p[xo] = (float)acc;
    }
}

ax_status ax_cuda_adaptive_avg_pool3d(ax_tensor *y, const ax_tensor *x) {
    const char *fn = "ax_cuda_adaptive_avg_pool3d";
    cudaStream_t s;
    if (!ax_cu_is_5d(x, AX_DTYPE_F32) || !ax_cu_is_5d(y, AX_DTYPE_F32) || x->shape[0] != y->shape[0] ||
        x->shape[1] != y->shape[1])
        return AX_ERROR(AX_ERR_INVALID, "%s: want f32 5-D x and y of equal N, C", fn);
    int64_t total = ax_tensor_numel(y);
    if (total == 0) return AX_OK;
    if (x->shape[2] < 1 || x->shape[3] < 1 || x->shape[4] < 1)
        return AX_ERROR(AX_ERR_INVALID, "%s: empty input volume", fn);
    if (ax_cu_begin(y, &s) != AX_OK) return ax_error_status();
    ax_cu_adaptive_kernel<<<ax_cu_blocks(total), AX_CU_THREADS, 0, s>>>(ax_cu_vol_of(y), ax_cu_vol_of(x), total);
    return ax_cu_launched(fn);
}

ax_status ax_cuda_adaptive_avg_pool3d_backward(ax_tensor *dx, const ax_tensor *dy) {
    const char *fn = "ax_cuda_adaptive_avg_pool3d_backward";
    cudaStream_t s;
    if (!ax_cu_is_5d(dx, AX_DTYPE_F32) || !ax_cu_is_5d(dy, AX_DTYPE_F32) || dx->shape[0] != dy->shape[0] ||
        dx->shape[1] != dy->shape[1])
        return AX_ERROR(AX_ERR_INVALID, "%s: want f32 5-D dx and dy of equal N, C", fn);
    int64_t total = ax_tensor_numel(dx);
    if (total == 0) return AX_OK;
    if (ax_tensor_numel(dy) == 0) return ax_cuda_fill(dx, 0.0);
    if (ax_cu_begin(dx, &s) != AX_OK) return ax_error_status();
    ax_cu_adaptive_bw_kernel<<<ax_cu_blocks(total), AX_CU_THREADS, 0, s>>>(ax_cu_vol_of(dx), ax_cu_vol_of(dy), total);
    return ax_cu_launched(fn);
}

/* ---- interpolation ------------------------------------------------------------------------------------------------ */

/* [N, C, *] with 1..3 spatial dims as a 5-D volume (missing leading spatial dims of size 1). */
static ax_cu_vol ax_cu_vol_sp(const ax_tensor *t) {
    int sp = t->ndim - 2;
    int64_t sz[3] = {1, 1, 1}, st[3] = {0, 0, 0};
    for (int i = 0; i < sp; i++) sz[3 - sp + i] = t->shape[2 + i], st[3 - sp + i] = t->stride[2 + i];
    ax_cu_vol v = {(float *)ax_cu_base(t), t->shape[0], t->shape[1], sz[0], sz[1], sz[2],
                   t->stride[0], t->stride[1], st[0], st[1], st[2]};
    return v;
}


__global__ void ax_cu_interp_kernel(ax_cu_vol y, ax_cu_vol x, int sp, bool nearest, bool ac, int64_t total) {
    AX_CU_LOOP(i, total) {
        int64_t nc, od, oh, ow;
        int64_t yo = ax_cu_vol_at(y, i, &nc, &od, &oh, &ow);
        int64_t d0, d1, h0, h1, w0, w1;
        float a0, a1, b0, b1, c0, c1;
        ax_cm_taps(sp < 3, nearest, ac, od, x.d, y.d, &d0, &d1, &a0, &a1);
        ax_cm_taps(sp < 2, nearest, ac, oh, x.h, y.h, &h0, &h1, &b0, &b1);
        ax_cm_taps(false, nearest, ac, ow, x.w, y.w, &w0, &w1, &c0, &c1);
        const float *xp = x.p + ax_cu_vol_plane(x, nc);
#define AX_X(d, h, w) xp[(d) * x.sd + (h) * x.sh + (w) * x.sw]
        float v;
        if (nearest) {
            v = AX_X(d0, h0, w0);
        } else {
            /* torch's nesting: W innermost, then H, then D */
            float r00 = AX_X(d0, h0, w0) * c0 + AX_X(d0, h0, w1) * c1;
            if (sp == 1) {
                v = r00;
            } else {
                float r01 = AX_X(d0, h1, w0) * c0 + AX_X(d0, h1, w1) * c1;
                float a = r00 * b0 + r01 * b1;
                if (sp == 2) {
                    v = a;
                } else {
                    float r10 = AX_X(d1, h0, w0) * c0 + AX_X(d1, h0, w1) * c1;
                    float r11 = AX_X(d1, h1, w0) * c0 + AX_X(d1, h1, w1) * c1;
                    v = a * a0 + (r10 * b0 + r11 * b1) * a1;
                }
            }
        }
#undef AX_X
        y.p[yo] = v;
    }
}



__global__ void ax_cu_interp_bw_kernel(ax_cu_vol dx, ax_cu_vol dy, int sp, bool nearest, bool ac, int64_t total) {
    AX_CU_LOOP(i, total) {
        int64_t nc, d, h, w;
        int64_t xo = ax_cu_vol_at(dx, i, &nc, &d, &h, &w);
        int64_t d0, d1, h0, h1, w0, w1;
        ax_cm_tap_out_range(sp < 3, d, dx.d, dy.d, &d0, &d1);
        ax_cm_tap_out_range(sp < 2, h, dx.h, dy.h, &h0, &h1);
        ax_cm_tap_out_range(false, w, dx.w, dy.w, &w0, &w1);
        const float *gp = dy.p + ax_cu_vol_plane(dy, nc);
        double acc = 0;
        for (int64_t od = d0; od < d1; od++) {
            float wd = ax_cm_tap_weight(sp < 3, nearest, ac, od, d, dx.d, dy.d);
            if (wd == 0.0f) continue;
            for (int64_t oh = h0; oh < h1; oh++) {
                float wh = ax_cm_tap_weight(sp < 2, nearest, ac, oh, h, dx.h, dy.h);
                if (wh == 0.0f) continue;
                for (int64_t ow = w0; ow < w1; ow++) {
                    float ww = ax_cm_tap_weight(false, nearest, ac, ow, w, dx.w, dy.w);
                    if (ww == 0.0f) continue;
                    acc += (double)gp[od * dy.sd + oh * dy.sh + ow * dy.sw] * ((double)wd * wh * ww);
                }
            }
        }
        dx.p[xo] = (float)acc;
    }
}

static bool ax_cu_interp_ok(const ax_tensor *a, const ax_tensor *b) {
    if (a->ndim != b->ndim || a->ndim < 3 || a->ndim > 5 || a->dtype != AX_DTYPE_F32 || b->dtype != AX_DTYPE_F32 ||
        a->shape[0] != b->shape[0] || a->shape[1] != b->shape[1])
        return false;
    return true;
}

ax_status ax_cuda_interpolate(ax_tensor *y, const ax_tensor *x, ax_interp_mode mode, bool align_corners) {
    const char *fn = "ax_cuda_interpolate";
    cudaStream_t s;
    if (!ax_cu_interp_ok(y, x) || (mode != AX_INTERP_NEAREST && mode != AX_INTERP_TRILINEAR))
        return AX_ERROR(AX_ERR_INVALID, "%s: want f32 x, y [N, C, *] with 1..3 spatial dims and a known mode", fn);
    int64_t total = ax_tensor_numel(y);
    if (total == 0) return AX_OK;
    if (ax_tensor_numel(x) == 0) return AX_ERROR(AX_ERR_INVALID, "%s: empty input", fn);
    if (ax_cu_begin(y, &s) != AX_OK) return ax_error_status();
    ax_cu_interp_kernel<<<ax_cu_blocks(total), AX_CU_THREADS, 0, s>>>(ax_cu_vol_sp(y), ax_cu_vol_sp(x), x->ndim - 2,
                                                                      mode == AX_INTERP_NEAREST, align_corners, total);
    return ax_cu_launched(fn);
}

ax_status ax_cuda_interpolate_backward(ax_tensor *dx, const ax_tensor *dy, ax_interp_mode mode, bool align_corners) {
    const char *fn = "ax_cuda_interpolate_backward";
    cudaStream_t s;
    if (!ax_cu_interp_ok(dx, dy) || (mode != AX_INTERP_NEAREST && mode != AX_INTERP_TRILINEAR))
        return AX_ERROR(AX_ERR_INVALID, "%s: want f32 dx, dy [N, C, *] with 1..3 spatial dims and a known mode", fn);
    int64_t total = ax_tensor_numel(dx);
    if (total == 0) return AX_OK;
    if (ax_tensor_numel(dy) == 0) return ax_cuda_fill(dx, 0.0);
    if (ax_cu_begin(dx, &s) != AX_OK) return ax_error_status();
    ax_cu_interp_bw_kernel<<<ax_cu_blocks(total), AX_CU_THREADS, 0, s>>>(ax_cu_vol_sp(dx), ax_cu_vol_sp(dy), dx->ndim - 2,
                                                                         mode == AX_INTERP_NEAREST, align_corners, total);
    return ax_cu_launched(fn);
}

/* ---- padding --------------------------------------------------------------------------------------------------------- */

struct ax_cu_pad {
    int nd, first;
    ax_pad_mode mode;
    int64_t yshape[AX_MAX_DIMS], ystride[AX_MAX_DIMS], xshape[AX_MAX_DIMS], xstride[AX_MAX_DIMS];
    int64_t before[AX_MAX_DIMS];
};

/* y -> x: for each y element, its source in x (or constant). */
__global__ void ax_cu_pad_kernel(ax_cu_pad pd, float *y, const float *x, float value, int64_t total) {
    AX_CU_LOOP(i, total) {
        int64_t r = i, yo = 0, xo = 0;
        bool inside = true;
        for (int d = pd.nd - 1; d >= 0; d--) {
            int64_t q = r % pd.yshape[d];
            r /= pd.yshape[d];
            yo += q * pd.ystride[d];
            int64_t src = d >= pd.first ? ax_cm_pad_source(q, pd.before[d], pd.xshape[d], pd.mode) : q;
            if (src < 0)
                inside = false;
            else
                xo += src * pd.xstride[d];
        }
        y[yo] = inside ? x[xo] : value;
    }
}

/* constant mode: each dx element reads its one dy element (gather). */
__global__ void ax_cu_pad_bw_const_kernel(ax_cu_pad pd, float *dx, const float *dy, int64_t total) {
    AX_CU_LOOP(i, total) {
        int64_t r = i, xo = 0, yo = 0;
        bool inside = true;
        for (int d = pd.nd - 1; d >= 0; d--) {
            int64_t q = r % pd.xshape[d];
            r /= pd.xshape[d];
            xo += q * pd.xstride[d];
            int64_t o = d >= pd.first ? q + pd.before[d] : q;
            if (o < 0 || o >= pd.yshape[d])
                inside = false;
            else
                yo += o * pd.ystride[d];
        }
        dx[xo] = inside ? dy[yo] : 0.0f;
    }
}

/* reflect / replicate: each dy element adds into its source (atomics; dx zeroed first). */
__global__ void ax_cu_pad_bw_scatter_kernel(ax_cu_pad pd, float *dx, const float *dy, int64_t total) {
    AX_CU_LOOP(i, total) {
        int64_t r = i, yo = 0, xo = 0;
        for (int d = pd.nd - 1; d >= 0; d--) {
            int64_t q = r % pd.yshape[d];
            r /= pd.yshape[d];
            yo += q * pd.ystride[d];
            int64_t src = d >= pd.first ? ax_cm_pad_source(q, pd.before[d], pd.xshape[d], pd.mode) : q;
            xo += src * pd.xstride[d];
        }
        atomicAdd(dx + xo, dy[yo]);
    }
}

static ax_status ax_cu_pad_init(ax_cu_pad *pd, const char *fn, const ax_tensor *y, const ax_tensor *x,
                                const int64_t *pads, int n_spatial, ax_pad_mode mode) {
    memset(pd, 0, sizeof *pd);
    bool ok = x->dtype == AX_DTYPE_F32 && y->dtype == AX_DTYPE_F32 && x->ndim == y->ndim && n_spatial >= 1 &&
              n_spatial <= x->ndim && (mode == AX_PAD_CONSTANT || mode == AX_PAD_REFLECT || mode == AX_PAD_REPLICATE);
    int first = x->ndim - n_spatial;
    for (int d = 0; ok && d < x->ndim; d++) {
        int64_t want = x->shape[d];
        if (d >= first) {
            int64_t b = pads[2 * (d - first)], a = pads[2 * (d - first) + 1];
            want += b + a;
            if (mode != AX_PAD_CONSTANT && y->shape[d] > 0 &&
                (x->shape[d] < 1 || (mode == AX_PAD_REFLECT && (b >= x->shape[d] || a >= x->shape[d]))))
                ok = false;
            pd->before[d] = b;
        }
        ok = ok && y->shape[d] == want;
    }
    if (!ok) return AX_ERROR(AX_ERR_INVALID, "%s: bad operands for %d padded dims (mode %d)", fn, n_spatial, (int)mode);
    pd->nd = x->ndim;
    pd->first = first;
    pd->mode = mode;
    for (int d = 0; d < x->ndim; d++) {
        pd->yshape[d] = y->shape[d], pd->ystride[d] = y->stride[d];
        pd->xshape[d] = x->shape[d], pd->xstride[d] = x->stride[d];
    }
    return AX_OK;
}

ax_status ax_cuda_pad(ax_tensor *y, const ax_tensor *x, const int64_t *pads, int n_spatial, ax_pad_mode mode,
                      double value) {
    const char *fn = "ax_cuda_pad";
    cudaStream_t s;
    ax_cu_pad pd;
    if (ax_cu_pad_init(&pd, fn, y, x, pads, n_spatial, mode) != AX_OK) return ax_error_status();
    int64_t total = ax_tensor_numel(y);
    if (total == 0) return AX_OK;
    if (ax_cu_begin(y, &s) != AX_OK) return ax_error_status();
    ax_cu_pad_kernel<<<ax_cu_blocks(total), AX_CU_THREADS, 0, s>>>(pd, (float *)ax_cu_base(y), ax_cu_f32(x), (float)value,
                                                                   total);
    return ax_cu_launched(fn);
}

ax_status ax_cuda_pad_backward(ax_tensor *dx, const ax_tensor *dy, const int64_t *pads, int n_spatial,
                               ax_pad_mode mode) {
    const char *fn = "ax_cuda_pad_backward";
    cudaStream_t s;
    ax_cu_pad pd;
    if (ax_cu_pad_init(&pd, fn, dy, dx, pads, n_spatial, mode) != AX_OK) return ax_error_status();
    int64_t total = ax_tensor_numel(dx);
    if (total == 0) return AX_OK;
    if (ax_cu_begin(dx, &s) != AX_OK) return ax_error_status();
    if (mode == AX_PAD_CONSTANT) {
        ax_cu_pad_bw_const_kernel<<<ax_cu_blocks(total), AX_CU_THREADS, 0, s>>>(pd, (float *)ax_cu_base(dx),
                                                                                ax_cu_f32(dy), total);
        return ax_cu_launched(fn);
    }
    if (ax_cuda_fill(dx, 0.0) != AX_OK) return ax_error_status();
    int64_t ny = ax_tensor_numel(dy);
    if (ny == 0) return AX_OK;
    ax_cu_pad_bw_scatter_kernel<<<ax_cu_blocks(ny), AX_CU_THREADS, 0, s>>>(pd, (float *)ax_cu_base(dx), ax_cu_f32(dy), ny);
    return ax_cu_launched(fn);
}

/* ---- indexing ------------------------------------------------------------------------------------------------------------ */

/* Out-of-range indices seen by the index kernels, per device (read and
 * cleared by ax_cuda_index_errors). */
__device__ int ax_cu_index_error_count;

/* gather: ops {out, idx, x (dim stride 0)}; x offset += idx * xsd. */
__global__ void ax_cu_gather_kernel(ax_cu_iter it, int64_t xsd, int64_t xn, int es) {
    AX_CU_LOOP(i, it.n) {
        int64_t off[AX_CU_MAX_OPS];
        ax_cu_offsets(it, i, off);
        int64_t k = ((const int64_t *)it.base[1])[off[1]];
        char *o = it.base[0] + off[0] * es;
        if (k < 0 || k >= xn) {
            atomicAdd(&ax_cu_index_error_count, 1);
            continue;
        }
        ax_cu_copy_bytes(o, it.base[2] + (off[2] + k * xsd) * es, es);
    }
}

/* scatter_add: ops {idx, src, out (dim stride 0)}; out offset += idx * osd. */
__global__ void ax_cu_scatter_add_kernel(ax_cu_iter it, int64_t osd, int64_t on) {
    AX_CU_LOOP(i, it.n) {
        int64_t off[AX_CU_MAX_OPS];
        ax_cu_offsets(it, i, off);
        int64_t k = ((const int64_t *)it.base[0])[off[0]];
        if (k < 0 || k >= on) {
            atomicAdd(&ax_cu_index_error_count, 1);
            continue;
        }
        atomicAdd((float *)it.base[2] + off[2] + k * osd, ((const float *)it.base[1])[off[1]]);
    }
}

ax_status ax_cuda_index_errors(int32_t device, int *count) {
    *count = 0;
    cudaStream_t s = ax_cuda_stream(device);
    if (!s) return ax_error_status();
    int zero = 0;
    cudaError_t e = cudaMemcpyFromSymbolAsync(count, ax_cu_index_error_count, sizeof *count, 0, cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess) e = cudaMemcpyToSymbolAsync(ax_cu_index_error_count, &zero, sizeof zero, 0, cudaMemcpyHostToDevice, s);
    if (e == cudaSuccess) e = cudaStreamSynchronize(s);
    return ax_cuda_check(e, "ax_cuda_index_errors");
}

static int ax_cu_norm_dim(int dim, int ndim) {
    int n = ndim ? ndim : 1;
    if (dim < 0) dim += n;
    return dim >= 0 && dim < n ? dim : -1;
}

/* t's header with the shape of `like` (strides of t, dim's stride 0 when zero_dim). */
static ax_tensor ax_cu_view_like(const ax_tensor *t, const ax_tensor *like, int dim, bool zero_dim) {
    ax_tensor v = *t;
    v.ndim = like->ndim;
    for (int d = 0; d < like->ndim; d++) {
        v.shape[d] = like->shape[d];
        v.stride[d] = d == dim && zero_dim ? 0 : t->stride[d];
    }
    return v;
}

/* idx (1-D) spread over `like`'s shape along dim: stride 0 elsewhere. */
static ax_tensor ax_cu_spread(const ax_tensor *idx, const ax_tensor *like, int dim) {
    ax_tensor v = *idx;
    v.ndim = like->ndim;
    for (int d = 0; d < like->ndim; d++) {
        v.shape[d] = like->shape[d];
        v.stride[d] = d == dim ? (idx->ndim ? idx->stride[0] : 0) : 0;
    }
    return v;
}

static bool ax_cu_fits(const ax_tensor *idx, const ax_tensor *t, int skip) {
    if (idx->ndim != t->ndim) return false;
    for (int d = 0; d < t->ndim; d++)
        if (d != skip && idx->shape[d] > t->shape[d]) return false;
    return true;
}

static ax_status ax_cu_gather_run(const char *fn, ax_tensor *out, const ax_tensor *x, int d, const ax_tensor *iv) {
    cudaStream_t s;
    if (ax_tensor_numel(out) == 0) return AX_OK;
    if (ax_cu_begin(out, &s) != AX_OK) return ax_error_status();
    ax_tensor xv = ax_cu_view_like(x, out, d, true);
    const ax_tensor *ts[] = {out, iv, &xv};
    ax_cu_iter it;
    ax_cu_iter_init(&it, 3, ts);
    ax_cu_gather_kernel<<<ax_cu_blocks(it.n), AX_CU_THREADS, 0, s>>>(it, x->stride[d], x->shape[d],
                                                                     (int)ax_dtype_size(x->dtype));
    return ax_cu_launched(fn);
}

static ax_status ax_cu_scatter_run(const char *fn, ax_tensor *out, int d, const ax_tensor *iv, const ax_tensor *src) {
    cudaStream_t s;
    if (ax_tensor_numel(iv) == 0) return AX_OK;
    if (ax_cu_begin(out, &s) != AX_OK) return ax_error_status();
    ax_tensor ov = ax_cu_view_like(out, iv, d, true), sv = ax_cu_view_like(src, iv, d, false);
    const ax_tensor *ts[] = {iv, &sv, &ov};
    ax_cu_iter it;
    ax_cu_iter_init(&it, 3, ts);
    ax_cu_scatter_add_kernel<<<ax_cu_blocks(it.n), AX_CU_THREADS, 0, s>>>(it, out->stride[d], out->shape[d]);
    return ax_cu_launched(fn);
}

ax_status ax_cuda_gather(ax_tensor *out, const ax_tensor *x, int dim, const ax_tensor *idx) {
    const char *fn = "ax_gather";
    int d = ax_cu_norm_dim(dim, x->ndim);
    if (idx->dtype != AX_DTYPE_I64) return AX_ERROR(AX_ERR_INVALID, "%s: index must be i64", fn);
    if (d < 0 || x->ndim == 0) return AX_ERROR(AX_ERR_INVALID, "%s: dim %d out of range for %d dims", fn, dim, x->ndim);
    if (out->dtype != x->dtype || !ax_tensor_same_shape(out, idx) || !ax_cu_fits(idx, x, d))
        return AX_ERROR(AX_ERR_INVALID, "%s: out must have x's dtype and index's shape, index must fit x", fn);
    return ax_cu_gather_run(fn, out, x, d, idx);
}

ax_status ax_cuda_scatter_add(ax_tensor *out, int dim, const ax_tensor *idx, const ax_tensor *src) {
    const char *fn = "ax_scatter_add";
    int d = ax_cu_norm_dim(dim, out->ndim);
    if (idx->dtype != AX_DTYPE_I64 || out->dtype != AX_DTYPE_F32 || src->dtype != AX_DTYPE_F32)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: want i64 index, f32 out and src on CUDA", fn);
    if (d < 0 || out->ndim == 0) return AX_ERROR(AX_ERR_INVALID, "%s: dim %d out of range", fn, dim);
    if (!ax_cu_fits(idx, src, -1) || !ax_cu_fits(idx, out, d))
        return AX_ERROR(AX_ERR_INVALID, "%s: index must fit src and out", fn);
    return ax_cu_scatter_run(fn, out, d, idx, src);
}

static bool ax_cu_shape_but_dim(const ax_tensor *t, const ax_tensor *want, int dim, int64_t n) {
    if (t->ndim != want->ndim) return false;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] != (d == dim ? n : want->shape[d])) return false;
    return true;
}

ax_status ax_cuda_index_select(ax_tensor *out, const ax_tensor *x, int dim, const ax_tensor *idx) {
    const char *fn = "ax_index_select";
    int d = ax_cu_norm_dim(dim, x->ndim);
    if (idx->dtype != AX_DTYPE_I64 || idx->ndim > 1) return AX_ERROR(AX_ERR_INVALID, "%s: index must be 1-D i64", fn);
    if (d < 0 || x->ndim == 0) return AX_ERROR(AX_ERR_INVALID, "%s: dim %d out of range", fn, dim);
    if (out->dtype != x->dtype || !ax_cu_shape_but_dim(out, x, d, ax_tensor_numel(idx)))
        return AX_ERROR(AX_ERR_INVALID, "%s: out must be x's dtype and shape with dim %d of the index's size", fn, d);
    ax_tensor iv = ax_cu_spread(idx, out, d);
    return ax_cu_gather_run(fn, out, x, d, &iv);
}

ax_status ax_cuda_index_add(ax_tensor *out, int dim, const ax_tensor *idx, const ax_tensor *src) {
    const char *fn = "ax_index_add";
    int d = ax_cu_norm_dim(dim, out->ndim);
    if (idx->dtype != AX_DTYPE_I64 || idx->ndim > 1 || out->dtype != AX_DTYPE_F32 || src->dtype != AX_DTYPE_F32)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: want a 1-D i64 index, f32 out and src on CUDA", fn);
    if (d < 0 || out->ndim == 0) return AX_ERROR(AX_ERR_INVALID, "%s: dim %d out of range", fn, dim);
    if (!ax_cu_shape_but_dim(src, out, d, ax_tensor_numel(idx)))
        return AX_ERROR(AX_ERR_INVALID, "%s: src must be out's shape with dim %d of the index's size", fn, d);
    ax_tensor iv = ax_cu_spread(idx, src, d);
    return ax_cu_scatter_run(fn, out, d, &iv, src);
}

/* ---- conv helpers ------------------------------------------------------------------------------------------------------- */

__global__ void ax_cu_bias_add_kernel(char *y, int ydt, const char *b, int bdt, int64_t total, int64_t c, int64_t s) {
    AX_CU_LOOP(i, total) {
        int64_t ch = (i / s) % c;
        ax_cu_stf(y, ydt, i, ax_cu_ldf(y, ydt, i) + ax_cu_ldf(b, bdt, ch));
    }
}

/* y += b over a broadcast view of b (any strides, any float dtypes). */
__global__ void ax_cu_add_into_kernel(ax_cu_iter it) {
    AX_CU_LOOP(i, it.n) {
        int64_t off[AX_CU_MAX_OPS];
        ax_cu_offsets(it, i, off);
        ax_cu_stf(it.base[0], it.dtype[0], off[0],
                  ax_cu_ldf(it.base[0], it.dtype[0], off[0]) + ax_cu_ldf(it.base[1], it.dtype[1], off[1]));
    }
}

ax_status ax_cuda_bias_add(ax_tensor *y, const ax_tensor *b) {
    cudaStream_t s;
    int64_t total = ax_tensor_numel(y);
    if (total == 0) return AX_OK;
    if (y->ndim < 2 || b->ndim != 1 || b->shape[0] != y->shape[1] || !ax_cu_is_float(y->dtype) || !ax_cu_is_float(b->dtype))
        return AX_ERROR(AX_ERR_INVALID, "ax_cuda_bias_add: want float y [N, C, *] and b [C]");
    if (ax_cu_begin(y, &s) != AX_OK) return ax_error_status();
    if (ax_tensor_is_contiguous(y) && ax_tensor_is_contiguous(b)) {
        int64_t c = y->shape[1], sp = total / (y->shape[0] * c);
        ax_cu_bias_add_kernel<<<ax_cu_blocks(total), AX_CU_THREADS, 0, s>>>(ax_cu_base(y), (int)y->dtype, ax_cu_base(b),
                                                                            (int)b->dtype, total, c, sp);
    } else {
        /* strided y (e.g. NDHWC): b viewed as [1, C, 1, ...] */
        ax_tensor bv = *b;
        bv.ndim = y->ndim;
        for (int d = 0; d < y->ndim; d++) bv.shape[d] = d == 1 ? b->shape[0] : 1, bv.stride[d] = d == 1 ? b->stride[0] : 0;
        const ax_tensor *ts[] = {y, &bv};
        ax_cu_iter it;
        ax_cu_iter_init(&it, 2, ts);
        ax_cu_add_into_kernel<<<ax_cu_blocks(it.n), AX_CU_THREADS, 0, s>>>(it);
    }
    return ax_cu_launched("ax_cuda_bias_add");
}

/* One block per channel. */
__global__ void ax_cu_bias_grad_kernel(float *db, int64_t dbs, const char *dy, int dt, int64_t n, int64_t c, int64_t s) {
    __shared__ double sh[AX_CU_THREADS];
    int64_t ch = blockIdx.x;
    double acc = 0;
    for (int64_t i = threadIdx.x; i < n * s; i += blockDim.x) {
        int64_t b = i / s, j = i % s;
        acc += ax_cu_ldf(dy, dt, (b * c + ch) * s + j);
    }
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) sh[threadIdx.x] += sh[threadIdx.x + w];
        __syncthreads();
    }
    if (threadIdx.x == 0) db[ch * dbs] += (float)sh[0];
}

ax_status ax_cuda_bias_grad(ax_tensor *db, const ax_tensor *dy) {
    cudaStream_t s;
    if (!ax_tensor_is_contiguous(dy) || dy->ndim < 2 || db->ndim != 1 || db->shape[0] != dy->shape[1] ||
        db->dtype != AX_DTYPE_F32)
        return AX_ERROR(AX_ERR_INVALID, "ax_cuda_bias_grad: want contiguous dy [N, C, *] and f32 db [C]");
    int64_t n = dy->shape[0], c = dy->shape[1], sp = 1;
    for (int d = 2; d < dy->ndim; d++) sp *= dy->shape[d];
    if (c == 0) return AX_OK;
    if (ax_cu_begin(dy, &s) != AX_OK) return ax_error_status();
    ax_cu_bias_grad_kernel<<<(unsigned)c, AX_CU_THREADS, 0, s>>>((float *)ax_cu_base(db), db->stride[0], ax_cu_base(dy),
                                                                 (int)dy->dtype, n, c, sp);
    return ax_cu_launched("ax_cuda_bias_grad");
}

/* ---- optimizer updates ----------------------------------------------------------------------------------------- */

__global__ void ax_cu_sgd_kernel(ax_sgd_step_params c, float *p, float *buf, const float *g, int64_t n) {
    AX_CU_LOOP(i, n) ax_cm_sgd(&c, p + i, buf ? buf + i : NULL, g[i]);
}

__global__ void ax_cu_adamw_kernel(ax_adamw_step_params c, float *p, float *m, float *v, const float *g, int64_t n) {
    AX_CU_LOOP(i, n) ax_cm_adamw(&c, p + i, m + i, v + i, g[i]);
}

static bool ax_cu_optim_operand(const ax_tensor *t, const ax_tensor *p) {
    return t && t->dtype == AX_DTYPE_F32 && ax_tensor_is_contiguous(t) && ax_tensor_same_shape(t, p) &&
           t->storage->device.type == AX_DEVICE_CUDA && t->storage->device.index == p->storage->device.index;
}

ax_status ax_cuda_sgd_step(ax_tensor *p, ax_tensor *buf, const ax_tensor *g, const ax_sgd_step_params *c) {
    if (!ax_cu_optim_operand(p, p) || !ax_cu_optim_operand(g, p) || (c->has_mom && !ax_cu_optim_operand(buf, p)))
        return AX_ERROR(AX_ERR_INVALID, "cuda sgd_step: operands must be f32, contiguous, of one shape and device");
    cudaStream_t s;
    if (ax_cu_begin(p, &s) != AX_OK) return ax_error_status();
    int64_t n = ax_tensor_numel(p);
    if (n == 0) return AX_OK;
    ax_cu_sgd_kernel<<<ax_cu_blocks(n), AX_CU_THREADS, 0, s>>>(*c, (float *)ax_cu_base(p),
                                                                c->has_mom ? (float *)ax_cu_base(buf) : NULL,
                                                                ax_cu_f32(g), n);
    return ax_cu_launched("cuda sgd_step");
}

ax_status ax_cuda_adamw_step(ax_tensor *p, ax_tensor *m, ax_tensor *v, const ax_tensor *g,
                             const ax_adamw_step_params *c) {
    if (!ax_cu_optim_operand(p, p) || !ax_cu_optim_operand(g, p) || !ax_cu_optim_operand(m, p) ||
        !ax_cu_optim_operand(v, p))
        return AX_ERROR(AX_ERR_INVALID, "cuda adamw_step: operands must be f32, contiguous, of one shape and device");
    cudaStream_t s;
    if (ax_cu_begin(p, &s) != AX_OK) return ax_error_status();
    int64_t n = ax_tensor_numel(p);
    if (n == 0) return AX_OK;
    ax_cu_adamw_kernel<<<ax_cu_blocks(n), AX_CU_THREADS, 0, s>>>(*c, (float *)ax_cu_base(p), (float *)ax_cu_base(m),
                                                                  (float *)ax_cu_base(v), ax_cu_f32(g), n);
    return ax_cu_launched("cuda adamw_step");
}

#define AX_CU_NORM_SPLIT 65536

/* part[j] = the combined norm terms of x's chunk j (fixed tree order). */
__global__ void ax_cu_norm_part_kernel(const float *x, int64_t n, double p, double *part) {
    __shared__ double sh[AX_CU_THREADS];
    bool inf = isinf(p);
    int64_t a = (int64_t)blockIdx.x * AX_CU_NORM_SPLIT, b = ax_cm_min64(a + AX_CU_NORM_SPLIT, n);
    double acc = 0;
    for (int64_t i = a + threadIdx.x; i < b; i += blockDim.x) acc = ax_cm_norm_combine(acc, ax_cm_norm_term(x[i], p), inf);
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w >>= 1) {
        if ((int)threadIdx.x < w) sh[threadIdx.x] = ax_cm_norm_combine(sh[threadIdx.x], sh[threadIdx.x + w], inf);
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}

/* *out = every partial combined in order (one thread: a few thousand at most). */
__global__ void ax_cu_norm_total_kernel(const double *part, int64_t n, bool inf, double *out) {
    double acc = 0;
    for (int64_t j = 0; j < n; j++) acc = ax_cm_norm_combine(acc, part[j], inf);
    *out = acc;
}

ax_status ax_cuda_grad_norm(double *acc, size_t n, const ax_tensor *const *xs, double p) {
    if (n == 0) return AX_OK;
    int32_t dev = xs[0]->storage->device.index;
    int64_t chunks = 0;
    for (size_t i = 0; i < n; i++) {
        if (xs[i]->dtype != AX_DTYPE_F32 || !ax_tensor_is_contiguous(xs[i]) ||
            xs[i]->storage->device.type != AX_DEVICE_CUDA || xs[i]->storage->device.index != dev)
            return AX_ERROR(AX_ERR_INVALID, "cuda grad_norm: tensor %zu is not f32, contiguous, on cuda:%d", i, (int)dev);
        chunks += (ax_tensor_numel(xs[i]) + AX_CU_NORM_SPLIT - 1) / AX_CU_NORM_SPLIT;
    }
    cudaStream_t s;
    if (ax_cu_begin(xs[0], &s) != AX_OK) return ax_error_status();
    double *part = (double *)ax_cuda_scratch((size_t)(chunks + 1) * sizeof(double), dev);
    if (!part) return ax_error_status();
    int64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t ne = ax_tensor_numel(xs[i]), nc = (ne + AX_CU_NORM_SPLIT - 1) / AX_CU_NORM_SPLIT;
        if (nc) ax_cu_norm_part_kernel<<<(unsigned)nc, AX_CU_THREADS, 0, s>>>(ax_cu_f32(xs[i]), ne, p, part + at);
        at += nc;
    }
    bool inf = isinf(p);
    ax_cu_norm_total_kernel<<<1, 1, 0, s>>>(part, chunks, inf, part + chunks);
    double total = 0;
    ax_status st = ax_cu_launched("cuda grad_norm");
    /* the one wait of an optimizer step: the host needs the norm */
    if (st == AX_OK) st = ax_cuda_check(cudaMemcpyAsync(&total, part + chunks, sizeof total, cudaMemcpyDeviceToHost, s),
                                        "cuda grad_norm: reading the norm");
    if (st == AX_OK) st = ax_cuda_check(cudaStreamSynchronize(s), "cuda grad_norm");
    ax_cuda_scratch_free(part, dev);
    if (st == AX_OK) *acc = ax_cm_norm_combine(*acc, total, inf);
    return st;
}

/* ---- fused scaled dot-product attention ----------------------------------------------------------------
 * FlashAttention-2 on CUDA cores: a block of AX_ATT_THREADS threads owns a
 * tile of 32 rows (4 threads per row, each holding every 4th output
 * column in registers) and walks the other side's tiles through shared
 * memory (f32, rows padded by one float against bank conflicts). The 4
 * threads of a row are adjacent lanes of one warp: row maxima and sums
 * combine with two shuffles, and the row's P is shared with __syncwarp.
 * Forward: one block per (b, query tile), online softmax in f32.
 * Backward: delta = rowsum(dout * o); dk/dv from one block per (b, key
 * tile) looping over query tiles, dq from one block per (b, query tile)
 * looping over key tiles, both recomputing P from lse: no atomics, so the
 * results are deterministic. Operands of any float dtype (loads widen to
 * f32). Head dims up to AX_ATT_MAXD. */
#define AX_ATT_TILE 32 /* rows of a query tile = keys of a key tile */
#define AX_ATT_THREADS (AX_ATT_TILE * 4)
#define AX_ATT_MAXD 128
#define AX_ATT_CPT (AX_ATT_MAXD / 4) /* output columns per thread */
#define AX_ATT_SPT (AX_ATT_TILE / 4) /* scores per thread per tile */

struct ax_att_args {
    const char *q, *k, *v, *o, *dout;
    char *out, *dq, *dk, *dv;
    float *lse_out;
    const float *lse, *delta;
    int dt;
    int64_t L, S, E, Ev;
    float scale;
    bool causal;
};

/* rows [r0, r0 + 32) of t ([*, n, c] of batch entry b) into s[32][c + 1]; zeros past n */
__device__ __forceinline__ void ax_att_load(float *s, const char *t, int dt, int64_t b, int64_t r0, int64_t n,
                                            int64_t c) {
    const int64_t pc = c + 1;
    for (int64_t x = threadIdx.x; x < AX_ATT_TILE * c; x += AX_ATT_THREADS) {
        int64_t rr = x / c, e = x % c, row = r0 + rr;
        s[rr * pc + e] = row < n ? ax_cu_ldf(t, dt, (b * n + row) * c + e) : 0.0f;
    }
}

__device__ __forceinline__ float ax_att_dot(const float *a, const float *b, int64_t n) {
    float acc = 0.0f;
    for (int64_t e = 0; e < n; e++) acc = fmaf(a[e], b[e], acc);
    return acc;
}

__global__ void ax_cu_att_fwd_kernel(ax_att_args a) {
    extern __shared__ float sm[];
    const int64_t E = a.E, Ev = a.Ev, pe = E + 1, pv = Ev + 1, pp = AX_ATT_TILE + 1;
    float *sQ = sm, *sK = sQ + AX_ATT_TILE * pe, *sV = sK + AX_ATT_TILE * pe, *sP = sV + AX_ATT_TILE * pv;
    const int64_t nqt = (a.L + AX_ATT_TILE - 1) / AX_ATT_TILE;
    const int64_t b = blockIdx.x / nqt, i0 = (blockIdx.x % nqt) * AX_ATT_TILE;
    const int r = threadIdx.x >> 2, g = threadIdx.x & 3;
    const int64_t i = i0 + r;
    ax_att_load(sQ, a.q, a.dt, b, i0, a.L, E);
    float m = -INFINITY, l = 0.0f, acc[AX_ATT_CPT];
#pragma unroll
    for (int u = 0; u < AX_ATT_CPT; u++) acc[u] = 0.0f;
    const int64_t kend = a.causal && i0 + AX_ATT_TILE < a.S ? i0 + AX_ATT_TILE : a.S;
    for (int64_t j0 = 0; j0 < kend; j0 += AX_ATT_TILE) {
        __syncthreads(); /* the previous tile is consumed (and sQ loaded) */
        ax_att_load(sK, a.k, a.dt, b, j0, a.S, E);
        ax_att_load(sV, a.v, a.dt, b, j0, a.S, Ev);
        __syncthreads();
        float s[AX_ATT_SPT], mx = m;
#pragma unroll
        for (int u = 0; u < AX_ATT_SPT; u++) {
            int jj = g + 4 * u;
            bool vis = ax_cm_att_visible(i, j0 + jj, a.S, a.causal);
            s[u] = vis ? ax_att_dot(sQ + r * pe, sK + jj * pe, E) * a.scale : -INFINITY;
            mx = fmaxf(mx, s[u]);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        float sum = 0.0f;
#pragma unroll
        for (int u = 0; u < AX_ATT_SPT; u++) {
            float p = ax_cm_att_prob(s[u], mx, s[u] != -INFINITY);
            sP[r * pp + g + 4 * u] = p;
            sum += p;
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        const float corr = ax_cm_att_corr(m, mx);
        l = l * corr + sum;
        m = mx;
        __syncwarp();
#pragma unroll
        for (int u = 0; u < AX_ATT_CPT; u++) {
            int64_t c = g + 4 * u;
            if (c < Ev) {
                float x = acc[u] * corr;
                for (int jj = 0; jj < AX_ATT_TILE; jj++) x = fmaf(sP[r * pp + jj], sV[jj * pv + c], x);
                acc[u] = x;
            }
        }
    }
    if (i >= a.L) return;
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
    for (int u = 0; u < AX_ATT_CPT; u++) {
        int64_t c = g + 4 * u;
        if (c < Ev) ax_cu_stf(a.out, a.dt, (b * a.L + i) * Ev + c, acc[u] * inv);
    }
    if (g == 0) a.lse_out[b * a.L + i] = ax_cm_att_lse(m, l);
}

/* delta[row] = sum_c dout[row, c] * o[row, c] */
__global__ void ax_cu_att_delta_kernel(float *delta, const char *dout, const char *o, int dt, int64_t rows, int64_t ev) {
    AX_CU_LOOP(r, rows) {
        float acc = 0.0f;
        for (int64_t c = 0; c < ev; c++) acc = fmaf(ax_cu_ldf(dout, dt, r * ev + c), ax_cu_ldf(o, dt, r * ev + c), acc);
        delta[r] = acc;
    }
}

/* Row vectors of one query tile: lse and delta of rows [i0, i0 + 32) (lse
 * -inf past L, so those rows contribute nothing). */
__device__ __forceinline__ void ax_att_load_rows(float *sL, float *sD, const ax_att_args &a, int64_t b, int64_t i0) {
    for (int x = threadIdx.x; x < AX_ATT_TILE; x += AX_ATT_THREADS) {
        int64_t i = i0 + x;
        sL[x] = i < a.L ? a.lse[b * a.L + i] : -INFINITY;
        sD[x] = i < a.L ? a.delta[b * a.L + i] : 0.0f;
    }
}

__global__ void ax_cu_att_dkdv_kernel(ax_att_args a) {
    extern __shared__ float sm[];
    const int64_t E = a.E, Ev = a.Ev, pe = E + 1, pv = Ev + 1, pp = AX_ATT_TILE + 1;
    float *sK = sm, *sV = sK + AX_ATT_TILE * pe, *sQ = sV + AX_ATT_TILE * pv, *sO = sQ + AX_ATT_TILE * pe;
    float *sL = sO + AX_ATT_TILE * pv, *sD = sL + AX_ATT_TILE, *sP = sD + AX_ATT_TILE, *sS = sP + AX_ATT_TILE * pp;
    const int64_t nkt = (a.S + AX_ATT_TILE - 1) / AX_ATT_TILE;
    const int64_t b = blockIdx.x / nkt, j0 = (blockIdx.x % nkt) * AX_ATT_TILE;
    const int r = threadIdx.x >> 2, g = threadIdx.x & 3; /* r: key row of the tile */
    const int64_t j = j0 + r;
    ax_att_load(sK, a.k, a.dt, b, j0, a.S, E);
    ax_att_load(sV, a.v, a.dt, b, j0, a.S, Ev);
    float dk[AX_ATT_CPT], dv[AX_ATT_CPT];
#pragma unroll
    for (int u = 0; u < AX_ATT_CPT; u++) dk[u] = dv[u] = 0.0f;
    /* causal: query tiles wholly before key j0 see none of these keys */
    for (int64_t i0 = a.causal ? j0 : 0; i0 < a.L; i0 += AX_ATT_TILE) {
        __syncthreads();
        ax_att_load(sQ, a.q, a.dt, b, i0, a.L, E);
        ax_att_load(sO, a.dout, a.dt, b, i0, a.L, Ev);
        ax_att_load_rows(sL, sD, a, b, i0);
        __syncthreads();
#pragma unroll
        for (int u = 0; u < AX_ATT_SPT; u++) {
            int ii = g + 4 * u;
            bool vis = ax_cm_att_visible(i0 + ii, j, a.S, a.causal);
            float s = vis ? ax_att_dot(sK + r * pe, sQ + ii * pe, E) * a.scale : 0.0f;
            float p = ax_cm_att_prob(s, sL[ii], vis);
            float dp = ax_att_dot(sO + ii * pv, sV + r * pv, Ev);
            sP[r * pp + ii] = p;
            sS[r * pp + ii] = p * (dp - sD[ii]);
        }
        __syncwarp();
#pragma unroll
        for (int u = 0; u < AX_ATT_CPT; u++) {
            int64_t c = g + 4 * u;
            if (c < Ev) {
                float x = dv[u];
                for (int ii = 0; ii < AX_ATT_TILE; ii++) x = fmaf(sP[r * pp + ii], sO[ii * pv + c], x);
                dv[u] = x;
            }
            if (c < E) {
                float x = dk[u];
                for (int ii = 0; ii < AX_ATT_TILE; ii++) x = fmaf(sS[r * pp + ii], sQ[ii * pe + c], x);
                dk[u] = x;
            }
        }
    }
    if (j >= a.S) return;
#pragma unroll
    for (int u = 0; u < AX_ATT_CPT; u++) {
        int64_t c = g + 4 * u;
        if (a.dv && c < Ev) ax_cu_stf(a.dv, a.dt, (b * a.S + j) * Ev + c, dv[u]);
        if (a.dk && c < E) ax_cu_stf(a.dk, a.dt, (b * a.S + j) * E + c, dk[u] * a.scale);
    }
}

__global__ void ax_cu_att_dq_kernel(ax_att_args a) {
    extern __shared__ float sm[];
    const int64_t E = a.E, Ev = a.Ev, pe = E + 1, pv = Ev + 1, pp = AX_ATT_TILE + 1;
    float *sQ = sm, *sO = sQ + AX_ATT_TILE * pe, *sK = sO + AX_ATT_TILE * pv, *sV = sK + AX_ATT_TILE * pe;
    float *sL = sV + AX_ATT_TILE * pv, *sD = sL + AX_ATT_TILE, *sS = sD + AX_ATT_TILE;
    const int64_t nqt = (a.L + AX_ATT_TILE - 1) / AX_ATT_TILE;
    const int64_t b = blockIdx.x / nqt, i0 = (blockIdx.x % nqt) * AX_ATT_TILE;
    const int r = threadIdx.x >> 2, g = threadIdx.x & 3;
    const int64_t i = i0 + r;
    ax_att_load(sQ, a.q, a.dt, b, i0, a.L, E);
    ax_att_load(sO, a.dout, a.dt, b, i0, a.L, Ev);
    ax_att_load_rows(sL, sD, a, b, i0);
    float dq[AX_ATT_CPT];
#pragma unroll
    for (int u = 0; u < AX_ATT_CPT; u++) dq[u] = 0.0f;
    const int64_t kend = a.causal && i0 + AX_ATT_TILE < a.S ? i0 + AX_ATT_TILE : a.S;
    for (int64_t j0 = 0; j0 < kend; j0 += AX_ATT_TILE) {
        __syncthreads();
        ax_att_load(sK, a.k, a.dt, b, j0, a.S, E);
        ax_att_load(sV, a.v, a.dt, b, j0, a.S, Ev);
        __syncthreads();
        const float lse = sL[r], delta = sD[r];
#pragma unroll
        for (int u = 0; u < AX_ATT_SPT; u++) {
            int jj = g + 4 * u;
            bool vis = ax_cm_att_visible(i, j0 + jj, a.S, a.causal);
            float s = vis ? ax_att_dot(sQ + r * pe, sK + jj * pe, E) * a.scale : 0.0f;
            float p = ax_cm_att_prob(s, lse, vis);
            float dp = ax_att_dot(sO + r * pv, sV + jj * pv, Ev);
            sS[r * pp + jj] = p * (dp - delta);
        }
        __syncwarp();
#pragma unroll
        for (int u = 0; u < AX_ATT_CPT; u++) {
            int64_t c = g + 4 * u;
            if (c < E) {
                float x = dq[u];
                for (int jj = 0; jj < AX_ATT_TILE; jj++) x = fmaf(sS[r * pp + jj], sK[jj * pe + c], x);
                dq[u] = x;
            }
        }
    }
    if (i >= a.L) return;
#pragma unroll
    for (int u = 0; u < AX_ATT_CPT; u++) {
        int64_t c = g + 4 * u;
        if (c < E) ax_cu_stf(a.dq, a.dt, (b * a.L + i) * E + c, dq[u] * a.scale);
    }
}

static bool ax_cu_att_3d(const ax_tensor *t, int64_t n0, int64_t n1, int64_t n2, ax_dtype dt) {
    return t->ndim == 3 && t->shape[0] == n0 && t->shape[1] == n1 && t->shape[2] == n2 && t->dtype == dt &&
           ax_tensor_is_contiguous(t) && t->storage->device.type == AX_DEVICE_CUDA;
}

static bool ax_cu_att_lse_ok(const ax_tensor *t, int64_t B, int64_t L) {
    return t->ndim == 2 && t->shape[0] == B && t->shape[1] == L && t->dtype == AX_DTYPE_F32 &&
           ax_tensor_is_contiguous(t) && t->storage->device.type == AX_DEVICE_CUDA;
}

/* Checks q, k, v and fills the shared arguments; *B the batch. */
static ax_status ax_cu_att_args_of(const char *fn, ax_att_args *a, int64_t *B, const ax_tensor *q, const ax_tensor *k,
                                   const ax_tensor *v, double scale, bool causal) {
    char s1[128], s2[128], s3[128];
    memset(a, 0, sizeof *a);
    if (!ax_cu_is_float(q->dtype)) return ax_cu_bad_dtype(fn, q->dtype);
    bool ok = q->ndim == 3 && k->ndim == 3 && v->ndim == 3;
    if (ok) {
        *B = q->shape[0], a->L = q->shape[1], a->E = q->shape[2], a->S = k->shape[1], a->Ev = v->shape[2];
        ok = ax_cu_att_3d(q, *B, a->L, a->E, q->dtype) && ax_cu_att_3d(k, *B, a->S, a->E, q->dtype) &&
             ax_cu_att_3d(v, *B, a->S, a->Ev, q->dtype);
    }
    if (!ok)
        return AX_ERROR(AX_ERR_INVALID,
                        "%s: q %s %s, k %s %s, v %s %s: want contiguous CUDA q [B, L, E], k [B, S, E], v [B, S, Ev] "
                        "of one dtype",
                        fn, ax_dtype_name(q->dtype), ax_shape_str(s1, sizeof s1, q->ndim, q->shape),
                        ax_dtype_name(k->dtype), ax_shape_str(s2, sizeof s2, k->ndim, k->shape),
                        ax_dtype_name(v->dtype), ax_shape_str(s3, sizeof s3, v->ndim, v->shape));
    if (a->E > AX_ATT_MAXD || a->Ev > AX_ATT_MAXD)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: head dims E %lld, Ev %lld: the CUDA kernel takes at most %d", fn,
                        (long long)a->E, (long long)a->Ev, AX_ATT_MAXD);
    if (!isfinite(scale)) return AX_ERROR(AX_ERR_INVALID, "%s: scale %g is not finite", fn, scale);
    const int64_t tiles = ((a->L > a->S ? a->L : a->S) + AX_ATT_TILE - 1) / AX_ATT_TILE;
    if (*B * tiles > INT32_MAX)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: %lld x %lld tiles exceed the grid", fn, (long long)*B, (long long)tiles);
    a->q = ax_cu_base(q), a->k = ax_cu_base(k), a->v = ax_cu_base(v);
    a->dt = (int)q->dtype;
    a->scale = (float)scale;
    a->causal = causal;
    return AX_OK;
}

/* Launch with `floats` of dynamic shared memory (opting in past 48 KiB). */
template <typename K>
static ax_status ax_cu_att_launch(K kernel, int64_t blocks, int64_t floats, cudaStream_t s, const ax_att_args &a,
                                  const char *what) {
    size_t bytes = (size_t)floats * sizeof(float);
    if (bytes > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
        if (e != cudaSuccess) return ax_cuda_check(e, what);
    }
    kernel<<<(unsigned)blocks, AX_ATT_THREADS, bytes, s>>>(a);
    return ax_cu_launched(what);
}

ax_status ax_cuda_sdpa(ax_tensor *o, ax_tensor *lse, const ax_tensor *q, const ax_tensor *k, const ax_tensor *v,
                       double scale, bool is_causal) {
    const char *fn = "ax_cuda_sdpa";
    char s1[128], s2[128];
    ax_att_args a;
    int64_t B;
    if (ax_cu_att_args_of(fn, &a, &B, q, k, v, scale, is_causal) != AX_OK) return ax_error_status();
    if (!ax_cu_att_3d(o, B, a.L, a.Ev, q->dtype) || !ax_cu_att_lse_ok(lse, B, a.L))
        return AX_ERROR(AX_ERR_INVALID, "%s: o %s, lse %s: want contiguous o [%lld, %lld, %lld] (q's dtype), f32 lse [%lld, %lld]",
                        fn, ax_shape_str(s1, sizeof s1, o->ndim, o->shape), ax_shape_str(s2, sizeof s2, lse->ndim, lse->shape),
                        (long long)B, (long long)a.L, (long long)a.Ev, (long long)B, (long long)a.L);
    if (B == 0 || a.L == 0) return AX_OK;
    cudaStream_t s;
    if (ax_cu_begin(q, &s) != AX_OK) return ax_error_status();
    a.out = (char *)ax_cu_base(o);
    a.lse_out = (float *)ax_cu_base(lse);
    const int64_t pe = a.E + 1, pv = a.Ev + 1, T = AX_ATT_TILE;
    const int64_t blocks = B * ((a.L + T - 1) / T);
    return ax_cu_att_launch(ax_cu_att_fwd_kernel, blocks, 2 * T * pe + T * pv + T * (T + 1), s, a, fn);
}

ax_status ax_cuda_sdpa_backward(ax_tensor *dq, ax_tensor *dk, ax_tensor *dv, const ax_tensor *dout, const ax_tensor *q,
                                const ax_tensor *k, const ax_tensor *v, const ax_tensor *o, const ax_tensor *lse,
                                double scale, bool is_causal) {
    const char *fn = "ax_cuda_sdpa_backward";
    char s1[128], s2[128];
    ax_att_args a;
    int64_t B;
    if (ax_cu_att_args_of(fn, &a, &B, q, k, v, scale, is_causal) != AX_OK) return ax_error_status();
    ax_dtype dt = q->dtype;
    if (!ax_cu_att_3d(o, B, a.L, a.Ev, dt) || !ax_cu_att_3d(dout, B, a.L, a.Ev, dt) || !ax_cu_att_lse_ok(lse, B, a.L))
        return AX_ERROR(AX_ERR_INVALID, "%s: o %s, do %s: want contiguous [%lld, %lld, %lld] of q's dtype and f32 lse",
                        fn, ax_shape_str(s1, sizeof s1, o->ndim, o->shape),
                        ax_shape_str(s2, sizeof s2, dout->ndim, dout->shape), (long long)B, (long long)a.L,
                        (long long)a.Ev);
    if ((dq && !ax_cu_att_3d(dq, B, a.L, a.E, dt)) || (dk && !ax_cu_att_3d(dk, B, a.S, a.E, dt)) ||
        (dv && !ax_cu_att_3d(dv, B, a.S, a.Ev, dt)))
        return AX_ERROR(AX_ERR_INVALID, "%s: dq, dk and dv must be contiguous, of q's dtype and of q's, k's and v's shapes", fn);
    if (B == 0 || (!dq && !dk && !dv)) return AX_OK;
    cudaStream_t s;
    if (ax_cu_begin(q, &s) != AX_OK) return ax_error_status();
    const int32_t dev = q->storage->device.index;
    const int64_t rows = B * a.L;
    float *delta = (float *)ax_cuda_scratch((size_t)(rows > 0 ? rows : 1) * sizeof(float), dev);
    if (!delta) return ax_error_status();
    a.o = ax_cu_base(o), a.dout = ax_cu_base(dout), a.lse = (const float *)ax_cu_base(lse), a.delta = delta;
    a.dq = dq ? (char *)ax_cu_base(dq) : NULL;
    a.dk = dk ? (char *)ax_cu_base(dk) : NULL;
    a.dv = dv ? (char *)ax_cu_base(dv) : NULL;
    ax_status st = AX_OK;
    if (rows > 0) {
        ax_cu_att_delta_kernel<<<ax_cu_blocks(rows), AX_CU_THREADS, 0, s>>>(delta, a.dout, a.o, a.dt, rows, a.Ev);
        st = ax_cu_launched(fn);
    }
    const int64_t pe = a.E + 1, pv = a.Ev + 1, T = AX_ATT_TILE;
    /* with no queries the kernels still run (and write zeros) */
    if (st == AX_OK && (dk || dv) && a.S > 0)
        st = ax_cu_att_launch(ax_cu_att_dkdv_kernel, B * ((a.S + T - 1) / T), 2 * T * pe + 2 * T * pv + 2 * T + 2 * T * (T + 1),
                              s, a, fn);
    if (st == AX_OK && dq && a.L > 0)
        st = ax_cu_att_launch(ax_cu_att_dq_kernel, B * ((a.L + T - 1) / T), 2 * T * pe + 2 * T * pv + 2 * T + T * (T + 1), s,
                              a, fn);
    ax_cuda_scratch_free(delta, dev);
    return st;
}
