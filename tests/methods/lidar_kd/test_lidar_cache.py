"""Target cache: float16 seen points only, sharded files, resume after a kill, shared between runs."""

from __future__ import annotations

import numpy as np
import pytest
from lidar_fixtures import write_semantic_kitti

from crossdistill.errors import InputError
from crossdistill.methods.lidar_kd.cache import TargetCache
from crossdistill.methods.lidar_kd.datasets import open_source
from crossdistill.methods.lidar_kd.targets import point_targets
from crossdistill.teachers.base import SemanticMap


class FakeTeacher:
    """A 2D teacher speaking the real protocol: one SemanticMap per image (features from position and colour)."""

    def __init__(self, fail_after: int | None = None, teacher_id: str = "fake:1") -> None:
        self.calls, self.fail_after, self.teacher_id = 0, fail_after, teacher_id

    def segment(self, images):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt  # killed mid-run
        self.calls += 1
        out = []
        for im in images:
            H, W = im.shape[:2]
            yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
            f = np.stack([xx / W, yy / H, im[..., 0] / 255.0, np.full_like(xx, 3.0)])
            out.append(SemanticMap(f, np.stack([f[0] - f[1], f[1] * 2]), (H, W)))
        return out


@pytest.fixture()
def source(tmp_path):
    return open_source(write_semantic_kitti(tmp_path / "data", frames=3))


def test_round_trip_keeps_only_seen_points_in_float16(source, tmp_path):
    cache = TargetCache(tmp_path / "cache", "fake:1")
    frame = source.load(source.ids[0])
    tg = point_targets(frame, FakeTeacher().segment([c.image for c in frame.images]))
    path = cache.put(source.name, frame.name, tg)
    assert path.parent.parent == cache.dir and len(path.parent.name) == 2  # a shard folder
    got = cache.get(source.name, frame.name)
    assert got.features.dtype == np.float16 and len(got.index) == tg.seen.sum() < len(tg.seen)
    dense = got.dense()
    np.testing.assert_array_equal(dense.seen, tg.seen)
    np.testing.assert_allclose(dense.features, tg.features, atol=2e-3)
    np.testing.assert_allclose(dense.logits, tg.logits, atol=2e-3)
    assert abs(cache.mean_feature_norm(source.name, [frame.name])
               - np.linalg.norm(tg.features[tg.seen], axis=1).mean()) < 1e-4


def test_a_killed_fill_resumes_with_the_missing_frames_only(source, tmp_path):
    cache = TargetCache(tmp_path / "cache", "fake:1")
    with pytest.raises(KeyboardInterrupt):
        cache.fill(source, FakeTeacher(fail_after=2), progress=False)
    done = sorted(p for p in cache.dir.rglob("*.npz"))
    assert len(done) == 2 and not list(cache.dir.rglob(".tmp-*"))
    teacher = FakeTeacher()
    assert cache.fill(source, teacher, progress=False) == {"computed": len(source) - 2, "reused": 2}
    assert teacher.calls == len(source) - 2
    fresh = TargetCache(tmp_path / "other", "fake:1")
    fresh.fill(source, FakeTeacher(), progress=False)
    for fid in source.ids:
        np.testing.assert_array_equal(cache.get(source.name, fid).logits, fresh.get(source.name, fid).logits)


def test_shared_by_runs_of_one_teacher_and_apart_for_another(source, tmp_path):
    TargetCache(tmp_path / "cache", "fake:1").fill(source, FakeTeacher(), progress=False)
    again = FakeTeacher()
    assert TargetCache(tmp_path / "cache", "fake:1").fill(source, again, progress=False)["computed"] == 0
    assert again.calls == 0
    other = TargetCache(tmp_path / "cache", "fake:2")
    assert other.dir != TargetCache(tmp_path / "cache", "fake:1").dir
    assert not other.has(source.name, source.ids[0])
    logits_only = TargetCache(tmp_path / "cache", "fake:1", store=["logits"])
    logits_only.fill(source, FakeTeacher(), ids=source.ids[:1], progress=False)
    assert logits_only.get(source.name, source.ids[0]).features.shape[1] == 0


def test_a_damaged_file_is_one_clear_error(source, tmp_path):
    cache = TargetCache(tmp_path / "cache", "fake:1")
    cache.fill(source, FakeTeacher(), ids=source.ids[:1], progress=False)
    cache.path(source.name, source.ids[0]).write_bytes(b"not a zip")
    with pytest.raises(InputError, match="unreadable"):
        cache.get(source.name, source.ids[0])
    with pytest.raises(InputError, match="no cached targets"):
        cache.get(source.name, source.ids[1])
