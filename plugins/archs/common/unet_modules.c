/* U-Net modules: dynamic_network_architectures' blocks as axon custom
 * modules with PyTorch's member names (see unet_common.h), the network
 * constructor with nnU-Net's initialisation, and the forward pass. */
#include <stdlib.h>
#include <string.h>

#include "axon/autograd.h"
#include "axon/conv.h"
#include "axon/norm.h"
#include "axon/ops.h"
#include "axon/shape.h"
#include "unet_common.h"

/* ---- small helpers ------------------------------------------------------ */

/* ax_module_add_child that accepts m == NULL after an earlier failure (the
 * child is released either way) and chains the status. */
static ax_status ax_unet_add(ax_status st, ax_module *m, const char *name, ax_module *child) {
    if (st != AX_OK || !m || !child) {
        ax_module_free(child);
        return st != AX_OK ? st : AX_ERROR(AX_ERR_INVALID, "ax_unet: cannot add '%s'", name);
    }
    return ax_module_add_child(m, name, child);
}

static ax_status ax_unet_append(ax_status st, ax_module *seq, ax_module *child) {
    if (st != AX_OK || !seq || !child) {
        ax_module_free(child);
        return st != AX_OK ? st : AX_ERROR(AX_ERR_INVALID, "ax_unet: cannot append to a Sequential");
    }
    return ax_nn_sequential_append(seq, child);
}

/* A container class (torch's ModuleList, or a module whose forward needs
 * more than one tensor): no forward. */
static const ax_module_class ax_unet_module_list_class = {"ModuleList", NULL, NULL, NULL};
static const ax_module_class ax_unet_decoder_class = {"UNetDecoder", NULL, NULL, NULL};

static ax_status ax_unet_container(ax_module **out, const ax_module_class *cls) {
    return ax_module_new(out, cls, NULL);
}

/* Applies a module to *h and replaces *h by the result (the input reference
 * is dropped as soon as the module has run). */
static ax_status ax_unet_apply(ax_module *m, ax_tensor **h) {
    ax_tensor *y = NULL;
    ax_status st = ax_module_forward(m, &y, *h);
    ax_tensor_free(*h);
    *h = y;
    return st;
}

/* ---- ConvDropoutNormReLU ------------------------------------------------- */

typedef struct ax_unet_cdnr {
    ax_module *conv, *norm, *act; /* borrowed children (norm, act may be NULL) */
    ax_tensor *gamma, *beta;      /* borrowed InstanceNorm affine parameters */
    double eps, slope;            /* slope: leaky_relu's (0 for ReLU) */
    bool fused;                   /* conv -> fused instance_norm + (leaky) relu */
    bool nonlin_first;
} ax_unet_cdnr;

static ax_status ax_unet_cdnr_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    const ax_unet_cdnr *s = ax_module_state(self);
    ax_tensor *h = NULL;
    *out = NULL;
    ax_status st = ax_module_forward(s->conv, &h, x);
    if (st != AX_OK) return st;
    if (s->fused) {
        st = ax_instance_norm_leaky_relu(out, h, s->gamma, s->beta, s->eps, s->slope);
        ax_tensor_free(h);
        return st;
    }
    ax_module *first = s->nonlin_first ? s->act : s->norm, *second = s->nonlin_first ? s->norm : s->act;
    if (first) st = ax_unet_apply(first, &h);
    if (st == AX_OK && second) st = ax_unet_apply(second, &h);
    if (st != AX_OK) {
        ax_tensor_free(h);
        return st;
    }
    *out = h;
    return AX_OK;
}

static const ax_module_class ax_unet_cdnr_class = {"ConvDropoutNormReLU", ax_unet_cdnr_forward, free, NULL};

static ax_status ax_unet_norm_new(ax_module **out, const ax_unet_config *c, int64_t channels) {
    *out = NULL;
    switch (c->norm) {
    case AX_UNET_NORM_INSTANCE: return ax_nn_instance_norm3d_new(out, channels, c->norm_eps, 0.1, true, false);
    case AX_UNET_NORM_BATCH: return ax_nn_batch_norm3d_new(out, channels, c->norm_eps, c->norm_momentum, true, true);
    case AX_UNET_NORM_NONE: break;
    }
    return AX_OK;
}

static ax_status ax_unet_nonlin_new(ax_module **out, const ax_unet_config *c) {
    *out = NULL;
    switch (c->nonlin) {
    case AX_UNET_NONLIN_LEAKY_RELU: return ax_nn_leaky_relu_new(out, c->negative_slope);
    case AX_UNET_NONLIN_RELU: return ax_nn_relu_new(out);
    case AX_UNET_NONLIN_GELU: return ax_nn_gelu_new(out, false);
    case AX_UNET_NONLIN_NONE: break;
    }
    return AX_OK;
}

/* ConvDropoutNormReLU(conv_op, in, out, kernel, stride, bias, norm, ...,
 * nonlin if with_nonlin), padding (k - 1) / 2. */
static ax_status ax_unet_cdnr_new(ax_module **out, const ax_unet_config *c, int64_t in, int64_t co,
                                  const int64_t kernel[3], const int64_t stride[3], bool bias, bool with_nonlin,
                                  bool nonlin_first, ax_rng *rng) {
    *out = NULL;
    ax_unet_cdnr *s = calloc(1, sizeof *s);
    if (!s) return AX_ERROR(AX_ERR_NOMEM, "ax_unet: out of memory");
    ax_module *m = NULL, *conv = NULL, *norm = NULL, *act = NULL, *seq = NULL;
    ax_status st = ax_module_new(&m, &ax_unet_cdnr_class, s);
    ax_conv_params p = ax_conv_params_default();
    for (int d = 0; d < 3; d++) p.stride[d] = stride[d], p.padding[d] = (kernel[d] - 1) / 2;
    if (st == AX_OK) st = ax_nn_conv3d_new(&conv, in, co, kernel, &p, bias, rng);
    if (st == AX_OK) st = ax_unet_norm_new(&norm, c, co);
    if (st == AX_OK && with_nonlin) st = ax_unet_nonlin_new(&act, c);
    if (st == AX_OK) st = ax_nn_sequential_new(&seq, 0, NULL);
    if (st != AX_OK) {
        ax_module_free(conv);
        ax_module_free(norm);
        ax_module_free(act);
        ax_module_free(m);
        return st;
    }
    s->conv = conv, s->norm = norm, s->act = act;
    s->nonlin_first = nonlin_first && norm && act;
    s->eps = c->norm_eps;
    if (c->norm == AX_UNET_NORM_INSTANCE && act && !s->nonlin_first &&
        (c->nonlin == AX_UNET_NONLIN_LEAKY_RELU || c->nonlin == AX_UNET_NONLIN_RELU)) {
        s->fused = true;
        s->slope = c->nonlin == AX_UNET_NONLIN_RELU ? 0.0 : c->negative_slope;
        s->gamma = ax_module_get_parameter(norm, "weight");
        s->beta = ax_module_get_parameter(norm, "bias");
    }
    /* all_modules holds the same modules, in execution order */
    st = ax_unet_append(st, seq, ax_module_retain(conv));
    ax_module *first = s->nonlin_first ? act : norm, *second = s->nonlin_first ? norm : act;
    if (first) st = ax_unet_append(st, seq, ax_module_retain(first));
    if (second) st = ax_unet_append(st, seq, ax_module_retain(second));
    st = ax_unet_add(st, m, "conv", conv);
    if (norm) st = ax_unet_add(st, m, "norm", norm);
    if (act) st = ax_unet_add(st, m, "nonlin", act);
    st = ax_unet_add(st, m, "all_modules", seq);
    if (st != AX_OK) {
        ax_module_free(m);
        return st;
    }
    *out = m;
    return AX_OK;
}

/* ---- StackedConvBlocks, StackedResidualBlocks ------------------------------ */

/* Both forward their one Sequential child: "convs" or "blocks". */
static ax_status ax_unet_first_child_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    return ax_module_forward(ax_module_child(self, 0, NULL), out, x);
}

static const ax_module_class ax_unet_stacked_conv_class = {"StackedConvBlocks", ax_unet_first_child_forward, NULL,
                                                           NULL};
static const ax_module_class ax_unet_stacked_res_class = {"StackedResidualBlocks", ax_unet_first_child_forward, NULL,
                                                          NULL};

/* StackedConvBlocks(num_convs, in, out, kernel, initial_stride, ...). */
static ax_status ax_unet_stacked_conv_new(ax_module **out, const ax_unet_config *c, int64_t n, int64_t in,
                                          int64_t co, const int64_t kernel[3], const int64_t stride[3],
                                          bool nonlin_first, ax_rng *rng) {
    static const int64_t one[3] = {1, 1, 1};
    ax_module *m = NULL, *seq = NULL;
    *out = NULL;
    ax_status st = ax_unet_container(&m, &ax_unet_stacked_conv_class);
    if (st == AX_OK) st = ax_nn_sequential_new(&seq, 0, NULL);
    for (int64_t i = 0; i < n && st == AX_OK; i++) {
        ax_module *b = NULL;
        st = ax_unet_cdnr_new(&b, c, i == 0 ? in : co, co, kernel, i == 0 ? stride : one, c->conv_bias, true,
                              nonlin_first, rng);
        st = ax_unet_append(st, seq, b);
    }
    st = ax_unet_add(st, m, "convs", seq);
    if (st != AX_OK) {
        ax_module_free(m);
        return st;
    }
    *out = m;
    return AX_OK;
}

/* ---- BasicBlockD ------------------------------------------------------------------ */

typedef struct ax_unet_block {
    ax_module *conv1, *conv2, *nonlin2, *skip; /* borrowed; nonlin2, skip may be NULL */
    double fused_slope; /* >= 0: nonlin2 is (leaky) ReLU, run fused with the sum */
} ax_unet_block;

/* ---- residual sum + LeakyReLU as one op ------------------------------------------
 * torch runs BasicBlockD's `out += residual; return nonlin2(out)` in place
 * and keeps only the result for backward. The composed ax_add + ax_leaky_relu
 * would keep the sum as well: one activation more per block. For LeakyReLU
 * with slope >= 0 (ReLU too) the result's sign is the sum's, so the result
 * alone gives the derivative. CPU f32 contiguous tensors of one shape. */

enum { AX_UNET_PAR_MIN = 1 << 15 }; /* below this, threads cost more than they save */

static ax_status ax_unet_add_lrelu_backward(ax_node *node, const ax_tensor *grad_out, ax_tensor **grad_in) {
    const ax_tensor *y = node->saved[0];
    const float slope = (float)node->f[0];
    ax_tensor *g = NULL, *dx = NULL;
    ax_status st = ax_tensor_contiguous(&g, grad_out);
    if (st == AX_OK && g->dtype != AX_DTYPE_F32)
        st = AX_ERROR(AX_ERR_UNSUPPORTED, "unet_add_leaky_relu: gradient of dtype %s", ax_dtype_name(g->dtype));
    if (st == AX_OK) st = ax_tensor_empty_like(&dx, y, AX_DTYPE_F32);
    if (st != AX_OK) {
        ax_tensor_free(g);
        return st;
    }
    const float *yv = ax_tensor_data(y), *gv = ax_tensor_data(g);
    float *d = ax_tensor_data(dx);
    int64_t n = ax_tensor_numel(y);
#pragma omp parallel for schedule(static) if (n >= AX_UNET_PAR_MIN)
    for (int64_t i = 0; i < n; i++) d[i] = yv[i] > 0.0f ? gv[i] : gv[i] * slope;
    ax_tensor_free(g);
    /* the engine sums node gradients out of place, so both edges may share dx */
    for (int i = 0; i < 2; i++) grad_in[i] = ax_node_needs_grad(node, i) ? ax_tensor_retain(dx) : NULL;
    ax_tensor_free(dx);
    return AX_OK;
}

static bool ax_unet_fusable(const ax_tensor *a, const ax_tensor *b) {
    return a->storage->device.type == AX_DEVICE_CPU && b->storage->device.type == AX_DEVICE_CPU &&
           a->dtype == AX_DTYPE_F32 && b->dtype == AX_DTYPE_F32 && ax_tensor_same_shape(a, b) &&
           ax_tensor_is_contiguous(a) && ax_tensor_is_contiguous(b);
}

/* y = leaky_relu(a + b, slope), slope >= 0; a, b: [N, C, D, H, W].
 * *y: new reference. */
static ax_status ax_unet_add_lrelu(ax_tensor **y, const ax_tensor *a, const ax_tensor *b, double slope) {
    *y = NULL;
    if (!ax_unet_fusable(a, b)) {
        ax_tensor *sum = NULL;
        ax_status st = ax_add(&sum, a, b);
        if (st == AX_OK) st = ax_leaky_relu(y, sum, slope);
        ax_tensor_free(sum);
        return st;
    }
    ax_tensor *out = NULL;
    ax_status st = ax_tensor_empty_like(&out, a, AX_DTYPE_F32);
    if (st != AX_OK) return st;
    const float *av = ax_tensor_data(a), *bv = ax_tensor_data(b);
    float *o = ax_tensor_data(out);
    const float s = (float)slope;
    int64_t n = ax_tensor_numel(a);
#pragma omp parallel for schedule(static) if (n >= AX_UNET_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float v = av[i] + bv[i];
        o[i] = v > 0.0f ? v : v * s;
    }
    const ax_tensor *inputs[2] = {a, b};
    if (ax_autograd_wanted(2, inputs)) {
        ax_node *node = NULL;
        st = ax_node_new(&node, "unet_add_leaky_relu", ax_unet_add_lrelu_backward, 2, inputs);
        if (st != AX_OK) {
            ax_tensor_free(out);
            return st;
        }
        node->f[0] = slope;
        /* a detached alias: out itself owns the node, and a node keeping
         * its own output would be a reference cycle */
        ax_tensor *alias = NULL;
        st = ax_tensor_detach(&alias, out);
        if (st != AX_OK) {
            ax_node_free(node);
            ax_tensor_free(out);
            return st;
        }
        ax_node_save(node, 0, alias);
        ax_tensor_free(alias);
        ax_node_attach(out, node);
    }
    *y = out;
    return AX_OK;
}

/* nonlin2(conv2(conv1(x)) + skip(x)) */
static ax_status ax_unet_block_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    const ax_unet_block *s = ax_module_state(self);
    ax_tensor *res = NULL, *h = NULL, *sum = NULL;
    *out = NULL;
    ax_status st = ax_module_forward(s->conv1, &h, x);
    if (st == AX_OK) st = ax_unet_apply(s->conv2, &h);
    if (st == AX_OK && s->skip) st = ax_module_forward(s->skip, &res, x);
    if (st == AX_OK && s->fused_slope >= 0) {
        st = ax_unet_add_lrelu(&sum, h, s->skip ? res : x, s->fused_slope);
    } else {
        if (st == AX_OK) st = ax_add(&sum, h, s->skip ? res : x);
        if (st == AX_OK && s->nonlin2) st = ax_unet_apply(s->nonlin2, &sum);
    }
    ax_tensor_free(h);
    ax_tensor_free(res);
    if (st != AX_OK) {
        ax_tensor_free(sum);
        return st;
    }
    *out = sum;
    return AX_OK;
}

static const ax_module_class ax_unet_block_class = {"BasicBlockD", ax_unet_block_forward, free, NULL};

static ax_status ax_unet_block_new(ax_module **out, const ax_unet_config *c, int64_t in, int64_t co,
                                   const int64_t kernel[3], const int64_t stride[3], ax_rng *rng) {
    static const int64_t one[3] = {1, 1, 1};
    *out = NULL;
    ax_unet_block *s = calloc(1, sizeof *s);
    if (!s) return AX_ERROR(AX_ERR_NOMEM, "ax_unet: out of memory");
    ax_module *m = NULL;
    ax_status st = ax_module_new(&m, &ax_unet_block_class, s); /* s is freed on failure */
    if (st != AX_OK) return st;
    st = ax_unet_cdnr_new(&s->conv1, c, in, co, kernel, stride, c->conv_bias, true, false, rng);
    st = ax_unet_add(st, m, "conv1", s->conv1);
    if (st == AX_OK) st = ax_unet_cdnr_new(&s->conv2, c, co, co, kernel, one, c->conv_bias, false, false, rng);
    st = ax_unet_add(st, m, "conv2", s->conv2);
    if (st == AX_OK) st = ax_unet_nonlin_new(&s->nonlin2, c);
    s->fused_slope = c->nonlin == AX_UNET_NONLIN_LEAKY_RELU ? c->negative_slope
                     : c->nonlin == AX_UNET_NONLIN_RELU     ? 0.0
                                                            : -1.0;
    if (s->nonlin2) st = ax_unet_add(st, m, "nonlin2", s->nonlin2);
    bool strided = stride[0] != 1 || stride[1] != 1 || stride[2] != 1;
    if (st == AX_OK && (strided || in != co)) {
        ax_module *seq = NULL, *pool = NULL, *proj = NULL;
        st = ax_nn_sequential_new(&seq, 0, NULL);
        /* AvgPool3d(stride, stride): kernel = stride = the block's stride */
        if (st == AX_OK && strided) st = ax_nn_avg_pool3d_new(&pool, stride, stride, NULL, false, true);
        if (pool) st = ax_unet_append(st, seq, pool);
        if (st == AX_OK && in != co) st = ax_unet_cdnr_new(&proj, c, in, co, one, one, false, false, false, rng);
        if (proj) st = ax_unet_append(st, seq, proj);
        s->skip = seq;
        st = ax_unet_add(st, m, "skip", seq);
    }
    if (st != AX_OK) {
        ax_module_free(m);
        return st;
    }
    *out = m;
    return AX_OK;
}

/* StackedResidualBlocks(n_blocks, in, out, kernel, initial_stride, ...). */
static ax_status ax_unet_stacked_res_new(ax_module **out, const ax_unet_config *c, int64_t n, int64_t in,
                                         int64_t co, const int64_t kernel[3], const int64_t stride[3], ax_rng *rng) {
    static const int64_t one[3] = {1, 1, 1};
    ax_module *m = NULL, *seq = NULL;
    *out = NULL;
    ax_status st = ax_unet_container(&m, &ax_unet_stacked_res_class);
    if (st == AX_OK) st = ax_nn_sequential_new(&seq, 0, NULL);
    for (int64_t i = 0; i < n && st == AX_OK; i++) {
        ax_module *b = NULL;
        st = ax_unet_block_new(&b, c, i == 0 ? in : co, co, kernel, i == 0 ? stride : one, rng);
        st = ax_unet_append(st, seq, b);
    }
    st = ax_unet_add(st, m, "blocks", seq);
    if (st != AX_OK) {
        ax_module_free(m);
        return st;
    }
    *out = m;
    return AX_OK;
}

/* ---- the network ------------------------------------------------------------------ */

#define AX_UNET_MAGIC 0x554e4554u /* "UNET": marks a state made here */

typedef struct ax_unet_state {
    uint32_t magic;
    ax_unet_config cfg;
    /* borrowed members, in execution order */
    ax_module *stem; /* NULL for PlainConvUNet */
    ax_module *stages[AX_UNET_MAX_STAGES];
    ax_module *transp[AX_UNET_MAX_STAGES - 1], *dec[AX_UNET_MAX_STAGES - 1], *seg[AX_UNET_MAX_STAGES - 1];
} ax_unet_state;

static ax_status ax_unet_run(ax_module *net, const ax_tensor *x, ax_tensor **outs, int max_outs, int *n_outs,
                             bool all);

/* forward() is the full-resolution output whatever deep_supervision says. */
static ax_status ax_unet_net_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    int n = 0;
    *out = NULL;
    return ax_unet_run(self, x, out, 1, &n, false);
}

/* The encoder's forward alone: the bottleneck features (return_skips=False). */
static ax_status ax_unet_encoder_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    ax_module *stem = ax_module_find(self, "stem"), *stages = ax_module_find(self, "stages");
    ax_tensor *h = ax_tensor_retain((ax_tensor *)x);
    ax_status st = stem ? ax_unet_apply(stem, &h) : AX_OK;
    if (st == AX_OK) st = ax_unet_apply(stages, &h);
    if (st != AX_OK) {
        ax_tensor_free(h);
        h = NULL;
    }
    *out = h;
    return st;
}

static const ax_module_class ax_unet_resenc_class = {"ResidualEncoderUNet", ax_unet_net_forward, free, NULL};
static const ax_module_class ax_unet_plain_class = {"PlainConvUNet", ax_unet_net_forward, free, NULL};
static const ax_module_class ax_unet_resenc_encoder_class = {"ResidualEncoder", ax_unet_encoder_forward, NULL, NULL};
static const ax_module_class ax_unet_plain_encoder_class = {"PlainConvEncoder", ax_unet_encoder_forward, NULL, NULL};

const ax_unet_config *ax_unet_config_of(const ax_module *net) {
    if (!net) return NULL;
    const char *type = ax_module_type(net);
    if (strcmp(type, "ResidualEncoderUNet") != 0 && strcmp(type, "PlainConvUNet") != 0) return NULL;
    const ax_unet_state *s = ax_module_state(net);
    return s && s->magic == AX_UNET_MAGIC ? &s->cfg : NULL;
}

static ax_status ax_unet_encoder_new(ax_module **out, ax_unet_state *s, int64_t in_channels, ax_rng *rng) {
    const ax_unet_config *c = &s->cfg;
    static const int64_t one[3] = {1, 1, 1};
    ax_module *enc = NULL, *stages = NULL;
    *out = NULL;
    bool resenc = c->kind == AX_UNET_RESENC;
    ax_status st = ax_module_new(&enc, resenc ? &ax_unet_resenc_encoder_class : &ax_unet_plain_encoder_class, NULL);
    int64_t in = in_channels;
    if (st == AX_OK && resenc) {
        /* the stem: one conv block at stage 0's kernel, never strided */
        st = ax_unet_stacked_conv_new(&s->stem, c, 1, in, c->stem_channels, c->kernel[0], one, false, rng);
        st = ax_unet_add(st, enc, "stem", s->stem);
        in = c->stem_channels;
    }
    if (st == AX_OK) st = ax_nn_sequential_new(&stages, 0, NULL);
    for (int i = 0; i < c->n_stages && st == AX_OK; i++) {
        if (resenc) {
            st = ax_unet_stacked_res_new(&s->stages[i], c, c->blocks[i], in, c->features[i], c->kernel[i],
                                         c->stride[i], rng);
        } else {
            /* PlainConvEncoder wraps each stage in a Sequential (pool='conv') */
            ax_module *convs = NULL;
            st = ax_nn_sequential_new(&s->stages[i], 0, NULL);
            if (st == AX_OK)
                st = ax_unet_stacked_conv_new(&convs, c, c->blocks[i], in, c->features[i], c->kernel[i],
                                              c->stride[i], c->nonlin_first, rng);
            st = ax_unet_append(st, s->stages[i], convs);
        }
        st = ax_unet_append(st, stages, s->stages[i]);
        in = c->features[i];
    }
    st = ax_unet_add(st, enc, "stages", stages);
    if (st != AX_OK) {
        ax_module_free(enc);
        return st;
    }
    *out = enc;
    return AX_OK;
}

/* UNetDecoder(encoder, num_classes, n_conv_per_stage, deep_supervision). */
static ax_status ax_unet_decoder_new(ax_module **out, ax_unet_state *s, ax_module *encoder, int64_t classes,
                                     ax_rng *rng) {
    const ax_unet_config *c = &s->cfg;
    static const int64_t one[3] = {1, 1, 1};
    ax_module *dec = NULL, *stages = NULL, *transp = NULL, *seg = NULL;
    *out = NULL;
    ax_status st = ax_unet_container(&dec, &ax_unet_decoder_class);
    /* the decoder keeps a reference to the encoder: its keys appear again
     * under decoder.encoder.* in PyTorch's state dict */
    st = ax_unet_add(st, dec, "encoder", ax_module_retain(encoder));
    if (st == AX_OK) st = ax_unet_container(&stages, &ax_unet_module_list_class);
    if (st == AX_OK) st = ax_unet_container(&transp, &ax_unet_module_list_class);
    if (st == AX_OK) st = ax_unet_container(&seg, &ax_unet_module_list_class);
    int n = c->n_stages;
    for (int i = 1; i < n && st == AX_OK; i++) {
        int64_t below = c->features[n - i], skip = c->features[n - i - 1];
        const int64_t *k = c->stride[n - i];
        char name[16];
        snprintf(name, sizeof name, "%d", i - 1);
        ax_conv_params p = ax_conv_params_default();
        for (int d = 0; d < 3; d++) p.stride[d] = k[d];
        st = ax_nn_conv_transpose3d_new(&s->transp[i - 1], below, skip, k, &p, c->conv_bias, rng);
        st = ax_unet_add(st, transp, name, s->transp[i - 1]);
        if (st == AX_OK)
            st = ax_unet_stacked_conv_new(&s->dec[i - 1], c, c->dec_convs[i - 1], 2 * skip, skip, c->kernel[n - i - 1],
                                          one, c->nonlin_first, rng);
        st = ax_unet_add(st, stages, name, s->dec[i - 1]);
        if (st == AX_OK) st = ax_nn_conv3d_new(&s->seg[i - 1], skip, classes, one, NULL, true, rng);
        st = ax_unet_add(st, seg, name, s->seg[i - 1]);
    }
    /* torch registers stages, transpconvs, seg_layers in that order */
    st = ax_unet_add(st, dec, "stages", stages);
    st = ax_unet_add(st, dec, "transpconvs", transp);
    st = ax_unet_add(st, dec, "seg_layers", seg);
    if (st != AX_OK) {
        ax_module_free(dec);
        return st;
    }
    *out = dec;
    return AX_OK;
}

/* nnU-Net's network.initialize: InitWeights_He(1e-2) on every (transposed)
 * convolution; ResEnc also init_last_bn_before_add_to_0. */
static ax_status ax_unet_init_visit(ax_module *m, const char *path, void *ctx) {
    (void)path;
    ax_rng *rng = ctx;
    const char *type = ax_module_type(m);
    if (strcmp(type, "Conv3d") == 0 || strcmp(type, "ConvTranspose3d") == 0) {
        ax_tensor *b = ax_module_get_parameter(m, "bias");
        ax_status st = ax_init_kaiming_normal_(ax_module_get_parameter(m, "weight"), 1e-2, AX_FAN_IN,
                                               AX_NL_LEAKY_RELU, rng);
        if (st == AX_OK && b) st = ax_init_zeros_(b);
        return st;
    }
    if (strcmp(type, "BasicBlockD") == 0) {
        ax_tensor *w = ax_module_get_parameter(m, "conv2.norm.weight");
        ax_tensor *b = ax_module_get_parameter(m, "conv2.norm.bias");
        ax_status st = w ? ax_init_zeros_(w) : AX_OK;
        if (st == AX_OK && b) st = ax_init_zeros_(b);
        return st;
    }
    return AX_OK;
}

ax_status ax_unet_build(ax_module **out, const ax_unet_config *cfg, int64_t in_channels, int64_t out_channels,
                        ax_rng *rng) {
    if (!out) return AX_ERROR(AX_ERR_INVALID, "ax_unet_build: out is NULL");
    *out = NULL;
    if (!cfg || !rng) return AX_ERROR(AX_ERR_INVALID, "ax_unet_build: %s is NULL", cfg ? "rng" : "config");
    if (in_channels < 1 || out_channels < 1)
        return AX_ERROR(AX_ERR_INVALID, "ax_unet_build: in_channels %lld and out_channels %lld must be >= 1",
                        (long long)in_channels, (long long)out_channels);
    ax_unet_state *s = calloc(1, sizeof *s);
    if (!s) return AX_ERROR(AX_ERR_NOMEM, "ax_unet_build: out of memory");
    s->magic = AX_UNET_MAGIC;
    s->cfg = *cfg;
    ax_module *net = NULL, *enc = NULL, *dec = NULL;
    ax_status st = ax_module_new(&net, cfg->kind == AX_UNET_RESENC ? &ax_unet_resenc_class : &ax_unet_plain_class, s);
    if (st == AX_OK) st = ax_unet_encoder_new(&enc, s, in_channels, rng);
    if (st == AX_OK) st = ax_unet_decoder_new(&dec, s, enc, out_channels, rng);
    st = ax_unet_add(st, net, "encoder", enc);
    st = ax_unet_add(st, net, "decoder", dec);
    if (st == AX_OK) {
        ax_no_grad_begin();
        st = ax_module_apply(net, ax_unet_init_visit, rng);
        ax_no_grad_end();
    }
    if (st != AX_OK) {
        ax_module_free(net);
        return ax_error_prefix("ax_unet_build");
    }
    *out = net;
    return AX_OK;
}

/* ---- forward ------------------------------------------------------------------------ */

ax_status ax_unet_forward_all(ax_module *net, const ax_tensor *x, ax_tensor **outs, int max_outs, int *n_outs) {
    const ax_unet_config *c = ax_unet_config_of(net);
    if (!c) return AX_ERROR(AX_ERR_INVALID, "ax_unet_forward_all: not a U-Net built by this plugin");
    return ax_unet_run(net, x, outs, max_outs, n_outs, c->deep_supervision);
}

/* all: every decoder stage's output (deep supervision), else the last. */
static ax_status ax_unet_run(ax_module *net, const ax_tensor *x, ax_tensor **outs, int max_outs, int *n_outs,
                             bool all) {
    const ax_unet_config *c = ax_unet_config_of(net);
    if (!c) return AX_ERROR(AX_ERR_INVALID, "ax_unet_forward_all: not a U-Net built by this plugin");
    if (!x || !outs || !n_outs) return AX_ERROR(AX_ERR_INVALID, "ax_unet_forward_all: NULL argument");
    const ax_unet_state *s = ax_module_state(net);
    int n = c->n_stages, want = all ? n - 1 : 1;
    *n_outs = 0;
    if (max_outs < want)
        return AX_ERROR(AX_ERR_INVALID, "ax_unet_forward_all: %d outputs (deep supervision) but room for %d", want,
                        max_outs);
    if (x->ndim != 5) return AX_ERROR(AX_ERR_INVALID, "ax_unet_forward_all: x must be [N, C, D, H, W]");
    ax_arch_plan plan;
    ax_unet_plan(c, &plan);
    for (int d = 0; d < 3; d++)
        if (x->shape[2 + d] % plan.divisor[d] != 0)
            return AX_ERROR(AX_ERR_INVALID,
                            "ax_unet_forward_all: input %lldx%lldx%lld is not a multiple of %dx%dx%d (the product "
                            "of the strides)",
                            (long long)x->shape[2], (long long)x->shape[3], (long long)x->shape[4], plan.divisor[0],
                            plan.divisor[1], plan.divisor[2]);

    ax_tensor *skips[AX_UNET_MAX_STAGES] = {NULL}, *h = ax_tensor_retain((ax_tensor *)x), *ds[AX_UNET_MAX_STAGES];
    int n_ds = 0;
    ax_status st = s->stem ? ax_unet_apply(s->stem, &h) : AX_OK;
    for (int i = 0; i < n && st == AX_OK; i++) {
        st = ax_module_forward(s->stages[i], &skips[i], i == 0 ? h : skips[i - 1]);
        if (i == 0) {
            ax_tensor_free(h);
            h = NULL;
        }
    }
    /* decoder: lres starts as the bottleneck; each skip is dropped once used */
    ax_tensor *lres = NULL;
    if (st == AX_OK) {
        lres = skips[n - 1];
        skips[n - 1] = NULL;
    }
    for (int i = 0; i < n - 1 && st == AX_OK; i++) {
        ax_tensor *up = NULL, *cat = NULL;
        st = ax_module_forward(s->transp[i], &up, lres);
        ax_tensor_free(lres);
        lres = NULL;
        if (st == AX_OK) st = ax_cat(&cat, 2, (const ax_tensor *const[]){up, skips[n - 2 - i]}, 1);
        ax_tensor_free(up);
        ax_tensor_free(skips[n - 2 - i]);
        skips[n - 2 - i] = NULL;
        if (st == AX_OK) st = ax_module_forward(s->dec[i], &lres, cat);
        ax_tensor_free(cat);
        if (st == AX_OK && (all || i == n - 2)) {
            st = ax_module_forward(s->seg[i], &ds[n_ds], lres);
            if (st == AX_OK) n_ds++;
        }
    }
    ax_tensor_free(h);
    ax_tensor_free(lres);
    for (int i = 0; i < n; i++) ax_tensor_free(skips[i]);
    if (st != AX_OK) {
        for (int i = 0; i < n_ds; i++) ax_tensor_free(ds[i]);
        return st;
    }
    /* highest resolution first, like torch's seg_outputs[::-1] */
    for (int i = 0; i < n_ds; i++) outs[i] = ds[n_ds - 1 - i];
    *n_outs = n_ds;
    return AX_OK;
}
