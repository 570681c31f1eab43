"""Batches at scale: claims between processes, shards, worker processes (issue 27, item 2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from crossdistill.engine.batch import run_batch
from crossdistill.engine.claims import CLAIMS_DIR, claim_path, try_claim
from crossdistill.engine.inputs import ITEM_STAMP
from crossdistill.engine.shards import Shard, parse_shard

from .scale_jobs import FileJob

HOLD = ("import sys, time\nfrom pathlib import Path\nfrom crossdistill.engine.claims import try_claim\n"
        "c = try_claim(Path(sys.argv[1]), sys.argv[2])\nprint('held' if c else 'refused', flush=True)\n"
        "time.sleep(300)\n")


def _inputs(root: Path, names: str) -> list[tuple[str, Path]]:
    root.mkdir(parents=True, exist_ok=True)
    items = []
    for n in names:
        (root / f"{n}.ply").write_bytes(f"shape {n}".encode())
        items.append((n, root / f"{n}.ply"))
    return items


def _batch(items, out, job, **kw):
    return run_batch(items, out, "done.json", "d1", job, progress=False, claim=True, **kw)


def _holder(out: Path, name: str) -> subprocess.Popen:
    """A process that claims ``name`` and keeps it until killed."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out), name], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_shards_are_0_based_and_cover_every_item_once():
    items = [(n, None) for n in "gfedcba"]
    seen = [name for i in range(3) for name, _ in Shard(i, 3).select(items)]
    assert sorted(seen) == list("abcdefg") and len(seen) == 7
    assert [n for n, _ in parse_shard(" 1 / 3 ").select(items)] == ["b", "e"]
    for bad in ("3/3", "1/0", "-1/2", "a/2", "1", "1/2/3", ""):
        with pytest.raises(ValueError, match="0-based"):
            parse_shard(bad)


def test_shards_of_one_folder_do_every_item_exactly_once(tmp_path):
    items = _inputs(tmp_path / "in", "abcde")
    job = FileJob(tmp_path / "calls.log")
    reports = [_batch(items, tmp_path / "out", job, shard=Shard(i, 2)) for i in range(2)]
    assert sorted(job.calls()) == list("abcde")
    assert sorted(reports[0].done + reports[1].done) == list("abcde")
    assert reports[0].done == ["a", "c", "e"] and reports[1].done == ["b", "d"]


def test_a_live_claim_is_skipped_and_a_dead_holders_item_is_redone(tmp_path):
    items = _inputs(tmp_path / "in", "ab")
    out = tmp_path / "out"
    partial = out / "a" / "scale_9" / "half.bin"  # what the holder has written so far
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"in progress")
    (out / "a" / ITEM_STAMP).write_text("{}")
    holder = _holder(out, "a")
    try:
        job = FileJob(tmp_path / "calls.log")
        report = _batch(items, out, job)
        assert report.claimed == ["a"] and report.done == ["b"] and not report.failed
        assert job.calls() == ["b"]
        assert partial.read_bytes() == b"in progress"  # another process's work is never removed
        assert "1 claimed by another run" in report.summary("test", out)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    report = _batch(items, out, job)  # the holder died: its claim is gone with it
    assert report.done == ["a"] and report.skipped == ["b"] and not report.claimed
    assert job.calls() == ["b", "a"]
    assert not partial.parent.exists() and (out / "a" / "done.json").is_file()
    assert not (out / CLAIMS_DIR).exists()  # released claims leave nothing behind


def test_a_claim_file_left_by_a_dead_pid_is_taken_over(tmp_path):
    out = tmp_path / "out"
    lock = claim_path(out, "a")
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"item": "a", "host": "elsewhere", "pid": 4_000_000, "started": "then"}))
    claim = try_claim(out, "a")
    assert claim is not None and claim.previous["pid"] == 4_000_000
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert try_claim(out, "a") is None  # held: a second claim (another open file) is refused
    claim.release()
    assert not lock.exists() and not lock.parent.exists()
    again = try_claim(out, "a")
    assert again is not None and again.previous is None
    again.release()


def test_concurrent_runs_on_one_folder_never_do_an_item_twice(tmp_path):
    items = _inputs(tmp_path / "in", "abcdefgh")
    out = tmp_path / "out"
    job = FileJob(tmp_path / "calls.log", sleep=0.05)
    reports = []
    threads = [threading.Thread(target=lambda: reports.append(_batch(items, out, job))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(job.calls()) == list("abcdefgh")  # each computed once in all
    assert sorted(n for r in reports for n in r.done) == list("abcdefgh")
    for r in reports:
        assert len(r.done) + len(r.skipped) + len(r.claimed) == 8 and not r.failed
    for n in "abcdefgh":
        meta = json.loads((out / n / "done.json").read_text())
        assert meta["settings_hash"] == "d1" and len(meta["input_sha256"]) == 64


def test_failures_of_other_shards_are_kept(tmp_path):
    items = _inputs(tmp_path / "in", "abcd")
    out = tmp_path / "out"
    _batch(items, out, FileJob(tmp_path / "calls.log", fail_on="a.ply"), shard=Shard(0, 2))
    _batch(items, out, FileJob(tmp_path / "calls.log"), shard=Shard(1, 2))
    assert list(json.loads((out / "failures.json").read_text())) == ["a"]
    _batch(items, out, FileJob(tmp_path / "calls.log"), shard=Shard(0, 2))  # a now succeeds
    assert not (out / "failures.json").exists()


def test_workers_isolate_an_error_and_a_dying_worker(tmp_path):
    items = _inputs(tmp_path / "in", "abcde")
    out = tmp_path / "out"
    job = FileJob(tmp_path / "calls.log", fail_on="b.ply", die_on="c.ply")
    report = _batch(items, out, job, workers=2, threads=1)
    # an item finished by a worker whose result was lost when the pool broke is "already done" on its rerun
    assert sorted(report.done + report.skipped) == ["a", "d", "e"] and not report.claimed
    assert sorted(report.failed) == ["b", "c"]
    assert all(json.loads((out / n / "done.json").read_text())["input_sha256"] for n in "ade")
    assert "worker process died" in report.failed["c"] and "broken" in report.failed["b"]
    assert not (out / "b").exists() and not (out / "c").exists()  # no partial folder of a failed item
    assert sorted(json.loads((out / "failures.json").read_text())) == ["b", "c"]
    assert len({line.split()[1] for line in (tmp_path / "calls.log").read_text().splitlines()} - {str(os.getpid())}) >= 2


def test_a_sigterm_swallowed_where_python_cannot_raise_is_sent_again(monkeypatch, capsys):
    """SIGTERM landing in a weakref callback (e.g. inside an import): the Terminated that Python drops is not
    printed, and the worker signals itself again so the item unwinds from ordinary code."""
    import signal
    import sys
    import types

    from crossdistill.engine import workers
    from crossdistill.errors import Terminated

    sent = []
    monkeypatch.setattr(workers.os, "kill", lambda pid, sig: sent.append((pid, sig)))
    monkeypatch.setattr(workers, "_stopping", True)
    args = types.SimpleNamespace(exc_type=Terminated, exc_value=Terminated(), exc_traceback=None,
                                 err_msg="Exception ignored in", object=None)
    workers._on_unraisable(args)
    assert sent == [(workers.os.getpid(), signal.SIGTERM)] and workers._stopping is False
    assert capsys.readouterr().err == ""
    seen = []
    monkeypatch.setattr(sys, "__unraisablehook__", seen.append)
    other = types.SimpleNamespace(exc_type=ValueError, exc_value=ValueError("x"), exc_traceback=None,
                                  err_msg=None, object=None)
    workers._on_unraisable(other)
    assert seen == [other] and len(sent) == 1
