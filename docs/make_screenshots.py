"""Take the user-guide screenshots from a real napari window (run under ``xvfb-run -a``).

Usage::

    xvfb-run -a .venv/bin/python docs/make_screenshots.py           # all of them
    xvfb-run -a .venv/bin/python docs/make_screenshots.py objects   # only objects.png

Writes ``docs/images/{boxes,mid_run,finished,tuned,layers,lambda_warning,three_classes,rgb,objects}.png``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication
from skimage import io

from napari_self2seg._widget.layers import mask_name, objects_name
from napari_self2seg.core import Phase
from napari_self2seg.datasets import two_textures
from napari_self2seg.sample_data import colour_sample, load_noisy_nuclei, three_textures_sample

OUT = Path(__file__).parent / "images"


def wait(condition: object, timeout: float = 600.0) -> None:
    """Process Qt events until ``condition()`` is true."""
    end = time.time() + timeout
    while not condition() and time.time() < end:  # type: ignore[operator]
        QApplication.processEvents()
        time.sleep(0.02)


def shot(viewer: napari.Viewer, name: str) -> None:
    """Save a screenshot of the whole window."""
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.02)
    io.imsave(OUT / name, viewer.screenshot(canvas_only=False, flash=False), check_contrast=False)
    print("wrote", OUT / name)


def main() -> None:
    """Drive the widget on the 256² two-texture image and take four screenshots."""
    os.environ.setdefault("SELF2SEG_NOPERSIST", "1")
    OUT.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(title="napari-self2seg")
    viewer.window.resize(1400, 850)
    sample = two_textures(256)
    viewer.add_image(sample.image, name="two textures", colormap="gray")
    _, widget = viewer.window.add_plugin_dock_widget("napari-self2seg", "Self2Seg")
    boxes = widget.create_box_layer()
    for index, (y0, x0, y1, x1) in ((1, sample.fg_box), (0, sample.bg_box)):
        widget.set_class(index)
        boxes.add_rectangles(np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], dtype=float))
    viewer.reset_view()  # the widget's defaults: experts and λ chosen by the run
    shot(viewer, "boxes.png")

    seen: list[Phase] = []
    widget.start()
    assert widget.worker is not None, widget.status.value
    widget.worker.yielded.connect(lambda state: seen.append(state.phase))
    wait(lambda: seen.count(Phase.SEGMENT) >= 1 and mask_name("two textures") in viewer.layers)
    wait(lambda: seen[-1] is Phase.TRAIN, timeout=60)
    shot(viewer, "mid_run.png")
    wait(lambda: widget.worker is None)
    print(f"Run pressed -> first mask update in the viewer: {widget._job.first_mask_s:.1f} s (256², this machine)")
    shot(viewer, "finished.png")  # the λ box shows the λ chosen from the image
    widget.params.lam.value = round(2 * widget.run_result.lam, 4)
    wait(lambda: widget.reseg_worker is None)
    shot(viewer, "tuned.png")
    widget.show_denoised.value = True  # layer list: image < denoised (now shown) < mask < boxes
    shot(viewer, "layers.png")
    widget.show_denoised.value = False
    widget.params.lam.value = 5.0  # far too large: the whole image would become one region
    wait(lambda: widget.reseg_worker is None)
    shot(viewer, "lambda_warning.png")
    viewer.close()
    for name, sample_layers in (("three_classes.png", three_textures_sample()), ("rgb.png", colour_sample())):
        run_sample(name, sample_layers)
    objects_shot()


def objects_shot() -> None:
    """Split the bundled noisy nuclei into objects (the demo's settings) and show the objects layer."""
    os.environ.setdefault("SELF2SEG_NOPERSIST", "1")
    viewer = napari.Viewer(title="napari-self2seg")
    viewer.window.resize(1400, 850)
    image, _ = load_noisy_nuclei()
    viewer.add_image(image, name="noisy nuclei", colormap="gray")
    _, widget = viewer.window.add_plugin_dock_widget("napari-self2seg", "Self2Seg")
    form = widget.params
    form.init.value, form.background_expert.value, form.residual_filter.value = "denoise-threshold", "constant", 3
    form.lam.value = 0.01  # the demo's λ for this σ = 30 crop (docs/results.md)
    form.instances.value = True
    widget.start()
    assert widget.worker is not None, widget.status.value
    wait(lambda: widget.worker is None)
    viewer.layers[mask_name("noisy nuclei")].visible = False
    viewer.layers.selection.active = viewer.layers[objects_name("noisy nuclei")]
    viewer.reset_view()
    print(f"{int(viewer.layers[objects_name('noisy nuclei')].data.max())} objects")
    shot(viewer, "objects.png")
    viewer.close()


def run_sample(name: str, layers: list[tuple[object, dict[str, object], str]]) -> None:
    """Open a bundled sample with its boxes in a fresh window, run the widget's defaults, take a screenshot."""
    viewer = napari.Viewer(title="napari-self2seg")
    viewer.window.resize(1400, 850)
    (image, image_kwargs, _), (rects, box_kwargs, _) = layers
    layer = viewer.add_image(image, **image_kwargs)
    _, widget = viewer.window.add_plugin_dock_widget("napari-self2seg", "Self2Seg")
    widget.image_layer.value = layer
    widget.boxes_layer.value = viewer.add_shapes(rects, **box_kwargs)
    widget.start()
    assert widget.worker is not None, widget.status.value
    wait(lambda: widget.worker is None)
    viewer.reset_view()
    shot(viewer, name)
    viewer.close()


if __name__ == "__main__":
    if sys.argv[1:] == ["objects"]:
        objects_shot()
    else:
        main()
