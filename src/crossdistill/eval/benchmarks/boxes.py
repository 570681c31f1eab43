"""LiDAR frames labelled by 3D boxes: KITTI object and the nuScenes sample.

Neither has per-point semantic ground truth; :func:`box_point_labels` gives every point
inside a labelled 3D box the box's class and every other point "background" (0). Boxes
are oriented boxes in the LiDAR frame, described by a centre (3,) and an axes matrix
(3, 3) whose columns are the box's half-extent vectors (so a point ``p`` is inside when
``|inv(axes) @ (p - centre)| <= 1`` in every coordinate); this also covers boxes mapped
through a calibration that is not exactly a rotation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from crossdistill.errors import InputError
from crossdistill.eval.benchmarks._base import Benchmark, Record, read_raw, read_image, read_json

__all__ = [
    "points_in_boxes", "box_point_labels", "lidar_boxes_7dof", "KittiCalib", "read_kitti_calib",
    "read_kitti_labels", "kitti_boxes_to_lidar", "KITTI_CLASSES", "KittiObject", "KittiSample",
    "NUSCENES_DETECTION_CLASSES", "NuScenesSample",
]


# ------------------------------------------------------------------- points in boxes
def points_in_boxes(points: npt.ArrayLike, centers: npt.ArrayLike, axes: npt.ArrayLike) -> np.ndarray:
    """Index of the box containing each point; the first box in order wins overlaps.

    Args:
        points: (N, 3) float positions.
        centers: (B, 3) box centres.
        axes: (B, 3, 3) per box, columns = half-extent vectors (e.g. ``R @ diag(size / 2)``).

    Returns:
        (N,) int64 box index, -1 outside every box.

    Example:
        >>> points_in_boxes([[0, 0, 0], [3, 0, 0]], [[0, 0, 0]], [np.eye(3)]).tolist()
        [0, -1]
    """
    p = np.asarray(points, np.float64)[:, :3]
    c = np.asarray(centers, np.float64).reshape(-1, 3)
    a = np.asarray(axes, np.float64).reshape(-1, 3, 3)
    if len(c) != len(a):
        raise InputError(f"{len(c)} box centres but {len(a)} axes matrices")
    out = np.full(len(p), -1, np.int64)
    for b in range(len(c) - 1, -1, -1):  # reverse so that the first box wins
        radius = np.linalg.norm(a[b], axis=0).sum()  # bounding sphere of the box
        d = p - c[b]
        near = np.flatnonzero(np.einsum("ij,ij->i", d, d) <= radius * radius)
        if near.size == 0:
            continue
        try:
            local = np.linalg.solve(a[b], d[near].T).T
        except np.linalg.LinAlgError:
            continue  # a degenerate (zero-size) box contains nothing
        out[near[np.all(np.abs(local) <= 1.0, axis=1)]] = b
    return out


def box_point_labels(points: npt.ArrayLike, centers, axes, box_labels: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Per-point class from boxes: ``(labels, box_index)``.

    Args:
        box_labels: (B,) int class of each box, >= 1 (0 is background); a negative box
            label marks its points -1 ("ignore": an object of a class outside the list).

    Returns:
        labels (N,) int64 (0 background), box_index (N,) int64 (-1 none).
    """
    idx = points_in_boxes(points, centers, axes)
    lab = np.asarray(box_labels, np.int64).reshape(-1)
    labels = np.where(idx >= 0, lab[np.maximum(idx, 0)] if lab.size else 0, 0).astype(np.int64)
    return labels, idx


def _rot_z(yaw: np.ndarray) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    z, o = np.zeros_like(yaw), np.ones_like(yaw)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def lidar_boxes_7dof(boxes: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Centres (B, 3) and axes (B, 3, 3) of ``x y z dx dy dz yaw`` LiDAR-frame boxes.

    ``(x, y, z)`` is the box's gravity centre, ``dx`` the size along its heading, ``yaw``
    the heading angle about +z from +x (mmdetection3d ``LiDARInstance3DBoxes`` with
    origin (0.5, 0.5, 0.5), as stored in its nuScenes infos).
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 7)
    return b[:, :3].copy(), _rot_z(b[:, 6]) * (b[:, None, 3:6] / 2.0)


# ---------------------------------------------------------------------------- KITTI
#: Class ids of :class:`KittiObject` labels (index = label value); ``DontCare`` has no box.
KITTI_CLASSES: tuple[str, ...] = (
    "background", "car", "van", "truck", "pedestrian", "person_sitting", "cyclist", "tram", "misc",
)


class KittiCalib(dict):
    """KITTI object calibration: ``P0``..``P3`` (3, 4), ``R0_rect`` (3, 3),
    ``Tr_velo_to_cam`` (3, 4), ``Tr_imu_to_velo`` (3, 4), all float64.
    ``velo_to_rect`` (4, 4) = ``R0_rect @ Tr_velo_to_cam`` (homogeneous)."""

    @property
    def velo_to_rect(self) -> np.ndarray:
        r0, tr = np.eye(4), np.eye(4)
        r0[:3, :3] = self["R0_rect"]
        tr[:3, :4] = self["Tr_velo_to_cam"]
        return r0 @ tr


_CALIB_SHAPES = {"P0": (3, 4), "P1": (3, 4), "P2": (3, 4), "P3": (3, 4), "R0_rect": (3, 3),
                 "Tr_velo_to_cam": (3, 4), "Tr_imu_to_velo": (3, 4)}


def read_kitti_calib(path: str | Path) -> KittiCalib:
    """Parse a KITTI object ``calib/<id>.txt`` (lines ``KEY: v1 v2 ...``).

    ``P0``..``P3``, ``R0_rect`` and ``Tr_velo_to_cam`` are required; ``Tr_imu_to_velo``
    is read when present. Raises a one-line :class:`InputError` otherwise.
    """
    path = Path(path)
    calib = KittiCalib()
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"kitti: {path}: cannot read calibration ({type(exc).__name__})") from exc
    for line in text.splitlines():
        key, _, vals = line.partition(":")
        key = key.strip()
        if key not in _CALIB_SHAPES:
            continue
        try:
            arr = np.array(vals.split(), np.float64)
            calib[key] = arr.reshape(_CALIB_SHAPES[key])
        except ValueError:
            raise InputError(f"kitti: {path}: {key} is not {np.prod(_CALIB_SHAPES[key])} numbers") from None
    need = [k for k in _CALIB_SHAPES if k != "Tr_imu_to_velo" and k not in calib]
    if need:
        raise InputError(f"kitti: {path}: calibration lacks {need}")
    for key, mat in calib.items():
        if not np.isfinite(mat).all():
            raise InputError(f"kitti: {path}: {key} holds NaN or infinite values")
    for key in ("P2", "R0_rect"):  # the colour camera the methods use
        m = calib[key][:, :3]
        if abs(np.linalg.det(m)) <= 1e-12 * max(float(np.abs(m).max()), 1e-300) ** 3:
            raise InputError(f"kitti: {path}: {key} is singular (all zero or degenerate): not a camera calibration")
    return calib


def read_kitti_labels(path: str | Path) -> list[dict[str, Any]]:
    """Parse a KITTI ``label_2/<id>.txt``: one object per line, 15 fields
    ``type truncated occluded alpha left top right bottom h w l x y z ry`` (+ optional score).

    Returns a list of dicts: ``type`` (str), ``truncated``, ``occluded``, ``alpha``,
    ``bbox`` (4,) pixels, ``dims_hwl`` (3,) metres, ``location`` (3,) bottom centre in the
    rectified camera frame, ``ry`` (rotation about camera y).
    """
    path = Path(path)
    out = []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise InputError(f"kitti: {path}: cannot read labels ({type(exc).__name__})") from exc
    for i, line in enumerate(lines):
        f = line.split()
        if not f:
            continue
        if len(f) < 15:
            raise InputError(f"kitti: {path}: line {i + 1} has {len(f)} fields, expected 15")
        try:
            v = np.array(f[1:15], np.float64)
        except ValueError:
            raise InputError(f"kitti: {path}: line {i + 1} has non-numeric fields") from None
        out.append({"type": f[0], "truncated": v[0], "occluded": int(v[1]), "alpha": v[2], "bbox": v[3:7],
                    "dims_hwl": v[7:10], "location": v[10:13], "ry": v[13]})
    return out


def kitti_boxes_to_lidar(objects: list[dict[str, Any]], calib: KittiCalib) -> tuple[np.ndarray, np.ndarray]:
    """LiDAR-frame centres (B, 3) and axes (B, 3, 3) of KITTI camera-frame boxes.

    In the rectified camera frame (x right, y down, z forward) a box has bottom centre
    ``location``, gravity centre ``location - (0, h/2, 0)`` and half-extent vectors
    ``l/2 (cos ry, 0, -sin ry)``, ``h/2 (0, 1, 0)``, ``w/2 (sin ry, 0, cos ry)``. Both map
    to the LiDAR frame through ``inv(R0_rect @ Tr_velo_to_cam)``.
    """
    if not objects:
        return np.zeros((0, 3)), np.zeros((0, 3, 3))
    h, w, l = np.stack([o["dims_hwl"] for o in objects]).T
    loc = np.stack([o["location"] for o in objects])
    ry = np.array([o["ry"] for o in objects])
    c, s, z = np.cos(ry), np.sin(ry), np.zeros_like(ry)
    axes_rect = np.stack([  # columns: length, height, width half-extents
        np.stack([l / 2 * c, z, -l / 2 * s], -1),
        np.stack([z, h / 2, z], -1),
        np.stack([w / 2 * s, z, w / 2 * c], -1),
    ], -1)
    centre_rect = loc - np.stack([z, h / 2, z], -1)
    inv = np.linalg.inv(calib.velo_to_rect)
    centres = centre_rect @ inv[:3, :3].T + inv[:3, 3]
    axes = inv[:3, :3] @ axes_rect
    return centres, axes


class KittiObject(Benchmark):
    """KITTI 3D object detection layout, with points-in-box labels.

    Layout (``split`` = ``training``; ``testing`` has no ``label_2``)::

        <split>/velodyne/<id>.bin   float32 (N, 4) x y z reflectance, LiDAR frame
        <split>/image_2/<id>.png    left colour camera
        <split>/calib/<id>.txt      P0..P3 (3x4), R0_rect (3x3), Tr_velo_to_cam (3x4), Tr_imu_to_velo
        <split>/label_2/<id>.txt    type trunc occl alpha bbox(4) h w l x y z ry (camera frame)

    Records: ``id`` = frame id, ``category`` = split, ``paths`` velodyne / image / calib /
    label. :meth:`load` returns ``points`` (N, 4) float32; ``labels`` (N,) int64 index
    into :data:`KITTI_CLASSES` (0 background; points of ``DontCare`` regions stay
    background as those have no 3D box); ``box_index`` (N,) int64 (-1 none);
    ``boxes``: the parsed label dicts of the boxed objects, in ``box_index`` order;
    ``box_centers`` (B, 3), ``box_axes`` (B, 3, 3) LiDAR frame; ``calib``
    (:class:`KittiCalib`); ``image`` (H, W, 3) uint8 when ``load(record, image=True)``.
    """

    name = "kitti_object"
    folder = "kitti_object"
    layout = "training/{velodyne,image_2,calib,label_2}/<id>.*"
    source = "the KITTI 3D object benchmark (www.cvlibs.net/datasets/kitti, CC BY-NC-SA 3.0)"

    def __init__(self, path, split: str = "training") -> None:
        self.split = split
        super().__init__(path)

    def _check(self) -> None:
        for sub in ("velodyne", "calib"):
            if not (self.path / self.split / sub).is_dir():
                raise self.missing(f"{self.path / self.split / sub} not found")

    def _scan(self) -> list[Record]:
        base = self.path / self.split
        recs = []
        for velo in sorted((base / "velodyne").glob("*.bin")):
            fid = velo.stem
            paths = {"velodyne": velo, "image": base / "image_2" / f"{fid}.png",
                     "calib": base / "calib" / f"{fid}.txt", "label": base / "label_2" / f"{fid}.txt"}
            recs.append(Record(self.name, fid, self.split, paths, {"split": self.split}))
        return recs

    def load(self, record: Record, image: bool = False) -> dict[str, Any]:
        points = read_raw(record.paths["velodyne"], 4, self)
        calib = read_kitti_calib(record.paths["calib"])
        objs = read_kitti_labels(record.paths["label"]) if record.paths["label"].is_file() else []
        boxed = [o for o in objs if o["type"] != "DontCare"]
        names = [o["type"].lower() for o in boxed]
        unknown = sorted(set(names) - set(KITTI_CLASSES[1:]))
        if unknown:
            raise self._bad(record.paths["label"], f"unknown object types {unknown}")
        centers, axes = kitti_boxes_to_lidar(boxed, calib)
        box_labels = np.array([KITTI_CLASSES.index(n) for n in names], np.int64)
        labels, idx = box_point_labels(points, centers, axes, box_labels)
        out = {"points": points, "labels": labels, "box_index": idx, "boxes": boxed,
               "box_centers": centers, "box_axes": axes, "calib": calib}
        if image:
            out["image"] = read_image(record.paths["image"], self)
        return out


class KittiSample(KittiObject):
    """``kitti_sample``: the 4 real KITTI training frames in ``../shared/data/kitti_sample``
    (same layout and outputs as :class:`KittiObject`)."""

    name = "kitti_sample"
    folder = "kitti_sample"
    source = "../shared/data/kitti_sample (4 KITTI object frames, CC BY-NC-SA 3.0)"


# -------------------------------------------------------------------- nuScenes sample
#: nuScenes detection classes (mmdetection3d ``metainfo.categories`` order); point label
#: ``k + 1`` is class ``k``, 0 background.
NUSCENES_DETECTION_CLASSES: tuple[str, ...] = (
    "car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle",
    "pedestrian", "traffic_cone", "barrier",
)


class NuScenesSample(Benchmark):
    """nuScenes samples in an mmdetection3d (v1.1 info) ``sample.json``, points-in-box labels.

    Layout: ``sample.json`` = ``{"metainfo": {"categories": {name: index}}, "data_list":
    [{"token", "lidar_points": {"lidar_path", "num_pts_feats", "lidar2ego"},
    "images": {CAM: {"img_path", "cam2img" (3x3), "lidar2cam" (4x4)}}, "ego2global",
    "instances": [{"bbox_3d": [x, y, z, dx, dy, dz, yaw], "bbox_label_3d"}]}]}``, with the
    ``.pcd.bin`` and ``.jpg`` files beside it. Boxes are in the LiDAR frame with
    ``(x, y, z)`` the gravity centre (checked against ``num_lidar_pts`` on the shared
    sample); see :func:`lidar_boxes_7dof`.

    Records: ``id`` = sample token, ``category`` = the log name (file-name prefix).
    :meth:`load` returns ``points`` (N, F) float32 (x y z intensity ring);
    ``labels`` (N,) int64: 0 background, ``k + 1`` for class ``k`` of
    ``metainfo["categories"]`` (:data:`NUSCENES_DETECTION_CLASSES` here), -1 inside a
    box whose label is -1 (an object outside the 10 classes); ``box_index`` (N,) int64;
    ``boxes`` (B, 7) float64; ``box_labels`` (B,) int64; ``class_names``;
    ``cameras``: CAM -> {``cam2img`` (3, 3), ``lidar2cam`` (4, 4), ``image_path``
    (+ ``image`` (H, W, 3) uint8 when ``load(record, images=True)``)};
    ``lidar2ego``, ``ego2global`` (4, 4) float64.
    """

    name = "nuscenes_sample"
    folder = "nuscenes_sample"
    layout = "sample.json (mmdetection3d nuScenes info) + *.pcd.bin + CAM_*.jpg"
    source = "nuScenes v1.0-mini (www.nuscenes.org) converted by mmdetection3d"

    def _check(self) -> None:
        if not (self.path / "sample.json").is_file():
            raise self.missing(f"{self.path / 'sample.json'} not found")

    def _info(self) -> dict[str, Any]:
        info = read_json(self.path / "sample.json", self)
        if not isinstance(info, dict) or not isinstance(info.get("data_list"), list):
            raise self._bad(self.path / "sample.json", "no data_list")
        return info

    def _scan(self) -> list[Record]:
        info = self._info()
        cats = info.get("metainfo", {}).get("categories") or {n: i for i, n in enumerate(NUSCENES_DETECTION_CLASSES)}
        names = [n for n, _ in sorted(cats.items(), key=lambda kv: kv[1])]
        recs = []
        for i, s in enumerate(info["data_list"]):
            try:
                lidar = s["lidar_points"]["lidar_path"]
            except (KeyError, TypeError):
                raise self._bad(self.path / "sample.json", f"data_list[{i}] has no lidar_points.lidar_path") from None
            paths = {"lidar": self.path / Path(lidar).name}
            for cam, c in (s.get("images") or {}).items():
                paths[cam] = self.path / Path(c["img_path"]).name
            meta = dict(s)
            meta["class_names"] = names
            recs.append(Record(self.name, str(s.get("token", i)), Path(lidar).name.split("__")[0], paths, meta))
        return sorted(recs, key=lambda r: (r.category, r.meta.get("timestamp", 0), r.id))

    def load(self, record: Record, images: bool = False) -> dict[str, Any]:
        m = record.meta
        n_feat = int(m["lidar_points"].get("num_pts_feats", 5))
        points = read_raw(record.paths["lidar"], n_feat, self)
        inst = m.get("instances", [])
        boxes = np.array([b["bbox_3d"] for b in inst], np.float64).reshape(-1, 7)
        box_labels = np.array([b.get("bbox_label_3d", b.get("bbox_label", -1)) for b in inst], np.int64)
        centers, axes = lidar_boxes_7dof(boxes)
        labels, idx = box_point_labels(points, centers, axes, np.where(box_labels >= 0, box_labels + 1, -1))
        cameras = {}
        for cam, c in (m.get("images") or {}).items():
            cameras[cam] = {"cam2img": np.asarray(c["cam2img"], np.float64),
                            "lidar2cam": np.asarray(c["lidar2cam"], np.float64), "image_path": record.paths[cam]}
            if images:
                cameras[cam]["image"] = read_image(record.paths[cam], self)
        return {"points": points, "labels": labels, "box_index": idx, "boxes": boxes, "box_labels": box_labels,
                "class_names": list(m["class_names"]), "cameras": cameras,
                "lidar2ego": np.asarray(m["lidar_points"].get("lidar2ego", np.eye(4)), np.float64),
                "ego2global": np.asarray(m.get("ego2global", np.eye(4)), np.float64)}
