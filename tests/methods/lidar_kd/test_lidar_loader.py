"""Streaming training data: augmentation moves targets with their points, packed batches, workers, one-matrix evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lidar_fixtures import write_semantic_kitti
from test_lidar_cache import FakeTeacher

from crossdistill.eval.metrics.lidar import confusion_matrix
from crossdistill.methods.lidar_kd.cache import TargetCache
from crossdistill.methods.lidar_kd.datasets import open_source, split_ids
from crossdistill.methods.lidar_kd.distill import DistillConfig, predict_points, train_student
from crossdistill.methods.lidar_kd.evaluate import evaluate_frames, map_classes
from crossdistill.methods.lidar_kd.loader import Augment, DistillFrames, LoaderBatches, collate_scans, make_loader
from crossdistill.methods.lidar_kd.student import StudentConfig

FAST = StudentConfig(voxel_size=0.5, widths=(8, 16))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lidar")
    source = open_source(write_semantic_kitti(tmp / "data", frames=3))
    cache = TargetCache(tmp / "cache", "fake:1")
    cache.fill(source, FakeTeacher(), progress=False)
    return source, cache


def test_augmentation_moves_points_and_keeps_their_targets(data):
    source, cache = data
    plain = DistillFrames(source, cache, source.ids, context=0)[1]
    aug = DistillFrames(source, cache, source.ids, context=0, augment=Augment(jitter=0.0), seed=3)
    a = aug[1]
    np.testing.assert_array_equal(a["seen"], plain["seen"])
    np.testing.assert_array_equal(a["f2"], plain["f2"])
    assert not np.allclose(a["xyz"], plain["xyz"])
    # rotation, flips and one scale: every distance to the sensor scales by the same factor, heights too
    r = np.linalg.norm(a["xyz"], axis=1) / np.linalg.norm(plain["xyz"], axis=1)
    assert np.ptp(r) < 1e-5 and 0.95 <= r[0] <= 1.05
    np.testing.assert_allclose(a["xyz"][:, 2], plain["xyz"][:, 2] * r[0], atol=1e-5)
    np.testing.assert_allclose(a["features"][:, 0], a["xyz"][:, 0] / 50, atol=1e-6)
    np.testing.assert_array_equal(aug[1]["xyz"], a["xyz"])  # the same draw for the same (seed, epoch, item)
    aug.epoch = 1
    assert not np.allclose(aug[1]["xyz"], a["xyz"])
    jit = DistillFrames(source, cache, source.ids, context=0, augment=Augment(0.0, 0.0, (1.0, 1.0), 0.05))[1]
    assert 0 < np.abs(jit["xyz"] - plain["xyz"]).max() <= 0.15 + 1e-6


def test_a_batch_packs_several_scans_apart(data):
    source, cache = data
    ds = DistillFrames(source, cache, source.ids, context=0)
    items = [ds[i] for i in range(3)]
    b = collate_scans(items, FAST)
    sizes = [len(it["xyz"]) for it in items]
    assert b.offsets.tolist() == [0, sizes[0], sizes[0] + sizes[1], sum(sizes)]
    assert len(b.scan.point_voxel) == sum(sizes)
    cloud = b.scan.pyramid.levels[0].coords[b.scan.point_voxel, 0]
    assert cloud.tolist() == sum(([k] * n for k, n in enumerate(sizes)), [])
    for k, it in enumerate(items):
        rows = (b.seen >= b.offsets[k]) & (b.seen < b.offsets[k + 1])
        np.testing.assert_array_equal(b.seen[rows].numpy() - int(b.offsets[k]), it["seen"])
        np.testing.assert_allclose(b.f2[rows].numpy(), it["f2"].astype(np.float32))
    assert all(lv._rulebook is not None for lv in b.scan.pyramid.levels)  # built in the worker


def test_workers_give_the_same_batches_as_the_main_process(data):
    source, cache = data
    ds = DistillFrames(source, cache, source.ids, augment=Augment(), seed=1)

    def summary(batches, n):
        return [(b.names, b.f2.sum().item(), b.scan.voxel_features.sum().item()) for b, _ in zip(batches, range(n))]

    one = summary(make_loader(ds, FAST, 2, 0, seed=5), 3)
    two = summary(make_loader(ds, FAST, 2, 2, seed=5), 3)
    assert one == two and sorted(sum((n for n, _, _ in one), [])) == sorted(source.ids)
    # the engine's data source: endless epochs (augmentation redrawn), resumable at any batch, ranks share a batch
    from crossdistill.engine.distributed import World

    engine = summary(LoaderBatches(ds, FAST, 2, 1, seed=5).batches(0, World()), 6)
    assert [n for n, _, _ in engine[:3]] != [n for n, _, _ in engine[3:]] or engine[:3] != engine[3:]
    assert summary(LoaderBatches(ds, FAST, 2, 0, seed=5).batches(4, World()), 2) == engine[4:]
    halves = [summary(LoaderBatches(ds, FAST, 2, 0, seed=5).batches(0, World(rank=r, size=2)), 3) for r in (0, 1)]
    assert [a[0] + b[0] for a, b in zip(*halves)] == [n for n, _, _ in engine[:3]]


def test_train_on_some_frames_and_score_others_with_one_confusion_matrix(data):
    source, cache = data
    train, test = split_ids(source.ids, 0.5, groups=source.groups)
    assert {i.split("/")[0] for i in train}.isdisjoint({i.split("/")[0] for i in test})
    cfg = DistillConfig(mode="fskd", student=FAST, iterations=3, pairs=64, batch_size=2, augment=Augment())
    names = ("road", "car")
    student, losses = train_student(source, cache, train, (np.eye(2, 4, dtype=np.float32), np.zeros(2)), cfg,
                                    progress=False)
    assert len(losses) == 3 and np.isfinite(losses).all()
    res = evaluate_frames(student, source, test, names, targets=cache)
    cm = 0
    for fid in test:
        f = source.load(fid)
        pred = map_classes(names, f.class_names)[predict_points(student, f).argmax(1)]
        cm = cm + confusion_matrix(f.labels, pred, len(f.class_names))
    assert res["frames"] == len(test) and res["confusion"] == cm.tolist()
    assert set(res["all"]["points"]) == {"car", "road"} and res["seen"]["points"]["car"] < res["all"]["points"]["car"]


def test_training_checkpoints_through_the_engine_and_resumes(data, tmp_path):
    source, cache = data
    cfg = DistillConfig(mode="fskd", student=FAST, iterations=2, pairs=64, batch_size=2)
    clf = (np.eye(2, 4, dtype=np.float32), np.zeros(2))
    a, losses = train_student(source, cache, source.ids, clf, cfg, progress=False, run_dir=tmp_path / "run")
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    b, again = train_student(source, cache, source.ids, clf, cfg, progress=False, run_dir=tmp_path / "run")
    assert again == losses  # finished run: resumed at its last step, nothing redone
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
