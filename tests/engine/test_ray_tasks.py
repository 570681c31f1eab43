"""Batch items as Ray tasks on a local instance (issue 27, item 2: ``--ray``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from crossdistill.engine.batch import run_batch

from .scale_jobs import FileJob

ray = pytest.importorskip("ray", reason="--ray needs the [scale] extra (ray), which is not installed")


def test_ray_tasks_isolate_errors_and_dead_workers_and_match_one_process(tmp_path, monkeypatch):
    # Ray's worker processes inherit the environment, not this interpreter's sys.path: let them import the job
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                      os.environ.get("PYTHONPATH", "")]))
    inputs = tmp_path / "in"
    inputs.mkdir()
    items = []
    for n in "abcde":
        (inputs / f"{n}.ply").write_bytes(f"shape {n}".encode())
        items.append((n, inputs / f"{n}.ply"))
    log = tmp_path / "calls.log"
    job = FileJob(log, fail_on="b.ply", die_on="c.ply")
    report = run_batch(items, tmp_path / "ray", "done.json", "d1", job, progress=False, claim=True, workers=2,
                       threads=1, ray="local")
    assert sorted(report.done) == ["a", "d", "e"] and not report.skipped
    assert report.failed["b"].startswith("InputError")
    assert "died" in report.failed["c"]
    assert sorted(job.calls()) == ["a", "b", "c", "c", "d", "e"]  # a dead worker's item is retried once, no more
    assert not (tmp_path / "ray" / "b").exists() and not (tmp_path / "ray" / "c").exists()  # no partial folders
    assert not ray.is_initialized()  # the local instance this run started is shut down
    # rerun under Ray with the inputs mended: the finished items are skipped, only the failed ones run again
    again = FileJob(tmp_path / "again.log")
    rerun = run_batch(items, tmp_path / "ray", "done.json", "d1", again, progress=False, claim=True, workers=2,
                      threads=1, ray="local")
    assert sorted(rerun.skipped) == ["a", "d", "e"] and sorted(rerun.done) == ["b", "c"] and not rerun.failed
    assert sorted(again.calls()) == ["b", "c"]

    one = run_batch(items, tmp_path / "one", "done.json", "d1", FileJob(tmp_path / "one.log", fail_on="b.ply"),
                    progress=False, claim=True)
    for name in report.done:
        rel = "scale_1/labels.txt"
        assert (tmp_path / "ray" / name / rel).read_bytes() == (tmp_path / "one" / name / rel).read_bytes()
        # the done record matches too, except "runtime", which records each process's own environment
        # (Ray sets OMP_NUM_THREADS=1 in its workers whatever the driver has)
        ray_done, one_done = (json.loads((tmp_path / run / name / "done.json").read_text()) for run in ("ray", "one"))
        assert set(ray_done) == set(one_done) and "runtime" in ray_done
        assert {k: v for k, v in ray_done.items() if k != "runtime"} == {k: v for k, v in one_done.items()
                                                                          if k != "runtime"}
    assert sorted(one.done) == ["a", "c", "d", "e"]


def _two_boxes(folder: Path) -> Path:
    import trimesh

    folder.mkdir()
    for name in ("a", "b"):
        trimesh.creation.box().export(folder / f"{name}.ply")
    return folder


def test_an_unreachable_cluster_is_one_line_and_nothing_written(tmp_path):
    """In a real process (Ray's connection error must not escape as a traceback)."""
    import subprocess
    import sys

    folder = _two_boxes(tmp_path / "in")
    run = subprocess.run([sys.executable, "-m", "crossdistill.cli.main", "segment", str(folder), "-o",
                          str(tmp_path / "out"), "--ray", "127.0.0.1:1"], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --ray") and "no Ray cluster answers" in lines[0], run.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("address", ["nonsense", "ray://:10001"])
def test_a_malformed_cluster_address_is_one_line_and_nothing_written(tmp_path, capsys, address):
    from crossdistill.cli.main import main

    folder = _two_boxes(tmp_path / "in")
    assert main(["segment", str(folder), "-o", str(tmp_path / "out"), "--ray", address]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --ray") and "host:port" in lines[0], lines
    assert not (tmp_path / "out").exists()
