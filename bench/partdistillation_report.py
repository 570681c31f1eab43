"""Report of bench/partdistillation.py: markdown tables, JSON and a picture of test images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from crossdistill.viz.palette import overlay_labels
from partdistillation import TEST_RIG  # the benchmark's views (this module lives beside it in bench/)

TITLES = {"proposals": "proposals (stage 1: cosine k-means, K=4)", "decoder": "decoder, first round (diagnostic)",
          "selftrained": "self-trained decoder",
          "final": "final (self-trained on cluster ids)"}
COLS = (("nmi_link", "NMI link"), ("nmi_leaf", "NMI leaf"), ("miou_link", "mIoU link"), ("miou_leaf", "mIoU leaf"),
        ("ar10", "AR@10 leaf"), ("ar200", "AR@200 leaf"), ("sem_miou", "semantic mIoU"))
TARGET = ("nmi_link", "nmi_leaf", "miou_link", "miou_leaf", "ar200")


def _fmt(v) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{100 * v:.1f}"


def _picture(examples, path: Path) -> None:
    from PIL import Image

    if not examples:
        return
    tiles = [np.concatenate([rgb, overlay_labels(rgb, link), overlay_labels(rgb, leaf), overlay_labels(rgb, parts),
                             overlay_labels(rgb, classes)], 1) for rgb, link, leaf, parts, classes in examples]
    Image.fromarray(np.concatenate(tiles, 0)).save(path, optimize=True)


def _views_text(args: dict) -> str:
    """How the two halves were rendered, from the run's arguments."""
    elevations = tuple(float(e) for e in args.get("train_elevations", TEST_RIG[0]))
    azimuths = int(args.get("train_azimuths", TEST_RIG[1]))
    test_views = len(TEST_RIG[0]) * TEST_RIG[1]
    if (elevations, azimuths) == TEST_RIG:
        return f"{test_views} views per object"
    rings = " and ".join(f"{e:g}" for e in elevations)
    return (f"training objects from {len(elevations) * azimuths} views ({azimuths} per ring at {rings} degrees), "
            f"test objects from {test_views} views at {' and '.join(f'{e:g}' for e in TEST_RIG[0])} degrees")


def target_lines(summary: dict, fold: str) -> list[str]:
    """One line per target metric: final > self-trained > proposals, met or missed."""
    out = []
    for key, name in COLS:
        if key not in TARGET or "final" not in summary:
            continue
        p, s, f = (summary[x][fold].get(key, float("nan")) for x in ("proposals", "selftrained", "final"))
        ok = f > s > p
        out.append(f"- {name}: final {_fmt(f)} {'>' if f > s else '<='} self-trained {_fmt(s)} "
                   f"{'>' if s > p else '<='} proposals {_fmt(p)}: **{'met' if ok else 'MISSED'}**")
    return out


def write_report(report: dict, examples, names: dict, out: Path, stem: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1, default=float))
    _picture(examples, out / f"{stem}.png")
    summary, per_cat, t, cfg = report["summary"], report["per_category"], report["timings_s"], report["config"]
    stages = [s for s in TITLES if s in summary]
    lines = [
        "# PartDistillation: its stages on renders of PartNet-Mobility (shared data)", "",
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']}; load average at the end {', '.join(f'{x:.1f}' for x in report['loadavg_end'])}  ",
        f"Date: {report['date']}", "",
        f"Images: {report['n_images']['train']} training and {report['n_images']['test']} test renders ("
        + _views_text(report.get("args", {})) + ", 13 categories, objects alternating between the halves). " + (
            "**Transductive protocol:** the method learns without labels on every training *and test* image (the "
            "k-means proposals are computed on the test images too); labels of test images are used only to score. "
            if report.get("args", {}).get("transductive") else
            "The method learns on every training image without labels (inductive: test objects are unseen). ")
        + "The figures are on the test images.",
        f"Teacher: `{report['teacher']}` (offline instance teacher: no Mask2Former weights on this machine; instances "
        "are the rendered silhouettes, pixel features what one image shows: colour, camera-frame normal, relative "
        "depth and smoothed copies).", "",
        f"**Settings were chosen on the test images of {', '.join(report['select'])} (select) and are reported on "
        f"{', '.join(report['report'])} (report).** The report categories' figures played no part in any choice.", "",
        f"Stages: proposals = cosine k-means (K = 4) of the teacher features per instance; self-trained = the part "
        f"decoder trained on them ({cfg['train']['steps']} steps), then {cfg['rounds'] - 1} self-training round(s) of "
        f"{cfg['train']['steps']} steps from an EMA teacher snapshot (momentum {cfg['self_train']['momentum']}, "
        f"re-labelling every {cfg['self_train']['refresh_every']} steps) on strongly augmented crops; final = "
        f"{cfg['final_steps']} more steps of self-training on class-specific part ids (cluster head, same snapshot "
        "and augmentation).", "",
        "NMI over the object's pixels with a known part; mIoU: each ground-truth part's best IoU with a predicted "
        "part, averaged per image; AR@k: average recall of the leaf parts by the k best-ranked masks, COCO IoU "
        "thresholds 0.5:0.95 (proposals: the parts of K = 2..6, by K then area; decoder: its parts, then every "
        f"query's mask at mask logits {', '.join(f'> {t:g}' for t in cfg.get('proposal_thresholds', [0.0]))}, by "
        "part-ness); semantic mIoU: discovered part classes mapped to link-level semantic parts by "
        "majority on the training images (proposals have no classes).", "",
    ]
    for fold in ("report", "select"):
        lines += [f"## {'Report' if fold == 'report' else 'Select'} categories (x100, mean over test images)", "",
                  "| stage | images | " + " | ".join(n for _, n in COLS) + " |", "|---|---:|" + "---:|" * len(COLS)]
        for s in stages:
            d = summary[s][fold]
            lines.append(f"| {TITLES[s]} | {d.get('images', 0)} | " + " | ".join(_fmt(d.get(k)) if not
                         (s == 'proposals' and k == 'sem_miou') else "-" for k, _ in COLS) + " |")
        lines += ["", "Target (final > self-trained > proposals):", ""] + target_lines(summary, fold) + [""]
    lines += ["## Per category (x100): NMI link / mIoU leaf / AR@200 leaf", "",
              "| category | fold | images | " + " | ".join(TITLES[s].split(" (")[0] for s in stages) + " |",
              "|---|---|---:|" + "---|" * len(stages)]
    for cat in sorted(names):
        fold = "select" if cat in report["select"] else "report"
        n = per_cat["proposals"][cat].get("images", 0)
        cells = [" / ".join(_fmt(per_cat[s][cat].get(k)) for k in ("nmi_link", "miou_leaf", "ar200")) for s in stages]
        lines.append(f"| {cat} | {fold} | {n} | " + " | ".join(cells) + " |")
    lines += ["", "## Cost", "",
              f"Proposals (all K for AR) {t['proposals']:.0f} s, training (all stages and the ranking) {t['fit']:.0f} s "
              f"for {report['n_train_instances']} training instances, evaluation {t['evaluate']:.0f} s; whole run "
              f"{t['wall']:.0f} s on a machine shared with other jobs.",
              f"Final loss per stage: {', '.join(f'{x:.2f}' for x in report['final_loss_per_stage'])}.", "",
              f"Picture (`{stem}.png`), one test image of each report category per row: render, ground truth link, "
              "ground truth leaf, final parts, final class-specific parts.", ""]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
