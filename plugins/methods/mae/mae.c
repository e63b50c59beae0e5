/* METHOD plugin `mae`: masked auto-encoding for CNNs, as in the reference
 * pre-training of ResEnc U-Nets (nnssl's BaseMAETrainer).
 *
 * Per sample, the patch is cut into a grid of `block`^3 voxel cubes
 * (ceil(P / block) cubes per axis: border cubes may be partial; with a
 * divisible patch this is the reference's grid), floor(mask_ratio * cubes)
 * of them are chosen uniformly without replacement (a partial Fisher-Yates
 * shuffle drawing from the step's ax_rng, sample after sample), and zeroed
 * in every channel. The backbone sees the masked image and must output the
 * full image; the loss is the squared (or absolute) error on the masked
 * voxels only, averaged over masked voxels and channels.
 *
 * Difference from nnssl for C > 1 channels: nnssl divides the masked sum by
 * the number of masked voxels of its [N, 1, ...] mask, so its loss is C
 * times ours; for the single-channel MRI of the benchmark both agree. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "axon/loss.h"
#include "axon/plugin.h"

typedef enum ax_mae_loss_kind { AX_MAE_MSE = 0, AX_MAE_L1 = 1 } ax_mae_loss_kind;

typedef struct ax_mae {
    double mask_ratio;
    int64_t block;
    ax_mae_loss_kind loss;
} ax_mae;

static ax_status ax_mae_create(void **self, const ax_params *params) {
    ax_mae *m = calloc(1, sizeof *m);
    if (!m) return AX_ERROR(AX_ERR_NOMEM, "mae: out of memory");
    m->mask_ratio = ax_params_float(params, "mask_ratio");
    m->block = ax_params_int(params, "block");
    m->loss = strcmp(ax_params_string(params, "loss"), "l1") == 0 ? AX_MAE_L1 : AX_MAE_MSE;
    *self = m;
    return AX_OK;
}

static void ax_mae_destroy(void *self) { free(self); }

static ax_status ax_mae_out_channels(const void *self, int64_t in_channels, int64_t *out) {
    (void)self;
    if (in_channels < 1)
        return AX_ERROR(AX_ERR_INVALID, "mae: in_channels must be >= 1, got %lld", (long long)in_channels);
    *out = in_channels; /* reconstruct every input channel */
    return AX_OK;
}

static ax_status ax_mae_check_input(const ax_tensor *x) {
    char buf[96];
    if (!x || x->ndim != 5 || x->dtype != AX_DTYPE_F32)
        return AX_ERROR(AX_ERR_INVALID, "mae: x must be f32 [N, C, D, H, W], got %s %s",
                        x ? ax_dtype_name(x->dtype) : "NULL",
                        x ? ax_shape_str(buf, sizeof buf, x->ndim, x->shape) : "");
    return AX_OK;
}

/* keep: [N, 1, D, H, W] f32, 1 = visible, 0 = masked (new reference). */
static ax_status ax_mae_make_mask(const ax_mae *m, const ax_tensor *x, ax_rng *rng, ax_tensor **keep) {
    const int64_t n = x->shape[0], d = x->shape[2], h = x->shape[3], w = x->shape[4];
    const int64_t b = m->block;
    const int64_t gd = (d + b - 1) / b, gh = (h + b - 1) / b, gw = (w + b - 1) / b;
    const int64_t cubes = gd * gh * gw;
    const int64_t n_masked = (int64_t)floor(m->mask_ratio * (double)cubes);
    if (n_masked < 1)
        return AX_ERROR(AX_ERR_INVALID,
                        "mae: mask_ratio %g of %lld cube(s) of %lld^3 voxels in a %lldx%lldx%lld patch masks "
                        "nothing; use a smaller block or a larger patch",
                        m->mask_ratio, (long long)cubes, (long long)b, (long long)d, (long long)h, (long long)w);
    if (cubes > (int64_t)UINT32_MAX) return AX_ERROR(AX_ERR_INVALID, "mae: too many cubes (%lld)", (long long)cubes);
    int64_t shape[5] = {n, 1, d, h, w};
    ax_status st = ax_tensor_ones(keep, 5, shape, AX_DTYPE_F32);
    if (st != AX_OK) return st;
    uint32_t *perm = malloc((size_t)cubes * sizeof *perm);
    if (!perm) {
        ax_tensor_free(*keep);
        *keep = NULL;
        return AX_ERROR(AX_ERR_NOMEM, "mae: out of memory");
    }
    float *k = ax_tensor_data(*keep);
    for (int64_t s = 0; s < n; s++) {
        for (int64_t i = 0; i < cubes; i++) perm[i] = (uint32_t)i;
        for (int64_t i = 0; i < n_masked; i++) {
            int64_t j = i + (int64_t)ax_rng_below(rng, (uint32_t)(cubes - i));
            uint32_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        float *ks = k + s * d * h * w;
        for (int64_t i = 0; i < n_masked; i++) {
            int64_t c = perm[i];
            int64_t cz = c / (gh * gw), cy = (c / gw) % gh, cx = c % gw;
            int64_t z1 = (cz + 1) * b < d ? (cz + 1) * b : d;
            int64_t y1 = (cy + 1) * b < h ? (cy + 1) * b : h;
            int64_t x1 = (cx + 1) * b < w ? (cx + 1) * b : w;
            for (int64_t z = cz * b; z < z1; z++)
                for (int64_t y = cy * b; y < y1; y++) {
                    float *row = ks + (z * h + y) * w;
                    for (int64_t xx = cx * b; xx < x1; xx++) row[xx] = 0.0f;
                }
        }
    }
    free(perm);
    return AX_OK;
}

/* Replaces *t (a CPU tensor built on the host) by its copy on like's
 * device when the batch lives on a GPU; AX_OK and no change on the CPU. */
static ax_status ax_mae_to_device_of(const ax_tensor *like, ax_tensor **t) {
    ax_device d = like->storage->device;
    if (d.type == AX_DEVICE_CPU) return AX_OK;
    ax_tensor *moved = NULL;
    ax_status st = ax_tensor_to_device(&moved, *t, d);
    if (st != AX_OK) return st;
    ax_tensor_free(*t);
    *t = moved;
    return AX_OK;
}

/* Masked input and the network's reconstruction of it (both new). keep
 * stays on the CPU (the loss reads it); the product uses a copy on x's device. */
static ax_status ax_mae_forward(const ax_mae *m, ax_module *net, const ax_tensor *x, ax_rng *rng,
                                ax_tensor **keep, ax_tensor **view, ax_tensor **recon) {
    ax_status st = ax_mae_check_input(x);
    if (st == AX_OK) st = ax_mae_make_mask(m, x, rng, keep);
    ax_tensor *keep_dev = st == AX_OK ? ax_tensor_retain(*keep) : NULL;
    if (st == AX_OK) st = ax_mae_to_device_of(x, &keep_dev);
    if (st == AX_OK) st = ax_mul(view, x, keep_dev);
    ax_tensor_free(keep_dev);
    if (st == AX_OK) st = ax_module_forward(net, recon, *view);
    if (st == AX_OK && !ax_tensor_same_shape(*recon, x)) {
        char a[96], b[96];
        st = AX_ERROR(AX_ERR_INVALID, "mae: the network returned %s for an input of %s; it must reconstruct the input "
                      "(out_channels = in_channels, full resolution)",
                      ax_shape_str(a, sizeof a, (*recon)->ndim, (*recon)->shape),
                      ax_shape_str(b, sizeof b, x->ndim, x->shape));
    }
    return st;
}

static ax_status ax_mae_loss(const void *self, ax_module *net, const ax_tensor *x, ax_rng *rng, ax_tensor **loss) {
    const ax_mae *m = self;
    ax_tensor *keep = NULL, *view = NULL, *recon = NULL, *masked = NULL;
    ax_status st = ax_mae_forward(m, net, x, rng, &keep, &view, &recon);
    /* masked = 1 - keep: the loss counts the hidden voxels only */
    if (st == AX_OK) st = ax_tensor_empty_like(&masked, keep, AX_DTYPE_F32);
    if (st == AX_OK) {
        const float *k = ax_tensor_data(keep);
        float *mk = ax_tensor_data(masked);
        int64_t nv = ax_tensor_numel(keep);
        for (int64_t i = 0; i < nv; i++) mk[i] = 1.0f - k[i];
        st = ax_mae_to_device_of(x, &masked);
    }
    if (st == AX_OK) {
        st = m->loss == AX_MAE_L1 ? ax_l1_loss(loss, recon, x, masked, AX_LOSS_MEAN)
                                  : ax_mse_loss(loss, recon, x, masked, AX_LOSS_MEAN);
    }
    ax_tensor_free(masked);
    ax_tensor_free(recon);
    ax_tensor_free(view);
    ax_tensor_free(keep);
    return st;
}

static ax_status ax_mae_preview(const void *self, ax_module *net, const ax_tensor *x, ax_rng *rng, ax_tensor **view,
                                ax_tensor **output) {
    const ax_mae *m = self;
    ax_tensor *keep = NULL;
    *view = *output = NULL;
    ax_no_grad_begin();
    ax_status st = ax_mae_forward(m, net, x, rng, &keep, view, output);
    ax_no_grad_end();
    ax_tensor_free(keep);
    if (st != AX_OK) {
        ax_tensor_free(*view);
        ax_tensor_free(*output);
        *view = *output = NULL;
    }
    return st;
}

static const ax_param_spec ax_mae_params[] = {
    {.name = "mask_ratio", .type = AX_PARAM_FLOAT, .def = "0.75", .min = 0, .max = 1,
     .doc = "fraction of cubes zeroed in the input (floor of ratio * cubes)"},
    {.name = "block", .type = AX_PARAM_INT, .def = "16", .min = 1, .max = 1024,
     .doc = "edge of a masked cube, in voxels"},
    {.name = "loss", .type = AX_PARAM_STRING, .def = "mse", .choices = "mse|l1",
     .doc = "reconstruction error on the masked voxels"},
    {0}};

static const ax_method_ops ax_mae_ops = {
    .create = ax_mae_create,
    .destroy = ax_mae_destroy,
    .out_channels = ax_mae_out_channels,
    .loss = ax_mae_loss,
    .preview = ax_mae_preview,
};

static const ax_plugin ax_mae_plugin = {
    AX_PLUGIN_HEADER,
    .kind = AX_PLUGIN_METHOD,
    .name = "mae",
    .version = "1.0",
    .summary = "masked auto-encoder for CNNs: zero random cubes, reconstruct, MSE on the masked voxels",
    .license = "MIT",
    .params = ax_mae_params,
    .ops = &ax_mae_ops,
    .ops_size = sizeof ax_mae_ops,
};

AX_PLUGIN_EXPORT const ax_plugin *const *ax_plugin_entry(void) {
    static const ax_plugin *const list[] = {&ax_mae_plugin, NULL};
    return list;
}
