"""From 2D masks of rendered views to the pixel supervision of the grouping field.

Every view keeps the pixels that map to a sampled point (``pix_to_point >= 0``); for
each granularity level a pixel carries the id of the mask covering it at that level
(-1 when none; when masks of one level overlap, the smallest wins, as finer SAM
masks are the more specific ones). Every mask gets its 3D scale sigma from the points
its pixels map to (Eq. 3, :mod:`.scale`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crossdistill.methods.sampart3d.scale import mask_scales_from_labels, sphere_normalizer
from crossdistill.types import Correspondence


@dataclass(frozen=True)
class ViewSupervision:
    """Supervised pixels of one view.

    Attributes:
        point: (P,) int64 sampled point each pixel maps to.
        mask: (L, P) int32 global mask id per level, -1 where no mask of that level covers the pixel.
    """

    point: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class MaskSupervision:
    """All supervision for one object.

    Attributes:
        views: one :class:`ViewSupervision` per view that has any mask.
        scale: (M,) float64 raw scale sigma of every global mask.
        level: (M,) int8 granularity level of every mask.
        radius: the unit-sphere normalisation radius used for sigma.
    """

    views: tuple[ViewSupervision, ...]
    scale: np.ndarray
    level: np.ndarray
    radius: float

    @property
    def n_masks(self) -> int:
        return int(len(self.scale))


def level_maps(mask_set, n_levels: int) -> np.ndarray:
    """(L, H, W) int32 per-level mask index of a view's masks (-1 = none).

    Uses ``mask_set.level_maps`` when the teacher provides it (the offline teacher
    does); otherwise builds it from dense masks (M, H, W) with ``level`` (M,), the
    smallest mask winning where masks of one level overlap.
    """
    if hasattr(mask_set, "level_maps"):
        return np.asarray(mask_set.level_maps)[:n_levels]
    masks = np.asarray(mask_set.masks, dtype=bool)
    lvl = np.asarray(mask_set.level, dtype=np.int64)
    H, W = masks.shape[1:]
    out = np.full((n_levels, H, W), -1, dtype=np.int32)
    area = masks.reshape(len(masks), H * W).sum(1)  # (M,); M may be 0 (a view with no mask)
    for l in range(n_levels):
        idx = np.flatnonzero(lvl == l)
        for rank, k in enumerate(idx[np.argsort(-area[idx], kind="stable")]):
            out[l][masks[k]] = k
    return out


def build_supervision(mask_sets: Sequence, correspondence: Correspondence, points: np.ndarray,
                      n_levels: int = 3, min_pixels: int = 16) -> MaskSupervision:
    """Assemble :class:`MaskSupervision` from per-view mask sets.

    Args:
        mask_sets: V mask sets (``MaskSet`` with ``masks`` (M_v, H, W) bool and ``level``
            (M_v,), or any object with ``level_maps`` (L, H, W)).
        correspondence: pixel <-> point mapping of the same V views.
        points: (N, 3) sampled points (object coordinates).
        n_levels: number of granularity levels.
        min_pixels: masks covering fewer mapped pixels are dropped.
    """
    _, radius = sphere_normalizer(points)
    views: list[ViewSupervision] = []
    scale_pts: list[np.ndarray] = []
    scale_lab: list[np.ndarray] = []
    levels: list[np.ndarray] = []
    next_id = 0
    for v, ms in enumerate(mask_sets):
        p2p = correspondence.pix_to_point[v].reshape(-1)
        pix = np.flatnonzero(p2p >= 0)
        if len(pix) == 0:
            continue
        maps = level_maps(ms, n_levels).reshape(n_levels, -1)[:, pix]  # (L, P)
        per_level = np.full((n_levels, len(pix)), -1, dtype=np.int32)
        for l in range(n_levels):
            local = maps[l]
            has = local >= 0
            if not has.any():
                continue
            ids, inv, cnt = np.unique(local[has], return_inverse=True, return_counts=True)
            ok = cnt >= min_pixels
            remap = np.where(ok, next_id + np.cumsum(ok) - 1, -1)
            gid = np.full(len(pix), -1, dtype=np.int64)
            gid[has] = remap[inv]
            per_level[l] = gid
            keep = gid >= 0
            scale_pts.append(points[p2p[pix[keep]]])
            scale_lab.append(gid[keep])
            levels.append(np.full(int(ok.sum()), l, dtype=np.int8))
            next_id += int(ok.sum())
        if (per_level >= 0).any():
            views.append(ViewSupervision(point=p2p[pix].astype(np.int64), mask=per_level))
    if next_id == 0:
        return MaskSupervision((), np.zeros(0), np.zeros(0, np.int8), radius)
    sc = mask_scales_from_labels(np.concatenate(scale_pts), np.concatenate(scale_lab), next_id, radius=radius)
    return MaskSupervision(tuple(views), sc, np.concatenate(levels), radius)
