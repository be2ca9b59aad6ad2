"""How much of Self2Seg's DSB2018 result is decided by the initial mask.

On the same 16 crops and noise as ``evaluate_dsb.py``, compare the paper's denoise+threshold
initialisation (whole-image Noise2Fast, min–max normalised, threshold 0.5) with the same denoised
crop thresholded by Otsu (the 256-bin histogram split of maximal between-class variance, as
skimage's ``threshold_otsu``): the Dice of each initial mask, and of the
Self2Seg result (one expert + constant background, ``fast`` preset, residual filter 3 for σ >= 30)
started from it, at one λ for all crops and σ.

Usage::

    python benchmarks/init_study.py [--lam 0.01] [--crops 16]
"""

from __future__ import annotations

import argparse
import time
from typing import Any, cast

import numpy as np

from evaluate_dsb import SIGMAS, load_crops, normalised, self2seg_config, shared_n2f
from napari_self2seg.core import dice, preset, segment
from napari_self2seg.core.config import PAPER_THRESHOLD

INITS = ("threshold 0.5", "Otsu")


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold: the histogram split that maximises the between-class variance."""
    counts, edges = np.histogram(np.asarray(values, dtype=np.float64), bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)[:-1]
    weight_high = counts.sum() - weight_low
    sums_low = np.cumsum(counts * centres)[:-1]
    mean_low = sums_low / np.maximum(weight_low, 1)
    mean_high = (np.sum(counts * centres) - sums_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(centres[int(np.argmax(between))])


def main() -> None:
    """Print a Markdown table: mean ± std Dice of the initial masks and of the Self2Seg results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lam", type=float, default=0.01)
    parser.add_argument("--crops", type=int, default=16)
    args = parser.parse_args()
    base, cache = preset("fast"), cast("dict[str, Any]", {})
    crops = load_crops(args.crops)
    started = time.perf_counter()
    scores: dict[tuple[str, str, int], list[float]] = {}
    for sigma in SIGMAS:
        for crop in crops:
            noisy = crop.noisy[sigma]
            den, _ = shared_n2f(crop, sigma, normalised(noisy), base, cache)
            den_n = normalised(den)
            config = self2seg_config(base, sigma, 1, args.lam)
            for init in INITS:
                level = PAPER_THRESHOLD if init == "threshold 0.5" else otsu_threshold(den_n)
                init_mask = den_n > level
                result = segment(noisy, config, init_mask=init_mask, seed=0, device="cpu")
                scores.setdefault(("initial mask", init, sigma), []).append(dice(init_mask, crop.truth))
                scores.setdefault(("Self2Seg", init, sigma), []).append(dice(result.mask, crop.truth))
    lines = [
        f"λ = {args.lam:g}, {len(crops)} crops, {(time.perf_counter() - started) / 60:.1f} min",
        "",
        "| mask | initialisation | " + " | ".join(f"σ={s}" for s in SIGMAS) + " |",
        "|---|---|" + "---|" * len(SIGMAS),
    ]
    for what in ("initial mask", "Self2Seg"):
        for init in INITS:
            cells = [f"{np.mean(scores[(what, init, s)]):.3f} ± {np.std(scores[(what, init, s)]):.3f}" for s in SIGMAS]
            lines.append(f"| {what} | {init} | " + " | ".join(cells) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
