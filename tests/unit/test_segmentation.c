/* Segmentation: sliding window, Gaussian map, Dice + CE loss with deep
 * supervision, Dice / HD95 / EDT, pre-trained weight transfer, and the
 * `segmentation` TASK plugin loaded through the registry. PyTorch / scipy
 * parity from tests/fixtures/seg/seg.safetensors (made by make_seg.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "axon/axon.h"
#include "axon/segment.h"
#include "gradcheck.h"
#include "registry.h"

static ax_safetensors *fx;

static ax_tensor *fixture(const char *key) {
    ax_tensor *t = NULL;
    if (ax_safetensors_get(fx, key, &t) != AX_OK) fail_msg("fixture %s: %s", key, ax_error_message());
    return t;
}

#define OK(call)                                                                                                       \
    do {                                                                                                               \
        ax_status st_ = (call);                                                                                        \
        if (st_ != AX_OK) fail_msg("%s: %s", #call, ax_error_message());                                               \
    } while (0)

static int group_setup(void **state) {
    (void)state;
    if (ax_safetensors_open(&fx, AX_TEST_FIXTURES "/seg/seg.safetensors") != AX_OK) {
        fprintf(stderr, "open fixture: %s\n", ax_error_message());
        return -1;
    }
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    ax_safetensors_close(fx);
    return 0;
}

/* ---- nets ---------------------------------------------------------------------- */

/* Conv3d(2, 4, 3, p1) -> LeakyReLU(0.01) -> Conv3d(4, 3, 3, p1), weights from
 * the fixture (make_seg.py's net). */
static ax_module *fixture_net(void) {
    ax_module *c0, *act, *c2, *net;
    ax_rng r;
    ax_rng_init(&r, 1, 0);
    int64_t k3[3] = {3, 3, 3};
    ax_conv_params p = ax_conv_params_default();
    p.padding[0] = p.padding[1] = p.padding[2] = 1;
    OK(ax_nn_conv3d_new(&c0, 2, 4, k3, &p, true, &r));
    OK(ax_nn_leaky_relu_new(&act, 0.01));
    OK(ax_nn_conv3d_new(&c2, 4, 3, k3, &p, true, &r));
    OK(ax_nn_sequential_new(&net, 3, (ax_module *[]){c0, act, c2}));
    const char *keys[] = {"0.weight", "0.bias", "2.weight", "2.bias"};
    for (int i = 0; i < 4; i++) {
        char name[64];
        snprintf(name, sizeof name, "sw.net.%s", keys[i]);
        ax_tensor *src = fixture(name);
        OK(ax_tensor_copy_(ax_module_get_parameter(net, keys[i]), src));
        ax_tensor_free(src);
    }
    ax_module_eval(net);
    return net;
}

/* ---- sliding window ------------------------------------------------------------ */

static void test_window_starts(void **state) {
    (void)state;
    const struct {
        const char *key;
        int64_t size, patch;
        double step;
    } cases[] = {{"steps.a", 19, 8, 0.5},   {"steps.b", 160, 128, 0.5}, {"steps.c", 8, 8, 0.5},
                 {"steps.d", 100, 30, 0.33}, {"steps.e", 37, 10, 0.7},   {"steps.f", 9, 8, 0.5},
                 {"steps.g", 13, 8, 0.5}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t starts[64];
        int n;
        OK(ax_sliding_window_starts(starts, 64, &n, cases[c].size, cases[c].patch, cases[c].step));
        ax_tensor *want = fixture(cases[c].key);
        assert_int_equal(n, ax_tensor_numel(want));
        for (int i = 0; i < n; i++) assert_int_equal(starts[i], (int64_t)ax_tensor_get(want, i));
        /* neighbours overlap by at least (1 - step) * patch */
        for (int i = 1; i < n; i++)
            assert_true((double)(starts[i] - starts[i - 1]) <= cases[c].step * (double)cases[c].patch + 0.5);
        ax_tensor_free(want);
    }
    int n;
    int64_t s[4];
    assert_int_equal(ax_sliding_window_starts(s, 4, &n, 7, 8, 0.5), AX_ERR_INVALID);
    assert_int_equal(ax_sliding_window_starts(s, 4, &n, 9, 8, 0.0), AX_ERR_INVALID);
    assert_int_equal(ax_sliding_window_starts(s, 2, &n, 100, 10, 0.5), AX_ERR_INVALID);
    assert_int_equal(n, 19);
}

static void test_gaussian(void **state) {
    (void)state;
    const struct {
        const char *key;
        int64_t patch[3];
        double sigma;
    } cases[] = {{"gauss.888", {8, 8, 8}, 0.125}, {"gauss.586", {5, 8, 6}, 0.125}, {"gauss.s3", {7, 4, 9}, 0.3}};
    for (size_t c = 0; c < 3; c++) {
        ax_tensor *g, *want = fixture(cases[c].key);
        OK(ax_gaussian_importance(&g, cases[c].patch, cases[c].sigma));
        assert_true(ax_allclose(cases[c].key, g, want, 1e-7, 1e-5));
        ax_tensor_free(g);
        ax_tensor_free(want);
    }
    ax_tensor *flat;
    OK(ax_gaussian_importance(&flat, (int64_t[]){3, 2, 2}, 0));
    for (int i = 0; i < 12; i++) assert_true(ax_tensor_get(flat, i) == 1.0);
    ax_tensor_free(flat);
}

/* A volume exactly one window big: the prediction is the network's output. */
static void test_window_one_window_equals_forward(void **state) {
    (void)state;
    ax_module *net = fixture_net();
    ax_tensor *x = ax_test_randn(5, (int64_t[]){1, 2, 6, 7, 5}, 11, 1.0, 0.0, false), *y, *want;
    ax_sliding_window sw = ax_sliding_window_default();
    sw.patch[0] = 6, sw.patch[1] = 7, sw.patch[2] = 5;
    OK(ax_sliding_window_predict(&y, net, x, &sw));
    OK(ax_module_forward(net, &want, x));
    assert_true(ax_allclose("one window", y, want, 1e-6, 1e-6));
    ax_tensor_free(y);
    /* mirroring a single window of a 1x1x1-kernel net: flip commutes, so equal too */
    ax_module *pw;
    ax_rng r;
    ax_rng_init(&r, 5, 0);
    OK(ax_nn_conv3d_new(&pw, 2, 3, (int64_t[]){1, 1, 1}, NULL, true, &r));
    ax_tensor *pwant;
    sw.mirror_axes = AX_MIRROR_D | AX_MIRROR_H | AX_MIRROR_W;
    OK(ax_sliding_window_predict(&y, pw, x, &sw));
    OK(ax_module_forward(pw, &pwant, x));
    assert_true(ax_allclose("one window, mirrored", y, pwant, 1e-6, 1e-5));
    ax_tensor_free(y);
    ax_tensor_free(pwant);
    ax_module_free(pw);
    ax_tensor_free(want);
    ax_tensor_free(x);
    ax_module_free(net);
}

static void test_window_vs_torch(void **state) {
    (void)state;
    ax_module *net = fixture_net();
    ax_tensor *x = fixture("sw.x");
    const struct {
        const char *key;
        int64_t patch[3];
        double step;
        int mirror;
    } cases[] = {{"sw.plain", {8, 8, 8}, 0.5, 0},
                 {"sw.mirror", {8, 8, 8}, 0.5, AX_MIRROR_D | AX_MIRROR_H | AX_MIRROR_W},
                 {"sw.step", {6, 5, 7}, 0.33, AX_MIRROR_D | AX_MIRROR_W}};
    for (size_t c = 0; c < 3; c++) {
        ax_sliding_window sw = ax_sliding_window_default();
        memcpy(sw.patch, cases[c].patch, sizeof sw.patch);
        sw.step = cases[c].step;
        sw.mirror_axes = cases[c].mirror;
        ax_tensor *y, *want = fixture(cases[c].key);
        OK(ax_sliding_window_predict(&y, net, x, &sw));
        assert_true(ax_allclose(cases[c].key, y, want, 2e-5, 1e-4));
        ax_tensor_free(y);
        ax_tensor_free(want);
    }
    /* a network whose output has another size is refused, naming shapes */
    ax_module *pool;
    OK(ax_nn_max_pool3d_new(&pool, (int64_t[]){2, 2, 2}, NULL, NULL, false));
    ax_sliding_window sw = ax_sliding_window_default();
    sw.patch[0] = sw.patch[1] = sw.patch[2] = 4;
    ax_tensor *y = NULL;
    assert_int_equal(ax_sliding_window_predict(&y, pool, x, &sw), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "[1, 2, 2, 2, 2]"));
    assert_null(y);
    ax_module_free(pool);
    ax_tensor_free(x);
    ax_module_free(net);
}

static void test_argmax(void **state) {
    (void)state;
    ax_tensor *s, *l;
    OK(ax_tensor_zeros(&s, 5, (int64_t[]){1, 3, 1, 1, 4}, AX_DTYPE_F32));
    const float v[3][4] = {{1, 0, 0, 5}, {0, 2, 0, 5}, {0, 3, -1, 4}};
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 4; i++) ax_tensor_set(s, c * 4 + i, v[c][i]);
    OK(ax_seg_argmax(&l, s));
    assert_int_equal(l->ndim, 3);
    const int want[4] = {0, 2, 0, 0}; /* ties: the first class */
    for (int i = 0; i < 4; i++) assert_int_equal((int)ax_tensor_get(l, i), want[i]);
    ax_tensor_free(l);
    ax_tensor_free(s);
}

/* ---- loss ------------------------------------------------------------------------ */

static void loss_case(const char *name, int n, bool batch_dice) {
    char key[64];
    ax_tensor *outs[3], *grads[3], *target, *want, *loss;
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "loss.%s.out%d", name, i);
        outs[i] = fixture(key); /* a new tensor object: a private leaf */
        OK(ax_tensor_set_requires_grad(outs[i], true));
        snprintf(key, sizeof key, "loss.%s.grad%d", name, i);
        grads[i] = fixture(key);
    }
    snprintf(key, sizeof key, "loss.%s.target", name);
    target = fixture(key);
    snprintf(key, sizeof key, "loss.%s.loss", name);
    want = fixture(key);
    ax_seg_loss_config cfg = ax_seg_loss_config_default();
    cfg.batch_dice = batch_dice;
    OK(ax_seg_loss(&loss, outs, NULL, n, target, &cfg));
    assert_int_equal(loss->ndim, 0);
    assert_true(ax_allclose(name, loss, want, 1e-6, 1e-5));
    OK(ax_backward(loss, NULL));
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "%s grad %d", name, i);
        if (outs[i]->grad) {
            assert_true(ax_allclose(key, outs[i]->grad, grads[i], 1e-7, 1e-4));
        } else { /* weight 0: no gradient path, torch's is zero */
            for (int64_t j = 0; j < ax_tensor_numel(grads[i]); j++) assert_true(ax_tensor_get(grads[i], j) == 0);
        }
        ax_tensor_free(outs[i]);
        ax_tensor_free(grads[i]);
    }
    ax_tensor_free(loss);
    ax_tensor_free(want);
    ax_tensor_free(target);
}

static void test_loss_vs_torch(void **state) {
    (void)state;
    loss_case("single", 1, false);
    loss_case("batch", 1, true);
    loss_case("ds", 3, false);
}

static void test_deep_supervision_targets(void **state) {
    (void)state;
    ax_tensor *t = fixture("loss.ds.target");
    for (int i = 1; i <= 2; i++) {
        char key[64];
        snprintf(key, sizeof key, "loss.ds.target%d", i);
        ax_tensor *want = fixture(key), *got;
        OK(ax_seg_resize_labels(&got, t, &want->shape[2]));
        assert_true(ax_tensor_same_shape(got, want));
        for (int64_t j = 0; j < ax_tensor_numel(want); j++)
            assert_int_equal((int)ax_tensor_get(got, j), (int)ax_tensor_get(want, j));
        ax_tensor_free(got);
        ax_tensor_free(want);
    }
    ax_tensor_free(t);
    double w[5];
    OK(ax_deep_supervision_weights(w, 1));
    assert_true(w[0] == 1.0);
    OK(ax_deep_supervision_weights(w, 3));
    assert_true(fabs(w[0] - 2.0 / 3) < 1e-15 && fabs(w[1] - 1.0 / 3) < 1e-15 && w[2] == 0);
    OK(ax_deep_supervision_weights(w, 5));
    assert_true(fabs(w[0] - 8.0 / 15) < 1e-15 && fabs(w[3] - 1.0 / 15) < 1e-15 && w[4] == 0);
}

static ax_status dice_ce_fn(ax_tensor **out, ax_tensor *const *in, void *ctx) {
    return ax_dice_ce_loss(out, in[0], ctx, NULL);
}

static ax_status dice_ce_batch_fn(ax_tensor **out, ax_tensor *const *in, void *ctx) {
    ax_seg_loss_config c = ax_seg_loss_config_default();
    c.batch_dice = true;
    c.weight_ce = 0.5;
    return ax_dice_ce_loss(out, in[0], ctx, &c);
}

static void test_loss_gradcheck(void **state) {
    (void)state;
    ax_tensor *x = ax_test_randn(5, (int64_t[]){2, 3, 3, 2, 4}, 7, 1.0, 0.0, true), *t;
    OK(ax_tensor_zeros(&t, 5, (int64_t[]){2, 1, 3, 2, 4}, AX_DTYPE_U8));
    for (int64_t i = 0; i < ax_tensor_numel(t); i++) ax_tensor_set(t, i, (double)((i * 7 + i / 5) % 3));
    ax_gc_opts o = AX_GC_DEFAULT;
    o.eps = 1e-3, o.atol = 1e-3, o.rtol = 1e-2, o.max_elems = 144;
    assert_true(ax_gradcheck(dice_ce_fn, 1, &x, t, &o));
    assert_true(ax_gradcheck(dice_ce_batch_fn, 1, &x, t, &o));
    /* a class id >= K is an error naming it */
    ax_tensor_set(t, 3, 3);
    ax_tensor *l = NULL;
    assert_int_equal(ax_dice_ce_loss(&l, x, t, NULL), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "class 3"));
    ax_tensor_free(t);
    ax_tensor_free(x);
}

/* ---- metrics ---------------------------------------------------------------------- */

static void test_dice(void **state) {
    (void)state;
    ax_tensor *p = fixture("dice.pred"), *r = fixture("dice.ref"), *want = fixture("dice.dice");
    double d[5];
    OK(ax_seg_dice(d, p, r, 5));
    for (int c = 0; c < 5; c++) {
        double w = ax_tensor_get(want, c);
        if (isnan(w)) assert_true(isnan(d[c]));
        else assert_true(fabs(d[c] - w) < 1e-6);
    }
    assert_true(d[3] == 0.0); /* predicted, absent from the reference */
    assert_true(isnan(d[4]));  /* absent from both: NaN, skipped by means */
    assert_true(fabs(ax_nanmean(d + 1, 4) - (d[1] + d[2] + d[3]) / 3) < 1e-15);
    double nanv[2] = {NAN, NAN};
    assert_true(isnan(ax_nanmean(nanv, 2)));
    /* an i64 map gives the same */
    ax_tensor *p64;
    OK(ax_tensor_to_dtype(&p64, p, AX_DTYPE_I64));
    double d2[5];
    OK(ax_seg_dice(d2, p64, r, 5));
    for (int c = 0; c < 4; c++) assert_true(d2[c] == d[c]);
    ax_tensor_free(p64);
    /* perfect and disjoint masks */
    OK(ax_seg_dice(d, r, r, 3));
    for (int c = 0; c < 3; c++) assert_true(d[c] == 1.0);
    ax_tensor *shape_bad;
    OK(ax_tensor_zeros(&shape_bad, 3, (int64_t[]){9, 8, 6}, AX_DTYPE_U8));
    assert_int_equal(ax_seg_dice(d, shape_bad, r, 3), AX_ERR_INVALID);
    ax_tensor_free(shape_bad);
    ax_tensor_free(p);
    ax_tensor_free(r);
    ax_tensor_free(want);
}

static void test_edt_vs_scipy(void **state) {
    (void)state;
    ax_tensor *f = fixture("edt.feature"), *sp = fixture("edt.spacing"), *want = fixture("edt.dist");
    const double spacing[3] = {ax_tensor_get(sp, 0), ax_tensor_get(sp, 1), ax_tensor_get(sp, 2)};
    const int64_t n = ax_tensor_numel(f);
    double *d = malloc((size_t)n * sizeof *d);
    OK(ax_edt_squared(d, ax_tensor_data(f), f->shape, spacing));
    for (int64_t i = 0; i < n; i++) {
        double w = ax_tensor_get(want, i);
        if (fabs(sqrt(d[i]) - w) > 1e-5 * (1 + w)) fail_msg("edt[%lld]: %g, scipy %g", (long long)i, sqrt(d[i]), w);
    }
    /* no feature at all: infinite */
    uint8_t none[8] = {0};
    OK(ax_edt_squared(d, none, (int64_t[]){2, 2, 2}, spacing));
    for (int i = 0; i < 8; i++) assert_true(isinf(d[i]));
    free(d);
    ax_tensor_free(f);
    ax_tensor_free(sp);
    ax_tensor_free(want);
}

static void test_hd95_vs_scipy(void **state) {
    (void)state;
    const char *cases[] = {"iso", "aniso", "touch"};
    for (int c = 0; c < 3; c++) {
        char key[64];
        snprintf(key, sizeof key, "hd.%s.a", cases[c]);
        ax_tensor *a = fixture(key);
        snprintf(key, sizeof key, "hd.%s.b", cases[c]);
        ax_tensor *b = fixture(key);
        snprintf(key, sizeof key, "hd.%s.spacing", cases[c]);
        ax_tensor *sp = fixture(key);
        snprintf(key, sizeof key, "hd.%s.hd95", cases[c]);
        ax_tensor *want = fixture(key);
        const double spacing[3] = {ax_tensor_get(sp, 0), ax_tensor_get(sp, 1), ax_tensor_get(sp, 2)};
        double h;
        OK(ax_mask_hd95(&h, ax_tensor_data(a), ax_tensor_data(b), a->shape, spacing));
        if (fabs(h - ax_tensor_get(want, 0)) > 1e-5)
            fail_msg("hd95 %s: %.7g, medpy-style reference %.7g", cases[c], h, ax_tensor_get(want, 0));
        /* through label maps: label 1 of a and b */
        double h2;
        OK(ax_seg_hd95(&h2, a, b, 1, spacing));
        assert_true(h2 == h);
        ax_tensor_free(a);
        ax_tensor_free(b);
        ax_tensor_free(sp);
        ax_tensor_free(want);
    }
}

/* Analytic cases: every surface distance is the offset. */
static void test_hd95_analytic(void **state) {
    (void)state;
    /* two parallel plates one voxel thick, t = 3 slices apart along D */
    enum { D = 16, H = 16, W = 18 };
    static uint8_t a[D * H * W], b[D * H * W];
    const double sp[3] = {1.5, 0.7, 1.1};
    const int64_t shape[3] = {D, H, W};
    memset(a, 0, sizeof a), memset(b, 0, sizeof b);
    for (int y = 3; y <= 12; y++)
        for (int x = 2; x <= 15; x++) a[(5 * H + y) * W + x] = b[(8 * H + y) * W + x] = 1;
    double h;
    OK(ax_mask_hd95(&h, a, b, shape, sp));
    assert_true(fabs(h - 3 * 1.5) < 1e-12);
    /* plates along W, 4 voxels apart */
    memset(a, 0, sizeof a), memset(b, 0, sizeof b);
    for (int z = 2; z <= 12; z++)
        for (int y = 1; y <= 14; y++) a[(z * H + y) * W + 4] = b[(z * H + y) * W + 8] = 1;
    OK(ax_mask_hd95(&h, a, b, shape, sp));
    assert_true(fabs(h - 4 * 1.1) < 1e-12);
    /* concentric cubes, half-sides 20 and 21, isotropic 1.3 mm: from the
     * inner surface every distance is 1 voxel; from the outer, the 6 (41^2)
     * face voxels are 1 voxel away and the rest farther, so the 95th
     * percentile of the pooled 20188 distances (19688 of them equal) is 1.3. */
    enum { S = 48 };
    uint8_t *ca = calloc(S * S * S, 1), *cb = calloc(S * S * S, 1);
    for (int z = 0; z < S; z++)
        for (int y = 0; y < S; y++)
            for (int x = 0; x < S; x++) {
                int m = abs(z - 24);
                m = abs(y - 24) > m ? abs(y - 24) : m;
                m = abs(x - 24) > m ? abs(x - 24) : m;
                ca[(z * S + y) * S + x] = m <= 20;
                cb[(z * S + y) * S + x] = m <= 21;
            }
    const double iso[3] = {1.3, 1.3, 1.3};
    OK(ax_mask_hd95(&h, ca, cb, (int64_t[]){S, S, S}, iso));
    assert_true(fabs(h - 1.3) < 1e-12);
    /* empty cases: both -> NaN; one -> the volume's diagonal */
    memset(cb, 0, S * S * S);
    OK(ax_mask_hd95(&h, ca, cb, (int64_t[]){S, S, S}, iso));
    assert_true(fabs(h - sqrt(3.0) * S * 1.3) < 1e-9);
    memset(ca, 0, S * S * S);
    OK(ax_mask_hd95(&h, ca, cb, (int64_t[]){S, S, S}, iso));
    assert_true(isnan(h));
    assert_int_equal(ax_mask_hd95(&h, ca, cb, (int64_t[]){S, S, S}, (double[]){1, 0, 1}), AX_ERR_INVALID);
    free(ca);
    free(cb);
}

/* ---- weight transfer ----------------------------------------------------------------- */

static const ax_module_class container = {"Container", NULL, NULL, NULL};

static ax_module *container_new(void) {
    ax_module *m;
    OK(ax_module_new(&m, &container, NULL));
    return m;
}

static ax_module *conv(int64_t ci, int64_t co, ax_rng *r) {
    ax_module *c;
    OK(ax_nn_conv3d_new(&c, ci, co, (int64_t[]){3, 3, 3}, NULL, true, r));
    return c;
}

/* encoder.stem.convs.0.conv (in -> 4, also as encoder.stem.convs.0.all_modules.0), encoder.stages.0.0 (4 -> enc),
 * encoder.stages.1.0 (enc -> 8), decoder.0 (8 -> 4), decoder.seg (4 -> classes) */
static ax_module *toy_net(int64_t in, int64_t enc, int64_t classes, uint64_t seed) {
    ax_rng r;
    ax_rng_init(&r, seed, 0);
    ax_module *net = container_new(), *encoder = container_new(), *stem = container_new(), *convs = container_new(),
              *c0 = container_new(), *stages = container_new(), *s0, *s1, *decoder = container_new();
    /* dynamic_network_architectures registers the stem conv twice */
    ax_module *stem_conv = conv(in, 4, &r), *all = container_new();
    OK(ax_module_add_child(c0, "conv", stem_conv));
    OK(ax_module_add_child(all, "0", ax_module_retain(stem_conv)));
    OK(ax_module_add_child(c0, "all_modules", all));
    OK(ax_module_add_child(convs, "0", c0));
    OK(ax_module_add_child(stem, "convs", convs));
    OK(ax_nn_sequential_new(&s0, 1, (ax_module *[]){conv(4, enc, &r)}));
    OK(ax_nn_sequential_new(&s1, 1, (ax_module *[]){conv(enc, 8, &r)}));
    OK(ax_module_add_child(stages, "0", s0));
    OK(ax_module_add_child(stages, "1", s1));
    OK(ax_module_add_child(encoder, "stem", stem));
    OK(ax_module_add_child(encoder, "stages", stages));
    OK(ax_module_add_child(decoder, "0", conv(8, 4, &r)));
    OK(ax_module_add_child(decoder, "seg", conv(4, classes, &r)));
    OK(ax_module_add_child(net, "encoder", encoder));
    OK(ax_module_add_child(net, "decoder", decoder));
    return net;
}

static const ax_arch_plan toy_plan = {.stem = "encoder.stem",
                                      .encoder = "encoder.stages",
                                      .decoder = "decoder",
                                      .input_projection = "encoder.stem.convs.0.conv",
                                      .output_head = "decoder.seg",
                                      .divisor = {4, 4, 4}};

static char tmpdir[64];

static void path_in_tmp(char *buf, size_t size, const char *name) { snprintf(buf, size, "%s/%s", tmpdir, name); }

static void save_ckpt(const ax_module *net, const char *path, bool with_plan) {
    char *json;
    OK(ax_arch_plan_to_json(&json, &toy_plan));
    const char *keys[] = {AX_CKPT_META_ARCH, AX_CKPT_META_PLAN}, *vals[] = {"toy", json};
    OK(ax_module_save_safetensors(net, path, with_plan ? 2 : 1, keys, vals));
    free(json);
}

static void assert_param_equal(const ax_module *a, const ax_module *b, const char *key, bool equal) {
    ax_tensor *x = ax_module_get_parameter(a, key), *y = ax_module_get_parameter(b, key);
    assert_non_null(x);
    assert_non_null(y);
    bool same = ax_tensor_same_shape(x, y);
    for (int64_t i = 0; same && i < ax_tensor_numel(x); i++) same = ax_tensor_get(x, i) == ax_tensor_get(y, i);
    if (same != equal) fail_msg("%s: expected %s", key, equal ? "equal" : "different");
}

static int tmp_setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/axon_seg_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int tmp_teardown(void **state) {
    (void)state;
    const char *names[] = {"pre.safetensors", "noplan.safetensors"};
    char p[128];
    for (int i = 0; i < 2; i++) {
        path_in_tmp(p, sizeof p, names[i]);
        unlink(p);
    }
    rmdir(tmpdir);
    return 0;
}

enum { N_ENC = 8 };
static const char *const enc_keys[N_ENC] = {
    "encoder.stem.convs.0.conv.weight",          "encoder.stem.convs.0.conv.bias",
    "encoder.stem.convs.0.all_modules.0.weight", "encoder.stem.convs.0.all_modules.0.bias",
    "encoder.stages.0.0.weight",                 "encoder.stages.0.0.bias",
    "encoder.stages.1.0.weight",                 "encoder.stages.1.0.bias"};
static const char *const dec_keys[] = {"decoder.0.weight", "decoder.0.bias", "decoder.seg.weight",
                                       "decoder.seg.bias"};

static void test_plan_json(void **state) {
    (void)state;
    char *json;
    OK(ax_arch_plan_to_json(&json, &toy_plan));
    assert_non_null(strstr(json, "\"pos_embed\":null"));
    ax_arch_plan p;
    OK(ax_arch_plan_parse(&p, json));
    assert_string_equal(p.stem, toy_plan.stem);
    assert_string_equal(p.encoder, toy_plan.encoder);
    assert_string_equal(p.decoder, toy_plan.decoder);
    assert_string_equal(p.input_projection, toy_plan.input_projection);
    assert_string_equal(p.output_head, toy_plan.output_head);
    assert_null(p.pos_embed);
    assert_int_equal(p.divisor[2], 4);
    ax_arch_plan_clear(&p);
    free(json);
    assert_int_equal(ax_arch_plan_parse(&p, "[1]"), AX_ERR_FORMAT);
    assert_int_equal(ax_arch_plan_parse(&p, "{\"stem\": 3}"), AX_ERR_FORMAT);
    assert_non_null(strstr(ax_error_message(), "stem"));
    assert_int_equal(ax_arch_plan_parse(&p, "{\"divisor\": [1, 2]}"), AX_ERR_FORMAT);
}

static void test_transfer_encoder_only(void **state) {
    (void)state;
    char path[128];
    path_in_tmp(path, sizeof path, "pre.safetensors");
    ax_module *pre = toy_net(1, 6, 1, 1); /* MAE-like head: 1 output channel */
    save_ckpt(pre, path, true);
    ax_module *ft = toy_net(1, 6, 3, 2), *fresh = toy_net(1, 6, 3, 2); /* fresh: ft's initial weights */
    for (size_t i = 0; i < N_ENC; i++) assert_param_equal(ft, pre, enc_keys[i], false);
    ax_transfer_report rep = {0};
    OK(ax_transfer_pretrained(ft, path, &toy_plan, 1, &rep));
    for (size_t i = 0; i < N_ENC; i++) assert_param_equal(ft, pre, enc_keys[i], true);
    for (size_t i = 0; i < 4; i++) assert_param_equal(ft, fresh, dec_keys[i], true);
    assert_int_equal(rep.n_copied, N_ENC);
    for (size_t i = 0; i < N_ENC; i++) assert_string_equal(rep.copied[i], enc_keys[i]);
    assert_int_equal(rep.n_adapted, 0);
    assert_int_equal(rep.n_skipped, 4);
    ax_transfer_report_clear(&rep);
    /* the net's parameters are still the same tensor objects (in place) */
    ax_named_tensors before = {0};
    OK(ax_module_parameters(ft, &before));
    OK(ax_transfer_pretrained(ft, path, NULL, 1, NULL));
    ax_named_tensors after = {0};
    OK(ax_module_parameters(ft, &after));
    for (size_t i = 0; i < before.n; i++) assert_ptr_equal(before.tensors[i], after.tensors[i]);
    ax_named_tensors_clear(&before);
    ax_named_tensors_clear(&after);
    ax_module_free(fresh);
    ax_module_free(ft);
    ax_module_free(pre);
}

static void test_transfer_multichannel(void **state) {
    (void)state;
    char path[128];
    path_in_tmp(path, sizeof path, "pre.safetensors");
    ax_module *pre = toy_net(1, 6, 1, 1);
    save_ckpt(pre, path, true);
    ax_module *ft = toy_net(3, 6, 2, 3);
    ax_transfer_report rep = {0};
    OK(ax_transfer_pretrained(ft, path, &toy_plan, 3, &rep));
    assert_int_equal(rep.n_adapted, 2); /* one tensor, two names */
    assert_string_equal(rep.adapted[0], "encoder.stem.convs.0.conv.weight");
    assert_string_equal(rep.adapted[1], "encoder.stem.convs.0.all_modules.0.weight");
    ax_tensor *w = ax_module_get_parameter(ft, "encoder.stem.convs.0.conv.weight");
    ax_tensor *w1 = ax_module_get_parameter(pre, "encoder.stem.convs.0.conv.weight");
    assert_int_equal(w->shape[1], 3);
    for (int64_t o = 0; o < 4; o++)
        for (int64_t c = 0; c < 3; c++)
            for (int64_t k = 0; k < 27; k++) {
                double got = ax_tensor_get(w, (o * 3 + c) * 27 + k), want = ax_tensor_get(w1, o * 27 + k) / 3.0;
                if (fabs(got - want) > 1e-7) fail_msg("stem[%lld, %lld, %lld]: %g, want %g", (long long)o,
                                                      (long long)c, (long long)k, got, want);
            }
    assert_param_equal(ft, pre, "encoder.stem.convs.0.conv.bias", true);
    assert_param_equal(ft, pre, "encoder.stages.1.0.weight", true);
    ax_transfer_report_clear(&rep);
    /* in_channels must match the network */
    assert_int_equal(ax_transfer_pretrained(ft, path, &toy_plan, 2, NULL), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "not 2 input channels"));
    ax_module_free(ft);
    ax_module_free(pre);
}

static void test_transfer_errors(void **state) {
    (void)state;
    char path[128], noplan[128];
    path_in_tmp(path, sizeof path, "pre.safetensors");
    path_in_tmp(noplan, sizeof noplan, "noplan.safetensors");
    ax_module *pre = toy_net(1, 6, 1, 1);
    save_ckpt(pre, path, true);
    save_ckpt(pre, noplan, false);
    ax_module *ft = toy_net(1, 6, 2, 4), *fresh = toy_net(1, 6, 2, 4);
    assert_int_equal(ax_transfer_pretrained(ft, noplan, &toy_plan, 1, NULL), AX_ERR_FORMAT);
    assert_non_null(strstr(ax_error_message(), "no adaptation plan"));
    assert_non_null(strstr(ax_error_message(), noplan));
    /* another encoder width: named key and both shapes; the net is untouched */
    ax_module *wide = toy_net(1, 5, 2, 4), *wide0 = toy_net(1, 5, 2, 4);
    assert_int_equal(ax_transfer_pretrained(wide, path, &toy_plan, 1, NULL), AX_ERR_INVALID);
    const char *msg = ax_error_message();
    assert_non_null(strstr(msg, "encoder.stages.0.0.weight: checkpoint has [6, 4, 3, 3, 3], network has [5, 4, 3, "
                                "3, 3]"));
    for (size_t i = 0; i < N_ENC; i++) assert_param_equal(wide, wide0, enc_keys[i], true);
    /* a plan whose encoder lies elsewhere in the network: missing keys named */
    ax_arch_plan other = toy_plan;
    other.encoder = "decoder";
    assert_int_equal(ax_transfer_pretrained(ft, path, &other, 1, NULL), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "has no 'decoder.0.0.weight' in the network"));
    for (size_t i = 0; i < 4; i++) assert_param_equal(ft, fresh, dec_keys[i], true);
    char missing[128];
    path_in_tmp(missing, sizeof missing, "missing.safetensors");
    assert_int_equal(ax_transfer_pretrained(ft, missing, &toy_plan, 1, NULL), AX_ERR_NOT_FOUND);
    ax_module_free(wide);
    ax_module_free(wide0);
    ax_module_free(ft);
    ax_module_free(fresh);
    ax_module_free(pre);
}

/* ---- the plugin -------------------------------------------------------------------------- */

static ax_registry *reg;
static const ax_registry_item *seg;

static int plugin_setup(void **state) {
    if (group_setup(state) != 0) return -1;
    if (ax_registry_new(&reg) != AX_OK) return -1;
    ax_registry_scan_build_tree(reg, AX_TEST_BUILD_PLUGINS);
    seg = ax_registry_find(reg, AX_PLUGIN_TASK, "segmentation");
    if (!seg) fprintf(stderr, "no task 'segmentation' under %s\n", AX_TEST_BUILD_PLUGINS);
    return seg ? 0 : -1;
}

static int plugin_teardown(void **state) {
    ax_registry_free(reg);
    return group_teardown(state);
}

static ax_instance *seg_new(const char *const *kv, int n) {
    ax_params *params;
    ax_instance *inst;
    OK(ax_params_new(&params, seg->plugin->params, "task 'segmentation'"));
    for (int i = 0; i < n; i++) OK(ax_params_set_text(params, kv[2 * i], kv[2 * i + 1]));
    OK(ax_instance_new(&inst, seg, params));
    return inst;
}

static void test_plugin_predict_and_loss(void **state) {
    (void)state;
    const char *kv[] = {"classes", "3", "patch", "8,8,8", "mirror", "true"};
    ax_instance *inst = seg_new(kv, 3);
    const ax_task_ops *ops = inst->ops;
    assert_non_null(ops->predict);
    int64_t k;
    OK(ops->out_channels(inst->self, &k));
    assert_int_equal(k, 3);
    ax_module *net = fixture_net();
    ax_tensor *x = fixture("sw.x"), *want = fixture("sw.mirror"), *y, *labels;
    OK(ops->predict(inst->self, net, x, &y));
    assert_true(ax_allclose("plugin predict", y, want, 2e-5, 1e-4));
    OK(ops->decode(inst->self, y, &labels));
    assert_int_equal(labels->ndim, 3);
    assert_int_equal(labels->shape[0], 19);
    ax_tensor_free(labels);
    ax_tensor_free(y);
    ax_tensor_free(want);
    /* patch, step and mirror_axes reach the window: make_seg.py's "sw.step" */
    const char *kv3[] = {"classes", "3", "patch", "6,5,7", "step", "0.33", "mirror_axes", "0,2"};
    ax_instance *inst3 = seg_new(kv3, 4);
    const ax_task_ops *ops3 = inst3->ops;
    want = fixture("sw.step");
    OK(ops3->predict(inst3->self, net, x, &y));
    assert_true(ax_allclose("plugin predict, step 0.33, axes 0,2", y, want, 2e-5, 1e-4));
    ax_tensor_free(y);
    ax_tensor_free(want);
    ax_instance_free(inst3);
    ax_tensor_free(x);
    ax_module_free(net);
    /* loss: the fixture's deep-supervision case, nnU-Net weights */
    ax_tensor *outs[3], *loss, *target = fixture("loss.ds.target"), *lw = fixture("loss.ds.loss");
    for (int i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof key, "loss.ds.out%d", i);
        outs[i] = fixture(key);
    }
    OK(ops->loss(inst->self, outs, 3, target, &loss));
    assert_true(ax_allclose("plugin loss", loss, lw, 1e-6, 1e-5));
    ax_tensor_free(loss);
    /* a wrong class count is refused */
    ax_tensor *bad = ax_test_randn(5, (int64_t[]){2, 4, 6, 5, 7}, 3, 1, 0, false);
    assert_int_equal(ops->loss(inst->self, &bad, 1, target, &loss), AX_ERR_INVALID);
    ax_tensor_free(bad);
    for (int i = 0; i < 3; i++) ax_tensor_free(outs[i]);
    ax_tensor_free(target);
    ax_tensor_free(lw);
    ax_instance_free(inst);
    /* deep_supervision = highest: only the first output counts */
    const char *kv2[] = {"classes", "3", "deep_supervision", "highest"};
    inst = seg_new(kv2, 2);
    ops = inst->ops;
    target = fixture("loss.ds.target");
    for (int i = 0; i < 3; i++) {
        char key[32];
        snprintf(key, sizeof key, "loss.ds.out%d", i);
        outs[i] = fixture(key);
    }
    ax_tensor *l0;
    OK(ops->loss(inst->self, outs, 3, target, &loss));
    OK(ax_dice_ce_loss(&l0, outs[0], target, NULL));
    assert_true(ax_allclose("highest only", loss, l0, 0, 0));
    ax_tensor_free(l0);
    ax_tensor_free(loss);
    ax_instance_free(inst);
    /* explicit ds_weights, normalised: 2,1,0 is nnU-Net's for 3 outputs */
    const char *kv4[] = {"classes", "3", "ds_weights", "2,1,0"};
    inst = seg_new(kv4, 2);
    ops = inst->ops;
    lw = fixture("loss.ds.loss");
    OK(ops->loss(inst->self, outs, 3, target, &loss));
    assert_true(ax_allclose("ds_weights 2,1,0", loss, lw, 1e-6, 1e-5));
    ax_tensor_free(loss);
    ax_tensor_free(lw);
    assert_int_equal(ops->loss(inst->self, outs, 2, target, &loss), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "ds_weights has 3 values for 2 outputs"));
    for (int i = 0; i < 3; i++) ax_tensor_free(outs[i]);
    ax_tensor_free(target);
    ax_instance_free(inst);
}

static void test_plugin_evaluate(void **state) {
    (void)state;
    const char *kv[] = {"classes", "5"};
    ax_instance *inst = seg_new(kv, 1);
    const ax_task_ops *ops = inst->ops;
    ax_tensor *p = fixture("dice.pred"), *r = fixture("dice.ref"), *want = fixture("dice.dice");
    int n;
    const double sp[3] = {1, 1, 1};
    OK(ops->evaluate(inst->self, p, r, sp, NULL, 0, &n));
    assert_int_equal(n, 10); /* dice_1..4, dice_mean, hd95_1..4, hd95_mean */
    ax_task_metric m[10];
    assert_int_equal(ops->evaluate(inst->self, p, r, sp, m, 9, &n), AX_ERR_INVALID);
    OK(ops->evaluate(inst->self, p, r, sp, m, 10, &n));
    const char *names[] = {"dice_1", "dice_2", "dice_3", "dice_4", "dice_mean",
                           "hd95_1", "hd95_2", "hd95_3", "hd95_4", "hd95_mean"};
    for (int i = 0; i < 10; i++) assert_string_equal(m[i].name, names[i]);
    for (int c = 1; c <= 3; c++) assert_true(fabs(m[c - 1].value - ax_tensor_get(want, c)) < 1e-6);
    assert_true(isnan(m[3].value));
    assert_true(fabs(m[4].value - (m[0].value + m[1].value + m[2].value) / 3) < 1e-12);
    double h;
    OK(ax_seg_hd95(&h, p, r, 2, sp));
    assert_true(m[6].value == h);
    assert_true(fabs(m[7].value - sqrt(9 * 9 + 8 * 8 + 7 * 7)) < 1e-9); /* class 3: reference empty */
    assert_true(isnan(m[8].value));
    ax_tensor_free(p);
    ax_tensor_free(r);
    ax_tensor_free(want);
    ax_instance_free(inst);
}

int main(void) {
    const struct CMUnitTest fixtures[] = {
        cmocka_unit_test(test_window_starts),
        cmocka_unit_test(test_gaussian),
        cmocka_unit_test(test_window_one_window_equals_forward),
        cmocka_unit_test(test_window_vs_torch),
        cmocka_unit_test(test_argmax),
        cmocka_unit_test(test_loss_vs_torch),
        cmocka_unit_test(test_deep_supervision_targets),
        cmocka_unit_test(test_loss_gradcheck),
        cmocka_unit_test(test_dice),
        cmocka_unit_test(test_edt_vs_scipy),
        cmocka_unit_test(test_hd95_vs_scipy),
        cmocka_unit_test(test_hd95_analytic),
    };
    const struct CMUnitTest transfer[] = {
        cmocka_unit_test(test_plan_json),
        cmocka_unit_test(test_transfer_encoder_only),
        cmocka_unit_test(test_transfer_multichannel),
        cmocka_unit_test(test_transfer_errors),
    };
    const struct CMUnitTest plugin[] = {
        cmocka_unit_test(test_plugin_predict_and_loss),
        cmocka_unit_test(test_plugin_evaluate),
    };
    int failed = cmocka_run_group_tests_name("segment", fixtures, group_setup, group_teardown);
    failed += cmocka_run_group_tests_name("transfer", transfer, tmp_setup, tmp_teardown);
    failed += cmocka_run_group_tests_name("segmentation plugin", plugin, plugin_setup, plugin_teardown);
    return failed;
}
