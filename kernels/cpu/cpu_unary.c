/* Elementwise unary kernels: y = f(x) and dx = dy * f'(x).
 *
 * Every op has exactly one loop, over contiguous float arrays, which the
 * compiler vectorises where it can (`omp simd`: -O2 alone only vectorises
 * loops whose trip count is a multiple of the vector width). Contiguous
 * rows are computed in place; strided rows go through small gathered
 * blocks, so one loop per op serves every layout.
 *
 * Integer dtypes support the ops that stay integral (NEG, ABS, SIGN,
 * CLAMP, AFFINE), computed in int64 and saturated to the dtype's range so
 * that e.g. abs(INT32_MIN) is INT32_MAX rather than a wrapped negative.
 */
#include <math.h>
#include <stdint.h>

#include "cpu_iter.h"
#include "cpu_kernels.h"
#include "tensor_internal.h"

/* Elements per gathered block: a few KiB per operand stays in L1. */
#define AX_UNARY_BLOCK 1024
/* A long row is split into chunks of this many elements so that a single
 * contiguous row (what ax_iter makes of a contiguous tensor) still spreads
 * over every thread. */
#define AX_UNARY_CHUNK 16384

/* ---- per-element functions (float, PyTorch's formulas) --------------------- */

static inline float ax_sigmoidf(float x) {
    /* exp of a negative argument only: no overflow for large |x| */
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

static inline float ax_geluf(float x) { return 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2)); }

/* sqrt(2 / pi) */
#define AX_GELU_BETA 0.7978845608028654f
#define AX_GELU_KAPPA 0.044715f

static inline float ax_gelu_tanhf(float x) {
    float inner = AX_GELU_BETA * (x + AX_GELU_KAPPA * x * x * x);
    return 0.5f * x * (1.0f + tanhf(inner));
}

static inline float ax_softplusf(float x, float beta, float threshold) {
    float bx = x * beta;
    return bx > threshold ? x : log1pf(expf(bx)) / beta;
}

static inline float ax_signf(float x) { return x > 0 ? 1.0f : x < 0 ? -1.0f : x; /* +-0 and NaN pass through */ }

/* ---- forward on contiguous arrays ---------------------------------------- */

/* y[j] = f(x[j]), j < n; y may be x. p: p[0], p[1] as floats. */
static void ax_unary_f32_contig(ax_unary_op op, float *y, const float *x, int64_t n, const float *p) {
    const float p0 = p[0], p1 = p[1];
    switch (op) {
    case AX_UNARY_NEG:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) y[j] = -x[j];
        break;
    case AX_UNARY_EXP:
        for (int64_t j = 0; j < n; j++) y[j] = expf(x[j]);
        break;
    case AX_UNARY_LOG:
        for (int64_t j = 0; j < n; j++) y[j] = logf(x[j]);
        break;
    case AX_UNARY_SQRT:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) y[j] = sqrtf(x[j]);
        break;
    case AX_UNARY_RSQRT:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) y[j] = 1.0f / sqrtf(x[j]);
        break;
    case AX_UNARY_ABS:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) y[j] = fabsf(x[j]);
        break;
    case AX_UNARY_SIGN:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) y[j] = ax_signf(x[j]);
        break;
    case AX_UNARY_RELU:
        /* x <= 0 is false for NaN, so NaN propagates as in torch.relu */
#pragma omp simd
        for (int64_t j = 0; j < n; j++) y[j] = x[j] <= 0 ? 0.0f : x[j];
        break;
    case AX_UNARY_LEAKY_RELU:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) y[j] = x[j] > 0 ? x[j] : x[j] * p0;
        break;
    case AX_UNARY_GELU:
        for (int64_t j = 0; j < n; j++) y[j] = ax_geluf(x[j]);
        break;
    case AX_UNARY_GELU_TANH:
        for (int64_t j = 0; j < n; j++) y[j] = ax_gelu_tanhf(x[j]);
        break;
    case AX_UNARY_SILU:
        for (int64_t j = 0; j < n; j++) y[j] = x[j] * ax_sigmoidf(x[j]);
        break;
    case AX_UNARY_SIGMOID:
        for (int64_t j = 0; j < n; j++) y[j] = ax_sigmoidf(x[j]);
        break;
    case AX_UNARY_TANH:
        for (int64_t j = 0; j < n; j++) y[j] = tanhf(x[j]);
        break;
    case AX_UNARY_SOFTPLUS:
        for (int64_t j = 0; j < n; j++) y[j] = ax_softplusf(x[j], p0, p1);
        break;
    case AX_UNARY_CLAMP:
        /* max then min, as torch.clamp: NaN stays NaN, and lo > hi gives hi */
#pragma omp simd
        for (int64_t j = 0; j < n; j++) {
            float v = x[j] < p0 ? p0 : x[j];
            y[j] = v > p1 ? p1 : v;
        }
        break;
    case AX_UNARY_POW:
        for (int64_t j = 0; j < n; j++) y[j] = powf(x[j], p0);
        break;
    case AX_UNARY_AFFINE:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) y[j] = p0 * x[j] + p1;
        break;
    case AX_UNARY_RECIPROCAL:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) y[j] = 1.0f / x[j];
        break;
    }
}

/* ---- backward on contiguous arrays ------------------------------------------ */

/* Ops whose derivative is cheapest from y = f(x). */
static bool ax_unary_backward_uses_y(ax_unary_op op) {
    switch (op) {
    case AX_UNARY_EXP:
    case AX_UNARY_SQRT:
    case AX_UNARY_RSQRT:
    case AX_UNARY_SIGMOID:
    case AX_UNARY_TANH:
    case AX_UNARY_RECIPROCAL: return true;
    default: return false;
    }
}

static inline float ax_gelu_gradf(float x) {
    const float k = (float)(M_2_SQRTPI * M_SQRT1_2 * 0.5); /* 1 / sqrt(2 pi) */
    float cdf = 0.5f * (1.0f + erff(x * (float)M_SQRT1_2));
    float pdf = expf(-0.5f * x * x) * k;
    return cdf + x * pdf;
}

static inline float ax_gelu_tanh_gradf(float x) {
    float x2 = x * x;
    float t = tanhf(AX_GELU_BETA * (x + AX_GELU_KAPPA * x2 * x));
    float left = 0.5f * x, right = 1.0f + t;
    float dright = left * (1.0f - t * t) * AX_GELU_BETA * (1.0f + 3.0f * AX_GELU_KAPPA * x2);
    return 0.5f * right + dright;
}

static inline float ax_silu_gradf(float x) {
    float s = ax_sigmoidf(x);
    return s * (1.0f + x * (1.0f - s));
}

static inline float ax_softplus_gradf(float x, float beta, float threshold) {
    float bx = x * beta;
    return bx > threshold ? 1.0f : ax_sigmoidf(bx);
}

/* dx[j] = dy[j] * f'(x[j]); y (valid when the op uses it) is f(x). dx may
 * alias dy. Kinks follow PyTorch's backward formulas. */
static void ax_unary_backward_f32_contig(ax_unary_op op, float *dx, const float *dy, const float *x,
                                         const float *y, int64_t n, const float *p) {
    const float p0 = p[0], p1 = p[1];
    switch (op) {
    case AX_UNARY_NEG:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) dx[j] = -dy[j];
        break;
    case AX_UNARY_EXP:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) dx[j] = dy[j] * y[j];
        break;
    case AX_UNARY_LOG:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) dx[j] = dy[j] / x[j];
        break;
    case AX_UNARY_SQRT:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) dx[j] = dy[j] * (0.5f / y[j]);
        break;
    case AX_UNARY_RSQRT:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) dx[j] = dy[j] * (-0.5f * y[j] * y[j] * y[j]);
        break;
    case AX_UNARY_ABS:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) dx[j] = dy[j] * ax_signf(x[j]);
        break;
    case AX_UNARY_SIGN:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) dx[j] = 0.0f;
        break;
    case AX_UNARY_RELU:
        /* torch's threshold_backward: zero where relu(x) <= 0 */
#pragma omp simd
        for (int64_t j = 0; j < n; j++) dx[j] = x[j] <= 0 ? 0.0f : dy[j];
        break;
    case AX_UNARY_LEAKY_RELU:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) dx[j] = x[j] > 0 ? dy[j] : dy[j] * p0;
        break;
    case AX_UNARY_GELU:
        for (int64_t j = 0; j < n; j++) dx[j] = dy[j] * ax_gelu_gradf(x[j]);
        break;
    case AX_UNARY_GELU_TANH:
        for (int64_t j = 0; j < n; j++) dx[j] = dy[j] * ax_gelu_tanh_gradf(x[j]);
        break;
    case AX_UNARY_SILU:
        for (int64_t j = 0; j < n; j++) dx[j] = dy[j] * ax_silu_gradf(x[j]);
        break;
    case AX_UNARY_SIGMOID:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) dx[j] = dy[j] * (y[j] * (1.0f - y[j]));
        break;
    case AX_UNARY_TANH:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) dx[j] = dy[j] * (1.0f - y[j] * y[j]);
        break;
    case AX_UNARY_SOFTPLUS:
        for (int64_t j = 0; j < n; j++) dx[j] = dy[j] * ax_softplus_gradf(x[j], p0, p1);
        break;
    case AX_UNARY_CLAMP:
        /* inclusive at both bounds, as torch's clamp_backward */
#pragma omp simd
        for (int64_t j = 0; j < n; j++) dx[j] = x[j] >= p0 && x[j] <= p1 ? dy[j] : 0.0f;
        break;
    case AX_UNARY_POW:
        /* torch: exponent 0 gives a zero gradient even at x = 0 (not 0 * inf) */
        if (p0 == 0) {
            for (int64_t j = 0; j < n; j++) dx[j] = 0.0f;
        } else {
            for (int64_t j = 0; j < n; j++) dx[j] = dy[j] * (p0 * powf(x[j], p0 - 1.0f));
        }
        break;
    case AX_UNARY_AFFINE:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) dx[j] = dy[j] * p0;
        break;
    case AX_UNARY_RECIPROCAL:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) dx[j] = dy[j] * -(y[j] * y[j]);
        break;
    }
}

/* ---- strided rows ------------------------------------------------------------ */

static void ax_gather_f32(float *dst, const float *src, int64_t stride, int64_t n) {
    for (int64_t j = 0; j < n; j++) dst[j] = src[j * stride];
}

static void ax_scatter_f32(float *dst, int64_t stride, const float *src, int64_t n) {
    for (int64_t j = 0; j < n; j++) dst[j * stride] = src[j];
}

/* Contiguous view of n elements at src with stride: src itself, or a copy in buf. */
static const float *ax_block_f32(float *buf, const float *src, int64_t stride, int64_t n) {
    if (stride == 1) return src;
    ax_gather_f32(buf, src, stride, n);
    return buf;
}

static void ax_unary_row_f32(ax_unary_op op, float *y, int64_t ys, const float *x, int64_t xs, int64_t n,
                             const float *p) {
    if (ys == 1 && xs == 1) {
        ax_unary_f32_contig(op, y, x, n, p);
        return;
    }
    float xb[AX_UNARY_BLOCK], yb[AX_UNARY_BLOCK];
    for (int64_t j0 = 0; j0 < n; j0 += AX_UNARY_BLOCK) {
        int64_t m = n - j0 < AX_UNARY_BLOCK ? n - j0 : AX_UNARY_BLOCK;
        const float *xp = ax_block_f32(xb, x + j0 * xs, xs, m);
        float *yp = ys == 1 ? y + j0 : yb;
        ax_unary_f32_contig(op, yp, xp, m, p);
        if (ys != 1) ax_scatter_f32(y + j0 * ys, ys, yb, m);
    }
}

/* y may be NULL: then it is recomputed from x where the op needs it. */
static void ax_unary_backward_row_f32(ax_unary_op op, float *dx, int64_t dxs, const float *dy, int64_t dys,
                                      const float *x, int64_t xs, const float *y, int64_t ys, int64_t n,
                                      const float *p) {
    bool need_y = ax_unary_backward_uses_y(op);
    if (dxs == 1 && dys == 1 && xs == 1 && (ys == 1 || !need_y) && (y || !need_y)) {
        ax_unary_backward_f32_contig(op, dx, dy, x, y, n, p);
        return;
    }
    float dxb[AX_UNARY_BLOCK], dyb[AX_UNARY_BLOCK], xb[AX_UNARY_BLOCK], yb[AX_UNARY_BLOCK];
    for (int64_t j0 = 0; j0 < n; j0 += AX_UNARY_BLOCK) {
        int64_t m = n - j0 < AX_UNARY_BLOCK ? n - j0 : AX_UNARY_BLOCK;
        const float *dyp = ax_block_f32(dyb, dy + j0 * dys, dys, m);
        const float *xp = ax_block_f32(xb, x + j0 * xs, xs, m);
        const float *yp = NULL;
        if (need_y && y) {
            yp = ax_block_f32(yb, y + j0 * ys, ys, m);
        } else if (need_y) {
            ax_unary_f32_contig(op, yb, xp, m, p);
            yp = yb;
        }
        float *dxp = dxs == 1 ? dx + j0 : dxb;
        ax_unary_backward_f32_contig(op, dxp, dyp, xp, yp, m, p);
        if (dxs != 1) ax_scatter_f32(dx + j0 * dxs, dxs, dxb, m);
    }
}

/* ---- integers ------------------------------------------------------------------ */

static void ax_int_range(ax_dtype dtype, int64_t *lo, int64_t *hi) {
    switch (dtype) {
    case AX_DTYPE_I32: *lo = INT32_MIN, *hi = INT32_MAX; return;
    case AX_DTYPE_U8: *lo = 0, *hi = UINT8_MAX; return;
    default: *lo = INT64_MIN, *hi = INT64_MAX; return;
    }
}

/* Values must already lie in the dtype's range. */
static void ax_store_i64_row(char *dst, ax_dtype dtype, int64_t stride, const int64_t *src, int64_t n) {
    switch (dtype) {
    case AX_DTYPE_I32:
        for (int64_t j = 0; j < n; j++) ((int32_t *)dst)[j * stride] = (int32_t)src[j];
        break;
    case AX_DTYPE_U8:
        for (int64_t j = 0; j < n; j++) ((uint8_t *)dst)[j * stride] = (uint8_t)src[j];
        break;
    default:
        for (int64_t j = 0; j < n; j++) ((int64_t *)dst)[j * stride] = src[j];
        break;
    }
}

/* A double (rounded toward zero) saturated to [lo, hi]; NaN gives 0. */
static int64_t ax_saturate_double(double v, int64_t lo, int64_t hi) {
    if (isnan(v)) return 0;
    v = trunc(v);
    if (v <= (double)lo) return lo;
    if (v >= (double)hi) return hi; /* (double)INT64_MAX rounds up to 2^63 */
    return (int64_t)v;
}

static int64_t ax_saturate_i64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* a * v + b exactly in int64 when a and b are integers, saturating on
 * overflow (the double path would lose bits of large i64 values). */
static int64_t ax_affine_i64(int64_t v, double a, double b, int64_t lo, int64_t hi) {
    bool exact = a == trunc(a) && b == trunc(b) && fabs(a) < 0x1p63 && fabs(b) < 0x1p63;
    if (!exact) return ax_saturate_double(a * (double)v + b, lo, hi);
    int64_t ai = (int64_t)a, bi = (int64_t)b, prod, sum;
    if (__builtin_mul_overflow(v, ai, &prod)) return (v < 0) != (ai < 0) ? lo : hi;
    if (__builtin_add_overflow(prod, bi, &sum)) return bi < 0 ? lo : hi;
    return ax_saturate_i64(sum, lo, hi);
}

/* Integer bounds of a clamp: the integers in [lo, hi]. */
static int64_t ax_ceil_bound(double v) { return v <= -0x1p63 ? INT64_MIN : v >= 0x1p63 ? INT64_MAX : (int64_t)ceil(v); }
static int64_t ax_floor_bound(double v) {
    return v <= -0x1p63 ? INT64_MIN : v >= 0x1p63 ? INT64_MAX : (int64_t)floor(v);
}

static void ax_unary_i64_block(ax_unary_op op, int64_t *v, int64_t n, const double *p, int64_t lo, int64_t hi) {
    switch (op) {
    case AX_UNARY_NEG:
        for (int64_t j = 0; j < n; j++) v[j] = ax_saturate_i64(v[j] == INT64_MIN ? INT64_MAX : -v[j], lo, hi);
        break;
    case AX_UNARY_ABS:
        for (int64_t j = 0; j < n; j++)
            v[j] = ax_saturate_i64(v[j] == INT64_MIN ? INT64_MAX : v[j] < 0 ? -v[j] : v[j], lo, hi);
        break;
    case AX_UNARY_SIGN:
        for (int64_t j = 0; j < n; j++) v[j] = (v[j] > 0) - (v[j] < 0);
        break;
    case AX_UNARY_CLAMP: {
        int64_t cl = ax_ceil_bound(p[0]), ch = ax_floor_bound(p[1]);
        for (int64_t j = 0; j < n; j++) {
            int64_t r = v[j] < cl ? cl : v[j];
            v[j] = ax_saturate_i64(r > ch ? ch : r, lo, hi);
        }
        break;
    }
    case AX_UNARY_AFFINE:
        for (int64_t j = 0; j < n; j++) v[j] = ax_affine_i64(v[j], p[0], p[1], lo, hi);
        break;
    default: break;
    }
}

static bool ax_unary_int_op(ax_unary_op op) {
    return op == AX_UNARY_NEG || op == AX_UNARY_ABS || op == AX_UNARY_SIGN || op == AX_UNARY_CLAMP ||
           op == AX_UNARY_AFFINE;
}

/* ---- drivers -------------------------------------------------------------------- */

static bool ax_unary_op_valid(ax_unary_op op) { return op >= AX_UNARY_NEG && op <= AX_UNARY_RECIPROCAL; }

static bool ax_unary_needs_params(ax_unary_op op) {
    return op == AX_UNARY_LEAKY_RELU || op == AX_UNARY_SOFTPLUS || op == AX_UNARY_CLAMP || op == AX_UNARY_POW ||
           op == AX_UNARY_AFFINE;
}

static ax_status ax_unary_check(const char *fn, ax_unary_op op, const ax_tensor *a, const char *an,
                                const ax_tensor *b, const char *bn, const double *p) {
    if (!ax_unary_op_valid(op)) return AX_ERROR(AX_ERR_INVALID, "%s: unknown unary op %d", fn, (int)op);
    if (!ax_tensor_same_shape(a, b) || a->dtype != b->dtype) {
        char s1[160], s2[160];
        return AX_ERROR(AX_ERR_INVALID, "%s: %s %s %s and %s %s %s differ", fn, an, ax_dtype_name(a->dtype),
                        ax_shape_str(s1, sizeof s1, a->ndim, a->shape), bn, ax_dtype_name(b->dtype),
                        ax_shape_str(s2, sizeof s2, b->ndim, b->shape));
    }
    if (!p && ax_unary_needs_params(op))
        return AX_ERROR(AX_ERR_INVALID, "%s: unary op %d needs parameters p", fn, (int)op);
    return AX_OK;
}

/* Work items: each row cut into chunks of AX_UNARY_CHUNK elements. */
static int64_t ax_chunks_per_row(int64_t inner) { return inner > AX_UNARY_CHUNK ? (inner + AX_UNARY_CHUNK - 1) / AX_UNARY_CHUNK : 1; }

static void ax_unary_params_f32(const double *p, float *pf) {
    pf[0] = p ? (float)p[0] : 0.0f;
    pf[1] = p ? (float)p[1] : 0.0f;
}

static ax_status ax_unary_f32(ax_unary_op op, ax_tensor *y, const ax_tensor *x, const double *p) {
    /* torch.clamp with a NaN bound gives NaN everywhere */
    if (op == AX_UNARY_CLAMP && (isnan(p[0]) || isnan(p[1]))) return ax_cpu_kernels()->fill(y, NAN);
    float pf[2];
    ax_unary_params_f32(p, pf);
    ax_iter it;
    ax_iter_init(&it, 2, (const ax_tensor *[]){y, x});
    int64_t rows = ax_iter_rows(&it), nc = ax_chunks_per_row(it.inner), items = rows * nc;
#pragma omp parallel for if (rows * it.inner >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t w = 0; w < items; w++) {
        int64_t off[2], r = w / nc, j0 = (w % nc) * AX_UNARY_CHUNK;
        int64_t n = it.inner - j0 < AX_UNARY_CHUNK ? it.inner - j0 : AX_UNARY_CHUNK;
        ax_iter_row(&it, r, off);
        float *yp = (float *)it.base[0] + off[0] + j0 * it.inner_stride[0];
        const float *xp = (const float *)it.base[1] + off[1] + j0 * it.inner_stride[1];
        ax_unary_row_f32(op, yp, it.inner_stride[0], xp, it.inner_stride[1], n, pf);
    }
    return AX_OK;
}

static ax_status ax_unary_int(ax_unary_op op, ax_tensor *y, const ax_tensor *x, const double *p) {
    if (op == AX_UNARY_CLAMP && (isnan(p[0]) || isnan(p[1])))
        return AX_ERROR(AX_ERR_INVALID, "unary clamp: NaN bound on %s", ax_dtype_name(x->dtype));
    int64_t lo, hi;
    ax_int_range(x->dtype, &lo, &hi);
    size_t es = ax_dtype_size(x->dtype);
    ax_iter it;
    ax_iter_init(&it, 2, (const ax_tensor *[]){y, x});
    int64_t rows = ax_iter_rows(&it), nc = ax_chunks_per_row(it.inner), items = rows * nc;
#pragma omp parallel for if (rows * it.inner >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t w = 0; w < items; w++) {
        int64_t off[2], r = w / nc, c0 = (w % nc) * AX_UNARY_CHUNK;
        int64_t end = it.inner - c0 < AX_UNARY_CHUNK ? it.inner : c0 + AX_UNARY_CHUNK;
        int64_t v[AX_UNARY_BLOCK];
        ax_iter_row(&it, r, off);
        for (int64_t j0 = c0; j0 < end; j0 += AX_UNARY_BLOCK) {
            int64_t m = end - j0 < AX_UNARY_BLOCK ? end - j0 : AX_UNARY_BLOCK;
            ax_load_i64_row(v, it.base[1] + (size_t)(off[1] + j0 * it.inner_stride[1]) * es, x->dtype,
                            it.inner_stride[1], m);
            ax_unary_i64_block(op, v, m, p, lo, hi);
            ax_store_i64_row(it.base[0] + (size_t)(off[0] + j0 * it.inner_stride[0]) * es, y->dtype,
                             it.inner_stride[0], v, m);
        }
    }
    return AX_OK;
}

ax_status ax_cpu_unary(ax_unary_op op, ax_tensor *y, const ax_tensor *x, const double *p) {
    if (ax_unary_check("ax_cpu_unary", op, y, "y", x, "x", p) != AX_OK) return ax_error_status();
    switch (x->dtype) {
    case AX_DTYPE_F32: return ax_unary_f32(op, y, x, p);
    case AX_DTYPE_I32:
    case AX_DTYPE_I64:
    case AX_DTYPE_U8:
        if (ax_unary_int_op(op)) return ax_unary_int(op, y, x, p);
        break;
    default: break;
    }
    return AX_ERROR(AX_ERR_UNSUPPORTED, "unary op %d: %s not supported on the CPU", (int)op, ax_dtype_name(x->dtype));
}

ax_status ax_cpu_unary_backward(ax_unary_op op, ax_tensor *dx, const ax_tensor *dy, const ax_tensor *x,
                                const ax_tensor *y, const double *p) {
    const char *fn = "ax_cpu_unary_backward";
    if (ax_unary_check(fn, op, dx, "dx", dy, "dy", p) != AX_OK ||
        ax_unary_check(fn, op, dx, "dx", x, "x", p) != AX_OK || (y && ax_unary_check(fn, op, dx, "dx", y, "y", p) != AX_OK))
        return ax_error_status();
    if (x->dtype != AX_DTYPE_F32)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "unary backward op %d: %s not supported on the CPU", (int)op,
                        ax_dtype_name(x->dtype));
    float pf[2];
    ax_unary_params_f32(p, pf);
    /* Without y, iterate x in its place; the row function recomputes f(x). */
    ax_iter it;
    ax_iter_init(&it, 4, (const ax_tensor *[]){dx, dy, x, y ? y : x});
    int64_t rows = ax_iter_rows(&it), nc = ax_chunks_per_row(it.inner), items = rows * nc;
#pragma omp parallel for if (rows * it.inner >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t w = 0; w < items; w++) {
        int64_t off[4], r = w / nc, j0 = (w % nc) * AX_UNARY_CHUNK;
        int64_t n = it.inner - j0 < AX_UNARY_CHUNK ? it.inner - j0 : AX_UNARY_CHUNK;
        const int64_t *s = it.inner_stride;
        ax_iter_row(&it, r, off);
        float *dxp = (float *)it.base[0] + off[0] + j0 * s[0];
        const float *dyp = (const float *)it.base[1] + off[1] + j0 * s[1];
        const float *xp = (const float *)it.base[2] + off[2] + j0 * s[2];
        const float *yp = y ? (const float *)it.base[3] + off[3] + j0 * s[3] : NULL;
        ax_unary_backward_row_f32(op, dxp, s[0], dyp, s[1], xp, s[2], yp, s[3], n, pf);
    }
    return AX_OK;
}
