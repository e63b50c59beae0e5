/* Every op: forward values on known inputs, finite-difference gradient
 * checks on random shapes (with broadcasting and non-contiguous views),
 * and the error each bad argument gives. PyTorch parity lives in
 * test_ops_torch.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "gradcheck.h"

/* ---- one function for every op under test ------------------------------ */

typedef enum {
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_POW, OP_MAXIMUM, OP_MINIMUM, OP_WHERE,
    OP_NEG, OP_EXP, OP_LOG, OP_SQRT, OP_RSQRT, OP_ABS, OP_CLAMP,
    OP_RELU, OP_LEAKY, OP_GELU, OP_GELU_TANH, OP_SILU, OP_SIGMOID, OP_TANH, OP_SOFTPLUS,
    OP_ADDS, OP_MULS, OP_POWS,
    OP_SUM, OP_MEAN, OP_VAR, OP_STD, OP_MAX, OP_MIN, OP_LSE, OP_NORM,
    OP_SOFTMAX, OP_LOG_SOFTMAX, OP_MATMUL, OP_LINEAR, OP_LINEAR_NOBIAS,
    OP_PERMUTE, OP_SLICE, OP_EXPAND, OP_RESHAPE, OP_BF16
} ax_op_id;

typedef struct ax_case {
    ax_op_id op;
    double p[2];
    int ndims, dims[4];
    bool keep;
    bool transpose_first; /* feed a transposed (non-contiguous) view of input 0 */
} ax_case;

static ax_status ax_case_run(ax_tensor **out, ax_tensor *const *in, void *ctx) {
    const ax_case *c = ctx;
    ax_tensor *x = in[0], *t = NULL;
    ax_status st;
    if (c->transpose_first) {
        if (ax_tensor_transpose(&t, in[0], 0, -1) != AX_OK) return ax_error_status();
        x = t;
    }
    switch (c->op) {
    case OP_ADD: st = ax_add(out, x, in[1]); break;
    case OP_SUB: st = ax_sub(out, x, in[1]); break;
    case OP_MUL: st = ax_mul(out, x, in[1]); break;
    case OP_DIV: st = ax_div(out, x, in[1]); break;
    case OP_POW: st = ax_pow(out, x, in[1]); break;
    case OP_MAXIMUM: st = ax_maximum(out, x, in[1]); break;
    case OP_MINIMUM: st = ax_minimum(out, x, in[1]); break;
    case OP_WHERE: {
        ax_tensor *cond;
        st = ax_gt(&cond, x, in[1]);
        if (st == AX_OK) st = ax_where(out, cond, x, in[1]);
        ax_tensor_free(cond);
        break;
    }
    case OP_NEG: st = ax_neg(out, x); break;
    case OP_EXP: st = ax_exp(out, x); break;
    case OP_LOG: st = ax_log(out, x); break;
    case OP_SQRT: st = ax_sqrt(out, x); break;
    case OP_RSQRT: st = ax_rsqrt(out, x); break;
    case OP_ABS: st = ax_abs(out, x); break;
    case OP_CLAMP: st = ax_clamp(out, x, c->p[0], c->p[1]); break;
    case OP_RELU: st = ax_relu(out, x); break;
    case OP_LEAKY: st = ax_leaky_relu(out, x, c->p[0]); break;
    case OP_GELU: st = ax_gelu(out, x, false); break;
    case OP_GELU_TANH: st = ax_gelu(out, x, true); break;
    case OP_SILU: st = ax_silu(out, x); break;
    case OP_SIGMOID: st = ax_sigmoid(out, x); break;
    case OP_TANH: st = ax_tanh(out, x); break;
    case OP_SOFTPLUS: st = ax_softplus(out, x, c->p[0], c->p[1]); break;
    case OP_ADDS: st = ax_add_scalar(out, x, c->p[0]); break;
    case OP_MULS: st = ax_mul_scalar(out, x, c->p[0]); break;
    case OP_POWS: st = ax_pow_scalar(out, x, c->p[0]); break;
    case OP_SUM: st = ax_sum(out, x, c->ndims, c->dims, c->keep); break;
    case OP_MEAN: st = ax_mean(out, x, c->ndims, c->dims, c->keep); break;
    case OP_VAR: st = ax_var(out, x, c->ndims, c->dims, (int)c->p[0], c->keep); break;
    case OP_STD: st = ax_std(out, x, c->ndims, c->dims, (int)c->p[0], c->keep); break;
    case OP_MAX: st = ax_max(out, NULL, x, c->dims[0], c->keep); break;
    case OP_MIN: st = ax_min(out, NULL, x, c->dims[0], c->keep); break;
    case OP_LSE: st = ax_logsumexp(out, x, c->ndims, c->dims, c->keep); break;
    case OP_NORM: st = ax_norm(out, x, c->p[0], c->ndims, c->dims, c->keep); break;
    case OP_SOFTMAX: st = ax_softmax(out, x, c->dims[0]); break;
    case OP_LOG_SOFTMAX: st = ax_log_softmax(out, x, c->dims[0]); break;
    case OP_MATMUL: st = ax_matmul(out, x, in[1]); break;
    case OP_LINEAR: st = ax_linear(out, x, in[1], in[2]); break;
    case OP_LINEAR_NOBIAS: st = ax_linear(out, x, in[1], NULL); break;
    case OP_PERMUTE: st = ax_tensor_permute(out, x, (int[]){2, 0, 1}); break;
    case OP_SLICE: st = ax_tensor_slice(out, x, 1, 1, -1, 2); break;
    case OP_EXPAND: {
        ax_tensor *e;
        st = ax_tensor_expand(&e, x, 4, (int64_t[]){4, -1, -1, -1});
        if (st == AX_OK) st = ax_mul(out, e, e);
        ax_tensor_free(e);
        break;
    }
    case OP_RESHAPE: st = ax_tensor_reshape(out, x, 2, (int64_t[]){-1, 2}); break;
    case OP_BF16: {
        ax_tensor *h, *y;
        st = ax_tensor_to_dtype(&h, x, AX_DTYPE_BF16);
        if (st == AX_OK) st = ax_tanh(&y, h);
        if (st == AX_OK) st = ax_tensor_to_dtype(out, y, AX_DTYPE_F32);
        ax_tensor_free(h);
        ax_tensor_free(y);
        break;
    }
    default: st = AX_ERR_INTERNAL;
    }
    ax_tensor_free(t);
    return st;
}

#define S(...) (int64_t[]){__VA_ARGS__}

/* gradcheck op on inputs of the given shapes (input k: N(0,1)*scale+shift) */
static void ax_check_case(const ax_case *c, int n, const int *ndims, const int64_t *const *shapes, double scale,
                          double shift, const ax_gc_opts *opts) {
    ax_tensor *in[3] = {NULL, NULL, NULL};
    for (int k = 0; k < n; k++) {
        in[k] = ax_test_randn(ndims[k], shapes[k], 100 + (uint64_t)k, scale, shift, true);
        assert_non_null(in[k]);
    }
    bool ok = ax_gradcheck(ax_case_run, n, in, (void *)c, opts ? opts : &AX_GC_DEFAULT);
    if (!ok) fprintf(stderr, "  (op %d)\n", (int)c->op);
    for (int k = 0; k < n; k++) ax_tensor_free(in[k]);
    assert_true(ok);
}

static void ax_unary(ax_op_id op, double p0, double p1, double scale, double shift) {
    ax_case c = {.op = op, .p = {p0, p1}};
    ax_check_case(&c, 1, (int[]){3}, (const int64_t *const[]){S(2, 3, 4)}, scale, shift, NULL);
    c.transpose_first = true;
    ax_check_case(&c, 1, (int[]){3}, (const int64_t *const[]){S(4, 3, 2)}, scale, shift, NULL);
}

static void ax_binary(ax_op_id op, double scale, double shift) {
    ax_case c = {.op = op};
    /* same shape, broadcasting both ways, and a transposed a */
    ax_check_case(&c, 2, (int[]){2, 2}, (const int64_t *const[]){S(3, 4), S(3, 4)}, scale, shift, NULL);
    ax_check_case(&c, 2, (int[]){3, 2}, (const int64_t *const[]){S(2, 1, 4), S(3, 1)}, scale, shift, NULL);
    ax_check_case(&c, 2, (int[]){1, 3}, (const int64_t *const[]){S(4), S(2, 3, 4)}, scale, shift, NULL);
    c.transpose_first = true;
    ax_check_case(&c, 2, (int[]){2, 2}, (const int64_t *const[]){S(4, 3), S(3, 4)}, scale, shift, NULL);
}

static void test_grad_binary(void **state) {
    (void)state;
    ax_binary(OP_ADD, 1, 0);
    ax_binary(OP_SUB, 1, 0);
    ax_binary(OP_MUL, 1, 0);
    ax_binary(OP_DIV, 0.3, 2);   /* keep b away from 0 */
    ax_binary(OP_POW, 0.2, 1.5); /* positive bases */
    ax_binary(OP_MAXIMUM, 1, 0);
    ax_binary(OP_MINIMUM, 1, 0);
    ax_binary(OP_WHERE, 1, 0);
}

static void test_grad_unary(void **state) {
    (void)state;
    ax_unary(OP_NEG, 0, 0, 1, 0);
    ax_unary(OP_EXP, 0, 0, 1, 0);
    ax_unary(OP_LOG, 0, 0, 0.3, 2);
    ax_unary(OP_SQRT, 0, 0, 0.3, 2);
    ax_unary(OP_RSQRT, 0, 0, 0.3, 2);
    ax_unary(OP_ABS, 0, 0, 1, 0);
    ax_unary(OP_CLAMP, -0.5, 0.7, 1, 0);
    ax_unary(OP_ADDS, 2.5, 0, 1, 0);
    ax_unary(OP_MULS, -1.5, 0, 1, 0);
    ax_unary(OP_POWS, 3, 0, 1, 0);
    ax_unary(OP_POWS, 0.5, 0, 0.3, 2);
}

static void test_grad_activations(void **state) {
    (void)state;
    ax_unary(OP_RELU, 0, 0, 1, 0);
    ax_unary(OP_LEAKY, 0.01, 0, 1, 0);
    ax_unary(OP_LEAKY, 0.2, 0, 1, 0);
    ax_unary(OP_GELU, 0, 0, 1, 0);
    ax_unary(OP_GELU_TANH, 0, 0, 1, 0);
    ax_unary(OP_SILU, 0, 0, 1, 0);
    ax_unary(OP_SIGMOID, 0, 0, 2, 0);
    ax_unary(OP_TANH, 0, 0, 1, 0);
    ax_unary(OP_SOFTPLUS, 1, 20, 1, 0);
    ax_unary(OP_SOFTPLUS, 2, 1, 1, 0); /* crosses the threshold */
}

static void ax_reduction(ax_op_id op, double p0, int ndims, const int *dims, bool keep) {
    ax_case c = {.op = op, .p = {p0, 0}, .ndims = ndims, .keep = keep};
    for (int i = 0; i < ndims; i++) c.dims[i] = dims[i];
    /* max/min are piecewise linear: spread the values so no two lie within
     * eps of each other and a difference never straddles a switch */
    double scale = op == OP_MAX || op == OP_MIN ? 10 : 1;
    ax_check_case(&c, 1, (int[]){3}, (const int64_t *const[]){S(3, 4, 5)}, scale, 0.5, NULL);
    c.transpose_first = true;
    ax_check_case(&c, 1, (int[]){3}, (const int64_t *const[]){S(5, 4, 3)}, scale, 0.5, NULL);
}

static void test_grad_reductions(void **state) {
    (void)state;
    for (int keep = 0; keep < 2; keep++) {
        for (ax_op_id op = OP_SUM; op <= OP_LSE; op++) {
            if (op == OP_MAX || op == OP_MIN) {
                ax_reduction(op, 0, 1, (int[]){1}, keep);
                ax_reduction(op, 0, 1, (int[]){-1}, keep);
                continue;
            }
            ax_reduction(op, 1, 0, NULL, keep);
            ax_reduction(op, 1, 1, (int[]){1}, keep);
            ax_reduction(op, 0, 2, (int[]){0, 2}, keep);
        }
        ax_reduction(OP_NORM, 2, 1, (int[]){2}, keep);
        ax_reduction(OP_NORM, 3, 0, NULL, keep);
    }
}

static void test_grad_softmax(void **state) {
    (void)state;
    for (int d = -1; d < 3; d++) {
        ax_case c = {.op = OP_SOFTMAX, .dims = {d}};
        ax_check_case(&c, 1, (int[]){3}, (const int64_t *const[]){S(2, 3, 4)}, 2, 0, NULL);
        c.op = OP_LOG_SOFTMAX;
        c.transpose_first = true;
        ax_check_case(&c, 1, (int[]){3}, (const int64_t *const[]){S(2, 3, 4)}, 2, 0, NULL);
    }
}

static void test_grad_matmul(void **state) {
    (void)state;
    ax_case c = {.op = OP_MATMUL};
    ax_check_case(&c, 2, (int[]){2, 2}, (const int64_t *const[]){S(3, 4), S(4, 5)}, 1, 0, NULL);
    ax_check_case(&c, 2, (int[]){3, 2}, (const int64_t *const[]){S(2, 3, 4), S(4, 5)}, 1, 0, NULL);
    ax_check_case(&c, 2, (int[]){1, 3}, (const int64_t *const[]){S(4), S(2, 4, 3)}, 1, 0, NULL);
    ax_check_case(&c, 2, (int[]){4, 1}, (const int64_t *const[]){S(2, 1, 3, 4), S(4)}, 1, 0, NULL);
    ax_check_case(&c, 2, (int[]){1, 1}, (const int64_t *const[]){S(4), S(4)}, 1, 0, NULL);
    c.transpose_first = true; /* a transposed view goes to the kernel as is */
    ax_check_case(&c, 2, (int[]){2, 2}, (const int64_t *const[]){S(4, 3), S(4, 5)}, 1, 0, NULL);
    ax_case l = {.op = OP_LINEAR};
    ax_check_case(&l, 3, (int[]){3, 2, 1}, (const int64_t *const[]){S(2, 3, 4), S(5, 4), S(5)}, 1, 0, NULL);
    l.op = OP_LINEAR_NOBIAS;
    ax_check_case(&l, 2, (int[]){2, 2}, (const int64_t *const[]){S(3, 4), S(5, 4)}, 1, 0, NULL);
}

static void test_grad_views(void **state) {
    (void)state;
    ax_op_id ops[] = {OP_PERMUTE, OP_SLICE, OP_EXPAND, OP_RESHAPE, OP_BF16};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        ax_case c = {.op = ops[i]};
        const ax_gc_opts loose = {.eps = 5e-2, .atol = 2e-2, .rtol = 5e-2, .max_elems = 48};
        ax_check_case(&c, 1, (int[]){3}, (const int64_t *const[]){S(2, 4, 3)}, 1, 0,
                      ops[i] == OP_BF16 ? &loose : NULL);
        if (ops[i] == OP_RESHAPE) { /* transposed: reshape must copy */
            c.transpose_first = true;
            ax_check_case(&c, 1, (int[]){3}, (const int64_t *const[]){S(2, 4, 3)}, 1, 0, NULL);
        }
    }
}

/* ---- forward values -------------------------------------------------------- */

static ax_tensor *ax_vec(int n, const double *v) {
    ax_tensor *t;
    int64_t shape = n;
    assert_int_equal(ax_tensor_empty(&t, 1, &shape, AX_DTYPE_F32), AX_OK);
    for (int i = 0; i < n; i++) ax_tensor_set(t, i, v[i]);
    return t;
}

static void ax_expect(ax_tensor *t, int n, const double *want, double tol) {
    assert_non_null(t);
    assert_int_equal(ax_tensor_numel(t), n);
    for (int i = 0; i < n; i++) {
        double g = ax_tensor_get(t, i);
        if (isnan(want[i]))
            assert_true(isnan(g));
        else if (fabs(g - want[i]) > tol * (1 + fabs(want[i])))
            fail_msg("element %d: got %.9g want %.9g", i, g, want[i]);
    }
    ax_tensor_free(t);
}

static void test_forward_values(void **state) {
    (void)state;
    ax_tensor *x = ax_vec(4, (double[]){-2, -0.5, 0, 3}), *y = NULL;
    assert_int_equal(ax_relu(&y, x), AX_OK);
    ax_expect(y, 4, (double[]){0, 0, 0, 3}, 0);
    assert_int_equal(ax_leaky_relu(&y, x, 0.01), AX_OK);
    ax_expect(y, 4, (double[]){-0.02, -0.005, 0, 3}, 1e-6);
    assert_int_equal(ax_gelu(&y, x, false), AX_OK);
    ax_expect(y, 4, (double[]){-0.0455002639, -0.1542687694, 0, 2.9959503059}, 1e-6);
    assert_int_equal(ax_gelu(&y, x, true), AX_OK);
    ax_expect(y, 4, (double[]){-0.0454023059, -0.1542859902, 0, 2.9963626079}, 1e-6);
    assert_int_equal(ax_softplus(&y, x, 1, 20), AX_OK);
    ax_expect(y, 4, (double[]){0.1269280110, 0.4740769842, 0.6931471806, 3.0485873516}, 1e-6);
    assert_int_equal(ax_clamp(&y, x, -1, 1), AX_OK);
    ax_expect(y, 4, (double[]){-1, -0.5, 0, 1}, 0);
    assert_int_equal(ax_softmax(&y, x, 0), AX_OK);
    ax_expect(y, 4, (double[]){0.0062002467, 0.0277875780, 0.0458139709, 0.9201982044}, 1e-6);
    assert_int_equal(ax_logsumexp(&y, x, 0, NULL, false), AX_OK);
    ax_expect(y, 1, (double[]){3.0831661926}, 1e-6);
    assert_int_equal(ax_var(&y, x, 0, NULL, 1, false), AX_OK);
    ax_expect(y, 1, (double[]){4.3958333333}, 1e-6);
    assert_int_equal(ax_norm(&y, x, 2, 0, NULL, false), AX_OK);
    ax_expect(y, 1, (double[]){3.6400549}, 1e-6);
    ax_tensor *v, *i;
    assert_int_equal(ax_max(&v, &i, x, 0, false), AX_OK);
    ax_expect(v, 1, (double[]){3}, 0);
    assert_int_equal(i->dtype, AX_DTYPE_I64);
    ax_expect(i, 1, (double[]){3}, 0);
    ax_tensor_free(x);

    /* logsumexp of an all -inf slice is -inf, not NaN */
    x = ax_vec(2, (double[]){-INFINITY, -INFINITY});
    assert_int_equal(ax_logsumexp(&y, x, 0, NULL, false), AX_OK);
    assert_true(isinf(ax_tensor_get(y, 0)) && ax_tensor_get(y, 0) < 0);
    ax_tensor_free(y);
    ax_tensor_free(x);

    /* integer arithmetic stays integer; division promotes like torch */
    ax_tensor *a, *b;
    assert_int_equal(ax_tensor_arange(&a, 0, 6, 1, AX_DTYPE_I64), AX_OK);
    assert_int_equal(ax_tensor_full(&b, 0, NULL, AX_DTYPE_I64, 2), AX_OK);
    assert_int_equal(ax_mul(&y, a, b), AX_OK);
    assert_int_equal(y->dtype, AX_DTYPE_I64);
    ax_expect(y, 6, (double[]){0, 2, 4, 6, 8, 10}, 0);
    assert_int_equal(ax_div(&y, a, b), AX_OK);
    assert_int_equal(y->dtype, AX_DTYPE_F32);
    ax_expect(y, 6, (double[]){0, 0.5, 1, 1.5, 2, 2.5}, 0);
    assert_int_equal(ax_sum(&y, a, 0, NULL, false), AX_OK);
    assert_int_equal(y->dtype, AX_DTYPE_I64);
    ax_expect(y, 1, (double[]){15}, 0);
    assert_int_equal(ax_ge(&y, a, b), AX_OK);
    assert_int_equal(y->dtype, AX_DTYPE_U8);
    ax_expect(y, 6, (double[]){0, 0, 1, 1, 1, 1}, 0);
    ax_tensor_free(a);
    ax_tensor_free(b);
}

static void test_matmul_values(void **state) {
    (void)state;
    ax_tensor *a, *b, *c;
    assert_int_equal(ax_tensor_arange(&a, 0, 6, 1, AX_DTYPE_F32), AX_OK);
    assert_int_equal(ax_tensor_arange(&b, 0, 6, 1, AX_DTYPE_F32), AX_OK);
    ax_tensor *a2, *b2;
    assert_int_equal(ax_tensor_view(&a2, a, 2, S(2, 3)), AX_OK);
    assert_int_equal(ax_tensor_view(&b2, b, 2, S(3, 2)), AX_OK);
    assert_int_equal(ax_matmul(&c, a2, b2), AX_OK); /* [[0,1,2],[3,4,5]] @ [[0,1],[2,3],[4,5]] */
    ax_expect(c, 4, (double[]){10, 13, 28, 40}, 1e-6);
    ax_tensor *bt;
    assert_int_equal(ax_tensor_transpose(&bt, a2, 0, 1), AX_OK); /* [3, 2], transposed layout */
    assert_int_equal(ax_matmul(&c, a2, bt), AX_OK);
    ax_expect(c, 4, (double[]){5, 14, 14, 50}, 1e-6);
    ax_tensor_free(a);
    ax_tensor_free(b);
    ax_tensor_free(a2);
    ax_tensor_free(b2);
    ax_tensor_free(bt);
}

/* ---- autograd mechanics -------------------------------------------------- */

static void test_autograd_accumulates_and_frees(void **state) {
    (void)state;
    ax_tensor *w = ax_test_randn(1, S(5), 1, 1, 0, true), *y, *l;
    for (int rep = 0; rep < 2; rep++) {
        assert_int_equal(ax_mul_scalar(&y, w, 3.0), AX_OK);
        assert_int_equal(ax_sum(&l, y, 0, NULL, false), AX_OK);
        assert_int_equal(ax_backward(l, NULL), AX_OK);
        /* a second backward through a used graph is refused */
        assert_int_equal(ax_backward(l, NULL), AX_ERR_STATE);
        ax_tensor_free(y);
        ax_tensor_free(l);
    }
    for (int i = 0; i < 5; i++) assert_float_equal(ax_tensor_get(w->grad, i), 6.0, 1e-6);
    ax_tensor_zero_grad(w);
    assert_null(w->grad);

    /* a diamond: x used twice */
    ax_tensor *a, *b, *s;
    assert_int_equal(ax_exp(&a, w), AX_OK);
    assert_int_equal(ax_mul(&b, a, a), AX_OK); /* exp(2w): d/dw = 2 exp(2w) */
    assert_int_equal(ax_sum(&s, b, 0, NULL, false), AX_OK);
    assert_int_equal(ax_backward(s, NULL), AX_OK);
    for (int i = 0; i < 5; i++)
        assert_float_equal(ax_tensor_get(w->grad, i), 2 * exp(2 * ax_tensor_get(w, i)), 1e-4);
    ax_tensor_free(a);
    ax_tensor_free(b);
    ax_tensor_free(s);

    /* no-grad scopes record nothing */
    ax_no_grad_begin();
    assert_int_equal(ax_exp(&a, w), AX_OK);
    ax_no_grad_end();
    assert_false(a->requires_grad);
    assert_null(a->grad_fn);
    assert_int_equal(ax_sum(&s, a, 0, NULL, false), AX_OK);
    assert_int_equal(ax_backward(s, NULL), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "does not require grad"));
    ax_tensor_free(a);
    ax_tensor_free(s);

    /* detach cuts the history */
    ax_tensor *d;
    assert_int_equal(ax_exp(&a, w), AX_OK);
    assert_int_equal(ax_tensor_detach(&d, a), AX_OK);
    assert_false(d->requires_grad);
    ax_tensor_free(a);
    ax_tensor_free(d);
    assert_int_equal(ax_tensor_set_requires_grad(w, false), AX_OK);
    ax_tensor_free(w);
}

/* A 5000-op chain frees without deep recursion. */
static void test_autograd_long_chain(void **state) {
    (void)state;
    ax_tensor *w = ax_test_randn(1, S(3), 2, 1, 0, true), *x = ax_tensor_retain(w), *l;
    for (int i = 0; i < 5000; i++) {
        ax_tensor *y;
        assert_int_equal(ax_mul_scalar(&y, x, 1.0001), AX_OK);
        ax_tensor_free(x);
        x = y;
    }
    assert_int_equal(ax_sum(&l, x, 0, NULL, false), AX_OK);
    assert_int_equal(ax_backward(l, NULL), AX_OK);
    assert_float_equal(ax_tensor_get(w->grad, 0), pow(1.0001, 5000), 1e-2);
    ax_tensor_free(x);
    ax_tensor_free(l);
    ax_tensor_free(w);
}

/* ---- errors -------------------------------------------------------------------- */

static void ax_expect_error(ax_status st, ax_status want, const char *text) {
    assert_int_equal(st, want);
    if (!strstr(ax_error_message(), text)) fail_msg("message \"%s\" lacks \"%s\"", ax_error_message(), text);
}

static void test_errors(void **state) {
    (void)state;
    ax_tensor *a = ax_test_randn(2, S(2, 3), 1, 1, 0, false), *b = ax_test_randn(1, S(4), 2, 1, 0, false), *y = NULL;
    ax_expect_error(ax_add(&y, a, b), AX_ERR_INVALID, "ax_add: cannot broadcast a [2, 3] with b [4]");
    assert_null(y);
    ax_expect_error(ax_matmul(&y, a, b), AX_ERR_INVALID, "ax_matmul: inner dims differ: a [2, 3], b [4]");
    ax_expect_error(ax_sum(&y, a, 1, (int[]){2}, false), AX_ERR_INVALID, "ax_sum: dim 2 out of range for x [2, 3]");
    ax_expect_error(ax_softmax(&y, a, 5), AX_ERR_INVALID, "ax_softmax: dim 5 out of range");
    ax_expect_error(ax_tensor_view(&y, a, 2, S(4, 2)), AX_ERR_INVALID,
                    "cannot view [2, 3] (6 elements) as [4, 2] (8 elements)");
    ax_expect_error(ax_linear(&y, a, b, NULL), AX_ERR_INVALID, "ax_linear: x [2, 3] does not fit weight [4]");
    ax_expect_error(ax_clamp(&y, a, 1, 0), AX_ERR_INVALID, "ax_clamp: lo 1 > hi 0");
    ax_tensor *ia;
    assert_int_equal(ax_tensor_arange(&ia, 0, 3, 1, AX_DTYPE_I32), AX_OK);
    ax_expect_error(ax_mean(&y, ia, 0, NULL, false), AX_ERR_INVALID, "ax_mean: x must be a floating tensor, got i32");
    ax_expect_error(ax_tensor_set_requires_grad(ia, true), AX_ERR_INVALID, "i32 tensors cannot require grad");
    ax_expect_error(ax_where(&y, a, a, a), AX_ERR_INVALID, "ax_where: cond must be u8");
    ax_tensor_free(ia);
    ax_tensor_free(a);
    ax_tensor_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_values),
        cmocka_unit_test(test_matmul_values),
        cmocka_unit_test(test_grad_binary),
        cmocka_unit_test(test_grad_unary),
        cmocka_unit_test(test_grad_activations),
        cmocka_unit_test(test_grad_reductions),
        cmocka_unit_test(test_grad_softmax),
        cmocka_unit_test(test_grad_matmul),
        cmocka_unit_test(test_grad_views),
        cmocka_unit_test(test_autograd_accumulates_and_frees),
        cmocka_unit_test(test_autograd_long_chain),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
