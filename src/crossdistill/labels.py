"""Small helpers on integer label arrays, shared by every method."""

from __future__ import annotations

import numpy as np


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber labels 0..K-1 by decreasing count (ties by label value; deterministic).

    Args:
        labels: (N,) int labels (any values).

    Returns:
        (N,) int64 labels.

    Example:
        >>> relabel_by_size(np.array([7, 3, 3, 9])).tolist()
        [1, 0, 0, 2]
    """
    _, inv, cnt = np.unique(labels, return_inverse=True, return_counts=True)
    order = np.argsort(-cnt, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[inv.reshape(-1)].astype(np.int64)
