"""What the part viewer shows of one segmented object, as plain data and bytes (no HTTP here).

A :class:`ViewerSession` holds one finished ``crossdistill segment`` object: its input shape,
its saved grouping field and per-scale parts (:class:`~crossdistill.methods.sampart3d.scale_parts.ScaleParts`,
the same parts ``segment`` and ``select`` give), the part names ``crossdistill name`` wrote and
the saved hierarchy. The HTTP server (:mod:`.server`) turns each method into one endpoint.

Wire format of :meth:`ViewerSession.geometry_bytes` (little-endian)::

    b"CDV1", uint32 kind (0 mesh, 1 points), uint32 V, uint32 F,
    float32 positions (V, 3), uint32 faces (F, 3) (meshes only)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crossdistill.errors import InputError
from crossdistill.types import Shape

#: scales the slider offers (any other scale can be typed): 0 to 2 in steps of 0.05
SLIDER_STEP = 0.05
SCALE_MAX = 2.0
EXPORTS_DIR = "exports"


@dataclass(frozen=True)
class Pick:
    """One picked part: its label at one scale."""

    scale: float
    part: int


def slider_scales(step: float = SLIDER_STEP, top: float = SCALE_MAX) -> list[float]:
    """The slider's positions, 0..top in ``step`` steps (rounded to 6 decimals)."""
    n = int(round(top / step))
    return [round(i * step, 6) for i in range(n + 1)]


class ViewerSession:
    """One segmented object as the viewer sees it.

    Args:
        object_dir: the object's folder written by ``crossdistill segment``.
        shape: its input as loaded.
        segmenter: an :class:`~crossdistill.methods.sampart3d.interactive.InteractiveSegmenter`
            with its parts (``from_dir``).
        meta: the parsed ``segment.json``.
        export_dir: where exports are written (default ``object_dir/exports``).
    """

    def __init__(self, object_dir: Path, shape: Shape, segmenter, meta: dict, export_dir: Path | None = None) -> None:
        self.object_dir = Path(object_dir)
        self.shape = shape
        self.segmenter = segmenter
        self.parts_at = segmenter.parts
        self.meta = meta
        self.export_dir = Path(export_dir) if export_dir is not None else self.object_dir / EXPORTS_DIR
        self.is_mesh = shape.is_mesh
        self.weights = shape.face_areas if shape.is_mesh else np.ones(shape.n_vertices)
        self.total = float(self.weights.sum())
        self.names = _read_names(self.object_dir, self.parts_at.saved_scales)
        self._src = None
        self._export_lock = threading.Lock()
        self._exports = 0

    @classmethod
    def open(cls, object_dir: str | Path, device: str = "cpu", export_dir: Path | None = None) -> "ViewerSession":
        """Open a finished object folder (its input must still be where ``segment.json`` says).

        Raises:
            InputError: not a finished object folder, no ``field.pt``, or the input moved or changed.
        """
        from crossdistill.methods.sampart3d.interactive import InteractiveSegmenter
        from crossdistill.methods.sampart3d.outputs import read_segment_object

        obj = Path(object_dir)
        meta, shape = read_segment_object(obj, "the viewer")
        return cls(obj, shape, InteractiveSegmenter.from_dir(obj, shape, device=device), meta, export_dir)

    # ---- what the page loads once
    def info(self) -> dict:
        """Name, element kind and counts, scales (segmented, slider range), named scales, notes, hierarchy."""
        saved = list(self.parts_at.saved_scales)
        default = (self.meta.get("meta") or {}).get("default_scale")  # segment.json: the object's own
        if not isinstance(default, (int, float)) or not any(abs(s - default) < 1e-9 for s in saved):
            default = 1.0 if any(abs(s - 1.0) < 1e-9 for s in saved) else (saved[len(saved) // 2] if saved else 1.0)
        return {
            "name": self.object_dir.name,
            "input": self.meta.get("input"),
            "element": "face" if self.is_mesh else "point",
            "n_elements": int(self.shape.n_faces if self.is_mesh else self.shape.n_vertices),
            "n_vertices": int(self.shape.n_vertices),
            "saved_scales": saved,
            "default_scale": default,
            "scale_min": 0.0,
            "scale_max": SCALE_MAX,
            "slider_step": SLIDER_STEP,
            "scale_unit": self.segmenter.bundle.scale_unit,
            "named_scales": sorted(self.names),
            "mask_teacher": (self.meta.get("meta") or {}).get("mask_teacher"),
            "notes": list(self.parts_at.notes),
            "total_area": self.total if self.is_mesh else None,
            "hierarchy": self.hierarchy(),
        }

    def geometry_bytes(self) -> bytes:
        """The shape in the wire format of the module docstring (input units, input face order)."""
        v = np.ascontiguousarray(self.shape.vertices, dtype="<f4")
        head = np.array([1 - int(self.is_mesh), len(v), self.shape.n_faces if self.is_mesh else 0], dtype="<u4")
        body = [b"CDV1", head.tobytes(), v.tobytes()]
        if self.is_mesh:
            body.append(np.ascontiguousarray(self.shape.faces, dtype="<u4").tobytes())
        return b"".join(body)

    # ---- per scale
    def labels(self, scale: float) -> np.ndarray:
        """(M,) int32 part of every face / point at ``scale`` (the same as ``segment`` and ``select``)."""
        return self.parts_at.labels(_check_scale(scale))

    def parts(self, scale: float) -> dict:
        """The parts at ``scale``: id, size, area and share, name (and the scale it comes from), colour."""
        from crossdistill.viz.palette import label_palette

        scale = _check_scale(scale)
        lab = self.labels(scale)
        k = int(lab.max()) + 1 if len(lab) else 0
        counts = np.bincount(lab, minlength=k)
        area = np.bincount(lab, weights=self.weights, minlength=k)
        names, named_at = self._names_for(scale, lab, k)
        pal = label_palette(k)
        return {
            "scale": scale, "saved": self.parts_at.saved_scale(scale) is not None, "n_parts": k,
            "parts": [{"id": i, "n": int(counts[i]), "area": float(area[i]) if self.is_mesh else None,
                       "share": float(area[i] / self.total) if self.total > 0 else 0.0,
                       "name": names[i], "name_scale": named_at[i],
                       "colour": "#%02x%02x%02x" % tuple(int(c) for c in pal[i])} for i in range(k)],
        }

    def _names_for(self, scale: float, lab: np.ndarray, k: int) -> tuple[list[str | None], list[float | None]]:
        """Names of the parts at ``scale``: its own names, else those of the nearest named scale for
        parts lying at least half (by area) inside one named part; None where neither holds."""
        from crossdistill.methods.sampart3d.vote import majority_per_group

        if not self.names:
            return [None] * k, [None] * k
        own = self.parts_at.saved_scale(scale)
        source = own if own in self.names else min(self.names, key=lambda s: (abs(s - scale), s))
        table = self.names[source]
        if source == own:
            return [table.get(i) for i in range(k)], [source if i in table else None for i in range(k)]
        winner, share = majority_per_group(lab, self.labels(source), k, self.weights)
        names = [table.get(int(w)) if w >= 0 and s >= 0.5 else None for w, s in zip(winner, share)]
        return names, [source if n is not None else None for n in names]

    def select(self, scale: float, face: int | None = None, point: Sequence[float] | None = None) -> dict:
        """The part under a click (``crossdistill select``'s parts mode): label, clicked element, size, name."""
        scale = _check_scale(scale)
        sel = self.segmenter.select(scale, point=None if point is None else np.asarray(point, dtype=np.float64),
                                    face=face, mode="parts")
        info = self.parts(scale)["parts"][sel.part]
        return {"scale": scale, "part": sel.part, "element": sel.element, "distance": sel.snap_distance,
                "n_selected": int(sel.element_mask.sum()), "area": info["area"], "share": info["share"],
                "name": info["name"], "name_scale": info["name_scale"]}

    # ---- hierarchy and export
    def hierarchy(self) -> list[dict]:
        """The saved scales as a tree, coarse to fine (``hierarchy.json``).

        Returns:
            the coarsest scale's parts, each {scale, part, name, share, children} (children: the
            next finer scale's parts inside it); [] when the object has no usable hierarchy.
        """
        try:
            doc = json.loads((self.object_dir / "hierarchy.json").read_text())
        except (OSError, ValueError):
            return []
        scales = [float(s) for s in doc.get("scales") or []]
        if not scales or any(self.parts_at.saved_scale(s) is None for s in scales):
            return []
        parents = {int(lv["fine_scale_index"]): {int(f): int(c) for f, c in lv["parent"].items()}
                   for lv in doc.get("levels") or []}
        nodes_by_scale = []
        for s in scales:
            info = self.parts(s)["parts"]
            nodes_by_scale.append([{"scale": s, "part": p["id"], "name": p["name"], "share": round(p["share"], 6),
                                    "children": []} for p in info])
        for i in range(len(scales) - 1):
            for fine, coarse in parents.get(i, {}).items():
                if fine < len(nodes_by_scale[i]) and coarse < len(nodes_by_scale[i + 1]):
                    nodes_by_scale[i + 1][coarse]["children"].append(nodes_by_scale[i][fine])
        return nodes_by_scale[-1]

    def export(self, scale: float, what: str, picks: Sequence[Pick] = ()) -> tuple[str, bytes, Path]:
        """A GLB of all parts at ``scale`` (``what="all"``) or of the picked parts (``"selection"``).

        Meshes keep the input's UVs, materials and textures, one node per part (as ``parts.glb``:
        :func:`~crossdistill.export.parts.write_part_nodes`; a face picked twice goes to its first
        pick); point clouds give one coloured point node per part. The file is also written
        (atomically) into :attr:`export_dir`.

        Returns:
            (file name, the GLB's bytes, the path written).
        """
        scale = _check_scale(scale)
        if what == "all":
            lab = self.labels(scale).astype(np.int64)
            k = int(lab.max()) + 1
            names = [p["name"] or f"part {p['id']}" for p in self.parts(scale)["parts"]]
            stem = f"all_parts_scale_{scale:g}"
        elif what == "selection":
            if not picks:
                raise InputError("nothing is selected to export")
            lab = np.full(len(self.weights), -1, dtype=np.int64)
            names = []
            for i, pick in enumerate(picks):
                at = self.labels(_check_scale(pick.scale))
                if not 0 <= int(pick.part) <= int(at.max()):
                    raise InputError(f"no part {pick.part} at scale {pick.scale:g}")
                lab[(at == int(pick.part)) & (lab < 0)] = i
                name = self.parts(pick.scale)["parts"][int(pick.part)]["name"]
                names.append(f"{name or 'part'} {pick.part}@{pick.scale:g}")
            k = len(picks)
            stem = f"selection_scale_{scale:g}"
        else:
            raise InputError(f"export what? 'all' or 'selection' (got {what!r})")
        with self._export_lock:
            self._exports += 1
            path = self.export_dir / f"{stem}_{self._exports:03d}.glb"
            self._write(path, lab, names[:k], scale)
        return path.name, path.read_bytes(), path

    def _write(self, path: Path, lab: np.ndarray, names: list[str], scale: float) -> None:
        import trimesh

        from crossdistill.export.parts import write_part_nodes
        from crossdistill.export.source import source_meshes
        from crossdistill.io_utils import export_trimesh
        from crossdistill.viz.palette import label_palette

        if self.is_mesh:
            if self._src is None:
                self._src = source_meshes(self.shape)
            write_part_nodes(path, self.shape, lab, names, scale, self._src)
            return
        scene = trimesh.Scene()
        pal = label_palette(len(names))
        for i, name in enumerate(names):
            idx = np.flatnonzero(lab == i)
            if len(idx):
                colours = np.tile(np.append(pal[i], 255).astype(np.uint8), (len(idx), 1))
                scene.add_geometry(trimesh.PointCloud(self.shape.vertices[idx], colors=colours),
                                   node_name=name, geom_name=name)
        export_trimesh(path, scene)


def _check_scale(scale) -> float:
    """``scale`` as a float in [0, SCALE_MAX]; anything else is an :class:`InputError`."""
    try:
        s = float(scale)
    except (TypeError, ValueError):
        raise InputError(f"scale must be a number (got {scale!r})") from None
    if not np.isfinite(s) or not 0.0 <= s <= SCALE_MAX:
        raise InputError(f"scale must lie in [0, {SCALE_MAX:g}] (got {scale})")
    return round(s, 6)


def _read_names(obj: Path, scales: Sequence[float]) -> dict[float, dict[int, str]]:
    """{scale: {label: name}} of the scales ``crossdistill name`` has named (their ``names.json``)."""
    from crossdistill.export.parts import scale_dirname

    out: dict[float, dict[int, str]] = {}
    for s in scales:
        path = obj / scale_dirname(s) / "names.json"
        try:
            doc = json.loads(path.read_text())
            out[float(s)] = {int(k): str(v) for k, v in (doc.get("names") or {}).items()}
        except (OSError, ValueError, AttributeError, TypeError):
            continue
    return out
