"""Specificity weighting of box knowledge: a prediction's votes and evidence are its confidence times
``min(share^-gamma, cap)``, share the part of its view's visible points it covers (``Knowledge.specificity``)."""

from __future__ import annotations

import numpy as np
import pytest

from crossdistill.errors import InputError
from crossdistill.methods.partdistill import DistillConfig, Knowledge, lift_knowledge
from crossdistill.methods.partdistill.knowledge import SPECIFICITY_CAP


def _nested(visible: bool = True) -> Knowledge:
    """10 points, 3 views, 2 parts: the body's box covers every point in all 3 views (0.9); the small part's box
    covers points 0 and 1 in views 0 and 1 (0.9). View 2 sees only points 0-4."""
    vis = np.ones((3, 10), bool)
    vis[2, 5:] = False
    labels = np.array([0, 0, 0, 1, 1])
    views = np.array([0, 1, 2, 0, 1])
    chunks = [np.arange(10), np.arange(10), np.arange(5), np.array([0, 1]), np.array([0, 1])]
    indptr = np.concatenate([[0], np.cumsum([len(c) for c in chunks])])
    return Knowledge(labels, np.full(5, 0.9, np.float32), views, indptr, np.concatenate(chunks), 10,
                     vis if visible else None)


def test_specificity_weights_by_hand():
    k = _nested()
    # shares: body 10/10, 10/10, 5/5 (view 2 sees 5 points); small part 2/10 in views 0 and 1
    np.testing.assert_allclose(k.specificity(0.5), [1, 1, 1, 5 ** 0.5, 5 ** 0.5], rtol=1e-6)
    np.testing.assert_allclose(k.specificity(1.0), [1, 1, 1, 5, 5], rtol=1e-6)
    np.testing.assert_allclose(k.specificity(2.0), [1, 1, 1, SPECIFICITY_CAP, SPECIFICITY_CAP])  # 25, capped
    np.testing.assert_allclose(k.specificity(0.0), np.ones(5))
    np.testing.assert_allclose(_nested(visible=False).specificity(0.5), np.ones(5))  # no visibility: no weighting
    for bad in (-0.5, float("nan")):
        with pytest.raises(ValueError, match="gamma"):
            k.specificity(bad)


def test_weighting_changes_scores_only():
    k = _nested()
    w = k.weighted_by_specificity(1.0)
    np.testing.assert_allclose(w.scores, 0.9 * np.array([1, 1, 1, 5, 5]), rtol=1e-6)
    np.testing.assert_array_equal(w.points, k.points)
    np.testing.assert_array_equal(w.labels, k.labels)
    np.testing.assert_allclose(k.scores, 0.9)  # the original is not modified
    assert k.weighted_by_specificity(0.0) is k
    # the students' targets: point 0's votes (body 2.7, part 1.8) become (2.7, 9.0) with gamma 1
    np.testing.assert_allclose(w.point_targets(2)[0], [2.7, 9.0], rtol=1e-6)
    np.testing.assert_allclose(k.point_targets(2)[0], [2.7, 1.8], rtol=1e-6)


def test_nested_part_wins_the_lifted_vote_only_when_weighted():
    k = _nested()
    xyz = np.stack([np.arange(10.0), np.zeros(10), np.zeros(10)], 1)
    plain = lift_knowledge(k, xyz, 2)
    weighted = lift_knowledge(k, xyz, 2, specificity=0.5)  # small part: 2 x 0.9 x 2.24 = 4.0 > body 2.7
    np.testing.assert_array_equal(plain, np.zeros(10))  # the body's three votes outweigh the part's two
    np.testing.assert_array_equal(weighted, [1, 1] + [0] * 8)
    for vote in ("penalised", "share"):  # the other votes take the weighting too, and keep the body elsewhere
        assert (lift_knowledge(k, xyz, 2, vote=vote, specificity=0.5)[2:] == 0).all()


def test_specificity_is_validated_and_recorded():
    assert DistillConfig(specificity=0.5).to_dict()["specificity"] == 0.5
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="specificity"):
            DistillConfig(specificity=bad)


def test_students_train_on_weighted_votes_and_evidence():
    from crossdistill.methods.partdistill.distill import forward_evidence, student_signal

    k = _nested()
    plain_cfg = DistillConfig(negative_weight=2.0, specificity=0.0)
    cfg = DistillConfig(negative_weight=2.0, specificity=1.0)
    ev = forward_evidence([k], 2, cfg)
    # part 1 was seen in views 0 and 1 and leaves points 2-9 outside there: 2 x 0.9 x 5 (weighted) against 2 x 0.9
    np.testing.assert_allclose(ev[0][2:, 1], 9.0, rtol=1e-6)
    np.testing.assert_allclose(forward_evidence([k], 2, plain_cfg)[0][2:, 1], 1.8, rtol=1e-6)
    assert forward_evidence([k], 2, DistillConfig(negative_weight=0.0)) is None
    targets, negatives = student_signal([k], ev, 2, cfg)
    np.testing.assert_allclose(targets[0][0], [2.7, 9.0], rtol=1e-6)
    np.testing.assert_allclose(negatives[0], 2.0 * ev[0])
    targets, negatives = student_signal([k], None, 2, DistillConfig(negative_weight=0.0, specificity=0.0))
    np.testing.assert_allclose(targets[0][0], [2.7, 1.8], rtol=1e-6)
    assert negatives is None
