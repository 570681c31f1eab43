"""PartDistill on the shared PartNet-Mobility objects, few-shot setting, against its baselines.

Writes docs/results/partdistill.md, partdistill.json, partdistill.png (bars) and one
contact sheet per category (docs/results/partdistill/<Category>.png).

For every category of ../shared/data/partnet_mobility_dev with at least 10 objects
(objects sorted by id):

* the **few-shot teacher** (:class:`~crossdistill.teachers.fewshot.FewShotTextTeacher`,
  default settings) is trained on the first ``--labelled`` objects with their link-level
  semantic labels (names from ``links[].label``);
* the other objects are the **unlabelled** set: PartDistill renders them (10 views),
  asks the teacher, back-projects, and trains the student on all of them at once;
* side by side, scored on the unlabelled set (semantic mIoU, PartNetE convention
  ``partnete_miou``: per part, mean IoU over shapes whose ground truth has it; then mean
  over parts), on 10,000 area-uniform points per object (seed 123), each taking the
  predicted label of its face (faces labelled by the majority of the student's / the
  lifting's sampled points, nearest labelled face otherwise):
  (a) the teacher's predictions lifted to 3D by confidence-weighted voting, uncovered
      points filled from the nearest covered point (PartSLIP-style), same predictions
      as the student's forward stage;
  (a*) the same lifting given the predictions' negative evidence, each covered point's part
      chosen by pos / (pos + neg) (``lift_knowledge(vote="share")``, the vote of record of
      ``partdistill_lifting_evidence.md``): the fair baseline once the students use that evidence;
  (b) student after forward distillation; (c) after forward + backward;
  (d) the same student network trained directly on the labelled objects (ground truth
      on every sampled point, same steps).

Target (issue 7): (c) >= (a) + 5 mIoU points and (c) > (d).

    python bench/partdistill.py                    # all 5 categories, ~15-25 min on 2 cores
    python bench/partdistill.py --categories Safe  # one
    python bench/partdistill.py --teacher-output box   # box-level teacher -> partdistill_box.md
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DATA = REPO / ".." / "shared" / "data"
OUT = REPO / "docs" / "results"
STEM = "partdistill"  # + "_box" with --teacher-output box, + "_class_relative" with that non-default rule
METHODS = ("lift", "lift_share", "forward", "forward+backward", "supervised")
TITLES = {"lift": "(a) teacher lifted", "lift_share": "(a*) lifted, share vote", "forward": "(b) forward",
          "forward+backward": "(c) forward+backward", "supervised": "(d) 3D net on labelled"}


def _faces_from_points(point_labels, samples, unit):
    from crossdistill.methods.sampart3d.vote import vote_faces

    return vote_faces(point_labels, samples.face_id, unit.n_faces, unit.vertices[unit.faces].mean(1), spill=0.0)


def scored_faces(point_labels, item, face_labels) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Face labels of one distilled shape from its sampled points' labels, and the (ground truth,
    prediction) pair on 10,000 area-uniform evaluation points (seed 123) that the mIoU is scored on."""
    from crossdistill.geometry.sampling import sample_surface

    faces = _faces_from_points(point_labels, item.samples, item.shape)
    ev = sample_surface(item.shape, 10000, seed=123)
    return faces, (face_labels[ev.face_id], faces[ev.face_id])


def load_category(bench, category: str) -> tuple[tuple[str, ...], list]:
    """Part names (link-level semantics) and [(id, shape, face labels)] of one category, sorted by id."""
    from crossdistill.methods.partdistill.data import link_face_labels, link_part_names

    recs = sorted((r for r in bench.records() if r.category == category), key=lambda r: r.id)
    names = link_part_names(recs)
    objs = []
    for r in recs:
        d = bench.load(r)
        objs.append((r.id, d["shape"], link_face_labels(r.meta, d["face_link"], names)))
    return names, objs


def train_on_labelled(labelled: list, n_parts: int, student_cfg):
    """(d): the student network trained on the ground truth of [(id, shape, face labels)] (every sampled point)."""
    from crossdistill.methods.partdistill.distill import shape_points
    from crossdistill.methods.partdistill.student_training import train_student

    points, targets = [], []
    for name, shape, face_lab in labelled:
        _, samples, pts = shape_points(shape, student_cfg.n_points, student_cfg.k, student_cfg.seed, name)
        lab = face_lab[samples.face_id]
        tgt = np.zeros((len(lab), n_parts), np.float32)
        tgt[lab >= 0, lab[lab >= 0]] = 1.0
        points.append(pts)
        targets.append(tgt)
    return train_student(points, targets, n_parts, student_cfg, progress=False)


def run_category(bench, category: str, n_labelled: int, args) -> dict:
    import torch

    from crossdistill.eval.metrics.parts import partnete_miou
    from crossdistill.geometry.normalize import normalize_shape
    from crossdistill.methods.partdistill.distill import DistillConfig, PartDistill, lift_knowledge
    from crossdistill.methods.partdistill.student_training import StudentConfig, predict_probs
    from crossdistill.teachers.fewshot import FewShotConfig, FewShotTextTeacher

    torch.manual_seed(0)
    names, objs = load_category(bench, category)
    P = len(names)
    labelled, rest = objs[:n_labelled], objs[n_labelled:]
    timings = {}

    t = time.perf_counter()
    teacher = FewShotTextTeacher.fit([normalize_shape(o[1])[0] for o in labelled], [o[2] for o in labelled], names,
                                     FewShotConfig(output=args.teacher_output, candidate_min=args.candidate_min,
                                                   inputs=args.teacher_inputs, size=args.image_size),
                                     progress=False)
    timings["teacher_train_s"] = time.perf_counter() - t

    student_cfg = StudentConfig(iterations=args.iterations,
                                class_weights=None if args.class_weights == "none" else args.class_weights)
    config = DistillConfig(student=student_cfg, backward_rounds=args.backward_rounds, backward_rule=args.backward_rule,
                           image_size=args.image_size, negative_weight=args.negative_weight,
                           specificity=FewShotTextTeacher.default_specificity)
    pd = PartDistill(teacher, names, config, progress=False)
    t = time.perf_counter()
    items = pd.prepare_all([(o[0], o[1]) for o in rest])
    timings["knowledge_s"] = time.perf_counter() - t
    t = time.perf_counter()
    result = pd.fit(items)
    timings["distill_train_s"] = time.perf_counter() - t

    # (d): the same network on the labelled objects' ground truth
    t = time.perf_counter()
    supervised = train_on_labelled(labelled, P, student_cfg)
    timings["supervised_train_s"] = time.perf_counter() - t

    forward_k = [s.knowledge.subset(s.knowledge.scores >= config.min_score) for s in items]
    pairs = {m: [] for m in METHODS}
    face_preds = {m: [] for m in METHODS}
    for item, k_fwd, (name, shape, face_lab) in zip(items, forward_k, rest):
        point_preds = {
            "lift": lift_knowledge(k_fwd, item.samples.points, P),
            "lift_share": lift_knowledge(k_fwd, item.samples.points, P, vote="share"),
            "forward": predict_probs(result.forward_student, item.points).argmax(1),
            "forward+backward": predict_probs(result.student, item.points).argmax(1),
            "supervised": predict_probs(supervised, item.points).argmax(1),
        }
        for m, pl in point_preds.items():
            faces, pair = scored_faces(pl, item, face_lab)
            face_preds[m].append(faces)
            pairs[m].append(pair)
    scores = {}
    for m in METHODS:
        res = partnete_miou(pairs[m], P)
        scores[m] = {"miou": 100 * res.miou,
                     "part_iou": {n: (None if np.isnan(v) else 100 * float(v)) for n, v in zip(names, res.part_iou)}}
    _contact_sheet(category, items[0], rest[0][2], face_preds)
    n_rest = len(rest)
    return {"category": category, "parts": list(names), "labelled": [o[0] for o in labelled],
            "unlabelled": [o[0] for o in rest], "scores": scores, "rounds": result.rounds, "timings": timings,
            "train_s_per_shape": (timings["distill_train_s"]) / n_rest,
            "knowledge_s_per_shape": timings["knowledge_s"] / n_rest}


def _contact_sheet(category: str, item, gt_faces, face_preds) -> None:
    from crossdistill.io_utils import save_image
    from crossdistill.render.cameras import orbit_rig
    from crossdistill.render.renderer import render_shape
    from crossdistill.viz.contact_sheet import contact_sheet

    views = render_shape(item.shape, orbit_rig((25.0,), 4, 160), progress=False, n_samples=64).views
    gt = np.where(gt_faces >= 0, gt_faces, 0)
    rows = [gt] + [face_preds[m][0] for m in METHODS]
    titles = [f"{item.name}: ground truth"] + [TITLES[m] for m in METHODS]
    save_image(OUT / STEM / f"{category}.png", contact_sheet(views, rows, titles))


def _can_plot() -> bool:
    """Whether matplotlib is installed (the bar chart is drawn, and linked, only then)."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _plot(rows) -> None:
    """Per-category bars (``{STEM}.png``); skipped, with a note, where matplotlib is not installed."""
    try:
        import matplotlib
    except ImportError:
        print(f"note: matplotlib is not installed: {STEM}.png not drawn (pip install matplotlib)")
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from crossdistill.io_utils import atomic_write

    cats = [r["category"] for r in rows] + ["mean"]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    w = 0.8 / len(METHODS)
    for i, m in enumerate(METHODS):
        vals = [r["scores"][m]["miou"] for r in rows]
        vals.append(float(np.mean(vals)))
        ax.bar(np.arange(len(cats)) + (i - (len(METHODS) - 1) / 2) * w, vals, w, label=TITLES[m])
    ax.set_xticks(np.arange(len(cats)), cats)
    ax.set_ylabel("semantic mIoU")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, ncol=len(METHODS), loc="upper center", bbox_to_anchor=(0.5, 1.16))
    fig.tight_layout()
    with atomic_write(OUT / f"{STEM}.png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_report(rows, args, wall: float) -> None:
    import torch

    from crossdistill.engine.machine import cpu_model
    from crossdistill.io_utils import write_json, write_text
    from crossdistill.methods.partdistill.distill import DistillConfig
    from crossdistill.teachers.fewshot import FewShotConfig, FewShotTextTeacher

    mean = {m: float(np.mean([r["scores"][m]["miou"] for r in rows])) for m in METHODS}
    cfg = DistillConfig(image_size=args.image_size, negative_weight=args.negative_weight,
                        specificity=FewShotTextTeacher.default_specificity)
    load = os.getloadavg()[0]
    lines = [
        "# PartDistill: few-shot semantic part segmentation by bi-directional distillation"
        + (" (box-level teacher)" if args.teacher_output == "box" else ""), "",
        f"Command: `python bench/partdistill.py{' ' + ' '.join(sys.argv[1:]) if sys.argv[1:] else ''}`  ",
        f"Date: {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}  ",
        f"Machine: {cpu_model()}, nproc {os.cpu_count()}, Python {platform.python_version()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads; 1-minute load average at the end {load:.1f}  ",
        f"Total wall time: {wall / 60:.1f} min", "",
        f"Data: `../shared/data/partnet_mobility_dev`, categories with >= 10 objects, link-level semantic labels "
        f"(`links[].label`). Per category the first {args.labelled} objects (sorted ids) train the few-shot 2D "
        "teacher; the others are the unlabelled set the student is distilled on and where all five are scored "
        "(semantic mIoU, PartNetE convention, 10,000 area-uniform points per object).", "",
        f"Settings: teacher `FewShotConfig(output={args.teacher_output!r}, candidate_min={args.candidate_min}, inputs={args.teacher_inputs!r}, size={args.image_size})` ({FewShotConfig().iterations} steps, "
        f"{'box-level: each predicted region becomes its tight box' if args.teacher_output == 'box' else 'pixel-level masks'}); PartDistill {cfg.views} views of "
        f"{cfg.image_size} px, forward predictions with confidence >= {cfg.min_score}, pool >= {cfg.pool_min_score}, "
        f"backward keeps agreement >= {cfg.keep_agreement} (rule `{args.backward_rule}`, backward student "
        f"`{cfg.backward_init}`, refinement {cfg.backward_refine:g}), class weights `{args.class_weights}`, "
        f"negative learning weight {cfg.negative_weight:g}, {args.backward_rounds} backward round(s); student "
        f"{cfg.student.n_points} points/shape, width {cfg.student.width}, {cfg.student.n_blocks} blocks, "
        f"{args.iterations} steps of {cfg.student.batch_size} shapes per training run (the same for (d)).", "",
        "## Semantic mIoU on the unlabelled objects", "",
        "| category | parts | labelled / unlabelled | (a) teacher lifted | (a*) lifted, share vote | (b) forward "
        "| (c) forward+backward | (d) 3D net on labelled | (c) - (a) | (c) - (a*) | (c) - (d) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        s = {m: r["scores"][m]["miou"] for m in METHODS}
        lines.append(f"| {r['category']} | {', '.join(r['parts'])} | {len(r['labelled'])} / {len(r['unlabelled'])} | "
                     f"{s['lift']:.1f} | {s['lift_share']:.1f} | {s['forward']:.1f} | **{s['forward+backward']:.1f}** | "
                     f"{s['supervised']:.1f} | {s['forward+backward'] - s['lift']:+.1f} | "
                     f"{s['forward+backward'] - s['lift_share']:+.1f} | {s['forward+backward'] - s['supervised']:+.1f} |")
    lines.append(f"| **mean** | | | {mean['lift']:.1f} | {mean['lift_share']:.1f} | {mean['forward']:.1f} | "
                 f"**{mean['forward+backward']:.1f}** | {mean['supervised']:.1f} | "
                 f"{mean['forward+backward'] - mean['lift']:+.1f} | {mean['forward+backward'] - mean['lift_share']:+.1f} | "
                 f"{mean['forward+backward'] - mean['supervised']:+.1f} |")
    gain_a = mean["forward+backward"] - mean["lift"]
    gain_d = mean["forward+backward"] - mean["supervised"]
    per_cat_a = sum(r["scores"]["forward+backward"]["miou"] - r["scores"]["lift"]["miou"] >= 5 for r in rows)
    per_cat_d = sum(r["scores"]["forward+backward"]["miou"] > r["scores"]["supervised"]["miou"] for r in rows)
    lines += ["", "Targets (mean over categories):",
              f"- (c) beats (a) by at least 5 points: {gain_a:+.1f} -> **{'met' if gain_a >= 5 else 'MISSED'}** "
              f"({per_cat_a}/{len(rows)} categories individually)",
              f"- (c) beats (d): {gain_d:+.1f} -> **{'met' if gain_d > 0 else 'MISSED'}** "
              f"({per_cat_d}/{len(rows)} categories individually)",
              f"- against the fairer lifting (a*): (c) - (a*) {mean['forward+backward'] - mean['lift_share']:+.1f}", "",
              *([f"![per-category mIoU]({STEM}.png)", ""] if _can_plot() else []),
              "## Per part IoU", "", "| category | part | (a) | (a*) | (b) | (c) | (d) |",
              "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        for n in r["parts"]:
            vals = [r["scores"][m]["part_iou"][n] for m in METHODS]
            lines.append(f"| {r['category']} | {n} | " + " | ".join("-" if v is None else f"{v:.1f}" for v in vals) + " |")
    lines += ["", "## Backward distillation: what happened to the 2D predictions", "",
              "| category | forward predictions | pool | kept after backward | dropped (were used) | added (were below threshold) |",
              "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        f, b = r["rounds"][0], (r["rounds"][1] if len(r["rounds"]) > 1 else {})
        lines.append(f"| {r['category']} | {f['predictions']} | {f['pool']} | {b.get('kept', '-')} | "
                     f"{b.get('dropped_from_forward', '-')} | {b.get('added_from_pool', '-')} |")
    lines += ["", "## Time", "",
              "| category | teacher training s | 2D knowledge s / shape | distillation training s / shape "
              "(forward + backward, all shapes at once) | (d) training s |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        t = r["timings"]
        lines.append(f"| {r['category']} | {t['teacher_train_s']:.1f} | {r['knowledge_s_per_shape']:.2f} | "
                     f"{r['train_s_per_shape']:.2f} | {t['supervised_train_s']:.1f} |")
    lines += ["", "## Pictures", "", "One unlabelled object per category: ground truth, then (a), (a*), (b)-(d).", ""]
    lines += [f"![{r['category']}]({STEM}/{r['category']}.png)" for r in rows]
    write_text(OUT / f"{STEM}.md", "\n".join(lines) + "\n")
    write_json(OUT / f"{STEM}.json", {"categories": rows, "mean": mean, "wall_s": wall, "args": vars(args),
                                          "load_avg_end": load})
    _plot(rows)


def main() -> None:
    from crossdistill.methods.partdistill.distill import DistillConfig
    from crossdistill.teachers.fewshot import FewShotTextTeacher

    FEWSHOT_NEGATIVE_WEIGHT = FewShotTextTeacher.default_negative_weight

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--categories", nargs="*", default=None)
    ap.add_argument("--labelled", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=400, help="student steps per training run")
    ap.add_argument("--backward-rounds", type=int, default=1)
    ap.add_argument("--backward-rule", choices=["absolute", "class_relative", "reweight"],
                    default=DistillConfig().backward_rule)
    ap.add_argument("--class-weights", choices=["none", "released"], default="none",
                    help="student loss class weights (released: the released PartDistill code's; also for (d))")
    ap.add_argument("--teacher-output", choices=["mask", "box"], default="mask",
                    help="pixel-level masks (default) or box-level predictions of the few-shot teacher")
    ap.add_argument("--candidate-min", type=float, default=0.0,
                    help="few-shot teacher also returns non-argmax regions at least this probable (0: off)")
    ap.add_argument("--teacher-inputs", choices=["world", "image"], default="world",
                    help="few-shot teacher sees world xyz + normal (3D-aware) or only view-local image channels")
    ap.add_argument("--image-size", type=int, default=128,
                    help="render size of the teacher's training views and of PartDistill's views (pixels)")
    ap.add_argument("--negative-weight", type=float, default=FEWSHOT_NEGATIVE_WEIGHT,
                    help="students' negative-learning weight (default: the few-shot teacher's, as the CLI uses it)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--stem", default=None, help="output name under docs/results (default from the settings)")
    args = ap.parse_args()
    global STEM
    STEM = "partdistill" if args.teacher_output == "mask" else "partdistill_box"
    if args.backward_rule != DistillConfig().backward_rule:
        STEM += f"_{args.backward_rule}"
    if args.class_weights != "none":
        STEM += f"_{args.class_weights}_weights"
    if args.candidate_min > 0:
        STEM += "_candidates"
    if args.teacher_inputs != "world":
        STEM += f"_{args.teacher_inputs}_teacher"
    if args.image_size != 128:
        STEM += f"_{args.image_size}px"
    if args.negative_weight != FEWSHOT_NEGATIVE_WEIGHT:
        STEM += f"_negative{args.negative_weight:g}"
    STEM = args.stem or STEM
    root = DATA / "partnet_mobility_dev"
    if not root.is_dir():
        sys.exit(f"skipped: {root} not found (the shared data is needed)")
    import torch

    from crossdistill.eval.benchmarks import get_benchmark

    torch.set_num_threads(max(1, min(args.threads, os.cpu_count() or 1)))
    bench = get_benchmark("partnet_mobility_dev", DATA)
    counts: dict[str, int] = {}
    for r in bench.records():
        counts[r.category] = counts.get(r.category, 0) + 1
    cats = args.categories or sorted(c for c, n in counts.items() if n >= 10)
    t = time.perf_counter()
    rows = []
    for cat in cats:
        rows.append(run_category(bench, cat, args.labelled, args))
        s = rows[-1]["scores"]
        print(cat, " ".join(f"{m} {s[m]['miou']:.1f}" for m in METHODS), flush=True)
    write_report(rows, args, time.perf_counter() - t)


if __name__ == "__main__":
    main()
