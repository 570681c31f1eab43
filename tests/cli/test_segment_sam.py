"""The flagship with a SAM mask teacher loaded from local weights (a tiny random SAM saved to disk):
the registry's choice of teacher, the pipeline and benchmark protocol on SAM masks, and a clean
failure when SAM gives no usable mask or its weights are missing."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("transformers")

from crossdistill.cli.main import main  # noqa: E402
from crossdistill.eval.segment_protocol import LabelledShape, evaluate_object  # noqa: E402
from crossdistill.geometry.io import load_shape  # noqa: E402
from crossdistill.methods.sampart3d.pipeline import SegmentConfig  # noqa: E402
from crossdistill.teachers import registry  # noqa: E402
from crossdistill.teachers.sam import SamMaskTeacher  # noqa: E402

# thresholds off and the grid on the object, so that a random SAM still returns masks
LOOSE = dict(points_per_side=4, points_per_batch=16, pred_iou_thresh=-1.0, stability_score_thresh=-1.0,
             crop_to_foreground=True)
_BASE = SegmentConfig(n_points=3000, n_views=8, image_size=96)
SMALL = replace(_BASE, train=replace(_BASE.train, iterations=40))


@pytest.fixture(scope="module")
def sam_dir(tmp_path_factory):
    """A local SAM model folder (config, weights, processor) holding a tiny random SAM."""
    from transformers import SamImageProcessorPil, SamProcessor

    from crossdistill.teachers import testing

    path = tmp_path_factory.mktemp("weights") / "sam-tiny"
    testing.tiny_sam().save_pretrained(path)
    proc = SamImageProcessorPil(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64})
    SamProcessor(image_processor=proc).save_pretrained(path)
    return path


def test_load_mask_teacher_choices(sam_dir, monkeypatch):
    assert registry.load_mask_teacher("offline", sam_dir) is None
    monkeypatch.setattr(registry, "find_weights", lambda hub_id: None)
    assert registry.load_mask_teacher("auto") is None  # no weights anywhere: the offline default
    assert isinstance(registry.load_mask_teacher("auto", sam_dir), SamMaskTeacher)
    assert isinstance(registry.load_mask_teacher("sam", sam_dir), SamMaskTeacher)
    with pytest.raises(Exception, match="not found"):
        registry.load_mask_teacher("sam", sam_dir.parent / "missing")
    with pytest.raises(ValueError, match="unknown mask teacher"):
        registry.load_mask_teacher("glip")


def test_benchmark_protocol_runs_ours_and_lifting_on_sam_masks(tmp_path, three_primitives, sam_dir):
    mesh, gt = three_primitives
    mesh.export(tmp_path / "prims.ply")
    shape = load_shape(tmp_path / "prims.ply")
    obj = LabelledShape("toy/prims", "toy", shape, {"link": gt, "leaf": gt})
    teacher = SamMaskTeacher.from_pretrained(sam_dir, **LOOSE)
    res = evaluate_object(obj, SMALL, mask_teacher=teacher)
    assert res["meta"]["mask_teacher"] == teacher.teacher_id and res["meta"]["mask_teacher_offline"] is False
    assert res["meta"]["n_masks"] > 0
    for method in ("ours", "lift"):
        best = res[method]["best"]
        assert set(best) == {"link", "leaf"} and all(0.0 <= v <= 1.0 for v in best.values())
    assert len(res["ours"]["per_scale"]) == len(SMALL.scales)
    # the report names the teacher that made the masks
    from crossdistill.eval.segment_report import write_segment_report

    write_segment_report([res], tmp_path / "report", command="test", threads=1)
    md = (tmp_path / "report.md").read_text()
    assert f"Mask teacher: `{teacher.teacher_id}`" in md and "offline render-based" not in md


def test_segment_cli_fails_cleanly_when_sam_gives_no_mask(tmp_path, three_primitives, fast_segment_args,
                                                          sam_dir, capsys):
    """With its default thresholds the random SAM keeps no mask: one line, exit 2, no output left behind."""
    mesh, _ = three_primitives
    src = tmp_path / "prims.ply"
    mesh.export(src)
    out = tmp_path / "out"
    rc = main(["segment", str(src), "-o", str(out), *fast_segment_args, "--mask-teacher", "sam",
               "--sam-weights", str(sam_dir)])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error")]
    assert rc == 2 and len(err) == 1 and "gave no usable mask" in err[0], err
    assert not (out / "prims" / "segment.json").exists()


def test_segment_cli_with_missing_sam_weights_fails_cleanly(tmp_path, three_primitives, fast_segment_args, capsys):
    mesh, _ = three_primitives
    src = tmp_path / "prims.ply"
    mesh.export(src)
    rc = main(["segment", str(src), "-o", str(tmp_path / "out"), *fast_segment_args, "--mask-teacher", "sam",
               "--sam-weights", str(tmp_path / "no_such_model")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "not found" in err[0], err


def test_segment_cli_records_the_offline_teacher_when_asked(tmp_path, three_primitives, fast_segment_args, sam_dir):
    mesh, _ = three_primitives
    src = tmp_path / "prims.ply"
    mesh.export(src)
    out = tmp_path / "out"
    assert main(["segment", str(src), "-o", str(out), *fast_segment_args, "--mask-teacher", "offline",
                 "--sam-weights", str(sam_dir)]) == 0
    meta = json.loads((out / "prims" / "segment.json").read_text())["meta"]
    assert meta["mask_teacher_offline"] is True
    assert np.load(out / "prims" / "scale_1.0" / "labels.npy").shape == (len(mesh.faces),)


def test_sam_on_a_mesh_of_pieces_votes_parts_and_select_reruns_the_vote(tmp_path, three_primitives,
                                                                        fast_segment_args, sam_dir):
    """SAM-like masks on a mesh assembled from pieces get the part vote, and `select` at a scale
    `segment` did not save reruns it from field.pt's point sets, with nothing to note."""
    from crossdistill.geometry.io import load_shape
    from crossdistill.methods.sampart3d.interactive import InteractiveSegmenter

    mesh, _ = three_primitives
    src = tmp_path / "prims.ply"
    mesh.export(src)
    out = tmp_path / "out"
    loose = ["--sam-points-per-side", "4", "--sam-points-per-batch", "16", "--sam-pred-iou-thresh", "-1",
             "--sam-stability-score-thresh", "-1", "--sam-crop-to-foreground", "yes"]
    assert main(["segment", str(src), "-o", str(out), *fast_segment_args, "--mask-teacher", "sam",
                 "--sam-weights", str(sam_dir), *loose]) == 0
    meta = json.loads((out / "prims" / "segment.json").read_text())["meta"]
    assert meta["shape_kind"] == "pieces" and "part_vote=0.5" in meta["rules"]
    seg = InteractiveSegmenter.from_dir(out / "prims", load_shape(src))
    assert seg.parts.notes == []
    assert np.array_equal(seg.parts.labels(1.0), np.load(out / "prims" / "scale_1.0" / "labels.npy"))
    unsaved = seg.parts.labels(0.75)
    assert unsaved.shape == (len(mesh.faces),) and unsaved.dtype == np.int32
