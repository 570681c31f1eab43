"""Pictures of a shape with some of its faces or points highlighted.

The object is rendered from a ring of views (unit box, :func:`~crossdistill.render.cameras.orbit_rig`,
headlight shading of :func:`~crossdistill.render.shading.shade`); the highlighted elements are
drawn in a strong colour, everything else grey, and the views are put side by side, cropped to
the object. Part naming shows these strips to a multimodal LLM (one per part,
:func:`render_highlights`); interactive selection shows one per scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from crossdistill.types import Shape, Views

__all__ = ["HIGHLIGHT_RGB", "REST_RGB", "HIGHLIGHT_COLOR_NAME", "Highlights", "orbit_views", "highlight_view",
           "highlight_strip", "composite_views", "render_highlights"]

#: colour of the highlighted part (a strong orange-red) and of the rest of the object (grey)
HIGHLIGHT_RGB = np.array([255, 60, 0], dtype=np.float32)
HIGHLIGHT_COLOR_NAME = "orange-red"
REST_RGB = np.array([175, 175, 175], dtype=np.float32)


def orbit_views(shape: Shape, n_views: int = 4, size: int = 256, elevation_deg: float = 25.0,
                n_samples: int = 2000) -> Views:
    """``shape`` (any units; moved into the unit box here) rendered from ``n_views`` views on one ring.

    Azimuth 0 looks from +z (the front); ``n_samples`` only sizes the renderer's unused correspondence.
    """
    from crossdistill.geometry.normalize import normalize_shape
    from crossdistill.render import render_shape
    from crossdistill.render.cameras import orbit_rig

    unit, _ = normalize_shape(shape)
    return render_shape(unit, orbit_rig((elevation_deg,), n_views, size), None, progress=False,
                        n_samples=n_samples).views


def highlight_strip(views: Views, element_mask: np.ndarray) -> np.ndarray:
    """(h, V * w + (V - 1) * gap, 3) uint8: every view with ``element_mask`` (F,) or (N,) highlighted, side by side."""
    return composite_views([highlight_view(views, element_mask, v) for v in range(len(views))], views.foreground)


@dataclass(frozen=True)
class Highlights:
    """Per-part highlighted renders of one shape.

    Attributes:
        views: the V rendered views (unit box; ``face_id`` indexes faces or points).
        images: K composites, each (h, V * w + (V - 1) * gap, 3) uint8: the V views side by
            side, cropped to the object, part k highlighted.
        visible_px: (K,) int64 highlighted pixels of part k over all views (0: hidden).
    """

    views: Views
    images: list[np.ndarray]
    visible_px: np.ndarray

    @property
    def n_views(self) -> int:
        return len(self.views)


def highlight_view(views: Views, element_mask: np.ndarray, view: int) -> np.ndarray:
    """One view with the masked elements in :data:`HIGHLIGHT_RGB` and the rest in :data:`REST_RGB`.

    Args:
        views: rendered buffers (``face_id`` indexes ``element_mask``).
        element_mask: (F,) or (N,) bool, True on the highlighted faces / points.
        view: view index.

    Returns:
        (H, W, 3) uint8 image, headlight-shaded, white background.
    """
    from crossdistill.render.raycast import pixel_directions_cam
    from crossdistill.render.shading import shade

    cams = views.cameras
    H, W = cams.height, cams.width
    fid = views.face_id[view].reshape(-1)
    fg = np.flatnonzero(fid >= 0)
    out = np.full((H * W, 3), 255, dtype=np.uint8)
    if len(fg):
        on = np.asarray(element_mask, dtype=bool)[fid[fg]]
        base = np.where(on[:, None], HIGHLIGHT_RGB, REST_RGB).astype(np.float32)
        R = cams.world_to_cam[view, :3, :3].astype(np.float32)
        dirs = np.take(pixel_directions_cam(cams.K[view], W, H), fg, axis=0) @ R
        _, out[fg] = shade(views.normal[view].reshape(-1, 3)[fg], base, dirs)
    return out.reshape(H, W, 3)


def composite_views(images: Sequence[np.ndarray], foreground: np.ndarray, margin: int = 6,
                    gap: int = 4) -> np.ndarray:
    """The views side by side, all cropped to the object's box over every view.

    Args:
        images: V (H, W, 3) uint8 views.
        foreground: (V, H, W) bool pixels that see the object.
        margin: pixels kept around the object.
        gap: white pixels between views.

    Returns:
        (h, V * w + (V - 1) * gap, 3) uint8.
    """
    V, H, W = foreground.shape
    ys, xs = np.nonzero(foreground.any(axis=0))
    if len(ys):
        y0, y1 = max(int(ys.min()) - margin, 0), min(int(ys.max()) + margin + 1, H)
        x0, x1 = max(int(xs.min()) - margin, 0), min(int(xs.max()) + margin + 1, W)
    else:
        y0, y1, x0, x1 = 0, H, 0, W
    h, w = y1 - y0, x1 - x0
    out = np.full((h, V * w + (V - 1) * gap, 3), 255, dtype=np.uint8)
    for v, im in enumerate(images):
        out[:, v * (w + gap): v * (w + gap) + w] = im[y0:y1, x0:x1]
    return out


def render_highlights(shape: Shape, labels: np.ndarray, n_views: int = 4, size: int = 256,
                      elevation_deg: float = 25.0, n_samples: int = 2000, progress: bool = False) -> Highlights:
    """Render ``shape`` once from an orbit of ``n_views`` views and highlight every part in turn.

    Args:
        shape: the shape as loaded (moved into the unit box here; the input is not modified).
        labels: (M,) int labels per face (meshes) or point (clouds).
        n_views: views on one ring around +y (azimuth 0 looks from +z, the front).
        size: image side in pixels.
        elevation_deg: ring elevation above the horizon.
        n_samples: surface samples of the renderer's correspondence (unused here; kept small).
        progress: show a progress bar over parts.

    Returns:
        :class:`Highlights` with K = ``labels.max() + 1`` composites.
    """
    lab = np.asarray(labels, dtype=np.int64)
    views = orbit_views(shape, n_views, size, elevation_deg, n_samples)
    K = int(lab.max()) + 1 if lab.size and lab.max() >= 0 else 0
    fg = views.foreground
    pix_label = np.where(fg, lab[np.maximum(views.face_id, 0)], -1)  # (V, H, W) label seen at each pixel
    visible = np.bincount(pix_label[pix_label >= 0].ravel(), minlength=K).astype(np.int64)[:K]
    images = []
    for k in tqdm(range(K), desc="highlight", unit="part", disable=not progress):
        images.append(highlight_strip(views, lab == k))
    return Highlights(views=views, images=images, visible_px=visible)
