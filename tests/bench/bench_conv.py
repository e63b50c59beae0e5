"""PyTorch counterpart of tests/bench/bench_conv.c (same arguments, same output).

    python3 tests/bench/bench_conv.py [threads [N [C [S [iters [transposed]]]]]]

conv3d: N x C x S^3, C -> C channels, k=3, padding 1; transposed=1: the U-Net
upsampling conv_transpose3d k=2 s=2 from (S/2)^3 to S^3. Times forward and
backward (grads of x, w and b) after one warm-up; prints median and minimum
wall times, and "cpu": the process's CPU time for forward + backward.
"""
import sys
import time

import torch


def main():
    a = [int(v) for v in sys.argv[1:]]
    threads, n, c, s, iters, transposed = (a + [2, 2, 32, 64, 5, 0][len(a):])[:6]
    torch.set_num_threads(threads)
    k, inn = (2, s // 2) if transposed else (3, s)
    x = torch.randn(n, c, inn, inn, inn, requires_grad=True)
    w = torch.randn(c, c, k, k, k, requires_grad=True)
    b = torch.randn(c, requires_grad=True)
    g = torch.randn(n, c, s, s, s)
    op = "conv_transpose3d" if transposed else "conv3d"
    print(f"torch {op} N={n} {c}->{c} ch, {inn}^3 -> {s}^3, k={k}, {torch.get_num_threads()} threads")
    fwd, bwd, tot, cpu = [], [], [], []
    for it in range(-1, iters):
        x.grad = w.grad = b.grad = None
        c0, t0 = time.process_time(), time.perf_counter()
        if transposed:
            y = torch.nn.functional.conv_transpose3d(x, w, b, stride=2)
        else:
            y = torch.nn.functional.conv3d(x, w, b, padding=1)
        t1 = time.perf_counter()
        y.backward(g)
        t2, c2 = time.perf_counter(), time.process_time()
        del y
        if it < 0:
            continue
        fwd.append(1e3 * (t1 - t0))
        bwd.append(1e3 * (t2 - t1))
        tot.append(1e3 * (t2 - t0))
        cpu.append(1e3 * (c2 - c0))
    for name, ms in (("forward", fwd), ("backward", bwd), ("total", tot), ("cpu", cpu)):
        ms.sort()
        print(f"{name:<8} median {ms[len(ms) // 2]:9.1f} ms   min {ms[0]:9.1f} ms")


if __name__ == "__main__":
    main()
