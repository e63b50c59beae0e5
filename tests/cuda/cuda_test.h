/* Helpers shared by the GPU tests (tests/cuda/test_cuda_*.c): start the
 * CUDA backend or skip (exit 77), move tensors, build strided copies, and
 * compare a CUDA result with the CPU reference.
 *
 *     cuda_test_start();                          // exits 77 without a GPU
 *     ax_tensor *xg = gpu_strided(x);             // same values, non-contiguous
 *     expect_near(want_cpu, got_gpu, 1e-5, 1e-6, "unary exp");
 */
#ifndef AXON_TESTS_CUDA_TEST_H
#define AXON_TESTS_CUDA_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "axon/kernels.h"
#include "axon/tensor.h"
#include "cuda_internal.h"
#include "tensor_internal.h" /* ax_tensor_empty_on */

#define CT_OK(e) ct_check_ok((e), #e, __FILE__, __LINE__)

static inline void ct_check_ok(ax_status st, const char *expr, const char *file, int line) {
    if (st == AX_OK) return;
    fprintf(stderr, "%s:%d: %s returned %d: %s\n", file, line, expr, (int)st, ax_error_message());
    exit(1);
}

static const ax_device ct_gpu = {AX_DEVICE_CUDA, 0};

/* Exit 77 (skipped) with the probe's reason when no usable GPU is here. */
static inline void cuda_test_start(void) {
    char why[256] = "";
    if (ax_cuda_probe(why, sizeof why) != AX_OK) {
        printf("SKIP: no usable CUDA device: %s\n", why);
        exit(77);
    }
    CT_OK(ax_cuda_register());
}

static inline ax_tensor *to_gpu(const ax_tensor *t) {
    ax_tensor *o;
    CT_OK(ax_tensor_to_device(&o, t, ct_gpu));
    return o;
}

static inline ax_tensor *to_cpu(const ax_tensor *t) {
    ax_tensor *o;
    CT_OK(ax_tensor_to_device(&o, t, AX_CPU));
    return o;
}

/* The values of CPU tensor t on the GPU, as a non-contiguous view: every
 * dim's extent doubled in the storage and sliced with step 2 along the last. */
static inline ax_tensor *gpu_strided(const ax_tensor *t) {
    if (t->ndim == 0) return to_gpu(t);
    int64_t shape[AX_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++) shape[d] = t->shape[d];
    shape[t->ndim - 1] *= 2;
    ax_tensor *base, *view, *src = to_gpu(t);
    CT_OK(ax_tensor_empty_on(&base, t->ndim, shape, t->dtype, ct_gpu));
    CT_OK(ax_tensor_slice(&view, base, t->ndim - 1, 0, shape[t->ndim - 1], 2));
    CT_OK(ax_tensor_copy_(view, src));
    ax_tensor_free(base);
    ax_tensor_free(src);
    return view;
}

/* An empty GPU tensor of t's shape and dtype: contiguous, or strided. */
static inline ax_tensor *gpu_like(const ax_tensor *t, ax_dtype dt, bool strided) {
    ax_tensor *z;
    CT_OK(ax_tensor_zeros(&z, t->ndim, t->shape, dt ? dt : t->dtype));
    ax_tensor *g = strided ? gpu_strided(z) : to_gpu(z);
    ax_tensor_free(z);
    return g;
}

static int ct_failures;

/* |got - want| <= atol + rtol * |want| everywhere (NaN matches NaN);
 * prints the worst element and counts a failure otherwise. */
static inline bool expect_near(const ax_tensor *want, const ax_tensor *got_any, double rtol, double atol, const char *what) {
    ax_tensor *got = got_any->storage->device.type == AX_DEVICE_CPU ? ax_tensor_retain((ax_tensor *)got_any)
                                                                       : to_cpu(got_any);
    bool ok = ax_tensor_same_shape(want, got);
    int64_t n = ok ? ax_tensor_numel(want) : 0, worst = -1;
    double worst_excess = 0;
    for (int64_t i = 0; i < n; i++) {
        double w = ax_tensor_get(want, i), g = ax_tensor_get(got, i);
        if (isnan(w) || isnan(g)) {
            if (!(isnan(w) && isnan(g))) worst = i, worst_excess = INFINITY;
            continue;
        }
        if (w == g) continue;
        double excess = fabs(w - g) - (atol + rtol * fabs(w));
        if (excess > worst_excess || (isinf(w) || isinf(g))) worst = i, worst_excess = excess > 0 ? excess : INFINITY;
    }
    if (ok && worst < 0) {
        ax_tensor_free(got);
        return true;
    }
    if (!ok)
        fprintf(stderr, "FAIL %s: shapes differ\n", what);
    else
        fprintf(stderr, "FAIL %s: element %lld of %lld: cpu %.9g, cuda %.9g (rtol %g, atol %g)\n", what,
                (long long)worst, (long long)n, ax_tensor_get(want, worst), ax_tensor_get(got, worst), rtol, atol);
    ct_failures++;
    ax_tensor_free(got);
    return false;
}

/* max |t| (for tolerances relative to a tensor's scale). */
static inline double max_abs(const ax_tensor *t) {
    double m = 0;
    int64_t n = ax_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        double v = fabs(ax_tensor_get(t, i));
        if (v > m && !isinf(v)) m = v;
    }
    return m;
}

#endif
