"""`crossdistill segment` end to end: one output per input, one run per output folder (issue 30, items 2-4)."""

from __future__ import annotations

import json

import numpy as np
import trimesh

from crossdistill.cli.main import main

TINY = ["--points", "500", "--views", "6", "--size", "48", "--iterations", "20", "--quiet"]


def test_twins_rerun_with_other_scales_and_output_inside_input(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    trimesh.creation.box().export(src / "twin.glb")
    trimesh.creation.icosphere(subdivisions=1).export(src / "twin.obj")
    out = src / "out"  # inside the input folder
    assert main(["segment", str(src), "-o", str(out), "--scales", "0", "1", *TINY]) == 0
    assert "2 done, 0 already done, 0 failed" in capsys.readouterr().err
    n_faces = {"twin.glb": 12, "twin.obj": 80}
    for name, n in n_faces.items():
        assert len(np.load(out / name / "scale_1.0" / "labels.npy")) == n
    assert main(["segment", str(src), "-o", str(out), "--scales", "1", *TINY]) == 0
    assert "2 done, 0 already done, 0 failed" in capsys.readouterr().err  # its own outputs are not inputs
    for name in n_faces:
        assert sorted(p.name for p in (out / name).glob("scale_*")) == ["scale_1.0"]
        assert json.loads((out / name / "segment.json").read_text())["scales"] == [1.0]


def test_same_seed_and_threads_give_byte_identical_labels_and_both_are_recorded(tmp_path):
    import torch

    box, ball = trimesh.creation.box(), trimesh.creation.icosphere(subdivisions=2)
    ball.apply_translation((2.5, 0, 0))
    trimesh.util.concatenate([box, ball]).export(tmp_path / "prims.glb")
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert main(["segment", str(tmp_path / "prims.glb"), "-o", str(out), "--seed", "3", "--scales", "0", "1",
                     *TINY]) == 0
    for scale in ("scale_0.0", "scale_1.0"):
        first, second = ((o / "prims" / scale / "labels.npy").read_bytes() for o in outs)
        assert first == second
    meta = json.loads((outs[0] / "prims" / "segment.json").read_text())
    assert meta["settings"]["seed"] == 3
    assert meta["runtime"]["torch_threads"] == torch.get_num_threads()
    assert len(meta["input_sha256"]) == 64
