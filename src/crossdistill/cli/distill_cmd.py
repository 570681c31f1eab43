"""`crossdistill distill partdistill`: train a semantic part student for one category (`distill lidar`: lidar_cmd)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

TEXT_TEACHERS = ("fewshot", "clipseg", "owlv2", "grounding_dino")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("distill", help="distil a 2D teacher into a 3D student (PartDistill, UDAKD / FSKD)",
                       description="Distil 2D knowledge into a 3D student.")
    methods = p.add_subparsers(dest="method", metavar="METHOD", help="partdistill (shapes) or lidar (LiDAR scans)")
    q = methods.add_parser(
        "partdistill", help="semantic parts of a category from part names (PartDistill, CVPR 2024)",
        description="Render every shape of --shapes, ask a text-prompted 2D teacher for the --parts, back-project, "
                    "and train one point student over all shapes (forward distillation); the student then re-scores "
                    "the 2D predictions and is trained again (backward distillation). Writes OUT/student.pt "
                    "(use it with `crossdistill predict`) and OUT/distill.json.")
    q.add_argument("--shapes", required=True, help="folder of meshes of one category (unlabelled)")
    q.add_argument("--parts", required=True, help='comma-separated part names, e.g. "screen,keyboard"')
    q.add_argument("--teacher", choices=TEXT_TEACHERS, default="fewshot",
                   help="2D text teacher (default fewshot: trained here on --few-shot; the others need local weights)")
    q.add_argument("--few-shot", dest="few_shot", help="folder of labelled meshes (<stem>.labels.npy|npz|json beside "
                                                       "each) to train the few-shot teacher on")
    q.add_argument("--teacher-weights", help="local model directory of a real teacher, or a saved few-shot teacher")
    q.add_argument("--extra-shapes", help="more unlabelled shapes (e.g. generated ones) used as knowledge sources")
    q.add_argument("-o", "--output", required=True, help="output folder")
    q.add_argument("--views", type=int, default=10, help="rendered views per shape (default 10)")
    q.add_argument("--size", type=int, default=128,
                   help="render size in pixels (default 128, DistillConfig's; chosen in partdistill_emulated.md)")
    q.add_argument("--min-score", dest="min_score", type=float, default=0.5,
                   help="forward distillation uses 2D predictions at least this confident (default 0.5, "
                        "DistillConfig's, chosen in partdistill_emulated.md; OWLv2's own detection threshold is 0.1)")
    q.add_argument("--iterations", type=int, default=400, help="student steps per training run")
    q.add_argument("--points", type=int, default=2048,
                   help="surface points the student samples per shape, in training and in `predict` (default 2048)")
    q.add_argument("--teacher-iterations", type=int, default=500, help="few-shot teacher training steps")
    q.add_argument("--backward-rounds", type=int, default=1,
                   help="backward-distillation rounds after the forward one (default 1; 0 = forward only)")
    q.add_argument("--backward-rule", choices=["absolute", "class_relative", "reweight"], default="class_relative",
                   help="backward distillation keeps predictions whose student agreement is >= 0.5 (absolute), "
                        ">= 0.5 x their class's 90th-percentile agreement (class_relative, the default, "
                        "DistillConfig's, chosen in partdistill_emulated.md), or keeps them all "
                        "weighted by the share of their points the student gives their part (reweight, as the "
                        "released PartDistill code)")
    q.add_argument("--backward-init", choices=["fresh", "continue"], default="continue",
                   help="backward student: the forward student continued (continue, the default, as the released "
                        "code; chosen at the students' own budget in partdistill_emulated_budget.md) or new "
                        "weights (fresh)")
    q.add_argument("--backward-score", choices=["student", "product"], default="student",
                   help="a kept prediction's new confidence: the student's score (student, the default) or the "
                        "teacher's confidence times it (product)")
    q.add_argument("--backward-evidence", choices=["forward", "kept"], default="forward",
                   help="where a backward student learns a part is not: from every forward prediction (forward, the "
                        "default) or only from those re-scoring kept (kept: a box the student rejected says nothing)")
    q.add_argument("--backward-refine", type=float, default=0.5,
                   help="cut kept predictions to the points where the student's probability of their part is "
                        ">= this x its maximum inside them (a box becomes a mask; default 0.5, DistillConfig's, "
                        "chosen in partdistill_emulated_backward.md; 0 = off)")
    q.add_argument("--class-weights", choices=["none", "released"], default="none",
                   help="student loss: every part weighs 1 (none) or rare parts weigh up to 4x (released: the "
                        "released PartDistill code's smoothed inverse-frequency weights)")
    q.add_argument("--class-weight-stages", choices=["all", "forward"], default="all",
                   help="the students --class-weights applies to: every one (all, the default) or the forward "
                        "student only (forward: the backward students train unweighted)")
    q.add_argument("--negative-weight", type=float, default=None,
                   help="negative learning: a point seen in a view where a part was predicted, but outside that "
                        "part's predictions there, is pushed away from the part with this weight (0 = off; "
                        "default: per teacher, adopted in partdistill_emulated_budget.md: 2 for box teachers "
                        "(owlv2, grounding_dino), 1 for mask teachers (clipseg), where 2 scored lower; 0 for the "
                        "few-shot teacher, where it lowered every category of partdistill.md)")
    q.add_argument("--specificity", type=float, default=None,
                   help="gamma of the specificity weighting: every 2D prediction's votes and evidence count its "
                        "confidence times min(share^-gamma, 10), share the part of its view's visible points it "
                        "covers, so a small part's box is not outvoted by the body's box around it (0 = off; "
                        "default: per teacher, see partdistill_specificity.md)")
    q.add_argument("--share-targets", action="store_true",
                   help="the students' target for a part at a point is the share of the views that saw the part "
                        "there whose predictions cover the point, instead of the summed confidences (off by "
                        "default; see partdistill_lifting_evidence.md)")
    q.add_argument("--teacher-output", choices=["mask", "box"], default="mask",
                   help="few-shot teacher: pixel-level masks (default) or box-level predictions (GLIP-like)")
    q.add_argument("--teacher-candidates", type=float, default=0.0, metavar="P",
                   help="few-shot teacher: also return regions where a part is not the most probable but at "
                        "least P probable, as low-confidence candidates backward distillation may add (0: off)")
    q.add_argument("--teacher-inputs", choices=["world", "image"], default="world",
                   help="few-shot teacher trained with --few-shot sees world position + normal per pixel (world, "
                        "3D-aware) or only what one image shows (image: shaded colour, camera-frame normal, "
                        "relative depth), like a 2D model fine-tuned on renders; a saved teacher keeps its own")
    q.add_argument("--seed", type=int, default=0, help="seed of views, teacher and student training (default 0)")
    q.add_argument("--device", default="cpu", help="torch device")
    q.add_argument("--cache", help="teacher cache folder (default $CROSSDISTILL_CACHE or ~/.cache/crossdistill)")
    q.add_argument("--quiet", action="store_true", help="no progress bars or notes on stderr")
    q.set_defaults(func=run_partdistill)
    from crossdistill.cli.lidar_cmd import add_lidar_parser

    add_lidar_parser(methods)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def _teacher(args: argparse.Namespace, part_names, device: str, progress: bool):
    from crossdistill.errors import InputError
    from crossdistill.teachers.registry import load_teacher

    if args.teacher != "fewshot":
        return load_teacher(args.teacher, args.teacher_weights, device=device)
    from dataclasses import replace

    from crossdistill.teachers.fewshot import FewShotConfig, FewShotTextTeacher

    if args.teacher_weights:
        saved = FewShotTextTeacher.load(args.teacher_weights, device=device)
        return FewShotTextTeacher(saved.model, saved.part_names, replace(saved.config, output=args.teacher_output,
                                                                          candidate_min=args.teacher_candidates),
                                  device=device)
    if not args.few_shot:
        raise InputError("the few-shot teacher needs --few-shot LABELLED_DIR (or --teacher-weights of a saved one)")
    from crossdistill.geometry.normalize import normalize_shape
    from crossdistill.methods.partdistill.data import load_labelled_folder

    labelled = load_labelled_folder(args.few_shot, part_names)
    teacher = FewShotTextTeacher.fit([normalize_shape(s)[0] for s, _ in labelled], [lab for _, lab in labelled],
                                     part_names, FewShotConfig(iterations=args.teacher_iterations, seed=args.seed,
                                                   output=args.teacher_output,
                                                   candidate_min=args.teacher_candidates,
                                                   inputs=args.teacher_inputs),
                                     device=device, progress=progress)
    teacher.save(Path(args.output) / "fewshot_teacher.pt")
    return teacher


def run_partdistill(args: argparse.Namespace) -> int:
    import dataclasses

    from crossdistill.cli.common import say_teacher
    from crossdistill.cli.segment_cmd import _device
    from crossdistill.errors import InputError
    from crossdistill.geometry.io import load_shape
    from crossdistill.io_utils import write_json
    from crossdistill.methods.partdistill import DistillConfig, PartDistill, StudentConfig, save_student
    from crossdistill.methods.partdistill.distill import teacher_negative_weight, teacher_specificity
    from crossdistill.methods.partdistill.data import list_shape_files, parse_part_names
    from crossdistill.teachers import cached

    part_names = parse_part_names(args.parts)
    device = _device(args.device)
    if args.iterations < 1 or args.backward_rounds < 0:
        raise InputError("--iterations must be >= 1 and --backward-rounds >= 0")
    files = list_shape_files(args.shapes) + (list_shape_files(args.extra_shapes) if args.extra_shapes else [])
    out = Path(args.output)
    progress = not args.quiet
    teacher = cached(_teacher(args, part_names, device, progress), args.cache)
    say_teacher("text", teacher, args.quiet)
    config = DistillConfig(views=args.views, image_size=args.size, min_score=args.min_score,
                           pool_min_score=min(DistillConfig.pool_min_score, args.min_score),
                           backward_rounds=args.backward_rounds, backward_rule=args.backward_rule,
                           backward_init=args.backward_init, backward_score=args.backward_score,
                           backward_refine=args.backward_refine, backward_evidence=args.backward_evidence,
                           class_weight_stages=args.class_weight_stages,
                           negative_weight=teacher_negative_weight(teacher, args.negative_weight),
                           specificity=teacher_specificity(teacher, args.specificity),
                           share_targets=args.share_targets,
                           student=StudentConfig(iterations=args.iterations, seed=args.seed, n_points=args.points,
                                                 class_weights=None if args.class_weights == "none" else
                                                 args.class_weights))
    pd = PartDistill(teacher, part_names, config, device=device, progress=progress)
    items, failures = [], {}
    for path in files:
        try:
            items.append(pd.prepare(load_shape(path), str(path)))
        except (InputError, ValueError, OSError) as exc:  # one bad shape does not stop the category
            failures[str(path)] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            print(f"error: {path}: {failures[str(path)]}", file=sys.stderr)
    if not items:
        raise InputError(f"no usable shape among {len(files)} (see the errors above)")
    result = pd.fit(items)
    meta = {"method": "partdistill", "teacher": teacher.teacher_id, "shapes": [i.name for i in items],
            "config": config.to_dict(), "rounds": result.rounds}
    save_student(out / "student.pt", result.student, part_names, dataclasses.replace(config.student), meta)
    write_json(out / "distill.json", {**meta, "part_names": list(part_names), "failures": failures})
    if progress:
        print(f"{out / 'student.pt'}: {len(items)} shapes, {len(failures)} failed; "
              f"stages: {', '.join(r['stage'] for r in result.rounds)}", file=sys.stderr)
    return 1 if failures else 0
