/* Helpers shared by the op front-ends (sdk/src/ops_*.c). */
#ifndef AXON_OPS_INTERNAL_H
#define AXON_OPS_INTERNAL_H

#include "axon/autograd.h"
#include "axon/kernels.h"
#include "axon/ops.h"
#include "tensor_internal.h"

/* The kernels of t's device, or NULL with the error set. */
static inline const ax_kernels *ax_op_kernels(const ax_tensor *t) { return ax_kernels_for(t->storage->device); }

/* Fails naming `fn` unless all n tensors share a device. */
ax_status ax_op_same_device(const char *fn, int n, const ax_tensor *const *ts);
/* Fails naming `fn` and `arg` unless t has a floating dtype. */
ax_status ax_op_need_float(const char *fn, const char *arg, const ax_tensor *t);
/* dtype conversion that autograd does not see (for kernels' sake). */
ax_status ax_cast_nograd(ax_tensor **out, const ax_tensor *t, ax_dtype dtype);
/* A view of t with no autograd history, for saving an op's own output on
 * its node without a reference cycle. NULL on OOM. */
ax_tensor *ax_alias(const ax_tensor *t);
/* Record a node named `name` with the given inputs and saved tensors on
 * out; a no-op when autograd is not wanted. Fills node->f from f (nf). */
ax_status ax_op_record(ax_tensor *out, const char *name, ax_backward_fn backward, int n,
                       const ax_tensor *const *inputs, int nsaved, const ax_tensor *const *saved, int nf,
                       const double *f);
/* Finish a gradient for input i of node: sum broadcast dims away and
 * convert to the input's dtype. Steals *g and replaces it. */
ax_status ax_grad_fit(ax_node *node, int i, ax_tensor **g);
/* Normalise a list of dims into a bitmask over ndim dims (n == 0: all). */
ax_status ax_op_dims_mask(const char *fn, const ax_tensor *x, int n, const int *dims, uint32_t *mask);
/* Shape of a reduction with keepdim (reduced dims = 1), and without. */
void ax_reduced_shape(const ax_tensor *x, uint32_t mask, bool keepdim, int *ndim, int64_t *shape);

#endif
