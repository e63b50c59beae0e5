/* Tensors: storage, creation, element access, copies and printing.
 * Views live in tensor_view.c; autograd in autograd.c. */
#include "axon/tensor.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/autograd.h"
#include "axon/half.h"
#include "axon/kernels.h"
#include "axon/rng.h"
#include "tensor_internal.h"

size_t ax_dtype_size(ax_dtype dtype) {
    switch (dtype) {
    case AX_DTYPE_F32: return 4;
    case AX_DTYPE_BF16: return 2;
    case AX_DTYPE_F16: return 2;
    case AX_DTYPE_I32: return 4;
    case AX_DTYPE_I64: return 8;
    case AX_DTYPE_U8: return 1;
    }
    return 0;
}

const char *ax_dtype_name(ax_dtype dtype) {
    switch (dtype) {
    case AX_DTYPE_F32: return "f32";
    case AX_DTYPE_BF16: return "bf16";
    case AX_DTYPE_F16: return "f16";
    case AX_DTYPE_I32: return "i32";
    case AX_DTYPE_I64: return "i64";
    case AX_DTYPE_U8: return "u8";
    }
    return NULL;
}

ax_dtype ax_dtype_parse(const char *name) {
    static const struct {
        const char *a, *b;
        ax_dtype d;
    } names[] = {{"f32", "float32", AX_DTYPE_F32}, {"bf16", "bfloat16", AX_DTYPE_BF16},
                 {"f16", "float16", AX_DTYPE_F16}, {"i32", "int32", AX_DTYPE_I32},
                 {"i64", "int64", AX_DTYPE_I64},   {"u8", "uint8", AX_DTYPE_U8}};
    for (size_t i = 0; name && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].a) == 0 || strcmp(name, names[i].b) == 0) return names[i].d;
    return (ax_dtype)0;
}

bool ax_dtype_is_float(ax_dtype dtype) {
    return dtype == AX_DTYPE_F32 || dtype == AX_DTYPE_BF16 || dtype == AX_DTYPE_F16;
}

char *ax_shape_str(char *buf, size_t size, int ndim, const int64_t *shape) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, size - o, "[");
    for (int i = 0; i < ndim && o < size; i++)
        o += (size_t)snprintf(buf + o, size - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < size) snprintf(buf + o, size - o, "]");
    return buf;
}

/* ---- storage ------------------------------------------------------------ */

static void ax_storage_release_ref(ax_storage *s) {
    if (!s) return;
    if (atomic_fetch_sub((_Atomic int64_t *)&s->refs, 1) != 1) return;
    if (s->release)
        s->release(s->data, s->nbytes, s->ctx);
    else if (s->data) {
        const ax_kernels *k = ax_kernels_for(s->device);
        if (k) k->release(s->data, s->nbytes ? s->nbytes : 1, s->device.index);
    }
    free(s);
}

ax_status ax_storage_new(ax_storage **out, size_t nbytes, ax_device device) {
    const ax_kernels *k = ax_kernels_for(device);
    if (!k) return ax_error_status();
    ax_storage *s = calloc(1, sizeof *s);
    if (!s) return AX_ERROR(AX_ERR_NOMEM, "out of memory allocating a tensor header");
    s->refs = 1;
    s->nbytes = nbytes;
    s->device = device;
    s->data = k->alloc(nbytes ? nbytes : 1, device.index);
    if (!s->data) {
        free(s);
        return ax_error_status() != AX_OK ? ax_error_status()
                                          : AX_ERROR(AX_ERR_NOMEM, "out of memory allocating %zu bytes", nbytes);
    }
    *out = s;
    return AX_OK;
}

/* ---- tensors ---------------------------------------------------------- */

static ax_status ax_check_shape(const char *fn, int ndim, const int64_t *shape, int64_t *numel) {
    if (ndim < 0 || ndim > AX_MAX_DIMS)
        return AX_ERROR(AX_ERR_INVALID, "%s: %d dims (at most %d)", fn, ndim, AX_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            char s[160];
            return AX_ERROR(AX_ERR_INVALID, "%s: negative size in shape %s", fn, ax_shape_str(s, sizeof s, ndim, shape));
        }
        if (shape[i] && n > INT64_MAX / shape[i]) return AX_ERROR(AX_ERR_INVALID, "%s: shape too large", fn);
        n *= shape[i];
    }
    *numel = n;
    return AX_OK;
}

void ax_tensor_set_contiguous_strides(ax_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->stride[i] = s;
        s *= t->shape[i] ? t->shape[i] : 1;
    }
}

ax_tensor *ax_tensor_new_view(ax_storage *storage, ax_dtype dtype, int ndim, const int64_t *shape,
                              const int64_t *stride, int64_t offset) {
    ax_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        AX_ERROR(AX_ERR_NOMEM, "out of memory allocating a tensor header");
        return NULL;
    }
    t->refs = 1;
    t->storage = storage;
    atomic_fetch_add((_Atomic int64_t *)&storage->refs, 1);
    t->dtype = dtype;
    t->ndim = ndim;
    t->offset = offset;
    if (ndim) memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    if (stride)
        memcpy(t->stride, stride, (size_t)ndim * sizeof *stride);
    else
        ax_tensor_set_contiguous_strides(t);
    return t;
}

ax_status ax_tensor_empty_on(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype, ax_device device) {
    int64_t n;
    *out = NULL;
    if (ax_check_shape("ax_tensor_empty", ndim, shape, &n) != AX_OK) return ax_error_status();
    size_t es = ax_dtype_size(dtype);
    if (!es) return AX_ERROR(AX_ERR_INVALID, "ax_tensor_empty: unknown dtype %d", (int)dtype);
    if ((uint64_t)n > SIZE_MAX / es) return AX_ERROR(AX_ERR_INVALID, "ax_tensor_empty: shape too large");
    ax_storage *s;
    if (ax_storage_new(&s, (size_t)n * es, device) != AX_OK) return ax_error_status();
    ax_tensor *t = ax_tensor_new_view(s, dtype, ndim, shape, NULL, 0);
    ax_storage_release_ref(s);
    if (!t) return AX_ERR_NOMEM;
    *out = t;
    return AX_OK;
}

ax_status ax_tensor_empty(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype) {
    return ax_tensor_empty_on(out, ndim, shape, dtype, AX_CPU);
}

ax_status ax_tensor_full(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype, double value) {
    return ax_tensor_full_on(out, ndim, shape, dtype, value, AX_CPU);
}

ax_status ax_tensor_full_on(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype, double value,
                            ax_device device) {
    if (ax_tensor_empty_on(out, ndim, shape, dtype, device) != AX_OK) return ax_error_status();
    ax_status st = ax_tensor_fill_(*out, value);
    if (st != AX_OK) {
        ax_tensor_free(*out);
        *out = NULL;
    }
    return st;
}

ax_status ax_tensor_zeros(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype) {
    return ax_tensor_full(out, ndim, shape, dtype, 0.0);
}

ax_status ax_tensor_ones(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype) {
    return ax_tensor_full(out, ndim, shape, dtype, 1.0);
}

ax_status ax_tensor_scalar(ax_tensor **out, double value, ax_dtype dtype) {
    return ax_tensor_full(out, 0, NULL, dtype, value);
}

ax_status ax_tensor_empty_like(ax_tensor **out, const ax_tensor *like, ax_dtype dtype) {
    return ax_tensor_empty_on(out, like->ndim, like->shape, dtype ? dtype : like->dtype, like->storage->device);
}

ax_status ax_tensor_arange(ax_tensor **out, double start, double end, double step, ax_dtype dtype) {
    *out = NULL;
    if (step == 0 || !isfinite(start) || !isfinite(end) || !isfinite(step))
        return AX_ERROR(AX_ERR_INVALID, "ax_tensor_arange: bad range start %g end %g step %g", start, end, step);
    double count = ceil((end - start) / step);
    if (count > 1e15) return AX_ERROR(AX_ERR_INVALID, "ax_tensor_arange: %g elements is too many", count);
    int64_t n = count > 0 ? (int64_t)count : 0;
    if (ax_tensor_empty(out, 1, &n, dtype) != AX_OK) return ax_error_status();
    for (int64_t i = 0; i < n; i++) ax_tensor_set(*out, i, start + (double)i * step);
    return AX_OK;
}

ax_status ax_tensor_from_buffer(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype,
                                const void *data, size_t nbytes) {
    if (ax_tensor_empty(out, ndim, shape, dtype) != AX_OK) return ax_error_status();
    if (nbytes != ax_tensor_nbytes(*out)) {
        char s[160];
        size_t want = ax_tensor_nbytes(*out);
        ax_tensor_free(*out);
        *out = NULL;
        return AX_ERROR(AX_ERR_INVALID, "ax_tensor_from_buffer: %zu bytes given, shape %s of %s needs %zu", nbytes,
                        ax_shape_str(s, sizeof s, ndim, shape), ax_dtype_name(dtype), want);
    }
    memcpy((*out)->storage->data, data, nbytes);
    return AX_OK;
}

ax_status ax_tensor_wrap(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype, void *data,
                         size_t nbytes, void (*release)(void *, size_t, void *), void *ctx) {
    int64_t n;
    *out = NULL;
    if (ax_check_shape("ax_tensor_wrap", ndim, shape, &n) != AX_OK) return ax_error_status();
    if (!ax_dtype_size(dtype)) return AX_ERROR(AX_ERR_INVALID, "ax_tensor_wrap: unknown dtype %d", (int)dtype);
    if ((uint64_t)n > nbytes / ax_dtype_size(dtype))
        return AX_ERROR(AX_ERR_INVALID, "ax_tensor_wrap: %zu bytes cannot hold %lld elements of %s", nbytes,
                        (long long)n, ax_dtype_name(dtype));
    ax_storage *s = calloc(1, sizeof *s);
    if (!s) return AX_ERROR(AX_ERR_NOMEM, "out of memory");
    s->refs = 1;
    s->data = data;
    s->nbytes = nbytes;
    s->device = AX_CPU;
    s->release = release ? release : ax_storage_release_nothing;
    s->ctx = ctx;
    *out = ax_tensor_new_view(s, dtype, ndim, shape, NULL, 0);
    if (!*out) s->release = ax_storage_release_nothing; /* on failure the caller keeps its memory */
    ax_storage_release_ref(s);
    return *out ? AX_OK : AX_ERR_NOMEM;
}

void ax_storage_release_nothing(void *data, size_t nbytes, void *ctx) { (void)data, (void)nbytes, (void)ctx; }

static ax_status ax_tensor_random(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype, int kind,
                                  double p, uint64_t seed, uint64_t stream) {
    ax_tensor *f;
    *out = NULL;
    if (ax_tensor_empty(&f, ndim, shape, AX_DTYPE_F32) != AX_OK) return ax_error_status();
    size_t n = (size_t)ax_tensor_numel(f);
    float *d = f->storage->data;
    if (kind == 0)
        ax_rng_fill_uniform(seed, stream, 0, n, d);
    else if (kind == 1)
        ax_rng_fill_normal(seed, stream, 0, n, d);
    else {
        /* bernoulli: compare uniforms in place, so draws match ax_rng_bernoulli */
        ax_rng_fill_uniform(seed, stream, 0, n, d);
        for (size_t i = 0; i < n; i++) d[i] = d[i] < (float)p ? 1.0f : 0.0f;
    }
    if (dtype == AX_DTYPE_F32) {
        *out = f;
        return AX_OK;
    }
    ax_status st = ax_tensor_to_dtype(out, f, dtype);
    ax_tensor_free(f);
    return st;
}

ax_status ax_tensor_rand(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype, uint64_t seed,
                         uint64_t stream) {
    return ax_tensor_random(out, ndim, shape, dtype, 0, 0, seed, stream);
}

ax_status ax_tensor_randn(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype, uint64_t seed,
                          uint64_t stream) {
    return ax_tensor_random(out, ndim, shape, dtype, 1, 0, seed, stream);
}

ax_status ax_tensor_bernoulli(ax_tensor **out, int ndim, const int64_t *shape, ax_dtype dtype, double p,
                              uint64_t seed, uint64_t stream) {
    if (!(p >= 0 && p <= 1)) return AX_ERROR(AX_ERR_INVALID, "ax_tensor_bernoulli: p = %g is not in [0, 1]", p);
    return ax_tensor_random(out, ndim, shape, dtype, 2, p, seed, stream);
}

ax_tensor *ax_tensor_retain(ax_tensor *t) {
    if (t) atomic_fetch_add((_Atomic int64_t *)&t->refs, 1);
    return t;
}

void ax_tensor_free(ax_tensor *t) {
    if (!t) return;
    if (atomic_fetch_sub((_Atomic int64_t *)&t->refs, 1) != 1) return;
    ax_tensor_free(t->grad);
    ax_node_free(t->grad_fn);
    ax_storage_release_ref(t->storage);
    free(t);
}

int64_t ax_tensor_numel(const ax_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t ax_tensor_nbytes(const ax_tensor *t) { return (size_t)ax_tensor_numel(t) * ax_dtype_size(t->dtype); }

bool ax_tensor_is_contiguous(const ax_tensor *t) {
    if (ax_tensor_numel(t) == 0) return true;
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

bool ax_tensor_same_shape(const ax_tensor *a, const ax_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

void *ax_tensor_data(const ax_tensor *t) {
    return (char *)t->storage->data + (size_t)t->offset * ax_dtype_size(t->dtype);
}

int ax_tensor_dim(const ax_tensor *t, int dim) {
    int n = t->ndim ? t->ndim : 1;
    if (dim < 0) dim += n;
    return dim >= 0 && dim < n ? dim : -1;
}

/* Storage offset (in elements) of element i in C order over the view. */
static int64_t ax_tensor_elem_offset(const ax_tensor *t, int64_t i) {
    int64_t off = t->offset;
    for (int d = t->ndim - 1; d >= 0; d--) {
        int64_t n = t->shape[d];
        off += (i % n) * t->stride[d];
        i /= n;
    }
    return off;
}

double ax_load_elem(const void *base, ax_dtype dtype, int64_t off) {
    switch (dtype) {
    case AX_DTYPE_F32: return ((const float *)base)[off];
    case AX_DTYPE_BF16: return ax_bf16_to_f32(((const uint16_t *)base)[off]);
    case AX_DTYPE_F16: return ax_f16_to_f32(((const uint16_t *)base)[off]);
    case AX_DTYPE_I32: return ((const int32_t *)base)[off];
    case AX_DTYPE_I64: return (double)((const int64_t *)base)[off];
    case AX_DTYPE_U8: return ((const uint8_t *)base)[off];
    }
    return 0;
}

static double ax_saturate(double v, double lo, double hi) {
    if (!(v == v)) return 0;
    v = trunc(v);
    return v < lo ? lo : v > hi ? hi : v;
}

void ax_store_elem(void *base, ax_dtype dtype, int64_t off, double v) {
    switch (dtype) {
    case AX_DTYPE_F32: ((float *)base)[off] = (float)v; return;
    case AX_DTYPE_BF16: ((uint16_t *)base)[off] = ax_f32_to_bf16((float)v); return;
    case AX_DTYPE_F16: ((uint16_t *)base)[off] = ax_f32_to_f16((float)v); return;
    /* float -> int saturates (and NaN gives 0): a plain cast of an
     * out-of-range value is undefined behaviour in C */
    case AX_DTYPE_I32: ((int32_t *)base)[off] = (int32_t)ax_saturate(v, INT32_MIN, INT32_MAX); return;
    case AX_DTYPE_I64: ((int64_t *)base)[off] = (int64_t)ax_saturate(v, -9223372036854775808.0, 9223372036854774784.0); return;
    case AX_DTYPE_U8: ((uint8_t *)base)[off] = (uint8_t)ax_saturate(v, 0, 255); return;
    }
}

double ax_tensor_get(const ax_tensor *t, int64_t i) {
    return ax_load_elem(t->storage->data, t->dtype, ax_tensor_elem_offset(t, i));
}

void ax_tensor_set(ax_tensor *t, int64_t i, double value) {
    ax_store_elem(t->storage->data, t->dtype, ax_tensor_elem_offset(t, i), value);
}

/* ---- copies ------------------------------------------------------------- */

static ax_status ax_same_device(const char *fn, const ax_tensor *a, const ax_tensor *b) {
    if (a->storage->device.type != b->storage->device.type || a->storage->device.index != b->storage->device.index)
        return AX_ERROR(AX_ERR_INVALID, "%s: tensors on different devices", fn);
    return AX_OK;
}

ax_status ax_tensor_copy_(ax_tensor *dst, const ax_tensor *src) {
    if (ax_same_device("ax_tensor_copy_", dst, src) != AX_OK) return ax_error_status();
    if (!ax_broadcastable_to(src, dst->ndim, dst->shape)) {
        char a[160], b[160];
        return AX_ERROR(AX_ERR_INVALID, "ax_tensor_copy_: cannot copy %s into %s",
                        ax_shape_str(a, sizeof a, src->ndim, src->shape),
                        ax_shape_str(b, sizeof b, dst->ndim, dst->shape));
    }
    const ax_kernels *k = ax_kernels_for(dst->storage->device);
    return k ? k->copy(dst, src) : ax_error_status();
}

ax_status ax_tensor_fill_(ax_tensor *dst, double value) {
    const ax_kernels *k = ax_kernels_for(dst->storage->device);
    return k ? k->fill(dst, value) : ax_error_status();
}

/* The gradient of a dtype conversion is the gradient converted back. */
static ax_status ax_to_dtype_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    return ax_tensor_to_dtype(&gin[0], g, node->in_dtype[0]);
}

ax_status ax_tensor_to_dtype(ax_tensor **out, const ax_tensor *t, ax_dtype dtype) {
    if (ax_tensor_empty_like(out, t, dtype) != AX_OK) return ax_error_status();
    ax_status st = ax_tensor_copy_(*out, t);
    if (st == AX_OK && ax_dtype_is_float(dtype) && ax_autograd_wanted(1, &t)) {
        ax_node *node;
        st = ax_node_new(&node, "to_dtype", ax_to_dtype_backward, 1, &t);
        if (st == AX_OK) ax_node_attach(*out, node);
    }
    if (st != AX_OK) {
        ax_tensor_free(*out);
        *out = NULL;
    }
    return st;
}

ax_status ax_tensor_contiguous(ax_tensor **out, const ax_tensor *t) {
    if (ax_tensor_is_contiguous(t)) {
        *out = ax_tensor_retain((ax_tensor *)t);
        return AX_OK;
    }
    return ax_tensor_to_dtype(out, t, t->dtype);
}

ax_status ax_device_parse(const char *text, ax_device *out) {
    if (text && strcmp(text, "cpu") == 0) {
        *out = AX_CPU;
        return AX_OK;
    }
    if (text && strncmp(text, "cuda", 4) == 0) {
        long index = 0;
        char *end = (char *)text + 4;
        if (*end == ':') {
            index = strtol(end + 1, &end, 10);
            if (end == text + 5) end = (char *)text; /* no digits */
        }
        if (*end == '\0' && index >= 0 && index < 1024) {
            *out = (ax_device){AX_DEVICE_CUDA, (int32_t)index};
            return AX_OK;
        }
    }
    return AX_ERROR(AX_ERR_INVALID, "'%s' is not a device (cpu, cuda, cuda:N)", text ? text : "(null)");
}

ax_status ax_device_default(ax_device *out) {
    const char *env = getenv("AXON_DEVICE");
    *out = AX_CPU;
    if (!env || !*env) return AX_OK;
    if (ax_device_parse(env, out) != AX_OK)
        return AX_ERROR(AX_ERR_INVALID, "AXON_DEVICE=%s is not a device (cpu, cuda, cuda:N)", env);
    return AX_OK;
}

/* The gradient of a device move is the gradient moved back. */
static ax_status ax_to_device_backward(ax_node *node, const ax_tensor *g, ax_tensor **gin) {
    ax_device from = {(ax_device_type)node->i[0], (int32_t)node->i[1]};
    return ax_tensor_to_device(&gin[0], g, from);
}

/* One hop between the CPU and another device, through that device's
 * backend (it knows both memories). */
static ax_status ax_tensor_transfer(ax_tensor **out, const ax_tensor *t, ax_device device) {
    ax_device other = device.type == AX_DEVICE_CPU ? t->storage->device : device;
    const ax_kernels *k = ax_kernels_for(other);
    if (!k) return ax_error_status();
    if (k->size < offsetof(ax_kernels, transfer) + sizeof k->transfer || !k->transfer)
        return AX_ERROR(AX_ERR_UNSUPPORTED, "ax_tensor_to_device: backend '%s' cannot copy to or from the CPU", k->name);
    ax_tensor *src;
    ax_no_grad_begin();
    ax_status st = ax_tensor_contiguous(&src, t);
    ax_no_grad_end();
    if (st != AX_OK) return st;
    st = ax_tensor_empty_on(out, t->ndim, t->shape, t->dtype, device);
    if (st == AX_OK) st = k->transfer(*out, src);
    ax_tensor_free(src);
    if (st != AX_OK) {
        ax_tensor_free(*out);
        *out = NULL;
    }
    return st;
}

ax_status ax_tensor_to_device(ax_tensor **out, const ax_tensor *t, ax_device device) {
    *out = NULL;
    if (device.type == t->storage->device.type && device.index == t->storage->device.index)
        return ax_tensor_contiguous(out, t);
    ax_status st;
    if (device.type != AX_DEVICE_CPU && t->storage->device.type != AX_DEVICE_CPU) {
        ax_tensor *h; /* device to device: through the host */
        st = ax_tensor_transfer(&h, t, AX_CPU);
        if (st == AX_OK) st = ax_tensor_transfer(out, h, device);
        ax_tensor_free(h);
    } else {
        st = ax_tensor_transfer(out, t, device);
    }
    if (st == AX_OK && ax_dtype_is_float(t->dtype) && ax_autograd_wanted(1, &t)) {
        ax_node *node;
        st = ax_node_new(&node, "to_device", ax_to_device_backward, 1, &t);
        if (st == AX_OK) {
            node->i[0] = t->storage->device.type;
            node->i[1] = t->storage->device.index;
            ax_node_attach(*out, node);
        }
        if (st != AX_OK) {
            ax_tensor_free(*out);
            *out = NULL;
        }
    }
    return st;
}

/* ---- printing ------------------------------------------------------------- */

typedef struct ax_sbuf {
    char *s;
    size_t n, cap;
} ax_sbuf;

static void ax_sbuf_add(ax_sbuf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        size_t room = b->cap - b->n;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? room : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return;
        if (b->s && (size_t)k < room) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->n + (size_t)k + 1) cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) return;
        b->s = s;
        b->cap = cap;
    }
}

static void ax_print_rec(ax_sbuf *b, const ax_tensor *t, int dim, int64_t off, int indent) {
    const int64_t edge = 3; /* elements shown at each end of a long dim */
    int64_t n = t->shape[dim];
    ax_sbuf_add(b, "[");
    for (int64_t i = 0; i < n; i++) {
        if (n > 2 * edge && i == edge) {
            ax_sbuf_add(b, dim == t->ndim - 1 ? "..., " : "...,\n%*s", dim == t->ndim - 1 ? 0 : indent + 1, "");
            i = n - edge;
        }
        int64_t o = off + i * t->stride[dim];
        if (dim == t->ndim - 1) {
            double v = ax_load_elem(t->storage->data, t->dtype, o);
            if (ax_dtype_is_float(t->dtype))
                ax_sbuf_add(b, "%.4g", v);
            else
                ax_sbuf_add(b, "%lld", (long long)v);
        } else {
            ax_print_rec(b, t, dim + 1, o, indent + 1);
        }
        if (i + 1 < n) ax_sbuf_add(b, dim == t->ndim - 1 ? ", " : ",\n%*s", dim == t->ndim - 1 ? 0 : indent + 1, "");
    }
    ax_sbuf_add(b, "]");
}

char *ax_tensor_to_string(const ax_tensor *t) {
    ax_sbuf b = {0};
    char s[200];
    ax_sbuf_add(&b, "tensor(%s, %s%s", ax_dtype_name(t->dtype), ax_shape_str(s, sizeof s, t->ndim, t->shape),
                t->requires_grad ? ", requires_grad" : "");
    if (t->storage->device.type != AX_DEVICE_CPU) {
        ax_sbuf_add(&b, ", cuda:%d)", t->storage->device.index);
        return b.s;
    }
    ax_sbuf_add(&b, ")\n");
    if (t->ndim == 0)
        ax_sbuf_add(&b, ax_dtype_is_float(t->dtype) ? "%.4g" : "%.0f", ax_tensor_get(t, 0));
    else if (ax_tensor_numel(t) == 0)
        ax_sbuf_add(&b, "[]");
    else
        ax_print_rec(&b, t, 0, t->offset, 0);
    return b.s;
}

void ax_tensor_print(const ax_tensor *t, FILE *f) {
    char *s = ax_tensor_to_string(t);
    if (s) fprintf(f, "%s\n", s);
    free(s);
}
