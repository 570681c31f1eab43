"""Specificity-weighted box knowledge for PartDistill's students and its lifting baseline (detector EMULATOR).

Writes docs/results/partdistill_specificity.md and .json. A small part's box lies inside the body's box in every
view, so an unweighted vote (the students' targets, the lifting baseline) gives its points to the body. Weighting
each prediction by its specificity, ``min(share^-gamma, 10)`` with share the part of its view's visible points it
covers (``Knowledge.specificity``), lets the most specific prediction covering a point count for more. Thirteenth
protocol (``partdistill_notes.md`` item 22), declared before any student trained with it:

1. the lifting of record a** is the best fold-A mean among the votes ``sum``, ``penalised`` (lambda 1), ``share``,
   each without and with the weighting (gamma 0.5);
2. the student candidate ``spec`` (lambda 2 and gamma 0.5 in every student) against ``reference`` (the defaults,
   lambda 2), fold A, student seeds 0 and 1: it wins if its mean (c) is at least the reference's + 0.5 and its mean
   (b) is not lower;
3. if it wins, fold B (seeds 0, 1, 2) decides adoption: its (c) above the reference's.

Fourteenth protocol (item 22, declared before its runs): ``kept``, the adopted default whose backward students learn
the evidence against parts of the predictions re-scoring kept (``DistillConfig.backward_evidence``), against
``spec``, forward students shared; same rules.

Setting: the target's (box output, medium strength, 128 px, 10 views, 2048 points, 400 steps, the shipped backward
stage), knowledge fixed (emulator seed 0, point sampling seed 0), scored on the objects after the first 8.
**The teacher is not a real detector** (``EmulatedDetectorTeacher``; benchmarks only). Runs are cached in the main
emulator bench's cache, so a rerun resumes; two processes given different ``--categories`` share a 2-core machine.

    OMP_NUM_THREADS=1 python bench/partdistill_specificity.py --categories Bucket --seeds 0 1
    OMP_NUM_THREADS=1 python bench/partdistill_specificity.py --report-only
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
STEM = "partdistill_specificity"
CACHE = REPO / "bench" / "_cache" / STEM
FOLD_A = ("Bucket", "Safe")
FOLD_B = ("Box", "Laptop", "Toaster")
GAMMA = 0.5
#: student variants: the main emulator bench's grid variant each runs under
#: the mask-output check: lambda 1 (the mask teachers' default) without and with the weighting
MASK_STUDENTS = {"reference": "class_relative_negative", "spec": f"class_relative_negative_spec{GAMMA:g}"}
STUDENTS = {"reference": "class_relative_negative2", "spec": f"class_relative_negative2_spec{GAMMA:g}",
            "kept": f"class_relative_negative2_spec{GAMMA:g}_kept"}
VOTES = [(v, g) for g in (0.0, GAMMA) for v in ("sum", "penalised", "share")]
LABELLED = 8


def _vote_name(vote: str, gamma: float) -> str:
    return vote if gamma == 0 else f"{vote}, gamma {gamma:g}"


def _ns(seed: int, output: str = "box") -> argparse.Namespace:
    from partdistill_emulated_budget import _ns as budget_ns

    return budget_ns(argparse.Namespace(labelled=LABELLED, output=output), seed, 2048, 400, "continue")


def lifting(cat) -> dict:
    """mIoU of every lifting vote on one category's scored objects (trains nothing)."""
    from partdistill import scored_faces

    from crossdistill.eval.metrics.parts import partnete_miou
    from crossdistill.methods.partdistill.distill import DistillConfig, lift_knowledge
    from crossdistill.methods.partdistill.student_training import StudentConfig

    items, _ = cat.items("box", 0.5, 128, StudentConfig(n_points=2048, iterations=400))
    P, d = len(cat.names), DistillConfig()
    out = {}
    for vote, gamma in VOTES:
        pairs = []
        for i in range(LABELLED, len(cat.objs)):
            k = items[i].knowledge.subset(items[i].knowledge.scores >= d.min_score)
            labels = lift_knowledge(k, items[i].samples.points, P, vote=vote, specificity=gamma)
            pairs.append(scored_faces(labels, items[i], cat.objs[i][2])[1])
        res = partnete_miou(pairs, P)
        out[_vote_name(vote, gamma)] = {"miou": 100 * res.miou, "part_iou": {
            n: (None if np.isnan(v) else 100 * float(v)) for n, v in zip(cat.names, res.part_iou)}}
    return out


def measure(args) -> None:
    import torch

    from crossdistill.eval.benchmarks import get_benchmark
    from crossdistill.io_utils import write_json
    from crossdistill.methods.partdistill.distill import DistillConfig
    from partdistill_emulated import CACHE as RUNS
    from partdistill_emulated import Category, do_run

    torch.set_num_threads(1)
    CACHE.mkdir(parents=True, exist_ok=True)
    RUNS.mkdir(parents=True, exist_ok=True)
    bench = get_benchmark("partnet_mobility_dev", DATA)
    for c in args.categories:
        cat = Category(bench, c, LABELLED)
        lift_path = CACHE / f"{c}_lifting.json"
        if args.output == "box" and not lift_path.is_file():
            write_json(lift_path, {"category": c, "votes": lifting(cat)})
        for seed in args.seeds:
            for name in args.students:
                t0 = time.perf_counter()
                rule = (MASK_STUDENTS if args.output == "mask" else STUDENTS)[name]
                run = do_run(cat, args.output, 0.5, 128, DistillConfig().min_score, rule, _ns(seed, args.output))
                s = run["scores"]
                print(f"{c} seed {seed} {args.output} {name}: (b) {s['forward']['miou']:.1f} (c) {s['forward+backward']['miou']:.1f}"
                      f" ({time.perf_counter() - t0:.0f} s)", flush=True)


def _mask_section(out: dict) -> list[str]:
    """The declared check of specificity with mask-level knowledge (seed 0, all five categories)."""
    runs = {(c, name): v for (c, seed, name), v in _runs(output="mask").items() if seed == 0}
    cats = FOLD_A + FOLD_B
    if not all((c, n) in runs for c in cats for n in MASK_STUDENTS):
        return []
    mean = {n: [float(np.mean([runs[(c, n)][i] for c in cats])) for i in (0, 1)] for n in MASK_STUDENTS}
    kept = mean["spec"][1] >= mean["reference"][1]
    out["mask_check"] = {"mean": mean, "kept": kept}
    lines = ["", "## Specificity with mask-level knowledge (a check)", "",
             "Declared 2026-12-08 03:08 UTC before its runs: the emulator's masks (medium, 128 px), seed 0, all five "
             "categories, lambda 1 (the mask teachers' default), gamma 0.5 against 0. Specificity is turned on for "
             "mask teachers only if its 5-category mean (c) is not lower (the rule of the earlier mask checks).", "",
             "| category | gamma 0: (b) / (c) | gamma 0.5: (b) / (c) |", "|---|---|---|"]
    for c in cats:
        lines.append(f"| {c} | " + " | ".join(f"{runs[(c, n)][0]:.1f} / {runs[(c, n)][1]:.1f}" for n in MASK_STUDENTS)
                     + " |")
    lines += ["", f"Mean: gamma 0 (b) {mean['reference'][0]:.1f} (c) {mean['reference'][1]:.1f}; gamma 0.5 (b) "
              f"{mean['spec'][0]:.1f} (c) {mean['spec'][1]:.1f}: **{'on' if kept else 'stays off'} for masks**."]
    return lines


def _runs(parts: bool = False, output: str = "box") -> dict:
    """Every cached student run of this protocol at ``output`` (box: STUDENTS; mask: MASK_STUDENTS):
    {(category, seed, student): (b, c)} (``parts``: the two stages' part IoUs instead)."""
    from crossdistill.methods.partdistill.distill import DistillConfig
    from partdistill_emulated import CACHE as RUNS
    from partdistill_emulated import run_key

    out = {}
    for c in FOLD_A + FOLD_B:
        for seed in (0, 1, 2):
            for name, rule in (MASK_STUDENTS if output == "mask" else STUDENTS).items():
                key = run_key(c, output, 0.5, 128, DistillConfig().min_score, rule, _ns(seed, output))
                p = RUNS / f"{key}.json"
                if p.is_file():
                    s = json.loads(p.read_text())["scores"]
                    key = "part_iou" if parts else "miou"
                    out[(c, seed, name)] = (s["forward"][key], s["forward+backward"][key])
    return out


def _fold(runs: dict, cats: tuple[str, ...], seeds: list[int], name: str) -> dict | None:
    vals = [runs.get((c, s, name)) for c in cats for s in seeds]
    if any(v is None for v in vals):
        return None
    return {"b": float(np.mean([v[0] for v in vals])), "c": float(np.mean([v[1] for v in vals]))}


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _part_rows(lifts: dict, chosen: str) -> list[str]:
    """Per part: a** and each student's (b) / (c), means over the seeds run."""
    runs = _runs(parts=True)
    rows = ["", "## Part IoU (mean over the seeds run)", "",
            "| category | part | a** | " + " | ".join(f"{n} (b) / (c)" for n in STUDENTS) + " |",
            "|---|---|---:|" + "---|" * len(STUDENTS)]
    for c in FOLD_A + FOLD_B:
        if c not in lifts:
            continue
        for part, a2 in lifts[c][chosen]["part_iou"].items():
            cells = []
            for name in STUDENTS:
                got = [runs[k] for k in runs if k[0] == c and k[2] == name]
                vals = [[g[i][part] for g in got if g[i][part] is not None] for i in (0, 1)]
                cells.append(" / ".join(_num(float(np.mean(v)) if v else None) for v in vals))
            rows.append(f"| {c} | {part} | {_num(a2)} | " + " | ".join(cells) + " |")
    return rows


def _margins(f: dict, a2: float) -> str:
    return (f"(b) {f['b']:.1f}, (c) {f['c']:.1f}; (c) - (b) {f['c'] - f['b']:+.2f}, (b) - a** {f['b'] - a2:+.2f}, "
            f"m** {min(f['c'] - f['b'], f['b'] - a2):+.2f}")


def _kept_section(runs: dict, out: dict) -> list[str]:
    """Fourteenth protocol: the backward students learn the evidence of the kept predictions (``kept``) against
    the adopted default (``spec``), forward students shared."""
    spec_a, kept_a = _fold(runs, FOLD_A, [0, 1], "spec"), _fold(runs, FOLD_A, [0, 1], "kept")
    if not (spec_a and kept_a):
        return []
    won = kept_a["c"] >= spec_a["c"] + 0.5
    out["kept"] = {"fold_a": {"spec": spec_a, "kept": kept_a, "won": won}}
    lines = ["", "## The backward students' evidence (fourteenth protocol)", "",
             "Declared 2026-12-08 02:50 UTC, before any run: `kept` = the adopted default (`spec`) whose backward "
             "students learn the evidence against parts of the predictions re-scoring kept (teacher's confidences "
             "and boxes; `DistillConfig.backward_evidence = \"kept\"`) instead of all forward predictions'. Forward "
             "students shared. Wins fold A (seeds 0, 1) if its (c) is at least `spec`'s + 0.5; adopted if fold B "
             "(seeds 0-2) then gives a higher (c).", "",
             f"Fold A: spec (c) {spec_a['c']:.1f}, kept (c) {kept_a['c']:.1f}: **{'wins' if won else 'does not win'}**."]
    spec_b, kept_b = _fold(runs, FOLD_B, [0, 1, 2], "spec"), _fold(runs, FOLD_B, [0, 1, 2], "kept")
    if won and spec_b and kept_b:
        adopted = kept_b["c"] > spec_b["c"]
        out["kept"]["fold_b"] = {"spec": spec_b, "kept": kept_b, "adopted": adopted}
        lines.append(f"Fold B: spec (c) {spec_b['c']:.1f}, kept (c) {kept_b['c']:.1f}: "
                     f"**{'adopted' if adopted else 'not adopted'}**.")
    return lines


def report(wall: float) -> None:
    from crossdistill.engine.machine import cpu_model
    from crossdistill.io_utils import write_json, write_text

    lifts = {p.stem.removesuffix("_lifting"): json.loads(p.read_text())["votes"] for p in sorted(CACHE.glob("*_lifting.json"))}
    runs = _runs()
    names = [_vote_name(v, g) for v, g in VOTES]
    fold_lift = {n: {f: (float(np.mean([lifts[c][n]["miou"] for c in cats])) if all(c in lifts for c in cats) else None)
                     for f, cats in (("A", FOLD_A), ("B", FOLD_B))} for n in names}
    chosen = max(names, key=lambda n: (fold_lift[n]["A"] or -1, n == "share")) if all(
        fold_lift[n]["A"] is not None for n in names) else None
    lines = ["# Specificity-weighted box knowledge, through the detector-like teacher EMULATOR", "",
             "**The teacher is not a real detector** (`EmulatedDetectorTeacher`, noise model in "
             "`partdistill_emulated.md`). Benchmarks only.", "",
             f"Command: `OMP_NUM_THREADS=1 python bench/partdistill_specificity.py {' '.join(sys.argv[1:])}` "
             "(runs cached; made by invocations on subsets of the categories)  ",
             f"Date: {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC  ",
             f"Machine: {cpu_model()}, {platform.platform()}, nproc {os.cpu_count()}, "
             "1 torch thread per process  ",
             f"Wall time of this invocation: {wall / 60:.1f} min", "",
             "Setting: box output, medium strength, 128 px, 10 views, 2048 points, 400 steps, the shipped backward "
             "stage; knowledge fixed (emulator seed 0). Specificity weight of a prediction: min(share^-gamma, 10), "
             "share = the part of its view's visible points it covers. Thirteenth protocol (declared 2026-12-08 "
             "01:25 UTC, `partdistill_notes.md` item 22). Fold A (choice): Bucket, Safe; fold B (report): Box, "
             "Laptop, Toaster.", "", "## Lifting votes", "",
             "| vote | " + " | ".join(FOLD_A + FOLD_B) + " | fold A | fold B |", "|---|" + "---:|" * 7]
    for n in names:
        cells = [f"{lifts[c][n]['miou']:.1f}" if c in lifts else "-" for c in FOLD_A + FOLD_B]
        fa, fb = fold_lift[n]["A"], fold_lift[n]["B"]
        lines.append(f"| {n} | " + " | ".join(cells) + f" | {_num(fa)} | {_num(fb)} |")
    if chosen:
        lines += ["", f"Lifting of record a** (best fold-A mean): **{chosen}**."]
    lines += ["", "## Students, (b) / (c)", "", "| category | seed | " + " | ".join(STUDENTS) + " |",
              "|---|---:|" + "---|" * len(STUDENTS)]
    for c in FOLD_A + FOLD_B:
        for s in (0, 1, 2):
            cells = [runs.get((c, s, n)) for n in STUDENTS]
            if any(cells):
                lines.append(f"| {c} | {s} | " + " | ".join("-" if v is None else f"{v[0]:.1f} / {v[1]:.1f}"
                                                           for v in cells) + " |")
    out = {"lifting": lifts, "fold_lifting": fold_lift, "chosen": chosen,
           "runs": {f"{c}|{s}|{n}": v for (c, s, n), v in runs.items()}}
    ref_a, spec_a = _fold(runs, FOLD_A, [0, 1], "reference"), _fold(runs, FOLD_A, [0, 1], "spec")
    if ref_a and spec_a:
        won = spec_a["c"] >= ref_a["c"] + 0.5 and spec_a["b"] >= ref_a["b"]
        out["fold_a"] = {"reference": ref_a, "spec": spec_a, "won": won}
        lines += ["", f"Fold A, seeds 0, 1: reference (b) {ref_a['b']:.1f} (c) {ref_a['c']:.1f}; spec (b) "
                  f"{spec_a['b']:.1f} (c) {spec_a['c']:.1f}: **{'wins' if won else 'does not win'}** (rule: (c) at "
                  "least +0.5, (b) not lower)."]
    if chosen and ref_a and spec_a:
        a2 = fold_lift[chosen]["A"]
        lines += ["", f"Against a** on fold A ({a2:.1f}): reference {_margins(ref_a, a2)}; spec {_margins(spec_a, a2)}."]
    ref_b, spec_b = _fold(runs, FOLD_B, [0, 1, 2], "reference"), _fold(runs, FOLD_B, [0, 1, 2], "spec")
    if ref_b and spec_b:
        adopted = spec_b["c"] > ref_b["c"]
        out["fold_b"] = {"reference": ref_b, "spec": spec_b, "adopted": adopted}
        lines += ["", f"Fold B, seeds 0, 1, 2: reference (b) {ref_b['b']:.1f} (c) {ref_b['c']:.1f}; spec (b) "
                  f"{spec_b['b']:.1f} (c) {spec_b['c']:.1f}: **{'adopted' if adopted else 'not adopted'}** (rule: "
                  "(c) higher than the reference's)."]
        if chosen and fold_lift[chosen]["B"] is not None:
            a2, a1 = fold_lift[chosen]["B"], fold_lift["share"]["B"]
            best = spec_b if adopted else ref_b
            met = min(best["c"] - best["b"], best["b"] - a2) >= 3
            out["target"] = {"a2": a2, "a_star": a1, "ships": "spec" if adopted else "reference", "met": met}
            lines += ["", f"**Target (fold B, box, medium, seeds 0-2), with what ships: (c) >= (b) + 3 >= a** + 3: "
                      f"{'met' if met else 'MISSED'}** ({_margins(best, a2)}; a** = {chosen}, {a2:.1f}). Against "
                      f"the earlier baseline a* (share, {a1:.1f}): (b) - a* {best['b'] - a1:+.2f}.",
                      f"Reference, for comparison: {_margins(ref_b, a2)}."]
    lines += _kept_section(runs, out)
    lines += _mask_section(out)
    if chosen:
        lines += _part_rows(lifts, chosen)
    write_json(OUT / f"{STEM}.json", out)
    write_text(OUT / f"{STEM}.md", "\n".join(lines) + "\n")
    print(f"wrote {OUT / STEM}.md")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--categories", nargs="*", default=list(FOLD_A), choices=list(FOLD_A + FOLD_B))
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1])
    ap.add_argument("--students", nargs="*", default=["reference", "spec"], choices=list(STUDENTS))
    ap.add_argument("--output", choices=["box", "mask"], default="box",
                    help="the emulator's output (mask: the check of item 22, students of MASK_STUDENTS)")
    ap.add_argument("--report-only", action="store_true", help="write the report from the cache, run nothing")
    args = ap.parse_args()
    if not (DATA / "partnet_mobility_dev").is_dir():
        print(f"error: {DATA / 'partnet_mobility_dev'} not found", file=sys.stderr)
        sys.exit(2)
    t0 = time.perf_counter()
    if not args.report_only:
        measure(args)
    report(time.perf_counter() - t0)


if __name__ == "__main__":
    main()
