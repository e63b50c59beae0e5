"""Shared helpers for the PyTorch sides of the benchmarks in tests/bench
(imported as `bench_util`; the scripts run as `python3 tests/bench/x.py`,
so this folder is on sys.path).

    threads, n, iters = bench_util.int_args([2, 4096, 5])
    fwd, total = bench_util.timed_steps(iters, 1, lambda: x @ y)
    print(..., bench_util.peak_rss_mib())
"""
import resource
import sys
import time


def int_args(defaults):
    """The integer command-line arguments, the missing trailing ones taken
    from `defaults` (extra arguments are ignored)."""
    a = [int(v) for v in sys.argv[1 : len(defaults) + 1]]
    return a + defaults[len(a) :]


def peak_rss_mib():
    """Peak resident set size of this process so far, in MiB (ru_maxrss is
    KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def timed_steps(iters, warmup, fwd, bwd=None, reset=None):
    """Runs `warmup` untimed then `iters` timed steps of reset(); out = fwd();
    bwd(out) and returns the timed steps' (forward, forward + backward)
    seconds, in run order. Only fwd and bwd are inside the clock."""
    fwd_s, total_s = [], []
    for i in range(warmup + iters):
        if reset is not None:
            reset()
        t0 = time.perf_counter()
        out = fwd()
        t1 = time.perf_counter()
        if bwd is not None:
            bwd(out)
        t2 = time.perf_counter()
        del out
        if i >= warmup:
            fwd_s.append(t1 - t0)
            total_s.append(t2 - t0)
    return fwd_s, total_s


def norm_case(threads):
    """Sets torch's thread count; returns x [2, 32, 64, 64, 64] (requires
    grad), affine w = 1 and b = 0.1 [32] (require grad) and the output
    gradient g [2, 32, 64, 64, 64], the inputs of bench_norm and
    bench_normact."""
    import torch  # here: the numpy-only benchmarks import this module too

    torch.set_num_threads(threads)
    x = torch.randn(2, 32, 64, 64, 64, requires_grad=True)
    w = torch.ones(32, requires_grad=True)
    b = torch.full((32,), 0.1, requires_grad=True)
    g = torch.randn(2, 32, 64, 64, 64)
    return x, w, b, g
