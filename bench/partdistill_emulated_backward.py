"""Backward-distillation variants of PartDistill through the detector-like teacher EMULATOR, over student seeds.

Writes docs/results/partdistill_emulated_backward.md and .json. Runs are cached under
bench/_cache/partdistill_emulated_backward/ (one JSON per category, seed and variant; forward
students as state dicts), so a rerun resumes.

Setting: box output, medium strength (0.5), 128 px, min_score 0.5, backward rule
``class_relative`` (the choices of ``partdistill_emulated.md``), the bench's CPU budget (1024
points, 150 steps). The 2D knowledge is fixed (emulator seed 0, point sampling seed 0); the
student seed (weights, batches, augmentation) varies over ``--seeds``, for the forward student and
the backward one alike. Variants of the backward stage (``VARIANTS``):

* ``fresh``: the backward student starts from new weights (the earlier default);
* ``continue``: it continues from the forward student (the released code's schedule);
* ``refine``: the kept predictions are cut to the student's own relative mask of their part
  (``backward_refine`` 0.5) before a fresh student trains;
* ``continue+refine``: both;
* ``refine_0.3`` / ``refine_0.7``: ``refine`` with the ratio 0.3 / 0.7 instead of 0.5 (a prediction is
  cut less / more tightly);
* ``reweight+continue``: the released code's soft re-score (share of the box's points the student
  labels with the part) with a continued student;
* ``product``: a kept prediction's new confidence is the teacher's times the student's score
  (re-scoring only lowers weights) instead of the student's score alone; ``continue+product``;
* ``nopool``: backward distillation re-scores only the predictions forward distillation used
  (``pool_min_score`` = min_score: none below the forward threshold can enter); ``nopool+product``;
* ``control``: no re-scoring at all; the forward student continued for the same number of steps on
  the forward knowledge (what extra steps alone give a continued student).

Variants are chosen on the ``--categories`` given (default: the selection categories Bucket, Safe);
with ``--categories Box Laptop Toaster`` the same table is made for the held-out ones.

    OMP_NUM_THREADS=1 python bench/partdistill_emulated_backward.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
DATA = REPO / ".." / "shared" / "data"
OUT = REPO / "docs" / "results"
STEM = "partdistill_emulated_backward"
CACHE = REPO / "bench" / "_cache" / STEM
VARIANTS = {"fresh": {}, "continue": {"backward_init": "continue"}, "refine": {"backward_refine": 0.5},
            "refine_0.3": {"backward_refine": 0.3}, "refine_0.7": {"backward_refine": 0.7},
            "continue+refine": {"backward_init": "continue", "backward_refine": 0.5},
            "reweight+continue": {"backward_rule": "reweight", "backward_init": "continue"},
            "product": {"backward_score": "product"},
            "continue+product": {"backward_init": "continue", "backward_score": "product"},
            "nopool": {"pool_min_score": 0.5}, "nopool+product": {"pool_min_score": 0.5, "backward_score": "product"},
            "control": None}


def _scores(cat, items, students: dict, P: int) -> dict:
    from partdistill import scored_faces

    from crossdistill.eval.metrics.parts import partnete_miou
    from crossdistill.methods.partdistill.student_training import predict_probs

    out = {}
    for m, net in students.items():
        pairs = [scored_faces(predict_probs(net, items[i].points).argmax(1), items[i], cat.objs[i][2])[1]
                 for i in range(cat.n_labelled, len(cat.objs))]
        res = partnete_miou(pairs, P)
        out[m] = {"miou": 100 * res.miou,
                  "part_iou": {n: (None if np.isnan(v) else 100 * float(v)) for n, v in zip(cat.names, res.part_iou)}}
    return out


def run_seed(cat, seed: int, variants: list[str], args) -> list[dict]:
    import torch

    from crossdistill.io_utils import atomic_write, write_json
    from crossdistill.methods.partdistill.distill import DistillConfig, PartDistill
    from crossdistill.methods.partdistill.student_training import StudentConfig, train_student
    from crossdistill.students.point_student import PointStudent

    rows, todo = [], []
    for v in variants:
        path = CACHE / f"{cat.name}_seed{seed}_{v}.json"
        if path.is_file():
            rows.append(json.loads(path.read_text()))
        else:
            todo.append(v)
    if not todo:
        return rows
    scfg0 = StudentConfig(n_points=args.points, iterations=args.iterations)
    items, _ = cat.items("box", 0.5, 128, scfg0)  # knowledge and points: sampling seed 0 for every student seed
    scfg = replace(scfg0, seed=seed)
    P = len(cat.names)
    fpath = CACHE / f"{cat.name}_seed{seed}.forward.pt"
    # the earlier backward student (fresh, the student's score, no refinement); variants change it
    base = DistillConfig(min_score=0.5, backward_rule="class_relative", backward_init="fresh",
                         backward_score="student", backward_refine=0.0, student=scfg)
    forward = None
    if fpath.is_file():
        forward = PointStudent(P, scfg.width, scfg.n_blocks)
        forward.load_state_dict(torch.load(fpath, weights_only=True))
        forward.eval()
    for v in todo:
        t0 = time.perf_counter()
        if VARIANTS[v] is None:  # control: forward knowledge, forward student continued
            if forward is None:
                forward = PartDistill(None, cat.names, replace(base, backward_rounds=0), progress=False).fit(items).student
            fk = [s.knowledge.subset(s.knowledge.scores >= base.min_score) for s in items]
            final = train_student([s.points for s in items], [k.point_targets(P) for k in fk], P,
                                  replace(scfg, seed=seed + 1), progress=False, init=forward)
            rounds = []
        else:
            cfg = replace(base, **VARIANTS[v])
            use = [replace(s, knowledge=s.knowledge.subset(s.knowledge.scores >= cfg.pool_min_score)) for s in items]
            res = PartDistill(None, cat.names, cfg, progress=False).fit(use, forward=forward)
            forward, final, rounds = res.forward_student, res.student, res.rounds
        if not fpath.is_file():
            with atomic_write(fpath) as tmp:
                torch.save(forward.state_dict(), tmp)
        row = {"category": cat.name, "seed": seed, "variant": v, "scores": _scores(cat, items, {
            "forward": forward, "forward+backward": final}, P), "rounds": rounds,
            "train_s": time.perf_counter() - t0, "load_avg": os.getloadavg()[0]}
        write_json(CACHE / f"{cat.name}_seed{seed}_{v}.json", row)
        s = row["scores"]
        print(f"{cat.name} seed {seed} {v}: (b) {s['forward']['miou']:.1f} (c) {s['forward+backward']['miou']:.1f} "
              f"({row['train_s']:.0f} s)", flush=True)
        rows.append(row)
    return rows


def _lift(cat: str) -> float | None:
    """(a) lifted of the main bench at this setting (deterministic: the knowledge does not depend on the student seed)."""
    p = REPO / "bench" / "_cache" / "partdistill_emulated" / f"{cat}_box_t0.5_s128_m0.5_p1024_i150_class_relative.json"
    return json.loads(p.read_text())["scores"]["lift"]["miou"] if p.is_file() else None


def _fold(rows: list[dict], cats: list[str], v: str, seeds: list[int]) -> dict:
    """Per-seed means over ``cats`` of (b), (c) for variant ``v`` (seeds with every category run), and their mean / sd."""
    per = []
    for s in seeds:
        rs = [r for r in rows if r["seed"] == s and r["variant"] == v and r["category"] in cats]
        if cats and len(rs) == len(cats):
            per.append((np.mean([r["scores"]["forward"]["miou"] for r in rs]),
                        np.mean([r["scores"]["forward+backward"]["miou"] for r in rs])))
    if not per:
        return {}
    b, c = np.array(per).T
    lift = [_lift(x) for x in cats]
    a = float(np.mean(lift)) if all(x is not None for x in lift) else float("nan")
    return {"seeds": len(per), "a": a, "b": float(b.mean()), "c": float(c.mean()), "c_minus_b": float((c - b).mean()),
            "sd_c_minus_b": float(np.std(c - b, ddof=1)) if len(per) > 1 else float("nan")}


def write_report(rows: list[dict], args, wall: float) -> None:
    import torch

    from crossdistill.engine.machine import cpu_model
    from crossdistill.io_utils import write_json, write_text

    cats = [c for c in args.categories if any(r["category"] == c for r in rows)]
    fold_a = [c for c in cats if c in args.select]
    fold_b = [c for c in cats if c not in args.select]
    variants = [v for v in VARIANTS if any(r["variant"] == v for r in rows)]
    seeds = sorted({r["seed"] for r in rows})
    load = os.getloadavg()
    lines = [
        "# PartDistill backward-distillation variants through the detector-like teacher EMULATOR (benchmarks only)", "",
        "**The teacher is not a real detector** (`EmulatedDetectorTeacher`, see `partdistill_emulated.md`).", "",
        f"Command: `OMP_NUM_THREADS=1 python bench/partdistill_emulated_backward.py {' '.join(sys.argv[1:])}` "
        "(the runs were made by earlier invocations on subsets of categories, seeds and variants; the cache keeps them)  ",
        f"Date: {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}  ",
        f"Machine: {cpu_model()}, {platform.platform()}, nproc {os.cpu_count()}, torch {torch.__version__}, "
        f"1 torch thread; shared with other engineers' jobs (load average at the end {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f}; per-run loads and seconds in the json)  ",
        f"Wall time of this invocation: {wall / 60:.1f} min (cached runs cost nothing)", "",
        "Box output, medium strength, 128 px, min_score 0.5, backward rule `class_relative` unless the variant "
        f"says otherwise; {args.points} points, {args.iterations} steps per student; knowledge fixed (emulator seed 0, "
        f"point sampling seed 0), student seeds {', '.join(map(str, seeds))} (forward and backward students alike). "
        "Variants: see the bench's docstring (`refine` cuts each kept prediction to the points where the student's "
        "probability of its part is at least 0.5 x its maximum inside it; `refine_0.3` / `refine_0.7`: 0.3 / 0.7 x). "
        "(b) forward, (c) forward + backward (for `control`: the forward student continued on its own knowledge); "
        "(a) lifted comes from `partdistill_emulated.md`'s runs (it does not depend on the student seed).", "",
        f"**Variants are chosen on {', '.join(fold_a)} (fold A: the selection categories of "
        f"`partdistill_emulated.md`) and reported on {', '.join(fold_b) or '-'} (fold B, held out).** Rule (as the "
        "main bench's choices): the variant with the best fold-A mean; variants were added to the screen as the "
        "earlier ones were read, and fold B was run only for the earlier backward student (`fresh`), the runner-up "
        "`product` and the chosen one.", "",
        "| variant | " + " | ".join(f"{c} (b) / (c)" for c in cats)
        + " | fold A (c) - (b) (sd, seeds) | fold B (c) - (b) (sd, seeds) |", "|---|" + "---:|" * (len(cats) + 2)]
    summary = {}
    for v in variants:
        cells = []
        for c in cats:
            rs = [r for r in rows if r["category"] == c and r["variant"] == v]
            b = [r["scores"]["forward"]["miou"] for r in rs]
            cc = [r["scores"]["forward+backward"]["miou"] for r in rs]
            cells.append(f"{np.mean(b):.1f} / {np.mean(cc):.1f} (n={len(rs)})" if rs else "-")
        summary[v] = {"fold_a": _fold(rows, fold_a, v, seeds), "fold_b": _fold(rows, fold_b, v, seeds),
                      "fold_a_seeds_0_1": _fold(rows, fold_a, v, [0, 1])}
        fa, fb = summary[v]["fold_a"], summary[v]["fold_b"]
        fmt = lambda f: f"{f['c_minus_b']:+.1f} ({f['sd_c_minus_b']:.1f}, {f['seeds']})" if f else "-"  # noqa: E731
        lines.append(f"| `{v}` | " + " | ".join(cells) + f" | {fmt(fa)} | {fmt(fb)} |")
    lines += ["", "Fold means: over the categories of the fold, per seed with every category run, then over those "
              "seeds; sd: of the per-seed values. On the seeds 0 and 1, which every variant has on fold A, the fold-A "
              "mean (c) - (b) is: " + ", ".join(f"`{v}` {summary[v]['fold_a_seeds_0_1']['c_minus_b']:+.1f}"
                                               for v in variants if summary[v]["fold_a_seeds_0_1"]) + ".", ""]
    lines += ["## Target on fold B (box, medium): (c) >= (b) + 3 and (b) >= (a) + 3", ""]
    for v in variants:
        fb = summary[v]["fold_b"]
        if fb:
            ok = fb["c"] >= fb["b"] + 3 and fb["b"] >= fb["a"] + 3
            lines.append(f"- `{v}` ({fb['seeds']} seeds): (a) {fb['a']:.1f}, (b) {fb['b']:.1f}, (c) {fb['c']:.1f}: "
                         f"(c) - (b) = {fb['c'] - fb['b']:+.1f}, (b) - (a) = {fb['b'] - fb['a']:+.1f} -> "
                         f"**{'met' if ok else 'MISSED'}**")
    lines += ["", "## Per part IoU, mean over seeds, (b) -> (c)", "",
              "| variant | category | part | (b) | (c) |", "|---|---|---|---:|---:|"]
    for v in variants:
        for c in cats:
            rs = [r for r in rows if r["category"] == c and r["variant"] == v]
            if not rs:
                continue
            for part in rs[0]["scores"]["forward"]["part_iou"]:
                b = [r["scores"]["forward"]["part_iou"][part] for r in rs]
                cc = [r["scores"]["forward+backward"]["part_iou"][part] for r in rs]
                if b[0] is None:
                    continue
                lines.append(f"| `{v}` | {c} | {part} | {np.mean(b):.1f} | {np.mean(cc):.1f} |")
    write_text(OUT / f"{STEM}.md", "\n".join(lines) + "\n")
    write_json(OUT / f"{STEM}.json", {"rows": rows, "summary": summary, "fold_a": fold_a, "fold_b": fold_b})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--categories", nargs="*", default=["Bucket", "Safe"], help="categories to run / report")
    ap.add_argument("--select", nargs="*", default=["Bucket", "Safe"], help="fold A (choice); the others: fold B")
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--labelled", type=int, default=8)
    ap.add_argument("--points", type=int, default=1024)
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    import torch

    from crossdistill.eval.benchmarks import get_benchmark
    from partdistill_emulated import Category

    torch.set_num_threads(1)
    CACHE.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = []
    if args.report_only:
        rows = [json.loads(p.read_text()) for p in sorted(CACHE.glob("*.json"))]
        rows = [r for r in rows if r["category"] in args.categories and r["seed"] in args.seeds
                and r["variant"] in args.variants]
    else:
        bench = get_benchmark("partnet_mobility_dev", DATA)
        for c in args.categories:
            cat = Category(bench, c, args.labelled)
            for s in args.seeds:
                rows += run_seed(cat, s, args.variants, args)
    write_report(rows, args, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
