"""How the automatic λ rule was chosen: first-step Dice over a λ grid on the robustness suite.

For every case of ``benchmarks/robustness.py`` (textures, shapes, nuclei, dsb) both experts of the
``fast`` preset are trained once on the boxes; then the data term ``d = r_F - r_B`` (blind and full
residuals) is solved for each λ of a grid, from the boxes' mask, and the Dice of that first
segmentation step is recorded together with the statistics a rule may use: the pooled
within-region standard deviation of ``d`` on the boxes (the rule adopted, core/automatic_lam.py)
and the experts' mean disagreement ``(mean_B d - mean_F d) / 2``. The summary then scores
candidate rules by interpolating each case's Dice at the rule's λ (log-linear in λ).

Usage::

    python benchmarks/lam_rule_study.py --out benchmarks/out/lam_rule.json     # about 10 min on 2 cores
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from collections.abc import Callable

GRID = (0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16)
FAMILIES = ("textures", "shapes", "nuclei", "dsb")


def study_case(case: Any) -> dict[str, Any]:
    """Train both experts on the boxes once; solve the first step for every λ of the grid."""
    from napari_self2seg.core import dice, preset
    from napari_self2seg.core._validation import check_image, normalise
    from napari_self2seg.core.denoiser.network import Noise2FastNet
    from napari_self2seg.core.denoiser.training import blind_prediction, train_expert
    from napari_self2seg.core.energy import squared_residual
    from napari_self2seg.core.initialization import box_regions
    from napari_self2seg.core.primal_dual import PrimalDualState, solve

    config = preset("fast")
    solver = dataclasses.replace(config.solver, max_iter=3000)
    sample = case.sample
    normalised, _ = normalise(check_image(sample.image))
    f = torch.from_numpy(normalised)
    bg, fg = torch.from_numpy(box_regions({1: (sample.fg_box,), 0: (sample.bg_box,)}, normalised.shape[1:]))
    generator = torch.Generator().manual_seed(0)
    predictions = {}
    for name, region in (("fg", fg), ("bg", bg)):
        net = Noise2FastNet(config.denoiser.width, config.denoiser.n_blocks, generator=generator)
        training = train_expert(net, f, region, config.denoiser, generator)
        while True:
            try:
                next(training)
            except StopIteration as stop:
                output = stop.value.output
                break
        predictions[name] = {"full": output, "blind": blind_prediction(net, f, output)}  # (1, H, W)
    row: dict[str, Any] = {"family": case.family, "case": case.name}
    for mode in ("full", "blind"):
        d = squared_residual(f, predictions["fg"][mode]) - squared_residual(f, predictions["bg"][mode])
        spread = float(np.sqrt((d[fg].var(correction=0) + d[bg].var(correction=0)) / 2))
        scores = {}
        for lam in GRID:
            start = fg.to(f.dtype)
            state = PrimalDualState.from_memberships(torch.stack((1 - start, start)))
            solve(state, torch.stack((torch.zeros_like(d), d)), lam, solver)
            scores[str(lam)] = dice((state.u[1] >= 0.5).numpy(), sample.truth)
        row[mode] = {"spread": spread, "contrast": float(d[bg].mean() - d[fg].mean()) / 2, "dice": scores}
    return row


def dice_at(row: dict[str, Any], mode: str, lam: float) -> float:
    """Return a case's first-step Dice at ``lam``, interpolated log-linearly on the grid (clamped to it)."""
    values = [row[mode]["dice"][str(g)] for g in GRID]
    x = float(np.clip(np.log2(lam), np.log2(GRID[0]), np.log2(GRID[-1])))
    return float(np.interp(x, np.log2(GRID), values))


def scaled(statistic: str, factor: float) -> Callable[[dict[str, Any]], float]:
    """Return the rule ``λ = factor × statistic`` (floored at 1e-4)."""
    return lambda stats: factor * max(float(stats[statistic]), 1e-4)


def summary(rows: list[dict[str, Any]]) -> list[str]:
    """Mean / worst first-step Dice per family for candidate rules."""
    rules: dict[str, Callable[[dict[str, Any]], float]] = {"fixed 0.04": lambda m: 0.04}
    rules["oracle (best grid λ per image)"] = lambda m: float(GRID[int(np.argmax(list(m["dice"].values())))])
    for factor in (0.5, 0.75, 1.0, 1.25, 1.5, 2.0):
        rules[f"{factor:g} × spread"] = scaled("spread", factor)
    for factor in (1.0, 2.0, 4.0):
        rules[f"{factor:g} × contrast"] = scaled("contrast", factor)
    lines = []
    for mode in ("blind", "full"):
        for name, rule in rules.items():
            cells = []
            for family in FAMILIES:
                scores = [dice_at(r, mode, rule(r[mode])) for r in rows if r["family"] == family]
                if scores:
                    cells.append(f"{family} {np.mean(scores):.3f}/{min(scores):.3f}")
            lines.append(f"{mode:5} | {name:32} | " + " | ".join(cells))
    return lines


def main() -> None:
    """Run the study and print the summary."""
    import robustness

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--out", type=Path, default=None, help="write every case as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    started = time.perf_counter()
    rows = []
    for family in args.family:
        for case in robustness.cases(family, 128):
            rows.append(study_case(case))
            print(f"{family:8} {case.name[:60]:60} spread (blind) {rows[-1]['blind']['spread']:.4f}", flush=True)
    print("\nmean/worst first-step Dice per family")
    print("\n".join(summary(rows)))
    print(f"total {time.perf_counter() - started:.0f} s")
    robustness.write_rows(args.out, rows)


if __name__ == "__main__":
    main()
