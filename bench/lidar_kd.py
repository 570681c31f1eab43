"""UDAKD / FSKD on the four shared KITTI frames: a LiDAR student distilled from a 2D teacher.

Writes docs/results/lidar_kd.md and lidar_kd.json.

* 2D teacher: the offline box-supervised segmenter (no SegFormer weights here), trained on
  the 2D boxes of the first ``--teacher-frames`` KITTI frames and of the nuScenes sample's six
  camera images (another sensor rig and city: 2D labels from elsewhere); 2D labels only, and
  the test frames' 2D boxes are never used.
* Distillation: every frame's scan and image, no label: the teacher labels the image, the
  calibrated projection carries its features and logits to the points the camera sees.
* Scored (per point, zero-shot: the student reads out through the teacher's classifier) on
  the frames the teacher did not see, against the points-in-3D-box labels (background +
  the boxed classes): IoU per class over the points the camera sees (where the teacher
  has an answer too) and, for the students, over every point within 50 m.

Side by side: (a) the teacher's labels lifted to the seen points (nearest pixel), (b) UDAKD
student (InfoNCE alignment), (c) FSKD student (features + soft-label KL, shared
classifier), (d) FSKD without the domain-adaptation module.

    python bench/lidar_kd.py                     # ~10 min on 2 cores
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DATA = REPO / ".." / "shared" / "data"
OUT = REPO / "docs" / "results"
METHODS = ("lift", "udakd", "fskd", "fskd_no_da")
TITLES = {"lift": "(a) teacher lifted to seen points", "udakd": "(b) UDAKD student (InfoNCE, DA module)",
          "fskd": "(c) FSKD student (features + soft labels, DA module)", "fskd_no_da": "(d) FSKD without DA module"}


def main() -> None:  # noqa: C901 - a benchmark reads top to bottom
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--teacher-frames", type=int, default=2)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--teacher-iterations", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-nuscenes-teacher", action="store_true",
                    help="train the 2D teacher on the KITTI teacher frames only (default: + the nuScenes sample's 6 images)")
    ap.add_argument("--uniform-pairs", action="store_true", help="draw training points uniformly (not class-balanced)")
    ap.add_argument("--stem", default="lidar_kd")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from crossdistill.methods.lidar_kd.distill import DistillConfig, distill_lidar, predict_points
    from crossdistill.methods.lidar_kd.evaluate import map_classes, zero_shot_iou
    from crossdistill.methods.lidar_kd.frames import box_training_data, kitti_frames, nuscenes_frames
    from crossdistill.methods.lidar_kd.student import StudentConfig
    from crossdistill.methods.lidar_kd.targets import point_targets
    from crossdistill.teachers.box2d import BoxSupervisedTeacher, BoxTeacherConfig

    t_all = time.perf_counter()
    frames = kitti_frames(DATA / "kitti_sample")
    teach = frames[: args.teacher_frames]
    # scored on the frames the teacher did not see; with every frame in the teacher's training set
    # (the 2D-oracle diagnostic), on every frame
    test = frames[args.teacher_frames:] or frames
    extra = [] if args.no_nuscenes_teacher else nuscenes_frames(DATA / "nuscenes_sample")
    imgs, labs = box_training_data(teach + extra, frames[0].class_names)
    t = time.perf_counter()
    teacher = BoxSupervisedTeacher.fit(imgs, labs, frames[0].class_names,
                                       BoxTeacherConfig(iterations=args.teacher_iterations, seed=args.seed),
                                       progress=False)
    teacher_s = time.perf_counter() - t
    t = time.perf_counter()
    targets = [point_targets(f, teacher.segment([c.image for c in f.images])) for f in frames]
    targets_s = time.perf_counter() - t
    names = frames[0].class_names
    to_eval = map_classes(teacher.class_names, names)
    C = len(names)

    def score(pred_k, frame, tgt):
        pred = to_eval[pred_k]
        near = np.hypot(frame.points[:, 0], frame.points[:, 1]) <= 50.0
        seen_iou, seen_m = zero_shot_iou(pred, frame.labels, C, tgt.seen)
        all_iou, all_m = zero_shot_iou(pred, frame.labels, C, near)
        return {"seen_iou": seen_iou.tolist(), "seen_miou": seen_m, "all_iou": all_iou.tolist(), "all_miou": all_m,
                "agree_teacher": float((pred_k[tgt.seen] == tgt.logits[tgt.seen].argmax(1)).mean())}

    results = {m: {} for m in METHODS}
    panels = {}  # last test frame's evaluation labels per method, for the picture
    timings = {}
    test_targets = targets[len(frames) - len(test):]
    for f, tg in zip(test, test_targets):
        lifted = np.zeros(len(f.points), np.int64)
        lifted[tg.seen] = tg.logits[tg.seen].argmax(1)
        results["lift"][f.name] = score(lifted, f, tg)
        panels["ground truth"] = f.labels
        panels["lift"] = np.where(tg.seen, to_eval[lifted], -1)
        results["lift"][f.name]["all_iou"] = [float("nan")] * C  # the teacher has no answer off-camera
        results["lift"][f.name]["all_miou"] = float("nan")
    losses = {}
    for m in METHODS[1:]:
        cfg = DistillConfig(mode="udakd" if m == "udakd" else "fskd", iterations=args.iterations, seed=args.seed,
                            student=StudentConfig(use_da=m != "fskd_no_da"), balanced=not args.uniform_pairs)
        t = time.perf_counter()
        student, loss = distill_lidar(frames, targets, teacher.classifier(), cfg, progress=False)
        timings[f"{m}_train_s"] = time.perf_counter() - t
        losses[m] = [loss[0], loss[-1]]
        for f, tg in zip(test, test_targets):
            pred_k = predict_points(student, f).argmax(1)
            results[m][f.name] = score(pred_k, f, tg)
            panels[m] = to_eval[pred_k]
    wall = time.perf_counter() - t_all
    report = {"command": "python bench/lidar_kd.py " + " ".join(sys.argv[1:]),
              "date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
              "machine": f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
                         f"torch threads {args.threads}",
              "teacher": teacher.teacher_id, "teacher_frames": [f.name for f in teach],
              "teacher_images": len(imgs), "teacher_nuscenes": not args.no_nuscenes_teacher,
              "test_frames": [f.name for f in test], "class_names": list(names), "results": results,
              "losses_first_last": losses, "timings_s": {"teacher": teacher_s, "targets": targets_s, **timings,
                                                         "wall": wall},
              "iterations": args.iterations, "balanced_pairs": not args.uniform_pairs,
              "points": {f.name: int(len(f.points)) for f in frames},
              "seen_points": {f.name: int(tg.seen.sum()) for f, tg in zip(frames, targets)},
              "gt_points": {f.name: {names[c]: int((f.labels == c).sum()) for c in range(C) if (f.labels == c).any()}
                            for f in test}}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.stem}.json").write_text(json.dumps(report, indent=1))
    write_md(report, OUT / f"{args.stem}.md")
    _picture(test[-1], panels, OUT / f"{args.stem}.png")
    print(f"wrote {OUT / (args.stem + '.md')} in {wall:.0f} s")


def _picture(frame, panels: dict, path: Path) -> None:
    """Top views of one test frame: ground truth, then each method (grey: background, dark: not seen)."""
    from PIL import Image

    from crossdistill.viz.bev import bev_image

    tiles = [bev_image(frame.points, lab, extent=30.0, size=360) for lab in panels.values()]
    Image.fromarray(np.concatenate(tiles, 1)).save(path, optimize=True)


def write_md(r: dict, path: Path) -> None:
    names = r["class_names"]
    present = sorted({c for f in r["test_frames"] for c in r["gt_points"][f]}, key=names.index)
    cols = [names.index(c) for c in present]
    lines = ["# UDAKD / FSKD: LiDAR segmentation distilled from a 2D teacher (4 shared KITTI frames)", "",
             f"Command: `{r['command']}`  ", f"Machine: {r['machine']}  ", f"Date: {r['date']}", "",
             f"2D teacher: `{r['teacher']}`, the offline box-supervised segmenter trained on the 2D boxes of KITTI frames "
             f"{', '.join(r['teacher_frames'])}"
             + (" and of the nuScenes sample's six camera images (its 3D boxes projected, classes mapped by name: a "
                "bus is a truck, a bicycle a cyclist)" if r["teacher_nuscenes"] else "")
             + f", {r['teacher_images']} images in all (no SegFormer weights on this machine). Students: distilled from the "
             f"teacher on all four frames (scans + images, no label), {r['iterations']} steps each, training points "
             f"drawn {'class-balanced by the teacher' if r['balanced_pairs'] else 'uniformly'}. Scored zero-shot "
             f"(read out through the teacher's classifier) on frames {', '.join(r['test_frames'])}, whose labels "
             "the teacher never saw, against points-in-3D-box labels. Ground-truth points per class: "
             + "; ".join(f"{f}: " + ", ".join(f"{k} {v}" for k, v in r["gt_points"][f].items())
                         for f in r["test_frames"]) + ".", "",
             "## IoU x100 on the points the camera sees (mean over the test frames)", "",
             "| method | " + " | ".join(present) + " | mIoU | agreement with the teacher |",
             "|---|" + "---:|" * (len(present) + 2)]
    for m in METHODS:
        res = r["results"][m]
        per = np.nanmean([[res[f]["seen_iou"][c] for c in cols] for f in r["test_frames"]], 0)
        mi = np.nanmean([res[f]["seen_miou"] for f in r["test_frames"]])
        ag = np.mean([res[f]["agree_teacher"] for f in r["test_frames"]])
        lines.append(f"| {TITLES[m]} | " + " | ".join(f"{100 * v:.1f}" for v in per) + f" | {100 * mi:.1f} | "
                     f"{100 * ag:.1f}% |")
    lines += ["", "## IoU x100 on every point within 50 m (students only; the teacher sees a sixth of the scan)", "",
              "| method | " + " | ".join(present) + " | mIoU |", "|---|" + "---:|" * (len(present) + 1)]
    for m in METHODS[1:]:
        res = r["results"][m]
        per = np.nanmean([[res[f]["all_iou"][c] for c in cols] for f in r["test_frames"]], 0)
        mi = np.nanmean([res[f]["all_miou"] for f in r["test_frames"]])
        lines.append(f"| {TITLES[m]} | " + " | ".join(f"{100 * v:.1f}" for v in per) + f" | {100 * mi:.1f} |")
    t = r["timings_s"]
    lines += ["", "## Cost", "",
              f"Teacher training {t['teacher']:.0f} s; teacher inference and projection {t['targets']:.0f} s for 4 "
              "frames; student training " + ", ".join(f"{m} {t[m + '_train_s']:.0f} s" for m in METHODS[1:])
              + f" ({r['iterations']} steps, one scan per step); whole run {t['wall']:.0f} s.",
              "Loss first -> last step: " + ", ".join(f"{m} {a:.2f} -> {b:.2f}"
                                                     for m, (a, b) in r["losses_first_last"].items()) + ".", "",
              f"Picture (`{path.stem}.png`): top view of frame {r['test_frames'][-1]} (30 m each way, forward up): "
              "ground truth, (a) lifted (dark grey: points the camera does not see), (b), (c), (d); light grey "
              "is background, colours the classes.", ""]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
