"""Colour helpers: read colours from trimesh visuals and normalise colour arrays.

Conventions: every colour array here is RGB ``uint8`` (alpha dropped). Shapes with
no colour information get :data:`GREY`.
"""

from __future__ import annotations

import numpy as np

from crossdistill.types import Shape

__all__ = ["GREY", "to_uint8_rgb", "visual_colors", "face_colors_of"]

#: Fallback colour for uncoloured surfaces and points (RGB uint8).
GREY = np.array([160, 160, 160], dtype=np.uint8)


def to_uint8_rgb(colors: np.ndarray) -> np.ndarray:
    """(N, C>=3) colours in any common encoding -> (N, 3) uint8 RGB.

    Rules: integer arrays with values <= 255 are taken as 0-255; 16-bit style values
    (max > 255) are scaled by 255 / 65535; float arrays whose maximum is <= 1 are
    taken as 0-1 and multiplied by 255; other floats are clipped to 0-255. Channels
    beyond the third (alpha) are dropped.
    """
    c = np.asarray(colors)
    if c.ndim != 2 or c.shape[1] < 3:
        raise ValueError(f"colours must be (N, 3) or (N, 4), got {c.shape}")
    c = c[:, :3]
    if c.size == 0:
        return np.zeros((len(c), 3), dtype=np.uint8)
    if np.issubdtype(c.dtype, np.integer):
        if c.max() > 255:
            c = c.astype(np.float64) * (255.0 / 65535.0)
        return np.clip(np.rint(c), 0, 255).astype(np.uint8)
    c = c.astype(np.float64)
    if np.nanmax(c) <= 1.0:
        c = c * 255.0
    return np.clip(np.rint(np.nan_to_num(c)), 0, 255).astype(np.uint8)


def _texture_face_colors(mesh) -> np.ndarray | None:
    """(F, 3) uint8 colours of a textured trimesh mesh, sampled at each face's UV centroid.

    PBR materials: texture x ``baseColorFactor`` (glTF semantics); without a texture the
    factor alone. Simple (OBJ) materials: the ``map_Kd`` texture, or ``Kd`` without one.
    """
    from trimesh.visual.color import uv_to_color
    from trimesh.visual.material import PBRMaterial

    visual = mesh.visual
    material = getattr(visual, "material", None)
    if material is None:
        return None
    n_faces = len(mesh.faces)
    if isinstance(material, PBRMaterial):
        image = material.baseColorTexture
        factor = material.baseColorFactor
        factor = np.ones(3) if factor is None else to_uint8_rgb(np.asarray(factor)[None])[0] / 255.0
    else:
        image = getattr(material, "image", None)
        factor = np.ones(3)
        if image is None:
            diffuse = getattr(material, "diffuse", None)
            if diffuse is None:
                return None
            return np.tile(to_uint8_rgb(np.asarray(diffuse)[None]), (n_faces, 1))
    uv = getattr(visual, "uv", None)
    if image is None or uv is None or len(uv) != len(mesh.vertices):
        base = np.full(3, 255.0)
        return np.tile(np.clip(np.rint(base * factor), 0, 255).astype(np.uint8), (n_faces, 1))
    centroid_uv = np.asarray(uv, dtype=np.float64)[mesh.faces].mean(axis=1)  # (F, 2)
    rgb = uv_to_color(centroid_uv, image)[:, :3].astype(np.float64)
    return np.clip(np.rint(rgb * factor), 0, 255).astype(np.uint8)


def visual_colors(mesh) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Colours of one trimesh ``Trimesh`` from its visual.

    Returns:
        (face_colors, vertex_colors): (F, 3) uint8 or None, (V, 3) uint8 or None.
        ColorVisuals give whichever kind the file defined (none when the visual only
        holds trimesh's default colour); TextureVisuals give face colours sampled
        from the texture at the face's UV centroid.
    """
    visual = mesh.visual
    kind = getattr(visual, "kind", None)
    if kind == "vertex" and type(visual).__name__ == "ColorVisuals":
        return None, to_uint8_rgb(np.asarray(visual.vertex_colors))
    if kind == "face":
        return to_uint8_rgb(np.asarray(visual.face_colors)), None
    if kind == "texture":
        return _texture_face_colors(mesh), None
    return None, None


def face_colors_of(shape: Shape) -> np.ndarray:
    """(F, 3) uint8 colour of every face of a mesh.

    ``shape.face_colors`` when set; otherwise the mean of the face's vertex colours;
    otherwise :data:`GREY`.
    """
    if shape.faces is None:
        raise ValueError("a point cloud has no faces")
    if shape.face_colors is not None:
        return np.asarray(shape.face_colors, dtype=np.uint8)
    if shape.vertex_colors is not None:
        mean = np.asarray(shape.vertex_colors, dtype=np.float64)[shape.faces].mean(axis=1)
        return np.clip(np.rint(mean), 0, 255).astype(np.uint8)
    return np.tile(GREY, (shape.n_faces, 1))
