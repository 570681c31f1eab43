"""Click-plus-scale interactive segmentation with a saved grouping field.

SAMPart3D's grouping field answers "which points belong with this one at scale s?" for any
scale, so a user can click a point and turn a scale knob instead of picking from fixed
clusterings. ``crossdistill segment`` saves each object's trained field as ``field.pt``
(:func:`save_field_bundle`); :class:`InteractiveSegmenter` loads it and, for a click and a
scale:

1. snaps the click to the nearest sampled surface point (in the unit box);
2. takes the grouping features F(s) of every sampled point (N, D) at that scale and selects
   the points with ``||F_i - F_click|| < radius``. The default radius is half the push
   margin m of Eq. 5: training pulls the features of one mask together (towards 0) and
   pushes those of different masks at least m apart, so m / 2 is the midpoint;
3. keeps the selected points connected to the click through a k-nearest-neighbour graph of
   the sampled points (``connected=True``), so a distant part with similar features is not
   picked up by the same click;
4. carries the selection to the input: per-face majority vote with nearest-face filling for
   meshes (:func:`.vote.vote_faces`), nearest sampled point for point clouds.

No retraining: a query costs one forward pass of the field over the N points.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from crossdistill.engine.checkpoints import load_checkpoint, save_checkpoint
from crossdistill.errors import InputError
from crossdistill.methods.sampart3d.grouping import GroupingField
from crossdistill.methods.sampart3d.scale import ScaleQuantiles
from crossdistill.methods.sampart3d.train import TrainedField
from crossdistill.types import UnitBoxTransform

FIELD_FILE = "field.pt"
_FORMAT = "crossdistill-grouping-field-v1"


@dataclass
class FieldBundle:
    """A trained grouping field with what a query needs (saved as ``field.pt``).

    Attributes:
        field: the trained field (its inputs included).
        points: (N, 3) float32 sampled points in the unit box.
        point_face: (N,) int64 face of every sampled point (meshes; -1 for point clouds).
        point_source: (N,) int64 input point of every sample (point clouds; -1 for meshes).
        transform: input units -> unit box.
        element: "face" (meshes) or "point" (point clouds).
        n_elements: F faces or M input points.
        margin: push margin m of the contrastive loss (Eq. 5).
        scale_unit: how user scales map to the field's scale input ("relative" or "sigma").
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


def bundle_from_segmentation(seg) -> FieldBundle:
    """The :class:`FieldBundle` of a fresh :class:`~.pipeline.Segmentation`."""
    samples = seg.render.samples
    is_mesh = seg.face_labels is not None
    n = seg.face_labels.shape[1] if is_mesh else seg.input_point_labels.shape[1]
    return FieldBundle(seg.field, np.asarray(samples.points, dtype=np.float32), np.asarray(samples.face_id),
                       np.asarray(samples.source_index), seg.transform, "face" if is_mesh else "point", int(n),
                       float(seg.meta["margin"]), str(seg.meta["scale_unit"]))


def _field_dims(module: GroupingField) -> dict[str, int]:
    """Constructor arguments of a :class:`GroupingField`, read from its layers."""
    inst = [m for m in module.instance_net if isinstance(m, torch.nn.Linear)]
    dims = {"backbone_dim": inst[0].in_features - 1, "low_dim": int(module.low_dim),
            "width": inst[0].out_features, "out_dim": inst[-1].out_features,
            "backbone_layers": len(inst) - 1, "long_skip": module.pos_net is not None}
    if module.pos_net is not None:
        dims["low_layers"] = len([m for m in module.pos_net if isinstance(m, torch.nn.Linear)]) - 1
    return dims


def save_field_bundle(path: Path, bundle: FieldBundle) -> None:
    """Write ``bundle`` to ``path`` atomically (a checkpoint of tensors and plain values)."""
    tf = bundle.field
    save_checkpoint(path, _FORMAT, {
        "dims": _field_dims(tf.field),
        "state_dict": {k: v.detach().cpu() for k, v in tf.field.state_dict().items()},
        "backbone_feat": tf.backbone_feat.detach().float().cpu(),
        "low_feat": tf.low_feat.detach().float().cpu(),
        "quantile_knots": torch.as_tensor(np.asarray(tf.quantiles.knots, dtype=np.float64)),
        "points": torch.as_tensor(np.asarray(bundle.points, dtype=np.float32)),
        "point_face": torch.as_tensor(np.asarray(bundle.point_face, dtype=np.int64)),
        "point_source": torch.as_tensor(np.asarray(bundle.point_source, dtype=np.int64)),
        "center": torch.as_tensor(np.asarray(bundle.transform.center, dtype=np.float64)),
        "unit_scale": float(bundle.transform.scale),
        "element": bundle.element,
        "n_elements": int(bundle.n_elements),
        "margin": float(bundle.margin),
        "scale_unit": bundle.scale_unit,
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
        return FieldBundle(trained, doc["points"].numpy(), doc["point_face"].numpy(), doc["point_source"].numpy(),
                           UnitBoxTransform(doc["center"].numpy(), float(doc["unit_scale"])), doc["element"],
                           int(doc["n_elements"]), float(doc["margin"]), doc["scale_unit"])

    return load_checkpoint(path, _FORMAT, "grouping field", build, device)


@dataclass(frozen=True)
class Selection:
    """The part under one click at one scale.

    Attributes:
        scale: the query scale.
        click_point: index of the sampled point the click snapped to.
        snap_distance: distance from the click to that point, in input units.
        point_mask: (N,) bool selected sampled points.
        element_mask: (F,) or (M,) bool selected input faces / points.
        radius: feature radius used.
    """

    scale: float
    click_point: int
    snap_distance: float
    point_mask: np.ndarray
    element_mask: np.ndarray
    radius: float


class InteractiveSegmenter:
    """Query a saved grouping field with clicks and scales.

    Args:
        bundle: a loaded :class:`FieldBundle`.
        vertices: (V, 3) input vertices (meshes) or (M, 3) input points (point clouds),
            in input units.
        faces: (F, 3) int faces of the input mesh (meshes only; for the per-face vote).
        k: neighbours per sampled point in the graph that keeps a selection connected.

    Example:
        >>> seg = InteractiveSegmenter.from_dir("out/chair", shape)  # doctest: +SKIP
        >>> sel = seg.select(point=(0.1, 0.4, 0.0), scale=1.0)       # doctest: +SKIP
        >>> sel.element_mask.sum()                                    # doctest: +SKIP
    """

    def __init__(self, bundle: FieldBundle, vertices: np.ndarray, faces: np.ndarray | None = None,
                 k: int = 8) -> None:
        self.bundle = bundle
        n = bundle.n_elements
        if bundle.element == "face":
            if faces is None or len(faces) != n:
                raise InputError(f"the mesh does not match the saved field ({n} faces expected, "
                                 f"got {0 if faces is None else len(faces)}): was the input changed?")
            unit_vertices = bundle.transform.apply(vertices)
            self._centroids = unit_vertices[np.asarray(faces)].mean(axis=1)
        elif len(vertices) != n:
            raise InputError(f"the point cloud does not match the saved field ({n} points expected, "
                             f"got {len(vertices)}): was the input changed?")
        self._unit_inputs = bundle.transform.apply(vertices) if bundle.element == "point" else None
        self._tree = cKDTree(bundle.points)
        kk = min(k + 1, len(bundle.points))
        _, nn = self._tree.query(bundle.points, k=kk)
        self._knn = np.asarray(nn).reshape(len(bundle.points), kk)[:, 1:]
        self._cache: dict[float, np.ndarray] = {}

    @classmethod
    def from_dir(cls, object_dir: Path, shape, device: str = "cpu") -> "InteractiveSegmenter":
        """Load ``object_dir/field.pt`` and pair it with the loaded input ``shape``."""
        bundle = load_field_bundle(Path(object_dir) / FIELD_FILE, device)
        return cls(bundle, np.asarray(shape.vertices, dtype=np.float64),
                   None if shape.faces is None else np.asarray(shape.faces))

    def features(self, scale: float) -> np.ndarray:
        """(N, D) grouping features of the sampled points at ``scale`` (cached per scale)."""
        key = float(scale)
        if key not in self._cache:
            self._cache[key] = self.bundle.field.features(key, self.bundle.scale_unit)
        return self._cache[key]

    def snap(self, point: np.ndarray | None = None, face: int | None = None) -> tuple[int, float]:
        """Sampled point nearest to a click given as a 3D point (input units) or a face index.

        Returns:
            (index of the sampled point, distance from the click in input units).
        """
        if (point is None) == (face is None):
            raise InputError("give exactly one of a click point (x y z) or a face index")
        b = self.bundle
        if face is not None:
            if b.element != "face":
                raise InputError("a face click needs a mesh; this object is a point cloud")
            if not 0 <= int(face) < b.n_elements:
                raise InputError(f"face {face} out of range (the mesh has {b.n_elements} faces)")
            on_face = np.flatnonzero(b.point_face == int(face))
            target = self._centroids[int(face)]
            if len(on_face):
                d = np.linalg.norm(b.points[on_face] - target, axis=1)
                return int(on_face[np.argmin(d)]), 0.0
            dist, idx = self._tree.query(target)
            return int(idx), float(dist / b.transform.scale)
        p = np.asarray(point, dtype=np.float64).reshape(-1)
        if p.shape != (3,) or not np.isfinite(p).all():
            raise InputError("a click point needs three finite coordinates x y z")
        dist, idx = self._tree.query(b.transform.apply(p))
        if dist > 0.1:  # unit box: more than a tenth of the object's longest side off its surface
            raise InputError(f"the click {tuple(float(v) for v in p)} is {dist / b.transform.scale:.3g} units "
                             "from the object's surface (more than 10% of its size): not on the object")
        return int(idx), float(dist / b.transform.scale)

    def select(self, scale: float, point: np.ndarray | None = None, face: int | None = None,
               radius: float | None = None, connected: bool = True) -> Selection:
        """The part under a click at one scale.

        Args:
            scale: query scale, in the unit the object was segmented with (default
                "relative": 0 = the object's finest masks, 2 = its coarsest).
            point: click position (3,) in input units, or
            face: a face index (meshes).
            radius: feature-distance radius (default: half the push margin).
            connected: keep only selected points connected to the click (k-NN graph).
        """
        if not np.isfinite(scale) or scale < 0:
            raise InputError(f"scale must be a non-negative number (got {scale})")
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
