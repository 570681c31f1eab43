"""`crossdistill pretrain`: SAMPart3D stage 1, a point backbone distilled from 2D features of many shapes.

Two phases: (1) every shape is sampled, rendered and run through the feature teacher once, into
a sharded cache (``--cache``; ``--workers N`` parallel tasks, Ray tasks when ray is installed;
a rerun keeps the finished shards); (2) the backbone trains streaming from the cache (memory
independent of the collection), checkpointing to ``--run-dir`` so that a rerun after a kill
resumes. Started as ``torchrun --nproc_per_node N $(which crossdistill) pretrain ...`` every
process is one DDP rank: rank 0 builds the cache, the others wait for it, then all train with
``--batch`` as the global batch.
"""

from __future__ import annotations

import argparse
import sys
import time
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
    p.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda (under torchrun: "
                                                   "each rank takes cuda:LOCAL_RANK)")
    p.add_argument("--cache", default=None,
                   help="folder of the render + teacher cache (default: OUTPUT.cache); reused when rerun")
    p.add_argument("--run-dir", default=None,
                   help="folder of the training checkpoint, scalars.csv and loss.png (default: OUTPUT.run); "
                        "a rerun resumes from it")
    p.add_argument("--checkpoint-every", type=int, default=50, help="checkpoint every N steps (default 50)")
    p.add_argument("--accumulate", type=int, default=1,
                   help="micro-batches of --batch shapes per optimizer step (default 1)")
    p.add_argument("--shard-size", type=int, default=64, help="shapes per cache shard and task (default 64)")
    p.add_argument("--workers", type=int, default=1,
                   help="parallel render + teacher tasks (default 1): Ray tasks when ray is installed, "
                        "else processes")
    p.add_argument("--executor", choices=["auto", "ray", "processes"], default="auto",
                   help="how --workers run: auto (Ray when installed), ray, processes")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_pretrain)


def _teacher(args: argparse.Namespace):
    """(recipe, teacher) of the feature teacher: DINOv2 from local weights (disk-cached), or the offline
    render features; one line on stderr names it."""
    from crossdistill.methods.sampart3d.pretrain_cache import TeacherSpec
    from crossdistill.teachers.registry import backend, find_weights

    why = ""
    name = args.teacher
    if name == "auto":
        if args.teacher_weights is None and find_weights(backend("dinov2").hub_id) is None:
            name, why = "offline", "no DINOv2 weights found; `crossdistill models download dinov2` gets them"
        else:
            name = "dinov2"
    spec = TeacherSpec(name, args.teacher_weights, _device(args.device) if name != "offline" else "cpu")
    teacher = spec.build()
    say_teacher("feature", teacher, args.quiet, why)
    return spec, teacher


def _device(name: str) -> str:
    from crossdistill.cli.segment_cmd import _device as resolve

    return resolve(name)


def _wait_for(path: Path, what: str, poll: float = 1.0) -> None:
    """Block until ``path`` exists (ranks > 0 wait for rank 0's cache)."""
    while not path.is_file():
        time.sleep(poll)


def run_pretrain(args: argparse.Namespace) -> int:
    from crossdistill.cli.segment_cmd import find_inputs
    from crossdistill.engine.distributed import world
    from crossdistill.methods.sampart3d.pretrain import PretrainConfig, pretrain_backbone
    from crossdistill.methods.sampart3d.pretrain_cache import ShapeCache, _worker_teacher, build_cache

    if args.points < 64 or args.views < 6 or args.size < 32 or args.steps < 1 or args.batch < 1 or args.width < 4:
        raise InputError("need --points >= 64, --views >= 6, --size >= 32, --steps >= 1, --batch >= 1, --width >= 4")
    if args.workers < 1 or args.shard_size < 1 or args.accumulate < 1 or args.checkpoint_every < 0:
        raise InputError("need --workers >= 1, --shard-size >= 1, --accumulate >= 1, --checkpoint-every >= 0")
    root = Path(args.shapes)
    if not root.is_dir():
        raise InputError(f"--shapes must be a folder of shapes: {root}")
    out = Path(args.output)
    cache_dir = Path(args.cache) if args.cache else out.with_name(out.name + ".cache")
    run_dir = Path(args.run_dir) if args.run_dir else out.with_name(out.name + ".run")
    config = PretrainConfig(n_points=args.points, n_views=args.views, image_size=args.size, width=args.width,
                            backbone=args.backbone, steps=args.steps, batch=args.batch, seed=args.seed,
                            device=_device(args.device))
    w = world()
    if w.is_main:
        spec, teacher = _teacher(args)
        _worker_teacher[spec] = teacher  # one-process tasks reuse the loaded teacher
        files = find_inputs(root, exclude=(cache_dir, run_dir))
        cache = build_cache(files, cache_dir, config, spec, shard_size=args.shard_size, workers=args.workers,
                            executor=args.executor, progress=not args.quiet)
        for name, why in sorted(cache.failures.items()):
            print(f"skipped {name}: {why}", file=sys.stderr)
    else:
        _wait_for(cache_dir / "manifest.json", "the pretraining cache")
        cache = ShapeCache(cache_dir)
    result = pretrain_backbone(cache, cache.teacher_id, config, progress=not args.quiet, run_dir=run_dir,
                               checkpoint_every=args.checkpoint_every, accumulate=args.accumulate)
    if not w.is_main:
        return 0
    result.backbone.meta["failures"] = cache.failures
    result.backbone.save(out)
    if not args.quiet:
        print(f"{out}: {len(cache)} shapes, {result.backbone.channels} channels from {cache.teacher_id}, "
              f"final loss {result.backbone.meta['final_loss']:.3f} ({w.size} process(es); "
              f"cache {cache_dir}, run {run_dir})", file=sys.stderr)
    return 0
