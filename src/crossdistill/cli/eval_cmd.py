"""`crossdistill eval`: score part segmentations against a named benchmark.

Two modes:

* ``--predictions DIR``: score saved predictions of any system
  (``DIR/<Category>/<id>/scale_<s>/labels.npy`` or ``DIR/<Category>/<id>.npy``) with
  :mod:`crossdistill.eval.score_predictions`; report ``eval.md`` / ``eval.json`` /
  ``eval_categories.png``.
* ``--method segment``: run the flagship and score it with the protocol of
  ``bench/segment.py`` (:func:`~crossdistill.eval.segment_protocol.evaluate_object` +
  :func:`~crossdistill.eval.segment_report.write_segment_report`), so its tables are
  those of ``docs/results/segment.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from pathlib import Path

from crossdistill.cli.segment_options import (add_mask_teacher_arguments, add_preset_argument,
                                              mask_teacher_from_args, resolved_preset)
from crossdistill.errors import InputError

#: benchmark -> track of the flagship protocol (``load_labelled``'s names).
SEGMENT_TRACKS = {"partnet_mobility_dev": "mesh", "partnet_mobility_dev_points": "points"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score part predictions (or the flagship) on a named benchmark",
                       description="Score saved part predictions of any system against a named benchmark "
                                   "(class-agnostic part mIoU, area-weighted on faces), or run and score the "
                                   "flagship with --method segment.")
    p.add_argument("--benchmark", required=True, help="benchmark name (e.g. partnet_mobility_dev, "
                                                      "partnet_mobility_dev_points)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--predictions", metavar="DIR",
                     help="predictions: DIR/<Category>/<id>/scale_<s>/labels.npy or DIR/<Category>/<id>.npy")
    src.add_argument("--method", choices=["segment"], help="run this method and score it (slow)")
    p.add_argument("-o", "--output", metavar="REPORT_DIR", default=None,
                   help="report folder (default: ./eval_<benchmark>)")
    p.add_argument("--data", metavar="ROOT", default=None,
                   help="data root holding the benchmark folder (default: $CROSSDISTILL_DATA or ../shared/data)")
    p.add_argument("--limit", type=int, default=None, help="only the first N objects")
    p.add_argument("--per-category", type=int, default=4, metavar="K",
                   help="--method segment: first K objects per category, as bench/segment.py (0 = all; default 4)")
    add_preset_argument(p)
    add_mask_teacher_arguments(p)
    p.add_argument("--device", default="cpu", help="--method segment: torch device, cpu (default) or cuda")
    p.add_argument("--quiet", action="store_true", help="no per-object progress lines")
    p.set_defaults(func=run_eval)


def _command(args: argparse.Namespace) -> str:
    """The command line, rebuilt from the parsed options (for the report header)."""
    parts = ["crossdistill", "eval", "--benchmark", args.benchmark]
    parts += ["--predictions", args.predictions] if args.predictions else ["--method", args.method]
    for flag, value in (("--data", args.data), ("-o", args.output), ("--limit", args.limit)):
        if value is not None:
            parts += [flag, str(value)]
    if args.method and args.per_category != 4:
        parts += ["--per-category", str(args.per_category)]
    return " ".join(shlex.quote(p) for p in parts)


def run_eval(args: argparse.Namespace) -> int:
    from crossdistill.eval.benchmarks import get_benchmark

    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be >= 1 (got {args.limit})")
    if args.per_category < 0:
        raise InputError(f"--per-category must be >= 0 (got {args.per_category})")
    out = Path(args.output) if args.output else Path(f"eval_{args.benchmark}")
    bench = get_benchmark(args.benchmark, args.data)
    if args.method == "segment":
        return _run_segment(args, bench, out)
    return _run_predictions(args, bench, out)


def _run_predictions(args: argparse.Namespace, bench, out: Path) -> int:
    from crossdistill.eval.predictions_report import write_eval_report
    from crossdistill.eval.score_predictions import score_predictions, track_of

    track_of(bench.name)  # fail early for a benchmark without part labels
    progress = None if args.quiet else (lambda line: print(line, file=sys.stderr))
    result = score_predictions(bench, Path(args.predictions), limit=args.limit, progress=progress)
    write_eval_report(result, out, _command(args))
    s = result["summary"]
    overall = ", ".join(f"{lvl} {100 * v:.1f}" for lvl, v in s["overall"].items() if v is not None)
    print(f"eval: {s['n_scored']} scored, {s['n_missing']} missing, {s['n_invalid']} invalid"
          + (f"; mIoU {overall}" if overall else "") + f" -> {out / 'eval.md'}", file=sys.stderr)
    return 0


def _run_segment(args: argparse.Namespace, bench, out: Path) -> int:
    """The flagship on the benchmark through bench/segment.py's protocol (in this process)."""
    track = SEGMENT_TRACKS.get(bench.name)
    if track is None:
        raise InputError(f"--method segment supports {', '.join(SEGMENT_TRACKS)} (got {bench.name!r})")
    data = bench.path.parent
    if not (data / "partnet_mobility_dev").is_dir():
        raise InputError(f"--method segment needs the data root holding partnet_mobility_dev/ "
                         f"(got {data}); pass --data ROOT")
    import torch

    from crossdistill.eval.segment_protocol import evaluate_object
    from crossdistill.eval.segment_report import load_labelled, select_objects, write_segment_report
    from crossdistill.methods.sampart3d.pipeline import preset

    objects = select_objects(data, args.per_category or None)
    if args.limit is not None:
        objects = objects[: args.limit]
    if not objects:
        raise InputError(f"no objects under {data / 'partnet_mobility_dev'}")
    teacher = mask_teacher_from_args(args)
    cfg = preset(resolved_preset(args), device=args.device)
    if args.scale_unit:
        cfg = dataclasses.replace(cfg, scale_unit=args.scale_unit)
    results = []
    for cat, oid in objects:
        res = evaluate_object(load_labelled(data, track, cat, oid), cfg, mask_teacher=teacher)
        results.append(res)
        if not args.quiet:
            best = res["ours"]["best"]
            print(f"[{track}] {cat}/{oid}: ours link {best['link']:.3f} leaf {best['leaf']:.3f} "
                  f"({res['seconds']:.1f} s)", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    write_segment_report(results, out / "eval", command=_command(args), threads=torch.get_num_threads())
    print(f"eval: {len(results)} objects -> {out / 'eval.md'}", file=sys.stderr)
    return 0
