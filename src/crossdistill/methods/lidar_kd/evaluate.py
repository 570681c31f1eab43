"""Zero-shot evaluation of LiDAR predictions against per-point labels, across label spaces.

A student predicts in its 2D teacher's label space (e.g. Cityscapes for SegFormer, KITTI's
box classes for the offline box teacher); the evaluation labels may use another
(KITTI or nuScenes box classes). :func:`map_classes` maps prediction classes to
evaluation classes by name (identical names, then the synonyms of :data:`SYNONYMS`;
anything else is background), and :func:`zero_shot_iou` scores the mapped predictions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from crossdistill.eval.metrics.lidar import confusion_matrix, per_class_iou

__all__ = ["SYNONYMS", "map_classes", "zero_shot_iou"]

#: evaluation class -> prediction class names that count as it (Cityscapes / nuScenes / KITTI names)
SYNONYMS: dict[str, tuple[str, ...]] = {
    "car": ("car",),
    "van": ("van",),
    "truck": ("truck", "bus", "trailer", "construction_vehicle", "train"),
    "pedestrian": ("pedestrian", "person"),
    "cyclist": ("cyclist", "rider", "bicycle", "motorcycle"),
    "bicycle": ("bicycle", "cyclist"),
    "motorcycle": ("motorcycle",),
    "bus": ("bus",),
    "trailer": ("trailer",),
    "tram": ("tram", "train"),
}


def map_classes(pred_names: Sequence[str], eval_names: Sequence[str]) -> np.ndarray:
    """(K_pred,) int64 evaluation class of each prediction class (0 = the evaluation's background).

    Example:
        >>> map_classes(["road", "car", "person"], ["background", "car", "pedestrian"]).tolist()
        [0, 1, 2]
    """
    lookup = {n.lower(): i for i, n in enumerate(eval_names)}
    out = np.zeros(len(pred_names), np.int64)
    for k, name in enumerate(pred_names):
        name = name.lower()
        if name in lookup:
            out[k] = lookup[name]
            continue
        for ev, syn in SYNONYMS.items():
            if name in syn and ev in lookup:
                out[k] = lookup[ev]
                break
    return out


def zero_shot_iou(pred: np.ndarray, gt: np.ndarray, n_classes: int, mask: np.ndarray | None = None
                  ) -> tuple[np.ndarray, float]:
    """((n_classes,) IoU per evaluation class, NaN where the class has no GT point; their mean).

    Args:
        pred: (N,) int evaluation class per point (already mapped).
        gt: (N,) int evaluation labels, -1 ignored.
        mask: (N,) bool points to score (e.g. those a camera sees); None = all.
    """
    sel = gt >= 0 if mask is None else (gt >= 0) & mask
    cm = confusion_matrix(gt[sel], pred[sel], n_classes)
    iou = per_class_iou(cm).astype(np.float64)
    iou[cm.sum(1) == 0] = np.nan
    return iou, float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")
