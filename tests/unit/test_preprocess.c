/* Tests for axon/preprocess.h on tiny NIfTI fixtures written at test time
 * (ax_volume_write): crop box (union of channels, or the anatomy mask),
 * z-score statistics, resampling to a spacing, foreground lists, the
 * index with its split, resume by parameter hash, thread-count
 * independence, broken and mismatched cases reported and skipped, and
 * ax_case_restore_labels putting a label back on the input file's own
 * grid (a permuted, flipped affine included). The resampling matches
 * scipy.ndimage.zoom(grid_mode=True, mode="nearest") — skimage's resize as
 * nnU-Net calls it — on committed fixtures
 * (tests/fixtures/preprocess/make_fixtures.py). */
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

#include <jansson.h>

#include "axon/cache.h"
#include "axon/dataset.h"
#include "axon/preprocess.h"
#include "axon/safetensors.h"
#include "axon/status.h"
#include "axon/tensor.h"
#include "axon/volume.h"
#include "preprocess_internal.h" /* pp_resample_*: compiled into this test */

#ifndef AX_TEST_FIXTURES
#define AX_TEST_FIXTURES "tests/fixtures"
#endif

static void mkdirs(const char *path) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%.1000s/", path);
    for (char *s = tmp + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(tmp, 0777);
            *s = '/';
        }
}

static void put(const char *path, const char *text) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    mkdirs(dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* ---- fixtures ------------------------------------------------------------------ */

/* RAS grid D=20, H=24, W=22; spacing (2, 1, 1.5) mm. */
static const int32_t S[3] = {20, 24, 22};
static const double SP[3] = {2.0, 1.0, 1.5};

typedef float (*pattern_fn)(int d, int h, int w);

static int in_box(int d, int h, int w, int d0, int d1, int h0, int h1, int w0, int w1) {
    return d >= d0 && d < d1 && h >= h0 && h < h1 && w >= w0 && w < w1;
}
/* channel 0: nonzero in [4,15) x [5,19) x [3,18) */
static float pat_img0(int d, int h, int w) {
    return in_box(d, h, w, 4, 15, 5, 19, 3, 18) ? 100.0f + 3 * d + 2 * h + w : 0.0f;
}
/* channel 1: nonzero in [6,17) x [5,19) x [3,18): the union is [4,17) x [5,19) x [3,18) */
static float pat_img1(int d, int h, int w) {
    return in_box(d, h, w, 6, 17, 5, 19, 3, 18) ? 50.0f + (float)((d * h) % 7) : 0.0f;
}
/* classes 1 (48 voxels) and 2 (4 voxels) */
static float pat_label(int d, int h, int w) {
    if (in_box(d, h, w, 7, 10, 8, 12, 5, 9)) return 1.0f;
    if (in_box(d, h, w, 12, 14, 10, 11, 10, 12)) return 2.0f;
    return 0.0f;
}
/* anatomy mask [5,13) x [6,16) x [4,14) */
static float pat_mask(int d, int h, int w) { return in_box(d, h, w, 5, 13, 6, 16, 4, 14) ? 1.0f : 0.0f; }

static void ras_affine(double a[4][4], const double sp[3]) {
    memset(a, 0, 16 * sizeof(double));
    a[0][0] = sp[2], a[1][1] = sp[1], a[2][2] = sp[0], a[3][3] = 1;
    a[0][3] = -10, a[1][3] = 20, a[2][3] = 5;
}

/* Write a one-channel volume of `shape` whose voxel (d, h, w) holds f. */
static void write_vol(const char *path, const int32_t shape[3], const double sp[3], const double aff[4][4],
                      pattern_fn f, ax_nifti_dtype dt) {
    ax_volume *v;
    assert_ok(ax_volume_new(&v, 1, shape, sp));
    if (aff) memcpy(v->affine, aff, sizeof v->affine);
    for (int d = 0; d < shape[0]; d++)
        for (int h = 0; h < shape[1]; h++)
            for (int w = 0; w < shape[2]; w++)
                v->data[((size_t)d * (size_t)shape[1] + (size_t)h) * (size_t)shape[2] + (size_t)w] = f(d, h, w);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    mkdirs(dir);
    assert_ok(ax_volume_write(v, path, AX_VOLUME_WRITE_AS_IS, dt));
    ax_volume_free(v);
}

static const char *nn_json = "{\"channel_names\": {\"0\": \"T1\", \"1\": \"T2\"},"
                             " \"labels\": {\"background\": 0, \"a\": 1, \"b\": 2},"
                             " \"numTraining\": %d, \"file_ending\": \".nii.gz\"}";

/* nnU-Net dataset `dir` with n training cases case_000.. and one test case. */
static void make_nnunet(const char *dir, int n) {
    double aff[4][4];
    ras_affine(aff, SP);
    char p[1024], js[512];
    for (int i = 0; i <= n; i++) {
        const char *sub = i < n ? "Tr" : "Ts";
        const char *name = i < n ? "case" : "test";
        int k = i < n ? i : 0;
        snprintf(p, sizeof p, "%s/%s/images%s/%s_%03d_0000.nii.gz", tmpdir, dir, sub, name, k);
        write_vol(p, S, SP, aff, pat_img0, AX_NIFTI_F32);
        snprintf(p, sizeof p, "%s/%s/images%s/%s_%03d_0001.nii.gz", tmpdir, dir, sub, name, k);
        write_vol(p, S, SP, aff, pat_img1, AX_NIFTI_I16);
        if (i < n) {
            snprintf(p, sizeof p, "%s/%s/labelsTr/%s_%03d.nii.gz", tmpdir, dir, name, k);
            write_vol(p, S, SP, aff, pat_label, AX_NIFTI_U8);
        }
    }
    snprintf(js, sizeof js, nn_json, n);
    snprintf(p, sizeof p, "%s/%s/dataset.json", tmpdir, dir);
    put(p, js);
}

static ax_dataset *open_ds(const char *format, const char *root) {
    ax_dataset_opts o = ax_dataset_opts_default();
    o.format = format;
    o.root = root;
    ax_dataset *ds = NULL;
    assert_ok(ax_dataset_open(&ds, &o));
    return ds;
}

static ax_preprocess_opts pp_opts(const char *out) {
    ax_preprocess_opts o = ax_preprocess_opts_default();
    o.out = out;
    o.threads = 2;
    return o;
}

static json_t *load_json(const char *text) {
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    assert_non_null(j);
    return j;
}

static int64_t jint(json_t *j, const char *path) {
    /* "key" or "key.N" or "key.N.M" */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *cur = j;
    for (char *tok = strtok(buf, "."); tok; tok = strtok(NULL, "."))
        cur = json_is_array(cur) ? json_array_get(cur, (size_t)atoi(tok)) : json_object_get(cur, tok);
    assert_true(json_is_integer(cur));
    return json_integer_value(cur);
}

static double jnum(json_t *j, const char *key, size_t i, const char *sub) {
    json_t *a = json_object_get(j, key);
    json_t *v = json_array_get(a, i);
    if (sub) v = json_object_get(v, sub);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

static unsigned char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    b[len] = 0;
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* ---- tests ------------------------------------------------------------------- */

static void test_end_to_end(void **state) {
    (void)state;
    make_nnunet("nn", 3);
    ax_dataset *ds = open_ds("nnunet", tpath("nn"));
    ax_preprocess_opts o = pp_opts(tpath("out/nn"));
    o.max_fg = 20;
    ax_preprocess_report rep;
    assert_ok(ax_preprocess_run(ds, &o, &rep));
    assert_int_equal(rep.n_total, 4);
    assert_int_equal(rep.n_done, 4);
    assert_int_equal(rep.n_skipped, 0);
    assert_int_equal(rep.n_failed, 0);
    ax_preprocess_report_free(&rep);

    ax_case *c;
    assert_ok(ax_case_open(&c, tpath("out/nn/case_001.axc")));
    /* crop to the union of the channels' nonzero boxes; spacing kept */
    assert_int_equal(c->channels, 2);
    assert_int_equal(c->shape[0], 13);
    assert_int_equal(c->shape[1], 14);
    assert_int_equal(c->shape[2], 15);
    for (int a = 0; a < 3; a++) assert_true(fabs(c->spacing[a] - SP[a]) < 1e-6);
    json_t *m = load_json(c->json);
    assert_string_equal(json_string_value(json_object_get(m, "name")), "case_001");
    assert_int_equal(jint(m, "crop_box.0.0"), 4);
    assert_int_equal(jint(m, "crop_box.0.1"), 17);
    assert_int_equal(jint(m, "crop_box.1.0"), 5);
    assert_int_equal(jint(m, "crop_box.1.1"), 19);
    assert_int_equal(jint(m, "crop_box.2.0"), 3);
    assert_int_equal(jint(m, "crop_box.2.1"), 18);
    assert_int_equal(jint(m, "original_shape.1"), 24);
    assert_int_equal(jint(m, "classes.0"), 1);
    assert_int_equal(jint(m, "classes.1"), 2);
    assert_int_equal(json_array_size(json_object_get(m, "classes")), 2);

    /* z-score: every channel ~N(0, 1) over the box; the stored mean/std are
     * those of the raw voxels in the box */
    size_t n = 13 * 14 * 15;
    for (int ch = 0; ch < 2; ch++) {
        double s1 = 0, s2 = 0, r1 = 0, r2 = 0;
        for (size_t i = 0; i < n; i++) s1 += c->image[ch * n + i];
        double mean = s1 / (double)n;
        for (size_t i = 0; i < n; i++) s2 += (c->image[ch * n + i] - mean) * (c->image[ch * n + i] - mean);
        assert_true(fabs(mean) < 1e-4);
        assert_true(fabs(sqrt(s2 / (double)n) - 1.0) < 1e-4);
        for (int d = 4; d < 17; d++)
            for (int h = 5; h < 19; h++)
                for (int w = 3; w < 18; w++) r1 += ch ? pat_img1(d, h, w) : pat_img0(d, h, w);
        double rm = r1 / (double)n;
        for (int d = 4; d < 17; d++)
            for (int h = 5; h < 19; h++)
                for (int w = 3; w < 18; w++) {
                    double x = (ch ? pat_img1(d, h, w) : pat_img0(d, h, w)) - rm;
                    r2 += x * x;
                }
        assert_true(fabs(jnum(m, "norm", (size_t)ch, "mean") - rm) < 1e-6 * fabs(rm));
        assert_true(fabs(jnum(m, "norm", (size_t)ch, "std") - sqrt(r2 / (double)n)) < 1e-6 * sqrt(r2 / (double)n));
        /* the first voxel of the box maps back to its raw value */
        float raw = ch ? pat_img1(4, 5, 3) : pat_img0(4, 5, 3);
        double z = (raw - jnum(m, "norm", (size_t)ch, "mean")) / jnum(m, "norm", (size_t)ch, "std");
        assert_true(fabs(c->image[ch * n] - z) < 1e-4);
    }
    /* label cropped with the image; foreground: 20 distinct labelled voxels */
    assert_non_null(c->label);
    assert_null(c->mask);
    assert_int_equal(c->label[((7 - 4) * 14 + (8 - 5)) * 15 + (5 - 3)], 1);
    assert_int_equal(c->label[((12 - 4) * 14 + (10 - 5)) * 15 + (10 - 3)], 2);
    int labelled = 0;
    for (size_t i = 0; i < n; i++) labelled += c->label[i] != 0;
    assert_int_equal(labelled, 52);
    assert_int_equal(c->n_fg, 20);
    for (int64_t k = 0; k < c->n_fg; k++) {
        const int32_t *p = c->fg + 3 * k;
        assert_int_not_equal(c->label[((size_t)p[0] * 14 + (size_t)p[1]) * 15 + (size_t)p[2]], 0);
        if (k) { /* voxel order, no repeats */
            const int32_t *q = p - 3;
            assert_true((q[0] * 14 + q[1]) * 15 + q[2] < (p[0] * 14 + p[1]) * 15 + p[2]);
        }
    }
    json_decref(m);
    ax_case_close(c);

    /* the test case: no label, no foreground */
    assert_ok(ax_case_open(&c, tpath("out/nn/test_000.axc")));
    assert_null(c->label);
    assert_int_equal(c->n_fg, 0);
    ax_case_close(c);

    /* index.json */
    size_t len;
    char *idx = (char *)read_file(tpath("out/nn/index.json"), &len);
    json_t *j = load_json(idx);
    assert_string_equal(json_string_value(json_object_get(j, "format")), "axon-cache");
    assert_int_equal(jint(j, "version"), 1);
    assert_int_equal(jint(j, "channels"), 2);
    assert_int_equal(jint(j, "labels.b"), 2);
    json_t *cases = json_object_get(j, "cases");
    assert_int_equal(json_array_size(cases), 4);
    json_t *last = json_array_get(cases, 3);
    assert_string_equal(json_string_value(json_object_get(last, "file")), "test_000.axc");
    assert_string_equal(json_string_value(json_object_get(last, "split")), "test");
    int n_val = 0;
    for (int i = 0; i < 3; i++)
        n_val += strcmp(json_string_value(json_object_get(json_array_get(cases, (size_t)i), "split")), "val") == 0;
    assert_int_equal(n_val, 1); /* min 5, but at most half of the 3 subjects */
    json_decref(j);
    free(idx);
    char **paths;
    size_t np;
    assert_ok(ax_cache_list(tpath("out/nn"), "train", &paths, &np));
    assert_int_equal(np, 2);
    ax_cache_paths_free(paths, np);

    /* another thread count gives the same bytes */
    ax_preprocess_opts o1 = pp_opts(tpath("out/nn1"));
    o1.max_fg = 20;
    o1.threads = 1;
    assert_ok(ax_preprocess_run(ds, &o1, NULL));
    size_t n1, n2;
    unsigned char *b1 = read_file(tpath("out/nn/case_002.axc"), &n1);
    unsigned char *b2 = read_file(tpath("out/nn1/case_002.axc"), &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    free(b1), free(b2);
    ax_dataset_free(ds);
}

static void test_spacing_and_restore(void **state) {
    (void)state;
    make_nnunet("nn_sp", 1);
    ax_dataset *ds = open_ds("nnunet", tpath("nn_sp"));
    ax_preprocess_opts o = pp_opts(tpath("out/sp"));
    o.spacing[0] = 1.0, o.spacing[1] = 1.0, o.spacing[2] = 1.5; /* 2x along D only */
    assert_ok(ax_preprocess_run(ds, &o, NULL));
    ax_case *c;
    assert_ok(ax_case_open(&c, tpath("out/sp/case_000.axc")));
    assert_int_equal(c->shape[0], 26);
    assert_int_equal(c->shape[1], 14);
    assert_int_equal(c->shape[2], 15);
    assert_true(c->spacing[0] == 1.0 && c->spacing[1] == 1.0 && c->spacing[2] == 1.5);
    /* channel 0 is linear along D inside its box: trilinear keeps it so
     * between voxel centres of the box (cache d 3..20 <-> box d 1..9.75) */
    size_t plane = 14 * 15;
    const float *x = c->image;
    float step = x[5 * plane + 5 * 15 + 5] - x[4 * plane + 5 * 15 + 5];
    assert_true(step > 0);
    for (int d = 4; d < 20; d++) assert_true(fabs((x[(d + 1) * plane + 5 * 15 + 5] - x[d * plane + 5 * 15 + 5]) - step) < 1e-4);
    /* nearest labels: each input slice twice */
    int l1 = 0;
    for (size_t i = 0; i < 26 * plane; i++) l1 += c->label[i] == 1;
    assert_int_equal(l1, 96);

    /* restore: back on the label file's grid, bit for bit */
    ax_volume *r;
    assert_ok(ax_case_restore_labels(&r, c->label, c->shape, c->json));
    assert_ok(ax_volume_write(r, tpath("out/sp/restored.nii.gz"), AX_VOLUME_WRITE_ORIGINAL, AX_NIFTI_U8));
    ax_volume_free(r);
    ax_volume_read_opts ro = ax_volume_read_opts_default();
    ro.reorient = false;
    ax_volume *a, *b;
    assert_ok(ax_volume_read(&a, tpath("nn_sp/labelsTr/case_000.nii.gz"), &ro));
    assert_ok(ax_volume_read(&b, tpath("out/sp/restored.nii.gz"), &ro));
    assert_memory_equal(a->shape, b->shape, sizeof a->shape);
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) assert_true(fabs(a->affine[i][k] - b->affine[i][k]) < 1e-6);
    assert_memory_equal(a->data, b->data, (size_t)S[0] * S[1] * S[2] * sizeof(float));
    ax_volume_free(a), ax_volume_free(b);

    /* wrong shape, broken metadata */
    int32_t bad[3] = {c->shape[0], c->shape[1], c->shape[2] + 1};
    assert_int_equal(ax_case_restore_labels(&r, c->label, bad, c->json), AX_ERR_INVALID);
    assert_msg("case_000: labels are [26, 14, 16], the case is [26, 14, 15]");
    assert_int_equal(ax_case_restore_labels(&r, c->label, c->shape, "{\"name\": \"x\", \"shape\": [1, 2, 3]}"),
                     AX_ERR_FORMAT);
    assert_msg("x: metadata key 'original_shape'");
    ax_case_close(c);
    ax_dataset_free(ds);
}

/* A label written with a permuted, flipped affine (file axes i, j, k ->
 * -y, -x, +z) comes back in that file's own grid and affine. */
static void test_restore_oriented(void **state) {
    (void)state;
    double aff[4][4] = {{0, -1.0, 0, 30}, {-1.5, 0, 0, 40}, {0, 0, 2.0, -7}, {0, 0, 0, 1}};
    write_vol(tpath("or/img/sub-01_T1w.nii.gz"), S, SP, aff, pat_img0, AX_NIFTI_F32);
    ax_dataset *ds = open_ds("nifti-dir", tpath("or/img"));
    ax_preprocess_opts o = pp_opts(tpath("out/or"));
    assert_ok(ax_preprocess_run(ds, &o, NULL));
    ax_case *c;
    assert_ok(ax_case_open(&c, tpath("out/or/sub-01_T1w.axc")));
    json_t *m = load_json(c->json);
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "source"), "orientation")), "PLS");
    json_decref(m);
    /* a "prediction": image > its mean */
    size_t n = (size_t)c->shape[0] * c->shape[1] * c->shape[2];
    uint8_t *pred = malloc(n);
    for (size_t i = 0; i < n; i++) pred[i] = c->image[i] > 0.0f;
    ax_volume *r;
    assert_ok(ax_case_restore_labels(&r, pred, c->shape, c->json));
    free(pred);
    assert_ok(ax_volume_write(r, tpath("out/or/pred.nii.gz"), AX_VOLUME_WRITE_ORIGINAL, AX_NIFTI_U8));
    ax_volume_free(r);
    ax_case_close(c);

    ax_volume_read_opts ro = ax_volume_read_opts_default();
    ro.reorient = false;
    ax_volume *img, *p;
    assert_ok(ax_volume_read(&img, tpath("or/img/sub-01_T1w.nii.gz"), &ro));
    assert_ok(ax_volume_read(&p, tpath("out/or/pred.nii.gz"), &ro));
    assert_memory_equal(img->shape, p->shape, sizeof img->shape);
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) assert_true(fabs(img->affine[i][k] - p->affine[i][k]) < 1e-6);
    /* the prediction lies where the file has its bright half, in file order */
    double mean = 0;
    size_t nz = 0, N = (size_t)S[0] * S[1] * S[2];
    for (size_t i = 0; i < N; i++)
        if (img->data[i] != 0) mean += img->data[i], nz++;
    /* z-scored over the box, so "> 0" means above the box mean (zeros included) */
    size_t box = 11 * 14 * 15;
    mean /= (double)box;
    for (size_t i = 0; i < N; i++) assert_int_equal(p->data[i] != 0, img->data[i] > mean);
    assert_int_equal(nz, box);
    ax_volume_free(img), ax_volume_free(p);
    ax_dataset_free(ds);
}

static time_t mtime_of(const char *p) {
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    return sb.st_mtim.tv_sec * 1000000000L + sb.st_mtim.tv_nsec;
}

static void test_resume(void **state) {
    (void)state;
    make_nnunet("nn_re", 2);
    ax_dataset *ds = open_ds("nnunet", tpath("nn_re"));
    ax_preprocess_opts o = pp_opts(tpath("out/re"));
    ax_preprocess_report rep;
    assert_ok(ax_preprocess_run(ds, &o, &rep));
    assert_int_equal(rep.n_done, 3);
    ax_preprocess_report_free(&rep);
    time_t t0 = mtime_of(tpath("out/re/case_000.axc"));

    assert_ok(ax_preprocess_run(ds, &o, &rep));
    assert_int_equal(rep.n_done, 0);
    assert_int_equal(rep.n_skipped, 3);
    ax_preprocess_report_free(&rep);
    assert_true(mtime_of(tpath("out/re/case_000.axc")) == t0);

    /* another parameter: everything again */
    o.mask_norm = true;
    assert_ok(ax_preprocess_run(ds, &o, &rep));
    assert_int_equal(rep.n_done, 3);
    ax_preprocess_report_free(&rep);

    /* a changed input or a damaged case file: that case again */
    double aff[4][4];
    ras_affine(aff, SP);
    write_vol(tpath("nn_re/imagesTr/case_001_0000.nii.gz"), S, SP, aff, pat_img1, AX_NIFTI_F32);
    assert_int_equal(truncate(tpath("out/re/test_000.axc"), 5000), 0);
    assert_ok(ax_preprocess_run(ds, &o, &rep));
    assert_int_equal(rep.n_done, 2);
    assert_int_equal(rep.n_skipped, 1);
    ax_preprocess_report_free(&rep);

    o.force = true;
    assert_ok(ax_preprocess_run(ds, &o, &rep));
    assert_int_equal(rep.n_done, 3);
    ax_preprocess_report_free(&rep);
    ax_dataset_free(ds);
}

static void test_broken_cases(void **state) {
    (void)state;
    double aff[4][4];
    ras_affine(aff, SP);
    write_vol(tpath("br/a.nii.gz"), S, SP, aff, pat_img0, AX_NIFTI_F32);
    write_vol(tpath("br/c.nii.gz"), S, SP, aff, pat_img1, AX_NIFTI_F32);
    put(tpath("br/b.nii.gz"), "this is not a NIfTI file at all, just some text long enough to be read");
    ax_dataset *ds = open_ds("nifti-dir", tpath("br"));
    ax_preprocess_opts o = pp_opts(tpath("out/br"));
    ax_preprocess_report rep;
    assert_ok(ax_preprocess_run(ds, &o, &rep));
    assert_int_equal(rep.n_done, 2);
    assert_int_equal(rep.n_failed, 1);
    assert_string_equal(rep.failed_names[0], "b");
    assert_has(rep.failed_reasons[0], "b.nii.gz");
    ax_preprocess_report_free(&rep);
    size_t len;
    char *idx = (char *)read_file(tpath("out/br/index.json"), &len);
    json_t *j = load_json(idx);
    json_t *cases = json_object_get(j, "cases");
    assert_int_equal(json_array_size(cases), 2);
    /* the split counts the two cases in the cache: one each side */
    const char *s0 = json_string_value(json_object_get(json_array_get(cases, 0), "split"));
    const char *s1 = json_string_value(json_object_get(json_array_get(cases, 1), "split"));
    assert_true((strcmp(s0, "train") == 0 && strcmp(s1, "val") == 0) || (strcmp(s0, "val") == 0 && strcmp(s1, "train") == 0));
    json_t *failed = json_object_get(j, "failed");
    assert_int_equal(json_array_size(failed), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(failed, 0), "name")), "b");
    json_decref(j);
    free(idx);
    ax_dataset_free(ds);

    /* every case broken: an error naming the first */
    put(tpath("br2/x.nii"), "garbage");
    put(tpath("br2/y.nii"), "garbage");
    ds = open_ds("nifti-dir", tpath("br2"));
    o = pp_opts(tpath("out/br2"));
    assert_int_not_equal(ax_preprocess_run(ds, &o, &rep), AX_OK);
    assert_msg("every case failed (2); the first, x: ");
    assert_msg("x.nii");
    assert_int_equal(rep.n_failed, 2);
    ax_preprocess_report_free(&rep);
    ax_dataset_free(ds);
}

static void test_geometry_mismatch(void **state) {
    (void)state;
    make_nnunet("nn_geo", 3);
    double aff[4][4];
    ras_affine(aff, SP);
    int32_t small[3] = {20, 24, 21};
    write_vol(tpath("nn_geo/labelsTr/case_000.nii.gz"), small, SP, aff, pat_label, AX_NIFTI_U8);
    aff[0][3] += 3.0; /* shifted 3 mm */
    write_vol(tpath("nn_geo/imagesTr/case_001_0001.nii.gz"), S, SP, aff, pat_img1, AX_NIFTI_F32);
    ras_affine(aff, SP);
    write_vol(tpath("nn_geo/labelsTr/case_002.nii.gz"), S, SP, aff, pat_img0, AX_NIFTI_F32); /* not class ids */
    ax_dataset *ds = open_ds("nnunet", tpath("nn_geo"));
    ax_preprocess_opts o = pp_opts(tpath("out/geo"));
    ax_preprocess_report rep;
    assert_ok(ax_preprocess_run(ds, &o, &rep));
    assert_int_equal(rep.n_done, 1); /* the test case */
    assert_int_equal(rep.n_failed, 3);
    assert_string_equal(rep.failed_names[0], "case_000");
    assert_has(rep.failed_reasons[0], "labelsTr/case_000.nii.gz: shape [20, 24, 21] differs from ");
    assert_has(rep.failed_reasons[0], "case_000_0000.nii.gz's [20, 24, 22]");
    assert_has(rep.failed_reasons[1], "case_001_0001.nii.gz: affine differs from ");
    assert_has(rep.failed_reasons[2], "labelsTr/case_002.nii.gz: label value ");
    ax_preprocess_report_free(&rep);
    ax_dataset_free(ds);
}

static void test_mask_crop_and_norm(void **state) {
    (void)state;
    double aff[4][4];
    ras_affine(aff, SP);
    const char *stem = "om/OpenMind/ds000001/sub-01/anat/sub-01_T1w";
    write_vol(tpath("%s.nii.gz", stem), S, SP, aff, pat_img0, AX_NIFTI_F32);
    write_vol(tpath("%s__Data/fb_mask.nii.gz", stem), S, SP, aff, pat_mask, AX_NIFTI_U8);
    put(tpath("om/openneuro_metadata.csv"), "image_path,anon_mask_path,anat_mask_path,modality,image_quality_score\n"
                                            "OpenMind/ds000001/sub-01/anat/sub-01_T1w.nii.gz,,,T1w,1.0\n");
    ax_dataset *ds = open_ds("openmind", tpath("om"));
    ax_preprocess_opts o = pp_opts(tpath("out/om"));
    o.mask_norm = true;
    assert_ok(ax_preprocess_run(ds, &o, NULL));
    ax_case *c;
    assert_ok(ax_case_open(&c, tpath("out/om/ds000001_sub-01_T1w.axc")));
    assert_int_equal(c->shape[0], 8);
    assert_int_equal(c->shape[1], 10);
    assert_int_equal(c->shape[2], 10);
    assert_non_null(c->mask);
    assert_null(c->label);
    size_t n = 800;
    double s1 = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(c->mask[i], 1);
        s1 += c->image[i];
    }
    for (size_t i = 0; i < n; i++) s2 += c->image[i] * c->image[i];
    assert_true(fabs(s1 / n) < 1e-4);
    assert_true(fabs(sqrt(s2 / n) - 1) < 1e-4);
    assert_int_equal(c->n_fg, 800); /* mask voxels when there is no label */
    json_t *m = load_json(c->json);
    assert_string_equal(json_string_value(json_object_get(m, "crop_by")), "mask");
    assert_string_equal(json_string_value(json_object_get(m, "modality")), "T1w");
    json_decref(m);
    ax_case_close(c);

    /* without cropping to the mask: the image's nonzero box, zeros outside the mask */
    o.crop_to_mask = false;
    assert_ok(ax_preprocess_run(ds, &o, NULL));
    assert_ok(ax_case_open(&c, tpath("out/om/ds000001_sub-01_T1w.axc")));
    assert_int_equal(c->shape[0], 11);
    n = 11 * 14 * 15;
    s1 = 0;
    size_t inside = 0;
    for (size_t i = 0; i < n; i++) {
        if (!c->mask[i]) assert_true(c->image[i] == 0.0f);
        inside += c->mask[i];
        s1 += c->image[i];
    }
    assert_int_equal(inside, 800);
    assert_true(fabs(s1 / 800) < 1e-4);
    ax_case_close(c);
    ax_dataset_free(ds);
}

static void test_bad_options(void **state) {
    (void)state;
    put(tpath("bo/x.nii"), "garbage");
    ax_dataset *ds = open_ds("nifti-dir", tpath("bo"));
    ax_preprocess_opts o = pp_opts(tpath("out/bo"));
    o.spacing[0] = 1, o.spacing[1] = -1, o.spacing[2] = 1;
    assert_int_equal(ax_preprocess_run(ds, &o, NULL), AX_ERR_INVALID);
    assert_msg("preprocess: spacing (1, -1, 1): need three positive values");
    o = pp_opts(NULL);
    assert_int_equal(ax_preprocess_run(ds, &o, NULL), AX_ERR_INVALID);
    assert_msg("no output folder");
    o = pp_opts("/proc/axon-cannot-write-here");
    assert_int_equal(ax_preprocess_run(ds, &o, NULL), AX_ERR_IO);
    assert_msg("/proc/axon-cannot-write-here");
    o = pp_opts(tpath("out/bo"));
    o.threads = -2;
    assert_int_equal(ax_preprocess_run(ds, &o, NULL), AX_ERR_INVALID);
    o = pp_opts(tpath("out/bo"));
    o.split.fraction = 2;
    assert_int_equal(ax_preprocess_run(ds, &o, NULL), AX_ERR_INVALID);
    assert_msg("fraction = 2");
    ax_dataset_free(ds);
}

static ax_tensor *fixture_tensor(ax_safetensors *f, const char *name) {
    ax_tensor *t = NULL;
    if (ax_safetensors_get(f, name, &t) != AX_OK) {
        print_error("%s: %s\n", name, ax_error_message());
        fail();
    }
    return t;
}

static void test_resample_parity(void **state) {
    (void)state;
    ax_safetensors *f;
    assert_ok(ax_safetensors_open(&f, AX_TEST_FIXTURES "/preprocess/resample.safetensors"));
    ax_tensor *x = fixture_tensor(f, "image"), *y = fixture_tensor(f, "label");
    const int32_t is[3] = {5, 7, 6};
    const int32_t shapes[2][3] = {{9, 4, 6}, {3, 10, 4}};
    for (int k = 0; k < 2; k++) {
        char name[64], lname[64];
        const int32_t *os = shapes[k];
        size_t n = (size_t)os[0] * os[1] * os[2];
        snprintf(name, sizeof name, "image_%dx%dx%d", os[0], os[1], os[2]);
        snprintf(lname, sizeof lname, "label_%dx%dx%d", os[0], os[1], os[2]);
        ax_tensor *ref = fixture_tensor(f, name), *lref = fixture_tensor(f, lname);
        float *out = malloc(n * sizeof *out);
        uint8_t *lout = malloc(n);
        assert_ok(pp_resample_f32(out, os, ax_tensor_data(x), is, 1));
        assert_ok(pp_resample_u8(lout, os, ax_tensor_data(y), is));
        const float *r = ax_tensor_data(ref);
        for (size_t i = 0; i < n; i++)
            if (fabsf(out[i] - r[i]) > 1e-5f + 1e-5f * fabsf(r[i])) {
                print_error("%s voxel %zu: %g, scipy %g\n", name, i, (double)out[i], (double)r[i]);
                fail();
            }
        assert_memory_equal(lout, ax_tensor_data(lref), n);
        free(out), free(lout);
        ax_tensor_free(ref), ax_tensor_free(lref);
    }
    ax_tensor_free(x), ax_tensor_free(y);
    ax_safetensors_close(f);
}

static int setup(void **state) {
    (void)state;
    return ax_test_mkdtemp() ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_end_to_end),    cmocka_unit_test(test_spacing_and_restore),
        cmocka_unit_test(test_restore_oriented), cmocka_unit_test(test_resume),
        cmocka_unit_test(test_broken_cases),  cmocka_unit_test(test_geometry_mismatch),
        cmocka_unit_test(test_mask_crop_and_norm), cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_resample_parity),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
