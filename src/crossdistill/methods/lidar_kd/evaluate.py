"""Zero-shot evaluation of LiDAR predictions against per-point labels, across label spaces.

A student predicts in its 2D teacher's label space (e.g. Cityscapes for SegFormer, KITTI's
box classes for the offline box teacher); the evaluation labels may use another
(KITTI or nuScenes box classes). :func:`map_classes` maps prediction classes to
evaluation classes by name (identical names, then the synonyms of :data:`SYNONYMS`;
anything else is background), and :func:`zero_shot_iou` scores the mapped predictions.
:func:`evaluate_frames` streams test frames through a student and scores them with ONE
confusion matrix summed over all their points (the SemanticKITTI / nuScenes convention),
not a mean of per-frame scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from crossdistill.errors import InputError
from crossdistill.eval.metrics.lidar import confusion_matrix, per_class_iou

__all__ = ["SYNONYMS", "map_classes", "zero_shot_iou", "evaluate_frames", "scores_of"]

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
    "person": ("person", "pedestrian"),
    "bicyclist": ("bicyclist", "cyclist", "rider"),
    "motorcyclist": ("motorcyclist",),
    "other-vehicle": ("other-vehicle", "van", "bus", "tram", "train", "trailer", "construction_vehicle"),
    "driveable_surface": ("driveable_surface", "road"),
    "road": ("road", "driveable_surface"),
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


def scores_of(cm: np.ndarray, class_names: Sequence[str]) -> dict:
    """{"miou", "iou": {class: IoU}, "points": {class: ground-truth points}} of a confusion matrix
    (classes without ground truth are left out of the IoU and the mean)."""
    iou = per_class_iou(cm).astype(np.float64)
    gt = cm.sum(1)
    iou[gt == 0] = np.nan
    return {"miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
            "iou": {class_names[c]: float(iou[c]) for c in range(len(iou)) if np.isfinite(iou[c])},
            "points": {class_names[c]: int(gt[c]) for c in range(len(gt)) if gt[c]}}


def evaluate_frames(student, source, ids: Sequence[str], pred_names: Sequence[str], device: str = "cpu",
                    targets=None, max_range: float | None = None, progress: bool = False, score=None,
                    on_frame=None) -> dict:
    """Zero-shot scores of ``student`` on the frames ``ids`` of ``source``, one confusion matrix over them all.

    Frames are loaded one at a time. Returns {"frames": n, "all": scores, "seen": scores (with
    ``targets``: over the points a camera sees), "confusion": (C, C) list} where scores are
    :func:`scores_of` over every labelled point (within ``max_range`` metres when given).
    ``score``: the ids that count (default: all of ``ids``; the others are only predicted);
    ``on_frame(frame, probs)`` is called with every frame's (N, K) probabilities.
    """
    from tqdm.auto import tqdm

    from crossdistill.methods.lidar_kd.distill import predict_points

    cm_all = cm_seen = None
    names: tuple[str, ...] = ()
    n = 0
    for fid in tqdm(list(ids), desc="evaluate", disable=not progress, leave=False):
        frame = source.load(fid)
        probs = predict_points(student, frame, device)
        if on_frame is not None:
            on_frame(frame, probs)
        if frame.labels is None or (score is not None and fid not in score):
            continue
        names = frame.class_names
        C = len(names)
        if cm_all is None:
            cm_all, cm_seen = np.zeros((C, C), np.int64), np.zeros((C, C), np.int64)
        pred = map_classes(pred_names, names)[probs.argmax(1)]
        keep = frame.labels >= 0
        if max_range is not None:
            keep &= np.hypot(frame.points[:, 0], frame.points[:, 1]) <= max_range
        cm_all += confusion_matrix(frame.labels[keep], pred[keep], C)
        if targets is not None:
            seen = np.zeros(len(frame.points), bool)
            seen[targets.get(source.name, fid).index] = True
            cm_seen += confusion_matrix(frame.labels[keep & seen], pred[keep & seen], C)
        n += 1
    if cm_all is None:
        return {"frames": 0}
    out = {"frames": n, "all": scores_of(cm_all, names), "confusion": cm_all.tolist()}
    if targets is not None:
        out["seen"] = scores_of(cm_seen, names)
    return out
