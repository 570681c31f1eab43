"""Backward distillation's student options: a box cut to the student's relative mask of its part
(``backward_refine``) and a backward student that continues from the forward one (``backward_init``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from crossdistill.errors import InputError
from crossdistill.methods.partdistill import DistillConfig, Knowledge, PartDistill, StudentConfig, train_student
from crossdistill.methods.partdistill.student_training import ShapePoints, predict_probs


def _knowledge() -> Knowledge:
    # 6 points; prediction 0 (part 1, "handle" box) covers points 0-3, prediction 1 (part 0) covers 2-5
    return Knowledge(np.array([1, 0]), np.array([0.7, 0.9], np.float32), np.zeros(2, np.int32),
                     np.array([0, 4, 8]), np.array([0, 1, 2, 3, 2, 3, 4, 5]), 6)


def test_refine_cuts_each_prediction_to_its_parts_relative_mask():
    k = _knowledge()
    # the student is unsure of the handle everywhere (at most 0.4) but surest on points 0 and 1
    probs = np.array([[0.6, 0.4], [0.65, 0.35], [0.9, 0.1], [0.95, 0.05], [0.3, 0.7], [0.99, 0.01]])
    r = k.refine(probs, 0.5)
    # handle: points with p >= 0.5 * 0.4 -> {0, 1}; body: p >= 0.5 * 0.99 -> {2, 3, 5}
    assert r.members(0).tolist() == [0, 1] and r.members(1).tolist() == [2, 3, 5]
    np.testing.assert_array_equal(r.labels, k.labels)
    np.testing.assert_array_equal(r.scores, k.scores)
    assert r.n_points == 6
    # an absolute cut at 0.5 would have left the handle box empty; ratio 1 keeps only its peak point
    assert k.refine(probs, 1.0).members(0).tolist() == [0]
    assert k.refine(probs, 0.0) is k
    t = r.point_targets(2)
    assert t[0, 1] == pytest.approx(0.7) and t[0, 0] == 0 and t[4].sum() == 0


def _toy_points(n: int = 64, seed: int = 0) -> tuple[ShapePoints, np.ndarray]:
    rng = np.random.default_rng(seed)
    xyz = rng.random((n, 3)).astype(np.float32)
    feats = np.concatenate([xyz, np.zeros((n, 6), np.float32)], 1)
    tgt = np.zeros((n, 2), np.float32)
    tgt[np.arange(n), (xyz[:, 1] > 0.5).astype(int)] = 1.0
    return ShapePoints.build(feats, 8, "toy"), tgt


def test_train_student_continues_from_init_without_modifying_it():
    pts, tgt = _toy_points()
    cfg = StudentConfig(n_points=64, width=16, n_blocks=1, k=8, iterations=20, batch_size=1)
    first = train_student([pts], [tgt], 2, cfg, progress=False)
    before = {k: v.clone() for k, v in first.state_dict().items()}
    same = train_student([pts], [tgt], 2, replace(cfg, iterations=0), progress=False, init=first)
    assert all(torch.equal(v, same.state_dict()[k]) for k, v in before.items())  # 0 steps: the init's weights
    cont = train_student([pts], [tgt], 2, replace(cfg, seed=1), progress=False, init=first)
    assert all(torch.equal(v, first.state_dict()[k]) for k, v in before.items())  # the init is untouched
    fresh = train_student([pts], [tgt], 2, replace(cfg, seed=1), progress=False)
    loss = {}
    for name, net in (("first", first), ("continued", cont), ("fresh", fresh)):
        p = predict_probs(net, pts)
        loss[name] = float(-np.mean(np.log(p[np.arange(64), tgt.argmax(1)])))
    # 20 more steps from the first student fit better than 20 steps from scratch, and than the first
    assert loss["continued"] < loss["fresh"] and loss["continued"] < loss["first"]


def test_backward_options_are_validated_and_recorded():
    with pytest.raises(InputError, match="backward_init"):
        DistillConfig(backward_init="restart")
    with pytest.raises(InputError, match="backward_refine"):
        DistillConfig(backward_refine=1.5)
    d = DistillConfig(backward_init="continue", backward_refine=0.5).to_dict()
    assert d["backward_init"] == "continue" and d["backward_refine"] == 0.5


class _BoxOracle:
    """Test data source (TextTeacher protocol): per view one tight box per part from the render's face ids,
    0.9 confident for the base (part 0) and 0.6 for the top."""

    teacher_id = "test-box-oracle"
    is_offline_default = True
    face_labels: np.ndarray

    def predict(self, views, part_names):
        from crossdistill.teachers.base import PartPredictions

        out = []
        for v in range(len(views)):
            fid = views.face_id[v]
            lab = np.where(fid >= 0, self.face_labels[np.clip(fid, 0, None)], -1)
            boxes, labels = [], []
            for p in range(len(part_names)):
                ys, xs = np.nonzero(lab == p)
                if len(xs):
                    boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
                    labels.append(p)
            out.append(PartPredictions(np.array(labels), np.where(np.array(labels) == 0, 0.9, 0.6).astype(np.float32),
                                       boxes=np.array(boxes, np.float32).reshape(-1, 4),
                                       part_names=tuple(part_names)))
        return out


@pytest.fixture(scope="module")
def box_distilled(two_box_shape):
    teacher = _BoxOracle()
    cfg = DistillConfig(views=4, image_size=48, backward_init="continue", backward_refine=0.9,
                        student=StudentConfig(n_points=256, width=16, n_blocks=1, k=8, iterations=30, batch_size=2))
    pd = PartDistill(teacher, ["base", "top"], cfg, progress=False)
    items = []
    for s, h in enumerate([0.8, 1.2, 1.0]):
        shape, labels = two_box_shape(h)
        teacher.face_labels = labels
        items.append(pd.prepare(shape, f"s{s}"))
    return pd, items, pd.fit(items)


def test_refined_backward_trains_on_fewer_points_and_continued_student_starts_from_forward(box_distilled):
    pd, items, res = box_distilled
    assert res.rounds[1]["stage"] == "backward 1"
    full, _ = replace_pd(pd, backward_refine=0.0).rescore(res.forward_student, items)
    cut, _ = pd.rescore(res.forward_student, items)
    # same predictions kept, each on a subset of its box's points, and strictly fewer in all
    assert [len(k) for k in cut] == [len(k) for k in full]
    assert all(np.all(k.sizes <= f.sizes) for k, f in zip(cut, full))
    assert sum(int(k.sizes.sum()) for k in cut) < sum(int(f.sizes.sum()) for f in full)
    # the continued student is the forward one plus 30 steps: closer to it than a fresh student is
    fresh = replace_pd(pd, backward_init="fresh").fit(items, forward=res.forward_student).student

    def dist(a, b):
        return sum(float((a.state_dict()[k].float() - b.state_dict()[k].float()).norm())
                   for k in a.state_dict() if a.state_dict()[k].is_floating_point())

    assert dist(res.student, res.forward_student) < dist(fresh, res.forward_student)


def replace_pd(pd: PartDistill, **kw) -> PartDistill:
    return PartDistill(pd.teacher, pd.part_names, replace(pd.config, **kw), progress=False)


def test_product_score_keeps_the_teachers_ranking_and_only_lowers_weights(box_distilled):
    pd, items, res = box_distilled
    student, _ = replace_pd(pd, backward_refine=0.0).rescore(res.forward_student, items)
    product, _ = replace_pd(pd, backward_refine=0.0, backward_score="product").rescore(res.forward_student, items)
    for a, b in zip(student, product):
        np.testing.assert_array_equal(a.labels, b.labels)  # the same predictions are kept
        assert np.all(b.scores <= a.scores + 1e-7)
        np.testing.assert_allclose(b.scores, a.scores * np.where(a.labels == 0, 0.9, 0.6), rtol=1e-5)
    with pytest.raises(InputError, match="backward_score"):
        DistillConfig(backward_score="max")


def test_forward_only_class_weights_leave_the_backward_student_unweighted(box_distilled):
    pd, items, res = box_distilled
    weighted = replace(pd.config.student, class_weights="released")

    def backward_student(**kw):
        cfg = replace(pd.config, **kw)
        return PartDistill(pd.teacher, pd.part_names, cfg, progress=False).fit(items, forward=res.forward_student).student

    def same(a, b):
        return all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())

    plain = backward_student()
    forward_only = backward_student(student=weighted, class_weight_stages="forward")
    everywhere = backward_student(student=weighted, class_weight_stages="all")
    assert same(forward_only, plain)  # the backward student trained exactly as without class weights
    assert not same(everywhere, plain)  # whereas "all" weights it
    assert DistillConfig(class_weight_stages="forward").to_dict()["class_weight_stages"] == "forward"
    with pytest.raises(InputError, match="class_weight_stages"):
        DistillConfig(class_weight_stages="backward")


def test_back_projection_keeps_visibility_and_negative_learning_changes_the_students(box_distilled):
    pd, items, res = box_distilled
    vis = items[0].knowledge.visible
    assert vis.shape == (pd.config.views, pd.config.student.n_points) and vis.dtype == bool
    assert vis.any(axis=0).mean() > 0.5  # most sampled points are seen from some view
    neg = items[0].knowledge.negative_targets(2)
    assert neg.shape == (pd.config.student.n_points, 2) and neg.min() >= 0 and neg.max() > 0
    plain = replace_pd(pd, negative_weight=0.0).fit(items, forward=res.forward_student).student
    negative = replace_pd(pd, negative_weight=1.0).fit(items, forward=res.forward_student).student
    assert any(not torch.equal(v, negative.state_dict()[k]) for k, v in plain.state_dict().items())


def test_share_targets_change_the_students_and_keep_a_supported_part(box_distilled):
    pd, items, res = box_distilled
    plain = replace_pd(pd).fit(items, forward=res.forward_student)
    shared = replace_pd(pd, share_targets=True).fit(items, forward=res.forward_student)
    assert any(not torch.equal(v, shared.student.state_dict()[k]) for k, v in plain.student.state_dict().items())
    # the share targets still teach both parts: the share student labels most points as the plain one does
    a = predict_probs(plain.student, items[0].points).argmax(1)
    b = predict_probs(shared.student, items[0].points).argmax(1)
    assert np.mean(a == b) > 0.8 and len(np.unique(b)) == 2


def test_rescore_can_return_the_kept_predictions_as_the_teacher_gave_them(box_distilled):
    pd, items, res = box_distilled
    scored, _ = pd.rescore(res.forward_student, items)
    kept, _ = pd.rescore(res.forward_student, items, refine=0.0, teacher_scores=True)
    for k, s, item in zip(kept, scored, items):
        np.testing.assert_array_equal(k.labels, s.labels)  # the same predictions survive
        assert np.all(k.sizes >= s.sizes)  # whole boxes, not cut to the student's masks
        # each kept prediction is one of the teacher's, with its own points and confidence
        pool = {(int(v), int(l), float(c), tuple(item.knowledge.members(j))) for j, (v, l, c) in
                enumerate(zip(item.knowledge.views, item.knowledge.labels, item.knowledge.scores))}
        for j in range(len(k)):
            assert (int(k.views[j]), int(k.labels[j]), float(k.scores[j]), tuple(k.members(j))) in pool


def test_backward_evidence_option_is_validated_and_recorded():
    assert DistillConfig(backward_evidence="kept").to_dict()["backward_evidence"] == "kept"
    with pytest.raises(InputError, match="backward_evidence"):
        DistillConfig(backward_evidence="all")


def test_kept_evidence_drops_the_evidence_of_a_rejected_box(box_distilled):
    pd, items, res = box_distilled
    k = items[0].knowledge
    # a confident but wrong box: "top" over the 20 points of view 0 the forward student finds most base-like (its
    # probability of "top" there is about 0.3, against 0.37-0.41 on the true top boxes of this 30-step student)
    probs = predict_probs(res.forward_student, items[0].points)
    seen = np.flatnonzero(k.visible[0])
    base = np.sort(seen[np.argsort(probs[seen, 1])[:20]])
    wrong = Knowledge(np.append(k.labels, 1), np.append(k.scores, 0.95).astype(np.float32), np.append(k.views, 0),
                      np.append(k.indptr, k.indptr[-1] + len(base)), np.concatenate([k.points, base]), k.n_points,
                      k.visible)
    spoiled = [replace(items[0], knowledge=wrong)] + list(items[1:])
    kw = dict(negative_weight=1.0, backward_rule="absolute", keep_agreement=0.34)
    a = replace_pd(pd, **kw).fit(spoiled, forward=res.forward_student)
    b = replace_pd(pd, backward_evidence="kept", **kw).fit(spoiled, forward=res.forward_student)
    assert a.rounds[1]["dropped_from_forward"] == 1  # the student rejects the wrong box and only it
    assert any(not torch.equal(v, b.student.state_dict()[key]) for key, v in a.student.state_dict().items())
    # without the wrong box both read the same evidence: the same backward student
    c = replace_pd(pd, **kw).fit(items, forward=res.forward_student)
    d = replace_pd(pd, backward_evidence="kept", **kw).fit(items, forward=res.forward_student)
    assert c.rounds[1]["dropped_from_forward"] == 0
    assert all(torch.equal(v, d.student.state_dict()[key]) for key, v in c.student.state_dict().items())
