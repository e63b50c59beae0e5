#!/usr/bin/env python3
"""Counterpart of bench_loader.c: patches per second of the reference MAE
pre-training augmentation (160^3 patches, rotation +-30 deg per axis with p
0.2, scaling 0.7..1.4 with p 0.2, no elastic, mirroring on all axes) from
the same preprocessed case (an axon .axc file, read with numpy), in a single
process with one thread:
  - batchgenerators: SpatialTransform (random crop from the whole volume,
    order 1 = trilinear like axon, border 0) + MirrorTransform, on batches;
  - batchgeneratorsv2: SpatialTransform (torch grid_sample, trilinear) +
    MirrorTransform, per sample, as nnssl applies them.
Prints wall-clock and CPU-time rates (CPU time: patches per second of one
busy core, which a shared machine disturbs less).

    python3 tests/bench/bench_loader.py CACHE/case.axc [--steps 10] [--patch 160] [--batch 2]
"""
import argparse
import os
import struct
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


def load_axc(path):
    """The image array of an axon case file (axon/cache.h): [C, D, H, W] f32."""
    with open(path, "rb") as f:
        hdr = f.read(4096)
    assert hdr[:8] == b"AXCASE1\n", f"{path}: not an axon case file"
    offset = struct.unpack_from("<Q", hdr, 24)[0]
    c, d, h, w = struct.unpack_from("<4i", hdr, 64)
    data = np.fromfile(path, dtype="<f4", count=c * d * h * w, offset=offset)
    return data.reshape(c, d, h, w)


def measure(name, fn, steps, per_step):
    fn()  # warm-up
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        fn()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    n = steps * per_step
    print(f"{name}: {n} patches in {wall:.2f} s: {n / wall:.2f} patches/s wall, {n / cpu:.2f} patches/CPU-s", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--patch", type=int, default=160)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--only", default="bg,bgv2")
    args = ap.parse_args()
    vol = load_axc(args.case)
    patch = (args.patch,) * 3
    angle = 30.0 / 360 * 2 * np.pi
    half = [p // 2 for p in patch]
    np.random.seed(1)
    torch.manual_seed(1)

    if "bg" in args.only.split(","):
        from batchgenerators.transforms.spatial_transforms import MirrorTransform, SpatialTransform

        st = SpatialTransform(patch, patch_center_dist_from_border=half, do_elastic_deform=False, do_rotation=True,
                              angle_x=(-angle, angle), angle_y=(-angle, angle), angle_z=(-angle, angle),
                              do_scale=True, scale=(0.7, 1.4), border_mode_data="constant", border_cval_data=0,
                              order_data=1, random_crop=True, p_el_per_sample=0, p_scale_per_sample=0.2,
                              p_rot_per_sample=0.2, p_rot_per_axis=1)
        mt = MirrorTransform(axes=(0, 1, 2))
        batch = np.ascontiguousarray(np.broadcast_to(vol, (args.batch,) + vol.shape))

        def bg_step():
            out = mt(**st(data=batch))
            assert out["data"].shape == (args.batch, vol.shape[0]) + patch

        measure("batchgenerators (1 process)", bg_step, args.steps, args.batch)

    if "bgv2" in args.only.split(","):
        from batchgeneratorsv2.transforms.spatial.mirroring import MirrorTransform as M2
        from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform as S2

        st2 = S2(patch_size=patch, patch_center_dist_from_border=half, random_crop=True, p_elastic_deform=0,
                 p_rotation=0.2, rotation=(-angle, angle), p_scaling=0.2, scaling=(0.7, 1.4),
                 p_synchronize_scaling_across_axes=1, bg_style_seg_sampling=False)
        mt2 = M2(allowed_axes=(0, 1, 2))
        image = torch.from_numpy(vol)

        def bgv2_step():
            outs = [mt2(**st2(image=image))["image"] for _ in range(args.batch)]
            x = torch.stack(outs)
            assert tuple(x.shape) == (args.batch, vol.shape[0]) + patch

        measure("batchgeneratorsv2 (1 process, 1 thread)", bgv2_step, args.steps, args.batch)


if __name__ == "__main__":
    main()
