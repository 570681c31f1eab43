"""Markdown / JSON report of bench/segment_emulated.py (see that script for what is measured)."""

from __future__ import annotations

import datetime as _dt
import os
import platform
from collections import defaultdict
from pathlib import Path

import numpy as np

from crossdistill.io_utils import write_json, write_text

STRENGTH_ORDER = ("zero", "low", "medium", "high")
METRICS = {"partnet": ("link", "leaf"), "psb": ("ri", "miou")}
GEOMETRY = {"mesh": ("cc", "kmeans", "kmeans_count", "one_segment"),
            "points": ("region_grow", "kmeans", "kmeans_count", "one_segment")}
VARIANT_NAMES = {"fast": "ours, fast preset", "as_released": "ours, fast, released training choices",
                 "equal_terms": "ours, fast preset, pull and push weighted equally",
                 "shared": "ours, fast preset, other pair sampler",
                 "paper_cpu": "ours, paper method at the CPU budget", "no_skip": "ours, fast, no long skip",
                 "push_floor": "ours, fast preset, push term floored at the pull term",
                 "push_floor_lr": "ours, fast preset, push floor, higher learning rate",
                 "push_floor_balance_half": "ours, fast preset, push floor, group-balanced pixels (a = 0.5)",
                 "push_floor_balance_full": "ours, fast preset, push floor, group-balanced pixels (a = 1)",
                 "balance_half": "ours, fast preset, group-balanced pixels (a = 0.5)",
                 "balance_full": "ours, fast preset, group-balanced pixels (a = 1)"}
#: (push floor, group-balance exponent) -> the bench variant that trains with them
BALANCE_VARIANTS = {(True, 0.5): "push_floor_balance_half", (True, 1.0): "push_floor_balance_full",
                    (False, 0.5): "balance_half", (False, 1.0): "balance_full"}
#: the same, read the other way: variant -> (push floor, group-balance exponent)
BALANCE_OF = {v: k for k, v in BALANCE_VARIANTS.items()}
#: the pieces screen (segment_notes.md item 23): the shipped rules of meshes of pieces with parts kept inside
#: pieces only below this scale (shipped: 2.0), scored on the fast preset's fields; not candidates of the
#: rule cross-validation (they are measured against the shipped rules, not against no rule)
PIECES_SCREEN = {"pieces_until_1.5": 1.5, "pieces_until_1": 1.0}
GEO_NAMES = {"cc": "connected components", "kmeans": "k-means (xyz, 0.3 normal), best k of 2-12",
             "region_grow": "normal region growing, best of 5 angles",
             "kmeans_count": "k-means told each person's segment count", "one_segment": "one segment"}


def seed_folder(strength: str, seed: int) -> str:
    """The cache folder of a strength's runs at a seed of the whole measurement (seed 0: the grid's own)."""
    return strength + (f"@seed{seed}" if seed else "")


def fmt(dataset: str, metric: str, value: float | None) -> str:
    """x100; Rand index shown as the benchmark's error (1 - RI)."""
    if value is None or not np.isfinite(value):
        return "-"
    return f"{100 * (1 - value if metric == 'ri' else value):.1f}"


def label(dataset: str) -> str:
    return "RI error / mIoU" if dataset == "psb" else "link / leaf"


def better(metric: str, a: float, b: float) -> float:
    """How much a beats b, in points x100 (positive = a better), for either kind of metric."""
    return 100 * (a - b)  # both stored higher-is-better (ri = 1 - error)


def _entry(r: dict, key: str) -> dict | None:
    """``r[key]``, or for ``rules:<name>`` the scores of that rule set on the same field."""
    if key.startswith("rules:"):
        return r.get("rules", {}).get(key[len("rules:"):])
    return r.get(key)


def mean_best(rs: list[dict], key: str, metric: str) -> float | None:
    vals = [e["best"][metric] for r in rs if (e := _entry(r, key)) is not None and metric in e["best"]]
    return float(np.mean(vals)) if vals else None


def write_report(results: list[dict], out: Path, command: str, threads: int, total_runs: int | None = None,
                 dataset_categories: dict[str, list[str]] | None = None) -> None:
    """Markdown and JSON report of the runs; ``dataset_categories``: every category of each dataset, so that
    the two folds are those of the whole dataset even when only some categories ran (default: those that ran)."""
    groups: dict = defaultdict(list)  # (dataset, track, variant, strength) -> results
    for r in results:
        groups[(r["dataset"], r["track"], r["variant"], r["strength"])].append(r)
    geo: dict = defaultdict(list)  # (dataset, track) -> results with geometry baselines
    for r in results:
        if "kmeans" in r:
            geo[(r["dataset"], r["track"])].append(r)
    lines = [
        "# `crossdistill segment` with SAM-like masks, through the mask emulator",
        "",
        f"Command: `{command}`  ",
        f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, Python "
        f"{platform.python_version()}, torch threads per object: {threads} (objects run side by side)  ",
        f"Date: {_dt.date.today().isoformat()}",
        *([f"", f"**Partial run: {len(results)} of the grid's {total_runs} runs had finished when this report was "
                f"written**; tables hold the finished ones."] if total_runs and len(results) < total_runs else []),
        *_subset_line(results, dataset_categories),
        "",
        "**Mask teacher: the SAM-like mask emulator** (`crossdistill.eval.emulators.EmulatedMaskTeacher`, "
        "benchmarks only; no SAM ran). Per view it gives what SAM's automatic generator gives -- nested, "
        "overlapping, connected class-agnostic masks at every granularity, with scores -- made from each "
        "shape's ground-truth parts (PartNet hierarchy depths and articulated links; each person's PSB "
        "segmentation) and spoiled by a noise model fixed before measuring (its docstring): dropped small "
        "parts, merges of touching parts, splits along shading/depth edges, boundary jitter, spurious blobs. "
        "Strengths: zero 0, low 0.25, medium 0.5, high 1.0.",
        "",
        "Scores x100, best of the five scales per object (each baseline gets the same oracle choice over its "
        "own settings). PartNet-Mobility: class-agnostic part mIoU at the link (articulated) and leaf levels. "
        "PSB (single-surface meshes): against every human segmentation, averaged: Rand index error (lower is "
        "better) / mIoU. Point tracks: 15k points (PartNet's PLYs; sampled from the PSB meshes, seed 0). "
        "`visible ceiling` is a diagnostic, not a method: the ground truth where some view sees it, spread to "
        "unseen points by nearest neighbour; no 2D mask can tell more.",
        "",
    ]
    summary: dict = {"targets": [], "tables": {}, "dataset_categories": dataset_categories or {}}
    cv_lines, adopted = _rules_cv(groups, summary)
    summary["ours_key"] = {k: "rules:none" if a in (None, "none") else f"rules:{a}" for k, a in adopted.items()}
    trained = {k: kind_variant(k) for k in adopted}
    lines += ["`ours` below is the fast preset with the stage-3 rules the cross-validation adopted for SAM-like "
              "masks on each kind of shape, trained as the default trains it there (`rules.SAM_RULES`; "
              "push floor: the push term of Eq. 5 floored at the pull term): " + "; ".join(
                  f"{k}: **{a or 'none'}**" + _training_note(trained[k])
                  for k, a in adopted.items()) + " (sections 'Which stage-3 rules' and 'Pair sampling and the "
              "paper's ablations').", ""]
    lines += _targets(groups, geo, summary)
    for ds in ("partnet", "psb"):
        for track in ("mesh", "points"):
            block = _table(groups, geo, ds, track, summary)
            if block:
                lines += block
    lines += cv_lines
    lines += _pieces_screen(groups, summary)
    lines += _sampler_and_ablations(groups, summary)
    lines += _timing(groups, summary)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    # the runs are the evidence behind every figure: kept whole, on one line, scores to 1e-4 (the report shows
    # 0.1 points), so that the committed file stays small
    write_json(out.with_suffix(".json"), _rounded({"command": command, "summary": summary, "runs": results}),
               indent=None)


def _rounded(obj, digits: int = 4):
    """``obj`` (nested dicts / lists) with every float rounded to ``digits`` decimals."""
    if isinstance(obj, float):
        return round(obj, digits)
    if isinstance(obj, dict):
        return {k: _rounded(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_rounded(v, digits) for v in obj]
    return obj


def _subset_line(results: list[dict], dataset_categories: dict[str, list[str]] | None) -> list[str]:
    """A warning line where only some of a dataset's categories ran (a screen): its targets are not the grid's."""
    out = []
    for ds, cats in sorted((dataset_categories or {}).items()):
        ran = sorted({r["category"] for r in results if r["dataset"] == ds})
        if ran and len(ran) < len(cats):
            out.append(f"{ds}: {len(ran)} of {len(cats)} categories ({', '.join(ran)})")
    if not out:
        return []
    return ["", "**A screen on some categories only** (" + "; ".join(out) + "): every figure below, the target "
            "lines included, is over these objects only; the grid's figures are in `segment_emulated.md`."]


def shape_kind(dataset: str, track: str) -> str:
    """The shape kind (``rules.SHAPE_KINDS``) of a track: PSB meshes are closed single surfaces,
    PartNet-Mobility meshes are assembled from pieces."""
    return "points" if track == "points" else "closed_surface" if dataset == "psb" else "pieces"


def kind_variant(kind: str) -> str:
    """The bench variant that trains the field as the default does for SAM-like masks on a kind of shape
    (``rules.SAM_RULES``): ``push_floor_balance_*`` where that kind's rules balance the pixels' groups (with
    the push floor), ``push_floor`` where they floor the push term only, else ``fast``."""
    from crossdistill.methods.sampart3d.rules import SAM_RULES

    rules = SAM_RULES[kind]
    if rules.group_balance > 0:
        if (rules.push_floor, rules.group_balance) not in BALANCE_VARIANTS:
            raise ValueError(f"no bench variant trains as SAM_RULES[{kind!r}] does: {rules}")
        return BALANCE_VARIANTS[(rules.push_floor, rules.group_balance)]
    return "push_floor" if rules.push_floor else "fast"


def shipped_variant(dataset: str, track: str, groups: dict | None = None, strength: str | None = None) -> str:
    """The bench variant that trains the field as the default does for SAM-like masks on this track's kind of
    shape (``rules.SAM_RULES``): ``push_floor`` where that kind's rules floor the push term, else ``fast``.
    With ``groups`` and ``strength``, falls back to ``fast`` where the shipped variant was not run."""
    v = kind_variant(shape_kind(dataset, track))
    if groups is not None and strength is not None and not groups.get((dataset, track, v, strength)):
        return "fast"
    return v


def ours_key_for(summary: dict, dataset: str, track: str) -> str:
    """The result key of `ours` on a track: the rule set adopted for its shape kind."""
    return summary.get("ours_key", {}).get(shape_kind(dataset, track), "ours")


def _targets(groups, geo, summary) -> list[str]:
    lines = ["## Targets", "",
             "One draw of everything random (seed 0). The medium-strength rows over three draws of the whole "
             "measurement are in `segment_emulated_seeds.md`, the figure of record where a margin is smaller than "
             "the draws' spread.", ""]
    for ds in ("partnet", "psb"):
        for track in ("mesh", "points"):
            ours_key = ours_key_for(summary, ds, track)
            rs = groups.get((ds, track, shipped_variant(ds, track, groups, "zero"), "zero"), [])
            if rs:
                for m in METRICS[ds]:
                    if m == "ri":
                        continue
                    v = mean_best(rs, ours_key, m)
                    ok = v is not None and v >= 0.90
                    ceil = float(np.mean([r["visible_ceiling"].get(m, np.nan) for r in rs]))
                    lines.append(f"- strength zero, {ds} {track}, {m}: ours{_as(ds, track, groups, 'zero')} "
                                 f"{fmt(ds, m, v)} (target >= 90; visible "
                                 f"ceiling {fmt(ds, m, ceil)}): **{'met' if ok else 'MISSED'}**")
                    summary["targets"].append({"what": f"zero {ds} {track} {m}", "value": v, "met": ok})
            rs = groups.get((ds, track, shipped_variant(ds, track, groups, "medium"), "medium"), [])
            if not rs:
                continue
            for m in METRICS[ds]:
                ours, lift = mean_best(rs, ours_key, m), mean_best(rs, "lift", m)
                geos = [(k, mean_best(geo[(ds, track)], k, m)) for k in GEOMETRY[track]]
                geos = [(k, v) for k, v in geos if v is not None and k != "one_segment"]
                if ours is None or lift is None or not geos:
                    continue
                gk, gv = max(geos, key=lambda kv: kv[1])
                d_lift, d_geo = better(m, ours, lift), better(m, ours, gv)
                ok = d_lift >= 5 and d_geo >= 10
                name = "RI error" if m == "ri" else m
                lines.append(f"- strength medium, {ds} {track}, {name}: ours{_as(ds, track, groups, 'medium')} "
                             f"{fmt(ds, m, ours)}, lifting "
                             f"{fmt(ds, m, lift)} ({d_lift:+.1f}, target >= +5), best geometric ({GEO_NAMES[gk]}) "
                             f"{fmt(ds, m, gv)} ({d_geo:+.1f}, target >= +10): **{'met' if ok else 'MISSED'}**")
                summary["targets"].append({"what": f"medium {ds} {track} {m}", "ours": ours, "lift": lift,
                                           "geometry": gv, "met": ok})
    return lines + [""]


def _training_note(variant: str) -> str:
    """`` + push floor`` (and group balance) where a kind of shape's field trains beyond the fast preset."""
    if variant in BALANCE_OF:
        floor, a = BALANCE_OF[variant]
        return (" + push floor" if floor else "") + f" + group-balanced pixels (a = {a:g})"
    return " + push floor" if variant == "push_floor" else ""


def _as(ds: str, track: str, groups: dict, strength: str) -> str:
    """`` (push floor)`` where `ours` on a track is not the plain fast-preset field."""
    v = shipped_variant(ds, track, groups, strength)
    if v in BALANCE_OF:
        floor, a = BALANCE_OF[v]
        return f" ({'push floor, ' if floor else ''}group-balanced pixels a = {a:g})"
    return "" if v == "fast" else " (push floor)" if v == "push_floor" else f" ({v})"


def _table(groups, geo, ds, track, summary) -> list[str]:
    present = [s for s in STRENGTH_ORDER if (ds, track, "fast", s) in groups]
    if not present:
        return []
    n = len(groups[(ds, track, "fast", present[0])])
    cats = sorted({r["category"] for r in groups[(ds, track, "fast", present[0])]})
    lines = [f"## {ds} {track} track ({n} objects: {', '.join(cats)}); {label(ds)}", "",
             "| method | " + " | ".join(present) + " |", "|---" * (len(present) + 1) + "|"]
    table: dict = {}

    def row(name: str, key: str, variant: str) -> None:
        cells = []
        for s in present:
            rs = groups.get((ds, track, variant, s), [])
            vals = [mean_best(rs, key, m) for m in METRICS[ds]] if rs else [None, None]
            cells.append(" / ".join(fmt(ds, m, v) for m, v in zip(METRICS[ds], vals)) if rs else "")
            table.setdefault(name, {})[s] = vals
        ran = {r["name"] for s in present for r in groups.get((ds, track, variant, s), [])}
        note = f" ({len(ran)} of the {n} objects)" if ran and len(ran) < n else ""
        lines.append(f"| {name}{note} | " + " | ".join(cells) + " |")

    ours_key = ours_key_for(summary, ds, track)
    shipped = shipped_variant(ds, track)
    if shipped != "fast":
        row(f"**ours as shipped**: {VARIANT_NAMES[shipped]}, adopted rules ({ours_key[6:] if ours_key != 'ours' else 'none'})",
            ours_key, shipped)
    if ours_key != "ours":
        row(f"ours, fast preset, adopted rules ({ours_key[6:]})", ours_key, "fast")
    for v in ("fast", "push_floor", "push_floor_lr", "equal_terms", "as_released", "shared", "paper_cpu", "no_skip"):
        row(VARIANT_NAMES[v] + (" (no rule)" if v == "fast" else ""), "ours", v)
        if v != "fast" and ours_key.startswith("rules:") and ours_key != "rules:none" and any(
                _entry(r, ours_key) for s in present for r in groups.get((ds, track, v, s), [])):
            row(VARIANT_NAMES[v] + f", adopted rules ({ours_key[6:]})", ours_key, v)
    row("direct lifting of the same masks (SAM3D-style), at the same 5 scales", "lift", "fast")
    cells = []
    for s in present:
        rs = groups[(ds, track, "fast", s)]
        vals = [float(np.mean([r["visible_ceiling"].get(m, np.nan) for r in rs])) for m in METRICS[ds]]
        cells.append(" / ".join(fmt(ds, m, v) for m, v in zip(METRICS[ds], vals)))
    lines.append("| visible ceiling (diagnostic) | " + " | ".join(cells) + " |")
    lines += ["", f"Geometry only (no masks; same at every strength; {label(ds)}): " + "; ".join(
        f"{GEO_NAMES[k]} " + " / ".join(fmt(ds, m, mean_best(geo[(ds, track)], k, m)) for m in METRICS[ds])
        for k in GEOMETRY[track] if mean_best(geo[(ds, track)], k, METRICS[ds][0]) is not None), ""]
    med = groups.get((ds, track, "fast", "medium"), [])
    if med:
        ours_med = groups.get((ds, track, shipped_variant(ds, track, groups, "medium"), "medium"), med)
        lines += [f"Per category at medium strength (ours{_as(ds, track, groups, 'medium')} / lifting):", "",
                  "| category | n | ours | lifting |", "|---|---|---|---|"]
        for cat in cats:
            rs = [r for r in ours_med if r["category"] == cat]
            o = " / ".join(fmt(ds, m, mean_best(rs, ours_key, m)) for m in METRICS[ds])
            li = " / ".join(fmt(ds, m, mean_best([r for r in med if r["category"] == cat], "lift", m))
                            for m in METRICS[ds])
            lines.append(f"| {cat} | {len(rs)} | {o} | {li} |")
        lines.append("")
    summary["tables"][f"{ds}_{track}"] = table
    return lines


def _folds_of(summary: dict, dataset: str, present: list[str]) -> tuple[list[str], list[str]]:
    """The folds of a dataset: from all its categories where the report knows them, else from ``present``."""
    a, b = folds(summary.get("dataset_categories", {}).get(dataset) or present)
    return [c for c in a if c in present], [c for c in b if c in present]


def folds(categories: list[str]) -> tuple[list[str], list[str]]:
    """The two category folds of the cross-validation: alternate categories in sorted order."""
    cats = sorted(categories)
    return cats[0::2], cats[1::2]


def _gain(rs: list[dict], name: str, base: str = "none") -> float | None:
    """Mean gain (points x100) of a rule set over ``base``, over objects and metrics."""
    vals = []
    for r in rs:
        rules = r.get("rules", {})
        if name in rules and base in rules:
            vals += [100 * (rules[name]["best"][m] - rules[base]["best"][m]) for m in rules[name]["best"]]
    return float(np.mean(vals)) if vals else None


def _rules_cv(groups, summary) -> tuple[list[str], dict[str, str | None]]:
    lines = ["## Which stage-3 rules SAM-like masks get (category-level cross-validation, medium strength)", "",
             "Each candidate (a rule of `methods/sampart3d/rules.py`, chosen for the offline render-cue teacher on "
             "PartNet-Mobility, alone or with HDBSCAN's epsilon at 0 as the offline teacher has it) is scored on "
             "the same trained fields as no rule. The choice is made per kind of shape (meshes assembled from "
             "pieces: PartNet-Mobility; closed single surfaces: PSB meshes; point clouds: both point tracks), as "
             "the rules act differently on each. Categories are split into two folds (alternate categories in "
             "sorted order, per dataset). The candidate with the largest gain on fold A is adopted if it also "
             "gains on fold B, the categories that did not choose it; none is adopted when no candidate gains on "
             "fold A. Gain = mean over objects and metrics of the best-of-scales difference (points x100; "
             "Rand index and mIoU both higher-is-better).", ""]
    rs_all = [r for (ds, track, v, s), rs in groups.items() if v == "fast" and s == "medium" for r in rs]
    if not rs_all or not any("rules" in r for r in rs_all):
        return lines + ["(no rule runs)", ""], {}
    names = [n for n in rs_all[0].get("rules", {}) if n != "none" and n not in PIECES_SCREEN]
    by_ds = defaultdict(list)
    for r in rs_all:
        by_ds[r["dataset"]].append(r)
    fold_of: dict[tuple[str, str], str] = {}
    desc = []
    for ds, rs in sorted(by_ds.items()):
        a, b = _folds_of(summary, ds, sorted({r["category"] for r in rs}))
        fold_of.update({(ds, c): "A" for c in a})
        fold_of.update({(ds, c): "B" for c in b})
        desc.append(f"{ds}: A = {', '.join(a)}; B = {', '.join(b)}")
    lines += ["Folds: " + ". ".join(desc) + ".", "", "| shape kind | candidate | gain on fold A | gain on fold B |",
              "|---|---|---|---|"]
    summary["rules_cv"], adopted_by_kind = {}, {}
    tail = []
    for kind in ("pieces", "closed_surface", "points"):
        rs_kind = [r for r in rs_all if shape_kind(r["dataset"], r["track"]) == kind]
        if not rs_kind:
            continue
        cv = {}
        for n in names:
            ga = _gain([r for r in rs_kind if fold_of[(r["dataset"], r["category"])] == "A"], n)
            gb = _gain([r for r in rs_kind if fold_of[(r["dataset"], r["category"])] == "B"], n)
            cv[n] = {"fold_a": ga, "fold_b": gb}
            lines.append(f"| {kind} | {n} | {ga:+.2f} | {gb:+.2f} |" if ga is not None and gb is not None
                         else f"| {kind} | {n} | - | - |")
        summary["rules_cv"][kind] = cv
        valid = {n: v for n, v in cv.items() if v["fold_a"] is not None and v["fold_b"] is not None}
        best = max(valid, key=lambda n: valid[n]["fold_a"]) if valid else None
        adopted = best if best and valid[best]["fold_a"] > 0 and valid[best]["fold_b"] > 0 else None
        adopted_by_kind[kind] = adopted
        tail.append(f"- {kind}: best on fold A {best} ({valid[best]['fold_a']:+.2f}); adopted: "
                    f"**{adopted or 'none (no rule)'}**" if best else f"- {kind}: no candidate scored")
    summary["rules_adopted"] = adopted_by_kind
    return lines + [""] + tail + [""], adopted_by_kind


def _pieces_screen(groups, summary) -> list[str]:
    """The pieces screen: the shipped rules of meshes of pieces with parts kept inside pieces at fewer scales,
    against the shipped rules on the same fields; fold A chooses (medium strength), adopted if fold B gains too."""
    shipped = "all_render_rules"
    out, table = [], {}
    for strength in ("medium", "zero"):
        rs = [r for (ds, track, v, s), rr in groups.items() for r in rr
              if v == "fast" and s == strength and shape_kind(ds, track) == "pieces"
              and all(n in r.get("rules", {}) for n in PIECES_SCREEN)]
        if not rs:
            continue
        a, b = _folds_of(summary, rs[0]["dataset"], sorted({r["category"] for r in rs}))
        for name, until in PIECES_SCREEN.items():
            table[(name, strength)] = (_gain([r for r in rs if r["category"] in a], name, shipped),
                                       _gain([r for r in rs if r["category"] in b], name, shipped), len(rs))
    if not table:
        return []
    out += ["## How long parts stay inside pieces (screen, meshes of pieces)", "",
            f"The shipped rules of meshes of pieces (`{shipped}`) keep parts inside connected pieces at scales below "
            "2.0. Candidates keep them there only below 1.5 or 1.0, scored on the same fields; gain over the shipped "
            "rules (points x100, mean over objects and metrics). Declared before the runs: fold A chooses at medium "
            "strength, adopted only if it gains over the shipped rules on fold B too.", "",
            "| candidate | strength | objects | gain on fold A | gain on fold B |", "|---|---|---|---|---|"]
    for (name, strength), (ga, gb, n) in table.items():
        out.append(f"| {name} (until {PIECES_SCREEN[name]:g}) | {strength} | {n} | "
                   + " | ".join("-" if g is None else f"{g:+.2f}" for g in (ga, gb)) + " |")
    medium = {n: v for (n, s), v in table.items() if s == "medium" and v[0] is not None and v[1] is not None}
    if medium:
        best = max(medium, key=lambda n: medium[n][0])
        ok = medium[best][0] > 0 and medium[best][1] > 0
        summary["pieces_screen"] = {"best_on_a": best, "adopted": best if ok else None}
        out += ["", f"- best on fold A: {best} ({medium[best][0]:+.2f}); adopted: **{best if ok else 'no'}**"]
    return out + [""]


def _fold_differences(groups, summary, ds: str, track: str, variant: str, strength: str,
                      against: str = "fast") -> list[tuple]:
    """Per fold: (dataset, track, fold, n, difference with no rule, difference with the shipped rules or None)
    of ``variant`` against ``against`` (the fast preset) at ``strength``, mean over objects and metrics
    (points x100)."""
    base = {r["name"]: r for r in groups.get((ds, track, against, strength), [])}
    other = {r["name"]: r for r in groups.get((ds, track, variant, strength), [])}
    common = sorted(set(base) & set(other))
    if not common:
        return []
    a, b = _folds_of(summary, ds, sorted({base[n]["category"] for n in common}))
    key = ours_key_for(summary, ds, track)
    rows = []
    for fold, cats in (("A", a), ("B", b)):
        names = [n for n in common if base[n]["category"] in cats]
        if not names:
            continue
        d = np.mean([100 * (other[n]["ours"]["best"][m] - base[n]["ours"]["best"][m])
                     for n in names for m in METRICS[ds]])
        # the same difference with the stage-3 rules the track's kind of shape ships
        with_rules = [100 * (_entry(other[n], key)["best"][m] - _entry(base[n], key)["best"][m])
                      for n in names for m in METRICS[ds]
                      if _entry(other[n], key) is not None and _entry(base[n], key) is not None]
        dr = float(np.mean(with_rules)) if key.startswith("rules:") and with_rules else None
        rows.append((ds, track, fold, len(names), float(d), dr))
    return rows


def _sampler_and_ablations(groups, summary) -> list[str]:
    lines = ["## Pair sampling and the paper's ablations (medium strength)", ""]
    out = {}
    for ds in ("partnet", "psb"):
        for track in ("mesh", "points"):
            base = {r["name"]: r for r in groups.get((ds, track, "fast", "medium"), [])}
            if not base:
                continue
            for v in ("push_floor", "equal_terms", "as_released", "shared", "paper_cpu", "no_skip"):
                out.setdefault(v, []).extend(_fold_differences(groups, summary, ds, track, v, "medium"))
            out.setdefault("push_floor_zero", []).extend(
                _fold_differences(groups, summary, ds, track, "push_floor", "zero"))
            for s in ("zero", "medium"):
                out.setdefault(f"push_floor_lr_{s}", []).extend(
                    _fold_differences(groups, summary, ds, track, "push_floor_lr", s, against="push_floor"))
                for (floor, _), bv in BALANCE_VARIANTS.items():
                    out.setdefault(f"{bv}_{s}", []).extend(_fold_differences(
                        groups, summary, ds, track, bv, s, against="push_floor" if floor else "fast"))
            # mixed scales (best of the five per object) against the best single scale over objects
            rs = list(base.values())
            for m in METRICS[ds]:
                per_scale = np.array([[s[m] for s in r["ours"]["per_scale"]] for r in rs])
                single = per_scale.mean(0)
                mixed = per_scale.max(1).mean()
                out.setdefault("mixed_scales", []).append((ds, track, m, float(mixed), float(single.max()),
                                                           int(single.argmax())))
    labels = {"push_floor": "push term floored at the pull term - by their share of the pairs (fast preset)",
              "push_floor_zero": "the same at strength zero (perfect masks)",
              "push_floor_lr_zero": "higher peak learning rate - the fast preset's, both with the push floor, "
                                    "strength zero",
              "push_floor_lr_medium": "the same at medium strength",
              **{f"{bv}_{s}": f"group-balanced pixels, a = {a:g} - uniform pixels, both "
                              f"{'with' if floor else 'without'} the push floor, strength {s}"
                 for (floor, a), bv in BALANCE_VARIANTS.items() for s in ("zero", "medium")},
              "equal_terms": "pull and push weighted equally - by their share of the pairs (fast preset)",
              "as_released": "released training choices (hierarchy term, uniform pixels) - fast preset's",
              "shared": "other pair sampler - fast preset's", "paper_cpu": "paper method at CPU budget - fast",
              "no_skip": "without long skip - with"}
    balance = [f"{bv}_{s}" for s in ("medium", "zero") for bv in BALANCE_VARIANTS.values()]
    for v in ("push_floor", "push_floor_zero", "push_floor_lr_zero", "push_floor_lr_medium", *balance,
              "equal_terms", "as_released", "shared", "paper_cpu", "no_skip"):
        if out.get(v):
            lines += [f"{labels[v]} (points x100, mean over objects and metrics; with no rule, and with the "
                      "stage-3 rules the track's kind of shape ships):", "",
                      "| dataset | track | fold | n | difference, no rule | difference, shipped rules |",
                      "|---|---|---|---|---|---|"]
            lines += [f"| {ds} | {t} | {f} | {n} | {d:+.2f} | " + ("-" if dr is None else f"{dr:+.2f}") + " |"
                      for ds, t, f, n, d, dr in out[v]]
            lines.append("")
    if "mixed_scales" in out:
        lines += ["Mixed scales (best of the five scales per object) against the best single scale for all "
                  "objects (ours, fast):", "", "| dataset | track | metric | mixed | best single (scale index) |",
                  "|---|---|---|---|---|"]
        for ds, t, m, mixed, single, idx in out["mixed_scales"]:
            lines.append(f"| {ds} | {t} | {'RI error' if m == 'ri' else m} | {fmt(ds, m, mixed)} | "
                         f"{fmt(ds, m, single)} ({idx}) |")
        lines.append("")
    summary["ablations"] = out
    return lines


def _timing(groups, summary) -> list[str]:
    lines = ["## Seconds per object", "", "Wall time of segment_shape per object (this run's conditions: "
             "objects side by side, one torch thread each; `docs/results/segment_speed.md` measures the speed "
             "target on a quiet machine).", "", "| variant | runs | median s | p90 s | peak RSS MiB (max) |",
             "|---|---|---|---|---|"]
    by_v = defaultdict(list)
    for (ds, track, v, s), rs in groups.items():
        by_v[v] += rs
    summary["seconds"] = {}
    for v, rs in sorted(by_v.items()):
        secs = np.array([r["seconds"] for r in rs])
        rss = max(r.get("peak_rss_mib", 0) for r in rs)
        summary["seconds"][v] = float(np.median(secs))
        lines.append(f"| {VARIANT_NAMES[v]} | {len(rs)} | {np.median(secs):.1f} | {np.percentile(secs, 90):.1f} | "
                     f"{rss:.0f} |")
    return lines + [""]
