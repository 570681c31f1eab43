"""Report of bench/partdistillation.py: markdown tables, JSON and a picture of test images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from partdistillation import AR_KS, METHODS, TITLES

from crossdistill.viz.palette import overlay_labels


def _mean(rows: list[dict], key: str) -> float:
    vals = [r[key] for r in rows if key in r and np.isfinite(r[key])]
    return 100.0 * float(np.mean(vals)) if vals else float("nan")


def _picture(examples, path: Path) -> None:
    from PIL import Image

    if not examples:
        return
    tiles = []
    for img, res in examples:
        tiles.append(np.concatenate([img["rgb"], overlay_labels(img["rgb"], img["link"]), overlay_labels(img["rgb"], img["leaf"]),
                                     overlay_labels(img["rgb"], res.parts), overlay_labels(img["rgb"], res.part_classes)], 1))
    sheet = np.concatenate(tiles, 0)
    Image.fromarray(sheet).save(path, optimize=True)


def write_report(report: dict, examples, names: dict, out: Path, stem: str) -> None:
    rows, ar, sem = report["rows"], report["ar"], report["semantic_miou"]
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1, default=float))
    _picture(examples, out / f"{stem}.png")
    t = report["timings_s"]
    lines = [
        "# PartDistillation: 2D part discovery on renders of PartNet-Mobility (shared data)", "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']}  ",
        f"Date: {report['date']}", "",
        f"Images: {report['n_images']['train']} training and {report['n_images']['test']} test renders (4 views per "
        f"object, {len(report['categories'])} categories; per category the objects alternate between the halves). "
        f"The method learns on the training half without labels; every figure below is on the test half.",
        f"Teacher: `{report['teacher']}` (the offline instance teacher: no Mask2Former weights on this machine; "
        "instances are the rendered silhouettes, pixel features only what one image shows: colour, camera-frame "
        "normal, relative depth, and their smoothed copies). Object classes: the category names.",
        f"The decoder (c, d) trains on the k-means partitions of K = "
        f"{', '.join(str(k) for k in report['config']['proposals']['ks'])} (rows (a) and (b) are K = 4).", "",
        "## Class-agnostic parts (x100, mean over test images)", "",
        "NMI / ARI over the object's pixels with a known part; mIoU: each ground-truth part's best IoU with a "
        "predicted part, averaged per image; AR@k: average recall of the leaf parts by the k best-ranked masks, "
        "COCO IoU thresholds 0.5:0.95.", "",
        "| method | NMI link | ARI link | mIoU link | NMI leaf | ARI leaf | mIoU leaf | "
        + " | ".join(f"AR@{k} leaf" for k in AR_KS) + " |",
        "|---|" + "---:|" * (6 + len(AR_KS)),
    ]
    for m in METHODS:
        r = rows[m]
        vals = [_mean(r, f"{x}_{lvl}") for lvl in ("link", "leaf") for x in ("nmi", "ari", "miou")]
        vals += [100.0 * ar[m][k] for k in AR_KS]
        lines.append(f"| {TITLES[m]} | " + " | ".join(f"{v:.1f}" for v in vals) + " |")
    lines += ["", "Per category (leaf mIoU x100):", "",
              "| category | images | " + " | ".join(m for m in METHODS) + " |", "|---|---:|" + "---:|" * len(METHODS)]
    for cat in report["categories"]:
        n = sum(1 for r in rows["proposals"] if r["category"] == cat)
        vals = [_mean([r for r in rows[m] if r["category"] == cat], "miou_leaf") for m in METHODS]
        lines.append(f"| {cat} | {n} | " + " | ".join(f"{v:.1f}" for v in vals) + " |")
    lines += ["", "## Class-specific parts (semantic mIoU x100)", "",
              "Each discovered part class of a category is mapped to the link-level semantic part it overlaps most "
              "on the training images; IoU per semantic part over all test pixels of the category, mean over "
              "parts, then over categories.", "",
              "| category | semantic parts | (b) proposals + ranking | (d) decoder + ranking |", "|---|---|---:|---:|"]
    for cat in report["categories"]:
        a, b = sem["proposals"].get(cat, float("nan")), sem["decoder_selftrain"].get(cat, float("nan"))
        lines.append(f"| {cat} | {', '.join(names[cat])} | {100 * a:.1f} | {100 * b:.1f} |")
    ma = 100 * np.nanmean(list(sem["proposals"].values()))
    mb = 100 * np.nanmean(list(sem["decoder_selftrain"].values()))
    lines += [f"| **mean** | | **{ma:.1f}** | **{mb:.1f}** |", "",
              "## Cost", "",
              f"Render {t['render']:.0f} s, teacher {t['teacher']:.0f} s, baselines {t['baselines']:.0f} s, "
              f"training (proposals, {report['config']['rounds']} decoder rounds of {report['config']['train']['steps']} "
              f"steps, ranking) {t['fit']:.0f} s = {report['fit_s_per_train_instance']:.2f} s per training instance "
              f"({report['n_train_instances']} instances); whole run {t['wall']:.0f} s.",
              f"Final loss per round: {', '.join(f'{x:.2f}' for x in report['losses'])}; mean target parts per "
              f"object per round: {', '.join(f'{x:.1f}' for x in report['parts_per_object_targets'])}.", "",
              f"Picture (`{stem}.png`), per row one test image: render, ground truth link, ground truth leaf, "
              "(d) parts, (d) class-specific parts (colours per part class).", ""]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
