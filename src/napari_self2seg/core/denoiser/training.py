"""Region-masked Noise2Fast training of one expert (paper §4.3, eqs. 11–12)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .sampling import TrainingPair, checkerboard_pairs, merge_row_halves, row_halves

if TYPE_CHECKING:
    from collections.abc import Generator

    from ..config import DenoiserConfig
    from .network import Noise2FastNet


@dataclass(frozen=True)
class TrainingProgress:
    """Report after one gradient step.

    Attributes
    ----------
    step : int
        Gradient steps done so far in this phase.
    loss : float
        Masked training loss of this step.
    score : float
        Validation error: mean over the region of ``sum_c (f_c - D(f)_c)^2``.
    best_score : float
        Lowest validation error so far.
    """

    step: int
    loss: float
    score: float
    best_score: float


@dataclass(frozen=True)
class TrainedExpert:
    """Outcome of one training phase.

    Attributes
    ----------
    output : torch.Tensor
        The expert's denoising of the whole image, ``(C, H, W)``: the mean of
        the last validation outputs.
    steps : int
        Gradient steps taken.
    best_score : float
        Best validation error.
    retried : bool
        Whether the collapse check triggered a retry at the low learning rate.
    """

    output: torch.Tensor
    steps: int
    best_score: float
    retried: bool


def blind_prediction(net: torch.nn.Module, image: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """Predict every pixel without looking at it: ``A`` from ``B`` and ``B`` from ``A`` (eq. 12's pairs).

    The row-compacted checkerboard halves ``A`` and ``B`` of :func:`row_halves`
    cover every pixel once; the network, applied to one half, predicts the
    other, as in training (all channels at once). Such a prediction is independent of the pixel's own
    noise, so ``E[(f - prediction)^2] = σ² + E[(clean - prediction)^2]``
    (J-invariance, Noise2Self, Batson & Royer 2019): its residual measures how
    well an expert explains the signal, not how closely it copies the noise —
    a full-image output ``D(f)`` that denoises less scores a smaller residual
    everywhere. An odd last row takes ``fill``.
    """
    a, b = row_halves(image[..., : (image.shape[-2] // 2) * 2, :])
    margin = min(BLIND_MARGIN, a.shape[-2] - 1, a.shape[-1] - 1)

    def predict(half: torch.Tensor) -> torch.Tensor:
        # mirrored margins: a zero-padded border reads as structure and biases the edge pixels' residuals
        padded = torch.nn.functional.pad(half[None], (margin,) * 4, mode="reflect")
        out: torch.Tensor = net(padded)[0]
        return out[..., margin : out.shape[-2] - margin, margin : out.shape[-1] - margin]

    with torch.no_grad():
        pred_a, pred_b = predict(b), predict(a)
    return merge_row_halves(pred_a, pred_b, fill)


BLIND_MARGIN = 8
"""Rows/columns mirrored around each half before a blind prediction (≥ the fast experts' 6-pixel reach)."""


def masked_loss(prediction: torch.Tensor, pair: TrainingPair) -> torch.Tensor:
    """Masked squared error of eq. (12), summed over channels, divided by the mask's size.

    Pixels where the mask is 0 contribute neither to the value nor to the
    gradient. The division only rescales the loss, which Adam is invariant to.
    """
    return ((prediction - pair.target) ** 2 * pair.mask).sum() / pair.mask.sum().clamp_min(1.0)


def has_collapsed(output: torch.Tensor, region: torch.Tensor, min_pixels: int = 10) -> bool:
    """Tell whether the output collapsed to a constant in the region (Noise2Fast check).

    Crops a one-pixel border and counts the region pixels whose output (summed
    over channels) lies above the region's mean; fewer than ``min_pixels``
    means collapse. (The reference code indexes the rows twice and never crops
    the columns.)
    """
    inner_out = output.sum(dim=0)[1:-1, 1:-1]
    inner_region = region[1:-1, 1:-1]
    values = inner_out[inner_region]
    if values.numel() < min_pixels:
        return False
    return int((values > values.mean()).sum()) < min_pixels


class _PairSampler:
    """Draws a random training pair, optionally cropped to a patch centred on a region pixel."""

    def __init__(self, pairs: tuple[TrainingPair, ...], patch_size: int | None, generator: torch.Generator) -> None:
        self.generator = generator
        self.patch_size = patch_size
        usable = [p for p in pairs if bool(p.mask.any())] or list(pairs)
        self.pairs = usable
        # region pixels of each pair, on the CPU, to centre patches without device syncs
        self.centres = [torch.nonzero(p.mask[0, 0].cpu() > 0) for p in usable] if patch_size else []

    def _draw(self, n: int) -> int:
        return int(torch.randint(n, (1,), generator=self.generator))

    def __call__(self) -> TrainingPair:
        k = self._draw(len(self.pairs))
        pair = self.pairs[k]
        size = self.patch_size
        if size is None or len(self.centres[k]) == 0:
            return pair
        h, w = pair.target.shape[-2:]
        cy, cx = (int(v) for v in self.centres[k][self._draw(len(self.centres[k]))])
        y0 = min(max(cy - size // 2, 0), max(h - size, 0))
        x0 = min(max(cx - size // 2, 0), max(w - size, 0))
        window = (..., slice(y0, y0 + size), slice(x0, x0 + size))
        return TrainingPair(pair.source[window], pair.target[window], pair.mask[window])


def _run(
    net: Noise2FastNet,
    image: torch.Tensor,
    region: torch.Tensor,
    sampler: _PairSampler,
    learning_rate: float,
    config: DenoiserConfig,
) -> Generator[TrainingProgress, None, tuple[torch.Tensor, int, float]]:
    """Adam steps on random pairs with early stopping; returns (mean output, steps, best)."""
    optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate)
    full = image[None]
    weight = region.to(image.dtype)
    region_size = weight.sum().clamp_min(1)
    outputs: deque[torch.Tensor] = deque(maxlen=config.average_last)
    best, since_best, step, score = float("inf"), 0, 0, float("inf")

    def validate() -> float:
        with torch.no_grad():
            output = net(full)[0]
        outputs.append(output)
        return float((((image - output) ** 2).sum(dim=0) * weight).sum() / region_size)

    while step < config.max_steps and since_best < config.patience:
        pair = sampler()
        optimizer.zero_grad(set_to_none=True)
        loss = masked_loss(net(pair.source), pair)
        torch.autograd.backward(loss)
        optimizer.step()
        step += 1
        if step % config.validate_every == 0:
            score = validate()
            if score < best:
                best, since_best = score, 0
            else:
                since_best += 1
        yield TrainingProgress(step, float(loss.detach()), score, best)
    if not outputs:
        best = min(best, validate())
    return torch.stack(tuple(outputs)).mean(dim=0), step, best


def train_expert(
    net: Noise2FastNet,
    image: torch.Tensor,
    region: torch.Tensor,
    config: DenoiserConfig,
    generator: torch.Generator,
) -> Generator[TrainingProgress, None, TrainedExpert]:
    """Train ``net`` as the expert of ``region`` and denoise the whole image.

    One step draws one of the four checkerboard pairs at random (optionally a
    patch of it centred on a region pixel) and takes an Adam step on the
    region-masked loss (eq. 12); every ``config.validate_every`` steps the
    network denoises the whole image, scored on the region. Training stops
    after ``config.patience`` validations without improvement (or
    ``config.max_steps``); the output is the mean of the last
    ``config.average_last`` validation outputs. If that output is constant in
    the region, training continues once at ``config.collapse_lr``.

    Parameters
    ----------
    net : Noise2FastNet
        Network to train, already on the image's device.
    image : torch.Tensor
        Normalised image, ``(C, H, W)``.
    region : torch.Tensor
        Boolean mask of the expert's region, ``(H, W)``; must not be empty.
    config : DenoiserConfig
        Training settings.
    generator : torch.Generator
        CPU generator that picks the pairs.

    Yields
    ------
    TrainingProgress
        After every gradient step.

    Returns
    -------
    TrainedExpert
        The denoised image and training statistics.
    """
    sampler = _PairSampler(checkerboard_pairs(image, region), config.patch_size, generator)
    output, steps, best = yield from _run(net, image, region, sampler, config.learning_rate, config)
    retried = has_collapsed(output, region)
    if retried:
        output, more, best = yield from _run(net, image, region, sampler, config.collapse_lr, config)
        steps += more
    return TrainedExpert(output.detach(), steps, best, retried)
