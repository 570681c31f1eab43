"""SAMPart3D stage 1 on the shared data: pretraining cost, and what the backbone changes in stage 2.

1. **Pretraining.** A point backbone is distilled (``crossdistill.methods.sampart3d.pretrain``)
   from the 2D feature teacher's features of the PartNet-Mobility objects that neither
   ``bench/segment.py`` (the first 4 ids of each category) nor the held-out ablation
   (``bench/segment_clustering.py``, the next 4) uses: no labels are read, and no scored object
   is seen. Reported: seconds per shape for rendering + teacher + back-projection, training
   seconds, and the loss curve.
2. **Effect on segmentation.** The 23 held-out meshes of ``segment_clustering.md`` are segmented
   with the default stage 3, once with the positional encoding (the default, no backbone; the
   features cached by ``bench/segment_clustering.py`` are reused) and once with the pretrained
   backbone feeding the grouping field's F_B branch. Best of the paper's 5 scales,
   class-agnostic mIoU x100.

    python bench/pretrain.py              # writes docs/results/pretrain.md / .json / .png
"""

from __future__ import annotations

import argparse
import functools
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))
DATA = REPO / ".." / "shared" / "data"
OUT = REPO / "docs" / "results" / "pretrain"


def pretraining_objects(skip_per_category: int) -> list[Path]:
    """GLBs after the first ``skip_per_category`` ids (sorted as the other benches sort) of each category."""
    root = DATA / "partnet_mobility_dev"
    out = []
    for cat in sorted(p.name for p in root.iterdir() if p.is_dir()):
        files = sorted(root.glob(f"{cat}/*.glb"), key=lambda p: (len(p.stem), p.stem))
        out += files[skip_per_category:]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--max-shapes", type=int, default=None, help="use at most this many pretraining shapes")
    ap.add_argument("--per-category", type=int, default=4, help="held-out objects per category")
    ap.add_argument("--baseline-cache", default=str(REPO / "bench" / "_cache" / "segment_clustering"))
    ap.add_argument("--cache", default=str(REPO / "bench" / "_cache" / "pretrain"))
    args = ap.parse_args()
    if not (DATA / "partnet_mobility_dev").is_dir():
        sys.exit("skipped: ../shared/data/partnet_mobility_dev not found (the shared data is needed)")
    import torch

    torch.set_num_threads(args.threads)
    import segment_clustering as sc

    import crossdistill.methods.sampart3d.pipeline as pipeline
    from crossdistill.geometry.io import load_shape
    from crossdistill.io_utils import save_image, write_json, write_text
    from crossdistill.methods.sampart3d.pretrain import PointBackbone, PretrainConfig, prepare_shape, pretrain_backbone
    from crossdistill.teachers.offline_features import RenderFeatureTeacher

    files = pretraining_objects(8)[: args.max_shapes]
    config = PretrainConfig(steps=args.steps)
    teacher = RenderFeatureTeacher()
    t0 = time.perf_counter()
    data = [prepare_shape(load_shape(p), teacher, config, seed=i) for i, p in enumerate(files)]
    t_prep = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = pretrain_backbone(data, teacher.teacher_id, config, progress=False)
    t_train = time.perf_counter() - t0
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    result.backbone.save(cache / "backbone.pt")
    backbone = PointBackbone.load(cache / "backbone.pt")
    print(f"pretrained on {len(data)} shapes: prep {t_prep:.0f} s, train {t_train:.0f} s, "
          f"loss {result.losses[:20].mean():.3f} -> {result.losses[-20:].mean():.3f}", flush=True)

    default = "default: ... confirmed at IoU >= 0.3, parts may span pieces at scale 2.0"
    sc.MESH_VARIANTS = {default: sc.MESH_VARIANTS[default]}
    objects = sc.held_out(args.per_category)
    plain_segment = pipeline.segment_shape
    rows = []
    for cat, oid in objects:
        pipeline.segment_shape = plain_segment
        base = sc.run_object("mesh", cat, oid, Path(args.baseline_cache))
        pipeline.segment_shape = functools.partial(plain_segment, backbone=backbone)
        t1 = time.perf_counter()
        with_bb = sc.run_object("mesh", cat, oid, cache / "fields")
        rows.append({"name": base["name"], "category": cat, "positional encoding": base[default],
                     "pretrained backbone": with_bb[default], "connected components": base["connected components"],
                     "seconds_with_backbone": time.perf_counter() - t1})
        print(base["name"], {k: round(v["link"], 1) for k, v in rows[-1].items() if isinstance(v, dict)}, flush=True)
    pipeline.segment_shape = plain_segment

    methods = ["positional encoding", "pretrained backbone", "connected components"]
    mean = {m: {lvl: float(np.mean([r[m][lvl] for r in rows])) for lvl in ("link", "leaf")} for m in methods}
    wins = sum(r["pretrained backbone"]["link"] > r["positional encoding"]["link"] + 1e-9 for r in rows)
    losses_ = sum(r["pretrained backbone"]["link"] < r["positional encoding"]["link"] - 1e-9 for r in rows)
    lines = [
        "# SAMPart3D stage 1: pretrained point backbone", "",
        "Command: `python bench/pretrain.py" + (" " + " ".join(sys.argv[1:]) if sys.argv[1:] else "") + "`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M')}  ",
        f"Machine: {platform.processor() or platform.machine()}, nproc {len(__import__('os').sched_getaffinity(0))}, "
        f"torch {torch.__version__}, {args.threads} torch threads; 1-minute load average at the end "
        f"{__import__('os').getloadavg()[0]:.1f} (timings count only on a quiet machine)", "",
        "## Pretraining", "",
        f"- Shapes: {len(data)} PartNet-Mobility meshes, none of them scored here or in `segment.md` (ids after the "
        "first 8 of each category); labels are not read.",
        f"- Teacher: `{teacher.teacher_id}` (the offline render-feature teacher: no DINOv2 weights on this machine), "
        f"{result.backbone.channels} channels.",
        f"- Settings: {config.n_points} points and {config.n_views} views of {config.image_size} px per shape; backbone "
        f"width {config.width}, {config.n_blocks} blocks, k = {config.k}; {config.steps} steps of {config.batch} shapes.",
        f"- Time: render + teacher + back-projection {t_prep:.1f} s ({t_prep / len(data):.2f} s per shape); "
        f"training {t_train:.1f} s ({t_train / config.steps:.3f} s per step).",
        f"- Loss (MSE, standardised teacher units, seen points): first 20 steps {result.losses[:20].mean():.3f}, "
        f"last 20 {result.losses[-20:].mean():.3f}.", "",
        "![loss](pretrain.png)", "",
        f"## Segmentation of the {len(rows)} held-out meshes (default stage 3, best of 5 scales)", "",
        "| grouping field input (F_B) | link | leaf |", "|---|---|---|",
        *[f"| {m} | {mean[m]['link']:.1f} | {mean[m]['leaf']:.1f} |" for m in methods], "",
        f"The backbone scores higher than the positional encoding on {wins} objects and lower on {losses_} (link).", "",
        "## Per object (link / leaf)", "", "| object | positional encoding | pretrained backbone | connected components |",
        "|---|---|---|---|",
        *[f"| {r['name']} | " + " | ".join(f"{r[m]['link']:.1f} / {r[m]['leaf']:.1f}" for m in methods) + " |"
          for r in rows], "",
    ]
    write_text(OUT.with_suffix(".md"), "\n".join(lines))
    write_json(OUT.with_suffix(".json"), {"rows": rows, "mean": mean, "losses": result.losses.tolist(),
                                          "prep_s": t_prep, "train_s": t_train, "shapes": [str(p) for p in files]})
    _plot(result.losses, OUT.with_suffix(".png"), save_image)
    print("\n".join(lines))


def _plot(losses: np.ndarray, path: Path, save_image) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    ax.plot(losses, lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("MSE (standardised)")
    ax.set_title("backbone pretraining loss")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    save_image(path, Image.open(buf))


if __name__ == "__main__":
    main()
