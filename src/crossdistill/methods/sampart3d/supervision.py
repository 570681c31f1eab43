"""From 2D masks of rendered views to the pixel supervision of the grouping field.

SAMPart3D (and GARField, whose grouping it follows) keeps every 2D mask of every view as a
group of its own: masks may overlap and nest, and a pixel belongs to every mask that
contains it. Each view keeps the pixels that map to a sampled point (``pix_to_point >= 0``);
for every such pixel the supervision lists the masks containing it, ordered by their 3D
scale sigma (Eq. 3, :mod:`.scale`, from all the points the mask's pixels map to), finest
first. Which of its masks a pixel is grouped by at a given scale is decided at training
time (:mod:`.train`).

Teachers give masks either as dense boolean stacks (``MaskSet.masks`` (M, H, W): SAM, the
emulators) or as one label map per level (``level_maps`` (L, H, W): the offline teacher,
whose masks within a level are disjoint); both are read the same way here, without
levels: nothing downstream assumes levels or disjointness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crossdistill.methods.sampart3d.scale import mask_scales_from_labels
from crossdistill.types import Correspondence


@dataclass(frozen=True)
class ViewSupervision:
    """Supervised pixels of one view.

    Attributes:
        point: (P,) int64 sampled point each pixel maps to.
        mask: (K, P) int32 global ids of the masks containing each pixel, ordered by
            increasing sigma down the K slots, -1 padded (K = most masks on one pixel).
    """

    point: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class MaskSupervision:
    """All supervision for one object.

    Attributes:
        views: one :class:`ViewSupervision` per view that has any mask.
        scale: (M,) float64 scale sigma of every global mask.
        area: (M,) int64 supervised pixels of every mask.
        score: (M,) float32 the teacher's score of every mask (1 where it gives none).
        view: (M,) int64 index into ``views`` of every mask's view.
        radius: the length unit sigma was computed in (1.0: the unit box, as the released code).
    """

    views: tuple[ViewSupervision, ...]
    scale: np.ndarray
    area: np.ndarray
    score: np.ndarray
    view: np.ndarray
    radius: float

    @property
    def n_masks(self) -> int:
        return int(len(self.scale))

    @classmethod
    def empty(cls, radius: float = 1.0) -> "MaskSupervision":
        return cls((), np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64), radius)


def mask_memberships(mask_set, pixels: np.ndarray, erode: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which of a view's masks contain which of the given pixels.

    Args:
        mask_set: a view's masks: dense ``masks`` (M, H, W) bool (+ optional ``scores`` (M,)),
            or ``level_maps`` (L, H, W) int32 (one disjoint label map per level).
        pixels: (P,) flat pixel indices ``y * W + x`` to look up.
        erode: denoise dense masks first as the released code does (a pixel stays in a mask
            when at least 5 of its 3x3 neighbourhood are in it).

    Returns:
        mask (E,) int64 local mask index, pixel (E,) int64 position in ``pixels``, and
        scores (M_local,) float32, for the E (mask, pixel) memberships.
    """
    if hasattr(mask_set, "level_maps") and not erode:
        maps = np.asarray(mask_set.level_maps)
        flat = maps.reshape(len(maps), -1)[:, pixels]  # (L, P)
        offsets = np.concatenate([[0], np.cumsum([int(m.max()) + 1 if m.size and m.max() >= 0 else 0
                                                 for m in maps])])
        lv, px = np.nonzero(flat >= 0)
        local = flat[lv, px].astype(np.int64) + offsets[lv]
        n = int(offsets[-1])
        scores = np.asarray(getattr(mask_set, "scores", np.ones(n)), dtype=np.float32)
        if len(scores) != n:
            scores = np.ones(n, dtype=np.float32)
        return local, px.astype(np.int64), scores
    masks = np.asarray(mask_set.masks, dtype=bool)
    if masks.ndim != 3:
        raise ValueError(f"masks must be (M, H, W), got shape {masks.shape}")
    if len(masks) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    if erode and len(masks):
        masks = erode_masks(masks)
    flat = masks.reshape(len(masks), -1)[:, pixels]  # (M, P)
    mk, px = np.nonzero(flat)
    scores = getattr(mask_set, "scores", None)
    scores = np.ones(len(masks), np.float32) if scores is None else np.asarray(scores, np.float32)
    return mk.astype(np.int64), px.astype(np.int64), scores


def erode_masks(masks: np.ndarray) -> np.ndarray:
    """(M, H, W) bool -> (M, H, W) bool: a pixel stays when >= 5 of its 3x3 neighbourhood are in the mask."""
    from scipy.ndimage import convolve

    out = np.empty_like(masks)
    kernel = np.ones((3, 3), dtype=np.int16)
    for i, m in enumerate(masks):
        out[i] = convolve(m.astype(np.int16), kernel, mode="constant", cval=0) >= 5
    return out


def build_supervision(mask_sets: Sequence, correspondence: Correspondence, points: np.ndarray,
                      min_pixels: int = 16, max_scale: float | None = None, erode: bool = False,
                      radius: float = 1.0) -> MaskSupervision:
    """Assemble :class:`MaskSupervision` from per-view mask sets.

    Args:
        mask_sets: V mask sets (see :func:`mask_memberships`), one per view of ``correspondence``.
        correspondence: pixel <-> point mapping of the same V views.
        points: (N, 3) sampled points (unit box).
        min_pixels: masks covering fewer mapped pixels are dropped.
        max_scale: masks whose sigma is at least this are dropped (the released code drops
            sigma >= 2 as too coarse to be useful); None keeps every mask.
        erode: denoise masks as the released code does (see :func:`erode_masks`).
        radius: coordinates are divided by it before sigma (1.0: the unit box, the frame the
            released code computes sigma in).

    Returns:
        the supervision; masks renumbered 0..M-1 over all views.
    """
    views: list[ViewSupervision] = []
    chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # points, global id, score per mask
    next_id = 0
    per_view: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []
    for v, ms in enumerate(mask_sets):
        p2p = correspondence.pix_to_point[v].reshape(-1)
        pix = np.flatnonzero(p2p >= 0)
        if len(pix) == 0:
            continue
        mk, px, scores = mask_memberships(ms, pix, erode=erode)
        if len(mk) == 0:
            continue
        ids, inv, cnt = np.unique(mk, return_inverse=True, return_counts=True)
        ok = cnt >= min_pixels
        if not ok.any():
            continue
        keep = ok[inv]
        gid = (np.cumsum(ok) - 1)[inv[keep]] + next_id
        chunks.append((points[p2p[pix[px[keep]]]], gid, scores[ids[ok]]))
        per_view.append((p2p[pix].astype(np.int64), gid, px[keep], v))
        next_id += int(ok.sum())
    if next_id == 0:
        return MaskSupervision.empty(radius)
    all_gid = np.concatenate([c[1] for c in chunks])
    sigma = mask_scales_from_labels(np.concatenate([c[0] for c in chunks]), all_gid, next_id, radius=radius)
    area = np.bincount(all_gid, minlength=next_id).astype(np.int64)
    score = np.concatenate([c[2] for c in chunks]).astype(np.float32)
    keep_mask = np.ones(next_id, dtype=bool) if max_scale is None else sigma < max_scale
    renum = np.full(next_id, -1, dtype=np.int64)
    renum[keep_mask] = np.arange(int(keep_mask.sum()))
    kept_sigma, kept_area = sigma[keep_mask], area[keep_mask]
    for point, gid, pos, _ in per_view:
        ok = keep_mask[gid]
        gid, pos = renum[gid[ok]], pos[ok]
        if len(gid) == 0:
            continue
        # order each pixel's masks by increasing sigma (ties: smaller area first, then id)
        order = np.lexsort((gid, kept_area[gid], kept_sigma[gid], pos))
        gid, pos = gid[order], pos[order]
        first = np.ones(len(pos), dtype=bool)
        first[1:] = pos[1:] != pos[:-1]
        start = np.maximum.accumulate(np.where(first, np.arange(len(pos)), 0))
        slot = np.arange(len(pos)) - start
        used = np.unique(pos)
        local = np.full(int(pos.max()) + 1, -1, dtype=np.int64)
        local[used] = np.arange(len(used))
        table = np.full((int(slot.max()) + 1, len(used)), -1, dtype=np.int32)
        table[slot, local[pos]] = gid
        views.append(ViewSupervision(point=point[used], mask=table))
    n_kept = int(keep_mask.sum())
    if n_kept == 0 or not views:
        return MaskSupervision.empty(radius)
    view_of = np.zeros(n_kept, dtype=np.int64)
    for vi, vs in enumerate(views):
        ids = np.unique(vs.mask[vs.mask >= 0])
        view_of[ids] = vi
    return MaskSupervision(tuple(views), sigma[keep_mask], area[keep_mask], score[keep_mask], view_of, radius)
