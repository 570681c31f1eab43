"""Seconds per object of the two presets of `crossdistill segment`, stage by stage.

The fast preset runs whole; the paper preset's training (5000 steps of 90 images x 256
pixels, width 384) takes hours on a CPU, so on a CPU it is timed over ``--paper-steps``
steps and the full training is extrapolated from the per-step time (the report says
which figures are measured and which extrapolated). With ``--device cuda`` both run whole.
Masks come from the SAM-like mask emulator (benchmarks only) on shared PartNet-Mobility
objects, so that the supervision has SAM's kind of overlapping masks. Both tracks are timed: the
meshes and the objects' point clouds, which train with other rules (``rules.SAM_RULES``).

    python bench/segment_presets_speed.py                      # CPU, 3 objects
    python bench/segment_presets_speed.py --device cuda --full # a GPU: both presets whole
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

OBJECTS = [("Bucket", "100431"), ("Laptop", "10040"), ("Stapler", None)]


def main() -> int:
    from crossdistill.methods.sampart3d.pipeline import PRESETS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO / ".." / "shared" / "data"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--paper-steps", type=int, default=10, help="paper-preset steps timed when not --full")
    ap.add_argument("--full", action="store_true", help="run the paper preset's whole training")
    ap.add_argument("--objects", type=int, default=len(OBJECTS), help="how many of the objects to time")
    ap.add_argument("--tracks", nargs="+", default=["mesh", "points"], choices=["mesh", "points"])
    ap.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "segment_presets_speed"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from crossdistill.engine.machine import matmul_gflops
    from crossdistill.eval.emulators import EmulatedMaskTeacher
    from crossdistill.eval.segment_objects import load
    from crossdistill.methods.sampart3d.pipeline import preset, segment_shape

    data = Path(args.data)
    if not (data / "partnet_mobility_dev").is_dir():
        print(f"error: {data / 'partnet_mobility_dev'} not found", file=sys.stderr)
        return 2
    args.reference_gflops = [matmul_gflops(args.threads)]
    _warm_up(data, args.device)
    rows = []
    for track, (cat, oid) in [(t, o) for t in args.tracks for o in OBJECTS[: args.objects]]:
        if oid is None:
            oid = sorted(p.stem for p in (data / "partnet_mobility_dev" / cat).glob("*.glb"))[0]
        obj, parts = load(data, "partnet", track, cat, oid)
        teacher = EmulatedMaskTeacher(parts, strength=0.5)
        for name in args.presets:
            cfg = preset(name, device=args.device)
            full_steps = cfg.train.iterations
            steps = full_steps if (name == "fast" or args.full) else args.paper_steps
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, iterations=steps))
            t0 = time.perf_counter()
            seg = segment_shape(obj.shape, cfg, mask_teacher=teacher, progress=False)
            wall = time.perf_counter() - t0
            per_step = seg.timings["train"] / steps
            est = wall - seg.timings["train"] + per_step * full_steps
            rows.append({"object": f"{cat}/{oid}", "track": track, "preset": name, "rules": seg.meta.get("rules"),
                         "steps_run": steps, "steps_full": full_steps,
                         "timings_s": {k: round(v, 2) for k, v in seg.timings.items()},
                         "seconds_per_step": round(per_step, 4), "wall_s": round(wall, 1),
                         "object_s": round(est, 1), "extrapolated": steps != full_steps})
            print(json.dumps(rows[-1]), flush=True)
    args.reference_gflops.append(matmul_gflops(args.threads))
    _report(rows, args)
    return 0


def _warm_up(data: Path, device: str) -> None:
    """One untimed two-step run, so that the process's one-time imports (torch's optimizers
    import ``torch._dynamo`` on first use) fall on no timed object."""
    import dataclasses

    from crossdistill.eval.emulators import EmulatedMaskTeacher
    from crossdistill.eval.segment_objects import load
    from crossdistill.methods.sampart3d.pipeline import preset, segment_shape

    cat, oid = OBJECTS[0]
    obj, parts = load(data, "partnet", "mesh", cat, oid)
    cfg = preset("fast", device=device)
    cfg = dataclasses.replace(cfg, n_points=2000, n_views=6, train=dataclasses.replace(cfg.train, iterations=2))
    segment_shape(obj.shape, cfg, mask_teacher=EmulatedMaskTeacher(parts, strength=0.5), progress=False)


def _report(rows: list[dict], args) -> None:
    import numpy as np

    from crossdistill.engine.machine import cpu_model
    from crossdistill.io_utils import write_json, write_text

    dev = args.device
    lines = ["# Seconds per object of the fast and paper presets", "",
             f"Command: `python bench/segment_presets_speed.py {' '.join(sys.argv[1:])}`  ",
             f"Machine: {os.cpu_count()} cores, {platform.machine()}, {cpu_model()}, device {dev}, "
             f"torch threads {args.threads}  ",
             f"Reference float32 matmul throughput ({args.threads} threads, 1024^2): {args.reference_gflops[0]:.0f} "
             f"GFLOP/s at start, {args.reference_gflops[1]:.0f} at end (the same CPU model varies between hosts "
             "and moments; a run whose reference is lower is expected to be slower)  ",
             f"Date: {_dt.date.today().isoformat()}", "",
             "Masks: the SAM-like mask emulator at medium strength (benchmarks only). `object s` is the whole "
             "segmentation of one object; where the paper preset's training was not run to the end it is "
             "**extrapolated** from the measured seconds per step (marked). An untimed two-step run comes first, so "
             "the process's one-time imports fall on no timed object.", "",
             "| object | track | preset | steps run | s / step | train s (run) | object s | |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['object']} | {r.get('track', 'mesh')} | {r['preset']} | "
                     f"{r['steps_run']} / {r['steps_full']} | "
                     f"{r['seconds_per_step']:.3f} | {r['timings_s']['train']:.1f} | {r['object_s']:.1f} | "
                     f"{'extrapolated' if r['extrapolated'] else 'measured'} |")
    for track in dict.fromkeys(r.get("track", "mesh") for r in rows):
        for name in ("fast", "paper"):
            sel = [r for r in rows if r["preset"] == name and r.get("track", "mesh") == track]
            if not sel:
                continue
            secs = [r["object_s"] for r in sel]
            lines.append(f"\n{track}, {name} (rules: {', '.join(sel[0].get('rules') or []) or 'none'}): "
                         f"median {np.median(secs):.1f} s per object"
                         + (" (extrapolated)" if any(r["extrapolated"] for r in sel) else ""))
            if name == "fast" and dev == "cpu":
                ok = float(np.median(secs)) <= 30.0
                lines.append(f"- target: fast preset median <= 30 s per object on 2 cores: **{'met' if ok else 'MISSED'}**")
    lines.append("")
    out = Path(args.out)
    write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    write_json(out.with_suffix(".json"), {"rows": rows, "reference_gflops": args.reference_gflops})


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
