"""Merging whole parts that the 2D masks group together (a stage-3 rule, :mod:`.rules`).

On a mesh assembled from pieces stage 3 keeps every part inside one connected piece below the
coarsest scale, so an authored part made of several pieces (a pot's lid of rim, knob and
plate; a toilet's seat and its hinges) stays cut at its pieces, and a grouping field that
collapsed parts together cannot say which pieces belong together. The 2D masks the field was
trained on can. Stage 3 reads them as 3D point sets (:class:`.support.MaskPointSets`, which
``field.pt`` keeps, so that ``select`` and ``view`` rerun the rule at any scale exactly as
``segment`` ran it): in each view, every visible sampled point belongs at a query scale to one
group, its finest mask reaching that scale (as in training: :func:`.train.groups_at_scale`), so
every view votes, for every pair of parts it shows, whether their points fall in the same group.

Per view, each part with at least ``min_count`` visible points takes the group holding most of
them; two such parts *agree* in the view when that group is the same. The
parts are then merged by average linkage on the votes: the pair with the highest share of
agreeing views among the views that show both (at least ``min_views`` of them) is merged while
that share is at least ``threshold``; a merged part's votes are the sums of its members'
votes, so a chain of small parts each agreeing with two neighbours does not join the
neighbours (single linkage would).
"""

from __future__ import annotations

import numpy as np

from crossdistill.methods.sampart3d.supervision import MaskSupervision
from crossdistill.methods.sampart3d.train import groups_at_scale

__all__ = ["view_votes", "merge_by_votes", "merge_parts_by_mask_votes"]


def view_votes(point_part: np.ndarray, supervision: MaskSupervision, raw_scale: float,
               min_count: int = 3, n_parts: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """How often the views group each pair of parts together at one scale.

    Args:
        point_part: (N,) int >= 0 part of every sampled point.
        supervision: the object's masks: pixels mapped to the sampled points, or (as stage 3 uses it)
            one entry per visible point (:meth:`.support.MaskPointSets.to_supervision`).
        raw_scale: the scale sigma of the grouping (the field's raw scale of the query scale).
        min_count: a view counts for a part only where it shows that many of its entries.
        n_parts: K, when some parts hold no sampled point (default: point_part.max() + 1).

    Returns:
        agree (K, K) and shown (K, K) float64: views that group both parts together / show both
        (zero diagonal).
    """
    part = np.asarray(point_part, dtype=np.int64)
    k = max(int(part.max()) + 1 if len(part) else 0, int(n_parts or 0))
    agree = np.zeros((k, k))
    shown = np.zeros((k, k))
    for vs in supervision.views:
        sigma = np.where(vs.mask >= 0, supervision.scale[np.maximum(vs.mask, 0)], np.inf)
        group, valid = groups_at_scale(vs.mask, sigma, raw_scale)
        if not valid.any():
            continue
        p = part[vs.point[valid]]
        g = group[valid].astype(np.int64)
        n_groups = int(g.max()) + 1
        pairs, counts = np.unique(p * n_groups + g, return_counts=True)
        pp, gg = pairs // n_groups, pairs % n_groups
        order = np.lexsort((-counts, pp))  # per part, its largest group first
        first = np.ones(len(order), dtype=bool)
        first[1:] = pp[order][1:] != pp[order][:-1]
        parts_here, top = pp[order][first], order[first]
        totals = np.bincount(p, minlength=k)
        keep = totals[parts_here] >= min_count
        parts_here, majority = parts_here[keep], gg[top][keep]
        if len(parts_here) < 2:
            continue
        idx = np.ix_(parts_here, parts_here)
        shown[idx] += 1.0
        agree[idx] += majority[:, None] == majority[None, :]
    np.fill_diagonal(agree, 0.0)
    np.fill_diagonal(shown, 0.0)
    return agree, shown


def merge_by_votes(agree: np.ndarray, shown: np.ndarray, threshold: float, min_views: int = 3) -> np.ndarray:
    """(K,) int64 merged id of each part: average linkage on the share of agreeing views.

    Args:
        agree, shown: (K, K) votes of :func:`view_votes`.
        threshold: the smallest share agree / shown at which two (merged) parts are merged.
        min_views: pairs shown together in fewer views are never merged.

    Example:
        >>> agree = np.array([[0, 9, 0], [9, 0, 1], [0, 1, 0]], float)
        >>> shown = np.array([[0, 10, 10], [10, 0, 10], [10, 10, 0]], float)
        >>> merge_by_votes(agree, shown, 0.5).tolist()
        [0, 0, 1]
    """
    a = np.array(agree, dtype=np.float64)
    s = np.array(shown, dtype=np.float64)
    k = len(a)
    root = np.arange(k)
    alive = np.ones(k, dtype=bool)
    while True:
        ok = (s >= min_views) & alive[:, None] & alive[None, :]
        np.fill_diagonal(ok, False)
        if not ok.any():
            break
        share = np.where(ok, a / np.maximum(s, 1e-12), -1.0)
        i, j = np.unravel_index(int(np.argmax(share)), share.shape)
        if share[i, j] < threshold:
            break
        a[i] += a[j]
        a[:, i] = a[i]
        s[i] += s[j]
        s[:, i] = s[i]
        a[i, i] = s[i, i] = 0.0
        alive[j] = False
        root[root == j] = i
    return np.unique(root, return_inverse=True)[1].astype(np.int64)


def merge_parts_by_mask_votes(point_part: np.ndarray, supervision: MaskSupervision, raw_scale: float,
                              threshold: float, min_count: int = 3, min_views: int = 3,
                              n_parts: int | None = None) -> np.ndarray:
    """(K,) int64 merged id of every part (the module docstring's rule); a part no view shows stays apart.

    Args:
        point_part: (N,) int >= 0 part of every sampled point.
        supervision, raw_scale, min_count, n_parts: see :func:`view_votes`.
        threshold, min_views: see :func:`merge_by_votes`.
    """
    agree, shown = view_votes(point_part, supervision, raw_scale, min_count, n_parts)
    return merge_by_votes(agree, shown, threshold, min_views)
