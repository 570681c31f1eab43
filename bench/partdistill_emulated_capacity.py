"""Does the student's size or training length move PartDistill against lifting with the EMULATED detector?

A side check of ``bench/partdistill_emulated.py`` (same emulator, benchmarks only; same protocol and
cache): on a selection category (default Bucket), box output, medium strength, 128 px, min_score 0.3
and the ``class_relative`` rule, the bench's student (1024 points, 150 steps, width 64) against 400
steps and against width 128. Writes docs/results/partdistill_emulated_capacity.md (+ .json).

    OMP_NUM_THREADS=1 python bench/partdistill_emulated_capacity.py
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import partdistill_emulated as pe  # noqa: E402

SETTINGS = [(1024, 150, 64), (1024, 400, 64), (1024, 150, 128)]
RULES = ("class_relative",)


def main() -> None:
    import torch

    from crossdistill.eval.benchmarks import get_benchmark
    from crossdistill.io_utils import write_json, write_text

    torch.set_num_threads(1)
    pe.CACHE.mkdir(parents=True, exist_ok=True)
    bench = get_benchmark("partnet_mobility_dev", pe.DATA)
    cats = sys.argv[1:] or ["Bucket"]
    rows, t0 = [], time.perf_counter()
    for c in cats:
        cat = pe.Category(bench, c, 8)
        for points, iters, width in SETTINGS:
            args = types.SimpleNamespace(points=points, iterations=iters, width=width)
            for rule in RULES:
                r = pe.do_run(cat, "box", 0.5, 128, 0.3, rule, args)
                r.update(points=points, iterations=iters, width=width)
                rows.append(r)
                print(c, points, iters, width, rule, {m: round(r["scores"][m]["miou"], 1) for m in pe.METHODS[:3]},
                      flush=True)
    load = os.getloadavg()
    lines = ["# PartDistill with the EMULATED detector teacher (benchmarks only): student size and training length", "",
             f"Command: `OMP_NUM_THREADS=1 python bench/partdistill_emulated_capacity.py {' '.join(sys.argv[1:])}`  ",
             f"Date: {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}; machine {platform.platform()}, nproc "
             f"{os.cpu_count()}, 1 torch thread, shared with other jobs (load {load[0]:.1f} / {load[1]:.1f} / "
             f"{load[2]:.1f}); {(time.perf_counter() - t0) / 60:.1f} min (cached runs cost nothing)", "",
             "Teacher: `EmulatedDetectorTeacher` (NOT a real detector; see `partdistill_emulated.md` for its noise "
             "model), box output, strength 0.5, 128 px, min_score 0.3, rule `class_relative`; one seed. Scored as in "
             "`partdistill_emulated.md`. (a) lifting does not depend on the student.", "",
             "| category | points | steps | width | rule | (a) lifted | (b) forward | (c) forward+backward | (b) - (a) "
             "| (c) - (b) |", "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        a, b, c = (r["scores"][m]["miou"] for m in pe.METHODS[:3])
        lines.append(f"| {r['category']} | {r['points']} | {r['iterations']} | {r['width']} | `{r['rule']}` | {a:.1f} | "
                     f"{b:.1f} | {c:.1f} | {b - a:+.1f} | {c - b:+.1f} |")
    lines += ["", "Per part IoU (a) / (b) / (c):", "", "| category | points | steps | width | rule | parts |",
              "|---|---:|---:|---:|---|---|"]
    for r in rows:
        parts = "; ".join(f"{n} " + " / ".join("-" if r["scores"][m]["part_iou"][n] is None else
                                               f"{r['scores'][m]['part_iou'][n]:.0f}" for m in pe.METHODS[:3])
                          for n in r["scores"]["lift"]["part_iou"])
        lines.append(f"| {r['category']} | {r['points']} | {r['iterations']} | {r['width']} | `{r['rule']}` | {parts} |")
    write_text(pe.OUT / "partdistill_emulated_capacity.md", "\n".join(lines) + "\n")
    write_json(pe.OUT / "partdistill_emulated_capacity.json", {"rows": rows, "load_avg_end": list(load)})


if __name__ == "__main__":
    main()
