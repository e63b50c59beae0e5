/* Benchmark: instance norm + leaky relu (ResEnc U-Net's norm/nonlin pair),
 * forward and forward+backward, on x [2, 32, 64, 64, 64] f32 with affine
 * weight/bias; also the norm alone. Best of `iterations` runs after two
 * warm-ups; each run allocates its outputs afresh, as training does. Not
 * part of `make check`; compare with bench_norm.py (same shapes and thread
 * count in PyTorch), run right after on the same (idle) machine.
 *
 * Build (from the source tree root, after building in ./build):
 *     gcc -O2 -std=c11 -fopenmp -Isdk/include -Ibuild/sdk/include tests/bench/bench_norm.c \
 *         -Lbuild/sdk/.libs -laxon -Wl,-rpath,$PWD/build/sdk/.libs -lm -o /tmp/bench_norm
 * Run:
 *     ./bench_norm [threads=2] [iterations=10]
 */
#include "bench_util.h" /* first: sets _POSIX_C_SOURCE */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "axon/kernels.h"
#include "axon/norm.h"

typedef enum { FUSED, COMPOSED, NORM_ONLY } variant;

static void step(variant v, const ax_tensor *x, const ax_tensor *w, const ax_tensor *b, const ax_tensor *g,
                 double *t_fwd, double *t_all) {
    ax_tensor *y, *h = NULL;
    double t0 = ax_bench_now();
    if (v == FUSED) {
        AX_BENCH_CHECK(ax_instance_norm_leaky_relu(&y, x, w, b, 1e-5, 0.01));
    } else if (v == NORM_ONLY) {
        AX_BENCH_CHECK(ax_instance_norm(&y, x, w, b, 1e-5));
    } else {
        AX_BENCH_CHECK(ax_instance_norm(&h, x, w, b, 1e-5));
        AX_BENCH_CHECK(ax_leaky_relu(&y, h, 0.01));
    }
    double t1 = ax_bench_now();
    AX_BENCH_CHECK(ax_backward(y, g));
    double t2 = ax_bench_now();
    ax_tensor_free(y);
    ax_tensor_free(h);
    *t_fwd = t1 - t0;
    *t_all = t2 - t0;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, iters = argc > 2 ? atoi(argv[2]) : 10;
    ax_set_num_threads(threads);
    const int64_t xs[] = {2, 32, 64, 64, 64}, cs[] = {32};
    ax_tensor *x, *w, *b, *g;
    AX_BENCH_CHECK(ax_tensor_randn(&x, 5, xs, AX_DTYPE_F32, 1, 0));
    AX_BENCH_CHECK(ax_tensor_randn(&g, 5, xs, AX_DTYPE_F32, 2, 0));
    AX_BENCH_CHECK(ax_tensor_full(&w, 1, cs, AX_DTYPE_F32, 1.0));
    AX_BENCH_CHECK(ax_tensor_full(&b, 1, cs, AX_DTYPE_F32, 0.1));
    AX_BENCH_CHECK(ax_tensor_set_requires_grad(x, true));
    AX_BENCH_CHECK(ax_tensor_set_requires_grad(w, true));
    AX_BENCH_CHECK(ax_tensor_set_requires_grad(b, true));
    const char *names[] = {"fused ax_instance_norm_leaky_relu", "ax_instance_norm + ax_leaky_relu",
                           "ax_instance_norm alone"};
    for (int v = FUSED; v <= NORM_ONLY; v++) {
        double best_f = 1e30, best_a = 1e30, tf, ta;
        for (int i = 0; i < iters + 2; i++) {
            ax_tensor_zero_grad(x), ax_tensor_zero_grad(w), ax_tensor_zero_grad(b);
            step((variant)v, x, w, b, g, &tf, &ta);
            if (i < 2) continue; /* warm-up */
            if (tf < best_f) best_f = tf;
            if (ta < best_a) best_a = ta;
        }
        printf("axon %-36s threads %d: fwd %7.1f ms  fwd+bwd %7.1f ms\n", names[v], threads, best_f * 1e3,
               best_a * 1e3);
    }
    /* The kernels alone on preallocated, already-touched outputs: what the
     * ops cost without allocation (page faults) and autograd. */
    const ax_kernels *k = ax_cpu_kernels();
    const int64_t ms[] = {2, 32};
    ax_tensor *y, *gp, *dx, *mean, *rstd, *dw, *db;
    AX_BENCH_CHECK(ax_tensor_zeros(&y, 5, xs, AX_DTYPE_F32));
    AX_BENCH_CHECK(ax_tensor_zeros(&gp, 5, xs, AX_DTYPE_F32));
    AX_BENCH_CHECK(ax_tensor_zeros(&dx, 5, xs, AX_DTYPE_F32));
    AX_BENCH_CHECK(ax_tensor_zeros(&mean, 2, ms, AX_DTYPE_F32));
    AX_BENCH_CHECK(ax_tensor_zeros(&rstd, 2, ms, AX_DTYPE_F32));
    AX_BENCH_CHECK(ax_tensor_zeros(&dw, 1, cs, AX_DTYPE_F32));
    AX_BENCH_CHECK(ax_tensor_zeros(&db, 1, cs, AX_DTYPE_F32));
    const double p[2] = {0.01, 0};
    double best[4] = {1e30, 1e30, 1e30, 1e30};
    for (int i = 0; i < iters + 2; i++) {
        double t[5];
        t[0] = ax_bench_now();
        AX_BENCH_CHECK(k->group_norm(y, mean, rstd, x, w, b, 32, 1e-5));
        t[1] = ax_bench_now();
        AX_BENCH_CHECK(k->unary(AX_UNARY_LEAKY_RELU, y, y, p));
        t[2] = ax_bench_now();
        AX_BENCH_CHECK(k->unary_backward(AX_UNARY_LEAKY_RELU, gp, g, y, y, p));
        t[3] = ax_bench_now();
        AX_BENCH_CHECK(k->group_norm_backward(dx, dw, db, gp, x, mean, rstd, w, 32));
        t[4] = ax_bench_now();
        for (int j = 0; j < 4 && i >= 2; j++)
            if (t[j + 1] - t[j] < best[j]) best[j] = t[j + 1] - t[j];
    }
    printf("axon kernels only, threads %d: group_norm %.1f ms, leaky_relu %.1f ms, leaky_relu backward %.1f ms, "
           "group_norm_backward %.1f ms\n",
           threads, best[0] * 1e3, best[1] * 1e3, best[2] * 1e3, best[3] * 1e3);
    ax_tensor *all[] = {x, w, b, g, y, gp, dx, mean, rstd, dw, db};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
    return 0;
}
