"""Choose the instance-splitting defaults on the shared DSB2018 image (and nothing else).

Each setting of ``InstanceConfig`` splits four kinds of mask of the 16 non-overlapping 128² crops:
the true mask (``mask > 0``: the splitting alone) and the TV+Otsu masks of the σ = 10, 30, 50 noisy
crops (denoise_tv_chambolle weight 0.1 on the min–max normalised crop, then Otsu: masks with the
errors of a real segmentation). The score is the DSB2018 mean average precision against the true
instances, averaged over crops; the table lists the best settings and the chosen defaults.

Usage::

    python benchmarks/instance_study.py
"""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING

import numpy as np
import tifffile
from skimage import filters, restoration

from napari_self2seg.core.config import InstanceConfig
from napari_self2seg.core.instances import instances_of
from napari_self2seg.core.metrics import mean_average_precision

if TYPE_CHECKING:
    from collections.abc import Callable

denoise_tv: Callable[..., np.ndarray] = restoration.denoise_tv_chambolle
threshold_otsu: Callable[[np.ndarray], float] = filters.threshold_otsu


def masks_and_truths() -> tuple[dict[str, list[np.ndarray]], list[np.ndarray]]:
    """Return the masks to split by kind ("true", "tv σ=…") and the true instance labels, per crop."""
    from evaluate_dsb import SIGMAS, load_crops, normalised

    crops = load_crops(16)
    masks: dict[str, list[np.ndarray]] = {"true": [crop.truth for crop in crops]}
    for sigma in SIGMAS:
        tv = [denoise_tv(normalised(crop.noisy[sigma]), weight=0.1) for crop in crops]
        masks[f"tv σ={sigma}"] = [t > threshold_otsu(t) for t in tv]
    return masks, [crop.objects for crop in crops]


def score(config: InstanceConfig, masks: list[np.ndarray], truths: list[np.ndarray]) -> float:
    """Mean over crops of the mean AP of the split masks."""
    return float(
        np.mean(
            [
                mean_average_precision(t, instances_of(m.astype(np.uint8), config).labels)
                for m, t in zip(masks, truths, strict=True)
            ]
        )
    )


def split_ms_per_256() -> float:
    """Mean time of the default splitting of a 256² quadrant of the true mask (4 quadrants, 5 repeats)."""
    from evaluate_dsb import SHARED

    truth = tifffile.imread(SHARED / "dsb2018_stardist_mask2d.tif") > 0
    quadrants = [truth[y : y + 256, x : x + 256].astype(np.uint8) for y in (0, 256) for x in (0, 256)]
    instances_of(quadrants[0], InstanceConfig())  # warm-up
    t0 = time.perf_counter()
    for _ in range(5):
        for quadrant in quadrants:
            instances_of(quadrant, InstanceConfig())
    return (time.perf_counter() - t0) / 20 * 1000


def main() -> None:
    """Score the grid, print the best settings and the defaults."""
    masks, truths = masks_and_truths()
    grid = [InstanceConfig(split=False, min_size=s) for s in (0, 10, 20, 30)]
    grid += [
        InstanceConfig(min_distance=d, smoothing=g, min_size=s)
        for d, g, s in itertools.product((3, 4, 5, 7, 9), (0.0, 1.0, 2.0), (0, 10, 20, 30))
    ]
    t0 = time.perf_counter()
    rows = []
    for config in grid:
        per_kind = {kind: score(config, m, truths) for kind, m in masks.items()}
        rows.append((float(np.mean(list(per_kind.values()))), config, per_kind))
    rows.sort(key=lambda row: -row[0])
    kinds = list(masks)
    print(f"# {len(grid)} settings × {len(kinds)} mask kinds × 16 crops in {time.perf_counter() - t0:.0f} s")
    print("| split | min_distance | smoothing | min_size | " + " | ".join(kinds) + " | mean |")
    print("|---" * (5 + len(kinds)) + "|")
    default = InstanceConfig()
    shown = rows[:8] + [r for r in rows if r[1] == default or (not r[1].split and r[1].min_size == 0)]
    for mean, c, per_kind in shown:
        mark = " (default)" if c == default else ""
        cells = [str(c.split), str(c.min_distance) if c.split else "–", f"{c.smoothing:g}" if c.split else "–"]
        cells += [str(c.min_size), *(f"{per_kind[k]:.3f}" for k in kinds), f"{mean:.3f}{mark}"]
        print("| " + " | ".join(cells) + " |")
    print(f"\nthe default splitting takes {split_ms_per_256():.1f} ms per 256² image (the true mask's quadrants)")


if __name__ == "__main__":
    main()
