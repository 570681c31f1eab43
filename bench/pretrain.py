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
    python bench/pretrain.py --max-shapes 2 --steps 2 --pretrain-points 512 --pretrain-views 6 \
        --pretrain-size 64 --limit 1 --n-points 1500 --n-views 6 --image-size 64 --iterations 10 \
        --threads 1 --out /tmp/pretrain   # smoke run, seconds
"""

from __future__ import annotations

import argparse
import dataclasses
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


def pretraining_objects(skip_per_category: int, data: Path = DATA) -> list[Path]:
    """GLBs after the first ``skip_per_category`` ids (sorted as the other benches sort) of each category."""
    root = data / "partnet_mobility_dev"
    out = []
    for cat in sorted(p.name for p in root.iterdir() if p.is_dir()):
        files = sorted(root.glob(f"{cat}/*.glb"), key=lambda p: (len(p.stem), p.stem))
        out += files[skip_per_category:]
    return out


def main(argv: list[str] | None = None) -> None:
    import segment_clustering as sc

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--max-shapes", type=int, default=None, help="use at most this many pretraining shapes")
    ap.add_argument("--pretrain-points", type=int, default=None, help="points per pretraining shape "
                    "(default: PretrainConfig's)")
    ap.add_argument("--pretrain-views", type=int, default=None, help="views per pretraining shape (default: PretrainConfig's)")
    ap.add_argument("--pretrain-size", type=int, default=None, help="pretraining render size (default: PretrainConfig's)")
    ap.add_argument("--per-category", type=int, default=4, help="held-out objects per category")
    ap.add_argument("--limit", type=int, default=None, help="only the first N held-out objects (smoke runs)")
    ap.add_argument("--data", default=str(DATA), help="the shared data folder")
    ap.add_argument("--baseline-cache", default=str(REPO / "bench" / "_cache" / "segment_clustering"))
    ap.add_argument("--cache", default=str(REPO / "bench" / "_cache" / "pretrain"))
    ap.add_argument("--out", default=str(OUT), help="report path without suffix (.md, .json and .png are written)")
    sc.add_field_options(ap)
    args = ap.parse_args(argv)
    data_root = Path(args.data)
    if not (data_root / "partnet_mobility_dev").is_dir():
        sys.exit(f"skipped: {data_root / 'partnet_mobility_dev'} not found (the shared data is needed)")
    import torch

    torch.set_num_threads(args.threads)

    from crossdistill.geometry.io import load_shape
    from crossdistill.io_utils import write_json, write_text
    from crossdistill.methods.sampart3d.pretrain import PointBackbone, PretrainConfig, prepare_shape, pretrain_backbone
    from crossdistill.teachers.offline_features import RenderFeatureTeacher

    files = pretraining_objects(8, data_root)[: args.max_shapes]
    sizes = {"n_points": args.pretrain_points, "n_views": args.pretrain_views, "image_size": args.pretrain_size}
    config = dataclasses.replace(PretrainConfig(steps=args.steps), **{k: v for k, v in sizes.items() if v is not None})
    field_cfg = sc.field_config(args.n_points, args.n_views, args.image_size, args.iterations)
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
    variants = {default: sc.MESH_VARIANTS[default]}
    objects = sc.held_out(args.per_category, data_root)[: args.limit]
    fields = cache / "fields" / backbone.fingerprint  # fields of another backbone are never reused
    rows = []
    for cat, oid in objects:
        base = sc.run_object("mesh", cat, oid, Path(args.baseline_cache), data_root, field_cfg, mesh_variants=variants)
        t1 = time.perf_counter()
        with_bb = sc.run_object("mesh", cat, oid, fields, data_root, field_cfg, backbone=backbone,
                                mesh_variants=variants)
        rows.append({"name": base["name"], "category": cat, "positional encoding": base[default],
                     "pretrained backbone": with_bb[default], "connected components": base["connected components"],
                     "seconds_with_backbone": time.perf_counter() - t1})
        print(base["name"], {k: round(v["link"], 1) for k, v in rows[-1].items() if isinstance(v, dict)}, flush=True)

    methods = ["positional encoding", "pretrained backbone", "connected components"]
    mean = {m: {lvl: float(np.mean([r[m][lvl] for r in rows])) for lvl in ("link", "leaf")} for m in methods}
    wins = sum(r["pretrained backbone"]["link"] > r["positional encoding"]["link"] + 1e-9 for r in rows)
    losses_ = sum(r["pretrained backbone"]["link"] < r["positional encoding"]["link"] - 1e-9 for r in rows)
    command = argv if argv is not None else sys.argv[1:]
    smoke = []
    if (config != PretrainConfig(steps=config.steps) or field_cfg != sc.field_config() or args.max_shapes
            or args.limit):
        smoke = ["SMOKE settings (fewer or smaller pretraining shapes, fewer objects or smaller grouping fields "
                 "than the defaults): not comparable to the committed report.", ""]
    lines = [
        "# SAMPart3D stage 1: pretrained point backbone", "",
        "Command: `python bench/pretrain.py" + (" " + " ".join(command) if command else "") + "`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M')}  ",
        f"Machine: {platform.processor() or platform.machine()}, nproc {len(__import__('os').sched_getaffinity(0))}, "
        f"torch {torch.__version__}, {args.threads} torch threads; 1-minute load average at the end "
        f"{__import__('os').getloadavg()[0]:.1f} (timings count only on a quiet machine)", "", *smoke,
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
    out = Path(args.out)
    write_text(out.with_suffix(".md"), "\n".join(lines))
    write_json(out.with_suffix(".json"), {"rows": rows, "mean": mean, "losses": result.losses.tolist(),
                                          "prep_s": t_prep, "train_s": t_train, "shapes": [str(p) for p in files]})
    _plot(result.losses, out.with_suffix(".png"))
    print("\n".join(lines))


def _plot(losses: np.ndarray, path: Path) -> None:
    """The loss curve as a PNG (through the engine's scalar log: matplotlib where installed, Pillow otherwise)."""
    import tempfile

    from crossdistill.engine.scalars import ScalarLog, plot_scalars

    with tempfile.TemporaryDirectory() as tmp:
        log = ScalarLog(tmp, ["loss (MSE, standardised)"])
        for step, loss in enumerate(losses):
            log.log(step, {"loss (MSE, standardised)": float(loss)})
        log.close()
        plot_scalars(Path(tmp) / "scalars.csv", path, title="backbone pretraining loss")


if __name__ == "__main__":
    main()
