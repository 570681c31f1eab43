"""Offline feature teacher: dense per-pixel features from what the renderer knows.

The default :class:`~crossdistill.teachers.base.FeatureTeacher` when no DINOv2 weights
are present. No learned model: every foreground pixel gets

* its surface position in the world (object) frame, (x, y, z);
* its world-space unit normal;
* its shaded colour in [0, 1];
* a multi-frequency positional code of the position, ``sin / cos(pi * 2^k * xyz)`` for
  ``k < n_frequencies`` (as NeRF's positional encoding), so that nearby surfaces are
  similar and far ones are not at several scales.

``C = 9 + 6 * n_frequencies`` channels (33 by default), at render resolution (no
upsampler needed), zero on background pixels. The features are a deterministic
function of the render, so two views that see the same surface point agree on it:
what a distillation target must satisfy, and a useful sanity baseline for DINOv2.
"""

from __future__ import annotations

import numpy as np

from crossdistill.render.raycast import view_positions
from crossdistill.teachers.base import FeatureMaps
from crossdistill.types import Views

__all__ = ["RenderFeatureTeacher"]


class RenderFeatureTeacher:
    """Per-pixel geometric + colour features of rendered views.

    Args:
        n_frequencies: number of octaves of the positional code (0 disables it).
        dtype: numpy dtype of the stored features (float16 halves cache size).

    Example:
        >>> teacher = RenderFeatureTeacher()                   # doctest: +SKIP
        >>> teacher.features(views).features.shape             # doctest: +SKIP
        (36, 33, 384, 384)
    """

    is_offline_default = True

    def __init__(self, n_frequencies: int = 4, dtype: type = np.float16) -> None:
        if n_frequencies < 0:
            raise ValueError(f"n_frequencies must be >= 0, got {n_frequencies}")
        self.n_frequencies = int(n_frequencies)
        self.dtype = np.dtype(dtype)

    @property
    def teacher_id(self) -> str:
        return f"offline_features:v1:freq={self.n_frequencies}:{self.dtype.name}"

    @property
    def channels(self) -> int:
        return 9 + 6 * self.n_frequencies

    def view_features(self, views: Views, v: int) -> np.ndarray:
        """(C, H, W) features of view ``v`` (float32)."""
        fg = views.face_id[v] >= 0
        pos = view_positions(views, v)
        parts = [pos, views.normal[v].astype(np.float32), views.rgb[v].astype(np.float32) / 255.0]
        for k in range(self.n_frequencies):
            arg = pos * np.float32(np.pi * 2.0**k)
            parts += [np.sin(arg), np.cos(arg)]
        feats = np.concatenate(parts, axis=-1)
        feats[~fg] = 0.0
        return np.ascontiguousarray(feats.transpose(2, 0, 1))

    def features(self, views: Views) -> FeatureMaps:
        """FeatureMaps with (V, C, H, W) features at render resolution."""
        H, W = views.face_id.shape[1:]
        out = np.empty((len(views), self.channels, H, W), dtype=self.dtype)
        for v in range(len(views)):
            out[v] = self.view_features(views, v)
        return FeatureMaps(out, (int(H), int(W)))
