"""Mask2Former instance teacher on a tiny random model."""

from __future__ import annotations

import numpy as np

from crossdistill.teachers import InstanceTeacher, Mask2FormerInstanceTeacher, TeacherCache, cached

from .conftest import check_cache_hit, make_views


def _processor():
    from transformers import Mask2FormerImageProcessorPil

    return Mask2FormerImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 128}, size_divisor=32)


def test_instances_shapes_scores_features(tiny_mask2former, device):
    views = make_views(3, (48, 72))  # resized to 64x96: no padding for this batch
    t = Mask2FormerInstanceTeacher.from_model(tiny_mask2former, _processor(), score_threshold=0.0, batch_size=2,
                                              device=device)
    assert isinstance(t, InstanceTeacher) and t.teacher_id.startswith("mask2former:")
    sets = t.instances(views)
    assert len(sets) == 3
    for s in sets:
        M = len(s)
        assert M > 0
        assert s.masks.shape == (M, 48, 72) and s.masks.dtype == bool and s.masks.reshape(M, -1).any(1).all()
        assert s.scores.shape == (M,) and s.scores.dtype == np.float32
        assert ((s.scores >= 0) & (s.scores <= 1)).all() and np.all(np.diff(s.scores) <= 1e-6)
        assert s.classes.dtype == np.int64 and ((s.classes >= 0) & (s.classes < 5)).all()
        assert s.features.shape == (32, 16, 24) and s.features.dtype == np.float32  # 1/4 of 64x96
        assert np.isfinite(s.features).all()


def test_threshold_and_cache(tiny_mask2former, tmp_path, views):
    none = Mask2FormerInstanceTeacher.from_model(tiny_mask2former, _processor(), score_threshold=1.0)
    assert all(len(s) == 0 and s.masks.shape == (0, 64, 64) for s in none.instances(views))
    t = cached(Mask2FormerInstanceTeacher.from_model(tiny_mask2former, _processor(), score_threshold=0.0,
                                                     feature_dtype=np.float16), TeacherCache(tmp_path))
    first, second = check_cache_hit(lambda: t.instances(views), tiny_mask2former)
    for a, b in zip(first, second):
        assert np.array_equal(a.masks, b.masks) and b.features.dtype == np.float16
        np.testing.assert_array_equal(a.features, b.features)


def test_default_processor(tiny_mask2former):
    """processor=None builds a working processor (shortest edge 384): 48x72 -> 384x576 input."""
    t = Mask2FormerInstanceTeacher.from_model(tiny_mask2former, score_threshold=0.0)
    (s,) = t.instances(make_views(1, (48, 72)))
    assert s.masks.shape[1:] == (48, 72) and s.features.shape == (32, 96, 144)
