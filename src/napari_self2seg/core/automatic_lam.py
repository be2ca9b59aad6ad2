"""The image-derived default λ: the spread of the data term inside the initial regions.

In the segmentation step (eq. 5) a pixel is pulled towards the foreground by
``d = r_F - r_B < 0`` and towards the background by ``d > 0``; λ sets how
much boundary length that pull has to pay for. Inside a correctly labelled
region ``d`` fluctuates around its mean because of the noise and the texture
that the experts do not explain; the TV term has to outweigh these
fluctuations, or the mask follows them (speckle, ragged outlines, and for weak
experts a flood or an empty mask), but no more than that, or small objects
vanish. The rule takes λ equal to the standard deviation of ``d`` within the
initial regions, measured after the first training of the experts:

    λ = sqrt((Var_{R_F}(d) + Var_{R_B}(d)) / 2)

(for K regions the same over every pair of classes, :func:`automatic_lam`).

It needs no constant: on the robustness suite (``benchmarks/robustness.py``:
24 texture pairs, 5 shapes, 8 synthetic nuclei, 12 DSB2018 crops) the Dice of
the first segmentation step is flat between 0.9 and 1.25 times this value and
within 0.03 of the best fixed grid value per image on every family
(docs/robustness.md). The segmentation only depends on ``d / λ``, so the rule
amounts to solving every image with ``d`` scaled to unit spread. For fixed
experts λ grows linearly with the noise, which enters ``d`` as
``2 (D_B - D_F) n``; between images the experts themselves change (on a
noisier image they disagree less), so the absolute value is not monotone in
the noise: a noise-free image gets about 0.004, the same disk with noise
0.05, 0.1, 0.2 gets 0.08, 0.06, 0.04 (``tests/core/test_automatic_lam.py``).
"""

from __future__ import annotations

import math

import torch

LAM_FLOOR = 1e-3
"""Smallest automatic λ: a noise-free image has no spread of ``d`` at all, yet λ must be > 0."""


MAD_TO_STD = 1.4826
"""Standard deviation of a normal distribution per unit of its median absolute deviation."""


def variance(values: torch.Tensor, robust: bool) -> float:
    """Return the population variance of ``values``, or its robust estimate ``(1.4826 · MAD)²``."""
    if robust:
        return float((MAD_TO_STD * (values - values.median()).abs().median()) ** 2)
    return float(values.var(correction=0))


def windowed_lam_factor(window: int) -> float:
    """Return how many spreads of a windowed data term make λ: ``max(1, window / 2)``.

    Averaging the residuals over ``w × w`` pixels (:func:`~.energy.local_mean`)
    shrinks the spread of ``d`` by up to ``w`` (by exactly ``w`` for
    independent pixels) while the gap between the regions stays, so the spread
    of the averaged ``d`` alone gives a λ too small for the boundaries, and
    ``w`` times it restores the per-pixel λ, too large for the averaged term.
    On the texture family of the robustness suite at ``w = 5`` (three seeds,
    factors 1, 2.5 and 5): mean / worst Dice 0.900 / 0.658, 0.924 / 0.690 and
    0.898 / 0.159, with 0, 1 and 5 degenerate runs (docs/robustness.md).
    Measured at ``w = 5`` only.
    """
    return max(1.0, window / 2)


def automatic_lam(residuals: torch.Tensor, regions: torch.Tensor, robust: bool = False, window: int = 1) -> float:
    """Return the default λ for the experts' residuals and the regions they were trained on.

    For K = 2 the data term of the segmentation step is ``d = r_1 - r_0``
    (eq. 9) and λ is its pooled standard deviation inside the two initial
    regions. For K regions every pair of classes ``j < k`` meets at its own
    boundaries with the data term ``r_k - r_j``; λ pools the variances of each
    pair's term inside both regions of the pair, so that λ keeps its binary
    meaning: the cost of a unit length of boundary between two regions.

    Parameters
    ----------
    residuals : torch.Tensor
        Region residuals ``r_k`` of the trained experts (eq. 5), ``(K, H, W)``.
    regions : torch.Tensor
        Boolean masks of the initial regions (boxes or thresholded regions),
        ``(K, H, W)``; each needs at least two pixels.
    robust : bool
        Estimate each variance as ``(1.4826 · MAD)²`` (the variance for
        normal data, blind to a minority of outlying pixels). The solver asks
        for it when every expert is a constant: then ``d`` is an affine
        function of the image, ``d = 2 (c_j - c_k) (t - f)``, and its spread
        in a box is the image's, which should be the noise — not the
        nucleus's inner texture or a box edge over a boundary. With
        networks the tails of ``d`` are texture the experts do not explain,
        which λ has to outweigh (a robust spread there: textures 0.863 →
        0.725 mean Dice on the robustness suite, docs/robustness.md).

    Returns
    -------
    float
        ``max(a · sqrt(mean_{j<k} (Var_{R_j}(r_k - r_j) + Var_{R_k}(r_k - r_j)) / 2), LAM_FLOOR)``,
        population variances, ``a = windowed_lam_factor(window)``.

    Raises
    ------
    ValueError
        If a region has fewer than two pixels.
    """
    return max(windowed_lam_factor(window) * data_term_spread(residuals, regions, robust), LAM_FLOOR)


def data_term_spread(residuals: torch.Tensor, regions: torch.Tensor, robust: bool = False) -> float:
    """Return the pooled standard deviation of the data terms ``r_k - r_j`` inside the regions of each pair.

    ``sqrt(mean_{j<k} (Var_{R_j}(r_k - r_j) + Var_{R_k}(r_k - r_j)) / 2)``,
    population variances (robust ones with ``robust``, see
    :func:`automatic_lam`), which is λ without factor or floor.

    Raises
    ------
    ValueError
        If a region has fewer than two pixels.
    """
    for k, region in enumerate(regions):
        count = int(region.sum())
        if count < 2:
            raise ValueError(f"the initial region of class {k} has {count} pixel(s); the automatic λ needs at least 2")
    variances = []
    for k in range(residuals.shape[0]):
        for j in range(k):
            data = (residuals[k] - residuals[j]).to(torch.float64)
            variances += [variance(data[regions[j]], robust), variance(data[regions[k]], robust)]
    return math.sqrt(sum(variances) / len(variances))


def noise_lam(constants: torch.Tensor, sigma: torch.Tensor) -> float:
    """Return the automatic λ for constant experts: the spread that the image's noise gives ``d``.

    With constants ``d = r_k - r_j`` is affine in the image,
    ``d = Σ_c 2 (c_jc - c_kc)(t_c - f_c)``, so white noise of standard
    deviation ``σ_c`` per channel gives it the variance
    ``4 Σ_c (c_kc - c_jc)² σ_c²``. This is the rule of :func:`automatic_lam`
    with that variance in place of the one measured in the boxes: for two
    classes the segmentation step is then the level set of the TV denoising
    at the noise level, ``ROF(f, σ)`` (:mod:`.tv_two_means`), whichever pixels
    the boxes hold (a box on a saturated blob measures the blob's inner
    variation too).

    Parameters
    ----------
    constants : torch.Tensor
        ``(K, C)``: the constant of every class and channel.
    sigma : torch.Tensor
        ``(C,)``: the noise level of each channel
        (:func:`.tv_two_means.noise_level`).

    Returns
    -------
    float
        ``max(sqrt(mean_{j<k} 4 Σ_c (c_kc - c_jc)² σ_c²), LAM_FLOOR)``.
    """
    classes = int(constants.shape[0])
    gaps = constants[:, None, :] - constants[None, :, :]  # (K, K, C)
    spread = 4 * ((gaps * sigma) ** 2).sum(dim=-1).to(torch.float64)
    pairs = torch.triu_indices(classes, classes, offset=1)
    return max(math.sqrt(float(spread[pairs[0], pairs[1]].mean())), LAM_FLOOR)
