"""The detector-like text teacher emulator (benchmarks only): at strength 0 it returns the ground
truth's boxes / masks; its noise is deterministic under a seed; each error type of its documented
noise model appears at the documented rate."""

from __future__ import annotations

import numpy as np
import pytest

from crossdistill.eval.emulators import DetectorGroundTruth, EmulatedDetectorTeacher
from crossdistill.teachers.base import TextTeacher
from crossdistill.types import Cameras, Views

H = W = 96
# instance rectangles (y0, y1, x0, x1): four large (~18% of the object each), four small (~0.9% each)
LARGE = [(10, 40, 10, 40), (10, 40, 56, 86), (50, 80, 10, 40), (50, 80, 56, 86)]
SMALL = [(42, 46, 44, 48), (42, 46, 50, 54), (82, 86, 44, 48), (4, 8, 44, 48)]
NAMES = ("body", "lid", "door", "handle", "knob", "button", "slot", "switch")


def _views(n_views: int) -> Views:
    face = np.full((n_views, H, W), -1, np.int32)
    for i, (y0, y1, x0, x1) in enumerate(LARGE + SMALL):
        face[:, y0:y1, x0:x1] = i
    fg = face >= 0
    K = np.tile(np.array([[W, 0, W / 2], [0, W, H / 2], [0, 0, 1]], float), (n_views, 1, 1))
    w2c = np.tile(np.eye(4), (n_views, 1, 1))
    w2c[:, 2, 3] = 2.0
    depth = np.where(fg, 1.0, np.inf).astype(np.float32)
    normal = np.zeros((n_views, H, W, 3), np.float32)
    rgb = np.where(fg[..., None], 120, 255).astype(np.uint8)
    return Views(Cameras(K, w2c, W, H, tuple(f"v{i}" for i in range(n_views))), face, depth, normal, rgb)


def _gt() -> DetectorGroundTruth:
    n = len(LARGE) + len(SMALL)
    return DetectorGroundTruth("synthetic", np.zeros((3, 3)), np.zeros((n, 3), np.int64), np.arange(n), NAMES)


def _share(i: int) -> float:
    areas = [(y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in LARGE + SMALL]
    return areas[i] / sum(areas)


def test_speaks_the_text_teacher_protocol_and_says_what_it_is():
    t = EmulatedDetectorTeacher([_gt()], output="box", strength=0.5)
    assert isinstance(t, TextTeacher)
    assert t.teacher_id.startswith("emulated-detector:box:t=0.5:seed=0")
    assert t.is_offline_default is False
    with pytest.raises(ValueError):
        EmulatedDetectorTeacher([_gt()], strength=1.5)
    with pytest.raises(ValueError):
        EmulatedDetectorTeacher([_gt()], output="points")


@pytest.mark.parametrize("output", ["box", "mask"])
def test_strength_zero_is_the_ground_truth(output):
    views = _views(2)
    prompted = ("lid", "body", "knob", "absent part")  # not every instance is prompted
    preds = EmulatedDetectorTeacher([_gt()], output=output, strength=0.0).predict(views, prompted)
    assert len(preds) == 2
    for p in preds:
        assert p.part_names == prompted
        assert np.all(p.scores == 1.0)
        got = sorted(zip(p.labels.tolist(), range(len(p))))
        expected = {0: 1, 1: 0, 4: 2}  # instance -> index of its name in the prompts
        assert sorted(p.labels.tolist()) == sorted(expected.values())
        for label, j in got:
            inst = {v: k for k, v in expected.items()}[label]
            y0, y1, x0, x1 = (LARGE + SMALL)[inst]
            if output == "box":
                assert p.masks is None
                np.testing.assert_array_equal(p.boxes[j], [x0, y0, x1, y1])
            else:
                assert p.boxes is None
                np.testing.assert_array_equal(p.masks[j], views.face_id[0] == inst)


@pytest.mark.parametrize("output", ["box", "mask"])
def test_deterministic_under_a_seed(output):
    views = _views(6)
    a = EmulatedDetectorTeacher([_gt()], output=output, strength=0.7, seed=3).predict(views, NAMES)
    b = EmulatedDetectorTeacher([_gt()], output=output, strength=0.7, seed=3).predict(views, NAMES)
    c = EmulatedDetectorTeacher([_gt()], output=output, strength=0.7, seed=4).predict(views, NAMES)
    geo = (lambda p: p.boxes) if output == "box" else (lambda p: p.masks)
    for p, q in zip(a, b):
        np.testing.assert_array_equal(p.labels, q.labels)
        np.testing.assert_array_equal(p.scores, q.scores)
        np.testing.assert_array_equal(geo(p), geo(q))
    assert any(len(p) != len(q) or not np.array_equal(p.scores, q.scores) for p, q in zip(a, c))
    # views disagree: the errors are drawn per view
    assert len({tuple(np.round(p.scores, 4)) for p in a}) == len(a)


def _rates(output: str, t: float, n_views: int = 400) -> dict:
    views = _views(n_views)
    dets = EmulatedDetectorTeacher([_gt()], output=output, strength=t, seed=11).detect(views, NAMES)
    n_inst = len(LARGE) + len(SMALL)
    found = np.zeros((n_views, n_inst), bool)
    primary = dups = swapped = spurious = 0
    clean_scores, grow = [], []
    for v, d in enumerate(dets):
        prim = (d.kinds != "duplicate") & (d.kinds != "spurious")
        found[v, d.source[prim]] = True
        primary += int(prim.sum())
        swapped += int((d.kinds == "swapped").sum())
        dups += int((d.kinds == "duplicate").sum())
        spurious += int((d.kinds == "spurious").sum())
        for j in np.flatnonzero((d.kinds == "clean") & (d.source < len(LARGE))):
            clean_scores.append(float(d.predictions.scores[j]))
            if output == "box":
                y0, y1, x0, x1 = LARGE[d.source[j]]
                b = d.predictions.boxes[j]
                grow.append((b[2] - b[0]) / (x1 - x0))
    return {"miss": 1 - found.mean(0), "swap": swapped / primary, "dup": dups / primary,
            "spurious": spurious / n_views, "clean_scores": np.array(clean_scores), "grow": np.array(grow)}


@pytest.mark.parametrize("t", [0.5, 1.0])
def test_each_error_type_appears_at_its_documented_rate(t):
    r = _rates("box", t)
    n = 400
    for i in range(len(LARGE) + len(SMALL)):
        p = t * (0.1 + 0.9 * max(0.0, 1.0 - _share(i) / 0.05))
        assert abs(r["miss"][i] - p) < 4 * np.sqrt(p * (1 - p) / n) + 0.01, (i, r["miss"][i], p)
    # small parts are missed far more often than large ones
    assert r["miss"][len(LARGE):].mean() > 3 * r["miss"][:len(LARGE)].mean()
    assert abs(r["swap"] - 0.2 * t) < 0.04
    assert abs(r["dup"] - 0.25 * t) < 0.04
    assert abs(r["spurious"] - t) < 4 * np.sqrt(t / n)
    s = r["clean_scores"]  # large clean parts: 1 - t U(0.2, 0.8)
    assert s.min() >= 1 - 0.8 * t - 1e-6 and s.max() <= 1 - 0.2 * t + 1e-6
    assert abs(s.mean() - (1 - 0.5 * t)) < 0.03
    # loose boxes: each side moves out by |N(0, 0.15 t)| x width (mean 0.15 t sqrt(2 / pi)); none of the
    # large rectangles is near the border by more than the growth, so clipping is rare
    expected = 1 + 2 * 0.15 * t * np.sqrt(2 / np.pi)
    assert abs(np.median(r["grow"]) - expected) < 0.06 * t + 0.02


def test_mask_output_errors_are_loose_masks_on_the_object():
    views = _views(40)
    views.face_id[:, 10:80, 40:56] = 0  # instance 0 now touches instance 1 (columns 56-86)
    dets = EmulatedDetectorTeacher([_gt()], output="mask", strength=1.0, seed=2).detect(views, NAMES)
    fg = views.face_id[0] >= 0
    leak = []
    for d in dets:
        m = d.predictions.masks
        assert m.shape[1:] == (H, W)
        assert not (m & ~fg).any()  # cut to the object's pixels
        for j in np.flatnonzero((d.kinds == "clean") & (d.source == 0)):
            leak.append((m[j] & (views.face_id[0] == 1)).sum())
    assert len(leak) > 20 and np.mean(leak) > 10  # loose: bleeds into the neighbouring part


def test_identifies_the_shape_from_rendered_views():
    import trimesh

    from crossdistill.geometry.normalize import normalize_shape
    from crossdistill.methods.partdistill import partdistill_rig
    from crossdistill.render.renderer import render_shape
    from crossdistill.types import Shape

    box = trimesh.creation.box((1.0, 0.6, 0.4))
    cyl = trimesh.creation.cylinder(0.3, 1.0, sections=12)
    shapes = [Shape(np.asarray(m.vertices, float), np.asarray(m.faces, np.int64), source=s)
              for m, s in ((box, "box"), (cyl, "cyl"))]
    gts = [DetectorGroundTruth.from_shape(s, np.zeros(s.n_faces, np.int64), ("body",)) for s in shapes]
    teacher = EmulatedDetectorTeacher(gts, strength=0.0)
    for s, gt in zip(shapes, gts):
        views = render_shape(normalize_shape(s)[0], partdistill_rig(2, 32), progress=False, n_samples=200).views
        assert teacher.identify(views) is gt
        preds = teacher.predict(views, ("body",))
        assert all(len(p) == 1 and p.labels[0] == 0 for p in preds)
    other = Shape(np.asarray(box.vertices, float) * [1.0, 2.0, 0.5], np.asarray(box.faces, np.int64))
    views = render_shape(normalize_shape(other)[0], partdistill_rig(2, 32), progress=False, n_samples=200).views
    with pytest.raises(ValueError, match="none of the shapes"):
        teacher.identify(views)
