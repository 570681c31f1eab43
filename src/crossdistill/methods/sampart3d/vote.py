"""From point labels to face labels (SAMPart3D's per-face voting), with a connectivity cue.

1. Every face takes the majority label of the sampled points on it.
2. A face no point reaches takes the label of the nearest labelled face (by centroid),
   preferring one of its own connected piece.
3. Connectivity cue (ours): inside a connected piece, faces of a label that lives mostly
   outside the piece (less than ``spill`` of that label's area lies in it) are spill-over
   from a neighbouring part; they take the piece's majority label. A label that lives
   mostly inside the piece (a part welded into a bigger piece, e.g. a button) is kept.
4. Piece boundaries (ours, :func:`split_at_pieces`): a part never spans two connected
   pieces; each piece keeps the parts the field splits it into (fragments below a share
   of the piece's area fold into the piece's main part; a smaller share inside a piece
   that is most of the object, such as a welded body, where fragments a 2D mask confirms
   are kept whatever their size). With the offline mask teacher the
   field's joins of whole pieces are wrong more often than right on PartNet-Mobility, while
   its splits of welded pieces help (``docs/results/segment_clustering.md``).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from crossdistill.labels import relabel_by_size


def majority_per_group(groups: np.ndarray, labels: np.ndarray, n_groups: int,
                       weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Weighted majority label of each group.

    Args:
        groups: (M,) group id per element in [0, n_groups); labels: (M,) int >= 0.
        weights: (M,) non-negative weights (default 1).

    Returns:
        winner (n_groups,) int64 (-1 for empty groups), share (n_groups,) float64 of the
        winner's weight in its group (0 for empty groups).
    """
    g = np.asarray(groups, dtype=np.int64)
    lab = np.asarray(labels, dtype=np.int64)
    w = np.ones(len(g)) if weights is None else np.asarray(weights, dtype=np.float64)
    winner = np.full(n_groups, -1, dtype=np.int64)
    share = np.zeros(n_groups)
    if len(g) == 0:
        return winner, share
    key = g * (int(lab.max()) + 1) + lab
    uk, inv = np.unique(key, return_inverse=True)
    wsum = np.bincount(inv, weights=w)
    ug = uk // (int(lab.max()) + 1)
    ul = uk % (int(lab.max()) + 1)
    order = np.lexsort((-wsum, ug))  # by group, heaviest first
    first = np.ones(len(order), dtype=bool)
    first[1:] = ug[order][1:] != ug[order][:-1]
    top = order[first]
    winner[ug[top]] = ul[top]
    total = np.bincount(g, weights=w, minlength=n_groups)
    share[ug[top]] = wsum[top] / np.maximum(total[ug[top]], 1e-300)
    return winner, share


def vote_faces(point_labels: np.ndarray, point_face: np.ndarray, n_faces: int, face_centroids: np.ndarray,
               components: np.ndarray | None = None, face_areas: np.ndarray | None = None,
               spill: float = 0.5, k: int = 8) -> np.ndarray:
    """Label every face of a mesh from the labels of points sampled on it.

    Args:
        point_labels: (N,) int part label per sampled point (>= 0).
        point_face: (N,) int face each point lies on.
        n_faces: F.
        face_centroids: (F, 3) face centroids.
        components: optional (F,) connected-piece id per face (enables steps 2-preference and 3).
        face_areas: (F,) areas, weights of step 3 (default: equal).
        spill: a label with less than this share of its area inside a piece is spill-over
            there (0 disables step 3).

    Returns:
        (F,) int32 label per face, in the input's face order.
    """
    labels, _ = majority_per_group(point_face, point_labels, n_faces)
    known = np.flatnonzero(labels >= 0)
    unknown = np.flatnonzero(labels < 0)
    if len(known) == 0:
        return np.zeros(n_faces, dtype=np.int32)
    if len(unknown):
        tree = cKDTree(face_centroids[known])
        kk = min(k, len(known))
        _, nn = tree.query(face_centroids[unknown], k=kk, workers=-1)
        nn = nn.reshape(len(unknown), kk)
        pick = nn[:, 0]
        if components is not None:
            same = components[known[nn]] == components[unknown][:, None]
            has = same.any(1)
            pick = np.where(has, nn[np.arange(len(unknown)), same.argmax(1)], pick)
        labels[unknown] = labels[known[pick]]
    if components is not None and spill > 0:
        w = np.ones(n_faces) if face_areas is None else np.asarray(face_areas, dtype=np.float64)
        n_comp = int(components.max()) + 1
        n_lab = int(labels.max()) + 1
        win, _ = majority_per_group(components, labels, n_comp, w)
        area_in_piece = _pair_area(components, labels, w)
        area_of_label = np.bincount(labels, weights=w, minlength=n_lab)[labels]
        frac = area_in_piece / np.maximum(area_of_label, 1e-300)
        move = (frac < spill) & (labels != win[components])
        labels[move] = win[components[move]]
    return labels.astype(np.int32)


def split_at_pieces(face_labels: np.ndarray, components: np.ndarray, face_areas: np.ndarray | None = None,
                    fragment: float = 0.2, dominant: float | None = None,
                    dominant_fragment: float | None = None, protected: np.ndarray | None = None,
                    face_features: np.ndarray | None = None, protect_everywhere: bool = False) -> np.ndarray:
    """Make every part lie inside one connected piece.

    A part is a (piece, label) pair; inside a piece, a label covering less than ``fragment``
    of the piece's area takes the piece's majority label first, so slivers at a piece's
    border do not become parts of their own. A *dominant* piece, one holding at least
    ``dominant`` of the object's area (a welded body, or the whole object when it is one
    piece), uses the smaller share ``dominant_fragment``: there the field's splits are the
    only source of parts, and a 0.2 share folds its doors and lids away. Inside a dominant
    piece (inside every piece with ``protect_everywhere``), ``protected`` faces never fold
    (their part is confirmed by other evidence, such as a 2D mask: see :mod:`.support`).

    Args:
        face_labels: (F,) int >= 0 labels; components: (F,) piece id per face.
        face_areas: (F,) weights (default equal); fragment: smallest kept share of a piece.
        dominant: share of the total area from which a piece counts as dominant (None: no
            piece does); dominant_fragment: smallest kept share inside a dominant piece.
        protected: optional (F,) bool, faces of a dominant piece that keep their label
            whatever its share (None: none).
        protect_everywhere: ``protected`` faces keep their label in every piece, not only in
            dominant ones.
        face_features: optional (F, D) mean grouping feature of the points on each face (NaN
            rows: faces no point reaches). Given, fragments fold by similarity instead of into
            the majority (:func:`fold_fragments_by_feature`).

    Returns:
        (F,) int32 labels 0..K-1, ordered by decreasing area.
    """
    lab = np.asarray(face_labels, dtype=np.int64)
    comp = np.asarray(components, dtype=np.int64)
    w = np.ones(len(lab)) if face_areas is None else np.asarray(face_areas, dtype=np.float64)
    if len(lab) == 0:
        return lab.astype(np.int32)
    win, _ = majority_per_group(comp, lab, int(comp.max()) + 1, w)
    pair_area = _pair_area(comp, lab, w)
    piece_area = np.bincount(comp, weights=w)[comp]
    share = np.full(len(lab), float(fragment))
    fold = np.ones(len(lab), dtype=bool)
    in_dominant = np.zeros(len(lab), dtype=bool)
    if dominant is not None and dominant_fragment is not None:
        in_dominant = piece_area >= dominant * w.sum()
        share[in_dominant] = dominant_fragment
    if protected is not None:
        fold &= ~((in_dominant | protect_everywhere) & np.asarray(protected, dtype=bool))
    if face_features is None:
        lab = np.where(fold & (pair_area < share * piece_area), win[comp], lab)
    else:
        lab = fold_fragments_by_feature(lab, comp, w, face_features, share, ~fold)
    return relabel_by_size(piece_parts(lab, comp), weights=w).astype(np.int32)


def face_mean_features(point_features: np.ndarray, point_face: np.ndarray, n_faces: int) -> np.ndarray:
    """(F, D) mean of the (N, D) point features on each face; NaN rows for faces no point reaches."""
    f = np.asarray(point_features, dtype=np.float64)
    sums = np.zeros((n_faces, f.shape[1]))
    np.add.at(sums, np.asarray(point_face, dtype=np.int64), f)
    count = np.bincount(point_face, minlength=n_faces).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / count[:, None]


def fold_fragments_by_feature(labels: np.ndarray, components: np.ndarray, weights: np.ndarray,
                              face_features: np.ndarray, share: np.ndarray,
                              keep: np.ndarray | None = None) -> np.ndarray:
    """Fold each piece's fragments into the part of the same piece they most resemble.

    Inside every piece, while some unkept label covers less than ``share`` of the piece's
    weight, the smallest such label joins the other label of the piece whose mean feature
    (weight-averaged over its faces that have one) is nearest to its own; a fragment with
    no feature joins the piece's heaviest other label. So a piece welded from two parts
    whose faces the field split finely (two touching boxes cut at their creases) ends as
    the two parts, where folding into the majority would leave one.

    Args:
        labels: (F,) int >= 0; components: (F,) piece id; weights: (F,) face areas.
        face_features: (F, D) mean feature per face, NaN rows where a face has none.
        share: (F,) smallest kept share of the face's piece (constant inside a piece).
        keep: optional (F,) bool, faces whose label never folds (it may still be joined).

    Returns:
        (F,) int64 labels (values taken from ``labels``).

    Example:
        >>> lab = np.array([0, 1, 2, 3]); feat = np.array([[0.], [0.1], [5.], [5.1]])
        >>> fold_fragments_by_feature(lab, np.zeros(4, int), np.ones(4), feat, np.full(4, 0.4)).tolist()
        [1, 1, 3, 3]
    """
    lab = np.asarray(labels, dtype=np.int64).copy()
    comp = np.asarray(components, dtype=np.int64)
    w = np.asarray(weights, dtype=np.float64)
    feat = np.asarray(face_features, dtype=np.float64)
    has = np.isfinite(feat).all(1)
    keep = np.zeros(len(lab), dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    order = np.argsort(comp, kind="stable")
    starts = np.flatnonzero(np.r_[True, comp[order][1:] != comp[order][:-1]])
    for idx in np.split(order, starts[1:]):
        uniq, inv = np.unique(lab[idx], return_inverse=True)
        if len(uniq) < 2:
            continue
        n = len(uniq)
        area = np.bincount(inv, weights=w[idx], minlength=n)
        fw = np.where(has[idx], w[idx], 0.0)
        fsum = np.zeros((n, feat.shape[1]))
        np.add.at(fsum, inv[has[idx]], feat[idx][has[idx]] * fw[has[idx], None])
        fmass = np.bincount(inv, weights=fw, minlength=n)
        kept = np.bincount(inv, weights=keep[idx].astype(float), minlength=n) > 0
        alive = np.ones(n, dtype=bool)
        target = np.arange(n)
        limit = float(share[idx[0]]) * area.sum()
        while alive.sum() > 1:
            small = alive & ~kept & (area < limit)
            if not small.any():
                break
            j = int(np.flatnonzero(small)[np.argmin(area[small])])
            others = np.flatnonzero(alive & (np.arange(n) != j))
            if fmass[j] > 0 and (fmass[others] > 0).any():
                cand = others[fmass[others] > 0]
                mean = fsum[cand] / fmass[cand, None]
                k = int(cand[np.argmin(np.linalg.norm(mean - fsum[j] / fmass[j], axis=1))])
            else:
                k = int(others[np.argmax(area[others])])
            area[k] += area[j]
            fsum[k] += fsum[j]
            fmass[k] += fmass[j]
            alive[j] = False
            target[target == j] = k
        lab[idx] = uniq[target[inv]]
    return lab


def piece_parts(labels: np.ndarray, components: np.ndarray) -> np.ndarray:
    """(F,) int64 id of every element's (piece, label) pair, 0..K-1: a label cut at piece borders.

    Args:
        labels: (F,) int >= 0; components: (F,) int >= 0 piece id.
    """
    key = np.asarray(components, dtype=np.int64) * (int(np.max(labels)) + 1) + np.asarray(labels, dtype=np.int64)
    return np.unique(key, return_inverse=True)[1].reshape(-1)


def _pair_area(groups: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(M,) total weight of each element's (group, label) pair; groups, labels: (M,) int >= 0."""
    inv = piece_parts(labels, groups)
    return np.bincount(inv, weights=weights)[inv]
