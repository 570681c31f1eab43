"""PTv3-object as SAMPart3D's stage 1: chosen by name, saved and rebuilt as the same network."""

from __future__ import annotations

from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
import trimesh

from crossdistill.cli.main import main
from crossdistill.engine.checkpoints import save_checkpoint
from crossdistill.methods.sampart3d.pretrain import (_FORMAT, PointBackbone, PretrainConfig, ShapeTargets,
                                                     pretrain_backbone)
from crossdistill.students.point_student import PointStudent, knn_graph
from crossdistill.students.ptv3_object import PTv3Object


def _data(n_shapes: int = 2, n: int = 256, C: int = 6) -> list[ShapeTargets]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n_shapes):
        xyz = rng.random((n, 3)).astype(np.float32) - 0.5
        inputs = np.concatenate([xyz, np.zeros((n, 6), np.float32)], 1)
        target = np.concatenate([np.sin(4 * xyz), np.cos(4 * xyz)], 1).astype(np.float16)
        out.append(ShapeTargets(f"s{i}", inputs, knn_graph(xyz, 8), target, np.ones(n, bool)))
    return out


def test_pretrain_with_ptv3_round_trips_as_ptv3(tmp_path):
    torch.set_num_threads(1)
    cfg = PretrainConfig(n_points=256, k=8, backbone="ptv3", steps=3, batch=2)
    result = pretrain_backbone(_data(), "toy", cfg, progress=False)
    assert isinstance(result.backbone.net, PTv3Object) and np.isfinite(result.losses).all()
    result.backbone.save(tmp_path / "bb.pt")
    loaded = PointBackbone.load(tmp_path / "bb.pt")
    assert isinstance(loaded.net, PTv3Object) and loaded.config.backbone == "ptv3"
    pts = np.random.default_rng(1).random((300, 3)).astype(np.float32) - 0.5  # > n_points: FPS + interpolation
    nrm = np.tile([0.0, 0.0, 1.0], (300, 1))
    np.testing.assert_allclose(loaded(pts, nrm, None), result.backbone(pts, nrm, None), atol=1e-5)
    assert loaded.fingerprint == result.backbone.fingerprint


def test_a_checkpoint_without_a_backbone_field_loads_as_the_light_network(tmp_path):
    cfg = PretrainConfig(n_points=256, k=8, width=8, n_blocks=1, steps=1, batch=1)
    bb = pretrain_backbone(_data(1), "toy", cfg, progress=False).backbone
    old = asdict(cfg)
    del old["backbone"]  # written before the field existed
    save_checkpoint(tmp_path / "old.pt", _FORMAT, {
        "config": old, "teacher_id": "toy", "channels": 6, "state_dict": bb.net.state_dict(),
        "mean": torch.from_numpy(bb.mean), "std": torch.from_numpy(bb.std), "meta": {}})
    loaded = PointBackbone.load(tmp_path / "old.pt")
    assert isinstance(loaded.net, PointStudent) and loaded.config == replace(cfg, backbone="light")


def test_pretrain_cli_backbone_option(tmp_path, capsys):
    folder = tmp_path / "shapes"
    folder.mkdir()
    trimesh.creation.box(extents=(1.0, 0.5, 0.3)).export(folder / "box.ply")
    trimesh.creation.icosphere(subdivisions=2).export(folder / "ball.stl")
    out = tmp_path / "bb.pt"
    argv = ["pretrain", str(folder), "-o", str(out), "--points", "256", "--views", "6", "--size", "48",
            "--steps", "2", "--batch", "2", "--teacher", "offline", "--quiet"]
    assert main(argv + ["--backbone", "ptv3"]) == 0
    assert PointBackbone.load(out).config.backbone == "ptv3"
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:  # argparse's own exit for a bad choice
        main(argv + ["--backbone", "pointnet"])
    assert exc.value.code == 2
    assert "--backbone" in capsys.readouterr().err
