"""Stacks and batch runs: warm-start savings, dask overhead, memory per worker.

(a) ``stack``: two 8-plane 256² stacks whose content drifts 2 px per plane
    (a slow time-lapse) with fresh noise on every plane: ``textures`` (the
    equal-mean stripe pair, default settings with one box per region, so
    planes are warm-started) and ``dsb`` (a window of the shared DSB image,
    σ = 30, the nuclei settings below, warm start forced: without boxes the
    default runs planes on their own). Wall time of every plane, planes 2..N
    relative to plane 1, and Dice of each plane against an independent run of
    that plane (and against the truth).
(b) ``folder``: 16 DSB 256² crops (a 4 × 4 grid of windows, stride 85 px, so
    neighbours overlap) of the shared σ = 30 image, written as TIFFs; images per
    hour for a plain Python loop over :func:`run_job` in this process (torch 2
    threads), a ``LocalCluster`` with 1 worker × 2 threads and with 2 workers ×
    1 thread (cluster start-up included).
(c) the peak resident memory of every worker (``ru_maxrss`` of the process
    that ran the job, from the jobs' outcomes).

DSB runs: the ``fast`` preset with the demo's nuclei settings (denoise +
threshold init, constant background, residual filter 3, λ = 0.01), CPU.

Usage::

    python benchmarks/batch.py --out benchmarks/out/batch.json
    python benchmarks/batch.py --part stack
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import torch

from napari_self2seg.batch_jobs import BatchSettings, run_job
from napari_self2seg.batch_run import batch
from napari_self2seg.core import Phase, Self2SegConfig, dice, iterate_stack, preset, segment
from napari_self2seg.core.config import BINARY_EXPERTS
from napari_self2seg.datasets import two_textures

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
SIGMA = 30
SIZE = 256


def nuclei_config() -> Self2SegConfig:
    """Return the demo's nuclei settings on the fast preset."""
    return dataclasses.replace(
        preset("fast"), init="denoise-threshold", experts=BINARY_EXPERTS[1], residual_filter=3, lam=0.01
    )


def drifting_stack(planes: int, step: int = 2, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Return an ``(planes, 256, 256)`` stack of a window drifting ``step`` px per plane, and its truth."""
    clean = tifffile.imread(SHARED / "dsb2018_stardist_img2d.tif").astype(np.float32)
    truth = tifffile.imread(SHARED / "dsb2018_stardist_mask2d.tif") > 0
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for z in range(planes):
        window = (slice(100 + step * z, 100 + step * z + SIZE), slice(200 + step * z, 200 + step * z + SIZE))
        images.append(clean[window] + rng.normal(0, SIGMA, (SIZE, SIZE)).astype(np.float32))
        masks.append(truth[window])
    return np.stack(images), np.stack(masks)


def drifting_textures(planes: int, step: int = 2) -> tuple[np.ndarray, np.ndarray, dict[int, list[Any]]]:
    """Return a stack of 256² windows of the stripe pair drifting ``step`` px per plane, truths and boxes."""
    images, masks = [], []
    sample = two_textures(SIZE + 16)
    for z in range(planes):
        plane = two_textures(SIZE + 16, seed=z)
        window = (slice(0, SIZE), slice(step * z, step * z + SIZE))
        images.append(plane.image[window])
        masks.append(plane.truth[window])
    boxes = {1: [sample.fg_box], 0: [(0, 0, sample.bg_box[2], SIZE)]}
    return np.stack(images), np.stack(masks), boxes


def stack_part(case: str, planes: int) -> dict[str, Any]:
    """Measure (a): per-plane wall time of a warm-started stack, Dice against independent per-plane runs."""
    boxes: dict[int, list[Any]] | None = None
    if case == "textures":
        stack, truth, boxes = drifting_textures(planes)
        config = preset("fast")
    else:
        stack, truth = drifting_stack(planes)
        config = nuclei_config()
    independent, independent_s = [], []
    for z in range(planes):
        t0 = time.perf_counter()
        independent.append(segment(stack[z], config, boxes=boxes, device="cpu"))
        independent_s.append(time.perf_counter() - t0)
    plane_s, last = [], time.perf_counter()
    result = None
    for progress in iterate_stack(stack, config, boxes=boxes, device="cpu", warm_start=True):
        if progress.state.phase is Phase.DONE:
            now = time.perf_counter()
            plane_s.append(now - last)
            last = now
        result = progress.stack or result
    assert result is not None
    later = float(np.mean(plane_s[1:]))
    rows = [
        {
            "plane": z,
            "warm_s": plane_s[z],
            "independent_s": independent_s[z],
            "outer_iterations": result.planes[z].outer_iterations,
            "dice_vs_independent": dice(result.mask[z], independent[z].mask),
            "dice_warm_vs_truth": dice(result.mask[z], truth[z]),
            "dice_independent_vs_truth": dice(independent[z].mask, truth[z]),
        }
        for z in range(planes)
    ]
    for row in rows:
        print(
            f"{case} plane {row['plane']}: warm {row['warm_s']:6.1f} s ({row['outer_iterations']} steps), independent "
            f"{row['independent_s']:6.1f} s, Dice vs independent {row['dice_vs_independent']:.3f}, vs truth "
            f"{row['dice_warm_vs_truth']:.3f} / {row['dice_independent_vs_truth']:.3f}",
            flush=True,
        )
    summary = {
        "case": case,
        "planes": planes,
        "plane1_s": plane_s[0],
        "later_mean_s": later,
        "later_over_plane1": later / plane_s[0],
        "later_over_independent": later / float(np.mean(independent_s[1:])),
        "worst_dice_vs_independent": min(r["dice_vs_independent"] for r in rows[1:]),
        "mean_dice_warm_vs_truth": float(np.mean([r["dice_warm_vs_truth"] for r in rows])),
        "mean_dice_independent_vs_truth": float(np.mean([r["dice_independent_vs_truth"] for r in rows])),
    }
    print(json.dumps(summary, indent=1), flush=True)
    return {"rows": rows, "summary": summary}


def write_crops(folder: Path, n: int = 16) -> list[Path]:
    """Write ``n`` 256² windows (4 × 4 grid, stride 85 px) of the shared σ = 30 DSB image as float32 TIFFs."""
    noisy = np.load(SHARED / "dsb2018_img2d_noisy_seed0.npz")[f"n{SIGMA}"]
    stride = (noisy.shape[0] - SIZE) // 3
    paths = []
    for k in range(n):
        y, x = (k // 4) * stride, (k % 4) * stride
        path = folder / f"crop{k:02d}.tif"
        tifffile.imwrite(path, noisy[y : y + SIZE, x : x + SIZE], photometric="minisblack")
        paths.append(path)
    return paths


def folder_part(n: int) -> dict[str, Any]:
    """Measure (b) and (c): images per hour (plain loop, two LocalCluster layouts), peak memory per worker."""
    work = Path(tempfile.mkdtemp(prefix="self2seg-batch-bench-"))
    try:
        inputs = work / "in"
        inputs.mkdir()
        paths = write_crops(inputs, n)
        settings = BatchSettings(config=nuclei_config(), device="cpu", overwrite=True)
        runs: dict[str, dict[str, Any]] = {}
        torch.set_num_threads(2)
        t0 = time.perf_counter()
        outcomes = [run_job(path, work / "loop", settings) for path in paths]
        runs["plain loop (this process, 2 threads)"] = _figures(outcomes, time.perf_counter() - t0)
        for workers, threads in ((1, 2), (2, 1)):
            t0 = time.perf_counter()
            outcomes = batch(
                [str(inputs)], work / f"dask{workers}x{threads}", settings, workers=workers, threads=threads
            )
            runs[f"LocalCluster {workers} worker(s) x {threads} thread(s)"] = _figures(
                outcomes, time.perf_counter() - t0
            )
        loop_rate = runs["plain loop (this process, 2 threads)"]["images_per_hour"]
        for name, figures in runs.items():
            figures["overhead_vs_loop"] = loop_rate / figures["images_per_hour"] - 1
            print(
                f"{name:42s}: {figures['wall_s']:6.1f} s, {figures['images_per_hour']:6.0f} images/h, "
                f"overhead vs loop {figures['overhead_vs_loop']:+.1%}, peak memory per process "
                f"{figures['peak_memory_mb']:.0f} MiB, {figures['failed']} failed",
                flush=True,
            )
        return runs
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _figures(outcomes: list[Any], wall: float) -> dict[str, Any]:
    ok = [o for o in outcomes if o.status == "ok"]
    return {
        "wall_s": wall,
        "images": len(outcomes),
        "failed": len(outcomes) - len(ok),
        "images_per_hour": len(outcomes) / wall * 3600,
        "mean_job_s": float(np.mean([o.seconds for o in ok])) if ok else None,
        "peak_memory_mb": max((o.peak_memory_mb or 0.0) for o in outcomes),
        "mean_foreground_fraction": float(np.mean([o.foreground_fraction for o in ok])) if ok else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", nargs="+", choices=("stack", "folder"), default=["stack", "folder"])
    parser.add_argument("--stack", nargs="+", choices=("textures", "dsb"), default=["textures", "dsb"])
    parser.add_argument("--planes", type=int, default=8)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the figures")
    args = parser.parse_args()
    torch.set_num_threads(2)
    segment(drifting_stack(1)[0][0][:64, :64], nuclei_config(), device="cpu")  # warm-up: torch's first calls
    report: dict[str, Any] = {"machine": platform.platform(), "torch": torch.__version__, "threads": 2}
    if "stack" in args.part:
        report["stack"] = {case: stack_part(case, args.planes) for case in args.stack}
    if "folder" in args.part:
        report["folder"] = folder_part(args.images)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
