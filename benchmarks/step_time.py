"""Time one Noise2Fast train+validate step and one primal–dual iteration at 256², per preset.

These are the units the authors' code was measured in (448 ms per N2F train+validate step and
24 s per 8000-iteration primal–dual step on this 2-core CPU, 256² image).

Usage::

    python benchmarks/step_time.py [--size 256] [--repeats 20]
"""

from __future__ import annotations

import argparse
import time

import torch

from napari_self2seg.core import preset
from napari_self2seg.core.denoiser.network import Noise2FastNet
from napari_self2seg.core.denoiser.training import train_expert
from napari_self2seg.core.primal_dual import PrimalDualState, chambolle_pock


def expert_step_ms(name: str, size: int, repeats: int) -> float:
    """Mean wall time of one training step including its share of validation."""
    cfg = preset(name).denoiser
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, size, size, generator=gen)
    region = torch.ones(size, size, dtype=torch.bool)
    steps = 5 + repeats
    config = type(cfg)(**{**cfg.__dict__, "max_steps": steps, "patience": steps})
    training = train_expert(Noise2FastNet(cfg.width, cfg.n_blocks, generator=gen), image, region, config, gen)
    for _ in range(5):  # warm-up
        next(training)
    t0 = time.perf_counter()
    for _ in range(repeats):
        next(training)
    return (time.perf_counter() - t0) / repeats * 1000


def pd_iteration_ms(size: int, iterations: int = 2000) -> float:
    """Mean wall time of one Chambolle–Pock iteration (no stopping test)."""
    cfg = preset("paper").solver
    config = type(cfg)(**{**cfg.__dict__, "max_iter": iterations, "gap_tol": 0.0, "check_every": iterations})
    data = torch.randn(size, size, generator=torch.Generator().manual_seed(0)) * 0.01
    state = PrimalDualState.from_memberships(torch.full((2, size, size), 0.5))
    residuals = torch.stack((torch.zeros_like(data), data))  # two classes, data term r_1 - r_0
    t0 = time.perf_counter()
    for _ in chambolle_pock(state, residuals, 0.04, config):
        pass
    return (time.perf_counter() - t0) / iterations * 1000


def main() -> None:
    """Print the per-step times."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    for name in ("paper", "fast"):
        print(f"{name}: one Noise2Fast train+validate step {expert_step_ms(name, args.size, args.repeats):.0f} ms")
    per_iter = pd_iteration_ms(args.size)
    print(f"one primal–dual iteration {per_iter:.3f} ms -> 8000 iterations {per_iter * 8:.1f} s")


if __name__ == "__main__":
    main()
