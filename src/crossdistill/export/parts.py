"""Writers for part segmentations: label arrays, the colour-coded preview, parts as GLB nodes, PLY.

Output layout of one object (stable; documented in the README)::

    OUT/<name>/
      segment.json                    settings, seed, teacher, timings, per-scale part counts
      hierarchy.json                  which part at each scale lies in which coarser part
      parts_hierarchy.glb             every scale in one GLB, part nodes nested coarse -> fine (meshes)
      contact_sheet.png               the parts at every scale from the object's principal axes
      field.pt                        the trained grouping field (:mod:`crossdistill.methods.sampart3d.interactive`)
      scale_<s>/labels.npy            int32, one label per input face (meshes) or point (clouds): the
                                      per-face mask part tools take (HoloPart's ``mask.npy``)
      scale_<s>/labels.json           {"element": "face"|"point", "n_parts", "labels": [...]}
      scale_<s>/parts.glb             the parts as nodes keeping the input's UVs, materials, textures,
                                      normals and vertex colours, pivots at part centres (meshes)
      scale_<s>/parts_colored.glb     the colour-coded preview: the input mesh, faces coloured by part
      scale_<s>/parts_colored.ply     points coloured by part (point clouds)
      scale_<s>/parts/<part>.<fmt>    with ``--export-parts glb|obj|ply``: one file per part

Node names and layout of the GLB files: :mod:`crossdistill.export.part_scene`.
Every file is written atomically (:mod:`crossdistill.io_utils`); geometry is in the
input's own units and face order.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import trimesh

from crossdistill.export.part_files import write_part_files, write_point_part_files
from crossdistill.export.part_scene import parts_scene
from crossdistill.export.source import SourceMeshes, source_meshes
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


def write_colored_mesh(path: Path, shape: Shape, face_labels: np.ndarray) -> None:
    """The colour-coded preview: the input mesh, every face in its part's colour (face order kept).

    Every face gets its own three vertices, so colours stop exactly at part borders (glTF
    stores colour per vertex); ``trimesh.load(path, force="mesh")`` gives the input's faces in
    the input's order, so ``labels.npy`` indexes this file's faces too.
    """
    lab = np.asarray(face_labels)
    pal = label_palette(int(lab.max()) + 1)
    rgba = np.concatenate([pal[np.maximum(lab, 0)], np.full((len(lab), 1), 255, np.uint8)], axis=1)
    rgba[lab < 0, :3] = 160
    corners = np.asarray(shape.faces).reshape(-1)
    mesh = trimesh.Trimesh(vertices=shape.vertices[corners], faces=np.arange(len(corners)).reshape(-1, 3),
                           process=False, validate=False)
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=np.repeat(rgba, 3, axis=0))
    export_trimesh(path, mesh)


def write_part_nodes(path: Path, shape: Shape, face_labels: np.ndarray,
                     part_names: Sequence[str] | None = None, scale: float = float("nan"),
                     src: SourceMeshes | None = None) -> None:
    """GLB of the parts as nodes keeping the input's attributes, pivots at part centres
    (layout and names in :mod:`crossdistill.export.part_scene`).

    Args:
        path: destination ``.glb``.
        shape: the input mesh as loaded.
        face_labels: (F,) part per face (-1: left out).
        part_names: optional name per label (appended to the node names).
        scale: recorded in the nodes' extras.
        src: the input's meshes (default: read back with :func:`~crossdistill.export.source.source_meshes`).
    """
    src = source_meshes(shape) if src is None else src
    export_trimesh(path, parts_scene(src, shape.vertices, shape.faces, face_labels, scale, part_names))


def write_named_nodes(path: Path, shape: Shape, face_labels: np.ndarray, names: Sequence[str]) -> None:
    """GLB with one flat-coloured node per label, named exactly ``names[k]`` (selection / rest)."""
    pal = label_palette(len(names))
    scene = trimesh.Scene()
    for k, name in enumerate(names):
        faces = np.flatnonzero(face_labels == k)
        if len(faces) == 0:
            continue
        used, inv = np.unique(shape.faces[faces], return_inverse=True)
        part = trimesh.Trimesh(vertices=shape.vertices[used], faces=inv.reshape(-1, 3), process=False, validate=False)
        part.visual = trimesh.visual.ColorVisuals(part, face_colors=np.append(pal[k], 255))
        scene.add_geometry(part, node_name=name, geom_name=name)
    export_trimesh(path, scene)


def write_colored_points(path: Path, points: np.ndarray, labels: np.ndarray) -> None:
    """PLY of points coloured by part."""
    pal = label_palette(int(labels.max()) + 1)
    cloud = trimesh.PointCloud(points, colors=np.concatenate([pal[labels], np.full((len(labels), 1), 255, np.uint8)], 1))
    export_trimesh(path, cloud)


def write_scale_outputs(folder: Path, shape: Shape, labels: np.ndarray, part_names: Sequence[str] | None = None,
                        scale: float = float("nan"), src: SourceMeshes | None = None,
                        export_parts: str | None = None) -> None:
    """All per-scale files of one object (see the module docstring).

    Args:
        folder: the scale's folder (created).
        shape: the input as loaded.
        labels: (M,) part per input face (meshes) or point (clouds).
        part_names: optional name per label.
        scale: the scale (recorded in the GLB's node extras).
        src: the input's meshes, read once per object by the caller (default: read here).
        export_parts: also write one file per part into ``folder/parts/``: "glb", "obj" or "ply"
            (:mod:`crossdistill.export.part_files`; point clouds always get PLY).
    """
    folder.mkdir(parents=True, exist_ok=True)
    if shape.is_mesh:
        src = source_meshes(shape) if src is None else src
        write_labels(folder, labels, "face", part_names)
        write_colored_mesh(folder / "parts_colored.glb", shape, labels)
        write_part_nodes(folder / "parts.glb", shape, labels, part_names, scale, src)
        if export_parts:
            write_part_files(folder / "parts", src, shape.vertices, shape.faces, labels, scale, export_parts,
                             part_names)
    else:
        write_labels(folder, labels, "point", part_names)
        write_colored_points(folder / "parts_colored.ply", shape.vertices, labels)
        if export_parts:
            write_point_part_files(folder / "parts", shape.vertices, labels, shape.vertex_normals,
                                   shape.vertex_colors, part_names)
