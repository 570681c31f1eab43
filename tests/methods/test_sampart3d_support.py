"""Mask support of 3D parts, and its use in stage 3: small parts a 2D mask confirms stay."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from crossdistill.methods.sampart3d.pipeline import mesh_face_labels
from crossdistill.methods.sampart3d.rules import RENDER_CUE_RULES
from crossdistill.methods.sampart3d.supervision import MaskSupervision, ViewSupervision
from crossdistill.methods.sampart3d.support import MaskPointSets
from crossdistill.methods.sampart3d.vote import split_at_pieces


def _two_views() -> MaskPointSets:
    """10 points; view 0 sees 0-5 (masks A = {0,1,2}, B = {3,4,5}); view 1 sees 4-9
    (masks C = {6,7,8,9} at level 0, D = {4,5} at level 1)."""
    v0 = ViewSupervision(point=np.arange(6), mask=np.array([[0, 0, 0, 1, 1, 1], [-1] * 6]))
    v1 = ViewSupervision(point=np.arange(4, 10), mask=np.array([[-1, -1, 2, 2, 2, 2], [3, 3, -1, -1, -1, -1]]))
    sup = MaskSupervision((v0, v1), np.ones(4), np.array([3, 3, 4, 2]), np.ones(4, np.float32),
                          np.array([0, 0, 1, 1]), 1.0)
    return MaskPointSets.from_supervision(sup, 10)


def test_support_is_the_best_visible_restricted_iou_over_masks():
    sets = _two_views()
    assert sets.masks.shape == (4, 10) and sets.visible.shape == (2, 10)
    assert sets.view_of_mask.tolist() == [0, 0, 1, 1]
    # part 0 = {0, 1}; part 1 = {2, 3} straddles A and B; part 2 = {4,...,9}: view 1 sees
    # all of it and C covers 4 of its 6 points
    sup = sets.support(np.array([0, 0, 1, 1, 2, 2, 2, 2, 2, 2]), 4)
    assert sup[0] == pytest.approx(2 / 3)  # {0, 1} inside A = {0, 1, 2}
    assert sup[1] == pytest.approx(1 / 4)  # {2, 3}: one point in A (|A u {2,3}| = 4), one in B
    assert sup[2] == pytest.approx(2 / 3)
    assert sup[3] == 0.0  # a part without points
    # a part seen by no view in full enough is not judged: {0..6} is 6/7 visible in view 0
    whole = np.r_[np.zeros(7, int), np.ones(3, int)]
    assert sets.support(whole, 2)[0] > 0
    assert sets.support(whole, 2, min_visible=0.9)[0] == 0.0


def test_silhouette_masks_can_be_left_out_of_the_support():
    # view 0 sees points 0-3 only and its one mask is all of them (the object's silhouette from there);
    # view 1 sees 0-9 with a mask {0, 1}
    v0 = ViewSupervision(point=np.arange(4), mask=np.array([[0, 0, 0, 0]]))
    v1 = ViewSupervision(point=np.arange(10), mask=np.array([[1, 1] + [-1] * 8]))
    sup = MaskSupervision((v0, v1), np.ones(2), np.array([4, 2]), np.ones(2, np.float32), np.array([0, 1]), 1.0)
    sets = MaskPointSets.from_supervision(sup, 10)
    part = np.r_[np.zeros(4, int), np.ones(6, int)]  # part 0 = what view 0 sees
    assert sets.support(part, 2)[0] == pytest.approx(1.0)  # the silhouette "confirms" it
    guarded = sets.support(part, 2, max_view_share=0.95)
    assert guarded[0] == pytest.approx(2 / 4)  # only the proper mask {0, 1} of view 1 counts
    assert sets.support(part, 2, max_view_share=1.0)[0] == pytest.approx(1.0)  # a share of 1 keeps every mask


def test_protected_fragments_of_a_dominant_piece_are_kept():
    # piece 0: faces 0-19 (area 20 of 24, a welded body) with a 1-face part (5% of it);
    # piece 1: faces 20-23 with a 1-face sliver (25% of it, above the 0.2 share)
    comp = np.r_[np.zeros(20, int), np.ones(4, int)]
    lab = np.r_[np.zeros(19, int), 1, np.zeros(3, int), 2]
    areas = np.ones(24)
    folded = split_at_pieces(lab, comp, areas, fragment=0.3, dominant=0.8, dominant_fragment=0.1)
    assert folded[19] == folded[0] and folded[23] == folded[20]
    protect = np.zeros(24, bool)
    protect[[19, 23]] = True
    kept = split_at_pieces(lab, comp, areas, fragment=0.3, dominant=0.8, dominant_fragment=0.1, protected=protect)
    assert kept[19] != kept[0]  # confirmed: the small part of the body stays
    assert kept[23] == kept[20]  # protection only applies inside a dominant piece
    everywhere = split_at_pieces(lab, comp, areas, fragment=0.3, dominant=0.8, dominant_fragment=0.1,
                                 protected=protect, protect_everywhere=True)
    assert everywhere[19] != everywhere[0] and everywhere[23] != everywhere[20]  # kept in every piece
    unprotected = split_at_pieces(lab, comp, areas, fragment=0.3, dominant=0.8, dominant_fragment=0.1,
                                  protected=np.zeros(24, bool), protect_everywhere=True)
    assert (unprotected == folded).all()  # without evidence the option changes nothing
    no_dominant = split_at_pieces(lab, comp, areas, fragment=0.3, protected=protect, protect_everywhere=True)
    assert no_dominant[23] != no_dominant[20] and no_dominant[19] != no_dominant[0]


def test_mesh_face_labels_keeps_a_small_part_only_when_a_mask_confirms_it():
    # one welded piece of 40 faces in a row, one sampled point per face; the field gives
    # faces 36-37 their own label (5% of the piece: below the 10% share of a dominant piece)
    n = 40
    cents = np.c_[np.arange(n, dtype=float), np.zeros(n), np.zeros(n)]
    comp, areas, face = np.zeros(n, int), np.ones(n), np.arange(n)
    labels = np.zeros(n, int)
    labels[36:38] = 1
    rules = RENDER_CUE_RULES
    assert rules.fragment_support is not None and rules.keep_in_pieces(0.0)

    def evidence(mask_points: np.ndarray) -> MaskPointSets:
        mask = np.full((1, n), -1)
        mask[0, mask_points] = 0
        sup = MaskSupervision((ViewSupervision(point=np.arange(n), mask=mask),), np.ones(1), np.array([len(mask_points)]),
                              np.ones(1, np.float32), np.zeros(1, np.int64), 1.0)
        return MaskPointSets.from_supervision(sup, n)

    confirmed = mesh_face_labels(labels, face, cents, comp, areas, rules, 0.0, evidence(np.arange(35, 39)))
    assert len(np.unique(confirmed)) == 2 and (confirmed[36:38] != confirmed[0]).all()
    unconfirmed = mesh_face_labels(labels, face, cents, comp, areas, rules, 0.0, evidence(np.arange(10, 20)))
    assert len(np.unique(unconfirmed)) == 1
    no_evidence = mesh_face_labels(labels, face, cents, comp, areas, rules, 0.0)
    assert len(np.unique(no_evidence)) == 1


def test_support_everywhere_keeps_a_confirmed_small_part_of_a_piece_that_is_not_dominant():
    # two welded pieces of 20 faces each (neither holds 80% of the object); the field gives faces 16-17
    # of piece 0 their own label, 10% of the piece: below its 0.2 share, so the piece rule folds it
    n = 40
    cents = np.c_[np.arange(n, dtype=float), np.zeros(n), np.zeros(n)]
    comp, areas, face = np.r_[np.zeros(20, int), np.ones(20, int)], np.ones(n), np.arange(n)
    labels = np.r_[np.zeros(20, int), np.full(20, 2)]
    labels[16:18] = 1
    mask = np.full((1, n), -1)
    mask[0, 15:19] = 0
    sup = MaskSupervision((ViewSupervision(point=np.arange(n), mask=mask),), np.ones(1), np.array([4]),
                          np.ones(1, np.float32), np.zeros(1, np.int64), 1.0)
    evidence = MaskPointSets.from_supervision(sup, n)
    shipped = mesh_face_labels(labels, face, cents, comp, areas, RENDER_CUE_RULES, 0.0, evidence)
    assert len(np.unique(shipped)) == 2  # folded: the support protects only inside a dominant piece
    rules = replace(RENDER_CUE_RULES, support_everywhere=True)
    assert "support_everywhere" in rules.names and "support_everywhere" not in RENDER_CUE_RULES.names
    kept = mesh_face_labels(labels, face, cents, comp, areas, rules, 0.0, evidence)
    assert len(np.unique(kept)) == 3 and (kept[16:18] != kept[0]).all() and (kept[16:18] != kept[20]).all()
