"""PartDistillation (2D part discovery) on renders of the shared PartNet-Mobility objects.

Writes docs/results/partdistillation.md, partdistillation.json and partdistillation.png
(test images: ground truth, proposals, decoder parts, class-specific parts).

Data: every object of ../shared/data/partnet_mobility_dev, normalised and rendered from 4
views (one ring at 25 degrees elevation, ``--size`` px; shaded colour on white). Per
category, objects sorted by id alternate between the training half (even positions), on
which the method learns without labels, and the test half (odd positions), scored.
Ground truth per pixel: the part of the face it sees, at the link level (articulated
parts) and the leaf level (PartNet leaves); pixels of unknown parts are not scored.

Teacher: the offline instance teacher (no Mask2Former weights here): instances are the
rendered objects' silhouettes, features the image-only channels of
``crossdistill.teachers.offline_instances``. Object classes: the category names (the
image-level labels PartDistillation reads from ImageNet).

Side by side on the test images, class-agnostic (per image, over object pixels with known
parts: NMI, ARI, mIoU = each ground-truth part's best IoU, averaged; AR@k of the ranked
masks, COCO IoU thresholds 0.5:0.95):

* (a) RGB k-means: k-means of colour + position only, K = 4 (no teacher features);
* (b) proposals: stage 1, k-means of the teacher features, K = 4 (AR@k ranks the
  proposals of K = 2..6 by K, then area);
* (c) decoder trained on the proposals (one round);
* (d) decoder after self-training (the method's default, two rounds).

Class-specific (per category: each discovered part class maps to the link-level semantic
part it overlaps most on the *training* images; semantic IoU per part over all test pixels,
averaged over parts, then over categories): (b) with the same ranking run on the
proposals' mean teacher features, and (d) with its ranking of query features.

    python bench/partdistillation.py              # all 13 categories, ~10 min on 2 cores
    python bench/partdistillation.py --categories Bucket Laptop --steps 100   # quick look
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DATA = REPO / ".." / "shared" / "data"
OUT = REPO / "docs" / "results"
STEM = "partdistillation"
METHODS = ("rgb_kmeans", "proposals", "decoder", "decoder_selftrain")
TITLES = {"rgb_kmeans": "(a) RGB + position k-means, K=4", "proposals": "(b) teacher-feature k-means (stage 1), K=4",
          "decoder": "(c) part decoder, trained on (b)", "decoder_selftrain": "(d) + self-training (default)"}
AR_KS = (5, 10)


def render_split(bench, categories, size: int):
    """{"train"|"test": [image dicts]} with rgb views, instance sets and per-pixel ground truth."""
    from crossdistill.geometry.normalize import normalize_shape
    from crossdistill.methods.partdistill.data import link_face_labels, link_part_names
    from crossdistill.render.cameras import orbit_rig
    from crossdistill.render.renderer import render_shape

    split = {"train": [], "test": []}
    names = {}
    rig = orbit_rig((25.0,), 4, size=size)
    for cat in categories:
        recs = sorted((r for r in bench.records() if r.category == cat), key=lambda r: r.id)
        names[cat] = link_part_names(recs)
        for i, r in enumerate(recs):
            d = bench.load(r)
            shape, _ = normalize_shape(d["shape"])
            views = render_shape(shape, rig, n_samples=1000, progress=False).views
            sem = link_face_labels(r.meta, d["face_link"], names[cat])
            for v in range(len(views)):
                fid = views.face_id[v]
                look = lambda lab: np.where(fid >= 0, lab[np.maximum(fid, 0)], -1)  # noqa: E731
                split["train" if i % 2 == 0 else "test"].append({
                    "id": r.id, "category": cat, "view": v, "views": views, "v": v,
                    "link": look(d["face_link"]), "leaf": look(d["face_leaf"]), "sem": look(sem)})
    return split, names


def rgb_crop(crop, rgb: np.ndarray):
    """The crop with the image's RGB (sampled over the box) in place of the teacher features."""
    from dataclasses import replace

    from crossdistill.methods.partdistillation.crops import _sample_grid
    import torch
    import torch.nn.functional as F

    g = _sample_grid(crop.box, crop.image_size, crop.grid)
    img = torch.as_tensor(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    return replace(crop, features=F.grid_sample(img, g, mode="bilinear", align_corners=False)[0].numpy())


def scores_for(gt_link, gt_leaf, pred, mask):
    from crossdistill.eval.metrics.clustering import ari, nmi
    from crossdistill.eval.metrics.parts import class_agnostic_miou

    out = {}
    for level, gt in (("link", gt_link), ("leaf", gt_leaf)):
        sel = mask & (gt >= 0)
        if not sel.any():
            return None
        out[f"nmi_{level}"] = nmi(gt[sel], pred[sel])
        out[f"ari_{level}"] = ari(gt[sel], pred[sel])
        out[f"miou_{level}"] = class_agnostic_miou(gt[sel], pred[sel])
    return out


def semantic_miou(per_cat: dict[str, list[tuple[np.ndarray, np.ndarray]]], train_maps: dict, n_parts: dict) -> dict:
    """Mean over categories of the mean IoU over semantic parts; discovered classes mapped by training majority."""
    result = {}
    for cat, pairs in per_cat.items():
        P = n_parts[cat]
        mapping = train_maps.get(cat, {})
        inter, union = np.zeros(P), np.zeros(P)
        for gt, pred in pairs:
            mapped = np.array([mapping.get(int(p), -1) for p in pred]) if len(pred) else pred
            for c in range(P):
                g, p = gt == c, mapped == c
                inter[c] += (g & p).sum()
                union[c] += (g | p).sum()
        present = union > 0
        result[cat] = float((inter[present] / union[present]).mean()) if present.any() else float("nan")
    return result


def majority_map(pairs) -> dict[int, int]:
    """Discovered class -> the semantic part it overlaps most (pairs of (gt, discovered) pixel arrays)."""
    votes: dict[int, np.ndarray] = {}
    for gt, pred in pairs:
        ok = (gt >= 0) & (pred >= 0)
        for p, g in zip(pred[ok], gt[ok]):
            votes.setdefault(int(p), np.zeros(64, np.int64))[int(g)] += 1
    return {p: int(v.argmax()) for p, v in votes.items()}


def main() -> None:  # noqa: C901 - a benchmark script reads top to bottom
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--categories", nargs="*", default=None)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--grid", type=int, default=48)
    ap.add_argument("--steps", type=int, default=300, help="decoder steps per round")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stem", default=STEM)
    ap.add_argument("--ks", type=int, nargs="+", default=[4],
                    help="cluster counts of the decoder's training proposals (rows (a), (b) stay K=4)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from crossdistill.eval.benchmarks import get_benchmark
    from crossdistill.eval.metrics.instances import average_recall
    from crossdistill.methods.partdistillation.crops import crop_instances, paste_partition
    from crossdistill.methods.partdistillation.pipeline import PartDistillation, PartDistillationConfig
    from crossdistill.methods.partdistillation.proposals import ProposalConfig, kmeans_partition, partition_masks
    from crossdistill.methods.partdistillation.ranking import PartRanking, class_part_features
    from crossdistill.methods.partdistillation.training import TrainConfig
    from crossdistill.methods.partdistillation.crops import paste_logits
    from crossdistill.teachers.offline_instances import RenderInstanceTeacher

    t_all = time.perf_counter()
    bench = get_benchmark("partnet_mobility_dev", root=DATA)
    cats = args.categories or sorted({r.category for r in bench.records()})
    t = time.perf_counter()
    split, names = render_split(bench, cats, args.size)
    render_s = time.perf_counter() - t
    teacher = RenderInstanceTeacher()
    t = time.perf_counter()
    for img in split["train"] + split["test"]:
        views, v = img["views"], img["v"]
        from crossdistill.types import Views
        one = Views(views.cameras.subset([v]), views.face_id[v:v + 1], views.depth[v:v + 1], views.normal[v:v + 1],
                    views.rgb[v:v + 1])
        img["inst"] = teacher.instances(one)[0]
        img["rgb"] = views.rgb[v]
        img["crops"] = crop_instances([img["inst"]], (args.size, args.size), args.grid, classes=[img["category"]])
        del img["views"]
    teacher_s = time.perf_counter() - t
    train_crops = [c for img in split["train"] for c in img["crops"]]
    config = PartDistillationConfig(grid=args.grid, proposals=ProposalConfig(ks=tuple(args.ks)),
                                    train=TrainConfig(steps=args.steps, seed=args.seed), seed=args.seed)

    def image_partitions(img, decoded):
        """Pasted partitions of one image's crops -> (H, W) int labels (instances offset)."""
        H = W = args.size
        out = np.full((H, W), -1, np.int64)
        for j, (crop, lab) in enumerate(zip(img["crops"], decoded)):
            m = img["inst"].masks[crop.instance_index]
            p = paste_partition(lab, crop.box, (H, W), m)
            out[p >= 0] = p[p >= 0] + 100 * j
        return out

    rows = {m: [] for m in METHODS}
    ar_pairs = {m: [] for m in METHODS}
    sem_pairs = {"proposals": {}, "decoder_selftrain": {}}
    train_sem = {"proposals": {}, "decoder_selftrain": {}}
    examples = []

    # (a), (b): no training
    t = time.perf_counter()
    prop_feats = {}
    for which in ("train", "test"):
        for img in split[which]:
            if not img["crops"]:
                continue
            labs_b = [kmeans_partition(c, 4, config.proposals, args.seed) for c in img["crops"]]  # (b): K = 4
            pred_b = image_partitions(img, labs_b)
            crop = img["crops"][0]
            means = np.stack([crop.features[:, m].mean(1) for m in partition_masks(labs_b[0])])
            prop_feats[(which, id(img))] = (labs_b[0], means)
            if which == "train":
                continue
            labs_a = [kmeans_partition(rgb_crop(c, img["rgb"]), 4, config.proposals, args.seed) for c in img["crops"]]
            pred_a = image_partitions(img, labs_a)
            fg = img["inst"].masks.any(0)
            for m, pred in (("rgb_kmeans", pred_a), ("proposals", pred_b)):
                s = scores_for(img["link"], img["leaf"], pred, fg)
                if s is not None:
                    rows[m].append({"id": img["id"], "category": img["category"], "view": img["view"], **s})
            for m, crops_fn in (("rgb_kmeans", lambda c: rgb_crop(c, img["rgb"])), ("proposals", lambda c: c)):
                masks, scores = [], []
                for c in img["crops"]:
                    props = []
                    for k in (2, 3, 4, 5, 6):
                        for pm in partition_masks(kmeans_partition(crops_fn(c), k, config.proposals, args.seed)):
                            props.append((k, -pm.sum(), pm))
                    props.sort(key=lambda x: (x[0], x[1]))
                    obj_m = img["inst"].masks[c.instance_index]
                    for rank, (_, _, pm) in enumerate(props):
                        masks.append(paste_logits((pm.astype(np.float32) - 0.5)[None], c.box, (args.size,) * 2,
                                                  obj_m)[0] > 0)
                        scores.append(-float(rank))
                gt = img["leaf"]
                if (gt >= 0).any() and masks:
                    ar_pairs[m].append((np.where(fg, gt, -1), np.stack(masks), np.asarray(scores)))
    baselines_s = time.perf_counter() - t

    # ranking of (b): mean teacher features of the proposals, per class
    tr = [(img["category"], prop_feats[("train", id(img))][1]) for img in split["train"] if ("train", id(img)) in prop_feats]
    ranking_b = PartRanking.fit(class_part_features([c for c, _ in tr], [f for _, f in tr]), config.ranking, args.seed)

    def class_map_b(img, which):
        lab, means = prop_feats[(which, id(img))]
        ranks = ranking_b.assign(img["category"], means)
        part = image_partitions(img, [lab])
        cls = np.where(part >= 0, ranks[np.maximum(part, 0) % 100], -1)
        return cls

    for which, store in (("train", train_sem["proposals"]), ("test", sem_pairs["proposals"])):
        for img in split[which]:
            if (which, id(img)) in prop_feats:
                cls = class_map_b(img, which)
                ok = img["sem"] >= 0
                store.setdefault(img["category"], []).append((img["sem"][ok], cls[ok]))

    # (c), (d): the decoder
    evaluated = {}

    def evaluate(model, tag):
        for img in split["test"]:
            if not img["crops"]:
                continue
            res = model.predict_image(img["crops"], img["inst"].masks)
            fg = img["inst"].masks.any(0)
            s = scores_for(img["link"], img["leaf"], res.parts.astype(np.int64), fg)
            if s is not None:
                rows[tag].append({"id": img["id"], "category": img["category"], "view": img["view"], **s})
            if (img["leaf"] >= 0).any():
                ar_pairs[tag].append((np.where(fg, img["leaf"], -1), res.proposals, res.proposal_scores))
            if tag == "decoder_selftrain":
                ok = img["sem"] >= 0
                sem_pairs[tag].setdefault(img["category"], []).append((img["sem"][ok], res.part_classes[ok]))
                if img["view"] == 1 and len(examples) < 2 * len(cats):
                    examples.append((img, res))
        evaluated[tag] = True

    def after_round(r, decoder):
        if r == 0 and config.rounds > 1:
            snap = PartDistillation(copy.deepcopy(decoder), PartRanking(), config)
            snap.ranking = snap.fit_ranking(train_crops)
            evaluate(snap, "decoder")

    t = time.perf_counter()
    model, history = PartDistillation.fit(train_crops, config, teacher.teacher_id, progress=False,
                                         after_round=after_round)
    fit_s = time.perf_counter() - t
    evaluate(model, "decoder_selftrain")
    for img in split["train"]:
        if img["crops"]:
            res = model.predict_image(img["crops"], img["inst"].masks)
            ok = img["sem"] >= 0
            train_sem["decoder_selftrain"].setdefault(img["category"], []).append((img["sem"][ok], res.part_classes[ok]))

    n_parts = {c: len(n) for c, n in names.items()}
    sem = {m: semantic_miou(sem_pairs[m], {c: majority_map(p) for c, p in train_sem[m].items()}, n_parts)
           for m in sem_pairs}
    ar = {m: {k: average_recall(ar_pairs[m], k=k) for k in AR_KS} for m in METHODS}
    wall = time.perf_counter() - t_all
    report = {
        "command": "python bench/" + Path(__file__).name + " " + " ".join(sys.argv[1:]),
        "date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "machine": f"{os.cpu_count()} cores, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, torch threads {args.threads}",
        "teacher": teacher.teacher_id, "categories": cats, "config": config.to_dict(),
        "n_images": {k: len(v) for k, v in split.items()}, "n_train_instances": len(train_crops),
        "rows": rows, "ar": ar, "semantic_miou": sem, "losses": [l[-1] for l in history.losses],
        "parts_per_object_targets": history.parts_per_object, "vocabulary": list(model.vocabulary),
        "timings_s": {"render": render_s, "teacher": teacher_s, "baselines": baselines_s, "fit": fit_s, "wall": wall},
        "fit_s_per_train_instance": fit_s / max(len(train_crops), 1),
    }
    from partdistillation_report import write_report

    write_report(report, examples, names, OUT, args.stem)
    print(f"wrote {OUT / (args.stem + '.md')} in {wall:.0f} s")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
