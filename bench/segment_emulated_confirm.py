"""A variant against its baseline on objects outside the committed mask-emulator grid (a confirmation).

Reads the cached runs of ``bench/segment_emulated.py`` (run first with ``--per-category 2
--psb-per-category 4``, say) and compares ``--variant`` with ``--against`` on the objects that the
committed report (``docs/results/segment_emulated.json``) does not hold: per object, per fold, and
pooled over both datasets (mean over objects and metrics of the best-of-scales difference, points
x100; Rand index as 1 - error, so higher is better for every metric). Benchmarks only: the masks are
the SAM-like mask EMULATOR's.

    python bench/segment_emulated_confirm.py --variant push_floor_balance_half --against push_floor \
        --track points --strength medium --out docs/results/segment_emulated_balance_confirm.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

METRICS = {"partnet": ("link", "leaf"), "psb": ("ri", "miou")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", required=True)
    ap.add_argument("--against", required=True)
    ap.add_argument("--track", default="points", choices=["mesh", "points"])
    ap.add_argument("--strength", default="medium")
    ap.add_argument("--cache", type=Path, default=REPO / "bench" / "_cache" / "segment_emulated")
    ap.add_argument("--grid", type=Path, default=REPO / "docs" / "results" / "segment_emulated.json")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if not args.grid.is_file():
        print(f"error: {args.grid} not found (the committed grid tells which objects are new)", file=sys.stderr)
        return 2
    grid = json.loads(args.grid.read_text())
    seen = {(r["dataset"], r["name"]) for r in grid["runs"] if r["track"] == args.track}
    from segment_emulated_report import folds as report_folds

    folds = {ds: set(report_folds(grid["summary"]["dataset_categories"][ds])[0]) for ds in METRICS}
    rows, pooled = [], {}
    for ds in METRICS:
        for f in sorted((args.cache / ds / args.track / args.variant / args.strength).glob("*.json")):
            r = json.loads(f.read_text())
            base = args.cache / ds / args.track / args.against / args.strength / f.name
            if (ds, r["name"]) in seen or not base.is_file():
                continue
            r0 = json.loads(base.read_text())
            fold = "A" if r["category"] in folds[ds] else "B"
            d = [100 * (r["ours"]["best"][m] - r0["ours"]["best"][m]) for m in METRICS[ds]]
            rows.append((ds, r["name"], fold, d))
            for key in ((ds, fold), ("pooled", fold)):
                pooled.setdefault(key, []).extend(d)
    if not rows:
        print(f"error: no cached {args.variant} / {args.against} pair at {args.strength} on the {args.track} track "
              f"outside the grid under {args.cache}", file=sys.stderr)
        return 2
    lines = [f"# Confirmation on new objects: `{args.variant}` against `{args.against}`", "",
             f"Command: `python bench/segment_emulated_confirm.py {' '.join(sys.argv[1:])}`  ",
             f"Objects: those of `bench/_cache/segment_emulated` on the {args.track} track at strength "
             f"{args.strength} that `{args.grid.name}` does not hold ({len(rows)}). **Masks: the SAM-like mask "
             "EMULATOR** (benchmarks only). Differences: best of the five scales, points x100, Rand index as "
             "1 - error (higher is better for every metric).", "",
             "| dataset | object | fold | difference per metric |", "|---|---|---|---|"]
    lines += [f"| {ds} | {n} | {fo} | " + " / ".join(f"{x:+.1f}" for x in d) + " |" for ds, n, fo, d in rows]
    lines += ["", "| group | fold | objects | mean difference |", "|---|---|---|---|"]
    lines += [f"| {g} | {fo} | {len(v) // 2} | {np.mean(v):+.2f} |" for (g, fo), v in sorted(pooled.items())]
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(args.out)  # atomic: a reader never sees half a report
    print(f"wrote {args.out} ({len(rows)} objects)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
