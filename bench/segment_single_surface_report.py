"""Markdown / JSON report of bench/segment_single_surface.py."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from crossdistill.io_utils import write_json, write_text

FOLD_A = ("Chair", "Hand", "Mech", "Vase")
DEFAULT_SCALE_INDEX = 2  # scale 1.0 of the five
NAMES = {"render": "ours, render-cue teacher (previous default)", "geometric": "ours, geometric part teacher",
         "both": "ours, both teachers' masks", "partitions": "geometric partitions alone (best of 2-12 parts)",
         "kmeans_count": "k-means told each person's segment count", "one_segment": "one segment",
         "humans": "each person against the others", "region_grow": "normal region growing (best of 5 angles)"}


#: the mask kind each bench teacher's masks have (what the shipped default-scale rule looks at)
MASK_KIND = {"render": "render-cues", "geometric": "geometric-parts", "both": "render-cues"}
SCALES = (0.0, 0.5, 1.0, 1.5, 2.0)

ScaleChoice = int | Callable[[dict], int] | None


def shipped_default_index(r: dict) -> int:
    """The scale index the shipped rule (``methods/sampart3d/default_scale.py``) opens this run at
    (psb meshes are closed single surfaces; the point track is ``points``)."""
    from crossdistill.methods.sampart3d.default_scale import default_scale_index

    kind = (r.get("meta") or {}).get("shape_kind") or ("closed_surface" if r["track"] == "mesh" else "points")
    return default_scale_index(r["scales"], r["n_parts"], kind, MASK_KIND.get(r["teacher"], "sam-like"))


def _candidates() -> dict[str, Callable[[dict], int]]:
    """Label-free rules for the one scale to show first, tried on fold A."""
    out: dict[str, Callable[[dict], int]] = {f"scale {s:g}": (lambda r, i=i: i) for i, s in enumerate(SCALES)}
    for k in (4, 6, 8, 10, 12):
        out[f"part count nearest {k}"] = lambda r, k=k: min(range(len(r["n_parts"])),
                                                            key=lambda i: (abs(r["n_parts"][i] - k), i))
        out[f"coarsest scale with >= {k} parts"] = lambda r, k=k: max(
            [i for i, n in enumerate(r["n_parts"]) if n >= k] or [0])
    return out


def _score(r: dict, key: str, scale_index: ScaleChoice = None) -> dict | None:
    if key in ("render", "geometric", "both"):
        if r["teacher"] != key:
            return None
        if scale_index is None:
            return r["ours"]["best"]
        return r["ours"]["per_scale"][scale_index(r) if callable(scale_index) else scale_index]
    return r.get(key, {}).get("best")


def _mean(rs: list[dict], key: str, metric: str, scale_index: ScaleChoice = None) -> float | None:
    vals = [s[metric] for r in rs if (s := _score(r, key, scale_index)) is not None and metric in s]
    return float(np.mean(vals)) if vals else None


def _cell(ri: float | None, miou: float | None) -> str:
    if ri is None:
        return "-"
    return f"{100 * (1 - ri):.1f} / {100 * miou:.1f}"


def write_report(results: list[dict], out: Path, command: str, threads: int, dataset: str, total_runs: int | None = None,
                 workers: int = 2) -> None:
    by_track = defaultdict(list)
    for r in results:
        by_track[r["track"]].append(r)
    metrics = ("ri", "miou") if dataset == "psb" else ("link", "leaf")
    lines = [f"# Weight-free `crossdistill segment` on {'single-surface meshes (psb_dev)' if dataset == 'psb' else 'PartNet-Mobility (check)'}",
             "", f"Command: `{command}`  ",
             f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python "
             f"{platform.python_version()}, torch threads per object: {threads} "
             f"({'objects side by side' if workers > 1 else 'one object at a time'})  ",
             f"Date: {_dt.date.today().isoformat()}",
        *([f"", f"**Partial run: {len(results)} of the grid's {total_runs} runs had finished when this report was "
                f"written**; tables hold the finished ones."] if total_runs and len(results) < total_runs else []), ""]
    summary: dict = {}
    if dataset == "psb":
        lines += ["Scores x100: Rand index error (lower is better) / class-agnostic mIoU, each averaged over the "
                  "human segmentations of a mesh, then over meshes; best of the five scales per object unless "
                  "said. Fast preset, no weights. The teacher of the new default is "
                  f"chosen on categories A ({', '.join(FOLD_A)}) and reported on the others (B).", ""]
        picks = {}
        global DEFAULT_SCALE_INDEX
        for track in sorted(by_track):
            pick, fold_scores = _choose(by_track[track])
            picks[track] = pick
            summary.setdefault("chosen_teacher", {})[track] = pick
            summary.setdefault("fold_a_scores", {})[track] = fold_scores
            lines.append(f"- {track} track: teacher chosen on fold A (mean of mIoU and Rand index over the objects "
                         f"every teacher ran on): **{pick}** ("
                         + "; ".join(f"{k} {100 * v:.1f}" for k, v in fold_scores.items()) + ")")
        DEFAULT_SCALE_INDEX = _default_scale(by_track.get("mesh", results), picks.get("mesh", "render"))
        summary["default_scale_index"] = DEFAULT_SCALE_INDEX
        lines += [f"- best single fixed scale on fold A for the mesh track's teacher: "
                  f"**{SCALES[DEFAULT_SCALE_INDEX]:g}** (the previous default, scale 1, is what the viewer opened at)"]
        rule, rule_scores = _default_rule(by_track.get("mesh", results), picks.get("mesh", "render"))
        summary["default_scale_rule_fold_a"] = {"chosen": rule, "scores": rule_scores}
        from crossdistill.methods.sampart3d.default_scale import TARGET_PARTS

        shipped = f"part count nearest {TARGET_PARTS}"
        lines += [f"- default scale per object on closed surfaces, rule chosen on fold A among fixed scales, "
                  f"'part count nearest K' and 'coarsest scale with >= K parts' (mean of mIoU and Rand index): "
                  f"**{rule}** (" + "; ".join(f"{k} {100 * v:.1f}" for k, v in
                                            sorted(rule_scores.items(), key=lambda kv: -kv[1])[:5])
                  + f"). Shipped (`default_scale.py`): {shipped}"
                  + ("" if rule == shipped else " -- NOT the fold-A choice: update the code or this report"), ""]
        lines += _targets(by_track, picks, summary)
    for track, rs in sorted(by_track.items()):
        cats = sorted({r["category"] for r in rs})
        lines += [f"## {track} track ({len({r['name'] for r in rs})} objects)", "",
                  "| method | " + " | ".join(cats) + " | fold A | fold B |", "|---" * (len(cats) + 3) + "|"]
        keys = ["render", "geometric", "both", "partitions", "kmeans_count", "one_segment", "humans"]
        if dataset != "psb":
            keys = ["render", "geometric", "both", "partitions"] + (["cc", "kmeans"] if track == "mesh" else
                                                                     ["region_grow", "kmeans"])
        for key in keys:
            cells = []
            for group in [[c] for c in cats] + [[c for c in cats if c in FOLD_A], [c for c in cats if c not in FOLD_A]]:
                sub = [r for r in rs if r["category"] in group]
                vals = [_mean(sub, key, m) for m in metrics]
                cells.append(_cell(*vals) if dataset == "psb" else
                             ("-" if vals[0] is None else " / ".join(f"{100 * v:.1f}" for v in vals)))
            lines.append(f"| {NAMES.get(key, key)} | " + " | ".join(cells) + " |")
        if dataset == "psb":
            for key in ("render", "geometric", "both"):
                cells = []
                for group in [[c] for c in cats] + [[c for c in cats if c in FOLD_A],
                                                    [c for c in cats if c not in FOLD_A]]:
                    sub = [r for r in rs if r["category"] in group]
                    cells.append(_cell(_mean(sub, key, "ri", DEFAULT_SCALE_INDEX),
                                       _mean(sub, key, "miou", DEFAULT_SCALE_INDEX)))
                lines.append(f"| {NAMES[key]}, at the fixed scale {SCALES[DEFAULT_SCALE_INDEX]:g} | "
                             + " | ".join(cells) + " |")
            for key in ("render", "geometric", "both"):
                cells = []
                for group in [[c] for c in cats] + [[c for c in cats if c in FOLD_A],
                                                    [c for c in cats if c not in FOLD_A]]:
                    sub = [r for r in rs if r["category"] in group]
                    cells.append(_cell(_mean(sub, key, "ri", shipped_default_index),
                                       _mean(sub, key, "miou", shipped_default_index)))
                lines.append(f"| {NAMES[key]}, at the shipped default scale (per object) | " + " | ".join(cells) + " |")
        secs = defaultdict(list)
        mem = defaultdict(list)
        for r in rs:
            secs[r["teacher"]].append(r["seconds"])
            mem[r["teacher"]].append(r.get("peak_rss_mib", 0))
        lines += ["", "| teacher | median s / object | max s | peak RSS MiB (max) |", "|---|---|---|---|"]
        for t in sorted(secs):
            lines.append(f"| {t} | {np.median(secs[t]):.1f} | {max(secs[t]):.1f} | {max(mem[t]):.0f} |")
            summary.setdefault("seconds", {})[f"{track}:{t}"] = float(np.median(secs[t]))
        if workers == 1:  # timed one object at a time
            for t in sorted(secs):
                ok = np.median(secs[t]) <= 30 and max(mem[t]) <= 4096
                lines.append(f"- target median <= 30 s and peak <= 4 GiB per object on 2 cores, {track}, teacher "
                             f"{t}: {np.median(secs[t]):.1f} s, {max(mem[t]):.0f} MiB: **{'met' if ok else 'MISSED'}**")
        lines.append("")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    write_json(out.with_suffix(".json"), {"command": command, "summary": summary, "runs": results})


def _choose(results: list[dict]) -> tuple[str, dict]:
    """The teacher with the best mean of mIoU and RI on fold A, over the (object, track) pairs every
    teacher ran on."""
    fold = [r for r in results if r["category"] in FOLD_A]
    teachers = sorted({r["teacher"] for r in fold})
    keys = {t: {(r["name"], r["track"]) for r in fold if r["teacher"] == t} for t in teachers}
    common = set.intersection(*keys.values()) if keys else set()
    scores = {}
    for t in teachers:
        rs = [r for r in fold if r["teacher"] == t and (r["name"], r["track"]) in common]
        if rs:
            scores[t] = float(np.mean([(r["ours"]["best"]["miou"] + r["ours"]["best"]["ri"]) / 2 for r in rs]))
    return (max(scores, key=scores.get) if scores else "render"), scores


def _default_rule(results: list[dict], teacher: str) -> tuple[str, dict[str, float]]:
    """The label-free default-scale rule with the best mean of mIoU and RI on fold A for ``teacher``."""
    rs = [r for r in results if r["teacher"] == teacher and r["category"] in FOLD_A]
    scores = {name: float(np.mean([(r["ours"]["per_scale"][f(r)]["miou"] + r["ours"]["per_scale"][f(r)]["ri"]) / 2
                                   for r in rs])) for name, f in _candidates().items()} if rs else {}
    return (max(scores, key=scores.get) if scores else "scale 1"), scores


def _default_scale(results: list[dict], teacher: str) -> int:
    """The one scale (index) with the best mean of mIoU and RI on fold A for ``teacher``."""
    rs = [r for r in results if r["teacher"] == teacher and r["category"] in FOLD_A]
    if not rs:
        return DEFAULT_SCALE_INDEX
    per = np.array([[(s["miou"] + s["ri"]) / 2 for s in r["ours"]["per_scale"]] for r in rs]).mean(0)
    return int(per.argmax())


def _targets(by_track, picks: dict, summary: dict) -> list[str]:
    lines = ["## Targets (fold B: categories that did not choose the settings)", ""]
    goals = {"mesh": [("best", "ri", 0.18), ("best", "miou", 0.50), ("default", "ri", 0.24)],
             "points": [("best", "ri", 0.22), ("best", "miou", 0.45)]}
    summary["targets"] = []
    from crossdistill.methods.sampart3d.pipeline import DEFAULT_OFFLINE_TEACHER

    shipped = {"mesh": DEFAULT_OFFLINE_TEACHER.single_surface, "points": DEFAULT_OFFLINE_TEACHER.point_cloud}
    for track, rs in sorted(by_track.items()):
        b = [r for r in rs if r["category"] not in FOLD_A]
        for pick in dict.fromkeys([picks.get(track, "render"), shipped.get(track, "render")]):
            if pick != shipped.get(track):
                lines.append(f"- ({track}: the teacher fold A chose, {pick}, is not the shipped default for this "
                             f"track, {shipped.get(track)}: see the PartNet-Mobility check)")
            lines += _target_lines(b, track, pick, goals, summary)
    return lines + [""]


def _target_lines(b: list[dict], track: str, pick: str, goals: dict, summary: dict) -> list[str]:
    lines = []
    for kind, metric, goal in goals.get(track, []):
        v = _mean(b, pick, metric, shipped_default_index if kind == "default" else None)
        if v is None:
            continue
        if metric == "ri":
            err = 1 - v
            ok = err <= goal
            text = f"RI error {100 * err:.1f} (target <= {100 * goal:.0f})"
        else:
            ok = v >= goal
            text = f"mIoU {100 * v:.1f} (target >= {100 * goal:.0f})"
        where = "at the shipped default scale (per object)" if kind == "default" else "best of scales"
        lines.append(f"- {track}, {where}, teacher {pick}: {text}: **{'met' if ok else 'MISSED'}**")
        summary["targets"].append({"track": track, "teacher": pick, "kind": kind, "metric": metric, "value": v,
                                   "met": ok})
    return lines
