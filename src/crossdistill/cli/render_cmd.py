"""`crossdistill render` and `crossdistill info`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from crossdistill.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("render", help="render views with face ids, depth, normals and pixel<->point correspondence",
                       description="Render a shape from a camera rig (6 axis + random views, as SAMPart3D) and "
                                   "write per-view PNGs and the correspondence as NPZ.")
    r.add_argument("input", nargs="?", help="mesh or point-cloud file")
    r.add_argument("-o", "--output", required=True, help="output folder")
    r.add_argument("--demo", action="store_true", help="render the built-in demo robot")
    r.add_argument("--views", type=int, default=36, help="views: the 6 axis views, then random ones (default 36)")
    r.add_argument("--size", type=int, default=512, help="image side in pixels (default 512)")
    r.add_argument("--points", type=int, default=15000, help="sampled points for the correspondence")
    r.add_argument("--seed", type=int, default=0, help="seed of the random views and sampled points (default 0)")
    r.add_argument("--backend", default="auto", help="auto | embree | open3d | torch")
    r.add_argument("--device", default="cpu", help="torch device (the torch backend)")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(func=run_render)

    i = sub.add_parser("info", help="print what was loaded from a mesh or point-cloud file")
    i.add_argument("input", help="mesh or point-cloud file")
    i.set_defaults(func=run_info)


def _load(args: argparse.Namespace):
    from crossdistill.geometry.demo import demo_shape
    from crossdistill.geometry.io import load_shape

    if getattr(args, "demo", False):
        return demo_shape()
    if not args.input:
        raise InputError("give an INPUT file, or --demo")
    return load_shape(args.input)


def describe(shape) -> list[str]:
    """Human-readable lines describing a loaded shape."""
    lo, hi = shape.bounds
    lines = [f"source:   {shape.source or '(built in code)'}",
             f"kind:     {'triangle mesh' if shape.is_mesh else 'point cloud'}",
             f"vertices: {shape.n_vertices}" + ("" if shape.is_mesh else " (points)")]
    if shape.is_mesh:
        areas = shape.face_areas
        lines += [f"faces:    {shape.n_faces} (total area {areas.sum():.6g}, {int((areas <= 0).sum())} zero-area)"]
        from crossdistill.geometry.topology import face_components

        lines += [f"pieces:   {int(face_components(shape.vertices, shape.faces).max()) + 1} connected components"]
    lines += [f"bounds:   min {np.round(lo, 6).tolist()} max {np.round(hi, 6).tolist()}",
              f"colours:  {'per face' if shape.face_colors is not None else ''}"
              f"{' per vertex' if shape.vertex_colors is not None else ''}".rstrip() or "colours:  none",
              f"normals:  {'given' if shape.vertex_normals is not None else 'computed when needed'}"]
    if shape.node_names:
        lines.append(f"nodes:    {len(shape.node_names)}: {', '.join(shape.node_names[:8])}"
                     + (" ..." if len(shape.node_names) > 8 else ""))
    return lines


def run_info(args: argparse.Namespace) -> int:
    print("\n".join(describe(_load(args))))
    return 0


def run_render(args: argparse.Namespace) -> int:
    from crossdistill.geometry.normalize import normalize_shape
    from crossdistill.geometry.sampling import sample_surface
    from crossdistill.io_utils import save_image, save_npz, write_json
    from crossdistill.render import render_shape
    from crossdistill.render.cameras import sampart3d_rig
    from crossdistill.viz.palette import colorize_labels, depth_to_rgb, normals_to_rgb

    if args.views < 1 or args.size < 16 or args.points < 1:
        raise InputError("--views must be >= 1, --size >= 16 and --points >= 1")
    shape = _load(args)
    unit, transform = normalize_shape(shape)
    t0 = time.perf_counter()
    samples = sample_surface(unit, args.points, seed=args.seed)
    cams = sampart3d_rig(args.views, args.size, seed=args.seed)
    result = render_shape(unit, cams, samples, backend=args.backend, device=args.device, progress=not args.quiet)
    seconds = time.perf_counter() - t0
    out = Path(args.output)
    views, corr = result.views, result.correspondence
    for v in range(len(views)):
        fg = views.face_id[v] >= 0
        save_image(out / "views" / f"{v:03d}_rgb.png", views.rgb[v])
        save_image(out / "views" / f"{v:03d}_face_id.png", colorize_labels(views.face_id[v]))
        save_image(out / "views" / f"{v:03d}_normal.png", normals_to_rgb(views.normal[v], fg))
        save_image(out / "views" / f"{v:03d}_depth.png", depth_to_rgb(views.depth[v]))
    save_npz(out / "correspondence.npz", {
        "pix_to_point": corr.pix_to_point, "point_to_pix": corr.point_to_pix, "point_depth": corr.point_depth,
        "face_id": views.face_id, "depth": views.depth,
        "points_unit": samples.points.astype(np.float32), "points": transform.invert(samples.points).astype(np.float32),
        "point_face": samples.face_id, "K": cams.K, "world_to_cam": cams.world_to_cam,
    })
    write_json(out / "render.json", {
        "input": shape.source or "demo", "views": len(cams), "size": args.size, "points": len(samples),
        "seed": args.seed, "backend": args.backend, "seconds": round(seconds, 3),
        "camera_names": list(cams.names), "unit_box": {"center": transform.center.tolist(), "scale": transform.scale},
        "note": "points_unit / cameras are in the unit box; points are in the input's units",
    })
    if not args.quiet:
        vis = corr.visible.mean()
        print(f"rendered {len(cams)} views of {args.size}x{args.size} in {seconds:.2f} s; "
              f"{vis:.0%} of point-view pairs visible; wrote {out}", file=sys.stderr)
    return 0
