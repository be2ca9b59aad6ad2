"""Immutable snapshots streamed by :func:`~napari_self2seg.core.iterate` and the final result.

All arrays are CPU numpy arrays marked read-only, so a snapshot can cross
threads safely and be shown while the run goes on.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config import require_number
from .reliability import separation_warning

if TYPE_CHECKING:
    import numpy as np

    from .config import Self2SegConfig
    from .instances import Instances


class Phase(enum.Enum):
    """What the alternating scheme (paper Algorithm 1) is doing."""

    INIT = "initialise"
    TRAIN = "train expert"
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


@dataclass(frozen=True)
class Timings:
    """Seconds spent per phase of a run.

    Attributes
    ----------
    init : float
        Initial regions (the whole-image denoiser for ``denoise-threshold``).
    experts : tuple of float
        Training (or the closed-form mean) of each class's expert, by class.
    segment : float
        Primal–dual segmentation steps.
    instances : float
        Splitting the classes into objects (0 when no instances were asked for).
    """

    init: float = 0.0
    experts: tuple[float, ...] = ()
    segment: float = 0.0
    instances: float = 0.0

    @property
    def total(self) -> float:
        """All phases together."""
        return self.init + sum(self.experts) + self.segment + self.instances

    def as_dict(self) -> dict[str, float]:
        """Flat mapping for JSON records: ``init``, ``expert_0`` … ``expert_{K-1}``, ``segment``, ``instances``."""
        experts = {f"expert_{k}": t for k, t in enumerate(self.experts)}
        return {"init": self.init, **experts, "segment": self.segment, "instances": self.instances}


@dataclass(frozen=True, kw_only=True)
class ConvexProblem:
    """The segmentation step's convex problem for fixed experts (eq. 13), kept for :func:`~.solver.resegment`.

    Attributes
    ----------
    residuals : numpy.ndarray
        Region fidelities ``r_k`` (eq. 5) the result's labels were solved
        with, on the normalised image, ``(K, H, W)`` float32.
    dual : numpy.ndarray
        Dual variable of that solve, ``(K, 2, H, W)``, for warm starts.
    expert_images : numpy.ndarray
        Each expert's denoising of the whole image in the input's intensity
        scale and layout, stacked on a new first axis (a constant expert is a
        constant image).
    """

    residuals: np.ndarray = field(repr=False)
    dual: np.ndarray = field(repr=False)
    expert_images: np.ndarray = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class SegmentationResult:
    """Outcome of a Self2Seg run.

    Attributes
    ----------
    labels : numpy.ndarray
        Class index of every pixel, ``(H, W)`` uint8: the class of largest
        membership ``u_k`` (ties go to the higher class, so for two classes a
        pixel is foreground where ``u_1 >= 1/2``, Theorem 4). 0 is the background.
    relaxed : numpy.ndarray
        Relaxed memberships ``u`` on the simplex, ``(K, H, W)`` float32.
    denoised : numpy.ndarray
        Composite denoising: at every pixel the output of its class's expert
        (paper §2.4), in the input's intensity scale and layout (channel axis
        where the input had it), float32 (float64 for inputs beyond
        float32's range).
    energies : tuple of float
        Joint energy (eq. 13) after each outer iteration, index 0 after the
        first expert training.
    timings : Timings
        Seconds spent per phase.
    config : Self2SegConfig
        The settings used, with the λ actually used (the automatic one, or
        the last live λ), the last live µ and the expert kind of every class.
    seed : int
        Seed of the run.
    device : str
        Device the run used.
    outer_iterations : int
        Number of segmentation steps done.
    stop_reason : str
        Why the run stopped.
    degenerate : bool
        Whether the last segmentation step collapsed: a class lost all its
        pixels or, with box prompts, more than half of its boxes to other
        classes (a flood that left a few pixels over). A run then ends with
        the segmentation step, among those in which every class had its
        pixels, whose experts separated its classes best
        (:func:`.reliability.class_separation`; usually the last), or the
        initial regions if there was none; :func:`resegment` returns the
        exact minimiser and sets this flag.
    automatic_lam : bool
        Whether ``config.lam`` was chosen from the image (``lam="auto"``)
        rather than given or sent live.
    image_range : tuple of (float, float)
        ``(min, max)`` of each input channel, used for the [0, 1] normalisation.
    channel_axis : int or None
        The input's channel axis (None for a grey image).
    problem : ConvexProblem or None
        The residuals, dual variable and expert images of the last
        segmentation step, when the run was asked to keep them
        (``keep_problem=True``); :func:`resegment` needs them. None keeps the
        result small (batch runs ship results between processes).
    instances : Instances or None
        The objects of every class except the background, when asked for
        (``segment(..., instances=True)``); kept up to date by :func:`resegment`.
    restarted : bool
        Whether a collapse made the run start again from its initial regions
        with ``config.restart_denoiser``'s experts; ``stop_reason`` says what
        collapsed, and the result is the restart's (``config.denoiser`` then
        holds the restart's experts) unless the restart collapsed too and the
        step it kept was separated less by its experts than the first
        attempt's (:func:`.reliability.class_separation`).
    box_separation : float or None
        How well the first experts tell the boxes apart
        (:func:`.reliability.box_separation`: the sensitivity index of their
        locally averaged data term between the boxes); None for a run
        without boxes. Below :data:`.reliability.RELIABLE_SEPARATION` the mask
        is often wrong (:attr:`reliability_warning`).
    """

    labels: np.ndarray
    relaxed: np.ndarray
    denoised: np.ndarray
    energies: tuple[float, ...]
    timings: Timings
    config: Self2SegConfig
    seed: int
    device: str
    outer_iterations: int
    stop_reason: str
    degenerate: bool
    automatic_lam: bool
    image_range: tuple[tuple[float, float], ...]
    channel_axis: int | None = None
    problem: ConvexProblem | None = None
    instances: Instances | None = None
    restarted: bool = False
    box_separation: float | None = None

    @property
    def classes(self) -> int:
        """Number of regions K."""
        return int(self.relaxed.shape[0])

    @property
    def reliability_warning(self) -> str | None:
        """Why the mask may be wrong: a sentence when :attr:`box_separation` is low, else None."""
        return None if self.box_separation is None else separation_warning(self.box_separation)

    @property
    def mask(self) -> np.ndarray:
        """Foreground mask: every pixel not of the background class 0, bool ``(H, W)``."""
        return foreground(self.labels)

    @property
    def lam(self) -> float:
        """The λ ``labels`` was solved with: ``config.lam``, a number also after ``lam="auto"``."""
        lam = self.config.lam
        if isinstance(lam, str):  # pragma: no cover - a run always resolves "auto" before its result
            raise RuntimeError("the result's λ was never chosen")
        return lam


def foreground(labels: np.ndarray) -> np.ndarray:
    """Read-only bool mask of the pixels not in class 0."""
    mask: np.ndarray = labels != 0
    mask.flags.writeable = False
    return mask


@dataclass(frozen=True, kw_only=True)
class SolverState:
    """One snapshot of a running Self2Seg computation.

    Attributes
    ----------
    phase : Phase
        Current phase.
    expert : int or None
        The class whose expert trains (phase ``TRAIN``), else None.
    outer_iteration : int
        0 during initialisation and the first expert training, then the
        index of the current segmentation step.
    step : int
        Gradient step (training phases) or primal–dual iteration (segment).
    labels : numpy.ndarray
        Current class of every pixel, ``(H, W)`` uint8; before the first
        segmentation step, the initial regions (pixels outside every box are 0).
    labels_step : int
        The segmentation step ``labels`` comes from; 0 means it is still the
        initial regions (no complete segmentation yet).
    relaxed : numpy.ndarray
        Current relaxed memberships ``u``, ``(K, H, W)`` float32.
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
    expert: int | None
    outer_iteration: int
    step: int
    labels: np.ndarray
    labels_step: int
    relaxed: np.ndarray
    denoised: np.ndarray | None
    energies: tuple[float, ...]
    lam: float | None
    loss: float | None
    gap: float | None
    elapsed: float
    message: str
    result: SegmentationResult | None = None

    @property
    def mask(self) -> np.ndarray:
        """Current foreground mask (every class but 0), bool ``(H, W)``."""
        return foreground(self.labels)
