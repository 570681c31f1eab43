"""Weight-free `crossdistill segment` on closed single-surface meshes (Princeton Segmentation Benchmark).

On ``../shared/data/psb_dev`` (7 categories, 8 to 16 human segmentations per mesh) and a
point track sampled from it (15k points, face normals, seed 0), every object is segmented with
the weight-free mask teachers, each feeding the same SAMPart3D core (fast preset):

* ``render``: the render-cue teacher alone (the previous default);
* ``geometric``: the geometric part teacher alone (spectral concavity partitions, per view);
* ``both``: the two teachers' masks together (render-cue rules);

and scored, as the benchmark does, against every human segmentation and averaged: Rand index
error (1 - RI over unordered face pairs, unweighted) and class-agnostic mIoU. Also: the
geometric partitions themselves without the field (best of their counts), k-means told each
person's segment count, one segment, and each person against the others. The teacher policy
of the default is chosen on categories A (Chair, Hand, Mech, Vase) and reported on B (Cup,
Human, Octopus). ``--partnet`` runs the same teachers on PartNet-Mobility (mesh objects made
of one welded piece and the point track) to check the default loses nothing there.

    python bench/segment_single_surface.py --workers 2          # psb: the default grid (GRID below)
    python bench/segment_single_surface.py --partnet --tracks mesh --per-category 0 --teachers render both
                                                                # the PartNet-Mobility check: every one-piece mesh
    python bench/segment_single_surface.py --workers 1 --tracks mesh --teachers geometric --keep-labels
                                                                # (re)runs that lack their per-scale labels

The default psb grid (``GRID``): every psb_dev mesh (20 per category) with the geometric
and the render-cue teacher (the default-scale rule is chosen on these), 6 per category on the
point track and 2 with both teachers' masks (the CPU of one session does not stretch to all).
``--per-category N`` runs N everywhere.

``--keep-labels`` also stores each run's element labels per scale (and, for the geometric
teacher, the geometric partitions and the face areas) beside its JSON (``*.labels.npz``): the
report tries the default-scale rules that look at the labels themselves on them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

TEACHERS = ("render", "geometric", "both")
FOLD_A = ("Chair", "Hand", "Mech", "Vase")
FOLD_B = ("Cup", "Human", "Octopus")
#: psb objects per category by (track, teacher) in the default grid (first ids, sorted)
GRID = {("mesh", "geometric"): 20, ("mesh", "render"): 20, ("mesh", "both"): 2,
        ("points", "geometric"): 6, ("points", "render"): 6, ("points", "both"): 2}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO / ".." / "shared" / "data"))
    ap.add_argument("--per-category", type=int, default=None,
                    help="objects per category everywhere (0: all; default: psb's GRID, PartNet's 2)")
    ap.add_argument("--tracks", nargs="+", default=["mesh", "points"], choices=["mesh", "points"])
    ap.add_argument("--teachers", nargs="+", default=list(TEACHERS), choices=list(TEACHERS))
    ap.add_argument("--all-teachers", action="store_true",
                    help="the combined teacher on the point track too (default: meshes only, for the CPU budget)")
    ap.add_argument("--partnet", action="store_true", help="the PartNet-Mobility check instead of psb")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cache", default=str(REPO / "bench" / "_cache" / "segment_single_surface"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--keep-labels", action="store_true",
                    help="store the per-scale labels of each run (redoing the runs that lack them)")
    args = ap.parse_args()
    data = Path(args.data)
    dataset = "partnet" if args.partnet else "psb"
    if not (data / ("partnet_mobility_dev" if args.partnet else "psb_dev")).is_dir():
        print(f"error: {data} lacks the {dataset} folder (the shared data)", file=sys.stderr)
        return 2
    from crossdistill.eval.segment_objects import select

    def per_category(track: str, teacher: str) -> int | None:
        n = args.per_category if args.per_category is not None else (2 if args.partnet else GRID[track, teacher])
        return n or None  # 0: all

    welded: dict[tuple[str, str], bool] = {}
    cache = Path(args.cache) / dataset
    jobs = []
    for track in args.tracks:
        for teacher in args.teachers:
            if teacher == "both" and track == "points" and not args.all_teachers:
                continue
            for c, o in select(data, dataset, per_category(track, teacher)):
                if args.partnet and args.tracks == ["mesh"]:  # the meshes the default's policy changes
                    if (c, o) not in welded:
                        welded[c, o] = _welded(data, c, o)
                    if not welded[c, o]:
                        continue
                jobs.append((cache / track / teacher / f"{c}_{o}.json",
                             (str(data), dataset, track, c, o, teacher, args.threads, args.keep_labels)))
    todo = [(f, a) for f, a in jobs if not f.exists() or (args.keep_labels and not labels_path(f).exists())]
    if todo and not args.report_only:
        print(f"{len(todo)} of {len(jobs)} runs to do", flush=True)
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn"),
                                 max_tasks_per_child=1) as pool:
            futs = {pool.submit(run_one, *a): f for f, a in todo}
            for fut in as_completed(futs):
                f = futs[fut]
                try:
                    res = fut.result()
                except Exception as exc:
                    print(f"FAILED {f}: {type(exc).__name__}: {exc}", flush=True)
                    continue
                f.parent.mkdir(parents=True, exist_ok=True)
                if "labels" in res:
                    _save_labels(labels_path(f), res)
                tmp = f.with_suffix(".tmp")
                tmp.write_text(json.dumps(res))
                tmp.replace(f)
                print(f"{res['track']} {res['name']} {res['teacher']}: ours {res['ours']['best']} "
                      f"({res['seconds']:.0f} s)", flush=True)
    results = [_with_labels(json.loads(f.read_text()), labels_path(f)) for f, _ in jobs if f.exists()]
    for r in results:  # the mesh the kept labels label: the shipped default-scale rule looks at its creases
        if "_labels" in r and r["track"] == "mesh":
            r["_shape"] = _unit_mesh(data, dataset, *r["name"].split("/"))
    from segment_single_surface_report import write_report

    out = Path(args.out or REPO / "docs" / "results" / ("segment_single_surface" + ("_partnet" if args.partnet else "")))
    write_report(results, out, "python bench/segment_single_surface.py " + " ".join(sys.argv[1:]), args.threads,
                 dataset, total_runs=len(jobs), workers=args.workers)
    print(f"wrote {out}.md ({len(results)} runs)")
    return 0


def labels_path(run_json: Path) -> Path:
    """Where a run's per-scale labels are kept (beside its JSON)."""
    return run_json.with_suffix(".labels.npz")


def _save_labels(path: Path, res: dict) -> None:
    """Move the label arrays out of a run's result into ``path`` (the JSON keeps the scores)."""
    import numpy as np

    arrays = {"labels": np.asarray(res.pop("labels"), dtype=np.int32)}
    for key in ("partition_labels", "element_weights"):
        if key in res:
            arrays[key] = np.asarray(res.pop(key))
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


def _with_labels(res: dict, path: Path) -> dict:
    """A cached run with its stored labels attached under ``_labels`` (and ``_partition_labels``,
    ``_element_weights``) when they were kept; the report leaves ``_`` keys out of its JSON."""
    if path.exists():
        import numpy as np

        with np.load(path) as z:
            res.update({f"_{k}": z[k] for k in z.files})
    return res


def _unit_mesh(data: Path, dataset: str, cat: str, oid: str):
    """An object's mesh in the unit box, as the pipeline segments it."""
    from crossdistill.eval.segment_objects import load
    from crossdistill.geometry.normalize import normalize_shape

    obj, _ = load(data, dataset, "mesh", cat, oid)
    return normalize_shape(obj.shape)[0]


def _welded(data: Path, cat: str, oid: str) -> bool:
    """Is a PartNet-Mobility mesh one connected piece? Those are what the default's policy changes."""
    from crossdistill.geometry.io import load_shape
    from crossdistill.geometry.normalize import normalize_shape
    from crossdistill.geometry.topology import face_components
    from crossdistill.teachers.geometric_parts import is_single_surface

    unit, _ = normalize_shape(load_shape(data / "partnet_mobility_dev" / cat / f"{oid}.glb"))
    return is_single_surface(face_components(unit.vertices, unit.faces), unit.face_areas, share=1.0)


def run_one(data: str, dataset: str, track: str, cat: str, oid: str, teacher: str, threads: int,
            keep_labels: bool = False) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from crossdistill.eval.metrics import class_agnostic_miou, rand_index_error
    from crossdistill.eval.segment_objects import load
    from crossdistill.eval.segment_protocol import evaluate_object, score_levels
    from crossdistill.geometry.normalize import normalize_shape
    from crossdistill.geometry.spectral_parts import geometric_partitions
    from crossdistill.methods.sampart3d.pipeline import preset
    from crossdistill.teachers.geometric_parts import OfflineTeacher

    obj, _ = load(Path(data), dataset, track, cat, oid)
    t0 = time.perf_counter()
    res = evaluate_object(obj, preset("fast"), mask_teacher=OfflineTeacher(teacher, teacher, teacher),
                          geometry_baselines=(teacher == "render"), keep_labels=keep_labels)
    res.update(teacher=teacher, dataset=dataset, threads=threads, wall_s=round(time.perf_counter() - t0, 2))
    if teacher == "geometric":  # the partitions themselves, without the field
        weights = obj.shape.face_areas if obj.shape.is_mesh else None
        unit, _ = normalize_shape(obj.shape)
        tp = time.perf_counter()
        parts = geometric_partitions(unit)
        res["partition_seconds"] = round(time.perf_counter() - tp, 2)
        per = [score_levels(p, obj.labels, weights, obj.scoring) for p in parts[1:]]
        res["partitions"] = {"per_setting": per, "best": {k: max(s[k] for s in per) for k in per[0]}}
        if keep_labels:
            res["partition_labels"] = parts.astype(np.int32).tolist()
            if weights is not None:
                res["element_weights"] = np.asarray(weights, dtype=np.float64).tolist()
    if teacher == "render" and obj.scoring == "humans":  # each person against the others
        segs = list(obj.labels.values())
        weights = obj.shape.face_areas if obj.shape.is_mesh else None
        ri, mi = [], []
        for i, a in enumerate(segs):
            for j, b in enumerate(segs):
                if i != j:
                    ri.append(1.0 - rand_index_error(b, a))
                    mi.append(class_agnostic_miou(b, a, weights=weights))
        res["humans"] = {"best": {"ri": float(np.mean(ri)), "miou": float(np.mean(mi))}}
    return res


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
