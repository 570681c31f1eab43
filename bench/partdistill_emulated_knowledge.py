"""What the EMULATED detector teacher's predictions look like on the points (no training): per part,
how pure a prediction is and how much of the part the predictions reach.

A diagnostic beside ``bench/partdistill_emulated.py`` (same emulator, benchmarks only; not a real
detector). For every category with at least 10 objects, box and mask output, strengths 0 and 0.5,
128 px, predictions with score >= 0.5 (the forward set): per part, the score-weighted mean purity of
its predictions (share of a prediction's points whose ground truth is its label) and the share of
the part's visible sampled points covered by at least one prediction of its label. Writes
docs/results/partdistill_emulated_knowledge.md (+ .json).

    OMP_NUM_THREADS=1 python bench/partdistill_emulated_knowledge.py
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import partdistill_emulated as pe  # noqa: E402


def part_stats(items, objs, n_parts: int, min_score: float) -> list[dict]:
    pur_w = np.zeros(n_parts)
    pur = np.zeros(n_parts)
    reach = np.zeros(n_parts)
    total = np.zeros(n_parts)
    for item, (_, _, face_lab) in zip(items, objs):
        k = item.knowledge.subset(item.knowledge.scores >= min_score)
        gt = face_lab[item.samples.face_id]
        owner = np.repeat(np.arange(len(k)), k.sizes)
        right = gt[k.points] == k.labels[owner]
        share = np.bincount(owner, weights=right, minlength=len(k)) / np.maximum(k.sizes, 1)
        np.add.at(pur, k.labels, share * k.scores)
        np.add.at(pur_w, k.labels, k.scores)
        covered = np.zeros((len(gt), n_parts), bool)
        covered[k.points, k.labels[owner]] = True
        for p in range(n_parts):
            on = gt == p
            reach[p] += covered[on, p].sum()
            total[p] += on.sum()
    return [{"purity": (100 * pur[p] / pur_w[p]) if pur_w[p] > 0 else None,
             "reach": (100 * reach[p] / total[p]) if total[p] > 0 else None} for p in range(n_parts)]


def main() -> None:
    import torch

    from crossdistill.eval.benchmarks import get_benchmark
    from crossdistill.io_utils import write_json, write_text
    from crossdistill.methods.partdistill.student_training import StudentConfig

    torch.set_num_threads(1)
    bench = get_benchmark("partnet_mobility_dev", pe.DATA)
    counts: dict[str, int] = {}
    for r in bench.records():
        counts[r.category] = counts.get(r.category, 0) + 1
    cats = sorted(c for c, n in counts.items() if n >= 10)
    t0 = time.perf_counter()
    rows = []
    for c in cats:
        cat = pe.Category(bench, c, 8)
        for output in ("box", "mask"):
            for t in (0.0, 0.5):
                items, _ = cat.items(output, t, 128, StudentConfig(n_points=1024))
                for name, st in zip(cat.names, part_stats(items, cat.objs, len(cat.names), 0.5)):
                    rows.append({"category": c, "output": output, "strength": t, "part": name, **st})
        print(c, flush=True)
    load = os.getloadavg()
    lines = ["# The EMULATED detector teacher's predictions on the points, per part (no training)", "",
             f"Command: `OMP_NUM_THREADS=1 python bench/partdistill_emulated_knowledge.py`  ",
             f"Date: {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}; {platform.platform()}, nproc {os.cpu_count()}, "
             f"shared machine (load {load[0]:.1f}); {(time.perf_counter() - t0) / 60:.1f} min", "",
             "Teacher: `EmulatedDetectorTeacher` (benchmarks only, NOT a real detector; noise model in "
             "`partdistill_emulated.md`), 10 views of 128 px, 1024 sampled points per object, all objects of each "
             "category, predictions with score >= 0.5. Purity: score-weighted mean share of a prediction's points "
             "whose ground-truth part is its label. Reach: share of the part's sampled points covered by at least "
             "one prediction of its label.", "",
             "| category | part | box t=0 purity / reach | box t=0.5 | mask t=0 | mask t=0.5 |", "|---|---|---|---|---|---|"]
    f = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
    for c in cats:
        names = [r["part"] for r in rows if r["category"] == c and r["output"] == "box" and r["strength"] == 0.0]
        for n in names:
            cells = []
            for output in ("box", "mask"):
                for t in (0.0, 0.5):
                    r = next(x for x in rows if x["category"] == c and x["part"] == n and x["output"] == output
                             and x["strength"] == t)
                    cells.append(f"{f(r['purity'])} / {f(r['reach'])}")
            lines.append(f"| {c} | {n} | " + " | ".join(cells) + " |")
    write_text(pe.OUT / "partdistill_emulated_knowledge.md", "\n".join(lines) + "\n")
    write_json(pe.OUT / "partdistill_emulated_knowledge.json", {"rows": rows, "load_avg_end": list(load)})


if __name__ == "__main__":
    main()
