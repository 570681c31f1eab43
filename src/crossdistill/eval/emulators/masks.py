"""A SAM-like mask emulator built from ground-truth parts: an instrument for benchmarks only.

No SAM weights can be obtained here, yet what SAMPart3D does with SAM's masks must be
measured. :class:`EmulatedMaskTeacher` stands in for SAM on labelled shapes: per view it
returns what SAM's automatic generator returns (overlapping, nested class-agnostic binary
masks with scores, each a connected image region, at several granularities) made from the
shape's ground-truth parts, spoiled by a noise model with one strength knob. It is never a
default, it says what it is in its ``teacher_id`` (``emulated-sam-masks...``), and every
report that uses it names it.

Ground truth comes as *partitions* of the shape's elements (faces of a mesh, points of a
cloud): each partition is one way of cutting the shape into parts (a depth of the PartNet
hierarchy, the articulated links, one person's segmentation of a Princeton benchmark mesh,
the whole object). Per view, every part of every partition becomes the masks of its
visible pixels, one per 2D connected region; exact duplicates across partitions are kept
once.

Noise model at strength t in [0, 1] (fixed before any measurement; ``low`` = 0.25,
``medium`` = 0.5, ``high`` = 1.0), applied per view in this order with a generator seeded by
(seed, view):

1. dropped small parts: a mask covering a share a of the object's pixels is dropped with
   probability t * (1 - a / 0.05) when a < 0.05 (SAM misses small parts first);
2. merges of adjacent parts: two masks of one partition that touch in the image are replaced
   by their union with probability 0.3 t per touching pair (each mask merges at most once);
3. splits along shading or depth edges: a mask is split in two with probability 0.25 t, by
   2-means on its pixels' normals and depth, each side kept where it is a connected region
   of at least ``min_pixels``;
4. boundary jitter: every mask's boundary moves by up to 4 t pixels along a smooth random
   field (signed distance plus smoothed noise), then is cut to the object and to its
   largest connected region;
5. spurious masks: Poisson(2 t) blobs per view, each a disc of random radius (3% to 25% of
   the object's image extent) around a random object pixel, cut to the object;
6. scores: a clean mask scores U(0.9, 1.0) - 0.1 t U(0, 1); a merged or split one
   U(0.8, 0.95) - 0.1 t U(0, 1); a spurious one U(0.5, 0.9).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from crossdistill.teachers.base import MaskSet
from crossdistill.teachers.partition_masks import object_crop, partition_view_masks
from crossdistill.types import Views

#: named strengths of the noise model
STRENGTHS: dict[str, float] = {"zero": 0.0, "low": 0.25, "medium": 0.5, "high": 1.0}


@dataclass
class EmulatedMaskTeacher:
    """SAM-like masks from ground-truth partitions of a shape's elements (benchmarks only).

    Args:
        partitions: (G, E) int part id of each of the E elements (faces, or points of a cloud)
            in each of G partitions; -1 = the element belongs to no part of that partition.
        strength: noise strength t in [0, 1] (see the module docstring).
        seed: seeds the noise.
        min_pixels: masks smaller than this many pixels are not returned (as SAM's small
            regions are filtered).

    Example:
        >>> import numpy as np
        >>> t = EmulatedMaskTeacher(np.zeros((1, 4), int), strength=0.5)
        >>> t.teacher_id
        'emulated-sam-masks:t=0.5:seed=0'
    """

    partitions: np.ndarray
    strength: float = 0.0
    seed: int = 0
    min_pixels: int = 16
    is_offline_default: bool = field(default=False, init=False)
    mask_kind: str = field(default="sam-like", init=False)

    def __post_init__(self) -> None:
        self.partitions = np.atleast_2d(np.asarray(self.partitions, dtype=np.int64))
        if not 0.0 <= float(self.strength) <= 1.0:
            raise ValueError(f"strength must lie in [0, 1], got {self.strength}")

    @property
    def teacher_id(self) -> str:
        return f"emulated-sam-masks:t={self.strength:g}:seed={self.seed}"

    def masks(self, views: Views) -> list[MaskSet]:
        """One :class:`MaskSet` per view."""
        return [self.view_masks(views, v) for v in range(len(views))]

    def view_masks(self, views: Views, v: int) -> MaskSet:
        """The masks of view ``v``: clean ground-truth regions, then the noise model."""
        rng = np.random.default_rng([self.seed, v, 7919])
        elem = views.face_id[v]
        fg = elem >= 0
        H, W = fg.shape
        if not fg.any():
            return MaskSet.empty(H, W)
        crop = object_crop(fg)
        e = elem[crop]
        f = fg[crop]
        t = float(self.strength)
        masks, _, touching = self._clean_masks(e, f)
        kinds = ["clean"] * len(masks)
        fg_area = int(f.sum())
        if t > 0 and masks:
            masks, kinds, touching = self._drop_small(masks, kinds, touching, fg_area, t, rng)
            masks, kinds = self._merge_adjacent(masks, kinds, touching, t, rng)
            masks, kinds = self._split(masks, kinds, views.normal[v][crop], views.depth[v][crop], t, rng)
            masks = [self._jitter(m, f, t, rng) for m in masks]
            keep = [i for i, m in enumerate(masks) if m.sum() >= self.min_pixels]
            masks, kinds = [masks[i] for i in keep], [kinds[i] for i in keep]
            spurious = self._spurious(f, t, rng)
            masks += spurious
            kinds += ["spurious"] * len(spurious)
        scores = self._scores(kinds, t, rng)
        out = np.zeros((len(masks), H, W), dtype=bool)
        for i, m in enumerate(masks):
            out[i][crop] = m
        order = np.argsort(-scores, kind="stable")
        return MaskSet(out[order], scores[order].astype(np.float32), np.full(len(masks), -1, np.int8))

    def _clean_masks(self, elem: np.ndarray, fg: np.ndarray) -> tuple[list[np.ndarray], list[int], set]:
        """Every visible connected region of every ground-truth part (:func:`partition_view_masks`)."""
        return partition_view_masks(self.partitions, elem, fg, self.min_pixels)

    # ------------------------------------------------------------------ noise steps
    @staticmethod
    def _drop_small(masks, kinds, touching, fg_area, t, rng):
        share = np.array([m.sum() for m in masks], dtype=np.float64) / max(fg_area, 1)
        p = t * np.clip(1.0 - share / 0.05, 0.0, 1.0)
        keep = np.flatnonzero(rng.random(len(masks)) >= p)
        new = {int(i): n for n, i in enumerate(keep)}
        pairs = {(new[i], new[j]) for i, j in touching if i in new and j in new}
        return [masks[i] for i in keep], [kinds[i] for i in keep], pairs

    @staticmethod
    def _merge_adjacent(masks, kinds, touching, t, rng):
        used = np.zeros(len(masks), dtype=bool)
        out_m, out_k = [], []
        for i, j in sorted(touching):
            if used[i] or used[j] or rng.random() >= 0.3 * t:
                continue
            used[i] = used[j] = True
            out_m.append(masks[i] | masks[j])
            out_k.append("noisy")
        for i in np.flatnonzero(~used):
            out_m.append(masks[i])
            out_k.append(kinds[i])
        return out_m, out_k

    def _split(self, masks, kinds, normal, depth, t, rng):
        out_m, out_k = [], []
        for m, k in zip(masks, kinds):
            if rng.random() >= 0.25 * t or m.sum() < 4 * self.min_pixels:
                out_m.append(m)
                out_k.append(k)
                continue
            ys, xs = np.nonzero(m)
            d = depth[ys, xs].astype(np.float64)
            d = (d - d.mean()) / max(float(d.std()), 1e-9)
            x = np.c_[normal[ys, xs].astype(np.float64), 0.5 * d]
            sides = _two_means(x, rng)
            pieces = []
            for s in (0, 1):
                side = np.zeros_like(m)
                side[ys[sides == s], xs[sides == s]] = True
                big = _largest_region(side)
                if big.sum() >= self.min_pixels:
                    pieces.append(big)
            if len(pieces) == 2:
                out_m += pieces
                out_k += ["noisy", "noisy"]
            else:
                out_m.append(m)
                out_k.append(k)
        return out_m, out_k

    @staticmethod
    def _jitter(mask, fg, t, rng):
        amp = 4.0 * t
        if amp <= 0:
            return mask
        inside = ndimage.distance_transform_edt(mask)
        outside = ndimage.distance_transform_edt(~mask)
        signed = inside - outside  # > 0 inside
        noise = ndimage.gaussian_filter(rng.standard_normal(mask.shape), sigma=6.0)
        noise /= max(float(np.abs(noise).max()), 1e-9)
        out = (signed + amp * noise > 0.5) & fg
        return _largest_region(out) if out.any() else mask

    def _spurious(self, fg, t, rng):
        n = rng.poisson(2.0 * t)
        if n == 0:
            return []
        ys, xs = np.nonzero(fg)
        extent = max(ys.max() - ys.min(), xs.max() - xs.min(), 1)
        yy, xx = np.mgrid[: fg.shape[0], : fg.shape[1]]
        out = []
        for _ in range(n):
            i = rng.integers(len(ys))
            r = rng.uniform(0.03, 0.25) * extent
            m = ((yy - ys[i]) ** 2 + (xx - xs[i]) ** 2 <= r * r) & fg
            m = _largest_region(m)
            if m.sum() >= self.min_pixels:
                out.append(m)
        return out

    @staticmethod
    def _scores(kinds, t, rng):
        out = np.empty(len(kinds))
        for i, k in enumerate(kinds):
            if k == "clean":
                out[i] = rng.uniform(0.9, 1.0) - 0.1 * t * rng.uniform()
            elif k == "noisy":
                out[i] = rng.uniform(0.8, 0.95) - 0.1 * t * rng.uniform()
            else:
                out[i] = rng.uniform(0.5, 0.9)
        return np.clip(out, 0.0, 1.0)


# --------------------------------------------------------------------------- ground truth as partitions


def hierarchy_partitions(face_leaf: np.ndarray, nodes: list[dict], extra: list[np.ndarray] = ()) -> np.ndarray:
    """Partitions of a PartNet hierarchy: the whole object, one per depth, then ``extra`` ones.

    Args:
        face_leaf: (E,) hierarchy node id of every element's leaf (-1 unknown).
        nodes: [{"id", "parent"}] of the hierarchy (parent -1 = root).
        extra: further (E,) partitions (e.g. the articulated links).

    Returns:
        (G, E) int64: row 0 the whole object, row d the ancestor at depth d of each element's
        leaf (the leaf itself where it is shallower), then ``extra``.
    """
    parent = {int(n["id"]): int(n["parent"]) for n in nodes}

    def chain(node: int) -> list[int]:
        out = [node]
        while parent.get(out[-1], -1) >= 0:
            out.append(parent[out[-1]])
        return out[::-1]  # root first

    leaf = np.asarray(face_leaf, dtype=np.int64)
    chains = {int(l): chain(int(l)) for l in np.unique(leaf[leaf >= 0])}
    depth = max((len(c) for c in chains.values()), default=1)
    rows = [np.where(leaf >= 0, 0, -1)]
    for d in range(1, depth):
        lut = {l: c[min(d, len(c) - 1)] for l, c in chains.items()}
        rows.append(np.array([lut.get(int(x), -1) if x >= 0 else -1 for x in leaf], dtype=np.int64))
    rows += [np.asarray(x, dtype=np.int64) for x in extra]
    return np.stack(rows)


def segmentation_partitions(segs: np.ndarray) -> np.ndarray:
    """Partitions from several human segmentations (H, E): the whole object, then each segmentation."""
    segs = np.asarray(segs, dtype=np.int64)
    return np.concatenate([np.zeros((1, segs.shape[1]), np.int64), segs])


# --------------------------------------------------------------------------- helpers


def _largest_region(mask: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(mask)
    if n <= 1:
        return mask
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    sizes[0] = 0
    return lab == int(sizes.argmax())


def _two_means(x: np.ndarray, rng: np.random.Generator, iters: int = 10) -> np.ndarray:
    """(P,) 0/1 labels of 2-means on the rows of ``x``."""
    c = x[rng.choice(len(x), size=2, replace=False)]
    lab = np.zeros(len(x), dtype=np.int64)
    for _ in range(iters):
        d = ((x[:, None, :] - c[None]) ** 2).sum(-1)
        lab = d.argmin(1)
        for k in range(2):
            if (lab == k).any():
                c[k] = x[lab == k].mean(0)
    return lab
