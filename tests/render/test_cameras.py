import numpy as np
import pytest

from crossdistill.errors import InputError
from crossdistill.render.cameras import (axis_rig, cameras_from_matrices, intrinsics, look_at, orbit_rig, random_rig,
                                         sampart3d_rig)

CORNERS = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])

RIGS = {
    "axis": lambda: axis_rig(96),
    "random": lambda: random_rig(20, 96, seed=3),
    "sampart3d": lambda: sampart3d_rig(36, 96, seed=0),
    "orbit": lambda: orbit_rig((-90.0, -30.0, 0.0, 45.0, 90.0), 10, (128, 96)),
}


@pytest.mark.parametrize("name", sorted(RIGS))
def test_rig_looks_at_origin_and_frames_unit_box(name):
    cams = RIGS[name]()
    R = cams.world_to_cam[:, :3, :3]
    assert np.allclose(R @ R.transpose(0, 2, 1), np.eye(3), atol=1e-9)
    assert np.allclose(np.linalg.det(R), 1.0)
    # camera z axis points at the origin and the origin projects to the image centre
    to_origin = -cams.centers / np.linalg.norm(cams.centers, axis=1, keepdims=True)
    assert np.allclose(R[:, 2], to_origin, atol=1e-9)
    uv, z = cams.project(np.zeros((1, 3)))
    assert np.allclose(uv[:, 0], [cams.width / 2, cams.height / 2])
    # every corner of the unit box is in front and inside the image, and the box fills it
    uv, z = cams.project(CORNERS)
    assert np.all(z > 0)
    assert np.all((uv[..., 0] >= 0) & (uv[..., 0] <= cams.width) & (uv[..., 1] >= 0) & (uv[..., 1] <= cams.height))
    span = np.maximum((uv[..., 0].max(1) - uv[..., 0].min(1)) / cams.width,
                      (uv[..., 1].max(1) - uv[..., 1].min(1)) / cams.height)
    assert np.all(span > 0.8)
    assert len(cams.names) == len(cams)


def test_rig_sizes_and_determinism():
    assert len(axis_rig(32)) == 6
    c = sampart3d_rig(36, 64, seed=5)
    assert len(c) == 36 and c.names[:6] == ("axis+x", "axis-x", "axis+y", "axis-y", "axis+z", "axis-z")
    assert np.array_equal(c.world_to_cam, sampart3d_rig(36, 64, seed=5).world_to_cam)
    assert not np.array_equal(c.world_to_cam, sampart3d_rig(36, 64, seed=6).world_to_cam)
    assert len(orbit_rig((20.0,), 10, 32)) == 10


def test_axis_views_direction_and_up():
    cams = axis_rig(64)
    R = cams.world_to_cam[:, :3, :3]
    expected_eye = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)
    c = cams.centers / np.linalg.norm(cams.centers, axis=1, keepdims=True)
    assert np.allclose(c, expected_eye, atol=1e-12)
    # side views: image "down" (camera +y) is world -y
    for i in (0, 1, 4, 5):
        assert np.allclose(R[i, 1], [0, -1, 0])
    # top / bottom views are well defined (no NaN) and orthonormal
    assert np.all(np.isfinite(R[2:4]))


def test_look_at_opencv_convention():
    w2c = look_at(np.array([[0.0, 0.0, 3.0]]))[0]
    # camera at +z looking at the origin: x right = world +x, y down = world -y
    assert np.allclose(w2c[:3, :3], np.diag([1.0, -1.0, -1.0]))
    p = w2c @ [0, 0, 0, 1]
    assert np.isclose(p[2], 3.0)
    # a point above the origin (world +y) appears in the upper half (camera y < 0)
    assert (w2c @ [0, 0.1, 0, 1])[1] < 0


def test_intrinsics():
    K = intrinsics(90.0, 200, 100)
    assert np.allclose(K, [[50, 0, 100], [0, 50, 50], [0, 0, 1]])
    with pytest.raises(InputError):
        intrinsics(0.0, 10, 10)


def test_cameras_from_matrices_validates():
    K = intrinsics(40.0, 64, 48)
    Rt = look_at(np.array([[0.0, 0.0, 3.0], [3.0, 0.0, 0.0]]))
    cams = cameras_from_matrices(K, Rt, 64, 48)
    assert cams.K.shape == (2, 3, 3) and cams.world_to_cam.shape == (2, 4, 4)
    cams34 = cameras_from_matrices(np.stack([K, K]), Rt[:, :3], 64, 48, names=["a", "b"])
    assert np.allclose(cams34.world_to_cam, Rt) and cams34.names == ("a", "b")
    with pytest.raises(InputError):
        cameras_from_matrices(K, Rt[:, :2], 64, 48)
    with pytest.raises(InputError):
        cameras_from_matrices(np.stack([K] * 3), Rt, 64, 48)
    bad = Rt.copy()
    bad[0, :3, :3] *= 2.0
    with pytest.raises(InputError):
        cameras_from_matrices(K, bad, 64, 48)
    badk = K.copy()
    badk[2, 2] = 2
    with pytest.raises(InputError):
        cameras_from_matrices(badk, Rt, 64, 48)
    nan = Rt.copy()
    nan[0, 0, 3] = np.nan
    with pytest.raises(InputError):
        cameras_from_matrices(K, nan, 64, 48)
    with pytest.raises(InputError):
        cameras_from_matrices(K, Rt, 0, 48)
