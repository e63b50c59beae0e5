"""PyTorch counterpart of tests/bench/bench_matmul.c (same arguments, same output).

    python3 tests/bench/bench_matmul.py [threads [N [iters]]]
"""
import resource
import sys
import time

import torch


def main():
    a = [int(v) for v in sys.argv[1:]]
    threads, n, iters = (a + [2, 4096, 5][len(a):])[:3]
    torch.set_num_threads(threads)
    x = torch.randn(n, n)
    y = torch.randn(n, n)
    ts = []
    for it in range(-1, iters):
        t0 = time.perf_counter()
        z = x @ y
        t1 = time.perf_counter()
        del z
        if it >= 0:
            ts.append(1e3 * (t1 - t0))
    ts.sort()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"torch matmul {n}x{n}, {torch.get_num_threads()} threads: median {ts[iters // 2]:.1f} ms, "
          f"min {ts[0]:.1f} ms, {2.0 * n ** 3 / (ts[0] * 1e6):.1f} GFLOP/s, peak RSS {rss} MiB")


if __name__ == "__main__":
    main()
