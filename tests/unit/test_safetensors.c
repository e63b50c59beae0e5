/* Tests for axon/safetensors.h: round trips of every dtype (0-dim, empty,
 * non-contiguous), metadata, zero-copy views outliving the handle, every
 * kind of malformed file (with the wording of its error), files written by
 * Python, and byte identity with Python's writer (fixtures from
 * tests/fixtures/safetensors/make_fixtures.py). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "axon/safetensors.h"
#include "axon/status.h"
#include "axon/tensor.h"

#ifndef AX_TEST_FIXTURES
#define AX_TEST_FIXTURES "tests/fixtures"
#endif
#define FIXTURE(name) AX_TEST_FIXTURES "/safetensors/" name

/* ---- helpers ------------------------------------------------------------ */

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Read a whole file; *n its size. Caller frees. */
static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    assert_true(len >= 0);
    rewind(f);
    unsigned char *b = malloc((size_t)len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* A crafted file: 8-byte length of `json` (or `len_override` if nonzero),
 * the JSON, then `ndata` bytes of data (0x11 each). Returns its path. */
static const char *craft(const char *name, const char *json, size_t ndata, uint64_t len_override) {
    size_t nj = strlen(json);
    uint64_t len = len_override ? len_override : nj;
    unsigned char *b = calloc(8 + nj + ndata + 1, 1);
    assert_non_null(b);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(len >> (8 * i));
    memcpy(b + 8, json, nj);
    memset(b + 8 + nj, 0x11, ndata);
    const char *p = tpath(name);
    write_bytes(p, b, 8 + nj + ndata);
    free(b);
    return p;
}

/* Opening `path` fails with `status` and a message holding `want` and the path. */
static void expect_open_error(const char *path, ax_status status, const char *want) {
    ax_safetensors *f = (ax_safetensors *)(uintptr_t)1;
    ax_error_clear();
    ax_status st = ax_safetensors_open(&f, path);
    if (st != status) print_error("%s: status %d, wanted %d (%s)\n", path, st, status, ax_error_message());
    assert_int_equal(st, status);
    assert_null(f);
    assert_msg(path);
    assert_msg(want);
}

static void expect_crafted_error(const char *json, size_t ndata, ax_status status, const char *want) {
    expect_open_error(craft("bad.safetensors", json, ndata, 0), status, want);
}

/* Tensor of `dtype` and `shape` with element i = f(i). */
static double val(ax_dtype dtype, int64_t i) {
    switch (dtype) {
    case AX_DTYPE_U8: return (double)((i * 37 + 3) % 256);
    case AX_DTYPE_I32: return (double)(i * 1000 - 7);
    case AX_DTYPE_I64: return (double)(i * 100000 - 12);
    default: return (double)i * 0.5 - 1.25; /* exact in f32, bf16, f16 */
    }
}

static ax_tensor *make(ax_dtype dtype, int ndim, const int64_t *shape) {
    ax_tensor *t;
    assert_ok(ax_tensor_empty(&t, ndim, shape, dtype));
    for (int64_t i = 0; i < ax_tensor_numel(t); i++) ax_tensor_set(t, i, val(dtype, i));
    return t;
}

static void assert_same(const ax_tensor *a, const ax_tensor *b) {
    assert_int_equal(a->dtype, b->dtype);
    assert_int_equal(a->ndim, b->ndim);
    for (int d = 0; d < a->ndim; d++) assert_int_equal(a->shape[d], b->shape[d]);
    for (int64_t i = 0; i < ax_tensor_numel(a); i++) {
        if (ax_tensor_get(a, i) != ax_tensor_get(b, i)) {
            print_error("element %lld: %g != %g\n", (long long)i, ax_tensor_get(a, i), ax_tensor_get(b, i));
            fail();
        }
    }
}

static void assert_values(const ax_tensor *t, ax_dtype dtype, int ndim, const int64_t *shape, const double *v) {
    assert_int_equal(t->dtype, dtype);
    assert_int_equal(t->ndim, ndim);
    for (int d = 0; d < ndim; d++) assert_int_equal(t->shape[d], shape[d]);
    for (int64_t i = 0; i < ax_tensor_numel(t); i++) assert_true(ax_tensor_get(t, i) == v[i]);
}

static ax_tensor *get(const ax_safetensors *f, const char *name) {
    ax_tensor *t = NULL;
    assert_ok(ax_safetensors_get(f, name, &t));
    assert_non_null(t);
    return t;
}

/* Entries of tmpdir other than "." and "..". */
static int dir_entries(void) {
    DIR *d = opendir(tmpdir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void clean_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            clean_dir(p);
            rmdir(p);
        } else {
            unlink(p);
        }
    }
    closedir(d);
}

static int setup(void **state) {
    (void)state;
    clean_dir(tmpdir);
    return 0;
}

/* ---- round trips ---------------------------------------------------------- */

static void test_roundtrip_every_dtype(void **state) {
    (void)state;
    static const ax_dtype dtypes[] = {AX_DTYPE_F32, AX_DTYPE_BF16, AX_DTYPE_F16,
                                      AX_DTYPE_I32, AX_DTYPE_I64,  AX_DTYPE_U8};
    enum { ND = sizeof dtypes / sizeof dtypes[0], PER = 5 };
    ax_tensor *ts[ND * PER];
    char names[ND * PER][32];
    const char *np[ND * PER];
    const ax_tensor *tp[ND * PER];
    for (int k = 0; k < ND; k++) {
        ax_dtype d = dtypes[k];
        const char *dn = ax_dtype_name(d);
        ax_tensor *base;
        ts[k * PER + 0] = make(d, 2, (int64_t[]){2, 3});
        ts[k * PER + 1] = make(d, 0, NULL);
        ts[k * PER + 2] = make(d, 2, (int64_t[]){0, 3});
        /* non-contiguous: a transpose, and a strided slice of a 3-D tensor */
        base = make(d, 2, (int64_t[]){3, 4});
        assert_ok(ax_tensor_transpose(&ts[k * PER + 3], base, 0, 1));
        ax_tensor_free(base);
        base = make(d, 3, (int64_t[]){2, 5, 3});
        assert_ok(ax_tensor_slice(&ts[k * PER + 4], base, 1, 1, 5, 2));
        ax_tensor_free(base);
        assert_false(ax_tensor_is_contiguous(ts[k * PER + 3]));
        assert_false(ax_tensor_is_contiguous(ts[k * PER + 4]));
        static const char *const kinds[PER] = {"mat", "scalar", "empty", "transposed", "sliced"};
        for (int j = 0; j < PER; j++) snprintf(names[k * PER + j], sizeof names[0], "%s.%s", dn, kinds[j]);
    }
    for (int i = 0; i < ND * PER; i++) np[i] = names[i], tp[i] = ts[i];

    const char *path = tpath("all.safetensors");
    assert_ok(ax_safetensors_save(path, ND * PER, np, tp, 0, NULL, NULL));
    assert_int_equal(dir_entries(), 1); /* no temporary file left */

    ax_safetensors *f;
    assert_ok(ax_safetensors_open(&f, path));
    assert_int_equal(ax_safetensors_count(f), ND * PER);
    assert_int_equal(ax_safetensors_metadata_count(f), 0);
    assert_null(ax_safetensors_metadata(f, "anything"));
    assert_null(ax_safetensors_name(f, ND * PER));
    /* file order: I64, F32, I32, BF16, F16, U8, then by name (empty ones first at a shared offset) */
    assert_string_equal(ax_safetensors_name(f, 0), "i64.empty");
    assert_string_equal(ax_safetensors_name(f, ND * PER - 1), "u8.transposed");
    for (int i = 0; i < ND * PER; i++) {
        ax_tensor *t = get(f, np[i]);
        assert_true(ax_tensor_is_contiguous(t));
        assert_same(t, ts[i]);
        ax_tensor_free(t);
    }
    ax_safetensors_close(f);
    for (int i = 0; i < ND * PER; i++) ax_tensor_free(ts[i]);
}

static void test_roundtrip_metadata(void **state) {
    (void)state;
    ax_tensor *t = make(AX_DTYPE_F32, 1, (int64_t[]){4});
    const char *keys[] = {"step", "arch", "plan", "empty", "utf8"};
    const char *vals[] = {"1200", "unet3d", "{\"encoder\": [\"enc.*\"]}\n\t\\", "", "\xc3\xa9\xe2\x9c\x93"};
    const char *path = tpath("meta.safetensors");
    assert_ok(ax_safetensors_save(path, 1, (const char *[]){"w"}, (const ax_tensor *[]){t}, 5, keys, vals));
    ax_safetensors *f;
    assert_ok(ax_safetensors_open(&f, path));
    assert_int_equal(ax_safetensors_metadata_count(f), 5);
    /* written sorted by key */
    static const char *const sorted[] = {"arch", "empty", "plan", "step", "utf8"};
    for (size_t i = 0; i < 5; i++) assert_string_equal(ax_safetensors_metadata_key(f, i), sorted[i]);
    assert_null(ax_safetensors_metadata_key(f, 5));
    for (int i = 0; i < 5; i++) assert_string_equal(ax_safetensors_metadata(f, keys[i]), vals[i]);
    assert_null(ax_safetensors_metadata(f, "missing"));
    assert_null(ax_safetensors_metadata(f, "w"));
    ax_tensor *w = get(f, "w");
    assert_same(w, t);
    ax_tensor_free(w);
    ax_safetensors_close(f);

    /* metadata only, no tensors */
    assert_ok(ax_safetensors_save(path, 0, NULL, NULL, 1, keys, vals));
    assert_ok(ax_safetensors_open(&f, path));
    assert_int_equal(ax_safetensors_count(f), 0);
    assert_string_equal(ax_safetensors_metadata(f, "step"), "1200");
    assert_int_equal(ax_safetensors_get(f, "w", &w), AX_ERR_NOT_FOUND);
    assert_msg("no tensor named 'w' (the file has none)");
    ax_safetensors_close(f);

    /* nothing at all: "{}" plus padding */
    assert_ok(ax_safetensors_save(path, 0, NULL, NULL, 0, NULL, NULL));
    size_t n;
    unsigned char *b = read_bytes(path, &n);
    assert_int_equal(n, 16);
    assert_memory_equal(b, "\x08\0\0\0\0\0\0\0{}      ", 16);
    free(b);
    assert_ok(ax_safetensors_open(&f, path));
    assert_int_equal(ax_safetensors_count(f), 0);
    ax_safetensors_close(f);
    ax_tensor_free(t);
}

/* Header padding: 8 + N is a multiple of 8 for every name length. */
static void test_header_padding(void **state) {
    (void)state;
    ax_tensor *t = make(AX_DTYPE_U8, 1, (int64_t[]){3});
    char name[20] = "";
    const char *path = tpath("pad.safetensors");
    for (int len = 1; len < 17; len++) {
        name[len - 1] = 'a';
        assert_ok(ax_safetensors_save(path, 1, (const char *[]){name}, (const ax_tensor *[]){t}, 0, NULL, NULL));
        size_t n;
        unsigned char *b = read_bytes(path, &n);
        uint64_t h = 0;
        for (int i = 7; i >= 0; i--) h = h << 8 | b[i];
        assert_int_equal(h % 8, 0);
        assert_int_equal(n, 8 + h + 3);
        assert_true(b[8 + h - 1] == '}' || b[8 + h - 1] == ' ');
        free(b);
    }
    ax_tensor_free(t);
}

/* ---- zero copy ------------------------------------------------------------ */

static void test_view_outlives_close(void **state) {
    (void)state;
    ax_tensor *a = make(AX_DTYPE_F32, 2, (int64_t[]){4, 4}), *b = make(AX_DTYPE_I64, 1, (int64_t[]){3});
    const char *path = tpath("view.safetensors");
    assert_ok(ax_safetensors_save(path, 2, (const char *[]){"a", "b"}, (const ax_tensor *[]){a, b}, 0, NULL, NULL));

    ax_safetensors *f;
    assert_ok(ax_safetensors_open(&f, path));
    ax_tensor *ra = get(f, "a"), *rb = get(f, "b"), *ra2 = get(f, "a");
    /* zero copy: both views of "a" are the same bytes of the mapping */
    assert_ptr_equal(ax_tensor_data(ra), ax_tensor_data(ra2));
    assert_int_equal(ra->storage->nbytes, 64);
    ax_safetensors_close(f);
    assert_same(ra, a);
    ax_tensor_free(ra2);
    assert_same(rb, b);
    ax_tensor_free(rb);
    assert_same(ra, a); /* still mapped while ra lives */

    /* copy-on-write: writing a view never changes the file */
    ax_tensor_set(ra, 0, 99.0);
    assert_true(ax_tensor_get(ra, 0) == 99.0);
    assert_ok(ax_safetensors_open(&f, path));
    ax_tensor *again = get(f, "a");
    assert_same(again, a);
    ax_tensor_free(again);

    /* saving over the open file replaces it; old views keep the old bytes */
    ax_tensor *c = make(AX_DTYPE_F32, 1, (int64_t[]){2});
    assert_ok(ax_safetensors_save(path, 1, (const char *[]){"a"}, (const ax_tensor *[]){c}, 0, NULL, NULL));
    ax_tensor *old = get(f, "a");
    assert_same(old, a);
    ax_safetensors_close(f);
    assert_ok(ax_safetensors_open(&f, path));
    ax_tensor *fresh = get(f, "a");
    assert_same(fresh, c);
    ax_safetensors_close(f);
    ax_tensor_free(fresh);
    ax_tensor_free(old);
    ax_tensor_free(ra);
    ax_tensor_free(a);
    ax_tensor_free(b);
    ax_tensor_free(c);
    ax_safetensors_close(NULL);
}

/* Data misaligned for its dtype comes back as an aligned copy. */
static void test_unaligned(void **state) {
    (void)state;
    /* header of 95 bytes: data starts at 103, so no tensor is aligned */
    const char *json = "{\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                       "\"f\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[1,9]}}";
    float vals[2] = {1.5f, -3.25f};
    size_t nj = strlen(json);
    unsigned char buf[256] = {0};
    buf[0] = (unsigned char)nj;
    memcpy(buf + 8, json, nj);
    buf[8 + nj] = 7;
    memcpy(buf + 8 + nj + 1, vals, sizeof vals);
    const char *path = tpath("unaligned.safetensors");
    write_bytes(path, buf, 8 + nj + 9);
    ax_safetensors *f;
    assert_ok(ax_safetensors_open(&f, path));
    ax_tensor *t = get(f, "f"), *b = get(f, "b");
    assert_int_equal((uintptr_t)ax_tensor_data(t) % 4, 0);
    assert_values(t, AX_DTYPE_F32, 1, (int64_t[]){2}, (double[]){1.5, -3.25});
    assert_values(b, AX_DTYPE_U8, 1, (int64_t[]){1}, (double[]){7});
    ax_safetensors_close(f);
    ax_tensor_free(t);
    ax_tensor_free(b);
}

/* ---- files written by Python ------------------------------------------------ */

static void test_reads_python_torch(void **state) {
    (void)state;
    ax_safetensors *f;
    assert_ok(ax_safetensors_open(&f, FIXTURE("torch_ref.safetensors")));
    static const char *const order[] = {"idx",   "z.none", "empty",  "enc.b", "enc.w", "scale",
                                        "count", "h.bf16", "h.f16",  "mask",  "odd \"name\"\\\xc3\xa9\t/x",
                                        "u8.scalar"};
    assert_int_equal(ax_safetensors_count(f), 12);
    for (size_t i = 0; i < 12; i++) assert_string_equal(ax_safetensors_name(f, i), order[i]);
    assert_string_equal(ax_safetensors_metadata(f, "arch"), "unet3d");
    assert_string_equal(ax_safetensors_metadata(f, "note"),
                        "quote \" backslash \\ newline \n tab \t e-acute \xc3\xa9 ctrl \x01");
    assert_string_equal(ax_safetensors_metadata(f, "step"), "1200");

    struct {
        const char *name;
        ax_dtype dtype;
        int ndim;
        int64_t shape[2];
        double v[6];
    } want[] = {
        {"enc.w", AX_DTYPE_F32, 2, {2, 3}, {-1, 0, 1, -0.5, 0.5, 1.5}},
        {"enc.b", AX_DTYPE_F32, 1, {3}, {0.25, -2, 1024}},
        {"scale", AX_DTYPE_F32, 0, {0}, {3.5}},
        {"empty", AX_DTYPE_F32, 2, {0, 4}, {0}},
        {"h.bf16", AX_DTYPE_BF16, 1, {4}, {1, -2, 0.5, 3}},
        {"h.f16", AX_DTYPE_F16, 2, {2, 2}, {0.125, -65504, 6, 0}},
        {"idx", AX_DTYPE_I64, 1, {3}, {-1, 1099511627776.0, 7}},
        {"z.none", AX_DTYPE_I64, 1, {0}, {0}},
        {"count", AX_DTYPE_I32, 2, {2, 1}, {5, -6}},
        {"mask", AX_DTYPE_U8, 1, {5}, {0, 1, 2, 254, 255}},
        {"odd \"name\"\\\xc3\xa9\t/x", AX_DTYPE_U8, 1, {1}, {42}},
        {"u8.scalar", AX_DTYPE_U8, 0, {0}, {9}},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ax_tensor *t = get(f, want[i].name);
        assert_values(t, want[i].dtype, want[i].ndim, want[i].shape, want[i].v);
        ax_tensor_free(t);
    }
    ax_safetensors_close(f);
}

static void test_reads_python_other_dtypes(void **state) {
    (void)state;
    ax_safetensors *f;
    ax_tensor *t;
    assert_ok(ax_safetensors_open(&f, FIXTURE("python_read.safetensors")));
    assert_int_equal(ax_safetensors_count(f), 4);
    assert_string_equal(ax_safetensors_name(f, 0), "f64");
    assert_string_equal(ax_safetensors_name(f, 3), "flags");
    assert_string_equal(ax_safetensors_metadata(f, "format"), "pt");
    t = get(f, "w");
    assert_values(t, AX_DTYPE_F32, 2, (int64_t[]){2, 2}, (double[]){1.5, -2.5, 0, 8});
    ax_tensor_free(t);
    t = get(f, "flags"); /* BOOL reads as U8 */
    assert_values(t, AX_DTYPE_U8, 1, (int64_t[]){3}, (double[]){1, 0, 1});
    ax_tensor_free(t);
    t = (ax_tensor *)(uintptr_t)1;
    assert_int_equal(ax_safetensors_get(f, "f64", &t), AX_ERR_UNSUPPORTED);
    assert_null(t);
    assert_msg("python_read.safetensors: tensor 'f64' has dtype F64, which axon does not support");
    assert_int_equal(ax_safetensors_get(f, "i16", &t), AX_ERR_UNSUPPORTED);
    assert_msg("tensor 'i16' has dtype I16");
    assert_int_equal(ax_safetensors_get(f, "nope", &t), AX_ERR_NOT_FOUND);
    assert_msg("python_read.safetensors: no tensor named 'nope' (4 tensors: 'f64', 'w', ...)");
    assert_int_equal(ax_safetensors_get(f, NULL, &t), AX_ERR_INVALID);
    assert_int_equal(ax_safetensors_get(NULL, "w", &t), AX_ERR_INVALID);
    assert_int_equal(ax_safetensors_get(f, "w", NULL), AX_ERR_INVALID);
    ax_safetensors_close(f);
}

/* ---- byte identity with Python's writer ------------------------------------ */

static void assert_same_file(const char *ours, const char *python) {
    size_t na, nb;
    unsigned char *a = read_bytes(ours, &na), *b = read_bytes(python, &nb);
    if (na != nb || memcmp(a, b, na) != 0) {
        size_t i = 0;
        while (i < na && i < nb && a[i] == b[i]) i++;
        print_error("%s (%zu bytes) and %s (%zu bytes) differ from byte %zu\n", ours, na, python, nb, i);
        free(a), free(b);
        fail();
    }
    free(a);
    free(b);
}

static void test_bytes_match_python_torch(void **state) {
    (void)state;
    ax_tensor *t[12], *base;
    /* enc.w: the transpose of a [3, 2] arange, saved from the strided view */
    assert_ok(ax_tensor_empty(&base, 2, (int64_t[]){3, 2}, AX_DTYPE_F32));
    for (int i = 0; i < 6; i++) ax_tensor_set(base, i, i * 0.5 - 1);
    assert_ok(ax_tensor_transpose(&t[0], base, 0, 1));
    ax_tensor_free(base);
    assert_ok(ax_tensor_from_buffer(&t[1], 1, (int64_t[]){3}, AX_DTYPE_F32, (float[]){0.25f, -2.0f, 1024.0f}, 12));
    assert_ok(ax_tensor_scalar(&t[2], 3.5, AX_DTYPE_F32));
    assert_ok(ax_tensor_zeros(&t[3], 2, (int64_t[]){0, 4}, AX_DTYPE_F32));
    assert_ok(ax_tensor_empty(&t[4], 1, (int64_t[]){4}, AX_DTYPE_BF16));
    for (int i = 0; i < 4; i++) ax_tensor_set(t[4], i, (double[]){1, -2, 0.5, 3}[i]);
    assert_ok(ax_tensor_empty(&t[5], 2, (int64_t[]){2, 2}, AX_DTYPE_F16));
    for (int i = 0; i < 4; i++) ax_tensor_set(t[5], i, (double[]){0.125, -65504, 6, 0}[i]);
    assert_ok(ax_tensor_from_buffer(&t[6], 1, (int64_t[]){3}, AX_DTYPE_I64, (int64_t[]){-1, INT64_C(1) << 40, 7}, 24));
    assert_ok(ax_tensor_empty(&t[7], 1, (int64_t[]){0}, AX_DTYPE_I64));
    assert_ok(ax_tensor_from_buffer(&t[8], 2, (int64_t[]){2, 1}, AX_DTYPE_I32, (int32_t[]){5, -6}, 8));
    assert_ok(ax_tensor_from_buffer(&t[9], 1, (int64_t[]){5}, AX_DTYPE_U8, (uint8_t[]){0, 1, 2, 254, 255}, 5));
    assert_ok(ax_tensor_from_buffer(&t[10], 1, (int64_t[]){1}, AX_DTYPE_U8, (uint8_t[]){42}, 1));
    assert_ok(ax_tensor_scalar(&t[11], 9, AX_DTYPE_U8));
    const char *names[12] = {"enc.w", "enc.b", "scale", "empty", "h.bf16", "h.f16", "idx", "z.none",
                             "count", "mask", "odd \"name\"\\\xc3\xa9\t/x", "u8.scalar"};
    /* pass them in a scrambled order: the writer sorts */
    size_t perm[12] = {11, 3, 7, 0, 9, 1, 10, 5, 2, 8, 4, 6};
    const char *pn[12];
    const ax_tensor *pt[12];
    for (int i = 0; i < 12; i++) pn[i] = names[perm[i]], pt[i] = t[perm[i]];
    const char *keys[] = {"step", "note", "arch"};
    const char *vals[] = {"1200", "quote \" backslash \\ newline \n tab \t e-acute \xc3\xa9 ctrl \x01", "unet3d"};
    const char *path = tpath("ours_torch.safetensors");
    assert_ok(ax_safetensors_save(path, 12, pn, pt, 3, keys, vals));
    assert_same_file(path, FIXTURE("torch_ref.safetensors"));
    for (int i = 0; i < 12; i++) ax_tensor_free(t[i]);
}

static void test_bytes_match_python_numpy(void **state) {
    (void)state;
    ax_tensor *a, *b, *c;
    assert_ok(ax_tensor_from_buffer(&a, 2, (int64_t[]){2, 2}, AX_DTYPE_F32, (float[]){-1.5f, -0.5f, 0.5f, 1.5f}, 16));
    assert_ok(ax_tensor_from_buffer(&b, 1, (int64_t[]){3}, AX_DTYPE_I32, (int32_t[]){7, -8, 9}, 12));
    assert_ok(ax_tensor_scalar(&c, 200, AX_DTYPE_U8));
    const char *path = tpath("ours_numpy.safetensors");
    assert_ok(ax_safetensors_save(path, 3, (const char *[]){"c", "b", "a"}, (const ax_tensor *[]){c, b, a}, 1,
                                  (const char *[]){"format"}, (const char *[]){"np"}));
    assert_same_file(path, FIXTURE("numpy_ref.safetensors"));
    ax_tensor_free(a);
    ax_tensor_free(b);
    ax_tensor_free(c);
}

/* ---- malformed files ---------------------------------------------------------- */

#define T(name, dtype, shape, offs) "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" offs "}"

static void test_open_bad_files(void **state) {
    (void)state;
    const char *p;
    expect_open_error(tpath("missing.safetensors"), AX_ERR_NOT_FOUND, "cannot open: No such file or directory");
    expect_open_error(tmpdir, AX_ERR_IO, "not a regular file");

    p = tpath("empty.safetensors");
    write_bytes(p, "", 0);
    expect_open_error(p, AX_ERR_FORMAT, "file is 0 bytes, too short");
    p = tpath("short.safetensors");
    write_bytes(p, "\x02\0\0\0", 4);
    expect_open_error(p, AX_ERR_FORMAT, "file is 4 bytes, too short");

    /* header length past the end of the file / absurd */
    expect_open_error(craft("long.safetensors", "{}", 0, 300), AX_ERR_FORMAT,
                      "header length 300 runs past the end of the file (2 bytes follow it");
    expect_open_error(craft("huge.safetensors", "{}", 0, UINT64_C(1) << 63), AX_ERR_FORMAT,
                      "header length 9223372036854775808 is over the 100000000-byte limit");
    p = tpath("text.safetensors");
    write_bytes(p, "hello, world, this is not a model", 33);
    expect_open_error(p, AX_ERR_FORMAT, "over the 100000000-byte limit");

    /* JSON */
    expect_crafted_error("{\"a\": ", 0, AX_ERR_FORMAT, "bad.safetensors: header is not valid JSON");
    expect_crafted_error("garbage!", 0, AX_ERR_FORMAT, "header is not valid JSON");
    expect_crafted_error("[1, 2]", 0, AX_ERR_FORMAT, "header is not a JSON object");
    expect_crafted_error("{} x", 0, AX_ERR_FORMAT, "header is not valid JSON");
    expect_crafted_error("{\"a\":1,\"a\":2}", 0, AX_ERR_FORMAT, "duplicate");
    expect_crafted_error("{\"w\":\"F32\"}", 0, AX_ERR_FORMAT, "tensor 'w': entry is not a JSON object");

    /* fields */
    expect_crafted_error("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, AX_ERR_FORMAT,
                         "bad.safetensors: tensor 'w': missing \"dtype\"");
    expect_crafted_error("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, AX_ERR_FORMAT,
                         "tensor 'w': missing \"shape\"");
    expect_crafted_error("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, AX_ERR_FORMAT,
                         "tensor 'w': missing \"data_offsets\"");
    expect_crafted_error("{" T("w", "F33", "[1]", "[0,4]") "}", 4, AX_ERR_FORMAT, "tensor 'w': unknown dtype \"F33\"");
    expect_crafted_error("{\"w\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, AX_ERR_FORMAT,
                         "tensor 'w': \"dtype\" is not a string");
    expect_crafted_error("{" T("w", "F32", "4", "[0,4]") "}", 4, AX_ERR_FORMAT, "tensor 'w': \"shape\" is not an array");
    expect_crafted_error("{" T("w", "F32", "[1.0]", "[0,4]") "}", 4, AX_ERR_FORMAT,
                         "tensor 'w': \"shape\" must be an array of integers");
    expect_crafted_error("{" T("w", "F32", "[2,-1]", "[0,4]") "}", 4, AX_ERR_FORMAT,
                         "tensor 'w': shape [2, -1] has a negative dim");
    expect_crafted_error("{" T("w", "F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]") "}", 4, AX_ERR_UNSUPPORTED,
                         "tensor 'w': shape has 9 dims; axon supports at most 8");
    expect_crafted_error("{" T("w", "F32", "[1]", "[0]") "}", 4, AX_ERR_FORMAT,
                         "tensor 'w': \"data_offsets\" must be [begin, end]");
    expect_crafted_error("{" T("w", "F32", "[1]", "[-4,0]") "}", 4, AX_ERR_FORMAT,
                         "tensor 'w': \"data_offsets\" must be [begin, end]");
    expect_crafted_error("{" T("w", "F32", "[1]", "{}") "}", 4, AX_ERR_FORMAT,
                         "tensor 'w': \"data_offsets\" must be [begin, end]");
    expect_crafted_error("{" T("w", "F32", "[0]", "[4,0]") "}", 4, AX_ERR_FORMAT,
                         "tensor 'w': data_offsets [4, 0] end before they begin");
    expect_crafted_error("{" T("w", "F32", "[4294967296,4294967296,4294967296]", "[0,4]") "}", 4, AX_ERR_FORMAT,
                         "tensor 'w': shape [4294967296, 4294967296, 4294967296] is too large");

    /* offsets */
    expect_open_error(craft("model.safetensors", "{" T("encoder.w", "F32", "[2,3]", "[0,12]") "}", 12, 0),
                      AX_ERR_FORMAT,
                      "model.safetensors: tensor 'encoder.w': data_offsets [0, 12] do not match shape [2, 3] of F32 "
                      "(24 bytes)");
    expect_crafted_error("{" T("s", "I64", "[]", "[0,4]") "}", 4, AX_ERR_FORMAT,
                         "tensor 's': data_offsets [0, 4] do not match shape [] of I64 (8 bytes)");
    expect_crafted_error("{" T("w", "F32", "[2]", "[0,8]") "}", 4, AX_ERR_FORMAT,
                         "tensor 'w': data_offsets [0, 8] run past the end of the data (4 bytes after the header");
    expect_crafted_error("{" T("a", "F32", "[2]", "[0,8]") "," T("b", "F32", "[2]", "[4,12]") "}", 12, AX_ERR_FORMAT,
                         "tensors 'a' [0, 8] and 'b' [4, 12] overlap");
    expect_crafted_error("{" T("b", "F32", "[2]", "[4,12]") "," T("a", "F32", "[2]", "[0,8]") "}", 12, AX_ERR_FORMAT,
                         "tensors 'a' [0, 8] and 'b' [4, 12] overlap");
    expect_crafted_error("{" T("a", "F32", "[4]", "[0,16]") "," T("e", "F32", "[0]", "[8,8]") "}", 16, AX_ERR_FORMAT,
                         "tensors 'a' [0, 16] and 'e' [8, 8] overlap");
    expect_crafted_error("{" T("a", "F32", "[1]", "[0,4]") "," T("b", "F32", "[1]", "[8,12]") "}", 12, AX_ERR_FORMAT,
                         "tensor 'b': hole of 4 bytes in the data before data_offsets [8, 12] (the data before it "
                         "ends at 4)");
    expect_crafted_error("{" T("a", "F32", "[1]", "[4,8]") "}", 8, AX_ERR_FORMAT, "tensor 'a': hole of 4 bytes");
    expect_crafted_error("{" T("a", "F32", "[1]", "[0,4]") "}", 6, AX_ERR_FORMAT,
                         "2 bytes after the end of the last tensor (the tensors cover 4 of 6 data bytes)");
    expect_crafted_error("{}", 1, AX_ERR_FORMAT, "1 bytes after the end of the last tensor");
    expect_crafted_error("{" T("b", "F4", "[3]", "[0,2]") "}", 2, AX_ERR_FORMAT,
                         "tensor 'b': shape [3] of F4 does not fill whole bytes");

    /* metadata */
    expect_crafted_error("{\"__metadata__\":[]}", 0, AX_ERR_FORMAT, "\"__metadata__\" is not a JSON object");
    expect_crafted_error("{\"__metadata__\":{\"step\":12}}", 0, AX_ERR_FORMAT, "metadata 'step' is not a string");

    /* valid odd cases still open: null metadata, extra fields, whitespace, unsupported dtype */
    ax_safetensors *f;
    assert_ok(ax_safetensors_open(&f, craft("ok.safetensors",
                                            " {\"__metadata__\":null, \"w\":{\"data_offsets\":[0,8],\"shape\":[1],"
                                            "\"dtype\":\"F64\",\"extra\":true}}   ",
                                            8, 0)));
    assert_int_equal(ax_safetensors_count(f), 1);
    assert_int_equal(ax_safetensors_metadata_count(f), 0);
    ax_safetensors_close(f);
}

/* Every truncation and many corruptions of a real file fail cleanly (or still
 * parse) without crashing; run under ASan/valgrind this is a small fuzzer. */
static void test_truncated_and_corrupted(void **state) {
    (void)state;
    size_t n;
    unsigned char *b = read_bytes(FIXTURE("torch_ref.safetensors"), &n);
    const char *p = tpath("cut.safetensors");
    for (size_t len = 0; len < n; len++) {
        write_bytes(p, b, len);
        ax_safetensors *f = NULL;
        assert_int_equal(ax_safetensors_open(&f, p), AX_ERR_FORMAT);
        assert_null(f);
    }
    static const unsigned char flips[] = {0x01, 0x20, 0x80, 0xff};
    int opened = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < sizeof flips; k++) {
            b[i] ^= flips[k];
            write_bytes(p, b, n);
            b[i] ^= flips[k];
            ax_safetensors *f = NULL;
            if (ax_safetensors_open(&f, p) != AX_OK) {
                assert_null(f);
                assert_true(strlen(ax_error_message()) > 0);
                continue;
            }
            opened++;
            for (size_t j = 0; j < ax_safetensors_count(f); j++) {
                ax_tensor *t = NULL;
                if (ax_safetensors_get(f, ax_safetensors_name(f, j), &t) == AX_OK) {
                    for (int64_t e = 0; e < ax_tensor_numel(t); e++) (void)ax_tensor_get(t, e);
                }
                ax_tensor_free(t);
            }
            ax_safetensors_close(f);
        }
    }
    assert_true(opened > 0); /* data bytes and some header bytes are harmless */
    free(b);
}

/* ---- save errors ---------------------------------------------------------- */

static void expect_save_error(const char *path, size_t n, const char *const *names, const ax_tensor *const *ts,
                              size_t nm, const char *const *k, const char *const *v, ax_status status,
                              const char *want) {
    ax_error_clear();
    ax_status st = ax_safetensors_save(path, n, names, ts, nm, k, v);
    if (st != status) print_error("status %d, wanted %d (%s)\n", st, status, ax_error_message());
    assert_int_equal(st, status);
    assert_msg(want);
}

static void test_save_errors(void **state) {
    (void)state;
    ax_tensor *a = make(AX_DTYPE_F32, 1, (int64_t[]){2}), *b = make(AX_DTYPE_I64, 1, (int64_t[]){2});
    const char *p = tpath("s.safetensors");
    const ax_tensor *ab[] = {a, b};
    expect_save_error(p, 2, (const char *[]){"x", "x"}, ab, 0, NULL, NULL, AX_ERR_INVALID,
                      "s.safetensors: duplicate tensor name 'x'");
    expect_save_error(p, 2, (const char *[]){"x", ""}, ab, 0, NULL, NULL, AX_ERR_INVALID, "names[1] is empty");
    expect_save_error(p, 2, (const char *[]){"x", NULL}, ab, 0, NULL, NULL, AX_ERR_INVALID, "names[1] is NULL");
    expect_save_error(p, 2, (const char *[]){"__metadata__", "y"}, ab, 0, NULL, NULL, AX_ERR_INVALID,
                      "cannot be named '__metadata__'");
    expect_save_error(p, 2, (const char *[]){"x", "bad\xff"}, ab, 0, NULL, NULL, AX_ERR_INVALID,
                      "names[1] is not valid UTF-8");
    expect_save_error(p, 2, (const char *[]){"x", "y"}, (const ax_tensor *[]){a, NULL}, 0, NULL, NULL,
                      AX_ERR_INVALID, "tensor 'y' is NULL");
    expect_save_error(p, 2, NULL, ab, 0, NULL, NULL, AX_ERR_INVALID, "names is NULL");
    expect_save_error(p, 1, (const char *[]){"x"}, ab, 2, (const char *[]){"k", "k"}, (const char *[]){"1", "2"},
                      AX_ERR_INVALID, "duplicate metadata key 'k'");
    expect_save_error(p, 1, (const char *[]){"x"}, ab, 1, (const char *[]){"k"}, (const char *[]){NULL},
                      AX_ERR_INVALID, "meta_values[0] is NULL");
    expect_save_error(p, 1, (const char *[]){"x"}, ab, 1, (const char *[]){"k"}, (const char *[]){"\xc0\x80"},
                      AX_ERR_INVALID, "metadata 'k' is not valid UTF-8");
    expect_save_error(NULL, 1, (const char *[]){"x"}, ab, 0, NULL, NULL, AX_ERR_INVALID, "path is NULL or empty");
    assert_int_equal(dir_entries(), 0);

    /* system errors name the path and the reason, and leave no temporary file */
    expect_save_error(tpath("no/such/dir.safetensors"), 1, (const char *[]){"x"}, ab, 0, NULL, NULL, AX_ERR_IO,
                      "no/such/dir.safetensors: cannot create the temporary file");
    assert_msg("No such file or directory");
    const char *d = tpath("adir");
    assert_int_equal(mkdir(d, 0755), 0);
    char inner[600];
    snprintf(inner, sizeof inner, "%s/keep", d);
    write_bytes(inner, "x", 1); /* a non-empty directory cannot be renamed over */
    expect_save_error(d, 1, (const char *[]){"x"}, ab, 0, NULL, NULL, AX_ERR_IO, "adir: cannot save (rename of ");
    assert_int_equal(dir_entries(), 1); /* just adir */
    ax_tensor_free(a);
    ax_tensor_free(b);
}

static void test_open_args(void **state) {
    (void)state;
    ax_safetensors *f;
    assert_int_equal(ax_safetensors_open(NULL, "x"), AX_ERR_INVALID);
    assert_int_equal(ax_safetensors_open(&f, NULL), AX_ERR_INVALID);
    assert_null(f);
    assert_int_equal(ax_safetensors_count(NULL), 0);
    assert_null(ax_safetensors_name(NULL, 0));
    assert_null(ax_safetensors_metadata(NULL, "k"));
    assert_int_equal(ax_safetensors_metadata_count(NULL), 0);
    assert_null(ax_safetensors_metadata_key(NULL, 0));
}

int main(void) {
    if (!ax_test_mkdtemp()) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_roundtrip_every_dtype, setup),
        cmocka_unit_test_setup(test_roundtrip_metadata, setup),
        cmocka_unit_test_setup(test_header_padding, setup),
        cmocka_unit_test_setup(test_view_outlives_close, setup),
        cmocka_unit_test_setup(test_unaligned, setup),
        cmocka_unit_test_setup(test_reads_python_torch, setup),
        cmocka_unit_test_setup(test_reads_python_other_dtypes, setup),
        cmocka_unit_test_setup(test_bytes_match_python_torch, setup),
        cmocka_unit_test_setup(test_bytes_match_python_numpy, setup),
        cmocka_unit_test_setup(test_open_bad_files, setup),
        cmocka_unit_test_setup(test_truncated_and_corrupted, setup),
        cmocka_unit_test_setup(test_save_errors, setup),
        cmocka_unit_test_setup(test_open_args, setup),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    clean_dir(tmpdir);
    rmdir(tmpdir);
    return failed;
}
