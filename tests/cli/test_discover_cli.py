"""`crossdistill discover`: train on a folder of images, label them, resume, reuse a model, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from crossdistill.cli.main import main

FAST = ["--steps", "15", "--grid", "16", "--quiet"]


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory, toy_image):
    root = tmp_path_factory.mktemp("imgs")
    for kind in ("mug", "lamp"):
        (root / kind).mkdir()
        for s in range(3):
            img, _ = toy_image(kind, s, 64)
            Image.fromarray(img).save(root / kind / f"{kind}{s}.png")
    return root


@pytest.fixture(scope="module")
def trained(image_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    assert main(["discover", str(image_folder), "-o", str(out), *FAST]) == 0
    return out


def test_discover_writes_parts_per_image(image_folder, trained, toy_image):
    meta = json.loads((trained / "discover.json").read_text())
    assert meta["offline_teacher"] is True and meta["n_images"] == 6 and meta["n_instances"] == 6
    assert (trained / "model.pt").is_file() and (trained / "ranking.json").is_file()
    ranking = json.loads((trained / "ranking.json").read_text())
    assert set(ranking["classes"]) == {"mug", "lamp"}  # classes are the sub-folders
    for kind in ("mug", "lamp"):
        d = trained / "images" / kind / f"{kind}0"
        parts = np.load(d / "parts.npy")
        classes = np.load(d / "part_classes.npy")
        img, gt = toy_image(kind, 0, 64)
        assert parts.shape == classes.shape == (64, 64) and parts.dtype == np.int32
        fg = gt >= 0
        assert (parts[~fg] == -1).mean() > 0.98 and (parts[fg] >= 0).mean() > 0.98
        info = json.loads((d / "parts.json").read_text())
        assert info["n_parts"] == len(np.unique(parts[parts >= 0]))
        assert all(p["name"].startswith(kind) for p in info["parts"])
        assert Image.open(d / "overlay.png").size == (3 * 64, 64)


def test_the_final_stage_runs_by_default_and_can_be_skipped(image_folder, trained, tmp_path):
    from crossdistill.methods.partdistillation.pipeline import PartDistillation

    meta = json.loads((trained / "discover.json").read_text())
    assert meta["config"]["final_steps"] is None and len(meta["final_losses"]) == 3  # 2 rounds + the final stage
    model = PartDistillation.load(trained / "model.pt")
    assert model.config.final_stage_steps == 15 and model.head is not None
    assert set(model.head.names) == {"mug", "lamp"}
    out = tmp_path / "no_final"
    assert main(["discover", str(image_folder), "-o", str(out), *FAST, "--final-steps", "0"]) == 0
    assert len(json.loads((out / "discover.json").read_text())["final_losses"]) == 2
    assert PartDistillation.load(out / "model.pt").head is None


def test_discover_resumes_and_reuses_a_model(image_folder, trained, tmp_path, capsys, toy_image):
    before = (trained / "images" / "mug" / "mug0" / "parts.json").stat().st_mtime_ns
    assert main(["discover", str(image_folder), "-o", str(trained), "--model", str(trained / "model.pt"), *FAST]) == 0
    assert "0 images labelled, 6 already done" in capsys.readouterr().err
    assert (trained / "images" / "mug" / "mug0" / "parts.json").stat().st_mtime_ns == before
    # a new image labelled with the trained model, no training
    one = tmp_path / "new" / "mug"
    one.mkdir(parents=True)
    Image.fromarray(toy_image("mug", 7, 64)[0]).save(one / "a.png")
    out = tmp_path / "labelled"
    assert main(["discover", str(tmp_path / "new"), "-o", str(out), "--model", str(trained / "model.pt"), *FAST]) == 0
    assert not (out / "model.pt").exists()
    assert np.load(out / "images" / "mug" / "a" / "parts.npy").max() >= 0


def test_a_broken_image_is_isolated(image_folder, tmp_path, capsys):
    root = tmp_path / "mixed"
    (root / "mug").mkdir(parents=True)
    for f in (image_folder / "mug").iterdir():
        (root / "mug" / f.name).write_bytes(f.read_bytes())
    (root / "mug" / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    assert main(["discover", str(root), "-o", str(out), *FAST]) == 1
    assert "mug/broken" in json.loads((out / "failures.json").read_text())
    assert (out / "images" / "mug" / "mug0" / "parts.json").is_file()
    assert "broken" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["discover", "{missing}", "-o", "{out}"], "not found"),
    (["discover", "{empty}", "-o", "{out}"], "no images"),
    (["discover", "{images}", "-o", "{out}", "--k", "1"], "--k"),
    (["discover", "{images}", "-o", "{out}", "--final-steps", "-1"], "--final-steps"),
    (["discover", "{images}", "-o", "{out}", "--model", "{missing}"], "missing"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, image_folder, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    fill = {"missing": str(tmp_path / "missing"), "out": str(tmp_path / "o"), "empty": str(tmp_path / "empty"),
            "images": str(image_folder)}
    assert main([a.format(**fill) for a in argv] + ["--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]
    assert not (tmp_path / "o" / "discover.json").exists()


def test_an_image_without_an_object_fails_cleanly(tmp_path, capsys):
    (tmp_path / "blank").mkdir()
    Image.fromarray(np.full((32, 32, 3), 255, np.uint8)).save(tmp_path / "blank" / "white.png")
    assert main(["discover", str(tmp_path / "blank"), "-o", str(tmp_path / "o"), *FAST]) == 2
    assert "no object" in capsys.readouterr().err


def test_an_image_another_run_is_labelling_is_left_to_it(image_folder, trained, tmp_path, capsys):
    from crossdistill.engine.claims import try_claim

    out = tmp_path / "shared_out"
    held = try_claim(out, "images/mug/mug1")  # as a concurrent discover labelling mug1 holds it
    assert held is not None
    with held:
        assert main(["discover", str(image_folder), "-o", str(out), "--model", str(trained / "model.pt"), *FAST]) == 0
    assert "5 images labelled, 0 already done, 0 failed, 1 claimed by another run" in capsys.readouterr().err
    assert not (out / "images" / "mug" / "mug1").exists() and (out / "images" / "mug" / "mug0" / "parts.npy").is_file()
    assert main(["discover", str(image_folder), "-o", str(out), "--model", str(trained / "model.pt"), *FAST]) == 0
    assert "1 images labelled, 5 already done" in capsys.readouterr().err  # the claim released: it is done now
