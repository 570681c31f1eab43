"""`crossdistill eval`: saved predictions scored against a tiny fake PartNet-Mobility benchmark.

The fake objects are boxes of extents (1, 2, 4): 12 triangles, the +-x faces (4 triangles,
area 16) are leaf node 11, the +-y faces (area 8) node 12, the +-z faces (area 4, 1 per
triangle) node 13; link 0 = x faces, link 1 = the rest. Expected scores are computed by
hand below (area-weighted on faces, unweighted on points).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from crossdistill.cli.main import main
from crossdistill.geometry.io import load_shape

NODES = [{"id": 0, "name": "box", "parent": -1}, {"id": 11, "name": "x", "parent": 0},
         {"id": 12, "name": "y", "parent": 0}, {"id": 13, "name": "z", "parent": 0}]
LINKS = [{"index": 0, "name": "link_0", "joint": "fixed", "label": "x"},
         {"index": 1, "name": "link_1", "joint": "free", "label": "rest"}]


def _axis_of_faces(glb: Path) -> np.ndarray:
    """(12,) 0/1/2: the axis of every face's normal, in the loader's face order."""
    shape = load_shape(glb)
    assert shape.n_faces == 12
    return np.abs(shape.face_normals).argmax(1)


def _write_mesh_object(root: Path, cat: str, oid: str, z_link: int = 1) -> np.ndarray:
    folder = root / "partnet_mobility_dev" / cat
    folder.mkdir(parents=True, exist_ok=True)
    glb = folder / f"{oid}.glb"
    trimesh.creation.box(extents=(1, 2, 4)).export(glb)
    axis = _axis_of_faces(glb)
    leaf = np.array([11, 12, 13], np.int32)[axis]
    link = np.array([0, 1, z_link], np.int32)[axis]
    np.savez(folder / f"{oid}.labels.npz", face_leaf=leaf, face_link=link)
    meta = {"id": oid, "category": cat, "n_faces": 12, "nodes": NODES, "links": LINKS}
    (folder / f"{oid}.json").write_text(json.dumps(meta))
    return axis


@pytest.fixture
def fake_data(tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    """Data root with 4 mesh objects (Box/1, Box/2, Laptop/3, Laptop/4); face axes per object."""
    root = tmp_path / "data"
    axes = {"Box/1": _write_mesh_object(root, "Box", "1"),
            "Box/2": _write_mesh_object(root, "Box", "2", z_link=-1),  # z faces: link unknown
            "Laptop/3": _write_mesh_object(root, "Laptop", "3"),
            "Laptop/4": _write_mesh_object(root, "Laptop", "4")}
    return root, axes


def _save(path: Path, labels) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(labels, np.int32))


def _write_predictions(pred: Path, axes: dict[str, np.ndarray]) -> None:
    a = axes["Box/1"]
    split = np.array([0, 1, 2])[a]  # x -> 0, y -> 1, z -> 2 ...
    split[np.flatnonzero(a == 2)[0]] = 1  # ... except one z triangle (area 1) joins the y part
    _save(pred / "Box/1/scale_0.0/labels.npy", np.zeros(12))  # everything one part
    _save(pred / "Box/1/scale_0.5/labels.npy", split)
    _save(pred / "Box/1/scale_1.0/labels.npy", np.array([7, 3, 5])[a])  # the leaves, other ids
    _save(pred / "Box/1/scale_2.0/labels.npy", np.array([4, 9, 9])[a])  # the links
    (pred / "Box/1/contact_sheet.png").write_bytes(b"\x89PNG fake")
    _save(pred / "Box/2.npy", np.ones(12))  # flat layout, all one part
    _save(pred / "Laptop/4.npy", np.zeros(5))  # wrong length; Laptop/3 has nothing


def test_eval_scores_scales_flat_missing_and_invalid(fake_data, tmp_path, capsys):
    root, axes = fake_data
    pred, out = tmp_path / "pred", tmp_path / "report"
    _write_predictions(pred, axes)
    argv = ["eval", "--benchmark", "partnet_mobility_dev", "--predictions", str(pred), "--data", str(root),
            "-o", str(out)]
    assert main(argv) == 0
    res = json.loads((out / "eval.json").read_text())
    objs = {o["id"]: o for o in res["objects"]}
    box1, box2 = objs["Box/1"], objs["Box/2"]
    # scale 0: one part -> link (16/28 + 12/28) / 2, leaf (16 + 8 + 4) / 28 / 3
    assert box1["per_scale"]["0"]["link"] == pytest.approx(0.5)
    assert box1["per_scale"]["0"]["leaf"] == pytest.approx(1 / 3)
    # scale 0.5, area-weighted: leaf (1 + 8/9 + 3/4) / 3 (unweighted it would be 0.85); link (1 + 9/12) / 2
    assert box1["per_scale"]["0.5"]["leaf"] == pytest.approx(95 / 108)
    assert box1["per_scale"]["0.5"]["link"] == pytest.approx(0.875)
    # the leaves: link (1 + 8/12) / 2; the links: leaf (1 + 8/12 + 4/12) / 3
    assert box1["per_scale"]["1"] == pytest.approx({"link": 5 / 6, "leaf": 1.0})
    assert box1["per_scale"]["2"] == pytest.approx({"link": 1.0, "leaf": 2 / 3})
    assert box1["best"] == pytest.approx({"link": 1.0, "leaf": 1.0})  # best scale per level
    assert box1["n_parts"] == {"0": 1, "0.5": 3, "1": 3, "2": 2}
    # flat all-in-one; link ignores the unknown z faces: (16/24 + 8/24) / 2
    assert box2["layout"] == "flat" and "per_scale" not in box2
    assert box2["best"] == pytest.approx({"link": 0.5, "leaf": 1 / 3})
    assert objs["Laptop/3"]["status"] == "missing"
    assert objs["Laptop/4"]["status"] == "invalid" and "(12,)" in objs["Laptop/4"]["reason"]
    s = res["summary"]
    assert (s["n_objects"], s["n_scored"], s["n_missing"], s["n_invalid"]) == (4, 2, 1, 1)
    assert s["overall"] == pytest.approx({"link": 0.75, "leaf": 2 / 3})
    assert list(s["per_scale"]) == ["0", "0.5", "1", "2"] and s["per_scale"]["0.5"]["n"] == 1
    assert s["per_category"]["Box"] == pytest.approx({"n": 2, "link": 0.75, "leaf": 2 / 3})
    assert s["worst"] == ["Box/2", "Box/1"]
    md = (out / "eval.md").read_text()
    assert "| 2 | 75.0 | 66.7 |" in md  # overall row
    assert "| 0.5 | 1 | 87.5 | 88.0 |" in md  # per-scale row
    assert "../pred/Box/1/contact_sheet.png" in md
    assert "Laptop/3 | missing" in md and "Laptop/4 | invalid" in md
    pytest.importorskip("matplotlib")
    assert (out / "eval_categories.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_point_track_is_unweighted(tmp_path):
    root = tmp_path / "data"
    folder = root / "partnet_mobility_dev_points" / "Box"
    folder.mkdir(parents=True)
    trimesh.PointCloud(np.random.default_rng(0).random((6, 3))).export(folder / "1.ply")
    np.savez(folder / "1.labels.npz", point_leaf=np.array([11, 11, 11, 12, 12, 13], np.int32),
             point_link=np.array([0, 0, 0, 1, 1, 1], np.int32), face_id=np.zeros(6, np.int32))
    _save(tmp_path / "pred" / "Box" / "1.npy", [0, 0, 1, 1, 1, 2])
    out = tmp_path / "report"
    assert main(["eval", "--benchmark", "partnet_mobility_dev_points", "--predictions", str(tmp_path / "pred"),
                 "--data", str(root), "-o", str(out), "--quiet"]) == 0
    obj = json.loads((out / "eval.json").read_text())["objects"][0]
    # leaf: (2/3 + 2/3 + 1) / 3; link: (2/3 + max(2/4, 1/3)) / 2
    assert obj["best"] == pytest.approx({"link": 7 / 12, "leaf": 7 / 9})


@pytest.mark.parametrize("make_pred", [True, False])
def test_eval_without_predictions_fails_with_one_line(fake_data, tmp_path, capsys, make_pred):
    root, _ = fake_data
    pred = tmp_path / "pred"
    if make_pred:
        (pred / "Box" / "1").mkdir(parents=True)  # an empty object folder is not a prediction
    capsys.readouterr()
    assert main(["eval", "--benchmark", "partnet_mobility_dev", "--predictions", str(pred), "--data", str(root),
                 "-o", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
    assert not (tmp_path / "report").exists()


def test_eval_unknown_or_unscorable_benchmark_exits_2(fake_data, tmp_path, capsys):
    root, _ = fake_data
    for name in ("no_such_benchmark", "kitti_sample"):
        assert main(["eval", "--benchmark", name, "--predictions", str(tmp_path), "--data", str(root)]) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_eval_method_segment_uses_the_bench_protocol(fake_data, tmp_path, monkeypatch):
    """--method segment goes through load_labelled + evaluate_object + write_segment_report."""
    import crossdistill.eval.segment_protocol as protocol

    seen = []

    def fake_evaluate(obj, config, progress=False, mask_teacher=None):
        assert mask_teacher is None  # --mask-teacher offline: the pipeline's offline default
        seen.append(obj.name)
        assert obj.shape.n_faces == 12 and set(obj.labels) == {"link", "leaf"}
        s = {"link": 0.5, "leaf": 0.25}
        return {"name": obj.name, "category": obj.category, "track": "mesh", "scales": [0.0],
                "ours": {"per_scale": [s], "best": s}, "lift": {"best": s}, "cc": {"best": s},
                "seconds": 1.0, "timings_s": {"train": 1.0}, "peak_rss_mib": 10.0}

    monkeypatch.setattr(protocol, "evaluate_object", fake_evaluate)
    root, _ = fake_data
    out = tmp_path / "report"
    assert main(["eval", "--benchmark", "partnet_mobility_dev", "--method", "segment", "--data", str(root),
                 "--per-category", "1", "-o", str(out), "--quiet", "--mask-teacher", "offline"]) == 0
    assert seen == ["Box/1", "Laptop/3"]
    res = json.loads((out / "eval.json").read_text())
    assert res["summary"]["mesh"]["methods"]["ours"] == pytest.approx({"link": 0.5, "leaf": 0.25})
    assert "--method segment" in (out / "eval.md").read_text()


def test_segment_summary_oracle_takes_the_better_method_per_object():
    from crossdistill.eval.segment_report import summarize

    def obj(name, ours, lift):
        o, l = {"link": ours, "leaf": ours / 2}, {"link": lift, "leaf": lift / 2}
        return {"name": name, "category": "Box", "track": "mesh", "scales": [0.0],
                "ours": {"per_scale": [o], "best": o}, "lift": {"best": l}, "cc": {"best": l},
                "seconds": 1.0, "timings_s": {}, "peak_rss_mib": 1.0}

    t = summarize([obj("a", 0.8, 0.4), obj("b", 0.2, 0.6)])["mesh"]
    assert t["methods"]["ours"]["link"] == pytest.approx(0.5) and t["methods"]["lift"]["link"] == pytest.approx(0.5)
    assert t["oracle_ours_or_lift"] == pytest.approx({"link": 0.7, "leaf": 0.35})
