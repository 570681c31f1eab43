"""The picture of ``segment_small_parts.md``: small parts before and after (mask EMULATOR, benchmarks only).

Segments two PartNet-Mobility meshes of the mask-emulator grid (Laptop/9748 and Toaster/103473; medium
strength, seed 1) with the fast preset, as the rules for SAM-like masks on meshes of pieces were before
``segment_notes.md`` item 32 (uniform pixel draws; mask support protects parts only in dominant pieces)
and as they ship now (group-balanced draws, ``support_everywhere``, no silhouette support), and renders
per object one row of ground-truth leaf parts and one row per rule set at the finest scale (0.0), four
views each. Writes ``docs/figures/segment_small_parts.png``.

Run: ``python bench/segment_small_parts_figure.py`` (about 2 minutes on 2 CPU cores).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from segment_emulated import STRENGTHS  # noqa: E402

OBJECTS = ("Laptop/9748", "Toaster/103473")
OUT = REPO / "docs" / "figures" / "segment_small_parts.png"
SEED = 1


def main() -> int:
    import torch

    from crossdistill.eval.emulators import EmulatedMaskTeacher
    from crossdistill.eval.segment_objects import load
    from crossdistill.io_utils import save_image
    from crossdistill.methods.sampart3d.pipeline import preset, segment_shape
    from crossdistill.methods.sampart3d.rules import RENDER_CUE_RULES, SAM_RULES
    from crossdistill.viz.contact_sheet import contact_sheet
    from crossdistill.viz.highlight import orbit_views

    torch.set_num_threads(2)
    data = REPO.parent / "shared" / "data"
    if not (data / "partnet_mobility_dev").is_dir():
        print(f"skipped: {data / 'partnet_mobility_dev'} not found (the shared data)", file=sys.stderr)
        return 2
    before = dataclasses.replace(RENDER_CUE_RULES, piece_codes=False, part_vote=0.5)
    sheets = []
    for obj in OBJECTS:
        cat, oid = obj.split("/")
        item, parts = load(data, "partnet", "mesh", cat, oid)
        rows, titles = [np.asarray(item.labels["leaf"])], [f"{obj}: ground truth (leaf parts)"]
        for name, rules in (("before: uniform pixels, support in dominant pieces only", before),
                            ("now: group-balanced pixels, support in every piece", SAM_RULES["pieces"])):
            teacher = EmulatedMaskTeacher(parts, strength=STRENGTHS["medium"], seed=SEED)
            cfg = dataclasses.replace(preset("fast"), seed=SEED, rules=rules)
            seg = segment_shape(item.shape, cfg, mask_teacher=teacher, progress=False)
            finest = int(np.argmin(seg.scales))
            labels = seg.labels(finest)
            rows.append(labels)
            titles.append(f"{name}: {int(labels.max()) + 1} parts at scale {seg.scales[finest]:g}")
            print(f"{obj}: {titles[-1]}", file=sys.stderr)
        views = orbit_views(item.shape, n_views=4, size=224, elevation_deg=35.0)
        sheets.append(contact_sheet(views, rows, titles))
    width = max(s.width for s in sheets)
    out = Image.new("RGB", (width, sum(s.height for s in sheets)), "white")
    y = 0
    for s in sheets:
        out.paste(s, (0, y))
        y += s.height
    save_image(OUT, out)
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
