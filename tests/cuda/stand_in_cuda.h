/* tests/cuda/stand_in_cuda.h — a stand-in CUDA backend for tests on
 * machines without a GPU: the CPU kernels behind a table registered for
 * AX_DEVICE_CUDA, with their own allocator (malloc, size tracked in
 * k_live_bytes) and transfer (memcpy, counted in k_transfers), serving
 * "cuda:0" only (another index fails to allocate, as a missing GPU does).
 * It claims bf16 convolutions and matmuls, as cuDNN/cuBLAS do, so autocast
 * regions act on it. Included by one test file each (static functions).
 *
 *     static int setup(void **state) { (void)state; return stand_in_cuda_register(); }
 */
#ifndef AXON_TESTS_STAND_IN_CUDA_H
#define AXON_TESTS_STAND_IN_CUDA_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "axon/autograd.h"
#include "axon/kernels.h"
#include "axon/ops.h"
#include "axon/status.h"
#include "axon/tensor.h"

static ax_kernels k_fake;
static int64_t k_live_bytes, k_transfers;

/* Device memory of the stand-in: malloc'd, with its size tracked. */
static void *fake_alloc(size_t nbytes, int32_t index) {
    if (index != 0) {
        AX_ERROR(AX_ERR_INVALID, "fake cuda:%d does not exist", (int)index);
        return NULL;
    }
    void *p = malloc(nbytes);
    if (!p) AX_ERROR(AX_ERR_NOMEM, "out of memory");
    k_live_bytes += (int64_t)nbytes;
    return p;
}

static void fake_release(void *p, size_t nbytes, int32_t index) {
    (void)index;
    k_live_bytes -= (int64_t)nbytes;
    free(p);
}

static ax_status fake_transfer(ax_tensor *dst, const ax_tensor *src) {
    bool ok = (dst->storage->device.type == AX_DEVICE_CUDA) != (src->storage->device.type == AX_DEVICE_CUDA) &&
              ax_tensor_is_contiguous(dst) && ax_tensor_is_contiguous(src) && dst->dtype == src->dtype &&
              ax_tensor_same_shape(dst, src);
    if (!ok) return AX_ERROR(AX_ERR_INVALID, "fake transfer: bad operands");
    memcpy(ax_tensor_data(dst), ax_tensor_data(src), ax_tensor_nbytes(src));
    k_transfers++;
    return AX_OK;
}

/* The CPU convolutions check that their operands live on the CPU: hand
 * them CPU-labelled headers of the stand-in's (host) memory. */
typedef struct cpu_view {
    ax_tensor t;
    ax_storage s;
} cpu_view;

static ax_tensor *as_cpu(cpu_view *v, const ax_tensor *t) {
    if (!t) return NULL;
    v->t = *t;
    v->s = *t->storage;
    v->s.device = AX_CPU;
    v->t.storage = &v->s;
    return &v->t;
}

/* The stand-in claims bf16 convolutions and matmuls, as cuDNN/cuBLAS do,
 * so autocast regions act on it: bf16 operands are widened to f32, the CPU
 * kernel runs, and the result is rounded back (f32 accumulation). */
static bool fake_supports(ax_kop op, ax_dtype dt) {
    if ((op == AX_KOP_CONV || op == AX_KOP_MATMUL) && dt == AX_DTYPE_BF16) return true;
    return ax_cpu_kernels()->supports(op, dt);
}

/* f32 copy of a bf16 device tensor (NULL stays NULL; f32 is retained) */
static ax_tensor *fake_widen(const ax_tensor *t) {
    if (!t) return NULL;
    if (t->dtype == AX_DTYPE_F32) return ax_tensor_retain((ax_tensor *)t);
    ax_tensor *o = NULL;
    ax_no_grad_begin();
    ax_status st = ax_tensor_to_dtype(&o, t, AX_DTYPE_F32);
    ax_no_grad_end();
    return st == AX_OK ? o : NULL;
}

static ax_status fake_narrow_into(ax_tensor *dst, ax_tensor *wide) {
    ax_status st = dst && dst != wide ? ax_tensor_copy_(dst, wide) : AX_OK;
    ax_tensor_free(wide);
    return st;
}

static ax_status fake_conv_any(bool transposed, ax_tensor *y, const ax_tensor *x, const ax_tensor *w,
                               const ax_tensor *b, const ax_conv_params *p) {
    cpu_view v[4];
    ax_tensor *yf = fake_widen(y), *xf = fake_widen(x), *wf = fake_widen(w);
    ax_status st = transposed ? ax_cpu_kernels()->conv_transpose3d(as_cpu(&v[0], yf), as_cpu(&v[1], xf),
                                                                    as_cpu(&v[2], wf), as_cpu(&v[3], b), p)
                              : ax_cpu_kernels()->conv3d(as_cpu(&v[0], yf), as_cpu(&v[1], xf), as_cpu(&v[2], wf),
                                                         as_cpu(&v[3], b), p);
    if (st == AX_OK) st = fake_narrow_into(y, yf);
    else ax_tensor_free(yf);
    ax_tensor_free(xf);
    ax_tensor_free(wf);
    return st;
}

static ax_status fake_conv_backward_any(bool transposed, ax_tensor *dx, ax_tensor *dw, ax_tensor *db,
                                        const ax_tensor *dy, const ax_tensor *x, const ax_tensor *w,
                                        const ax_conv_params *p) {
    cpu_view v[6];
    ax_tensor *dxf = fake_widen(dx), *dwf = fake_widen(dw), *dyf = fake_widen(dy), *xf = fake_widen(x),
              *wf = fake_widen(w);
    const ax_kernels *c = ax_cpu_kernels();
    ax_status st = (transposed ? c->conv_transpose3d_backward : c->conv3d_backward)(
        as_cpu(&v[0], dxf), as_cpu(&v[1], dwf), as_cpu(&v[2], db), as_cpu(&v[3], dyf), as_cpu(&v[4], xf),
        as_cpu(&v[5], wf), p);
    if (st == AX_OK) st = fake_narrow_into(dx, dxf), dxf = NULL;
    if (st == AX_OK) st = fake_narrow_into(dw, dwf), dwf = NULL;
    ax_tensor *rest[] = {dxf, dwf, dyf, xf, wf};
    for (int i = 0; i < 5; i++) ax_tensor_free(rest[i]);
    return st;
}

static ax_status fake_conv3d(ax_tensor *y, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                             const ax_conv_params *p) {
    return fake_conv_any(false, y, x, w, b, p);
}

static ax_status fake_conv_transpose3d(ax_tensor *y, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b,
                                       const ax_conv_params *p) {
    return fake_conv_any(true, y, x, w, b, p);
}

static ax_status fake_conv3d_backward(ax_tensor *dx, ax_tensor *dw, ax_tensor *db, const ax_tensor *dy,
                                      const ax_tensor *x, const ax_tensor *w, const ax_conv_params *p) {
    return fake_conv_backward_any(false, dx, dw, db, dy, x, w, p);
}

static ax_status fake_conv_transpose3d_backward(ax_tensor *dx, ax_tensor *dw, ax_tensor *db, const ax_tensor *dy,
                                                const ax_tensor *x, const ax_tensor *w, const ax_conv_params *p) {
    return fake_conv_backward_any(true, dx, dw, db, dy, x, w, p);
}

static int stand_in_cuda_register(void) {
    k_fake = *ax_cpu_kernels();
    k_fake.name = "fake-cuda";
    k_fake.supports = fake_supports;
    k_fake.alloc = fake_alloc;
    k_fake.release = fake_release;
    k_fake.transfer = fake_transfer;
    k_fake.conv3d = fake_conv3d;
    k_fake.conv3d_backward = fake_conv3d_backward;
    k_fake.conv_transpose3d = fake_conv_transpose3d;
    k_fake.conv_transpose3d_backward = fake_conv_transpose3d_backward;
    return ax_kernels_register(AX_DEVICE_CUDA, &k_fake) == AX_OK ? 0 : -1;
}

#endif
