"""Load meshes and point clouds into :class:`~crossdistill.types.Shape`; save point clouds.

Supported suffixes (case-insensitive)
-------------------------------------
Meshes (read with trimesh, ``process=False``: vertices are never merged or reordered):

* ``.glb`` / ``.gltf``: the scene is flattened exactly as
  ``trimesh.load(path, force="mesh", process=False)`` does it (see
  :func:`_shape_from_scene`), so face ``i`` here is face ``i`` there; ``face_node`` /
  ``node_names`` record which scene node each face came from.
* ``.obj`` (+ ``.mtl`` and textures), ``.ply``, ``.stl``, ``.off``. An OBJ or PLY with
  vertices but no faces is read as a point cloud.

Point clouds:

* ``.ply`` without faces: ``x y z``, optional ``nx ny nz`` and ``red green blue``.
* ``.pcd`` (PCL; ascii, binary, binary_compressed): see :mod:`crossdistill.geometry.pcd`.
* ``.npy``: a float (N, C) array with C = 3 (xyz), 6 (xyz + unit normal) or
  9 (xyz + unit normal + rgb). For xyz + rgb use ``.npz``.
* ``.npz``: ``points`` or ``xyz`` (N, 3), optional ``normals`` (N, 3) and
  ``colors`` or ``rgb`` (N, 3|4).
* ``.las`` / ``.laz`` (needs the ``io`` extra: laspy with lazrs): scaled xyz and, when
  the point format has them, RGB (16-bit values scaled to 8 bits).

Colours: ``face_colors`` come from face-coloured visuals and textures (sampled at the
face's UV centroid; glTF ``baseColorFactor`` applied); ``vertex_colors`` from
vertex-coloured visuals and point colours. When a scene mixes kinds, everything is
converted to ``face_colors`` (vertex colours averaged per face, uncoloured parts grey).
Float colours in [0, 1] are scaled to 0-255.

Normals: point clouds keep the normals stored in the file (normalised to unit length).
Meshes leave ``vertex_normals`` as ``None``: use :attr:`Shape.face_normals`.

Every failure to read becomes an :class:`~crossdistill.errors.InputError` whose message
is one line naming the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from crossdistill.errors import InputError, MissingDependencyError, require
from crossdistill.geometry.colors import GREY, to_uint8_rgb, visual_colors
from crossdistill.geometry.headers import check_las_header, check_npy_header, check_npz_members
from crossdistill.geometry.sniff import check_content
from crossdistill.io_utils import atomic_write
from crossdistill.types import Shape

__all__ = [
    "MESH_SUFFIXES",
    "POINT_SUFFIXES",
    "SUPPORTED_SUFFIXES",
    "load_shape",
    "validate_shape",
    "save_point_cloud",
]

MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".off")
POINT_SUFFIXES = (".ply", ".pcd", ".npy", ".npz", ".las", ".laz")
SUPPORTED_SUFFIXES = tuple(dict.fromkeys(MESH_SUFFIXES + POINT_SUFFIXES))
#: Largest absolute coordinate accepted: beyond it 32-bit outputs and squared distances lose or overflow.
MAX_COORDINATE = 1e15


# --------------------------------------------------------------------------- helpers


def _one_line(exc: BaseException, limit: int = 160) -> str:
    text = re.sub(r"\s+", " ", str(exc)).strip()
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _unit(normals: np.ndarray) -> np.ndarray:
    """(N, 3) -> (N, 3) float64 unit vectors (zero rows stay zero)."""
    n = np.asarray(normals, dtype=np.float64)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, norm, out=np.zeros_like(n), where=norm > 0)


def _point_shape(points, normals=None, colors=None, source: str = "") -> Shape:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must be (N, 3), got {pts.shape}")
    if normals is not None:
        normals = np.asarray(normals)
        if normals.shape != pts.shape:
            raise ValueError(f"normals {normals.shape} do not match points {pts.shape}")
        normals = _unit(normals)
    if colors is not None:
        colors = to_uint8_rgb(np.asarray(colors))
        if len(colors) != len(pts):
            raise ValueError(f"{len(colors)} colours for {len(pts)} points")
    return Shape(vertices=pts, vertex_normals=normals, vertex_colors=colors, source=source)


# --------------------------------------------------------------------------- trimesh formats


def _ply_raw_normals(cloud) -> np.ndarray | None:
    """Normals of a trimesh PointCloud read from PLY (trimesh keeps them in ``_ply_raw``)."""
    raw = cloud.metadata.get("_ply_raw", {}).get("vertex", {}).get("data")
    if raw is None:
        return None
    names = raw.dtype.names if hasattr(raw, "dtype") and raw.dtype.names else tuple(raw.keys())
    if not {"nx", "ny", "nz"} <= set(names):
        return None
    return np.stack([np.asarray(raw[k], dtype=np.float64).reshape(-1) for k in ("nx", "ny", "nz")], axis=1)


def _shape_from_scene(scene, source: str) -> Shape:
    """Flatten a trimesh Scene the way ``Scene.to_mesh()`` does.

    ``trimesh.load(force="mesh")`` calls ``Scene.to_mesh()``, which walks
    ``scene.graph.nodes_geometry`` in order, bakes each node's transform into a copy of
    its geometry (``Scene.dump()``; a mirroring transform also reverses each face's
    winding) and concatenates only the ``Trimesh`` results, offsetting face indices
    by the running vertex count. We call the same ``dump()`` and concatenate the same
    way, which keeps vertex and face order identical while letting us record the node
    of every face and read colours per geometry (trimesh's own visual concatenation
    would merge textures into one atlas).
    """
    import trimesh

    dumped = scene.dump()
    meshes = [g for g in dumped if isinstance(g, trimesh.Trimesh)]
    if not meshes:
        clouds = [g for g in dumped if isinstance(g, trimesh.PointCloud) and len(g.vertices)]
        if not clouds:
            raise InputError(f"{source}: file contains no faces and no points")
        points = np.concatenate([np.asarray(c.vertices, dtype=np.float64) for c in clouds])
        colors = None
        if all(len(c.colors) == len(c.vertices) for c in clouds):
            colors = np.concatenate([to_uint8_rgb(np.asarray(c.colors)) for c in clouds])
        normals = [_ply_raw_normals(c) for c in clouds]
        normals = None if any(n is None for n in normals) else np.concatenate(normals)
        return _point_shape(points, normals, colors, source)

    counts_v = np.array([len(m.vertices) for m in meshes], dtype=np.int64)
    counts_f = np.array([len(m.faces) for m in meshes], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts_v)[:-1]])
    vertices = np.concatenate([np.asarray(m.vertices, dtype=np.float64).reshape(-1, 3) for m in meshes])
    faces = np.concatenate(
        [np.asarray(m.faces, dtype=np.int64).reshape(-1, 3) + off for m, off in zip(meshes, offsets)]
    )
    face_node = np.repeat(np.arange(len(meshes), dtype=np.int32), counts_f)
    names = tuple(
        str(m.metadata.get("node") or m.metadata.get("name") or f"node{i}") for i, m in enumerate(meshes)
    )

    per_mesh = [visual_colors(m) for m in meshes]
    face_colors = vertex_colors = None
    if all(vc is not None for _, vc in per_mesh):
        vertex_colors = np.concatenate([vc for _, vc in per_mesh])
    elif any(fc is not None or vc is not None for fc, vc in per_mesh):
        blocks = []
        for m, (fc, vc) in zip(meshes, per_mesh):
            if fc is not None:
                blocks.append(fc)
            elif vc is not None:
                blocks.append(np.rint(vc[np.asarray(m.faces)].astype(np.float64).mean(axis=1)).astype(np.uint8))
            else:
                blocks.append(np.tile(GREY, (len(m.faces), 1)))
        face_colors = np.concatenate(blocks).reshape(-1, 3)
    return Shape(
        vertices=vertices,
        faces=faces,
        face_colors=face_colors,
        vertex_colors=vertex_colors,
        face_node=face_node,
        node_names=names,
        source=source,
    )


def _load_trimesh(path: Path) -> Shape:
    import trimesh

    scene = trimesh.load_scene(str(path), file_type=path.suffix[1:].lower(), process=False)
    return _shape_from_scene(scene, str(path))


# --------------------------------------------------------------------------- point formats


def _check_magic(path: Path, magic: bytes, what: str) -> None:
    with open(path, "rb") as fh:
        if fh.read(len(magic)) != magic:
            raise InputError(f"{path}: not a valid {what} file (wrong magic bytes)")


def _load_npy(path: Path) -> Shape:
    _check_magic(path, b"\x93NUMPY", "NumPy .npy")
    check_npy_header(path)
    arr = np.load(path, allow_pickle=False)
    if arr.ndim != 2 or arr.shape[1] not in (3, 6, 9) or not np.issubdtype(arr.dtype, np.number):
        raise InputError(
            f"{path}: .npy must hold a numeric (N, 3) xyz, (N, 6) xyz+normal or (N, 9) "
            f"xyz+normal+rgb array, got {arr.dtype} {arr.shape} (use .npz for xyz+rgb)"
        )
    arr = arr.astype(np.float64)
    normals = colors = None
    if arr.shape[1] >= 6:
        normals = arr[:, 3:6]
        length = np.linalg.norm(normals, axis=1)
        if len(arr) and np.isfinite(length).all() and not np.all(np.abs(length - 1.0) < 1e-2):
            raise InputError(
                f"{path}: columns 3-5 of an (N, 6|9) .npy must be unit normals; "
                "for xyz+rgb save an .npz with keys 'points' and 'colors'"
            )
    if arr.shape[1] == 9:
        colors = arr[:, 6:9]
    return _point_shape(arr[:, :3], normals, colors, str(path))


def _load_npz(path: Path) -> Shape:
    _check_magic(path, b"PK", "NumPy .npz (zip)")
    check_npz_members(path)
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        key = "points" if "points" in keys else "xyz" if "xyz" in keys else None
        if key is None:
            raise InputError(f"{path}: .npz needs a 'points' or 'xyz' array, found keys {sorted(keys)}")
        points = data[key]
        normals = data["normals"] if "normals" in keys else None
        ckey = "colors" if "colors" in keys else "rgb" if "rgb" in keys else None
        colors = data[ckey] if ckey else None
    return _point_shape(points, normals, colors, str(path))


def _load_pcd(path: Path) -> Shape:
    from crossdistill.geometry.pcd import read_pcd

    data = read_pcd(path)
    return _point_shape(data.points, data.normals, data.colors, str(path))


def _load_las(path: Path) -> Shape:
    check_las_header(path)  # before laspy allocates what the header claims
    laspy = require("laspy", "io", "reading LAS/LAZ")
    las = laspy.read(str(path))
    points = np.asarray(las.xyz, dtype=np.float64)
    colors = None
    dims = set(las.point_format.dimension_names)
    if {"red", "green", "blue"} <= dims:
        colors = np.stack([np.asarray(las[c]) for c in ("red", "green", "blue")], axis=1)
        colors = None if colors.size and colors.max() == 0 else colors
    return _point_shape(points, None, colors, str(path))


_LOADERS: dict[str, Callable[[Path], Shape]] = {
    ".glb": _load_trimesh,
    ".gltf": _load_trimesh,
    ".obj": _load_trimesh,
    ".ply": _load_trimesh,
    ".stl": _load_trimesh,
    ".off": _load_trimesh,
    ".pcd": _load_pcd,
    ".npy": _load_npy,
    ".npz": _load_npz,
    ".las": _load_las,
    ".laz": _load_las,
}


# --------------------------------------------------------------------------- public API


def load_shape(path: str | os.PathLike) -> Shape:
    """Read a mesh or point cloud file into a validated :class:`Shape`.

    Args:
        path: file with one of :data:`SUPPORTED_SUFFIXES` (case-insensitive).

    Returns:
        A mesh (``faces`` (F, 3) int64) or a point cloud (``faces is None``), with
        ``source`` set to ``str(path)``. The file is only read.

    Raises:
        InputError: missing / empty / unreadable / corrupt file, unknown suffix, or
            content rejected by :func:`validate_shape`; the message is one line.
        MissingDependencyError: LAS/LAZ without the ``io`` extra.

    Example:
        >>> shape = load_shape("chair.glb")  # doctest: +SKIP
        >>> shape.faces.shape  # doctest: +SKIP
        (5120, 3)
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: file not found")
    if not p.is_file():
        raise InputError(f"{p}: not a regular file")
    suffix = p.suffix.lower()
    loader = _LOADERS.get(suffix)
    if loader is None:
        raise InputError(
            f"{p}: unsupported file type '{p.suffix or '(none)'}' "
            f"(supported: {' '.join(SUPPORTED_SUFFIXES)})"
        )
    if p.stat().st_size == 0:
        raise InputError(f"{p}: file is empty (0 bytes)")
    try:
        check_content(p, suffix)  # a PNG renamed .obj is named as such, not left to the parser
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or type(exc).__name__})") from None
    try:
        shape = loader(p)
    except (InputError, MissingDependencyError):
        raise
    except Exception as exc:  # any parser failure is the file's fault, not ours
        raise InputError(f"{p}: cannot read as {suffix[1:].upper()} ({_one_line(exc)})") from exc
    validate_shape(shape, p)
    return shape


def validate_shape(shape: Shape, path: str | os.PathLike | None = None) -> Shape:
    """Check a shape is usable; return it unchanged or raise a one-line :class:`InputError`.

    Rejects: no vertices, NaN / inf coordinates, coordinates beyond :data:`MAX_COORDINATE`, a mesh with zero faces, face indices
    out of range, all faces of zero area, all points identical (zero bounding-box
    extent), and colour / normal / node arrays whose length does not match.
    """
    where = f"{path if path is not None else (shape.source or 'shape')}: "
    v = np.asarray(shape.vertices)
    if v.ndim != 2 or v.shape[1] != 3:
        raise InputError(f"{where}vertices must be (N, 3), got {v.shape}")
    if len(v) == 0:
        raise InputError(f"{where}no vertices or points")
    finite = np.isfinite(v).all(axis=1)
    if not finite.all():
        raise InputError(f"{where}{int((~finite).sum())} of {len(v)} vertices have NaN or infinite coordinates")
    largest = float(np.abs(v).max())
    if largest > MAX_COORDINATE:
        raise InputError(f"{where}coordinates reach {largest:.3g}; at most {MAX_COORDINATE:.0e} in absolute value is "
                         "supported (outputs store 32-bit floats): rescale the file's units")
    if shape.faces is not None:
        f = np.asarray(shape.faces)
        if f.ndim != 2 or f.shape[1] != 3:
            raise InputError(f"{where}faces must be (F, 3) triangles, got {f.shape}")
        if len(f) == 0:
            raise InputError(f"{where}mesh has zero faces")
        if f.min() < 0 or f.max() >= len(v):
            raise InputError(
                f"{where}face indices out of range ({int(f.min())}..{int(f.max())} for {len(v)} vertices)"
            )
        if not (shape.face_areas > 0).any():
            raise InputError(f"{where}degenerate mesh: all {len(f)} faces have zero area")
    if float(np.ptp(v, axis=0).max()) == 0.0:
        raise InputError(f"{where}degenerate shape: all {len(v)} points are identical (zero extent)")
    checks = (
        ("face_colors", shape.face_colors, shape.n_faces),
        ("face_node", shape.face_node, shape.n_faces),
        ("vertex_colors", shape.vertex_colors, len(v)),
        ("vertex_normals", shape.vertex_normals, len(v)),
    )
    for name, arr, expected in checks:
        if arr is not None and len(arr) != expected:
            raise InputError(f"{where}{name} has {len(arr)} rows, expected {expected}")
    return shape


def save_point_cloud(
    path: str | os.PathLike,
    points: np.ndarray,
    normals: np.ndarray | None = None,
    colors: np.ndarray | None = None,
) -> Path:
    """Atomically write a binary little-endian PLY point cloud.

    Properties, in order: ``float x y z``, then ``float nx ny nz`` if ``normals`` is
    given, then ``uchar red green blue`` if ``colors`` is given (the layout of
    ``../shared/data/partnet_mobility_dev_points``).

    Args:
        path: destination ``.ply``.
        points: (N, 3) positions.
        normals: optional (N, 3) normals.
        colors: optional (N, 3|4) colours (uint8, or floats in [0, 1]).

    Returns:
        ``Path(path)``.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"points must be (N, 3), got {pts.shape}")
    fields: list[tuple[str, str]] = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if normals is not None:
        normals = np.asarray(normals, dtype=np.float64)
        if normals.shape != pts.shape:
            raise ValueError(f"normals {normals.shape} do not match points {pts.shape}")
        fields += [("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4")]
    if colors is not None:
        colors = to_uint8_rgb(np.asarray(colors))
        if len(colors) != len(pts):
            raise ValueError(f"{len(colors)} colours for {len(pts)} points")
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    data = np.empty(len(pts), dtype=np.dtype(fields))
    for i, k in enumerate("xyz"):
        data[k] = pts[:, i]
    if normals is not None:
        for i, k in enumerate(("nx", "ny", "nz")):
            data[k] = normals[:, i]
    if colors is not None:
        for i, k in enumerate(("red", "green", "blue")):
            data[k] = colors[:, i]
    ply_type = {"<f4": "float", "u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(pts)}"]
    header += [f"property {ply_type[t]} {name}" for name, t in fields]
    header.append("end_header")
    with atomic_write(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(("\n".join(header) + "\n").encode("ascii"))
            fh.write(data.tobytes())
    return Path(path)
