"""Partial report: training-term variants of the grouping field on the point tracks, from the cache of
``bench/segment_emulated.py`` (mask EMULATOR, benchmarks only) -> ``docs/results/segment_emulated_zero.md``.

Reads the cached runs of the variants ``fast`` (the fast preset: Eq. 5's terms weighted by their share
of the pairs, as the released code), ``push_floor`` (the push term never weighted below the pull term)
and ``equal_terms`` (both weighted 1) on the point tracks at strengths zero and medium, and tabulates
per object and per fold (fold A chose, fold B reports; the folds of ``segment_emulated_report.folds``).
Each variant is scored with no stage-3 rule (the point-cloud default). The runs themselves are made by

    python bench/segment_emulated.py --tracks points --variants push_floor --strengths zero medium \\
        --full-grid --workers 1 --categories <fold A or B>

    python bench/segment_emulated_zero_report.py
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

VARIANTS = ("fast", "push_floor", "equal_terms")
NAMES = {"fast": "fast preset (pair-share weights, as released)", "push_floor": "push floor",
         "equal_terms": "equal weights"}


def load(cache: Path) -> dict:
    """(dataset, strength, variant) -> {object name: run dict} of the point tracks."""
    out: dict = {}
    for f in sorted(cache.glob("*/points/*/*/*.json")):
        ds, _, variant, strength = f.parts[-5:-1]
        if variant in VARIANTS:
            r = json.loads(f.read_text())
            out.setdefault((ds, strength, variant), {})[r["name"]] = r
    return out


def metrics(ds: str) -> tuple[str, ...]:
    return ("link", "leaf") if ds == "partnet" else ("ri", "miou")


def fmt(ds: str, m: str, v: float | None) -> str:
    if v is None:
        return "-"
    return f"{100 * (1 - v):.1f}" if m == "ri" else f"{100 * v:.1f}"


def write(cache: Path, out: Path, command: str) -> None:
    from segment_emulated_report import folds

    runs = load(cache)
    lines = [
        "# Point tracks at strength zero (and medium): the weights of Eq. 5's terms (partial rerun)",
        "",
        f"Command: `{command}` (runs: `python bench/segment_emulated.py --tracks points --variants push_floor "
        "--strengths zero medium --full-grid --workers 1 --categories ...`, one fold at a time)  ",
        f"Machine: 2 shared cores (load 4-8 from other work during the runs), {platform.machine()}, Python "
        f"{platform.python_version()}, 1 torch thread  ",
        f"Date: {date.today().isoformat()}",
        "",
        "**Mask teacher: the SAM-like mask EMULATOR** (`crossdistill.eval.emulators.EmulatedMaskTeacher`, "
        "benchmarks only; no SAM ran). Fast preset, no stage-3 rule (the point-cloud default), best of the "
        "five scales per object, x100. PartNet-Mobility points: class-agnostic mIoU link / leaf. PSB points: "
        "Rand index error (lower is better) / mIoU, averaged over the human segmentations. Variants of the "
        "grouping loss (Eq. 5, `GroupingTrainConfig`): "
        + "; ".join(f"`{v}`: {NAMES[v]}" for v in VARIANTS) + ". A dash: not run.",
        "",
        "How the default was chosen: on fold A at strength zero, the variant with the larger gain on PartNet "
        "points that does not lower the PSB point track (whose medium-strength targets are met); then reported "
        "on fold B. The push floor is the default of SAM-like masks on point clouds "
        "(`methods/sampart3d/rules.py`, `SAM_RULES['points']`).",
        "",
        "## Targets (strength zero, best-of-scales mIoU >= 90 at both label levels, point tracks)",
        "",
    ]
    for ds in ("partnet", "psb"):
        d = runs.get((ds, "zero", "push_floor"), {})
        if d:
            ms = ("link", "leaf") if ds == "partnet" else ("miou",)
            vals = {m: 100 * np.mean([r["ours"]["best"][m] for r in d.values()]) for m in ms}
            ok = all(v >= 90 for v in vals.values())
            lines.append(f"- {ds} points, push floor, {len(d)} objects: "
                         + " / ".join(f"{m} {v:.1f}" for m, v in vals.items())
                         + f": **{'met' if ok else 'MISSED'}**")
    lines += ["", "Medium strength (ours >= lifting + 5 and >= the best geometric baseline + 10; geometric baselines "
              "from the fast runs at strength zero, the same at every strength; PSB: RI error and mIoU):", ""]
    for ds in ("partnet", "psb"):
        d = runs.get((ds, "medium", "push_floor"), {})
        geo_runs = runs.get((ds, "zero", "fast"), {})
        if not d or not geo_runs:
            continue
        for m in (("link", "leaf") if ds == "partnet" else ("ri", "miou")):
            ours = np.mean([r["ours"]["best"][m] for r in d.values()])
            lift = np.mean([r["lift"]["best"][m] for r in d.values()])
            geos = {g: np.mean([r[g]["best"][m] for r in geo_runs.values() if g in r])
                    for g in ("region_grow", "kmeans") if all(g in r for r in geo_runs.values())}
            g_name, g_val = max(geos.items(), key=lambda kv: kv[1])
            ok = (ours - lift) * 100 >= 5 and (ours - g_val) * 100 >= 10
            lines.append(f"- {ds} points, {m}, push floor, {len(d)} objects: ours {fmt(ds, m, ours)}, lifting "
                         f"{fmt(ds, m, lift)} ({100 * (ours - lift):+.1f}), best geometric ({g_name}) "
                         f"{fmt(ds, m, g_val)} ({100 * (ours - g_val):+.1f}): **{'met' if ok else 'MISSED'}**")
    lines.append("")
    for ds in ("partnet", "psb"):
        cats = sorted({r["category"] for k, d in runs.items() if k[0] == ds for r in d.values()})
        if not cats:
            continue
        fa, fb = folds(cats)
        lines += [f"## {ds} points", "", f"Folds: A = {', '.join(fa)}; B = {', '.join(fb)}.", ""]
        for strength in ("zero", "medium"):
            names = sorted({n for k, d in runs.items() if k[:2] == (ds, strength) for n in d})
            if not names:
                continue
            ms = metrics(ds)
            head = "| object | fold | " + " | ".join(NAMES[v] for v in VARIANTS) + " | lifting | visible ceiling |"
            lines += [f"### strength {strength}", "", head, "|" + "---|" * (len(VARIANTS) + 4)]
            for n in names:
                cat = n.split("/")[0]
                cells = []
                for v in VARIANTS:
                    r = runs.get((ds, strength, v), {}).get(n)
                    cells.append(" / ".join(fmt(ds, m, r["ours"]["best"][m]) for m in ms) if r else "-")
                base = runs.get((ds, strength, "fast"), {}).get(n) or next(
                    (runs[(ds, strength, v)][n] for v in VARIANTS if n in runs.get((ds, strength, v), {})))
                lift = " / ".join(fmt(ds, m, base["lift"]["best"][m]) for m in ms)
                ceil = base.get("visible_ceiling", {})
                ceil_s = " / ".join(fmt(ds, m, ceil.get(m)) for m in ms if m in ceil) if ds == "partnet" else \
                    " / ".join(fmt(ds, m, ceil.get(m)) for m in ms)
                lines.append(f"| {n} | {'A' if cat in fa else 'B'} | " + " | ".join(cells) + f" | {lift} | {ceil_s} |")
            means: list[str] = []
            for fold, fc in (("A", fa), ("B", fb), ("all", fa + fb)):
                for v in VARIANTS[1:]:
                    common = [n for n in names if n.split("/")[0] in fc
                              and all(n in runs.get((ds, strength, x), {}) for x in ("fast", v))]
                    if not common:
                        continue
                    vals = [np.mean([runs[(ds, strength, v)][n]["ours"]["best"][m] for n in common]) for m in ms]
                    base = [np.mean([runs[(ds, strength, "fast")][n]["ours"]["best"][m] for n in common]) for m in ms]
                    d = [(x - b) * 100 for x, b in zip(vals, base)]  # ri and miou: higher is better
                    means.append(f"| {fold} | {NAMES[v]} | {len(common)} | "
                                 + " / ".join(fmt(ds, m, x) for m, x in zip(ms, base)) + " | "
                                 + " / ".join(fmt(ds, m, x) for m, x in zip(ms, vals))
                                 + " (" + " / ".join(f"{x:+.1f}" for x in d) + ") |")
            if means:
                lines += ["", "Fold means, each variant against the fast preset on the objects both ran on:", "",
                          "| fold | variant | n | fast preset | variant (difference) |",
                          "|---|---|---|---|---|"] + means
            lines.append("")
    lines += ["(For PSB the difference in RI error is given as a gain: positive = lower error.)", ""]
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default=str(REPO / "bench" / "_cache" / "segment_emulated"))
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "segment_emulated_zero.md"))
    args = ap.parse_args()
    command = ("python bench/segment_emulated_zero_report.py " + " ".join(sys.argv[1:])).strip()
    write(Path(args.cache), Path(args.out), command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
