"""Negative learning from box predictions: a point visible in a view where a part was predicted, but outside all of
that part's predictions there, is evidence against the part (``Knowledge.negative_targets``, ``masked_soft_ce``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crossdistill.errors import InputError
from crossdistill.methods.partdistill import DistillConfig, Knowledge
from crossdistill.methods.partdistill.student_training import masked_soft_ce


def _knowledge(visible: np.ndarray | None) -> Knowledge:
    # 5 points, 2 views, 2 parts. View 0: part 0 covers {0, 1} (0.8) and {1, 2} (0.6); part 1 covers {3} (0.5).
    # View 1: part 1 covers {2, 3} (0.9). Nothing of part 0 in view 1.
    return Knowledge(np.array([0, 0, 1, 1]), np.array([0.8, 0.6, 0.5, 0.9], np.float32), np.array([0, 0, 0, 1]),
                     np.array([0, 2, 4, 5, 7]), np.array([0, 1, 1, 2, 3, 2, 3]), 5, visible)


def test_negative_targets_by_hand():
    visible = np.array([[1, 1, 1, 1, 0], [1, 0, 1, 1, 1]], bool)
    neg = _knowledge(visible).negative_targets(2)
    expected = np.zeros((5, 2), np.float32)
    expected[3, 0] = 0.8  # view 0: visible, outside both part-0 boxes; the view's best part-0 score
    expected[[0, 1, 2], 1] += 0.5  # view 0: visible, outside the part-1 box (point 4 is hidden there)
    expected[[0, 4], 1] += 0.9  # view 1: visible, outside the part-1 box (point 1 is hidden there)
    np.testing.assert_allclose(neg, expected)
    # no visibility, no evidence; a subset keeps the visibility and loses the dropped predictions' evidence
    assert not _knowledge(None).negative_targets(2).any()
    only_view1 = _knowledge(visible).subset(np.array([False, False, False, True])).negative_targets(2)
    np.testing.assert_allclose(only_view1[:, 1], [0.9, 0, 0, 0, 0.9])
    assert not only_view1[:, 0].any()


def test_negative_term_of_the_loss_by_hand():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]], requires_grad=True)
    targets = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    negatives = torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    p = torch.softmax(logits.detach(), -1)
    expected = -torch.log(p[0, 0]) - 2.0 * torch.log(1 - p[1, 1])
    loss = masked_soft_ce(logits, targets, negatives=negatives)
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-5)
    loss.backward()
    assert logits.grad[1, 1] > 0  # the negative term pushes point 1's part-1 logit down
    assert float(masked_soft_ce(logits.detach(), targets)) == pytest.approx(float(-torch.log(p[0, 0])), rel=1e-5)


def test_negative_weight_is_validated_and_recorded():
    assert DistillConfig(negative_weight=1.0).to_dict()["negative_weight"] == 1.0
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="negative_weight"):
            DistillConfig(negative_weight=bad)


def test_lifting_votes_with_negative_evidence_by_hand():
    from crossdistill.methods.partdistill import lift_knowledge

    # 4 points, 3 views, 2 parts. Point 0: part 0 covers it in views 0, 1 (0.4 each); part 1 in view 2 (0.9),
    # and part 1 (seen in views 0, 1) leaves it outside there -> pos (0.8, 0.9), neg (0, 1.4).
    # Point 1: covered by part 0 only (view 0, 0.4): every vote keeps part 0. Point 2: covered by part 1 only
    # (0.6), neg (0.8, 1.7): unrestricted, the penalised vote would pick part 0 (-0.8 > -1.1).
    labels = np.array([0, 0, 1, 1, 1])
    scores = np.array([0.4, 0.4, 0.9, 0.6, 0.8], np.float32)
    views = np.array([0, 1, 2, 0, 1])
    indptr = np.array([0, 2, 3, 4, 5, 6])
    points = np.array([0, 1, 0, 0, 2, 3])
    visible = np.ones((3, 4), bool)
    know = Knowledge(labels, scores, views, indptr, points, 4, visible)
    neg = know.negative_targets(2)
    np.testing.assert_allclose(neg[0], [0.0, 1.4])  # part 0 seen in views 0, 1 covers point 0 there
    np.testing.assert_allclose(neg[2], [0.8, 1.7])
    xyz = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0], [3, 0, 0]], float)
    assert lift_knowledge(know, xyz, 2)[0] == 1  # sum: 0.9 > 0.8
    assert lift_knowledge(know, xyz, 2, vote="penalised")[0] == 0  # 0.8 - 0 > 0.9 - 1.4
    assert lift_knowledge(know, xyz, 2, vote="share")[0] == 0  # 0.8 / 0.8 > 0.9 / 2.3
    assert lift_knowledge(know, xyz, 2, vote="penalised", negative_weight=0.0)[0] == 1
    for vote in ("sum", "penalised", "share"):
        lifted = lift_knowledge(know, xyz, 2, vote=vote)
        assert lifted[1] == 0 and list(lifted[2:]) == [1, 1]  # only parts that cover a point compete
    with pytest.raises(ValueError, match="vote"):
        lift_knowledge(know, xyz, 2, vote="max")


def test_vote_share_by_hand_and_share_targets_are_validated():
    from crossdistill.methods.partdistill.knowledge import vote_share

    pos = np.array([[0.8, 0.9], [0.4, 0.0], [0.0, 0.0]], np.float32)
    neg = np.array([[0.0, 1.4], [0.8, 0.5], [0.3, 0.0]], np.float32)
    np.testing.assert_allclose(vote_share(pos, neg), [[1.0, 0.9 / 2.3], [0.4 / 1.2, 0.0], [0.0, 0.0]], rtol=1e-6)
    assert DistillConfig(share_targets=True).to_dict()["share_targets"] is True
    with pytest.raises(InputError, match="share_targets"):
        DistillConfig(share_targets=True, per_point_mean=True)
