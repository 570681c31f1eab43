"""Tiny LiDAR datasets written in the real SemanticKITTI and nuScenes-lidarseg layouts (test helper).

Scenes: a ground plane and a box-shaped "car" in front of the cameras, plus points all
around; every file is written as the real releases store it (raw little-endian binaries,
``calib.txt``, PNG / JPEG images, the devkit's JSON tables).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

#: KITTI odometry-style calibration: Velodyne x forward, y left, z up -> camera x right, y down, z forward
TR = np.array([[0.0, -1, 0, 0.1], [0, 0, -1, -0.2], [1, 0, 0, -0.3]])
K = np.array([[60.0, 0, 40], [0, 60, 15], [0, 0, 1]])
P2 = np.concatenate([K, K @ np.array([[0.06], [0.0], [0.0]])], 1)  # stereo baseline offset folded into P2
IMAGE_HW = (30, 80)


def scene(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """((n, 4) float32 x y z intensity, (n,) uint32 SemanticKITTI raw ids with instance bits).

    Ground (raw 40 road) everywhere, a car (raw 10 or 252 moving-car) 8-10 m ahead, some outliers (raw 1).
    """
    rng = np.random.default_rng(seed)
    pts = np.c_[rng.uniform(-20, 20, (n, 2)), rng.normal(-1.7, 0.02, n)]
    raw = np.full(n, 40, np.uint32)
    car = rng.choice(n, n // 4, replace=False)
    pts[car] = np.c_[rng.uniform(8, 10, len(car)), rng.uniform(-1, 1, len(car)), rng.uniform(-1.5, 0, len(car))]
    raw[car] = np.where(rng.random(len(car)) < 0.5, 10, 252)
    raw[: n // 40] = 1
    inten = rng.uniform(0, 1, n)
    instance = np.where(np.isin(raw, (10, 252)), 7, 0).astype(np.uint32)
    return np.c_[pts, inten].astype(np.float32), raw | (instance << 16)


def write_semantic_kitti(root: Path, sequences=("00", "01"), frames: int = 2, labels: bool = True) -> Path:
    """``root/dataset/sequences/NN/{velodyne,labels,image_2,calib.txt}``; returns ``root/dataset``."""
    base = root / "dataset"
    for s, seq in enumerate(sequences):
        d = base / "sequences" / seq
        for sub in ("velodyne", "labels", "image_2"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        lines = [f"P{i}: " + " ".join(f"{v:.12e}" for v in (P2 if i == 2 else np.c_[K, np.zeros(3)]).ravel())
                 for i in range(4)]
        (d / "calib.txt").write_text("\n".join(lines + ["Tr: " + " ".join(f"{v:.12e}" for v in TR.ravel())]) + "\n")
        for f in range(frames):
            pts, raw = scene(100 * s + f)
            pts.astype("<f4").tofile(d / "velodyne" / f"{f:06d}.bin")
            if labels:
                raw.astype("<u4").tofile(d / "labels" / f"{f:06d}.label")
            img = np.full((*IMAGE_HW, 3), 90 + 10 * f, np.uint8)
            Image.fromarray(img).save(d / "image_2" / f"{f:06d}.png")
    return base


#: the six nuScenes cameras: channel -> yaw (degrees, about the ego's z) of its optical axis
CAMERAS = {"CAM_FRONT": 0, "CAM_FRONT_LEFT": 55, "CAM_FRONT_RIGHT": -55, "CAM_BACK": 180, "CAM_BACK_LEFT": 110,
           "CAM_BACK_RIGHT": -110}
NU_K = [[40.0, 0, 32], [0, 40, 12], [0, 0, 1]]
NU_HW = (24, 64)


def _quat_z(deg: float) -> list[float]:
    a = np.radians(deg) / 2
    return [float(np.cos(a)), 0.0, 0.0, float(np.sin(a))]


def _cam_quat(yaw: float) -> list[float]:
    """(w, x, y, z) of a camera (x right, y down, z forward) looking along ego yaw ``yaw`` horizontally."""
    from scipy.spatial.transform import Rotation

    # camera axes in the ego frame: z_cam = (cos, sin, 0), x_cam = (sin, -cos, 0), y_cam = (0, 0, -1)
    c, s = np.cos(np.radians(yaw)), np.sin(np.radians(yaw))
    R = np.array([[s, 0, c], [-c, 0, s], [0, -1, 0]])
    x, y, z, w = Rotation.from_matrix(R).as_quat()
    return [float(w), float(x), float(y), float(z)]


def write_nuscenes_lidarseg(root: Path, samples: int = 3, version: str = "v1.0-mini") -> Path:
    """A nuScenes dataroot with ``samples`` key frames of one scene: LIDAR_TOP, six cameras, lidarseg."""
    tables = root / version
    tables.mkdir(parents=True)
    sensors = [{"token": "s_lidar", "channel": "LIDAR_TOP", "modality": "lidar"}] + \
        [{"token": f"s_{c}", "channel": c, "modality": "camera"} for c in CAMERAS]
    calib = [{"token": "cs_lidar", "sensor_token": "s_lidar", "translation": [0.9, 0.0, 1.8],
              "rotation": _quat_z(-90), "camera_intrinsic": []}] + \
        [{"token": f"cs_{c}", "sensor_token": f"s_{c}", "translation": [1.5, 0.0, 1.5], "rotation": _cam_quat(yaw),
          "camera_intrinsic": NU_K} for c, yaw in CAMERAS.items()]
    poses, sds, segs, smp = [], [], [], []
    for i in range(samples):
        st = f"sample{i}"
        smp.append({"token": st, "scene_token": "scene0", "timestamp": 1000 * i})
        # the ego moves and turns between the LiDAR's and each camera's timestamps
        poses.append({"token": f"ep_l{i}", "translation": [100.0 + i, 50.0, 0.0], "rotation": _quat_z(10 * i),
                      "timestamp": 1000 * i})
        pts, raw = scene(50 + i)
        lidar_name = f"samples/LIDAR_TOP/n008-2018__LIDAR_TOP__{1000 * i}.pcd.bin"
        (root / lidar_name).parent.mkdir(parents=True, exist_ok=True)
        np.c_[pts, np.zeros(len(pts))].astype("<f4").tofile(root / lidar_name)
        seg = np.where(raw & 0xFFFF == 40, 24, np.where(raw & 0xFFFF == 1, 0, 17)).astype(np.uint8)  # driveable / car / noise
        seg_name = f"lidarseg/{version}/lid{i}_lidarseg.bin"
        (root / seg_name).parent.mkdir(parents=True, exist_ok=True)
        seg.tofile(root / seg_name)
        sds.append({"token": f"lid{i}", "sample_token": st, "ego_pose_token": f"ep_l{i}",
                    "calibrated_sensor_token": "cs_lidar", "timestamp": 1000 * i, "fileformat": "pcd",
                    "is_key_frame": True, "height": 0, "width": 0, "filename": lidar_name, "prev": "", "next": ""})
        segs.append({"token": f"lid{i}", "sample_data_token": f"lid{i}", "filename": seg_name})
        for j, c in enumerate(CAMERAS):
            poses.append({"token": f"ep_{c}{i}", "translation": [100.0 + i + 0.05 * (j + 1), 50.0, 0.0],
                          "rotation": _quat_z(10 * i + 0.5 * (j + 1)), "timestamp": 1000 * i + j})
            name = f"samples/{c}/n008-2018__{c}__{1000 * i + j}.jpg"
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((*NU_HW, 3), 40 * j % 255, np.uint8)).save(root / name)
            sds.append({"token": f"{c}{i}", "sample_token": st, "ego_pose_token": f"ep_{c}{i}",
                        "calibrated_sensor_token": f"cs_{c}", "timestamp": 1000 * i + j, "fileformat": "jpg",
                        "is_key_frame": True, "height": NU_HW[0], "width": NU_HW[1], "filename": name,
                        "prev": "", "next": ""})
    for name, rows in {"sensor": sensors, "calibrated_sensor": calib, "ego_pose": poses, "sample_data": sds,
                       "lidarseg": segs, "sample": smp}.items():
        (tables / f"{name}.json").write_text(json.dumps(rows))
    return root
