"""`crossdistill distill lidar`: LiDAR semantic segmentation distilled from a 2D teacher (UDAKD / FSKD)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from crossdistill.cli.common import say_teacher
from crossdistill.errors import InputError

MARKER = "distill.json"


def add_lidar_parser(methods: argparse._SubParsersAction) -> None:
    q = methods.add_parser(
        "lidar", help="LiDAR semantic segmentation from a 2D teacher through calibrated cameras (UDAKD / FSKD)",
        description="Distil a 2D semantic teacher into a sparse-voxel LiDAR student, with no 3D label: each point "
                    "seen by a camera takes the teacher's features and class scores at its pixel (computed once "
                    "per teacher and frame into a target cache, --cache); the student (U-Net + self-calibrated "
                    "domain-adaptation module + the teacher's own classifier, shared) learns them by InfoNCE feature "
                    "alignment (udakd) or features + soft-label KL (fskd) on the training frames, streamed in "
                    "augmented batches, and then labels every point of every frame, seen or not. Frames are split "
                    "into training and test frames (--test-fraction; by sequence / log when there are several); "
                    "the zero-shot IoU is one confusion matrix over the test frames' labelled points. Writes "
                    "OUT/student.pt, per frame OUT/frames/<id>/{labels.npy,labels.json,bev.png} and "
                    "OUT/distill.json (last).")
    src = q.add_mutually_exclusive_group(required=True)
    src.add_argument("--kitti", help="KITTI object-layout folder (training/{velodyne,image_2,calib,label_2})")
    src.add_argument("--nuscenes", help="folder with an mmdetection3d nuScenes sample.json, scans and images")
    src.add_argument("--semantic-kitti", help="SemanticKITTI dataset folder (sequences/NN/{velodyne,labels,image_2,"
                                              "calib.txt})")
    src.add_argument("--nuscenes-lidarseg", help="nuScenes dataroot with lidarseg (v1.0-*/*.json, samples/, lidarseg/)")
    q.add_argument("-o", "--output", required=True, help="output folder")
    q.add_argument("--mode", choices=["udakd", "fskd"], default="fskd",
                   help="udakd: InfoNCE feature alignment; fskd: features + the soft labels' KL divergence (default)")
    q.add_argument("--teacher", choices=["auto", "box2d", "segformer"], default="auto",
                   help="segformer (local weights), box2d (offline: trained here on the training frames' 2D boxes, "
                        "or loaded with --teacher-weights), auto = segformer when its weights are found, else box2d")
    q.add_argument("--teacher-weights", help="local SegFormer folder, or a saved box2d teacher (teacher.pt)")
    q.add_argument("--teacher-frames", nargs="*", default=None,
                   help="box2d: the frames whose 2D boxes it trains on (default: every training frame with 2D boxes)")
    q.add_argument("--teacher-extra", nargs="*", default=[],
                   help="box2d: more KITTI / nuScenes folders whose 2D boxes it also trains on (classes mapped by "
                        "name: a nuScenes bus is a KITTI truck); their scans are not distilled")
    q.add_argument("--teacher-iterations", type=int, default=1000, help="box2d teacher training steps (default 1000)")
    q.add_argument("--student", help="a student.pt from an earlier run: label the frames, no training")
    q.add_argument("--cache", help="target cache folder, shared by runs with the same teacher (default OUT/targets)")
    q.add_argument("--test-fraction", type=float, default=0.5,
                   help="share of the frames (or sequences / logs) held out for the zero-shot score (default 0.5)")
    q.add_argument("--iterations", type=int, default=300, help="student steps (default 300)")
    q.add_argument("--batch-size", type=int, default=2, help="scans per step (default 2)")
    q.add_argument("--workers", type=int, default=0, help="DataLoader worker processes reading frames (default 0)")
    q.add_argument("--no-augment", dest="augment", action="store_false",
                   help="no rotation / flip / scaling / jitter of the training scans")
    q.add_argument("--voxel-size", type=float, default=0.2, help="student voxel side in metres (default 0.2)")
    q.add_argument("--backend", choices=["auto", "torch", "spconv"], default="auto",
                   help="sparse convolution: spconv when installed (auto), or the pure-torch rulebook")
    q.add_argument("--no-da", dest="use_da", action="store_false", help="without the domain-adaptation module")
    q.add_argument("--seed", type=int, default=0, help="seed of the split, the teacher and student training (default 0)")
    q.add_argument("--device", default="cpu", help="torch device")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=run_lidar)


def _source(args: argparse.Namespace):
    """The frame source of the chosen folder (lazy: only its index is read here)."""
    from crossdistill.methods.lidar_kd.datasets import open_source

    for flag, layout in (("kitti", "kitti"), ("nuscenes", "nuscenes"), ("semantic_kitti", "semantickitti"),
                         ("nuscenes_lidarseg", "nuscenes_lidarseg")):
        path = getattr(args, flag)
        if path:
            if not Path(path).exists():
                raise InputError(f"input not found: {path}")
            return open_source(path, layout)
    raise InputError("no LiDAR folder given")


def _split(args: argparse.Namespace, source) -> tuple[list[str], list[str]]:
    """(training ids, test ids); a single frame is both (with a note in distill.json)."""
    from crossdistill.methods.lidar_kd.datasets import split_ids

    if len(source.ids) < 2:
        return list(source.ids), list(source.ids)
    return split_ids(source.ids, args.test_fraction, args.seed, getattr(source, "groups", None))


def _usable(source, ids, progress: bool) -> tuple[list[str], dict[str, str]]:
    """The ids whose frames load and pass the checks, and {id: why not} (one stderr line each)."""
    failures: dict[str, str] = {}
    ok = []
    for fid in ids:
        try:
            source.load(fid)
            ok.append(fid)
        except (InputError, ValueError, OSError) as exc:
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            why = why if isinstance(exc, InputError) else f"{type(exc).__name__}: {why}"
            failures[fid] = why if why.startswith("frame ") else f"frame {fid}: {why}"
    if not ok and len(failures) == 1:  # the only frame is bad: its reason is the error
        raise InputError(next(iter(failures.values())))
    for why in failures.values():
        print(f"error: {why}", file=sys.stderr)
    if not ok:
        raise InputError(f"no usable frame ({len(failures)} bad)")
    return ok, failures


def _teacher(args: argparse.Namespace, source, train_ids: list[str], out: Path, progress: bool):
    from crossdistill.methods.lidar_kd.frames import box_training_data, load_frames
    from crossdistill.teachers.box2d import BoxSupervisedTeacher, BoxTeacherConfig
    from crossdistill.teachers.registry import backend, find_weights, load_teacher

    weights_dir = args.teacher_weights is not None and Path(args.teacher_weights).is_dir()
    if args.teacher == "segformer" or (args.teacher == "auto" and (weights_dir or (
            args.teacher_weights is None and find_weights(backend("segformer").hub_id)))):
        teacher = load_teacher("segformer", args.teacher_weights, device=args.device)
        say_teacher("2D", teacher, not progress)
        return teacher
    if args.teacher_weights:
        teacher = BoxSupervisedTeacher.load(args.teacher_weights, args.device)
        say_teacher("2D", teacher, not progress, f"box2d loaded from {args.teacher_weights}")
        return teacher
    wanted = train_ids if args.teacher_frames is None else source.select(args.teacher_frames)
    chosen = [source.load(i) for i in wanted]
    class_names = chosen[0].class_names
    for extra in args.teacher_extra:
        chosen += load_frames(extra)
    imgs, labs = box_training_data(chosen, class_names)
    if not imgs:
        raise InputError("the box2d teacher needs frames with 2D boxes (--teacher-frames), or --teacher-weights")
    say_teacher("2D", "box2d", not progress, f"trained here on the 2D boxes of {len(imgs)} images"
                + ("; no SegFormer weights found" if args.teacher == "auto" else ""))
    teacher = BoxSupervisedTeacher.fit(imgs, labs, class_names,
                                       BoxTeacherConfig(iterations=args.teacher_iterations, seed=args.seed),
                                       args.device, progress)
    teacher.save(out / "teacher.pt")
    return teacher


def run_lidar(args: argparse.Namespace) -> int:
    from crossdistill.cli.segment_cmd import _device

    args.device = _device(args.device)
    if args.iterations < 1 or args.voxel_size <= 0 or args.teacher_iterations < 1 or args.batch_size < 1 \
            or args.workers < 0 or not 0 < args.test_fraction < 1:
        raise InputError("need --iterations >= 1, --teacher-iterations >= 1, --voxel-size > 0, --batch-size >= 1, "
                         "--workers >= 0 and 0 < --test-fraction < 1")
    progress = not args.quiet
    out = Path(args.output)
    source = _source(args)
    ids, failures = _usable(source, source.ids, progress)
    before = {p for p in (out / "teacher.pt", out / "student.pt") if p.exists()}
    try:
        return _distill_and_label(args, source, ids, failures, out, progress)
    except BaseException:  # no model file of a run that did not finish
        for p in (out / "teacher.pt", out / "student.pt"):
            if p not in before:
                p.unlink(missing_ok=True)
        raise


def _distill_and_label(args: argparse.Namespace, source, ids: list[str], failures: dict[str, str], out: Path,
                       progress: bool) -> int:
    """Train (or load) the student, label every frame, write distill.json last; the exit code."""
    import numpy as np

    from crossdistill.io_utils import save_image, save_npy, write_json
    from crossdistill.methods.lidar_kd.cache import TargetCache
    from crossdistill.methods.lidar_kd.datasets import split_ids
    from crossdistill.methods.lidar_kd.distill import DistillConfig, load_student, save_student, train_student
    from crossdistill.methods.lidar_kd.evaluate import evaluate_frames
    from crossdistill.methods.lidar_kd.loader import Augment
    from crossdistill.methods.lidar_kd.student import StudentConfig
    from crossdistill.viz.bev import bev_image

    groups = getattr(source, "groups", None)
    if groups is not None:
        groups = [g for i, g in zip(source.ids, groups) if i in set(ids)]
    train, test = (ids, ids) if len(ids) < 2 else split_ids(ids, args.test_fraction, args.seed, groups)
    timings: dict[str, float] = {}
    cache = None
    t = time.perf_counter()
    if args.student:
        student, class_names, config = load_student(args.student, args.device)
        teacher_id = "(from the student checkpoint)"
        losses: list[float] = []
    else:
        teacher = _teacher(args, source, train, out, progress)
        timings["teacher_s"] = time.perf_counter() - t
        class_names, teacher_id = tuple(teacher.class_names), teacher.teacher_id
        t = time.perf_counter()
        cache = TargetCache(Path(args.cache) if args.cache else out / "targets", teacher_id)
        counts = cache.fill(source, teacher, ids, progress)
        timings["targets_s"] = time.perf_counter() - t
        timings.update({f"targets_{k}": v for k, v in counts.items()})
        config = DistillConfig(mode=args.mode, iterations=args.iterations, seed=args.seed, batch_size=args.batch_size,
                               workers=args.workers, augment=Augment() if args.augment else None,
                               student=StudentConfig(voxel_size=args.voxel_size, use_da=args.use_da,
                                                     backend=args.backend))
        t = time.perf_counter()
        student, losses = train_student(source, cache, train, teacher.classifier(), config, args.device, progress)
        timings["train_s"] = time.perf_counter() - t
        save_student(out / "student.pt", student, class_names, config, teacher_id)

    def write(frame, probs) -> None:
        labels = probs.argmax(1).astype(np.int32)
        d = out / "frames" / frame.name
        save_npy(d / "labels.npy", labels)
        save_image(d / "bev.png", bev_image(frame.points, labels))
        write_json(d / "labels.json", {"element": "point", "class_names": list(class_names),
                                       "counts": {class_names[k]: int((labels == k).sum()) for k in np.unique(labels)}})

    t = time.perf_counter()
    evaluation = evaluate_frames(student, source, ids, class_names, args.device, targets=cache, score=set(test),
                                 on_frame=write, progress=progress)
    timings["predict_s"] = time.perf_counter() - t
    write_json(out / MARKER, {"mode": config.mode, "config": config.to_dict(), "teacher": teacher_id,
                              "class_names": list(class_names), "frames": ids,
                              "split": {"train": train, "test": test, "note": "one frame: trained and scored on it"
                                        if len(ids) < 2 else "test frames never trained on"},
                              "zero_shot": evaluation, "final_loss": losses[-1] if losses else None,
                              "failed": failures, "cache": str(cache.dir) if cache else None,
                              "seed": args.seed, "device": args.device, "timings": timings})
    if progress and evaluation.get("frames"):
        print(f"zero-shot mIoU over {evaluation['frames']} test frames: {100 * evaluation['all']['miou']:.1f}",
              file=sys.stderr)
    if failures:
        print(f"distill lidar: {len(ids)} frames used, {len(failures)} left out (see {out / MARKER})", file=sys.stderr)
    return 1 if failures else 0
