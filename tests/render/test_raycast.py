import numpy as np
import pytest
import trimesh

from crossdistill.errors import InputError
from crossdistill.render.cameras import axis_rig, cameras_from_matrices, intrinsics, look_at, random_rig
from crossdistill.render.raycast import EmbreeRaycaster, Open3DRaycaster, TorchZBuffer, make_raycaster, view_rays
from crossdistill.types import Shape

from .conftest import icosphere, to_shape


def _plane(tilt_deg: float = 0.0) -> trimesh.Trimesh:
    """Square in the z = 0 plane (side 1), rotated by ``tilt_deg`` about the x axis."""
    m = trimesh.creation.box(extents=[1.0, 1.0, 1e-9])
    m = trimesh.Trimesh(m.vertices * [1, 1, 0], m.faces)  # flatten to a (double-sided) square
    m.apply_transform(trimesh.transformations.rotation_matrix(np.radians(tilt_deg), [1, 0, 0]))
    return m


def _front_camera(distance: float, size: int = 48):
    w2c = look_at(np.array([[0.0, 0.0, distance]]))
    return cameras_from_matrices(intrinsics(30.0, size, size), w2c, size, size)


@pytest.mark.parametrize("backend", ["embree", "torch"])
@pytest.mark.parametrize("tilt", [0.0, 35.0])
def test_plane_depth_is_analytic(backend, tilt):
    d = 2.0
    cams = _front_camera(d)
    hits = make_raycaster(to_shape(_plane(tilt)), backend).cast_view(cams, 0)
    fg = hits.face_id >= 0
    assert fg.mean() > 0.2
    # ray o + t * dir (camera z of dir = 1) meets the plane n . x = 0 at t = -n.o / n.dir
    n = np.array([0.0, -np.sin(np.radians(tilt)), np.cos(np.radians(tilt))])
    o, dirs = view_rays(cams, 0)
    t = -(n @ o) / (dirs.astype(np.float64) @ n)
    assert np.allclose(hits.depth[fg], t.reshape(fg.shape)[fg], rtol=1e-5, atol=1e-5)
    assert np.all(np.isinf(hits.depth[~fg]))
    if tilt == 0.0:
        assert np.allclose(hits.depth[fg], d)


def test_barycentrics_reconstruct_the_hit(sphere_mesh):
    shape = to_shape(sphere_mesh)
    cams = axis_rig(40)
    hits = EmbreeRaycaster(shape).cast_view(cams, 1)
    fg = hits.face_id >= 0
    tri = shape.triangles[hits.face_id[fg]]
    b = hits.barycentric[fg].astype(np.float64)
    assert np.allclose(b.sum(1), 1.0, atol=1e-5) and b.min() > -1e-5
    x = np.einsum("nk,nkj->nj", b, tri)
    o, dirs = view_rays(cams, 1)
    expect = o + dirs.reshape(40, 40, 3)[fg] * hits.depth[fg][:, None]
    assert np.allclose(x, expect, atol=1e-5)
    assert np.all(hits.barycentric[~fg] == 0)


def _agreement(a, b):
    fg = (a.face_id >= 0) | (b.face_id >= 0)
    return float(np.mean(a.face_id[fg] == b.face_id[fg]))


def test_torch_zbuffer_matches_embree(sphere_mesh):
    # a closed sphere plus a box in front of part of it: occlusion between objects too
    box = trimesh.creation.box(extents=[0.2, 0.2, 0.2])
    box.apply_translation([0.1, 0.0, 0.6])
    shape = to_shape(trimesh.util.concatenate([sphere_mesh, box]))
    cams = random_rig(4, 96, seed=1)
    emb, tz = EmbreeRaycaster(shape), TorchZBuffer(shape, chunk=1 << 14)  # small chunks: chunking path
    for i in range(len(cams)):
        a, b = emb.cast_view(cams, i), tz.cast_view(cams, i)
        assert _agreement(a, b) > 0.99
        both = (a.face_id >= 0) & (a.face_id == b.face_id)
        assert np.allclose(a.depth[both], b.depth[both], rtol=1e-4)
        assert np.allclose(a.uv[both], b.uv[both], atol=2e-3)


def test_open3d_matches_embree(sphere_mesh):
    pytest.importorskip("open3d", exc_type=ImportError)
    shape = to_shape(sphere_mesh)
    cams = axis_rig(64)
    emb, o3 = EmbreeRaycaster(shape), Open3DRaycaster(shape)
    for i in (0, 3):
        a, b = emb.cast_view(cams, i), o3.cast_view(cams, i)
        assert _agreement(a, b) > 0.99
        both = (a.face_id >= 0) & (a.face_id == b.face_id)
        assert np.allclose(a.depth[both], b.depth[both], rtol=1e-5)


def test_torch_needs_mesh_in_front():
    shape = to_shape(icosphere(1))
    cams = cameras_from_matrices(intrinsics(60.0, 16, 16), look_at(np.array([[0.0, 0.0, 0.2]])), 16, 16)
    with pytest.raises(InputError):
        TorchZBuffer(shape).cast_view(cams, 0)
    # Embree handles a camera inside the shape
    assert (EmbreeRaycaster(shape).cast_view(cams, 0).face_id >= 0).all()


def test_bad_inputs():
    with pytest.raises(InputError):
        EmbreeRaycaster(Shape(vertices=np.zeros((3, 3))))
    with pytest.raises(InputError):
        make_raycaster(to_shape(icosphere(1)), "nope")
    with pytest.raises(InputError):
        EmbreeRaycaster(Shape(vertices=np.zeros((3, 3)), faces=np.array([[0, 1, 5]])))


@pytest.mark.gpu
def test_torch_zbuffer_on_cuda_matches_embree(sphere_mesh):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    shape = to_shape(sphere_mesh)
    cams = random_rig(3, 128, seed=0)
    emb, tz = EmbreeRaycaster(shape), TorchZBuffer(shape, device="cuda")
    for i in range(len(cams)):
        a, b = emb.cast_view(cams, i), tz.cast_view(cams, i)
        assert _agreement(a, b) > 0.99
