"""`crossdistill segment`: parts at any granularity for a mesh, a point cloud or a folder of them."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from crossdistill.errors import InputError

SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".off", ".pcd", ".npy", ".npz", ".las", ".laz")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="segment meshes / point clouds into parts at several scales (SAMPart3D)",
                       description="Segment any 3D object into parts at several granularities, no label set "
                                   "(SAMPart3D stages 2-3). INPUT is a file or a folder (searched recursively).")
    p.add_argument("input", nargs="?", help="mesh / point cloud file, or a folder of them")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--demo", action="store_true", help="segment the built-in demo robot instead of INPUT")
    p.add_argument("--scales", type=float, nargs="+", default=None,
                   help="scales to cluster at (default: the paper's 0 0.5 1 1.5 2)")
    p.add_argument("--points", type=int, default=15000, help="surface points (default 15000)")
    p.add_argument("--views", type=int, default=36, help="rendered views: 6 axis + random (default 36)")
    p.add_argument("--size", type=int, default=384, help="render resolution (default 384)")
    p.add_argument("--iterations", type=int, default=None, help="grouping-field training steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device for training: cpu (default) or cuda")
    add_mask_teacher_arguments(p)
    p.add_argument("--backbone", default=None,
                   help="pretrained point backbone (stage 1, from `crossdistill pretrain`) feeding the grouping "
                        "field's F_B branch; default: none (a positional encoding of xyz)")
    p.add_argument("--merge-pieces", action="store_true",
                   help="meshes: let one part span several connected pieces when the grouping field joins them, "
                        "at every scale (default: only at scale 2.0, the coarsest; finer scales keep parts inside "
                        "pieces, which scored higher with the offline masks)")
    p.add_argument("--no-field", dest="save_field", action="store_false",
                   help="do not keep the trained grouping field (field.pt, about 5 MB per object); "
                        "`crossdistill select` needs it")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_segment)


def add_mask_teacher_arguments(p: argparse.ArgumentParser, default: str = "auto") -> None:
    """--mask-teacher and --sam-weights, shared by `segment` and `eval --method segment`."""
    p.add_argument("--mask-teacher", default=default, choices=["auto", "offline", "sam", "learned"],
                   help="2D mask teacher: sam (needs local SAM weights), offline (render-based, no weights), "
                        "learned (a teacher trained on labelled shapes, --mask-model), "
                        f"auto = sam when its weights are found, else offline (default: {default})")
    p.add_argument("--sam-weights", default=None, help="local SAM model folder (default: facebook/sam-vit-base)")
    p.add_argument("--mask-model", default=None,
                   help="--mask-teacher learned: the trained teacher file (LearnedMaskTeacher.save)")


def mask_teacher_from_args(args: argparse.Namespace):
    """None (the pipeline's offline default) or a SAM teacher loaded from local weights."""
    from crossdistill.teachers.registry import load_mask_teacher

    weights = args.mask_model if args.mask_teacher == "learned" else args.sam_weights
    teacher = load_mask_teacher(args.mask_teacher, weights, device=args.device)
    if teacher is None and args.mask_teacher == "auto" and not getattr(args, "quiet", False):
        print("mask teacher: offline render-based masks (no SAM weights found; see `crossdistill teachers`)",
              file=sys.stderr)
    return teacher


def _backbone(args: argparse.Namespace):
    """None, or the pretrained point backbone of ``--backbone``."""
    if args.backbone is None:
        return None
    from crossdistill.methods.sampart3d.pretrain import PointBackbone

    return PointBackbone.load(args.backbone, device=_device(args.device))


def _config(args: argparse.Namespace):
    from crossdistill.methods.sampart3d.pipeline import PAPER_SCALES, SegmentConfig

    if args.points < 100:
        raise InputError(f"--points must be at least 100 (got {args.points})")
    if args.views < 6 or args.size < 32:
        raise InputError("--views must be >= 6 (the 6 axis views come first) and --size >= 32")
    scales = tuple(args.scales) if args.scales else PAPER_SCALES
    if any(s < 0 for s in scales):
        raise InputError("--scales must be non-negative")
    cfg = SegmentConfig(n_points=args.points, n_views=args.views, image_size=args.size, scales=scales,
                        seed=args.seed, device=_device(args.device), merge_pieces=args.merge_pieces)
    if args.iterations is not None:
        if args.iterations < 1:
            raise InputError("--iterations must be >= 1")
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, iterations=args.iterations))
    return cfg


def _device(name: str) -> str:
    import torch

    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {name} requested but CUDA is not available on this machine")
    if not (name == "cpu" or name.startswith("cuda")):
        raise InputError(f"--device must be cpu or cuda[:N] (got {name!r})")
    return name


def find_inputs(root: Path, exclude: tuple[Path, ...] = ()) -> list[tuple[str, Path]]:
    """(output name, path) of every supported file under ``root`` (or ``root`` itself).

    Names are unique per input and output trees are skipped (:mod:`crossdistill.engine.inputs`).
    """
    from crossdistill.engine.inputs import find_input_files

    return find_input_files(root, SUFFIXES, "mesh or point-cloud files", exclude)


def run_segment(args: argparse.Namespace) -> int:
    from crossdistill.engine.batch import run_inputs, settings_hash
    from crossdistill.geometry.demo import demo_shape
    from crossdistill.geometry.io import load_shape
    from crossdistill.methods.sampart3d.outputs import MARKER, write_segmentation
    from crossdistill.methods.sampart3d.pipeline import segment_shape

    cfg = _config(args)
    teacher = mask_teacher_from_args(args)
    backbone = _backbone(args)
    settings = dataclasses.asdict(cfg) | {"mask_teacher": getattr(teacher, "teacher_id", "offline-render-masks-v1"),
                                          "backbone": None if backbone is None else backbone.fingerprint}
    digest = settings_hash(settings)
    out = Path(args.output)
    progress = not args.quiet

    def job(path: Path | None, item_dir: Path) -> None:
        shape = demo_shape() if path is None else load_shape(path)
        seg = segment_shape(shape, cfg, mask_teacher=teacher, backbone=backbone, progress=progress)
        write_segmentation(seg, shape, item_dir, settings, digest, save_field=args.save_field)
        if progress:
            counts = ", ".join(f"{s:g}:{int(seg.labels(i).max()) + 1}" for i, s in enumerate(seg.scales))
            total = sum(seg.timings.values())
            print(f"{item_dir}: parts per scale {counts} ({total:.1f} s)", file=sys.stderr)

    if args.demo:
        items: list = [("demo", None)]
    elif args.input is None:
        raise InputError("give an INPUT file or folder, or --demo")
    else:
        items = find_inputs(Path(args.input))
    return run_inputs(items, out, MARKER, digest, job, progress=progress, desc="segment")
