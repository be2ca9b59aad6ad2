"""Which expert each ``"auto"`` region uses: the kinds whose data terms best separate the initial regions.

A region's expert is either a Noise2Fast network or the region's mean
(a constant, Chan–Vese). Which one serves the segmentation is not which one
explains its own region best — a network explains any locally smooth patch,
so on a fluorescence image a nucleus network also explains the faint
background haze and the mask over-grows — but which makes the regions
distinguishable. For two classes the segmentation step (eq. 9) sees only the
data term ``d = r_1 - r_0``; it labels the user's regions correctly when
``d`` is positive on the background region and negative on the foreground
region, by a margin large against its spread. The choice scores every
combination of kinds by the sensitivity index of ``d`` on the initial
regions (Fisher's discriminant ratio, square-rooted):

    s = (mean_{R_0}(d) - mean_{R_1}(d)) / sqrt((Var_{R_0}(d) + Var_{R_1}(d)) / 2)

— the gap between the regions' data terms in units of the automatic λ
(:mod:`.automatic_lam`, which is the same pooled standard deviation) — and
for K regions the smallest ``s`` over all pairs of classes. A network is
scored on the pixels it was trained on, so its ``s`` is optimistic: on the
robustness suite's DSB2018 crops and synthetic nuclei the networks' best ``s``
exceeds the constants' by 0–16 %, yet the constants segment better (mean
Dice 0.831 against 0.807 on the DSB crops). The constants are therefore kept
unless a combination with networks separates the regions
:data:`NETWORK_ADVANTAGE` times better; equal-mean textures (constants' ``s``
at most 0.52 of the best on the suite) keep their networks. Once networks are
in, every ``"auto"`` class gets one unless a mix of networks and constants
separates the regions :data:`NETWORK_ADVANTAGE` times better than networks
everywhere: a mix pits a network, which explains any locally smooth patch,
against a constant, which explains only a flat one — unequal capacity, one of
the causes of a region taking over the image (on held-out texture pairs every
mixed run ended at Dice 0.23–0.69 or 0.92–0.98, with networks everywhere at
0.84–0.98; a flat low-contrast ellipse whose networks won by 1.52 went from
0.85 to 0.74). Beyond the paper (which fixes the kinds by hand); measured in
docs/robustness.md.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .config import ExpertKind

NETWORK_ADVANTAGE = 1.5
"""How much better than the constants networks must separate the initial regions to be used.

On the robustness suite the ratio best / constants is 1.00–1.16 on every
DSB2018 crop and synthetic nuclei image and 1.9–∞ on every texture pair
(docs/robustness.md), so any value between 1.16 and 1.9 makes the same
choices there; 1.5 lies in the middle of that gap.
"""

MAX_AUTOMATIC_CLASSES = 8
"""Most ``"auto"`` classes scored jointly (2^8 combinations); beyond, each pair of kinds is still exact per pair."""


def separation(data: torch.Tensor, inside: torch.Tensor, outside: torch.Tensor) -> float:
    """Return the sensitivity index of a data term between two regions.

    Parameters
    ----------
    data : torch.Tensor
        ``(H, W)`` data term ``r_k - r_j``: negative where class k fits better.
    inside, outside : torch.Tensor
        Boolean masks of class k's and class j's regions (each ≥ 2 pixels).

    Returns
    -------
    float
        ``(mean_outside - mean_inside) / sqrt((Var_outside + Var_inside) / 2)``
        (population variances); ``inf`` when both regions are noise-free and
        separated, 0 when they are noise-free and equal.
    """
    d = data.to(torch.float64)
    a, b = d[outside], d[inside]
    gap = float(a.mean() - b.mean())
    spread = math.sqrt((float(a.var(correction=0)) + float(b.var(correction=0))) / 2)
    if spread == 0.0:
        return math.copysign(math.inf, gap) if gap != 0.0 else 0.0
    return gap / spread


def choose_expert_kinds(
    kinds: Sequence[ExpertKind], network: torch.Tensor, constant: torch.Tensor, regions: torch.Tensor
) -> tuple[ExpertKind, ...]:
    """Replace every ``"auto"`` kind by the kind that best separates the initial regions.

    Parameters
    ----------
    kinds : sequence of {"network", "constant", "auto"}
        The configured kind of each class.
    network, constant : torch.Tensor
        ``(K, H, W)`` region residuals (eq. 5) of each class's trained network
        and of its constant expert (rows of classes that cannot use one kind
        are never read).
    regions : torch.Tensor
        ``(K, H, W)`` bool initial regions (each ≥ 2 pixels).

    Returns
    -------
    tuple of {"network", "constant"}
        Constants for every ``"auto"`` class if their smallest pairwise
        :func:`separation` is at least ``1 / NETWORK_ADVANTAGE`` of the best
        combination's; else networks for every ``"auto"`` class if theirs is;
        otherwise the kinds that maximise it (a tie keeps the networks:
        combinations with more networks are tried first).
    """
    classes = len(kinds)
    choices: list[tuple[ExpertKind, ...]] = [("network", "constant") if kind == "auto" else (kind,) for kind in kinds]
    automatic = sum(len(c) > 1 for c in choices)
    if automatic > MAX_AUTOMATIC_CLASSES:
        raise ValueError(
            f"{automatic} classes have expert kind 'auto'; at most {MAX_AUTOMATIC_CLASSES} can be chosen jointly — "
            "give some classes 'network' or 'constant'"
        )
    residual = {"network": network, "constant": constant}
    pair_scores: dict[tuple[int, int, ExpertKind, ExpertKind], float] = {}
    for k, j in itertools.combinations(range(classes), 2):
        for kind_k in choices[k]:
            for kind_j in choices[j]:
                data = residual[kind_k][k] - residual[kind_j][j]
                pair_scores[k, j, kind_k, kind_j] = separation(data, regions[k], regions[j])

    def smallest_separation(combination: tuple[ExpertKind, ...]) -> float:
        pairs = itertools.combinations(range(classes), 2)
        return min((pair_scores[k, j, combination[k], combination[j]] for k, j in pairs), default=math.inf)

    # max keeps the first of equal scores: combinations with more networks come first
    best = max(itertools.product(*choices), key=smallest_separation)
    uniform_kinds: tuple[ExpertKind, ...] = ("constant", "network")  # constants first, then networks everywhere
    for uniform in uniform_kinds:
        candidate = tuple(uniform if len(choice) > 1 else choice[0] for choice in choices)
        if smallest_separation(candidate) * NETWORK_ADVANTAGE >= smallest_separation(best):
            return candidate
    return best
