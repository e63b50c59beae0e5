/* Tests for axon/volume.h: nibabel-made fixtures (every datatype in both
 * byte orders, NIfTI-2, 4D, scaling, qform-only, pixdim-only, permuted and
 * oblique orientations; tests/fixtures/nifti/make_nifti.py) read to the same
 * RAS voxels and affines as nib.as_closest_canonical; write/read round trips
 * of every datatype, little- and big-endian (the big-endian copy swapped
 * here with niftilib), .nii and .nii.gz; writing back in the original
 * orientation; rounding and clamping; and bad files, each refused with an
 * error naming the file. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test_util.h"

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <nifti2_io.h>
#include <zlib.h>

#include "axon/status.h"
#include "axon/tensor.h"
#include "axon/volume.h"

#ifndef AX_TEST_FIXTURES
#define AX_TEST_FIXTURES "tests/fixtures"
#endif
#define FIXDIR AX_TEST_FIXTURES "/nifti/"

static json_t *manifest;

static void *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static void spit(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, n, f), n);
    fclose(f);
}

static void *gunzip_file(const char *path, size_t *n) {
    gzFile g = gzopen(path, "rb");
    assert_non_null(g);
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    int r;
    while ((r = gzread(g, buf + len, (unsigned)(cap - len))) > 0) {
        len += (size_t)r;
        if (len == cap) buf = realloc(buf, cap *= 2);
    }
    assert_true(r == 0);
    gzclose(g);
    *n = len;
    return buf;
}

static int64_t nvox(const ax_volume *v) { return (int64_t)v->channels * v->shape[0] * v->shape[1] * v->shape[2]; }

static int setup_all(void **state) {
    (void)state;
    if (!ax_test_mkdtemp()) return -1;
    json_error_t e;
    manifest = json_load_file(FIXDIR "expect.json", 0, &e);
    return manifest ? 0 : -1;
}

static int teardown_all(void **state) {
    (void)state;
    DIR *d = opendir(tmpdir);
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (de->d_name[0] != '.') unlink(tpath(de->d_name));
    if (d) closedir(d);
    rmdir(tmpdir);
    json_decref(manifest);
    return 0;
}

static double jnum(json_t *a, size_t i, size_t j) { return json_number_value(json_array_get(json_array_get(a, i), j)); }

static void assert_affine_near(const double a[4][4], json_t *ref, double tol, const char *what) {
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < 4; j++)
            if (fabs(a[i][j] - jnum(ref, i, j)) > tol) {
                print_error("%s: affine[%zu][%zu] = %.9g, nibabel %.9g\n", what, i, j, a[i][j], jnum(ref, i, j));
                fail();
            }
}

/* ---- fixtures vs nibabel ---------------------------------------------------- */

static void check_fixture(json_t *fx) {
    const char *name = json_string_value(json_object_get(fx, "name"));
    char path[512];
    snprintf(path, sizeof path, FIXDIR "%s", json_string_value(json_object_get(fx, "file")));
    ax_volume *v = NULL;
    json_t *err = json_object_get(fx, "error");
    if (err) {
        ax_status s = ax_volume_read(&v, path, NULL);
        assert_int_not_equal(s, AX_OK);
        assert_null(v);
        assert_msg(path);
        assert_msg(json_string_value(err));
        return;
    }
    assert_ok(ax_volume_read(&v, path, NULL));
    json_t *shape = json_object_get(fx, "shape"), *ras = json_object_get(fx, "ras_shape");
    assert_int_equal(v->channels, json_integer_value(json_array_get(shape, 3)));
    for (int a = 0; a < 3; a++) {
        assert_int_equal(v->source.dim[a], json_integer_value(json_array_get(shape, (size_t)a)));
        assert_int_equal(v->shape[2 - a], json_integer_value(json_array_get(ras, (size_t)a)));
    }
    assert_int_equal(v->source.datatype, json_integer_value(json_object_get(fx, "datatype")));
    assert_int_equal(v->source.nifti_version, json_integer_value(json_object_get(fx, "version")));
    assert_int_equal(v->source.sform_code, json_integer_value(json_object_get(fx, "sform_code")));
    assert_int_equal(v->source.qform_code, json_integer_value(json_object_get(fx, "qform_code")));
    assert_string_equal(v->source.orientation, json_string_value(json_object_get(fx, "orientation")));
    assert_affine_near(v->source.affine, json_object_get(fx, "affine"), 1e-5, name);
    assert_affine_near(v->affine, json_object_get(fx, "ras_affine"), 1e-5, name);
    for (int a = 0; a < 3; a++) {
        int c = 2 - a; /* spacing[D, H, W] <-> affine columns k, j, i */
        double n = 0;
        for (int i = 0; i < 3; i++) n += v->affine[i][c] * v->affine[i][c];
        assert_true(fabs(v->spacing[a] - sqrt(n)) < 1e-9);
    }

    /* voxels: nibabel's canonical get_fdata(), float32, Fortran order */
    char ref[512];
    snprintf(ref, sizeof ref, FIXDIR "%s.f32", name);
    size_t nb;
    float *want = slurp(ref, &nb);
    assert_int_equal(nb, (size_t)nvox(v) * sizeof(float));
    for (int64_t i = 0; i < nvox(v); i++) {
        float g = v->data[i], w = want[i];
        if (!(fabs((double)g - w) <= 1e-6 * fmax(1.0, fabs(w)))) {
            print_error("%s: voxel %lld = %.9g, nibabel %.9g\n", name, (long long)i, g, w);
            fail();
        }
    }
    free(want);

    /* without reorientation: the file's grid, and the RAS volume is its
     * permutation by source.perm / source.flip */
    ax_volume_read_opts o = ax_volume_read_opts_default();
    o.reorient = false;
    ax_volume *f = NULL;
    assert_ok(ax_volume_read(&f, path, &o));
    assert_false(f->source.reoriented);
    assert_affine_near(f->affine, json_object_get(fx, "affine"), 1e-5, name);
    int64_t fd[3] = {f->source.dim[0], f->source.dim[1], f->source.dim[2]};
    assert_int_equal(f->shape[0], fd[2]);
    assert_int_equal(f->shape[2], fd[0]);
    const ax_volume_source *s = &v->source;
    for (int c = 0; c < v->channels; c++)
        for (int d = 0; d < v->shape[0]; d++)
            for (int h = 0; h < v->shape[1]; h++)
                for (int w = 0; w < v->shape[2]; w++) {
                    int n[3] = {w, h, d};
                    int64_t o3[3];
                    for (int a = 0; a < 3; a++)
                        o3[s->perm[a]] = s->flip[a] ? fd[s->perm[a]] - 1 - n[a] : n[a];
                    float x = v->data[(((int64_t)c * v->shape[0] + d) * v->shape[1] + h) * v->shape[2] + w];
                    float y = f->data[((c * fd[2] + o3[2]) * fd[1] + o3[1]) * fd[0] + o3[0]];
                    assert_memory_equal(&x, &y, sizeof x);
                }
    ax_volume_free(f);
    ax_volume_free(v);
}

static void test_fixtures_match_nibabel(void **state) {
    (void)state;
    size_t i, nfix = 0;
    json_t *fx;
    json_array_foreach(manifest, i, fx) {
        check_fixture(fx);
        nfix++;
    }
    assert_true(nfix >= 30);
}

static void test_big_endian_equals_little(void **state) {
    (void)state;
    /* the same values in both byte orders (orientations differ, so compare
     * the file-order voxels) */
    static const char *dts[] = {"uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "float32", "float64"};
    ax_volume_read_opts o = ax_volume_read_opts_default();
    o.reorient = false;
    for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++) {
        char le[256], be[256];
        snprintf(le, sizeof le, FIXDIR "dt_%s_le.nii", dts[k]);
        snprintf(be, sizeof be, FIXDIR "dt_%s_be.nii", dts[k]);
        ax_volume *a, *b;
        assert_ok(ax_volume_read(&a, le, &o));
        assert_ok(ax_volume_read(&b, be, &o));
        assert_int_equal(a->source.datatype, b->source.datatype);
        assert_memory_equal(a->data, b->data, (size_t)nvox(a) * sizeof(float));
        ax_volume_free(a);
        ax_volume_free(b);
    }
}

static void test_select_volume(void **state) {
    (void)state;
    const char *p = FIXDIR "4d_i16.nii.gz";
    ax_volume *all, *one;
    assert_ok(ax_volume_read(&all, p, NULL));
    assert_int_equal(all->channels, 3);
    ax_volume_read_opts o = ax_volume_read_opts_default();
    o.volume = 2;
    assert_ok(ax_volume_read(&one, p, &o));
    assert_int_equal(one->channels, 1);
    int64_t n = nvox(one);
    assert_memory_equal(one->data, all->data + 2 * n, (size_t)n * sizeof(float));
    assert_memory_equal(one->affine, all->affine, sizeof one->affine);
    ax_volume_free(one);
    o.volume = 3;
    assert_int_equal(ax_volume_read(&one, p, &o), AX_ERR_INVALID);
    assert_msg("4d_i16.nii.gz: volume 3 requested, the file has 3");
    /* a 3D file has volume 0 only */
    o.volume = 0;
    assert_ok(ax_volume_read(&one, FIXDIR "las_i16.nii", &o));
    ax_volume_free(one);
    ax_volume_free(all);
}

/* ---- write/read round trips ------------------------------------------------------ */

typedef struct dt_case {
    ax_nifti_dtype dt;
    double lo, hi; /* values to store, exactly representable in float and dt */
} dt_case;

static const dt_case dt_cases[] = {
    {AX_NIFTI_U8, 0, 255},
    {AX_NIFTI_I8, -128, 127},
    {AX_NIFTI_I16, -32768, 32767},
    {AX_NIFTI_U16, 0, 65535},
    {AX_NIFTI_I32, -2147483648.0, 2147483520.0},
    {AX_NIFTI_U32, 0, 4294967040.0},
    {AX_NIFTI_I64, -9223372036854775808.0, 9223371487098961920.0},
    {AX_NIFTI_F32, -3.0e38, 3.0e38},
    {AX_NIFTI_F64, -1.0e-30, 2.5e30},
};

static ax_volume *make_volume(int32_t c, int32_t d, int32_t h, int32_t w, double lo, double hi, int integral) {
    ax_volume *v;
    const int32_t shape[3] = {d, h, w};
    const double sp[3] = {3.0, 2.0, 1.5};
    assert_ok(ax_volume_new(&v, c, shape, sp));
    int64_t n = nvox(v);
    for (int64_t i = 0; i < n; i++) {
        double x = (double)(i % 97) - (lo < 0 ? 48 : 0);
        if (!integral) x *= 0.375;
        v->data[i] = (float)x;
    }
    v->data[0] = (float)lo;
    v->data[n - 1] = (float)hi;
    return v;
}

/* Rewrite a little-endian single-file NIfTI-1 as big-endian. */
static void make_big_endian(const char *from, const char *to) {
    size_t n;
    unsigned char *buf = slurp(from, &n);
    nifti_1_header h;
    memcpy(&h, buf, sizeof h);
    int esize = h.bitpix / 8;
    int64_t count = 1;
    for (int i = 1; i <= h.dim[0]; i++) count *= h.dim[i];
    int64_t off = (int64_t)h.vox_offset;
    assert_int_equal((size_t)(off + count * esize), n);
    swap_nifti_header(&h, 1);
    memcpy(buf, &h, sizeof h);
    if (esize > 1) nifti_swap_Nbytes(count, esize, buf + off);
    spit(to, buf, n);
    free(buf);
}

static void test_roundtrip_every_dtype(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof dt_cases / sizeof dt_cases[0]; k++) {
        const dt_case *dc = &dt_cases[k];
        int integral = dc->dt != AX_NIFTI_F32 && dc->dt != AX_NIFTI_F64;
        ax_volume *v = make_volume(2, 3, 4, 5, dc->lo, dc->hi, integral);
        v->affine[0][3] = -12.5; /* an origin, so the affine round trip means something */
        v->affine[2][3] = 7.25;
        const char *exts[] = {".nii", ".nii.gz"};
        for (int e = 0; e < 2; e++) {
            char name[64];
            snprintf(name, sizeof name, "rt_%s%s", ax_nifti_dtype_name(dc->dt), exts[e]);
            const char *p = tpath(name);
            assert_ok(ax_volume_write(v, p, AX_VOLUME_WRITE_AS_IS, dc->dt));
            ax_volume *r;
            assert_ok(ax_volume_read(&r, p, NULL));
            assert_int_equal(r->source.datatype, dc->dt);
            assert_int_equal(r->channels, 2);
            assert_memory_equal(r->shape, v->shape, sizeof r->shape);
            assert_string_equal(r->source.orientation, "RAS");
            assert_false(r->source.reoriented);
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) assert_true(fabs(r->affine[i][j] - v->affine[i][j]) < 1e-6);
            assert_memory_equal(r->data, v->data, (size_t)nvox(v) * sizeof(float));
            ax_volume_free(r);
            if (e == 0) {
                /* the same file big-endian: niftilib must swap it back */
                snprintf(name, sizeof name, "rt_%s_be.nii", ax_nifti_dtype_name(dc->dt));
                const char *be = tpath(name);
                make_big_endian(p, be);
                assert_ok(ax_volume_read(&r, be, NULL));
                assert_memory_equal(r->data, v->data, (size_t)nvox(v) * sizeof(float));
                assert_int_equal(r->source.datatype, dc->dt);
                ax_volume_free(r);
            }
        }
        ax_volume_free(v);
    }
}

static void test_write_rounds_and_clamps(void **state) {
    (void)state;
    ax_volume *v;
    const int32_t shape[3] = {1, 1, 8};
    const double sp[3] = {1, 1, 1};
    assert_ok(ax_volume_new(&v, 1, shape, sp));
    const float in[8] = {-3.0f, 2.5f, 3.5f, 300.0f, NAN, 0.49f, INFINITY, -INFINITY};
    memcpy(v->data, in, sizeof in);
    const char *p = tpath("clamp.nii");
    assert_ok(ax_volume_write(v, p, AX_VOLUME_WRITE_AS_IS, AX_NIFTI_U8));
    ax_volume *r;
    assert_ok(ax_volume_read(&r, p, NULL));
    const float u8[8] = {0, 2, 4, 255, 0, 0, 255, 0};
    assert_memory_equal(r->data, u8, sizeof u8);
    ax_volume_free(r);
    assert_ok(ax_volume_write(v, p, AX_VOLUME_WRITE_AS_IS, AX_NIFTI_I8));
    assert_ok(ax_volume_read(&r, p, NULL));
    const float i8[8] = {-3, 2, 4, 127, 0, 0, 127, -128};
    assert_memory_equal(r->data, i8, sizeof i8);
    ax_volume_free(r);
    /* float output keeps NaN/Inf; reading them back is refused by default */
    assert_ok(ax_volume_write(v, p, AX_VOLUME_WRITE_AS_IS, AX_NIFTI_F32));
    assert_int_equal(ax_volume_read(&r, p, NULL), AX_ERR_FORMAT);
    assert_msg("clamp.nii: 3 of 8 voxels are NaN or Inf");
    ax_volume_read_opts o = ax_volume_read_opts_default();
    o.allow_nonfinite = true;
    assert_ok(ax_volume_read(&r, p, &o));
    assert_true(isnan(r->data[4]) && isinf(r->data[6]) && r->data[7] < 0);
    ax_volume_free(r);
    ax_volume_free(v);
}

/* Reading the written file without reorientation gives back the source
 * file's voxels and affine. */
static void test_write_original(void **state) {
    (void)state;
    static const char *files[] = {"las_i16.nii", "lpi_u8.nii.gz", "psr_f32.nii", "oblique_f32.nii",
                                  "qform_only_i16.nii", "pixdim_only_u8.nii", "4d_i16.nii.gz",
                                  "dt_float64_be.nii", "nifti2_i32.nii.gz", "scaled_i16.nii"};
    ax_volume_read_opts raw = ax_volume_read_opts_default();
    raw.reorient = false;
    int any_reoriented = 0;
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        char src[256];
        snprintf(src, sizeof src, FIXDIR "%s", files[k]);
        ax_volume *v, *orig, *back, *again;
        assert_ok(ax_volume_read(&v, src, NULL));
        any_reoriented |= v->source.reoriented;
        const char *out = tpath("orig.nii.gz");
        /* f32 holds every fixture's scaled values exactly */
        assert_ok(ax_volume_write(v, out, AX_VOLUME_WRITE_ORIGINAL, AX_NIFTI_F32));
        assert_ok(ax_volume_read(&orig, src, &raw));
        assert_ok(ax_volume_read(&back, out, &raw));
        assert_int_equal(back->channels, orig->channels);
        assert_memory_equal(back->shape, orig->shape, sizeof back->shape);
        assert_memory_equal(back->source.dim, orig->source.dim, sizeof back->source.dim);
        assert_string_equal(back->source.orientation, orig->source.orientation);
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) assert_true(fabs(back->affine[i][j] - orig->affine[i][j]) < 1e-4);
        assert_memory_equal(back->data, orig->data, (size_t)nvox(orig) * sizeof(float));
        /* and read with reorientation, the same RAS volume as the source */
        assert_ok(ax_volume_read(&again, out, NULL));
        assert_memory_equal(again->data, v->data, (size_t)nvox(v) * sizeof(float));
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) assert_true(fabs(again->affine[i][j] - v->affine[i][j]) < 1e-4);
        /* AS_IS: the RAS volume as stored, read back without any reorientation */
        const char *as_is = tpath("asis.nii");
        assert_ok(ax_volume_write(v, as_is, AX_VOLUME_WRITE_AS_IS, AX_NIFTI_F32));
        ax_volume_free(again);
        assert_ok(ax_volume_read(&again, as_is, NULL));
        assert_false(again->source.reoriented);
        assert_memory_equal(again->data, v->data, (size_t)nvox(v) * sizeof(float));
        ax_volume_free(again);
        ax_volume_free(back);
        ax_volume_free(orig);
        ax_volume_free(v);
    }
    assert_true(any_reoriented);
}

static void test_write_original_in_source_dtype(void **state) {
    (void)state;
    /* a label map written back as u8 equals the source file's voxels */
    ax_volume *v, *a, *b;
    assert_ok(ax_volume_read(&v, FIXDIR "lpi_u8.nii.gz", NULL));
    assert_true(v->source.reoriented);
    const char *out = tpath("labels.nii.gz");
    assert_ok(ax_volume_write(v, out, AX_VOLUME_WRITE_ORIGINAL, AX_NIFTI_U8));
    ax_volume_read_opts raw = ax_volume_read_opts_default();
    raw.reorient = false;
    assert_ok(ax_volume_read(&a, FIXDIR "lpi_u8.nii.gz", &raw));
    assert_ok(ax_volume_read(&b, out, &raw));
    assert_int_equal(b->source.datatype, AX_NIFTI_U8);
    assert_memory_equal(a->data, b->data, (size_t)nvox(a) * sizeof(float));
    /* the uncompressed voxel bytes are the source's */
    size_t na, nb;
    unsigned char *ra = gunzip_file(FIXDIR "lpi_u8.nii.gz", &na), *rb = gunzip_file(out, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(ra + 352, rb + 352, na - 352);
    free(ra);
    free(rb);
    ax_volume_free(a);
    ax_volume_free(b);
    ax_volume_free(v);
}

static void test_write_nifti2_when_large(void **state) {
    (void)state;
    ax_volume *v, *r;
    const int32_t shape[3] = {1, 2, 40000};
    const double sp[3] = {1, 1, 0.5};
    assert_ok(ax_volume_new(&v, 1, shape, sp));
    for (int i = 0; i < 80000; i++) v->data[i] = (float)(i % 251);
    const char *p = tpath("wide.nii.gz");
    assert_ok(ax_volume_write(v, p, AX_VOLUME_WRITE_AS_IS, AX_NIFTI_U8));
    assert_ok(ax_volume_read(&r, p, NULL));
    assert_int_equal(r->source.nifti_version, 2);
    assert_int_equal(r->source.dim[0], 40000);
    assert_memory_equal(r->data, v->data, 80000 * sizeof(float));
    assert_true(fabs(r->spacing[2] - 0.5) < 1e-12);
    ax_volume_free(r);
    ax_volume_free(v);
}

static void test_write_errors(void **state) {
    (void)state;
    ax_volume *v;
    const int32_t shape[3] = {2, 3, 4};
    const double sp[3] = {1, 1, 1};
    assert_ok(ax_volume_new(&v, 1, shape, sp));
    assert_int_equal(ax_volume_write(v, tpath("x.img"), AX_VOLUME_WRITE_AS_IS, AX_NIFTI_F32), AX_ERR_INVALID);
    assert_msg("x.img: the name must end in .nii or .nii.gz");
    assert_int_equal(ax_volume_write(v, "/nonexistent-dir/x.nii", AX_VOLUME_WRITE_AS_IS, AX_NIFTI_F32), AX_ERR_IO);
    assert_msg("/nonexistent-dir/x.nii: cannot create a temporary file");
    assert_int_equal(ax_volume_write(v, tpath("x.nii"), AX_VOLUME_WRITE_AS_IS, (ax_nifti_dtype)128),
                     AX_ERR_INVALID);
    assert_msg("unsupported output datatype 128");
    /* ORIGINAL needs the source's grid */
    v->source.dim[0] = 5;
    assert_int_equal(ax_volume_write(v, tpath("x.nii"), AX_VOLUME_WRITE_ORIGINAL, AX_NIFTI_F32), AX_ERR_INVALID);
    assert_msg("x.nii: cannot write in the original grid");
    ax_volume_free(v);
    /* nothing half-written, no temporary left */
    DIR *d = opendir(tmpdir);
    struct dirent *de;
    while ((de = readdir(d))) {
        assert_null(strstr(de->d_name, ".tmp."));
        assert_string_not_equal(de->d_name, "x.nii");
    }
    closedir(d);
}

static void test_overwrite_is_atomic(void **state) {
    (void)state;
    ax_volume *a, *b, *r;
    const int32_t shape[3] = {2, 3, 4};
    const double sp[3] = {1, 1, 1};
    assert_ok(ax_volume_new(&a, 1, shape, sp));
    assert_ok(ax_volume_new(&b, 1, shape, sp));
    for (int i = 0; i < 24; i++) a->data[i] = 1, b->data[i] = 2;
    const char *p = tpath("over.nii.gz");
    assert_ok(ax_volume_write(a, p, AX_VOLUME_WRITE_AS_IS, AX_NIFTI_U8));
    assert_ok(ax_volume_write(b, p, AX_VOLUME_WRITE_AS_IS, AX_NIFTI_U8));
    assert_ok(ax_volume_read(&r, p, NULL));
    assert_memory_equal(r->data, b->data, sizeof(float) * 24);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    mode_t mask = umask(0);
    umask(mask);
    assert_int_equal(st.st_mode & 0777, 0666 & ~mask); /* like fopen's files, not mkstemp's 0600 */
    ax_volume_free(r);
    ax_volume_free(a);
    ax_volume_free(b);
}

/* ---- bad files ---------------------------------------------------------------- */

static void expect_bad(const char *path, ax_status code, const char *words) {
    ax_volume *v = (ax_volume *)0x1;
    ax_status s = ax_volume_read(&v, path, NULL);
    if (s != code) {
        print_error("%s: status %d, wanted %d (%s)\n", path, s, code, ax_error_message());
        fail();
    }
    assert_null(v);
    assert_msg(path);
    assert_msg(words);
}

static void test_bad_files(void **state) {
    (void)state;
    size_t n, ngz;
    unsigned char *nii = slurp(FIXDIR "las_i16.nii", &n);
    unsigned char *gz = slurp(FIXDIR "las_i16.nii.gz", &ngz);
    const char *p;

    spit(p = tpath("empty.nii"), nii, 0);
    expect_bad(p, AX_ERR_FORMAT, "empty.nii: not a NIfTI file (0 bytes)");
    spit(p = tpath("text.nii"), "hello, this is not an image at all", 34);
    expect_bad(p, AX_ERR_FORMAT, "not a NIfTI file");
    spit(p = tpath("hdr_cut.nii"), nii, 200);
    expect_bad(p, AX_ERR_FORMAT, "truncated: a NIfTI-1 header needs 348 bytes, file has 200");
    spit(p = tpath("data_cut.nii"), nii, 400);
    expect_bad(p, AX_ERR_FORMAT, "truncated: header says 120 bytes of data at offset 352, file has 400 bytes");
    spit(p = tpath("gz_cut.nii.gz"), gz, ngz / 2);
    expect_bad(p, AX_ERR_FORMAT, "truncated gzip stream");
    spit(p = tpath("gz_cut_crc.nii.gz"), gz, ngz - 3);
    expect_bad(p, AX_ERR_FORMAT, "truncated gzip stream");

    unsigned char *bad = malloc(n > ngz ? n : ngz);
    memcpy(bad, gz, ngz);
    bad[ngz - 6] ^= 0xff; /* the CRC-32 */
    spit(p = tpath("gz_crc.nii.gz"), bad, ngz);
    expect_bad(p, AX_ERR_FORMAT, "corrupt gzip data: incorrect data check");
    memcpy(bad, gz, ngz);
    for (size_t i = 20; i < 40; i++) bad[i] ^= 0x5a; /* inside the deflate stream */
    spit(p = tpath("gz_garbled.nii.gz"), bad, ngz);
    {
        ax_volume *v = NULL;
        assert_int_not_equal(ax_volume_read(&v, p, NULL), AX_OK);
        assert_null(v);
        assert_msg(p);
    }

    /* header edits: dim[2] (offset 44), datatype (70), magic (344), dim[0] (40) */
    int16_t s16;
    memcpy(bad, nii, n);
    s16 = 0;
    memcpy(bad + 44, &s16, 2);
    spit(p = tpath("zero_dim.nii"), bad, n);
    expect_bad(p, AX_ERR_FORMAT, "zero dimension: dim[2] = 0");
    s16 = -4;
    memcpy(bad + 44, &s16, 2);
    spit(p = tpath("neg_dim.nii"), bad, n);
    expect_bad(p, AX_ERR_FORMAT, "negative dimension: dim[2] = -4");
    memcpy(bad, nii, n);
    s16 = 128; /* RGB24 */
    memcpy(bad + 70, &s16, 2);
    spit(p = tpath("rgb.nii"), bad, n);
    expect_bad(p, AX_ERR_UNSUPPORTED, "unsupported datatype RGB24 (128)");
    memcpy(bad, nii, n);
    memcpy(bad + 344, "ni1", 4);
    spit(p = tpath("pair.nii"), bad, n);
    expect_bad(p, AX_ERR_UNSUPPORTED, "header/image pair");
    memcpy(bad + 344, "\0\0\0", 4);
    spit(p = tpath("analyze.nii"), bad, n);
    expect_bad(p, AX_ERR_FORMAT, "not a NIfTI file (no NIfTI-1 magic");
    memcpy(bad, nii, n);
    s16 = 9;
    memcpy(bad + 40, &s16, 2);
    spit(p = tpath("dim0.nii"), bad, n);
    expect_bad(p, AX_ERR_FORMAT, "bad number of dimensions dim[0] = 9");
    /* a header promising 4000^3 voxels in a tiny gzip: refused before allocating */
    memcpy(bad, nii, n);
    s16 = 4000;
    for (int i = 1; i <= 3; i++) memcpy(bad + 40 + 2 * i, &s16, 2);
    {
        const char *big = tpath("huge.nii.gz");
        gzFile g = gzopen(big, "wb");
        gzwrite(g, bad, (unsigned)n);
        gzclose(g);
        expect_bad(big, AX_ERR_FORMAT, "truncated or corrupt: header says 128000000000 bytes of data");
        s16 = 32767; /* 2^45 voxels: more than axon will hold */
        for (int i = 1; i <= 3; i++) memcpy(bad + 40 + 2 * i, &s16, 2);
        spit(big = tpath("huge.nii"), bad, n);
        expect_bad(big, AX_ERR_UNSUPPORTED, "32767 x 32767 x 32767 x 1 voxels is too large");
    }
    /* dim[0] = 5 with sizes 1 past the third: still a 3D volume */
    memcpy(bad, nii, n);
    s16 = 5;
    memcpy(bad + 40, &s16, 2);
    s16 = 1;
    memcpy(bad + 48, &s16, 2);
    memcpy(bad + 50, &s16, 2);
    spit(p = tpath("trailing_ones.nii"), bad, n);
    {
        ax_volume *v, *ref;
        assert_ok(ax_volume_read(&v, p, NULL));
        assert_ok(ax_volume_read(&ref, FIXDIR "las_i16.nii", NULL));
        assert_int_equal(v->channels, 1);
        assert_memory_equal(v->data, ref->data, (size_t)nvox(ref) * sizeof(float));
        ax_volume_free(v);
        ax_volume_free(ref);
    }
    expect_bad(FIXDIR "5d_u8.nii", AX_ERR_UNSUPPORTED, "5-dimensional data (dim[5] = 2); at most 4 are supported");
    expect_bad(FIXDIR "nan_f32.nii", AX_ERR_FORMAT, "2 of 60 voxels are NaN or Inf");
    expect_bad(tpath("missing.nii.gz"), AX_ERR_NOT_FOUND, "No such file or directory");
    expect_bad(tmpdir, AX_ERR_IO, "not a regular file");
    free(bad);
    free(nii);
    free(gz);
}

/* A volume large enough to be read in many slabs: with threads the slabs
 * are inflated and converted concurrently, with one thread in turn; both
 * give the same voxels, and a cut or corrupted stream still fails cleanly. */
static void test_large_slabbed_read(void **state) {
    (void)state;
    ax_volume *v, *a, *b;
    const int32_t shape[3] = {40, 96, 80};
    const double sp[3] = {2, 1, 1};
    assert_ok(ax_volume_new(&v, 3, shape, sp));
    int64_t n = nvox(v);
    for (int64_t i = 0; i < n; i++) v->data[i] = (float)((i * 7919) % 10007) - 5000.0f;
    /* PSR on disk, so reading scatters with strides */
    memset(v->source.affine, 0, sizeof v->source.affine);
    v->source.affine[0][2] = 2; /* k -> R */
    v->source.affine[1][0] = -1; /* i -> P */
    v->source.affine[2][1] = 1; /* j -> S */
    v->source.affine[3][3] = 1;
    v->source.perm[0] = 2, v->source.perm[1] = 0, v->source.perm[2] = 1;
    v->source.flip[1] = 1;
    v->source.dim[0] = 96, v->source.dim[1] = 40, v->source.dim[2] = 80;
    const char *p = tpath("large.nii.gz");
    assert_ok(ax_volume_write(v, p, AX_VOLUME_WRITE_ORIGINAL, AX_NIFTI_F64)); /* 7.4 MB: 8 slabs */
    ax_set_num_threads(2);
    assert_ok(ax_volume_read(&a, p, NULL));
    ax_set_num_threads(1);
    assert_ok(ax_volume_read(&b, p, NULL));
    ax_set_num_threads(2);
    assert_string_equal(a->source.orientation, "PSR");
    assert_memory_equal(a->shape, v->shape, sizeof a->shape);
    assert_memory_equal(a->data, v->data, (size_t)n * sizeof(float));
    assert_memory_equal(b->data, v->data, (size_t)n * sizeof(float));
    ax_volume_free(a);
    ax_volume_free(b);
    size_t ngz;
    unsigned char *gz = slurp(p, &ngz);
    const char *cut = tpath("large_cut.nii.gz");
    spit(cut, gz, ngz * 2 / 3);
    expect_bad(cut, AX_ERR_FORMAT, "truncated gzip stream: header says 7372800 bytes of data, file has ");
    for (size_t i = ngz / 2; i < ngz / 2 + 64; i++) gz[i] ^= 0xa5;
    spit(cut, gz, ngz);
    expect_bad(cut, AX_ERR_FORMAT, "corrupt gzip data");
    free(gz);
    ax_volume_free(v);
}

/* Distinct volumes read and written from several threads at once. */
typedef struct thread_job {
    int id;
    int ok;
} thread_job;

static void *read_write_job(void *arg) {
    thread_job *j = arg;
    static const char *files[] = {FIXDIR "psr_f32.nii", FIXDIR "4d_i16.nii.gz", FIXDIR "oblique_f32.nii",
                                  FIXDIR "dt_int16_be.nii"};
    const char *src = files[j->id % 4];
    j->ok = 1;
    for (int rep = 0; rep < 8 && j->ok; rep++) {
        ax_volume *a = NULL, *b = NULL;
        char out[600];
        snprintf(out, sizeof out, "%s/thread%d.nii.gz", tmpdir, j->id);
        if (ax_volume_read(&a, src, NULL) != AX_OK ||
            ax_volume_write(a, out, AX_VOLUME_WRITE_ORIGINAL, AX_NIFTI_F32) != AX_OK ||
            ax_volume_read(&b, out, NULL) != AX_OK || nvox(a) != nvox(b) ||
            memcmp(a->data, b->data, (size_t)nvox(a) * sizeof(float)) != 0)
            j->ok = 0;
        ax_volume_free(a);
        ax_volume_free(b);
    }
    return NULL;
}

static void test_threads(void **state) {
    (void)state;
    pthread_t th[8];
    thread_job jobs[8];
    for (int i = 0; i < 8; i++) {
        jobs[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, read_write_job, &jobs[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_true(jobs[i].ok);
    }
}

static void test_args_and_helpers(void **state) {
    (void)state;
    ax_volume *v = NULL;
    assert_int_equal(ax_volume_read(NULL, "x.nii", NULL), AX_ERR_INVALID);
    ax_volume_read_opts o = ax_volume_read_opts_default();
    assert_true(o.reorient && o.volume == -1 && !o.allow_nonfinite);
    o.volume = -2;
    assert_int_equal(ax_volume_read(&v, FIXDIR "las_i16.nii", &o), AX_ERR_INVALID);
    const int32_t bad_shape[3] = {0, 1, 1};
    const double sp[3] = {1, 1, 1};
    assert_int_equal(ax_volume_new(&v, 1, bad_shape, sp), AX_ERR_INVALID);
    ax_volume_free(NULL);
    assert_string_equal(ax_nifti_dtype_name(AX_NIFTI_I64), "i64");
    assert_null(ax_nifti_dtype_name(128));

    char codes[4];
    double a[4][4] = {{-2, 0, 0, 0}, {0, 2, 0, 0}, {0, 0, 2, 0}, {0, 0, 0, 1}};
    ax_affine_axcodes(a, codes);
    assert_string_equal(codes, "LAS");
    double p[4][4] = {{0, 0, 1, 0}, {-1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 0, 1}};
    ax_affine_axcodes(p, codes);
    assert_string_equal(codes, "PSR");
    /* oblique (30 degrees about z) and sheared: the closest axes */
    double t[4][4] = {{0.866, -0.5, 0.2, 0}, {0.5, 0.866, 0, 0}, {0, 0, -3, 0}, {0, 0, 0, 1}};
    ax_affine_axcodes(t, codes);
    assert_string_equal(codes, "RAI");
    double z[4][4] = {{0, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}};
    ax_affine_axcodes(z, codes);
    assert_string_equal(codes, "?AS");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures_match_nibabel),
        cmocka_unit_test(test_big_endian_equals_little),
        cmocka_unit_test(test_select_volume),
        cmocka_unit_test(test_roundtrip_every_dtype),
        cmocka_unit_test(test_write_rounds_and_clamps),
        cmocka_unit_test(test_write_original),
        cmocka_unit_test(test_write_original_in_source_dtype),
        cmocka_unit_test(test_write_nifti2_when_large),
        cmocka_unit_test(test_write_errors),
        cmocka_unit_test(test_overwrite_is_atomic),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_large_slabbed_read),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_args_and_helpers),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
