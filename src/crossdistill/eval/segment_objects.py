"""Labelled objects of the flagship's benchmarks, with the ground-truth partitions the mask
emulator draws its masks from.

Two datasets under the shared data root, each with a mesh track and a point track:

* ``partnet`` -- ``partnet_mobility_dev`` (GLB meshes, per-face labels) and
  ``partnet_mobility_dev_points`` (15k-point PLYs). Scored at two label levels, ``link``
  (articulated parts) and ``leaf`` (PartNet leaves), by class-agnostic part mIoU.
* ``psb`` -- ``psb_dev``, single-surface meshes with 8 to 16 human segmentations each. The
  point track is sampled here from each mesh (15k points by area, face normals, seed 0),
  every point labelled as its face. Scored against every human segmentation and averaged:
  Rand index (``ri``; the benchmark's error is 1 - ri) and class-agnostic mIoU (``miou``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from crossdistill.eval.emulators.masks import hierarchy_partitions, segmentation_partitions
from crossdistill.eval.segment_protocol import LabelledShape
from crossdistill.types import Shape

DATASETS = ("partnet", "psb")
PSB_POINTS = 15000


def select(data: Path, dataset: str, per_category: int | None,
           categories: list[str] | None = None) -> list[tuple[str, str]]:
    """(category, id) of a dataset's objects: all, or the first ``per_category`` ids of each category (sorted)."""
    root = data / ("partnet_mobility_dev" if dataset == "partnet" else "psb_dev")
    suffix = ".glb" if dataset == "partnet" else ".ply"
    out = []
    for cat in sorted(p.name for p in root.iterdir() if p.is_dir()):
        if categories is not None and cat not in categories:
            continue
        ids = sorted((p.stem for p in (root / cat).glob("*" + suffix)), key=lambda s: (len(s), s))
        out += [(cat, i) for i in (ids if per_category is None else ids[:per_category])]
    return out


def load(data: Path, dataset: str, track: str, category: str, oid: str) -> tuple[LabelledShape, np.ndarray]:
    """One labelled object and its (G, E) ground-truth partitions (E: faces or points of the track)."""
    if dataset == "partnet":
        return _partnet(data, track, category, oid)
    if dataset == "psb":
        return _psb(data, track, category, oid)
    raise ValueError(f"unknown dataset {dataset!r} ({', '.join(DATASETS)})")


def _partnet(data: Path, track: str, category: str, oid: str) -> tuple[LabelledShape, np.ndarray]:
    from crossdistill.geometry.io import load_shape

    nodes = json.loads((data / "partnet_mobility_dev" / category / f"{oid}.json").read_text())["nodes"]
    if track == "mesh":
        base = data / "partnet_mobility_dev" / category / oid
        shape = load_shape(base.with_suffix(".glb"))
        lab = np.load(base.with_suffix(".labels.npz"))
        link, leaf = lab["face_link"], lab["face_leaf"]
    else:
        base = data / "partnet_mobility_dev_points" / category / oid
        shape = load_shape(base.with_suffix(".ply"))
        lab = np.load(base.with_suffix(".labels.npz"))
        link, leaf = lab["point_link"], lab["point_leaf"]
    labels = {"link": np.asarray(link), "leaf": np.asarray(leaf)}
    parts = hierarchy_partitions(leaf, nodes, extra=[np.asarray(link)])
    return LabelledShape(f"{category}/{oid}", category, shape, labels), parts


def _psb(data: Path, track: str, category: str, oid: str) -> tuple[LabelledShape, np.ndarray]:
    from crossdistill.geometry.io import load_shape
    from crossdistill.geometry.sampling import sample_surface

    base = data / "psb_dev" / category / oid
    mesh = load_shape(base.with_suffix(".ply"))
    segs = np.load(base.with_suffix(".segs.npz"))["segs"].astype(np.int64)
    if track == "mesh":
        shape, per_element = mesh, segs
    else:
        s = sample_surface(mesh, PSB_POINTS, seed=0)
        shape = Shape(vertices=s.points, vertex_normals=s.normals, source=str(base.with_suffix(".ply")))
        per_element = segs[:, s.face_id]
    labels = {f"h{h}": per_element[h] for h in range(len(per_element))}
    return (LabelledShape(f"{category}/{oid}", category, shape, labels, scoring="humans"),
            segmentation_partitions(per_element))
