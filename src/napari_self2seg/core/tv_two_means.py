"""Where the two-means alternation of constant experts starts: Otsu's split of the image, or its TV denoising.

With two constant experts ``c_F > c_B`` the segmentation step (eq. 9 with
``r_k = (f - c_k)²``) is a thresholded ROF denoising: ``d = r_F - r_B =
2 (c_F - c_B)(t - f)`` with ``t = (c_F + c_B) / 2``, so the minimiser is the
level set ``{ROF(f, w) > t}`` with ``w = λ / (2 (c_F - c_B))``, and the
automatic λ (the spread of ``d``) makes ``w`` the noise level. Alternating it
with constants fitted to ``f`` (the paper's Chan–Vese update) lets the mask
drift with the box that started it: a box on the brightest nucleus of a
fluorescence image lifts ``t`` and half of the nuclei are lost
(docs/robustness.md, "Where the box is"). Fitting the constants to
``ROF(f, σ̂)`` instead makes the alternation Lloyd's two-means of the denoised
image with a boundary-length penalty, whose fixed point does not depend on
where the boxes are, but the TV denoising at the noise level also flattens
small, dim objects, and their class's mean with them. A better start needs
no denoising: :func:`otsu_bands` gives the global minimiser of the two-means
objective of ``f`` itself (Otsu's thresholds), the boxes only saying which
band is which class. A run that starts there refits its constants to ``f``
over ``u`` (the paper's update, from a start that does not depend on the
boxes) and stops by the energy rule; the two-means of ``ROF(f, σ̂)`` from the
boxes' means remains for images without such a split (several channels, or
boxes in one band; docs/robustness.md, eighteenth session). Beyond the paper.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from skimage import restoration

from .config import OTSU
from .initialization import threshold_regions

if TYPE_CHECKING:
    from collections.abc import Callable

denoise_tv_chambolle: Callable[..., np.ndarray] = restoration.denoise_tv_chambolle

_LAPLACIAN_DIFFERENCE = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])


def noise_level(image: torch.Tensor) -> torch.Tensor:
    """Estimate the standard deviation of additive white noise in each channel (Immerkær 1996).

    The image is convolved with the difference of two Laplacians, which
    cancels locally linear structure; for Gaussian noise of standard
    deviation σ the mean absolute response is ``6 σ sqrt(2 / π)``.

    Parameters
    ----------
    image : torch.Tensor
        ``(C, H, W)``, H and W at least 3.

    Returns
    -------
    torch.Tensor
        ``(C,)``: σ̂ of each channel, in the image's units. Edges and texture
        add to it; it is used where the experts are constants, i.e. on
        images without texture.

    References
    ----------
    J. Immerkær, "Fast noise variance estimation", Computer Vision and Image
    Understanding 64(2), 300–302, 1996.
    """
    kernel = _LAPLACIAN_DIFFERENCE.to(image.dtype).to(image.device)[None, None]
    response = F.conv2d(image[:, None], kernel)[:, 0]
    return response.abs().mean(dim=(-2, -1)) * math.sqrt(math.pi / 2) / 6


def tv_denoised(image: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
    """Return ``ROF(f, σ̂)`` of each channel: the TV denoising at the image's own noise level.

    Decreases ``σ̂ TV(v) + ½ ||v - f||²`` per channel with Chambolle's
    projection algorithm (:func:`skimage.restoration.denoise_tv_chambolle`
    with ``weight = σ̂``, σ̂ from :func:`noise_level`) until its default
    stopping rule (relative change of the energy below 2·10⁻⁴): some dozens
    of iterations, well short of the minimiser but enough for the means
    that the constants take of it (this is the setting measured in
    docs/robustness.md).

    Parameters
    ----------
    image : torch.Tensor
        The normalised image ``f``, ``(C, H, W)``.
    sigma : torch.Tensor or None
        ``(C,)`` noise levels if already estimated (:func:`noise_level`).

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device.
    """
    if min(image.shape[-2:]) < 3:  # too small to estimate the noise: nothing to smooth
        return image
    sigmas = (noise_level(image) if sigma is None else sigma).tolist()
    values = image.detach().to("cpu", torch.float64).numpy()
    smooth = [
        denoise_tv_chambolle(channel, weight=sigma) if sigma > 0 else channel
        for channel, sigma in zip(values, sigmas, strict=True)
    ]
    return torch.from_numpy(np.stack(smooth)).to(image.dtype).to(image.device)


def otsu_bands(image: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor | None:
    """Return the bands of the global two-means split of ``image``, each matched to a class's boxes.

    Lloyd's iteration (the two-means alternation) converges to a fixed point
    near its start; started from the boxes' means it can settle on a split
    the boxes suggest but the image does not, e.g. saturated blobs against
    everything else when the box marks a saturated blob. In one dimension the
    global minimiser of the K-means objective is exact: Otsu's thresholds
    (multi-Otsu for K > 2), whose bands' means are a fixed point of the
    iteration without the boundary penalty; the run fits its first constants
    to these bands. Class k takes the band that holds most of its box pixels.

    Parameters
    ----------
    image : torch.Tensor
        ``(C, H, W)``: the normalised image ``f`` as the run uses it.
    boxes : torch.Tensor
        ``(K, H, W)`` bool: the pixels of each class's boxes.

    Returns
    -------
    torch.Tensor or None
        ``(K, H, W)`` bool: class k's band, or None when the image has
        several channels (no exact global split), Otsu cannot split it into
        K bands, or two classes' boxes fall mostly in the same band — the
        user asks for a split that Otsu's is not, and the boxes' means start
        the iteration.
    """
    classes = int(boxes.shape[0])
    if image.shape[0] != 1:
        return None
    grey = image[0].detach().to("cpu", torch.float64).numpy()
    try:
        bands = threshold_regions(grey, classes, OTSU, "normalised image")
    except ValueError:  # a flat image, or too few grey levels for that many bands
        return None
    in_boxes = boxes.detach().cpu().numpy()
    chosen = [int((bands & in_boxes[k]).sum(axis=(1, 2)).argmax()) for k in range(classes)]
    if len(set(chosen)) < classes:
        return None
    return torch.from_numpy(bands[chosen]).to(image.device)
