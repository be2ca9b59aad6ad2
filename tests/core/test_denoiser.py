from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from napari_self2seg.core.config import DenoiserConfig
from napari_self2seg.core.denoiser.network import Noise2FastNet
from napari_self2seg.core.denoiser.sampling import checkerboard_pairs, column_halves, merge_row_halves, row_halves
from napari_self2seg.core.denoiser.training import (
    TrainedExpert,
    TrainingProgress,
    blind_prediction,
    has_collapsed,
    masked_loss,
    train_expert,
)

if TYPE_CHECKING:
    from collections.abc import Generator


def run_training(
    training: Generator[TrainingProgress, None, TrainedExpert],
) -> tuple[list[TrainingProgress], TrainedExpert]:
    """Exhaust a training generator; return its progress reports and its result."""
    reports = []
    while True:
        try:
            reports.append(next(training))
        except StopIteration as stop:
            return reports, stop.value


def index_image(h: int, w: int) -> torch.Tensor:
    return torch.arange(h * w, dtype=torch.float64).reshape(h, w)


@pytest.mark.parametrize("halves", [row_halves, column_halves])
def test_each_checkerboard_split_covers_every_pixel_exactly_once(halves) -> None:  # type: ignore[no-untyped-def]
    idx = index_image(6, 8)
    first, second = halves(idx)
    values = torch.cat([first.flatten(), second.flatten()]).long()
    assert torch.equal(torch.sort(values).values, torch.arange(48))


def test_pairs_follow_the_reference_code_formulas() -> None:
    f = index_image(4, 6)
    a, b = row_halves(f)
    c, d = column_halves(f)
    for i in range(2):
        for j in range(6):
            assert a[i, j] == f[2 * i + 1 - (j % 2), j]
            assert b[i, j] == f[2 * i + (j % 2), j]
    for i in range(4):
        for j in range(3):
            assert c[i, j] == f[i, 2 * j + 1 - (i % 2)]
            assert d[i, j] == f[i, 2 * j + (i % 2)]


def test_targets_cover_each_pixel_once_per_orientation_and_inputs_are_neighbours() -> None:
    f = index_image(8, 8)[None]
    pairs = checkerboard_pairs(f, torch.ones(8, 8))
    rows = torch.cat([pairs[0].target.flatten(), pairs[1].target.flatten()]).long()
    cols = torch.cat([pairs[2].target.flatten(), pairs[3].target.flatten()]).long()
    assert torch.equal(torch.sort(rows).values, torch.arange(64))
    assert torch.equal(torch.sort(cols).values, torch.arange(64))
    for pair in pairs:  # input and target pixels are 4-neighbours, never the same pixel
        src, tgt = pair.source.flatten().long(), pair.target.flatten().long()
        dy, dx = (src // 8 - tgt // 8).abs(), (src % 8 - tgt % 8).abs()
        assert torch.all(dy + dx == 1)


def test_mask_is_sampled_at_the_target_pixels() -> None:
    f = index_image(8, 10)
    mask = (f.long() % 3 == 0).double()
    for pair in checkerboard_pairs(f[None], mask):
        expected = (pair.target.long() % 3 == 0).double()
        assert torch.equal(pair.mask, expected)


def test_odd_sizes_drop_the_last_row_and_column_from_the_pairs() -> None:
    pairs = checkerboard_pairs(torch.rand(1, 9, 7), torch.ones(9, 7))
    assert pairs[0].target.shape == (1, 1, 4, 6)
    assert pairs[2].target.shape == (1, 1, 8, 3)


def test_masked_loss_has_no_gradient_from_pixels_outside_the_mask() -> None:
    f = torch.rand(2, 8, 8, generator=torch.Generator().manual_seed(0))  # two channels
    mask = torch.zeros(8, 8)
    mask[:, :4] = 1.0
    pair = checkerboard_pairs(f, mask)[0]
    assert pair.source.shape == (1, 2, 4, 8) and pair.mask.shape == (1, 1, 4, 8)
    prediction = torch.rand(pair.target.shape, requires_grad=True)
    torch.autograd.backward(masked_loss(prediction, pair))
    assert prediction.grad is not None
    outside, inside = (pair.mask == 0).expand_as(prediction), (pair.mask == 1).expand_as(prediction)
    assert torch.all(prediction.grad[outside] == 0)
    assert torch.all(prediction.grad[inside] != 0)  # every channel of a region pixel counts
    # changing the prediction outside the mask leaves the loss unchanged
    moved = prediction.detach() + 10.0 * (1 - pair.mask)
    assert float(masked_loss(moved, pair)) == pytest.approx(float(masked_loss(prediction.detach(), pair)))


def test_network_keeps_the_image_size_and_outputs_in_unit_interval() -> None:
    net = Noise2FastNet(width=4, n_blocks=2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = net(torch.rand(1, 1, 17, 23))
    assert out.shape == (1, 1, 17, 23)
    assert float(out.min()) > 0 and float(out.max()) < 1
    assert len(net.convs) == 4  # 2 blocks of two 3×3 convolutions


def test_network_maps_c_channels_to_c_channels() -> None:
    net = Noise2FastNet(width=4, n_blocks=1, channels=3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = net(torch.rand(1, 3, 20, 18))
    assert out.shape == (1, 3, 20, 18)
    assert net.convs[0].in_channels == 3 and net.head.out_channels == 3


def test_paper_network_has_eight_convolutions_of_64_channels() -> None:
    net = Noise2FastNet()
    assert len(net.convs) == 8
    assert all(c.out_channels == 64 and c.kernel_size == (3, 3) for c in net.convs)
    assert net.convs[0].padding == (0, 0) and net.convs[1].padding_mode == "reflect"


def test_same_generator_seed_gives_the_same_weights() -> None:
    a = Noise2FastNet(width=4, n_blocks=1, generator=torch.Generator().manual_seed(7))
    b = Noise2FastNet(width=4, n_blocks=1, generator=torch.Generator().manual_seed(7))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))


def test_collapse_check() -> None:
    region = torch.ones(20, 20, dtype=torch.bool)
    flat = torch.full((1, 20, 20), 0.5)
    flat[0, 0, 0] = 0.9  # the border is ignored
    assert has_collapsed(flat, region)
    assert not has_collapsed(torch.rand(1, 20, 20, generator=torch.Generator().manual_seed(0)), region)


def test_training_denoises_its_region_and_stops_early() -> None:
    rng = np.random.default_rng(0)
    clean = np.tile(np.where(np.arange(32) % 6 < 3, 0.3, 0.7), (32, 1))
    noisy = torch.from_numpy(np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1)).float()[None]
    region = torch.ones(32, 32, dtype=torch.bool)
    config = DenoiserConfig(width=8, n_blocks=2, patience=15, average_last=10, max_steps=400)
    gen = torch.Generator().manual_seed(0)
    reports, trained = run_training(train_expert(Noise2FastNet(8, 2, generator=gen), noisy, region, config, gen))
    assert [r.step for r in reports] == list(range(1, trained.steps + 1))
    assert trained.steps < config.max_steps
    error_before = float(((noisy - torch.from_numpy(clean).float()) ** 2).mean())
    error_after = float(((trained.output - torch.from_numpy(clean).float()) ** 2).mean())
    assert error_after < 0.5 * error_before


def test_patches_are_centred_on_region_pixels() -> None:
    from napari_self2seg.core.denoiser.training import _PairSampler

    f = torch.rand(1, 64, 64, generator=torch.Generator().manual_seed(0))
    region = torch.zeros(64, 64)
    region[40:44, 50:54] = 1.0
    sampler = _PairSampler(checkerboard_pairs(f, region), 8, torch.Generator().manual_seed(1))
    for _ in range(20):
        pair = sampler()
        assert pair.target.shape[-1] <= 8 and pair.target.shape[-2] <= 8
        assert bool(pair.mask.any())


def test_validation_interval_and_patience_count_validations() -> None:
    noisy = torch.rand(1, 24, 24, generator=torch.Generator().manual_seed(0))
    region = torch.ones(24, 24, dtype=torch.bool)
    config = DenoiserConfig(width=4, n_blocks=1, patience=3, average_last=2, max_steps=500, validate_every=4)
    gen = torch.Generator().manual_seed(0)
    reports, trained = run_training(train_expert(Noise2FastNet(4, 1, generator=gen), noisy, region, config, gen))
    scores = [r.score for r in reports]
    assert trained.steps % 4 == 0 and trained.steps >= 4 * 3
    # the score only changes at validation steps
    assert all(scores[i] == scores[i - 1] for i in range(1, len(scores)) if (i + 1) % 4 != 0)


@pytest.mark.parametrize("shape", [(6, 8), (6, 7), (7, 8), (7, 7)])
def test_merging_the_row_halves_inverts_the_split(shape: tuple[int, int]) -> None:
    idx = index_image(*shape)
    even = idx[: shape[0] // 2 * 2]
    fill = torch.full_like(idx, -1.0)
    merged = merge_row_halves(*row_halves(even), fill)
    torch.testing.assert_close(merged[: even.shape[0]], even)
    assert (merged[even.shape[0] :] == -1).all()  # an odd last row keeps the fill


def test_blind_prediction_never_sees_the_pixel_it_predicts() -> None:
    gen = torch.Generator().manual_seed(0)
    net = Noise2FastNet(4, 1, generator=gen)
    image = torch.rand(1, 16, 12, generator=gen)
    base = blind_prediction(net, image, torch.zeros_like(image))
    changed_elsewhere = 0
    for y, x in [(0, 0), (3, 5), (8, 11), (15, 6), (10, 1)]:
        poked = image.clone()
        poked[0, y, x] += 0.5
        again = blind_prediction(net, poked, torch.zeros_like(image))
        assert again[0, y, x] == base[0, y, x]  # J-invariance: the pixel's own value plays no part
        changed_elsewhere += int((again != base).sum())
    assert changed_elsewhere > 0  # but the neighbours' predictions do use it


def test_blind_residual_of_a_copying_denoiser_is_twice_the_noise_variance() -> None:
    # A "denoiser" that copies its input has zero full-image residual: it would win every pixel of
    # eq. 5. Its blind residual is E[(n_p - n_q)^2] = 2σ² on white noise: copying noise gains nothing.
    sigma = 0.1
    noise = torch.from_numpy(np.random.default_rng(0).normal(0.5, sigma, (1, 128, 128))).float()
    copy = torch.nn.Identity()
    full = float(((noise - copy(noise)) ** 2).mean())
    blind = float(((noise - blind_prediction(copy, noise, noise)) ** 2).mean())
    assert full == 0.0
    assert blind == pytest.approx(2 * sigma**2, rel=0.05)
