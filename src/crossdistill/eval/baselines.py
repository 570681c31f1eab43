"""Baselines the flagship is measured against, with the same inputs.

* :func:`lift_masks` -- direct lifting of 2D masks to 3D by voting and merging, the
  SAM3D-style approach (no learned features): at a scale, each view's pixels are grouped
  by their finest mask reaching it; views are visited in order; each group becomes the
  set of sampled points it covers and joins the 3D segment it overlaps most (overlap
  ratio above ``merge_ratio``) or starts a new one.
* :func:`connected_component_labels` -- mesh pieces (vertices welded by position; faces joined
  through shared edges, so surfaces touching at one point are separate parts: the stronger of
  the two definitions on PartNet-Mobility, ``docs/results/segment_notes.md`` item 31; the
  pipeline's pieces use the same definition).
* :func:`~crossdistill.geometry.topology.region_growing` -- point-cloud region growing
  over a kNN graph on normals (re-exported here as a baseline).
* :func:`kmeans_xyz_normal` -- k-means on (xyz, w * normal).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree
from sklearn.cluster import KMeans

from crossdistill.geometry.topology import face_components, region_growing
from crossdistill.labels import relabel_by_size
from crossdistill.types import Shape

__all__ = ["lift_masks", "connected_component_labels", "region_growing", "kmeans_xyz_normal"]


def connected_component_labels(shape: Shape) -> np.ndarray:
    """(F,) int64 connected piece of every face (welded vertices, faces joined through shared edges)."""
    return face_components(shape.vertices, shape.faces, weld=True, connect="edge")


def lift_masks(supervision, n_points: int, scale: float, merge_ratio: float = 0.5,
               points: np.ndarray | None = None) -> np.ndarray:
    """SAM3D-style lifting of the 2D masks, as grouped at one scale, to the sampled points.

    Each view's pixels are grouped by their finest mask whose sigma is at least ``scale``
    (the grouping the field is trained to reproduce at that scale, without the field);
    views are visited in order and every group becomes the set of sampled points its pixels
    map to, which joins the 3D segment it overlaps most or starts a new one.

    Args:
        supervision: a :class:`~crossdistill.methods.sampart3d.supervision.MaskSupervision`.
        n_points: N.
        scale: raw mask scale sigma of the grouping.
        merge_ratio: a group joins an existing segment when that segment holds at least
            this share of the group's already-labelled points.
        points: (N, 3) positions to fill never-covered points by nearest neighbour.

    Returns:
        (N,) int64 labels 0..K-1.
    """
    from crossdistill.methods.sampart3d.train import groups_at_scale

    labels = np.full(n_points, -1, dtype=np.int64)
    next_label = 0
    for vs in supervision.views:
        sc = np.where(vs.mask >= 0, supervision.scale[np.maximum(vs.mask, 0)], np.inf)
        group, valid = groups_at_scale(vs.mask, sc, scale)
        if not valid.any():
            continue
        per_point = np.full(n_points, -1, dtype=np.int64)
        per_point[vs.point[valid]] = group[valid]
        vis = np.flatnonzero(per_point >= 0)
        ids, inv = np.unique(per_point[vis], return_inverse=True)
        cur = labels[vis]
        lab_known = cur >= 0
        new_lab = np.full(len(ids), -1, dtype=np.int64)
        if lab_known.any():
            key = inv[lab_known] * (next_label + 1) + cur[lab_known]
            uk, cnt = np.unique(key, return_counts=True)
            mk, seg = uk // (next_label + 1), uk % (next_label + 1)
            known_per_mask = np.bincount(inv[lab_known], minlength=len(ids))
            order = np.lexsort((-cnt, mk))
            first = np.ones(len(order), bool)
            first[1:] = mk[order][1:] != mk[order][:-1]
            top = order[first]
            ok = cnt[top] >= merge_ratio * np.maximum(known_per_mask[mk[top]], 1)
            new_lab[mk[top][ok]] = seg[top][ok]
        fresh = np.flatnonzero(new_lab < 0)
        new_lab[fresh] = np.arange(next_label, next_label + len(fresh))
        next_label += len(fresh)
        labels[vis] = new_lab[inv]
    if (labels < 0).all():
        return np.zeros(n_points, dtype=np.int64)
    if (labels < 0).any() and points is not None:
        known = np.flatnonzero(labels >= 0)
        _, nn = cKDTree(points[known]).query(points[labels < 0], k=1)
        labels[labels < 0] = labels[known[nn]]
    labels[labels < 0] = 0
    return relabel_by_size(labels)


def kmeans_xyz_normal(points: np.ndarray, normals: np.ndarray, k: int, normal_weight: float = 0.3,
                      seed: int = 0) -> np.ndarray:
    """k-means on (xyz, normal_weight * normal); (N,) int64 labels."""
    x = np.concatenate([points, normal_weight * normals], axis=1)
    k = max(1, min(k, len(points)))
    return KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(x).astype(np.int64)
