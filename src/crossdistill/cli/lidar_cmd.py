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
                    "seen by a camera takes the teacher's features and class scores at its pixel; the student "
                    "(U-Net + self-calibrated domain-adaptation module + the teacher's own classifier, shared) "
                    "learns them by InfoNCE feature alignment (udakd) or features + soft-label KL (fskd), and "
                    "then labels every point, seen or not. Writes OUT/student.pt, per frame "
                    "OUT/frames/<id>/{labels.npy,labels.json,bev.png} and OUT/distill.json (last), with zero-shot "
                    "IoU where the frames have point labels (points in 3D boxes).")
    src = q.add_mutually_exclusive_group(required=True)
    src.add_argument("--kitti", help="KITTI object-layout folder (training/{velodyne,image_2,calib,label_2})")
    src.add_argument("--nuscenes", help="folder with an mmdetection3d nuScenes sample.json, scans and images")
    q.add_argument("-o", "--output", required=True, help="output folder")
    q.add_argument("--mode", choices=["udakd", "fskd"], default="fskd",
                   help="udakd: InfoNCE feature alignment; fskd: features + the soft labels' KL divergence (default)")
    q.add_argument("--teacher", choices=["auto", "box2d", "segformer"], default="auto",
                   help="segformer (local weights), box2d (offline: trained here on the frames' 2D boxes, or loaded "
                        "with --teacher-weights), auto = segformer when its weights are found, else box2d")
    q.add_argument("--teacher-weights", help="local SegFormer folder, or a saved box2d teacher (teacher.pt)")
    q.add_argument("--teacher-frames", nargs="*", default=None,
                   help="box2d: the frames whose 2D boxes it trains on (default: every frame with 2D boxes)")
    q.add_argument("--teacher-extra", nargs="*", default=[],
                   help="box2d: more KITTI / nuScenes folders whose 2D boxes it also trains on (classes mapped by "
                        "name: a nuScenes bus is a KITTI truck); their scans are not distilled")
    q.add_argument("--teacher-iterations", type=int, default=1000, help="box2d teacher training steps (default 1000)")
    q.add_argument("--student", help="a student.pt from an earlier run: label the frames, no training")
    q.add_argument("--iterations", type=int, default=300, help="student steps (default 300)")
    q.add_argument("--voxel-size", type=float, default=0.2, help="student voxel side in metres (default 0.2)")
    q.add_argument("--no-da", dest="use_da", action="store_false", help="without the domain-adaptation module")
    q.add_argument("--seed", type=int, default=0, help="seed of the teacher and student training (default 0)")
    q.add_argument("--device", default="cpu", help="torch device")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=run_lidar)


def _frames(args: argparse.Namespace) -> tuple[list, dict[str, str]]:
    """(the usable frames, {frame id: why it was left out}); one line on stderr per bad frame."""
    from crossdistill.methods.lidar_kd.frames import kitti_frames, nuscenes_frames

    path = Path(args.kitti or args.nuscenes)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    failures: dict[str, str] = {}

    def line(name: str, why: str) -> str:
        return why if why.startswith("frame ") else f"frame {name}: {why}"

    try:
        frames = kitti_frames(path, failures=failures) if args.kitti else nuscenes_frames(path, failures=failures)
    except InputError:
        if len(failures) == 1:  # the only frame is bad: its reason is the error
            raise InputError(line(*next(iter(failures.items())))) from None
        for name, why in failures.items():
            print(f"error: {line(name, why)}", file=sys.stderr)
        raise
    for name, why in failures.items():
        print(f"error: {line(name, why)}", file=sys.stderr)
    return frames, failures


def _teacher(args: argparse.Namespace, frames, out: Path, progress: bool):
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
    chosen = [f for f in frames if args.teacher_frames is None or f.name in args.teacher_frames]
    for extra in args.teacher_extra:
        chosen += load_frames(extra)
    imgs, labs = box_training_data(chosen, frames[0].class_names)
    if not imgs:
        raise InputError("the box2d teacher needs frames with 2D boxes (--teacher-frames), or --teacher-weights")
    say_teacher("2D", "box2d", not progress, f"trained here on the 2D boxes of {len(imgs)} images"
                + ("; no SegFormer weights found" if args.teacher == "auto" else ""))
    teacher = BoxSupervisedTeacher.fit(imgs, labs, frames[0].class_names,
                                       BoxTeacherConfig(iterations=args.teacher_iterations, seed=args.seed),
                                       args.device, progress)
    teacher.save(out / "teacher.pt")
    return teacher


def run_lidar(args: argparse.Namespace) -> int:
    from crossdistill.cli.segment_cmd import _device

    args.device = _device(args.device)
    if args.iterations < 1 or args.voxel_size <= 0 or args.teacher_iterations < 1:
        raise InputError("need --iterations >= 1, --teacher-iterations >= 1 and --voxel-size > 0")
    progress = not args.quiet
    out = Path(args.output)
    frames, failures = _frames(args)
    before = {p for p in (out / "teacher.pt", out / "student.pt") if p.exists()}
    try:
        return _distill_and_label(args, frames, failures, out, progress)
    except BaseException:  # no model file of a run that did not finish
        for p in (out / "teacher.pt", out / "student.pt"):
            if p not in before:
                p.unlink(missing_ok=True)
        raise


def _distill_and_label(args: argparse.Namespace, frames, failures: dict[str, str], out: Path, progress: bool) -> int:
    """Train (or load) the student, label every frame, write distill.json last; the exit code."""
    import numpy as np

    from crossdistill.io_utils import save_image, save_npy, write_json
    from crossdistill.methods.lidar_kd.distill import (DistillConfig, distill_lidar, load_student, predict_points,
                                                       save_student)
    from crossdistill.methods.lidar_kd.evaluate import map_classes, zero_shot_iou
    from crossdistill.methods.lidar_kd.student import StudentConfig
    from crossdistill.methods.lidar_kd.targets import point_targets
    from crossdistill.viz.bev import bev_image

    timings: dict[str, float] = {}
    t = time.perf_counter()
    if args.student:
        student, class_names, config = load_student(args.student, args.device)
        teacher_id = "(from the student checkpoint)"
        losses: list[float] = []
    else:
        teacher = _teacher(args, frames, out, progress)
        timings["teacher_s"] = time.perf_counter() - t
        class_names, teacher_id = tuple(teacher.class_names), teacher.teacher_id
        t = time.perf_counter()
        targets = [point_targets(f, teacher.segment([c.image for c in f.images])) for f in frames]
        timings["targets_s"] = time.perf_counter() - t
        config = DistillConfig(mode=args.mode, iterations=args.iterations, seed=args.seed,
                               student=StudentConfig(voxel_size=args.voxel_size, use_da=args.use_da))
        t = time.perf_counter()
        student, losses = distill_lidar(frames, targets, teacher.classifier(), config, args.device, progress)
        timings["train_s"] = time.perf_counter() - t
        save_student(out / "student.pt", student, class_names, config, teacher_id)
    t = time.perf_counter()
    evaluation = {}
    for f in frames:
        probs = predict_points(student, f, args.device)
        labels = probs.argmax(1).astype(np.int32)
        d = out / "frames" / f.name
        save_npy(d / "labels.npy", labels)
        save_image(d / "bev.png", bev_image(f.points, labels))
        write_json(d / "labels.json", {"element": "point", "class_names": list(class_names),
                                       "counts": {class_names[k]: int((labels == k).sum())
                                                  for k in np.unique(labels)}})
        if f.labels is not None:
            mapped = map_classes(class_names, f.class_names)[labels]
            iou, miou = zero_shot_iou(mapped, f.labels, len(f.class_names))
            evaluation[f.name] = {"miou": miou, "iou": {f.class_names[c]: float(iou[c]) for c in range(len(iou))
                                                        if np.isfinite(iou[c])}}
    timings["predict_s"] = time.perf_counter() - t
    write_json(out / MARKER, {"mode": config.mode, "config": config.to_dict(), "teacher": teacher_id,
                              "class_names": list(class_names), "frames": [f.name for f in frames],
                              "zero_shot": evaluation, "final_loss": losses[-1] if losses else None,
                              "failed": failures,
                              "seed": args.seed, "device": args.device, "timings": timings})
    if progress:
        for name, e in evaluation.items():
            print(f"{name}: zero-shot mIoU {100 * e['miou']:.1f}", file=sys.stderr)
    if failures:
        print(f"distill lidar: {len(frames)} frames used, {len(failures)} left out (see {out / MARKER})",
              file=sys.stderr)
    return 1 if failures else 0
