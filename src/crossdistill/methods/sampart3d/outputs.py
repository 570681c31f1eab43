"""Writing one object's :class:`~.pipeline.Segmentation` to disk (layout in :mod:`crossdistill.export.parts`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from crossdistill.errors import InputError
from crossdistill.export.part_scene import hierarchy_scene
from crossdistill.export.parts import scale_dirname, write_scale_outputs
from crossdistill.export.source import source_meshes
from crossdistill.io_utils import export_trimesh, save_image, write_json
from crossdistill.methods.sampart3d.interactive import FIELD_FILE, bundle_from_segmentation, save_field_bundle
from crossdistill.methods.sampart3d.pipeline import Segmentation, part_hierarchy
from crossdistill.types import Shape

MARKER = "segment.json"
#: every scale in one GLB, part nodes nested coarse to fine (meshes; :func:`~crossdistill.export.part_scene.hierarchy_scene`)
HIERARCHY_GLB = "parts_hierarchy.glb"


def write_segmentation(seg: Segmentation, shape: Shape, out_dir: Path, settings: dict, digest: str,
                       sheet_size: int = 192, save_field: bool = True,
                       export_parts: str | None = None) -> None:
    """Write every output of one object; ``segment.json`` (the completion marker) goes last.

    Args:
        seg: the segmentation.
        shape: the input shape as loaded (outputs keep its units and face order).
        out_dir: the object's folder.
        settings: the run settings (recorded).
        digest: settings hash (recorded; batch resume compares it).
        save_field: also write the trained grouping field (``field.pt``, for interactive selection).
        export_parts: also write one file per part per scale: "glb", "obj" or "ply"
            (:mod:`crossdistill.export.part_files`).
    """
    from crossdistill.viz.contact_sheet import scale_sheet

    out_dir.mkdir(parents=True, exist_ok=True)
    weights = shape.face_areas if shape.is_mesh else None
    per_scale = [seg.labels(i) for i in range(len(seg.scales))]
    src = source_meshes(shape) if shape.is_mesh else None  # the input read back once, attributes and all
    for s, labels in zip(seg.scales, per_scale):
        write_scale_outputs(out_dir / scale_dirname(s), shape, labels, scale=s, src=src, export_parts=export_parts)
    levels = part_hierarchy(per_scale, weights)
    write_json(out_dir / "hierarchy.json", {
        "scales": list(seg.scales),
        "element": "face" if shape.is_mesh else "point",
        "levels": levels,
    })
    if src is not None:
        export_trimesh(out_dir / HIERARCHY_GLB,
                       hierarchy_scene(src, shape.vertices, shape.faces, per_scale, seg.scales, levels))
    save_image(out_dir / "contact_sheet.png", scale_sheet(shape, per_scale, seg.scales, levels, cell=sheet_size))
    if save_field:
        save_field_bundle(out_dir / FIELD_FILE, bundle_from_segmentation(seg))
    write_json(out_dir / MARKER, {
        "settings_hash": digest,
        "settings": settings,
        "input": str(shape.source),
        "element": "face" if shape.is_mesh else "point",
        "n_elements": int(shape.n_faces if shape.is_mesh else shape.n_vertices),
        "scales": list(seg.scales),
        "n_parts": {scale_dirname(s): int(np.max(l)) + 1 for s, l in zip(seg.scales, per_scale)},
        "timings_s": {k: round(v, 3) for k, v in seg.timings.items()},
        "meta": seg.meta,
    })


def read_segment_meta(obj: Path) -> dict:
    """The parsed ``segment.json`` of a finished ``crossdistill segment`` object folder.

    Raises:
        InputError: no such folder, no marker (unfinished), or an unreadable marker.
    """
    obj = Path(obj)
    if not obj.is_dir():
        raise InputError(f"object folder not found: {obj}")
    marker = obj / MARKER
    if not marker.is_file():
        raise InputError(f"{obj} is not a finished `crossdistill segment` object folder (no {MARKER})")
    try:
        meta = json.loads(marker.read_text())
    except (OSError, ValueError):
        raise InputError(f"cannot read {marker}") from None
    if not isinstance(meta, dict):
        raise InputError(f"{marker} is not a JSON object")
    return meta


def read_segment_object(obj: Path, purpose: str) -> tuple[dict, Shape]:
    """A finished object folder of ``crossdistill segment``: its ``segment.json`` and its input shape.

    Args:
        obj: the object's folder.
        purpose: what the caller needs the input for (named in the error when it is gone).

    Returns:
        (the parsed ``segment.json``, the input re-read from its recorded path; "demo" is the built-in robot).

    Raises:
        InputError: see :func:`read_segment_meta`, or the input has moved.
    """
    from crossdistill.geometry.demo import demo_shape
    from crossdistill.geometry.io import load_shape

    meta = read_segment_meta(obj)
    src = meta.get("input")
    if src == "demo":
        return meta, demo_shape()
    if not src or not Path(src).is_file():
        raise InputError(f"the input of {obj} ({src}) is no longer there; {purpose} needs its faces/points")
    return meta, load_shape(src)
