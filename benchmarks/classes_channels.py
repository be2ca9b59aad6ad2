"""Cost of more regions (K) and more channels (C): time per outer iteration and peak memory at 256².

Every (K, C) runs in its own subprocess (its own peak RSS) on a synthetic image of K equal-mean
texture bands with C channels, with fixed work per phase so that only K and C change the cost:
every expert trains exactly ``--steps`` gradient steps (the ``fast`` preset's network, patches and
validation interval), every segmentation step runs exactly ``--pd-iter`` primal–dual iterations,
and a collapse ends the run (no restart with larger experts). skimage ``chan_vese`` (200
iterations) runs on the first channel in the same subprocess as a machine-speed reference. One
outer iteration = training every class's expert once + one segmentation step; reported as the mean
over ``--outer`` iterations (after the first training).

Usage::

    python benchmarks/classes_channels.py                       # K = 2, 3, 4 with C = 1; C = 3 with K = 2
    python benchmarks/classes_channels.py --classes 2 3 --channels 1 3 --size 256
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import resource
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable


def banded_image(size: int, classes: int, channels: int, seed: int = 0) -> tuple[np.ndarray, dict[int, list[Any]]]:
    """K vertical bands of equal-mean textures, C channels (channels last), noise 0.2; one box per band."""
    from napari_self2seg.datasets import texture

    kinds = [("stripes", 8, 90), ("checkerboard", 10, 0), ("stripes", 6, 0), ("stripes", 9, 45), ("dots", 8, 0)]
    width = size // classes
    rng = np.random.default_rng(seed)
    planes = []
    for c in range(channels):
        clean = np.zeros((size, size))
        for k in range(classes):
            kind, period, angle = kinds[(k + c) % len(kinds)]
            band = texture(kind, (size, size), period=period, angle=angle)
            clean[:, k * width : (k + 1) * width if k < classes - 1 else size] = band[
                :, k * width : (k + 1) * width if k < classes - 1 else size
            ]
        planes.append(0.5 + 0.3 * clean + rng.normal(0.0, 0.2, clean.shape))
    image = np.stack(planes, axis=-1) if channels > 1 else planes[0]
    margin = max(width // 4, 2)
    boxes = {k: [(margin, k * width + margin, size - margin, (k + 1) * width - margin)] for k in range(classes)}
    return image.astype(np.float32), boxes


def run_single(
    size: int, classes: int, channels: int, steps: int, pd_iter: int, outer: int, device: str = "cpu"
) -> dict[str, Any]:
    """Run one (K, C) in this process and return its measurements."""
    import torch
    from skimage import segmentation

    from napari_self2seg.core import preset, segment

    chan_vese: Callable[..., Any] = segmentation.chan_vese

    image, boxes = banded_image(size, classes, channels)
    grey = image if channels == 1 else image[..., 0]
    t0 = time.perf_counter()
    chan_vese((grey - grey.min()) / np.ptp(grey), mu=0.25, max_num_iter=200, tol=0)
    cv_time = time.perf_counter() - t0
    base = preset("fast")
    config = dataclasses.replace(
        base,
        lam=0.05,
        experts=("network",),
        max_outer_iter=outer,
        stop_ratio=0.0,
        denoiser=dataclasses.replace(base.denoiser, patience=steps, max_steps=steps),
        restart_denoiser=None,  # fixed work: a collapse must not add a run with larger experts
        solver=dataclasses.replace(base.solver, gap_tol=0.0, max_iter=pd_iter, check_every=pd_iter),
    )
    result = segment(image, config, boxes=boxes, channel_axis=-1 if channels > 1 else None, seed=0, device=device)
    timings = result.timings
    rounds = result.outer_iterations + 1  # expert trainings (one before the first segmentation step)
    per_training = sum(timings.experts) / rounds
    per_segment = timings.segment / max(result.outer_iterations, 1)
    return {
        "size": size,
        "classes": classes,
        "channels": channels,
        "experts_per_outer_s": per_training,
        "segment_per_outer_s": per_segment,
        "outer_s": per_training + per_segment,
        "chan_vese_s": cv_time,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    """Run every (K, C) in a subprocess; print a table with ratios to K = 2, C = 1 of the same run."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--classes", nargs="+", type=int, default=[2, 3, 4])
    parser.add_argument("--channels", nargs="+", type=int, default=[1, 3])
    parser.add_argument("--steps", type=int, default=60, help="gradient steps per expert training")
    parser.add_argument("--pd-iter", type=int, default=500, help="primal-dual iterations per segmentation step")
    parser.add_argument("--outer", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="runs per (K, C); the table shows the median")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--single", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        k, c = args.single
        print(json.dumps(run_single(args.size, k, c, args.steps, args.pd_iter, args.outer, args.device)))
        return
    combos = [(k, 1) for k in args.classes] + [(2, c) for c in args.channels if c != 1]
    print(
        f"# {platform.node()}, python {platform.python_version()}, {args.size}², {args.steps} steps/expert, "
        f"{args.pd_iter} PD iterations/step, device {args.device}"
    )
    print("| K | C | experts s / outer | segment s / outer | outer s (× chan_vese) | × K=2,C=1 | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    runs: dict[tuple[int, int], list[dict[str, Any]]] = {combo: [] for combo in combos}
    for _ in range(args.repeats):  # interleaved, so that a drift of the machine's speed hits every combination
        for k, c in combos:
            cmd = [sys.executable, __file__, "--single", str(k), str(c), "--size", str(args.size)]
            cmd += ["--steps", str(args.steps), "--pd-iter", str(args.pd_iter), "--outer", str(args.outer)]
            cmd += ["--device", args.device]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(f"| {k} | {c} | failed: {proc.stderr.strip().splitlines()[-1]} |")
                continue
            runs[(k, c)].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    reference = None
    for (k, c), done in runs.items():
        if not done:
            continue
        r = sorted(done, key=lambda run: run["outer_s"])[len(done) // 2]  # the median run
        reference = reference or r["outer_s"]
        cells = [
            str(k),
            str(c),
            f"{r['experts_per_outer_s']:.2f}",
            f"{r['segment_per_outer_s']:.2f}",
            f"{r['outer_s']:.2f} ({r['outer_s'] / r['chan_vese_s']:.0f}×)",
            f"{r['outer_s'] / reference:.2f}",
            f"{r['peak_rss_mib']:.0f}",
        ]
        print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
