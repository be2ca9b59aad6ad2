"""Matching and average precision of instances: hand-made cases with known answers, brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from napari_self2seg.core.metrics import (
    DSB_THRESHOLDS,
    average_precision,
    iou_matrix,
    match_instances,
    mean_average_precision,
)

TRUTH = np.zeros((20, 40), np.int32)
TRUTH[2:8, 2:10] = 1  # 48 px
TRUTH[2:8, 20:30] = 2  # 60 px
TRUTH[12:18, 5:25] = 3  # 120 px


def test_a_perfect_prediction_scores_one_at_every_threshold() -> None:
    relabelled = np.where(TRUTH > 0, 10 - TRUTH, 0)  # other numbers, same objects
    for m in average_precision(TRUTH, relabelled).values():
        assert (m.tp, m.fp, m.fn) == (3, 0, 0) and m.average_precision == 1.0 and m.mean_matched_iou == 1.0
    assert mean_average_precision(TRUTH, relabelled) == 1.0


def test_one_missed_object() -> None:
    m = match_instances(TRUTH, np.where(TRUTH == 2, 0, TRUTH))
    assert (m.tp, m.fp, m.fn) == (2, 0, 1)
    assert m.precision == 1.0 and m.recall == pytest.approx(2 / 3) and m.average_precision == pytest.approx(2 / 3)
    assert m.f1 == pytest.approx(0.8)


def test_one_object_split_in_two() -> None:
    prediction = TRUTH.copy()
    prediction[12:18, 5:15] = 4  # object 3 cut in halves of IoU 0.5 each
    m = match_instances(TRUTH, prediction, 0.5)
    assert (m.tp, m.fp, m.fn) == (3, 1, 0)  # one half still reaches IoU 0.5
    strict = match_instances(TRUTH, prediction, 0.55)
    assert (strict.tp, strict.fp, strict.fn) == (2, 2, 1) and strict.average_precision == pytest.approx(2 / 5)


def test_two_objects_merged_into_one() -> None:
    prediction = TRUTH.copy()
    prediction[2:8, 2:30] = 1  # objects 1, 2 and the gap between them: IoU 60/168 with object 2
    m = match_instances(TRUTH, prediction)
    assert (m.tp, m.fp, m.fn) == (1, 1, 2)


def test_empty_prediction_and_empty_truth() -> None:
    empty = np.zeros_like(TRUTH)
    assert (lambda m: (m.tp, m.fp, m.fn, m.average_precision))(match_instances(TRUTH, empty)) == (0, 0, 3, 0.0)
    assert (lambda m: (m.tp, m.fp, m.fn, m.average_precision))(match_instances(empty, TRUTH)) == (0, 3, 0, 0.0)
    both = match_instances(empty, empty)
    assert both.average_precision == 1.0 and both.precision == 1.0 and both.recall == 1.0


def test_iou_matrix_against_a_direct_count() -> None:
    rng = np.random.default_rng(0)
    truth, prediction = rng.integers(0, 4, (12, 12)), rng.integers(0, 5, (12, 12)) * 3
    iou = iou_matrix(truth, prediction)
    for i, t in enumerate((1, 2, 3)):
        for j, p in enumerate((3, 6, 9, 12)):
            a, b = truth == t, prediction == p
            assert iou[i, j] == pytest.approx((a & b).sum() / (a | b).sum())


def best_matching_by_brute_force(iou: np.ndarray, threshold: float) -> int:
    n_true, n_pred = iou.shape
    best = 0
    for chosen in itertools.permutations(range(max(n_true, n_pred)), n_true):
        pairs = [(i, j) for i, j in enumerate(chosen) if j < n_pred]
        best = max(best, sum(iou[i, j] >= threshold for i, j in pairs))
    return best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.5])
def test_the_matching_finds_as_many_hits_as_brute_force(seed: int, threshold: float) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 5, (4, 6))  # blocky random objects overlap in many ways
    prediction = np.repeat(rng.integers(0, 5, (4, 3)), 2, axis=1)
    m = match_instances(truth, prediction, threshold)
    assert m.tp == best_matching_by_brute_force(iou_matrix(truth, prediction), threshold)
    assert m.tp + m.fn == len(np.unique(truth[truth > 0])) and m.tp + m.fp == len(np.unique(prediction[prediction > 0]))


def test_thresholds_and_bad_input() -> None:
    assert DSB_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
    with pytest.raises(ValueError, match="same shape"):
        match_instances(TRUTH, TRUTH[:, :10])
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        match_instances(TRUTH, TRUTH, 0.0)
