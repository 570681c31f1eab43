"""LiDAR distillation at scale: sparse backends, streaming memory, zero-shot on held-out frames.

Writes docs/results/lidar_scale.md and lidar_scale.json. Three parts (``--parts``), each
stored in the JSON as it finishes, so the report can be rebuilt part by part:

* ``step``: one training step (forward, FSKD loss on the camera-seen points, backward, AdamW)
  of the LiDAR student on a shared KITTI scan, pure-torch rulebook against spconv's CPU build,
  at the default scale (0.2 m voxels, widths 16-64, the camera region + 4 m context, as training
  crops it) and at the paper's (0.05 m voxels, widths 32-256, the full scan). Each (backend,
  scale) runs in its own process (peak RSS of the step alone: the kernel's high-water mark is
  reset after set-up), the backends interleaved and alternating which goes first, with the load
  average recorded around every run: the machine is shared. Same initial weights for both
  backends; the first-step losses are compared. Targets: random teacher features / logits at
  the seen points (what they hold does not change the cost).
* ``stream``: 1,000 generated frames (synthetic scans of ~20k points with one camera image,
  made from their id) streamed through the target cache and the training loader; resident
  memory sampled at every frame read. A stand-in teacher (features from the image colours)
  fills the cache. Target: memory independent of the number of frames.
* ``zeroshot``: the shared KITTI frames split by time (000000-000001 train, 000002-000003
  test); the offline box2d teacher trained on the 2D boxes of the training frames only; an
  FSKD student trained on the training frames (streamed, batches of 2, augmentation); scored
  with one confusion matrix over the test frames, and over the nuScenes sample (another
  sensor and city, never trained on by teacher or student). Labels are points-in-3D-box.

    python bench/lidar_scale.py                       # all parts, ~20 min on 2 shared cores
    python bench/lidar_scale.py --parts step --rounds 2
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DATA = REPO / ".." / "shared" / "data"
OUT = REPO / "docs" / "results"
CACHE = REPO / "bench" / "_cache" / "lidar_targets"
SCALES = {"default": {"voxel": 0.2, "widths": [16, 32, 64], "crop": True},
          "paper": {"voxel": 0.05, "widths": [32, 64, 128, 256], "crop": False}}


def _status(key: str) -> int:
    """kB of a /proc/self/status field (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


# ----------------------------------------------------------------------------- part 1: one step
def child_step(backend: str, scale: str, steps: int, frame_id: str) -> dict:
    """One process: set up the student and scan, then time ``steps`` training steps (after one warm-up)."""
    import torch

    torch.set_num_threads(1)
    from crossdistill.methods.lidar_kd.datasets.kitti import KittiObjectSource
    from crossdistill.methods.lidar_kd.distill import context_region, soft_label_kl
    from crossdistill.methods.lidar_kd.student import LidarStudent, StudentConfig, prepare_scan
    from crossdistill.render.lidar import point_pixels

    s = SCALES[scale]
    frame = KittiObjectSource(DATA / "kitti_sample").load(frame_id)
    seen = point_pixels(frame.points, frame.images[0].camera) >= 0
    keep = np.ones(len(frame.points), bool)
    if s["crop"]:
        keep = (np.hypot(frame.points[:, 0], frame.points[:, 1]) <= 50) & context_region(frame.points, seen, 4.0)
    pts, feats, seen = frame.points[keep], frame.point_features()[keep], np.nonzero(seen[keep])[0]
    rng = np.random.default_rng(0)
    f2 = torch.as_tensor(rng.normal(size=(len(seen), 16)).astype(np.float32))
    W = rng.normal(size=(9, 16)).astype(np.float32)
    z2 = f2 @ torch.as_tensor(W).T
    cfg = StudentConfig(voxel_size=s["voxel"], widths=tuple(s["widths"]), backend=backend)
    torch.manual_seed(0)
    student = LidarStudent(cfg, W, np.zeros(9, np.float32))
    opt = torch.optim.AdamW(student.parameters(), lr=1e-3)
    t = time.perf_counter()
    scan = prepare_scan(feats, pts, cfg)
    prep_s = time.perf_counter() - t
    pick = torch.as_tensor(rng.choice(len(seen), min(2048, len(seen)), replace=False))
    seen_t = torch.as_tensor(seen)[pick]
    rss0 = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark: what follows is the steps' peak
    times, losses = [], []
    for _ in range(steps + 1):
        t = time.perf_counter()
        f3, z3 = student(scan)
        loss = 1 - torch.nn.functional.cosine_similarity(f3[seen_t], f2[pick], dim=1).mean() \
            + soft_label_kl(z3[seen_t], z2[pick])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
        losses.append(float(loss))
    return {"backend": backend, "scale": scale, "points": int(len(pts)), "voxels": len(scan.pyramid.levels[0]),
            "levels": [len(lv) for lv in scan.pyramid.levels], "prep_s": prep_s, "warmup_s": times[0],
            "step_s": times[1:], "losses": losses, "rss_before_mb": rss0 / 1024, "peak_rss_mb": _status("VmHWM") / 1024,
            "step_peak_mb": (_status("VmHWM") - rss0) / 1024, "torch_threads": torch.get_num_threads()}


def part_step(args) -> dict:
    runs = []
    order = ["torch", "spconv"]
    for scale in args.scales:
        for r in range(args.rounds):
            for backend in (order if r % 2 == 0 else order[::-1]):
                load0 = os.getloadavg()
                t = time.perf_counter()
                cmd = [sys.executable, __file__, "--child", backend, scale, str(args.steps), args.frame]
                res = subprocess.run(cmd, capture_output=True, text=True,
                                     env={**os.environ, "OMP_NUM_THREADS": "1"})
                if res.returncode != 0:
                    raise SystemExit(f"child {backend} {scale} failed:\n{res.stderr[-2000:]}")
                out = json.loads(res.stdout.strip().splitlines()[-1])
                out.update(round=r, load_before=load0, load_after=os.getloadavg(), wall_s=time.perf_counter() - t)
                runs.append(out)
                print(f"{scale} {backend} round {r}: step {np.median(out['step_s']):.2f} s, "
                      f"peak {out['step_peak_mb']:.0f} MB, load {load0[0]:.1f}", flush=True)
    summary = {}
    for scale in args.scales:
        row = {}
        for b in ("torch", "spconv"):
            rs = [r for r in runs if r["scale"] == scale and r["backend"] == b]
            row[b] = {"step_s_median": float(np.median([x for r in rs for x in r["step_s"]])),
                      "step_peak_mb_median": float(np.median([r["step_peak_mb"] for r in rs])),
                      "peak_rss_mb_max": float(max(r["peak_rss_mb"] for r in rs)),
                      "voxels": rs[0]["voxels"], "points": rs[0]["points"], "first_loss": rs[0]["losses"][0]}
        # ratios within each round (the two backends ran back to back under about the same load)
        ratios_t, ratios_m = [], []
        for r in range(args.rounds):
            a = [x for x in runs if x["scale"] == scale and x["round"] == r]
            t_, s_ = (next(x for x in a if x["backend"] == k) for k in ("torch", "spconv"))
            ratios_t.append(np.median(t_["step_s"]) / np.median(s_["step_s"]))
            ratios_m.append(t_["step_peak_mb"] / max(s_["step_peak_mb"], 1e-9))
        row["time_ratio_per_round"] = [float(x) for x in ratios_t]
        row["memory_ratio_per_round"] = [float(x) for x in ratios_m]
        row["loss_gap"] = abs(row["torch"]["first_loss"] - row["spconv"]["first_loss"])
        summary[scale] = row
    return {"frame": args.frame, "rounds": args.rounds, "steps": args.steps, "runs": runs, "summary": summary}


# ------------------------------------------------------------------------ part 2: 1,000 frames
class GeneratedSource:
    """Synthetic frames made from their id: ground, boxes, one camera (a stand-in for a dataset)."""

    def __init__(self, n: int, points: int = 20000) -> None:
        self.ids = [f"g{i:05d}" for i in range(n)]
        self.name = f"generated:{n}:{points}"
        self.points = points
        self.loads = 0
        self.rss: list[tuple[int, float]] = []

    def load(self, fid: str):
        from crossdistill.methods.lidar_kd.frames import CameraImage, LidarFrame
        from crossdistill.render.lidar import CameraCalib

        self.loads += 1
        self.rss.append((self.loads, _status("VmRSS") / 1024))
        rng = np.random.default_rng(int(fid[1:]))
        n = self.points
        xy = rng.uniform(-40, 40, (n, 2))
        z = rng.normal(-1.7, 0.03, n)
        box = rng.random(n) < 0.2
        z[box] = rng.uniform(-1.7, 0.0, box.sum())
        pts = np.c_[xy, z, rng.uniform(0, 1, n)].astype(np.float32)
        img = rng.integers(0, 255, (48, 160, 3), dtype=np.uint8)
        K = np.array([[80.0, 0, 80], [0, 80, 24], [0, 0, 1]])
        to_cam = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)
        cam = CameraCalib(K, to_cam, 160, 48, "front")
        return LidarFrame(fid, pts, 1.0, (CameraImage(img, cam),), box.astype(np.int64), ("ground", "box"),
                          "generated")


class ColourTeacher:
    """A stand-in 2D teacher speaking the real protocol: 8 features from colour and position, 4 classes."""

    teacher_id = "bench-colour-teacher:1"
    class_names = ("a", "b", "c", "d")

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.W = rng.normal(size=(4, 8)).astype(np.float32)

    def segment(self, images):
        from crossdistill.teachers.base import SemanticMap

        out = []
        for im in images:
            H, W = im.shape[:2]
            yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
            c = im.astype(np.float32).transpose(2, 0, 1) / 255
            f = np.concatenate([c, c ** 2, xx[None] / W, yy[None] / H])
            out.append(SemanticMap(f, np.einsum("kc,chw->khw", self.W, f), (H, W)))
        return out

    def classifier(self):
        return self.W, np.zeros(4, np.float32)


def part_stream(args) -> dict:
    import torch

    torch.set_num_threads(1)
    from crossdistill.methods.lidar_kd.cache import TargetCache
    from crossdistill.methods.lidar_kd.distill import DistillConfig, train_student
    from crossdistill.methods.lidar_kd.loader import Augment
    from crossdistill.methods.lidar_kd.student import StudentConfig
    from crossdistill.methods.lidar_kd.targets import point_targets

    src = GeneratedSource(args.frames)
    teacher = ColourTeacher()
    one = src.load(src.ids[0])
    tg = point_targets(one, teacher.segment([c.image for c in one.images]))
    in_memory = (one.points.nbytes + sum(c.image.nbytes for c in one.images) + one.labels.nbytes
                 + tg.features.nbytes + tg.logits.nbytes + tg.seen.nbytes)
    with tempfile.TemporaryDirectory() as tmp:
        cache = TargetCache(tmp, teacher.teacher_id)
        t = time.perf_counter()
        cache.fill(src, teacher, progress=False)
        fill_s = time.perf_counter() - t
        cache_mb = sum(p.stat().st_size for p in Path(cache.dir).rglob("*.npz")) / 2 ** 20
        fill_rss = list(src.rss)
        src.rss.clear()
        src.loads = 0
        cfg = DistillConfig(mode="fskd", student=StudentConfig(voxel_size=0.4, widths=(8, 16, 16)),
                            iterations=args.frames // 2, pairs=1024, batch_size=2, augment=Augment(), seed=0)
        t = time.perf_counter()
        _, losses = train_student(src, cache, src.ids, teacher.classifier(), cfg, progress=False)
        train_s = time.perf_counter() - t
    train_rss = list(src.rss)

    def fit(rows):
        a = np.array(rows[len(rows) // 2:], float)  # second half: after warm-up
        slope = np.polyfit(a[:, 0], a[:, 1], 1)[0]
        return {"rss_mb_at": {int(k): float(v) for k, v in rows[99::100]}, "slope_mb_per_1000_frames": 1000 * slope,
                "min_mb": float(a[:, 1].min()), "max_mb": float(a[:, 1].max())}

    return {"frames": args.frames, "points_per_frame": src.points, "fill_s": fill_s, "train_s": train_s,
            "cache_mb": cache_mb, "in_memory_bytes_per_frame": int(in_memory), "steps": len(losses),
            "loss_first_last": [losses[0], losses[-1]], "fill": fit(fill_rss), "train": fit(train_rss),
            "load": os.getloadavg()}


# ------------------------------------------------------------------------- part 3: zero-shot
def part_zeroshot(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    from crossdistill.eval.metrics.lidar import confusion_matrix
    from crossdistill.methods.lidar_kd.cache import TargetCache
    from crossdistill.methods.lidar_kd.datasets import open_source, split_ids
    from crossdistill.methods.lidar_kd.distill import DistillConfig, train_student
    from crossdistill.methods.lidar_kd.evaluate import evaluate_frames, map_classes, scores_of
    from crossdistill.methods.lidar_kd.frames import box_training_data
    from crossdistill.methods.lidar_kd.loader import Augment
    from crossdistill.methods.lidar_kd.student import StudentConfig
    from crossdistill.students.sparse_conv import resolve_backend
    from crossdistill.teachers.box2d import BoxSupervisedTeacher, BoxTeacherConfig

    kitti = open_source(DATA / "kitti_sample")
    nus = open_source(DATA / "nuscenes_sample")
    train, test = split_ids(kitti.ids, 0.5)
    frames = [kitti.load(i) for i in train]
    imgs, labs = box_training_data(frames, frames[0].class_names)
    t = time.perf_counter()
    teacher = BoxSupervisedTeacher.fit(imgs, labs, frames[0].class_names,
                                       BoxTeacherConfig(iterations=args.teacher_iterations, seed=args.seed),
                                       progress=False)
    teacher_s = time.perf_counter() - t
    del frames
    cache = TargetCache(CACHE, teacher.teacher_id)
    t = time.perf_counter()
    counts = [cache.fill(s, teacher, progress=False) for s in (kitti, nus)]
    targets_s = time.perf_counter() - t
    backend = resolve_backend("auto")
    out = {"train": train, "test": test, "teacher": teacher.teacher_id, "teacher_images": len(imgs),
           "teacher_s": teacher_s, "targets_s": targets_s, "cache_counts": counts, "backend": backend, "modes": {}}
    names = teacher.class_names
    # the teacher lifted to the seen points (its answer where it has one), one matrix per dataset
    lift = {}
    for key, src, ids in (("kitti_test", kitti, test), ("nuscenes", nus, nus.ids)):
        cm = None
        for fid in ids:
            f = src.load(fid)
            tg = cache.get(src.name, fid)
            C = len(f.class_names)
            cm = np.zeros((C, C), np.int64) if cm is None else cm
            pred = map_classes(names, f.class_names)[tg.logits.astype(np.float32).argmax(1)]
            gt = f.labels[tg.index]
            cm += confusion_matrix(gt[gt >= 0], pred[gt >= 0], C)
        lift[key] = scores_of(cm, f.class_names)
    out["lift_seen"] = lift
    for mode in args.modes:
        cfg = DistillConfig(mode=mode, iterations=args.iterations, batch_size=2, augment=Augment(), seed=args.seed,
                            student=StudentConfig(backend=backend))
        t = time.perf_counter()
        student, losses = train_student(kitti, cache, train, teacher.classifier(), cfg, progress=False)
        train_s = time.perf_counter() - t
        res = {"train_s": train_s, "loss_first_last": [losses[0], losses[-1]]}
        for key, src, ids in (("kitti_test", kitti, test), ("nuscenes", nus, nus.ids)):
            res[key] = evaluate_frames(student, src, ids, names, targets=cache, max_range=50.0)
        out["modes"][mode] = res
        print(f"zero-shot {mode}: kitti test mIoU {100 * res['kitti_test']['all']['miou']:.1f}, "
              f"nuscenes {100 * res['nuscenes']['all']['miou']:.1f}", flush=True)
    out["load"] = os.getloadavg()
    return out


# ---------------------------------------------------------------------------------- report
def _f(x: float, d: int = 1) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{d}f}"


def write_md(r: dict, path: Path) -> None:
    L = ["# LiDAR distillation at scale: sparse backends, streaming memory, zero-shot on held-out frames", "",
         f"Machine: {r['machine']}. **Shared machine**: other engineers' jobs ran beside these measurements; "
         "the load average is recorded per run and backend ratios are taken within a round (back-to-back runs).", ""]
    if "step" in r:
        s = r["step"]
        L += ["## One training step: pure-torch rulebook against spconv (CPU build)", "",
              f"Command: `{s['command']}` ({s['date']}). Scan: KITTI `{s['frame']}` (shared sample). "
              f"{s['rounds']} rounds per scale, backends interleaved (the first backend alternates), "
              f"{s['steps']} timed steps after one warm-up per run, each run its own process, torch threads 1. "
              "Step = forward, FSKD loss on up to 2,048 camera-seen points, backward, AdamW. Peak memory = the "
              "process's peak resident memory during the steps minus its resident memory before them "
              "(the kernel's high-water mark reset after set-up).", "",
              "| scale | points | voxels | backend | step s (median) | step peak MB (median) | process peak MB | "
              "first loss |", "|---|---:|---:|---|---:|---:|---:|---:|"]
        for scale, row in s["summary"].items():
            for b in ("torch", "spconv"):
                x = row[b]
                L.append(f"| {scale} | {x['points']} | {x['voxels']} | {b} | {x['step_s_median']:.2f} | "
                         f"{x['step_peak_mb_median']:.0f} | {x['peak_rss_mb_max']:.0f} | {x['first_loss']:.6f} |")
        L += ["", "| scale | torch / spconv time, per round | torch / spconv memory, per round | |first-loss gap| |",
              "|---|---|---|---:|"]
        for scale, row in s["summary"].items():
            L.append(f"| {scale} | {', '.join(f'{v:.2f}x' for v in row['time_ratio_per_round'])} | "
                     f"{', '.join(f'{v:.2f}x' for v in row['memory_ratio_per_round'])} | {row['loss_gap']:.1e} |")
        L += ["", "Load average (1 min) before each run: " + ", ".join(
            f"{x['scale']}/{x['backend']} {x['load_before'][0]:.1f}" for x in s["runs"]) + ".", ""]
        p = s["summary"].get("paper")
        if p:
            t = float(np.median(p["time_ratio_per_round"]))
            m = float(np.median(p["memory_ratio_per_round"]))
            L.append(f"**Target (pure torch within 2x of spconv at the paper's scale)**: time {t:.2f}x -> "
                     f"{'met' if t <= 2 else 'MISSED'}; memory {m:.2f}x -> {'met' if m <= 2 else 'MISSED'} "
                     "(medians of the per-round ratios).")
            L.append("")
    if "stream" in r:
        s = r["stream"]
        L += ["## Memory over 1,000 streamed frames", "",
              f"Command: `{s['command']}` ({s['date']}). {s['frames']} generated frames of {s['points_per_frame']} "
              "points and one 160x48 camera image, made from their id (a stand-in for a dataset; the count is "
              "what matters), a stand-in colour teacher (8 features, 4 classes) speaking the teacher protocol. "
              f"Target cache filled in {s['fill_s']:.0f} s ({s['cache_mb']:.1f} MB on disk, float16 seen points "
              f"only); then {s['steps']} FSKD steps of 2 scans each (every frame read once, augmented, "
              f"0.4 m voxels, widths 8-16) in {s['train_s']:.0f} s. Resident memory of the process at each frame read:",
              "", "| frames read | " + " | ".join(str(k) for k in s["train"]["rss_mb_at"]) + " |",
              "|---|" + "---:|" * len(s["train"]["rss_mb_at"]),
              "| filling the cache, MB | " + " | ".join(f"{v:.0f}" for v in s["fill"]["rss_mb_at"].values()) + " |",
              "| training, MB | " + " | ".join(f"{v:.0f}" for v in s["train"]["rss_mb_at"].values()) + " |", "",
              f"Slope over the second half (least squares): filling {s['fill']['slope_mb_per_1000_frames']:.1f} MB "
              f"per 1,000 frames, training {s['train']['slope_mb_per_1000_frames']:.1f} MB per 1,000 frames. "
              f"Holding the frames and float32 targets in memory, as `distill lidar` did before, would take "
              f"{s['in_memory_bytes_per_frame'] / 2 ** 20:.2f} MB per frame of this size, "
              f"{s['in_memory_bytes_per_frame'] * s['frames'] / 2 ** 30:.2f} GB for these {s['frames']}. "
              f"Load at the end: {s['load'][0]:.1f}.", ""]
        slope = max(abs(s["fill"]["slope_mb_per_1000_frames"]), abs(s["train"]["slope_mb_per_1000_frames"]))
        L.append(f"**Target (memory independent of the number of frames)**: {'met' if slope < 20 else 'MISSED'} "
                 f"(largest slope {slope:.1f} MB per 1,000 frames; 20 MB is the line drawn, against "
                 f"{s['in_memory_bytes_per_frame'] * 1000 / 2 ** 20:.0f} MB per 1,000 frames held in memory).")
        L.append("")
    if "zeroshot" in r:
        z = r["zeroshot"]
        L += ["## Zero-shot on held-out frames (shared KITTI and nuScenes samples)", "",
              f"Command: `{z['command']}` ({z['date']}). KITTI frames split by time: training "
              f"{', '.join(z['train'])}, test {', '.join(z['test'])}. Teacher `{z['teacher']}`: the offline box2d "
              f"segmenter trained on the 2D boxes of the training frames only ({z['teacher_images']} images, "
              f"{z['teacher_s']:.0f} s). Students: trained on the training frames' scans and teacher targets "
              f"(cache), batches of 2 scans, augmentation, sparse backend `{z['backend']}`. Scores: one confusion "
              "matrix over the test frames' points within 50 m (and over those a camera sees), points-in-3D-box "
              "labels; the nuScenes sample (one frame, another sensor and city; KITTI classes mapped by name) was "
              "seen by neither teacher nor student. The test sets are tiny (a few hundred car points): one car "
              "decides a column.", "",
              "| method | KITTI test: mIoU all | IoU per class (all) | mIoU seen | nuScenes: mIoU all | "
              "IoU per class (all) |", "|---|---:|---|---:|---:|---|"]
        lk, ln = z["lift_seen"]["kitti_test"], z["lift_seen"]["nuscenes"]
        L.append(f"| teacher lifted to the seen points | n/a | {_iou(lk)} (seen) | {100 * lk['miou']:.1f} | n/a | "
                 f"{_iou(ln)} (seen) |")
        for mode, res in z["modes"].items():
            k, n = res["kitti_test"], res["nuscenes"]
            L.append(f"| {mode.upper()} student ({res['train_s']:.0f} s training) | {100 * k['all']['miou']:.1f} | "
                     f"{_iou(k['all'])} | {100 * k['seen']['miou']:.1f} | {100 * n['all']['miou']:.1f} | "
                     f"{_iou(n['all'])} |")
        L += ["", "Ground-truth points (KITTI test, all within 50 m): " + ", ".join(
            f"{c} {v}" for c, v in next(iter(z["modes"].values()))["kitti_test"]["all"]["points"].items())
            + "; nuScenes: " + ", ".join(f"{c} {v}" for c, v in
                                         next(iter(z["modes"].values()))["nuscenes"]["all"]["points"].items())
            + f". Load at the end: {z['load'][0]:.1f}.", ""]
    path.write_text("\n".join(L) + "\n")


def _iou(scores: dict) -> str:
    return ", ".join(f"{c} {100 * v:.1f}" for c, v in scores["iou"].items())


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        backend, scale, steps, frame = sys.argv[2:6]
        print(json.dumps(child_step(backend, scale, int(steps), frame)))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", nargs="+", default=["step", "stream", "zeroshot"])
    ap.add_argument("--scales", nargs="+", default=["default", "paper"])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--frame", default="000000")
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--teacher-iterations", type=int, default=1000)
    ap.add_argument("--modes", nargs="+", default=["fskd"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    path = OUT / "lidar_scale.json"
    report = json.loads(path.read_text()) if path.is_file() else {}
    report["machine"] = f"{platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    for part in args.parts:
        fn = {"step": part_step, "stream": part_stream, "zeroshot": part_zeroshot}[part]
        t = time.perf_counter()
        res = fn(args)
        res.update(command="python bench/lidar_scale.py " + " ".join(sys.argv[1:]),
                   date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                   wall_s=time.perf_counter() - t)
        report[part] = res
        OUT.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1))
        write_md(report, OUT / "lidar_scale.md")
        print(f"{part}: done in {res['wall_s']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
