/* AUG plugin `mirror`, loaded through the registry from the build tree as
 * the host would load it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

enum { C = 2, D = 3, H = 4, W = 5, V = D * H * W };

static ax_registry *reg;
static const ax_registry_item *mirror;

static int ax_setup(void **state) {
    (void)state;
    if (ax_registry_new(&reg) != AX_OK) return -1;
    ax_registry_scan_build_tree(reg, AX_TEST_BUILD_PLUGINS);
    mirror = ax_registry_find(reg, AX_PLUGIN_AUG, "mirror");
    return mirror ? 0 : -1;
}

static int ax_teardown(void **state) {
    (void)state;
    ax_registry_free(reg);
    return 0;
}

static ax_instance *ax_mirror_new(const char *axes, double p) {
    ax_params *params;
    ax_instance *inst;
    assert_int_equal(ax_params_new(&params, mirror->plugin->params, "aug 'mirror'"), AX_OK);
    assert_int_equal(ax_params_set_text(params, "axes", axes), AX_OK);
    assert_int_equal(ax_params_set_float(params, "p", p), AX_OK);
    assert_int_equal(ax_instance_new(&inst, mirror, params), AX_OK);
    return inst;
}

static ax_status ax_apply(ax_instance *inst, ax_sample *s, ax_rng *r) {
    const ax_aug_ops *ops = inst->ops;
    return ops->apply(inst->self, s, r);
}

static void ax_fill(float *img, uint8_t *lab, uint8_t *mask) {
    for (int i = 0; i < C * V; i++) img[i] = (float)i;
    for (int i = 0; i < V; i++) lab[i] = (uint8_t)(i % 7), mask[i] = (uint8_t)(i % 2);
}

/* With p = 1 every enabled axis flips: compare with index arithmetic. */
static void test_flip_all_axes(void **state) {
    (void)state;
    ax_instance *inst = ax_mirror_new("1,0,1", 1.0);
    float img[C * V];
    uint8_t lab[V], mask[V];
    ax_fill(img, lab, mask);
    ax_sample s = {.image = img, .label = lab, .mask = mask, .channels = C, .shape = {D, H, W}};
    ax_rng r;
    ax_rng_init(&r, 1, 2);
    assert_int_equal(ax_apply(inst, &s, &r), AX_OK);
    for (int c = 0; c < C; c++)
        for (int z = 0; z < D; z++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    int src = ((D - 1 - z) * H + y) * W + (W - 1 - x);
                    int dst = (z * H + y) * W + x;
                    assert_float_equal(img[c * V + dst], (float)(c * V + src), 0);
                    if (c == 0) {
                        assert_int_equal(lab[dst], src % 7);
                        assert_int_equal(mask[dst], src % 2);
                    }
                }
    assert_int_equal(r.counter, 3); /* one draw per axis */
    ax_instance_free(inst);
}

/* p = 0 leaves the sample alone but still consumes the same draws. */
static void test_never_flip(void **state) {
    (void)state;
    ax_instance *inst = ax_mirror_new("1,1,1", 0.0);
    float img[C * V], ref[C * V];
    uint8_t lab[V], mask[V];
    ax_fill(img, lab, mask);
    memcpy(ref, img, sizeof img);
    ax_sample s = {.image = img, .label = lab, .mask = mask, .channels = C, .shape = {D, H, W}};
    ax_rng r;
    ax_rng_init(&r, 1, 2);
    assert_int_equal(ax_apply(inst, &s, &r), AX_OK);
    assert_memory_equal(img, ref, sizeof img);
    assert_int_equal(r.counter, 3);
    ax_instance_free(inst);
}

/* Random flips are decided by the rng alone: replay the draws. */
static void test_random_flips_follow_rng(void **state) {
    (void)state;
    ax_instance *inst = ax_mirror_new("1,1,1", 0.5);
    int seen[3] = {0, 0, 0};
    for (uint64_t stream = 0; stream < 64; stream++) {
        float img[C * V];
        uint8_t lab[V], mask[V];
        ax_fill(img, lab, mask);
        ax_sample s = {.image = img, .label = lab, .mask = mask, .channels = C, .shape = {D, H, W}};
        ax_rng r, replay;
        ax_rng_init(&r, 99, stream);
        replay = r;
        int flip[3];
        for (int a = 0; a < 3; a++) seen[a] += flip[a] = ax_rng_bernoulli(&replay, 0.5f);
        assert_int_equal(ax_apply(inst, &s, &r), AX_OK);
        int z = 0, y = 1, x = 2; /* check one voxel */
        int sz = flip[0] ? D - 1 - z : z, sy = flip[1] ? H - 1 - y : y, sx = flip[2] ? W - 1 - x : x;
        assert_float_equal(img[(z * H + y) * W + x], (float)((sz * H + sy) * W + sx), 0);
    }
    for (int a = 0; a < 3; a++) assert_true(seen[a] > 10 && seen[a] < 54);
    ax_instance_free(inst);
}

static void test_rejects_empty_sample(void **state) {
    (void)state;
    ax_instance *inst = ax_mirror_new("1,1,1", 0.5);
    ax_sample s = {.image = NULL, .channels = 1, .shape = {1, 1, 1}};
    ax_rng r;
    ax_rng_init(&r, 0, 0);
    assert_int_equal(ax_apply(inst, &s, &r), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "mirror: empty sample"));
    ax_instance_free(inst);
}

static void test_params_validated(void **state) {
    (void)state;
    ax_params *p;
    assert_int_equal(ax_params_new(&p, mirror->plugin->params, "aug 'mirror'"), AX_OK);
    assert_int_not_equal(ax_params_set_text(p, "axes", "1,1"), AX_OK);
    assert_int_not_equal(ax_params_set_text(p, "axes", "1,2,1"), AX_OK);
    assert_int_not_equal(ax_params_set_float(p, "p", 1.5), AX_OK);
    ax_params_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flip_all_axes),
        cmocka_unit_test(test_never_flip),
        cmocka_unit_test(test_random_flips_follow_rng),
        cmocka_unit_test(test_rejects_empty_sample),
        cmocka_unit_test(test_params_validated),
    };
    return cmocka_run_group_tests(tests, ax_setup, ax_teardown);
}
