/* Benchmark: read + reorient to RAS + z-score of a NIfTI volume (default
 * mricron-data's ch2better.nii.gz: 301 x 370 x 316 u8, gzip), the first
 * step of every training case, against tests/bench/bench_nifti.py (nibabel
 * + numpy: nib.load, as_closest_canonical, get_fdata(float32), (x - mean) /
 * std). Not built by `make check`. From the source tree root, after building:
 *
 *     gcc -O2 -std=c11 -fopenmp -Isdk/include -Ibuild/sdk/include tests/bench/bench_nifti.c \
 *         -o /tmp/bench_nifti -Lbuild/sdk/.libs -laxon -Wl,-rpath,$PWD/build/sdk/.libs -lm
 *     /tmp/bench_nifti [threads [iters [FILE]]]
 *     python3 tests/bench/bench_nifti.py [same arguments]
 *
 * Defaults: 2 threads, 10 timed iterations after one warm-up (the file is
 * then in the page cache for both sides). Prints the median and minimum
 * wall time in milliseconds, the read share of it, the median process CPU
 * time (all threads; steadier than wall time on a busy machine), a
 * checksum of the result (the same on both sides to ~1e-6) and the peak
 * RSS.
 */
#include "bench_util.h" /* first: sets _POSIX_C_SOURCE */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <axon/axon.h>
#include <axon/volume.h>

/* In place (x - mean) / max(std, 1e-8) over all voxels, as nnU-Net's
 * ZScoreNormalization without a mask. One pass for the moments: float
 * partial sums over blocks of 4096 voxels (vectorised by `omp simd`),
 * accumulated in double; then one pass to normalise. */
static void ax_zscore(float *x, int64_t n) {
    const int64_t blk = 4096, nb = (n + blk - 1) / blk;
    double sum = 0, ss = 0;
#pragma omp parallel for reduction(+ : sum, ss) schedule(static)
    for (int64_t b = 0; b < nb; b++) {
        const int64_t lo = b * blk, hi = lo + blk < n ? lo + blk : n;
        float s = 0, q = 0;
#pragma omp simd reduction(+ : s, q)
        for (int64_t i = lo; i < hi; i++) {
            s += x[i];
            q += x[i] * x[i];
        }
        sum += s;
        ss += q;
    }
    const double mean = sum / (double)n, var = ss / (double)n - mean * mean;
    const double sd = sqrt(var > 0 ? var : 0);
    const float m = (float)mean, inv = (float)(1.0 / (sd > 1e-8 ? sd : 1e-8));
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) x[i] = (x[i] - m) * inv;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int iters = argc > 2 ? atoi(argv[2]) : 10;
    const char *path = argc > 3 ? argv[3] : "/usr/share/mricron/templates/ch2better.nii.gz";
    if (iters < 1) iters = 1;
    ax_set_num_threads(threads);
    double *ts = calloc((size_t)iters, sizeof *ts), *tr = calloc((size_t)iters, sizeof *tr);
    double *tc = calloc((size_t)iters, sizeof *tc);
    double check = 0;
    int64_t n = 0;
    for (int it = -1; it < iters; it++) {
        double c0 = ax_bench_clock_ms(CLOCK_PROCESS_CPUTIME_ID), t0 = ax_bench_now_ms();
        ax_volume *v;
        if (ax_volume_read(&v, path, NULL) != AX_OK) {
            fprintf(stderr, "bench_nifti: %s\n", ax_error_message());
            return 1;
        }
        double t1 = ax_bench_now_ms();
        n = (int64_t)v->channels * v->shape[0] * v->shape[1] * v->shape[2];
        ax_zscore(v->data, n);
        double t2 = ax_bench_now_ms(), c2 = ax_bench_clock_ms(CLOCK_PROCESS_CPUTIME_ID);
        /* a position-weighted checksum: catches misplaced voxels too */
        check = 0;
        for (int64_t i = 0; i < n; i += 7) check += v->data[i] * (double)(i % 1000);
        ax_volume_free(v);
        if (it >= 0) ts[it] = t2 - t0, tr[it] = t1 - t0, tc[it] = c2 - c0;
    }
    ax_bench_sort(ts, iters);
    ax_bench_sort(tr, iters);
    ax_bench_sort(tc, iters);
    printf("axon nifti read+reorient+zscore %s (%lld voxels), %d threads: median %.1f ms, min %.1f ms, "
           "read+reorient median %.1f ms, CPU median %.1f ms, checksum %.6e, peak RSS %ld MiB\n",
           path, (long long)n, threads, ts[iters / 2], ts[0], tr[iters / 2], tc[iters / 2], check,
           ax_bench_peak_rss_mib());
    free(ts);
    free(tr);
    free(tc);
    return 0;
}
