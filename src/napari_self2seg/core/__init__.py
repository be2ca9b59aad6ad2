"""Qt-free core of napari-self2seg: Self2Seg joint segmentation and denoising.

Imports only numpy, torch and the standard library.
"""

from .config import DenoiserConfig, PrimalDualConfig, Self2SegConfig, preset
from .metrics import dice
from .solver import iterate, resegment, segment
from .state import LiveParameters, Phase, SegmentationResult, SolverState

__all__ = [
    "DenoiserConfig",
    "LiveParameters",
    "Phase",
    "PrimalDualConfig",
    "SegmentationResult",
    "Self2SegConfig",
    "SolverState",
    "dice",
    "iterate",
    "preset",
    "resegment",
    "segment",
]
