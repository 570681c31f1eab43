"""Ablation of the flagship's stage 3 (clustering and voting) on held-out objects.

The two stage-3 choices of ``crossdistill segment`` that go beyond the paper are
measured here on objects the main benchmark (``bench/segment.py``) does not use: the
ids after the first 4 of each category of ../shared/data/partnet_mobility_dev
(``--per-category`` of them), so that the choices are not judged on the objects they
were probed on.

* ``join``: clusters whose mean grouping features lie closer than the push margin of
  Eq. 5 are joined (:func:`crossdistill.methods.sampart3d.cluster.merge_close_clusters`);
* ``pieces`` (mesh track): a part stays inside one connected mesh piece
  (:func:`crossdistill.methods.sampart3d.vote.split_at_pieces`; by default not at the
  coarsest scale, 2.0, where parts may span pieces as published: ``pieces_until``),
  and parts below a share of their piece fold into it (``piece_fragment``; a smaller share, ``dominant_fragment``,
  in a piece that is most of the object, ``dominant_piece``, unless a 2D mask confirms
  the part: ``fragment_support``, :mod:`crossdistill.methods.sampart3d.support`).

The names are fields of :class:`crossdistill.methods.sampart3d.rules.PartRules`; every
variant is the offline render-cue teacher's rules (``RENDER_CUE_RULES``, which these
measurements chose) with some fields changed. Face spill-over (``face_spill``) stays on in
every mesh variant, the paper's row included, as in the committed report.

Per object the grouping field is trained once (default settings, the render-cue teacher)
and its features at the paper's five scales are clustered with each variant; scores are
best-of-scales class-agnostic mIoU x100, as in ``docs/results/segment.md``. Connected
components (mesh) and normal region growing (points, best of 5 angles) are the geometry
references.

    python bench/segment_clustering.py      # writes docs/results/segment_clustering.md/.json
    python bench/segment_clustering.py --per-category 4   # 23 held-out objects (Suitcase has 3)
    python bench/segment_clustering.py --per-category 1 --limit 1 --tracks mesh --n-points 1500 \
        --n-views 6 --image-size 64 --iterations 10 --threads 1 --out /tmp/sc   # smoke run, seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DATA = REPO / ".." / "shared" / "data"
OUT = REPO / "docs" / "results" / "segment_clustering"

DEFAULT_JOIN = (None, None, 1.0, 1.0, 1.0)  # the default: join at scales >= 1.0
KEEP_PIECES = {"pieces_until": None}  # parts inside pieces at every scale (the default before 2026-11-24 08:10)
PLAIN = {**KEEP_PIECES, "dominant_piece": None}  # one fragment share for every piece (the default before 2026-11-24)
NO_SUPPORT = {**KEEP_PIECES, "fragment_support": None}  # fragments folded whatever the 2D masks say (before 07:00)
MESH_VARIANTS = {  # name -> (join share of the margin: None, a number or one per scale; keep parts inside pieces;
    #                  PartRules overrides of RENDER_CUE_RULES, plus "fragments": one piece_fragment share per scale)
    "HDBSCAN + vote (paper)": (None, False, {}),
    "+ join 1.0 m": (1.0, False, {}),
    "+ pieces": (None, True, PLAIN),
    "+ join 0.5 m + pieces": (0.5, True, PLAIN),
    "+ join 1.0 m + pieces": (1.0, True, PLAIN),
    "+ join 1.0 m at scales >= 1.0 + pieces": (DEFAULT_JOIN, True, PLAIN),
    "+ join 0 / 0.5 / 1.0 / 1.0 / 1.5 m by scale + pieces": ((None, 0.5, 1.0, 1.0, 1.5), True, PLAIN),
    "join at >= 1.0 + pieces, fragments kept at scales 0 and 0.5": (
        DEFAULT_JOIN, True, {**PLAIN, "fragments": (0.0, 0.0, 0.2, 0.2, 0.2)}),
    "join at >= 1.0 + pieces, fragments kept at scale 0": (
        DEFAULT_JOIN, True, {**PLAIN, "fragments": (0.0, 0.2, 0.2, 0.2, 0.2)}),
    "join at >= 1.0 + pieces, fragment 0.1 in pieces >= 0.8 of the area": (DEFAULT_JOIN, True, NO_SUPPORT),
    "... fragment 0.05 in pieces >= 0.8": (DEFAULT_JOIN, True, {**NO_SUPPORT, "dominant_fragment": 0.05}),
    "... fragment 0.1 in pieces >= 0.9": (DEFAULT_JOIN, True, {**NO_SUPPORT, "dominant_piece": 0.9}),
    "... fragment 0.1 in pieces >= 0.5": (DEFAULT_JOIN, True, {**NO_SUPPORT, "dominant_piece": 0.5}),
    "... fragment 0.05 in pieces >= 0.5": (DEFAULT_JOIN, True, {**NO_SUPPORT, "dominant_piece": 0.5,
                                                                 "dominant_fragment": 0.05}),
    "... fragment 0.1 in pieces >= 0.8, unless a 2D mask confirms it (IoU >= 0.3)": (DEFAULT_JOIN, True, KEEP_PIECES),
    "... unless a 2D mask confirms it at IoU >= 0.5": (DEFAULT_JOIN, True, {**KEEP_PIECES, "fragment_support": 0.5}),
    "default: ... confirmed at IoU >= 0.3, parts may span pieces at scale 2.0": (DEFAULT_JOIN, True, {}),
    "... parts may span pieces at scales >= 1.5": (DEFAULT_JOIN, True, {"pieces_until": 1.5}),
    "default, fragments fold into the most similar part of their piece": (
        DEFAULT_JOIN, True, {"fragment_fold": "similar"}),
}
POINT_VARIANTS = {  # name -> (join share as for meshes; normal regions: None | ("vote" | "split", angle))
    "HDBSCAN (paper)": (None, None),
    "+ join 0.5 m": (0.5, None),
    "+ join 1.0 m": (1.0, None),
    "+ join 1.5 m": (1.5, None),
    "+ join 0 / 0.5 / 1.0 / 1.0 / 1.5 m by scale": ((None, 0.5, 1.0, 1.0, 1.5), None),
    "+ join 0.5 / 0.5 / 1.0 / 1.5 / 2.0 m by scale": ((0.5, 0.5, 1.0, 1.5, 2.0), None),
    "+ join 1.0 m at scales >= 1.0": ((None, None, 1.0, 1.0, 1.0), None),
    "+ join 1.0 m + vote in 10° regions": (1.0, ("vote", 10.0)),
    "+ join 1.0 m + vote in 20° regions": (1.0, ("vote", 20.0)),
    "+ join 1.0 m + split at 30° regions": (1.0, ("split", 30.0)),
    "+ join 1.0 m + split at 45° regions": (1.0, ("split", 45.0)),
    "+ join 1.0 m + split at 60° regions": (1.0, ("split", 60.0)),
}


def held_out(per_category: int, data: Path = DATA) -> list[tuple[str, str]]:
    """(category, id) after the main benchmark's first 4 ids of each category."""
    root = data / "partnet_mobility_dev"
    out = []
    for cat in sorted(p.name for p in root.iterdir() if p.is_dir()):
        ids = sorted((p.stem for p in (root / cat).glob("*.glb")), key=lambda s: (len(s), s))
        out += [(cat, i) for i in ids[4:4 + per_category]]
    return out


def field_config(n_points: int | None = None, n_views: int | None = None, image_size: int | None = None,
                 iterations: int | None = None):
    """The settings every field here is trained with: the default ``SegmentConfig`` with the
    render-cue teacher's rules (:data:`RENDER_CUE_RULES`); the arguments (None: the default)
    shrink it for smoke runs."""
    from crossdistill.methods.sampart3d.pipeline import SegmentConfig
    from crossdistill.methods.sampart3d.rules import RENDER_CUE_RULES

    cfg = SegmentConfig(rules=RENDER_CUE_RULES)
    given = {"n_points": n_points, "n_views": n_views, "image_size": image_size}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in given.items() if v is not None})
    if iterations is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, iterations=iterations))
    return cfg


def _teacher():
    """The offline render-cue mask teacher on every kind of shape (the teacher these rules are measured for)."""
    from crossdistill.teachers.geometric_parts import OfflineTeacher

    return OfflineTeacher(single_surface="render", multi_piece="render", point_cloud="render")


def _cache_name(cat: str, oid: str, cfg) -> str:
    """Cache file of one object's features; settings other than the defaults get their own name."""
    def settings(c) -> tuple:
        return ("p", c.n_points), ("v", c.n_views), ("s", c.image_size), ("i", c.train.iterations)

    tag = "".join(f"_{k}{v}" for (k, v), default in zip(settings(cfg), settings(field_config())) if v != default[1])
    return f"{cat}_{oid}{tag}.npz"


def run_object(track: str, cat: str, oid: str, cache: Path, data: Path = DATA, cfg=None, backbone=None,
               mesh_variants: dict | None = None) -> dict:
    """Scores of every variant (best of the 5 scales) and of the geometry reference for one object.

    Args:
        track: "mesh" or "points"; cat, oid: the object; cache: folder of trained features.
        data: the shared data folder; cfg: the field's settings (default :func:`field_config`).
        backbone: a pretrained point backbone feeding the field's F_B branch (None: positional encoding).
        mesh_variants: the mesh variants to score (default :data:`MESH_VARIANTS`).

    Returns:
        {"name", "category", variant name -> {"link", "leaf"} (x100), reference name -> {...}}.
    """
    from crossdistill.eval.baselines import connected_component_labels, region_growing
    from crossdistill.eval.segment_protocol import REGION_GROW_ANGLES, _normals, score_levels
    from crossdistill.eval.segment_report import load_labelled
    from crossdistill.geometry.normalize import normalize_shape
    from crossdistill.geometry.sampling import farthest_point_sampling
    from crossdistill.geometry.topology import face_components
    from crossdistill.methods.sampart3d.pipeline import mesh_face_labels, propagate_to_inputs
    from crossdistill.methods.sampart3d.vote import majority_per_group, split_at_pieces

    cfg = cfg if cfg is not None else field_config()
    base = cfg.rules
    obj = load_labelled(data, track, cat, oid)
    samples, feats = _trained_features(obj, cfg, cache / track / _cache_name(cat, oid, cfg), backbone)
    sub = farthest_point_sampling(samples.points, min(cfg.cluster.max_points, len(samples.points)), seed=cfg.seed)
    shape = obj.shape
    row: dict = {"name": obj.name, "category": cat}
    clustered: dict = {}  # join setting -> point labels per scale (variants share HDBSCAN runs)

    def labels_per_scale(join) -> list[np.ndarray]:
        if join not in clustered:
            clustered[join] = list(_clustered(feats, join, samples.points, sub, cfg))
        return clustered[join]

    if shape.is_mesh:
        unit, _ = normalize_shape(shape)
        comps = face_components(unit.vertices, unit.faces)
        cents, w = unit.triangles.mean(1), shape.face_areas
        evidence = _mask_evidence(unit, comps, samples.points, cfg)
        variants = MESH_VARIANTS if mesh_variants is None else mesh_variants
        for name, (join, pieces, overrides) in variants.items():
            overrides = dict(overrides)
            shares = overrides.pop("fragments", (base.piece_fragment,) * len(feats))
            rules = dataclasses.replace(base, pieces=pieces, **overrides)
            row[name] = _best([score_levels(mesh_face_labels(
                pl, samples.face_id, cents, comps, w, dataclasses.replace(rules, piece_fragment=share), s, evidence,
                f), obj.labels, w) for s, pl, share, f in zip(cfg.scales, labels_per_scale(join), shares, feats)])
        row["connected components"] = _best([score_levels(connected_component_labels(shape), obj.labels, w)])
    else:
        inputs = normalize_shape(shape)[0].vertices
        nrm = _normals(shape)
        regions = {}
        for name, (join, reg) in POINT_VARIANTS.items():
            if reg is not None and reg[1] not in regions:
                regions[reg[1]] = region_growing(shape.vertices, nrm, reg[1])
            per_scale = []
            for pl in labels_per_scale(join):
                il = propagate_to_inputs(pl, samples.points, inputs)
                if reg is not None and reg[0] == "vote":
                    win, _ = majority_per_group(regions[reg[1]], il, int(regions[reg[1]].max()) + 1)
                    il = win[regions[reg[1]]]
                elif reg is not None:
                    il = split_at_pieces(il, regions[reg[1]], None, base.piece_fragment)
                per_scale.append(score_levels(il, obj.labels, None))
            row[name] = _best(per_scale)
        row["region growing"] = _best([score_levels(region_growing(shape.vertices, nrm, a), obj.labels, None)
                                       for a in REGION_GROW_ANGLES])
    return row


def _mask_evidence(unit, comps: np.ndarray, points: np.ndarray, cfg):
    """The 2D masks of the object as 3D point sets (re-rendered: same seed, views, teacher and masks as training)."""
    from crossdistill.geometry.sampling import sample_surface
    from crossdistill.methods.sampart3d.supervision import build_supervision
    from crossdistill.methods.sampart3d.support import MaskPointSets
    from crossdistill.render import render_shape
    from crossdistill.render.cameras import sampart3d_rig

    samples = sample_surface(unit, cfg.n_points, seed=cfg.seed)
    if not np.array_equal(samples.points, points):
        raise RuntimeError("cached points differ from today's sampling: rerun with --fresh")
    rendered = render_shape(unit, sampart3d_rig(cfg.n_views, cfg.image_size, seed=cfg.seed), samples, progress=False)
    masks = _teacher().for_shape(unit, comps).masks(rendered.views)
    sc = cfg.supervision
    sup = build_supervision(masks, rendered.correspondence, samples.points, min_pixels=sc.min_pixels,
                            max_scale=sc.max_scale, erode=sc.erode)
    return MaskPointSets.from_supervision(sup, len(samples.points))


def _clustered(feats: list, join, points: np.ndarray, sub: np.ndarray, cfg):
    """Point labels at each scale; ``join``: the share of the margin to join below (None: no join), or one per
    scale. HDBSCAN's epsilon is the rules' (``hdbscan_epsilon``) where they set one, as in the pipeline."""
    from crossdistill.methods.sampart3d.cluster import cluster_points

    eps = cfg.rules.hdbscan_epsilon
    cluster = cfg.cluster if eps is None else dataclasses.replace(cfg.cluster, epsilon=eps)
    joins = join if isinstance(join, tuple) else (join,) * len(feats)
    for f, j in zip(feats, joins):
        yield cluster_points(f, points, cluster, subsample=sub, margin=cfg.train.margin, join=j)


def _trained_features(obj, cfg, path: Path, backbone=None):
    """Sampled points and grouping features at the 5 scales, trained once per object and cached.

    The cache (an .npz under bench/_cache/segment_clustering/) lets new stage-3 variants be
    measured without retraining; delete it (or pass --fresh) after changing stages 1-2.
    """
    from types import SimpleNamespace

    from crossdistill.io_utils import atomic_write
    from crossdistill.methods.sampart3d.pipeline import segment_shape

    if path.exists():
        z = np.load(path)
        return SimpleNamespace(points=z["points"], face_id=z["face_id"]), list(z["feats"])
    seg = segment_shape(obj.shape, cfg, mask_teacher=_teacher(), backbone=backbone, progress=False)
    samples = seg.render.samples
    feats = [seg.field.features(s, cfg.scale_unit) for s in seg.scales]
    face_id = samples.face_id if samples.face_id is not None else np.zeros(0, np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, points=samples.points, face_id=face_id, feats=np.stack(feats))
    return samples, feats


def _best(per_scale: list[dict]) -> dict:
    return {lvl: 100.0 * max(s[lvl] for s in per_scale) for lvl in per_scale[0]}


def add_field_options(ap: argparse.ArgumentParser) -> None:
    """Options that shrink the trained fields (smoke runs); the defaults are SegmentConfig's."""
    ap.add_argument("--n-points", type=int, default=None, help="surface points per object (default: SegmentConfig's)")
    ap.add_argument("--n-views", type=int, default=None, help="rendered views (default: SegmentConfig's)")
    ap.add_argument("--image-size", type=int, default=None, help="render size in px (default: SegmentConfig's)")
    ap.add_argument("--iterations", type=int, default=None, help="field training steps (default: SegmentConfig's)")


def machine_line(threads: int) -> str:
    """Date, machine, torch threads and the load at the end, for a report."""
    import os
    import platform

    import torch

    return (f"Date: {time.strftime('%Y-%m-%d %H:%M')}; machine: {platform.processor() or platform.machine()}, "
            f"nproc {len(os.sched_getaffinity(0))}, torch {torch.__version__}, {threads} torch threads; "
            f"1-minute load average at the end {os.getloadavg()[0]:.1f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-category", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="only the first N held-out objects (smoke runs)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--data", default=str(DATA), help="the shared data folder")
    ap.add_argument("--cache", default=str(REPO / "bench" / "_cache" / "segment_clustering"),
                    help="trained features per object (reused by later runs)")
    ap.add_argument("--out", default=str(OUT), help="report path without suffix (.md and .json are written)")
    ap.add_argument("--fresh", action="store_true", help="retrain even where cached features exist")
    ap.add_argument("--tracks", nargs="+", default=["mesh", "points"], choices=["mesh", "points"])
    ap.add_argument("--connect", default=None, choices=["vertex", "edge"],
                    help="what joins faces into a mesh piece, everywhere in the run (default: the library's, "
                         "crossdistill.geometry.topology.PIECE_CONNECT); fields of another setting are cached apart")
    add_field_options(ap)
    args = ap.parse_args(argv)
    from crossdistill.geometry import topology

    if args.connect is not None:
        topology.PIECE_CONNECT = args.connect
    data = Path(args.data)
    if not (data / "partnet_mobility_dev").is_dir():
        sys.exit(f"skipped: {data / 'partnet_mobility_dev'} not found (the shared data is needed)")
    import torch

    from crossdistill.io_utils import write_json, write_text

    torch.set_num_threads(args.threads)
    cfg = field_config(args.n_points, args.n_views, args.image_size, args.iterations)
    objects = held_out(args.per_category, data)[: args.limit]
    cache = Path(args.cache)
    if topology.PIECE_CONNECT != "vertex":
        cache = cache / f"connect_{topology.PIECE_CONNECT}"
    if args.fresh and cache.exists():
        import shutil

        shutil.rmtree(cache)
    t0 = time.perf_counter()
    rows = {"mesh": [], "points": []}
    for track in args.tracks:
        for cat, oid in objects:
            rows[track].append(run_object(track, cat, oid, cache, data, cfg))
            r = rows[track][-1]
            print(track, r["name"], {k: round(v["link"], 1) for k, v in r.items() if isinstance(v, dict)}, flush=True)
    shrunk = cfg != field_config()
    command = argv if argv is not None else sys.argv[1:]
    lines = ["# Stage-3 ablation of `crossdistill segment` on held-out objects", "",
             f"Command: `{' '.join(['python bench/segment_clustering.py', *command])}`  ",
             machine_line(args.threads) + "  ",
             f"Objects: {len(objects)} (ids after the first 4 of each category with more than 4; none of them is in "
             "`segment.md`'s subset). Best of the paper's 5 scales, class-agnostic mIoU x100, mean over objects; "
             f"wall {time.perf_counter() - t0:.0f} s. Mesh pieces: faces joined through a shared "
             f"{topology.PIECE_CONNECT} (`PIECE_CONNECT`).", ""]
    if shrunk:
        lines += [f"Fields trained with SMOKE settings ({cfg.n_points} points, {cfg.n_views} views of "
                  f"{cfg.image_size} px, {cfg.train.iterations} steps), not the defaults: not comparable to the "
                  "committed report.", ""]
    summary = {}
    for track, variants in (("mesh", [*MESH_VARIANTS, "connected components"]),
                            ("points", [*POINT_VARIANTS, "region growing"])):
        if not rows[track]:
            continue
        lines += [f"## {track} track", "", "| stage 3 | link | leaf |", "|---|---|---|"]
        summary[track] = {}
        for v in variants:
            link = float(np.mean([r[v]["link"] for r in rows[track]]))
            leaf = float(np.mean([r[v]["leaf"] for r in rows[track]]))
            summary[track][v] = {"link": link, "leaf": leaf}
            lines.append(f"| {v} | {link:.1f} | {leaf:.1f} |")
        lines.append("")
    out = Path(args.out)
    write_text(out.with_suffix(".md"), "\n".join(lines))
    write_json(out.with_suffix(".json"), {"summary": summary, "objects": rows, "args": vars(args)})
    print("\n".join(lines))


if __name__ == "__main__":
    main()
