"""Input checks and the dtype/device policy, in one place.

Every check raises ``ValueError`` with the offending value and what to do.
Nothing here modifies the caller's arrays.
"""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Integral, Real
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from collections.abc import Sequence

MIN_SIZE = 16
Box = tuple[int, int, int, int]


def check_image(image: object) -> np.ndarray:
    """Validate a 2-D real image and return a float64 copy.

    Raises
    ------
    ValueError
        If the image is not 2-D, not real-valued, smaller than 16×16, has
        NaN/inf values or is constant.
    """
    if image is None:
        raise ValueError("no image was given (got None); pass a 2-D numpy array, e.g. tifffile.imread(path)")
    try:
        array = np.asarray(image)
    except (ValueError, TypeError) as error:  # ragged nested lists
        raise ValueError(f"could not turn the image into an array ({error}); pass a 2-D numpy array") from None
    if array.dtype == bool or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(
            f"expected a real-valued (integer or float) image, got dtype {array.dtype} "
            f"({type(image).__name__}); pass a 2-D numpy array of numbers"
        )
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D (Y, X) image, got shape {array.shape}; {_axes_hint(array.shape)}")
    if min(array.shape) < MIN_SIZE:
        raise ValueError(f"image of shape {array.shape} is too small: both sides must be at least {MIN_SIZE} pixels")
    values = array.astype(np.float64)  # always a copy
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"image contains {int(bad.sum())} NaN or infinite values; replace them first, e.g. with numpy.nan_to_num"
        )
    if values.max() == values.min():
        raise ValueError(f"image is constant (every pixel is {values.flat[0]:g}): there is nothing to segment")
    return values


def _axes_hint(shape: tuple[int, ...]) -> str:
    """Say which axes a non-2-D array probably has and how to get one plane."""
    if len(shape) == 3 and shape[-1] in (3, 4):
        return (
            "this looks like an RGB(A) image (Y, X, C), which is not supported yet: "
            "pass one channel, e.g. image[..., 1]"
        )
    if len(shape) >= 3:
        lead = ", ".join("Z/T/C" for _ in shape[:-2])
        zeros = ", ".join("0" for _ in shape[:-2])
        return f"this looks like a stack ({lead}, Y, X): pass a single plane, e.g. image[{zeros}]"
    return "pass a single 2-D plane"


def normalise(values: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Min–max normalise to [0, 1]; returns ``(normalised float32, min, max)``.

    Values and range are halved first when ``max - min`` would overflow (inputs
    near ±1e308), which leaves the result unchanged.
    """
    lo, hi = float(values.min()), float(values.max())
    if not np.isfinite(hi - lo):
        return ((values / 2 - lo / 2) / (hi / 2 - lo / 2)).astype(np.float32), lo, hi
    return ((values - lo) / (hi - lo)).astype(np.float32), lo, hi


def _check_box(box: object, kind: str, index: int, shape: tuple[int, int]) -> Box:
    """Validate one (y0, x0, y1, x1) box and clip it to the image."""
    if isinstance(box, (str, bytes)) or not isinstance(box, Iterable):
        raise ValueError(
            f"{kind} box #{index + 1} must be 4 numbers (y0, x0, y1, x1), got {box!r}; "
            f"boxes are given as a list of boxes, e.g. {kind[:2]}_boxes=[(10, 10, 40, 40)]"
        )
    box = tuple(box)
    if len(box) != 4:
        raise ValueError(f"{kind} box #{index + 1} must have 4 numbers (y0, x0, y1, x1), got {len(box)}")
    for v in box:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, Real):
            raise ValueError(
                f"{kind} box #{index + 1} {box!r}: coordinates must be numbers, got {v!r} ({type(v).__name__})"
            )
    if not all(np.isfinite(float(v)) for v in box):
        raise ValueError(f"{kind} box #{index + 1} {tuple(box)} contains NaN or infinity")
    y0, x0, y1, x1 = (round(float(v)) for v in box)
    cy0, cx0 = max(y0, 0), max(x0, 0)
    cy1, cx1 = min(y1, shape[0]), min(x1, shape[1])
    if cy1 <= cy0 or cx1 <= cx0:
        raise ValueError(
            f"{kind} box #{index + 1} {(y0, x0, y1, x1)} lies outside the {shape[0]}×{shape[1]} image "
            f"or is empty after clipping; boxes are half-open (y0, x0, y1, x1) with y0 < y1 and x0 < x1, "
            f"inside 0 <= y < {shape[0]}, 0 <= x < {shape[1]}"
        )
    return cy0, cx0, cy1, cx1


def check_boxes(boxes: Iterable[Sequence[float]] | None, kind: str, shape: tuple[int, int]) -> tuple[Box, ...]:
    """Validate and clip a collection of boxes; ``None`` means no boxes.

    A single flat box such as ``(y0, x0, y1, x1)`` is refused with a message
    that says to wrap it in a list (it would otherwise read as four boxes).
    """
    if boxes is None:
        return ()
    if isinstance(boxes, (str, bytes)) or not isinstance(boxes, Iterable):
        raise ValueError(f"{kind} boxes must be a list of (y0, x0, y1, x1) boxes, got {boxes!r}")
    items = list(boxes)
    if len(items) == 4 and all(isinstance(v, Real) for v in items):
        raise ValueError(
            f"{kind} boxes must be a list of boxes, got one flat box {tuple(items)!r}; "
            f"wrap it in a list: [{tuple(items)!r}]"
        )
    return tuple(_check_box(b, kind, i, shape) for i, b in enumerate(items))


MAX_SEED = 2**63 - 1


def check_seed(seed: object) -> int:
    """Validate a random seed: an integer in ``[0, 2**63 - 1]``."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, Integral):
        raise ValueError(f"seed must be an integer, got {seed!r} ({type(seed).__name__})")
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed must be between 0 and 2**63 - 1, got {seed}")
    return int(seed)


def check_init_mask(mask: object, shape: tuple[int, int]) -> np.ndarray:
    """Validate a user-given initial mask: same shape, both regions non-empty."""
    array = np.asarray(mask)
    if array.shape != shape:
        raise ValueError(f"init_mask has shape {array.shape} but the image has shape {shape}; they must match")
    binary = array > 0.5 if np.issubdtype(array.dtype, np.floating) else array != 0
    if binary.all() or not binary.any():
        raise ValueError("init_mask must contain both foreground (non-zero) and background (zero) pixels")
    return binary


def resolve_device(device: str | torch.device) -> torch.device:
    """Turn ``"auto"``/``"cpu"``/``"cuda[:N]"``/``"mps"`` into an available device.

    ``"auto"`` picks CUDA, then Apple MPS, then the CPU.

    Raises
    ------
    ValueError
        If the name is unknown or the device is not available here.
    """
    name = str(device)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError:
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {name!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was requested but CUDA is not available here; use 'auto' or 'cpu'")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' was requested but Apple MPS is not available here; use 'auto' or 'cpu'")
    return resolved
