#!/usr/bin/env python3
"""PyTorch side of bench_norm.c: instance norm + leaky relu, forward and
forward+backward, on x [2, 32, 64, 64, 64] f32 with affine weight/bias;
also the norm alone. Best of `iterations` runs after two warm-ups.

    python3 tests/bench/bench_norm.py [threads=2] [iterations=10]

Also times F.group_norm with groups = C (the same maths through torch's
dedicated group-norm kernel) for reference.
"""
import sys
import time

import torch
import torch.nn.functional as F

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
iters = int(sys.argv[2]) if len(sys.argv) > 2 else 10
torch.set_num_threads(threads)
x = torch.randn(2, 32, 64, 64, 64, requires_grad=True)
w = torch.ones(32, requires_grad=True)
b = torch.full((32,), 0.1, requires_grad=True)
g = torch.randn(2, 32, 64, 64, 64)

variants = {
    "F.instance_norm + leaky_relu_": lambda: F.leaky_relu(F.instance_norm(x, weight=w, bias=b, eps=1e-5), 0.01,
                                                         inplace=True),
    "F.group_norm(C) + leaky_relu_": lambda: F.leaky_relu(F.group_norm(x, 32, weight=w, bias=b, eps=1e-5), 0.01,
                                                         inplace=True),
    "F.instance_norm alone": lambda: F.instance_norm(x, weight=w, bias=b, eps=1e-5),
    "F.group_norm(C) alone": lambda: F.group_norm(x, 32, weight=w, bias=b, eps=1e-5),
}
for name, f in variants.items():
    best_f = best_a = float("inf")
    for i in range(iters + 2):
        x.grad = w.grad = b.grad = None
        t0 = time.perf_counter()
        y = f()
        t1 = time.perf_counter()
        y.backward(g)
        t2 = time.perf_counter()
        del y
        if i >= 2:
            best_f, best_a = min(best_f, t1 - t0), min(best_a, t2 - t0)
    print(f"torch {name:34s} threads {threads}: fwd {best_f * 1e3:7.1f} ms  fwd+bwd {best_a * 1e3:7.1f} ms")
