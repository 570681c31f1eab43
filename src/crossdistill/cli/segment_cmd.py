"""`crossdistill segment`: parts at any granularity for a mesh, a point cloud or a folder of them."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from pathlib import Path
from typing import Any

from crossdistill.cli.batch_options import add_batch_arguments
from crossdistill.cli.segment_options import (add_mask_teacher_arguments, add_preset_argument,
                                              mask_teacher_from_args, resolved_preset)
from crossdistill.errors import InputError

__all__ = ["add_parser", "add_mask_teacher_arguments", "mask_teacher_from_args", "config_from_args", "find_inputs"]

SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".off", ".pcd", ".npy", ".npz", ".las", ".laz")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="segment meshes / point clouds into parts at several scales (SAMPart3D)",
                       description="Segment any 3D object into parts at several granularities, no label set "
                                   "(SAMPart3D stages 2-3). INPUT is a file or a folder (searched recursively).")
    p.add_argument("input", nargs="?", help="mesh / point cloud file, or a folder of them")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--demo", action="store_true", help="segment the built-in demo robot instead of INPUT")
    p.add_argument("--scales", type=float, nargs="+", default=None,
                   help="scales to cluster at, in [0, 2] (default: the paper's 0 0.5 1 1.5 2)")
    p.add_argument("--points", type=int, default=None, help="surface points (default: the preset's, 15000)")
    p.add_argument("--views", type=int, default=None,
                   help="rendered views: 6 axis + random (default: the preset's, 36)")
    p.add_argument("--size", type=int, default=None, help="render resolution (default: the preset's, 384 fast, 512 paper)")
    p.add_argument("--iterations", type=int, default=None,
                   help="grouping-field training steps (default: the preset's, 400 fast, 5000 paper)")
    p.add_argument("--seed", type=int, default=0, help="seed of sampling, views, training and clustering (default 0)")
    p.add_argument("--device", default="cpu", help="torch device for training: cpu (default) or cuda")
    add_preset_argument(p)
    add_mask_teacher_arguments(p)
    p.add_argument("--backbone", default=None,
                   help="pretrained point backbone (stage 1, from `crossdistill pretrain`) feeding the grouping "
                        "field's F_B branch; default: none (a positional encoding of xyz)")
    p.add_argument("--merge-pieces", action="store_true",
                   help="meshes: let one part span several connected pieces when the grouping field joins them, "
                        "at every scale (with the offline teacher parts stay inside pieces below scale 2.0 by "
                        "default, which scored higher with its masks; SAM-like teachers never split at pieces)")
    p.add_argument("--no-field", dest="save_field", action="store_false",
                   help="do not keep the trained grouping field (field.pt, about 5 MB per object); "
                        "`crossdistill select` needs it")
    p.add_argument("--export-parts", choices=["glb", "obj", "ply"], default=None,
                   help="also write one file per part per scale into scale_<s>/parts/ (glb and obj keep UVs, "
                        "materials and textures; ply keeps normals and colours; point clouds always get ply)")
    add_batch_arguments(p, workers=True)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_segment)


def _backbone(args: argparse.Namespace):
    """None, or the pretrained point backbone of ``--backbone``."""
    if args.backbone is None:
        return None
    from crossdistill.methods.sampart3d.pretrain import PointBackbone

    return PointBackbone.load(args.backbone, device=_device(args.device))


def config_from_args(args: argparse.Namespace, teacher=None):
    """The :class:`SegmentConfig` the flags ask for: the preset, then the flags given, then the rules
    of ``teacher`` (None: the offline default) with ``--merge-pieces`` applied."""
    from crossdistill.methods.sampart3d.pipeline import preset

    name = resolved_preset(args)
    cfg = preset(name, seed=args.seed, device=_device(args.device))
    points = args.points if args.points is not None else cfg.n_points
    views = args.views if args.views is not None else cfg.n_views
    size = args.size if args.size is not None else cfg.image_size
    if points < 100:
        raise InputError(f"--points must be at least 100 (got {points})")
    if views < 6 or size < 32:
        raise InputError("--views must be >= 6 (the 6 axis views come first) and --size >= 32")
    scales = tuple(args.scales) if args.scales else cfg.scales
    if any(not (0.0 <= s <= 2.0) for s in scales):
        raise InputError(f"--scales must lie in [0, 2] (got {' '.join(f'{s:g}' for s in scales)})")
    unit = getattr(args, "scale_unit", None) or cfg.scale_unit
    cfg = dataclasses.replace(cfg, n_points=points, n_views=views, image_size=size, scales=scales, scale_unit=unit)
    if args.iterations is not None:
        if args.iterations < 1:
            raise InputError("--iterations must be >= 1")
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, iterations=args.iterations))
    return dataclasses.replace(cfg, merge_pieces=bool(getattr(args, "merge_pieces", False)))


def _device(name: str) -> str:
    """The checked torch device of ``--device`` (:func:`crossdistill.engine.devices.resolve_device`)."""
    from crossdistill.engine.devices import resolve_device

    return resolve_device(name)


def find_inputs(root: Path, exclude: tuple[Path, ...] = ()) -> list[tuple[str, Path]]:
    """(output name, path) of every supported file under ``root`` (or ``root`` itself).

    Names are unique per input and output trees are skipped (:mod:`crossdistill.engine.inputs`).
    """
    from crossdistill.engine.inputs import find_input_files

    return find_input_files(root, SUFFIXES, "mesh or point-cloud files", exclude)


class SegmentJob:
    """One object of a `segment` run: load, segment, write. Picklable, for worker processes: the
    teacher and backbone are not sent but rebuilt from ``args`` in each process (quietly)."""

    def __init__(self, args: argparse.Namespace, cfg: Any, settings: dict, digest: str, progress: bool,
                 teacher: Any = None, backbone: Any = None):
        self.args, self.cfg, self.settings, self.digest, self.progress = args, cfg, settings, digest, progress
        self._parts: tuple[Any, Any] | None = (teacher, backbone)  # None (after pickling): rebuild on first use

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_parts": None}

    def _teacher_backbone(self) -> tuple[Any, Any]:
        if self._parts is None:
            quiet = copy.copy(self.args)
            quiet.quiet = True
            self._parts = (mask_teacher_from_args(quiet), _backbone(self.args))
        return self._parts

    def __call__(self, path: Path | None, item_dir: Path) -> None:
        from crossdistill.geometry.demo import demo_shape
        from crossdistill.geometry.io import load_shape
        from crossdistill.methods.sampart3d.outputs import write_segmentation
        from crossdistill.methods.sampart3d.pipeline import segment_shape

        teacher, backbone = self._teacher_backbone()
        shape = demo_shape() if path is None else load_shape(path)
        seg = segment_shape(shape, self.cfg, mask_teacher=teacher, backbone=backbone, progress=self.progress)
        write_segmentation(seg, shape, item_dir, self.settings, self.digest, save_field=self.args.save_field,
                           export_parts=self.args.export_parts)
        if self.progress:
            counts = ", ".join(f"{s:g}:{int(seg.labels(i).max()) + 1}" for i, s in enumerate(seg.scales))
            total = sum(seg.timings.values())
            print(f"{item_dir}: parts per scale {counts} ({total:.1f} s)", file=sys.stderr)


def run_segment(args: argparse.Namespace) -> int:
    from crossdistill.engine.batch import run_inputs, settings_hash
    from crossdistill.methods.sampart3d.outputs import MARKER

    ray = getattr(args, "ray", None)
    if ray is not None:
        from crossdistill.engine.ray_tasks import check_address, import_ray

        import_ray()  # a missing extra or an address nobody answers at is one line before any work
        check_address(ray)
    teacher = mask_teacher_from_args(args)
    cfg = config_from_args(args, teacher)
    backbone = _backbone(args)
    settings = dataclasses.asdict(cfg) | {"mask_teacher": getattr(teacher, "teacher_id", "offline-render-masks-v1"),
                                          "backbone": None if backbone is None else backbone.fingerprint}
    if args.export_parts:  # asking for part files later redoes the object (its marker records what was written)
        settings["export_parts"] = args.export_parts
    digest = settings_hash(settings)
    out = Path(args.output)
    progress = not args.quiet
    workers = int(getattr(args, "workers", 1) or 1)
    job = SegmentJob(args, cfg, settings, digest, progress=progress and workers == 1 and ray is None, teacher=teacher,
                     backbone=backbone)

    if args.demo:
        items: list = [("demo", None)]
    elif args.input is None:
        raise InputError("give an INPUT file or folder, or --demo")
    else:
        items = find_inputs(Path(args.input))
    return run_inputs(items, out, MARKER, digest, job, progress=progress, desc="segment", shard=args.shard,
                      workers=workers, threads=getattr(args, "threads", None), ray=ray)
