#!/usr/bin/env python3
"""Counterpart of bench_augs.c: one spatial augmentation (rotation +-30 deg
per axis and scaling 0.7..1.4 drawn on every call, no elastic) of a
single-channel image plus label from an enlarged input (--extent, printed by
bench_augs) to a --patch cube, single thread, with
  - batchgenerators' SpatialTransform, order 1 (axon's trilinear) and order 3
    (nnU-Net's default for images), labels order 0, border constant 0;
  - batchgeneratorsv2's SpatialTransform (torch grid_sample, trilinear image,
    nearest labels).
Prints the median and best wall and CPU time per call, as bench_augs.c does.

    python3 tests/bench/bench_augs.py --patch 160 --extent 378,384,376 [--iterations 5]
"""
import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


def timed(fn, iterations):
    """Median and best wall and process CPU time in ms (CPU time stays close
    to the idle wall time on a shared machine; one thread, so comparable
    with bench_augs.c's thread CPU time)."""
    fn()  # warm-up
    t, tc = [], []
    for _ in range(iterations):
        a, ac = time.perf_counter(), time.process_time()
        fn()
        t.append(time.perf_counter() - a)
        tc.append(time.process_time() - ac)
    t.sort()
    tc.sort()
    return 1e3 * t[len(t) // 2], 1e3 * t[0], 1e3 * tc[len(tc) // 2], 1e3 * tc[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--patch", type=int, default=160)
    ap.add_argument("--extent", default="378,384,376")
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--skip-order3", action="store_true", help="skip the (slow) order-3 batchgenerators run")
    args = ap.parse_args()
    ext = tuple(int(x) for x in args.extent.split(","))
    patch = (args.patch,) * 3
    rng = np.random.default_rng(1)
    img = rng.random((1, 1) + ext, dtype=np.float32)
    seg = (img * 4).astype(np.int16).astype(np.float32)
    angle = 30.0 / 360 * 2 * np.pi

    from batchgenerators.transforms.spatial_transforms import SpatialTransform

    for order in (1, 3):
        if order == 3 and args.skip_order3:
            continue
        tr = SpatialTransform(patch, patch_center_dist_from_border=None, do_elastic_deform=False,
                              do_rotation=True, angle_x=(-angle, angle), angle_y=(-angle, angle),
                              angle_z=(-angle, angle), do_scale=True, scale=(0.7, 1.4),
                              border_mode_data="constant", border_cval_data=0, order_data=order,
                              border_mode_seg="constant", border_cval_seg=0, order_seg=0, random_crop=False,
                              p_el_per_sample=0, p_scale_per_sample=1, p_rot_per_sample=1)
        for with_label in (True, False):
            # SpatialTransform writes new arrays and leaves its inputs alone
            def run():
                d = {"data": img}
                if with_label:
                    d["seg"] = seg
                tr(**d)
            med, best, cmed, cbest = timed(run, args.iterations if order == 1 else min(3, args.iterations))
            print(f"batchgenerators order {order} {'image+label' if with_label else 'image      '}: "
                  f"patch {args.patch}^3 from extent {ext}, wall median {med:.1f} best {best:.1f} ms, "
                  f"cpu median {cmed:.1f} best {cbest:.1f} ms")

    from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform as SpatialTransformV2

    tr2 = SpatialTransformV2(patch, patch_center_dist_from_border=0, random_crop=False, p_elastic_deform=0,
                             p_rotation=1, rotation=(-angle, angle), p_scaling=1, scaling=(0.7, 1.4),
                             p_synchronize_scaling_across_axes=1, mode_seg="nearest")
    timg = torch.from_numpy(img[0])
    tseg = torch.from_numpy(seg[0]).to(torch.int16)
    for with_label in (True, False):
        def run2():  # grid_sample writes new tensors
            d = {"image": timg}
            if with_label:
                d["segmentation"] = tseg
            tr2(**d)
        med, best, cmed, cbest = timed(run2, args.iterations)
        print(f"batchgeneratorsv2 trilinear {'image+label' if with_label else 'image      '}: "
              f"patch {args.patch}^3 from extent {ext}, wall median {med:.1f} best {best:.1f} ms, "
              f"cpu median {cmed:.1f} best {cbest:.1f} ms")


if __name__ == "__main__":
    main()
