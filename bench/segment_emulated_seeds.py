"""Seed replicates of the mask-emulator grid's medium-strength targets (benchmarks only).

The grid (``bench/segment_emulated.py``, ``docs/results/segment_emulated.md``) is one draw of
everything random in the measurement: the sampled points, the cameras, the emulator's noise,
the pixels each training step draws, the weights and the clustering. Single objects move by
10-30 points between draws, so a mean over 13-14 objects moves by about a point, as much as
some targets' margins. This report reads replicates of the whole measurement (``--seed N`` of
``bench/segment_emulated.py``; seed 0 is the grid) for the variant and rules each kind of shape
ships with, and judges every medium-strength target of issue #22 on the mean over the seeds:
ours minus lifting of the same seed's masks, and ours minus the best geometric baseline (which
sees no mask and no seed). The masks are the SAM-like mask EMULATOR's, never SAM's.

    python bench/segment_emulated.py --datasets partnet psb --tracks points \
        --variants push_floor_balance_half --strengths medium --seed 1     # (and the mesh tracks)
    python bench/segment_emulated_seeds.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

TRACKS = (("partnet", "mesh"), ("partnet", "points"), ("psb", "mesh"), ("psb", "points"))


def load_runs(cache: Path, dataset: str, track: str, variant: str, strength: str, seed: int) -> dict[str, dict]:
    """name -> cached run of one (dataset, track, variant, strength, seed)."""
    from segment_emulated_report import seed_folder

    folder = cache / dataset / track / variant / seed_folder(strength, seed)
    return {(r := json.loads(f.read_text()))["name"]: r for f in sorted(folder.glob("*.json"))}


def track_rows(cache: Path, grid: dict, dataset: str, track: str, seeds: list[int], strength: str) -> dict | None:
    """Per seed and metric: ours, lifting and the best geometric baseline (means over the objects that every
    seed has), and the differences the targets read."""
    from segment_emulated_report import (GEOMETRY, METRICS, _entry, kind_variant, ours_key_for, shape_kind)

    variant = kind_variant(shape_kind(dataset, track))
    key = ours_key_for(grid["summary"], dataset, track)
    runs = {s: load_runs(cache, dataset, track, variant, strength, s) for s in seeds}
    names = sorted(set.intersection(*(set(r) for r in runs.values()))) if runs else []
    geo_runs = [r for r in grid["runs"] if r["dataset"] == dataset and r["track"] == track and "kmeans" in r
                and r["name"] in names]
    if not names or len(geo_runs) != len(names):
        return None
    out: dict = {"variant": variant, "ours_key": key, "objects": names, "metrics": {}}
    for m in METRICS[dataset]:
        geos = {g: float(np.mean([r[g]["best"][m] for r in geo_runs])) for g in GEOMETRY[track]
                if g != "one_segment" and all(g in r for r in geo_runs)}
        gk = max(geos, key=geos.get)
        per_seed = []
        for s in seeds:
            ours = float(np.mean([_entry(runs[s][n], key)["best"][m] for n in names]))
            lift = float(np.mean([runs[s][n]["lift"]["best"][m] for n in names]))
            per_seed.append({"seed": s, "ours": ours, "lift": lift, "d_lift": 100 * (ours - lift),
                             "d_geo": 100 * (ours - geos[gk])})
        d_lift = [p["d_lift"] for p in per_seed]
        d_geo = [p["d_geo"] for p in per_seed]
        out["metrics"][m] = {"per_seed": per_seed, "geometry": gk, "geometry_value": geos[gk],
                             "d_lift_mean": float(np.mean(d_lift)), "d_lift_sd": float(np.std(d_lift, ddof=1)),
                             "d_geo_mean": float(np.mean(d_geo)), "d_geo_sd": float(np.std(d_geo, ddof=1)),
                             "met": bool(np.mean(d_lift) >= 5 and np.mean(d_geo) >= 10)}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--strength", default="medium")
    ap.add_argument("--cache", type=Path, default=REPO / "bench" / "_cache" / "segment_emulated")
    ap.add_argument("--grid", type=Path, default=REPO / "docs" / "results" / "segment_emulated.json")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "results" / "segment_emulated_seeds")
    args = ap.parse_args()
    if len(args.seeds) < 2:
        print("error: give at least two seeds (a spread needs two draws)", file=sys.stderr)
        return 2
    if not args.grid.is_file():
        print(f"error: {args.grid} not found (the grid gives the rules adopted per kind and the geometric "
              "baselines)", file=sys.stderr)
        return 2
    from crossdistill.io_utils import write_json, write_text
    from segment_emulated_report import GEO_NAMES, fmt

    grid = json.loads(args.grid.read_text())
    tracks = {f"{ds}/{tr}": track_rows(args.cache, grid, ds, tr, args.seeds, args.strength) for ds, tr in TRACKS}
    if not any(tracks.values()):
        print(f"error: no track has cached runs of every seed {args.seeds} under {args.cache}", file=sys.stderr)
        return 2
    seeds = ", ".join(map(str, args.seeds))
    lines = [f"# Seed replicates of the mask-emulator targets at {args.strength} strength", "",
             f"Command: `python bench/segment_emulated_seeds.py {' '.join(sys.argv[1:])}` (runs: "
             f"`python bench/segment_emulated.py ... --seed N`, seed 0 being the grid of `segment_emulated.md`)  ",
             f"Date: {_dt.date.today().isoformat()}; machine: 2 shared cores, 1 torch thread per object", "",
             "**Masks: the SAM-like mask EMULATOR** (benchmarks only; no SAM ran). Each seed re-draws the whole "
             "measurement: sampled points, cameras, the emulator's noise, the pixels of every training step, the "
             "weights, the clustering. `ours` trains and clusters as shipped for each kind of shape. Lifting uses "
             "the same seed's masks; the geometric baselines see no mask and no seed. Scores x100, best of the five "
             "scales, means over the objects every seed has. Declared before seeds 1 and 2 ran: every medium "
             f"target is judged on the mean over seeds {seeds} (ours - lifting >= +5 and ours - best geometric "
             ">= +10), met rows included.", ""]
    for name, t in tracks.items():
        if t is None:
            lines += [f"## {name}: no run of every seed", ""]
            continue
        ds = name.split("/")[0]
        lines += [f"## {name} ({len(t['objects'])} objects; variant `{t['variant']}`, rules "
                  f"`{t['ours_key']}`)", "",
                  "| metric | seed | ours | lifting | ours - lifting | ours - best geometric |",
                  "|---|---:|---:|---:|---:|---:|"]
        verdicts = []
        for m, v in t["metrics"].items():
            shown = "RI error" if m == "ri" else m
            for p in v["per_seed"]:
                lines.append(f"| {shown} | {p['seed']} | {fmt(ds, m, p['ours'])} | {fmt(ds, m, p['lift'])} | "
                             f"{p['d_lift']:+.1f} | {p['d_geo']:+.1f} |")
            lines.append(f"| {shown} | **mean (sd)** | | | **{v['d_lift_mean']:+.1f}** ({v['d_lift_sd']:.1f}) | "
                         f"**{v['d_geo_mean']:+.1f}** ({v['d_geo_sd']:.1f}) |")
            verdicts.append(f"- {name} {shown}: ours - lifting {v['d_lift_mean']:+.1f} (target >= +5), ours - "
                            f"{GEO_NAMES[v['geometry']]} {v['d_geo_mean']:+.1f} (target >= +10): "
                            f"**{'met' if v['met'] else 'MISSED'}**")
        lines += ["", *verdicts, ""]
    write_text(args.out.with_suffix(".md"), "\n".join(lines))
    write_json(args.out.with_suffix(".json"), {"command": " ".join(sys.argv), "seeds": args.seeds,
                                               "strength": args.strength, "tracks": tracks})
    print(f"wrote {args.out}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
