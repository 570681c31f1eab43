"""Bird's-eye-view pictures of labelled LiDAR scans."""

from __future__ import annotations

import numpy as np

from crossdistill.viz.palette import label_palette

__all__ = ["bev_image"]


def bev_image(points: np.ndarray, labels: np.ndarray, extent: float = 40.0, size: int = 480,
              background_label: int = 0) -> np.ndarray:
    """(size, size, 3) uint8 top view of (N, >=2) points coloured by (N,) int labels.

    The sensor is at the centre, +x (forward) points up, +y (left) to the left; ``extent``
    metres each way. Points of ``background_label`` are light grey, negative labels
    darker grey, class k its palette colour; higher classes are drawn last (on top).

    Example:
        >>> bev_image(np.array([[10.0, 0.0]]), np.array([1]), size=8).shape
        (8, 8, 3)
    """
    img = np.full((size, size, 3), 255, np.uint8)
    p = np.asarray(points, np.float64)
    lab = np.asarray(labels, np.int64)
    row = ((extent - p[:, 0]) / (2 * extent) * size).astype(np.int64)
    col = ((extent - p[:, 1]) / (2 * extent) * size).astype(np.int64)
    ok = (row >= 0) & (row < size) & (col >= 0) & (col < size)
    n = int(lab.max()) + 1 if lab.size and lab.max() >= 0 else 1
    pal = label_palette(max(n, 1))
    colours = np.where(lab[:, None] < 0, 150, 200).astype(np.uint8).repeat(3, 1)
    fg = lab > background_label
    colours[fg] = pal[lab[fg]]
    order = np.argsort(np.where(ok, lab, -2), kind="stable")
    order = order[ok[order]]
    img[row[order], col[order]] = colours[order]
    return img
