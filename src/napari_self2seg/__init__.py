"""napari-self2seg: Self2Seg joint segmentation and denoising for napari.

The package root re-exports the Qt-free core; the napari widget lives in
:mod:`napari_self2seg._widget` and is loaded by napari through ``napari.yaml``.
"""

from importlib.metadata import PackageNotFoundError, version

from .core import (
    DenoiserConfig,
    LiveParameters,
    Phase,
    PlaneState,
    PrimalDualConfig,
    SegmentationResult,
    Self2SegConfig,
    SolverState,
    StackResult,
    iterate,
    iterate_stack,
    preset,
    resegment,
    segment,
    segment_stack,
)

try:
    __version__ = version("napari-self2seg")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

# after __version__: the batch records name the package version
from .batch_jobs import BatchSettings, JobOutcome
from .batch_run import batch

__all__ = [
    "BatchSettings",
    "DenoiserConfig",
    "JobOutcome",
    "LiveParameters",
    "Phase",
    "PlaneState",
    "PrimalDualConfig",
    "SegmentationResult",
    "Self2SegConfig",
    "SolverState",
    "StackResult",
    "__version__",
    "batch",
    "iterate",
    "iterate_stack",
    "preset",
    "resegment",
    "segment",
    "segment_stack",
]
