"""Segmentation quality measures: Dice of masks, matching and average precision of instances."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice coefficient ``2 |P ∩ T| / (|P| + |T|)`` of two binary masks.

    Non-zero values count as foreground. Two empty masks give 1.0.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    p, t = np.asarray(prediction) != 0, np.asarray(truth) != 0
    if p.shape != t.shape:
        raise ValueError(f"masks must have the same shape, got {p.shape} and {t.shape}")
    total = int(p.sum()) + int(t.sum())
    return 1.0 if total == 0 else 2.0 * int((p & t).sum()) / total


DSB_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
"""IoU thresholds 0.5, 0.55, …, 0.95 of the DSB2018 challenge's mean average precision."""


@dataclass(frozen=True)
class Matching:
    """Predicted objects matched one to one to true objects at one IoU threshold.

    Attributes
    ----------
    threshold : float
        A pair counts as a match when its IoU is at least this.
    tp, fp, fn : int
        Matched pairs, unmatched predictions, unmatched true objects.
    mean_matched_iou : float
        Mean IoU of the matched pairs (0 without any).
    """

    threshold: float
    tp: int
    fp: int
    fn: int
    mean_matched_iou: float

    @property
    def precision(self) -> float:
        """TP / (TP + FP); 1 when nothing was predicted."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """TP / (TP + FN); 1 when there is nothing to find."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        """2 TP / (2 TP + FP + FN); 1 when both are empty."""
        total = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / total if total else 1.0

    @property
    def average_precision(self) -> float:
        """TP / (TP + FP + FN), the DSB2018 score at this threshold; 1 when both are empty."""
        total = self.tp + self.fp + self.fn
        return self.tp / total if total else 1.0


def iou_matrix(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """IoU of every true object (rows, labels 1..) with every predicted object (columns, labels 1..).

    Labels need not be consecutive: row ``i`` is the ``i``-th smallest non-zero true label.
    """
    t, p = np.asarray(truth), np.asarray(prediction)
    if t.shape != p.shape:
        raise ValueError(f"label images must have the same shape, got {t.shape} and {p.shape}")
    t_ids, t_index = np.unique(t, return_inverse=True)
    p_ids, p_index = np.unique(p, return_inverse=True)
    overlap = np.zeros((len(t_ids), len(p_ids)), dtype=np.int64)
    np.add.at(overlap, (t_index.ravel(), p_index.ravel()), 1)
    t_rows, p_cols = t_ids != 0, p_ids != 0
    inter = overlap[np.ix_(t_rows, p_cols)]
    t_area, p_area = overlap.sum(axis=1)[t_rows], overlap.sum(axis=0)[p_cols]
    union = t_area[:, None] + p_area[None, :] - inter
    iou: np.ndarray = np.divide(inter, union, out=np.zeros(inter.shape), where=union > 0)
    return iou


def match_instances(truth: np.ndarray, prediction: np.ndarray, threshold: float = 0.5) -> Matching:
    """Match predicted to true objects one to one and count hits at an IoU threshold.

    The matching maximises the number of pairs with IoU ≥ ``threshold`` and then
    their total IoU (Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``),
    as stardist's ``matching`` does. Above 0.5 a match is unique anyway.

    Parameters
    ----------
    truth, prediction : np.ndarray
        Label images of the same shape, 0 = no object.
    threshold : float
        IoU threshold in (0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> truth = np.array([[1, 1, 0, 2, 2]])
    >>> match_instances(truth, np.array([[3, 3, 0, 0, 0]])).average_precision
    0.5
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"the IoU threshold must be in (0, 1], got {threshold}")
    iou = iou_matrix(truth, prediction)
    n_true, n_pred = iou.shape
    tp, matched = 0, 0.0
    if n_true and n_pred:
        hit = iou >= threshold
        cost = -(hit + iou / (2 * max(n_true, n_pred)))  # a hit always outweighs any IoU gain
        rows, cols = linear_sum_assignment(cost)
        good = hit[rows, cols]
        tp, matched = int(good.sum()), float(iou[rows, cols][good].sum())
    return Matching(threshold, tp, n_pred - tp, n_true - tp, matched / tp if tp else 0.0)


def average_precision(
    truth: np.ndarray, prediction: np.ndarray, thresholds: tuple[float, ...] = DSB_THRESHOLDS
) -> dict[float, Matching]:
    """Match at every IoU threshold (default: the DSB2018 thresholds 0.5:0.05:0.95)."""
    return {t: match_instances(truth, prediction, t) for t in thresholds}


def mean_average_precision(truth: np.ndarray, prediction: np.ndarray) -> float:
    """Return the DSB2018 score: TP / (TP + FP + FN) averaged over IoU thresholds 0.5, 0.55, …, 0.95."""
    return float(np.mean([m.average_precision for m in average_precision(truth, prediction).values()]))
