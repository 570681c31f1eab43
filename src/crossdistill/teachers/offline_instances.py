"""Offline instance teacher: object masks and per-pixel features without a learned model.

The default :class:`~crossdistill.teachers.base.InstanceTeacher` when no Mask2Former
weights are present (PartDistillation's teacher is an instance-segmentation network whose
pixel-decoder features it clusters into parts). No weights, no learning:

* **instances**: the connected components of the view's foreground (``views.foreground``:
  the rendered object, or for photos the pixels that differ from the plain background, see
  :func:`crossdistill.render.images.views_from_images`) of at least ``min_area`` pixels;
  score 1, class 0 ("object"): the teacher knows no label space.
* **features**: only what one image shows, as a 2D model would read it (the ``"image"``
  inputs of :func:`crossdistill.teachers.fewshot.view_inputs`): shaded colour, the normal
  in the camera's frame, depth relative to the view's median, foreground; each also
  Gaussian-smoothed at ``smooth_sigma`` pixels so a pixel sees its neighbourhood, then
  average-pooled by ``stride`` (Mask2Former's pixel decoder is at 1/4 resolution).
  ``C = 16`` channels; zero on background. On photos the normal and depth channels are
  zero and only colour speaks.

It is honest about what it is: ``is_offline_default`` is True and ``teacher_id`` starts
with ``offline_instances``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from crossdistill.teachers.base import InstanceSet
from crossdistill.teachers.fewshot import view_inputs
from crossdistill.types import Views

__all__ = ["RenderInstanceTeacher", "N_CHANNELS"]

#: channels of :meth:`RenderInstanceTeacher.instances` features: 8 image inputs, 8 smoothed
N_CHANNELS = 16


class RenderInstanceTeacher:
    """Foreground components as instances, image-only per-pixel features.

    Args:
        stride: feature resolution is 1/stride of the view (4, as Mask2Former's).
        smooth_sigma: Gaussian sigma in view pixels of the smoothed channel copies.
        min_area: smallest instance in view pixels.

    Example:
        >>> from crossdistill.teachers.testing import make_views
        >>> sets = RenderInstanceTeacher().instances(make_views(1, (64, 64)))
        >>> sets[0].masks.shape[1:], sets[0].features.shape
        ((64, 64), (16, 16, 16))
    """

    is_offline_default = True

    def __init__(self, stride: int = 4, smooth_sigma: float = 2.0, min_area: int = 64) -> None:
        if stride < 1 or min_area < 1 or smooth_sigma < 0:
            raise ValueError("stride and min_area must be >= 1, smooth_sigma >= 0")
        self.stride = int(stride)
        self.smooth_sigma = float(smooth_sigma)
        self.min_area = int(min_area)

    @property
    def teacher_id(self) -> str:
        return f"offline_instances:stride={self.stride}:sigma={self.smooth_sigma}:min={self.min_area}"

    def instances(self, views: Views) -> list[InstanceSet]:
        """Per view: masks (M, H, W) bool, scores (M,) ones, classes (M,) zeros, features (16, H/s, W/s)."""
        inputs = view_inputs(views, "image")  # (V, 8, H, W), zero on background
        out = []
        for v in range(len(views)):
            fg = views.foreground[v]
            masks = self._components(fg)
            out.append(InstanceSet(masks=masks, scores=np.ones(len(masks), np.float32),
                                   classes=np.zeros(len(masks), np.int64), features=self._features(inputs[v], fg)))
        return out

    def _components(self, fg: np.ndarray) -> np.ndarray:
        """(M, H, W) bool connected foreground components of >= min_area pixels, largest first."""
        lab, n = ndimage.label(fg)
        if n == 0:
            return np.zeros((0, *fg.shape), bool)
        areas = np.bincount(lab.ravel(), minlength=n + 1)[1:]
        keep = [i + 1 for i in np.argsort(-areas, kind="stable") if areas[i] >= self.min_area]
        return np.stack([lab == k for k in keep]) if keep else np.zeros((0, *fg.shape), bool)

    def _features(self, chans: np.ndarray, fg: np.ndarray) -> np.ndarray:
        """(16, ceil(H/s), ceil(W/s)) float32: channels and their foreground-normalised blur, pooled."""
        fgf = fg.astype(np.float32)
        if self.smooth_sigma > 0:
            weight = ndimage.gaussian_filter(fgf, self.smooth_sigma)
            blurred = np.stack([ndimage.gaussian_filter(c * fgf, self.smooth_sigma) for c in chans])
            blurred = np.where(weight > 1e-6, blurred / np.maximum(weight, 1e-6), 0.0) * fgf
        else:
            blurred = chans.copy()
        full = np.concatenate([chans, blurred]).astype(np.float32)
        return _avg_pool(full, fgf, self.stride)


def _avg_pool(x: np.ndarray, weight: np.ndarray, s: int) -> np.ndarray:
    """(C, H, W) -> (C, ceil(H/s), ceil(W/s)) mean over each s x s cell's foreground pixels (0 if none)."""
    C, H, W = x.shape
    if s == 1:
        return x * weight
    h, w = -(-H // s), -(-W // s)
    pad = ((0, 0), (0, h * s - H), (0, w * s - W))
    xs = np.pad(x * weight, pad).reshape(C, h, s, w, s).sum((2, 4))
    ws = np.pad(weight, pad[1:]).reshape(h, s, w, s).sum((1, 3))
    return np.where(ws > 0, xs / np.maximum(ws, 1e-6), 0.0).astype(np.float32)
