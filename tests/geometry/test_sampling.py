"""Surface sampling (area-uniform, consistent barycentrics), point clouds, normals, FPS."""

from __future__ import annotations

import time

import numpy as np
import pytest
import trimesh
from scipy import stats

from crossdistill.geometry.colors import GREY
from crossdistill.geometry.demo import demo_shape
from crossdistill.geometry.sampling import estimate_normals, farthest_point_sampling, sample_surface
from crossdistill.types import Shape


def _uneven_mesh() -> Shape:
    """Separate triangles whose areas span three orders of magnitude."""
    sizes = np.array([0.05, 0.1, 0.3, 0.5, 1.0, 1.5, 3.0])
    tris = []
    for i, s in enumerate(sizes):
        tris.append([[0, 0, i * 5.0], [s, 0, i * 5.0], [0, 2 * s, i * 5.0]])
    v = np.array(tris, dtype=float).reshape(-1, 3)
    return Shape(vertices=v, faces=np.arange(len(v)).reshape(-1, 3))


def test_points_equal_barycentric_corners() -> None:
    shape = demo_shape()
    s = sample_surface(shape, 5000, seed=3)
    assert len(s) == 5000 and s.points.shape == (5000, 3)
    assert s.face_id.dtype == np.int64 and (s.face_id >= 0).all() and (s.face_id < shape.n_faces).all()
    assert (s.source_index == -1).all()
    np.testing.assert_allclose(s.barycentric.sum(1), 1.0)
    assert (s.barycentric >= 0).all()
    rebuilt = np.einsum("nk,nkd->nd", s.barycentric, shape.triangles[s.face_id])
    np.testing.assert_allclose(s.points, rebuilt, atol=1e-12)
    np.testing.assert_allclose(s.normals, shape.face_normals[s.face_id], atol=1e-12)
    np.testing.assert_array_equal(s.colors, shape.face_colors[s.face_id])


def test_deterministic_for_a_seed() -> None:
    shape = demo_shape()
    a, b, c = (sample_surface(shape, 500, seed=k) for k in (7, 7, 8))
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.face_id, b.face_id)
    assert not np.array_equal(a.points, c.points)


def test_uniform_by_area_chi_square() -> None:
    shape = _uneven_mesh()
    n = 40_000
    s = sample_surface(shape, n, seed=0)
    counts = np.bincount(s.face_id, minlength=shape.n_faces)
    expected = n * shape.face_areas / shape.face_areas.sum()
    assert counts.min() > 0
    assert stats.chisquare(counts, expected).pvalue > 1e-3


def test_uniform_inside_triangle_ks() -> None:
    """First barycentric of a uniform point in a triangle has CDF 1 - (1 - u)^2."""
    s = sample_surface(_uneven_mesh(), 20_000, seed=1)
    u = s.barycentric[:, 0]
    assert stats.kstest(u, lambda x: 1 - (1 - np.clip(x, 0, 1)) ** 2).pvalue > 1e-3


def test_vertex_colors_interpolated_and_grey_fallback() -> None:
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=float)
    f = np.array([[0, 1, 2]])
    vc = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)
    s = sample_surface(Shape(vertices=v, faces=f, vertex_colors=vc), 100, seed=0)
    np.testing.assert_allclose(s.colors, np.rint(s.barycentric * 255), atol=1)
    plain = sample_surface(Shape(vertices=v, faces=f), 10, seed=0)
    assert (plain.colors == GREY).all()


def test_sampling_speed_large_mesh() -> None:
    mesh = trimesh.creation.icosphere(7)  # 327,680 faces
    shape = Shape(vertices=np.asarray(mesh.vertices), faces=np.asarray(mesh.faces, dtype=np.int64))
    sample_surface(shape, 15_000, seed=0)  # warm up
    best = min(_timed(lambda: sample_surface(shape, 15_000, seed=0)) for _ in range(3))
    assert best < 0.1, f"15k samples from 328k faces took {best:.3f}s"


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_point_cloud_subset_and_all() -> None:
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(300, 3))
    nrm = pts / np.linalg.norm(pts, axis=1, keepdims=True)
    rgb = rng.integers(0, 256, (300, 3)).astype(np.uint8)
    cloud = Shape(vertices=pts, vertex_normals=nrm, vertex_colors=rgb)
    sub = sample_surface(cloud, 100, seed=5)
    assert len(sub) == 100 and len(np.unique(sub.source_index)) == 100
    np.testing.assert_array_equal(sub.points, pts[sub.source_index])
    np.testing.assert_array_equal(sub.normals, nrm[sub.source_index])
    np.testing.assert_array_equal(sub.colors, rgb[sub.source_index])
    assert (sub.face_id == -1).all() and (sub.barycentric == 0).all()
    everything = sample_surface(cloud, 10_000, seed=5)
    np.testing.assert_array_equal(everything.source_index, np.arange(300))


def _sphere_points(n: int, seed: int = 0) -> np.ndarray:
    p = np.random.default_rng(seed).normal(size=(n, 3))
    return p / np.linalg.norm(p, axis=1, keepdims=True) * 2.0 + np.array([1.0, -3.0, 0.5])


@pytest.mark.parametrize("orient", ["centroid", "propagate"])
def test_estimated_normals_on_sphere_point_outwards(orient: str) -> None:
    pts = _sphere_points(3000)
    n = estimate_normals(pts, k=16, orient=orient)
    radial = (pts - [1.0, -3.0, 0.5]) / 2.0
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0)
    dots = np.einsum("ij,ij->i", n, radial)
    assert dots.min() > 0.9, dots.min()


def test_propagation_orients_torus_consistently() -> None:
    """A torus is not star-shaped from its centroid; propagation still gets it right."""
    mesh = trimesh.creation.torus(1.0, 0.3)
    s = sample_surface(Shape(vertices=mesh.vertices, faces=mesh.faces), 4000, seed=0)
    n = estimate_normals(s.points, orient="propagate")
    assert (np.einsum("ij,ij->i", n, s.normals) > 0).mean() > 0.99


def test_point_cloud_sampling_estimates_normals_at_subset() -> None:
    cloud = Shape(vertices=_sphere_points(2000, seed=1))
    s = sample_surface(cloud, 500, seed=0)
    radial = (s.points - [1.0, -3.0, 0.5]) / 2.0
    assert np.einsum("ij,ij->i", s.normals, radial).min() > 0.9
    assert (s.colors == GREY).all()


def test_farthest_point_sampling() -> None:
    rng = np.random.default_rng(0)
    centers = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10]], dtype=float)
    pts = np.concatenate([c + rng.normal(scale=0.1, size=(50, 3)) for c in centers])
    idx = farthest_point_sampling(pts, 4, seed=3)
    assert idx.dtype == np.int64 and len(np.unique(idx)) == 4
    assert sorted(np.unique(idx // 50).tolist()) == [0, 1, 2, 3]  # one per cluster
    np.testing.assert_array_equal(idx, farthest_point_sampling(pts, 4, seed=3))
    assert len(farthest_point_sampling(pts, 1000)) == len(pts)
    assert len(np.unique(farthest_point_sampling(pts, 1000))) == len(pts)


@pytest.mark.parametrize("dim", [2, 3])
def test_farthest_point_sampling_follows_the_greedy_definition(dim: int) -> None:
    pts = np.random.default_rng(dim).normal(size=(400, dim))
    idx = farthest_point_sampling(pts, 60, seed=1)
    want = [int(idx[0])]
    for _ in range(59):  # each pick: the point whose nearest earlier pick is farthest
        d = np.linalg.norm(pts[:, None] - pts[want][None], axis=2).min(axis=1)
        want.append(int(np.argmax(d)))
    np.testing.assert_array_equal(idx, want)


def test_farthest_point_sampling_never_repeats_a_point_of_a_cloud_with_duplicates() -> None:
    pts = np.zeros((10, 3))
    pts[5] = 1.0  # nine copies of one point and one other point
    idx = farthest_point_sampling(pts, 6, seed=0)
    assert len(np.unique(idx)) == 6 and 5 in idx[:2]
    assert sorted(farthest_point_sampling(pts, 10, seed=0).tolist()) == list(range(10))
