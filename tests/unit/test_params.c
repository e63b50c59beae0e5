/* Tests for axon/params.h: defaults, typed setters and getters, text parsing,
 * the exact wording of errors, spec validation, JSON and text round trips. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/log.h"
#include "axon/params.h"
#include "axon/status.h"

static const ax_param_spec mae_params[] = {
    {.name = "mask_ratio",
     .type = AX_PARAM_FLOAT,
     .def = "0.75",
     .min = 0.0,
     .max = 1.0,
     .doc = "fraction of blocks zeroed"},
    {.name = "block",
     .type = AX_PARAM_INT,
     .def = "16",
     .min = 1,
     .max = 256,
     .doc = "edge of a masked cube, in voxels"},
    {.name = "loss",
     .type = AX_PARAM_STRING,
     .def = "mse",
     .choices = "mse|l1",
     .doc = "reconstruction loss"},
    {.name = "patch",
     .type = AX_PARAM_INT_LIST,
     .def = "160,160,160",
     .len = 3,
     .min = 8,
     .max = 1024,
     .doc = "patch size D,H,W"},
    {.name = "norm_pix", .type = AX_PARAM_BOOL, .def = "true", .doc = "normalize targets"},
    {.name = "scales", .type = AX_PARAM_FLOAT_LIST, .def = "0.5, 1", .doc = "any length"},
    {.name = "tag", .type = AX_PARAM_STRING, .def = "", .doc = "free text"},
    {.name = "offset", .type = AX_PARAM_INT, .def = "-3", .doc = "unbounded"},
    {0},
};

#define VALID "valid: mask_ratio, block, loss, patch, norm_pix, scales, tag, offset"

/* The last error message contains `want` (printed on failure). */
#define assert_msg(want)                                                                           \
    do {                                                                                           \
        if (!strstr(ax_error_message(), (want))) {                                                 \
            print_error("message: %s\nwanted:  %s\n", ax_error_message(), (want));                 \
            fail();                                                                                \
        }                                                                                          \
    } while (0)

#define assert_msg_eq(want) assert_string_equal(ax_error_message(), (want))

static int setup_mae(void **state) {
    ax_params *p = NULL;
    if (ax_params_new(&p, mae_params, "mae") != AX_OK) return -1;
    *state = p;
    return 0;
}

static int teardown(void **state) {
    ax_params_free(*state);
    return 0;
}

/* Check ax_params_text(p, key) == want. */
static void assert_text(const ax_params *p, const char *key, const char *want) {
    char *t = ax_params_text(p, key);
    assert_non_null(t);
    assert_string_equal(t, want);
    free(t);
}

static void test_type_names(void **state) {
    (void)state;
    assert_string_equal(ax_param_type_name(AX_PARAM_INT), "int");
    assert_string_equal(ax_param_type_name(AX_PARAM_FLOAT), "float");
    assert_string_equal(ax_param_type_name(AX_PARAM_BOOL), "bool");
    assert_string_equal(ax_param_type_name(AX_PARAM_STRING), "string");
    assert_string_equal(ax_param_type_name(AX_PARAM_INT_LIST), "int list");
    assert_string_equal(ax_param_type_name(AX_PARAM_FLOAT_LIST), "float list");
    assert_string_equal(ax_param_type_name((ax_param_type)0), "unknown");
    assert_string_equal(ax_param_type_name((ax_param_type)99), "unknown");
}

static void test_spec_count_find(void **state) {
    ax_params *p = *state;
    assert_int_equal(ax_param_spec_count(mae_params), 8);
    assert_int_equal(ax_param_spec_count(NULL), 0);
    assert_ptr_equal(ax_params_spec(p), mae_params);
    assert_ptr_equal(ax_params_find(p, "loss"), &mae_params[2]);
    assert_null(ax_params_find(p, "nope"));
    assert_null(ax_params_find(p, NULL));
    assert_null(ax_params_find(NULL, "loss"));
    assert_null(ax_params_spec(NULL));
}

static void test_defaults(void **state) {
    ax_params *p = *state;
    assert_true(ax_params_float(p, "mask_ratio") == 0.75);
    assert_int_equal(ax_params_int(p, "block"), 16);
    assert_string_equal(ax_params_string(p, "loss"), "mse");
    int64_t patch[4] = {0, 0, 0, -1};
    assert_int_equal(ax_params_ints(p, "patch", patch, 4), 3);
    assert_int_equal(patch[0], 160);
    assert_int_equal(patch[2], 160);
    assert_int_equal(patch[3], -1); /* untouched beyond the length */
    assert_true(ax_params_bool(p, "norm_pix"));
    double sc[2];
    assert_int_equal(ax_params_floats(p, "scales", sc, 2), 2);
    assert_true(sc[0] == 0.5 && sc[1] == 1.0);
    assert_string_equal(ax_params_string(p, "tag"), "");
    assert_int_equal(ax_params_int(p, "offset"), -3);
    for (size_t i = 0; mae_params[i].name; i++)
        assert_false(ax_params_is_set(p, mae_params[i].name));
    assert_int_equal(ax_params_check(p), AX_OK);

    assert_text(p, "mask_ratio", "0.75");
    assert_text(p, "block", "16");
    assert_text(p, "loss", "mse");
    assert_text(p, "patch", "160,160,160");
    assert_text(p, "norm_pix", "true");
    assert_text(p, "scales", "0.5,1");
    assert_text(p, "tag", "");
    assert_text(p, "offset", "-3");
    assert_null(ax_params_text(p, "nope"));
    assert_null(ax_params_text(p, NULL));
    assert_null(ax_params_text(NULL, "block"));
}

static void test_set_int(void **state) {
    ax_params *p = *state;
    assert_int_equal(ax_params_set_int(p, "block", 32), AX_OK);
    assert_int_equal(ax_params_int(p, "block"), 32);
    assert_true(ax_params_is_set(p, "block"));
    assert_false(ax_params_is_set(p, "mask_ratio"));
    /* ints are accepted for floats */
    assert_int_equal(ax_params_set_int(p, "mask_ratio", 1), AX_OK);
    assert_true(ax_params_float(p, "mask_ratio") == 1.0);
    assert_int_equal(ax_params_set_int(p, "offset", INT64_MIN), AX_OK);
    assert_true(ax_params_int(p, "offset") == INT64_MIN);
    assert_text(p, "offset", "-9223372036854775808");

    assert_int_equal(ax_params_set_int(p, "block", 0), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'block' = 0 is out of range [1, 256]");
    assert_int_equal(ax_params_set_int(p, "block", 257), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'block' = 257 is out of range [1, 256]");
    assert_int_equal(ax_params_set_int(p, "mask_ratio", 2), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'mask_ratio' = 2 is out of range [0, 1]");
    assert_int_equal(ax_params_set_int(p, "norm_pix", 1), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'norm_pix' expects a bool, got 1");
    assert_int_equal(ax_params_set_int(p, "loss", 3), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'loss' expects one of mse|l1, got 3");
    assert_int_equal(ax_params_set_int(p, "tag", 3), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'tag' expects a string, got 3");
    assert_int_equal(ax_params_set_int(p, "patch", 64), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'patch' expects an int list of 3 values in [8, 1024], got 64");
    assert_int_equal(ax_params_int(p, "block"), 32);
}

static void test_set_float(void **state) {
    ax_params *p = *state;
    assert_int_equal(ax_params_set_float(p, "mask_ratio", 0.6), AX_OK);
    assert_true(ax_params_float(p, "mask_ratio") == 0.6);
    assert_int_equal(ax_params_set_float(p, "mask_ratio", 0.0), AX_OK);
    assert_int_equal(ax_params_set_float(p, "mask_ratio", 1.0), AX_OK); /* inclusive */

    assert_int_equal(ax_params_set_float(p, "mask_ratio", 1.5), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'mask_ratio' = 1.5 is out of range [0, 1]");
    assert_int_equal(ax_params_set_float(p, "mask_ratio", -0.25), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'mask_ratio' = -0.25 is out of range [0, 1]");
    /* just outside: printed exactly, not rounded to "1" */
    assert_int_equal(ax_params_set_float(p, "mask_ratio", 1.0000001), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'mask_ratio' = 1.0000001 is out of range [0, 1]");
    assert_int_equal(ax_params_set_float(p, "mask_ratio", NAN), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'mask_ratio' expects a float in [0, 1], got nan");
    assert_int_equal(ax_params_set_float(p, "mask_ratio", INFINITY), AX_ERR_INVALID);
    assert_msg("got inf");

    /* integral doubles are accepted for int parameters */
    assert_int_equal(ax_params_set_float(p, "block", 64.0), AX_OK);
    assert_int_equal(ax_params_int(p, "block"), 64);
    assert_int_equal(ax_params_set_float(p, "block", 2.5), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'block' expects an int in [1, 256], got 2.5");
    assert_int_equal(ax_params_set_float(p, "block", 512.0), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'block' = 512 is out of range [1, 256]");
    assert_int_equal(ax_params_set_float(p, "offset", 1e19), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'offset' expects an int, got 1e+19");
    assert_int_equal(ax_params_set_float(p, "offset", 9223372036854775808.0), AX_ERR_INVALID);
    assert_int_equal(ax_params_set_float(p, "offset", -9223372036854775808.0), AX_OK);
    assert_true(ax_params_int(p, "offset") == INT64_MIN);
    assert_int_equal(ax_params_set_float(p, "offset", NAN), AX_ERR_INVALID);

    assert_int_equal(ax_params_set_float(p, "norm_pix", 0.5), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'norm_pix' expects a bool, got 0.5");
    assert_int_equal(ax_params_set_float(p, "scales", 0.5), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'scales' expects a float list, got 0.5");
    assert_int_equal(ax_params_int(p, "block"), 64);
}

static void test_set_bool(void **state) {
    ax_params *p = *state;
    assert_int_equal(ax_params_set_bool(p, "norm_pix", false), AX_OK);
    assert_false(ax_params_bool(p, "norm_pix"));
    assert_text(p, "norm_pix", "false");
    assert_true(ax_params_is_set(p, "norm_pix"));
    assert_int_equal(ax_params_set_bool(p, "block", true), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'block' expects an int in [1, 256], got true");
    assert_int_equal(ax_params_set_bool(p, "mask_ratio", false), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'mask_ratio' expects a float in [0, 1], got false");
}

static void test_set_string(void **state) {
    ax_params *p = *state;
    assert_int_equal(ax_params_set_string(p, "loss", "l1"), AX_OK);
    assert_string_equal(ax_params_string(p, "loss"), "l1");
    assert_int_equal(ax_params_set_string(p, "loss", "ssim"), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'loss' must be one of mse|l1, got \"ssim\"");
    assert_int_equal(ax_params_set_string(p, "loss", "mse "), AX_ERR_INVALID); /* exact match */
    assert_int_equal(ax_params_set_string(p, "loss", "mse|l1"), AX_ERR_INVALID);
    assert_int_equal(ax_params_set_string(p, "loss", ""), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'loss' must be one of mse|l1, got \"\"");
    assert_int_equal(ax_params_set_string(p, "loss", NULL), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'loss' expects one of mse|l1, got NULL");
    assert_string_equal(ax_params_string(p, "loss"), "l1");

    /* free strings: anything valid UTF-8, kept as is */
    assert_int_equal(ax_params_set_string(p, "tag", " run 1, \"quoted\" \xc3\xa9 "), AX_OK);
    assert_string_equal(ax_params_string(p, "tag"), " run 1, \"quoted\" \xc3\xa9 ");
    assert_int_equal(ax_params_set_string(p, "tag", "bad \xff byte"), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'tag' expects a string, got invalid UTF-8 \"bad \xff byte\"");
    assert_int_equal(ax_params_set_string(p, "tag", "line\nbreak"), AX_OK);

    /* a string is not parsed for other types; that is what set_text is for */
    assert_int_equal(ax_params_set_string(p, "mask_ratio", "0.5"), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'mask_ratio' expects a float in [0, 1], got \"0.5\"");
    assert_int_equal(ax_params_set_string(p, "block", "a\"b\n"), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'block' expects an int in [1, 256], got \"a\\\"b\\n\"");
}

static void test_string_borrowed(void **state) {
    ax_params *p = *state;
    const char *a = ax_params_string(p, "tag");
    const char *b = ax_params_string(p, "tag");
    assert_ptr_equal(a, b); /* stable until the value changes */
    char buf[8] = "xyz";
    assert_int_equal(ax_params_set_string(p, "tag", buf), AX_OK);
    buf[0] = 'Q'; /* the value is a copy */
    assert_string_equal(ax_params_string(p, "tag"), "xyz");
}

static void test_set_lists(void **state) {
    ax_params *p = *state;
    const int64_t ok[3] = {96, 128, 8};
    assert_int_equal(ax_params_set_ints(p, "patch", ok, 3), AX_OK);
    int64_t got[3] = {0};
    assert_int_equal(ax_params_ints(p, "patch", got, 3), 3);
    assert_memory_equal(got, ok, sizeof ok);
    assert_text(p, "patch", "96,128,8");
    assert_true(ax_params_is_set(p, "patch"));

    /* length only, and a short copy */
    assert_int_equal(ax_params_ints(p, "patch", NULL, 0), 3);
    int64_t one[2] = {0, -7};
    assert_int_equal(ax_params_ints(p, "patch", one, 1), 3);
    assert_int_equal(one[0], 96);
    assert_int_equal(one[1], -7);

    const int64_t two[2] = {64, 64};
    assert_int_equal(ax_params_set_ints(p, "patch", two, 2), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'patch' needs 3 values, got 2");
    assert_int_equal(ax_params_set_ints(p, "patch", two, 0), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'patch' needs 3 values, got 0");
    assert_int_equal(ax_params_set_ints(p, "patch", NULL, 0), AX_ERR_INVALID);
    const int64_t far[3] = {64, 2000, 64};
    assert_int_equal(ax_params_set_ints(p, "patch", far, 3), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'patch' element 2 of 3 = 2000 is out of range [8, 1024]");
    assert_int_equal(ax_params_set_ints(p, "patch", NULL, 3), AX_ERR_INVALID);
    assert_int_equal(ax_params_set_ints(p, "block", ok, 3), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'block' expects an int in [1, 256], got the list 96,128,8");
    assert_int_equal(ax_params_set_ints(p, "block", ok, 0), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'block' expects an int in [1, 256], got an empty list");

    /* ints convert for float lists; any length >= 1 when .len is 0 */
    const int64_t iv[4] = {1, 2, 3, 4};
    assert_int_equal(ax_params_set_ints(p, "scales", iv, 4), AX_OK);
    double f[4] = {0};
    assert_int_equal(ax_params_floats(p, "scales", f, 4), 4);
    assert_true(f[0] == 1.0 && f[3] == 4.0);
    assert_int_equal(ax_params_set_ints(p, "scales", iv, 0), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'scales' needs at least 1 value, got 0");

    const double fv[3] = {0.25, -1e-3, 1e10};
    assert_int_equal(ax_params_set_floats(p, "scales", fv, 3), AX_OK);
    assert_int_equal(ax_params_floats(p, "scales", f, 4), 3);
    assert_memory_equal(f, fv, sizeof fv);
    assert_text(p, "scales", "0.25,-0.001,10000000000");
    const double bad[2] = {1, NAN};
    assert_int_equal(ax_params_set_floats(p, "scales", bad, 2), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'scales' element 2 of 2 expects a float, got nan");

    /* integral doubles are accepted for int lists */
    const double whole[3] = {16, 32, 64};
    assert_int_equal(ax_params_set_floats(p, "patch", whole, 3), AX_OK);
    assert_text(p, "patch", "16,32,64");
    const double frac[3] = {16, 2.5, 64};
    assert_int_equal(ax_params_set_floats(p, "patch", frac, 3), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'patch' element 2 of 3 expects an int, got 2.5");
    const double small[3] = {16, 4, 64};
    assert_int_equal(ax_params_set_floats(p, "patch", small, 3), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'patch' element 2 of 3 = 4 is out of range [8, 1024]");
    assert_int_equal(ax_params_set_floats(p, "mask_ratio", fv, 1), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'mask_ratio' expects a float in [0, 1], got the list 0.25");
    assert_text(p, "patch", "16,32,64");
}

static void test_long_list(void **state) {
    ax_params *p = *state;
    enum { N = 1000 };
    int64_t *v = malloc(N * sizeof *v);
    assert_non_null(v);
    for (int k = 0; k < N; k++) v[k] = k;
    assert_int_equal(ax_params_set_ints(p, "scales", v, N), AX_OK);
    assert_int_equal(ax_params_set_ints(p, "block", v, N), AX_ERR_INVALID);
    assert_msg("got the list 0,1,2,3,"); /* cut short */
    assert_msg(",...");
    char *t = ax_params_text(p, "scales");
    assert_non_null(t);
    assert_int_equal(ax_params_set_text(p, "scales", t), AX_OK);
    assert_int_equal(ax_params_floats(p, "scales", NULL, 0), N);
    free(t);
    free(v);
}

static void test_set_text_good(void **state) {
    ax_params *p = *state;
    static const struct {
        const char *key, *text, *canon;
    } cases[] = {
        {"mask_ratio", "0.5", "0.5"},
        {"mask_ratio", " 0.25 ", "0.25"},
        {"mask_ratio", "1", "1"},
        {"mask_ratio", "1e-1", "0.1"},
        {"mask_ratio", "+.5", "0.5"},
        {"block", "32", "32"},
        {"block", "+7", "7"},
        {"block", "0016", "16"},
        {"offset", "-42", "-42"},
        {"offset", "9223372036854775807", "9223372036854775807"},
        {"norm_pix", "false", "false"},
        {"norm_pix", "TRUE", "true"},
        {"norm_pix", "0", "false"},
        {"norm_pix", "1", "true"},
        {"norm_pix", "Yes", "true"},
        {"norm_pix", "no", "false"},
        {"loss", "l1", "l1"},
        {"tag", "  spaced, with commas ", "  spaced, with commas "},
        {"tag", "", ""},
        {"patch", "8,16,32", "8,16,32"},
        {"patch", " 8 , 16,\t32 ", "8,16,32"},
        {"patch", "+8,0016,1024", "8,16,1024"},
        {"scales", "1", "1"},
        {"scales", "0.5, 2.5,1e3", "0.5,2.5,1000"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        if (ax_params_set_text(p, cases[k].key, cases[k].text) != AX_OK) {
            print_error("%s=%s: %s\n", cases[k].key, cases[k].text, ax_error_message());
            fail();
        }
        assert_true(ax_params_is_set(p, cases[k].key));
        assert_text(p, cases[k].key, cases[k].canon);
    }
    assert_true(ax_params_bool(p, "norm_pix") == false);
    assert_int_equal(ax_params_int(p, "offset"), INT64_MAX);
}

static void test_set_text_bad(void **state) {
    ax_params *p = *state;
    static const struct {
        const char *key, *text, *msg;
    } cases[] = {
        {"mask_ratio", "abc", "mae: parameter 'mask_ratio' expects a float in [0, 1], got \"abc\""},
        {"mask_ratio", "", "mae: parameter 'mask_ratio' expects a float in [0, 1], got \"\""},
        {"mask_ratio", "0.5x", "got \"0.5x\""},
        {"mask_ratio", "nan", "got \"nan\""},
        {"mask_ratio", "inf", "got \"inf\""},
        {"mask_ratio", "0x1p-1", "got \"0x1p-1\""},
        {"mask_ratio", "0.5 0.5", "got \"0.5 0.5\""},
        {"mask_ratio", "1.5", "mae: parameter 'mask_ratio' = 1.5 is out of range [0, 1]"},
        {"offset", "1e400", "mae: parameter 'offset' expects an int, got \"1e400\""},
        {"scales", "1e400",
         "mae: parameter 'scales' expects a float list, got \"1e400\" "
         "(element 1: \"1e400\")"},
        {"block", "abc", "mae: parameter 'block' expects an int in [1, 256], got \"abc\""},
        {"block", "16.0", "got \"16.0\""},
        {"block", "0x10", "got \"0x10\""},
        {"block", "1e3", "got \"1e3\""},
        {"block", "- 5", "got \"- 5\""},
        {"block", "--5", "got \"--5\""},
        {"block", "+", "got \"+\""},
        {"block", "1 6", "got \"1 6\""},
        {"block", "", "got \"\""},
        {"block", "300", "mae: parameter 'block' = 300 is out of range [1, 256]"},
        {"offset", "99999999999999999999",
         "mae: parameter 'offset' expects an int, got \"99999999999999999999\" "
         "(outside the 64-bit int range)"},
        {"offset", "-9223372036854775809", "(outside the 64-bit int range)"},
        {"norm_pix", "maybe", "mae: parameter 'norm_pix' expects a bool, got \"maybe\""},
        {"norm_pix", "", "mae: parameter 'norm_pix' expects a bool, got \"\""},
        {"norm_pix", "2", "got \"2\""},
        {"norm_pix", "truee", "got \"truee\""},
        {"loss", "ssim", "mae: parameter 'loss' must be one of mse|l1, got \"ssim\""},
        {"loss", "MSE", "must be one of mse|l1, got \"MSE\""},
        {"patch", "8,16", "mae: parameter 'patch' needs 3 values, got 2"},
        {"patch", "8,16,32,64", "mae: parameter 'patch' needs 3 values, got 4"},
        {"patch", "", "mae: parameter 'patch' needs 3 values, got 0"},
        {"patch", "8,,8",
         "mae: parameter 'patch' expects an int list of 3 values in [8, 1024], got \"8,,8\" "
         "(element 2 is empty)"},
        {"patch", "8,8,8,", "(element 4 is empty)"},
        {"patch", ",8,8", "(element 1 is empty)"},
        {"patch", "8,x,8",
         "mae: parameter 'patch' expects an int list of 3 values in [8, 1024], got \"8,x,8\" "
         "(element 2: \"x\")"},
        {"patch", "8,8.5,8", "(element 2: \"8.5\")"},
        {"patch", "8 8 8", "(element 1: \"8 8 8\")"},
        {"patch", "8,4,8", "mae: parameter 'patch' element 2 of 3 = 4 is out of range [8, 1024]"},
        {"scales", " , ", "(element 1 is empty)"},
        {"scales", "", "mae: parameter 'scales' needs at least 1 value, got 0"},
        {"scales", "1,nan", "(element 2: \"nan\")"},
        {"tag", "\xc0\xaf", "mae: parameter 'tag' expects a string, got invalid UTF-8"},
        {"tag", "\xed\xa0\x80", "invalid UTF-8"}, /* a surrogate */
    };
    char *before[8];
    for (size_t i = 0; i < 8; i++) before[i] = ax_params_text(p, mae_params[i].name);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ax_status st = ax_params_set_text(p, cases[k].key, cases[k].text);
        if (st != AX_ERR_INVALID || !strstr(ax_error_message(), cases[k].msg)) {
            print_error("%s=\"%s\": status %d, message: %s\nwanted: %s\n", cases[k].key,
                        cases[k].text, (int)st, ax_error_message(), cases[k].msg);
            fail();
        }
    }
    assert_int_equal(ax_params_set_text(p, "block", NULL), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'block' expects an int in [1, 256], got NULL");
    /* nothing changed */
    for (size_t i = 0; i < 8; i++) {
        assert_text(p, mae_params[i].name, before[i]);
        assert_false(ax_params_is_set(p, mae_params[i].name));
        free(before[i]);
    }
}

static void test_message_quoting(void **state) {
    ax_params *p = *state;
    char big[4096];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(ax_params_set_text(p, "block", big), AX_ERR_INVALID);
    assert_msg("mae: parameter 'block' expects an int in [1, 256], got \"xxxx");
    assert_msg("...\"");
    assert_true(strlen(ax_error_message()) < 400);
    assert_int_equal(ax_params_set_text(p, "block", "1\t\x01"), AX_ERR_INVALID);
    assert_msg("got \"1\\t\\x01\"");
    assert_int_equal(ax_params_set_int(p, big, 1), AX_ERR_NOT_FOUND);
    assert_true(strlen(ax_error_message()) < 600);
}

static void test_unknown_key(void **state) {
    ax_params *p = *state;
    assert_int_equal(ax_params_set_float(p, "mask_ration", 0.6), AX_ERR_NOT_FOUND);
    assert_msg_eq("mae: unknown parameter 'mask_ration' (did you mean 'mask_ratio'?); " VALID);
    assert_int_equal(ax_params_set_text(p, "blok", "3"), AX_ERR_NOT_FOUND);
    assert_msg_eq("mae: unknown parameter 'blok' (did you mean 'block'?); " VALID);
    assert_int_equal(ax_params_set_text(p, "Mask_Ratio", "0.5"), AX_ERR_NOT_FOUND);
    assert_msg("(did you mean 'mask_ratio'?)");
    assert_int_equal(ax_params_set_text(p, "patches", "8,8,8"), AX_ERR_NOT_FOUND);
    assert_msg("(did you mean 'patch'?)");
    assert_int_equal(ax_params_set_bool(p, "normpix", true), AX_ERR_NOT_FOUND);
    assert_msg("(did you mean 'norm_pix'?)");

    /* too far from every name: no suggestion */
    assert_int_equal(ax_params_set_int(p, "learning_rate", 1), AX_ERR_NOT_FOUND);
    assert_msg_eq("mae: unknown parameter 'learning_rate'; " VALID);
    assert_int_equal(ax_params_set_string(p, "zz", "x"), AX_ERR_NOT_FOUND);
    assert_msg_eq("mae: unknown parameter 'zz'; " VALID);
    assert_int_equal(ax_params_set_string(p, "", "x"), AX_ERR_NOT_FOUND);
    assert_msg_eq("mae: unknown parameter ''; " VALID);

    const int64_t v[1] = {1};
    const double d[1] = {1};
    assert_int_equal(ax_params_set_ints(p, "pach", v, 1), AX_ERR_NOT_FOUND);
    assert_int_equal(ax_params_set_floats(p, "pach", d, 1), AX_ERR_NOT_FOUND);
    assert_false(ax_params_is_set(p, "mask_ration"));
    assert_null(ax_params_text(p, "mask_ration"));
}

static void test_no_params(void **state) {
    (void)state;
    static const ax_param_spec none[] = {{0}};
    const ax_param_spec *specs[2] = {none, NULL};
    for (int k = 0; k < 2; k++) {
        ax_params *p = NULL;
        assert_int_equal(ax_params_new(&p, specs[k], "flip"), AX_OK);
        assert_non_null(p);
        assert_int_equal(ax_params_check(p), AX_OK);
        assert_int_equal(ax_params_set_int(p, "axis", 1), AX_ERR_NOT_FOUND);
        assert_msg_eq("flip: takes no parameters, got 'axis'");
        assert_int_equal(ax_params_set_text(p, "p", "0.5"), AX_ERR_NOT_FOUND);
        assert_msg_eq("flip: takes no parameters, got 'p'");
        char *j = ax_params_to_json(p);
        assert_non_null(j);
        assert_string_equal(j, "{}");
        free(j);
        assert_int_equal(ax_param_spec_count(ax_params_spec(p)), 0);
        ax_params_free(p);
    }
}

static const ax_param_spec req_params[] = {
    {.name = "data", .type = AX_PARAM_STRING, .doc = "required"},
    {.name = "lr", .type = AX_PARAM_FLOAT, .def = "0.001"},
    {.name = "epochs", .type = AX_PARAM_INT, .min = 1, .max = 1000},
    {.name = "crop", .type = AX_PARAM_INT_LIST, .len = 3},
    {0},
};

static void test_required(void **state) {
    (void)state;
    ax_params *p = NULL;
    assert_int_equal(ax_params_new(&p, req_params, "train"), AX_OK);
    assert_int_equal(ax_params_check(p), AX_ERR_INVALID);
    assert_msg_eq("train: missing required parameter(s): data, epochs, crop");
    assert_null(ax_params_text(p, "data"));
    assert_false(ax_params_is_set(p, "data"));

    char *j = ax_params_to_json(p);
    assert_non_null(j);
    assert_string_equal(j, "{\"data\": null, \"lr\": 0.001, \"epochs\": null, \"crop\": null}");
    free(j);

    /* unset required values read as zero (and log a plugin bug) */
    ax_log_level old = ax_log_get_level();
    ax_log_set_level(AX_LOG_LEVEL_OFF);
    assert_null(ax_params_string(p, "data"));
    assert_int_equal(ax_params_int(p, "epochs"), 0);
    assert_int_equal(ax_params_ints(p, "crop", NULL, 0), 0);
    ax_log_set_level(old);

    /* a failed set does not count as set */
    assert_int_equal(ax_params_set_int(p, "epochs", 0), AX_ERR_INVALID);
    assert_int_equal(ax_params_check(p), AX_ERR_INVALID);
    assert_msg_eq("train: missing required parameter(s): data, epochs, crop");

    assert_int_equal(ax_params_set_text(p, "epochs", "10"), AX_OK);
    assert_int_equal(ax_params_set_string(p, "data", "/data/ct"), AX_OK);
    assert_int_equal(ax_params_check(p), AX_ERR_INVALID);
    assert_msg_eq("train: missing required parameter(s): crop");
    assert_int_equal(ax_params_set_text(p, "crop", "96,96,96"), AX_OK);
    assert_int_equal(ax_params_check(p), AX_OK);
    assert_int_equal(ax_params_int(p, "epochs"), 10);
    assert_text(p, "crop", "96,96,96");
    ax_params_free(p);
}

/* Every kind of failed set leaves the old value, and its is_set flag, alone. */
static void test_failed_set_unchanged(void **state) {
    ax_params *p = *state;
    assert_int_equal(ax_params_set_float(p, "mask_ratio", 0.5), AX_OK);
    assert_int_equal(ax_params_set_float(p, "mask_ratio", 2), AX_ERR_INVALID);
    assert_int_equal(ax_params_set_text(p, "mask_ratio", "x"), AX_ERR_INVALID);
    assert_int_equal(ax_params_set_bool(p, "mask_ratio", true), AX_ERR_INVALID);
    assert_true(ax_params_float(p, "mask_ratio") == 0.5);

    assert_int_equal(ax_params_set_float(p, "block", 3.5), AX_ERR_INVALID);
    assert_int_equal(ax_params_set_text(p, "block", "9999"), AX_ERR_INVALID);
    assert_int_equal(ax_params_int(p, "block"), 16);
    assert_false(ax_params_is_set(p, "block"));

    assert_int_equal(ax_params_set_text(p, "norm_pix", "perhaps"), AX_ERR_INVALID);
    assert_true(ax_params_bool(p, "norm_pix"));

    const char *before = ax_params_string(p, "loss");
    assert_int_equal(ax_params_set_string(p, "loss", "huber"), AX_ERR_INVALID);
    assert_ptr_equal(ax_params_string(p, "loss"), before); /* not even reallocated */
    assert_string_equal(before, "mse");

    const int64_t two[2] = {8, 8};
    const int64_t far[3] = {8, 8, 9999};
    assert_int_equal(ax_params_set_ints(p, "patch", two, 2), AX_ERR_INVALID);
    assert_int_equal(ax_params_set_ints(p, "patch", far, 3), AX_ERR_INVALID);
    assert_int_equal(ax_params_set_text(p, "patch", "8,8,x"), AX_ERR_INVALID);
    assert_text(p, "patch", "160,160,160");
    assert_false(ax_params_is_set(p, "patch"));

    const double bad[2] = {1, INFINITY};
    assert_int_equal(ax_params_set_floats(p, "scales", bad, 2), AX_ERR_INVALID);
    assert_int_equal(ax_params_set_text(p, "scales", "1,,2"), AX_ERR_INVALID);
    assert_text(p, "scales", "0.5,1");
}

static void test_getters_wrong(void **state) {
    ax_params *p = *state;
    ax_log_level old = ax_log_get_level();
    ax_log_set_level(AX_LOG_LEVEL_OFF); /* these log plugin bugs */
    assert_int_equal(ax_params_int(p, "mask_ratio"), 0);
    assert_true(ax_params_float(p, "block") == 0.0);
    assert_false(ax_params_bool(p, "loss"));
    assert_null(ax_params_string(p, "norm_pix"));
    int64_t iv[3] = {5, 5, 5};
    double fv[3] = {5, 5, 5};
    assert_int_equal(ax_params_ints(p, "scales", iv, 3), 0);
    assert_int_equal(ax_params_floats(p, "patch", fv, 3), 0);
    assert_int_equal(iv[0], 5);
    assert_true(fv[0] == 5.0);
    assert_int_equal(ax_params_int(p, "nope"), 0);
    assert_int_equal(ax_params_int(p, NULL), 0);
    assert_int_equal(ax_params_int(NULL, "block"), 0);
    assert_true(ax_params_float(NULL, NULL) == 0.0);
    assert_false(ax_params_bool(NULL, "x"));
    assert_null(ax_params_string(NULL, "x"));
    assert_int_equal(ax_params_ints(NULL, "x", iv, 3), 0);
    assert_int_equal(ax_params_floats(p, "x", fv, 3), 0);
    assert_false(ax_params_is_set(NULL, "block"));
    assert_false(ax_params_is_set(p, NULL));
    ax_log_set_level(old);
}

static void test_null_args(void **state) {
    ax_params *p = *state;
    ax_params_free(NULL);
    assert_int_equal(ax_params_new(NULL, mae_params, "mae"), AX_ERR_INVALID);
    assert_int_equal(ax_params_set_int(NULL, "block", 1), AX_ERR_INVALID);
    assert_int_equal(ax_params_set_text(NULL, "block", "1"), AX_ERR_INVALID);
    assert_int_equal(ax_params_set_float(p, NULL, 1), AX_ERR_INVALID);
    assert_msg("mae:");
    assert_int_equal(ax_params_check(NULL), AX_ERR_INVALID);
    assert_null(ax_params_to_json(NULL));

    /* a NULL owner still gives readable messages */
    ax_params *q = NULL;
    assert_int_equal(ax_params_new(&q, mae_params, NULL), AX_OK);
    assert_int_equal(ax_params_set_int(q, "block", 0), AX_ERR_INVALID);
    assert_msg("parameter 'block' = 0 is out of range");
    ax_params_free(q);
}

/* ---- spec_check -------------------------------------------------------- */

typedef struct bad_spec {
    ax_param_spec spec[3];
    const char *msg;
} bad_spec;

static void test_spec_check(void **state) {
    (void)state;
    const ax_param_spec good = {.name = "ok", .type = AX_PARAM_INT, .def = "1"};
    static const bad_spec cases[] = {
        {{{.name = "Block", .type = AX_PARAM_INT}}, "mae: parameter name \"Block\" (entry "},
        {{{.name = "", .type = AX_PARAM_INT}}, "parameter name \"\" (entry "},
        {{{.name = "1x", .type = AX_PARAM_INT}}, "parameter name \"1x\""},
        {{{.name = "a-b", .type = AX_PARAM_INT}}, "parameter name \"a-b\""},
        {{{.name = "a b", .type = AX_PARAM_INT}}, "parameter name \"a b\""},
        {{{.name = "x", .type = AX_PARAM_INT}, {.name = "x", .type = AX_PARAM_FLOAT}},
         "mae: parameter 'x' is declared twice (entries "},
        {{{.name = "x", .type = (ax_param_type)0}}, "mae: parameter 'x': unknown type 0"},
        {{{.name = "x", .type = (ax_param_type)7}}, "mae: parameter 'x': unknown type 7"},
        {{{.name = "x", .type = AX_PARAM_INT, .min = 5, .max = 1}},
         "mae: parameter 'x': min 5 is greater than max 1"},
        {{{.name = "x", .type = AX_PARAM_FLOAT, .min = NAN, .max = 1}}, "must be finite"},
        {{{.name = "x", .type = AX_PARAM_FLOAT, .min = 0, .max = INFINITY}}, "must be finite"},
        {{{.name = "x", .type = AX_PARAM_BOOL, .min = 0, .max = 1}},
         "mae: parameter 'x': min/max apply only to numbers, not to a bool"},
        {{{.name = "x", .type = AX_PARAM_INT, .choices = "a|b"}},
         "mae: parameter 'x': choices apply only to strings, not to an int"},
        {{{.name = "x", .type = AX_PARAM_STRING, .choices = "a||b"}},
         "mae: parameter 'x': choices \"a||b\" must be \"a|b|c\" with no empty entry"},
        {{{.name = "x", .type = AX_PARAM_STRING, .choices = ""}}, "no empty entry"},
        {{{.name = "x", .type = AX_PARAM_STRING, .choices = "a|"}}, "no empty entry"},
        {{{.name = "x", .type = AX_PARAM_FLOAT, .len = 3}},
         "mae: parameter 'x': len applies only to lists, not to a float"},
        {{{.name = "block", .type = AX_PARAM_INT, .def = "abc"}},
         "mae: parameter 'block': default \"abc\" is not an int"},
        {{{.name = "x", .type = AX_PARAM_INT, .def = "1.5"}}, "default \"1.5\" is not an int"},
        {{{.name = "x", .type = AX_PARAM_FLOAT, .def = "fast"}},
         "mae: parameter 'x': default \"fast\" is not a float"},
        {{{.name = "x", .type = AX_PARAM_BOOL, .def = "on"}},
         "mae: parameter 'x': default \"on\" is not a bool"},
        {{{.name = "block", .type = AX_PARAM_INT, .def = "0", .min = 1, .max = 256}},
         "mae: parameter 'block': default 0 is out of range [1, 256]"},
        {{{.name = "r", .type = AX_PARAM_FLOAT, .def = "1.25", .min = 0, .max = 1}},
         "mae: parameter 'r': default 1.25 is out of range [0, 1]"},
        {{{.name = "loss", .type = AX_PARAM_STRING, .def = "ssim", .choices = "mse|l1"}},
         "mae: parameter 'loss': default \"ssim\" is not one of mse|l1"},
        {{{.name = "s", .type = AX_PARAM_STRING, .def = "\xff"}},
         "mae: parameter 's': default \"\xff\" is not valid UTF-8"},
        {{{.name = "patch", .type = AX_PARAM_INT_LIST, .def = "8,8", .len = 3}},
         "mae: parameter 'patch': default \"8,8\" has 2 values, needs 3 values"},
        {{{.name = "patch", .type = AX_PARAM_INT_LIST, .def = "", .len = 1}},
         "mae: parameter 'patch': default \"\" has 0 values, needs 1 value"},
        {{{.name = "l", .type = AX_PARAM_FLOAT_LIST, .def = " "}},
         "default \" \" has 0 values, needs at least 1 value"},
        {{{.name = "patch", .type = AX_PARAM_INT_LIST, .def = "8,x,8"}},
         "mae: parameter 'patch': default \"8,x,8\" is not an int list (element 2: \"x\")"},
        {{{.name = "l", .type = AX_PARAM_FLOAT_LIST, .def = "1,,2"}},
         "mae: parameter 'l': default \"1,,2\" is not a float list (element 2 is empty)"},
        {{{.name = "patch", .type = AX_PARAM_INT_LIST, .def = "8,2000,8", .min = 8, .max = 1024}},
         "mae: parameter 'patch': default \"8,2000,8\": element 2 of 3 = 2000 is out of range "
         "[8, 1024]"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        /* the bad entry alone, and after a good one */
        ax_param_spec after[4] = {good};
        memcpy(after + 1, cases[k].spec, sizeof cases[k].spec);
        const ax_param_spec *tables[2] = {cases[k].spec, after};
        for (int t = 0; t < 2; t++) {
            ax_status st = ax_param_spec_check(tables[t], "mae");
            if (st != AX_ERR_INVALID || !strstr(ax_error_message(), cases[k].msg)) {
                print_error("case %zu: status %d, message: %s\nwanted: %s\n", k, (int)st,
                            ax_error_message(), cases[k].msg);
                fail();
            }
            static char sentinel;
            ax_params *p = (ax_params *)&sentinel; /* must be reset to NULL */
            assert_int_equal(ax_params_new(&p, tables[t], "mae"), AX_ERR_INVALID);
            assert_null(p);
            assert_msg(cases[k].msg);
        }
    }
    /* entries are counted from 1 */
    static const ax_param_spec dup[] = {{.name = "a", .type = AX_PARAM_INT},
                                        {.name = "b", .type = AX_PARAM_INT},
                                        {.name = "a", .type = AX_PARAM_INT},
                                        {.name = "B", .type = AX_PARAM_INT},
                                        {0}};
    assert_int_equal(ax_param_spec_check(dup, "mae"), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter 'a' is declared twice (entries 1 and 3)");
    assert_int_equal(ax_param_spec_check(dup + 1, "mae"), AX_ERR_INVALID);
    assert_msg_eq("mae: parameter name \"B\" (entry 3) must match [a-z_][a-z0-9_]*");

    assert_int_equal(ax_param_spec_check(mae_params, "mae"), AX_OK);
    assert_int_equal(ax_param_spec_check(req_params, "train"), AX_OK);
    assert_int_equal(ax_param_spec_check(NULL, "x"), AX_OK);
    static const ax_param_spec fine[] = {
        {.name = "_x9", .type = AX_PARAM_INT, .def = "5", .min = 5, .max = 5}, /* unbounded */
        {.name = "y", .type = AX_PARAM_FLOAT, .def = "-2", .min = -2, .max = 2},
        {.name = "z", .type = AX_PARAM_STRING, .def = "b", .choices = "a|b|c"},
        {.name = "w", .type = AX_PARAM_FLOAT_LIST, .def = "1", .len = 1},
        {0},
    };
    assert_int_equal(ax_param_spec_check(fine, "fine"), AX_OK);
}

/* ---- JSON and text ----------------------------------------------------- */

static void test_to_json(void **state) {
    (void)state;
    static const ax_param_spec spec[] = {
        {.name = "ratio", .type = AX_PARAM_FLOAT, .def = "0.6"},
        {.name = "n", .type = AX_PARAM_INT, .def = "-3"},
        {.name = "on", .type = AX_PARAM_BOOL, .def = "yes"},
        {.name = "name", .type = AX_PARAM_STRING, .def = "a\"b\\c \xc3\xa9"},
        {.name = "sizes", .type = AX_PARAM_INT_LIST, .def = "1,2"},
        {.name = "w", .type = AX_PARAM_FLOAT_LIST, .def = "0.5,1,1e-7"},
        {.name = "big", .type = AX_PARAM_FLOAT, .def = "1e300"},
        {0},
    };
    ax_params *p = NULL;
    assert_int_equal(ax_params_new(&p, spec, "j"), AX_OK);
    char *j = ax_params_to_json(p);
    assert_non_null(j);
    assert_string_equal(j, "{\"ratio\": 0.6, \"n\": -3, \"on\": true, "
                           "\"name\": \"a\\\"b\\\\c \xc3\xa9\", \"sizes\": [1, 2], "
                           "\"w\": [0.5, 1.0, 1e-7], \"big\": 1e300}");
    free(j);

    /* floats that need all 17 digits still round-trip */
    assert_int_equal(ax_params_set_float(p, "ratio", 0.1 + 0.2), AX_OK);
    assert_int_equal(ax_params_set_bool(p, "on", false), AX_OK);
    j = ax_params_to_json(p);
    assert_non_null(j);
    assert_non_null(strstr(j, "\"ratio\": 0.30000000000000004, "));
    assert_non_null(strstr(j, "\"on\": false"));
    free(j);
    ax_params_free(p);
}

static void test_text_round_trip(void **state) {
    ax_params *p = *state;
    const double floats[] = {0.1,    1.0 / 3.0, 0.1 + 0.2, 1e-300, 123456789.125,
                             5e-324, -0.0,      1e15,      1e22,   2.0 / 3.0 * 1e-5};
    for (size_t k = 0; k < sizeof floats / sizeof floats[0]; k++) {
        assert_int_equal(ax_params_set_floats(p, "scales", &floats[k], 1), AX_OK);
        char *t = ax_params_text(p, "scales");
        assert_non_null(t);
        assert_int_equal(ax_params_set_text(p, "scales", t), AX_OK);
        double back = 0;
        assert_int_equal(ax_params_floats(p, "scales", &back, 1), 1);
        assert_memory_equal(&back, &floats[k], sizeof back); /* bit for bit, -0 too */
        free(t);
    }
    assert_int_equal(ax_params_set_float(p, "mask_ratio", 0.1), AX_OK);
    assert_text(p, "mask_ratio", "0.1");
    assert_int_equal(ax_params_set_float(p, "mask_ratio", 1.0 / 3.0), AX_OK);
    assert_text(p, "mask_ratio", "0.3333333333333333");

    /* every parameter: text -> set_text on fresh params -> same text */
    assert_int_equal(ax_params_set_text(p, "patch", "8, 9 ,10"), AX_OK);
    assert_int_equal(ax_params_set_string(p, "tag", "a, b"), AX_OK);
    ax_params *q = NULL;
    assert_int_equal(ax_params_new(&q, mae_params, "mae"), AX_OK);
    for (size_t i = 0; mae_params[i].name; i++) {
        char *t = ax_params_text(p, mae_params[i].name);
        assert_non_null(t);
        assert_int_equal(ax_params_set_text(q, mae_params[i].name, t), AX_OK);
        assert_text(q, mae_params[i].name, t);
        free(t);
    }
    char *a = ax_params_to_json(p), *b = ax_params_to_json(q);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(a, b);
    free(a);
    free(b);
    ax_params_free(q);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_names),
        cmocka_unit_test_setup_teardown(test_spec_count_find, setup_mae, teardown),
        cmocka_unit_test_setup_teardown(test_defaults, setup_mae, teardown),
        cmocka_unit_test_setup_teardown(test_set_int, setup_mae, teardown),
        cmocka_unit_test_setup_teardown(test_set_float, setup_mae, teardown),
        cmocka_unit_test_setup_teardown(test_set_bool, setup_mae, teardown),
        cmocka_unit_test_setup_teardown(test_set_string, setup_mae, teardown),
        cmocka_unit_test_setup_teardown(test_string_borrowed, setup_mae, teardown),
        cmocka_unit_test_setup_teardown(test_set_lists, setup_mae, teardown),
        cmocka_unit_test_setup_teardown(test_long_list, setup_mae, teardown),
        cmocka_unit_test_setup_teardown(test_set_text_good, setup_mae, teardown),
        cmocka_unit_test_setup_teardown(test_set_text_bad, setup_mae, teardown),
        cmocka_unit_test_setup_teardown(test_message_quoting, setup_mae, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key, setup_mae, teardown),
        cmocka_unit_test(test_no_params),
        cmocka_unit_test(test_required),
        cmocka_unit_test_setup_teardown(test_failed_set_unchanged, setup_mae, teardown),
        cmocka_unit_test_setup_teardown(test_getters_wrong, setup_mae, teardown),
        cmocka_unit_test_setup_teardown(test_null_args, setup_mae, teardown),
        cmocka_unit_test(test_spec_check),
        cmocka_unit_test(test_to_json),
        cmocka_unit_test_setup_teardown(test_text_round_trip, setup_mae, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
