"""``render_shape``: every buffer of every view plus the pixel <-> point correspondence.

The per-view work (cast or splat, shading, correspondence) runs as one task per view
on a small thread pool: Embree, the k-d tree and most numpy kernels release the GIL,
so two threads nearly halve the wall time on two cores. Backends that parallelise
internally (Open3D) or hold the GIL (torch) run on one thread.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from crossdistill.errors import InputError
from crossdistill.render._threads import cpu_count, single_threaded_blas
from crossdistill.render.correspondence import (DEPTH_TOL_PX, PLANE_TOL_PX_MESH, PLANE_TOL_PX_POINTS,
                                                RADIUS_FACTOR, ViewCorrespondence, sample_spacing)
from crossdistill.render.raycast import BACKENDS, make_raycaster, pixel_directions_cam
from crossdistill.render.shading import MeshShader, PointShader, shade
from crossdistill.render.splat import PointSplatter
from crossdistill.types import Cameras, Correspondence, RenderResult, Shape, SurfaceSample, Views

#: stages timed per view (seconds summed over views, i.e. thread-seconds)
STAGES = ("cast", "shade", "correspondence")


def render_shape(shape: Shape, cameras: Cameras, samples: SurfaceSample | None = None, backend: str = "auto",
                 device: str = "cpu", progress: bool = True, *, n_samples: int = 15000, seed: int = 0,
                 threads: int | None = None, radius: float | None = None, radius_factor: float = RADIUS_FACTOR,
                 plane_tol_px: float | None = None, depth_tol_px: float = DEPTH_TOL_PX) -> RenderResult:
    """Render ``shape`` from every camera and relate pixels to sampled surface points.

    The shape is expected in the unit box (``geometry.normalize_shape``): the rigs of
    :mod:`crossdistill.render.cameras` frame that box, and absolute tolerance floors
    assume unit-box units. Inputs are not modified.

    Args:
        shape: triangle mesh, or point cloud (``faces is None``: rendered as splats).
        cameras: V cameras of H x W pixels.
        samples: N surface points for the correspondence; default
            ``geometry.sample_surface(shape, n_samples, seed)``.
        backend: "auto" (Embree for meshes, splats for point clouds), "embree",
            "open3d" or "torch" (meshes only).
        device: torch device of the "torch" backend.
        progress: show a tqdm bar over views.
        n_samples, seed: used when ``samples`` is None.
        threads: views processed concurrently (default: the backend's preference,
            at most the number of CPUs).
        radius: pix_to_point radius (default ``radius_factor`` x mean NN spacing of
            the samples).
        plane_tol_px, depth_tol_px: visibility tolerances in pixel footprints, see
            :mod:`crossdistill.render.correspondence` (plane: 1 for meshes, 2 for splats).

    Returns:
        :class:`RenderResult`: ``views`` (V, H, W) int32 face ids / point ids, float32
        depth and (V, H, W, 3) normals, uint8 rgb; ``correspondence``; ``samples``;
        ``meta`` with backend, threads, tolerances, seed and per-stage seconds.

    Example:
        >>> import trimesh
        >>> from crossdistill.render.cameras import axis_rig
        >>> m = trimesh.creation.icosphere()
        >>> res = render_shape(Shape(m.vertices * 0.5, m.faces), axis_rig(64), progress=False, n_samples=500)
        >>> res.views.face_id.shape, res.correspondence.point_to_pix.shape
        ((6, 64, 64), (6, 500))
    """
    if len(cameras) == 0:
        raise InputError("no cameras to render")
    t_start = time.perf_counter()
    is_points = not shape.is_mesh
    if backend == "auto":
        backend = "splat" if is_points else "embree"
    n_threads = cpu_count() if threads is None else max(1, int(threads))
    if is_points:
        if backend != "splat":
            raise InputError(f"backend {backend!r} needs a triangle mesh; point clouds are splatted (backend='auto')")
        caster = PointSplatter(shape, threads=n_threads)
        shader = PointShader(caster.normals, shape.vertex_colors)
    else:
        if backend not in BACKENDS:
            raise InputError(f"unknown render backend {backend!r}; choose auto, {', '.join(BACKENDS)}")
        caster = make_raycaster(shape, backend, device=device, threads=n_threads)
        shader = MeshShader(shape)
    n_threads = min(n_threads, caster.threads)

    if samples is None:
        from crossdistill.geometry.sampling import sample_surface

        samples = sample_surface(shape, n_samples, seed)
    if len(samples) == 0:
        raise InputError("cannot build a correspondence for zero sampled points")
    if radius is None:
        radius = radius_factor * sample_spacing(samples.points)
    if plane_tol_px is None:
        plane_tol_px = PLANE_TOL_PX_POINTS if is_points else PLANE_TOL_PX_MESH
    corr = ViewCorrespondence(samples.points, radius, plane_tol_px, depth_tol_px)
    t_setup = time.perf_counter() - t_start

    V, H, W, N = len(cameras), cameras.height, cameras.width, len(samples)
    face_id = np.empty((V, H, W), dtype=np.int32)
    depth = np.empty((V, H, W), dtype=np.float32)
    normal = np.zeros((V, H, W, 3), dtype=np.float32)
    rgb = np.full((V, H, W, 3), 255, dtype=np.uint8)
    p2p = np.empty((V, N), dtype=np.int32)
    pdepth = np.empty((V, N), dtype=np.float32)
    pix2pt = np.empty((V, H, W), dtype=np.int32)
    stage = np.zeros((V, len(STAGES)))

    def one_view(i: int) -> int:
        t0 = time.perf_counter()
        hits = caster.cast_view(cameras, i)
        t1 = time.perf_counter()
        fid = hits.face_id.reshape(-1)
        face_id[i] = hits.face_id
        depth[i] = hits.depth
        fg = np.flatnonzero(fid >= 0)
        if len(fg):
            ids = fid[fg]
            R = cameras.world_to_cam[i, :3, :3].astype(np.float32)
            dirs = np.take(pixel_directions_cam(cameras.K[i], W, H), fg, axis=0) @ R
            uv = None if is_points else np.take(hits.uv.reshape(-1, 2), fg, axis=0)
            n, c = shade(shader.normals(ids, uv), shader.colors(ids, uv), dirs)
            normal[i].reshape(-1, 3)[fg] = n
            rgb[i].reshape(-1, 3)[fg] = c
        t2 = time.perf_counter()
        p2p[i], pdepth[i], pix2pt[i] = corr(cameras, i, depth[i], normal[i])
        stage[i] = (t1 - t0, t2 - t1, time.perf_counter() - t2)
        return i

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=V, desc=f"render ({caster.name})", unit="view")
    t_views = time.perf_counter()
    with single_threaded_blas():
        try:
            if n_threads > 1 and V > 1:
                with ThreadPoolExecutor(max_workers=n_threads) as pool:
                    for _ in pool.map(one_view, range(V)):
                        if bar is not None:
                            bar.update(1)
            else:
                for i in range(V):
                    one_view(i)
                    if bar is not None:
                        bar.update(1)
        finally:
            if bar is not None:
                bar.close()
    t_end = time.perf_counter()

    views = Views(cameras, face_id, depth, normal, rgb, is_point_cloud=is_points)
    correspondence = Correspondence(pix2pt, p2p, pdepth, W, H)
    meta = {
        "backend": caster.name,
        "threads": n_threads,
        "n_views": V,
        "image_size": [W, H],
        "n_samples": N,
        "seed": seed,
        "radius": float(radius),
        "plane_tol_px": float(plane_tol_px),
        "depth_tol_px": float(depth_tol_px),
        "seconds": {"setup": t_setup, "views": t_end - t_views, "total": t_end - t_start},
        "stage_thread_seconds": {k: float(v) for k, v in zip(STAGES, stage.sum(0))},
    }
    return RenderResult(views=views, samples=samples, correspondence=correspondence, meta=meta)


__all__ = ["render_shape"]
