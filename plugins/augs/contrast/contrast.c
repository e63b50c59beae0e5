/* AUG plugin `contrast`: scales each channel about its mean,
 * x -> (x - mean) * f + mean, optionally clipped back to the channel's
 * original [min, max] (nnU-Net: ContrastTransform, f from BGContrast over
 * 0.75..1.25, preserve_range, p 0.15, each channel its own factor). Image
 * only. */
#include <float.h>
#include <stdlib.h>

#include "axon/axon.h"

typedef struct ax_contrast {
    float p, p_per_channel, lo, hi;
    int preserve_range;
} ax_contrast;

static ax_status ax_contrast_create(void **self, const ax_params *params) {
    ax_contrast c = {
        .p = (float)ax_params_float(params, "p"),
        .p_per_channel = (float)ax_params_float(params, "p_per_channel"),
        .lo = (float)ax_params_float(params, "factor_min"),
        .hi = (float)ax_params_float(params, "factor_max"),
        .preserve_range = ax_params_bool(params, "preserve_range"),
    };
    if (!(c.lo <= c.hi))
        return AX_ERROR(AX_ERR_INVALID, "contrast: factor_min (%g) must be <= factor_max (%g)", c.lo, c.hi);
    ax_contrast *m = malloc(sizeof *m);
    if (!m) return AX_ERROR(AX_ERR_NOMEM, "contrast: out of memory");
    *m = c;
    *self = m;
    return AX_OK;
}

static void ax_contrast_destroy(void *self) { free(self); }

/* BGContrast: two draws always. */
static float ax_contrast_draw(ax_rng *r, float lo, float hi) {
    float u = ax_rng_uniform(r), v = ax_rng_uniform(r);
    if (lo < 1.0f && hi > 1.0f) {
        if (u < 0.5f) return lo + (1.0f - lo) * v;
        return 1.0f + (hi - 1.0f) * v;
    }
    return lo + (hi - lo) * v;
}

static void ax_contrast_channel(float *x, size_t n, float f, int preserve) {
    double sum = 0.0;
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (size_t i = 0; i < n; i++) {
        sum += x[i];
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    float mean = (float)(sum / (double)n), b = mean - f * mean;
    if (preserve) {
        for (size_t i = 0; i < n; i++) {
            float v = f * x[i] + b;
            v = v < lo ? lo : v;
            x[i] = v > hi ? hi : v;
        }
    } else {
        for (size_t i = 0; i < n; i++) x[i] = f * x[i] + b;
    }
}

static ax_status ax_contrast_apply(const void *self, ax_sample *s, ax_rng *rng) {
    const ax_contrast *k = self;
    if (!s->image || s->channels < 1 || s->shape[0] < 1 || s->shape[1] < 1 || s->shape[2] < 1)
        return AX_ERROR(AX_ERR_INVALID, "contrast: empty sample (channels %d, shape %dx%dx%d)", s->channels,
                        s->shape[0], s->shape[1], s->shape[2]);
    int apply = ax_rng_bernoulli(rng, k->p);
    size_t n = ax_sample_voxels(s);
    for (int32_t c = 0; c < s->channels; c++) {
        int on = ax_rng_bernoulli(rng, k->p_per_channel);
        float f = ax_contrast_draw(rng, k->lo, k->hi);
        if (apply && on) ax_contrast_channel(s->image + (size_t)c * n, n, f, k->preserve_range);
    }
    return AX_OK;
}

static const ax_param_spec ax_contrast_params[] = {
    {.name = "p", .type = AX_PARAM_FLOAT, .def = "0.15", .min = 0, .max = 1, .doc = "probability per sample"},
    {.name = "factor_min", .type = AX_PARAM_FLOAT, .def = "0.75", .min = 0, .max = 100,
     .doc = "smallest contrast factor (drawn below 1 half the time, as BGContrast)"},
    {.name = "factor_max", .type = AX_PARAM_FLOAT, .def = "1.25", .min = 0, .max = 100,
     .doc = "largest contrast factor"},
    {.name = "preserve_range", .type = AX_PARAM_BOOL, .def = "true",
     .doc = "clip to the channel's original [min, max]"},
    {.name = "p_per_channel", .type = AX_PARAM_FLOAT, .def = "1", .min = 0, .max = 1,
     .doc = "probability per channel (each channel draws its own factor)"},
    {0}};

static const ax_aug_ops ax_contrast_ops = {
    .create = ax_contrast_create,
    .destroy = ax_contrast_destroy,
    .apply = ax_contrast_apply,
};

static const ax_plugin ax_contrast_plugin = {
    AX_PLUGIN_HEADER,
    .kind = AX_PLUGIN_AUG,
    .name = "contrast",
    .version = "1.0",
    .summary = "random contrast about the channel mean, range preserved (nnU-Net)",
    .license = "MIT",
    .params = ax_contrast_params,
    .ops = &ax_contrast_ops,
    .ops_size = sizeof ax_contrast_ops,
};

AX_PLUGIN_EXPORT const ax_plugin *const *ax_plugin_entry(void) {
    static const ax_plugin *const list[] = {&ax_contrast_plugin, NULL};
    return list;
}
