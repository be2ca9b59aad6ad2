"""Robustness suite: the default run against intensity baselines on broad, seeded families of images.

Families (all synthetic except ``dsb``, which reads ``../shared/data``):

* ``textures``: 12 equal-mean texture pairs (stripes at several angles and periods,
  checkerboards, dots, grain, mixed) on regions of several shapes, at noise 0.1 and 0.3
  (texture amplitude 0.25), boxes of 24–48 px placed inside each region — 24 cases;
* ``shapes``: a brighter region of various shapes covering 10–60 % of the image;
* ``nuclei``: synthetic nuclei, plain, with a bias field, with uneven brightness, touching;
* ``dsb``: the four 256² quadrants of the shared DSB2018 image at σ = 10, 30, 50, with a
  box inside a nucleus and one in the background (as a user would draw them);
* ``samples``: the plugin's two napari samples with one box per region;
* ``boxes``: where the user puts the nucleus box — the bundled nuclei sample with a box in
  each of its 10 largest nuclei, and every ``dsb`` quadrant with a box in each of its 3 largest
  nuclei (bright and dim ones alike), the background box as in ``dsb``.

Each case runs the package's defaults (``segment(image, fg_boxes=…, bg_boxes=…)``: the
``fast`` preset, boxes, seed 0) and reports its Dice, whether it flooded (> 95 % foreground)
or vanished (< 0.5 %) or ended ``degenerate``, whether it ``restarted`` after a collapse, and
the Dice of Otsu, TV(0.1)+Otsu and skimage ``chan_vese``. Intensity baselines take the brighter
phase as foreground, except on textures, where no phase is brighter and they get the better of
both polarities.

Usage::

    python benchmarks/robustness.py                       # everything (about 45 min on 2 cores)
    python benchmarks/robustness.py --family textures --out benchmarks/out/robustness.json
    python benchmarks/robustness.py --family textures --seeds 0 1 2   # every case with three seeds

The seed sets the experts' initial weights and training patches (the images stay the same): the
texture pairs near the limit of what the experts separate end differently with another seed, so a
decision about defaults should rest on several seeds (docs/robustness.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Iterator

    from napari_self2seg.core import Self2SegConfig
    from napari_self2seg.datasets import SyntheticImage

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
FAMILIES = ("textures", "shapes", "nuclei", "dsb", "samples", "boxes")
BOXED_NUCLEI = {"sample": 10, "dsb": 3}
"""How many of the largest nuclei of each image get the box in the ``boxes`` family."""

# (fg texture, period, angle), (bg texture, period, angle): the first is the flooding pair
TEXTURE_PAIRS = [
    (("checkerboard", 12, 0), ("stripes", 9, 45)),
    (("stripes", 8, 0), ("stripes", 8, 90)),
    (("stripes", 6, 45), ("stripes", 6, -45)),
    (("stripes", 10, 0), ("stripes", 5, 0)),
    (("checkerboard", 8, 0), ("checkerboard", 16, 0)),
    (("dots", 10, 0), ("grain", 8, 0)),
    (("dots", 8, 0), ("stripes", 8, 30)),
    (("grain", 4, 0), ("grain", 14, 0)),
    (("checkerboard", 12, 30), ("dots", 12, 0)),
    (("stripes", 12, 60), ("checkerboard", 10, 0)),
    (("grain", 6, 0), ("stripes", 7, 120)),
    (("dots", 14, 0), ("checkerboard", 14, 45)),
]
REGIONS = [("disk", 0.3), ("star", 0.35), ("ellipse", 0.25), ("blobs", 0.3), ("band", 0.4), ("disk", 0.45)]


@dataclass(frozen=True)
class Case:
    """One image of the suite."""

    family: str
    name: str
    sample: SyntheticImage
    polarity_free: bool  # textures: no brighter phase


def texture_cases(size: int) -> Iterator[Case]:
    from napari_self2seg.datasets import blob_mask, texture, texture_pair

    shape = (size, size)
    for i, (fg, bg) in enumerate(TEXTURE_PAIRS):
        region, fraction = REGIONS[i % len(REGIONS)]
        truth = blob_mask(shape, fraction, kind=region, seed=i)
        fg_tex = texture(fg[0], shape, period=fg[1], angle=fg[2], seed=2 * i)
        bg_tex = texture(bg[0], shape, period=bg[1], angle=bg[2], seed=2 * i + 1)
        for noise in (0.1, 0.3):
            box = (24, 32, 40, 48)[i % 4]
            sample = texture_pair(fg_tex, bg_tex, truth, noise=noise, seed=i, box=box)
            name = f"{fg[0]}{fg[1]}@{fg[2]} vs {bg[0]}{bg[1]}@{bg[2]}, {region}, noise {noise}"
            yield Case("textures", name, sample, polarity_free=True)


def shape_cases(size: int) -> Iterator[Case]:
    from napari_self2seg.datasets import SyntheticImage, blob_mask, inner_box

    for i, (kind, fraction) in enumerate(
        [("disk", 0.1), ("ellipse", 0.25), ("blobs", 0.3), ("star", 0.4), ("band", 0.6)]
    ):
        truth = blob_mask((size, size), fraction, kind=kind, seed=i)
        clean = np.where(truth, 0.6, 0.4)
        noisy = clean + np.random.default_rng(i).normal(0, 0.2, clean.shape)
        sample = SyntheticImage(
            noisy.astype(np.float32), clean.astype(np.float32), truth, inner_box(truth, 32), inner_box(~truth, 32)
        )
        yield Case("shapes", f"{kind} {fraction:.0%} foreground, noise 0.2", sample, polarity_free=False)


def nuclei_cases(size: int) -> Iterator[Case]:
    from napari_self2seg.datasets import synthetic_nuclei

    variants = {"plain": {}, "bias field": {"bias": 0.8}, "uneven brightness": {"brightness_spread": 0.6}}
    variants["touching"] = {"touching": True}
    for name, kwargs in variants.items():
        for seed in (0, 1):
            sample = synthetic_nuclei(size, seed=seed, **kwargs)  # type: ignore[arg-type]
            yield Case("nuclei", f"{name}, seed {seed}", sample, polarity_free=False)


def dsb_cases() -> Iterator[Case]:
    import tifffile

    from napari_self2seg.datasets import SyntheticImage, inner_box

    noisy_all = np.load(SHARED / "dsb2018_img2d_noisy_seed0.npz")
    clean_all = tifffile.imread(SHARED / "dsb2018_stardist_img2d.tif").astype(np.float32)
    truth_all = tifffile.imread(SHARED / "dsb2018_stardist_mask2d.tif") > 0
    for sigma in (10, 30, 50):
        for qy in (0, 256):
            for qx in (0, 256):
                crop = (slice(qy, qy + 256), slice(qx, qx + 256))
                truth = truth_all[crop]
                sample = SyntheticImage(
                    noisy_all[f"n{sigma}"][crop], clean_all[crop], truth, inner_box(truth, 16), inner_box(~truth, 40)
                )
                yield Case("dsb", f"σ {sigma}, crop ({qy}, {qx})", sample, polarity_free=False)


def sample_cases() -> Iterator[Case]:
    """Yield the two napari samples with one box per region, as a first-time user runs them."""
    from napari_self2seg.datasets import SyntheticImage, inner_box, two_textures
    from napari_self2seg.sample_data import load_noisy_nuclei

    image, labels = load_noisy_nuclei()
    truth = labels > 0
    nuclei = SyntheticImage(image, image, truth, inner_box(truth, 16), inner_box(~truth, 40))
    yield Case("samples", "bundled noisy nuclei (DSB2018 crop, σ 30), 256²", nuclei, polarity_free=False)
    yield Case("samples", "bundled two textures (stripes 6), 128²", two_textures(128, period=6), polarity_free=True)


def boxes_in_largest_nuclei(objects: np.ndarray, count: int) -> list[tuple[int, tuple[int, int, int, int]]]:
    """Return ``(label, box)`` for the ``count`` largest objects whose 16 px inner box keeps at least 12 px."""
    from napari_self2seg.datasets import inner_box

    fitting = []
    for k in range(1, int(objects.max()) + 1):
        inside = objects == k
        box = inner_box(inside, 16)  # shrunk where the object is thinner
        if box[2] - box[0] >= 12:
            fitting.append((int(inside.sum()), k, box))
    return [(k, box) for _, k, box in sorted(fitting, reverse=True)[:count]]


def box_placement_cases() -> Iterator[Case]:
    """Yield the bundled nuclei sample and the DSB2018 quadrants with the nucleus box in each large nucleus."""
    from napari_self2seg.core.instances import label_components
    from napari_self2seg.datasets import SyntheticImage, inner_box
    from napari_self2seg.sample_data import load_noisy_nuclei

    image, instances = load_noisy_nuclei()
    images = [("bundled nuclei sample", image, image, instances, BOXED_NUCLEI["sample"])]
    for case in dsb_cases():
        s = case.sample
        images.append((case.name, s.image, s.clean, label_components(s.truth, connectivity=1), BOXED_NUCLEI["dsb"]))
    for name, noisy, clean, objects, count in images:
        truth = objects > 0
        background = inner_box(~truth, 40)
        for k, box in boxes_in_largest_nuclei(objects, count):
            y0, x0, y1, x1 = box
            brightness = float(np.asarray(noisy)[y0:y1, x0:x1].mean())
            sample = SyntheticImage(noisy, clean, truth, box, background)
            yield Case("boxes", f"{name}, box on nucleus {k} (mean {brightness:.0f})", sample, polarity_free=False)


def cases(family: str, size: int) -> Iterator[Case]:
    if family == "textures":
        return texture_cases(size)
    if family == "shapes":
        return shape_cases(size)
    if family == "nuclei":
        return nuclei_cases(size)
    if family == "samples":
        return sample_cases()
    if family == "boxes":
        return box_placement_cases()
    return dsb_cases()


def baselines(image: np.ndarray, truth: np.ndarray, polarity_free: bool) -> dict[str, float]:
    """Dice of Otsu, TV(0.1)+Otsu and chan_vese on the [0, 1]-normalised image."""
    from evaluate_dsb import chan_vese, denoise_tv, normalised, threshold_otsu  # typed skimage wrappers
    from napari_self2seg.core import dice

    f = normalised(image)

    def score(mask: np.ndarray, values: np.ndarray) -> float:
        if polarity_free:
            return max(dice(mask, truth), dice(~mask, truth))
        brighter = values[mask].mean() >= values[~mask].mean() if mask.any() and (~mask).any() else True
        return dice(mask if brighter else ~mask, truth)

    tv = denoise_tv(f, weight=0.1)
    cv = chan_vese(f, mu=0.25, lambda1=1, lambda2=1, tol=1e-3, max_num_iter=500, dt=0.5).astype(bool)
    return {
        "otsu": score(f > threshold_otsu(f), f),
        "tv_otsu": score(tv > threshold_otsu(tv), f),
        "chan_vese": score(cv, f),
    }


def varied(overrides: dict[str, Any] | None) -> Self2SegConfig | None:
    """Return the default configuration with ``overrides`` (top-level fields of a run record), or None."""
    if not overrides:
        return None
    from napari_self2seg.core import preset
    from napari_self2seg.core.config import config_from_dict

    return config_from_dict({**dataclasses.asdict(preset()), **overrides})


def run_case(
    case: Case, device: str, config: Self2SegConfig | None = None, with_baselines: bool = True, seed: int = 0
) -> dict[str, Any]:
    from napari_self2seg.core import dice, segment

    s = case.sample
    t0 = time.perf_counter()
    result = segment(s.image, fg_boxes=[s.fg_box], bg_boxes=[s.bg_box], seed=seed, device=device, config=config)
    seconds = time.perf_counter() - t0
    fraction = float(result.mask.mean())
    return {
        "family": case.family,
        "case": case.name,
        "seed": seed,
        "self2seg": dice(result.mask, s.truth),
        "seconds": seconds,
        "foreground": fraction,
        "truth_foreground": float(s.truth.mean()),
        "flooded": fraction > 0.95,
        "vanished": fraction < 0.005,
        "degenerate": result.degenerate,
        "restarted": result.restarted,
        "stop_reason": result.stop_reason,
        "lam": result.lam,
        "experts": list(result.config.experts),
        **(baselines(s.image, s.truth, case.polarity_free) if with_baselines else {}),
    }


def family_summary(rows: list[dict[str, Any]]) -> str:
    def stats(key: str) -> str:
        values = [r.get(key, np.nan) for r in rows]
        return f"{np.mean(values):.3f} / {min(values):.3f}"

    bad = sum(r["flooded"] or r["vanished"] or r["degenerate"] for r in rows)
    restarted = sum(r.get("restarted", False) for r in rows)
    worst = min(rows, key=lambda r: r["self2seg"])
    seeds = sorted({r.get("seed", 0) for r in rows})
    runs = f"{len(rows):2d} cases" if len(seeds) == 1 else f"{len(rows) // len(seeds)} cases × {len(seeds)} seeds"
    where = worst["case"] if len(seeds) == 1 else f"{worst['case']}, seed {worst.get('seed', 0)}"
    return (
        f"{rows[0]['family']:>8} ({runs}) mean/worst Dice: self2seg {stats('self2seg')} | "
        f"otsu {stats('otsu')} | tv_otsu {stats('tv_otsu')} | chan_vese {stats('chan_vese')} | "
        f"degenerate {bad} | restarted {restarted} | worst: {where} ({worst['self2seg']:.3f})"
    )


def write_rows(path: Path | None, rows: list[dict[str, Any]]) -> None:
    """Write the per-case rows as JSON (nothing when ``path`` is None)."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--size", type=int, default=128, help="side of the synthetic images (default 128)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", type=int, default=None, help="at most this many cases per family (smoke test)")
    parser.add_argument("--out", type=Path, default=None, help="write every case as JSON here")
    parser.add_argument(
        "--variant", type=json.loads, default=None, help="JSON overrides of the default config, e.g. '{\"mu\": 0.01}'"
    )
    parser.add_argument("--no-baselines", action="store_true", help="run only Self2Seg (to compare variants)")
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=[0], help="run every case with each of these seeds (default 0)"
    )
    args = parser.parse_args()
    config = varied(args.variant)
    import torch

    torch.set_num_threads(2)
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    summaries = []
    for family in args.family:
        family_rows = []
        for i, case in enumerate(cases(family, args.size)):
            if args.limit is not None and i >= args.limit:
                break
            reference: dict[str, Any] = {}
            for seed in args.seeds:
                # the baselines do not depend on the seed: computed with the first one
                row = run_case(case, args.device, config, not args.no_baselines and not reference, seed)
                reference = reference or row
                row.update({k: reference[k] for k in ("otsu", "tv_otsu", "chan_vese") if k in reference})
                family_rows.append(row)
                report(family, case.name, row, len(args.seeds) > 1)
        rows += family_rows
        summaries.append(family_summary(family_rows))
        write_rows(args.out, rows)  # after every family: a run cut short keeps what it measured
    print()
    for line in summaries:
        print(line)
    worst = min(rows, key=lambda r: r["self2seg"])
    seed = f", seed {worst['seed']}" if len(args.seeds) > 1 else ""
    print(f"worst case overall: {worst['family']} / {worst['case']}{seed}: Dice {worst['self2seg']:.3f}")
    print(f"total {time.perf_counter() - started:.0f} s")


def report(family: str, name: str, row: dict[str, Any], with_seed: bool) -> None:
    """Print one run's line."""
    flag = " FLOODED" if row["flooded"] else " VANISHED" if row["vanished"] else ""
    flag += " degenerate" if row["degenerate"] else ""
    name = f"{name}, seed {row['seed']}" if with_seed else name
    print(
        f"{family:>8} | {name:<58} | self2seg {row['self2seg']:.3f} ({row['seconds']:.1f} s, "
        f"fg {row['foreground']:.0%}/{row['truth_foreground']:.0%}, {'/'.join(row['experts'])}) | "
        f"otsu {row.get('otsu', np.nan):.3f} tv_otsu {row.get('tv_otsu', np.nan):.3f} "
        f"chan_vese {row.get('chan_vese', np.nan):.3f}{flag}",
        flush=True,
    )


if __name__ == "__main__":
    main()
