/* kernels/cuda/cuda_math.h — the per-element math of the CUDA kernels.
 *
 * Every formula the CUDA backend applies to one element or one index lives
 * here as a `static inline AX_HD` function in plain C, so that nvcc compiles
 * it into the device kernels (cuda_kernels.cu) and the host C compiler
 * compiles the very same text into tests/cuda/test_cuda_math.c, which runs
 * in every `make check` (no GPU needed) and compares it with the CPU
 * backend's results. The formulas are PyTorch's, as the CPU backend's are.
 *
 *     float y = ax_cm_unary(AX_UNARY_GELU, x, 0, 0);
 *     float g = ax_cm_unary_backward(AX_UNARY_GELU, dy, x, y, 0, 0);
 *
 * Index helpers (pool windows, adaptive windows, interpolation taps, pad
 * sources) take and return int64 positions along one axis.
 */
#ifndef AXON_CUDA_MATH_H
#define AXON_CUDA_MATH_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "axon/half.h" /* AX_HD, bf16/f16 conversions */
#include "axon/kernels.h"

#define AX_CM_SQRT1_2 0.70710678118654752440f
#define AX_CM_INV_SQRT_2PI 0.39894228040143267794f
#define AX_CM_GELU_BETA 0.7978845608028654f /* sqrt(2 / pi) */
#define AX_CM_GELU_KAPPA 0.044715f

/* ---- float helpers --------------------------------------------------------------- */

static inline AX_HD float ax_cm_sigmoid(float x) {
    /* exp of a negative argument only: no overflow for large |x| */
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

static inline AX_HD float ax_cm_sign(float x) { return x > 0 ? 1.0f : x < 0 ? -1.0f : x; }

/* Does the backward of op read y = f(x)? (Else it reads x only.) */
static inline AX_HD bool ax_cm_unary_backward_uses_y(ax_unary_op op) {
    return op == AX_UNARY_EXP || op == AX_UNARY_SQRT || op == AX_UNARY_RSQRT || op == AX_UNARY_SIGMOID ||
           op == AX_UNARY_TANH || op == AX_UNARY_RECIPROCAL;
}

/* y = f(x; p0, p1) for the float dtypes (computed in f32). */
static inline AX_HD float ax_cm_unary(ax_unary_op op, float x, float p0, float p1) {
    switch (op) {
    case AX_UNARY_NEG: return -x;
    case AX_UNARY_EXP: return expf(x);
    case AX_UNARY_LOG: return logf(x);
    case AX_UNARY_SQRT: return sqrtf(x);
    case AX_UNARY_RSQRT: return 1.0f / sqrtf(x);
    case AX_UNARY_ABS: return fabsf(x);
    case AX_UNARY_SIGN: return ax_cm_sign(x);
    case AX_UNARY_RELU: return x <= 0 ? 0.0f : x; /* NaN propagates */
    case AX_UNARY_LEAKY_RELU: return x > 0 ? x : x * p0;
    case AX_UNARY_GELU: return 0.5f * x * (1.0f + erff(x * AX_CM_SQRT1_2));
    case AX_UNARY_GELU_TANH: return 0.5f * x * (1.0f + tanhf(AX_CM_GELU_BETA * (x + AX_CM_GELU_KAPPA * x * x * x)));
    case AX_UNARY_SILU: return x * ax_cm_sigmoid(x);
    case AX_UNARY_SIGMOID: return ax_cm_sigmoid(x);
    case AX_UNARY_TANH: return tanhf(x);
    case AX_UNARY_SOFTPLUS: return x * p0 > p1 ? x : log1pf(expf(x * p0)) / p0;
    case AX_UNARY_CLAMP: {
        /* max then min, as torch.clamp: NaN stays NaN, lo > hi gives hi */
        float v = x < p0 ? p0 : x;
        return v > p1 ? p1 : v;
    }
    case AX_UNARY_POW: return powf(x, p0);
    case AX_UNARY_AFFINE: return p0 * x + p1;
    case AX_UNARY_RECIPROCAL: return 1.0f / x;
    }
    return x;
}

/* dx = dy * f'(x); y = f(x) (read only by the ops that use it). Kinks follow
 * PyTorch's backward formulas. */
static inline AX_HD float ax_cm_unary_backward(ax_unary_op op, float dy, float x, float y, float p0, float p1) {
    switch (op) {
    case AX_UNARY_NEG: return -dy;
    case AX_UNARY_EXP: return dy * y;
    case AX_UNARY_LOG: return dy / x;
    case AX_UNARY_SQRT: return dy * (0.5f / y);
    case AX_UNARY_RSQRT: return dy * (-0.5f * y * y * y);
    case AX_UNARY_ABS: return dy * ax_cm_sign(x);
    case AX_UNARY_SIGN: return 0.0f;
    case AX_UNARY_RELU: return x <= 0 ? 0.0f : dy;
    case AX_UNARY_LEAKY_RELU: return x > 0 ? dy : dy * p0;
    case AX_UNARY_GELU: {
        float cdf = 0.5f * (1.0f + erff(x * AX_CM_SQRT1_2));
        float pdf = expf(-0.5f * x * x) * AX_CM_INV_SQRT_2PI;
        return dy * (cdf + x * pdf);
    }
    case AX_UNARY_GELU_TANH: {
        float x2 = x * x;
        float t = tanhf(AX_CM_GELU_BETA * (x + AX_CM_GELU_KAPPA * x2 * x));
        float left = 0.5f * x, right = 1.0f + t;
        float dright = left * (1.0f - t * t) * AX_CM_GELU_BETA * (1.0f + 3.0f * AX_CM_GELU_KAPPA * x2);
        return dy * (0.5f * right + dright);
    }
    case AX_UNARY_SILU: {
        float s = ax_cm_sigmoid(x);
        return dy * (s * (1.0f + x * (1.0f - s)));
    }
    case AX_UNARY_SIGMOID: return dy * (y * (1.0f - y));
    case AX_UNARY_TANH: return dy * (1.0f - y * y);
    case AX_UNARY_SOFTPLUS: return dy * (x * p0 > p1 ? 1.0f : ax_cm_sigmoid(x * p0));
    case AX_UNARY_CLAMP: return x >= p0 && x <= p1 ? dy : 0.0f; /* inclusive, as torch */
    case AX_UNARY_POW: return p0 == 0 ? 0.0f : dy * (p0 * powf(x, p0 - 1.0f));
    case AX_UNARY_AFFINE: return dy * p0;
    case AX_UNARY_RECIPROCAL: return dy * -(y * y);
    }
    return dy;
}

static inline AX_HD bool ax_cm_binary_is_compare(ax_binary_op op) { return op >= AX_BINARY_EQ && op <= AX_BINARY_GE; }

/* a op b for the float dtypes (f32 arithmetic); comparisons give 0 / 1. */
static inline AX_HD float ax_cm_binary(ax_binary_op op, float a, float b) {
    switch (op) {
    case AX_BINARY_ADD: return a + b;
    case AX_BINARY_SUB: return a - b;
    case AX_BINARY_MUL: return a * b;
    case AX_BINARY_DIV: return a / b;
    case AX_BINARY_POW: return powf(a, b);
    /* torch.maximum / minimum: a NaN in either operand gives NaN */
    case AX_BINARY_MAXIMUM: return a > b || a != a ? a : b;
    case AX_BINARY_MINIMUM: return a < b || a != a ? a : b;
    case AX_BINARY_EQ: return a == b;
    case AX_BINARY_NE: return a != b;
    case AX_BINARY_LT: return a < b;
    case AX_BINARY_LE: return a <= b;
    case AX_BINARY_GT: return a > b;
    case AX_BINARY_GE: return a >= b;
    }
    return a;
}

/* ---- integers ------------------------------------------------------------------------ */

/* Range of an integer dtype. */
static inline AX_HD void ax_cm_int_range(ax_dtype dtype, int64_t *lo, int64_t *hi) {
    switch (dtype) {
    case AX_DTYPE_I32: *lo = INT32_MIN, *hi = INT32_MAX; return;
    case AX_DTYPE_U8: *lo = 0, *hi = 255; return;
    default: *lo = INT64_MIN, *hi = INT64_MAX; return;
    }
}

static inline AX_HD int64_t ax_cm_sat(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* A double rounded toward zero and saturated to [lo, hi]; NaN gives 0 (the
 * store rule for float -> integer conversions). */
static inline AX_HD int64_t ax_cm_sat_double(double v, int64_t lo, int64_t hi) {
    if (v != v) return 0;
    v = trunc(v);
    if (v <= (double)lo) return lo;
    if (v >= (double)hi) return hi; /* (double)INT64_MAX rounds up to 2^63 */
    return (int64_t)v;
}

/* a op b on int64 (arithmetic wraps as two's complement, as on the CPU). */
static inline AX_HD int64_t ax_cm_binary_i64(ax_binary_op op, int64_t a, int64_t b) {
    switch (op) {
    case AX_BINARY_ADD: return (int64_t)((uint64_t)a + (uint64_t)b);
    case AX_BINARY_SUB: return (int64_t)((uint64_t)a - (uint64_t)b);
    case AX_BINARY_MUL: return (int64_t)((uint64_t)a * (uint64_t)b);
    case AX_BINARY_MAXIMUM: return a > b ? a : b;
    case AX_BINARY_MINIMUM: return a < b ? a : b;
    case AX_BINARY_EQ: return a == b;
    case AX_BINARY_NE: return a != b;
    case AX_BINARY_LT: return a < b;
    case AX_BINARY_LE: return a <= b;
    case AX_BINARY_GT: return a > b;
    case AX_BINARY_GE: return a >= b;
    default: return 0;
    }
}

static inline AX_HD bool ax_cm_unary_int_op(ax_unary_op op) {
    return op == AX_UNARY_NEG || op == AX_UNARY_ABS || op == AX_UNARY_SIGN || op == AX_UNARY_CLAMP ||
           op == AX_UNARY_AFFINE;
}

static inline AX_HD int64_t ax_cm_ceil_bound(double v) {
    return v <= -0x1p63 ? INT64_MIN : v >= 0x1p63 ? INT64_MAX : (int64_t)ceil(v);
}
static inline AX_HD int64_t ax_cm_floor_bound(double v) {
    return v <= -0x1p63 ? INT64_MIN : v >= 0x1p63 ? INT64_MAX : (int64_t)floor(v);
}

/* a * v + b exactly when a and b are integers (saturating on overflow);
 * through double otherwise. Overflow tests by hand: device code has no
 * __builtin_*_overflow. */
static inline AX_HD int64_t ax_cm_affine_i64(int64_t v, double a, double b, int64_t lo, int64_t hi) {
    bool exact = a == trunc(a) && b == trunc(b) && fabs(a) < 0x1p63 && fabs(b) < 0x1p63;
    if (!exact) return ax_cm_sat_double(a * (double)v + b, lo, hi);
    int64_t ai = (int64_t)a, bi = (int64_t)b;
    uint64_t mv = v < 0 ? 0 - (uint64_t)v : (uint64_t)v, ma = ai < 0 ? 0 - (uint64_t)ai : (uint64_t)ai;
    bool neg = (v < 0) != (ai < 0);
    if (ma != 0 && mv > (neg ? (uint64_t)1 << 63 : (uint64_t)INT64_MAX) / ma) return neg ? lo : hi;
    uint64_t um = mv * ma;
    int64_t prod = neg ? (int64_t)(0 - um) : (int64_t)um;
    if ((bi > 0 && prod > INT64_MAX - bi) || (bi < 0 && prod < INT64_MIN - bi)) return bi < 0 ? lo : hi;
    return ax_cm_sat(prod + bi, lo, hi);
}

/* The integer unary ops, saturated to [lo, hi] (e.g. abs(INT32_MIN) is INT32_MAX). */
static inline AX_HD int64_t ax_cm_unary_i64(ax_unary_op op, int64_t v, double p0, double p1, int64_t lo, int64_t hi) {
    switch (op) {
    case AX_UNARY_NEG: return ax_cm_sat(v == INT64_MIN ? INT64_MAX : -v, lo, hi);
    case AX_UNARY_ABS: return ax_cm_sat(v == INT64_MIN ? INT64_MAX : v < 0 ? -v : v, lo, hi);
    case AX_UNARY_SIGN: return (v > 0) - (v < 0);
    case AX_UNARY_CLAMP: {
        int64_t cl = ax_cm_ceil_bound(p0), ch = ax_cm_floor_bound(p1);
        int64_t r = v < cl ? cl : v;
        return ax_cm_sat(r > ch ? ch : r, lo, hi);
    }
    case AX_UNARY_AFFINE: return ax_cm_affine_i64(v, p0, p1, lo, hi);
    default: return v;
    }
}

/* ---- reductions and softmax ------------------------------------------------------------ */

/* Does v replace the running extremum best? A NaN does (and then stays);
 * a tie does not, so the first extremum wins. */
static inline AX_HD bool ax_cm_arg_better(bool max, float v, float best) {
    return best == best && (v != v || (max ? v > best : v < best));
}

/* The running max of softmax; a NaN sticks. */
static inline AX_HD float ax_cm_sm_max(float m, float v) { return m == m && (v > m || v != v) ? v : m; }
/* What y is finished with: log(sum) for log_softmax, 1/sum for softmax. */
static inline AX_HD double ax_cm_sm_scale(double sum, bool log_) { return log_ ? log(sum) : 1.0 / sum; }
static inline AX_HD float ax_cm_sm_finish(float x, float m, double scale, bool log_) {
    return log_ ? (float)((double)(x - m) - scale) : (float)((double)expf(x - m) * scale);
}
/* Backward: the sum term (sum(dy) for log_softmax, sum(dy * y) for softmax) and the result. */
static inline AX_HD double ax_cm_smb_term(float g, float y, bool log_) { return log_ ? (double)g : (double)g * y; }
static inline AX_HD float ax_cm_smb_finish(float g, float y, double sum, bool log_) {
    return (float)(log_ ? g - exp((double)y) * sum : (double)y * (g - sum));
}

/* ---- pooling, resampling, padding: one axis ------------------------------------------------ */

static inline AX_HD int64_t ax_cm_min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline AX_HD int64_t ax_cm_max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Pooling window of output o, as PyTorch computes it: [*lo, *hi) clipped to
 * the input, and the padded extent (for count_include_pad). */
static inline AX_HD void ax_cm_pool_win(int64_t o, int64_t k, int64_t s, int64_t pad, int64_t in, int64_t *lo,
                                        int64_t *hi, int64_t *padded) {
    int64_t start = o * s - pad, end = ax_cm_min64(start + k, in + pad);
    *lo = ax_cm_max64(start, 0);
    *hi = ax_cm_min64(end, in);
    *padded = end - start;
}

/* Adaptive average pooling window: [floor(o * in / out), ceil((o + 1) * in / out)). */
static inline AX_HD int64_t ax_cm_adaptive_start(int64_t o, int64_t out, int64_t in) {
    return (o / out) * in + ((o % out) * in) / out;
}
static inline AX_HD int64_t ax_cm_adaptive_end(int64_t o, int64_t out, int64_t in) { return 1 + ((o + 1) * in - 1) / out; }

/* PyTorch's nearest_idx for mode 'nearest'. */
static inline AX_HD int64_t ax_cm_nearest(int64_t o, int64_t in, int64_t out) {
    if (out == in) return o;
    if (out == 2 * in) return o >> 1;
    float scale = (float)in / (float)out;
    return ax_cm_min64((int64_t)floorf((float)o * scale), in - 1);
}

/* PyTorch's linear interpolation taps: source indices i0, i1 and weights
 * l0, l1 of output o (area_pixel_compute_scale and
 * compute_source_index_and_lambda, in float as torch computes them). */
static inline AX_HD void ax_cm_linear(int64_t o, int64_t in, int64_t out, bool align_corners, int64_t *i0, int64_t *i1,
                                      float *l0, float *l1) {
    if (in == out) {
        *i0 = *i1 = o;
        *l0 = 1.0f;
        *l1 = 0.0f;
        return;
    }
    float src;
    if (align_corners) {
        float scale = out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
        src = scale * (float)o;
    } else {
        float scale = (float)in / (float)out;
        src = (float)((double)scale * ((double)o + 0.5) - 0.5);
        if (src < 0) src = 0;
    }
    int64_t i = ax_cm_min64((int64_t)floorf(src), in - 1);
    float lam = fminf(fmaxf(src - (float)i, 0.0f), 1.0f);
    *i0 = i;
    *i1 = i + (i < in - 1 ? 1 : 0);
    *l1 = lam;
    *l0 = 1.0f - lam;
}

/* Source index along a padded dim for output o, or -1 for a constant-filled
 * position; negative pads crop (torch's formulas). */
static inline AX_HD int64_t ax_cm_pad_source(int64_t o, int64_t before, int64_t in, ax_pad_mode mode) {
    int64_t i = o - before;
    if (i >= 0 && i < in) return i;
    switch (mode) {
    case AX_PAD_REFLECT: return i < 0 ? -i : 2 * (in - 1) - i;
    case AX_PAD_REPLICATE: return i < 0 ? 0 : in - 1;
    default: return -1;
    }
}

/* ---- the gather form of the backward passes -------------------------------------------------
 * The CUDA backward kernels of pooling and resampling give each input
 * element the sum of the outputs that read it (no atomics, deterministic);
 * these say which outputs along one axis can have read input position i. */

/* Outputs [*o0, *o1) whose pooling window may cover input i (then check with ax_cm_pool_win). */
static inline AX_HD void ax_cm_pool_out_range(int64_t i, int64_t k, int64_t s, int64_t pad, int64_t out, int64_t *o0,
                                              int64_t *o1) {
    int64_t lo = i + pad - k + 1; /* o * s >= lo */
    *o0 = lo <= 0 ? 0 : (lo + s - 1) / s;
    *o1 = ax_cm_min64((i + pad) / s + 1, out);
    if (*o1 < *o0) *o1 = *o0;
}

/* First output whose adaptive window may contain input i (windows are
 * monotone: walk on while ax_cm_adaptive_start(o) <= i). */
static inline AX_HD int64_t ax_cm_adaptive_first(int64_t i, int64_t out, int64_t in) {
    int64_t o = i * out / in - 1;
    return o < 0 ? 0 : o;
}

/* Taps of output o along an axis; a phantom axis (a spatial dim the tensor
 * lacks: 1-D and 2-D interpolation) is the identity. */
static inline AX_HD void ax_cm_taps(bool phantom, bool nearest, bool ac, int64_t o, int64_t in, int64_t out, int64_t *i0,
                                    int64_t *i1, float *l0, float *l1) {
    if (phantom) {
        *i0 = *i1 = 0;
        *l0 = 1.0f;
        *l1 = 0.0f;
    } else if (nearest) {
        *i0 = *i1 = ax_cm_nearest(o, in, out);
        *l0 = 1.0f;
        *l1 = 0.0f;
    } else {
        ax_cm_linear(o, in, out, ac, i0, i1, l0, l1);
    }
}

/* Weight with which output o along an axis reads input i (both taps count
 * when they coincide, as the forward pass adds them). */
static inline AX_HD float ax_cm_tap_weight(bool phantom, bool nearest, bool ac, int64_t o, int64_t i, int64_t in,
                                           int64_t out) {
    int64_t i0, i1;
    float l0, l1;
    ax_cm_taps(phantom, nearest, ac, o, in, out, &i0, &i1, &l0, &l1);
    return (i0 == i ? l0 : 0.0f) + (i1 == i && !nearest && !phantom ? l1 : 0.0f);
}

/* Outputs [*o0, *o1) that may read input i: a superset (the weights
 * decide), |source - i| < 1 for every tap mode and scale. */
static inline AX_HD void ax_cm_tap_out_range(bool phantom, int64_t i, int64_t in, int64_t out, int64_t *o0, int64_t *o1) {
    if (phantom) {
        *o0 = 0;
        *o1 = out;
        return;
    }
    *o0 = ax_cm_max64((i - 1) * out / in - 2, 0);
    *o1 = ax_cm_min64(((i + 2) * out + in - 1) / in + 2, out);
}

/* ---- group norm and its fused leaky_relu (axon/kernels.h: group_norm, group_norm_act
 * and their backward) ------------------------------------------------------------------
 * The CPU kernels (kernels/cpu/cpu_norm.c) apply the same formulas; the
 * statistics and sums around them are computed in double by both. */

/* One element of the forward: (x - mean) * a + b with a = rstd * w and the
 * double mean split into mhi + mlo, so x - mean stays exact when |mean|
 * is far above the spread. */
static inline AX_HD float ax_cm_norm_apply(float x, float mhi, float mlo, float a, float b) {
    return ((x - mhi) - mlo) * a + b;
}

/* The same through leaky_relu(slope): the fused forward's element. */
static inline AX_HD float ax_cm_norm_act(float x, float mhi, float mlo, float a, float b, float slope) {
    float t = ax_cm_norm_apply(x, mhi, mlo, a, b);
    return t > 0 ? t : t * slope;
}

/* leaky_relu's gradient taken from its output: dy where y > 0, else
 * slope * dy (y > 0 exactly where the pre-activation is, for slope >= 0).
 * The fused backward gates dy with it wherever it reads dy. */
static inline AX_HD float ax_cm_leaky_gate(float dy, float y, float slope) { return y > 0 ? dy : dy * slope; }

/* A unit's dx coefficients from its sums swdy = sum(w dy) and swdx =
 * sum(w dy (x - mean)) over len elements: dx = a dy + bx (x - mean) + d0. */
static inline AX_HD void ax_cm_norm_dx_coef(double swdy, double swdx, double rstd, int64_t len, float *bx, float *d0) {
    double inv = len ? 1.0 / (double)len : 0.0;
    *bx = (float)(-rstd * rstd * rstd * swdx * inv);
    *d0 = (float)(-rstd * swdy * inv);
}

/* One element of dx, a = rstd * w (dy already gated in the fused backward). */
static inline AX_HD float ax_cm_norm_dx(float dy, float x, float a, float bx, float mean, float d0) {
    return a * dy + bx * (x - mean) + d0;
}

/* ---- optimizer updates (axon/kernels.h: sgd_step, adamw_step, grad_norm) ------------ */

/* a * b + c rounded once through double (the product of two floats is
 * exact in double), as the CPU backend's optimizer loops compute it. */
static inline AX_HD float ax_cm_fmadd(float a, float b, float c) { return (float)((double)a * (double)b + (double)c); }

/* One element of torch's single-tensor SGD (kernels.h's formula). */
static inline AX_HD void ax_cm_sgd(const ax_sgd_step_params *c, float *p, float *buf, float g) {
    float d = c->has_wd ? ax_cm_fmadd(*p, c->wd, g) : g;
    if (c->has_mom) {
        float b = c->first ? d : ax_cm_fmadd(d, c->keep, *buf * c->mom);
        *buf = b;
        d = c->nesterov ? ax_cm_fmadd(b, c->mom, d) : b;
    }
    *p = ax_cm_fmadd(d, c->neg_lr, *p);
}

/* One element of torch's single-tensor AdamW; lerp takes its second
 * formula when |w| >= 0.5, as torch's does. */
static inline AX_HD void ax_cm_adamw(const ax_adamw_step_params *c, float *p, float *m, float *v, float g) {
    float pi = *p * c->decay;
    float mi = *m;
    mi = fabsf(c->w) < 0.5f ? ax_cm_fmadd(c->w, g - mi, mi) : ax_cm_fmadd(c->w - 1.0f, g - mi, g);
    float vi = *v * c->b2 + c->one_b2 * g * g;
    float denom = sqrtf(vi) / c->bc2_sqrt + c->eps;
    *m = mi;
    *v = vi;
    *p = pi + c->neg_step * mi / denom;
}

/* A norm's term for one element: |x|^p (|x| for p = inf). */
static inline AX_HD double ax_cm_norm_term(float x, double p) {
    double a = fabs((double)x);
    return p == 2 ? a * a : (p == 1 || isinf(p)) ? a : pow(a, p);
}

/* Combine partial results: sum, or NaN-propagating max for p = inf. */
static inline AX_HD double ax_cm_norm_combine(double acc, double part, bool inf) {
    if (!inf) return acc + part;
    return (part != part || acc != acc) ? part + acc : (part > acc ? part : acc);
}

/* ---- fused attention (online softmax; cuda_kernels.cu's sdpa kernels) ------------- */

/* Does query i see key j of S? (causal: torch's top-left j <= i) */
static inline AX_HD bool ax_cm_att_visible(int64_t i, int64_t j, int64_t S, bool causal) {
    return j < S && (!causal || j <= i);
}
/* Factor rescaling a row's running sum and output when its running maximum
 * moves from m_old to m_new >= m_old; 0 while the row has seen nothing
 * (m_old = -inf), so no inf - inf is ever formed. */
static inline AX_HD float ax_cm_att_corr(float m_old, float m_new) {
    return m_old == -INFINITY ? 0.0f : expf(m_old - m_new);
}
/* exp(s - m) for a visible score, 0 for a masked one or when the row has no
 * finite maximum / log-sum-exp (m = -inf). */
static inline AX_HD float ax_cm_att_prob(float s, float m, bool visible) {
    return visible && m != -INFINITY ? expf(s - m) : 0.0f;
}
/* A row's log-sum-exp from its maximum m and sum l of exp(s - m): -inf for
 * a row that saw nothing (its output is 0, as torch's safe softmax). */
static inline AX_HD float ax_cm_att_lse(float m, float l) { return l > 0 ? m + logf(l) : -INFINITY; }

#endif
