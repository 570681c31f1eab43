"""`crossdistill select`: the part under a click at any scale, from a segmented object's saved field."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from crossdistill.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("select", help="interactive segmentation: the part under a click at a chosen scale",
                       description="Click-plus-scale segmentation (SAMPart3D): query the grouping field that "
                                   "`crossdistill segment` saved for OBJECT_DIR (its field.pt) with a click on "
                                   "the surface and one or more scales; no retraining.")
    p.add_argument("object_dir", help="one object's folder written by `crossdistill segment`")
    click = p.add_mutually_exclusive_group(required=True)
    click.add_argument("--point", type=float, nargs=3, metavar=("X", "Y", "Z"),
                       help="click position on the surface, in the input's units")
    click.add_argument("--face", type=int, help="clicked face index (meshes), in the input's face order")
    p.add_argument("--scale", type=float, nargs="+", default=None,
                   help="query scale(s), in the unit the object was segmented with (default: its segment scales)")
    p.add_argument("--mode", choices=["parts", "radius"], default=None,
                   help="parts (default): the part under the click in the clustering `crossdistill segment` "
                        "makes at that scale (the saved parts at a segmented scale, the same stage 3 on the "
                        "saved field at any other), so select, view and segment agree; radius: the points whose "
                        "grouping features lie within --radius of the clicked point's (the query of earlier "
                        "versions; implied by --radius or --anywhere)")
    p.add_argument("--radius", type=float, default=None,
                   help="radius mode: feature-distance radius of the selection (default: half the push margin)")
    p.add_argument("--anywhere", action="store_true",
                   help="radius mode: also select points with similar features that are not connected to the click")
    p.add_argument("-o", "--output", default=None,
                   help="output folder (default: OBJECT_DIR/selections/<click>)")
    p.add_argument("--device", default="cpu", help="torch device: cpu (default) or cuda")
    p.add_argument("--quiet", action="store_true", help="no summary on stderr")
    p.set_defaults(func=run_select)


def _click_name(args: argparse.Namespace) -> str:
    if args.face is not None:
        return f"face_{args.face}"
    return "point_" + "_".join(f"{v:.4g}" for v in args.point)


def run_select(args: argparse.Namespace) -> int:
    from crossdistill.cli.segment_cmd import _device
    from crossdistill.export.parts import scale_dirname, write_colored_mesh, write_colored_points, write_named_nodes
    from crossdistill.io_utils import save_image, save_npy, write_json
    from crossdistill.methods.sampart3d.interactive import InteractiveSegmenter
    from crossdistill.methods.sampart3d.outputs import read_segment_object

    obj = Path(args.object_dir)
    meta, shape = read_segment_object(obj, "selection")
    seg = InteractiveSegmenter.from_dir(obj, shape, device=_device(args.device))
    scales = args.scale if args.scale is not None else meta.get("scales") or [1.0]
    point = None if args.point is None else np.asarray(args.point, dtype=np.float64)
    from crossdistill.engine.outputs import check_output_dir

    mode = args.mode or ("radius" if args.radius is not None or args.anywhere else "parts")
    if mode == "parts" and (args.radius is not None or args.anywhere):
        raise InputError("--radius and --anywhere belong to --mode radius")
    out = check_output_dir(Path(args.output) if args.output else obj / "selections" / _click_name(args))
    # every query first: a bad scale or click fails before anything is written
    selections = [seg.select(float(s), point=point, face=args.face, radius=args.radius, connected=not args.anywhere,
                             mode=mode) for s in scales]
    for note in seg.parts.notes if seg.parts is not None and not args.quiet else ():
        print(f"note: {note}", file=sys.stderr)
    rows, titles = [], []
    for s, sel in zip(scales, selections):
        lab = sel.element_mask.astype(np.int32)
        folder = out / scale_dirname(s)
        save_npy(folder / "selection.npy", sel.element_mask)
        if shape.is_mesh:
            share = float(shape.face_areas[sel.element_mask].sum() / max(shape.face_areas.sum(), 1e-300))
            write_colored_mesh(folder / "selection_colored.glb", shape, lab)
            write_named_nodes(folder / "selection.glb", shape, lab, ["rest", "selection"])
        else:
            share = float(sel.element_mask.mean())
            write_colored_points(folder / "selection_colored.ply", shape.vertices, lab)
        write_json(folder / "selection.json", {
            "scale": sel.scale, "element": "face" if shape.is_mesh else "point",
            "click": {"point": None if point is None else point.tolist(), "face": args.face},
            "mode": sel.mode, "snap_distance": sel.snap_distance,
            "part": sel.part if sel.mode == "parts" else None,
            "clicked_element": sel.element if sel.mode == "parts" else None,
            "saved_scale": bool(seg.parts is not None and seg.parts.saved_scale(sel.scale) is not None),
            "radius": sel.radius if sel.mode == "radius" else None,
            "connected": not args.anywhere if sel.mode == "radius" else None,
            "n_selected": int(sel.element_mask.sum()), "share": round(share, 6),
            "n_sampled_points_selected": int(sel.point_mask.sum()),
        })
        rows.append(lab)
        what = f"part {sel.part}" if sel.mode == "parts" else "radius query"
        titles.append(f"scale {s:g}: {what}, {100 * share:.1f}% selected (ring: the click)")
        if not args.quiet:
            print(f"scale {s:g}: {int(sel.element_mask.sum())} {'faces' if shape.is_mesh else 'points'} "
                  f"({100 * share:.1f}%) -> {folder}", file=sys.stderr)
    save_image(out / "selection.png", _sheet(shape, rows, titles, seg.bundle.transform.apply(_click_position(
        shape, point, args.face))))
    return 0


def _click_position(shape, point: np.ndarray | None, face: int | None) -> np.ndarray:
    """(3,) the click in input units: the given point, or the clicked face's centroid."""
    if point is not None:
        return np.asarray(point, dtype=np.float64)
    return np.asarray(shape.vertices)[np.asarray(shape.faces)[int(face)]].mean(axis=0)


def _sheet(shape, rows: list[np.ndarray], titles: list[str], click_unit: np.ndarray):
    """One row per scale: the object from 4 views, the selection highlighted, the rest grey, the click
    ringed (a thin ring where the object hides it), a title above."""
    from PIL import Image, ImageDraw

    from crossdistill.viz.highlight import composite_views, highlight_view, orbit_views

    views = orbit_views(shape, 4, 256)
    strips = [composite_views([_mark_click(highlight_view(views, r.astype(bool), v), views, v, click_unit)
                               for v in range(len(views))], views.foreground) for r in rows]
    title_h = 18
    h, w = strips[0].shape[:2]
    sheet = Image.new("RGB", (w, (h + title_h) * len(strips)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (strip, title) in enumerate(zip(strips, titles)):
        draw.text((4, i * (h + title_h) + 3), title, fill=(0, 0, 0))
        sheet.paste(Image.fromarray(strip), (0, i * (h + title_h) + title_h))
    return sheet


def _mark_click(image: np.ndarray, views, view: int, point_unit: np.ndarray, radius: int = 7) -> np.ndarray:
    """``image`` (H, W, 3) of view ``view`` with the click ``point_unit`` (3,) (unit box) ringed: a black and
    white ring where the view sees the clicked surface, a thin grey ring where the object hides it."""
    from PIL import Image, ImageDraw

    uv, z = views.cameras.project(np.asarray(point_unit, dtype=np.float64)[None])
    x, y = (float(c) for c in uv[view, 0])
    H, W = image.shape[:2]
    if z[view, 0] <= 0 or not (0 <= x < W and 0 <= y < H):
        return image
    seen = float(views.depth[view, int(y), int(x)])
    visible = np.isfinite(seen) and z[view, 0] <= seen + 0.02  # unit box: within 2% of the object's size
    im = Image.fromarray(image)
    draw = ImageDraw.Draw(im)
    box = (x - radius, y - radius, x + radius, y + radius)
    if visible:
        draw.ellipse(box, outline=(0, 0, 0), width=3)
        draw.ellipse((x - radius + 2, y - radius + 2, x + radius - 2, y + radius - 2), outline=(255, 255, 255), width=1)
        draw.ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5), fill=(0, 0, 0))
    else:
        draw.ellipse(box, outline=(90, 90, 90), width=1)
    return np.asarray(im)
