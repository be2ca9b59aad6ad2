"""The Self2Seg dock widget: inputs, parameters, Run/Stop, live progress.

It only lays out widgets and connects them; the computation is
:func:`napari_self2seg.core.iterate` in a generator worker, and every layer
change happens in the handlers below, on the main thread.
"""

# No "from __future__ import annotations" here: napari reads the Viewer annotation at runtime.

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, ProgressBar, PushButton, Widget, create_widget
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy import compat
from qtpy.QtCore import QEvent, QObject, QThreadPool, QTimer

from .. import __version__
from ..core import LiveParameters, Phase, PlaneState, SegmentationResult, SolverState, iterate, iterate_stack
from ..core.config import AUTO, Self2SegConfig, expert_kinds
from ..core.instances import no_objects_reason
from ..core.measurements import measure_instances, table_csv
from ..core.solver import single_class
from ..output_files import OutputFiles
from ..sample_data import BOX_LAYER_NAME, MAX_WIDGET_CLASS, class_colour
from .boxes import CLASS_FEATURE, BoxPrompts, Geometry, class_of, collect_boxes, plane_index, to_image_pixels
from .layers import Layout, OutputLayers, run_metadata
from .params import ParameterForm, shows_lam
from .plot import energy_plot, loss_plot
from .run_record import RunRecord, StackRun
from .saved_results import file_stem, save_results
from .worker import Self2SegRunError, friendly_message, start_resegment_worker, start_worker

if TYPE_CHECKING:
    from napari.qt.threading import FunctionWorker, GeneratorWorker

logger = logging.getLogger(__name__)

STOP_TIMEOUT_MS = 10_000
"""Longest wait for a stopped run's thread when its inputs or the viewer go away."""


isalive = cast("Callable[[object], bool]", compat.isalive)
getsavefilename = cast("Callable[..., tuple[str, str]]", compat.getsavefilename)
getexistingdirectory = cast("Callable[..., str]", compat.getexistingdirectory)


def wait_for_threads() -> None:
    """Block until worker threads are done (at most STOP_TIMEOUT_MS)."""
    pool = QThreadPool.globalInstance()
    if pool is not None:
        pool.waitForDone(STOP_TIMEOUT_MS)


NO_CHANNELS = "none (grey, or planes of a stack)"
FIRST_AXIS_CHANNELS = "axis 0 holds channels"
MAX_CHANNELS = 16


def class_label(index: int, classes: int) -> str:
    """How the widget names a class: 0 background; with two classes, 1 foreground."""
    if index == 0:
        return "class 0 (background)"
    return "class 1 (foreground)" if index == 1 and classes <= 2 else f"class {index}"


def class_choices(classes: int) -> list[tuple[str, int]]:
    """ComboBox choices for classes 0 … classes - 1."""
    names = {0: "background", 1: "foreground" if classes <= 2 else "object"}
    return [(f"{k} · {names.get(k, 'object')}", k) for k in range(classes)]


class InputError(ValueError):
    """Something the user has to fix before a run can start."""


PHASE_WORDS = {
    Phase.INIT: "initialising",
    Phase.TRAIN: "training the denoisers",
    Phase.SEGMENT: "drawing the mask",
    Phase.DONE: "done",
}
WHOLE_IMAGE_SERIES = ("whole image", "#bbbbbb")
EXPERT_SERIES = (("background", "#00c8ff"), ("foreground", "#ffd700"))


def loss_series(state: SolverState) -> tuple[str, str]:
    """Return the name and colour of the loss curve a training snapshot belongs to."""
    if state.expert is None:
        return WHOLE_IMAGE_SERIES
    return EXPERT_SERIES[state.expert] if state.expert < len(EXPERT_SERIES) else (f"class {state.expert}", "#c080ff")


def phase_words(state: SolverState) -> str:
    """Say in words what the run is doing, naming the region whose denoiser trains."""
    if state.phase is Phase.TRAIN and state.expert is not None:
        return f"training the {loss_series(state)[0]} denoiser"
    return PHASE_WORDS[state.phase]


def run_fraction(state: SolverState, max_outer: int) -> float:
    """Share of the run done: expert phases and segmentation steps alternate, 2 max_outer + 1 phases at most."""
    if state.phase is Phase.DONE:
        return 1.0
    k = state.outer_iteration
    if state.phase is Phase.SEGMENT:
        done = 2 * k - (0.5 if state.labels_step < k else 0.0)
    elif state.phase is Phase.INIT:
        done = 0.0
    else:
        done = 2 * k + 0.5
    return min(max(done / (2 * max_outer + 1), 0.0), 0.99)


class CloseWatcher(QObject):
    """Event filter that records a window's Close event."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.closed = False

    def eventFilter(self, watched: QObject | None, event: QEvent | None) -> bool:
        """Note a Close event; never consume it."""
        if event is not None and event.type() == QEvent.Type.Close:
            self.closed = True
        return False


class Self2SegWidget(Container[Widget]):
    """Dock widget: draw boxes, run Self2Seg, watch and tune the result.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer this widget is docked in (napari passes it).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self.viewer = viewer
        self.image_layer = cast("ComboBox", create_widget(annotation=napari.layers.Image, label="image"))
        self.boxes_layer = cast("ComboBox", create_widget(annotation=napari.layers.Shapes, label="boxes"))
        self.channels = ComboBox(
            label="channels", choices=[NO_CHANNELS, FIRST_AXIS_CHANNELS], value=NO_CHANNELS, visible=False
        )
        self.channels.tooltip = (
            "This image has a short first axis: is it channels (e.g. two dyes) or planes of a stack? "
            "Channels are segmented together, planes one at a time."
        )
        self.all_planes = CheckBox(text="run on all planes", value=False, visible=False)
        self.all_planes.tooltip = (
            "Segment every plane of the stack in order, each started from the plane before (faster than one by "
            "one). The boxes drawn on one plane apply to every plane; a plane with boxes of its own uses those."
        )
        self.follow_planes = CheckBox(text="follow the running plane", value=True, visible=False)
        self.follow_planes.tooltip = "Move the view to each plane as it starts."
        self.new_boxes = PushButton(text="New box layer")
        self.box_class = ComboBox(label="box class", choices=class_choices(2), value=1)
        self.box_class.tooltip = (
            "Class of the next rectangle: 0 is the background, 1, 2, … are the objects. Keys 0–9 (or B/F for 0/1) "
            "choose it while the box layer is selected."
        )
        self.add_class = PushButton(text="Add class")
        self.add_class.tooltip = "Add one more class (up to 9) and draw its boxes next."
        self.params = ParameterForm()
        self.run_button = PushButton(text="Run")
        self.undo_lam = PushButton(text="Back to the run's λ", enabled=False)
        self.undo_lam.tooltip = "Show the run's own mask again (the λ the run finished with)."
        self.show_denoised = CheckBox(text="show denoised image", value=False)
        self.show_denoised.tooltip = (
            "Show the denoised image layer (between your image and the mask). Off: your image stays visible."
        )
        self.save_table = PushButton(text="Save table…", enabled=False)
        self.save_table.tooltip = (
            "Save one row per object (class, area, centroid, bounding box, shape, mean and max brightness on the "
            "image and on the denoised image) as a CSV file for a spreadsheet. Needs 'split into objects'."
        )
        self.save_results_button = PushButton(text="Save results…", enabled=False)
        self.save_results_button.tooltip = (
            "Save the mask, the denoised image (and objects with their table) as TIFF/CSV files with a JSON record "
            "of the settings, versions and energies — the files `self2seg batch` writes."
        )
        self.progress = ProgressBar(value=0, min=0, max=100, label="progress")
        self.status = Label(value="Draw a box in the background (class 0) and in each object class, then press Run.")
        self.box_class_index = 1
        super().__init__(
            widgets=[
                self.image_layer,
                self.channels,
                Container(widgets=[self.all_planes, self.follow_planes], layout="horizontal", labels=False),
                self.boxes_layer,
                self.new_boxes,
                Container(widgets=[self.box_class, self.add_class], layout="horizontal"),
                self.params,
                self.run_button,
                Container(widgets=[self.undo_lam, self.show_denoised], layout="horizontal", labels=False),
                Container(widgets=[self.save_table, self.save_results_button], layout="horizontal", labels=False),
                self.progress,
                self.status,
            ]
        )
        self.energy_plot = energy_plot()
        self.loss_plot = loss_plot()
        layout = self.native.layout()
        if layout is not None:
            layout.addWidget(self.energy_plot)
            layout.addWidget(self.loss_plot)
        self.status.native.setWordWrap(True)
        self.progress.native.setTextVisible(True)
        self._set_progress(0.0, "idle")
        self.outputs = OutputLayers(viewer)
        self.worker: GeneratorWorker | None = None
        self.reseg_worker: FunctionWorker[SegmentationResult] | None = None
        self._next_lam: float | None = None
        self.run_result: SegmentationResult | None = None
        """The last finished run: every λ change is solved from its stored state."""
        self.result: SegmentationResult | None = None
        """The result shown now: the run's, or a re-solve of it for another λ."""
        self._result_job: RunRecord | None = None
        """The run whose result is shown: λ changes re-solve it and write into its layers."""
        self._job: RunRecord | None = None
        """The run going on now (None when idle)."""
        self._resolves: list[tuple[float, float]] = []
        self._close_watcher = CloseWatcher(self.native)
        self._watching_close = False

        self.new_boxes.changed.connect(self.create_box_layer)
        self.box_class.changed.connect(lambda value: self.set_class(int(value)))
        self.add_class.changed.connect(self.add_box_class)
        self.run_button.changed.connect(self.toggle_run)
        self.undo_lam.changed.connect(self.back_to_run_lambda)
        self.show_denoised.changed.connect(self.outputs.set_denoised_visible)
        self.save_table.changed.connect(lambda: self.save_objects_table())
        self.save_results_button.changed.connect(lambda: self.save_results())
        self.params.lam.changed.connect(self._on_live_parameter)
        self.params.mu.changed.connect(self._on_live_parameter)
        self.image_layer.changed.connect(self._on_image_choice)
        self.image_layer.changed.connect(self._offer_channels)
        self.image_layer.changed.connect(self._offer_planes)
        self.channels.changed.connect(self._offer_planes)
        self.all_planes.changed.connect(self._offer_planes)
        self.boxes_layer.changed.connect(self._offer_layer_classes)
        viewer.layers.events.inserted.connect(self.reset_choices)
        viewer.layers.events.inserted.connect(self._offer_layer_classes)
        viewer.layers.events.removed.connect(self.reset_choices)
        viewer.layers.events.removed.connect(self._on_layer_removed)
        self.native.destroyed.connect(self._quit_quietly)

    # ---------------------------------------------------------------- box prompts
    def create_box_layer(self) -> napari.layers.Shapes:
        """Add a "Self2Seg boxes" Shapes layer matching the image and select it."""
        image = self.image_layer.value
        geometry: dict[str, Any] = {}
        if image is not None:
            geometry = {"ndim": image.ndim, "scale": image.scale, "translate": image.translate}
        layer = self.viewer.add_shapes(
            name=BOX_LAYER_NAME,
            face_color="transparent",
            edge_width=2,
            features={CLASS_FEATURE: np.array([], dtype=int)},
            **geometry,
        )
        self._bind_class_keys(layer)
        self.boxes_layer.value = layer
        self.set_class(self.box_class_index)
        self.viewer.layers.selection.active = layer
        layer.mode = "add_rectangle"
        return layer

    def _bind_class_keys(self, layer: napari.layers.Shapes) -> None:
        """Keys 0–9 choose the class of the next rectangle; B and F are 0 and 1."""
        for key, index in (("b", 0), ("f", 1), *((str(k), k) for k in range(MAX_WIDGET_CLASS + 1))):
            layer.bind_key(key, lambda _layer, index=index: self.set_class(index), overwrite=True)

    def add_box_class(self) -> None:
        """Offer one more class and make it the class of the next rectangle."""
        top = max(len(self.box_class.choices), 2)
        if top > MAX_WIDGET_CLASS:
            self.status.value = f"The widget offers classes 0 to {MAX_WIDGET_CLASS}; scripts can use up to 255."
            return
        self.set_class(top)

    def set_class(self, index: int) -> None:
        """Make the next rectangle drawn a box of class ``index`` (0 = background)."""
        if not 0 <= index <= MAX_WIDGET_CLASS:
            self.status.value = f"Box classes in the widget go from 0 to {MAX_WIDGET_CLASS}."
            return
        self.box_class_index = index
        if len(self.box_class.choices) <= index:
            self.box_class.choices = class_choices(index + 1)
        if self.box_class.value != index:
            self.box_class.value = index
        layer = self.boxes_layer.value
        if layer is not None:
            if CLASS_FEATURE not in layer.features:
                layer.features = self._layer_classes(layer)  # a layer drawn by hand or before classes
            layer.feature_defaults[CLASS_FEATURE] = index
            layer.current_edge_color = class_colour(index)
        self.box_class.native.setStyleSheet(f"font-weight: bold; border: 2px solid {class_colour(index)}")
        self.status.value = f"Next rectangle: a box of {class_label(index, len(self.box_class.choices))}."

    def _layer_classes(self, layer: napari.layers.Shapes) -> dict[str, list[int | None]]:
        """Class index of every shape of a box layer, as features (legacy ``region`` names understood)."""
        return {CLASS_FEATURE: self._shape_classes(layer)}

    @staticmethod
    def _shape_classes(layer: napari.layers.Shapes) -> list[int | None]:
        """Class per shape: the ``class`` feature, else a legacy ``region``; shapes with neither are objects (1)."""
        features = layer.features
        column = CLASS_FEATURE if CLASS_FEATURE in features else "region" if "region" in features else None
        stored = [class_of(v) for v in features[column]] if column is not None else []
        return (stored + [1] * len(layer.data))[: len(layer.data)]

    def _offer_layer_classes(self) -> None:
        """Offer every class a chosen box layer already holds (e.g. a sample's ready-made boxes)."""
        layer = self.boxes_layer.value
        if layer is None:
            return
        drawn = [k for k in self._shape_classes(layer) if k is not None and k <= MAX_WIDGET_CLASS]
        needed = max([*drawn, 1]) + 1
        if len(self.box_class.choices) < needed:
            self.box_class.choices = class_choices(needed)

    def _offer_channels(self) -> None:
        """Show the channel picker for a non-RGB image with a short first axis (channels or a stack?)."""
        image = self.image_layer.value
        offer = image is not None and not image.rgb and image.ndim == 3 and image.data.shape[0] <= MAX_CHANNELS
        self.channels.visible = bool(offer)
        if not offer:
            self.channels.value = NO_CHANNELS

    def _offer_planes(self) -> None:
        """Offer 'run on all planes' for a grey image with plane axes (a z-stack, a time-lapse)."""
        image = self.image_layer.value
        offer = image is not None and image.ndim > 2 and self._channel_layout(image).channel_axis is None
        self.all_planes.visible = bool(offer)
        self.follow_planes.visible = bool(offer and self.all_planes.value)

    def _runs_all_planes(self, image: napari.layers.Image, layout: Layout) -> bool:
        return bool(self.all_planes.value) and image.ndim > 2 and layout.channel_axis is None

    def _channel_layout(self, image: napari.layers.Image) -> Layout:
        """Where the chosen image keeps its channels."""
        if image.rgb:
            return Layout(channel_axis=-1, rgb=True)
        if image.ndim == 3 and self.channels.value == FIRST_AXIS_CHANNELS:
            return Layout(channel_axis=0)
        return Layout()

    def _plane(self, image: napari.layers.Image, layout: Layout) -> tuple[int, ...]:
        """Index of the plane shown now, in the leading axes of the image (none for a multichannel image)."""
        if image.ndim <= 2 or layout.channel_axis is not None:
            return ()
        position = image.world_to_data(self.viewer.dims.point[-image.ndim :])
        return plane_index(position, image.data.shape[:-2])

    def _boxes(self, layer: napari.layers.Shapes, image: napari.layers.Image, plane: tuple[int, ...]) -> BoxPrompts:
        """Rectangles of the box layer in the image's pixel coordinates, by class."""
        n = min(layer.ndim, image.ndim)
        shapes, picture = Geometry(layer.scale, layer.translate), Geometry(image.scale, image.translate)
        vertices = to_image_pixels(layer.data, shapes, picture, n)
        leading = plane[-(n - 2) :] if n > 2 and plane else ()
        return collect_boxes(vertices, list(layer.shape_type), self._shape_classes(layer), leading)

    # ---------------------------------------------------------------- run / stop
    def toggle_run(self) -> None:
        """Run when idle, stop when running."""
        if self.worker is not None:
            self.stop()
        else:
            self.start()

    def _inputs(self) -> RunRecord:
        """Snapshot everything a run needs, on the main thread; raise InputError if unusable."""
        image = self.image_layer.value
        if image is None:
            raise InputError("No image layer: open an image (File ▸ Open, or File ▸ Open Sample ▸ Self2Seg) first.")
        config = self.params.to_config()
        layout = self._channel_layout(image)
        plane = self._plane(image, layout)
        stack = None
        if self._runs_all_planes(image, layout):
            stack = StackRun(data=np.array(np.asarray(image.data), copy=True))  # a copy: the layer is never modified
            data = stack.data[plane]
        else:
            data = np.array(np.asarray(image.data[plane]), copy=True)  # a copy: the layer is never modified
        if layout.rgb and data.shape[-1] == 4:
            data = data[..., :3]  # the alpha channel is transparency, not signal
        boxes: dict[int, tuple[tuple[int, int, int, int], ...]] = {}
        if config.init == "boxes":
            layer = self.boxes_layer.value
            if layer is None:
                raise InputError(
                    "No box layer: press 'New box layer' and draw a box in the background (class 0) and one in "
                    "each object class (1, 2, …)."
                )
            prompts = self._boxes(layer, image, plane)
            if prompts.ignored_shapes:
                show_warning(
                    f"{prompts.ignored_shapes} shape(s) in '{layer.name}' are not rectangles; they are ignored."
                )
            if prompts.missing:
                classes = max(max(prompts.boxes, default=0), 1) + 1
                missing = " and ".join(class_label(k, classes) for k in prompts.missing)
                where = " on this plane" if plane else ""
                if prompts.other_planes:
                    where += f" ({prompts.other_planes} rectangle(s) lie on other planes)"
                raise InputError(
                    f"Draw at least one box of {missing}{where} in '{layer.name}' (choose the box class, or press "
                    "0–9 / B / F on the box layer), or choose another initialisation."
                )
            if stack is not None:
                stack.plane_boxes = self._plane_boxes(layer, image, stack, plane, prompts.boxes)
            elif prompts.other_planes:
                show_info(f"{prompts.other_planes} rectangle(s) on other planes are not used for this plane.")
            boxes = prompts.boxes
            config = self._with_constant_classes(config, max(boxes) + 1)
        else:
            config = self._with_constant_classes(config, config.classes)
            layer = self.boxes_layer.value
            if layer is not None and len(layer.data):
                self._notify(
                    show_info,
                    f"The boxes in '{layer.name}' are not used: initialisation '{config.init}' starts from the "
                    "bright pixels. Choose initialisation 'boxes' to start from your boxes.",
                )
        return RunRecord(
            image=image,
            data=data,
            plane=plane,
            config=config,
            layout=layout,
            class_boxes=boxes,
            boxes=self.boxes_layer.value,
            seed=int(self.params.seed.value),
            device=str(self.params.device.value),
            stack=stack,
        )

    def _plane_boxes(
        self,
        layer: napari.layers.Shapes,
        image: napari.layers.Image,
        stack: StackRun,
        shown: tuple[int, ...],
        shared: dict[int, tuple[tuple[int, int, int, int], ...]],
    ) -> dict[int, dict[int, tuple[tuple[int, int, int, int], ...]]]:
        """Boxes drawn on single planes of an all-planes run (the shown plane's boxes serve every other plane)."""
        own: dict[int, dict[int, tuple[tuple[int, int, int, int], ...]]] = {}
        for number in range(stack.planes):
            plane = stack.index(number)
            if plane == shown:
                continue
            prompts = self._boxes(layer, image, plane)
            if not prompts.boxes or prompts.boxes == shared:
                continue
            if prompts.missing or sorted(prompts.boxes) != sorted(shared):
                raise InputError(
                    f"Plane {plane} has boxes of its own but not of every class of the shown plane "
                    f"({', '.join(map(str, sorted(shared)))}); draw them all there, or delete its boxes to use the "
                    "shown plane's."
                )
            own[number] = prompts.boxes
        return own

    def _with_constant_classes(self, config: Self2SegConfig, classes: int) -> Self2SegConfig:
        """Give the classes listed under 'constant classes' a constant expert (the run has ``classes`` classes)."""
        text = str(self.params.constant_classes.value).replace(",", " ").split()
        if not text:
            return config
        if not all(item.isdigit() for item in text):
            raise InputError(
                f"'constant classes' must list class numbers such as '0 2', got {self.params.constant_classes.value!r}."
            )
        listed = sorted({int(item) for item in text})
        if listed[-1] >= classes:
            raise InputError(
                f"'constant classes' lists class {listed[-1]}, but this run has classes 0 to {classes - 1}: "
                "draw boxes of that class or remove it from the list."
            )
        kinds = list(expert_kinds(config, classes))
        for index in listed:
            kinds[index] = "constant"
        return dataclasses.replace(config, experts=tuple(kinds))

    def start(self) -> None:
        """Validate inputs, then start the worker; problems become notifications."""
        if self.worker is not None:
            return
        try:
            job = self._inputs()
            if job.stack is not None:
                stream: Any = iterate_stack(
                    job.stack.data,
                    job.config,
                    boxes=dict(job.class_boxes) or None,
                    plane_boxes=dict(job.stack.plane_boxes) or None,
                    seed=job.seed,
                    device=job.device,
                    keep_problem=True,  # λ changes re-solve the plane shown
                    instances=bool(self.params.instances.value),
                )
            else:
                stream = iterate(
                    job.data,
                    job.config,
                    boxes=dict(job.class_boxes) or None,
                    channel_axis=job.layout.channel_axis,
                    seed=job.seed,
                    device=job.device,
                    keep_problem=True,  # λ changes re-solve the run's convex problem
                    instances=bool(self.params.instances.value),
                )
        except ValueError as error:
            self._report_error(str(error))
            return
        job.started = time.perf_counter()
        job.backup = self.outputs.backup(job.image, job.plane, job.layout)
        job.previous = (self.run_result, self.result, self._result_job)  # put back if this run fails
        self._watch_window_close()
        self._job = job
        self.run_button.text = "Stop"
        self.undo_lam.enabled = False
        self.loss_plot.clear()
        self.energy_plot.clear()
        self._resolves = []
        self._set_progress(0.0, "starting")
        self.status.value = "Starting…"
        handlers: dict[str, Callable[..., Any]] = {
            "on_error": self._on_error,
            "on_finished": self._on_finished,
            "on_aborted": self._on_aborted,
        }
        if job.stack is None:
            self.worker = start_worker(stream, on_yield=self._on_state, **handlers)
        else:
            self.worker = start_worker(stream, on_yield=self._on_plane_state, **handlers)

    def stop(self) -> None:
        """Ask the running job to stop at its next snapshot (within ~0.25 s of work)."""
        if self.worker is not None:
            self.status.value = "Stopping…"
            self.worker.quit()

    def _quit_quietly(self, *_: Any) -> None:
        if self.worker is not None:
            self.worker.quit()
            wait_for_threads()

    # ---------------------------------------------------------------- feedback
    def _set_progress(self, fraction: float, text: str) -> None:
        """Show a share of the run and what it is doing, e.g. "40% · training the foreground denoiser"."""
        self.progress.value = round(100 * fraction)
        self.progress.native.setFormat(f"%p% · {text}")

    def _watch_window_close(self) -> None:
        """Learn when the viewer's window closes (it removes every layer first, which is not a deletion)."""
        window = self.native.window()
        if window is not None and not self._watching_close:
            window.installEventFilter(self._close_watcher)
            self._watching_close = True

    def _viewer_open(self) -> bool:
        """Tell whether the widget and the viewer window are still up (not being torn down)."""
        return isalive(self.native) and not self._close_watcher.closed

    def _notify(self, show: Callable[[str], Any], message: str) -> None:
        """Show a notification after the current event has been handled.

        Deferred to the event loop, so that it is never raised from inside a
        layer event, and skipped when the viewer turns out to be closing
        (closing removes every layer first; that is no deletion to report).
        """
        self._watch_window_close()

        def later() -> None:
            if self._viewer_open():
                show(message)

        QTimer.singleShot(0, later)

    def _report_error(self, message: str) -> None:
        self.status.value = message
        show_error(message)

    # ---------------------------------------------------------------- worker handlers (main thread)
    def _metadata(self, config: Any, energies: tuple[float, ...], device: str, seed: int) -> dict[str, Any]:
        return run_metadata(config, seed, energies, device, __version__)

    def _on_state(self, state: SolverState) -> None:
        if not isalive(self.native):
            return
        job = self._job
        if job is None:  # pragma: no cover - a snapshot always belongs to a started run
            return
        pending, job.pending = job.pending, None
        if pending is not None and self.worker is not None:
            self.worker.send(pending)
        image = job.image
        if image not in self.viewer.layers:
            return  # the run is being stopped (see _on_layer_removed)
        mask = None
        # a new complete mask (after a restart, the steps count again from 1)
        if state.labels_step > 0 and state.labels is not job.last_labels:
            mask = state.labels
            job.mask_step, job.last_labels = state.labels_step, state.labels
            if job.first_mask_s is None:
                job.first_mask_s = time.perf_counter() - job.started
                # this run's outputs replace the previous ones: λ changes now belong to this run
                self.run_result = self.result = None
        denoised = state.denoised if job.last_denoised is not state.denoised else None
        job.last_denoised = state.denoised
        if mask is not None or denoised is not None:
            meta = self._metadata(job.config, state.energies, job.device, job.seed)
            self.outputs.write(image, job.plane, meta, mask=mask, denoised=denoised, layout=job.layout)
        if state.loss is not None and state.phase in (Phase.INIT, Phase.TRAIN):
            name, colour = loss_series(state)
            job.losses += 1
            self.loss_plot.append(name, colour, (job.losses, state.loss))
        self.energy_plot.set_series("run", "#ffd700", list(enumerate(state.energies)))
        if state.lam is None:  # not chosen yet, or chosen again by a restart
            job.lam_shown = None
        elif job.config.lam == AUTO and job.lam_shown != state.lam:  # chosen, or derived again
            job.lam_shown = state.lam
            if self.params.lam_auto.value:  # unless the user typed a λ meanwhile
                self.params.show_chosen_lam(state.lam)
        if state.result is not None:
            self._finish(state.result, state.elapsed)
            return
        self._set_progress(run_fraction(state, job.config.max_outer_iter), phase_words(state))
        self.status.value = f"Outer iteration {state.outer_iteration} · {state.message} · {state.elapsed:.1f} s"

    def _on_plane_state(self, progress: PlaneState) -> None:
        """Handle a snapshot of an all-planes run: switch planes, then show it as a single run's snapshot."""
        job = self._job
        if not isalive(self.native) or job is None or job.stack is None:
            return
        stack = job.stack
        if progress.plane != stack.current:  # the next plane starts: its own backup, mask count and view
            stack.current = progress.plane
            job.plane = stack.index(progress.plane)
            job.data = stack.data[job.plane]
            job.mask_step, job.last_labels, job.last_denoised = 0, None, None
            if job.image in self.viewer.layers:
                job.backup = self.outputs.backup(job.image, job.plane, job.layout)
                if self.follow_planes.value:
                    self._show_plane(job.image, job.plane)
        state = progress.state
        self._on_state(state)
        if job.image not in self.viewer.layers:
            return
        where = f"Plane {progress.plane + 1}/{progress.planes}"
        if state.result is not None:
            if job.mask_step > 0:
                stack.results[job.plane] = state.result
            if progress.stack is not None:
                collapsed_planes = progress.stack.degenerate_planes
                unreliable_planes = progress.stack.unreliable_planes
                note = (
                    f" Planes {', '.join(map(str, collapsed_planes))} collapsed (see their masks)."
                    if collapsed_planes
                    else ""
                )
                if unreliable_planes:
                    note += (
                        f" In planes {', '.join(map(str, unreliable_planes))} the experts barely told the boxes "
                        "apart: check those masks."
                    )
                self._set_progress(1.0, "done")
                self.status.value = (
                    f"All {progress.planes} planes done in {state.elapsed:.1f} s.{note} Move λ to re-segment the "
                    "plane shown without retraining."
                )
            else:
                self.status.value = f"{where} done ({state.result.stop_reason}); next plane…"
            return
        fraction = (progress.plane + run_fraction(state, job.config.max_outer_iter)) / progress.planes
        self._set_progress(fraction, f"plane {progress.plane + 1}/{progress.planes}: {phase_words(state)}")
        self.status.value = f"{where} · {self.status.value}"

    def _show_plane(self, image: napari.layers.Image, plane: tuple[int, ...]) -> None:
        """Move the viewer's sliders to ``plane`` of ``image``."""
        world = image.data_to_world((*plane, 0, 0))
        first = self.viewer.dims.ndim - image.ndim
        for offset, value in enumerate(world[: len(plane)]):
            self.viewer.dims.set_point(first + offset, float(value))

    def _finish(self, result: SegmentationResult, elapsed: float) -> None:
        """Show a finished run: its mask, or a clear warning when it ended in one region."""
        job = self._job
        if job is None:  # pragma: no cover - a result always belongs to a started run
            return
        steps = f"{result.outer_iterations} segmentation step{'s' if result.outer_iterations != 1 else ''}"
        self.run_result = self.result = result
        self._result_job = job
        if job.mask_step == 0:
            # no segmentation of this run kept two regions: nothing to show, the previous outputs come back
            # (λ changes re-solve this run's stored state, which is the way out)
            self.outputs.restore(job.image, job.plane, job.backup, job.layout)
            self.result = job.previous[1]
            self.save_table.enabled = False
            self.save_results_button.enabled = self.result is not None
        else:
            self._write_outputs(job, result)
        if result.degenerate:
            if job.mask_step == 0:
                collapse = (
                    "made the whole image one region (or gave one region the other's boxes)"
                    if result.classes == 2
                    else "made a class vanish (or gave most of its boxes to other classes)"
                )
                message = (
                    f"The first segmentation {collapse} with λ = {result.lam:g}, so "
                    "this run has no mask to show (the previous results are unchanged). Lower λ now: it "
                    "re-segments in milliseconds, without retraining. Or draw larger boxes and run again."
                )
            else:
                ended = "in one region" if result.classes == 2 else "with a collapsed class"
                message = (
                    f"The run ended {ended}: {result.stop_reason}. The mask of step {job.mask_step} is "
                    "shown. Lower λ now to re-segment in milliseconds, without retraining."
                )
            if result.reliability_warning is not None:
                message += f" Also, {result.reliability_warning}."
            self._set_progress(self.progress.value / 100, "stopped: one region")
            self.status.value = message
            self._notify(show_warning, message)
        else:
            self._set_progress(1.0, "done")
            chosen = f"λ = {result.lam:.3g} was chosen from the image. " if result.automatic_lam else ""
            if AUTO in job.config.experts:
                chosen += f"{models_chosen(result.config.experts)} (chosen from the boxes). "
            if result.classes > 2:
                shares = np.bincount(result.labels.ravel(), minlength=result.classes) / result.labels.size
                chosen += "Classes: " + ", ".join(f"{k}: {100 * f:.0f} %" for k, f in enumerate(shares)) + ". "
            self.status.value = (
                f"Done in {elapsed:.1f} s after {steps} ({result.stop_reason}). {chosen}"
                "Move λ to re-segment without retraining; tick 'show denoised image' to see the denoising."
            )
            if result.reliability_warning is not None:
                warning = f"Done, but {result.reliability_warning}."
                self.status.value = f"{warning} {self.status.value}"
                self._notify(show_warning, warning)

    def _on_error(self, error: BaseException) -> None:
        if isinstance(error, (ValueError, Self2SegRunError)):
            message = str(error)
        elif isinstance(error, RuntimeError):
            message = friendly_message(error)
        else:
            logger.error("Self2Seg failed", exc_info=(type(error), error, error.__traceback__))
            first = str(error).strip().splitlines()[0] if str(error).strip() else "(no message)"
            message = (
                f"Self2Seg failed with an unexpected {type(error).__name__}: {first}. "
                "This is a bug; the full traceback is in the log (terminal or napari's console)."
            )
        job = self._job
        if job is not None and self.worker is not None and job.image in self.viewer.layers:
            self.outputs.restore(job.image, job.plane, job.backup, job.layout)  # a failed run replaces nothing
            if job.stack is not None and job.stack.results:  # an all-planes run keeps its finished planes
                message += f" The {len(job.stack.results)} planes finished before are kept."
            else:
                self.run_result, self.result, self._result_job = job.previous
            self.save_table.enabled = self._result_job is not None and self._result_job.table is not None
            self.save_results_button.enabled = self._result_job is not None and self.result is not None
            message += " The previous mask and denoised image are kept."
            self._set_progress(self.progress.value / 100, "failed")
        self._report_error(message)

    def _on_aborted(self) -> None:
        if not isalive(self.native):
            return
        job = self._job
        if job is None:  # pragma: no cover - only a started run can be aborted
            return
        reason = job.stop_reason or "Stopped."
        if job.image not in self.viewer.layers:
            self.status.value = reason
        elif job.stack is not None:
            running = job.stack.index(max(job.stack.current, 0))
            if job.mask_step > 0:
                shown = f"plane {running} keeps the mask of its segmentation step {job.mask_step}"
            else:
                self.outputs.restore(job.image, job.plane, job.backup, job.layout)
                shown = f"plane {running} had no complete mask yet and is as before"
            finished = len(job.stack.results)
            self.status.value = f"{reason} {finished} of {job.stack.planes} planes are finished and kept; {shown}."
        elif job.mask_step > 0:
            self.status.value = (
                f"{reason} The mask of segmentation step {job.mask_step} is complete and kept; "
                "press Run again to tune λ live (λ changes need a finished run)."
            )
        else:
            self.outputs.restore(job.image, job.plane, job.backup, job.layout)
            self.status.value = (
                f"{reason} No mask was complete yet, so nothing from this run is kept; the previous results "
                "are unchanged."
            )
        self._set_progress(self.progress.value / 100, "stopped")

    def _on_finished(self) -> None:
        self.worker = None
        if not isalive(self.native):  # the viewer was closed
            return
        self.run_button.text = "Run"
        self._update_undo()

    # ---------------------------------------------------------------- live changes
    def _on_live_parameter(self) -> None:
        lam, mu = float(self.params.lam.value), float(self.params.mu.value)
        if self.worker is not None and self._job is not None:
            # Sent with the next snapshot: a generator cannot take a value before its first yield.
            self._job.pending = LiveParameters(lam=lam, mu=mu)
            self.status.value = f"λ = {lam:g}, µ = {mu:g} take effect at the next segmentation step."
            return
        if self.run_result is None or self._result_job is None or self._result_job.image not in self.viewer.layers:
            return
        if self._result_job.stack is not None and not self._select_shown_plane(self._result_job):
            return
        # Re-segment in a thread; while one runs, only the latest λ is kept and solved next.
        self._next_lam = lam
        if self.reseg_worker is None:
            self._start_resegment()

    def _select_shown_plane(self, job: RunRecord) -> bool:
        """Make the plane shown the one λ changes re-solve (all-planes runs); False if it has no result."""
        if job.stack is None:  # pragma: no cover - only called for all-planes runs
            return True
        plane = self._plane(job.image, job.layout)
        result = job.stack.results.get(plane)
        if result is None:
            self.status.value = f"Plane {plane} has no finished result to re-segment; show a plane the run finished."
            return False
        if plane != job.plane or self.run_result is not result:
            job.plane, job.data = plane, job.stack.data[plane]
            self.run_result = self.result = result
        return True

    def back_to_run_lambda(self) -> None:
        """Set λ back to the value the run finished with, which shows the run's own mask."""
        if self.run_result is not None:
            self.params.lam.value = self.run_result.lam

    def _update_undo(self) -> None:
        run = self.run_result
        self.undo_lam.enabled = bool(
            run is not None and self.worker is None and not shows_lam(float(self.params.lam.value), run.lam)
        )
        if run is not None:
            self.undo_lam.text = f"Back to the run's λ ({run.lam:g})"

    def _show(self, result: SegmentationResult) -> None:
        job = self._result_job
        if job is None:  # pragma: no cover - a re-solve always belongs to a finished run
            return
        self._write_outputs(job, result)
        self.result = result

    def _write_outputs(self, job: RunRecord, result: SegmentationResult) -> None:
        """Write a result's classes, denoised image and (if split) objects with their table into the layers."""
        meta = self._metadata(result.config, result.energies, result.device, job.seed)
        objects, table = None, None
        if result.instances is not None:
            objects = result.instances.labels
            table = measure_instances(result.instances, job.data, result.denoised, channel_axis=job.layout.channel_axis)
        job.table = table
        self.outputs.write(
            job.image,
            job.plane,
            meta,
            mask=result.labels,
            denoised=result.denoised,
            objects=objects,
            features=table,
            layout=job.layout,
        )
        self.save_table.enabled = table is not None
        self.save_results_button.enabled = True
        if result.instances is not None and result.instances.count == 0:
            self._notify(
                show_warning,
                f"{no_objects_reason(result.config.instances).capitalize()}. Lower λ or the smallest object size.",
            )

    def save_objects_table(self, path: str | os.PathLike[str] | None = None) -> Path | None:
        """Write the table of the objects shown to a CSV file (asks where when ``path`` is None).

        Written through :class:`OutputFiles`, so a failure never leaves a half-written table;
        returns the path written, or None if nothing was saved.
        """
        job = self._result_job
        table = job.table if job is not None else None
        if table is None:
            self._report_error("No objects to save: tick 'split into objects' and press Run first.")
            return None
        if path is None:
            chosen, _ = getsavefilename(self.native, "Save the objects table", "objects.csv", "CSV (*.csv)")
            if not chosen:
                return None
            path = chosen
        target = Path(path)
        try:
            with OutputFiles({"the table": target}) as outputs:  # written all or nothing, as the CLI's outputs
                outputs.write_text("the table", table_csv(table))
        except (ValueError, OSError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            self._report_error(f"Could not save the table to {str(target)!r}: {reason}.")
            return None
        self.status.value = f"Saved {len(table['label'])} objects to {target}."
        return target

    def save_results(self, folder: str | os.PathLike[str] | None = None) -> dict[str, Path] | None:
        """Write the shown results of the last run with a provenance record into a folder (asks which if None).

        The files are those of ``self2seg batch`` (``NAME_mask.tif``, ``NAME_denoised.tif``,
        ``NAME_labels.tif``/``NAME_table.csv`` with objects, ``NAME.json``), written all or nothing;
        returns them, or None if nothing was saved.
        """
        job = self._result_job
        if job is None or self.result is None or job.image not in self.viewer.layers:
            self._report_error("No results to save: press Run first.")
            return None
        if folder is None:
            chosen = getexistingdirectory(self.native, "Save the results into a folder")
            if not chosen:
                return None
            folder = chosen
        results = dict(job.stack.results) if job.stack is not None else {job.plane: self.result}
        if job.stack is not None and self.result is not None:
            results[job.plane] = self.result  # the plane shown may have been re-solved for another λ
        mask, denoised = self.outputs.mask_layer(job.image), self.outputs.denoised_layer(job.image)
        objects = self.outputs.objects_layer(job.image)
        source = getattr(job.image.source, "path", None)
        name = file_stem(job.image.name)
        try:
            written = save_results(
                Path(folder),
                name,
                source=np.asarray(job.image.data),
                source_path=str(source) if source else None,
                mask=np.asarray(mask.data) if mask is not None else np.zeros(job.image.data.shape[-2:], np.uint8),
                denoised=np.asarray(denoised.data) if denoised is not None else None,
                objects=np.asarray(objects.data) if objects is not None else None,
                results=results,
                boxes=job.class_boxes,
                seed=job.seed,
            )
        except (ValueError, OSError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            self._report_error(f"Could not save the results into {str(folder)!r}: {reason}.")
            return None
        self.status.value = f"Saved {', '.join(path.name for path in written.values())} into {folder}."
        return written

    def _start_resegment(self) -> None:
        lam, self._next_lam = self._next_lam, None
        run, job = self.run_result, self._result_job
        if lam is None or run is None or job is None:
            return
        self._update_undo()
        if shows_lam(lam, run.lam):
            # the run's own λ: its stored mask, exactly (no solve)
            if run.degenerate and job.mask_step == 0:
                self.status.value = f"λ = {lam:g} is the run's λ, which made the whole image one region."
                return
            self._show(run)
            self.status.value = f"Back to the run's mask (λ = {lam:g})."
            return
        started = time.perf_counter()
        self.status.value = f"Re-segmenting with λ = {lam:g}…"

        def on_returned(result: SegmentationResult) -> None:
            if not self._viewer_open() or self._result_job is not job or self.run_result is not run:
                return  # a new run replaced this one meanwhile: its results win
            if job.image not in self.viewer.layers:
                return
            if result.degenerate:
                shown = self.result.lam if self.result is not None else run.lam
                everything = single_class(result.labels, result.classes)
                what = f"the whole image {everything}" if everything else "a class vanish"
                message = (
                    f"λ = {lam:g} makes {what}. The mask shown is still the one for "
                    f"λ = {shown:g}; lower λ or press 'Back to the run's λ'."
                )
                self.status.value = message
                self._notify(show_warning, message)
                return
            self._show(result)
            self._resolves = [*self._resolves[-7:], (lam, result.energies[0])]  # the shown re-solves only
            n = len(run.energies)
            self.energy_plot.set_series(
                "λ re-solves",
                "#ff6060",
                [(n + i, e) for i, (_, e) in enumerate(self._resolves)],
                [f"λ={v:g}" for v, _ in self._resolves],
                line=False,
            )
            self.status.value = (
                f"Re-segmented with λ = {lam:g} in {time.perf_counter() - started:.2f} s (denoisers kept)."
            )

        self.reseg_worker = start_resegment_worker(
            run,
            lam,
            on_returned=on_returned,
            on_error=self._on_error,
            on_finished=self._on_resegment_finished,
        )

    def _on_resegment_finished(self) -> None:
        self.reseg_worker = None
        if isalive(self.native) and self.worker is None:
            self._start_resegment()  # a λ chosen while the last one was solved

    def _on_image_choice(self) -> None:
        if self.worker is not None:
            show_info("The running job keeps using the image it started with; the new choice applies to the next run.")

    def _on_layer_removed(self, event: Any) -> None:
        removed = event.value
        if self.reseg_worker is not None and self._result_job is not None and removed is self._result_job.image:
            wait_for_threads()  # never emit into Qt objects that are being deleted
        job = self._job
        stopping = job is not None and job.stop_reason is not None  # a second input of the same run went
        if self.worker is not None and job is not None and removed in (job.image, job.boxes) and not stopping:
            # Also what happens when the viewer closes: wait for the thread, so that it never
            # emits into Qt objects that are being deleted.
            self.worker.quit()
            wait_for_threads()
            message = f"Layer '{removed.name}' was deleted during the run, so the run was stopped."
            job.stop_reason = message
            if isalive(self.native):
                self.status.value = message
                self._notify(show_warning, message)


def models_chosen(kinds: tuple[str, ...]) -> str:
    """Say in words which model each region got, e.g. 'Models: background — a denoiser, objects — mean brightness'."""
    words = {"constant": "mean brightness", "network": "a denoiser"}
    if len(set(kinds)) == 1:
        return f"Every region is modelled by {words.get(kinds[0], kinds[0])}"
    names = ["background", *(f"class {k}" if len(kinds) > 2 else "objects" for k in range(1, len(kinds)))]
    return "Models: " + ", ".join(f"{name} — {words.get(kind, kind)}" for name, kind in zip(names, kinds, strict=True))
