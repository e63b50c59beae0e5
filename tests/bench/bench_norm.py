#!/usr/bin/env python3
"""PyTorch side of bench_norm.c: instance norm + leaky relu, forward and
forward+backward, on x [2, 32, 64, 64, 64] f32 with affine weight/bias;
also the norm alone. Best of `iterations` runs after two warm-ups.

    python3 tests/bench/bench_norm.py [threads=2] [iterations=10]

Also times F.group_norm with groups = C (the same maths through torch's
dedicated group-norm kernel) for reference.
"""
import torch.nn.functional as F

import bench_util

threads, iters = bench_util.int_args([2, 10])
x, w, b, g = bench_util.norm_case(threads)


def reset():
    x.grad = w.grad = b.grad = None


variants = {
    "F.instance_norm + leaky_relu_": lambda: F.leaky_relu(F.instance_norm(x, weight=w, bias=b, eps=1e-5), 0.01,
                                                         inplace=True),
    "F.group_norm(C) + leaky_relu_": lambda: F.leaky_relu(F.group_norm(x, 32, weight=w, bias=b, eps=1e-5), 0.01,
                                                         inplace=True),
    "F.instance_norm alone": lambda: F.instance_norm(x, weight=w, bias=b, eps=1e-5),
    "F.group_norm(C) alone": lambda: F.group_norm(x, 32, weight=w, bias=b, eps=1e-5),
}
for name, f in variants.items():
    fwd, total = bench_util.timed_steps(iters, 2, f, lambda y: y.backward(g), reset)
    best_f, best_a = min(fwd), min(total)
    print(f"torch {name:34s} threads {threads}: fwd {best_f * 1e3:7.1f} ms  fwd+bwd {best_a * 1e3:7.1f} ms")
