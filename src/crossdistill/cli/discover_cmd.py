"""`crossdistill discover`: 2D part discovery on a folder of images (PartDistillation)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from crossdistill.cli.common import alias_note, say_teacher
from crossdistill.errors import InputError

TRAIN_MARKER = "discover.json"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("discover", help="discover object parts in images without labels (PartDistillation)",
                       description="Learn the parts of the objects in a folder of images, with no part labels "
                                   "(PartDistillation): an instance teacher finds the objects, k-means of its pixel "
                                   "features proposes parts, a query-based part decoder is self-trained on them and "
                                   "the parts recurring across an object class are ranked and named. An image's "
                                   "class is its sub-folder (ImageNet style). Writes OUT/model.pt, "
                                   "OUT/ranking.json, OUT/discover.json (last) and per image "
                                   "OUT/images/<name>/{parts.npy,part_classes.npy,overlay.png,parts.json}. "
                                   "With --model, only labels the images. Re-running resumes.")
    p.add_argument("input", nargs="?", help="an image or a folder of images (searched recursively)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--demo", action="store_true", help="render the built-in demo robot from 8 views and use those")
    p.add_argument("--model", default=None, help="a model.pt from an earlier run: label the images, no training")
    p.add_argument("--teacher", default="auto", choices=["auto", "offline", "mask2former"],
                   help="instance teacher: mask2former (local weights), offline (foreground + image features, no "
                        "weights), auto = mask2former when its weights are found, else offline (default)")
    p.add_argument("--teacher-weights", default=None, help="local Mask2Former model folder")
    p.add_argument("--k", type=int, nargs="+", default=[4], help="k-means cluster counts of the proposals (default 4)")
    p.add_argument("--rounds", type=int, default=2, help="decoder training rounds; 2 = one self-training round")
    p.add_argument("--iterations", "--steps", dest="steps", type=int, default=300,
                   help="decoder training steps per round (default 300)" + alias_note("--steps"))
    p.add_argument("--final-steps", type=int, default=None,
                   help="steps of the final self-training on class-specific part ids, which names the parts "
                        "(default: as many as --steps; 0 skips it)")
    p.add_argument("--grid", type=int, default=48, help="crop grid the decoder runs on (default 48)")
    p.add_argument("--max-side", type=int, default=512, help="larger images are shrunk to this side (default 512)")
    p.add_argument("--seed", type=int, default=0, help="seed of proposals and decoder training (default 0)")
    p.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_discover)


def _teacher(args: argparse.Namespace):
    """(instance teacher, class-id -> name mapping or None)."""
    from crossdistill.teachers.offline_instances import RenderInstanceTeacher
    from crossdistill.teachers.registry import backend, find_weights, load_teacher

    use_m2f = args.teacher == "mask2former" or (
        args.teacher == "auto" and (args.teacher_weights is not None or find_weights(backend("mask2former").hub_id)))
    if not use_m2f:
        say_teacher("instance", "offline (foreground components, image-only features)", args.quiet,
                    "no Mask2Former weights found; `crossdistill models download mask2former` gets them"
                    if args.teacher == "auto" else "")
        return RenderInstanceTeacher(), None
    teacher = load_teacher("mask2former", args.teacher_weights, device=args.device)
    say_teacher("instance", teacher, args.quiet)
    names = getattr(teacher.model.config, "id2label", None) or {}
    return teacher, {int(k): str(v) for k, v in names.items()}


def _demo_images(out: Path) -> Path:
    """Render the demo robot from 8 orbit views into OUT/demo_images/robot/ (class "robot")."""
    from crossdistill.geometry.demo import demo_shape
    from crossdistill.geometry.normalize import normalize_shape
    from crossdistill.io_utils import save_image
    from crossdistill.render.cameras import orbit_rig
    from crossdistill.render.renderer import render_shape

    shape, _ = normalize_shape(demo_shape())
    views = render_shape(shape, orbit_rig((15.0, 40.0), 4, size=256), n_samples=2000, progress=False).views
    folder = out / "demo_images" / "robot"
    for v in range(len(views)):
        path = folder / f"view{v}.png"
        if not path.exists():
            save_image(path, views.rgb[v])
    return out / "demo_images"


def _config(args: argparse.Namespace):
    from crossdistill.methods.partdistillation.pipeline import PartDistillationConfig
    from crossdistill.methods.partdistillation.proposals import ProposalConfig
    from crossdistill.methods.partdistillation.training import TrainConfig

    if (min(args.k) < 2 or args.rounds < 1 or args.steps < 1 or not 8 <= args.grid <= 128 or args.max_side < 32
            or (args.final_steps is not None and args.final_steps < 0)):
        raise InputError("need --k >= 2, --rounds >= 1, --steps >= 1, --final-steps >= 0, 8 <= --grid <= 128, "
                         "--max-side >= 32")
    return PartDistillationConfig(grid=args.grid, proposals=ProposalConfig(ks=tuple(args.k)), rounds=args.rounds,
                                  train=TrainConfig(steps=args.steps, seed=args.seed), final_steps=args.final_steps,
                                  seed=args.seed)


def run_discover(args: argparse.Namespace) -> int:
    import torch

    from crossdistill.cli.segment_cmd import _device
    from crossdistill.engine.batch import settings_hash
    from crossdistill.engine.outputs import check_output_dir
    from crossdistill.io_utils import write_json
    from crossdistill.methods.partdistillation.collection import MARKER, find_images, load_entries
    from crossdistill.methods.partdistillation.pipeline import PartDistillation
    from crossdistill.teachers.cache import hash_array

    device = _device(args.device)
    out = check_output_dir(args.output)
    if args.demo:
        root = _demo_images(out)
    elif args.input is None:
        raise InputError("give an image or a folder of images, or --demo")
    else:
        root = Path(args.input)
    items = find_images(root, exclude=(out,))
    config = _config(args)
    torch.manual_seed(args.seed)
    teacher, class_names = _teacher(args)
    progress = not args.quiet
    timings: dict[str, float] = {}

    t = time.perf_counter()
    model = PartDistillation.load(args.model, device) if args.model else None
    if model is not None and model.config.grid != config.grid:
        config = model.config
    entries, failures = load_entries(items, teacher, config.grid, args.max_side, class_names, progress,
                                     report=len(items) > 1)
    timings["teacher_s"] = time.perf_counter() - t
    if not entries and len(items) == 1:  # one image: its reason is the error
        raise InputError(next(iter(failures.values())))
    if not entries:
        raise InputError(f"none of the {len(items)} images could be read")
    crops = [c for e in entries for c in e.crops]
    if model is None:
        if not crops:
            raise InputError("the teacher found no object instance in any image")
        t = time.perf_counter()
        model, history = PartDistillation.fit(crops, config, teacher.teacher_id, device, progress)
        timings["train_s"] = time.perf_counter() - t
        model.save(out / "model.pt")
        write_json(out / "ranking.json", model.ranking.to_dict())
        losses = [r[-1] for r in history.losses]
    else:
        losses = []
        if model.teacher_id and model.teacher_id != teacher.teacher_id:
            print(f"warning: the model was trained on features of {model.teacher_id}, this run's teacher is "
                  f"{teacher.teacher_id}", file=sys.stderr)
    weights = hash_array(*[v.detach().cpu().numpy() for v in model.decoder.state_dict().values()], digest_size=8)
    digest = settings_hash({"model": weights, "teacher": teacher.teacher_id, "max_side": args.max_side})
    meta = {"settings_hash": digest, "teacher": teacher.teacher_id,
            "offline_teacher": bool(getattr(teacher, "is_offline_default", False)), "vocabulary": list(model.vocabulary)}

    t = time.perf_counter()
    done, skipped, claimed = label_images(entries, model, out, MARKER, digest, meta, device, failures, progress)
    timings["predict_s"] = time.perf_counter() - t
    if failures:
        write_json(out / "failures.json", failures)
    elif (out / "failures.json").exists():
        (out / "failures.json").unlink()
    write_json(out / TRAIN_MARKER, {**meta, "input": str(root), "config": model.config.to_dict(),
                                    "model": str(args.model or out / "model.pt"), "seed": args.seed,
                                    "device": device, "n_images": len(entries), "n_instances": len(crops),
                                    "failed": failures, "final_losses": losses, "timings": timings})
    print(f"discover: {done} images labelled, {skipped} already done, {len(failures)} failed"
          + (f", {claimed} claimed by another run" if claimed else "") + "; "
          f"{len(model.vocabulary)} part classes -> {out}", file=sys.stderr)
    return 1 if failures else 0


def label_images(entries, model, out: Path, marker: str, digest: str, meta: dict, device: str,
                 failures: dict[str, str], progress: bool) -> tuple[int, int, int]:
    """Label every image not already done for its content and these settings; (done, skipped,
    claimed by another run).

    Each image is claimed between processes first (:mod:`crossdistill.engine.claims`: an image
    another live run is labelling is left to it), then its folder is claimed for this run (stale
    files of another run removed); a failure is isolated: recorded in ``failures`` and the
    folder removed.
    """
    from tqdm.auto import tqdm

    from crossdistill.engine.claims import try_claim
    from crossdistill.engine.outputs import claim_item, discard_item, file_sha256, mark_output_root, seal_item
    from crossdistill.methods.partdistillation.collection import write_image_parts

    done = skipped = claimed = 0
    for entry in tqdm(entries, desc="parts", disable=not progress or len(entries) < 2, unit="img"):
        item_dir = out / "images" / entry.name
        try:
            grant = try_claim(out, f"images/{entry.name}")
        except OSError as exc:
            failures[entry.name] = f"OSError: {str(exc).splitlines()[0] if str(exc) else ''}"
            print(f"error: {entry.name}: {failures[entry.name]}", file=sys.stderr)
            continue
        if grant is None:
            claimed += 1
            continue
        with grant:  # failures are cleaned up while the image is still claimed
            try:
                sha = file_sha256(entry.path)
                if claim_item(item_dir, item_dir / marker, digest, sha, entry.path):
                    skipped += 1
                    continue
                mark_output_root(out)
                parts = model.predict_image(entry.crops, entry.instances.masks, device=device)
                write_image_parts(item_dir, entry, parts, model.vocabulary, meta)
                seal_item(item_dir / marker, sha)
                done += 1
            except (InputError, ValueError, OSError, RuntimeError, MemoryError) as exc:
                discard_item(item_dir, out)
                first = str(exc).splitlines()[0] if str(exc) else ""
                failures[entry.name] = first if isinstance(exc, InputError) else f"{type(exc).__name__}: {first}"
                print(f"error: {entry.name}: {failures[entry.name]}", file=sys.stderr)
    return done, skipped, claimed
