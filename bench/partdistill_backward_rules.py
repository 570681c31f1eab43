"""Backward-distillation selection rules compared on one category (an ablation of bench/partdistill.py).

Same protocol as ``bench/partdistill.py`` (few-shot teacher on the first 8 objects,
student on the rest, PartNetE semantic mIoU on the unlabelled objects). One forward
student is trained, and then one backward student per rule for keeping the pooled 2D
predictions. Each prediction's agreement is the forward student's mean probability of
the prediction's label over its back-projected points:

* R0 ``agreement >= 0.5`` (the default of :class:`DistillConfig`);
* R1 class-relative: ``agreement >= 0.5 * ref_c``, score ``min(1, agreement / ref_c)``,
  ``ref_c`` = 90th percentile of the agreements of class c's predictions (small parts
  get low agreement even when right);
* R2 argmax-consistent: keep when the label is the student's most probable class on the points;
* R3 ``agreement >= 0.25``.

With ``--candidate-min P`` the teacher also returns its candidate regions (a part that is
not the most probable but at least P probable, see ``FewShotConfig.candidate_min``). They
never reach forward distillation (their scores are below 0.5), so the forward student is
the same; R0 and R1 are then also run on the pool with the candidates added ("+ cand.").

    python bench/partdistill_backward_rules.py --categories Bucket Safe --teacher-output box
Appends one section per (category, teacher output) to docs/results/partdistill_backward_rules.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
OUT = REPO / "docs" / "results" / "partdistill_backward_rules.md"


def run(category: str, output: str, candidate_min: float = 0.0) -> list[str]:
    import torch

    from crossdistill.eval.benchmarks import get_benchmark
    from crossdistill.eval.metrics.parts import partnete_miou
    from crossdistill.geometry.normalize import normalize_shape
    from crossdistill.geometry.sampling import sample_surface
    from crossdistill.methods.partdistill.distill import DistillConfig, PartDistill, lift_knowledge, select_by_agreement
    from crossdistill.methods.partdistill.student_training import predict_probs
    from crossdistill.teachers.fewshot import FewShotConfig, FewShotTextTeacher
    from partdistill import DATA, _faces_from_points, load_category

    bench = get_benchmark("partnet_mobility_dev", DATA)
    names, objs = load_category(bench, category)
    P = len(names)
    lab, rest = objs[:8], objs[8:]
    torch.manual_seed(0)
    teacher = FewShotTextTeacher.fit([normalize_shape(o[1])[0] for o in lab], [o[2] for o in lab], names,
                                     FewShotConfig(output=output), progress=False)
    pd = PartDistill(teacher, names, DistillConfig(), progress=False)
    items = pd.prepare_all([(o[0], o[1]) for o in rest])
    fk = [s.knowledge.subset(s.knowledge.scores >= pd.config.min_score) for s in items]
    fwd = pd._train(items, fk, 0, "forward")

    def score(labels_of) -> tuple[float, list]:
        pairs = []
        for it, (_, _, fl) in zip(items, rest):
            faces = _faces_from_points(labels_of(it), it.samples, it.shape)
            ev = sample_surface(it.shape, 10000, seed=123)
            pairs.append((fl[ev.face_id], faces[ev.face_id]))
        r = partnete_miou(pairs, P)
        return 100 * r.miou, [float("nan") if np.isnan(v) else 100 * v for v in r.part_iou]

    lifted = {it.name: lift_knowledge(k, it.samples.points, P) for it, k in zip(items, fk)}
    rows = [("(a) teacher lifted", sum(len(k) for k in fk), score(lambda it: lifted[it.name])),
            ("(b) forward", sum(len(k) for k in fk), score(lambda it: predict_probs(fwd, it.points).argmax(1)))]
    probs = [predict_probs(fwd, s.points) for s in items]
    per_class = [_class_agreement(s.knowledge, pr, P) for s, pr in zip(items, probs)]
    agree = [a[np.arange(len(s.knowledge)), s.knowledge.labels] for a, s in zip(per_class, items)]
    all_ag = np.concatenate(agree)
    all_lab = np.concatenate([s.knowledge.labels for s in items])
    ref = np.array([np.quantile(all_ag[all_lab == c], 0.9) if (all_lab == c).any() else 1.0 for c in range(P)])
    keep0, score0 = select_by_agreement(all_ag, all_lab, P, 0.5, "absolute")
    keep1, score1 = select_by_agreement(all_ag, all_lab, P, 0.5, "class_relative")
    bounds = np.cumsum([0] + [len(a) for a in agree])
    where = {s.name: slice(bounds[i], bounds[i + 1]) for i, s in enumerate(items)}
    rules = {
        "R0 agreement >= 0.5 (default)": lambda s, a, ag: (keep0[where[s.name]], score0[where[s.name]]),
        "R1 class-relative": lambda s, a, ag: (keep1[where[s.name]], score1[where[s.name]]),
        "R2 argmax-consistent": lambda s, a, ag: (ag >= a.max(1) - 1e-9, ag),
        "R3 agreement >= 0.25": lambda s, a, ag: (ag >= 0.25, ag),
    }
    runs = [(name, rule, items, per_class, agree) for name, rule in rules.items()]
    if candidate_min > 0:
        from dataclasses import replace

        teacher_c = FewShotTextTeacher(teacher.model, teacher.part_names,
                                       replace(teacher.config, candidate_min=candidate_min))
        items_c = PartDistill(teacher_c, names, DistillConfig(), progress=False).prepare_all([(o[0], o[1]) for o in rest])
        per_class_c = [_class_agreement(s.knowledge, pr, P) for s, pr in zip(items_c, probs)]
        agree_c = [a[np.arange(len(s.knowledge)), s.knowledge.labels] for a, s in zip(per_class_c, items_c)]
        lab_c = np.concatenate([s.knowledge.labels for s in items_c])
        bounds_c = np.cumsum([0] + [len(a) for a in agree_c])
        where_c = {s.name: slice(bounds_c[i], bounds_c[i + 1]) for i, s in enumerate(items_c)}
        for rule_name in ("absolute", "class_relative"):
            keep_c, score_c = select_by_agreement(np.concatenate(agree_c), lab_c, P, 0.5, rule_name)
            title = {"absolute": "R0 agreement >= 0.5", "class_relative": "R1 class-relative"}[rule_name]
            runs.append((f"{title} + cand. (pool {len(lab_c)})",
                         lambda s, a, ag, k=keep_c, sc=score_c: (k[where_c[s.name]], sc[where_c[s.name]]),
                         items_c, per_class_c, agree_c))
    for name, rule, pool_items, pool_class, pool_agree in runs:
        ks = []
        for s, a, ag in zip(pool_items, pool_class, pool_agree):
            keep, sc = rule(s, a, ag)
            ks.append(s.knowledge.subset(keep).with_scores(np.asarray(sc[keep], np.float32)))
        st = pd._train(items, ks, 1, "backward")
        rows.append((f"(c) {name}", sum(len(k) for k in ks),
                     score(lambda it, st=st: predict_probs(st, it.points).argmax(1))))
        print(category, output, name, f"{rows[-1][2][0]:.1f}", flush=True)
    lines = [f"## {category}, {output}-level teacher", "",
             f"{len(rest)} unlabelled objects; pool {len(all_ag)} predictions, {sum(len(k) for k in fk)} used by forward "
             f"distillation; per-class reference agreement (90th percentile) "
             + ", ".join(f"{n} {r:.2f}" for n, r in zip(names, ref)), "",
             "| student | predictions trained on | mIoU | " + " | ".join(names) + " |",
             "|---|---:|---:|" + "---:|" * P]
    for title, n, (m, parts) in rows:
        lines.append(f"| {title} | {n} | {m:.1f} | " + " | ".join("-" if np.isnan(v) else f"{v:.1f}" for v in parts)
                     + " |")
    return lines + [""]


def _class_agreement(knowledge, point_probs: np.ndarray, n_parts: int) -> np.ndarray:
    """(K, P) mean student probability of every class over each prediction's points."""
    owner = knowledge._owner()
    sums = np.stack([np.bincount(owner, weights=point_probs[knowledge.points, c], minlength=len(knowledge))
                     for c in range(n_parts)], 1)
    return sums / np.maximum(knowledge.sizes, 1)[:, None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--categories", nargs="+", default=["Bucket"])
    ap.add_argument("--teacher-output", choices=["mask", "box"], default="box")
    ap.add_argument("--candidate-min", type=float, default=0.0,
                    help="also run R0/R1 with the teacher's candidate regions at least this probable added to the pool")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from partdistill import DATA

    if not (DATA / "partnet_mobility_dev").is_dir():
        sys.exit("skipped: ../shared/data/partnet_mobility_dev not found (the shared data is needed)")
    import torch

    torch.set_num_threads(args.threads)
    from crossdistill.io_utils import write_text

    head = ["# PartDistill: backward-distillation selection rules (ablation)", "",
            "Written by `bench/partdistill_backward_rules.py` (see its docstring for the rules); same protocol as "
            "`partdistill.md`. Scores are semantic mIoU x100 on the unlabelled objects; run-to-run noise of the "
            "student training is about 1 point (compare (d) across `partdistill.md` and `partdistill_box.md`).", ""]
    for cat in args.categories:
        started = _dt.datetime.now().strftime('%Y-%m-%d %H:%M')
        section = run(cat, args.teacher_output, args.candidate_min)
        old = OUT.read_text().splitlines()[len(head):] if OUT.exists() else []  # read late: runs may overlap
        write_text(OUT, "\n".join(head + old + [f"Run {started}: `python bench/partdistill_backward_rules.py "
                                               f"{' '.join(sys.argv[1:])}`", ""] + section) + "\n")


if __name__ == "__main__":
    main()
