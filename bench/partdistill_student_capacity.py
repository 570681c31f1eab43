"""Does a bigger or longer-trained PartDistill student widen its lead over lifting?

Writes docs/results/partdistill_student_capacity.md (+ .json).

Same protocol as ``bench/partdistill.py`` (first 8 objects of a category teach the few-shot
teacher, default settings; the rest are the unlabelled set, scored with semantic mIoU,
PartNetE convention). The teacher and its back-projected 2D knowledge are computed once;
then, per student setting (``StudentConfig`` fields), two students are trained:

* (b) forward distillation on the unlabelled set (predictions with confidence >= 0.5);
* (d) the same network on the labelled objects' ground truth;

and scored beside (a), the teacher's predictions lifted by voting (which does not depend on
the student). Backward distillation is left out: it re-trains the same network, so this
asks only whether the network itself is the limit.

    python bench/partdistill_student_capacity.py                        # Bucket, 5 settings, ~25 min
    python bench/partdistill_student_capacity.py --categories Bucket Safe --variants base w128
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import time
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
OUT = REPO / "docs" / "results"
STEM = "partdistill_student_capacity"

VARIANTS: dict[str, dict] = {  # name -> StudentConfig fields changed from the default
    "base": {},
    "it1200": {"iterations": 1200},
    "w128": {"width": 128},
    "b8": {"n_blocks": 8},
    "k32": {"k": 32},
}


def run_category(bench, category: str, variants: list[str], n_labelled: int) -> list[dict]:
    """One row per student setting: (a) lifted, (b) forward, (d) supervised mIoU and training seconds."""
    import torch

    from crossdistill.eval.metrics.parts import partnete_miou
    from crossdistill.geometry.normalize import normalize_shape
    from crossdistill.methods.partdistill.distill import DistillConfig, PartDistill, lift_knowledge
    from crossdistill.methods.partdistill.student_training import StudentConfig, predict_probs, train_student
    from crossdistill.teachers.fewshot import FewShotConfig, FewShotTextTeacher
    from partdistill import load_category, scored_faces, train_on_labelled

    names, objs = load_category(bench, category)
    P = len(names)
    labelled, rest = objs[:n_labelled], objs[n_labelled:]
    torch.manual_seed(0)
    teacher = FewShotTextTeacher.fit([normalize_shape(o[1])[0] for o in labelled], [o[2] for o in labelled], names,
                                     FewShotConfig(), progress=False)

    def score(point_labels, items) -> float:
        pairs = [scored_faces(pl, item, face_lab)[1] for pl, item, (_, _, face_lab) in zip(point_labels, items, rest)]
        return 100 * partnete_miou(pairs, P).miou

    prepared: dict[tuple[int, int], list] = {}
    rows = []
    for name in variants:
        cfg = StudentConfig(**VARIANTS[name])
        key = (cfg.n_points, cfg.k)
        if key not in prepared:
            pd = PartDistill(teacher, names, DistillConfig(student=cfg), progress=False)
            prepared[key] = pd.prepare_all([(o[0], o[1]) for o in rest])
        items = prepared[key]
        fwd_k = [s.knowledge.subset(s.knowledge.scores >= DistillConfig().min_score) for s in items]
        lift = score([lift_knowledge(k, s.samples.points, P) for k, s in zip(fwd_k, items)], items)
        t = time.perf_counter()
        student = train_student([s.points for s in items], [k.point_targets(P) for k in fwd_k], P, cfg, progress=False)
        train_s = time.perf_counter() - t
        forward = score([predict_probs(student, s.points).argmax(1) for s in items], items)
        supervised = train_on_labelled(labelled, P, cfg)
        sup = score([predict_probs(supervised, s.points).argmax(1) for s in items], items)
        rows.append({"category": category, "variant": name, "changes": VARIANTS[name], "lift": lift,
                     "forward": forward, "supervised": sup, "forward_train_s": train_s})
        print(json.dumps({k: (round(v, 1) if isinstance(v, float) else v) for k, v in rows[-1].items()}), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--categories", nargs="+", default=["Bucket"])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--labelled", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    data = REPO / ".." / "shared" / "data"
    if not (data / "partnet_mobility_dev").is_dir():
        sys.exit("skipped: ../shared/data/partnet_mobility_dev not found (the shared data is needed)")
    import torch

    from crossdistill.eval.benchmarks import get_benchmark
    from crossdistill.io_utils import write_json, write_text

    torch.set_num_threads(args.threads)
    bench = get_benchmark("partnet_mobility_dev", data)
    t0 = time.perf_counter()
    rows = [r for cat in args.categories for r in run_category(bench, cat, args.variants, args.labelled)]
    lines = ["# PartDistill: is the student network the limit?", "",
             f"Command: `python bench/partdistill_student_capacity.py {' '.join(sys.argv[1:])}`  ",
             f"Date: {_dt.datetime.now():%Y-%m-%d %H:%M}; {args.threads} torch threads; wall "
             f"{time.perf_counter() - t0:.0f} s; 1-minute load average at the end {os.getloadavg()[0]:.1f} "
             "(training seconds are wall time: compare them only within a run that had the machine to itself)", "",
             "Protocol of `partdistill.md` (default few-shot teacher on the first 8 objects, semantic mIoU on the "
             "rest). (a) does not depend on the student; (b) forward distillation and (d) the network trained on "
             "the 8 labelled objects use the student setting of the row.", "",
             "| category | student setting | (a) lifted | (b) forward | (d) on labelled | (b) - (a) | forward training s |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        change = ", ".join(f"{k}={v}" for k, v in r["changes"].items()) or "default (width 64, 4 blocks, k 16, 400 steps)"
        lines.append(f"| {r['category']} | {change} | {r['lift']:.1f} | {r['forward']:.1f} | {r['supervised']:.1f} | "
                     f"{r['forward'] - r['lift']:+.1f} | {r['forward_train_s']:.0f} |")
    write_text(OUT / f"{STEM}.md", "\n".join(lines) + "\n")
    write_json(OUT / f"{STEM}.json", {"rows": rows, "args": vars(args)})


if __name__ == "__main__":
    main()
