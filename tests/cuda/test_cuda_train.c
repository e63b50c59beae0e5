/* 20 training steps of a small 3-D conv net (a two-level U-Net block:
 * conv + instance norm + leaky ReLU, strided conv down, transposed conv
 * up, skip connection, 1x1 head, MSE loss) on the CPU and on CUDA from the
 * same initial weights, through the op front-ends, autograd, gradient
 * clipping and the optimizers of axon/optim.h (which step each parameter
 * on its own device). Runs: SGD (nnU-Net's Nesterov, weight decay),
 * AdamW, and SGD with the GPU forward in a bf16 autocast region. The loss
 * curves must agree step by step (TF32 off; bf16: within bf16 precision)
 * and fall. Exits 77 without a usable GPU.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "axon/amp.h"
#include "axon/optim.h"
#include "cuda_test.h"
#include "train_net.h"

#define STEPS 20

static ax_optim *make_optim(tn_net *n, bool adamw) {
    ax_optim *o;
    if (adamw)
        CT_OK(ax_adamw_new(&o, TN_NPARAM, n->p, NULL, 3e-3, 0.9, 0.98, 1e-8, 1e-2));
    else
        CT_OK(ax_sgd_new(&o, TN_NPARAM, n->p, NULL, 2e-2, 0.9, 0, 3e-5, true));
    return o;
}

static int run(const char *name, bool adamw, bool amp) {
    tn_net cpu, gpu;
    tn_init(&cpu, &gpu, ct_gpu);
    int64_t xs[5] = {2, 1, 16, 16, 16};
    ax_tensor *x, *target;
    CT_OK(ax_tensor_randn(&x, 5, xs, AX_DTYPE_F32, 99, 0));
    CT_OK(ax_tensor_randn(&target, 5, xs, AX_DTYPE_F32, 99, 1));
    /* a learnable target: a smooth function of x plus a little noise */
    for (int64_t i = 0; i < ax_tensor_numel(x); i++)
        ax_tensor_set(target, i, tanh(ax_tensor_get(x, i)) + 0.05 * ax_tensor_get(target, i));
    ax_tensor *xg = to_gpu(x), *tg = to_gpu(target);
    ax_optim *oc = make_optim(&cpu, adamw), *og = make_optim(&gpu, adamw);
    double lc[STEPS], lg[STEPS];
    int bad = 0;
    printf("== %s\n", name);
    for (int s = 0; s < STEPS; s++) {
        ax_tensor *l1 = tn_forward(&cpu, x, target);
        if (amp) CT_OK(ax_autocast_begin(AX_DTYPE_BF16));
        ax_tensor *l2 = tn_forward(&gpu, xg, tg);
        if (amp) ax_autocast_end();
        CT_OK(ax_backward(l1, NULL));
        CT_OK(ax_backward(l2, NULL));
        double n1, n2;
        CT_OK(ax_clip_grad_norm(&n1, TN_NPARAM, cpu.p, 1.0, 2.0));
        CT_OK(ax_clip_grad_norm(&n2, TN_NPARAM, gpu.p, 1.0, 2.0));
        CT_OK(ax_optim_step(oc));
        CT_OK(ax_optim_step(og));
        ax_optim_zero_grad(oc);
        ax_optim_zero_grad(og);
        ax_tensor *l2c = to_cpu(l2);
        lc[s] = ax_tensor_get(l1, 0);
        lg[s] = ax_tensor_get(l2c, 0);
        double rel = fabs(lc[s] - lg[s]) / fmax(fabs(lc[s]), 1e-12);
        /* rounding differences compound over steps: allow a little more later */
        double tol = amp ? 2e-2 * (1 + 0.1 * s) : 1e-4 * (1 + s);
        printf("step %2d  cpu %.7f  cuda %.7f  rel diff %.2e  norm %.4g / %.4g%s\n", s, lc[s], lg[s], rel, n1, n2,
               rel > tol ? "  <-- too far" : "");
        bad += rel > tol;
        ax_tensor_free(l1);
        ax_tensor_free(l2);
        ax_tensor_free(l2c);
    }
    if (!(lg[STEPS - 1] < 0.9 * lg[0])) {
        printf("FAIL: the CUDA loss did not fall (%.6f -> %.6f)\n", lg[0], lg[STEPS - 1]);
        bad++;
    }
    for (int i = 0; i < TN_NPARAM; i++) {
        if (gpu.p[i]->dtype != AX_DTYPE_F32 || gpu.p[i]->storage->device.type != AX_DEVICE_CUDA) {
            printf("FAIL: parameter %d is no longer an f32 CUDA tensor\n", i);
            bad++;
        }
    }
    ax_optim_free(oc);
    ax_optim_free(og);
    for (int i = 0; i < TN_NPARAM; i++) {
        ax_tensor_free(cpu.p[i]);
        ax_tensor_free(gpu.p[i]);
    }
    ax_tensor_free(x);
    ax_tensor_free(target);
    ax_tensor_free(xg);
    ax_tensor_free(tg);
    CT_OK(ax_cuda_synchronize(0));
    return bad;
}

int main(void) {
    setenv("AXON_CUDA_TF32", "0", 1);
    cuda_test_start();
    int bad = run("sgd (nesterov, weight decay, clip 1.0)", false, false);
    bad += run("adamw (clip 1.0)", true, false);
    bad += run("sgd with bf16 autocast on the GPU", false, true);
    printf("%s: %d step%s out of tolerance\n", bad ? "FAILED" : "PASSED", bad, bad == 1 ? "" : "s");
    return bad ? 1 : 0;
}
