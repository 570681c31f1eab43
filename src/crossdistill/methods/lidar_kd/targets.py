"""Point-to-pixel distillation targets: the 2D teacher's features and logits at every seen point.

Each point of a :class:`LidarFrame` is projected into every camera
(:func:`crossdistill.render.lidar.point_pixels`, depth-tested); where it lands, the teacher's
:class:`~crossdistill.teachers.base.SemanticMap` is read at the corresponding map cell
(bilinear). A point seen by several cameras (nuScenes) takes the mean. Points no camera
sees have no target and carry no loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from crossdistill.methods.lidar_kd.frames import LidarFrame
from crossdistill.render.lidar import point_pixels
from crossdistill.teachers.base import SemanticMap

__all__ = ["PointTargets", "point_targets", "sample_map"]


@dataclass(frozen=True)
class PointTargets:
    """Teacher knowledge per point of one frame.

    Attributes:
        seen: (N,) bool the point is seen by at least one camera.
        features: (N, C) float32 teacher features (zero where unseen).
        logits: (N, K) float32 teacher logits (zero where unseen).
    """

    seen: np.ndarray
    features: np.ndarray
    logits: np.ndarray


def sample_map(smap: SemanticMap, flat_pixels: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """((P, C) features, (P, K) logits) of a map at flat image pixels ``y * width + x`` (bilinear)."""
    H, W = smap.image_size
    x = (flat_pixels % width + 0.5) / W * 2 - 1
    y = (flat_pixels // width + 0.5) / H * 2 - 1
    grid = torch.as_tensor(np.stack([x, y], -1), dtype=torch.float32)[None, None]  # (1, 1, P, 2)
    both = torch.as_tensor(np.concatenate([smap.features, smap.logits]), dtype=torch.float32)[None]
    vals = F.grid_sample(both, grid, mode="bilinear", padding_mode="border",  # edge pixels: no zero padding
                         align_corners=False)[0, :, 0].T.numpy()  # (P, C + K)
    C = smap.features.shape[0]
    return vals[:, :C], vals[:, C:]


def point_targets(frame: LidarFrame, maps: list[SemanticMap], occlusion_px: int = 2) -> PointTargets:
    """Targets of one frame from one teacher map per camera image (same order as ``frame.images``)."""
    if len(maps) != len(frame.images):
        raise ValueError(f"{len(maps)} teacher maps for {len(frame.images)} camera images")
    N = len(frame.points)
    C, K = maps[0].features.shape[0], maps[0].logits.shape[0]
    feats, logits, count = np.zeros((N, C), np.float32), np.zeros((N, K), np.float32), np.zeros(N, np.float32)
    for cam_img, smap in zip(frame.images, maps):
        pix = point_pixels(frame.points, cam_img.camera, occlusion_px=occlusion_px)
        seen = np.nonzero(pix >= 0)[0]
        if not len(seen):
            continue
        f, lg = sample_map(smap, pix[seen], cam_img.camera.width)
        feats[seen] += f
        logits[seen] += lg
        count[seen] += 1
    seen = count > 0
    feats[seen] /= count[seen, None]
    logits[seen] /= count[seen, None]
    return PointTargets(seen, feats, logits)
