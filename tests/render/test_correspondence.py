import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from crossdistill.render import build_correspondence, render_shape
from crossdistill.render.cameras import axis_rig, orbit_rig, sampart3d_rig
from crossdistill.render.correspondence import sample_spacing
from crossdistill.render.raycast import view_rays

from .conftest import box_in_box, cup, icosphere, point_cloud, sample, samples_of_cloud, to_shape


def _round_trip(res):
    """Fractions of visible (view, point) pairs whose pixel maps back to the point itself,
    to a point within one mean spacing of it, and within two (misses are grazing views,
    where one pixel stretches over several spacings of the surface)."""
    c = res.correspondence
    pts = res.samples.points
    spacing = sample_spacing(pts)
    v, j = np.nonzero(c.visible)
    back = c.pix_to_point.reshape(len(c.pix_to_point), -1)[v, c.point_to_pix[v, j]]
    same = back == j
    dist = np.where(back >= 0, np.linalg.norm(pts[np.maximum(back, 0)] - pts[j], axis=1), np.inf)
    assert (dist <= 2 * spacing).mean() > 0.995
    return same.mean(), (dist <= spacing).mean(), len(j)


def _robustly_occluded(mesh, res, view, margin=0.03):
    """Points whose ray, and the rays 1.5 pixels beside it, are blocked > margin before them."""
    from .conftest import occluded_by_ray

    cams = res.views.cameras
    pts = res.samples.points
    centre = cams.centers[view]
    R = cams.world_to_cam[view, :3, :3]
    z = (pts - centre) @ R[2]
    fp = z / cams.K[view, 0, 0]
    blocked = occluded_by_ray(mesh, centre, pts, margin)
    for axis in (0, 1):
        for s in (-1.5, 1.5):
            blocked &= occluded_by_ray(mesh, centre, pts + s * fp[:, None] * R[axis][None, :], margin)
    return blocked


def _clearly_visible(mesh, res, view, margin=0.01):
    """Points not blocked (nor 1.5 px beside) and facing the camera at < 60 degrees."""
    from .conftest import occluded_by_ray

    cams = res.views.cameras
    pts, nrm = res.samples.points, res.samples.normals
    centre = cams.centers[view]
    R = cams.world_to_cam[view, :3, :3]
    fp = ((pts - centre) @ R[2]) / cams.K[view, 0, 0]
    free = ~occluded_by_ray(mesh, centre, pts, margin)
    for axis in (0, 1):
        for s in (-1.5, 1.5):
            free &= ~occluded_by_ray(mesh, centre, pts + s * fp[:, None] * R[axis][None, :], margin)
    to_cam = centre - pts
    cos = np.abs(np.einsum("ij,ij->i", nrm, to_cam)) / np.linalg.norm(to_cam, axis=1)
    return free & (cos > 0.5)


def test_round_trip_icosphere(sphere_mesh):
    res = render_shape(to_shape(sphere_mesh), axis_rig(256), sample(sphere_mesh, 2000), progress=False)
    same, near, n = _round_trip(res)
    assert n > 2000  # every point is seen by some view
    assert same > 0.7 and near > 0.99
    # every point of a sphere is visible in at least one axis view
    assert res.correspondence.visible.any(0).mean() > 0.99


def test_round_trip_and_occlusion_cup():
    mesh = cup()
    rig = orbit_rig((-60.0, 0.0, 50.0, 90.0), 4, 256)
    res = render_shape(to_shape(mesh), rig, sample(mesh, 4000, seed=1), progress=False)
    same, near, _ = _round_trip(res)
    assert same > 0.85 and near > 0.96
    vis = res.correspondence.visible
    for view in range(len(rig)):
        occl = _robustly_occluded(mesh, res, view)
        assert occl.sum() > 100
        assert not np.any(vis[view] & occl), rig.names[view]
        clear = _clearly_visible(mesh, res, view)
        assert vis[view][clear].mean() > 0.95, rig.names[view]
    # inside of the cup: seen from the top, never from the side at elevation 0
    inner = np.linalg.norm(res.samples.points[:, [0, 2]], axis=1) < 0.36
    inner &= res.samples.points[:, 1] > -0.3
    side = [i for i, n in enumerate(rig.names) if "el0-" in n]
    top = rig.names.index("orbit-el90-az0")
    assert not vis[side][:, inner].any()
    assert vis[top][inner].mean() > 0.2


def test_closed_box_hides_inner_box():
    mesh, first_inner = box_in_box()
    samples = sample(mesh, 4000, seed=2)
    inner = samples.face_id >= first_inner
    assert inner.sum() > 50
    res = render_shape(to_shape(mesh), sampart3d_rig(14, 64, seed=0), samples, progress=False)
    assert not res.correspondence.visible[:, inner].any()
    assert res.correspondence.visible[:, ~inner].any(0).mean() > 0.95


def _box_behind_box():
    big = trimesh.creation.box(extents=[0.8, 0.8, 0.2])
    big.apply_translation([0, 0, 0.3])
    small = trimesh.creation.box(extents=[0.2, 0.2, 0.2])
    small.apply_translation([0, 0, -0.3])
    return trimesh.util.concatenate([big, small]), len(big.faces)


def test_small_box_behind_big_box_mesh():
    mesh, first_small = _box_behind_box()
    samples = sample(mesh, 4000, seed=3)
    small = samples.face_id >= first_small
    cams = axis_rig(96)
    res = render_shape(to_shape(mesh), cams, samples, progress=False)
    vis = res.correspondence.visible
    front, back = cams.names.index("axis+z"), cams.names.index("axis-z")
    assert not vis[front, small].any()
    assert vis[back, small].mean() > 0.1


def test_pix_to_point_is_nearest_visible_point(sphere_mesh):
    box = trimesh.creation.box(extents=[0.3, 0.3, 0.3])
    box.apply_translation([0.0, 0.1, 0.55])
    mesh = trimesh.util.concatenate([sphere_mesh, box])
    cams = sampart3d_rig(8, 96, seed=4)
    res = render_shape(to_shape(mesh), cams, sample(mesh, 2500), progress=False)
    c = res.correspondence
    radius = res.meta["radius"]
    pts = res.samples.points
    for v in range(len(cams)):
        fg = np.flatnonzero(res.views.depth[v].reshape(-1) < np.inf)
        o, dirs = view_rays(cams, v)
        hit = o + dirs[fg].astype(np.float64) * res.views.depth[v].reshape(-1)[fg, None]
        vis = np.flatnonzero(c.visible[v])
        d, i = cKDTree(pts[vis]).query(hit, distance_upper_bound=radius)
        expect = np.where(np.isfinite(d), vis[np.minimum(i, len(vis) - 1)], -1)
        got = c.pix_to_point[v].reshape(-1)[fg]
        assert np.mean(got == expect) > 0.999
        # where they differ it is a float tie: same distance
        diff = np.flatnonzero(got != expect)
        if len(diff):
            dg = np.linalg.norm(pts[got[diff]] - hit[diff], axis=1)
            assert np.allclose(dg, d[diff], atol=1e-5)
        assert np.all(c.pix_to_point[v].reshape(-1)[res.views.depth[v].reshape(-1) == np.inf] == -1)
        # every pixel -> point is a point visible in that view
        p = c.pix_to_point[v][c.pix_to_point[v] >= 0]
        assert c.visible[v, p].all()


def test_radius_limits_pix_to_point(sphere_mesh):
    samples = sample(sphere_mesh, 300)
    res = render_shape(to_shape(sphere_mesh), axis_rig(64), samples, progress=False, radius=1e-3)
    c = res.correspondence
    fg = res.views.foreground
    assert (c.pix_to_point[fg] >= 0).mean() < 0.1
    res = render_shape(to_shape(sphere_mesh), axis_rig(64), samples, progress=False)
    assert (res.correspondence.pix_to_point[fg] >= 0).mean() > 0.98


def test_build_correspondence_matches_render(sphere_mesh):
    samples = sample(sphere_mesh, 1000)
    res = render_shape(to_shape(sphere_mesh), axis_rig(48), samples, progress=False)
    again = build_correspondence(samples, res.views)
    assert np.array_equal(again.point_to_pix, res.correspondence.point_to_pix)
    assert np.array_equal(again.pix_to_point, res.correspondence.pix_to_point)
    assert np.allclose(again.point_depth, res.correspondence.point_depth)


# ------------------------------------------------------------------ point clouds


def test_splat_round_trip_sphere():
    mesh = icosphere(4)
    cloud = point_cloud(mesh, 3000)
    res = render_shape(cloud, axis_rig(256), samples_of_cloud(cloud), progress=False)
    assert res.views.is_point_cloud and res.meta["backend"] == "splat"
    fg = res.views.foreground
    # splats close the surface: the sphere's silhouette is (nearly) filled
    mesh_fg = render_shape(to_shape(mesh), axis_rig(256), samples_of_cloud(cloud), progress=False).views.foreground
    assert (fg & mesh_fg).sum() / mesh_fg.sum() > 0.97
    same, near, n = _round_trip(res)
    assert same > 0.8 and near > 0.95
    assert res.correspondence.visible.any(0).mean() > 0.98
    # face_id holds the index of the splatted point
    assert res.views.face_id.max() < cloud.n_vertices


def test_splat_occlusion():
    mesh, first_inner = box_in_box()
    s = sample(mesh, 6000, seed=5)
    cloud = point_cloud(mesh, 6000, seed=5)
    inner = s.face_id >= first_inner
    res = render_shape(cloud, sampart3d_rig(10, 64, seed=1), samples_of_cloud(cloud), progress=False)
    assert not res.correspondence.visible[:, inner].any()
    assert res.correspondence.visible[:, ~inner].any(0).mean() > 0.9

    mesh, first_small = _box_behind_box()
    s = sample(mesh, 5000, seed=6)
    cloud = point_cloud(mesh, 5000, seed=6)
    small = s.face_id >= first_small
    cams = axis_rig(96)
    res = render_shape(cloud, cams, samples_of_cloud(cloud), progress=False)
    vis = res.correspondence.visible
    assert not vis[cams.names.index("axis+z"), small].any()
    assert vis[cams.names.index("axis-z"), small].mean() > 0.1


def test_splat_plane_depth_is_analytic():
    # a dense planar grid tilted by 30 degrees: splat depth follows the tangent plane
    g = np.linspace(-0.4, 0.4, 81)
    xx, yy = np.meshgrid(g, g)
    pts = np.stack([xx.ravel(), yy.ravel(), np.zeros(xx.size)], 1)
    rot = trimesh.transformations.rotation_matrix(np.radians(30), [1, 0, 0])[:3, :3]
    pts = pts @ rot.T
    n = np.tile(rot[:, 2], (len(pts), 1))
    from crossdistill.types import Shape

    cloud = Shape(vertices=pts, vertex_normals=n)
    cams = axis_rig(64)
    v = cams.names.index("axis+z")
    res = render_shape(cloud, cams.subset([v]), samples_of_cloud(cloud), progress=False)
    fg = res.views.foreground[0]
    o, dirs = view_rays(cams, v)
    t = -(rot[:, 2] @ o) / (dirs.astype(np.float64) @ rot[:, 2])
    assert fg.mean() > 0.2
    assert np.allclose(res.views.depth[0][fg], t.reshape(64, 64)[fg], rtol=1e-4, atol=1e-4)
