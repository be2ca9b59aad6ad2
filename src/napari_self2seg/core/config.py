"""Typed, validated configuration of a Self2Seg run.

Every setting lives in a frozen, keyword-only dataclass and is checked when the
object is built, so an invalid value fails at once with a message naming the fix.
Variants are made with :func:`dataclasses.replace`, which re-runs the checks.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

InitMode = Literal["boxes", "threshold", "denoise-threshold", "mask"]
ResidualMode = Literal["full", "blind"]
ExpertKind = Literal["network", "constant", "auto"]
AUTO: Literal["auto"] = "auto"
"""Value of ``Self2SegConfig.lam`` that asks for the image-derived λ (core/automatic_lam.py), and the
expert kind that keeps a network only where it explains its region better than a constant."""
EXPERT_KINDS: tuple[ExpertKind, ...] = ("network", "constant", "auto")
OTSU: Literal["otsu"] = "otsu"
"""Value of ``Self2SegConfig.threshold`` that takes Otsu's threshold of the image being thresholded."""
PAPER_THRESHOLD = 0.5
"""The paper's two-class threshold of the min–max normalised (denoised) image (§5)."""
MAX_CLASSES = 256
"""Most regions a run can have: class indices are written as uint8."""
RESIDUAL_MODES: tuple[ResidualMode, ...] = ("full", "blind")
INIT_MODES: tuple[InitMode, ...] = ("boxes", "threshold", "denoise-threshold", "mask")


def _require(condition: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``condition`` holds."""
    if not condition:
        raise ValueError(message)


def require_number(value: object, name: str, *, integer: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite real number (an integer if asked).

    Strings such as ``"0.04"`` and booleans are refused with a message that
    shows the expected form, instead of failing later with a ``TypeError``.
    """
    kind = numbers.Integral if integer else numbers.Real
    what = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"{name} must be {what}, got {value!r} ({type(value).__name__}); write it without quotes")
    try:
        finite = math.isfinite(float(value))
    except OverflowError:
        finite = False
    _require(finite, f"{name} must be finite, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class DenoiserConfig:
    """Settings of one Noise2Fast denoising expert (paper §4.3).

    Parameters
    ----------
    width : int
        Number of channels of every hidden convolution (paper: 64).
    n_blocks : int
        Number of two-convolution blocks (paper: 4, i.e. 8 convolutions).
    learning_rate : float
        Adam learning rate (paper: 1e-3).
    patience : int
        Training stops after this many consecutive validations without a new
        best score (paper code: 100, so at least 101 steps).
    average_last : int
        The expert's output is the mean of this many last validation outputs
        (paper: 100).
    max_steps : int
        Hard cap on gradient steps per training phase, a safety net that the
        early-stopping rule normally never reaches.
    validate_every : int
        Validate (denoise the whole image and score it on the region) every
        this many gradient steps (paper: 1).
    patch_size : int or None
        Train on random ``patch_size``² crops of the checkerboard pairs,
        centred on region pixels, instead of on the whole pairs (paper: None).
        Makes a step's cost independent of the image size.
    collapse_lr : float
        Learning rate of the one retry made when the output collapsed to a
        constant inside its region (paper code: 5e-6).
    warm_start : bool
        Continue from the previous outer iteration's weights instead of
        re-initialising the network (the paper re-initialises).
    """

    width: int = 64
    n_blocks: int = 4
    learning_rate: float = 1e-3
    patience: int = 100
    average_last: int = 100
    max_steps: int = 3000
    validate_every: int = 1
    patch_size: int | None = None
    collapse_lr: float = 5e-6
    warm_start: bool = False

    def __post_init__(self) -> None:
        """Check every field; raise ``ValueError`` naming the fix."""
        for name in ("width", "n_blocks", "patience", "average_last", "max_steps", "validate_every"):
            require_number(getattr(self, name), name, integer=True)
        for name in ("learning_rate", "collapse_lr"):
            require_number(getattr(self, name), name)
        if self.patch_size is not None:
            require_number(self.patch_size, "patch_size", integer=True)
        _require(self.width >= 1, f"denoiser width must be >= 1, got {self.width}")
        _require(self.n_blocks >= 1, f"denoiser n_blocks must be >= 1, got {self.n_blocks}")
        _require(
            self.learning_rate > 0,
            f"learning_rate must be > 0, got {self.learning_rate}; 1e-3 is the paper's value",
        )
        _require(self.patience >= 1, f"patience must be >= 1, got {self.patience}")
        _require(self.average_last >= 1, f"average_last must be >= 1, got {self.average_last}")
        _require(
            self.max_steps >= self.patience,
            f"max_steps ({self.max_steps}) must be >= patience ({self.patience})",
        )
        _require(self.collapse_lr > 0, f"collapse_lr must be > 0, got {self.collapse_lr}")
        _require(self.validate_every >= 1, f"validate_every must be >= 1, got {self.validate_every}")
        _require(
            self.patch_size is None or self.patch_size >= 8,
            f"patch_size must be None (whole image) or >= 8, got {self.patch_size}",
        )


@dataclass(frozen=True, kw_only=True)
class PrimalDualConfig:
    """Settings of the Chambolle–Pock segmentation step (paper Algorithms 2 and 4).

    Parameters
    ----------
    tau, sigma : float
        Primal and dual step sizes. Convergence needs ``tau * sigma * 8 <= 1``,
        8 being the bound on ``||grad||^2`` in 2-D (paper code: 1/4 and 1/2).
        Not used when ``scale_steps_to_lam`` is set.
    scale_steps_to_lam : bool
        Use ``tau = 1 / (sqrt(8) λ)`` and ``sigma = λ / sqrt(8)`` instead of
        ``tau`` and ``sigma``. The dual variable lives in a ball of radius λ;
        written for ``p / λ`` the problem's operator is ``λ grad`` with norm
        ``sqrt(8) λ``, and these are its standard steps ``1 / ||K||``. They
        follow λ when it is changed live; :func:`resegment` uses them
        (``benchmarks/resegment.py``: 2–20× fewer iterations than τ = 2,
        σ = 1/16 for λ in [0.0025, 0.04]).
    max_iter : int
        Iteration cap per segmentation step (the paper's code always runs 8000).
    gap_tol : float
        Stop when the primal–dual gap, divided by the number of pixels, is
        below this value.
    change_tol : float
        Also stop when the relative change ``||u_new - u|| / ||u||`` between two
        checks is below this value (0 disables this test).
    check_every : int
        Evaluate the stopping tests every this many iterations; checking costs
        a device-to-host synchronisation.
    """

    tau: float = 0.25
    sigma: float = 0.5
    scale_steps_to_lam: bool = False
    max_iter: int = 8000
    gap_tol: float = 1e-6
    change_tol: float = 0.0
    check_every: int = 50

    def __post_init__(self) -> None:
        """Check every field; raise ``ValueError`` naming the fix."""
        for name in ("tau", "sigma", "gap_tol", "change_tol"):
            require_number(getattr(self, name), name)
        for name in ("max_iter", "check_every"):
            require_number(getattr(self, name), name, integer=True)
        _require(self.tau > 0 and self.sigma > 0, "tau and sigma must be > 0")
        _require(
            self.tau * self.sigma * 8.0 <= 1.0 + 1e-12,
            f"tau * sigma * 8 must be <= 1 for convergence, got "
            f"{self.tau * self.sigma * 8.0:.3g}; e.g. tau=0.25, sigma=0.5",
        )
        _require(self.max_iter >= 1, f"max_iter must be >= 1, got {self.max_iter}")
        _require(self.gap_tol >= 0, f"gap_tol must be >= 0, got {self.gap_tol}")
        _require(self.change_tol >= 0, f"change_tol must be >= 0, got {self.change_tol}")
        _require(self.check_every >= 1, f"check_every must be >= 1, got {self.check_every}")

    def step_sizes(self, lam: float) -> tuple[float, float]:
        """Return the primal and dual step sizes ``(tau, sigma)`` for TV weight ``lam``."""
        if self.scale_steps_to_lam:
            return 1.0 / (math.sqrt(8.0) * lam), lam / math.sqrt(8.0)
        return self.tau, self.sigma


@dataclass(frozen=True, kw_only=True)
class InstanceConfig:
    """How a class mask is split into objects (core/instances.py).

    The defaults were chosen on the shared DSB2018 nuclei image alone
    (``benchmarks/instance_study.py``: its 16 crops, the true masks and the
    TV+Otsu masks at σ = 10/30/50, 64 settings): they give the best DSB2018
    mean average precision against the true instances, 0.443 averaged over the
    four kinds of mask against 0.303 for plain connected components (0.900 vs
    0.772 when the true mask is split). Objects there are 10–20 px across.

    Parameters
    ----------
    split : bool
        Split touching objects of one connected component: a watershed of the
        distance to the background, seeded at its local maxima. ``False``
        keeps connected components (the Self2Seg authors' evaluation).
    min_distance : int
        Smallest distance in pixels between two seeds, so about the smallest
        object radius that is split off; larger values split less.
    smoothing : float
        Standard deviation in pixels of the Gaussian applied to the distance
        map before its maxima are found: ragged outlines otherwise give extra
        maxima and over-split objects. 0 turns it off.
    min_size : int
        Objects smaller than this many pixels are removed (specks of noise).
    fill_holes : bool
        Fill background holes enclosed by an object before splitting.
    """

    split: bool = True
    min_distance: int = 7
    smoothing: float = 2.0
    min_size: int = 20
    fill_holes: bool = True

    def __post_init__(self) -> None:
        """Check every field; raise ``ValueError`` naming the fix."""
        require_number(self.min_distance, "min_distance", integer=True)
        require_number(self.min_size, "min_size", integer=True)
        require_number(self.smoothing, "smoothing")
        _require(self.min_distance >= 1, f"min_distance must be >= 1 pixel, got {self.min_distance}")
        _require(self.min_size >= 0, f"min_size must be >= 0 pixels (0 keeps every object), got {self.min_size}")
        _require(self.smoothing >= 0, f"smoothing must be >= 0 pixels (0 = off), got {self.smoothing}")
        _require(
            isinstance(self.split, bool) and isinstance(self.fill_holes, bool),
            f"split and fill_holes must be True or False, got {self.split!r} and {self.fill_holes!r}",
        )


@dataclass(frozen=True, kw_only=True)
class Self2SegConfig:
    """All settings of a Self2Seg run.

    The field defaults are the paper's settings (``preset("paper")``); the
    package's default run (``config=None``) uses the faster ``preset("fast")``.

    Parameters
    ----------
    lam : float or "auto"
        Smoothness: how much a long, ragged region boundary costs. Larger λ
        gives smoother outlines and removes small specks; too large a λ makes
        the whole image one region — the one whose expert explains the image
        better overall, which is not always the background. The cost of a
        unit length of boundary between two regions in the joint energy
        (eqs. 5, 13), on the [0, 1]-normalised image; the paper uses 0.04 and
        sweeps 0.01–0.07 on DSB2018. ``"auto"`` chooses it from the image
        after the first training of the experts: the standard deviation of
        the residual differences ``r_k - r_j`` inside the initial regions (:func:`~.automatic_lam.automatic_lam`); the
        result's ``config.lam`` holds the value chosen.
    mu : float
        Weight µ of the proximity term to the previous mask (eq. 10). 0 turns
        the term off; µ > 0 slows the growth of the foreground and switches the
        solver to the accelerated scheme (Algorithm 4).
    experts : tuple of {"network", "constant", "auto"}
        The expert of each region, by class index (class 0 is the
        background); the last entry applies to every further class, so
        ``("network",)`` gives every region a network. ``"network"``: a
        Noise2Fast expert. ``"constant"``: the region's closed-form weighted
        mean per channel (Chan–Vese). ``"auto"``: train a network on the
        initial region, then use constants for every ``"auto"`` class unless
        networks make the initial regions clearly more distinguishable
        (:func:`~.expert_choice.choose_expert_kinds`).
        ``("constant", "network")`` is the paper's "one expert" setting for
        nuclei. The result's ``config.experts`` lists the kind each class
        used (no ``"auto"`` left).
    classes : int
        Number of regions K for the threshold initialisations (multi-Otsu on
        the image for K > 2). Boxes and label images bring their own K.
    init : {"boxes", "threshold", "denoise-threshold", "mask"}
        How the first masks are made: from foreground/background boxes, by
        thresholding the normalised image, by thresholding a whole-image
        Noise2Fast denoising, or from a user-given mask.
    threshold : float or "otsu"
        Two-class threshold in (0, 1) of the threshold inits, on the
        normalised image (or its denoising). ``"otsu"``: Otsu's threshold
        of that image, so that dim objects are found whatever the brightest
        pixel (the ``fast`` preset's choice; the paper uses 0.5).
    residual_filter : int
        Size of the mean filter applied to the expert residuals before
        squaring (paper §3.1 variant 3; paper: 3 for σ ≥ 30). 1 means off.
    texture_window : int
        When every class has a network expert, each region residual is
        averaged over this odd window before the segmentation step (the
        local texture energy, :func:`~.energy.local_mean`), and an automatic
        λ is the spread of the averaged data term times
        :func:`~.automatic_lam.windowed_lam_factor`. 1 (the paper): per-pixel
        residuals. Runs with a constant expert keep per-pixel residuals.
        Beyond the paper; 5 in the ``fast`` preset: on the robustness
        suite's textures (six seeds) mean / worst Dice 0.904 / 0.201 → 0.926
        / 0.655 (docs/robustness.md).
    texture_features : float
        When every class has a network expert, add to each region residual
        the class's Gabor-energy texture term (:mod:`~.texture_features`: the
        mean squared distance of the pixel's filter-bank energies from the
        class's mean ones, a vector-valued Chan–Vese term), weighted so that
        its data term has this many times the spread of the experts' one in
        the initial regions; an automatic λ is then the spread of the
        combined data term. 0 (the paper): the experts' residuals alone.
        Beyond the paper; 0.5 in the ``fast`` preset (docs/robustness.md).
    residual : {"full", "blind"}
        What an expert's region residual compares with the image. ``"full"``
        (paper eq. 5): its denoising ``D(f)`` of the whole image. ``"blind"``:
        its prediction of each pixel from the other checkerboard half, which
        never sees the pixel's own noise, so the residual measures how well
        the expert explains the signal; with ``"full"`` the expert that
        denoises less has the smaller residual everywhere and can take the
        whole image. Beyond the paper; the ``fast`` preset's choice
        (docs/robustness.md).
    training_margin : int
        From the second expert step on, network experts train only on the
        pixels at least this many pixels inside their class's region (the
        uncertain rim of the last segmentation is left out; a region whose
        interior would keep less than a quarter of it trains whole,
        :func:`~.region_interior.region_interior`). 0 (the paper): the whole
        region. Beyond the paper and off in both presets: on the robustness
        suite's textures 3 rescues the worst pairs but lets another flood
        (docs/robustness.md).
    max_outer_iter : int
        Maximum number of segmentation steps (outer iterations).
    stop_ratio : float
        Outer stopping rule: stop when the energy decrease falls below
        ``stop_ratio`` times the previous decrease (paper: 0.15).
    denoise_constant_regions : bool
        After the last segmentation step, train the network of every
        ``"auto"`` class that became a constant further on its final pixels
        and show its output there in the denoised image (the segmentation
        and the energy are unchanged). Without it such regions are flat in
        the denoised image; a class given as ``"constant"`` always is.
        Beyond the paper; on in the ``fast`` preset.
    two_means : bool
        When every expert is a constant (Chan–Vese: eq. 5 with ``D_k = c_k``)
        and the run starts from boxes, start the alternation where the boxes
        do not matter (:mod:`~.tv_two_means`): the first constants are the
        band means of Otsu's split of the image (K-means for K classes)
        matched to the boxes, then the paper's update refits them to ``f``
        over ``u`` until the energy rule stops it (measured in
        docs/robustness.md, eighteenth session; after a collapse from that
        start, i.e. the split dropped a box, the run restarts from the boxes'
        means with the same update); where that split does not separate the
        boxes or for several channels, they start at the boxes' means and are
        refitted as means of the TV-denoised image ``ROF(f, σ̂)`` over each
        class — the TV-regularised two-means — until a step changes fewer
        than 0.1 % of the pixels (or ``max_outer_iter``; ``stop_ratio`` is not
        used). An automatic λ is
        the constants' gap times the noise level
        (:func:`~.automatic_lam.noise_lam`: the step stays the same TV
        problem as the constants move). The mask then no longer depends on
        which object the boxes mark. Threshold starts keep
        the paper's update (they are the image's own; measured better there).
        Beyond the paper; on in the ``fast`` preset (docs/robustness.md).
    local_means : float
        When every class is a constant (from boxes: the two-means; from a
        threshold: the paper's update), fit each constant as the mean of its
        class in a Gaussian window of this standard deviation (pixels)
        around every pixel instead of over the whole image
        (:func:`~.energy.local_weighted_mean`, local Chan–Vese), so that dim
        objects among bright ones and uneven illumination are compared with
        the means of their neighbourhood; the two-means' λ still follows the
        global means. A constant beside a network keeps one mean. 0: one
        mean per class (Chan–Vese). Beyond the paper; 24 in the ``fast``
        preset (docs/robustness.md).
    denoiser : DenoiserConfig
        Settings of the Noise2Fast experts.
    restart_denoiser : DenoiserConfig or None
        Experts of one restart after a collapse: when a segmentation step
        would make the image a single region, or take most of a class's boxes
        from it, the run starts once more from its initial regions with
        experts of these settings (and λ chosen again if it was chosen from
        the image), and returns the restart's result unless it collapsed too
        and its experts separated the classes of its kept step less than the
        first attempt's did. A plane of a stack started from
        the plane before does not restart, nor does a run without boxes (no
        box guard would catch a near-flood of the restart, which then replaced
        a valid mask), nor a run whose every class used a constant (no network
        to widen). None (the paper): no restart,
        the run ends with the last segmentation before the collapse. Beyond
        the paper; the ``fast`` preset restarts with experts of the paper's
        size (docs/robustness.md).
    solver : PrimalDualConfig
        Settings of the primal–dual segmentation step.
    instances : InstanceConfig
        How objects are split when instances are asked for
        (``segment(..., instances=True)``).
    """

    lam: float | Literal["auto"] = 0.04
    mu: float = 0.0
    experts: tuple[ExpertKind, ...] = ("network",)
    classes: int = 2
    init: InitMode = "boxes"
    threshold: float | Literal["otsu"] = PAPER_THRESHOLD
    residual_filter: int = 1
    texture_window: int = 1
    texture_features: float = 0.0
    residual: ResidualMode = "full"
    training_margin: int = 0
    max_outer_iter: int = 10
    stop_ratio: float = 0.15
    denoise_constant_regions: bool = False
    two_means: bool = False
    local_means: float = 0.0
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    restart_denoiser: DenoiserConfig | None = None
    solver: PrimalDualConfig = field(default_factory=PrimalDualConfig)
    instances: InstanceConfig = field(default_factory=InstanceConfig)

    def __post_init__(self) -> None:
        """Check every field; raise ``ValueError`` naming the fix."""
        for name in ("mu", "stop_ratio", "local_means", "texture_features"):
            require_number(getattr(self, name), name)
        if isinstance(self.threshold, str):
            _require(self.threshold == OTSU, f"threshold must be a number in (0, 1) or 'otsu', got {self.threshold!r}")
        else:
            require_number(self.threshold, "threshold")
        for name in ("residual_filter", "texture_window", "training_margin", "max_outer_iter"):
            require_number(getattr(self, name), name, integer=True)
        if isinstance(self.lam, str) and self.lam != AUTO:
            raise ValueError(f"lam (λ) must be a number > 0 or 'auto', got {self.lam!r}; write numbers without quotes")
        if self.lam != AUTO:
            require_number(self.lam, "lam (λ)")
            _require(
                self.lam > 0,
                f"lam (λ) must be > 0 or 'auto', got {self.lam}; try 'auto' or a value between 0.01 and 0.07",
            )
        _require(self.mu >= 0, f"mu (µ) must be >= 0, got {self.mu}; use 0 to switch it off")
        _require(
            self.local_means >= 0,
            f"local_means must be >= 0 pixels (0 = one mean per class), got {self.local_means}",
        )
        _require(
            self.texture_features >= 0,
            f"texture_features must be >= 0 (0 = the experts' residuals alone), got {self.texture_features}",
        )
        _require(
            self.restart_denoiser is None or isinstance(self.restart_denoiser, DenoiserConfig),
            f"restart_denoiser must be a DenoiserConfig or None (no restart), got {self.restart_denoiser!r}",
        )
        _require(
            isinstance(self.denoise_constant_regions, bool),
            f"denoise_constant_regions must be true or false, got {self.denoise_constant_regions!r}",
        )
        _require(isinstance(self.two_means, bool), f"two_means must be true or false, got {self.two_means!r}")
        _require(
            isinstance(self.experts, tuple) and 1 <= len(self.experts) <= MAX_CLASSES,
            f"experts must be a tuple of expert kinds, one per class, e.g. ('constant', 'network'); "
            f"got {self.experts!r}",
        )
        for kind in self.experts:
            _require(kind in EXPERT_KINDS, f"expert kinds are {', '.join(EXPERT_KINDS)}; got {kind!r}")
        require_number(self.classes, "classes", integer=True)
        _require(
            2 <= self.classes <= MAX_CLASSES,
            f"classes must be between 2 and {MAX_CLASSES} (a segmentation needs two regions), got {self.classes}",
        )
        _require(
            self.init in INIT_MODES,
            f"init must be one of {', '.join(INIT_MODES)}; got {self.init!r}",
        )
        _require(
            self.residual in RESIDUAL_MODES,
            f"residual must be one of {', '.join(RESIDUAL_MODES)}; got {self.residual!r}",
        )
        _require(
            self.threshold == OTSU or 0.0 < self.threshold < 1.0,
            f"threshold must be in (0, 1) or 'otsu', got {self.threshold}",
        )
        for name, one in (("residual_filter", "off"), ("texture_window", "per-pixel residuals")):
            size = getattr(self, name)
            _require(size >= 1 and size % 2 == 1, f"{name} must be an odd size >= 1 (1 = {one}), got {size}")
        _require(
            self.training_margin >= 0,
            f"training_margin must be >= 0 pixels (0 = train on the whole region), got {self.training_margin}",
        )
        _require(
            self.max_outer_iter >= 1,
            f"max_outer_iter must be >= 1, got {self.max_outer_iter}",
        )
        _require(
            0.0 <= self.stop_ratio < 1.0,
            f"stop_ratio must be in [0, 1), got {self.stop_ratio}",
        )


def config_from_dict(values: Mapping[str, Any]) -> Self2SegConfig:
    """Rebuild a :class:`Self2SegConfig` from ``dataclasses.asdict(config)`` (e.g. read back from a run's JSON).

    Missing fields keep their defaults; every value is checked as in the
    constructor.

    Raises
    ------
    ValueError
        On an unknown field name (it names the known ones) or an invalid value.

    Examples
    --------
    >>> import dataclasses
    >>> config = preset("fast")
    >>> config_from_dict(dataclasses.asdict(config)) == config
    True
    """
    nested: dict[str, type[DenoiserConfig | PrimalDualConfig | InstanceConfig]] = {
        "denoiser": DenoiserConfig,
        "restart_denoiser": DenoiserConfig,
        "solver": PrimalDualConfig,
        "instances": InstanceConfig,
    }

    def build(kind: type[Any], given: object, where: str) -> Any:
        if not isinstance(given, Mapping):
            raise ValueError(f"{where} must be a mapping of setting names to values, got {type(given).__name__}")
        known = {f.name for f in fields(kind)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise ValueError(f"unknown {where} setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        converted = {
            name: build(nested[name], value, f"config.{name}")
            if kind is Self2SegConfig and name in nested and value is not None
            else tuple(value)
            if isinstance(value, list)
            else value
            for name, value in given.items()
        }
        return kind(**converted)

    config: Self2SegConfig = build(Self2SegConfig, values, "config")
    return config


PRESETS = ("fast", "paper")


DEFAULT_PRESET = "fast"


def preset(name: str = DEFAULT_PRESET) -> Self2SegConfig:
    """Return a named, ready-made configuration.

    Parameters
    ----------
    name : {"fast", "paper"}, default "fast"
        ``"paper"``: the settings of Gruber et al. (64-channel, 8-layer
        Noise2Fast experts re-trained every outer iteration, validated after
        every step, early stop after 100 non-improving steps, 8000 primal–dual
        iterations at most, λ = 0.04, 15 % energy-decrease rule).
        ``"fast"``: the same energy with cheaper and more robust choices, each
        measured in ``benchmarks/speed.py`` and ``benchmarks/robustness.py``:
        narrower experts trained on patches, warm-started across outer
        iterations and validated every few steps; blind residuals
        (``residual="blind"``) averaged over 5 × 5 pixels between network
        experts (``texture_window=5``) with a Gabor-energy texture term beside them
        (``texture_features=0.5``), λ chosen from the image (``lam="auto"``), a
        background network only where the background needs one
        (``experts=("auto",)``: constants where they separate the boxes about
        as well as networks, :mod:`.expert_choice`), regions with a constant
        expert denoised by a network at the end, constants started from
        Otsu's split of the image (``two_means=True``), constants
        fitted in Gaussian windows of 24 pixels (``local_means=24``), Otsu's
        threshold for the threshold initialisations (``threshold="otsu"``,
        measured in ``benchmarks/evaluate_dsb.py``), and primal–dual step
        sizes scaled to λ.

    Returns
    -------
    Self2SegConfig
        The preset configuration.

    Raises
    ------
    ValueError
        If ``name`` is not a known preset.
    """
    if name == "paper":
        return Self2SegConfig()
    if name == "fast":
        denoiser = DenoiserConfig(
            width=32,
            n_blocks=3,
            learning_rate=1e-3,
            patience=6,
            average_last=5,
            max_steps=1000,
            validate_every=5,
            patch_size=64,
            warm_start=True,
        )
        paper_size = DenoiserConfig()
        return Self2SegConfig(
            lam=AUTO,
            residual="blind",
            texture_window=5,
            texture_features=0.5,
            experts=(AUTO,),
            threshold=OTSU,
            denoise_constant_regions=True,
            two_means=True,
            local_means=24.0,
            denoiser=denoiser,
            restart_denoiser=replace(denoiser, width=paper_size.width, n_blocks=paper_size.n_blocks),
            solver=PrimalDualConfig(scale_steps_to_lam=True, max_iter=2000, gap_tol=1e-6, check_every=25),
            max_outer_iter=6,
        )
    raise ValueError(f"unknown preset {name!r}; available presets: {', '.join(PRESETS)}")


def expert_kinds(config: Self2SegConfig, classes: int) -> tuple[ExpertKind, ...]:
    """Return the expert kind of each of ``classes`` regions: ``config.experts``, its last entry repeated.

    Raises
    ------
    ValueError
        If ``config.experts`` lists more kinds than there are classes.
    """
    kinds = config.experts
    if len(kinds) > classes:
        raise ValueError(
            f"experts lists {len(kinds)} kinds {kinds!r} but the image has {classes} classes; "
            "give one kind per class (or fewer: the last one repeats)"
        )
    return kinds + (kinds[-1],) * (classes - len(kinds))


BINARY_EXPERTS: dict[int | str, tuple[ExpertKind, ...]] = {
    AUTO: (AUTO,),
    2: ("network",),
    1: ("constant", "network"),
}
"""The two-region shorthands: an automatic background, 2 experts, or 1 expert (constant background)."""
