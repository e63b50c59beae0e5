/* METHOD plugin `mae`, loaded through the registry from the build tree:
 * the cube mask and the masked-voxel loss and gradient against PyTorch
 * (tests/fixtures/mae/mae.safetensors, made by make_mae.py there, which
 * rebuilds the mask from axon's Philox stream), a finite-difference check,
 * the mask's statistics, preview, and bad input. The "network" is a module
 * that returns a given tensor and records the input it was shown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "axon/loss.h"
#include "axon/plugin.h"
#include "axon/safetensors.h"
#include "gradcheck.h"
#include "registry.h"

static ax_registry *reg;
static const ax_registry_item *mae;

static int ax_setup(void **state) {
    (void)state;
    if (ax_registry_new(&reg) != AX_OK) return -1;
    ax_registry_scan_build_tree(reg, AX_TEST_BUILD_PLUGINS);
    mae = ax_registry_find(reg, AX_PLUGIN_METHOD, "mae");
    return mae ? 0 : -1;
}

static int ax_teardown(void **state) {
    (void)state;
    ax_registry_free(reg);
    return 0;
}

static ax_instance *mae_new(double ratio, int64_t block, const char *loss) {
    ax_params *p;
    ax_instance *inst;
    assert_int_equal(ax_params_new(&p, mae->plugin->params, "method 'mae'"), AX_OK);
    assert_int_equal(ax_params_set_float(p, "mask_ratio", ratio), AX_OK);
    assert_int_equal(ax_params_set_int(p, "block", block), AX_OK);
    assert_int_equal(ax_params_set_string(p, "loss", loss), AX_OK);
    assert_int_equal(ax_instance_new(&inst, mae, p), AX_OK);
    return inst;
}

static const ax_method_ops *ops_of(const ax_instance *inst) { return inst->ops; }

/* ---- the echo "network" ------------------------------------------------------- */

typedef struct echo_state {
    ax_tensor *answer; /* borrowed: what forward returns */
    ax_tensor *seen;   /* owned copy of the last input */
} echo_state;

static void echo_free(void *p) {
    echo_state *s = p;
    ax_tensor_free(s->seen);
    free(s);
}

static ax_status echo_forward(ax_module *self, ax_tensor **out, const ax_tensor *x) {
    echo_state *s = ax_module_state(self);
    ax_tensor_free(s->seen);
    s->seen = NULL;
    ax_status st = ax_tensor_contiguous(&s->seen, x);
    if (st != AX_OK) return st;
    if (s->seen == x) { /* contiguous returned x itself: copy so later changes do not show */
        ax_tensor *c;
        st = ax_tensor_empty_like(&c, x, x->dtype);
        if (st == AX_OK) st = ax_tensor_copy_(c, x);
        ax_tensor_free(s->seen);
        s->seen = c;
        if (st != AX_OK) return st;
    }
    /* identity through autograd: answer * 1 keeps the graph to the leaf */
    return ax_mul_scalar(out, s->answer, 1.0);
}

static const ax_module_class echo_class = {"Echo", echo_forward, echo_free, NULL};

static ax_module *echo_new(ax_tensor *answer) {
    echo_state *s = calloc(1, sizeof *s);
    assert_non_null(s);
    s->answer = answer;
    ax_module *m;
    assert_int_equal(ax_module_new(&m, &echo_class, s), AX_OK);
    return m;
}

/* ---- fixture ------------------------------------------------------------------------ */

static ax_tensor *fixture(ax_safetensors *f, const char *key) {
    ax_tensor *t, *c;
    if (ax_safetensors_get(f, key, &t) != AX_OK) fail_msg("fixture %s: %s", key, ax_error_message());
    /* a private copy: tests modify and differentiate these */
    assert_int_equal(ax_tensor_empty_like(&c, t, t->dtype), AX_OK);
    assert_int_equal(ax_tensor_copy_(c, t), AX_OK);
    ax_tensor_free(t);
    return c;
}

static ax_safetensors *fixture_open(void) {
    ax_safetensors *f;
    if (ax_safetensors_open(&f, AX_TEST_FIXTURES "/mae/mae.safetensors") != AX_OK)
        fail_msg("open fixture: %s", ax_error_message());
    return f;
}

static void fixture_rng(ax_safetensors *f, ax_rng *r) {
    ax_rng_init(r, strtoull(ax_safetensors_metadata(f, "seed"), NULL, 10),
                strtoull(ax_safetensors_metadata(f, "stream"), NULL, 10));
}

/* Loss and gradient of both losses against PyTorch; the masked input the
 * network saw equals x * keep exactly. */
static void test_parity_with_pytorch(void **state) {
    (void)state;
    const char *kinds[2] = {"mse", "l1"};
    ax_safetensors *f = fixture_open();
    double ratio = strtod(ax_safetensors_metadata(f, "mask_ratio"), NULL);
    int64_t block = strtoll(ax_safetensors_metadata(f, "block"), NULL, 10);
    ax_tensor *x = fixture(f, "x"), *view = fixture(f, "view");
    for (int k = 0; k < 2; k++) {
        char key[32];
        snprintf(key, sizeof key, "pred_%s", kinds[k]);
        ax_tensor *pred = fixture(f, key);
        snprintf(key, sizeof key, "loss_%s", kinds[k]);
        ax_tensor *want_loss = fixture(f, key);
        snprintf(key, sizeof key, "grad_%s", kinds[k]);
        ax_tensor *want_grad = fixture(f, key);
        assert_int_equal(ax_tensor_set_requires_grad(pred, true), AX_OK);

        ax_instance *inst = mae_new(ratio, block, kinds[k]);
        ax_module *net = echo_new(pred);
        ax_rng r;
        fixture_rng(f, &r);
        ax_tensor *loss = NULL;
        if (ops_of(inst)->loss(inst->self, net, x, &r, &loss) != AX_OK) fail_msg("%s", ax_error_message());
        assert_int_equal(loss->ndim, 0);
        assert_true(loss->requires_grad);
        if (!ax_allclose(kinds[k], loss, want_loss, 1e-6, 1e-5)) fail_msg("%s loss differs", kinds[k]);
        assert_int_equal(ax_backward(loss, NULL), AX_OK);
        if (!ax_allclose("grad", pred->grad, want_grad, 1e-8, 1e-5)) fail_msg("%s grad differs", kinds[k]);
        echo_state *es = ax_module_state(net);
        if (!ax_allclose("masked input", es->seen, view, 0, 0)) fail_msg("masked input differs");

        ax_tensor_free(loss);
        ax_module_free(net);
        ax_instance_free(inst);
        ax_tensor_free(pred);
        ax_tensor_free(want_loss);
        ax_tensor_free(want_grad);
    }
    ax_tensor_free(view);
    ax_tensor_free(x);
    ax_safetensors_close(f);
}

typedef struct gc_ctx {
    ax_instance *inst;
    const ax_tensor *x;
    ax_rng rng;
} gc_ctx;

static ax_status gc_loss(ax_tensor **out, ax_tensor *const *in, void *ctx) {
    gc_ctx *c = ctx;
    ax_module *net = echo_new(in[0]);
    ax_rng r = c->rng; /* the same mask on every evaluation */
    ax_status st = ops_of(c->inst)->loss(c->inst->self, net, c->x, &r, out);
    ax_module_free(net);
    return st;
}

/* Finite differences through the whole plugin (mask, loss, reduction). */
static void test_gradcheck(void **state) {
    (void)state;
    const int64_t shape[5] = {2, 1, 6, 5, 7};
    ax_tensor *x = ax_test_randn(5, shape, 3, 1.0, 0.0, false);
    ax_tensor *pred = ax_test_randn(5, shape, 4, 1.0, 0.0, true);
    const char *kinds[2] = {"mse", "l1"};
    for (int k = 0; k < 2; k++) {
        gc_ctx c = {.inst = mae_new(0.5, 3, kinds[k]), .x = x};
        ax_rng_init(&c.rng, 9, 1);
        ax_gc_opts o = AX_GC_DEFAULT;
        o.max_elems = 120;
        ax_tensor *in[1] = {pred};
        assert_true(ax_gradcheck(gc_loss, 1, in, &c, &o));
        ax_instance_free(c.inst);
    }
    ax_tensor_free(pred);
    ax_tensor_free(x);
}

/* Exactly floor(ratio * cubes) whole cubes per sample, different per sample
 * and per stream, the same for the same stream; every channel masked alike. */
static void test_mask_statistics(void **state) {
    (void)state;
    const int64_t shape[5] = {3, 2, 16, 16, 16};
    ax_tensor *x, *pred;
    assert_int_equal(ax_tensor_full(&x, 5, shape, AX_DTYPE_F32, 1.0), AX_OK);
    assert_int_equal(ax_tensor_zeros(&pred, 5, shape, AX_DTYPE_F32), AX_OK);
    ax_instance *inst = mae_new(0.75, 4, "mse");
    ax_module *net = echo_new(pred);
    echo_state *es = ax_module_state(net);
    const int64_t V = 16 * 16 * 16;
    float *first = malloc((size_t)(3 * 2 * V) * sizeof *first);
    assert_non_null(first);
    for (int trial = 0; trial < 3; trial++) {
        ax_rng r;
        ax_rng_init(&r, 5, trial == 2 ? 1 : 0);
        ax_tensor *loss;
        assert_int_equal(ops_of(inst)->loss(inst->self, net, x, &r, &loss), AX_OK);
        /* pred 0, x 1: the mean squared error over masked voxels is 1 */
        assert_float_equal(ax_tensor_get(loss, 0), 1.0, 1e-6);
        ax_tensor_free(loss);
        const float *v = ax_tensor_data(es->seen);
        for (int64_t s = 0; s < 3; s++) {
            int64_t zeros = 0;
            for (int64_t i = 0; i < V; i++) {
                zeros += v[(s * 2) * V + i] == 0.0f;
                assert_true(v[(s * 2) * V + i] == v[(s * 2 + 1) * V + i]);
            }
            assert_int_equal(zeros, 48 * 64); /* floor(0.75 * 64) cubes of 4^3 */
            /* whole cubes: each 4^3 cube is all zero or all one */
            for (int64_t c = 0; c < 64; c++) {
                int64_t cz = c / 16, cy = (c / 4) % 4, cx = c % 4;
                float ref = v[s * 2 * V + ((cz * 4) * 16 + cy * 4) * 16 + cx * 4];
                for (int z = 0; z < 4; z++)
                    for (int y = 0; y < 4; y++)
                        for (int xx = 0; xx < 4; xx++)
                            assert_true(v[s * 2 * V + ((cz * 4 + z) * 16 + cy * 4 + y) * 16 + cx * 4 + xx] == ref);
            }
        }
        assert_true(memcmp(v, v + 2 * V, (size_t)V * sizeof *v) != 0); /* samples differ */
        if (trial == 0) memcpy(first, v, (size_t)(3 * 2 * V) * sizeof *v);
        if (trial == 1) assert_memory_equal(first, v, (size_t)(3 * 2 * V) * sizeof *v);
        if (trial == 2) assert_true(memcmp(first, v, (size_t)(3 * 2 * V) * sizeof *v) != 0);
    }
    free(first);
    ax_module_free(net);
    ax_instance_free(inst);
    ax_tensor_free(pred);
    ax_tensor_free(x);
}

static void test_preview_and_channels(void **state) {
    (void)state;
    const int64_t shape[5] = {1, 1, 8, 8, 8};
    ax_tensor *x = ax_test_randn(5, shape, 11, 1.0, 2.0, false);
    ax_tensor *pred = ax_test_randn(5, shape, 12, 1.0, 0.0, true);
    ax_instance *inst = mae_new(0.5, 4, "mse");
    ax_module *net = echo_new(pred);
    ax_rng r;
    ax_rng_init(&r, 1, 2);
    ax_tensor *view, *out;
    assert_int_equal(ops_of(inst)->preview(inst->self, net, x, &r, &view, &out), AX_OK);
    assert_true(ax_tensor_same_shape(view, x) && ax_tensor_same_shape(out, x));
    assert_false(out->requires_grad); /* preview runs under no-grad */
    int64_t zeros = 0;
    for (int64_t i = 0; i < ax_tensor_numel(view); i++) zeros += ax_tensor_get(view, i) == 0.0;
    assert_int_equal(zeros, 4 * 64);
    ax_tensor_free(view);
    ax_tensor_free(out);
    int64_t oc = 0;
    assert_int_equal(ops_of(inst)->out_channels(inst->self, 3, &oc), AX_OK);
    assert_int_equal(oc, 3);
    assert_int_equal(ops_of(inst)->out_channels(inst->self, 0, &oc), AX_ERR_INVALID);
    ax_module_free(net);
    ax_instance_free(inst);
    ax_tensor_free(pred);
    ax_tensor_free(x);
}

static void test_bad_input(void **state) {
    (void)state;
    ax_rng r;
    ax_rng_init(&r, 1, 2);
    ax_tensor *loss = NULL;
    /* a block as large as the patch: one cube, 0.75 of it masks nothing */
    const int64_t shape[5] = {1, 1, 8, 8, 8};
    ax_tensor *x = ax_test_randn(5, shape, 1, 1.0, 0.0, false);
    ax_tensor *pred = ax_test_randn(5, shape, 2, 1.0, 0.0, true);
    ax_instance *inst = mae_new(0.75, 16, "mse");
    ax_module *net = echo_new(pred);
    assert_int_equal(ops_of(inst)->loss(inst->self, net, x, &r, &loss), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "masks nothing"));
    ax_instance_free(inst);
    /* the network must reconstruct the input's shape */
    const int64_t wrong[5] = {1, 2, 8, 8, 8};
    ax_tensor *p2 = ax_test_randn(5, wrong, 2, 1.0, 0.0, true);
    ax_module *net2 = echo_new(p2);
    inst = mae_new(0.5, 4, "mse");
    assert_int_equal(ops_of(inst)->loss(inst->self, net2, x, &r, &loss), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "returned [1, 2, 8, 8, 8] for an input of [1, 1, 8, 8, 8]"));
    /* 4-D input */
    const int64_t s4[4] = {1, 8, 8, 8};
    ax_tensor *x4 = ax_test_randn(4, s4, 1, 1.0, 0.0, false);
    assert_int_equal(ops_of(inst)->loss(inst->self, net, x4, &r, &loss), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "[N, C, D, H, W]"));
    assert_null(loss);
    /* parameters are validated by the host against the spec */
    ax_params *p;
    assert_int_equal(ax_params_new(&p, mae->plugin->params, "method 'mae'"), AX_OK);
    assert_int_equal(ax_params_set_float(p, "mask_ratio", 1.5), AX_ERR_INVALID);
    assert_int_equal(ax_params_set_string(p, "loss", "ssim"), AX_ERR_INVALID);
    assert_int_equal(ax_params_set_int(p, "blok", 4), AX_ERR_NOT_FOUND);
    assert_non_null(strstr(ax_error_message(), "did you mean 'block'"));
    ax_params_free(p);
    ax_tensor_free(x4);
    ax_module_free(net2);
    ax_tensor_free(p2);
    ax_module_free(net);
    ax_instance_free(inst);
    ax_tensor_free(pred);
    ax_tensor_free(x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parity_with_pytorch), cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_mask_statistics),     cmocka_unit_test(test_preview_and_channels),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, ax_setup, ax_teardown);
}
