"""Qt-free core of napari-self2seg: Self2Seg joint segmentation and denoising.

Imports only numpy, torch and the standard library.
"""

from .config import DenoiserConfig, PrimalDualConfig, Self2SegConfig, preset
from .metrics import dice
from .solver import iterate, resegment, segment
from .stacks import PlaneState, StackResult, iterate_stack, segment_stack
from .state import LiveParameters, Phase, SegmentationResult, SolverState

__all__ = [
    "DenoiserConfig",
    "LiveParameters",
    "Phase",
    "PlaneState",
    "PrimalDualConfig",
    "SegmentationResult",
    "Self2SegConfig",
    "SolverState",
    "StackResult",
    "dice",
    "iterate",
    "iterate_stack",
    "preset",
    "resegment",
    "segment",
    "segment_stack",
]
