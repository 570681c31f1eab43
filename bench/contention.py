"""Seconds per object of `crossdistill segment` alone and beside busy processes.

A user runs segmentation beside a browser, a render or a second job. This times the CLI
(default settings, the built-in demo object and one shared PartNet-Mobility mesh) alone, beside
1 and beside 2 processes that each keep a core busy, with the package's default thread
handling (idle OpenMP threads sleep: ``engine/threads.py``) and, for comparison, with the
OpenMP runtime's spinning waits (``OMP_WAIT_POLICY=ACTIVE``). Target: <= 1.5x the time alone
beside one busy core.

    python bench/contention.py              # writes docs/results/contention.md
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def _spin(stop) -> None:  # a process that keeps one core busy
    x = 0
    while not stop.is_set():
        for _ in range(100000):
            x += 1


def run_segment(inp: list[str], env: dict) -> float:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "crossdistill.cli.main", "segment", *inp, "-o", out, "--quiet"],
                       env=env, check=True, capture_output=True)
        return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO / ".." / "shared" / "data"))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "contention"))
    args = ap.parse_args()
    inputs = {"demo": ["--demo"]}
    mesh = Path(args.data) / "partnet_mobility_dev" / "Bucket" / "100431.glb"
    if mesh.exists():
        inputs["Bucket/100431"] = [str(mesh)]
    base_env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME", "OMP_NUM_THREADS",
                                                               "CROSSDISTILL_THREADS")}
    modes = {"default (passive waits)": dict(base_env), "spinning waits (OMP_WAIT_POLICY=ACTIVE)":
             dict(base_env, OMP_WAIT_POLICY="ACTIVE")}
    rows = []
    for busy in (0, 1, 2):
        stop = mp.Event()
        procs = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(busy)]
        for p in procs:
            p.start()
        try:
            for mode, env in modes.items():
                for name, inp in inputs.items():
                    secs = [run_segment(inp, env) for _ in range(args.repeats)]
                    rows.append({"busy": busy, "mode": mode, "object": name, "seconds": secs,
                                 "median": sorted(secs)[len(secs) // 2]})
                    print(json.dumps(rows[-1]), flush=True)
        finally:
            stop.set()
            for p in procs:
                p.join()
    _report(rows, args)
    return 0


def _report(rows: list[dict], args) -> None:
    from crossdistill.engine.machine import cpu_model
    from crossdistill.io_utils import write_json, write_text

    lines = ["# `crossdistill segment` beside busy processes", "",
             f"Command: `python bench/contention.py {' '.join(sys.argv[1:])}`  ",
             f"Machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}  ",
             f"Date: {_dt.date.today().isoformat()}", "",
             "Seconds per object (the whole CLI run, median of the repeats), default settings; a busy process "
             "keeps one core spinning in Python. Ratio = time / time alone in the same mode.", "",
             "| object | waits | alone | beside 1 busy (ratio) | beside 2 busy (ratio) |", "|---|---|---|---|---|"]
    summary = {}
    for mode in dict.fromkeys(r["mode"] for r in rows):
        for obj in dict.fromkeys(r["object"] for r in rows):
            t = {r["busy"]: r["median"] for r in rows if r["mode"] == mode and r["object"] == obj}
            if 0 not in t:
                continue
            cells = [f"{t[0]:.1f}"] + [f"{t[b]:.1f} ({t[b] / t[0]:.2f}x)" if b in t else "-" for b in (1, 2)]
            lines.append(f"| {obj} | {mode} | " + " | ".join(cells) + " |")
            summary[f"{obj} {mode}"] = {b: t[b] / t[0] for b in t}
    lines.append("")
    for key, ratios in summary.items():
        if key.endswith("(passive waits)") and 1 in ratios:
            ok = ratios[1] <= 1.5
            lines.append(f"- target <= 1.5x beside one busy core, {key}: {ratios[1]:.2f}x: **{'met' if ok else 'MISSED'}**")
    out = Path(args.out)
    write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    write_json(out.with_suffix(".json"), {"rows": rows, "ratios": summary})


if __name__ == "__main__":
    sys.exit(main())
