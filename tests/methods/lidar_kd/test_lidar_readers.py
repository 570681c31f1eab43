"""Lazy frame sources: SemanticKITTI and nuScenes-lidarseg fixtures in the real layouts, the shared samples."""

from __future__ import annotations

import numpy as np
import pytest
from lidar_fixtures import CAMERAS, NU_HW, P2, TR, write_nuscenes_lidarseg, write_semantic_kitti
from scipy.spatial.transform import Rotation

from crossdistill.errors import InputError
from crossdistill.methods.lidar_kd.datasets import open_source, split_ids
from crossdistill.methods.lidar_kd.datasets.kitti import SemanticKittiSource
from crossdistill.methods.lidar_kd.datasets.nuscenes import NuScenesLidarsegSource, quaternion_matrix
from crossdistill.render.lidar import point_pixels


def test_semantic_kitti_frames_labels_and_camera(tmp_path):
    root = write_semantic_kitti(tmp_path)
    src = open_source(tmp_path)  # the release's parent folder is recognised too
    assert isinstance(src, SemanticKittiSource)
    assert src.ids == ["00/000000", "00/000001", "01/000000", "01/000001"]
    assert src.groups == ["00", "00", "01", "01"]
    f = src.load("01/000001")
    raw = np.fromfile(root / "sequences/01/labels/000001.label", "<u4") & 0xFFFF
    names = f.class_names
    assert f.labels[raw == 40].tolist() == [names.index("road")] * int((raw == 40).sum())
    assert (f.labels[np.isin(raw, (10, 252))] == names.index("car")).all()  # moving-car is car
    assert (f.labels[raw == 1] == -1).all() and not (f.labels == 0).any()  # outliers ignored, "unlabeled" never GT
    (cam,) = f.images
    assert cam.image.shape == (30, 80, 3)
    # the camera maps a point exactly as P2 @ Tr does
    p = f.points[:, :3].astype(np.float64)
    uvw = np.c_[np.c_[p, np.ones(len(p))] @ TR.T, np.ones(len(p))] @ P2.T
    uv, z = cam.camera.project(p)
    front = uvw[:, 2] > 1
    np.testing.assert_allclose(uv[front], uvw[front, :2] / uvw[front, 2:], atol=1e-6)
    assert (point_pixels(f.points, cam.camera, occlusion_px=0) >= 0).sum() > 20


def test_semantic_kitti_without_labels_and_bad_calibration(tmp_path):
    root = write_semantic_kitti(tmp_path, sequences=("11",), frames=1, labels=False)
    assert open_source(root).load("11/000000").labels is None
    (root / "sequences/11/calib.txt").write_text("P2: 1 2 3\n")
    with pytest.raises(InputError, match="P2 is not 12 numbers"):
        open_source(root).load("11/000000")


def test_nuscenes_lidarseg_six_cameras_chain_and_labels(tmp_path):
    root = write_nuscenes_lidarseg(tmp_path)
    src = open_source(root)
    assert isinstance(src, NuScenesLidarsegSource) and src.ids == ["lid0", "lid1", "lid2"]
    f = src.load("lid2")
    assert [c.camera.name for c in f.images] == sorted(CAMERAS)
    assert all(c.image.shape == (*NU_HW, 3) for c in f.images)
    seg = np.fromfile(root / "lidarseg/v1.0-mini/lid2_lidarseg.bin", np.uint8)
    assert (f.labels[seg == 17] == f.class_names.index("car")).all()
    assert (f.labels[seg == 24] == f.class_names.index("driveable_surface")).all()
    assert (f.labels[seg == 0] == -1).all()
    # independent chain with scipy's quaternions: LiDAR -> ego(t_lidar) -> global -> ego(t_cam) -> camera
    import json

    tab = {n: {r["token"]: r for r in json.loads((root / f"v1.0-mini/{n}.json").read_text())}
           for n in ("calibrated_sensor", "ego_pose")}

    def R(q):
        return Rotation.from_quat([q[1], q[2], q[3], q[0]]).as_matrix()

    p = f.points[:, :3].astype(np.float64)
    cs, ep = tab["calibrated_sensor"]["cs_lidar"], tab["ego_pose"]["ep_l2"]
    g = (p @ R(cs["rotation"]).T + cs["translation"]) @ R(ep["rotation"]).T + ep["translation"]
    for j, c in enumerate(CAMERAS):
        ccs, cep = tab["calibrated_sensor"][f"cs_{c}"], tab["ego_pose"][f"ep_{c}2"]
        e = (g - cep["translation"]) @ R(cep["rotation"])
        cam_pts = (e - ccs["translation"]) @ R(ccs["rotation"])
        cam = next(ci.camera for ci in f.images if ci.camera.name == c)
        uv, z = cam.project(p)
        np.testing.assert_allclose(z, cam_pts[:, 2], atol=1e-9)
        ok = z > 0.5
        np.testing.assert_allclose(uv[ok], (cam_pts[ok] @ np.asarray(ccs["camera_intrinsic"]).T)[:, :2]
                                   / cam_pts[ok, 2:], atol=1e-6)
    # the car ahead (8-10 m along the LiDAR's x, which the LiDAR mount turns to the ego's right) is seen
    seen = {c.camera.name: int((point_pixels(f.points, c.camera, occlusion_px=0) >= 0).sum()) for c in f.images}
    assert sum(seen.values()) > 50


def test_quaternion_matrix_matches_scipy():
    q = np.array([0.3, -0.5, 0.2, 0.7])
    w, x, y, z = q / np.linalg.norm(q)
    np.testing.assert_allclose(quaternion_matrix(q), Rotation.from_quat([x, y, z, w]).as_matrix(), atol=1e-12)


def test_split_ids_whole_groups_and_time_order():
    ids = [f"{s}/{i}" for s in ("00", "01", "02", "03") for i in range(3)]
    groups = [i.split("/")[0] for i in ids]
    train, test = split_ids(ids, 0.25, seed=1, groups=groups)
    assert sorted(train + test) == sorted(ids) and not set(train) & set(test)
    assert len({i.split("/")[0] for i in test}) == 1 and not {i.split("/")[0] for i in test} & {i.split("/")[0] for i in train}
    assert split_ids(["a", "b", "c", "d"], 0.5) == (["a", "b"], ["c", "d"])
    with pytest.raises(InputError):
        split_ids(["a"], 0.5)


def test_unknown_folder_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="not a LiDAR dataset folder"):
        open_source(tmp_path)


@pytest.mark.shared_data
def test_shared_kitti_and_nuscenes_samples_stream_as_before(shared_data):
    from crossdistill.methods.lidar_kd.frames import kitti_frames, nuscenes_frames

    for sub, eager in (("kitti_sample", kitti_frames), ("nuscenes_sample", nuscenes_frames)):
        src = open_source(shared_data / sub)
        before = eager(shared_data / sub)
        assert src.ids == [f.name for f in before]
        f = src.load(src.ids[-1])
        np.testing.assert_array_equal(f.points, before[-1].points)
        np.testing.assert_array_equal(f.labels, before[-1].labels)
        assert [c.camera.name for c in f.images] == [c.camera.name for c in before[-1].images]
