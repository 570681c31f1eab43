"""Ray-casting backends: which face each pixel sees, at which depth and where on it.

One class per backend behind the :class:`Raycaster` protocol. Every backend returns,
per view, a :class:`ViewHits` with the face id (-1 background), the camera z-depth
(``inf`` background) and the barycentric coordinates of the hit (weights of the three
corners, Embree's convention ``hit = (1-u-v) v0 + u v1 + v v2``).

Rays go through pixel centres (integer + 0.5). Their directions are
``R^T K^-1 (x + 0.5, y + 0.5, 1)``: unnormalised so that the camera-space z of every
direction is 1, hence the ray parameter ``t`` of a hit *is* its z-depth. The
camera-space directions depend only on K and the image size and are cached.

* :class:`EmbreeRaycaster` - embreex (Embree 4) BVH, built once per shape; the
  default on CPU. Embree releases the GIL, so views can be cast on several threads.
* :class:`Open3DRaycaster` - Open3D's ``RaycastingScene`` (optional dependency;
  parallel internally).
* :class:`TorchZBuffer` - pure-torch rasteriser (any torch device), per-face
  barycentric tests at pixel centres and a ``scatter_reduce('amin')`` z-buffer over
  packed (depth, face) keys. Agrees with the ray casters except at exact triangle
  edges.

Example:
    >>> import trimesh
    >>> from crossdistill.types import Shape
    >>> from crossdistill.render.cameras import axis_rig
    >>> m = trimesh.creation.icosphere()
    >>> caster = EmbreeRaycaster(Shape(m.vertices, m.faces))
    >>> hits = caster.cast_view(axis_rig(64), 0)
    >>> hits.face_id.shape, hits.depth.dtype
    ((64, 64), dtype('float32'))
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, runtime_checkable

import numpy as np

from crossdistill.errors import InputError, MissingDependencyError, require
from crossdistill.types import Cameras, Shape, Views


@dataclass(frozen=True)
class ViewHits:
    """Ray-cast result of one view of H x W pixels.

    Attributes:
        face_id: (H, W) int32 face hit through each pixel centre, -1 for background.
        depth: (H, W) float32 camera z-depth of the hit, ``inf`` for background.
        uv: (H, W, 2) float32 barycentric (u, v) of the hit (weights of corners 1 and
            2; corner 0 gets ``1 - u - v``); unspecified for background.
    """

    face_id: np.ndarray
    depth: np.ndarray
    uv: np.ndarray

    @property
    def barycentric(self) -> np.ndarray:
        """(H, W, 3) float32 weights of the three corners (zeros for background)."""
        b = np.concatenate([1.0 - self.uv.sum(-1, keepdims=True), self.uv], axis=-1)
        b[self.face_id < 0] = 0.0
        return b.astype(np.float32, copy=False)


@runtime_checkable
class Raycaster(Protocol):
    """A backend that renders face ids / depth / barycentrics of one shape.

    Attributes:
        name: backend name ("embree", "open3d", "torch").
        threads: how many views the caller may cast concurrently on threads (1 for
            backends that parallelise internally or need the GIL).
    """

    name: str
    threads: int

    def cast_view(self, cameras: Cameras, index: int) -> ViewHits:
        """Cast the rays of view ``index`` of ``cameras``."""
        ...


# ----------------------------------------------------------------------------- rays


@lru_cache(maxsize=16)
def _pixel_dirs_cached(k: tuple[float, ...], width: int, height: int) -> np.ndarray:
    fx, s, cx, fy, cy = k
    xs = np.arange(width, dtype=np.float64) + 0.5
    ys = np.arange(height, dtype=np.float64) + 0.5
    y = (ys - cy) / fy
    x = (xs[None, :] - cx - s * y[:, None]) / fx
    d = np.empty((height, width, 3), dtype=np.float32)
    d[..., 0] = x
    d[..., 1] = y[:, None]
    d[..., 2] = 1.0
    d = d.reshape(-1, 3)
    d.setflags(write=False)
    return d


def pixel_directions_cam(K: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H*W, 3) float32 camera-space ray directions through pixel centres, z = 1.

    Row ``y * W + x`` is ``K^-1 (x + 0.5, y + 0.5, 1)``. Cached per (K, size);
    the returned array is read-only.
    """
    K = np.asarray(K, dtype=np.float64)
    key = (float(K[0, 0]), float(K[0, 1]), float(K[0, 2]), float(K[1, 1]), float(K[1, 2]))
    return _pixel_dirs_cached(key, int(width), int(height))


@lru_cache(maxsize=16)
def _pixel_axes_cached(k: tuple[float, ...], width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fx, s, cx, fy, cy = k
    y = (np.arange(height, dtype=np.float64) + 0.5 - cy) / fy
    xa = (np.arange(width, dtype=np.float64) + 0.5 - cx) / fx
    xb = -s * y / fx
    return xa.astype(np.float32), xb.astype(np.float32), y.astype(np.float32)


def view_rays(cameras: Cameras, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Origin and directions of the pixel rays of one view.

    The world direction of pixel (x, y) is ``R^T (xa[x] + xb[y], y_c[y], 1)``: a sum of
    a per-column and a per-row term, computed per component with broadcasting (no
    BLAS call: BLAS threads would fight the view threads on a busy machine).

    Returns:
        origin: (3,) float32 camera centre in world space.
        dirs: (H*W, 3) float32 world-space directions with camera z = 1 (row-major
            pixels), so that a hit's ray parameter equals its z-depth.
    """
    w2c = cameras.world_to_cam[index]
    R = w2c[:3, :3]
    origin = (-R.T @ w2c[:3, 3]).astype(np.float32)
    K = cameras.K[index]
    key = (float(K[0, 0]), float(K[0, 1]), float(K[0, 2]), float(K[1, 1]), float(K[1, 2]))
    xa, xb, yc = _pixel_axes_cached(key, int(cameras.width), int(cameras.height))
    Rf = R.astype(np.float32)
    out = np.empty((cameras.height, cameras.width, 3), dtype=np.float32)
    for k in range(3):
        row = (xb * Rf[0, k] + yc * Rf[1, k] + Rf[2, k])[:, None]  # (H, 1)
        np.add(row, (xa * Rf[0, k])[None, :], out=out[:, :, k])
    return origin, out.reshape(-1, 3)


def view_positions(views: Views, index: int) -> np.ndarray:
    """(H, W, 3) float32 world position of the surface each pixel of view ``index`` sees.

    ``origin + dir * depth`` with the z = 1 directions of :func:`view_rays`; background
    pixels (infinite depth) get the camera centre.
    """
    origin, dirs = view_rays(views.cameras, index)
    depth = views.depth[index].reshape(-1)
    depth = np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)
    H, W = views.depth.shape[1:]
    return (origin[None, :] + dirs * depth[:, None]).reshape(H, W, 3)


def _mesh_arrays(shape: Shape) -> tuple[np.ndarray, np.ndarray]:
    if not shape.is_mesh:
        raise InputError("ray casting needs a triangle mesh (use the splat renderer for point clouds)")
    if shape.n_faces == 0:
        raise InputError("the mesh has no faces")
    v = np.ascontiguousarray(shape.vertices, dtype=np.float32)
    f = np.ascontiguousarray(shape.faces, dtype=np.int32)
    if not np.all(np.isfinite(v)):
        raise InputError("the mesh has non-finite vertex coordinates")
    if f.min() < 0 or f.max() >= len(v):
        raise InputError("the mesh has face indices outside the vertex array")
    return v, f


# -------------------------------------------------------------------------- Embree


class EmbreeRaycaster:
    """Embree (via embreex) ray caster; builds the BVH once in the constructor.

    Args:
        shape: a triangle mesh (float32 precision is used for the BVH).
        threads: views the renderer may cast concurrently (embreex releases the GIL).
    """

    name = "embree"

    def __init__(self, shape: Shape, threads: int = 2):
        rtcore_scene = require("embreex.rtcore_scene", "core", "the Embree ray-casting backend")
        mesh_construction = require("embreex.mesh_construction", "core", "the Embree ray-casting backend")
        v, f = _mesh_arrays(shape)
        self.threads = max(1, int(threads))
        self._scene = rtcore_scene.EmbreeScene()
        self._mesh = mesh_construction.TriangleMesh(self._scene, v, f)
        # commit the scene now (the first run() commits it), so threads never race on it
        self._scene.run(np.zeros((1, 3), np.float32), np.ones((1, 3), np.float32))

    def cast_rays(self, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cast rays sharing one origin.

        Args:
            origin: (3,) float32.
            dirs: (R, 3) float32 directions (any length; ``t`` is in units of it).

        Returns:
            face_id (R,) int32 (-1 miss), t (R,) float32 (``inf`` miss), uv (R, 2) float32.
        """
        dirs = np.ascontiguousarray(dirs, dtype=np.float32)
        origins = np.broadcast_to(np.asarray(origin, dtype=np.float32), dirs.shape)
        out = self._scene.run(origins, dirs, output=1)
        fid = out["primID"]
        t = out["tfar"]
        t[fid < 0] = np.inf
        return fid, t, np.stack([out["u"], out["v"]], axis=-1)

    def cast_view(self, cameras: Cameras, index: int) -> ViewHits:
        origin, dirs = view_rays(cameras, index)
        fid, t, uv = self.cast_rays(origin, dirs)
        H, W = cameras.height, cameras.width
        return ViewHits(fid.reshape(H, W), t.reshape(H, W), uv.reshape(H, W, 2))


# -------------------------------------------------------------------------- Open3D


class Open3DRaycaster:
    """Open3D ``RaycastingScene`` ray caster (optional dependency ``open3d``).

    Open3D parallelises each cast over all cores, so ``threads`` is 1.
    """

    name = "open3d"
    threads = 1

    def __init__(self, shape: Shape, nthreads: int = 0):
        try:
            import open3d as o3d
        except ImportError as exc:  # not an extra: its wheel imports only with a system library present
            raise MissingDependencyError(
                "the Open3D ray-casting backend needs open3d: pip install open3d-cpu (on Linux it also needs the "
                f"system library libusb-1.0, e.g. apt-get install libusb-1.0-0; {exc}); the default embree backend "
                "needs neither") from None
        v, f = _mesh_arrays(shape)
        self._o3d = o3d
        self._nthreads = int(nthreads)
        self._scene = o3d.t.geometry.RaycastingScene()
        self._scene.add_triangles(o3d.core.Tensor(v), o3d.core.Tensor(f.astype(np.uint32)))

    def cast_rays(self, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Same contract as :meth:`EmbreeRaycaster.cast_rays`."""
        rays = np.empty((len(dirs), 6), dtype=np.float32)
        rays[:, :3] = origin
        rays[:, 3:] = dirs
        out = self._scene.cast_rays(self._o3d.core.Tensor(rays), nthreads=self._nthreads)
        ids = out["primitive_ids"].numpy()
        miss = ids == self._o3d.t.geometry.RaycastingScene.INVALID_ID
        fid = ids.astype(np.int32)
        fid[miss] = -1
        t = out["t_hit"].numpy()
        t[miss] = np.inf
        return fid, t, out["primitive_uvs"].numpy()

    def cast_view(self, cameras: Cameras, index: int) -> ViewHits:
        origin, dirs = view_rays(cameras, index)
        fid, t, uv = self.cast_rays(origin, dirs)
        H, W = cameras.height, cameras.width
        return ViewHits(fid.reshape(H, W), t.reshape(H, W), uv.reshape(H, W, 2))


# --------------------------------------------------------------------------- torch


class TorchZBuffer:
    """Pure-torch z-buffer rasteriser (CPU or GPU), same outputs as the ray casters.

    Per view: vertices are projected to the screen; every face enumerates the pixel
    centres of its screen bounding box (faces are bucketed by box size and processed
    in chunks of at most ``chunk`` candidate pixels, so huge triangles do not blow up
    memory); a candidate is kept when its screen-space barycentrics are all >= 0
    (both windings, no culling); its perspective-correct depth ``1 / sum(l_i / z_i)``
    and face id are packed into one int64 key (the float32 bit pattern of a positive
    depth is monotonic as an integer) and reduced per pixel with
    ``scatter_reduce('amin')``. Barycentrics of the winners are recomputed
    perspective-correctly.

    Every vertex must lie in front of every camera (z > ``near``); the rigs of
    :mod:`crossdistill.render.cameras` guarantee it. Otherwise use Embree.

    Args:
        shape: a triangle mesh.
        device: torch device ("cpu", "cuda", ...).
        chunk: maximum candidate (face, pixel) pairs per step (default 2^20 on CPU,
            2^24 on GPU).
    """

    name = "torch"
    threads = 1

    def __init__(self, shape: Shape, device: str = "cpu", chunk: int | None = None, near: float = 1e-4):
        torch = require("torch", "core", "the torch z-buffer backend")
        v, f = _mesh_arrays(shape)
        self._torch = torch
        self.device = torch.device(device)
        self._v = torch.as_tensor(v, device=self.device)
        self._f = torch.as_tensor(f.astype(np.int64), device=self.device)
        self.chunk = int(chunk) if chunk else (1 << 24 if self.device.type == "cuda" else 1 << 20)
        self.near = float(near)

    def cast_view(self, cameras: Cameras, index: int) -> ViewHits:
        torch = self._torch
        dev = self.device
        H, W = cameras.height, cameras.width
        w2c = torch.as_tensor(cameras.world_to_cam[index], dtype=torch.float64, device=dev)
        K = torch.as_tensor(cameras.K[index], dtype=torch.float64, device=dev)
        cam = (self._v.double() @ w2c[:3, :3].T + w2c[:3, 3])
        z = cam[:, 2]
        if bool((z <= self.near).any()):
            raise InputError("TorchZBuffer needs the whole mesh in front of every camera; "
                             "use backend='embree' for cameras inside or near the shape")
        pix = (cam @ K.T)[:, :2] / z[:, None]  # (Vn, 2) pixel coordinates, centres at +0.5
        tri = pix[self._f].float()  # (F, 3, 2)
        tz = z[self._f].float()  # (F, 3)

        # pixels whose centre (p + 0.5) lies inside the screen bounding box
        lo = torch.ceil(tri.amin(1) - 0.5).clamp(min=0)
        hi = torch.floor(tri.amax(1) - 0.5)
        hi = torch.minimum(hi, torch.tensor([W - 1.0, H - 1.0], device=dev))
        ext = (hi - lo + 1).clamp(min=0)  # (F, 2) number of candidate columns / rows
        keep = (ext > 0).all(1)
        area = (tri[:, 1, 0] - tri[:, 0, 0]) * (tri[:, 2, 1] - tri[:, 0, 1]) - \
               (tri[:, 1, 1] - tri[:, 0, 1]) * (tri[:, 2, 0] - tri[:, 0, 0])
        keep &= area.abs() > 1e-12
        faces = torch.nonzero(keep).squeeze(1)

        best = torch.full((H * W,), torch.iinfo(torch.int64).max, dtype=torch.int64, device=dev)
        # bucket faces by the larger box side, rounded up to sqrt(2) steps on CPU (1, 2, 3,
        # 4, 6, 8, 12, ...: square stencils waste at most ~2x work) and to powers of two
        # on GPU (fewer buckets, fewer synchronisations)
        two_stage = dev.type == "cpu"  # CPU: drop stencil pixels outside the box before the bary test
        per_octave = 2 if two_stage else 1
        side = ext[faces].amax(1).long()
        big = int(side.max()) if len(side) else 1
        sizes = sorted({int(np.ceil(2.0 ** (k / per_octave)))
                        for k in range(0, per_octave * (int(np.log2(max(big, 1))) + 2))})
        bucket = torch.searchsorted(torch.tensor(sizes, device=dev), side)
        for b in torch.unique(bucket).tolist():
            s = sizes[int(b)]
            fb = faces[bucket == b]
            per = max(1, self.chunk // (s * s))
            oy, ox = torch.meshgrid(torch.arange(s, device=dev, dtype=torch.float32),
                                    torch.arange(s, device=dev, dtype=torch.float32), indexing="ij")
            ox, oy = ox.reshape(1, -1), oy.reshape(1, -1)
            for start in range(0, len(fb), per):
                fc = fb[start:start + per]
                px = lo[fc, 0:1] + ox  # (n, s*s) candidate pixel indices (as floats)
                py = lo[fc, 1:2] + oy
                valid = (px <= hi[fc, 0:1]) & (py <= hi[fc, 1:2])
                if two_stage:
                    r, c = valid.nonzero(as_tuple=True)
                    fi, px, py = fc[r], px[r, c], py[r, c]
                    l0, l1, l2 = self._screen_bary(tri[fi], px + 0.5, py + 0.5, area[fi])
                    keep = ((l0 >= 0) & (l1 >= 0) & (l2 >= 0)).nonzero(as_tuple=True)[0]
                    fi, px, py, l0, l1, l2 = fi[keep], px[keep], py[keep], l0[keep], l1[keep], l2[keep]
                else:  # GPU: one compaction per chunk (fewer synchronisations)
                    l0, l1, l2 = self._screen_bary(tri[fc][:, :, None, :], px + 0.5, py + 0.5, area[fc, None])
                    r, c = (valid & (l0 >= 0) & (l1 >= 0) & (l2 >= 0)).nonzero(as_tuple=True)
                    fi, px, py, l0, l1, l2 = fc[r], px[r, c], py[r, c], l0[r, c], l1[r, c], l2[r, c]
                zi = tz[fi]
                depth = (1.0 / (l0 / zi[:, 0] + l1 / zi[:, 1] + l2 / zi[:, 2])).float()
                key = (depth.view(torch.int32).long() << 32) | fi
                best.scatter_reduce_(0, py.long() * W + px.long(), key, reduce="amin")

        hit = best != torch.iinfo(torch.int64).max
        fid = torch.full((H * W,), -1, dtype=torch.int64, device=dev)
        fid[hit] = best[hit] & 0xFFFFFFFF
        depth = torch.full((H * W,), float("inf"), dtype=torch.float32, device=dev)
        depth[hit] = (best[hit] >> 32).int().view(torch.float32)
        uv = torch.zeros((H * W, 2), dtype=torch.float32, device=dev)
        idx = torch.nonzero(hit).squeeze(1)
        if len(idx):
            fh = fid[idx]
            px = (idx % W).float() + 0.5
            py = (idx // W).float() + 0.5
            l0, l1, l2 = self._screen_bary(tri[fh], px, py, area[fh])
            w = torch.stack([l0, l1, l2], 1) / tz[fh]
            w = w / w.sum(1, keepdim=True)
            uv[idx] = w[:, 1:]
        return ViewHits(fid.int().reshape(H, W).cpu().numpy(), depth.reshape(H, W).cpu().numpy(),
                        uv.reshape(H, W, 2).cpu().numpy())

    @staticmethod
    def _screen_bary(tri, px, py, area):
        """Screen-space barycentrics of points (px, py) in triangles tri (n, 3, ..., 2)."""
        x0, y0 = tri[:, 0, ..., 0], tri[:, 0, ..., 1]
        x1, y1 = tri[:, 1, ..., 0], tri[:, 1, ..., 1]
        x2, y2 = tri[:, 2, ..., 0], tri[:, 2, ..., 1]
        l0 = ((x1 - px) * (y2 - py) - (y1 - py) * (x2 - px)) / area
        l1 = ((x2 - px) * (y0 - py) - (y2 - py) * (x0 - px)) / area
        return l0, l1, 1.0 - l0 - l1


# ------------------------------------------------------------------------- factory

BACKENDS = ("embree", "open3d", "torch")


def make_raycaster(shape: Shape, backend: str = "embree", device: str = "cpu", threads: int = 2) -> Raycaster:
    """Build the named backend for ``shape`` ("embree", "open3d" or "torch")."""
    if backend == "embree":
        return EmbreeRaycaster(shape, threads=threads)
    if backend == "open3d":
        return Open3DRaycaster(shape)
    if backend == "torch":
        return TorchZBuffer(shape, device=device)
    raise InputError(f"unknown render backend {backend!r}; choose one of {', '.join(BACKENDS)}")

