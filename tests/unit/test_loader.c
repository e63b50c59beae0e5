/* The threaded batch loader (axon/loader.h) on small case files written with
 * ax_case_write: determinism across thread counts and after seek, patch
 * placement and zero fill, foreground oversampling, enlargement for
 * spatial augmentations, error propagation and shutdown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "axon/axon.h"
#include "axon/cache.h"
#include "axon/loader.h"
#include "registry.h"

static char tmpdir[256];
static char *paths[4];

/* The voxel value encodes its position, so a patch tells where it was cut:
 * v = 1 + c * 1e6 + d * 1e4 + h * 100 + w (exact in float for < 2^24). */
static float ax_code(int c, int d, int h, int w) { return 1.0f + (float)(c * 1000000 + d * 10000 + h * 100 + w); }

/* A case of `shape` with 2 channels, a label that is 1 on a 3^3 cube at
 * `fg_at` (or none when fg_at is NULL), and the cube listed as foreground. */
static void ax_write_case(const char *path, const int32_t shape[3], const int32_t *fg_at) {
    size_t v = (size_t)shape[0] * shape[1] * shape[2];
    float *img = malloc(2 * v * sizeof *img);
    uint8_t *lbl = calloc(v, 1);
    int32_t fg[27 * 3];
    int n_fg = 0;
    for (int c = 0; c < 2; c++)
        for (int d = 0; d < shape[0]; d++)
            for (int h = 0; h < shape[1]; h++)
                for (int w = 0; w < shape[2]; w++)
                    img[(((size_t)c * shape[0] + d) * shape[1] + h) * shape[2] + w] = ax_code(c, d, h, w);
    if (fg_at)
        for (int d = 0; d < 3; d++)
            for (int h = 0; h < 3; h++)
                for (int w = 0; w < 3; w++) {
                    int32_t p[3] = {fg_at[0] + d, fg_at[1] + h, fg_at[2] + w};
                    lbl[((size_t)p[0] * shape[1] + p[1]) * shape[2] + p[2]] = 1;
                    memcpy(fg + 3 * n_fg++, p, sizeof p);
                }
    ax_case_desc desc = {.image = img,
                         .label = lbl,
                         .fg = fg_at ? fg : NULL,
                         .n_fg = n_fg,
                         .channels = 2,
                         .shape = {shape[0], shape[1], shape[2]},
                         .spacing = {1, 1, 1},
                         .json = "{\"name\": \"test\"}"};
    assert_int_equal(ax_case_write(path, &desc), AX_OK);
    free(img);
    free(lbl);
}

static int ax_setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/axon_test_loader_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    static const int32_t shapes[4][3] = {{20, 24, 18}, {16, 16, 16}, {40, 40, 40}, {6, 5, 7}};
    static const int32_t fg_at[4][3] = {{2, 3, 4}, {10, 10, 10}, {36, 1, 36}, {0, 0, 0}};
    for (int i = 0; i < 4; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/case%d.axc", tmpdir, i);
        paths[i] = strdup(p);
        ax_write_case(p, shapes[i], i == 3 ? NULL : fg_at[i]);
    }
    return 0;
}

static int ax_teardown(void **state) {
    (void)state;
    for (int i = 0; i < 4; i++) {
        unlink(paths[i]);
        free(paths[i]);
    }
    char p[512];
    snprintf(p, sizeof p, "%s/bad.axc", tmpdir);
    unlink(p);
    rmdir(tmpdir);
    return 0;
}

/* ---- test augmentations --------------------------------------------------- */

/* Adds a per-sample random offset to every voxel and shifts the centre crop
 * at random: results depend on every word the loader hands it. */
typedef struct ax_test_aug {
    int32_t grow;            /* extent = patch + grow */
    int fail;                /* return an error */
    int slow;                /* spin a while (shutdown while busy) */
    atomic_int *seen_extent; /* [3] last extent seen (test_enlarged_cut) */
} ax_test_aug;

static ax_status ax_test_extent(const void *self, const int32_t patch[3], int32_t extent[3]) {
    const ax_test_aug *a = self;
    for (int i = 0; i < 3; i++) extent[i] = patch[i] + a->grow;
    return AX_OK;
}

static ax_status ax_test_apply(const void *self, ax_sample *s, ax_rng *rng) {
    const ax_test_aug *a = self;
    if (a->fail) return AX_ERROR(AX_ERR_INVALID, "refusing sample of %d channels", s->channels);
    if (a->slow) {
        volatile double x = 0;
        for (int i = 0; i < 2000000; i++) x += i * 1e-9;
    }
    if (a->seen_extent)
        for (int i = 0; i < 3; i++) atomic_store(&a->seen_extent[i], s->shape[i]);
    float off = (float)ax_rng_below(rng, 1000) * 1e-3f;
    size_t n = ax_sample_voxels(s) * (size_t)s->channels;
    for (size_t i = 0; i < n; i++)
        if (s->image[i] != 0) s->image[i] += off;
    return AX_OK;
}

static const ax_aug_ops ax_test_ops = {.apply = ax_test_apply, .extent = ax_test_extent};

static ax_loader_opts ax_opts(int n_paths) {
    ax_loader_opts o = ax_loader_opts_default();
    o.paths = (const char *const *)paths;
    o.n_paths = (size_t)n_paths;
    o.patch[0] = 8;
    o.patch[1] = 12;
    o.patch[2] = 10;
    o.batch = 3;
    o.seed = 99;
    o.labels = true;
    return o;
}

static int ax_same_batch(const ax_batch *a, const ax_batch *b) {
    return a->step == b->step && ax_tensor_nbytes(a->image) == ax_tensor_nbytes(b->image) &&
           memcmp(ax_tensor_data(a->image), ax_tensor_data(b->image), ax_tensor_nbytes(a->image)) == 0 &&
           memcmp(ax_tensor_data(a->label), ax_tensor_data(b->label), ax_tensor_nbytes(a->label)) == 0;
}

/* ---- tests ------------------------------------------------------------------- */

static void test_shapes_and_types(void **state) {
    (void)state;
    ax_loader_opts o = ax_opts(3);
    o.threads = 2;
    ax_loader *ld;
    assert_int_equal(ax_loader_new(&ld, &o), AX_OK);
    ax_batch b;
    assert_int_equal(ax_loader_next(ld, &b), AX_OK);
    assert_int_equal(b.step, 0);
    assert_int_equal(b.image->dtype, AX_DTYPE_F32);
    assert_int_equal(b.image->ndim, 5);
    int64_t want[5] = {3, 2, 8, 12, 10};
    for (int i = 0; i < 5; i++) assert_int_equal(b.image->shape[i], want[i]);
    assert_int_equal(b.label->dtype, AX_DTYPE_U8);
    want[1] = 1;
    for (int i = 0; i < 5; i++) assert_int_equal(b.label->shape[i], want[i]);
    ax_batch_clear(&b);
    assert_int_equal(ax_loader_next(ld, &b), AX_OK);
    assert_int_equal(b.step, 1);
    ax_batch_clear(&b);
    ax_loader_free(ld);
}

/* With no augmentation every sample is a window of one case: each voxel is
 * either 0 (outside the volume) or the code of (c, d0 + d, h0 + h, w0 + w)
 * for one offset (d0, h0, w0); the label agrees with the case's cube. */
static void test_patches_are_windows(void **state) {
    (void)state;
    ax_loader_opts o = ax_opts(4);
    o.threads = 3;
    o.oversample_fg = 0.5;
    ax_loader *ld;
    assert_int_equal(ax_loader_new(&ld, &o), AX_OK);
    int zeros_seen = 0;
    for (int step = 0; step < 8; step++) {
        ax_batch b;
        assert_int_equal(ax_loader_next(ld, &b), AX_OK);
        const float *x = ax_tensor_data(b.image);
        for (int n = 0; n < 3; n++) {
            const float *s = x + (size_t)n * 2 * 8 * 12 * 10;
            int have = 0, d0 = 0, h0 = 0, w0 = 0;
            for (int c = 0; c < 2; c++)
                for (int d = 0; d < 8; d++)
                    for (int h = 0; h < 12; h++)
                        for (int w = 0; w < 10; w++) {
                            float v = s[((c * 8 + d) * 12 + h) * 10 + w];
                            if (v == 0) {
                                zeros_seen = 1;
                                continue;
                            }
                            int code = (int)(v - 1.0f);
                            assert_int_equal(code / 1000000, c);
                            int cd = code / 10000 % 100, ch = code / 100 % 100, cw = code % 100;
                            if (!have) d0 = cd - d, h0 = ch - h, w0 = cw - w, have = 1;
                            assert_int_equal(cd - d, d0);
                            assert_int_equal(ch - h, h0);
                            assert_int_equal(cw - w, w0);
                        }
            assert_true(have);
        }
        ax_batch_clear(&b);
    }
    /* case 3 (6x5x7) is smaller than the patch: zero fill must show up */
    assert_true(zeros_seen);
    ax_loader_free(ld);
}

static void ax_run_steps(int threads, int64_t seek, int n, ax_batch *out, const ax_loader_aug *augs, size_t n_augs) {
    ax_loader_opts o = ax_opts(4);
    o.threads = threads;
    o.prefetch = threads == 1 ? 1 : 5;
    o.augs = augs;
    o.n_augs = n_augs;
    ax_loader *ld;
    assert_int_equal(ax_loader_new(&ld, &o), AX_OK);
    if (seek >= 0) assert_int_equal(ax_loader_seek(ld, seek), AX_OK);
    for (int i = 0; i < n; i++) assert_int_equal(ax_loader_next(ld, &out[i]), AX_OK);
    ax_loader_free(ld); /* the batches outlive the loader */
}

/* 1 thread and 4 threads give the same bytes, with the real mirror plugin
 * and an enlarging random augmentation in the chain; so does a loader that
 * seeks to step 3 first. */
static void test_determinism_threads_and_seek(void **state) {
    (void)state;
    ax_registry *reg;
    assert_int_equal(ax_registry_new(&reg), AX_OK);
    ax_registry_scan_build_tree(reg, AX_TEST_BUILD_PLUGINS);
    const ax_registry_item *mirror = ax_registry_find(reg, AX_PLUGIN_AUG, "mirror");
    assert_non_null(mirror);
    ax_params *params;
    assert_int_equal(ax_params_new(&params, mirror->plugin->params, "aug 'mirror'"), AX_OK);
    ax_instance *inst;
    assert_int_equal(ax_instance_new(&inst, mirror, params), AX_OK);
    ax_test_aug shift = {.grow = 4};
    ax_loader_aug augs[2] = {{&ax_test_ops, &shift, "shift"}, {inst->ops, inst->self, "mirror"}};

    enum { N = 6 };
    ax_batch one[N], four[N], sought[N - 3];
    ax_run_steps(1, -1, N, one, augs, 2);
    ax_run_steps(4, -1, N, four, augs, 2);
    ax_run_steps(2, 3, N - 3, sought, augs, 2);
    for (int i = 0; i < N; i++) {
        assert_int_equal(one[i].step, i);
        assert_true(ax_same_batch(&one[i], &four[i]));
    }
    for (int i = 0; i < N - 3; i++) assert_true(ax_same_batch(&one[i + 3], &sought[i]));
    /* different steps differ (the streams are really per step) */
    assert_false(ax_same_batch(&one[0], &one[1]));
    for (int i = 0; i < N; i++) ax_batch_clear(&one[i]), ax_batch_clear(&four[i]);
    for (int i = 0; i < N - 3; i++) ax_batch_clear(&sought[i]);
    ax_instance_free(inst);
    ax_registry_free(reg);
}

/* Seeking back on a running loader replays the stream. */
static void test_seek_back(void **state) {
    (void)state;
    ax_loader_opts o = ax_opts(3);
    o.threads = 3;
    ax_loader *ld;
    assert_int_equal(ax_loader_new(&ld, &o), AX_OK);
    ax_batch a[4], b;
    for (int i = 0; i < 4; i++) assert_int_equal(ax_loader_next(ld, &a[i]), AX_OK);
    assert_int_equal(ax_loader_seek(ld, 1), AX_OK);
    for (int i = 1; i < 4; i++) {
        assert_int_equal(ax_loader_next(ld, &b), AX_OK);
        assert_true(ax_same_batch(&a[i], &b));
        ax_batch_clear(&b);
    }
    for (int i = 0; i < 4; i++) ax_batch_clear(&a[i]);
    assert_int_equal(ax_loader_seek(ld, -1), AX_ERR_INVALID);
    ax_loader_free(ld);
}

/* oversample_fg = 1 puts foreground in every patch, even for a 3^3 cube in
 * the corner of a 40^3 case; without oversampling most patches miss it. */
static void test_foreground_oversampling(void **state) {
    (void)state;
    char *only[1] = {paths[2]};
    for (int pass = 0; pass < 2; pass++) {
        ax_loader_opts o = ax_opts(1);
        o.paths = (const char *const *)only;
        o.oversample_fg = pass == 0 ? 1.0 : 0.0;
        o.threads = 2;
        ax_loader *ld;
        assert_int_equal(ax_loader_new(&ld, &o), AX_OK);
        int with_fg = 0, total = 0;
        for (int step = 0; step < 10; step++) {
            ax_batch b;
            assert_int_equal(ax_loader_next(ld, &b), AX_OK);
            const uint8_t *l = ax_tensor_data(b.label);
            for (int n = 0; n < 3; n++, total++) {
                int any = 0;
                for (int i = 0; i < 8 * 12 * 10; i++) any |= l[n * 8 * 12 * 10 + i];
                with_fg += any;
            }
            ax_batch_clear(&b);
        }
        if (pass == 0)
            assert_int_equal(with_fg, total);
        else
            assert_true(with_fg < total / 2);
        ax_loader_free(ld);
    }
}

/* An AUG with an extent sees the enlarged box and target = patch; the
 * loader crops the centre back. With a constant offset and no shift the
 * centre of the enlarged box is the same window the plain loader cuts. */
static void test_enlarged_cut(void **state) {
    (void)state;
    atomic_int seen[3] = {0, 0, 0};
    ax_test_aug grow = {.grow = 6, .seen_extent = seen};
    ax_loader_aug aug = {&ax_test_ops, &grow, "grow"};
    ax_batch plain, enlarged;
    for (int pass = 0; pass < 2; pass++) {
        ax_loader_opts o = ax_opts(2);
        o.threads = 1;
        o.augs = pass ? &aug : NULL;
        o.n_augs = pass ? 1 : 0;
        ax_loader *ld;
        assert_int_equal(ax_loader_new(&ld, &o), AX_OK);
        assert_int_equal(ax_loader_next(ld, pass ? &enlarged : &plain), AX_OK);
        ax_loader_free(ld);
    }
    assert_int_equal(atomic_load(&seen[0]), 8 + 6);
    assert_int_equal(atomic_load(&seen[1]), 12 + 6);
    assert_int_equal(atomic_load(&seen[2]), 10 + 6);
    /* same window: values differ only by the aug's offset in [0, 1) */
    const float *p = ax_tensor_data(plain.image), *e = ax_tensor_data(enlarged.image);
    for (int64_t i = 0; i < ax_tensor_numel(plain.image); i++) {
        if (p[i] == 0) {
            assert_true(e[i] == 0);
            continue;
        }
        assert_true(e[i] >= p[i] && e[i] < p[i] + 1.0f);
    }
    assert_memory_equal(ax_tensor_data(plain.label), ax_tensor_data(enlarged.label), ax_tensor_nbytes(plain.label));
    ax_batch_clear(&plain);
    ax_batch_clear(&enlarged);
}

/* A failing AUG's error reaches ax_loader_next with its name and the case;
 * it stays reported until a seek. */
static void test_aug_error_propagates(void **state) {
    (void)state;
    ax_test_aug bad = {.fail = 1};
    ax_loader_aug aug = {&ax_test_ops, &bad, "failer"};
    ax_loader_opts o = ax_opts(2);
    o.threads = 3;
    o.augs = &aug;
    o.n_augs = 1;
    ax_loader *ld;
    assert_int_equal(ax_loader_new(&ld, &o), AX_OK);
    ax_batch b;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(ax_loader_next(ld, &b), AX_ERR_INVALID);
        assert_null(b.image);
        assert_non_null(strstr(ax_error_message(), "aug 'failer'"));
        assert_non_null(strstr(ax_error_message(), "refusing sample"));
        assert_non_null(strstr(ax_error_message(), "step 0, sample 0"));
        assert_non_null(strstr(ax_error_message(), ".axc"));
    }
    ax_loader_free(ld);
}

/* Freeing while workers are mid-sample and the queue is full joins cleanly
 * (ASan/LSan check the rest); so does freeing before any next(). */
static void test_shutdown_while_busy(void **state) {
    (void)state;
    ax_test_aug slow = {.slow = 1, .grow = 2};
    ax_loader_aug aug = {&ax_test_ops, &slow, "slow"};
    for (int pass = 0; pass < 2; pass++) {
        ax_loader_opts o = ax_opts(4);
        o.threads = 4;
        o.prefetch = 3;
        o.augs = &aug;
        o.n_augs = 1;
        ax_loader *ld;
        assert_int_equal(ax_loader_new(&ld, &o), AX_OK);
        ax_batch b = {0};
        if (pass == 0) assert_int_equal(ax_loader_next(ld, &b), AX_OK);
        ax_loader_free(ld);
        ax_batch_clear(&b);
    }
}

static void test_bad_inputs(void **state) {
    (void)state;
    char bad[512];
    snprintf(bad, sizeof bad, "%s/bad.axc", tmpdir);
    FILE *f = fopen(bad, "wb");
    assert_non_null(f);
    fputs("this is not a case file", f);
    fclose(f);
    char *list[2] = {paths[0], bad};
    ax_loader_opts o = ax_opts(2);
    o.paths = (const char *const *)list;
    ax_loader *ld = (ax_loader *)&o; /* must be reset to NULL */
    assert_int_not_equal(ax_loader_new(&ld, &o), AX_OK);
    assert_null(ld);
    assert_non_null(strstr(ax_error_message(), "bad.axc"));

    o = ax_opts(1);
    o.patch[1] = 0;
    assert_int_equal(ax_loader_new(&ld, &o), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "patch"));
    o = ax_opts(1);
    o.oversample_fg = 1.5;
    assert_int_equal(ax_loader_new(&ld, &o), AX_ERR_INVALID);
    o = ax_opts(0);
    assert_int_equal(ax_loader_new(&ld, &o), AX_ERR_INVALID);
    /* case 3 has no label: asking for labels names it */
    char *nolabel[1] = {bad};
    ax_case_desc desc = {.image = (const float[8]){0},
                         .channels = 1,
                         .shape = {2, 2, 2},
                         .spacing = {1, 1, 1},
                         .json = "{}"};
    assert_int_equal(ax_case_write(bad, &desc), AX_OK);
    o = ax_opts(1);
    o.paths = (const char *const *)nolabel;
    assert_int_equal(ax_loader_new(&ld, &o), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "no label"));
    /* mixed channel counts cannot share a batch */
    char *mixed[2] = {paths[0], bad};
    o.paths = (const char *const *)mixed;
    o.n_paths = 2;
    o.labels = false;
    assert_int_equal(ax_loader_new(&ld, &o), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "channels"));
    ax_loader_free(NULL);
    ax_batch_clear(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes_and_types),
        cmocka_unit_test(test_patches_are_windows),
        cmocka_unit_test(test_determinism_threads_and_seek),
        cmocka_unit_test(test_seek_back),
        cmocka_unit_test(test_foreground_oversampling),
        cmocka_unit_test(test_enlarged_cut),
        cmocka_unit_test(test_aug_error_propagates),
        cmocka_unit_test(test_shutdown_while_busy),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, ax_setup, ax_teardown);
}
