"""The alternating Self2Seg scheme (paper Algorithms 1 and 3) as a generator.

:func:`iterate` is the primary API: it validates its inputs at once, then
returns a generator of :class:`~.state.SolverState` snapshots. :func:`segment`
runs it to the end; :func:`resegment` re-solves only the convex step for a new
λ on the experts of a finished run.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Generator, Iterable, Sequence

import numpy as np
import torch

from ._validation import check_boxes, check_image, check_init_mask, check_seed, normalise, resolve_device
from .automatic_lam import automatic_lam
from .config import AUTO, PrimalDualConfig, Self2SegConfig, preset
from .denoiser.network import Noise2FastNet
from .denoiser.training import TrainedExpert, blind_prediction, train_expert
from .energy import joint_energy, squared_residual, weighted_mean
from .finite_diff import pointwise_norm
from .initialization import box_regions, threshold_regions
from .primal_dual import PrimalDualState, chambolle_pock, duality_gap
from .state import LiveParameters, Phase, SegmentationResult, SolverState

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.25
"""Longest time between two snapshots while an expert trains or the solver runs."""

BoxesLike = Iterable[Sequence[float]] | None
StateStream = Generator[SolverState, LiveParameters | None, None]


def _frozen(values: torch.Tensor | np.ndarray) -> np.ndarray:
    """Read-only CPU numpy copy of a tensor or array."""
    if isinstance(values, torch.Tensor):
        dtype = torch.bool if values.dtype == torch.bool else torch.float32
        values = values.detach().to("cpu", dtype).numpy()
    array = np.array(values, copy=True)
    array.flags.writeable = False
    return array


class _Run:
    """Mutable bookkeeping of one run: live parameters, timings, the last snapshot."""

    def __init__(self, config: Self2SegConfig, lo: float, hi: float, shape: tuple[int, int]) -> None:
        self.config = config
        self.lo, self.hi = lo, hi
        self.start = time.perf_counter()
        self.timings = {"init": 0.0, "train_foreground": 0.0, "train_background": 0.0, "segment": 0.0}
        self.energies: list[float] = []
        self.last_yield = self.start
        empty = np.zeros(shape, dtype=bool)
        empty.flags.writeable = False
        self.mask = empty
        self.mask_step = 0
        self.relaxed = _frozen(empty.astype(np.float32))
        self.denoised: np.ndarray | None = None
        self.automatic_lam = False

    @property
    def lam(self) -> float:
        """The λ in use; the automatic λ is chosen after the first training, before anything needs it."""
        if self.config.lam == AUTO:
            raise RuntimeError("the automatic λ is used before it was chosen")
        return self.config.lam

    def lam_or_none(self) -> float | None:
        """Return the λ in use, or None while the automatic λ is not chosen yet."""
        return None if self.config.lam == AUTO else self.config.lam

    def choose_lam(self, data: torch.Tensor, fg_region: torch.Tensor, bg_region: torch.Tensor) -> None:
        """Resolve ``lam="auto"`` from the first data term (a live λ sent earlier has replaced it already)."""
        if self.config.lam != AUTO:
            return
        lam = automatic_lam(data, fg_region, bg_region)
        self.config = dataclasses.replace(self.config, lam=lam)
        self.automatic_lam = True
        logger.info("automatic λ = %.4g (spread of r_F - r_B in the initial regions)", lam)
        if self.config.init != "boxes":
            # measured in docs/results.md: 2-4x too large on DSB2018 with the denoise-threshold init
            logger.warning(
                "λ = %.3g was chosen from the image, a rule validated with box prompts; with init=%r it tends "
                "to be too large (the regions hold misclassified pixels). If the mask floods or loses objects, "
                "give λ yourself (0.01-0.02 for nuclei) or draw boxes.",
                lam,
                self.config.init,
            )

    def receive(self, sent: LiveParameters | None) -> None:
        """Apply parameters sent into the generator (validated by LiveParameters)."""
        if sent is None:
            return
        lam = self.config.lam if sent.lam is None else sent.lam
        mu = self.config.mu if sent.mu is None else sent.mu
        self.config = dataclasses.replace(self.config, lam=lam, mu=mu)
        logger.info("live parameters: λ = %s, µ = %g", lam, mu)

    def to_input_scale(self, normalised: torch.Tensor) -> np.ndarray:
        """Map a [0, 1] image back to the input's intensity range."""
        return to_input_scale(normalised, self.lo, self.hi)

    def due(self) -> bool:
        """Whether enough time has passed to send an intermediate snapshot."""
        return time.perf_counter() - self.last_yield >= PROGRESS_INTERVAL_S

    def snapshot(
        self,
        phase: Phase,
        outer: int,
        message: str,
        *,
        step: int = 0,
        loss: float | None = None,
        gap: float | None = None,
        result: SegmentationResult | None = None,
    ) -> SolverState:
        """Build a snapshot from the current arrays (shared, read-only)."""
        self.last_yield = time.perf_counter()
        return SolverState(
            phase=phase,
            outer_iteration=outer,
            step=step,
            mask=self.mask,
            mask_step=self.mask_step,
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


def single_region(mask: torch.Tensor | np.ndarray) -> str | None:
    """``"foreground"`` or ``"background"`` if the mask covers all or none of the image, else None."""
    if bool(mask.all()):
        return "foreground"
    if not bool(mask.any()):
        return "background"
    return None


def collapsed(mask: torch.Tensor, boxes: tuple[torch.Tensor, torch.Tensor] | None) -> str | None:
    """Say how a segmentation step collapsed, or return None if it did not.

    A step collapses when one region takes the whole image, or — with box
    prompts — when a region takes more than half of the other region's boxes:
    the user marked those pixels, so such a mask is a flood (or a vanished
    foreground) that merely left a few pixels over.
    """
    everything = single_region(mask)
    if everything is not None:
        return f"the whole image {everything}"
    if boxes is not None:
        fg_boxes, bg_boxes = boxes
        if float(mask[bg_boxes].float().mean()) > 0.5:
            return "most of the background boxes foreground (the mask flooded)"
        if float(mask[fg_boxes].float().mean()) < 0.5:
            return "most of the foreground boxes background (the mask vanished)"
    return None


@dataclasses.dataclass
class _KeptSegmentation:
    """The last segmentation that left two regions: what a run ends with and resegment starts from."""

    u: torch.Tensor
    p: torch.Tensor
    residuals: tuple[torch.Tensor, torch.Tensor] | None
    step: int


def iterate(
    image: np.ndarray,
    config: Self2SegConfig | None = None,
    *,
    fg_boxes: BoxesLike = None,
    bg_boxes: BoxesLike = None,
    init_mask: np.ndarray | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
) -> StateStream:
    """Run Self2Seg step by step, yielding a snapshot after every phase.

    The scheme alternates (paper Algorithm 1): train the Noise2Fast experts on
    the current foreground and background (eqs. 11–12), then minimise the
    convex joint energy (eq. 5, or eq. 10 with µ > 0) over ``u`` by
    Chambolle–Pock, until the energy decrease falls below ``stop_ratio`` times
    the previous decrease or ``max_outer_iter`` segmentation steps were made.

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
        2-D image of any real dtype; it is min–max normalised internally and
        never modified.
    config : Self2SegConfig or None
        Settings; ``None`` uses the default (``fast``) preset.
    fg_boxes, bg_boxes : iterable of (y0, x0, y1, x1) or None
        Foreground and background boxes, half-open pixel coordinates; any
        number of each. Needed for ``init="boxes"``, ignored otherwise.
    init_mask : numpy.ndarray or None
        Initial foreground mask for ``init="mask"``.
    seed : int
        Seed of the network initialisations and the training-pair draws.
    device : str or torch.device
        ``"auto"`` (CUDA, else MPS, else CPU), ``"cpu"``, ``"cuda[:N]"`` or ``"mps"``.

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
    cfg = config if config is not None else preset()
    if not isinstance(cfg, Self2SegConfig):
        raise ValueError(f"config must be a Self2SegConfig (e.g. preset('fast')), got {type(cfg).__name__}")
    values = check_image(image)
    shape = (int(values.shape[0]), int(values.shape[1]))
    fg_checked = check_boxes(fg_boxes, "foreground", shape)
    bg_checked = check_boxes(bg_boxes, "background", shape)
    normalised, lo, hi = normalise(values)
    regions: tuple[np.ndarray, np.ndarray] | None = None
    if init_mask is not None and cfg.init != "mask":
        raise ValueError(f"init_mask is only used with init='mask', but init is {cfg.init!r}")
    if cfg.init == "boxes":
        regions = box_regions(fg_checked, bg_checked, shape)
    elif cfg.init == "threshold":
        regions = threshold_regions(normalised, cfg.threshold, "normalised image")
    elif cfg.init == "mask":
        if init_mask is None:
            raise ValueError("init='mask' needs an init_mask of the image's shape")
        fg = check_init_mask(init_mask, shape)
        regions = (fg, ~fg)
    torch_device = resolve_device(device)
    return _alternate(normalised, lo, hi, cfg, regions, check_seed(seed), torch_device)


def _alternate(
    normalised: np.ndarray,
    lo: float,
    hi: float,
    config: Self2SegConfig,
    regions: tuple[np.ndarray, np.ndarray] | None,
    seed: int,
    device: torch.device,
) -> StateStream:
    """Run the alternating scheme on validated inputs (the generator behind :func:`iterate`)."""
    run = _Run(config, lo, hi, (normalised.shape[0], normalised.shape[1]))
    f = torch.from_numpy(normalised).to(device)
    generator = torch.Generator().manual_seed(seed)
    den_cfg = config.denoiser

    def new_net() -> Noise2FastNet:
        return Noise2FastNet(den_cfg.width, den_cfg.n_blocks, generator=generator).to(device)

    def train(
        net: Noise2FastNet, region: torch.Tensor, phase: Phase, outer: int, timing_key: str
    ) -> Generator[SolverState, LiveParameters | None, TrainedExpert]:
        t0 = time.perf_counter()
        training = train_expert(net, f, region, den_cfg, generator)
        try:
            while True:
                progress = next(training)
                if run.due():
                    message = f"{phase.value}: step {progress.step}, loss {progress.loss:.3g}"
                    run.receive((yield run.snapshot(phase, outer, message, step=progress.step, loss=progress.loss)))
        except StopIteration as stop:
            trained: TrainedExpert = stop.value
        run.timings[timing_key] += time.perf_counter() - t0
        logger.info("%s: %d steps, best validation error %.3g", phase.value, trained.steps, trained.best_score)
        return trained

    def region_prediction(net: Noise2FastNet, output: torch.Tensor) -> torch.Tensor:
        """Return what an expert's region residual compares with ``f``: its output or its blind prediction."""
        return blind_prediction(net, f, output) if config.residual == "blind" else output

    # Initialisation (Algorithm 1, step 1).
    if regions is None:  # denoise-threshold: Noise2Fast on the whole image, then threshold
        whole = yield from train(new_net(), torch.ones_like(f, dtype=torch.bool), Phase.INIT, 0, "init")
        denoised = whole.output.cpu().numpy()
        denoised = (denoised - denoised.min()) / max(float(denoised.max() - denoised.min()), 1e-12)
        regions = threshold_regions(denoised, config.threshold, "denoised image")
    fg_region = torch.from_numpy(regions[0]).to(device)
    bg_region = torch.from_numpy(regions[1]).to(device)
    u = fg_region.to(f.dtype)
    run.mask, run.relaxed = _frozen(regions[0]), _frozen(u)
    run.receive((yield run.snapshot(Phase.INIT, 0, f"initial regions from {config.init}")))

    boxes = (fg_region, bg_region) if config.init == "boxes" else None  # the names are rebound, never written
    fg_net = new_net()
    bg_net = new_net() if config.experts != 1 else None
    pd_state = PrimalDualState.from_mask(u)
    kept = _KeptSegmentation(u=u.clone(), p=pd_state.p.clone(), residuals=None, step=0)
    degenerate = False
    stop_reason = f"reached max_outer_iter = {config.max_outer_iter}"
    outer = 0

    def constant_background() -> torch.Tensor:
        """Return the constant background expert (eq. 5, D_B = c_B): mean over the boxes first, then over 1 - u."""
        weight = bg_region.to(f.dtype) if outer == 0 else 1.0 - u
        return weighted_mean(f, weight).expand_as(f)

    while True:
        # Expert step: W^{k+1} = argmin_W E(u^k, W) via Noise2Fast (eqs. 11–12).
        if outer > 0 and not den_cfg.warm_start:
            fg_net = new_net()
            bg_net = new_net() if run.config.experts == 2 else None
        out_fg = (yield from train(fg_net, fg_region, Phase.TRAIN_FOREGROUND, outer, "train_foreground")).output
        pred_fg = region_prediction(fg_net, out_fg)
        if bg_net is not None:
            out_bg = (yield from train(bg_net, bg_region, Phase.TRAIN_BACKGROUND, outer, "train_background")).output
            pred_bg = region_prediction(bg_net, out_bg)
        else:
            t0 = time.perf_counter()
            out_bg = pred_bg = constant_background()
            run.timings["train_background"] += time.perf_counter() - t0
        residual_fg = squared_residual(f, pred_fg, config.residual_filter)
        residual_bg = squared_residual(f, pred_bg, config.residual_filter)
        if outer == 0 and run.config.experts == AUTO:
            constant = constant_background()
            flat = squared_residual(f, constant, config.residual_filter)
            network_needed = background_needs_network(residual_bg, flat, bg_region)
            run.config = dataclasses.replace(run.config, experts=2 if network_needed else 1)
            logger.info("background: %s", "a network expert" if network_needed else "a constant (flat background)")
            if not network_needed:
                bg_net, out_bg, pred_bg, residual_bg = None, constant, constant, flat
        if outer == 0:
            run.choose_lam(residual_fg - residual_bg, fg_region, bg_region)
        run.energies.append(float(joint_energy(u, residual_fg, residual_bg, run.lam)))
        run.denoised = run.to_input_scale(torch.where(u >= 0.5, out_fg, out_bg))
        run.receive(
            (yield run.snapshot(Phase.TRAIN_BACKGROUND, outer, f"experts trained, energy {run.energies[-1]:.4g}"))
        )

        if _decrease_stalled(run.energies, config.stop_ratio):
            stop_reason = f"energy decrease fell below {config.stop_ratio:g} × the previous decrease"
            break
        if outer >= config.max_outer_iter:
            break

        # Segmentation step: u^{k+1} = argmin_u E(u, W^{k+1}) (Algorithm 2 or 4).
        outer += 1
        t0 = time.perf_counter()
        lam, mu = run.lam, run.config.mu
        reference = u.clone() if mu > 0 else None
        progress = None
        for progress in chambolle_pock(
            pd_state, residual_fg - residual_bg, lam, config.solver, mu=mu, reference=reference
        ):
            if run.due():
                run.relaxed = _frozen(pd_state.u)
                message = f"segment: iteration {progress.iteration}, gap {progress.gap:.2e}"
                run.receive(
                    (yield run.snapshot(Phase.SEGMENT, outer, message, step=progress.iteration, gap=progress.gap))
                )
        run.timings["segment"] += time.perf_counter() - t0
        steps = progress.iteration if progress else 0
        gap = progress.gap if progress else None
        logger.info("segmentation %d: %d primal-dual iterations, gap %.2e", outer, steps, gap or 0.0)
        collapse = collapsed(pd_state.u >= 0.5, boxes)
        if collapse is not None:
            # One region (or one that took the other's boxes) is no segmentation: end with the last good one.
            degenerate = True
            before = "the initial regions are" if kept.step == 0 else f"the mask of step {kept.step} is"
            stop_reason = (
                f"segmentation step {outer} made {collapse} with λ = {lam:g}, so {before} kept; "
                "lower λ, draw larger boxes, or try one expert (constant background)"
            )
            logger.warning(stop_reason)
            pd_state.u.copy_(kept.u)
            pd_state.p.copy_(kept.p)
        else:
            kept = _KeptSegmentation(
                u=pd_state.u.clone(), p=pd_state.p.clone(), residuals=(residual_fg, residual_bg), step=outer
            )
        u = pd_state.u
        hard = u >= 0.5
        run.mask, run.relaxed, run.mask_step = _frozen(hard), _frozen(u), kept.step
        run.denoised = run.to_input_scale(torch.where(hard, out_fg, out_bg))
        message = f"segmentation {outer} done" if not degenerate else f"segmentation {outer} became one region"
        run.receive((yield run.snapshot(Phase.SEGMENT, outer, message, step=steps, gap=gap)))
        if degenerate:
            break
        fg_region, bg_region = hard, ~hard

    # The residuals the kept mask was solved with, so that resegment at the run's λ gives that mask back.
    kept_fg, kept_bg = kept.residuals if kept.residuals is not None else (residual_fg, residual_bg)
    result = SegmentationResult(
        mask=run.mask,
        relaxed=run.relaxed,
        denoised=run.denoised,
        denoised_fg=run.to_input_scale(out_fg),
        denoised_bg=run.to_input_scale(out_bg),
        energies=tuple(run.energies),
        timings=dict(run.timings),
        config=run.config,
        seed=seed,
        device=str(device),
        outer_iterations=outer,
        stop_reason=stop_reason,
        degenerate=degenerate,
        automatic_lam=run.automatic_lam,
        image_range=(lo, hi),
        residual_fg=_frozen(kept_fg),
        residual_bg=_frozen(kept_bg),
        dual=_frozen(kept.p),
    )
    logger.info("done after %d segmentation steps: %s", outer, stop_reason)
    yield run.snapshot(Phase.DONE, outer, f"done: {stop_reason}", result=result)


def background_needs_network(network: torch.Tensor, constant: torch.Tensor, region: torch.Tensor) -> bool:
    """Whether a network expert explains the background region better than its mean (``experts="auto"``).

    Compares the mean region residuals (eq. 5) of the trained background
    network and of the constant background. On a flat background (fluorescence)
    a network, which explains any locally smooth patch, brings nothing over the
    constant and later also explains the objects; there the constant is kept.
    The network is scored on the pixels it was trained on, which favours it
    on small boxes (below about 12 × 12 pixels it tends to be kept).
    """
    return bool(network[region].mean() < constant[region].mean())


def _certified(state: PrimalDualState, data: torch.Tensor, lam: float, gap_tol: float) -> bool:
    """Whether ``state`` already meets the gap tolerance for ``lam`` (then no iteration is needed).

    The gap certifies only a dual-feasible ``p`` (``|p_i| <= lam``); a ``p``
    stored for a larger λ is not, and the state is then solved again.
    """
    if float(pointwise_norm(state.p).max()) > lam * (1.0 + 1e-6):
        return False
    return float(duality_gap(state, data, lam)) / data.numel() <= gap_tol


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
    fg_boxes: BoxesLike = None,
    bg_boxes: BoxesLike = None,
    init_mask: np.ndarray | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
) -> SegmentationResult:
    """Run Self2Seg to the end and return its result.

    Same parameters as :func:`iterate`.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image of any real dtype.
    config : Self2SegConfig or None
        Settings; ``None`` uses the default (``fast``) preset.
    fg_boxes, bg_boxes : iterable of (y0, x0, y1, x1) or None
        Foreground and background boxes (half-open).
    init_mask : numpy.ndarray or None
        Initial foreground mask for ``init="mask"``.
    seed : int
        Random seed.
    device : str or torch.device
        Device name or ``"auto"``.

    Returns
    -------
    SegmentationResult
        Mask, relaxed indicator, denoised images, energies and timings.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_self2seg.core import Self2SegConfig, DenoiserConfig, PrimalDualConfig, segment
    >>> rng = np.random.default_rng(0)
    >>> img = rng.normal(0.2, 0.1, (32, 32)); img[8:24, 8:24] += 0.6
    >>> cfg = Self2SegConfig(lam=0.02, experts=1, max_outer_iter=2,
    ...                      denoiser=DenoiserConfig(width=4, n_blocks=1, patience=5, average_last=5),
    ...                      solver=PrimalDualConfig(max_iter=500))
    >>> result = segment(img, cfg, fg_boxes=[(10, 10, 20, 20)], bg_boxes=[(0, 0, 6, 32)], device="cpu")
    >>> result.mask[16, 16], result.mask[2, 2]
    (np.True_, np.False_)
    """
    final: SegmentationResult | None = None
    for state in iterate(
        image, config, fg_boxes=fg_boxes, bg_boxes=bg_boxes, init_mask=init_mask, seed=seed, device=device
    ):
        final = state.result
    if final is None:  # pragma: no cover - iterate always ends with a result
        raise RuntimeError("Self2Seg ended without a result")
    return final


def resegment(
    result: SegmentationResult,
    *,
    lam: float,
    device: str | torch.device = "cpu",
    solver: PrimalDualConfig | None = None,
) -> SegmentationResult:
    """Re-solve only the convex segmentation step for a new λ, keeping the experts.

    The experts' residuals stored in ``result`` are fixed, so eq. (5) is convex
    in ``u`` and one Chambolle–Pock solve (warm-started from the previous
    ``u`` and dual variable) gives the new global minimiser; no network is
    trained. The µ term is not used here.

    Parameters
    ----------
    result : SegmentationResult
        A finished run.
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
        A new result with the new mask, relaxed indicator, composite denoised
        image and a one-entry energy history; experts are unchanged. It is
        the exact minimiser for ``lam``, even when that is a single region
        (``degenerate`` is then True and ``stop_reason`` says so).

    Notes
    -----
    Every call starts from the state stored in ``result``, so re-segmenting a
    run's result for several λ in any order gives for each λ the same mask
    (pass the run's own result each time, not a re-segmented one).
    """
    if solver is None:
        solver = dataclasses.replace(result.config.solver, scale_steps_to_lam=True)
    config = dataclasses.replace(result.config, lam=lam, solver=solver)
    torch_device = resolve_device(device)
    t0 = time.perf_counter()
    residual_fg = torch.from_numpy(np.array(result.residual_fg)).to(torch_device)
    residual_bg = torch.from_numpy(np.array(result.residual_bg)).to(torch_device)
    state = PrimalDualState(
        u=torch.from_numpy(np.array(result.relaxed)).to(torch_device),
        p=torch.from_numpy(np.array(result.dual)).to(torch_device),
    )
    data = residual_fg - residual_bg
    if not _certified(state, data, lam, config.solver.gap_tol):
        for _ in chambolle_pock(state, data, lam, config.solver):
            pass
    energy = float(joint_energy(state.u, residual_fg, residual_bg, lam))
    mask = _frozen(state.u >= 0.5)
    denoised = np.where(mask, result.denoised_fg, result.denoised_bg)
    denoised.flags.writeable = False
    everything = single_region(mask)
    stop_reason = f"re-segmented with λ = {lam:g}"
    if everything is not None:
        stop_reason += f": the whole image became {everything}; a smaller λ keeps two regions"
    return dataclasses.replace(
        result,
        mask=mask,
        relaxed=_frozen(state.u),
        denoised=denoised,
        energies=(energy,),
        timings={"segment": time.perf_counter() - t0},
        config=config,
        dual=_frozen(state.p),
        stop_reason=stop_reason,
        degenerate=everything is not None,
        automatic_lam=result.automatic_lam and lam == result.config.lam,
    )
