"""The scale an object's parts are first shown at (viewer, API, ``segment.json``'s ``default_scale``).

SAMPart3D itself has no default scale: every scale is an answer. A user still needs one to open
with, and the same fixed scale does not suit every kind of object. The rule, by kind of shape
and mask teacher, is what held up under category-level cross-validation
(``docs/results/segment_single_surface.md``, default-scale rows: chosen on fold A, reported on
fold B):

* closed single surfaces with the geometric part teacher: the segmented scale whose part count
  is closest to :data:`TARGET_PARTS` (ties go to the finer scale). Candidates were each fixed
  scale, "closest to K parts" and "coarsest with at least K parts" for several K, ranked by the
  mean of mIoU and Rand index on fold A.
* everything else (meshes of pieces, point clouds, SAM masks): scale 1.0 when it was segmented,
  else the middle one; no candidate was measured there against it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["TARGET_PARTS", "FIXED_DEFAULT", "default_scale_index", "default_scale_of"]

#: part count the default scale aims at on closed single surfaces (geometric part teacher)
TARGET_PARTS = 10
#: the default scale where no rule was measured
FIXED_DEFAULT = 1.0


def default_scale_index(scales: Sequence[float], n_parts: Sequence[int], shape_kind: str,
                        mask_kind: str) -> int:
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
        return min(range(len(scales)), key=lambda i: (abs(int(n_parts[i]) - TARGET_PARTS), i))
    for i, s in enumerate(scales):
        if abs(float(s) - FIXED_DEFAULT) < 1e-9:
            return i
    return len(scales) // 2


def default_scale_of(scales: Sequence[float], labels: Sequence[np.ndarray], shape_kind: str, mask_kind: str) -> float:
    """The scale to show first, given each scale's element labels ((S,) arrays of 0-based part ids)."""
    return float(scales[default_scale_index(scales, [int(l.max()) + 1 for l in labels], shape_kind, mask_kind)])
