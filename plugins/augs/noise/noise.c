/* AUG plugin `noise`: adds Gaussian noise N(0, sigma^2) with sigma drawn
 * uniformly from [std_min, std_max] (nnU-Net: GaussianNoiseTransform with
 * noise_variance (0, 0.1), p 0.1; despite its name batchgenerators uses the
 * drawn value as the standard deviation, and so does this plugin). With
 * synchronize_channels every channel shares one sigma. Image only.
 *
 * The noise comes straight from the sample's Philox stream (uniforms from
 * ax_rng_fill_uniform, starting where the rng stands, through Box-Muller),
 * and the rng is moved past them, so the result does not depend on thread
 * count or chunking. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "axon/axon.h"

typedef struct ax_noise {
    float p, p_per_channel, lo, hi;
    int sync;
} ax_noise;

static ax_status ax_noise_create(void **self, const ax_params *params) {
    ax_noise k = {
        .p = (float)ax_params_float(params, "p"),
        .p_per_channel = (float)ax_params_float(params, "p_per_channel"),
        .lo = (float)ax_params_float(params, "std_min"),
        .hi = (float)ax_params_float(params, "std_max"),
        .sync = ax_params_bool(params, "synchronize_channels"),
    };
    if (!(k.lo <= k.hi))
        return AX_ERROR(AX_ERR_INVALID, "noise: std_min (%g) must be <= std_max (%g)", k.lo, k.hi);
    ax_noise *m = malloc(sizeof *m);
    if (!m) return AX_ERROR(AX_ERR_NOMEM, "noise: out of memory");
    *m = k;
    *self = m;
    return AX_OK;
}

static void ax_noise_destroy(void *self) { free(self); }

/* Box-Muller with polynomial log and sin/cos that the compiler vectorises
 * (libm's scalar calls cost 5x torch's SIMD normal_). For u1 in (0, 1] and
 * t in [-pi, pi): z0 = r cos t, z1 = r sin t with r = sqrt(-2 log u1).
 * log: u1 = m 2^e, m in [1, 2), log m = 2 atanh(s), s = (m-1)/(m+1) < 1/3,
 * series to s^11 (error < 1e-7); sin/cos: Taylor to x^15 / x^16 on
 * [-pi, pi] (error < 1e-6). */
static void ax_noise_box_muller(const float *restrict u, size_t pairs, float *restrict z) {
    /* u1 from the first half of u, u2 from the second (contiguous loads);
     * z0 to the first half of z, z1 to the second. */
#pragma omp simd
    for (size_t i = 0; i < pairs; i++) {
        float u1 = 1.0f - u[i]; /* (0, 1] */
        uint32_t bits;
        memcpy(&bits, &u1, sizeof bits);
        float e = (float)((int32_t)(bits >> 23) - 127);
        uint32_t mb = (bits & 0x007fffffu) | 0x3f800000u;
        float m;
        memcpy(&m, &mb, sizeof m);
        float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;
        float lm = 2.0f * s *
                   (1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9 + s2 * (1.0f / 11))))));
        float lg = e * 0.69314718f + lm;
        float r = sqrtf(-2.0f * lg);
        float t = 6.28318531f * (u[pairs + i] - 0.5f), t2 = t * t;
        float sn = t * (1.0f + t2 * (-1.0f / 6 + t2 * (1.0f / 120 + t2 * (-1.0f / 5040 + t2 * (1.0f / 362880 +
                        t2 * (-1.0f / 39916800 + t2 * (1.0f / 6227020800.0f + t2 * (-1.0f / 1307674368000.0f))))))));
        float cs = 1.0f + t2 * (-0.5f + t2 * (1.0f / 24 + t2 * (-1.0f / 720 + t2 * (1.0f / 40320 +
                        t2 * (-1.0f / 3628800 + t2 * (1.0f / 479001600 + t2 * (-1.0f / 87178291200.0f +
                        t2 * (1.0f / 20922789888000.0f))))))));
        z[i] = r * cs;
        z[pairs + i] = r * sn;
    }
}

/* x += sigma * N(0, 1) with the uniforms at words [first, first + 2 ceil(n/2))
 * of the sample's stream. Chunks stay far below the size at which
 * ax_rng_fill_uniform goes parallel: augmentation runs on loader threads. */
static void ax_noise_channel(float *x, size_t n, float sigma, const ax_rng *r, uint64_t first) {
    enum { CHUNK = 2048 }; /* even */
    float u[CHUNK], z[CHUNK];
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t k = n - i < CHUNK ? n - i : CHUNK, k2 = (k + 1) & ~(size_t)1;
        ax_rng_fill_uniform(r->seed, r->stream, first + i, k2, u);
        ax_noise_box_muller(u, k2 / 2, z);
        for (size_t j = 0; j < k; j++) x[i + j] += sigma * z[j];
    }
}

static ax_status ax_noise_apply(const void *self, ax_sample *s, ax_rng *rng) {
    const ax_noise *k = self;
    if (!s->image || s->channels < 1 || s->shape[0] < 1 || s->shape[1] < 1 || s->shape[2] < 1)
        return AX_ERROR(AX_ERR_INVALID, "noise: empty sample (channels %d, shape %dx%dx%d)", s->channels,
                        s->shape[0], s->shape[1], s->shape[2]);
    int apply = ax_rng_bernoulli(rng, k->p);
    float shared = ax_rng_uniform_range(rng, k->lo, k->hi);
    size_t n = ax_sample_voxels(s);
    for (int32_t c = 0; c < s->channels; c++) {
        int on = ax_rng_bernoulli(rng, k->p_per_channel);
        float sigma = ax_rng_uniform_range(rng, k->lo, k->hi);
        if (k->sync) sigma = shared;
        if (!apply || !on || sigma == 0.0f) continue;
        uint64_t first = rng->counter;
        ax_noise_channel(s->image + (size_t)c * n, n, sigma, rng, first);
        ax_rng_seek(rng, first + ((n + 1) & ~(size_t)1));
    }
    return AX_OK;
}

static const ax_param_spec ax_noise_params[] = {
    {.name = "p", .type = AX_PARAM_FLOAT, .def = "0.1", .min = 0, .max = 1, .doc = "probability per sample"},
    {.name = "std_min", .type = AX_PARAM_FLOAT, .def = "0", .min = 0, .max = 1e6,
     .doc = "smallest noise standard deviation (nnU-Net's noise_variance[0])"},
    {.name = "std_max", .type = AX_PARAM_FLOAT, .def = "0.1", .min = 0, .max = 1e6,
     .doc = "largest noise standard deviation (nnU-Net's noise_variance[1])"},
    {.name = "p_per_channel", .type = AX_PARAM_FLOAT, .def = "1", .min = 0, .max = 1,
     .doc = "probability per channel"},
    {.name = "synchronize_channels", .type = AX_PARAM_BOOL, .def = "false",
     .doc = "one sigma for all channels (each channel still gets its own noise)"},
    {0}};

static const ax_aug_ops ax_noise_ops = {
    .create = ax_noise_create,
    .destroy = ax_noise_destroy,
    .apply = ax_noise_apply,
};

static const ax_plugin ax_noise_plugin = {
    AX_PLUGIN_HEADER,
    .kind = AX_PLUGIN_AUG,
    .name = "noise",
    .version = "1.0",
    .summary = "additive Gaussian noise with a random standard deviation (nnU-Net)",
    .license = "MIT",
    .params = ax_noise_params,
    .ops = &ax_noise_ops,
    .ops_size = sizeof ax_noise_ops,
};

AX_PLUGIN_EXPORT const ax_plugin *const *ax_plugin_entry(void) {
    static const ax_plugin *const list[] = {&ax_noise_plugin, NULL};
    return list;
}
