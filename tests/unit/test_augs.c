/* The nnU-Net-style AUG plugins (spatial, gamma, brightness, contrast,
 * noise, blur, lowres), loaded through the registry from the build tree as
 * the host loads them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

static ax_registry *reg;

static int ax_setup(void **state) {
    (void)state;
    if (ax_registry_new(&reg) != AX_OK) return -1;
    ax_registry_scan_build_tree(reg, AX_TEST_BUILD_PLUGINS);
    const char *names[] = {"spatial", "gamma", "brightness", "contrast", "noise", "blur", "lowres"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!ax_registry_find(reg, AX_PLUGIN_AUG, names[i])) {
            fprintf(stderr, "aug '%s' not found in the build tree\n", names[i]);
            return -1;
        }
    return 0;
}

static int ax_teardown(void **state) {
    (void)state;
    ax_registry_free(reg);
    return 0;
}

/* New instance of aug `name` with "key=value" settings separated by spaces;
 * NULL (and the error in ax_error_message) when a setting or create fails. */
static ax_instance *ax_aug(const char *name, const char *settings) {
    const ax_registry_item *it = ax_registry_find(reg, AX_PLUGIN_AUG, name);
    assert_non_null(it);
    ax_params *p;
    assert_int_equal(ax_params_new(&p, it->plugin->params, name), AX_OK);
    char buf[512];
    snprintf(buf, sizeof buf, "%s", settings);
    for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        assert_non_null(eq);
        *eq = '\0';
        if (ax_params_set_text(p, tok, eq + 1) != AX_OK) {
            ax_params_free(p);
            return NULL;
        }
    }
    ax_instance *inst;
    if (ax_instance_new(&inst, it, p) != AX_OK) return NULL;
    return inst;
}

static ax_status ax_apply(ax_instance *inst, ax_sample *s, uint64_t stream) {
    const ax_aug_ops *ops = inst->ops;
    ax_rng r;
    ax_rng_init(&r, 42, stream);
    return ops->apply(inst->self, s, &r);
}

/* A test volume: a bright cube of edge `edge` centred in an n^3 image on a
 * smooth background, label 1 and mask 1 on the cube. */
typedef struct ax_vol {
    int32_t n, channels;
    float *img;
    uint8_t *lab, *mask;
} ax_vol;

static ax_vol ax_vol_cube(int32_t n, int32_t channels, int32_t edge) {
    ax_vol v = {.n = n, .channels = channels};
    size_t vox = (size_t)n * n * n;
    v.img = malloc((size_t)channels * vox * sizeof *v.img);
    v.lab = malloc(vox);
    v.mask = malloc(vox);
    assert_true(v.img && v.lab && v.mask);
    double lo = 0.5 * (n - edge), hi = lo + edge; /* cube covers voxel centres in [lo, hi) */
    for (int32_t z = 0; z < n; z++)
        for (int32_t y = 0; y < n; y++)
            for (int32_t x = 0; x < n; x++) {
                size_t i = ((size_t)z * n + y) * n + x;
                int in = z >= lo && z < hi && y >= lo && y < hi && x >= lo && x < hi;
                v.lab[i] = v.mask[i] = (uint8_t)in;
                for (int32_t c = 0; c < channels; c++)
                    v.img[(size_t)c * vox + i] = in ? 1.0f + 0.1f * (float)c : 0.01f * (float)((x + 2 * y + 3 * z) % 7);
            }
    return v;
}

static ax_vol ax_vol_noise(int32_t n, int32_t channels, uint64_t stream) {
    ax_vol v = {.n = n, .channels = channels};
    size_t vox = (size_t)n * n * n;
    v.img = malloc((size_t)channels * vox * sizeof *v.img);
    assert_non_null(v.img);
    ax_rng_fill_normal(5, stream, 0, (size_t)channels * vox, v.img);
    return v;
}

static ax_vol ax_vol_copy(const ax_vol *a) {
    ax_vol v = *a;
    size_t vox = (size_t)a->n * a->n * a->n;
    v.img = malloc((size_t)a->channels * vox * sizeof *v.img);
    memcpy(v.img, a->img, (size_t)a->channels * vox * sizeof *v.img);
    v.lab = a->lab ? malloc(vox) : NULL;
    v.mask = a->mask ? malloc(vox) : NULL;
    if (a->lab) memcpy(v.lab, a->lab, vox);
    if (a->mask) memcpy(v.mask, a->mask, vox);
    return v;
}

static void ax_vol_free(ax_vol *v) {
    free(v->img);
    free(v->lab);
    free(v->mask);
}

static ax_sample ax_vol_sample(ax_vol *v) {
    ax_sample s = {.image = v->img, .label = v->lab, .mask = v->mask, .channels = v->channels,
                   .shape = {v->n, v->n, v->n}, .spacing = {1, 1, 1}};
    return s;
}

static void ax_stats(const float *x, size_t n, double *mean, double *std) {
    double s = 0, q = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    *mean = s / (double)n;
    for (size_t i = 0; i < n; i++) q += (x[i] - *mean) * (x[i] - *mean);
    *std = sqrt(q / (double)(n - 1));
}

static int ax_all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

/* ---- every aug ---------------------------------------------------------------- */

static const struct {
    const char *name, *off, *on;
} ax_augs[] = {
    {"spatial", "p_rotation=0 p_scale=0 p_elastic=0", "p_rotation=1 p_scale=1"},
    {"gamma", "p=0", "p=1"},
    {"brightness", "p=0", "p=1"},
    {"contrast", "p=0", "p=1"},
    {"noise", "p=0", "p=1"},
    {"blur", "p=0", "p=1 p_per_channel=1"},
    {"lowres", "p=0", "p=1 p_per_channel=1"},
};

/* p = 0: image, label and mask come back bit for bit. */
static void test_identity_at_p0(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof ax_augs / sizeof ax_augs[0]; k++) {
        ax_instance *inst = ax_aug(ax_augs[k].name, ax_augs[k].off);
        assert_non_null(inst);
        ax_vol ref = ax_vol_cube(20, 2, 8), v = ax_vol_copy(&ref);
        for (uint64_t stream = 0; stream < 4; stream++) {
            ax_sample s = ax_vol_sample(&v);
            assert_int_equal(ax_apply(inst, &s, stream), AX_OK);
            assert_memory_equal(v.img, ref.img, 2 * 20 * 20 * 20 * sizeof(float));
            assert_memory_equal(v.lab, ref.lab, 20 * 20 * 20);
            assert_memory_equal(v.mask, ref.mask, 20 * 20 * 20);
            assert_int_equal(s.shape[0], 20);
        }
        ax_vol_free(&ref);
        ax_vol_free(&v);
        ax_instance_free(inst);
    }
}

/* p = 1: finite output; the same rng gives the same output; another
 * stream gives another. */
static void test_deterministic_and_finite(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof ax_augs / sizeof ax_augs[0]; k++) {
        ax_instance *inst = ax_aug(ax_augs[k].name, ax_augs[k].on);
        assert_non_null(inst);
        ax_vol ref = ax_vol_cube(18, 2, 8), a = ax_vol_copy(&ref), b = ax_vol_copy(&ref), c = ax_vol_copy(&ref);
        ax_sample sa = ax_vol_sample(&a), sb = ax_vol_sample(&b), sc = ax_vol_sample(&c);
        assert_int_equal(ax_apply(inst, &sa, 7), AX_OK);
        assert_int_equal(ax_apply(inst, &sb, 7), AX_OK);
        assert_int_equal(ax_apply(inst, &sc, 8), AX_OK);
        size_t n = 2 * 18 * 18 * 18;
        assert_true(ax_all_finite(a.img, n));
        assert_memory_equal(a.img, b.img, n * sizeof(float));
        assert_memory_equal(a.lab, b.lab, 18 * 18 * 18);
        if (memcmp(a.img, c.img, n * sizeof(float)) == 0) fail_msg("%s: streams 7 and 8 agree", ax_augs[k].name);
        if (memcmp(a.img, ref.img, n * sizeof(float)) == 0) fail_msg("%s: p=1 changed nothing", ax_augs[k].name);
        ax_vol_free(&ref);
        ax_vol_free(&a);
        ax_vol_free(&b);
        ax_vol_free(&c);
        ax_instance_free(inst);
    }
}

static void test_rejects_empty_sample(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof ax_augs / sizeof ax_augs[0]; k++) {
        ax_instance *inst = ax_aug(ax_augs[k].name, ax_augs[k].on);
        ax_sample s = {.image = NULL, .channels = 1, .shape = {4, 4, 4}};
        assert_int_equal(ax_apply(inst, &s, 0), AX_ERR_INVALID);
        assert_non_null(strstr(ax_error_message(), "empty sample"));
        ax_instance_free(inst);
    }
}

/* Reversed ranges are refused by create() naming both values; values out
 * of the spec's bounds by the parameter set. */
static void test_bad_ranges_rejected(void **state) {
    (void)state;
    static const struct {
        const char *name, *settings, *message;
    } bad[] = {
        {"spatial", "scale_min=1.2 scale_max=0.9", "scale_min (1.2) must be <= scale_max (0.9)"},
        {"spatial", "elastic_sigma_min=5 elastic_sigma_max=4", "elastic_sigma_min (5)"},
        {"spatial", "elastic_alpha_min=5 elastic_alpha_max=4", "elastic_alpha_min (5)"},
        {"spatial", "rotation_deg=10,20", "rotation_deg takes 1 value"},
        {"spatial", "rotation_deg=10,200,1", "rotation_deg"},
        {"spatial", "p_rotation=1.5", "p_rotation"},
        {"spatial", "image_interp=cubic", "image_interp"},
        {"gamma", "gamma_min=1.5 gamma_max=0.7", "gamma_min (1.5) must be <= gamma_max (0.7)"},
        {"gamma", "gamma_min=0", "gamma_min"},
        {"brightness", "factor_min=2 factor_max=1", "factor_min (2) must be <= factor_max (1)"},
        {"contrast", "factor_min=2 factor_max=1", "factor_min (2) must be <= factor_max (1)"},
        {"noise", "std_min=0.2 std_max=0.1", "std_min (0.2) must be <= std_max (0.1)"},
        {"noise", "std_min=-1", "std_min"},
        {"blur", "sigma_min=2 sigma_max=1", "sigma_min (2) must be <= sigma_max (1)"},
        {"lowres", "zoom_min=0.9 zoom_max=0.5", "zoom_min (0.9) must be <= zoom_max (0.5)"},
        {"lowres", "zoom_max=2", "zoom_max"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        ax_instance *inst = ax_aug(bad[k].name, bad[k].settings);
        if (inst) fail_msg("%s %s: accepted", bad[k].name, bad[k].settings);
        if (!strstr(ax_error_message(), bad[k].message))
            fail_msg("%s %s: message \"%s\" lacks \"%s\"", bad[k].name, bad[k].settings, ax_error_message(),
                     bad[k].message);
    }
}

/* ---- spatial ------------------------------------------------------------------ */

/* Centre of mass of the voxels where `in` holds, relative to the centre. */
static void ax_com(const uint8_t *lab, const float *img, int32_t n, double com_lab[3], double com_img[3],
                   double *agree) {
    double sl[3] = {0, 0, 0}, si[3] = {0, 0, 0}, nl = 0, ni = 0, both = 0;
    for (int32_t z = 0; z < n; z++)
        for (int32_t y = 0; y < n; y++)
            for (int32_t x = 0; x < n; x++) {
                size_t i = ((size_t)z * n + y) * n + x;
                double p[3] = {z - 0.5 * (n - 1), y - 0.5 * (n - 1), x - 0.5 * (n - 1)};
                int l = lab[i] == 1, b = img[i] > 0.5f;
                for (int a = 0; a < 3; a++) {
                    sl[a] += l * p[a];
                    si[a] += b * p[a];
                }
                nl += l;
                ni += b;
                both += l && b;
            }
    for (int a = 0; a < 3; a++) {
        com_lab[a] = sl[a] / nl;
        com_img[a] = si[a] / ni;
    }
    *agree = 2 * both / (nl + ni); /* Dice of label vs bright image */
}

/* Rotations and scalings move image, label and mask together, about the
 * centre: the labelled cube and the bright cube coincide and stay centred. */
static void test_spatial_alignment(void **state) {
    (void)state;
    const char *settings[] = {
        "p_rotation=1 p_scale=0 rotation_deg=90",
        "p_rotation=1 p_scale=1 rotation_deg=45,20,30",
        "p_rotation=1 p_scale=1 independent_scale_per_axis=true",
        "p_rotation=0 p_scale=1 scale_min=0.7 scale_max=0.7",
    };
    for (size_t k = 0; k < sizeof settings / sizeof settings[0]; k++) {
        ax_instance *inst = ax_aug("spatial", settings[k]);
        assert_non_null(inst);
        for (uint64_t stream = 0; stream < 4; stream++) {
            ax_vol v = ax_vol_cube(32, 1, 12);
            ax_sample s = ax_vol_sample(&v);
            assert_int_equal(ax_apply(inst, &s, stream), AX_OK);
            double cl[3], ci[3], agree;
            ax_com(v.lab, v.img, 32, cl, ci, &agree);
            for (int a = 0; a < 3; a++) {
                assert_true(fabs(cl[a]) < 0.5);
                assert_true(fabs(ci[a]) < 0.5);
            }
            if (agree < 0.93) fail_msg("%s stream %d: label/image Dice %.3f", settings[k], (int)stream, agree);
            assert_memory_equal(v.lab, v.mask, 32 * 32 * 32);
            for (int i = 0; i < 32 * 32 * 32; i++) assert_true(v.lab[i] <= 1);
            ax_vol_free(&v);
        }
        ax_instance_free(inst);
    }
}

/* Scale 0.5 (the grid samples half as far: zoom in) doubles a cube's edge,
 * exactly for the nearest-neighbour label. */
static void test_spatial_scale_exact(void **state) {
    (void)state;
    ax_instance *inst = ax_aug("spatial", "p_rotation=0 p_scale=1 scale_min=0.5 scale_max=0.5");
    assert_non_null(inst);
    ax_vol v = ax_vol_cube(32, 1, 8);
    ax_sample s = ax_vol_sample(&v);
    assert_int_equal(ax_apply(inst, &s, 1), AX_OK);
    size_t count = 0;
    for (int i = 0; i < 32 * 32 * 32; i++) count += v.lab[i];
    /* output voxel o samples p = 0.5 * (o - 15.5) + 15.5; label voxels
     * 12..19 are read for p in [11.5, 19.5), i.e. o = 8..23: 16 per axis */
    assert_int_equal(count, 16 * 16 * 16);
    ax_vol_free(&v);
    ax_instance_free(inst);
}

/* extent() covers the patch under every rotation/scale it can draw: cut
 * the extent of an all-ones image, resample to the patch with fill 0, and
 * no output voxel may have touched the border. */
static void test_spatial_extent_covers(void **state) {
    (void)state;
    const char *settings[] = {
        "p_rotation=1 p_scale=1",
        "p_rotation=1 p_scale=1 rotation_deg=45,10,30 independent_scale_per_axis=true",
        "p_rotation=1 p_scale=0 rotation_deg=180",
        "p_rotation=1 p_scale=1 p_elastic=1 elastic_alpha_min=50 elastic_alpha_max=100 elastic_sigma_min=3 "
        "elastic_sigma_max=4",
    };
    int32_t patch[3] = {20, 16, 24};
    for (size_t k = 0; k < sizeof settings / sizeof settings[0]; k++) {
        ax_instance *inst = ax_aug("spatial", settings[k]);
        assert_non_null(inst);
        const ax_aug_ops *ops = inst->ops;
        assert_non_null(ops->extent);
        int32_t ext[3];
        assert_int_equal(ops->extent(inst->self, patch, ext), AX_OK);
        double diag = sqrt(19.0 * 19 + 15 * 15 + 23 * 23);
        for (int a = 0; a < 3; a++) {
            assert_true(ext[a] >= patch[a]);
            assert_int_equal((ext[a] - patch[a]) % 2, 0);
            if (k < 3) assert_true(ext[a] <= 1.4 * diag + 3); /* never beyond the rotated sphere */
        }
        size_t vin = (size_t)ext[0] * ext[1] * ext[2];
        float *img = malloc(vin * sizeof *img);
        for (uint64_t stream = 0; stream < 12; stream++) {
            for (size_t i = 0; i < vin; i++) img[i] = 1.0f;
            ax_sample s = {.image = img, .channels = 1, .shape = {ext[0], ext[1], ext[2]},
                           .target = {patch[0], patch[1], patch[2]}};
            assert_int_equal(ax_apply(inst, &s, stream), AX_OK);
            assert_memory_equal(s.shape, patch, sizeof patch);
            for (size_t i = 0; i < (size_t)patch[0] * patch[1] * patch[2]; i++)
                if (fabsf(img[i] - 1.0f) > 1e-5f) fail_msg("%s stream %d: voxel %zu = %g touched the border",
                                                           settings[k], (int)stream, i, img[i]);
        }
        free(img);
        ax_instance_free(inst);
    }
    /* tight where it can be: no rotation, scale 1.4 -> 2 * 1.4 * 9.5 + 1 = 27.6 -> 28 */
    ax_instance *inst = ax_aug("spatial", "p_rotation=0 p_scale=1 scale_min=1.4 scale_max=1.4");
    const ax_aug_ops *ops = inst->ops;
    int32_t ext[3];
    assert_int_equal(ops->extent(inst->self, patch, ext), AX_OK);
    assert_int_equal(ext[0], 28);
    assert_int_equal(ext[1], 22); /* 2 * 1.4 * 7.5 + 1 = 22 */
    assert_int_equal(ext[2], 34); /* 2 * 1.4 * 11.5 + 1 = 33.2 -> 34 (even) */
    ax_instance_free(inst);
    /* 30 degrees about D only: H/W reach = 7.5 cos + 11.5 sin etc. */
    inst = ax_aug("spatial", "p_rotation=1 p_scale=0 rotation_deg=30,0,0");
    ops = inst->ops;
    assert_int_equal(ops->extent(inst->self, patch, ext), AX_OK);
    double c = cos(M_PI / 6), sn = sin(M_PI / 6);
    assert_int_equal(ext[0], 20);
    assert_true(ext[1] >= 2 * (7.5 * c + 11.5 * sn) + 1 && ext[1] <= 2 * (7.5 * c + 11.5 * sn) + 3.2);
    assert_true(ext[2] >= 2 * (7.5 * sn + 11.5 * c) + 1 && ext[2] <= 2 * (7.5 * sn + 11.5 * c) + 3.2);
    ax_instance_free(inst);
}

/* Nothing drawn: the target is the centre crop; a target larger than the
 * sample is an error. */
static void test_spatial_target_crop(void **state) {
    (void)state;
    ax_instance *inst = ax_aug("spatial", "p_rotation=0 p_scale=0");
    ax_vol v = ax_vol_cube(12, 2, 4), ref = ax_vol_copy(&v);
    ax_sample s = ax_vol_sample(&v);
    s.target[0] = 8;
    s.target[1] = 10;
    s.target[2] = 6;
    assert_int_equal(ax_apply(inst, &s, 0), AX_OK);
    assert_int_equal(s.shape[0], 8);
    assert_int_equal(s.shape[1], 10);
    assert_int_equal(s.shape[2], 6);
    for (int c = 0; c < 2; c++)
        for (int z = 0; z < 8; z++)
            for (int y = 0; y < 10; y++)
                for (int x = 0; x < 6; x++) {
                    size_t src = ((size_t)(z + 2) * 12 + (y + 1)) * 12 + (x + 3), dst = ((size_t)z * 10 + y) * 6 + x;
                    assert_float_equal(v.img[c * 480 + dst], ref.img[c * 1728 + src], 0);
                    if (c == 0) {
                        assert_int_equal(v.lab[dst], ref.lab[src]);
                        assert_int_equal(v.mask[dst], ref.mask[src]);
                    }
                }
    ax_vol_free(&v);
    /* resampling path also produces the target shape */
    ax_instance_free(inst);
    inst = ax_aug("spatial", "p_rotation=1");
    v = ax_vol_copy(&ref);
    s = ax_vol_sample(&v);
    s.target[0] = 9;
    s.target[1] = 7;
    s.target[2] = 11;
    assert_int_equal(ax_apply(inst, &s, 0), AX_OK);
    assert_int_equal(s.shape[0], 9);
    assert_int_equal(s.shape[2], 11);
    assert_true(ax_all_finite(v.img, 2 * 9 * 7 * 11));
    s = ax_vol_sample(&v);
    s.target[0] = 13;
    s.target[1] = 12;
    s.target[2] = 12;
    assert_int_equal(ax_apply(inst, &s, 0), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "does not fit"));
    ax_vol_free(&v);
    ax_vol_free(&ref);
    ax_instance_free(inst);
}

/* An elastic field keeps label and image aligned and actually deforms. */
static void test_spatial_elastic(void **state) {
    (void)state;
    ax_instance *inst = ax_aug("spatial", "p_rotation=0 p_scale=0 p_elastic=1 elastic_alpha_min=200 "
                                          "elastic_alpha_max=300 elastic_sigma_min=3 elastic_sigma_max=4");
    assert_non_null(inst);
    ax_vol v = ax_vol_cube(24, 1, 10), ref = ax_vol_copy(&v);
    ax_sample s = ax_vol_sample(&v);
    assert_int_equal(ax_apply(inst, &s, 3), AX_OK);
    double cl[3], ci[3], agree;
    ax_com(v.lab, v.img, 24, cl, ci, &agree);
    assert_true(agree > 0.9);
    assert_true(memcmp(v.lab, ref.lab, 24 * 24 * 24) != 0);
    ax_vol_free(&v);
    ax_vol_free(&ref);
    ax_instance_free(inst);
}

/* ---- intensity augs ------------------------------------------------------------ */

static void test_gamma_retains_stats(void **state) {
    (void)state;
    const char *settings[] = {"p=1", "p=1 p_invert=1", "p=1 gamma_min=1.4 gamma_max=1.5"};
    for (size_t k = 0; k < 3; k++) {
        ax_instance *inst = ax_aug("gamma", settings[k]);
        for (uint64_t stream = 0; stream < 3; stream++) {
            ax_vol v = ax_vol_noise(16, 2, stream), ref = ax_vol_copy(&v);
            for (int i = 0; i < 2 * 4096; i++) v.img[i] = ref.img[i] = 3.0f + v.img[i] * v.img[i];
            ax_sample s = ax_vol_sample(&v);
            assert_int_equal(ax_apply(inst, &s, stream), AX_OK);
            for (int c = 0; c < 2; c++) {
                double m0, s0, m1, s1;
                ax_stats(ref.img + c * 4096, 4096, &m0, &s0);
                ax_stats(v.img + c * 4096, 4096, &m1, &s1);
                assert_float_equal(m1, m0, 1e-4 * fabs(m0));
                assert_float_equal(s1, s0, 1e-3 * s0);
            }
            assert_true(memcmp(v.img, ref.img, 2 * 4096 * sizeof(float)) != 0);
            ax_vol_free(&v);
            ax_vol_free(&ref);
        }
        ax_instance_free(inst);
    }
    /* without retaining stats the range maps onto itself and gamma > 1
     * pulls the values towards the minimum */
    ax_instance *inst = ax_aug("gamma", "p=1 p_retain_stats=0 gamma_min=2 gamma_max=2");
    ax_vol v = ax_vol_noise(16, 1, 9), ref = ax_vol_copy(&v);
    ax_sample s = ax_vol_sample(&v);
    assert_int_equal(ax_apply(inst, &s, 0), AX_OK);
    float lo0 = ref.img[0], hi0 = ref.img[0], lo1 = v.img[0], hi1 = v.img[0];
    for (int i = 0; i < 4096; i++) {
        lo0 = fminf(lo0, ref.img[i]), hi0 = fmaxf(hi0, ref.img[i]);
        lo1 = fminf(lo1, v.img[i]), hi1 = fmaxf(hi1, v.img[i]);
    }
    assert_float_equal(lo1, lo0, 1e-5);
    assert_float_equal(hi1, hi0, 1e-4);
    double m0, s0, m1, s1;
    ax_stats(ref.img, 4096, &m0, &s0);
    ax_stats(v.img, 4096, &m1, &s1);
    assert_true(m1 < m0);
    ax_vol_free(&v);
    ax_vol_free(&ref);
    ax_instance_free(inst);
}

static void test_brightness_scales(void **state) {
    (void)state;
    ax_instance *inst = ax_aug("brightness", "p=1 factor_min=1.2 factor_max=1.2");
    ax_vol v = ax_vol_noise(12, 2, 1), ref = ax_vol_copy(&v);
    ax_sample s = ax_vol_sample(&v);
    assert_int_equal(ax_apply(inst, &s, 0), AX_OK);
    for (int i = 0; i < 2 * 1728; i++) assert_float_equal(v.img[i], 1.2f * ref.img[i], 0);
    ax_instance_free(inst);
    inst = ax_aug("brightness", "p=1");
    for (int i = 0; i < 2 * 1728; i++) v.img[i] = ref.img[i] = 2.0f + ref.img[i];
    int below = 0, above = 0;
    for (uint64_t stream = 0; stream < 40; stream++) {
        memcpy(v.img, ref.img, 2 * 1728 * sizeof(float));
        assert_int_equal(ax_apply(inst, &s, stream), AX_OK);
        for (int c = 0; c < 2; c++) {
            double m0, s0, m1, s1;
            ax_stats(ref.img + c * 1728, 1728, &m0, &s0);
            ax_stats(v.img + c * 1728, 1728, &m1, &s1);
            double f = m1 / m0;
            assert_true(f >= 0.75 - 1e-6 && f <= 1.25 + 1e-6);
            below += f < 1, above += f > 1;
        }
    }
    assert_true(below > 20 && above > 20); /* BGContrast: half below 1, half above */
    ax_vol_free(&v);
    ax_vol_free(&ref);
    ax_instance_free(inst);
}

static void test_contrast(void **state) {
    (void)state;
    ax_instance *inst = ax_aug("contrast", "p=1 factor_min=2 factor_max=2 preserve_range=false");
    ax_vol v = ax_vol_noise(12, 1, 2), ref = ax_vol_copy(&v);
    ax_sample s = ax_vol_sample(&v);
    assert_int_equal(ax_apply(inst, &s, 0), AX_OK);
    double m0, s0, m1, s1;
    ax_stats(ref.img, 1728, &m0, &s0);
    ax_stats(v.img, 1728, &m1, &s1);
    assert_float_equal(m1, m0, 1e-5);
    assert_float_equal(s1, 2 * s0, 1e-4);
    ax_instance_free(inst);
    inst = ax_aug("contrast", "p=1 factor_min=2 factor_max=2");
    memcpy(v.img, ref.img, 1728 * sizeof(float));
    assert_int_equal(ax_apply(inst, &s, 0), AX_OK);
    float lo = ref.img[0], hi = ref.img[0];
    for (int i = 0; i < 1728; i++) lo = fminf(lo, ref.img[i]), hi = fmaxf(hi, ref.img[i]);
    int clipped = 0;
    for (int i = 0; i < 1728; i++) {
        assert_true(v.img[i] >= lo && v.img[i] <= hi);
        clipped += v.img[i] == lo || v.img[i] == hi;
    }
    assert_true(clipped > 10);
    ax_vol_free(&v);
    ax_vol_free(&ref);
    ax_instance_free(inst);
}

static void test_noise_variance(void **state) {
    (void)state;
    ax_instance *inst = ax_aug("noise", "p=1 std_min=0.5 std_max=0.5");
    ax_vol v = ax_vol_cube(32, 2, 10), ref = ax_vol_copy(&v);
    ax_sample s = ax_vol_sample(&v);
    assert_int_equal(ax_apply(inst, &s, 0), AX_OK);
    size_t n = 32 * 32 * 32;
    float *d = malloc(n * sizeof *d);
    for (int c = 0; c < 2; c++) {
        for (size_t i = 0; i < n; i++) d[i] = v.img[c * n + i] - ref.img[c * n + i];
        double m, sd;
        ax_stats(d, n, &m, &sd);
        assert_true(fabs(m) < 0.02);
        assert_float_equal(sd * sd, 0.25, 0.25 * 0.03);
        /* Gaussian shape: kurtosis 3, and 68.3% within one sigma */
        double m4 = 0, within = 0;
        for (size_t i = 0; i < n; i++) {
            double q = (d[i] - m) / sd;
            m4 += q * q * q * q;
            within += fabs(q) < 1.0;
        }
        assert_float_equal(m4 / (double)n, 3.0, 0.15);
        assert_float_equal(within / (double)n, 0.6827, 0.01);
    }
    /* the two channels got different noise */
    assert_true(fabsf((v.img[5] - ref.img[5]) - (v.img[n + 5] - ref.img[n + 5])) > 0);
    free(d);
    ax_vol_free(&v);
    ax_vol_free(&ref);
    ax_instance_free(inst);
    /* the drawn sigma stays within [0, 0.1] by default */
    inst = ax_aug("noise", "p=1");
    for (uint64_t stream = 0; stream < 8; stream++) {
        v = ax_vol_cube(16, 1, 4);
        ref = ax_vol_copy(&v);
        s = ax_vol_sample(&v);
        assert_int_equal(ax_apply(inst, &s, stream), AX_OK);
        double m, sd;
        for (int i = 0; i < 4096; i++) v.img[i] -= ref.img[i];
        ax_stats(v.img, 4096, &m, &sd);
        assert_true(sd < 0.1 * 1.1);
        ax_vol_free(&v);
        ax_vol_free(&ref);
    }
    ax_instance_free(inst);
}

static void test_blur_smooths(void **state) {
    (void)state;
    ax_instance *inst = ax_aug("blur", "p=1 p_per_channel=1");
    ax_vol v = ax_vol_noise(24, 1, 3);
    double m0, s0, m1, s1;
    ax_stats(v.img, 24 * 24 * 24, &m0, &s0);
    ax_sample s = ax_vol_sample(&v);
    assert_int_equal(ax_apply(inst, &s, 0), AX_OK);
    ax_stats(v.img, 24 * 24 * 24, &m1, &s1);
    /* sigma >= 0.5 on every axis keeps at most (0.34)^3 of white noise's variance */
    assert_true(s1 * s1 < 0.4 * s0 * s0);
    assert_float_equal(m1, m0, 0.01);
    ax_vol_free(&v);
    ax_instance_free(inst);
}

static void test_lowres(void **state) {
    (void)state;
    /* zoom 1: nearest down and linear up are both the identity */
    ax_instance *inst = ax_aug("lowres", "p=1 p_per_channel=1 zoom_min=1 zoom_max=1");
    ax_vol v = ax_vol_noise(16, 2, 4), ref = ax_vol_copy(&v);
    ax_sample s = ax_vol_sample(&v);
    assert_int_equal(ax_apply(inst, &s, 0), AX_OK);
    assert_memory_equal(v.img, ref.img, 2 * 4096 * sizeof(float));
    ax_instance_free(inst);
    /* zoom 0.5 destroys the finest detail of white noise */
    inst = ax_aug("lowres", "p=1 p_per_channel=1 zoom_min=0.5 zoom_max=0.5");
    assert_int_equal(ax_apply(inst, &s, 0), AX_OK);
    double m0, s0, m1, s1, diff = 0;
    ax_stats(ref.img, 4096, &m0, &s0);
    ax_stats(v.img, 4096, &m1, &s1);
    assert_true(s1 < 0.9 * s0);
    /* neighbours along W now agree much more often than in white noise */
    for (int i = 0; i + 1 < 4096; i++) diff += fabsf(v.img[i + 1] - v.img[i]);
    assert_true(diff / 4095 < 0.8);
    ax_vol_free(&v);
    ax_vol_free(&ref);
    ax_instance_free(inst);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_at_p0),
        cmocka_unit_test(test_deterministic_and_finite),
        cmocka_unit_test(test_rejects_empty_sample),
        cmocka_unit_test(test_bad_ranges_rejected),
        cmocka_unit_test(test_spatial_alignment),
        cmocka_unit_test(test_spatial_scale_exact),
        cmocka_unit_test(test_spatial_extent_covers),
        cmocka_unit_test(test_spatial_target_crop),
        cmocka_unit_test(test_spatial_elastic),
        cmocka_unit_test(test_gamma_retains_stats),
        cmocka_unit_test(test_brightness_scales),
        cmocka_unit_test(test_contrast),
        cmocka_unit_test(test_noise_variance),
        cmocka_unit_test(test_blur_smooths),
        cmocka_unit_test(test_lowres),
    };
    return cmocka_run_group_tests(tests, ax_setup, ax_teardown);
}
