"""Thread helpers of the renderer (CPU count, BLAS thread limit)."""

from __future__ import annotations

import contextlib


def cpu_count() -> int:
    """Threads the renderer casts views on: ``--threads`` / ``$CROSSDISTILL_THREADS`` when set, else
    every CPU this process may run on (:func:`crossdistill.engine.threads.thread_count`)."""
    from crossdistill.engine.threads import thread_count

    return thread_count()


def single_threaded_blas():
    """Context manager limiting BLAS to one thread (threadpoolctl, if installed).

    The renderer parallelises over views; its (n, 3) @ (3, 3) products are tiny, and
    OpenBLAS threads spinning next to the view threads cost many times their work on a busy
    machine.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")
