"""Segmentation metrics, each defined once, in numpy (no torch), vectorised.

Every score is a fraction in [0, 1] (papers print x100). Label arrays are integer;
``-1`` means "nothing" as everywhere in crossdistill (see :mod:`crossdistill.types`).
Overlaps come from one weighted contingency table (``np.bincount`` over
``gt * P + pred``), or a mask matrix product for overlapping 2D masks, never a loop over
points. The few loops left run over predictions (greedy matching is sequential).

Families and the convention each follows:

* class-agnostic part mIoU (SAMPart3D / PartObjaverse-Tiny): :func:`class_agnostic_miou`
* semantic part mIoU: PartNetE / PartSLIP :func:`partnete_miou`; ShapeNetPart
  instance / category mIoU :func:`shapenetpart_miou`
* instance AP at IoU 0.5 (per object and per category): :func:`instance_ap`,
  :func:`match_instances`, :func:`category_ap`
* unsupervised 2D parts (PartDistillation): :func:`nmi`, :func:`ari`, :func:`average_recall`
* LiDAR semantic segmentation: :func:`confusion_matrix`, :func:`per_class_iou`,
  :func:`miou`, :class:`ConfusionAccumulator`
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from crossdistill.errors import InputError

__all__ = [
    "COCO_IOU_THRESHOLDS", "PartIoUResult", "class_agnostic_part_ious", "class_agnostic_miou",
    "SemanticPartResult", "partnete_miou", "shapenetpart_shape_ious", "ShapeNetPartResult",
    "shapenetpart_miou", "Detections", "match_instances", "average_precision", "instance_ap",
    "category_ap", "nmi", "ari", "average_recall", "confusion_matrix", "per_class_iou", "miou",
    "SegmentationScores", "ConfusionAccumulator",
]

#: COCO's IoU thresholds 0.50:0.05:0.95 (10 values), as ``pycocotools`` builds them.
COCO_IOU_THRESHOLDS: np.ndarray = np.linspace(0.5, 0.95, 10)
COCO_IOU_THRESHOLDS.setflags(write=False)


# ----------------------------------------------------------------------------- helpers
def _labels(a: npt.ArrayLike, name: str, ndim: int | None = 1) -> np.ndarray:
    """Integer label array (bool and integral floats accepted), never a view of the input."""
    arr = np.asarray(a)
    if ndim is not None and arr.ndim != ndim:
        raise InputError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise InputError(f"{name} must hold integer labels")
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iub":
        raise InputError(f"{name} must hold integer labels, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _weights(w: npt.ArrayLike | None, n: int) -> np.ndarray | None:
    if w is None:
        return None
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (n,):
        raise InputError(f"weights must have shape ({n},), got {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise InputError("weights must be finite and non-negative")
    return w


def _same_shape(gt: np.ndarray, pred: np.ndarray) -> None:
    if gt.shape != pred.shape:
        raise InputError(f"gt and pred shapes differ: {gt.shape} vs {pred.shape}")


def _contingency(g: np.ndarray, p: np.ndarray, n_g: int, n_p: int, w: np.ndarray | None) -> np.ndarray:
    """(n_g, n_p) float64 table: total weight (or count) of elements with codes (g, p)."""
    flat = np.bincount(g * n_p + p, weights=w, minlength=n_g * n_p)
    return flat.astype(np.float64).reshape(n_g, n_p)


def _iou_table(inter: np.ndarray, area_a: np.ndarray, area_b: np.ndarray) -> np.ndarray:
    """IoU from intersections (A, B) and areas (A,), (B,); an empty union gives 0."""
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


# ------------------------------------------------------------ class-agnostic part mIoU
@dataclass(frozen=True)
class PartIoUResult:
    """Per-object class-agnostic part IoU.

    Attributes:
        miou: mean of ``part_ious``.
        part_ious: (G,) best IoU of each ground-truth part over the predicted parts.
        gt_labels: (G,) the ground-truth label of each entry, ascending.
        best_pred: (G,) predicted label reaching the best IoU (-1 where no predicted part
            overlaps the GT part, i.e. the best IoU is 0).
    """

    miou: float
    part_ious: np.ndarray
    gt_labels: np.ndarray
    best_pred: np.ndarray


def class_agnostic_part_ious(
    gt: npt.ArrayLike,
    pred: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
    ignore: int = -1,
    drop_ignored: bool = True,
) -> PartIoUResult:
    """Best-match IoU of every ground-truth part of one object (SAMPart3D convention).

    SAMPart3D / PartObjaverse-Tiny: for each GT part, the highest IoU with any predicted
    part; the object's score is the mean over its GT parts, and a dataset score is the
    plain mean over objects (``np.mean`` of the per-object ``miou``).

    Args:
        gt: (n,) int ground-truth part id per point / face; ids need not be contiguous.
            Elements equal to ``ignore`` are excluded.
        pred: (n,) int predicted part id per element; any negative id is "unlabelled":
            a valid prediction that matches no part (it is never a best part).
        weights: (n,) non-negative face areas (area-weighted IoU on faces), or ``None``
            (every element weighs 1). Weight-0 elements are dropped, so integer weights
            equal repeating elements; a GT part of zero total weight disappears.
        ignore: GT label excluded from scoring.
        drop_ignored: ``True`` (default) removes ignored elements from the predicted parts
            too. ``False`` reproduces SAMPart3D's reference script, whose predicted masks
            still contain ignored elements (they enlarge unions).

    Returns:
        :class:`PartIoUResult`. Raises :class:`InputError` when no GT element is left.

    Example:
        >>> r = class_agnostic_part_ious([0, 0, 1, 1], [3, 3, -1, -1])
        >>> r.part_ious.tolist(), r.best_pred.tolist(), r.miou
        ([1.0, 0.0], [3, -1], 0.5)
    """
    gt, pred = _labels(gt, "gt"), _labels(pred, "pred")
    _same_shape(gt, pred)
    w = _weights(weights, gt.size)
    positive = np.ones(gt.size, bool) if w is None else w > 0
    valid = positive & (gt != ignore)
    if not valid.any():
        raise InputError("no labelled ground-truth element with positive weight")
    scope = valid if drop_ignored else positive  # ignored elements kept for pred areas only
    g_lab, g = np.unique(gt[scope], return_inverse=True)  # may include `ignore`
    p_lab, p = np.unique(pred[scope], return_inverse=True)
    ws = None if w is None else w[scope]
    table = _contingency(g, p, g_lab.size, p_lab.size, ws)
    pred_area = table.sum(0)  # over all rows, ignored row included when drop_ignored=False
    keep_rows = g_lab != ignore
    table, g_lab = table[keep_rows], g_lab[keep_rows]
    iou = _iou_table(table, table.sum(1), pred_area)
    iou[:, p_lab < 0] = 0.0  # "unlabelled" never counts as a part
    best = iou.argmax(1)
    part_ious = iou[np.arange(g_lab.size), best]
    best_pred = np.where(part_ious > 0, p_lab[best], -1)
    return PartIoUResult(float(part_ious.mean()), part_ious, g_lab, best_pred)


def class_agnostic_miou(
    gt: npt.ArrayLike,
    pred: npt.ArrayLike,
    weights: npt.ArrayLike | None = None,
    ignore: int = -1,
    drop_ignored: bool = True,
) -> float:
    """Class-agnostic part mIoU of one object; see :func:`class_agnostic_part_ious`.

    Example:
        >>> class_agnostic_miou([0, 0, 1, 1], [7, 7, 5, 5])
        1.0
    """
    return class_agnostic_part_ious(gt, pred, weights, ignore, drop_ignored).miou


# ------------------------------------------------------------------ semantic part mIoU
Absent = Literal["skip_gt", "skip", "one"]


@dataclass(frozen=True)
class SemanticPartResult:
    """Semantic part IoU of one category.

    Attributes:
        miou: category score, mean of ``part_iou`` over parts (NaN parts left out).
        part_iou: (K,) mean over the shapes where the part is scored; NaN if it is
            scored in no shape.
        shape_part_iou: (S, K) IoU per shape and part; NaN where skipped.
    """

    miou: float
    part_iou: np.ndarray
    shape_part_iou: np.ndarray


def _shape_part_counts(shapes: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]], n_parts: int, ignore: int | None):
    """(S, K) intersection, GT count, predicted count, with one bincount each."""
    if n_parts < 1:
        raise InputError(f"n_parts must be >= 1, got {n_parts}")
    shapes = list(shapes)
    if not shapes:
        raise InputError("no shapes to score")
    gts, preds, idx = [], [], []
    for s, (g, p) in enumerate(shapes):
        g, p = _labels(g, f"gt[{s}]"), _labels(p, f"pred[{s}]")
        _same_shape(g, p)
        if ignore is not None:
            g, p = g[g != ignore], p[g != ignore]
        if g.max(initial=-1) >= n_parts or p.max(initial=-1) >= n_parts:
            raise InputError(f"shape {s}: labels must be < n_parts={n_parts}")
        gts.append(g)
        preds.append(p)
        idx.append(np.full(g.size, s, np.int64))
    g, p, s = np.concatenate(gts), np.concatenate(preds), np.concatenate(idx)
    size = len(shapes) * n_parts

    def count(mask: np.ndarray, lab: np.ndarray) -> np.ndarray:
        return np.bincount(s[mask] * n_parts + lab[mask], minlength=size).reshape(-1, n_parts)

    return count((g >= 0) & (g == p), g), count(g >= 0, g), count(p >= 0, p)


def partnete_miou(
    shapes: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]],
    n_parts: int,
    absent: Absent = "skip_gt",
    ignore: int | None = None,
) -> SemanticPartResult:
    """Semantic part mIoU of one category, PartNetE / PartSLIP convention.

    Per shape and part class k: IoU of ``gt == k`` and ``pred == k``. The part's score is
    the mean over the shapes where it is scored, the category's the mean over parts
    (the benchmark score is then the mean over categories).

    Args:
        shapes: S pairs ``(gt, pred)``, each (n_s,) int with labels in [0, n_parts);
            a negative label means "no part" (PartNetE's -1 background points count:
            predicting a part there is a false positive).
        n_parts: K, the category's number of part classes.
        absent: which (shape, part) cells are scored:
            ``"skip_gt"`` (default, PartSLIP / PartSLIP++ reference scripts): skipped
            whenever the part is absent from the shape's GT, even if predicted there;
            ``"skip"``: skipped only when absent from both GT and prediction (predicted
            but absent from GT scores 0);
            ``"one"``: absent from both scores 1 (ShapeNetPart style).
        ignore: GT label whose elements are removed entirely (default ``None``: none).

    Deviation: a part scored in no shape gets NaN and is left out of the category mean
    (the reference script would return NaN for the category).

    Example:
        >>> partnete_miou([([0, 0, 1], [0, 1, 1])], n_parts=2).part_iou.tolist()
        [0.5, 0.5]
    """
    if absent not in ("skip_gt", "skip", "one"):
        raise InputError(f"absent must be 'skip_gt', 'skip' or 'one', got {absent!r}")
    inter, n_gt, n_pred = _shape_part_counts(shapes, n_parts, ignore)
    union = n_gt + n_pred - inter
    iou = np.divide(inter, union, out=np.full(inter.shape, np.nan), where=union > 0)
    if absent == "skip_gt":
        iou[n_gt == 0] = np.nan
    elif absent == "one":
        iou[union == 0] = 1.0
    scored = ~np.isnan(iou)
    n = scored.sum(0)
    part = np.divide(np.where(scored, iou, 0.0).sum(0), n, out=np.full(n_parts, np.nan), where=n > 0)
    return SemanticPartResult(_nanmean(part), part, iou)


def _nanmean(x: np.ndarray) -> float:
    ok = ~np.isnan(x)
    return float(x[ok].mean()) if ok.any() else float("nan")


def shapenetpart_shape_ious(
    shapes: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]], n_parts: int, ignore: int | None = None
) -> np.ndarray:
    """(S,) per-shape mIoU, ShapeNetPart convention (PointNet / PointNet++ evaluation).

    Per shape: mean over the category's K parts of the part IoU, where a part absent from
    both GT and prediction scores 1. Arguments as in :func:`partnete_miou`.

    Example:
        >>> shapenetpart_shape_ious([([0, 0], [0, 0])], n_parts=2).tolist()
        [1.0]
    """
    return partnete_miou(shapes, n_parts, absent="one", ignore=ignore).shape_part_iou.mean(1)


@dataclass(frozen=True)
class ShapeNetPartResult:
    """ShapeNetPart scores.

    Attributes:
        instance_miou: mean of the shape mIoUs over all shapes of all categories.
        category_miou: mean over categories of each category's mean shape mIoU.
        per_category: category -> mean shape mIoU.
        shape_ious: category -> (S_c,) shape mIoUs.
    """

    instance_miou: float
    category_miou: float
    per_category: dict[str, float]
    shape_ious: dict[str, np.ndarray]


def shapenetpart_miou(
    categories: dict[str, tuple[Sequence[tuple[npt.ArrayLike, npt.ArrayLike]], int]],
    ignore: int | None = None,
) -> ShapeNetPartResult:
    """Instance and category mIoU over ShapeNetPart-style categories.

    Args:
        categories: name -> ``(shapes, n_parts)``; labels are per category, in [0, K).
        ignore: as in :func:`partnete_miou`.

    Example:
        >>> r = shapenetpart_miou({"mug": ([([0, 1], [0, 1])], 2), "cap": ([([0, 1], [1, 1])], 2)})
        >>> r.instance_miou, r.per_category["cap"]
        (0.625, 0.25)
    """
    if not categories:
        raise InputError("no categories to score")
    shape_ious = {c: shapenetpart_shape_ious(s, k, ignore) for c, (s, k) in categories.items()}
    per_cat = {c: float(v.mean()) for c, v in shape_ious.items()}
    inst = float(np.concatenate(list(shape_ious.values())).mean())
    return ShapeNetPartResult(inst, float(np.mean(list(per_cat.values()))), per_cat, shape_ious)


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


# ------------------------------------------------------- unsupervised 2D (PartDistillation)
def _flat_pair(gt: npt.ArrayLike, pred: npt.ArrayLike, ignore: int | None):
    gt, pred = _labels(gt, "gt", ndim=None), _labels(pred, "pred", ndim=None)
    _same_shape(gt, pred)
    gt, pred = gt.reshape(-1), pred.reshape(-1)
    if ignore is not None:
        gt, pred = gt[gt != ignore], pred[gt != ignore]
    if gt.size == 0:
        raise InputError("no labelled ground-truth element")
    return gt, pred


def nmi(
    gt: npt.ArrayLike, pred: npt.ArrayLike, *, ignore: int | None = -1, average_method: str = "arithmetic"
) -> float:
    """Normalised mutual information of a part clustering (PartDistillation protocol).

    Wraps ``sklearn.metrics.normalized_mutual_info_score`` on the elements whose GT is
    not ``ignore``. Arrays of any equal shape (e.g. (H, W) label maps) are flattened.
    Unweighted (scikit-learn has no sample weights); a predicted -1 is one more cluster.

    Example:
        >>> nmi([0, 0, 1, 1, -1], [5, 5, 2, 2, 2])
        1.0
    """
    from sklearn.metrics import normalized_mutual_info_score

    g, p = _flat_pair(gt, pred, ignore)
    return float(normalized_mutual_info_score(g, p, average_method=average_method))


def ari(gt: npt.ArrayLike, pred: npt.ArrayLike, *, ignore: int | None = -1) -> float:
    """Adjusted Rand index, as :func:`nmi` (``sklearn.metrics.adjusted_rand_score``).

    Example:
        >>> ari([0, 0, 1, 1, -1], [5, 5, 2, 2, 5])
        1.0
    """
    from sklearn.metrics import adjusted_rand_score

    g, p = _flat_pair(gt, pred, ignore)
    return float(adjusted_rand_score(g, p))


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


# ----------------------------------------------------------- LiDAR semantic segmentation
def confusion_matrix(
    gt: npt.ArrayLike, pred: npt.ArrayLike, n_classes: int, ignore_index: int | None = -1
) -> np.ndarray:
    """(C, C) int64 confusion matrix, rows = GT class, columns = predicted class.

    Args:
        gt, pred: int labels of any equal shape (e.g. (n,) points of one frame); classes
            in [0, C). Elements with ``gt == ignore_index`` are dropped; any other value
            outside [0, C) in either array raises :class:`InputError`.

    Example:
        >>> confusion_matrix([0, 1, 1, -1], [0, 0, 1, 1], 2).tolist()
        [[1, 0], [1, 1]]
    """
    if n_classes < 1:
        raise InputError(f"n_classes must be >= 1, got {n_classes}")
    gt, pred = _labels(gt, "gt", ndim=None), _labels(pred, "pred", ndim=None)
    _same_shape(gt, pred)
    gt, pred = gt.reshape(-1), pred.reshape(-1)
    if ignore_index is not None:
        gt, pred = gt[gt != ignore_index], pred[gt != ignore_index]
    for name, a in (("gt", gt), ("pred", pred)):
        if a.size and (a.min() < 0 or a.max() >= n_classes):
            raise InputError(f"{name} labels must lie in [0, {n_classes}) (or be ignore_index in gt)")
    return np.bincount(gt * n_classes + pred, minlength=n_classes**2).reshape(n_classes, n_classes)


def per_class_iou(cm: npt.ArrayLike) -> np.ndarray:
    """(C,) IoU = TP / (TP + FP + FN) per class from a (C, C) confusion matrix.

    A class absent from both GT and prediction has no union: NaN (it is left out of
    :func:`miou`). A class absent from GT but predicted scores 0.
    """
    cm = np.asarray(cm, np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise InputError(f"confusion matrix must be square, got shape {cm.shape}")
    tp = np.diag(cm)
    union = cm.sum(0) + cm.sum(1) - tp
    return np.divide(tp, union, out=np.full(tp.shape, np.nan), where=union > 0)


def miou(cm: npt.ArrayLike) -> float:
    """Mean of :func:`per_class_iou` over classes with a non-empty union (NaN if none)."""
    return _nanmean(per_class_iou(cm))


@dataclass(frozen=True)
class SegmentationScores:
    """Attributes: confusion (C, C) int64; iou (C,) with NaN for absent classes;
    miou (mean over non-NaN); accuracy (overall, trace / total; NaN if empty)."""

    confusion: np.ndarray
    iou: np.ndarray
    miou: float
    accuracy: float


class ConfusionAccumulator:
    """Confusion matrix summed over frames, for dataset-level LiDAR mIoU.

    Example:
        >>> acc = ConfusionAccumulator(2)
        >>> acc.update([0, 1], [0, 1]); acc.update([1, -1], [0, 0])
        >>> acc.compute().iou.tolist()
        [0.5, 0.5]
    """

    def __init__(self, n_classes: int, ignore_index: int | None = -1) -> None:
        if n_classes < 1:
            raise InputError(f"n_classes must be >= 1, got {n_classes}")
        self.n_classes, self.ignore_index = n_classes, ignore_index
        self.confusion = np.zeros((n_classes, n_classes), np.int64)

    def update(self, gt: npt.ArrayLike, pred: npt.ArrayLike) -> None:
        """Add one frame's labels (any equal shape), see :func:`confusion_matrix`."""
        self.confusion += confusion_matrix(gt, pred, self.n_classes, self.ignore_index)

    def reset(self) -> None:
        self.confusion[:] = 0

    def compute(self) -> SegmentationScores:
        cm = self.confusion.copy()
        total = cm.sum()
        iou = per_class_iou(cm)
        acc = float(np.trace(cm) / total) if total else float("nan")
        return SegmentationScores(cm, iou, _nanmean(iou), acc)
