"""Offline mask teacher: multi-granularity 2D masks from what the renderer knows.

The default :class:`~crossdistill.teachers.base.MaskTeacher` when no SAM weights are
present. It is honest about what it is (``is_offline_default = True``, and the id says
``offline``): no learned model, only render buffers. A mask is an image region that is
connected through neighbouring pixels whose surfaces continue into each other:

* depth continuity: the depth step between two neighbouring pixels is within what
  the surface slope explains (a few pixel footprints, scaled by the tangent of the
  viewing angle) -- silhouettes and occlusion boundaries cut regions;
* creases: the angle between the two normals is below a level's threshold;
* colour: the colour difference is below a level's threshold;
* concave creases: parts meet where the surface folds into a valley (the minima
  rule of part perception); convex edges (box corners) do not cut a part;
* pieces (meshes only): both pixels see the same connected piece of the mesh (or the
  same material / scene node), so separately modelled pieces never share a part mask.

Three granularity levels, as SAM's three outputs: level 0 (whole) keeps depth
continuity and cuts only very sharp concave creases; level 1 (part) also cuts at
moderate concave creases, at piece boundaries and at strong colour changes; level 2
(subpart) cuts at every crease. Regions smaller than ``min_pixels`` are dropped, as
SAM's small-region filter does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from crossdistill.render.raycast import view_positions, view_rays
from crossdistill.types import Views


@dataclass(frozen=True)
class LevelRule:
    """Which neighbouring pixels stay connected at one granularity level.

    Attributes:
        crease_deg: largest angle between neighbouring normals (degrees) at any crease.
        concave_deg: largest angle at a concave crease (where two surfaces meet in a
            valley: the minima rule of part perception says parts meet there).
        color_delta: largest colour difference (0-255 Euclidean), None = colour ignored.
        group: name of a per-face grouping both pixels must share ("piece"), or None.
            Ignored for point clouds.
    """

    crease_deg: float
    color_delta: float | None
    group: str | None
    concave_deg: float = 180.0


MESH_RULES: tuple[LevelRule, ...] = (
    LevelRule(crease_deg=180.0, color_delta=None, group=None, concave_deg=70.0),  # level 0: whole
    LevelRule(crease_deg=180.0, color_delta=None, group="piece", concave_deg=30.0),  # level 1: part
    LevelRule(crease_deg=35.0, color_delta=40.0, group="piece", concave_deg=20.0),  # level 2: subpart
)
POINT_RULES: tuple[LevelRule, ...] = (
    LevelRule(crease_deg=180.0, color_delta=None, group=None, concave_deg=60.0),  # level 0: whole
    LevelRule(crease_deg=180.0, color_delta=60.0, group=None, concave_deg=30.0),  # level 1: part
    LevelRule(crease_deg=35.0, color_delta=30.0, group=None, concave_deg=20.0),  # level 2: subpart
)


@dataclass(frozen=True)
class LevelMasks:
    """Masks of one view stored as one label map per level (masks of a level do not overlap).

    Attributes:
        level_maps: (L, H, W) int32 mask index within the level, -1 where no mask.
        counts: (L,) number of masks per level.
    """

    level_maps: np.ndarray
    counts: np.ndarray

    @property
    def level(self) -> np.ndarray:
        """(M,) int8 level of every mask, in the order of :attr:`masks`."""
        return np.repeat(np.arange(len(self.counts), dtype=np.int8), self.counts)

    @property
    def masks(self) -> np.ndarray:
        """(M, H, W) bool dense masks (built on demand; prefer ``level_maps``)."""
        out = [self.level_maps[l] == k for l in range(len(self.counts)) for k in range(int(self.counts[l]))]
        if not out:
            return np.zeros((0,) + self.level_maps.shape[1:], dtype=bool)
        return np.stack(out)

    @property
    def scores(self) -> np.ndarray:
        """(M,) float32 confidence (1: rule-based masks are certain of their own rule)."""
        return np.ones(int(self.counts.sum()), dtype=np.float32)


@dataclass
class RenderMaskTeacher:
    """Multi-granularity masks from render buffers (offline default mask teacher).

    Args:
        face_groups: per-face groupings by name, each (F,) int, e.g. "piece" (connected
            components, materials or scene nodes); empty for point clouds.
        rules: one :class:`LevelRule` per level, coarse to fine (default: mesh rules
            when groups are given, point rules otherwise).
        min_pixels: smallest kept region, in pixels.
        depth_slack: allowed depth step in pixel footprints (before the slope term).

    Example:
        >>> teacher = RenderMaskTeacher()
        >>> teacher.teacher_id
        'offline-render-masks-v1'
    """

    face_groups: dict[str, np.ndarray] = field(default_factory=dict)
    rules: tuple[LevelRule, ...] | None = None
    min_pixels: int = 24
    depth_slack: float = 2.5
    teacher_id: str = field(default="offline-render-masks-v1", init=False)
    is_offline_default: bool = field(default=True, init=False)
    mask_kind: str = field(default="render-cues", init=False)

    def masks(self, views: Views) -> list[LevelMasks]:
        """One :class:`LevelMasks` per view."""
        return [self.view_masks(views, v) for v in range(len(views))]

    def view_masks(self, views: Views, v: int) -> LevelMasks:
        """Masks of view ``v``."""
        fid = views.face_id[v]
        H, W = fid.shape
        fg = fid >= 0
        edges = _neighbour_pairs(H, W)
        a, b = edges
        both = fg.reshape(-1)[a] & fg.reshape(-1)[b]
        a, b = a[both], b[both]
        depth = views.depth[v].reshape(-1)
        normal = views.normal[v].reshape(-1, 3)
        focal = float(views.cameras.K[v, 0, 0])
        _, rays = view_rays(views.cameras, v)
        rays = rays / np.linalg.norm(rays, axis=1, keepdims=True)
        cos_view = np.abs((normal * rays).sum(1))
        cont = _depth_continuous(depth[a], depth[b], np.minimum(cos_view[a], cos_view[b]), focal, self.depth_slack)
        cos_ab = (normal[a] * normal[b]).sum(1)
        # concave crease: moving from a to b, the normal turns towards the step ((Pb-Pa).(nb-na) < 0)
        pos = view_positions(views, v).reshape(-1, 3)
        concave = ((pos[b] - pos[a]) * (normal[b] - normal[a])).sum(1) < 0
        rgb = views.rgb[v].reshape(-1, 3).astype(np.float32)
        col = np.sqrt(((rgb[a] - rgb[b]) ** 2).sum(1))
        use_groups = bool(self.face_groups) and not views.is_point_cloud
        rules = self.rules or (MESH_RULES if use_groups else POINT_RULES)
        same: dict[str, np.ndarray] = {}
        if use_groups:
            f = fid.reshape(-1).clip(min=0)
            for name, groups in self.face_groups.items():
                g = np.asarray(groups)[f]
                same[name] = g[a] == g[b]
        maps = np.full((len(rules), H, W), -1, dtype=np.int32)
        counts = np.zeros(len(rules), dtype=np.int64)
        for l, rule in enumerate(rules):
            keep = cont.copy()
            if rule.crease_deg < 180.0:
                keep &= cos_ab >= np.cos(np.deg2rad(rule.crease_deg))
            if rule.concave_deg < 180.0:
                keep &= ~concave | (cos_ab >= np.cos(np.deg2rad(rule.concave_deg)))
            if rule.color_delta is not None:
                keep &= col <= rule.color_delta
            if rule.group is not None and rule.group in same:
                keep &= same[rule.group]
            maps[l], counts[l] = _regions(H * W, a[keep], b[keep], fg, self.min_pixels)
        return LevelMasks(maps, counts)


def _neighbour_pairs(H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of 4-neighbour pixel pairs (right and down), each (E,)."""
    idx = np.arange(H * W).reshape(H, W)
    a = np.concatenate([idx[:, :-1].reshape(-1), idx[:-1, :].reshape(-1)])
    b = np.concatenate([idx[:, 1:].reshape(-1), idx[1:, :].reshape(-1)])
    return a, b


def _depth_continuous(da: np.ndarray, db: np.ndarray, cos_view: np.ndarray, focal: float,
                      slack: float) -> np.ndarray:
    """(E,) bool: is the depth step between neighbours explained by the surface slope?

    The footprint of a pixel at depth d is d / focal; a surface seen at angle theta
    from the viewing ray (cos theta = ``cos_view``, the smaller of the two pixels)
    changes depth by about footprint * tan(theta) per pixel.
    """
    fp = np.minimum(da, db) / focal
    c = np.clip(cos_view, 0.1, 1.0)
    tan = np.sqrt(1.0 / c**2 - 1.0)
    return np.abs(da - db) <= fp * (slack + 1.5 * tan)


def _regions(n: int, a: np.ndarray, b: np.ndarray, fg: np.ndarray, min_pixels: int) -> tuple[np.ndarray, int]:
    """Connected regions of the kept pixel graph, small ones dropped.

    Returns:
        (H, W) int32 region index (-1 background / dropped), number of regions.
    """
    graph = sp.csr_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    _, lab = connected_components(graph, directed=False)
    lab = np.where(fg.reshape(-1), lab, -1)
    uniq, inv, cnt = np.unique(lab, return_inverse=True, return_counts=True)
    ok = (uniq >= 0) & (cnt >= min_pixels)
    remap = np.full(len(uniq), -1, dtype=np.int64)
    # biggest region first
    order = np.flatnonzero(ok)[np.argsort(-cnt[ok], kind="stable")]
    remap[order] = np.arange(len(order))
    return remap[inv].reshape(fg.shape).astype(np.int32), int(len(order))
