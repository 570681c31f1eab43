"""Nearest-neighbour queries on point sets (scipy ``cKDTree``)."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

__all__ = ["knn", "radius_neighbors"]


def knn(ref: np.ndarray, query: np.ndarray, k: int, workers: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest reference points of every query point.

    Args:
        ref: (N, D) reference points.
        query: (Q, D) query points (pass ``ref`` again for self-neighbours; each
            point is then its own first neighbour at distance 0).
        k: neighbours per query, >= 1.
        workers: threads for the query (-1: all cores).

    Returns:
        dist: (Q, k) float64 Euclidean distances, ascending along axis 1.
        idx: (Q, k) int64 indices into ``ref``. When ``k > N`` the missing
            columns hold ``idx = -1`` and ``dist = inf``.

    Example:
        >>> ref = np.array([[0.0, 0, 0], [1, 0, 0], [5, 0, 0]])
        >>> dist, idx = knn(ref, np.array([[0.9, 0, 0]]), k=2)
        >>> idx.tolist(), dist.round(1).tolist()
        ([[1, 0]], [[0.1, 0.9]])
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ref = np.asarray(ref, dtype=np.float64)
    query = np.asarray(query, dtype=np.float64)
    if len(ref) == 0:
        return np.full((len(query), k), np.inf), np.full((len(query), k), -1, dtype=np.int64)
    dist, idx = cKDTree(ref).query(query, k=k, workers=workers)
    dist = np.asarray(dist, dtype=np.float64).reshape(len(query), k)
    idx = np.asarray(idx, dtype=np.int64).reshape(len(query), k)
    idx[idx >= len(ref)] = -1
    return dist, idx


def radius_neighbors(ref: np.ndarray, query: np.ndarray, radius: float, workers: int = -1) -> list[np.ndarray]:
    """Indices of all reference points within ``radius`` of each query point.

    Args:
        ref: (N, D) reference points.
        query: (Q, D) query points.
        radius: search radius (inclusive).

    Returns:
        A list of Q int64 arrays of indices into ``ref`` (sorted ascending).
    """
    ref = np.asarray(ref, dtype=np.float64)
    query = np.asarray(query, dtype=np.float64)
    hits = cKDTree(ref).query_ball_point(query, r=radius, workers=workers, return_sorted=True)
    return [np.asarray(h, dtype=np.int64) for h in hits]
