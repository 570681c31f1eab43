"""The weight-free geometric part teacher: spectral part partitions of a single surface, as SAM-like masks."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from crossdistill.eval.metrics import rand_index_error
from crossdistill.geometry.normalize import normalize_shape
from crossdistill.geometry.sampling import sample_surface
from crossdistill.geometry.spectral_parts import face_graph, geometric_partitions, point_graph
from crossdistill.geometry.topology import face_components
from crossdistill.render import render_shape
from crossdistill.render.cameras import sampart3d_rig
from crossdistill.teachers.geometric_parts import CombinedMaskTeacher, OfflineTeacher, geometric_part_teacher
from crossdistill.teachers.offline_masks import RenderMaskTeacher
from crossdistill.types import Shape


def _dumbbell() -> tuple[Shape, np.ndarray]:
    """A closed surface of revolution: two round lobes joined by a narrow neck at z = 0.
    Truth: the two lobes (z < 0, z > 0)."""
    z = np.linspace(-2.0, 2.0, 81)
    r = np.sqrt(np.clip(1.0 - (np.abs(z) - 1.0) ** 2, 0.0, None)) + 0.0
    r = np.maximum(r, 0.25 * (np.abs(z) < 1.9))  # the neck keeps a radius of 0.25
    r[0] = r[-1] = 0.0
    mesh = trimesh.creation.revolve(np.c_[r, z], sections=48)
    mesh.merge_vertices()
    shape = Shape(vertices=np.asarray(mesh.vertices, float), faces=np.asarray(mesh.faces, np.int64))
    truth = (shape.triangles.mean(1)[:, 2] > 0).astype(int)
    return shape, truth


def test_spectral_partitions_cut_a_dumbbell_at_its_neck():
    shape, truth = _dumbbell()
    pairs, aff = face_graph(shape)
    assert len(pairs) and (aff > 0).all() and (aff <= 1).all()
    parts = geometric_partitions(shape, counts=(2, 3))
    assert parts.shape == (3, shape.n_faces) and (parts[0] == 0).all()
    # the two-part cut separates the spheres: almost every pair of faces agrees with the truth
    assert rand_index_error(truth, parts[1]) < 0.1


def test_point_graph_and_point_partitions():
    shape, truth = _dumbbell()
    s = sample_surface(shape, 3000, seed=0)
    cloud = Shape(vertices=s.points, vertex_normals=s.normals)
    pairs, aff = point_graph(s.points, s.normals, k=8)
    assert pairs.shape[1] == 2 and (pairs[:, 0] < pairs[:, 1]).all() and len(aff) == len(pairs)
    parts = geometric_partitions(cloud, counts=(2,))
    assert rand_index_error((s.points[:, 2] > 0).astype(int), parts[1]) < 0.15


def test_teacher_gives_nested_masks_per_view_and_the_offline_policy():
    shape, _ = _dumbbell()
    unit, _ = normalize_shape(shape)
    samples = sample_surface(unit, 2000, seed=0)
    views = render_shape(unit, sampart3d_rig(6, 64, seed=0), samples, progress=False).views
    teacher = geometric_part_teacher(unit, counts=(2, 4))
    sets = teacher.masks(views)
    assert len(sets) == 6 and teacher.mask_kind == "geometric-parts" and teacher.is_offline_default
    ms = sets[0]
    assert len(ms) >= 2 and not (ms.masks & ~views.foreground[0]).any()
    assert ms.masks.sum(0).max() >= 2, "masks of the coarser and finer partitions overlap"
    comps = face_components(unit.vertices, unit.faces)
    assert isinstance(OfflineTeacher("render", "render", "render").for_shape(unit, comps), RenderMaskTeacher)
    both = OfflineTeacher("both", "render", "both").for_shape(unit, comps)
    assert isinstance(both, CombinedMaskTeacher) and both.mask_kind == "render-cues"
    merged = both.masks(views)[0]
    assert len(merged) == len(RenderMaskTeacher({"piece": comps}).masks(views)[0].masks) + len(
        geometric_part_teacher(unit).masks(views)[0])
    with pytest.raises(ValueError):
        OfflineTeacher("sam")


def test_shape_kind_decides_the_rules_of_sam_like_masks():
    from crossdistill.methods.sampart3d.rules import SAM_RULES, rules_for_teacher
    from crossdistill.teachers.geometric_parts import shape_kind_of

    shape, _ = _dumbbell()
    unit, _ = normalize_shape(shape)
    assert shape_kind_of(unit, face_components(unit.vertices, unit.faces)) == "closed_surface"
    open_cup = Shape(vertices=unit.vertices, faces=unit.faces[unit.triangles.mean(1)[:, 2] < 0.4])  # a hole
    assert shape_kind_of(open_cup, face_components(open_cup.vertices, open_cup.faces)) == "pieces"
    cloud = Shape(vertices=unit.vertices)
    assert shape_kind_of(cloud, None) == "points"
    sam = object()  # a real 2D model: SAM-like masks
    assert rules_for_teacher(sam, "closed_surface").names == ["group_balance=0.5", "part_vote=0.5"]  # no piece rule
    assert rules_for_teacher(sam, "closed_surface") != rules_for_teacher(sam, "pieces")
    assert rules_for_teacher(sam, "pieces") == SAM_RULES["pieces"]
