"""Immutable snapshots streamed by :func:`~napari_self2seg.core.iterate` and the final result.

All arrays are CPU numpy arrays marked read-only, so a snapshot can cross
threads safely and be shown while the run goes on.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config import require_number

if TYPE_CHECKING:
    from collections.abc import Mapping

    import numpy as np

    from .config import Self2SegConfig


class Phase(enum.Enum):
    """What the alternating scheme (paper Algorithm 1) is doing."""

    INIT = "initialise"
    TRAIN_FOREGROUND = "train foreground expert"
    TRAIN_BACKGROUND = "train background expert"
    SEGMENT = "segment"
    DONE = "done"


@dataclass(frozen=True, kw_only=True)
class LiveParameters:
    """Parameters that may be changed while a run goes on (sent into ``iterate``).

    A value of ``None`` keeps the current setting. Changes take effect at the
    next segmentation step.

    Parameters
    ----------
    lam : float or None
        New TV weight λ (> 0).
    mu : float or None
        New proximity weight µ (>= 0).
    """

    lam: float | None = None
    mu: float | None = None

    def __post_init__(self) -> None:
        """Check the new values; raise ``ValueError`` naming the fix."""
        if self.lam is not None:
            require_number(self.lam, "lam (λ)")
            if not self.lam > 0:
                raise ValueError(f"lam (λ) must be > 0, got {self.lam}")
        if self.mu is not None:
            require_number(self.mu, "mu (µ)")
            if not self.mu >= 0:
                raise ValueError(f"mu (µ) must be >= 0, got {self.mu}")


@dataclass(frozen=True, kw_only=True)
class SegmentationResult:
    """Outcome of a Self2Seg run; arrays have the input image's shape.

    Attributes
    ----------
    mask : numpy.ndarray
        Binary segmentation ``u >= 0.5`` (Theorem 4), bool.
    relaxed : numpy.ndarray
        Relaxed indicator ``u`` in [0, 1], float32.
    denoised : numpy.ndarray
        Composite ``round(u) D_F(f) + (1 - round(u)) D_B(f)`` (paper §2.4) in
        the input's intensity scale, float32 (float64 for inputs beyond
        float32's range).
    denoised_fg, denoised_bg : numpy.ndarray
        Each expert's denoising of the whole image, input scale, same dtype
        (constant for a constant background).
    energies : tuple of float
        Joint energy (eq. 5) after each outer iteration, index 0 after the
        first expert training.
    timings : Mapping[str, float]
        Seconds spent per phase (``init``, ``train_foreground``,
        ``train_background``, ``segment``).
    config : Self2SegConfig
        The settings used, with the λ actually used (the automatic one, or
        the last live λ) and the last live µ.
    seed : int
        Seed of the run.
    device : str
        Device the run used.
    outer_iterations : int
        Number of segmentation steps done.
    stop_reason : str
        Why the run stopped.
    degenerate : bool
        Whether the last segmentation step collapsed: made the whole image one
        region or, with box prompts, gave more than half of one region's
        boxes to the other region (a flood that left a few pixels over).
        A run then ends with the last mask that had two regions (the initial
        regions if there was none); :func:`resegment` returns the
        single-region minimiser and sets this flag.
    automatic_lam : bool
        Whether ``config.lam`` was chosen from the image (``lam="auto"``)
        rather than given or sent live.
    image_range : tuple of float
        ``(min, max)`` of the input, used for the [0, 1] normalisation.
    residual_fg, residual_bg : numpy.ndarray
        Region fidelities ``r_F``, ``r_B`` (eq. 5) that ``mask`` was solved
        with, on the normalised image; :func:`resegment` re-uses them, so
        re-segmenting at the run's λ gives ``mask`` back.
    dual : numpy.ndarray
        Dual variable of the segmentation step that gave ``relaxed``,
        ``(2, H, W)``, for warm starts.
    """

    mask: np.ndarray
    relaxed: np.ndarray
    denoised: np.ndarray
    denoised_fg: np.ndarray
    denoised_bg: np.ndarray
    energies: tuple[float, ...]
    timings: Mapping[str, float]
    config: Self2SegConfig
    seed: int
    device: str
    outer_iterations: int
    stop_reason: str
    degenerate: bool
    automatic_lam: bool
    image_range: tuple[float, float]
    residual_fg: np.ndarray = field(repr=False)
    residual_bg: np.ndarray = field(repr=False)
    dual: np.ndarray = field(repr=False)

    @property
    def lam(self) -> float:
        """The λ ``mask`` was solved with: ``config.lam``, a number also after ``lam="auto"``."""
        lam = self.config.lam
        if isinstance(lam, str):  # pragma: no cover - a run always resolves "auto" before its result
            raise RuntimeError("the result's λ was never chosen")
        return lam


@dataclass(frozen=True, kw_only=True)
class SolverState:
    """One snapshot of a running Self2Seg computation.

    Attributes
    ----------
    phase : Phase
        Current phase.
    outer_iteration : int
        0 during initialisation and the first expert training, then the
        index of the current segmentation step.
    step : int
        Gradient step (training phases) or primal–dual iteration (segment).
    mask : numpy.ndarray
        Current binary mask (bool).
    mask_step : int
        The segmentation step ``mask`` comes from; 0 means it is still the
        initial regions (no complete mask yet).
    relaxed : numpy.ndarray
        Current relaxed indicator ``u`` (float32).
    denoised : numpy.ndarray or None
        Current composite denoised image in input scale, once experts exist.
    energies : tuple of float
        Energies of the finished outer iterations.
    lam : float or None
        The λ the segmentation steps use; None while the automatic λ is not
        chosen yet (before the first training ends).
    loss : float or None
        Last training loss (training phases).
    gap : float or None
        Last primal–dual gap per pixel (segment phase).
    elapsed : float
        Seconds since the run started.
    message : str
        One human-readable line on what is happening.
    result : SegmentationResult or None
        Set on the final snapshot (phase ``DONE``).
    """

    phase: Phase
    outer_iteration: int
    step: int
    mask: np.ndarray
    mask_step: int
    relaxed: np.ndarray
    denoised: np.ndarray | None
    energies: tuple[float, ...]
    lam: float | None
    loss: float | None
    gap: float | None
    elapsed: float
    message: str
    result: SegmentationResult | None = None
