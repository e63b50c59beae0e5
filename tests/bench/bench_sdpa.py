#!/usr/bin/env python3
"""PyTorch side of bench_sdpa.c: F.scaled_dot_product_attention (no mask,
not causal; on the CPU torch picks its flash-attention kernel) forward and
backward on q, k, v [2, 8, L, 64] f32; median and best of `iterations`
runs after one warm-up.

    python3 tests/bench/bench_sdpa.py [threads=2] [iterations=5] [L=2048]
"""
import statistics

import torch
import torch.nn.functional as F

import bench_util

threads, iters, L = bench_util.int_args([2, 5, 2048])
torch.set_num_threads(threads)
q, k, v = (torch.randn(2, 8, L, 64, requires_grad=True) for _ in range(3))
g = torch.randn(2, 8, L, 64)


def reset():
    q.grad = k.grad = v.grad = None


fwd, total = bench_util.timed_steps(iters, 1, lambda: F.scaled_dot_product_attention(q, k, v),
                                    lambda o: o.backward(g), reset)
print(f"torch F.scaled_dot_product_attention B 2 H 8 L {L} E 64 threads {threads}: "
      f"fwd {statistics.median(fwd) * 1e3:8.1f} ms  fwd+bwd {statistics.median(total) * 1e3:8.1f} ms "
      f"(best {min(total) * 1e3:8.1f})")
