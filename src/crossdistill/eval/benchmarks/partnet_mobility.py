"""PartNet-Mobility dev set (the real objects in ``../shared/data``): mesh and point tracks.

Layout (see ``../shared/data/README.md``)::

    partnet_mobility_dev/<Category>/<id>.glb          one triangle mesh, vertex colours
    partnet_mobility_dev/<Category>/<id>.labels.npz   face_leaf (F,) int32, face_link (F,) int32
    partnet_mobility_dev/<Category>/<id>.json         category, n_faces, nodes [{id, name, parent}],
                                                      links [{index, name, joint, label}]
    partnet_mobility_dev_points/<Category>/<id>.ply         15,000 points: xyz, normal, rgb
    partnet_mobility_dev_points/<Category>/<id>.labels.npz  point_leaf, point_link, face_id (N,) int32

Face order of the labels is the face order of
``trimesh.load(path, force="mesh", process=False)``, which is the order
:func:`crossdistill.geometry.io.load_shape` keeps. Granularity: ``face_link`` is coarse
(articulated links, -1 unknown), ``face_leaf`` fine (PartNet leaves); intermediate levels
come from :func:`labels_at_depth`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from crossdistill.errors import InputError
from crossdistill.eval.benchmarks._base import Benchmark, Record, read_json

__all__ = ["PartNetMobilityDev", "PartNetMobilityDevPoints", "node_depths", "labels_at_depth"]

_SOURCE = "../shared/data (PartNet-Mobility / SAPIEN assets as redistributed in GenSim2)"


def node_depths(nodes: Sequence[dict[str, Any]]) -> dict[int, int]:
    """Depth of every node of a PartNet hierarchy (root, ``parent == -1``, has depth 0).

    Raises :class:`InputError` on a parent id that is not a node or on a cycle.

    Example:
        >>> node_depths([{"id": 0, "parent": -1}, {"id": 3, "parent": 0}, {"id": 4, "parent": 3}])
        {0: 0, 3: 1, 4: 2}
    """
    parent = {int(n["id"]): int(n["parent"]) for n in nodes}
    depth: dict[int, int] = {}
    for start in parent:
        chain, node = [], start
        while node not in depth and node != -1:
            if node not in parent:
                raise InputError(f"hierarchy: node {chain[-1]} has unknown parent {node}")
            if node in chain:
                raise InputError(f"hierarchy: cycle through node {node}")
            chain.append(node)
            node = parent[node]
        base = -1 if node == -1 else depth[node]
        for i, n in enumerate(reversed(chain)):
            depth[n] = base + 1 + i
    return depth


def labels_at_depth(nodes: Sequence[dict[str, Any]], leaf_labels: npt.ArrayLike, depth: int) -> np.ndarray:
    """Relabel leaf node ids with their ancestor at ``depth`` (an intermediate level).

    Args:
        nodes: the hierarchy, ``[{"id", "parent", ...}]`` (the record's ``meta["nodes"]``).
        leaf_labels: (n,) int node id per face / point (``face_leaf`` / ``point_leaf``);
            negative values mean "unlabelled" and are kept.
        depth: 0 is the root (one part), 1 its children, ...; a leaf shallower than
            ``depth`` keeps its own id, so a depth past the deepest leaf returns the leaves.

    Returns:
        (n,) int32 node ids at that level. Raises :class:`InputError` for a label that
        is not a node of ``nodes`` or a negative ``depth``.

    Example:
        >>> nodes = [{"id": 0, "parent": -1}, {"id": 3, "parent": 0}, {"id": 4, "parent": 3},
        ...          {"id": 5, "parent": 3}, {"id": 6, "parent": 0}]
        >>> labels_at_depth(nodes, [4, 5, 6, -1], 1).tolist()
        [3, 3, 6, -1]
    """
    if depth < 0:
        raise InputError(f"depth must be >= 0, got {depth}")
    lab = np.asarray(leaf_labels)
    if lab.dtype.kind not in "iu":
        raise InputError(f"leaf labels must be integer, got dtype {lab.dtype}")
    parent = {int(n["id"]): int(n["parent"]) for n in nodes}
    depths = node_depths(nodes)
    ids, inverse = np.unique(lab, return_inverse=True)
    mapped = np.empty(ids.size, np.int64)
    for k, node in enumerate(ids.tolist()):
        if node < 0:
            mapped[k] = node
            continue
        if node not in parent:
            raise InputError(f"label {node} is not a node of the hierarchy")
        for _ in range(max(depths[node] - depth, 0)):
            node = parent[node]
        mapped[k] = node
    return mapped[inverse.reshape(lab.shape)].astype(np.int32)


def _load_labels(bench: Benchmark, path: Path, keys: Sequence[str], n: int) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise bench._bad(path, f"missing arrays {missing} (has {sorted(z.files)})")
            out = {k: np.asarray(z[k]).astype(np.int32, copy=False) for k in keys}
    except FileNotFoundError:
        raise bench._bad(path, "labels file not found") from None
    except (OSError, ValueError) as exc:
        raise bench._bad(path, f"cannot read labels ({type(exc).__name__})") from exc
    for k, v in out.items():
        if v.shape != (n,):
            raise bench._bad(path, f"{k} has shape {v.shape}, expected ({n},)")
    return out


class PartNetMobilityDev(Benchmark):
    """``partnet_mobility_dev``: 133 PartNet-Mobility meshes, 13 categories (mesh track).

    Records: ``id`` ``"<Category>/<id>"``, ``category``, ``paths`` ``{"mesh": .glb,
    "labels": .labels.npz, "meta": .json}``, ``meta`` = the JSON (``nodes``, ``links``,
    ``n_faces``, ...). Sorted by category then id.

    :meth:`load` returns:
        ``shape``: :class:`~crossdistill.types.Shape` mesh (F faces);
        ``face_leaf``: (F,) int32 PartNet leaf node id per face;
        ``face_link``: (F,) int32 index into ``meta["links"]``, -1 unknown.
    """

    name = "partnet_mobility_dev"
    folder = "partnet_mobility_dev"
    layout = "<Category>/<id>.glb + <id>.labels.npz + <id>.json"
    source = _SOURCE

    def _check(self) -> None:
        if not any(self.path.glob("*/*.labels.npz")):
            raise self.missing(f"no <Category>/<id>.labels.npz under {self.path}")

    def _scan(self) -> list[Record]:
        recs = []
        for meta_path in sorted(self.path.glob("*/*.json")):
            stem = meta_path.name[: -len(".json")]
            cat = meta_path.parent.name
            mesh, labels = meta_path.with_name(f"{stem}.glb"), meta_path.with_name(f"{stem}.labels.npz")
            if not (mesh.is_file() and labels.is_file()):
                continue
            meta = read_json(meta_path, self)
            paths = {"mesh": mesh, "labels": labels, "meta": meta_path}
            recs.append(Record(self.name, f"{cat}/{stem}", cat, paths, meta))
        return recs

    def load(self, record: Record) -> dict[str, Any]:
        from crossdistill.geometry.io import load_shape

        shape = load_shape(record.paths["mesh"])
        labels = _load_labels(self, record.paths["labels"], ("face_leaf", "face_link"), shape.n_faces)
        expected = record.meta.get("n_faces")
        if expected is not None and int(expected) != shape.n_faces:
            raise self._bad(record.paths["mesh"], f"{shape.n_faces} faces, meta says {expected}")
        return {"shape": shape, **labels}


class PartNetMobilityDevPoints(Benchmark):
    """``partnet_mobility_dev_points``: the point track of the same 133 objects.

    Records as :class:`PartNetMobilityDev` with ``paths`` ``{"points": .ply, "labels":
    .labels.npz}``; ``meta`` is the mesh track's JSON (``nodes``, ``links``) when the
    sibling folder ``../partnet_mobility_dev`` has it, else ``{}``.

    :meth:`load` returns:
        ``shape``: point-cloud :class:`~crossdistill.types.Shape` (N points, unit
        normals, uint8 colours);
        ``point_leaf``, ``point_link``: (N,) int32 labels of the face each point came from;
        ``face_id``: (N,) int32 that face's index in the mesh track's face order.
    """

    name = "partnet_mobility_dev_points"
    folder = "partnet_mobility_dev_points"
    layout = "<Category>/<id>.ply + <id>.labels.npz"
    source = _SOURCE

    def _check(self) -> None:
        if not any(self.path.glob("*/*.labels.npz")):
            raise self.missing(f"no <Category>/<id>.labels.npz under {self.path}")

    def _scan(self) -> list[Record]:
        mesh_root = self.path.parent / PartNetMobilityDev.folder
        recs = []
        for ply in sorted(self.path.glob("*/*.ply")):
            labels = ply.with_name(f"{ply.stem}.labels.npz")
            if not labels.is_file():
                continue
            cat = ply.parent.name
            meta_path = mesh_root / cat / f"{ply.stem}.json"
            meta = read_json(meta_path, self) if meta_path.is_file() else {}
            recs.append(Record(self.name, f"{cat}/{ply.stem}", cat, {"points": ply, "labels": labels}, meta))
        return recs

    def load(self, record: Record) -> dict[str, Any]:
        from crossdistill.geometry.io import load_shape

        shape = load_shape(record.paths["points"])
        keys = ("point_leaf", "point_link", "face_id")
        return {"shape": shape, **_load_labels(self, record.paths["labels"], keys, shape.n_vertices)}
