"""Clustering grouping features into parts at one scale (SAMPart3D stage 3).

SAMPart3D clusters the features of all points with HDBSCAN. On a CPU that costs seconds
per scale on 15k points (``STACK.md``), so the fast preset clusters a spatially uniform
subsample (farthest-point order) and propagates: every other point takes the label of the
feature-nearest clustered point among its spatial neighbours. HDBSCAN's noise points are
propagated the same way, so every point gets a part; the paper preset clusters every point.

The ``join`` rule (:mod:`.rules`) joins clusters whose mean features lie closer than a
multiple of the push margin m of Eq. 5 (average linkage on cluster means): HDBSCAN can
split what the loss never pushed apart. Where it is on, and why, is in ``rules.py`` and
the results it points to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree
from sklearn.cluster import HDBSCAN

from crossdistill.labels import relabel_by_size


@dataclass(frozen=True)
class ClusterConfig:
    """HDBSCAN settings.

    Attributes:
        max_points: size of the clustered subsample.
        min_cluster_size: smallest part, as a fraction of the subsample (at least 5 points).
        min_samples: HDBSCAN's density parameter (None = min_cluster_size).
        epsilon: ``cluster_selection_epsilon`` in feature units (the released code: 0.1). The
            contrastive loss pulls a group's features to one point; without it HDBSCAN
            shatters such collapsed groups into arbitrary clusters.
        neighbors: spatial neighbours considered when propagating labels.
    """

    max_points: int = 3000
    min_cluster_size: float = 0.004
    min_samples: int | None = 5
    epsilon: float = 0.1
    neighbors: int = 8


def cluster_points(features: np.ndarray, points: np.ndarray, config: ClusterConfig = ClusterConfig(),
                   subsample: np.ndarray | None = None, margin: float = 1.0,
                   join: float | None = None) -> np.ndarray:
    """Cluster N points into parts.

    Args:
        features: (N, D) grouping features at one scale.
        points: (N, 3) positions (for spatial propagation).
        subsample: optional (S,) indices to cluster (defaults to a random subset of
            ``config.max_points``); reuse one subsample across scales for consistent parts.
        margin: the push margin m the features were trained with (Eq. 5).
        join: join clusters whose mean features lie closer than this multiple of ``margin``
            (the ``join`` rule of :mod:`.rules`); None keeps HDBSCAN's clusters.

    Returns:
        (N,) int64 part labels 0..K-1, ordered by decreasing size.
    """
    n = len(features)
    if subsample is None:
        subsample = np.random.default_rng(0).permutation(n)[: config.max_points]
    sub = np.asarray(subsample)
    f_sub = np.asarray(features[sub], dtype=np.float64)
    mcs = max(5, int(round(config.min_cluster_size * len(sub))))
    if len(sub) <= mcs:
        return np.zeros(n, dtype=np.int64)
    lab_sub = hdbscan_labels(f_sub, mcs, config.min_samples, config.epsilon)
    if (lab_sub < 0).all():
        return np.zeros(n, dtype=np.int64)
    labels = propagate_labels(features, points, sub, lab_sub, config.neighbors)
    if join is not None:
        labels = merge_close_clusters(features, labels, join * margin)
    return relabel_by_size(labels)


#: features of at least this many dimensions, and at most this many bytes of two S x S float64
#: distance matrices, are clustered with the all-pairs algorithm of the ``hdbscan`` package
GENERIC_MIN_DIM = 64
GENERIC_MAX_BYTES = 4 * 2**30


def hdbscan_labels(features: np.ndarray, min_cluster_size: int, min_samples: int | None,
                   epsilon: float) -> np.ndarray:
    """(S,) HDBSCAN labels (-1 = noise) of (S, D) features.

    scikit-learn's HDBSCAN raises a TypeError under NumPy 2 as soon as
    ``cluster_selection_epsilon`` is above 0 (scikit-learn issue #33219), so a positive
    epsilon (the released SAMPart3D code uses 0.1) goes through the ``hdbscan`` package,
    the implementation cuML's, which the released code calls, follows.
    """
    if epsilon > 0:
        import hdbscan

        kw: dict = {}
        if features.shape[1] >= GENERIC_MIN_DIM and 16 * len(features) ** 2 <= GENERIC_MAX_BYTES:
            # space-partitioning trees do not prune in high dimension: the exact all-pairs
            # algorithm finds the same tree many times faster, in O(S^2) memory
            kw = {"algorithm": "generic"}
            features = np.asarray(features, dtype=np.float64)
        return hdbscan.HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples,
                               cluster_selection_epsilon=float(epsilon),
                               allow_single_cluster=False, **kw).fit_predict(features)
    return HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, cluster_selection_epsilon=0.0,
                   allow_single_cluster=False, copy=True).fit_predict(features)


def merge_close_clusters(features: np.ndarray, labels: np.ndarray, distance: float) -> np.ndarray:
    """Join clusters whose mean features are closer than ``distance`` (average linkage).

    Args:
        features: (N, D) features; labels: (N,) int labels >= 0; distance: joining threshold.

    Returns:
        (N,) int64 labels (joined clusters share one label; values not compacted).
    """
    from scipy.cluster.hierarchy import fcluster, linkage

    lab = np.asarray(labels, dtype=np.int64)
    ids, inv = np.unique(lab, return_inverse=True)
    if len(ids) < 2:
        return lab
    f = np.asarray(features, dtype=np.float64)
    means = np.zeros((len(ids), f.shape[1]))
    np.add.at(means, inv, f)
    means /= np.bincount(inv, minlength=len(ids))[:, None]
    joined = fcluster(linkage(means, method="average"), t=distance, criterion="distance")
    return joined[inv].astype(np.int64)


def propagate_labels(features: np.ndarray, points: np.ndarray, sub: np.ndarray, lab_sub: np.ndarray,
                     k: int = 8) -> np.ndarray:
    """Give every point the label of the feature-nearest labelled subsample point among its k spatial neighbours.

    Args:
        features: (N, D); points: (N, 3); sub: (S,) indices; lab_sub: (S,) labels, -1 = noise.

    Returns:
        (N,) labels (no -1 left).
    """
    keep = lab_sub >= 0
    src = sub[keep]
    src_lab = lab_sub[keep]
    tree = cKDTree(points[src])
    k = min(k, len(src))
    _, nn = tree.query(points, k=k, workers=-1)
    nn = nn.reshape(len(points), k)
    cand = src[nn]  # (N, k) point indices
    fd = ((features[cand] - features[:, None, :]) ** 2).sum(-1)  # (N, k)
    best = nn[np.arange(len(points)), fd.argmin(1)]
    return src_lab[best]
