/* PyTorch parity of the core ops: forward values and input gradients for
 * a fixed upstream gradient, from tests/fixtures/ops/ops.safetensors
 * (made by tests/fixtures/ops/make_ops.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "axon/safetensors.h"
#include "gradcheck.h"

typedef ax_status (*ax_case_fn)(ax_tensor **out, ax_tensor *const *in);

#define DIMS(...) (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int)), (int[]){__VA_ARGS__}

static ax_status c_add(ax_tensor **o, ax_tensor *const *x) { return ax_add(o, x[0], x[1]); }
static ax_status c_sub(ax_tensor **o, ax_tensor *const *x) { return ax_sub(o, x[0], x[1]); }
static ax_status c_mul(ax_tensor **o, ax_tensor *const *x) { return ax_mul(o, x[0], x[1]); }
static ax_status c_div(ax_tensor **o, ax_tensor *const *x) { return ax_div(o, x[0], x[1]); }
static ax_status c_pow(ax_tensor **o, ax_tensor *const *x) { return ax_pow(o, x[0], x[1]); }
static ax_status c_maximum(ax_tensor **o, ax_tensor *const *x) { return ax_maximum(o, x[0], x[1]); }
static ax_status c_minimum(ax_tensor **o, ax_tensor *const *x) { return ax_minimum(o, x[0], x[1]); }
static ax_status c_where(ax_tensor **o, ax_tensor *const *x) {
    ax_tensor *c;
    ax_status st = ax_gt(&c, x[0], x[1]);
    if (st == AX_OK) st = ax_where(o, c, x[0], x[1]);
    ax_tensor_free(c);
    return st;
}
static ax_status c_exp(ax_tensor **o, ax_tensor *const *x) { return ax_exp(o, x[0]); }
static ax_status c_log(ax_tensor **o, ax_tensor *const *x) { return ax_log(o, x[0]); }
static ax_status c_sqrt(ax_tensor **o, ax_tensor *const *x) { return ax_sqrt(o, x[0]); }
static ax_status c_rsqrt(ax_tensor **o, ax_tensor *const *x) { return ax_rsqrt(o, x[0]); }
static ax_status c_abs(ax_tensor **o, ax_tensor *const *x) { return ax_abs(o, x[0]); }
static ax_status c_clamp(ax_tensor **o, ax_tensor *const *x) { return ax_clamp(o, x[0], -0.5, 0.7); }
static ax_status c_relu(ax_tensor **o, ax_tensor *const *x) { return ax_relu(o, x[0]); }
static ax_status c_leaky(ax_tensor **o, ax_tensor *const *x) { return ax_leaky_relu(o, x[0], 0.01); }
static ax_status c_gelu(ax_tensor **o, ax_tensor *const *x) { return ax_gelu(o, x[0], false); }
static ax_status c_gelu_tanh(ax_tensor **o, ax_tensor *const *x) { return ax_gelu(o, x[0], true); }
static ax_status c_silu(ax_tensor **o, ax_tensor *const *x) { return ax_silu(o, x[0]); }
static ax_status c_sigmoid(ax_tensor **o, ax_tensor *const *x) { return ax_sigmoid(o, x[0]); }
static ax_status c_tanh(ax_tensor **o, ax_tensor *const *x) { return ax_tanh(o, x[0]); }
static ax_status c_softplus(ax_tensor **o, ax_tensor *const *x) { return ax_softplus(o, x[0], 2, 3); }
static ax_status c_add_scalar(ax_tensor **o, ax_tensor *const *x) { return ax_add_scalar(o, x[0], 2.5); }
static ax_status c_mul_scalar(ax_tensor **o, ax_tensor *const *x) { return ax_mul_scalar(o, x[0], -1.5); }
static ax_status c_pow_scalar(ax_tensor **o, ax_tensor *const *x) { return ax_pow_scalar(o, x[0], 3); }
static ax_status c_sum_all(ax_tensor **o, ax_tensor *const *x) { return ax_sum(o, x[0], 0, NULL, false); }
static ax_status c_sum_dims(ax_tensor **o, ax_tensor *const *x) { return ax_sum(o, x[0], DIMS(0, 2), false); }
static ax_status c_sum_keep(ax_tensor **o, ax_tensor *const *x) { return ax_sum(o, x[0], DIMS(1), true); }
static ax_status c_mean(ax_tensor **o, ax_tensor *const *x) { return ax_mean(o, x[0], DIMS(-1), false); }
static ax_status c_var(ax_tensor **o, ax_tensor *const *x) { return ax_var(o, x[0], DIMS(1), 1, false); }
static ax_status c_var_pop(ax_tensor **o, ax_tensor *const *x) { return ax_var(o, x[0], DIMS(0, 2), 0, true); }
static ax_status c_std(ax_tensor **o, ax_tensor *const *x) { return ax_std(o, x[0], 0, NULL, 1, false); }
static ax_status c_max_dim(ax_tensor **o, ax_tensor *const *x) { return ax_max(o, NULL, x[0], 1, false); }
static ax_status c_min_dim(ax_tensor **o, ax_tensor *const *x) { return ax_min(o, NULL, x[0], 2, true); }
static ax_status c_lse(ax_tensor **o, ax_tensor *const *x) { return ax_logsumexp(o, x[0], DIMS(1, 2), false); }
static ax_status c_norm2(ax_tensor **o, ax_tensor *const *x) { return ax_norm(o, x[0], 2, DIMS(-1), false); }
static ax_status c_norm3(ax_tensor **o, ax_tensor *const *x) { return ax_norm(o, x[0], 3, 0, NULL, false); }
static ax_status c_softmax(ax_tensor **o, ax_tensor *const *x) { return ax_softmax(o, x[0], 1); }
static ax_status c_log_softmax(ax_tensor **o, ax_tensor *const *x) { return ax_log_softmax(o, x[0], -1); }
static ax_status c_matmul(ax_tensor **o, ax_tensor *const *x) { return ax_matmul(o, x[0], x[1]); }
static ax_status c_linear(ax_tensor **o, ax_tensor *const *x) { return ax_linear(o, x[0], x[1], NULL); }

static const struct {
    const char *name;
    int n;
    ax_case_fn fn;
} ax_cases[] = {
    {"add_bcast", 2, c_add},   {"sub", 2, c_sub},       {"mul_bcast", 2, c_mul},          {"div", 2, c_div},
    {"pow", 2, c_pow},         {"maximum", 2, c_maximum}, {"minimum", 2, c_minimum},      {"where", 2, c_where},
    {"exp", 1, c_exp},         {"log", 1, c_log},       {"sqrt", 1, c_sqrt},              {"rsqrt", 1, c_rsqrt},
    {"abs", 1, c_abs},         {"clamp", 1, c_clamp},   {"relu", 1, c_relu},              {"leaky_relu", 1, c_leaky},
    {"gelu", 1, c_gelu},       {"gelu_tanh", 1, c_gelu_tanh}, {"silu", 1, c_silu},        {"sigmoid", 1, c_sigmoid},
    {"tanh", 1, c_tanh},       {"softplus", 1, c_softplus}, {"add_scalar", 1, c_add_scalar},
    {"mul_scalar", 1, c_mul_scalar}, {"pow_scalar", 1, c_pow_scalar}, {"sum_all", 1, c_sum_all},
    {"sum_dims", 1, c_sum_dims}, {"sum_keep", 1, c_sum_keep}, {"mean", 1, c_mean},            {"var", 1, c_var},
    {"var_pop", 1, c_var_pop}, {"std", 1, c_std},       {"max_dim", 1, c_max_dim},        {"min_dim", 1, c_min_dim},
    {"logsumexp", 1, c_lse},   {"norm2", 1, c_norm2},   {"norm3", 1, c_norm3},            {"softmax", 1, c_softmax},
    {"log_softmax", 1, c_log_softmax}, {"matmul", 2, c_matmul}, {"matmul_batch", 2, c_matmul},
    {"matmul_vec", 2, c_matmul}, {"linear", 2, c_linear},
};

static ax_tensor *ax_fixture(ax_safetensors *f, const char *name, const char *part) {
    char key[128];
    ax_tensor *t;
    snprintf(key, sizeof key, "%s.%s", name, part);
    if (ax_safetensors_get(f, key, &t) != AX_OK) fail_msg("%s", ax_error_message());
    return t;
}

static void test_torch_parity(void **state) {
    (void)state;
    ax_safetensors *f;
    assert_int_equal(ax_safetensors_open(&f, AX_TEST_FIXTURES "/ops/ops.safetensors"), AX_OK);
    int failed = 0;
    for (size_t c = 0; c < sizeof ax_cases / sizeof ax_cases[0]; c++) {
        const char *name = ax_cases[c].name;
        ax_tensor *in[2] = {NULL, NULL}, *out = NULL;
        for (int i = 0; i < ax_cases[c].n; i++) {
            char part[8];
            ax_tensor *t;
            snprintf(part, sizeof part, "in%d", i);
            t = ax_fixture(f, name, part);
            /* a fresh leaf (the fixture view is shared with the file) */
            assert_int_equal(ax_tensor_to_dtype(&in[i], t, AX_DTYPE_F32), AX_OK);
            ax_tensor_free(t);
            ax_tensor_set_requires_grad(in[i], true);
        }
        if (ax_cases[c].fn(&out, in) != AX_OK) fail_msg("%s: %s", name, ax_error_message());
        ax_tensor *want = ax_fixture(f, name, "out"), *gout = ax_fixture(f, name, "gout");
        char what[96];
        snprintf(what, sizeof what, "%s forward", name);
        if (!ax_allclose(what, out, want, 1e-5, 1e-4)) failed++;
        if (ax_backward(out, gout) != AX_OK) fail_msg("%s backward: %s", name, ax_error_message());
        for (int i = 0; i < ax_cases[c].n; i++) {
            char part[8];
            snprintf(part, sizeof part, "grad%d", i);
            ax_tensor *g = ax_fixture(f, name, part);
            snprintf(what, sizeof what, "%s grad of input %d", name, i);
            if (!in[i]->grad) {
                fprintf(stderr, "%s: no gradient\n", what);
                failed++;
            } else if (!ax_allclose(what, in[i]->grad, g, 1e-5, 1e-4)) {
                failed++;
            }
            ax_tensor_free(g);
            ax_tensor_free(in[i]);
        }
        ax_tensor_free(want);
        ax_tensor_free(gout);
        ax_tensor_free(out);
    }
    ax_safetensors_close(f);
    assert_int_equal(failed, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_torch_parity)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
