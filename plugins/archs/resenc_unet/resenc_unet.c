/* ARCH plugin `resenc_unet`: nnU-Net's residual-encoder U-Net
 * (dynamic_network_architectures' ResidualEncoderUNet), the CNN of the
 * OpenMind benchmark. Module names and state-dict keys are PyTorch's, so a
 * checkpoint saved from the PyTorch model loads unchanged and back.
 *
 * Presets (features / residual blocks per stage; strides 1,2,2,...; kernel
 * 3; conv bias; InstanceNorm eps 1e-5 affine; LeakyReLU 0.01; one decoder
 * conv per stage):
 *   tiny  8,16,32,64 / 1,1,1,1              (CPU demos and tests)
 *   S     16,32,64,128,256 / 1,2,2,2,2       (half-width ResEnc, CPU runs)
 *   M     32,64,128,256,320 / 1,3,4,6,6      (ResEnc-M-like, 5 stages)
 *   L     32,64,128,256,320,320 / 1,3,4,6,6,6 (ResEnc-L, OpenMind's config)
 * Every parameter the user sets overrides the preset. */
#include <stdlib.h>

#include "../common/unet_common.h"
#include "axon/plugin.h"

static ax_status ax_resenc_create(void **self, const ax_params *params) {
    ax_unet_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) return AX_ERROR(AX_ERR_NOMEM, "arch 'resenc_unet': out of memory");
    if (ax_unet_config_from_params(cfg, params, AX_UNET_RESENC, "arch 'resenc_unet'") != AX_OK) {
        free(cfg);
        return ax_error_status();
    }
    *self = cfg;
    return AX_OK;
}

static void ax_resenc_destroy(void *self) { free(self); }

static ax_status ax_resenc_build(const void *self, ax_module **out, int64_t in_channels, int64_t out_channels,
                                 ax_rng *rng) {
    return ax_unet_build(out, self, in_channels, out_channels, rng);
}

static ax_status ax_resenc_plan(const void *self, ax_arch_plan *plan) {
    ax_unet_plan(self, plan);
    return AX_OK;
}

static ax_status ax_resenc_forward_all(const void *self, ax_module *net, const ax_tensor *x, ax_tensor **outs,
                                       int max_outs, int *n_outs) {
    (void)self; /* the network carries its own configuration */
    return ax_unet_forward_all(net, x, outs, max_outs, n_outs);
}

/* Its own parameters, each after the shared one named first. */
static const ax_unet_param_extra ax_resenc_extras[] = {
    {"features", {.name = "blocks_per_stage", .type = AX_PARAM_INT_LIST, .def = "1,3,4,6,6,6", .min = 1, .max = 64,
      .doc = "residual blocks (BasicBlockD) per encoder stage: 1 or n_stages values (default: the preset's)"}},
    {"strides", {.name = "n_conv_per_stage_decoder", .type = AX_PARAM_INT_LIST, .def = "1", .min = 1, .max = 16,
      .doc = "convs per decoder stage: 1 or n_stages - 1 values"}},
    {"strides", {.name = "stem_channels", .type = AX_PARAM_INT, .def = "0", .min = 0, .max = 4096,
      .doc = "stem width; 0 = features[0]"}},
    {0}};

static ax_param_spec ax_resenc_params[AX_UNET_PARAMS_MAX]; /* ax_unet_param_spec fills it at load */

static const ax_arch_ops ax_resenc_ops = {
    .create = ax_resenc_create,
    .destroy = ax_resenc_destroy,
    .build = ax_resenc_build,
    .plan = ax_resenc_plan,
    .forward_all = ax_resenc_forward_all,
};

static const ax_plugin ax_resenc_plugin = {
    AX_PLUGIN_HEADER,
    .kind = AX_PLUGIN_ARCH,
    .name = "resenc_unet",
    .version = "1.0",
    .summary = "nnU-Net residual-encoder U-Net (ResidualEncoderUNet), presets tiny/S/M/L",
    .license = "MIT",
    .params = ax_resenc_params,
    .ops = &ax_resenc_ops,
    .ops_size = sizeof ax_resenc_ops,
};

AX_PLUGIN_EXPORT const ax_plugin *const *ax_plugin_entry(void) {
    static const ax_plugin *const list[] = {&ax_resenc_plugin, NULL};
    ax_unet_param_spec(ax_resenc_params, ax_resenc_extras);
    return list;
}
