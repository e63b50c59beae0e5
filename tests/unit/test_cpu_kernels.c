/* Tests for the CPU reference kernels (kernels/cpu) through the kernel
 * table: every op against a naive reference computed in double from
 * ax_tensor_get, on permuted, sliced, broadcast and aliased operands, and
 * bit-identical results between thread counts. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "axon/kernels.h"
#include "axon/tensor.h"

/* ---- helpers ------------------------------------------------------------------ */

static void check_ok(ax_status st, const char *expr, int line) {
    if (st != AX_OK) fail_msg("line %d: %s returned %d: %s", line, expr, (int)st, ax_error_message());
}
#define OK(e) check_ok((e), #e, __LINE__)

static const ax_kernels *kern(void) { return ax_cpu_kernels(); }

static ax_tensor *new_empty(int ndim, const int64_t *shape, ax_dtype dtype) {
    ax_tensor *t;
    OK(ax_tensor_empty(&t, ndim, shape, dtype));
    return t;
}

static ax_tensor *new_randn(int ndim, const int64_t *shape, uint64_t seed, double scale) {
    ax_tensor *t;
    OK(ax_tensor_randn(&t, ndim, shape, AX_DTYPE_F32, seed, 0));
    int64_t n = ax_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) ax_tensor_set(t, i, ax_tensor_get(t, i) * scale);
    return t;
}

static ax_tensor *new_full(int ndim, const int64_t *shape, ax_dtype dtype, double v) {
    ax_tensor *t;
    OK(ax_tensor_full(&t, ndim, shape, dtype, v));
    return t;
}

/* A view of t (t's reference is handed to the view). */
static ax_tensor *permuted(ax_tensor *t, const int *perm) {
    ax_tensor *v;
    OK(ax_tensor_permute(&v, t, perm));
    ax_tensor_free(t);
    return v;
}

static ax_tensor *sliced(ax_tensor *t, int dim, int64_t start, int64_t end, int64_t step) {
    ax_tensor *v;
    OK(ax_tensor_slice(&v, t, dim, start, end, step));
    ax_tensor_free(t);
    return v;
}

static ax_tensor *expanded(ax_tensor *t, int ndim, const int64_t *shape) {
    ax_tensor *v;
    OK(ax_tensor_expand(&v, t, ndim, shape));
    ax_tensor_free(t);
    return v;
}

/* A contiguous copy with t's shape and dtype. */
static ax_tensor *copy_of(const ax_tensor *t) {
    ax_tensor *c = new_empty(t->ndim, t->shape, t->dtype);
    OK(ax_tensor_copy_(c, t));
    return c;
}

static double *values(const ax_tensor *t) {
    int64_t n = ax_tensor_numel(t);
    double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    assert_non_null(v);
    for (int64_t i = 0; i < n; i++) v[i] = ax_tensor_get(t, i);
    return v;
}

/* Fails naming the worst element when got (C order) is off want by more
 * than atol + rtol * |want|; NaN must meet NaN, inf the same inf. */
static void expect_close(const char *what, const ax_tensor *got, const double *want, double rtol, double atol) {
    int64_t n = ax_tensor_numel(got), worst = -1;
    double worst_excess = 0;
    for (int64_t i = 0; i < n; i++) {
        double g = ax_tensor_get(got, i), w = want[i], excess;
        if (isnan(w) || isnan(g))
            excess = isnan(w) && isnan(g) ? 0 : INFINITY;
        else if (isinf(w) || isinf(g))
            excess = g == w ? 0 : INFINITY;
        else
            excess = fabs(g - w) - (atol + rtol * fabs(w));
        if (excess > worst_excess || (worst < 0 && excess > 0)) {
            worst_excess = excess;
            worst = i;
        }
    }
    if (worst >= 0)
        fail_msg("%s: worst element %lld of %lld: got %.9g, want %.9g (rtol %g, atol %g)", what, (long long)worst,
                 (long long)n, ax_tensor_get(got, worst), want[worst], rtol, atol);
}

/* C-order coordinates of i in shape. */
static void unravel(int64_t i, int ndim, const int64_t *shape, int64_t *idx) {
    for (int d = ndim - 1; d >= 0; d--) {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
}

static int64_t ravel(int ndim, const int64_t *shape, const int64_t *idx) {
    int64_t lin = 0;
    for (int d = 0; d < ndim; d++) lin = lin * shape[d] + idx[d];
    return lin;
}

/* Element of t broadcast to shape, at C-order index i of shape. */
static double bcast_get(const ax_tensor *t, int ndim, const int64_t *shape, int64_t i) {
    int64_t idx[AX_MAX_DIMS] = {0}, lin = 0;
    unravel(i, ndim, shape, idx);
    for (int d = 0; d < t->ndim; d++) lin = lin * t->shape[d] + (t->shape[d] == 1 ? 0 : idx[d + ndim - t->ndim]);
    return ax_tensor_get(t, lin);
}

static bool bits_equal(const ax_tensor *a, const ax_tensor *b) {
    return ax_tensor_nbytes(a) == ax_tensor_nbytes(b) &&
           memcmp(ax_tensor_data(a), ax_tensor_data(b), ax_tensor_nbytes(a)) == 0;
}

/* ---- unary: references in double ------------------------------------------------ */

static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

static double ref_unary(ax_unary_op op, double x, const double *p) {
    const double k = sqrt(2.0 / M_PI);
    switch (op) {
    case AX_UNARY_NEG: return -x;
    case AX_UNARY_EXP: return exp(x);
    case AX_UNARY_LOG: return log(x);
    case AX_UNARY_SQRT: return sqrt(x);
    case AX_UNARY_RSQRT: return 1.0 / sqrt(x);
    case AX_UNARY_ABS: return fabs(x);
    case AX_UNARY_SIGN: return isnan(x) ? x : x > 0 ? 1 : x < 0 ? -1 : 0;
    case AX_UNARY_RELU: return isnan(x) ? x : x > 0 ? x : 0;
    case AX_UNARY_LEAKY_RELU: return x > 0 ? x : x * p[0];
    case AX_UNARY_GELU: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case AX_UNARY_GELU_TANH: return 0.5 * x * (1 + tanh(k * (x + 0.044715 * x * x * x)));
    case AX_UNARY_SILU: return x * ref_sigmoid(x);
    case AX_UNARY_SIGMOID: return ref_sigmoid(x);
    case AX_UNARY_TANH: return tanh(x);
    case AX_UNARY_SOFTPLUS: return p[0] * x > p[1] ? x : log1p(exp(p[0] * x)) / p[0];
    case AX_UNARY_CLAMP: return isnan(x) ? x : x < p[0] ? p[0] : x > p[1] ? p[1] : x;
    case AX_UNARY_POW: return pow(x, p[0]);
    case AX_UNARY_AFFINE: return p[0] * x + p[1];
    case AX_UNARY_RECIPROCAL: return 1.0 / x;
    }
    return NAN;
}

static double ref_unary_grad(ax_unary_op op, double x, const double *p) {
    const double k = sqrt(2.0 / M_PI);
    switch (op) {
    case AX_UNARY_NEG: return -1;
    case AX_UNARY_EXP: return exp(x);
    case AX_UNARY_LOG: return 1 / x;
    case AX_UNARY_SQRT: return 0.5 / sqrt(x);
    case AX_UNARY_RSQRT: return -0.5 * pow(x, -1.5);
    case AX_UNARY_ABS: return isnan(x) ? x : x > 0 ? 1 : x < 0 ? -1 : 0;
    case AX_UNARY_SIGN: return 0;
    case AX_UNARY_RELU: return x <= 0 ? 0 : 1; /* torch: 0 where relu(x) <= 0, so NaN passes dy */
    case AX_UNARY_LEAKY_RELU: return x > 0 ? 1 : p[0];
    case AX_UNARY_GELU: return 0.5 * (1 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) / sqrt(2 * M_PI);
    case AX_UNARY_GELU_TANH: {
        double t = tanh(k * (x + 0.044715 * x * x * x));
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * k * (1 + 3 * 0.044715 * x * x);
    }
    case AX_UNARY_SILU: {
        double s = ref_sigmoid(x);
        return s * (1 + x * (1 - s));
    }
    case AX_UNARY_SIGMOID: return ref_sigmoid(x) * (1 - ref_sigmoid(x));
    case AX_UNARY_TANH: return 1 - tanh(x) * tanh(x);
    case AX_UNARY_SOFTPLUS: return p[0] * x > p[1] ? 1 : ref_sigmoid(p[0] * x);
    case AX_UNARY_CLAMP: return x >= p[0] && x <= p[1] ? 1 : 0;
    case AX_UNARY_POW: return p[0] == 0 ? 0 : p[0] * pow(x, p[0] - 1);
    case AX_UNARY_AFFINE: return p[0];
    case AX_UNARY_RECIPROCAL: return -1 / (x * x);
    }
    return NAN;
}

/* Points where the derivative jumps: finite differences skip them. */
static bool near_kink(ax_unary_op op, double x, const double *p) {
    switch (op) {
    case AX_UNARY_ABS:
    case AX_UNARY_SIGN:
    case AX_UNARY_RELU:
    case AX_UNARY_LEAKY_RELU: return fabs(x) < 1e-3;
    case AX_UNARY_CLAMP: return fabs(x - p[0]) < 1e-3 || fabs(x - p[1]) < 1e-3;
    case AX_UNARY_SOFTPLUS: return fabs(p[0] * x - p[1]) < 1e-3;
    default: return false;
    }
}

enum { DOMAIN_ANY, DOMAIN_POSITIVE, DOMAIN_NONZERO };

typedef struct unary_case {
    ax_unary_op op;
    const char *name;
    double p[2];
    int domain;
} unary_case;

static const unary_case unary_cases[] = {
    {AX_UNARY_NEG, "neg", {0, 0}, DOMAIN_ANY},
    {AX_UNARY_EXP, "exp", {0, 0}, DOMAIN_ANY},
    {AX_UNARY_LOG, "log", {0, 0}, DOMAIN_POSITIVE},
    {AX_UNARY_SQRT, "sqrt", {0, 0}, DOMAIN_POSITIVE},
    {AX_UNARY_RSQRT, "rsqrt", {0, 0}, DOMAIN_POSITIVE},
    {AX_UNARY_ABS, "abs", {0, 0}, DOMAIN_ANY},
    {AX_UNARY_SIGN, "sign", {0, 0}, DOMAIN_ANY},
    {AX_UNARY_RELU, "relu", {0, 0}, DOMAIN_ANY},
    {AX_UNARY_LEAKY_RELU, "leaky_relu", {0.125, 0}, DOMAIN_ANY},
    {AX_UNARY_GELU, "gelu", {0, 0}, DOMAIN_ANY},
    {AX_UNARY_GELU_TANH, "gelu_tanh", {0, 0}, DOMAIN_ANY},
    {AX_UNARY_SILU, "silu", {0, 0}, DOMAIN_ANY},
    {AX_UNARY_SIGMOID, "sigmoid", {0, 0}, DOMAIN_ANY},
    {AX_UNARY_TANH, "tanh", {0, 0}, DOMAIN_ANY},
    {AX_UNARY_SOFTPLUS, "softplus", {1.5, 2.0}, DOMAIN_ANY},
    {AX_UNARY_CLAMP, "clamp", {-0.5, 0.75}, DOMAIN_ANY},
    {AX_UNARY_POW, "pow", {2.5, 0}, DOMAIN_POSITIVE},
    {AX_UNARY_AFFINE, "affine", {-1.5, 0.25}, DOMAIN_ANY},
    {AX_UNARY_RECIPROCAL, "reciprocal", {0, 0}, DOMAIN_NONZERO},
};

/* randn * 3 mapped into the op's domain, contiguous. */
static ax_tensor *unary_input(int ndim, const int64_t *shape, uint64_t seed, int domain) {
    ax_tensor *t = new_randn(ndim, shape, seed, 3.0);
    int64_t n = ax_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        double v = ax_tensor_get(t, i);
        if (domain == DOMAIN_POSITIVE) v = fabs(v) + 0.05;
        if (domain == DOMAIN_NONZERO) v = v < 0 ? v - 0.1 : v + 0.1;
        ax_tensor_set(t, i, v);
    }
    return t;
}

static double *unary_want(const unary_case *c, const ax_tensor *x) {
    double *w = values(x);
    for (int64_t i = 0; i < ax_tensor_numel(x); i++) w[i] = ref_unary(c->op, w[i], c->p);
    return w;
}

static void check_unary_forward(const unary_case *c) {
    const int64_t shape[] = {5, 4, 6}, yshape[] = {4, 6, 5}, big[] = {2, 60000};
    const int perm[] = {2, 0, 1}, yperm[] = {1, 2, 0};
    char what[96];
    /* x: a permuted view [6, 5, 4] */
    ax_tensor *x = permuted(unary_input(3, shape, 11, c->domain), perm);
    double *want = unary_want(c, x);
    ax_tensor *y = new_empty(3, x->shape, AX_DTYPE_F32);
    OK(kern()->unary(c->op, y, x, c->p));
    snprintf(what, sizeof what, "%s: permuted x", c->name);
    expect_close(what, y, want, 2e-6, 1e-6);
    /* y non-contiguous too */
    ax_tensor *yv = permuted(new_empty(3, yshape, AX_DTYPE_F32), yperm);
    OK(kern()->unary(c->op, yv, x, c->p));
    snprintf(what, sizeof what, "%s: permuted x and y", c->name);
    expect_close(what, yv, want, 2e-6, 1e-6);
    /* in place on a strided view */
    ax_tensor *xi = permuted(unary_input(3, shape, 11, c->domain), perm);
    OK(kern()->unary(c->op, xi, xi, c->p));
    snprintf(what, sizeof what, "%s: in place, strided", c->name);
    expect_close(what, xi, want, 2e-6, 1e-6);
    /* in place, contiguous */
    ax_tensor *xc = copy_of(x);
    OK(kern()->unary(c->op, xc, xc, c->p));
    snprintf(what, sizeof what, "%s: in place, contiguous", c->name);
    expect_close(what, xc, want, 2e-6, 1e-6);
    free(want);
    /* long strided rows: chunked over threads, gathered in blocks */
    ax_tensor *xb = sliced(unary_input(2, big, 12, c->domain), 1, 1, big[1], 2);
    ax_tensor *yb = new_empty(2, xb->shape, AX_DTYPE_F32);
    want = unary_want(c, xb);
    OK(kern()->unary(c->op, yb, xb, c->p));
    snprintf(what, sizeof what, "%s: long sliced rows", c->name);
    expect_close(what, yb, want, 2e-6, 1e-6);
    free(want);
    ax_tensor *xcb = copy_of(xb);
    want = unary_want(c, xcb);
    OK(kern()->unary(c->op, xcb, xcb, c->p));
    snprintf(what, sizeof what, "%s: long contiguous, in place", c->name);
    expect_close(what, xcb, want, 2e-6, 1e-6);
    free(want);
    ax_tensor *all[] = {x, y, yv, xi, xc, xb, yb, xcb};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

/* dx against the analytic derivative and against central differences of
 * the forward reference, with y given and with y NULL. */
static void check_unary_backward_on(const unary_case *c, const ax_tensor *x, const char *layout) {
    char what[128];
    int64_t n = ax_tensor_numel(x);
    ax_tensor *dy = new_randn(x->ndim, x->shape, 21, 1.0);
    ax_tensor *y = new_empty(x->ndim, x->shape, AX_DTYPE_F32);
    ax_tensor *dx = new_empty(x->ndim, x->shape, AX_DTYPE_F32);
    OK(kern()->unary(c->op, y, x, c->p));
    double *xv = values(x), *g = values(dy), *want = malloc((size_t)n * sizeof *want), *fd = malloc((size_t)n * sizeof *fd);
    assert_non_null(want);
    assert_non_null(fd);
    for (int64_t i = 0; i < n; i++) {
        want[i] = g[i] * ref_unary_grad(c->op, xv[i], c->p);
        double h = 1e-5 * fmax(1.0, fabs(xv[i]));
        if (c->domain == DOMAIN_POSITIVE) h = fmin(h, xv[i] / 4);
        fd[i] = near_kink(c->op, xv[i], c->p)
                    ? want[i]
                    : g[i] * (ref_unary(c->op, xv[i] + h, c->p) - ref_unary(c->op, xv[i] - h, c->p)) / (2 * h);
    }
    for (int with_y = 1; with_y >= 0; with_y--) {
        OK(kern()->unary_backward(c->op, dx, dy, x, with_y ? y : NULL, c->p));
        snprintf(what, sizeof what, "%s backward (%s, y %s) vs analytic", c->name, layout, with_y ? "given" : "NULL");
        expect_close(what, dx, want, 1e-4, 1e-5);
        snprintf(what, sizeof what, "%s backward (%s, y %s) vs finite differences", c->name, layout,
                 with_y ? "given" : "NULL");
        expect_close(what, dx, fd, 2e-3, 1e-4);
    }
    /* dx written over dy */
    ax_tensor *d2 = copy_of(dy);
    OK(kern()->unary_backward(c->op, d2, d2, x, y, c->p));
    snprintf(what, sizeof what, "%s backward (%s, dx = dy)", c->name, layout);
    expect_close(what, d2, want, 1e-4, 1e-5);
    free(xv), free(g), free(want), free(fd);
    ax_tensor_free(dy), ax_tensor_free(y), ax_tensor_free(dx), ax_tensor_free(d2);
}

static void test_unary_f32(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof unary_cases / sizeof unary_cases[0]; k++) check_unary_forward(&unary_cases[k]);
}

static void test_unary_backward_f32(void **state) {
    (void)state;
    const int64_t shape[] = {5, 4, 6}, big[] = {3, 30000};
    const int perm[] = {2, 0, 1};
    for (size_t k = 0; k < sizeof unary_cases / sizeof unary_cases[0]; k++) {
        const unary_case *c = &unary_cases[k];
        ax_tensor *x = permuted(unary_input(3, shape, 31, c->domain), perm);
        check_unary_backward_on(c, x, "permuted");
        ax_tensor *xc = copy_of(x);
        check_unary_backward_on(c, xc, "contiguous");
        ax_tensor *xb = sliced(unary_input(2, big, 32, c->domain), 1, 0, big[1], 3);
        check_unary_backward_on(c, xb, "long sliced rows");
        ax_tensor_free(x), ax_tensor_free(xc), ax_tensor_free(xb);
    }
}

/* Kinks, NaN and extreme arguments: PyTorch's conventions spelled out for
 * the ops with kinks, the references (rounded to float) for smooth ops. */
static void test_unary_special_values(void **state) {
    (void)state;
    const double xs[] = {0.0, -0.0, -0.5, 0.75, NAN, 100.0, -100.0, INFINITY, -INFINITY, 3.0};
    const int64_t n = sizeof xs / sizeof xs[0];
    ax_tensor *x = new_empty(1, &n, AX_DTYPE_F32), *y = new_empty(1, &n, AX_DTYPE_F32);
    ax_tensor *dx = new_empty(1, &n, AX_DTYPE_F32), *dy = new_full(1, &n, AX_DTYPE_F32, 1.0);
    for (int64_t i = 0; i < n; i++) ax_tensor_set(x, i, xs[i]);
    const double clamp_p[2] = {-0.5, 0.75}, leaky_p[2] = {0.125, 0}, pow0[2] = {0, 0};
    const struct {
        ax_unary_op op;
        const double *p;
        double y[10], dx[10];
    } kinks[] = {
        {AX_UNARY_RELU, NULL, {0, 0, 0, 0.75, NAN, 100, 0, INFINITY, 0, 3}, {0, 0, 0, 1, 1, 1, 0, 1, 0, 1}},
        {AX_UNARY_LEAKY_RELU,
         leaky_p,
         {0, 0, -0.0625, 0.75, NAN, 100, -12.5, INFINITY, -INFINITY, 3},
         {0.125, 0.125, 0.125, 1, 0.125, 1, 0.125, 1, 0.125, 1}},
        {AX_UNARY_ABS, NULL, {0, 0, 0.5, 0.75, NAN, 100, 100, INFINITY, INFINITY, 3}, {0, 0, -1, 1, NAN, 1, -1, 1, -1, 1}},
        {AX_UNARY_SIGN, NULL, {0, 0, -1, 1, NAN, 1, -1, 1, -1, 1}, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
        {AX_UNARY_CLAMP, clamp_p, {0, 0, -0.5, 0.75, NAN, 0.75, -0.5, 0.75, -0.5, 0.75}, {1, 1, 1, 1, 0, 0, 0, 0, 0, 0}},
        {AX_UNARY_POW, pow0, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
    };
    char what[64];
    for (size_t k = 0; k < sizeof kinks / sizeof kinks[0]; k++) {
        OK(kern()->unary(kinks[k].op, y, x, kinks[k].p));
        snprintf(what, sizeof what, "special values, op %d", (int)kinks[k].op);
        expect_close(what, y, kinks[k].y, 0, 0);
        OK(kern()->unary_backward(kinks[k].op, dx, dy, x, y, kinks[k].p));
        snprintf(what, sizeof what, "special values, backward of op %d", (int)kinks[k].op);
        expect_close(what, dx, kinks[k].dx, 0, 0);
    }
    /* a NaN clamp bound gives NaN, as torch.clamp */
    const double nan_lo[2] = {NAN, 1.0};
    double all_nan[10];
    for (int64_t i = 0; i < n; i++) all_nan[i] = NAN;
    OK(kern()->unary(AX_UNARY_CLAMP, y, x, nan_lo));
    expect_close("clamp with a NaN bound", y, all_nan, 0, 0);
    /* smooth ops: no overflow to NaN for large |x| (sigmoid, softplus, silu) */
    const double soft_p[2] = {1.0, 20.0}, none[2] = {0, 0};
    const struct {
        ax_unary_op op;
        const double *p;
    } smooth[] = {{AX_UNARY_SIGMOID, none}, {AX_UNARY_SOFTPLUS, soft_p}, {AX_UNARY_SILU, none}, {AX_UNARY_TANH, none},
                  {AX_UNARY_EXP, none},     {AX_UNARY_GELU, none},      {AX_UNARY_GELU_TANH, none}};
    for (size_t k = 0; k < sizeof smooth / sizeof smooth[0]; k++) {
        double want[10], want_dx[10];
        for (int64_t i = 0; i < n; i++) {
            want[i] = (float)ref_unary(smooth[k].op, xs[i], smooth[k].p);
            want_dx[i] = (float)ref_unary_grad(smooth[k].op, xs[i], smooth[k].p);
        }
        OK(kern()->unary(smooth[k].op, y, x, smooth[k].p));
        snprintf(what, sizeof what, "special values, op %d", (int)smooth[k].op);
        expect_close(what, y, want, 2e-6, 1e-40);
        OK(kern()->unary_backward(smooth[k].op, dx, dy, x, y, smooth[k].p));
        snprintf(what, sizeof what, "special values, backward of op %d", (int)smooth[k].op);
        /* derivatives from y in float (1 - y^2, as PyTorch) lose a few bits in the tails */
        expect_close(what, dx, want_dx, 2e-5, 1e-40);
    }
    ax_tensor_free(x), ax_tensor_free(y), ax_tensor_free(dx), ax_tensor_free(dy);
}

/* ---- unary on integers --------------------------------------------------------- */

static int64_t sat(double v, ax_dtype dtype) {
    double lo = dtype == AX_DTYPE_U8 ? 0 : dtype == AX_DTYPE_I32 ? INT32_MIN : -0x1p63;
    double hi = dtype == AX_DTYPE_U8 ? 255 : dtype == AX_DTYPE_I32 ? INT32_MAX : 0x1p63;
    v = trunc(v);
    if (v <= lo) return dtype == AX_DTYPE_I64 ? INT64_MIN : (int64_t)lo;
    if (v >= hi) return dtype == AX_DTYPE_I64 ? INT64_MAX : (int64_t)hi;
    return (int64_t)v;
}

static int64_t ref_int_unary(ax_unary_op op, int64_t v, const double *p, ax_dtype dtype) {
    switch (op) {
    case AX_UNARY_NEG: return v == INT64_MIN ? INT64_MAX : sat(-(double)v, dtype);
    case AX_UNARY_ABS: return v == INT64_MIN ? INT64_MAX : sat(fabs((double)v), dtype);
    case AX_UNARY_SIGN: return (v > 0) - (v < 0);
    case AX_UNARY_CLAMP: {
        double lo = ceil(p[0]), hi = floor(p[1]);
        double r = (double)v < lo ? lo : (double)v;
        return sat(r > hi ? hi : r, dtype);
    }
    case AX_UNARY_AFFINE: return sat(p[0] * (double)v + p[1], dtype);
    default: return 0;
    }
}

static void test_unary_int(void **state) {
    (void)state;
    const int32_t v32[] = {0, 1, -1, 7, -8, 100, INT32_MAX, INT32_MIN, 12345, -3};
    const int64_t v64[] = {0, 1, -1, 7, -8, 100, INT64_MAX, INT64_MIN, (int64_t)1 << 40, -3};
    const uint8_t v8[] = {0, 1, 2, 7, 8, 100, 255, 128, 3, 200};
    const struct {
        ax_dtype dtype;
        const void *data;
        size_t nbytes;
    } inputs[] = {{AX_DTYPE_I32, v32, sizeof v32}, {AX_DTYPE_I64, v64, sizeof v64}, {AX_DTYPE_U8, v8, sizeof v8}};
    const struct {
        ax_unary_op op;
        double p[2];
    } ops[] = {{AX_UNARY_NEG, {0, 0}},     {AX_UNARY_ABS, {0, 0}},       {AX_UNARY_SIGN, {0, 0}},
               {AX_UNARY_CLAMP, {-3.5, 7.2}}, {AX_UNARY_CLAMP, {-INFINITY, 50}}, {AX_UNARY_AFFINE, {3, -2}},
               {AX_UNARY_AFFINE, {0.5, 0.25}}, {AX_UNARY_AFFINE, {-1, 0}}};
    const int64_t n = 10, shape2[] = {2, 5};
    const int perm[] = {1, 0};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        ax_tensor *x, *xs;
        OK(ax_tensor_from_buffer(&x, 1, &n, inputs[i].dtype, inputs[i].data, inputs[i].nbytes));
        OK(ax_tensor_from_buffer(&xs, 2, shape2, inputs[i].dtype, inputs[i].data, inputs[i].nbytes));
        xs = permuted(xs, perm); /* [5, 2], strided */
        ax_tensor *y = new_empty(1, &n, inputs[i].dtype), *ys = new_empty(2, xs->shape, inputs[i].dtype);
        for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
            double want[10], wants[10];
            char what[96];
            for (int64_t j = 0; j < n; j++) {
                int64_t v = inputs[i].dtype == AX_DTYPE_I64 ? v64[j] : (int64_t)ax_tensor_get(x, j);
                want[j] = (double)ref_int_unary(ops[k].op, v, ops[k].p, inputs[i].dtype);
            }
            for (int64_t j = 0; j < n; j++) {
                int64_t v = inputs[i].dtype == AX_DTYPE_I64 ? v64[(j % 2) * 5 + j / 2] : (int64_t)ax_tensor_get(xs, j);
                wants[j] = (double)ref_int_unary(ops[k].op, v, ops[k].p, inputs[i].dtype);
            }
            OK(kern()->unary(ops[k].op, y, x, ops[k].p));
            snprintf(what, sizeof what, "int unary op %d on %s", (int)ops[k].op, ax_dtype_name(inputs[i].dtype));
            expect_close(what, y, want, 0, 0);
            OK(kern()->unary(ops[k].op, ys, xs, ops[k].p));
            snprintf(what, sizeof what, "int unary op %d on strided %s", (int)ops[k].op, ax_dtype_name(inputs[i].dtype));
            expect_close(what, ys, wants, 0, 0);
        }
        /* ax_tensor_get goes through double: check i64 extremes bit-exactly */
        if (inputs[i].dtype == AX_DTYPE_I64) {
            OK(kern()->unary(AX_UNARY_NEG, y, x, NULL));
            const int64_t *r = ax_tensor_data(y);
            assert_true(r[6] == -INT64_MAX && r[7] == INT64_MAX && r[8] == -((int64_t)1 << 40));
            const double p[2] = {1, 1};
            OK(kern()->unary(AX_UNARY_AFFINE, y, x, p));
            assert_true(r[6] == INT64_MAX && r[7] == INT64_MIN + 1 && r[8] == ((int64_t)1 << 40) + 1);
        }
        assert_int_equal(kern()->unary(AX_UNARY_EXP, y, x, NULL), AX_ERR_UNSUPPORTED);
        assert_non_null(strstr(ax_error_message(), "not supported on the CPU"));
        assert_int_equal(kern()->unary(AX_UNARY_RELU, y, x, NULL), AX_ERR_UNSUPPORTED);
        ax_tensor_free(x), ax_tensor_free(xs), ax_tensor_free(y), ax_tensor_free(ys);
    }
}

static void test_unary_errors(void **state) {
    (void)state;
    const int64_t s3[] = {3}, s4[] = {4};
    ax_tensor *a = new_full(1, s3, AX_DTYPE_F32, 1), *b = new_full(1, s4, AX_DTYPE_F32, 1);
    ax_tensor *h = new_full(1, s3, AX_DTYPE_F16, 1), *h2 = new_full(1, s3, AX_DTYPE_F16, 1);
    assert_int_equal(kern()->unary(AX_UNARY_EXP, b, a, NULL), AX_ERR_INVALID);
    assert_int_equal(kern()->unary((ax_unary_op)99, a, a, NULL), AX_ERR_INVALID);
    assert_int_equal(kern()->unary(AX_UNARY_CLAMP, a, a, NULL), AX_ERR_INVALID);
    assert_int_equal(kern()->unary(AX_UNARY_EXP, h2, h, NULL), AX_ERR_UNSUPPORTED);
    assert_int_equal(kern()->unary_backward(AX_UNARY_EXP, h2, h2, h, NULL, NULL), AX_ERR_UNSUPPORTED);
    assert_int_equal(kern()->unary_backward(AX_UNARY_EXP, a, a, b, NULL, NULL), AX_ERR_INVALID);
    ax_tensor_free(a), ax_tensor_free(b), ax_tensor_free(h), ax_tensor_free(h2);
}

/* ---- binary ------------------------------------------------------------------------ */

static double ref_binary(ax_binary_op op, double a, double b) {
    switch (op) {
    case AX_BINARY_ADD: return a + b;
    case AX_BINARY_SUB: return a - b;
    case AX_BINARY_MUL: return a * b;
    case AX_BINARY_DIV: return a / b;
    case AX_BINARY_POW: return pow(a, b);
    case AX_BINARY_MAXIMUM: return isnan(a) || isnan(b) ? NAN : a > b ? a : b;
    case AX_BINARY_MINIMUM: return isnan(a) || isnan(b) ? NAN : a < b ? a : b;
    case AX_BINARY_EQ: return a == b;
    case AX_BINARY_NE: return a != b;
    case AX_BINARY_LT: return a < b;
    case AX_BINARY_LE: return a <= b;
    case AX_BINARY_GT: return a > b;
    case AX_BINARY_GE: return a >= b;
    }
    return NAN;
}

static bool is_compare(ax_binary_op op) { return op >= AX_BINARY_EQ; }

/* out (any layout) = a op b against the reference; out's dtype from op. */
static void check_binary(ax_binary_op op, ax_tensor *out, const ax_tensor *a, const ax_tensor *b, const char *layout) {
    int64_t n = ax_tensor_numel(out);
    double *want = malloc((size_t)n * sizeof *want);
    assert_non_null(want);
    for (int64_t i = 0; i < n; i++) {
        double x = bcast_get(a, out->ndim, out->shape, i), y = bcast_get(b, out->ndim, out->shape, i);
        /* the kernel computes in float: round the exact result the same way */
        want[i] = is_compare(op) ? ref_binary(op, x, y) : (double)(float)ref_binary(op, x, y);
    }
    OK(kern()->binary(op, out, a, b));
    char what[128];
    snprintf(what, sizeof what, "binary op %d (%s)", (int)op, layout);
    expect_close(what, out, want, op == AX_BINARY_POW ? 2e-6 : 0, 0);
    free(want);
}

/* Small integer-valued floats, so comparisons meet ties; a few NaNs. */
static ax_tensor *binary_input(int ndim, const int64_t *shape, uint64_t seed, bool positive, bool nans) {
    ax_tensor *t = new_randn(ndim, shape, seed, 2.0);
    int64_t n = ax_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        double v = ax_tensor_get(t, i);
        v = i % 3 == 0 ? round(v) : v;
        if (positive) v = fabs(v) + 0.25;
        if (nans && i % 7 == 3) v = NAN;
        ax_tensor_set(t, i, v);
    }
    return t;
}

static void test_binary_f32(void **state) {
    (void)state;
    const int64_t sa[] = {2, 1, 4}, sb[] = {3, 1}, so[] = {2, 3, 4};
    const int64_t pa[] = {4, 2, 3}, pb[] = {2, 3, 8}, po[] = {4, 3, 2};
    const int perm_a[] = {1, 2, 0}, perm_o[] = {2, 1, 0};
    for (int op = AX_BINARY_ADD; op <= AX_BINARY_GE; op++) {
        bool pos = op == AX_BINARY_POW, nans = op == AX_BINARY_MAXIMUM || op == AX_BINARY_MINIMUM || op >= AX_BINARY_EQ;
        ax_dtype od = is_compare((ax_binary_op)op) ? AX_DTYPE_U8 : AX_DTYPE_F32;
        /* broadcasting: [2, 1, 4] op [3, 1] -> [2, 3, 4], both ways round */
        ax_tensor *a = binary_input(3, sa, 1, pos, nans), *b = binary_input(2, sb, 2, pos, nans);
        ax_tensor *out = new_empty(3, so, od);
        check_binary((ax_binary_op)op, out, a, b, "broadcast [2,1,4] op [3,1]");
        check_binary((ax_binary_op)op, out, b, a, "broadcast [3,1] op [2,1,4]");
        /* permuted a, sliced b, permuted out */
        ax_tensor *ap = permuted(binary_input(3, pa, 3, pos, nans), perm_a); /* [2, 3, 4] */
        ax_tensor *bs = sliced(binary_input(3, pb, 4, pos, nans), 2, 1, 8, 2); /* [2, 3, 4] */
        ax_tensor *op_ = permuted(new_empty(3, po, od), perm_o);            /* [2, 3, 4] */
        check_binary((ax_binary_op)op, op_, ap, bs, "permuted a, sliced b, permuted out");
        check_binary((ax_binary_op)op, out, ap, bs, "permuted a, sliced b");
        /* expanded operands */
        ax_tensor *ae = expanded(binary_input(3, sa, 5, pos, nans), 3, so);
        check_binary((ax_binary_op)op, out, ae, bs, "expanded a");
        /* in place: out is a */
        if (!is_compare((ax_binary_op)op)) {
            ax_tensor *acc = copy_of(ap);
            double *want = malloc(24 * sizeof *want);
            assert_non_null(want);
            for (int64_t i = 0; i < 24; i++)
                want[i] = (float)ref_binary((ax_binary_op)op, ax_tensor_get(ap, i), ax_tensor_get(bs, i));
            OK(kern()->binary((ax_binary_op)op, acc, acc, bs));
            expect_close("binary in place out == a", acc, want, op == AX_BINARY_POW ? 2e-6 : 0, 0);
            /* ... strided, and out == b */
            ax_tensor *accp = permuted(binary_input(3, pa, 3, pos, nans), perm_a);
            OK(kern()->binary((ax_binary_op)op, accp, accp, bs));
            expect_close("binary in place out == a, strided", accp, want, op == AX_BINARY_POW ? 2e-6 : 0, 0);
            ax_tensor *bb = copy_of(bs);
            OK(kern()->binary((ax_binary_op)op, bb, ap, bb));
            expect_close("binary in place out == b", bb, want, op == AX_BINARY_POW ? 2e-6 : 0, 0);
            free(want);
            ax_tensor_free(acc), ax_tensor_free(accp), ax_tensor_free(bb);
        }
        ax_tensor *all[] = {a, b, out, ap, bs, op_, ae};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
    }
}

/* Large operands: one long contiguous row (chunked over threads), many rows
 * with a broadcast row vector, a scalar. */
static void test_binary_large(void **state) {
    (void)state;
    const int64_t big[] = {300001}, rows[] = {97, 1001}, vec[] = {1001}, one[] = {1};
    const int64_t rows_t[] = {1001, 97};
    const int perm[] = {1, 0};
    ax_tensor *a = binary_input(1, big, 7, false, false), *b = binary_input(1, big, 8, false, false);
    ax_tensor *out = new_empty(1, big, AX_DTYPE_F32), *cmp = new_empty(1, big, AX_DTYPE_U8);
    check_binary(AX_BINARY_MUL, out, a, b, "long contiguous");
    check_binary(AX_BINARY_GE, cmp, a, b, "long contiguous compare");
    ax_tensor *s = binary_input(1, one, 9, false, false);
    check_binary(AX_BINARY_SUB, out, a, s, "long contiguous minus a scalar");
    check_binary(AX_BINARY_DIV, out, s, a, "scalar over long contiguous");
    ax_tensor *m = binary_input(2, rows, 10, false, false), *v = binary_input(1, vec, 11, false, false);
    ax_tensor *mo = new_empty(2, rows, AX_DTYPE_F32);
    check_binary(AX_BINARY_ADD, mo, m, v, "rows plus a row vector");
    ax_tensor *mt = permuted(binary_input(2, rows_t, 12, false, false), perm);
    check_binary(AX_BINARY_MAXIMUM, mo, mt, v, "transposed rows, maximum with a row vector");
    ax_tensor *all[] = {a, b, out, cmp, s, m, v, mo, mt};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

static int64_t wrap_int(int64_t v, ax_dtype dtype) {
    if (dtype == AX_DTYPE_U8) return (int64_t)(uint8_t)(uint64_t)v;
    if (dtype == AX_DTYPE_I32) return (int64_t)(int32_t)(uint32_t)(uint64_t)v;
    return v;
}

static int64_t ref_int_binary(ax_binary_op op, int64_t a, int64_t b, ax_dtype dtype) {
    switch (op) {
    case AX_BINARY_ADD: return wrap_int((int64_t)((uint64_t)a + (uint64_t)b), dtype);
    case AX_BINARY_SUB: return wrap_int((int64_t)((uint64_t)a - (uint64_t)b), dtype);
    case AX_BINARY_MUL: return wrap_int((int64_t)((uint64_t)a * (uint64_t)b), dtype);
    case AX_BINARY_MAXIMUM: return a > b ? a : b;
    case AX_BINARY_MINIMUM: return a < b ? a : b;
    default: return (int64_t)ref_binary(op, (double)a, (double)b);
    }
}

static void test_binary_int(void **state) {
    (void)state;
    const int64_t sa[] = {2, 1, 4}, sb[] = {3, 1}, so[] = {2, 3, 4};
    const ax_dtype dtypes[] = {AX_DTYPE_I32, AX_DTYPE_I64, AX_DTYPE_U8};
    const int64_t av[] = {0, 1, -1, 100, 2000000000, -7, 200, 3}, bv[] = {1, 100, 2000000000};
    for (size_t d = 0; d < 3; d++) {
        ax_dtype dt = dtypes[d];
        ax_tensor *a = new_empty(3, sa, dt), *b = new_empty(2, sb, dt);
        /* values wrapped into the dtype, so u8 gets 200 + 100 and i32 gets overflow */
        for (int64_t i = 0; i < 8; i++) ax_tensor_set(a, i, (double)wrap_int(av[i], dt));
        for (int64_t i = 0; i < 3; i++) ax_tensor_set(b, i, (double)wrap_int(bv[i], dt));
        for (int op = AX_BINARY_ADD; op <= AX_BINARY_GE; op++) {
            ax_tensor *out = new_empty(3, so, is_compare((ax_binary_op)op) ? AX_DTYPE_U8 : dt);
            if (op == AX_BINARY_DIV || op == AX_BINARY_POW) {
                assert_int_equal(kern()->binary((ax_binary_op)op, out, a, b), AX_ERR_UNSUPPORTED);
                ax_tensor_free(out);
                continue;
            }
            double want[24];
            for (int64_t i = 0; i < 24; i++) {
                int64_t x = (int64_t)bcast_get(a, 3, so, i), y = (int64_t)bcast_get(b, 3, so, i);
                want[i] = (double)ref_int_binary((ax_binary_op)op, x, y, dt);
            }
            OK(kern()->binary((ax_binary_op)op, out, a, b));
            char what[64];
            snprintf(what, sizeof what, "int binary op %d on %s", op, ax_dtype_name(dt));
            expect_close(what, out, want, 0, 0);
            ax_tensor_free(out);
        }
        ax_tensor_free(a), ax_tensor_free(b);
    }
    /* i64 beyond 2^53, checked bit-exactly */
    const int64_t n = 2, big[] = {INT64_MAX - 5, ((int64_t)1 << 60) + 1}, small[] = {3, -(((int64_t)1 << 60) + 2)};
    ax_tensor *a, *b, *o = new_empty(1, &n, AX_DTYPE_I64);
    OK(ax_tensor_from_buffer(&a, 1, &n, AX_DTYPE_I64, big, sizeof big));
    OK(ax_tensor_from_buffer(&b, 1, &n, AX_DTYPE_I64, small, sizeof small));
    OK(kern()->binary(AX_BINARY_ADD, o, a, b));
    const int64_t *r = ax_tensor_data(o);
    assert_true(r[0] == INT64_MAX - 2 && r[1] == -1);
    OK(kern()->binary(AX_BINARY_MAXIMUM, o, a, b));
    assert_true(r[0] == INT64_MAX - 5 && r[1] == ((int64_t)1 << 60) + 1);
    ax_tensor_free(a), ax_tensor_free(b), ax_tensor_free(o);
}

static void test_binary_errors(void **state) {
    (void)state;
    const int64_t s3[] = {3}, s4[] = {4}, s2[] = {2, 3};
    ax_tensor *f = new_full(1, s3, AX_DTYPE_F32, 1), *i = new_full(1, s3, AX_DTYPE_I32, 1);
    ax_tensor *f4 = new_full(1, s4, AX_DTYPE_F32, 1), *o = new_empty(2, s2, AX_DTYPE_F32);
    ax_tensor *h = new_full(1, s3, AX_DTYPE_BF16, 1), *ho = new_empty(1, s3, AX_DTYPE_BF16);
    assert_int_equal(kern()->binary(AX_BINARY_ADD, o, f, i), AX_ERR_INVALID);       /* dtypes differ */
    assert_int_equal(kern()->binary(AX_BINARY_ADD, o, f, f4), AX_ERR_INVALID);      /* no broadcast */
    assert_int_equal(kern()->binary(AX_BINARY_LT, o, f, f), AX_ERR_INVALID);        /* compare into f32 */
    assert_int_equal(kern()->binary(AX_BINARY_ADD, ho, h, h), AX_ERR_UNSUPPORTED);  /* bf16 */
    assert_int_equal(kern()->binary((ax_binary_op)0, o, f, f), AX_ERR_INVALID);
    ax_tensor *all[] = {f, i, f4, o, h, ho};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) ax_tensor_free(all[k]);
}

/* ---- where --------------------------------------------------------------------------- */

static void test_where(void **state) {
    (void)state;
    const int64_t sc[] = {2, 1, 4}, sa[] = {3, 1}, so[] = {2, 3, 4}, sbp[] = {4, 3, 2};
    const int perm[] = {2, 1, 0};
    const ax_dtype dtypes[] = {AX_DTYPE_F32, AX_DTYPE_I64, AX_DTYPE_U8, AX_DTYPE_BF16, AX_DTYPE_I32};
    ax_tensor *cond;
    OK(ax_tensor_bernoulli(&cond, 3, sc, AX_DTYPE_U8, 0.5, 3, 0));
    for (size_t d = 0; d < sizeof dtypes / sizeof dtypes[0]; d++) {
        ax_tensor *af = new_randn(2, sa, 4, 10.0), *bf = permuted(new_randn(3, sbp, 5, 10.0), perm);
        ax_tensor *a, *b;
        OK(ax_tensor_to_dtype(&a, af, dtypes[d]));
        OK(ax_tensor_to_dtype(&b, bf, dtypes[d]));
        ax_tensor *out = new_empty(3, so, dtypes[d]);
        double want[24];
        for (int64_t i = 0; i < 24; i++)
            want[i] = bcast_get(cond, 3, so, i) != 0 ? bcast_get(a, 3, so, i) : bcast_get(b, 3, so, i);
        OK(kern()->where(out, cond, a, b));
        char what[64];
        snprintf(what, sizeof what, "where on %s", ax_dtype_name(dtypes[d]));
        expect_close(what, out, want, 0, 0);
        /* a permuted (non-contiguous) b straight from the f32 view */
        if (dtypes[d] == AX_DTYPE_F32) {
            OK(kern()->where(out, cond, a, bf));
            expect_close("where with a permuted b", out, want, 0, 0);
        }
        ax_tensor *all[] = {af, bf, a, b, out};
        for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) ax_tensor_free(all[k]);
    }
    /* long contiguous rows take the vector loop */
    const int64_t big[] = {100003};
    ax_tensor *c2, *a2 = new_randn(1, big, 6, 1.0), *b2 = new_randn(1, big, 7, 1.0), *o2 = new_empty(1, big, AX_DTYPE_F32);
    OK(ax_tensor_bernoulli(&c2, 1, big, AX_DTYPE_U8, 0.3, 8, 0));
    double *want = malloc((size_t)big[0] * sizeof *want);
    assert_non_null(want);
    for (int64_t i = 0; i < big[0]; i++) want[i] = ax_tensor_get(c2, i) != 0 ? ax_tensor_get(a2, i) : ax_tensor_get(b2, i);
    OK(kern()->where(o2, c2, a2, b2));
    expect_close("where, long contiguous", o2, want, 0, 0);
    free(want);
    ax_tensor *f = new_full(1, big, AX_DTYPE_F32, 0);
    assert_int_equal(kern()->where(o2, f, a2, b2), AX_ERR_INVALID); /* cond not u8 */
    ax_tensor *all[] = {cond, c2, a2, b2, o2, f};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) ax_tensor_free(all[k]);
}

/* ---- reduce ---------------------------------------------------------------------------- */

/* want/want_idx over out's shape (x's with the reduced dims as 1). */
static void ref_reduce(ax_reduce_op op, const ax_tensor *x, uint32_t dims, double *want, double *want_idx) {
    int nd = x->ndim, nr = 0;
    int64_t oshape[AX_MAX_DIMS], rshape[AX_MAX_DIMS], nout = 1, rsize = 1;
    int rdim[AX_MAX_DIMS];
    for (int d = 0; d < nd; d++) {
        bool red = dims >> d & 1;
        oshape[d] = red ? 1 : x->shape[d];
        nout *= oshape[d];
        if (red) rdim[nr] = d, rshape[nr++] = x->shape[d], rsize *= x->shape[d];
    }
    for (int64_t o = 0; o < nout; o++) {
        int64_t idx[AX_MAX_DIMS] = {0}, ridx[AX_MAX_DIMS] = {0};
        unravel(o, nd, oshape, idx);
        double acc = 0, best = NAN;
        int64_t bi = -1;
        for (int64_t r = 0; r < rsize; r++) {
            unravel(r, nr, rshape, ridx);
            for (int k = 0; k < nr; k++) idx[rdim[k]] = ridx[k];
            double v = ax_tensor_get(x, ravel(nd, x->shape, idx));
            acc += v;
            if (bi >= 0 && isnan(best)) continue;
            if (bi < 0 || isnan(v) || (op == AX_REDUCE_MAX ? v > best : v < best)) best = v, bi = r;
        }
        want[o] = op == AX_REDUCE_SUM ? acc : best;
        if (want_idx) want_idx[o] = (double)bi;
    }
}

static void check_reduce(ax_reduce_op op, const ax_tensor *x, uint32_t dims, ax_tensor *out, const char *layout) {
    int64_t nout = ax_tensor_numel(out);
    double *want = malloc((size_t)nout * sizeof *want), *want_idx = malloc((size_t)nout * sizeof *want_idx);
    assert_non_null(want);
    assert_non_null(want_idx);
    ref_reduce(op, x, dims, want, want_idx);
    char what[128];
    snprintf(what, sizeof what, "reduce op %d over mask 0x%x (%s)", (int)op, (unsigned)dims, layout);
    double n = (double)ax_tensor_numel(x) / (double)(nout ? nout : 1);
    OK(kern()->reduce(op, out, NULL, x, dims));
    expect_close(what, out, want, op == AX_REDUCE_SUM ? 1e-6 : 0, op == AX_REDUCE_SUM ? 1e-7 * sqrt(n) : 0);
    if (op != AX_REDUCE_SUM) {
        ax_tensor *idx = new_full(out->ndim, out->shape, AX_DTYPE_I64, -5);
        ax_tensor_fill_(out, 12345);
        OK(kern()->reduce(op, out, idx, x, dims));
        expect_close(what, out, want, 0, 0);
        snprintf(what, sizeof what, "reduce op %d indices over mask 0x%x (%s)", (int)op, (unsigned)dims, layout);
        expect_close(what, idx, want_idx, 0, 0);
        ax_tensor_free(idx);
    }
    free(want), free(want_idx);
}

static ax_tensor *reduce_out(const ax_tensor *x, uint32_t dims) {
    int64_t s[AX_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) s[d] = dims >> d & 1 ? 1 : x->shape[d];
    return new_empty(x->ndim, s, AX_DTYPE_F32);
}

static void check_reduce_all_ops(const ax_tensor *x, uint32_t dims, const char *layout) {
    ax_tensor *out = reduce_out(x, dims);
    for (int op = AX_REDUCE_SUM; op <= AX_REDUCE_MIN; op++) check_reduce((ax_reduce_op)op, x, dims, out, layout);
    ax_tensor_free(out);
}

static void test_reduce(void **state) {
    (void)state;
    const int64_t s[] = {3, 4, 5};
    const int perm[] = {1, 0, 2}; /* [4, 3, 5] */
    const uint32_t masks[] = {0x0, 0x1, 0x2, 0x4, 0x5, 0x6, 0x3, 0x7};
    ax_tensor *x = permuted(new_randn(3, s, 41, 1.0), perm);
    ax_tensor *xc = copy_of(x);
    /* ties: values in {0, 1, 2}; and NaNs */
    ax_tensor *xt = copy_of(x), *xn = copy_of(x);
    for (int64_t i = 0; i < ax_tensor_numel(xt); i++) ax_tensor_set(xt, i, floor(fabs(ax_tensor_get(xt, i)) * 1.5));
    ax_tensor_set(xn, 7, NAN);
    ax_tensor_set(xn, 23, NAN);
    ax_tensor_set(xn, 40, NAN);
    for (size_t k = 0; k < sizeof masks / sizeof masks[0]; k++) {
        check_reduce_all_ops(x, masks[k], "permuted");
        check_reduce_all_ops(xc, masks[k], "contiguous");
        check_reduce_all_ops(xt, masks[k], "ties");
        check_reduce_all_ops(xn, masks[k], "NaNs");
    }
    /* out strided: a slice of a wider tensor */
    const int64_t ws[] = {4, 1, 10};
    ax_tensor *wide = sliced(new_full(3, ws, AX_DTYPE_F32, 0), 2, 0, 10, 2); /* [4, 1, 5] */
    for (int op = AX_REDUCE_SUM; op <= AX_REDUCE_MIN; op++) check_reduce((ax_reduce_op)op, x, 0x2, wide, "strided out");
    ax_tensor *all[] = {x, xc, xt, xn, wide};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

/* The strategies: outputs contiguous in x walked together (channel max of
 * NCDHW), few outputs split into chunks, many small outputs. */
static void test_reduce_large(void **state) {
    (void)state;
    const int64_t ncdhw[] = {2, 5, 4, 6, 7}, rowv[] = {3, 100003}, col[] = {70001, 3}, many[] = {5000, 3, 7};
    ax_tensor *x = new_randn(5, ncdhw, 51, 1.0);
    ax_tensor_set(x, 300, NAN);
    check_reduce_all_ops(x, 0x2, "NCDHW over C");
    check_reduce_all_ops(x, 0x1d, "NCDHW over N, D, H, W");
    check_reduce_all_ops(x, 0x1f, "NCDHW over all");
    ax_tensor *r = new_randn(2, rowv, 52, 1.0);
    ax_tensor_set(r, 150000, NAN);
    check_reduce_all_ops(r, 0x2, "long rows");
    check_reduce_all_ops(r, 0x3, "all of long rows");
    ax_tensor *c = new_randn(2, col, 53, 1.0);
    check_reduce_all_ops(c, 0x1, "long columns");
    ax_tensor *ct = permuted(new_randn(2, (const int64_t[]){3, 70001}, 54, 1.0), (const int[]){1, 0});
    check_reduce_all_ops(ct, 0x1, "long transposed columns");
    ax_tensor *m = new_randn(3, many, 55, 1.0);
    check_reduce_all_ops(m, 0x2, "many short");
    check_reduce_all_ops(m, 0x5, "outer and inner");
    ax_tensor *all[] = {x, r, c, ct, m};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

static void test_reduce_errors(void **state) {
    (void)state;
    const int64_t s[] = {3, 0}, so[] = {3, 1}, bad[] = {1, 1}, s2[] = {3, 4};
    ax_tensor *x = new_empty(2, s, AX_DTYPE_F32), *o = new_full(2, so, AX_DTYPE_F32, 7);
    OK(kern()->reduce(AX_REDUCE_SUM, o, NULL, x, 0x2));
    double zeros[3] = {0, 0, 0};
    expect_close("sum over zero elements", o, zeros, 0, 0);
    assert_int_equal(kern()->reduce(AX_REDUCE_MAX, o, NULL, x, 0x2), AX_ERR_INVALID);
    ax_tensor *x2 = new_full(2, s2, AX_DTYPE_F32, 1), *ob = new_empty(2, bad, AX_DTYPE_F32);
    assert_int_equal(kern()->reduce(AX_REDUCE_SUM, ob, NULL, x2, 0x2), AX_ERR_INVALID);
    assert_int_equal(kern()->reduce(AX_REDUCE_SUM, o, NULL, x2, 0x4), AX_ERR_INVALID);
    ax_tensor *xi = new_full(2, s2, AX_DTYPE_I32, 1);
    assert_int_equal(kern()->reduce(AX_REDUCE_SUM, o, NULL, xi, 0x2), AX_ERR_UNSUPPORTED);
    ax_tensor *all[] = {x, o, x2, ob, xi};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

/* ---- softmax ----------------------------------------------------------------------------- */

/* Softmax or log-softmax of x along dim, in double, in C order. */
static double *ref_softmax(const ax_tensor *x, int dim, bool log_) {
    int nd = x->ndim;
    int64_t n = ax_tensor_numel(x), len = x->shape[dim];
    double *y = values(x);
    for (int64_t i = 0; i < n; i++) {
        int64_t idx[AX_MAX_DIMS] = {0};
        unravel(i, nd, x->shape, idx);
        if (idx[dim] != 0) continue;
        double m = -INFINITY, s = 0;
        for (int64_t j = 0; j < len; j++) idx[dim] = j, m = fmax(m, ax_tensor_get(x, ravel(nd, x->shape, idx)));
        for (int64_t j = 0; j < len; j++) idx[dim] = j, s += exp(ax_tensor_get(x, ravel(nd, x->shape, idx)) - m);
        for (int64_t j = 0; j < len; j++) {
            idx[dim] = j;
            int64_t k = ravel(nd, x->shape, idx);
            double v = ax_tensor_get(x, k) - m;
            y[k] = log_ ? v - log(s) : exp(v) / s;
        }
    }
    return y;
}

/* dx from dy and y (double, C order). */
static double *ref_softmax_backward(const ax_tensor *dy, const double *y, int dim, bool log_) {
    int nd = dy->ndim;
    int64_t n = ax_tensor_numel(dy), len = dy->shape[dim];
    double *dx = values(dy);
    for (int64_t i = 0; i < n; i++) {
        int64_t idx[AX_MAX_DIMS] = {0};
        unravel(i, nd, dy->shape, idx);
        if (idx[dim] != 0) continue;
        double s = 0;
        for (int64_t j = 0; j < len; j++) {
            idx[dim] = j;
            int64_t k = ravel(nd, dy->shape, idx);
            s += log_ ? ax_tensor_get(dy, k) : ax_tensor_get(dy, k) * y[k];
        }
        for (int64_t j = 0; j < len; j++) {
            idx[dim] = j;
            int64_t k = ravel(nd, dy->shape, idx);
            double g = ax_tensor_get(dy, k);
            dx[k] = log_ ? g - exp(y[k]) * s : y[k] * (g - s);
        }
    }
    return dx;
}

static void check_softmax(const ax_tensor *x, ax_tensor *y, int dim, bool log_, const char *layout) {
    char what[128];
    double *want = ref_softmax(x, dim, log_);
    OK(kern()->softmax(y, x, dim, log_));
    snprintf(what, sizeof what, "%s along dim %d (%s)", log_ ? "log_softmax" : "softmax", dim, layout);
    expect_close(what, y, want, 2e-6, 1e-7);
    /* backward: a permuted dy, dx contiguous, then dx over dy */
    ax_tensor *dyb = new_randn(x->ndim, x->shape, 61, 1.0);
    ax_tensor *dx = new_empty(x->ndim, x->shape, AX_DTYPE_F32);
    double *want_dx = ref_softmax_backward(dyb, want, dim, log_);
    OK(kern()->softmax_backward(dx, dyb, y, dim, log_));
    snprintf(what, sizeof what, "%s backward along dim %d (%s)", log_ ? "log_softmax" : "softmax", dim, layout);
    expect_close(what, dx, want_dx, 1e-4, 1e-6);
    OK(kern()->softmax_backward(dyb, dyb, y, dim, log_));
    snprintf(what, sizeof what, "%s backward along dim %d (%s, dx = dy)", log_ ? "log_softmax" : "softmax", dim, layout);
    expect_close(what, dyb, want_dx, 1e-4, 1e-6);
    free(want), free(want_dx);
    ax_tensor_free(dyb), ax_tensor_free(dx);
}

static void test_softmax(void **state) {
    (void)state;
    const int64_t s[] = {4, 5, 6}, ys[] = {6, 4, 5};
    const int perm[] = {1, 2, 0}, yperm[] = {2, 0, 1}; /* x, y: [5, 6, 4] */
    ax_tensor *x = permuted(new_randn(3, s, 71, 3.0), perm);
    for (int dim = 0; dim < 3; dim++)
        for (int lg = 0; lg < 2; lg++) {
            ax_tensor *y = new_empty(3, x->shape, AX_DTYPE_F32);
            check_softmax(x, y, dim, lg, "permuted x");
            ax_tensor *yv = permuted(new_empty(3, ys, AX_DTYPE_F32), yperm);
            check_softmax(x, yv, dim, lg, "permuted x and y");
            ax_tensor *xc = copy_of(x);
            check_softmax(xc, y, dim, lg, "contiguous");
            /* in place: y is x */
            double *want = ref_softmax(xc, dim, lg);
            OK(kern()->softmax(xc, xc, dim, lg));
            expect_close("softmax in place", xc, want, 2e-6, 1e-7);
            free(want);
            ax_tensor_free(y), ax_tensor_free(yv), ax_tensor_free(xc);
        }
    /* neighbouring positions contiguous (channel softmax of NCDHW), long
     * rows, large and -inf values */
    const int64_t nc[] = {2, 7, 3, 50}, lr[] = {3, 40000};
    ax_tensor *xn = new_randn(4, nc, 72, 2.0), *yn = new_empty(4, nc, AX_DTYPE_F32);
    ax_tensor_set(xn, 5, 1000.0);
    ax_tensor_set(xn, 155, -INFINITY);
    check_softmax(xn, yn, 1, false, "NCDHW channels");
    check_softmax(xn, yn, 1, true, "NCDHW channels");
    check_softmax(xn, yn, 3, false, "NCDHW last");
    /* the same values with channels innermost walk one position at a time:
     * both walks must agree bit for bit */
    const int64_t ncl[] = {2, 3, 50, 7};
    ax_tensor *xr = permuted(new_empty(4, ncl, AX_DTYPE_F32), (const int[]){0, 3, 1, 2});
    ax_tensor *yr = permuted(new_empty(4, ncl, AX_DTYPE_F32), (const int[]){0, 3, 1, 2});
    OK(ax_tensor_copy_(xr, xn));
    for (int lg = 0; lg < 2; lg++) {
        OK(kern()->softmax(yn, xn, 1, lg));
        OK(kern()->softmax(yr, xr, 1, lg));
        for (int64_t i = 0; i < ax_tensor_numel(yn); i++) {
            float a = (float)ax_tensor_get(yn, i), b = (float)ax_tensor_get(yr, i);
            if (memcmp(&a, &b, sizeof a) != 0)
                fail_msg("softmax blocks and rows differ at %lld: %.9g vs %.9g", (long long)i, a, b);
        }
    }
    ax_tensor_free(xr), ax_tensor_free(yr);
    ax_tensor *xl = new_randn(2, lr, 73, 2.0), *yl = new_empty(2, lr, AX_DTYPE_F32);
    check_softmax(xl, yl, 1, false, "long rows");
    check_softmax(xl, yl, 0, true, "long columns");
    ax_tensor *all[] = {x, xn, yn, xl, yl};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

static void test_softmax_errors(void **state) {
    (void)state;
    const int64_t s[] = {2, 3}, s2[] = {3, 2};
    ax_tensor *x = new_full(2, s, AX_DTYPE_F32, 1), *y = new_empty(2, s2, AX_DTYPE_F32), *y2 = new_empty(2, s, AX_DTYPE_F32);
    assert_int_equal(kern()->softmax(y, x, 1, false), AX_ERR_INVALID);
    assert_int_equal(kern()->softmax(y2, x, 2, false), AX_ERR_INVALID);
    assert_int_equal(kern()->softmax_backward(y2, x, y, 1, false), AX_ERR_INVALID);
    ax_tensor_free(x), ax_tensor_free(y), ax_tensor_free(y2);
}

/* ---- matmul --------------------------------------------------------------------------------- */

static void check_matmul(int64_t batch, int64_t m, int64_t k, int64_t n, bool ta, bool tb, float alpha, float beta,
                         bool nan_out) {
    const int64_t sa[] = {batch, ta ? k : m, ta ? m : k}, sb[] = {batch, tb ? n : k, tb ? k : n},
                  so[] = {batch, m, n};
    ax_tensor *a = new_randn(3, sa, 81, 1.0), *b = new_randn(3, sb, 82, 1.0);
    ax_tensor *out = nan_out ? new_full(3, so, AX_DTYPE_F32, NAN) : new_randn(3, so, 83, 1.0);
    double *want = values(out);
    for (int64_t p = 0; p < batch; p++)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = 0;
                for (int64_t q = 0; q < k; q++) {
                    double av = ax_tensor_get(a, ta ? (p * k + q) * m + i : (p * m + i) * k + q);
                    double bv = ax_tensor_get(b, tb ? (p * n + j) * k + q : (p * k + q) * n + j);
                    s += av * bv;
                }
                int64_t o = (p * m + i) * n + j;
                want[o] = alpha * s + (beta == 0 ? 0 : beta * want[o]);
            }
    OK(kern()->matmul(out, a, b, ta, tb, alpha, beta));
    char what[128];
    snprintf(what, sizeof what, "matmul [%lld, %lld, %lld] x [%lld, %lld], ta %d tb %d alpha %g beta %g",
             (long long)batch, (long long)m, (long long)k, (long long)k, (long long)n, ta, tb, alpha, beta);
    expect_close(what, out, want, 1e-4, 1e-4 * sqrt((double)k));
    free(want);
    ax_tensor_free(a), ax_tensor_free(b), ax_tensor_free(out);
}

static void test_matmul(void **state) {
    (void)state;
    for (int t = 0; t < 4; t++) {
        bool ta = t & 1, tb = t & 2;
        check_matmul(2, 5, 7, 3, ta, tb, 1.0f, 0.0f, false);
        check_matmul(3, 5, 7, 3, ta, tb, 1.5f, 0.5f, false);
        check_matmul(2, 33, 130, 47, ta, tb, -0.75f, 1.0f, false);
        check_matmul(1, 4, 6, 5, ta, tb, 1.0f, 0.0f, true); /* beta 0 ignores NaN in out */
    }
    check_matmul(2, 3, 0, 4, false, false, 1.0f, 0.5f, false); /* K = 0: out = beta * out */
    check_matmul(2, 3, 0, 4, false, false, 1.0f, 0.0f, true);
}

static void test_matmul_errors(void **state) {
    (void)state;
    const int64_t sa[] = {2, 3, 4}, sb[] = {2, 4, 5}, so[] = {2, 3, 5}, sbad[] = {2, 5, 5};
    ax_tensor *a = new_full(3, sa, AX_DTYPE_F32, 1), *b = new_full(3, sb, AX_DTYPE_F32, 1);
    ax_tensor *o = new_empty(3, so, AX_DTYPE_F32), *bb = new_full(3, sbad, AX_DTYPE_F32, 1);
    assert_int_equal(kern()->matmul(o, a, bb, false, false, 1, 0), AX_ERR_INVALID);
    assert_non_null(strstr(ax_error_message(), "[2, 5, 5]"));
    ax_tensor *at = permuted(new_full(3, (const int64_t[]){2, 4, 3}, AX_DTYPE_F32, 1), (const int[]){0, 2, 1});
    assert_int_equal(kern()->matmul(o, at, b, false, false, 1, 0), AX_ERR_INVALID); /* not contiguous */
    OK(kern()->matmul(o, a, b, false, false, 1, 0));
    ax_tensor *all[] = {a, b, o, bb, at};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
}

/* ---- thread-count independence ----------------------------------------------------------------- */

#define N_DET 14

/* Every result below, computed with the current thread count. */
static void det_run(const ax_tensor *x, const ax_tensor *v, ax_tensor **r) {
    const ax_kernels *k = kern();
    OK(k->reduce(AX_REDUCE_SUM, r[0], NULL, x, 0x3));
    OK(k->reduce(AX_REDUCE_SUM, r[1], NULL, x, 0x1));
    OK(k->reduce(AX_REDUCE_SUM, r[2], NULL, x, 0x2));
    OK(k->reduce(AX_REDUCE_MAX, r[3], r[4], x, 0x3));
    OK(k->reduce(AX_REDUCE_MIN, r[5], r[6], x, 0x1));
    OK(k->softmax(r[7], x, 1, false));
    OK(k->softmax(r[8], x, 0, true));
    OK(k->softmax_backward(r[9], v, r[7], 1, false));
    OK(k->binary(AX_BINARY_ADD, r[10], x, v));
    OK(k->binary(AX_BINARY_MUL, r[11], x, r[12]));
    OK(k->unary(AX_UNARY_GELU, r[13], x, NULL));
}

static void test_thread_determinism(void **state) {
    (void)state;
#ifdef _OPENMP
    const int64_t s[] = {1000, 1000}, one[] = {1, 1}, row[] = {1, 1000}, col[] = {1000, 1}, vec[] = {1000};
    int saved = omp_get_max_threads();
    ax_tensor *x = new_randn(2, s, 91, 1.0), *v = new_randn(2, s, 92, 1.0);
    ax_tensor *r[2][N_DET];
    for (int t = 0; t < 2; t++) {
        r[t][0] = new_empty(2, one, AX_DTYPE_F32);
        r[t][1] = new_empty(2, row, AX_DTYPE_F32);
        r[t][2] = new_empty(2, col, AX_DTYPE_F32);
        r[t][3] = new_empty(2, one, AX_DTYPE_F32);
        r[t][4] = new_empty(2, one, AX_DTYPE_I64);
        r[t][5] = new_empty(2, row, AX_DTYPE_F32);
        r[t][6] = new_empty(2, row, AX_DTYPE_I64);
        for (int i = 7; i <= 11; i++) r[t][i] = new_empty(2, s, AX_DTYPE_F32);
        r[t][12] = new_randn(1, vec, 93, 1.0);
        r[t][13] = new_empty(2, s, AX_DTYPE_F32);
        ax_set_num_threads(t + 1);
        assert_int_equal(omp_get_max_threads(), t + 1);
        det_run(x, v, r[t]);
    }
    for (int i = 0; i < N_DET; i++)
        if (!bits_equal(r[0][i], r[1][i])) fail_msg("result %d differs between 1 and 2 threads", i);
    /* sum over everything in double is also close to the truth */
    double want = 0;
    for (int64_t i = 0; i < 1000000; i++) want += ax_tensor_get(x, i);
    expect_close("sum of 1M", r[0][0], &want, 1e-6, 1e-3);
    ax_set_num_threads(saved);
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < N_DET; i++) ax_tensor_free(r[t][i]);
    ax_tensor_free(x), ax_tensor_free(v);
#else
    skip();
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary_f32),       cmocka_unit_test(test_unary_backward_f32),
        cmocka_unit_test(test_unary_special_values), cmocka_unit_test(test_unary_int),
        cmocka_unit_test(test_unary_errors),    cmocka_unit_test(test_binary_f32),
        cmocka_unit_test(test_binary_large),    cmocka_unit_test(test_binary_int),
        cmocka_unit_test(test_binary_errors),   cmocka_unit_test(test_where),
        cmocka_unit_test(test_reduce),          cmocka_unit_test(test_reduce_large),
        cmocka_unit_test(test_reduce_errors),   cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_softmax_errors),  cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_matmul_errors),   cmocka_unit_test(test_thread_determinism),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
