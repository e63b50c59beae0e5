/* AUG plugin `gamma`: nnU-Net's gamma augmentation. Per channel the image is
 * rescaled to [0, 1] over its own range, raised to a random gamma and
 * mapped back; with retain_stats the result is shifted and scaled back to
 * the channel's original mean and standard deviation. p_invert applies the
 * curve to the negated image (nnU-Net runs this plugin twice: p_invert 1 at
 * p 0.1 and p_invert 0 at p 0.3, both gamma 0.7..1.5, retain stats).
 * Gamma is drawn as batchgenerators' BGContrast: with probability 1/2 from
 * [gamma_min, 1), otherwise from [1, gamma_max]. Image only. */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "axon/axon.h"

typedef struct ax_gamma {
    float p, p_per_channel, p_invert, p_retain_stats;
    float lo, hi;
} ax_gamma;

static ax_status ax_gamma_create(void **self, const ax_params *params) {
    ax_gamma g = {
        .p = (float)ax_params_float(params, "p"),
        .p_per_channel = (float)ax_params_float(params, "p_per_channel"),
        .p_invert = (float)ax_params_float(params, "p_invert"),
        .p_retain_stats = (float)ax_params_float(params, "p_retain_stats"),
        .lo = (float)ax_params_float(params, "gamma_min"),
        .hi = (float)ax_params_float(params, "gamma_max"),
    };
    if (!(g.lo <= g.hi))
        return AX_ERROR(AX_ERR_INVALID, "gamma: gamma_min (%g) must be <= gamma_max (%g)", g.lo, g.hi);
    ax_gamma *m = malloc(sizeof *m);
    if (!m) return AX_ERROR(AX_ERR_NOMEM, "gamma: out of memory");
    *m = g;
    *self = m;
    return AX_OK;
}

static void ax_gamma_destroy(void *self) { free(self); }

/* BGContrast: two draws always, so the stream advances the same way. */
static float ax_gamma_draw(ax_rng *r, float lo, float hi) {
    float u = ax_rng_uniform(r), v = ax_rng_uniform(r);
    if (lo < 1.0f && hi > 1.0f) {
        if (u < 0.5f) return lo + (1.0f - lo) * v;
        return 1.0f + (hi - 1.0f) * v;
    }
    return lo + (hi - lo) * v;
}

static void ax_gamma_channel(float *x, size_t n, float gamma, int invert, int retain) {
    float sign = invert ? -1.0f : 1.0f;
    double sum = 0.0, sq = 0.0;
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (size_t i = 0; i < n; i++) {
        float v = sign * x[i];
        sum += v;
        sq += (double)v * v;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    double mean = sum / (double)n;
    double std = n > 1 ? sqrt(fmax(0.0, (sq - sum * mean) / (double)(n - 1))) : 0.0;
    float range = hi - lo, inv = 1.0f / (range > 1e-7f ? range : 1e-7f);
    double sum2 = 0.0, sq2 = 0.0;
    for (size_t i = 0; i < n; i++) {
        float v = powf((sign * x[i] - lo) * inv, gamma) * range + lo;
        x[i] = v;
        sum2 += v;
        sq2 += (double)v * v;
    }
    float a = 1.0f, b = 0.0f; /* y = a * v + b, then undo the inversion */
    if (retain) {
        double mean2 = sum2 / (double)n;
        double std2 = n > 1 ? sqrt(fmax(0.0, (sq2 - sum2 * mean2) / (double)(n - 1))) : 0.0;
        a = (float)(std / (std2 > 1e-7 ? std2 : 1e-7));
        b = (float)(mean - mean2 * a);
    }
    a *= sign;
    b *= sign;
    for (size_t i = 0; i < n; i++) x[i] = a * x[i] + b;
}

static ax_status ax_gamma_apply(const void *self, ax_sample *s, ax_rng *rng) {
    const ax_gamma *g = self;
    if (!s->image || s->channels < 1 || s->shape[0] < 1 || s->shape[1] < 1 || s->shape[2] < 1)
        return AX_ERROR(AX_ERR_INVALID, "gamma: empty sample (channels %d, shape %dx%dx%d)", s->channels,
                        s->shape[0], s->shape[1], s->shape[2]);
    int apply = ax_rng_bernoulli(rng, g->p);
    size_t n = ax_sample_voxels(s);
    for (int32_t c = 0; c < s->channels; c++) {
        /* Five draws per channel whatever happens. */
        int on = ax_rng_bernoulli(rng, g->p_per_channel);
        int retain = ax_rng_bernoulli(rng, g->p_retain_stats);
        int invert = ax_rng_bernoulli(rng, g->p_invert);
        float gamma = ax_gamma_draw(rng, g->lo, g->hi);
        if (apply && on) ax_gamma_channel(s->image + (size_t)c * n, n, gamma, invert, retain);
    }
    return AX_OK;
}

static const ax_param_spec ax_gamma_params[] = {
    {.name = "p", .type = AX_PARAM_FLOAT, .def = "0.3", .min = 0, .max = 1,
     .doc = "probability per sample (nnU-Net: 0.3, and 0.1 for the inverted variant)"},
    {.name = "gamma_min", .type = AX_PARAM_FLOAT, .def = "0.7", .min = 0.01, .max = 100,
     .doc = "smallest gamma (drawn below 1 half the time, as batchgenerators' BGContrast)"},
    {.name = "gamma_max", .type = AX_PARAM_FLOAT, .def = "1.5", .min = 0.01, .max = 100, .doc = "largest gamma"},
    {.name = "p_invert", .type = AX_PARAM_FLOAT, .def = "0", .min = 0, .max = 1,
     .doc = "probability of applying the curve to the negated image (nnU-Net's second instance: 1)"},
    {.name = "p_retain_stats", .type = AX_PARAM_FLOAT, .def = "1", .min = 0, .max = 1,
     .doc = "probability of restoring the channel's mean and std afterwards"},
    {.name = "p_per_channel", .type = AX_PARAM_FLOAT, .def = "1", .min = 0, .max = 1,
     .doc = "probability per channel (each channel draws its own gamma)"},
    {0}};

static const ax_aug_ops ax_gamma_ops = {
    .create = ax_gamma_create,
    .destroy = ax_gamma_destroy,
    .apply = ax_gamma_apply,
};

static const ax_plugin ax_gamma_plugin = {
    AX_PLUGIN_HEADER,
    .kind = AX_PLUGIN_AUG,
    .name = "gamma",
    .version = "1.0",
    .summary = "random gamma curve per channel over its range, mean/std retained (nnU-Net)",
    .license = "MIT",
    .params = ax_gamma_params,
    .ops = &ax_gamma_ops,
    .ops_size = sizeof ax_gamma_ops,
};

AX_PLUGIN_EXPORT const ax_plugin *const *ax_plugin_entry(void) {
    static const ax_plugin *const list[] = {&ax_gamma_plugin, NULL};
    return list;
}
