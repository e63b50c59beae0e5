/* U-Net configuration: presets and the plugin parameters that override them
 * (see unet_common.h). Both U-Net ARCH plugins declare the same parameter
 * names, except the per-stage depth: `blocks_per_stage` (residual blocks,
 * resenc_unet) or `convs_per_stage` (convolutions, plain_unet). */
#include <stdio.h>
#include <string.h>

#include "unet_common.h"

/* One preset: the per-stage lists; everything else is nnU-Net's default
 * (kernel 3, conv bias, InstanceNorm eps 1e-5 affine, LeakyReLU 0.01). */
typedef struct ax_unet_preset {
    const char *name;
    int n_stages;
    int64_t features[AX_UNET_MAX_STAGES];
    int64_t blocks[AX_UNET_MAX_STAGES];
    int64_t strides[AX_UNET_MAX_STAGES];
    int64_t dec_convs;
} ax_unet_preset;

/* ResidualEncoderUNet. L is OpenMind's ResEnc-L (nnU-Net's
 * nnUNetResEncUNetLPlans at 3d_fullres); M drops L's deepest stage (what
 * nnU-Net's ResEnc-M plans give for smaller patches, divisor 16); S halves
 * M's widths with two blocks per deeper stage for CPU-sized runs; tiny is
 * for demos and tests. */
static const ax_unet_preset ax_unet_resenc_presets[] = {
    {"tiny", 4, {8, 16, 32, 64}, {1, 1, 1, 1}, {1, 2, 2, 2}, 1},
    {"S", 5, {16, 32, 64, 128, 256}, {1, 2, 2, 2, 2}, {1, 2, 2, 2, 2}, 1},
    {"M", 5, {32, 64, 128, 256, 320}, {1, 3, 4, 6, 6}, {1, 2, 2, 2, 2}, 1},
    {"L", 6, {32, 64, 128, 256, 320, 320}, {1, 3, 4, 6, 6, 6}, {1, 2, 2, 2, 2, 2}, 1},
    {NULL, 0, {0}, {0}, {0}, 0}};

/* PlainConvUNet with nnU-Net's default two convolutions per stage in the
 * encoder and the decoder; same widths and depths as the ResEnc presets. */
static const ax_unet_preset ax_unet_plain_presets[] = {
    {"tiny", 4, {8, 16, 32, 64}, {2, 2, 2, 2}, {1, 2, 2, 2}, 2},
    {"S", 5, {16, 32, 64, 128, 256}, {2, 2, 2, 2, 2}, {1, 2, 2, 2, 2}, 2},
    {"M", 5, {32, 64, 128, 256, 320}, {2, 2, 2, 2, 2}, {1, 2, 2, 2, 2}, 2},
    {"L", 6, {32, 64, 128, 256, 320, 320}, {2, 2, 2, 2, 2, 2}, {1, 2, 2, 2, 2, 2}, 2},
    {NULL, 0, {0}, {0}, {0}, 0}};

/* A per-stage list: the user's (1 value for all stages, or n_stages
 * values), else the preset's (truncated when n_stages is smaller; repeated
 * when it is uniform). */
static ax_status ax_unet_stage_list(const ax_params *p, const char *key, const char *owner, int n,
                                    const int64_t *preset, int preset_n, int64_t *out) {
    int64_t v[AX_UNET_MAX_STAGES * 3];
    if (ax_params_is_set(p, key)) {
        size_t len = ax_params_ints(p, key, v, AX_UNET_MAX_STAGES * 3);
        if (len != 1 && len != (size_t)n)
            return AX_ERROR(AX_ERR_INVALID, "%s: parameter '%s' has %zu values; need 1 or n_stages = %d", owner, key,
                            len, n);
        for (int s = 0; s < n; s++) out[s] = v[len == 1 ? 0 : s];
        return AX_OK;
    }
    bool uniform = true;
    for (int s = 1; s < preset_n; s++) uniform = uniform && preset[s] == preset[0];
    if (n > preset_n && !uniform)
        return AX_ERROR(AX_ERR_INVALID, "%s: n_stages = %d needs parameter '%s' (the preset has %d stages)", owner,
                        n, key, preset_n);
    for (int s = 0; s < n; s++) out[s] = s < preset_n ? preset[s] : preset[0];
    return AX_OK;
}

/* kernel_size / strides: 1 value (isotropic, every stage), n_stages values
 * (isotropic per stage) or 3 n_stages values (D, H, W per stage). */
static ax_status ax_unet_triple_list(const ax_params *p, const char *key, const char *owner, int n,
                                     const int64_t *preset, int preset_n, int64_t out[][3]) {
    int64_t v[AX_UNET_MAX_STAGES * 3 + 1];
    if (ax_params_is_set(p, key)) {
        size_t len = ax_params_ints(p, key, v, AX_UNET_MAX_STAGES * 3 + 1);
        if (len != 1 && len != (size_t)n && len != (size_t)(3 * n))
            return AX_ERROR(AX_ERR_INVALID,
                            "%s: parameter '%s' has %zu values; need 1, n_stages = %d (isotropic) or 3 x n_stages "
                            "= %d (D,H,W per stage)",
                            owner, key, len, n, 3 * n);
        for (int s = 0; s < n; s++)
            for (int d = 0; d < 3; d++) out[s][d] = len == 1 ? v[0] : len == (size_t)n ? v[s] : v[3 * s + d];
        return AX_OK;
    }
    int64_t iso[AX_UNET_MAX_STAGES];
    if (ax_unet_stage_list(p, key, owner, n, preset, preset_n, iso) != AX_OK) return ax_error_status();
    for (int s = 0; s < n; s++) out[s][0] = out[s][1] = out[s][2] = iso[s];
    return AX_OK;
}

ax_status ax_unet_config_from_params(ax_unet_config *cfg, const ax_params *p, ax_unet_kind kind, const char *owner) {
    memset(cfg, 0, sizeof *cfg);
    cfg->kind = kind;
    const ax_unet_preset *pr = kind == AX_UNET_RESENC ? ax_unet_resenc_presets : ax_unet_plain_presets;
    const char *name = ax_params_string(p, "preset");
    while (pr->name && (!name || strcmp(pr->name, name) != 0)) pr++;
    if (!pr->name) return AX_ERROR(AX_ERR_INVALID, "%s: unknown preset '%s'", owner, name ? name : "(null)");

    /* n_stages: the user's, else the length of a user-given features list,
     * else the preset's */
    int n = pr->n_stages;
    if (ax_params_is_set(p, "n_stages")) {
        n = (int)ax_params_int(p, "n_stages");
    } else if (ax_params_is_set(p, "features")) {
        size_t len = ax_params_ints(p, "features", NULL, 0);
        if (len > 1) n = len > AX_UNET_MAX_STAGES ? AX_UNET_MAX_STAGES + 1 : (int)len;
    }
    if (n < 2 || n > AX_UNET_MAX_STAGES)
        return AX_ERROR(AX_ERR_INVALID, "%s: n_stages = %d is out of range [2, %d]", owner, n, AX_UNET_MAX_STAGES);
    cfg->n_stages = n;
    const char *depth_key = kind == AX_UNET_RESENC ? "blocks_per_stage" : "convs_per_stage";
    const int64_t kernel3[1] = {3}; /* every preset: 3x3x3 */
    ax_status st = ax_unet_stage_list(p, "features", owner, n, pr->features, pr->n_stages, cfg->features);
    if (st == AX_OK) st = ax_unet_stage_list(p, depth_key, owner, n, pr->blocks, pr->n_stages, cfg->blocks);
    if (st == AX_OK) st = ax_unet_triple_list(p, "kernel_size", owner, n, kernel3, 1, cfg->kernel);
    if (st == AX_OK) st = ax_unet_triple_list(p, "strides", owner, n, pr->strides, pr->n_stages, cfg->stride);
    if (st == AX_OK) {
        int64_t v[AX_UNET_MAX_STAGES] = {pr->dec_convs};
        size_t len = 1;
        if (ax_params_is_set(p, "n_conv_per_stage_decoder")) {
            len = ax_params_ints(p, "n_conv_per_stage_decoder", v, AX_UNET_MAX_STAGES);
            if (len != 1 && len != (size_t)(n - 1))
                return AX_ERROR(AX_ERR_INVALID,
                                "%s: parameter 'n_conv_per_stage_decoder' has %zu values; need 1 or n_stages - 1 = %d",
                                owner, len, n - 1);
        }
        for (int s = 0; s < n - 1; s++) cfg->dec_convs[s] = v[len == 1 ? 0 : s];
    }
    if (st != AX_OK) return st;
    for (int s = 0; s < n; s++) {
        if (cfg->features[s] < 1 || cfg->blocks[s] < 1)
            return AX_ERROR(AX_ERR_INVALID, "%s: stage %d: features %lld and %s %lld must be >= 1", owner, s,
                            (long long)cfg->features[s], depth_key, (long long)cfg->blocks[s]);
        for (int d = 0; d < 3; d++) {
            if (cfg->kernel[s][d] < 1 || cfg->kernel[s][d] % 2 == 0)
                return AX_ERROR(AX_ERR_INVALID,
                                "%s: stage %d: kernel_size %lld must be odd and positive (same padding)", owner, s,
                                (long long)cfg->kernel[s][d]);
            if (cfg->stride[s][d] < 1)
                return AX_ERROR(AX_ERR_INVALID, "%s: stage %d: stride %lld must be >= 1", owner, s,
                                (long long)cfg->stride[s][d]);
        }
    }
    for (int s = 0; s < n - 1; s++)
        if (cfg->dec_convs[s] < 1)
            return AX_ERROR(AX_ERR_INVALID, "%s: n_conv_per_stage_decoder[%d] = %lld must be >= 1", owner, s,
                            (long long)cfg->dec_convs[s]);

    cfg->conv_bias = ax_params_bool(p, "conv_bias");
    cfg->deep_supervision = ax_params_bool(p, "deep_supervision");
    cfg->norm_eps = ax_params_float(p, "norm_eps");
    cfg->norm_momentum = ax_params_float(p, "norm_momentum");
    cfg->negative_slope = ax_params_float(p, "negative_slope");
    const char *norm = ax_params_string(p, "norm"), *nl = ax_params_string(p, "nonlin");
    cfg->norm = strcmp(norm, "instance") == 0 ? AX_UNET_NORM_INSTANCE
                : strcmp(norm, "batch") == 0  ? AX_UNET_NORM_BATCH
                                              : AX_UNET_NORM_NONE;
    cfg->nonlin = strcmp(nl, "leaky_relu") == 0 ? AX_UNET_NONLIN_LEAKY_RELU
                  : strcmp(nl, "relu") == 0     ? AX_UNET_NONLIN_RELU
                  : strcmp(nl, "gelu") == 0     ? AX_UNET_NONLIN_GELU
                                                : AX_UNET_NONLIN_NONE;
    if (kind == AX_UNET_RESENC) {
        int64_t stem = ax_params_int(p, "stem_channels");
        cfg->stem_channels = stem > 0 ? stem : cfg->features[0];
    } else {
        cfg->nonlin_first = ax_params_bool(p, "nonlin_first");
    }
    return AX_OK;
}

void ax_unet_plan(const ax_unet_config *cfg, ax_arch_plan *plan) {
    memset(plan, 0, sizeof *plan);
    if (cfg->kind == AX_UNET_RESENC) {
        plan->stem = "encoder.stem";
        plan->input_projection = "encoder.stem.convs.0.conv";
    } else {
        /* dynamic_network_architectures' key_to_stem for PlainConvUNet */
        plan->stem = "encoder.stages.0";
        plan->input_projection = "encoder.stages.0.0.convs.0.conv";
    }
    plan->encoder = "encoder.stages";
    plan->decoder = "decoder";
    plan->output_head = "decoder.seg_layers";
    for (int d = 0; d < 3; d++) {
        int64_t div = 1;
        for (int s = 0; s < cfg->n_stages; s++) div *= cfg->stride[s][d];
        plan->divisor[d] = (int32_t)div;
    }
}

/* ---- the parameter tables ----------------------------------------------------- */

/* The parameters both U-Nets declare, in their order (each plugin inserts
 * its own between them: ax_unet_param_spec). */
static const ax_param_spec ax_unet_shared_params[] = {
    {.name = "preset", .type = AX_PARAM_STRING, .def = "L", .choices = "tiny|S|M|L",
     .doc = "base configuration; the parameters below override it when set"},
    {.name = "n_stages", .type = AX_PARAM_INT, .def = "6", .min = 2, .max = AX_UNET_MAX_STAGES,
     .doc = "resolution stages (default: the length of a given features list, else the preset's)"},
    {.name = "features", .type = AX_PARAM_INT_LIST, .def = "32,64,128,256,320,320", .min = 1, .max = 4096,
     .doc = "features per stage: 1 value or n_stages values (default: the preset's)"},
    {.name = "kernel_size", .type = AX_PARAM_INT_LIST, .def = "3", .min = 1, .max = 15,
     .doc = "odd conv kernel: 1 value, n_stages values or 3 x n_stages (D,H,W per stage)"},
    {.name = "strides", .type = AX_PARAM_INT_LIST, .def = "1,2,2,2,2,2", .min = 1, .max = 8,
     .doc = "stage strides: 1, n_stages or 3 x n_stages values (default: the preset's)"},
    {.name = "conv_bias", .type = AX_PARAM_BOOL, .def = "true", .doc = "bias in convolutions"},
    {.name = "norm", .type = AX_PARAM_STRING, .def = "instance", .choices = "instance|batch|none",
     .doc = "InstanceNorm3d or BatchNorm3d (affine) after each conv"},
    {.name = "norm_eps", .type = AX_PARAM_FLOAT, .def = "1e-5", .min = 0, .max = 1, .doc = "norm epsilon"},
    {.name = "norm_momentum", .type = AX_PARAM_FLOAT, .def = "0.1", .min = 0, .max = 1,
     .doc = "BatchNorm running-stat momentum"},
    {.name = "nonlin", .type = AX_PARAM_STRING, .def = "leaky_relu", .choices = "leaky_relu|relu|gelu|none",
     .doc = "nonlinearity after each norm"},
    {.name = "negative_slope", .type = AX_PARAM_FLOAT, .def = "0.01", .min = 0, .max = 1,
     .doc = "LeakyReLU slope"},
    {.name = "deep_supervision", .type = AX_PARAM_BOOL, .def = "false",
     .doc = "forward_all returns one output per decoder stage"},
    {0}};

void ax_unet_param_spec(ax_param_spec *out, const ax_unet_param_extra *extras) {
    size_t n = 0;
    for (const ax_param_spec *s = ax_unet_shared_params; s->name; s++) {
        out[n++] = *s;
        for (const ax_unet_param_extra *e = extras; e->after; e++)
            if (strcmp(e->after, s->name) == 0 && n + 1 < AX_UNET_PARAMS_MAX) out[n++] = e->spec;
    }
    memset(&out[n], 0, sizeof out[n]);
}
