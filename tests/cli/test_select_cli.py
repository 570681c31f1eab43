"""Click-plus-scale selection (`crossdistill select`, :mod:`crossdistill.methods.sampart3d.interactive`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from crossdistill.cli.main import main
from crossdistill.geometry.io import load_shape
from crossdistill.methods.sampart3d.interactive import FIELD_FILE, InteractiveSegmenter, load_field_bundle

@pytest.fixture(scope="module")
def segmented(tmp_path_factory, three_primitives_module, fast_segment_args):
    """A segmented three-primitive mesh: (object dir, mesh, gt, input path)."""
    root = tmp_path_factory.mktemp("select")
    mesh, gt = three_primitives_module
    src = root / "prims.ply"
    mesh.export(src)
    assert main(["segment", str(src), "-o", str(root / "out"), *fast_segment_args]) == 0
    return root / "out" / "prims", mesh, gt, src


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_saved_field_reproduces_the_segment_features(segmented):
    obj, mesh, _, src = segmented
    bundle = load_field_bundle(obj / FIELD_FILE)
    assert bundle.element == "face" and bundle.n_elements == len(mesh.faces)
    assert bundle.points.shape == (3000, 3) and (bundle.point_face >= 0).all()
    # the clustering of the saved features at scale 2 gives the same parts as the written labels
    labels = np.load(obj / "scale_2.0" / "labels.npy")
    feats = bundle.field.features(2.0, bundle.scale_unit)
    same_part = labels[bundle.point_face][:, None] == labels[bundle.point_face][None, :200]
    dist = np.linalg.norm(feats[:, None, :] - feats[None, :200, :], axis=2)
    assert dist[same_part].mean() < dist[~same_part].mean()


def test_click_selects_the_primitive_under_it(segmented):
    obj, mesh, gt, src = segmented
    seg = InteractiveSegmenter.from_dir(obj, load_shape(src))
    for k, click in enumerate([(-2.0, 0.0, 0.5), (0.0, 0.0, 0.6), (2.0, 0.4, 0.0)]):
        sel = seg.select(1.5, point=np.array(click))
        assert _iou(sel.element_mask, gt == k) > 0.9, (k, np.bincount(gt[sel.element_mask], minlength=3))
        assert sel.snap_distance < 0.1
    # a face click is the same click
    face = int(np.flatnonzero(gt == 1)[0])
    by_face = seg.select(1.5, face=face)
    assert _iou(by_face.element_mask, gt == 1) > 0.9


def test_selection_stays_connected_to_the_click_unless_asked(segmented):
    obj, mesh, gt, src = segmented
    seg = InteractiveSegmenter.from_dir(obj, load_shape(src))
    # a radius no feature distance reaches selects everything by features alone ...
    everything = seg.select(1.0, point=np.array((0.0, 0.0, 0.6)), radius=10.0, connected=False)
    assert everything.element_mask.all()
    # ... and only the clicked, spatially separate primitive when kept connected to the click
    near = seg.select(1.0, point=np.array((0.0, 0.0, 0.6)), radius=10.0, connected=True)
    assert _iou(near.element_mask, gt == 1) > 0.95


def test_select_cli_writes_outputs_per_scale(segmented, tmp_path):
    obj, mesh, gt, src = segmented
    out = tmp_path / "sel"
    before = src.read_bytes()
    assert main(["select", str(obj), "--point", "2.0", "0.4", "0.0", "--scale", "1", "2", "-o", str(out),
                 "--quiet"]) == 0
    assert src.read_bytes() == before
    for s in ("scale_1.0", "scale_2.0"):
        mask = np.load(out / s / "selection.npy")
        assert mask.dtype == bool and mask.shape == (len(mesh.faces),)
        doc = json.loads((out / s / "selection.json").read_text())
        assert doc["n_selected"] == int(mask.sum()) and 0 < doc["share"] < 1
        scene = trimesh.load(out / s / "selection.glb")
        assert set(scene.geometry) == {"rest", "selection"}
        assert len(scene.geometry["selection"].faces) == int(mask.sum())
    assert (out / "selection.png").is_file()


def test_select_bad_input_exit_2(segmented, tmp_path, capsys):
    obj, mesh, gt, src = segmented
    cases = [
        ["select", str(tmp_path / "missing"), "--face", "0"],  # no such object folder
        ["select", str(obj), "--face", str(len(mesh.faces))],  # face out of range
        ["select", str(obj), "--point", "50", "50", "50"],  # click far off the surface
        ["select", str(obj), "--point", "nan", "0", "0"],  # not a number
        ["select", str(obj), "--face", "0", "--scale", "-1"],  # negative scale
    ]
    for argv in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:"), (argv, err)
    # an object folder without the saved field (written by an older version, or deleted)
    broken = tmp_path / "nofield"
    broken.mkdir()
    (broken / "segment.json").write_text((obj / "segment.json").read_text())
    assert main(["select", str(broken), "--face", "0"]) == 2
    assert "no saved grouping field" in capsys.readouterr().err
    # a corrupt field file
    (broken / FIELD_FILE).write_bytes(b"not a torch file")
    assert main(["select", str(broken), "--face", "0"]) == 2
    assert "cannot read grouping field" in capsys.readouterr().err


def test_select_on_a_point_cloud(tmp_path, three_primitives, fast_segment_args):
    mesh, gt = three_primitives
    pts, fid = trimesh.sample.sample_surface(mesh, 4000, seed=0)
    cloud = trimesh.PointCloud(pts)
    src = tmp_path / "cloud.ply"
    cloud.export(src)
    assert main(["segment", str(src), "-o", str(tmp_path / "out"), *fast_segment_args]) == 0
    obj = tmp_path / "out" / "cloud"
    seg = InteractiveSegmenter.from_dir(obj, load_shape(src))
    sel = seg.select(1.5, point=pts[np.flatnonzero(gt[fid] == 2)[0]])
    assert sel.element_mask.shape == (len(pts),)
    assert _iou(sel.element_mask, gt[fid] == 2) > 0.9
    assert main(["select", str(obj), "--face", "0"]) == 2  # face clicks need a mesh


def test_segment_without_the_field_then_select_says_why(tmp_path, three_primitives, fast_segment_args, capsys):
    mesh, _ = three_primitives
    src = tmp_path / "prims.ply"
    mesh.export(src)
    assert main(["segment", str(src), "-o", str(tmp_path / "out"), *fast_segment_args, "--no-field"]) == 0
    obj = tmp_path / "out" / "prims"
    assert (obj / "segment.json").is_file() and not (obj / FIELD_FILE).exists()
    capsys.readouterr()
    assert main(["select", str(obj), "--face", "0"]) == 2
    assert "no saved grouping field" in capsys.readouterr().err


def test_a_bad_scale_anywhere_in_the_list_writes_nothing(segmented, tmp_path):
    obj = segmented[0]
    out = tmp_path / "sel"
    assert main(["select", str(obj), "--face", "0", "--scale", "1", "-1", "-o", str(out), "--quiet"]) == 2
    assert not out.exists()
