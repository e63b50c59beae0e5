/* Strided iteration over up to four operands that broadcast to the first.
 *
 * ax_iter_init collapses the shape: size-1 dims are dropped and adjacent
 * dims merged wherever every operand's strides allow, so a contiguous
 * elementwise op becomes one row of numel elements and kernels run their
 * inner loop on (pointer, stride, length) triples:
 *
 *     ax_iter it;
 *     ax_iter_init(&it, 3, (const ax_tensor *[]){out, a, b});
 *     for (int64_t r = 0; r < ax_iter_rows(&it); r++) {
 *         int64_t off[3];
 *         ax_iter_row(&it, r, off);
 *         // elements: base[k] + (off[k] + j * it.inner_stride[k]) * esize, j < it.inner
 *     }
 */
#ifndef AXON_CPU_ITER_H
#define AXON_CPU_ITER_H

#include "axon/tensor.h"

#define AX_ITER_MAX 4

typedef struct ax_iter {
    int nop;
    int ndim;                              /* outer dims, after collapsing (inner dim excluded) */
    int64_t shape[AX_MAX_DIMS];            /* outer dims */
    int64_t stride[AX_ITER_MAX][AX_MAX_DIMS];
    int64_t inner;                         /* length of a row */
    int64_t inner_stride[AX_ITER_MAX];
    int64_t rows;
    char *base[AX_ITER_MAX];               /* data at each operand's offset */
} ax_iter;

void ax_iter_init(ax_iter *it, int nop, const ax_tensor *const *ops);

static inline int64_t ax_iter_rows(const ax_iter *it) { return it->rows; }

/* Element offsets (not bytes) of the first element of row r. */
static inline void ax_iter_row(const ax_iter *it, int64_t r, int64_t *off) {
    for (int k = 0; k < it->nop; k++) off[k] = 0;
    for (int d = it->ndim - 1; d >= 0; d--) {
        int64_t n = it->shape[d], i = r % n;
        r /= n;
        for (int k = 0; k < it->nop; k++) off[k] += i * it->stride[k][d];
    }
}

/* Load n integers (i32, u8 or i64, every `stride` elements) as int64. */
void ax_load_i64_row(int64_t *dst, const char *src, ax_dtype dtype, int64_t stride, int64_t n);

/* Rows to hand each OpenMP thread at a time: whole rows, and enough work
 * per thread to pay for the fork. */
#define AX_PAR_MIN_ELEMS 32768

#endif
