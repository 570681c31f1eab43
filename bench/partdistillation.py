"""PartDistillation's stages on renders of the shared PartNet-Mobility objects.

Writes docs/results/<stem>.md, <stem>.json and <stem>.png (stem ``partdistillation``).

Data: every object of ../shared/data/partnet_mobility_dev, normalised and rendered from 4
views (one ring at 25 degrees elevation, ``--size`` px; shaded colour on white; the training
half's rings can be changed with ``--train-elevations`` / ``--train-azimuths``). Per
category, objects sorted by id alternate between the training half (even positions), on
which the method learns without labels (all 13 categories), and the test half (odd
positions), scored. Ground truth per pixel: the part of the face it sees, at the link level
(articulated parts) and the leaf level (PartNet leaves); pixels of unknown parts are not
scored. Teacher: the offline instance teacher (no Mask2Former weights here).

Categories are split for settings (category-level cross-validation): settings are chosen
on the test images of the SELECT categories and reported on the REPORT categories.

Stages compared on the test images (per image, over object pixels with known parts):

* proposals: stage 1, cosine k-means of the teacher features inside each instance, K = 4
  (NMI / mIoU); AR@k ranks the parts of the K = 2..6 partitions by K, then area;
* decoder: the part decoder after its first round, trained on the proposals (diagnostic row);
* self-trained: the decoder trained on the proposals, then self-trained (``--rounds``);
* final: + the final self-training on class-specific part ids (``--final-steps``).

NMI, ARI and class-agnostic mIoU (each ground-truth part's best IoU, averaged) at both
levels; AR@10 and AR@200 of the leaf parts, COCO IoU thresholds 0.5:0.95. Semantic mIoU
(class-specific, link level): each discovered part class maps to the semantic part it
overlaps most on the training images.

    python bench/partdistillation.py                    # the report at the default 300 steps per stage
    python bench/partdistillation.py --report-from TAG  # report of a saved run (the report names its command)
    python bench/partdistillation.py --tag x --no-report --final-steps 0   # a variant, JSON only
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import json
import os
import pickle
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DATA = REPO / ".." / "shared" / "data"
OUT = REPO / "docs" / "results"
STEM = "partdistillation"
STAGES = ("proposals", "decoder", "selftrained", "final")
AR_KS = (10, 200)
SELECT = ("Bucket", "Safe", "Toaster", "Stapler", "Switch", "Toilet")
REPORT = ("Laptop", "Box", "Suitcase", "KitchenPot", "TrashCan", "Bottle", "WashingMachine")
#: (elevations in degrees, views per ring) of the test half, and by default of the training half
TEST_RIG = ((25.0,), 4)


def render_split(bench, categories, size: int, train_rig: tuple[tuple[float, ...], int] = TEST_RIG):
    """{"train"|"test": [image dicts]} with rgb views and per-pixel ground truth.

    The test half is rendered from :data:`TEST_RIG`; the training half from ``train_rig``
    (elevations in degrees, azimuths per ring), by default the same views.
    """
    from crossdistill.geometry.normalize import normalize_shape
    from crossdistill.methods.partdistill.data import link_face_labels, link_part_names
    from crossdistill.render.cameras import orbit_rig
    from crossdistill.render.renderer import render_shape

    split = {"train": [], "test": []}
    names = {}
    rigs = {"test": orbit_rig(*TEST_RIG, size=size), "train": orbit_rig(*train_rig, size=size)}
    for cat in categories:
        recs = sorted((r for r in bench.records() if r.category == cat), key=lambda r: r.id)
        names[cat] = link_part_names(recs)
        for i, r in enumerate(recs):
            d = bench.load(r)
            shape, _ = normalize_shape(d["shape"])
            half = "train" if i % 2 == 0 else "test"
            views = render_shape(shape, rigs[half], n_samples=1000, progress=False).views
            sem = link_face_labels(r.meta, d["face_link"], names[cat])
            for v in range(len(views)):
                fid = views.face_id[v]
                look = lambda lab: np.where(fid >= 0, lab[np.maximum(fid, 0)], -1)  # noqa: E731
                split[half].append({
                    "id": r.id, "category": cat, "view": v, "views": views, "v": v,
                    "link": look(d["face_link"]), "leaf": look(d["face_leaf"]), "sem": look(sem)})
    return split, names


def load_data(size: int, grid: int, cache_dir: Path, train_rig: tuple[tuple[float, ...], int] = TEST_RIG):
    """Renders, teacher instances and crops of every image (cached: the teacher is deterministic)."""
    from crossdistill.eval.benchmarks import get_benchmark
    from crossdistill.methods.partdistillation.crops import crop_instances
    from crossdistill.teachers.offline_instances import RenderInstanceTeacher
    from crossdistill.types import Views

    teacher = RenderInstanceTeacher()
    rig_tag = "" if train_rig == TEST_RIG else (
        "_train" + "-".join(f"{e:g}" for e in train_rig[0]) + f"x{train_rig[1]}")
    path = cache_dir / f"partdistillation_{size}_{grid}_{teacher.teacher_id.replace(':', '_')}{rig_tag}.pkl"
    if path.exists():
        with open(path, "rb") as fh:
            return pickle.load(fh) + (teacher.teacher_id,)
    bench = get_benchmark("partnet_mobility_dev", root=DATA)
    cats = sorted({r.category for r in bench.records()})
    split, names = render_split(bench, cats, size, train_rig)
    for img in split["train"] + split["test"]:
        views, v = img.pop("views"), img["v"]
        one = Views(views.cameras.subset([v]), views.face_id[v:v + 1], views.depth[v:v + 1], views.normal[v:v + 1],
                    views.rgb[v:v + 1])
        img["inst"] = teacher.instances(one)[0]
        img["rgb"] = views.rgb[v]
        img["crops"] = crop_instances([img["inst"]], (size, size), grid, classes=[img["category"]])
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        pickle.dump((split, names), fh)
    os.replace(tmp, path)
    return split, names, teacher.teacher_id


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


def majority_map(pairs) -> dict[int, int]:
    """Discovered class -> the semantic part it overlaps most (pairs of (gt, discovered) pixel arrays)."""
    votes: dict[int, np.ndarray] = {}
    for gt, pred in pairs:
        ok = (gt >= 0) & (pred >= 0)
        for p, g in zip(pred[ok], gt[ok]):
            votes.setdefault(int(p), np.zeros(64, np.int64))[int(g)] += 1
    return {p: int(v.argmax()) for p, v in votes.items()}


def semantic_miou(pairs_by_cat: dict, train_maps: dict, n_parts: dict) -> dict[str, float]:
    """Per category: mean IoU over semantic parts of the mapped discovered classes (all test pixels)."""
    out = {}
    for cat, pairs in pairs_by_cat.items():
        P, mapping = n_parts[cat], train_maps.get(cat, {})
        inter, union = np.zeros(P), np.zeros(P)
        for gt, pred in pairs:
            mapped = np.array([mapping.get(int(p), -1) for p in pred]) if len(pred) else pred
            for c in range(P):
                g, p = gt == c, mapped == c
                inter[c] += (g & p).sum()
                union[c] += (g | p).sum()
        ok = union > 0
        out[cat] = float((inter[ok] / union[ok]).mean()) if ok.any() else float("nan")
    return out


def image_partition(img, labels, size: int) -> np.ndarray:
    """Pasted grid partitions of one image's crops -> (H, W) int labels (instances offset by 100)."""
    from crossdistill.methods.partdistillation.crops import paste_partition

    out = np.full((size, size), -1, np.int64)
    for j, (crop, lab) in enumerate(zip(img["crops"], labels)):
        p = paste_partition(lab, crop.box, (size, size), img["inst"].masks[crop.instance_index])
        out[p >= 0] = p[p >= 0] + 100 * j
    return out


def proposal_rows(split, config, size: int, seed: int):
    """Stage 1 on the test images: (rows, AR triples)."""
    from crossdistill.methods.partdistillation.crops import paste_logits
    from crossdistill.methods.partdistillation.proposals import kmeans_partition, partition_masks

    rows, ar = [], []
    for img in split["test"]:
        if not img["crops"]:
            continue
        fg = img["inst"].masks.any(0)
        pred = image_partition(img, [kmeans_partition(c, 4, config.proposals, seed) for c in img["crops"]], size)
        s = scores_for(img["link"], img["leaf"], pred, fg)
        if s is not None:
            rows.append({"id": img["id"], "category": img["category"], "view": img["view"], **s})
        masks, scores = [], []
        for c in img["crops"]:
            props = []
            for k in (2, 3, 4, 5, 6):
                for pm in partition_masks(kmeans_partition(c, k, config.proposals, seed)):
                    props.append((k, -pm.sum(), pm))
            props.sort(key=lambda x: (x[0], x[1]))
            obj = img["inst"].masks[c.instance_index]
            for rank, (_, _, pm) in enumerate(props):
                masks.append(paste_logits((pm.astype(np.float32) - 0.5)[None], c.box, (size, size), obj)[0] > 0)
                scores.append(-float(rank))
        if (img["leaf"] >= 0).any() and masks:
            ar.append((img["category"], np.where(fg, img["leaf"], -1), np.stack(masks), np.asarray(scores)))
    return rows, ar


def model_rows(model, split, which: str = "test", keep_examples: int = 0):
    """A trained model on one half: (rows, AR triples, semantic pairs by category, examples)."""
    rows, ar, sem, examples = [], [], {}, []
    for img in split[which]:
        if not img["crops"]:
            continue
        res = model.predict_image(img["crops"], img["inst"].masks)
        fg = img["inst"].masks.any(0)
        ok = img["sem"] >= 0
        sem.setdefault(img["category"], []).append((img["sem"][ok], res.part_classes[ok]))
        if which != "test":
            continue
        s = scores_for(img["link"], img["leaf"], res.parts.astype(np.int64), fg)
        if s is not None:
            rows.append({"id": img["id"], "category": img["category"], "view": img["view"], **s})
        if (img["leaf"] >= 0).any():
            ar.append((img["category"], np.where(fg, img["leaf"], -1), res.proposals, res.proposal_scores))
        if img["view"] == 1 and len(examples) < keep_examples and img["category"] in REPORT:
            examples.append((img["rgb"], img["link"], img["leaf"], res.parts, res.part_classes))
    return rows, ar, sem, examples


def summarise(rows, ar, cats) -> dict:
    from crossdistill.eval.metrics.instances import average_recall

    sel = [r for r in rows if r["category"] in cats]
    out = {k: float(np.mean([r[k] for r in sel])) for k in sel[0] if k not in ("id", "category", "view")} if sel else {}
    arr = [(g, p, s) for c, g, p, s in ar if c in cats]
    for k in AR_KS:
        out[f"ar{k}"] = average_recall(arr, k=k) if arr else float("nan")
    out["images"] = len(sel)
    return out


def saved_stage_models(args) -> dict:
    """The stage models of ``--from-models TAG`` in ``--save-models DIR``, their test-time decoding overridden."""
    from crossdistill.methods.partdistillation.pipeline import PartDistillation

    if args.save_models is None:
        print("error: --from-models needs --save-models DIR (where the run saved them)", file=sys.stderr)
        raise SystemExit(2)
    thresholds = tuple(args.decode_proposal_thresholds) if args.decode_proposal_thresholds else None
    over = {k: v for k, v in (("score_threshold", args.decode_threshold), ("min_fraction", args.decode_min_fraction),
                              ("proposal_thresholds", thresholds), ("min_parts", args.decode_min_parts))
            if v is not None}
    out = {}
    for stage in ("decoder", "selftrained", "final"):
        f = args.save_models / f"{args.from_models}_{stage}.pt"
        if f.exists():
            m = PartDistillation.load(f)
            m.config = replace(m.config, **over)
            out[stage] = m
    if not out:
        print(f"error: no saved model {args.from_models}_*.pt in {args.save_models}", file=sys.stderr)
        raise SystemExit(2)
    return out


def build_config(args):
    from crossdistill.methods.partdistillation.augment import AugmentConfig
    from crossdistill.methods.partdistillation.pipeline import PartDistillationConfig, SelfTrainConfig
    from crossdistill.methods.partdistillation.proposals import ProposalConfig
    from crossdistill.methods.partdistillation.training import TrainConfig

    aug = None if args.no_augment else AugmentConfig()
    return PartDistillationConfig(
        grid=args.grid, queries=args.queries, proposals=ProposalConfig(metric=args.metric, spatial_weight=args.spatial_weight),
        train=TrainConfig(steps=args.steps, seed=args.seed), rounds=args.rounds, normalize_input=args.normalize_input,
        pixel_kernel=args.pixel_kernel, pixel_layers=args.pixel_layers, pixel_position=args.pixel_position,
        self_train=SelfTrainConfig(augment=aug, momentum=args.momentum, refresh_every=args.refresh_every,
                                   proposal_augment=args.proposal_augment, min_parts=args.self_train_min_parts,
                                   targets=args.self_train_targets),
        final_steps=args.final_steps, min_fraction=args.min_fraction, min_parts=args.min_parts, seed=args.seed)


def main() -> None:  # noqa: C901 - a benchmark script reads top to bottom
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--grid", type=int, default=48)
    ap.add_argument("--steps", type=int, default=300, help="decoder steps per round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--final-steps", type=int, default=300)
    ap.add_argument("--queries", type=int, default=12)
    ap.add_argument("--metric", default="cosine", choices=["cosine", "euclidean"])
    ap.add_argument("--spatial-weight", type=float, default=1.0, help="k-means position weight of the proposals")
    ap.add_argument("--normalize-input", type=int, default=1)
    ap.add_argument("--min-fraction", type=float, default=0.05, help="decoder parts below this share of the object "
                    "are absorbed by their surroundings")
    ap.add_argument("--pixel-kernel", type=int, default=1)
    ap.add_argument("--pixel-layers", type=int, default=0, help="residual 3x3 blocks of the decoder's pixel embedding")
    ap.add_argument("--pixel-position", type=int, default=0, help="channels of the cell-position code in the "
                    "decoder's pixel embedding (0: none)")
    ap.add_argument("--min-parts", type=int, default=0, help="the decoder's reading lets at least this many "
                    "queries compete for an object's cells")
    ap.add_argument("--self-train-min-parts", type=int, default=0, help="the same for the self-training targets")
    ap.add_argument("--self-train-targets", default="partition", choices=["partition", "embedding"],
                    help="self-training targets: the snapshot's partitions, or k-means of its pixel embeddings")
    ap.add_argument("--no-augment", action="store_true")
    ap.add_argument("--proposal-augment", action="store_true")
    ap.add_argument("--momentum", type=float, default=0.99)
    ap.add_argument("--refresh-every", type=int, default=50)
    ap.add_argument("--transductive", action="store_true",
                    help="the method also learns (without labels) on the test renders, which the k-means proposals "
                         "are computed on; default: it learns on the training renders only")
    ap.add_argument("--train-elevations", type=float, nargs="+", default=list(TEST_RIG[0]),
                    help="elevations (degrees) of the training half's view rings (the test half: 4 views at 25)")
    ap.add_argument("--train-azimuths", type=int, default=TEST_RIG[1], help="views per ring of the training half")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="default", help="name of this variant in the runs folder")
    ap.add_argument("--no-report", action="store_true", help="write only the variant's JSON")
    ap.add_argument("--stem", default=STEM, help="name of the report files in docs/results")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "crossdistill_bench")
    ap.add_argument("--save-models", type=Path, default=None, metavar="DIR",
                    help="also write each stage's trained model to DIR/<tag>_<stage>.pt")
    ap.add_argument("--from-models", default=None, metavar="TAG",
                    help="no training: evaluate the stage models a run saved under --save-models DIR as TAG "
                         "(the --decode-* options change how the decoder is read)")
    ap.add_argument("--decode-threshold", type=float, default=None,
                    help="with --from-models: part-ness a query needs to own cells at test time")
    ap.add_argument("--decode-min-parts", type=int, default=None,
                    help="with --from-models: read the saved models with this min_parts")
    ap.add_argument("--decode-min-fraction", type=float, default=None,
                    help="with --from-models: smallest part kept at test time, as a share of its object")
    ap.add_argument("--decode-proposal-thresholds", type=float, nargs="+", default=None,
                    help="with --from-models: mask-logit thresholds at which every query's mask is a ranked proposal")
    ap.add_argument("--report-from", default=None, metavar="TAG",
                    help="write the report from the saved run TAG (its JSON and cached example images), no run")
    args = ap.parse_args()
    args.normalize_input = bool(args.normalize_input)
    if args.report_from:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from partdistillation_report import write_report

        report = json.loads((OUT / f"{STEM}_runs" / f"{args.report_from}.json").read_text())
        with open(args.cache / f"{STEM}_examples_{args.report_from}.pkl", "rb") as fh:
            examples, names = pickle.load(fh)
        write_report(report, examples, names, OUT, args.stem)
        print(f"wrote {OUT / (args.stem + '.md')} from run {args.report_from}")
        return

    import torch

    torch.set_num_threads(args.threads)
    from crossdistill.engine.machine import cpu_model
    from crossdistill.methods.partdistillation.pipeline import PartDistillation
    from crossdistill.methods.partdistillation.ranking import PartRanking

    t_all = time.perf_counter()
    split, names, teacher_id = load_data(args.size, args.grid, args.cache,
                                         (tuple(args.train_elevations), args.train_azimuths))
    config = build_config(args)
    train_crops = [c for img in split["train"] for c in img["crops"]]
    if args.transductive:  # the unlabelled collection also holds the test renders, as the proposals see them
        train_crops += [c for img in split["test"] for c in img["crops"]]
    results, timings = {}, {}

    t = time.perf_counter()
    rows, ar = proposal_rows(split, config, args.size, args.seed)
    results["proposals"] = {"rows": rows, "ar": ar, "sem": {}}
    timings["proposals"] = time.perf_counter() - t

    snaps = {}

    def after_round(r, decoder):
        if r == 0 and config.rounds > 1:
            snaps["decoder"] = copy.deepcopy(decoder)
        if r == config.rounds - 1:
            snaps["selftrained"] = copy.deepcopy(decoder)

    t = time.perf_counter()
    if args.from_models:
        stage_models, history = saved_stage_models(args), None
    else:
        model, history = PartDistillation.fit(train_crops, config, teacher_id, progress=False,
                                              after_round=after_round)
        stage_models = {}
        for stage in ("decoder", "selftrained"):
            if stage in snaps:
                m = PartDistillation(snaps[stage], PartRanking(config=config.ranking), replace(config, final_steps=0))
                m.ranking = m.fit_ranking(train_crops)
                stage_models[stage] = m
        if config.final_stage_steps > 0:
            stage_models["final"] = model
        if args.save_models:
            for stage, m in stage_models.items():
                m.save(args.save_models / f"{args.tag}_{stage}.pt")
    timings["fit"] = time.perf_counter() - t
    examples = []
    t = time.perf_counter()
    for stage, m in stage_models.items():
        rows, ar, sem, ex = model_rows(m, split, "test", keep_examples=7 if stage == "final" else 0)
        _, _, sem_train, _ = model_rows(m, split, "train")
        n_parts = {c: len(n) for c, n in names.items()}
        results[stage] = {"rows": rows, "ar": ar,
                          "sem": semantic_miou(sem, {c: majority_map(p) for c, p in sem_train.items()}, n_parts)}
        examples += ex
    timings["evaluate"] = time.perf_counter() - t
    wall = time.perf_counter() - t_all
    summary = {s: {fold: summarise(results[s]["rows"], results[s]["ar"], cats)
                   for fold, cats in (("select", SELECT), ("report", REPORT))} for s in results}
    for s in results:
        for fold, cats in (("select", SELECT), ("report", REPORT)):
            vals = [results[s]["sem"][c] for c in cats if c in results[s]["sem"]]
            summary[s][fold]["sem_miou"] = float(np.nanmean(vals)) if vals else float("nan")
    per_cat = {s: {c: summarise(results[s]["rows"], results[s]["ar"], (c,)) for c in sorted(names)} for s in results}
    report = {
        "command": "python bench/" + Path(__file__).name + " " + " ".join(sys.argv[1:]),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        # the CPU model matters: training differs in the last bits between CPU vendors, and grows apart from there
        "machine": f"{os.cpu_count()} cores ({platform.machine()}, {cpu_model()}), Python {platform.python_version()}, "
                   f"torch {torch.__version__}, torch threads {args.threads}, shared with other jobs",
        "loadavg_end": os.getloadavg(), "teacher": teacher_id, "tag": args.tag,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "config": config.to_dict(), "select": SELECT, "report": REPORT,
        "n_images": {k: len(v) for k, v in split.items()}, "n_train_instances": len(train_crops),
        "summary": summary, "per_category": per_cat,
        "semantic": {s: results[s]["sem"] for s in results},
        "final_loss_per_stage": [l[-1] for l in history.losses] if history is not None else None,
        "timings_s": timings | {"wall": wall},
    }
    runs = OUT / f"{STEM}_runs"
    runs.mkdir(parents=True, exist_ok=True)
    (runs / f"{args.tag}.json").write_text(json.dumps(report, indent=1, default=float))
    with open(args.cache / f"{STEM}_examples_{args.tag}.pkl", "wb") as fh:
        pickle.dump((examples, names), fh)
    print(json.dumps({s: {f: {k: round(100 * v, 1) if k != "images" else v for k, v in d.items()}
                          for f, d in summary[s].items()} for s in summary}, indent=None))
    if not args.no_report:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from partdistillation_report import write_report

        write_report(report, examples, names, OUT, args.stem)
        print(f"wrote {OUT / (args.stem + '.md')} in {wall:.0f} s")


if __name__ == "__main__":
    main()
