/* Benchmark: unmasked scaled dot-product attention, forward + backward,
 * through ax_scaled_dot_product_attention as a transformer block runs it
 * (Primus: heads of dim 64 over 3-D patch tokens), on q, k, v
 * [B=2, H=8, L=S=2048, E=64] f32:
 *
 *   fused      on the CPU: the sdpa / sdpa_backward members (tiles and an
 *              online softmax, no [L, S] buffer);
 *   composite  on a stand-in device whose table is the CPU's cut before
 *              the sdpa members (same kernels and allocator), so the
 *              front-end composes matmul + softmax + matmul as before the
 *              members existed ([B, H, L, S] scores and probabilities).
 *
 * The two alternate, so background load hits both alike; each reports its
 * median and best over `iterations` runs after one warm-up. Not part of
 * `make check`; tests/bench/bench_sdpa.sh builds it and runs it with its
 * PyTorch counterpart (bench_sdpa.py, F.scaled_dot_product_attention).
 *
 * Build (from the source tree root, after building in ./build):
 *     gcc -O2 -std=c11 -Isdk/include -Ibuild/sdk/include tests/bench/bench_sdpa.c \
 *         -Lbuild/sdk/.libs -laxon -Wl,-rpath,$PWD/build/sdk/.libs -lm -o /tmp/bench_sdpa
 * Run:
 *     ./bench_sdpa [threads=2] [iterations=5] [L=2048]
 */
#include "bench_util.h" /* first: sets _POSIX_C_SOURCE */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "axon/attention.h"
#include "axon/autograd.h"
#include "axon/kernels.h"

/* o = sdpa(q, k, v), backward of sum(o * g); forward and total seconds */
static void step(ax_tensor *q, ax_tensor *k, ax_tensor *v, const ax_tensor *g, double *t_fwd, double *t_all) {
    ax_tensor *o;
    ax_tensor_zero_grad(q), ax_tensor_zero_grad(k), ax_tensor_zero_grad(v);
    double t0 = ax_bench_now();
    AX_BENCH_CHECK(ax_scaled_dot_product_attention(&o, q, k, v, NULL, false, 0.0));
    double t1 = ax_bench_now();
    AX_BENCH_CHECK(ax_backward(o, g));
    double t2 = ax_bench_now();
    ax_tensor_free(o);
    *t_fwd = t1 - t0;
    *t_all = t2 - t0;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, iters = argc > 2 ? atoi(argv[2]) : 5;
    int64_t L = argc > 3 ? atoll(argv[3]) : 2048;
    if (threads < 1 || iters < 1 || L < 1) {
        fprintf(stderr, "usage: bench_sdpa [threads >= 1] [iterations >= 1] [L >= 1]\n");
        return 2;
    }
    ax_set_num_threads(threads);
    const ax_kernels *k = ax_cpu_kernels();
    if (!AX_KERNELS_HAS(k, sdpa) || !AX_KERNELS_HAS(k, sdpa_backward)) {
        fprintf(stderr, "bench_sdpa: this libaxon's CPU table has no sdpa members\n");
        return 1;
    }
    const int64_t shape[4] = {2, 8, L, 64};
    ax_tensor *q0, *k0, *v0, *g0;
    AX_BENCH_CHECK(ax_tensor_randn(&q0, 4, shape, AX_DTYPE_F32, 1, 0));
    AX_BENCH_CHECK(ax_tensor_randn(&k0, 4, shape, AX_DTYPE_F32, 2, 0));
    AX_BENCH_CHECK(ax_tensor_randn(&v0, 4, shape, AX_DTYPE_F32, 3, 0));
    AX_BENCH_CHECK(ax_tensor_randn(&g0, 4, shape, AX_DTYPE_F32, 4, 0));
    const ax_device k_old_dev = ax_bench_stand_in("cpu-without-sdpa", offsetof(ax_kernels, sdpa));
    ax_tensor *q = ax_bench_leaf_on(q0, AX_CPU, true), *kk = ax_bench_leaf_on(k0, AX_CPU, true),
              *v = ax_bench_leaf_on(v0, AX_CPU, true);
    ax_tensor *qo = ax_bench_leaf_on(q0, k_old_dev, true), *ko = ax_bench_leaf_on(k0, k_old_dev, true),
              *vo = ax_bench_leaf_on(v0, k_old_dev, true);
    ax_tensor *go = ax_bench_leaf_on(g0, k_old_dev, false);
    const int n = iters + 1;
    double *t = calloc((size_t)(4 * n), sizeof *t);
    if (!t) return 1;
    for (int i = 0; i < n; i++) {
        double f0, a0, f1, a1;
        step(q, kk, v, g0, &f0, &a0);
        step(qo, ko, vo, go, &f1, &a1);
        if (i < 1) continue; /* warm-up */
        int j = i - 1;
        t[0 * n + j] = f0, t[1 * n + j] = a0, t[2 * n + j] = f1, t[3 * n + j] = a1;
    }
    const char *names[2] = {"fused (sdpa members)", "composite (matmul + softmax)"};
    double med[2];
    for (int w = 0; w < 2; w++) {
        double bf, mf, bt, mt;
        ax_bench_stats(t + (2 * w) * n, iters, &bf, &mf);
        ax_bench_stats(t + (2 * w + 1) * n, iters, &bt, &mt);
        med[w] = mt;
        printf("axon %-30s B 2 H 8 L %lld E 64 threads %d: fwd %8.1f ms  fwd+bwd %8.1f ms (best %8.1f)\n", names[w],
               (long long)L, threads, mf * 1e3, mt * 1e3, bt * 1e3);
    }
    printf("axon composite/fused (medians, fwd+bwd): %.2f\n", med[1] / med[0]);
    ax_tensor *all[] = {q0, k0, v0, g0, q, kk, v, qo, ko, vo, go};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
    free(t);
    return 0;
}
