"""A picklable batch job for the scale tests (worker processes import it by name)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from crossdistill.errors import InputError


class FileJob:
    """Writes ``scale_1/labels.txt`` (the input's bytes) and ``done.json``, like `segment` does, and
    appends one line ``<item name> <pid>`` to ``log`` per call (so calls can be counted across processes).

    ``fail_on``: raise an item error on this input name; ``die_on``: end the process abruptly (as
    ``kill -9`` would) on this input name; ``sleep``: seconds per item (lets concurrent runs overlap).
    """

    def __init__(self, log: Path, digest: str = "d1", fail_on: str | None = None, die_on: str | None = None,
                 sleep: float = 0.0):
        self.log, self.digest, self.fail_on, self.die_on, self.sleep = log, digest, fail_on, die_on, sleep

    def __call__(self, path: Path, item_dir: Path) -> None:
        fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, f"{item_dir.name} {os.getpid()}\n".encode())
        finally:
            os.close(fd)
        (item_dir / "scale_1").mkdir(parents=True, exist_ok=True)
        (item_dir / "scale_1" / "labels.txt").write_bytes(path.read_bytes())
        if self.sleep:
            time.sleep(self.sleep)
        if path.name == self.fail_on:
            raise InputError(f"{path}: broken")
        if path.name == self.die_on:
            os._exit(9)
        (item_dir / "done.json").write_text(json.dumps({"settings_hash": self.digest}))

    def calls(self) -> list[str]:
        """Item names this job ran on, in every process, in order."""
        if not self.log.exists():
            return []
        return [line.split()[0] for line in self.log.read_text().splitlines()]
