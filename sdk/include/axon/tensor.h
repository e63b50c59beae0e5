/* axon/tensor.h — n-dimensional arrays: refcounted storage plus a view.
 *
 * A tensor is a view (shape, strides in elements, offset) on a refcounted
 * storage that lives on a device. Views share storage: reshape, permute,
 * narrow, expand and friends allocate no data. Images are NCDHW.
 *
 *     ax_tensor *x, *y;
 *     int64_t shape[] = {2, 1, 32, 32, 32};
 *     if (ax_tensor_randn(&x, 5, shape, AX_DTYPE_F32, seed, 0) != AX_OK) ...;
 *     ax_tensor_permute(&y, x, (int[]){0, 2, 3, 4, 1});   // NDHWC view, no copy
 *     ax_tensor_print(y, stdout);
 *     ax_tensor_free(y);
 *     ax_tensor_free(x);
 *
 * Ownership: every `ax_tensor **out` receives a new reference, released
 * with ax_tensor_free() (NULL-safe); `const ax_tensor *` arguments are
 * borrowed. The struct is visible so kernels can read shape, stride and
 * data; only this module writes it.
 *
 * Errors name the function, the argument and the shapes involved, e.g.
 * "ax_tensor_reshape: cannot view [2, 3] (6 elements) as [4, 2] (8 elements)".
 */
#ifndef AXON_TENSOR_H
#define AXON_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "axon/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AX_MAX_DIMS 8

/* Append-only: values are part of the backend kernel ABI. */
typedef enum ax_dtype {
    AX_DTYPE_F32 = 1,
    AX_DTYPE_BF16 = 2,
    AX_DTYPE_F16 = 3,
    AX_DTYPE_I32 = 4,
    AX_DTYPE_I64 = 5,
    AX_DTYPE_U8 = 6  /* also the result type of comparisons (0/1) */
} ax_dtype;

/* Bytes per element; 0 for an unknown dtype. */
size_t ax_dtype_size(ax_dtype dtype);
/* "f32", "bf16", "f16", "i32", "i64", "u8" (static, borrowed); NULL if unknown. */
const char *ax_dtype_name(ax_dtype dtype);
/* Inverse of ax_dtype_name (also accepts "float32", "bfloat16", "float16",
 * "int32", "int64", "uint8"); 0 if unknown. */
ax_dtype ax_dtype_parse(const char *name);
bool ax_dtype_is_float(ax_dtype dtype);

typedef enum ax_device_type { AX_DEVICE_CPU = 0, AX_DEVICE_CUDA = 1 } ax_device_type;

typedef struct ax_device {
    ax_device_type type;
    int32_t index;
} ax_device;

#define AX_CPU ((ax_device){AX_DEVICE_CPU, 0})

/* "cpu", "cuda" (= "cuda:0") or "cuda:N" into *out; AX_ERR_INVALID naming
 * the text otherwise. Whether a backend serves the device is not checked. */
ax_status ax_device_parse(const char *text, ax_device *out);
/* The device named by $AXON_DEVICE (same syntax), else the CPU; an
 * unparsable value is an error naming the variable. */
ax_status ax_device_default(ax_device *out);

/* Refcounted memory on one device. `release` frees `data` (NULL for memory
 * axon allocated itself); `ctx` is for it. */
typedef struct ax_storage {
    int64_t refs; /* atomic */
    void *data;
    size_t nbytes;
    ax_device device;
    void (*release)(void *data, size_t nbytes, void *ctx);
    void *ctx;
} ax_storage;

struct ax_node;

typedef struct ax_tensor {
    int64_t refs; /* atomic */
    ax_storage *storage;
    int64_t offset; /* in elements */
    int32_t ndim;
    ax_dtype dtype;
    int64_t shape[AX_MAX_DIMS];
    int64_t stride[AX_MAX_DIMS]; /* in elements; 0 for an expanded dim */
    /* autograd (see axon/autograd.h) */
    bool requires_grad;
    struct ax_tensor *grad;  /* accumulated gradient, owned; NULL until backward */
    struct ax_node *grad_fn; /* the op that made this tensor, owned; NULL for leaves */
} ax_tensor;

/* ---- creation (every *out is a new reference) ----------------------- */

/* Uninitialised contiguous tensor. ndim 0 is a scalar (one element). */
ax_status ax_tensor_empty(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype);
ax_status ax_tensor_zeros(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype);
ax_status ax_tensor_ones(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype);
ax_status ax_tensor_full(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype, double value);
/* A 0-dim tensor holding `value`. */
ax_status ax_tensor_scalar(ax_tensor **out, double value, ax_dtype dtype);
/* 1-D [start, start+step, ...) below `end` (above, for step < 0). */
ax_status ax_tensor_arange(ax_tensor **out, double start, double end, double step, ax_dtype dtype);
/* Empty tensor with the shape of `like` (contiguous), same or given dtype. */
ax_status ax_tensor_empty_like(ax_tensor **out, const ax_tensor *like, ax_dtype dtype);

/* Random tensors from the counter RNG: element i (in C order) uses words
 * of stream (seed, stream) at index i, so the result depends only on
 * (seed, stream, shape) — never on thread count. */
ax_status ax_tensor_rand(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype, uint64_t seed,
                         uint64_t stream);
ax_status ax_tensor_randn(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype, uint64_t seed,
                          uint64_t stream);
/* 1 with probability p, else 0. */
ax_status ax_tensor_bernoulli(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype, double p,
                              uint64_t seed, uint64_t stream);

/* Copy `nbytes` of contiguous C-order elements of `dtype` from `data`. */
ax_status ax_tensor_from_buffer(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype,
                                const void *data, size_t nbytes);
/* Wrap external memory without copying; `release` (may be NULL) is called
 * with (data, nbytes, ctx) when the last view goes (mmap'd files). */
ax_status ax_tensor_wrap(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype, void *data,
                         size_t nbytes, void (*release)(void *data, size_t nbytes, void *ctx), void *ctx);

/* ---- references -------------------------------------------------------- */

ax_tensor *ax_tensor_retain(ax_tensor *t); /* returns t */
void ax_tensor_free(ax_tensor *t);         /* NULL-safe; drops one reference */

/* ---- shape queries ---------------------------------------------------- */

int64_t ax_tensor_numel(const ax_tensor *t);
size_t ax_tensor_nbytes(const ax_tensor *t); /* numel * dtype size */
bool ax_tensor_is_contiguous(const ax_tensor *t);
bool ax_tensor_same_shape(const ax_tensor *a, const ax_tensor *b);
/* Address of the first element (CPU tensors; borrowed). */
void *ax_tensor_data(const ax_tensor *t);
/* "[2, 3, 4]" into buf; returns buf. */
char *ax_shape_str(char *buf, size_t size, int ndim, const int64_t *shape);
/* Normalise a possibly negative dim against ndim; -1 when out of range. */
int ax_tensor_dim(const ax_tensor *t, int dim);

/* Element i (C order over the view) as double; i must be < numel. */
double ax_tensor_get(const ax_tensor *t, int64_t i);
/* Set element i (C order over the view), converting from double. */
void ax_tensor_set(ax_tensor *t, int64_t i, double value);

/* ---- views (share storage; *out is a new reference) --------------------
 * Views of a tensor that requires grad are recorded by autograd. */

/* -1 in `shape` is inferred. Fails if the strides cannot express it. */
ax_status ax_tensor_view(ax_tensor **out, const ax_tensor *t, int ndim, const int64_t *shape);
/* Like view, but copies when the strides cannot express the new shape. */
ax_status ax_tensor_reshape(ax_tensor **out, const ax_tensor *t, int ndim, const int64_t *shape);
/* out dim i = t dim perm[i]. */
ax_status ax_tensor_permute(ax_tensor **out, const ax_tensor *t, const int *perm);
ax_status ax_tensor_transpose(ax_tensor **out, const ax_tensor *t, int dim0, int dim1);
/* Elements [start, start+length) along dim. */
ax_status ax_tensor_narrow(ax_tensor **out, const ax_tensor *t, int dim, int64_t start, int64_t length);
/* Python-style t[..., start:end:step, ...] along dim; negative start/end
 * count from the end and are clamped like Python's. step >= 1. */
ax_status ax_tensor_slice(ax_tensor **out, const ax_tensor *t, int dim, int64_t start, int64_t end,
                          int64_t step);
/* Broadcast size-1 dims to `shape` (stride 0); -1 keeps a dim. Leading new
 * dims are allowed. */
ax_status ax_tensor_expand(ax_tensor **out, const ax_tensor *t, int ndim, const int64_t *shape);
/* Remove dim (must be size 1); dim = AX_ALL_DIMS removes every size-1 dim. */
ax_status ax_tensor_squeeze(ax_tensor **out, const ax_tensor *t, int dim);
ax_status ax_tensor_unsqueeze(ax_tensor **out, const ax_tensor *t, int dim);
/* A new tensor sharing data but cut from autograd (requires_grad false). */
ax_status ax_tensor_detach(ax_tensor **out, const ax_tensor *t);

#define AX_ALL_DIMS 127

/* ---- copies ------------------------------------------------------------- */

/* C-contiguous tensor with the same values: a new reference to t itself
 * when already contiguous. */
ax_status ax_tensor_contiguous(ax_tensor **out, const ax_tensor *t);
/* Copy into a new tensor of another dtype (rounding to nearest even for
 * bf16/f16; float -> int truncates toward zero). */
ax_status ax_tensor_to_dtype(ax_tensor **out, const ax_tensor *t, ax_dtype dtype);
/* Copy into a new tensor on `device` (through the device's backend). */
ax_status ax_tensor_to_device(ax_tensor **out, const ax_tensor *t, ax_device device);
/* dst = src elementwise, converting dtype; shapes must match (src may
 * broadcast to dst). Not recorded by autograd. */
ax_status ax_tensor_copy_(ax_tensor *dst, const ax_tensor *src);
/* dst[:] = value. Not recorded by autograd. */
ax_status ax_tensor_fill_(ax_tensor *dst, double value);

/* Readable print: dtype, shape, and values (abbreviated past 6 per dim). */
void ax_tensor_print(const ax_tensor *t, FILE *f);
/* The same into a new string (free with free()). */
char *ax_tensor_to_string(const ax_tensor *t);

/* Number of OpenMP threads CPU kernels use: $AXON_NUM_THREADS, default all
 * cores. Results are identical for any count except where documented. */
int ax_num_threads(void);
void ax_set_num_threads(int n);

#ifdef __cplusplus
}
#endif
#endif
