"""Time one Noise2Fast train+validate step and one primal–dual iteration at 256², per preset.

These are the units the authors' code was measured in (448 ms per N2F train+validate step and
24 s per 8000-iteration primal–dual step on this 2-core CPU, 256² image).

Usage::

    python benchmarks/step_time.py [--size 256] [--repeats 20] [--device cuda]
"""

from __future__ import annotations

import argparse
import time

import torch

from napari_self2seg.core import preset
from napari_self2seg.core.denoiser.network import Noise2FastNet
from napari_self2seg.core.denoiser.training import train_expert
from napari_self2seg.core.primal_dual import PrimalDualState, chambolle_pock


def synchronised(device: torch.device) -> None:
    """Wait for the device's queued work, so that wall times include it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def expert_step_ms(name: str, size: int, repeats: int, device: torch.device) -> float:
    """Mean wall time of one training step including its share of validation."""
    cfg = preset(name).denoiser
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, size, size, generator=gen).to(device)
    region = torch.ones(size, size, dtype=torch.bool, device=device)
    steps = 5 + repeats
    config = type(cfg)(**{**cfg.__dict__, "max_steps": steps, "patience": steps})
    training = train_expert(
        Noise2FastNet(cfg.width, cfg.n_blocks, generator=gen).to(device), image, region, config, gen
    )
    for _ in range(5):  # warm-up
        next(training)
    synchronised(device)
    t0 = time.perf_counter()
    for _ in range(repeats):
        next(training)
    synchronised(device)
    return (time.perf_counter() - t0) / repeats * 1000


def pd_iteration_ms(size: int, device: torch.device, iterations: int = 2000) -> float:
    """Mean wall time of one Chambolle–Pock iteration (no stopping test)."""
    cfg = preset("paper").solver
    config = type(cfg)(**{**cfg.__dict__, "max_iter": iterations, "gap_tol": 0.0, "check_every": iterations})
    data = (torch.randn(size, size, generator=torch.Generator().manual_seed(0)) * 0.01).to(device)
    state = PrimalDualState.from_memberships(torch.full((2, size, size), 0.5, device=device))
    residuals = torch.stack((torch.zeros_like(data), data))  # two classes, data term r_1 - r_0
    synchronised(device)
    t0 = time.perf_counter()
    for _ in chambolle_pock(state, residuals, 0.04, config):
        pass
    synchronised(device)
    return (time.perf_counter() - t0) / iterations * 1000


def main() -> None:
    """Print the per-step times."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    device = torch.device(args.device)
    for name in ("paper", "fast"):
        print(
            f"{name}: one Noise2Fast train+validate step {expert_step_ms(name, args.size, args.repeats, device):.0f} ms"
        )
    per_iter = pd_iteration_ms(args.size, device)
    print(f"one primal–dual iteration {per_iter:.3f} ms -> 8000 iterations {per_iter * 8:.1f} s")


if __name__ == "__main__":
    main()
