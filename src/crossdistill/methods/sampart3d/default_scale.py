"""The scale an object's parts are first shown at (viewer, API, ``segment.json``'s ``default_scale``).

SAMPart3D itself has no default scale: every scale is an answer. A user still needs one to open
with, and the same fixed scale does not suit every kind of object. The rule, by kind of shape
and mask teacher, is what held up under category-level cross-validation
(``docs/results/segment_single_surface.md``, default-scale rows: chosen on fold A, reported on
fold B):

* closed single surfaces with the geometric part teacher: the *concave-cut gate*. The minima
  rule says people cut a surface into parts along concave creases. A segmented scale *cuts
  parts* when at least :data:`CONCAVE_CUT_SHARE` of the length of its cuts (mesh edges between
  faces of different parts) lies on concave creases (links whose faces turn towards each other
  by more than :data:`CONCAVE_LINK_DEG`). Among the scales that cut parts, the one whose part
  count is closest to :data:`TARGET_PARTS` (ties: the finer scale); where none does (a
  near-convex shape whose finer scales only slice it), the coarsest with two parts or more.
  The candidates it was chosen among (fixed scales, part-count rules, the most stable
  partition, area-effective counts, gates at several counts) are listed in the report.
* everything else (meshes of pieces, point clouds, SAM masks): scale 1.0 when it was segmented,
  else the middle one; no candidate was measured there against it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from crossdistill.types import Shape

__all__ = ["TARGET_PARTS", "FIXED_DEFAULT", "CONCAVE_CUT_SHARE", "CONCAVE_LINK_DEG", "nearest_count_index",
           "concave_cut_shares", "concave_gated_index", "needs_concave_shares", "default_scale_index",
           "default_scale_of"]

#: part count the default scale aims at on closed single surfaces (geometric part teacher)
TARGET_PARTS = 8
#: the default scale where no rule was measured
FIXED_DEFAULT = 1.0
#: share of a scale's cut length that must lie on concave creases for the scale to count as cutting parts
CONCAVE_CUT_SHARE = 0.3
#: how far (degrees) two neighbouring faces must turn towards each other for their link to be a concave crease
CONCAVE_LINK_DEG = 1.0


def nearest_count_index(n_parts: Sequence[int], target: int, among: Sequence[int] | None = None) -> int:
    """Index of the part count closest to ``target`` (ties: the lower index, i.e. the finer scale),
    over ``among`` (indices into ``n_parts``; default: all)."""
    idx = range(len(n_parts)) if among is None else among
    return min(idx, key=lambda i: (abs(int(n_parts[i]) - target), i))


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
        shape: the mesh (F faces; any units: angles and length shares do not depend on them).
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
    pairs = np.asarray(mesh.face_adjacency, dtype=np.int64).reshape(-1, 2)
    edges = np.asarray(mesh.face_adjacency_edges, dtype=np.int64).reshape(-1, 2)
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


def needs_concave_shares(shape_kind: str, mask_kind: str) -> bool:
    """Does the rule of this kind of shape and mask look at the concave cut shares (and so the mesh)?"""
    return shape_kind == "closed_surface" and mask_kind == "geometric-parts"


def default_scale_index(scales: Sequence[float], n_parts: Sequence[int], shape_kind: str, mask_kind: str,
                        concave_shares: Sequence[float] | None = None) -> int:
    """Index into ``scales`` (ascending) of the scale to show first.

    Args:
        scales: the segmented scales, ascending.
        n_parts: part count at each of them (same length).
        shape_kind: :data:`crossdistill.methods.sampart3d.rules.SHAPE_KINDS` entry.
        mask_kind: the mask teacher's ``mask_kind``.
        concave_shares: (S,) :func:`concave_cut_shares` of the scales' face labels; needed where
            :func:`needs_concave_shares` (closed surfaces with geometric masks), ignored elsewhere.
    """
    if len(scales) != len(n_parts) or not scales:
        raise ValueError(f"need one part count per scale, got {len(n_parts)} for {len(scales)} scales")
    if needs_concave_shares(shape_kind, mask_kind):
        if concave_shares is None:
            raise ValueError("the default scale of a closed surface with geometric masks needs the concave cut "
                             "shares of its scales")
        return concave_gated_index(n_parts, concave_shares, TARGET_PARTS, CONCAVE_CUT_SHARE)
    for i, s in enumerate(scales):
        if abs(float(s) - FIXED_DEFAULT) < 1e-9:
            return i
    return len(scales) // 2


def default_scale_of(scales: Sequence[float], labels: Sequence[np.ndarray], shape_kind: str, mask_kind: str,
                     shape: Shape | None = None) -> float:
    """The scale to show first, given each scale's element labels ((E,) arrays of 0-based part ids:
    faces for meshes, points for point clouds) and, for closed surfaces with geometric masks, the
    mesh they label (``shape``, F = E faces in the labels' order)."""
    n_parts = [int(np.asarray(l).max()) + 1 for l in labels]
    shares = None
    if needs_concave_shares(shape_kind, mask_kind):
        if shape is None or not shape.is_mesh:
            raise ValueError("the default scale of a closed surface with geometric masks needs its mesh")
        shares = concave_cut_shares(labels, shape)
    return float(scales[default_scale_index(scales, n_parts, shape_kind, mask_kind, shares)])
