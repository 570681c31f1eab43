"""The `part_vote` stage-3 rule: views vote on pairs of parts; average linkage merges them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import trimesh

from crossdistill.methods.sampart3d.part_votes import merge_by_votes, merge_parts_by_mask_votes, view_votes
from crossdistill.methods.sampart3d.rules import SAM_RULES, PartRules
from crossdistill.methods.sampart3d.supervision import MaskSupervision, ViewSupervision


def _supervision(views: list[tuple[np.ndarray, np.ndarray]], scale: np.ndarray) -> MaskSupervision:
    """views: (point (P,), mask (K, P)) pairs; scale: (M,) sigma of the global masks."""
    m = len(scale)
    return MaskSupervision(tuple(ViewSupervision(np.asarray(p), np.asarray(k, np.int32)) for p, k in views),
                           np.asarray(scale, float), np.ones(m, np.int64), np.ones(m, np.float32),
                           np.zeros(m, np.int64), 1.0)


def test_each_view_votes_with_the_group_holding_most_of_a_part():
    point_part = np.array([0, 0, 1, 1, 2, 2])
    # view 0: one small mask (sigma 0.1) on parts 0 and 1, one on part 2; a large mask (sigma 1) on all
    # view 1: part 0 mostly in mask 3, part 1 in mask 4, part 2 unseen
    pix = np.array([0, 1, 2, 3, 4, 5])
    v0 = (pix, np.array([[0, 0, 0, 0, 1, 1], [2, 2, 2, 2, 2, 2]]))
    v1 = (np.array([0, 0, 1, 2, 3]), np.array([[3, 3, 4, 4, 4]]))
    sup = _supervision([v0, v1], np.array([0.1, 0.1, 1.0, 0.1, 0.1]))
    agree, shown = view_votes(point_part, sup, raw_scale=0.05, min_count=1)
    # fine scale: view 0 groups 0 with 1, not with 2; view 1 shows 0 (in mask 3: 2 of 3 pixels) and 1 (mask 4)
    assert shown.tolist() == [[0, 2, 1], [2, 0, 1], [1, 1, 0]]
    assert agree.tolist() == [[0, 1, 0], [1, 0, 0], [0, 0, 0]]
    agree, shown = view_votes(point_part, sup, raw_scale=0.5, min_count=1)
    # coarse scale: only the large mask reaches it, so view 0 groups everything and view 1 has no group
    assert shown.tolist() == agree.tolist() == [[0, 1, 1], [1, 0, 1], [1, 1, 0]]
    # a part shown on fewer entries than min_count does not vote in that view
    agree, shown = view_votes(point_part, sup, raw_scale=0.05, min_count=3)
    assert shown.sum() == 0


def test_average_linkage_does_not_chain_through_a_middle_part():
    # A-B and B-C agree in 9 of 10 views, A-C in none: single linkage would join all three
    agree = np.array([[0, 9, 0], [9, 0, 9], [0, 9, 0]], float)
    shown = np.full((3, 3), 10.0) - 10 * np.eye(3)
    merged = merge_by_votes(agree, shown, threshold=0.5)
    assert len(set(merged.tolist())) == 2 and merged[0] == merged[1] != merged[2]
    # with a lower threshold the merged pair's average share (9 / 20) is enough
    assert merge_by_votes(agree, shown, threshold=0.4).tolist() == [0, 0, 0]


def test_pairs_seen_together_too_rarely_are_never_merged():
    agree = np.array([[0, 2], [2, 0]], float)
    shown = np.array([[0, 2], [2, 0]], float)
    assert merge_by_votes(agree, shown, 0.5, min_views=3).tolist() == [0, 1]
    assert merge_by_votes(agree, shown, 0.5, min_views=2).tolist() == [0, 0]
    assert merge_parts_by_mask_votes(np.array([0, 1]), _supervision([], np.zeros(0)), 0.1, 0.5).tolist() == [0, 1]
    # parts that hold no sampled point (faces no sample fell on) keep an id of their own
    assert merge_parts_by_mask_votes(np.array([0, 1]), _supervision([], np.zeros(0)), 0.1, 0.5,
                                     n_parts=4).tolist() == [0, 1, 2, 3]


def test_the_rule_is_on_only_where_it_was_screened():
    from crossdistill.methods.sampart3d.rules import RENDER_CUE_RULES

    assert PartRules().part_vote is None and "part_vote=0.7" in PartRules(part_vote=0.7).names
    assert SAM_RULES["pieces"].part_vote == SAM_RULES["closed_surface"].part_vote == 0.5  # screened on meshes
    assert SAM_RULES["points"].part_vote == 0.7  # screened on point clouds apart
    assert RENDER_CUE_RULES.part_vote is None


@pytest.fixture(scope="module")
def two_boxes():
    """Two interpenetrating boxes (two pieces) that the (emulated) masks always show as one part,
    segmented with the rules of meshes of pieces plus ``part_vote`` = 0.5: (shape, config, segmentation)."""
    from crossdistill.eval.emulators import EmulatedMaskTeacher
    from crossdistill.methods.sampart3d.pipeline import preset, segment_shape
    from crossdistill.types import Shape

    a = trimesh.creation.box((0.4, 0.4, 0.4))
    b = trimesh.creation.box((0.4, 0.4, 0.4))
    b.apply_translation((0.3, 0.05, 0.05))
    mesh = trimesh.util.concatenate([a, b])
    shape = Shape(np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64))
    teacher = EmulatedMaskTeacher(np.zeros((1, len(mesh.faces)), np.int64), strength=0.0)
    cfg = dataclasses.replace(preset("fast"), n_points=2000, n_views=8, image_size=96,
                              rules=dataclasses.replace(SAM_RULES["pieces"], part_vote=0.5))
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, iterations=20))
    return shape, cfg, segment_shape(shape, cfg, mask_teacher=teacher, progress=False)


@pytest.mark.parametrize("threshold, parts_at_fine_scale", [(None, 2), (0.5, 1)])
def test_two_pieces_one_mask_part_merge_only_with_the_rule(two_boxes, threshold, parts_at_fine_scale):
    """The pieces rule keeps the two boxes apart below the coarsest scale; the vote merges them."""
    from crossdistill.methods.sampart3d.pipeline import with_rules

    shape, cfg, seg = two_boxes
    alt = with_rules(seg, shape, cfg, dataclasses.replace(SAM_RULES["pieces"], part_vote=threshold))
    assert int(alt.labels(0).max()) + 1 == parts_at_fine_scale
    assert alt.labels(0).shape == (len(shape.faces),) and alt.labels(0).dtype == np.int32
    assert ("part_vote=0.5" in alt.meta["rules"]) == (threshold is not None)


def test_the_vote_reads_the_saved_point_sets_so_select_reruns_it_as_segment_ran_it(two_boxes, tmp_path):
    from crossdistill.geometry.normalize import normalize_shape
    from crossdistill.geometry.topology import face_components
    from crossdistill.methods.sampart3d.interactive import (bundle_from_segmentation, load_field_bundle,
                                                             save_field_bundle)
    from crossdistill.methods.sampart3d.pipeline import parts_from_field

    shape, cfg, seg = two_boxes
    save_field_bundle(tmp_path / "field.pt", bundle_from_segmentation(seg))
    evidence = load_field_bundle(tmp_path / "field.pt").evidence
    assert evidence is not None and np.array_equal(evidence.scale, seg.supervision.scale)
    unit, _ = normalize_shape(shape)
    pieces = face_components(unit.vertices, unit.faces)
    scales = (0.0, 0.7, 1.3)
    from_pixels = parts_from_field(seg.field, seg.supervision, unit, seg.render.samples, pieces, scales, cfg, cfg.rules)
    from_saved = parts_from_field(seg.field, evidence.to_supervision(), unit, seg.render.samples, pieces, scales, cfg,
                                  cfg.rules)
    assert np.array_equal(from_pixels[1], from_saved[1])
    assert int(from_saved[1][0].max()) == 0  # merged at the finest scale too


def test_on_a_point_cloud_the_shipped_vote_merges_what_every_mask_groups():
    """Points of two interpenetrating boxes that every (emulated) mask shows as one part, clustered on a
    field trained for one step (so HDBSCAN splits them): the point-cloud rules' vote makes them one part
    at the finest scale, and is recorded."""
    from crossdistill.eval.emulators import EmulatedMaskTeacher
    from crossdistill.methods.sampart3d.pipeline import preset, segment_shape, with_rules
    from crossdistill.types import Shape

    a = trimesh.creation.box((0.4, 0.4, 0.4))
    b = trimesh.creation.box((0.4, 0.4, 0.4))
    b.apply_translation((0.3, 0.05, 0.05))
    mesh = trimesh.util.concatenate([a, b])
    pts, fid = trimesh.sample.sample_surface_even(mesh, 3000, seed=0)
    shape = Shape(np.asarray(pts, np.float64), vertex_normals=np.asarray(mesh.face_normals[fid], np.float64))
    teacher = EmulatedMaskTeacher(np.zeros((1, len(pts)), np.int64), strength=0.0)
    cfg = dataclasses.replace(preset("fast"), n_points=2000, n_views=8, image_size=96,
                              rules=dataclasses.replace(SAM_RULES["points"], part_vote=None))
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, iterations=1))
    seg = segment_shape(shape, cfg, mask_teacher=teacher, progress=False)
    assert int(seg.labels(0).max()) + 1 == 2
    voted = with_rules(seg, shape, cfg, SAM_RULES["points"])
    assert int(voted.labels(0).max()) + 1 == 1 and voted.labels(0).shape == (len(pts),)
    assert "part_vote=0.7" in voted.meta["rules"]
