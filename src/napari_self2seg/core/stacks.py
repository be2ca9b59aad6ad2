"""Stacks: every plane of a z-stack or time-lapse segmented in order, each warm-started from the one before.

A stack is an image with plane axes in front of Y and X (Z, T, …: every axis
that is neither the channel axis nor one of the last two). Its planes run one
after the other in C order. The first plane runs as a single image does; every
later plane starts from the experts, memberships and dual variable of the plane
before (:class:`~.solver.WarmStart`) instead of from its initialisation, so its
experts stop training sooner and its primal–dual solve starts near its
solution; a warm-started plane also ends as soon as a segmentation step changes
fewer than 2 % of its pixels. A plane whose experts are all constants (the
defaults' choice on nuclei) has nothing to train: it keeps the kinds the first
plane chose, but takes its constants from its own Otsu split and its
automatic λ from its own noise, as a run of the plane alone would (started
from the plane before, they drifted into collapses on a drifting DSB2018
stack; docs/robustness.md, eighteenth session). Warm starting between
neighbouring planes is beyond the paper, which segments one image.

Warm starts are used by default only with box prompts, which guard every plane
against a flood or a vanishing class. Without them a warm-started stack
continues one long alternation across planes, and on the DSB nuclei setting
(denoise-threshold init, constant background) that drifted into a flood within
a few planes while independent runs did not (``benchmarks/batch.py``,
docs/benchmarks.md); those planes run on their own unless ``warm_start=True``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Generator, Mapping
from typing import TYPE_CHECKING, Literal

import numpy as np

from .config import AUTO, Self2SegConfig, preset
from .solver import Boxes, ClassBoxes, Scheme, WarmStart, prepare_run
from .state import LiveParameters, Phase, SegmentationResult, SolverState

if TYPE_CHECKING:
    import torch


@dataclasses.dataclass(frozen=True)
class StackLayout:
    """Where the planes, channels and pixels of a stack lie.

    Attributes
    ----------
    shape : tuple of int
        The stack's shape.
    channel_axis : int or None
        Axis of the channels, or None for a grey stack.
    """

    shape: tuple[int, ...]
    channel_axis: int | None

    @classmethod
    def of(cls, shape: tuple[int, ...], channel_axis: int | None) -> StackLayout:
        """Check that ``shape`` has Y and X (and the channel axis where one is named) and return its layout."""
        spatial = 2 if channel_axis is None else 3
        if len(shape) < spatial:
            what = "Y, X" if channel_axis is None else "Y, X and a channel axis"
            raise ValueError(f"a stack needs at least the axes {what}; got shape {shape}")
        if channel_axis is not None and not -len(shape) <= channel_axis < len(shape):
            raise ValueError(f"channel_axis={channel_axis} is out of range for an image of shape {shape}")
        return cls(tuple(int(n) for n in shape), None if channel_axis is None else channel_axis % len(shape))

    @property
    def _channels_last(self) -> tuple[int, ...]:
        """The shape with the channel axis moved to the end."""
        if self.channel_axis is None:
            return self.shape
        rest = self.shape[: self.channel_axis] + self.shape[self.channel_axis + 1 :]
        return (*rest, self.shape[self.channel_axis])

    @property
    def plane_shape(self) -> tuple[int, ...]:
        """Sizes of the plane axes (``()`` for a single plane)."""
        return self._channels_last[: -2 if self.channel_axis is None else -3]

    @property
    def planes(self) -> int:
        """Number of planes."""
        return math.prod(self.plane_shape)

    @property
    def yx(self) -> tuple[int, int]:
        """Height and width of a plane."""
        end = len(self._channels_last) - (0 if self.channel_axis is None else 1)
        height, width = self._channels_last[end - 2 : end]
        return height, width

    @property
    def plane_channel_axis(self) -> int | None:
        """Channel axis of one plane as :meth:`plane` returns it (the last), or None."""
        return None if self.channel_axis is None else -1

    def plane(self, stack: np.ndarray, index: int) -> np.ndarray:
        """Plane ``index`` (C order over the plane axes) as ``(H, W)`` or ``(H, W, C)``; a view."""
        moved = stack if self.channel_axis is None else np.moveaxis(stack, self.channel_axis, -1)
        rest = moved.shape[len(self.plane_shape) :]
        plane: np.ndarray = moved.reshape(-1, *rest)[index]
        return plane

    def stack_labels(self, planes: list[np.ndarray]) -> np.ndarray:
        """Stack per-plane ``(H, W)`` arrays to ``(*plane_shape, H, W)``."""
        out = np.stack(planes).reshape(*self.plane_shape, *self.yx)
        out.flags.writeable = False
        return out

    def stack_images(self, planes: list[np.ndarray]) -> np.ndarray:
        """Stack per-plane images (``(H, W)`` or ``(H, W, C)``) back into the stack's own layout."""
        stacked = np.stack(planes)
        stacked = stacked.reshape(*self.plane_shape, *stacked.shape[1:])
        if self.channel_axis is not None:
            stacked = np.moveaxis(stacked, -1, self.channel_axis)
        out = np.ascontiguousarray(stacked)
        out.flags.writeable = False
        return out


@dataclasses.dataclass(frozen=True, kw_only=True)
class StackResult:
    """Outcome of a stack run: one :class:`SegmentationResult` per plane and the stacked arrays.

    Attributes
    ----------
    planes : tuple of SegmentationResult
        Per plane, in C order over the plane axes; each plane's images are
        ``(H, W)`` or ``(H, W, C)`` (channels last).
    labels : numpy.ndarray
        ``(*plane_shape, H, W)`` uint8 class indices (0 = background).
    denoised : numpy.ndarray
        The composite denoising in the input's shape and layout.
    objects : numpy.ndarray or None
        ``(*plane_shape, H, W)`` int32 objects, numbered per plane from 1 in
        raster order (a plane's objects are not linked to the next plane's);
        None unless asked for.
    layout : StackLayout
        Where planes and channels lie in the input.
    warm_start : bool
        Whether later planes started from the plane before.
    """

    planes: tuple[SegmentationResult, ...]
    labels: np.ndarray
    denoised: np.ndarray
    objects: np.ndarray | None
    layout: StackLayout
    warm_start: bool

    @property
    def mask(self) -> np.ndarray:
        """Foreground (every class but 0), bool ``(*plane_shape, H, W)``."""
        mask: np.ndarray = self.labels != 0
        return mask

    @property
    def degenerate_planes(self) -> tuple[int, ...]:
        """Planes whose run collapsed and kept an earlier segmentation."""
        return tuple(i for i, plane in enumerate(self.planes) if plane.degenerate)

    @property
    def unreliable_planes(self) -> tuple[int, ...]:
        """Planes whose first experts barely told the boxes apart (:attr:`SegmentationResult.reliability_warning`)."""
        return tuple(i for i, plane in enumerate(self.planes) if plane.reliability_warning is not None)


@dataclasses.dataclass(frozen=True)
class PlaneState:
    """A snapshot of a stack run: the plane being segmented and its own snapshot.

    Attributes
    ----------
    plane : int
        Index of the plane (C order over the plane axes), from 0.
    planes : int
        Number of planes.
    state : SolverState
        The plane's snapshot; ``state.result`` is set once the plane is done.
    stack : StackResult or None
        Set on the very last snapshot, when every plane is done.
    """

    plane: int
    planes: int
    state: SolverState
    stack: StackResult | None = None


def iterate_stack(
    image: np.ndarray,
    config: Self2SegConfig | None = None,
    *,
    boxes: ClassBoxes = None,
    fg_boxes: Boxes = None,
    bg_boxes: Boxes = None,
    plane_boxes: Mapping[int, ClassBoxes] | None = None,
    init_mask: np.ndarray | None = None,
    channel_axis: int | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    instances: bool = False,
    warm_start: bool | None = None,
    keep_problem: bool = False,
) -> Generator[PlaneState, LiveParameters | None, None]:
    """Segment every plane of a stack in order, yielding each plane's snapshots.

    Every plane is checked when this function is called, before any work.
    The first plane runs as :func:`~.solver.iterate` runs a single image; with
    ``warm_start`` every later plane starts from the previous plane's experts,
    memberships and dual variable, and uses its λ (with ``lam="auto"`` the
    first plane chooses it). A :class:`LiveParameters` sent in changes λ/µ
    of the plane running and of every later plane.

    Parameters
    ----------
    image : numpy.ndarray
        ``(..., Y, X)`` with any number of plane axes in front, channels on
        ``channel_axis`` where there are any; never modified.
    config : Self2SegConfig or None
        Settings for every plane; ``None`` uses the default (``fast``) preset.
    boxes, fg_boxes, bg_boxes
        Box prompts in plane (Y, X) coordinates, applied to every plane, as
        in :func:`~.solver.iterate`.
    plane_boxes : mapping of plane index to boxes per class, or None
        Boxes of single planes (C-order plane index); they replace ``boxes``
        on their plane. On a warm-started plane they are painted over the
        previous plane's classes before the experts train.
    init_mask : numpy.ndarray or None
        ``(Y, X)`` initial segmentation for ``init="mask"``: of the first
        plane, and of every plane without ``warm_start``.
    channel_axis : int or None
        Axis of the channels in ``image``; None for grey.
    seed : int
        Seed of every plane's run.
    device : str or torch.device
        Device name or ``"auto"``.
    instances : bool
        Split every plane's classes into objects.
    warm_start : bool or None
        Start every plane after the first from the plane before; False runs
        every plane on its own. None (default): warm starts with box prompts
        (``init="boxes"``), every plane on its own otherwise (see the module
        docstring for why).
    keep_problem : bool
        Keep in every plane's result what :func:`~.solver.resegment` needs
        (memory: about seven images per plane).

    Yields
    ------
    PlaneState
        Every snapshot of every plane; the last one carries the :class:`StackResult`.

    Raises
    ------
    ValueError
        On an invalid stack, plane, box or setting (the message names the plane).
    """
    cfg = config if config is not None else preset()
    if warm_start is None:
        warm_start = cfg.init == "boxes"
    array = np.asarray(image)
    layout = StackLayout.of(array.shape, channel_axis)
    if layout.planes == 0:
        raise ValueError(f"the stack of shape {array.shape} has no planes (a plane axis has length 0)")
    per_plane = _plane_boxes(plane_boxes, layout.planes)

    def plane_run(index: int, plane_config: Self2SegConfig, *, check_only: bool = False) -> Scheme:
        given = per_plane.get(index)
        try:
            return prepare_run(
                layout.plane(array, index),
                plane_config,
                boxes=given if given is not None else boxes,
                fg_boxes=None if given is not None else fg_boxes,
                bg_boxes=None if given is not None else bg_boxes,
                init_mask=init_mask if (index == 0 or not warm_start or check_only) else None,
                channel_axis=layout.plane_channel_axis,
                seed=seed,
                device=device,
                instances=instances,
            )
        except ValueError as error:
            if layout.planes == 1:
                raise
            raise ValueError(f"plane {index}: {error}") from None

    for index in range(layout.planes):  # every plane checked before any work (preparing is cheap)
        plane_run(index, cfg, check_only=True)
    if warm_start and cfg.init == "boxes" and per_plane:
        shared = len(per_plane[0]) if 0 in per_plane and per_plane[0] is not None else None
        for index, given in per_plane.items():
            first = shared if shared is not None else _box_classes(boxes)
            if given is not None and len(given) != first:
                raise ValueError(
                    f"plane {index}: its boxes give {len(given)} classes but the first plane has {first}; "
                    "a warm-started stack keeps its classes, so give every plane boxes for the same classes"
                )
    return _run_planes(layout, cfg, plane_run, instances=instances, warm_start=warm_start, keep_problem=keep_problem)


def _box_classes(boxes: ClassBoxes) -> int:
    """Return how many classes the shared prompts name (two for the foreground/background shorthand)."""
    return 2 if boxes is None else len(dict(boxes))


def _plane_boxes(plane_boxes: Mapping[int, ClassBoxes] | None, planes: int) -> dict[int, ClassBoxes]:
    """Check the plane indices of per-plane boxes."""
    if plane_boxes is None:
        return {}
    if not isinstance(plane_boxes, Mapping):
        raise ValueError(f"plane_boxes must map a plane index to boxes per class, got {type(plane_boxes).__name__}")
    for index in plane_boxes:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < planes:
            raise ValueError(f"plane_boxes names plane {index!r}, but the stack has planes 0 to {planes - 1}")
    return {int(index): given for index, given in plane_boxes.items()}


def _run_planes(
    layout: StackLayout,
    config: Self2SegConfig,
    plane_run: Callable[[int, Self2SegConfig], Scheme],
    *,
    instances: bool,
    warm_start: bool,
    keep_problem: bool,
) -> Generator[PlaneState, LiveParameters | None, None]:
    """Run the planes in order, handing each one's experts and segmentation to the next."""
    results: list[SegmentationResult] = []
    warm: WarmStart | None = None
    for index in range(layout.planes):
        scheme = plane_run(index, config)
        stream = scheme.run(keep_problem=keep_problem, instances=instances, warm=warm)
        sent: LiveParameters | None = None
        try:
            while True:
                try:
                    state = stream.send(sent)
                except StopIteration:
                    break
                stack = None
                if state.phase is Phase.DONE and state.result is not None:
                    results.append(state.result)
                    if index == layout.planes - 1:
                        stack = _stack_result(results, layout, warm_start)
                sent = yield PlaneState(index, layout.planes, state, stack)
                if sent is not None:
                    config = _with_live(config, sent)
        finally:
            stream.close()  # also when the consumer stops the stack early
        if warm_start:
            warm = scheme.handover
            noise_rule = scheme.two_means(results[-1].config.experts)
            config = dataclasses.replace(config, lam=carried_lam(config, results[-1], noise_rule=noise_rule))


def carried_lam(config: Self2SegConfig, previous: SegmentationResult, *, noise_rule: bool) -> float | Literal["auto"]:
    """Return the λ the next warm-started plane runs with: the previous plane's, unless it follows the constants.

    A λ given, sent live or chosen once from the first residuals (a run with
    networks, or without boxes) holds for the whole stack. One chosen by the
    noise rule for constants from boxes (:func:`.automatic_lam.noise_lam`) is
    chosen again on every plane, as the plane's constants are: carried over, the previous plane's
    λ made the drifting DSB2018 stack of docs/robustness.md (eighteenth
    session) differ from independent runs. ``noise_rule``: whether the
    previous plane's constants followed it (:meth:`.solver.Scheme.two_means`).
    """
    if config.lam == AUTO and previous.automatic_lam and noise_rule:
        return AUTO
    return previous.lam


def _with_live(config: Self2SegConfig, sent: LiveParameters) -> Self2SegConfig:
    """Carry live λ/µ over to the planes still to come."""
    lam = config.lam if sent.lam is None else sent.lam
    mu = config.mu if sent.mu is None else sent.mu
    return dataclasses.replace(config, lam=lam, mu=mu)


def _stack_result(results: list[SegmentationResult], layout: StackLayout, warm_start: bool) -> StackResult:
    """Stack the per-plane results into the input's layout."""
    objects = None
    if all(result.instances is not None for result in results):
        objects = layout.stack_labels([result.instances.labels for result in results if result.instances is not None])
    return StackResult(
        planes=tuple(results),
        labels=layout.stack_labels([result.labels for result in results]),
        denoised=layout.stack_images([result.denoised for result in results]),
        objects=objects,
        layout=layout,
        warm_start=warm_start,
    )


def segment_stack(
    image: np.ndarray,
    config: Self2SegConfig | None = None,
    *,
    boxes: ClassBoxes = None,
    fg_boxes: Boxes = None,
    bg_boxes: Boxes = None,
    plane_boxes: Mapping[int, ClassBoxes] | None = None,
    init_mask: np.ndarray | None = None,
    channel_axis: int | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    instances: bool = False,
    warm_start: bool | None = None,
) -> StackResult:
    """Segment every plane of a stack in order and return the stacked result.

    Same parameters as :func:`iterate_stack`.

    Parameters
    ----------
    image : numpy.ndarray
        ``(..., Y, X)`` stack (channels on ``channel_axis``).
    config : Self2SegConfig or None
        Settings; ``None`` uses the default (``fast``) preset.
    boxes, fg_boxes, bg_boxes
        Box prompts applied to every plane.
    plane_boxes : mapping of plane index to boxes per class, or None
        Boxes of single planes.
    init_mask : numpy.ndarray or None
        Initial ``(Y, X)`` segmentation for ``init="mask"``.
    channel_axis : int or None
        Axis of the channels; None for grey.
    seed : int
        Random seed.
    device : str or torch.device
        Device name or ``"auto"``.
    instances : bool
        Split every plane into objects.
    warm_start : bool or None
        Start every plane after the first from the plane before; None: only
        with box prompts.

    Returns
    -------
    StackResult
        Per-plane results and the stacked labels, denoised image and objects.

    Examples
    --------
    >>> import numpy as np
    >>> from napari_self2seg.core import Self2SegConfig, DenoiserConfig, PrimalDualConfig
    >>> from napari_self2seg.core.stacks import segment_stack
    >>> rng = np.random.default_rng(0)
    >>> stack = rng.normal(0.2, 0.1, (3, 32, 32)); stack[:, 8:24, 8:24] += 0.6
    >>> cfg = Self2SegConfig(lam=0.02, experts=("constant", "network"), max_outer_iter=2,
    ...                      denoiser=DenoiserConfig(width=4, n_blocks=1, patience=5, average_last=5, max_steps=60),
    ...                      solver=PrimalDualConfig(max_iter=500))
    >>> result = segment_stack(stack, cfg, boxes={1: [(10, 10, 20, 20)], 0: [(0, 0, 6, 32)]}, device="cpu")
    >>> result.labels.shape, int(result.labels[2, 16, 16]), int(result.labels[2, 2, 2])
    ((3, 32, 32), 1, 0)
    """
    final: StackResult | None = None
    for progress in iterate_stack(
        image,
        config,
        boxes=boxes,
        fg_boxes=fg_boxes,
        bg_boxes=bg_boxes,
        plane_boxes=plane_boxes,
        init_mask=init_mask,
        channel_axis=channel_axis,
        seed=seed,
        device=device,
        instances=instances,
        warm_start=warm_start,
    ):
        final = progress.stack if progress.stack is not None else final
    if final is None:  # pragma: no cover - iterate_stack always ends with the stack
        raise RuntimeError("the stack run ended without a result")
    return final
