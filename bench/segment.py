"""Benchmark of `crossdistill segment` on ../shared/data/partnet_mobility_dev (mesh and point tracks).

Writes docs/results/segment.md (+ segment.json with every per-object score, and plots).
Each object runs in a fresh process (peak memory per object is then that process's
peak RSS); finished objects are cached under bench/_cache/segment/ so an interrupted
run resumes.

    python bench/segment.py                 # fixed subset (<= 4 objects per category), both tracks
    python bench/segment.py --all           # all 133 objects
    python bench/segment.py --limit 3       # smoke run
    python bench/segment.py --seed 1        # another seed (points, views, training, clustering):
                                            # writes docs/results/segment_seed1.md, caches apart
    python bench/segment.py --mask-teacher sam [--sam-weights DIR] [--device cuda]
                                            # SAM masks for ours and lifting (local weights needed):
                                            # writes docs/results/segment_sam.md, caches apart
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO / ".." / "shared" / "data"))
    ap.add_argument("--all", action="store_true", help="all objects instead of the fixed subset")
    ap.add_argument("--per-category", type=int, default=4, help="objects per category in the fixed subset")
    ap.add_argument("--limit", type=int, default=None, help="only the first N objects (smoke runs)")
    ap.add_argument("--tracks", nargs="+", default=["mesh", "points"], choices=["mesh", "points"])
    ap.add_argument("--threads", type=int, default=2, help="torch threads per object process")
    ap.add_argument("--seed", type=int, default=0,
                    help="SegmentConfig.seed (the default 0 is the committed segment.md)")
    ap.add_argument("--cache", default=None, help="default: bench/_cache/segment[_seedN]")
    ap.add_argument("--out", default=None, help="default: docs/results/segment[_seedN]")
    ap.add_argument("--fresh", action="store_true", help="ignore cached per-object results")
    ap.add_argument("--reverse", action="store_true",
                    help="process objects last to first (a second process can share the cache from the other end)")
    ap.add_argument("--mask-teacher", default="offline", choices=["offline", "sam", "learned"],
                    help="2D mask teacher for ours and lifting: offline (default), sam (local weights needed; "
                         "results go to segment_sam[...]) or learned (--sam-weights names the trained teacher "
                         "file, see bench/segment_learned_masks.py; results go to segment_learned[...])")
    ap.add_argument("--sam-weights", default=None,
                    help="local SAM model folder (default: facebook/sam-vit-base), or the learned teacher's file")
    ap.add_argument("--device", default="cpu", help="torch device of the grouping field and SAM")
    args = ap.parse_args()

    from crossdistill.eval.segment_report import select_objects, write_segment_report

    data = Path(args.data)
    if not (data / "partnet_mobility_dev").is_dir():
        print(f"error: {data / 'partnet_mobility_dev'} not found (the shared data folder)", file=sys.stderr)
        return 2
    objects = select_objects(data, None if args.all else args.per_category)
    if args.limit:
        objects = objects[: args.limit]
    suffix = ("" if args.mask_teacher == "offline" else f"_{args.mask_teacher}") + (
        f"_seed{args.seed}" if args.seed else "")
    if args.mask_teacher != "offline":
        # fail here, once, when the weights are missing; without importing torch in this process
        # (a parent that has loaded a model can deadlock the forked per-object workers)
        from crossdistill.teachers.registry import backend, find_weights

        if args.mask_teacher == "learned":
            found = args.sam_weights is not None and Path(args.sam_weights).is_file()
        else:
            found = (Path(args.sam_weights).is_dir() if args.sam_weights
                     else find_weights(backend("sam").hub_id) is not None)
        if not found:
            what = "the learned teacher's file" if args.mask_teacher == "learned" else "SAM weights"
            print(f"error: --mask-teacher {args.mask_teacher}: {what} not found (--sam-weights)", file=sys.stderr)
            return 2
    cache = Path(args.cache or REPO / "bench" / "_cache" / f"segment{suffix}")
    args.out = args.out or str(REPO / "docs" / "results" / f"segment{suffix}")
    results = []
    for track in args.tracks:
        for cat, oid in (objects[::-1] if args.reverse else objects):
            f = cache / track / f"{cat}_{oid}.json"
            if f.exists() and not args.fresh:
                results.append(json.loads(f.read_text()))
                continue
            with ProcessPoolExecutor(max_workers=1) as pool:  # fresh process: honest peak memory
                res = pool.submit(_run_one, str(data), track, cat, oid, args.threads, args.seed,
                                  args.mask_teacher, args.sam_weights, args.device).result()
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(res))
            results.append(res)
            best = res["ours"]["best"]
            print(f"[{track}] {cat}/{oid}: ours link {best['link']:.3f} leaf {best['leaf']:.3f} "
                  f"({res['seconds']:.1f} s, {res['peak_rss_mib']:.0f} MiB)", flush=True)
    results.sort(key=lambda r: (r["track"] != "mesh", r["name"]))
    cmd = "python bench/segment.py " + " ".join(sys.argv[1:])
    write_segment_report(results, Path(args.out), command=cmd.strip(), threads=args.threads)
    print(f"wrote {args.out}.md")
    return 0


def _run_one(data: str, track: str, cat: str, oid: str, threads: int, seed: int = 0,
             mask_teacher: str = "offline", sam_weights: str | None = None, device: str = "cpu") -> dict:
    import torch

    torch.set_num_threads(threads)
    from crossdistill.eval.segment_protocol import evaluate_object
    from crossdistill.eval.segment_report import load_labelled
    from crossdistill.methods.sampart3d.pipeline import SegmentConfig
    from crossdistill.teachers.registry import load_mask_teacher

    obj = load_labelled(Path(data), track, cat, oid)
    teacher = load_mask_teacher(mask_teacher, sam_weights, device=device)
    return evaluate_object(obj, SegmentConfig(seed=seed, device=device), mask_teacher=teacher)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
