/* The CPU backend's optimizer kernels (axon/kernels.h: sgd_step,
 * adamw_step, grad_norm): torch's single-tensor CPU updates operation by
 * operation in f32 (see sdk/src/optim.c for the coefficients), elementwise
 * over blocks spread over threads, so bit-identical for any thread count.
 * Norms are summed in double per fixed-size chunk, chunks combined in
 * order: the result does not depend on the threads either. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_kernels.h"

/* Below this many elements a loop runs on one thread. */
#define AX_OPTIM_PAR_MIN 32768
/* Updates run over blocks of this many elements (L1-resident, so the
 * SGD's few passes over a block cost little). */
#define AX_OPTIM_BLOCK 2048
#define AX_NORM_CHUNK 16384
#define AX_NORM_LANES 8

/* a * b + c rounded once, like the fused multiply-adds of PyTorch's
 * vectorised CPU kernels (add with alpha, lerp): the product of two floats
 * is exact in double, so only the sum rounds (twice, to double then float;
 * that differs from a true fma only when the double lands exactly on a
 * float rounding tie, which is very rare). Plain C, so it also vectorises
 * where hardware fma is not enabled. */
static inline float ax_fmadd(float a, float b, float c) { return (float)((double)a * (double)b + (double)c); }

static float *ax_f32p(const ax_tensor *t) { return (float *)ax_tensor_data(t); }

static ax_status ax_cpu_optim_check(const char *fn, const ax_tensor *p, const ax_tensor *const *others, int n) {
    if (p->dtype != AX_DTYPE_F32 || !ax_tensor_is_contiguous(p))
        return AX_ERROR(AX_ERR_INVALID, "%s: the parameter must be f32 and contiguous", fn);
    for (int i = 0; i < n; i++)
        if (others[i] && (others[i]->dtype != AX_DTYPE_F32 || !ax_tensor_is_contiguous(others[i]) ||
                          !ax_tensor_same_shape(others[i], p)))
            return AX_ERROR(AX_ERR_INVALID, "%s: operand %d is not an f32 contiguous tensor of the parameter's shape",
                            fn, i + 1);
    return AX_OK;
}

/* torch's _single_tensor_sgd on elements [0, n) (n <= AX_OPTIM_BLOCK), as
 * branch-free loops that vectorise; each line is one torch op. */
static void ax_sgd_block(const ax_sgd_step_params *c, float *p, float *buf, const float *g, int64_t n) {
    const float wd = c->wd, mom = c->mom, keep = c->keep, neg_lr = c->neg_lr; /* not reloaded per element */
    float d[AX_OPTIM_BLOCK];
    const float *gd = g;
    if (c->has_wd) { /* grad = grad.add(param, alpha=wd) */
#pragma omp simd
        for (int64_t i = 0; i < n; i++) d[i] = ax_fmadd(p[i], wd, g[i]);
        gd = d;
    }
    if (c->has_mom) {
        if (c->first) { /* buf = grad.clone() */
            memcpy(buf, gd, (size_t)n * sizeof *buf);
        } else { /* buf.mul_(momentum).add_(grad, alpha=1 - dampening) */
#pragma omp simd
            for (int64_t i = 0; i < n; i++) buf[i] = ax_fmadd(gd[i], keep, buf[i] * mom);
        }
        if (c->nesterov) { /* grad = grad.add(buf, alpha=momentum) */
#pragma omp simd
            for (int64_t i = 0; i < n; i++) d[i] = ax_fmadd(buf[i], mom, gd[i]);
            gd = d;
        } else {
            gd = buf;
        }
    }
#pragma omp simd
    for (int64_t i = 0; i < n; i++) p[i] = ax_fmadd(gd[i], neg_lr, p[i]); /* param.add_(grad, alpha=-lr) */
}

ax_status ax_cpu_sgd_step(ax_tensor *pt, ax_tensor *buft, const ax_tensor *gt, const ax_sgd_step_params *c) {
    const ax_tensor *others[2] = {buft, gt};
    if (ax_cpu_optim_check("sgd_step", pt, others, 2) != AX_OK) return ax_error_status();
    if (c->has_mom && !buft) return AX_ERROR(AX_ERR_INVALID, "sgd_step: momentum without a buffer");
    float *p = ax_f32p(pt), *buf = c->has_mom ? ax_f32p(buft) : NULL;
    const float *g = ax_f32p(gt);
    const ax_sgd_step_params cc = *c;
    int64_t n = ax_tensor_numel(pt), nb = (n + AX_OPTIM_BLOCK - 1) / AX_OPTIM_BLOCK;
#pragma omp parallel for if (n >= AX_OPTIM_PAR_MIN) schedule(static)
    for (int64_t b = 0; b < nb; b++) {
        int64_t lo = b * AX_OPTIM_BLOCK, len = n - lo < AX_OPTIM_BLOCK ? n - lo : AX_OPTIM_BLOCK;
        ax_sgd_block(&cc, p + lo, buf ? buf + lo : NULL, g + lo, len);
    }
    return AX_OK;
}

/* One element of torch's _single_tensor_adam, each line one torch op.
 * decay is exactly 1 without weight decay, so p * decay is then p. */
static inline void ax_adamw_elem(const ax_adamw_step_params *c, bool w_small, float *p, float *m, float *v, float g) {
    float pi = *p * c->decay; /* param.mul_(1 - lr * weight_decay) */
    float mi = *m;            /* exp_avg.lerp_(grad, 1 - beta1) */
    mi = w_small ? ax_fmadd(c->w, g - mi, mi) : ax_fmadd(c->w - 1.0f, g - mi, g);
    float vi = *v * c->b2 + c->one_b2 * g * g;      /* exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2) */
    float denom = sqrtf(vi) / c->bc2_sqrt + c->eps; /* (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps) */
    *m = mi;
    *v = vi;
    *p = pi + c->neg_step * mi / denom; /* param.addcdiv_(exp_avg, denom, value=-step_size) */
}

static void ax_adamw_block(const ax_adamw_step_params *coef, bool w_small, float *p, float *m, float *v,
                           const float *g, int64_t n) {
    const ax_adamw_step_params cc = *coef, *c = &cc; /* a local copy: not reloaded per element */
    /* Left scalar: sqrtf may set errno, which keeps compilers from
     * vectorising the loop (short of -fno-math-errno). */
    if (w_small) /* the usual case (beta1 > 0.5) */
        for (int64_t i = 0; i < n; i++) ax_adamw_elem(c, true, p + i, m + i, v + i, g[i]);
    else
        for (int64_t i = 0; i < n; i++) ax_adamw_elem(c, false, p + i, m + i, v + i, g[i]);
}

ax_status ax_cpu_adamw_step(ax_tensor *pt, ax_tensor *mt, ax_tensor *vt, const ax_tensor *gt,
                            const ax_adamw_step_params *c) {
    const ax_tensor *others[3] = {mt, vt, gt};
    if (!mt || !vt) return AX_ERROR(AX_ERR_INVALID, "adamw_step: moment buffers missing");
    if (ax_cpu_optim_check("adamw_step", pt, others, 3) != AX_OK) return ax_error_status();
    float *p = ax_f32p(pt), *m = ax_f32p(mt), *v = ax_f32p(vt);
    const float *g = ax_f32p(gt);
    const bool w_small = fabsf(c->w) < 0.5f; /* lerp's two formulas */
    int64_t n = ax_tensor_numel(pt), nb = (n + AX_OPTIM_BLOCK - 1) / AX_OPTIM_BLOCK;
#pragma omp parallel for if (n >= AX_OPTIM_PAR_MIN) schedule(static)
    for (int64_t b = 0; b < nb; b++) {
        int64_t lo = b * AX_OPTIM_BLOCK, len = n - lo < AX_OPTIM_BLOCK ? n - lo : AX_OPTIM_BLOCK;
        ax_adamw_block(c, w_small, p + lo, m + lo, v + lo, g + lo, len);
    }
    return AX_OK;
}

/* Sum over x[0..n) of |x|^p (p = 1, 2 or general), or max |x| (p = inf),
 * in double with AX_NORM_LANES interleaved accumulators combined in a
 * fixed order. NaN propagates. */
static double ax_norm_chunk(const float *x, int64_t n, double p) {
    double acc[AX_NORM_LANES] = {0};
    int64_t i = 0;
    if (isinf(p)) {
        bool nan = false;
        for (; i < n; i++) {
            double a = fabs((double)x[i]);
            if (a != a)
                nan = true;
            else if (a > acc[0])
                acc[0] = a;
        }
        return nan ? NAN : acc[0];
    }
    if (p == 2) {
        for (; i + AX_NORM_LANES <= n; i += AX_NORM_LANES)
            for (int l = 0; l < AX_NORM_LANES; l++) acc[l] += (double)x[i + l] * (double)x[i + l];
        for (; i < n; i++) acc[0] += (double)x[i] * (double)x[i];
    } else if (p == 1) {
        for (; i + AX_NORM_LANES <= n; i += AX_NORM_LANES)
            for (int l = 0; l < AX_NORM_LANES; l++) acc[l] += fabs((double)x[i + l]);
        for (; i < n; i++) acc[0] += fabs((double)x[i]);
    } else {
        for (; i < n; i++) acc[0] += pow(fabs((double)x[i]), p);
    }
    double s = 0;
    for (int l = 0; l < AX_NORM_LANES; l++) s += acc[l];
    return s;
}

/* Accumulate one tensor into *acc (sum of |x|^p, or the max for inf). */
static ax_status ax_norm_accumulate(double *acc, const float *x, int64_t n, double p) {
    int64_t nchunks = (n + AX_NORM_CHUNK - 1) / AX_NORM_CHUNK;
    if (nchunks == 0) return AX_OK;
    double *part = malloc((size_t)nchunks * sizeof *part);
    if (!part) return AX_ERROR(AX_ERR_NOMEM, "grad_norm: out of memory");
#pragma omp parallel for if (n >= AX_OPTIM_PAR_MIN) schedule(static)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t lo = c * AX_NORM_CHUNK, len = n - lo < AX_NORM_CHUNK ? n - lo : AX_NORM_CHUNK;
        part[c] = ax_norm_chunk(x + lo, len, p);
    }
    for (int64_t c = 0; c < nchunks; c++) {
        if (isinf(p))
            *acc = (part[c] != part[c] || *acc != *acc) ? NAN : (part[c] > *acc ? part[c] : *acc);
        else
            *acc += part[c];
    }
    free(part);
    return AX_OK;
}

ax_status ax_cpu_grad_norm(double *acc, size_t n, const ax_tensor *const *xs, double p) {
    for (size_t i = 0; i < n; i++) {
        if (xs[i]->dtype != AX_DTYPE_F32 || !ax_tensor_is_contiguous(xs[i]))
            return AX_ERROR(AX_ERR_INVALID, "grad_norm: tensor %zu is not f32 and contiguous", i);
        if (ax_norm_accumulate(acc, ax_f32p(xs[i]), ax_tensor_numel(xs[i]), p) != AX_OK) return ax_error_status();
    }
    return AX_OK;
}
