/* 3-D convolution and transposed convolution on the CPU through oneDNN.
 *
 * Each kernel maps onto oneDNN primitives: convolution forward, backward
 * data and backward weights (which also yields the bias gradient), and the
 * deconvolution primitives for the transposed op. Nothing is lowered to
 * im2col here; oneDNN picks its implementation (JIT direct kernels where it
 * has them, else its internal GEMM algorithm).
 *
 * Weights. The kernels receive PyTorch's plain contiguous buffers: conv
 * weights [Co, Ci/g, k...] are oneDNN's OIDHW (GOIDHW viewed as [g, Co/g,
 * Ci/g, k...]); transposed-conv weights [Ci, Co/g, k...] are oneDNN's
 * deconvolution weights [g, OC/g, IC/g, k...] (OC = the op's *output*
 * channels) stored IC-major: IODHW / GIODHW, i.e. the same data with i and
 * o swapped in the strides. No spatial flip: both define the op as the
 * adjoint of the convolution with that kernel.
 *
 * Layouts. The primitives are created with format "any", so oneDNN picks
 * blocked layouts (nCdhw8c on AVX2) and every argument is reordered in and
 * out. Measured on the 2-core AVX2 machine, N=2, 32 -> 32 ch, 32^3, k=3,
 * p=1, one thread: forward 54 ms blocked against 256 ms when forced onto
 * NCDHW (oneDNN then uses GEMM), backward data 64 against 179 ms; a reorder
 * of the 8 MB activation costs 1-2 ms. So the reorders pay for themselves.
 *
 * Backward weights. oneDNN 2.x has no direct 3-D backward-weights kernel
 * for AVX2 when there is padding in depth, and its GEMM fallback is slow on
 * NCDHW (~200 ms for the problem above). So when the descriptor comes out
 * non-direct, the big activation (x; dy for the transposed op) is copied
 * into a buffer padded in depth and the primitive is built for padding 0
 * there: the direct kernel then runs (~75 ms). Failing that, the GEMM
 * fallback gets channels-last activations (~100 ms).
 *
 * Primitive creation costs milliseconds, so created primitives (with their
 * reorders) live in a small LRU cache keyed by the full geometry and the
 * OpenMP thread count (oneDNN partitions work for the thread count it was
 * created with). Temporary buffers for the blocked copies come from a small
 * pool (see ax_cv_buf_get).
 *
 * Determinism: for a fixed thread count every primitive is reproducible
 * (static work partitioning, no atomics). Across thread counts the weight
 * and bias gradients may differ in the last bits: oneDNN's backward-weights
 * kernels (direct and GEMM) may split the reduction over the minibatch and
 * spatial positions between threads and add the partial sums afterwards,
 * the split depending on the thread count (observed: 1 vs 2 threads differ
 * for the GEMM path at 16^3, agree for the direct one). Forward and
 * backward data reduce over channels and the kernel window inside one
 * thread; they agreed bit for bit between 1 and 2 threads in our checks
 * (16^3-32^3, 32 channels), but oneDNN does not promise it. This is the documented
 * exception to axon's thread-count independence. The bias-only gradient
 * (no weight gradient) is computed here, in a fixed order.
 */
#include <dnnl.h>
#include <dnnl_debug.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cpu_kernels.h"

/* ---- geometry ------------------------------------------------------------ */

enum { AX_CV_FWD = 1, AX_CV_BWD_DATA, AX_CV_BWD_WEIGHTS };

/* Everything a primitive depends on. Compared with memcmp: always zeroed
 * before filling. */
typedef struct ax_cv_key {
    int32_t kind, transposed, bias, nthr;
    int64_t n, ci, co, groups;     /* ci: channels of x, co: channels of y */
    int64_t in[3], out[3], k[3];   /* spatial sizes of x, y and the kernel */
    int64_t stride[3], dil[3];     /* dil: oneDNN's (PyTorch's - 1) */
    int64_t pad_l[3], pad_r[3];
} ax_cv_key;

static int64_t ax_cv_out_size(bool transposed, int64_t in, int64_t k, const ax_conv_params *p, int d) {
    int64_t range = p->dilation[d] * (k - 1) + 1;
    if (transposed) return (in - 1) * p->stride[d] - 2 * p->padding[d] + range + p->output_padding[d];
    int64_t span = in + 2 * p->padding[d] - range;
    return span < 0 ? 0 : span / p->stride[d] + 1;
}

static bool ax_cv_plain_f32(const ax_tensor *t, int ndim) {
    return t->dtype == AX_DTYPE_F32 && t->ndim == ndim && ax_tensor_is_contiguous(t) &&
           t->storage->device.type == AX_DEVICE_CPU;
}

/* Describe the op for messages: "x [..] w [..] stride [..] ...". */
static const char *ax_cv_describe(char *buf, size_t size, const ax_tensor *x, const ax_tensor *w,
                                  const ax_conv_params *p) {
    char sx[160], sw[160];
    snprintf(buf, size,
             "x %s, w %s, stride [%lld, %lld, %lld], padding [%lld, %lld, %lld], dilation [%lld, %lld, %lld], "
             "output_padding [%lld, %lld, %lld], groups %lld",
             ax_shape_str(sx, sizeof sx, x->ndim, x->shape), ax_shape_str(sw, sizeof sw, w->ndim, w->shape),
             (long long)p->stride[0], (long long)p->stride[1], (long long)p->stride[2], (long long)p->padding[0],
             (long long)p->padding[1], (long long)p->padding[2], (long long)p->dilation[0],
             (long long)p->dilation[1], (long long)p->dilation[2], (long long)p->output_padding[0],
             (long long)p->output_padding[1], (long long)p->output_padding[2], (long long)p->groups);
    return buf;
}

/* Check the kernel's arguments (the front-ends validate user input; this
 * guards other callers) and fill the key. y: y or dy; dx/dw/db may be NULL. */
static ax_status ax_cv_geometry(const char *fn, ax_cv_key *key, bool transposed, const ax_tensor *y,
                                const ax_tensor *x, const ax_tensor *w, const ax_tensor *b, const ax_tensor *dx,
                                const ax_tensor *dw, const ax_conv_params *p) {
    char desc[512], sy[160];
    memset(key, 0, sizeof *key);
    bool ok = x && w && y && p && ax_cv_plain_f32(x, 5) && ax_cv_plain_f32(w, 5) && ax_cv_plain_f32(y, 5) &&
              p->groups >= 1;
    int64_t g = ok ? p->groups : 1;
    if (ok) {
        key->transposed = transposed;
        key->groups = g;
        key->n = x->shape[0];
        key->ci = x->shape[1];
        key->co = transposed ? w->shape[1] * g : w->shape[0];
        ok = y->shape[0] == key->n && y->shape[1] == key->co && key->ci % g == 0 && key->co % g == 0 &&
             (transposed ? w->shape[0] == key->ci : w->shape[1] * g == key->ci);
    }
    for (int d = 0; ok && d < 3; d++) {
        int64_t k = w->shape[2 + d], in = x->shape[2 + d], out = y->shape[2 + d];
        ok = p->stride[d] >= 1 && p->dilation[d] >= 1 && p->padding[d] >= 0 && k >= 1 && in >= 1 &&
             p->output_padding[d] >= 0 && (transposed || p->output_padding[d] == 0) &&
             out == ax_cv_out_size(transposed, in, k, p, d) && out >= 1;
        if (!ok) break;
        int64_t range = p->dilation[d] * (k - 1) + 1;
        key->in[d] = in;
        key->out[d] = out;
        key->k[d] = k;
        key->stride[d] = p->stride[d];
        key->dil[d] = p->dilation[d] - 1;
        key->pad_l[d] = p->padding[d];
        /* The right padding that makes oneDNN's size equation exact (it may
         * be negative: rows the strided window never reaches). */
        int64_t small = transposed ? in : out, big = transposed ? out : in;
        key->pad_r[d] = (small - 1) * p->stride[d] + range - big - p->padding[d];
    }
    if (ok && b) ok = ax_cv_plain_f32(b, 1) && b->shape[0] == key->co;
    if (ok && dx) ok = ax_cv_plain_f32(dx, 5) && ax_tensor_same_shape(dx, x);
    if (ok && dw) ok = ax_cv_plain_f32(dw, 5) && ax_tensor_same_shape(dw, w);
    if (!ok) {
        if (!x || !w || !y || !p) return AX_ERROR(AX_ERR_INVALID, "%s: NULL tensor or params", fn);
        return AX_ERROR(AX_ERR_INVALID,
                        "%s: inconsistent arguments (%s; y %s): want contiguous f32 CPU tensors with PyTorch's "
                        "shapes",
                        fn, ax_cv_describe(desc, sizeof desc, x, w, p), ax_shape_str(sy, sizeof sy, y->ndim, y->shape));
    }
    key->nthr = ax_num_threads();
    return AX_OK;
}

/* ---- engine ---------------------------------------------------------------- */

static pthread_once_t ax_cv_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t ax_cv_engine;
static dnnl_status_t ax_cv_engine_status;

static void ax_cv_engine_init(void) { ax_cv_engine_status = dnnl_engine_create(&ax_cv_engine, dnnl_cpu, 0); }

/* ---- temporary buffers ------------------------------------------------------- */

/* Blocked copies of activations are as large as the activations. Faulting
 * in fresh pages for each of them costs ~20% of a 64^3 fwd + bwd, so freed
 * buffers are kept in a small pool (at most AX_CV_POOL_MAX_BYTES, the
 * largest kept), and fresh large ones ask for transparent huge pages. */
#define AX_CV_POOL 6
#define AX_CV_POOL_MAX_BYTES ((size_t)256 << 20)
#define AX_CV_HUGE ((size_t)2 << 20)

typedef struct ax_cv_buf {
    void *data;
    size_t size;
} ax_cv_buf;

static pthread_mutex_t ax_cv_pool_lock = PTHREAD_MUTEX_INITIALIZER;
static ax_cv_buf ax_cv_pool[AX_CV_POOL];

static void *ax_cv_buf_get(size_t size, size_t *got) {
    size = size < AX_CV_HUGE ? (size + 63) & ~(size_t)63 : (size + AX_CV_HUGE - 1) & ~(AX_CV_HUGE - 1);
    pthread_mutex_lock(&ax_cv_pool_lock);
    int best = -1;
    for (int i = 0; i < AX_CV_POOL; i++) /* the smallest that fits, but not one far too large */
        if (ax_cv_pool[i].data && ax_cv_pool[i].size >= size && ax_cv_pool[i].size <= 2 * size &&
            (best < 0 || ax_cv_pool[i].size < ax_cv_pool[best].size))
            best = i;
    void *data = NULL;
    if (best >= 0) {
        data = ax_cv_pool[best].data;
        *got = ax_cv_pool[best].size;
        ax_cv_pool[best].data = NULL;
    }
    pthread_mutex_unlock(&ax_cv_pool_lock);
    if (data) return data;
    *got = size;
    if (size < AX_CV_HUGE) return aligned_alloc(64, size);
    data = aligned_alloc(AX_CV_HUGE, size);
    if (data) (void)madvise(data, size, MADV_HUGEPAGE); /* a hint; fine to fail */
    return data;
}

static void ax_cv_buf_put(void *data, size_t size) {
    if (!data) return;
    void *drop = data;
    pthread_mutex_lock(&ax_cv_pool_lock);
    size_t total = 0;
    int empty = -1, smallest = -1;
    for (int i = 0; i < AX_CV_POOL; i++) {
        if (!ax_cv_pool[i].data) {
            if (empty < 0) empty = i;
        } else {
            total += ax_cv_pool[i].size;
            if (smallest < 0 || ax_cv_pool[i].size < ax_cv_pool[smallest].size) smallest = i;
        }
    }
    int slot = -1;
    if (empty >= 0 && total + size <= AX_CV_POOL_MAX_BYTES) {
        slot = empty;
        drop = NULL;
    } else if (empty < 0 && ax_cv_pool[smallest].size < size &&
               total - ax_cv_pool[smallest].size + size <= AX_CV_POOL_MAX_BYTES) { /* keep the larger */
        slot = smallest;
        drop = ax_cv_pool[slot].data;
    }
    if (slot >= 0) ax_cv_pool[slot] = (ax_cv_buf){data, size};
    pthread_mutex_unlock(&ax_cv_pool_lock);
    free(drop);
}

/* ---- primitives and their cache ----------------------------------------------- */

enum { AX_CV_IN = 1, AX_CV_OUT, AX_CV_ACC };

/* One reorder between the user's buffer (or zeros) and the primitive's,
 * either of which may be a region (submemory) of the whole. */
typedef struct ax_cv_part {
    dnnl_primitive_t reorder;
    dnnl_memory_desc_t from, to;
    bool zeros; /* read from a zero buffer instead of the user's */
} ax_cv_part;

/* One argument: the user's plain buffer and, when the primitive wants
 * another layout, the reorders between them (user -> primitive for
 * inputs; primitive -> user for outputs, with a sum post-op for +=). */
typedef struct ax_cv_arg {
    int arg;  /* DNNL_ARG_* */
    int mode; /* AX_CV_IN, AX_CV_OUT (=), AX_CV_ACC (+=) */
    dnnl_memory_desc_t user_md, prim_md;
    size_t prim_bytes, zero_bytes;
    int nparts; /* 0: the primitive uses the user's buffer */
    ax_cv_part parts[3];
} ax_cv_arg;

#define AX_CV_MAX_ARGS 4

typedef struct ax_cv_entry {
    ax_cv_key key;
    int refs; /* the cache's and running callers'; under ax_cv_lock */
    uint64_t stamp;
    dnnl_primitive_t prim;
    int nargs;
    ax_cv_arg args[AX_CV_MAX_ARGS];
} ax_cv_entry;

#define AX_CV_CACHE 32

static pthread_mutex_t ax_cv_lock = PTHREAD_MUTEX_INITIALIZER;
static ax_cv_entry *ax_cv_cache[AX_CV_CACHE];
static uint64_t ax_cv_clock;

static void ax_cv_entry_destroy(ax_cv_entry *e) {
    if (!e) return;
    for (int i = 0; i < e->nargs; i++)
        for (int j = 0; j < e->args[i].nparts; j++)
            if (e->args[i].parts[j].reorder) dnnl_primitive_destroy(e->args[i].parts[j].reorder);
    if (e->prim) dnnl_primitive_destroy(e->prim);
    free(e);
}

static const char *ax_cv_kind_name(const ax_cv_key *k) {
    switch (k->kind) {
    case AX_CV_FWD: return k->transposed ? "deconvolution forward" : "convolution forward";
    case AX_CV_BWD_DATA: return k->transposed ? "deconvolution backward data" : "convolution backward data";
    default: return k->transposed ? "deconvolution backward weights" : "convolution backward weights";
    }
}

static ax_status ax_cv_fail(const ax_cv_key *k, const char *what, dnnl_status_t st) {
    return AX_ERROR(AX_ERR_INTERNAL,
                    "oneDNN %s: %s failed (%s) for N %lld, channels %lld -> %lld, groups %lld, input [%lld, %lld, "
                    "%lld], output [%lld, %lld, %lld], kernel [%lld, %lld, %lld], stride [%lld, %lld, %lld], "
                    "padding [%lld, %lld, %lld] / [%lld, %lld, %lld], dilation-1 [%lld, %lld, %lld]",
                    ax_cv_kind_name(k), what, dnnl_status2str(st), (long long)k->n, (long long)k->ci,
                    (long long)k->co, (long long)k->groups, (long long)k->in[0], (long long)k->in[1],
                    (long long)k->in[2], (long long)k->out[0], (long long)k->out[1], (long long)k->out[2],
                    (long long)k->k[0], (long long)k->k[1], (long long)k->k[2], (long long)k->stride[0],
                    (long long)k->stride[1], (long long)k->stride[2], (long long)k->pad_l[0],
                    (long long)k->pad_l[1], (long long)k->pad_l[2], (long long)k->pad_r[0], (long long)k->pad_r[1],
                    (long long)k->pad_r[2], (long long)k->dil[0], (long long)k->dil[1], (long long)k->dil[2]);
}

/* The user's plain descriptors of x, y, w and b. */
static dnnl_status_t ax_cv_user_mds(const ax_cv_key *k, dnnl_memory_desc_t *x, dnnl_memory_desc_t *y,
                                    dnnl_memory_desc_t *w, dnnl_memory_desc_t *b) {
    dnnl_dims_t dx = {k->n, k->ci, k->in[0], k->in[1], k->in[2]};
    dnnl_dims_t dy = {k->n, k->co, k->out[0], k->out[1], k->out[2]};
    dnnl_dims_t dbias = {k->co};
    dnnl_status_t st = dnnl_memory_desc_init_by_tag(x, 5, dx, dnnl_f32, dnnl_ncdhw);
    if (st == dnnl_success) st = dnnl_memory_desc_init_by_tag(y, 5, dy, dnnl_f32, dnnl_ncdhw);
    if (st == dnnl_success) st = dnnl_memory_desc_init_by_tag(b, 1, dbias, dnnl_f32, dnnl_a);
    if (st != dnnl_success) return st;
    int64_t g = k->groups;
    /* oneDNN's weights are [(g,) OC/g, IC/g, k...] in both primitives; the
     * transposed op's PyTorch buffer stores IC before OC. */
    if (g == 1) {
        dnnl_dims_t dw = {k->co, k->ci, k->k[0], k->k[1], k->k[2]};
        return dnnl_memory_desc_init_by_tag(w, 5, dw, dnnl_f32, k->transposed ? dnnl_iodhw : dnnl_oidhw);
    }
    dnnl_dims_t dw = {g, k->co / g, k->ci / g, k->k[0], k->k[1], k->k[2]};
    return dnnl_memory_desc_init_by_tag(w, 6, dw, dnnl_f32, k->transposed ? dnnl_giodhw : dnnl_goidhw);
}

static dnnl_status_t ax_cv_tagged(dnnl_memory_desc_t *md, const dnnl_memory_desc_t *like, dnnl_format_tag_t tag) {
    return dnnl_memory_desc_init_by_tag(md, like->ndims, like->dims, dnnl_f32, tag);
}

/* The spatial vectors in oneDNN's (12-element) array type. */
typedef struct ax_cv_dims {
    dnnl_dims_t stride, dil, pad_l, pad_r;
} ax_cv_dims;

static ax_cv_dims ax_cv_dims_of(const ax_cv_key *k) {
    ax_cv_dims v;
    memset(&v, 0, sizeof v);
    for (int d = 0; d < 3; d++) {
        v.stride[d] = k->stride[d];
        v.dil[d] = k->dil[d];
        v.pad_l[d] = k->pad_l[d];
        v.pad_r[d] = k->pad_r[d];
    }
    return v;
}

/* The primitive descriptor of k's kind, activations (x, y) in layout
 * `act` (format any lets oneDNN choose), weights in any. Backward
 * descriptors need the forward one as a hint. */
static dnnl_status_t ax_cv_pd(dnnl_primitive_desc_t *out, const ax_cv_key *k, dnnl_format_tag_t act) {
    *out = NULL;
    dnnl_memory_desc_t ux, uy, uw, ub, x, y, w, ax, ay;
    dnnl_status_t st = ax_cv_user_mds(k, &ux, &uy, &uw, &ub);
    if (st == dnnl_success) st = ax_cv_tagged(&ax, &ux, dnnl_format_tag_any);
    if (st == dnnl_success) st = ax_cv_tagged(&ay, &uy, dnnl_format_tag_any);
    if (st == dnnl_success) st = ax_cv_tagged(&w, &uw, dnnl_format_tag_any);
    if (st == dnnl_success) st = ax_cv_tagged(&x, &ux, act);
    if (st == dnnl_success) st = ax_cv_tagged(&y, &uy, act);
    if (st != dnnl_success) return st;
    const dnnl_memory_desc_t *bias = k->bias ? &ub : NULL;
    ax_cv_dims v = ax_cv_dims_of(k);
    dnnl_primitive_desc_t fwd = NULL;
    if (k->transposed) {
        dnnl_deconvolution_desc_t d;
        st = dnnl_dilated_deconvolution_forward_desc_init(&d, dnnl_forward_training, dnnl_deconvolution_direct, &ax, &w,
                                                          bias, &ay, v.stride, v.dil, v.pad_l, v.pad_r);
        if (st == dnnl_success) st = dnnl_primitive_desc_create(&fwd, &d, NULL, ax_cv_engine, NULL);
        if (st == dnnl_success && k->kind == AX_CV_BWD_DATA)
            st = dnnl_dilated_deconvolution_backward_data_desc_init(&d, dnnl_deconvolution_direct, &x, &w, &y,
                                                                    v.stride, v.dil, v.pad_l, v.pad_r);
        else if (st == dnnl_success && k->kind == AX_CV_BWD_WEIGHTS)
            st = dnnl_dilated_deconvolution_backward_weights_desc_init(&d, dnnl_deconvolution_direct, &x, &w, bias,
                                                                       &y, v.stride, v.dil, v.pad_l, v.pad_r);
        if (st == dnnl_success && k->kind != AX_CV_FWD) st = dnnl_primitive_desc_create(out, &d, NULL, ax_cv_engine, fwd);
    } else {
        dnnl_convolution_desc_t d;
        st = dnnl_dilated_convolution_forward_desc_init(&d, dnnl_forward_training, dnnl_convolution_direct, &ax, &w,
                                                        bias, &ay, v.stride, v.dil, v.pad_l, v.pad_r);
        if (st == dnnl_success) st = dnnl_primitive_desc_create(&fwd, &d, NULL, ax_cv_engine, NULL);
        if (st == dnnl_success && k->kind == AX_CV_BWD_DATA)
            st = dnnl_dilated_convolution_backward_data_desc_init(&d, dnnl_convolution_direct, &x, &w, &y, v.stride,
                                                                  v.dil, v.pad_l, v.pad_r);
        else if (st == dnnl_success && k->kind == AX_CV_BWD_WEIGHTS)
            st = dnnl_dilated_convolution_backward_weights_desc_init(&d, dnnl_convolution_direct, &x, &w, bias, &y,
                                                                     v.stride, v.dil, v.pad_l, v.pad_r);
        if (st == dnnl_success && k->kind != AX_CV_FWD) st = dnnl_primitive_desc_create(out, &d, NULL, ax_cv_engine, fwd);
    }
    if (st == dnnl_success && k->kind == AX_CV_FWD) {
        *out = fwd;
        fwd = NULL;
    }
    if (fwd) dnnl_primitive_desc_destroy(fwd);
    return st;
}

/* oneDNN's name for the implementation behind pd ("jit:avx2", "x64:gemm:jit", "ref:any", ...). */
static const char *ax_cv_impl(const_dnnl_primitive_desc_t pd) {
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl) return "";
    return impl;
}

static bool ax_cv_is_gemm(const_dnnl_primitive_desc_t pd) { return strstr(ax_cv_impl(pd), "gemm") != NULL; }

/* A direct (JIT) kernel, neither the GEMM fallback nor the reference loops. */
static bool ax_cv_is_direct(const_dnnl_primitive_desc_t pd) {
    const char *impl = ax_cv_impl(pd);
    return !strstr(impl, "gemm") && strncmp(impl, "ref", 3) != 0;
}

static dnnl_status_t ax_cv_part_init(ax_cv_part *part, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                                     bool accumulate, bool zeros) {
    part->from = *from;
    part->to = *to;
    part->zeros = zeros;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    dnnl_status_t st = dnnl_success;
    if (accumulate) { /* to += from */
        st = dnnl_primitive_attr_create(&attr);
        if (st == dnnl_success) st = dnnl_post_ops_create(&ops);
        if (st == dnnl_success) st = dnnl_post_ops_append_sum(ops, 1.0f);
        if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(attr, ops);
    }
    dnnl_primitive_desc_t rpd = NULL;
    if (st == dnnl_success) st = dnnl_reorder_primitive_desc_create(&rpd, from, ax_cv_engine, to, ax_cv_engine, attr);
    if (st == dnnl_success) st = dnnl_primitive_create(&part->reorder, rpd);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (ops) dnnl_post_ops_destroy(ops);
    if (attr) dnnl_primitive_attr_destroy(attr);
    return st;
}

/* Argument `arg` of pd against the user's plain layout: direct use when
 * the layouts agree (and nothing accumulates), else one reorder. */
static dnnl_status_t ax_cv_arg_init(ax_cv_arg *a, int arg, int mode, const dnnl_memory_desc_t *user,
                                    const_dnnl_primitive_desc_t pd) {
    memset(a, 0, sizeof *a);
    a->arg = arg;
    a->mode = mode;
    a->user_md = *user;
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
    if (!md) return dnnl_runtime_error;
    a->prim_md = *md;
    a->prim_bytes = dnnl_memory_desc_get_size(md);
    if (mode != AX_CV_ACC && dnnl_memory_desc_equal(user, md)) return dnnl_success;
    a->nparts = 1;
    return mode == AX_CV_IN ? ax_cv_part_init(&a->parts[0], user, md, false, false)
                            : ax_cv_part_init(&a->parts[0], md, user, mode == AX_CV_ACC, false);
}

/* The big activation of a backward-weights primitive built on a
 * depth-padded problem (x for conv, dy for the transposed op): its rows go
 * to depths [front, front + rows) of the primitive's buffer (rows < D when
 * the window never reaches the last rows), zeros to the rest. */
static dnnl_status_t ax_cv_arg_init_padded(ax_cv_arg *a, int arg, const dnnl_memory_desc_t *user,
                                           const_dnnl_primitive_desc_t pd, int64_t front, int64_t rows) {
    memset(a, 0, sizeof *a);
    a->arg = arg;
    a->mode = AX_CV_IN;
    a->user_md = *user;
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
    if (!md) return dnnl_runtime_error;
    a->prim_md = *md;
    a->prim_bytes = dnnl_memory_desc_get_size(md);
    int64_t depth = md->dims[2], back = depth - front - rows;
    dnnl_dims_t dims, at = {0, 0, 0, 0, 0};
    memcpy(dims, user->dims, sizeof dims);
    dims[2] = rows;
    dnnl_memory_desc_t from, to;
    dnnl_status_t st = dnnl_memory_desc_init_submemory(&from, user, dims, at);
    at[2] = front;
    if (st == dnnl_success) st = dnnl_memory_desc_init_submemory(&to, md, dims, at);
    if (st == dnnl_success) st = ax_cv_part_init(&a->parts[a->nparts++], &from, &to, false, false);
    int64_t slabs[2][2] = {{0, front}, {front + rows, back}}; /* (first depth, count) of the zero slabs */
    for (int i = 0; i < 2 && st == dnnl_success; i++) {
        if (slabs[i][1] <= 0) continue;
        dims[2] = slabs[i][1];
        at[2] = slabs[i][0];
        st = dnnl_memory_desc_init_by_tag(&from, 5, dims, dnnl_f32, dnnl_ncdhw);
        if (st == dnnl_success) st = dnnl_memory_desc_init_submemory(&to, md, dims, at);
        if (st == dnnl_success) st = ax_cv_part_init(&a->parts[a->nparts++], &from, &to, false, true);
        size_t bytes = dnnl_memory_desc_get_size(&from);
        if (bytes > a->zero_bytes) a->zero_bytes = bytes;
    }
    return st;
}

/* oneDNN (2.x, AVX2) has no direct 3-D backward-weights kernel with depth
 * padding and falls back to GEMM, 1.5-3x slower than the direct kernel on
 * the same problem with the input padded in depth beforehand. So when the
 * descriptor came out non-direct, try that problem: the big activation (x
 * of a conv, y of a transposed conv) gets depth (small - 1) s + range and
 * padding 0 in depth. *kp receives it, *front/rows where the real rows go.
 * NULL when it does not help. */
static dnnl_primitive_desc_t ax_cv_padded_pd(const ax_cv_key *k, ax_cv_key *kp, int64_t *front, int64_t *rows) {
    if (k->kind != AX_CV_BWD_WEIGHTS || (k->pad_l[0] == 0 && k->pad_r[0] == 0)) return NULL;
    *kp = *k;
    int64_t small = k->transposed ? k->in[0] : k->out[0], big = k->transposed ? k->out[0] : k->in[0];
    int64_t depth = (small - 1) * k->stride[0] + (k->dil[0] + 1) * (k->k[0] - 1) + 1;
    if (k->transposed) kp->out[0] = depth;
    else kp->in[0] = depth;
    kp->pad_l[0] = kp->pad_r[0] = 0;
    *front = k->pad_l[0];
    *rows = depth - *front < big ? depth - *front : big;
    if (*rows < 1) return NULL;
    dnnl_primitive_desc_t pd = NULL;
    if (ax_cv_pd(&pd, kp, dnnl_format_tag_any) == dnnl_success && ax_cv_is_direct(pd)) return pd;
    if (pd) dnnl_primitive_desc_destroy(pd);
    return NULL;
}

static ax_status ax_cv_create(ax_cv_entry **out, const ax_cv_key *k) {
    *out = NULL;
    pthread_once(&ax_cv_once, ax_cv_engine_init);
    if (ax_cv_engine_status != dnnl_success) return ax_cv_fail(k, "engine creation", ax_cv_engine_status);
    ax_cv_entry *e = calloc(1, sizeof *e);
    if (!e) return AX_ERROR(AX_ERR_NOMEM, "ax_cpu_conv: out of memory for a oneDNN primitive");
    e->key = *k;
    dnnl_memory_desc_t ux, uy, uw, ub;
    const char *what = "memory descriptors";
    dnnl_status_t st = ax_cv_user_mds(k, &ux, &uy, &uw, &ub);
    dnnl_primitive_desc_t pd = NULL;
    if (st == dnnl_success) {
        what = "primitive descriptor";
        st = ax_cv_pd(&pd, k, dnnl_format_tag_any);
    }
    ax_cv_key kp;
    int64_t front = 0, rows = 0;
    bool padded = false;
    if (st == dnnl_success && k->kind == AX_CV_BWD_WEIGHTS && !ax_cv_is_direct(pd)) {
        dnnl_primitive_desc_t alt = ax_cv_padded_pd(k, &kp, &front, &rows);
        padded = alt != NULL;
        /* Else, for the GEMM fallback: it runs ~25% faster on channels-last
         * activations than on NCDHW (measured 32^3, 32 channels), more than
         * the two extra reorders cost. */
        if (!alt && ax_cv_is_gemm(pd) && ax_cv_pd(&alt, k, dnnl_ndhwc) == dnnl_success && !ax_cv_is_gemm(alt)) {
            dnnl_primitive_desc_destroy(alt);
            alt = NULL;
        }
        if (alt) {
            dnnl_primitive_desc_destroy(pd);
            pd = alt;
        }
    }
    if (st == dnnl_success) {
        what = "primitive";
        st = dnnl_primitive_create(&e->prim, pd);
    }
    if (st == dnnl_success) {
        what = "reorder";
        ax_cv_arg *a = e->args;
        switch (k->kind) {
        case AX_CV_FWD:
            st = ax_cv_arg_init(a++, DNNL_ARG_SRC, AX_CV_IN, &ux, pd);
            if (st == dnnl_success) st = ax_cv_arg_init(a++, DNNL_ARG_WEIGHTS, AX_CV_IN, &uw, pd);
            if (st == dnnl_success && k->bias) st = ax_cv_arg_init(a++, DNNL_ARG_BIAS, AX_CV_IN, &ub, pd);
            if (st == dnnl_success) st = ax_cv_arg_init(a++, DNNL_ARG_DST, AX_CV_OUT, &uy, pd);
            break;
        case AX_CV_BWD_DATA:
            st = ax_cv_arg_init(a++, DNNL_ARG_DIFF_DST, AX_CV_IN, &uy, pd);
            if (st == dnnl_success) st = ax_cv_arg_init(a++, DNNL_ARG_WEIGHTS, AX_CV_IN, &uw, pd);
            if (st == dnnl_success) st = ax_cv_arg_init(a++, DNNL_ARG_DIFF_SRC, AX_CV_OUT, &ux, pd);
            break;
        default:
            st = padded && !k->transposed ? ax_cv_arg_init_padded(a++, DNNL_ARG_SRC, &ux, pd, front, rows)
                                          : ax_cv_arg_init(a++, DNNL_ARG_SRC, AX_CV_IN, &ux, pd);
            if (st == dnnl_success)
                st = padded && k->transposed ? ax_cv_arg_init_padded(a++, DNNL_ARG_DIFF_DST, &uy, pd, front, rows)
                                             : ax_cv_arg_init(a++, DNNL_ARG_DIFF_DST, AX_CV_IN, &uy, pd);
            if (st == dnnl_success) st = ax_cv_arg_init(a++, DNNL_ARG_DIFF_WEIGHTS, AX_CV_ACC, &uw, pd);
            if (st == dnnl_success && k->bias) st = ax_cv_arg_init(a++, DNNL_ARG_DIFF_BIAS, AX_CV_ACC, &ub, pd);
            break;
        }
        e->nargs = (int)(a - e->args);
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success) {
        ax_cv_entry_destroy(e);
        return ax_cv_fail(k, what, st);
    }
    *out = e;
    return AX_OK;
}

static void ax_cv_release(ax_cv_entry *e) {
    pthread_mutex_lock(&ax_cv_lock);
    bool last = --e->refs == 0;
    pthread_mutex_unlock(&ax_cv_lock);
    if (last) ax_cv_entry_destroy(e);
}

/* The cached entry for key (a reference the caller releases), created on
 * a miss. Creation runs outside the lock; a racing duplicate is dropped. */
static ax_status ax_cv_get(ax_cv_entry **out, const ax_cv_key *k) {
    pthread_mutex_lock(&ax_cv_lock);
    for (int i = 0; i < AX_CV_CACHE; i++) {
        ax_cv_entry *e = ax_cv_cache[i];
        if (e && !memcmp(&e->key, k, sizeof *k)) {
            e->refs++;
            e->stamp = ++ax_cv_clock;
            pthread_mutex_unlock(&ax_cv_lock);
            *out = e;
            return AX_OK;
        }
    }
    pthread_mutex_unlock(&ax_cv_lock);
    ax_cv_entry *e = NULL;
    if (ax_cv_create(&e, k) != AX_OK) return ax_error_status();
    ax_cv_entry *evict = NULL;
    pthread_mutex_lock(&ax_cv_lock);
    int slot = -1;
    for (int i = 0; i < AX_CV_CACHE && slot != -2; i++) {
        ax_cv_entry *c = ax_cv_cache[i];
        if (c && !memcmp(&c->key, k, sizeof *k)) { /* another thread made it meanwhile */
            evict = e;
            e = c;
            slot = -2;
        } else if (slot < 0 || (ax_cv_cache[slot] && (!c || c->stamp < ax_cv_cache[slot]->stamp))) {
            slot = i; /* an empty slot, else the least recently used */
        }
    }
    if (slot >= 0) {
        if (ax_cv_cache[slot] && --ax_cv_cache[slot]->refs == 0) evict = ax_cv_cache[slot];
        ax_cv_cache[slot] = e;
        e->refs = 1; /* the cache's */
    }
    e->refs++;
    e->stamp = ++ax_cv_clock;
    pthread_mutex_unlock(&ax_cv_lock);
    ax_cv_entry_destroy(evict);
    *out = e;
    return AX_OK;
}

/* ---- execution --------------------------------------------------------------- */

static pthread_mutex_t ax_cv_exec_lock = PTHREAD_MUTEX_INITIALIZER;

/* Run e on the user's buffers ptrs[i] (one per e->args[i]). */
static ax_status ax_cv_run(ax_cv_entry *e, void *const *ptrs) {
    const ax_cv_key *k = &e->key;
    dnnl_memory_t user[AX_CV_MAX_ARGS] = {0}, prim[AX_CV_MAX_ARGS] = {0};
    void *bufs[AX_CV_MAX_ARGS] = {0}, *zeros = NULL;
    size_t sizes[AX_CV_MAX_ARGS] = {0}, zero_bytes = 0;
    dnnl_exec_arg_t args[AX_CV_MAX_ARGS];
    dnnl_stream_t stream = NULL;
    const char *what = "stream creation";
    ax_status ret = AX_OK;
    for (int i = 0; i < e->nargs; i++)
        if (e->args[i].zero_bytes > zero_bytes) zero_bytes = e->args[i].zero_bytes;
    if (zero_bytes && !(zeros = calloc(1, zero_bytes)))
        return AX_ERROR(AX_ERR_NOMEM, "ax_cpu_conv: out of memory for %zu bytes of padding", zero_bytes);
    dnnl_status_t st = dnnl_stream_create(&stream, ax_cv_engine, dnnl_stream_default_flags);
    for (int i = 0; i < e->nargs && st == dnnl_success; i++) {
        ax_cv_arg *a = &e->args[i];
        what = "memory creation";
        if (!a->nparts) {
            st = dnnl_memory_create(&user[i], &a->user_md, ax_cv_engine, ptrs[i]);
            args[i] = (dnnl_exec_arg_t){a->arg, user[i]};
            continue;
        }
        bufs[i] = ax_cv_buf_get(a->prim_bytes, &sizes[i]);
        if (!bufs[i]) {
            ret = AX_ERROR(AX_ERR_NOMEM, "ax_cpu_conv: out of memory for %zu bytes of a reordered %s argument",
                           a->prim_bytes, ax_cv_kind_name(k));
            break;
        }
        st = dnnl_memory_create(&prim[i], &a->prim_md, ax_cv_engine, bufs[i]);
        args[i] = (dnnl_exec_arg_t){a->arg, prim[i]};
        for (int j = 0; j < a->nparts && a->mode == AX_CV_IN && st == dnnl_success; j++) {
            const ax_cv_part *part = &a->parts[j];
            dnnl_memory_t from = NULL, to = NULL;
            what = "input reorder";
            st = dnnl_memory_create(&from, &part->from, ax_cv_engine, part->zeros ? zeros : ptrs[i]);
            if (st == dnnl_success) st = dnnl_memory_create(&to, &part->to, ax_cv_engine, bufs[i]);
            dnnl_exec_arg_t r[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
            if (st == dnnl_success) st = dnnl_primitive_execute(part->reorder, stream, 2, r);
            if (from) dnnl_memory_destroy(from);
            if (to) dnnl_memory_destroy(to);
        }
    }
    if (st == dnnl_success && ret == AX_OK) {
        what = "execution";
        st = dnnl_primitive_execute(e->prim, stream, e->nargs, args);
    }
    for (int i = 0; i < e->nargs && st == dnnl_success && ret == AX_OK; i++) {
        ax_cv_arg *a = &e->args[i];
        if (!a->nparts || a->mode == AX_CV_IN) continue;
        what = "output reorder";
        st = dnnl_memory_create(&user[i], &a->user_md, ax_cv_engine, ptrs[i]);
        dnnl_exec_arg_t r[2] = {{DNNL_ARG_FROM, prim[i]}, {DNNL_ARG_TO, user[i]}};
        if (st == dnnl_success) st = dnnl_primitive_execute(a->parts[0].reorder, stream, 2, r);
    }
    if (stream && st == dnnl_success && ret == AX_OK) {
        what = "stream wait";
        st = dnnl_stream_wait(stream);
    }
    if (st != dnnl_success && ret == AX_OK) ret = ax_cv_fail(k, what, st);
    if (stream) dnnl_stream_destroy(stream);
    for (int i = 0; i < e->nargs; i++) {
        if (user[i]) dnnl_memory_destroy(user[i]);
        if (prim[i]) dnnl_memory_destroy(prim[i]);
        ax_cv_buf_put(bufs[i], sizes[i]);
    }
    free(zeros);
    return ret;
}

static ax_status ax_cv_exec(ax_cv_key *k, int kind, bool bias, void *const *ptrs) {
    k->kind = kind;
    k->bias = bias;
    ax_cv_entry *e = NULL;
    if (ax_cv_get(&e, k) != AX_OK) return ax_error_status();
    /* Debian's oneDNN is built without DNNL_ENABLE_CONCURRENT_EXEC: a
     * primitive's library-managed scratchpad is shared, so running one from
     * two threads at once corrupts results (test_concurrent_calls saw it).
     * Each call already uses every OpenMP thread, so serialising costs
     * nothing on the CPU. */
    pthread_mutex_lock(&ax_cv_exec_lock);
    ax_status st = ax_cv_run(e, ptrs);
    pthread_mutex_unlock(&ax_cv_exec_lock);
    ax_cv_release(e);
    return st;
}

/* db[c] += sum of dy over N and space, in a fixed order (no threads' say). */
static void ax_cv_bias_grad(float *db, const float *dy, int64_t n, int64_t c, int64_t space) {
#pragma omp parallel for schedule(static) if (c > 1 && n * c * space > 65536)
    for (int64_t j = 0; j < c; j++) {
        double acc = 0;
        for (int64_t i = 0; i < n; i++) {
            const float *row = dy + (i * c + j) * space;
            double part = 0;
            for (int64_t s = 0; s < space; s++) part += row[s];
            acc += part;
        }
        db[j] += (float)acc;
    }
}

static ax_status ax_cv_backward(const char *fn, bool transposed, ax_tensor *dx, ax_tensor *dw, ax_tensor *db,
                                const ax_tensor *dy, const ax_tensor *x, const ax_tensor *w,
                                const ax_conv_params *p) {
    ax_cv_key key;
    if (ax_cv_geometry(fn, &key, transposed, dy, x, w, db, dx, dw, p) != AX_OK) return ax_error_status();
    if (key.n == 0) return AX_OK; /* dx is empty; nothing to add to dw, db */
    if (dx) {
        void *ptrs[] = {ax_tensor_data(dy), ax_tensor_data(w), ax_tensor_data(dx)};
        if (ax_cv_exec(&key, AX_CV_BWD_DATA, false, ptrs) != AX_OK) return ax_error_status();
    }
    if (dw) {
        void *ptrs[] = {ax_tensor_data(x), ax_tensor_data(dy), ax_tensor_data(dw), db ? ax_tensor_data(db) : NULL};
        return ax_cv_exec(&key, AX_CV_BWD_WEIGHTS, db != NULL, ptrs);
    }
    if (db) {
        int64_t space = key.out[0] * key.out[1] * key.out[2];
        ax_cv_bias_grad(ax_tensor_data(db), ax_tensor_data(dy), key.n, key.co, space);
    }
    return AX_OK;
}

static ax_status ax_cv_forward(const char *fn, bool transposed, ax_tensor *y, const ax_tensor *x, const ax_tensor *w,
                               const ax_tensor *b, const ax_conv_params *p) {
    ax_cv_key key;
    if (ax_cv_geometry(fn, &key, transposed, y, x, w, b, NULL, NULL, p) != AX_OK) return ax_error_status();
    if (key.n == 0) return AX_OK;
    void *ptrs[4];
    int i = 0;
    ptrs[i++] = ax_tensor_data(x);
    ptrs[i++] = ax_tensor_data(w);
    if (b) ptrs[i++] = ax_tensor_data(b);
    ptrs[i] = ax_tensor_data(y);
    return ax_cv_exec(&key, AX_CV_FWD, b != NULL, ptrs);
}

/* ---- the kernel table's entries ------------------------------------------------ */

ax_status ax_cpu_conv3d(ax_tensor *y, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                        const ax_conv_params *p) {
    return ax_cv_forward("ax_cpu_conv3d", false, y, x, w, b, p);
}

ax_status ax_cpu_conv3d_backward(ax_tensor *dx, ax_tensor *dw, ax_tensor *db, const ax_tensor *dy, const ax_tensor *x,
                                 const ax_tensor *w, const ax_conv_params *p) {
    return ax_cv_backward("ax_cpu_conv3d_backward", false, dx, dw, db, dy, x, w, p);
}

ax_status ax_cpu_conv_transpose3d(ax_tensor *y, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                                  const ax_conv_params *p) {
    return ax_cv_forward("ax_cpu_conv_transpose3d", true, y, x, w, b, p);
}

ax_status ax_cpu_conv_transpose3d_backward(ax_tensor *dx, ax_tensor *dw, ax_tensor *db, const ax_tensor *dy,
                                           const ax_tensor *x, const ax_tensor *w, const ax_conv_params *p) {
    return ax_cv_backward("ax_cpu_conv_transpose3d_backward", true, dx, dw, db, dy, x, w, p);
}
