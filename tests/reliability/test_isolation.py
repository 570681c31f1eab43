"""One bad item fails alone (issue 30, items 8 and 9): the others are done, the bad one is named once."""

from __future__ import annotations

import json

from crossdistill.cli.main import main
from crossdistill.io_utils import save_image

import make_bad_inputs as corpus  # noqa: E402 - registered by tests/reliability/conftest.py


def test_a_bad_lidar_frame_is_left_out_with_one_line(tmp_path, capsys):
    kitti = tmp_path / "kitti"
    corpus.write_kitti_frame(kitti, "000000", seed=0)
    corpus.write_kitti_frame(kitti, "000001", seed=1)
    corpus.write_kitti_frame(kitti, "000002", seed=2, calib=corpus.KITTI_CALIB | {"P2": " ".join(["0"] * 12)})
    out = tmp_path / "out"
    code = main(["distill", "lidar", "--kitti", str(kitti), "-o", str(out), "--iterations", "2",
                 "--teacher-iterations", "2", "--quiet"])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 1
    assert [ln for ln in err if "000002" in ln and ln.startswith("error:")] == [err[0]] and "P2 is singular" in err[0]
    meta = json.loads((out / "distill.json").read_text())
    assert meta["frames"] == ["000000", "000001"] and list(meta["failed"]) == ["000002"]
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["000000", "000001"]


def test_a_decompression_bomb_fails_alone_in_discover(tmp_path, capsys, toy_image):
    folder = tmp_path / "photos" / "mug"
    for seed in range(3):
        save_image(folder / f"mug{seed}.png", toy_image("mug", seed)[0])
    (folder / "bomb.png").write_bytes(corpus._png(30000, 30000, b"x\x9c\x03\x00\x00\x00\x00\x01"))
    out = tmp_path / "out"
    code = main(["discover", str(tmp_path / "photos"), "-o", str(out), "--steps", "5", "--rounds", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "decompression bomb" in err and "internal error" not in err
    assert sorted(p.name for p in (out / "images" / "mug").iterdir()) == ["mug0", "mug1", "mug2"]
    assert list(json.loads((out / "failures.json").read_text())) == ["mug/bomb"]
