/* Losses and vector similarity (axon/loss.h): compositions of differentiable
 * ops, so autograd supplies every gradient. Floating inputs are promoted to
 * f32 first (through the recorded ax_tensor_to_dtype, so gradients flow back
 * in the input's dtype) and the losses are computed and returned in f32.
 *
 * One-hot targets are built without gather: arange(C) viewed along the class
 * dim compared with the target (ax_eq) gives a u8 mask, and where(mask, lp, 0)
 * summed over classes picks lp[i, t_i]. That works on any backend and its
 * gradient is exact. */
#include <math.h>
#include <string.h>

#include "axon/loss.h"
#include "ops_internal.h"

/* ---- helpers ---------------------------------------------------------------- */

static void ax_free_n(ax_tensor **ts, size_t n) {
    for (size_t i = 0; i < n; i++) ax_tensor_free(ts[i]);
}

/* Replace *t (made on the CPU) by a copy on like's device when that differs. */
static ax_status ax_move_like(ax_tensor **t, const ax_tensor *like) {
    ax_device a = (*t)->storage->device, b = like->storage->device;
    if (a.type == b.type && a.index == b.index) return AX_OK;
    ax_tensor *m;
    ax_status st = ax_tensor_to_device(&m, *t, b);
    ax_tensor_free(*t);
    *t = st == AX_OK ? m : NULL;
    return st;
}

/* A 0-dim constant on like's device. */
static ax_status ax_const_like(ax_tensor **out, double value, ax_dtype dtype, const ax_tensor *like) {
    *out = NULL;
    if (ax_tensor_scalar(out, value, dtype) != AX_OK) return ax_error_status();
    return ax_move_like(out, like);
}

/* arange(C) (i64) viewed along dim cd of an ndim-dim tensor, on like's device. */
static ax_status ax_class_ids(ax_tensor **out, int64_t C, int ndim, int cd, const ax_tensor *like) {
    int64_t shape[AX_MAX_DIMS];
    for (int d = 0; d < ndim; d++) shape[d] = d == cd ? C : 1;
    ax_tensor *ar;
    *out = NULL;
    ax_status st = ax_tensor_arange(&ar, 0, (double)C, 1, AX_DTYPE_I64);
    if (st == AX_OK) st = ax_move_like(&ar, like);
    if (st == AX_OK) st = ax_tensor_view(out, ar, ndim, shape);
    ax_tensor_free(ar);
    return st;
}

/* t as f32, recorded by autograd (a new reference to t when it is f32). */
static ax_status ax_to_f32(ax_tensor **out, const ax_tensor *t) {
    if (t->dtype == AX_DTYPE_F32) {
        *out = ax_tensor_retain((ax_tensor *)t);
        return AX_OK;
    }
    return ax_tensor_to_dtype(out, t, AX_DTYPE_F32);
}

/* ax_sum over n dims where n == 0 means none (ax_sum's n == 0 means all). */
static ax_status ax_sum_some(ax_tensor **out, const ax_tensor *x, int n, const int *dims, bool keepdim) {
    if (n == 0) {
        *out = ax_tensor_retain((ax_tensor *)x);
        return AX_OK;
    }
    return ax_sum(out, x, n, dims, keepdim);
}

static ax_status ax_check_reduction(const char *fn, ax_loss_reduction r) {
    if (r == AX_LOSS_MEAN || r == AX_LOSS_SUM || r == AX_LOSS_NONE) return AX_OK;
    return AX_ERROR(AX_ERR_INVALID, "%s: unknown reduction %d (want AX_LOSS_MEAN, AX_LOSS_SUM or AX_LOSS_NONE)", fn,
                    (int)r);
}

/* Apply a reduction to per-element losses (NONE hands back a new reference). */
static ax_status ax_reduce_loss(ax_tensor **out, const ax_tensor *per, ax_loss_reduction r) {
    switch (r) {
    case AX_LOSS_SUM: return ax_sum(out, per, 0, NULL, false);
    case AX_LOSS_MEAN: return ax_mean(out, per, 0, NULL, false);
    default: *out = ax_tensor_retain((ax_tensor *)per); return AX_OK;
    }
}

/* Reduce per-element losses `err` (shape E) under an optional mask that
 * broadcasts to E: MEAN divides by the mask's sum over E. */
static ax_status ax_reduce_masked(ax_tensor **out, const ax_tensor *err, const ax_tensor *mask,
                                  ax_loss_reduction r) {
    if (!mask) return ax_reduce_loss(out, err, r);
    ax_tensor *m = NULL, *wm = NULL, *s = NULL, *ms = NULL, *den = NULL;
    ax_status st = ax_to_f32(&m, mask);
    if (st == AX_OK) st = ax_mul(&wm, err, m);
    if (st == AX_OK && r == AX_LOSS_NONE) {
        *out = wm;
        wm = NULL;
    } else if (st == AX_OK) {
        st = ax_sum(&s, wm, 0, NULL, false);
        if (st == AX_OK && r == AX_LOSS_SUM) {
            *out = s;
            s = NULL;
        } else if (st == AX_OK) {
            /* each mask element stands for numel(E) / numel(mask) elements */
            double rep = (double)ax_tensor_numel(err) / (double)ax_tensor_numel(mask);
            ax_no_grad_begin();
            st = ax_sum(&ms, m, 0, NULL, false);
            if (st == AX_OK) st = ax_mul_scalar(&den, ms, rep);
            ax_no_grad_end();
            if (st == AX_OK) st = ax_div(out, s, den);
        }
    }
    ax_tensor *tmp[] = {m, wm, s, ms, den};
    ax_free_n(tmp, sizeof tmp / sizeof tmp[0]);
    return st;
}

/* Broadcast shape of pred and target, and the mask check, for the
 * regression losses. */
static ax_status ax_regression_check(const char *fn, const ax_tensor *pred, const ax_tensor *target,
                                     const ax_tensor *mask, ax_loss_reduction r) {
    char a[160], b[160];
    int nd;
    int64_t shape[AX_MAX_DIMS];
    if (ax_check_reduction(fn, r) != AX_OK || ax_op_need_float(fn, "pred", pred) != AX_OK) return ax_error_status();
    const ax_tensor *ts[] = {pred, target, mask};
    if (ax_op_same_device(fn, mask ? 3 : 2, ts) != AX_OK) return ax_error_status();
    if (!ax_broadcast_shape(pred, target, &nd, shape))
        return AX_ERROR(AX_ERR_INVALID, "%s: pred %s and target %s do not broadcast", fn,
                        ax_shape_str(a, sizeof a, pred->ndim, pred->shape),
                        ax_shape_str(b, sizeof b, target->ndim, target->shape));
    if (mask) {
        if (!ax_dtype_is_float(mask->dtype) && mask->dtype != AX_DTYPE_U8)
            return AX_ERROR(AX_ERR_INVALID, "%s: mask must be float or u8, got %s", fn, ax_dtype_name(mask->dtype));
        if (!ax_broadcastable_to(mask, nd, shape))
            return AX_ERROR(AX_ERR_INVALID, "%s: mask %s does not broadcast to the loss shape %s", fn,
                            ax_shape_str(a, sizeof a, mask->ndim, mask->shape), ax_shape_str(b, sizeof b, nd, shape));
    }
    return AX_OK;
}

/* d = pred - target in f32. */
static ax_status ax_diff_f32(ax_tensor **d, const ax_tensor *pred, const ax_tensor *target) {
    ax_tensor *p = NULL, *t = NULL;
    ax_status st = ax_to_f32(&p, pred);
    if (st == AX_OK) st = ax_to_f32(&t, target);
    if (st == AX_OK) st = ax_sub(d, p, t);
    ax_tensor_free(p);
    ax_tensor_free(t);
    return st;
}

/* ---- regression -------------------------------------------------------------- */

typedef enum { AX_REG_MSE, AX_REG_L1 } ax_reg_kind;

static ax_status ax_regression(const char *fn, ax_reg_kind kind, ax_tensor **out, const ax_tensor *pred,
                               const ax_tensor *target, const ax_tensor *mask, ax_loss_reduction r) {
    *out = NULL;
    if (ax_regression_check(fn, pred, target, mask, r) != AX_OK) return ax_error_status();
    ax_tensor *d = NULL, *e = NULL;
    ax_status st = ax_diff_f32(&d, pred, target);
    if (st == AX_OK) st = kind == AX_REG_MSE ? ax_mul(&e, d, d) : ax_abs(&e, d);
    if (st == AX_OK) st = ax_reduce_masked(out, e, mask, r);
    ax_tensor_free(d);
    ax_tensor_free(e);
    if (st != AX_OK && !strstr(ax_error_message(), fn)) ax_error_prefix("%s", fn);
    return st;
}

ax_status ax_mse_loss(ax_tensor **out, const ax_tensor *pred, const ax_tensor *target, const ax_tensor *mask,
                      ax_loss_reduction reduction) {
    return ax_regression("ax_mse_loss", AX_REG_MSE, out, pred, target, mask, reduction);
}

ax_status ax_l1_loss(ax_tensor **out, const ax_tensor *pred, const ax_tensor *target, const ax_tensor *mask,
                     ax_loss_reduction reduction) {
    return ax_regression("ax_l1_loss", AX_REG_L1, out, pred, target, mask, reduction);
}

ax_status ax_smooth_l1_loss(ax_tensor **out, const ax_tensor *pred, const ax_tensor *target, double beta,
                            ax_loss_reduction reduction) {
    const char *fn = "ax_smooth_l1_loss";
    *out = NULL;
    if (ax_regression_check(fn, pred, target, NULL, reduction) != AX_OK) return ax_error_status();
    if (!(beta >= 0) || !isfinite(beta))
        return AX_ERROR(AX_ERR_INVALID, "%s: beta = %g must be finite and >= 0", fn, beta);
    ax_tensor *d = NULL, *a = NULL, *sq = NULL, *quad = NULL, *lin = NULL, *bt = NULL, *small = NULL, *e = NULL;
    ax_status st = ax_diff_f32(&d, pred, target);
    if (st == AX_OK) st = ax_abs(&a, d);
    if (st == AX_OK && beta == 0) {
        e = ax_tensor_retain(a);
    } else if (st == AX_OK) {
        st = ax_mul(&sq, d, d);
        if (st == AX_OK) st = ax_mul_scalar(&quad, sq, 0.5 / beta);
        if (st == AX_OK) st = ax_add_scalar(&lin, a, -0.5 * beta);
        if (st == AX_OK) st = ax_const_like(&bt, beta, AX_DTYPE_F32, pred);
        if (st == AX_OK) st = ax_lt(&small, a, bt);
        if (st == AX_OK) st = ax_where(&e, small, quad, lin);
    }
    if (st == AX_OK) st = ax_reduce_loss(out, e, reduction);
    ax_tensor *tmp[] = {d, a, sq, quad, lin, bt, small, e};
    ax_free_n(tmp, sizeof tmp / sizeof tmp[0]);
    if (st != AX_OK && !strstr(ax_error_message(), fn)) ax_error_prefix("%s", fn);
    return st;
}

/* ---- cross entropy ---------------------------------------------------------------- */

/* Every class index in [0, C) or == ignore (CPU tensors only: elsewhere
 * reading them back would cost a device sync). */
static ax_status ax_ce_check_targets(const ax_tensor *target, int64_t C, int64_t ignore) {
    if (target->storage->device.type != AX_DEVICE_CPU) return AX_OK;
    ax_tensor *c;
    if (ax_tensor_contiguous(&c, target) != AX_OK) return ax_error_status();
    const void *data = ax_tensor_data(c);
    int64_t n = ax_tensor_numel(c), bad = -1, v = 0;
    for (int64_t i = 0; i < n && bad < 0; i++) {
        switch (c->dtype) {
        case AX_DTYPE_I64: v = ((const int64_t *)data)[i]; break;
        case AX_DTYPE_I32: v = ((const int32_t *)data)[i]; break;
        default: v = ((const uint8_t *)data)[i]; break;
        }
        if (v != ignore && (v < 0 || v >= C)) bad = i;
    }
    ax_tensor_free(c);
    if (bad >= 0)
        return AX_ERROR(AX_ERR_INVALID,
                        "ax_cross_entropy: target value %lld at element %lld is not a class in [0, %lld) nor "
                        "ignore_index %lld",
                        (long long)v, (long long)bad, (long long)C, (long long)ignore);
    return AX_OK;
}

typedef struct ax_ce_args {
    const ax_tensor *lp;  /* log_softmax(logits), f32 */
    const ax_tensor *w;   /* [optional] weights viewed [1, C, 1, ...], f32 */
    int cd;               /* class dim */
    int64_t C;
    double eps;
    ax_loss_reduction r;
} ax_ce_args;

/* Class-index targets (see loss.h for the formula). */
static ax_status ax_ce_indices(ax_tensor **out, const ax_ce_args *a, const ax_tensor *target, int64_t ignore) {
    const int cd = a->cd;
    ax_tensor *cls = NULL, *tu = NULL, *hot = NULL, *zero = NULL, *sel = NULL, *picked = NULL;
    ax_tensor *wsel = NULL, *wt = NULL, *nll = NULL, *per = NULL, *lw = NULL, *sm = NULL, *smw = NULL, *per2 = NULL;
    ax_tensor *ig = NULL, *valid = NULL, *lm = NULL, *den_w = NULL, *den = NULL, *tot = NULL;
    ax_status st = ax_class_ids(&cls, a->C, a->lp->ndim, cd, a->lp);
    if (st == AX_OK) st = ax_tensor_unsqueeze(&tu, target, cd);
    if (st == AX_OK) st = ax_eq(&hot, cls, tu);
    if (st == AX_OK) st = ax_const_like(&zero, 0.0, AX_DTYPE_F32, a->lp);
    /* picked_i = lp[i, t_i]; where() keeps an -inf elsewhere from making NaN */
    if (st == AX_OK) st = ax_where(&sel, hot, a->lp, zero);
    if (st == AX_OK) st = ax_sum(&picked, sel, 1, &cd, false);
    if (st == AX_OK && a->w) {
        ax_no_grad_begin();
        st = ax_where(&wsel, hot, a->w, zero);
        if (st == AX_OK) st = ax_sum(&wt, wsel, 1, &cd, false); /* w[t_i] */
        ax_no_grad_end();
        if (st == AX_OK) st = ax_mul(&nll, picked, wt);
    } else if (st == AX_OK) {
        nll = ax_tensor_retain(picked);
    }
    if (st == AX_OK) st = ax_mul_scalar(&per, nll, -(1.0 - a->eps));
    if (st == AX_OK && a->eps > 0) {
        if (a->w) st = ax_mul(&lw, a->lp, a->w);
        if (st == AX_OK) st = ax_sum(&sm, a->w ? lw : a->lp, 1, &cd, false);
        if (st == AX_OK) st = ax_mul_scalar(&smw, sm, -a->eps / (double)a->C);
        if (st == AX_OK) st = ax_add(&per2, per, smw);
        if (st == AX_OK) {
            ax_tensor_free(per);
            per = per2;
            per2 = NULL;
        }
    }
    if (st == AX_OK) st = ax_const_like(&ig, (double)ignore, AX_DTYPE_I64, a->lp);
    if (st == AX_OK) st = ax_ne(&valid, target, ig);
    if (st == AX_OK) st = ax_where(&lm, valid, per, zero);
    if (st == AX_OK && a->r == AX_LOSS_MEAN) {
        /* torch's weighted mean: divide by the weights of the counted targets */
        ax_no_grad_begin();
        if (a->w) {
            st = ax_where(&den_w, valid, wt, zero);
        } else {
            st = ax_to_f32(&den_w, valid);
        }
        if (st == AX_OK) st = ax_sum(&den, den_w, 0, NULL, false);
        ax_no_grad_end();
        if (st == AX_OK) st = ax_sum(&tot, lm, 0, NULL, false);
        if (st == AX_OK) st = ax_div(out, tot, den);
    } else if (st == AX_OK) {
        st = ax_reduce_loss(out, lm, a->r);
    }
    ax_tensor *tmp[] = {cls, tu, hot, zero, sel, picked, wsel, wt, nll, per, lw, sm, smw, per2, ig, valid, lm, den_w,
                        den, tot};
    ax_free_n(tmp, sizeof tmp / sizeof tmp[0]);
    return st;
}

/* Probability targets of logits' shape. */
static ax_status ax_ce_probs(ax_tensor **out, const ax_ce_args *a, const ax_tensor *target) {
    const int cd = a->cd;
    ax_tensor *t = NULL, *ts = NULL, *tsm = NULL, *p = NULL, *pw = NULL, *s = NULL, *per = NULL, *tot = NULL;
    ax_status st = ax_to_f32(&t, target);
    if (st == AX_OK && a->eps > 0) {
        st = ax_mul_scalar(&ts, t, 1.0 - a->eps);
        if (st == AX_OK) st = ax_add_scalar(&tsm, ts, a->eps / (double)a->C);
    } else if (st == AX_OK) {
        tsm = ax_tensor_retain(t);
    }
    if (st == AX_OK) st = ax_mul(&p, a->lp, tsm);
    if (st == AX_OK && a->w) st = ax_mul(&pw, p, a->w);
    if (st == AX_OK) st = ax_sum(&s, a->w ? pw : p, 1, &cd, false);
    if (st == AX_OK) st = ax_neg(&per, s);
    if (st == AX_OK && a->r == AX_LOSS_MEAN) {
        int64_t rows = ax_tensor_numel(a->lp) / (a->C ? a->C : 1);
        st = ax_sum(&tot, per, 0, NULL, false);
        if (st == AX_OK) st = ax_mul_scalar(out, tot, rows ? 1.0 / (double)rows : NAN);
    } else if (st == AX_OK) {
        st = ax_reduce_loss(out, per, a->r);
    }
    ax_tensor *tmp[] = {t, ts, tsm, p, pw, s, per, tot};
    ax_free_n(tmp, sizeof tmp / sizeof tmp[0]);
    return st;
}

static ax_status ax_ce_check(const ax_tensor *logits, const ax_tensor *target, const ax_tensor *w, int64_t ignore,
                             double eps, ax_loss_reduction r, bool *probs) {
    const char *fn = "ax_cross_entropy";
    char a[160], b[160], c[160];
    if (ax_check_reduction(fn, r) != AX_OK || ax_op_need_float(fn, "logits", logits) != AX_OK)
        return ax_error_status();
    if (logits->ndim < 1)
        return AX_ERROR(AX_ERR_INVALID, "%s: logits must be [N, C, *] or [C], got a 0-dim tensor", fn);
    const ax_tensor *ts[] = {logits, target, w};
    if (ax_op_same_device(fn, w ? 3 : 2, ts) != AX_OK) return ax_error_status();
    if (!(eps >= 0 && eps <= 1))
        return AX_ERROR(AX_ERR_INVALID, "%s: label_smoothing = %g is not in [0, 1]", fn, eps);
    int cd = logits->ndim == 1 ? 0 : 1;
    int64_t C = logits->shape[cd];
    if (w) {
        if (ax_op_need_float(fn, "class_weights", w) != AX_OK) return ax_error_status();
        if (w->ndim != 1 || w->shape[0] != C)
            return AX_ERROR(AX_ERR_INVALID, "%s: class_weights %s must be [%lld] for logits %s", fn,
                            ax_shape_str(a, sizeof a, w->ndim, w->shape), (long long)C,
                            ax_shape_str(b, sizeof b, logits->ndim, logits->shape));
    }
    *probs = ax_dtype_is_float(target->dtype);
    if (*probs) {
        if (!ax_tensor_same_shape(target, logits))
            return AX_ERROR(AX_ERR_INVALID,
                            "%s: float target %s must have logits' shape %s (class probabilities); class indices "
                            "must be an integer tensor",
                            fn, ax_shape_str(a, sizeof a, target->ndim, target->shape),
                            ax_shape_str(b, sizeof b, logits->ndim, logits->shape));
        if (ignore >= 0)
            return AX_ERROR(AX_ERR_INVALID, "%s: ignore_index %lld is not supported with class probabilities", fn,
                            (long long)ignore);
        return AX_OK;
    }
    if (target->dtype != AX_DTYPE_I64 && target->dtype != AX_DTYPE_I32 && target->dtype != AX_DTYPE_U8)
        return AX_ERROR(AX_ERR_INVALID, "%s: target must hold class indices (i64, i32 or u8) or float probabilities, got %s",
                        fn, ax_dtype_name(target->dtype));
    int64_t want[AX_MAX_DIMS];
    int nw = 0;
    for (int d = 0; d < logits->ndim; d++)
        if (d != cd) want[nw++] = logits->shape[d];
    if (target->ndim != nw || memcmp(target->shape, want, (size_t)nw * sizeof(int64_t)))
        return AX_ERROR(AX_ERR_INVALID, "%s: target %s does not match logits %s (want %s)", fn,
                        ax_shape_str(a, sizeof a, target->ndim, target->shape),
                        ax_shape_str(b, sizeof b, logits->ndim, logits->shape), ax_shape_str(c, sizeof c, nw, want));
    return ax_ce_check_targets(target, C, ignore);
}

ax_status ax_cross_entropy(ax_tensor **out, const ax_tensor *logits, const ax_tensor *target,
                           const ax_tensor *class_weights, int64_t ignore_index, double label_smoothing,
                           ax_loss_reduction reduction) {
    const char *fn = "ax_cross_entropy";
    bool probs = false;
    *out = NULL;
    if (ax_ce_check(logits, target, class_weights, ignore_index, label_smoothing, reduction, &probs) != AX_OK)
        return ax_error_status();
    ax_ce_args a = {.cd = logits->ndim == 1 ? 0 : 1, .eps = label_smoothing, .r = reduction};
    a.C = logits->shape[a.cd];
    ax_tensor *lf = NULL, *lp = NULL, *wf = NULL, *wv = NULL;
    ax_status st = ax_to_f32(&lf, logits);
    if (st == AX_OK) st = ax_log_softmax(&lp, lf, a.cd);
    if (st == AX_OK && class_weights) {
        int64_t ashape[AX_MAX_DIMS];
        for (int d = 0; d < logits->ndim; d++) ashape[d] = d == a.cd ? a.C : 1;
        st = ax_to_f32(&wf, class_weights);
        if (st == AX_OK) st = ax_tensor_view(&wv, wf, logits->ndim, ashape);
    }
    if (st == AX_OK) {
        a.lp = lp;
        a.w = wv;
        st = probs ? ax_ce_probs(out, &a, target) : ax_ce_indices(out, &a, target, ignore_index);
    }
    ax_tensor *tmp[] = {lf, lp, wf, wv};
    ax_free_n(tmp, sizeof tmp / sizeof tmp[0]);
    if (st != AX_OK && !strstr(ax_error_message(), fn)) ax_error_prefix("%s", fn);
    return st;
}

/* ---- binary cross entropy ---------------------------------------------------------- */

ax_status ax_bce_with_logits(ax_tensor **out, const ax_tensor *logits, const ax_tensor *target,
                             const ax_tensor *pos_weight, ax_loss_reduction reduction) {
    const char *fn = "ax_bce_with_logits";
    char a[160], b[160];
    *out = NULL;
    if (ax_check_reduction(fn, reduction) != AX_OK || ax_op_need_float(fn, "logits", logits) != AX_OK)
        return ax_error_status();
    const ax_tensor *ts[] = {logits, target, pos_weight};
    if (ax_op_same_device(fn, pos_weight ? 3 : 2, ts) != AX_OK) return ax_error_status();
    if (!ax_tensor_same_shape(logits, target))
        return AX_ERROR(AX_ERR_INVALID, "%s: target %s must have logits' shape %s", fn,
                        ax_shape_str(a, sizeof a, target->ndim, target->shape),
                        ax_shape_str(b, sizeof b, logits->ndim, logits->shape));
    if (pos_weight) {
        if (ax_op_need_float(fn, "pos_weight", pos_weight) != AX_OK) return ax_error_status();
        if (!ax_broadcastable_to(pos_weight, logits->ndim, logits->shape))
            return AX_ERROR(AX_ERR_INVALID, "%s: pos_weight %s does not broadcast to logits %s", fn,
                            ax_shape_str(a, sizeof a, pos_weight->ndim, pos_weight->shape),
                            ax_shape_str(b, sizeof b, logits->ndim, logits->shape));
    }
    ax_tensor *x = NULL, *t = NULL, *omt = NULL, *lin = NULL, *nx = NULL, *sp = NULL, *pw = NULL, *pwm1 = NULL;
    ax_tensor *pt = NULL, *lw = NULL, *spw = NULL, *per = NULL;
    ax_status st = ax_to_f32(&x, logits);
    if (st == AX_OK) st = ax_to_f32(&t, target);
    /* (1 - t) * x */
    if (st == AX_OK) st = ax_mul_scalar(&omt, t, -1.0);
    if (st == AX_OK) {
        ax_tensor *o;
        st = ax_add_scalar(&o, omt, 1.0);
        ax_tensor_free(omt);
        omt = o;
    }
    if (st == AX_OK) st = ax_mul(&lin, omt, x);
    /* -log(sigmoid(x)) = softplus(-x); threshold 20 returns -x exactly
     * where log1p(exp(-x)) would be -x to f32 precision anyway */
    if (st == AX_OK) st = ax_neg(&nx, x);
    if (st == AX_OK) st = ax_softplus(&sp, nx, 1.0, 20.0);
    if (st == AX_OK && pos_weight) {
        /* 1 + (pw - 1) * t */
        st = ax_to_f32(&pw, pos_weight);
        if (st == AX_OK) st = ax_add_scalar(&pwm1, pw, -1.0);
        if (st == AX_OK) st = ax_mul(&pt, pwm1, t);
        if (st == AX_OK) st = ax_add_scalar(&lw, pt, 1.0);
        if (st == AX_OK) st = ax_mul(&spw, sp, lw);
    } else if (st == AX_OK) {
        spw = ax_tensor_retain(sp);
    }
    if (st == AX_OK) st = ax_add(&per, lin, spw);
    if (st == AX_OK) st = ax_reduce_loss(out, per, reduction);
    ax_tensor *tmp[] = {x, t, omt, lin, nx, sp, pw, pwm1, pt, lw, spw, per};
    ax_free_n(tmp, sizeof tmp / sizeof tmp[0]);
    if (st != AX_OK && !strstr(ax_error_message(), fn)) ax_error_prefix("%s", fn);
    return st;
}

/* ---- soft Dice ------------------------------------------------------------------------ */

/* One-hot f32 [N, C, *] of a label map ([N, *] or [N, 1, *]) or the target
 * itself (any dtype, as f32) when it already has probs' shape. */
static ax_status ax_dice_onehot(ax_tensor **out, const ax_tensor *probs, const ax_tensor *target) {
    const char *fn = "ax_soft_dice_loss";
    char a[160], b[160];
    *out = NULL;
    if (ax_tensor_same_shape(probs, target)) return ax_cast_nograd(out, target, AX_DTYPE_F32);
    const int nd = probs->ndim;
    int64_t lshape[AX_MAX_DIMS];
    for (int d = 0; d < nd; d++) lshape[d] = d == 1 ? 1 : probs->shape[d];
    bool with_c = target->ndim == nd && !memcmp(target->shape, lshape, (size_t)nd * sizeof(int64_t));
    bool without_c = target->ndim == nd - 1 && target->shape[0] == probs->shape[0] &&
                     !memcmp(target->shape + 1, probs->shape + 2, (size_t)(nd - 2) * sizeof(int64_t));
    if (!with_c && !without_c)
        return AX_ERROR(AX_ERR_INVALID,
                        "%s: target %s is neither a label map [N, *] / [N, 1, *] nor one-hot like probs %s", fn,
                        ax_shape_str(a, sizeof a, target->ndim, target->shape),
                        ax_shape_str(b, sizeof b, probs->ndim, probs->shape));
    ax_tensor *cls = NULL, *lab = NULL, *hot = NULL;
    ax_no_grad_begin();
    ax_status st = ax_class_ids(&cls, probs->shape[1], nd, 1, probs);
    if (st == AX_OK) st = with_c ? (lab = ax_tensor_retain((ax_tensor *)target), AX_OK) : ax_tensor_unsqueeze(&lab, target, 1);
    if (st == AX_OK) st = ax_eq(&hot, cls, lab);
    if (st == AX_OK) st = ax_tensor_to_dtype(out, hot, AX_DTYPE_F32);
    ax_no_grad_end();
    ax_tensor *tmp[] = {cls, lab, hot};
    ax_free_n(tmp, sizeof tmp / sizeof tmp[0]);
    return st;
}

ax_status ax_soft_dice_loss(ax_tensor **out, const ax_tensor *probs, const ax_tensor *target,
                            const ax_tensor *loss_mask, double smooth, bool batch_dice, bool do_bg) {
    const char *fn = "ax_soft_dice_loss";
    char a[160], b[160];
    *out = NULL;
    if (ax_op_need_float(fn, "probs", probs) != AX_OK) return ax_error_status();
    if (probs->ndim < 2)
        return AX_ERROR(AX_ERR_INVALID, "%s: probs %s must be [N, C, *]", fn,
                        ax_shape_str(a, sizeof a, probs->ndim, probs->shape));
    const ax_tensor *ts[] = {probs, target, loss_mask};
    if (ax_op_same_device(fn, loss_mask ? 3 : 2, ts) != AX_OK) return ax_error_status();
    if (!isfinite(smooth) || smooth < 0)
        return AX_ERROR(AX_ERR_INVALID, "%s: smooth = %g must be finite and >= 0", fn, smooth);
    if (!do_bg && probs->shape[1] < 2)
        return AX_ERROR(AX_ERR_INVALID, "%s: do_bg = false needs at least 2 classes, probs is %s", fn,
                        ax_shape_str(a, sizeof a, probs->ndim, probs->shape));
    if (loss_mask) {
        int64_t mshape[AX_MAX_DIMS];
        for (int d = 0; d < probs->ndim; d++) mshape[d] = d == 1 ? 1 : probs->shape[d];
        if (!ax_dtype_is_float(loss_mask->dtype) && loss_mask->dtype != AX_DTYPE_U8)
            return AX_ERROR(AX_ERR_INVALID, "%s: loss_mask must be float or u8, got %s", fn,
                            ax_dtype_name(loss_mask->dtype));
        if (!ax_broadcastable_to(loss_mask, probs->ndim, mshape))
            return AX_ERROR(AX_ERR_INVALID, "%s: loss_mask %s does not broadcast to %s", fn,
                            ax_shape_str(a, sizeof a, loss_mask->ndim, loss_mask->shape),
                            ax_shape_str(b, sizeof b, probs->ndim, mshape));
    }
    const int64_t C = probs->shape[1];
    int axes[AX_MAX_DIMS], na = 0;
    if (batch_dice) axes[na++] = 0;
    for (int d = 2; d < probs->ndim; d++) axes[na++] = d;
    ax_tensor *x = NULL, *y = NULL, *xs = NULL, *ys = NULL, *m = NULL, *xm = NULL, *ym = NULL, *xy = NULL;
    ax_tensor *in = NULL, *sp = NULL, *sg = NULL, *num0 = NULL, *num = NULL, *den0 = NULL, *den1 = NULL, *den = NULL;
    ax_tensor *dc = NULL, *mdc = NULL;
    ax_status st = ax_to_f32(&x, probs);
    if (st == AX_OK) st = ax_dice_onehot(&y, probs, target);
    if (st == AX_OK && !do_bg) {
        st = ax_tensor_narrow(&xs, x, 1, 1, C - 1);
        if (st == AX_OK) st = ax_tensor_narrow(&ys, y, 1, 1, C - 1);
    } else if (st == AX_OK) {
        xs = ax_tensor_retain(x);
        ys = ax_tensor_retain(y);
    }
    if (st == AX_OK && loss_mask) {
        st = ax_cast_nograd(&m, loss_mask, AX_DTYPE_F32);
        if (st == AX_OK) st = ax_mul(&xm, xs, m);
        if (st == AX_OK) st = ax_mul(&ym, ys, m);
    } else if (st == AX_OK) {
        xm = ax_tensor_retain(xs);
        ym = ax_tensor_retain(ys);
    }
    if (st == AX_OK) st = ax_mul(&xy, xm, ys);
    if (st == AX_OK) st = ax_sum_some(&in, xy, na, axes, false);
    if (st == AX_OK) st = ax_sum_some(&sp, xm, na, axes, false);
    if (st == AX_OK) st = ax_sum_some(&sg, ym, na, axes, false);
    if (st == AX_OK) st = ax_mul_scalar(&num0, in, 2.0);
    if (st == AX_OK) st = ax_add_scalar(&num, num0, smooth);
    if (st == AX_OK) st = ax_add(&den0, sg, sp);
    if (st == AX_OK) st = ax_add_scalar(&den1, den0, smooth);
    if (st == AX_OK) st = ax_clamp(&den, den1, 1e-8, INFINITY);
    if (st == AX_OK) st = ax_div(&dc, num, den);
    if (st == AX_OK) st = ax_mean(&mdc, dc, 0, NULL, false);
    if (st == AX_OK) st = ax_neg(out, mdc);
    ax_tensor *tmp[] = {x, y, xs, ys, m, xm, ym, xy, in, sp, sg, num0, num, den0, den1, den, dc, mdc};
    ax_free_n(tmp, sizeof tmp / sizeof tmp[0]);
    if (st != AX_OK && !strstr(ax_error_message(), fn)) ax_error_prefix("%s", fn);
    return st;
}

/* ---- similarity ---------------------------------------------------------------------- */

/* ||x|| along dim (keepdim), with the gradient of an all-zero vector 0 rather
 * than 0 * inf = NaN (torch's norm backward masks it the same way). */
static ax_status ax_safe_norm(ax_tensor **out, const ax_tensor *x, int dim) {
    ax_tensor *sq = NULL, *s = NULL, *zero = NULL, *one = NULL, *pos = NULL, *ss = NULL, *r = NULL;
    ax_status st = ax_mul(&sq, x, x);
    if (st == AX_OK) st = ax_sum(&s, sq, 1, &dim, true);
    if (st == AX_OK) st = ax_const_like(&zero, 0.0, s->dtype, x);
    if (st == AX_OK) st = ax_const_like(&one, 1.0, s->dtype, x);
    if (st == AX_OK) st = ax_gt(&pos, s, zero);
    if (st == AX_OK) st = ax_where(&ss, pos, s, one);
    if (st == AX_OK) st = ax_sqrt(&r, ss);
    if (st == AX_OK) st = ax_where(out, pos, r, zero);
    ax_tensor *tmp[] = {sq, s, zero, one, pos, ss, r};
    ax_free_n(tmp, sizeof tmp / sizeof tmp[0]);
    return st;
}

/* max(n, eps) in value, n for autograd: torch clamps a clone of the norm
 * in place under no_grad. */
static ax_status ax_clamp_invisible(ax_tensor **out, const ax_tensor *n, double eps) {
    ax_tensor *c = NULL, *delta = NULL;
    ax_no_grad_begin();
    ax_status st = ax_clamp(&c, n, eps, INFINITY);
    if (st == AX_OK) st = ax_sub(&delta, c, n);
    ax_no_grad_end();
    if (st == AX_OK) st = ax_add(out, n, delta);
    ax_tensor_free(c);
    ax_tensor_free(delta);
    return st;
}

/* t converted back to dtype (recorded), or t itself. */
static ax_status ax_back_to(ax_tensor **out, ax_tensor *t, ax_dtype dtype) {
    if (t->dtype == dtype) {
        *out = ax_tensor_retain(t);
        return AX_OK;
    }
    return ax_tensor_to_dtype(out, t, dtype);
}

ax_status ax_cosine_similarity(ax_tensor **out, const ax_tensor *a, const ax_tensor *b, int dim, double eps) {
    const char *fn = "ax_cosine_similarity";
    char sa[160], sb[160];
    int nd;
    int64_t shape[AX_MAX_DIMS];
    *out = NULL;
    if (ax_op_need_float(fn, "a", a) != AX_OK || ax_op_need_float(fn, "b", b) != AX_OK) return ax_error_status();
    if (ax_op_same_device(fn, 2, (const ax_tensor *[]){a, b}) != AX_OK) return ax_error_status();
    if (!ax_broadcast_shape(a, b, &nd, shape))
        return AX_ERROR(AX_ERR_INVALID, "%s: a %s and b %s do not broadcast", fn,
                        ax_shape_str(sa, sizeof sa, a->ndim, a->shape), ax_shape_str(sb, sizeof sb, b->ndim, b->shape));
    int d = dim < 0 ? dim + nd : dim;
    if (nd == 0 || d < 0 || d >= nd)
        return AX_ERROR(AX_ERR_INVALID, "%s: dim %d out of range for the broadcast shape %s", fn, dim,
                        ax_shape_str(sa, sizeof sa, nd, shape));
    if (!(eps >= 0) || !isfinite(eps)) return AX_ERROR(AX_ERR_INVALID, "%s: eps = %g must be finite and >= 0", fn, eps);
    ax_dtype rd = a->dtype == b->dtype ? a->dtype : AX_DTYPE_F32;
    ax_tensor *af = NULL, *bf = NULL, *ea = NULL, *eb = NULL, *na = NULL, *nb = NULL, *ca = NULL, *cb = NULL;
    ax_tensor *ua = NULL, *ub = NULL, *p = NULL, *s = NULL;
    ax_status st = ax_to_f32(&af, a);
    if (st == AX_OK) st = ax_to_f32(&bf, b);
    /* torch expands both first: a size-1 dim counts once per copy in the norm */
    if (st == AX_OK) st = ax_tensor_expand(&ea, af, nd, shape);
    if (st == AX_OK) st = ax_tensor_expand(&eb, bf, nd, shape);
    if (st == AX_OK) st = ax_safe_norm(&na, ea, d);
    if (st == AX_OK) st = ax_safe_norm(&nb, eb, d);
    if (st == AX_OK) st = ax_clamp_invisible(&ca, na, eps);
    if (st == AX_OK) st = ax_clamp_invisible(&cb, nb, eps);
    if (st == AX_OK) st = ax_div(&ua, ea, ca);
    if (st == AX_OK) st = ax_div(&ub, eb, cb);
    if (st == AX_OK) st = ax_mul(&p, ua, ub);
    if (st == AX_OK) st = ax_sum(&s, p, 1, &d, false);
    if (st == AX_OK) st = ax_back_to(out, s, rd);
    ax_tensor *tmp[] = {af, bf, ea, eb, na, nb, ca, cb, ua, ub, p, s};
    ax_free_n(tmp, sizeof tmp / sizeof tmp[0]);
    if (st != AX_OK && !strstr(ax_error_message(), fn)) ax_error_prefix("%s", fn);
    return st;
}

ax_status ax_l2_normalize(ax_tensor **out, const ax_tensor *x, int dim, double eps) {
    const char *fn = "ax_l2_normalize";
    char s[160];
    *out = NULL;
    if (ax_op_need_float(fn, "x", x) != AX_OK) return ax_error_status();
    int d = ax_tensor_dim(x, dim);
    if (x->ndim == 0 || d < 0)
        return AX_ERROR(AX_ERR_INVALID, "%s: dim %d out of range for x %s", fn, dim,
                        ax_shape_str(s, sizeof s, x->ndim, x->shape));
    if (!(eps >= 0) || !isfinite(eps)) return AX_ERROR(AX_ERR_INVALID, "%s: eps = %g must be finite and >= 0", fn, eps);
    ax_tensor *xf = NULL, *n = NULL, *c = NULL, *q = NULL;
    ax_status st = ax_to_f32(&xf, x);
    if (st == AX_OK) st = ax_safe_norm(&n, xf, d);
    if (st == AX_OK) st = ax_clamp(&c, n, eps, INFINITY);
    if (st == AX_OK) st = ax_div(&q, xf, c);
    if (st == AX_OK) st = ax_back_to(out, q, x->dtype);
    ax_tensor *tmp[] = {xf, n, c, q};
    ax_free_n(tmp, sizeof tmp / sizeof tmp[0]);
    if (st != AX_OK && !strstr(ax_error_message(), fn)) ax_error_prefix("%s", fn);
    return st;
}
