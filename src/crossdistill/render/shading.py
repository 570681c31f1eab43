"""Surface attributes at the hit pixels: camera-facing normals and headlight shading.

A *shader* turns the ids of the hit primitives (faces of a mesh, or points of a
splatted point cloud) into world normals and base colours; :func:`shade` flips the
normals to face the camera and applies a headlight Lambert + ambient model.

All per-pixel arrays here are for the n *foreground* pixels of one view only.
"""

from __future__ import annotations

import numpy as np

from crossdistill.types import Shape

#: base colour of a shape without colours (uint8 grey)
GREY = np.array([180, 180, 180], dtype=np.float32)
#: ambient share of the headlight model
AMBIENT = 0.3


def _unit32(n: np.ndarray) -> np.ndarray:
    n = np.asarray(n, dtype=np.float32)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    return np.divide(n, norm, out=np.zeros_like(n), where=norm > 0)


class MeshShader:
    """Face normals and face / interpolated vertex colours of a mesh.

    Colour priority: ``face_colors``, else ``vertex_colors`` interpolated with the
    barycentrics (faces whose three corner colours are equal take the fast path of a
    per-face colour), else grey.
    """

    def __init__(self, shape: Shape):
        self.face_normals = shape.face_normals.astype(np.float32)  # (F, 3)
        self.face_rgb: np.ndarray | None = None  # (F, 3) float32
        # (F, 9) float32 [c0, c1 - c0, c2 - c0] per face, only if colours vary inside faces
        self.corner_rgb: np.ndarray | None = None
        if shape.face_colors is not None:
            self.face_rgb = np.asarray(shape.face_colors, dtype=np.float32)[:, :3]
        elif shape.vertex_colors is not None:
            corners = np.asarray(shape.vertex_colors, dtype=np.float32)[:, :3][shape.faces]
            if np.all(corners == corners[:, :1]):
                self.face_rgb = corners[:, 0]
            else:
                self.corner_rgb = np.concatenate(
                    [corners[:, 0], corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]], axis=1)

    def normals(self, ids: np.ndarray, bary_uv: np.ndarray | None) -> np.ndarray:
        """(n, 3) float32 unit face normals of faces ``ids`` (n,)."""
        return self.face_normals[ids]

    def colors(self, ids: np.ndarray, bary_uv: np.ndarray | None) -> np.ndarray:
        """(n, 3) float32 base colours at hits on faces ``ids`` with barycentric (u, v) (n, 2)."""
        if self.face_rgb is not None:
            return self.face_rgb[ids]
        if self.corner_rgb is not None and bary_uv is not None:
            c = self.corner_rgb[ids]  # (n, 9)
            out = c[:, 3:6] * bary_uv[:, 0:1]
            out += c[:, 6:9] * bary_uv[:, 1:2]
            out += c[:, 0:3]
            return out
        return np.broadcast_to(GREY, (len(ids), 3))


class PointShader:
    """Normals and colours of a point cloud (per point; ``bary_uv`` is ignored)."""

    def __init__(self, normals: np.ndarray, colors: np.ndarray | None):
        self.point_normals = _unit32(normals)  # (N, 3)
        self.point_rgb = None if colors is None else np.asarray(colors, dtype=np.float32)[:, :3]

    def normals(self, ids: np.ndarray, bary_uv: np.ndarray | None = None) -> np.ndarray:
        return self.point_normals[ids]

    def colors(self, ids: np.ndarray, bary_uv: np.ndarray | None = None) -> np.ndarray:
        if self.point_rgb is None:
            return np.broadcast_to(GREY, (len(ids), 3))
        return self.point_rgb[ids]


def shade(normals: np.ndarray, colors: np.ndarray, dirs: np.ndarray,
          ambient: float = AMBIENT) -> tuple[np.ndarray, np.ndarray]:
    """Flip normals towards the camera and shade with a headlight.

    Args:
        normals: (n, 3) float32 unit world normals (any orientation).
        colors: (n, 3) float32 base colours in [0, 255].
        dirs: (n, 3) float32 world directions of the pixel rays (any length).

    Returns:
        normal: (n, 3) float32 unit normals with ``normal . dir <= 0``.
        rgb: (n, 3) uint8 ``color * (ambient + (1 - ambient) * cos)`` where ``cos`` is
            the cosine between the normal and the direction to the camera.
    """
    dots = np.einsum("ij,ij->i", normals, dirs)
    flip = np.where(dots > 0, np.float32(-1.0), np.float32(1.0))
    normal = normals * flip[:, None]
    inv_len = 1.0 / np.sqrt(np.einsum("ij,ij->i", dirs, dirs))
    cos = np.abs(dots) * inv_len
    light = (np.float32(ambient) + np.float32(1.0 - ambient) * cos).astype(np.float32)
    rgb = np.clip(colors * light[:, None] + 0.5, 0, 255).astype(np.uint8)
    return normal, rgb
