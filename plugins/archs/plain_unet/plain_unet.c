/* ARCH plugin `plain_unet`: nnU-Net's default U-Net
 * (dynamic_network_architectures' PlainConvUNet): stages of plain
 * conv -> norm -> nonlinearity blocks, strided first conv per stage.
 * Module names and state-dict keys are PyTorch's, so a checkpoint saved
 * from the PyTorch model loads unchanged and back.
 *
 * Presets (features / convs per stage; strides 1,2,2,...; kernel 3; conv
 * bias; InstanceNorm eps 1e-5 affine; LeakyReLU 0.01; two decoder convs per
 * stage, as nnU-Net plans it):
 *   tiny  8,16,32,64 / 2 each
 *   S     16,32,64,128,256 / 2 each
 *   M     32,64,128,256,320 / 2 each
 *   L     32,64,128,256,320,320 / 2 each   (nnU-Net's 3d_fullres widths)
 * Every parameter the user sets overrides the preset. */
#include <stdlib.h>

#include "../common/unet_common.h"
#include "axon/plugin.h"

static ax_status ax_plain_create(void **self, const ax_params *params) {
    ax_unet_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) return AX_ERROR(AX_ERR_NOMEM, "arch 'plain_unet': out of memory");
    if (ax_unet_config_from_params(cfg, params, AX_UNET_PLAIN, "arch 'plain_unet'") != AX_OK) {
        free(cfg);
        return ax_error_status();
    }
    *self = cfg;
    return AX_OK;
}

static void ax_plain_destroy(void *self) { free(self); }

static ax_status ax_plain_build(const void *self, ax_module **out, int64_t in_channels, int64_t out_channels,
                                 ax_rng *rng) {
    return ax_unet_build(out, self, in_channels, out_channels, rng);
}

static ax_status ax_plain_plan(const void *self, ax_arch_plan *plan) {
    ax_unet_plan(self, plan);
    return AX_OK;
}

static ax_status ax_plain_forward_all(const void *self, ax_module *net, const ax_tensor *x, ax_tensor **outs,
                                       int max_outs, int *n_outs) {
    (void)self; /* the network carries its own configuration */
    return ax_unet_forward_all(net, x, outs, max_outs, n_outs);
}

/* Its own parameters, each after the shared one named first. */
static const ax_unet_param_extra ax_plain_extras[] = {
    {"features", {.name = "convs_per_stage", .type = AX_PARAM_INT_LIST, .def = "2,2,2,2,2,2", .min = 1, .max = 64,
      .doc = "conv blocks per encoder stage: 1 or n_stages values (default: the preset's)"}},
    {"strides", {.name = "n_conv_per_stage_decoder", .type = AX_PARAM_INT_LIST, .def = "2", .min = 1, .max = 16,
      .doc = "convs per decoder stage: 1 or n_stages - 1 values"}},
    {"negative_slope", {.name = "nonlin_first", .type = AX_PARAM_BOOL, .def = "false",
      .doc = "conv -> nonlin -> norm instead of conv -> norm -> nonlin"}},
    {0}};

static ax_param_spec ax_plain_params[AX_UNET_PARAMS_MAX]; /* ax_unet_param_spec fills it at load */

static const ax_arch_ops ax_plain_ops = {
    .create = ax_plain_create,
    .destroy = ax_plain_destroy,
    .build = ax_plain_build,
    .plan = ax_plain_plan,
    .forward_all = ax_plain_forward_all,
};

static const ax_plugin ax_plain_plugin = {
    AX_PLUGIN_HEADER,
    .kind = AX_PLUGIN_ARCH,
    .name = "plain_unet",
    .version = "1.0",
    .summary = "nnU-Net plain conv U-Net (PlainConvUNet), presets tiny/S/M/L",
    .license = "MIT",
    .params = ax_plain_params,
    .ops = &ax_plain_ops,
    .ops_size = sizeof ax_plain_ops,
};

AX_PLUGIN_EXPORT const ax_plugin *const *ax_plugin_entry(void) {
    static const ax_plugin *const list[] = {&ax_plain_plugin, NULL};
    ax_unet_param_spec(ax_plain_params, ax_plain_extras);
    return list;
}
