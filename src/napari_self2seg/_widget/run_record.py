"""The record of one widget run: its inputs, frozen at Run, and what it has shown so far (main thread only)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .layers import PlaneBackup

if TYPE_CHECKING:
    import napari

    from ..core import LiveParameters, SegmentationResult, Self2SegConfig
    from ..core.measurements import Table
    from .boxes import Box
    from .layers import Layout


@dataclass(eq=False)
class StackRun:
    """An all-planes run of a stack: the stack, the plane running now, and every finished plane.

    Attributes
    ----------
    data : numpy.ndarray
        A copy of the whole stack (the layer is never modified).
    plane_boxes : dict of int to boxes per class
        Boxes drawn on single planes (C-order plane number), which replace the shared ones there.
    current : int
        The plane running now (C-order number; -1 before the first).
    results : dict of plane index to SegmentationResult
        Every finished plane's result (λ changes re-solve the plane shown).
    """

    data: np.ndarray
    plane_boxes: dict[int, dict[int, tuple[Box, ...]]] = field(default_factory=dict)
    current: int = -1
    results: dict[tuple[int, ...], SegmentationResult] = field(default_factory=dict)

    @property
    def plane_shape(self) -> tuple[int, ...]:
        """Sizes of the stack's plane axes."""
        return tuple(int(n) for n in self.data.shape[:-2])

    @property
    def planes(self) -> int:
        """Number of planes."""
        return math.prod(self.plane_shape)

    def index(self, number: int) -> tuple[int, ...]:
        """Index of plane ``number`` (C order) in the stack's plane axes."""
        return tuple(int(i) for i in np.unravel_index(number, self.plane_shape))

    def number(self, index: tuple[int, ...]) -> int:
        """C-order number of the plane at ``index``."""
        return int(np.ravel_multi_index(index, self.plane_shape))


@dataclass(eq=False)
class RunRecord:
    """One run started from the dock, and later the run whose result λ changes re-solve.

    Attributes
    ----------
    image, boxes : napari layers
        The image layer and box layer the run was started with (a later choice
        in the dock applies to the next run).
    data : numpy.ndarray
        A copy of the segmented plane (the layer is never modified).
    plane : tuple of int
        Index of that plane in the image's stack axes (empty for a 2-D image).
    config : Self2SegConfig
        The settings the run started with.
    layout : Layout
        Where the image keeps its channels.
    class_boxes : dict of int to tuple of Box
        The box prompts per class, in image pixels (empty for threshold inits).
    seed, device : int, str
        As given in the form.
    started : float
        ``time.perf_counter()`` when the run started.
    first_mask_s : float or None
        Seconds from Run to the first complete mask in the viewer.
    mask_step : int
        The segmentation step the shown mask comes from (0: none yet).
    backup : PlaneBackup
        The output layers' plane before the run, put back if the run fails
        (taken when the run starts; empty until then).
    losses : int
        Training-loss points plotted so far.
    previous : tuple
        ``(run_result, result, result_job)`` of the dock before this run, put back if it fails.
    last_labels : numpy.ndarray or None
        The labels of the shown mask (a snapshot shares arrays until they change).
    last_denoised : numpy.ndarray or None
        The last denoised image written (a snapshot shares arrays until they change).
    lam_shown : float or None
        The automatic λ the λ box shows (it follows the run: a run of constants derives it again at
        every step, a restart chooses it anew), or None before it is chosen.
    stop_reason : str or None
        Why the run is being stopped (set when an input layer is deleted).
    pending : LiveParameters or None
        λ/µ typed during the run, sent with the next snapshot.
    table : dict of str to numpy.ndarray or None
        The measurements of the objects shown (None when the mask was not split).
    stack : StackRun or None
        Set for an all-planes run; ``data`` and ``plane`` then follow the plane running (or shown).
    """

    image: napari.layers.Image
    data: np.ndarray
    plane: tuple[int, ...]
    config: Self2SegConfig
    layout: Layout
    class_boxes: dict[int, tuple[Box, ...]]
    boxes: napari.layers.Shapes | None
    seed: int
    device: str
    started: float = 0.0
    first_mask_s: float | None = None
    mask_step: int = 0
    backup: PlaneBackup = field(default_factory=lambda: PlaneBackup(mask=None, denoised=None))
    losses: int = 0
    previous: tuple[SegmentationResult | None, SegmentationResult | None, RunRecord | None] = (None, None, None)
    last_labels: np.ndarray | None = None
    last_denoised: np.ndarray | None = None
    lam_shown: float | None = None
    stop_reason: str | None = None
    pending: LiveParameters | None = None
    table: Table | None = None
    stack: StackRun | None = None
