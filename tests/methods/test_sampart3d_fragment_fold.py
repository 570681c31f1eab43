"""Where a piece's fragments fold: into its majority part, or into the part they most resemble."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from crossdistill.methods.sampart3d.pipeline import mesh_face_labels
from crossdistill.methods.sampart3d.rules import RENDER_CUE_RULES, SAM_RULES, PartRules
from crossdistill.methods.sampart3d.vote import face_mean_features, fold_fragments_by_feature, split_at_pieces


def _welded_boxes() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One welded piece of two boxes: a small box cut at its creases (6 faces of area 1, labels
    0-5, features near 0; each 1/18 of the piece) on a big box the field keeps whole (6 faces
    of area 2, label 6, features near 3)."""
    lab = np.r_[np.arange(6), np.full(6, 6)]
    comp = np.zeros(12, int)
    areas = np.r_[np.ones(6), 2 * np.ones(6)]
    feat = np.r_[np.linspace(0.0, 0.5, 6), 3.0 + np.linspace(0.0, 0.5, 6)][:, None]
    return lab, comp, areas, feat


def test_fragments_of_a_welded_piece_fold_by_similarity_into_its_two_parts():
    lab, comp, areas, feat = _welded_boxes()
    majority = split_at_pieces(lab, comp, areas, fragment=0.2)
    assert len(np.unique(majority)) == 1  # folding into the majority leaves one part
    out = split_at_pieces(lab, comp, areas, fragment=0.2, face_features=feat)
    assert len(np.unique(out)) == 2
    assert len(np.unique(out[:6])) == 1 and len(np.unique(out[6:])) == 1 and out[0] != out[6]
    assert out[6] == 0  # parts still numbered by decreasing area (the big box: 12 of 18)


def test_fold_by_similarity_joins_smallest_first_and_stops_when_no_fragment_is_left():
    # one piece: weights 1, 1, 4, 4; features 0, 0.2, 0.3, 5 -> face 0 (smallest, first) joins
    # face 1 (nearest), the pair (area 2 = 0.2 of 10) is no fragment at share 0.2: stop
    lab = np.array([0, 1, 2, 3])
    out = fold_fragments_by_feature(lab, np.zeros(4, int), np.array([1.0, 1, 4, 4]),
                                    np.array([[0.0], [0.2], [0.3], [5.0]]), np.full(4, 0.2))
    assert out.tolist() == [1, 1, 2, 3]
    # at share 0.25 the pair (0.2) is a fragment again: it joins face 2 (mean 0.1 vs 0.3 and 5)
    out = fold_fragments_by_feature(lab, np.zeros(4, int), np.array([1.0, 1, 4, 4]),
                                    np.array([[0.0], [0.2], [0.3], [5.0]]), np.full(4, 0.25))
    assert out.tolist() == [2, 2, 2, 3]


def test_fold_by_similarity_keeps_protected_parts_and_handles_faces_without_features():
    lab, comp, areas, feat = _welded_boxes()
    keep = np.zeros(12, bool)
    keep[3] = True  # one face of the small box is confirmed: it never folds away
    out = fold_fragments_by_feature(lab, comp, areas, feat, np.full(12, 0.2), keep)
    assert out[3] == 3 and set(out[:6]) == {3}  # its label survives, and the box's other faces join it
    # a fragment with no feature joins the heaviest other part of its piece
    lab2 = np.array([0, 0, 0, 1])
    feat2 = np.array([[0.0], [0.0], [0.0], [np.nan]])
    out2 = fold_fragments_by_feature(lab2, np.zeros(4, int), np.ones(4), feat2, np.full(4, 0.3))
    assert out2.tolist() == [0, 0, 0, 0]
    # pieces are independent: a label never crosses into another piece
    out3 = split_at_pieces(np.r_[lab, lab], np.r_[comp, comp + 1], np.r_[areas, areas], fragment=0.2,
                           face_features=np.r_[feat, feat])
    assert not set(out3[:12]) & set(out3[12:])


def test_face_mean_features_average_the_points_of_each_face():
    f = face_mean_features(np.array([[1.0, 0], [3, 2], [5, 5]]), np.array([0, 0, 2]), 4)
    assert f[0].tolist() == [2.0, 1.0] and f[2].tolist() == [5.0, 5.0]
    assert np.isnan(f[1]).all() and np.isnan(f[3]).all()


def test_mesh_face_labels_fold_by_similarity_only_when_the_rules_say_so():
    lab, comp, areas, feat = _welded_boxes()
    cents = np.c_[np.arange(12.0), np.zeros(12), np.zeros(12)]
    face = np.arange(12)  # one sampled point per face
    similar = dataclasses.replace(RENDER_CUE_RULES, fragment_fold="similar", dominant_piece=None)
    majority = dataclasses.replace(similar, fragment_fold="majority")
    assert len(np.unique(mesh_face_labels(lab, face, cents, comp, areas, majority, 0.0, None, feat))) == 1
    assert len(np.unique(mesh_face_labels(lab, face, cents, comp, areas, similar, 0.0, None, feat))) == 2
    # without the points' features the rule cannot compare: the majority fold applies
    assert len(np.unique(mesh_face_labels(lab, face, cents, comp, areas, similar, 0.0, None))) == 1


def test_fragment_fold_is_validated_and_named():
    with pytest.raises(ValueError, match="fragment_fold"):
        PartRules(fragment_fold="nearest")
    assert "pieces(fold=similar)" in PartRules(pieces=True, fragment_fold="similar").names
    assert "pieces" in PartRules(pieces=True).names
    assert SAM_RULES["pieces"].fragment_fold == "majority"  # SAM-like masks: not measured with the new fold
