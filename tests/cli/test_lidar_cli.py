"""`crossdistill distill lidar` on the shared KITTI frames, reuse of a student, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from crossdistill.cli.main import main

FAST = ["--iterations", "3", "--teacher-iterations", "3", "--voxel-size", "0.5", "--quiet"]


def test_distill_lidar_on_kitti_and_reuse(shared_data, tmp_path):
    out = tmp_path / "run"
    kitti = shared_data / "kitti_sample"
    assert main(["distill", "lidar", "--kitti", str(kitti), "-o", str(out), *FAST]) == 0
    meta = json.loads((out / "distill.json").read_text())
    assert meta["mode"] == "fskd" and meta["teacher"].startswith("box2d:") and len(meta["frames"]) == 4
    assert meta["split"]["train"] == ["000000", "000001"] and meta["split"]["test"] == ["000002", "000003"]
    zs = meta["zero_shot"]  # one confusion matrix over the two test frames
    assert zs["frames"] == 2 and 0 <= zs["all"]["miou"] <= 1 and 0 <= zs["seen"]["miou"] <= 1
    assert np.array(zs["confusion"]).sum() == sum(zs["all"]["points"].values())
    assert meta["config"]["batch_size"] == 2 and meta["config"]["augment"] is not None
    assert meta["timings"]["targets_computed"] == 4
    labels = np.load(out / "frames" / "000003" / "labels.npy")
    n_points = (kitti / "training" / "velodyne" / "000003.bin").stat().st_size // 16
    assert labels.shape == (n_points,) and labels.dtype == np.int32
    assert (out / "student.pt").is_file() and (out / "teacher.pt").is_file() and (out / "frames/000000/bev.png").is_file()
    # the saved student labels the frames again, identically, without training
    again = tmp_path / "again"
    assert main(["distill", "lidar", "--kitti", str(kitti), "-o", str(again), "--student", str(out / "student.pt"),
                 "--quiet"]) == 0
    assert np.array_equal(np.load(again / "frames" / "000003" / "labels.npy"), labels)
    assert not (again / "teacher.pt").exists()
    # the saved teacher can be reused too
    third = tmp_path / "third"
    assert main(["distill", "lidar", "--kitti", str(kitti), "-o", str(third), "--teacher-weights",
                 str(out / "teacher.pt"), "--mode", "udakd", "--cache", str(out / "targets"), *FAST]) == 0
    third_meta = json.loads((third / "distill.json").read_text())
    assert third_meta["mode"] == "udakd"
    assert third_meta["timings"]["targets_reused"] == 4 and third_meta["timings"]["targets_computed"] == 0


@pytest.mark.parametrize("extra, message", [
    (["--kitti", "{missing}"], "not found"),
    (["--kitti", "{empty}"], "no items found"),
    (["--kitti", "{empty}", "--iterations", "0"], "--iterations"),
    (["--kitti", "{empty}", "--student", "{bad}"], ""),
])
def test_bad_input_is_one_line_and_exit_2(extra, message, tmp_path, capsys):
    (tmp_path / "empty" / "training" / "velodyne").mkdir(parents=True)
    (tmp_path / "empty" / "training" / "calib").mkdir(parents=True)
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    fill = {"missing": str(tmp_path / "nope"), "empty": str(tmp_path / "empty"), "bad": str(tmp_path / "bad.pt")}
    argv = ["distill", "lidar", *[a.format(**fill) for a in extra], "-o", str(tmp_path / "o"), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]
    assert not (tmp_path / "o" / "distill.json").exists()
