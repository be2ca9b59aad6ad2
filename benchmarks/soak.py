"""Soak test: many runs in one process must not leak memory or slow down.

Two parts, each in its own subprocess so that their memory does not mix:

* ``api``: N consecutive ``segment`` calls (default 50) on the two-texture
  image in one process; resident memory (RSS, from ``/proc/self/statm``) after
  every run. Growth is measured from the end of the warm-up (run 5) to the end.
* ``widget``: M runs (default 20) of the dock widget in one napari viewer
  (needs a display: run under ``xvfb-run -a``), each followed by a λ change, the
  output layers re-used; RSS after every run.

Usage::

    xvfb-run -a python benchmarks/soak.py                   # both parts
    python benchmarks/soak.py --part api --runs 50 --size 96

Target (issue 10): RSS growth < 5 % after the warm-up. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

WARMUP = 5


def rss_mib() -> float:
    """Resident memory of this process in MiB (Linux)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def tiny_config() -> Any:
    """Return the fast preset capped to two segmentation steps (a soak measures repetition, not quality)."""
    import dataclasses

    from napari_self2seg.core import preset

    return dataclasses.replace(preset("fast"), lam=0.02, max_outer_iter=2)


def api_part(runs: int, size: int) -> dict[str, Any]:
    import torch

    from napari_self2seg.core import dice, segment
    from napari_self2seg.datasets import two_textures

    torch.set_num_threads(2)
    sample = two_textures(size)
    config = tiny_config()
    rss, seconds, scores = [], [], []
    for i in range(runs):
        t0 = time.perf_counter()
        result = segment(sample.image, config, fg_boxes=[sample.fg_box], bg_boxes=[sample.bg_box], seed=i, device="cpu")
        seconds.append(time.perf_counter() - t0)
        scores.append(dice(result.mask, sample.truth))
        del result
        rss.append(rss_mib())
    return {"part": "api", "runs": runs, "size": size, "rss_mib": rss, "seconds": seconds, "dice": scores}


def widget_part(runs: int, size: int) -> dict[str, Any]:
    import dataclasses

    import napari
    import torch
    from qtpy.QtWidgets import QApplication

    from napari_self2seg._widget.params import ParameterForm
    from napari_self2seg.core import dice
    from napari_self2seg.datasets import two_textures
    from napari_self2seg.sample_data import box_layer_data

    torch.set_num_threads(2)
    os.environ["SELF2SEG_NOPERSIST"] = "1"
    original = ParameterForm.to_config

    def capped(self: ParameterForm) -> Any:
        return dataclasses.replace(original(self), max_outer_iter=2)

    ParameterForm.to_config = capped  # type: ignore[method-assign]
    viewer = napari.Viewer(show=False)
    _, widget = viewer.window.add_plugin_dock_widget("napari-self2seg", "Self2Seg")
    sample = two_textures(size)
    image = viewer.add_image(sample.image, name="textures")
    rects, kwargs, _ = box_layer_data({1: [sample.fg_box], 0: [sample.bg_box]})
    viewer.add_shapes(rects, **kwargs)
    widget.params.device.value = "cpu"

    def wait(condition: Any, timeout: float = 300.0) -> None:
        end = time.time() + timeout
        while not condition() and time.time() < end:
            QApplication.processEvents()
            time.sleep(0.01)

    rss, seconds, scores = [], [], []
    for i in range(runs):
        widget.params.lam.value = 0.02
        wait(lambda: widget.reseg_worker is None)
        widget.params.seed.value = i
        t0 = time.perf_counter()
        widget.start()
        wait(lambda: widget.worker is None)
        seconds.append(time.perf_counter() - t0)
        widget.params.lam.value = 0.03  # one live re-solve per run
        wait(lambda: widget.reseg_worker is None)
        scores.append(dice(viewer.layers["textures mask (Self2Seg)"].data, sample.truth))
        rss.append(rss_mib())
    layers = len(viewer.layers)
    viewer.close()
    del image
    return {
        "part": "widget",
        "runs": runs,
        "size": size,
        "rss_mib": rss,
        "seconds": seconds,
        "dice": scores,
        "layers_at_end": layers,
    }


def summary(record: dict[str, Any]) -> str:
    rss = record["rss_mib"]
    base = rss[min(WARMUP, len(rss)) - 1]
    growth = 100 * (rss[-1] - base) / base
    first, last = record["seconds"][:WARMUP], record["seconds"][-WARMUP:]
    return (
        f"{record['part']:>6}: {record['runs']} runs at {record['size']}², RSS {base:.0f} MiB after run "
        f"{WARMUP} -> {rss[-1]:.0f} MiB after run {len(rss)} ({growth:+.1f} %), time per run "
        f"{sum(first) / len(first):.2f} s (first {WARMUP}) vs {sum(last) / len(last):.2f} s (last {WARMUP}), "
        f"Dice {min(record['dice']):.3f}–{max(record['dice']):.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("api", "widget", "both"), default="both")
    parser.add_argument("--runs", type=int, default=50, help="API runs (default 50)")
    parser.add_argument("--widget-runs", type=int, default=20, help="widget runs (default 20)")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--child", choices=("api", "widget"), help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help="write the records as JSON here")
    args = parser.parse_args()
    if args.child == "api":
        print(json.dumps(api_part(args.runs, args.size)))
        return
    if args.child == "widget":
        print(json.dumps(widget_part(args.widget_runs, args.size)))
        return
    records = []
    for part in ("api", "widget") if args.part == "both" else (args.part,):
        command = [sys.executable, __file__, "--child", part, "--runs", str(args.runs)]
        command += ["--widget-runs", str(args.widget_runs), "--size", str(args.size)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        record = json.loads(done.stdout.strip().splitlines()[-1])
        records.append(record)
        print(summary(record), flush=True)
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(records, handle, indent=1)


if __name__ == "__main__":
    main()
