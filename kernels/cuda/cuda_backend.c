/* The CUDA backend's kernel table, per-device state, memory and transfers.
 *
 * Memory is stream-ordered: every device has one stream and allocates from
 * its default cudaMallocAsync pool, whose release threshold is raised so
 * freed blocks stay cached for the next step (PyTorch's caching allocator
 * does the same). A block freed with cudaFreeAsync becomes reusable for
 * work queued after it on the same stream, so freeing a tensor never waits
 * for the device. Only transfers to the host synchronise; transfers to the
 * device are queued through pinned staging buffers (ax_cuda_h2d).
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "axon/log.h"
#include "cuda_internal.h"

/* Host-to-device copies go through a ring of pinned staging buffers on a
 * copy stream of their own (see ax_cuda_h2d). */
#define AX_CUDA_STAGES 4

typedef struct ax_cuda_stage {
    void *host; /* pinned (cudaHostAlloc) */
    size_t cap;
    cudaEvent_t done; /* the copy out of this buffer has finished */
    bool pending;
} ax_cuda_stage;

typedef struct ax_cuda_dev {
    _Atomic int ready;
    cudaStream_t stream;
    cudaMemPool_t pool;
    cudaStream_t copy;      /* H2D copies */
    cudaEvent_t ordered;    /* the compute stream's tail, for the copy stream to wait on */
    ax_cuda_stage stages[AX_CUDA_STAGES];
    int next_stage;
    pthread_mutex_t copy_lock;
} ax_cuda_dev;

static ax_cuda_dev ax_cuda_devs[AX_CUDA_MAX_DEVICES];
static pthread_mutex_t ax_cuda_lock = PTHREAD_MUTEX_INITIALIZER;

ax_status ax_cuda_check(cudaError_t e, const char *what) {
    if (e == cudaSuccess) return AX_OK;
    cudaGetLastError(); /* clear a non-sticky error so the next call starts clean */
    return AX_ERROR(e == cudaErrorMemoryAllocation ? AX_ERR_NOMEM : AX_ERR_IO, "%s: CUDA error %s (%s)", what,
                    cudaGetErrorName(e), cudaGetErrorString(e));
}

bool ax_cuda_allow_tf32(void) {
    const char *env = getenv("AXON_CUDA_TF32");
    return !(env && strcmp(env, "0") == 0);
}

static ax_status ax_cuda_dev_init(int32_t d) {
    ax_cuda_dev *dv = &ax_cuda_devs[d];
    pthread_mutex_lock(&ax_cuda_lock);
    ax_status st = AX_OK;
    if (!atomic_load(&dv->ready)) {
        cudaError_t e = cudaStreamCreateWithFlags(&dv->stream, cudaStreamNonBlocking);
        if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&dv->copy, cudaStreamNonBlocking);
        if (e == cudaSuccess) e = cudaEventCreateWithFlags(&dv->ordered, cudaEventDisableTiming);
        for (int i = 0; i < AX_CUDA_STAGES && e == cudaSuccess; i++)
            e = cudaEventCreateWithFlags(&dv->stages[i].done, cudaEventDisableTiming);
        if (e == cudaSuccess) pthread_mutex_init(&dv->copy_lock, NULL);
        if (e == cudaSuccess) e = cudaDeviceGetDefaultMemPool(&dv->pool, d);
        if (e == cudaSuccess) {
            uint64_t keep = UINT64_MAX;
            e = cudaMemPoolSetAttribute(dv->pool, cudaMemPoolAttrReleaseThreshold, &keep);
        }
        st = ax_cuda_check(e, "CUDA device setup");
        if (st == AX_OK) atomic_store(&dv->ready, 1);
    }
    pthread_mutex_unlock(&ax_cuda_lock);
    return st;
}

/* Devices present (asked once; -1 until then). */
static _Atomic int ax_cuda_count = -1;

cudaStream_t ax_cuda_stream(int32_t device) {
    int n = atomic_load(&ax_cuda_count);
    if (n < 0) {
        if (cudaGetDeviceCount(&n) != cudaSuccess) n = 0;
        cudaGetLastError();
        atomic_store(&ax_cuda_count, n);
    }
    if (device < 0 || device >= AX_CUDA_MAX_DEVICES || device >= n) {
        AX_ERROR(AX_ERR_INVALID, "cuda:%d is not a device here (%d CUDA device%s)", (int)device, n, n == 1 ? "" : "s");
        return NULL;
    }
    if (ax_cuda_check(cudaSetDevice(device), "cudaSetDevice") != AX_OK) return NULL;
    if (!atomic_load(&ax_cuda_devs[device].ready) && ax_cuda_dev_init(device) != AX_OK) return NULL;
    return ax_cuda_devs[device].stream;
}

/* ---- memory ------------------------------------------------------------------- */

static ax_status ax_cuda_oom(size_t nbytes, int32_t device, cudaError_t why) {
    size_t free_b = 0, total_b = 0;
    uint64_t held = 0;
    cudaMemGetInfo(&free_b, &total_b);
    if (atomic_load(&ax_cuda_devs[device].ready))
        cudaMemPoolGetAttribute(ax_cuda_devs[device].pool, cudaMemPoolAttrReservedMemCurrent, &held);
    cudaGetLastError();
    const double mib = 1024.0 * 1024.0;
    return AX_ERROR(AX_ERR_NOMEM,
                    "out of GPU memory on cuda:%d allocating %zu bytes (%.1f MiB): %.1f MiB free of %.1f MiB, "
                    "%.1f MiB held by axon's pool (%s)",
                    (int)device, nbytes, (double)nbytes / mib, (double)free_b / mib, (double)total_b / mib,
                    (double)held / mib, cudaGetErrorName(why));
}

static void *ax_cuda_alloc(size_t nbytes, int32_t device) {
    cudaStream_t s = ax_cuda_stream(device);
    if (!s) return NULL;
    void *p = NULL;
    cudaError_t e = cudaMallocAsync(&p, nbytes, s);
    if (e == cudaErrorMemoryAllocation) {
        /* cached blocks may be what is missing: give them back and retry once
         * (this waits for the device, on the out-of-memory path only) */
        cudaGetLastError();
        cudaStreamSynchronize(s);
        cudaMemPoolTrimTo(ax_cuda_devs[device].pool, 0);
        e = cudaMallocAsync(&p, nbytes, s);
    }
    if (e != cudaSuccess) {
        /* too large a request can also come back as an invalid value */
        cudaGetLastError();
        ax_cuda_oom(nbytes, device, e);
        return NULL;
    }
    return p;
}

static void ax_cuda_release(void *data, size_t nbytes, int32_t device) {
    (void)nbytes;
    cudaStream_t s = ax_cuda_stream(device);
    if (s && cudaFreeAsync(data, s) == cudaSuccess) return;
    cudaGetLastError();
    AX_LOG_WARN("cuda:%d: could not free %zu bytes of device memory", (int)device, nbytes);
}

void *ax_cuda_scratch(size_t nbytes, int32_t device) { return ax_cuda_alloc(nbytes ? nbytes : 1, device); }

void ax_cuda_scratch_free(void *p, int32_t device) {
    if (p) ax_cuda_release(p, 0, device);
}

ax_status ax_cuda_synchronize(int32_t device) {
    int bad = 0;
    if (ax_cuda_index_errors(device, &bad) != AX_OK) return ax_error_status();
    if (bad)
        return AX_ERROR(AX_ERR_INVALID, "cuda:%d: %d index value%s out of range in gather/scatter/index ops since the "
                        "last synchronisation (those elements were skipped)",
                        (int)device, bad, bad == 1 ? " was" : "s were");
    return AX_OK;
}

ax_status ax_cuda_memory(int32_t device, size_t *in_use, size_t *peak, bool reset_peak) {
    if (!ax_cuda_stream(device)) return ax_error_status();
    cudaMemPool_t pool = ax_cuda_devs[device].pool;
    uint64_t used = 0, high = 0, zero = 0;
    cudaError_t e = cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemCurrent, &used);
    if (e == cudaSuccess) e = cudaMemPoolGetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &high);
    if (e == cudaSuccess && reset_peak) e = cudaMemPoolSetAttribute(pool, cudaMemPoolAttrUsedMemHigh, &zero);
    if (in_use) *in_use = (size_t)used;
    if (peak) *peak = (size_t)high;
    return ax_cuda_check(e, "ax_cuda_memory");
}

/* ---- transfers ------------------------------------------------------------------ */

/* dst (device d) = src (host, nb bytes) without waiting for the device:
 * src is copied into a pinned staging buffer (so the caller may reuse it
 * at once), the DMA runs on the copy stream after the work already queued
 * on the compute stream (dst's memory is stream-ordered there), and the
 * compute stream waits for the DMA with an event. A copy issued before a
 * step's kernels (the runner's prefetch of the next batch) therefore
 * overlaps them. A staging buffer is reused once its previous DMA is done
 * (four in a ring: normally long done); one that must grow is reallocated
 * (cudaFreeHost waits for the device: the first batches only). */
static ax_status ax_cuda_h2d(void *dst, const void *src, size_t nb, int32_t d) {
    ax_cuda_dev *dv = &ax_cuda_devs[d];
    pthread_mutex_lock(&dv->copy_lock);
    ax_cuda_stage *sg = &dv->stages[dv->next_stage];
    dv->next_stage = (dv->next_stage + 1) % AX_CUDA_STAGES;
    cudaError_t e = sg->pending ? cudaEventSynchronize(sg->done) : cudaSuccess;
    sg->pending = false;
    if (e == cudaSuccess && sg->cap < nb) {
        size_t cap = 4096;
        while (cap < nb) cap *= 2;
        if (sg->host) cudaFreeHost(sg->host);
        sg->host = NULL;
        sg->cap = 0;
        e = cudaHostAlloc(&sg->host, cap, cudaHostAllocDefault);
        if (e == cudaSuccess) sg->cap = cap;
    }
    if (e == cudaSuccess) {
        memcpy(sg->host, src, nb);
        e = cudaEventRecord(dv->ordered, dv->stream);
    }
    if (e == cudaSuccess) e = cudaStreamWaitEvent(dv->copy, dv->ordered, 0);
    if (e == cudaSuccess) e = cudaMemcpyAsync(dst, sg->host, nb, cudaMemcpyHostToDevice, dv->copy);
    if (e == cudaSuccess) e = cudaEventRecord(sg->done, dv->copy);
    if (e == cudaSuccess) {
        sg->pending = true;
        e = cudaStreamWaitEvent(dv->stream, sg->done, 0);
    }
    pthread_mutex_unlock(&dv->copy_lock);
    char what[96];
    snprintf(what, sizeof what, "ax_tensor_to_device: copying %zu bytes to cuda:%d", nb, (int)d);
    return ax_cuda_check(e, what);
}

static ax_status ax_cuda_transfer(ax_tensor *dst, const ax_tensor *src) {
    const char *fn = "ax_tensor_to_device";
    bool to_dev = dst->storage->device.type == AX_DEVICE_CUDA, from_dev = src->storage->device.type == AX_DEVICE_CUDA;
    if (to_dev == from_dev || dst->dtype != src->dtype || !ax_tensor_same_shape(dst, src) ||
        !ax_tensor_is_contiguous(dst) || !ax_tensor_is_contiguous(src))
        return AX_ERROR(AX_ERR_INVALID, "%s: want one CPU and one CUDA tensor, contiguous, of one dtype and shape", fn);
    size_t nb = ax_tensor_nbytes(src);
    if (nb == 0) return AX_OK;
    int32_t d = to_dev ? dst->storage->device.index : src->storage->device.index;
    cudaStream_t s = ax_cuda_stream(d);
    if (!s) return ax_error_status();
    void *dp = (char *)dst->storage->data + (size_t)dst->offset * ax_dtype_size(dst->dtype);
    const void *sp = (const char *)src->storage->data + (size_t)src->offset * ax_dtype_size(src->dtype);
    if (to_dev) return ax_cuda_h2d(dp, sp, nb, d);
    cudaError_t e = cudaMemcpyAsync(dp, sp, nb, cudaMemcpyDeviceToHost, s);
    /* the host may read dst now */
    if (e == cudaSuccess) e = cudaStreamSynchronize(s);
    if (e != cudaSuccess) {
        char what[96];
        snprintf(what, sizeof what, "%s: copying %zu bytes %s cuda:%d", fn, nb, to_dev ? "to" : "from", (int)d);
        return ax_cuda_check(e, what);
    }
    return from_dev ? ax_cuda_synchronize(d) : AX_OK;
}

/* ---- the table -------------------------------------------------------------------- */

static bool ax_cuda_supports(ax_kop op, ax_dtype dt) {
    bool fl = dt == AX_DTYPE_F32 || dt == AX_DTYPE_BF16 || dt == AX_DTYPE_F16;
    bool in = dt == AX_DTYPE_I32 || dt == AX_DTYPE_I64 || dt == AX_DTYPE_U8;
    switch (op) {
    case AX_KOP_COPY:
    case AX_KOP_FILL:
    case AX_KOP_WHERE:
    case AX_KOP_INDEX: return fl || in;
    case AX_KOP_UNARY:
    case AX_KOP_BINARY: return fl || in;
    case AX_KOP_UNARY_BACKWARD: return fl;
    case AX_KOP_MATMUL: return fl;
#ifdef AX_HAVE_CUDNN
    case AX_KOP_CONV: return fl;
#else
    case AX_KOP_CONV: return false;
#endif
    case AX_KOP_REDUCE:
    case AX_KOP_SOFTMAX:
    case AX_KOP_NORM:
    case AX_KOP_POOL:
    case AX_KOP_RESAMPLE: return dt == AX_DTYPE_F32;
    }
    return false;
}

static const ax_kernels ax_cuda_table = {
    .size = sizeof(ax_kernels),
    .name = "cuda",
    .supports = ax_cuda_supports,
    .alloc = ax_cuda_alloc,
    .release = ax_cuda_release,
    .copy = ax_cuda_copy,
    .fill = ax_cuda_fill,
    .unary = ax_cuda_unary,
    .unary_backward = ax_cuda_unary_backward,
    .binary = ax_cuda_binary,
    .where = ax_cuda_where,
    .reduce = ax_cuda_reduce,
    .softmax = ax_cuda_softmax,
    .softmax_backward = ax_cuda_softmax_backward,
    .matmul = ax_cuda_matmul,
    .conv3d = ax_cuda_conv3d,
    .conv3d_backward = ax_cuda_conv3d_backward,
    .conv_transpose3d = ax_cuda_conv_transpose3d,
    .conv_transpose3d_backward = ax_cuda_conv_transpose3d_backward,
    .group_norm = ax_cuda_group_norm,
    .group_norm_backward = ax_cuda_group_norm_backward,
    .pool3d = ax_cuda_pool3d,
    .pool3d_backward = ax_cuda_pool3d_backward,
    .adaptive_avg_pool3d = ax_cuda_adaptive_avg_pool3d,
    .adaptive_avg_pool3d_backward = ax_cuda_adaptive_avg_pool3d_backward,
    .interpolate = ax_cuda_interpolate,
    .interpolate_backward = ax_cuda_interpolate_backward,
    .pad = ax_cuda_pad,
    .pad_backward = ax_cuda_pad_backward,
    .gather = ax_cuda_gather,
    .scatter_add = ax_cuda_scatter_add,
    .index_select = ax_cuda_index_select,
    .index_add = ax_cuda_index_add,
    .transfer = ax_cuda_transfer,
    .sgd_step = ax_cuda_sgd_step,
    .adamw_step = ax_cuda_adamw_step,
    .grad_norm = ax_cuda_grad_norm,
    .group_norm_act = ax_cuda_group_norm_act,
    .group_norm_act_backward = ax_cuda_group_norm_act_backward,
    .linear = ax_cuda_linear,
    .linear_backward = ax_cuda_linear_backward,
    .sdpa = ax_cuda_sdpa,
    .sdpa_backward = ax_cuda_sdpa_backward,
};

const ax_kernels *ax_cuda_kernels(void) { return &ax_cuda_table; }

/* ---- probe and registration ----------------------------------------------------------- */

ax_status ax_cuda_probe(char *why, size_t why_size) {
    int n = 0, driver = 0, runtime = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    if (e != cudaSuccess) {
        cudaGetLastError();
        if (driver == 0)
            snprintf(why, why_size, "no NVIDIA driver on this machine (CUDA runtime %d.%d)", runtime / 1000,
                     runtime % 1000 / 10);
        else
            snprintf(why, why_size, "%s (%s; driver supports CUDA %d.%d, runtime is %d.%d)", cudaGetErrorString(e),
                     cudaGetErrorName(e), driver / 1000, driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10);
        return AX_ERR_UNSUPPORTED;
    }
    if (n == 0) {
        snprintf(why, why_size, "no CUDA device present");
        return AX_ERR_UNSUPPORTED;
    }
    /* kernels are built for sm_80 and sm_90 (plus PTX for newer) */
    int major = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) != cudaSuccess || major < 8) {
        cudaGetLastError();
        snprintf(why, why_size, "cuda:0 has compute capability %d.x; axon's CUDA kernels need 8.0 or newer", major);
        return AX_ERR_UNSUPPORTED;
    }
    return AX_OK;
}

ax_status ax_cuda_register(void) { return ax_kernels_register(AX_DEVICE_CUDA, &ax_cuda_table); }
