#include "cpu_iter.h"

#include <string.h>

void ax_iter_init(ax_iter *it, int nop, const ax_tensor *const *ops) {
    const ax_tensor *out = ops[0];
    int n = out->ndim;
    int64_t shape[AX_MAX_DIMS], stride[AX_ITER_MAX][AX_MAX_DIMS];
    memset(it, 0, sizeof *it);
    it->nop = nop;
    for (int k = 0; k < nop; k++)
        it->base[k] = (char *)ops[k]->storage->data + (size_t)ops[k]->offset * ax_dtype_size(ops[k]->dtype);
    /* Broadcast every operand to out's shape; drop size-1 dims. */
    int m = 0;
    for (int d = 0; d < n; d++) {
        if (out->shape[d] == 1) continue;
        shape[m] = out->shape[d];
        for (int k = 0; k < nop; k++) {
            const ax_tensor *t = ops[k];
            int td = d - (n - t->ndim);
            stride[k][m] = (td >= 0 && t->shape[td] != 1) ? t->stride[td] : 0;
        }
        m++;
    }
    /* Merge dim i into i+1 when every operand steps through them as one. */
    int c = 0;
    for (int d = 0; d < m; d++) {
        if (c > 0) {
            bool merge = true;
            for (int k = 0; k < nop && merge; k++)
                merge = stride[k][c - 1] == stride[k][d] * shape[d];
            if (merge) {
                shape[c - 1] *= shape[d];
                for (int k = 0; k < nop; k++) stride[k][c - 1] = stride[k][d];
                continue;
            }
        }
        shape[c] = shape[d];
        for (int k = 0; k < nop; k++) stride[k][c] = stride[k][d];
        c++;
    }
    int64_t numel = 1;
    for (int d = 0; d < n; d++) numel *= out->shape[d];
    if (numel == 0) {
        it->inner = 0;
        it->rows = 0;
        return;
    }
    if (c == 0) { /* a single element */
        it->inner = 1;
        it->rows = 1;
        return;
    }
    it->inner = shape[c - 1];
    for (int k = 0; k < nop; k++) it->inner_stride[k] = stride[k][c - 1];
    it->ndim = c - 1;
    it->rows = 1;
    for (int d = 0; d < c - 1; d++) {
        it->shape[d] = shape[d];
        it->rows *= shape[d];
        for (int k = 0; k < nop; k++) it->stride[k][d] = stride[k][d];
    }
}

void ax_load_i64_row(int64_t *dst, const char *src, ax_dtype dtype, int64_t stride, int64_t n) {
    switch (dtype) {
    case AX_DTYPE_I32:
        for (int64_t j = 0; j < n; j++) dst[j] = ((const int32_t *)src)[j * stride];
        break;
    case AX_DTYPE_U8:
        for (int64_t j = 0; j < n; j++) dst[j] = ((const uint8_t *)src)[j * stride];
        break;
    default:
        for (int64_t j = 0; j < n; j++) dst[j] = ((const int64_t *)src)[j * stride];
        break;
    }
}
