"""PyTorch AMP (bf16) reference for tests/gpu/bench_resenc_cuda.c: training
steps of dynamic-network-architectures' ResidualEncoderUNet (nnU-Net ResEnc
preset, as tests/bench/bench_resenc.py builds it) on one CUDA device.

    python3 tests/gpu/bench_resenc.py [preset [N [S [steps]]]]

Defaults: preset L, N = 2, S = 160, 5 timed steps after 2 warm-up steps.
A step is zero_grad + forward under torch.autocast(bfloat16) + MSE loss +
backward + SGD (lr 1e-2, momentum 0.99, nesterov, weight decay 3e-5), with
cudnn.benchmark on (nnU-Net's setting). Prints, in one line each:
  FLOPS <n>            one step's FLOPs (torch.utils.flop_counter, fwd + bwd)
  torch ... median <ms> ms, min <ms> ms, peak <MiB> MiB, MFU <pct>%
MFU uses the dense bf16 peak of the GPU (H100/H200 SXM: 989 TFLOP/s;
override with PEAK_TFLOPS).
"""
import os
import sys
import time

import torch
from torch import nn
from dynamic_network_architectures.architectures.unet import ResidualEncoderUNet

PRESETS = {
    "tiny": ([8, 16, 32, 64], [1, 1, 1, 1]),
    "S": ([16, 32, 64, 128, 256], [1, 2, 2, 2, 2]),
    "M": ([32, 64, 128, 256, 320], [1, 3, 4, 6, 6]),
    "L": ([32, 64, 128, 256, 320, 320], [1, 3, 4, 6, 6, 6]),
}


def peak_tflops():
    if os.environ.get("PEAK_TFLOPS"):
        return float(os.environ["PEAK_TFLOPS"])
    name = torch.cuda.get_device_name(0)
    if "H100" in name or "H200" in name:
        return 989.0
    if "A100" in name:
        return 312.0
    return float("nan")


def main():
    a = sys.argv[1:]
    preset = a[0] if len(a) > 0 else "L"
    n = int(a[1]) if len(a) > 1 else 2
    s = int(a[2]) if len(a) > 2 else 160
    steps = int(a[3]) if len(a) > 3 else 5
    features, blocks = PRESETS[preset]
    stages = len(features)
    if not torch.cuda.is_available():
        sys.exit("bench_resenc.py: no CUDA device")
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(1234)
    dev = torch.device("cuda:0")
    net = ResidualEncoderUNet(1, stages, features, nn.Conv3d, 3, [1] + [2] * (stages - 1), blocks, 1, 1,
                              conv_bias=True, norm_op=nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                              nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=False)
    net.apply(net.initialize)
    net = net.to(dev)
    x = torch.randn(n, 1, s, s, s, device=dev)
    target = torch.randn(n, 1, s, s, s, device=dev)
    opt = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.99, nesterov=True, weight_decay=3e-5)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            y = net(x)
        loss = nn.functional.mse_loss(y.float(), target)
        loss.backward()
        opt.step()
        return loss

    for _ in range(2):
        step()
    torch.cuda.synchronize()
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc:
        step()
    flops = fc.get_total_flops()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    ms = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = step()
        torch.cuda.synchronize()
        ms.append(1e3 * (time.perf_counter() - t0))
    peak = torch.cuda.max_memory_allocated() / 2**20
    ms.sort()
    med = ms[steps // 2]
    mfu = 100.0 * flops / (med / 1e3) / (peak_tflops() * 1e12)
    n_weights = sum(p.numel() for p in net.parameters())
    print(f"FLOPS {flops}")
    print(f"torch {torch.__version__} {torch.cuda.get_device_name(0)} resenc {preset} ({n_weights} weights) "
          f"N={n} 1x{s}^3 bf16 AMP: loss {loss.item():.4f}, {steps} steps: median {med:.1f} ms, min {ms[0]:.1f} ms, "
          f"peak {peak:.0f} MiB, {flops / 1e12:.2f} TFLOP/step, MFU {mfu:.1f}%", flush=True)


if __name__ == "__main__":
    main()
