/* AUG plugin `blur`: separable Gaussian smoothing with a random sigma per
 * channel and axis (nnU-Net: GaussianBlurTransform, sigma 0.5..1.0, p 0.2
 * per sample, p 0.5 per channel, sigmas drawn per channel and per axis;
 * borders mirrored without repeating the edge voxel, as its torch "reflect"
 * padding; kernel truncated at 4 sigma). Image only. */
#include <stdlib.h>

#include "axon/axon.h"

typedef struct ax_blur {
    float p, p_per_channel, lo, hi;
    int sync_axes;
} ax_blur;

static ax_status ax_blur_create(void **self, const ax_params *params) {
    ax_blur b = {
        .p = (float)ax_params_float(params, "p"),
        .p_per_channel = (float)ax_params_float(params, "p_per_channel"),
        .lo = (float)ax_params_float(params, "sigma_min"),
        .hi = (float)ax_params_float(params, "sigma_max"),
        .sync_axes = ax_params_bool(params, "synchronize_axes"),
    };
    if (!(b.lo <= b.hi))
        return AX_ERROR(AX_ERR_INVALID, "blur: sigma_min (%g) must be <= sigma_max (%g)", b.lo, b.hi);
    ax_blur *m = malloc(sizeof *m);
    if (!m) return AX_ERROR(AX_ERR_NOMEM, "blur: out of memory");
    *m = b;
    *self = m;
    return AX_OK;
}

static void ax_blur_destroy(void *self) { free(self); }

static ax_status ax_blur_apply(const void *self, ax_sample *s, ax_rng *rng) {
    const ax_blur *b = self;
    if (!s->image || s->channels < 1 || s->shape[0] < 1 || s->shape[1] < 1 || s->shape[2] < 1)
        return AX_ERROR(AX_ERR_INVALID, "blur: empty sample (channels %d, shape %dx%dx%d)", s->channels,
                        s->shape[0], s->shape[1], s->shape[2]);
    int apply = ax_rng_bernoulli(rng, b->p);
    size_t n = ax_sample_voxels(s);
    for (int32_t c = 0; c < s->channels; c++) {
        int on = ax_rng_bernoulli(rng, b->p_per_channel);
        double sigma[3];
        for (int a = 0; a < 3; a++) sigma[a] = ax_rng_uniform_range(rng, b->lo, b->hi);
        if (b->sync_axes) sigma[1] = sigma[2] = sigma[0];
        if (!apply || !on) continue;
        ax_status st = ax_gaussian_blur_f32(s->image + (size_t)c * n, s->shape, sigma, AX_BLUR_REFLECT);
        if (st != AX_OK) return ax_error_prefix("blur");
    }
    return AX_OK;
}

static const ax_param_spec ax_blur_params[] = {
    {.name = "p", .type = AX_PARAM_FLOAT, .def = "0.2", .min = 0, .max = 1, .doc = "probability per sample"},
    {.name = "sigma_min", .type = AX_PARAM_FLOAT, .def = "0.5", .min = 0, .max = 100,
     .doc = "smallest Gaussian sigma in voxels"},
    {.name = "sigma_max", .type = AX_PARAM_FLOAT, .def = "1.0", .min = 0, .max = 100,
     .doc = "largest Gaussian sigma in voxels"},
    {.name = "p_per_channel", .type = AX_PARAM_FLOAT, .def = "0.5", .min = 0, .max = 1,
     .doc = "probability per channel"},
    {.name = "synchronize_axes", .type = AX_PARAM_BOOL, .def = "false",
     .doc = "one sigma for D, H and W (default: one per axis, as nnU-Net)"},
    {0}};

static const ax_aug_ops ax_blur_ops = {
    .create = ax_blur_create,
    .destroy = ax_blur_destroy,
    .apply = ax_blur_apply,
};

static const ax_plugin ax_blur_plugin = {
    AX_PLUGIN_HEADER,
    .kind = AX_PLUGIN_AUG,
    .name = "blur",
    .version = "1.0",
    .summary = "random separable Gaussian blur per channel (nnU-Net)",
    .license = "MIT",
    .params = ax_blur_params,
    .ops = &ax_blur_ops,
    .ops_size = sizeof ax_blur_ops,
};

AX_PLUGIN_EXPORT const ax_plugin *const *ax_plugin_entry(void) {
    static const ax_plugin *const list[] = {&ax_blur_plugin, NULL};
    return list;
}
