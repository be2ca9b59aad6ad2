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


def texture(kind: str, shape: tuple[int, int], *, period: float, angle: float = 0.0, seed: int = 0) -> np.ndarray:
    """Make a zero-mean, unit-amplitude texture of one kind (values in [-1, 1]).

    Parameters
    ----------
    kind : {"stripes", "checkerboard", "dots", "grain"}
        Square-wave stripes at ``angle`` degrees; a checkerboard of cells of
        ``period / 2`` rotated by ``angle``; a lattice of round dots with
        spacing ``period`` (balanced to zero mean); random grain (Gaussian
        noise smoothed over about ``period / 4`` pixels, normalised).
    shape : tuple of int
        Image shape.
    period : float
        Spatial period in pixels.
    angle : float
        Orientation in degrees.
    seed : int
        Seed (grain only).

    Returns
    -------
    numpy.ndarray
        float64 texture with mean close to 0.
    """
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    theta = np.deg2rad(angle)
    u = xx * np.cos(theta) + yy * np.sin(theta)
    v = -xx * np.sin(theta) + yy * np.cos(theta)
    if kind == "stripes":
        return np.asarray(np.sign(np.sin(2 * np.pi * (u + 0.25) / period)), dtype=np.float64)
    if kind == "checkerboard":
        return np.asarray(
            np.sign(np.sin(2 * np.pi * (u + 0.25) / period) * np.sin(2 * np.pi * (v + 0.25) / period)), dtype=np.float64
        )
    if kind == "dots":
        du = (u % period) - period / 2
        dv = (v % period) - period / 2
        dots = (du**2 + dv**2 <= (0.3 * period) ** 2).astype(np.float64)
        return np.asarray((dots - dots.mean()) / max(dots.std(), 1e-12), dtype=np.float64)
    if kind == "grain":
        rng = np.random.default_rng(seed)
        noise = rng.normal(size=shape)
        width = max(period / 4.0, 0.5)
        k = np.arange(-int(3 * width), int(3 * width) + 1)
        kernel = np.exp(-(k**2) / (2 * width**2))
        kernel /= kernel.sum()
        smooth = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="same"), 0, noise)
        smooth = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="same"), 1, smooth)
        return np.asarray(np.clip((smooth - smooth.mean()) / max(smooth.std(), 1e-12), -1.0, 1.0), dtype=np.float64)
    raise ValueError(f"unknown texture kind {kind!r}; use stripes, checkerboard, dots or grain")


def blob_mask(shape: tuple[int, int], fraction: float, *, kind: str = "disk", seed: int = 0) -> np.ndarray:
    """Make a foreground region covering about ``fraction`` of the image.

    ``kind``: ``"disk"`` (centred), ``"ellipse"`` (elongated, tilted),
    ``"star"`` (five arms), ``"band"`` (a vertical band) or ``"blobs"``
    (several disks at random places).
    """
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    area = fraction * h * w
    if kind == "disk":
        return np.asarray((yy - cy) ** 2 + (xx - cx) ** 2 <= area / np.pi, dtype=bool)
    if kind == "ellipse":
        a = np.sqrt(area / np.pi * 2.2)
        b = area / (np.pi * a)
        t = np.deg2rad(30.0)
        p, q = (xx - cx) * np.cos(t) + (yy - cy) * np.sin(t), -(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)
        return np.asarray((p / a) ** 2 + (q / b) ** 2 <= 1.0, dtype=bool)
    if kind == "star":
        r0 = np.sqrt(area / np.pi)
        radius = np.hypot(yy - cy, xx - cx)
        phi = np.arctan2(yy - cy, xx - cx)
        return np.asarray(radius <= r0 * (1.0 + 0.35 * np.cos(5 * phi)), dtype=bool)
    if kind == "band":
        half = fraction * w / 2.0
        return np.asarray(np.abs(xx - cx) <= half, dtype=bool)
    if kind == "blobs":
        rng = np.random.default_rng(seed)
        mask = np.zeros(shape, dtype=bool)
        r = np.sqrt(area / 4 / np.pi)
        while mask.mean() < fraction:
            y, x = rng.uniform(r, h - r), rng.uniform(r, w - r)
            mask |= (yy - y) ** 2 + (xx - x) ** 2 <= r**2
        return np.asarray(mask, dtype=bool)
    raise ValueError(f"unknown region kind {kind!r}; use disk, ellipse, star, band or blobs")


def inner_box(mask: np.ndarray, size: int) -> tuple[int, int, int, int]:
    """Return a ``size``² box (shrunk if needed) inside ``mask``, as far from its edge as possible."""
    from scipy import ndimage  # a dependency of scikit-image

    depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(depth)), mask.shape)
    half = max(2, min(size // 2, int(depth[y, x] / np.sqrt(2)) - 1))
    return (int(y) - half, int(x) - half, int(y) + half, int(x) + half)


def texture_pair(
    fg: np.ndarray,
    bg: np.ndarray,
    truth: np.ndarray,
    *,
    contrast: float = 0.5,
    noise: float = 0.1,
    seed: int = 0,
    box: int = 40,
) -> SyntheticImage:
    """Compose two zero-mean textures into an equal-mean image with Gaussian noise and a box in each region."""
    clean = 0.5 + 0.5 * contrast * np.where(truth, fg, bg)
    noisy = clean + np.random.default_rng(seed).normal(0.0, noise, clean.shape)
    return SyntheticImage(
        noisy.astype(np.float32), clean.astype(np.float32), truth, inner_box(truth, box), inner_box(~truth, box)
    )


def synthetic_nuclei(
    size: int = 128,
    *,
    n: int = 14,
    bias: float = 0.0,
    brightness_spread: float = 0.0,
    touching: bool = False,
    noise: float = 0.15,
    seed: int = 0,
) -> SyntheticImage:
    """Bright round nuclei on a dark background, with optional inhomogeneity.

    Parameters
    ----------
    size : int
        Side length.
    n : int
        Number of nuclei.
    bias : float
        Strength of a smooth multiplicative bias field (0 = flat illumination;
        0.5 = the image is 50 % brighter on one side).
    brightness_spread : float
        Relative spread of the nuclei's brightness (0 = all equal; 0.5 = from
        50 % to 100 % of the brightest).
    touching : bool
        Place nuclei in touching pairs.
    noise : float
        Gaussian noise on the [0, 1] scale (nuclei at most 0.8 above a 0.1 background).
    seed : int
        Seed of the layout, brightness and noise.

    Returns
    -------
    SyntheticImage
        The image, clean image, truth and a box inside the largest nucleus and
        one in the background.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    clean = np.full((size, size), 0.1)
    truth = np.zeros((size, size), dtype=bool)
    placed = 0
    for _ in range(50 * n):
        if placed >= n:
            break
        r = rng.uniform(0.045, 0.075) * size
        y, x = rng.uniform(r + 2, size - r - 2, 2)
        centres = [(y, x)]
        if touching:
            t = rng.uniform(0, 2 * np.pi)
            y2, x2 = y + 1.9 * r * np.sin(t), x + 1.9 * r * np.cos(t)
            if r + 2 < y2 < size - r - 2 and r + 2 < x2 < size - r - 2:
                centres.append((y2, x2))
        disks = [(yy - cy) ** 2 + (xx - cx) ** 2 <= r**2 for cy, cx in centres]
        union = np.logical_or.reduce(disks)
        grown = np.zeros((size, size), dtype=bool)
        for cy, cx in centres:
            grown |= (yy - cy) ** 2 + (xx - cx) ** 2 <= (r + 3) ** 2
        if (grown & truth).any():
            continue
        for disk in disks:
            level = 0.8 * (1.0 - brightness_spread * rng.uniform())
            texture_ = 1.0 + 0.15 * np.sin(2 * np.pi * (xx + yy) / max(r * 0.7, 2))  # chromatin-like ripple
            clean = np.where(disk, 0.1 + level * texture_ * 0.87, clean)
        truth |= union
        placed += len(centres)
    field = 1.0 + bias * (xx + 0.5 * yy) / (1.5 * size)
    clean = clean * field
    noisy = clean + rng.normal(0.0, noise, clean.shape)
    return SyntheticImage(
        noisy.astype(np.float32), clean.astype(np.float32), truth, inner_box(truth, 16), inner_box(~truth, 32)
    )


@dataclass(frozen=True)
class LabelledImage:
    """A noisy test image of K regions with its class labels and boxes per class.

    Attributes
    ----------
    image : numpy.ndarray
        Noisy image, float32; ``(H, W)`` or ``(H, W, 3)`` (channels last).
    clean : numpy.ndarray
        Noise-free image, same shape.
    labels : numpy.ndarray
        Class of every pixel, ``(H, W)`` uint8; 0 is the background.
    boxes : dict of int to list of boxes
        Half-open (y0, x0, y1, x1) boxes inside each class, ``{class: [box]}``.
    channel_axis : int or None
        Axis of the channels (None for grey).
    """

    image: np.ndarray
    clean: np.ndarray
    labels: np.ndarray
    boxes: dict[int, list[tuple[int, int, int, int]]]
    channel_axis: int | None = None


def three_region_layout(size: int) -> np.ndarray:
    """Return the class labels of a 3-region layout: background (0), a disk (1) and a vertical band (2).

    The three regions cover about 50 %, 18 % and 32 % of the image.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    labels = np.zeros((size, size), dtype=np.uint8)
    labels[:, int(size * 0.68) :] = 2
    centre = size * 0.33
    labels[(yy - size / 2) ** 2 + (xx - centre) ** 2 <= (size * 0.24) ** 2] = 1
    return labels


def _boxes_inside(labels: np.ndarray, size: int) -> dict[int, list[tuple[int, int, int, int]]]:
    """Return one box per class, inside it."""
    return {int(k): [inner_box(labels == k, size)] for k in np.unique(labels)}


def three_textures(size: int = 96, *, noise: float = 0.2, contrast: float = 0.6, seed: int = 0) -> LabelledImage:
    """Make three equal-mean textures (horizontal stripes, checkerboard, vertical stripes) in a 3-region layout.

    Intensity alone cannot tell the regions apart (multi-Otsu is near chance);
    only the texture can.
    """
    labels = three_region_layout(size)
    kinds = (
        texture("stripes", (size, size), period=8, angle=90),
        texture("checkerboard", (size, size), period=10, angle=0),
        texture("stripes", (size, size), period=6, angle=0),
    )
    clean = 0.5 + 0.5 * contrast * np.choose(labels, kinds)
    noisy = clean + np.random.default_rng(seed).normal(0.0, noise, clean.shape)
    return LabelledImage(noisy.astype(np.float32), clean.astype(np.float32), labels, _boxes_inside(labels, 20))


def hue_pair(size: int = 64, *, noise: float = 0.08, seed: int = 0) -> LabelledImage:
    """Make an RGB image whose foreground differs from the background in hue only (equal channel mean).

    Background (0.65, 0.35, 0.5), foreground (0.35, 0.65, 0.5): every grey
    conversion that averages the channels sees one flat image plus noise.
    """
    labels = blob_mask((size, size), 0.3, kind="disk").astype(np.uint8)
    colours = np.array([[0.65, 0.35, 0.5], [0.35, 0.65, 0.5]])
    clean = colours[labels]
    noisy = clean + np.random.default_rng(seed).normal(0.0, noise, clean.shape)
    return LabelledImage(
        noisy.astype(np.float32), clean.astype(np.float32), labels, _boxes_inside(labels, 16), channel_axis=-1
    )
