"""`crossdistill predict`: label new shapes with a trained PartDistill student."""

from __future__ import annotations

import argparse
from pathlib import Path

from crossdistill.cli.batch_options import add_batch_arguments

MARKER = "predict.json"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="label shapes with a trained student (from `distill partdistill`)",
                       description="Semantic part labels for a mesh / point cloud or a folder of them. Per shape: "
                                   "OUT/<name>/labels.npy (int32, input face order, or point order for point "
                                   "clouds), labels.json with the part names, parts_colored.glb and parts.glb (one "
                                   "named node per part). Folders resume and isolate failures.")
    p.add_argument("input", help="mesh / point cloud file or folder")
    p.add_argument("--checkpoint", required=True, help="student.pt written by `crossdistill distill partdistill`")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--device", default="cpu", help="torch device")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_batch_arguments(p, unit="shapes")
    p.set_defaults(func=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    from crossdistill.cli.segment_cmd import _device, find_inputs
    from crossdistill.engine.batch import run_inputs, settings_hash
    from crossdistill.export.parts import write_scale_outputs
    from crossdistill.geometry.io import load_shape
    from crossdistill.io_utils import write_json
    from crossdistill.methods.partdistill import label_shape, load_student
    from crossdistill.teachers.cache import hash_array

    device = _device(args.device)
    ckpt = load_student(args.checkpoint, device)
    weights = hash_array(*[v.cpu().numpy() for v in ckpt.model.state_dict().values()], digest_size=8)
    digest = settings_hash({"checkpoint": weights, "part_names": list(ckpt.part_names)})
    out = Path(args.output)
    items = find_inputs(Path(args.input), exclude=(out,))

    def job(path: Path, item_dir: Path) -> None:
        shape = load_shape(path)
        labels = label_shape(ckpt, shape, device)
        write_scale_outputs(item_dir, shape, labels, ckpt.part_names)
        counts = {n: int((labels == i).sum()) for i, n in enumerate(ckpt.part_names)}
        write_json(item_dir / MARKER, {"settings_hash": digest, "input": str(path), "checkpoint": str(args.checkpoint),
                                       "part_names": list(ckpt.part_names),
                                       "element": "face" if shape.is_mesh else "point", "counts": counts})

    return run_inputs(items, out, MARKER, digest, job, progress=not args.quiet, desc="predict",
                      shard=args.shard)
