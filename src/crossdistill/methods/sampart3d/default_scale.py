"""The scale an object's parts are first shown at (viewer, API, ``segment.json``'s ``default_scale``).

SAMPart3D itself has no default scale: every scale is an answer. A user still needs one to open
with, and the same fixed scale does not suit every kind of object. The rule, by kind of shape
and mask teacher, is what held up under category-level cross-validation
(``docs/results/segment_single_surface.md``, default-scale rows: chosen on fold A, reported on
fold B):

* closed single surfaces with the geometric part teacher: the segmented scale whose part count
  is closest to :data:`TARGET_PARTS` (ties go to the finer scale). Candidates were each fixed
  scale, "closest to K parts", "coarsest with at least K parts", the most stable partition
  between neighbouring scales, the effective (area) part count closest to K and a concave-cut
  gate (``bench/default_scale_candidates.py``), ranked by the mean of mIoU and Rand index on
  fold A; a candidate that beat this rule on fold A but changed nothing on fold B was not
  adopted (a rule that helps only where it was chosen is not a default).
* everything else (meshes of pieces, point clouds, SAM masks): scale 1.0 when it was segmented,
  else the middle one; no candidate was measured there against it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["TARGET_PARTS", "FIXED_DEFAULT", "nearest_count_index", "default_scale_index", "default_scale_of"]

#: part count the default scale aims at on closed single surfaces (geometric part teacher)
TARGET_PARTS = 10
#: the default scale where no rule was measured
FIXED_DEFAULT = 1.0


def nearest_count_index(n_parts: Sequence[int], target: int, among: Sequence[int] | None = None) -> int:
    """Index of the part count closest to ``target`` (ties: the lower index, i.e. the finer scale),
    over ``among`` (indices into ``n_parts``; default: all)."""
    idx = range(len(n_parts)) if among is None else among
    return min(idx, key=lambda i: (abs(int(n_parts[i]) - target), i))


def default_scale_index(scales: Sequence[float], n_parts: Sequence[int], shape_kind: str, mask_kind: str) -> int:
    """Index into ``scales`` (ascending) of the scale to show first.

    Args:
        scales: the segmented scales, ascending.
        n_parts: part count at each of them (same length).
        shape_kind: :data:`crossdistill.methods.sampart3d.rules.SHAPE_KINDS` entry.
        mask_kind: the mask teacher's ``mask_kind``.
    """
    if len(scales) != len(n_parts) or not scales:
        raise ValueError(f"need one part count per scale, got {len(n_parts)} for {len(scales)} scales")
    if shape_kind == "closed_surface" and mask_kind == "geometric-parts":
        return nearest_count_index(n_parts, TARGET_PARTS)
    for i, s in enumerate(scales):
        if abs(float(s) - FIXED_DEFAULT) < 1e-9:
            return i
    return len(scales) // 2


def default_scale_of(scales: Sequence[float], labels: Sequence[np.ndarray], shape_kind: str, mask_kind: str) -> float:
    """The scale to show first, given each scale's element labels ((E,) arrays of 0-based part ids:
    faces for meshes, points for point clouds)."""
    n_parts = [int(np.asarray(l).max()) + 1 for l in labels]
    return float(scales[default_scale_index(scales, n_parts, shape_kind, mask_kind)])
