"""Shared helpers of :mod:`crossdistill.eval.metrics`: label validation, weighted
contingency tables, IoU tables. Private to the package."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from crossdistill.errors import InputError

#: COCO's IoU thresholds 0.50:0.05:0.95 (10 values), as ``pycocotools`` builds them.
COCO_IOU_THRESHOLDS: np.ndarray = np.linspace(0.5, 0.95, 10)
COCO_IOU_THRESHOLDS.setflags(write=False)


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


def _nanmean(x: np.ndarray) -> float:
    """Mean of the non-NaN entries of ``x``; NaN when there is none."""
    ok = ~np.isnan(x)
    return float(x[ok].mean()) if ok.any() else float("nan")
