/* Elementwise binary kernels (out = a op b, broadcasting) and where().
 *
 * The op is chosen once per block, never per element. Each op has one
 * loop over contiguous arrays (vectorised with `omp simd`; -O2 alone only
 * vectorises loops whose trip count is a multiple of the vector width).
 * Rows whose operands all have stride 1 run that loop directly on the
 * tensors' memory; other rows gather strided operands into small blocks
 * first, so broadcast and permuted operands still reach the vector loop.
 *
 * Integers (i32, i64, u8) are computed in int64 blocks and wrap on
 * overflow when stored, like PyTorch's integer arithmetic.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cpu_iter.h"
#include "cpu_kernels.h"
#include "tensor_internal.h"

/* Elements per gathered block: a few KiB per operand stays in L1. */
#define AX_BINARY_BLOCK 1024
/* A long row is cut into chunks of this many elements, the unit of work
 * handed to threads: a contiguous tensor collapses to a single row and
 * must still use every thread. */
#define AX_BINARY_CHUNK 16384

static bool ax_binary_is_compare(ax_binary_op op) { return op >= AX_BINARY_EQ && op <= AX_BINARY_GE; }

/* ---- f32 on contiguous arrays --------------------------------------------- */

/* out[j] = a[j] op b[j]; out may be a or b. */
static void ax_binary_f32_contig(ax_binary_op op, float *out, const float *a, const float *b, int64_t n) {
    switch (op) {
    case AX_BINARY_ADD:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) out[j] = a[j] + b[j];
        break;
    case AX_BINARY_SUB:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) out[j] = a[j] - b[j];
        break;
    case AX_BINARY_MUL:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) out[j] = a[j] * b[j];
        break;
    case AX_BINARY_DIV:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) out[j] = a[j] / b[j];
        break;
    case AX_BINARY_POW:
        for (int64_t j = 0; j < n; j++) out[j] = powf(a[j], b[j]);
        break;
    case AX_BINARY_MAXIMUM:
        /* torch.maximum: a NaN in either operand gives NaN (b's through the
         * false branch, since comparisons with NaN are false) */
#pragma omp simd
        for (int64_t j = 0; j < n; j++) out[j] = a[j] > b[j] || a[j] != a[j] ? a[j] : b[j];
        break;
    case AX_BINARY_MINIMUM:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) out[j] = a[j] < b[j] || a[j] != a[j] ? a[j] : b[j];
        break;
    default: break;
    }
}

static void ax_compare_f32_contig(ax_binary_op op, uint8_t *out, const float *a, const float *b, int64_t n) {
    switch (op) {
    case AX_BINARY_EQ:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) out[j] = a[j] == b[j];
        break;
    case AX_BINARY_NE:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) out[j] = a[j] != b[j];
        break;
    case AX_BINARY_LT:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) out[j] = a[j] < b[j];
        break;
    case AX_BINARY_LE:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) out[j] = a[j] <= b[j];
        break;
    case AX_BINARY_GT:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) out[j] = a[j] > b[j];
        break;
    case AX_BINARY_GE:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) out[j] = a[j] >= b[j];
        break;
    default: break;
    }
}

/* ---- int64 blocks ----------------------------------------------------------- */

/* a op b on int64 blocks; a is overwritten with the result. Unsigned
 * arithmetic wraps where signed overflow would be undefined. */
static void ax_binary_i64_block(ax_binary_op op, int64_t *a, const int64_t *b, int64_t n) {
    switch (op) {
    case AX_BINARY_ADD:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) a[j] = (int64_t)((uint64_t)a[j] + (uint64_t)b[j]);
        break;
    case AX_BINARY_SUB:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) a[j] = (int64_t)((uint64_t)a[j] - (uint64_t)b[j]);
        break;
    case AX_BINARY_MUL:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) a[j] = (int64_t)((uint64_t)a[j] * (uint64_t)b[j]);
        break;
    case AX_BINARY_MAXIMUM:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) a[j] = a[j] > b[j] ? a[j] : b[j];
        break;
    case AX_BINARY_MINIMUM:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) a[j] = a[j] < b[j] ? a[j] : b[j];
        break;
    case AX_BINARY_EQ:
        for (int64_t j = 0; j < n; j++) a[j] = a[j] == b[j];
        break;
    case AX_BINARY_NE:
        for (int64_t j = 0; j < n; j++) a[j] = a[j] != b[j];
        break;
    case AX_BINARY_LT:
        for (int64_t j = 0; j < n; j++) a[j] = a[j] < b[j];
        break;
    case AX_BINARY_LE:
        for (int64_t j = 0; j < n; j++) a[j] = a[j] <= b[j];
        break;
    case AX_BINARY_GT:
        for (int64_t j = 0; j < n; j++) a[j] = a[j] > b[j];
        break;
    case AX_BINARY_GE:
        for (int64_t j = 0; j < n; j++) a[j] = a[j] >= b[j];
        break;
    default: break;
    }
}

/* Narrowing stores keep the low bits (two's complement wrap-around). */
static void ax_store_i64_row(char *dst, ax_dtype dtype, int64_t stride, const int64_t *src, int64_t n) {
    switch (dtype) {
    case AX_DTYPE_I32:
        for (int64_t j = 0; j < n; j++) ((int32_t *)dst)[j * stride] = (int32_t)(uint32_t)(uint64_t)src[j];
        break;
    case AX_DTYPE_U8:
        for (int64_t j = 0; j < n; j++) ((uint8_t *)dst)[j * stride] = (uint8_t)(uint64_t)src[j];
        break;
    default:
        for (int64_t j = 0; j < n; j++) ((int64_t *)dst)[j * stride] = src[j];
        break;
    }
}

/* ---- rows ----------------------------------------------------------------------- */

typedef struct ax_binary_row {
    ax_binary_op op;
    ax_dtype in, out;       /* dtypes of a and b, and of out */
    char *o;                /* first element of each operand */
    const char *a, *b;
    int64_t os, as, bs, n;  /* strides in elements, and length */
} ax_binary_row;

static void ax_gather_f32(float *dst, const float *src, int64_t stride, int64_t n) {
    if (stride == 0) {
        for (int64_t j = 0; j < n; j++) dst[j] = src[0];
    } else {
        for (int64_t j = 0; j < n; j++) dst[j] = src[j * stride];
    }
}

static void ax_binary_row_f32(const ax_binary_row *r) {
    bool cmp = ax_binary_is_compare(r->op);
    if (r->os == 1 && r->as == 1 && r->bs == 1) {
        if (cmp)
            ax_compare_f32_contig(r->op, (uint8_t *)r->o, (const float *)r->a, (const float *)r->b, r->n);
        else
            ax_binary_f32_contig(r->op, (float *)r->o, (const float *)r->a, (const float *)r->b, r->n);
        return;
    }
    float ab[AX_BINARY_BLOCK], bb[AX_BINARY_BLOCK], ob[AX_BINARY_BLOCK];
    uint8_t cb[AX_BINARY_BLOCK];
    size_t oes = cmp ? 1 : 4;
    for (int64_t j0 = 0; j0 < r->n; j0 += AX_BINARY_BLOCK) {
        int64_t m = r->n - j0 < AX_BINARY_BLOCK ? r->n - j0 : AX_BINARY_BLOCK;
        const float *ap = (const float *)r->a + j0 * r->as, *bp = (const float *)r->b + j0 * r->bs;
        if (r->as != 1) ax_gather_f32(ab, ap, r->as, m), ap = ab;
        if (r->bs != 1) ax_gather_f32(bb, bp, r->bs, m), bp = bb;
        char *op = r->o + (size_t)(j0 * r->os) * oes;
        if (cmp) {
            uint8_t *dst = r->os == 1 ? (uint8_t *)op : cb;
            ax_compare_f32_contig(r->op, dst, ap, bp, m);
            if (r->os != 1)
                for (int64_t j = 0; j < m; j++) ((uint8_t *)op)[j * r->os] = cb[j];
        } else {
            float *dst = r->os == 1 ? (float *)op : ob;
            ax_binary_f32_contig(r->op, dst, ap, bp, m);
            if (r->os != 1)
                for (int64_t j = 0; j < m; j++) ((float *)op)[j * r->os] = ob[j];
        }
    }
}

static void ax_binary_row_int(const ax_binary_row *r) {
    int64_t ab[AX_BINARY_BLOCK], bb[AX_BINARY_BLOCK];
    size_t ies = ax_dtype_size(r->in), oes = ax_dtype_size(r->out);
    for (int64_t j0 = 0; j0 < r->n; j0 += AX_BINARY_BLOCK) {
        int64_t m = r->n - j0 < AX_BINARY_BLOCK ? r->n - j0 : AX_BINARY_BLOCK;
        ax_load_i64_row(ab, r->a + (size_t)(j0 * r->as) * ies, r->in, r->as, m);
        ax_load_i64_row(bb, r->b + (size_t)(j0 * r->bs) * ies, r->in, r->bs, m);
        ax_binary_i64_block(r->op, ab, bb, m);
        ax_store_i64_row(r->o + (size_t)(j0 * r->os) * oes, r->out, r->os, ab, m);
    }
}

/* ---- checks --------------------------------------------------------------------- */

static ax_status ax_binary_check(ax_binary_op op, const ax_tensor *out, const ax_tensor *a, const ax_tensor *b) {
    char s1[160], s2[160], s3[160];
    if (op < AX_BINARY_ADD || op > AX_BINARY_GE)
        return AX_ERROR(AX_ERR_INVALID, "ax_cpu_binary: unknown binary op %d", (int)op);
    if (!ax_broadcastable_to(a, out->ndim, out->shape) || !ax_broadcastable_to(b, out->ndim, out->shape))
        return AX_ERROR(AX_ERR_INVALID, "ax_cpu_binary: a %s and b %s do not broadcast to out %s",
                        ax_shape_str(s1, sizeof s1, a->ndim, a->shape), ax_shape_str(s2, sizeof s2, b->ndim, b->shape),
                        ax_shape_str(s3, sizeof s3, out->ndim, out->shape));
    ax_dtype want = ax_binary_is_compare(op) ? AX_DTYPE_U8 : a->dtype;
    if (a->dtype != b->dtype || out->dtype != want)
        return AX_ERROR(AX_ERR_INVALID, "ax_cpu_binary: op %d on a %s, b %s into out %s (want out %s)", (int)op,
                        ax_dtype_name(a->dtype), ax_dtype_name(b->dtype), ax_dtype_name(out->dtype),
                        ax_dtype_name(want));
    bool is_int = a->dtype == AX_DTYPE_I32 || a->dtype == AX_DTYPE_I64 || a->dtype == AX_DTYPE_U8;
    if ((a->dtype != AX_DTYPE_F32 && !is_int) || (is_int && (op == AX_BINARY_DIV || op == AX_BINARY_POW)))
        return AX_ERROR(AX_ERR_UNSUPPORTED, "binary op %d: %s not supported on the CPU", (int)op,
                        ax_dtype_name(a->dtype));
    return AX_OK;
}

static int64_t ax_chunks_per_row(int64_t inner) {
    return inner > AX_BINARY_CHUNK ? (inner + AX_BINARY_CHUNK - 1) / AX_BINARY_CHUNK : 1;
}

ax_status ax_cpu_binary(ax_binary_op op, ax_tensor *out, const ax_tensor *a, const ax_tensor *b) {
    if (ax_binary_check(op, out, a, b) != AX_OK) return ax_error_status();
    ax_iter it;
    ax_iter_init(&it, 3, (const ax_tensor *[]){out, a, b});
    size_t oes = ax_dtype_size(out->dtype), ies = ax_dtype_size(a->dtype);
    bool is_f32 = a->dtype == AX_DTYPE_F32;
    int64_t rows = ax_iter_rows(&it), nc = ax_chunks_per_row(it.inner), items = rows * nc;
#pragma omp parallel for if (rows * it.inner >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t w = 0; w < items; w++) {
        int64_t off[3], j0 = (w % nc) * AX_BINARY_CHUNK;
        ax_iter_row(&it, w / nc, off);
        const int64_t *s = it.inner_stride;
        ax_binary_row row = {
            .op = op,
            .in = a->dtype,
            .out = out->dtype,
            .o = it.base[0] + (size_t)(off[0] + j0 * s[0]) * oes,
            .a = it.base[1] + (size_t)(off[1] + j0 * s[1]) * ies,
            .b = it.base[2] + (size_t)(off[2] + j0 * s[2]) * ies,
            .os = s[0],
            .as = s[1],
            .bs = s[2],
            .n = it.inner - j0 < AX_BINARY_CHUNK ? it.inner - j0 : AX_BINARY_CHUNK,
        };
        if (is_f32)
            ax_binary_row_f32(&row);
        else
            ax_binary_row_int(&row);
    }
    return AX_OK;
}

/* ---- where ---------------------------------------------------------------------- */

/* out[j] = c[j] ? a[j] : b[j] over n elements of es bytes; fixed-width
 * types so the common stride-1 case vectorises. */
static void ax_where_row(char *o, int64_t os, const uint8_t *c, int64_t cs, const char *a, int64_t as, const char *b,
                         int64_t bs, int64_t n, size_t es) {
    switch (es) {
    case 4:
        if (os == 1 && cs == 1 && as == 1 && bs == 1) {
            uint32_t *o4 = (uint32_t *)o;
            const uint32_t *a4 = (const uint32_t *)a, *b4 = (const uint32_t *)b;
#pragma omp simd
            for (int64_t j = 0; j < n; j++) o4[j] = c[j] ? a4[j] : b4[j];
        } else {
            for (int64_t j = 0; j < n; j++)
                ((uint32_t *)o)[j * os] = c[j * cs] ? ((const uint32_t *)a)[j * as] : ((const uint32_t *)b)[j * bs];
        }
        break;
    case 8:
        for (int64_t j = 0; j < n; j++)
            ((uint64_t *)o)[j * os] = c[j * cs] ? ((const uint64_t *)a)[j * as] : ((const uint64_t *)b)[j * bs];
        break;
    case 2:
        for (int64_t j = 0; j < n; j++)
            ((uint16_t *)o)[j * os] = c[j * cs] ? ((const uint16_t *)a)[j * as] : ((const uint16_t *)b)[j * bs];
        break;
    default:
        for (int64_t j = 0; j < n; j++)
            ((uint8_t *)o)[j * os] = c[j * cs] ? ((const uint8_t *)a)[j * as] : ((const uint8_t *)b)[j * bs];
        break;
    }
}

ax_status ax_cpu_where(ax_tensor *out, const ax_tensor *cond, const ax_tensor *a, const ax_tensor *b) {
    char s1[160], s2[160], s3[160], s4[160];
    if (!ax_broadcastable_to(cond, out->ndim, out->shape) || !ax_broadcastable_to(a, out->ndim, out->shape) ||
        !ax_broadcastable_to(b, out->ndim, out->shape))
        return AX_ERROR(AX_ERR_INVALID, "ax_cpu_where: cond %s, a %s and b %s do not broadcast to out %s",
                        ax_shape_str(s1, sizeof s1, cond->ndim, cond->shape),
                        ax_shape_str(s2, sizeof s2, a->ndim, a->shape), ax_shape_str(s3, sizeof s3, b->ndim, b->shape),
                        ax_shape_str(s4, sizeof s4, out->ndim, out->shape));
    if (cond->dtype != AX_DTYPE_U8 || a->dtype != out->dtype || b->dtype != out->dtype)
        return AX_ERROR(AX_ERR_INVALID, "ax_cpu_where: cond %s (want u8), a %s and b %s into out %s",
                        ax_dtype_name(cond->dtype), ax_dtype_name(a->dtype), ax_dtype_name(b->dtype),
                        ax_dtype_name(out->dtype));
    size_t es = ax_dtype_size(out->dtype);
    if (!es) return AX_ERROR(AX_ERR_UNSUPPORTED, "ax_cpu_where: dtype %d not supported on the CPU", (int)out->dtype);
    ax_iter it;
    ax_iter_init(&it, 4, (const ax_tensor *[]){out, cond, a, b});
    int64_t rows = ax_iter_rows(&it), nc = ax_chunks_per_row(it.inner), items = rows * nc;
#pragma omp parallel for if (rows * it.inner >= AX_PAR_MIN_ELEMS) schedule(static)
    for (int64_t w = 0; w < items; w++) {
        int64_t off[4], j0 = (w % nc) * AX_BINARY_CHUNK;
        int64_t n = it.inner - j0 < AX_BINARY_CHUNK ? it.inner - j0 : AX_BINARY_CHUNK;
        const int64_t *s = it.inner_stride;
        ax_iter_row(&it, w / nc, off);
        ax_where_row(it.base[0] + (size_t)(off[0] + j0 * s[0]) * es, s[0],
                     (const uint8_t *)it.base[1] + off[1] + j0 * s[1], s[1],
                     it.base[2] + (size_t)(off[2] + j0 * s[2]) * es, s[2],
                     it.base[3] + (size_t)(off[3] + j0 * s[3]) * es, s[3], n, es);
    }
    return AX_OK;
}
