"""nibabel + numpy counterpart of tests/bench/bench_nifti.c (same arguments,
same output): read + reorient to RAS + z-score of a NIfTI volume.

    python3 tests/bench/bench_nifti.py [threads [iters [FILE]]]

The usual nibabel pipeline, in its fastest form: nib.load, then
nib.as_closest_canonical, get_fdata(dtype=np.float32) (float32 like axon,
not nibabel's float64 default), then (x - mean) / max(std, 1e-8) in place.
`threads` only caps numpy's BLAS pools (the steps here are single-threaded
numpy either way).
"""
import os
import sys

a = sys.argv[1:]
threads = int(a[0]) if len(a) > 0 else 2
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(threads)

import resource  # noqa: E402
import time  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402


def main():
    iters = max(1, int(a[1]) if len(a) > 1 else 10)
    path = a[2] if len(a) > 2 else "/usr/share/mricron/templates/ch2better.nii.gz"
    ts, tr, tc = [], [], []
    check, n = 0.0, 0
    for it in range(-1, iters):
        c0, t0 = time.process_time(), time.perf_counter()
        img = nib.as_closest_canonical(nib.load(path))
        x = img.get_fdata(dtype=np.float32)
        t1 = time.perf_counter()
        m = x.mean(dtype=np.float64)
        sd = x.std(dtype=np.float64)
        x -= np.float32(m)
        x *= np.float32(1.0 / max(sd, 1e-8))
        t2, c2 = time.perf_counter(), time.process_time()
        flat = x.ravel(order="F")  # axon's [D, H, W] order
        n = flat.size
        idx = np.arange(0, n, 7)
        check = float(np.dot(flat[idx].astype(np.float64), (idx % 1000).astype(np.float64)))
        if it >= 0:
            ts.append(1e3 * (t2 - t0))
            tr.append(1e3 * (t1 - t0))
            tc.append(1e3 * (c2 - c0))
    ts.sort()
    tr.sort()
    tc.sort()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"nibabel nifti read+reorient+zscore {path} ({n} voxels), {threads} threads: median {ts[iters // 2]:.1f} ms, "
          f"min {ts[0]:.1f} ms, read+reorient median {tr[iters // 2]:.1f} ms, CPU median {tc[iters // 2]:.1f} ms, "
          f"checksum {check:.6e}, "
          f"peak RSS {rss} MiB")


main()
