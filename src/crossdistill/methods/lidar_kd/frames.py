"""LiDAR frames with their calibrated cameras, read from the KITTI and nuScenes layouts.

A :class:`LidarFrame` is what the LiDAR distillation methods consume: the scan, the
camera images with their calibration, and, when the data has them, per-point evaluation
labels (points inside labelled 3D boxes take the box's class, :mod:`crossdistill.eval.benchmarks.boxes`)
and 2D boxes per image (what the offline box-supervised 2D teacher trains on: KITTI's
``label_2`` boxes; a nuScenes camera's projected 3D boxes).

Point features (:meth:`LidarFrame.point_features`) are sensor-agnostic: position scaled
to about unit range and intensity in [0, 1] (KITTI's reflectance is in [0, 1] already,
nuScenes' intensity in [0, 255]).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from crossdistill.errors import InputError
from crossdistill.eval.benchmarks.boxes import KITTI_CLASSES
from crossdistill.render.lidar import CameraCalib, kitti_camera, nuscenes_cameras

__all__ = ["CameraImage", "LidarFrame", "check_frame", "kitti_frames", "nuscenes_frames", "load_frames", "box_corners",
           "box_training_data"]


@dataclass(frozen=True)
class CameraImage:
    """One camera image of a frame.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        camera: its calibration.
        boxes: (B, 4) float64 2D boxes x0, y0, x1, y1 (may be empty).
        box_labels: (B,) int64 class index into the frame's ``class_names`` (>= 1).
        box_ignore: (B,) bool regions to ignore when training on boxes (KITTI DontCare).
    """

    image: np.ndarray
    camera: CameraCalib
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    box_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    box_ignore: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


@dataclass(frozen=True)
class LidarFrame:
    """A LiDAR scan with synchronised, calibrated camera images.

    Attributes:
        name: frame id.
        points: (N, 3 + F) float32 x, y, z, intensity, ... in the LiDAR frame.
        intensity_scale: divide column 3 by this to get [0, 1].
        images: the cameras.
        labels: (N,) int64 evaluation class per point (index into ``class_names``, 0
            background, -1 ignore), or None.
        class_names: names of the label values.
        source: "kitti" or "nuscenes" (or anything else).
    """

    name: str
    points: np.ndarray
    intensity_scale: float
    images: tuple[CameraImage, ...]
    labels: np.ndarray | None = None
    class_names: tuple[str, ...] = ()
    source: str = ""

    def point_features(self) -> np.ndarray:
        """(N, 4) float32: x / 50, y / 50, z / 3, intensity in [0, 1]."""
        p = self.points
        inten = np.clip(p[:, 3] / self.intensity_scale, 0.0, 1.0) if p.shape[1] > 3 else np.zeros(len(p))
        return np.stack([p[:, 0] / 50.0, p[:, 1] / 50.0, p[:, 2] / 3.0, inten], 1).astype(np.float32)


def check_frame(frame: LidarFrame) -> LidarFrame:
    """Return ``frame`` when usable; else a one-line :class:`InputError` naming the frame and what is wrong.

    Checked: at least one point, finite coordinates and features, and per camera a finite
    calibration with an invertible intrinsic matrix and an image of the calibrated size.
    """
    p = np.asarray(frame.points)
    if p.ndim != 2 or p.shape[1] < 3 or len(p) == 0:
        raise InputError(f"frame {frame.name}: scan has no points (shape {p.shape})")
    bad = ~np.isfinite(p).all(axis=1)
    if bad.any():
        raise InputError(f"frame {frame.name}: {int(bad.sum())} of {len(p)} scan points hold NaN or infinite values")
    for cam in frame.images:
        K, T = np.asarray(cam.camera.K, np.float64), np.asarray(cam.camera.lidar_to_cam, np.float64)
        if not (np.isfinite(K).all() and np.isfinite(T).all()):
            raise InputError(f"frame {frame.name}: camera {cam.camera.name} calibration holds NaN or infinite values")
        if abs(np.linalg.det(K)) <= 1e-12 * max(float(np.abs(K).max()), 1e-300) ** 3:
            raise InputError(f"frame {frame.name}: camera {cam.camera.name} intrinsics are singular")
        if cam.image.shape[:2] != (cam.camera.height, cam.camera.width):
            raise InputError(f"frame {frame.name}: camera {cam.camera.name} image is {cam.image.shape[1]}x"
                             f"{cam.image.shape[0]}, calibrated for {cam.camera.width}x{cam.camera.height}")
    return frame


def _isolate(name: str, failures: dict[str, str] | None, build):
    """``build()``, or (with a ``failures`` dict) ``None`` and the reason recorded under ``name``."""
    try:
        return check_frame(build())
    except (InputError, ValueError, OSError) as exc:
        if failures is None:
            raise
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        failures[name] = first if isinstance(exc, InputError) else f"{type(exc).__name__}: {first}"
        return None


def kitti_frames(root: str | Path, ids: list[str] | None = None,
                 failures: dict[str, str] | None = None) -> list[LidarFrame]:
    """Frames of a KITTI object-layout folder (``training/{velodyne,image_2,calib,label_2}``).

    Evaluation labels and 2D boxes use :data:`KITTI_CLASSES` (0 background); the 2D
    boxes of ``DontCare`` regions are ignore regions. Every frame is checked
    (:func:`check_frame`); with a ``failures`` dict a bad frame is recorded there (frame id ->
    reason) and left out, otherwise its error propagates.
    """
    from crossdistill.eval.benchmarks.boxes import KittiObject

    bench = KittiObject(Path(root))
    out = []
    for rec in bench.records():
        if ids is not None and rec.id not in ids:
            continue
        frame = _isolate(rec.id, failures, lambda: _kitti_frame(bench, rec))
        if frame is not None:
            out.append(frame)
    if not out:
        raise InputError(f"{root}: no KITTI frames" + (f" with ids {ids}" if ids else "")
                         + (f" that can be used ({len(failures)} bad)" if failures else ""))
    return out


def _kitti_frame(bench, rec) -> LidarFrame:
    """One KITTI record as a frame (reads the scan, calibration, labels and image)."""
    from crossdistill.eval.benchmarks.boxes import read_kitti_labels

    d = bench.load(rec, image=True)
    H, W = d["image"].shape[:2]
    objs = read_kitti_labels(rec.paths["label"]) if rec.paths["label"].is_file() else []
    boxes = np.array([o["bbox"] for o in objs], np.float64).reshape(-1, 4)
    ignore = np.array([o["type"] == "DontCare" for o in objs], bool)
    labels = np.array([0 if o["type"] == "DontCare" else KITTI_CLASSES.index(o["type"].lower())
                       for o in objs], np.int64)
    cam = CameraImage(d["image"], kitti_camera(d["calib"], W, H), boxes, labels, ignore)
    return LidarFrame(rec.id, d["points"], 1.0, (cam,), d["labels"], KITTI_CLASSES, "kitti")


def box_corners(centers: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """(B, 8, 3) corners of oriented boxes (centre (B, 3), axes (B, 3, 3) columns = half extents)."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], np.float64)
    return centers[:, None, :] + np.einsum("bij,kj->bki", axes, signs)


def _projected_boxes(corners: np.ndarray, camera: CameraCalib, min_depth: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """((B', 4) 2D boxes, (B',) index of the 3D box) of the boxes fully in front of the camera and in the image."""
    out, idx = [], []
    for b, c in enumerate(corners):
        uv, z = camera.project(c)
        if (z < min_depth).any():
            continue
        x0, y0 = np.clip(uv.min(0), 0, [camera.width, camera.height])
        x1, y1 = np.clip(uv.max(0), 0, [camera.width, camera.height])
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            out.append([x0, y0, x1, y1])
            idx.append(b)
    return np.array(out, np.float64).reshape(-1, 4), np.array(idx, np.int64)


def nuscenes_frames(root: str | Path, failures: dict[str, str] | None = None) -> list[LidarFrame]:
    """Frames of an mmdetection3d nuScenes ``sample.json`` folder, 6 cameras each.

    Labels: 0 background, ``k + 1`` for nuScenes detection class ``k``, -1 for objects
    outside those classes; 2D boxes are the 3D boxes projected into each camera. Bad frames:
    as :func:`kitti_frames`.
    """
    from crossdistill.eval.benchmarks.boxes import NuScenesSample

    bench = NuScenesSample(Path(root))
    out = []
    for rec in bench.records():
        frame = _isolate(rec.id, failures, lambda: _nuscenes_frame(bench, rec))
        if frame is not None:
            out.append(frame)
    if not out:
        raise InputError(f"{root}: no nuScenes frames that can be used ({len(failures or {})} bad)")
    return out


def _nuscenes_frame(bench, rec) -> LidarFrame:
    """One nuScenes sample as a frame."""
    from crossdistill.eval.benchmarks.boxes import lidar_boxes_7dof

    d = bench.load(rec, images=True)
    names = ("background", *d["class_names"])
    sizes = {k: v["image"].shape[:2] for k, v in d["cameras"].items()}
    cams = nuscenes_cameras(d["cameras"], sizes)
    centers, axes = lidar_boxes_7dof(d["boxes"])
    corners = box_corners(centers, axes)
    images = []
    for cam in cams:
        boxes, idx = _projected_boxes(corners, cam)
        lab = d["box_labels"][idx] + 1
        images.append(CameraImage(d["cameras"][cam.name]["image"], cam, boxes[lab > 0], lab[lab > 0],
                                  np.zeros(int((lab > 0).sum()), bool)))
    return LidarFrame(rec.id, d["points"], 255.0, tuple(images), d["labels"], names, "nuscenes")


def load_frames(path: str | Path) -> list[LidarFrame]:
    """Frames of a KITTI object folder (``training/`` inside) or a nuScenes ``sample.json`` folder."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if (path / "sample.json").is_file():
        return nuscenes_frames(path)
    return kitti_frames(path)


def box_training_data(frames: list[LidarFrame], class_names: tuple[str, ...]
                      ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(images, (H, W) int64 label maps) of every camera image with 2D boxes, labels in ``class_names``.

    Box classes are mapped by name from each frame's own label space
    (:func:`crossdistill.methods.lidar_kd.evaluate.map_classes`: a nuScenes "bus" becomes a KITTI
    "truck"); boxes of classes the target space lacks count as background, ignore regions stay ignored.
    """
    from crossdistill.methods.lidar_kd.evaluate import map_classes
    from crossdistill.teachers.box2d import box_pixel_labels

    images, labels = [], []
    for f in frames:
        to_target = map_classes(f.class_names, class_names)
        for c in f.images:
            if not len(c.boxes):
                continue
            images.append(c.image)
            labels.append(box_pixel_labels(c.image.shape[:2], c.boxes, to_target[c.box_labels], c.box_ignore))
    return images, labels
