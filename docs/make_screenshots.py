"""Take the user-guide screenshots from a real napari window (run under ``xvfb-run -a``).

Usage::

    xvfb-run -a .venv/bin/python docs/make_screenshots.py

Writes ``docs/images/{boxes,mid_run,finished,tuned}.png``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import napari
import numpy as np
from qtpy.QtWidgets import QApplication
from skimage import io

from napari_self2seg._widget.layers import MASK_NAME
from napari_self2seg.core import Phase
from napari_self2seg.sample_data import noisy_nuclei

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
    """Drive the widget on the bundled nuclei sample and take four screenshots."""
    os.environ.setdefault("SELF2SEG_NOPERSIST", "1")
    OUT.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(title="napari-self2seg")
    viewer.window.resize(1400, 850)
    (data, kwargs, _), = noisy_nuclei()
    viewer.add_image(data, **kwargs)
    _, widget = viewer.window.add_plugin_dock_widget("napari-self2seg", "Self2Seg")
    boxes = widget.create_box_layer()
    widget.set_region("foreground")
    boxes.add_rectangles(np.array([[150, 95], [150, 125], [178, 125], [178, 95]], dtype=float))
    widget.set_region("background")
    boxes.add_rectangles(np.array([[5, 5], [5, 60], [40, 60], [40, 5]], dtype=float))
    widget.params.experts.value = 1
    widget.params.residual_filter.value = 3
    widget.params.lam.value = 0.01
    shot(viewer, "boxes.png")

    seen: list[Phase] = []
    widget.start()
    assert widget.worker is not None, widget.status.value
    widget.worker.yielded.connect(lambda state: seen.append(state.phase))
    wait(lambda: seen.count(Phase.SEGMENT) >= 1 and MASK_NAME in viewer.layers)
    wait(lambda: seen[-1] is Phase.TRAIN_FOREGROUND, timeout=60)
    shot(viewer, "mid_run.png")
    wait(lambda: widget.worker is None)
    print(f"Run pressed -> first mask update in the viewer: {widget._job['first_mask_s']:.1f} s (256², this machine)")
    shot(viewer, "finished.png")
    widget.params.lam.value = 0.03
    shot(viewer, "tuned.png")
    viewer.close()


if __name__ == "__main__":
    main()
