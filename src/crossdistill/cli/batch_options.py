"""Options of folder runs shared by the batch commands: ``--shard I/N``, ``--workers N``, ``--ray [ADDRESS]``."""

from __future__ import annotations

import argparse

from crossdistill.engine.shards import shard_arg

__all__ = ["add_batch_arguments"]


def add_batch_arguments(p: argparse.ArgumentParser, workers: bool = False, unit: str = "objects") -> None:
    """Add ``--shard`` (and ``--workers`` and ``--ray`` when the command's job can run in worker processes)."""
    p.add_argument("--shard", type=shard_arg, default=None, metavar="I/N",
                   help=f"do only shard I of N of the inputs, 0-based (0/4, 1/4, 2/4, 3/4): sorted by output "
                        f"name, every N-th from the I-th; for job arrays. Whatever the shards, processes sharing "
                        f"-o never do one of the {unit} twice (each claims an item before it starts)")
    if workers:
        p.add_argument("--workers", type=int, default=1, metavar="N",
                       help=f"folder runs: {unit} in N local processes, each with --threads threads (default: the "
                            f"CPUs shared out); outputs as with one process at the same thread count (default 1)")
        p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                       help=f"folder runs: {unit} as Ray tasks (needs the [scale] extra). Alone: a local Ray "
                            f"instance of --workers x --threads CPUs; with ADDRESS (auto, ray://host:10001): that "
                            f"cluster, whose nodes must all see -o. Outputs as with one process at the same "
                            f"thread count")
