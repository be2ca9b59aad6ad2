"""How well experts tell regions apart: a warning for masks that are likely wrong, and the step a collapse keeps.

The segmentation step (eq. 9) labels a pixel by the sign of the data term
``d = r_1 - r_0`` (for K classes, of every pairwise difference), smoothed by
the TV term. Pixel by pixel, ``d`` of two equal-mean textures under noise is
dominated by the noise; what the TV term can use is ``d`` pooled over a
neighbourhood. The *box separation* is the sensitivity index
(:func:`.expert_choice.separation`) of ``d`` averaged over
:data:`LOCAL_WINDOW` × :data:`LOCAL_WINDOW` pixels, between the boxes of two
classes, after the first expert training (the smallest over all pairs of
classes). When it is low, the experts explain each other's boxes about as
well as their own, and the alternation has little to hold on to: on the
robustness suite's texture pairs 42 of the 44 runs below
:data:`RELIABLE_SEPARATION` ended under Dice 0.95 (docs/robustness.md,
twelfth session). Beyond the paper; the run is unchanged, the result only
says so.

The *class separation* scores a finished segmentation step the same way:
the data term the step solved with, averaged alike, between the classes it
made. When a later step collapses, the run keeps the valid step its experts
separated best (:mod:`.solver`; docs/robustness.md, fourteenth session).
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

from .expert_choice import separation

LOCAL_WINDOW = 9
"""Side of the window over which the data term is averaged before the separation is scored."""

RELIABLE_SEPARATION = 4.0
"""Box separation below which the mask is reported as unreliable.

Chosen on the robustness suite's 12 texture pairs at two noise levels with
seeds 0–2 (128², 72 runs): the 22 runs below 4 ended at Dice 0.47–0.94 (mean
0.77), the other 50 at 0.63–0.996 (mean 0.96, one below 0.9). Checked on
seeds 3–5 (22 runs below 4, 20 of them under Dice 0.95; the others' mean
0.94) and on 20 images outside the suite (8 other texture pairs at 128² and
192², 4 faint shapes; two seeds): 17 of the 19 runs below 4 ended under 0.95,
but so did 10 of the 21 above — a low separation flags many bad masks, a high
one does not vouch for a mask. Every run of constants on the suite's nuclei,
shapes and DSB2018 crops scored ≥ 5.1 (docs/robustness.md).
"""


def box_separation(residuals: torch.Tensor, boxes: torch.Tensor) -> float:
    """Return the smallest pairwise separation of the locally averaged data terms on the boxes.

    Parameters
    ----------
    residuals : torch.Tensor
        ``(K, H, W)`` region residuals ``r_k`` (eq. 5) of the trained experts.
    boxes : torch.Tensor
        ``(K, H, W)`` bool: each class's box pixels.

    Returns
    -------
    float
        ``min_{j < k} s(avg(r_k - r_j); box_k, box_j)`` with ``s`` the
        sensitivity index and ``avg`` the mean over a :data:`LOCAL_WINDOW`
        square (windows cut at the image border); ``inf`` when no pair has two
        box pixels in each class, or when the averaged data terms are
        noise-free and separated.
    """
    scores = [score for score in _pairwise_local_separations(residuals, boxes) if score is not None]
    return min(scores, default=math.inf)


def class_separation(residuals: torch.Tensor, labels: torch.Tensor) -> float:
    """Return the smallest pairwise separation of the locally averaged data terms between the classes of a step.

    The box separation's score with the classes a segmentation step made in
    place of the boxes. The local mean keeps the score honest: a mask that
    follows the sign of ``r_k - r_j`` pixel by pixel (a speckled step at a tiny
    λ) would separate the raw data term between its own classes perfectly.

    Parameters
    ----------
    residuals : torch.Tensor
        ``(K, H, W)`` data terms the step solved with (the region residuals
        ``r_k`` of eq. 5, locally averaged between network experts).
    labels : torch.Tensor
        ``(H, W)`` class of every pixel after that step.

    Returns
    -------
    float
        ``min_{j < k} s(avg(r_k - r_j); labels == k, labels == j)`` as in
        :func:`box_separation`; ``-inf`` when a class has fewer than two
        pixels (no evidence that the experts tell it apart).
    """
    regions = torch.stack([labels == k for k in range(residuals.shape[0])])
    scores = _pairwise_local_separations(residuals, regions)
    return -math.inf if any(score is None for score in scores) else min(s for s in scores if s is not None)


def _pairwise_local_separations(residuals: torch.Tensor, regions: torch.Tensor) -> list[float | None]:
    """``s(avg(r_k - r_j); regions_k, regions_j)`` for every pair ``j < k``; None where one has < 2 pixels."""
    residuals, regions = residuals.detach().cpu(), regions.cpu()  # float64 on every device kind
    pad = LOCAL_WINDOW // 2
    scores: list[float | None] = []
    for j, k in itertools.combinations(range(residuals.shape[0]), 2):
        if int(regions[j].sum()) < 2 or int(regions[k].sum()) < 2:
            scores.append(None)
            continue
        data = (residuals[k] - residuals[j]).to(torch.float64)[None, None]
        local = F.avg_pool2d(data, LOCAL_WINDOW, stride=1, padding=pad, count_include_pad=False)[0, 0]
        scores.append(separation(local, regions[k], regions[j]))
    return scores


def separation_warning(score: float) -> str | None:
    """Return a sentence for the user when ``score`` is below :data:`RELIABLE_SEPARATION`, else None."""
    if score >= RELIABLE_SEPARATION:
        return None
    return (
        f"the experts barely tell the boxes apart (box separation {score:.2g} < {RELIABLE_SEPARATION:g}): "
        "such masks were often wrong on test images, so check this one"
    )
