"""Back-projection of 2D part predictions onto a shape's sampled points (PartDistill's 3D knowledge).

A 2D prediction (part label, confidence, box or mask, view) becomes the set of sampled
points that are *visible* in that view (depth-tested, :class:`~crossdistill.types.Correspondence`)
and whose pixel it covers: inside the mask, or with the pixel centre inside the box.
Points that no prediction covers carry no knowledge: they are unknown, not background,
and contribute nothing to the loss (the mask-aware loss of PartDistill).

:class:`Knowledge` stores K predictions of one shape in CSR form: the points of
prediction k are ``points[indptr[k]:indptr[k + 1]]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from crossdistill.teachers.base import PartPredictions
from crossdistill.types import Correspondence

__all__ = ["Knowledge", "backproject", "vote_share", "SPECIFICITY_CAP"]

#: The largest specificity weight of one prediction (:meth:`Knowledge.specificity`).
SPECIFICITY_CAP = 10.0


@dataclass(frozen=True)
class Knowledge:
    """K back-projected 2D predictions on N points.

    Attributes:
        labels: (K,) int64 part index.
        scores: (K,) float32 confidence in [0, 1] (the teacher's, or the student's after
            backward distillation).
        views: (K,) int32 view each prediction came from.
        indptr: (K + 1,) int64 CSR offsets into ``points``.
        points: (nnz,) int64 point indices, sorted within each prediction.
        n_points: N.
        visible: (V, N) bool, point i visible in view v (from the back-projection), or None
            (unknown: no negative evidence, :meth:`negative_targets`).
    """

    labels: np.ndarray
    scores: np.ndarray
    views: np.ndarray
    indptr: np.ndarray
    points: np.ndarray
    n_points: int
    visible: np.ndarray | None = None

    def __len__(self) -> int:
        return int(len(self.labels))

    @classmethod
    def empty(cls, n_points: int) -> "Knowledge":
        return cls(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int32), np.zeros(1, np.int64),
                   np.zeros(0, np.int64), int(n_points))

    def members(self, k: int) -> np.ndarray:
        """(n_k,) int64 points of prediction k."""
        return self.points[self.indptr[k] : self.indptr[k + 1]]

    @property
    def sizes(self) -> np.ndarray:
        """(K,) int64 number of points per prediction."""
        return np.diff(self.indptr)

    def _owner(self) -> np.ndarray:
        """(nnz,) int64 prediction index of every CSR entry."""
        return np.repeat(np.arange(len(self)), self.sizes)

    def subset(self, keep: np.ndarray) -> "Knowledge":
        """The predictions where ``keep`` (K,) bool is True (order kept)."""
        keep = np.asarray(keep, bool)
        sizes = self.sizes[keep]
        entry = np.repeat(keep, self.sizes)
        return Knowledge(self.labels[keep], self.scores[keep], self.views[keep],
                         np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), self.points[entry], self.n_points,
                         self.visible)

    def with_scores(self, scores: np.ndarray) -> "Knowledge":
        return replace(self, scores=np.asarray(scores, np.float32))

    def specificity(self, gamma: float, cap: float = SPECIFICITY_CAP) -> np.ndarray:
        """(K,) float32 weight ``min(share^-gamma, cap)`` of each prediction, ``share`` its points over
        the points visible in its view (1 for every prediction without ``visible`` or with gamma 0).

        A small part's box lies inside the body's box in every view, so an unweighted vote gives
        its points to the body; weighting a prediction by how little of the view it covers lets
        the most specific prediction covering a point count for more.
        """
        if gamma < 0 or not np.isfinite(gamma):
            raise ValueError(f"gamma must be finite and >= 0, got {gamma!r}")
        if gamma == 0 or self.visible is None or len(self) == 0:
            return np.ones(len(self), np.float32)
        seen = self.visible.sum(1)[self.views]
        share = np.clip(self.sizes / np.maximum(seen, 1), 1e-12, 1.0)
        return np.minimum(share ** -float(gamma), cap).astype(np.float32)

    def weighted_by_specificity(self, gamma: float, cap: float = SPECIFICITY_CAP) -> "Knowledge":
        """The same predictions with confidences times :meth:`specificity`.

        The weighted scores can exceed 1: they are votes and evidence for the students' targets and
        for lifting, never thresholds (``min_score`` reads the teacher's own scores).
        """
        if gamma == 0:
            return self
        return self.with_scores(self.scores * self.specificity(gamma, cap))

    def point_targets(self, n_parts: int, per_point_mean: bool = False) -> np.ndarray:
        """(N, P) float32 confidence-weighted votes: sum over predictions covering a point.

        Row i is zero when no prediction covers point i (unknown: no loss there). With
        ``per_point_mean`` each row is divided by the number of predictions covering the
        point (the released PartDistill code's loss: every covered point weighs the mean
        confidence of its predictions, however many cover it).
        """
        out = np.zeros((self.n_points, n_parts), np.float32)
        owner = self._owner()
        np.add.at(out, (self.points, self.labels[owner]), self.scores[owner])
        if per_point_mean:
            count = np.bincount(self.points, minlength=self.n_points).astype(np.float32)
            out /= np.maximum(count, 1.0)[:, None]
        return out

    def negative_targets(self, n_parts: int) -> np.ndarray:
        """(N, P) float32 evidence against each part (negative learning's weights).

        For every view v and part c with a prediction in v, each point visible in v that no
        prediction of c in v covers gets the highest score of c's predictions in v: the part
        was seen there and the point lies outside it. Zero without ``visible``.
        """
        out = np.zeros((self.n_points, n_parts), np.float32)
        if self.visible is None or len(self) == 0:
            return out
        for v, c in sorted(set(zip(self.views.tolist(), self.labels.tolist()))):
            sel = np.flatnonzero((self.views == v) & (self.labels == c))
            covered = np.zeros(self.n_points, bool)
            for j in sel:
                covered[self.members(j)] = True
            out[self.visible[v] & ~covered, c] += float(self.scores[sel].max())
        return out

    @property
    def covered(self) -> np.ndarray:
        """(N,) bool points covered by at least one prediction."""
        out = np.zeros(self.n_points, bool)
        out[self.points] = True
        return out

    def agreement(self, point_probs: np.ndarray) -> np.ndarray:
        """(K,) mean over each prediction's points of a (N, P) probability of its label.

        Backward distillation's quality score of every 2D prediction from the student's
        per-point probabilities.
        """
        owner = self._owner()
        vals = np.asarray(point_probs)[self.points, self.labels[owner]]
        sums = np.bincount(owner, weights=vals, minlength=len(self))
        return (sums / np.maximum(self.sizes, 1)).astype(np.float32)

    def refine(self, point_probs: np.ndarray, ratio: float) -> "Knowledge":
        """Each prediction cut to the points where the student's probability of its label is at
        least ``ratio`` times that probability's maximum over the prediction's points.

        A box becomes the student's mask of its part inside the box, relative to the part's own
        confidence (a box prompt refined to a mask, as PartDistill refines GLIP boxes with SAM),
        so a small part the student is unsure of everywhere keeps its most likely points. No
        prediction becomes empty (its most probable point stays); ``ratio`` 0 changes nothing.

        Args:
            point_probs: (N, P) the student's per-point probabilities.
            ratio: in [0, 1].
        """
        if ratio <= 0 or len(self) == 0:
            return self
        owner = self._owner()
        vals = np.asarray(point_probs, np.float64)[self.points, self.labels[owner]]
        peak = np.zeros(len(self))
        np.maximum.at(peak, owner, vals)
        entry = vals >= ratio * peak[owner]
        sizes = np.bincount(owner[entry], minlength=len(self))
        return replace(self, indptr=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
                       points=self.points[entry])


def vote_share(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """(N, P) float32 share of a part's evidence at each point that is for it: pos / (pos + neg).

    ``positive`` (N, P): the confidence-weighted votes of the predictions covering a point
    (:meth:`Knowledge.point_targets`); ``negative`` (N, P): the evidence against the part
    (:meth:`Knowledge.negative_targets`). Zero where no prediction of the part covers the point.
    PartSLIP's vote normalised by the views where the point is visible and the part detected.
    """
    positive = np.asarray(positive, np.float32)
    out = positive / np.maximum(positive + np.asarray(negative, np.float32), 1e-12)
    return np.where(positive > 0, out, 0.0).astype(np.float32)


def _covered_points(pred: PartPredictions, j: int, vis: np.ndarray, xy: np.ndarray, width: int) -> np.ndarray:
    if pred.masks is not None:
        flat = pred.masks[j].reshape(-1)
        return vis[flat[xy[:, 1] * width + xy[:, 0]]]
    x0, y0, x1, y1 = (float(c) for c in pred.boxes[j])
    cx, cy = xy[:, 0] + 0.5, xy[:, 1] + 0.5
    return vis[(cx >= x0) & (cx <= x1) & (cy >= y0) & (cy <= y1)]


def backproject(predictions: Sequence[PartPredictions], correspondence: Correspondence) -> Knowledge:
    """Back-project per-view predictions onto the points of ``correspondence``.

    Args:
        predictions: V :class:`PartPredictions` (one per view of the correspondence),
            each with ``masks`` (pixel-level) or ``boxes`` (box-level).
        correspondence: the views' :class:`Correspondence` to N sampled points.

    Returns:
        :class:`Knowledge` of every prediction that covers at least one visible point.
    """
    V, N = correspondence.point_to_pix.shape
    if len(predictions) != V:
        raise ValueError(f"{len(predictions)} prediction sets for {V} views")
    W = correspondence.width
    labels, scores, views, chunks = [], [], [], []
    for v, pred in enumerate(predictions):
        if len(pred) == 0:
            continue
        if pred.masks is None and pred.boxes is None:
            raise ValueError(f"view {v}: predictions carry neither masks nor boxes")
        vis = np.flatnonzero(correspondence.point_to_pix[v] >= 0)
        pix = correspondence.point_to_pix[v, vis].astype(np.int64)
        xy = np.stack([pix % W, pix // W], 1)
        for j in range(len(pred)):
            pts = _covered_points(pred, j, vis, xy, W)
            if len(pts):
                labels.append(int(pred.labels[j]))
                scores.append(float(pred.scores[j]))
                views.append(v)
                chunks.append(np.sort(pts).astype(np.int64))
    visible = correspondence.point_to_pix >= 0
    if not chunks:
        return replace(Knowledge.empty(N), visible=visible)
    indptr = np.concatenate([[0], np.cumsum([len(c) for c in chunks])]).astype(np.int64)
    return Knowledge(np.asarray(labels, np.int64), np.clip(np.asarray(scores, np.float32), 0, 1),
                     np.asarray(views, np.int32), indptr, np.concatenate(chunks), N, visible)
