/* AUG plugin `brightness`: multiplies each channel by a random factor
 * (nnU-Net: MultiplicativeBrightnessTransform, factor from BGContrast over
 * 0.75..1.25, i.e. half the time below 1 and half above, p 0.15, each
 * channel its own factor). Image only. */
#include <stdlib.h>

#include "axon/axon.h"

typedef struct ax_brightness {
    float p, p_per_channel, lo, hi;
} ax_brightness;

static ax_status ax_brightness_create(void **self, const ax_params *params) {
    ax_brightness b = {
        .p = (float)ax_params_float(params, "p"),
        .p_per_channel = (float)ax_params_float(params, "p_per_channel"),
        .lo = (float)ax_params_float(params, "factor_min"),
        .hi = (float)ax_params_float(params, "factor_max"),
    };
    if (!(b.lo <= b.hi))
        return AX_ERROR(AX_ERR_INVALID, "brightness: factor_min (%g) must be <= factor_max (%g)", b.lo, b.hi);
    ax_brightness *m = malloc(sizeof *m);
    if (!m) return AX_ERROR(AX_ERR_NOMEM, "brightness: out of memory");
    *m = b;
    *self = m;
    return AX_OK;
}

static void ax_brightness_destroy(void *self) { free(self); }

/* BGContrast: two draws always. */
static float ax_brightness_draw(ax_rng *r, float lo, float hi) {
    float u = ax_rng_uniform(r), v = ax_rng_uniform(r);
    if (lo < 1.0f && hi > 1.0f) {
        if (u < 0.5f) return lo + (1.0f - lo) * v;
        return 1.0f + (hi - 1.0f) * v;
    }
    return lo + (hi - lo) * v;
}

static ax_status ax_brightness_apply(const void *self, ax_sample *s, ax_rng *rng) {
    const ax_brightness *b = self;
    if (!s->image || s->channels < 1 || s->shape[0] < 1 || s->shape[1] < 1 || s->shape[2] < 1)
        return AX_ERROR(AX_ERR_INVALID, "brightness: empty sample (channels %d, shape %dx%dx%d)", s->channels,
                        s->shape[0], s->shape[1], s->shape[2]);
    int apply = ax_rng_bernoulli(rng, b->p);
    size_t n = ax_sample_voxels(s);
    for (int32_t c = 0; c < s->channels; c++) {
        int on = ax_rng_bernoulli(rng, b->p_per_channel);
        float f = ax_brightness_draw(rng, b->lo, b->hi);
        if (!apply || !on) continue;
        float *x = s->image + (size_t)c * n;
        for (size_t i = 0; i < n; i++) x[i] *= f;
    }
    return AX_OK;
}

static const ax_param_spec ax_brightness_params[] = {
    {.name = "p", .type = AX_PARAM_FLOAT, .def = "0.15", .min = 0, .max = 1, .doc = "probability per sample"},
    {.name = "factor_min", .type = AX_PARAM_FLOAT, .def = "0.75", .min = 0, .max = 100,
     .doc = "smallest multiplier (drawn below 1 half the time, as BGContrast)"},
    {.name = "factor_max", .type = AX_PARAM_FLOAT, .def = "1.25", .min = 0, .max = 100, .doc = "largest multiplier"},
    {.name = "p_per_channel", .type = AX_PARAM_FLOAT, .def = "1", .min = 0, .max = 1,
     .doc = "probability per channel (each channel draws its own factor)"},
    {0}};

static const ax_aug_ops ax_brightness_ops = {
    .create = ax_brightness_create,
    .destroy = ax_brightness_destroy,
    .apply = ax_brightness_apply,
};

static const ax_plugin ax_brightness_plugin = {
    AX_PLUGIN_HEADER,
    .kind = AX_PLUGIN_AUG,
    .name = "brightness",
    .version = "1.0",
    .summary = "random multiplicative brightness per channel (nnU-Net)",
    .license = "MIT",
    .params = ax_brightness_params,
    .ops = &ax_brightness_ops,
    .ops_size = sizeof ax_brightness_ops,
};

AX_PLUGIN_EXPORT const ax_plugin *const *ax_plugin_entry(void) {
    static const ax_plugin *const list[] = {&ax_brightness_plugin, NULL};
    return list;
}
