"""Reproduce the paper's DSB2018 comparison (Table 1) on the shared image, against classical baselines.

The 512² DSB2018 image of ``../shared/data`` is cut into its 16 non-overlapping 128² crops. The
noisy crops are cut from ``dsb2018_img2d_noisy_seed0.npz`` (σ = 10, 30, 50 on the 0–255 scale, not
clipped, ``default_rng(0)``), so every method sees exactly the same pixels.

Methods
-------
otsu            Otsu threshold of the noisy crop (no parameter).
chan_vese       skimage ``chan_vese`` (its ``mu`` is the "λ"), foreground = brighter phase.
tv_otsu         skimage ``denoise_tv_chambolle`` (its ``weight`` is the "λ"), then Otsu.
convex_cv       our primal–dual solver with constant foreground/background (experts replaced by
                their weighted means), started from the threshold of the noisy crop.
n2f_threshold   Noise2Fast on the whole crop, min–max normalised and thresholded at 0.5: the paper's
                denoise+threshold initialisation of ``sequential`` and Self2Seg on its own.
n2f_otsu        the same denoised crop thresholded by Otsu instead (what a user might do instead).
sequential      Noise2Fast on the whole crop, then our convex CV on the denoised crop (paper §5).
self2seg_1      Self2Seg, one Noise2Fast expert + constant background, denoise+threshold init,
                residual filter 3 for σ >= 30 (the paper's DSB setting). The init thresholds the
                same whole-image Noise2Fast output as ``sequential`` (the paper: both start from the
                same denoised image); it is trained once per crop and σ, passed as ``init_mask``,
                and its time is counted in every run that uses it.
self2seg_2      Self2Seg with two experts (run at the fixed λ only, see Notes).
self2seg_auto_1 ``self2seg_1`` with the automatic λ (``lam="auto"``, core/automatic_lam.py): one run per
                crop, no grid — the default a user gets.
self2seg_auto_2 the same with two experts.
self2seg_auto   the package's defaults without boxes: ``init="threshold"`` (Otsu's threshold of the
                noisy crop, the ``fast`` preset's), expert kinds and λ chosen from the image, no
                residual filter — what ``napari-self2seg segment IMAGE`` does.

Every mask is also split into objects with the package's default instance splitting
(``InstanceConfig()``, core/instances.py; Self2Seg through ``segment(..., instances=True)``) and scored
against the true instances: AP = TP / (TP + FP + FN) at IoU 0.5 and 0.75 and the DSB2018 mean AP over
IoU 0.5:0.05:0.95, at the fixed λ (table (c)).

Protocols: (a) one fixed λ per method, the best mean Dice at σ = 30, used for every σ; (b) the
paper's oracle: the best λ per crop. Dice of the binary mask against ``mask > 0``. PSNR (for methods
that denoise) is plain PSNR on [0, 1] after mapping clean and denoised crops with the same min–max
map (the clean crop's), not the authors' affine-fitted PSNR.

Notes
-----
Self2Seg runs the whole alternating scheme once per λ, so its grid is shorter than the classical
methods' (the run-time budget is 60 min on 2 CPU cores); ``self2seg_2`` runs only at the λ fixed for
``self2seg_1``, so its two protocols coincide.

Usage::

    python benchmarks/evaluate_dsb.py                      # full run, writes docs/results.md and the figure
    python benchmarks/evaluate_dsb.py --quick --out DIR    # 1 crop, σ = 30, every third λ, tiny networks (a test)
    python benchmarks/evaluate_dsb.py --methods otsu tv_otsu self2seg_auto_1 --out DIR   # a subset
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import tifffile
import torch
from skimage import filters, io, metrics, restoration, segmentation

from napari_self2seg import __version__
from napari_self2seg.core import DenoiserConfig, Self2SegConfig, dice, preset, segment
from napari_self2seg.core.config import BINARY_EXPERTS, PAPER_THRESHOLD, InstanceConfig, PrimalDualConfig
from napari_self2seg.core.denoiser.network import Noise2FastNet
from napari_self2seg.core.denoiser.training import train_expert
from napari_self2seg.core.energy import squared_residual, weighted_mean
from napari_self2seg.core.initialization import threshold_regions
from napari_self2seg.core.instances import Instances, instances_of
from napari_self2seg.core.metrics import average_precision
from napari_self2seg.core.primal_dual import PrimalDualState, solve

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared" / "data"
SIGMAS = (10, 30, 50)
CROP = 128
PAPER = {  # Table 1 of arXiv:2309.10511v2 (50 crops, oracle λ per image)
    "chan_vese": (0.820, 0.773, 0.582),
    "sequential": (0.799, 0.777, 0.735),
    "self2seg_1": (0.851, 0.825, 0.786),
}
GRIDS: dict[str, tuple[float, ...]] = {
    "otsu": (0.0,),
    "chan_vese": (0.01, 0.05, 0.1, 0.25, 0.5),
    "tv_otsu": (0.05, 0.1, 0.2, 0.3),
    "n2f_threshold": (0.0,),
    "n2f_otsu": (0.0,),
    "convex_cv": (0.0025, 0.005, 0.01, 0.02, 0.04, 0.08),
    "sequential": (0.0025, 0.005, 0.01, 0.02, 0.04, 0.08),
    "self2seg_1": (0.005, 0.01, 0.02, 0.04),
}
AUTO_METHODS = ("self2seg_auto_1", "self2seg_auto_2", "self2seg_auto")
"""Self2Seg with ``lam="auto"``: run once per crop and σ; both protocols coincide.

``self2seg_auto`` is the package's default: every expert kind ``"auto"`` (docs/robustness.md).
"""
METHODS = (*GRIDS, "self2seg_2", *AUTO_METHODS)
N2F_METHODS = frozenset(METHODS) - {"otsu", "chan_vese", "tv_otsu", "convex_cv", "self2seg_auto"}
"""Methods that use the whole-image Noise2Fast of the crop (``shared_n2f``)."""
Lam = float | Literal["auto"]

threshold_otsu: Callable[[np.ndarray], float] = filters.threshold_otsu
chan_vese: Callable[..., np.ndarray] = segmentation.chan_vese
denoise_tv: Callable[..., np.ndarray] = restoration.denoise_tv_chambolle
psnr_fn: Callable[..., float] = metrics.peak_signal_noise_ratio


@dataclasses.dataclass
class Crop:
    """One 128² crop: clean, truth (mask and instances) and the noisy versions."""

    index: int
    clean: np.ndarray
    truth: np.ndarray
    noisy: dict[int, np.ndarray]
    objects: np.ndarray


def load_crops(n: int) -> list[Crop]:
    """Return the first ``n`` of the 16 non-overlapping 128² crops (row-major)."""
    clean = tifffile.imread(SHARED / "dsb2018_stardist_img2d.tif").astype(np.float32)
    objects = tifffile.imread(SHARED / "dsb2018_stardist_mask2d.tif")
    truth = objects > 0
    noisy = np.load(SHARED / "dsb2018_img2d_noisy_seed0.npz")
    crops = []
    for k in range(16):
        y, x = (k // 4) * CROP, (k % 4) * CROP
        window = (slice(y, y + CROP), slice(x, x + CROP))
        noisy_crops = {s: noisy[f"n{s}"][window] for s in SIGMAS}
        crops.append(Crop(k, clean[window], truth[window], noisy_crops, objects[window]))
    return crops[:n]


def normalised(image: np.ndarray) -> np.ndarray:
    """Min–max normalise to [0, 1] (float64)."""
    values = np.asarray(image, dtype=np.float64)
    scaled: np.ndarray = (values - values.min()) / (values.max() - values.min())
    return scaled


def psnr(clean: np.ndarray, denoised: np.ndarray) -> float:
    """PSNR on [0, 1] with the clean crop's min–max map applied to both images."""
    lo, hi = float(clean.min()), float(clean.max())
    return float(psnr_fn((clean - lo) / (hi - lo), (denoised.astype(np.float64) - lo) / (hi - lo), data_range=1.0))


def convex_cv(f: np.ndarray, lam: float, init: np.ndarray, iterations: int = 10) -> np.ndarray:
    """Convex Chan–Vese (eq. 2 with TV weighted by λ): alternate constants and a primal–dual solve."""
    ft = torch.from_numpy(f.astype(np.float32))[None]
    start = torch.from_numpy(init.astype(np.float32))
    state = PrimalDualState.from_memberships(torch.stack((1 - start, start)))
    config = PrimalDualConfig(tau=2.0, sigma=1 / 16, max_iter=2000, gap_tol=1e-6, check_every=25)
    for _ in range(iterations):
        residuals = torch.stack([squared_residual(ft, weighted_mean(ft, u_k)) for u_k in state.u])
        solve(state, residuals, lam, config)
    return np.asarray(state.u[1].numpy() >= 0.5)


def whole_image_n2f(f: np.ndarray, config: DenoiserConfig, seed: int, device: str = "cpu") -> np.ndarray:
    """Noise2Fast on the whole image (mask = ones), the paper's sequential first stage."""
    image = torch.from_numpy(f.astype(np.float32))[None].to(device)
    generator = torch.Generator().manual_seed(seed)
    net = Noise2FastNet(config.width, config.n_blocks, generator=generator).to(device)
    training = train_expert(net, image, torch.ones_like(image[0], dtype=torch.bool), config, generator)
    while True:
        try:
            next(training)
        except StopIteration as stop:
            return np.asarray(stop.value.output[0].cpu().numpy(), dtype=np.float64)


def shared_n2f(
    crop: Crop, sigma: int, f: np.ndarray, base: Self2SegConfig, cache: dict[str, Any], device: str = "cpu"
) -> tuple[np.ndarray, float]:
    """Return the whole-image Noise2Fast of a noisy crop and its seconds, trained once and cached."""
    key = f"n2f-{crop.index}-{sigma}"
    if key not in cache:
        t0 = time.perf_counter()
        den = whole_image_n2f(f, base.denoiser, seed=0, device=device)
        cache[key] = (den, time.perf_counter() - t0)
    den, seconds = cache[key]
    return den, seconds


def self2seg_config(base: Self2SegConfig, sigma: int, experts: Literal[1, 2], lam: Lam) -> Self2SegConfig:
    """Apply the paper's DSB setting: denoise+threshold init (given as a mask), residual filter 3 for σ >= 30."""
    return dataclasses.replace(
        base,
        init="mask",
        experts=BINARY_EXPERTS[experts],
        residual_filter=3 if sigma >= 30 else 1,
        lam=lam,
    )


Record = dict[str, Any]


def run_method(
    method: str, crop: Crop, sigma: int, lam: Lam, base: Self2SegConfig, cache: dict[str, Any], device: str = "cpu"
) -> Record:
    """One method on one noisy crop at one λ: Dice, PSNR (if it denoises), seconds, mask, denoised."""
    noisy = crop.noisy[sigma]
    f = normalised(noisy)
    # the whole-image Noise2Fast is trained (or taken from the cache) before the clock starts and its
    # training time added once, whichever method happens to train it
    den, shared_seconds = shared_n2f(crop, sigma, f, base, cache, device) if method in N2F_METHODS else (f, 0.0)
    t0 = time.perf_counter()
    denoised: np.ndarray | None = None
    objects: Instances | None = None
    lam_used = lam
    if lam == "auto" and method not in AUTO_METHODS:
        raise ValueError(f"{method} has no automatic λ")
    weight = 0.0 if lam == "auto" else lam  # the classical methods' λ
    if method == "otsu":
        mask = noisy > threshold_otsu(noisy)
    elif method == "chan_vese":
        phase = chan_vese(f, mu=weight, lambda1=1.0, lambda2=1.0, tol=1e-3, max_num_iter=500, dt=0.5)
        mask = phase if f[phase].mean() >= f[~phase].mean() else ~phase
    elif method == "tv_otsu":
        den = denoise_tv(f, weight=weight)
        mask = den > threshold_otsu(den)
        denoised = den * (noisy.max() - noisy.min()) + noisy.min()
    elif method == "convex_cv":
        mask = convex_cv(f, weight, f > 0.5)
    elif method == "self2seg_auto":
        result = segment(noisy, dataclasses.replace(base, init="threshold"), seed=0, device=device, instances=True)
        mask, denoised, lam_used, objects = result.mask, result.denoised, result.lam, result.instances
    elif method in ("n2f_threshold", "n2f_otsu"):
        den_n = normalised(den)
        mask = den_n > (PAPER_THRESHOLD if method == "n2f_threshold" else threshold_otsu(den_n))
        denoised = den * (noisy.max() - noisy.min()) + noisy.min()
    elif method == "sequential":
        den_n = normalised(den)
        mask = convex_cv(den_n, weight, den_n > PAPER_THRESHOLD)
        denoised = den * (noisy.max() - noisy.min()) + noisy.min()
    else:
        # denoise+threshold init from the same whole-image Noise2Fast as `sequential` (paper §5);
        # it does not depend on λ, so it is trained once per crop and σ and its time is counted in every run
        init_mask = threshold_regions(normalised(den), 2, PAPER_THRESHOLD, "denoised crop")[1]
        experts: Literal[1, 2] = 1 if method.endswith("_1") else 2
        config = self2seg_config(base, sigma, experts, lam)
        result = segment(noisy, config, init_mask=init_mask, seed=0, device=device, instances=True)
        mask, denoised, lam_used, objects = result.mask, result.denoised, result.lam, result.instances
    seconds = time.perf_counter() - t0 + shared_seconds
    if objects is None:  # a classical method: the same default splitting of its mask
        objects = instances_of(mask.astype(np.uint8), InstanceConfig())
    matches = average_precision(crop.objects, objects.labels)
    return {
        "ap50": matches[0.5].average_precision,
        "ap75": matches[0.75].average_precision,
        "map": float(np.mean([m.average_precision for m in matches.values()])),
        "dice": dice(mask, crop.truth),
        "psnr": psnr(crop.clean, denoised) if denoised is not None else None,
        "seconds": seconds,
        "lam": lam_used,
        "mask": mask,
        "denoised": denoised,
    }


def evaluate(
    crops: list[Crop],
    sigmas: tuple[int, ...],
    base: Self2SegConfig,
    log: Callable[[str], None],
    methods: tuple[str, ...] = METHODS,
    only_lam: dict[str, float] | None = None,
    device: str = "cpu",
    lam_grids: Mapping[str, tuple[float, ...]] = GRIDS,
) -> dict[str, Any]:
    """Run the chosen methods on every crop and σ, over their λ grids; then apply both protocols.

    ``only_lam`` replaces a method's grid by one λ (its oracle protocol then equals the fixed one);
    ``lam_grids`` replaces :data:`GRIDS` (``--quick`` runs shorter grids).
    """
    cache: dict[str, Any] = {}
    runs: dict[tuple[str, int, Lam, int], Record] = {}

    def run_all(method: str, lams: tuple[Lam, ...]) -> None:
        started = time.perf_counter()
        for sigma in sigmas:
            for lam in lams:
                for crop in crops:
                    runs[(method, sigma, lam, crop.index)] = run_method(method, crop, sigma, lam, base, cache, device)
                chosen = [runs[(method, sigma, lam, c.index)] for c in crops]
                used = f" (λ chosen: {np.mean([r['lam'] for r in chosen]):.4f} on average)" if lam == "auto" else ""
                log(f"  {method} σ={sigma} λ={lam}: mean Dice {np.mean([r['dice'] for r in chosen]):.3f}{used}")
        log(f"{method}: {time.perf_counter() - started:.0f} s")

    grids: dict[str, tuple[Lam, ...]] = {m: lam_grids[m] for m in methods if m in lam_grids}
    grids.update({m: (lam,) for m, lam in (only_lam or {}).items() if m in grids})
    for method, grid in grids.items():
        run_all(method, grid)
    select_sigma = 30 if 30 in sigmas else sigmas[0]

    def fixed_lambda(method: str) -> Lam:
        return max(
            grids[method], key=lambda lam: np.mean([runs[(method, select_sigma, lam, c.index)]["dice"] for c in crops])
        )

    fixed: dict[str, Lam] = {m: fixed_lambda(m) for m in grids}
    if "self2seg_2" in methods:  # at the λ fixed for self2seg_1 (0.02 if that was not run)
        grids["self2seg_2"] = (fixed.get("self2seg_1", 0.02),)
        fixed["self2seg_2"] = grids["self2seg_2"][0]
        run_all("self2seg_2", grids["self2seg_2"])
    for method in AUTO_METHODS:
        if method in methods:
            grids[method], fixed[method] = ("auto",), "auto"
            run_all(method, grids[method])
    table: dict[str, Any] = {}
    for method in grids:
        row: dict[str, Any] = {"lambda_fixed": fixed[method], "lambda_grid": list(grids[method])}
        for sigma in sigmas:
            fixed_runs = [runs[(method, sigma, fixed[method], c.index)] for c in crops]
            oracle_runs = [
                max((runs[(method, sigma, lam, c.index)] for lam in grids[method]), key=lambda r: r["dice"])
                for c in crops
            ]
            psnrs = [r["psnr"] for r in fixed_runs if r["psnr"] is not None]
            row[str(sigma)] = {
                "fixed_mean": float(np.mean([r["dice"] for r in fixed_runs])),
                "fixed_std": float(np.std([r["dice"] for r in fixed_runs])),
                "oracle_mean": float(np.mean([r["dice"] for r in oracle_runs])),
                "oracle_std": float(np.std([r["dice"] for r in oracle_runs])),
                "psnr_mean": float(np.mean(psnrs)) if psnrs else None,
                "psnr_std": float(np.std(psnrs)) if psnrs else None,
                "seconds_per_crop": float(np.mean([r["seconds"] for r in fixed_runs])),
                "lam_mean": float(np.mean([r["lam"] for r in fixed_runs])),
                **{key: float(np.mean([r[key] for r in fixed_runs])) for key in ("ap50", "ap75", "map")},
            }
        table[method] = row
    return {"table": table, "runs": runs, "fixed": fixed}


def figure(crop: Crop, sigma: int, evaluation: dict[str, Any], path: Path) -> list[str]:
    """Save a panel strip (noisy, masks per method at fixed λ, denoised) and return the panel names."""
    runs, fixed = evaluation["runs"], evaluation["fixed"]
    panels = [("noisy", normalised(crop.noisy[sigma])), ("ground truth", crop.truth.astype(float))]
    for method in evaluation["table"]:
        panels.append((f"{method} mask", runs[(method, sigma, fixed[method], crop.index)]["mask"].astype(float)))
    for method in ("tv_otsu", "sequential", "self2seg_1", "self2seg_auto_1"):
        if method not in fixed:
            continue
        den = runs[(method, sigma, fixed[method], crop.index)]["denoised"]
        panels.append((f"{method} denoised", np.clip((den - crop.clean.min()) / np.ptp(crop.clean), 0, 1)))
    gap = np.ones((CROP, 4))
    strip = np.concatenate([np.concatenate([p, gap], axis=1) for _, p in panels], axis=1)
    io.imsave(path, (strip * 255).astype(np.uint8), check_contrast=False)
    return [name for name, _ in panels]


def has_lambda(method: str) -> bool:
    """Whether the method has a λ grid (methods without one are listed with the single value 0)."""
    return method not in AUTO_METHODS and GRIDS.get(method) != (0.0,)


def lambda_text(method: str, row: dict[str, Any], sigma: int) -> str:
    """Return the λ column: the fixed value, "auto (mean chosen)" or "–"."""
    if method in AUTO_METHODS:
        return f"auto (mean {row[str(sigma)]['lam_mean']:.3f})"
    return format(row["lambda_fixed"], "g") if has_lambda(method) else "–"


def table_row(cells: list[str]) -> str:
    """Return one Markdown table row."""
    return "| " + " | ".join(cells) + " |"


def table_head(columns: list[str]) -> list[str]:
    """Return a Markdown table's header row and its rule."""
    return [table_row(columns), "|" + "---|" * len(columns)]


def markdown(
    result: dict[str, Any], sigmas: tuple[int, ...], n_crops: int, command: str, seconds: float, figure_note: str
) -> str:
    """Write the results page."""
    table = result["table"]
    lines = [
        "# DSB2018: Self2Seg against classical baselines",
        "",
        f"Generated by `{command}` in {seconds / 60:.1f} min on {platform.machine()} "
        f"({torch.get_num_threads()} threads), napari-self2seg {__version__}, torch {torch.__version__}, "
        f"numpy {np.__version__}.",
        "",
        f"{n_crops} non-overlapping 128² crops of the shared DSB2018 image, noise σ = {', '.join(map(str, sigmas))} "
        "from `dsb2018_img2d_noisy_seed0.npz` (0–255 scale, not clipped). Dice of the binary mask against `mask > 0`, "
        "mean ± std over crops. Self2Seg uses the `fast` preset with the paper's DSB setting (denoise+threshold init, "
        "residual filter 3 for σ ≥ 30); its initial mask thresholds the same whole-image Noise2Fast output that "
        "`sequential` and `n2f_threshold` use (trained once per crop and σ, its time counted in each run). "
        "The paper's numbers are on 50 other crops of DSB2018 (DenoiSeg's test set), "
        "so the comparison is indicative, not like for like.",
        "",
        "## (a) One fixed λ per method, chosen on σ = 30",
        "",
        *table_head(
            ["method", "λ", *(f"σ={s} Dice" for s in sigmas), *(f"σ={s} PSNR" for s in sigmas), "s/crop (σ=30)"]
        ),
    ]
    for method, row in table.items():
        dices = [f"{row[str(s)]['fixed_mean']:.3f} ± {row[str(s)]['fixed_std']:.3f}" for s in sigmas]
        psnrs = [f"{row[str(s)]['psnr_mean']:.2f}" if row[str(s)]["psnr_mean"] is not None else "–" for s in sigmas]
        select = 30 if 30 in sigmas else sigmas[0]
        secs = row[str(select)]["seconds_per_crop"]
        lines.append(table_row([method, lambda_text(method, row, select), *dices, *psnrs, f"{secs:.2f}"]))
    lines += [
        "",
        "## (b) Oracle λ per crop (the paper's protocol), next to the paper's Table 1",
        "",
        *table_head(["method", "λ grid", *(f"σ={s}" for s in sigmas), "paper " + " / ".join(f"σ={s}" for s in SIGMAS)]),
    ]
    for method, row in table.items():
        grid = row["lambda_grid"]
        oracle = [f"{row[str(s)]['oracle_mean']:.3f} ± {row[str(s)]['oracle_std']:.3f}" for s in sigmas]
        paper = " / ".join(f"{v:.3f}" for v in PAPER[method]) if method in PAPER else "–"
        grid_text = ", ".join(f"{g:g}" for g in grid) if has_lambda(method) else "–"
        if method in AUTO_METHODS:
            grid_text = "auto (one run)"
        lines.append(table_row([method, grid_text, *oracle, paper]))
    lines += [
        "",
        "## (c) Instances at the fixed λ",
        "",
        "Each mask split into objects by the package's default splitting (`InstanceConfig()`: holes filled, objects "
        "under 20 px dropped, distance-transform watershed), matched one to one with the true nuclei; "
        "AP = TP / (TP + FP + FN), mean AP over IoU 0.5:0.05:0.95 (DSB2018), mean over crops.",
        "",
        *table_head(["method", *(f"σ={s} AP@0.5 / AP@0.75 / mAP" for s in sigmas)]),
    ]
    for method, row in table.items():
        cells = [" / ".join(f"{row[str(s)][key]:.3f}" for key in ("ap50", "ap75", "map")) for s in sigmas]
        lines.append(table_row([method, *cells]))
    lines += ["", figure_note, ""]
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, evaluate, write the JSON, the page and the figure."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true", help="1 crop, σ = 30, every third λ, tiny networks, no restart: a smoke test"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="folder for results.md and the figure")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS), help="run only these")
    parser.add_argument(
        "--only-lam",
        nargs=2,
        action="append",
        default=[],
        metavar=("METHOD", "LAM"),
        help="run METHOD at this one λ instead of its grid (e.g. the fixed λ of an earlier full run)",
    )
    parser.add_argument("--device", default="cpu", help="where Self2Seg runs (the baselines run on the CPU)")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.quick:
        crops, sigmas = load_crops(1), cast("tuple[int, ...]", (30,))
        lam_grids = {method: grid[::3] for method, grid in GRIDS.items()}  # every third λ of each grid
        base = dataclasses.replace(
            preset("fast"),
            max_outer_iter=2,
            denoiser=dataclasses.replace(preset("fast").denoiser, width=8, n_blocks=2, patience=3, max_steps=60),
            restart_denoiser=None,  # a smoke test of the page: no restart with paper-size experts after a collapse
        )
    else:
        crops, sigmas, base, lam_grids = load_crops(16), SIGMAS, preset("fast"), GRIDS
    only_lam = {method: float(lam) for method, lam in args.only_lam}
    result = evaluate(
        crops,
        sigmas,
        base,
        log=lambda m: print(m, flush=True),
        methods=tuple(args.methods),
        only_lam=only_lam,
        device=args.device,
        lam_grids=lam_grids,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    fig_sigma = 50 if 50 in sigmas else sigmas[-1]
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    shown = crops[min(5, len(crops) - 1)]
    names = figure(shown, fig_sigma, result, args.out / "images" / "dsb_methods.png")
    note = (
        f"![methods](images/dsb_methods.png)\n\nCrop {shown.index} at σ = {fig_sigma}, fixed λ; "
        f"panels left to right: {', '.join(names)}."
    )
    command = "python benchmarks/evaluate_dsb.py" + (" --quick" if args.quick else "")
    if tuple(args.methods) != METHODS:
        command += " --methods " + " ".join(args.methods)
    command += "".join(f" --only-lam {method} {lam:g}" for method, lam in only_lam.items())
    (args.out / "results.md").write_text(
        markdown(result, sigmas, len(crops), command, time.perf_counter() - started, note)
    )
    (args.out / "results.json").write_text(json.dumps(result["table"], indent=1))
    print(f"wrote {args.out / 'results.md'} in {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
