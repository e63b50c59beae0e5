"""PyTorch counterpart of tests/bench/bench_unet.c (same arguments, same output).

    python3 tests/bench/bench_unet.py [threads [N [S [steps]]]]

Defaults: 2 threads, N = 2, S = 64, 10 timed steps after one warm-up step.
Training steps of a 4-stage residual 3-D U-Net (nnU-Net ResEnc style, one
BasicBlockD per stage, features 32/64/128/256, strides 1/2/2/2, conv
biases on) on [N, 1, S, S, S] f32, written in plain torch.nn; MSE against a
fixed random target; SGD lr 1e-2, momentum 0.99, nesterov, weight decay
3e-5. Default torch init. Prints the initial loss, the median and minimum
wall time per step (zero_grad + forward + loss + backward + step) and the
peak RSS (resource.getrusage ru_maxrss) before the first step, after the
warm-up step and after the last; the "before" value is mostly the
interpreter and torch itself.
"""
import sys
import time

import torch
from torch import nn

from bench_util import peak_rss_mib

FEATURES = (32, 64, 128, 256)
STRIDES = (1, 2, 2, 2)


def conv_norm(cin, cout, k, stride=1, act=True):
    layers = [nn.Conv3d(cin, cout, k, stride, padding=k // 2, bias=True),
              nn.InstanceNorm3d(cout, eps=1e-5, affine=True)]
    if act:
        layers.append(nn.LeakyReLU(0.01, inplace=True))
    return nn.Sequential(*layers)


class BasicBlockD(nn.Module):
    """dynamic_network_architectures' BasicBlockD (AvgPool + 1x1 conv skip)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = conv_norm(cin, cout, 3, stride)
        self.conv2 = conv_norm(cout, cout, 3, act=False)
        skip = []
        if stride != 1:
            skip.append(nn.AvgPool3d(stride, stride))
        if stride != 1 or cin != cout:
            skip.append(conv_norm(cin, cout, 1, act=False))
        self.skip = nn.Sequential(*skip)  # empty Sequential = identity
        self.act = nn.LeakyReLU(0.01, inplace=True)

    def forward(self, x):
        return self.act(self.conv2(self.conv1(x)) + self.skip(x))


class ResEncUNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = conv_norm(1, FEATURES[0], 3)
        cin, blocks = FEATURES[0], []
        for f, s in zip(FEATURES, STRIDES):
            blocks.append(BasicBlockD(cin, f, s))
            cin = f
        self.stages = nn.ModuleList(blocks)
        self.ups = nn.ModuleList()
        self.dec = nn.ModuleList()
        for s in range(len(FEATURES) - 2, -1, -1):
            k = STRIDES[s + 1]
            self.ups.append(nn.ConvTranspose3d(FEATURES[s + 1], FEATURES[s], k, k, bias=True))
            self.dec.append(conv_norm(2 * FEATURES[s], FEATURES[s], 3))
        self.head = nn.Conv3d(FEATURES[0], 1, 1, bias=True)

    def forward(self, x):
        x = self.stem(x)
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        for i, (up, dec) in enumerate(zip(self.ups, self.dec)):
            x = dec(torch.cat((up(x), skips[-(i + 2)]), 1))
        return self.head(x)


def main():
    a = [int(v) for v in sys.argv[1:]]
    threads, n, s, steps = (a + [2, 2, 64, 10][len(a):])[:4]
    if threads < 1 or n < 1 or s < 8 or s % 8 or not 1 <= steps <= 1000:
        sys.exit(f"usage: {sys.argv[0]} [threads>=1 [N>=1 [S, a multiple of 8 [steps 1..1000]]]]")
    torch.set_num_threads(threads)
    torch.manual_seed(1234)
    net = ResEncUNet()
    x = torch.randn(n, 1, s, s, s)
    target = torch.randn(n, 1, s, s, s)
    opt = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.99, nesterov=True, weight_decay=3e-5)
    n_weights = sum(p.numel() for p in net.parameters())
    print(f"torch unet 4-stage ResEnc, {n_weights} parameters, N={n} 1x{s}^3, {torch.get_num_threads()} threads")
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
            print(f"torch unet initial loss {loss_value:.4f} (warm-up step {1e3 * (t1 - t0):.1f} ms, "
                  f"peak RSS {peak_rss_mib()} MiB)", flush=True)
        else:
            ms.append(1e3 * (t1 - t0))
    rss_after = peak_rss_mib()
    print(f"torch unet final loss {loss_value:.4f}")
    ms.sort()
    print(f"torch unet N={n} 1x{s}^3, {torch.get_num_threads()} threads, {steps} steps: median {ms[steps // 2]:.1f} ms, "
          f"min {ms[0]:.1f} ms, peak RSS {rss_after} MiB (before training {rss_before} MiB)")


if __name__ == "__main__":
    main()
