"""DINOv2 feature teacher on a tiny random Dinov2Model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crossdistill.teachers import Dinov2FeatureTeacher, FeatureTeacher, TeacherCache, cached

from .conftest import check_cache_hit, make_views


@pytest.mark.parametrize("upsample", ["bilinear", "jbu"])
def test_features_shapes_and_upsampling(tiny_dinov2, device, upsample):
    views = make_views(2, (48, 64))
    teacher = Dinov2FeatureTeacher.from_model(tiny_dinov2, upsample=upsample, image_size=64, device=device)
    assert isinstance(teacher, FeatureTeacher) and not teacher.is_offline_default
    assert upsample in teacher.teacher_id and teacher.teacher_id.startswith("dinov2:custom-")
    fm = teacher.features(views)
    # 48x64 view, longer side 64 px, patch 8 -> 6 x 8 patch grid, C = 32
    assert fm.features.shape == (2, 32, 6, 8) and fm.features.dtype == np.float16
    assert fm.image_size == (48, 64) and not fm.at_render_resolution
    assert np.isfinite(fm.features).all()
    px = fm.pixel_features(1)
    assert px.shape == (32, 48, 64) and px.dtype == torch.float32
    full = fm.to_pixels()
    assert full.shape == (2, 32, 48, 64)
    np.testing.assert_allclose(full[1], px.numpy(), atol=1e-6)


def test_batched_equals_one_by_one(tiny_dinov2):
    views = make_views(3, (32, 32))
    a = Dinov2FeatureTeacher.from_model(tiny_dinov2, image_size=32, batch_size=3, output_dtype=np.float32)
    b = Dinov2FeatureTeacher.from_model(tiny_dinov2, image_size=32, batch_size=1, output_dtype=np.float32)
    np.testing.assert_allclose(a.features(views).features, b.features(views).features, atol=1e-4)


def test_cache_hit_skips_the_model(tiny_dinov2, tmp_path, views):
    teacher = cached(Dinov2FeatureTeacher.from_model(tiny_dinov2, image_size=64), TeacherCache(tmp_path))
    first, second = check_cache_hit(lambda: teacher.features(views), tiny_dinov2)
    np.testing.assert_array_equal(first.features, second.features)
    assert second.upsampler == first.upsampler and second.guide is views.rgb


def test_from_pretrained_local_directory(tiny_dinov2, tmp_path, views):
    from transformers import BitImageProcessorPil

    tiny_dinov2.save_pretrained(tmp_path / "dino")
    BitImageProcessorPil(image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25]).save_pretrained(tmp_path / "dino")
    teacher = Dinov2FeatureTeacher.from_pretrained(tmp_path / "dino", image_size=64, upsample="bilinear")
    assert teacher.name == "dino" and teacher.mean == (0.5, 0.5, 0.5)
    assert teacher.features(views).features.shape == (2, 32, 8, 8)


def test_teacher_id_tracks_weights(tiny_dinov2):
    import copy

    other = copy.deepcopy(tiny_dinov2)
    with torch.no_grad():
        other.layernorm.weight.add_(0.5)
    a = Dinov2FeatureTeacher.from_model(tiny_dinov2)
    b = Dinov2FeatureTeacher.from_model(other)
    assert a.name == b.name and a.teacher_id != b.teacher_id
    assert a.teacher_id == Dinov2FeatureTeacher.from_model(tiny_dinov2).teacher_id
