"""The CUDA path: the same solver, experts and runs on a GPU as on the CPU.

Skipped where torch sees no CUDA device (CI never has one); ``benchmarks/gpu_check.sh`` runs them on a
lent GPU machine.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_self2seg.core import dice, preset, resegment, segment
from napari_self2seg.core.config import DenoiserConfig, PrimalDualConfig
from napari_self2seg.core.denoiser.network import Noise2FastNet
from napari_self2seg.core.denoiser.training import train_expert
from napari_self2seg.core.primal_dual import PrimalDualState, solve
from napari_self2seg.core.simplex import project_simplex
from napari_self2seg.datasets import hue_pair, three_textures, two_textures

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CI has none)"),
]
CUDA = torch.device("cuda")


@pytest.mark.parametrize("k", [2, 3, 5, 8, 12])
def test_simplex_projection_on_cuda_equals_the_cpu_one(k: int) -> None:
    v = torch.randn(k, 64, 64, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
    torch.testing.assert_close(project_simplex(v.to(CUDA)).cpu(), project_simplex(v), atol=1e-12, rtol=0)


@pytest.mark.parametrize("k", [2, 3])
def test_primal_dual_on_cuda_follows_the_cpu_iterates(k: int) -> None:
    residuals = torch.rand(k, 48, 48, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    config = PrimalDualConfig(max_iter=3000, gap_tol=1e-9, check_every=50)
    on_cpu = PrimalDualState.from_memberships(torch.full_like(residuals, 1 / k))
    on_gpu = PrimalDualState.from_memberships(torch.full_like(residuals, 1 / k).to(CUDA))
    cpu_report = solve(on_cpu, residuals, 0.05, config)
    gpu_report = solve(on_gpu, residuals.to(CUDA), 0.05, config)
    assert gpu_report.iteration == cpu_report.iteration
    torch.testing.assert_close(on_gpu.u.cpu(), on_cpu.u, atol=1e-8, rtol=0)


def test_a_three_channel_expert_learns_on_cuda() -> None:
    gen = torch.Generator().manual_seed(0)
    clean = torch.linspace(0, 1, 64)[None, None, :].expand(3, 64, 64).contiguous()
    noisy = (clean + 0.2 * torch.randn(3, 64, 64, generator=gen)).to(CUDA)
    net = Noise2FastNet(8, 2, channels=3, generator=gen).to(CUDA)
    config = DenoiserConfig(width=8, n_blocks=2, patience=200, average_last=20, max_steps=200)
    region = torch.ones(64, 64, dtype=torch.bool, device=CUDA)
    losses = [report.loss for report in train_expert(net, noisy, region, config, gen)]
    assert len(losses) >= 50 and np.mean(losses[-20:]) < np.mean(losses[:5])
    assert next(net.parameters()).device.type == "cuda"


def test_a_default_run_on_cuda_segments_like_the_cpu_run() -> None:
    sample = two_textures(64)
    boxes = {1: [sample.fg_box], 0: [sample.bg_box]}
    on_gpu = segment(sample.image, preset("fast"), boxes=boxes, device="cuda", seed=0, keep_problem=True)
    on_cpu = segment(sample.image, preset("fast"), boxes=boxes, device="cpu", seed=0)
    assert on_gpu.device.startswith("cuda")
    assert isinstance(on_gpu.denoised, np.ndarray) and on_gpu.denoised.dtype == on_cpu.denoised.dtype
    assert dice(on_gpu.mask, sample.truth) >= 0.95
    assert abs(dice(on_gpu.mask, sample.truth) - dice(on_cpu.mask, sample.truth)) <= 0.02
    again = resegment(on_gpu, lam=on_gpu.lam, device="cuda")
    assert np.array_equal(again.labels, on_gpu.labels)


def test_three_classes_and_colour_runs_on_cuda() -> None:
    textures = three_textures()
    result = segment(textures.image, boxes=textures.boxes, device="cuda", seed=0)
    assert min(dice(result.labels == k, textures.labels == k) for k in range(3)) >= 0.9
    colour = hue_pair()
    result = segment(colour.image, boxes=colour.boxes, channel_axis=-1, device="cuda", seed=0)
    assert dice(result.mask, colour.labels == 1) >= 0.9
    assert result.denoised.shape == colour.image.shape
