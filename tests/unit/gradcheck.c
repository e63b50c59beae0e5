#include "gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

const ax_gc_opts AX_GC_DEFAULT = {.eps = 1e-2, .atol = 2e-3, .rtol = 2e-2, .max_elems = 48};

ax_tensor *ax_test_randn(int ndim, const int64_t *shape, uint64_t seed, double scale, double shift, bool grad) {
    ax_tensor *t, *u;
    if (ax_tensor_randn(&t, ndim, shape, AX_DTYPE_F32, seed, 7) != AX_OK) return NULL;
    if (ax_add_scalar(&u, t, 0) != AX_OK) return NULL; /* fresh storage */
    ax_tensor_free(t);
    for (int64_t i = 0; i < ax_tensor_numel(u); i++) ax_tensor_set(u, i, ax_tensor_get(u, i) * scale + shift);
    if (grad) ax_tensor_set_requires_grad(u, true);
    return u;
}

/* loss = sum(f(inputs) * w) as a double, no grad. */
static bool ax_gc_loss(ax_gc_fn f, ax_tensor *const *in, void *ctx, const ax_tensor *w, double *loss) {
    ax_tensor *out;
    ax_no_grad_begin();
    ax_status st = f(&out, in, ctx);
    ax_no_grad_end();
    if (st != AX_OK) {
        fprintf(stderr, "gradcheck: forward failed: %s\n", ax_error_message());
        return false;
    }
    double s = 0;
    for (int64_t i = 0; i < ax_tensor_numel(out); i++) s += ax_tensor_get(out, i) * ax_tensor_get(w, i);
    ax_tensor_free(out);
    *loss = s;
    return true;
}

bool ax_gradcheck(ax_gc_fn f, int n, ax_tensor *const *inputs, void *ctx, const ax_gc_opts *o) {
    ax_tensor *out = NULL, *w = NULL, *prod = NULL, *loss = NULL;
    bool ok = false;
    for (int i = 0; i < n; i++) ax_tensor_zero_grad(inputs[i]);
    if (f(&out, inputs, ctx) != AX_OK) {
        fprintf(stderr, "gradcheck: forward failed: %s\n", ax_error_message());
        return false;
    }
    if (!out->requires_grad) {
        fprintf(stderr, "gradcheck: output does not require grad\n");
        goto done;
    }
    ax_tensor *w0;
    if (ax_tensor_randn(&w0, out->ndim, out->shape, AX_DTYPE_F32, 4242, 1) != AX_OK) goto done;
    w = w0;
    ax_tensor *o32 = out;
    if (out->dtype != AX_DTYPE_F32 && ax_tensor_to_dtype(&o32, out, AX_DTYPE_F32) != AX_OK) goto done;
    ax_status st = ax_mul(&prod, o32, w);
    if (o32 != out) ax_tensor_free(o32);
    if (st != AX_OK || ax_sum(&loss, prod, 0, NULL, false) != AX_OK || ax_backward(loss, NULL) != AX_OK) {
        fprintf(stderr, "gradcheck: backward failed: %s\n", ax_error_message());
        goto done;
    }
    ok = true;
    for (int i = 0; i < n && ok; i++) {
        ax_tensor *x = inputs[i];
        if (!x->requires_grad) continue;
        if (!x->grad) {
            fprintf(stderr, "gradcheck: input %d got no gradient\n", i);
            ok = false;
            break;
        }
        int64_t numel = ax_tensor_numel(x);
        int64_t step = numel > o->max_elems ? numel / o->max_elems : 1;
        double worst = 0, worst_a = 0, worst_n = 0;
        int64_t worst_j = -1;
        for (int64_t j = 0; j < numel; j += step) {
            double v = ax_tensor_get(x, j), lp, lm;
            ax_tensor_set(x, j, v + o->eps);
            bool okp = ax_gc_loss(f, inputs, ctx, w, &lp);
            ax_tensor_set(x, j, v - o->eps);
            bool okm = ax_gc_loss(f, inputs, ctx, w, &lm);
            ax_tensor_set(x, j, v);
            if (!okp || !okm) {
                ok = false;
                break;
            }
            double num = (lp - lm) / (2 * o->eps), ana = ax_tensor_get(x->grad, j);
            double excess = fabs(ana - num) - (o->atol + o->rtol * fabs(num));
            if (!(excess <= 0) && (worst_j < 0 || !(excess <= worst))) {
                worst = excess;
                worst_j = j;
                worst_a = ana;
                worst_n = num;
            }
        }
        if (worst_j >= 0) {
            fprintf(stderr, "gradcheck: input %d element %lld: analytic %.6g, numeric %.6g\n", i,
                    (long long)worst_j, worst_a, worst_n);
            ok = false;
        }
    }
done:
    ax_tensor_free(out);
    ax_tensor_free(w);
    ax_tensor_free(prod);
    ax_tensor_free(loss);
    return ok;
}

bool ax_allclose(const char *what, const ax_tensor *got, const ax_tensor *want, double atol, double rtol) {
    if (!ax_tensor_same_shape(got, want)) {
        char a[160], b[160];
        fprintf(stderr, "%s: shape %s, want %s\n", what, ax_shape_str(a, sizeof a, got->ndim, got->shape),
                ax_shape_str(b, sizeof b, want->ndim, want->shape));
        return false;
    }
    int64_t worst_j = -1;
    double worst = 0;
    for (int64_t j = 0; j < ax_tensor_numel(got); j++) {
        double g = ax_tensor_get(got, j), w = ax_tensor_get(want, j);
        if (isnan(g) && isnan(w)) continue;
        double excess = fabs(g - w) - (atol + rtol * fabs(w));
        if (!(excess <= 0) && (worst_j < 0 || !(excess <= worst))) worst = excess, worst_j = j;
    }
    if (worst_j >= 0) {
        fprintf(stderr, "%s: element %lld: got %.8g, want %.8g (atol %g, rtol %g)\n", what, (long long)worst_j,
                ax_tensor_get(got, worst_j), ax_tensor_get(want, worst_j), atol, rtol);
        return false;
    }
    return true;
}
