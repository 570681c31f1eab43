"""Scoring protocol of the flagship (`crossdistill segment`) on labelled shapes.

Class-agnostic part mIoU (SAMPart3D / PartObjaverse-Tiny convention: each ground-truth
part's best IoU over predicted parts, averaged per object, then over objects) at two
label levels, on two tracks:

* mesh track: the mesh as given, per face, IoU weighted by face area;
* point track: a point cloud only (no faces, no connectivity), per point.

Every object is scored per scale and best-of-scales (the best of the paper's five
scales for that object, as SAMPart3D reports), together with baselines that get the
same 2D masks:

* ``lift``: direct lifting of the masks to 3D by voting and merging (SAM3D-style), each
  view's pixels grouped by their finest mask reaching a scale, best of our 5 scales;
* ``cc`` (mesh track): connected components of the mesh;
* ``region_grow`` (point track): normal-based region growing (5 angle thresholds);
* ``kmeans``: k-means on (xyz, 0.3 normal) of the points or face centroids (k in 2, 3, 5,
  8, 12), best setting per object, the same oracle choice our method gets over its 5 scales;
* with several human segmentations (``scoring="humans"``): k-means told each person's
  segment count, and one segment.

Labels may also be several people's segmentations of one shape (the Princeton benchmark):
then every prediction is scored against each and averaged (mIoU and Rand index).
"""

from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crossdistill.eval.baselines import connected_component_labels, kmeans_xyz_normal, lift_masks, region_growing
from crossdistill.eval.metrics import class_agnostic_miou, rand_index_error
from crossdistill.methods.sampart3d.pipeline import SegmentConfig, segment_shape
from crossdistill.methods.sampart3d.vote import vote_faces
from crossdistill.types import Shape

REGION_GROW_ANGLES = (10.0, 20.0, 30.0, 45.0, 60.0)
KMEANS_KS = (2, 3, 5, 8, 12)


@dataclass(frozen=True)
class LabelledShape:
    """One evaluation object.

    Attributes:
        name: unique id (e.g. "Laptop/10211").
        category: object category.
        shape: the loaded mesh or point cloud.
        labels: level name (or human, for ``scoring="humans"``) -> (M,) int ground truth per
            face (mesh) or point (cloud), -1 = unknown.
        scoring: "levels" -- one class-agnostic mIoU per label level; "humans" -- the labels are
            several people's segmentations of the same shape: mean over them of the mIoU
            (``miou``) and of the Rand index (``ri``; the Princeton benchmark's error is 1 - ri).
    """

    name: str
    category: str
    shape: Shape
    labels: dict[str, np.ndarray]
    scoring: str = "levels"


def score_levels(pred: np.ndarray, labels: dict[str, np.ndarray], weights: np.ndarray | None,
                 scoring: str = "levels") -> dict[str, float]:
    """Scores of one prediction: class-agnostic mIoU per label level, or (``scoring="humans"``) the
    mean over the human segmentations of the mIoU and of the Rand index (higher is better for both)."""
    if scoring == "humans":
        mious = [class_agnostic_miou(gt, pred, weights=weights) for gt in labels.values()]
        ris = [1.0 - rand_index_error(gt, pred) for gt in labels.values()]
        return {"miou": float(np.mean(mious)), "ri": float(np.mean(ris))}
    return {lvl: class_agnostic_miou(gt, pred, weights=weights) for lvl, gt in labels.items()}


def score_per_human_count(labels: dict[str, np.ndarray], predict, weights: np.ndarray | None) -> dict[str, float]:
    """A baseline told each person's segment count: ``predict(k)`` -> labels, scored against that person only."""
    cache: dict[int, np.ndarray] = {}
    mious, ris = [], []
    for gt in labels.values():
        k = int(len(np.unique(gt[gt >= 0])))
        if k not in cache:
            cache[k] = predict(k)
        mious.append(class_agnostic_miou(gt, cache[k], weights=weights))
        ris.append(1.0 - rand_index_error(gt, cache[k]))
    return {"miou": float(np.mean(mious)), "ri": float(np.mean(ris))}


def evaluate_object(obj: LabelledShape, config: SegmentConfig, progress: bool = False, mask_teacher=None,
                    geometry_baselines: bool = True, rule_sets: dict | None = None, keep_labels: bool = False) -> dict:
    """Run the flagship and the baselines on one object and score everything.

    ``mask_teacher`` (a MaskTeacher, default: the offline render-based one) makes the 2D
    masks that both our method and the lifting baseline consume. ``geometry_baselines``
    off skips the baselines that do not depend on the masks (for repeated runs).
    ``rule_sets`` (name -> :class:`~crossdistill.methods.sampart3d.rules.PartRules`) scores the
    same trained field under other stage-3 rules too (``res["rules"][name]``). ``keep_labels``
    adds ``res["labels"]``: our (S, E) element labels per scale, as nested lists.

    Returns:
        a JSON-able dict: scores[method][level] per scale / best, timings, peak memory, part counts.
    """
    t0 = time.perf_counter()
    seg = segment_shape(obj.shape, config, mask_teacher=mask_teacher, progress=progress)
    wall = time.perf_counter() - t0
    shape = obj.shape
    weights = shape.face_areas if shape.is_mesh else None

    def score(pred: np.ndarray) -> dict[str, float]:
        return score_levels(pred, obj.labels, weights, obj.scoring)

    ours = [score(seg.labels(i)) for i in range(len(seg.scales))]
    res: dict = {
        "name": obj.name, "category": obj.category, "track": "mesh" if shape.is_mesh else "points",
        "scoring": obj.scoring,
        "n_elements": int(shape.n_faces if shape.is_mesh else shape.n_vertices),
        "scales": list(seg.scales),
        "ours": {"per_scale": ours, "best": _best(ours)},
        "n_parts": [int(seg.labels(i).max()) + 1 for i in range(len(seg.scales))],
        "gt_parts": {lvl: int(len(np.unique(g[g >= 0]))) for lvl, g in obj.labels.items()},
        "timings_s": {k: round(v, 3) for k, v in seg.timings.items()},
        "seconds": round(wall, 3),
        "meta": seg.meta,
    }
    if keep_labels:
        res["labels"] = [seg.labels(i).astype(int).tolist() for i in range(len(seg.scales))]
    if rule_sets:
        from crossdistill.methods.sampart3d.pipeline import with_rules

        res["rules"] = {}
        for name, rules in rule_sets.items():
            alt = with_rules(seg, shape, config, rules)
            per = [score(alt.labels(i)) for i in range(len(alt.scales))]
            res["rules"][name] = {"per_scale": per, "best": _best(per)}
    lifted = [score(pred) for pred in lifted_labels(seg, shape, config)]
    res["lift"] = {"per_setting": lifted, "best": _best(lifted)}
    res["visible_ceiling"] = visible_ceiling(obj, seg)
    if geometry_baselines:
        res.update(geometry_scores(obj))
    res["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    return res


def lifted_labels(seg, shape: Shape, config: SegmentConfig) -> list[np.ndarray]:
    """Baseline (a): direct lifting of the masks ``seg`` was trained on, grouped at each of its
    scales; per scale an (E,) labelling of the input's elements (faces, or input points)."""
    samples = seg.render.samples
    out = []
    for s in seg.scales:
        pl = lift_masks(seg.supervision, len(samples), seg.field.raw_scale(s, config.scale_unit), points=samples.points)
        if shape.is_mesh:
            from crossdistill.geometry.normalize import normalize_shape

            unit, _ = normalize_shape(shape)
            out.append(vote_faces(pl, samples.face_id, shape.n_faces, unit.triangles.mean(1), None, None, 0.0))
        else:
            from crossdistill.methods.sampart3d.pipeline import propagate_to_inputs

            out.append(propagate_to_inputs(pl, samples.points, seg.transform.apply(shape.vertices)))
    return out


def visible_ceiling(obj: LabelledShape, seg) -> dict[str, float]:
    """A diagnostic, not a method: the score of the ground truth itself as far as the views see it.

    Every sampled point some view sees keeps its true label (per level or person), every other
    point takes the label of the nearest seen point, and the labels go to the elements as ours
    do. What no view sees no 2D mask can tell; this bounds what lifting any masks can score.
    """
    from scipy.spatial import cKDTree

    shape = obj.shape
    samples = seg.render.samples
    seen = seg.render.correspondence.visible.any(axis=0)
    if not seen.any():
        return {}
    weights = shape.face_areas if shape.is_mesh else None
    element = samples.face_id if shape.is_mesh else samples.source_index
    _, nn = cKDTree(samples.points[seen]).query(samples.points, k=1)
    out: dict[str, list[float]] = {}
    for name, gt in obj.labels.items():
        pl = gt[element][np.flatnonzero(seen)[nn]]
        pl = np.where(pl >= 0, pl, int(gt.max()) + 1)
        if shape.is_mesh:
            from crossdistill.geometry.normalize import normalize_shape

            unit, _ = normalize_shape(shape)
            pred = vote_faces(pl, samples.face_id, shape.n_faces, unit.triangles.mean(1), None, None, 0.0)
        else:
            from crossdistill.methods.sampart3d.pipeline import propagate_to_inputs

            pred = propagate_to_inputs(pl, samples.points, seg.transform.apply(shape.vertices))
        for key, value in score_levels(pred, {name: gt}, weights, obj.scoring).items():
            out.setdefault(name if obj.scoring == "levels" else key, []).append(value)
    return {k: float(np.mean(v)) for k, v in out.items()}


def geometry_scores(obj: LabelledShape) -> dict:
    """The baselines that see only the geometry: mesh pieces (meshes), normal region growing and
    k-means (point clouds), k-means told each person's segment count and one segment (``humans``)."""
    shape = obj.shape
    weights = shape.face_areas if shape.is_mesh else None
    score = lambda pred: score_levels(pred, obj.labels, weights, obj.scoring)  # noqa: E731
    out: dict = {}
    if shape.is_mesh:
        cc = score(connected_component_labels(shape))
        out["cc"] = {"per_setting": [cc], "best": cc}
        pts = shape.triangles.mean(1)
        nrm = shape.face_normals
    else:
        pts, nrm = shape.vertices, _normals(shape)
        rg = [score(region_growing(pts, nrm, a)) for a in REGION_GROW_ANGLES]
        out["region_grow"] = {"per_setting": rg, "best": _best(rg)}
    km = [score(kmeans_xyz_normal(_unit_pts(pts), nrm, k, 0.3)) for k in KMEANS_KS]
    out["kmeans"] = {"per_setting": km, "best": _best(km)}
    if obj.scoring == "humans":
        kc = score_per_human_count(obj.labels, lambda k: kmeans_xyz_normal(_unit_pts(pts), nrm, k, 0.3), weights)
        out["kmeans_count"] = {"per_setting": [kc], "best": kc}
        one = score(np.zeros(len(pts), dtype=np.int64))
        out["one_segment"] = {"per_setting": [one], "best": one}
    return out


def _best(per_setting: Sequence[dict[str, float]]) -> dict[str, float]:
    """Per label level, the best score over settings (scales)."""
    return {lvl: max(s[lvl] for s in per_setting) for lvl in per_setting[0]}


def _normals(shape: Shape) -> np.ndarray:
    if shape.vertex_normals is not None:
        return shape.vertex_normals
    from crossdistill.geometry.sampling import estimate_normals

    return estimate_normals(shape.vertices)


def _unit_pts(points: np.ndarray) -> np.ndarray:
    lo, hi = points.min(0), points.max(0)
    return (points - (lo + hi) / 2) / max(float((hi - lo).max()), 1e-12)
