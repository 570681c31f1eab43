"""Calibrated LiDAR-to-camera projection: which pixel of which image sees each LiDAR point.

A :class:`CameraCalib` maps LiDAR-frame points into one image: ``lidar_to_cam`` (4, 4)
takes homogeneous LiDAR points to the camera frame (OpenCV: z forward), ``K`` (3, 3)
projects them. KITTI's rectified camera 2 is ``K = P2[:, :3]`` with
``lidar_to_cam = R0_rect @ Tr_velo_to_cam`` plus P2's baseline offset folded in
(:func:`kitti_camera`); a nuScenes camera is ``cam2img`` and ``lidar2cam``
(:func:`nuscenes_cameras`).

:func:`point_pixels` gives, per point, the pixel it projects to (-1 when behind the
camera, outside the image, or hidden: with ``occlusion_px`` > 0 a point is kept only when
it is within a depth tolerance of the nearest point projecting into its pixel
neighbourhood, which removes points seen through foreground objects because LiDAR and
camera sit apart).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from crossdistill.errors import InputError

__all__ = ["CameraCalib", "point_pixels", "kitti_camera", "nuscenes_cameras"]


@dataclass(frozen=True)
class CameraCalib:
    """One calibrated camera.

    Attributes:
        K: (3, 3) float64 intrinsics.
        lidar_to_cam: (4, 4) float64 extrinsics (LiDAR frame -> camera frame, z forward).
        width, height: image size in pixels.
        name: e.g. "image_2" or "CAM_FRONT".
    """

    K: np.ndarray
    lidar_to_cam: np.ndarray
    width: int
    height: int
    name: str = ""

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """((N, 2) float64 pixel (x, y), pixel centres at +0.5; (N,) float64 camera depth) of (N, >=3) points."""
        p = np.asarray(points, np.float64)[:, :3]
        cam = p @ self.lidar_to_cam[:3, :3].T + self.lidar_to_cam[:3, 3]
        z = cam[:, 2]
        safe = np.where(np.abs(z) > 1e-9, z, 1e-9)
        uvw = cam @ self.K.T
        return uvw[:, :2] / safe[:, None], z


def point_pixels(points: np.ndarray, camera: CameraCalib, min_depth: float = 1.0, occlusion_px: int = 2,
                 depth_tol: float = 0.1) -> np.ndarray:
    """(N,) int64 flat pixel index ``y * W + x`` each point projects to, -1 where it is not seen.

    Args:
        points: (N, >=3) LiDAR-frame points.
        camera: the camera.
        min_depth: points closer than this (metres) in front of the camera are dropped.
        occlusion_px: half-size of the neighbourhood of the depth test (0 disables it).
        depth_tol: relative depth margin: a point further than ``(1 + depth_tol)`` times the
            nearest depth of its neighbourhood is hidden.

    Example:
        >>> cam = CameraCalib(np.array([[10., 0, 5], [0, 10, 5], [0, 0, 1]]), np.eye(4), 10, 10)
        >>> point_pixels(np.array([[0., 0, 2], [0, 0, 4], [0, 0, -2]]), cam, occlusion_px=1).tolist()
        [55, -1, -1]
    """
    uv, z = camera.project(points)
    W, H = camera.width, camera.height
    x, y = np.floor(uv[:, 0]).astype(np.int64), np.floor(uv[:, 1]).astype(np.int64)
    ok = (z >= min_depth) & (x >= 0) & (x < W) & (y >= 0) & (y < H)
    out = np.full(len(z), -1, np.int64)
    flat = y * W + x
    out[ok] = flat[ok]
    if occlusion_px > 0 and ok.any():
        nearest = np.full(H * W, np.inf)
        np.minimum.at(nearest, flat[ok], z[ok])
        nearest = ndimage.minimum_filter(nearest.reshape(H, W), size=2 * occlusion_px + 1, mode="constant",
                                         cval=np.inf).ravel()
        hidden = ok & (z > (1.0 + depth_tol) * nearest[np.where(ok, flat, 0)])
        out[hidden] = -1
    return out


def kitti_camera(calib: Mapping[str, np.ndarray], width: int, height: int, camera: str = "P2") -> CameraCalib:
    """The rectified KITTI camera ``P2`` (left colour) of an object-benchmark calibration.

    ``P = K [I | t]`` with t the stereo baseline offset; it is folded into ``lidar_to_cam``.
    """
    try:
        P, R0, Tr = calib[camera], calib["R0_rect"], calib["Tr_velo_to_cam"]
    except KeyError as exc:
        raise InputError(f"kitti calibration lacks {exc.args[0]}") from None
    K = P[:, :3].astype(np.float64)
    try:
        t = np.linalg.solve(K, P[:, 3])
    except np.linalg.LinAlgError:
        raise InputError(f"kitti calibration: {camera} is singular (all zero or degenerate)") from None
    r0, tr, off = np.eye(4), np.eye(4), np.eye(4)
    r0[:3, :3] = R0
    tr[:3, :4] = Tr
    off[:3, 3] = t
    return CameraCalib(K, off @ r0 @ tr, int(width), int(height), "image_2" if camera == "P2" else camera)


def nuscenes_cameras(cameras: Mapping[str, Mapping], sizes: Mapping[str, tuple[int, int]]) -> list[CameraCalib]:
    """nuScenes cameras (``cam2img``, ``lidar2cam`` per name, as the nuScenes loader returns) with (H, W) sizes."""
    out = []
    for name in sorted(cameras):
        c = cameras[name]
        K = np.asarray(c["cam2img"], np.float64)[:3, :3]
        H, W = sizes[name]
        out.append(CameraCalib(K, np.asarray(c["lidar2cam"], np.float64), int(W), int(H), name))
    return out
