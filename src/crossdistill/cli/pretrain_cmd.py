"""`crossdistill pretrain`: SAMPart3D stage 1, a point backbone distilled from 2D features of many shapes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crossdistill.cli.common import alias_note, say_teacher
from crossdistill.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pretrain", help="pretrain a point backbone by distilling 2D features (SAMPart3D stage 1)",
                       description="Render every shape under SHAPES, run a 2D feature teacher on the views, "
                                   "back-project its features onto sampled points and train a point backbone to "
                                   "predict them. Use the result with `crossdistill segment --backbone OUT`.")
    p.add_argument("shapes", help="folder of meshes / point clouds (searched recursively), no labels needed")
    p.add_argument("-o", "--output", required=True, help="backbone checkpoint to write (e.g. backbone.pt)")
    p.add_argument("--teacher", choices=["auto", "offline", "dinov2"], default="auto",
                   help="2D feature teacher: dinov2 (local weights), offline (render features, no weights), "
                        "auto = dinov2 when its weights are found, else offline (default)")
    p.add_argument("--teacher-weights", default=None, help="local DINOv2 model folder")
    p.add_argument("--points", type=int, default=4096, help="points per shape (default 4096)")
    p.add_argument("--views", type=int, default=12, help="views per shape: 6 axis + random (default 12)")
    p.add_argument("--size", type=int, default=224, help="render resolution (default 224)")
    p.add_argument("--iterations", "--steps", dest="steps", type=int, default=400,
                   help="training steps (default 400)" + alias_note("--steps"))
    p.add_argument("--batch", type=int, default=4, help="shapes per step (default 4)")
    p.add_argument("--width", type=int, default=96, help="backbone channels of the light network (default 96)")
    p.add_argument("--backbone", choices=["light", "ptv3", "ptv3-paper"], default="light",
                   help="network: light (kNN pooling, default), ptv3 (PTv3-object, CPU preset) or ptv3-paper "
                        "(SAMPart3D's PTv3-object configuration; a GPU network)")
    p.add_argument("--seed", type=int, default=0, help="seed of sampling, views and training (default 0)")
    p.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_pretrain)


def _teacher(args: argparse.Namespace):
    """The feature teacher: DINOv2 from local weights (disk-cached), or the offline render features; one
    line on stderr names it."""
    from crossdistill.teachers.offline_features import RenderFeatureTeacher
    from crossdistill.teachers.registry import backend, find_weights, load_teacher

    if args.teacher == "offline":
        teacher = RenderFeatureTeacher()
        say_teacher("feature", teacher, args.quiet)
        return teacher
    if args.teacher == "auto" and args.teacher_weights is None and find_weights(backend("dinov2").hub_id) is None:
        teacher = RenderFeatureTeacher()
        say_teacher("feature", teacher, args.quiet,
                    "no DINOv2 weights found; `crossdistill models download dinov2` gets them")
        return teacher
    from crossdistill.teachers.cache import cached

    teacher = cached(load_teacher("dinov2", args.teacher_weights, device=args.device))
    say_teacher("feature", teacher, args.quiet)
    return teacher


def run_pretrain(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from crossdistill.cli.segment_cmd import _device, find_inputs
    from crossdistill.geometry.io import load_shape
    from crossdistill.methods.sampart3d.pretrain import PretrainConfig, prepare_shape, pretrain_backbone

    if args.points < 64 or args.views < 6 or args.size < 32 or args.steps < 1 or args.batch < 1 or args.width < 4:
        raise InputError("need --points >= 64, --views >= 6, --size >= 32, --steps >= 1, --batch >= 1, --width >= 4")
    root = Path(args.shapes)
    if not root.is_dir():
        raise InputError(f"--shapes must be a folder of shapes: {root}")
    config = PretrainConfig(n_points=args.points, n_views=args.views, image_size=args.size, width=args.width,
                            backbone=args.backbone, steps=args.steps, batch=args.batch, seed=args.seed,
                            device=_device(args.device))
    teacher = _teacher(args)
    data, failures = [], {}
    for i, (name, path) in enumerate(tqdm(find_inputs(root), desc="render + teacher", disable=args.quiet)):
        try:
            data.append(prepare_shape(load_shape(path), teacher, config, seed=args.seed + i))
        except InputError as exc:  # one bad shape does not stop the others
            failures[name] = str(exc)
            print(f"skipped {name}: {exc}", file=sys.stderr)
    if not data:
        raise InputError(f"none of the shapes under {root} could be used ({len(failures)} failed)")
    result = pretrain_backbone(data, teacher.teacher_id, config, progress=not args.quiet)
    result.backbone.meta["failures"] = failures
    result.backbone.save(args.output)
    if not args.quiet:
        print(f"{args.output}: {len(data)} shapes, {result.backbone.channels} channels from {teacher.teacher_id}, "
              f"final loss {result.backbone.meta['final_loss']:.3f}", file=sys.stderr)
    return 0
