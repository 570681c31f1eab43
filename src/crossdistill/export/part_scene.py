"""Parts as glTF nodes an artist can use: the input's attributes kept, each part's pivot at its centre.

Node layout of one scale (``scale_<s>/parts.glb``, :func:`parts_scene`)::

    <node>.part_003             a part inside one input node: one mesh node, translated to the
                                part's centre; its vertices are relative to that centre
    part_007                    a part spanning input nodes: an empty node at the part's centre...
      crate.part_007              ...with one mesh node per input node (identity transform)
      ball.part_007

``<node>`` is the input's scene-node name (:class:`~.source.SourceMeshes`); once the parts are
named (``crossdistill name``) the name follows: ``crate.part_003.lid``. Every part node carries
glTF ``extras``: ``part``, ``scale``, ``n_faces``, ``input_nodes`` and ``name``.

All scales in one file (``parts_hierarchy.glb``, :func:`hierarchy_scene`) nest the same nodes
from coarse to fine as ``hierarchy.json`` says (each finer part under the coarser part holding
most of its area), names suffixed ``@<scale>``. Only the finest scale's nodes hold meshes, so the
file shows the object once; a coarser node groups its children (exactly its faces when the
finer part lies wholly inside it, ``extras.containment`` = 1; the exact faces of every scale are
in ``scale_<s>/parts.glb``).

The "centre" of a part is the centre of its bounding box in the input's world space.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import trimesh

from crossdistill.export.source import SourceMeshes, submesh

__all__ = ["part_label", "parts_scene", "hierarchy_scene", "part_centres"]


def _clean(name: str) -> str:
    """A part name as a node-name suffix: letters, digits, spaces, '_' and '-' kept, anything else '_'."""
    return re.sub(r"[^\w\- ]+", "_", " ".join(str(name).split())).strip("_ ")


def part_label(k: int, node: str | None = None, part_name: str | None = None, scale: float | None = None) -> str:
    """Node name of part ``k``: ``[<node>.]part_<k:03d>[.<part name>][@<scale>]``."""
    text = f"part_{k:03d}"
    if node:
        text = f"{node}.{text}"
    if part_name and _clean(part_name):
        text = f"{text}.{_clean(part_name)}"
    if scale is not None:
        text = f"{text}@{float(scale):g}"
    return text


def _translation(v: np.ndarray) -> np.ndarray:
    m = np.eye(4)
    m[:3, 3] = v
    return m


def part_centres(shape_vertices: np.ndarray, shape_faces: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(K, 3) bounding-box centre of every part's vertices (NaN for an empty label)."""
    labels = np.asarray(labels)
    K = int(labels.max()) + 1 if len(labels) else 0
    out = np.full((K, 3), np.nan)
    for k in range(K):
        faces = np.flatnonzero(labels == k)
        if len(faces):
            pts = shape_vertices[np.unique(shape_faces[faces])]
            out[k] = 0.5 * (pts.min(0) + pts.max(0))
    return out


def add_part(scene: trimesh.Scene, src: SourceMeshes, faces: np.ndarray, centre: np.ndarray,
              parent: str, parent_centre: np.ndarray, k: int, scale: float, part_name: str | None,
              scale_tag: float | None, extras: dict, with_mesh: bool = True) -> str:
    """Add part ``k`` (shape faces ``faces``) under ``parent``; return the part node's name."""
    pieces = src.pieces(faces)
    nodes = [src.names[m] for m, _ in pieces]
    meta = {"part": int(k), "scale": float(scale), "n_faces": int(len(faces)), "input_nodes": nodes,
            "name": part_name or ""} | extras
    local = _translation(centre - parent_centre)
    if with_mesh and len(pieces) == 1:
        m, idx = pieces[0]
        name = part_label(k, src.names[m], part_name, scale_tag)
        scene.add_geometry(submesh(src.meshes[m], idx, centre), node_name=name, geom_name=name,
                           parent_node_name=parent, transform=local, metadata=meta)
        return name
    name = part_label(k, nodes[0] if len(pieces) == 1 else None, part_name, scale_tag)
    scene.graph.update(frame_to=name, frame_from=parent, matrix=local, metadata=meta)
    if with_mesh:
        for m, idx in pieces:
            child = part_label(k, src.names[m], part_name, scale_tag)
            scene.add_geometry(submesh(src.meshes[m], idx, centre), node_name=child, geom_name=child,
                               parent_node_name=name, transform=np.eye(4),
                               metadata={"part": int(k), "scale": float(scale), "input_node": src.names[m]})
    return name


def parts_scene(src: SourceMeshes, vertices: np.ndarray, faces: np.ndarray, labels: np.ndarray, scale: float,
                part_names: Sequence[str] | None = None) -> trimesh.Scene:
    """One scale's parts as a glTF-ready scene (layout in the module docstring).

    Args:
        src: the input's meshes (:func:`~.source.source_meshes`).
        vertices: (V, 3) the shape's vertices (input units; used for the part centres).
        faces: (F, 3) the shape's faces.
        labels: (F,) int part of every face (>= 0).
        scale: the scale (recorded in ``extras``).
        part_names: optional name per label.
    """
    labels = np.asarray(labels)
    scene = trimesh.Scene()
    root = scene.graph.base_frame
    centres = part_centres(vertices, faces, labels)
    for k in range(len(centres)):
        idx = np.flatnonzero(labels == k)
        if len(idx) == 0:
            continue
        name = part_names[k] if part_names is not None and k < len(part_names) else None
        add_part(scene, src, idx, centres[k], root, np.zeros(3), k, scale, name, None, {})
    return scene


def hierarchy_scene(src: SourceMeshes, vertices: np.ndarray, faces: np.ndarray,
                    labels_by_scale: Sequence[np.ndarray], scales: Sequence[float],
                    levels: Sequence[dict]) -> trimesh.Scene:
    """Every scale in one scene, nested coarse to fine as ``levels`` (``hierarchy.json``'s) says.

    Args:
        src, vertices, faces: as in :func:`parts_scene`.
        labels_by_scale: S arrays (F,) of labels, fine to coarse (the order of ``scales``).
        scales: the S scales, ascending.
        levels: :func:`~crossdistill.methods.sampart3d.pipeline.part_hierarchy` of those labels:
            level ``i`` maps parts of scale ``i`` to their parent at scale ``i + 1``.

    Only the finest scale's nodes hold meshes (the object appears once); a finer part whose
    parent is unknown (no faces) hangs from the root.
    """
    scene = trimesh.Scene()
    root = scene.graph.base_frame
    S = len(scales)
    node_of: list[dict[int, str]] = [dict() for _ in range(S)]
    centre_of: list[np.ndarray] = [part_centres(vertices, faces, lab) for lab in labels_by_scale]
    for i in range(S - 1, -1, -1):  # coarse to fine
        lab = np.asarray(labels_by_scale[i])
        parents = {int(a): int(b) for a, b in levels[i]["parent"].items()} if i < S - 1 else {}
        shares = {int(a): float(b) for a, b in levels[i]["containment"].items()} if i < S - 1 else {}
        for k in range(len(centre_of[i])):
            idx = np.flatnonzero(lab == k)
            if len(idx) == 0:
                continue
            p = parents.get(k)
            parent = node_of[i + 1].get(p, root) if p is not None else root
            pc = centre_of[i + 1][p] if parent != root else np.zeros(3)
            extras = {"containment": shares.get(k, 1.0)} if i < S - 1 else {}
            node_of[i][k] = add_part(scene, src, idx, centre_of[i][k], parent, pc, k, scales[i], None,
                                      scales[i], extras, with_mesh=(i == 0))
    return scene
