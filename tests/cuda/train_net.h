/* The small 3-D conv net of the CUDA training tests (tests/cuda): a
 * two-level U-Net block (conv + instance norm + leaky ReLU, strided conv
 * down, transposed conv up, skip connection, 1x1 head) with an MSE loss,
 * its initialisation, and a plain SGD step done with the kernels of each
 * parameter's device (p += -lr * grad; the tests of axon/optim.h's
 * optimizers on devices use those instead).
 *
 *     tn_net cpu, dev;
 *     tn_init(&cpu, &dev, device);      // same weights on the CPU and on device
 *     ax_tensor *loss = tn_forward(&dev, x, target);
 */
#ifndef AXON_TESTS_CUDA_TRAIN_NET_H
#define AXON_TESTS_CUDA_TRAIN_NET_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "axon/autograd.h"
#include "axon/conv.h"
#include "axon/kernels.h"
#include "axon/loss.h"
#include "axon/norm.h"
#include "axon/ops.h"

#define TN_CHECK(e) tn_check((e), #e, __FILE__, __LINE__)

static inline void tn_check(ax_status st, const char *expr, const char *file, int line) {
    if (st == AX_OK) return;
    fprintf(stderr, "%s:%d: %s returned %d: %s\n", file, line, expr, (int)st, ax_error_message());
    exit(1);
}

#define TN_NPARAM 12

typedef struct tn_net {
    ax_tensor *p[TN_NPARAM];
} tn_net;

/* c1w, c1b, n1w, n1b, c2w, c2b, n2w, n2b, upw, upb, hw, hb */
static const int64_t tn_shapes[TN_NPARAM][5] = {{8, 1, 3, 3, 3}, {8}, {8}, {8}, {8, 8, 3, 3, 3}, {8}, {8}, {8},
                                            {8, 8, 2, 2, 2}, {8}, {1, 8, 1, 1, 1}, {1}};
static const int tn_ndims[TN_NPARAM] = {5, 1, 1, 1, 5, 1, 1, 1, 5, 1, 5, 1};

static inline void tn_init(tn_net *cpu, tn_net *dev, ax_device device) {
    for (int i = 0; i < TN_NPARAM; i++) {
        ax_tensor *t;
        TN_CHECK(ax_tensor_randn(&t, tn_ndims[i], tn_shapes[i], AX_DTYPE_F32, 1234, (uint64_t)i));
        double scale = tn_ndims[i] == 5 ? 1.0 / sqrt((double)(tn_shapes[i][1] * tn_shapes[i][2] * tn_shapes[i][3] * tn_shapes[i][4]))
                                       : 0.1;
        bool norm_w = i == 2 || i == 6;
        for (int64_t j = 0; j < ax_tensor_numel(t); j++) ax_tensor_set(t, j, (norm_w ? 1.0 : 0.0) + ax_tensor_get(t, j) * scale);
        TN_CHECK(ax_tensor_to_device(&dev->p[i], t, device));
        cpu->p[i] = t;
        TN_CHECK(ax_tensor_set_requires_grad(cpu->p[i], true));
        TN_CHECK(ax_tensor_set_requires_grad(dev->p[i], true));
    }
}

static inline ax_tensor *tn_conv(const ax_tensor *x, const ax_tensor *w, const ax_tensor *b, int64_t stride, int64_t pad) {
    ax_conv_params p = ax_conv_params_default();
    for (int d = 0; d < 3; d++) p.stride[d] = stride, p.padding[d] = pad;
    ax_tensor *y;
    TN_CHECK(ax_conv3d(&y, x, w, b, &p));
    return y;
}

static inline ax_tensor *tn_norm_act(ax_tensor *x, const ax_tensor *w, const ax_tensor *b) {
    ax_tensor *y;
    TN_CHECK(ax_instance_norm_leaky_relu(&y, x, w, b, 1e-5, 0.01));
    ax_tensor_free(x);
    return y;
}

/* loss = mse(net(x), target) */
static inline ax_tensor *tn_forward(const tn_net *n, const ax_tensor *x, const ax_tensor *target) {
    ax_tensor *const *p = n->p;
    ax_tensor *h1 = tn_norm_act(tn_conv(x, p[0], p[1], 1, 1), p[2], p[3]);
    ax_tensor *h2 = tn_norm_act(tn_conv(h1, p[4], p[5], 2, 1), p[6], p[7]);
    ax_conv_params up = ax_conv_params_default();
    for (int d = 0; d < 3; d++) up.stride[d] = 2;
    ax_tensor *u, *s, *out, *loss;
    TN_CHECK(ax_conv_transpose3d(&u, h2, p[8], p[9], &up));
    TN_CHECK(ax_add(&s, u, h1));
    out = tn_conv(s, p[10], p[11], 1, 0);
    TN_CHECK(ax_mse_loss(&loss, out, target, NULL, AX_LOSS_MEAN));
    ax_tensor *all[] = {h1, h2, u, s, out};
    for (int i = 0; i < 5; i++) ax_tensor_free(all[i]);
    return loss;
}

static inline void tn_sgd_step(tn_net *n, double lr) {
    for (int i = 0; i < TN_NPARAM; i++) {
        ax_tensor *p = n->p[i], *g = p->grad, *step;
        if (!g) {
            fprintf(stderr, "FAIL parameter %d has no gradient\n", i);
            exit(1);
        }
        const ax_kernels *k = ax_kernels_for(p->storage->device);
        const double aff[2] = {-lr, 0.0};
        TN_CHECK(ax_tensor_empty_like(&step, g, AX_DTYPE_F32));
        TN_CHECK(k->unary(AX_UNARY_AFFINE, step, g, aff));
        TN_CHECK(k->binary(AX_BINARY_ADD, p, p, step));
        ax_tensor_free(step);
        ax_tensor_zero_grad(p);
    }
}

#endif
