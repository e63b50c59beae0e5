/* plugins/archs/common/unet_common.h — the building blocks the U-Net ARCH
 * plugins (resenc_unet, plain_unet) share: a configuration parsed from the
 * plugin parameters (with presets), and module constructors that reproduce
 * dynamic_network_architectures' classes with their exact member names, so
 * that state dicts move between axon and PyTorch unchanged.
 *
 * Internal to plugins/archs (compiled into each plugin .so); not installed.
 *
 *     ax_unet_config cfg;
 *     ax_unet_config_from_params(&cfg, params, AX_UNET_RESENC, "arch 'resenc_unet'");
 *     ax_module *net;
 *     ax_unet_build(&net, &cfg, 1, 2, rng);          // ResidualEncoderUNet(1 -> 2)
 *     ax_tensor *outs[AX_UNET_MAX_STAGES];
 *     int n;
 *     ax_unet_forward_all(net, x, outs, AX_UNET_MAX_STAGES, &n); // x: [N, 1, D, H, W]
 *
 * Module trees (PyTorch names; "*" = the same module registered twice, as
 * ConvDropoutNormReLU registers its conv/norm/nonlin also in all_modules):
 *   ConvDropoutNormReLU  conv, norm?, nonlin?, all_modules (Sequential *)
 *   StackedConvBlocks    convs (Sequential of ConvDropoutNormReLU)
 *   BasicBlockD          conv1, conv2, nonlin2?, skip? (Sequential:
 *                        [AvgPool3d when strided], [ConvDropoutNormReLU 1x1
 *                        without bias or nonlin when the width changes])
 *   StackedResidualBlocks blocks (Sequential of BasicBlockD)
 *   ResidualEncoder      stem (StackedConvBlocks), stages (Sequential of
 *                        StackedResidualBlocks)
 *   PlainConvEncoder     stages (Sequential of Sequential(StackedConvBlocks))
 *   UNetDecoder          encoder (*), stages, transpconvs, seg_layers (ModuleList)
 *   ResidualEncoderUNet / PlainConvUNet: encoder, decoder
 *
 * Speed and memory: conv -> InstanceNorm -> (Leaky)ReLU runs the fused
 * ax_instance_norm_leaky_relu, and BasicBlockD's residual sum + LeakyReLU is
 * one op keeping only its result for backward (torch does both in place);
 * forward drops every intermediate and each skip as soon as it is used.
 */
#ifndef AXON_PLUGINS_ARCHS_UNET_COMMON_H
#define AXON_PLUGINS_ARCHS_UNET_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#include "axon/nn.h"
#include "axon/params.h"
#include "axon/plugin.h"
#include "axon/status.h"
#include "axon/tensor.h"

#define AX_UNET_MAX_STAGES 10

typedef enum ax_unet_kind { AX_UNET_RESENC = 1, AX_UNET_PLAIN = 2 } ax_unet_kind;
typedef enum ax_unet_norm { AX_UNET_NORM_NONE = 0, AX_UNET_NORM_INSTANCE, AX_UNET_NORM_BATCH } ax_unet_norm;
typedef enum ax_unet_nonlin {
    AX_UNET_NONLIN_NONE = 0,
    AX_UNET_NONLIN_LEAKY_RELU,
    AX_UNET_NONLIN_RELU,
    AX_UNET_NONLIN_GELU
} ax_unet_nonlin;

/* Everything that shapes a network (the constructor arguments of
 * ResidualEncoderUNet / PlainConvUNet). */
typedef struct ax_unet_config {
    ax_unet_kind kind;
    int n_stages;                             /* 2..AX_UNET_MAX_STAGES */
    int64_t features[AX_UNET_MAX_STAGES];     /* features_per_stage */
    int64_t blocks[AX_UNET_MAX_STAGES];       /* n_blocks_per_stage / n_conv_per_stage */
    int64_t kernel[AX_UNET_MAX_STAGES][3];    /* kernel_sizes (D, H, W) */
    int64_t stride[AX_UNET_MAX_STAGES][3];    /* strides (D, H, W) */
    int64_t dec_convs[AX_UNET_MAX_STAGES - 1]; /* n_conv_per_stage_decoder */
    int64_t stem_channels;                    /* ResEnc stem width */
    bool conv_bias, deep_supervision, nonlin_first;
    ax_unet_norm norm;
    double norm_eps, norm_momentum; /* momentum: BatchNorm only */
    ax_unet_nonlin nonlin;
    double negative_slope;
} ax_unet_config;

/* A parameter of one U-Net plugin only, declared after the shared one
 * named `after` (the order `axon plugins --describe` and checkpoint
 * metadata show). A table of them ends with {0}. */
typedef struct ax_unet_param_extra {
    const char *after;
    ax_param_spec spec;
} ax_unet_param_extra;

#define AX_UNET_PARAMS_MAX 24

/* The plugin's parameter table: the parameters both U-Nets declare
 * (preset, n_stages, features, kernel_size, strides, conv_bias, norm,
 * norm_eps, norm_momentum, nonlin, negative_slope, deep_supervision) with
 * `extras` inserted, ended by { 0 }. out: [AX_UNET_PARAMS_MAX]. */
void ax_unet_param_spec(ax_param_spec *out, const ax_unet_param_extra *extras);

/* Fill *cfg from validated plugin parameters: the preset first, then every
 * parameter the user set. Errors name `owner`, the parameter and its value
 * (a list of the wrong length, a stride that is not positive ...). */
ax_status ax_unet_config_from_params(ax_unet_config *cfg, const ax_params *params, ax_unet_kind kind,
                                     const char *owner);

/* A new ResidualEncoderUNet or PlainConvUNet (by cfg->kind) mapping
 * in_channels -> out_channels, initialised like nnU-Net's
 * network.initialize: kaiming_normal_(a = 1e-2) conv weights, zero biases,
 * and (ResEnc) zero affine parameters in each BasicBlockD's conv2.norm.
 * Default PyTorch init is drawn first, from `rng` (advanced).
 * *out: new reference. */
ax_status ax_unet_build(ax_module **out, const ax_unet_config *cfg, int64_t in_channels, int64_t out_channels,
                        ax_rng *rng);

/* The plugin's ARCH plan for cfg (static strings). As in PyTorch, the
 * decoder holds the encoder: "decoder.encoder.*" keys are aliases of
 * "encoder.*" (the same tensors), so code that re-initialises the keys
 * under `decoder` must skip that prefix. */
void ax_unet_plan(const ax_unet_config *cfg, ax_arch_plan *plan);

/* The decoder's outputs as the PyTorch model returns them: with deep
 * supervision, one per decoder stage, highest resolution first
 * ([N, out_channels, D / 2^i, ...]); without, only the full-resolution one.
 * net: a module built by ax_unet_build (else AX_ERR_INVALID);
 * x: [N, in_channels, D, H, W], each spatial size a multiple of the plan's
 * divisor. outs[i]: new references, *n_outs set. */
ax_status ax_unet_forward_all(ax_module *net, const ax_tensor *x, ax_tensor **outs, int max_outs, int *n_outs);

/* The config a module built by ax_unet_build carries (borrowed), or NULL
 * when net is not one of them. */
const ax_unet_config *ax_unet_config_of(const ax_module *net);

#endif
