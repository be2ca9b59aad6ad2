"""Separations behind the automatic expert kinds, for every image of the robustness suite.

For each case the experts are trained once on the boxes (the default ``fast`` run up to its
expert-kind choice), then the sensitivity index of the data term (``core/expert_choice.py``) is
printed for each combination of kinds — background/foreground ``nn``, ``nc``, ``cn``, ``cc`` —
and the ratio of the best combination to the constants, which ``NETWORK_ADVANTAGE`` thresholds.
The run is stopped at the choice (nothing is segmented).

Usage::

    python benchmarks/expert_choice_study.py --family dsb nuclei textures
"""

from __future__ import annotations

import argparse
import itertools
from typing import TYPE_CHECKING

import torch

import robustness
from napari_self2seg.core import segment
from napari_self2seg.core import solver as solver_module
from napari_self2seg.core.expert_choice import NETWORK_ADVANTAGE, separation

if TYPE_CHECKING:
    from napari_self2seg.core.config import ExpertKind


class _ChoiceReached(Exception):
    """Raised by the recorder: the separations are known, the run need not go on."""


def separations_at_the_choice(case: robustness.Case) -> dict[str, float]:
    """Train the default run's experts on the case's boxes and return the separation of each kind pair."""
    recorded: dict[str, float] = {}

    def record(
        kinds: tuple[ExpertKind, ...], network: torch.Tensor, constant: torch.Tensor, regions: torch.Tensor
    ) -> tuple[ExpertKind, ...]:
        residual = {"n": network, "c": constant}
        for background, foreground in itertools.product("nc", repeat=2):
            data = residual[foreground][1] - residual[background][0]
            recorded[background + foreground] = separation(data, regions[1], regions[0])
        raise _ChoiceReached

    name = "choose_expert_kinds"  # the solver's reference to the chooser, replaced by the recorder for one run
    chooser = getattr(solver_module, name)
    setattr(solver_module, name, record)
    try:
        s = case.sample
        segment(s.image, fg_boxes=[s.fg_box], bg_boxes=[s.bg_box], seed=0, device="cpu")
    except _ChoiceReached:
        pass
    finally:
        setattr(solver_module, name, chooser)
    return recorded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--family", nargs="+", choices=robustness.FAMILIES, default=list(robustness.FAMILIES))
    args = parser.parse_args()
    torch.set_num_threads(2)
    for family in args.family:
        for case in robustness.cases(family, 128):
            s = separations_at_the_choice(case)
            ratio = max(s.values()) / s["cc"] if s["cc"] > 0 else float("inf")
            verdict = "constants" if ratio <= NETWORK_ADVANTAGE else "networks"
            pairs = " ".join(f"{k} {v:5.2f}" for k, v in s.items())
            print(f"{family:>8} | {case.name:<58} | {pairs} | best/cc {ratio:5.2f} -> {verdict}", flush=True)


if __name__ == "__main__":
    main()
