"""The input's meshes with every attribute they carry, in the face order of :func:`~crossdistill.geometry.io.load_shape`.

:class:`~crossdistill.types.Shape` keeps positions and one colour per face or vertex: enough to
segment, not enough to hand parts back to an artist. For export we read the input file again
and keep, per scene node, what trimesh loads: UVs, materials and their textures (PBR or OBJ),
vertex normals, vertex colours and custom ``_`` vertex attributes. Every node's transform is
baked exactly as :func:`~crossdistill.geometry.io.load_shape` bakes it (``Scene.dump()``), so
face ``i`` of the shape is face ``face_local[i]`` of mesh ``face_mesh[i]`` here, and normals are
carried through the transform (trimesh's ``dump()`` drops them).

When the file cannot be read back the same way (a shape built in code, the demo, a file that
changed since) the meshes are built from the :class:`Shape` itself (positions, its colours,
its nodes) and :attr:`SourceMeshes.faithful` is False.

Example:
    >>> src = source_meshes(load_shape("crate.glb"))            # doctest: +SKIP
    >>> src.names, src.faithful                                   # doctest: +SKIP
    (('crate', 'ball'), True)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from trimesh.visual import ColorVisuals
from trimesh.visual.texture import TextureVisuals

from crossdistill.types import Shape

__all__ = ["SourceMeshes", "source_meshes", "submesh", "unique_names"]

_READ_BACK = (".glb", ".gltf", ".obj", ".ply", ".stl", ".off")


@dataclass(frozen=True)
class SourceMeshes:
    """The input as world-space trimesh meshes, one per scene node (and primitive).

    Attributes:
        meshes: M meshes with their visuals (``TextureVisuals`` with UVs and material, or
            ``ColorVisuals``) and, when the file had them, vertex normals; in the input's units.
        names: M unique names: the scene node's name (``name_2``, ... when a node holds several
            primitives or names repeat), or the file stem for single-mesh formats.
        face_mesh: (F,) int32 index into ``meshes`` of every shape face.
        face_local: (F,) int64 index of that face inside its mesh.
        faithful: True when read back from the input file with all its attributes; False when
            built from the :class:`Shape` (positions and its one colour per face / vertex only).
    """

    meshes: tuple[trimesh.Trimesh, ...]
    names: tuple[str, ...]
    face_mesh: np.ndarray
    face_local: np.ndarray
    faithful: bool

    def pieces(self, faces: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Split shape faces by source mesh: [(mesh index, (k,) local face indices)], mesh order."""
        faces = np.asarray(faces, dtype=np.int64)
        owner = self.face_mesh[faces]
        out = []
        for m in np.unique(owner):
            out.append((int(m), self.face_local[faces[owner == m]]))
        return out


def unique_names(names: list[str], fallback: str = "mesh") -> tuple[str, ...]:
    """``names`` with blanks replaced by ``fallback`` and repeats numbered ``name_2``, ``name_3``..."""
    seen: dict[str, int] = {}
    taken = set()
    out = []
    for n in names:
        base = str(n).strip() or fallback
        count = seen.get(base, 0) + 1
        seen[base] = count
        name = base if count == 1 else f"{base}_{count}"
        while name in taken:
            count += 1
            seen[base] = count
            name = f"{base}_{count}"
        taken.add(name)
        out.append(name)
    return tuple(out)


_PRIMITIVE_NODE = re.compile(r"^(?P<parent>.+)_[0-9a-f]{6}$")


def _node_name(scene: trimesh.Scene, node: str) -> str:
    """The file's node name for a geometry node: trimesh loads each primitive of a multi-primitive
    glTF mesh as a child node named ``<node>_<random hex>``; those take their parent's name."""
    parents = scene.graph.transforms.parents
    parent = parents.get(node)
    m = _PRIMITIVE_NODE.match(str(node))
    if m and parent is not None and parent != scene.graph.base_frame and m.group("parent") == str(parent):
        return str(parent)
    return str(node)


def _baked(scene: trimesh.Scene) -> list[trimesh.Trimesh]:
    """``scene.dump()`` restricted to meshes, keeping vertex normals (same order and vertices as dump)."""
    out = []
    for node in scene.graph.nodes_geometry:
        transform, geom_name = scene.graph[node]
        geom = scene.geometry[geom_name]
        if not isinstance(geom, trimesh.Trimesh):
            continue
        mesh = geom.copy(include_cache=True)  # keeps the file's vertex normals; apply_transform rotates them
        if isinstance(geom.visual, TextureVisuals):  # TextureVisuals.copy() drops COLOR_0 & co
            for key, value in geom.visual.vertex_attributes.items():
                mesh.visual.vertex_attributes[key] = np.array(value, copy=True)
        mesh.apply_transform(transform)
        mesh.metadata["name"] = geom_name
        mesh.metadata["node"] = _node_name(scene, node)
        out.append(mesh)
    return out


def _matches(meshes: list[trimesh.Trimesh], shape: Shape) -> bool:
    if not meshes or sum(len(m.faces) for m in meshes) != shape.n_faces:
        return False
    if sum(len(m.vertices) for m in meshes) != shape.n_vertices:
        return False
    verts = np.concatenate([np.asarray(m.vertices, dtype=np.float64) for m in meshes])
    scale = max(float(np.abs(shape.vertices).max()), 1e-12)
    if not np.allclose(verts, shape.vertices, rtol=0.0, atol=1e-9 * scale):
        return False
    offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
    faces = np.concatenate([np.asarray(m.faces, dtype=np.int64) + o for m, o in zip(meshes, offsets)])
    return bool(np.array_equal(faces, shape.faces))


def _index(counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    owner = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return owner, np.arange(int(sum(counts)), dtype=np.int64) - starts[owner]


def _from_file(path: Path, shape: Shape) -> SourceMeshes | None:
    try:
        scene = trimesh.load_scene(str(path), file_type=path.suffix[1:].lower(), process=False)
        meshes = _baked(scene)
    except Exception:  # noqa: BLE001 - the file changed or cannot be read back: use the shape
        return None
    if not _matches(meshes, shape):
        return None
    single = len(meshes) == 1 and path.suffix.lower() != ".glb" and path.suffix.lower() != ".gltf"
    raw = [path.stem if single else str(m.metadata.get("node") or m.metadata.get("name") or "") for m in meshes]
    owner, local = _index([len(m.faces) for m in meshes])
    return SourceMeshes(tuple(meshes), unique_names(raw, path.stem or "mesh"), owner, local, True)


def _from_shape(shape: Shape) -> SourceMeshes:
    """One mesh per node of the shape (or one mesh), with the shape's colours."""
    node = shape.face_node if shape.face_node is not None else np.zeros(shape.n_faces, np.int32)
    stem = Path(shape.source).stem if shape.source else "mesh"
    meshes, raw = [], []
    face_mesh = np.zeros(shape.n_faces, np.int32)
    face_local = np.zeros(shape.n_faces, np.int64)
    for i, n in enumerate(np.unique(node)):
        faces = np.flatnonzero(node == n)
        face_mesh[faces] = i
        face_local[faces] = np.arange(len(faces))
        used, inv = np.unique(shape.faces[faces], return_inverse=True)
        normals = shape.vertex_normals[used] if shape.vertex_normals is not None else None
        mesh = trimesh.Trimesh(shape.vertices[used], inv.reshape(-1, 3), vertex_normals=normals,
                               process=False, validate=False)
        if shape.face_colors is not None:
            mesh.visual = ColorVisuals(mesh, face_colors=shape.face_colors[faces])
        elif shape.vertex_colors is not None:
            mesh.visual = ColorVisuals(mesh, vertex_colors=shape.vertex_colors[used])
        meshes.append(mesh)
        names = shape.node_names
        raw.append(names[int(n)] if shape.face_node is not None and int(n) < len(names) else stem)
    return SourceMeshes(tuple(meshes), unique_names(raw, stem), face_mesh, face_local, False)


def source_meshes(shape: Shape) -> SourceMeshes:
    """The input of ``shape`` (a mesh) as :class:`SourceMeshes`: read back from ``shape.source`` when
    that file still gives exactly this shape, else built from the shape. The file is only read."""
    if not shape.is_mesh:
        raise ValueError("source_meshes needs a mesh (a point cloud has no faces)")
    path = Path(shape.source) if shape.source else None
    if path is not None and path.suffix.lower() in _READ_BACK and path.is_file():
        found = _from_file(path, shape)
        if found is not None:
            return found
    return _from_shape(shape)


def _has_normals(mesh: trimesh.Trimesh) -> bool:
    return "vertex_normals" in mesh._cache.cache


def submesh(mesh: trimesh.Trimesh, faces: np.ndarray, offset: np.ndarray | None = None) -> trimesh.Trimesh:
    """The faces ``faces`` (k,) of ``mesh`` as a new mesh, every attribute kept, moved by ``-offset``.

    Kept: positions (minus ``offset``, (3,)), vertex normals, UVs, the material object itself
    (so a texture shared by many parts is written once), vertex colours and ``_`` vertex
    attributes. Face colours are kept exactly by giving every face its own three vertices
    (glTF stores colours per vertex). Face order follows ``faces``.
    """
    faces = np.asarray(faces, dtype=np.int64)
    tri = np.asarray(mesh.faces, dtype=np.int64)[faces]
    visual = mesh.visual
    per_corner = isinstance(visual, ColorVisuals) and visual.kind == "face"
    if per_corner:
        used, new_faces = tri.reshape(-1), np.arange(3 * len(tri), dtype=np.int64).reshape(-1, 3)
    else:
        used, inv = np.unique(tri, return_inverse=True)
        new_faces = inv.reshape(-1, 3)
    verts = np.asarray(mesh.vertices, dtype=np.float64)[used]
    if offset is not None:
        verts = verts - np.asarray(offset, dtype=np.float64)
    normals = np.asarray(mesh.vertex_normals)[used] if _has_normals(mesh) else None
    out = trimesh.Trimesh(verts, new_faces, vertex_normals=normals, process=False, validate=False)
    n_v = len(mesh.vertices)
    if isinstance(visual, TextureVisuals):
        uv = visual.uv[used] if visual.uv is not None and len(visual.uv) == n_v else None
        tv = TextureVisuals(uv=uv, material=visual.material)
        for key, value in visual.vertex_attributes.items():
            if len(value) == n_v:
                tv.vertex_attributes[key] = np.asarray(value)[used]
        out.visual = tv
    elif isinstance(visual, ColorVisuals) and visual.kind == "vertex":
        out.visual = ColorVisuals(out, vertex_colors=np.asarray(visual.vertex_colors)[used])
    elif per_corner:
        out.visual = ColorVisuals(out, vertex_colors=np.repeat(np.asarray(visual.face_colors)[faces], 3, axis=0))
    for key, value in mesh.vertex_attributes.items():
        if len(value) == n_v:
            out.vertex_attributes[key] = np.asarray(value)[used]
    if normals is not None and "vertex_normals" not in out._cache.cache:  # a visual reset dropped them
        out.vertex_normals = normals
    return out
