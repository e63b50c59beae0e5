/* Shared timing and measurement helpers for the C benchmarks in tests/bench
 * (not part of libaxon, not built by `make check`). Include it before any
 * system header: it asks for POSIX clocks under -std=c11.
 *
 *     #include "bench_util.h"
 *     double t0 = ax_bench_now_ms();
 *     ...
 *     t[it] = ax_bench_now_ms() - t0;
 *     double best, median;
 *     ax_bench_stats(t, iters, &best, &median);
 *     printf("... peak RSS %ld MiB\n", ax_bench_peak_rss_mib());
 */
#ifndef AX_BENCH_UTIL_H
#define AX_BENCH_UTIL_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* clock_gettime, getrusage under -std=c11 */
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "axon/autograd.h"
#include "axon/kernels.h"
#include "axon/status.h"
#include "axon/tensor.h"

/* Exits with the failing call and axon's error message: benchmarks have no
 * recovery path. */
#define AX_BENCH_CHECK(expr)                                               \
    do {                                                                   \
        if ((expr) != AX_OK) {                                             \
            fprintf(stderr, "%s failed: %s\n", #expr, ax_error_message()); \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

/* Milliseconds on clock `id` (CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID, ...). */
static inline double ax_bench_clock_ms(clockid_t id) {
    struct timespec t;
    clock_gettime(id, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Wall clock (monotonic), in milliseconds. */
static inline double ax_bench_now_ms(void) { return ax_bench_clock_ms(CLOCK_MONOTONIC); }

/* Wall clock (monotonic), in seconds. */
static inline double ax_bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of the calling thread: on a shared machine it stays close to
 * the idle wall time while the wall clock includes waiting for a core. */
static inline double ax_bench_thread_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of the whole process (all threads, user + system). */
static inline double ax_bench_process_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/* Peak resident set size of the process so far, in MiB (ru_maxrss is KiB
 * on Linux). */
static inline long ax_bench_peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024;
}

/* qsort comparator for doubles, ascending. */
static inline int ax_bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts t[0..n) ascending. */
static inline void ax_bench_sort(double *t, int n) { qsort(t, (size_t)n, sizeof *t, ax_bench_cmp_double); }

/* Best and median of n > 0 times (sorts t; median of an even count is the
 * mean of the middle two). */
static inline void ax_bench_stats(double *t, int n, double *best, double *median) {
    ax_bench_sort(t, n);
    *best = t[0];
    *median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* ---- a stand-in device: the CPU kernels without some members ------------- */

static inline ax_status ax_bench_stand_in_transfer(ax_tensor *dst, const ax_tensor *src) {
    memcpy(ax_tensor_data(dst), ax_tensor_data(src), ax_tensor_nbytes(src));
    return AX_OK;
}

/* Registers the CPU table cut before the member at byte offset `cut`
 * (offsetof(ax_kernels, member)) as the AX_DEVICE_CUDA backend and returns
 * that device: same kernels and allocator, so the front-end takes its
 * fallback for the missing members, as for a backend built before they
 * existed. One stand-in per process (the table is static). */
static inline ax_device ax_bench_stand_in(const char *name, size_t cut) {
    static ax_kernels table;
    table = *ax_cpu_kernels();
    table.name = name;
    table.transfer = ax_bench_stand_in_transfer;
    table.size = cut;
    AX_BENCH_CHECK(ax_kernels_register(AX_DEVICE_CUDA, &table));
    return (ax_device){AX_DEVICE_CUDA, 0};
}

/* A leaf copy of t on device d, requiring grad if `grad` (new reference). */
static inline ax_tensor *ax_bench_leaf_on(const ax_tensor *t, ax_device d, bool grad) {
    ax_tensor *o, *l;
    AX_BENCH_CHECK(ax_tensor_to_device(&o, t, d));
    AX_BENCH_CHECK(ax_tensor_detach(&l, o));
    ax_tensor_free(o);
    if (grad) AX_BENCH_CHECK(ax_tensor_set_requires_grad(l, true));
    return l;
}

#endif /* AX_BENCH_UTIL_H */
