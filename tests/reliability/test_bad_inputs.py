"""Every command against the bad-input corpus (tests/data/make_bad_inputs.py; issues 24 and 30).

A ``bad`` case must give exit code 2, exactly one line on stderr matching the case, no
traceback, no output folder, and leave every input file byte-identical (and no pickle is
ever loaded). An ``odd`` case may be handled (exit 0) or refused the same way, never crash.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from crossdistill.cli.main import main

import make_bad_inputs as corpus  # noqa: E402 - registered by tests/reliability/conftest.py

TINY_SEGMENT = ["--points", "500", "--views", "6", "--size", "48", "--iterations", "20", "--scales", "1", "--quiet"]
COMMANDS = {
    "info": lambda t, o: ["info", t],
    "segment": lambda t, o: ["segment", t, "-o", o, *TINY_SEGMENT],
    "render": lambda t, o: ["render", t, "-o", o, "--views", "6", "--size", "32", "--points", "200", "--quiet"],
    "predict": lambda t, o: ["predict", t, "--checkpoint", str(_CHECKPOINT), "-o", o, "--quiet"],
    "discover": lambda t, o: ["discover", t, "-o", o, "--steps", "2", "--quiet"],
    "lidar": lambda t, o: ["distill", "lidar", "--kitti", t, "-o", o, "--iterations", "2", "--teacher-iterations",
                           "2", "--quiet"],
}


# Built once when the module is imported: the parameter lists need the cases, the tests their files.
_ROOT = Path(tempfile.mkdtemp(prefix="crossdistill_bad_inputs_"))
atexit.register(shutil.rmtree, _ROOT, True)
_CASES = {c.name: c for c in corpus.build(_ROOT)}
_CHECKPOINT = _ROOT / "student.pt"  # an untrained PartDistill student: `predict` reads shapes as every command does


def _save_checkpoint() -> None:
    from crossdistill.methods.partdistill import save_student
    from crossdistill.methods.partdistill.student_training import StudentConfig
    from crossdistill.students.point_student import PointStudent

    config = StudentConfig(n_points=256, width=8, n_blocks=1, k=8)
    save_student(_CHECKPOINT, PointStudent(2, config.width, config.n_blocks), ("a", "b"), config)


@pytest.fixture(scope="module")
def built() -> tuple[Path, dict[str, object]]:
    if not _CHECKPOINT.exists():
        _save_checkpoint()
    return _ROOT, _CASES


def _cases(kind: str) -> list[tuple[str, str]]:
    return [(c.name, cmd) for c in _CASES.values() if c.kind == kind for cmd in c.commands]


def _checksums(folder: Path) -> dict[str, str]:
    sums = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink():
            try:
                sums[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
            except PermissionError:
                sums[str(p.relative_to(folder))] = f"unreadable {p.stat().st_size}"
    return sums


def _run(built, name: str, command: str, tmp_path: Path, capsys) -> tuple[int, list[str], Path, object]:
    root, cases = built
    case = cases[name]
    if case.needs_non_root and os.geteuid() == 0:
        pytest.skip("running as root: file permissions do not stop reads")
    folder = root / case.name
    before = _checksums(folder)
    out = tmp_path / "out"
    capsys.readouterr()
    code = main(COMMANDS[command](str(folder / case.target), str(out)))
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert _checksums(folder) == before, "an input was changed or a file was written among the inputs"
    if case.canary:
        assert not (folder / case.canary).exists(), "a pickle was loaded"
    return code, lines, out, case


@pytest.mark.parametrize("name, command", _cases("bad"))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(built, name, command, tmp_path, capsys):
    code, lines, out, case = _run(built, name, command, tmp_path, capsys)
    assert code == 2, lines
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and "Traceback" not in lines[0], lines
    assert re.search(case.expect, lines[0]), (case.expect, lines[0])
    assert not out.exists(), sorted(p.name for p in out.rglob("*"))


@pytest.mark.parametrize("name, command", _cases("odd"))
def test_odd_input_is_handled_or_refused_cleanly(built, name, command, tmp_path, capsys):
    code, lines, out, case = _run(built, name, command, tmp_path, capsys)
    assert code in (0, 2), lines
    assert not any("Traceback" in ln or "internal error" in ln for ln in lines), lines
    if code == 2:
        assert len(lines) == 1 and re.search(case.expect, lines[0]), lines
        assert not out.exists()
    elif command == "segment":
        marker = next(out.rglob("segment.json"))
        assert (marker.parent / "scale_1.0" / "labels.npy").is_file()
    elif command == "predict":
        assert (next(out.rglob("predict.json")).parent / "labels.npy").is_file()


def test_corpus_covers_at_least_30_kinds(built):
    _, cases = built
    assert len(cases) >= 30
    assert {cmd for c in cases.values() for cmd in c.commands} == set(COMMANDS)
