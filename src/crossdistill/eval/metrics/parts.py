"""Part mIoU of 3D shapes: class-agnostic (SAMPart3D / PartObjaverse-Tiny) and semantic
(PartNetE / PartSLIP, ShapeNetPart instance / category mIoU)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from crossdistill.errors import InputError
from crossdistill.eval.metrics._common import _contingency, _iou_table, _labels, _nanmean, _same_shape, _weights

__all__ = [
    "PartIoUResult", "class_agnostic_part_ious", "class_agnostic_miou", "Absent", "SemanticPartResult",
    "partnete_miou", "shapenetpart_shape_ious", "ShapeNetPartResult", "shapenetpart_miou",
]


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
