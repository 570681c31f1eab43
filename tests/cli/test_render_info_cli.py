"""`crossdistill render` / `info`: outputs on the demo, one-line errors with exit code 2 on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from crossdistill.cli.main import main


def test_render_demo_writes_buffers_and_correspondence(tmp_path):
    out = tmp_path / "r"
    assert main(["render", "--demo", "-o", str(out), "--views", "6", "--size", "64", "--points", "500", "--quiet"]) == 0
    for v in range(6):
        for kind in ("rgb", "face_id", "normal", "depth"):
            assert (out / "views" / f"{v:03d}_{kind}.png").is_file()
    corr = np.load(out / "correspondence.npz")
    assert corr["pix_to_point"].shape == (6, 64, 64)
    assert corr["point_to_pix"].shape == (6, 500)
    # every visible point maps to a foreground pixel
    p2p = corr["point_to_pix"]
    fid = corr["face_id"].reshape(6, -1)
    for v in range(6):
        vis = p2p[v] >= 0
        assert vis.any() and (fid[v][p2p[v][vis]] >= 0).all()
    meta = json.loads((out / "render.json").read_text())
    assert meta["views"] == 6 and meta["points"] == 500
    assert not list(out.rglob(".tmp-*"))  # nothing half-written left behind


def test_info_prints_what_was_loaded(tmp_path, capsys):
    path = tmp_path / "box.ply"
    trimesh.creation.box().export(path)
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert "triangle mesh" in text and "faces:    12" in text and "1 connected components" in text


@pytest.mark.parametrize("content,suffix", [(b"", ".glb"), (b"not a mesh at all", ".glb"), (b"x", ".xyz")])
def test_bad_inputs_fail_with_one_line_and_exit_2(tmp_path, capsys, content, suffix):
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(content)
    for argv in (["info", str(bad)], ["render", str(bad), "-o", str(tmp_path / "o"), "--quiet"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:")
        assert "Traceback" not in err[0]
    assert bad.read_bytes() == content  # input untouched
    assert not (tmp_path / "o").exists()


def test_missing_and_degenerate_inputs(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nope.glb")]) == 2
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((10, 3), np.nan))
    assert main(["info", str(nan)]) == 2
    same = tmp_path / "same.npy"
    np.save(same, np.ones((10, 3)))
    assert main(["info", str(same)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error:") for line in err)
