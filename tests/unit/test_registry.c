/* The plugin loader: every acceptance and rejection rule, and instances. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "registry.h"

/* A fresh temporary directory per test, holding copies of chosen plugins. */
typedef struct ax_fixture {
    char dir[256];
    ax_registry *reg;
} ax_fixture;

static int ax_setup(void **state) {
    ax_fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/axon-test-registry-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    if (ax_registry_new(&f->reg) != AX_OK) return -1;
    *state = f;
    return 0;
}

static int ax_teardown(void **state) {
    ax_fixture *f = *state;
    char cmd[512];
    ax_registry_free(f->reg);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0) return -1;
    free(f);
    return 0;
}

/* Copy tests/plugins/.libs/<name>.so to <dir>/<as>, first `limit` bytes
 * only when limit > 0 (a truncated file). */
static void ax_put(ax_fixture *f, const char *name, const char *as, long limit) {
    char src[512], dst[512];
    snprintf(src, sizeof src, "%s/%s.so", AX_TEST_PLUGIN_DIR, name);
    snprintf(dst, sizeof dst, "%s/%s", f->dir, as);
    FILE *in = fopen(src, "rb");
    assert_non_null(in);
    FILE *out = fopen(dst, "wb");
    assert_non_null(out);
    char buf[65536];
    size_t n;
    long total = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        if (limit > 0 && total + (long)n > limit) n = (size_t)(limit - total);
        fwrite(buf, 1, n, out);
        total += (long)n;
        if (limit > 0 && total >= limit) break;
    }
    fclose(in);
    fclose(out);
}

static const char *ax_only_problem(ax_fixture *f) {
    assert_int_equal(ax_registry_problem_count(f->reg), 1);
    return ax_registry_problem(f->reg, 0);
}

static void test_good_plugin(void **state) {
    ax_fixture *f = *state;
    ax_put(f, "good", "good.so", 0);
    assert_int_equal(ax_registry_scan_dir(f->reg, f->dir), 3);
    assert_int_equal(ax_registry_problem_count(f->reg), 0);
    const ax_registry_item *m = ax_registry_find(f->reg, AX_PLUGIN_METHOD, "test_method");
    assert_non_null(m);
    assert_non_null(strstr(m->path, "/good.so"));
    assert_true(m->available);
    assert_null(ax_registry_find(f->reg, AX_PLUGIN_AUG, "test_method"));
    assert_non_null(ax_registry_find(f->reg, 0, "test_task"));
    /* Same file again (another path to it) is not a duplicate. */
    char again[512];
    snprintf(again, sizeof again, "%s/./good.so", f->dir);
    assert_int_equal(ax_registry_load_file(f->reg, again), AX_OK);
    assert_int_equal(ax_registry_count(f->reg), 3);
}

static void test_backend_probe_unavailable(void **state) {
    ax_fixture *f = *state;
    ax_put(f, "good", "good.so", 0);
    ax_registry_scan_dir(f->reg, f->dir);
    const ax_registry_item *b = ax_registry_find(f->reg, AX_PLUGIN_BACKEND, "test_backend");
    assert_non_null(b);
    assert_false(b->available);
    assert_string_equal(b->why, "no test device on this machine");
    ax_params *p;
    assert_int_equal(ax_params_new(&p, b->plugin->params, "backend 'test_backend'"), AX_OK);
    ax_instance *inst;
    assert_int_equal(ax_instance_new(&inst, b, p), AX_ERR_UNSUPPORTED);
    assert_non_null(strstr(ax_error_message(), "unavailable here: no test device"));
}

static void test_wrong_abi_major(void **state) {
    ax_fixture *f = *state;
    ax_put(f, "wrong_major", "wrong_major.so", 0);
    assert_int_equal(ax_registry_scan_dir(f->reg, f->dir), 0);
    const char *msg = ax_only_problem(f);
    assert_non_null(strstr(msg, "wrong_major.so: "));
    assert_non_null(strstr(msg, "major must match"));
}

static void test_newer_abi_minor(void **state) {
    ax_fixture *f = *state;
    ax_put(f, "newer_minor", "newer_minor.so", 0);
    assert_int_equal(ax_registry_scan_dir(f->reg, f->dir), 0);
    assert_non_null(strstr(ax_only_problem(f), "newer than this axon"));
}

static void test_duplicate_refused_naming_both(void **state) {
    ax_fixture *f = *state;
    ax_put(f, "good", "a_good.so", 0);
    ax_put(f, "duplicate", "b_duplicate.so", 0);
    assert_int_equal(ax_registry_scan_dir(f->reg, f->dir), 3);
    const char *msg = ax_only_problem(f);
    assert_non_null(strstr(msg, "b_duplicate.so: duplicate method 'test_method'"));
    assert_non_null(strstr(msg, "a_good.so"));
    /* The first one stays. */
    assert_non_null(strstr(ax_registry_find(f->reg, AX_PLUGIN_METHOD, "test_method")->path, "a_good.so"));
}

static void test_missing_entry_point(void **state) {
    ax_fixture *f = *state;
    ax_put(f, "no_entry", "no_entry.so", 0);
    assert_int_equal(ax_registry_scan_dir(f->reg, f->dir), 0);
    assert_non_null(strstr(ax_only_problem(f), "no entry point ax_plugin_entry()"));
}

static void test_bad_ops_size(void **state) {
    ax_fixture *f = *state;
    ax_put(f, "bad_ops_size", "bad_ops_size.so", 0);
    assert_int_equal(ax_registry_scan_dir(f->reg, f->dir), 0);
    assert_non_null(strstr(ax_only_problem(f), "has ops_size 3"));
}

static void test_bad_param_spec(void **state) {
    ax_fixture *f = *state;
    ax_put(f, "bad_spec", "bad_spec.so", 0);
    assert_int_equal(ax_registry_scan_dir(f->reg, f->dir), 0);
    assert_non_null(strstr(ax_only_problem(f), "broken"));
}

static void test_garbage_file(void **state) {
    ax_fixture *f = *state;
    char path[512];
    snprintf(path, sizeof path, "%s/garbage.so", f->dir);
    FILE *g = fopen(path, "w");
    fputs("this is not a shared object\n", g);
    fclose(g);
    ax_put(f, "good", "good.so", 0);
    /* The garbage is reported; the good plugin beside it still loads. */
    assert_int_equal(ax_registry_scan_dir(f->reg, f->dir), 3);
    const char *msg = ax_only_problem(f);
    assert_non_null(strstr(msg, "garbage.so: not a shared object"));
}

static void test_truncated_file(void **state) {
    ax_fixture *f = *state;
    ax_put(f, "good", "truncated.so", 700);
    assert_int_equal(ax_registry_scan_dir(f->reg, f->dir), 0);
    const char *msg = ax_only_problem(f);
    assert_non_null(strstr(msg, "truncated.so: truncated ELF file (700 bytes"));
}

static void test_missing_dir_and_file(void **state) {
    ax_fixture *f = *state;
    assert_int_equal(ax_registry_scan_dir(f->reg, "/nonexistent/axon/plugins"), 0);
    assert_int_equal(ax_registry_problem_count(f->reg), 0);
    assert_int_equal(ax_registry_load_file(f->reg, "/nonexistent/x.so"), AX_ERR_IO);
    assert_non_null(strstr(ax_only_problem(f), "/nonexistent/x.so: cannot resolve"));
}

static void test_instance_params_and_create(void **state) {
    ax_fixture *f = *state;
    ax_put(f, "good", "good.so", 0);
    ax_registry_scan_dir(f->reg, f->dir);
    const ax_registry_item *m = ax_registry_find(f->reg, AX_PLUGIN_METHOD, "test_method");
    ax_params *p;
    ax_instance *inst;
    assert_int_equal(ax_params_new(&p, m->plugin->params, "method 'test_method'"), AX_OK);
    assert_int_equal(ax_params_set_int(p, "n", 7), AX_OK);
    assert_int_equal(ax_instance_new(&inst, m, p), AX_OK);
    assert_non_null(inst->self);
    assert_int_equal(ax_params_int(inst->params, "n"), 7);
    ax_instance_free(inst);

    /* create() failing: its message comes back prefixed with the plugin. */
    assert_int_equal(ax_params_new(&p, m->plugin->params, "method 'test_method'"), AX_OK);
    assert_int_equal(ax_params_set_bool(p, "fail_create", true), AX_OK);
    AX_ERROR(AX_ERR_IO, "a stale message from earlier");
    assert_int_equal(ax_instance_new(&inst, m, p), AX_ERR_INVALID);
    assert_null(inst);
    assert_string_equal(ax_error_message(), "method 'test_method': refusing to start: fail_create is set");

    /* A required parameter left unset is refused before create(). */
    const ax_registry_item *t = ax_registry_find(f->reg, AX_PLUGIN_TASK, "test_task");
    assert_int_equal(ax_params_new(&p, t->plugin->params, "task 'test_task'"), AX_OK);
    assert_int_not_equal(ax_instance_new(&inst, t, p), AX_OK);
    assert_non_null(strstr(ax_error_message(), "classes"));
    assert_int_equal(ax_params_new(&p, t->plugin->params, "task 'test_task'"), AX_OK);
    assert_int_equal(ax_params_set_int(p, "classes", 4), AX_OK);
    assert_int_equal(ax_instance_new(&inst, t, p), AX_OK);
    assert_null(inst->self); /* stateless: no create() */
    ax_instance_free(inst);
}

static void test_suggest(void **state) {
    ax_fixture *f = *state;
    ax_put(f, "good", "good.so", 0);
    ax_registry_scan_dir(f->reg, f->dir);
    assert_string_equal(ax_registry_suggest(f->reg, AX_PLUGIN_METHOD, "test_methd"), "test_method");
    assert_null(ax_registry_suggest(f->reg, AX_PLUGIN_METHOD, "zzzzzzzzzzzzzzzzzzzzzzzz"));
    assert_int_equal(ax_edit_distance("kitten", "sitting"), 3);
    assert_int_equal(ax_edit_distance("Mirror", "mirror"), 0);
    assert_int_equal(ax_edit_distance("", "abc"), 3);
}

static void test_build_tree_scan(void **state) {
    ax_fixture *f = *state;
    ax_registry_scan_build_tree(f->reg, AX_TEST_BUILD_PLUGINS);
    assert_non_null(ax_registry_find(f->reg, AX_PLUGIN_AUG, "mirror"));
    assert_int_equal(ax_registry_problem_count(f->reg), 0);
}

static ax_status ax_fake_apply(const void *self, ax_sample *s, ax_rng *r) {
    (void)self, (void)s, (void)r;
    return AX_OK;
}

static void test_descriptor_checks(void **state) {
    (void)state;
    static const ax_aug_ops no_apply = {0};
    static const ax_aug_ops ops = {.apply = ax_fake_apply};
    ax_plugin p = {AX_PLUGIN_HEADER, .kind = AX_PLUGIN_AUG, .name = "ok_name", .ops = &no_apply,
                   .ops_size = sizeof ops};
    assert_int_equal(ax_plugin_check(&p), AX_ERR_INVALID);
    assert_string_equal(ax_error_message(), "aug 'ok_name' has no apply()");
    p.ops = &ops;
    assert_int_equal(ax_plugin_check(&p), AX_OK);
    p.name = "Bad-Name";
    assert_int_equal(ax_plugin_check(&p), AX_ERR_INVALID);
    p.name = "ok_name";
    p.kind = (ax_plugin_kind)42;
    assert_int_equal(ax_plugin_check(&p), AX_ERR_ABI);
    p.kind = AX_PLUGIN_AUG;
    p.reserved[3] = (void *)&p;
    assert_int_equal(ax_plugin_check(&p), AX_ERR_ABI);
    assert_non_null(strstr(ax_error_message(), "reserved[3]"));
    p.reserved[3] = NULL;
    p.ops = NULL;
    assert_int_equal(ax_plugin_check(&p), AX_ERR_INVALID);
    assert_int_equal(ax_plugin_kind_parse("backend"), AX_PLUGIN_BACKEND);
    assert_int_equal(ax_plugin_kind_parse("nope"), 0);
    assert_null(ax_plugin_kind_name((ax_plugin_kind)0));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_plugin, ax_setup, ax_teardown),
        cmocka_unit_test_setup_teardown(test_backend_probe_unavailable, ax_setup, ax_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_abi_major, ax_setup, ax_teardown),
        cmocka_unit_test_setup_teardown(test_newer_abi_minor, ax_setup, ax_teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_refused_naming_both, ax_setup, ax_teardown),
        cmocka_unit_test_setup_teardown(test_missing_entry_point, ax_setup, ax_teardown),
        cmocka_unit_test_setup_teardown(test_bad_ops_size, ax_setup, ax_teardown),
        cmocka_unit_test_setup_teardown(test_bad_param_spec, ax_setup, ax_teardown),
        cmocka_unit_test_setup_teardown(test_garbage_file, ax_setup, ax_teardown),
        cmocka_unit_test_setup_teardown(test_truncated_file, ax_setup, ax_teardown),
        cmocka_unit_test_setup_teardown(test_missing_dir_and_file, ax_setup, ax_teardown),
        cmocka_unit_test_setup_teardown(test_instance_params_and_create, ax_setup, ax_teardown),
        cmocka_unit_test_setup_teardown(test_suggest, ax_setup, ax_teardown),
        cmocka_unit_test_setup_teardown(test_build_tree_scan, ax_setup, ax_teardown),
        cmocka_unit_test(test_descriptor_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
