/* Benchmark: ax_linear_act forward + backward, [M, 512] x [512, 512]^T + b
 * with the tanh GELU (one fused op), against tests/bench/bench_linear.py
 * (F.linear + F.gelu(approximate="tanh")) with the same size and threads.
 * Not built by `make check`. From the source tree root, after building:
 *
 *     gcc -O2 -std=c11 -Isdk/include -Ibuild/sdk/include tests/bench/bench_linear.c -o /tmp/bench_linear \
 *         -Lbuild/sdk/.libs -laxon -Wl,-rpath,$PWD/build/sdk/.libs
 *     /tmp/bench_linear [threads [M [iters]]]
 *     python3 tests/bench/bench_linear.py [same arguments]
 *
 * Defaults: 2 threads, M = 4096, 20 timed iterations after two warm-ups.
 * One iteration: y = gelu_tanh(x w^T + b), then backward of sum(y * g) for a
 * fixed g into x, w and b (gradients reset each time). Prints the median
 * and minimum in milliseconds and peak RSS.
 */
#include "bench_util.h" /* first: sets _POSIX_C_SOURCE */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <axon/axon.h>

static int ax_fail(void) {
    fprintf(stderr, "bench_linear: %s\n", ax_error_message());
    return 1;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int64_t m = argc > 2 ? atoll(argv[2]) : 4096, c = 512;
    int iters = argc > 3 ? atoi(argv[3]) : 20;
    if (threads < 1 || m < 1 || iters < 1) {
        fprintf(stderr, "usage: bench_linear [threads [M [iters]]]\n");
        return 2;
    }
    ax_set_num_threads(threads);
    ax_tensor *x, *w, *b, *g, *y;
    if (ax_tensor_randn(&x, 2, (int64_t[]){m, c}, AX_DTYPE_F32, 1, 0) ||
        ax_tensor_randn(&w, 2, (int64_t[]){c, c}, AX_DTYPE_F32, 2, 0) ||
        ax_tensor_randn(&b, 1, &c, AX_DTYPE_F32, 3, 0) || ax_tensor_randn(&g, 2, (int64_t[]){m, c}, AX_DTYPE_F32, 4, 0))
        return ax_fail();
    ax_tensor_set_requires_grad(x, true);
    ax_tensor_set_requires_grad(w, true);
    ax_tensor_set_requires_grad(b, true);
    double *t = calloc((size_t)iters, sizeof *t);
    for (int it = -2; it < iters; it++) {
        ax_tensor_zero_grad(x), ax_tensor_zero_grad(w), ax_tensor_zero_grad(b);
        double t0 = ax_bench_now_ms();
        if (ax_linear_act(&y, x, w, b, AX_LINEAR_ACT_GELU_TANH) != AX_OK || ax_backward(y, g) != AX_OK) return ax_fail();
        double t1 = ax_bench_now_ms();
        ax_tensor_free(y);
        if (it >= 0) t[it] = t1 - t0;
    }
    ax_bench_sort(t, iters);
    printf("axon linear+gelu_tanh fwd+bwd [%lld, %lld] x [%lld, %lld], %d threads: median %.2f ms, min %.2f ms, "
           "peak RSS %ld MiB\n",
           (long long)m, (long long)c, (long long)c, (long long)c, ax_num_threads(), t[iters / 2], t[0],
           ax_bench_peak_rss_mib());
    ax_tensor_free(x), ax_tensor_free(w), ax_tensor_free(b), ax_tensor_free(g);
    free(t);
    return 0;
}
