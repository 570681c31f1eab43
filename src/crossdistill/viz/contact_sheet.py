"""Contact sheets: a labelled shape seen from a few views, one row per scale."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from crossdistill.types import Views
from crossdistill.viz.palette import label_palette


def shade_labels(views: Views, element_labels: np.ndarray, view: int) -> np.ndarray:
    """Colour one rendered view by part label with headlight shading.

    Args:
        views: rendered buffers; ``face_id`` indexes ``element_labels`` (faces of a
            mesh, or points of a splatted point cloud).
        element_labels: (F,) or (N,) int labels.
        view: view index.

    Returns:
        (H, W, 3) uint8 image, white background.
    """
    fid = views.face_id[view]
    fg = fid >= 0
    lab = np.asarray(element_labels)
    pal = label_palette(int(lab.max()) + 1 if len(lab) else 1).astype(np.float32)
    out = np.full(fid.shape + (3,), 255, dtype=np.uint8)
    cam_to_world = np.linalg.inv(views.cameras.world_to_cam[view])
    to_cam = -cam_to_world[:3, 2]  # direction from the scene towards the camera
    shade = np.abs(views.normal[view][fg] @ to_cam.astype(np.float32))
    col = pal[lab[fid[fg]]] * (0.35 + 0.65 * shade[:, None])
    out[fg] = np.clip(col, 0, 255).astype(np.uint8)
    return out


def contact_sheet(views: Views, labels_by_row: Sequence[np.ndarray], row_titles: Sequence[str],
                  view_indices: Sequence[int] | None = None) -> Image.Image:
    """Grid image: one row per labelling (e.g. per scale), one column per view.

    Args:
        views: rendered buffers of the shape.
        labels_by_row: R label arrays indexed by ``views.face_id``.
        row_titles: R captions.
        view_indices: which views to show (default: all).
    """
    idx = list(range(len(views))) if view_indices is None else list(view_indices)
    H, W = views.face_id.shape[1:]
    title_h = 18
    sheet = Image.new("RGB", (W * len(idx), (H + title_h) * len(labels_by_row)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (labels, title) in enumerate(zip(labels_by_row, row_titles)):
        y = r * (H + title_h)
        draw.text((4, y + 3), title, fill=(0, 0, 0))
        for c, v in enumerate(idx):
            sheet.paste(Image.fromarray(shade_labels(views, labels, v)), (c * W, y + title_h))
    return sheet
