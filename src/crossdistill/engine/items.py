"""One item of a batch run, done the same way by every runner (this process or a worker process).

:func:`run_item` claims the item (:mod:`crossdistill.engine.claims`), so that concurrent
processes on one output folder never work on the same item, then skips it when finished or
runs the job. :func:`attempt` wraps it for batch runs: an error becomes a ``failed``
:class:`Outcome` instead of an exception, so one bad item never stops the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from crossdistill.engine.claims import describe, holder_of, try_claim
from crossdistill.engine.outputs import claim_item, discard_item, file_sha256, is_finished, mark_output_root, seal_item
from crossdistill.errors import InputError

__all__ = ["DONE", "SKIPPED", "CLAIMED", "FAILED", "Task", "Outcome", "run_item", "attempt", "discard_orphan"]

DONE, SKIPPED, CLAIMED, FAILED = "done", "skipped", "claimed", "failed"

#: errors an item may raise that are its own (bad input, I/O, numerics), reported without "internal error"
ITEM_ERRORS = (InputError, ValueError, OSError, RuntimeError, MemoryError)

Job = Callable[[Path | None, Path], None]


@dataclass(frozen=True)
class Task:
    """One item, everything a worker process needs besides the job (picklable).

    Attributes:
        name: the item's output sub-folder (relative to ``out_root``), also its claim's name.
        path: its input (None: the built-in demo).
        out_root: the batch's output root.
        marker: the completion marker whose settings hash (and input hash) mark it finished.
        digest: settings hash of this run.
        claim: the item folder belongs to this batch (see :func:`run_item`).
    """

    name: str
    path: Path | None
    out_root: Path
    marker: Path
    digest: str
    claim: bool

    @property
    def item_dir(self) -> Path:
        return self.out_root / self.name


@dataclass(frozen=True)
class Outcome:
    """What became of one item: ``status`` one of DONE, SKIPPED, CLAIMED, FAILED; ``message`` for
    FAILED (``Type: first line``) and CLAIMED (who holds it); ``line`` the stderr line of a failure."""

    status: str
    message: str = ""
    line: str = ""


def run_item(task: Task, job: Job) -> str:
    """Claim ``task``'s item and do it; DONE, SKIPPED (already finished) or CLAIMED (another live process holds it).

    With ``task.claim``, finished means the marker records this settings hash *and* this input's
    content hash; an unfinished folder is emptied first, sealed after the job, discarded on failure
    (:mod:`crossdistill.engine.outputs`). Without it (jobs that add files to folders another
    command wrote) finished means the marker records the settings hash. Errors propagate.
    """
    grant = try_claim(task.out_root, task.name)
    if grant is None:
        return CLAIMED
    with grant:
        if not task.claim:
            if is_finished(task.marker, task.digest):
                return SKIPPED
            job(task.path, task.item_dir)
            return DONE
        sha = file_sha256(task.path)
        if claim_item(task.item_dir, task.marker, task.digest, sha, task.path):
            return SKIPPED
        try:
            mark_output_root(task.out_root)
            job(task.path, task.item_dir)
            seal_item(task.marker, sha)
        except BaseException:
            discard_item(task.item_dir, task.out_root)
            raise
    return DONE


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def attempt(task: Task, job: Job) -> Outcome:
    """:func:`run_item` with the item's errors turned into a FAILED outcome (``$CROSSDISTILL_DEBUG``
    re-raises the unexpected ones). Interruptions (Ctrl-C, SIGTERM) still propagate."""
    try:
        status = run_item(task, job)
    except ITEM_ERRORS as exc:
        msg = _first_line(exc)
        return Outcome(FAILED, f"{type(exc).__name__}: {msg}", f"error: {task.name}: {msg}")
    except Exception as exc:  # noqa: BLE001 - a bug met on one item must not lose the others
        if os.environ.get("CROSSDISTILL_DEBUG"):
            raise
        msg = _first_line(exc)
        return Outcome(FAILED, f"internal error: {type(exc).__name__}: {msg}",
                       f"internal error: {task.name}: {type(exc).__name__}: {msg} (re-run with --debug for details)")
    if status == CLAIMED:
        return Outcome(CLAIMED, describe(holder_of(task.out_root, task.name)))
    return Outcome(status)


def discard_orphan(task: Task) -> None:
    """Remove the partial folder of an item whose process died mid-way (when no live process claims it now)."""
    if not task.claim:
        return
    grant = try_claim(task.out_root, task.name)
    if grant is None:
        return
    with grant:
        try:
            finished = is_finished(task.marker, task.digest, file_sha256(task.path))
        except OSError:
            finished = False
        if not finished:
            discard_item(task.item_dir, task.out_root)
