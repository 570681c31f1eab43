"""One file per part (``--export-parts glb|obj|ply``): ``scale_<s>/parts/<part node name>.<fmt>``.

* ``glb``: the part alone, laid out as in ``parts.glb`` (:mod:`.part_scene`): pivot at its centre,
  UVs, materials, textures, normals and vertex colours kept.
* ``obj``: ``.obj`` + ``.mtl`` + textures (named ``<part>_<texture>`` so parts never overwrite
  each other's images), in world coordinates (OBJ has no node transforms); UVs, materials and
  normals kept, vertex colours as ``v x y z r g b``.
* ``ply``: one mesh in world coordinates with normals and per-vertex colours (textures sampled
  into vertex colours; PLY has no materials).

Point clouds get ``ply`` whatever the format asked for (points with their colours and normals).
Every file is written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import trimesh

from crossdistill.export.part_scene import add_part, part_centres, part_label
from crossdistill.export.source import SourceMeshes
from crossdistill.io_utils import export_trimesh, write_bytes, write_text

__all__ = ["PART_FORMATS", "write_part_files", "write_point_part_files"]

PART_FORMATS = ("glb", "obj", "ply")


def _part_scene(src: SourceMeshes, faces: np.ndarray, centre: np.ndarray, k: int, scale: float,
                part_name: str | None) -> tuple[trimesh.Scene, str]:
    scene = trimesh.Scene()
    name = add_part(scene, src, faces, centre, scene.graph.base_frame, np.zeros(3), k, scale, part_name, None, {})
    return scene, name


def _write_obj(path: Path, scene: trimesh.Scene) -> None:
    from trimesh.exchange.obj import export_obj

    stem = path.stem
    text, files = export_obj(scene, include_texture=True, return_texture=True, mtl_name=f"{stem}.mtl")
    renames = {f: f"{stem}_{f}" for f in files if not f.lower().endswith(".mtl")}
    for name, data in files.items():
        if name.lower().endswith(".mtl"):
            mtl = data.decode("utf-8") if isinstance(data, bytes) else data
            for old, new in renames.items():
                mtl = mtl.replace(f" {old}", f" {new}")
            write_text(path.parent / name, mtl)
        else:
            write_bytes(path.parent / renames[name], data)
    write_text(path, text)


def _write_ply(path: Path, scene: trimesh.Scene) -> None:
    pieces = []
    for mesh in scene.dump():
        if isinstance(mesh.visual, trimesh.visual.texture.TextureVisuals):
            normals = mesh.vertex_normals if "vertex_normals" in mesh._cache.cache else None
            mesh.visual = mesh.visual.to_color()
            if normals is not None:
                mesh.vertex_normals = normals
        pieces.append(mesh)
    mesh = pieces[0] if len(pieces) == 1 else trimesh.util.concatenate(pieces)
    export_trimesh(path, mesh, include_attributes=False)


def write_part_files(folder: Path, src: SourceMeshes, vertices: np.ndarray, faces: np.ndarray,
                     labels: np.ndarray, scale: float, fmt: str,
                     part_names: Sequence[str] | None = None) -> list[Path]:
    """Write one ``fmt`` file per part of a mesh into ``folder``; return the paths (part order).

    Args:
        folder: destination (created).
        src: the input's meshes (:func:`~.source.source_meshes`).
        vertices, faces: the shape's (V, 3) vertices and (F, 3) faces.
        labels: (F,) part per face.
        scale: the scale (recorded in GLB extras).
        fmt: one of :data:`PART_FORMATS`.
        part_names: optional name per label (appended to file names).
    """
    if fmt not in PART_FORMATS:
        raise ValueError(f"unknown part format {fmt!r} ({', '.join(PART_FORMATS)})")
    folder.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels)
    centres = part_centres(vertices, faces, labels)
    written = []
    for k in range(len(centres)):
        idx = np.flatnonzero(labels == k)
        if len(idx) == 0:
            continue
        name = part_names[k] if part_names is not None and k < len(part_names) else None
        scene, node = _part_scene(src, idx, centres[k], k, scale, name)
        path = folder / f"{node}.{fmt}"
        if fmt == "glb":
            export_trimesh(path, scene)
        elif fmt == "obj":
            _write_obj(path, scene)
        else:
            _write_ply(path, scene)
        written.append(path)
    return written


def write_point_part_files(folder: Path, points: np.ndarray, labels: np.ndarray, normals: np.ndarray | None,
                           colors: np.ndarray | None, part_names: Sequence[str] | None = None) -> list[Path]:
    """One point-cloud PLY per part (``part_<k>[.<name>].ply``): xyz, normals and colours when present."""
    from crossdistill.geometry.io import save_point_cloud

    folder.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels)
    written = []
    for k in range(int(labels.max()) + 1 if len(labels) else 0):
        idx = np.flatnonzero(labels == k)
        if len(idx) == 0:
            continue
        name = part_names[k] if part_names is not None and k < len(part_names) else None
        path = folder / f"{part_label(k, None, name)}.ply"
        save_point_cloud(path, points[idx], None if normals is None else normals[idx],
                         None if colors is None else colors[idx])
        written.append(path)
    return written
