"""Contact sheets: a labelled shape seen from a few views, one row per scale.

:func:`scale_sheet` is the one ``crossdistill segment`` writes: per scale, the object from its
principal axes (:mod:`crossdistill.viz.principal`), each view cropped so the object fills its
cell, the part count in the row title and a legend of the parts (colour, id, share of the
surface). Colours follow the part hierarchy (:func:`hierarchy_palettes`): at each finer scale the
largest child of a part keeps its parent's colour exactly and its siblings take hues next to it,
so a part is recognisable across scales.

:func:`contact_sheet` is the plain grid (any views, any labels, the fixed label palette).
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from crossdistill.types import Shape, Views
from crossdistill.viz.palette import label_palette

__all__ = ["shade_labels", "contact_sheet", "hierarchy_palettes", "scale_sheet"]

_TITLE_H = 18
_LEGEND_W = 176


def shade_labels(views: Views, element_labels: np.ndarray, view: int, palette: np.ndarray | None = None) -> np.ndarray:
    """Colour one rendered view by part label with headlight shading.

    Args:
        views: rendered buffers; ``face_id`` indexes ``element_labels`` (faces of a
            mesh, or points of a splatted point cloud).
        element_labels: (F,) or (N,) int labels.
        view: view index.
        palette: (K, 3) uint8 colour per label (default :func:`~crossdistill.viz.palette.label_palette`).

    Returns:
        (H, W, 3) uint8 image, white background.
    """
    fid = views.face_id[view]
    fg = fid >= 0
    lab = np.asarray(element_labels)
    n = int(lab.max()) + 1 if len(lab) else 1
    pal = (label_palette(n) if palette is None else np.asarray(palette)).astype(np.float32)
    out = np.full(fid.shape + (3,), 255, dtype=np.uint8)
    cam_to_world = np.linalg.inv(views.cameras.world_to_cam[view])
    to_cam = -cam_to_world[:3, 2]  # direction from the scene towards the camera
    shade = np.abs(views.normal[view][fg] @ to_cam.astype(np.float32))
    col = pal[np.maximum(lab[fid[fg]], 0)] * (0.35 + 0.65 * shade[:, None])
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
    sheet = Image.new("RGB", (W * len(idx), (H + _TITLE_H) * len(labels_by_row)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (labels, title) in enumerate(zip(labels_by_row, row_titles)):
        y = r * (H + _TITLE_H)
        draw.text((4, y + 3), title, fill=(0, 0, 0))
        for c, v in enumerate(idx):
            sheet.paste(Image.fromarray(shade_labels(views, labels, v)), (c * W, y + _TITLE_H))
    return sheet


def _hls(h: float, l: float, s: float = 0.72) -> np.ndarray:
    return np.array([round(255 * c) for c in colorsys.hls_to_rgb(h % 1.0, l, s)], dtype=np.uint8)


def hierarchy_palettes(labels_by_scale: Sequence[np.ndarray], levels: Sequence[dict],
                       weights: np.ndarray | None = None) -> list[np.ndarray]:
    """One (K_s, 3) uint8 palette per scale (fine to coarse), colours inherited down the hierarchy.

    Args:
        labels_by_scale: S label arrays (M,), fine to coarse.
        levels: ``hierarchy.json``'s levels (:func:`~crossdistill.methods.sampart3d.pipeline.part_hierarchy`):
            level ``i`` maps the parts of scale ``i`` to their parent at scale ``i + 1``.
        weights: (M,) element weights (face areas) deciding which child is the largest.

    Every part owns an interval of the hue circle: the coarsest scale's parts share the circle
    equally. A part's children split its interval equally: the largest child takes the middle
    share and the parent's colour exactly; the others take the hue at the centre of their share,
    at alternating lightness. A part without a parent (no faces of the coarser scale) takes the
    fixed palette's colour for its label.
    """
    S = len(labels_by_scale)
    w_all = None if weights is None else np.asarray(weights, np.float64)

    def sizes(lab: np.ndarray) -> np.ndarray:
        K = int(lab.max()) + 1 if len(lab) else 0
        w = np.ones(len(lab)) if w_all is None else w_all
        return np.bincount(lab[lab >= 0], weights=w[lab >= 0], minlength=K)[:K]

    top = np.asarray(labels_by_scale[-1])
    K = len(sizes(top))
    palettes: list[np.ndarray] = [np.zeros((0, 3), np.uint8)] * S
    spans: list[np.ndarray] = [np.zeros((0, 2))] * S
    spans[-1] = np.stack([np.arange(K) / max(K, 1), (np.arange(K) + 1) / max(K, 1)], axis=1)
    palettes[-1] = np.stack([_hls(spans[-1][k].mean(), 0.5) for k in range(K)]) if K else np.zeros((0, 3), np.uint8)
    for i in range(S - 2, -1, -1):
        size = sizes(np.asarray(labels_by_scale[i]))
        K = len(size)
        pal = label_palette(K).copy()
        span = np.zeros((K, 2))
        children: dict[int, list[int]] = {}
        for k, p in levels[i]["parent"].items():
            children.setdefault(int(p), []).append(int(k))
        for p, kids in children.items():
            kids = sorted(kids, key=lambda c: (-size[c], c))
            lo, hi = spans[i + 1][p]
            n = len(kids)
            slots = [n // 2] + [j for j in range(n) if j != n // 2]  # the largest child takes the middle share
            for rank, (k, slot) in enumerate(zip(kids, slots)):
                a = lo + (hi - lo) * slot / n
                span[k] = (a, a + (hi - lo) / n)
                pal[k] = palettes[i + 1][p] if rank == 0 else _hls(0.5 * (span[k][0] + span[k][1]),
                                                                    (0.38, 0.62, 0.5)[rank % 3])
        palettes[i], spans[i] = pal, span
    return palettes


def _legend(draw: ImageDraw.ImageDraw, x: int, y: int, height: int, palette: np.ndarray, labels: np.ndarray,
            weights: np.ndarray, names: Sequence[str] | None) -> None:
    """Swatch, part id (name) and share of the surface for the largest parts, as many as fit in ``height``."""
    K = len(palette)
    share = np.bincount(labels[labels >= 0], weights=weights[labels >= 0], minlength=K)[:K]
    share = share / max(share.sum(), 1e-12)
    order = [int(k) for k in np.argsort(-share, kind="stable") if share[k] > 0]
    row_h = 13
    fits = max(1, height // row_h)
    shown = order if len(order) <= fits else order[: fits - 1]
    for r, k in enumerate(shown):
        yy = y + r * row_h
        draw.rectangle([x, yy + 1, x + 10, yy + 11], fill=tuple(int(c) for c in palette[k]), outline=(60, 60, 60))
        name = f" {names[k]}" if names is not None and k < len(names) and names[k] else ""
        draw.text((x + 15, yy), f"{k}{name[:18]}  {100 * share[k]:.0f}%", fill=(0, 0, 0))
    if len(shown) < len(order):
        draw.text((x + 15, y + len(shown) * row_h), f"+{len(order) - len(shown)} more", fill=(90, 90, 90))


def scale_sheet(shape: Shape, labels_by_scale: Sequence[np.ndarray], scales: Sequence[float], levels: Sequence[dict],
                cell: int = 192, part_names: Sequence[Sequence[str] | None] | None = None) -> Image.Image:
    """The contact sheet of a segmentation: one row per scale, coarse at the top (see the module docstring).

    Args:
        shape: the input shape (any units; not modified).
        labels_by_scale: S arrays (M,) of labels per face / point, fine to coarse (the order of ``scales``).
        scales: the S scales.
        levels: ``hierarchy.json``'s levels for those labels.
        cell: side of each view's picture in pixels.
        part_names: optional names per scale (None entries allowed).

    Returns:
        RGB image of (4 * cell + legend) x (S * (cell + title)) pixels.
    """
    from crossdistill.viz.principal import VIEW_NAMES, crop_to_object, principal_views

    weights = shape.face_areas if shape.is_mesh else np.ones(shape.n_vertices)
    palettes = hierarchy_palettes(labels_by_scale, levels, weights)
    views, frame = principal_views(shape, size=int(cell * 1.25))
    V = len(views)
    S = len(labels_by_scale)
    sheet = Image.new("RGB", (V * cell + _LEGEND_W, S * (cell + _TITLE_H) + _TITLE_H), "white")
    draw = ImageDraw.Draw(sheet)
    axes = "principal axes" if frame.principal else "world axes (no clear principal axes)"
    draw.text((4, 3), f"views: {', '.join(VIEW_NAMES)} ({axes}; up = the axis nearest {frame.up_axis})",
              fill=(70, 70, 70))
    for r, i in enumerate(range(S - 1, -1, -1)):  # coarse at the top
        lab = np.asarray(labels_by_scale[i])
        y = _TITLE_H + r * (cell + _TITLE_H)
        n_parts = len(np.unique(lab[lab >= 0]))
        draw.text((4, y + 3), f"scale {float(scales[i]):g}: {n_parts} part{'s' if n_parts != 1 else ''}",
                  fill=(0, 0, 0))
        for v in range(V):
            picture = crop_to_object(shade_labels(views, lab, v, palettes[i]), views.foreground[v], cell)
            sheet.paste(Image.fromarray(picture), (v * cell, y + _TITLE_H))
        names = part_names[i] if part_names is not None else None
        _legend(draw, V * cell + 8, y + _TITLE_H, cell, palettes[i], lab, weights, names)
    return sheet
