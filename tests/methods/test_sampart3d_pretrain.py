"""SAMPart3D stage 1: back-projected 2D feature targets, backbone distillation, `crossdistill pretrain`."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import trimesh

from crossdistill.cli.main import main
from crossdistill.geometry.io import load_shape
from crossdistill.methods.sampart3d.pretrain import (
    PointBackbone,
    PretrainConfig,
    ShapeTargets,
    point_targets,
    prepare_shape,
    pretrain_backbone,
)
from crossdistill.teachers.base import FeatureMaps
from crossdistill.teachers.offline_features import RenderFeatureTeacher
from crossdistill.types import Correspondence

TINY = PretrainConfig(n_points=512, n_views=8, image_size=64, width=32, n_blocks=2, k=8, steps=150, batch=2, lr=5e-3)


def _shapes(tmp_path):
    folder = tmp_path / "shapes"
    folder.mkdir()
    trimesh.creation.box(extents=(1.0, 0.5, 0.3)).export(folder / "box.ply")
    trimesh.creation.icosphere(subdivisions=2).export(folder / "ball.stl")
    trimesh.creation.cylinder(radius=0.3, height=1.0).export(folder / "can.obj")
    return folder


def test_point_targets_average_the_pixels_of_the_views_that_see_a_point():
    V, C, H, W = 2, 3, 2, 2
    feats = np.arange(V * C * H * W, dtype=np.float32).reshape(V, C, H, W)
    corr = Correspondence(pix_to_point=np.full((V, H, W), -1, np.int32),
                          point_to_pix=np.array([[0, 3, -1], [1, -1, -1]], np.int32),
                          point_depth=np.ones((V, 3), np.float32), width=W, height=H)
    target, seen = point_targets(FeatureMaps(feats, (H, W)), corr)
    flat = feats.reshape(V, C, H * W)
    np.testing.assert_allclose(target[0], (flat[0, :, 0] + flat[1, :, 1]) / 2)
    np.testing.assert_allclose(target[1], flat[0, :, 3])
    assert seen.tolist() == [True, True, False] and (target[2] == 0).all()


def test_targets_of_a_rendered_shape_carry_the_points_own_position():
    # the offline teacher's first three channels are the world position at each pixel, so a
    # correct, occlusion-aware back-projection returns (close to) every seen point's position
    shape = load_shape(_box_file())
    cfg = replace(TINY, n_points=2000, image_size=128)
    data = prepare_shape(shape, RenderFeatureTeacher(), cfg)
    assert data.target.shape == (2000, 33) and data.seen.mean() > 0.95
    err = np.linalg.norm(data.target[data.seen, :3] - data.inputs[data.seen, :3], axis=1)
    assert np.median(err) < 0.01 and np.quantile(err, 0.95) < 0.03


def _box_file():
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "box.ply"
    trimesh.creation.box(extents=(1.0, 0.6, 0.4)).export(path)
    return path


def test_distillation_learns_the_targets_and_unseen_points_carry_no_loss(tmp_path):
    teacher = RenderFeatureTeacher()
    data = [prepare_shape(load_shape(p), teacher, TINY, seed=i)
            for i, p in enumerate(sorted((_shapes(tmp_path)).iterdir()))]
    result = pretrain_backbone(data, teacher.teacher_id, TINY, progress=False)
    assert result.losses[-10:].mean() < 0.5 * result.losses[:5].mean()
    bb = result.backbone
    d = data[0]
    pred = bb(d.inputs[:, :3], d.inputs[:, 3:6], ((d.inputs[:, 6:9] + 0.5) * 255).round().astype(np.uint8))
    z = (d.target - bb.mean) / bb.std
    r2 = 1 - ((pred - z)[d.seen] ** 2).sum() / ((z[d.seen] - z[d.seen].mean(0)) ** 2).sum()
    assert pred.shape == (TINY.n_points, 33) and r2 > 0.5
    # garbage targets on points no view sees change nothing (mask-aware loss); same seed, same run
    garbled = []
    for s in data:
        seen = s.seen.copy()
        seen[::3] = False
        t = s.target.copy()
        t[~seen] = 1e4
        garbled.append(ShapeTargets(s.name, s.inputs, s.knn, t, seen))
    clean = [ShapeTargets(s.name, s.inputs, s.knn, np.where(g.seen[:, None], s.target, 0), g.seen)
             for s, g in zip(data, garbled)]
    short = replace(TINY, steps=5)
    a = pretrain_backbone(garbled, "t", short, progress=False)
    b = pretrain_backbone(clean, "t", short, progress=False)
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-5)


def test_backbone_round_trip_and_determinism(tmp_path):
    teacher = RenderFeatureTeacher()
    data = [prepare_shape(load_shape(p), teacher, TINY) for p in sorted(_shapes(tmp_path).iterdir())]
    cfg = replace(TINY, steps=8)
    a = pretrain_backbone(data, teacher.teacher_id, cfg, progress=False)
    b = pretrain_backbone(data, teacher.teacher_id, cfg, progress=False)
    np.testing.assert_array_equal(a.losses, b.losses)
    a.backbone.save(tmp_path / "bb.pt")
    loaded = PointBackbone.load(tmp_path / "bb.pt")
    pts = np.random.default_rng(0).random((300, 3)).astype(np.float32) - 0.5
    nrm = np.tile([0.0, 0.0, 1.0], (300, 1))
    col = np.zeros((300, 3), np.uint8)
    np.testing.assert_allclose(loaded(pts, nrm, col), a.backbone(pts, nrm, col), atol=1e-6)
    assert loaded.fingerprint == a.backbone.fingerprint and loaded.teacher_id == teacher.teacher_id


def test_dinov2_teacher_targets_and_distillation():
    from crossdistill.teachers import Dinov2FeatureTeacher
    from crossdistill.teachers.testing import tiny_dinov2

    teacher = Dinov2FeatureTeacher.from_model(tiny_dinov2(), image_size=64, upsample="bilinear")
    data = [prepare_shape(load_shape(_box_file()), teacher, replace(TINY, n_views=6))]
    assert data[0].target.shape == (TINY.n_points, 32) and np.isfinite(data[0].target).all()
    result = pretrain_backbone(data, teacher.teacher_id, replace(TINY, steps=5, batch=1), progress=False)
    assert result.backbone.channels == 32 and result.backbone.teacher_id.startswith("dinov2:")


def test_pretrain_cli_then_segment_with_the_backbone(tmp_path, capsys):
    folder = _shapes(tmp_path)
    (folder / "broken.glb").write_bytes(b"not a glb")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    bb = tmp_path / "bb.pt"
    argv = ["pretrain", str(folder), "-o", str(bb), "--points", "512", "--views", "8", "--size", "64",
            "--steps", "20", "--batch", "2", "--width", "16", "--teacher", "offline", "--quiet"]
    assert main(argv) == 0
    assert "skipped broken" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    loaded = PointBackbone.load(bb)
    assert set(loaded.meta["failures"]) == {"broken"} and len(loaded.meta["shapes"]) == 3
    out = tmp_path / "seg"
    assert main(["segment", str(folder / "box.ply"), "-o", str(out), "--backbone", str(bb), "--points", "1500",
                 "--views", "8", "--size", "64", "--iterations", "20", "--scales", "1", "--quiet"]) == 0
    meta = json.loads((out / "box" / "segment.json").read_text())
    assert meta["meta"]["backbone"].startswith("point backbone distilled from offline_features")
    assert meta["settings"]["backbone"] == loaded.fingerprint


def test_pretrain_bad_input_exit_2(tmp_path, capsys):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.glb").write_bytes(b"nope")
    (tmp_path / "bb.pt").write_bytes(b"nope")
    src = tmp_path / "box.ply"
    trimesh.creation.box().export(src)
    cases = [
        ["pretrain", str(tmp_path / "missing"), "-o", str(tmp_path / "x.pt")],
        ["pretrain", str(junk), "-o", str(tmp_path / "x.pt"), "--quiet"],  # nothing usable
        ["pretrain", str(junk), "-o", str(tmp_path / "x.pt"), "--steps", "0"],
        ["segment", str(src), "-o", str(tmp_path / "o"), "--backbone", str(tmp_path / "bb.pt")],
        ["segment", str(src), "-o", str(tmp_path / "o"), "--backbone", str(tmp_path / "none.pt")],
    ]
    for argv in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error:"), argv
    assert not (tmp_path / "x.pt").exists()


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
