"""Click-plus-scale interactive segmentation with a saved grouping field.

SAMPart3D's grouping field answers "which points belong with this one at scale s?" for any
scale, so a user can click a point and turn a scale knob instead of picking from fixed
clusterings. ``crossdistill segment`` saves each object's trained field as ``field.pt``
(:func:`save_field_bundle`); :class:`InteractiveSegmenter` loads it and answers a click at a
scale in one of two ways:

* ``mode="parts"`` (the default): the part under the click in the same per-scale clustering
  ``crossdistill segment`` makes (:class:`~.scale_parts.ScaleParts`): at a segmented scale the saved
  ``scale_<s>/labels.npy``, at any other scale stage 3 of the pipeline
  (:func:`~crossdistill.methods.sampart3d.pipeline.parts_from_field`: HDBSCAN, cluster joins,
  face vote and piece rules, with the object's own settings and rules) run on the saved field.
  ``select``, ``view`` and ``segment`` therefore give the same part for the same click and scale.
* ``mode="radius"`` (the query of earlier versions, kept as an option):

  1. snap the click to the nearest sampled surface point (in the unit box);
  2. take the grouping features F(s) of every sampled point (N, D) at that scale and select
     the points with ``||F_i - F_click|| < radius``. The default radius is half the push
     margin m of Eq. 5: training pulls the features of one mask together (towards 0) and
     pushes those of different masks at least m apart, so m / 2 is the midpoint;
  3. keep the selected points connected to the click through a k-nearest-neighbour graph of
     the sampled points (``connected=True``), so a distant part with similar features is not
     picked up by the same click;
  4. carry the selection to the input: per-face majority vote with nearest-face filling for
     meshes (:func:`.vote.vote_faces`), nearest sampled point for point clouds.

Why the radius query disagrees with ``segment``: a feature radius is not a clustering. The
contrastive loss leaves one part's features spread (on a table with a sphere lying on it,
pairs of tabletop points can lie about a push margin apart while the closest tabletop-sphere
pairs nearly coincide), so a ball around the clicked feature takes some of a part and some
of its neighbour; the k-NN graph crosses the contact between touching pieces; and the
stage-3 rules ``segment`` applies after HDBSCAN (cluster joins, parts kept inside connected
pieces below scale 2, small fragments folded, :mod:`.rules`) never run. A click on that
tabletop next to the sphere can then select part of the sphere with it, where ``segment``
keeps the sphere a part of its own; parts mode, the default, answers with ``segment``'s parts
instead (``tests/cli/test_select_cli.py`` checks it on that table).

No retraining: a query costs one forward pass of the field over the N points (plus, in parts
mode at an unsaved scale, one clustering; cached per scale).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from crossdistill.engine.checkpoints import load_checkpoint, save_checkpoint
from crossdistill.errors import InputError
from crossdistill.methods.sampart3d.grouping import GroupingField
from crossdistill.methods.sampart3d.scale import ScaleQuantiles
from crossdistill.methods.sampart3d.scale_parts import ScaleParts
from crossdistill.methods.sampart3d.support import MaskPointSets
from crossdistill.methods.sampart3d.train import TrainedField
from crossdistill.types import UnitBoxTransform

FIELD_FILE = "field.pt"
_FORMAT = "crossdistill-grouping-field-v1"
#: how a click becomes a part: the segment clustering at that scale, or the feature-radius query
MODES: tuple[str, ...] = ("parts", "radius")


@dataclass
class FieldBundle:
    """A trained grouping field with what a query needs (saved as ``field.pt``).

    Attributes:
        field: the trained field (its inputs included).
        points: (N, 3) sampled points in the unit box (float64; float32 in files of versions
            before the viewer).
        point_face: (N,) int64 face of every sampled point (meshes; -1 for point clouds).
        point_source: (N,) int64 input point of every sample (point clouds; -1 for meshes).
        transform: input units -> unit box.
        element: "face" (meshes) or "point" (point clouds).
        n_elements: F faces or M input points.
        margin: push margin m of the contrastive loss (Eq. 5).
        scale_unit: how user scales map to the field's scale input ("relative" or "sigma").
        evidence: the 2D masks as 3D point sets, kept where the object's stage-3 rules use them
            (the piece rule's fragment support) so that stage 3 can run again at other scales;
            None otherwise and in files of older versions.
    """

    field: TrainedField
    points: np.ndarray
    point_face: np.ndarray
    point_source: np.ndarray
    transform: UnitBoxTransform
    element: str
    n_elements: int
    margin: float
    scale_unit: str
    evidence: MaskPointSets | None = None


def bundle_from_segmentation(seg) -> FieldBundle:
    """The :class:`FieldBundle` of a fresh :class:`~.pipeline.Segmentation`."""
    samples = seg.render.samples
    is_mesh = seg.face_labels is not None
    n = seg.face_labels.shape[1] if is_mesh else seg.input_point_labels.shape[1]
    evidence = None
    rules = seg.meta.get("rules", ())
    if (is_mesh and "pieces" in rules) or any(str(r).startswith("part_vote") for r in rules):
        # stage 3 at another scale needs the masks' point sets (fragment support, part votes)
        evidence = MaskPointSets.from_supervision(seg.supervision, len(samples))
    return FieldBundle(seg.field, np.asarray(samples.points, dtype=np.float64), np.asarray(samples.face_id),
                       np.asarray(samples.source_index), seg.transform, "face" if is_mesh else "point", int(n),
                       float(seg.meta["margin"]), str(seg.meta["scale_unit"]), evidence)


def _field_dims(module: GroupingField) -> dict[str, int]:
    """Constructor arguments of a :class:`GroupingField`, read from its layers."""
    inst = [m for m in module.instance_net if isinstance(m, torch.nn.Linear)]
    dims = {"backbone_dim": inst[0].in_features - 1, "low_dim": int(module.low_dim),
            "width": inst[0].out_features, "out_dim": inst[-1].out_features,
            "backbone_layers": len(inst) - 1, "long_skip": module.pos_net is not None}
    if module.pos_net is not None:
        dims["low_layers"] = len([m for m in module.pos_net if isinstance(m, torch.nn.Linear)]) - 1
    return dims


def _pack_binary(mat: sp.csr_matrix) -> dict:
    """A 0/1 CSR matrix as tensors: row pointers and column indices (16-bit while they fit)."""
    mat = sp.csr_matrix(mat)
    mat.sort_indices()
    cols = np.asarray(mat.indices)
    small = mat.shape[1] <= np.iinfo(np.uint16).max + 1
    packed = cols.astype(np.uint16).view(np.int16) if small else cols.astype(np.int32)
    return {"indptr": torch.as_tensor(np.asarray(mat.indptr, dtype=np.int64)), "indices": torch.as_tensor(packed),
            "shape": [int(mat.shape[0]), int(mat.shape[1])], "uint16": bool(small)}


def _unpack_binary(doc: dict) -> sp.csr_matrix:
    """Inverse of :func:`_pack_binary`."""
    cols = doc["indices"].numpy()
    cols = cols.view(np.uint16).astype(np.int64) if doc["uint16"] else cols.astype(np.int64)
    indptr = doc["indptr"].numpy()
    return sp.csr_matrix((np.ones(len(cols), np.float32), cols, indptr), shape=tuple(doc["shape"]))


def save_field_bundle(path: Path, bundle: FieldBundle) -> None:
    """Write ``bundle`` to ``path`` atomically (a checkpoint of tensors and plain values)."""
    tf = bundle.field
    ev = bundle.evidence
    save_checkpoint(path, _FORMAT, {
        "dims": _field_dims(tf.field),
        "state_dict": {k: v.detach().cpu() for k, v in tf.field.state_dict().items()},
        "backbone_feat": tf.backbone_feat.detach().float().cpu(),
        "low_feat": tf.low_feat.detach().float().cpu(),
        "quantile_knots": torch.as_tensor(np.asarray(tf.quantiles.knots, dtype=np.float64)),
        "points": torch.as_tensor(np.asarray(bundle.points, dtype=np.float64)),
        "point_face": torch.as_tensor(np.asarray(bundle.point_face, dtype=np.int64)),
        "point_source": torch.as_tensor(np.asarray(bundle.point_source, dtype=np.int64)),
        "center": torch.as_tensor(np.asarray(bundle.transform.center, dtype=np.float64)),
        "unit_scale": float(bundle.transform.scale),
        "element": bundle.element,
        "n_elements": int(bundle.n_elements),
        "margin": float(bundle.margin),
        "scale_unit": bundle.scale_unit,
        "evidence": None if ev is None else {
            "masks": _pack_binary(ev.masks), "visible": _pack_binary(ev.visible),
            "view_of_mask": torch.as_tensor(np.asarray(ev.view_of_mask, dtype=np.int64)),
            "scale": None if ev.scale is None else torch.as_tensor(np.asarray(ev.scale, dtype=np.float64))},
    })


def load_field_bundle(path: Path, device: str = "cpu") -> FieldBundle:
    """Read a ``field.pt`` written by :func:`save_field_bundle`.

    Raises:
        InputError: missing, unreadable or not a grouping-field file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no saved grouping field at {path} (segment the object again with this version "
                         f"of crossdistill to write {FIELD_FILE})")

    def build(doc: dict) -> FieldBundle:
        module = GroupingField(**doc["dims"]).to(device)
        module.load_state_dict(doc["state_dict"])
        module.eval()
        trained = TrainedField(module, doc["backbone_feat"].to(device), doc["low_feat"].to(device),
                               ScaleQuantiles(doc["quantile_knots"].numpy()), np.zeros(0, dtype=np.float32))
        ev = doc.get("evidence")
        evidence = None if ev is None else MaskPointSets(_unpack_binary(ev["masks"]), _unpack_binary(ev["visible"]),
                                                         ev["view_of_mask"].numpy(),
                                                         None if ev.get("scale") is None else ev["scale"].numpy())
        return FieldBundle(trained, doc["points"].numpy().astype(np.float64), doc["point_face"].numpy(),
                           doc["point_source"].numpy(),
                           UnitBoxTransform(doc["center"].numpy(), float(doc["unit_scale"])), doc["element"],
                           int(doc["n_elements"]), float(doc["margin"]), doc["scale_unit"], evidence)

    return load_checkpoint(path, _FORMAT, "grouping field", build, device)


@dataclass(frozen=True)
class Selection:
    """The part under one click at one scale.

    Attributes:
        scale: the query scale.
        click_point: index of the sampled point nearest the click.
        snap_distance: distance from the click to the surface (parts mode) or to that sampled
            point (radius mode), in input units.
        point_mask: (N,) bool selected sampled points.
        element_mask: (F,) or (M,) bool selected input faces / points.
        radius: feature radius used (radius mode; NaN in parts mode).
        mode: "parts" or "radius" (:data:`MODES`).
        part: the part's label at this scale (parts mode; -1 in radius mode).
        element: the clicked face (meshes) or input point (point clouds) (parts mode; -1 in radius mode).
    """

    scale: float
    click_point: int
    snap_distance: float
    point_mask: np.ndarray
    element_mask: np.ndarray
    radius: float
    mode: str = "radius"
    part: int = -1
    element: int = -1


class InteractiveSegmenter:
    """Query a saved grouping field with clicks and scales.

    Args:
        bundle: a loaded :class:`FieldBundle`.
        vertices: (V, 3) input vertices (meshes) or (M, 3) input points (point clouds),
            in input units.
        faces: (F, 3) int faces of the input mesh (meshes only; for the per-face vote).
        k: neighbours per sampled point in the graph that keeps a selection connected.
        parts: the object's per-scale parts (:class:`ScaleParts`), which parts mode reads;
            None allows only radius mode.

    Example:
        >>> seg = InteractiveSegmenter.from_dir("out/chair", shape)  # doctest: +SKIP
        >>> sel = seg.select(point=(0.1, 0.4, 0.0), scale=1.0)       # doctest: +SKIP
        >>> sel.part, sel.element_mask.sum()                          # doctest: +SKIP
    """

    def __init__(self, bundle: FieldBundle, vertices: np.ndarray, faces: np.ndarray | None = None,
                 k: int = 8, parts: ScaleParts | None = None) -> None:
        self.bundle = bundle
        self.parts = parts
        n = bundle.n_elements
        if bundle.element == "face":
            if faces is None or len(faces) != n:
                raise InputError(f"the mesh does not match the saved field ({n} faces expected, "
                                 f"got {0 if faces is None else len(faces)}): was the input changed?")
            self._triangles = bundle.transform.apply(vertices)[np.asarray(faces)]
            self._centroids = self._triangles.mean(axis=1)
        elif len(vertices) != n:
            raise InputError(f"the point cloud does not match the saved field ({n} points expected, "
                             f"got {len(vertices)}): was the input changed?")
        self._unit_inputs = bundle.transform.apply(vertices) if bundle.element == "point" else None
        self._tree = cKDTree(bundle.points)
        self._element_tree: cKDTree | None = None
        kk = min(k + 1, len(bundle.points))
        _, nn = self._tree.query(bundle.points, k=kk)
        self._knn = np.asarray(nn).reshape(len(bundle.points), kk)[:, 1:]
        self._cache: dict[float, np.ndarray] = {}

    @classmethod
    def from_dir(cls, object_dir: Path, shape, device: str = "cpu") -> "InteractiveSegmenter":
        """Load ``object_dir/field.pt`` and pair it with the loaded input ``shape`` and the saved parts."""
        bundle = load_field_bundle(Path(object_dir) / FIELD_FILE, device)
        seg = cls(bundle, np.asarray(shape.vertices, dtype=np.float64),
                  None if shape.faces is None else np.asarray(shape.faces))
        seg.parts = ScaleParts.from_dir(object_dir, shape, bundle)
        return seg

    def features(self, scale: float) -> np.ndarray:
        """(N, D) grouping features of the sampled points at ``scale`` (cached per scale)."""
        key = float(scale)
        if key not in self._cache:
            self._cache[key] = self.bundle.field.features(key, self.bundle.scale_unit)
        return self._cache[key]

    def _click(self, point: np.ndarray | None, face: int | None) -> np.ndarray | None:
        """The checked click: None for a face click, else the point (3,) in input units."""
        if (point is None) == (face is None):
            raise InputError("give exactly one of a click point (x y z) or a face index")
        b = self.bundle
        if face is not None:
            if b.element != "face":
                raise InputError("a face click needs a mesh; this object is a point cloud")
            if not 0 <= int(face) < b.n_elements:
                raise InputError(f"face {face} out of range (the mesh has {b.n_elements} faces)")
            return None
        p = np.asarray(point, dtype=np.float64).reshape(-1)
        if p.shape != (3,) or not np.isfinite(p).all():
            raise InputError("a click point needs three finite coordinates x y z")
        return p

    def _check_on_surface(self, p: np.ndarray, unit_dist: float) -> None:
        if unit_dist > 0.1:  # unit box: more than a tenth of the object's longest side off its surface
            raise InputError(f"the click {tuple(float(v) for v in p)} is {unit_dist / self.bundle.transform.scale:.3g}"
                             " units from the object's surface (more than 10% of its size): not on the object")

    def snap(self, point: np.ndarray | None = None, face: int | None = None) -> tuple[int, float]:
        """Sampled point nearest to a click given as a 3D point (input units) or a face index.

        Returns:
            (index of the sampled point, distance from the click in input units).
        """
        p = self._click(point, face)
        b = self.bundle
        if p is None:
            on_face = np.flatnonzero(b.point_face == int(face))
            target = self._centroids[int(face)]
            if len(on_face):
                d = np.linalg.norm(b.points[on_face] - target, axis=1)
                return int(on_face[np.argmin(d)]), 0.0
            dist, idx = self._tree.query(target)
            return int(idx), float(dist / b.transform.scale)
        dist, idx = self._tree.query(b.transform.apply(p))
        self._check_on_surface(p, float(dist))
        return int(idx), float(dist / b.transform.scale)

    def element_under(self, point: np.ndarray | None = None, face: int | None = None) -> tuple[int, float]:
        """The input face (meshes) or point (point clouds) under a click, and its distance in input units.

        A point click on a mesh takes the face nearest to it (exact point-triangle distances);
        a face click is that face.
        """
        p = self._click(point, face)
        if p is None:
            return int(face), 0.0
        q = self.bundle.transform.apply(p)
        if self.bundle.element == "point":
            if self._element_tree is None:
                self._element_tree = cKDTree(self._unit_inputs)
            dist, idx = self._element_tree.query(q)
        else:
            idx, dist = _nearest_triangle(self._triangles, self._centroids, q)
        self._check_on_surface(p, float(dist))
        return int(idx), float(dist / self.bundle.transform.scale)

    def select(self, scale: float, point: np.ndarray | None = None, face: int | None = None,
               radius: float | None = None, connected: bool = True, mode: str | None = None) -> Selection:
        """The part under a click at one scale.

        Args:
            scale: query scale, in the unit the object was segmented with (default
                "relative": 0 = the object's finest masks, 2 = its coarsest).
            point: click position (3,) in input units, or
            face: a face index (meshes).
            radius: feature-distance radius of radius mode (default: half the push margin).
            connected: radius mode: keep only selected points connected to the click (k-NN graph).
            mode: "parts" (the part ``segment``'s clustering gives at this scale) or "radius" (the
                feature-radius query); default: "radius" when ``radius`` is given, else "parts".
        """
        if not np.isfinite(scale) or scale < 0:
            raise InputError(f"scale must be a non-negative number (got {scale})")
        mode = mode or ("radius" if radius is not None else "parts")
        if mode not in MODES:
            raise InputError(f"unknown selection mode {mode!r} (one of {', '.join(MODES)})")
        if mode == "parts":
            return self._select_part(float(scale), point, face)
        idx, snap = self.snap(point, face)
        r = self.bundle.margin / 2.0 if radius is None else float(radius)
        if r <= 0:
            raise InputError(f"radius must be positive (got {r})")
        feats = self.features(scale)
        mask = np.linalg.norm(feats - feats[idx], axis=1) < r
        mask[idx] = True
        if connected:
            mask = self._connected_to(mask, idx)
        return Selection(float(scale), idx, snap, mask, self._to_elements(mask), r)

    def _select_part(self, scale: float, point: np.ndarray | None, face: int | None) -> Selection:
        """Parts mode: every element sharing the clicked element's label at ``scale``."""
        if self.parts is None:
            raise InputError("parts mode needs the object's segment folder (InteractiveSegmenter.from_dir)")
        element, dist = self.element_under(point, face)
        labels = self.parts.labels(scale)
        part = int(labels[element])
        mask = labels == part
        b = self.bundle
        where = self._centroids[element] if b.element == "face" else self._unit_inputs[element]
        _, nearest = self._tree.query(where)
        point_mask = mask[b.point_face] if b.element == "face" else mask[b.point_source]
        return Selection(scale, int(nearest), dist, point_mask, mask, float("nan"), "parts", part, element)

    def _connected_to(self, mask: np.ndarray, seed: int) -> np.ndarray:
        """(N,) bool: the selected points reachable from ``seed`` through selected k-NN neighbours."""
        n, k = self._knn.shape
        rows = np.repeat(np.arange(n), k)
        cols = self._knn.reshape(-1)
        keep = mask[rows] & mask[cols]
        graph = coo_matrix((np.ones(int(keep.sum()), dtype=np.int8), (rows[keep], cols[keep])), shape=(n, n))
        _, comp = connected_components(graph, directed=False)
        return mask & (comp == comp[seed])

    def _to_elements(self, point_mask: np.ndarray) -> np.ndarray:
        """Sampled-point selection -> (F,) or (M,) bool selection of the input's elements."""
        from crossdistill.methods.sampart3d.vote import vote_faces

        b = self.bundle
        lab = point_mask.astype(np.int64)
        if b.element == "face":
            return vote_faces(lab, b.point_face, b.n_elements, self._centroids, spill=0.0) == 1
        _, nn = self._tree.query(self._unit_inputs, k=1, workers=-1)
        return point_mask[nn]


def _nearest_triangle(triangles: np.ndarray, centroids: np.ndarray, q: np.ndarray, k: int = 16) -> tuple[int, float]:
    """(index, distance) of the triangle (F, 3, 3) nearest to the point ``q`` (3,), exactly.

    The triangles of the k nearest centroids bound the distance from above; only triangles whose
    bounding box lies within that bound are then measured.
    """
    from trimesh.triangles import closest_point

    def exact(idx: np.ndarray) -> np.ndarray:
        return np.linalg.norm(closest_point(triangles[idx], np.repeat(q[None], len(idx), 0)) - q, axis=1)

    near = np.argpartition(np.linalg.norm(centroids - q, axis=1), min(k, len(centroids)) - 1)[:k]
    bound = float(exact(near).min())
    lo, hi = triangles.min(axis=1), triangles.max(axis=1)
    box_dist = np.linalg.norm(np.maximum(np.maximum(lo - q, q - hi), 0.0), axis=1)
    cand = np.flatnonzero(box_dist <= bound + 1e-12)
    d = exact(cand)
    best = int(np.argmin(d))
    return int(cand[best]), float(d[best])
