"""Masks of 3D part partitions as a view sees them: SAM-like masks from any 3D segmentation.

A *partition* assigns each element of a shape (a face of a mesh, a point of a cloud) a part
id (-1: none). Given several partitions of one shape at different granularities, every
view gets, for every part of every partition, one mask per connected region of the part's
visible pixels; exact duplicates across partitions are kept once. The result has the form
of SAM's automatic masks (nested, overlapping, each one connected region), so the
SAMPart3D core lifts it unchanged.

Used by the weight-free geometric part teacher (3D partitions computed from the geometry,
:mod:`crossdistill.teachers.geometric_parts`) and, with ground-truth partitions and a noise
model, by the benchmark-only mask emulator (:mod:`crossdistill.eval.emulators`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from crossdistill.teachers.base import MaskSet
from crossdistill.types import Views


def object_crop(foreground: np.ndarray, margin: int = 8) -> tuple[slice, slice]:
    """The (rows, cols) slices of a view's object bounding box grown by ``margin`` pixels."""
    H, W = foreground.shape
    ys, xs = np.nonzero(foreground)
    return (slice(max(int(ys.min()) - margin, 0), min(int(ys.max()) + margin + 1, H)),
            slice(max(int(xs.min()) - margin, 0), min(int(xs.max()) + margin + 1, W)))


def partition_view_masks(partitions: np.ndarray, elem: np.ndarray, fg: np.ndarray,
                         min_pixels: int = 16) -> tuple[list[np.ndarray], list[int], set[tuple[int, int]]]:
    """Every visible connected region of every part of every partition of one view.

    Args:
        partitions: (G, E) int part id of every element in each partition (-1 none).
        elem: (h, w) int element seen at each pixel (-1 background).
        fg: (h, w) bool ``elem >= 0``.
        min_pixels: smaller regions are left out.

    Returns:
        masks (h, w) bool, the partition each came from, and the pairs (i, j), i < j, of masks
        of one partition that touch in the image. Exact duplicates are kept once.
    """
    h, w = fg.shape
    idx = np.arange(h * w).reshape(h, w)
    a = np.concatenate([idx[:, :-1].reshape(-1), idx[:-1, :].reshape(-1)])
    b = np.concatenate([idx[:, 1:].reshape(-1), idx[1:, :].reshape(-1)])
    flat = elem.reshape(-1)
    seen: set[tuple[int, int, int]] = set()
    masks: list[np.ndarray] = []
    groups: list[int] = []
    touching: set[tuple[int, int]] = set()
    for g, part in enumerate(partitions):
        lab = np.where(fg.reshape(-1), part[np.maximum(flat, 0)], -1)
        same = (lab[a] == lab[b]) & (lab[a] >= 0)
        graph = sp.csr_matrix((np.ones(int(same.sum()), np.int8), (a[same], b[same])), shape=(h * w, h * w))
        _, comp = connected_components(graph, directed=False)
        comp = np.where(lab >= 0, comp, -1)
        ids, inv, cnt = np.unique(comp, return_inverse=True, return_counts=True)
        order = np.argsort(inv, kind="stable")
        starts = np.concatenate([[0], np.cumsum(cnt)])
        index_of: dict[int, int] = {}
        for k in np.flatnonzero((ids >= 0) & (cnt >= min_pixels)):
            pix = order[starts[k]:starts[k + 1]]
            key = (len(pix), int(pix[0]), int(pix.sum() % 1_000_000_007))
            if key in seen:
                continue
            seen.add(key)
            m = np.zeros(h * w, dtype=bool)
            m[pix] = True
            index_of[int(ids[k])] = len(masks)
            masks.append(m.reshape(h, w))
            groups.append(g)
        ca, cb = comp[a], comp[b]
        cross = (ca >= 0) & (cb >= 0) & (ca != cb)
        for x, y in set(zip(ca[cross].tolist(), cb[cross].tolist())):
            if x in index_of and y in index_of:
                i, j = sorted((index_of[x], index_of[y]))
                touching.add((i, j))
    return masks, groups, touching


@dataclass
class PartitionMaskTeacher:
    """A :class:`~crossdistill.teachers.base.MaskTeacher` giving the masks of fixed 3D partitions.

    Args:
        partitions: (G, E) int part id of each of the shape's E elements (faces of a mesh, or
            points of a cloud, in the order the renderer's ``face_id`` uses) in G partitions.
        name: what made the partitions (goes into ``teacher_id``).
        min_pixels: smallest mask kept.
        mask_kind: which stage-3 rules its masks get (:mod:`crossdistill.methods.sampart3d.rules`).

    Every mask scores 1.0; ``level`` holds the index of the partition it came from.
    """

    partitions: np.ndarray
    name: str = "partitions"
    min_pixels: int = 16
    mask_kind: str = "sam-like"
    is_offline_default: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        self.partitions = np.atleast_2d(np.asarray(self.partitions, dtype=np.int64))

    @property
    def teacher_id(self) -> str:
        return f"partition-masks:{self.name}"

    def masks(self, views: Views) -> list[MaskSet]:
        out = []
        for v in range(len(views)):
            fg = views.foreground[v]
            H, W = fg.shape
            if not fg.any():
                out.append(MaskSet.empty(H, W))
                continue
            crop = object_crop(fg)
            masks, groups, _ = partition_view_masks(self.partitions, views.face_id[v][crop], fg[crop], self.min_pixels)
            full = np.zeros((len(masks), H, W), dtype=bool)
            for i, m in enumerate(masks):
                full[i][crop] = m
            out.append(MaskSet(full, np.ones(len(masks), np.float32), np.asarray(groups, np.int8)))
        return out
