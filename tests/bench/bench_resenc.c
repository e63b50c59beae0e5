/* Benchmark: training steps of the resenc_unet ARCH plugin (nnU-Net's
 * ResidualEncoderUNet) against tests/bench/bench_resenc.py (the same network
 * from dynamic-network-architectures in PyTorch, same optimizer, same
 * thread count). The plugin is loaded as the host loads it (dlopen +
 * ax_plugin_entry), so this measures the shipped module tree. Not built by
 * `make check`. From the source tree root, after building ./build:
 *
 *     gcc -O2 -std=c11 -fopenmp -Isdk/include -Ibuild/sdk/include tests/bench/bench_resenc.c \
 *         -o /tmp/bench_resenc -Lbuild/sdk/.libs -laxon -Wl,-rpath,$PWD/build/sdk/.libs
 *     /tmp/bench_resenc [threads [preset [N [S [steps]]]]]
 *     python3 tests/bench/bench_resenc.py [same arguments]
 *
 * Defaults: 2 threads, preset S, N = 2, S = 64, 3 timed steps after one
 * warm-up step. The reference rows: `2 S 2 64` and `2 L 1 96`. S must be a
 * multiple of the preset's divisor (tiny 8, S/M 16, L 32). The plugin file
 * is $AXON_RESENC_SO, else build/plugins/archs/resenc_unet/.libs/resenc_unet.so.
 *
 * Network: resenc_unet with the preset, 1 input and 1 output channel,
 * nnU-Net's initialisation (the plugin's build()); loss: MSE against a
 * fixed random target; SGD lr 1e-2, momentum 0.99, nesterov, weight decay
 * 3e-5 (nnU-Net's). A step is zero_grad + forward + loss + backward + SGD
 * step. Prints the median and minimum wall time per step and the peak RSS
 * (getrusage ru_maxrss) before the first step and after the last, in the
 * format of bench_unet (run_all.sh's "unet" parser reads it).
 */
#include "bench_util.h" /* first: sets _POSIX_C_SOURCE */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <axon/autograd.h>
#include <axon/kernels.h>
#include <axon/loss.h>
#include <axon/optim.h>
#include <axon/plugin.h>

#define RESENC_MAX_STEPS 100

static int resenc_fail(const char *what) {
    fprintf(stderr, "bench_resenc: %s: %s\n", what, ax_error_message());
    return 1;
}

static ax_status resenc_step(ax_module *net, ax_optim *opt, const ax_tensor *x, const ax_tensor *target,
                             double *loss_value) {
    ax_tensor *y = NULL, *loss = NULL;
    ax_optim_zero_grad(opt);
    ax_status st = ax_module_forward(net, &y, x);
    if (st == AX_OK) st = ax_mse_loss(&loss, y, target, NULL, AX_LOSS_MEAN);
    ax_tensor_free(y); /* the graph keeps what backward needs */
    if (st == AX_OK) *loss_value = ax_tensor_get(loss, 0);
    if (st == AX_OK) st = ax_backward(loss, NULL);
    ax_tensor_free(loss);
    if (st == AX_OK) st = ax_optim_step(opt);
    return st;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    const char *preset = argc > 2 ? argv[2] : "S";
    int64_t n = argc > 3 ? atoll(argv[3]) : 2, s = argc > 4 ? atoll(argv[4]) : 64;
    int steps = argc > 5 ? atoi(argv[5]) : 3;
    if (threads < 1 || n < 1 || s < 8 || steps < 1 || steps > RESENC_MAX_STEPS) {
        fprintf(stderr, "usage: %s [threads>=1 [preset tiny|S|M|L [N>=1 [S [steps 1..%d]]]]]\n", argv[0],
                RESENC_MAX_STEPS);
        return 2;
    }
    ax_set_num_threads(threads);
    const char *so = getenv("AXON_RESENC_SO");
    if (!so || !*so) so = "build/plugins/archs/resenc_unet/.libs/resenc_unet.so";
    void *lib = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "bench_resenc: cannot load %s: %s (set AXON_RESENC_SO)\n", so, dlerror());
        return 1;
    }
    ax_plugin_entry_fn entry;
    *(void **)&entry = dlsym(lib, AX_PLUGIN_ENTRY_SYMBOL);
    const ax_plugin *plugin = entry ? entry()[0] : NULL;
    if (!plugin || plugin->kind != AX_PLUGIN_ARCH || ax_plugin_check(plugin) != AX_OK) {
        fprintf(stderr, "bench_resenc: %s is not an ARCH plugin\n", so);
        return 1;
    }
    const ax_arch_ops *ops = plugin->ops;
    ax_params *params = NULL;
    void *self = NULL;
    if (ax_params_new(&params, plugin->params, "resenc_unet") != AX_OK ||
        ax_params_set_string(params, "preset", preset) != AX_OK || ops->create(&self, params) != AX_OK)
        return resenc_fail("creating the arch");
    ax_arch_plan plan;
    if (ops->plan(self, &plan) != AX_OK) return resenc_fail("plan");
    if (s % plan.divisor[0] != 0) {
        fprintf(stderr, "bench_resenc: S = %lld is not a multiple of %d (preset %s)\n", (long long)s,
                plan.divisor[0], preset);
        return 2;
    }

    ax_rng rng;
    ax_rng_init(&rng, 1234, 0);
    ax_module *net = NULL;
    if (ops->build(self, &net, 1, 1, &rng) != AX_OK) return resenc_fail("building the network");
    ax_named_tensors ps = {0};
    if (ax_module_parameters(net, &ps) != AX_OK) return resenc_fail("parameters");
    int64_t n_weights = 0;
    for (size_t i = 0; i < ps.n; i++) n_weights += ax_tensor_numel(ps.tensors[i]);
    ax_tensor *x = NULL, *target = NULL;
    int64_t shape[5] = {n, 1, s, s, s};
    if (ax_tensor_randn(&x, 5, shape, AX_DTYPE_F32, 1, 0) != AX_OK ||
        ax_tensor_randn(&target, 5, shape, AX_DTYPE_F32, 2, 0) != AX_OK)
        return resenc_fail("making the input");
    ax_optim *opt = NULL;
    if (ax_sgd_new(&opt, ps.n, ps.tensors, (const char *const *)ps.names, 1e-2, 0.99, 0, 3e-5, true) != AX_OK)
        return resenc_fail("making the optimizer");

    printf("axon resenc_unet %s, %lld parameters, N=%lld 1x%lld^3, %d threads\n", preset, (long long)n_weights,
           (long long)n, (long long)s, ax_num_threads());
    long rss_before = ax_bench_peak_rss_mib();
    double ms[RESENC_MAX_STEPS], loss = 0;
    for (int it = -1; it < steps; it++) {
        double t0 = ax_bench_now_ms();
        if (resenc_step(net, opt, x, target, &loss) != AX_OK) return resenc_fail("training step");
        double t1 = ax_bench_now_ms();
        if (it < 0) {
            printf("axon resenc initial loss %.4f (warm-up step %.1f ms, peak RSS %ld MiB)\n", loss, t1 - t0,
                   ax_bench_peak_rss_mib());
            fflush(stdout);
        } else {
            ms[it] = t1 - t0;
        }
    }
    long rss_after = ax_bench_peak_rss_mib();
    printf("axon resenc final loss %.4f\n", loss);
    ax_bench_sort(ms, steps);
    printf("axon resenc %s N=%lld 1x%lld^3, %d threads, %d steps: median %.1f ms, min %.1f ms, "
           "peak RSS %ld MiB (before training %ld MiB)\n",
           preset, (long long)n, (long long)s, ax_num_threads(), steps, ms[steps / 2], ms[0], rss_after, rss_before);
    ax_optim_free(opt);
    ax_named_tensors_clear(&ps);
    ax_tensor_free(x);
    ax_tensor_free(target);
    ax_module_free(net);
    ops->destroy(self);
    ax_params_free(params);
    return 0;
}
