"""PartDistill: back-projection, mask-aware loss, backward distillation, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from crossdistill.errors import InputError
from crossdistill.methods.partdistill import (DistillConfig, Knowledge, PartDistill, StudentConfig, backproject,
                                              label_shape, lift_knowledge, load_student, masked_soft_ce, save_student)
from crossdistill.methods.partdistill.distill import partdistill_rig, shape_points
from crossdistill.methods.partdistill.student_training import predict_probs
from crossdistill.render.renderer import render_shape
from crossdistill.teachers.base import PartPredictions
from crossdistill.types import Correspondence, Shape


def _corr(point_to_pix, W=4, H=4):
    p2p = np.asarray(point_to_pix, np.int32)
    return Correspondence(np.full((len(p2p), H, W), -1, np.int32), p2p, np.ones(p2p.shape, np.float32), W, H)


def test_backproject_box_and_mask_select_exactly_the_visible_covered_points():
    # 6 points; point 3 is not visible (-1); pixels are y * 4 + x
    corr = _corr([[0, 5, 10, -1, 15, 1]])
    box = PartPredictions(labels=np.array([1]), scores=np.array([0.9], np.float32),
                          boxes=np.array([[0.0, 0.0, 2.0, 2.0]], np.float32))  # pixel centres (0.5,0.5),(1.5,1.5),(1.5,0.5)
    k = backproject([box], corr)
    assert len(k) == 1 and k.members(0).tolist() == [0, 1, 5]
    mask = np.zeros((1, 4, 4), bool)
    mask[0, 2, 2] = mask[0, 3, 3] = mask[0, 0, 3] = True  # pixels 10, 15, 3 (no point projects to 3)
    m = PartPredictions(labels=np.array([0]), scores=np.array([0.7], np.float32), masks=mask)
    k = backproject([m], corr)
    assert k.members(0).tolist() == [2, 4] and k.labels.tolist() == [0] and k.views.tolist() == [0]
    # a prediction covering no visible point is dropped
    empty = np.zeros((1, 4, 4), bool)
    empty[0, 3, 0] = True
    assert len(backproject([PartPredictions(np.array([0]), np.array([1.0], np.float32), masks=empty)], corr)) == 0


def test_backproject_on_a_rendered_scene_matches_visibility(two_box_shape):
    shape, face_labels = two_box_shape()
    unit, samples, _ = shape_points(shape, 800, 8)
    res = render_shape(unit, partdistill_rig(4, 64), samples=samples, progress=False)
    fid = res.views.face_id
    preds = []
    for v in range(4):
        masks = np.stack([(fid[v] >= 0) & (face_labels[np.clip(fid[v], 0, None)] == p) for p in (0, 1)])
        preds.append(PartPredictions(np.array([0, 1]), np.array([1.0, 1.0], np.float32), masks=masks))
    k = backproject(preds, res.correspondence)
    for j in range(len(k)):
        v, pts = k.views[j], k.members(j)
        assert np.all(res.correspondence.point_to_pix[v, pts] >= 0)  # only visible points
        expected = np.flatnonzero((res.correspondence.point_to_pix[v] >= 0) & (face_labels[samples.face_id] == k.labels[j]))
        # points near the part boundary may see the neighbour's pixel; nearly all are exact
        assert len(np.intersect1d(pts, expected)) >= 0.97 * len(expected)
        assert np.mean(face_labels[samples.face_id[pts]] == k.labels[j]) > 0.97


def test_unknown_points_contribute_no_loss():
    logits = torch.randn(5, 3, requires_grad=True)
    targets = torch.zeros(5, 3)
    targets[0, 1] = 0.8
    targets[2, 0] = 0.5
    targets[2, 2] = 0.5
    loss = masked_soft_ce(logits, targets)
    logp = torch.log_softmax(logits.detach(), -1)
    expected = -(0.8 * logp[0, 1] + 0.5 * logp[2, 0] + 0.5 * logp[2, 2]) / 1.8
    assert torch.allclose(loss, expected)
    loss.backward()
    assert torch.all(logits.grad[[1, 3, 4]] == 0) and torch.any(logits.grad[0] != 0)
    # a knowledge row of zeros is what "unknown" means
    k = Knowledge(np.array([1]), np.array([0.8], np.float32), np.array([0], np.int32), np.array([0, 2]),
                  np.array([0, 3]), 5)
    t = k.point_targets(3)
    assert t[[1, 2, 4]].sum() == 0 and t[0, 1] == pytest.approx(0.8) and k.covered.tolist() == [1, 0, 0, 1, 0]


class _OracleWithPlantedError:
    """Test data source speaking the TextTeacher protocol: correct masks from the render's
    face ids, except one planted wrong prediction (the top box called the base) on one
    view of shape 0. The labels it reads are set per shape by the test."""

    teacher_id = "test-oracle"
    is_offline_default = True

    def __init__(self) -> None:
        self.face_labels: np.ndarray | None = None
        self.plant = False

    def predict(self, views, part_names):
        out = []
        for v in range(len(views)):
            fid = views.face_id[v]
            lab = np.where(fid >= 0, self.face_labels[np.clip(fid, 0, None)], -1)
            masks = np.stack([lab == p for p in range(len(part_names))])
            labels, scores = np.arange(len(part_names)), np.full(len(part_names), 0.9, np.float32)
            if self.plant and v == 0:
                masks = np.concatenate([masks, (lab == 1)[None]])
                labels = np.append(labels, 0)
                scores = np.append(scores, 0.9).astype(np.float32)
            out.append(PartPredictions(labels, scores, masks=masks, part_names=tuple(part_names)))
        return out


@pytest.fixture(scope="module")
def distilled(two_box_shape):
    teacher = _OracleWithPlantedError()
    cfg = DistillConfig(views=6, image_size=64, backward_rule="absolute",
                        student=StudentConfig(n_points=512, width=32, n_blocks=2, k=8, iterations=80, batch_size=4))
    pd = PartDistill(teacher, ["base", "top"], cfg, progress=False)
    items = []
    for s, h in enumerate([0.8, 1.0, 1.2, 0.9, 1.1]):
        shape, labels = two_box_shape(h)
        teacher.face_labels, teacher.plant = labels, s == 0
        items.append(pd.prepare(shape, f"shape{s}"))
    return pd, items, pd.fit(items)


def test_backward_distillation_drops_the_planted_wrong_prediction(distilled):
    pd, items, result = distilled
    planted = np.flatnonzero((items[0].knowledge.views == 0) & (items[0].knowledge.labels == 0))
    assert len(planted) == 2  # the correct "base" and the planted one
    sizes = items[0].knowledge.sizes[planted]
    wrong = planted[np.argmax([np.mean(items[0].samples.points[items[0].knowledge.members(j), 1] > 0.0)
                               for j in planted])]
    assert sizes.min() > 0
    refined, stats = pd.rescore(result.forward_student, items)
    assert stats["dropped_from_forward"] >= 1
    agree = items[0].knowledge.agreement(predict_probs(result.forward_student, items[0].points))
    assert agree[wrong] < pd.config.keep_agreement
    correct = np.setdiff1d(np.arange(len(items[0].knowledge)), [wrong])
    assert np.all(agree[correct] >= pd.config.keep_agreement)
    assert result.rounds[0]["stage"] == "forward" and result.rounds[1]["stage"] == "backward 1"


def test_student_and_lifting_label_the_two_parts(distilled, tmp_path, two_box_shape):
    pd, items, result = distilled
    shape, labels = two_box_shape(1.05)
    path = save_student(tmp_path / "student.pt", result.student, pd.part_names, pd.config.student, {"x": 1})
    ckpt = load_student(path)
    assert ckpt.part_names == ("base", "top") and ckpt.meta == {"x": 1}
    faces = label_shape(ckpt, shape)
    assert faces.shape == (shape.n_faces,)
    areas = trimesh.Trimesh(shape.vertices, shape.faces, process=False).area_faces
    assert np.sum(areas * (faces == labels)) / areas.sum() > 0.9
    item = items[1]
    lifted = lift_knowledge(item.knowledge, item.samples.points, 2)
    gt = np.concatenate([np.zeros(12, np.int64), np.ones(12, np.int64)])[item.samples.face_id]
    assert np.mean(lifted == gt) > 0.95
    pts = Shape(item.samples.points, vertex_normals=item.samples.normals)
    assert label_shape(ckpt, pts).shape == (len(item.samples.points),)
    (tmp_path / "bad.pt").write_bytes(b"junk")
    with pytest.raises(InputError):
        load_student(tmp_path / "bad.pt")


def test_class_relative_rule_keeps_a_right_small_part_the_absolute_rule_drops():
    from crossdistill.methods.partdistill.distill import DistillConfig, select_by_agreement

    # class 0 (body): agreements near 0.9; class 1 (handle): the student is unsure of handles
    # everywhere (0.3-0.45), and one handle prediction is wrong (0.05)
    agreement = np.array([0.95, 0.9, 0.2, 0.45, 0.4, 0.3, 0.05])
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    keep_abs, score_abs = select_by_agreement(agreement, labels, 2, 0.5, "absolute")
    np.testing.assert_array_equal(keep_abs, [True, True, False, False, False, False, False])
    np.testing.assert_allclose(score_abs, agreement, rtol=1e-6)
    keep_rel, score_rel = select_by_agreement(agreement, labels, 2, 0.5, "class_relative")
    ref1 = np.quantile([0.45, 0.4, 0.3, 0.05], 0.9)
    np.testing.assert_array_equal(keep_rel, [True, True, False, True, True, True, False])
    np.testing.assert_allclose(score_rel[3:], np.minimum(1, agreement[3:] / ref1), rtol=1e-6)
    assert score_rel.max() <= 1.0
    with pytest.raises(InputError, match="backward_rule"):
        DistillConfig(backward_rule="vote")


def test_reweight_rule_keeps_used_predictions_weighted_and_admits_supported_pool_ones():
    from crossdistill.methods.partdistill.distill import select_by_agreement

    # shares of each prediction's points the student labels with its part
    agreement = np.array([0.9, 0.3, 0.0, 0.6, 0.2])
    used = np.array([True, True, True, False, False])  # the last two were below the forward threshold
    keep, score = select_by_agreement(agreement, np.array([0, 1, 1, 0, 1]), 2, 0.5, "reweight", used=used)
    np.testing.assert_array_equal(keep, [True, True, False, True, False])
    np.testing.assert_allclose(score, agreement, rtol=1e-6)


def test_reweight_backward_down_weights_the_planted_wrong_prediction(distilled):
    from dataclasses import replace

    pd, items, result = distilled
    pd_rw = PartDistill(pd.teacher, pd.part_names, replace(pd.config, backward_rule="reweight"), progress=False)
    refined, stats = pd_rw.rescore(result.forward_student, items)
    one_hot = np.eye(2, dtype=np.float32)
    shares = [it.knowledge.agreement(one_hot[predict_probs(result.forward_student, it.points).argmax(1)])
              for it in items]
    # every oracle prediction is 0.9 confident, so all were used: each is kept unless the student gives
    # none of its points its part, with that share as its new weight
    assert stats["kept"] == sum(int((sh > 0).sum()) for sh in shares) and stats["added_from_pool"] == 0
    np.testing.assert_allclose(refined[0].scores, shares[0][shares[0] > 0], rtol=1e-6)
    k0 = items[0].knowledge
    planted = np.flatnonzero((k0.views == 0) & (k0.labels == 0))
    wrong = planted[np.argmax([np.mean(items[0].samples.points[k0.members(j), 1] > 0.0) for j in planted])]
    correct = np.setdiff1d(np.arange(len(k0)), [wrong])
    assert shares[0][wrong] < 0.2 and np.all(shares[0][correct] > 0.8)


def test_released_class_weights_match_the_hand_computed_formula():
    from crossdistill.methods.partdistill.student_training import released_class_weights

    t1 = np.zeros((6, 3), np.float32)
    t1[:5, 0] = 0.9  # class 0: 5 pairs (+1 below) = 6
    t1[5, 1] = 0.7   # class 1: 1 pair (+1 below) = 2
    t2 = np.zeros((2, 3), np.float32)
    t2[0, 0] = 1.0
    t2[1, 1] = 0.4
    w = released_class_weights([t1, t2], 3)
    n = 8.0
    # class 0: 1 + log4(8 / (3*6)) < 1 -> 1; class 1: 1 + log4(8 / 6); class 2 has no pair -> the cap, 4
    np.testing.assert_allclose(w, [1.0, 1 + np.log(n / 6.0) / np.log(4.0), 4.0], rtol=1e-6)
    np.testing.assert_array_equal(released_class_weights([np.zeros((3, 2))], 2), [1.0, 1.0])
    # the weights multiply each class's term, not the normaliser
    logits = torch.randn(8, 3)
    tgt = torch.from_numpy(np.concatenate([t1, t2]))
    cw = torch.from_numpy(w)
    logp = torch.log_softmax(logits, -1)
    expected = -(cw * tgt * logp).sum() / tgt.sum()
    assert torch.allclose(masked_soft_ce(logits, tgt, cw), expected)
    with pytest.raises(ValueError, match="class_weights"):
        StudentConfig(class_weights="balanced")
