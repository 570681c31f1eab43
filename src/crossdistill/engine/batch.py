"""Resumable batch runs: one item per input, failures isolated, finished items skipped.

An item counts as finished when its completion marker (a JSON file written last and
atomically) exists and records the same settings hash and, for runs over input files
(:func:`run_inputs`), the SHA-256 of the input's content: a replaced input with the same
name, or other settings, is recomputed, and its folder is emptied first so that no file
of the earlier run survives (:mod:`crossdistill.engine.outputs`). Failures are collected
per item and written to ``failures.json`` in the output root; one bad input never stops
the others, and a failed item leaves no partial folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from crossdistill.engine.inputs import OUTPUT_ROOT_MARK
from crossdistill.engine.outputs import (check_output_dir, claim_item, discard_item, file_sha256, is_finished,
                                         mark_output_root, seal_item)
from crossdistill.errors import InputError
from crossdistill.io_utils import write_json


def settings_hash(settings: dict) -> str:
    """Stable short hash of a JSON-able settings dict."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def is_done(marker: Path, digest: str, input_sha256: str | None = None) -> bool:
    """True when ``marker`` exists, parses, and records ``digest`` as its settings hash
    (and ``input_sha256`` as its input hash, when given)."""
    return is_finished(marker, digest, input_sha256)


@dataclass
class BatchReport:
    """Outcome of a batch run."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


_ITEM_ERRORS = (InputError, ValueError, OSError, RuntimeError, MemoryError)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _run_item(name: str, path: Path | None, item_dir: Path, marker: Path, digest: str, out_root: Path,
              job: Callable[[Path, Path], None], claim: bool) -> bool:
    """Run one item; False when it was already finished. With ``claim``: the folder is
    claimed for this input and settings first, sealed after, discarded on failure."""
    if not claim:
        if is_done(marker, digest):
            return False
        job(path, item_dir)
        return True
    sha = file_sha256(path)
    if claim_item(item_dir, marker, digest, sha, path):
        return False
    try:
        mark_output_root(out_root)
        job(path, item_dir)
        seal_item(marker, sha)
    except BaseException:
        discard_item(item_dir, out_root)
        raise
    return True


def run_batch(items: Sequence[tuple[str, Path]], out_root: Path, marker_name: str | Callable[[Path], Path],
              digest: str, job: Callable[[Path, Path], None], progress: bool = True,
              desc: str = "objects", claim: bool = False) -> BatchReport:
    """Run ``job(input_path, item_out_dir)`` for every item not already finished.

    Args:
        items: (name, input path) pairs; ``name`` is the item's output sub-folder.
        out_root: output root.
        marker_name: file in the item folder whose presence (with ``digest``) marks completion, or a
            function of the item folder giving the marker's path (when it depends on the item).
        digest: settings hash of this run.
        job: does one item and writes its marker last.
        claim: the item folders belong to this batch (outputs made from input files): finished
            means same input content too, stale folders are emptied, failed ones removed. Off for
            jobs that add files to folders another command wrote (``name``).
    """
    report = BatchReport()
    bar = tqdm(items, desc=desc, disable=not progress or len(items) < 2, unit="obj")
    for name, path in bar:
        item_dir = out_root / name
        marker = marker_name(item_dir) if callable(marker_name) else item_dir / marker_name
        try:
            if _run_item(name, path, item_dir, marker, digest, out_root, job, claim):
                report.done.append(name)
            else:
                report.skipped.append(name)
        except _ITEM_ERRORS as exc:
            msg = _first_line(exc)
            report.failed[name] = f"{type(exc).__name__}: {msg}"
            print(f"error: {name}: {msg}", file=sys.stderr)
        except Exception as exc:  # noqa: BLE001 - a bug met on one item must not lose the others
            if os.environ.get("CROSSDISTILL_DEBUG"):
                raise
            msg = _first_line(exc)
            report.failed[name] = f"internal error: {type(exc).__name__}: {msg}"
            print(f"internal error: {name}: {type(exc).__name__}: {msg} (re-run with --debug for details)",
                  file=sys.stderr)
    if report.failed:
        write_json(out_root / "failures.json", report.failed)
    elif (out_root / "failures.json").exists() and not report.failed:
        (out_root / "failures.json").unlink()
    return report


def _remove_if_only_mark(out_root: Path) -> None:
    """Remove an output root this run created when nothing but its mark is in it."""
    with contextlib.suppress(OSError):
        if {p.name for p in out_root.iterdir()} <= {OUTPUT_ROOT_MARK}:
            (out_root / OUTPUT_ROOT_MARK).unlink(missing_ok=True)
            out_root.rmdir()


def run_inputs(items: Sequence[tuple[str, Path]], out_root: Path, marker_name: str, digest: str,
               job: Callable[[Path, Path], None], progress: bool, desc: str) -> int:
    """A command's run over its inputs; returns its exit code.

    The output folder is checked first (one line, exit 2, before any work). Inputs found by
    :func:`crossdistill.engine.inputs.find_input_files` never include earlier outputs (output
    trees are marked and skipped), also when ``-o`` lies inside the input folder. One input: its errors are the command's own (they propagate, so bad input
    exits 2, and nothing is left written); skipped when already done for this input content and
    these settings. Several: :func:`run_batch` with claimed item folders, failures isolated and
    summarised on stderr (exit 1 if any failed).
    """
    check_output_dir(out_root)
    created = not out_root.exists()
    if len(items) == 1:
        name, path = items[0]
        item_dir = out_root / name
        try:
            if not _run_item(name, path, item_dir, item_dir / marker_name, digest, out_root, job, claim=True):
                print(f"{item_dir}: already done with these settings (delete it to recompute)", file=sys.stderr)
        except BaseException:
            if created:
                _remove_if_only_mark(out_root)
            raise
        return 0
    report = run_batch(items, out_root, marker_name, digest, job, progress=progress, desc=desc, claim=True)
    print(f"{desc}: {len(report.done)} done, {len(report.skipped)} already done, {len(report.failed)} failed"
          + (f" (see {out_root / 'failures.json'})" if report.failed else ""), file=sys.stderr)
    return 1 if report.failed else 0
