"""What machine a benchmark ran on (recorded next to every measured figure)."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, else platform.processor(), else "unknown CPU"."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def matmul_gflops(threads: int, size: int = 1024, repeats: int = 20) -> float:
    """Measured float32 matrix-multiply throughput of this machine right now, in GFLOP/s.

    A fixed reference workload recorded next to timings, so that runs on the same CPU model
    at different moments (shared hosts vary) can be compared: a run whose reference is 30%
    lower is expected to be about that much slower. Restores torch's thread count.
    """
    import time

    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a = torch.randn(size, size)
        for _ in range(3):
            a @ a
        t0 = time.perf_counter()
        for _ in range(repeats):
            a @ a
        dt = time.perf_counter() - t0
    finally:
        torch.set_num_threads(before)
    return 2.0 * size**3 * repeats / dt / 1e9
