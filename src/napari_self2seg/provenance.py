"""What a run's JSON record holds: enough to reproduce and judge it."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import platform
import socket
from typing import TYPE_CHECKING

import numpy as np

from . import __version__

if TYPE_CHECKING:
    from pathlib import Path

    from .core import SegmentationResult


def result_record(result: SegmentationResult) -> dict[str, object]:
    """Return the settings, energies, timings and outcome of one run (one plane of a stack) as JSON values."""
    return {
        "version": __version__,
        "seed": result.seed,
        "device": result.device,
        "config": dataclasses.asdict(result.config),
        "energies": list(result.energies),
        "timings_s": result.timings.as_dict(),
        "outer_iterations": result.outer_iterations,
        "stop_reason": result.stop_reason,
        "degenerate": result.degenerate,
        "restarted": result.restarted,
        # JSON has no infinity: a separation without noise (or a run without boxes) is null
        "box_separation": (
            result.box_separation
            if result.box_separation is not None and math.isfinite(result.box_separation)
            else None
        ),
        "reliability_warning": result.reliability_warning,
        "lam": result.lam,
        "automatic_lam": result.automatic_lam,
        "classes": result.classes,
        "channel_axis": result.channel_axis,
        "class_fractions": np.bincount(result.labels.ravel(), minlength=result.classes).tolist(),
        "foreground_fraction": float(result.mask.mean()),
        "objects": None if result.instances is None else result.instances.count,
    }


def plane_record(result: SegmentationResult, *recorded_once: str) -> dict[str, object]:
    """Return the part of :func:`result_record` that differs between planes (version, settings, seed, device left out).

    ``recorded_once`` names further entries the caller records once for all planes.
    """
    record = result_record(result)
    for shared in ("version", "config", "seed", "device", *recorded_once):
        record.pop(shared)
    return record


def environment() -> dict[str, str]:
    """Return the versions and the host a run used."""
    import torch  # the core imports it anyway; here only its version

    return {
        "napari-self2seg": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "host": socket.gethostname(),
    }


def file_sha256(path: Path) -> str:
    """Return the SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
