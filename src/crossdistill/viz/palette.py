"""Colours for labels, normals and depth: one home for every colour-coding."""

from __future__ import annotations

import numpy as np

# A hand-picked, high-contrast palette for the first labels; later labels get
# deterministic hashed colours so any label id has a stable colour.
_BASE = np.array(
    [
        [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
        [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
        [0, 128, 128], [220, 190, 255], [170, 110, 40], [255, 250, 200], [128, 0, 0],
        [170, 255, 195], [128, 128, 0], [255, 215, 180], [0, 0, 128], [128, 128, 128],
    ],
    dtype=np.uint8,
)


def label_palette(n: int) -> np.ndarray:
    """(n, 3) uint8 distinct colours for labels 0..n-1 (stable: label k always gets the same colour)."""
    out = np.empty((max(n, 0), 3), dtype=np.uint8)
    k = min(n, len(_BASE))
    out[:k] = _BASE[:k]
    if n > k:
        ids = np.arange(k, n, dtype=np.uint64)
        h = (ids * np.uint64(2654435761)) & np.uint64(0xFFFFFF)
        rgb = np.stack([(h >> np.uint64(16)) & np.uint64(255), (h >> np.uint64(8)) & np.uint64(255), h & np.uint64(255)], -1)
        out[k:] = (64 + (rgb.astype(np.int64) * 191) // 255).astype(np.uint8)
    return out


def colorize_labels(labels: np.ndarray, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Colour-code an integer label array.

    Args:
        labels: (...) int array, negative = background.

    Returns:
        (..., 3) uint8 colours.
    """
    labels = np.asarray(labels)
    n = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
    pal = np.concatenate([label_palette(n), np.array([background], dtype=np.uint8)])
    return pal[np.where(labels >= 0, labels, n)]


def normals_to_rgb(normals: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(..., 3) unit normals -> (..., 3) uint8 with (n + 1) / 2 * 255; masked-out pixels white."""
    rgb = np.clip((np.asarray(normals, dtype=np.float32) + 1.0) * 127.5, 0, 255).astype(np.uint8)
    if mask is not None:
        rgb[~mask] = 255
    return rgb


def depth_to_rgb(depth: np.ndarray) -> np.ndarray:
    """(H, W) depth with ``inf`` background -> (H, W, 3) uint8 grey (near = bright, background black)."""
    d = np.asarray(depth, dtype=np.float32)
    fg = np.isfinite(d)
    out = np.zeros(d.shape + (3,), dtype=np.uint8)
    if fg.any():
        lo, hi = float(d[fg].min()), float(d[fg].max())
        v = 1.0 - (d[fg] - lo) / max(hi - lo, 1e-9)
        out[fg] = (40 + 215 * v)[:, None].astype(np.uint8)
    return out


def overlay_labels(rgb: np.ndarray, labels: np.ndarray, alpha: float = 0.7) -> np.ndarray:
    """(H, W, 3) uint8: label colours over the image's grey level where labels >= 0, white elsewhere.

    Args:
        rgb: (H, W, 3) uint8 image.
        labels: (H, W) int, negative = background.
        alpha: weight of the label colour (the rest is the pixel's grey level, which keeps shading).
    """
    colours = colorize_labels(labels).astype(np.float32)
    grey = np.asarray(rgb, np.float32).mean(-1, keepdims=True)
    out = np.where((np.asarray(labels) >= 0)[..., None], alpha * colours + (1 - alpha) * grey, 255.0)
    return out.astype(np.uint8)
