"""Small synthetic images with known ground truth (numpy only).

Used by the sample data, the tests and the benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SyntheticImage:
    """A noisy test image with its ground truth and suggested boxes.

    Attributes
    ----------
    image : numpy.ndarray
        Noisy image, float32.
    clean : numpy.ndarray
        Noise-free image, float32.
    truth : numpy.ndarray
        Ground-truth foreground, bool.
    fg_box, bg_box : tuple of int
        Half-open (y0, x0, y1, x1) boxes inside the foreground and background.
    """

    image: np.ndarray
    clean: np.ndarray
    truth: np.ndarray
    fg_box: tuple[int, int, int, int]
    bg_box: tuple[int, int, int, int]


def two_textures(
    size: int = 64, *, period: int = 6, contrast: float = 0.5, noise: float = 0.1, seed: int = 0
) -> SyntheticImage:
    """Central disk of vertical stripes on a background of horizontal stripes.

    Both regions have the same mean intensity and the same histogram, so any
    intensity-only method (Otsu, Chan–Vese) cannot separate them; only the
    texture orientation differs (the toy case of paper §1.1).

    Parameters
    ----------
    size : int
        Side length in pixels.
    period : int
        Stripe period in pixels.
    contrast : float
        Stripe amplitude (peak to peak) around the mean 0.5.
    noise : float
        Standard deviation of the added Gaussian noise.
    seed : int
        Seed of the noise.

    Returns
    -------
    SyntheticImage
        Image, clean image, truth and a box in each region.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    vertical = 0.5 + 0.5 * contrast * np.sign(np.sin(2 * np.pi * (xx + 0.5) / period))
    horizontal = 0.5 + 0.5 * contrast * np.sign(np.sin(2 * np.pi * (yy + 0.5) / period))
    centre, radius = (size - 1) / 2.0, size * 0.3
    truth = (yy - centre) ** 2 + (xx - centre) ** 2 <= radius**2
    clean = np.where(truth, vertical, horizontal)
    noisy = clean + np.random.default_rng(seed).normal(0.0, noise, clean.shape)
    half = max(2, int(radius * 0.5))
    c = round(centre)
    fg_box = (c - half, c - half, c + half, c + half)
    bg_box = (0, 0, max(4, size // 6), size)
    return SyntheticImage(noisy.astype(np.float32), clean.astype(np.float32), truth, fg_box, bg_box)
