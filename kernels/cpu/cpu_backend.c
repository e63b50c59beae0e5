/* The CPU backend: its kernel table, memory, copies and fills. The
 * elementwise, reduction and matrix kernels live beside this file. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "axon/half.h"
#include "axon/log.h"
#include "cpu_iter.h"
#include "cpu_kernels.h"
#include "tensor_internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* Large tensors get their own mapping with transparent huge pages asked
 * for: a 64 MiB activation then costs 32 page faults instead of 16384, which
 * otherwise took longer than the kernels themselves in a training step.
 * Memory goes back to the system on free, so the peak stays the working set
 * (keeping freed blocks in the heap was faster still, but fragmentation
 * raised a U-Net step's peak RSS by 70%). */
#define AX_CPU_MAP_MIN ((size_t)4 << 20)
#define AX_CPU_HUGE ((size_t)2 << 20)

static size_t ax_cpu_map_size(size_t nbytes) { return (nbytes + AX_CPU_HUGE - 1) & ~(AX_CPU_HUGE - 1); }

static void *ax_cpu_alloc(size_t nbytes, int32_t device_index) {
    (void)device_index;
    if (nbytes >= AX_CPU_MAP_MIN) {
        size_t len = ax_cpu_map_size(nbytes);
        /* over-allocate one huge page so the start can be 2 MiB aligned */
        char *p = mmap(NULL, len + AX_CPU_HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            AX_ERROR(AX_ERR_NOMEM, "out of memory allocating %zu bytes on the CPU", nbytes);
            return NULL;
        }
        uintptr_t a = ((uintptr_t)p + AX_CPU_HUGE - 1) & ~(uintptr_t)(AX_CPU_HUGE - 1);
        size_t head = a - (uintptr_t)p, tail = AX_CPU_HUGE - head;
        if (head) munmap(p, head);
        if (tail) munmap((char *)a + len, tail);
#ifdef MADV_HUGEPAGE
        (void)madvise((void *)a, len, MADV_HUGEPAGE); /* a hint; fine to fail */
#endif
        return (void *)a;
    }
    /* 64-byte alignment for AVX-512 loads and oneDNN. */
    size_t n = (nbytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, n ? n : 64);
    if (!p) AX_ERROR(AX_ERR_NOMEM, "out of memory allocating %zu bytes on the CPU", nbytes);
    return p;
}

static void ax_cpu_release(void *data, size_t nbytes, int32_t device_index) {
    (void)device_index;
    if (nbytes >= AX_CPU_MAP_MIN)
        munmap(data, ax_cpu_map_size(nbytes));
    else
        free(data);
}

static bool ax_cpu_supports(ax_kop op, ax_dtype dtype) {
    switch (op) {
    case AX_KOP_COPY:
    case AX_KOP_FILL:
    case AX_KOP_WHERE: return ax_dtype_size(dtype) != 0;
    case AX_KOP_UNARY:
    case AX_KOP_BINARY: return dtype == AX_DTYPE_F32 || dtype == AX_DTYPE_I32 || dtype == AX_DTYPE_I64 || dtype == AX_DTYPE_U8;
    case AX_KOP_UNARY_BACKWARD:
    case AX_KOP_REDUCE:
    case AX_KOP_SOFTMAX:
    case AX_KOP_MATMUL:
    case AX_KOP_CONV:
    case AX_KOP_NORM:
    case AX_KOP_POOL:
    case AX_KOP_RESAMPLE: return dtype == AX_DTYPE_F32;
    case AX_KOP_INDEX: return ax_dtype_size(dtype) != 0;
    }
    return false;
}

/* Convert one row of n elements between dtypes. */
static void ax_cpu_convert_row(char *d, ax_dtype dt, int64_t ds, const char *s, ax_dtype st, int64_t ss, int64_t n) {
    if (dt == AX_DTYPE_BF16 && st == AX_DTYPE_F32) {
        for (int64_t j = 0; j < n; j++) ((uint16_t *)d)[j * ds] = ax_f32_to_bf16(((const float *)s)[j * ss]);
    } else if (dt == AX_DTYPE_F32 && st == AX_DTYPE_BF16) {
        for (int64_t j = 0; j < n; j++) ((float *)d)[j * ds] = ax_bf16_to_f32(((const uint16_t *)s)[j * ss]);
    } else if (dt == AX_DTYPE_F16 && st == AX_DTYPE_F32) {
        for (int64_t j = 0; j < n; j++) ((uint16_t *)d)[j * ds] = ax_f32_to_f16(((const float *)s)[j * ss]);
    } else if (dt == AX_DTYPE_F32 && st == AX_DTYPE_F16) {
        for (int64_t j = 0; j < n; j++) ((float *)d)[j * ds] = ax_f16_to_f32(((const uint16_t *)s)[j * ss]);
    } else {
        for (int64_t j = 0; j < n; j++) ax_store_elem(d, dt, j * ds, ax_load_elem(s, st, j * ss));
    }
}

static ax_status ax_cpu_copy(ax_tensor *dst, const ax_tensor *src) {
    ax_iter it;
    ax_iter_init(&it, 2, (const ax_tensor *[]){dst, src});
    size_t de = ax_dtype_size(dst->dtype), se = ax_dtype_size(src->dtype);
    bool same = dst->dtype == src->dtype;
    int64_t rows = ax_iter_rows(&it);
#pragma omp parallel for if (rows * it.inner >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t off[2];
        ax_iter_row(&it, r, off);
        char *d = it.base[0] + (size_t)off[0] * de;
        const char *s = it.base[1] + (size_t)off[1] * se;
        int64_t n = it.inner, ds = it.inner_stride[0], ss = it.inner_stride[1];
        if (same && ds == 1 && ss == 1) {
            memmove(d, s, (size_t)n * de);
        } else if (same) {
            for (int64_t j = 0; j < n; j++) memcpy(d + (size_t)(j * ds) * de, s + (size_t)(j * ss) * se, de);
        } else {
            ax_cpu_convert_row(d, dst->dtype, ds, s, src->dtype, ss, n);
        }
    }
    return AX_OK;
}

static ax_status ax_cpu_fill(ax_tensor *dst, double value) {
    unsigned char elem[8];
    size_t es = ax_dtype_size(dst->dtype);
    ax_store_elem(elem, dst->dtype, 0, value);
    ax_iter it;
    ax_iter_init(&it, 1, (const ax_tensor *[]){dst});
    int64_t rows = ax_iter_rows(&it);
    bool zero = true;
    for (size_t i = 0; i < es; i++) zero = zero && elem[i] == 0;
#pragma omp parallel for if (rows * it.inner >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t off;
        ax_iter_row(&it, r, &off);
        char *d = it.base[0] + (size_t)off * es;
        int64_t n = it.inner, ds = it.inner_stride[0];
        if (zero && ds == 1) {
            memset(d, 0, (size_t)n * es);
        } else if (es == 4 && ds == 1) {
            uint32_t v;
            memcpy(&v, elem, 4);
            for (int64_t j = 0; j < n; j++) ((uint32_t *)d)[j] = v;
        } else {
            for (int64_t j = 0; j < n; j++) memcpy(d + (size_t)(j * ds) * es, elem, es);
        }
    }
    return AX_OK;
}

static const ax_kernels ax_cpu_table = {
    .size = sizeof(ax_kernels),
    .name = "cpu",
    .supports = ax_cpu_supports,
    .alloc = ax_cpu_alloc,
    .release = ax_cpu_release,
    .copy = ax_cpu_copy,
    .fill = ax_cpu_fill,
    .unary = ax_cpu_unary,
    .unary_backward = ax_cpu_unary_backward,
    .binary = ax_cpu_binary,
    .where = ax_cpu_where,
    .reduce = ax_cpu_reduce,
    .softmax = ax_cpu_softmax,
    .softmax_backward = ax_cpu_softmax_backward,
    .matmul = ax_cpu_matmul,
    .conv3d = ax_cpu_conv3d,
    .conv3d_backward = ax_cpu_conv3d_backward,
    .conv_transpose3d = ax_cpu_conv_transpose3d,
    .conv_transpose3d_backward = ax_cpu_conv_transpose3d_backward,
    .group_norm = ax_cpu_group_norm,
    .group_norm_backward = ax_cpu_group_norm_backward,
    .pool3d = ax_cpu_pool3d,
    .pool3d_backward = ax_cpu_pool3d_backward,
    .adaptive_avg_pool3d = ax_cpu_adaptive_avg_pool3d,
    .adaptive_avg_pool3d_backward = ax_cpu_adaptive_avg_pool3d_backward,
    .interpolate = ax_cpu_interpolate,
    .interpolate_backward = ax_cpu_interpolate_backward,
    .pad = ax_cpu_pad,
    .pad_backward = ax_cpu_pad_backward,
    .gather = ax_cpu_gather,
    .scatter_add = ax_cpu_scatter_add,
    .index_select = ax_cpu_index_select,
    .index_add = ax_cpu_index_add,
    .sgd_step = ax_cpu_sgd_step,
    .adamw_step = ax_cpu_adamw_step,
    .grad_norm = ax_cpu_grad_norm,
    .linear = ax_cpu_linear,
    .linear_backward = ax_cpu_linear_backward,
    .group_norm_act = ax_cpu_group_norm_act,
    .group_norm_act_backward = ax_cpu_group_norm_act_backward,
    .sdpa = ax_cpu_sdpa,
    .sdpa_backward = ax_cpu_sdpa_backward,
};

const ax_kernels *ax_cpu_kernels(void) { return &ax_cpu_table; }

/* AXON_NUM_THREADS applies from load time on, before any kernel runs. An
 * invalid value is reported and ignored (all cores). */
#if defined(__GNUC__)
__attribute__((constructor))
#endif
static void ax_cpu_threads_from_env(void) {
    const char *env = getenv("AXON_NUM_THREADS");
    if (!env || !*env) return;
    char *end;
    long n = strtol(env, &end, 10);
    if (*end || n < 1 || n > 4096) {
        AX_LOG_WARN("AXON_NUM_THREADS=%s is not a thread count; using all cores", env);
        return;
    }
    ax_set_num_threads((int)n);
}

int ax_num_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

void ax_set_num_threads(int n) {
#ifdef _OPENMP
    if (n > 0) omp_set_num_threads(n);
#else
    (void)n;
#endif
}
