"""Stage 1 of PartDistillation: part proposals by k-means of the teacher's pixel features.

Cho et al. (PartDistillation, CVPR 2023) observe that the pixel features of a strong
instance-segmentation model already separate an object's parts: clustering them inside
each instance mask (k-means, K = 4 in their released configuration) gives class-agnostic
part segments, which they smooth with a dense CRF. The paper compares distance metrics for
this grouping and finds cosine better than Euclidean. Here, per :class:`InstanceCrop`:

1. the features of the object's grid cells are, with ``standardize``, standardised per
   channel over the object (the offline teacher's channels have arbitrary scales and
   constant channels); with ``metric="cosine"`` each cell's feature vector is then scaled
   to unit length, so k-means groups by direction (for unit vectors the squared Euclidean
   distance is ``2 - 2 cos``: k-means on them is cosine k-means); ``metric="euclidean"``
   keeps the lengths. The cell's normalised (x, y) position in the box, times
   ``spatial_weight``, is appended so that a cluster tends to be one region;
2. k-means (scikit-learn, ``n_init`` restarts, seeded) for every K in ``ks``;
3. in place of the dense CRF, a 3 x 3 majority filter inside the object smooths the
   labels, and pieces of a cluster below ``min_fraction`` of the object join the cluster
   that surrounds them most.

Every K gives a partition of the object; their union (near-duplicates dropped) is the
proposal set the part decoder first trains on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from crossdistill.methods.partdistillation.crops import InstanceCrop

__all__ = ["ProposalConfig", "absorb_small_pieces", "cell_features", "kmeans_partition", "part_proposals",
           "partition_masks"]


@dataclass(frozen=True)
class ProposalConfig:
    """k-means pixel grouping.

    Attributes:
        ks: cluster counts; each gives one partition of the object (PartDistillation: 4).
        spatial_weight: weight of the (x, y) position appended to the standardised features.
        min_fraction: smallest piece of a cluster kept on its own, as a share of the object.
        n_init: k-means restarts.
        dedupe_iou: proposals overlapping an earlier one by at least this IoU are dropped.
        metric: "cosine" (unit-length features, the paper's better metric) or "euclidean".
        standardize: standardise every channel over the object's cells first.
    """

    ks: tuple[int, ...] = (4,)
    spatial_weight: float = 1.0
    min_fraction: float = 0.01
    n_init: int = 3
    dedupe_iou: float = 0.9
    metric: str = "cosine"
    standardize: bool = True

    def __post_init__(self) -> None:
        if not self.ks or min(self.ks) < 1:
            raise ValueError("ks must hold cluster counts >= 1")
        if self.metric not in ("cosine", "euclidean"):
            raise ValueError(f"metric must be cosine or euclidean, got {self.metric!r}")


def cell_features(crop: InstanceCrop, config: "ProposalConfig") -> np.ndarray:
    """(n, C + 2) grouping features of the object's n cells (row-major): features + weighted position.

    See the module docstring (steps 1). A unit of position weighs as much as all feature
    channels together (standardised features are scaled by 1/sqrt(C), unit ones have norm 1).
    """
    m = crop.mask
    f = crop.features[:, m].T.astype(np.float64)  # (n, C)
    if config.standardize:
        f = (f - f.mean(0)) / np.maximum(f.std(0), 1e-6)
    if config.metric == "cosine":
        f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-9)
    elif config.standardize:
        f /= np.sqrt(f.shape[1])
    S = crop.grid
    ys, xs = np.nonzero(m)
    pos = np.stack([xs, ys], 1) / max(S - 1, 1)
    return np.concatenate([f, config.spatial_weight * (pos - pos.mean(0))], 1)


def _majority_smooth(labels: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    """3 x 3 majority vote of the labels inside the mask (outside stays -1)."""
    votes = np.stack([ndimage.uniform_filter(((labels == c) & mask).astype(np.float32), 3) for c in range(k)])
    out = np.where(mask, votes.argmax(0), -1)
    return out


def absorb_small_pieces(labels: np.ndarray, mask: np.ndarray, min_pixels: int) -> np.ndarray:
    """Pieces (connected components of one label) below ``min_pixels`` take their surroundings' label."""
    out = labels.copy()
    for c in np.unique(out[mask]):
        pieces, n = ndimage.label(out == c)
        if n == 0:
            continue
        sizes = np.bincount(pieces.ravel(), minlength=n + 1)
        for p in np.nonzero(sizes[1:] < min_pixels)[0] + 1:
            piece = pieces == p
            ring = ndimage.binary_dilation(piece) & ~piece & mask
            if ring.any():
                vals, counts = np.unique(out[ring], return_counts=True)
                out[piece] = vals[np.argmax(counts)]
    return out


def kmeans_partition(crop: InstanceCrop, k: int, config: ProposalConfig = ProposalConfig(),
                     seed: int = 0) -> np.ndarray:
    """(S, S) int64 part label per grid cell (0..k'-1 consecutive, -1 outside the object).

    Example:
        >>> import numpy as np
        >>> from crossdistill.methods.partdistillation.crops import InstanceCrop
        >>> f = np.zeros((2, 8, 8), np.float32); f[0, :, 4:] = 1.0
        >>> crop = InstanceCrop(f, np.ones((8, 8), bool), np.array([0, 0, 8, 8]), (8, 8), 0, 0, "", 1.0)
        >>> lab = kmeans_partition(crop, 2, ProposalConfig(spatial_weight=0.0))
        >>> len(np.unique(lab[:, :4])), len(np.unique(lab[:, 4:])), bool(lab[0, 0] != lab[0, 7])
        (1, 1, True)
    """
    from sklearn.cluster import KMeans

    m = crop.mask
    n = int(m.sum())
    out = np.full(m.shape, -1, np.int64)
    if n == 0:
        return out
    x = cell_features(crop, config)
    k_eff = max(1, min(k, n, len(np.unique(x.round(6), axis=0))))
    if k_eff == 1:
        out[m] = 0
        return out
    km = KMeans(n_clusters=k_eff, n_init=config.n_init, random_state=seed).fit(x)
    out[m] = km.labels_
    out = _majority_smooth(out, m, k_eff)
    out = absorb_small_pieces(out, m, max(1, int(np.ceil(config.min_fraction * n))))
    _, consecutive = np.unique(out[m], return_inverse=True)
    out[m] = consecutive
    return out


def partition_masks(labels: np.ndarray) -> np.ndarray:
    """(P, S, S) bool masks of the labels >= 0 of a partition, in label order."""
    ids = np.unique(labels[labels >= 0])
    return labels[None] == ids[:, None, None] if len(ids) else np.zeros((0, *labels.shape), bool)


def _mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, B) IoU between two stacks of bool masks."""
    fa, fb = a.reshape(len(a), -1).astype(np.float32), b.reshape(len(b), -1).astype(np.float32)
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None] - inter
    return inter / np.maximum(union, 1.0)


def part_proposals(crop: InstanceCrop, config: ProposalConfig = ProposalConfig(), seed: int = 0,
                   ks: Sequence[int] | None = None) -> np.ndarray:
    """(P, S, S) bool part proposals of one instance: the parts of every K's partition, deduplicated."""
    kept: list[np.ndarray] = []
    for k in ks or config.ks:
        for mask in partition_masks(kmeans_partition(crop, k, config, seed)):
            if kept and _mask_iou(mask[None], np.stack(kept)).max() >= config.dedupe_iou:
                continue
            kept.append(mask)
    return np.stack(kept) if kept else np.zeros((0, *crop.mask.shape), bool)
