/* Benchmark: ax_matmul of two N x N f32 matrices (forward only), against
 * tests/bench/bench_matmul.py (PyTorch) with the same size and threads.
 * Not built by `make check`. From the source tree root, after building:
 *
 *     gcc -O2 -std=c11 -Isdk/include -Ibuild/sdk/include tests/bench/bench_matmul.c -o /tmp/bench_matmul \
 *         -Lbuild/sdk/.libs -laxon -Wl,-rpath,$PWD/build/sdk/.libs
 *     /tmp/bench_matmul [threads [N [iters]]]
 *     python3 tests/bench/bench_matmul.py [same arguments]
 *
 * Defaults: 2 threads, N = 4096, 5 timed iterations after one warm-up.
 * Prints the median and minimum in milliseconds, GFLOP/s and peak RSS.
 */
#include "bench_util.h" /* first: sets _POSIX_C_SOURCE */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <axon/axon.h>

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int64_t n = argc > 2 ? atoll(argv[2]) : 4096;
    int iters = argc > 3 ? atoi(argv[3]) : 5;
    ax_set_num_threads(threads);
    ax_tensor *a, *b, *c;
    int64_t shape[2] = {n, n};
    if (ax_tensor_randn(&a, 2, shape, AX_DTYPE_F32, 1, 0) || ax_tensor_randn(&b, 2, shape, AX_DTYPE_F32, 2, 0)) {
        fprintf(stderr, "%s\n", ax_error_message());
        return 1;
    }
    double *t = calloc((size_t)iters, sizeof *t);
    for (int it = -1; it < iters; it++) {
        double t0 = ax_bench_now_ms();
        if (ax_matmul(&c, a, b) != AX_OK) {
            fprintf(stderr, "%s\n", ax_error_message());
            return 1;
        }
        double t1 = ax_bench_now_ms();
        ax_tensor_free(c);
        if (it >= 0) t[it] = t1 - t0;
    }
    ax_bench_sort(t, iters);
    double med = t[iters / 2];
    printf("axon matmul %lldx%lld, %d threads: median %.1f ms, min %.1f ms, %.1f GFLOP/s, peak RSS %ld MiB\n",
           (long long)n, (long long)n, ax_num_threads(), med, t[0], 2.0 * n * n * n / (t[0] * 1e6), ax_bench_peak_rss_mib());
    ax_tensor_free(a);
    ax_tensor_free(b);
    free(t);
    return 0;
}
