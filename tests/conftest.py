from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from napari_self2seg.core import DenoiserConfig, PrimalDualConfig, Self2SegConfig
from napari_self2seg.datasets import SyntheticImage, two_textures

if TYPE_CHECKING:
    from collections.abc import Callable


@pytest.fixture(scope="session")
def textures() -> SyntheticImage:
    """48² equal-mean two-texture image (vertical stripes in a disk, horizontal outside)."""
    return two_textures(48)


@pytest.fixture
def tiny_config() -> Self2SegConfig:
    """A small, fast configuration that still solves the texture image."""
    return Self2SegConfig(
        lam=0.02,
        max_outer_iter=3,
        denoiser=DenoiserConfig(width=8, n_blocks=2, patience=20, average_last=20, max_steps=150),
        solver=PrimalDualConfig(max_iter=2000, gap_tol=1e-5),
    )


def failing_stream(message: str) -> Callable[..., Any]:
    """A stand-in for ``iterate`` whose stream raises ``RuntimeError(message)`` after its first snapshot."""
    from napari_self2seg.core import iterate

    def failing(*args: Any, **kwargs: Any) -> Any:
        stream = iterate(*args, **kwargs)

        def gen() -> Any:
            yield next(stream)
            raise RuntimeError(message)

        return gen()

    return failing
