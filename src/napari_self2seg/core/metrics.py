"""Segmentation quality measures (numpy in, float out)."""

from __future__ import annotations

import numpy as np


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
