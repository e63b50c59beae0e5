/* ARCH plugins resenc_unet and plain_unet, loaded through the registry from
 * the build tree as the host loads them, against PyTorch's
 * ResidualEncoderUNet / PlainConvUNet: weights saved by PyTorch load
 * strictly, outputs (with deep supervision) and parameter gradients match
 * the NAME_io.safetensors files in tests/fixtures/archs (by make_archs.py),
 * and the presets have PyTorch's state-dict size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/autograd.h"
#include "axon/ops.h"
#include "axon/safetensors.h"
#include "registry.h"

#define CHECK_OK(expr)                                                                                         \
    do {                                                                                                       \
        if ((expr) != AX_OK) {                                                                                 \
            print_error("%s failed: %s\n", #expr, ax_error_message());                                         \
            fail();                                                                                            \
        }                                                                                                      \
    } while (0)

#define RTOL 1e-4

static ax_registry *reg;

static int ax_setup(void **state) {
    (void)state;
    if (ax_registry_new(&reg) != AX_OK) return -1;
    ax_registry_scan_build_tree(reg, AX_TEST_BUILD_PLUGINS);
    return ax_registry_find(reg, AX_PLUGIN_ARCH, "resenc_unet") && ax_registry_find(reg, AX_PLUGIN_ARCH, "plain_unet")
               ? 0
               : -1;
}

static int ax_teardown(void **state) {
    (void)state;
    ax_registry_free(reg);
    return 0;
}

/* An instance of arch `name` with space-separated key=value parameters;
 * returns the status of ax_instance_new (parameter errors are fatal). */
static ax_status arch_new(ax_instance **inst, const char *name, const char *params) {
    const ax_registry_item *it = ax_registry_find(reg, AX_PLUGIN_ARCH, name);
    assert_non_null(it);
    ax_params *p;
    CHECK_OK(ax_params_new(&p, it->plugin->params, name));
    char buf[512];
    snprintf(buf, sizeof buf, "%s", params);
    for (char *save = NULL, *kv = strtok_r(buf, " ", &save); kv; kv = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(kv, '=');
        assert_non_null(eq);
        *eq = '\0';
        CHECK_OK(ax_params_set_text(p, kv, eq + 1));
    }
    return ax_instance_new(inst, it, p);
}

static ax_module *arch_build(ax_instance *inst, int64_t in, int64_t out, uint64_t seed) {
    const ax_arch_ops *ops = inst->ops;
    ax_rng rng;
    ax_rng_init(&rng, seed, 0);
    ax_module *net = NULL;
    CHECK_OK(ops->build(inst->self, &net, in, out, &rng));
    return net;
}

static void fixture_path(char *buf, size_t n, const char *name, const char *suffix) {
    snprintf(buf, n, "%s/archs/%s%s.safetensors", AX_TEST_FIXTURES, name, suffix);
}

/* |got - want| <= RTOL |want| + RTOL max|want| elementwise (the second term
 * absorbs values that cancel to about zero). */
static void assert_close(const char *what, const ax_tensor *got, const ax_tensor *want) {
    assert_non_null(got);
    assert_int_equal(got->ndim, want->ndim);
    for (int d = 0; d < want->ndim; d++) assert_int_equal(got->shape[d], want->shape[d]);
    int64_t n = ax_tensor_numel(want);
    double scale = 0, worst = 0;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(ax_tensor_get(want, i)));
    for (int64_t i = 0; i < n; i++) {
        double g = ax_tensor_get(got, i), w = ax_tensor_get(want, i);
        double err = fabs(g - w) / (fabs(w) + scale);
        worst = fmax(worst, err);
        if (!(fabs(g - w) <= RTOL * (fabs(w) + scale))) {
            print_error("%s: element %lld: got %.8g, want %.8g\n", what, (long long)i, g, w);
            fail();
        }
    }
    (void)worst;
}

/* One fixture: build from its metadata, load PyTorch's weights strictly,
 * compare every output, the loss and the gradients. */
static void check_fixture(const char *name) {
    char wpath[512], iopath[512];
    fixture_path(wpath, sizeof wpath, name, "");
    fixture_path(iopath, sizeof iopath, name, "_io");
    ax_safetensors *io;
    CHECK_OK(ax_safetensors_open(&io, iopath));
    const char *arch = ax_safetensors_metadata(io, "arch"), *params = ax_safetensors_metadata(io, "params");
    assert_non_null(arch);
    assert_non_null(params);
    int64_t in = atoll(ax_safetensors_metadata(io, "in_channels")),
            out = atoll(ax_safetensors_metadata(io, "out_channels"));
    bool train = strcmp(ax_safetensors_metadata(io, "train"), "1") == 0;

    ax_instance *inst;
    CHECK_OK(arch_new(&inst, arch, params));
    ax_module *net = arch_build(inst, in, out, 7);
    ax_load_report rep = {0};
    CHECK_OK(ax_module_load_safetensors(net, wpath, true, &rep));
    assert_int_equal(rep.n_missing, 0);
    assert_int_equal(rep.n_unexpected, 0);
    ax_load_report_clear(&rep);
    ax_module_train(net, train);

    ax_tensor *x, *outs[8] = {NULL}, *loss = NULL;
    CHECK_OK(ax_safetensors_get(io, "x", &x));
    const ax_arch_ops *ops = inst->ops;
    int n = 0;
    CHECK_OK(ops->forward_all(inst->self, net, x, outs, 8, &n));
    int want_n = 0;
    for (;; want_n++) {
        char key[16];
        snprintf(key, sizeof key, "y%d", want_n);
        ax_tensor *y;
        if (ax_safetensors_get(io, key, &y) != AX_OK) break;
        if (want_n < n) {
            char what[64];
            snprintf(what, sizeof what, "%s %s", name, key);
            assert_close(what, outs[want_n], y);
        }
        ax_tensor_free(y);
    }
    assert_int_equal(n, want_n);

    /* loss = sum_i mean(y_i^2), then PyTorch's gradients */
    for (int i = 0; i < n; i++) {
        ax_tensor *sq = NULL, *m = NULL, *sum = NULL;
        CHECK_OK(ax_mul(&sq, outs[i], outs[i]));
        CHECK_OK(ax_mean(&m, sq, 0, NULL, false));
        if (loss) {
            CHECK_OK(ax_add(&sum, loss, m));
            ax_tensor_free(loss);
            ax_tensor_free(m);
            loss = sum;
        } else {
            loss = m;
        }
        ax_tensor_free(sq);
    }
    ax_tensor *want_loss;
    CHECK_OK(ax_safetensors_get(io, "loss", &want_loss));
    assert_true(fabs(ax_tensor_get(loss, 0) - ax_tensor_get(want_loss, 0)) <= RTOL * ax_tensor_get(want_loss, 0));
    ax_tensor_free(want_loss);
    CHECK_OK(ax_backward(loss, NULL));
    size_t n_grads = 0;
    for (size_t i = 0; i < ax_safetensors_count(io); i++) {
        const char *key = ax_safetensors_name(io, i);
        if (strncmp(key, "grad.", 5) != 0) continue;
        ax_tensor *p = ax_module_get_parameter(net, key + 5), *g;
        if (!p) {
            print_error("%s: no parameter %s\n", name, key + 5);
            fail();
        }
        CHECK_OK(ax_safetensors_get(io, key, &g));
        char what[200];
        snprintf(what, sizeof what, "%s %s", name, key);
        assert_close(what, p->grad, g);
        ax_tensor_free(g);
        n_grads++;
    }
    assert_true(n_grads >= 7);

    /* forward() is the full-resolution output */
    ax_tensor *y = NULL, *y0;
    ax_no_grad_begin();
    CHECK_OK(ax_module_forward(net, &y, x));
    ax_no_grad_end();
    CHECK_OK(ax_safetensors_get(io, "y0", &y0));
    if (!train) assert_close("forward", y, y0); /* BatchNorm's running stats moved in training mode */
    ax_tensor_free(y0);
    ax_tensor_free(y);

    ax_tensor_free(loss);
    for (int i = 0; i < n; i++) ax_tensor_free(outs[i]);
    ax_tensor_free(x);
    ax_module_free(net);
    ax_instance_free(inst);
    ax_safetensors_close(io);
}

static void test_resenc_tiny(void **state) {
    (void)state;
    check_fixture("resenc_tiny");
}

static void test_resenc_deep_supervision(void **state) {
    (void)state;
    check_fixture("resenc_ds3");
}

static void test_plain_tiny(void **state) {
    (void)state;
    check_fixture("plain_tiny");
}

static void test_plain_deep_supervision(void **state) {
    (void)state;
    check_fixture("plain_ds3");
}

/* A checkpoint of another architecture fails naming the first mismatch,
 * and leaves the network as it was. */
static void test_wrong_checkpoint(void **state) {
    (void)state;
    char path[512];
    ax_instance *inst;
    CHECK_OK(arch_new(&inst, "resenc_unet", "preset=tiny"));
    ax_module *net = arch_build(inst, 1, 2, 1);
    double before = ax_tensor_get(ax_module_get_parameter(net, "encoder.stem.convs.0.conv.weight"), 0);

    fixture_path(path, sizeof path, "resenc_ds3", "");
    assert_int_not_equal(ax_module_load_safetensors(net, path, true, NULL), AX_OK);
    const char *msg = ax_error_message();
    if (!strstr(msg, "resenc_ds3.safetensors") ||
        !strstr(msg, "encoder.stem.convs.0.conv.weight: file has [6, 2, 3, 3, 3], model has [8, 1, 3, 3, 3]")) {
        print_error("unexpected message: %s\n", msg);
        fail();
    }
    /* the other architecture's keys: missing and unexpected ones are listed */
    fixture_path(path, sizeof path, "plain_tiny", "");
    assert_int_not_equal(ax_module_load_safetensors(net, path, true, NULL), AX_OK);
    msg = ax_error_message();
    if (!strstr(msg, "missing key") || !strstr(msg, "encoder.stem.convs.0.conv.weight") ||
        !strstr(msg, "unexpected key") || !strstr(msg, "stages.0.0.convs.0.")) {
        print_error("unexpected message: %s\n", msg);
        fail();
    }
    assert_true(ax_tensor_get(ax_module_get_parameter(net, "encoder.stem.convs.0.conv.weight"), 0) == before);
    ax_module_free(net);
    ax_instance_free(inst);
}

static void check_plan(const char *arch, const char *params, const char *stem, const char *proj, int d0, int d1,
                       int d2) {
    ax_instance *inst;
    CHECK_OK(arch_new(&inst, arch, params));
    const ax_arch_ops *ops = inst->ops;
    ax_arch_plan plan;
    CHECK_OK(ops->plan(inst->self, &plan));
    assert_string_equal(plan.stem, stem);
    assert_string_equal(plan.encoder, "encoder.stages");
    assert_string_equal(plan.decoder, "decoder");
    assert_string_equal(plan.input_projection, proj);
    assert_string_equal(plan.output_head, "decoder.seg_layers");
    assert_null(plan.pos_embed);
    assert_int_equal(plan.divisor[0], d0);
    assert_int_equal(plan.divisor[1], d1);
    assert_int_equal(plan.divisor[2], d2);
    /* every role names modules that exist in a built network */
    ax_module *net = arch_build(inst, 2, 1, 3);
    assert_non_null(ax_module_find(net, plan.stem));
    assert_non_null(ax_module_find(net, plan.encoder));
    assert_non_null(ax_module_find(net, plan.decoder));
    assert_non_null(ax_module_find(net, plan.output_head));
    ax_module *conv = ax_module_find(net, plan.input_projection);
    assert_non_null(conv);
    assert_string_equal(ax_module_type(conv), "Conv3d");
    assert_int_equal(ax_module_get_parameter(conv, "weight")->shape[1], 2); /* the input channels */
    ax_module_free(net);
    ax_instance_free(inst);
}

static void test_plan(void **state) {
    (void)state;
    check_plan("resenc_unet", "preset=tiny", "encoder.stem", "encoder.stem.convs.0.conv", 8, 8, 8);
    check_plan("resenc_unet", "preset=S strides=1,1,1,2,2,1,2,2,2,2,2,2,2,2,2", "encoder.stem",
               "encoder.stem.convs.0.conv", 16, 16, 8);
    check_plan("plain_unet", "preset=tiny n_stages=3", "encoder.stages.0", "encoder.stages.0.0.convs.0.conv", 4, 4,
               4);
}

/* State-dict size and parameter count of every preset equal PyTorch's
 * (ResidualEncoderUNet / PlainConvUNet built as in make_archs.py, 1 -> 2
 * channels); L is OpenMind's ResEnc-L. M (L without its deepest stage,
 * 752 keys, 62809928 weights in PyTorch) is left out to keep the test fast. */
static void check_preset(const char *arch, const char *preset, size_t keys, int64_t numel, size_t n_params) {
    ax_instance *inst;
    char params[64];
    snprintf(params, sizeof params, "preset=%s", preset);
    CHECK_OK(arch_new(&inst, arch, params));
    ax_module *net = arch_build(inst, 1, 2, 5);
    ax_named_tensors sd = {0}, ps = {0};
    CHECK_OK(ax_module_state_dict(net, &sd));
    CHECK_OK(ax_module_parameters(net, &ps));
    int64_t total = 0;
    for (size_t i = 0; i < ps.n; i++) total += ax_tensor_numel(ps.tensors[i]);
    if (sd.n != keys || total != numel || ps.n != n_params) {
        print_error("%s %s: %zu keys, %zu parameters, %lld weights; PyTorch: %zu, %zu, %lld\n", arch, preset, sd.n,
                    ps.n, (long long)total, keys, n_params, (long long)numel);
        fail();
    }
    ax_named_tensors_clear(&sd);
    ax_named_tensors_clear(&ps);
    ax_module_free(net);
    ax_instance_free(inst);
}

static void test_presets(void **state) {
    (void)state;
    check_preset("resenc_unet", "tiny", 216, 319478, 69);
    check_preset("resenc_unet", "S", 400, 9814568, 120);
    check_preset("resenc_unet", "L", 956, 102349770, 264);
    check_preset("plain_unet", "tiny", 188, 351270, 68);
    check_preset("plain_unet", "S", 240, 5648328, 88);
    check_preset("plain_unet", "L", 292, 31195594, 108);
}

/* nnU-Net's initialisation: zero conv biases, zeroed last norm of every
 * residual block, He-normal weights with std sqrt(2 / (1 + 0.01^2) / fan_in). */
static void test_init(void **state) {
    (void)state;
    ax_instance *inst;
    CHECK_OK(arch_new(&inst, "resenc_unet", "preset=tiny"));
    ax_module *a = arch_build(inst, 1, 1, 11), *b = arch_build(inst, 1, 1, 11);
    ax_tensor *w = ax_module_get_parameter(a, "encoder.stages.3.blocks.0.conv2.conv.weight");
    int64_t n = ax_tensor_numel(w), fan_in = 64 * 27;
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += ax_tensor_get(w, i) * ax_tensor_get(w, i);
    double std = sqrt(ss / (double)n), want = sqrt(2.0 / (1 + 1e-4) / (double)fan_in);
    assert_true(fabs(std - want) < 0.05 * want);
    assert_true(ax_tensor_get(ax_module_get_parameter(a, "encoder.stages.3.blocks.0.conv2.conv.bias"), 5) == 0);
    assert_true(ax_tensor_get(ax_module_get_parameter(a, "encoder.stages.3.blocks.0.conv2.norm.weight"), 5) == 0);
    assert_true(ax_tensor_get(ax_module_get_parameter(a, "encoder.stages.3.blocks.0.conv1.norm.weight"), 5) == 1);
    /* same seed, same weights */
    ax_tensor *wb = ax_module_get_parameter(b, "encoder.stages.3.blocks.0.conv2.conv.weight");
    for (int64_t i = 0; i < n; i += 97) assert_true(ax_tensor_get(w, i) == ax_tensor_get(wb, i));
    ax_module_free(a);
    ax_module_free(b);
    ax_instance_free(inst);
}

static void expect_param_error(const char *arch, const char *params, const char *want) {
    ax_instance *inst = NULL;
    assert_int_not_equal(arch_new(&inst, arch, params), AX_OK);
    assert_null(inst);
    if (!strstr(ax_error_message(), want)) {
        print_error("%s: message \"%s\" lacks \"%s\"\n", params, ax_error_message(), want);
        fail();
    }
}

static void test_bad_params(void **state) {
    (void)state;
    expect_param_error("resenc_unet", "preset=tiny n_stages=4 features=8,16",
                       "parameter 'features' has 2 values; need 1 or n_stages = 4");
    expect_param_error("resenc_unet", "n_stages=8", "n_stages = 8 needs parameter 'features'");
    expect_param_error("plain_unet", "preset=S strides=2,2", "parameter 'strides' has 2 values");
    expect_param_error("resenc_unet", "kernel_size=4", "kernel_size 4 must be odd");
    expect_param_error("plain_unet", "n_conv_per_stage_decoder=1,1", "need 1 or n_stages - 1 = 5");

    /* an input that the strides do not divide */
    ax_instance *inst;
    CHECK_OK(arch_new(&inst, "resenc_unet", "preset=tiny"));
    ax_module *net = arch_build(inst, 1, 1, 1);
    ax_tensor *x, *y = NULL;
    int64_t shape[5] = {1, 1, 16, 12, 16};
    CHECK_OK(ax_tensor_zeros(&x, 5, shape, AX_DTYPE_F32));
    assert_int_not_equal(ax_module_forward(net, &y, x), AX_OK);
    assert_null(y);
    assert_non_null(strstr(ax_error_message(), "16x12x16 is not a multiple of 8x8x8"));
    ax_tensor_free(x);
    ax_module_free(net);
    ax_instance_free(inst);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resenc_tiny),      cmocka_unit_test(test_resenc_deep_supervision),
        cmocka_unit_test(test_plain_tiny),       cmocka_unit_test(test_plain_deep_supervision),
        cmocka_unit_test(test_wrong_checkpoint), cmocka_unit_test(test_plan),
        cmocka_unit_test(test_presets),          cmocka_unit_test(test_init),
        cmocka_unit_test(test_bad_params),
    };
    return cmocka_run_group_tests(tests, ax_setup, ax_teardown);
}
