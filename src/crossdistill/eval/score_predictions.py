"""Score saved part predictions of any system against a named benchmark.

Predictions are read from a folder in one of two layouts, per object (``<Category>`` and
``<id>`` as in the benchmark's record, ``<id>`` being the last component of
``record.id``)::

    DIR/<Category>/<id>/scale_<s>/labels.npy   `crossdistill segment` output: one labelling per scale
    DIR/<Category>/<id>.npy                    one labelling

Every file holds one integer label per face (mesh track) or point (point track), in the
benchmark's element order; a negative label means "unlabelled". Scores are the
class-agnostic part mIoU of :func:`crossdistill.eval.metrics.class_agnostic_miou`
(SAMPart3D convention), area-weighted on faces and unweighted on points, at every label
level of the benchmark. An object with several scales gets a score per scale and the
best of its scales per level (the SAMPart3D oracle choice, as in
:mod:`crossdistill.eval.segment_protocol`).

An object without a prediction is reported ``"missing"``, one whose prediction cannot be
read or has the wrong length ``"invalid"``; neither stops the run. Only a run where no
object has a prediction at all raises :class:`~crossdistill.errors.InputError`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crossdistill.errors import InputError
from crossdistill.eval.benchmarks import Benchmark, Record
from crossdistill.eval.metrics import class_agnostic_miou

__all__ = ["GroundTruth", "Track", "TRACKS", "find_prediction", "read_labels", "score_labelling",
           "score_predictions", "summarize_scores"]


@dataclass(frozen=True)
class GroundTruth:
    """Labels of one object, per level, with the weights scores use.

    Attributes:
        labels: level -> (M,) int ground truth per element, -1 unknown.
        weights: (M,) face areas (mesh track) or ``None`` (points: unweighted).
    """

    labels: dict[str, np.ndarray]
    weights: np.ndarray | None


@dataclass(frozen=True)
class Track:
    """How to score one benchmark.

    Attributes:
        element: "face" or "point".
        levels: label levels, coarse to fine (the last one ranks the worst objects).
        ground_truth: ``Benchmark.load`` output -> :class:`GroundTruth`.
    """

    element: str
    levels: tuple[str, ...]
    ground_truth: Callable[[dict[str, Any]], GroundTruth]


def _faces(sample: dict[str, Any], keys: dict[str, str]) -> GroundTruth:
    return GroundTruth({lvl: np.asarray(sample[k]) for lvl, k in keys.items()}, sample["shape"].face_areas)


def _points(sample: dict[str, Any], keys: dict[str, str]) -> GroundTruth:
    return GroundTruth({lvl: np.asarray(sample[k]) for lvl, k in keys.items()}, None)


#: Benchmarks this module can score (catalog name -> :class:`Track`).
TRACKS: dict[str, Track] = {
    "partnet_mobility_dev": Track("face", ("link", "leaf"),
                                  lambda s: _faces(s, {"link": "face_link", "leaf": "face_leaf"})),
    "partnet_mobility_dev_points": Track("point", ("link", "leaf"),
                                         lambda s: _points(s, {"link": "point_link", "leaf": "point_leaf"})),
    "partobjaverse_tiny": Track("face", ("semantic",), lambda s: _faces(s, {"semantic": "semantic"})),
    "partnete": Track("point", ("semantic",), lambda s: _points(s, {"semantic": "semantic"})),
}


def track_of(benchmark: str) -> Track:
    """The :class:`Track` of a benchmark name; one-line :class:`InputError` if it has none."""
    if benchmark not in TRACKS:
        raise InputError(f"benchmark {benchmark!r} has no part labels to score predictions against; "
                         f"scorable: {', '.join(sorted(TRACKS))}")
    return TRACKS[benchmark]


def object_dir(pred_root: Path, record: Record) -> Path:
    """``DIR/<Category>/<id>`` of a record (no suffix)."""
    return pred_root / record.category / record.id.split("/")[-1]


def _scale_key(name: str) -> str:
    """``scale_0.5`` -> ``"0.5"``, ``scale_1.0`` -> ``"1"`` (other suffixes kept as written)."""
    raw = name[len("scale_"):]
    try:
        return f"{float(raw):g}"
    except ValueError:
        return raw


def _scale_order(key: str) -> tuple[float, str]:
    try:
        return float(key), key
    except ValueError:
        return math.inf, key


def _listed_scales(base: Path) -> set[str] | None:
    """Scale keys a ``crossdistill segment`` object folder was written with, from its ``segment.json``.

    ``None`` when the folder has no ``segment.json`` (predictions written by other tools: every
    ``scale_*`` folder counts); an empty set when the folder is an unfinished crossdistill item
    (its stamp without a ``segment.json``) or the marker cannot be read: nothing in it counts.
    """
    import json

    from crossdistill.engine.inputs import ITEM_STAMP

    marker = base / "segment.json"
    if not marker.is_file():
        return set() if (base / ITEM_STAMP).exists() else None
    try:
        scales = json.loads(marker.read_text()).get("scales")
        return {f"{float(s):g}" for s in scales}
    except (OSError, ValueError, TypeError, AttributeError):
        return set()


def find_prediction(pred_root: Path, record: Record) -> tuple[str, dict[str, Path]] | None:
    """Where the prediction of ``record`` lies: ``("scales", {scale: labels.npy})``,
    ``("flat", {"": <id>.npy})`` or ``None`` (missing). The scale layout wins.

    In a ``crossdistill segment`` object folder only the scales its ``segment.json`` lists
    count (a ``scale_*`` folder of another run is never scored); an unfinished one counts as missing.
    """
    base = object_dir(pred_root, record)
    if base.is_dir():
        listed = _listed_scales(base)
        scales = {_scale_key(d.name): d / "labels.npy" for d in base.glob("scale_*")
                  if d.is_dir() and (d / "labels.npy").is_file()}
        if listed is not None:
            scales = {k: v for k, v in scales.items() if k in listed}
        if scales:
            return "scales", dict(sorted(scales.items(), key=lambda kv: _scale_order(kv[0])))
    flat = base.with_name(base.name + ".npy")
    if flat.is_file():
        return "flat", {"": flat}
    return None


def read_labels(path: Path, n: int, element: str) -> np.ndarray:
    """(n,) int64 labels from a ``.npy`` file; one-line :class:`InputError` on anything else."""
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read ({type(exc).__name__})") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive
        raise InputError(f"{path}: not a single .npy array")
    arr = arr.reshape(-1) if arr.ndim == 2 and 1 in arr.shape else arr
    if arr.shape != (n,):
        raise InputError(f"{path}: shape {arr.shape}, expected ({n},) (one label per {element})")
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise InputError(f"{path}: dtype {arr.dtype}, expected integer labels")
    return arr.astype(np.int64)


def score_labelling(pred: np.ndarray, gt: GroundTruth) -> dict[str, float | None]:
    """Class-agnostic mIoU per level; ``None`` at a level where no element is labelled."""
    out: dict[str, float | None] = {}
    for lvl, labels in gt.labels.items():
        known = labels >= 0 if gt.weights is None else (labels >= 0) & (gt.weights > 0)
        out[lvl] = class_agnostic_miou(labels, pred, weights=gt.weights) if known.any() else None
    return out


def _best(per_scale: dict[str, dict[str, float | None]], levels: tuple[str, ...]) -> dict[str, float | None]:
    best: dict[str, float | None] = {}
    for lvl in levels:
        vals = [s[lvl] for s in per_scale.values() if s[lvl] is not None]
        best[lvl] = max(vals) if vals else None
    return best


def score_object(bench: Benchmark, record: Record, track: Track, found: tuple[str, dict[str, Path]]) -> dict:
    """Score one object's prediction(s); a JSON-able dict with ``status`` ok / invalid."""
    layout, files = found
    res: dict[str, Any] = {"id": record.id, "category": record.category, "layout": layout,
                           "files": {k: str(v) for k, v in files.items()}}
    try:
        gt = track.ground_truth(bench.load(record))
    except InputError as exc:
        return res | {"status": "invalid", "reason": f"ground truth: {exc}"}
    n = len(next(iter(gt.labels.values())))
    res["n_elements"] = n
    per_scale: dict[str, dict[str, float | None]] = {}
    n_parts: dict[str, int] = {}
    for key, path in files.items():
        try:
            pred = read_labels(path, n, track.element)
        except InputError as exc:
            return res | {"status": "invalid", "reason": str(exc)}
        per_scale[key] = score_labelling(pred, gt)
        n_parts[key] = int(len(np.unique(pred[pred >= 0])))
    res |= {"status": "ok", "best": _best(per_scale, track.levels),
            "gt_parts": {lvl: int(len(np.unique(g[g >= 0]))) for lvl, g in gt.labels.items()}}
    if layout == "scales":
        res |= {"per_scale": per_scale, "n_parts": n_parts}
    else:
        res["n_parts"] = n_parts[""]
    if layout == "scales":  # DIR/<Category>/<id>/scale_<s>/labels.npy -> DIR/<Category>/<id>/contact_sheet.png
        sheet = next(iter(files.values())).parents[1] / "contact_sheet.png"
        if sheet.is_file():
            res["contact_sheet"] = str(sheet)
    return res


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def summarize_scores(objects: list[dict], levels: tuple[str, ...], n_worst: int = 5) -> dict:
    """Overall, per-category and per-scale means over the scored objects, counts, worst objects."""
    ok = [o for o in objects if o["status"] == "ok"]
    out: dict[str, Any] = {
        "n_objects": len(objects), "n_scored": len(ok),
        "n_missing": sum(o["status"] == "missing" for o in objects),
        "n_invalid": sum(o["status"] == "invalid" for o in objects),
        "overall": {lvl: _mean([o["best"][lvl] for o in ok]) for lvl in levels},
    }
    bycat: dict[str, list[dict]] = defaultdict(list)
    for o in ok:
        bycat[o["category"]].append(o)
    out["per_category"] = {c: {"n": len(rs), **{lvl: _mean([o["best"][lvl] for o in rs]) for lvl in levels}}
                           for c, rs in sorted(bycat.items())}
    byscale: dict[str, list[dict]] = defaultdict(list)
    for o in ok:
        for key, s in o.get("per_scale", {}).items():
            byscale[key].append(s)
    out["per_scale"] = {k: {"n": len(v), **{lvl: _mean([s[lvl] for s in v]) for lvl in levels}}
                        for k, v in sorted(byscale.items(), key=lambda kv: _scale_order(kv[0]))}
    rank = levels[-1]
    ranked = sorted((o for o in ok if o["best"][rank] is not None), key=lambda o: (o["best"][rank], o["id"]))
    out["worst_by"] = rank
    out["worst"] = [o["id"] for o in ranked[:n_worst]]
    return out


def score_predictions(bench: Benchmark, pred_root: Path, limit: int | None = None,
                      progress: Callable[[str], None] | None = None) -> dict:
    """Score every record of ``bench`` (the first ``limit``) against ``pred_root``.

    Returns:
        ``{"benchmark", "predictions", "element", "weighting", "levels", "summary", "objects"}``;
        ``objects`` has one entry per record with ``status`` ok / missing / invalid.

    Raises:
        InputError: ``pred_root`` is not a folder, or no record has a prediction there.
    """
    track = track_of(bench.name)
    pred_root = Path(pred_root)
    if not pred_root.is_dir():
        raise InputError(f"predictions folder not found: {pred_root}")
    records = bench.records()
    if limit is not None:
        records = records[:limit]
    objects: list[dict] = []
    for rec in records:
        found = find_prediction(pred_root, rec)
        if found is None:
            objects.append({"id": rec.id, "category": rec.category, "status": "missing",
                            "reason": f"no {object_dir(pred_root, rec)}/scale_<s>/labels.npy or "
                                      f"{object_dir(pred_root, rec)}.npy"})
            continue
        res = score_object(bench, rec, track, found)
        objects.append(res)
        if progress is not None:
            progress(_progress_line(res, track.levels))
    if not any(o["status"] != "missing" for o in objects):
        raise InputError(f"no predictions found under {pred_root} for any of the {len(records)} "
                         f"{bench.name} objects (expected <Category>/<id>/scale_<s>/labels.npy "
                         "or <Category>/<id>.npy)")
    return {"benchmark": bench.name, "data": str(bench.path), "predictions": str(pred_root),
            "element": track.element, "weighting": "face area" if track.element == "face" else "none",
            "levels": list(track.levels), "summary": summarize_scores(objects, track.levels),
            "objects": objects}


def _progress_line(res: dict, levels: tuple[str, ...]) -> str:
    if res["status"] != "ok":
        return f"{res['id']}: invalid ({res['reason']})"
    return f"{res['id']}: " + " ".join(
        f"{lvl} {'-' if res['best'][lvl] is None else format(res['best'][lvl], '.3f')}" for lvl in levels)
