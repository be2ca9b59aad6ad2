"""Time ``resegment`` (a λ change on trained experts) for the primal–dual step-size rules.

One ``fast`` run per case trains the experts; then every λ of a grid is solved
from that run's ``u`` and ``p`` (as the plugin does when λ is changed) with
three step-size rules: the paper's τ = 1/4, σ = 1/2; fixed τ = 2, σ = 1/16 (the
``fast`` preset's outer loop); and ``scale_steps_to_lam`` (``resegment``'s default). For each it
reports the primal–dual iterations to the gap tolerance, the median wall time
of ``repeats`` solves, the Dice against the ground truth and the number of
pixels whose label differs from a tightly converged reference (gap 1e-10).

Usage::

    python benchmarks/resegment.py --case dsb textures --repeats 3

The ``dsb`` case needs ``../shared/data``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from typing import Any

import numpy as np
import torch

from napari_self2seg.core import dice, iterate
from napari_self2seg.core.config import PrimalDualConfig
from napari_self2seg.core.primal_dual import PrimalDualState, chambolle_pock
from speed import configured_case

RULES = {
    "paper τ=1/4 σ=1/2": PrimalDualConfig(tau=0.25, sigma=0.5, max_iter=20000, check_every=25),
    "fixed τ=2 σ=1/16": PrimalDualConfig(tau=2.0, sigma=1 / 16, max_iter=20000, check_every=25),
    "λ-scaled": PrimalDualConfig(scale_steps_to_lam=True, max_iter=20000, check_every=25),
}
LAM_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)


def trained_run(case: str, size: int, seed: int) -> tuple[Any, np.ndarray]:
    """Run the ``fast`` preset once and return (result, ground truth)."""
    image, truth, config, boxes = configured_case(case, size, "fast")
    result = None
    for state in iterate(image, config, seed=seed, keep_problem=True, **boxes):
        result = state.result or result
    assert result is not None
    return result, truth


def solve_from(result: Any, lam: float, config: PrimalDualConfig) -> tuple[torch.Tensor, int]:
    """Solve the segmentation step for ``lam`` warm-started from ``result``; return (u, iterations)."""
    problem = result.problem
    state = PrimalDualState(u=torch.from_numpy(np.array(result.relaxed)), p=torch.from_numpy(np.array(problem.dual)))
    iterations = 0
    for progress in chambolle_pock(state, torch.from_numpy(np.array(problem.residuals)), lam, config):
        iterations = progress.iteration
    return state.u[1], iterations


def main() -> None:
    """Parse arguments, train once per case, print one table row per (λ, rule)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", nargs="+", default=["dsb", "textures"], choices=["textures", "dsb"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| case | λ | rule | iterations | median s | Dice | pixels ≠ reference |")
    print("|---|---|---|---|---|---|---|")
    tight = dataclasses.replace(RULES["λ-scaled"], gap_tol=1e-10, max_iter=50000)
    for case in args.case:
        result, truth = trained_run(case, args.size, args.seed)
        polarity_free = case == "textures"
        for factor in LAM_FACTORS:
            lam = result.lam * factor
            reference = solve_from(result, lam, tight)[0] >= 0.5
            for name, rule in RULES.items():
                times = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    u, iterations = solve_from(result, lam, rule)
                    times.append(time.perf_counter() - t0)
                mask = u >= 0.5
                score = dice(mask.numpy(), truth)
                if polarity_free:
                    score = max(score, dice(~mask.numpy(), truth))
                differ = int((mask != reference).sum())
                cells = [case, f"{lam:g}", name, str(iterations), f"{statistics.median(times):.3f}", f"{score:.3f}"]
                print("| " + " | ".join([*cells, str(differ)]) + " |", flush=True)


if __name__ == "__main__":
    main()
