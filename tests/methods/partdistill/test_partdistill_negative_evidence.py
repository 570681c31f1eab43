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
