"""PyTorch counterpart of tests/bench/bench_matmul.c (same arguments, same output).

    python3 tests/bench/bench_matmul.py [threads [N [iters]]]
"""
import torch

import bench_util


def main():
    threads, n, iters = bench_util.int_args([2, 4096, 5])
    torch.set_num_threads(threads)
    x = torch.randn(n, n)
    y = torch.randn(n, n)
    fwd, _ = bench_util.timed_steps(iters, 1, lambda: x @ y)
    ts = sorted(1e3 * t for t in fwd)
    rss = bench_util.peak_rss_mib()
    print(f"torch matmul {n}x{n}, {torch.get_num_threads()} threads: median {ts[iters // 2]:.1f} ms, "
          f"min {ts[0]:.1f} ms, {2.0 * n ** 3 / (ts[0] * 1e6):.1f} GFLOP/s, peak RSS {rss} MiB")


if __name__ == "__main__":
    main()
