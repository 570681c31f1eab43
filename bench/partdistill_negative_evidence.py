"""Diagnostic, chooses nothing: do box predictions carry *negative* evidence, through the detector-like teacher EMULATOR?

Writes docs/results/partdistill_negative_evidence.md and .json. PartDistill's loss uses only the points a 2D
prediction covers; a point no prediction covers is unknown. But a point that is *visible* in a view where part c was
detected, and lies outside every box of c in that view, is evidence that the point is not c. For every (point, part)
that some forward-distillation prediction covers (score >= ``DistillConfig.min_score``), this bench counts the
views that cover it (positive) and the views where it is visible, c was detected, and it is not covered (negative),
and reports the negative share neg / (pos + neg) separately for points whose ground truth is c (right coverage) and
points whose ground truth is another part (wrong coverage: loose or shifted boxes, swapped labels).

Setting: box output, medium strength (0.5), 128 px, 10 views, 2048 points per shape (point sampling seed 0),
emulator seed 0 -- the knowledge of ``partdistill_emulated_budget.md``. Every object of each category is used.
**The teacher is not a real detector** (``EmulatedDetectorTeacher``; benchmarks only).

    OMP_NUM_THREADS=1 python bench/partdistill_negative_evidence.py --categories Box Laptop
    OMP_NUM_THREADS=1 python bench/partdistill_negative_evidence.py --report-only
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
DATA = REPO / ".." / "shared" / "data"
OUT = REPO / "docs" / "results"
STEM = "partdistill_negative_evidence"
CACHE = REPO / "bench" / "_cache" / STEM
ALL = ("Box", "Bucket", "Laptop", "Safe", "Toaster")


def evidence(knowledge, point_to_pix: np.ndarray, n_parts: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, P) positive and negative view counts of one shape.

    Args:
        knowledge: the shape's forward :class:`~crossdistill.methods.partdistill.knowledge.Knowledge`.
        point_to_pix: (V, N) pixel of each point per view, -1 where hidden.
        n_parts: P.
    """
    V, N = point_to_pix.shape
    pos, neg = np.zeros((N, n_parts)), np.zeros((N, n_parts))
    for v in range(V):
        visible = point_to_pix[v] >= 0
        for c in range(n_parts):
            sel = np.flatnonzero((knowledge.views == v) & (knowledge.labels == c))
            if not len(sel):
                continue
            covered = np.zeros(N, bool)
            for j in sel:
                covered[knowledge.members(j)] = True
            pos[covered, c] += 1
            neg[visible & ~covered, c] += 1
    return pos, neg


def measure(cat_name: str) -> dict:
    from crossdistill.eval.benchmarks import get_benchmark
    from crossdistill.eval.emulators import EmulatedDetectorTeacher
    from crossdistill.methods.partdistill.distill import DistillConfig, PartDistill, shape_points
    from crossdistill.methods.partdistill.knowledge import backproject
    from crossdistill.render.renderer import render_shape
    from partdistill_emulated import Category

    cat = Category(get_benchmark("partnet_mobility_dev", DATA), cat_name, 8)
    teacher = EmulatedDetectorTeacher(cat.gts, output="box", strength=0.5, seed=0)
    cfg = DistillConfig()
    pd = PartDistill(teacher, cat.names, cfg, progress=False)
    P = len(cat.names)
    right = {n: [] for n in cat.names}
    wrong = {n: [] for n in cat.names}
    for oid, shape, face_lab in cat.objs:
        unit, samples, _ = shape_points(shape, cfg.student.n_points, cfg.student.k, 0, oid)
        res = render_shape(unit, pd.rig, samples=samples, progress=False)
        k = backproject(teacher.predict(res.views, cat.names), res.correspondence)
        k = k.subset(k.scores >= cfg.min_score)
        pos, neg = evidence(k, res.correspondence.point_to_pix, P)
        gt = face_lab[samples.face_id]
        for c, name in enumerate(cat.names):
            m = pos[:, c] > 0
            share = neg[m, c] / (pos[m, c] + neg[m, c])
            right[name] += share[gt[m] == c].tolist()
            wrong[name] += share[gt[m] != c].tolist()
    rows = []
    for name in cat.names:
        r, w = np.asarray(right[name]), np.asarray(wrong[name])
        if len(r) + len(w) == 0:
            continue
        stat = lambda a, f: float(f(a)) if len(a) else None  # noqa: E731
        rows.append({"part": name, "right": len(r), "wrong": len(w),
                     "mean_right": stat(r, np.mean), "mean_wrong": stat(w, np.mean),
                     "over_half_right": stat(r, lambda a: np.mean(a > 0.5)),
                     "over_half_wrong": stat(w, lambda a: np.mean(a > 0.5))})
    return {"category": cat_name, "objects": len(cat.objs), "rows": rows}


def report(wall: float) -> None:
    import torch

    from crossdistill.engine.machine import cpu_model
    from crossdistill.io_utils import write_json, write_text

    found = {c: json.loads((CACHE / f"{c}.json").read_text()) for c in ALL if (CACHE / f"{c}.json").is_file()}
    if not found:
        print("error: nothing measured yet (run without --report-only first)", file=sys.stderr)
        sys.exit(2)
    fmt = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    lines = ["# Negative evidence in box predictions, through the detector-like teacher EMULATOR (diagnostic)", "",
             "**The teacher is not a real detector** (`EmulatedDetectorTeacher`, noise model in "
             "`partdistill_emulated.md`). This diagnostic chooses nothing.", "",
             f"Command: `OMP_NUM_THREADS=1 python bench/{STEM}.py {' '.join(sys.argv[1:])}` (runs cached per category)  ",
             f"Date: {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}  ",
             f"Machine: {cpu_model()}, {platform.platform()}, nproc {os.cpu_count()}, torch {torch.__version__}  ",
             f"Wall time of this invocation: {wall / 60:.1f} min", "",
             "Knowledge of `partdistill_emulated_budget.md`: box output, medium strength, 128 px, 10 views, 2048 "
             "points per shape, the predictions forward distillation uses (score >= 0.5). For each (point, part) some "
             "prediction covers: pos = views whose boxes of the part cover the point, neg = views where the point is "
             "visible, the part was detected, and no box of the part covers it. Negative share = neg / (pos + neg), "
             "over covered points whose ground truth is the part (right) and those whose ground truth is another part "
             "(wrong). PartDistill's loss (and ours) ignores neg.", "",
             "| category | part | covered right | covered wrong | mean neg. share, right | mean neg. share, wrong "
             "| share > 0.5, right | share > 0.5, wrong |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for c, d in found.items():
        for r in d["rows"]:
            lines.append(f"| {c} | {r['part']} | {r['right']} | {r['wrong']} | {fmt(r['mean_right'])} | "
                         f"{fmt(r['mean_wrong'])} | {fmt(r['over_half_right'])} | {fmt(r['over_half_wrong'])} |")
    write_text(OUT / f"{STEM}.md", "\n".join(lines) + "\n")
    write_json(OUT / f"{STEM}.json", found)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--categories", nargs="*", default=list(ALL), choices=list(ALL), help="categories to measure")
    ap.add_argument("--report-only", action="store_true", help="write the report from the cache, run nothing")
    args = ap.parse_args()
    if not (DATA / "partnet_mobility_dev").is_dir():
        sys.exit(f"skipped: {DATA / 'partnet_mobility_dev'} not found (the shared data is needed)")
    import torch

    from crossdistill.io_utils import write_json

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    if not args.report_only:
        CACHE.mkdir(parents=True, exist_ok=True)
        for c in args.categories:
            if not (CACHE / f"{c}.json").is_file():
                write_json(CACHE / f"{c}.json", measure(c))
                print(f"{c}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    report(time.perf_counter() - t0)


if __name__ == "__main__":
    main()
