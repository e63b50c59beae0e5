/* Errors and logging: the thread-local message, its location, levels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/log.h"
#include "axon/status.h"
#include "axon/version.h"

static void test_error_message_and_where(void **state) {
    (void)state;
    ax_error_clear();
    assert_string_equal(ax_error_message(), "");
    assert_int_equal(ax_error_status(), AX_OK);
    int line = __LINE__ + 1;
    ax_status st = AX_ERROR(AX_ERR_IO, "%s: cannot read (%d bytes)", "x.nii", 348);
    assert_int_equal(st, AX_ERR_IO);
    assert_int_equal(ax_error_status(), AX_ERR_IO);
    assert_string_equal(ax_error_message(), "x.nii: cannot read (348 bytes)");
    char where[256];
    snprintf(where, sizeof where, "%s:%d", __FILE__, line);
    assert_string_equal(ax_error_where(), where);
}

static void test_error_prefix_keeps_location(void **state) {
    (void)state;
    AX_ERROR(AX_ERR_FORMAT, "bad header");
    char where[256];
    snprintf(where, sizeof where, "%s", ax_error_where());
    assert_int_equal(ax_error_prefix("%s", "scan.nii.gz"), AX_ERR_FORMAT);
    assert_string_equal(ax_error_message(), "scan.nii.gz: bad header");
    assert_string_equal(ax_error_where(), where);
}

static void test_error_self_reference(void **state) {
    (void)state;
    AX_ERROR(AX_ERR_INVALID, "inner");
    AX_ERROR(AX_ERR_INVALID, "outer: %s", ax_error_message());
    assert_string_equal(ax_error_message(), "outer: inner");
}

static void test_error_truncates_long_message(void **state) {
    (void)state;
    char big[5000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    AX_ERROR(AX_ERR_INVALID, "%s", big);
    size_t n = strlen(ax_error_message());
    assert_true(n > 0 && n < sizeof big);
}

static void *ax_thread_body(void *arg) {
    (void)arg;
    /* A fresh thread sees no error from another thread. */
    int clean = ax_error_status() == AX_OK && ax_error_message()[0] == '\0';
    AX_ERROR(AX_ERR_NOMEM, "thread error");
    return (void *)(intptr_t)clean;
}

static void test_error_is_thread_local(void **state) {
    (void)state;
    AX_ERROR(AX_ERR_IO, "main error");
    pthread_t t;
    void *clean;
    assert_int_equal(pthread_create(&t, NULL, ax_thread_body, NULL), 0);
    pthread_join(t, &clean);
    assert_true((intptr_t)clean);
    assert_string_equal(ax_error_message(), "main error");
}

static void test_status_strings(void **state) {
    (void)state;
    assert_string_equal(ax_status_str(AX_OK), "ok");
    assert_string_equal(ax_status_str(AX_ERR_ABI), "incompatible plugin ABI");
    for (int s = AX_ERR_INTERNAL; s <= AX_OK; s++) assert_non_null(ax_status_str((ax_status)s));
    assert_string_equal(ax_status_str((ax_status)-99), "unknown status");
}

static void test_log_levels(void **state) {
    (void)state;
    ax_log_level l = AX_LOG_LEVEL_INFO;
    assert_true(ax_log_level_parse("DEBUG", &l) && l == AX_LOG_LEVEL_DEBUG);
    assert_true(ax_log_level_parse("warning", &l) && l == AX_LOG_LEVEL_WARN);
    assert_true(ax_log_level_parse("error", &l) && l == AX_LOG_LEVEL_ERROR);
    assert_false(ax_log_level_parse("loud", &l));
    assert_false(ax_log_level_parse("a-very-long-level-name", &l));
    assert_int_equal(l, AX_LOG_LEVEL_ERROR);
    ax_log_set_level(AX_LOG_LEVEL_WARN);
    assert_false(ax_log_enabled(AX_LOG_LEVEL_INFO));
    assert_true(ax_log_enabled(AX_LOG_LEVEL_ERROR));
    ax_log_set_level(AX_LOG_LEVEL_OFF);
    assert_false(ax_log_enabled(AX_LOG_LEVEL_ERROR));
    ax_log_set_level(AX_LOG_LEVEL_INFO);
    assert_string_equal(ax_log_level_name(AX_LOG_LEVEL_DEBUG), "debug");
}

static void test_version(void **state) {
    (void)state;
    assert_string_equal(ax_version(), AX_VERSION_STRING);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_message_and_where),
        cmocka_unit_test(test_error_prefix_keeps_location),
        cmocka_unit_test(test_error_self_reference),
        cmocka_unit_test(test_error_truncates_long_message),
        cmocka_unit_test(test_error_is_thread_local),
        cmocka_unit_test(test_status_strings),
        cmocka_unit_test(test_log_levels),
        cmocka_unit_test(test_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
