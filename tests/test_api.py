"""The package's face: `crossdistill.load` / `segment` / `Segmentation`, and the README's 5-line example."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

import crossdistill
from crossdistill.errors import InputError

README = Path(__file__).resolve().parents[1] / "README.md"
SMALL = dict(n_points=3000, n_views=10, image_size=96)


def small_preset(monkeypatch):
    """Make every preset the unit-test budget (the README's code runs verbatim, only smaller)."""
    import dataclasses

    from crossdistill.methods.sampart3d import pipeline

    real = pipeline.preset

    def preset(name, **overrides):
        cfg = real(name, **overrides)
        return dataclasses.replace(cfg, **SMALL, train=dataclasses.replace(cfg.train, iterations=60))

    monkeypatch.setattr(pipeline, "preset", preset)


def two_boxes(path: Path) -> Path:
    a = trimesh.creation.box(extents=(1, 1, 1))
    b = trimesh.creation.box(extents=(0.6, 0.6, 0.6))
    b.apply_translation((1.5, 0, 0))
    scene = trimesh.Scene()
    scene.add_geometry(a, node_name="seat", geom_name="seat")
    scene.add_geometry(b, node_name="cushion", geom_name="cushion")
    scene.export(path)
    return path


def test_import_is_light():
    code = "import sys, crossdistill; crossdistill.load; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    text = README.read_text()
    block = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", text, re.S)
    assert block, "README lacks the API example block"
    code = block.group(1)
    assert len(code.strip().splitlines()) == 5
    small_preset(monkeypatch)
    monkeypatch.chdir(tmp_path)
    two_boxes(tmp_path / "chair.glb")
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert printed.strip()
    obj = tmp_path / "out" / "chair"
    meta = json.loads((obj / "segment.json").read_text())
    assert meta["scales"] == [0.5, 1.0, 2.0]
    assert (obj / "parts_hierarchy.glb").is_file() and any((obj / "scale_1.0" / "parts").glob("*.glb"))


@pytest.fixture(scope="module")
def seg(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    small_preset(mp)
    try:
        path = two_boxes(tmp_path_factory.mktemp("api") / "boxes.glb")
        return crossdistill.segment(path, scales=[0.0, 2.0], mask_teacher="offline", seed=3)
    finally:
        mp.undo()


def test_labels_and_parts_cover_every_face(seg):
    shape = seg.shape
    assert seg.scales == (0.0, 2.0) and seg.config.seed == 3 and seg.config.n_points == 3000
    assert "offline" in seg.mask_teacher
    for s in seg.scales:
        lab = seg.labels(s)
        assert lab.dtype == np.int32 and lab.shape == (shape.n_faces,)
        parts = seg.parts(s)
        assert len(parts) == seg.n_parts(s) >= 1
        covered = np.concatenate([p.elements for p in parts])
        assert np.array_equal(np.sort(covered), np.arange(shape.n_faces))
        for p in parts:
            assert (lab[p.elements] == p.label).all()
            assert np.allclose(p.shape.triangles, shape.triangles[p.elements])
            assert np.allclose(p.centre, 0.5 * (p.shape.vertices.min(0) + p.shape.vertices.max(0)))
    with pytest.raises(KeyError, match="scales: 0 2"):
        seg.labels(1.0)


def test_save_writes_the_segment_layout(seg, tmp_path):
    out = seg.save(tmp_path / "obj", export_parts="ply")
    meta = json.loads((out / "segment.json").read_text())
    assert meta["settings"]["seed"] == 3 and meta["settings"]["mask_teacher"] == seg.mask_teacher
    for s in ("scale_0.0", "scale_2.0"):
        assert np.array_equal(np.load(out / s / "labels.npy"), seg.labels(float(s[6:])))
        assert len(list((out / s / "parts").glob("*.ply"))) == seg.n_parts(float(s[6:]))


@pytest.mark.parametrize("kwargs, match", [
    (dict(preset="slow"), "unknown preset"),
    (dict(device="tpu"), "device must be cpu, cuda"),
    (dict(scales=[3.0]), r"scales must lie in \[0, 2\]"),
    (dict(mask_teacher="nope"), "unknown mask teacher"),
    (dict(n_pointz=5), "unknown setting"),
])
def test_bad_settings_are_one_line_input_errors(tmp_path, kwargs, match):
    path = two_boxes(tmp_path / "b.glb")
    with pytest.raises(InputError, match=match):
        crossdistill.segment(path, **kwargs)


def test_load_reports_a_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        crossdistill.load(tmp_path / "nope.glb")
