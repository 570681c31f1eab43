"""`crossdistill distill partdistill` and `crossdistill predict` end to end on a tiny synthetic category."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from crossdistill.cli.main import main


def _table(height: float, path, labelled: bool) -> None:
    top = trimesh.creation.box((1.0, 0.1, 0.8))
    top.apply_translation((0, height, 0))
    leg = trimesh.creation.box((0.15, height, 0.15))
    leg.apply_translation((0, height / 2, 0))
    mesh = trimesh.util.concatenate([top, leg])
    mesh.export(path)
    if labelled:
        np.save(path.with_suffix("").as_posix() + ".labels.npy",
                np.concatenate([np.zeros(len(top.faces), np.int64), np.ones(len(leg.faces), np.int64)]))


@pytest.fixture(scope="module")
def category(tmp_path_factory):
    root = tmp_path_factory.mktemp("tables")
    (root / "labelled").mkdir()
    (root / "shapes").mkdir()
    for i, h in enumerate([0.6, 0.9]):
        _table(h, root / "labelled" / f"t{i}.glb", True)
    for i, h in enumerate([0.5, 0.7, 0.8, 1.0]):
        _table(h, root / "shapes" / f"s{i}.obj", False)
    return root


def test_distill_then_predict(category, tmp_path, capsys):
    out = tmp_path / "run"
    before = sorted(p.name for p in (category / "shapes").iterdir())
    rc = main(["distill", "partdistill", "--shapes", str(category / "shapes"), "--parts", "top, leg",
               "--few-shot", str(category / "labelled"), "-o", str(out), "--views", "4", "--iterations", "30", "--points", "512",
               "--teacher-iterations", "40", "--cache", str(tmp_path / "cache"), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in (category / "shapes").iterdir()) == before  # inputs untouched
    info = json.loads((out / "distill.json").read_text())
    assert info["part_names"] == ["top", "leg"] and len(info["shapes"]) == 4
    assert [r["stage"] for r in info["rounds"]] == ["forward", "backward 1"]
    assert info["config"]["negative_weight"] == 0.0  # the few-shot teacher's own default
    assert info["config"]["student"]["n_points"] == 512
    assert (out / "fewshot_teacher.pt").is_file()
    pred = tmp_path / "pred"
    rc = main(["predict", "--checkpoint", str(out / "student.pt"), str(category / "shapes"), "-o", str(pred), "--quiet"])
    assert rc == 0
    labels = np.load(pred / "s0" / "labels.npy")
    n_faces = len(trimesh.load(category / "shapes" / "s0.obj", force="mesh", process=False).faces)
    assert labels.shape == (n_faces,) and labels.dtype == np.int32 and set(labels.tolist()) <= {0, 1}
    assert json.loads((pred / "s0" / "labels.json").read_text())["part_names"] == ["top", "leg"]
    assert (pred / "s0" / "parts.glb").is_file()
    # resume: a second run skips every finished shape
    main(["predict", "--checkpoint", str(out / "student.pt"), str(category / "shapes"), "-o", str(pred)])
    assert "4 already done" in capsys.readouterr().err
    # the saved teacher again, box-level this time (PartDistill's GLIP-like setting)
    box = tmp_path / "run_box"
    rc = main(["distill", "partdistill", "--shapes", str(category / "shapes"), "--parts", "top,leg",
               "--teacher-weights", str(out / "fewshot_teacher.pt"), "--teacher-output", "box", "--backward-rule", "class_relative", "-o", str(box),
               "--min-score", "0.3", "--size", "64",
               "--views", "4", "--iterations", "30", "--points", "512", "--cache", str(tmp_path / "cache"), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    info_box = json.loads((box / "distill.json").read_text())
    assert info_box["teacher"].endswith(":box") and info["teacher"].endswith(":mask")
    assert info_box["rounds"][0]["predictions"] > 0 and info_box["config"]["backward_rule"] == "class_relative"
    assert info_box["config"]["min_score"] == 0.3 and info_box["config"]["image_size"] == 64
    assert info_box["rounds"][1]["stage"] == "backward 1"


def test_distill_with_an_image_input_teacher(category, tmp_path, capsys):
    out = tmp_path / "run_image"
    rc = main(["distill", "partdistill", "--shapes", str(category / "shapes"), "--parts", "top,leg",
               "--few-shot", str(category / "labelled"), "--teacher-inputs", "image", "-o", str(out), "--views", "4",
               "--iterations", "20", "--points", "512", "--teacher-iterations", "30", "--backward-rounds", "0", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    info = json.loads((out / "distill.json").read_text())
    assert info["teacher"].endswith(":inputs=image")
    from crossdistill.teachers.fewshot import FewShotTextTeacher

    assert FewShotTextTeacher.load(out / "fewshot_teacher.pt").config.inputs == "image"


@pytest.mark.parametrize("argv, message", [
    (["--parts", ""], "no part names"),
    (["--parts", "a,b"], "needs --few-shot"),
    (["--parts", "a,a", "--few-shot", "x"], "repeat"),
    (["--parts", "a", "--min-score", "1.5"], "--min-score"),
    (["--parts", "a", "--size", "8"], "--size"),
])
def test_distill_bad_input_is_one_line(category, tmp_path, capsys, argv, message):
    rc = main(["distill", "partdistill", "--shapes", str(category / "shapes"), "-o", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_predict_bad_checkpoint(category, tmp_path, capsys):
    bad = tmp_path / "student.pt"
    bad.write_text("nope")
    rc = main(["predict", "--checkpoint", str(bad), str(category / "shapes"), "-o", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot read student checkpoint" in err
