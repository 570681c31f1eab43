"""Z-buffered splatting of point clouds into the same buffers as the ray casters.

Each point ``i`` is a small disc in its tangent plane (surface-aligned splat) of world
radius ``r_i = radius_scale * s_i``, where
``s_i`` is its local spacing: the distance to its ``k``-th nearest neighbour (k = 8 by
default: the disc then reaches its 8 neighbours, which closes the random gaps of a
uniformly sampled surface, so a closed surface stays opaque; smaller radii leave
holes through which hidden points would become visible).

A pixel is covered by splat i when its ray meets i's tangent plane within ``r_i`` of
the point; the depth is that intersection's z. Candidate pixels are those within
``R_i = r_i f / z_i`` pixels (the disc's largest screen extent, capped at
``max_radius_px``) of the point's own pixel. Surface-aligned discs matter: a
camera-facing disc of a side face would stick out past a box edge and hide the
top face next to it; seen edge-on, an aligned disc covers almost nothing there.
The z-buffer keeps the nearest candidate per pixel: candidates are packed
into int64 keys ``(float32 depth bits << 32) | point index`` (the bit pattern of a
positive float32 orders like the float) and reduced with ``np.minimum.at`` - one
pass, ~40x faster than a lexsort by (pixel, depth) on the same candidates.

The result is a :class:`~crossdistill.render.raycast.ViewHits` whose ``face_id``
holds the index of the winning point (``uv`` is zero).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from crossdistill.errors import InputError
from crossdistill.render.raycast import ViewHits, pixel_directions_cam
from crossdistill.types import Cameras, Shape

_EMPTY = np.iinfo(np.int64).max


def local_spacing(points: np.ndarray, k: int = 8) -> np.ndarray:
    """(N,) float32 distance of every point to its ``k``-th nearest other point."""
    pts = np.asarray(points, dtype=np.float64)
    k = int(min(k, len(pts) - 1))
    if k < 1:
        return np.ones(len(pts), dtype=np.float32)
    d, _ = cKDTree(pts).query(pts, k=k + 1, workers=1)
    return d[:, k].astype(np.float32)


def point_normals(shape: Shape, k: int = 16) -> np.ndarray:
    """(N, 3) float32 unit normals of a point cloud: its own, or PCA-estimated.

    Orientation does not matter for rendering (normals are flipped to face the camera).
    """
    if shape.vertex_normals is not None:
        n = np.asarray(shape.vertex_normals, dtype=np.float32)
    else:
        from crossdistill.geometry.sampling import estimate_normals

        n = estimate_normals(shape.vertices, k=k, orient="centroid").astype(np.float32)
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, norm, out=np.zeros_like(n), where=norm > 0)


def _disc_offsets(radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Integer offsets (dx, dy) that can hold a pixel centre within ``radius`` of any
    point of the centre pixel (the point may sit anywhere inside its own pixel)."""
    g = int(np.ceil(radius + 0.5))
    oy, ox = np.mgrid[-g:g + 1, -g:g + 1]
    keep = (np.maximum(np.abs(ox) - 0.5, 0) ** 2 + np.maximum(np.abs(oy) - 0.5, 0) ** 2) <= radius * radius
    return ox[keep].ravel(), oy[keep].ravel()


class PointSplatter:
    """Splat renderer for point clouds (same role as a ray caster for meshes).

    Args:
        shape: a point cloud (``shape.faces is None``); a mesh's vertices also work.
        radius_scale: disc radius in units of the local spacing.
        k: the local spacing is the distance to the k-th nearest neighbour.
        max_radius_px: cap on the disc radius in pixels.
        threads: views the renderer may splat concurrently.
    """

    name = "splat"

    def __init__(self, shape: Shape, radius_scale: float = 1.0, k: int = 8, max_radius_px: float = 8.0,
                 threads: int = 2):
        pts = np.asarray(shape.vertices, dtype=np.float32)
        if len(pts) == 0:
            raise InputError("cannot splat an empty point cloud")
        if not np.all(np.isfinite(pts)):
            raise InputError("the point cloud has non-finite coordinates")
        self.points = np.ascontiguousarray(pts)
        self.normals = point_normals(shape)
        spacing = local_spacing(pts, k)
        # duplicated points have zero spacing: floor at half the median (or 1e-3 if all coincide)
        floor = 0.5 * float(np.median(spacing)) or 1e-3
        self.radius = (radius_scale * np.maximum(spacing, floor)).astype(np.float32)
        self.max_radius_px = float(max_radius_px)
        self.threads = max(1, int(threads))

    def cast_view(self, cameras: Cameras, index: int) -> ViewHits:
        H, W = cameras.height, cameras.width
        K = cameras.K[index]
        w2c = cameras.world_to_cam[index]
        R = w2c[:3, :3].astype(np.float32)
        pc = self.points @ R.T + w2c[:3, 3].astype(np.float32)
        z = pc[:, 2]
        f = float(np.sqrt(K[0, 0] * K[1, 1]))
        G = int(np.ceil(self.max_radius_px)) + 1  # z-buffer padding: stencils never leave it
        with np.errstate(divide="ignore", invalid="ignore"):
            u = (pc[:, 0] * K[0, 0] + pc[:, 1] * K[0, 1]) / z + K[0, 2]
            v = pc[:, 1] * K[1, 1] / z + K[1, 2]
            rpx = np.clip(self.radius * f / z, 0.75, self.max_radius_px)
        keep = np.flatnonzero((z > 1e-6) & (u > -rpx - 1) & (u < W + rpx + 1) & (v > -rpx - 1) & (v < H + rpx + 1))
        pc, u, v, rpx = pc[keep], u[keep], v[keep], rpx[keep]
        nc = self.normals[keep] @ R.T
        rad2 = (self.radius[keep] ** 2)
        n_dot_p = np.einsum("ij,ij->i", nc, pc)
        Wp, Hp = W + 2 * G, H + 2 * G
        base = (np.floor(v).astype(np.int64) + G) * Wp + (np.floor(u).astype(np.int64) + G)
        # camera-space ray directions (z = 1) of the padded pixel grid, as two planes
        dirs = pixel_directions_cam(K, W, H).reshape(H, W, 3)
        dx = np.empty((Hp, Wp), np.float32)
        dy = np.empty((Hp, Wp), np.float32)
        xs = (np.arange(Wp) - G + 0.5 - K[0, 2]) / K[0, 0]
        ys = (np.arange(Hp) - G + 0.5 - K[1, 2]) / K[1, 1]
        dx[:] = xs[None, :] - K[0, 1] * ys[:, None] / K[0, 0]
        dy[:] = ys[:, None]
        dx[G:G + H, G:G + W] = dirs[..., 0]  # identical values, exact same floats as the ray casters
        dx, dy = dx.reshape(-1), dy.reshape(-1)

        best = np.full(Hp * Wp, _EMPTY, dtype=np.int64)
        group = np.ceil(rpx * 2).astype(np.int64)  # half-pixel radius bins share one stencil
        order = np.argsort(group, kind="stable")
        for idx in np.split(order, np.flatnonzero(np.diff(group[order])) + 1):
            if len(idx) == 0:
                continue
            ox, oy = _disc_offsets(group[idx[0]] / 2.0)
            tgt = base[idx, None] + (oy * Wp + ox)[None, :]  # (n, M)
            qx, qy = np.take(dx, tgt), np.take(dy, tgt)
            n = nc[idx]
            ndd = qx * n[:, 0:1]
            ndd += qy * n[:, 1:2]
            ndd += n[:, 2:3]
            with np.errstate(divide="ignore", invalid="ignore"):
                t = n_dot_p[idx, None] / ndd  # ray / tangent-plane intersection (z-depth)
            p = pc[idx]
            e = qx * t - p[:, 0:1]
            e2 = e * e
            e = qy * t - p[:, 1:2]
            e2 += e * e
            e = t - p[:, 2:3]
            e2 += e * e
            ok = (e2 <= rad2[idx, None]) & (t > 1e-6)  # inside the disc (NaN / inf fail)
            rows, cols = np.nonzero(ok)
            key = (t[rows, cols].astype(np.float32).view(np.int32).astype(np.int64) << 32) | \
                keep[idx[rows]].astype(np.int64)
            np.minimum.at(best, tgt[rows, cols], key)
        best = best.reshape(Hp, Wp)[G:G + H, G:G + W].reshape(-1)
        hit = best != _EMPTY
        fid = np.full(H * W, -1, dtype=np.int32)
        fid[hit] = (best[hit] & 0xFFFFFFFF).astype(np.int32)
        depth_img = np.full(H * W, np.inf, dtype=np.float32)
        depth_img[hit] = (best[hit] >> 32).astype(np.int32).view(np.float32)
        return ViewHits(fid.reshape(H, W), depth_img.reshape(H, W), np.zeros((H, W, 2), dtype=np.float32))
