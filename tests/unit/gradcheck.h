/* Finite-difference gradient checks and tolerance comparisons for op tests.
 *
 *     static ax_status f(ax_tensor **out, ax_tensor *const *in, void *ctx) {
 *         return ax_mul(out, in[0], in[1]);
 *     }
 *     ax_tensor *in[2] = {a, b};            // contiguous f32 leaves
 *     assert_true(ax_gradcheck(f, 2, in, NULL, &AX_GC_DEFAULT));
 *
 * The output is reduced to a scalar with fixed random weights, so every
 * output element's gradient path is checked. Each input element (or a
 * strided sample of at most `max_elems`) is perturbed by +-eps; the central
 * difference is compared with the analytic gradient as |a - n| <= atol +
 * rtol * |n|. On failure the worst element is printed.
 */
#ifndef AXON_TEST_GRADCHECK_H
#define AXON_TEST_GRADCHECK_H

#include <stdbool.h>

#include "axon/ops.h"

typedef ax_status (*ax_gc_fn)(ax_tensor **out, ax_tensor *const *inputs, void *ctx);

typedef struct ax_gc_opts {
    double eps, atol, rtol;
    int max_elems;
} ax_gc_opts;

extern const ax_gc_opts AX_GC_DEFAULT;

/* inputs: contiguous f32 leaves; those with requires_grad are checked. */
bool ax_gradcheck(ax_gc_fn f, int n, ax_tensor *const *inputs, void *ctx, const ax_gc_opts *opts);

/* Element-wise |got - want| <= atol + rtol * |want| over the C-order
 * elements of two same-shaped tensors; prints the worst one on failure. */
bool ax_allclose(const char *what, const ax_tensor *got, const ax_tensor *want, double atol, double rtol);

/* A contiguous f32 leaf with values from N(0, 1) * scale + shift. */
ax_tensor *ax_test_randn(int ndim, const int64_t *shape, uint64_t seed, double scale, double shift, bool grad);

#endif
