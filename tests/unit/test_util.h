/* tests/unit/test_util.h — what the cmocka tests share: assertions on
 * ax_status results and error messages, a temporary folder per test
 * program, and small file helpers. Include after <cmocka.h>.
 *
 *     static int setup(void **state) { return ax_test_tmpdir_setup(state); }
 *     ...
 *     assert_ok(ax_case_write(tpath("a.axc"), &desc));
 *     assert_int_equal(ax_case_open(&c, tpath("bad.axc")), AX_ERR_FORMAT);
 *     assert_msg("bad.axc");
 */
#ifndef AXON_TEST_UTIL_H
#define AXON_TEST_UTIL_H

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "axon/status.h"

/* The last error message contains `want` (both printed on failure). */
#define assert_msg(want)                                                                           \
    do {                                                                                           \
        if (!strstr(ax_error_message(), (want))) {                                                 \
            print_error("message: %s\nwanted:  %s\n", ax_error_message(), (want));                 \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* `hay` contains `want`. */
#define assert_has(hay, want)                                                                      \
    do {                                                                                           \
        if (!strstr((hay), (want))) {                                                              \
            print_error("text:   %s\nwanted: %s\n", (hay), (want));                                \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* `expr` returns AX_OK (else the error message is printed). */
#define assert_ok(expr)                                                                            \
    do {                                                                                           \
        if ((expr) != AX_OK) {                                                                     \
            print_error("%s failed: %s\n", #expr, ax_error_message());                             \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

/* The program's temporary folder: made by ax_test_tmpdir_setup, removed
 * with everything in it by ax_test_tmpdir_teardown. */
static char tmpdir[64];

/* A fresh folder in tmpdir (each call makes a new one); NULL on failure. */
static inline char *ax_test_mkdtemp(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/axon_test_XXXXXX");
    return mkdtemp(tmpdir);
}

static inline int ax_test_tmpdir_setup(void **state) {
    (void)state;
    return ax_test_mkdtemp() ? 0 : -1;
}

/* Remove `path` and, for a folder, everything below it. */
static inline int ax_test_rm_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return -1;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return -1;
        struct dirent *e;
        char sub[2048];
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            ax_test_rm_tree(sub);
        }
        closedir(d);
        return rmdir(path);
    }
    return unlink(path);
}

static inline int ax_test_tmpdir_teardown(void **state) {
    (void)state;
    return ax_test_rm_tree(tmpdir);
}

/* tmpdir + "/" + the formatted name, in one of 8 rotating buffers (so a
 * call may take several paths at once). */
static inline const char *tpath(const char *fmt, ...) {
    static char buf[8][1024];
    static int k;
    k = (k + 1) % 8;
    int n = snprintf(buf[k], sizeof buf[k], "%s/", tmpdir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf[k] + n, sizeof buf[k] - (size_t)n, fmt, ap);
    va_end(ap);
    return buf[k];
}

/* Write `text` to `path` (fails the test on error). */
static inline void ax_test_write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* The whole file, NUL-terminated; *n its size. Caller frees. */
static inline unsigned char *ax_test_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)len, f), (size_t)len);
    b[len] = 0;
    fclose(f);
    if (n) *n = (size_t)len;
    return b;
}

#endif
