/* Benchmark: the threaded loader on the reference MAE pre-training pipeline,
 * patches per second. One preprocessed 1 mm brain (a cache folder, see
 * bench_loader.sh), 160^3 patches, the `spatial` AUG with its defaults
 * (rotation +-30 deg per axis with p 0.2, scaling 0.7..1.4 with p 0.2, no
 * elastic) and `mirror` on all axes, batch 2. Prints one line per thread
 * count, wall-clock and CPU-time rates (the process's CPU seconds, all
 * workers, so "patches/CPU-s" is the rate per busy core); bench_loader.py
 * measures batchgenerators and batchgeneratorsv2 on the same case and
 * bench_loader.sh runs both. Not part of `make check`.
 *
 * Build (from the source tree root, after building in ./build):
 *     gcc -O2 -std=c11 -D_DEFAULT_SOURCE -Isdk/include -Ibuild/sdk/include tests/bench/bench_loader.c \
 *         -Lbuild/sdk/.libs -laxon -Wl,-rpath,$PWD/build/sdk/.libs -ldl -o /tmp/bench_loader
 * Run:
 *     /tmp/bench_loader CACHE PLUGIN_DIR [steps=20] [patch=160] [threads=1,2]
 *     (PLUGIN_DIR holds spatial.so and mirror.so, e.g. build/plugins/augs)
 */
#include "bench_util.h" /* first: sets _POSIX_C_SOURCE */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "axon/axon.h"
#include "axon/cache.h"
#include "axon/loader.h"

/* An AUG instance from dir/<name>/.libs/<name>.so or dir/<name>.so, with
 * its default parameters. */
static ax_loader_aug load_aug(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/.libs/%s.so", dir, name, name);
    void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!so) {
        snprintf(path, sizeof path, "%s/%s.so", dir, name);
        so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
    if (!so) fprintf(stderr, "%s\n", dlerror()), exit(1);
    ax_plugin_entry_fn entry = (ax_plugin_entry_fn)dlsym(so, AX_PLUGIN_ENTRY_SYMBOL);
    if (!entry) fprintf(stderr, "%s: no entry point\n", path), exit(1);
    const ax_plugin *pl = entry()[0];
    const ax_aug_ops *ops = pl->ops;
    ax_params *params;
    AX_BENCH_CHECK(ax_params_new(&params, pl->params, name));
    AX_BENCH_CHECK(ax_params_check(params));
    void *self = NULL;
    if (ops->create) AX_BENCH_CHECK(ops->create(&self, params));
    return (ax_loader_aug){ops, self, name};
}

int main(int argc, char **argv) {
    if (argc < 3) return fprintf(stderr, "usage: bench_loader CACHE PLUGIN_DIR [steps] [patch] [threads,...]\n"), 2;
    int steps = argc > 3 ? atoi(argv[3]) : 20, patch = argc > 4 ? atoi(argv[4]) : 160;
    const char *threads_list = argc > 5 ? argv[5] : "1,2";
    if (steps < 1 || patch < 8) return fprintf(stderr, "bench_loader: steps >= 1, patch >= 8\n"), 2;
    char **paths;
    size_t n_paths;
    AX_BENCH_CHECK(ax_cache_list(argv[1], NULL, &paths, &n_paths));
    ax_loader_aug augs[2] = {load_aug(argv[2], "spatial"), load_aug(argv[2], "mirror")};
    int32_t p3[3] = {patch, patch, patch}, ext[3];
    AX_BENCH_CHECK(augs[0].ops->extent(augs[0].self, p3, ext));
    printf("case %s, patch %d^3, spatial extent %dx%dx%d\n", paths[0], patch, ext[0], ext[1], ext[2]);

    char *list = strdup(threads_list);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        ax_loader_opts o = ax_loader_opts_default();
        o.paths = (const char *const *)paths;
        o.n_paths = n_paths;
        o.patch[0] = o.patch[1] = o.patch[2] = patch;
        o.batch = 2;
        o.threads = atoi(tok);
        o.seed = 1;
        o.augs = augs;
        o.n_augs = 2;
        ax_loader *ld;
        AX_BENCH_CHECK(ax_loader_new(&ld, &o));
        ax_batch b;
        /* warm-up: the workers' scratch boxes and the batch buffers fault in */
        for (int i = 0; i < 2; i++) {
            AX_BENCH_CHECK(ax_loader_next(ld, &b));
            ax_batch_clear(&b);
        }
        double t0 = ax_bench_now(), c0 = ax_bench_process_cpu();
        for (int i = 0; i < steps; i++) {
            AX_BENCH_CHECK(ax_loader_next(ld, &b));
            ax_batch_clear(&b);
        }
        double dt = ax_bench_now() - t0, dc = ax_bench_process_cpu() - c0;
        printf("axon loader (threads %d): %d patches in %.2f s: %.2f patches/s wall, %.2f patches/CPU-s\n", o.threads,
               steps * o.batch, dt, steps * o.batch / dt, steps * o.batch / dc);
        fflush(stdout);
        ax_loader_free(ld);
    }
    free(list);
    ax_cache_paths_free(paths, n_paths);
    return 0;
}
