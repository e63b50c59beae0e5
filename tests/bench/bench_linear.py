"""PyTorch counterpart of tests/bench/bench_linear.c (same arguments, same output).

    python3 tests/bench/bench_linear.py [threads [M [iters]]]
"""
import torch
import torch.nn.functional as F

import bench_util


def main():
    threads, m, iters = bench_util.int_args([2, 4096, 20])
    c = 512
    torch.set_num_threads(threads)
    x = torch.randn(m, c, requires_grad=True)
    w = torch.randn(c, c, requires_grad=True)
    b = torch.randn(c, requires_grad=True)
    g = torch.randn(m, c)

    def reset():
        x.grad = w.grad = b.grad = None

    _, total = bench_util.timed_steps(iters, 2, lambda: F.gelu(F.linear(x, w, b), approximate="tanh"),
                                      lambda y: y.backward(g), reset)
    ts = sorted(1e3 * t for t in total)
    rss = bench_util.peak_rss_mib()
    print(f"torch linear+gelu_tanh fwd+bwd [{m}, {c}] x [{c}, {c}], {torch.get_num_threads()} threads: "
          f"median {ts[iters // 2]:.2f} ms, min {ts[0]:.2f} ms, peak RSS {rss} MiB")


if __name__ == "__main__":
    main()
