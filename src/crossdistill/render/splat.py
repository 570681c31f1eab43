"""Z-buffered splatting of point clouds into the same buffers as the ray casters.

Each point ``i`` is a small disc of world radius ``r_i = radius_scale * s_i``, where
``s_i`` is its local spacing: the distance to its ``k``-th nearest neighbour (k = 8 by
default: the disc then reaches its 8 neighbours, which closes the random gaps of a
uniformly sampled surface, so a closed surface stays opaque; smaller radii leave
holes through which hidden points would become visible). At depth
``z_i`` the disc covers the pixels whose centres lie within
``R_i = max(r_i f / z_i, 0.75)`` pixels of the point's projection (0.75 so a point
always covers its own pixel), capped at ``max_radius_px``.

The depth of a covered pixel is where its ray meets the point's tangent plane
(surface-aligned splats, so neighbouring splats occlude each other correctly and the
correspondence's tangent-plane test holds), clamped to ``z_i +- r_i`` at grazing
angles. The z-buffer keeps the nearest candidate per pixel: candidates are packed
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
        self.radius = (radius_scale * local_spacing(pts, k)).astype(np.float32)
        self.max_radius_px = float(max_radius_px)
        self.threads = max(1, int(threads))

    def cast_view(self, cameras: Cameras, index: int) -> ViewHits:
        H, W = cameras.height, cameras.width
        K = cameras.K[index]
        w2c = cameras.world_to_cam[index]
        R = w2c[:3, :3].astype(np.float32)
        pc = self.points @ R.T + w2c[:3, 3].astype(np.float32)
        nc = self.normals @ R.T
        z = pc[:, 2]
        f = float(np.sqrt(K[0, 0] * K[1, 1]))
        front = np.flatnonzero(z > 1e-6)
        pc, nc, z, rad = pc[front], nc[front], z[front], self.radius[front]
        u = (pc[:, 0] * K[0, 0] + pc[:, 1] * K[0, 1]) / z + K[0, 2]
        v = pc[:, 1] * K[1, 1] / z + K[1, 2]
        rpx = np.clip(rad * f / z, 0.75, self.max_radius_px)
        # points whose disc cannot reach the image are dropped
        on = (u > -rpx - 1) & (u < W + rpx + 1) & (v > -rpx - 1) & (v < H + rpx + 1)
        sel = np.flatnonzero(on)
        pc, nc, z, rad, u, v, rpx, front = pc[sel], nc[sel], z[sel], rad[sel], u[sel], v[sel], rpx[sel], front[sel]
        ix, iy = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
        n_dot_p = np.einsum("ij,ij->i", nc, pc)
        dirs = pixel_directions_cam(K, W, H)
        best = np.full(H * W, _EMPTY, dtype=np.int64)
        # group points by their integer radius so each group shares one offset stencil
        group = np.ceil(rpx * 2).astype(np.int64)  # half-pixel radius bins
        order = np.argsort(group, kind="stable")
        bounds = np.flatnonzero(np.diff(group[order])) + 1
        for idx in np.split(order, bounds):
            if len(idx) == 0:
                continue
            ox, oy = _disc_offsets(group[idx[0]] / 2.0)
            tx = ix[idx, None] + ox[None, :]
            ty = iy[idx, None] + oy[None, :]
            # continuous disc test at the pixel centres
            dx = tx + 0.5 - u[idx, None]
            dy = ty + 0.5 - v[idx, None]
            cover = (dx * dx + dy * dy <= (rpx[idx, None] ** 2)) & (tx >= 0) & (tx < W) & (ty >= 0) & (ty < H)
            rows, cols = np.nonzero(cover)
            pts_i = idx[rows]
            pix = ty[rows, cols] * W + tx[rows, cols]
            d = np.take(dirs, pix, axis=0)
            ndd = np.einsum("ij,ij->i", np.take(nc, pts_i, axis=0), d)
            with np.errstate(divide="ignore", invalid="ignore"):
                depth = n_dot_p[pts_i] / ndd
            zi, ri = z[pts_i], rad[pts_i]
            depth = np.where(np.isfinite(depth), depth, zi)
            depth = np.clip(depth, zi - ri, zi + ri)
            depth = np.maximum(depth, np.float32(1e-6)).astype(np.float32)
            key = (depth.view(np.int32).astype(np.int64) << 32) | front[pts_i].astype(np.int64)
            np.minimum.at(best, pix, key)
        hit = best != _EMPTY
        fid = np.full(H * W, -1, dtype=np.int32)
        fid[hit] = (best[hit] & 0xFFFFFFFF).astype(np.int32)
        depth_img = np.full(H * W, np.inf, dtype=np.float32)
        depth_img[hit] = (best[hit] >> 32).astype(np.int32).view(np.float32)
        return ViewHits(fid.reshape(H, W), depth_img.reshape(H, W), np.zeros((H, W, 2), dtype=np.float32))
