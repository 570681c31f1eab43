"""How many threads crossdistill's numeric work uses, and how its idle threads wait.

Two measured facts drive this module (``docs/results/contention.md``):

* OpenMP worker threads that *spin* while waiting (the GNU OpenMP default of the PyTorch CPU
  wheels) are ruinous on a machine where another process holds a core. With
  ``OMP_WAIT_POLICY=PASSIVE`` idle workers sleep instead, and all threads keep their gain on
  a quiet machine while staying close to the fair-share bound beside busy processes. The policy must be set before the
  OpenMP runtime loads (before ``import torch``), so :func:`passive_waits` runs when the
  ``crossdistill`` package is imported; a user's explicit setting is kept.
* Thread counts: ``--threads N`` or ``CROSSDISTILL_THREADS`` set torch's intra-op threads and
  the BLAS / OpenMP pools (threadpoolctl) to N; by default every CPU this process may use.
"""

from __future__ import annotations

import os
import sys

ENV = "CROSSDISTILL_THREADS"


def passive_waits() -> bool:
    """Make idle OpenMP threads sleep rather than spin (unless the user chose otherwise).

    Returns:
        True when the setting can still take effect (torch not imported yet).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("KMP_BLOCKTIME", "0")  # the same for Intel's OpenMP runtime
    return "torch" not in sys.modules


def available_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def thread_count(requested: int | None = None) -> int:
    """The thread count to use: ``requested``, else ``$CROSSDISTILL_THREADS``, else every available CPU.

    Raises:
        ValueError: a count below 1 or an unreadable ``$CROSSDISTILL_THREADS``.
    """
    if requested is None and os.environ.get(ENV, "").strip():
        try:
            requested = int(os.environ[ENV])
        except ValueError:
            raise ValueError(f"{ENV} must be a whole number, got {os.environ[ENV]!r}") from None
    n = available_cpus() if requested is None else int(requested)
    if n < 1:
        raise ValueError(f"the thread count must be at least 1, got {n}")
    return n


def configure_threads(requested: int | None = None) -> int:
    """Set torch's intra-op threads and the BLAS / OpenMP pools to :func:`thread_count`; returns it."""
    n = thread_count(requested)
    os.environ[ENV] = str(n)  # the renderer's view threads and worker processes follow it
    import torch

    torch.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    return n
