"""`crossdistill distill lidar` on SemanticKITTI and nuScenes-lidarseg folders (fixtures in the real layouts)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from lidar_fixtures import write_nuscenes_lidarseg, write_semantic_kitti

from crossdistill.cli.main import main
from crossdistill.teachers.box2d import BoxSupervisedTeacher, BoxTeacherConfig

FAST = ["--iterations", "2", "--voxel-size", "0.5", "--quiet"]


@pytest.fixture(scope="module")
def teacher_path(tmp_path_factory):
    """A tiny box2d teacher (a real one, a few steps on toy images) saved as teacher.pt."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (32, 64, 3), dtype=np.uint8) for _ in range(2)]
    labels = [np.zeros((32, 64), np.int64) for _ in range(2)]
    labels[0][8:20, 10:30] = 1
    t = BoxSupervisedTeacher.fit(images, labels, ("background", "car"), BoxTeacherConfig(iterations=2, width=4),
                                 progress=False)
    return t.save(tmp_path_factory.mktemp("teacher") / "teacher.pt")


@pytest.mark.parametrize("flag, write", [("--semantic-kitti", write_semantic_kitti),
                                         ("--nuscenes-lidarseg", write_nuscenes_lidarseg)])
def test_distill_lidar_on_a_dataset_folder(flag, write, teacher_path, tmp_path):
    root = write(tmp_path / "data")
    out = tmp_path / "run"
    assert main(["distill", "lidar", flag, str(root), "-o", str(out), "--teacher-weights", str(teacher_path),
                 "--workers", "1", *FAST]) == 0
    meta = json.loads((out / "distill.json").read_text())
    train, test = meta["split"]["train"], meta["split"]["test"]
    assert train and test and not set(train) & set(test) and sorted(train + test) == sorted(meta["frames"])
    assert meta["zero_shot"]["frames"] == len(test) and "car" in meta["zero_shot"]["all"]["points"]
    for fid in meta["frames"]:
        assert (out / "frames" / fid / "labels.npy").is_file()
