/* Tests for axon/nn.h: registration and PyTorch's dotted names and order,
 * state dicts exported by PyTorch (including dynamic_network_architectures'
 * shared-module layout) loading unchanged and reproducing PyTorch's forward
 * and backward, strict-load errors, bf16/f16 conversion, save round trips,
 * train/eval behaviour of BatchNorm and Dropout, a short training loop,
 * initialiser statistics, and error messages.
 * Fixtures: tests/fixtures/nn/make_nn.py. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "axon/axon.h"
#include "gradcheck.h"

#ifndef AX_TEST_FIXTURES
#define AX_TEST_FIXTURES "tests/fixtures"
#endif
#define FIXTURE(name) AX_TEST_FIXTURES "/nn/" name

/* expr fails with status `code` and a message containing `want`. */
#define assert_fails(expr, code, want)                                                             \
    do {                                                                                           \
        ax_status st_ = (expr);                                                                    \
        if (st_ != (code) || !strstr(ax_error_message(), (want))) {                                \
            print_error("%s: status %d, message: %s\nwanted %d and: %s\n", #expr, (int)st_,        \
                        ax_error_message(), (int)(code), (want));                                  \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

static int setup_tmp(void **state) {
    (void)state;
    return ax_test_mkdtemp() ? 0 : -1;
}

static int teardown_tmp(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ==== builders ============================================================ */

static const int64_t K1[3] = {1, 1, 1}, K2[3] = {2, 2, 2}, K3[3] = {3, 3, 3};

static ax_conv_params conv_p(int64_t stride, int64_t pad) {
    ax_conv_params p = ax_conv_params_default();
    for (int d = 0; d < 3; d++) {
        p.stride[d] = stride;
        p.padding[d] = pad;
    }
    return p;
}

/* Asserting constructors, to keep the builders readable. */
static ax_module *conv(int64_t ci, int64_t co, const int64_t *k, int64_t stride, int64_t pad, bool bias, ax_rng *r) {
    ax_module *m;
    ax_conv_params p = conv_p(stride, pad);
    assert_ok(ax_nn_conv3d_new(&m, ci, co, k, &p, bias, r));
    return m;
}

static ax_module *conv_t(int64_t ci, int64_t co, const int64_t *k, int64_t stride, bool bias, ax_rng *r) {
    ax_module *m;
    ax_conv_params p = conv_p(stride, 0);
    assert_ok(ax_nn_conv_transpose3d_new(&m, ci, co, k, &p, bias, r));
    return m;
}

static ax_module *inorm(int64_t c) {
    ax_module *m;
    assert_ok(ax_nn_instance_norm3d_new(&m, c, 1e-5, 0.1, true, false));
    return m;
}

static ax_module *lrelu(void) {
    ax_module *m;
    assert_ok(ax_nn_leaky_relu_new(&m, 0.01));
    return m;
}

static ax_module *seq(size_t n, ax_module *const *children) {
    ax_module *m;
    assert_ok(ax_nn_sequential_new(&m, n, children));
    return m;
}

static ax_module *simple(ax_status (*ctor)(ax_module **)) {
    ax_module *m;
    assert_ok(ctor(&m));
    return m;
}

static ax_module *bnorm(int64_t c, double momentum) {
    ax_module *m;
    assert_ok(ax_nn_batch_norm3d_new(&m, c, 1e-5, momentum, true, true));
    return m;
}

/* The misc model of make_nn.py. */
static ax_module *build_misc(ax_rng *r) {
    ax_module *gn, *gelu, *mp, *ap;
    assert_ok(ax_nn_group_norm_new(&gn, 3, 6, 1e-5, true));
    assert_ok(ax_nn_gelu_new(&gelu, false));
    assert_ok(ax_nn_max_pool3d_new(&mp, K2, NULL, NULL, false));
    assert_ok(ax_nn_avg_pool3d_new(&ap, K2, K1, NULL, false, true));
    ax_module *inner = seq(3, (ax_module *[]){conv(4, 6, K3, 2, 1, false, r), bnorm(6, 0.1), gelu});
    return seq(15, (ax_module *[]){conv(2, 4, K3, 1, 1, true, r), inorm(4), lrelu(), inner, gn,
                                   simple(ax_nn_silu_new), conv_t(6, 4, K2, 2, true, r), bnorm(4, NAN),
                                   simple(ax_nn_tanh_new), mp, conv(4, 3, K1, 1, 0, true, r), ap,
                                   simple(ax_nn_sigmoid_new), simple(ax_nn_relu_new), simple(ax_nn_identity_new)});
}

/* The tokens model of make_nn.py. */
static ax_module *build_tokens(ax_rng *r) {
    ax_module *ln, *a1, *a2, *lin, *gelu;
    int64_t eight = 8;
    assert_ok(ax_nn_layer_norm_new(&ln, 1, &eight, 1e-5, true, true));
    ax_nn_attention_opts o = ax_nn_attention_opts_default();
    o.num_heads = 2;
    o.qkv_bias = true;
    assert_ok(ax_nn_attention_new(&a1, 8, &o, r));
    o = ax_nn_attention_opts_default();
    o.num_heads = 4;
    o.qk_norm = o.scale_norm = true;
    o.proj_bias = false;
    assert_ok(ax_nn_attention_new(&a2, 8, &o, r));
    assert_ok(ax_nn_linear_new(&lin, 8, 5, true, r));
    assert_ok(ax_nn_gelu_new(&gelu, true));
    return seq(5, (ax_module *[]){ln, a1, a2, lin, gelu});
}

/* ---- dynamic_network_architectures' ResidualEncoderUNet as custom modules:
 * what an ARCH plugin does. */

static ax_status forward_child(ax_module *self, const char *path, ax_tensor **out, const ax_tensor *x) {
    ax_module *c = ax_module_find(self, path);
    if (!c) return AX_ERROR(AX_ERR_NOT_FOUND, "%s has no '%s'", ax_module_type(self), path);
    return ax_module_forward(c, out, x);
}

static ax_status cdnr_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    return forward_child(self, "all_modules", out, x);
}

static ax_status convs_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    return forward_child(self, "convs", out, x);
}

static ax_status blocks_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    return forward_child(self, "blocks", out, x);
}

/* BasicBlockD: nonlin2(conv2(conv1(x)) + skip(x)). */
static ax_status basic_block_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    ax_tensor *res = NULL, *h1 = NULL, *h2 = NULL, *sum = NULL;
    ax_status st = ax_module_find(self, "skip") ? forward_child(self, "skip", &res, x)
                                                : (res = ax_tensor_retain((ax_tensor *)x), AX_OK);
    if (st == AX_OK) st = forward_child(self, "conv1", &h1, x);
    if (st == AX_OK) st = forward_child(self, "conv2", &h2, h1);
    if (st == AX_OK) st = ax_add(&sum, h2, res);
    if (st == AX_OK) st = forward_child(self, "nonlin2", out, sum);
    ax_tensor_free(res);
    ax_tensor_free(h1);
    ax_tensor_free(h2);
    ax_tensor_free(sum);
    return st;
}

/* ResidualEncoderUNet: encoder stages keep their outputs as skips; the
 * decoder upsamples, concatenates the skip, convolves; last seg layer. */
static ax_status unet_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    ax_tensor *skips[2] = {NULL, NULL}, *stem = NULL, *up = NULL, *cat = NULL, *dec = NULL;
    ax_status st = forward_child(self, "encoder.stem", &stem, x);
    if (st == AX_OK) st = forward_child(self, "encoder.stages.0", &skips[0], stem);
    if (st == AX_OK) st = forward_child(self, "encoder.stages.1", &skips[1], skips[0]);
    if (st == AX_OK) st = forward_child(self, "decoder.transpconvs.0", &up, skips[1]);
    if (st == AX_OK) st = ax_cat(&cat, 2, (const ax_tensor *[]){up, skips[0]}, 1);
    if (st == AX_OK) st = forward_child(self, "decoder.stages.0", &dec, cat);
    if (st == AX_OK) st = forward_child(self, "decoder.seg_layers.0", out, dec);
    ax_tensor_free(skips[0]);
    ax_tensor_free(skips[1]);
    ax_tensor_free(stem);
    ax_tensor_free(up);
    ax_tensor_free(cat);
    ax_tensor_free(dec);
    return st;
}

static const ax_module_class cdnr_class = {"ConvDropoutNormReLU", cdnr_forward, NULL, NULL};
static const ax_module_class stacked_class = {"StackedConvBlocks", convs_forward, NULL, NULL};
static const ax_module_class block_class = {"BasicBlockD", basic_block_forward, NULL, NULL};
static const ax_module_class res_blocks_class = {"StackedResidualBlocks", blocks_forward, NULL, NULL};
static const ax_module_class encoder_class = {"ResidualEncoder", NULL, NULL, NULL};
static const ax_module_class decoder_class = {"UNetDecoder", NULL, NULL, NULL};
static const ax_module_class list_class = {"ModuleList", NULL, NULL, NULL};
static const ax_module_class unet_class = {"ResidualEncoderUNet", unet_forward, NULL, NULL};

static ax_module *custom(const ax_module_class *cls) {
    ax_module *m;
    assert_ok(ax_module_new(&m, cls, NULL));
    return m;
}

static void add(ax_module *m, const char *name, ax_module *child) { assert_ok(ax_module_add_child(m, name, child)); }

/* conv, norm, [nonlin], and all_modules = Sequential of the same modules. */
static ax_module *cdnr(int64_t ci, int64_t co, int64_t k, int64_t stride, bool bias, bool nonlin, ax_rng *r) {
    ax_module *m = custom(&cdnr_class);
    const int64_t kk[3] = {k, k, k};
    ax_module *c = conv(ci, co, kk, stride, (k - 1) / 2, bias, r), *n = inorm(co), *a = nonlin ? lrelu() : NULL;
    add(m, "conv", ax_module_retain(c));
    add(m, "norm", ax_module_retain(n));
    if (a) add(m, "nonlin", ax_module_retain(a));
    add(m, "all_modules", seq(a ? 3 : 2, (ax_module *[]){c, n, a}));
    return m;
}

static ax_module *stacked(int64_t ci, int64_t co, ax_rng *r) {
    ax_module *m = custom(&stacked_class);
    add(m, "convs", seq(1, (ax_module *[]){cdnr(ci, co, 3, 1, true, true, r)}));
    return m;
}

static ax_module *basic_block(int64_t ci, int64_t co, int64_t stride, ax_rng *r) {
    ax_module *m = custom(&block_class);
    add(m, "conv1", cdnr(ci, co, 3, stride, true, true, r));
    add(m, "conv2", cdnr(co, co, 3, 1, true, false, r));
    add(m, "nonlin2", lrelu());
    if (stride != 1 || ci != co) {
        ax_module *skip = seq(0, NULL), *pool;
        const int64_t s[3] = {stride, stride, stride};
        if (stride != 1) {
            assert_ok(ax_nn_avg_pool3d_new(&pool, s, s, NULL, false, true));
            assert_ok(ax_nn_sequential_append(skip, pool));
        }
        if (ci != co) assert_ok(ax_nn_sequential_append(skip, cdnr(ci, co, 1, 1, false, false, r)));
        add(m, "skip", skip);
    }
    return m;
}

static ax_module *res_stage(int64_t ci, int64_t co, int64_t stride, ax_rng *r) {
    ax_module *m = custom(&res_blocks_class);
    add(m, "blocks", seq(1, (ax_module *[]){basic_block(ci, co, stride, r)}));
    return m;
}

static ax_module *module_list(ax_module *only) {
    ax_module *m = custom(&list_class);
    add(m, "0", only);
    return m;
}

/* ResidualEncoderUNet(1 -> 3 classes, features [2, 4], strides [1, 2]). */
static ax_module *build_resenc(ax_rng *r) {
    ax_module *enc = custom(&encoder_class), *dec = custom(&decoder_class), *net = custom(&unet_class);
    add(enc, "stem", stacked(1, 2, r));
    add(enc, "stages", seq(2, (ax_module *[]){res_stage(2, 2, 1, r), res_stage(2, 4, 2, r)}));
    add(dec, "encoder", ax_module_retain(enc));
    add(dec, "stages", module_list(stacked(4, 2, r)));
    add(dec, "transpconvs", module_list(conv_t(4, 2, K2, 2, true, r)));
    add(dec, "seg_layers", module_list(conv(2, 3, K1, 1, 0, true, r)));
    add(net, "encoder", enc);
    add(net, "decoder", dec);
    return net;
}

/* ==== fixture helpers ====================================================== */

static ax_safetensors *open_io(void) {
    ax_safetensors *f;
    assert_ok(ax_safetensors_open(&f, FIXTURE("io.safetensors")));
    return f;
}

static ax_tensor *io_get(const ax_safetensors *f, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    ax_tensor *t;
    if (ax_safetensors_get(f, name, &t) != AX_OK) {
        print_error("fixture tensor %s: %s\n", name, ax_error_message());
        fail();
    }
    return t;
}

/* names must equal the lines of metadata `key`. */
static void assert_names(const ax_safetensors *f, const char *key, const ax_named_tensors *l) {
    const char *want = ax_safetensors_metadata(f, key);
    assert_non_null(want);
    size_t i = 0;
    const char *p = want;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (i >= l->n || strlen(l->names[i]) != len || memcmp(l->names[i], p, len) != 0) {
            print_error("%s: entry %zu is '%s', PyTorch has '%.*s'\n", key, i, i < l->n ? l->names[i] : "(none)",
                        (int)len, p);
            fail();
        }
        i++;
        p += len + (nl ? 1 : 0);
    }
    if (i != l->n) {
        print_error("%s: %zu names, PyTorch has %zu\n", key, l->n, i);
        fail();
    }
}

static void assert_torch_names(const ax_module *m, const ax_safetensors *io, const char *model) {
    ax_named_tensors l;
    char key[64];
    assert_ok(ax_module_parameters(m, &l));
    snprintf(key, sizeof key, "%s.params", model);
    assert_names(io, key, &l);
    ax_named_tensors_clear(&l);
    assert_ok(ax_module_state_dict(m, &l));
    snprintf(key, sizeof key, "%s.state", model);
    assert_names(io, key, &l);
    ax_named_tensors_clear(&l);
    assert_ok(ax_module_buffers(m, &l));
    snprintf(key, sizeof key, "%s.buffers", model);
    assert_names(io, key, &l);
    ax_named_tensors_clear(&l);
}

static void load_strict(ax_module *m, const char *path) {
    ax_load_report rep = {0};
    assert_ok(ax_module_load_safetensors(m, path, true, &rep));
    assert_int_equal(rep.n_missing, 0);
    assert_int_equal(rep.n_unexpected, 0);
    ax_load_report_clear(&rep);
}

/* Forward on <model>.x, compare with `yname`; backward with <model>.gy,
 * compare dx and every parameter's grad with PyTorch's. */
static void check_forward_backward(ax_module *m, const ax_safetensors *io, const char *model, const char *yname) {
    ax_tensor *x0 = io_get(io, "%s.x", model), *x, *y, *prod, *loss;
    assert_ok(ax_tensor_contiguous(&x, x0)); /* a fresh leaf, not a view of the mapping */
    ax_tensor *xl;
    assert_ok(ax_add_scalar(&xl, x, 0.0));
    assert_ok(ax_tensor_set_requires_grad(xl, true));
    assert_ok(ax_module_forward(m, &y, xl));
    ax_tensor *want = io_get(io, "%s.%s", model, yname), *gy = io_get(io, "%s.gy", model);
    char what[128];
    snprintf(what, sizeof what, "%s: y", model);
    assert_true(ax_allclose(what, y, want, 1e-5, 1e-4));
    assert_ok(ax_mul(&prod, y, gy));
    assert_ok(ax_sum(&loss, prod, 0, NULL, false));
    ax_module_zero_grad(m);
    assert_ok(ax_backward(loss, NULL));
    ax_tensor *dx = io_get(io, "%s.dx", model);
    snprintf(what, sizeof what, "%s: dx", model);
    assert_non_null(xl->grad);
    assert_true(ax_allclose(what, xl->grad, dx, 1e-5, 1e-4));
    ax_named_tensors params;
    assert_ok(ax_module_parameters(m, &params));
    for (size_t i = 0; i < params.n; i++) {
        ax_tensor *g = io_get(io, "%s.grad.%s", model, params.names[i]);
        snprintf(what, sizeof what, "%s: grad of %s", model, params.names[i]);
        if (!params.tensors[i]->grad) {
            print_error("%s: none\n", what);
            fail();
        }
        assert_true(ax_allclose(what, params.tensors[i]->grad, g, 1e-5, 1e-4));
        ax_tensor_free(g);
    }
    ax_named_tensors_clear(&params);
    ax_tensor_free(dx);
    ax_tensor_free(want);
    ax_tensor_free(gy);
    ax_tensor_free(prod);
    ax_tensor_free(loss);
    ax_tensor_free(y);
    ax_tensor_free(xl);
    ax_tensor_free(x);
    ax_tensor_free(x0);
}

/* ==== names and structure =================================================== */

static void test_names_match_pytorch(void **state) {
    (void)state;
    ax_rng r;
    ax_rng_init(&r, 1, 0);
    ax_safetensors *io = open_io();
    ax_module *misc = build_misc(&r), *tokens = build_tokens(&r), *resenc = build_resenc(&r);
    assert_torch_names(misc, io, "misc");
    assert_torch_names(tokens, io, "tokens");
    assert_torch_names(resenc, io, "resenc");

    /* the shared tensors are the same objects under each name */
    assert_ptr_equal(ax_module_get_parameter(resenc, "encoder.stem.convs.0.conv.weight"),
                     ax_module_get_parameter(resenc, "decoder.encoder.stem.convs.0.all_modules.0.weight"));
    assert_string_equal(ax_module_type(ax_module_find(resenc, "decoder.encoder.stages.1.blocks.0.skip.0")),
                        "AvgPool3d");
    ax_module_free(misc);
    ax_module_free(tokens);
    ax_module_free(resenc);
    ax_safetensors_close(io);
}

static ax_status count_visit(ax_module *m, const char *path, void *ctx) {
    (void)m;
    char *log = ctx;
    strcat(log, path[0] ? path : "<root>");
    strcat(log, ";");
    return AX_OK;
}

static void test_lookup_and_apply(void **state) {
    (void)state;
    ax_rng r;
    ax_rng_init(&r, 1, 0);
    ax_module *m = build_misc(&r);
    assert_ptr_equal(ax_module_find(m, ""), m);
    assert_string_equal(ax_module_type(ax_module_find(m, "3")), "Sequential");
    assert_string_equal(ax_module_type(ax_module_find(m, "3.1")), "BatchNorm3d");
    assert_null(ax_module_find(m, "3.7"));
    assert_null(ax_module_find(m, "3.1.x"));
    assert_null(ax_module_find(m, "15"));
    ax_tensor *w = ax_module_get_parameter(m, "3.0.weight");
    assert_non_null(w);
    assert_int_equal(w->ndim, 5);
    assert_int_equal(w->shape[0], 6);
    assert_int_equal(w->shape[1], 4);
    assert_true(w->requires_grad);
    assert_null(ax_module_get_parameter(m, "3.0.bias")); /* bias=False */
    assert_null(ax_module_get_parameter(m, "3.1.running_mean"));
    ax_tensor *nbt = ax_module_get_buffer(m, "3.1.num_batches_tracked");
    assert_non_null(nbt);
    assert_int_equal(nbt->dtype, AX_DTYPE_I64);
    assert_int_equal(nbt->ndim, 0);
    assert_false(nbt->requires_grad);
    assert_null(ax_module_get_buffer(m, "3.1.weight"));
    assert_int_equal(ax_module_child_count(m), 15);
    const char *name;
    assert_string_equal(ax_module_type(ax_module_child(m, 6, &name)), "ConvTranspose3d");
    assert_string_equal(name, "6");
    assert_null(ax_module_child(m, 15, &name));
    assert_null(name);

    /* apply: pre-order, a shared module once */
    ax_module *a = simple(ax_nn_relu_new), *top = custom(&list_class);
    add(top, "x", ax_module_retain(a));
    add(top, "y", seq(1, (ax_module *[]){a}));
    char log[256] = "";
    assert_ok(ax_module_apply(top, count_visit, log));
    assert_string_equal(log, "<root>;x;y;");
    ax_module_free(top);
    ax_module_free(m);
}

static void test_shared_parameters(void **state) {
    (void)state;
    ax_rng r;
    ax_rng_init(&r, 2, 0);
    ax_module *lin;
    assert_ok(ax_nn_linear_new(&lin, 3, 2, true, &r));
    ax_module *top = custom(&list_class);
    add(top, "a", ax_module_retain(lin));
    add(top, "b", lin);
    ax_tensor *own;
    assert_ok(ax_tensor_zeros(&own, 1, (int64_t[]){4}, AX_DTYPE_F32));
    assert_ok(ax_module_add_parameter(top, "scale", own));
    ax_tensor *buf;
    assert_ok(ax_tensor_zeros(&buf, 1, (int64_t[]){2}, AX_DTYPE_F32));
    assert_ok(ax_module_add_buffer(top, "rope", buf, false));
    ax_named_tensors l;
    assert_ok(ax_module_parameters(top, &l));
    assert_int_equal(l.n, 3);
    assert_string_equal(l.names[0], "scale");
    assert_string_equal(l.names[1], "a.weight");
    assert_string_equal(l.names[2], "a.bias");
    ax_named_tensors_clear(&l);
    assert_ok(ax_module_state_dict(top, &l));
    assert_int_equal(l.n, 5); /* non-persistent buffer left out; b.* listed too */
    assert_string_equal(l.names[3], "b.weight");
    assert_ptr_equal(l.tensors[1], l.tensors[3]);
    ax_named_tensors_clear(&l);
    assert_ok(ax_module_buffers(top, &l));
    assert_int_equal(l.n, 1);
    assert_string_equal(l.names[0], "rope");
    ax_named_tensors_clear(&l);
    ax_named_tensors_clear(NULL);
    ax_module_free(top);
}

static void test_registration_errors(void **state) {
    (void)state;
    ax_module *m = custom(&list_class), *c;
    ax_tensor *t, *i64, *nonleaf;
    assert_ok(ax_tensor_zeros(&t, 1, (int64_t[]){2}, AX_DTYPE_F32));
    assert_fails(ax_module_add_parameter(m, "a.b", t), AX_ERR_INVALID, "ModuleList: name 'a.b' contains '.'");
    assert_ok(ax_tensor_zeros(&t, 1, (int64_t[]){2}, AX_DTYPE_F32));
    assert_fails(ax_module_add_parameter(m, "", t), AX_ERR_INVALID, "ModuleList: the name is empty");
    assert_ok(ax_tensor_zeros(&t, 1, (int64_t[]){2}, AX_DTYPE_F32));
    assert_ok(ax_module_add_parameter(m, "w", t));
    assert_ok(ax_tensor_zeros(&t, 1, (int64_t[]){2}, AX_DTYPE_F32));
    assert_fails(ax_module_add_buffer(m, "w", t, true), AX_ERR_INVALID,
                 "ax_module_add_buffer: ModuleList already has a parameter named 'w'");
    assert_ok(ax_tensor_zeros(&i64, 1, (int64_t[]){2}, AX_DTYPE_I64));
    assert_fails(ax_module_add_parameter(m, "n", i64), AX_ERR_INVALID,
                 "parameter 'n' must be floating point, got i64");
    ax_tensor *leaf = ax_test_randn(1, (int64_t[]){2}, 1, 1, 0, true);
    assert_ok(ax_mul_scalar(&nonleaf, leaf, 2.0));
    assert_fails(ax_module_add_parameter(m, "nl", nonleaf), AX_ERR_INVALID,
                 "parameter 'nl' must be a leaf tensor (it was computed by");
    ax_tensor_free(leaf);
    assert_fails(ax_module_add_parameter(m, "null", NULL), AX_ERR_INVALID, "tensor for 'null' is NULL");
    assert_ok(ax_nn_relu_new(&c));
    assert_ok(ax_module_add_child(m, "act", c));
    assert_ok(ax_nn_relu_new(&c));
    assert_fails(ax_module_add_child(m, "act", c), AX_ERR_INVALID, "already has a child named 'act'");
    assert_fails(ax_module_add_child(m, "me", ax_module_retain(m)), AX_ERR_INVALID, "would make a cycle");
    ax_module *outer = seq(1, (ax_module *[]){ax_module_retain(m)});
    assert_fails(ax_module_add_child(m, "outer", outer), AX_ERR_INVALID,
                 "adding 'outer' (Sequential) would make a cycle");
    assert_fails(ax_nn_sequential_append(m, simple(ax_nn_relu_new)), AX_ERR_INVALID,
                 "module is ModuleList, not a Sequential");
    assert_fails(ax_module_add_child(NULL, "x", simple(ax_nn_relu_new)), AX_ERR_INVALID, "module is NULL");

    /* a failing constructor releases the children it was given */
    ax_module *bad;
    static const ax_module_class unnamed = {"", NULL, NULL, NULL};
    assert_fails(ax_module_new(&bad, &unnamed, NULL), AX_ERR_INVALID, "the class needs a non-empty name");
    assert_null(bad);
    assert_fails(ax_nn_sequential_new(&bad, 2, NULL), AX_ERR_INVALID, "children is NULL");
    ax_module_free(m);
}

/* ==== PyTorch parity ========================================================== */

static void test_misc_matches_pytorch(void **state) {
    (void)state;
    ax_rng r;
    ax_rng_init(&r, 3, 0);
    ax_safetensors *io = open_io();
    ax_module *m = build_misc(&r);
    load_strict(m, FIXTURE("misc.safetensors"));
    assert_int_equal(ax_tensor_get(ax_module_get_buffer(m, "3.1.num_batches_tracked"), 0), 3);
    ax_module_train(m, true);
    check_forward_backward(m, io, "misc", "y"); /* batch statistics */
    ax_named_tensors bufs;
    assert_ok(ax_module_buffers(m, &bufs));
    assert_int_equal(bufs.n, 6);
    for (size_t i = 0; i < bufs.n; i++) {
        ax_tensor *want = io_get(io, "misc.after.%s", bufs.names[i]);
        assert_true(ax_allclose(bufs.names[i], bufs.tensors[i], want, 1e-6, 1e-5));
        ax_tensor_free(want);
    }
    ax_named_tensors_clear(&bufs);
    ax_module_eval(m);
    assert_false(ax_module_training(ax_module_find(m, "3.1")));
    ax_tensor *x = io_get(io, "misc.x"), *y, *want = io_get(io, "misc.y_eval");
    assert_ok(ax_module_forward(m, &y, x));
    assert_true(ax_allclose("misc: y_eval", y, want, 1e-5, 1e-4));
    /* eval leaves the running stats alone */
    assert_int_equal(ax_tensor_get(ax_module_get_buffer(m, "3.1.num_batches_tracked"), 0), 4);
    ax_tensor_free(x);
    ax_tensor_free(y);
    ax_tensor_free(want);
    ax_module_free(m);
    ax_safetensors_close(io);
}

static void test_resenc_matches_pytorch(void **state) {
    (void)state;
    ax_rng r;
    ax_rng_init(&r, 4, 0);
    ax_safetensors *io = open_io();
    const char *files[] = {FIXTURE("resenc.safetensors"), FIXTURE("resenc_dedup.safetensors")};
    for (int i = 0; i < 2; i++) {
        ax_module *m = build_resenc(&r);
        load_strict(m, files[i]);
        ax_module_eval(m);
        check_forward_backward(m, io, "resenc", "y");
        ax_module_free(m);
    }
    ax_safetensors_close(io);
}

static void test_tokens_match_pytorch(void **state) {
    (void)state;
    ax_rng r;
    ax_rng_init(&r, 5, 0);
    ax_safetensors *io = open_io();
    ax_module *m = build_tokens(&r);
    load_strict(m, FIXTURE("tokens.safetensors"));
    check_forward_backward(m, io, "tokens", "y");
    ax_module_free(m);
    ax_safetensors_close(io);
}

/* bf16/f16 file tensors land in the f32 parameters, rounded as the file has them. */
static void test_half_precision_load(void **state) {
    (void)state;
    ax_rng r;
    ax_rng_init(&r, 6, 0);
    ax_module *m = build_tokens(&r);
    load_strict(m, FIXTURE("tokens_half.safetensors"));
    ax_safetensors *half;
    assert_ok(ax_safetensors_open(&half, FIXTURE("tokens_half.safetensors")));
    ax_named_tensors sd;
    assert_ok(ax_module_state_dict(m, &sd));
    int n_bf16 = 0, n_f16 = 0;
    for (size_t i = 0; i < sd.n; i++) {
        ax_tensor *h, *h32;
        assert_ok(ax_safetensors_get(half, sd.names[i], &h));
        n_bf16 += h->dtype == AX_DTYPE_BF16;
        n_f16 += h->dtype == AX_DTYPE_F16;
        assert_int_equal(sd.tensors[i]->dtype, AX_DTYPE_F32);
        assert_ok(ax_tensor_to_dtype(&h32, h, AX_DTYPE_F32));
        assert_true(ax_allclose(sd.names[i], sd.tensors[i], h32, 0, 0));
        ax_tensor_free(h);
        ax_tensor_free(h32);
    }
    assert_true(n_bf16 > 0 && n_f16 > 0);
    ax_named_tensors_clear(&sd);
    ax_safetensors_close(half);
    ax_module_free(m);
}

/* ==== strictness and errors ================================================== */

/* Writes misc's state dict with key `drop` left out, `extra` added, and
 * `reshape` given the wrong shape. */
static void write_variant(const char *path, const char *drop, const char *extra, const char *reshape,
                          ax_dtype retype) {
    ax_rng r;
    ax_rng_init(&r, 7, 0);
    ax_module *m = build_misc(&r);
    ax_named_tensors sd;
    assert_ok(ax_module_state_dict(m, &sd));
    const char *names[64];
    const ax_tensor *ts[64];
    ax_tensor *owned[4] = {NULL, NULL, NULL, NULL};
    size_t n = 0;
    for (size_t i = 0; i < sd.n; i++) {
        if (drop && strcmp(sd.names[i], drop) == 0) continue;
        names[n] = sd.names[i];
        ts[n] = sd.tensors[i];
        if (reshape && strcmp(sd.names[i], reshape) == 0) {
            assert_ok(ax_tensor_zeros(&owned[0], 2, (int64_t[]){3, 2}, AX_DTYPE_F32));
            ts[n] = owned[0];
        }
        if (retype && strcmp(sd.names[i], "3.1.num_batches_tracked") == 0) {
            assert_ok(ax_tensor_zeros(&owned[1], 0, NULL, retype));
            ts[n] = owned[1];
        }
        n++;
    }
    if (extra) {
        assert_ok(ax_tensor_zeros(&owned[2], 1, (int64_t[]){2}, AX_DTYPE_F32));
        names[n] = extra;
        ts[n++] = owned[2];
    }
    assert_ok(ax_safetensors_save(path, n, names, ts, 0, NULL, NULL));
    for (int i = 0; i < 4; i++) ax_tensor_free(owned[i]);
    ax_named_tensors_clear(&sd);
    ax_module_free(m);
}

static double first_weight(const ax_module *m) { return ax_tensor_get(ax_module_get_parameter(m, "0.weight"), 0); }

static void test_strict_load_errors(void **state) {
    (void)state;
    ax_rng r;
    ax_rng_init(&r, 8, 0);
    ax_module *m = build_misc(&r);
    double w0 = first_weight(m);
    ax_load_report rep = {0};

    const char *missing = tpath("missing.safetensors");
    write_variant(missing, "3.1.running_var", NULL, NULL, 0);
    assert_fails(ax_module_load_safetensors(m, missing, true, &rep), AX_ERR_NOT_FOUND,
                 "missing.safetensors: 1 missing key: 3.1.running_var");
    assert_int_equal(rep.n_missing, 1);
    assert_string_equal(rep.missing[0], "3.1.running_var");
    assert_int_equal(rep.n_unexpected, 0);
    assert_true(first_weight(m) == w0); /* unchanged on error */
    ax_load_report_clear(&rep);
    /* not strict: loads the rest and reports the gap */
    assert_ok(ax_module_load_safetensors(m, missing, false, &rep));
    assert_int_equal(rep.n_missing, 1);
    assert_true(first_weight(m) != w0);
    ax_load_report_clear(&rep);

    const char *unexpected = tpath("unexpected.safetensors");
    write_variant(unexpected, NULL, "head.weight", NULL, 0);
    assert_fails(ax_module_load_safetensors(m, unexpected, true, NULL), AX_ERR_INVALID,
                 "1 unexpected key: head.weight");
    assert_ok(ax_module_load_safetensors(m, unexpected, false, &rep));
    assert_int_equal(rep.n_unexpected, 1);
    assert_string_equal(rep.unexpected[0], "head.weight");
    ax_load_report_clear(&rep);

    const char *both = tpath("both.safetensors");
    write_variant(both, "0.bias", "encoder.extra", NULL, 0);
    assert_fails(ax_module_load_safetensors(m, both, true, &rep), AX_ERR_INVALID,
                 "1 missing key: 0.bias; 1 unexpected key: encoder.extra");
    ax_load_report_clear(&rep);

    const char *shape = tpath("shape.safetensors");
    write_variant(shape, NULL, NULL, "0.weight", 0);
    double w1 = first_weight(m);
    assert_fails(ax_module_load_safetensors(m, shape, false, NULL), AX_ERR_INVALID,
                 "shape.safetensors: 0.weight: file has [3, 2], model has [4, 2, 3, 3, 3]");
    assert_true(first_weight(m) == w1);

    const char *dtype = tpath("dtype.safetensors");
    write_variant(dtype, NULL, NULL, NULL, AX_DTYPE_F32);
    assert_fails(ax_module_load_safetensors(m, dtype, true, NULL), AX_ERR_INVALID,
                 "3.1.num_batches_tracked: file has dtype f32, model has i64");

    /* a missing num_batches_tracked is zeroed, not reported (torch's rule) */
    const char *nbt = tpath("nbt.safetensors");
    write_variant(nbt, "3.1.num_batches_tracked", NULL, NULL, 0);
    ax_tensor_set(ax_module_get_buffer(m, "3.1.num_batches_tracked"), 0, 9);
    assert_ok(ax_module_load_safetensors(m, nbt, true, &rep));
    assert_int_equal(rep.n_missing, 0);
    assert_int_equal(ax_tensor_get(ax_module_get_buffer(m, "3.1.num_batches_tracked"), 0), 0);
    ax_load_report_clear(&rep);

    assert_fails(ax_module_load_safetensors(m, tpath("nope.safetensors"), true, NULL), AX_ERR_NOT_FOUND,
                 "ax_module_load_safetensors: ");
    assert_fails(ax_module_load_safetensors(NULL, missing, true, NULL), AX_ERR_INVALID, "module is NULL");

    /* many missing keys are summarised */
    ax_module *resenc = build_resenc(&r);
    missing = tpath("missing.safetensors"); /* tmp_path reuses its buffers */
    assert_fails(ax_module_load_safetensors(resenc, missing, true, &rep), AX_ERR_INVALID,
                 "missing.safetensors: 104 missing keys: encoder.stem.convs.0.conv.weight, "
                 "encoder.stem.convs.0.conv.bias, encoder.stem.convs.0.norm.weight, encoder.stem.convs.0.norm.bias, "
                 "encoder.stem.convs.0.all_modules.0.weight, encoder.stem.convs.0.all_modules.0.bias (and 98 more); "
                 "20 unexpected keys: 3.1.num_batches_tracked, 7.num_batches_tracked, 0.bias, 0.weight, 1.bias, "
                 "1.weight "
                 "(and 14 more)");
    assert_int_equal(rep.n_missing, 104);
    assert_int_equal(rep.n_unexpected, 20);
    ax_load_report_clear(&rep);
    ax_module_free(resenc);
    ax_module_free(m);
}

/* ==== saving =================================================================== */

static void export_io(const char *dir, const char *name, const ax_tensor *x, const ax_tensor *y) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s_ours_io.safetensors", dir, name);
    assert_ok(ax_safetensors_save(path, 2, (const char *[]){"x", "y"}, (const ax_tensor *[]){x, y}, 0, NULL, NULL));
}

static void test_save_roundtrip(void **state) {
    (void)state;
    ax_rng r;
    ax_rng_init(&r, 9, 0);
    const char *export_dir = getenv("AXON_NN_EXPORT_DIR");
    ax_safetensors *io = open_io();

    /* resenc: a few training steps move it off PyTorch's weights, then save */
    ax_module *a = build_resenc(&r);
    load_strict(a, FIXTURE("resenc.safetensors"));
    ax_tensor *x = io_get(io, "resenc.x"), *y, *loss, *zero;
    ax_named_tensors params;
    assert_ok(ax_module_parameters(a, &params));
    ax_optim *opt;
    assert_ok(ax_sgd_new(&opt, params.n, params.tensors, (const char *const *)params.names, 0.1, 0.9, 0, 0, false));
    for (int step = 0; step < 3; step++) {
        ax_optim_zero_grad(opt);
        assert_ok(ax_module_forward(a, &y, x));
        assert_ok(ax_tensor_zeros(&zero, y->ndim, y->shape, AX_DTYPE_F32));
        assert_ok(ax_mse_loss(&loss, y, zero, NULL, AX_LOSS_MEAN));
        assert_ok(ax_backward(loss, NULL));
        assert_ok(ax_optim_step(opt));
        ax_tensor_free(y);
        ax_tensor_free(loss);
        ax_tensor_free(zero);
    }
    ax_optim_free(opt);
    ax_named_tensors_clear(&params);
    const char *path = tpath("resenc_ours.safetensors");
    assert_ok(ax_module_save_safetensors(a, path, 1, (const char *[]){"arch"}, (const char *[]){"resenc"}));

    /* the file holds every state-dict key with our values */
    ax_safetensors *f;
    assert_ok(ax_safetensors_open(&f, path));
    assert_string_equal(ax_safetensors_metadata(f, "arch"), "resenc");
    ax_named_tensors sd;
    assert_ok(ax_module_state_dict(a, &sd));
    assert_int_equal(ax_safetensors_count(f), sd.n);
    for (size_t i = 0; i < sd.n; i++) {
        ax_tensor *t;
        assert_ok(ax_safetensors_get(f, sd.names[i], &t));
        assert_true(ax_allclose(sd.names[i], t, sd.tensors[i], 0, 0));
        ax_tensor_free(t);
    }
    ax_named_tensors_clear(&sd);
    ax_safetensors_close(f);

    /* a fresh model (other init) loads it and computes the same */
    ax_module *b = build_resenc(&r);
    load_strict(b, path);
    ax_module_eval(a);
    ax_module_eval(b);
    ax_tensor *ya, *yb;
    assert_ok(ax_module_forward(a, &ya, x));
    assert_ok(ax_module_forward(b, &yb, x));
    assert_true(ax_allclose("reloaded resenc", yb, ya, 0, 0));
    if (export_dir) {
        char out[512];
        snprintf(out, sizeof out, "%s/resenc_ours.safetensors", export_dir);
        assert_ok(ax_module_save_safetensors(a, out, 0, NULL, NULL));
        export_io(export_dir, "resenc", x, ya);
    }
    ax_tensor_free(ya);
    ax_tensor_free(yb);
    ax_tensor_free(x);
    ax_module_free(a);
    ax_module_free(b);

    /* misc after a training-mode step (moved running stats), for PyTorch */
    if (export_dir) {
        ax_module *m = build_misc(&r);
        load_strict(m, FIXTURE("misc.safetensors"));
        ax_tensor *mx = io_get(io, "misc.x"), *my;
        assert_ok(ax_module_forward(m, &my, mx));
        ax_tensor_free(my);
        char out[512];
        snprintf(out, sizeof out, "%s/misc_ours.safetensors", export_dir);
        assert_ok(ax_module_save_safetensors(m, out, 0, NULL, NULL));
        assert_ok(ax_module_forward(m, &my, mx)); /* torch checks a second training-mode step */
        export_io(export_dir, "misc", mx, my);
        ax_tensor_free(my);
        ax_tensor_free(mx);
        ax_module_free(m);
    }
    assert_fails(ax_module_save_safetensors(NULL, path, 0, NULL, NULL), AX_ERR_INVALID, "module is NULL");
    ax_module *lin;
    assert_ok(ax_nn_linear_new(&lin, 2, 2, true, &r));
    assert_fails(ax_module_save_safetensors(lin, "/nonexistent-dir/x.safetensors", 0, NULL, NULL), AX_ERR_IO,
                 "ax_module_save_safetensors: ");
    ax_module_free(lin);
    ax_safetensors_close(io);
}

/* ==== modes ======================================================================= */

static void test_batch_norm_modes(void **state) {
    (void)state;
    ax_module *bn = bnorm(3, 0.1);
    ax_tensor *x = ax_test_randn(5, (int64_t[]){4, 3, 2, 2, 2}, 11, 2.0, 5.0, false), *y;
    ax_tensor *rm = ax_module_get_buffer(bn, "running_mean"), *rv = ax_module_get_buffer(bn, "running_var");
    ax_tensor *nbt = ax_module_get_buffer(bn, "num_batches_tracked");
    /* training: batch stats -> per-channel mean ~0, running stats move */
    assert_ok(ax_module_forward(bn, &y, x));
    ax_tensor *mean;
    assert_ok(ax_mean(&mean, y, 4, (int[]){0, 2, 3, 4}, false));
    for (int c = 0; c < 3; c++) assert_true(fabs(ax_tensor_get(mean, c)) < 1e-5);
    assert_true(ax_tensor_get(rm, 0) > 0.2); /* 0.1 * ~5 */
    assert_int_equal(ax_tensor_get(nbt, 0), 1);
    ax_tensor_free(mean);
    ax_tensor_free(y);
    /* eval: running stats, which stay put */
    double rm0 = ax_tensor_get(rm, 0), rv0 = ax_tensor_get(rv, 0);
    ax_module_eval(bn);
    assert_ok(ax_module_forward(bn, &y, x));
    assert_true(ax_tensor_get(rm, 0) == rm0 && ax_tensor_get(rv, 0) == rv0);
    assert_int_equal(ax_tensor_get(nbt, 0), 1);
    double want = (ax_tensor_get(x, 0) - rm0) / sqrt(rv0 + 1e-5);
    assert_true(fabs(ax_tensor_get(y, 0) - want) < 1e-4);
    ax_tensor_free(y);
    /* wrong rank */
    ax_tensor *x4 = ax_test_randn(4, (int64_t[]){4, 3, 2, 2}, 11, 1, 0, false);
    assert_fails(ax_module_forward(bn, &y, x4), AX_ERR_INVALID,
                 "BatchNorm3d: expected a 5-D input [N, C, D, H, W], got x [4, 3, 2, 2]");
    assert_null(y);
    ax_tensor_free(x4);
    ax_tensor_free(x);
    ax_module_free(bn);
}

static int count_zeros(const ax_tensor *t) {
    int n = 0;
    for (int64_t i = 0; i < ax_tensor_numel(t); i++) n += ax_tensor_get(t, i) == 0.0;
    return n;
}

static void test_dropout_modes_and_streams(void **state) {
    (void)state;
    ax_module *d1, *d2;
    assert_ok(ax_nn_dropout_new(&d1, 0.25));
    assert_ok(ax_nn_dropout_new(&d2, 0.25));
    ax_module *net = seq(2, (ax_module *[]){d1, d2});
    ax_tensor *ones, *y, *y2, *y3;
    assert_ok(ax_tensor_ones(&ones, 2, (int64_t[]){64, 64}, AX_DTYPE_F32));
    ax_module_set_rng(net, 42, 0);
    assert_ok(ax_module_forward(d1, &y, ones));
    int z = count_zeros(y);
    assert_true(z > 4096 * 0.2 && z < 4096 * 0.3);
    for (int64_t i = 0; i < 4096; i++) {
        double v = ax_tensor_get(y, i);
        assert_true(v == 0.0 || fabs(v - 1.0 / 0.75) < 1e-6);
    }
    /* the next call draws a new mask; the other module another one */
    assert_ok(ax_module_forward(d1, &y2, ones));
    assert_false(ax_allclose("mask differs (expected to print)", y, y2, 0, 0));
    ax_tensor_free(y2);
    assert_ok(ax_module_forward(d2, &y2, ones));
    assert_false(ax_allclose("mask differs (expected to print)", y, y2, 0, 0));
    ax_tensor_free(y2);
    /* reseeding the same step replays the masks */
    ax_module_set_rng(net, 42, 0);
    assert_ok(ax_module_forward(d1, &y2, ones));
    assert_true(ax_allclose("replayed mask", y2, y, 0, 0));
    ax_tensor_free(y2);
    ax_module_set_rng(net, 42, 1);
    assert_ok(ax_module_forward(d1, &y3, ones));
    assert_false(ax_allclose("next step's mask differs (expected to print)", y3, y, 0, 0));
    ax_tensor_free(y3);
    /* eval: identity */
    ax_module_eval(net);
    assert_ok(ax_module_forward(net, &y3, ones));
    assert_ptr_equal(y3, ones);
    ax_tensor_free(y3);
    ax_tensor_free(y);
    ax_tensor_free(ones);
    ax_module_free(net);
    assert_fails(ax_nn_dropout_new(&d1, 1.5), AX_ERR_INVALID,
                 "dropout probability has to be between 0 and 1, but got 1.5");
}

/* Attention with attention dropout: the explicit path equals sdpa when the
 * dropout is off, and drops weights in training. */
static void test_attention_dropout_path(void **state) {
    (void)state;
    ax_rng r;
    ax_rng_init(&r, 12, 0);
    ax_nn_attention_opts o = ax_nn_attention_opts_default();
    o.num_heads = 2;
    o.attn_drop = 0.5;
    ax_module *a;
    assert_ok(ax_nn_attention_new(&a, 8, &o, &r));
    ax_tensor *x = ax_test_randn(3, (int64_t[]){2, 5, 8}, 13, 1, 0, false), *ye, *yt1, *yt2;
    ax_module_eval(a);
    assert_ok(ax_module_forward(a, &ye, x));
    ax_module_train(a, true);
    ax_module_set_rng(a, 1, 0);
    assert_ok(ax_module_forward(a, &yt1, x));
    assert_false(ax_allclose("train differs from eval (expected to print)", yt1, ye, 1e-6, 1e-6));
    ax_module_set_rng(a, 1, 0);
    assert_ok(ax_module_forward(a, &yt2, x));
    assert_true(ax_allclose("replayed", yt2, yt1, 0, 0));
    ax_tensor *x2 = ax_test_randn(3, (int64_t[]){2, 5, 6}, 13, 1, 0, false), *bad;
    assert_fails(ax_module_forward(a, &bad, x2), AX_ERR_INVALID, "Attention: x [2, 5, 6] must be [B, N, 8]");
    ax_tensor_free(x2);
    ax_tensor_free(x);
    ax_tensor_free(ye);
    ax_tensor_free(yt1);
    ax_tensor_free(yt2);
    ax_module_free(a);
}

/* ==== gradients and training ======================================================== */

typedef struct gc_ctx {
    ax_module *m;
    const int *perm; /* [optional] permute the input first */
} gc_ctx;

static ax_status gc_module(ax_tensor **out, ax_tensor *const *in, void *ctx) {
    const gc_ctx *c = ctx;
    if (!c->perm) return ax_module_forward(c->m, out, in[0]);
    ax_tensor *v;
    if (ax_tensor_permute(&v, in[0], c->perm) != AX_OK) return ax_error_status();
    ax_status st = ax_module_forward(c->m, out, v); /* a non-contiguous input */
    ax_tensor_free(v);
    return st;
}

/* Finite differences through a whole module, for x and every parameter. */
static void gradcheck_module(ax_module *m, ax_tensor *x, const int *perm) {
    ax_named_tensors p;
    assert_ok(ax_module_parameters(m, &p));
    ax_tensor *in[16];
    assert_true(p.n + 1 <= 16);
    in[0] = x;
    for (size_t i = 0; i < p.n; i++) in[i + 1] = p.tensors[i];
    gc_ctx c = {m, perm};
    assert_true(ax_gradcheck(gc_module, (int)p.n + 1, in, &c, &AX_GC_DEFAULT));
    ax_named_tensors_clear(&p);
}

static void test_gradcheck_modules(void **state) {
    (void)state;
    ax_rng r;
    ax_rng_init(&r, 14, 0);
    ax_nn_attention_opts o = ax_nn_attention_opts_default();
    o.num_heads = 2;
    o.qkv_bias = true;
    o.qk_norm = true; /* LayerNorm(head_dim 4): smooth enough for finite differences */
    ax_module *a;
    assert_ok(ax_nn_attention_new(&a, 8, &o, &r));
    ax_tensor *x = ax_test_randn(3, (int64_t[]){2, 8, 3}, 15, 1, 0, true); /* used as [2, 3, 8] */
    gradcheck_module(a, x, (const int[]){0, 2, 1});
    ax_tensor_free(x);
    ax_module_free(a);

    ax_module *net = seq(3, (ax_module *[]){conv(2, 3, K3, 1, 1, true, &r), inorm(3), conv_t(3, 2, K2, 2, true, &r)});
    x = ax_test_randn(5, (int64_t[]){1, 2, 3, 3, 3}, 16, 1, 0, true);
    gradcheck_module(net, x, NULL);
    ax_tensor_free(x);
    ax_module_free(net);
}

static void test_training_loop(void **state) {
    (void)state;
    ax_rng r;
    ax_rng_init(&r, 17, 0);
    ax_module *drop;
    assert_ok(ax_nn_dropout_new(&drop, 0.1));
    ax_module *net = seq(6, (ax_module *[]){conv(1, 4, K3, 1, 1, true, &r), inorm(4), lrelu(), drop,
                                            conv(4, 4, K3, 1, 1, true, &r), conv(4, 1, K1, 1, 0, true, &r)});
    ax_tensor *x = ax_test_randn(5, (int64_t[]){2, 1, 6, 6, 6}, 18, 1, 0, false);
    ax_tensor *target = ax_test_randn(5, (int64_t[]){2, 1, 6, 6, 6}, 19, 1, 0, false);
    ax_named_tensors p;
    assert_ok(ax_module_parameters(net, &p));
    assert_int_equal(p.n, 8);
    ax_optim *opt;
    assert_ok(ax_adamw_new(&opt, p.n, p.tensors, (const char *const *)p.names, 1e-2, 0.9, 0.999, 1e-8, 0));
    double first = 0, last = 0;
    for (int step = 0; step < 100; step++) {
        ax_tensor *y, *loss;
        ax_module_set_rng(net, 5, (uint64_t)step);
        ax_optim_zero_grad(opt);
        assert_ok(ax_module_forward(net, &y, x));
        assert_ok(ax_mse_loss(&loss, y, target, NULL, AX_LOSS_MEAN));
        assert_ok(ax_backward(loss, NULL));
        if (step == 0) {
            first = ax_tensor_get(loss, 0);
            for (size_t i = 0; i < p.n; i++) { /* every parameter got a gradient */
                if (!p.tensors[i]->grad) {
                    print_error("no grad for %s\n", p.names[i]);
                    fail();
                }
                double s = 0;
                for (int64_t j = 0; j < ax_tensor_numel(p.tensors[i]->grad); j++)
                    s += fabs(ax_tensor_get(p.tensors[i]->grad, j));
                assert_true(s > 0);
            }
        }
        last = ax_tensor_get(loss, 0);
        assert_ok(ax_optim_step(opt));
        ax_tensor_free(y);
        ax_tensor_free(loss);
    }
    print_message("training loop: loss %.4f -> %.4f\n", first, last);
    assert_true(last < 0.7 * first);
    ax_optim_free(opt);
    ax_named_tensors_clear(&p);
    ax_tensor_free(x);
    ax_tensor_free(target);
    ax_module_free(net);
}

/* ==== initialisers ===================================================================== */

typedef struct stats {
    double mean, std, min, max;
} stats;

static stats stats_of(const ax_tensor *t) {
    stats s = {0, 0, INFINITY, -INFINITY};
    int64_t n = ax_tensor_numel(t);
    double sum = 0, sq = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = ax_tensor_get(t, i);
        sum += v;
        sq += v * v;
        s.min = fmin(s.min, v);
        s.max = fmax(s.max, v);
    }
    s.mean = sum / (double)n;
    s.std = sqrt(sq / (double)n - s.mean * s.mean);
    return s;
}

/* All values in [-bound, bound], both ends nearly reached, std bound/sqrt(3). */
static void assert_uniform(const char *what, const ax_tensor *t, double bound) {
    stats s = stats_of(t);
    if (!(s.min >= -bound && s.max <= bound && s.max > 0.99 * bound && s.min < -0.99 * bound &&
          fabs(s.std - bound / sqrt(3.0)) < 0.02 * bound / sqrt(3.0) && fabs(s.mean) < 0.02 * bound)) {
        print_error("%s: U(-%g, %g): min %g max %g mean %g std %g\n", what, bound, bound, s.min, s.max, s.mean, s.std);
        fail();
    }
}

static void assert_normal(const char *what, const ax_tensor *t, double mean, double std) {
    stats s = stats_of(t);
    if (!(fabs(s.std - std) < 0.02 * std && fabs(s.mean - mean) < 0.02 * std)) {
        print_error("%s: N(%g, %g^2): mean %g std %g\n", what, mean, std, s.mean, s.std);
        fail();
    }
}

static ax_tensor *zeros(int ndim, const int64_t *shape, ax_dtype dt) {
    ax_tensor *t;
    assert_ok(ax_tensor_zeros(&t, ndim, shape, dt));
    return t;
}

static void test_init_distributions(void **state) {
    (void)state;
    ax_rng r;
    ax_rng_init(&r, 21, 3);
    const int64_t shape[5] = {64, 32, 3, 3, 3}; /* fan_in 864, fan_out 1728 */
    ax_tensor *t = zeros(5, shape, AX_DTYPE_F32);

    assert_ok(ax_init_uniform_(t, -0.5, 0.5, &r));
    assert_uniform("uniform", t, 0.5);
    assert_ok(ax_init_normal_(t, 1.5, 0.2, &r));
    assert_normal("normal", t, 1.5, 0.2);
    assert_ok(ax_init_kaiming_uniform_(t, 0, AX_FAN_IN, AX_NL_RELU, &r));
    assert_uniform("kaiming_uniform relu fan_in", t, sqrt(3.0) * sqrt(2.0) / sqrt(864.0));
    assert_ok(ax_init_kaiming_uniform_(t, sqrt(5.0), AX_FAN_IN, AX_NL_LEAKY_RELU, &r));
    assert_uniform("kaiming_uniform a=sqrt(5)", t, 1.0 / sqrt(864.0));
    assert_ok(ax_init_kaiming_normal_(t, 0.01, AX_FAN_OUT, AX_NL_LEAKY_RELU, &r));
    assert_normal("kaiming_normal fan_out", t, 0, sqrt(2.0 / (1 + 1e-4)) / sqrt(1728.0));
    assert_ok(ax_init_xavier_uniform_(t, 2.0, &r));
    assert_uniform("xavier_uniform", t, 2.0 * sqrt(6.0 / (864.0 + 1728.0)));
    assert_ok(ax_init_xavier_normal_(t, 1.0, &r));
    assert_normal("xavier_normal", t, 0, sqrt(2.0 / (864.0 + 1728.0)));

    /* truncated normal in [-2 std, 2 std]: std of the truncated law */
    assert_ok(ax_init_trunc_normal_(t, 0, 0.02, -0.04, 0.04, &r));
    stats s = stats_of(t);
    double a = 2.0, phi = exp(-a * a / 2) / sqrt(2 * M_PI), z = erf(a / sqrt(2.0));
    double tstd = 0.02 * sqrt(1 - 2 * a * phi / z);
    assert_true(s.min >= -0.04 && s.max <= 0.04 && s.max > 0.0399 && s.min < -0.0399);
    assert_true(fabs(s.std - tstd) < 0.02 * tstd);
    assert_true(fabs(s.mean) < 0.02 * tstd);
    /* one-sided, off-centre: timm's trunc_normal_(std=1, a=0, b=inf) is half-normal */
    assert_ok(ax_init_trunc_normal_(t, 0, 1, 0, INFINITY, &r));
    s = stats_of(t);
    assert_true(s.min >= 0);
    assert_true(fabs(s.mean - sqrt(2 / M_PI)) < 0.02);

    assert_ok(ax_init_constant_(t, 0.25));
    s = stats_of(t);
    assert_true(s.min == 0.25 && s.max == 0.25);
    assert_ok(ax_init_zeros_(t));
    assert_true(stats_of(t).max == 0);
    assert_ok(ax_init_ones_(t));
    assert_true(stats_of(t).min == 1);
    ax_tensor_free(t);
}

static void test_init_reproducible_and_strided(void **state) {
    (void)state;
    const int64_t shape[2] = {300, 70};
    ax_tensor *a = zeros(2, shape, AX_DTYPE_F32), *b = zeros(2, shape, AX_DTYPE_F32);
    ax_rng ra, rb;
    ax_rng_init(&ra, 5, 9);
    ax_rng_init(&rb, 5, 9);
    assert_ok(ax_init_normal_(a, 0, 1, &ra));
    assert_int_equal(ra.counter, 2 * 300 * 70);
    int saved = ax_num_threads();
    ax_set_num_threads(1);
    assert_ok(ax_init_normal_(b, 0, 1, &rb));
    ax_set_num_threads(saved);
    assert_true(ax_allclose("same seed/stream/counter, 1 thread", b, a, 0, 0));
    /* rng moved on: the next draw differs */
    assert_ok(ax_init_normal_(b, 0, 1, &rb));
    assert_false(ax_allclose("advanced rng differs (expected to print)", b, a, 0, 0));
    /* uniform words: counter moves by numel; an odd counter rounds up for normals */
    ax_rng_init(&ra, 5, 9);
    assert_ok(ax_init_uniform_(a, 0, 1, &ra));
    assert_int_equal(ra.counter, 21000);
    ra.counter = 3;
    assert_ok(ax_init_normal_(a, 0, 1, &ra));
    assert_int_equal(ra.counter, 2 * (2 + 21000));

    /* any strides, bf16: a transposed view is filled in its own C order */
    ax_tensor *base = zeros(2, (int64_t[]){70, 300}, AX_DTYPE_BF16), *view;
    assert_ok(ax_tensor_transpose(&view, base, 0, 1));
    ax_rng_init(&ra, 5, 9);
    ax_rng_init(&rb, 5, 9);
    assert_ok(ax_init_uniform_(view, -1, 1, &ra));
    assert_ok(ax_init_uniform_(a, -1, 1, &rb));
    ax_tensor *a16;
    assert_ok(ax_tensor_to_dtype(&a16, a, AX_DTYPE_BF16));
    assert_true(ax_allclose("bf16 view", view, a16, 0, 0));
    ax_tensor_free(a16);
    ax_tensor_free(view);
    ax_tensor_free(base);
    ax_tensor_free(a);
    ax_tensor_free(b);
}

static void test_init_fans_gain_errors(void **state) {
    (void)state;
    ax_rng r;
    ax_rng_init(&r, 1, 1);
    int64_t fi, fo;
    ax_tensor *w = zeros(5, (int64_t[]){8, 4, 3, 2, 1}, AX_DTYPE_F32);
    assert_ok(ax_init_fans(w, &fi, &fo));
    assert_int_equal(fi, 4 * 6);
    assert_int_equal(fo, 8 * 6);
    ax_tensor *lin = zeros(2, (int64_t[]){5, 7}, AX_DTYPE_F32);
    assert_ok(ax_init_fans(lin, &fi, NULL));
    assert_int_equal(fi, 7);
    ax_tensor *vec = zeros(1, (int64_t[]){5}, AX_DTYPE_F32);
    assert_fails(ax_init_fans(vec, &fi, &fo), AX_ERR_INVALID,
                 "ax_init_fans: fan in and fan out can not be computed for t [5] with fewer than 2 dimensions");
    assert_fails(ax_init_kaiming_uniform_(vec, 0, AX_FAN_IN, AX_NL_RELU, &r), AX_ERR_INVALID,
                 "ax_init_kaiming_uniform_: ax_init_fans: fan in and fan out can not be computed");
    assert_fails(ax_init_xavier_normal_(vec, 1, &r), AX_ERR_INVALID, "ax_init_xavier_normal_: ax_init_fans");
    ax_tensor *i64 = zeros(2, (int64_t[]){2, 2}, AX_DTYPE_I64);
    assert_fails(ax_init_normal_(i64, 0, 1, &r), AX_ERR_INVALID,
                 "ax_init_normal_: t has dtype i64; initialisers need a floating dtype");
    assert_fails(ax_init_uniform_(lin, 1, -1, &r), AX_ERR_INVALID,
                 "ax_init_uniform_: bounds a = 1, b = -1 must be finite with a <= b");
    assert_fails(ax_init_normal_(lin, 0, -1, &r), AX_ERR_INVALID, "std = -1 must be finite with std >= 0");
    assert_fails(ax_init_trunc_normal_(lin, 0, 1, 2, -2, &r), AX_ERR_INVALID, "bounds a = 2, b = -2 need a < b");
    assert_fails(ax_init_trunc_normal_(lin, 0, 0, -2, 2, &r), AX_ERR_INVALID, "std = 0 must be finite with std > 0");
    assert_fails(ax_init_uniform_(lin, 0, 1, NULL), AX_ERR_INVALID, "ax_init_uniform_: rng is NULL");
    assert_fails(ax_init_kaiming_normal_(lin, 0, (ax_fan_mode)7, AX_NL_RELU, &r), AX_ERR_INVALID,
                 "mode 7 is neither AX_FAN_IN nor AX_FAN_OUT");
    /* zero-element tensors: a no-op, and the rng does not move */
    ax_tensor *empty = zeros(2, (int64_t[]){0, 3}, AX_DTYPE_F32);
    uint64_t c = r.counter;
    assert_ok(ax_init_kaiming_uniform_(empty, 0, AX_FAN_IN, AX_NL_RELU, &r));
    assert_ok(ax_init_normal_(empty, 0, 1, &r));
    assert_int_equal(r.counter, c);

    assert_true(fabs(ax_init_calculate_gain(AX_NL_LINEAR, 0) - 1) < 1e-15);
    assert_true(fabs(ax_init_calculate_gain(AX_NL_SIGMOID, 0) - 1) < 1e-15);
    assert_true(fabs(ax_init_calculate_gain(AX_NL_TANH, 0) - 5.0 / 3) < 1e-15);
    assert_true(fabs(ax_init_calculate_gain(AX_NL_RELU, 0) - sqrt(2.0)) < 1e-15);
    assert_true(fabs(ax_init_calculate_gain(AX_NL_LEAKY_RELU, 0.01) - sqrt(2.0 / 1.0001)) < 1e-15);
    assert_true(fabs(ax_init_calculate_gain(AX_NL_LEAKY_RELU, sqrt(5.0)) - sqrt(1.0 / 3)) < 1e-15);
    assert_true(fabs(ax_init_calculate_gain(AX_NL_SELU, 0) - 0.75) < 1e-15);
    ax_tensor_free(empty);
    ax_tensor_free(i64);
    ax_tensor_free(vec);
    ax_tensor_free(lin);
    ax_tensor_free(w);
}

/* Constructors initialise like torch's reset_parameters. */
static void test_default_init(void **state) {
    (void)state;
    ax_rng r;
    ax_rng_init(&r, 31, 0);
    ax_module *c = conv(32, 64, K3, 1, 1, true, &r); /* fan_in 864 */
    assert_uniform("Conv3d.weight", ax_module_get_parameter(c, "weight"), 1 / sqrt(864.0));
    stats s = stats_of(ax_module_get_parameter(c, "bias"));
    assert_true(s.min >= -1 / sqrt(864.0) && s.max <= 1 / sqrt(864.0) && s.max - s.min > 1 / sqrt(864.0));
    ax_module_free(c);
    /* transposed: weight [Ci, Co, k...], torch's fan_in = Co * k^3 = 16 * 8 */
    ax_module *t = conv_t(200, 16, K2, 2, true, &r);
    ax_tensor *tw = ax_module_get_parameter(t, "weight");
    assert_int_equal(tw->shape[0], 200);
    assert_int_equal(tw->shape[1], 16);
    assert_uniform("ConvTranspose3d.weight", tw, 1 / sqrt(128.0));
    s = stats_of(ax_module_get_parameter(t, "bias"));
    assert_true(s.min >= -1 / sqrt(128.0) && s.max <= 1 / sqrt(128.0));
    ax_module_free(t);
    ax_module *lin;
    assert_ok(ax_nn_linear_new(&lin, 400, 300, false, &r));
    assert_uniform("Linear.weight", ax_module_get_parameter(lin, "weight"), 1 / sqrt(400.0));
    assert_null(ax_module_get_parameter(lin, "bias"));
    ax_module_free(lin);
    /* grouped conv: fan_in = Ci/groups * k^3 */
    ax_conv_params p = conv_p(1, 1);
    p.groups = 4;
    ax_module *g;
    assert_ok(ax_nn_conv3d_new(&g, 64, 128, K3, &p, false, &r));
    assert_int_equal(ax_module_get_parameter(g, "weight")->shape[1], 16);
    assert_uniform("grouped Conv3d.weight", ax_module_get_parameter(g, "weight"), 1 / sqrt(16.0 * 27));
    ax_module_free(g);
    /* norms: ones and zeros; BatchNorm buffers */
    ax_module *bn = bnorm(5, 0.1);
    s = stats_of(ax_module_get_parameter(bn, "weight"));
    assert_true(s.min == 1 && s.max == 1);
    s = stats_of(ax_module_get_parameter(bn, "bias"));
    assert_true(s.min == 0 && s.max == 0);
    s = stats_of(ax_module_get_buffer(bn, "running_var"));
    assert_true(s.min == 1 && s.max == 1);
    ax_module_free(bn);
    /* same rng position, same weights */
    ax_rng r1, r2;
    ax_rng_init(&r1, 77, 1);
    ax_rng_init(&r2, 77, 1);
    ax_module *m1 = build_resenc(&r1), *m2 = build_resenc(&r2);
    assert_true(r1.counter == r2.counter && r1.counter > 0);
    ax_named_tensors l1, l2;
    assert_ok(ax_module_parameters(m1, &l1));
    assert_ok(ax_module_parameters(m2, &l2));
    for (size_t i = 0; i < l1.n; i++) assert_true(ax_allclose(l1.names[i], l1.tensors[i], l2.tensors[i], 0, 0));
    ax_named_tensors_clear(&l1);
    ax_named_tensors_clear(&l2);
    ax_module_free(m1);
    ax_module_free(m2);
}

/* ==== constructors, forward errors, printing ================================================ */

static void test_constructor_errors(void **state) {
    (void)state;
    ax_rng r;
    ax_rng_init(&r, 1, 0);
    ax_module *m;
    ax_conv_params p = ax_conv_params_default();
    p.groups = 3;
    assert_fails(ax_nn_conv3d_new(&m, 4, 6, K3, &p, true, &r), AX_ERR_INVALID,
                 "ax_nn_conv3d_new: groups 3 must be positive and divide in_channels 4 and out_channels 6");
    assert_null(m);
    p = ax_conv_params_default();
    p.output_padding[0] = 1;
    assert_fails(ax_nn_conv3d_new(&m, 4, 6, K3, &p, true, &r), AX_ERR_INVALID,
                 "output_padding must be 0 for a (non-transposed) convolution");
    p = ax_conv_params_default();
    p.stride[1] = 0;
    assert_fails(ax_nn_conv_transpose3d_new(&m, 4, 6, K3, &p, true, &r), AX_ERR_INVALID,
                 "ax_nn_conv_transpose3d_new: dim 1: stride 0 and dilation 1 must be positive");
    assert_fails(ax_nn_conv3d_new(&m, 0, 6, K3, NULL, true, &r), AX_ERR_INVALID,
                 "in_channels 0 and out_channels 6 must be positive");
    assert_fails(ax_nn_conv3d_new(&m, 2, 6, (int64_t[]){3, 0, 3}, NULL, true, &r), AX_ERR_INVALID,
                 "kernel (3, 0, 3) must be positive");
    assert_fails(ax_nn_conv3d_new(&m, 2, 6, K3, NULL, true, NULL), AX_ERR_INVALID, "ax_nn_conv3d_new: rng is NULL");
    assert_fails(ax_nn_linear_new(&m, 2, 3, true, NULL), AX_ERR_INVALID, "ax_nn_linear_new: rng is NULL");
    assert_fails(ax_nn_instance_norm3d_new(&m, 4, 1e-5, 0.1, true, true), AX_ERR_UNSUPPORTED,
                 "track_running_stats=True is not supported");
    assert_fails(ax_nn_instance_norm3d_new(&m, 4, 0, 0.1, true, false), AX_ERR_INVALID, "eps = 0 must be positive");
    assert_fails(ax_nn_group_norm_new(&m, 4, 6, 1e-5, true), AX_ERR_INVALID,
                 "ax_nn_group_norm_new: num_channels 6 must be divisible by num_groups 4");
    assert_fails(ax_nn_layer_norm_new(&m, 0, NULL, 1e-5, true, true), AX_ERR_INVALID,
                 "normalized_shape needs 1 to 8 dims, got 0");
    assert_fails(ax_nn_batch_norm3d_new(&m, 4, 1e-5, 1.5, true, true), AX_ERR_INVALID,
                 "momentum = 1.5 must be in [0, 1]");
    ax_nn_attention_opts o = ax_nn_attention_opts_default();
    assert_fails(ax_nn_attention_new(&m, 12, &o, &r), AX_ERR_INVALID,
                 "ax_nn_attention_new: dim 12 should be divisible by num_heads 8");
    assert_fails(ax_nn_max_pool3d_new(&m, K2, (int64_t[]){1, 0, 1}, NULL, false), AX_ERR_INVALID,
                 "ax_nn_max_pool3d_new: dim 1: kernel 2 and stride 0 must be positive");
    assert_fails(ax_nn_leaky_relu_new(&m, NAN), AX_ERR_INVALID, "negative_slope = nan is not finite");
}

static void test_forward_errors(void **state) {
    (void)state;
    ax_rng r;
    ax_rng_init(&r, 1, 0);
    ax_module *net = seq(2, (ax_module *[]){conv(2, 4, K3, 1, 1, true, &r), conv(3, 4, K3, 1, 1, true, &r)});
    ax_tensor *x = ax_test_randn(5, (int64_t[]){1, 2, 4, 4, 4}, 1, 1, 0, false), *y;
    assert_fails(ax_module_forward(net, &y, x), AX_ERR_INVALID, "Sequential[1] (Conv3d): ax_conv3d: ");
    assert_null(y);
    ax_module *outer = seq(1, (ax_module *[]){net});
    assert_fails(ax_module_forward(outer, &y, x), AX_ERR_INVALID,
                 "Sequential[0] (Sequential): Sequential[1] (Conv3d): ax_conv3d");
    ax_module_free(outer);
    ax_module *container = custom(&list_class);
    assert_fails(ax_module_forward(container, &y, x), AX_ERR_STATE,
                 "ax_module_forward: ModuleList has no forward (it is a container)");
    assert_fails(ax_module_forward(container, &y, NULL), AX_ERR_INVALID, "ax_module_forward: ModuleList: x is NULL");
    ax_module_free(container);
    ax_module *in = inorm(2);
    ax_tensor *x3 = ax_test_randn(3, (int64_t[]){1, 2, 4}, 1, 1, 0, false);
    assert_fails(ax_module_forward(in, &y, x3), AX_ERR_INVALID,
                 "InstanceNorm3d: expected a 5-D input [N, C, D, H, W], got x [1, 2, 4]");
    ax_module_free(in);
    ax_module *empty = seq(0, NULL);
    assert_ok(ax_module_forward(empty, &y, x3));
    assert_ptr_equal(y, x3);
    ax_tensor_free(y);
    ax_module_free(empty);
    ax_tensor_free(x3);
    ax_tensor_free(x);
}

/* A custom module with private state freed by the module. */
typedef struct scale_state {
    double s;
} scale_state;

static ax_status scaled_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    const scale_state *s = ax_module_state(self);
    ax_tensor *h;
    if (ax_mul(&h, x, ax_module_get_parameter(self, "gamma")) != AX_OK) return ax_error_status();
    ax_status st = ax_mul_scalar(out, h, s->s);
    ax_tensor_free(h);
    return st;
}

static void scale_repr(const ax_module *self, char *buf, size_t size) {
    snprintf(buf, size, "s=%g", ((const scale_state *)ax_module_state(self))->s);
}

static void test_custom_module_and_print(void **state) {
    (void)state;
    static const ax_module_class scaled_class = {"Scaled", scaled_forward, free, scale_repr};
    scale_state *st = malloc(sizeof *st);
    assert_non_null(st);
    st->s = 3.0;
    ax_module *m;
    assert_ok(ax_module_new(&m, &scaled_class, st));
    assert_ptr_equal(ax_module_state(m), st);
    ax_tensor *gamma;
    assert_ok(ax_tensor_full(&gamma, 1, (int64_t[]){2}, AX_DTYPE_F32, 2.0));
    assert_ok(ax_module_add_parameter(m, "gamma", gamma));
    ax_tensor *x = ax_test_randn(2, (int64_t[]){3, 2}, 1, 1, 0, false), *y;
    assert_ok(ax_module_forward(m, &y, x));
    assert_true(fabs(ax_tensor_get(y, 1) - 6 * ax_tensor_get(x, 1)) < 1e-6);
    assert_true(y->requires_grad);
    ax_tensor_free(y);
    ax_tensor_free(x);

    ax_rng r;
    ax_rng_init(&r, 1, 0);
    ax_module *net = seq(3, (ax_module *[]){conv(2, 4, K3, 1, 1, true, &r), inorm(4),
                                            seq(2, (ax_module *[]){m, simple(ax_nn_relu_new)})});
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    ax_module_print(net, f);
    fclose(f);
    const char *want = "Sequential(\n"
                       "  (0): Conv3d(2, 4, kernel_size=(3, 3, 3), stride=(1, 1, 1), padding=(1, 1, 1))\n"
                       "  (1): InstanceNorm3d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=False)\n"
                       "  (2): Sequential(\n"
                       "    (0): Scaled(s=3)\n"
                       "    (1): ReLU()\n"
                       "  )\n"
                       ")\n";
    if (strcmp(text, want) != 0) {
        print_error("print:\n%s\nwanted:\n%s\n", text, want);
        fail();
    }
    free(text);
    ax_module_free(net);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_match_pytorch),
        cmocka_unit_test(test_lookup_and_apply),
        cmocka_unit_test(test_shared_parameters),
        cmocka_unit_test(test_registration_errors),
        cmocka_unit_test(test_misc_matches_pytorch),
        cmocka_unit_test(test_resenc_matches_pytorch),
        cmocka_unit_test(test_tokens_match_pytorch),
        cmocka_unit_test(test_half_precision_load),
        cmocka_unit_test_setup_teardown(test_strict_load_errors, setup_tmp, teardown_tmp),
        cmocka_unit_test_setup_teardown(test_save_roundtrip, setup_tmp, teardown_tmp),
        cmocka_unit_test(test_batch_norm_modes),
        cmocka_unit_test(test_dropout_modes_and_streams),
        cmocka_unit_test(test_attention_dropout_path),
        cmocka_unit_test(test_gradcheck_modules),
        cmocka_unit_test(test_training_loop),
        cmocka_unit_test(test_init_distributions),
        cmocka_unit_test(test_init_reproducible_and_strided),
        cmocka_unit_test(test_init_fans_gain_errors),
        cmocka_unit_test(test_default_init),
        cmocka_unit_test(test_constructor_errors),
        cmocka_unit_test(test_forward_errors),
        cmocka_unit_test(test_custom_module_and_print),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
