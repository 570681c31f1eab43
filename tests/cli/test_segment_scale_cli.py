"""`crossdistill segment` folder runs at scale: concurrent processes, --shard, --workers (issue 27, item 2).

Every run is a separate `crossdistill` process pinned to one thread (`--threads 1`,
``OMP_NUM_THREADS=1``), so labels are comparable byte for byte across runners.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh

NAMES = ("box", "cone", "cylinder", "sphere")
SUMMARY = re.compile(r"segment: (\d+) done, (\d+) already done, (\d+) failed(?: \(see [^)]*\))?"
                     r"(?:, (\d+) claimed by another run)?")


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", CROSSDISTILL_THREADS="1")


def _cmd(folder: Path, out: Path, fast: list[str], *extra: str) -> list[str]:
    return [sys.executable, "-m", "crossdistill.cli.main", "segment", str(folder), "-o", str(out), *fast,
            "--threads", "1", *extra]


def _counts(stderr: str) -> tuple[int, int, int, int]:
    """(done, already done, failed, claimed by another run) from a run's summary line."""
    m = SUMMARY.search(stderr)
    assert m, stderr
    return tuple(int(g or 0) for g in m.groups())  # type: ignore[return-value]


def _labels(out: Path) -> dict[str, bytes]:
    """Every labels.npy under ``out`` (relative path -> bytes)."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("labels.npy"))}


def _check_complete(out: Path) -> None:
    for name in NAMES:
        meta = json.loads((out / name / "segment.json").read_text())
        assert len(meta["input_sha256"]) == 64
        scales = sorted(out.joinpath(name).glob("scale_*"))
        assert scales and all((s / "labels.npy").is_file() for s in scales)
        for s in scales:
            labels = np.load(s / "labels.npy")
            assert labels.dtype == np.int32 and labels.min() >= 0
    assert not list(out.rglob(".tmp-*")) and not list(out.glob(".stale-*"))
    assert not (out / ".crossdistill-claims").exists() and not (out / "failures.json").exists()


@pytest.fixture(scope="module")
def fast_segment_args(tiny_segment_args) -> list[str]:
    """These tests check who computes which object, not the parts: the smallest run the CLI accepts."""
    return tiny_segment_args


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shapes")
    meshes = {"box": trimesh.creation.box(), "cone": trimesh.creation.cone(0.5, 1.0, sections=16),
              "cylinder": trimesh.creation.cylinder(0.4, 1.2, sections=16),
              "sphere": trimesh.creation.icosphere(subdivisions=1)}
    for name, mesh in meshes.items():
        mesh.export(folder / f"{name}.ply")
    return folder


@pytest.fixture(scope="module")
def sharded(shapes, tmp_path_factory, fast_segment_args) -> tuple[Path, list[str]]:
    """One output folder made by two runs side by side, `--shard 0/2` and `--shard 1/2`; (folder, their stderr)."""
    out = tmp_path_factory.mktemp("sharded") / "out"
    procs = [subprocess.Popen(_cmd(shapes, out, fast_segment_args, "--shard", f"{i}/2"), stderr=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, text=True, env=_env()) for i in range(2)]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    return out, errs


def test_shards_cover_every_object_once(sharded):
    out, errs = sharded
    assert [_counts(e)[:3] for e in errs] == [(2, 0, 0), (2, 0, 0)]
    assert "shard 0/2: 2 of 4 inputs" in errs[0]
    _check_complete(out)


def test_two_concurrent_processes_compute_each_object_once(shapes, tmp_path, fast_segment_args, sharded):
    out = tmp_path / "out"
    procs = [subprocess.Popen(_cmd(shapes, out, fast_segment_args), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              text=True, env=_env()) for _ in range(2)]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    counts = [_counts(e) for e in errs]
    assert sum(c[0] for c in counts) == len(NAMES), errs  # every object computed exactly once in all
    assert all(sum(c[:2]) + c[3] == len(NAMES) and c[2] == 0 for c in counts), errs
    _check_complete(out)
    assert _labels(out) == _labels(sharded[0])  # same outputs whichever process made them


def test_workers_2_write_the_labels_of_one_process(shapes, tmp_path, fast_segment_args, sharded):
    out = tmp_path / "out"
    run = subprocess.run(_cmd(shapes, out, fast_segment_args, "--workers", "2"), capture_output=True, text=True,
                         env=_env(), timeout=600)
    assert run.returncode == 0, run.stderr
    assert _counts(run.stderr)[:3] == (4, 0, 0)
    _check_complete(out)
    assert _labels(out) and _labels(out) == _labels(sharded[0])


@pytest.mark.parametrize("flag", [("--shard", "2/2"), ("--shard", "one/2"), ("--workers", "0")])
def test_bad_shard_or_workers_is_one_line_exit_2(tmp_path, flag):
    shapes = tmp_path / "in"
    shapes.mkdir()
    trimesh.creation.box().export(shapes / "a.ply")
    run = subprocess.run([sys.executable, "-m", "crossdistill.cli.main", "segment", str(shapes), "-o",
                          str(tmp_path / "out"), *flag], capture_output=True, text=True, env=_env(), timeout=120)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and flag[0] in lines[0], run.stderr
    assert not (tmp_path / "out").exists()


def test_sigterm_stops_the_workers_and_leaves_no_partial_object(shapes, tmp_path, fast_segment_args):
    out = tmp_path / "out"
    proc = subprocess.Popen(_cmd(shapes, out, fast_segment_args, "--workers", "2"), stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True, env=_env())
    deadline = time.monotonic() + 120
    while not list(out.glob("*/.crossdistill-item.json")) and time.monotonic() < deadline:
        time.sleep(0.2)  # until a worker has started an object
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=180)[1]
    assert proc.returncode == 143, err
    assert [ln for ln in err.splitlines() if ln.strip()] == ["terminated"], err  # no warning, no traceback
    unfinished = [p.parent for p in out.glob("*/.crossdistill-item.json") if not (p.parent / "segment.json").exists()]
    assert not unfinished and not list(out.glob(".stale-*")) and not (out / ".crossdistill-claims").exists()


def test_ray_with_2_local_workers_writes_the_labels_of_one_process(shapes, tmp_path, fast_segment_args, sharded):
    """`segment --ray` end to end (resuming under Ray is checked in tests/engine/test_ray_tasks.py)."""
    pytest.importorskip("ray", reason="--ray needs the [scale] extra (ray), which is not installed")
    out = tmp_path / "out"
    run = subprocess.run(_cmd(shapes, out, fast_segment_args, "--ray", "--workers", "2"), capture_output=True,
                         text=True, env=_env(), timeout=600)
    assert run.returncode == 0, run.stderr
    assert _counts(run.stderr)[:3] == (4, 0, 0)
    _check_complete(out)
    assert _labels(out) and _labels(out) == _labels(sharded[0])
