import numpy as np
import pytest
import trimesh

from crossdistill.errors import InputError
from crossdistill.render import render_shape
from crossdistill.render.cameras import axis_rig, random_rig
from crossdistill.render.raycast import view_rays
from crossdistill.types import Shape

from .conftest import icosphere, point_cloud, sample, samples_of_cloud, to_shape


def test_buffers_dtypes_and_semantics(sphere_mesh):
    cams = random_rig(3, 48, seed=0)
    samples = sample(sphere_mesh, 800)
    res = render_shape(to_shape(sphere_mesh), cams, samples, progress=False)
    v, c = res.views, res.correspondence
    assert v.face_id.shape == (3, 48, 48) and v.face_id.dtype == np.int32
    assert v.depth.dtype == np.float32 and v.normal.shape == (3, 48, 48, 3) and v.normal.dtype == np.float32
    assert v.rgb.dtype == np.uint8 and v.rgb.shape == (3, 48, 48, 3)
    assert c.pix_to_point.dtype == np.int32 and c.point_to_pix.shape == (3, 800) and c.point_to_pix.dtype == np.int32
    assert c.point_depth.dtype == np.float32
    fg = v.foreground
    assert 0.2 < fg.mean() < 0.9
    assert np.all(v.rgb[~fg] == 255) and np.all(v.normal[~fg] == 0) and np.all(np.isinf(v.depth[~fg]))
    assert np.allclose(np.linalg.norm(v.normal[fg], axis=-1), 1.0, atol=1e-5)
    for i in range(3):  # normals face the camera
        _, dirs = view_rays(cams, i)
        dots = np.einsum("pk,pk->p", v.normal[i].reshape(-1, 3), dirs)
        assert np.all(dots[fg[i].reshape(-1)] <= 1e-6)
    # headlight: the centre of the sphere (facing the camera) is the brightest grey
    grey = v.rgb[0, 24, 24]
    assert grey[0] == grey[1] == grey[2] and grey[0] >= v.rgb[0][fg[0]].max() - 2
    # point_depth is the camera z of every point, visible or not
    _, z = cams.project(samples.points)
    assert np.allclose(c.point_depth, z, rtol=1e-5)
    assert res.meta["backend"] == "embree" and res.meta["radius"] > 0


def test_face_and_vertex_colours():
    m = trimesh.creation.box(extents=[0.8, 0.8, 0.8])
    fc = np.zeros((len(m.faces), 3), np.uint8)
    fc[:, 0] = 200
    res = render_shape(to_shape(m, face_colors=fc), axis_rig(32), sample(m, 200), progress=False)
    rgb = res.views.rgb[res.views.foreground]
    assert np.all(rgb[:, 1:] == 0) and rgb[:, 0].max() == 200  # axis views: faces face the camera
    vc = np.zeros((len(m.vertices), 3), np.uint8)
    vc[m.vertices[:, 1] > 0] = 250  # top vertices white, bottom black: a vertical gradient on the sides
    shape = Shape(vertices=m.vertices, faces=m.faces, vertex_colors=vc)
    res = render_shape(shape, axis_rig(32), sample(m, 200), progress=False)
    side = res.views.rgb[4, :, 16, 0].astype(int)  # +z view, middle column, top to bottom
    fgcol = res.views.foreground[4, :, 16]
    assert np.all(np.diff(side[fgcol]) <= 0) and side[fgcol][0] > side[fgcol][-1] + 150


@pytest.mark.parametrize("backend", ["torch", "open3d"])
def test_other_backends_through_render_shape(sphere_mesh, backend):
    if backend == "open3d":
        pytest.importorskip("open3d", exc_type=ImportError)
    cams = axis_rig(48)
    samples = sample(sphere_mesh, 600)
    ref = render_shape(to_shape(sphere_mesh), cams, samples, progress=False)
    res = render_shape(to_shape(sphere_mesh), cams, samples, backend=backend, device="cpu", progress=False)
    assert res.meta["backend"] == backend
    fg = ref.views.foreground | res.views.foreground
    assert np.mean(ref.views.face_id[fg] == res.views.face_id[fg]) > 0.99
    assert np.mean(ref.correspondence.point_to_pix == res.correspondence.point_to_pix) > 0.99


def test_threads_give_identical_results(sphere_mesh):
    cams = random_rig(4, 40, seed=2)
    samples = sample(sphere_mesh, 500)
    a = render_shape(to_shape(sphere_mesh), cams, samples, progress=False, threads=1)
    b = render_shape(to_shape(sphere_mesh), cams, samples, progress=False, threads=2)
    for x, y in ((a.views.face_id, b.views.face_id), (a.views.rgb, b.views.rgb),
                 (a.correspondence.pix_to_point, b.correspondence.pix_to_point),
                 (a.correspondence.point_to_pix, b.correspondence.point_to_pix)):
        assert np.array_equal(x, y)


def test_default_samples_and_progress(sphere_mesh, capsys):
    pytest.importorskip("crossdistill.geometry.sampling")
    res = render_shape(to_shape(sphere_mesh), axis_rig(24), n_samples=300, seed=1, progress=True)
    assert len(res.samples) == 300 and res.meta["seed"] == 1
    assert "render" in capsys.readouterr().err


def test_point_cloud_without_normals():
    cloud = point_cloud(icosphere(3), 1500)
    bare = Shape(vertices=cloud.vertices)
    res = render_shape(bare, axis_rig(48), samples_of_cloud(cloud), progress=False)
    assert res.views.is_point_cloud and res.views.foreground.mean() > 0.3
    assert res.correspondence.visible.any(0).mean() > 0.95


def test_bad_inputs(sphere_mesh):
    cloud = point_cloud(sphere_mesh, 300)
    with pytest.raises(InputError):
        render_shape(cloud, axis_rig(16), samples_of_cloud(cloud), backend="embree", progress=False)
    with pytest.raises(InputError):
        render_shape(to_shape(sphere_mesh), axis_rig(16), sample(sphere_mesh, 10), backend="nope", progress=False)
    with pytest.raises(InputError):
        render_shape(to_shape(sphere_mesh), axis_rig(16).subset([]), sample(sphere_mesh, 10), progress=False)
