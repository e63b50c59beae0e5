/* Test plugins for the loader tests, built in several variants from this
 * one file (see Makefile.am, "test plugins"): a good one, one per way of
 * being rejected, and a duplicate of the good one. */
#include <stdlib.h>
#include <string.h>

#include "axon/axon.h"

#ifndef AX_TEST_ABI_MAJOR
#define AX_TEST_ABI_MAJOR AX_ABI_MAJOR
#endif
#ifndef AX_TEST_ABI_MINOR
#define AX_TEST_ABI_MINOR AX_ABI_MINOR
#endif
#ifndef AX_TEST_METHOD_NAME
#define AX_TEST_METHOD_NAME "test_method"
#endif

typedef struct ax_test_state {
    int64_t n;
    char *mode;
} ax_test_state;

static ax_status ax_test_create(void **self, const ax_params *p) {
    if (ax_params_bool(p, "fail_create"))
        return AX_ERROR(AX_ERR_INVALID, "refusing to start: fail_create is set");
    ax_test_state *s = calloc(1, sizeof *s);
    if (!s) return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    s->n = ax_params_int(p, "n");
    s->mode = strdup(ax_params_string(p, "mode"));
    *self = s;
    return AX_OK;
}

static void ax_test_destroy(void *self) {
    ax_test_state *s = self;
    if (!s) return;
    free(s->mode);
    free(s);
}

static const ax_param_spec ax_test_params[] = {
    {.name = "n", .type = AX_PARAM_INT, .def = "3", .min = 1, .max = 10, .doc = "an int in [1, 10]"},
    {.name = "ratio", .type = AX_PARAM_FLOAT, .def = "0.75", .min = 0, .max = 1, .doc = "a fraction"},
    {.name = "flag", .type = AX_PARAM_BOOL, .def = "false", .doc = "a switch"},
    {.name = "mode", .type = AX_PARAM_STRING, .def = "mse", .choices = "mse|l1", .doc = "a choice"},
    {.name = "patch", .type = AX_PARAM_INT_LIST, .def = "64,64,64", .len = 3, .min = 8, .max = 512,
     .doc = "three sizes"},
    {.name = "weights", .type = AX_PARAM_FLOAT_LIST, .def = "1,0.5", .doc = "any number of floats"},
    {.name = "fail_create", .type = AX_PARAM_BOOL, .def = "false", .doc = "make create() fail"},
#ifdef AX_TEST_BAD_SPEC
    {.name = "broken", .type = AX_PARAM_INT, .def = "99", .min = 0, .max = 10, .doc = "default out of range"},
#endif
    {0}};

static const ax_method_ops ax_test_method_ops = {.create = ax_test_create, .destroy = ax_test_destroy};

static const ax_plugin ax_test_method = {
    .abi_major = AX_TEST_ABI_MAJOR,
    .abi_minor = AX_TEST_ABI_MINOR,
    .kind = AX_PLUGIN_METHOD,
    .name = AX_TEST_METHOD_NAME,
    .version = "0.1",
    .summary = "loader test plugin",
    .license = "MIT",
    .params = ax_test_params,
    .ops = &ax_test_method_ops,
#ifdef AX_TEST_OPS_SIZE
    .ops_size = AX_TEST_OPS_SIZE,
#else
    .ops_size = sizeof ax_test_method_ops,
#endif
};

#ifdef AX_TEST_GOOD
static const ax_param_spec ax_test_task_params[] = {
    {.name = "classes", .type = AX_PARAM_INT, .min = 2, .max = 1000, .doc = "required: number of classes"},
    {0}};
static const ax_task_ops ax_test_task_ops = {0};
static const ax_plugin ax_test_task = {
    AX_PLUGIN_HEADER,
    .kind = AX_PLUGIN_TASK,
    .name = "test_task",
    .version = "0.1",
    .summary = "stateless test task with a required parameter",
    .license = "MIT",
    .params = ax_test_task_params,
    .ops = &ax_test_task_ops,
    .ops_size = sizeof ax_test_task_ops,
};

static ax_status ax_test_probe(char *why, size_t n) {
    strncpy(why, "no test device on this machine", n - 1);
    why[n - 1] = '\0';
    return AX_ERR_UNSUPPORTED;
}
static const ax_backend_ops ax_test_backend_ops = {.probe = ax_test_probe};
static const ax_plugin ax_test_backend = {
    AX_PLUGIN_HEADER,
    .kind = AX_PLUGIN_BACKEND,
    .name = "test_backend",
    .version = "0.1",
    .summary = "a backend whose device is never present",
    .license = "MIT",
    .ops = &ax_test_backend_ops,
    .ops_size = sizeof ax_test_backend_ops,
};
#endif

#ifdef AX_TEST_NO_ENTRY
AX_PLUGIN_EXPORT const ax_plugin *ax_plugin_entry_misspelt(void);
AX_PLUGIN_EXPORT const ax_plugin *ax_plugin_entry_misspelt(void) { return &ax_test_method; }
#else
AX_PLUGIN_EXPORT const ax_plugin *const *ax_plugin_entry(void) {
#ifdef AX_TEST_GOOD
    static const ax_plugin *const list[] = {&ax_test_method, &ax_test_task, &ax_test_backend, NULL};
#else
    static const ax_plugin *const list[] = {&ax_test_method, NULL};
#endif
    return list;
}
#endif
