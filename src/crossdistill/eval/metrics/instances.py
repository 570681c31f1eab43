"""Class-agnostic instance matching: 3D part AP (SAMPart3D, per object and per category,
COCO-style greedy matching) and 2D part-proposal AR@k (PartDistillation)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crossdistill.errors import InputError
from crossdistill.eval.metrics._common import COCO_IOU_THRESHOLDS, _iou_table, _labels, _weights

__all__ = ["Detections", "match_instances", "average_precision", "instance_ap", "category_ap", "average_recall"]


# ------------------------------------------------------------------ instance AP (3D)
@dataclass(frozen=True)
class Detections:
    """Matched predictions of one object; concatenate objects with :func:`category_ap`.

    Attributes:
        scores: (P,) confidence of each prediction.
        tp: (P,) bool, True where the prediction matched a GT part.
        n_gt: number of GT parts of the object.
    """

    scores: np.ndarray
    tp: np.ndarray
    n_gt: int


def _pred_masks(pred: np.ndarray, scores: npt.ArrayLike | None, n: int, name: str):
    """(P, n) bool masks and (P,) scores from masks or a label array + per-label scores."""
    if pred.ndim == 2 and pred.dtype == bool:
        masks = pred
        if masks.shape[1] != n:
            raise InputError(f"{name} masks must have shape (P, {n}), got {masks.shape}")
        sc = np.ones(len(masks)) if scores is None else np.asarray(scores, np.float64)
        if sc.shape != (len(masks),):
            raise InputError(f"scores must have shape ({len(masks)},), got {sc.shape}")
        return masks, sc
    lab = _labels(pred, name, ndim=None).reshape(-1)
    if lab.size != n:
        raise InputError(f"{name} labels must have {n} elements, got {lab.size}")
    ids = np.unique(lab[lab >= 0])
    if scores is None:
        sc = np.ones(ids.size)
    else:
        table = np.asarray(scores, np.float64)
        if table.ndim != 1 or (ids.size and table.size <= ids[-1]):
            raise InputError("scores must be 1-D and indexed by predicted label (scores[label])")
        sc = table[ids]
    return lab[None, :] == ids[:, None], sc


def _greedy_match(iou: np.ndarray, scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """COCO greedy matching: (T, P) bool TP flags, predictions in descending score order.

    Each prediction, best score first (ties: input order), takes the unmatched GT of
    highest IoU if that IoU >= threshold (pycocotools' rule).
    """
    order = np.argsort(-scores, kind="stable")
    tp = np.zeros((thresholds.size, scores.size), bool)
    if iou.shape[1] == 0:
        return tp
    for t, thr in enumerate(thresholds):
        free = np.ones(iou.shape[1], bool)
        for rank, i in enumerate(order):
            cand = np.where(free, iou[i], -1.0)
            j = int(cand.argmax())
            if cand[j] >= thr:
                free[j] = False
                tp[t, rank] = True
    return tp


def match_instances(
    gt: npt.ArrayLike,
    pred: npt.ArrayLike,
    scores: npt.ArrayLike | None = None,
    *,
    iou_threshold: float = 0.5,
    ignore: int = -1,
    weights: npt.ArrayLike | None = None,
) -> Detections:
    """Match scored predicted parts of one object to its GT parts (class-agnostic).

    Args:
        gt: (n,) int GT part id per element; ``ignore`` elements are removed from GT and
            predicted masks alike, and a prediction left empty is discarded (not a FP).
        pred: (P, n) bool masks, or (n,) int instance labels (negative = unlabelled).
        scores: (P,) confidences for masks, or for labels a 1-D table indexed by label
            value (``scores[label]``); ``None`` gives every prediction score 1, and ties
            keep input order (label order), so AP then depends on that order.
        iou_threshold: a prediction is a TP if its IoU with an unmatched GT part is >= it.
        weights: (n,) non-negative face areas, or ``None``.

    Returns:
        :class:`Detections`, predictions in descending score order.
    """
    gt = _labels(gt, "gt")
    pred = np.asarray(pred)
    masks, sc = _pred_masks(pred, scores, gt.size, "pred")
    w = _weights(weights, gt.size)
    keep = gt != ignore
    if w is not None:
        keep &= w > 0
    g_lab, g = np.unique(gt[keep], return_inverse=True)
    wk = np.ones(g.size) if w is None else w[keep]
    m = masks[:, keep] * wk  # (P, n_kept) weighted masks
    live = m.sum(1) > 0  # a prediction lying only on ignored elements is discarded
    m, sc = m[live], sc[live]
    order = np.argsort(g, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(g[order]) > 0]) if g.size else np.zeros(0, int)
    inter = np.add.reduceat(m[:, order], starts, axis=1) if starts.size else np.zeros((len(m), 0))
    iou = _iou_table(inter, m.sum(1), np.bincount(g, weights=wk, minlength=g_lab.size))
    tp = _greedy_match(iou, sc, np.array([iou_threshold], np.float64))[0]
    return Detections(sc[np.argsort(-sc, kind="stable")], tp, int(g_lab.size))


def average_precision(scores: npt.ArrayLike, tp: npt.ArrayLike, n_gt: int) -> float:
    """All-point interpolated AP (area under the monotone precision envelope).

    Args:
        scores: (P,) detection confidences; ranked descending (ties: input order).
        tp: (P,) bool, True for detections matched to a GT instance.
        n_gt: number of GT instances. 0 gives NaN (AP undefined); no detection gives 0.

    Example:
        >>> average_precision([0.9, 0.8], [False, True], n_gt=1)  # FP ranked first
        0.5
    """
    sc, tp = np.asarray(scores, np.float64).reshape(-1), np.asarray(tp, bool).reshape(-1)
    if sc.shape != tp.shape:
        raise InputError("scores and tp must have the same length")
    if n_gt <= 0:
        return float("nan")
    tp = tp[np.argsort(-sc, kind="stable")]
    ctp = np.cumsum(tp)
    recall = ctp / n_gt
    precision = ctp / np.arange(1, tp.size + 1)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]  # max precision at >= this rank
    d_recall = np.diff(np.r_[0.0, recall])
    return float(np.sum(d_recall * envelope))


def instance_ap(
    gt: npt.ArrayLike,
    pred: npt.ArrayLike,
    scores: npt.ArrayLike | None = None,
    *,
    iou_threshold: float = 0.5,
    ignore: int = -1,
    weights: npt.ArrayLike | None = None,
) -> float:
    """Per-object class-agnostic AP (AP50 by default), as SAMPart3D reports per object.

    Arguments as in :func:`match_instances`; AP as in :func:`average_precision`.

    Example:
        >>> instance_ap([0, 0, 1, 1], [1, 1, 0, 0], scores=[0.9, 0.8])
        1.0
    """
    d = match_instances(gt, pred, scores, iou_threshold=iou_threshold, ignore=ignore, weights=weights)
    return average_precision(d.scores, d.tp, d.n_gt)


def category_ap(detections: Iterable[Detections]) -> float:
    """AP of a category: detections of all its objects ranked together (COCO style).

    Example:
        >>> a = Detections(np.array([0.9, 0.5]), np.array([True, False]), 1)
        >>> b = Detections(np.array([0.7]), np.array([True]), 2)
        >>> round(category_ap([a, b]), 4)
        0.6667
    """
    ds = list(detections)
    if not ds:
        raise InputError("no detections to score")
    return average_precision(
        np.concatenate([d.scores for d in ds]), np.concatenate([d.tp for d in ds]), sum(d.n_gt for d in ds)
    )



# ------------------------------------------------------- 2D part proposals (PartDistillation)
def _masks_nd(x: npt.ArrayLike, name: str, background: int) -> np.ndarray:
    """(M, N) bool flat masks from (M, *S) bool masks or a (*S) int label map."""
    arr = np.asarray(x)
    if arr.dtype == bool:
        if arr.ndim < 2:
            raise InputError(f"{name} masks must be (M, H, W) bool")
        return arr.reshape(len(arr), -1)
    lab = _labels(arr, name, ndim=None).reshape(-1)
    ids = np.unique(lab[lab != background])
    return lab[None, :] == ids[:, None]


def average_recall(
    images: Iterable[tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike | None]],
    *,
    k: int = 100,
    thresholds: npt.ArrayLike = COCO_IOU_THRESHOLDS,
    background: int = -1,
) -> float:
    """AR@k, COCO convention, class-agnostic (PartDistillation's 2D part proposals).

    For each image keep the k best-scored predictions; at each IoU threshold match them
    greedily to GT masks (:func:`_greedy_match`, IoU >= threshold), recall = matched GT /
    all GT summed over images; AR = mean recall over the thresholds (0.5:0.05:0.95).

    Args:
        images: ``(gt, pred, scores)`` per image. ``gt``: (G, H, W) bool masks or an
            (H, W) int label map (``background`` pixels belong to no instance but still
            count in IoU, as in COCO). ``pred``: (P, H, W) bool masks with ``scores`` (P,),
            or an (H, W) label map with ``scores`` indexed by label value; ``scores=None``
            keeps input order.
        k: predictions kept per image.

    Returns:
        AR in [0, 1]; NaN if there is no GT instance at all.

    Example:
        >>> gt = np.array([[0, 0, 1, 1]])
        >>> average_recall([(gt, np.array([[3, 3, 3, 1]]), [0, 0.5, 0, 0.9])], k=1)
        0.2
    """
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    thr = np.asarray(thresholds, np.float64).reshape(-1)
    matched, n_gt = np.zeros(thr.size), 0
    for i, (gt, pred, scores) in enumerate(images):
        g = _masks_nd(gt, f"gt[{i}]", background)
        parr = np.asarray(pred)
        if parr.dtype == bool:
            if parr.ndim < 2:
                raise InputError(f"pred[{i}] masks must be (P, H, W) bool")
            parr = parr.reshape(len(parr), -1)
        p, sc = _pred_masks(parr if parr.dtype == bool else parr.reshape(-1), scores, g.shape[1], f"pred[{i}]")
        if g.shape[1] != p.shape[1]:
            raise InputError(f"image {i}: gt and pred sizes differ")
        if np.any(g.sum(1) == 0):
            raise InputError(f"image {i}: empty ground-truth mask")
        top = np.argsort(-sc, kind="stable")[:k]
        p, sc = p[top].astype(np.float64), sc[top]
        gf = g.astype(np.float64)
        iou = _iou_table(p @ gf.T, p.sum(1), gf.sum(1))
        matched += _greedy_match(iou, sc, thr).sum(1)
        n_gt += len(g)
    return float(matched.mean() / n_gt) if n_gt else float("nan")
