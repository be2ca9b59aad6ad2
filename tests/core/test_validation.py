from __future__ import annotations

import numpy as np
import pytest

from napari_self2seg.core import DenoiserConfig, Self2SegConfig, iterate, preset
from napari_self2seg.core._validation import resolve_device
from napari_self2seg.core.initialization import threshold_regions

IMG = np.random.default_rng(0).normal(size=(32, 32))
FG, BG = [(8, 8, 16, 16)], [(0, 0, 4, 32)]


@pytest.mark.parametrize(
    ("image", "match"),
    [
        (np.zeros((3, 32, 32)), r"channel_axis=0.*Z or T, use segment_stack"),
        (np.zeros((40, 32, 32)), r"stack .*segment_stack runs every plane"),
        (np.zeros((32, 32, 3)), r"RGB\(A\) image.*pass channel_axis=-1"),
        (np.zeros(32), r"2-D \(Y, X\)"),
        (np.full((32, 32), np.nan), r"NaN or infinite.*nan_to_num"),
        (np.where(np.eye(32) > 0, np.inf, 1.0), r"1?\d* ?NaN or infinite"),
        (np.full((32, 32), 7.0), r"constant"),
        (np.ones((8, 40)), r"too small.*at least 16"),
        (np.ones((32, 32), dtype=complex), r"real-valued"),
        (np.ones((32, 32), dtype=bool), r"real-valued"),
    ],
)
def test_bad_images_are_rejected_with_a_fix(image: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        iterate(image, fg_boxes=FG, bg_boxes=BG)


@pytest.mark.parametrize(
    ("fg", "bg", "match"),
    [
        ([(40, 40, 50, 50)], BG, r"foreground box #1 .*outside the 32×32 image"),
        (FG, [(0, 0, 4, 32), (5, 5, 5, 9)], r"background box #2 .*empty after clipping"),
        ([(1, 2, 3)], BG, r"4 numbers"),
        (FG, [], r"no box was given for background \(class 0\)"),
        ([], BG, r"no box was given for foreground \(class 1\)"),
        ([(8, 8, 16, 16)], [(0, 0, 20, 20)], r"foreground \(class 1\) box #1 .*entirely inside boxes of other classes"),
    ],
)
def test_bad_boxes_are_rejected(fg: list[tuple[int, ...]], bg: list[tuple[int, ...]], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        iterate(IMG, fg_boxes=fg, bg_boxes=bg)


def test_boxes_are_clipped_and_overlap_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    cfg = Self2SegConfig(max_outer_iter=1, denoiser=DenoiserConfig(width=2, n_blocks=1, patience=2, average_last=2))
    stream = iterate(IMG, cfg, fg_boxes=[(-5, -5, 10, 10)], bg_boxes=[(8, 8, 40, 40)], device="cpu")
    first = next(stream)
    stream.close()
    assert first.mask[:8, :8].all() and not first.mask[8:10, 8:10].any()
    assert "overlap" in caplog.text


def test_invalid_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"lam \(λ\) must be > 0"):
        Self2SegConfig(lam=0)
    with pytest.raises(ValueError, match="lam"):
        Self2SegConfig(lam=-0.1)
    with pytest.raises(ValueError, match="mu"):
        Self2SegConfig(mu=-1)
    with pytest.raises(ValueError, match=r"experts must be a tuple of expert kinds"):
        Self2SegConfig(experts=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"expert kinds are network, constant, auto; got 'net'"):
        Self2SegConfig(experts=("net",))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="classes must be between 2 and 256"):
        Self2SegConfig(classes=1)
    with pytest.raises(ValueError, match="init must be one of"):
        Self2SegConfig(init="magic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="odd size"):
        Self2SegConfig(residual_filter=4)
    with pytest.raises(ValueError, match=r"texture_window must be an odd size >= 1 \(1 = per-pixel residuals\), got 0"):
        Self2SegConfig(texture_window=0)
    with pytest.raises(ValueError, match="texture_window must be an odd size"):
        Self2SegConfig(texture_window=4)
    with pytest.raises(ValueError, match=r"local_means must be >= 0 pixels \(0 = one mean per class\), got -1"):
        Self2SegConfig(local_means=-1)
    with pytest.raises(ValueError, match="local_means must be a number"):
        Self2SegConfig(local_means="24")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown preset"):
        preset("turbo")


def test_init_modes_need_their_inputs() -> None:
    with pytest.raises(ValueError, match="init='mask' needs an init_mask"):
        iterate(IMG, Self2SegConfig(init="mask"))
    with pytest.raises(ValueError, match="only used with init='mask'"):
        iterate(IMG, fg_boxes=FG, bg_boxes=BG, init_mask=IMG > 0)
    with pytest.raises(ValueError, match="shape"):
        iterate(IMG, Self2SegConfig(init="mask"), init_mask=np.ones((4, 4)))
    with pytest.raises(ValueError, match="both foreground"):
        iterate(IMG, Self2SegConfig(init="mask"), init_mask=np.ones((32, 32)))


def test_threshold_on_a_flat_denoising_is_rejected() -> None:
    with pytest.raises(ValueError, match="leaves no pixel above"):
        threshold_regions(np.zeros((32, 32)), 2, 0.5, "denoised image")
    bg, fg = threshold_regions(np.linspace(0, 1, 32 * 32).reshape(32, 32), 2, 0.5, "image")
    assert fg.any() and bg.any() and not (fg & bg).any()


def test_otsu_threshold_maximises_the_between_class_variance() -> None:
    """``threshold="otsu"`` splits where a brute-force search over all cuts finds the largest between-class variance;
    a dim object next to one saturated pixel is found, where the paper's fixed 0.5 keeps only that pixel."""
    rng = np.random.default_rng(3)
    grey = np.full((24, 24), 0.1) + rng.normal(0, 0.02, (24, 24))
    grey[6:14, 6:14] += 0.2  # dim object
    grey[20, 20] = 1.0  # one saturated pixel
    values = np.sort(grey.ravel())

    def between(cut: float) -> float:
        low, high = values[values <= cut], values[values > cut]
        return float(low.size * high.size * (low.mean() - high.mean()) ** 2)

    best = max(values[:-1], key=between)
    bg, fg = threshold_regions(grey, 2, "otsu", "image")
    np.testing.assert_array_equal(fg, grey > best)
    assert fg[6:14, 6:14].all() and fg.sum() == 8 * 8 + 1 and not (fg & bg).any()
    assert threshold_regions(grey, 2, 0.5, "image")[1].sum() == 1
    with pytest.raises(ValueError, match="flat"):
        threshold_regions(np.zeros((8, 8)), 2, "otsu", "image")
    with pytest.raises(ValueError, match="'otsu'"):
        Self2SegConfig(threshold="Otsu")  # type: ignore[arg-type]


def test_more_classes_are_thresholded_by_multi_otsu() -> None:
    ramp = np.repeat(np.linspace(0, 1, 48), 48).reshape(48, 48)
    regions = threshold_regions(ramp, 3, 0.5, "image")
    assert regions.shape == (3, 48, 48) and (regions.sum(axis=0) == 1).all()
    assert ramp[regions[0]].max() < ramp[regions[1]].min() and ramp[regions[1]].max() < ramp[regions[2]].min()
    with pytest.raises(ValueError, match=r"empty|cannot split"):
        threshold_regions(np.zeros((32, 32)), 3, 0.5, "image")


@pytest.mark.parametrize(
    ("name", "match"), [("gpu", "unknown device"), ("tpu", "unknown device"), ("cuda:99", "CUDA|does not exist")]
)
def test_unknown_or_missing_devices_are_rejected(name: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        resolve_device(name)


def test_auto_device_resolves() -> None:
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    assert resolve_device("cpu").type == "cpu"


def test_caller_array_is_never_modified() -> None:
    img = IMG.copy()
    img.flags.writeable = False  # any write would raise
    cfg = Self2SegConfig(max_outer_iter=1, denoiser=DenoiserConfig(width=2, n_blocks=1, patience=2, average_last=2))
    for _ in iterate(img, cfg, fg_boxes=FG, bg_boxes=BG, device="cpu"):
        pass
    np.testing.assert_array_equal(img, IMG)


def test_presets() -> None:
    fast, paper = preset("fast"), preset("paper")
    assert paper == Self2SegConfig()
    assert paper.denoiser.width == 64 and paper.denoiser.n_blocks == 4 and paper.solver.max_iter == 8000
    assert fast.denoiser.warm_start and fast.denoiser.patch_size is not None
    assert preset() == fast
    with pytest.raises(ValueError, match="patch_size"):
        DenoiserConfig(patch_size=4)


THREE = {0: [(0, 0, 6, 32)], 1: [(10, 10, 16, 16)], 2: [(20, 20, 28, 28)]}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"boxes": {0: [(0, 0, 6, 32)], 2: [(20, 20, 28, 28)]}}, r"no box was given for class 1.*from 0 to 2"),
        ({"boxes": {0: [(0, 0, 6, 32)], 256: [(20, 20, 28, 28)]}}, r"integers from 0 \(background\) to 255"),
        ({"boxes": {"1": [(0, 0, 6, 32)]}}, r"integers from 0 \(background\) to 255"),
        ({"boxes": [(0, 0, 6, 32)]}, r"map a class index to a list of boxes"),
        ({"boxes": THREE, "fg_boxes": FG}, r"not both"),
        ({"boxes": THREE, "channel_axis": 0}, r"channel_axis=0 was given but the image is 2-D"),
    ],
)
def test_bad_class_boxes_are_rejected(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        iterate(IMG, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("image", "axis", "match"),
    [
        (np.random.default_rng(0).normal(size=(32, 32, 3)), 3, r"out of range.*0, 1, 2 or -1"),
        (np.random.default_rng(0).normal(size=(32, 32, 20)), -1, r"more than 16 channels is probably a stack"),
        (np.dstack([IMG, np.ones((32, 32))]), -1, r"channel 1 is constant.*leave that channel out"),
        (np.zeros((2, 3, 32, 32)), 0, r"one channel axis"),
    ],
)
def test_bad_channel_axes_are_rejected(image: np.ndarray, axis: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        iterate(image, boxes=THREE, channel_axis=axis)


def test_experts_must_fit_the_classes() -> None:
    config = Self2SegConfig(experts=("network", "constant", "network", "network"))
    with pytest.raises(ValueError, match=r"lists 4 kinds .* 3 classes"):
        iterate(IMG, config, boxes=THREE)


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.zeros((32, 32), dtype=int), "both foreground"),
        (np.where(IMG > 0, 2, 0), r"no pixel of class\(es\) \[1\]"),
        (np.full((32, 32), -1), "from 0 \\(background\\) to 255"),
    ],
)
def test_bad_label_images_are_rejected(labels: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        iterate(IMG, Self2SegConfig(init="mask"), init_mask=labels)


def test_label_image_init_gives_one_region_per_class() -> None:
    labels = np.zeros((32, 32), dtype=np.uint8)
    labels[8:16] = 1
    labels[20:] = 2
    cfg = Self2SegConfig(init="mask", max_outer_iter=1, denoiser=DenoiserConfig(width=2, n_blocks=1, patience=2))
    first = next(iterate(IMG, cfg, init_mask=labels, device="cpu"))
    np.testing.assert_array_equal(first.labels, labels)
    assert first.relaxed.shape == (3, 32, 32)
