/* Tests for axon/cache.h: case files round trip (layout, alignment, every
 * optional array), truncated and corrupted files are refused with a clear
 * message, the index lists cases by split, atomic writes leave no
 * temporary files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "test_util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "axon/cache.h"
#include "axon/status.h"

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

static void write_bytes(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

static uint64_t le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static void put64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* A [2, 3, 4, 5] image, label, mask and 4 foreground points. */
typedef struct fixture {
    float image[2 * 60];
    uint8_t label[60], mask[60];
    int32_t fg[12];
} fixture;

static void make_fixture(fixture *f) {
    for (int i = 0; i < 120; i++) f->image[i] = (float)i * 0.5f - 7.0f;
    for (int i = 0; i < 60; i++) f->label[i] = (uint8_t)(i % 3), f->mask[i] = (uint8_t)(i % 2);
    int32_t pts[12] = {0, 0, 0, 1, 2, 3, 2, 3, 4, 0, 1, 2};
    memcpy(f->fg, pts, sizeof pts);
}

static ax_case_desc desc_of(const fixture *f) {
    return (ax_case_desc){.image = f->image,
                          .label = f->label,
                          .mask = f->mask,
                          .fg = f->fg,
                          .n_fg = 4,
                          .channels = 2,
                          .shape = {3, 4, 5},
                          .spacing = {1.5, 0.75, 2.0},
                          .json = "{\"name\": \"c1\", \"classes\": [1, 2]}"};
}

static int count_files(const char *prefix) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) n++;
    closedir(d);
    return n;
}

static void test_round_trip(void **state) {
    (void)state;
    fixture f;
    make_fixture(&f);
    ax_case_desc d = desc_of(&f);
    const char *p = tpath("c1.axc");
    assert_ok(ax_case_write(p, &d));
    assert_int_equal(count_files("c1.axc.tmp"), 0);

    ax_case *c;
    assert_ok(ax_case_open(&c, p));
    assert_int_equal(c->channels, 2);
    assert_int_equal(c->shape[0], 3);
    assert_int_equal(c->shape[1], 4);
    assert_int_equal(c->shape[2], 5);
    assert_true(c->spacing[0] == 1.5 && c->spacing[1] == 0.75 && c->spacing[2] == 2.0);
    assert_memory_equal(c->image, f.image, sizeof f.image);
    assert_memory_equal(c->label, f.label, 60);
    assert_memory_equal(c->mask, f.mask, 60);
    assert_int_equal(c->n_fg, 4);
    assert_memory_equal(c->fg, f.fg, sizeof f.fg);
    assert_string_equal(c->json, d.json);
    assert_string_equal(c->path, p);
    /* every array on a 4096 boundary of the mapping */
    assert_int_equal((uintptr_t)c->image % AX_CASE_ALIGN, 0);
    assert_int_equal((uintptr_t)c->label % AX_CASE_ALIGN, 0);
    assert_int_equal((uintptr_t)c->mask % AX_CASE_ALIGN, 0);
    assert_int_equal((uintptr_t)c->fg % AX_CASE_ALIGN, 0);
    ax_case_close(c);

    /* the header as documented */
    size_t n;
    unsigned char *b = read_all(p, &n);
    assert_memory_equal(b, "AXCASE1\n", 8);
    assert_int_equal(le64(b + 8), 4096);                   /* json_offset */
    assert_int_equal(le64(b + 16), strlen(d.json));        /* json_size */
    assert_int_equal(le64(b + 24), 8192);                  /* image */
    assert_int_equal(le64(b + 32), 12288);                 /* label */
    assert_int_equal(le64(b + 40), 16384);                 /* mask */
    assert_int_equal(le64(b + 48), 20480);                 /* fg */
    assert_int_equal(le64(b + 56), 4);
    assert_int_equal(n, 20480 + 48);
    for (size_t i = 104; i < 4096; i++) assert_int_equal(b[i], 0);
    free(b);

    /* rewriting replaces atomically */
    d.json = "{\"name\": \"c1\", \"v\": 2}";
    assert_ok(ax_case_write(p, &d));
    assert_ok(ax_case_open(&c, p));
    assert_string_equal(c->json, d.json);
    ax_case_close(c);
    ax_case_close(NULL);
}

static void test_optional_arrays(void **state) {
    (void)state;
    fixture f;
    make_fixture(&f);
    ax_case_desc d = desc_of(&f);
    d.label = NULL, d.mask = NULL, d.fg = NULL, d.n_fg = 0, d.json = NULL;
    const char *p = tpath("bare.axc");
    assert_ok(ax_case_write(p, &d));
    ax_case *c;
    assert_ok(ax_case_open(&c, p));
    assert_null(c->label);
    assert_null(c->mask);
    assert_null(c->fg);
    assert_int_equal(c->n_fg, 0);
    assert_string_equal(c->json, "{}");
    assert_memory_equal(c->image, f.image, sizeof f.image);
    ax_case_close(c);

    /* label only */
    d.label = f.label;
    assert_ok(ax_case_write(p, &d));
    assert_ok(ax_case_open(&c, p));
    assert_non_null(c->label);
    assert_null(c->mask);
    assert_memory_equal(c->label, f.label, 60);
    ax_case_close(c);
}

static void test_write_errors(void **state) {
    (void)state;
    fixture f;
    make_fixture(&f);
    ax_case_desc d = desc_of(&f);
    d.shape[1] = 0;
    assert_int_equal(ax_case_write(tpath("x.axc"), &d), AX_ERR_INVALID);
    assert_msg("bad shape");
    d = desc_of(&f);
    d.spacing[2] = -1;
    assert_int_equal(ax_case_write(tpath("x.axc"), &d), AX_ERR_INVALID);
    assert_msg("spacing[2]");
    d = desc_of(&f);
    d.fg = NULL;
    assert_int_equal(ax_case_write(tpath("x.axc"), &d), AX_ERR_INVALID);
    d = desc_of(&f);
    assert_int_equal(ax_case_write("/nonexistent-dir/x.axc", &d), AX_ERR_IO);
    assert_msg("/nonexistent-dir/x.axc");
    assert_int_equal(ax_case_write(NULL, &d), AX_ERR_INVALID);
}

/* Writes `b` as bad.axc and expects ax_case_open to fail with `want`. */
static void expect_bad(const unsigned char *b, size_t n, ax_status code, const char *want) {
    const char *p = tpath("bad.axc");
    write_bytes(p, b, n);
    ax_case *c = (ax_case *)1;
    ax_status st = ax_case_open(&c, p);
    if (st != code) {
        print_error("status %d (%s), wanted %d; message: %s\n", st, ax_status_str(st), code, ax_error_message());
        fail();
    }
    assert_null(c);
    assert_msg(want);
    assert_msg("bad.axc");
}

static void test_corrupt_files(void **state) {
    (void)state;
    fixture f;
    make_fixture(&f);
    ax_case_desc d = desc_of(&f);
    const char *p = tpath("good.axc");
    assert_ok(ax_case_write(p, &d));
    size_t n;
    unsigned char *good = read_all(p, &n);
    unsigned char *b = malloc(n);

    /* truncated at every interesting length */
    size_t cuts[] = {0, 7, 50, 103, 4096, 4100, 8192, 8192 + 479, 12288 + 10, 16384 + 59, 20480 + 47};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        const char *p2 = tpath("bad.axc");
        write_bytes(p2, good, cuts[k]);
        ax_case *c;
        assert_int_not_equal(ax_case_open(&c, p2), AX_OK);
        if (cuts[k] >= 104) assert_msg("truncated");
    }
    expect_bad(good, 4100, AX_ERR_FORMAT, "truncated or corrupt: metadata of 33 bytes at offset 4096, file has 4100");
    expect_bad(good, 4200, AX_ERR_FORMAT, "truncated: image needs 480 bytes at offset 8192, file has 4200");
    expect_bad(good, 20480 + 47, AX_ERR_FORMAT, "foreground list");

    memcpy(b, good, n);
    b[3] = 'X';
    expect_bad(b, n, AX_ERR_FORMAT, "bad magic");

    memcpy(b, good, n);
    put64(b + 24, 8000); /* unaligned image */
    expect_bad(b, n, AX_ERR_FORMAT, "image offset 8000 is not a multiple of 4096");

    memcpy(b, good, n);
    put64(b + 32, (uint64_t)1 << 62); /* label far past the end */
    expect_bad(b, n, AX_ERR_FORMAT, "truncated: label needs");

    memcpy(b, good, n);
    put64(b + 16, (uint64_t)-1); /* json size overflow */
    expect_bad(b, n, AX_ERR_FORMAT, "metadata");

    memcpy(b, good, n);
    b[68] = 0, b[69] = 0, b[70] = 0, b[71] = 0; /* D = 0 */
    expect_bad(b, n, AX_ERR_FORMAT, "shape [2, 0, 4, 5]");

    memcpy(b, good, n);
    b[68] = 0xff, b[69] = 0xff, b[70] = 0xff, b[71] = 0x7f; /* D huge: arrays no longer fit */
    expect_bad(b, n, AX_ERR_FORMAT, "shape");

    memcpy(b, good, n);
    memset(b + 80, 0, 8); /* spacing 0 */
    expect_bad(b, n, AX_ERR_FORMAT, "spacing[0]");

    memcpy(b, good, n);
    b[20480] = 9; /* fg point 0: d = 9 outside D = 3 */
    expect_bad(b, n, AX_ERR_FORMAT, "foreground point 0 (9, 0, 0)");

    memcpy(b, good, n);
    put64(b + 56, 1000); /* more points than voxels */
    expect_bad(b, n, AX_ERR_FORMAT, "1000 foreground points");

    memcpy(b, good, n);
    b[4096] = '['; /* metadata no longer JSON */
    expect_bad(b, n, AX_ERR_FORMAT, "corrupt metadata");

    free(b);
    free(good);

    ax_case *c;
    assert_int_equal(ax_case_open(&c, tpath("missing.axc")), AX_ERR_NOT_FOUND);
    assert_msg("missing.axc");
    assert_int_equal(ax_case_open(&c, tmpdir), AX_ERR_FORMAT);
    assert_msg("not a regular file");
    assert_int_equal(ax_case_open(NULL, p), AX_ERR_INVALID);
}

static void test_index(void **state) {
    (void)state;
    mkdir(tpath("cache"), 0777);
    write_text(tpath("cache/index.json"),
               "{\"format\": \"axon-cache\", \"version\": 1, \"channels\": 1, \"spacing\": [1, 1, 1],"
               " \"labels\": {}, \"cases\": ["
               "{\"name\": \"a\", \"file\": \"a.axc\", \"subject\": \"s1\", \"split\": \"train\"},"
               "{\"name\": \"b\", \"file\": \"b.axc\", \"subject\": \"s2\", \"split\": \"val\"},"
               "{\"name\": \"c\", \"file\": \"c.axc\", \"subject\": \"s1\", \"split\": \"train\"},"
               "{\"name\": \"t\", \"file\": \"t.axc\", \"subject\": \"t\", \"split\": \"test\"}]}");
    char **v;
    size_t n;
    assert_ok(ax_cache_list(tpath("cache"), "train", &v, &n));
    assert_int_equal(n, 2);
    assert_string_equal(v[0], tpath("cache/a.axc"));
    assert_string_equal(v[1], tpath("cache/c.axc"));
    ax_cache_paths_free(v, n);
    assert_ok(ax_cache_list(tpath("cache"), "val", &v, &n));
    assert_int_equal(n, 1);
    assert_string_equal(v[0], tpath("cache/b.axc"));
    ax_cache_paths_free(v, n);
    assert_ok(ax_cache_list(tpath("cache/"), NULL, &v, &n));
    assert_int_equal(n, 4);
    assert_string_equal(v[3], tpath("cache/t.axc"));
    ax_cache_paths_free(v, n);

    assert_int_equal(ax_cache_list(tpath("cache"), "dev", &v, &n), AX_ERR_INVALID);
    assert_msg("unknown split 'dev'");
    assert_int_equal(ax_cache_list(tpath("nowhere"), NULL, &v, &n), AX_ERR_NOT_FOUND);
    assert_msg("nowhere/index.json");

    write_text(tpath("cache/index.json"), "{\"format\": \"axon-cache\", \"version\": 1, \"cases\": [1,");
    assert_int_equal(ax_cache_list(tpath("cache"), NULL, &v, &n), AX_ERR_FORMAT);
    assert_msg("index.json:1:");
    write_text(tpath("cache/index.json"), "{\"format\": \"other\", \"version\": 1, \"cases\": []}");
    assert_int_equal(ax_cache_list(tpath("cache"), NULL, &v, &n), AX_ERR_FORMAT);
    assert_msg("'format'");
    write_text(tpath("cache/index.json"), "{\"format\": \"axon-cache\", \"version\": 2, \"cases\": []}");
    assert_int_equal(ax_cache_list(tpath("cache"), NULL, &v, &n), AX_ERR_UNSUPPORTED);
    assert_msg("version");
    write_text(tpath("cache/index.json"),
               "{\"format\": \"axon-cache\", \"version\": 1, \"cases\": [{\"file\": \"../x.axc\", \"split\": \"train\"}]}");
    assert_int_equal(ax_cache_list(tpath("cache"), NULL, &v, &n), AX_ERR_FORMAT);
    assert_msg("cases[0].file");
    write_text(tpath("cache/index.json"),
               "{\"format\": \"axon-cache\", \"version\": 1, \"cases\": [{\"file\": \"x.axc\"}]}");
    assert_int_equal(ax_cache_list(tpath("cache"), NULL, &v, &n), AX_ERR_FORMAT);
    assert_msg("cases[0].split");

    /* the atomic writer */
    assert_ok(ax_cache_write_file(tpath("cache/index.json"), "{}\n", 3));
    size_t len;
    unsigned char *b = read_all(tpath("cache/index.json"), &len);
    assert_int_equal(len, 3);
    assert_memory_equal(b, "{}\n", 3);
    free(b);
    assert_int_equal(ax_cache_write_file(tpath("nowhere/index.json"), "x", 1), AX_ERR_IO);
    assert_msg("nowhere/index.json");
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
        cmocka_unit_test(test_round_trip),     cmocka_unit_test(test_optional_arrays),
        cmocka_unit_test(test_write_errors),   cmocka_unit_test(test_corrupt_files),
        cmocka_unit_test(test_index),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
