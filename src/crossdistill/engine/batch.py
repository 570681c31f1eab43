"""Resumable batch runs: one item per input, failures isolated, finished items skipped.

An item counts as finished when its completion marker (a JSON file written last and
atomically) exists and records the same settings hash; anything else is (re)done.
Failures are collected per item and written to ``failures.json`` in the output root;
one bad input never stops the others.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from crossdistill.errors import InputError
from crossdistill.io_utils import write_json


def settings_hash(settings: dict) -> str:
    """Stable short hash of a JSON-able settings dict."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def is_done(marker: Path, digest: str) -> bool:
    """True when ``marker`` exists, parses, and records ``digest`` as its settings hash."""
    try:
        return json.loads(marker.read_text()).get("settings_hash") == digest
    except (OSError, ValueError, AttributeError):
        return False


@dataclass
class BatchReport:
    """Outcome of a batch run."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def run_batch(items: Sequence[tuple[str, Path]], out_root: Path, marker_name: str | Callable[[Path], Path],
              digest: str, job: Callable[[Path, Path], None], progress: bool = True,
              desc: str = "objects") -> BatchReport:
    """Run ``job(input_path, item_out_dir)`` for every item not already finished.

    Args:
        items: (name, input path) pairs; ``name`` is the item's output sub-folder.
        out_root: output root.
        marker_name: file in the item folder whose presence (with ``digest``) marks completion, or a
            function of the item folder giving the marker's path (when it depends on the item).
        digest: settings hash of this run.
        job: does one item and writes its marker last.
    """
    report = BatchReport()
    bar = tqdm(items, desc=desc, disable=not progress or len(items) < 2, unit="obj")
    for name, path in bar:
        item_dir = out_root / name
        marker = marker_name(item_dir) if callable(marker_name) else item_dir / marker_name
        if is_done(marker, digest):
            report.skipped.append(name)
            continue
        try:
            job(path, item_dir)
            report.done.append(name)
        except (InputError, ValueError, OSError, RuntimeError, MemoryError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            report.failed[name] = f"{type(exc).__name__}: {msg}"
            print(f"error: {name}: {msg}", file=sys.stderr)
    if report.failed:
        write_json(out_root / "failures.json", report.failed)
    elif (out_root / "failures.json").exists() and not report.failed:
        (out_root / "failures.json").unlink()
    return report


def run_inputs(items: Sequence[tuple[str, Path]], out_root: Path, marker_name: str, digest: str,
               job: Callable[[Path, Path], None], progress: bool, desc: str) -> int:
    """A command's run over its inputs; returns its exit code.

    One input: its errors are the command's own (they propagate, so bad input exits 2);
    skipped when already done. Several: :func:`run_batch`, failures isolated and
    summarised on stderr (exit 1 if any failed).
    """
    if len(items) == 1:
        name, path = items[0]
        if is_done(out_root / name / marker_name, digest):
            print(f"{out_root / name}: already done with these settings (delete it to recompute)", file=sys.stderr)
            return 0
        job(path, out_root / name)
        return 0
    report = run_batch(items, out_root, marker_name, digest, job, progress=progress, desc=desc)
    print(f"{desc}: {len(report.done)} done, {len(report.skipped)} already done, {len(report.failed)} failed"
          + (f" (see {out_root / 'failures.json'})" if report.failed else ""), file=sys.stderr)
    return 1 if report.failed else 0
