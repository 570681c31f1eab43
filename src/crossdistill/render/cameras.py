"""Pinhole cameras and the view rigs used by the distillation methods.

Conventions (see :mod:`crossdistill.types`): OpenCV camera frame (x right, y down,
z forward), ``world_to_cam`` maps world points to camera coordinates, pixel centres
sit at integer + 0.5. World "up" is +y (the glTF convention of PartNet-Mobility).

The rigs frame a shape that was normalised into the unit box (bounding box centred
at the origin, longest side 1, see ``geometry.normalize_shape``): every view looks at
the origin and sits at the smallest distance for which all 8 corners of the box
(default ``[-0.5, 0.5]^3``) project inside the image with a small margin, so the
whole object is visible and fills most of the image.

Example:
    >>> cams = sampart3d_rig(n_views=36, size=512, seed=0)
    >>> cams.K.shape, cams.world_to_cam.shape
    ((36, 3, 3), (36, 4, 4))
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from crossdistill.errors import InputError
from crossdistill.types import Cameras

#: world up vector of every rig (+y, glTF convention)
WORLD_UP = np.array([0.0, 1.0, 0.0])
#: default full field of view (degrees) across the smaller image side
DEFAULT_FOV_DEG = 40.0
#: the box every rig frames by default: the unit box centred at the origin
UNIT_BOX = np.array([[-0.5, -0.5, -0.5], [0.5, 0.5, 0.5]])


def _normalize(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(n > 0, n, 1.0)


def look_at(eyes: np.ndarray, target: Sequence[float] = (0.0, 0.0, 0.0),
            up: Sequence[float] = (0.0, 1.0, 0.0)) -> np.ndarray:
    """World-to-camera matrices of cameras at ``eyes`` looking at ``target``.

    OpenCV convention: camera z points from the eye to the target, y points "down"
    (opposite to ``up`` projected on the image plane) and x to the right. Where the
    viewing direction is (nearly) parallel to ``up`` (top / bottom views with up=+y),
    ``up`` is replaced by -z (by +x if the view is along z too), so those views are
    well defined: the top view then shows the front (+z) at the image bottom.

    Args:
        eyes: (V, 3) or (3,) camera centres.
        target: (3,) point every camera looks at.
        up: (3,) world up vector.

    Returns:
        (V, 4, 4) float64 world_to_cam matrices.
    """
    eyes = np.atleast_2d(np.asarray(eyes, dtype=np.float64))
    target = np.asarray(target, dtype=np.float64).reshape(3)
    up = _normalize(np.asarray(up, dtype=np.float64).reshape(3))
    if eyes.shape[-1] != 3:
        raise InputError(f"look_at: eyes must be (V, 3), got {eyes.shape}")
    z = target - eyes
    if np.any(np.linalg.norm(z, axis=1) < 1e-12):
        raise InputError("look_at: an eye coincides with the target")
    z = _normalize(z)
    ups = np.broadcast_to(up, z.shape).copy()
    parallel = np.linalg.norm(np.cross(z, ups), axis=1) < 1e-6
    if parallel.any():
        fallback = np.where(np.abs(z[:, 2:3]) > 0.999, [[1.0, 0.0, 0.0]], [[0.0, 0.0, -1.0]])
        ups[parallel] = fallback[parallel]
    x = _normalize(np.cross(z, ups))
    y = np.cross(z, x)
    R = np.stack([x, y, z], axis=1)  # rows are the camera axes in world coordinates
    out = np.tile(np.eye(4), (len(eyes), 1, 1))
    out[:, :3, :3] = R
    out[:, :3, 3] = -np.einsum("vij,vj->vi", R, eyes)
    return out


def intrinsics(fov_deg: float, width: int, height: int) -> np.ndarray:
    """(3, 3) float64 pinhole intrinsics with square pixels and a centred principal point.

    ``fov_deg`` is the full field of view across the *smaller* image side; the
    principal point is the image centre ``(width / 2, height / 2)`` (pixel centres at
    integer + 0.5).
    """
    if not (0.0 < fov_deg < 180.0):
        raise InputError(f"fov_deg must be in (0, 180), got {fov_deg}")
    if width < 1 or height < 1:
        raise InputError(f"image size must be positive, got {width}x{height}")
    f = 0.5 * min(width, height) / np.tan(np.radians(fov_deg) / 2.0)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def _fit_distance(dirs: np.ndarray, K: np.ndarray, width: int, height: int,
                  box: np.ndarray, margin: float) -> np.ndarray:
    """(V,) distance from the origin along ``dirs`` at which ``box`` fills the image.

    For a camera at ``d * dir`` looking at the origin, a world point c has camera
    coordinates (x.c, y.c, z.c + d); it projects inside the (margin-shrunk) image when
    |x.c| <= tx (z.c + d), i.e. d >= |x.c| / tx - z.c. Maximised over the 8 corners.
    """
    lo, hi = np.asarray(box, dtype=np.float64)
    corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])])
    w2c = look_at(dirs)  # unit distance; only the rotation is used
    R = w2c[:, :3, :3]
    cam = np.einsum("vij,cj->vci", R, corners)  # (V, 8, 3)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    tx = min(cx, width - cx) / fx / margin
    ty = min(cy, height - cy) / fy / margin
    need = np.maximum(np.abs(cam[..., 0]) / tx, np.abs(cam[..., 1]) / ty) - cam[..., 2]
    # keep the near side of the box well in front of the camera
    radius = np.linalg.norm(corners, axis=1).max()
    return np.maximum(need.max(axis=1), 1.05 * radius + 1e-3)


def rig_from_directions(dirs: np.ndarray, size: int | tuple[int, int], names: Sequence[str],
                        fov_deg: float = DEFAULT_FOV_DEG, box: np.ndarray | None = None,
                        margin: float = 1.04) -> Cameras:
    """Cameras on rays from the origin along ``dirs``, looking at the origin.

    Args:
        dirs: (V, 3) directions from the origin to each camera (need not be unit).
        size: image size, ``S`` (square) or ``(width, height)``.
        names: V view labels.
        fov_deg: full field of view across the smaller image side.
        box: (2, 3) min/max corner of the region to frame (default: the unit box).
        margin: >= 1, shrinks the usable image by this factor (1.04 leaves ~2% border).

    Returns:
        :class:`Cameras` with V views.
    """
    width, height = (size, size) if np.isscalar(size) else (int(size[0]), int(size[1]))
    dirs = _normalize(np.atleast_2d(np.asarray(dirs, dtype=np.float64)))
    if not np.all(np.isfinite(dirs)) or np.any(np.linalg.norm(dirs, axis=1) < 0.5):
        raise InputError("camera directions must be finite and non-zero")
    K = intrinsics(fov_deg, width, height)
    dist = _fit_distance(dirs, K, width, height, UNIT_BOX if box is None else box, margin)
    eyes = dirs * dist[:, None]
    return Cameras(np.tile(K, (len(dirs), 1, 1)), look_at(eyes, up=WORLD_UP), width, height, tuple(names))


_AXES = (("axis+x", (1, 0, 0)), ("axis-x", (-1, 0, 0)), ("axis+y", (0, 1, 0)),
         ("axis-y", (0, -1, 0)), ("axis+z", (0, 0, 1)), ("axis-z", (0, 0, -1)))


def axis_rig(size: int = 512, fov_deg: float = DEFAULT_FOV_DEG, box: np.ndarray | None = None) -> Cameras:
    """The 6 axis-aligned views (cameras on +x, -x, +y, -y, +z, -z) of the unit box."""
    return rig_from_directions(np.array([d for _, d in _AXES], dtype=np.float64), size,
                               [n for n, _ in _AXES], fov_deg, box)


def random_directions(k: int, seed: int = 0) -> np.ndarray:
    """(k, 3) float64 unit vectors uniform on the sphere (normalised Gaussians)."""
    rng = np.random.default_rng(seed)
    d = rng.standard_normal((k, 3))
    n = np.linalg.norm(d, axis=1)
    while np.any(n < 1e-6):  # astronomically rare; redraw for determinism's sake
        bad = n < 1e-6
        d[bad] = rng.standard_normal((int(bad.sum()), 3))
        n = np.linalg.norm(d, axis=1)
    return d / n[:, None]


def random_rig(k: int, size: int = 512, seed: int = 0, fov_deg: float = DEFAULT_FOV_DEG,
               box: np.ndarray | None = None) -> Cameras:
    """``k`` views from directions uniform on the sphere (deterministic in ``seed``)."""
    if k < 1:
        raise InputError(f"random_rig needs k >= 1, got {k}")
    return rig_from_directions(random_directions(k, seed), size, [f"random{i}" for i in range(k)], fov_deg, box)


def sampart3d_rig(n_views: int = 36, size: int = 512, seed: int = 0, fov_deg: float = DEFAULT_FOV_DEG,
                  box: np.ndarray | None = None) -> Cameras:
    """SAMPart3D's rig: the 6 axis views followed by ``n_views - 6`` random views."""
    if n_views < 6:
        raise InputError(f"sampart3d_rig needs n_views >= 6, got {n_views}")
    dirs = [np.array([d for _, d in _AXES], dtype=np.float64)]
    names = [n for n, _ in _AXES]
    if n_views > 6:
        dirs.append(random_directions(n_views - 6, seed))
        names += [f"random{i}" for i in range(n_views - 6)]
    return rig_from_directions(np.concatenate(dirs), size, names, fov_deg, box)


def orbit_rig(elevations_deg: Sequence[float] = (20.0,), n_azimuth: int = 10, size: int = 512,
              fov_deg: float = DEFAULT_FOV_DEG, box: np.ndarray | None = None) -> Cameras:
    """Rings of views around the +y axis (PartSLIP / PartDistill style; they use 10 views).

    One ring of ``n_azimuth`` evenly spaced views per elevation (degrees above the
    xz-plane; +-90 are the top / bottom views). Azimuth 0 looks from +z.
    """
    if n_azimuth < 1 or len(elevations_deg) == 0:
        raise InputError("orbit_rig needs at least one elevation and n_azimuth >= 1")
    dirs, names = [], []
    for el in elevations_deg:
        e = np.radians(float(el))
        for a in range(n_azimuth):
            az = 2.0 * np.pi * a / n_azimuth
            dirs.append([np.cos(e) * np.sin(az), np.sin(e), np.cos(e) * np.cos(az)])
            names.append(f"orbit-el{float(el):g}-az{np.degrees(az):g}")
    return rig_from_directions(np.array(dirs), size, names, fov_deg, box)


def cameras_from_matrices(K: np.ndarray, world_to_cam: np.ndarray, width: int, height: int,
                          names: Sequence[str] = ()) -> Cameras:
    """Validate user-given intrinsics and extrinsics and wrap them as :class:`Cameras`.

    Args:
        K: (3, 3) shared or (V, 3, 3) per-view intrinsics (pixels; last row 0 0 1,
            positive focal lengths).
        world_to_cam: (V, 4, 4) or (V, 3, 4) (or a single (4, 4) / (3, 4)) OpenCV
            extrinsics with an orthonormal, right-handed rotation.
        width, height: image size in pixels.
        names: optional V labels (default ``view0 ...``).

    Raises:
        InputError: on wrong shapes, non-finite values or an invalid rotation.
    """
    K = np.asarray(K, dtype=np.float64)
    Rt = np.asarray(world_to_cam, dtype=np.float64)
    if Rt.ndim == 2:
        Rt = Rt[None]
    if Rt.ndim != 3 or Rt.shape[1:] not in ((4, 4), (3, 4)):
        raise InputError(f"world_to_cam must be (V, 4, 4) or (V, 3, 4), got {Rt.shape}")
    V = len(Rt)
    if V == 0:
        raise InputError("world_to_cam holds no view")
    if Rt.shape[1] == 3:
        Rt = np.concatenate([Rt, np.tile([[[0.0, 0.0, 0.0, 1.0]]], (V, 1, 1))], axis=1)
    if K.shape == (3, 3):
        K = np.tile(K, (V, 1, 1))
    if K.shape != (V, 3, 3):
        raise InputError(f"K must be (3, 3) or ({V}, 3, 3), got {K.shape}")
    if int(width) != width or int(height) != height or width < 1 or height < 1:
        raise InputError(f"image size must be positive integers, got {width}x{height}")
    if not (np.all(np.isfinite(K)) and np.all(np.isfinite(Rt))):
        raise InputError("camera matrices contain NaN or inf")
    if not np.allclose(K[:, 2], [0.0, 0.0, 1.0]) or np.any(K[:, 0, 0] <= 0) or np.any(K[:, 1, 1] <= 0) \
            or not np.allclose(K[:, 1, 0], 0.0):
        raise InputError("K must be upper triangular with last row (0, 0, 1) and positive focal lengths")
    if not np.allclose(Rt[:, 3], [0.0, 0.0, 0.0, 1.0]):
        raise InputError("world_to_cam last row must be (0, 0, 0, 1)")
    R = Rt[:, :3, :3]
    if not np.allclose(R @ R.transpose(0, 2, 1), np.eye(3), atol=1e-5) or np.any(np.linalg.det(R) < 0):
        raise InputError("world_to_cam rotation must be orthonormal and right-handed (no scale)")
    names = tuple(names) if names else tuple(f"view{i}" for i in range(V))
    if len(names) != V:
        raise InputError(f"got {len(names)} names for {V} views")
    return Cameras(K, Rt, int(width), int(height), names)
