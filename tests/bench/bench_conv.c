/* Benchmark: ax_conv3d forward + backward (dx, dw, db through autograd),
 * against tests/bench/bench_conv.py (PyTorch) with the same shapes and
 * thread count. Not built by `make check`. From the source tree root, after
 * building libaxon in ./build:
 *
 *     gcc -O2 -std=c11 -fopenmp -Isdk/include -Ibuild/sdk/include tests/bench/bench_conv.c \
 *         -o /tmp/bench_conv -Lbuild/sdk/.libs -laxon -Wl,-rpath,$PWD/build/sdk/.libs
 *     /tmp/bench_conv [threads [N [C [S [iters [transposed]]]]]]
 *     python3 tests/bench/bench_conv.py [same arguments]
 *
 * Defaults: 2 threads, N=2, 32 -> 32 channels, 64^3, k=3, padding 1, 5
 * timed iterations after one warm-up. transposed=1 instead times the U-Net
 * upsampling conv_transpose3d k=2 s=2 from S/2 to S. Prints the median and
 * the minimum of each phase in milliseconds of wall time, and "cpu": the
 * process's CPU time for forward + backward (all threads; spin-waiting
 * included); on a busy machine, compare single-thread cpu and wall minima.
 */
#include "bench_util.h" /* first: sets _POSIX_C_SOURCE */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <axon/axon.h>

static void ax_report(const char *what, double *ms, int n) {
    ax_bench_sort(ms, n);
    printf("%-8s median %9.1f ms   min %9.1f ms\n", what, ms[n / 2], ms[0]);
}

#define AX_CHECK(call)                                                      \
    do {                                                                    \
        if ((call) != AX_OK) {                                              \
            fprintf(stderr, "bench_conv: %s\n", ax_error_message());         \
            return 1;                                                       \
        }                                                                   \
    } while (0)

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int64_t n = argc > 2 ? atoll(argv[2]) : 2, c = argc > 3 ? atoll(argv[3]) : 32, s = argc > 4 ? atoll(argv[4]) : 64;
    int iters = argc > 5 ? atoi(argv[5]) : 5;
    int transposed = argc > 6 ? atoi(argv[6]) : 0;
    if (iters < 1 || iters > 100) iters = 5;
    ax_set_num_threads(threads);
    ax_conv_params p = ax_conv_params_default();
    int64_t k = 3, in = s;
    if (transposed) {
        k = 2;
        in = s / 2;
        for (int d = 0; d < 3; d++) p.stride[d] = 2;
    } else {
        for (int d = 0; d < 3; d++) p.padding[d] = 1;
    }
    ax_tensor *x, *w, *b, *y, *g;
    AX_CHECK(ax_tensor_randn(&x, 5, (int64_t[]){n, c, in, in, in}, AX_DTYPE_F32, 1, 0));
    AX_CHECK(ax_tensor_randn(&w, 5, (int64_t[]){c, c, k, k, k}, AX_DTYPE_F32, 2, 0));
    AX_CHECK(ax_tensor_randn(&b, 1, (int64_t[]){c}, AX_DTYPE_F32, 3, 0));
    AX_CHECK(ax_tensor_randn(&g, 5, (int64_t[]){n, c, s, s, s}, AX_DTYPE_F32, 4, 0));
    AX_CHECK(ax_tensor_set_requires_grad(x, true));
    AX_CHECK(ax_tensor_set_requires_grad(w, true));
    AX_CHECK(ax_tensor_set_requires_grad(b, true));
    double fwd[100], bwd[100], tot[100], cpu[100];
    printf("axon %s N=%lld %lld->%lld ch, %lld^3 -> %lld^3, k=%lld, %d threads\n",
           transposed ? "conv_transpose3d" : "conv3d", (long long)n, (long long)c, (long long)c, (long long)in,
           (long long)s, (long long)k, ax_num_threads());
    for (int it = -1; it < iters; it++) {
        ax_tensor_zero_grad(x);
        ax_tensor_zero_grad(w);
        ax_tensor_zero_grad(b);
        double c0 = ax_bench_clock_ms(CLOCK_PROCESS_CPUTIME_ID), t0 = ax_bench_now_ms();
        AX_CHECK(transposed ? ax_conv_transpose3d(&y, x, w, b, &p) : ax_conv3d(&y, x, w, b, &p));
        double t1 = ax_bench_now_ms();
        AX_CHECK(ax_backward(y, g));
        double t2 = ax_bench_now_ms(), c2 = ax_bench_clock_ms(CLOCK_PROCESS_CPUTIME_ID);
        ax_tensor_free(y);
        if (it < 0) continue;
        fwd[it] = t1 - t0;
        bwd[it] = t2 - t1;
        tot[it] = t2 - t0;
        cpu[it] = c2 - c0;
    }
    ax_report("forward", fwd, iters);
    ax_report("backward", bwd, iters);
    ax_report("total", tot, iters);
    ax_report("cpu", cpu, iters);
    ax_tensor_free(x);
    ax_tensor_free(w);
    ax_tensor_free(b);
    ax_tensor_free(g);
    return 0;
}
