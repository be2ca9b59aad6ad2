"""Time Self2Seg per phase, with Dice and peak memory, against skimage ``chan_vese``.

Each (case, size, preset) runs in its own subprocess so that the peak resident
memory (``ru_maxrss``) belongs to that run alone. ``chan_vese`` (200 iterations)
runs on the same image in the same subprocess as a machine-speed reference, and
every time is also reported as a multiple of it.

Usage::

    python benchmarks/speed.py --case textures --size 256 --preset paper
    python benchmarks/speed.py --case textures dsb --size 256 512 --preset paper fast --out benchmarks/out/speed.json

The ``dsb`` case needs ``../shared/data`` (the DSB2018 image, σ = 30 noise).
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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Callable

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def load_case(case: str, size: int) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Return (image, truth, keyword arguments for iterate) for a benchmark case."""
    from napari_self2seg.datasets import two_textures

    if case == "textures":
        s = two_textures(size)
        return (
            s.image,
            s.truth,
            {"fg_boxes": [s.fg_box], "bg_boxes": [s.bg_box], "init": "boxes", "experts": ("network",)},
        )
    if case == "dsb":
        import tifffile

        noisy = np.load(SHARED / "dsb2018_img2d_noisy_seed0.npz")["n30"]
        truth = tifffile.imread(SHARED / "dsb2018_stardist_mask2d.tif") > 0
        reps = -(-size // noisy.shape[0])  # tile for sizes above 512 (scaling runs only)
        if reps > 1:
            noisy, truth = np.tile(noisy, (reps, reps)), np.tile(truth, (reps, reps))
        y0, x0 = (0, noisy.shape[1] - size) if size <= 512 else (0, 0)
        crop = (slice(y0, y0 + size), slice(x0, x0 + size))
        # the paper's DSB setting (§5): one expert + constant background, residual filter 3 for σ = 30, the
        # denoised image thresholded at 0.5 (the fast preset's Otsu threshold would make it another case)
        return (
            noisy[crop],
            truth[crop],
            {
                "init": "denoise-threshold",
                "threshold": 0.5,
                "experts": ("constant", "network"),
                "residual_filter": 3,
                "lam": 0.01,
            },
        )
    raise ValueError(f"unknown case {case!r}")


PRESET_NAMES = ("paper", "fast", "fast-previous")


def named_config(name: str) -> Any:
    """Return a preset, or ``fast-previous``: the ``fast`` preset before the robust defaults of issue 15.

    ``fast-previous`` is ``fast`` with λ = 0.04, full residuals and the fixed steps τ = 2, σ = 1/16,
    so that a run of this script compares the old and new default in the same process conditions.
    """
    from napari_self2seg.core import PrimalDualConfig, preset

    if name != "fast-previous":
        return preset(name)
    fast = preset("fast")
    steps = PrimalDualConfig(tau=2.0, sigma=1.0 / 16.0, max_iter=fast.solver.max_iter, check_every=25)
    return dataclasses.replace(fast, lam=0.04, residual="full", solver=steps)


def configured_case(case: str, size: int, preset_name: str) -> tuple[np.ndarray, np.ndarray, Any, dict[str, Any]]:
    """Return (image, truth, the preset's config with the case's settings, box keyword arguments)."""
    image, truth, extra = load_case(case, size)
    boxes: dict[str, Any] = {k: extra.pop(k) for k in ("fg_boxes", "bg_boxes") if k in extra}
    return image, truth, dataclasses.replace(named_config(preset_name), **extra), boxes


def run_single(case: str, size: int, preset_name: str, device: str, seed: int, max_outer: int | None) -> dict[str, Any]:
    """Run one configuration in this process and return its measurements."""
    import torch
    from skimage import segmentation

    chan_vese: Callable[..., Any] = segmentation.chan_vese

    from napari_self2seg.core import Phase, dice, iterate

    image, truth, config, boxes = configured_case(case, size, preset_name)
    if max_outer is not None:
        config = dataclasses.replace(config, max_outer_iter=max_outer)

    t0 = time.perf_counter()
    normalised = (image - image.min()) / (image.max() - image.min())
    chan_vese(normalised, mu=0.25, max_num_iter=200, tol=0)
    cv_time = time.perf_counter() - t0

    first_mask = None
    start = time.perf_counter()
    result = None
    for state in iterate(image, config, seed=seed, device=device, keep_problem=True, **boxes):
        if first_mask is None and state.phase is Phase.SEGMENT and state.message.startswith("segmentation"):
            first_mask = time.perf_counter() - start
        result = state.result or result
    total = time.perf_counter() - start
    if torch.cuda.is_available() and device != "cpu":
        torch.cuda.synchronize()
    assert result is not None

    from napari_self2seg.core import resegment

    t0 = time.perf_counter()
    resegment(result, lam=result.lam * 1.5)
    reseg_time = time.perf_counter() - t0

    score = dice(result.mask, truth)
    if case == "textures":  # the texture split has no natural polarity
        score = max(score, dice(~result.mask, truth))
    peak_gpu = float(torch.cuda.max_memory_allocated()) / 2**20 if torch.cuda.is_available() else None
    return {
        "case": case,
        "size": size,
        "preset": preset_name,
        "device": result.device,
        "dice": score,
        "foreground_fraction": float(result.mask.mean()),
        "truth_fraction": float(truth.mean()),
        "total_s": total,
        "first_mask_s": first_mask,
        "resegment_s": reseg_time,
        "timings_s": result.timings.as_dict(),
        "outer_iterations": result.outer_iterations,
        "max_outer_iter": config.max_outer_iter,
        "stop_reason": result.stop_reason,
        "chan_vese_s": cv_time,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_gpu_mib": peak_gpu,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def _row(r: dict[str, Any]) -> str:
    cv = r["chan_vese_s"]
    t = r["timings_s"]
    first = r["first_mask_s"]
    cells = [
        r["case"],
        str(r["size"]),
        r["preset"],
        r["device"],
        f"{r['dice']:.3f}",
        f"{r['total_s']:.1f} ({r['total_s'] / cv:.0f}×)",
        f"{first:.1f}" if first is not None else "–",
        f"{t['init']:.1f}",
        f"{t['expert_1']:.1f}",
        f"{t['expert_0']:.1f}",
        f"{t['segment']:.2f}",
        f"{r['resegment_s']:.2f}",
        str(r["outer_iterations"]),
        f"{cv:.2f}",
        f"{r['peak_rss_mib']:.0f}",
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| case | size | preset | device | Dice | total s (× chan_vese) | first mask s | init s | fg expert s "
    "| bg expert s | segment s | resegment s | outer | chan_vese s | peak RSS MiB |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main() -> None:
    """Parse arguments, run every combination in a subprocess, print a table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", nargs="+", default=["textures"], choices=["textures", "dsb"])
    parser.add_argument("--size", nargs="+", type=int, default=[256])
    parser.add_argument("--preset", nargs="+", default=["paper"], choices=PRESET_NAMES)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-outer", type=int, default=None, help="cap the outer iterations (for scaling runs)")
    parser.add_argument("--out", type=Path, default=None, help="append the JSON records to this file")
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:
        record = run_single(args.case[0], args.size[0], args.preset[0], args.device, args.seed, args.max_outer)
        print(json.dumps(record))
        return
    records = []
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(HEADER)
    for case in args.case:
        for size in args.size:
            for name in args.preset:
                cmd = [
                    sys.executable,
                    __file__,
                    "--single",
                    "--case",
                    case,
                    "--size",
                    str(size),
                    "--preset",
                    name,
                    "--device",
                    args.device,
                    "--seed",
                    str(args.seed),
                    *(["--max-outer", str(args.max_outer)] if args.max_outer is not None else []),
                ]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    print(f"| {case} | {size} | {name} | failed: {proc.stderr.strip().splitlines()[-1]} |")
                    continue
                record = json.loads(proc.stdout.strip().splitlines()[-1])
                records.append(record)
                print(_row(record), flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        previous = json.loads(args.out.read_text()) if args.out.exists() else []
        args.out.write_text(json.dumps(previous + records, indent=2))


if __name__ == "__main__":
    main()
