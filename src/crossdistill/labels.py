"""Small helpers on integer label arrays, shared by every method."""

from __future__ import annotations

import numpy as np


def relabel_by_size(labels: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Renumber labels 0..K-1 by decreasing count (ties by label value; deterministic).

    Args:
        labels: (N,) int labels (any values).
        weights: optional (N,) element weights (e.g. face areas): order by total weight instead of count.

    Returns:
        (N,) int64 labels.

    Example:
        >>> relabel_by_size(np.array([7, 3, 3, 9])).tolist()
        [1, 0, 0, 2]
    """
    _, inv, cnt = np.unique(labels, return_inverse=True, return_counts=True)
    if weights is not None:
        cnt = np.bincount(inv.reshape(-1), weights=np.asarray(weights, dtype=np.float64), minlength=len(cnt))
    order = np.argsort(-cnt, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank[inv.reshape(-1)].astype(np.int64)
