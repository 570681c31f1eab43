"""Views of a shape from its principal axes, each cropped so the object fills its picture.

The principal axes are those of the surface (area-weighted face centroids; the points of a point
cloud). "Up" in every picture is the principal axis nearest the file format's up axis: +z for
formats that come from CAD and scanning (STL, OFF, LAS/LAZ, PCD), +y for the rest (glTF's rule,
which OBJ, PLY and NumPy files written by 3D tools mostly follow). So a standing figure stands
whatever the tilt it was stored with, and a figure stored lying down along +z in an STL stands
too. "Front" is the remaining principal axis of least extent (the picture that shows the most),
signed towards the format's front. Where two principal extents are within 5% of each other the
axes are ill-defined and the world axes are kept.

Views, in order: front, side (from the right), three-quarter (45 degrees round, 30 degrees up),
top (front at the bottom).

Example:
    >>> from crossdistill.geometry.demo import demo_shape
    >>> views, frame = principal_views(demo_shape(), size=64)
    >>> len(views), frame.up_axis
    (4, '+y')
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from crossdistill.types import Shape, Views

__all__ = ["PrincipalFrame", "principal_frame", "principal_views", "crop_to_object", "VIEW_NAMES"]

VIEW_NAMES = ("front", "side", "three-quarter", "top")
_Z_UP = (".stl", ".off", ".las", ".laz", ".pcd")
_DIRS = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0],
                  [np.sin(np.radians(45)) * np.cos(np.radians(30)), np.sin(np.radians(30)),
                   np.cos(np.radians(45)) * np.cos(np.radians(30))],
                  [0.0, 1.0, 0.0]])


@dataclass(frozen=True)
class PrincipalFrame:
    """A rotation taking the shape to "right, up, front" = x, y, z.

    Attributes:
        rotation: (3, 3) float64 with rows right, up, front (world coordinates); det = +1.
        extents: (3,) float64 standard deviation of the surface along right, up, front.
        up_axis: the world axis taken as the format's up ("+y" or "+z").
        principal: False when the extents were too close to trust and the world axes were kept.
    """

    rotation: np.ndarray
    extents: np.ndarray
    up_axis: str
    principal: bool


def _surface_points(shape: Shape) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) points and (N,) weights describing the surface."""
    if shape.is_mesh:
        return shape.triangles.mean(axis=1), shape.face_areas
    return np.asarray(shape.vertices, dtype=np.float64), np.ones(shape.n_vertices)


def _format_up(shape: Shape) -> np.ndarray:
    return np.array([0.0, 0.0, 1.0]) if Path(shape.source).suffix.lower() in _Z_UP else np.array([0.0, 1.0, 0.0])


def principal_frame(shape: Shape) -> PrincipalFrame:
    """The principal frame of ``shape`` (rules in the module docstring)."""
    pts, w = _surface_points(shape)
    w = w / w.sum() if w.sum() > 0 else np.full(len(w), 1.0 / len(w))
    centre = w @ pts
    cov = ((pts - centre) * w[:, None]).T @ (pts - centre)
    values, vectors = np.linalg.eigh(cov)  # ascending
    values = np.maximum(values, 0.0)
    world_up = _format_up(shape)
    world_front = np.array([0.0, 0.0, 1.0]) if world_up[1] == 1.0 else np.array([0.0, -1.0, 0.0])
    sd = np.sqrt(values)
    close = np.any(np.abs(np.diff(sd)) <= 0.05 * np.maximum(sd[1:], 1e-12))
    if close:
        up, front = world_up, world_front
        principal = False
    else:
        axes = vectors.T  # rows, by ascending variance
        up = axes[int(np.argmax(np.abs(axes @ world_up)))]
        rest = [a for a in axes if not np.allclose(a, up)]
        front = min(rest, key=lambda a: float(a @ cov @ a))  # the least extent of the two left
        principal = True
    up = up * (1.0 if up @ world_up >= 0 else -1.0)
    toward = world_front if abs(front @ world_front) > 1e-6 else np.cross(world_up, world_front)
    front = front * (1.0 if front @ toward >= 0 else -1.0)
    right = np.cross(up, front)
    rotation = np.stack([right, up, front])
    extents = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", rotation, cov, rotation), 0.0))
    return PrincipalFrame(rotation, extents, "+z" if world_up[2] == 1.0 else "+y", principal)


def principal_views(shape: Shape, size: int = 256, frame: PrincipalFrame | None = None) -> tuple[Views, PrincipalFrame]:
    """Render ``shape`` from :data:`VIEW_NAMES` of its principal frame (input not modified).

    Returns:
        (4 views of ``size`` x ``size``; ``face_id`` indexes the input's faces / points, the frame used).
    """
    from crossdistill.geometry.normalize import normalize_shape
    from crossdistill.render import render_shape
    from crossdistill.render.cameras import rig_from_directions

    frame = principal_frame(shape) if frame is None else frame
    unit, _ = normalize_shape(shape)
    R = frame.rotation
    turned = replace(unit, vertices=unit.vertices @ R.T,
                     vertex_normals=None if unit.vertex_normals is None else unit.vertex_normals @ R.T)
    lo, hi = turned.vertices.min(0), turned.vertices.max(0)
    centre = 0.5 * (lo + hi)
    turned = replace(turned, vertices=turned.vertices - centre)
    box = np.stack([lo - centre, hi - centre])
    cams = rig_from_directions(_DIRS, size, list(VIEW_NAMES), box=box)
    views = render_shape(turned, cams, None, progress=False, n_samples=500).views
    return views, frame


def crop_to_object(image: np.ndarray, foreground: np.ndarray, cell: int, margin: float = 0.04) -> np.ndarray:
    """(cell, cell, 3) uint8: ``image`` cropped to its foreground's box (plus ``margin`` of the cell) and
    scaled to fill the cell, aspect kept, on white."""
    from PIL import Image

    out = np.full((cell, cell, 3), 255, np.uint8)
    ys, xs = np.nonzero(foreground)
    if len(ys) == 0:
        return out
    crop = image[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    h, w = crop.shape[:2]
    inner = max(1, int(round(cell * (1 - 2 * margin))))
    scale = inner / max(h, w)
    nh, nw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    resized = np.asarray(Image.fromarray(crop).resize((nw, nh), Image.Resampling.LANCZOS))
    y0, x0 = (cell - nh) // 2, (cell - nw) // 2
    out[y0:y0 + nh, x0:x0 + nw] = resized
    return out
