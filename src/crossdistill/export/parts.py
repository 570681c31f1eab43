"""Writers for part segmentations: label arrays, coloured GLB, one GLB node per part, PLY.

Output layout of one object (stable; documented in the README)::

    OUT/<name>/
      segment.json                    settings, seed, teacher, timings, per-scale part counts
      hierarchy.json                  which part at each scale lies in which coarser part
      contact_sheet.png               the parts at every scale from a few views
      field.pt                        the trained grouping field (:mod:`crossdistill.methods.sampart3d.interactive`)
      scale_<s>/labels.npy            int32, one label per input face (meshes) or point (clouds)
      scale_<s>/labels.json           {"element": "face"|"point", "n_parts", "labels": [...]}
      scale_<s>/parts_colored.glb     the input mesh, faces coloured by part (meshes)
      scale_<s>/parts.glb             one named node per part (meshes), for downstream tools
      scale_<s>/parts_colored.ply     points coloured by part (point clouds)

Every file is written atomically (:mod:`crossdistill.io_utils`); geometry is in the
input's own units and face order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import trimesh

from crossdistill.io_utils import export_trimesh, save_npy, write_json
from crossdistill.types import Shape
from crossdistill.viz.palette import label_palette


def scale_dirname(scale: float) -> str:
    """Folder name of one scale, e.g. ``scale_0.5``."""
    return f"scale_{float(scale):g}" if float(scale) != int(scale) else f"scale_{float(scale):.1f}"


def write_labels(folder: Path, labels: np.ndarray, element: str, part_names: Sequence[str] | None = None) -> None:
    """Write ``labels.npy`` (int32) and ``labels.json`` into ``folder``.

    Args:
        labels: (M,) int labels, one per input face or point.
        element: "face" or "point".
        part_names: optional name per label.
    """
    lab = np.asarray(labels, dtype=np.int32)
    save_npy(folder / "labels.npy", lab)
    doc = {"element": element, "n_elements": int(len(lab)), "n_parts": int(lab.max()) + 1 if len(lab) else 0,
           "labels": lab.tolist()}
    if part_names is not None:
        doc["part_names"] = list(part_names)
    write_json(folder / "labels.json", doc, indent=None)


def _trimesh_of(shape: Shape, face_colors: np.ndarray | None = None) -> trimesh.Trimesh:
    mesh = trimesh.Trimesh(vertices=shape.vertices, faces=shape.faces, process=False, validate=False)
    if face_colors is not None:
        mesh.visual = trimesh.visual.ColorVisuals(mesh, face_colors=face_colors)
    return mesh


def write_colored_mesh(path: Path, shape: Shape, face_labels: np.ndarray) -> None:
    """GLB of the input mesh with every face coloured by its part (face order kept)."""
    pal = label_palette(int(face_labels.max()) + 1)
    rgba = np.concatenate([pal[face_labels], np.full((len(face_labels), 1), 255, np.uint8)], axis=1)
    export_trimesh(path, _trimesh_of(shape, rgba))


def write_part_nodes(path: Path, shape: Shape, face_labels: np.ndarray,
                     part_names: Sequence[str] | None = None) -> None:
    """GLB scene with one named node per part (``part_000`` ... or the given names)."""
    pal = label_palette(int(face_labels.max()) + 1)
    scene = trimesh.Scene()
    for k in range(int(face_labels.max()) + 1):
        faces = np.flatnonzero(face_labels == k)
        if len(faces) == 0:
            continue
        used, inv = np.unique(shape.faces[faces], return_inverse=True)
        part = trimesh.Trimesh(vertices=shape.vertices[used], faces=inv.reshape(-1, 3), process=False, validate=False)
        part.visual = trimesh.visual.ColorVisuals(part, face_colors=np.append(pal[k], 255))
        name = part_names[k] if part_names is not None and k < len(part_names) else f"part_{k:03d}"
        scene.add_geometry(part, node_name=name, geom_name=name)
    export_trimesh(path, scene)


def write_colored_points(path: Path, points: np.ndarray, labels: np.ndarray) -> None:
    """PLY of points coloured by part."""
    pal = label_palette(int(labels.max()) + 1)
    cloud = trimesh.PointCloud(points, colors=np.concatenate([pal[labels], np.full((len(labels), 1), 255, np.uint8)], 1))
    export_trimesh(path, cloud)


def write_scale_outputs(folder: Path, shape: Shape, labels: np.ndarray, part_names: Sequence[str] | None = None) -> None:
    """All per-scale files of one object (see the module docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    if shape.is_mesh:
        write_labels(folder, labels, "face", part_names)
        write_colored_mesh(folder / "parts_colored.glb", shape, labels)
        write_part_nodes(folder / "parts.glb", shape, labels, part_names)
    else:
        write_labels(folder, labels, "point", part_names)
        write_colored_points(folder / "parts_colored.ply", shape.vertices, labels)
