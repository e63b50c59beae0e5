/* Benchmark: the `spatial` AUG plugin on one patch (default 160^3, one image
 * channel plus a label), rotation and scaling drawn on every call (p 1,
 * +-30 deg per axis, scale 0.7..1.4, no elastic), single thread, input cut
 * at the plugin's extent() as the loader does. Prints the median and best
 * wall and CPU time per call; compare with bench_augs.py (batchgenerators'
 * SpatialTransform, order 1 and nnU-Net's order 3, and batchgeneratorsv2's
 * SpatialTransform) on the same patch and extent, run right after on the
 * same idle machine. Not part of `make check`.
 *
 * Build (from the source tree root, after building in ./build):
 *     gcc -O2 -std=c11 -D_DEFAULT_SOURCE -Isdk/include -Ibuild/sdk/include tests/bench/bench_augs.c \
 *         -Lbuild/sdk/.libs -laxon -Wl,-rpath,$PWD/build/sdk/.libs -ldl -lm -o /tmp/bench_augs
 * Run:
 *     /tmp/bench_augs [plugin=build/plugins/augs/spatial/.libs/spatial.so] [iterations=10] [patch=160]
 *     python3 tests/bench/bench_augs.py --patch 160 --extent <E printed above>
 */
#include "bench_util.h" /* first: sets _POSIX_C_SOURCE */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "axon/axon.h"

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "build/plugins/augs/spatial/.libs/spatial.so";
    int iters = argc > 2 ? atoi(argv[2]) : 10, n = argc > 3 ? atoi(argv[3]) : 160;
    if (iters < 1 || n < 8) return fprintf(stderr, "usage: bench_augs [plugin.so] [iterations>=1] [patch>=8]\n"), 2;
    void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!so) return fprintf(stderr, "%s\n", dlerror()), 1;
    ax_plugin_entry_fn entry = (ax_plugin_entry_fn)dlsym(so, AX_PLUGIN_ENTRY_SYMBOL);
    if (!entry) return fprintf(stderr, "%s: no entry point\n", path), 1;
    const ax_plugin *pl = entry()[0];
    const ax_aug_ops *ops = pl->ops;
    ax_params *params;
    AX_BENCH_CHECK(ax_params_new(&params, pl->params, "spatial"));
    AX_BENCH_CHECK(ax_params_set_text(params, "p_rotation", "1"));
    AX_BENCH_CHECK(ax_params_set_text(params, "p_scale", "1"));
    void *self;
    AX_BENCH_CHECK(ops->create(&self, params));

    int32_t patch[3] = {n, n, n}, ext[3];
    double t0 = ax_bench_now();
    AX_BENCH_CHECK(ops->extent(self, patch, ext));
    double t_ext = ax_bench_now() - t0;
    size_t vin = (size_t)ext[0] * ext[1] * ext[2];
    float *src = malloc(vin * sizeof *src), *img = malloc(vin * sizeof *img);
    uint8_t *lsrc = malloc(vin), *lab = malloc(vin);
    if (!src || !img || !lsrc || !lab) return fprintf(stderr, "out of memory\n"), 1;
    ax_rng_fill_uniform(1, 0, 0, vin, src);
    for (size_t i = 0; i < vin; i++) lsrc[i] = (uint8_t)(src[i] * 4.0f);

    double *t = malloc((size_t)iters * sizeof *t), *tc = malloc((size_t)iters * sizeof *tc);
    for (int with_label = 1; with_label >= 0; with_label--) {
        for (int it = -1; it < iters; it++) { /* one warm-up */
            memcpy(img, src, vin * sizeof *img);
            memcpy(lab, lsrc, vin);
            ax_sample s = {.image = img, .label = with_label ? lab : NULL, .channels = 1,
                           .shape = {ext[0], ext[1], ext[2]}, .target = {n, n, n}};
            ax_rng r;
            ax_rng_init(&r, 7, (uint64_t)(it + 1));
            double a = ax_bench_now(), ac = ax_bench_thread_cpu();
            AX_BENCH_CHECK(ops->apply(self, &s, &r));
            if (it >= 0) t[it] = ax_bench_now() - a, tc[it] = ax_bench_thread_cpu() - ac;
        }
        ax_bench_sort(t, iters);
        ax_bench_sort(tc, iters);
        printf("axon spatial %s: patch %d^3 from extent %dx%dx%d, wall median %.1f best %.1f ms, "
               "cpu median %.1f best %.1f ms (%d runs)\n",
               with_label ? "image+label" : "image      ", n, ext[0], ext[1], ext[2], 1e3 * t[iters / 2],
               1e3 * t[0], 1e3 * tc[iters / 2], 1e3 * tc[0], iters);
    }
    printf("axon spatial extent(): %.2f ms\n", 1e3 * t_ext);
    ops->destroy(self);
    ax_params_free(params);
    free(t);
    free(tc);
    free(src);
    free(img);
    free(lsrc);
    free(lab);
    dlclose(so);
    return 0;
}
