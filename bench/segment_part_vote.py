"""The `part_vote` stage-3 rule through the SAM-like mask EMULATOR: PartNet-Mobility or psb_dev,
meshes or point clouds.

Each run segments one object with the fast preset and the rules shipped for SAM-like masks on its
kind of shape, then scores the same trained field under those rules with ``part_vote`` = t added
(``pipeline.with_rules``; :mod:`crossdistill.methods.sampart3d.part_votes`), and the connected-
components baseline (PartNet-Mobility meshes). Runs are cached one JSON per (object, strength,
seed) and resume; each runs
in its own process with one torch thread. Declared protocol (before seeds 1 and 2 ran): the t
with the largest fold-A gain at medium strength over seeds 1 and 2 is adopted if that gain and
its fold-B gain are both positive. Benchmarks only: the masks are the emulator's.

    python bench/segment_part_vote.py --seeds 1 2 --strengths medium zero --workers 2
    python bench/segment_part_vote.py --dataset psb --track points --cache bench/_cache/segment_part_vote_psb_points
    python bench/segment_part_vote.py --report-only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from segment_emulated import STRENGTHS  # noqa: E402  (the emulator strengths every segment bench uses)
from segment_emulated_report import GEO_NAMES  # noqa: E402  (the geometric baselines' names)

THRESHOLDS = (0.5, 0.7, 0.9)
METRICS = ("link", "leaf")  # PartNet-Mobility; psb: ("miou", "ri"), set from the runs in the report
ROOTS = {"partnet": "partnet_mobility_dev", "psb": "psb_dev"}
SCREEN_SEEDS = (1, 2)  # the declared screen's draws; seed 0 (the grid's draw) was seen before it
TARGET_SEEDS = (0, 1, 2)  # the seeds protocol of segment_emulated_seeds.md


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--dataset", default="partnet", choices=list(ROOTS),
                    help="partnet (meshes of pieces, link / leaf mIoU) or psb (closed single surfaces, mIoU and "
                         "1 - Rand index error over the people)")
    ap.add_argument("--track", default="mesh", choices=["mesh", "points"],
                    help="the meshes or the point clouds of the dataset (psb: sampled from its meshes)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--strengths", nargs="+", default=["medium"], choices=list(STRENGTHS))
    ap.add_argument("--thresholds", type=float, nargs="+", default=list(THRESHOLDS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=REPO / "bench" / "_cache" / "segment_part_vote")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "segment_part_vote")
    ap.add_argument("--confirm", type=float, default=None, metavar="T",
                    help="judge this one threshold (a confirmation: adopted if it gains on both folds) instead of "
                         "choosing the best on fold A")
    ap.add_argument("--joint-with", type=Path, default=None, metavar="CACHE",
                    help="another dataset's cache screened together with this one: one t for both, the largest "
                         "mean fold-A gain, adopted only if positive on both folds of both")
    ap.add_argument("--no-decision", action="store_true",
                    help="a report, not a screen (e.g. targets re-judged with rules that already ship): no decision")
    ap.add_argument("--title", default="The `part_vote` rule on PartNet-Mobility meshes (mask EMULATOR)")
    ap.add_argument("--protocol", default=None,
                    help="the declared protocol's text for the report (default: the screen's)")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    root = args.data / ROOTS[args.dataset]
    if not root.is_dir():
        print(f"skipped: {root} not found (the shared data)", file=sys.stderr)
        return 2
    objects = sorted(f"{p.parent.name}/{p.stem}" for p in root.glob("*/*.*") if p.suffix in (".glb", ".ply"))
    grid = json.loads((REPO / "docs" / "results" / "segment_emulated.json").read_text())
    names = sorted({r["name"] for r in grid["runs"] if r["track"] == args.track and r.get("dataset") == args.dataset})
    objects = [o for o in objects if o in names]  # the mask-emulator grid's objects (one per category)
    jobs = [(o, s, seed) for seed in args.seeds for s in args.strengths for o in objects
            if not _cache_file(args.cache, o, s, seed).is_file()]
    if not args.report_only and jobs:
        run_cached(jobs, run_one, (tuple(args.thresholds), args.dataset, args.track), args.data, args.cache,
                   args.workers)
    write_report(args, objects)
    return 0


def run_cached(jobs: list[tuple[str, str, int]], fn, extra: tuple, data: Path, cache: Path, workers: int) -> None:
    """Run ``fn(data, object, strength, seed, *extra)`` for every (object, strength, seed) of ``jobs``,
    ``workers`` processes side by side, each result written atomically to its cache file as it ends; a
    failing job is reported and the others go on."""
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futs = {pool.submit(fn, str(data), o, s, seed, *extra): (o, s, seed) for o, s, seed in jobs}
        for fut in as_completed(futs):
            o, s, seed = futs[fut]
            try:
                res = fut.result()
            except Exception as exc:  # one failing object does not stop the others
                print(f"error: {o} {s} seed {seed}: {type(exc).__name__}: {exc}", file=sys.stderr)
                continue
            path = _cache_file(cache, o, s, seed)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(res))
            tmp.replace(path)
            print(f"{o} {s} seed {seed}: {res['seconds']:.0f} s", file=sys.stderr)


def cached_runs(cache: Path) -> list[dict]:
    """Every run cached under ``cache`` (all strengths and seeds), in path order."""
    return [json.loads(p.read_text()) for p in sorted(cache.glob("*/seed*/*.json"))]


def _cache_file(cache: Path, obj: str, strength: str, seed: int) -> Path:
    return cache / strength / f"seed{seed}" / (obj.replace("/", "_") + ".json")


def run_one(data: str, obj: str, strength: str, seed: int, thresholds: tuple[float, ...],
            dataset: str = "partnet", track: str = "mesh") -> dict:
    """One object at one strength and seed: the shipped rules and each threshold, scored per scale."""
    import dataclasses

    import torch

    torch.set_num_threads(1)
    from crossdistill.eval.baselines import connected_component_labels
    from crossdistill.eval.emulators import EmulatedMaskTeacher
    from crossdistill.eval.segment_objects import load
    from crossdistill.eval.segment_protocol import lifted_labels, score_levels
    from crossdistill.methods.sampart3d.pipeline import preset, segment_shape, with_rules
    from crossdistill.methods.sampart3d.rules import SAM_RULES

    cat, oid = obj.split("/")
    t0 = time.perf_counter()
    item, parts = load(Path(data), dataset, track, cat, oid)
    teacher = EmulatedMaskTeacher(parts, strength=STRENGTHS[strength], seed=seed)
    cfg = dataclasses.replace(preset("fast"), seed=seed)
    seg = segment_shape(item.shape, cfg, mask_teacher=teacher, progress=False)
    weights = item.shape.face_areas if track == "mesh" else None  # meshes: area-weighted; points: each counts 1

    def scores(s) -> list[dict]:
        return [score_levels(s.labels(i), item.labels, weights, item.scoring) for i in range(len(s.scales))]

    shipped = SAM_RULES[seg.meta["shape_kind"]]
    res = {"name": obj, "category": cat, "track": track, "strength": strength, "seed": seed,
           "shape_kind": seg.meta["shape_kind"],
           "rules": seg.meta["rules"], "scales": list(seg.scales), "shipped": scores(seg),
           "n_parts": {"shipped": [int(seg.labels(i).max()) + 1 for i in range(len(seg.scales))]},
           "part_vote": {}}
    for t in thresholds:
        alt = with_rules(seg, item.shape, cfg, dataclasses.replace(shipped, part_vote=float(t)))
        res["part_vote"][f"{t:g}"] = scores(alt)
        res["n_parts"][f"{t:g}"] = [int(alt.labels(i).max()) + 1 for i in range(len(alt.scales))]
    # direct lifting of the same masks (the target's other baseline); the field is not touched
    res["lift"] = [score_levels(pred, item.labels, weights, item.scoring)
                   for pred in lifted_labels(seg, item.shape, cfg)]
    res["cc"] = (score_levels(connected_component_labels(item.shape), item.labels, weights, item.scoring)
                 if dataset == "partnet" and track == "mesh" else None)  # a closed surface is one piece
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


def fold_gains(rs: list[dict], fold_a: list[str], ts: list[str]) -> dict[str, dict[str, float]]:
    """t -> fold -> mean gain (points x100) of ``part_vote`` = t over the shipped rules, over the
    fold's objects and seeds in ``rs`` and the runs' metrics."""
    metrics = tuple(rs[0]["shipped"][0])
    base = {(r["name"], r["seed"]): _best(r["shipped"]) for r in rs}
    out = {}
    for t in ts:
        out[t] = {}
        for fold in "AB":
            d = [100 * (_best(r["part_vote"][t])[m] - base[(r["name"], r["seed"])][m]) for r in rs
                 if (r["category"] in fold_a) == (fold == "A") for m in metrics]
            out[t][fold] = float(np.mean(d)) if d else float("nan")
    return out


def joint_decision(gains: dict, other_cache: Path, ts: list[str]) -> tuple[str | None, list[str]]:
    """One t for two datasets screened together (the point-cloud protocol): the t with the largest
    fold-A gain averaged over the two, adopted only if its fold-A and fold-B gains are positive on
    both. ``gains``: this report's :func:`fold_gains`; ``other_cache``: the other dataset's runs."""
    from segment_emulated_report import folds

    other = [r for r in cached_runs(other_cache) if r["strength"] == "medium" and r["seed"] in SCREEN_SEEDS]
    if not other:
        return None, [f"- joint decision: no run in {other_cache}: **not adopted**", ""]
    other_gains = fold_gains(other, folds(sorted({r["category"] for r in other}))[0], ts)
    lines = ["Joint decision with the other dataset's screen (its runs: "
             f"`{other_cache.relative_to(REPO) if other_cache.is_relative_to(REPO) else other_cache}`):", "",
             "| candidate | fold A here / there / mean | fold B here / there |", "|---|---|---|"]
    mean_a = {t: (gains[t]["A"] + other_gains[t]["A"]) / 2 for t in ts}
    for t in ts:
        lines.append(f"| part_vote {t} | {gains[t]['A']:+.2f} / {other_gains[t]['A']:+.2f} / {mean_a[t]:+.3f} | "
                     f"{gains[t]['B']:+.2f} / {other_gains[t]['B']:+.2f} |")
    best = max(ts, key=mean_a.get)
    adopted = all(g[best][f] > 0 for g in (gains, other_gains) for f in "AB")
    lines += ["", f"- best mean fold-A gain: part_vote {best} ({mean_a[best]:+.3f}); positive on both folds of both "
              f"datasets: **{'adopted' if adopted else 'not adopted'}**", ""]
    return (best if adopted else None), lines


def _best(per_scale: list[dict]) -> dict:
    return {m: max(s[m] for s in per_scale) for m in per_scale[0]}


def _best_of(run: dict, key: str | None) -> dict:
    """Best-of-scales scores of a run: the shipped rules (``key`` None) or ``part_vote`` = key."""
    return _best(run["shipped"] if key is None else run["part_vote"][key])


def write_report(args, objects: list[str]) -> None:
    from segment_emulated_report import folds

    from crossdistill.engine.machine import cpu_model

    fold_a, _ = folds(sorted({o.split("/")[0] for o in objects}))
    runs = cached_runs(args.cache)
    if not runs:
        print("no cached run to report", file=sys.stderr)
        return
    global METRICS
    METRICS = tuple(runs[0]["shipped"][0])
    ts = [f"{t:g}" for t in args.thresholds]
    scores = "class-agnostic mIoU" if args.dataset == "partnet" else "mIoU and 1 - Rand index error over the people"
    lines = [f"# {args.title}", "",
             f"Command: `python bench/segment_part_vote.py {_shown_args()}` "
             f"(runs: `--seeds ... --strengths ... --workers 2`, then this report)  ",
             f"Machine: {os.cpu_count()} cores ({platform.machine()}, {cpu_model()}), 1 torch thread per object, "
             "objects side by side  ",
             f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             "**Masks: the SAM-like mask EMULATOR** (benchmarks only; no SAM ran). Each run segments one "
             f"{_what(args)} (the mask-emulator grid's objects) with the fast preset and the rules shipped "
             f"for SAM-like masks on {_kind(args)} when the runs were made (each run records them), then "
             "scores the same trained field with `part_vote` = t added (parts that the views' masks group "
             "together at the query scale are merged by average "
             "linkage on the share of agreeing views; `crossdistill.methods.sampart3d.part_votes`). Scores x100, "
             f"{scores}, best of the five scales; a seed re-draws the whole measurement.", "",
             args.protocol or ("Protocol (declared 2026-12-07 09:31 UTC, before any run on seeds 1 and 2): the t "
             "with the largest fold-A gain at medium strength over seeds 1 and 2 (mean over objects, seeds and both "
             "levels) is adopted if that gain and its fold-B gain are both positive. Strength zero decides nothing. "
             "Seen before: a single-linkage version on seed 0 (both folds), which is why the rule links by the "
             "average."), "",
             f"Folds: A = {', '.join(fold_a)}; B = the others.", ""]
    decision = None
    for strength in [s for s in STRENGTHS if any(r["strength"] == s for r in runs)]:
        rs = [r for r in runs if r["strength"] == strength and r["seed"] in SCREEN_SEEDS]
        seeds = sorted({r["seed"] for r in rs})
        lines += [f"## Strength {strength} (seeds {', '.join(map(str, seeds))})", "",
                  f"| candidate | fold A gain | fold B gain | mean {' / '.join(METRICS)} (all objects) |",
                  "|---|---:|---:|---|"]
        mean_of = lambda key: [np.mean([_best_of(r, key)[m]
                                        for r in rs]) * 100 for m in METRICS]
        lines.append(f"| shipped | - | - | {mean_of(None)[0]:.1f} / {mean_of(None)[1]:.1f} |")
        gains = fold_gains(rs, fold_a, ts)
        for t in ts:
            g = gains[t]
            mo = mean_of(t)
            lines.append(f"| part_vote {t} | {g['A']:+.2f} | {g['B']:+.2f} | {mo[0]:.1f} / {mo[1]:.1f} |")
        if all(r["cc"] is not None for r in rs):
            cc = np.mean([[r["cc"][m] for m in METRICS] for r in rs], axis=0) * 100
            lines += ["", f"Connected components (no mask): {cc[0]:.1f} / {cc[1]:.1f}.", ""]
        else:
            lines.append("")
        if strength == "medium" and args.no_decision:
            lines += ["- a report, not a screen: nothing is decided here", ""]
        elif strength == "medium" and args.joint_with is not None:
            decision, joint = joint_decision(gains, args.joint_with, ts)
            lines += joint
        elif strength == "medium":
            best = f"{args.confirm:g}" if args.confirm is not None else max(ts, key=lambda t: gains[t]["A"])
            adopted = gains[best]["A"] > 0 and gains[best]["B"] > 0
            decision = best if adopted else None
            what = "the threshold under confirmation" if args.confirm is not None else "best on fold A"
            lines += [f"- {what}: part_vote {best} ({gains[best]['A']:+.2f}); fold B {gains[best]['B']:+.2f}: "
                      f"**{'adopted' if adopted else 'not adopted'}**", ""]
        lines += [f"Per object ({' / '.join(METRICS)}, mean over seeds): shipped, then each t, and connected "
                  "components:", "",
                  "| object | fold | shipped | " + " | ".join(f"t = {t}" for t in ts) + " | connected components |",
                  "|---|---|---|" + "---|" * len(ts) + "---|"]
        for o in objects:
            ro = [r for r in rs if r["name"] == o]
            if not ro:
                continue
            cell = lambda key: " / ".join(f"{100 * np.mean([_best_of(r, key)[m] for r in ro]):.1f}" for m in METRICS)
            fold = "A" if o.split("/")[0] in fold_a else "B"
            lines.append(f"| {o} | {fold} | {cell(None)} | " + " | ".join(cell(t) for t in ts)
                         + (f" | {100 * ro[0]['cc'][METRICS[0]]:.1f} / {100 * ro[0]['cc'][METRICS[1]]:.1f} |"
                            if ro[0]["cc"] is not None else " | - |"))
        lines.append("")
    lines += target_lines(runs, decision, ts, args.dataset, args.track)
    write_outputs(args.out, lines, decision, runs)


def write_outputs(out: Path, lines: list[str], decision, runs: list[dict]) -> None:
    """The report ``out``.md (``lines``) and ``out``.json (this command, the decision, every run), each
    written atomically."""
    from crossdistill.io_utils import write_json, write_text

    write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    write_json(out.with_suffix(".json"), {"command": " ".join(sys.argv), "decision": decision, "runs": runs},
               indent=None)
    print(f"wrote {out.with_suffix('.md')}", file=sys.stderr)


def geometric_baseline(runs: list[dict], dataset: str, track: str) -> tuple[str, list[float]] | None:
    """The best geometric baseline of the target, per metric (points x100): connected components
    scored in the runs (PartNet-Mobility meshes), else the grid's best geometric baseline of the
    track as ``segment_emulated_seeds.json`` records it (it sees no mask and no seed)."""
    if runs and all(r["cc"] is not None for r in runs):
        names = sorted({r["name"] for r in runs})
        cc = {n: next(r["cc"] for r in runs if r["name"] == n) for n in names}
        return GEO_NAMES["cc"], [float(np.mean([cc[n][m] for n in names])) * 100 for m in METRICS]
    path = REPO / "docs" / "results" / "segment_emulated_seeds.json"
    track_rec = json.loads(path.read_text())["tracks"].get(f"{dataset}/{track}") if path.is_file() else None
    if track_rec is None:
        return None
    geo = track_rec["metrics"]
    return GEO_NAMES[geo[METRICS[0]]["geometry"]], [geo[m]["geometry_value"] * 100 for m in METRICS]


def target_lines(runs: list[dict], decision: str | None, ts: list[str], dataset: str = "partnet",
                 track: str = "mesh") -> list[str]:
    """The medium-strength targets of issue #22 (ours - lifting >= +5 where the runs scored lifting,
    ours - best geometric baseline >= +10, every metric), per seed and on the mean over
    :data:`TARGET_SEEDS`, for the shipped rules and each t."""
    rs = [r for r in runs if r["strength"] == "medium" and r["seed"] in TARGET_SEEDS]
    seeds = sorted({r["seed"] for r in rs})
    names = sorted({r["name"] for r in rs})
    complete = [n for n in names if all(any(r["name"] == n and r["seed"] == sd for r in rs) for sd in seeds)]
    title = f"## The medium target over seeds {', '.join(map(str, TARGET_SEEDS))}"
    if not rs or set(seeds) != set(TARGET_SEEDS):
        return [title, "", f"Not judged: the runs cover seeds {', '.join(map(str, seeds)) or 'none'}.", ""]
    rs = [r for r in rs if r["name"] in complete]
    geo = geometric_baseline(rs, dataset, track)
    has_lift = all("lift" in r for r in rs)
    lines = [title + " (this machine)", "",
             "Targets (issue #22): " + ("ours - lifting of the same masks >= +5 and " if has_lift else "")
             + f"ours - best geometric baseline ({geo[0] if geo else 'not recorded'}) >= +10, every metric, "
             "judged on the mean over seeds 0, 1, 2 (the seeds protocol of `segment_emulated_seeds.md`). "
             f"Objects every seed has: {len(complete)}. Metrics: {' / '.join(METRICS)}.", "",
             "| rules | seed | ours | " + ("lifting | ours - lifting | " if has_lift else "")
             + "ours - geometric |", "|---|---|---|" + ("---|---|" if has_lift else "") + "---|"]
    fmt = lambda v: " / ".join(f"{x:.1f}" for x in v)
    dfmt = lambda v: " / ".join(f"{x:+.1f}" for x in v)
    lift = {sd: [np.mean([_best(r["lift"])[m] for r in rs if r["seed"] == sd]) * 100 for m in METRICS]
            for sd in seeds} if has_lift else {}
    verdicts = []
    for key in [None] + ts:
        label = "shipped" if key is None else f"+ part_vote {key}"
        d_lift, d_geo = [], []
        for sd in seeds:
            ours = [np.mean([_best_of(r, key)[m] for r in rs if r["seed"] == sd]) * 100 for m in METRICS]
            row = f"| {label} | {sd} | {fmt(ours)} | "
            if has_lift:
                d_lift.append(np.subtract(ours, lift[sd]))
                row += f"{fmt(lift[sd])} | {dfmt(d_lift[-1])} | "
            d_geo.append(np.subtract(ours, geo[1]) if geo else [np.nan] * len(METRICS))
            lines.append(row + f"{dfmt(d_geo[-1])} |")
        mean_lift = np.mean(d_lift, axis=0) if has_lift else None
        mean_geo = np.mean(d_geo, axis=0)
        lines.append(f"| {label} | **mean** | | " + (f"| **{dfmt(mean_lift)}** | " if has_lift else "")
                     + f"**{dfmt(mean_geo)}** |")
        if key is None or key == decision:
            met = bool(np.all(mean_geo >= 10) and (not has_lift or np.all(mean_lift >= 5)))
            what = "shipped rules" if key is None else f"with part_vote {key} (adopted)"
            verdicts.append(f"- {what}: " + (f"ours - lifting {dfmt(mean_lift)} (target >= +5), " if has_lift else "")
                            + f"ours - {geo[0] if geo else 'geometric'} {dfmt(mean_geo)} (target >= +10): "
                            f"**{'met' if met else 'MISSED'}**")
    if geo:
        lines += ["", f"Best geometric baseline: {geo[0]} {fmt(geo[1])} (no seed)."]
    return lines + [""] + verdicts + [""]


def _what(args) -> str:
    """What one run segments, in words."""
    data = "PartNet-Mobility" if args.dataset == "partnet" else "psb_dev"
    if args.track == "mesh":
        return f"{data} mesh"
    return f"{data} point cloud" + (" (sampled from its mesh)" if args.dataset == "psb" else "")


def _kind(args) -> str:
    """The kind of shape whose shipped rules the runs start from, in words."""
    if args.track == "points":
        return "point clouds"
    return "meshes of pieces" if args.dataset == "partnet" else "closed single surfaces"


def _shown_args() -> str:
    """This run's arguments, a long text (a protocol) shortened to "..."."""
    import shlex

    return " ".join(shlex.quote(a) if len(a) < 120 else '"..."' for a in sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
