"""Default-scale candidates measured by ``bench/segment_single_surface_report.py`` beyond the shipped
rule (``crossdistill.methods.sampart3d.default_scale``): the concave-cut gate.

The minima rule says people cut a surface into parts along concave creases. A scale *cuts
parts* when at least :data:`CONCAVE_CUT_SHARE` of the length of its cuts (mesh edges between
faces of different parts) lies on concave creases (links whose faces turn towards each other by
more than :data:`CONCAVE_LINK_DEG`). The gate takes, among the scales that cut parts, the one
whose part count is closest to the target; where no scale does (a near-convex shape: its finer
scales only slice it), the coarsest with two parts or more. Measured, not shipped: see the
report's default-scale line for why.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from crossdistill.methods.sampart3d.default_scale import TARGET_PARTS, nearest_count_index
from crossdistill.types import Shape

#: share of a scale's cut length that must lie on concave creases for the scale to count as cutting parts
CONCAVE_CUT_SHARE = 0.1
#: how far (degrees) two neighbouring faces must turn towards each other for their link to be a concave crease
CONCAVE_LINK_DEG = 1.0


def concave_gated_index(n_parts: Sequence[int], concave_shares: Sequence[float], target: int = TARGET_PARTS,
                        min_share: float = CONCAVE_CUT_SHARE) -> int:
    """Among the scales with two parts or more whose cuts lie on concave creases for at least
    ``min_share`` of their length, the one with the part count closest to ``target``; where none
    does, the coarsest with two parts or more (one part everywhere: the count rule).

    Args:
        n_parts: (S,) part counts, finest scale first; concave_shares: (S,) :func:`concave_cut_shares`.
    """
    if len(concave_shares) != len(n_parts):
        raise ValueError(f"need one concave share per scale, got {len(concave_shares)} for {len(n_parts)}")
    multi = [i for i, n in enumerate(n_parts) if int(n) >= 2]
    cutting = [i for i in multi if float(concave_shares[i]) >= min_share]
    if cutting:
        return nearest_count_index(n_parts, target, cutting)
    return max(multi) if multi else nearest_count_index(n_parts, target)


def concave_cut_shares(labels: Sequence[np.ndarray], shape: Shape, link_deg: float = CONCAVE_LINK_DEG) -> np.ndarray:
    """(S,) share of each scale's cut length that lies on concave creases.

    Args:
        labels: S arrays of (F,) 0-based part ids of the mesh's faces, one per scale.
        shape: the mesh (F faces).
        link_deg: the turn (degrees) from which a concave link counts as a crease.

    Returns:
        (S,) float64 in [0, 1]: over the links between neighbouring faces of different parts,
        the edge-length-weighted share that is concave and turns more than ``link_deg``; 0 for
        a scale without cuts.
    """
    import trimesh

    if not shape.is_mesh:
        raise ValueError("concave cut shares need a mesh")
    mesh = trimesh.Trimesh(shape.vertices, shape.faces, process=False)
    pairs = np.asarray(mesh.face_adjacency, dtype=np.int64)
    edges = np.asarray(mesh.face_adjacency_edges, dtype=np.int64)
    length = np.linalg.norm(mesh.vertices[edges[:, 0]] - mesh.vertices[edges[:, 1]], axis=1)
    crease = ~np.asarray(mesh.face_adjacency_convex, dtype=bool) & (mesh.face_adjacency_angles > np.radians(link_deg))
    out = np.zeros(len(labels))
    for s, lab in enumerate(labels):
        lab = np.asarray(lab)
        if len(lab) != shape.n_faces:
            raise ValueError(f"scale {s}: {len(lab)} labels for {shape.n_faces} faces")
        cut = lab[pairs[:, 0]] != lab[pairs[:, 1]]
        total = float(length[cut].sum())
        out[s] = float(length[cut & crease].sum()) / total if total > 0 else 0.0
    return out
