"""Calibrated LiDAR-to-camera projection."""

from __future__ import annotations

import numpy as np

from crossdistill.render.lidar import CameraCalib, kitti_camera, point_pixels


def _camera() -> CameraCalib:
    K = np.array([[100.0, 0, 50], [0, 100.0, 40], [0, 0, 1]])
    # LiDAR x forward, y left, z up -> camera x right, y down, z forward
    to_cam = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)
    return CameraCalib(K, to_cam, 100, 80)


def test_points_land_on_the_hand_computed_pixels():
    cam = _camera()
    pts = np.array([[10.0, 0, 0], [10.0, 1.0, 0.5], [-5.0, 0, 0], [10.0, -20, 0]])
    pix = point_pixels(pts, cam, occlusion_px=0)
    # (10, 0, 0): camera (0, 0, 10) -> (50, 40); (10, 1, 0.5): camera (-1, -0.5, 10) -> (40, 35)
    assert pix.tolist() == [40 * 100 + 50, 35 * 100 + 40, -1, -1]  # behind, outside


def test_hidden_points_are_dropped():
    cam = _camera()
    wall = np.array([[10.0, y, z] for y in np.linspace(-0.3, 0.3, 7) for z in np.linspace(-0.3, 0.3, 7)])
    behind = np.array([[20.0, 0.0, 0.0]])
    pix = point_pixels(np.concatenate([wall, behind]), cam, occlusion_px=2)
    assert (pix[:-1] >= 0).all() and pix[-1] == -1
    assert point_pixels(np.concatenate([wall, behind]), cam, occlusion_px=0)[-1] >= 0


def test_kitti_camera_matches_the_calibration_chain():
    rng = np.random.default_rng(0)
    R0 = np.eye(3) + 0.01 * rng.normal(size=(3, 3))
    Tr = np.array([[0, -1, 0, 0.1], [0, 0, -1, -0.05], [1, 0, 0, -0.3]], float)
    P2 = np.array([[700.0, 0, 600, 45.0], [0, 700.0, 180, -0.3], [0, 0, 1, 0.005]])
    cam = kitti_camera({"P2": P2, "R0_rect": R0, "Tr_velo_to_cam": Tr}, 1242, 375)
    pts = np.c_[rng.uniform(5, 40, 50), rng.uniform(-10, 10, 50), rng.uniform(-2, 1, 50)]
    r0 = np.eye(4)
    r0[:3, :3] = R0
    tr = np.eye(4)
    tr[:3] = Tr
    h = (P2 @ r0 @ tr @ np.c_[pts, np.ones(50)].T).T
    uv_ref = h[:, :2] / h[:, 2:]
    uv, z = cam.project(pts)
    assert np.allclose(uv, uv_ref, atol=1e-6) and (z > 0).all()


def test_real_kitti_box_points_fall_in_their_2d_box(shared_data):
    from crossdistill.methods.lidar_kd.frames import kitti_frames

    frame = kitti_frames(shared_data / "kitti_sample", ids=["000003"])[0]
    cam = frame.images[0]
    car = np.nonzero(frame.labels == 1)[0]
    uv, _ = cam.camera.project(frame.points[car])
    x0, y0, x1, y1 = cam.boxes[cam.box_labels == 1][0]
    inside = (uv[:, 0] >= x0 - 5) & (uv[:, 0] <= x1 + 5) & (uv[:, 1] >= y0 - 5) & (uv[:, 1] <= y1 + 5)
    assert len(car) > 100 and inside.mean() > 0.95
