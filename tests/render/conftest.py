"""Shapes, samples and helpers for the render tests (built with trimesh, CPU only)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from crossdistill.types import Shape, SurfaceSample

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass


def to_shape(mesh: trimesh.Trimesh, face_colors: np.ndarray | None = None) -> Shape:
    return Shape(vertices=np.asarray(mesh.vertices, dtype=np.float64),
                 faces=np.asarray(mesh.faces, dtype=np.int64), face_colors=face_colors)


def sample(mesh: trimesh.Trimesh, n: int, seed: int = 0) -> SurfaceSample:
    """Area-uniform surface samples (a local stand-in for geometry.sample_surface)."""
    pts, fidx = trimesh.sample.sample_surface(mesh, n, seed=seed)
    tri = mesh.triangles[fidx]
    bary = trimesh.triangles.points_to_barycentric(tri, pts)
    return SurfaceSample(points=np.asarray(pts, dtype=np.float64), normals=mesh.face_normals[fidx],
                         colors=np.full((n, 3), 128, np.uint8), face_id=fidx.astype(np.int64),
                         barycentric=bary, source_index=np.full(n, -1, np.int64))


def point_cloud(mesh: trimesh.Trimesh, n: int, seed: int = 0) -> Shape:
    s = sample(mesh, n, seed)
    return Shape(vertices=s.points, vertex_normals=s.normals)


def samples_of_cloud(cloud: Shape) -> SurfaceSample:
    n = cloud.n_vertices
    return SurfaceSample(points=cloud.vertices, normals=cloud.vertex_normals, colors=np.full((n, 3), 128, np.uint8),
                         face_id=np.full(n, -1, np.int64), barycentric=np.zeros((n, 3)),
                         source_index=np.arange(n, dtype=np.int64))


def icosphere(subdivisions: int = 3, radius: float = 0.5) -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)


def cup() -> trimesh.Trimesh:
    """Open-topped cup, 0.05 thick walls, in the unit box (axis +y)."""
    wall = trimesh.creation.annulus(r_min=0.35, r_max=0.4, height=0.9, sections=48)
    bottom = trimesh.creation.cylinder(radius=0.35, height=0.05, sections=48)
    bottom.apply_translation([0, 0, -0.425])
    m = trimesh.util.concatenate([wall, bottom])
    m.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))  # z-up -> y-up
    return m


def box_in_box() -> tuple[trimesh.Trimesh, int]:
    """A closed box with a small box inside; returns the mesh and the first inner face."""
    outer = trimesh.creation.box(extents=[0.9, 0.9, 0.9])
    inner = trimesh.creation.box(extents=[0.3, 0.3, 0.3])
    return trimesh.util.concatenate([outer, inner]), len(outer.faces)


def occluded_by_ray(mesh: trimesh.Trimesh, centre: np.ndarray, points: np.ndarray, margin: float) -> np.ndarray:
    """(N,) True where the segment camera -> point is blocked more than ``margin`` before it."""
    from crossdistill.render.raycast import EmbreeRaycaster

    caster = EmbreeRaycaster(to_shape(mesh))
    d = (points - centre).astype(np.float32)
    _, t, _ = caster.cast_rays(centre.astype(np.float32), d)
    return t < 1.0 - margin / np.linalg.norm(d, axis=1)


@pytest.fixture
def sphere_mesh() -> trimesh.Trimesh:
    return icosphere(3)
