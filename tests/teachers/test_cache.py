"""Disk cache: keys, npz round trips, atomic writes, the cached() wrapper."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from crossdistill.teachers import (
    FeatureMaps,
    FeatureTeacher,
    InstanceSet,
    MaskSet,
    MaskTeacher,
    PartPredictions,
    TeacherCache,
    TextTeacher,
    cached,
    default_cache_dir,
    hash_array,
    views_key,
)
from crossdistill.teachers.upsample import JointBilateralUpsampler

from .conftest import PART_NAMES, make_views


class FakeMaskTeacher:
    """Counts calls; returns one full-foreground mask per view."""

    teacher_id = "fake:masks:v1"
    is_offline_default = True

    def __init__(self):
        self.calls = 0

    def masks(self, views):
        self.calls += 1
        fg = views.foreground
        return [MaskSet(fg[v][None], np.array([0.5], np.float32), np.array([1], np.int8)) for v in range(len(views))]


class FakeTextTeacher:
    teacher_id = "fake:text"
    is_offline_default = False

    def __init__(self):
        self.calls = 0

    def predict(self, views, part_names):
        self.calls += 1
        return [PartPredictions(np.arange(len(part_names)), np.ones(len(part_names), np.float32),
                                np.zeros((len(part_names), 4), np.float32), None, tuple(part_names))
                for _ in range(len(views))]


def test_views_key_depends_on_content_and_rig():
    a, b = make_views(), make_views()
    assert views_key(a) == views_key(b)
    moved = dataclasses.replace(a, cameras=dataclasses.replace(a.cameras, world_to_cam=a.cameras.world_to_cam * 2))
    assert views_key(moved).split("-")[0] == views_key(a).split("-")[0]
    assert views_key(moved) != views_key(a)
    assert hash_array(np.zeros(2), "x") != hash_array(np.zeros(2), "y")


def test_default_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CROSSDISTILL_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("CROSSDISTILL_CACHE")
    assert default_cache_dir().name == "crossdistill"


def test_cached_mask_teacher_hits_on_second_call(tmp_path, views):
    inner = FakeMaskTeacher()
    teacher = cached(inner, TeacherCache(tmp_path))
    assert isinstance(teacher, MaskTeacher) and not isinstance(teacher, TextTeacher)
    assert teacher.teacher_id == inner.teacher_id and teacher.is_offline_default
    first = teacher.masks(views)
    second = teacher.masks(views)
    assert inner.calls == 1 and teacher.cache.hits == 1
    for a, b in zip(first, second):
        assert b.masks.dtype == bool and np.array_equal(a.masks, b.masks)
        assert np.array_equal(a.level, b.level) and b.level.dtype == np.int8
    # a different rig misses
    other = make_views(n_views=3)
    teacher.masks(other)
    assert inner.calls == 2
    # no temporary files left behind
    assert not list(tmp_path.rglob("*.tmp"))
    assert len(list(tmp_path.rglob("*.npz"))) == 2


def test_cached_text_teacher_keys_on_part_names(tmp_path, views):
    inner = FakeTextTeacher()
    teacher = cached(inner, tmp_path)
    assert isinstance(teacher, TextTeacher) and not isinstance(teacher, MaskTeacher)
    teacher.predict(views, PART_NAMES)
    got = teacher.predict(views, PART_NAMES)
    assert inner.calls == 1 and got[0].part_names == PART_NAMES and got[0].masks is None
    teacher.predict(views, PART_NAMES[:2])
    assert inner.calls == 2


def test_result_roundtrip_through_cache(tmp_path, views):
    cache = TeacherCache(tmp_path)
    rng = np.random.default_rng(0)
    fm = FeatureMaps(rng.random((2, 4, 8, 8)).astype(np.float16), (64, 64), JointBilateralUpsampler(), views.rgb)
    cache.save("t", "k", fm.to_arrays())
    back = FeatureMaps.from_arrays(cache.load("t", "k"), views)
    assert back.upsampler == fm.upsampler and back.guide is views.rgb
    np.testing.assert_array_equal(back.features, fm.features)
    assert back.pixel_features(1).shape == (4, 64, 64)
    inst = InstanceSet(rng.random((3, 64, 64)) > 0.5, np.ones(3, np.float32), np.arange(3), np.zeros((5, 16, 16)))
    cache.save("t", "i", inst.to_arrays())
    back = InstanceSet.from_arrays(cache.load("t", "i"))
    assert np.array_equal(back.masks, inst.masks) and back.masks.dtype == bool


def test_corrupt_entry_is_a_miss(tmp_path, views):
    inner = FakeMaskTeacher()
    teacher = cached(inner, tmp_path)
    teacher.masks(views)
    (entry,) = tmp_path.rglob("*.npz")
    entry.write_bytes(b"not an npz")
    teacher.masks(views)
    assert inner.calls == 2


def test_cached_rejects_non_teachers():
    with pytest.raises(TypeError):
        cached(object(), "/tmp/unused")
    assert not isinstance(FakeMaskTeacher(), FeatureTeacher)
