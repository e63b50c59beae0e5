/* AUG plugin `lowres`: simulates a low-resolution acquisition. A channel is
 * downsampled by a random zoom in [zoom_min, zoom_max] (same zoom on every
 * axis) with nearest neighbour, then brought back to its shape with
 * trilinear interpolation (nnU-Net: SimulateLowResolutionTransform, zoom
 * 0.5..1, p 0.25 per sample, p 0.5 per channel; torch "nearest-exact" down,
 * "trilinear" with align_corners=False up, which is what the two ax_warp
 * maps below reproduce). Image only. */
#include <math.h>
#include <stdlib.h>

#include "axon/axon.h"

typedef struct ax_lowres {
    float p, p_per_channel, lo, hi;
    int sync_axes;
} ax_lowres;

static ax_status ax_lowres_create(void **self, const ax_params *params) {
    ax_lowres l = {
        .p = (float)ax_params_float(params, "p"),
        .p_per_channel = (float)ax_params_float(params, "p_per_channel"),
        .lo = (float)ax_params_float(params, "zoom_min"),
        .hi = (float)ax_params_float(params, "zoom_max"),
        .sync_axes = ax_params_bool(params, "synchronize_axes"),
    };
    if (!(l.lo <= l.hi))
        return AX_ERROR(AX_ERR_INVALID, "lowres: zoom_min (%g) must be <= zoom_max (%g)", l.lo, l.hi);
    ax_lowres *m = malloc(sizeof *m);
    if (!m) return AX_ERROR(AX_ERR_NOMEM, "lowres: out of memory");
    *m = l;
    *self = m;
    return AX_OK;
}

static void ax_lowres_destroy(void *self) { free(self); }

/* Map for resizing `from` voxels to `to` with centres aligned as torch's
 * align_corners=False: p = (o + 0.5) * from / to - 0.5. */
static void ax_lowres_map(ax_warp *w, const int32_t to[3], const int32_t from[3]) {
    *w = ax_warp_identity();
    for (int a = 0; a < 3; a++) {
        double r = (double)from[a] / (double)to[a];
        w->matrix[a][a] = r;
        w->matrix[a][3] = 0.5 * r - 0.5;
    }
    w->border = AX_WARP_BORDER_EDGE;
}

static ax_status ax_lowres_channel(float *x, const int32_t shape[3], const double zoom[3]) {
    int32_t small[3];
    for (int a = 0; a < 3; a++) {
        double m = nearbyint((double)shape[a] * zoom[a]);
        small[a] = m < 1.0 ? 1 : (int32_t)m;
    }
    float *tmp = malloc((size_t)small[0] * (size_t)small[1] * (size_t)small[2] * sizeof *tmp);
    if (!tmp) return AX_ERROR(AX_ERR_NOMEM, "lowres: out of memory for %dx%dx%d", small[0], small[1], small[2]);
    ax_warp down, up;
    ax_lowres_map(&down, small, shape);
    down.interp = AX_INTERP_NEAREST;
    ax_lowres_map(&up, shape, small);
    ax_status st = ax_warp_f32(tmp, small, x, shape, 1, &down);
    if (st == AX_OK) st = ax_warp_f32(x, shape, tmp, small, 1, &up);
    free(tmp);
    return st;
}

static ax_status ax_lowres_apply(const void *self, ax_sample *s, ax_rng *rng) {
    const ax_lowres *l = self;
    if (!s->image || s->channels < 1 || s->shape[0] < 1 || s->shape[1] < 1 || s->shape[2] < 1)
        return AX_ERROR(AX_ERR_INVALID, "lowres: empty sample (channels %d, shape %dx%dx%d)", s->channels,
                        s->shape[0], s->shape[1], s->shape[2]);
    int apply = ax_rng_bernoulli(rng, l->p);
    size_t n = ax_sample_voxels(s);
    for (int32_t c = 0; c < s->channels; c++) {
        int on = ax_rng_bernoulli(rng, l->p_per_channel);
        double zoom[3];
        for (int a = 0; a < 3; a++) zoom[a] = ax_rng_uniform_range(rng, l->lo, l->hi);
        if (l->sync_axes) zoom[1] = zoom[2] = zoom[0];
        if (!apply || !on) continue;
        ax_status st = ax_lowres_channel(s->image + (size_t)c * n, s->shape, zoom);
        if (st != AX_OK) return ax_error_prefix("lowres");
    }
    return AX_OK;
}

static const ax_param_spec ax_lowres_params[] = {
    {.name = "p", .type = AX_PARAM_FLOAT, .def = "0.25", .min = 0, .max = 1, .doc = "probability per sample"},
    {.name = "zoom_min", .type = AX_PARAM_FLOAT, .def = "0.5", .min = 0.01, .max = 1,
     .doc = "smallest zoom of the simulated acquisition (0.5: half the voxels per axis)"},
    {.name = "zoom_max", .type = AX_PARAM_FLOAT, .def = "1.0", .min = 0.01, .max = 1, .doc = "largest zoom"},
    {.name = "p_per_channel", .type = AX_PARAM_FLOAT, .def = "0.5", .min = 0, .max = 1,
     .doc = "probability per channel (each channel draws its own zoom)"},
    {.name = "synchronize_axes", .type = AX_PARAM_BOOL, .def = "true",
     .doc = "one zoom for D, H and W (nnU-Net), else one per axis"},
    {0}};

static const ax_aug_ops ax_lowres_ops = {
    .create = ax_lowres_create,
    .destroy = ax_lowres_destroy,
    .apply = ax_lowres_apply,
};

static const ax_plugin ax_lowres_plugin = {
    AX_PLUGIN_HEADER,
    .kind = AX_PLUGIN_AUG,
    .name = "lowres",
    .version = "1.0",
    .summary = "simulated low resolution: nearest downsampling, trilinear upsampling (nnU-Net)",
    .license = "MIT",
    .params = ax_lowres_params,
    .ops = &ax_lowres_ops,
    .ops_size = sizeof ax_lowres_ops,
};

AX_PLUGIN_EXPORT const ax_plugin *const *ax_plugin_entry(void) {
    static const ax_plugin *const list[] = {&ax_lowres_plugin, NULL};
    return list;
}
