/* Benchmark: training steps of the resenc_unet ARCH plugin on CUDA, for
 * comparison with tests/gpu/bench_resenc.py (PyTorch AMP). Built and run by
 * tests/gpu/run-all; by hand, from the source tree root after a
 * --with-cuda build in build-cuda:
 *
 *     gcc -O2 -std=c11 -Isdk/include -Ibuild-cuda/sdk/include -Ikernels/cuda -I/usr/local/cuda/include \
 *         tests/gpu/bench_resenc_cuda.c -o /tmp/bench_resenc_cuda build-cuda/kernels/cuda/.libs/libaxcuda.a \
 *         -Lbuild-cuda/sdk/.libs -laxon -L/usr/local/cuda/lib64 -lcudart -lcublas -lcudnn -lstdc++ -ldl
 *     AXON_RESENC_SO=build-cuda/plugins/archs/resenc_unet/.libs/resenc_unet.so \
 *         /tmp/bench_resenc_cuda [preset [N [S [steps [dtype]]]]]
 *
 * Defaults: preset L, N = 2, S = 160, 5 timed steps after 2 warm-up steps,
 * mode bf16: PyTorch-AMP-style mixed precision — f32 master weights, the
 * forward in a bf16 autocast region (axon/amp.h: convolutions in bf16 on
 * cuDNN with f32 accumulation, norms and the loss in f32), backward and
 * the optimizer in f32; `f32` runs everything in f32 (TF32 convolutions).
 * The network is built on the CPU by the plugin and moved with
 * ax_module_to_device; nnU-Net's optimizer (SGD lr 1e-2, momentum 0.99,
 * nesterov, weight decay 3e-5) is axon/optim.h's, stepping the parameters
 * on the GPU. No gradient clipping, as in bench_resenc.py.
 *
 * Prints the median/min step time, the peak of the CUDA memory pool, and
 * MFU when AXON_BENCH_FLOPS (one step's FLOPs, from the PyTorch run) is set.
 */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <axon/amp.h>
#include <axon/autograd.h>
#include <axon/kernels.h>
#include <axon/loss.h>
#include <axon/nn.h>
#include <axon/optim.h>
#include <axon/plugin.h>

#include "cuda_internal.h"

#define MAX_STEPS 50

static const ax_device k_gpu = {AX_DEVICE_CUDA, 0};

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int fail(const char *what) {
    fprintf(stderr, "bench_resenc_cuda: %s: %s\n", what, ax_error_message());
    return 1;
}

/* One step: forward (in a bf16 autocast region when amp), MSE loss in f32,
 * backward, SGD; the loss value read back waits for the step. */
static ax_status train_step(ax_module *net, ax_optim *opt, bool amp, const ax_tensor *x, const ax_tensor *target,
                            double *loss_value) {
    ax_tensor *y = NULL, *loss = NULL, *lc = NULL;
    ax_optim_zero_grad(opt);
    ax_status st = amp ? ax_autocast_begin(AX_DTYPE_BF16) : AX_OK;
    if (st == AX_OK) st = ax_module_forward(net, &y, x);
    if (st == AX_OK) st = ax_mse_loss(&loss, y, target, NULL, AX_LOSS_MEAN);
    if (amp) ax_autocast_end();
    ax_tensor_free(y);
    if (st == AX_OK) st = ax_backward(loss, NULL);
    if (st == AX_OK) st = ax_optim_step(opt);
    if (st == AX_OK) st = ax_tensor_to_device(&lc, loss, AX_CPU); /* waits for the step */
    if (st == AX_OK) *loss_value = ax_tensor_get(lc, 0);
    ax_tensor_free(loss);
    ax_tensor_free(lc);
    return st;
}

int main(int argc, char **argv) {
    const char *preset = argc > 1 ? argv[1] : "L";
    int64_t n = argc > 2 ? atoll(argv[2]) : 2, s = argc > 3 ? atoll(argv[3]) : 160;
    int steps = argc > 4 ? atoi(argv[4]) : 5;
    ax_dtype dt = argc > 5 ? ax_dtype_parse(argv[5]) : AX_DTYPE_BF16;
    if (n < 1 || s < 8 || steps < 1 || steps > MAX_STEPS || (dt != AX_DTYPE_F32 && dt != AX_DTYPE_BF16)) {
        fprintf(stderr, "usage: %s [preset [N [S [steps 1..%d [f32|bf16]]]]]\n", argv[0], MAX_STEPS);
        return 2;
    }
    char why[256] = "";
    if (ax_cuda_probe(why, sizeof why) != AX_OK) {
        printf("bench_resenc_cuda: no usable CUDA device: %s\n", why);
        return 77;
    }
    if (ax_cuda_register() != AX_OK) return fail("registering the CUDA backend");
    const char *so = getenv("AXON_RESENC_SO");
    if (!so || !*so) so = "build-cuda/plugins/archs/resenc_unet/.libs/resenc_unet.so";
    void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "bench_resenc_cuda: cannot load %s: %s (set AXON_RESENC_SO)\n", so, dlerror());
        return 1;
    }
    ax_plugin_entry_fn entry;
    *(void **)&entry = dlsym(lib, AX_PLUGIN_ENTRY_SYMBOL);
    const ax_plugin *plugin = entry ? entry()[0] : NULL;
    if (!plugin || plugin->kind != AX_PLUGIN_ARCH || ax_plugin_check(plugin) != AX_OK) {
        fprintf(stderr, "bench_resenc_cuda: %s is not an ARCH plugin\n", so);
        return 1;
    }
    const ax_arch_ops *ops = plugin->ops;
    ax_params *params = NULL;
    void *self = NULL;
    if (ax_params_new(&params, plugin->params, "resenc_unet") != AX_OK ||
        ax_params_set_string(params, "preset", preset) != AX_OK || ops->create(&self, params) != AX_OK)
        return fail("creating the arch");
    ax_rng rng;
    ax_rng_init(&rng, 1234, 0);
    ax_module *net = NULL;
    if (ops->build(self, &net, 1, 1, &rng) != AX_OK) return fail("building the network");
    if (ax_module_to_device(net, k_gpu) != AX_OK) return fail("moving the network");
    ax_named_tensors ps = {0};
    if (ax_module_parameters(net, &ps) != AX_OK) return fail("parameters");
    int64_t n_weights = 0;
    for (size_t i = 0; i < ps.n; i++) n_weights += ax_tensor_numel(ps.tensors[i]);
    ax_optim *opt = NULL;
    if (ax_sgd_new(&opt, ps.n, ps.tensors, (const char *const *)ps.names, 1e-2, 0.99, 0, 3e-5, true) != AX_OK)
        return fail("the optimizer");
    ax_tensor *x0, *x, *t0, *target;
    int64_t shape[5] = {n, 1, s, s, s};
    if (ax_tensor_randn(&x0, 5, shape, AX_DTYPE_F32, 1, 0) != AX_OK ||
        ax_tensor_randn(&t0, 5, shape, AX_DTYPE_F32, 2, 0) != AX_OK ||
        ax_tensor_to_device(&x, x0, k_gpu) != AX_OK || ax_tensor_to_device(&target, t0, k_gpu) != AX_OK)
        return fail("making the input");
    printf("axon resenc_unet %s (%lld weights) N=%lld 1x%lld^3 %s on CUDA\n", preset, (long long)n_weights, (long long)n,
           (long long)s, dt == AX_DTYPE_BF16 ? "bf16 autocast (f32 master weights)" : "f32");
    fflush(stdout);
    double ms[MAX_STEPS], loss = 0;
    size_t peak = 0;
    for (int it = -2; it < steps; it++) {
        if (it == 0 && ax_cuda_memory(0, NULL, NULL, true) != AX_OK) return fail("memory stats");
        double t1 = now_ms();
        if (train_step(net, opt, dt == AX_DTYPE_BF16, x, target, &loss) != AX_OK)
            return fail("training step");
        double t2 = now_ms();
        if (it < 0)
            printf("axon warm-up step %d: %.1f ms, loss %.4f\n", it + 3, t2 - t1, loss);
        else
            ms[it] = t2 - t1;
        fflush(stdout);
    }
    if (ax_cuda_memory(0, NULL, &peak, false) != AX_OK) return fail("memory stats");
    qsort(ms, (size_t)steps, sizeof *ms, cmp_d);
    double med = ms[steps / 2];
    const char *fl = getenv("AXON_BENCH_FLOPS"), *pk = getenv("PEAK_TFLOPS");
    double flops = fl ? atof(fl) : NAN, peak_tf = pk ? atof(pk) : 989.0;
    printf("axon resenc %s N=%lld 1x%lld^3 %s: loss %.4f, %d steps: median %.1f ms, min %.1f ms, peak %.0f MiB "
           "(CUDA pool), MFU %.1f%% (of %.0f TFLOP/s, FLOPs from the PyTorch run)\n",
           preset, (long long)n, (long long)s, ax_dtype_name(dt), loss, steps, med, ms[0], (double)peak / 1048576.0,
           100.0 * flops / (med / 1e3) / (peak_tf * 1e12), peak_tf);
    ax_optim_free(opt);
    ax_named_tensors_clear(&ps);
    ax_tensor_free(x0);
    ax_tensor_free(x);
    ax_tensor_free(t0);
    ax_tensor_free(target);
    ax_module_free(net);
    ops->destroy(self);
    ax_params_free(params);
    return 0;
}
