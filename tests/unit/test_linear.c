/* The fused linear layer: ax_linear_act and the CPU `linear` kernel member.
 *
 * PyTorch parity from tests/fixtures/linear/linear.safetensors (written by
 * tests/fixtures/linear/make_linear.py), finite-difference gradients for
 * each activation, the fused member against matmul + add + activation, the
 * fallback paths (strided x, bf16, tables without the member) and the
 * errors for bad shapes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "axon/amp.h"
#include "axon/kernels.h"
#include "axon/safetensors.h"
#include "gradcheck.h"
#include "test_util.h"

static const ax_linear_act_op ax_acts[] = {AX_LINEAR_ACT_NONE, AX_LINEAR_ACT_RELU, AX_LINEAR_ACT_GELU_TANH};

static ax_linear_act_op ax_act_from_name(const char *s) {
    if (s && strcmp(s, "relu") == 0) return AX_LINEAR_ACT_RELU;
    if (s && strcmp(s, "gelu_tanh") == 0) return AX_LINEAR_ACT_GELU_TANH;
    if (s && strcmp(s, "none") == 0) return AX_LINEAR_ACT_NONE;
    fail_msg("unknown act %s in the fixture", s ? s : "(missing)");
    return AX_LINEAR_ACT_NONE;
}

/* A fresh f32 leaf from the fixture (NULL when absent and optional). */
static ax_tensor *ax_fx(ax_safetensors *f, const char *name, const char *part, bool optional, bool grad) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", name, part);
    ax_tensor *t, *c;
    bool present = false;
    for (size_t i = 0; i < ax_safetensors_count(f); i++) present = present || strcmp(ax_safetensors_name(f, i), key) == 0;
    if (!present && optional) return NULL;
    if (ax_safetensors_get(f, key, &t) != AX_OK) fail_msg("%s", ax_error_message());
    assert_ok(ax_tensor_to_dtype(&c, t, AX_DTYPE_F32)); /* own storage, not the file's */
    ax_tensor_free(t);
    if (grad) ax_tensor_set_requires_grad(c, true);
    return c;
}

static void test_torch_parity(void **state) {
    (void)state;
    static const char *cases[] = {"gelu_2d", "relu_batch", "gelu_batch", "none_nobias_4d", "relu_nobias"};
    ax_safetensors *f;
    assert_ok(ax_safetensors_open(&f, AX_TEST_FIXTURES "/linear/linear.safetensors"));
    int failed = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *name = cases[c];
        char key[96], what[128];
        snprintf(key, sizeof key, "%s.act", name);
        ax_linear_act_op act = ax_act_from_name(ax_safetensors_metadata(f, key));
        ax_tensor *x = ax_fx(f, name, "x", false, true), *w = ax_fx(f, name, "w", false, true),
                  *b = ax_fx(f, name, "b", true, true), *out = NULL;
        assert_ok(ax_linear_act(&out, x, w, b, act));
        ax_tensor *want = ax_fx(f, name, "out", false, false), *gout = ax_fx(f, name, "gout", false, false);
        snprintf(what, sizeof what, "%s forward", name);
        failed += !ax_allclose(what, out, want, 1e-5, 1e-4);
        assert_ok(ax_backward(out, gout));
        const char *gnames[3] = {"gx", "gw", "gb"};
        ax_tensor *ins[3] = {x, w, b};
        for (int i = 0; i < 3; i++) {
            if (!ins[i]) continue;
            ax_tensor *g = ax_fx(f, name, gnames[i], false, false);
            snprintf(what, sizeof what, "%s %s", name, gnames[i]);
            if (!ins[i]->grad) {
                fprintf(stderr, "%s: no gradient\n", what);
                failed++;
            } else {
                failed += !ax_allclose(what, ins[i]->grad, g, 1e-5, 1e-4);
            }
            ax_tensor_free(g);
            ax_tensor_free(ins[i]);
        }
        ax_tensor_free(want);
        ax_tensor_free(gout);
        ax_tensor_free(out);
    }
    ax_safetensors_close(f);
    assert_int_equal(failed, 0);
}

static ax_status gc_linear(ax_tensor **out, ax_tensor *const *in, void *ctx) {
    return ax_linear_act(out, in[0], in[1], in[2], *(const ax_linear_act_op *)ctx);
}

static void test_gradcheck(void **state) {
    (void)state;
    ax_gc_opts o = AX_GC_DEFAULT;
    o.eps = 1e-3; /* ReLU's kink: perturbations small next to the pre-activations */
    o.max_elems = 64;
    for (size_t a = 0; a < sizeof ax_acts / sizeof ax_acts[0]; a++) {
        ax_tensor *in[3] = {ax_test_randn(3, (int64_t[]){2, 3, 11}, 11 + a, 1.0, 0.0, true),
                            ax_test_randn(2, (int64_t[]){5, 11}, 23 + a, 0.4, 0.0, true),
                            ax_test_randn(1, (int64_t[]){5}, 31 + a, 0.5, 0.0, true)};
        ax_linear_act_op act = ax_acts[a];
        if (!ax_gradcheck(gc_linear, 3, in, &act, &o)) fail_msg("gradcheck failed for act %d", (int)act);
        for (int i = 0; i < 3; i++) ax_tensor_free(in[i]);
    }
}

/* act(x @ w^T + b) through the op front-ends, one op each. */
static ax_status ax_composed(ax_tensor **out, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                             ax_linear_act_op act) {
    ax_tensor *wt = NULL, *y = NULL, *z = NULL;
    ax_status st = ax_tensor_transpose(&wt, w, 0, 1);
    if (st == AX_OK) st = ax_matmul(&y, x, wt);
    if (st == AX_OK && b) st = ax_add(&z, y, b), ax_tensor_free(y), y = z;
    if (st == AX_OK && act == AX_LINEAR_ACT_RELU) st = ax_relu(&z, y), ax_tensor_free(y), y = z;
    if (st == AX_OK && act == AX_LINEAR_ACT_GELU_TANH) st = ax_gelu(&z, y, true), ax_tensor_free(y), y = z;
    ax_tensor_free(wt);
    *out = y;
    return st;
}

/* Bitwise equality of two f32 tensors of one shape. */
static bool ax_same_bits(const char *what, const ax_tensor *a, const ax_tensor *b) {
    if (!ax_tensor_same_shape(a, b)) {
        fprintf(stderr, "%s: shapes differ\n", what);
        return false;
    }
    for (int64_t i = 0; i < ax_tensor_numel(a); i++) {
        float x = (float)ax_tensor_get(a, i), y = (float)ax_tensor_get(b, i);
        if (memcmp(&x, &y, sizeof x) != 0) {
            fprintf(stderr, "%s: element %lld: %.9g vs %.9g\n", what, (long long)i, (double)x, (double)y);
            return false;
        }
    }
    return true;
}

/* The fused op equals matmul + add + activation: for 2-D x and NONE/RELU
 * the forward bit for bit (the same sgemm call and formula); the fused
 * GELU evaluates x * sigmoid(2u) with its own exp (vectorised) where the
 * unary op calls tanhf, so it agrees to a few ulps (relative 1e-4 covers
 * the unary form's cancellation in the negative tail); batched x (matmul
 * runs one sgemm per batch entry, blocked differently) and the gradients
 * (different GEMM shapes for dw) agree to f32 rounding. Large enough for
 * the parallel epilogue. */
static void test_fused_equals_composed(void **state) {
    (void)state;
    for (int batched = 0; batched < 2; batched++)
        for (size_t a = 0; a < sizeof ax_acts / sizeof ax_acts[0]; a++) {
            ax_linear_act_op act = ax_acts[a];
            int64_t xs2[2] = {256, 37}, xs3[3] = {4, 64, 37}, ys2[2] = {256, 130}, ys3[3] = {4, 64, 130};
            ax_tensor *x = ax_test_randn(batched ? 3 : 2, batched ? xs3 : xs2, 5, 1.0, 0.0, true),
                      *w = ax_test_randn(2, (int64_t[]){130, 37}, 6, 0.2, 0.0, true),
                      *b = ax_test_randn(1, (int64_t[]){130}, 7, 0.5, 0.0, true);
            ax_tensor *y1 = NULL, *y2 = NULL, *gout = ax_test_randn(batched ? 3 : 2, batched ? ys3 : ys2, 8, 1.0, 0.0, false);
            assert_ok(ax_linear_act(&y1, x, w, b, act));
            assert_ok(ax_composed(&y2, x, w, b, act));
            if (batched || act == AX_LINEAR_ACT_GELU_TANH)
                assert_true(ax_allclose("fused vs composed forward", y1, y2, 1e-6, 1e-4));
            else
                assert_true(ax_same_bits("fused vs composed forward", y1, y2));
            assert_ok(ax_backward(y1, gout));
            ax_tensor *g1[3] = {x->grad, w->grad, b->grad};
            for (int i = 0; i < 3; i++) ax_tensor_retain(g1[i]);
            ax_tensor_zero_grad(x), ax_tensor_zero_grad(w), ax_tensor_zero_grad(b);
            assert_ok(ax_backward(y2, gout));
            assert_true(ax_allclose("dx", g1[0], x->grad, 1e-5, 1e-5));
            assert_true(ax_allclose("dw", g1[1], w->grad, 1e-5, 1e-5));
            assert_true(ax_allclose("db", g1[2], b->grad, 1e-5, 1e-5));
            for (int i = 0; i < 3; i++) ax_tensor_free(g1[i]);
            ax_tensor_free(x), ax_tensor_free(w), ax_tensor_free(b);
            ax_tensor_free(y1), ax_tensor_free(y2), ax_tensor_free(gout);
        }
}

/* The kernel member itself: pre against the matmul and binary add kernels
 * bit for bit, y against the unary kernel after them (GELU to a few ulps);
 * the backward against unary_backward + matmul. */
static void test_kernel_member(void **state) {
    (void)state;
    const ax_kernels *k = ax_cpu_kernels();
    assert_true(AX_KERNELS_HAS(k, linear) && AX_KERNELS_HAS(k, linear_backward));
    int64_t m = 70, n = 33, kk = 19;
    ax_tensor *x = ax_test_randn(2, (int64_t[]){m, kk}, 1, 1.0, 0.0, false),
              *w = ax_test_randn(2, (int64_t[]){n, kk}, 2, 0.3, 0.0, false),
              *b = ax_test_randn(1, (int64_t[]){n}, 3, 0.5, 0.0, false),
              *dy = ax_test_randn(2, (int64_t[]){m, n}, 4, 1.0, 0.0, false);
    for (size_t a = 0; a < sizeof ax_acts / sizeof ax_acts[0]; a++) {
        ax_linear_act_op act = ax_acts[a];
        ax_tensor *y, *pre, *ref, *ref3, *x3, *w3, *dx, *dw, *db, *dpre;
        assert_ok(ax_tensor_empty(&y, 2, (int64_t[]){m, n}, AX_DTYPE_F32));
        assert_ok(ax_tensor_empty(&pre, 2, (int64_t[]){m, n}, AX_DTYPE_F32));
        assert_ok(k->linear(y, pre, x, w, b, act));
        /* reference: matmul kernel, add, unary */
        assert_ok(ax_tensor_empty(&ref3, 3, (int64_t[]){1, m, n}, AX_DTYPE_F32));
        assert_ok(ax_tensor_reshape(&x3, x, 3, (int64_t[]){1, m, kk}));
        assert_ok(ax_tensor_reshape(&w3, w, 3, (int64_t[]){1, n, kk}));
        assert_ok(k->matmul(ref3, x3, w3, false, true, 1.0f, 0.0f));
        assert_ok(ax_tensor_reshape(&ref, ref3, 2, (int64_t[]){m, n}));
        ax_tensor *bv;
        assert_ok(ax_tensor_expand(&bv, b, 2, (int64_t[]){m, n}));
        assert_ok(k->binary(AX_BINARY_ADD, ref, ref, bv));
        assert_true(ax_same_bits("pre", pre, ref));
        ax_unary_op uop = act == AX_LINEAR_ACT_RELU ? AX_UNARY_RELU : AX_UNARY_GELU_TANH;
        const double p[2] = {0, 0};
        if (act != AX_LINEAR_ACT_NONE) assert_ok(k->unary(uop, ref, ref, p));
        if (act == AX_LINEAR_ACT_GELU_TANH) /* exp-based, see test_fused_equals_composed */
            assert_true(ax_allclose("y", y, ref, 1e-6, 1e-4));
        else
            assert_true(ax_same_bits("y", y, ref));
        /* backward, with pre (and for RELU also with y in pre's place) */
        for (int use_y = 0; use_y <= (act == AX_LINEAR_ACT_RELU); use_y++) {
            assert_ok(ax_tensor_empty(&dx, 2, (int64_t[]){m, kk}, AX_DTYPE_F32));
            assert_ok(ax_tensor_zeros(&dw, 2, (int64_t[]){n, kk}, AX_DTYPE_F32));
            assert_ok(ax_tensor_fill_(dw, 0.25)); /* dw accumulates */
            assert_ok(ax_tensor_zeros(&db, 1, (int64_t[]){n}, AX_DTYPE_F32));
            assert_ok(ax_tensor_fill_(db, -1.0)); /* db too */
            assert_ok(k->linear_backward(dx, dw, db, dy, x, w, act == AX_LINEAR_ACT_NONE ? NULL : use_y ? y : pre, act));
            assert_ok(ax_tensor_empty(&dpre, 2, (int64_t[]){m, n}, AX_DTYPE_F32));
            if (act == AX_LINEAR_ACT_NONE)
                assert_ok(k->copy(dpre, dy));
            else
                assert_ok(k->unary_backward(uop, dpre, dy, pre, NULL, p));
            ax_tensor *wx, *rdx, *rdw, *rdb, *t;
            assert_ok(ax_matmul(&rdx, dpre, w));
            assert_true(ax_allclose("dx", dx, rdx, 1e-5, 1e-5));
            assert_ok(ax_tensor_transpose(&t, dpre, 0, 1));
            assert_ok(ax_matmul(&wx, t, x));
            assert_ok(ax_add_scalar(&rdw, wx, 0.25));
            assert_true(ax_allclose("dw", dw, rdw, 1e-5, 1e-5));
            ax_tensor *s;
            assert_ok(ax_sum(&s, dpre, 1, (int[]){0}, false));
            assert_ok(ax_add_scalar(&rdb, s, -1.0));
            assert_true(ax_allclose("db", db, rdb, 1e-5, 1e-5));
            ax_tensor_free(s), ax_tensor_free(t), ax_tensor_free(wx), ax_tensor_free(rdx), ax_tensor_free(rdw);
            ax_tensor_free(rdb), ax_tensor_free(dx), ax_tensor_free(dw), ax_tensor_free(db), ax_tensor_free(dpre);
        }
        ax_tensor_free(bv), ax_tensor_free(x3), ax_tensor_free(w3), ax_tensor_free(ref3), ax_tensor_free(ref);
        ax_tensor_free(y), ax_tensor_free(pre);
    }
    ax_tensor_free(x), ax_tensor_free(w), ax_tensor_free(b), ax_tensor_free(dy);
}

/* db is summed in fixed row blocks: the same bits for any thread count. */
static void test_bias_grad_thread_independent(void **state) {
    (void)state;
    const ax_kernels *k = ax_cpu_kernels();
    int64_t m = 1000, n = 96, kk = 8;
    ax_tensor *x = ax_test_randn(2, (int64_t[]){m, kk}, 1, 1.0, 0.0, false),
              *w = ax_test_randn(2, (int64_t[]){n, kk}, 2, 1.0, 0.0, false),
              *dy = ax_test_randn(2, (int64_t[]){m, n}, 3, 1.0, 0.0, false), *pre, *db[2];
    assert_ok(ax_tensor_empty(&pre, 2, (int64_t[]){m, n}, AX_DTYPE_F32));
    assert_ok(k->linear(pre, NULL, x, w, NULL, AX_LINEAR_ACT_NONE));
    int threads = ax_num_threads();
    for (int t = 0; t < 2; t++) {
        ax_set_num_threads(t == 0 ? 1 : 3);
        assert_ok(ax_tensor_zeros(&db[t], 1, &n, AX_DTYPE_F32));
        assert_ok(k->linear_backward(NULL, NULL, db[t], dy, x, w, pre, AX_LINEAR_ACT_GELU_TANH));
    }
    ax_set_num_threads(threads);
    assert_true(ax_same_bits("db, 1 vs 3 threads", db[0], db[1]));
    ax_tensor_free(db[0]), ax_tensor_free(db[1]);
    ax_tensor_free(x), ax_tensor_free(w), ax_tensor_free(dy), ax_tensor_free(pre);
}

/* Strided x (copied), bf16 operands (the composed path: the CPU has no
 * bf16 GEMM), empty and K = 0 shapes, and an autocast region (a no-op on
 * the CPU: bit-identical results). */
static void test_layouts_and_dtypes(void **state) {
    (void)state;
    ax_tensor *xt = ax_test_randn(3, (int64_t[]){2, 9, 5}, 1, 1.0, 0.0, true),
              *w = ax_test_randn(2, (int64_t[]){4, 9}, 2, 0.4, 0.0, true),
              *b = ax_test_randn(1, (int64_t[]){4}, 3, 0.5, 0.0, true);
    ax_tensor *x, *xc, *y1, *y2, *y3, *xb, *wb, *bb, *yb, *yb32;
    assert_ok(ax_tensor_transpose(&x, xt, 1, 2)); /* [2, 5, 9], strided */
    ax_no_grad_begin();
    assert_ok(ax_tensor_contiguous(&xc, x));
    ax_no_grad_end();
    assert_ok(ax_linear_act(&y1, x, w, b, AX_LINEAR_ACT_GELU_TANH));
    assert_ok(ax_linear_act(&y2, xc, w, b, AX_LINEAR_ACT_GELU_TANH));
    assert_true(ax_same_bits("strided x", y1, y2));
    ax_tensor_free(y1);
    /* gradient reaches the strided view's base */
    ax_tensor *s;
    assert_ok(ax_linear_act(&y1, x, w, b, AX_LINEAR_ACT_RELU));
    assert_ok(ax_sum(&s, y1, 0, NULL, false));
    assert_ok(ax_backward(s, NULL));
    assert_non_null(xt->grad);
    assert_int_equal(xt->grad->shape[1], 9);
    ax_tensor_free(s), ax_tensor_free(y1);
    /* autocast: no half GEMM on the CPU, so nothing changes */
    assert_ok(ax_autocast_begin(AX_DTYPE_BF16));
    ax_status st = ax_linear_act(&y3, xc, w, b, AX_LINEAR_ACT_GELU_TANH);
    ax_autocast_end();
    assert_ok(st);
    assert_int_equal(y3->dtype, AX_DTYPE_F32);
    assert_true(ax_same_bits("autocast on the CPU", y3, y2));
    /* bf16: computed in f32 and rounded, like matmul */
    assert_ok(ax_tensor_to_dtype(&xb, xc, AX_DTYPE_BF16));
    assert_ok(ax_tensor_to_dtype(&wb, w, AX_DTYPE_BF16));
    assert_ok(ax_tensor_to_dtype(&bb, b, AX_DTYPE_BF16));
    assert_ok(ax_linear_act(&yb, xb, wb, bb, AX_LINEAR_ACT_GELU_TANH));
    assert_int_equal(yb->dtype, AX_DTYPE_BF16);
    assert_ok(ax_tensor_to_dtype(&yb32, yb, AX_DTYPE_F32));
    assert_true(ax_allclose("bf16", yb32, y2, 3e-2, 3e-2));
    /* K = 0: y = act(b) for every row; M = 0: empty */
    ax_tensor *x0, *w0, *y0, *xe, *ye;
    assert_ok(ax_tensor_zeros(&x0, 2, (int64_t[]){3, 0}, AX_DTYPE_F32));
    assert_ok(ax_tensor_zeros(&w0, 2, (int64_t[]){4, 0}, AX_DTYPE_F32));
    assert_ok(ax_linear_act(&y0, x0, w0, b, AX_LINEAR_ACT_RELU));
    for (int64_t i = 0; i < 3; i++)
        for (int64_t j = 0; j < 4; j++) {
            double bj = ax_tensor_get(b, j);
            assert_true(ax_tensor_get(y0, i * 4 + j) == (bj > 0 ? bj : 0.0));
        }
    assert_ok(ax_tensor_zeros(&xe, 3, (int64_t[]){0, 2, 9}, AX_DTYPE_F32));
    assert_ok(ax_linear_act(&ye, xe, w, b, AX_LINEAR_ACT_GELU_TANH));
    assert_int_equal(ye->ndim, 3);
    assert_int_equal(ye->shape[2], 4);
    assert_int_equal(ax_tensor_numel(ye), 0);
    ax_tensor *objs[] = {xt, w, b, x, xc, y2, y3, xb, wb, bb, yb, yb32, x0, w0, y0, xe, ye};
    for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) ax_tensor_free(objs[i]);
}

static void test_bad_shapes(void **state) {
    (void)state;
    ax_tensor *x = ax_test_randn(2, (int64_t[]){2, 3}, 1, 1, 0, false), *w = ax_test_randn(2, (int64_t[]){4, 5}, 2, 1, 0, false),
              *w3 = ax_test_randn(2, (int64_t[]){4, 3}, 2, 1, 0, false), *b = ax_test_randn(1, (int64_t[]){5}, 3, 1, 0, false),
              *y = (ax_tensor *)0x1;
    assert_int_equal(ax_linear_act(&y, x, w, NULL, AX_LINEAR_ACT_RELU), AX_ERR_INVALID);
    assert_null(y);
    assert_msg("ax_linear_act: x [2, 3] does not fit weight [4, 5]");
    assert_int_equal(ax_linear_act(&y, x, w3, b, AX_LINEAR_ACT_GELU_TANH), AX_ERR_INVALID);
    assert_msg("ax_linear_act: bias [5] does not match weight [4, 3]");
    assert_int_equal(ax_linear(&y, x, w, NULL), AX_ERR_INVALID);
    assert_msg("ax_linear: x [2, 3] does not fit weight [4, 5]");
    assert_int_equal(ax_linear_act(&y, x, w3, NULL, (ax_linear_act_op)7), AX_ERR_INVALID);
    assert_msg("ax_linear_act: act 7");
    /* the kernel checks its operands too */
    ax_tensor *out;
    assert_ok(ax_tensor_empty(&out, 2, (int64_t[]){2, 5}, AX_DTYPE_F32));
    assert_int_equal(ax_cpu_kernels()->linear(out, NULL, x, w3, NULL, AX_LINEAR_ACT_NONE), AX_ERR_INVALID);
    assert_msg("ax_cpu_linear: x f32 [2, 3], w f32 [4, 3], b -, y f32 [2, 5]");
    assert_int_equal(ax_cpu_kernels()->linear_backward(NULL, NULL, NULL, out, x, w3, NULL, AX_LINEAR_ACT_GELU_TANH),
                     AX_ERR_INVALID);
    assert_msg("ax_cpu_linear_backward: dy f32 [2, 5]");
    ax_tensor_free(out), ax_tensor_free(x), ax_tensor_free(w), ax_tensor_free(w3), ax_tensor_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_torch_parity),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_fused_equals_composed),
        cmocka_unit_test(test_kernel_member),
        cmocka_unit_test(test_bias_grad_thread_independent),
        cmocka_unit_test(test_layouts_and_dtypes),
        cmocka_unit_test(test_bad_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
