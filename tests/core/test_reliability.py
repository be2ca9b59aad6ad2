"""The box separation of the first experts and its warning; the class separation of a step (core/reliability.py)."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import TYPE_CHECKING

import numpy as np
import pytest
import tifffile
import torch

from napari_self2seg import cli
from napari_self2seg.core import resegment, segment
from napari_self2seg.core.reliability import (
    LOCAL_WINDOW,
    RELIABLE_SEPARATION,
    box_separation,
    class_separation,
    separation_warning,
)

if TYPE_CHECKING:
    from pathlib import Path

    from napari_self2seg.core import Self2SegConfig
    from napari_self2seg.datasets import SyntheticImage


def _brute_force(residuals: np.ndarray, boxes: np.ndarray) -> float:
    """The definition, loop by loop: window means cut at the border, Fisher's ratio, smallest pair."""
    classes, h, w = residuals.shape
    r = LOCAL_WINDOW // 2
    best = math.inf
    for j in range(classes):
        for k in range(j + 1, classes):
            if boxes[j].sum() < 2 or boxes[k].sum() < 2:
                continue
            d = residuals[k] - residuals[j]
            local = np.empty_like(d)
            for y in range(h):
                for x in range(w):
                    local[y, x] = d[max(y - r, 0) : y + r + 1, max(x - r, 0) : x + r + 1].mean()
            a, b = local[boxes[j]], local[boxes[k]]
            best = min(best, (a.mean() - b.mean()) / math.sqrt((a.var() + b.var()) / 2))
    return best


def test_box_separation_matches_the_definition_computed_by_hand() -> None:
    rng = np.random.default_rng(3)
    residuals = rng.random((3, 14, 17))
    residuals[1, 2:8, 3:9] -= 0.3  # class 1 fits its box better: a clear but noisy separation
    boxes = np.zeros((3, 14, 17), bool)
    boxes[0, 9:13, 10:16] = True
    boxes[1, 2:8, 3:9] = True
    boxes[2, 0:3, 12:17] = True
    expected = _brute_force(residuals, boxes)
    got = box_separation(torch.from_numpy(residuals), torch.from_numpy(boxes))
    assert got == pytest.approx(expected, rel=1e-12)
    # the smallest pair decides: without class 2 (an empty box is skipped) the score is the 0–1 pair's alone
    boxes[2] = False
    assert box_separation(torch.from_numpy(residuals), torch.from_numpy(boxes)) == pytest.approx(
        _brute_force(residuals[:2], boxes[:2]), rel=1e-12
    )


def test_box_separation_ignores_offset_and_scale_and_the_class_order() -> None:
    rng = np.random.default_rng(5)
    residuals = torch.from_numpy(rng.random((2, 20, 20)))
    residuals[0, :, 10:] += 0.2
    boxes = torch.zeros((2, 20, 20), dtype=torch.bool)
    boxes[0, 2:12, 0:8] = True
    boxes[1, 8:18, 12:20] = True
    s = box_separation(residuals, boxes)
    assert s > 0  # class 1's box is where class 0's residual is larger
    assert box_separation(3.0 * residuals + 7.0, boxes) == pytest.approx(s, rel=1e-9)
    assert box_separation(residuals.flip(0), boxes.flip(0)) == pytest.approx(s, rel=1e-12)
    # boxes swapped: the experts explain the wrong boxes, the separation changes sign
    assert box_separation(residuals, boxes.flip(0)) == pytest.approx(-s, rel=1e-12)


def test_box_separation_without_usable_boxes_is_infinite() -> None:
    residuals = torch.rand(2, 8, 8)
    boxes = torch.zeros(2, 8, 8, dtype=torch.bool)
    boxes[0, 0, 0] = True  # one pixel: no spread to measure
    boxes[1, 4:8, 4:8] = True
    assert box_separation(residuals, boxes) == math.inf


def test_class_separation_matches_the_definition_computed_by_hand() -> None:
    rng = np.random.default_rng(8)
    labels = np.zeros((14, 17), dtype=np.int64)
    labels[2:9, 3:11], labels[9:, 12:] = 1, 2
    residuals = rng.random((3, 14, 17))
    for k in range(3):
        residuals[k][labels == k] -= 0.1 * (k + 1)  # each class fits its own pixels better, by different margins
    one_hot = np.stack([labels == k for k in range(3)])
    got = class_separation(torch.from_numpy(residuals), torch.from_numpy(labels))
    assert got == pytest.approx(_brute_force(residuals, one_hot), rel=1e-12) and got > 0
    # classes the experts mix up score below zero; a class of one pixel gives no evidence at all
    assert class_separation(torch.from_numpy(residuals[[1, 0, 2]]), torch.from_numpy(labels)) < 0
    labels[labels == 2] = 0
    labels[0, 0] = 2
    assert class_separation(torch.from_numpy(residuals), torch.from_numpy(labels)) == -math.inf


def test_class_separation_does_not_reward_a_mask_that_follows_the_noise() -> None:
    # residuals of experts that cannot tell anything apart; a tiny λ labels each pixel by the sign of r_1 - r_0
    residuals = torch.from_numpy(np.random.default_rng(2).normal(0.0, 1.0, (2, 48, 48)))
    speckle = (residuals[1] < residuals[0]).long()
    d = residuals[1] - residuals[0]
    raw = float(
        (d[speckle == 0].mean() - d[speckle == 1].mean()) / ((d[speckle == 0].var() + d[speckle == 1].var()) / 2).sqrt()
    )
    assert raw > 2.0  # the raw data term separates its own sign perfectly well
    assert abs(class_separation(residuals, speckle)) < 0.5  # averaged over 9 × 9 px: no better than chance


def test_separation_warning_only_below_the_threshold() -> None:
    assert separation_warning(RELIABLE_SEPARATION) is None
    assert separation_warning(math.inf) is None
    low = separation_warning(RELIABLE_SEPARATION / 2)
    assert low is not None and f"{RELIABLE_SEPARATION / 2:.2g}" in low and "check" in low
    assert separation_warning(-1.0) is not None  # boxes the experts mix up


def _noise_only(size: int = 40) -> np.ndarray:
    """Both 'regions' are the same noise: no expert can tell them apart."""
    return np.random.default_rng(11).normal(0.5, 0.1, (size, size)).astype(np.float32)


def test_a_run_reports_its_box_separation_and_resegment_keeps_it(
    textures: SyntheticImage, tiny_config: Self2SegConfig
) -> None:
    config = dataclasses.replace(tiny_config, max_outer_iter=1)
    good = segment(
        textures.image, config, fg_boxes=[textures.fg_box], bg_boxes=[textures.bg_box], seed=0, keep_problem=True
    )
    assert good.box_separation is not None and good.box_separation >= RELIABLE_SEPARATION
    assert good.reliability_warning is None
    assert resegment(good, lam=good.lam / 2).box_separation == good.box_separation
    noise = segment(_noise_only(), config, fg_boxes=[(4, 4, 18, 18)], bg_boxes=[(22, 22, 36, 36)], seed=0)
    assert noise.box_separation is not None and abs(noise.box_separation) < RELIABLE_SEPARATION
    assert noise.reliability_warning is not None and "barely tell the boxes apart" in noise.reliability_warning
    no_boxes = segment(textures.image, dataclasses.replace(config, init="threshold", threshold=0.5), seed=0)
    assert no_boxes.box_separation is None and no_boxes.reliability_warning is None


def test_cli_warns_and_records_a_low_box_separation(
    tmp_path: Path, tiny_config: Self2SegConfig, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "preset", lambda name: dataclasses.replace(tiny_config, max_outer_iter=1))
    tifffile.imwrite(tmp_path / "noise.tif", _noise_only())
    boxes = ["--fg-box", "4", "4", "18", "18", "--bg-box", "22", "22", "36", "36", "--device", "cpu", "-q"]
    record_path = tmp_path / "run.json"
    outputs = ["--mask-out", str(tmp_path / "mask.tif"), "--json-out", str(record_path)]
    assert cli.main(["segment", str(tmp_path / "noise.tif"), *boxes, *outputs]) == 0
    err = capsys.readouterr().err
    assert "warning: the experts barely tell the boxes apart" in err
    record = json.loads(record_path.read_text())
    assert abs(record["box_separation"]) < RELIABLE_SEPARATION and "check this one" in record["reliability_warning"]
