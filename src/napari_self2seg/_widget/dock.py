"""The Self2Seg dock widget: inputs, parameters, Run/Stop, live progress.

It only lays out widgets and connects them; the computation is
:func:`napari_self2seg.core.iterate` in a generator worker, and every layer
change happens in the handlers below, on the main thread.
"""

# No "from __future__ import annotations" here: napari reads the Viewer annotation at runtime.

import time
from typing import TYPE_CHECKING, Any, cast

import napari
import numpy as np
from magicgui.widgets import Container, Label, ProgressBar, PushButton, Widget, create_widget
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy import compat
from qtpy.QtCore import QThreadPool

from .. import __version__
from ..core import LiveParameters, Phase, SegmentationResult, SolverState, iterate
from ..sample_data import BOX_LAYER_NAME, REGION_COLOURS
from .boxes import REGIONS, BoxPrompts, collect_boxes
from .layers import OutputLayers, run_metadata
from .params import ParameterForm
from .plot import EnergyPlot
from .worker import friendly_message, start_resegment_worker, start_worker

if TYPE_CHECKING:
    from collections.abc import Callable

    from magicgui.widgets import ComboBox
    from napari.qt.threading import FunctionWorker, GeneratorWorker

STOP_TIMEOUT_MS = 10_000
"""Longest wait for a stopped run's thread when its inputs or the viewer go away."""


isalive = cast("Callable[[object], bool]", compat.isalive)


def wait_for_threads() -> None:
    """Block until worker threads are done (at most STOP_TIMEOUT_MS)."""
    pool = QThreadPool.globalInstance()
    if pool is not None:
        pool.waitForDone(STOP_TIMEOUT_MS)


class InputError(ValueError):
    """Something the user has to fix before a run can start."""


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
        self.new_boxes = PushButton(text="New box layer")
        self.fg_button = PushButton(text="Foreground box (F)")
        self.bg_button = PushButton(text="Background box (B)")
        self.params = ParameterForm()
        self.run_button = PushButton(text="Run")
        self.progress = ProgressBar(value=0, min=0, max=0, label="progress")
        self.status = Label(value="Draw a foreground and a background box, then press Run.")
        self.region = "foreground"
        super().__init__(
            widgets=[
                self.image_layer,
                self.boxes_layer,
                self.new_boxes,
                Container(widgets=[self.fg_button, self.bg_button], layout="horizontal", labels=False),
                self.params,
                self.run_button,
                self.progress,
                self.status,
            ]
        )
        self.plot = EnergyPlot()
        layout = self.native.layout()
        if layout is not None:
            layout.addWidget(self.plot)
        self.status.native.setWordWrap(True)
        self.outputs = OutputLayers(viewer)
        self.worker: GeneratorWorker | None = None
        self.reseg_worker: FunctionWorker[SegmentationResult] | None = None
        self._next_lam: float | None = None
        self.result: SegmentationResult | None = None
        self._job: dict[str, Any] = {}

        self.new_boxes.changed.connect(self.create_box_layer)
        self.fg_button.changed.connect(lambda: self.set_region("foreground"))
        self.bg_button.changed.connect(lambda: self.set_region("background"))
        self.run_button.changed.connect(self.toggle_run)
        self.params.lam.changed.connect(self._on_live_parameter)
        self.params.mu.changed.connect(self._on_live_parameter)
        self.image_layer.changed.connect(self._on_image_choice)
        viewer.layers.events.inserted.connect(self.reset_choices)
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
            features={"region": np.array([], dtype=object)},
            **geometry,
        )
        layer.bind_key("f", lambda _layer: self.set_region("foreground"), overwrite=True)
        layer.bind_key("b", lambda _layer: self.set_region("background"), overwrite=True)
        self.boxes_layer.value = layer
        self.set_region("foreground")
        self.viewer.layers.selection.active = layer
        layer.mode = "add_rectangle"
        return layer

    def set_region(self, region: str) -> None:
        """Make the next rectangle drawn a foreground or background box."""
        self.region = region
        layer = self.boxes_layer.value
        if layer is not None:
            layer.feature_defaults["region"] = region
            layer.current_edge_color = REGION_COLOURS[region]
        bold = "font-weight: bold; border: 2px solid {}"
        self.fg_button.native.setStyleSheet(bold.format(REGION_COLOURS["foreground"]) if region == "foreground" else "")
        self.bg_button.native.setStyleSheet(bold.format(REGION_COLOURS["background"]) if region == "background" else "")
        self.status.value = f"Next rectangle: {region} box."

    def _plane(self, image: napari.layers.Image) -> tuple[int, ...]:
        """Index of the plane shown now, in the leading axes of the image."""
        if image.ndim <= 2:
            return ()
        position = image.world_to_data(self.viewer.dims.point[-image.ndim :])
        leading = np.round(np.asarray(position)[:-2]).astype(int)
        limits = np.asarray(image.data.shape[:-2]) - 1
        return tuple(int(v) for v in np.clip(leading, 0, limits))

    def _boxes(self, layer: napari.layers.Shapes, image: napari.layers.Image, plane: tuple[int, ...]) -> BoxPrompts:
        """Rectangles of the box layer in the image's pixel coordinates."""
        n = min(layer.ndim, image.ndim)
        scale_s, trans_s = np.asarray(layer.scale)[-n:], np.asarray(layer.translate)[-n:]
        scale_i, trans_i = np.asarray(image.scale)[-n:], np.asarray(image.translate)[-n:]
        vertices = [((np.asarray(v)[:, -n:] * scale_s + trans_s) - trans_i) / scale_i for v in layer.data]
        stored = [str(r) for r in layer.features["region"]] if "region" in layer.features else []
        regions = (stored + ["foreground"] * len(vertices))[: len(vertices)]  # shapes without a region: foreground
        return collect_boxes(vertices, list(layer.shape_type), regions, plane[-(n - 2) :] if n > 2 else ())

    # ---------------------------------------------------------------- run / stop
    def toggle_run(self) -> None:
        """Run when idle, stop when running."""
        if self.worker is not None:
            self.stop()
        else:
            self.start()

    def _inputs(self) -> dict[str, Any]:
        """Snapshot everything a run needs, on the main thread; raise InputError if unusable."""
        image = self.image_layer.value
        if image is None:
            raise InputError("No image layer: open an image (File ▸ Open, or File ▸ Open Sample ▸ Self2Seg) first.")
        if image.rgb:
            raise InputError(
                f"'{image.name}' is an RGB image, which is not supported yet: split its channels "
                "(right-click the layer ▸ Split RGB) and pick one."
            )
        config = self.params.to_config()
        plane = self._plane(image)
        data = np.array(np.asarray(image.data[plane]), copy=True)  # a copy: the layer is never modified
        fg: tuple[tuple[int, int, int, int], ...] = ()
        bg: tuple[tuple[int, int, int, int], ...] = ()
        if config.init == "boxes":
            layer = self.boxes_layer.value
            if layer is None:
                raise InputError("No box layer: press 'New box layer' and draw a foreground and a background box.")
            prompts = self._boxes(layer, image, plane)
            if prompts.ignored_shapes:
                show_warning(
                    f"{prompts.ignored_shapes} shape(s) in '{layer.name}' are not rectangles; they are ignored."
                )
            if not prompts.foreground or not prompts.background:
                missing = " and ".join(
                    r for r, b in zip(REGIONS, (prompts.foreground, prompts.background), strict=True) if not b
                )
                where = " on this plane" if plane else ""
                if prompts.other_planes:
                    where += f" ({prompts.other_planes} rectangle(s) lie on other planes)"
                raise InputError(
                    f"Draw at least one {missing} box{where} in '{layer.name}' "
                    "(use the Foreground/Background buttons or the F/B keys), or choose another initialisation."
                )
            if prompts.other_planes:
                show_info(f"{prompts.other_planes} rectangle(s) on other planes are not used for this plane.")
            fg, bg = prompts.foreground, prompts.background
        return {
            "image": image,
            "data": data,
            "plane": plane,
            "config": config,
            "fg": fg,
            "bg": bg,
            "boxes": self.boxes_layer.value,
            "seed": int(self.params.seed.value),
            "device": str(self.params.device.value),
        }

    def start(self) -> None:
        """Validate inputs, then start the worker; problems become notifications."""
        if self.worker is not None:
            return
        try:
            job = self._inputs()
            stream = iterate(
                job["data"],
                job["config"],
                fg_boxes=job["fg"],
                bg_boxes=job["bg"],
                seed=job["seed"],
                device=job["device"],
            )
        except ValueError as error:
            self._report_error(str(error))
            return
        job["started"] = time.perf_counter()
        job["first_mask_s"] = None
        self._job = job
        self.result = None
        self.run_button.text = "Stop"
        self.progress.max = 0  # busy indicator
        self.status.value = "Starting…"
        self.worker = start_worker(
            stream,
            on_yield=self._on_state,
            on_error=self._on_error,
            on_finished=self._on_finished,
            on_aborted=self._on_aborted,
        )

    def stop(self) -> None:
        """Ask the running job to stop at its next snapshot (within ~0.25 s of work)."""
        if self.worker is not None:
            self.status.value = "Stopping…"
            self.worker.quit()

    def _quit_quietly(self, *_: Any) -> None:
        if self.worker is not None:
            self.worker.quit()
            wait_for_threads()

    # ---------------------------------------------------------------- worker handlers (main thread)
    def _metadata(self, config: Any, energies: tuple[float, ...], device: str) -> dict[str, Any]:
        return run_metadata(config, self._job.get("seed", 0), energies, device, __version__)

    def _on_state(self, state: SolverState) -> None:
        if not isalive(self.native):
            return
        job = self._job
        pending = job.pop("pending", None)
        if pending is not None and self.worker is not None:
            self.worker.send(pending)
        image = job["image"]
        if image not in self.viewer.layers:
            return  # the run is being stopped (see _on_layer_removed)
        mask = state.mask if state.phase in (Phase.SEGMENT, Phase.DONE) else None
        if mask is not None and job.get("last_mask") is not state.mask:
            job["last_mask"] = state.mask
            if job["first_mask_s"] is None:
                job["first_mask_s"] = time.perf_counter() - job["started"]
        else:
            mask = None
        denoised = state.denoised if job.get("last_denoised") is not state.denoised else None
        job["last_denoised"] = state.denoised
        if mask is not None or denoised is not None:
            meta = self._metadata(job["config"], state.energies, job["device"])
            self.outputs.write(image, job["plane"], meta, mask=mask, denoised=denoised)
        self.plot.set_values(state.energies)
        self.status.value = f"Outer iteration {state.outer_iteration} · {state.message} · {state.elapsed:.1f} s"
        if state.result is not None:
            self.result = state.result
            meta = self._metadata(state.result.config, state.result.energies, state.result.device)
            self.outputs.write(image, job["plane"], meta, mask=state.result.mask, denoised=state.result.denoised)
            self.status.value = (
                f"Done in {state.elapsed:.1f} s after {state.result.outer_iterations} segmentation steps "
                f"({state.result.stop_reason}). Move λ to re-segment without retraining."
            )

    def _on_error(self, error: BaseException) -> None:
        self._report_error(str(error) if not isinstance(error, RuntimeError) else friendly_message(error))

    def _on_aborted(self) -> None:
        if isalive(self.native):
            reason = self._job.get("stop_reason", "Stopped.")
            self.status.value = f"{reason} The last complete mask and denoised image are kept."

    def _on_finished(self) -> None:
        self.worker = None
        if not isalive(self.native):  # the viewer was closed
            return
        self.run_button.text = "Run"
        self.progress.max = 1
        self.progress.value = 1 if self.result is not None else 0

    def _report_error(self, message: str) -> None:
        self.status.value = message
        show_error(message)

    # ---------------------------------------------------------------- live changes
    def _on_live_parameter(self) -> None:
        lam, mu = float(self.params.lam.value), float(self.params.mu.value)
        if self.worker is not None:
            # Sent with the next snapshot: a generator cannot take a value before its first yield.
            self._job["pending"] = LiveParameters(lam=lam, mu=mu)
            self.status.value = f"λ = {lam:g}, µ = {mu:g} take effect at the next segmentation step."
            return
        if self.result is None or self._job.get("image") not in self.viewer.layers:
            return
        # Re-segment in a thread; while one runs, only the latest λ is kept and solved next.
        self._next_lam = lam
        if self.reseg_worker is None:
            self._start_resegment()

    def _start_resegment(self) -> None:
        lam, self._next_lam = self._next_lam, None
        if lam is None or self.result is None:
            return
        job, started = self._job, time.perf_counter()
        self.status.value = f"Re-segmenting with λ = {lam:g}…"

        def on_returned(result: SegmentationResult) -> None:
            if not isalive(self.native) or self._job is not job or self.worker is not None:
                return  # a new run started meanwhile: its results win
            if job["image"] not in self.viewer.layers:
                return
            self.result = result
            meta = self._metadata(result.config, result.energies, result.device)
            self.outputs.write(job["image"], job["plane"], meta, mask=result.mask, denoised=result.denoised)
            self.status.value = (
                f"Re-segmented with λ = {lam:g} in {time.perf_counter() - started:.2f} s (experts kept)."
            )

        self.reseg_worker = start_resegment_worker(
            self.result,
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
        if self.reseg_worker is not None and removed is self._job.get("image"):
            wait_for_threads()  # never emit into Qt objects that are being deleted
        if self.worker is not None and removed in (self._job.get("image"), self._job.get("boxes")):
            # Also what happens when the viewer closes: wait for the thread, so that it never
            # emits into Qt objects that are being deleted.
            self.worker.quit()
            wait_for_threads()
            message = f"Layer '{removed.name}' was deleted during the run, so the run was stopped."
            self._job["stop_reason"] = message
            if isalive(self.native):
                self.status.value = message
                show_warning(message)
