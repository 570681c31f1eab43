"""nuScenes layouts as lazy frame sources: an mmdetection3d ``sample.json`` and the devkit tables + lidarseg.

nuScenes-lidarseg (a nuScenes ``dataroot`` with the lidarseg extension unpacked into it)::

    <version>/{sample_data,calibrated_sensor,ego_pose,sensor,lidarseg}.json   the devkit's tables
    samples/LIDAR_TOP/<name>.pcd.bin             float32 (N, 5) x y z intensity ring
    samples/CAM_*/<name>.jpg                     the six cameras of the same sample (key frames)
    lidarseg/<version>/<token>_lidarseg.bin      uint8 (N,) 32-class ids

The tables are read directly, not through ``nuscenes-devkit``: its 1.2.0 wheel would downgrade
NumPy to 1.26 and bring OpenCV, matplotlib, Shapely and pycocotools, for what is seven JSON
tables and four rigid transforms. Each camera's ``lidar_to_cam`` chains LiDAR -> ego (at the
LiDAR's time) -> global -> ego (at the camera's time) -> camera, as the devkit's
``map_pointcloud_to_image`` does. Labels: the lidarseg challenge's 16 classes; in a frame,
label ``k + 1`` is :data:`NUSCENES_LIDARSEG_CLASSES` ``[k]`` and 0 "unlabeled" never occurs
(ignored points are -1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crossdistill.errors import InputError
from crossdistill.eval.benchmarks._base import read_image, read_json
from crossdistill.methods.lidar_kd.datasets import FrameSource
from crossdistill.methods.lidar_kd.frames import CameraImage, LidarFrame, check_frame
from crossdistill.render.lidar import CameraCalib

__all__ = ["NuScenesSampleSource", "NuScenesLidarsegSource", "quaternion_matrix", "rigid",
           "NUSCENES_FRAME_CLASSES"]


class NuScenesSampleSource(FrameSource):
    """An mmdetection3d nuScenes ``sample.json`` folder (six cameras, points-in-box labels), lazily."""

    def __init__(self, root: str | Path) -> None:
        from crossdistill.eval.benchmarks.boxes import NuScenesSample

        self.root = Path(root)
        self._bench = NuScenesSample(self.root)
        self._records = {r.id: r for r in self._bench.records()}
        self.ids = list(self._records)
        self.groups = [self._records[i].category for i in self.ids]
        self.name = f"nuscenes:{self.root.resolve()}"
        if not self.ids:
            raise InputError(f"{root}: no nuScenes samples")

    def load(self, frame_id: str) -> LidarFrame:
        from crossdistill.methods.lidar_kd.frames import _nuscenes_frame

        return check_frame(_nuscenes_frame(self._bench, self._records[frame_id]))


def quaternion_matrix(q) -> np.ndarray:
    """(3, 3) rotation of a unit quaternion ``(w, x, y, z)`` (nuScenes' order), normalised first."""
    w, x, y, z = np.asarray(q, np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def rigid(rotation, translation) -> np.ndarray:
    """(4, 4) homogeneous transform of a ``(w, x, y, z)`` quaternion and a translation."""
    T = np.eye(4)
    T[:3, :3] = quaternion_matrix(rotation)
    T[:3, 3] = np.asarray(translation, np.float64)
    return T


def _frame_classes() -> tuple[str, ...]:
    from crossdistill.eval.benchmarks.lidarseg import NUSCENES_LIDARSEG_CLASSES

    return ("unlabeled", *NUSCENES_LIDARSEG_CLASSES)


#: class names of a lidarseg frame's labels (0 "unlabeled" never occurs as ground truth)
NUSCENES_FRAME_CLASSES: tuple[str, ...] = _frame_classes()


class NuScenesLidarsegSource(FrameSource):
    """nuScenes-lidarseg key frames with their six cameras (see the module docstring), lazily.

    Only the calibration of each frame (a few matrices per camera) is kept in memory.
    Frame ids are the LiDAR sample_data tokens; :attr:`groups` gives each frame's log.
    """

    def __init__(self, root: str | Path, version: str | None = None) -> None:
        from crossdistill.eval.benchmarks.lidarseg import NuScenesLidarSeg

        self.root = Path(root)
        if version is None:
            found = sorted(p.parent.name for p in self.root.glob("v1.0-*/lidarseg.json"))
            if not found:
                raise InputError(f"{root}: no v1.0-*/lidarseg.json")
            version = found[0]
        self._bench = NuScenesLidarSeg(self.root, version=version)
        self._records = {r.id: r for r in self._bench.records()}
        self._cameras = self._index_cameras(self.root / version)
        self.ids = [i for i in self._records if self._cameras.get(i)]
        self.groups = [self._records[i].category for i in self.ids]
        self.name = f"nuscenes_lidarseg:{self.root.resolve()}:{version}"
        if not self.ids:
            raise InputError(f"{root}: no lidarseg frame with camera images")

    def _index_cameras(self, tables: Path) -> dict[str, list[tuple[str, np.ndarray, np.ndarray, int, int, Path]]]:
        """LiDAR sample_data token -> [(channel, K (3, 3), lidar_to_cam (4, 4), width, height, image path)]."""
        t = {name: {r["token"]: r for r in read_json(tables / f"{name}.json", self._bench)}
             for name in ("calibrated_sensor", "ego_pose", "sensor")}
        by_sample: dict[str, list[dict]] = {}
        lidar_sd = {}
        for sd in read_json(tables / "sample_data.json", self._bench):
            if not sd.get("is_key_frame", True):
                continue
            if sd["token"] in self._records:
                lidar_sd[sd["token"]] = sd
            elif "CAM" in t["sensor"][t["calibrated_sensor"][sd["calibrated_sensor_token"]]["sensor_token"]]["channel"]:
                by_sample.setdefault(sd["sample_token"], []).append(sd)
        out = {}
        for token, sd in lidar_sd.items():
            cs, pose = t["calibrated_sensor"][sd["calibrated_sensor_token"]], t["ego_pose"][sd["ego_pose_token"]]
            lidar_to_global = rigid(pose["rotation"], pose["translation"]) @ rigid(cs["rotation"], cs["translation"])
            cams = []
            for c in by_sample.get(sd["sample_token"], []):
                ccs, cpose = t["calibrated_sensor"][c["calibrated_sensor_token"]], t["ego_pose"][c["ego_pose_token"]]
                channel = t["sensor"][ccs["sensor_token"]]["channel"]
                global_to_cam = np.linalg.inv(rigid(cpose["rotation"], cpose["translation"])
                                              @ rigid(ccs["rotation"], ccs["translation"]))
                K = np.asarray(ccs["camera_intrinsic"], np.float64)
                cams.append((channel, K, global_to_cam @ lidar_to_global, int(c["width"]), int(c["height"]),
                             self.root / c["filename"]))
            out[token] = sorted(cams, key=lambda c: c[0])
        return out

    def load(self, frame_id: str) -> LidarFrame:
        d = self._bench.load(self._records[frame_id])
        images = []
        for channel, K, l2c, W, H, path in self._cameras[frame_id]:
            images.append(CameraImage(read_image(path, self._bench), CameraCalib(K, l2c, W, H, channel)))
        labels = np.where(d["labels"] >= 0, d["labels"] + 1, -1).astype(np.int64)
        return check_frame(LidarFrame(frame_id, d["points"], 255.0, tuple(images), labels, NUSCENES_FRAME_CLASSES,
                                      "nuscenes_lidarseg"))
