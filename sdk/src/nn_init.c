/* Weight initialisers (axon/nn.h), torch.nn.init's formulas over axon's
 * counter RNG.
 *
 * Values are drawn into an f32 (or, for the transformed ones, computed in
 * double and rounded to f32) buffer in C order and copied into the tensor
 * once, so any strides and floating dtypes work and the result depends only
 * on (seed, stream, counter, shape): ax_rng_fill_* are pure per element. */
#include <math.h>
#include <stdlib.h>

#include "axon/autograd.h"
#include "axon/nn.h"

/* ---- helpers ---------------------------------------------------------------- */

static ax_status ax_init_check(const char *fn, const ax_tensor *t, const ax_rng *rng, bool random) {
    if (!t) return AX_ERROR(AX_ERR_INVALID, "%s: t is NULL", fn);
    if (!ax_dtype_is_float(t->dtype))
        return AX_ERROR(AX_ERR_INVALID, "%s: t has dtype %s; initialisers need a floating dtype", fn,
                        ax_dtype_name(t->dtype) ? ax_dtype_name(t->dtype) : "?");
    if (random && !rng) return AX_ERROR(AX_ERR_INVALID, "%s: rng is NULL", fn);
    return AX_OK;
}

/* t[:] = buf (numel f32 values in C order), outside autograd. */
static ax_status ax_init_store(const char *fn, ax_tensor *t, float *buf) {
    ax_tensor *src = NULL, *dev = NULL;
    int64_t n = ax_tensor_numel(t);
    ax_status st = ax_tensor_wrap(&src, t->ndim, t->shape, AX_DTYPE_F32, buf, (size_t)n * sizeof(float), NULL, NULL);
    if (st == AX_OK && t->storage->device.type != AX_DEVICE_CPU)
        st = ax_tensor_to_device(&dev, src, t->storage->device);
    if (st == AX_OK) st = ax_tensor_copy_(t, dev ? dev : src);
    ax_tensor_free(dev);
    ax_tensor_free(src);
    if (st != AX_OK) ax_error_prefix("%s", fn);
    return st;
}

static float *ax_init_buffer(const char *fn, int64_t n) {
    float *buf = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!buf) AX_ERROR(AX_ERR_NOMEM, "%s: cannot allocate %lld floats", fn, (long long)n);
    return buf;
}

/* n uniforms in [0, 1) from words counter .. counter+n-1; advances rng. */
static void ax_init_draw_uniform(ax_rng *rng, int64_t n, float *buf) {
    ax_rng_fill_uniform(rng->seed, rng->stream, rng->counter, (size_t)n, buf);
    rng->counter += (uint64_t)n;
}

/* n standard normals from the word pairs of normal numbers
 * ceil(counter/2) .. + n-1; advances rng past them. */
static void ax_init_draw_normal(ax_rng *rng, int64_t n, float *buf) {
    uint64_t first = (rng->counter + 1) / 2;
    ax_rng_fill_normal(rng->seed, rng->stream, first, (size_t)n, buf);
    rng->counter = 2 * (first + (uint64_t)n);
}

static ax_status ax_init_uniform_impl(const char *fn, ax_tensor *t, double a, double b, ax_rng *rng) {
    int64_t n = ax_tensor_numel(t);
    if (n == 0) return AX_OK;
    float *buf = ax_init_buffer(fn, n);
    if (!buf) return ax_error_status();
    ax_init_draw_uniform(rng, n, buf);
    for (int64_t i = 0; i < n; i++) buf[i] = (float)(a + (b - a) * (double)buf[i]);
    ax_status st = ax_init_store(fn, t, buf);
    free(buf);
    return st;
}

static ax_status ax_init_normal_impl(const char *fn, ax_tensor *t, double mean, double std, ax_rng *rng) {
    int64_t n = ax_tensor_numel(t);
    if (n == 0) return AX_OK;
    float *buf = ax_init_buffer(fn, n);
    if (!buf) return ax_error_status();
    ax_init_draw_normal(rng, n, buf);
    for (int64_t i = 0; i < n; i++) buf[i] = (float)(mean + std * (double)buf[i]);
    ax_status st = ax_init_store(fn, t, buf);
    free(buf);
    return st;
}

/* ---- gain and fans --------------------------------------------------------------- */

double ax_init_calculate_gain(ax_nonlinearity nl, double param) {
    switch (nl) {
    case AX_NL_LINEAR:
    case AX_NL_SIGMOID:
        return 1.0;
    case AX_NL_TANH:
        return 5.0 / 3.0;
    case AX_NL_RELU:
        return sqrt(2.0);
    case AX_NL_LEAKY_RELU:
        return sqrt(2.0 / (1.0 + param * param));
    case AX_NL_SELU:
        return 3.0 / 4.0;
    }
    return NAN;
}

ax_status ax_init_fans(const ax_tensor *t, int64_t *fan_in, int64_t *fan_out) {
    if (!t) return AX_ERROR(AX_ERR_INVALID, "ax_init_fans: t is NULL");
    if (t->ndim < 2) {
        char s[160];
        return AX_ERROR(AX_ERR_INVALID,
                        "ax_init_fans: fan in and fan out can not be computed for t %s with fewer than 2 dimensions",
                        ax_shape_str(s, sizeof s, t->ndim, t->shape));
    }
    int64_t receptive = 1;
    for (int d = 2; d < t->ndim; d++) receptive *= t->shape[d];
    if (fan_in) *fan_in = t->shape[1] * receptive;
    if (fan_out) *fan_out = t->shape[0] * receptive;
    return AX_OK;
}

static bool ax_nl_valid(ax_nonlinearity nl) { return nl >= AX_NL_LINEAR && nl <= AX_NL_SELU; }

/* std of He init, or NAN with the error set. */
static double ax_kaiming_std(const char *fn, const ax_tensor *t, double a, ax_fan_mode mode, ax_nonlinearity nl) {
    int64_t fan_in, fan_out;
    if (mode != AX_FAN_IN && mode != AX_FAN_OUT) {
        AX_ERROR(AX_ERR_INVALID, "%s: mode %d is neither AX_FAN_IN nor AX_FAN_OUT", fn, (int)mode);
        return NAN;
    }
    if (!ax_nl_valid(nl)) {
        AX_ERROR(AX_ERR_INVALID, "%s: unknown nonlinearity %d", fn, (int)nl);
        return NAN;
    }
    if (!isfinite(a)) {
        AX_ERROR(AX_ERR_INVALID, "%s: a = %g is not finite", fn, a);
        return NAN;
    }
    if (ax_init_fans(t, &fan_in, &fan_out) != AX_OK) {
        ax_error_prefix("%s", fn);
        return NAN;
    }
    int64_t fan = mode == AX_FAN_IN ? fan_in : fan_out;
    return ax_init_calculate_gain(nl, a) / sqrt((double)fan);
}

/* std of Glorot init, or NAN with the error set. */
static double ax_xavier_std(const char *fn, const ax_tensor *t, double gain) {
    int64_t fan_in, fan_out;
    if (!isfinite(gain)) {
        AX_ERROR(AX_ERR_INVALID, "%s: gain = %g is not finite", fn, gain);
        return NAN;
    }
    if (ax_init_fans(t, &fan_in, &fan_out) != AX_OK) {
        ax_error_prefix("%s", fn);
        return NAN;
    }
    return gain * sqrt(2.0 / (double)(fan_in + fan_out));
}

/* ---- public initialisers ------------------------------------------------------------ */

ax_status ax_init_constant_(ax_tensor *t, double value) {
    if (ax_init_check("ax_init_constant_", t, NULL, false) != AX_OK) return ax_error_status();
    ax_status st = ax_tensor_fill_(t, value);
    if (st != AX_OK) ax_error_prefix("ax_init_constant_");
    return st;
}

ax_status ax_init_zeros_(ax_tensor *t) { return ax_init_constant_(t, 0.0); }
ax_status ax_init_ones_(ax_tensor *t) { return ax_init_constant_(t, 1.0); }

ax_status ax_init_uniform_(ax_tensor *t, double a, double b, ax_rng *rng) {
    const char *fn = "ax_init_uniform_";
    if (ax_init_check(fn, t, rng, true) != AX_OK) return ax_error_status();
    if (!isfinite(a) || !isfinite(b) || a > b)
        return AX_ERROR(AX_ERR_INVALID, "%s: bounds a = %g, b = %g must be finite with a <= b", fn, a, b);
    return ax_init_uniform_impl(fn, t, a, b, rng);
}

ax_status ax_init_normal_(ax_tensor *t, double mean, double std, ax_rng *rng) {
    const char *fn = "ax_init_normal_";
    if (ax_init_check(fn, t, rng, true) != AX_OK) return ax_error_status();
    if (!isfinite(mean) || !isfinite(std) || std < 0)
        return AX_ERROR(AX_ERR_INVALID, "%s: mean = %g, std = %g must be finite with std >= 0", fn, mean, std);
    return ax_init_normal_impl(fn, t, mean, std, rng);
}

/* Inverse error function: Giles' single-precision approximation ("Approximating
 * the erfinv function", GPU Computing Gems, 2011) refined by two Newton
 * steps on erf in double, good to ~1e-15 away from +-1. */
static double ax_erfinv(double y) {
    if (y <= -1) return -INFINITY;
    if (y >= 1) return INFINITY;
    double w = -log((1.0 - y) * (1.0 + y)), p;
    if (w < 5.0) {
        w -= 2.5;
        p = 2.81022636e-08;
        p = 3.43273939e-07 + p * w;
        p = -3.5233877e-06 + p * w;
        p = -4.39150654e-06 + p * w;
        p = 0.00021858087 + p * w;
        p = -0.00125372503 + p * w;
        p = -0.00417768164 + p * w;
        p = 0.246640727 + p * w;
        p = 1.50140941 + p * w;
    } else {
        w = sqrt(w) - 3.0;
        p = -0.000200214257;
        p = 0.000100950558 + p * w;
        p = 0.00134934322 + p * w;
        p = -0.00367342844 + p * w;
        p = 0.00573950773 + p * w;
        p = -0.0076224613 + p * w;
        p = 0.00943887047 + p * w;
        p = 1.00167406 + p * w;
        p = 2.83297682 + p * w;
    }
    double x = p * y;
    const double two_over_sqrt_pi = 1.1283791670955126;
    for (int i = 0; i < 2; i++) {
        double d = two_over_sqrt_pi * exp(-x * x);
        if (d > 0) x -= (erf(x) - y) / d;
    }
    return x;
}

static double ax_norm_cdf(double x) { return (1.0 + erf(x / sqrt(2.0))) / 2.0; }

ax_status ax_init_trunc_normal_(ax_tensor *t, double mean, double std, double a, double b, ax_rng *rng) {
    const char *fn = "ax_init_trunc_normal_";
    if (ax_init_check(fn, t, rng, true) != AX_OK) return ax_error_status();
    if (!isfinite(mean) || !isfinite(std) || !(std > 0))
        return AX_ERROR(AX_ERR_INVALID, "%s: mean = %g, std = %g must be finite with std > 0", fn, mean, std);
    if (isnan(a) || isnan(b) || !(a < b))
        return AX_ERROR(AX_ERR_INVALID, "%s: bounds a = %g, b = %g need a < b", fn, a, b);
    int64_t n = ax_tensor_numel(t);
    if (n == 0) return AX_OK;
    float *buf = ax_init_buffer(fn, n);
    if (!buf) return ax_error_status();
    /* torch: uniform in [2 cdf(a') - 1, 2 cdf(b') - 1], erfinv, scale by
     * std sqrt(2), shift by mean, clamp to [a, b]. */
    double lo = 2.0 * ax_norm_cdf((a - mean) / std) - 1.0;
    double hi = 2.0 * ax_norm_cdf((b - mean) / std) - 1.0;
    ax_init_draw_uniform(rng, n, buf);
    for (int64_t i = 0; i < n; i++) {
        double v = mean + std * sqrt(2.0) * ax_erfinv(lo + (hi - lo) * (double)buf[i]);
        buf[i] = (float)fmin(fmax(v, a), b);
    }
    ax_status st = ax_init_store(fn, t, buf);
    free(buf);
    return st;
}

ax_status ax_init_kaiming_uniform_(ax_tensor *t, double a, ax_fan_mode mode, ax_nonlinearity nl, ax_rng *rng) {
    const char *fn = "ax_init_kaiming_uniform_";
    if (ax_init_check(fn, t, rng, true) != AX_OK) return ax_error_status();
    if (ax_tensor_numel(t) == 0) return AX_OK; /* torch: a no-op with a warning */
    double std = ax_kaiming_std(fn, t, a, mode, nl);
    if (isnan(std)) return ax_error_status();
    double bound = sqrt(3.0) * std;
    return ax_init_uniform_impl(fn, t, -bound, bound, rng);
}

ax_status ax_init_kaiming_normal_(ax_tensor *t, double a, ax_fan_mode mode, ax_nonlinearity nl, ax_rng *rng) {
    const char *fn = "ax_init_kaiming_normal_";
    if (ax_init_check(fn, t, rng, true) != AX_OK) return ax_error_status();
    if (ax_tensor_numel(t) == 0) return AX_OK;
    double std = ax_kaiming_std(fn, t, a, mode, nl);
    if (isnan(std)) return ax_error_status();
    return ax_init_normal_impl(fn, t, 0.0, std, rng);
}

ax_status ax_init_xavier_uniform_(ax_tensor *t, double gain, ax_rng *rng) {
    const char *fn = "ax_init_xavier_uniform_";
    if (ax_init_check(fn, t, rng, true) != AX_OK) return ax_error_status();
    double std = ax_xavier_std(fn, t, gain);
    if (isnan(std)) return ax_error_status();
    double bound = sqrt(3.0) * std;
    return ax_init_uniform_impl(fn, t, -bound, bound, rng);
}

ax_status ax_init_xavier_normal_(ax_tensor *t, double gain, ax_rng *rng) {
    const char *fn = "ax_init_xavier_normal_";
    if (ax_init_check(fn, t, rng, true) != AX_OK) return ax_error_status();
    double std = ax_xavier_std(fn, t, gain);
    if (isnan(std)) return ax_error_status();
    return ax_init_normal_impl(fn, t, 0.0, std, rng);
}
