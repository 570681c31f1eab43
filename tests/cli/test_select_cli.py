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


# ---- parts mode: select gives segment's part (issue 26)

def _table_with_ball() -> tuple[trimesh.Trimesh, dict[str, np.ndarray]]:
    """A table (top, four legs) with a ball lying on the top: (mesh, {"top", "legs", "ball": face ids})."""
    top = trimesh.creation.box(extents=(2.0, 1.2, 0.1))
    top.apply_translation((0, 0, 1.0))
    legs = []
    for x in (-0.9, 0.9):
        for y in (-0.5, 0.5):
            leg = trimesh.creation.box(extents=(0.1, 0.1, 1.0))
            leg.apply_translation((x, y, 0.5))
            legs.append(leg)
    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.25)
    ball.apply_translation((0.4, 0.1, 1.3))  # resting on the top (z = 1.05)
    n_top, n_legs = len(top.faces), sum(len(leg.faces) for leg in legs)
    ids = {"top": np.arange(n_top), "legs": np.arange(n_top, n_top + n_legs),
           "ball": np.arange(n_top + n_legs, n_top + n_legs + len(ball.faces))}
    return trimesh.util.concatenate([top, *legs, ball]), ids


def test_select_gives_the_part_segment_gives_at_saved_and_other_scales(segmented):
    obj, mesh, gt, src = segmented
    seg = InteractiveSegmenter.from_dir(obj, load_shape(src))
    for face in (3, int(np.flatnonzero(gt == 1)[7]), int(np.flatnonzero(gt == 2)[11])):
        for scale in (0.0, 1.0, 1.25, 2.0):
            labels = (np.load(obj / f"scale_{scale:.1f}" / "labels.npy") if scale in (0.0, 1.0, 2.0)
                      else seg.parts.labels(scale))
            sel = seg.select(scale, face=face)
            assert sel.mode == "parts" and sel.part == labels[face] and sel.element == face
            assert (sel.element_mask == (labels == labels[face])).all(), (face, scale)
            # a click given as a point on that face is the same click
            by_point = seg.select(scale, point=mesh.triangles[face].mean(axis=0))
            assert by_point.element == face and (by_point.element_mask == sel.element_mask).all()


def test_table_click_next_to_the_ball_keeps_the_ball_out_where_segment_does(tmp_path, fast_segment_args):
    mesh, ids = _table_with_ball()
    src = tmp_path / "table.glb"
    mesh.export(src)
    assert main(["segment", str(src), "-o", str(tmp_path / "out"), *fast_segment_args]) == 0
    obj = tmp_path / "out" / "table"
    seg = InteractiveSegmenter.from_dir(obj, load_shape(src))
    click = np.array((0.45, 0.1, 1.051))  # on the tabletop, beside the ball's contact point
    for scale in (1.0, 1.5, 1.25):
        labels = seg.parts.labels(scale)
        sel = seg.select(scale, point=click)
        assert sel.element in ids["top"]
        assert (sel.element_mask == (labels == labels[sel.element])).all()
        if not np.isin(labels[ids["ball"]], labels[ids["top"]]).any():  # segment keeps the ball apart ...
            assert not sel.element_mask[ids["ball"]].any(), scale  # ... and so does select
    out = tmp_path / "sel"
    assert main(["select", str(obj), "--point", *map(str, click), "--scale", "1.5", "-o", str(out), "--quiet"]) == 0
    doc = json.loads((out / "scale_1.5" / "selection.json").read_text())
    assert doc["mode"] == "parts" and doc["saved_scale"] and doc["part"] == int(np.load(obj / "scale_1.5" / "labels.npy")[doc["clicked_element"]])


def test_radius_mode_is_kept_as_an_option(segmented, tmp_path, capsys):
    obj, mesh, gt, src = segmented
    out = tmp_path / "r"
    assert main(["select", str(obj), "--face", "0", "--scale", "1", "--mode", "radius", "-o", str(out), "--quiet"]) == 0
    doc = json.loads((out / "scale_1.0" / "selection.json").read_text())
    assert doc["mode"] == "radius" and doc["radius"] > 0 and doc["part"] is None and doc["connected"] is True
    out2 = tmp_path / "r2"  # --radius alone means radius mode
    assert main(["select", str(obj), "--face", "0", "--scale", "1", "--radius", "0.3", "-o", str(out2), "--quiet"]) == 0
    assert json.loads((out2 / "scale_1.0" / "selection.json").read_text())["mode"] == "radius"
    capsys.readouterr()
    assert main(["select", str(obj), "--face", "0", "--mode", "parts", "--radius", "0.3"]) == 2
    assert "--mode radius" in capsys.readouterr().err


def test_an_older_field_without_mask_evidence_still_answers_and_says_so(segmented, tmp_path):
    import shutil

    from crossdistill.methods.sampart3d.interactive import save_field_bundle

    obj, mesh, gt, src = segmented
    old = tmp_path / "old"
    shutil.copytree(obj, old)
    bundle = load_field_bundle(old / FIELD_FILE)
    bundle.evidence = None
    save_field_bundle(old / FIELD_FILE, bundle)
    seg = InteractiveSegmenter.from_dir(old, load_shape(src))
    assert any("no mask evidence" in n for n in seg.parts.notes)
    assert seg.select(1.25, face=0).element_mask.any()


def test_selection_png_rings_the_click():
    from crossdistill.cli.select_cmd import _mark_click
    from crossdistill.geometry.normalize import normalize_shape
    from crossdistill.types import Shape
    from crossdistill.viz.highlight import highlight_view, orbit_views

    box = trimesh.creation.box(extents=(1, 1, 1))
    shape = Shape(vertices=np.asarray(box.vertices, dtype=np.float64), faces=np.asarray(box.faces))
    views = orbit_views(shape, 4, 96)
    _, tf = normalize_shape(shape)
    front = tf.apply(np.array([0.0, 0.0, 0.5]))  # the face the first view (azimuth 0, from +z) looks at
    image = highlight_view(views, np.zeros(len(box.faces), bool), 0)
    marked = _mark_click(image, views, 0, front)
    changed = np.argwhere((marked != image).any(axis=2))
    x, y = views.cameras.project(front[None])[0][0, 0]
    assert len(changed) > 10 and np.abs(changed - [y, x]).max() <= 9  # a ring around the click, nothing else
    assert (marked[changed[:, 0], changed[:, 1]].min(axis=1) < 60).any()  # dark: the click is in sight
    behind = _mark_click(image, views, 2, front)  # the opposite view: hidden, a thin grey ring
    hidden = (behind != image).any(axis=2)
    assert 0 < hidden.sum() < len(changed)
