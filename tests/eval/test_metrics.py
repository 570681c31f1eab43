"""Tests for crossdistill.eval.metrics: hand-computed cases, scikit-learn cross-checks and
hypothesis properties. Arithmetic for every expected value is written next to it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from crossdistill.errors import InputError
from crossdistill.eval import metrics as M

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def labelled(draw, n_gt=4, n_pred=5, ignore=True, min_size=1, max_size=40):
    """(gt, pred, weights) with gt in {-1 (if ignore), 0..n_gt-1}, pred in -1..n_pred-1, int weights 0..3."""
    n = draw(st.integers(min_size, max_size))
    lo = -1 if ignore else 0
    gt = np.array(draw(st.lists(st.integers(lo, n_gt - 1), min_size=n, max_size=n)))
    pred = np.array(draw(st.lists(st.integers(-1, n_pred - 1), min_size=n, max_size=n)))
    w = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    return gt, pred, w


def brute_class_agnostic(gt, pred, w=None):
    """Loop reference following SAMPart3D's script, on ignore-/zero-weight-filtered elements."""
    w = np.ones(len(gt)) if w is None else np.asarray(w, float)
    keep = (gt != -1) & (w > 0)
    gt, pred, w = gt[keep], pred[keep], w[keep]
    best = []
    for g in np.unique(gt):
        b = 0.0
        for p in np.unique(pred):
            if p < 0:
                continue
            inter = w[(gt == g) & (pred == p)].sum()
            union = w[(gt == g) | (pred == p)].sum()
            b = max(b, inter / union)
        best.append(b)
    return float(np.mean(best))


def permute_labels(a, rng, keep_negative=True):
    """Apply a random bijection to the non-negative label values of a."""
    vals = np.unique(a[a >= 0])
    target = rng.permutation(np.arange(100, 100 + 3 * len(vals)))[: len(vals)]
    out = a.copy()
    for v, t in zip(vals, target):
        out[a == v] = t
    return out


# ------------------------------------------------------------------ class-agnostic mIoU
def test_class_agnostic_hand_case():
    gt = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([5, 5, 7, 7, 7, -1])
    # gt0={0,1,2}: pred5={0,1} I=2 U=3 -> 2/3; pred7={2,3,4} I=1 U=5 -> 1/5; best 2/3 (pred 5)
    # gt1={3,4}: pred7 I=2 U=3 -> 2/3 (pred 7); gt2={5}: only the unlabelled -1 -> 0
    r = M.class_agnostic_part_ious(gt, pred)
    np.testing.assert_allclose(r.part_ious, [2 / 3, 2 / 3, 0.0])
    assert r.gt_labels.tolist() == [0, 1, 2] and r.best_pred.tolist() == [5, 7, -1]
    assert r.miou == pytest.approx(4 / 9)  # (2/3 + 2/3 + 0) / 3
    # area weights [2,1,1,1,1,1]: gt0 area 4, pred5 area 3, I=3, U=4 -> 3/4; gt1 unchanged 2/3
    w = [2, 1, 1, 1, 1, 1]
    assert M.class_agnostic_miou(gt, pred, w) == pytest.approx((3 / 4 + 2 / 3 + 0) / 3)  # 17/36


def test_unlabelled_prediction_never_best_part():
    # gt1={2,3}: -1 covers {0,1,2} (IoU 1/4) but cannot win; pred0={3}: I=1 U=2 -> 1/2
    r = M.class_agnostic_part_ious([0, 0, 1, 1], [-1, -1, -1, 0])
    assert r.part_ious.tolist() == [0.0, 0.5] and r.best_pred.tolist() == [-1, 0]
    assert M.class_agnostic_miou([0, 0, 1], [-1, -1, -1]) == 0.0


def test_drop_ignored_false_follows_sampart3d_script():
    gt, pred = [0, 0, -1], [0, 0, 0]
    assert M.class_agnostic_miou(gt, pred) == 1.0  # ignored element removed everywhere
    # SAMPart3D script: pred0 still has 3 elements: I=2, U=3
    assert M.class_agnostic_miou(gt, pred, drop_ignored=False) == pytest.approx(2 / 3)


def test_class_agnostic_bad_input():
    with pytest.raises(InputError):
        M.class_agnostic_miou([-1, -1], [0, 0])  # no labelled element
    with pytest.raises(InputError):
        M.class_agnostic_miou([0, 1], [0])  # length mismatch
    with pytest.raises(InputError):
        M.class_agnostic_miou([0, 1], [0, 1], weights=[1, -1])
    with pytest.raises(InputError):
        M.class_agnostic_miou([0.5, 1], [0, 1])


@FAST
@given(labelled())
def test_class_agnostic_matches_loop_reference(data):
    gt, pred, w = data
    assume((gt != -1).any() and ((gt != -1) & (w > 0)).any())
    assert M.class_agnostic_miou(gt, pred) == pytest.approx(brute_class_agnostic(gt, pred))
    assert M.class_agnostic_miou(gt, pred, w) == pytest.approx(brute_class_agnostic(gt, pred, w))


@FAST
@given(labelled(), st.integers(0, 2**31 - 1))
def test_class_agnostic_invariant_to_label_permutation(data, seed):
    gt, pred, w = data
    assume(((gt != -1) & (w > 0)).any())
    rng = np.random.default_rng(seed)
    base = M.class_agnostic_miou(gt, pred, w)
    gt2 = permute_labels(gt, rng)  # -1 (ignore) stays -1
    pred2 = permute_labels(pred, rng)  # -1 (unlabelled) stays -1
    assert M.class_agnostic_miou(gt2, pred, w) == pytest.approx(base)
    assert M.class_agnostic_miou(gt, pred2, w) == pytest.approx(base)
    assert M.class_agnostic_miou(gt2, pred2, w) == pytest.approx(base)


@FAST
@given(labelled(), st.integers(0, 2**31 - 1))
def test_class_agnostic_perfect_and_all_in_one(data, seed):
    gt, pred, _ = data
    valid = gt != -1
    assume(valid.any())
    perfect = permute_labels(gt, np.random.default_rng(seed))
    perfect[~valid] = pred[~valid]  # anything on ignored elements
    assert M.class_agnostic_miou(gt, perfect) == pytest.approx(1.0)
    # one predicted part over everything: IoU_i = |gt_i| / N, mean = (N / G) / N = 1 / G
    n_parts = np.unique(gt[valid]).size
    assert M.class_agnostic_miou(gt, np.zeros_like(gt)) == pytest.approx(1 / n_parts)


@FAST
@given(labelled())
def test_class_agnostic_weights_equal_repetition(data):
    gt, pred, w = data
    assume(((gt != -1) & (w > 0)).any())
    weighted = M.class_agnostic_part_ious(gt, pred, w)
    repeated = M.class_agnostic_part_ious(np.repeat(gt, w), np.repeat(pred, w))
    assert weighted.miou == pytest.approx(repeated.miou)
    np.testing.assert_allclose(weighted.part_ious, repeated.part_ious)


@FAST
@given(labelled(), st.integers(0, 2**31 - 1))
def test_class_agnostic_ignores_ignored_elements(data, seed):
    gt, pred, w = data
    ign = gt == -1
    assume((~ign & (w > 0)).any() and ign.any())
    pred2 = pred.copy()
    pred2[ign] = np.random.default_rng(seed).integers(-1, 9, ign.sum())
    assert M.class_agnostic_miou(gt, pred2, w) == pytest.approx(M.class_agnostic_miou(gt, pred, w))


# ------------------------------------------------------------------- semantic part mIoU
# K=2. A: gt [0,0,1,1,1] pred [0,0,0,1,1]: part0 I=2 U=3 -> 2/3; part1 I=2 U=3 -> 2/3.
# B: gt [0,0,0,-1] pred [0,1,1,1]: part0 I=1 U=3 -> 1/3; part1 absent from GT, predicted (I=0 U=3).
# C: gt [0,0,0] pred [0,0,0]: part0 1; part1 absent from both.
SHAPES = [
    ([0, 0, 1, 1, 1], [0, 0, 0, 1, 1]),
    ([0, 0, 0, -1], [0, 1, 1, 1]),
    ([0, 0, 0], [0, 0, 0]),
]


@pytest.mark.parametrize(
    "absent, part1, miou",
    [
        ("skip_gt", 2 / 3, 2 / 3),  # part1 scored in A only; part0 (2/3+1/3+1)/3 = 2/3
        ("skip", 1 / 3, 1 / 2),  # part1 over A, B: (2/3 + 0)/2; miou (2/3 + 1/3)/2
        ("one", 5 / 9, 11 / 18),  # part1 over A, B, C: (2/3 + 0 + 1)/3; miou (2/3 + 5/9)/2
    ],
)
def test_partnete_hand_case(absent, part1, miou):
    r = M.partnete_miou(SHAPES, n_parts=2, absent=absent)
    np.testing.assert_allclose(r.part_iou, [2 / 3, part1])
    assert r.miou == pytest.approx(miou)


def test_partnete_skip_gt_matrix_and_never_scored_part():
    r = M.partnete_miou(SHAPES, 2)
    np.testing.assert_allclose(r.shape_part_iou, [[2 / 3, 2 / 3], [1 / 3, np.nan], [1, np.nan]])
    r = M.partnete_miou([([0, 0], [0, 0])], 2)  # part1 never in GT: NaN, left out of the mean
    assert r.part_iou[0] == 1.0 and np.isnan(r.part_iou[1]) and r.miou == 1.0


def test_partnete_background_counts_unless_ignored():
    gt, pred = [0, 0, -1], [0, 0, 0]
    assert M.partnete_miou([(gt, pred)], 1).miou == pytest.approx(2 / 3)  # I=2, U=3
    assert M.partnete_miou([(gt, pred)], 1, ignore=-1).miou == 1.0


def test_semantic_bad_input():
    with pytest.raises(InputError):
        M.partnete_miou([([0, 2], [0, 0])], n_parts=2)
    with pytest.raises(InputError):
        M.partnete_miou([], n_parts=2)
    with pytest.raises(InputError):
        M.partnete_miou(SHAPES, 2, absent="zero")


def test_shapenetpart_hand_case():
    cats = {
        # s1: part0 I=1 U=2 1/2; part1 I=2 U=3 2/3; part2 absent both 1 -> 13/18
        # s2: parts 0, 1 absent both -> 1, part2 1 -> 1
        "a": ([([0, 0, 1, 1], [0, 1, 1, 1]), ([2, 2], [2, 2])], 3),
        # s3: part0 I=0 U=1 0; part1 I=1 U=2 1/2 -> 1/4
        "b": ([([0, 1], [1, 1])], 2),
    }
    r = M.shapenetpart_miou(cats)
    np.testing.assert_allclose(r.shape_ious["a"], [13 / 18, 1.0])
    assert r.per_category == pytest.approx({"a": 31 / 36, "b": 1 / 4})
    assert r.instance_miou == pytest.approx((13 / 18 + 1 + 1 / 4) / 3)  # 71/108
    assert r.category_miou == pytest.approx((31 / 36 + 1 / 4) / 2)  # 5/9


# ------------------------------------------------------------------------- instance AP
def test_instance_ap_hand_case():
    gt = [0, 0, 1, 1, 2, 2]
    masks = np.zeros((3, 6), bool)
    masks[0, [0, 1]] = True  # s=.9: IoU 1 with gt0 -> TP
    masks[1, [0, 1, 2]] = True  # s=.8: gt0 taken (2/3), gt1 IoU 1/3 -> FP (duplicate)
    masks[2, [2, 3]] = True  # s=.7: gt1 IoU 1 -> TP; gt2 never found
    # precision 1, 1/2, 2/3 at recall 1/3, 1/3, 2/3 -> AP = 1/3 * 1 + 1/3 * 2/3 = 5/9
    assert M.instance_ap(gt, masks, [0.9, 0.8, 0.7]) == pytest.approx(5 / 9)
    # same predictions as a label array: the duplicate cannot be a label, so drop it
    labels = np.array([4, 4, 2, 2, -1, -1])
    # TP (s=.9), TP (s=.7): precision 1, 1 at recall 1/3, 2/3 -> AP 2/3
    assert M.instance_ap(gt, labels, scores=[0, 0, 0.7, 0, 0.9]) == pytest.approx(2 / 3)


def test_average_precision_all_point_interpolation():
    # TP FP TP FP TP, 5 GT: precision 1, .5, 2/3, .5, .6; envelope at TPs 1, 2/3, .6
    assert M.average_precision([5, 4, 3, 2, 1], [1, 0, 1, 0, 1], 5) == pytest.approx((1 + 2 / 3 + 0.6) / 5)
    assert M.average_precision([], [], 3) == 0.0  # no detection
    assert np.isnan(M.average_precision([1.0], [False], 0))  # no GT: undefined


def test_iou_threshold_is_inclusive_and_weights_apply():
    gt = [0, 0]
    mask = np.array([[True, False]])  # IoU 1/2
    assert M.instance_ap(gt, mask) == 1.0  # COCO rule: IoU >= 0.5 matches
    assert M.instance_ap(gt, mask, iou_threshold=0.51) == 0.0
    # gt [0, 1], one mask over both: IoU with gt0 1/2 unweighted, 3/4 with areas [3, 1]
    gt, mask = [0, 1], np.array([[True, True]])
    assert M.instance_ap(gt, mask, iou_threshold=0.6) == 0.0
    assert M.instance_ap(gt, mask, iou_threshold=0.6, weights=[3, 1]) == 0.5  # 1 TP of 2 GT


def test_instance_ap_ignores_ignored_elements():
    # the mask covers the ignored elements too; dropped they leave IoU 1
    assert M.instance_ap([0, 0, -1, -1], np.ones((1, 4), bool)) == 1.0
    # a prediction only on ignored elements is discarded, not a false positive ranked first
    masks = np.array([[0, 0, 1, 1], [1, 1, 0, 0]], bool)
    assert M.instance_ap([0, 0, -1, -1], masks, [0.9, 0.5]) == 1.0
    # (as a FP it would give precision 1/2 at recall 1 -> 0.5)
    assert M.instance_ap([0, 0, 1, 1], masks, [0.9, 0.5]) == 1.0  # both TP when labelled


def test_category_ap_ranks_across_objects():
    a = M.Detections(np.array([0.9, 0.5]), np.array([True, False]), 1)
    b = M.Detections(np.array([0.7]), np.array([True]), 2)
    # merged: .9 TP, .7 TP, .5 FP over 3 GT -> precision 1, 1 up to recall 2/3 -> AP 2/3
    assert M.category_ap([a, b]) == pytest.approx(2 / 3)
    # (the per-object mean would be (1 + 1/2) / 2 = 0.75)
    d = M.match_instances([0, 0, 1, 1], np.array([[0, 0, 1, 1], [1, 1, 0, 0]], bool), [0.2, 0.6])
    assert d.scores.tolist() == [0.6, 0.2] and d.tp.tolist() == [True, True] and d.n_gt == 2


@FAST
@given(labelled(ignore=True, n_gt=5), st.integers(0, 2**31 - 1))
def test_ap50_perfect_and_false_positive_first(data, seed):
    gt, _, _ = data
    ids, sizes = np.unique(gt[gt != -1], return_counts=True)
    assume(ids.size > 0)
    rng = np.random.default_rng(seed)
    masks = gt[None, :] == ids[:, None]
    scores = rng.uniform(0.1, 0.9, ids.size)
    assert M.instance_ap(gt, masks, scores) == pytest.approx(1.0)
    # false positive ranked first: one element of a part of >= 3 elements (IoU <= 1/3)
    assume(sizes.max() >= 3)
    fp = np.zeros((1, gt.size), bool)
    fp[0, np.flatnonzero(gt == ids[sizes.argmax()])[0]] = True
    fp_masks, fp_scores = np.vstack([fp, masks]), np.r_[1.0, scores]
    # then every GT is found: precision k/(k+1) at recall k/g rises with k, so the
    # all-point envelope is g/(g+1) everywhere -> AP = g/(g+1)
    g = ids.size
    expected = g / (g + 1)
    assert M.instance_ap(gt, fp_masks, fp_scores) == pytest.approx(expected)
    assert expected < 1.0


@FAST
@given(labelled(), st.integers(0, 2**31 - 1))
def test_ap_label_form_equals_mask_form_and_ignores_ignored(data, seed):
    gt, pred, w = data
    assume((gt != -1).any())
    rng = np.random.default_rng(seed)
    table = rng.permutation(10) / 10  # distinct scores indexed by label value
    ids = np.unique(pred[pred >= 0])
    masks = pred[None, :] == ids[:, None]
    by_labels = M.instance_ap(gt, pred, table, weights=w + 1)
    assert by_labels == pytest.approx(M.instance_ap(gt, masks, table[ids], weights=w + 1))
    pred2 = pred.copy()
    pred2[gt == -1] = -1
    assert M.instance_ap(gt, pred2, table, weights=w + 1) == pytest.approx(by_labels)


# ------------------------------------------------------------------------ NMI, ARI, AR
@FAST
@given(labelled())
def test_nmi_ari_match_sklearn_on_labelled_elements(data):
    gt, pred, _ = data
    keep = gt != -1
    assume(keep.any())
    assert M.nmi(gt, pred) == pytest.approx(skm.normalized_mutual_info_score(gt[keep], pred[keep]))
    assert M.ari(gt, pred) == pytest.approx(skm.adjusted_rand_score(gt[keep], pred[keep]))
    assert M.nmi(gt, pred, ignore=None) == pytest.approx(skm.normalized_mutual_info_score(gt, pred))


def test_nmi_ari_ignore_and_label_maps():
    gt = np.array([[0, 0, 1], [1, -1, -1]])
    pred = np.array([[3, 3, 5], [5, 3, 5]])  # perfect on labelled pixels, wrong on ignored
    assert M.nmi(gt, pred) == pytest.approx(1.0) and M.ari(gt, pred) == pytest.approx(1.0)
    assert M.ari(gt, pred, ignore=None) < 1.0


def _ar_image():
    gt = np.array([0] * 8 + [1] * 8)  # a 1 x 16 image as a flat label map, 2 instances
    p = np.zeros((2, 16), bool)
    p[0, :5] = True  # IoU 5/8 = .625 with gt0: matched at .50 .55 .60 -> 3 thresholds
    p[1, 8:15] = True  # IoU 7/8 = .875 with gt1: matched at .50 ... .85 -> 8 thresholds
    return gt, p


def test_average_recall_hand_case():
    gt, p = _ar_image()
    assert M.average_recall([(gt, p, [0.2, 0.9])], k=2) == pytest.approx((3 + 8) / 20)
    assert M.average_recall([(gt, p, [0.2, 0.9])], k=1) == pytest.approx(8 / 20)  # only p1
    assert M.average_recall([(gt, p, [0.9, 0.2])], k=1) == pytest.approx(3 / 20)  # only p0
    # a duplicate of p1 matches nothing more
    assert M.average_recall([(gt, np.vstack([p, p[1:]]), [0.2, 0.9, 0.8])]) == pytest.approx(11 / 20)
    # (H, W) label maps and (G, H, W) masks agree
    gt_masks = (gt[None] == np.arange(2)[:, None]).reshape(2, 2, 8)
    assert M.average_recall([(gt_masks, p.reshape(2, 2, 8), [0.2, 0.9])]) == pytest.approx(11 / 20)


def test_average_recall_aggregates_over_images_and_counts_background():
    gt, p = _ar_image()
    perfect = (np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1]), [0.5, 0.5])  # 2 GT, all 10 thr
    # (11 + 20) matched over (2 + 2) GT x 10 thresholds; not the per-image mean (.55 + 1)/2
    assert M.average_recall([(gt, p, [0.2, 0.9]), perfect]) == pytest.approx(31 / 40)
    # background pixels still count: pred over 4 px, gt instance 2 px -> IoU .5 -> only thr .5
    assert M.average_recall([(np.array([0, 0, -1, -1]), np.ones((1, 4), bool), [1.0])]) == pytest.approx(0.1)
    assert np.isnan(M.average_recall([(np.full(4, -1), np.ones((1, 4), bool), [1.0])]))


# -------------------------------------------------------------------------- LiDAR mIoU
def test_confusion_and_miou_hand_case():
    gt = [0, 0, 1, 2, 2, -1]
    pred = [0, 1, 1, 2, 0, 2]
    cm = M.confusion_matrix(gt, pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]  # last element ignored
    # IoU0 = 1/(1+1+1) = 1/3; IoU1 = 1/(1+1+0) = 1/2; IoU2 = 1/(1+0+1) = 1/2
    np.testing.assert_allclose(M.per_class_iou(cm), [1 / 3, 1 / 2, 1 / 2])
    assert M.miou(cm) == pytest.approx(4 / 9)
    cm4 = M.confusion_matrix(gt, pred, 4)  # class 3 absent from both: NaN, not in the mean
    assert np.isnan(M.per_class_iou(cm4)[3]) and M.miou(cm4) == pytest.approx(4 / 9)
    # absent from GT but predicted scores 0 and counts: gt [0], pred [1] -> IoU [0, 0]
    assert M.per_class_iou(M.confusion_matrix([0], [1], 2)).tolist() == [0.0, 0.0]
    assert np.isnan(M.miou(np.zeros((2, 2))))


def test_confusion_bad_input():
    with pytest.raises(InputError):
        M.confusion_matrix([0, 1], [0, 3], 3)
    with pytest.raises(InputError):
        M.confusion_matrix([0, 5], [0, 1], 3)


@FAST
@given(labelled(n_gt=4, n_pred=4, ignore=True), st.integers(1, 4))
def test_confusion_matches_sklearn_and_accumulates(data, split):
    gt, pred, _ = data
    pred = np.where(pred < 0, 0, pred)
    keep = gt != -1
    cm = M.confusion_matrix(gt, pred, 4)
    if keep.any():  # sklearn refuses empty input; ours returns a zero matrix there
        assert np.array_equal(cm, skm.confusion_matrix(gt[keep], pred[keep], labels=range(4)))
    else:
        assert not cm.any()
    acc = M.ConfusionAccumulator(4)
    for chunk_g, chunk_p in zip(np.array_split(gt, split), np.array_split(pred, split)):
        acc.update(chunk_g, chunk_p)
    s = acc.compute()
    assert np.array_equal(s.confusion, cm)
    np.testing.assert_allclose(s.iou, M.per_class_iou(cm))
    if keep.any():
        assert s.accuracy == pytest.approx(np.mean(gt[keep] == pred[keep]))
        # sklearn's jaccard over the classes present in GT or prediction equals our NaN-skipping mean
        present = np.union1d(gt[keep], pred[keep])
        ref = skm.jaccard_score(gt[keep], pred[keep], labels=present, average="macro")
        assert s.miou == pytest.approx(ref)
    acc.reset()
    assert acc.compute().confusion.sum() == 0
