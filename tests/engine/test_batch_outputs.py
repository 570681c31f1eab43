"""Outputs belong to one run: unique names, output trees skipped, stale outputs removed (issue 30, items 2-4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossdistill.engine.batch import run_inputs
from crossdistill.engine.inputs import ITEM_STAMP, OUTPUT_ROOT_MARK, find_input_files, unique_names
from crossdistill.engine.outputs import check_output_dir
from crossdistill.errors import InputError

SUFFIXES = (".glb", ".obj", ".ply")


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


class FakeJob:
    """Writes one file per `scale` plus a marker (like `segment`), recording what it ran on."""

    def __init__(self, scales=("1",), digest="d1", fail_on: str | None = None):
        self.scales, self.digest, self.fail_on, self.calls = scales, digest, fail_on, []

    def __call__(self, path: Path, item_dir: Path) -> None:
        self.calls.append(path.name)
        for s in self.scales:
            _touch(item_dir / f"scale_{s}" / "labels.txt", path.read_bytes())
        if self.fail_on and path.name == self.fail_on:
            raise InputError(f"{path}: broken")
        (item_dir / "done.json").write_text(json.dumps({"settings_hash": self.digest, "scales": list(self.scales)}))


def _run(items, out, job, digest="d1") -> int:
    return run_inputs(items, out, "done.json", digest, job, progress=False, desc="test")


def test_colliding_stems_keep_their_suffix_and_both_are_done(tmp_path, capsys):
    root = tmp_path / "in"
    _touch(root / "twin.glb", b"glb")
    _touch(root / "twin.obj", b"obj")
    _touch(root / "solo.ply")
    items = find_input_files(root, SUFFIXES, "shapes")
    assert [n for n, _ in items] == ["solo", "twin.glb", "twin.obj"]
    job = FakeJob()
    assert _run(items, tmp_path / "out", job) == 0
    assert sorted(job.calls) == ["solo.ply", "twin.glb", "twin.obj"]
    assert (tmp_path / "out" / "twin.obj" / "scale_1" / "labels.txt").read_bytes() == b"obj"
    assert "3 done, 0 already done" in capsys.readouterr().err


def test_unique_names_cover_case_and_folder_clashes(tmp_path):
    files = [tmp_path / p for p in ("Twin.glb", "twin.ply", "a.glb", "a/b.glb", "c/d.obj")]
    assert unique_names(tmp_path, files) == ["Twin.glb", "twin.ply", "a.glb", "a/b", "c/d"]
    # deterministic: the same files in another order get the same names
    again = dict(zip(files[::-1], unique_names(tmp_path, files[::-1])))
    assert [again[f] for f in files] == ["Twin.glb", "twin.ply", "a.glb", "a/b", "c/d"]


def test_discover_images_with_one_stem_get_one_output_each(tmp_path):
    from crossdistill.methods.partdistillation.collection import find_images

    for name in ("mug/x.png", "mug/x.jpg", "mug/y.png"):
        _touch(tmp_path / name)
    assert [(n, c) for n, _, c in find_images(tmp_path)] == [("mug/x.jpg", "mug"), ("mug/x.png", "mug"),
                                                             ("mug/y", "mug")]


def test_a_removal_cut_short_is_finished_on_the_next_run(tmp_path):
    src = _touch(tmp_path / "obj.ply")
    out = tmp_path / "out"
    (out / ".stale-obj-123-abcd" / "scale_0").mkdir(parents=True)
    assert _run([("obj", src)], out, FakeJob()) == 0
    assert not list(out.glob(".stale-*"))


def test_output_folder_inside_the_input_folder_is_not_read_back(tmp_path, capsys):
    root = tmp_path / "in"
    _touch(root / "a.ply")
    _touch(root / "b.ply")
    out = root / "out"
    for _ in range(2):
        items = find_input_files(root, SUFFIXES + (".txt",), "shapes")
        assert [n for n, _ in items] == ["a", "b"]
        assert _run(items, out, FakeJob()) == 0
    assert (out / OUTPUT_ROOT_MARK).is_file()
    assert "0 done, 2 already done" in capsys.readouterr().err
    # an older output folder under another name is skipped too (its item stamps mark it)
    (root / "out").rename(root / "old_run")
    assert [n for n, _ in find_input_files(root, SUFFIXES + (".txt",), "shapes")] == ["a", "b"]


def test_excluded_output_folder_is_not_scanned_and_outputs_beside_inputs_work(tmp_path, capsys):
    root = tmp_path / "in"
    _touch(root / "a.ply")
    _touch(root / "out" / "x" / "b.ply")  # no marks yet: only `exclude` keeps it out
    assert [n for n, _ in find_input_files(root, SUFFIXES, "shapes", exclude=(root / "out",))] == ["a"]
    _touch(root / "c.obj")
    for _ in range(2):  # -o the input folder itself: item folders beside the inputs, never read back
        items = find_input_files(root, SUFFIXES + (".txt",), "shapes", exclude=(root,))
        assert [n for n, _ in items] == ["a", "c", "out/x/b"]
        assert _run(items, root, FakeJob()) == 0
    assert "0 done, 3 already done" in capsys.readouterr().err


def test_rerun_with_other_settings_leaves_no_stale_scale(tmp_path):
    src = _touch(tmp_path / "obj.ply", b"v1")
    out = tmp_path / "out"
    assert _run([("obj", src)], out, FakeJob(scales=("0", "1"), digest="d1"), digest="d1") == 0
    assert (out / "obj" / "scale_0").is_dir()
    assert _run([("obj", src)], out, FakeJob(scales=("1",), digest="d2"), digest="d2") == 0
    assert sorted(p.name for p in (out / "obj").glob("scale_*")) == ["scale_1"]
    assert not list(out.glob(".stale-*"))


def test_replaced_input_with_the_same_name_is_recomputed(tmp_path, capsys):
    src = _touch(tmp_path / "obj.ply", b"v1")
    out = tmp_path / "out"
    job = FakeJob()
    _run([("obj", src)], out, job)
    _run([("obj", src)], out, job)
    assert job.calls == ["obj.ply"]
    assert "already done" in capsys.readouterr().err
    src.write_bytes(b"v2 - another mesh")
    _run([("obj", src)], out, job)
    assert job.calls == ["obj.ply", "obj.ply"]
    assert (out / "obj" / "scale_1" / "labels.txt").read_bytes() == b"v2 - another mesh"
    marker = json.loads((out / "obj" / "done.json").read_text())
    assert marker["settings_hash"] == "d1" and len(marker["input_sha256"]) == 64


def test_a_folder_crossdistill_did_not_write_is_never_deleted(tmp_path):
    src = _touch(tmp_path / "obj.ply")
    out = tmp_path / "out"
    precious = _touch(out / "obj" / "thesis.tex", b"years of work")
    with pytest.raises(InputError, match="did not write"):
        _run([("obj", src)], out, FakeJob())
    assert precious.read_bytes() == b"years of work"


def test_a_failed_item_leaves_nothing_and_a_failed_single_run_writes_nothing(tmp_path):
    a, b = _touch(tmp_path / "in" / "a.ply"), _touch(tmp_path / "in" / "b.ply")
    out = tmp_path / "out"
    assert _run([("a", a), ("b", b)], out, FakeJob(fail_on="b.ply")) == 1
    assert not (out / "b").exists() and (out / "a" / "done.json").is_file()
    assert list(json.loads((out / "failures.json").read_text())) == ["b"]
    out2 = tmp_path / "out2"
    with pytest.raises(InputError):
        _run([("b", b)], out2, FakeJob(fail_on="b.ply"))
    assert not out2.exists()


def test_interrupted_item_is_redone_from_scratch(tmp_path):
    src = _touch(tmp_path / "obj.ply")
    out = tmp_path / "out"
    (out / "obj" / "scale_9").mkdir(parents=True)  # a killed run: stamp, partial outputs, no marker
    (out / "obj" / ITEM_STAMP).write_text("{}")
    job = FakeJob()
    assert _run([("obj", src)], out, job) == 0
    assert job.calls == ["obj.ply"] and not (out / "obj" / "scale_9").exists()


@pytest.mark.parametrize("case", ["file", "under_file"])
def test_output_that_is_a_file_is_refused_before_any_work(tmp_path, case):
    f = _touch(tmp_path / "f.txt")
    out = f if case == "file" else f / "sub"
    job = FakeJob()
    with pytest.raises(InputError, match="not a folder"):
        _run([("obj", _touch(tmp_path / "obj.ply"))], out, job)
    assert job.calls == []


def test_read_only_output_is_refused(tmp_path, monkeypatch):
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    real_open = os.open

    def refusing_open(path, flags, *a, **k):  # what a read-only mount answers, for root too
        if str(path).startswith(str(ro)) and flags & os.O_CREAT:
            raise OSError(30, "Read-only file system")
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(os, "open", refusing_open)
    with pytest.raises(InputError, match="Read-only file system"):
        check_output_dir(ro / "out")


def test_eval_scores_only_the_scales_segment_json_lists(tmp_path):
    import numpy as np

    from crossdistill.eval.benchmarks._base import Record
    from crossdistill.eval.score_predictions import find_prediction

    rec = Record("partnet_mobility_dev", "Box/1", "Box")
    obj = tmp_path / "Box" / "1"
    for s in ("0.0", "0.5", "1.0"):
        (obj / f"scale_{s}").mkdir(parents=True)
        np.save(obj / f"scale_{s}" / "labels.npy", np.zeros(4, np.int32))
    assert list(find_prediction(tmp_path, rec)[1]) == ["0", "0.5", "1"]  # no segment.json: every scale folder
    (obj / ITEM_STAMP).write_text("{}")
    assert find_prediction(tmp_path, rec) is None  # an unfinished crossdistill item counts as missing
    (obj / "segment.json").write_text(json.dumps({"settings_hash": "x", "scales": [0.5, 1.0]}))
    assert list(find_prediction(tmp_path, rec)[1]) == ["0.5", "1"]  # scale_0.0 is another run's
