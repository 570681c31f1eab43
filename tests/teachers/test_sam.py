"""SAM automatic mask generation on a tiny random SamModel."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from crossdistill.teachers import AutoMaskSettings, MaskSet, MaskTeacher, SamMaskTeacher, TeacherCache, cached

from .conftest import CallCounter, check_cache_hit, make_views

# random weights predict random IoUs: keep every mask so the pipeline has work to do
LOOSE = dict(points_per_side=4, points_per_batch=5, pred_iou_thresh=-1.0, stability_score_thresh=-1.0)


def _check_set(ms: MaskSet, fg: np.ndarray) -> None:
    M = len(ms)
    assert ms.masks.shape == (M, *fg.shape) and ms.masks.dtype == bool
    assert ms.scores.shape == (M,) and ms.scores.dtype == np.float32
    assert ms.level.shape == (M,) and ms.level.dtype == np.int8
    assert ((ms.scores >= 0) & (ms.scores <= 1)).all()
    assert set(ms.level.tolist()) <= {0, 1, 2}  # which of SAM's three outputs, not a forced level
    assert ms.masks.reshape(M, -1).any(1).all(), "empty masks must be dropped"
    assert (np.diff(ms.scores) <= 0).all(), "masks come best first"


@pytest.mark.parametrize("crop", [False, True])
def test_masks_shapes_and_foreground(tiny_sam, device, crop):
    views = make_views(2, (64, 80))
    teacher = SamMaskTeacher.from_model(tiny_sam, device=device, crop_to_foreground=crop, **LOOSE)
    assert isinstance(teacher, MaskTeacher) and not teacher.is_offline_default
    sets = teacher.masks(views)
    assert len(sets) == 2
    for v, ms in enumerate(sets):
        _check_set(ms, views.foreground[v])
        assert len(ms) > 0
        assert not (ms.masks & ~views.foreground[v]).any(), "masks leak outside the object"


def test_all_three_outputs_survive_without_nms(tiny_sam, views):
    teacher = SamMaskTeacher.from_model(tiny_sam, **dict(LOOSE, points_per_side=1, box_nms_thresh=1.0,
                                                         restrict_to_foreground=False))
    ms = teacher.masks(views)[0]
    assert sorted(ms.level.tolist()) == [0, 1, 2], "each of the prompt's outputs is a mask of its own"


def test_crop_layers_run_on_the_real_model(tiny_sam, views):
    one = SamMaskTeacher.from_model(tiny_sam, **LOOSE).masks(views)
    layered = SamMaskTeacher.from_model(tiny_sam, crop_n_layers=1, crop_n_points_downscale_factor=2,
                                        **LOOSE).masks(views)
    for ms, v in zip(layered, range(len(views))):
        _check_set(ms, views.foreground[v])
    assert len(one) == len(layered)


def test_thresholds_filter_and_empty_views(tiny_sam, views):
    strict = SamMaskTeacher.from_model(tiny_sam, points_per_side=4, pred_iou_thresh=2.0)  # no IoU exceeds 2
    assert all(len(ms) == 0 and ms.masks.shape == (0, 64, 64) for ms in strict.masks(views))
    blank = dataclasses.replace(views, face_id=np.full_like(views.face_id, -1))
    counter = CallCounter(tiny_sam.vision_encoder)
    assert all(len(ms) == 0 for ms in SamMaskTeacher.from_model(tiny_sam, **LOOSE).masks(blank))
    assert counter.n == 0, "no foreground: the encoder should not run"
    counter.remove()


def test_settings_and_teacher_id(tiny_sam):
    t = SamMaskTeacher.from_model(tiny_sam, settings=AutoMaskSettings(points_per_side=8), max_masks=5)
    assert t.settings.points_per_side == 8 and t.settings.max_masks == 5
    assert "points_per_side=8" in t.teacher_id and t.teacher_id.startswith("sam:")
    assert SamMaskTeacher.from_model(tiny_sam).teacher_id != t.teacher_id


def test_cache_hit_skips_the_model(tiny_sam, tmp_path, views):
    teacher = cached(SamMaskTeacher.from_model(tiny_sam, max_masks=6, **LOOSE), TeacherCache(tmp_path))
    first, second = check_cache_hit(lambda: teacher.masks(views), tiny_sam.mask_decoder)
    for a, b in zip(first, second):
        assert len(a) <= 6
        assert np.array_equal(a.masks, b.masks) and np.array_equal(a.level, b.level)
        np.testing.assert_array_equal(a.scores, b.scores)
