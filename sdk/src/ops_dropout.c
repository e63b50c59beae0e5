/* Dropout and drop path (axon/attention.h): x times a scaled keep mask drawn
 * from the counter RNG. The product is an ordinary ax_mul, so the gradient
 * (mask * scale) comes from autograd and the mask is saved on its node. */
#include <math.h>

#include "axon/attention.h"
#include "ops_internal.h"

static ax_status ax_reg_check(const char *fn, const ax_tensor *x, double p) {
    if (ax_op_need_float(fn, "x", x) != AX_OK) return ax_error_status();
    if (!(p >= 0 && p <= 1)) return AX_ERROR(AX_ERR_INVALID, "%s: p = %g is not in [0, 1]", fn, p);
    return AX_OK;
}

/* out = x * mask, mask f32 of `shape` (broadcasting to x) holding 0 or
 * 1/(1-p), computed in f32 and returned in x's dtype. */
static ax_status ax_apply_keep_mask(ax_tensor **out, const ax_tensor *x, int ndim, const int64_t *shape, double p,
                                    uint64_t seed, uint64_t stream) {
    ax_tensor *keep = NULL, *mask = NULL, *dev = NULL, *prod = NULL;
    double q = 1.0 - p;
    ax_status st = ax_tensor_bernoulli(&keep, ndim, shape, AX_DTYPE_F32, q, seed, stream);
    /* p == 1: keep is all 0 and stays unscaled (torch and timm give zeros) */
    if (st == AX_OK) st = q > 0 ? ax_mul_scalar(&mask, keep, 1.0 / q) : (mask = ax_tensor_retain(keep), AX_OK);
    if (st == AX_OK && x->storage->device.type != AX_DEVICE_CPU) {
        st = ax_tensor_to_device(&dev, mask, x->storage->device);
    } else if (st == AX_OK) {
        dev = ax_tensor_retain(mask);
    }
    if (st == AX_OK) st = ax_mul(&prod, x, dev);
    if (st == AX_OK) {
        if (prod->dtype == x->dtype) {
            *out = prod;
            prod = NULL;
        } else {
            st = ax_tensor_to_dtype(out, prod, x->dtype);
        }
    }
    ax_tensor_free(keep);
    ax_tensor_free(mask);
    ax_tensor_free(dev);
    ax_tensor_free(prod);
    return st;
}

ax_status ax_dropout(ax_tensor **out, const ax_tensor *x, double p, bool training, uint64_t seed, uint64_t stream) {
    *out = NULL;
    if (ax_reg_check("ax_dropout", x, p) != AX_OK) return ax_error_status();
    if (!training || p == 0) {
        *out = ax_tensor_retain((ax_tensor *)x);
        return AX_OK;
    }
    ax_status st = ax_apply_keep_mask(out, x, x->ndim, x->shape, p, seed, stream);
    if (st != AX_OK) ax_error_prefix("ax_dropout");
    return st;
}

ax_status ax_drop_path(ax_tensor **out, const ax_tensor *x, double p, bool training, uint64_t seed,
                       uint64_t stream) {
    *out = NULL;
    if (ax_reg_check("ax_drop_path", x, p) != AX_OK) return ax_error_status();
    if (x->ndim < 1) return AX_ERROR(AX_ERR_INVALID, "ax_drop_path: x must have a sample dim, got a 0-dim tensor");
    if (!training || p == 0) {
        *out = ax_tensor_retain((ax_tensor *)x);
        return AX_OK;
    }
    int64_t shape[AX_MAX_DIMS];
    shape[0] = x->shape[0];
    for (int d = 1; d < x->ndim; d++) shape[d] = 1;
    ax_status st = ax_apply_keep_mask(out, x, x->ndim, shape, p, seed, stream);
    if (st != AX_OK) ax_error_prefix("ax_drop_path");
    return st;
}
