"""PartDistill through a detector-like teacher EMULATOR (benchmarks only), and the choice of its defaults.

Writes docs/results/partdistill_emulated.md, .json and .png. Every run is cached under
bench/_cache/partdistill_emulated/ (one JSON of scores per run, the forward students as
state dicts), so a rerun resumes where it stopped and only writes the report when nothing
is left to run.

The teacher is :class:`~crossdistill.eval.emulators.EmulatedDetectorTeacher`: per rendered
view, GLIP-like boxes (or masks) of the named parts made from the ground-truth articulated
links of the shared PartNet-Mobility objects, with the view-inconsistent errors of its fixed,
documented noise model at strength t (0, 0.5 = medium, 1 = high). It is NOT a real detector.
PartDistill runs unchanged on it (``PartDistill.prepare_all`` / ``fit``).

Protocol, per category with at least 10 objects (objects sorted by id):
* PartDistill distils over ALL objects of the category (zero-shot: none of them is labelled
  for it); scores are taken on the objects after the first ``--labelled`` ones;
* (a) the forward predictions (score >= min_score) lifted by confidence-weighted voting
  (PartSLIP-style); (b) forward distillation; (c) forward + backward; (d) the same student
  network trained on the ground truth of the first ``--labelled`` objects (supervised
  reference), all scored on the same objects (semantic mIoU, PartNetE convention, 10,000
  area-uniform points per object, as ``bench/partdistill.py``).

Phases (``--phase``; default all, in this order):
* ``select``: on the SELECTION categories (``--select``, default Bucket and Safe), box output,
  medium strength, 128 px, a coordinate search (the CPU allows no full grid): every backward
  variant at min_score 0.3, the one with the best mean (c) chosen; then min_score 0.1 / 0.3 /
  0.5 with that variant, the best mean (c) chosen;
* ``size``: same categories, the chosen pair at 128 and 256 px; the size with the best mean
  (c) is chosen (ties: the smaller);
* ``report``: every category at the chosen settings, box and mask outputs, strengths medium,
  high and zero, with the backward student's options ``--backward-init / --backward-score /
  --backward-refine`` (default: the code's, chosen afterwards on the same selection categories by
  ``bench/partdistill_emulated_backward.py``; the select and size phases keep the earlier backward
  student: fresh, the student's score, no refinement). Targets are judged on the REPORT categories (the others) and on all five.

    OMP_NUM_THREADS=1 python bench/partdistill_emulated.py            # all phases, resumes
    OMP_NUM_THREADS=1 python bench/partdistill_emulated.py --phase select
    OMP_NUM_THREADS=1 python bench/partdistill_emulated.py --report-only   # write the report from the cache
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
DATA = REPO / ".." / "shared" / "data"
OUT = REPO / "docs" / "results"
STEM = "partdistill_emulated"
CACHE = REPO / "bench" / "_cache" / STEM
METHODS = ("lift", "forward", "forward+backward", "supervised")
TITLES = {"lift": "(a) lifted", "forward": "(b) forward", "forward+backward": "(c) forward+backward",
          "supervised": "(d) 3D net on labelled"}
MIN_SCORES = (0.1, 0.3, 0.5)
#: backward rules / loss variants of the grid: DistillConfig and StudentConfig settings
VARIANTS = {"absolute": {"backward_rule": "absolute"}, "class_relative": {"backward_rule": "class_relative"},
            "reweight": {"backward_rule": "reweight"},
            # the released code as a whole: soft re-weighting, per-point mean loss, rare parts up to 4x
            "released": {"backward_rule": "reweight", "per_point_mean": True, "class_weights": "released"},
            # the shipped backward rule with the released code's class weights / its whole loss (the loss screen of
            # bench/partdistill_emulated_budget.py)
            "class_relative_weights": {"backward_rule": "class_relative", "class_weights": "released"},
            "class_relative_released_loss": {"backward_rule": "class_relative", "per_point_mean": True,
                                             "class_weights": "released"},
            # class weights in the forward student only (shares class_relative_weights' forward students)
            "class_relative_forward_weights": {"backward_rule": "class_relative", "class_weights": "released",
                                               "class_weight_stages": "forward"},
            # negative learning from the boxes' evidence against a part (partdistill_negative_evidence.md)
            "class_relative_negative": {"backward_rule": "class_relative", "negative_weight": 1.0},
            "class_relative_negative2": {"backward_rule": "class_relative", "negative_weight": 2.0},
            "class_relative_negative4": {"backward_rule": "class_relative", "negative_weight": 4.0},
            # lambda 2 with every prediction weighted by its specificity (partdistill_specificity.md)
            "class_relative_negative2_spec0.5": {"backward_rule": "class_relative", "negative_weight": 2.0,
                                                 "specificity": 0.5},
            # the same, the backward students learning the evidence of the kept predictions (shares its forward students)
            "class_relative_negative2_spec0.5_kept": {"backward_rule": "class_relative", "negative_weight": 2.0,
                                                      "specificity": 0.5, "backward_evidence": "kept"},
            # lambda 1 (the mask teachers' default) with the weighting: the mask-output check
            "class_relative_negative_spec0.5": {"backward_rule": "class_relative", "negative_weight": 1.0,
                                                "specificity": 0.5},
            # share targets: pos / (pos + neg) per covering part (partdistill_lifting_evidence.md)
            "class_relative_share": {"backward_rule": "class_relative", "share_targets": True}}
RULES = ("absolute", "class_relative", "reweight", "released")  # the main grid's rules
SIZES = (128, 256)
STRENGTHS = {"medium": 0.5, "high": 1.0, "zero": 0.0}


def run_key(cat: str, output: str, t: float, size: int, min_score: float, rule: str, args,
            forward: bool = False) -> str:
    """Cache name of one run; ``forward``: of its forward student (shared by variants with the same loss)."""
    base = f"{cat}_{output}_t{t:g}_s{size}_m{min_score:g}_p{args.points}_i{args.iterations}"
    if getattr(args, "width", 64) != 64:
        base += f"_w{args.width}"
    if getattr(args, "seed", 0):  # student seed (weights, batches, augmentation); the knowledge keeps seed 0
        base += f"_seed{args.seed}"
    if forward:  # the backward student's options do not change the forward student
        v = VARIANTS[rule]
        return (base + ("_mean" if v.get("per_point_mean") else "")
                + (f"_w{v['class_weights']}" if v.get("class_weights") else "")
                + (f"_neg{v['negative_weight']:g}" if v.get("negative_weight") else "")
                + ("_share" if v.get("share_targets") else "")
                + (f"_spec{v['specificity']:g}" if v.get("specificity") else ""))
    init, refine = getattr(args, "backward_init", "fresh"), getattr(args, "backward_refine", 0.0)
    score = getattr(args, "backward_score", "student")
    rounds = getattr(args, "backward_rounds", 1)
    return (f"{base}_{rule}" + ("_continue" if init == "continue" else "") + (f"_refine{refine:g}" if refine else "")
            + ("_product" if score == "product" else "") + (f"_r{rounds}" if rounds != 1 else ""))


class Category:
    """One category's objects, ground truth and the per-setting 2D knowledge (built on demand)."""

    def __init__(self, bench, name: str, n_labelled: int) -> None:
        from partdistill import load_category

        from crossdistill.eval.emulators import DetectorGroundTruth

        self.name = name
        self.names, self.objs = load_category(bench, name)
        recs = {r.id: r for r in bench.records() if r.category == name}
        self.gts = []
        for oid, shape, _ in self.objs:
            rec = recs[oid]
            face_link = bench.load(rec)["face_link"]
            labels = [str(link["label"]) for link in rec.meta.get("links", [])]
            self.gts.append(DetectorGroundTruth.from_shape(shape, face_link, labels, name=f"{name}/{oid}"))
        self.n_labelled = n_labelled
        self._items: dict = {}

    def items(self, output: str, t: float, size: int, student_cfg):
        """PartDistill's prepared shapes (all objects) for one emulator setting."""
        key = (output, t, size)
        if key not in self._items:
            from crossdistill.eval.emulators import EmulatedDetectorTeacher
            from crossdistill.methods.partdistill.distill import DistillConfig, PartDistill

            teacher = EmulatedDetectorTeacher(self.gts, output=output, strength=t, seed=0)
            pd = PartDistill(teacher, self.names, DistillConfig(image_size=size, student=student_cfg), progress=False)
            t0 = time.perf_counter()
            self._items = {key: pd.prepare_all([(o[0], o[1]) for o in self.objs])}  # keep one setting in memory
            self._items[key + ("s",)] = time.perf_counter() - t0
        return self._items[key], self._items[key + ("s",)]


def _purity(knowledge, point_gt: np.ndarray) -> tuple[float, float]:
    """Score-weighted mean share of a prediction's points whose ground truth is its label, and
    the share of predictions that are mostly wrong (purity < 0.5)."""
    if len(knowledge) == 0:
        return float("nan"), float("nan")
    owner = np.repeat(np.arange(len(knowledge)), knowledge.sizes)
    right = point_gt[knowledge.points] == knowledge.labels[owner]
    pur = np.bincount(owner, weights=right, minlength=len(knowledge)) / np.maximum(knowledge.sizes, 1)
    w = np.maximum(knowledge.scores.astype(np.float64), 1e-9)
    return float((pur * w).sum() / w.sum()), float((pur < 0.5).mean())


def do_run(cat: Category, output: str, t: float, size: int, min_score: float, rule: str, args) -> dict:
    """One setting: (a), (b), (c) scores (forward students cached and shared between rules)."""
    import torch

    from partdistill import scored_faces

    from crossdistill.eval.metrics.parts import partnete_miou
    from crossdistill.io_utils import atomic_write, write_json
    from crossdistill.methods.partdistill.distill import DistillConfig, PartDistill, lift_knowledge
    from crossdistill.methods.partdistill.student_training import StudentConfig, predict_probs
    from crossdistill.students.point_student import PointStudent

    path = CACHE / f"{run_key(cat.name, output, t, size, min_score, rule, args)}.json"
    if path.is_file():
        return json.loads(path.read_text())
    v = VARIANTS[rule]
    scfg = StudentConfig(n_points=args.points, iterations=args.iterations, width=getattr(args, "width", 64),
                         class_weights=v.get("class_weights"))
    items, knowledge_s = cat.items(output, t, size, scfg)  # point sampling seed 0 whatever the student seed
    scfg = replace(scfg, seed=getattr(args, "seed", 0))
    config = DistillConfig(image_size=size, min_score=min_score, pool_min_score=min(0.05, min_score),
                           backward_rule=v["backward_rule"], per_point_mean=v.get("per_point_mean", False),
                           backward_init=args.backward_init, backward_refine=args.backward_refine,
                           backward_score=args.backward_score, backward_rounds=getattr(args, "backward_rounds", 1),
                           class_weight_stages=v.get("class_weight_stages", "all"),
                           negative_weight=v.get("negative_weight", 0.0), specificity=v.get("specificity", 0.0),
                           backward_evidence=v.get("backward_evidence", "forward"),
                           share_targets=v.get("share_targets", False), student=scfg)
    pd = PartDistill(None, cat.names, config, progress=False)  # knowledge is ready: no teacher call
    P = len(cat.names)
    fpath = CACHE / f"{run_key(cat.name, output, t, size, min_score, rule, args, forward=True)}.forward.pt"
    forward = None
    if fpath.is_file():
        forward = PointStudent(P, scfg.width, scfg.n_blocks)
        forward.load_state_dict(torch.load(fpath, weights_only=True))
        forward.eval()
    t0 = time.perf_counter()
    result = pd.fit(items, forward=forward)
    train_s = time.perf_counter() - t0
    if forward is None:
        with atomic_write(fpath) as tmp:
            torch.save(result.forward_student.state_dict(), tmp)
    scored = range(cat.n_labelled, len(cat.objs))
    pairs = {m: [] for m in METHODS[:3]}
    forward_k = [s.knowledge.subset(s.knowledge.scores >= min_score) for s in items]
    for i in scored:
        item, face_lab = items[i], cat.objs[i][2]
        point_preds = {"lift": lift_knowledge(forward_k[i], item.samples.points, P),
                       "forward": predict_probs(result.forward_student, item.points).argmax(1),
                       "forward+backward": predict_probs(result.student, item.points).argmax(1)}
        for m, pl in point_preds.items():
            pairs[m].append(scored_faces(pl, item, face_lab)[1])
    scores = {}
    for m, pr in pairs.items():
        res = partnete_miou(pr, P)
        scores[m] = {"miou": 100 * res.miou,
                     "part_iou": {n: (None if np.isnan(v) else 100 * float(v)) for n, v in zip(cat.names, res.part_iou)}}
    point_gt = [cat.objs[i][2][items[i].samples.face_id] for i in range(len(items))]
    purity = {}
    for stage, ks in (("forward", forward_k), ("backward", result.knowledge)):
        owner_all = [_purity(k, g) for k, g in zip(ks, point_gt) if len(k)]
        purity[stage] = {"purity": float(np.nanmean([o[0] for o in owner_all])),
                         "mostly_wrong": float(np.nanmean([o[1] for o in owner_all])),
                         "predictions": int(sum(len(k) for k in ks))}
    row = {"category": cat.name, "output": output, "strength": t, "size": size, "min_score": min_score,
           "rule": rule, "scores": scores, "rounds": result.rounds, "purity": purity,
           "knowledge_s": knowledge_s, "train_s": train_s, "forward_cached": forward is not None,
           "load_avg": os.getloadavg()[0]}
    write_json(path, row)
    return row


def supervised_key(cat: str, n_labelled: int, args) -> str:
    """Cache name of (d) for one category at the students' budget (and student seed when not 0)."""
    seed = getattr(args, "seed", 0)
    return f"{cat}_supervised_l{n_labelled}_p{args.points}_i{args.iterations}" + (f"_seed{seed}" if seed else "")


def supervised_run(cat: Category, args) -> dict:
    from partdistill import scored_faces, train_on_labelled

    from crossdistill.eval.metrics.parts import partnete_miou
    from crossdistill.io_utils import write_json
    from crossdistill.methods.partdistill.distill import shape_points
    from crossdistill.methods.partdistill.student_training import StudentConfig, predict_probs

    path = CACHE / f"{supervised_key(cat.name, cat.n_labelled, args)}.json"
    if path.is_file():
        return json.loads(path.read_text())
    scfg = StudentConfig(n_points=args.points, iterations=args.iterations, seed=getattr(args, "seed", 0))
    t0 = time.perf_counter()
    net = train_on_labelled(cat.objs[:cat.n_labelled], len(cat.names), scfg)
    train_s = time.perf_counter() - t0
    pairs = []
    for name, shape, face_lab in cat.objs[cat.n_labelled:]:
        unit, samples, pts = shape_points(shape, scfg.n_points, scfg.k, scfg.seed, name)

        class _Item:  # what scored_faces reads
            pass

        it = _Item()
        it.samples, it.shape = samples, unit
        pairs.append(scored_faces(predict_probs(net, pts).argmax(1), it, face_lab)[1])
    res = partnete_miou(pairs, len(cat.names))
    row = {"category": cat.name, "miou": 100 * res.miou, "train_s": train_s,
           "part_iou": {n: (None if np.isnan(v) else 100 * float(v)) for n, v in zip(cat.names, res.part_iou)}}
    write_json(path, row)
    return row


def choose(rows: list[dict], keys: tuple[str, ...]) -> tuple:
    """The setting (values of ``keys``) with the best mean (c) over categories (ties: first in order)."""
    by: dict[tuple, list[float]] = {}
    for r in rows:
        by.setdefault(tuple(r[k] for k in keys), []).append(r["scores"]["forward+backward"]["miou"])
    n = max(len(v) for v in by.values())
    full = {k: float(np.mean(v)) for k, v in by.items() if len(v) == n}
    return max(full, key=lambda k: full[k])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phase", choices=["all", "select", "size", "report"], default="all")
    ap.add_argument("--select", nargs="*", default=["Bucket", "Safe"], help="selection categories")
    ap.add_argument("--categories", nargs="*", default=None, help="report categories (default: all with >= 10)")
    ap.add_argument("--labelled", type=int, default=8, help="objects (first by id) (d) trains on; not scored")
    ap.add_argument("--points", type=int, default=1024, help="student points per shape (CPU budget)")
    ap.add_argument("--iterations", type=int, default=150, help="student steps per training run (CPU budget)")
    ap.add_argument("--outputs", nargs="*", default=["box", "mask"])
    ap.add_argument("--strengths", nargs="*", default=list(STRENGTHS), choices=list(STRENGTHS))
    ap.add_argument("--report-only", action="store_true", help="write the report from the cache, run nothing")
    ap.add_argument("--threads", type=int, default=1)
    from crossdistill.methods.partdistill.distill import BACKWARD_INITS, BACKWARD_SCORES, DistillConfig

    ap.add_argument("--backward-init", choices=BACKWARD_INITS, default=DistillConfig().backward_init,
                    help="backward student: fresh or continued from the forward one (default: the code's; chosen "
                         "with bench/partdistill_emulated_backward.py on the selection categories)")
    ap.add_argument("--backward-refine", type=float, default=DistillConfig().backward_refine,
                    help="cut kept predictions to the student's relative mask of their part (0: off; default: "
                         "the code's)")
    ap.add_argument("--backward-score", choices=BACKWARD_SCORES, default=DistillConfig().backward_score,
                    help="a kept prediction's new confidence: the student's score, or the teacher's times it "
                         "(default: the code's)")
    args = ap.parse_args()
    root = DATA / "partnet_mobility_dev"
    if not root.is_dir():
        sys.exit(f"skipped: {root} not found (the shared data is needed)")
    import torch

    from crossdistill.eval.benchmarks import get_benchmark

    torch.set_num_threads(max(1, args.threads))
    CACHE.mkdir(parents=True, exist_ok=True)
    bench = get_benchmark("partnet_mobility_dev", DATA)
    counts: dict[str, int] = {}
    for r in bench.records():
        counts[r.category] = counts.get(r.category, 0) + 1
    cats_all = args.categories or sorted(c for c, n in counts.items() if n >= 10)
    loaded: dict[str, Category] = {}

    def cat(name: str) -> Category:
        if name not in loaded:
            loaded.clear()  # one category in memory at a time
            loaded[name] = Category(bench, name, args.labelled)
        return loaded[name]

    # the selection and size phases were measured with the earlier backward student (fresh, the student's
    # score, no refinement); the backward options (chosen afterwards in partdistill_emulated_backward.md)
    # apply to the report phase
    earlier = argparse.Namespace(**{**vars(args), "backward_init": "fresh", "backward_refine": 0.0,
                                    "backward_score": "student"})

    def run(name, output, t, size, m, rule, a=earlier):
        path = CACHE / f"{run_key(name, output, t, size, m, rule, a)}.json"
        if path.is_file():
            return json.loads(path.read_text())
        if args.report_only:
            return None
        row = do_run(cat(name), output, t, size, m, rule, a)
        s = row["scores"]
        print(f"{name} {output} t={t:g} {size}px m={m:g} {rule}: " +
              " ".join(f"{k} {s[k]['miou']:.1f}" for k in METHODS[:3]) + f" ({row['train_s']:.0f} s)", flush=True)
        return row

    t_start = time.perf_counter()
    stop = {"select": 1, "size": 2, "report": 3, "all": 3}[args.phase]
    # coordinate search: the backward variant at min_score 0.3, then min_score for that variant
    grid = [run(c, "box", 0.5, 128, 0.3, rule) for c in args.select for rule in RULES]
    select = [r for r in grid if r is not None]
    chosen = [None, None, None]
    if select and len(select) == len(grid):
        chosen[1] = choose(select, ("rule",))[0]
        got = [run(c, "box", 0.5, 128, m, chosen[1]) for c in args.select for m in MIN_SCORES]
        if all(r is not None for r in got):
            chosen[0] = choose(got, ("min_score",))[0]
    # every selection-category run at 128 px, medium, box in the cache (also those of earlier full grids)
    select = [r for c in args.select for m in MIN_SCORES for rule in RULES
              if (p := CACHE / f"{run_key(c, 'box', 0.5, 128, m, rule, earlier)}.json").is_file()
              and (r := json.loads(p.read_text()))]
    sizes, report, supervised = [], [], {}
    if chosen[0] is not None and stop >= 2:
        got = [run(c, "box", 0.5, s, chosen[0], chosen[1]) for c in args.select for s in SIZES]
        sizes = [r for r in got if r is not None]
        if len(sizes) == len(got):
            chosen[2] = choose(sizes, ("size",))[0]
    if chosen[2] is not None and stop >= 3:
        order = [("medium", "box"), ("medium", "mask"), ("high", "box"), ("zero", "box"), ("high", "mask"),
                 ("zero", "mask")]
        settings = [(STRENGTHS[sn], o) for sn, o in order if sn in args.strengths and o in args.outputs]
        for n, (t, output) in enumerate(settings):
            for c in cats_all:
                r = run(c, output, t, chosen[2], chosen[0], chosen[1], args)
                if r is not None:
                    report.append(r)
            if n == 0:  # (d) right after the target's setting
                for c in cats_all:
                    p = CACHE / f"{supervised_key(c, args.labelled, args)}.json"
                    if p.is_file():
                        supervised[c] = json.loads(p.read_text())
                    elif not args.report_only:
                        supervised[c] = supervised_run(cat(c), args)
    wall = time.perf_counter() - t_start
    from partdistill_emulated_report import write_report

    write_report(select, sizes, report, supervised, tuple(chosen), cats_all, args, wall)


if __name__ == "__main__":
    main()
