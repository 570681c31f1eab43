"""Small parts on meshes of pieces with SAM-like masks (mask EMULATOR, benchmarks only).

With uniform pixel draws the grouping field of a mesh of pieces puts small parts (a laptop's
touchpad, a toaster's knobs) on the point of the part around them; with group-balanced draws it
separates them, but the piece rule folds them into their piece's main part unless the piece is
dominant (``PartRules.support_everywhere`` lets the masks protect them in every piece). Each run
segments one PartNet-Mobility mesh of the mask-emulator grid twice (uniform and group-balanced
pixels, a = 0.5) and scores, per field, the shipped rules and the rules with
``support_everywhere``; candidates against what ships:

* ``S``: shipped field, rules + support_everywhere;
* ``B``: balanced field, shipped rules;
* ``BS``: balanced field, rules + support_everywhere (adopted: segment_notes.md item 32);
* ``BSG``: BS, and silhouette masks confirm nothing (``silhouette_support`` off), judged against BS
  (``--reference BS --candidates BSG``).

Runs are cached one JSON per (object, strength, seed) and resume; one torch thread per run.

    python bench/segment_small_parts.py --seeds 1 2 --workers 2      # the screen
    python bench/segment_small_parts.py --seeds 0 --workers 2        # seed 0, for the target
    python bench/segment_small_parts.py --report-only
    python bench/segment_small_parts.py --seeds 1 2 --reference BS --candidates BSG --cache ... --out ...
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from segment_emulated import STRENGTHS  # noqa: E402
from segment_part_vote import _best, _cache_file, cached_runs, run_cached, write_outputs  # noqa: E402

CANDIDATES = {"S": "shipped field, rules + support_everywhere",
              "B": "group-balanced pixels (a = 0.5), shipped rules",
              "BS": "group-balanced pixels (a = 0.5), rules + support_everywhere",
              "BSG": "BS, and masks holding nearly all their view sees (silhouettes) confirm nothing"}
METRICS = ("link", "leaf")
SCREEN_SEEDS = (1, 2)
TARGET_SEEDS = (0, 1, 2)
BALANCE = 0.5


def run_one(data: str, obj: str, strength: str, seed: int) -> dict:
    """One grid mesh at one strength and seed: both fields, each under both rule sets, and the baselines."""
    import dataclasses

    import torch

    torch.set_num_threads(1)
    from crossdistill.eval.baselines import connected_component_labels
    from crossdistill.eval.emulators import EmulatedMaskTeacher
    from crossdistill.eval.segment_objects import load
    from crossdistill.eval.segment_protocol import lifted_labels, score_levels
    from crossdistill.methods.sampart3d.pipeline import preset, segment_shape, with_rules
    from crossdistill.methods.sampart3d.rules import RENDER_CUE_RULES

    cat, oid = obj.split("/")
    t0 = time.perf_counter()
    item, parts = load(Path(data), "partnet", "mesh", cat, oid)
    # the rules shipped for SAM-like masks on meshes of pieces before this screen, spelled out so
    # that the runs do not move with what ships
    shipped = dataclasses.replace(RENDER_CUE_RULES, piece_codes=False, part_vote=0.5)
    everywhere = dataclasses.replace(shipped, support_everywhere=True)
    guarded = dataclasses.replace(everywhere, silhouette_support=False)
    res = {"name": obj, "category": cat, "strength": strength, "seed": seed}
    w = item.shape.face_areas

    def scores(s) -> list[dict]:
        return [score_levels(s.labels(i), item.labels, w, item.scoring) for i in range(len(s.scales))]

    for field_name, balance in (("uniform", 0.0), ("balanced", BALANCE)):
        teacher = EmulatedMaskTeacher(parts, strength=STRENGTHS[strength], seed=seed)
        cfg = dataclasses.replace(preset("fast"), seed=seed, rules=dataclasses.replace(shipped, group_balance=balance))
        seg = segment_shape(item.shape, cfg, mask_teacher=teacher, progress=False)
        if seg.meta["shape_kind"] != "pieces":
            raise ValueError(f"{obj} is a {seg.meta['shape_kind']}, not a mesh of pieces")
        cfg = dataclasses.replace(cfg, rules=None)
        res[field_name] = {"shipped": scores(with_rules(seg, item.shape, cfg, shipped)),
                           "support_everywhere": scores(with_rules(seg, item.shape, cfg, everywhere)),
                           "rules": seg.meta["rules"], "group_balance": seg.meta["group_balance"]}
        if balance > 0:
            res[field_name]["support_everywhere_no_silhouette"] = scores(with_rules(seg, item.shape, cfg, guarded))
        if field_name == "uniform":
            res["lift"] = [score_levels(p, item.labels, w, item.scoring) for p in lifted_labels(seg, item.shape, cfg)]
    res["cc"] = score_levels(connected_component_labels(item.shape), item.labels, w, item.scoring)
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


def best_of(run: dict, key: str | None) -> dict:
    """Best-of-scales scores of what ships (``key`` None) or of a candidate of :data:`CANDIDATES`."""
    field, rules = {None: ("uniform", "shipped"), "S": ("uniform", "support_everywhere"),
                    "B": ("balanced", "shipped"), "BS": ("balanced", "support_everywhere"),
                    "BSG": ("balanced", "support_everywhere_no_silhouette")}[key]
    return _best(run[field][rules])


def _has(run: dict, key: str) -> bool:
    """Does the run hold the scores of candidate ``key``? (runs made before a candidate existed do not)"""
    return "support_everywhere_no_silhouette" in run["balanced"] if key == "BSG" else True


def fold_gains(rs: list[dict], fold_a: list[str], keys: list[str],
               reference: str | None = None) -> dict[str, dict[str, float]]:
    """Candidate -> fold -> mean gain (points x100) over ``reference`` (None: shipped), over the fold's
    runs and both levels."""
    out = {}
    for key in keys:
        out[key] = {}
        for fold in "AB":
            d = [100 * (best_of(r, key)[m] - best_of(r, reference)[m]) for r in rs
                 if (r["category"] in fold_a) == (fold == "A") for m in METRICS]
            out[key][fold] = float(np.mean(d)) if d else float("nan")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SCREEN_SEEDS))
    ap.add_argument("--strengths", nargs="+", default=["medium"], choices=list(STRENGTHS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=REPO / "bench" / "_cache" / "segment_small_parts")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "segment_small_parts")
    ap.add_argument("--protocol", default="", help="the declared protocol's text for the report")
    ap.add_argument("--reference", default=None, choices=list(CANDIDATES),
                    help="judge the candidates against this one instead of what shipped before the screen")
    ap.add_argument("--candidates", nargs="+", default=None, choices=list(CANDIDATES),
                    help="the candidates screened (default: every one the runs have, but the reference)")
    ap.add_argument("--outside-grid", type=int, default=0, metavar="N",
                    help="run the first N objects of each category that are not the grid's (a confirmation on "
                         "objects the screen did not see) instead of the grid's")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    root = args.data / "partnet_mobility_dev"
    if not root.is_dir():
        print(f"skipped: {root} not found (the shared data)", file=sys.stderr)
        return 2
    grid = json.loads((REPO / "docs" / "results" / "segment_emulated.json").read_text())
    objects = sorted({r["name"] for r in grid["runs"] if r["track"] == "mesh" and r.get("dataset") == "partnet"})
    if args.outside_grid:
        objects = outside_grid(root, objects, args.outside_grid)
    jobs = [(o, s, sd) for sd in args.seeds for s in args.strengths for o in objects
            if not _cache_file(args.cache, o, s, sd).is_file()]
    if not args.report_only and jobs:
        run_cached(jobs, run_one, (), args.data, args.cache, args.workers)
    write_report(args, objects)
    return 0


def outside_grid(root: Path, grid: list[str], n: int) -> list[str]:
    """The first ``n`` objects (sorted ids) of each category of ``root`` that are not among ``grid``."""
    out = []
    for cat in sorted(p.name for p in root.iterdir() if p.is_dir()):
        ids = sorted(p.stem for p in (root / cat).glob("*.glb"))
        out += [f"{cat}/{i}" for i in ids if f"{cat}/{i}" not in grid][:n]
    return out


def write_report(args, objects: list[str]) -> None:
    from segment_emulated_report import folds

    from crossdistill.engine.machine import cpu_model

    runs = cached_runs(args.cache)
    if not runs:
        print("no cached run to report", file=sys.stderr)
        return
    fold_a, _ = folds(sorted({o.split("/")[0] for o in objects}))
    lines = ["# Small parts on meshes of pieces: group-balanced pixels and mask support in every piece "
             "(mask EMULATOR)", "",
             f"Command: `python bench/segment_small_parts.py {' '.join(shlex.quote(a) if len(a) < 120 else '...' for a in sys.argv[1:])}`"
             " (runs: `--seeds ... --workers 2`, then this report)  ",
             f"Machine: {os.cpu_count()} cores ({platform.machine()}, {cpu_model()}), 1 torch thread per run, "
             "runs side by side  ",
             f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             "**Masks: the SAM-like mask EMULATOR** (benchmarks only; no SAM ran). Each run segments one "
             "PartNet-Mobility mesh " + (f"outside the mask-emulator grid (the first {args.outside_grid} of each "
                                          "category by sorted id that are not grid objects)" if args.outside_grid
                                          else "of the mask-emulator grid") + " with the fast preset twice, with uniform pixel draws "
             "and with group-balanced draws (a = 0.5), and scores each field under the rules shipped for SAM-like "
             "masks on meshes of pieces before this screen (uniform draws, `shipped` below) and under the same rules "
             "with "
             "`support_everywhere` (a part the 2D masks confirm never folds, in any piece). Scores x100, "
             "class-agnostic mIoU, best of the five scales; a seed re-draws the whole measurement.", "",
             args.protocol, "",
             f"Folds: A = {', '.join(fold_a)}; B = the others.", "",
             "Candidates: " + "; ".join(f"**{k}** = {v}" for k, v in CANDIDATES.items()) + ".", ""]
    decision = None
    for strength in [s for s in STRENGTHS if any(r["strength"] == s for r in runs)]:
        # medium decides on the screen's seeds; another strength, or a confirmation outside the grid, on
        # whatever seeds it ran
        rs = [r for r in runs if r["strength"] == strength
              and (strength != "medium" or args.outside_grid or r["seed"] in SCREEN_SEEDS)]
        if not rs:
            continue
        seeds = sorted({r["seed"] for r in rs})
        present = [k for k in CANDIDATES if all(_has(r, k) for r in rs)]
        keys = [k for k in (args.candidates or present) if k != args.reference and k in present]
        gains = fold_gains(rs, fold_a, keys, args.reference)
        mean = lambda key: " / ".join(f"{100 * np.mean([best_of(r, key)[m] for r in rs]):.1f}" for m in METRICS)
        ref = args.reference or "shipped"
        lines += [f"## Strength {strength} (seeds {', '.join(map(str, seeds))}, {len(rs)} runs)", "",
                  f"| candidate | fold A gain over {ref} | fold B gain over {ref} | mean link / leaf (all runs) |",
                  "|---|---:|---:|---|", f"| shipped before the screen | - | - | {mean(None)} |"]
        lines += [f"| {k} | - | - | {mean(k)} |" for k in present if k not in keys]
        lines += [f"| {k} | {gains[k]['A']:+.2f} | {gains[k]['B']:+.2f} | {mean(k)} |" for k in keys]
        cc = np.mean([[r["cc"][m] for m in METRICS] for r in rs], axis=0) * 100
        lines += ["", f"Connected components (no mask): {cc[0]:.1f} / {cc[1]:.1f}.", ""]
        if strength == "medium" and keys and args.outside_grid:
            # a confirmation of rules already adopted, on objects the screen did not see: pooled over both folds
            for k in keys:
                pooled = float(np.mean([100 * (best_of(r, k)[m] - best_of(r, args.reference)[m])
                                        for r in rs for m in METRICS]))
                lines += [f"- confirmation of {k} on {len(rs)} runs outside the grid: pooled mean gain "
                          f"{pooled:+.2f}: **{'confirmed' if pooled >= 0 else 'not confirmed'}**", ""]
        elif strength == "medium" and keys:
            best = max(keys, key=lambda k: gains[k]["A"])
            # against what shipped a candidate must gain; a guard judged against the adopted rules must
            # not lose (exact ties: only stage 3 changes)
            adopted = (gains[best]["A"] > 0 and gains[best]["B"] > 0 if args.reference is None
                       else gains[best]["A"] >= 0 and gains[best]["B"] >= 0)
            decision = best if adopted else None
            lines += [f"- best on fold A: {best} ({gains[best]['A']:+.2f}); fold B {gains[best]['B']:+.2f}: "
                      f"**{'adopted' if adopted else 'not adopted'}**", ""]
        lines += ["Per object (link / leaf, mean over seeds):", "",
                  "| object | fold | shipped | " + " | ".join(present) + " | connected components |",
                  "|---|---|---|" + "---|" * len(present) + "---|"]
        for o in objects:
            ro = [r for r in rs if r["name"] == o]
            if not ro:
                continue
            cell = lambda key: " / ".join(f"{100 * np.mean([best_of(r, key)[m] for r in ro]):.1f}" for m in METRICS)
            fold = "A" if o.split("/")[0] in fold_a else "B"
            lines.append(f"| {o} | {fold} | {cell(None)} | " + " | ".join(cell(k) for k in present)
                         + f" | {100 * ro[0]['cc']['link']:.1f} / {100 * ro[0]['cc']['leaf']:.1f} |")
        lines.append("")
    lines += target_lines(runs, decision)
    write_outputs(args.out, lines, decision, runs)


def target_lines(runs: list[dict], decision: str | None) -> list[str]:
    """Issue #22's PartNet-mesh medium target (ours - lifting >= +5, ours - connected components >= +10,
    both levels, mean over seeds 0-2) for what ships and for the adopted candidate."""
    rs = [r for r in runs if r["strength"] == "medium" and r["seed"] in TARGET_SEEDS]
    seeds = sorted({r["seed"] for r in rs})
    title = f"## The medium target over seeds {', '.join(map(str, TARGET_SEEDS))}"
    if set(seeds) != set(TARGET_SEEDS):
        return [title, "", f"Not judged: the runs cover seeds {', '.join(map(str, seeds)) or 'none'}.", ""]
    names = sorted({r["name"] for r in rs})
    complete = [n for n in names if all(any(r["name"] == n and r["seed"] == sd for r in rs) for sd in seeds)]
    rs = [r for r in rs if r["name"] in complete]
    cc = [float(np.mean([next(r["cc"][m] for r in rs if r["name"] == n) for n in complete])) * 100 for m in METRICS]
    fmt = lambda v: " / ".join(f"{x:.1f}" for x in v)
    dfmt = lambda v: " / ".join(f"{x:+.1f}" for x in v)
    lines = [title + " (this machine)", "",
             "Targets (issue #22): ours - lifting of the same masks >= +5 and ours - connected components >= +10, "
             f"both levels, on the mean over seeds 0, 1, 2. Objects every seed has: {len(complete)}.", "",
             "| rules | seed | ours | lifting | ours - lifting | ours - connected components |",
             "|---|---|---|---|---|---|"]
    verdicts = []
    for key in [None] + ([decision] if decision else []):
        label = "shipped before the screen" if key is None else f"{key} (adopted)"
        d_lift, d_geo = [], []
        for sd in seeds:
            rsd = [r for r in rs if r["seed"] == sd]
            ours = [np.mean([best_of(r, key)[m] for r in rsd]) * 100 for m in METRICS]
            lift = [np.mean([_best(r["lift"])[m] for r in rsd]) * 100 for m in METRICS]
            d_lift.append(np.subtract(ours, lift))
            d_geo.append(np.subtract(ours, cc))
            lines.append(f"| {label} | {sd} | {fmt(ours)} | {fmt(lift)} | {dfmt(d_lift[-1])} | {dfmt(d_geo[-1])} |")
        ml, mg = np.mean(d_lift, axis=0), np.mean(d_geo, axis=0)
        lines.append(f"| {label} | **mean** | | | **{dfmt(ml)}** | **{dfmt(mg)}** |")
        met = bool(np.all(mg >= 10) and np.all(ml >= 5))
        verdicts.append(f"- {label}: ours - lifting {dfmt(ml)} (target >= +5), ours - connected components "
                        f"{dfmt(mg)} (target >= +10): **{'met' if met else 'MISSED'}**")
    return lines + ["", f"Connected components: {fmt(cc)} (no seed).", ""] + verdicts + [""]


if __name__ == "__main__":
    sys.exit(main())
