"""Checkerboard down-sampling pairs of Noise2Fast (paper §4.3, eq. 12).

For an image ``f`` of even size ``m × n`` the four half-size images are

* ``A(i, j) = f(2i + 1 - (j mod 2), j)`` and ``B(i, j) = f(2i + (j mod 2), j)``
  (``m/2 × n``; the two checkerboard halves, compacted along rows),
* ``C(i, j) = f(i, 2j + 1 - (i mod 2))`` and ``D(i, j) = f(i, 2j + (i mod 2))``
  (``m × n/2``; compacted along columns),

and the training pairs (input → target) are B→A, A→B, D→C, C→D, each with the
mask sampled at the target pixels. The paper's formulas have index typos; these
follow the authors' code, built with tensor slicing instead of pixel loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TrainingPair:
    """One Noise2Fast training pair: ``source`` and ``target`` ``(1, C, h, w)``, ``mask`` ``(1, 1, h, w)``."""

    source: torch.Tensor
    target: torch.Tensor
    mask: torch.Tensor


def row_halves(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(A, B)``, the checkerboard halves of ``f`` compacted along rows."""
    a = torch.empty_like(f[..., ::2, :])
    b = torch.empty_like(a)
    a[..., :, 0::2] = f[..., 1::2, 0::2]
    a[..., :, 1::2] = f[..., 0::2, 1::2]
    b[..., :, 0::2] = f[..., 0::2, 0::2]
    b[..., :, 1::2] = f[..., 1::2, 1::2]
    return a, b


def column_halves(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(C, D)``, the checkerboard halves of ``f`` compacted along columns."""
    c = torch.empty_like(f[..., :, ::2])
    d = torch.empty_like(c)
    c[..., 0::2, :] = f[..., 0::2, 1::2]
    c[..., 1::2, :] = f[..., 1::2, 0::2]
    d[..., 0::2, :] = f[..., 0::2, 0::2]
    d[..., 1::2, :] = f[..., 1::2, 1::2]
    return c, d


def checkerboard_pairs(image: torch.Tensor, mask: torch.Tensor) -> tuple[TrainingPair, ...]:
    """Build the four (input → target, target mask) pairs of eq. (12).

    Parameters
    ----------
    image : torch.Tensor
        Normalised image, shape ``(C, H, W)``. An odd last row or column is
        left out of the pairs (the network is still applied to the whole image).
    mask : torch.Tensor
        Region weights (0/1), shape ``(H, W)``.

    Returns
    -------
    tuple of TrainingPair
        (B→A, M_A), (A→B, M_B), (D→C, M_C), (C→D, M_D).
    """
    h, w = (image.shape[-2] // 2) * 2, (image.shape[-1] // 2) * 2
    f = image[..., :h, :w]
    m = mask[..., :h, :w].to(image.dtype)
    a, b = row_halves(f)
    ma, mb = row_halves(m)
    c, d = column_halves(f)
    mc, md = column_halves(m)

    def pair(src: torch.Tensor, tgt: torch.Tensor, msk: torch.Tensor) -> TrainingPair:
        return TrainingPair(src[None], tgt[None], msk[None, None])

    return (pair(b, a, ma), pair(a, b, mb), pair(d, c, mc), pair(c, d, md))


def merge_row_halves(a: torch.Tensor, b: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`row_halves`: put ``A`` and ``B`` back at their pixels of an image like ``fill``.

    Pixels the halves do not cover (an odd last row or column) keep ``fill``'s values.
    """
    out = fill.clone()
    h, w = 2 * a.shape[-2], a.shape[-1]
    o = out[..., :h, :w]
    o[..., 1::2, 0::2] = a[..., :, 0::2]
    o[..., 0::2, 1::2] = a[..., :, 1::2]
    o[..., 0::2, 0::2] = b[..., :, 0::2]
    o[..., 1::2, 1::2] = b[..., :, 1::2]
    return out
