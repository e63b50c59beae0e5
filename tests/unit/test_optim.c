/* Optimizers, gradient clipping, learning-rate schedules and optimizer state
 * files (axon/optim.h): parity with PyTorch (fixtures written by
 * tests/fixtures/optim/make_optim.py), exact resume, thread-count
 * independence, and the error of each bad argument. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "axon/ops.h"
#include "axon/optim.h"
#include "axon/safetensors.h"
#include "gradcheck.h"

#define S(...) (int64_t[]){__VA_ARGS__}
#define NP 4

static const char *const PNAMES[NP] = {"enc.w", "enc.b", "dec.w", "dec.scale"};
static char tmpdir[256];

/* ---- helpers ------------------------------------------------------------------- */

static ax_safetensors *open_fixture(const char *file) {
    char path[1024];
    snprintf(path, sizeof path, "%s/optim/%s", AX_TEST_FIXTURES, file);
    ax_safetensors *f = NULL;
    if (ax_safetensors_open(&f, path) != AX_OK) fail_msg("%s", ax_error_message());
    return f;
}

static void tmp_path(char *buf, size_t size, const char *file) { snprintf(buf, size, "%s/%s", tmpdir, file); }

/* An exclusively owned contiguous copy of t. */
static ax_tensor *clone(const ax_tensor *t) {
    ax_tensor *c;
    assert_int_equal(ax_tensor_empty_like(&c, t, t->dtype), AX_OK);
    assert_int_equal(ax_tensor_copy_(c, t), AX_OK);
    return c;
}

static ax_tensor *get(const ax_safetensors *f, const char *fmt, const char *arg) {
    char name[256];
    snprintf(name, sizeof name, fmt, arg);
    ax_tensor *t;
    if (ax_safetensors_get(f, name, &t) != AX_OK) fail_msg("%s", ax_error_message());
    return t;
}

/* Row k of a stacked tensor [K, *shape], copied. */
static ax_tensor *row(const ax_tensor *stacked, int64_t k) {
    ax_tensor *n, *s;
    assert_int_equal(ax_tensor_narrow(&n, stacked, 0, k, 1), AX_OK);
    assert_int_equal(ax_tensor_squeeze(&s, n, 0), AX_OK);
    ax_tensor *c = clone(s);
    ax_tensor_free(s);
    ax_tensor_free(n);
    return c;
}

/* Element i of an i64 tensor holding f64 bit patterns. */
static double f64_at(const ax_tensor *t, int64_t i) {
    double d;
    memcpy(&d, (const int64_t *)ax_tensor_data(t) + i, sizeof d);
    return d;
}

/* Worst |got - want| / (atol + rtol |want|) over the elements (<= 1 passes);
 * prints the worst element when it fails. */
static double worst_ratio(const char *what, const ax_tensor *got, const ax_tensor *want, double atol, double rtol) {
    assert_true(ax_tensor_same_shape(got, want));
    double worst = 0;
    int64_t wj = 0;
    for (int64_t j = 0; j < ax_tensor_numel(got); j++) {
        double g = ax_tensor_get(got, j), w = ax_tensor_get(want, j);
        double r = fabs(g - w) / (atol + rtol * fabs(w));
        if (!(r <= worst)) worst = r, wj = j;
    }
    if (!(worst <= 1))
        fprintf(stderr, "%s: element %lld: got %.9g, want %.9g (atol %g, rtol %g)\n", what, (long long)wj,
                ax_tensor_get(got, wj), ax_tensor_get(want, wj), atol, rtol);
    return worst;
}

static bool bit_equal(const ax_tensor *a, const ax_tensor *b) {
    return ax_tensor_same_shape(a, b) && a->dtype == b->dtype &&
           memcmp(ax_tensor_data(a), ax_tensor_data(b), ax_tensor_nbytes(a)) == 0;
}

static void expect_error(ax_status got, ax_status want, const char *needle) {
    assert_int_equal(got, want);
    if (!strstr(ax_error_message(), needle)) fail_msg("message '%s' lacks '%s'", ax_error_message(), needle);
}

/* ---- the 20-step fixtures --------------------------------------------------------- */

typedef struct run {
    ax_safetensors *f;
    ax_tensor *params[NP];
    ax_tensor *lr;
} run;

static void run_open(run *r, const char *file) {
    r->f = open_fixture(file);
    for (int i = 0; i < NP; i++) {
        ax_tensor *t = get(r->f, "init.%s", PNAMES[i]);
        r->params[i] = clone(t);
        ax_tensor_free(t);
        assert_int_equal(ax_tensor_set_requires_grad(r->params[i], true), AX_OK);
    }
    r->lr = get(r->f, "%s", "lr");
}

static void run_close(run *r) {
    for (int i = 0; i < NP; i++) ax_tensor_free(r->params[i]);
    ax_tensor_free(r->lr);
    ax_safetensors_close(r->f);
}

/* Give each parameter its fixture grad of step k (or none). */
static void feed_grads(run *r, int64_t k) {
    for (int i = 0; i < NP; i++) {
        ax_tensor_zero_grad(r->params[i]);
        ax_tensor *has = get(r->f, "has_grad.%s", PNAMES[i]);
        if (ax_tensor_get(has, k) != 0) {
            ax_tensor *g = get(r->f, "grad.%s", PNAMES[i]);
            r->params[i]->grad = row(g, k);
            ax_tensor_free(g);
        }
        ax_tensor_free(has);
    }
}

/* Steps [k0, k1) of the fixture; returns the worst error ratio against
 * PyTorch's parameters (with rtol 1e-5) when compare is set. */
static double run_steps(run *r, ax_optim *o, int64_t k0, int64_t k1, bool compare) {
    double worst = 0;
    for (int64_t k = k0; k < k1; k++) {
        assert_int_equal(ax_optim_set_lr(o, f64_at(r->lr, k)), AX_OK);
        feed_grads(r, k);
        if (ax_optim_step(o) != AX_OK) fail_msg("%s", ax_error_message());
        assert_int_equal(ax_optim_steps(o), k + 1);
        if (!compare) continue;
        for (int i = 0; i < NP; i++) {
            ax_tensor *all = get(r->f, "param.%s", PNAMES[i]), *want = row(all, k);
            char what[64];
            snprintf(what, sizeof what, "step %lld %s", (long long)k, PNAMES[i]);
            double q = worst_ratio(what, r->params[i], want, 1e-7, 1e-5);
            if (q > worst) worst = q;
            ax_tensor_free(want);
            ax_tensor_free(all);
        }
    }
    ax_optim_zero_grad(o);
    return worst;
}

static ax_status make_opt(ax_optim **o, const char *file, ax_tensor *const *params) {
    if (strcmp(file, "sgd_nesterov.safetensors") == 0)
        return ax_sgd_new(o, NP, params, PNAMES, 1e-2, 0.99, 0, 3e-5, true);
    if (strcmp(file, "sgd_dampening.safetensors") == 0)
        return ax_sgd_new(o, NP, params, PNAMES, 1e-2, 0.9, 0.1, 1e-3, false);
    return ax_adamw_new(o, NP, params, PNAMES, 3e-4, 0.9, 0.98, 1e-8, 0.05);
}

static void check_parity(const char *file) {
    run r;
    ax_optim *o;
    run_open(&r, file);
    assert_int_equal(make_opt(&o, file, r.params), AX_OK);
    double worst = run_steps(&r, o, 0, 20, true);
    print_message("%s: 20 steps, worst |err| / (1e-7 + 1e-5 |torch|) = %.3g\n", file, worst);
    assert_true(worst <= 1);
    for (int i = 0; i < NP; i++) assert_null(r.params[i]->grad); /* zero_grad */
    ax_optim_free(o);
    run_close(&r);
}

static void test_sgd_nesterov_matches_torch(void **state) {
    (void)state;
    check_parity("sgd_nesterov.safetensors");
}

static void test_sgd_dampening_matches_torch(void **state) {
    (void)state;
    check_parity("sgd_dampening.safetensors");
}

static void test_adamw_matches_torch(void **state) {
    (void)state;
    check_parity("adamw.safetensors");
}

/* ---- end to end with autograd --------------------------------------------------------- */

/* loss = sum((x @ w + b - y)^2) */
static ax_tensor *e2e_loss(const ax_tensor *x, const ax_tensor *w, const ax_tensor *b, const ax_tensor *y) {
    ax_tensor *h, *hb, *d, *sq, *loss;
    assert_int_equal(ax_matmul(&h, x, w), AX_OK);
    assert_int_equal(ax_add(&hb, h, b), AX_OK);
    assert_int_equal(ax_sub(&d, hb, y), AX_OK);
    assert_int_equal(ax_mul(&sq, d, d), AX_OK);
    assert_int_equal(ax_sum(&loss, sq, 0, NULL, false), AX_OK);
    ax_tensor_free(h);
    ax_tensor_free(hb);
    ax_tensor_free(d);
    ax_tensor_free(sq);
    return loss;
}

static void test_end_to_end_with_autograd(void **state) {
    (void)state;
    ax_safetensors *f = open_fixture("e2e.safetensors");
    ax_tensor *x = get(f, "%s", "x"), *y = get(f, "%s", "y");
    const char *kinds[] = {"sgd", "adamw"};
    for (int which = 0; which < 2; which++) {
        ax_tensor *w0 = get(f, "%s", "init.w"), *b0 = get(f, "%s", "init.b");
        ax_tensor *params[2] = {clone(w0), clone(b0)};
        ax_tensor_free(w0);
        ax_tensor_free(b0);
        for (int i = 0; i < 2; i++) assert_int_equal(ax_tensor_set_requires_grad(params[i], true), AX_OK);
        ax_optim *o;
        const char *names[] = {"w", "b"};
        if (which == 0)
            assert_int_equal(ax_sgd_new(&o, 2, params, names, 1e-2, 0.99, 0, 3e-5, true), AX_OK);
        else
            assert_int_equal(ax_adamw_new(&o, 2, params, names, 1e-2, 0.9, 0.98, 1e-8, 0.05), AX_OK);
        ax_tensor *ws = get(f, "%s.w", kinds[which]), *bs = get(f, "%s.b", kinds[which]);
        ax_tensor *losses = get(f, "%s.loss", kinds[which]);
        double worst = 0;
        for (int k = 0; k < 10; k++) {
            ax_optim_zero_grad(o);
            ax_tensor *loss = e2e_loss(x, params[0], params[1], y);
            double lv = ax_tensor_get(loss, 0), lw = f64_at(losses, k);
            if (fabs(lv - lw) > 1e-5 * fabs(lw)) fail_msg("%s step %d: loss %.9g, torch %.9g", kinds[which], k, lv, lw);
            assert_int_equal(ax_backward(loss, NULL), AX_OK);
            ax_tensor_free(loss);
            if (which == 0) {
                double norm;
                assert_int_equal(ax_clip_grad_norm(&norm, 2, params, 1.0, 2.0), AX_OK);
                assert_true(norm > 1.0); /* the clip is active */
            }
            assert_int_equal(ax_optim_step(o), AX_OK);
            ax_tensor *wk = row(ws, k), *bk = row(bs, k);
            double q1 = worst_ratio("e2e w", params[0], wk, 1e-6, 1e-5);
            double q2 = worst_ratio("e2e b", params[1], bk, 1e-6, 1e-5);
            worst = fmax(worst, fmax(q1, q2));
            ax_tensor_free(wk);
            ax_tensor_free(bk);
        }
        print_message("e2e %s: 10 autograd steps, worst |err| / (1e-6 + 1e-5 |torch|) = %.3g\n", kinds[which], worst);
        assert_true(worst <= 1);
        ax_tensor_free(ws);
        ax_tensor_free(bs);
        ax_tensor_free(losses);
        ax_optim_free(o);
        for (int i = 0; i < 2; i++) ax_tensor_free(params[i]);
    }
    ax_tensor_free(x);
    ax_tensor_free(y);
    ax_safetensors_close(f);
}

/* ---- schedules -------------------------------------------------------------------- */

static void check_schedule(const ax_safetensors *f, const char *name, const ax_lr_schedule *s, double rtol) {
    assert_int_equal(ax_lr_schedule_check(s), AX_OK);
    ax_tensor *want = get(f, "%s", name);
    double worst = 0;
    for (int64_t k = 0; k < ax_tensor_numel(want); k++) {
        double got = ax_lr_schedule_at(s, k), w = f64_at(want, k);
        double err = fabs(got - w) / (1e-18 + fabs(w));
        if (err > worst) worst = err;
        if (err > rtol) fail_msg("%s step %lld: %.17g, want %.17g", name, (long long)k, got, w);
    }
    print_message("schedule %s: %lld steps, worst relative error %.3g\n", name, (long long)ax_tensor_numel(want),
                  worst);
    ax_tensor_free(want);
}

static void test_schedules_match_torch(void **state) {
    (void)state;
    ax_safetensors *f = open_fixture("schedules.safetensors");
    /* Formulas evaluated the way nnU-Net / nnssl do: bit-identical. */
    check_schedule(f, "nnunet_poly",
                   &(ax_lr_schedule){.kind = AX_LR_POLY, .base_lr = 1e-2, .total_steps = 100, .power = 0.9}, 0);
    check_schedule(
        f, "nnssl_warmpoly",
        &(ax_lr_schedule){.kind = AX_LR_POLY, .base_lr = 1e-3, .total_steps = 100, .warmup_steps = 10, .power = 0.9},
        0);
    /* torch's schedulers update recursively: rounding differs slightly. */
    check_schedule(f, "torch_poly",
                   &(ax_lr_schedule){.kind = AX_LR_POLY, .base_lr = 1e-2, .total_steps = 100, .power = 0.9}, 1e-12);
    check_schedule(f, "torch_cosine",
                   &(ax_lr_schedule){.kind = AX_LR_COSINE, .base_lr = 1e-3, .total_steps = 100, .min_lr = 1e-5}, 1e-12);
    check_schedule(f, "torch_warmup",
                   &(ax_lr_schedule){.kind = AX_LR_CONSTANT, .base_lr = 1e-3, .total_steps = 30, .warmup_steps = 10},
                   1e-12);
    check_schedule(f, "torch_warmcos",
                   &(ax_lr_schedule){
                       .kind = AX_LR_COSINE, .base_lr = 1e-3, .total_steps = 100, .warmup_steps = 10, .min_lr = 1e-5},
                   1e-12);
    ax_safetensors_close(f);
}

static void test_schedule_edges_and_errors(void **state) {
    (void)state;
    ax_lr_schedule p = {.kind = AX_LR_POLY, .base_lr = 0.1, .total_steps = 10, .warmup_steps = 2, .power = 0.9};
    assert_true(ax_lr_schedule_at(&p, -5) == ax_lr_schedule_at(&p, 0));
    assert_true(ax_lr_schedule_at(&p, 0) == 0.1 / 2 * 1);
    assert_true(ax_lr_schedule_at(&p, 1) == 0.1);
    assert_true(ax_lr_schedule_at(&p, 2) == 0.1); /* the decay starts at base */
    assert_true(ax_lr_schedule_at(&p, 10) == 0);
    assert_true(ax_lr_schedule_at(&p, 1000) == 0);
    p.min_lr = 1e-4; /* poly floor */
    assert_true(ax_lr_schedule_at(&p, 9) > 1e-4);
    assert_true(ax_lr_schedule_at(&p, 10) == 1e-4);
    ax_lr_schedule c = {.kind = AX_LR_COSINE, .base_lr = 0.1, .total_steps = 10, .min_lr = 0.01};
    assert_true(ax_lr_schedule_at(&c, 0) == 0.1);
    assert_true(fabs(ax_lr_schedule_at(&c, 5) - 0.055) < 1e-15);
    assert_true(ax_lr_schedule_at(&c, 10) == 0.01);
    assert_true(ax_lr_schedule_at(&c, 50) == 0.01);
    ax_lr_schedule k = {.kind = AX_LR_CONSTANT, .base_lr = 0.5};
    assert_true(ax_lr_schedule_at(&k, 123456) == 0.5);
    assert_true(ax_lr_poly(5, 10, 1.0, 1.0) == 0.5);
    assert_true(ax_lr_cosine(10, 10, 1.0, 0.25) == 0.25);

    ax_lr_kind kind;
    assert_int_equal(ax_lr_kind_parse("cosine", &kind), AX_OK);
    assert_int_equal(kind, AX_LR_COSINE);
    assert_string_equal(ax_lr_kind_name(AX_LR_POLY), "poly");
    expect_error(ax_lr_kind_parse("step", &kind), AX_ERR_INVALID, "unknown schedule 'step'");

    ax_lr_schedule bad = p;
    bad.base_lr = -1;
    expect_error(ax_lr_schedule_check(&bad), AX_ERR_INVALID, "base_lr -1");
    assert_true(isnan(ax_lr_schedule_at(&bad, 0)));
    bad = p;
    bad.total_steps = 2;
    expect_error(ax_lr_schedule_check(&bad), AX_ERR_INVALID, "total_steps 2 must exceed warmup_steps 2");
    bad = p;
    bad.power = 0;
    expect_error(ax_lr_schedule_check(&bad), AX_ERR_INVALID, "power 0");
    bad = c;
    bad.min_lr = 1;
    expect_error(ax_lr_schedule_check(&bad), AX_ERR_INVALID, "min_lr 1 must be within [0, base_lr 0.1]");
    bad = p;
    bad.warmup_steps = -1;
    expect_error(ax_lr_schedule_check(&bad), AX_ERR_INVALID, "warmup_steps -1");
    bad = p;
    bad.kind = (ax_lr_kind)7;
    expect_error(ax_lr_schedule_check(&bad), AX_ERR_INVALID, "kind 7");
}

/* ---- gradient clipping --------------------------------------------------------------- */

static void test_clip_matches_torch(void **state) {
    (void)state;
    ax_safetensors *f = open_fixture("clip.safetensors");
    for (int c = 0; c < 4; c++) {
        char name[64];
        ax_tensor *params[3];
        for (int i = 0; i < 3; i++) {
            snprintf(name, sizeof name, "case%d.in.%d", c, i);
            ax_tensor *g = get(f, "%s", name);
            assert_int_equal(ax_tensor_zeros(&params[i], g->ndim, g->shape, AX_DTYPE_F32), AX_OK);
            params[i]->grad = clone(g);
            ax_tensor_free(g);
        }
        snprintf(name, sizeof name, "case%d.args", c);
        ax_tensor *args = get(f, "%s", name);
        snprintf(name, sizeof name, "case%d.total", c);
        ax_tensor *total = get(f, "%s", name);
        double norm = -1;
        assert_int_equal(ax_clip_grad_norm(&norm, 3, params, f64_at(args, 0), f64_at(args, 1)), AX_OK);
        double want = f64_at(total, 0);
        print_message("clip case %d (max_norm %g, norm_type %g): total %.9g, torch %.9g\n", c, f64_at(args, 0),
                      f64_at(args, 1), norm, want);
        assert_true(fabs(norm - want) <= 1e-6 * want);
        for (int i = 0; i < 3; i++) {
            snprintf(name, sizeof name, "case%d.out.%d", c, i);
            ax_tensor *out = get(f, "%s", name);
            assert_true(worst_ratio(name, params[i]->grad, out, 1e-7, 1e-6) <= 1);
            ax_tensor_free(out);
            ax_tensor_free(params[i]);
        }
        ax_tensor_free(args);
        ax_tensor_free(total);
    }
    ax_safetensors_close(f);
}

static void test_clip_edges_and_errors(void **state) {
    (void)state;
    ax_tensor *p[3];
    for (int i = 0; i < 3; i++) assert_int_equal(ax_tensor_zeros(&p[i], 1, S(4), AX_DTYPE_F32), AX_OK);
    /* No grads at all: norm 0, nothing to do. */
    double norm = -1;
    assert_int_equal(ax_clip_grad_norm(&norm, 3, p, 1.0, 2.0), AX_OK);
    assert_true(norm == 0);
    assert_int_equal(ax_clip_grad_norm(NULL, 0, NULL, 1.0, 2.0), AX_OK);

    /* Grads 3, 4 (and a skipped NULL): norm 5, scaled by 1 / (5 + 1e-6). */
    assert_int_equal(ax_tensor_full(&p[0]->grad, 1, S(4), AX_DTYPE_F32, 1.5), AX_OK);
    assert_int_equal(ax_tensor_full(&p[2]->grad, 1, S(4), AX_DTYPE_F32, 2.0), AX_OK);
    assert_int_equal(ax_clip_grad_norm(&norm, 3, p, 1.0, 2.0), AX_OK);
    assert_true(fabs(norm - 5.0) < 1e-12);
    assert_true(fabs(ax_tensor_get(p[0]->grad, 3) - 0.3) < 1e-6);
    assert_true(fabs(ax_tensor_get(p[2]->grad, 0) - 0.4) < 1e-6);
    assert_null(p[1]->grad);

    /* bf16 and non-contiguous grads are clipped through an f32 copy. */
    ax_tensor *wide, *strided;
    assert_int_equal(ax_tensor_full(&wide, 1, S(8), AX_DTYPE_F32, 4.0), AX_OK);
    assert_int_equal(ax_tensor_slice(&strided, wide, 0, 0, 8, 2), AX_OK);
    ax_tensor_free(p[0]->grad);
    p[0]->grad = strided; /* [4] of 4.0 with stride 2 */
    ax_tensor_free(p[2]->grad);
    assert_int_equal(ax_tensor_full(&p[2]->grad, 1, S(4), AX_DTYPE_BF16, 3.0), AX_OK);
    assert_int_equal(ax_clip_grad_norm(&norm, 3, p, 2.5, 2.0), AX_OK);
    assert_true(fabs(norm - 10.0) < 1e-12);
    assert_int_equal(p[2]->grad->dtype, AX_DTYPE_BF16);
    assert_true(fabs(ax_tensor_get(p[0]->grad, 1) - 1.0) < 1e-6);
    assert_true(fabs(ax_tensor_get(wide, 2) - 1.0) < 1e-6); /* written through the view */
    assert_true(ax_tensor_get(wide, 1) == 4.0);             /* gaps untouched */
    assert_true(fabs(ax_tensor_get(p[2]->grad, 3) - 0.75) < 1e-2);
    ax_tensor_free(wide);

    /* max_norm above the norm: grads unchanged. */
    assert_int_equal(ax_clip_grad_norm(&norm, 3, p, 100.0, INFINITY), AX_OK);
    assert_true(fabs(norm - 1.0) < 1e-6);
    assert_true(fabs(ax_tensor_get(p[0]->grad, 0) - 1.0) < 1e-6);

    /* Non-finite: reported, grads left alone. */
    ax_tensor_set(p[0]->grad, 2, NAN);
    assert_int_equal(ax_clip_grad_norm(&norm, 3, p, 1.0, 2.0), AX_OK);
    assert_true(isnan(norm));
    assert_true(fabs(ax_tensor_get(p[0]->grad, 0) - 1.0) < 1e-6);
    assert_int_equal(ax_clip_grad_norm(&norm, 3, p, 1.0, INFINITY), AX_OK);
    assert_true(isnan(norm));
    ax_tensor_set(p[0]->grad, 2, INFINITY);
    assert_int_equal(ax_clip_grad_norm(&norm, 3, p, 1.0, 2.0), AX_OK);
    assert_true(isinf(norm));
    assert_true(fabs(ax_tensor_get(p[0]->grad, 0) - 1.0) < 1e-6);

    expect_error(ax_clip_grad_norm(&norm, 3, p, 1.0, 0.0), AX_ERR_INVALID, "ax_clip_grad_norm: norm_type 0");
    expect_error(ax_clip_grad_norm(&norm, 3, p, 1.0, -INFINITY), AX_ERR_INVALID, "norm_type -inf");
    expect_error(ax_clip_grad_norm(&norm, 3, p, -1.0, 2.0), AX_ERR_INVALID, "max_norm -1");
    expect_error(ax_clip_grad_norm(&norm, 3, NULL, 1.0, 2.0), AX_ERR_INVALID, "params is NULL");
    ax_tensor_free(p[1]->grad);
    assert_int_equal(ax_tensor_zeros(&p[1]->grad, 1, S(4), AX_DTYPE_I32), AX_OK);
    expect_error(ax_clip_grad_norm(&norm, 3, p, 1.0, 2.0), AX_ERR_INVALID, "grad of params[1] is i32");
    for (int i = 0; i < 3; i++) ax_tensor_free(p[i]);
}

/* ---- state files ------------------------------------------------------------------ */

/* 20 uninterrupted steps == 10 steps, save, load into a fresh optimizer,
 * 10 steps — bit for bit. */
static void check_resume(const char *file) {
    char path[512];
    tmp_path(path, sizeof path, "resume.safetensors");
    run a, b;
    run_open(&a, file);
    run_open(&b, file);
    ax_optim *oa, *ob, *oc;
    assert_int_equal(make_opt(&oa, file, a.params), AX_OK);
    run_steps(&a, oa, 0, 20, false);

    assert_int_equal(make_opt(&ob, file, b.params), AX_OK);
    run_steps(&b, ob, 0, 10, false);
    if (ax_optim_state_save(ob, path) != AX_OK) fail_msg("%s", ax_error_message());
    ax_optim_free(ob);
    assert_int_equal(make_opt(&oc, file, b.params), AX_OK);
    assert_int_equal(ax_optim_set_lr(oc, 123), AX_OK);
    if (ax_optim_state_load(oc, path) != AX_OK) fail_msg("%s", ax_error_message());
    assert_int_equal(ax_optim_steps(oc), 10);
    assert_true(ax_optim_lr(oc) == f64_at(b.lr, 9)); /* restored exactly */
    run_steps(&b, oc, 10, 20, false);
    for (int i = 0; i < NP; i++) {
        if (!bit_equal(a.params[i], b.params[i])) fail_msg("%s: resumed '%s' differs", file, PNAMES[i]);
    }
    /* The state after resuming equals the uninterrupted one too. */
    char pa[512], pc[512];
    tmp_path(pa, sizeof pa, "a.safetensors");
    tmp_path(pc, sizeof pc, "c.safetensors");
    assert_int_equal(ax_optim_state_save(oa, pa), AX_OK);
    assert_int_equal(ax_optim_state_save(oc, pc), AX_OK);
    ax_safetensors *fa;
    assert_int_equal(ax_safetensors_open(&fa, pa), AX_OK);
    ax_safetensors *fc;
    assert_int_equal(ax_safetensors_open(&fc, pc), AX_OK);
    assert_int_equal(ax_safetensors_count(fa), ax_safetensors_count(fc));
    for (size_t j = 0; j < ax_safetensors_count(fa); j++) {
        ax_tensor *ta, *tc;
        assert_int_equal(ax_safetensors_get(fa, ax_safetensors_name(fa, j), &ta), AX_OK);
        assert_int_equal(ax_safetensors_get(fc, ax_safetensors_name(fa, j), &tc), AX_OK);
        assert_true(bit_equal(ta, tc));
        ax_tensor_free(ta);
        ax_tensor_free(tc);
    }
    assert_string_equal(ax_safetensors_metadata(fa, "steps"), "20");
    ax_safetensors_close(fa);
    ax_safetensors_close(fc);
    remove(pa);
    remove(pc);
    remove(path);
    ax_optim_free(oa);
    ax_optim_free(oc);
    run_close(&a);
    run_close(&b);
}

static void test_resume_sgd_is_exact(void **state) {
    (void)state;
    check_resume("sgd_nesterov.safetensors");
    check_resume("sgd_dampening.safetensors");
}

static void test_resume_adamw_is_exact(void **state) {
    (void)state;
    check_resume("adamw.safetensors");
}

static void test_state_file_layout(void **state) {
    (void)state;
    char path[512];
    tmp_path(path, sizeof path, "layout.safetensors");
    run r;
    run_open(&r, "sgd_nesterov.safetensors");
    ax_optim *o;
    assert_int_equal(make_opt(&o, "sgd_nesterov.safetensors", r.params), AX_OK);
    run_steps(&r, o, 0, 1, false); /* enc.b has no grad at step 0 */
    assert_int_equal(ax_optim_state_save(o, path), AX_OK);
    ax_safetensors *f;
    assert_int_equal(ax_safetensors_open(&f, path), AX_OK);
    assert_string_equal(ax_safetensors_metadata(f, "format"), "axon.optim/1");
    assert_string_equal(ax_safetensors_metadata(f, "kind"), "sgd");
    assert_string_equal(ax_safetensors_metadata(f, "steps"), "1");
    assert_string_equal(ax_safetensors_metadata(f, "momentum"), "0.98999999999999999");
    assert_string_equal(ax_safetensors_metadata(f, "nesterov"), "1");
    assert_int_equal(ax_safetensors_count(f), 2 * NP - 1); /* no enc.b.momentum_buffer */
    ax_tensor *t;
    assert_int_equal(ax_safetensors_get(f, "enc.b.step", &t), AX_OK);
    assert_int_equal(t->dtype, AX_DTYPE_I64);
    assert_int_equal(t->ndim, 0);
    assert_true(ax_tensor_get(t, 0) == 0);
    ax_tensor_free(t);
    assert_int_equal(ax_safetensors_get(f, "enc.w.step", &t), AX_OK);
    assert_true(ax_tensor_get(t, 0) == 1);
    ax_tensor_free(t);
    assert_int_equal(ax_safetensors_get(f, "enc.w.momentum_buffer", &t), AX_OK);
    assert_true(ax_tensor_same_shape(t, r.params[0]));
    ax_tensor_free(t);
    assert_int_equal(ax_safetensors_get(f, "enc.b.momentum_buffer", &t), AX_ERR_NOT_FOUND);
    ax_safetensors_close(f);
    remove(path);
    ax_optim_free(o);
    run_close(&r);
}

/* Write an AdamW-looking state by hand, with tensors and metadata chosen
 * by the caller, for the load errors. */
static void write_state(const char *path, size_t n, const char *const *names, ax_tensor *const *ts, const char *kind,
                        const char *beta2, const char *fmt) {
    const char *keys[] = {"format", "kind", "steps", "lr", "beta1", "beta2", "eps", "weight_decay"};
    const char *vals[] = {fmt, kind, "1", "0.001", "0.90000000000000002", beta2, "1e-08", "0.050000000000000003"};
    if (ax_safetensors_save(path, n, names, (const ax_tensor *const *)ts, 8, keys, vals) != AX_OK)
        fail_msg("%s", ax_error_message());
}

static void test_state_load_errors(void **state) {
    (void)state;
    char path[512], good[512];
    tmp_path(path, sizeof path, "bad.safetensors");
    tmp_path(good, sizeof good, "good.safetensors");
    ax_tensor *w, *b;
    assert_int_equal(ax_tensor_zeros(&w, 2, S(2, 3), AX_DTYPE_F32), AX_OK);
    assert_int_equal(ax_tensor_zeros(&b, 1, S(3), AX_DTYPE_F32), AX_OK);
    ax_tensor *params[] = {w, b};
    const char *names[] = {"encoder.w", "encoder.b"};
    ax_optim *o, *sgd;
    assert_int_equal(ax_adamw_new(&o, 2, params, names, 1e-3, 0.9, 0.999, 1e-8, 0.05), AX_OK);
    assert_int_equal(ax_sgd_new(&sgd, 2, params, names, 1e-3, 0.9, 0, 0, false), AX_OK);

    /* A complete, valid state, then variations of it. */
    ax_tensor *step, *m, *mb, *m_wrong;
    assert_int_equal(ax_tensor_scalar(&step, 1, AX_DTYPE_I64), AX_OK);
    assert_int_equal(ax_tensor_full(&m, 2, S(2, 3), AX_DTYPE_F32, 0.5), AX_OK);
    assert_int_equal(ax_tensor_full(&mb, 1, S(3), AX_DTYPE_F32, 0.25), AX_OK);
    assert_int_equal(ax_tensor_zeros(&m_wrong, 2, S(3, 2), AX_DTYPE_F32), AX_OK);
    const char *all[] = {"encoder.w.step",    "encoder.w.exp_avg",    "encoder.w.exp_avg_sq", "encoder.b.step",
                         "encoder.b.exp_avg", "encoder.b.exp_avg_sq", "decoder.w.exp_avg"};
    ax_tensor *ts[] = {step, m, m, step, mb, mb, m};
    write_state(good, 6, all, ts, "adamw", "0.999", "axon.optim/1");
    assert_int_equal(ax_optim_state_load(o, good), AX_OK);
    assert_int_equal(ax_optim_steps(o), 1);
    assert_true(ax_optim_lr(o) == 0.001);

    /* Each failure leaves the optimizer as it was. */
    assert_int_equal(ax_optim_set_lr(o, 0.5), AX_OK);
    const char *missing[] = {"encoder.w.step", "encoder.w.exp_avg_sq", "encoder.b.step", "encoder.b.exp_avg",
                             "encoder.b.exp_avg_sq"};
    ax_tensor *ts_missing[] = {step, m, step, mb, mb};
    write_state(path, 5, missing, ts_missing, "adamw", "0.999", "axon.optim/1");
    expect_error(ax_optim_state_load(o, path), AX_ERR_FORMAT,
                 "bad.safetensors: no tensor 'encoder.w.exp_avg' for parameter 'encoder.w'");
    assert_true(ax_optim_lr(o) == 0.5);

    write_state(path, 7, all, ts, "adamw", "0.999", "axon.optim/1");
    expect_error(ax_optim_state_load(o, path), AX_ERR_INVALID,
                 "tensor 'decoder.w.exp_avg' belongs to no parameter of this optimizer");

    ax_tensor *ts_shape[] = {step, m_wrong, m, step, mb, mb};
    write_state(path, 6, all, ts_shape, "adamw", "0.999", "axon.optim/1");
    expect_error(ax_optim_state_load(o, path), AX_ERR_FORMAT,
                 "tensor 'encoder.w.exp_avg' is f32 [3, 2], parameter 'encoder.w' is f32 [2, 3]");

    write_state(path, 6, all, ts, "adamw", "0.98", "axon.optim/1");
    expect_error(ax_optim_state_load(o, path), AX_ERR_INVALID, "beta2 is 0.97999999999999998 in the file but 0.999");

    write_state(path, 6, all, ts, "adamw", "0.999", "something/2");
    expect_error(ax_optim_state_load(o, path), AX_ERR_FORMAT, "not an axon optimizer state");

    expect_error(ax_optim_state_load(sgd, good), AX_ERR_INVALID,
                 "the state of an optimizer of kind 'adamw'; this one is 'sgd'");

    ax_tensor *bad_step;
    assert_int_equal(ax_tensor_scalar(&bad_step, 5, AX_DTYPE_I64), AX_OK);
    ax_tensor *ts_step[] = {bad_step, m, m, step, mb, mb};
    write_state(path, 6, all, ts_step, "adamw", "0.999", "axon.optim/1");
    expect_error(ax_optim_state_load(o, path), AX_ERR_FORMAT,
                 "tensor 'encoder.w.step' must be one i64 in [0, steps 1]");

    tmp_path(path, sizeof path, "nonexistent.safetensors");
    expect_error(ax_optim_state_load(o, path), AX_ERR_NOT_FOUND, "ax_optim_state_load");
    tmp_path(path, sizeof path, "no/such/dir/x.safetensors");
    assert_int_not_equal(ax_optim_state_save(o, path), AX_OK);
    assert_non_null(strstr(ax_error_message(), "ax_optim_state_save"));

    assert_true(ax_optim_lr(o) == 0.5);
    assert_int_equal(ax_optim_steps(o), 1);

    /* A state for a subset of the parameters is "missing" for the others. */
    ax_optim *one;
    assert_int_equal(ax_adamw_new(&one, 1, params, names, 1e-3, 0.9, 0.999, 1e-8, 0.05), AX_OK);
    tmp_path(path, sizeof path, "one.safetensors");
    assert_int_equal(ax_optim_state_save(one, path), AX_OK);
    expect_error(ax_optim_state_load(o, path), AX_ERR_FORMAT, "no tensor 'encoder.b.step' for parameter 'encoder.b'");
    expect_error(ax_optim_state_load(one, good), AX_ERR_INVALID, "tensor 'encoder.b.step' belongs to no parameter");
    remove(path);
    ax_optim_free(one);

    tmp_path(path, sizeof path, "bad.safetensors");
    remove(path);
    remove(good);
    ax_tensor_free(step);
    ax_tensor_free(bad_step);
    ax_tensor_free(m);
    ax_tensor_free(mb);
    ax_tensor_free(m_wrong);
    ax_optim_free(o);
    ax_optim_free(sgd);
    ax_tensor_free(w);
    ax_tensor_free(b);
}

/* ---- construction and step errors ------------------------------------------------------ */

static void test_constructor_errors(void **state) {
    (void)state;
    ax_tensor *w, *b, *h, *i32, *bf, *big, *part, *wt;
    assert_int_equal(ax_tensor_zeros(&w, 2, S(2, 3), AX_DTYPE_F32), AX_OK);
    assert_int_equal(ax_tensor_zeros(&b, 1, S(3), AX_DTYPE_F32), AX_OK);
    assert_int_equal(ax_tensor_set_requires_grad(w, true), AX_OK);
    assert_int_equal(ax_mul_scalar(&h, w, 2.0), AX_OK);
    assert_int_equal(ax_tensor_zeros(&i32, 1, S(3), AX_DTYPE_I32), AX_OK);
    assert_int_equal(ax_tensor_zeros(&bf, 1, S(3), AX_DTYPE_BF16), AX_OK);
    assert_int_equal(ax_tensor_zeros(&big, 1, S(10), AX_DTYPE_F32), AX_OK);
    assert_int_equal(ax_tensor_narrow(&part, big, 0, 2, 3), AX_OK);
    ax_tensor *plain;
    assert_int_equal(ax_tensor_zeros(&plain, 2, S(2, 3), AX_DTYPE_F32), AX_OK);
    assert_int_equal(ax_tensor_transpose(&wt, plain, 0, 1), AX_OK);
    ax_optim *o = (ax_optim *)1;

    ax_tensor *p1[] = {w, h};
    const char *n2[] = {"w", "h"};
    expect_error(ax_sgd_new(&o, 2, p1, n2, 0.1, 0.9, 0, 0, false), AX_ERR_INVALID,
                 "ax_sgd_new: parameter 'h' [2, 3] is not a leaf (it was computed by '");
    assert_null(o);
    ax_tensor *p2[] = {w, i32};
    expect_error(ax_adamw_new(&o, 2, p2, NULL, 0.1, 0.9, 0.999, 1e-8, 0), AX_ERR_INVALID,
                 "ax_adamw_new: parameter '1' [3] is i32; optimizers update f32 parameters only");
    ax_tensor *p3[] = {bf};
    expect_error(ax_adamw_new(&o, 1, p3, NULL, 0.1, 0.9, 0.999, 1e-8, 0), AX_ERR_INVALID, "is bf16");
    ax_tensor *p4[] = {w, w};
    expect_error(ax_sgd_new(&o, 2, p4, n2, 0.1, 0, 0, 0, false), AX_ERR_INVALID,
                 "parameter 'h' shares memory with parameter 'w'");
    ax_tensor *p5[] = {big, part};
    expect_error(ax_sgd_new(&o, 2, p5, NULL, 0.1, 0, 0, 0, false), AX_ERR_INVALID,
                 "parameter '1' shares memory with parameter '0'");
    ax_tensor *p6[] = {w, b};
    const char *same[] = {"x", "x"}, *empty[] = {"x", ""};
    expect_error(ax_sgd_new(&o, 2, p6, same, 0.1, 0, 0, 0, false), AX_ERR_INVALID,
                 "parameters 0 and 1 are both named 'x'");
    expect_error(ax_sgd_new(&o, 2, p6, empty, 0.1, 0, 0, 0, false), AX_ERR_INVALID, "name 1 is empty");
    ax_tensor *p8[] = {wt};
    expect_error(ax_sgd_new(&o, 1, p8, NULL, 0.1, 0, 0, 0, false), AX_ERR_INVALID,
                 "parameter '0' [3, 2] is not contiguous");
    ax_tensor *p7[] = {w, NULL};
    expect_error(ax_sgd_new(&o, 2, p7, NULL, 0.1, 0, 0, 0, false), AX_ERR_INVALID, "parameter '1' is NULL");
    expect_error(ax_sgd_new(&o, 2, NULL, NULL, 0.1, 0, 0, 0, false), AX_ERR_INVALID, "params is NULL");

    expect_error(ax_sgd_new(&o, 2, p6, NULL, -0.1, 0, 0, 0, false), AX_ERR_INVALID,
                 "ax_sgd_new: lr -0.1 is outside [0, inf]");
    expect_error(ax_sgd_new(&o, 2, p6, NULL, NAN, 0, 0, 0, false), AX_ERR_INVALID, "lr nan");
    expect_error(ax_sgd_new(&o, 2, p6, NULL, 0.1, -0.5, 0, 0, false), AX_ERR_INVALID, "momentum -0.5");
    expect_error(ax_sgd_new(&o, 2, p6, NULL, 0.1, 0.9, 0, -1, false), AX_ERR_INVALID, "weight_decay -1");
    expect_error(ax_sgd_new(&o, 2, p6, NULL, 0.1, 0, 0, 0, true), AX_ERR_INVALID,
                 "nesterov needs momentum > 0 and dampening 0, got momentum 0");
    expect_error(ax_sgd_new(&o, 2, p6, NULL, 0.1, 0.9, 0.1, 0, true), AX_ERR_INVALID, "dampening 0.1");
    expect_error(ax_adamw_new(&o, 2, p6, NULL, -1, 0.9, 0.999, 1e-8, 0), AX_ERR_INVALID, "ax_adamw_new: lr -1");
    expect_error(ax_adamw_new(&o, 2, p6, NULL, 0.1, 1.0, 0.999, 1e-8, 0), AX_ERR_INVALID, "beta1 1 is outside [0, 1)");
    expect_error(ax_adamw_new(&o, 2, p6, NULL, 0.1, 0.9, -0.1, 1e-8, 0), AX_ERR_INVALID, "beta2 -0.1");
    expect_error(ax_adamw_new(&o, 2, p6, NULL, 0.1, 0.9, 0.999, -1e-8, 0), AX_ERR_INVALID, "eps -1e-08");
    expect_error(ax_adamw_new(&o, 2, p6, NULL, 0.1, 0.9, 0.999, 1e-8, INFINITY), AX_ERR_INVALID, "weight_decay inf");

    /* The accessors, default names, set_lr. */
    assert_int_equal(ax_sgd_new(&o, 2, p6, NULL, 0.1, 0, 0, 0, false), AX_OK);
    assert_int_equal(ax_optim_count(o), 2);
    assert_string_equal(ax_optim_name(o, 1), "1");
    assert_ptr_equal(ax_optim_param(o, 0), w);
    assert_null(ax_optim_param(o, 2));
    assert_null(ax_optim_name(o, 2));
    assert_int_equal(ax_optim_kind_of(o), AX_OPTIM_SGD);
    assert_string_equal(ax_optim_kind_name(AX_OPTIM_ADAMW), "adamw");
    expect_error(ax_optim_set_lr(o, -1e-3), AX_ERR_INVALID, "ax_optim_set_lr: lr -0.001 must be finite and >= 0");
    expect_error(ax_optim_set_lr(o, INFINITY), AX_ERR_INVALID, "lr inf");
    assert_true(ax_optim_lr(o) == 0.1);
    assert_int_equal(ax_optim_step(o), AX_OK); /* no grads: nothing moves */
    assert_int_equal(ax_optim_steps(o), 1);
    ax_optim_free(o);
    ax_optim_free(NULL);
    assert_int_equal(ax_adamw_new(&o, 0, NULL, NULL, 0.1, 0.9, 0.999, 1e-8, 0), AX_OK);
    assert_int_equal(ax_optim_step(o), AX_OK);
    char path[512];
    tmp_path(path, sizeof path, "empty.safetensors");
    assert_int_equal(ax_optim_state_save(o, path), AX_OK);
    ax_optim_free(o);
    assert_int_equal(ax_adamw_new(&o, 0, NULL, NULL, 0.2, 0.9, 0.999, 1e-8, 0), AX_OK);
    assert_int_equal(ax_optim_state_load(o, path), AX_OK);
    assert_int_equal(ax_optim_steps(o), 1);
    assert_true(ax_optim_lr(o) == 0.1);
    remove(path);
    ax_optim_free(o);

    ax_tensor_free(plain);
    ax_tensor_free(wt);
    ax_tensor_free(w);
    ax_tensor_free(b);
    ax_tensor_free(h);
    ax_tensor_free(i32);
    ax_tensor_free(bf);
    ax_tensor_free(big);
    ax_tensor_free(part);
}

static void test_step_grads(void **state) {
    (void)state;
    ax_tensor *w, *b;
    assert_int_equal(ax_tensor_full(&w, 2, S(2, 3), AX_DTYPE_F32, 1.0), AX_OK);
    assert_int_equal(ax_tensor_full(&b, 1, S(3), AX_DTYPE_F32, 1.0), AX_OK);
    ax_tensor *params[] = {w, b};
    ax_optim *o;
    assert_int_equal(ax_sgd_new(&o, 2, params, NULL, 0.5, 0, 0, 0, false), AX_OK);

    /* A grad of the wrong shape fails before anything changes. */
    assert_int_equal(ax_tensor_full(&w->grad, 2, S(2, 3), AX_DTYPE_F32, 1.0), AX_OK);
    assert_int_equal(ax_tensor_full(&b->grad, 1, S(4), AX_DTYPE_F32, 1.0), AX_OK);
    expect_error(ax_optim_step(o), AX_ERR_INVALID,
                 "ax_optim_step: grad of parameter '1' has shape [4], the parameter [3]");
    assert_true(ax_tensor_get(w, 0) == 1.0);
    assert_int_equal(ax_optim_steps(o), 0);
    ax_tensor_free(b->grad);
    assert_int_equal(ax_tensor_zeros(&b->grad, 1, S(3), AX_DTYPE_I64), AX_OK);
    expect_error(ax_optim_step(o), AX_ERR_INVALID, "grad of parameter '1' is i64, not a floating dtype");

    /* bf16 and non-contiguous (broadcast) grads are converted. */
    ax_tensor_free(b->grad);
    assert_int_equal(ax_tensor_full(&b->grad, 1, S(3), AX_DTYPE_BF16, 0.5), AX_OK);
    ax_tensor *one, *wide;
    assert_int_equal(ax_tensor_full(&one, 2, S(1, 3), AX_DTYPE_F32, 2.0), AX_OK);
    assert_int_equal(ax_tensor_expand(&wide, one, 2, S(2, 3)), AX_OK);
    ax_tensor_free(w->grad);
    w->grad = wide;
    assert_int_equal(ax_optim_step(o), AX_OK);
    assert_true(ax_tensor_get(w, 5) == 0.0);  /* 1 - 0.5 * 2 */
    assert_true(ax_tensor_get(b, 2) == 0.75); /* 1 - 0.5 * 0.5 */
    assert_true(ax_tensor_get(one, 0) == 2.0);
    ax_optim_zero_grad(o);
    assert_null(w->grad);
    assert_null(b->grad);
    ax_tensor_free(one);
    ax_optim_free(o);
    ax_tensor_free(w);
    ax_tensor_free(b);
}

/* A large parameter (many blocks, a partial last one) updates exactly like
 * the same values split into separate parameters at odd offsets: block
 * boundaries change nothing. Plus the large-tensor norm against a plain
 * double sum. */
static void test_large_tensors_match_pieces(void **state) {
    (void)state;
    const int64_t n = 9000, cut[] = {0, 1000, 3049, 9000};
    for (int kind = 0; kind < 3; kind++) {
        ax_tensor *big, *pieces[3];
        assert_int_equal(ax_tensor_randn(&big, 1, S(n), AX_DTYPE_F32, 11, 0), AX_OK);
        for (int j = 0; j < 3; j++) {
            ax_tensor *v;
            assert_int_equal(ax_tensor_narrow(&v, big, 0, cut[j], cut[j + 1] - cut[j]), AX_OK);
            pieces[j] = clone(v);
            ax_tensor_free(v);
        }
        ax_optim *ob, *op;
        if (kind == 0) {
            assert_int_equal(ax_sgd_new(&ob, 1, &big, NULL, 1e-2, 0.99, 0, 3e-5, true), AX_OK);
            assert_int_equal(ax_sgd_new(&op, 3, pieces, NULL, 1e-2, 0.99, 0, 3e-5, true), AX_OK);
        } else if (kind == 1) {
            assert_int_equal(ax_sgd_new(&ob, 1, &big, NULL, 1e-2, 0.9, 0.5, 0, false), AX_OK);
            assert_int_equal(ax_sgd_new(&op, 3, pieces, NULL, 1e-2, 0.9, 0.5, 0, false), AX_OK);
        } else {
            assert_int_equal(ax_adamw_new(&ob, 1, &big, NULL, 1e-3, 0.9, 0.98, 1e-8, 0.05), AX_OK);
            assert_int_equal(ax_adamw_new(&op, 3, pieces, NULL, 1e-3, 0.9, 0.98, 1e-8, 0.05), AX_OK);
        }
        for (int k = 0; k < 3; k++) {
            assert_int_equal(ax_tensor_randn(&big->grad, 1, S(n), AX_DTYPE_F32, 12 + k, 0), AX_OK);
            for (int j = 0; j < 3; j++) {
                ax_tensor *v;
                assert_int_equal(ax_tensor_narrow(&v, big->grad, 0, cut[j], cut[j + 1] - cut[j]), AX_OK);
                pieces[j]->grad = clone(v);
                ax_tensor_free(v);
            }
            assert_int_equal(ax_optim_step(ob), AX_OK);
            assert_int_equal(ax_optim_step(op), AX_OK);
            ax_optim_zero_grad(ob);
            ax_optim_zero_grad(op);
        }
        for (int j = 0; j < 3; j++) {
            ax_tensor *v;
            assert_int_equal(ax_tensor_narrow(&v, big, 0, cut[j], cut[j + 1] - cut[j]), AX_OK);
            ax_tensor *c = clone(v);
            assert_true(bit_equal(c, pieces[j]));
            ax_tensor_free(c);
            ax_tensor_free(v);
            ax_tensor_free(pieces[j]);
        }
        ax_optim_free(ob);
        ax_optim_free(op);
        ax_tensor_free(big);
    }

    ax_tensor *p;
    const int64_t m = 100003;
    assert_int_equal(ax_tensor_zeros(&p, 1, S(m), AX_DTYPE_F32), AX_OK);
    assert_int_equal(ax_tensor_randn(&p->grad, 1, S(m), AX_DTYPE_F32, 3, 0), AX_OK);
    long double ss = 0, s1 = 0, mx = 0;
    for (int64_t i = 0; i < m; i++) {
        long double x = ax_tensor_get(p->grad, i);
        ss += x * x;
        s1 += fabsl(x);
        if (fabsl(x) > mx) mx = fabsl(x);
    }
    double norm;
    assert_int_equal(ax_clip_grad_norm(&norm, 1, &p, 1e9, 2.0), AX_OK);
    assert_true(fabs(norm - (double)sqrtl(ss)) <= 1e-12 * norm);
    assert_int_equal(ax_clip_grad_norm(&norm, 1, &p, 1e9, 1.0), AX_OK);
    assert_true(fabs(norm - (double)s1) <= 1e-12 * norm);
    assert_int_equal(ax_clip_grad_norm(&norm, 1, &p, 1e9, INFINITY), AX_OK);
    assert_true(norm == (double)mx);
    assert_int_equal(ax_clip_grad_norm(&norm, 1, &p, 1e9, 3.0), AX_OK);
    long double s3 = 0;
    for (int64_t i = 0; i < m; i++) s3 += powl(fabsl((long double)ax_tensor_get(p->grad, i)), 3);
    assert_true(fabs(norm - (double)powl(s3, 1.0L / 3)) <= 1e-12 * norm);
    ax_tensor_free(p);
}

/* Results do not depend on the number of threads (parallel loops are
 * elementwise; the norm is chunked in a fixed order). */
static void test_thread_count_independence(void **state) {
    (void)state;
    const int64_t n = 300007;
    ax_tensor *p[2][2];
    ax_optim *o[2];
    double norms[2];
    int saved = ax_num_threads();
    for (int r = 0; r < 2; r++) {
        ax_set_num_threads(r == 0 ? 1 : 4);
        assert_int_equal(ax_tensor_randn(&p[r][0], 1, S(n), AX_DTYPE_F32, 7, 0), AX_OK);
        assert_int_equal(ax_tensor_randn(&p[r][1], 2, S(3, 5), AX_DTYPE_F32, 7, 1), AX_OK);
        assert_int_equal(ax_adamw_new(&o[r], 2, p[r], NULL, 1e-3, 0.9, 0.999, 1e-8, 0.05), AX_OK);
        for (int k = 0; k < 3; k++) {
            for (int i = 0; i < 2; i++)
                assert_int_equal(ax_tensor_randn(&p[r][i]->grad, p[r][i]->ndim, p[r][i]->shape, AX_DTYPE_F32, 8 + k, i),
                                 AX_OK);
            assert_int_equal(ax_clip_grad_norm(&norms[r], 2, p[r], 100.0, 2.0), AX_OK);
            assert_int_equal(ax_optim_step(o[r]), AX_OK);
            ax_optim_zero_grad(o[r]);
        }
    }
    ax_set_num_threads(saved);
    assert_true(norms[0] == norms[1]);
    assert_true(norms[0] > 500 && norms[0] < 600); /* ~sqrt(n) */
    for (int i = 0; i < 2; i++) assert_true(bit_equal(p[0][i], p[1][i]));
    for (int r = 0; r < 2; r++) {
        ax_optim_free(o[r]);
        for (int i = 0; i < 2; i++) ax_tensor_free(p[r][i]);
    }
}

static int setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/axon-test-optim-XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    /* The files a failed test may have left behind. */
    static const char *const files[] = {"resume.safetensors", "a.safetensors",    "c.safetensors",
                                        "layout.safetensors", "bad.safetensors",  "good.safetensors",
                                        "one.safetensors", "empty.safetensors"};
    char path[512];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        tmp_path(path, sizeof path, files[i]);
        remove(path);
    }
    return rmdir(tmpdir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_nesterov_matches_torch), cmocka_unit_test(test_sgd_dampening_matches_torch),
        cmocka_unit_test(test_adamw_matches_torch),        cmocka_unit_test(test_end_to_end_with_autograd),
        cmocka_unit_test(test_schedules_match_torch),      cmocka_unit_test(test_schedule_edges_and_errors),
        cmocka_unit_test(test_clip_matches_torch),         cmocka_unit_test(test_clip_edges_and_errors),
        cmocka_unit_test(test_resume_sgd_is_exact),        cmocka_unit_test(test_resume_adamw_is_exact),
        cmocka_unit_test(test_state_file_layout),          cmocka_unit_test(test_state_load_errors),
        cmocka_unit_test(test_constructor_errors),         cmocka_unit_test(test_step_grads),
        cmocka_unit_test(test_large_tensors_match_pieces), cmocka_unit_test(test_thread_count_independence),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
