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
import statistics
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


def run_segment(inp: list[str], env: dict, timeout: float) -> float | None:
    """Seconds of one CLI run, None when it ran past ``timeout`` (stopped)."""
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        try:
            subprocess.run([sys.executable, "-m", "crossdistill.cli.main", "segment", *inp, "-o", out, "--quiet"],
                           env=env, check=True, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO / ".." / "shared" / "data"))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "contention"))
    ap.add_argument("--max-seconds", type=float, default=300.0, help="a run past this is stopped and reported as such")
    ap.add_argument("--cache", default=str(REPO / "bench" / "_cache" / "contention"),
                    help="one JSON per (busy, mode, object) row: a rerun measures only what is missing")
    ap.add_argument("--modes", nargs="+", choices=("default", "spinning", "one"), default=["default", "spinning", "one"],
                    help="which thread modes to measure (spinning waits take minutes beside busy processes)")
    args = ap.parse_args()
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    inputs = {"demo": ["--demo"]}
    mesh = Path(args.data) / "partnet_mobility_dev" / "Bucket" / "100431.glb"
    if mesh.exists():
        inputs["Bucket/100431"] = [str(mesh)]
    base_env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME", "OMP_NUM_THREADS",
                                                               "CROSSDISTILL_THREADS")}
    modes = {"default (passive waits)": dict(base_env), "spinning waits (OMP_WAIT_POLICY=ACTIVE)":
             dict(base_env, OMP_WAIT_POLICY="ACTIVE"), "one thread (--threads 1)": dict(base_env, CROSSDISTILL_THREADS="1")}
    modes = {m: env for m, env in modes.items() if m.split()[0] in args.modes}
    rows = []
    for busy in (0, 1, 2):
        todo = [(m, n) for m in modes for n in inputs if not _cached(cache, busy, m, n)]
        rows += [_cached(cache, busy, m, n) for m in modes for n in inputs if _cached(cache, busy, m, n)]
        if not todo:
            continue
        stop = mp.Event()
        procs = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(busy)]
        for p in procs:
            p.start()
        try:
            for mode, name in todo:
                secs = []
                for _ in range(args.repeats):
                    secs.append(run_segment(inputs[name], modes[mode], args.max_seconds))
                    if secs[-1] is None:
                        break  # one run past the limit says enough
                rows.append({"busy": busy, "mode": mode, "object": name, "seconds": secs,
                             "median": None if None in secs else statistics.median(secs),
                             "limit_s": args.max_seconds})
                _cache_file(cache, busy, mode, name).write_text(json.dumps(rows[-1]))
                print(json.dumps(rows[-1]), flush=True)
        finally:
            stop.set()
            for p in procs:
                p.join()
    _report(rows, args)
    return 0


def _cache_file(cache: Path, busy: int, mode: str, name: str) -> Path:
    key = "".join(c if c.isalnum() else "_" for c in f"{busy}_{mode}_{name}")
    return cache / f"{key}.json"


def _cached(cache: Path, busy: int, mode: str, name: str) -> dict | None:
    f = _cache_file(cache, busy, mode, name)
    return json.loads(f.read_text()) if f.exists() else None


def _why(rows: list[dict]) -> list[str]:
    """What bounds the ratio beside one busy core, from the measured rows."""
    def med(mode: str, busy: int) -> list[float]:
        return [r["median"] for r in rows if r["mode"].startswith(mode) and r["busy"] == busy and r["median"]]

    one, two = med("one thread", 0), med("default", 0)
    if not one or not two:
        return []
    cpus = os.cpu_count() or 2
    speedup = sum(one) / sum(two)
    share = cpus * cpus / (cpus + 1)  # cores a fair scheduler gives `cpus` threads beside one busy thread
    bound = cpus / share
    one_b1 = med("one thread", 1)
    default_b1 = med("default", 1)
    lines = ["", "## What bounds the ratio", "",
             f"One thread alone takes {speedup:.2f}x as long as {cpus} threads alone (perfectly parallel work: "
             f"{cpus:.0f}x). Beside one process that never sleeps, a fair scheduler gives our {cpus} threads "
             f"{share:.2f} of the {cpus} cores, so perfectly parallel work runs at {bound:.2f}x its time alone; "
             "work that gains less from the second thread still loses time beside a busy core wherever its "
             "threads wait for each other at the end of a parallel region (one of them was descheduled). Idle "
             "threads that sleep (the default) stay near the bound, where spinning waits do not."]
    if one_b1:
        lines.append(f"One thread beside a busy core takes {sum(one_b1) / sum(one):.2f}x its own time alone and "
                     f"{sum(one_b1) / sum(two):.2f}x the default's time alone"
                     + (f" (the default beside it: {sum(default_b1) / sum(two):.2f}x)" if default_b1 else "")
                     + f"; alone it is {speedup:.2f}x slower than the default. The default stays every available "
                     "CPU, a fixed count, so that the same seed gives the same labels whatever else runs (the "
                     "labels depend on the thread count); `--threads 1` is the choice beside a long job that keeps "
                     "a core busy.")
    return lines + [""]


def _report(rows: list[dict], args) -> None:
    from crossdistill.engine.machine import cpu_model
    from crossdistill.io_utils import write_json, write_text

    lines = ["# `crossdistill segment` beside busy processes", "",
             f"Command: `python bench/contention.py {' '.join(sys.argv[1:])}`  ",
             f"Machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}  ",
             f"Date: {_dt.date.today().isoformat()}", "",
             "Seconds per object (the whole CLI run, median of the repeats), default settings; a busy process "
             "keeps one core spinning in Python. Ratios: time / time alone in the same mode; time / time alone "
             "with the default settings.", "",
             "| object | mode | alone (/ default alone) | beside 1 busy (ratios) | beside 2 busy (ratios) |",
             "|---|---|---|---|---|"]
    summary = {}
    for mode in dict.fromkeys(r["mode"] for r in rows):
        for obj in dict.fromkeys(r["object"] for r in rows):
            t = {r["busy"]: r["median"] for r in rows if r["mode"] == mode and r["object"] == obj}
            if t.get(0) is None:
                continue
            over = {r["busy"]: r.get("limit_s") for r in rows if r["mode"] == mode and r["object"] == obj
                    and r["median"] is None}
            base = next((r["median"] for r in rows if r["busy"] == 0 and r["object"] == obj
                         and r["mode"].startswith("default")), t[0])
            cells = [f"{t[0]:.1f} ({t[0] / base:.2f}x)"] + [
                f"{t[b]:.1f} ({t[b] / t[0]:.2f}x; {t[b] / base:.2f}x)" if t.get(b) is not None
                else f"> {over[b]:.0f} (stopped)" if b in over else "-" for b in (1, 2)]
            lines.append(f"| {obj} | {mode} | " + " | ".join(cells) + " |")
            summary[f"{obj} {mode}"] = {b: t[b] / t[0] for b in t if t[b] is not None}
    lines.append("")
    for key, ratios in summary.items():
        if key.endswith("(passive waits)") and 1 in ratios:
            ok = ratios[1] <= 1.5
            lines.append(f"- target <= 1.5x beside one busy core, {key}: {ratios[1]:.2f}x: **{'met' if ok else 'MISSED'}**")
    if "spinning" not in args.modes:
        lines += [""]
        lines.append("Spinning waits (OMP_WAIT_POLICY=ACTIVE) were not measured in this run (`--modes`); their earlier rows are in this file's git history (2026-12-05).")
    lines += _why(rows)
    out = Path(args.out)
    write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    write_json(out.with_suffix(".json"), {"rows": rows, "ratios": summary})


if __name__ == "__main__":
    sys.exit(main())
