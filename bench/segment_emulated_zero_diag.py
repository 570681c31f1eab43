"""Where strength-zero (perfect) emulated masks lose parts, stage by stage (benchmarks only).

The mask teacher is the SAM-like mask EMULATOR at strength zero (no SAM ran). For a handful
of objects this trains the fast preset's field once (cached under
``bench/_cache/segment_emulated_zero_diag/``) and measures, on the sampled points:

* (a) masks -> points: the share of supervised pixels whose lifted point has another
  ground-truth label (link and leaf) than the element the pixel shows (the emulator draws
  masks from the element: a pixel->point error), and lifting's score;
* (b) the field: kNN purity of its features against the ground truth (10 feature-nearest
  neighbours with the same label), and an oracle clustering (agglomerative, Ward, told the
  ground-truth part count) of the features, best over the query scales;
* (c) HDBSCAN as the pipeline runs it at the five scales, at 21 scales, and variants;
* (d) meshes: the per-face vote (points -> faces) against the score on the points.

    python bench/segment_emulated_zero_diag.py --objects partnet/points/Bucket/100431 ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import numpy as np  # noqa: E402

Q_GRID = np.linspace(0.0, 1.0, 21)  # scale inputs q (relative scale = 2 q)


def train_cached(data: Path, spec: str, cache: Path, variant: str = "fast", strength: float = 0.0) -> Path:
    """Train (or reuse) one object's field; store features on the Q grid and what the analysis needs.
    ``strength``: the emulator's noise strength (0: perfect masks; other strengths get their own folder)."""
    out = cache / strength_dir(variant_dir(variant), strength) / (spec.replace("/", "_") + ".npz")
    if out.exists():
        return out
    import dataclasses

    import torch

    torch.set_num_threads(1)
    from crossdistill.eval.emulators import EmulatedMaskTeacher
    from crossdistill.eval.segment_objects import load
    from crossdistill.methods.sampart3d.pipeline import preset, segment_shape
    from crossdistill.methods.sampart3d.rules import PAPER_RULES

    ds, track, cat, oid = spec.split("/")
    obj, parts = load(data, ds, track, cat, oid)
    cfg = dataclasses.replace(preset("fast"), rules=PAPER_RULES)
    if variant != "fast":
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **json.loads(variant)))
    teacher = EmulatedMaskTeacher(parts, strength=strength, seed=0)
    t0 = time.perf_counter()
    seg = segment_shape(obj.shape, cfg, mask_teacher=teacher, progress=False)
    secs = time.perf_counter() - t0
    s = seg.render.samples
    feats = np.stack([seg.field.features(2.0 * q) for q in Q_GRID]).astype(np.float16)
    element = s.face_id if obj.shape.is_mesh else s.source_index
    # (a) pixel -> point: the element each supervised pixel shows vs the element of its point
    views = seg.render.views
    p2p = seg.render.correspondence.pix_to_point
    pix_elem, pt_elem = [], []
    for v in range(len(views)):
        m = p2p[v] >= 0
        pix_elem.append(views.face_id[v][m])
        pt_elem.append(element[p2p[v][m]])
    out.parent.mkdir(parents=True, exist_ok=True)
    gt = {f"gt_{k}": v[element] for k, v in list(obj.labels.items())[:3]}
    np.savez_compressed(
        out, feats=feats, points=s.points, element=element, point_labels=seg.point_labels,
        pix_elem=np.concatenate(pix_elem), pt_elem=np.concatenate(pt_elem), parts=parts,
        mask_scale=seg.supervision.scale, seconds=secs,
        visible=seg.render.correspondence.visible.any(axis=0),
        raw_scale=np.array([seg.field.raw_scale(2.0 * q) for q in Q_GRID]),
        **gt, **{f"lab_{i}": seg.labels(i) for i in range(len(seg.scales))})
    print(f"trained {spec} in {secs:.0f} s", flush=True)
    return out


def strength_dir(vdir: str, strength: float) -> str:
    """The cache folder of a variant's fields at an emulator strength (strength 0 keeps the plain name)."""
    return vdir + (f"@strength={strength:g}" if strength else "")


def analysis_of(npz: Path) -> Path | None:
    """The stored analysis of a cached field: the full one, else the quick one, else None."""
    return next((g for g in (npz.with_suffix(".json"), npz.with_suffix(".quick.json")) if g.exists()), None)


def variant_dir(variant: str) -> str:
    """Folder name of a variant: 'fast', or its overrides as key=value joined by '_'."""
    if variant == "fast":
        return "fast"
    return "_".join(f"{k}={v}" for k, v in sorted(json.loads(variant).items()))


def miou_points(gt: np.ndarray, pred: np.ndarray) -> float:
    from crossdistill.eval.metrics import class_agnostic_miou

    return float(class_agnostic_miou(gt, pred))


def analyse(f: Path, levels: list[str], quick: bool = False) -> dict:
    """Stage-by-stage figures of one cached object, on its sampled points."""
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.neighbors import NearestNeighbors

    from crossdistill.methods.sampart3d.cluster import ClusterConfig, cluster_points
    from crossdistill.geometry.sampling import farthest_point_sampling

    z = np.load(f)
    feats = z["feats"].astype(np.float32)
    pts = z["points"]
    gts = {lv: z[f"gt_{lv}"] for lv in levels if f"gt_{lv}" in z}
    res: dict = {"train_s": float(z["seconds"])}
    # (a) pixel->point label errors, per level, from the element labels
    elem_lab = {}
    for lv, g in gts.items():
        # element -> label via the points that sample it (points track: element = point)
        lut = {}
        for e, l in zip(z["element"], g):
            lut.setdefault(int(e), int(l))
        pe, qe = z["pix_elem"], z["pt_elem"]
        a = np.array([lut.get(int(x), -2) for x in pe])
        b = np.array([lut.get(int(x), -3) for x in qe])
        known = a != -2
        elem_lab[lv] = float(np.mean(a[known] != b[known]))
    res["a_pix_point_err"] = elem_lab
    res["a_visible"] = float(z["visible"].mean())
    # (b) field: pair distances against the push margin, kNN purity, oracle clustering, per q (every other)
    sub = farthest_point_sampling(pts, 3000, seed=0)
    qi = list(range(0, len(feats), 2))
    res["q_index"] = qi
    rng = np.random.default_rng(0)
    pa, pb = rng.integers(0, len(pts), 20000), rng.integers(0, len(pts), 20000)
    res["b_pairs"], res["b_knn_purity"], res["b_oracle"] = {}, {}, {}
    done: dict = {}
    for lv, g in gts.items():
        key = g.tobytes()
        if key in done:
            for k in ("b_pairs", "b_knn_purity", "b_oracle"):
                res[k][lv] = res[k][done[key]]
            continue
        done[key] = lv
        k_gt = len(np.unique(g[g >= 0]))
        same = (g[pa] == g[pb]) & (pa != pb) & (g[pa] >= 0)
        diff = (g[pa] != g[pb]) & (g[pa] >= 0) & (g[pb] >= 0)
        pairs, pur, orc = [], [], []
        for i in qi:
            fi = feats[i]
            d = np.linalg.norm(fi[pa] - fi[pb], axis=1)
            pairs.append([round(float(np.median(d[same])), 3),
                          round(float(np.median(d[diff])), 3) if diff.any() else None,
                          round(float(np.mean(d[diff] < 0.5)), 3) if diff.any() else None,
                          round(_merged_part_pairs(fi, g), 3)])
            if quick:
                continue
            nn = NearestNeighbors(n_neighbors=11).fit(fi[sub]).kneighbors(fi[sub], return_distance=False)[:, 1:]
            gs = g[sub]
            pur.append(round(float(np.mean(gs[nn] == gs[:, None])), 4))
            lab = AgglomerativeClustering(n_clusters=min(k_gt, len(sub) - 1), linkage="ward").fit_predict(fi[sub])
            orc.append(round(miou_points(g, _propagate(fi, pts, sub, lab)), 4))
        res["b_pairs"][lv], res["b_knn_purity"][lv], res["b_oracle"][lv] = pairs, pur, orc
    res["pipeline_points"] = {lv: [round(miou_points(g, z[f"lab_{i}"]), 4) for i in range(5)] for lv, g in gts.items()}
    if quick:
        return res
    # (c) HDBSCAN as run (paper 5 scales from cache labels) and on the 21-scale grid, variants
    five = [0, 5, 10, 15, 20]
    variants = {
        "eps0.1_ms5": ClusterConfig(),
        "eps0": ClusterConfig(epsilon=0.0),
        "eps0.1_ms15": ClusterConfig(min_samples=15),
    }
    res["c"] = {}
    for name, cc in variants.items():
        labs = [cluster_points(feats[i], pts, cc, subsample=sub) for i in qi]
        res["c"][name] = {lv: [round(miou_points(g, l), 4) for l in labs] for lv, g in gts.items()}
        res["c"][name]["n_parts"] = [int(l.max()) + 1 for l in labs]
    res["pipeline_points"] = {lv: [round(miou_points(g, z[f"lab_{i}"]), 4) for i in range(5)] for lv, g in gts.items()}
    res["five"] = five
    return res


def _merged_part_pairs(features: np.ndarray, gt: np.ndarray, within: float = 0.5) -> float:
    """Share of ground-truth part pairs whose mean features lie closer than ``within`` (x the push margin 1)."""
    ids = np.unique(gt[gt >= 0])
    if len(ids) < 2:
        return 0.0
    means = np.stack([features[gt == i].mean(0) for i in ids])
    d = np.linalg.norm(means[:, None] - means[None], axis=-1)[np.triu_indices(len(ids), 1)]
    return float(np.mean(d < within))


def _propagate(features, points, sub, lab_sub):
    from crossdistill.methods.sampart3d.cluster import propagate_labels

    return propagate_labels(features, points, sub, lab_sub, 8)


def _budget_table(cache: Path) -> str:
    """Per variant folder: the pipeline's best of its 5 scales (link / leaf, x100) on every object that every
    compared folder has, and their mean; folders are compared within one strength (``@strength=`` suffix)."""
    scores: dict[str, dict[str, list[float]]] = {}
    for vdir in sorted(p for p in cache.iterdir() if p.is_dir()):
        for npz in sorted(vdir.glob("*.npz")):
            f = analysis_of(npz)
            if f is None:
                continue
            pipe = json.loads(f.read_text())["pipeline_points"]
            scores.setdefault(vdir.name, {})[npz.stem] = [100 * max(pipe[lv]) for lv in ("link", "leaf") if lv in pipe]
    lines = []
    by_strength: dict[str, list[str]] = {}
    for v in scores:
        by_strength.setdefault(v.partition("@")[2] or "strength=0", []).append(v)
    for strength, vs in sorted(by_strength.items()):
        vs = [v for v in vs if len(scores[v]) >= 6]  # variants run on a fold of objects
        common = sorted(set.intersection(*(set(scores[v]) for v in vs))) if len(vs) > 1 else []
        if len(common) < 3:
            continue
        short = [c.split("_", 2)[2] for c in common]
        lines += [f"### Pipeline best of 5 scales by training variant, {strength} ({len(common)} objects every "
                  "variant has; link / leaf)", "", "| variant | " + " | ".join(short) + " | mean |",
                  "|---" * (len(common) + 2) + "|"]
        for v in vs:
            cells = [" / ".join(f"{x:.1f}" for x in scores[v][c]) for c in common]
            mean = np.mean([scores[v][c] for c in common], axis=0)
            lines.append(f"| {v} | " + " | ".join(cells) + " | " + " / ".join(f"{x:.1f}" for x in mean) + " |")
        lines.append("")
    return ("\n" + "\n".join(lines)) if lines else ""


def _budget_vs_bench(cache: Path, variant: str = "iterations=1600_push_floor=True",
                     bench_variant: str = "push_floor") -> str:
    """The pipeline's best of 5 scales (link / leaf, x100) of a longer-trained variant at strength zero and
    medium against the same objects' runs of ``bench/segment_emulated.py`` (``bench_variant``, the fast
    preset's budget), per object and per fold (``segment_emulated_report.folds``)."""
    sys.path.insert(0, str(REPO / "bench"))
    from segment_emulated_report import folds

    bench = REPO / "bench" / "_cache" / "segment_emulated" / "partnet" / "points" / bench_variant
    rows, diffs = [], {}
    objs = sorted({f.name.replace(".quick.json", "").replace(".json", "")
                   for d in (cache / variant, cache / strength_dir(variant, 0.5)) if d.is_dir()
                   for f in d.glob("partnet_points_*.json")})
    cats = sorted({o.split("_")[2] for o in objs})
    fold_a, _ = folds(sorted({f.stem.split("_")[0] for f in (bench / "zero").glob("*.json")}) or cats)
    for o in objs:
        cat, oid = o.split("_")[2], o.split("_")[3]
        fold = "A" if cat in fold_a else "B"
        cells = [f"{cat}/{oid}", fold]
        for strength, vdir in (("zero", variant), ("medium", strength_dir(variant, 0.5))):
            f = analysis_of(cache / vdir / f"{o}.npz")
            ref = bench / strength / f"{cat}_{oid}.json"
            if f is None or not ref.exists():
                cells += ["-", "-"]
                continue
            pipe = json.loads(f.read_text())["pipeline_points"]
            new = [100 * max(pipe["link"]), 100 * max(pipe["leaf"])]
            old = [100 * json.loads(ref.read_text())["ours"]["best"][m] for m in ("link", "leaf")]
            diffs.setdefault((strength, fold), []).append(np.subtract(new, old))
            cells += [" / ".join(f"{x:.1f}" for x in old), " / ".join(f"{x:.1f}" for x in new)]
        rows.append("| " + " | ".join(cells) + " |")
    if not rows:
        return ""
    means = [f"- {strength}, fold {fold} ({len(d)} objects): {np.mean(d, axis=0)[0]:+.1f} / {np.mean(d, axis=0)[1]:+.1f}"
             for (strength, fold), d in sorted(diffs.items())]
    return "\n".join([
        "", f"### The fast preset's budget against `{variant}` (PartNet point clouds, link / leaf)", "",
        f"400 steps: the runs of `bench/segment_emulated.py` (variant `{bench_variant}`); the other columns: this "
        "bench's fields, same emulator seed and scales. Fold A chose nothing here (a screen); differences, "
        "longer minus 400 steps:", "", *means, "",
        "| object | fold | zero, 400 steps | zero, longer | medium, 400 steps | medium, longer |",
        "|---|---|---|---|---|---|", *rows, ""])


def write_report(cache: Path, out: Path, cmd: str) -> None:
    """Markdown table of every cached analysis (full one preferred over quick), per variant and object."""
    import platform
    from datetime import date

    rows = []
    for vdir in sorted(p for p in cache.iterdir() if p.is_dir()):
        for npz in sorted(vdir.glob("*.npz")):
            f = analysis_of(npz)
            if f is None:
                continue
            r = json.loads(f.read_text())
            name = npz.stem.replace("_", "/", 3)
            lv = "link" if "link" in r["b_pairs"] else sorted(r["b_pairs"])[0]
            merged = [p[3] for p in r["b_pairs"][lv]]
            pipe = r["pipeline_points"][lv]
            cells = [name, vdir.name, f"{r['train_s']:.0f}",
                     " / ".join(f"{100 * v:.2f}" for v in r["a_pix_point_err"].values()),
                     f"{r['b_pairs'][lv][0][1]:.2f}", f"{merged[0]:.2f} / {min(merged):.2f} / {merged[-1]:.2f}",
                     f"{100 * max(r['b_oracle'][lv]):.1f}" if r.get("b_oracle", {}).get(lv) else "-",
                     f"{100 * max(pipe):.1f}",
                     f"{100 * max(r['c']['eps0.1_ms5'][lv]):.1f}" if "c" in r else "-",
                     f"{100 * max(r['c']['eps0'][lv]):.1f}" if "c" in r else "-"]
            rows.append("| " + " | ".join(cells) + " |")
    text = f"""# Where strength-zero emulated masks lose parts (diagnostic, benchmarks only)

Command: `{cmd}` (objects trained by `python bench/segment_emulated_zero_diag.py --objects ...`)
Machine: 2 shared cores, {platform.machine()}, Python {platform.python_version()}, 1 torch thread  
Date: {date.today().isoformat()}

**Mask teacher: the SAM-like mask EMULATOR at strength zero** (perfect masks from the ground truth;
no SAM ran), unless a variant's folder name ends in `@strength=` (the emulator's noise strength). Fast preset, no stage-3 rule (the point-cloud default). All figures on the sampled
points, first label level (PartNet: link; psb: the first human segmentation).

Columns: (a) share of supervised pixels whose point has another ground-truth label than the element
the pixel shows (link / leaf, %); (b) median feature distance of point pairs from different
ground-truth parts at q = 0 (the push margin is 1); share of ground-truth part pairs whose mean
features lie closer than 0.5, at q = 0 / the least over 11 scales / at q = 1; the oracle: Ward clustering of the
features told the ground-truth part count, best of 11 scales; (c) the pipeline's best of its 5 scales;
HDBSCAN (the fast preset's, epsilon 0.1) best of 11 scales; with epsilon 0.

| object | variant | train s | (a) pixel->point error % | (b) diff-part median dist | (b) part pairs merged | (b) oracle | (c) pipeline best of 5 | (c) HDBSCAN best of 11 | (c) eps 0 best of 11 |
|---|---|---|---|---|---|---|---|---|---|
""" + "\n".join(rows) + "\n" + _budget_table(cache) + _budget_vs_bench(cache)
    out.write_text(text)
    print(f"wrote {out} ({len(rows)} rows)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO / ".." / "shared" / "data"))
    ap.add_argument("--objects", nargs="*", default=[], help="dataset/track/category/id")
    ap.add_argument("--variant", default="fast", help="'fast' or a JSON dict of GroupingTrainConfig overrides")
    ap.add_argument("--cache", default=str(REPO / "bench" / "_cache" / "segment_emulated_zero_diag"))
    ap.add_argument("--strength", type=float, default=0.0,
                    help="emulator noise strength (0 = perfect masks, the diagnosis; 0.5 = medium)")
    ap.add_argument("--train-only", action="store_true")
    ap.add_argument("--quick", action="store_true", help="stages (a) and the pair distances of (b) only")
    ap.add_argument("--report", default=None, help="write the markdown report of every cached analysis here")
    args = ap.parse_args()
    data, cache = Path(args.data), Path(args.cache)
    if args.report:
        write_report(cache, Path(args.report), "python bench/segment_emulated_zero_diag.py " + " ".join(sys.argv[1:]))
        return 0
    for spec in args.objects:
        f = train_cached(data, spec, cache, args.variant, args.strength)
        if args.train_only:
            continue
        levels = ["link", "leaf"] if spec.startswith("partnet") else None
        z = np.load(f)
        levels = levels or sorted(k[3:] for k in z.files if k.startswith("gt_"))
        r = analyse(f, levels, args.quick)
        out = f.with_suffix(".quick.json" if args.quick else ".json")
        out.write_text(json.dumps(r))
        print(spec, json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
