"""Offline feature teacher and few-shot text teacher: no weights, real renders of the demo shape."""

from __future__ import annotations

import numpy as np
import pytest

from crossdistill.errors import InputError
from crossdistill.geometry.demo import demo_part_labels, demo_part_names, demo_shape
from crossdistill.geometry.normalize import normalize_shape
from crossdistill.render.cameras import orbit_rig, sampart3d_rig
from crossdistill.render.renderer import render_shape
from crossdistill.teachers import FeatureTeacher, TextTeacher, cached
from crossdistill.teachers.fewshot import FewShotConfig, FewShotTextTeacher, pixel_labels
from crossdistill.teachers.offline_features import RenderFeatureTeacher
from crossdistill.teachers.registry import load_teacher


@pytest.fixture(scope="module")
def demo():
    shape, _ = normalize_shape(demo_shape())
    return shape, demo_part_labels()["coarse"], demo_part_names()["coarse"]


@pytest.fixture(scope="module")
def demo_render(demo):
    shape = demo[0]
    return render_shape(shape, sampart3d_rig(8, 64), progress=False, n_samples=3000)


@pytest.fixture(scope="module")
def fewshot(demo):
    shape, labels, names = demo
    cfg = FewShotConfig(views_per_shape=12, size=64, crop=48, iterations=120, batch_size=8, width=8)
    return FewShotTextTeacher.fit([shape], [labels], names, cfg, progress=False)


def test_offline_features_agree_across_views_on_the_same_surface_point(demo_render):
    teacher = RenderFeatureTeacher()
    assert isinstance(teacher, FeatureTeacher) and teacher.is_offline_default
    views, corr, samples = demo_render.views, demo_render.correspondence, demo_render.samples
    fm = teacher.features(views)
    assert fm.features.shape == (8, teacher.channels, 64, 64) and fm.at_render_resolution
    feats = fm.features.astype(np.float32)
    assert np.all(feats[:, :, ~views.foreground[0]][0] == 0)  # background is zero
    # the first 3 channels are the surface position: a sampled point seen in a view reads ~its coordinates
    V = corr.point_to_pix.shape[0]
    errs = []
    for v in range(V):
        vis = np.flatnonzero(corr.point_to_pix[v] >= 0)
        pix = corr.point_to_pix[v, vis]
        pos = feats[v, :3].reshape(3, -1)[:, pix].T
        errs.append(np.linalg.norm(pos - samples.points[vis], axis=1))
    err = np.concatenate(errs)
    assert np.median(err) < 0.02, np.median(err)
    # positional code is sin/cos of the position: sin^2 + cos^2 = 1 on the foreground
    fg = views.foreground
    s, c = feats[:, 9:12][:, :, fg[0]][0], feats[:, 12:15][:, :, fg[0]][0]
    np.testing.assert_allclose(s**2 + c**2, 1.0, atol=2e-2)


def test_offline_features_through_the_registry_and_cache(demo_render, tmp_path):
    teacher = cached(load_teacher("offline_features"), tmp_path)
    a = teacher.features(demo_render.views)
    b = teacher.features(demo_render.views)
    np.testing.assert_array_equal(a.features, b.features)
    assert any(tmp_path.rglob("*.npz"))


def test_fewshot_teacher_learns_the_parts_of_its_training_shape(demo, fewshot):
    shape, labels, names = demo
    assert isinstance(fewshot, TextTeacher) and fewshot.is_offline_default
    views = render_shape(shape, orbit_rig((30.0, -30.0), 3, size=64), progress=False, n_samples=64).views
    gt = pixel_labels(views, labels)
    pred = fewshot.probabilities(views).argmax(1)
    acc = (pred[gt >= 0] == gt[gt >= 0]).mean()
    assert acc > 0.8, acc
    preds = fewshot.predict(views, [n.upper() for n in names])  # names match case-insensitively
    assert len(preds) == len(views)
    for v, p in enumerate(preds):
        assert p.masks is not None and p.masks.shape[1:] == (64, 64)
        assert len(p) > 0 and p.labels.max() < len(names)
        assert np.all((p.scores > 0) & (p.scores <= 1))
        assert not np.any(p.masks & ~views.foreground[v])  # predictions lie on the object
        assert p.masks.sum((1, 2)).min() >= fewshot.config.min_pixels


def test_fewshot_teacher_subset_of_names_and_unknown_name(demo, fewshot):
    shape, _, names = demo
    views = render_shape(shape, orbit_rig((30.0,), 2, size=48), progress=False, n_samples=64).views
    sub = fewshot.predict(views, [names[1], names[0]])
    assert all(set(p.labels.tolist()) <= {0, 1} for p in sub)
    with pytest.raises(InputError, match="unknown part names"):
        fewshot.predict(views, ["propeller"])


def test_fewshot_teacher_box_output_is_the_tight_box_of_each_mask(demo, fewshot):
    from dataclasses import replace

    shape, _, names = demo
    views = render_shape(shape, orbit_rig((30.0,), 2, size=48), progress=False, n_samples=64).views
    masks = fewshot.predict(views, names)
    boxer = FewShotTextTeacher(fewshot.model, fewshot.part_names, replace(fewshot.config, output="box"))
    assert boxer.teacher_id != fewshot.teacher_id  # box and mask predictions never share a cache entry
    boxes = boxer.predict(views, names)
    for m, b in zip(masks, boxes):
        assert b.masks is None and b.boxes.shape == (len(m), 4)
        np.testing.assert_array_equal(b.labels, m.labels)
        np.testing.assert_array_equal(b.scores, m.scores)
        for mask, (x0, y0, x1, y1) in zip(m.masks, b.boxes):
            ys, xs = np.nonzero(mask)
            assert (x0, y0, x1, y1) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    with pytest.raises(InputError, match="'mask' or 'box'"):
        FewShotConfig(output="polygon")


def test_fewshot_teacher_candidates_are_the_non_argmax_regions_above_the_threshold(demo, fewshot):
    from dataclasses import replace

    shape, _, names = demo
    views = render_shape(shape, orbit_rig((30.0, -30.0), 2, size=64), progress=False, n_samples=64).views
    plain = fewshot.predict(views, names)
    cands = FewShotTextTeacher(fewshot.model, fewshot.part_names, replace(fewshot.config, candidate_min=0.05))
    assert cands.teacher_id != fewshot.teacher_id
    probs = fewshot.probabilities(views)
    arg = probs.argmax(1)
    extra = 0
    for v, (p, c) in enumerate(zip(plain, cands.predict(views, names))):
        # the argmax regions come first per part and are unchanged
        assert len(c) >= len(p)
        for k in range(len(p)):
            assert any(np.array_equal(p.masks[k], m) and p.labels[k] == lab for m, lab in zip(c.masks, c.labels))
        for m, lab, sc in zip(c.masks, c.labels, c.scores):
            if np.any(arg[v][m] == lab):
                continue  # an argmax region
            extra += 1
            assert sc < 0.5  # never the most probable part, so never confident
            assert np.all(probs[v, lab][m] >= 0.05) and m.sum() >= fewshot.config.min_pixels
    assert extra > 0  # an under-trained teacher always has runner-up regions
    with pytest.raises(InputError, match="candidate_min"):
        FewShotConfig(candidate_min=1.5)


def test_fewshot_teacher_save_load_roundtrip(demo, fewshot, tmp_path):
    shape = demo[0]
    path = fewshot.save(tmp_path / "teacher.pt")
    again = load_teacher("fewshot", path)
    assert again.teacher_id == fewshot.teacher_id and again.part_names == fewshot.part_names
    views = render_shape(shape, orbit_rig((30.0,), 2, size=48), progress=False, n_samples=64).views
    np.testing.assert_allclose(again.probabilities(views), fewshot.probabilities(views), atol=1e-6)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read few-shot teacher"):
        FewShotTextTeacher.load(bad)
    with pytest.raises(InputError, match="needs a trained checkpoint"):
        load_teacher("fewshot")


def test_fewshot_teacher_rejects_bad_training_input(demo):
    shape, labels, names = demo
    with pytest.raises(InputError):
        FewShotTextTeacher.fit([shape], [labels[:-1]], names, progress=False)
    with pytest.raises(InputError):
        FewShotTextTeacher.fit([], [], names, progress=False)
    with pytest.raises(InputError):
        FewShotTextTeacher.fit([shape], [labels], names[:1], progress=False)


def test_fewshot_image_inputs_are_view_local_and_world_inputs_are_not(demo):
    """Rotating the shape and the camera together leaves what a 2D model sees unchanged."""
    from dataclasses import replace

    from crossdistill.teachers.fewshot import IN_CHANNELS, view_inputs
    from crossdistill.types import Cameras

    shape = demo[0]
    cams = orbit_rig((30.0,), 2, size=48)
    c, s = np.cos(0.7), np.sin(0.7)
    R = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])  # 40 deg about y
    turned = replace(shape, vertices=shape.vertices @ R.T, vertex_normals=None)
    R4 = np.eye(4)
    R4[:3, :3] = R
    turned_cams = Cameras(cams.K, cams.world_to_cam @ np.linalg.inv(R4), cams.width, cams.height, cams.names)
    a = render_shape(shape, cams, progress=False, n_samples=64).views
    b = render_shape(turned, turned_cams, progress=False, n_samples=64).views
    both = a.foreground & b.foreground
    assert both.mean() > 0.1
    img_a, img_b = view_inputs(a, "image"), view_inputs(b, "image")
    assert img_a.shape == (2, IN_CHANNELS["image"], 48, 48)
    diff = np.abs(img_a - img_b).transpose(0, 2, 3, 1)[both]
    assert np.median(diff) < 1e-3 and np.quantile(diff, 0.95) < 0.05
    world = np.abs(view_inputs(a, "world") - view_inputs(b, "world")).transpose(0, 2, 3, 1)[both]
    assert np.median(np.linalg.norm(world[:, :3], axis=1)) > 0.05  # world position moves with the shape


def test_fewshot_teacher_with_image_inputs_learns_and_roundtrips(demo, tmp_path):
    shape, labels, names = demo
    cfg = FewShotConfig(views_per_shape=12, size=64, crop=48, iterations=120, batch_size=8, width=8, inputs="image")
    teacher = FewShotTextTeacher.fit([shape], [labels], names, cfg, progress=False)
    assert teacher.model.enc[0][0].in_channels == 8 and "inputs=image" in teacher.teacher_id
    views = render_shape(shape, orbit_rig((30.0, -30.0), 3, size=64), progress=False, n_samples=64).views
    gt = pixel_labels(views, labels)
    acc = (teacher.probabilities(views).argmax(1)[gt >= 0] == gt[gt >= 0]).mean()
    assert acc > 0.7, acc
    again = FewShotTextTeacher.load(teacher.save(tmp_path / "t.pt"))
    assert again.config.inputs == "image"
    np.testing.assert_allclose(again.probabilities(views), teacher.probabilities(views), atol=1e-6)
    with pytest.raises(InputError, match="inputs must be one of"):
        FewShotConfig(inputs="xyz")
