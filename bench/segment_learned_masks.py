"""Train the learned class-agnostic mask teacher on shapes no flagship benchmark scores.

A diagnostic for issue 4: do part-aware 2D masks, which the offline render-based teacher
cannot give, move the flagship's margins? SAM's weights cannot be downloaded here, so this
trains :class:`~crossdistill.teachers.learned_masks.LearnedMaskTeacher` as a stand-in, on
the link (coarse) and leaf (fine) labels of the PartNet-Mobility objects that neither
``bench/segment.py`` (the first 4 ids per category) nor the held-out ablation of
``segment_clustering.md`` (the next 4) uses; the same objects ``bench/pretrain.py`` uses.
Each object is rendered twice, as the mesh and as its 15k-point PLY (splats), so the teacher
serves both tracks. Categories with 8 objects or fewer have no training object at all.

    python bench/segment_learned_masks.py          # writes bench/_cache/learned_masks/teacher.pt
    python bench/segment.py --mask-teacher learned --sam-weights bench/_cache/learned_masks/teacher.pt
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DATA = REPO / ".." / "shared" / "data"
OUT = REPO / "bench" / "_cache" / "learned_masks" / "teacher.pt"
SKIP_PER_CATEGORY = 8  # the benchmark's 4 and the held-out ablation's 4


def training_objects() -> list[tuple[str, str]]:
    """(category, id) after the first ``SKIP_PER_CATEGORY`` ids (sorted as the other benches sort)."""
    root = DATA / "partnet_mobility_dev"
    out = []
    for cat in sorted(p.name for p in root.iterdir() if p.is_dir()):
        ids = sorted((p.stem for p in (root / cat).glob("*.glb")), key=lambda s: (len(s), s))
        out += [(cat, i) for i in ids[SKIP_PER_CATEGORY:]]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=None, help="training steps (default: LearnedMaskConfig's)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    if not (DATA / "partnet_mobility_dev").is_dir():
        print("skipped: ../shared/data/partnet_mobility_dev not found (the shared data is needed)", file=sys.stderr)
        return 2
    import dataclasses

    import torch

    from crossdistill.eval.segment_report import load_labelled
    from crossdistill.geometry.normalize import normalize_shape
    from crossdistill.teachers.learned_masks import LearnedMaskConfig, LearnedMaskTeacher

    torch.set_num_threads(args.threads)
    objects = training_objects()
    shapes, labels = [], []
    for cat, oid in objects:
        for track in ("mesh", "points"):
            obj = load_labelled(DATA, track, cat, oid)
            unit, _ = normalize_shape(obj.shape)
            shapes.append(unit)
            labels.append([obj.labels["link"], obj.labels["leaf"]])
    config = LearnedMaskConfig()
    if args.iterations:
        config = dataclasses.replace(config, iterations=args.iterations)
    t0 = time.perf_counter()
    teacher = LearnedMaskTeacher.fit(shapes, labels, config)
    seconds = time.perf_counter() - t0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    teacher.save(out)
    info = {"objects": [f"{c}/{i}" for c, i in objects], "per_category": dict(Counter(c for c, _ in objects)),
            "renders": len(shapes), "config": dataclasses.asdict(config), "train_seconds": round(seconds, 1),
            "teacher_id": teacher.teacher_id}
    out.with_suffix(".json").write_text(json.dumps(info, indent=1))
    print(f"trained on {len(objects)} objects ({info['per_category']}) in {seconds:.0f} s -> {out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    sys.exit(main())
