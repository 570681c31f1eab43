"""The flagship with SAM-like masks, through the mask emulator (benchmarks only).

No SAM weights can be had here, so SAM's masks are emulated from each shape's ground-truth
parts (``crossdistill.eval.emulators``: per view, nested and overlapping connected masks at
every granularity, spoiled by a fixed noise model whose strength is 0 / 0.25 / 0.5 / 1.0 for
zero / low / medium / high). Every figure in the report comes from the emulator, never from
SAM itself, and the report says so.

Datasets and tracks: ``partnet`` (partnet_mobility_dev meshes and its 15k-point PLYs; link and
leaf levels) and ``psb`` (psb_dev meshes and 15k points sampled from them; scored against
every human segmentation: Rand index error and mIoU). Variants of ours:

* ``fast``: the fast preset (the CPU budget) with no stage-3 rule; the same trained field is
  also scored under each candidate rule set of ``methods/sampart3d/rules.py``, for the
  category-level cross-validation (at medium strength) that decides which rules SAM-like
  teachers get on each kind of shape; the other variants are scored with no rule and with
  the render-cue rules;
* ``equal_terms``: the fast preset with the pull and push terms of Eq. 5 weighted equally instead of
  by their share of the pairs (a deviation from the released code, chosen on the development
  objects of fold A, checked here on both folds);
* ``shared``: the fast preset with the other pair sampler (the one the fast preset does not use);
* ``paper_cpu``: the paper preset's method (released pair sampling, sigma scales, masks of
  sigma >= 2 dropped, erosion, HDBSCAN settings, no rule) at the fast preset's training and
  clustering budget -- the paper preset itself (5000 steps of 90 x 256 pixels, width 384)
  needs a GPU;
* ``no_skip``: the fast preset without the long skip connection (the paper's ablation);
* ``push_floor``: the fast preset with the push term of Eq. 5 never weighted below the pull term
  (``GroupingTrainConfig.push_floor``; the strength-zero diagnosis of segment_notes.md);
* ``push_floor_lr``: ``push_floor`` with a higher peak learning rate (``PUSH_FLOOR_LR``; screened
  against 2x and 4x the steps on fold A's PartNet point clouds at strength zero,
  ``segment_emulated_zero_diag.md``; not adopted: ``segment_emulated_lr_screen.md``, notes item 19);
* ``push_floor_balance_half`` / ``_full``: ``push_floor`` with group-balanced pixel drawing (a pixel
  drawn with probability n^-a, n its group's pixel count at the step's scale; a = 0.5 / 1,
  ``segment_emulated_report.BALANCE_VARIANTS``), so that small parts' masks are supervised about as often as large ones;
  ``balance_half`` / ``_full``: the same without the push floor (meshes train without it);
  screens, run by name (notes item 22).

Each (object, strength, variant) runs in a fresh process; results are cached under
``bench/_cache/segment_emulated/`` so an interrupted run resumes.

    python bench/segment_emulated.py                       # the default grid (1 object per PartNet
                                                           # category, 2 per psb category)
    python bench/segment_emulated.py --per-category 2 --workers 2
    python bench/segment_emulated.py --report-only         # rewrite the report from the cache
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

STRENGTHS = {"zero": 0.0, "low": 0.25, "medium": 0.5, "high": 1.0}
#: variant -> strengths it runs at (by default)
VARIANTS = {"fast": ("zero", "low", "medium", "high"), "equal_terms": ("zero", "medium"), "shared": ("medium",),
            "paper_cpu": ("medium",), "no_skip": ("medium",), "push_floor": ("zero", "medium"),
            "push_floor_lr": ("zero", "medium"), "push_floor_balance_half": ("zero", "medium"),
            "push_floor_balance_full": ("zero", "medium"), "balance_half": ("zero", "medium"),
            "balance_full": ("zero", "medium")}
#: variants run only by name (screens of one training setting)
SCREENS = ("push_floor_lr", "push_floor_balance_half", "push_floor_balance_full", "balance_half", "balance_full")
#: objects per psb_dev category in the default grid (PartNet-Mobility: ``--per-category``, 1)
PSB_PER_CATEGORY = 2
#: the peak learning rate of the ``push_floor_lr`` variant (the fast preset's is lower)
PUSH_FLOOR_LR = 5e-3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO / ".." / "shared" / "data"))
    ap.add_argument("--datasets", nargs="+", default=["partnet", "psb"], choices=["partnet", "psb"])
    ap.add_argument("--tracks", nargs="+", default=["mesh", "points"], choices=["mesh", "points"])
    ap.add_argument("--per-category", type=int, default=1, help="objects per category (first ids, sorted)")
    ap.add_argument("--psb-per-category", type=int, default=PSB_PER_CATEGORY,
                    help="objects per category of psb_dev (its categories are few: 7)")
    ap.add_argument("--categories", nargs="+", default=None,
                    help="only these categories (e.g. one fold's, for a partial run; default: all)")
    from segment_emulated_report import kind_variant

    shipped = {kind_variant(k) for k in ("pieces", "closed_surface", "points")}
    ap.add_argument("--variants", nargs="+", default=[v for v in VARIANTS if v not in SCREENS or v in shipped],
                    choices=list(VARIANTS), help="default: every variant but the screens (run by name) that "
                    "SAM_RULES does not ship: " + ", ".join(SCREENS))
    ap.add_argument("--strengths", nargs="+", default=None, choices=list(STRENGTHS),
                    help="override the strengths of every variant")
    ap.add_argument("--full-grid", action="store_true",
                    help="every variant on every track and all four strengths (default: strengths zero and medium, "
                         "the variants other than fast on the mesh tracks only: the CPU budget of one session)")
    ap.add_argument("--workers", type=int, default=2, help="objects run side by side (one process each)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per object process")
    ap.add_argument("--cache", default=str(REPO / "bench" / "_cache" / "segment_emulated"))
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "segment_emulated"))
    ap.add_argument("--report-only", action="store_true", help="write the report from the cached results")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the whole measurement (sampled points, cameras, the emulator's noise, training, "
                         "clustering); 0 is the grid's. Other seeds are replicates: cached apart (strength folder "
                         "'<strength>@seed<N>'), reported by bench/segment_emulated_seeds.py, not here")
    args = ap.parse_args()

    data = Path(args.data)
    if not (data / "partnet_mobility_dev").is_dir() or not (data / "psb_dev").is_dir():
        print(f"error: {data} lacks partnet_mobility_dev/ or psb_dev/ (the shared data folder)", file=sys.stderr)
        return 2
    from crossdistill.eval.segment_objects import select
    from segment_emulated_report import seed_folder

    cache = Path(args.cache)
    jobs = []
    for ds in args.datasets:
        n = args.psb_per_category if ds == "psb" else args.per_category
        seen: set[str] = set()
        for cat, oid in select(data, ds, n, args.categories):
            first = cat not in seen  # the category's first object
            seen.add(cat)
            for track in args.tracks:
                for variant in args.variants:
                    if not (args.full_grid or in_default_grid(ds, track, variant, first)):
                        continue
                    for strength in (args.strengths or VARIANTS[variant]):
                        if strength in ("low", "high") and not args.full_grid:
                            continue  # low / high only with --full-grid (same reason)
                        f = cache / ds / track / variant / seed_folder(strength, args.seed) / f"{cat}_{oid}.json"
                        jobs.append((f, (str(data), ds, track, cat, oid, variant, strength, args.threads,
                                         args.seed)))
    if not jobs:
        print("error: no run matches this selection (screens run only with --full-grid)", file=sys.stderr)
        return 2
    default_out = str(REPO / "docs" / "results" / "segment_emulated")
    partial = any(getattr(args, k) != ap.get_default(k) for k in
                  ("datasets", "tracks", "per_category", "psb_per_category", "categories", "variants",
                   "strengths", "full_grid"))
    if partial and args.out == default_out and not args.seed:
        print("error: a partial selection would overwrite the grid's report; give --out", file=sys.stderr)
        return 2
    order = {("fast", "zero"): 0, ("fast", "medium"): 1}
    jobs.sort(key=lambda j: order.get((j[1][5], j[1][6]), 2))
    todo = [(f, a) for f, a in jobs if not f.exists()]
    if not args.report_only and todo:
        print(f"{len(todo)} of {len(jobs)} runs to do, {args.workers} at a time", flush=True)
        todo.sort(key=lambda j: (0 if j[1][5] == "fast" else 1, j[1][6] != "zero"))
        ctx = get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=ctx, max_tasks_per_child=1) as pool:
            futures = {pool.submit(run_one, *a): f for f, a in todo}
            for fut in as_completed(futures):
                f = futures[fut]
                try:
                    res = fut.result()
                except Exception as exc:  # one object's failure stays its own
                    print(f"FAILED {f}: {type(exc).__name__}: {exc}", flush=True)
                    continue
                f.parent.mkdir(parents=True, exist_ok=True)
                tmp = f.with_suffix(".tmp")
                tmp.write_text(json.dumps(res))
                tmp.replace(f)
                print(f"{res['dataset']}/{res['track']} {res['name']} {res['variant']}@{res['strength']}: "
                      f"ours {_short(res['ours']['best'])} lift {_short(res['lift']['best'])} "
                      f"({res['seconds']:.0f} s)", flush=True)
    if args.seed:
        print(f"seed {args.seed}: replicate runs cached; report them with bench/segment_emulated_seeds.py")
        return 0
    results = [json.loads(f.read_text()) for f, _ in jobs if f.exists()]
    from segment_emulated_report import write_report

    cmd = "python bench/segment_emulated.py " + " ".join(sys.argv[1:])
    every = {ds: sorted({c for c, _ in select(data, ds, 1)}) for ds in args.datasets}
    write_report(results, Path(args.out), cmd.strip(), args.threads, total_runs=len(jobs), dataset_categories=every)
    print(f"wrote {args.out}.md ({len(results)} runs)")
    return 0


def in_default_grid(dataset: str, track: str, variant: str, first: bool) -> bool:
    """Does the default grid (one session's CPU) run ``variant`` on this object and track? The fast preset
    and the variant that trains as the default does everywhere; the push floor, which decides SAM_RULES per
    kind of shape (and is the baseline of the group-balance screens), everywhere; the other ablations but the
    screens on the mesh tracks' first object per category only."""
    from segment_emulated_report import shipped_variant

    return (variant in ("fast", "push_floor", shipped_variant(dataset, track))
            or (track == "mesh" and first and variant not in SCREENS))


def _short(scores: dict) -> str:
    return " ".join(f"{k} {100 * v:.1f}" for k, v in scores.items())


def run_one(data: str, dataset: str, track: str, cat: str, oid: str, variant: str, strength: str,
            threads: int, seed: int = 0) -> dict:
    """One object, one strength, one variant of ours (in a fresh process); ``seed`` seeds the whole
    measurement (the pipeline and the emulator)."""
    import dataclasses

    import torch

    torch.set_num_threads(threads)
    from crossdistill.eval.emulators import EmulatedMaskTeacher
    from crossdistill.eval.segment_objects import load
    from crossdistill.eval.segment_protocol import evaluate_object
    from crossdistill.methods.sampart3d.pipeline import preset
    from crossdistill.methods.sampart3d.rules import PAPER_RULES, RENDER_CUE_RULES
    from segment_emulated_report import BALANCE_OF, PIECES_SCREEN, shape_kind

    obj, parts = load(Path(data), dataset, track, cat, oid)
    teacher = EmulatedMaskTeacher(parts, strength=STRENGTHS[strength], seed=seed)
    fast = preset("fast")
    if variant == "fast":
        cfg = fast
    elif variant == "shared":
        other = "released" if fast.train.pair_sampling == "shared_scale" else "shared_scale"
        cfg = dataclasses.replace(fast, train=dataclasses.replace(fast.train, pair_sampling=other))
    elif variant == "paper_cpu":
        paper = preset("paper")
        budget = {k: getattr(fast.train, k) for k in ("iterations", "images_per_iter", "pixels_per_image", "lr",
                                                      "width", "out_dim")}
        cfg = dataclasses.replace(paper, n_views=fast.n_views, image_size=fast.image_size,
                                  train=dataclasses.replace(paper.train, **budget),
                                  cluster=dataclasses.replace(paper.cluster, max_points=fast.cluster.max_points))
    elif variant == "equal_terms":
        cfg = dataclasses.replace(fast, train=dataclasses.replace(fast.train, equal_terms=True))
    elif variant == "push_floor":
        cfg = dataclasses.replace(fast, train=dataclasses.replace(fast.train, push_floor=True))
    elif variant == "push_floor_lr":
        cfg = dataclasses.replace(fast, train=dataclasses.replace(fast.train, push_floor=True, lr=PUSH_FLOOR_LR))
    elif variant in BALANCE_OF:  # the group-balance screens (segment_notes.md item 22)
        floor, balance = BALANCE_OF[variant]
        cfg = dataclasses.replace(fast, train=dataclasses.replace(fast.train, push_floor=floor, group_balance=balance))
    elif variant == "no_skip":
        cfg = dataclasses.replace(fast, train=dataclasses.replace(fast.train, long_skip=False))
    else:
        raise ValueError(variant)
    # `ours` of every run is the field with no rule (as the cached runs were made); the rule sets are
    # scored on the same field
    cfg = dataclasses.replace(cfg, rules=PAPER_RULES, seed=seed)
    rule_sets = candidate_rule_sets(PAPER_RULES, RENDER_CUE_RULES)
    if variant != "fast":  # the fast preset's field gets every candidate (the cross-validation); others these two
        rule_sets = {k: rule_sets[k] for k in ("none", "all_render_rules")}
    elif shape_kind(dataset, track) != "pieces":  # the pieces screen acts on meshes of pieces only
        rule_sets = {k: v for k, v in rule_sets.items() if k not in PIECES_SCREEN}
    t0 = time.perf_counter()
    res = evaluate_object(obj, cfg, mask_teacher=teacher, rule_sets=rule_sets,
                          geometry_baselines=(variant == "fast" and strength == "zero"))
    res.update(dataset=dataset, variant=variant, strength=strength, seed=seed,
               wall_s=round(time.perf_counter() - t0, 2), threads=threads, mask_teacher=teacher.teacher_id)
    return res


def candidate_rule_sets(base, render):
    """The candidates of the rule cross-validation over ``base`` (the SAM-like rules): HDBSCAN's epsilon
    at 0 (as the render-cue teacher has it), the join of close clusters with either epsilon, and all the
    render-cue teacher's rules together (pieces, spill, point regions, join, epsilon 0)."""
    import dataclasses

    from segment_emulated_report import PIECES_SCREEN

    return {
        "none": dataclasses.replace(base, face_spill=0.0, pieces=False, point_region_deg=None, join_margin=None,
                                    hdbscan_epsilon=None),
        "hdbscan_eps_0": dataclasses.replace(base, hdbscan_epsilon=0.0),
        "eps_0+join": dataclasses.replace(base, hdbscan_epsilon=0.0, join_margin=render.join_margin,
                                          join_from_scale=render.join_from_scale),
        "eps_0+join_all_scales": dataclasses.replace(base, hdbscan_epsilon=0.0, join_margin=render.join_margin,
                                                     join_from_scale=0.0),
        "join": dataclasses.replace(base, join_margin=render.join_margin, join_from_scale=render.join_from_scale),
        "all_render_rules": dataclasses.replace(render, piece_codes=base.piece_codes),
        # the pieces screen (not candidates of the cross-validation): parts kept inside pieces at fewer scales
        **{name: dataclasses.replace(render, piece_codes=base.piece_codes, pieces_until=until)
           for name, until in PIECES_SCREEN.items()},
    }


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
