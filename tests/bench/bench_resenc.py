"""PyTorch counterpart of tests/bench/bench_resenc.c (same arguments, same output).

    python3 tests/bench/bench_resenc.py [threads [preset [N [S [steps]]]]]

Defaults: 2 threads, preset S, N = 2, S = 64, 3 timed steps after one warm-up
step. Training steps of dynamic-network-architectures' ResidualEncoderUNet
with the resenc_unet plugin's preset (see plugins/archs/resenc_unet), 1 input
and 1 output channel, nnU-Net's initialisation (network.initialize); MSE
against a fixed random target; SGD lr 1e-2, momentum 0.99, nesterov, weight
decay 3e-5. Prints the median and minimum wall time per step (zero_grad +
forward + loss + backward + step) and the peak RSS (ru_maxrss) before the
first step and after the last; "before" is mostly the interpreter and torch.
"""
import sys
import time

import torch
from torch import nn
from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet

from bench_util import peak_rss_mib

# the plugin's presets: features, residual blocks per stage (strides 1, 2, 2, ...)
PRESETS = {
    "tiny": ([8, 16, 32, 64], [1, 1, 1, 1]),
    "S": ([16, 32, 64, 128, 256], [1, 2, 2, 2, 2]),
    "M": ([32, 64, 128, 256, 320], [1, 3, 4, 6, 6]),
    "L": ([32, 64, 128, 256, 320, 320], [1, 3, 4, 6, 6, 6]),
}


def main():
    a = sys.argv[1:]
    threads = int(a[0]) if len(a) > 0 else 2
    preset = a[1] if len(a) > 1 else "S"
    n = int(a[2]) if len(a) > 2 else 2
    s = int(a[3]) if len(a) > 3 else 64
    steps = int(a[4]) if len(a) > 4 else 3
    if threads < 1 or preset not in PRESETS or n < 1 or s < 8 or not 1 <= steps <= 100:
        sys.exit(f"usage: {sys.argv[0]} [threads>=1 [preset tiny|S|M|L [N>=1 [S [steps 1..100]]]]]")
    features, blocks = PRESETS[preset]
    stages = len(features)
    if s % 2 ** (stages - 1):
        sys.exit(f"bench_resenc.py: S = {s} is not a multiple of {2 ** (stages - 1)} (preset {preset})")
    torch.set_num_threads(threads)
    torch.manual_seed(1234)
    net = ResidualEncoderUNet(1, stages, features, nn.Conv3d, 3, [1] + [2] * (stages - 1), blocks, 1, 1,
                              conv_bias=True, norm_op=nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                              nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=False)
    net.apply(net.initialize)
    x = torch.randn(n, 1, s, s, s)
    target = torch.randn(n, 1, s, s, s)
    opt = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.99, nesterov=True, weight_decay=3e-5)
    n_weights = sum(p.numel() for p in net.parameters())
    print(f"torch resenc_unet {preset}, {n_weights} parameters, N={n} 1x{s}^3, {torch.get_num_threads()} threads")
    rss_before = peak_rss_mib()
    ms = []
    for it in range(-1, steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(net(x), target)
        loss_value = loss.item()
        loss.backward()
        opt.step()
        t1 = time.perf_counter()
        del loss
        if it < 0:
            print(f"torch resenc initial loss {loss_value:.4f} (warm-up step {1e3 * (t1 - t0):.1f} ms, "
                  f"peak RSS {peak_rss_mib()} MiB)", flush=True)
        else:
            ms.append(1e3 * (t1 - t0))
    rss_after = peak_rss_mib()
    print(f"torch resenc final loss {loss_value:.4f}")
    ms.sort()
    print(f"torch resenc {preset} N={n} 1x{s}^3, {torch.get_num_threads()} threads, {steps} steps: "
          f"median {ms[steps // 2]:.1f} ms, min {ms[0]:.1f} ms, peak RSS {rss_after} MiB "
          f"(before training {rss_before} MiB)")


if __name__ == "__main__":
    main()
