"""SIGTERM ends a run like Ctrl-C: one line, a conventional exit code, no partial file (issue 30, item 11)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

import pytest


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix", reason="POSIX signals")
def test_sigterm_mid_run_is_one_clean_line(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "crossdistill.cli.main", "render", "--demo", "-o", str(out),
                             "--views", "80", "--size", "384", "--points", "3000"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
    chunks: list[bytes] = []
    started = threading.Event()

    def read() -> None:
        for chunk in iter(lambda: proc.stderr.read1(4096), b""):
            chunks.append(chunk)
            started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert started.wait(60), "the run printed no progress"  # the handler is in place once work has begun
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 143
    reader.join(10)
    text = b"".join(chunks).decode()
    # besides progress-bar redraws, the one thing said is "terminated"
    said = [ln for ln in re.sub(r"\r?[^\r\n]*\d+/\d+ \[[^\]]*\]", "\n", text).splitlines() if ln.strip()]
    assert said == ["terminated"], text
    assert not list(out.rglob(".tmp-*")) if out.exists() else True
