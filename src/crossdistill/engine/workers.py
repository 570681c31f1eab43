"""``--workers N``: a batch's items in N local worker processes.

Each worker is a fresh interpreter (the ``spawn`` start method: no state, locks or threads
inherited from the parent) that receives the job once, sets its numeric threads, and then runs
items through :func:`crossdistill.engine.items.attempt`, exactly as a one-process run does;
so an item's outputs do not depend on the runner that made them, given the same thread count
(``docs/reliability.md``: the thread count is part of what decides float reductions).

Isolation: an item's error comes back as a failed outcome. A worker process that dies (killed,
out of memory) breaks the pool; the items that were in flight are then run again one at a time
in a fresh pool, and the one that kills its worker again is reported failed, the others finish.

Interruption: workers ignore Ctrl-C (the terminal sends it to every process of the group); the
parent, on Ctrl-C or SIGTERM, sends SIGTERM to its workers, which unwind the item in progress
(partial folder removed, claim released) and exit.
"""

from __future__ import annotations

import atexit
import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from crossdistill.engine.items import FAILED, Job, Outcome, Task, attempt, discard_orphan
from crossdistill.engine.threads import ENV, available_cpus, thread_count
from crossdistill.errors import Terminated

__all__ = ["worker_threads", "run_in_workers"]

DIED = "worker process died (killed, or out of memory) while doing this item, also when run alone"

_job: Job | None = None
_in_item = False
_stopping = False


def worker_threads(workers: int, requested: int | None = None) -> int:
    """Threads per worker: ``requested`` (``--threads``), else ``$CROSSDISTILL_THREADS``, else the
    available CPUs shared out (at least 1)."""
    if requested is not None or os.environ.get(ENV, "").strip():
        return thread_count(requested)
    return max(1, available_cpus() // max(1, workers))


def _leave() -> None:
    """End this worker now, after its exit handlers (they free the named semaphores it created, e.g.
    tqdm's lock, which the shared resource tracker would otherwise report as leaked)."""
    with contextlib.suppress(Exception):
        atexit._run_exitfuncs()
    os._exit(143)


def _on_sigterm(signum, frame) -> None:
    global _stopping
    if not _in_item:
        _leave()
    if _stopping:
        return  # a second SIGTERM (to the process group and from the parent): let the clean-up finish
    _stopping = True
    raise Terminated()  # unwinds the item (partial folder removed, claim released); then _work exits


def _on_unraisable(args) -> None:
    """A :class:`Terminated` raised by :func:`_on_sigterm` where Python cannot raise (a weakref
    callback, e.g. inside an import, or ``__del__``) is dropped silently and the signal sent again,
    so that it unwinds the item from ordinary code; anything else goes to Python's own hook."""
    global _stopping
    if isinstance(args.exc_value, Terminated):
        _stopping = False
        os.kill(os.getpid(), signal.SIGTERM)
        return
    sys.__unraisablehook__(args)


def _init(job: Job, threads: int) -> None:
    """Worker start: signals, threads, the job."""
    global _job
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    sys.unraisablehook = _on_unraisable
    from crossdistill.engine.threads import configure_threads

    configure_threads(threads)
    _job = job


def _work(task: Task) -> Outcome:
    global _in_item
    assert _job is not None, "worker used before its initializer ran"
    _in_item = True
    try:
        return attempt(task, _job)
    finally:
        _in_item = False
        if _stopping:
            _leave()  # the parent is tearing the pool down: nothing more to report


def _check_picklable(job: Job) -> None:
    try:
        pickle.dumps(job)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise TypeError(f"worker processes need a picklable job (a module-level class or function), "
                        f"got {job!r}: {exc}") from None


class _Pool:
    """A spawn-context process pool that can be torn down at once (SIGTERM to every worker), and whose
    worker processes are all waited for on close: a worker unwinding an item still holds its claim."""

    def __init__(self, workers: int, job: Job, threads: int):
        self.executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_init, initargs=(job, threads))
        self.procs: dict[int, multiprocessing.process.BaseProcess] = {}

    def submit(self, task: Task) -> Future:
        future = self.executor.submit(_work, task)
        self.procs.update(getattr(self.executor, "_processes", None) or {})  # started on demand by submit
        return future

    def close(self, terminate: bool = False) -> None:
        procs = list(self.procs.values())
        if terminate:
            for p in procs:
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    p.terminate()
            for p in procs:
                with contextlib.suppress(OSError, ValueError, AssertionError):
                    p.join(timeout=120)
        self.executor.shutdown(wait=True, cancel_futures=True)
        for p in procs:
            with contextlib.suppress(OSError, ValueError, AssertionError):
                p.join(timeout=120)
        self.procs.clear()


def run_in_workers(tasks: Sequence[Task], job: Job, workers: int, threads: int,
                   on_result: Callable[[Task, Outcome], None]) -> None:
    """Run ``tasks`` in ``workers`` processes of ``threads`` threads; ``on_result`` (in this process)
    gets every task's outcome as it arrives (tasks finish in any order).

    Raises:
        TypeError: ``job`` cannot be pickled.
    """
    _check_picklable(job)
    queue: deque[Task] = deque(tasks)
    suspects: deque[Task] = deque()
    pool: _Pool | None = None
    try:
        while queue or suspects:
            pool = pool or _Pool(workers, job, threads)
            if suspects:  # alone, so that a second death names the item that causes it
                task = suspects.popleft()
                try:
                    outcome = pool.submit(task).result()
                except BrokenProcessPool:
                    pool.close(terminate=True)
                    pool = None
                    discard_orphan(task)
                    outcome = Outcome(FAILED, DIED, f"error: {task.name}: {DIED}")
                on_result(task, outcome)
                continue
            if _run_parallel(pool, queue, suspects, workers, on_result):
                pool.close(terminate=True)
                pool = None
    except BaseException:
        if pool is not None:
            pool.close(terminate=True)
            pool = None
        raise
    finally:
        if pool is not None:
            pool.close()


def _run_parallel(pool: _Pool, queue: deque[Task], suspects: deque[Task], workers: int,
                  on_result: Callable[[Task, Outcome], None]) -> bool:
    """Keep ``workers`` tasks in flight until ``queue`` is empty; True when the pool broke (the
    tasks then in flight and unfinished are moved to ``suspects``)."""
    running: dict[Future, Task] = {}
    try:
        while queue or running:
            while queue and len(running) < workers:
                task = queue.popleft()
                try:
                    running[pool.submit(task)] = task
                except BrokenProcessPool:
                    queue.appendleft(task)
                    raise
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                outcome = fut.result()  # BrokenProcessPool: handled below, with the rest in flight
                on_result(running.pop(fut), outcome)
    except BrokenProcessPool:
        for fut, task in running.items():
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                on_result(task, fut.result())
            else:
                suspects.append(task)
        return True
    return False
