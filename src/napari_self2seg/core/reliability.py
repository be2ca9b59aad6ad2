"""How well the first experts tell the user's boxes apart: a warning for masks that are likely wrong.

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
    residuals, boxes = residuals.detach().cpu(), boxes.cpu()  # float64 on every device kind
    classes = residuals.shape[0]
    pad = LOCAL_WINDOW // 2
    scores = []
    for j, k in itertools.combinations(range(classes), 2):
        if int(boxes[j].sum()) < 2 or int(boxes[k].sum()) < 2:
            continue
        data = (residuals[k] - residuals[j]).to(torch.float64)[None, None]
        local = F.avg_pool2d(data, LOCAL_WINDOW, stride=1, padding=pad, count_include_pad=False)[0, 0]
        scores.append(separation(local, boxes[k], boxes[j]))
    return min(scores, default=math.inf)


def separation_warning(score: float) -> str | None:
    """Return a sentence for the user when ``score`` is below :data:`RELIABLE_SEPARATION`, else None."""
    if score >= RELIABLE_SEPARATION:
        return None
    return (
        f"the experts barely tell the boxes apart (box separation {score:.2g} < {RELIABLE_SEPARATION:g}): "
        "such masks were often wrong on test images, so check this one"
    )
