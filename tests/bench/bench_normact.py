#!/usr/bin/env python3
"""PyTorch side of bench_normact.c: F.instance_norm + F.leaky_relu(0.01)
(in place, as nnU-Net's ResEnc blocks), forward and backward, on x
[2, 32, 64, 64, 64] f32 with affine weight/bias; median and best of
`iterations` runs after two warm-ups.

    python3 tests/bench/bench_normact.py [threads=2] [iterations=10]
"""
import statistics

import torch.nn.functional as F

import bench_util

threads, iters = bench_util.int_args([2, 10])
x, w, b, g = bench_util.norm_case(threads)


def reset():
    x.grad = w.grad = b.grad = None


fwd, total = bench_util.timed_steps(
    iters, 2, lambda: F.leaky_relu(F.instance_norm(x, weight=w, bias=b, eps=1e-5), 0.01, inplace=True),
    lambda y: y.backward(g), reset)
print(f"torch F.instance_norm + F.leaky_relu_ threads {threads}: fwd {statistics.median(fwd) * 1e3:6.1f} ms  "
      f"fwd+bwd {statistics.median(total) * 1e3:6.1f} ms (best {min(total) * 1e3:6.1f})")
