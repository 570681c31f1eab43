"""`crossdistill segment`: recovers separated primitives, batch resume, failure isolation, bad input."""

from __future__ import annotations

import json

import numpy as np
import trimesh

from crossdistill.cli.main import main
from crossdistill.eval.metrics import class_agnostic_miou

def test_segment_recovers_separated_primitives_at_a_coarse_scale(tmp_path, three_primitives, fast_segment_args):
    mesh, gt = three_primitives
    src = tmp_path / "prims.ply"
    mesh.export(src)
    before = src.read_bytes()
    out = tmp_path / "out"
    assert main(["segment", str(src), "-o", str(out), *fast_segment_args]) == 0
    assert src.read_bytes() == before
    obj = out / "prims"
    scores = []
    for d in sorted(obj.glob("scale_*")):
        labels = np.load(d / "labels.npy")
        assert labels.dtype == np.int32 and labels.shape == (len(mesh.faces),)
        assert (d / "parts.glb").is_file() and (d / "parts_colored.glb").is_file()
        scores.append(class_agnostic_miou(gt, labels, weights=mesh.area_faces))
    assert len(scores) == 5
    assert max(scores) > 0.9, scores
    meta = json.loads((obj / "segment.json").read_text())
    assert meta["meta"]["mask_teacher_offline"] is True and meta["settings"]["seed"] == 0
    assert (obj / "contact_sheet.png").is_file() and (obj / "hierarchy.json").is_file()
    # parts GLB: one node per part
    scene = trimesh.load(obj / "scale_2.0" / "parts.glb")
    assert len(scene.geometry) == int(np.load(obj / "scale_2.0" / "labels.npy").max()) + 1


def test_batch_isolates_failures_and_resumes(tmp_path, capsys, tiny_segment_args):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    trimesh.creation.box().export(folder / "a.ply")
    trimesh.creation.icosphere(subdivisions=1).export(folder / "sub" / "b.stl")
    (folder / "broken.glb").write_bytes(b"garbage")
    out = tmp_path / "out"
    assert main(["segment", str(folder), "-o", str(out), *tiny_segment_args]) == 1  # one failed
    assert (out / "a" / "segment.json").is_file() and (out / "sub" / "b" / "segment.json").is_file()
    failures = json.loads((out / "failures.json").read_text())
    assert list(failures) == ["broken"]
    assert "error: broken:" in capsys.readouterr().err
    # interrupted run: remove one marker; the re-run redoes only that object
    stamp = (out / "a" / "segment.json").stat().st_mtime_ns
    (out / "sub" / "b" / "segment.json").unlink()
    (folder / "broken.glb").unlink()
    assert main(["segment", str(folder), "-o", str(out), *tiny_segment_args]) == 0
    err = capsys.readouterr().err
    assert "1 done, 1 already done, 0 failed" in err
    assert (out / "a" / "segment.json").stat().st_mtime_ns == stamp
    assert (out / "sub" / "b" / "segment.json").is_file()
    assert not (out / "failures.json").exists()


def test_segment_bad_input_exit_2(tmp_path, capsys, fast_segment_args):
    bad = tmp_path / "x.obj"
    bad.write_text("v 0 0 0\nv 0 0 0\nv 0 0 0\nf 1 2 3\n")  # one degenerate face
    assert main(["segment", str(bad), "-o", str(tmp_path / "o"), *fast_segment_args]) == 2
    assert main(["segment", str(tmp_path / "missing.glb"), "-o", str(tmp_path / "o")]) == 2
    assert main(["segment", "--demo", "-o", str(tmp_path / "o"), "--views", "2"]) == 2
    err = capsys.readouterr().err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) == 3
    assert "Traceback" not in err
    assert not (tmp_path / "o" / "x").exists()


def test_parts_stay_inside_mesh_pieces_unless_merging_is_asked(tmp_path, fast_segment_args):
    # two touching boxes modelled as separate pieces (a lid on a body)
    body = trimesh.creation.box(extents=(1, 1, 1))
    lid = trimesh.creation.box(extents=(0.8, 0.8, 0.2))  # corners off the body (no welding)
    lid.apply_translation((0, 0, 0.6))
    mesh = trimesh.util.concatenate([body, lid])
    piece = np.r_[np.zeros(len(body.faces), int), np.ones(len(lid.faces), int)]
    src = tmp_path / "lidded.ply"
    mesh.export(src)
    out = tmp_path / "out"
    assert main(["segment", str(src), "-o", str(out), *fast_segment_args]) == 0
    for d in sorted((out / "lidded").glob("scale_*")):
        if float(d.name[len("scale_"):]) >= 2.0:
            continue  # the coarsest scale groups across pieces as published (rules.pieces_until)
        labels = np.load(d / "labels.npy")
        for p in np.unique(labels):
            assert len(np.unique(piece[labels == p])) == 1, d.name
    doc = json.loads((out / "lidded" / "segment.json").read_text())
    assert doc["settings"]["merge_pieces"] is False and "pieces" in doc["meta"]["rules"]
    assert doc["meta"]["shape_kind"] == "pieces"  # two pieces: not one closed surface
    assert doc["meta"]["keep_in_pieces"] == [True, True, True, True, False]
    merged = tmp_path / "merged"
    assert main(["segment", str(src), "-o", str(merged), *fast_segment_args, "--merge-pieces"]) == 0
    doc = json.loads((merged / "lidded" / "segment.json").read_text())
    assert doc["settings"]["merge_pieces"] is True and "pieces" not in doc["meta"]["rules"]
