"""LiDAR semantic segmentation: confusion matrix, per-class IoU, mIoU, a dataset-level
accumulator (SemanticKITTI / nuScenes-lidarseg convention: IoU = TP / (TP + FP + FN))."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crossdistill.errors import InputError
from crossdistill.eval.metrics._common import _labels, _nanmean, _same_shape

__all__ = ["confusion_matrix", "per_class_iou", "miou", "SegmentationScores", "ConfusionAccumulator"]


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
