"""What joins faces into a mesh piece, measured on the SAM-like path (mask EMULATOR, benchmarks only).

``crossdistill.geometry.topology.face_components`` decides the mesh pieces that stage 3's piece
rules, the offline teacher's piece cue and the shape kind read. Two definitions: faces sharing a
welded vertex ("vertex") or a welded edge ("edge": surfaces touching at one point stay apart).
This bench runs the shipped fast preset with SAM-like masks from the mask emulator (medium
strength; never SAM itself) on the PartNet-Mobility meshes, under each definition, and scores
best-of-scales class-agnostic mIoU (link / leaf) per object; folds A and B as in the other
mask-emulator benches. The offline teacher's side of the question is
``bench/segment_clustering.py --connect``.

    python bench/segment_piece_connect.py                  # first object of every category
    python bench/segment_piece_connect.py --per-category 1 --categories Box --out /tmp/pc   # smoke
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO / ".." / "shared" / "data"))
    ap.add_argument("--per-category", type=int, default=1, help="objects per category (first ids, sorted)")
    ap.add_argument("--categories", nargs="+", default=None, help="default: every PartNet-Mobility category")
    ap.add_argument("--strength", type=float, default=0.5, help="emulator strength (0.5: medium)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--changed-only", action="store_true",
                    help="run only the objects whose pieces differ between the definitions (the others are the "
                         "same run under both, a difference of 0)")
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "segment_piece_connect"))
    args = ap.parse_args()
    data = Path(args.data)
    if not (data / "partnet_mobility_dev").is_dir():
        print(f"error: {data / 'partnet_mobility_dev'} not found (the shared data is needed)", file=sys.stderr)
        return 2
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from crossdistill.eval.emulators import EmulatedMaskTeacher
    from crossdistill.eval.segment_objects import load
    from crossdistill.eval.segment_protocol import evaluate_object
    from crossdistill.geometry import topology
    from crossdistill.geometry.normalize import normalize_shape
    from crossdistill.methods.sampart3d.pipeline import preset
    from segment_emulated_report import folds

    every = sorted(p.name for p in (data / "partnet_mobility_dev").iterdir() if p.is_dir())
    fold_a, _ = folds(every)  # the mask-emulator benches' folds
    shipped = topology.PIECE_CONNECT
    rows = []
    t0 = time.perf_counter()
    for cat in args.categories or every:
        root = data / "partnet_mobility_dev" / cat
        for oid in sorted((p.stem for p in root.glob("*.glb")), key=lambda s: (len(s), s))[: args.per_category]:
            obj, parts = load(data, "partnet", "mesh", cat, oid)
            row = {"name": f"{cat}/{oid}", "category": cat, "fold": "A" if cat in fold_a else "B"}
            unit = normalize_shape(obj.shape)[0]
            same = np.array_equal(*(topology.face_components(unit.vertices, unit.faces, connect=c)
                                    for c in ("vertex", "edge")))
            row["same_pieces"] = bool(same)
            if same and args.changed_only:
                continue
            for connect in ("vertex",) if same else ("vertex", "edge"):
                topology.PIECE_CONNECT = connect
                res = evaluate_object(obj, preset("fast"), mask_teacher=EmulatedMaskTeacher(parts, strength=args.strength),
                                      geometry_baselines=False)
                row[connect] = {k: 100.0 * v for k, v in res["ours"]["best"].items()}
            topology.PIECE_CONNECT = shipped
            if same:  # identical pieces: the run is the same run (same input, seed and settings)
                row["edge"] = dict(row["vertex"])
            rows.append(row)
            print(json.dumps(row), flush=True)
    _report(rows, args, time.perf_counter() - t0, np)
    return 0


def _report(rows: list[dict], args, wall: float, np) -> None:
    from crossdistill.engine.machine import cpu_model
    from crossdistill.io_utils import write_json, write_text

    lines = ["# Mesh pieces joined by a vertex or by an edge: the SAM-like path (mask EMULATOR)", "",
             f"Command: `python bench/segment_piece_connect.py {' '.join(sys.argv[1:])}`  ",
             f"Machine: {os.cpu_count()} cores, {platform.machine()}, {cpu_model()}, torch threads {args.threads}; "
             f"wall {wall:.0f} s  ",
             f"Date: {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M')} UTC", "",
             f"**Masks: the SAM-like mask emulator (strength {args.strength:g}), benchmarks only; no SAM ran.** Fast "
             "preset with the rules SAM-like masks get on meshes of pieces (`rules.SAM_RULES['pieces']`); "
             "best-of-scales class-agnostic mIoU x100 (link / leaf). `vertex`: faces sharing a welded vertex form "
             "a piece (the definition before `segment_notes.md` item 31); `edge`: faces sharing a welded edge.", "",
             "| object | fold | vertex | edge | difference |", "|---|---|---|---|---|"]
    for r in rows:
        v, e = r["vertex"], r["edge"]
        edge = "same pieces, same run" if r["same_pieces"] else f"{e['link']:.1f} / {e['leaf']:.1f}"
        lines.append(f"| {r['name']} | {r['fold']} | {v['link']:.1f} / {v['leaf']:.1f} | {edge} | "
                     f"{e['link'] - v['link']:+.1f} / {e['leaf'] - v['leaf']:+.1f} |")
    lines += ["", "| fold | objects | vertex | edge | difference |", "|---|---:|---|---|---|"]
    for fold in ("A", "B", "all"):
        sel = [r for r in rows if fold == "all" or r["fold"] == fold]
        if not sel:
            continue
        m = {c: {lv: float(np.mean([r[c][lv] for r in sel])) for lv in ("link", "leaf")} for c in ("vertex", "edge")}
        lines.append(f"| {fold} | {len(sel)} | {m['vertex']['link']:.1f} / {m['vertex']['leaf']:.1f} | "
                     f"{m['edge']['link']:.1f} / {m['edge']['leaf']:.1f} | {m['edge']['link'] - m['vertex']['link']:+.2f} / "
                     f"{m['edge']['leaf'] - m['vertex']['leaf']:+.2f} |")
    out = Path(args.out)
    write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    write_json(out.with_suffix(".json"), {"rows": rows, "args": vars(args)})


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
