"""Thread helpers of the renderer (CPU count, BLAS thread limit)."""

from __future__ import annotations

import contextlib
import os


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def single_threaded_blas():
    """Context manager limiting BLAS to one thread (threadpoolctl, if installed).

    The renderer parallelises over views; its (n, 3) @ (3, 3) products are tiny, and
    OpenBLAS threads spinning next to the view threads were measured to cost up to 50x
    their work on a busy 2-core machine.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")
