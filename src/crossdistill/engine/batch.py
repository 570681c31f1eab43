"""Resumable batch runs: one item per input, failures isolated, finished items skipped,
concurrent runs kept apart.

An item counts as finished when its completion marker (a JSON file written last and
atomically) exists and records the same settings hash and, for runs over input files
(:func:`run_inputs`), the SHA-256 of the input's content: a replaced input with the same
name, or other settings, is recomputed, and its folder is emptied first so that no file
of the earlier run survives (:mod:`crossdistill.engine.outputs`). Failures are collected
per item and written to ``failures.json`` in the output root; one bad input never stops
the others, and a failed item leaves no partial folder.

Scale: every item is claimed before it is looked at (:mod:`crossdistill.engine.claims`), so
several processes may share one output folder, each doing the items no other live process
holds; ``shard`` splits the items for job arrays (:mod:`crossdistill.engine.shards`) and
``workers`` runs them in local worker processes (:mod:`crossdistill.engine.workers`), ``ray`` as
Ray tasks on a local instance or a cluster (:mod:`crossdistill.engine.ray_tasks`). One item
runs the same code whichever runner does it (:mod:`crossdistill.engine.items`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from crossdistill.engine.claims import describe, holder_of, locked
from crossdistill.engine.inputs import OUTPUT_ROOT_MARK
from crossdistill.engine.items import CLAIMED, DONE, FAILED, SKIPPED, Outcome, Task, attempt, run_item
from crossdistill.engine.outputs import check_output_dir, is_finished
from crossdistill.engine.shards import Shard
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
    """Outcome of a batch run: items done here, already finished, claimed by another live process
    (left to it: neither done nor failed here), and failed (name -> ``Type: first line``)."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    claimed: list[str] = field(default_factory=list)

    def record(self, name: str, outcome: Outcome) -> None:
        """Add one item's outcome."""
        if outcome.status == FAILED:
            self.failed[name] = outcome.message
        else:
            {DONE: self.done, SKIPPED: self.skipped, CLAIMED: self.claimed}[outcome.status].append(name)

    def summary(self, desc: str, out_root: Path) -> str:
        """``desc: 2 done, 1 already done, 0 failed[ (see failures.json)][, 1 claimed by another run]``."""
        text = f"{desc}: {len(self.done)} done, {len(self.skipped)} already done, {len(self.failed)} failed"
        if self.failed:
            text += f" (see {out_root / 'failures.json'})"
        if self.claimed:
            text += f", {len(self.claimed)} claimed by another run"
        return text


def run_batch(items: Sequence[tuple[str, Path]], out_root: Path, marker_name: str | Callable[[Path], Path],
              digest: str, job: Callable[[Path, Path], None], progress: bool = True,
              desc: str = "objects", claim: bool = False, shard: Shard | None = None, workers: int = 1,
              threads: int | None = None, ray: str | None = None) -> BatchReport:
    """Run ``job(input_path, item_out_dir)`` for every item not already finished nor claimed by another process.

    Every item is claimed before it is looked at (:mod:`crossdistill.engine.claims`): processes
    sharing ``out_root`` split the items between them, and an item whose holder died is taken over
    (its partial folder emptied first).

    Args:
        items: (name, input path) pairs; ``name`` is the item's output sub-folder.
        out_root: output root.
        marker_name: file in the item folder whose presence (with ``digest``) marks completion, or a
            function of the item folder giving the marker's path (when it depends on the item).
        digest: settings hash of this run.
        job: does one item and writes its marker last; picklable when ``workers > 1``.
        claim: the item folders belong to this batch (outputs made from input files): finished
            means same input content too, stale folders are emptied, failed ones removed. Off for
            jobs that add files to folders another command wrote (``name``).
        shard: only this shard of the items (:mod:`crossdistill.engine.shards`).
        workers: item processes (:mod:`crossdistill.engine.workers`); 1 runs them in this process.
        threads: numeric threads per worker process (None: the CPUs shared out); unused with one worker.
        ray: run the items as Ray tasks (:mod:`crossdistill.engine.ray_tasks`): ``"local"`` or a
            cluster address; ``workers`` tasks at once.
    """
    report = BatchReport()
    mine = shard.select(items) if shard is not None else list(items)
    tasks = []
    for name, path in mine:
        item_dir = out_root / name
        marker = marker_name(item_dir) if callable(marker_name) else item_dir / marker_name
        tasks.append(Task(name, path, out_root, marker, digest, claim))
    bar = tqdm(total=len(tasks), desc=desc, disable=not progress or len(tasks) < 2, unit="obj")

    def record(task: Task, outcome: Outcome) -> None:
        report.record(task.name, outcome)
        if outcome.line:
            bar.write(outcome.line, file=sys.stderr)
        bar.update(1)

    try:
        if ray is not None and tasks:
            from crossdistill.engine.ray_tasks import run_in_ray
            from crossdistill.engine.workers import worker_threads

            run_in_ray(tasks, job, workers, worker_threads(workers, threads), record, address=ray)
        elif workers > 1 and len(tasks) > 1:
            from crossdistill.engine.workers import run_in_workers, worker_threads

            run_in_workers(tasks, job, min(workers, len(tasks)), worker_threads(workers, threads), record)
        else:
            for task in tasks:
                record(task, attempt(task, job))
    finally:
        bar.close()
    _update_failures(out_root, report, {name for name, _ in items})
    return report


def _update_failures(out_root: Path, report: BatchReport, names: set[str]) -> None:
    """Rewrite ``failures.json`` under a lock on ``out_root``: this run's failures, plus the earlier
    entries of items this run did not settle (another shard's, or claimed by another process) that
    are still inputs; removed when empty."""
    path = out_root / "failures.json"
    if report.failed:
        out_root.mkdir(parents=True, exist_ok=True)
    elif not out_root.is_dir():
        return
    settled = set(report.done) | set(report.skipped) | set(report.failed)
    with locked(out_root):
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = {}
        kept = {k: v for k, v in (old.items() if isinstance(old, dict) else ())
                if k in names and k not in settled}
        merged = dict(sorted((kept | report.failed).items()))
        if merged:
            write_json(path, merged)
        else:
            path.unlink(missing_ok=True)


def _remove_if_only_mark(out_root: Path) -> None:
    """Remove an output root this run created when nothing but its mark is in it."""
    with contextlib.suppress(OSError):
        if {p.name for p in out_root.iterdir()} <= {OUTPUT_ROOT_MARK}:
            (out_root / OUTPUT_ROOT_MARK).unlink(missing_ok=True)
            out_root.rmdir()


def run_inputs(items: Sequence[tuple[str, Path]], out_root: Path, marker_name: str, digest: str,
               job: Callable[[Path, Path], None], progress: bool, desc: str, shard: Shard | None = None,
               workers: int = 1, threads: int | None = None, ray: str | None = None) -> int:
    """A command's run over its inputs; returns its exit code.

    The output folder is checked first (one line, exit 2, before any work). Inputs found by
    :func:`crossdistill.engine.inputs.find_input_files` never include earlier outputs (output
    trees are marked and skipped), also when ``-o`` lies inside the input folder. One input: its
    errors are the command's own (they propagate, so bad input exits 2, and nothing is left
    written); skipped when already done for this input content and these settings, or while
    another process works on it. Several: :func:`run_batch` (``shard``, ``workers``, ``threads``,
    ``ray`` passed on) with claimed item folders, failures isolated and summarised on stderr (exit 1 if
    any failed).
    """
    check_output_dir(out_root)
    if len(items) == 1 and (shard is None or shard.select(items)):
        return _run_single(items[0], out_root, marker_name, digest, job)
    report = run_batch(items, out_root, marker_name, digest, job, progress=progress, desc=desc, claim=True,
                       shard=shard, workers=workers, threads=threads, ray=ray)
    text = report.summary(desc, out_root)
    if shard is not None:
        text += f" (shard {shard}: {len(shard.select(items))} of {len(items)} inputs)"
    print(text, file=sys.stderr)
    return 1 if report.failed else 0


def _run_single(item: tuple[str, Path], out_root: Path, marker_name: str, digest: str,
                job: Callable[[Path, Path], None]) -> int:
    """One input: errors propagate (the command's exit 2); an output root this run created is removed on failure."""
    created = not out_root.exists()
    name, path = item
    task = Task(name, path, out_root, out_root / name / marker_name, digest, claim=True)
    try:
        status = run_item(task, job)
    except BaseException:
        if created:
            _remove_if_only_mark(out_root)
        raise
    if status == SKIPPED:
        print(f"{task.item_dir}: already done with these settings (delete it to recompute)", file=sys.stderr)
    elif status == CLAIMED:
        print(f"{task.item_dir}: another run is computing it ({describe(holder_of(out_root, name))}); "
              "not computed here", file=sys.stderr)
    return 0
