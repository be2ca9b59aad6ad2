"""The alternating Self2Seg scheme (paper Algorithms 1 and 3) as a generator, for K regions and C channels.

:func:`iterate` is the primary API: it validates its inputs at once, then
returns a generator of :class:`~.state.SolverState` snapshots. :func:`segment`
runs it to the end; :func:`resegment` re-solves only the convex step for a new
λ on the experts of a finished run.

Inside, one alternation (:class:`_Alternation`) holds the current regions,
memberships and experts; :meth:`Scheme.train_experts` and
:meth:`Scheme.segment_step` each make one half of an outer iteration.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import time
from collections.abc import Generator, Iterable, Mapping, Sequence

import numpy as np
import torch

from ._validation import (
    check_boxes,
    check_class_boxes,
    check_image,
    check_init_labels,
    check_seed,
    class_name,
    normalise,
    resolve_device,
)
from .automatic_lam import automatic_lam, data_term_spread, noise_lam
from .config import AUTO, OTSU, ExpertKind, PrimalDualConfig, Self2SegConfig, expert_kinds, preset
from .denoiser.network import Noise2FastNet
from .denoiser.training import blind_prediction, train_expert
from .energy import joint_energy, local_mean, local_weighted_mean, squared_residual, weighted_mean
from .expert_choice import choose_expert_kinds
from .finite_diff import pointwise_norm
from .initialization import box_regions, label_regions, threshold_regions
from .instances import check_min_size, instances_of
from .primal_dual import PrimalDualState, chambolle_pock, duality_gap
from .region_interior import region_interior
from .reliability import box_separation, class_separation
from .state import ConvexProblem, LiveParameters, Phase, SegmentationResult, SolverState, Timings
from .texture_features import feature_scale, gabor_energies, texture_residuals
from .tv_two_means import noise_level, otsu_bands, tv_denoised

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.25
"""Longest time between two snapshots while an expert trains or the solver runs."""

TWO_MEANS_SETTLED = 0.001
"""The two-means of the TV-denoised image (``config.two_means``) ends once a step changes fewer than this fraction.

Only runs whose constants start at the boxes' means are that two-means (one
started from Otsu's split stops by the energy rule). Its steps train nothing, so a tight rule
costs little (0.1 % of a 256² image is 66 pixels); runs started far from the
fixed point (a box on the brightest nucleus) reach the ``fast`` preset's 6
steps first.
"""

SETTLED_FRACTION = 0.02
"""A warm-started plane of a stack ends once a segmentation step changes fewer than this fraction of its pixels.

Its experts were trained on regions that the step then (almost) kept, so one
more alternation would only train them again on nearly the same regions. At
0.5 % a texture disc drifting 2 px per plane (1.5 % of a 256² plane) took a
second alternation on every plane for no change in Dice (``benchmarks/batch.py``).
"""

Boxes = Iterable[Sequence[float]] | None
ClassBoxes = Mapping[int, Iterable[Sequence[float]]] | None
StateStream = Generator[SolverState, LiveParameters | None, None]


def _frozen(values: torch.Tensor | np.ndarray) -> np.ndarray:
    """Read-only CPU numpy copy of a tensor or array."""
    if isinstance(values, torch.Tensor):
        dtype = values.dtype if values.dtype in (torch.bool, torch.uint8) else torch.float32
        values = values.detach().to("cpu", dtype).numpy()
    array = np.array(values, copy=True)
    array.flags.writeable = False
    return array


def labels_of(u: torch.Tensor) -> torch.Tensor:
    """Class of largest membership per pixel, ``(H, W)`` uint8; ties go to the higher class.

    For two classes this is ``u_1 >= 1/2`` (Theorem 4 thresholds at 1/2).
    """
    return (u.shape[0] - 1 - torch.argmax(torch.flip(u, (0,)), dim=0)).to(torch.uint8)


def to_input_scale(normalised: torch.Tensor, lo: float, hi: float) -> np.ndarray:
    """Map a [0, 1] image back to ``[lo, hi]`` as a read-only array.

    Written as ``(1 - n) lo + n hi`` so that it cannot overflow even when
    ``hi - lo`` exceeds the largest float (inputs near ±1e308). float32,
    unless the input's values lie beyond float32's range: then float64.
    """
    n = normalised.detach().to("cpu", torch.float64)
    scaled = ((1.0 - n) * lo + n * hi).numpy()
    if max(abs(lo), abs(hi)) <= FLOAT32_MAX:
        scaled = scaled.astype(np.float32)
    scaled.flags.writeable = False
    return scaled


FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclasses.dataclass(frozen=True)
class _Inputs:
    """Validated inputs of a run: the normalised image and the initial regions."""

    image: np.ndarray
    """``(C, H, W)`` float32 in [0, 1] per channel."""
    ranges: tuple[tuple[float, float], ...]
    channel_axis: int | None
    regions: np.ndarray | None
    """``(K, H, W)`` bool, or None for ``denoise-threshold`` (made after the whole-image denoiser)."""
    from_boxes: bool

    def to_input_layout(self, normalised: torch.Tensor) -> np.ndarray:
        """Map ``(C, H, W)`` (or ``(N, C, H, W)``) [0, 1] images to the input's scale and axis order."""
        channels = [to_input_scale(normalised[..., c, :, :], lo, hi) for c, (lo, hi) in enumerate(self.ranges)]
        stacked = np.stack(channels, axis=-3)
        if self.channel_axis is None:
            out = stacked[..., 0, :, :]
        else:
            out = np.moveaxis(stacked, -3, stacked.ndim - 3 + self.channel_axis % 3)
        out = np.ascontiguousarray(out)
        out.flags.writeable = False
        return out


class _Run:
    """Mutable bookkeeping of one run: live parameters, timings, the last snapshot."""

    def __init__(self, config: Self2SegConfig, classes: int | None, shape: tuple[int, int]) -> None:
        self.config = config
        self.start = time.perf_counter()
        self.init_time = 0.0
        self.expert_times: list[float] = [0.0] * (classes or 0)
        self.segment_time = 0.0
        self.energies: list[float] = []
        self.last_yield = self.start
        self.labels = _frozen(np.zeros(shape, dtype=np.uint8))
        self.labels_step = 0
        self.relaxed = _frozen(np.zeros((classes or 2, *shape), dtype=np.float32))
        self.denoised: np.ndarray | None = None
        self.automatic_lam = False
        self.lam_sent = False
        self.box_separation: float | None = None

    def continue_from(self, previous: _Run) -> None:
        """Count the time of an earlier attempt of the same run (a restart) as this run's."""
        self.start, self.last_yield = previous.start, previous.last_yield
        self.init_time, self.segment_time = previous.init_time, previous.segment_time
        self.expert_times = list(previous.expert_times)

    @property
    def lam(self) -> float:
        """The λ in use; the automatic λ is chosen after the first training, before anything needs it."""
        if self.config.lam == AUTO:
            raise RuntimeError("the automatic λ is used before it was chosen")
        return self.config.lam

    def lam_or_none(self) -> float | None:
        """Return the λ in use, or None while the automatic λ is not chosen yet."""
        return None if self.config.lam == AUTO else self.config.lam

    def choose_lam(
        self, residuals: torch.Tensor, regions: torch.Tensor, kinds: Sequence[ExpertKind], window: int
    ) -> None:
        """Resolve ``lam="auto"`` from the first residuals (a live λ sent earlier has replaced it already).

        ``window`` is the side the residuals were averaged over (1: per pixel).
        """
        if self.config.lam != AUTO:
            return
        lam = automatic_lam(residuals, regions, robust=only_constants(kinds), window=window)
        self.config = dataclasses.replace(self.config, lam=lam)
        self.automatic_lam = True
        logger.info("automatic λ = %.4g (spread of the residual differences in the initial regions)", lam)
        init = self.config.init
        if init == "mask" or (init != "boxes" and self.config.threshold != OTSU):
            how = init if init == "mask" else f"{init}, threshold {self.config.threshold}"
            # measured in docs/results.md: 3-16x too large on DSB2018 with the paper's 0.5 denoise-threshold init
            logger.warning(
                "λ = %.3g was chosen from the image, a rule validated with box prompts and Otsu thresholds; with "
                "init %s it tends to be too large (the regions hold misclassified pixels). If the mask floods or "
                "loses objects, give λ yourself (0.01-0.02 for nuclei) or draw boxes.",
                lam,
                how,
            )

    def follow_noise_lam(self, constants: torch.Tensor, sigma: torch.Tensor) -> None:
        """Resolve ``lam="auto"`` for the constants of a two-means step, and follow them at later steps.

        λ is the spread that the noise gives ``d`` (:func:`.automatic_lam.noise_lam`),
        so every segmentation step is the level set of the TV denoising at the
        noise level as the constants move (:mod:`.tv_two_means`). A λ given
        by the caller or sent live is kept.
        """
        if self.lam_sent or not (self.automatic_lam or self.config.lam == AUTO):
            return
        self.automatic_lam = True
        lam = noise_lam(constants, sigma)
        if lam != self.config.lam:
            means = " / ".join(f"{c:.3g}" for c in constants.flatten().tolist())
            logger.info("automatic λ = %.4g for the constants %s (their gaps times the noise level)", lam, means)
            self.config = dataclasses.replace(self.config, lam=lam)

    def keep_lam_of(self, lam: float | None) -> None:
        """End with the automatic λ that the kept segmentation was solved with (a λ the caller set is kept).

        λ follows the constants when they are refitted after the last step
        (:meth:`follow_noise_lam`), or the run kept an earlier step; the
        result's λ is the one its labels come from, so that resegment at it
        gives them back.
        """
        if lam is not None and self.automatic_lam and not self.lam_sent and lam != self.config.lam:
            self.config = dataclasses.replace(self.config, lam=lam)

    def receive(self, sent: LiveParameters | None) -> None:
        """Apply parameters sent into the generator (validated by LiveParameters)."""
        if sent is None:
            return
        self.lam_sent = self.lam_sent or sent.lam is not None
        lam = self.config.lam if sent.lam is None else sent.lam
        mu = self.config.mu if sent.mu is None else sent.mu
        self.config = dataclasses.replace(self.config, lam=lam, mu=mu)
        logger.info("live parameters: λ = %s, µ = %g", lam, mu)

    def due(self) -> bool:
        """Whether enough time has passed to send an intermediate snapshot."""
        return time.perf_counter() - self.last_yield >= PROGRESS_INTERVAL_S

    def timings(self) -> Timings:
        """Return the seconds spent so far, per phase."""
        return Timings(init=self.init_time, experts=tuple(self.expert_times), segment=self.segment_time)

    def snapshot(
        self,
        phase: Phase,
        outer: int,
        message: str,
        *,
        expert: int | None = None,
        step: int = 0,
        loss: float | None = None,
        gap: float | None = None,
        result: SegmentationResult | None = None,
    ) -> SolverState:
        """Build a snapshot from the current arrays (shared, read-only)."""
        self.last_yield = time.perf_counter()
        return SolverState(
            phase=phase,
            expert=expert,
            outer_iteration=outer,
            step=step,
            labels=self.labels,
            labels_step=self.labels_step,
            relaxed=self.relaxed,
            denoised=self.denoised,
            energies=tuple(self.energies),
            lam=self.lam_or_none(),
            loss=loss,
            gap=gap,
            elapsed=self.last_yield - self.start,
            message=message,
            result=result,
        )


def only_constants(kinds: Sequence[ExpertKind]) -> bool:
    """Whether every class's expert is a constant (Chan–Vese): no network in the run."""
    return all(kind == "constant" for kind in kinds)


def only_networks(kinds: Sequence[ExpertKind]) -> bool:
    """Whether every class's expert is a network (texture pairs): no constant in the run."""
    return all(kind == "network" for kind in kinds)


def single_class(labels: torch.Tensor | np.ndarray, classes: int) -> str | None:
    """Name the class that covers the whole image, or return None if there are at least two."""
    present = np.unique(labels) if isinstance(labels, np.ndarray) else torch.unique(labels).cpu().numpy()
    return class_name(int(present[0]), classes) if len(present) == 1 else None


def collapsed(labels: torch.Tensor, classes: int, boxes: torch.Tensor | None) -> str | None:
    """Say how a segmentation step collapsed, or return None if it did not.

    A step collapses when a class loses all its pixels (for two classes: the
    image becomes one region), or — with box prompts ``boxes`` ``(K, H, W)``
    — when a class keeps less than half of its own boxes: the user marked
    those pixels, so such a segmentation is a flood by the other classes that
    merely left a few pixels over.
    """
    counts = torch.bincount(labels.flatten().long(), minlength=classes)
    present = torch.nonzero(counts).flatten()
    if len(present) == 1:
        return f"the whole image {class_name(int(present[0]), classes)}"
    empty = [class_name(k, classes) for k in range(classes) if int(counts[k]) == 0]
    if empty:
        return f"{', '.join(empty)} vanish"
    if boxes is not None:
        for k in range(classes):
            if float((labels[boxes[k]] == k).float().mean()) < 0.5:
                if classes == 2:
                    return (
                        "most of the background boxes foreground (the mask flooded)"
                        if k == 0
                        else "most of the foreground boxes background (the mask vanished)"
                    )
                return f"most of the {class_name(k, classes)} boxes other classes (it was flooded)"
    return None


@dataclasses.dataclass
class _KeptSegmentation:
    """A segmentation in which no class collapsed: what a run ends with and resegment starts from."""

    u: torch.Tensor
    p: torch.Tensor
    residuals: torch.Tensor | None
    step: int
    separation: float = -math.inf
    """:func:`.reliability.class_separation` of the step; ``-inf`` for the initial regions (no step yet)."""
    lam: float | None = None
    """The λ the step was solved with; None for the initial regions."""


@dataclasses.dataclass(frozen=True)
class WarmStart:
    """What a finished run hands to the next plane of a stack: its experts and its segmentation.

    The next plane starts from these experts (trained further, so their early
    stopping ends sooner) and from these memberships and dual variable (the
    primal–dual solver starts near its solution) instead of from its
    initialisation.
    """

    kinds: tuple[ExpertKind, ...]
    nets: tuple[Noise2FastNet | None, ...]
    u: torch.Tensor
    """``(K, H, W)`` memberships of the finished run's kept segmentation."""
    p: torch.Tensor
    """Its dual variable."""
    set_aside: dict[int, Noise2FastNet] = dataclasses.field(default_factory=dict)
    """The denoisers of the classes that ``"auto"`` made constants (``denoise_constant_regions``)."""


@dataclasses.dataclass
class _Alternation:
    """State of the alternating scheme between two half-steps (Algorithm 1)."""

    regions: torch.Tensor
    """``(K, H, W)`` bool: where each expert trains (the boxes first, then the current classes)."""
    boxes: torch.Tensor | None
    """The box regions, for the collapse guard (None without box prompts)."""
    kinds: list[ExpertKind]
    nets: list[Noise2FastNet | None]
    solver: PrimalDualState
    kept: _KeptSegmentation
    """The last valid segmentation step (the initial regions before the first)."""
    best: _KeptSegmentation
    """The valid step whose experts separated its classes best: what a collapse keeps."""
    outputs: torch.Tensor | None = None
    """``(K, C, H, W)``: every expert's denoising of the whole image."""
    residuals: torch.Tensor | None = None
    """``(K, H, W)``: the region residuals ``r_k`` of the current experts."""
    outer: int = 0
    degenerate: bool = False
    stop_reason: str = ""
    changed: float = 1.0
    """Fraction of pixels whose class the last segmentation step changed."""
    set_aside: dict[int, Noise2FastNet] = dataclasses.field(default_factory=dict)
    """Networks of ``"auto"`` classes that became constants, kept to denoise those regions at the end."""
    texture: tuple[torch.Tensor, float] | None = None
    """The texture term's feature spreads and weight, set at the first training (None: not used yet)."""

    @property
    def u(self) -> torch.Tensor:
        """Current memberships ``(K, H, W)``."""
        return self.solver.u

    @property
    def classes(self) -> int:
        """Number of regions K."""
        return int(self.regions.shape[0])


def iterate(
    image: np.ndarray,
    config: Self2SegConfig | None = None,
    *,
    boxes: ClassBoxes = None,
    fg_boxes: Boxes = None,
    bg_boxes: Boxes = None,
    init_mask: np.ndarray | None = None,
    channel_axis: int | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    keep_problem: bool = False,
    instances: bool = False,
) -> StateStream:
    """Run Self2Seg step by step, yielding a snapshot after every phase.

    The scheme alternates (paper Algorithm 1): train a Noise2Fast expert on
    each current region (eqs. 11–12), then minimise the convex joint energy
    (eq. 5; eq. 13 for K regions; eq. 10 with µ > 0) over the memberships
    ``u`` by Chambolle–Pock, until the energy decrease falls below
    ``stop_ratio`` times the previous decrease or ``max_outer_iter``
    segmentation steps were made.

    Inputs are checked when this function is called, before any work. The
    returned generator yields after the initialisation, after every training
    and segmentation phase, and at least every 0.25 s inside them, so that a
    consumer can stop it promptly (``close()``). A :class:`LiveParameters`
    sent into it (``gen.send(...)``) changes λ/µ from the next segmentation
    step on. The last snapshot has phase ``DONE`` and carries the
    :class:`SegmentationResult`.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image ``(H, W)`` of any real dtype, or 3-D with channels on
        ``channel_axis``; each channel is min–max normalised internally. The
        array is never modified.
    config : Self2SegConfig or None
        Settings; ``None`` uses the default (``fast``) preset.
    boxes : mapping of class index to boxes, or None
        Box prompts per class, ``{class: [(y0, x0, y1, x1), …]}``, half-open
        pixel coordinates; class 0 is the background, and every class from 0
        to K-1 needs at least one box. Needed for ``init="boxes"``, ignored
        otherwise.
    fg_boxes, bg_boxes : iterable of (y0, x0, y1, x1) or None
        Two-class shorthand: ``boxes={1: fg_boxes, 0: bg_boxes}``. Not
        together with ``boxes``.
    init_mask : numpy.ndarray or None
        Initial segmentation for ``init="mask"``: a bool foreground mask or an
        integer label image (class index per pixel, 0..K-1).
    channel_axis : int or None
        Axis of the channels of a colour / multichannel image (at most 16);
        None for a grey image.
    seed : int
        Seed of the network initialisations and the training-pair draws.
    device : str or torch.device
        ``"auto"`` (CUDA, else MPS, else CPU), ``"cpu"``, ``"cuda[:N]"`` or ``"mps"``.
    keep_problem : bool
        Keep the experts' residuals, the dual variable and each expert's image
        in the result (``result.problem``), as :func:`resegment` needs.
    instances : bool
        Split every class except the background into objects
        (``result.instances``, settings in ``config.instances``).

    Returns
    -------
    Generator of SolverState
        The snapshots; ``send`` accepts :class:`LiveParameters`.

    Raises
    ------
    ValueError
        On invalid images, boxes, masks, devices or settings; the message says
        what to change.

    References
    ----------
    N. Gruber, J. Schwab, N. Debroux, N. Papadakis, M. Haltmeier, "Self2Seg:
    Single-Image Self-Supervised Joint Segmentation and Denoising",
    arXiv:2309.10511v2, 2024.
    """
    return prepare_run(
        image,
        config,
        boxes=boxes,
        fg_boxes=fg_boxes,
        bg_boxes=bg_boxes,
        init_mask=init_mask,
        channel_axis=channel_axis,
        seed=seed,
        device=device,
        instances=instances,
    ).run(keep_problem, instances)


def prepare_run(
    image: np.ndarray,
    config: Self2SegConfig | None = None,
    *,
    boxes: ClassBoxes = None,
    fg_boxes: Boxes = None,
    bg_boxes: Boxes = None,
    init_mask: np.ndarray | None = None,
    channel_axis: int | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    instances: bool = False,
) -> Scheme:
    """Check the inputs of one run (the parameters of :func:`iterate`) and return the scheme that runs it.

    Nothing moves to the device before the scheme runs, so preparing is also a cheap check.

    Raises
    ------
    ValueError
        On invalid images, boxes, masks, devices or settings.
    """
    cfg = _checked_config(config)
    inputs = _checked_inputs(image, cfg, boxes, fg_boxes, bg_boxes, init_mask, channel_axis, instances)
    torch_device = resolve_device(device)
    return Scheme(inputs, cfg, check_seed(seed), torch_device)


def _checked_config(config: Self2SegConfig | None) -> Self2SegConfig:
    """Return ``config``, or the default preset for None; refuse anything else."""
    cfg = config if config is not None else preset()
    if not isinstance(cfg, Self2SegConfig):
        raise ValueError(f"config must be a Self2SegConfig (e.g. preset('fast')), got {type(cfg).__name__}")
    return cfg


def _checked_inputs(
    image: np.ndarray,
    cfg: Self2SegConfig,
    boxes: ClassBoxes,
    fg_boxes: Boxes,
    bg_boxes: Boxes,
    init_mask: np.ndarray | None,
    channel_axis: int | None,
    instances: bool,
) -> _Inputs:
    """Validate and normalise the image, boxes and initial mask of one run."""
    values = check_image(image, channel_axis)
    shape = (int(values.shape[1]), int(values.shape[2]))
    if boxes is not None and (fg_boxes is not None or bg_boxes is not None):
        raise ValueError("give boxes either per class (boxes={0: [...], 1: [...]}) or as fg_boxes/bg_boxes, not both")
    if boxes is None:
        class_boxes = {1: check_boxes(fg_boxes, "foreground", shape), 0: check_boxes(bg_boxes, "background", shape)}
    else:
        class_boxes = check_class_boxes(boxes, shape)
    normalised, ranges = normalise(values)
    grey = normalised.mean(axis=0)  # threshold inits act on the mean of the normalised channels
    regions: np.ndarray | None = None
    if init_mask is not None and cfg.init != "mask":
        raise ValueError(f"init_mask is only used with init='mask', but init is {cfg.init!r}")
    if cfg.init == "boxes":
        regions = box_regions(class_boxes, shape)
    elif cfg.init == "threshold":
        regions = threshold_regions(grey, cfg.classes, cfg.threshold, "normalised image")
    elif cfg.init == "mask":
        if init_mask is None:
            raise ValueError("init='mask' needs an init_mask (a mask or label image) of the image's shape")
        labels = check_init_labels(init_mask, shape)
        regions = label_regions(labels, int(labels.max()) + 1)
    if regions is not None:
        expert_kinds(cfg, regions.shape[0])  # fails now if the experts do not fit the classes
    if instances:
        check_min_size(cfg.instances, shape)
    return _Inputs(normalised, ranges, channel_axis, regions, from_boxes=cfg.init == "boxes")


class Scheme:
    """One run of the alternating scheme on validated inputs: the experts' side and the segmentation side."""

    def __init__(
        self, inputs: _Inputs, config: Self2SegConfig, seed: int, device: torch.device, *, from_otsu: bool = True
    ) -> None:
        self.inputs = inputs
        self.from_otsu = from_otsu
        """Whether a two-means of constants may start from Otsu's split (:attr:`otsu_split`): not after it collapsed.

        The restart then starts from the boxes' means and keeps the paper's update (:meth:`tv_two_means`).
        """
        self.seed = seed
        self.device = device
        self.generator = torch.Generator().manual_seed(seed)
        classes = None if inputs.regions is None else inputs.regions.shape[0]
        self.run_ = _Run(config, classes, (inputs.image.shape[1], inputs.image.shape[2]))
        self.requested = config
        """The configuration as given, before the run resolved ``"auto"`` settings or received live ones."""
        self.handover: WarmStart | None = None
        """Set when the run ends: what warm-starts the next plane of a stack."""
        self.collapse: str | None = None
        """How the segmentation collapsed (``"segmentation step 2 made …"``), or None."""
        self.kept_separation = -math.inf
        """Set when an attempt ends: the class separation of the step it kept (``-inf``: the initial regions)."""

    @functools.cached_property
    def f(self) -> torch.Tensor:
        """The normalised image ``(C, H, W)``, moved to the run's device when the run first needs it."""
        return torch.from_numpy(self.inputs.image).to(self.device)

    @property
    def config(self) -> Self2SegConfig:
        """The run's configuration, live parameters applied."""
        return self.run_.config

    @functools.cached_property
    def f_tv(self) -> torch.Tensor:
        """``ROF(f, σ̂)``, what the constants of the two-means alternation are fitted to (:mod:`.tv_two_means`)."""
        return tv_denoised(self.f, self.noise)

    @functools.cached_property
    def noise(self) -> torch.Tensor:
        """``(C,)``: the noise level σ̂ of each channel of ``f`` (:func:`.tv_two_means.noise_level`)."""
        return noise_level(self.f)

    @functools.cached_property
    def otsu_split(self) -> torch.Tensor | None:
        """``(K, H, W)`` bands the alternation of constants first fits them to, or None to use the boxes.

        The global two-means split of the image ``f`` (Otsu's thresholds) matched to the boxes
        (:func:`.tv_two_means.otsu_bands`).
        """
        if self.inputs.regions is None or not self.from_otsu:
            return None
        return otsu_bands(self.f, torch.from_numpy(self.inputs.regions).to(self.device))

    def two_means(self, kinds: Sequence[ExpertKind]) -> bool:
        """Whether a run with experts of these ``kinds`` is a run of constants from boxes under ``config.two_means``.

        Its λ follows the constants by the noise rule. It starts from Otsu's
        split of the image (:meth:`otsu_start`), or where the image has no
        split for the boxes as the two-means of the TV-denoised image
        (:meth:`tv_two_means`); either makes the mask independent of where
        the boxes are (a threshold start is already the image's own;
        docs/robustness.md). Only its restart after a collapse from the split
        starts from the boxes' means with the paper's update.
        """
        return self.config.two_means and self.inputs.from_boxes and only_constants(kinds)

    def tv_two_means(self, kinds: Sequence[ExpertKind]) -> bool:
        """Whether a two-means of constants fits them to ``ROF(f, σ̂)``: when the image has no split for the boxes.

        Such a run starts from the boxes' means (a warm-started plane from
        the previous plane's mask) and ends once a step changes fewer than :data:`TWO_MEANS_SETTLED` of the
        pixels. A run from Otsu's split is the paper's update of constants of
        ``f`` and ends by the energy rule; so is its restart after a collapse
        (the split dropped a box): from the boxes' means, which that update
        stays near, where the two-means would drift back to the split.
        """
        return self.two_means(kinds) and self.from_otsu and self.otsu_start(kinds) is None

    def local_constants(self, kinds: Sequence[ExpertKind]) -> bool:
        """Whether a run with experts of these ``kinds`` fits its constants locally (``config.local_means``).

        Runs whose every class is a constant, from boxes (the two-means) or
        from a threshold; a constant beside a network keeps its one mean.
        """
        return self.config.local_means > 0 and only_constants(kinds)

    def refits_chosen_constants(self, kinds: Sequence[ExpertKind]) -> bool:
        """Whether a run whose every class chose a constant replaces the global means the choice compared.

        The two-means starts from Otsu's split; local constants are fitted
        in windows (:meth:`local_constants`).
        """
        return self.two_means(kinds) or self.local_constants(kinds)

    def otsu_start(self, kinds: Sequence[ExpertKind]) -> torch.Tensor | None:
        """Otsu's split (:attr:`otsu_split`) when a run with these expert ``kinds`` starts its two-means from it.

        Such a run fits its first constants to these bands of ``f`` and then
        refits them to ``u`` (the paper's update). A warm-started plane of a
        stack does too: its constants owe nothing to the plane before, and
        started from that plane's mask they drifted plane after plane
        (docs/robustness.md, eighteenth session).
        """
        return self.otsu_split if self.two_means(kinds) else None

    def new_net(self) -> Noise2FastNet:
        """Return a freshly initialised expert network on the run's device (seeded by the run's generator)."""
        den = self.config.denoiser
        net = Noise2FastNet(den.width, den.n_blocks, channels=self.f.shape[0], generator=self.generator)
        return net.to(self.device)

    def train(
        self,
        net: Noise2FastNet,
        region: torch.Tensor,
        outer: int,
        expert: int | None,
        timing: list[float],
        slot: int,
        what: str | None = None,
    ) -> Generator[SolverState, LiveParameters | None, torch.Tensor]:
        """Train one expert on ``region`` (eqs. 11–12); returns its denoising of the whole image."""
        run = self.run_
        phase = Phase.INIT if expert is None else Phase.TRAIN
        if what is None and expert is not None:
            what = f"expert of {class_name(expert, len(run.expert_times))}"
        what = what or "whole-image denoiser"
        t0 = time.perf_counter()
        training = train_expert(net, self.f, region, self.config.denoiser, self.generator)
        try:
            while True:
                progress = next(training)
                if run.due():
                    message = f"train {what}: step {progress.step}, loss {progress.loss:.3g}"
                    snapshot = run.snapshot(
                        phase, outer, message, expert=expert, step=progress.step, loss=progress.loss
                    )
                    run.receive((yield snapshot))
        except StopIteration as stop:
            trained = stop.value
        timing[slot] += time.perf_counter() - t0
        logger.info("%s: %d steps, best validation error %.3g", what, trained.steps, trained.best_score)
        output: torch.Tensor = trained.output
        return output

    def prediction(self, net: Noise2FastNet, output: torch.Tensor) -> torch.Tensor:
        """Return what an expert's region residual compares with ``f``: its output or its blind prediction."""
        return blind_prediction(net, self.f, output) if self.config.residual == "blind" else output

    def residual(self, prediction: torch.Tensor) -> torch.Tensor:
        """Return the region residual ``(f - prediction)²`` summed over channels (eq. 5), filtered if asked."""
        return squared_residual(self.f, prediction, self.config.residual_filter)

    def constant_fit(self, alt: _Alternation, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the image and the weights that the constant expert of class k is the mean of.

        The image ``f`` weighted by the boxes first, then by ``u_k``. In the
        two-means alternation (``config.two_means``) the first weights are
        the class's band of Otsu's split of ``f`` when it separates the boxes
        (:attr:`otsu_split`); without that start the later means are those of
        the TV-denoised image (:meth:`tv_two_means`).
        """
        if alt.outer == 0:
            start = self.otsu_start(alt.kinds)
            if start is not None:
                return self.f, start[k].to(self.f.dtype)
            return self.f, alt.regions[k].to(self.f.dtype)
        return (self.f_tv if self.tv_two_means(alt.kinds) else self.f), alt.u[k]

    def constant(self, alt: _Alternation, k: int) -> torch.Tensor:
        """Return the constant expert of class k (eq. 5, ``D_k = c_k``), ``(C, H, W)``.

        Its mean (:meth:`constant_fit`), or when every class is a constant
        and ``config.local_means > 0`` its mean in a Gaussian window around
        each pixel (:func:`.energy.local_weighted_mean`).
        """
        image, weight = self.constant_fit(alt, k)
        if self.local_constants(alt.kinds):
            return local_weighted_mean(image, weight, self.config.local_means)
        return weighted_mean(image, weight).expand_as(self.f)

    def run(self, keep_problem: bool, instances: bool, warm: WarmStart | None = None) -> StateStream:
        """Run the alternation: the generator behind :func:`iterate`; ``warm`` replaces the initialisation."""
        result = yield from self.attempt(keep_problem, instances, warm)
        # only runs from boxes restart: without them no guard checks the restart's mask, and a near-flood
        # (99.5 % of a DSB2018 crop) replaced a valid earlier mask
        if result.degenerate and warm is None and self.inputs.from_boxes:
            restart_denoiser = self.config.restart_denoiser
            if self.otsu_start(result.config.experts) is not None:
                # Otsu's split dropped a boxed object: start from the boxes' means instead (the paper's update)
                means = "the boxes' means"
                retry = self.restart(result, self.requested, means, keep_problem, instances, from_otsu=False)
                result = yield from retry
            elif restart_denoiser is not None and self.networks_asked(result):
                wider = f"{restart_denoiser.width}-channel, {restart_denoiser.n_blocks}-block experts"
                config = dataclasses.replace(self.requested, denoiser=restart_denoiser)
                result = yield from self.restart(result, config, wider, keep_problem, instances)
        yield self.run_.snapshot(Phase.DONE, result.outer_iterations, f"done: {result.stop_reason}", result=result)

    def attempt(
        self, keep_problem: bool, instances: bool, warm: WarmStart | None
    ) -> Generator[SolverState, LiveParameters | None, SegmentationResult]:
        """Alternate expert and segmentation steps until a stopping rule or a collapse; return the result."""
        alt = yield from (self.initialise() if warm is None else self.warm_initialise(warm))
        while True:
            yield from self.train_experts(alt)
            # the two-means of ROF(f, σ̂) runs until it settles; every other run stops by the paper's energy rule
            settles = self.tv_two_means(alt.kinds)
            if not settles and _decrease_stalled(self.run_.energies, self.config.stop_ratio):
                alt.stop_reason = f"energy decrease fell below {self.config.stop_ratio:g} × the previous decrease"
                break
            if alt.outer >= self.config.max_outer_iter:
                alt.stop_reason = f"reached max_outer_iter = {self.config.max_outer_iter}"
                break
            yield from self.segment_step(alt)
            if alt.degenerate:
                break
            if settles and alt.changed < TWO_MEANS_SETTLED:
                alt.stop_reason = (
                    f"the two-means of constants settled: the segmentation changed {alt.changed:.2%} of the pixels "
                    f"(< {TWO_MEANS_SETTLED:.1%})"
                )
                break
            if warm is not None and alt.changed < SETTLED_FRACTION:
                alt.stop_reason = (
                    f"started from the previous plane and settled: the segmentation changed {alt.changed:.2%} "
                    f"of the pixels (< {SETTLED_FRACTION:.1%})"
                )
                break
        if self.config.denoise_constant_regions and alt.set_aside:
            yield from self.denoise_constant_regions(alt)
        self.kept_separation = alt.kept.separation
        self.run_.keep_lam_of(alt.kept.lam)
        result = self.result(alt, keep_problem)
        if instances:
            result = with_instances(result)
        logger.info("done after %d segmentation steps: %s", alt.outer, alt.stop_reason)
        self.handover = WarmStart(
            kinds=tuple(alt.kinds), nets=tuple(alt.nets), u=alt.u, p=alt.solver.p, set_aside=dict(alt.set_aside)
        )
        return result

    def networks_asked(self, result: SegmentationResult) -> bool:
        """Whether some class may use a network: other experts cannot change a run of constants asked for."""
        return any(kind != "constant" for kind in expert_kinds(self.requested, result.classes))

    def restart(
        self,
        first: SegmentationResult,
        config: Self2SegConfig,
        how: str,
        keep_problem: bool,
        instances: bool,
        *,
        from_otsu: bool = True,
    ) -> Generator[SolverState, LiveParameters | None, SegmentationResult]:
        """After a collapse, start once more from the initial regions with ``config`` (``how`` says what changed).

        Narrow experts trained briefly on small boxes can each explain the
        other region's texture about as well as their own, and a segmentation
        step then floods; experts of the paper's size (``restart_denoiser``)
        separate such pairs (docs/robustness.md). A two-means of constants
        that started from Otsu's split (:attr:`otsu_split`) starts again from
        the boxes' means. The restart keeps live λ/µ values (an automatic
        λ is chosen again for the new experts), never restarts itself, and its
        time counts towards the run's. Its result replaces the first one
        unless it collapsed too and its experts separated the classes of its
        kept step less than the first attempt's did
        (:func:`.reliability.class_separation`). Only
        runs from boxes restart (:meth:`run`): the box guard checks the
        restart's mask.
        """
        run = self.run_
        logger.warning("%s; restarting from the initial regions with %s", self.collapse, how)
        run.receive((yield run.snapshot(Phase.INIT, 0, f"{self.collapse}: restarting with {how}")))
        config = dataclasses.replace(  # after the snapshot, so that a λ/µ sent in reply to it is kept
            config,
            restart_denoiser=None,
            lam=run.config.lam if run.lam_sent else self.requested.lam,
            mu=run.config.mu,
        )
        retry = Scheme(self.inputs, config, self.seed, self.device, from_otsu=from_otsu)
        retry.run_.continue_from(run)
        second = yield from retry.attempt(keep_problem, instances, None)
        if second.degenerate and retry.kept_separation < self.kept_separation:
            why = (
                "kept no segmentation step"
                if retry.kept_separation == -math.inf
                else f"separated the classes of the step it kept less (class separation {retry.kept_separation:.3g} "
                f"against {self.kept_separation:.3g})"
            )
            note = f"; a restart with {how} collapsed too ({retry.collapse}) and {why}"
            return dataclasses.replace(
                first, stop_reason=first.stop_reason + note, timings=retry.run_.timings(), restarted=True
            )
        self.run_, self.handover = retry.run_, retry.handover
        reason = f"restarted with {how} because {self.collapse} in the first attempt; then: {second.stop_reason}"
        return dataclasses.replace(second, stop_reason=reason, restarted=True)

    def initialise(self) -> Generator[SolverState, LiveParameters | None, _Alternation]:
        """Algorithm 1, step 1: the initial regions, memberships and untrained experts."""
        run, inputs = self.run_, self.inputs
        regions_np = inputs.regions
        if regions_np is None:  # denoise-threshold: Noise2Fast on the whole image, then threshold
            init_time = [0.0]
            whole = torch.ones(self.f.shape[1:], dtype=torch.bool, device=self.device)
            output = yield from self.train(self.new_net(), whole, 0, None, init_time, 0)
            run.init_time += init_time[0]
            grey = output.mean(dim=0).cpu().numpy()
            grey = (grey - grey.min()) / max(float(grey.max() - grey.min()), 1e-12)
            regions_np = threshold_regions(grey, self.config.classes, self.config.threshold, "denoised image")
            expert_kinds(self.config, regions_np.shape[0])
        classes = regions_np.shape[0]
        if len(run.expert_times) != classes:  # known only now after a denoise-threshold init
            run.expert_times = [0.0] * classes
        regions = torch.from_numpy(regions_np).to(self.device)
        # memberships: each region's pixels in its class, pixels outside every region in the background
        u = regions.to(self.f.dtype)
        u[0] = 1.0 - u[1:].sum(dim=0)
        run.labels, run.relaxed = _frozen(labels_of(u)), _frozen(u)
        run.receive((yield run.snapshot(Phase.INIT, 0, f"initial regions from {self.config.init}")))
        kinds = list(expert_kinds(self.config, classes))
        nets: list[Noise2FastNet | None] = [None if kind == "constant" else self.new_net() for kind in kinds]
        solver = PrimalDualState.from_memberships(u)
        kept = _KeptSegmentation(u=u.clone(), p=solver.p.clone(), residuals=None, step=0)
        boxes = regions if inputs.from_boxes else None  # never written: the regions are rebound, not changed
        return _Alternation(regions=regions, boxes=boxes, kinds=kinds, nets=nets, solver=solver, kept=kept, best=kept)

    def warm_initialise(self, warm: WarmStart) -> Generator[SolverState, LiveParameters | None, _Alternation]:
        """Start from the previous plane: its experts, memberships and dual variable (no initialisation step).

        The experts first train on the previous plane's classes, with this
        plane's boxes painted over them; the boxes also guard against a
        collapse as in a cold start.
        """
        run, inputs = self.run_, self.inputs
        classes = int(warm.u.shape[0])
        if inputs.regions is not None and inputs.regions.shape[0] != classes:
            raise ValueError(
                f"this plane's prompts give {inputs.regions.shape[0]} classes but the plane before had {classes}; "
                "give every plane boxes for the same classes"
            )
        run.expert_times = [0.0] * classes
        u = warm.u.to(self.device).clone()
        labels = labels_of(u)
        boxes = (
            torch.from_numpy(inputs.regions).to(self.device)
            if inputs.from_boxes and inputs.regions is not None
            else None
        )
        if boxes is not None:
            for k in range(classes):
                labels[boxes[k]] = k
        regions = torch.from_numpy(label_regions(labels.cpu().numpy(), classes)).to(self.device)
        run.labels, run.relaxed = _frozen(labels_of(u)), _frozen(u)
        run.receive((yield run.snapshot(Phase.INIT, 0, "started from the previous plane")))
        solver = PrimalDualState(u=u, p=warm.p.to(self.device).clone())
        kept = _KeptSegmentation(u=u.clone(), p=solver.p.clone(), residuals=None, step=0)
        return _Alternation(
            regions=regions,
            boxes=boxes,
            kinds=list(warm.kinds),
            nets=list(warm.nets),
            solver=solver,
            kept=kept,
            best=kept,
            set_aside=dict(warm.set_aside),
        )

    def train_experts(self, alt: _Alternation) -> Generator[SolverState, LiveParameters | None, None]:
        """Expert step: ``W^{k+1} = argmin_W E(u^k, W)``, one Noise2Fast or constant per class (eqs. 11–12)."""
        run = self.run_
        outputs, residuals = [], []
        # the first training uses the user's regions as given; later ones leave out the last mask's rims
        regions = alt.regions if alt.outer == 0 else region_interior(alt.regions, self.config.training_margin)
        for k in range(alt.classes):
            if alt.outer > 0 and not self.config.denoiser.warm_start and alt.kinds[k] != "constant":
                alt.nets[k] = self.new_net()
            net = alt.nets[k]
            if net is None:
                t0 = time.perf_counter()
                output = self.constant(alt, k)
                outputs.append(output)
                residuals.append(self.residual(output))
                run.expert_times[k] += time.perf_counter() - t0
                continue
            output = yield from self.train(net, regions[k], alt.outer, k, run.expert_times, k)
            outputs.append(output)
            residuals.append(self.residual(self.prediction(net, output)))
        if AUTO in alt.kinds:
            self.choose_kinds(alt, outputs, residuals)
            if alt.outer == 0 and self.refits_chosen_constants(alt.kinds):  # every class chose its constant: refit them
                outputs = [self.constant(alt, k) for k in range(alt.classes)]
                residuals = [self.residual(output) for output in outputs]
        per_pixel = torch.stack(residuals)
        window = self.texture_window(alt.kinds)
        alt.outputs, alt.residuals = torch.stack(outputs), local_mean(per_pixel, window)
        if self.uses_texture_features(alt.kinds):
            alt.residuals = self.with_texture_term(alt, alt.residuals, regions)
            window = 1  # λ is the plain spread of the combined data term
        if alt.outer == 0:
            run.config = dataclasses.replace(run.config, experts=tuple(alt.kinds))
            if alt.boxes is not None:  # on the per-pixel residuals, as the warning's threshold was set
                run.box_separation = box_separation(per_pixel, alt.boxes)
                logger.info("box separation of the first experts: %.3g", run.box_separation)
        if self.two_means(alt.kinds):  # from the first step on: λ follows the (global) constants
            means = [weighted_mean(*self.constant_fit(alt, k))[:, 0, 0] for k in range(alt.classes)]
            run.follow_noise_lam(torch.stack(means), self.noise)
        elif alt.outer == 0:
            run.choose_lam(alt.residuals, alt.regions, alt.kinds, window)
        run.energies.append(float(joint_energy(alt.u, alt.residuals, run.lam)))
        run.denoised = self.composite(alt.outputs, labels_of(alt.u))
        message = f"experts trained, energy {run.energies[-1]:.4g}"
        run.receive((yield run.snapshot(Phase.TRAIN, alt.outer, message)))

    def texture_window(self, kinds: Sequence[ExpertKind]) -> int:
        """Side of the window the residuals are averaged over: ``config.texture_window`` between networks only.

        Measured on texture pairs, where every class has a network; a run
        with a constant keeps per-pixel residuals (a constant's data term is
        the image itself, whose λ and two-means rest on per-pixel noise).
        """
        return self.config.texture_window if only_networks(kinds) else 1

    def uses_texture_features(self, kinds: Sequence[ExpertKind]) -> bool:
        """Whether the data term adds the Gabor-energy texture term (``config.texture_features``): networks only."""
        return self.config.texture_features > 0 and only_networks(kinds)

    @functools.cached_property
    def gabor_features(self) -> torch.Tensor:
        """``(J, H, W)`` log Gabor energies of ``f`` (:func:`.texture_features.gabor_energies`), made on first use."""
        return gabor_energies(self.f)

    def with_texture_term(self, alt: _Alternation, residuals: torch.Tensor, fit: torch.Tensor) -> torch.Tensor:
        """Return ``r_k + w · r_k^T``: the experts' residuals plus each class's texture term fitted to ``fit``.

        At the first training the features' spreads and the weight ``w`` are
        set on the initial regions, ``w = texture_features · spread(d) /
        spread(d^T)`` with ``d``, ``d^T`` the two terms' data terms
        (:func:`.automatic_lam.data_term_spread`), and kept for the run, so
        the energy stays one function of ``u`` and the models. A texture
        term without spread in the initial regions has no scale and gets
        ``w = 0``.
        """
        if alt.texture is None:
            scale = feature_scale(self.gabor_features, alt.regions)
            texture = texture_residuals(self.gabor_features, scale, fit)
            spread = data_term_spread(texture, alt.regions)
            weight = self.config.texture_features * data_term_spread(residuals, alt.regions) / spread if spread else 0.0
            alt.texture = (scale, weight)
            logger.info("texture term weighed %.3g against the experts' residuals", weight)
        else:
            scale, weight = alt.texture
            texture = texture_residuals(self.gabor_features, scale, fit)
        return residuals + weight * texture

    def choose_kinds(self, alt: _Alternation, outputs: list[torch.Tensor], residuals: list[torch.Tensor]) -> None:
        """Settle every ``"auto"`` expert on its trained network or its constant (:mod:`.expert_choice`)."""
        constants = [self.constant(alt, k) for k in range(alt.classes)]
        flat = torch.stack([self.residual(c) for c in constants])
        chosen = choose_expert_kinds(alt.kinds, torch.stack(residuals), flat, alt.regions)
        for k, kind in enumerate(chosen):
            if alt.kinds[k] == AUTO:
                what = "a network expert" if kind == "network" else "a constant"
                logger.info("%s: %s", class_name(k, alt.classes), what)
            if kind == "constant" and alt.kinds[k] != "constant":
                net = alt.nets[k]
                if net is not None:
                    alt.set_aside[k] = net
                alt.nets[k], outputs[k], residuals[k] = None, constants[k], flat[k]
        alt.kinds = list(chosen)

    def denoise_constant_regions(self, alt: _Alternation) -> Generator[SolverState, LiveParameters | None, None]:
        """Replace the output of each class that ``"auto"`` made a constant by a Noise2Fast denoising (display only).

        The network trained for the choice goes on training on the class's
        final region (so it stops early). The energy, the residuals and the
        segmentation are those of the constant; only the denoised image (and
        the expert images) change. A class given as ``"constant"`` keeps its
        mean: that is what was asked for.
        """
        run = self.run_
        if alt.outputs is None:  # pragma: no cover - train_experts always runs first
            raise RuntimeError("denoising before the experts were trained")
        labels = labels_of(alt.u)
        outputs = alt.outputs.clone()
        for k, net in sorted(alt.set_aside.items()):
            region = labels == k
            if int(region.sum()) < 2:
                continue
            what = f"denoiser of {class_name(k, alt.classes)}"
            outputs[k] = yield from self.train(net, region, alt.outer, k, run.expert_times, k, what)
        alt.outputs = outputs
        run.denoised = self.composite(outputs, labels)

    def segment_step(self, alt: _Alternation) -> Generator[SolverState, LiveParameters | None, None]:
        """Segmentation step: ``u^{k+1} = argmin_u E(u, W^{k+1})`` on the simplex (Algorithm 2 or 4)."""
        run = self.run_
        if alt.residuals is None or alt.outputs is None:  # pragma: no cover - train_experts always runs first
            raise RuntimeError("segmentation step before the experts were trained")
        alt.outer += 1
        previous_labels = labels_of(alt.u)
        t0 = time.perf_counter()
        lam, mu = run.lam, run.config.mu
        reference = alt.u.clone() if mu > 0 else None
        progress = None
        for progress in chambolle_pock(alt.solver, alt.residuals, lam, self.config.solver, mu=mu, reference=reference):
            if run.due():
                run.relaxed = _frozen(alt.u)
                message = f"segment: iteration {progress.iteration}, gap {progress.gap:.2e}"
                snapshot = run.snapshot(Phase.SEGMENT, alt.outer, message, step=progress.iteration, gap=progress.gap)
                run.receive((yield snapshot))
        run.segment_time += time.perf_counter() - t0
        steps = progress.iteration if progress else 0
        gap = progress.gap if progress else None
        logger.info("segmentation %d: %d primal-dual iterations, gap %.2e", alt.outer, steps, gap or 0.0)
        labels = labels_of(alt.u)
        collapse = collapsed(labels, alt.classes, alt.boxes)
        if collapse is not None:
            # A class that vanished (or lost its boxes) is no segmentation. The experts drift before they
            # collapse, so end with the valid step whose experts told its classes apart best.
            alt.degenerate = True
            kept = alt.kept = alt.best
            if kept.step == 0:
                before = "the initial regions are"
            elif kept.step == alt.outer - 1:
                before = f"the segmentation of step {kept.step} is"
            else:
                before = f"the segmentation of step {kept.step} (the one its experts separated best) is"
            fix = "lower λ, draw larger boxes, or try a constant background expert"
            self.collapse = f"segmentation step {alt.outer} made {collapse}"
            alt.stop_reason = f"{self.collapse} with λ = {lam:g}, so {before} kept; {fix}"
            logger.warning(alt.stop_reason)
            alt.solver.u.copy_(kept.u)
            alt.solver.p.copy_(kept.p)
            labels = labels_of(alt.u)
        else:
            alt.kept = _KeptSegmentation(
                u=alt.u.clone(),
                p=alt.solver.p.clone(),
                residuals=alt.residuals,
                step=alt.outer,
                separation=class_separation(alt.residuals, labels),
                lam=lam,
            )
            if alt.kept.separation >= alt.best.separation:
                alt.best = alt.kept
        alt.changed = float((labels != previous_labels).float().mean())
        run.labels, run.relaxed, run.labels_step = _frozen(labels), _frozen(alt.u), alt.kept.step
        run.denoised = self.composite(alt.outputs, labels)
        message = f"segmentation {alt.outer} done" if not alt.degenerate else f"segmentation {alt.outer} collapsed"
        run.receive((yield run.snapshot(Phase.SEGMENT, alt.outer, message, step=steps, gap=gap)))
        alt.regions = torch.from_numpy(label_regions(labels.cpu().numpy(), alt.classes)).to(self.device)

    def composite(self, outputs: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
        """Each pixel's class expert output (paper §2.4), in the input's scale and layout (as :func:`compose`)."""
        return compose(self.inputs.to_input_layout(outputs), labels.cpu().numpy(), self.inputs.channel_axis)

    def result(self, alt: _Alternation, keep_problem: bool) -> SegmentationResult:
        """Build the final result: the kept segmentation, the last experts."""
        run = self.run_
        if alt.outputs is None or alt.residuals is None:  # pragma: no cover - at least one training always runs
            raise RuntimeError("the run ended before its experts were trained")
        problem = None
        if keep_problem:
            # the residuals the kept segmentation was solved with, so that resegment at the run's λ gives it back
            residuals = alt.kept.residuals if alt.kept.residuals is not None else alt.residuals
            problem = ConvexProblem(
                residuals=_frozen(residuals),
                dual=_frozen(alt.kept.p),
                expert_images=self.inputs.to_input_layout(alt.outputs),
            )
        return SegmentationResult(
            labels=run.labels,
            relaxed=run.relaxed,
            denoised=run.denoised if run.denoised is not None else self.composite(alt.outputs, labels_of(alt.u)),
            energies=tuple(run.energies),
            timings=run.timings(),
            config=run.config,
            seed=self.seed,
            device=str(self.device),
            outer_iterations=alt.outer,
            stop_reason=alt.stop_reason,
            degenerate=alt.degenerate,
            automatic_lam=run.automatic_lam,
            image_range=self.inputs.ranges,
            channel_axis=self.inputs.channel_axis,
            problem=problem,
            box_separation=run.box_separation,
        )


def _certified(state: PrimalDualState, residuals: torch.Tensor, lam: float, gap_tol: float) -> bool:
    """Whether ``state`` already meets the gap tolerance for ``lam`` (then no iteration is needed).

    The gap certifies only a dual-feasible ``p`` (``|p_k,i| <= lam/2``); a
    ``p`` stored for a larger λ is not, and the state is then solved again.
    """
    if float(pointwise_norm(state.p).max()) > 0.5 * lam * (1.0 + 1e-6):
        return False
    return float(duality_gap(state, residuals, lam)) / residuals[0].numel() <= gap_tol


def _decrease_stalled(energies: Sequence[float], ratio: float) -> bool:
    """Paper stopping rule: ``E_{k-1} - E_k < ratio (E_{k-2} - E_{k-1})`` (§3.2, §5)."""
    if len(energies) < 3:
        return False
    previous = energies[-3] - energies[-2]
    current = energies[-2] - energies[-1]
    return current < ratio * previous


def segment(
    image: np.ndarray,
    config: Self2SegConfig | None = None,
    *,
    boxes: ClassBoxes = None,
    fg_boxes: Boxes = None,
    bg_boxes: Boxes = None,
    init_mask: np.ndarray | None = None,
    channel_axis: int | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    keep_problem: bool = False,
    instances: bool = False,
) -> SegmentationResult:
    """Run Self2Seg to the end and return its result.

    Same parameters as :func:`iterate`.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image of any real dtype, or 3-D with channels on ``channel_axis``.
    config : Self2SegConfig or None
        Settings; ``None`` uses the default (``fast``) preset.
    boxes : mapping of class index to boxes, or None
        Box prompts per class (class 0 is the background).
    fg_boxes, bg_boxes : iterable of (y0, x0, y1, x1) or None
        Two-class shorthand for ``boxes={1: fg_boxes, 0: bg_boxes}``.
    init_mask : numpy.ndarray or None
        Initial mask or label image for ``init="mask"``.
    channel_axis : int or None
        Axis of the channels; None for a grey image.
    seed : int
        Random seed.
    device : str or torch.device
        Device name or ``"auto"``.
    keep_problem : bool
        Keep what :func:`resegment` needs in ``result.problem``.
    instances : bool
        Split every class except the background into objects (``result.instances``).

    Returns
    -------
    SegmentationResult
        Labels, relaxed memberships, denoised image, energies and timings.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_self2seg.core import Self2SegConfig, DenoiserConfig, PrimalDualConfig, segment
    >>> rng = np.random.default_rng(0)
    >>> img = rng.normal(0.2, 0.1, (32, 32)); img[8:24, 8:24] += 0.6
    >>> cfg = Self2SegConfig(lam=0.02, experts=("constant", "network"), max_outer_iter=2,
    ...                      denoiser=DenoiserConfig(width=4, n_blocks=1, patience=5, average_last=5, max_steps=60),
    ...                      solver=PrimalDualConfig(max_iter=500))
    >>> result = segment(img, cfg, boxes={1: [(10, 10, 20, 20)], 0: [(0, 0, 6, 32)]}, device="cpu")
    >>> result.labels[16, 16], result.labels[2, 2]
    (np.uint8(1), np.uint8(0))
    """
    final: SegmentationResult | None = None
    for state in iterate(
        image,
        config,
        boxes=boxes,
        fg_boxes=fg_boxes,
        bg_boxes=bg_boxes,
        init_mask=init_mask,
        channel_axis=channel_axis,
        seed=seed,
        device=device,
        keep_problem=keep_problem,
        instances=instances,
    ):
        final = state.result
    if final is None:  # pragma: no cover - iterate always ends with a result
        raise RuntimeError("Self2Seg ended without a result")
    return final


def with_instances(result: SegmentationResult) -> SegmentationResult:
    """Return ``result`` with its labels split into objects (``config.instances``) and the time it took.

    A result without foreground gets zero objects (``result.instances.count == 0``).
    """
    t0 = time.perf_counter()
    objects = instances_of(result.labels, result.config.instances)
    timings = dataclasses.replace(result.timings, instances=time.perf_counter() - t0)
    return dataclasses.replace(result, instances=objects, timings=timings)


def resegment(
    result: SegmentationResult,
    *,
    lam: float,
    device: str | torch.device = "cpu",
    solver: PrimalDualConfig | None = None,
) -> SegmentationResult:
    """Re-solve only the convex segmentation step for a new λ, keeping the experts.

    The experts' residuals stored in ``result.problem`` are fixed, so eq. (13)
    is convex in ``u`` and one Chambolle–Pock solve (warm-started from the
    previous ``u`` and dual variable) gives the new global minimiser; no
    network is trained. The µ term is not used here.

    Parameters
    ----------
    result : SegmentationResult
        A finished run made with ``keep_problem=True``.
    lam : float
        New TV weight λ (> 0).
    device : str or torch.device
        Where to solve; the CPU is usually fastest for a single solve.
    solver : PrimalDualConfig or None
        Primal–dual settings. ``None``: the run's settings with step sizes
        scaled to the new λ (``scale_steps_to_lam``), which reach the gap
        tolerance 2–20× sooner than the ``fast`` preset's fixed steps on the
        DSB crop (``benchmarks/resegment.py``).

    Returns
    -------
    SegmentationResult
        A new result with the new labels, relaxed memberships, composite
        denoised image, objects (if ``result`` has them) and a one-entry
        energy history; experts are unchanged.
        It is the exact minimiser for ``lam``, even when a class vanishes
        (``degenerate`` is then True and ``stop_reason`` says so).

    Raises
    ------
    ValueError
        If ``result`` was made without ``keep_problem=True``.

    Notes
    -----
    Every call starts from the state stored in ``result``, so re-segmenting a
    run's result for several λ in any order gives for each λ the same labels
    (pass the run's own result each time, not a re-segmented one).
    """
    problem = result.problem
    if problem is None:
        raise ValueError(
            "this result does not hold its experts' residuals; run segment(..., keep_problem=True) to re-segment it"
        )
    if solver is None:
        solver = dataclasses.replace(result.config.solver, scale_steps_to_lam=True)
    config = dataclasses.replace(result.config, lam=lam, solver=solver)
    torch_device = resolve_device(device)
    t0 = time.perf_counter()
    residuals = torch.from_numpy(np.array(problem.residuals)).to(torch_device)
    state = PrimalDualState(
        u=torch.from_numpy(np.array(result.relaxed)).to(torch_device),
        p=torch.from_numpy(np.array(problem.dual)).to(torch_device),
    )
    if not _certified(state, residuals, lam, config.solver.gap_tol):
        for _ in chambolle_pock(state, residuals, lam, config.solver):
            pass
    energy = float(joint_energy(state.u, residuals, lam))
    labels = labels_of(state.u)
    classes = result.classes
    collapse = collapsed(labels, classes, None)
    stop_reason = f"re-segmented with λ = {lam:g}"
    if collapse is not None:
        stop_reason += f": {collapse}; a smaller λ keeps every class"
    resegmented = dataclasses.replace(
        result,
        labels=_frozen(labels),
        relaxed=_frozen(state.u),
        denoised=compose(problem.expert_images, _frozen(labels), result.channel_axis),
        energies=(energy,),
        timings=Timings(segment=time.perf_counter() - t0),
        config=config,
        problem=dataclasses.replace(problem, dual=_frozen(state.p)),
        stop_reason=stop_reason,
        degenerate=collapse is not None,
        automatic_lam=result.automatic_lam and lam == result.config.lam,
    )
    return with_instances(resegmented) if result.instances is not None else resegmented


def compose(expert_images: np.ndarray, labels: np.ndarray, channel_axis: int | None) -> np.ndarray:
    """Pick at every pixel the image of its class's expert, ``expert_images`` ``(K, *input layout)``."""
    stacked = (
        expert_images[:, None] if channel_axis is None else np.moveaxis(expert_images, _stacked_axis(channel_axis), 1)
    )
    picked = np.take_along_axis(stacked, labels[None, None].astype(np.intp), axis=0)[0]
    out = picked[0] if channel_axis is None else np.moveaxis(picked, 0, channel_axis)
    out = np.ascontiguousarray(out)
    out.flags.writeable = False
    return out


def _stacked_axis(channel_axis: int) -> int:
    """Position of a 3-D image's channel axis once images are stacked on a new first axis."""
    return 1 + channel_axis % 3
