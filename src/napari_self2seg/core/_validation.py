"""Input checks and the dtype/device policy, in one place.

Every check raises ``ValueError`` with the offending value and what to do.
Nothing here modifies the caller's arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from numbers import Integral, Real
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from collections.abc import Sequence

MIN_SIZE = 16
MAX_CHANNELS = 16
"""More channels than this is most likely a stack of planes, not colours or dyes."""
Box = tuple[int, int, int, int]


def check_image(image: object, channel_axis: int | None = None) -> np.ndarray:
    """Validate a 2-D image, grey or with a channel axis, and return a ``(C, H, W)`` float64 copy.

    Parameters
    ----------
    image : array-like
        ``(H, W)``, or 3-D with the channels along ``channel_axis``.
    channel_axis : int or None
        Axis of the channels (scikit-image's convention); None for a grey image.

    Raises
    ------
    ValueError
        If the image is not 2-D (plus channels), not real-valued, smaller than
        16×16, has NaN/inf values, has more than 16 channels or a constant
        channel, or ``channel_axis`` does not fit its shape.
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
    array = _channels_first(array, channel_axis)
    if min(array.shape[1:]) < MIN_SIZE:
        raise ValueError(
            f"image of shape {array.shape[1:]} is too small: both sides must be at least {MIN_SIZE} pixels"
        )
    values = array.astype(np.float64)  # always a copy
    bad = ~np.isfinite(values)
    if bad.any():
        raise ValueError(
            f"image contains {int(bad.sum())} NaN or infinite values; replace them first, e.g. with numpy.nan_to_num"
        )
    for c, channel in enumerate(values):
        if channel.max() == channel.min():
            what = "image is constant" if len(values) == 1 else f"channel {c} is constant"
            fix = "there is nothing to segment" if len(values) == 1 else "leave that channel out"
            raise ValueError(f"{what} (every pixel is {channel.flat[0]:g}): {fix}")
    return values


def _channels_first(array: np.ndarray, channel_axis: int | None) -> np.ndarray:
    """Return a ``(C, H, W)`` view of a grey ``(H, W)`` image or of a 3-D image with channels on ``channel_axis``."""
    if channel_axis is None:
        if array.ndim != 2:
            raise ValueError(f"expected a 2-D (Y, X) image, got shape {array.shape}; {_axes_hint(array.shape)}")
        return array[None]
    if isinstance(channel_axis, (bool, np.bool_)) or not isinstance(channel_axis, Integral):
        raise ValueError(f"channel_axis must be an integer or None, got {channel_axis!r}")
    if array.ndim == 2:
        raise ValueError(
            f"channel_axis={channel_axis} was given but the image is 2-D {array.shape} (grey); "
            "leave channel_axis as None"
        )
    if array.ndim != 3:
        raise ValueError(
            f"expected a 2-D image with one channel axis, got shape {array.shape}; {_axes_hint(array.shape)}"
        )
    if not -3 <= channel_axis <= 2:
        raise ValueError(f"channel_axis={channel_axis} is out of range for a 3-D image; use 0, 1, 2 or -1")
    moved = np.moveaxis(array, channel_axis, 0)
    if moved.shape[0] > MAX_CHANNELS:
        raise ValueError(
            f"axis {channel_axis} has {moved.shape[0]} entries: more than {MAX_CHANNELS} channels is probably a "
            "stack of planes (Z or T), not colours; segment_stack runs every plane of a stack, or pick the "
            "right channel_axis"
        )
    return moved


def _axes_hint(shape: tuple[int, ...]) -> str:
    """Say which axes a non-2-D array probably has and how to pass it."""
    if len(shape) == 3 and shape[-1] in (3, 4):
        return "this looks like an RGB(A) image (Y, X, C): pass channel_axis=-1"
    if len(shape) == 3 and shape[0] <= MAX_CHANNELS:
        return f"if axis 0 holds {shape[0]} channels, pass channel_axis=0; if it is Z or T, use segment_stack"
    if len(shape) >= 3:
        lead = ", ".join("Z/T/C" for _ in shape[:-2])
        return f"this looks like a stack ({lead}, Y, X): segment_stack runs every plane"
    return "pass a single 2-D plane"


def normalise(values: np.ndarray) -> tuple[np.ndarray, tuple[tuple[float, float], ...]]:
    """Min–max normalise each channel of ``(C, H, W)`` values to [0, 1].

    Returns ``(normalised float32, ((min, max) per channel))``. Channels are
    scaled separately (two dyes have unrelated brightness). Values and range
    are halved first when ``max - min`` would overflow (inputs near ±1e308),
    which leaves the result unchanged.
    """
    channels, ranges = [], []
    for channel in values:
        lo, hi = float(channel.min()), float(channel.max())
        if not np.isfinite(hi - lo):
            channels.append(((channel / 2 - lo / 2) / (hi / 2 - lo / 2)).astype(np.float32))
        else:
            channels.append(((channel - lo) / (hi - lo)).astype(np.float32))
        ranges.append((lo, hi))
    return np.stack(channels), tuple(ranges)


def class_name(index: int, classes: int) -> str:
    """How messages name a class: class 0 is the background; with two classes, class 1 the foreground."""
    if index == 0:
        return "background (class 0)"
    if index == 1 and classes == 2:
        return "foreground (class 1)"
    return f"class {index}"


def _check_box(box: object, kind: str, index: int, shape: tuple[int, int]) -> Box:
    """Validate one (y0, x0, y1, x1) box and clip it to the image."""
    if isinstance(box, (str, bytes)) or not isinstance(box, Iterable):
        raise ValueError(
            f"{kind} box #{index + 1} must be 4 numbers (y0, x0, y1, x1), got {box!r}; "
            "boxes are given as a list of boxes, e.g. [(10, 10, 40, 40)]"
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


def check_class_boxes(
    boxes: Mapping[int, Iterable[Sequence[float]]] | None, shape: tuple[int, int]
) -> dict[int, tuple[Box, ...]]:
    """Validate boxes given per class index (``{class: [(y0, x0, y1, x1), ...]}``) and clip them.

    Class indices must be integers in ``[0, 255]``; whether every class has
    a box is checked where the regions are made (only box prompts need them).
    """
    if boxes is None:
        return {}
    if not isinstance(boxes, Mapping):
        raise ValueError(
            f"boxes must map a class index to a list of boxes, e.g. {{0: [(0, 0, 8, 64)], 1: [(20, 20, 40, 40)]}}; "
            f"got {type(boxes).__name__}"
        )
    checked: dict[int, tuple[Box, ...]] = {}
    for key, items in boxes.items():
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, Integral) or not 0 <= int(key) <= MAX_CLASS_INDEX:
            raise ValueError(f"box classes must be integers from 0 (background) to {MAX_CLASS_INDEX}, got {key!r}")
        checked[int(key)] = check_boxes(items, f"class {int(key)}", shape)
    return checked


MAX_CLASS_INDEX = 255


def check_init_labels(labels: object, shape: tuple[int, int]) -> np.ndarray:
    """Validate a user-given initial segmentation and return it as class indices ``(H, W)`` int64.

    A bool mask is the foreground (class 1) of two classes; an integer image
    holds class indices 0..K-1, each of them present; a float image in
    [0, 1] (a soft mask) is thresholded at 0.5.
    """
    array = np.asarray(labels)
    if array.shape != shape:
        raise ValueError(f"init_mask has shape {array.shape} but the image has shape {shape}; they must match")
    if array.dtype == bool or np.issubdtype(array.dtype, np.integer):
        indices = array.astype(np.int64)
    elif np.issubdtype(array.dtype, np.floating) and np.isfinite(array).all():
        integral = bool(np.all(array == np.round(array)))
        indices = array.astype(np.int64) if integral else (array > 0.5).astype(np.int64)
    else:
        raise ValueError(f"init_mask must be a bool mask or an integer label image, got dtype {array.dtype}")
    if indices.min() < 0 or indices.max() > MAX_CLASS_INDEX:
        raise ValueError(
            f"init_mask holds class indices from 0 (background) to {MAX_CLASS_INDEX}; "
            f"got values from {indices.min()} to {indices.max()}"
        )
    classes = int(indices.max()) + 1
    present = np.unique(indices).tolist()
    if len(present) < 2:
        raise ValueError("init_mask must contain both foreground (non-zero) and background (zero) pixels")
    missing = sorted(set(range(classes)) - set(present))
    if missing:
        raise ValueError(
            f"init_mask has classes up to {classes - 1} but no pixel of class(es) {missing}; "
            "number the classes 0, 1, 2, … without gaps"
        )
    return indices


MAX_SEED = 2**63 - 1


def check_seed(seed: object) -> int:
    """Validate a random seed: an integer in ``[0, 2**63 - 1]``."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, Integral):
        raise ValueError(f"seed must be an integer, got {seed!r} ({type(seed).__name__})")
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed must be between 0 and 2**63 - 1, got {seed}")
    return int(seed)


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
