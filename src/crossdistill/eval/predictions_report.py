"""Markdown / JSON / plot report of :func:`crossdistill.eval.score_predictions.score_predictions`.

``write_eval_report(result, out_dir, command)`` writes into ``out_dir``:

* ``eval.md``: overall, per-scale (where the predictions have scales) and per-category
  tables, the five worst objects (linking their ``contact_sheet.png`` when the
  prediction folder has one) and the missing / invalid objects;
* ``eval.json``: the whole result, per-object scores included (fractions in [0, 1]);
* ``eval_categories.png``: per-category bars, when matplotlib is importable.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

import numpy as np

from crossdistill.io_utils import atomic_write, write_json, write_text

__all__ = ["write_eval_report"]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _link(target: str, out_dir: Path) -> str:
    """Markdown link path to ``target``, relative to the report folder when possible."""
    try:
        rel = os.path.relpath(Path(target).resolve(), out_dir.resolve())
    except ValueError:  # another drive (Windows)
        rel = str(Path(target).resolve())
    return rel.replace(os.sep, "/").replace(" ", "%20")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _markdown(result: dict, out_dir: Path, command: str, plot: Path | None) -> str:
    s, levels = result["summary"], result["levels"]
    weighting = "area-weighted per face" if result["element"] == "face" else "per point, unweighted"
    md = [f"# Predictions scored on `{result['benchmark']}`", "",
          f"Command: `{command}`  ", f"Predictions: `{result['predictions']}`  ",
          f"Data: `{result['data']}`  ", f"Date: {_dt.date.today().isoformat()}", "",
          f"Class-agnostic part mIoU x100 (each ground-truth part's best IoU over predicted parts, averaged per "
          f"object, then over objects), {weighting}. Objects with several scales count with their best scale "
          "per level (best-of-scales).", "",
          f"Objects: {s['n_objects']}; scored {s['n_scored']}, missing {s['n_missing']}, invalid {s['n_invalid']}.",
          "", "## Overall", ""]
    md += _table(["objects"] + levels, [[str(s["n_scored"])] + [_pct(s["overall"][lvl]) for lvl in levels]])
    if s["per_scale"]:
        md += ["", "## Per scale (mean over the objects that have the scale)", ""]
        md += _table(["scale", "n"] + levels,
                     [[k, str(v["n"])] + [_pct(v[lvl]) for lvl in levels] for k, v in s["per_scale"].items()])
    md += ["", "## Per category", ""]
    md += _table(["category", "n"] + levels,
                 [[c, str(v["n"])] + [_pct(v[lvl]) for lvl in levels] for c, v in s["per_category"].items()])
    by_id = {o["id"]: o for o in result["objects"]}
    if s["worst"]:
        md += ["", f"## Five worst objects (by {s['worst_by']}, best of scales)", ""]
        rows = []
        for oid in s["worst"]:
            o = by_id[oid]
            sheet = f"[contact sheet]({_link(o['contact_sheet'], out_dir)})" if "contact_sheet" in o else ""
            rows.append([oid] + [_pct(o["best"][lvl]) for lvl in levels] + [sheet])
        md += _table(["object"] + levels + ["view"], rows)
    bad = [o for o in result["objects"] if o["status"] != "ok"]
    if bad:
        md += ["", "## Missing or invalid predictions", ""]
        md += _table(["object", "status", "reason"], [[o["id"], o["status"], o["reason"].replace("|", "\\|")]
                                                        for o in bad])
    if plot is not None:
        md += ["", "## Plot", "", f"![per category]({plot.name})"]
    return "\n".join(md) + "\n"


def _plot(result: dict, path: Path) -> Path | None:
    """Per-category bar plot (one bar per level); ``None`` without matplotlib or categories."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    cats = result["summary"]["per_category"]
    if not cats:
        return None
    levels = result["levels"]
    names = list(cats)
    w = 0.8 / len(levels)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(names) + 2), 3.8))
    for j, lvl in enumerate(levels):
        vals = [np.nan if cats[c][lvl] is None else 100 * cats[c][lvl] for c in names]
        ax.bar(np.arange(len(names)) + j * w, vals, w, label=lvl)
    ax.set_xticks(np.arange(len(names)) + 0.4 - w / 2, names, rotation=45, ha="right")
    ax.set_ylabel("class-agnostic mIoU x100")
    ax.set_ylim(0, 100)
    ax.set_title(f"{result['benchmark']}: per category (best of scales)")
    ax.legend()
    fig.tight_layout()
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return path


def write_eval_report(result: dict, out_dir: Path, command: str) -> list[Path]:
    """Write ``eval.md``, ``eval.json`` and (matplotlib permitting) ``eval_categories.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot = _plot(result, out_dir / "eval_categories.png")
    paths = [write_text(out_dir / "eval.md", _markdown(result, out_dir, command, plot)),
             write_json(out_dir / "eval.json", {"command": command, **result})]
    return paths + ([plot] if plot is not None else [])
