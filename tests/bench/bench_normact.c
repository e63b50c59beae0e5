/* Benchmark: the fused group_norm_act kernel-table members (instance norm +
 * leaky_relu(0.01), forward and backward in one kernel each) against the
 * two-kernel path they replace (group_norm, unary LEAKY_RELU in place;
 * unary_backward, group_norm_backward), on x [2, 32, 64, 64, 64] f32 with
 * affine weight/bias. Two levels:
 *
 *   kernels  the CPU table members on preallocated, already-touched
 *            tensors (no allocation, no autograd);
 *   op       ax_instance_norm_leaky_relu + ax_backward as training runs
 *            it: once on the CPU (the fused members) and once on a
 *            stand-in device whose table is the CPU's cut before the fused
 *            members (same kernels and allocator; the front-end takes its
 *            fallback, as for a backend built before the members existed).
 *
 * Fused and unfused runs alternate, so background load hits both alike;
 * each reports its best and median over `iterations` runs after two
 * warm-ups. Not part of `make check`; tests/bench/bench_normact.sh builds
 * it and runs it with its PyTorch counterpart (bench_normact.py).
 *
 * Build (from the source tree root, after building in ./build):
 *     gcc -O2 -std=c11 -Isdk/include -Ibuild/sdk/include tests/bench/bench_normact.c \
 *         -Lbuild/sdk/.libs -laxon -Wl,-rpath,$PWD/build/sdk/.libs -lm -o /tmp/bench_normact
 * Run:
 *     ./bench_normact [threads=2] [iterations=10]
 */
#include "bench_util.h" /* first: sets _POSIX_C_SOURCE */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "axon/autograd.h"
#include "axon/kernels.h"
#include "axon/norm.h"

/* One training-style step on x's device: y = op(x), backward of sum(y * g). */
static void op_step(ax_tensor *x, ax_tensor *w, ax_tensor *b, const ax_tensor *g, double *t_fwd, double *t_all) {
    ax_tensor *y;
    ax_tensor_zero_grad(x), ax_tensor_zero_grad(w), ax_tensor_zero_grad(b);
    double t0 = ax_bench_now();
    AX_BENCH_CHECK(ax_instance_norm_leaky_relu(&y, x, w, b, 1e-5, 0.01));
    double t1 = ax_bench_now();
    AX_BENCH_CHECK(ax_backward(y, g));
    double t2 = ax_bench_now();
    ax_tensor_free(y);
    *t_fwd = t1 - t0;
    *t_all = t2 - t0;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, iters = argc > 2 ? atoi(argv[2]) : 10;
    if (threads < 1 || iters < 1) {
        fprintf(stderr, "usage: bench_normact [threads >= 1] [iterations >= 1]\n");
        return 2;
    }
    ax_set_num_threads(threads);
    const ax_kernels *k = ax_cpu_kernels();
    if (!AX_KERNELS_HAS(k, group_norm_act) || !AX_KERNELS_HAS(k, group_norm_act_backward)) {
        fprintf(stderr, "bench_normact: this libaxon's CPU table has no group_norm_act members\n");
        return 1;
    }
    const int64_t xs[] = {2, 32, 64, 64, 64}, cs[] = {32}, ms[] = {2, 32};
    ax_tensor *x, *w, *b, *g, *y, *gp, *dx, *mean, *rstd, *dw, *db;
    AX_BENCH_CHECK(ax_tensor_randn(&x, 5, xs, AX_DTYPE_F32, 1, 0));
    AX_BENCH_CHECK(ax_tensor_randn(&g, 5, xs, AX_DTYPE_F32, 2, 0));
    AX_BENCH_CHECK(ax_tensor_full(&w, 1, cs, AX_DTYPE_F32, 1.0));
    AX_BENCH_CHECK(ax_tensor_full(&b, 1, cs, AX_DTYPE_F32, 0.1));
    AX_BENCH_CHECK(ax_tensor_zeros(&y, 5, xs, AX_DTYPE_F32));
    AX_BENCH_CHECK(ax_tensor_zeros(&gp, 5, xs, AX_DTYPE_F32));
    AX_BENCH_CHECK(ax_tensor_zeros(&dx, 5, xs, AX_DTYPE_F32));
    AX_BENCH_CHECK(ax_tensor_zeros(&mean, 2, ms, AX_DTYPE_F32));
    AX_BENCH_CHECK(ax_tensor_zeros(&rstd, 2, ms, AX_DTYPE_F32));
    AX_BENCH_CHECK(ax_tensor_zeros(&dw, 1, cs, AX_DTYPE_F32));
    AX_BENCH_CHECK(ax_tensor_zeros(&db, 1, cs, AX_DTYPE_F32));
    const double p[2] = {0.01, 0};
    const int n = iters + 2;
    double *tk = calloc((size_t)(8 * n), sizeof *tk); /* fused fwd, bwd; unfused fwd, bwd; op: 2 x (fwd, all) */
    if (!tk) return 1;

    /* ---- kernels */
    for (int i = 0; i < n; i++) {
        double t0 = ax_bench_now();
        AX_BENCH_CHECK(k->group_norm_act(y, mean, rstd, x, w, b, 32, 1e-5, 0.01));
        double t1 = ax_bench_now();
        AX_BENCH_CHECK(k->group_norm_act_backward(dx, dw, db, g, x, y, mean, rstd, w, 32, 0.01));
        double t2 = ax_bench_now();
        AX_BENCH_CHECK(k->group_norm(y, mean, rstd, x, w, b, 32, 1e-5));
        AX_BENCH_CHECK(k->unary(AX_UNARY_LEAKY_RELU, y, y, p));
        double t3 = ax_bench_now();
        AX_BENCH_CHECK(k->unary_backward(AX_UNARY_LEAKY_RELU, gp, g, y, y, p));
        AX_BENCH_CHECK(k->group_norm_backward(dx, dw, db, gp, x, mean, rstd, w, 32));
        double t4 = ax_bench_now();
        if (i < 2) continue; /* warm-up */
        int j = i - 2;
        tk[0 * n + j] = t1 - t0, tk[1 * n + j] = t2 - t1, tk[2 * n + j] = t3 - t2, tk[3 * n + j] = t4 - t3;
    }
    for (int j = 0; j < iters; j++) tk[4 * n + j] = tk[0 * n + j] + tk[1 * n + j], tk[5 * n + j] = tk[2 * n + j] + tk[3 * n + j];
    double bf, mf, bb, mb, bt, mt;
    const char *kn[2] = {"fused members (group_norm_act + _backward)", "two-kernel path (norm + unary each way)"};
    double med_total[2];
    for (int v = 0; v < 2; v++) {
        ax_bench_stats(tk + (2 * v) * n, iters, &bf, &mf);
        ax_bench_stats(tk + (2 * v + 1) * n, iters, &bb, &mb);
        ax_bench_stats(tk + (4 + v) * n, iters, &bt, &mt);
        med_total[v] = mt;
        printf("axon kernels %-44s threads %d: fwd %6.1f ms  bwd %6.1f ms  fwd+bwd %6.1f ms (best %6.1f)\n", kn[v],
               threads, mf * 1e3, mb * 1e3, mt * 1e3, bt * 1e3);
    }
    printf("axon kernels unfused/fused (medians, fwd+bwd): %.2f\n", med_total[1] / med_total[0]);

    /* ---- op level: CPU (fused) vs the stand-in (fallback) */
    const ax_device k_old_dev =
        ax_bench_stand_in("cpu-without-fused-norm-act", offsetof(ax_kernels, group_norm_act));
    ax_tensor *xo = ax_bench_leaf_on(x, k_old_dev, true), *wo = ax_bench_leaf_on(w, k_old_dev, true),
              *bo = ax_bench_leaf_on(b, k_old_dev, true);
    ax_tensor *go = ax_bench_leaf_on(g, k_old_dev, false);
    AX_BENCH_CHECK(ax_tensor_set_requires_grad(x, true));
    AX_BENCH_CHECK(ax_tensor_set_requires_grad(w, true));
    AX_BENCH_CHECK(ax_tensor_set_requires_grad(b, true));
    for (int i = 0; i < n; i++) {
        double f0, a0, f1, a1;
        op_step(x, w, b, g, &f0, &a0);
        op_step(xo, wo, bo, go, &f1, &a1);
        if (i < 2) continue;
        int j = i - 2;
        tk[0 * n + j] = f0, tk[1 * n + j] = a0, tk[2 * n + j] = f1, tk[3 * n + j] = a1;
    }
    const char *on[2] = {"ax_instance_norm_leaky_relu, fused members", "ax_instance_norm_leaky_relu, fallback path"};
    for (int v = 0; v < 2; v++) {
        ax_bench_stats(tk + (2 * v) * n, iters, &bf, &mf);
        ax_bench_stats(tk + (2 * v + 1) * n, iters, &bt, &mt);
        med_total[v] = mt;
        printf("axon op      %-44s threads %d: fwd %6.1f ms  fwd+bwd %6.1f ms (best %6.1f)\n", on[v], threads,
               mf * 1e3, mt * 1e3, bt * 1e3);
    }
    printf("axon op fallback/fused (medians, fwd+bwd): %.2f\n", med_total[1] / med_total[0]);
    ax_tensor *all[] = {x, w, b, g, y, gp, dx, mean, rstd, dw, db, xo, wo, bo, go};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) ax_tensor_free(all[i]);
    free(tk);
    return 0;
}
