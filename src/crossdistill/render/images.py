"""Photos as :class:`~crossdistill.types.Views`: what 2D-only methods (PartDistillation) run on.

A photo has no render buffers. :func:`views_from_images` wraps same-sized RGB images as
views whose only geometric content is a foreground: the pixels that differ from the
image's plain background (estimated from its border), or a mask the caller gives (an
alpha channel, a segmentation). Depth is 1 and the normal zero on the foreground, ``inf``
and zero elsewhere; ``face_id`` is 0 on the foreground and -1 elsewhere; the cameras are
identity pinholes. Teachers that read colour (Mask2Former, the offline instance teacher)
work on them as on renders.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from crossdistill.errors import InputError
from crossdistill.types import Cameras, Views

__all__ = ["views_from_images", "plain_background_mask", "read_rgb", "IMAGE_SUFFIXES"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def read_rgb(path: str | Path, max_side: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Read an image file as ((H, W, 3) uint8 RGB, (H, W) bool alpha mask or None).

    ``max_side`` shrinks larger images (aspect kept). Raises :class:`InputError` with one
    line for a missing, unreadable, empty or absurdly large file.
    """
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    try:
        with Image.open(p) as im:
            if im.width * im.height == 0:
                raise InputError(f"{p}: empty image")
            if im.width * im.height > 100_000_000:
                raise InputError(f"{p}: image of {im.width}x{im.height} pixels is too large (max 100 Mpx)")
            if max_side and max(im.size) > max_side:
                scale = max_side / max(im.size)
                im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BILINEAR)
            has_alpha = im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info)
            rgba = np.asarray(im.convert("RGBA"))
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except Image.DecompressionBombError:  # PIL refuses headers claiming > 2 x MAX_IMAGE_PIXELS
        raise InputError(f"{p}: image header claims far more pixels than can be decoded safely "
                         "(max 100 Mpx; a decompression bomb?)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{p}: not a readable image ({type(exc).__name__})") from None
    alpha = rgba[..., 3] > 127 if has_alpha else None
    return np.ascontiguousarray(rgba[..., :3]), alpha


def plain_background_mask(rgb: np.ndarray, tol: float = 24.0, min_area: int = 16) -> np.ndarray:
    """(H, W) bool foreground of an object photographed or rendered on a plain background.

    The background colour is the median of the image border; a pixel is background when
    it lies within ``tol`` (RGB distance) of it *and* is connected to the border through
    such pixels, so background-coloured areas inside the object stay foreground. Holes
    and specks below ``min_area`` pixels are cleaned.

    Example:
        >>> img = np.full((8, 8, 3), 255, np.uint8); img[2:6, 2:6] = (200, 0, 0)
        >>> int(plain_background_mask(img, min_area=1).sum())
        16
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 2:
        raise InputError(f"expected an (H, W, 3) image of at least 2x2 pixels, got {rgb.shape}")
    img = rgb.astype(np.float32)
    border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
    bg_colour = np.median(border, axis=0)
    near = np.linalg.norm(img - bg_colour, axis=-1) <= tol
    lab, _ = ndimage.label(near)
    edge_labels = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    background = np.isin(lab, edge_labels[edge_labels > 0])
    fg = ~background
    fg = ndimage.binary_opening(fg, iterations=1) if min_area > 1 else fg
    lab, n = ndimage.label(fg)
    if n:
        areas = np.bincount(lab.ravel(), minlength=n + 1)
        fg = areas[lab] >= min_area
        fg[lab == 0] = False
    return fg


def views_from_images(images: Sequence[np.ndarray], masks: Sequence[np.ndarray | None] | None = None,
                      names: Sequence[str] = ()) -> Views:
    """V same-sized photos as :class:`Views` (see the module docstring).

    Args:
        images: V (H, W, 3) uint8 RGB images of one size.
        masks: optional (H, W) bool foreground per image (None entries: estimated by
            :func:`plain_background_mask`).
        names: one name per view.

    Returns:
        Views with ``face_id`` (V, H, W) int32 0 / -1, ``depth`` 1 / inf, ``normal`` zeros,
        ``rgb`` the images, identity cameras.
    """
    if not len(images):
        raise InputError("no images")
    H, W = images[0].shape[:2]
    rgb = np.empty((len(images), H, W, 3), np.uint8)
    face_id = np.full((len(images), H, W), -1, np.int32)
    for i, img in enumerate(images):
        if img.shape != (H, W, 3):
            raise InputError(f"image {i} is {img.shape}, expected {(H, W, 3)} like the first")
        rgb[i] = img
        mask = None if masks is None else masks[i]
        fg = plain_background_mask(img) if mask is None else np.asarray(mask, bool)
        face_id[i][fg] = 0
    fg = face_id >= 0
    depth = np.where(fg, 1.0, np.inf).astype(np.float32)
    K = np.tile(np.array([[float(max(H, W)), 0, W / 2], [0, float(max(H, W)), H / 2], [0, 0, 1]]), (len(rgb), 1, 1))
    cams = Cameras(K, np.tile(np.eye(4), (len(rgb), 1, 1)), W, H,
                   tuple(names) if names else tuple(f"image{i}" for i in range(len(rgb))))
    return Views(cams, face_id, depth, np.zeros((*face_id.shape, 3), np.float32), rgb)
