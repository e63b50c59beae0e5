/* Convolutions through cuDNN and matmul through cuBLAS.
 *
 * Convolutions: x, w and y share one dtype (f32, bf16 or f16; the half
 * types accumulate in f32 on tensor cores, f32 uses TF32 unless
 * AXON_CUDA_TF32=0). Activations may be any strides cuDNN accepts (NCDHW
 * or NDHWC-strided views go straight in); the filter must be packed NCDHW
 * or NDHWC (channels last), otherwise it is packed first. A transposed
 * convolution is the data gradient of the matching convolution, and its
 * data gradient is that convolution's forward pass.
 *
 * Algorithms: on first use of a problem (shapes, strides, dtype, geometry)
 * cuDNN benchmarks its algorithms (cudnnFind*, which synchronises once);
 * the fastest one whose workspace fits AXON_CUDA_WORKSPACE_MB (default 1024)
 * is cached for the life of the process. AXON_CUDA_CONV_BENCHMARK=0 uses
 * cuDNN's heuristics instead (no benchmark, no synchronisation); so does a
 * benchmark that fails (it allocates outside axon's memory pool).
 *
 * Matmul: cublasGemmStridedBatchedEx on the row-major operands seen as
 * column-major transposes; f32 output, or the inputs' half type.
 *
 * Linear: cublasLtMatmul computing y^T = w x^T (row-major y is column-major
 * y^T) with the bias and activation in its epilogue (BIAS, RELU_BIAS,
 * GELU_BIAS, or GELU_AUX_BIAS when the pre-activation is kept for backward:
 * cuBLASLt's GELU is the tanh form). Backward: dpre = dy * act'(pre) by the
 * unary-gradient kernel, then dx = dpre w and dw += dpre^T x as two Lt
 * GEMMs, the latter with the BGRADB epilogue summing db (f32 operands;
 * half operands and a missing dw sum db with the bias-gradient kernel).
 * The DRELU/DGELU_BGRAD epilogues apply an activation gradient to a GEMM's
 * *output*, i.e. they would fuse into the next layer's backward, not this
 * one's, so they are not used. The algorithm comes from
 * cublasLtMatmulAlgoGetHeuristic with the operands' real alignment; when it
 * has none for a fused epilogue (e.g. the aux leading dimension N not a
 * multiple of 8) the layer runs unfused: a plain GEMM then the bias and
 * activation kernels. Everything is queued on the device's stream.
 */
#include "config.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* cublasLt.h declares cublasLtLoggerForceDisable() without a prototype */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <cublasLt.h>
#pragma GCC diagnostic pop
#include <cublas_v2.h>
#ifdef AX_HAVE_CUDNN
#include <cudnn.h>
#endif

#include "cuda_internal.h"

static pthread_mutex_t ax_dnn_lock = PTHREAD_MUTEX_INITIALIZER;
static cublasHandle_t ax_blas[AX_CUDA_MAX_DEVICES];

static char *ax_dnn_ptr(const ax_tensor *t) {
    return (char *)t->storage->data + (size_t)t->offset * ax_dtype_size(t->dtype);
}

static ax_status ax_blas_fail(cublasStatus_t s, const char *what) {
    return AX_ERROR(s == CUBLAS_STATUS_ALLOC_FAILED ? AX_ERR_NOMEM : AX_ERR_IO, "%s: cuBLAS error %d (%s)", what,
                    (int)s, cublasGetStatusString(s));
}

/* Device d's cuBLAS handle on its stream (current device = d). */
static cublasHandle_t ax_blas_handle(int32_t d, cudaStream_t s) {
    pthread_mutex_lock(&ax_dnn_lock);
    cublasHandle_t h = ax_blas[d];
    cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
    if (!h) {
        st = cublasCreate(&h);
        if (st == CUBLAS_STATUS_SUCCESS) st = cublasSetStream(h, s);
        if (st == CUBLAS_STATUS_SUCCESS)
            ax_blas[d] = h;
        else
            ax_blas_fail(st, "cublasCreate"), h = NULL;
    }
    pthread_mutex_unlock(&ax_dnn_lock);
    return h;
}

static bool ax_dnn_half(ax_dtype dt) { return dt == AX_DTYPE_BF16 || dt == AX_DTYPE_F16; }

static cudaDataType_t ax_blas_type(ax_dtype dt) {
    return dt == AX_DTYPE_BF16 ? CUDA_R_16BF : dt == AX_DTYPE_F16 ? CUDA_R_16F : CUDA_R_32F;
}

ax_status ax_cuda_matmul(ax_tensor *out, const ax_tensor *a, const ax_tensor *b, bool ta, bool tb, float alpha,
                         float beta) {
    const char *fn = "ax_cuda_matmul";
    if (a->ndim != 3 || b->ndim != 3 || out->ndim != 3 || !ax_tensor_is_contiguous(a) || !ax_tensor_is_contiguous(b) ||
        !ax_tensor_is_contiguous(out))
        return AX_ERROR(AX_ERR_INVALID, "%s: want contiguous 3-D operands [B, M, K] x [B, K, N]", fn);
    bool ok_dt = (a->dtype == AX_DTYPE_F32 || ax_dnn_half(a->dtype)) && b->dtype == a->dtype &&
                 (out->dtype == AX_DTYPE_F32 || out->dtype == a->dtype);
    if (!ok_dt)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: a %s, b %s into out %s not supported on CUDA (f32, or bf16/f16 inputs "
                        "with f32 or same-type output)", fn, ax_dtype_name(a->dtype), ax_dtype_name(b->dtype),
                        ax_dtype_name(out->dtype));
    int64_t bt = out->shape[0], m = out->shape[1], n = out->shape[2];
    int64_t k = ta ? a->shape[1] : a->shape[2];
    int64_t am = ta ? a->shape[2] : a->shape[1], bk = tb ? b->shape[2] : b->shape[1], bn = tb ? b->shape[1] : b->shape[2];
    if (am != m || bk != k || bn != n || (a->shape[0] != bt && a->shape[0] != 1) || (b->shape[0] != bt && b->shape[0] != 1))
        return AX_ERROR(AX_ERR_INVALID, "%s: shapes do not chain ([%lld, %lld] x [%lld, %lld] -> [%lld, %lld])", fn,
                        (long long)am, (long long)k, (long long)bk, (long long)bn, (long long)m, (long long)n);
    if (m > INT_MAX || n > INT_MAX || k > INT_MAX || bt > INT_MAX)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: a dimension exceeds cuBLAS's int range", fn);
    if (bt == 0 || m == 0 || n == 0) return AX_OK;
    int32_t d = out->storage->device.index;
    cudaStream_t s = ax_cuda_stream(d);
    if (!s) return ax_error_status();
    if (k == 0) { /* an empty product: out = beta * out */
        if (beta == 0) return ax_cuda_fill(out, 0.0);
        const double p[2] = {beta, 0.0};
        return beta == 1 ? AX_OK : ax_cuda_unary(AX_UNARY_AFFINE, out, out, p);
    }
    cublasHandle_t h = ax_blas_handle(d, s);
    if (!h) return ax_error_status();
    cublasComputeType_t ct = CUBLAS_COMPUTE_32F;
    if (a->dtype == AX_DTYPE_F32 && ax_cuda_allow_tf32()) ct = CUBLAS_COMPUTE_32F_FAST_TF32;
    long long sa = a->shape[0] == 1 ? 0 : m * k, sb = b->shape[0] == 1 ? 0 : k * n, sc = m * n;
    cublasStatus_t st = cublasGemmStridedBatchedEx(
        h, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n, (int)m, (int)k, &alpha,
        ax_dnn_ptr(b), ax_blas_type(b->dtype), tb ? (int)k : (int)n, sb, ax_dnn_ptr(a), ax_blas_type(a->dtype),
        ta ? (int)m : (int)k, sa, &beta, ax_dnn_ptr(out), ax_blas_type(out->dtype), (int)n, sc, (int)bt, ct,
        CUBLAS_GEMM_DEFAULT);
    return st == CUBLAS_STATUS_SUCCESS ? AX_OK : ax_blas_fail(st, fn);
}

#ifdef AX_HAVE_CUDNN

/* ---- cuDNN -------------------------------------------------------------------- */

static cudnnHandle_t ax_dnn[AX_CUDA_MAX_DEVICES];

enum { AX_CV_FWD, AX_CV_BWD_DATA, AX_CV_BWD_FILTER };

/* One cuDNN problem, in convolution space: xin -> yout through w. */
typedef struct ax_cv_key {
    int kind, dtype, math, nhwc_w;
    int64_t x[5], xs[5], y[5], ys[5], w[5];
    int64_t stride[3], pad[3], dil[3], groups;
} ax_cv_key;

typedef struct ax_cv_choice {
    ax_cv_key key;
    int algo;
    size_t workspace;
} ax_cv_choice;

#define AX_CV_CACHE 512
static ax_cv_choice ax_cv_cache[AX_CV_CACHE];
static int ax_cv_cached;

static ax_status ax_dnn_fail(cudnnStatus_t s, const char *what) {
    return AX_ERROR(s == CUDNN_STATUS_ALLOC_FAILED ? AX_ERR_NOMEM
                    : s == CUDNN_STATUS_NOT_SUPPORTED ? AX_ERR_UNSUPPORTED
                                                       : AX_ERR_IO,
                    "%s: cuDNN error %d (%s)", what, (int)s, cudnnGetErrorString(s));
}

static cudnnHandle_t ax_dnn_handle(int32_t d, cudaStream_t s) {
    pthread_mutex_lock(&ax_dnn_lock);
    cudnnHandle_t h = ax_dnn[d];
    if (!h) {
        cudnnStatus_t st = cudnnCreate(&h);
        if (st == CUDNN_STATUS_SUCCESS) st = cudnnSetStream(h, s);
        if (st == CUDNN_STATUS_SUCCESS)
            ax_dnn[d] = h;
        else
            ax_dnn_fail(st, "cudnnCreate"), h = NULL;
    }
    pthread_mutex_unlock(&ax_dnn_lock);
    return h;
}

static size_t ax_cv_workspace_limit(void) {
    const char *env = getenv("AXON_CUDA_WORKSPACE_MB");
    long mb = env && *env ? strtol(env, NULL, 10) : 1024;
    return (size_t)(mb < 0 ? 0 : mb) << 20;
}

static bool ax_cv_benchmark(void) {
    const char *env = getenv("AXON_CUDA_CONV_BENCHMARK");
    return !(env && strcmp(env, "0") == 0);
}

static cudnnDataType_t ax_dnn_type(int dt) {
    return dt == AX_DTYPE_BF16 ? CUDNN_DATA_BFLOAT16 : dt == AX_DTYPE_F16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
}

/* Descriptors of one problem. */
typedef struct ax_cv_desc {
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t c;
} ax_cv_desc;

static void ax_cv_desc_free(ax_cv_desc *d) {
    if (d->x) cudnnDestroyTensorDescriptor(d->x);
    if (d->y) cudnnDestroyTensorDescriptor(d->y);
    if (d->w) cudnnDestroyFilterDescriptor(d->w);
    if (d->c) cudnnDestroyConvolutionDescriptor(d->c);
}

static cudnnStatus_t ax_cv_tensor(cudnnTensorDescriptor_t *t, int dt, const int64_t *dims, const int64_t *strides) {
    int di[5], si[5];
    for (int i = 0; i < 5; i++) di[i] = (int)dims[i], si[i] = (int)strides[i];
    cudnnStatus_t s = cudnnCreateTensorDescriptor(t);
    return s == CUDNN_STATUS_SUCCESS ? cudnnSetTensorNdDescriptor(*t, ax_dnn_type(dt), 5, di, si) : s;
}

static cudnnStatus_t ax_cv_desc_init(ax_cv_desc *d, const ax_cv_key *k) {
    memset(d, 0, sizeof *d);
    int wd[5], pad[3], str[3], dil[3];
    for (int i = 0; i < 5; i++) wd[i] = (int)k->w[i];
    for (int i = 0; i < 3; i++) pad[i] = (int)k->pad[i], str[i] = (int)k->stride[i], dil[i] = (int)k->dil[i];
    cudnnStatus_t s = ax_cv_tensor(&d->x, k->dtype, k->x, k->xs);
    if (s == CUDNN_STATUS_SUCCESS) s = ax_cv_tensor(&d->y, k->dtype, k->y, k->ys);
    if (s == CUDNN_STATUS_SUCCESS) s = cudnnCreateFilterDescriptor(&d->w);
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnSetFilterNdDescriptor(d->w, ax_dnn_type(k->dtype), k->nhwc_w ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW, 5, wd);
    if (s == CUDNN_STATUS_SUCCESS) s = cudnnCreateConvolutionDescriptor(&d->c);
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnSetConvolutionNdDescriptor(d->c, 3, pad, str, dil, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT);
    if (s == CUDNN_STATUS_SUCCESS) s = cudnnSetConvolutionGroupCount(d->c, (int)k->groups);
    if (s == CUDNN_STATUS_SUCCESS) s = cudnnSetConvolutionMathType(d->c, (cudnnMathType_t)k->math);
    return s;
}

#define AX_CV_ALGOS 16

/* Pick (or recall) the algorithm of a problem. */
static ax_status ax_cv_choose(cudnnHandle_t h, const ax_cv_key *k, const ax_cv_desc *d, int *algo, size_t *ws) {
    pthread_mutex_lock(&ax_dnn_lock);
    for (int i = 0; i < ax_cv_cached; i++)
        if (memcmp(&ax_cv_cache[i].key, k, sizeof *k) == 0) {
            *algo = ax_cv_cache[i].algo;
            *ws = ax_cv_cache[i].workspace;
            pthread_mutex_unlock(&ax_dnn_lock);
            return AX_OK;
        }
    pthread_mutex_unlock(&ax_dnn_lock);
    size_t limit = ax_cv_workspace_limit();
    int n = 0, best = -1;
    size_t best_ws = 0;
    cudnnStatus_t s = CUDNN_STATUS_SUCCESS;
    /* benchmark first; heuristics when asked to, or when the benchmark
     * itself fails (it allocates outside the pool, which may hold the memory) */
    for (int bench = ax_cv_benchmark(); bench >= 0 && best < 0; bench--) {
        if (k->kind == AX_CV_FWD) {
            cudnnConvolutionFwdAlgoPerf_t perf[AX_CV_ALGOS];
            s = bench ? cudnnFindConvolutionForwardAlgorithm(h, d->x, d->w, d->c, d->y, AX_CV_ALGOS, &n, perf)
                      : cudnnGetConvolutionForwardAlgorithm_v7(h, d->x, d->w, d->c, d->y, AX_CV_ALGOS, &n, perf);
            for (int i = 0; s == CUDNN_STATUS_SUCCESS && i < n && best < 0; i++)
                if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= limit) best = perf[i].algo, best_ws = perf[i].memory;
        } else if (k->kind == AX_CV_BWD_DATA) {
            cudnnConvolutionBwdDataAlgoPerf_t perf[AX_CV_ALGOS];
            s = bench ? cudnnFindConvolutionBackwardDataAlgorithm(h, d->w, d->y, d->c, d->x, AX_CV_ALGOS, &n, perf)
                      : cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d->w, d->y, d->c, d->x, AX_CV_ALGOS, &n, perf);
            for (int i = 0; s == CUDNN_STATUS_SUCCESS && i < n && best < 0; i++)
                if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= limit) best = perf[i].algo, best_ws = perf[i].memory;
        } else {
            cudnnConvolutionBwdFilterAlgoPerf_t perf[AX_CV_ALGOS];
            s = bench ? cudnnFindConvolutionBackwardFilterAlgorithm(h, d->x, d->y, d->c, d->w, AX_CV_ALGOS, &n, perf)
                      : cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d->x, d->y, d->c, d->w, AX_CV_ALGOS, &n, perf);
            for (int i = 0; s == CUDNN_STATUS_SUCCESS && i < n && best < 0; i++)
                if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= limit) best = perf[i].algo, best_ws = perf[i].memory;
        }
        if (bench && s != CUDNN_STATUS_SUCCESS) cudaGetLastError();
    }
    if (s != CUDNN_STATUS_SUCCESS) return ax_dnn_fail(s, "choosing a convolution algorithm");
    if (best < 0)
        return AX_ERROR(AX_ERR_UNSUPPORTED,
                        "cuDNN has no algorithm for this %s convolution problem within a %zu MiB workspace "
                        "(AXON_CUDA_WORKSPACE_MB)", ax_dtype_name((ax_dtype)k->dtype), limit >> 20);
    pthread_mutex_lock(&ax_dnn_lock);
    if (ax_cv_cached < AX_CV_CACHE) ax_cv_cache[ax_cv_cached++] = (ax_cv_choice){*k, best, best_ws};
    pthread_mutex_unlock(&ax_dnn_lock);
    *algo = best;
    *ws = best_ws;
    return AX_OK;
}

/* Run one cuDNN call: out = alpha * op(in, w...) + beta * out. */
static ax_status ax_cv_call(int32_t dev, const ax_cv_key *k, void *xp, void *wp, void *yp, float beta) {
    cudaStream_t s = ax_cuda_stream(dev);
    if (!s) return ax_error_status();
    cudnnHandle_t h = ax_dnn_handle(dev, s);
    if (!h) return ax_error_status();
    ax_cv_desc d;
    cudnnStatus_t cs = ax_cv_desc_init(&d, k);
    if (cs != CUDNN_STATUS_SUCCESS) {
        ax_cv_desc_free(&d);
        return ax_dnn_fail(cs, "describing a convolution");
    }
    int algo;
    size_t ws;
    ax_status st = ax_cv_choose(h, k, &d, &algo, &ws);
    void *wsp = NULL;
    if (st == AX_OK && ws) {
        wsp = ax_cuda_scratch(ws, dev);
        if (!wsp) st = ax_error_status();
    }
    const float alpha = 1.0f;
    if (st == AX_OK) {
        if (k->kind == AX_CV_FWD)
            cs = cudnnConvolutionForward(h, &alpha, d.x, xp, d.w, wp, d.c, (cudnnConvolutionFwdAlgo_t)algo, wsp, ws, &beta,
                                         d.y, yp);
        else if (k->kind == AX_CV_BWD_DATA)
            cs = cudnnConvolutionBackwardData(h, &alpha, d.w, wp, d.y, yp, d.c, (cudnnConvolutionBwdDataAlgo_t)algo, wsp,
                                              ws, &beta, d.x, xp);
        else
            cs = cudnnConvolutionBackwardFilter(h, &alpha, d.x, xp, d.y, yp, d.c, (cudnnConvolutionBwdFilterAlgo_t)algo,
                                                wsp, ws, &beta, d.w, wp);
        if (cs != CUDNN_STATUS_SUCCESS) st = ax_dnn_fail(cs, "running a convolution");
    }
    if (wsp) ax_cuda_scratch_free(wsp, dev);
    ax_cv_desc_free(&d);
    return st;
}

/* Is w packed channels-last ([Co, Ci, kD, kH, kW] with Ci fastest)? */
static bool ax_cv_is_nhwc(const ax_tensor *w) {
    const int64_t *sh = w->shape, *st = w->stride;
    return st[1] == 1 && st[4] == sh[1] && st[3] == sh[4] * sh[1] && st[2] == sh[3] * sh[4] * sh[1] &&
           st[0] == sh[2] * sh[3] * sh[4] * sh[1];
}

static bool ax_cv_fits_int(const ax_tensor *t) {
    for (int i = 0; i < 5; i++)
        if (t->shape[i] > INT_MAX || t->stride[i] > INT_MAX || t->stride[i] < 0) return false;
    return true;
}

/* The key of a problem with conv-space input xin, output yout and filter w. */
static void ax_cv_key_init(ax_cv_key *k, int kind, const ax_tensor *xin, const ax_tensor *yout, const ax_tensor *w,
                           const ax_conv_params *p) {
    memset(k, 0, sizeof *k);
    k->kind = kind;
    k->dtype = (int)xin->dtype;
    k->math = ax_dnn_half(xin->dtype) ? CUDNN_TENSOR_OP_MATH : ax_cuda_allow_tf32() ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
    k->nhwc_w = !ax_tensor_is_contiguous(w) && ax_cv_is_nhwc(w);
    for (int i = 0; i < 5; i++) {
        k->x[i] = xin->shape[i], k->xs[i] = xin->stride[i];
        k->y[i] = yout->shape[i], k->ys[i] = yout->stride[i];
    }
    /* cuDNN's filter dims are always given in KCDHW order, whatever the format */
    for (int i = 0; i < 5; i++) k->w[i] = w->shape[i];
    for (int i = 0; i < 3; i++) k->stride[i] = p->stride[i], k->pad[i] = p->padding[i], k->dil[i] = p->dilation[i];
    k->groups = p->groups;
}

static ax_status ax_cv_check(const char *fn, const ax_tensor *const *ts, int n) {
    ax_dtype dt = ts[0]->dtype;
    for (int i = 0; i < n; i++) {
        if (!ts[i]) continue;
        if (ts[i]->ndim != 5)
            return AX_ERROR(AX_ERR_INVALID, "%s: operand %d has %d dims (want 5: NCDHW)", fn, i, ts[i]->ndim);
        if (ts[i]->dtype != dt)
            return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: operands mix %s and %s (cuDNN wants one dtype)", fn,
                            ax_dtype_name(dt), ax_dtype_name(ts[i]->dtype));
        if (!ax_cv_fits_int(ts[i])) return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: operand %d exceeds cuDNN's int range", fn, i);
    }
    if (dt != AX_DTYPE_F32 && !ax_dnn_half(dt))
        return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: dtype %s not supported on CUDA (f32, bf16, f16)", fn, ax_dtype_name(dt));
    return AX_OK;
}

/* w packed (NCDHW or NDHWC) as cuDNN needs: w itself, or a contiguous copy in *tmp. */
static ax_status ax_cv_pack_w(const ax_tensor *w, ax_tensor *hdr, ax_storage *st, void **scratch) {
    *hdr = *w;
    *scratch = NULL;
    if (ax_tensor_is_contiguous(w) || ax_cv_is_nhwc(w)) return AX_OK;
    *st = *w->storage;
    st->data = *scratch = ax_cuda_scratch(ax_tensor_nbytes(w), w->storage->device.index);
    if (!st->data) return ax_error_status();
    hdr->storage = st;
    hdr->offset = 0;
    int64_t s = 1;
    for (int d = 4; d >= 0; d--) hdr->stride[d] = s, s *= w->shape[d];
    return ax_cuda_copy(hdr, w);
}

static ax_status ax_cv_forward(const char *fn, bool transposed, ax_tensor *y, const ax_tensor *x, const ax_tensor *w,
                               const ax_tensor *b, const ax_conv_params *p) {
    const ax_tensor *ts[] = {y, x, w};
    if (ax_cv_check(fn, ts, 3) != AX_OK) return ax_error_status();
    if (ax_tensor_numel(y) == 0) return AX_OK;
    int32_t dev = y->storage->device.index;
    ax_tensor wh;
    ax_storage wst;
    void *wscr;
    ax_status st = ax_cv_pack_w(w, &wh, &wst, &wscr);
    ax_cv_key k;
    if (st == AX_OK && !transposed) {
        ax_cv_key_init(&k, AX_CV_FWD, x, y, &wh, p);
        st = ax_cv_call(dev, &k, ax_dnn_ptr(x), ax_dnn_ptr(&wh), ax_dnn_ptr(y), 0.0f);
    } else if (st == AX_OK) {
        /* y = conv_transpose(x) = d(conv: y-space -> x-space)/d(input) applied to x */
        ax_cv_key_init(&k, AX_CV_BWD_DATA, y, x, &wh, p);
        st = ax_cv_call(dev, &k, ax_dnn_ptr(y), ax_dnn_ptr(&wh), ax_dnn_ptr(x), 0.0f);
    }
    if (wscr) ax_cuda_scratch_free(wscr, dev);
    if (st == AX_OK && b) st = ax_cuda_bias_add(y, b);
    return st;
}

static ax_status ax_cv_backward(const char *fn, bool transposed, ax_tensor *dx, ax_tensor *dw, ax_tensor *db,
                                const ax_tensor *dy, const ax_tensor *x, const ax_tensor *w, const ax_conv_params *p) {
    const ax_tensor *ts[] = {dy, x, w, dx, dw};
    if (ax_cv_check(fn, ts, 5) != AX_OK) return ax_error_status();
    int32_t dev = dy->storage->device.index;
    ax_status st = AX_OK;
    ax_cv_key k;
    if (dx && ax_tensor_numel(dx) > 0) {
        ax_tensor wh;
        ax_storage wst;
        void *wscr;
        st = ax_cv_pack_w(w, &wh, &wst, &wscr);
        if (st == AX_OK && !transposed) {
            ax_cv_key_init(&k, AX_CV_BWD_DATA, dx, dy, &wh, p);
            st = ax_cv_call(dev, &k, ax_dnn_ptr(dx), ax_dnn_ptr(&wh), ax_dnn_ptr(dy), 0.0f);
        } else if (st == AX_OK) {
            ax_cv_key_init(&k, AX_CV_FWD, dy, dx, &wh, p);
            st = ax_cv_call(dev, &k, ax_dnn_ptr(dy), ax_dnn_ptr(&wh), ax_dnn_ptr(dx), 0.0f);
        }
        if (wscr) ax_cuda_scratch_free(wscr, dev);
    }
    if (st == AX_OK && dw && ax_tensor_numel(dw) > 0) {
        if (!ax_tensor_is_contiguous(dw) && !ax_cv_is_nhwc(dw))
            return AX_ERROR(AX_ERR_INVALID, "%s: dw must be packed NCDHW or NDHWC", fn);
        /* dw += : beta 1 */
        if (!transposed) {
            ax_cv_key_init(&k, AX_CV_BWD_FILTER, x, dy, dw, p);
            st = ax_cv_call(dev, &k, ax_dnn_ptr(x), ax_dnn_ptr(dw), ax_dnn_ptr(dy), 1.0f);
        } else {
            ax_cv_key_init(&k, AX_CV_BWD_FILTER, dy, x, dw, p);
            st = ax_cv_call(dev, &k, ax_dnn_ptr(dy), ax_dnn_ptr(dw), ax_dnn_ptr(x), 1.0f);
        }
    }
    if (st == AX_OK && db) {
        if (!ax_tensor_is_contiguous(dy)) return AX_ERROR(AX_ERR_INVALID, "%s: db needs a contiguous dy", fn);
        st = ax_cuda_bias_grad(db, dy);
    }
    return st;
}

ax_status ax_cuda_conv3d(ax_tensor *y, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                         const ax_conv_params *p) {
    return ax_cv_forward("ax_cuda_conv3d", false, y, x, w, b, p);
}

ax_status ax_cuda_conv3d_backward(ax_tensor *dx, ax_tensor *dw, ax_tensor *db, const ax_tensor *dy, const ax_tensor *x,
                                  const ax_tensor *w, const ax_conv_params *p) {
    return ax_cv_backward("ax_cuda_conv3d_backward", false, dx, dw, db, dy, x, w, p);
}

ax_status ax_cuda_conv_transpose3d(ax_tensor *y, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                                   const ax_conv_params *p) {
    return ax_cv_forward("ax_cuda_conv_transpose3d", true, y, x, w, b, p);
}

ax_status ax_cuda_conv_transpose3d_backward(ax_tensor *dx, ax_tensor *dw, ax_tensor *db, const ax_tensor *dy,
                                            const ax_tensor *x, const ax_tensor *w, const ax_conv_params *p) {
    return ax_cv_backward("ax_cuda_conv_transpose3d_backward", true, dx, dw, db, dy, x, w, p);
}

#else /* no cuDNN: convolutions are unsupported on CUDA, with a clear reason */

static ax_status ax_cv_missing(const char *fn) {
    return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: this CUDA backend was built without cuDNN (configure --with-cudnn)", fn);
}
ax_status ax_cuda_conv3d(ax_tensor *y, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                         const ax_conv_params *p) {
    return ax_cv_missing("ax_cuda_conv3d");
}
ax_status ax_cuda_conv3d_backward(ax_tensor *dx, ax_tensor *dw, ax_tensor *db, const ax_tensor *dy, const ax_tensor *x,
                                  const ax_tensor *w, const ax_conv_params *p) {
    return ax_cv_missing("ax_cuda_conv3d_backward");
}
ax_status ax_cuda_conv_transpose3d(ax_tensor *y, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                                   const ax_conv_params *p) {
    return ax_cv_missing("ax_cuda_conv_transpose3d");
}
ax_status ax_cuda_conv_transpose3d_backward(ax_tensor *dx, ax_tensor *dw, ax_tensor *db, const ax_tensor *dy,
                                            const ax_tensor *x, const ax_tensor *w, const ax_conv_params *p) {
    return ax_cv_missing("ax_cuda_conv_transpose3d_backward");
}

#endif

/* ---- linear through cuBLASLt --------------------------------------------------- */

static cublasLtHandle_t ax_lt[AX_CUDA_MAX_DEVICES];

/* Device d's cuBLASLt handle (Lt calls take the stream per call). */
static cublasLtHandle_t ax_lt_handle(int32_t d) {
    pthread_mutex_lock(&ax_dnn_lock);
    cublasLtHandle_t h = ax_lt[d];
    if (!h) {
        cublasStatus_t st = cublasLtCreate(&h);
        if (st == CUBLAS_STATUS_SUCCESS)
            ax_lt[d] = h;
        else
            ax_blas_fail(st, "cublasLtCreate"), h = NULL;
    }
    pthread_mutex_unlock(&ax_dnn_lock);
    return h;
}

/* Workspace the heuristic may ask for (llm.c uses 32 MiB on Hopper). */
#define AX_LT_WORKSPACE ((size_t)32 << 20)

/* Largest power of two (<= 256) dividing the address: what the heuristic
 * must assume of a pointer (views of a pool block may be less aligned). */
static uint32_t ax_lt_align(const void *p) {
    uintptr_t a = (uintptr_t)p;
    uint32_t al = 256;
    while (al > 1 && a % al) al /= 2;
    return al;
}

/* One column-major GEMM D[m, n] = op(A) op(B) (+ beta C, C = D) with an
 * epilogue. A is stored [ta ? k : m] x [ta ? m : k] with leading dim lda, B
 * likewise, D with ldd. bias/aux: [optional] epilogue pointers (aux_ld).
 * AX_ERR_UNSUPPORTED (no error message kept) when cuBLASLt has no algorithm
 * for this epilogue and layout, so the caller can run it unfused. */
typedef struct ax_lt_gemm {
    bool ta, tb;
    int64_t m, n, k, lda, ldb, ldd;
    const void *a, *b;
    void *d;
    float beta;
    cublasLtEpilogue_t epi;
    void *bias, *aux;
    int64_t aux_ld;
    ax_dtype dtype; /* of A, B, D */
} ax_lt_gemm;

static ax_status ax_lt_run(int32_t dev, cudaStream_t s, const ax_lt_gemm *g) {
    cublasLtHandle_t h = ax_lt_handle(dev);
    if (!h) return ax_error_status();
    cudaDataType_t dt = ax_blas_type(g->dtype);
    cublasComputeType_t ct = g->dtype == AX_DTYPE_F32 && ax_cuda_allow_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                                             : CUBLAS_COMPUTE_32F;
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, ld = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    cublasOperation_t ta = g->ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb = g->tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    uint32_t epi = (uint32_t)g->epi;
    size_t wsmax = AX_LT_WORKSPACE;
    uint32_t al_a = ax_lt_align(g->a), al_b = ax_lt_align(g->b), al_d = ax_lt_align(g->d);
    cublasStatus_t st = cublasLtMatmulDescCreate(&op, ct, CUDA_R_32F);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
    if (st == CUBLAS_STATUS_SUCCESS && g->bias)
        st = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g->bias, sizeof g->bias);
    if (st == CUBLAS_STATUS_SUCCESS && g->aux)
        st = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &g->aux, sizeof g->aux);
    if (st == CUBLAS_STATUS_SUCCESS && g->aux)
        st = cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &g->aux_ld, sizeof g->aux_ld);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatrixLayoutCreate(&la, dt, (uint64_t)(g->ta ? g->k : g->m), (uint64_t)(g->ta ? g->m : g->k), g->lda);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatrixLayoutCreate(&lb, dt, (uint64_t)(g->tb ? g->n : g->k), (uint64_t)(g->tb ? g->k : g->n), g->ldb);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatrixLayoutCreate(&ld, dt, (uint64_t)g->m, (uint64_t)g->n, g->ldd);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatmulPreferenceCreate(&pref);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsmax, sizeof wsmax);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof al_d);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof al_d);
    ax_status res = AX_OK;
    if (st != CUBLAS_STATUS_SUCCESS) res = ax_blas_fail(st, "describing a cuBLASLt matmul");
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    if (res == AX_OK) {
        st = cublasLtMatmulAlgoGetHeuristic(h, op, la, lb, ld, ld, pref, 1, &heur, &found);
        /* no algorithm for this epilogue/layout: the caller runs it unfused */
        if (st == CUBLAS_STATUS_NOT_SUPPORTED || (st == CUBLAS_STATUS_SUCCESS && found == 0)) res = AX_ERR_UNSUPPORTED;
        else if (st != CUBLAS_STATUS_SUCCESS) res = ax_blas_fail(st, "cublasLtMatmulAlgoGetHeuristic");
    }
    void *ws = NULL;
    if (res == AX_OK && heur.workspaceSize > 0) {
        ws = ax_cuda_scratch(heur.workspaceSize, dev);
        if (!ws) res = ax_error_status();
    }
    if (res == AX_OK) {
        const float alpha = 1.0f;
        st = cublasLtMatmul(h, op, &alpha, g->a, la, g->b, lb, &g->beta, g->d, ld, g->d, ld, &heur.algo, ws,
                            heur.workspaceSize, s);
        if (st == CUBLAS_STATUS_NOT_SUPPORTED) res = AX_ERR_UNSUPPORTED;
        else if (st != CUBLAS_STATUS_SUCCESS) res = ax_blas_fail(st, "cublasLtMatmul");
    }
    if (ws) ax_cuda_scratch_free(ws, dev);
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    if (ld) cublasLtMatrixLayoutDestroy(ld);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
    return res;
}

static bool ax_lt_2d(const ax_tensor *t, int64_t rows, int64_t cols, ax_dtype dt) {
    return t->ndim == 2 && t->shape[0] == rows && t->shape[1] == cols && t->dtype == dt && ax_tensor_is_contiguous(t) &&
           t->storage->device.type == AX_DEVICE_CUDA;
}

static bool ax_lt_dtype_ok(ax_dtype dt) { return dt == AX_DTYPE_F32 || ax_dnn_half(dt); }

/* A contiguous [rows, cols] header of dtype dt over scratch memory (freed
 * by the caller with ax_cuda_scratch_free(st->data)). */
static ax_status ax_lt_scratch_2d(ax_tensor *hdr, ax_storage *st, const ax_tensor *like, int64_t rows, int64_t cols,
                                  ax_dtype dt) {
    *hdr = *like;
    *st = *like->storage;
    size_t nbytes = (size_t)(rows * cols) * ax_dtype_size(dt);
    st->data = ax_cuda_scratch(nbytes, like->storage->device.index);
    if (!st->data) return ax_error_status();
    st->nbytes = nbytes;
    hdr->storage = st;
    hdr->dtype = dt;
    hdr->offset = 0;
    hdr->ndim = 2;
    hdr->shape[0] = rows, hdr->shape[1] = cols;
    hdr->stride[0] = cols, hdr->stride[1] = 1;
    return AX_OK;
}

/* The unfused forward: dst = x w^T (+ b) by a plain GEMM (K = 0: zeros). */
static ax_status ax_lt_affine(int32_t dev, cudaStream_t s, ax_tensor *dst, const ax_tensor *x, const ax_tensor *w,
                              const ax_tensor *b, int64_t m, int64_t n, int64_t k) {
    ax_status st = AX_OK;
    if (k == 0)
        st = ax_cuda_fill(dst, 0.0);
    else {
        ax_lt_gemm g = {.ta = true, .m = n, .n = m, .k = k, .lda = k, .ldb = k, .ldd = n, .a = ax_dnn_ptr(w),
                        .b = ax_dnn_ptr(x), .d = ax_dnn_ptr(dst), .epi = b ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT,
                        .bias = b ? ax_dnn_ptr(b) : NULL, .dtype = x->dtype};
        st = ax_lt_run(dev, s, &g);
        if (st == AX_ERR_UNSUPPORTED && b) { /* bias by its kernel */
            g.epi = CUBLASLT_EPILOGUE_DEFAULT, g.bias = NULL;
            st = ax_lt_run(dev, s, &g);
            if (st == AX_OK) return ax_cuda_bias_add(dst, b);
        }
        if (st == AX_ERR_UNSUPPORTED) return AX_ERROR(AX_ERR_UNSUPPORTED, "ax_cuda_linear: cuBLASLt has no algorithm "
                                                      "for %s [%lld, %lld] x [%lld, %lld]^T", ax_dtype_name(x->dtype),
                                                      (long long)m, (long long)k, (long long)n, (long long)k);
        return st;
    }
    if (st == AX_OK && b) st = ax_cuda_bias_add(dst, b);
    return st;
}

static ax_unary_op ax_lt_unary(ax_linear_act_op act) {
    return act == AX_LINEAR_ACT_RELU ? AX_UNARY_RELU : AX_UNARY_GELU_TANH;
}

ax_status ax_cuda_linear(ax_tensor *y, ax_tensor *pre, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                         ax_linear_act_op act) {
    const char *fn = "ax_cuda_linear";
    ax_dtype dt = x->dtype;
    int64_t m = x->ndim == 2 ? x->shape[0] : -1, k = x->ndim == 2 ? x->shape[1] : -1, n = w->ndim == 2 ? w->shape[0] : -1;
    if (!ax_lt_dtype_ok(dt))
        return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: dtype %s not supported on CUDA (f32, bf16, f16)", fn, ax_dtype_name(dt));
    bool ok = m >= 0 && n >= 0 && ax_lt_2d(x, m, k, dt) && ax_lt_2d(w, n, k, dt) && ax_lt_2d(y, m, n, dt) &&
              (!pre || ax_lt_2d(pre, m, n, dt)) &&
              (!b || (b->ndim == 1 && b->shape[0] == n && b->dtype == dt && ax_tensor_is_contiguous(b))) &&
              (act == AX_LINEAR_ACT_NONE || act == AX_LINEAR_ACT_RELU || act == AX_LINEAR_ACT_GELU_TANH);
    if (!ok)
        return AX_ERROR(AX_ERR_INVALID, "%s: want contiguous %s x [M, K], w [N, K], b [N], y and pre [M, N] on CUDA "
                        "and act NONE/RELU/GELU_TANH (got x %dd, w %dd, y %dd, act %d)", fn, ax_dtype_name(dt), x->ndim,
                        w->ndim, y->ndim, (int)act);
    if (m > INT_MAX || n > INT_MAX || k > INT_MAX) return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: a dimension exceeds int", fn);
    if (m == 0 || n == 0) return AX_OK;
    int32_t dev = y->storage->device.index;
    cudaStream_t s = ax_cuda_stream(dev);
    if (!s) return ax_error_status();
    const double p[2] = {0, 0};
    ax_status st = AX_ERR_UNSUPPORTED;
    /* fused: pre is only ever wanted (and aux only written) for GELU, whose
     * aux needs a leading dimension divisible by 8 and 16-byte alignment */
    bool aux_ok = !pre || (act == AX_LINEAR_ACT_GELU_TANH && n % 8 == 0 && ax_lt_align(ax_dnn_ptr(pre)) >= 16);
    if (k > 0 && aux_ok) {
        cublasLtEpilogue_t epi = act == AX_LINEAR_ACT_NONE ? (b ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT)
                                 : act == AX_LINEAR_ACT_RELU ? (b ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU)
                                 : pre ? (b ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX)
                                       : (b ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU);
        ax_lt_gemm g = {.ta = true, .m = n, .n = m, .k = k, .lda = k, .ldb = k, .ldd = n, .a = ax_dnn_ptr(w),
                        .b = ax_dnn_ptr(x), .d = ax_dnn_ptr(y), .epi = epi, .bias = b ? ax_dnn_ptr(b) : NULL,
                        .aux = pre ? ax_dnn_ptr(pre) : NULL, .aux_ld = n, .dtype = dt};
        st = ax_lt_run(dev, s, &g);
        if (st != AX_ERR_UNSUPPORTED) return st;
    }
    /* unfused: the affine part into pre (or y), then the activation kernel */
    ax_tensor *dst = pre ? pre : y;
    st = ax_lt_affine(dev, s, dst, x, w, b, m, n, k);
    if (st == AX_OK && act != AX_LINEAR_ACT_NONE) st = ax_cuda_unary(ax_lt_unary(act), y, dst, p);
    else if (st == AX_OK && pre) st = ax_cuda_copy(y, pre);
    return st;
}

ax_status ax_cuda_linear_backward(ax_tensor *dx, ax_tensor *dw, ax_tensor *db, const ax_tensor *dy, const ax_tensor *x,
                                  const ax_tensor *w, const ax_tensor *pre, ax_linear_act_op act) {
    const char *fn = "ax_cuda_linear_backward";
    ax_dtype dt = x->dtype;
    int64_t m = dy->ndim == 2 ? dy->shape[0] : -1, n = dy->ndim == 2 ? dy->shape[1] : -1, k = w->ndim == 2 ? w->shape[1] : -1;
    if (!ax_lt_dtype_ok(dt))
        return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: dtype %s not supported on CUDA (f32, bf16, f16)", fn, ax_dtype_name(dt));
    bool ok = m >= 0 && k >= 0 && ax_lt_2d(dy, m, n, dt) && ax_lt_2d(x, m, k, dt) && ax_lt_2d(w, n, k, dt) &&
              (act == AX_LINEAR_ACT_NONE || (pre && ax_lt_2d(pre, m, n, dt))) && (!dx || ax_lt_2d(dx, m, k, dt)) &&
              (!dw || ax_lt_2d(dw, n, k, dt)) &&
              (!db || (db->ndim == 1 && db->shape[0] == n && db->dtype == AX_DTYPE_F32 && ax_tensor_is_contiguous(db))) &&
              (act == AX_LINEAR_ACT_NONE || act == AX_LINEAR_ACT_RELU || act == AX_LINEAR_ACT_GELU_TANH);
    if (!ok)
        return AX_ERROR(AX_ERR_INVALID, "%s: want contiguous %s dy and pre [M, N], x and dx [M, K], w and dw [N, K] and "
                        "f32 db [N] on CUDA (pre needed unless act is NONE)", fn, ax_dtype_name(dt));
    if (m > INT_MAX || n > INT_MAX || k > INT_MAX) return AX_ERROR(AX_ERR_UNSUPPORTED, "%s: a dimension exceeds int", fn);
    if (dx && n == 0 && m > 0 && k > 0) return ax_cuda_fill(dx, 0.0);
    if (m == 0 || n == 0) return AX_OK;
    int32_t dev = dy->storage->device.index;
    cudaStream_t s = ax_cuda_stream(dev);
    if (!s) return ax_error_status();
    ax_tensor dph;
    ax_storage dps;
    const ax_tensor *dpre = dy;
    ax_status st = AX_OK;
    if (act != AX_LINEAR_ACT_NONE) {
        const double p[2] = {0, 0};
        st = ax_lt_scratch_2d(&dph, &dps, dy, m, n, dt);
        if (st != AX_OK) return st;
        dpre = &dph;
        st = ax_cuda_unary_backward(ax_lt_unary(act), &dph, dy, pre, NULL, p);
    }
    bool db_done = false;
    if (st == AX_OK && dx && k > 0) {
        ax_lt_gemm g = {.m = k, .n = m, .k = n, .lda = k, .ldb = n, .ldd = k, .a = ax_dnn_ptr(w), .b = ax_dnn_ptr(dpre),
                        .d = ax_dnn_ptr(dx), .epi = CUBLASLT_EPILOGUE_DEFAULT, .dtype = dt};
        st = ax_lt_run(dev, s, &g);
    }
    if (st == AX_OK && dw && k > 0) {
        ax_lt_gemm g = {.tb = true, .m = k, .n = n, .k = m, .lda = k, .ldb = n, .ldd = k, .a = ax_dnn_ptr(x),
                        .b = ax_dnn_ptr(dpre), .d = ax_dnn_ptr(dw), .beta = 1.0f, .epi = CUBLASLT_EPILOGUE_DEFAULT,
                        .dtype = dt};
        void *dbt = NULL;
        /* db from the same GEMM (BGRADB writes, in D's dtype: f32 only,
         * into scratch, then added, since db accumulates) */
        if (db && dt == AX_DTYPE_F32) {
            dbt = ax_cuda_scratch((size_t)n * sizeof(float), dev);
            if (!dbt) st = ax_error_status();
            g.epi = CUBLASLT_EPILOGUE_BGRADB, g.bias = dbt;
        }
        if (st == AX_OK) st = ax_lt_run(dev, s, &g);
        if (st == AX_OK && dbt) {
            ax_tensor th = *db;
            ax_storage ts = *db->storage;
            ts.data = dbt;
            th.storage = &ts;
            th.offset = 0;
            th.stride[0] = 1;
            st = ax_cuda_binary(AX_BINARY_ADD, db, db, &th);
            db_done = st == AX_OK;
        } else if (st == AX_ERR_UNSUPPORTED && dbt) { /* no BGRADB algorithm: plain GEMM, db below */
            g.epi = CUBLASLT_EPILOGUE_DEFAULT, g.bias = NULL;
            st = ax_lt_run(dev, s, &g);
        }
        if (dbt) ax_cuda_scratch_free(dbt, dev);
    }
    if (st == AX_ERR_UNSUPPORTED)
        st = AX_ERROR(AX_ERR_UNSUPPORTED, "%s: cuBLASLt has no algorithm for %s M %lld N %lld K %lld", fn,
                      ax_dtype_name(dt), (long long)m, (long long)n, (long long)k);
    if (st == AX_OK && db && !db_done) st = ax_cuda_bias_grad(db, dpre);
    if (dpre == &dph) ax_cuda_scratch_free(dph.storage->data, dev);
    return st;
}
