"""Why the point track trails the mesh track: the point cloud has no pieces. No learning.

For the 41 objects of the flagship's benchmark subset (``bench/segment.py``), on the point
track (the 15k-point PLYs of ../shared/data/partnet_mobility_dev_points, per-point
class-agnostic mIoU, the metric of ``segment.md``):

* ``mesh pieces carried to the points``: every point takes the connected piece (welded
  vertices) of the face it was sampled from (``face_id`` in the labels file). The mesh
  track's strongest cue, which the point track does not have; an upper reference;
* ``radius-graph components at c x spacing``: connected components of the graph joining
  points closer than c times the median nearest-neighbour distance, for c in 2, 3, 4:
  what spatial gaps between pieces recover from the points alone.

    python bench/segment_point_pieces.py      # writes docs/results/segment_point_pieces.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DATA = REPO / ".." / "shared" / "data"
RADII = (2.0, 3.0, 4.0)


def radius_components(points: np.ndarray, factor: float) -> np.ndarray:
    """(N,) component of every point in the graph of pairs closer than ``factor`` x median NN distance."""
    tree = cKDTree(points)
    spacing = float(np.median(tree.query(points, k=2)[0][:, 1]))
    pairs = tree.query_pairs(factor * spacing, output_type="ndarray")
    n = len(points)
    graph = sp.coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _segment_reference() -> str:
    """The matching figures of the committed ``segment.json``, read, not copied."""
    path = REPO / "docs" / "results" / "segment.json"
    if not path.is_file():
        return "(`segment.json` not found: run `bench/segment.py` for the reference figures.)"
    import json

    summary = json.loads(path.read_text())["summary"]

    def pair(track: str, method: str) -> str:
        m = summary[track]["methods"][method]
        return f"{100 * m['link']:.1f} / {100 * m['leaf']:.1f}"

    return (f"For reference, `segment.json` scores normal region growing (best of 5 angles) at "
            f"{pair('points', 'region_grow')} and our method at {pair('points', 'ours')} on these point clouds, "
            f"and connected components at {pair('mesh', 'cc')} on the meshes (per face, area-weighted).")


def main() -> None:
    if not (DATA / "partnet_mobility_dev_points").is_dir():
        sys.exit("skipped: ../shared/data/partnet_mobility_dev_points not found (the shared data is needed)")
    from crossdistill.eval.baselines import connected_component_labels
    from crossdistill.eval.metrics import class_agnostic_miou
    from crossdistill.eval.segment_report import LEVELS, load_labelled, select_objects
    from crossdistill.io_utils import write_text

    methods = ["mesh_pieces"] + [f"radius_{c:g}" for c in RADII]
    rows = []
    for cat, oid in select_objects(DATA, 4):
        pts = load_labelled(DATA, "points", cat, oid)
        mesh = load_labelled(DATA, "mesh", cat, oid)
        face_id = np.load(DATA / "partnet_mobility_dev_points" / cat / f"{oid}.labels.npz")["face_id"]
        xyz = np.asarray(pts.shape.vertices, dtype=np.float64)
        preds = {"mesh_pieces": connected_component_labels(mesh.shape)[face_id]}
        for c in RADII:
            preds[f"radius_{c:g}"] = radius_components(xyz, c)
        row = {"category": cat, "id": oid}
        for name, lab in preds.items():
            row[f"{name}_n"] = int(len(np.unique(lab)))
            for lvl in LEVELS:
                row[f"{name}_{lvl}"] = 100 * class_agnostic_miou(pts.labels[lvl], lab)
        rows.append(row)
        print(cat, oid, {k: round(v, 1) if isinstance(v, float) else v for k, v in row.items()}, flush=True)

    def mean(key: str) -> float:
        return float(np.mean([r[key] for r in rows]))

    ref = _segment_reference()

    label = {"mesh_pieces": "mesh pieces carried to the points (not available on this track)"}
    label.update({f"radius_{c:g}": f"radius-graph components, {c:g} x spacing" for c in RADII})
    lines = ["# Point track: what the points lack against the mesh", "",
             "Command: `python bench/segment_point_pieces.py` (no learning, deterministic)", "",
             f"Objects: the {len(rows)} point clouds of `segment.md` (first 4 ids per category, 15k points each). "
             "Class-agnostic mIoU x100 per point, as in `segment.md`. " + ref, "",
             "| labels | link | leaf | parts (median) |", "|---|---:|---:|---:|"]
    for m in methods:
        lines.append(f"| {label[m]} | {mean(m + '_link'):.1f} | {mean(m + '_leaf'):.1f} | "
                     f"{int(np.median([r[m + '_n'] for r in rows]))} |")
    lines += ["", "The mesh's pieces, carried to the same points, score about as well as on the mesh itself: "
              "the mesh track's lead is the pieces. The points do not give them back: pieces of these assets touch "
              "or interpenetrate, so any radius that keeps a piece's own samples connected also joins it to its "
              "neighbours (one component per object from 4 x spacing), and smaller radii break every piece into "
              "sampling-noise fragments.", "", "## Per object", "",
              "| object | " + " | ".join(f"{m} link / leaf" for m in methods) + " |",
              "|---|" + "---:|" * len(methods)]
    for r in rows:
        cells = " | ".join(f"{r[m + '_link']:.1f} / {r[m + '_leaf']:.1f}" for m in methods)
        lines.append(f"| {r['category']}/{r['id']} | {cells} |")
    write_text(REPO / "docs" / "results" / "segment_point_pieces.md", "\n".join(lines) + "\n")
    print("wrote docs/results/segment_point_pieces.md")


if __name__ == "__main__":
    main()
