"""Speed and peak memory of `crossdistill segment` at default settings, one object per fresh process.

The quality benchmark (bench/segment.py) also records timings, but it may share the
machine with other jobs; this script is meant to be run alone on a quiet machine and
records the load average so the reader can judge. Writes docs/results/segment_speed.md (+ .json).

    python bench/segment_speed.py                 # 1 object per category, mesh and point tracks
    python bench/segment_speed.py --per-category 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def _one(data: str, track: str, cat: str, oid: str, threads: int) -> dict:
    import resource

    import torch

    torch.set_num_threads(threads)
    from crossdistill.eval.segment_report import load_labelled
    from crossdistill.methods.sampart3d.pipeline import SegmentConfig, segment_shape

    obj = load_labelled(Path(data), track, cat, oid)
    t0 = time.perf_counter()
    seg = segment_shape(obj.shape, SegmentConfig(), progress=False)
    return {"name": obj.name, "track": track, "seconds": time.perf_counter() - t0,
            "stages": seg.timings, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "n_elements": int(obj.shape.n_faces if obj.shape.is_mesh else obj.shape.n_vertices)}


def _fresh(fn, *args):
    """Run ``fn(*args)`` in a fresh process (torch's thread pool must not start in this one: forked
    object processes would inherit it and hang)."""
    with ProcessPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args).result()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO / ".." / "shared" / "data"))
    ap.add_argument("--per-category", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "segment_speed"))
    ap.add_argument("--tracks", nargs="+", default=["mesh", "points"], choices=["mesh", "points"])
    args = ap.parse_args()
    from crossdistill.engine.machine import matmul_gflops
    from crossdistill.eval.segment_report import _machine, select_objects
    from crossdistill.io_utils import write_json, write_text

    data = Path(args.data)
    if not (data / "partnet_mobility_dev").is_dir():
        print(f"error: {data / 'partnet_mobility_dev'} not found", file=sys.stderr)
        return 2
    objects = select_objects(data, args.per_category)
    load0 = os.getloadavg()[0]
    ref0 = _fresh(matmul_gflops, args.threads)
    rows = []
    for track in args.tracks:
        for cat, oid in objects:
            r = _fresh(_one, str(data), track, cat, oid, args.threads)
            rows.append(r)
            print(f"[{track}] {r['name']}: {r['seconds']:.1f} s, {r['peak_rss_mib']:.0f} MiB", flush=True)
    load1 = os.getloadavg()[0]
    ref1 = _fresh(matmul_gflops, args.threads)
    md = ["# `crossdistill segment` speed and memory (default settings)", "",
          f"Command: `python bench/segment_speed.py {' '.join(sys.argv[1:])}`  ",
          f"Machine: {_machine()}; torch threads {args.threads}; 1-min load average {load0:.1f} at start, "
          f"{load1:.1f} at end  ",
          f"Reference float32 matmul throughput ({args.threads} threads, 1024^2): {ref0:.0f} GFLOP/s at start, "
          f"{ref1:.0f} at end (the same CPU model varies between moments on a shared host)  ",
          f"Date: {dt.datetime.now().isoformat(timespec='minutes')}", "",
          "Default settings: 15k points, 36 views at 384 px, offline mask teacher, 400 training steps, 5 scales.", ""]
    for track in args.tracks:
        rs = [r for r in rows if r["track"] == track]
        secs = np.array([r["seconds"] for r in rs])
        stages = sorted({k for r in rs for k in r["stages"]})
        md += [f"## {track} track ({len(rs)} objects)", "",
               f"Median {np.median(secs):.1f} s, p90 {np.percentile(secs, 90):.1f} s, max {secs.max():.1f} s per object "
               f"(target: median < 30 s: **{'met' if np.median(secs) < 30 else 'MISSED'}**); peak RSS max "
               f"{max(r['peak_rss_mib'] for r in rs):.0f} MiB (target < 4096 MiB: "
               f"**{'met' if max(r['peak_rss_mib'] for r in rs) < 4096 else 'MISSED'}**).", "",
               "| stage | median s |", "|---|---|"]
        md += [f"| {k} | {np.median([r['stages'].get(k, 0.0) for r in rs]):.2f} |" for k in stages]
        md += ["", "| object | elements | s | peak MiB |", "|---|---|---|---|"]
        md += [f"| {r['name']} | {r['n_elements']} | {r['seconds']:.1f} | {r['peak_rss_mib']:.0f} |" for r in rs]
        md.append("")
    out = Path(args.out)
    write_text(out.with_suffix(".md"), "\n".join(md))
    write_json(out.with_suffix(".json"), {"rows": rows, "load_start": load0, "load_end": load1,
                                           "matmul_gflops_start": ref0, "matmul_gflops_end": ref1})
    print(f"wrote {out}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
