/* Private helpers shared by the tensor, op and kernel sources of libaxon. */
#ifndef AXON_TENSOR_INTERNAL_H
#define AXON_TENSOR_INTERNAL_H

#include "axon/tensor.h"

/* *out: new storage of nbytes on device (refs 1). */
ax_status ax_storage_new(ax_storage **out, size_t nbytes, ax_device device);
void ax_storage_release_nothing(void *data, size_t nbytes, void *ctx);
/* New tensor header on `storage` (takes its own reference); stride NULL =
 * contiguous. NULL on OOM (error set). */
ax_tensor *ax_tensor_new_view(ax_storage *storage, ax_dtype dtype, int ndim, const int64_t *shape,
                              const int64_t *stride, int64_t offset);
void ax_tensor_set_contiguous_strides(ax_tensor *t);
ax_status ax_tensor_empty_on(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype, ax_device device);
/* Filled with value on device (through the device's fill kernel: no copy). */
ax_status ax_tensor_full_on(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype, double value,
                            ax_device device);

double ax_load_elem(const void *base, ax_dtype dtype, int64_t off);
void ax_store_elem(void *base, ax_dtype dtype, int64_t off, double v);

/* Can `t` broadcast to `shape` (NumPy rules, t's dims aligned right)? */
bool ax_broadcastable_to(const ax_tensor *t, int ndim, const int64_t *shape);
/* Broadcast shape of a and b into out (ndim into *ndim); false if they
 * do not broadcast. */
bool ax_broadcast_shape(const ax_tensor *a, const ax_tensor *b, int *ndim, int64_t *out);

#endif
